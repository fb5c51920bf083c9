/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Cross-thread messages: the only way work moves between the control thread and the reactors
 * (design rule 3). A message is a (fn, arg) pair pushed on the target's bounded lock-free queue;
 * the target runs fn(arg) on its own thread, in FIFO order per sender.
 *
 * Rules:
 * - vh_msgq_send() may be called from any thread. It never blocks and never allocates.
 * - Only the owning thread calls vh_msgq_drain().
 * - The owner sleeps only after vh_msgq_prepare_sleep() returned true; senders then wake it with
 *   one eventfd write.
 */
#ifndef VH_CORE_MSG_H
#define VH_CORE_MSG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util.h"

typedef void (*vh_msg_fn)(void *arg);

#define VH_MSGQ_SIZE 4096 /* power of two */

/*
 * A message that cannot fail: the caller embeds the node in the object it manages (a queue's
 * start and stop, a session's free), so posting needs no slot and never returns -ENOBUFS. A node
 * is in at most one queue at a time: posting a node that is still queued is a no-op (the pending
 * run will see the latest state), which suits messages that say "look at my state again".
 */
struct vh_msg_node {
	struct vh_msg_node *next; /* intrusive MPSC link (Vyukov) */
	vh_msg_fn fn;
	void *arg;
	int queued; /* 1 from post until the owner takes it; atomic */
};

struct vh_msgq_slot {
	uint64_t seq; /* Vyukov sequence: slot is free for ticket t when seq == t */
	vh_msg_fn fn;
	void *arg;
};

struct vh_msgq {
	uint64_t head VH_ALIGNED(VH_CACHE_LINE); /* next ticket to produce (shared by senders) */
	uint64_t tail VH_ALIGNED(VH_CACHE_LINE); /* next ticket to consume (owner only) */
	int sleeping VH_ALIGNED(VH_CACHE_LINE);  /* owner is (about to be) blocked on efd */
	int efd;                                 /* eventfd, readable when woken */
	/* Intrusive node queue: producers exchange mp_head; only the owner touches mp_tail. */
	struct vh_msg_node *mp_head VH_ALIGNED(VH_CACHE_LINE);
	struct vh_msg_node *mp_tail VH_ALIGNED(VH_CACHE_LINE);
	struct vh_msg_node mp_stub;
	struct vh_msgq_slot slots[VH_MSGQ_SIZE];
};

/* Initialise; creates the eventfd. Returns 0 or -errno. */
int vh_msgq_init(struct vh_msgq *q);
void vh_msgq_fini(struct vh_msgq *q);

/* Queue fn(arg) for the owner. Returns 0, or -ENOBUFS when the queue is full. Any thread. */
int vh_msgq_send(struct vh_msgq *q, vh_msg_fn fn, void *arg);

/* Set up a node to run fn(arg) when posted. */
void vh_msg_node_init(struct vh_msg_node *n, vh_msg_fn fn, void *arg);
/*
 * Queue node @n for the owner; it cannot fail. A node already queued is left where it is.
 * Any thread. The node must stay valid until its fn has run (or the queue is finalised).
 */
void vh_msgq_post(struct vh_msgq *q, struct vh_msg_node *n);

/* Run up to @max queued messages and nodes. Returns how many ran. Owner thread only. */
unsigned vh_msgq_drain(struct vh_msgq *q, unsigned max);

/*
 * Owner is about to block on q->efd. Returns false if messages are already waiting (do not
 * sleep). After waking, call vh_msgq_wake_done(). Owner thread only.
 */
bool vh_msgq_prepare_sleep(struct vh_msgq *q);
void vh_msgq_wake_done(struct vh_msgq *q);

/* Mark the owner as a permanent sleeper (an epoll loop): every send writes the eventfd. */
void vh_msgq_set_always_wake(struct vh_msgq *q);

#endif
