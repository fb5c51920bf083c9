/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfio-user NVMe controllers: the public API used by the RPC layer and main().
 *
 * A controller is an emulated NVMe controller (PCI function) that QEMU >= 10.1 attaches with
 * `-device vfio-user-pci,socket=...`; the guest's own nvme driver talks to it, without virtio.
 * Its namespaces are bdevs. It is a sibling of the vhost-user controllers: same socket
 * directory, same reactors and bdev layer, none of the vhost-user code.
 *
 * Rules:
 * - Every function here runs on the control thread.
 * - A controller owns one listening UNIX socket <socket_dir>/<name> (mode 0600, or 0660 with
 *   the configured group) and serves one client at a time; a second client waits in the backlog
 *   until the first leaves.
 * - A namespace claims its bdev while it is attached.
 * - Names are shared with vhost-user controllers (the caller checks both registries): they are
 *   socket file names in the same directory.
 */
#ifndef VH_VFU_VFU_H
#define VH_VFU_VFU_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#define VH_VFU_MAX_NS            32
#define VH_VFU_MAX_IO_QUEUES     64
#define VH_VFU_DEFAULT_IO_QUEUES 32

struct vh_vfu_ctrlr;

struct vh_vfu_nvme_opts {
	const char *name;       /* controller name; the socket is <socket_dir>/<name> */
	uint64_t cpumask;       /* reactors serving its queues; 0 = all */
	uint16_t num_io_queues; /* I/O queue pairs offered (1..64); 0 = default (32) */
};

/*
 * Configure the socket directory (must exist and be writable) and group (-1 = unchanged), and
 * the limit on the guest memory one session maps. Call once before creating controllers.
 * Returns 0 or -errno.
 */
int vh_vfu_init(const char *socket_dir, gid_t sock_group, uint64_t max_guest_mem);

/*
 * Create a controller and start listening. Returns 0, or -EEXIST (name taken), -EINVAL (bad
 * name, cpumask or queue count), -ENAMETOOLONG (socket path too long), -EADDRINUSE (a server
 * listens at the path), or another -errno from the socket or memfd setup.
 */
int vh_vfu_nvme_create(const struct vh_vfu_nvme_opts *opts);

/*
 * Delete a controller: stop listening, unlink the socket, stop its queues (in-flight I/O
 * completes), close the client, release the namespaces' bdevs. The client sees its device
 * disappear (QEMU 10.2 cannot reconnect). Returns 0 or -ENODEV.
 */
int vh_vfu_delete(const char *name);

/*
 * Attach bdev @bdev_name as namespace @nsid (1..32; 0 = the lowest free one, returned in
 * *nsid_out). A connected guest is told with a Namespace Attribute Changed event.
 * Returns 0, -ENODEV (no controller), -ENOENT (no bdev), -EBUSY (bdev claimed), -EEXIST (nsid
 * in use), -ERANGE (nsid out of range), -ENOSPC (no free nsid), -EINVAL (block size the NVMe
 * controller cannot express: not a power of two in 512..65536).
 */
int vh_vfu_add_ns(const char *ctrlr, const char *bdev_name, uint32_t nsid, uint32_t *nsid_out);

/*
 * Detach namespace @nsid: new commands to it fail at once, commands in flight complete, then
 * the bdev is released (in the background if queues run) and the guest is told.
 * Returns 0, -ENODEV (no controller) or -ENOENT (no such namespace).
 */
int vh_vfu_remove_ns(const char *ctrlr, uint32_t nsid);

struct vh_vfu_ctrlr *vh_vfu_find(const char *name);
/* Call fn per controller in creation order; stops early if fn returns non-zero (returned). */
int vh_vfu_foreach(int (*fn)(struct vh_vfu_ctrlr *c, void *arg), void *arg);

/* vfu_get_controllers entry. New reference. */
json_t *vh_vfu_ctrlr_info_json(const struct vh_vfu_ctrlr *c);
/*
 * save_config entries for @c, appended to @config: vfu_create_nvme_controller, then one
 * vfu_controller_add_ns per namespace. Returns 0 or -ENOMEM.
 */
int vh_vfu_ctrlr_config_json(const struct vh_vfu_ctrlr *c, json_t *config);

/*
 * Shutdown: stop listening everywhere, close every session after its in-flight I/O completed,
 * free every controller, then call done(arg) on the control thread.
 */
void vh_vfu_shutdown(void (*done)(void *arg), void *arg);

/* After core/sigbus.h reported a fault: close the sessions whose guest memory faulted. */
void vh_vfu_close_faulted(void);

/*
 * Live upgrade (app/upgrade.c, docs/design.md "Live upgrade by hand-over"). Connected
 * vfio-user clients are handed over to the new worker (QEMU's client cannot reconnect, so the
 * connection never closes). Control thread, all of them.
 *
 * vh_vfu_accept_pause(true) stops accepting on every controller, including those created
 * later (a candidate replaying the configuration shares the old worker's listening sockets);
 * false resumes where no session runs.
 */
void vh_vfu_accept_pause(bool paused);
/*
 * 0 if no vfio-user client is connected; else -EBUSY with the first such controller's name
 * in @name (@len bytes): for a candidate that cannot take vfio-user sessions over.
 */
int vh_vfu_upgrade_blocker(char *name, size_t len);

struct vh_fdvec;
/*
 * Old process: freeze every vfio-user session between two messages (the connection is no
 * longer read), with the admin queue held and every I/O queue paused after its fetched
 * commands completed; closing sessions finish first. done(arg, 0) runs once all are frozen
 * (maybe before this returns), or done(arg, -ETIMEDOUT) after thawing when that takes longer
 * than @timeout_ms. Returns 0, or -EALREADY / -ENOMEM without calling done.
 */
int vh_vfu_freeze(uint64_t timeout_ms, void (*done)(void *arg, int rc), void *arg);
/* Old process: undo the freeze (idempotent). */
void vh_vfu_thaw(void);
/*
 * Old process, frozen: describe every session (a JSON array; the fds it names are appended to
 * @fds and stay ours). Returns a new reference, or NULL with @err set.
 */
json_t *vh_vfu_save_sessions(struct vh_fdvec *fds, int *err);
/*
 * New process, after the configuration replay: adopt the sessions @state (NULL: none)
 * describes, with @fds[i] for index i (used fds are set to -1). Nothing runs and no message
 * is read until vh_vfu_commit(). Returns 0, or -errno with a reason in @why.
 */
int vh_vfu_load_sessions(const json_t *state, int *fds, unsigned nfds, char *why, size_t whylen);
/*
 * New process: start the adopted queues and read the connections; once every controller
 * runs, started(arg, stop_ns, start_ns): when the old worker paused the first of them (0 if
 * none) and when the last runs here (CLOCK_MONOTONIC).
 */
void vh_vfu_commit(void (*started)(void *arg, uint64_t stop_ns, uint64_t start_ns), void *arg);

#endif
