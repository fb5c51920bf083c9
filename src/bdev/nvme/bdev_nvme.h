/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The NVMe bdev back-end: attaches a PCIe controller through the user-space driver and exposes
 * each active namespace as bdev "<name>n<nsid>" (SPDK's naming).
 *
 * Rules:
 * - attach, detach, get_controllers and the memory hooks run on the control thread.
 * - A bdev channel on reactor i uses I/O queue pair i of the controller, owned by that reactor
 *   alone (lock-free). Namespaces of one controller share the reactor's queue pair.
 * - A controller reset (fatal status, timeout) is driven from the control thread by messages:
 *   each owning reactor halts its qpair, control disables the controller, each reactor aborts
 *   (re-queues or fails) its commands, control re-enables, each reactor resumes. Every I/O
 *   completes exactly once across a reset. No lock is taken by either side.
 * - I/O larger than the controller's transfer limit is split; the bdev I/O completes when its
 *   last piece does, with the first error seen.
 */
#ifndef VH_BDEV_NVME_BDEV_NVME_H
#define VH_BDEV_NVME_BDEV_NVME_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bdev/nvme/pci.h"

struct vh_bdev_nvme_opts {
	bool force;               /* take the device from the kernel nvme driver */
	const char *hugepage_dir; /* UIO: NULL = /dev/hugepages */
	uint16_t io_queue_depth;  /* 0 = 256 */
	uint32_t io_timeout_ms;   /* 0 = 30000 */
	uint32_t bounce_pages;    /* per queue pair; 0 = driver default */
	/* MOCK (tests): register access of an in-process controller model. */
	const struct vh_nvme_mock_ops *mock_ops;
	void *mock_ctx;
};

/*
 * Attach controller @name (a bdev name prefix, see vh_name_check) at PCI address @traddr with
 * access @mode and @opts (NULL = defaults); registers one bdev per usable namespace. *bdevs (if
 * not NULL) gets a new JSON array of the bdev names. Returns 0, -EEXIST (name or address in
 * use), -EINVAL, -ENODEV (no namespace usable), or an error from pci/ctrlr (see their headers).
 * Control thread.
 */
int vh_bdev_nvme_attach(const char *name, const char *traddr, enum vh_nvme_access mode,
                        const struct vh_bdev_nvme_opts *opts, json_t **bdevs);

/*
 * Detach controller @name: delete its bdevs, delete its queues, shut it down, release the device.
 * -ENODEV if unknown, -EBUSY if a bdev is claimed or a reset is running. Control thread.
 */
int vh_bdev_nvme_detach(const char *name);

/*
 * The bdev_nvme_get_controllers result: an array with controller @name, or all when NULL.
 * Returns 0 and a new reference in *out, -ENODEV for an unknown name, -ENOMEM. Control thread.
 */
int vh_bdev_nvme_get_controllers(const char *name, json_t **out);

/* Parse "vfio" / "uio" (also "uio_pci_generic", "vfio-pci"). 0 or -EINVAL. Any thread. */
int vh_nvme_access_parse(const char *s, enum vh_nvme_access *out);
const char *vh_nvme_access_name(enum vh_nvme_access mode);
/* The mode to use when the caller gives none: VFIO if /dev/vfio/vfio exists and @traddr has an
 * IOMMU group, else UIO. Control thread. */
enum vh_nvme_access vh_nvme_access_auto(const char *traddr);

/*
 * Guest memory hand-off for the vhost layer: call reg(vaddr, len) for every guest memory
 * region after mapping it and before the first request that uses it, and unreg() after the
 * rings using it are quiesced and before munmap. VFIO maps the region into every attached
 * controller's IOMMU (IOVA == vaddr), so requests go to the SSD with zero copies; UIO records
 * physical addresses when the region is hugepage-backed and otherwise bounces. Returns 0 or
 * -errno (an error from reg only costs copies: the driver bounces what it cannot translate).
 */
struct vh_bdev_mem_hooks {
	int (*reg)(void *vaddr, size_t len);
	int (*unreg)(void *vaddr, size_t len);
};
extern const struct vh_bdev_mem_hooks vh_bdev_nvme_mem_hooks;

/*
 * Live upgrade (app/upgrade.c; docs/design.md, "Live upgrade by hand-over"). A controller is
 * detached from the old worker and attached again by the new one inside the freeze, with a
 * rollback; its device is never open in both (VFIO allows one opener, and the old process's
 * IOVAs are its virtual addresses). All of these run on the control thread.
 *
 * Old worker:
 * - describe(): at ACCEPT, what the candidate needs to create every controller and its bdevs
 *   without the device (name, address, mode; per namespace the bdev's NSID, geometry, I/O types,
 *   write cache and UUID). 0 and a new JSON array in *out, -ENOMEM, or -EBUSY with @why when a
 *   controller cannot be handed over now (resetting, failed, removed).
 * - release(): frozen, every queue drained and every bdev channel closed: halt the queues, shut
 *   each controller down (CC.SHN, then CC.EN=0) and give its device up (vh_nvme_dev_suspend),
 *   keeping every object and bdev. 0, or -errno with @why (-EBUSY: a channel is still open, or a
 *   controller is not enabled); on failure whatever was released is taken back first.
 * - reclaim(): the upgrade failed: take every released device back, disable and re-enable its
 *   controller, re-create its queues (the second half of a reset) and resume them. 0; -EBUSY
 *   while a device is still held by the candidate (the others are back: call it again later);
 *   another -errno if a controller could not be brought back (it is then failed, its bdevs fail
 *   I/O, as after a failed reset).
 * - released(): whether any device is released (reclaim() has work to do).
 *
 * Candidate:
 * - expect(@desc): before the config replay, the old worker's describe() result. An attach
 *   whose name, address and mode match an entry creates the controller and its bdevs from it,
 *   "waiting for hand-over": the device is not touched and no channel can be created. NULL
 *   forgets. 0, -EINVAL (not an array), -ENOMEM.
 * - take(): after the old worker released its devices (STATE), open and bring up every waiting
 *   controller and check each namespace against the description (NSID active, same block size
 *   and count, same features, same NGUID/EUI-64). All or nothing: 0, or -errno with @why (a
 *   mismatch is -ESTALE), every device taken here closed again so the old worker can reclaim it.
 * - drop(): the upgrade failed after take() (before COMMIT): shut down and close every device
 *   taken, before telling the old worker, so that it takes them back at once.
 * - commit(): COMMIT came: the devices are ours for good (drop() no longer applies).
 */
int vh_bdev_nvme_upgrade_describe(json_t **out, char *why, size_t whylen);
int vh_bdev_nvme_upgrade_release(char *why, size_t whylen);
int vh_bdev_nvme_upgrade_reclaim(void);
bool vh_bdev_nvme_upgrade_released(void);
int vh_bdev_nvme_upgrade_expect(const json_t *desc);
int vh_bdev_nvme_upgrade_take(char *why, size_t whylen);
void vh_bdev_nvme_upgrade_drop(void);
void vh_bdev_nvme_upgrade_commit(void);

/* Detach every controller (shutdown). Control thread. */
void vh_bdev_nvme_fini(void);

#endif
