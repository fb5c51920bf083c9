/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The control thread's event loop: one epoll set for listening sockets, vhost-user connections,
 * RPC clients, signals and timers, plus a message queue so reactors can hand results back.
 *
 * Rules:
 * - Everything here runs on the control thread except vh_control_send(), which any thread may
 *   call.
 * - Callbacks may add or remove any source, including their own; a removed source's callback is
 *   never called again, even for events already fetched in the same batch.
 * - Callbacks must not block: no waiting on reactors. Ask with a message, continue in the reply.
 */
#ifndef VH_CORE_EVLOOP_H
#define VH_CORE_EVLOOP_H

#include <stdint.h>
#include <sys/epoll.h>

#include "core/msg.h"

struct vh_evloop;
struct vh_evsource;

typedef void (*vh_ev_cb)(void *arg, uint32_t events);

/* Create the loop and make it the process's control loop. Returns NULL on error. */
struct vh_evloop *vh_evloop_create(void);
void vh_evloop_destroy(struct vh_evloop *loop);

/* The control loop, or NULL before vh_evloop_create(). */
struct vh_evloop *vh_evloop_main(void);

/*
 * Watch @fd for @events (EPOLLIN/EPOLLOUT...). Returns a handle or NULL (errno set).
 * The loop does not own @fd: the caller closes it after vh_evloop_del().
 */
struct vh_evsource *vh_evloop_add(struct vh_evloop *loop, int fd, uint32_t events, vh_ev_cb cb,
                                  void *arg);
/* Change the event mask. Returns 0 or -errno. */
int vh_evloop_mod(struct vh_evsource *src, uint32_t events);
/* Stop watching; the handle is freed. Safe inside any callback. */
void vh_evloop_del(struct vh_evsource *src);

/*
 * One-shot timer: cb(arg, 0) after @ns nanoseconds. Returns a handle to cancel with
 * vh_evloop_del(), or NULL (errno set). The handle is freed after the callback ran.
 */
struct vh_evsource *vh_evloop_timer(struct vh_evloop *loop, uint64_t ns, vh_ev_cb cb, void *arg);

/* Run until vh_evloop_stop(). Returns 0 or -errno on a fatal epoll error. */
int vh_evloop_run(struct vh_evloop *loop);
void vh_evloop_stop(struct vh_evloop *loop);

/* Queue fn(arg) on the control thread. Any thread. Returns 0 or -ENOBUFS. */
int vh_control_send(vh_msg_fn fn, void *arg);
/*
 * Queue node @n on the control thread; cannot fail (struct vh_msg_node). Any thread. Without a
 * control loop (before vh_evloop_create()) it does nothing.
 */
void vh_control_post(struct vh_msg_node *n);

/* True when called on the control thread. */
bool vh_on_control_thread(void);

#endif
