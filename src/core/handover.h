/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * File descriptors that outlive the worker process. Under `vhostd --supervise` the supervisor
 * keeps a duplicate of every listening socket (and of each RAM disk's memfd), and hands them to
 * the next worker after a crash: QEMU's reconnect attempts queue in the still-bound socket's
 * backlog instead of failing, and RAM disks keep their data.
 *
 * Keys are short strings: "sock:<path>" for listening sockets, "bdev:<name>" for RAM disks.
 * Without a supervisor every call is a cheap no-op (get returns -ENOENT).
 *
 * Rules: control thread only. vh_handover_init() runs once at start-up, before anything asks.
 */
#ifndef VH_CORE_HANDOVER_H
#define VH_CORE_HANDOVER_H

#include <stdbool.h>

#define VH_HANDOVER_ENV_FD  "VHOSTD_SUPERVISOR_FD"
#define VH_HANDOVER_ENV_FDS "VHOSTD_HANDOVER_FDS"
/* Set for a live upgrade's candidate worker: its end of the channel to the old worker. */
#define VH_UPGRADE_ENV_FD   "VHOSTD_UPGRADE_FD"
#define VH_HANDOVER_KEY_MAX 200

/* Read the inherited descriptors from the environment. Returns 0 or -errno. */
int vh_handover_init(void);
/* True when a supervisor runs us. */
bool vh_handover_supervised(void);
/*
 * Take an inherited fd for @key (ownership moves to the caller). Returns the fd, or -ENOENT.
 */
int vh_handover_take(const char *key);
/* Give the supervisor a duplicate of @fd to keep under @key. Returns 0 or -errno. */
int vh_handover_keep(const char *key, int fd);
/* Tell the supervisor to close what it keeps under @key. */
void vh_handover_drop(const char *key);
/* Tell the supervisor something ("READY", "WATCHDOG"). */
void vh_handover_notify(const char *what);
/* Close inherited fds nobody took (after the config was replayed). */
void vh_handover_close_unclaimed(void);
/*
 * Listen to what the supervisor tells us (live upgrade: "UPGRADE" with an fd, "UPGRADE-REFUSED
 * <why>"): cb(text, fd) runs on the control thread for each message; @fd (or -1) becomes the
 * callback's. Needs the control loop. Returns 0 (also when not supervised) or -errno.
 */
int vh_handover_watch(void (*cb)(const char *text, int fd));

/*
 * A growable vector of fds that a live upgrade's state description names by index (the fds
 * are not owned by the vector). Any thread, one user at a time.
 */
struct vh_fdvec {
	int *fds;
	unsigned n;
	unsigned cap;
};

/* Append @fd; returns its index, or -ENOMEM. */
int vh_fdvec_push(struct vh_fdvec *v, int fd);
/* Free the vector (not the fds). */
void vh_fdvec_free(struct vh_fdvec *v);

#endif
