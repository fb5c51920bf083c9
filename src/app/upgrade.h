/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Live upgrade by hand-over: the conversation between the running worker (old) and the
 * candidate the supervisor started from the newly installed binary (new). docs/design.md,
 * "Live upgrade by hand-over", describes the protocol; src/vhost/upgrade.h the session state.
 *
 * Rules: control thread only. The old side is event driven and never waits on the new process
 * (a hung candidate costs a timeout, nothing else); the new side runs during start-up, before
 * the event loop, and waits with bounded timeouts.
 */
#ifndef VH_APP_UPGRADE_H
#define VH_APP_UPGRADE_H

#include <stdint.h>

/* Old side: listen to the supervisor and register the vhostd_upgrade RPC. 0 or -errno. */
int vh_upgrade_old_init(void);

/*
 * New side, step 1 (before the config replay): introduce ourselves on @fd and wait until the
 * old process has frozen its configuration; its NVMe controllers, described in ACCEPT, are
 * created waiting for the hand-over by the replay (vh_bdev_nvme_upgrade_expect).
 * 0, or -errno (the caller exits at once).
 */
int vh_upgrade_new_begin(int fd);
/*
 * New side, step 2 (after the config replay, everything held): receive the sessions, take the
 * NVMe devices the old process released (vh_bdev_nvme_upgrade_take), adopt the sessions, say
 * READY and wait for COMMIT. On 0 the caller commits (vh_vhost_commit) and serves;
 * on -errno it must _exit() without touching anything shared (the old process serves on).
 */
int vh_upgrade_new_adopt(void);
/* New side: the replay or the adoption failed; tell the old process why (best effort). */
void vh_upgrade_new_fail(const char *why);
/*
 * New side, step 3: every adopted queue runs; the old process stopped the first one at
 * @stop_ns (0: none ran) and ours all ran at @start_ns (CLOCK_MONOTONIC).
 */
void vh_upgrade_new_started(uint64_t stop_ns, uint64_t start_ns);

#endif
