/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/msg.h"

int
vh_msgq_init(struct vh_msgq *q)
{
	memset(q, 0, sizeof(*q));
	for (uint64_t i = 0; i < VH_MSGQ_SIZE; i++) {
		q->slots[i].seq = i;
	}
	q->mp_head = &q->mp_stub;
	q->mp_tail = &q->mp_stub;
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0) {
		return -errno;
	}
	return 0;
}

void
vh_msgq_fini(struct vh_msgq *q)
{
	if (q->efd >= 0) {
		close(q->efd);
		q->efd = -1;
	}
}

static void
wake(struct vh_msgq *q)
{
	uint64_t one = 1;

	if (write(q->efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is saturated, so the owner is awake anyway. */
	}
}

int
vh_msgq_send(struct vh_msgq *q, vh_msg_fn fn, void *arg)
{
	uint64_t t = __atomic_load_n(&q->head, __ATOMIC_RELAXED);
	struct vh_msgq_slot *s;

	for (;;) {
		s = &q->slots[t & (VH_MSGQ_SIZE - 1)];
		/* Pairs with the release store of seq in vh_msgq_drain(): slot content is free. */
		uint64_t seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
		int64_t diff = (int64_t)(seq - t);

		if (diff == 0) {
			if (__atomic_compare_exchange_n(&q->head, &t, t + 1, true, __ATOMIC_RELAXED,
			                                __ATOMIC_RELAXED)) {
				break;
			}
		} else if (diff < 0) {
			return -ENOBUFS;
		} else {
			t = __atomic_load_n(&q->head, __ATOMIC_RELAXED);
		}
	}
	s->fn = fn;
	s->arg = arg;
	/* Pairs with the acquire load in vh_msgq_drain(): fn/arg are visible before the slot. */
	__atomic_store_n(&s->seq, t + 1, __ATOMIC_RELEASE);
	/*
	 * Dekker pair with vh_msgq_prepare_sleep(): either the owner sees our slot after setting
	 * sleeping, or we see sleeping and write the eventfd.
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&q->sleeping, __ATOMIC_RELAXED)) {
		wake(q);
	}
	return 0;
}

void
vh_msg_node_init(struct vh_msg_node *n, vh_msg_fn fn, void *arg)
{
	n->next = NULL;
	n->fn = fn;
	n->arg = arg;
	n->queued = 0;
}

/* Vyukov's intrusive MPSC queue: wait-free push. */
static void
mp_push(struct vh_msgq *q, struct vh_msg_node *n)
{
	struct vh_msg_node *prev;

	__atomic_store_n(&n->next, NULL, __ATOMIC_RELAXED);
	/* acq_rel: orders our writes to *n before publishing it, pairs with other pushers. */
	prev = __atomic_exchange_n(&q->mp_head, n, __ATOMIC_ACQ_REL);
	/* Pairs with the acquire load of ->next in mp_pop(): the link makes n visible. */
	__atomic_store_n(&prev->next, n, __ATOMIC_RELEASE);
}

/*
 * Owner only. Returns the oldest node, or NULL if none is ready. A producer between its exchange
 * and its link store makes the queue look empty for a moment; it wakes us after linking.
 */
static struct vh_msg_node *
mp_pop(struct vh_msgq *q)
{
	struct vh_msg_node *tail = q->mp_tail;
	struct vh_msg_node *next = __atomic_load_n(&tail->next, __ATOMIC_ACQUIRE);

	if (tail == &q->mp_stub) {
		if (next == NULL) {
			return NULL;
		}
		q->mp_tail = next;
		tail = next;
		next = __atomic_load_n(&next->next, __ATOMIC_ACQUIRE);
	}
	if (next != NULL) {
		q->mp_tail = next;
		return tail;
	}
	if (tail != __atomic_load_n(&q->mp_head, __ATOMIC_ACQUIRE)) {
		return NULL; /* a push is half-way: it will be complete on our next look */
	}
	mp_push(q, &q->mp_stub);
	next = __atomic_load_n(&tail->next, __ATOMIC_ACQUIRE);
	if (next != NULL) {
		q->mp_tail = next;
		return tail;
	}
	return NULL;
}

/* Owner only. The tail is the stub or the oldest node not yet taken. */
static bool
mp_pending(struct vh_msgq *q)
{
	return q->mp_tail != &q->mp_stub ||
	       __atomic_load_n(&q->mp_stub.next, __ATOMIC_ACQUIRE) != NULL ||
	       __atomic_load_n(&q->mp_head, __ATOMIC_ACQUIRE) != &q->mp_stub;
}

void
vh_msgq_post(struct vh_msgq *q, struct vh_msg_node *n)
{
	/* Already queued: its pending run will see the state the caller just changed. */
	if (__atomic_exchange_n(&n->queued, 1, __ATOMIC_ACQ_REL) != 0) {
		return;
	}
	mp_push(q, n);
	/* Dekker pair with vh_msgq_prepare_sleep(), as in vh_msgq_send(). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&q->sleeping, __ATOMIC_RELAXED)) {
		wake(q);
	}
}

static bool
has_pending(struct vh_msgq *q)
{
	struct vh_msgq_slot *s = &q->slots[q->tail & (VH_MSGQ_SIZE - 1)];

	return __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE) == q->tail + 1 || mp_pending(q);
}

unsigned
vh_msgq_drain(struct vh_msgq *q, unsigned max)
{
	unsigned n = 0;

	while (n < max) {
		struct vh_msgq_slot *s = &q->slots[q->tail & (VH_MSGQ_SIZE - 1)];
		/* Pairs with the release store in vh_msgq_send(). */
		if (__atomic_load_n(&s->seq, __ATOMIC_ACQUIRE) != q->tail + 1) {
			break;
		}
		vh_msg_fn fn = s->fn;
		void *arg = s->arg;

		/* Pairs with the acquire load in vh_msgq_send(): we are done with the slot. */
		__atomic_store_n(&s->seq, q->tail + VH_MSGQ_SIZE, __ATOMIC_RELEASE);
		q->tail++;
		fn(arg);
		n++;
	}
	while (n < max) {
		struct vh_msg_node *node = mp_pop(q);

		if (node == NULL) {
			break;
		}
		/*
		 * Cleared before the run, so fn may post its node again. An exchange, not a store:
		 * a post that found the node still queued wrote queued before us, and our acquire
		 * makes what that poster changed visible to fn.
		 */
		__atomic_exchange_n(&node->queued, 0, __ATOMIC_ACQ_REL);
		node->fn(node->arg);
		n++;
	}
	return n;
}

bool
vh_msgq_prepare_sleep(struct vh_msgq *q)
{
	uint64_t v;

	if (read(q->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing to clear. */
	}
	__atomic_store_n(&q->sleeping, 1, __ATOMIC_RELAXED);
	/* Dekker pair with vh_msgq_send(): see the comment there. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (has_pending(q)) {
		__atomic_store_n(&q->sleeping, 0, __ATOMIC_RELAXED);
		return false;
	}
	return true;
}

void
vh_msgq_wake_done(struct vh_msgq *q)
{
	__atomic_store_n(&q->sleeping, 0, __ATOMIC_RELAXED);
}

void
vh_msgq_set_always_wake(struct vh_msgq *q)
{
	__atomic_store_n(&q->sleeping, 1, __ATOMIC_RELAXED);
}
