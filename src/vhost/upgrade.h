/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Live upgrade, the vhost side (docs/design.md, "Live upgrade by hand-over"): the old process
 * freezes every session at a message boundary with no request in flight and describes it; the
 * new process adopts the same connections, memory, eventfds and ring positions, and starts
 * serving where the old one stopped. The front-end's socket never closes.
 *
 * The description is JSON (format VH_UPGRADE_FORMAT) plus a vector of fds that it names by
 * index. The old process keeps its fds until it exits; the new one gets duplicates over
 * SCM_RIGHTS (src/app/upgrade.c carries them).
 *
 * Rules: control thread only. Freezing and thawing belong to the old process, holding, loading
 * and committing to the new one.
 */
#ifndef VH_VHOST_UPGRADE_H
#define VH_VHOST_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/handover.h"

/* Bumped when the description changes incompatibly; a new process refuses other formats. */
#define VH_UPGRADE_FORMAT 1

/*
 * Old process. Stop accepting front-ends, let every session finish the message it is in the
 * middle of handling (a GET_VRING_BASE, a memory change), stop reading further messages, stop
 * every started queue (every fetched request completes and is published) and wait for closing
 * sessions to go. Then done(arg, 0) runs, with everything frozen. done(arg, rc < 0) instead,
 * after thawing, when that takes longer than @timeout_ms (-ETIMEDOUT) or a session is being
 * live-migrated (-EBUSY: dirty logging is on). Returns 0, or -EALREADY / -EBUSY without
 * calling done.
 */
int vh_vhost_freeze(uint64_t timeout_ms, void (*done)(void *arg, int rc), void *arg);
/* Old process, after a failed upgrade: restart the queues, read messages, accept again. */
void vh_vhost_thaw(void);
/* True while frozen (or freezing). */
bool vh_vhost_frozen(void);
/*
 * Old process, frozen: describe every session. The fds it names are appended to @fds and stay
 * ours. Returns a new reference, or NULL with @err set (-ENOMEM, or -EBUSY: dirty logging).
 */
json_t *vh_vhost_save_sessions(struct vh_fdvec *fds, int *err);

/*
 * New process: while held, controllers (created by the config replay) do not poll their
 * listening sockets. Hold before replaying the config; vh_vhost_commit() releases.
 */
void vh_vhost_hold(void);
/*
 * New process, held: adopt the sessions @state describes, with @fds[i] for index i. Used fds
 * are taken (set to -1 in @fds); the caller closes the rest. Nothing is started and no
 * connection is read. Returns 0, or -errno with a reason in @why (@whylen bytes).
 */
int vh_vhost_load_sessions(const json_t *state, int *fds, unsigned nfds, char *why, size_t whylen);
/*
 * New process: serve. Poll listening sockets and adopted connections, start every queue that
 * was running, and once all of them run, call started(arg, stop_ns, start_ns): when the old
 * process stopped the first queue (0 if none ran) and when all ours run (vh_now_ns() clock:
 * CLOCK_MONOTONIC, comparable across processes).
 */
void vh_vhost_commit(void (*started)(void *arg, uint64_t stop_ns, uint64_t start_ns), void *arg);

/* session.c / socket.c hooks: a session became idle or went away while freezing. */
void vh_upgrade_poke(void);

#endif
