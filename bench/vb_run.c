/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-bench's ring driver and worker threads.
 *
 * The test front-end library builds one descriptor chain per request (general, but ~100 ns of
 * work per I/O); a benchmark must measure the target, so this file drives the split rings the
 * library set up with a much leaner scheme:
 * - Every request slot owns a fixed descriptor chain [header | data x nseg | status] (or the
 *   merged [header+data | status], [header | data+status]), in the ring's table or in its own
 *   indirect table, written once. Submitting is: store the 16-byte header, rewrite the chain if
 *   the direction changed (or always, --rewrite on, as real drivers do), put the head in the
 *   avail ring.
 * - Completions are reaped in a batch (one acquire load of used->idx), the freed slots are
 *   resubmitted at once and published with one release store of avail->idx (or one per request,
 *   --kick request, as SPDK); a kick is sent only when the target asks for one
 *   (VRING_USED_F_NO_NOTIFY clear, or avail_event crossed).
 * - In polling mode the target is asked never to interrupt (VRING_AVAIL_F_NO_INTERRUPT, or
 *   used_event kept out of reach with EVENT_IDX: half a lap behind, rewritten every 16 Ki
 *   completions, or SPDK's size + 1 behind, rewritten at every publish); --used-event track asks
 *   for an interrupt after every batch, as an interrupt-driven driver does.
 * - Timestamps: one TSC read when a poll finds completions (their end time), one before the
 *   resubmissions (their start time), one at the end (busy-time accounting). At QD1 that is a
 *   per-I/O timestamp; at QD128 it is per batch.
 * - Packed rings (--packed) get the same chains, written into the descriptor ring at every
 *   submission (addresses fixed per slot, the first descriptor's flags stored last, release;
 *   with --indirect on, one descriptor per request pointing at the slot's table, as Linux does),
 *   used descriptors reaped in ring order, and event suppression words instead of flags and
 *   event indices: the same work a Linux guest does for each layout.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_blk.h>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "vb.h"
#include "vb_verify.h"

#define MAX_ERROR_LINES 10
#define IDLE_SPINS      256 /* empty polls between clock reads */

enum phase {
	PH_RAMP,
	PH_RUN,
	PH_DRAIN,
	PH_VERIFY,
	PH_DONE,
};

/* ---- clock -------------------------------------------------------------------------------- */

static bool use_tsc;
static uint64_t cal_ticks0, cal_ns0;
static double ns_per_tick = 1.0;

static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t
ticks(void)
{
#if defined(__x86_64__)
	if (__builtin_expect(use_tsc, 1)) {
		return __rdtsc();
	}
#endif
	return mono_ns();
}

uint64_t
vb_ticks(void)
{
	return ticks();
}

/* Invariant TSC: constant rate and running in every C-state, so it is a clock. */
static bool
tsc_invariant(void)
{
#if defined(__x86_64__)
	char line[4096];
	bool c = false, n = false;
	FILE *f = fopen("/proc/cpuinfo", "r");

	if (!f) {
		return false;
	}
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5) == 0) {
			c = strstr(line, " constant_tsc") != NULL;
			n = strstr(line, " nonstop_tsc") != NULL;
			break;
		}
	}
	fclose(f);
	return c && n;
#else
	return false;
#endif
}

void
vb_clock_init(void)
{
	struct timespec pause = {0, 20 * 1000 * 1000};

	use_tsc = tsc_invariant();
	cal_ns0 = mono_ns();
	cal_ticks0 = ticks();
	if (!use_tsc) {
		return;
	}
	nanosleep(&pause, NULL);
	vb_clock_calibrate();
}

void
vb_clock_calibrate(void)
{
	uint64_t ns, t;

	if (!use_tsc) {
		ns_per_tick = 1.0;
		return;
	}
	ns = mono_ns();
	t = ticks();
	if (t > cal_ticks0 && ns > cal_ns0) {
		ns_per_tick = (double)(ns - cal_ns0) / (double)(t - cal_ticks0);
	}
}

uint64_t
vb_ticks_per_sec(void)
{
	return (uint64_t)(1e9 / ns_per_tick);
}

double
vb_ticks_to_ns(uint64_t t)
{
	return (double)t * ns_per_tick;
}

/* ---- ring helpers ------------------------------------------------------------------------- */

static inline uint64_t
rng_next(uint64_t *s)
{
	/* xorshift64*: a few cycles, good enough to pick blocks. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

#define P_AVAIL      (1u << VRING_PACKED_DESC_F_AVAIL)
#define P_USED       (1u << VRING_PACKED_DESC_F_USED)
#define P_EVT(f, ow) (htole32((uint32_t)(f) << 16 | (ow)))

/* A packed position as the event suppression structures name it: index | wrap << 15. */
static inline uint16_t
p_off_wrap(const struct vb_queue *q, uint16_t pos)
{
	return (uint16_t)((pos & q->mask) | ((pos & q->size) ? 0 : 0x8000u));
}

/* The used descriptor at packed position @pos, if the target wrote it (AVAIL == USED == wrap). */
static inline bool
p_used_at(const struct vb_queue *q, uint16_t pos, uint16_t *flags_out)
{
	uint16_t f = le16toh(__atomic_load_n(&q->pring[pos & q->mask].flags, __ATOMIC_ACQUIRE));

	*flags_out = f;
	return (f & (P_AVAIL | P_USED)) == ((pos & q->size) ? 0 : (P_AVAIL | P_USED));
}

/*
 * The driver's resting interrupt request, between sleeps: polling patterns ask for none
 * (VRING_AVAIL_F_NO_INTERRUPT, or used_event out of reach), an interrupt-driven one (TRACK) for
 * one at the next completion.
 */
static void
irq_rest(struct vb_queue *q)
{
	if (q->packed) {
		__atomic_store_n(q->driver_evt, P_EVT(VRING_PACKED_EVENT_FLAG_DISABLE, 0),
		                 __ATOMIC_RELAXED);
		return;
	}
	if (q->event_idx) {
		switch (q->used_event_mode) {
		case VB_UE_LAZY:
			/* used_seen - 1: the target crosses it only after 65535 more completions.
			 */
			q->used_event_val = (uint16_t)(q->used_seen - 1);
			break;
		case VB_UE_AHEAD:
			/* SPDK's value: behind what the target can reach with a full ring in
			 * flight. */
			q->used_event_val = (uint16_t)(q->used_seen - q->size - 1);
			break;
		case VB_UE_TRACK:
			q->used_event_val = q->used_seen;
			break;
		}
		__atomic_store_n(q->used_event, htole16(q->used_event_val), __ATOMIC_RELAXED);
	} else {
		__atomic_store_n(
		        &q->avail->flags,
		        htole16(q->used_event_mode == VB_UE_TRACK ? 0 : VRING_AVAIL_F_NO_INTERRUPT),
		        __ATOMIC_RELAXED);
	}
}

/* Before sleeping (--interrupt): an interrupt at the next completion. */
static void
irq_on(struct vb_queue *q)
{
	if (q->packed) {
		/* With EVENT_IDX: a call when the target uses the descriptor we wait for. */
		__atomic_store_n(
		        q->driver_evt,
		        q->event_idx ? P_EVT(VRING_PACKED_EVENT_FLAG_DESC, p_off_wrap(q, q->p_used))
		                     : P_EVT(VRING_PACKED_EVENT_FLAG_ENABLE, 0),
		        __ATOMIC_RELAXED);
		return;
	}
	if (q->event_idx) {
		q->used_event_val = q->used_seen;
		__atomic_store_n(q->used_event, htole16(q->used_seen), __ATOMIC_RELAXED);
	} else {
		__atomic_store_n(&q->avail->flags, 0, __ATOMIC_RELAXED);
	}
}

void
vb_queue_init_ring(struct vb_queue *q, bool event_idx, const struct vb_ring_pattern *rp)
{
	q->mask = (uint16_t)(q->size - 1);
	q->used_event = &q->avail->ring[q->size];
	q->avail_event = (uint16_t *)&q->used->ring[q->size];
	q->event_idx = event_idx;
	q->used_event_mode = rp->used_event;
	q->kick_per_req = rp->kick_per_req;
	q->rewrite = rp->rewrite;
	q->avail_idx = q->avail_pub = q->used_seen = 0;
	if (q->packed) {
		q->pring = (struct vring_packed_desc *)(void *)q->desc;
		q->driver_evt = (uint32_t *)(void *)q->avail;
		q->device_evt = (const uint32_t *)(const void *)q->used;
		q->p_avail = q->p_pub = q->p_used = 0; /* index 0, both wrap counters 1 */
		irq_rest(q);
		return;
	}
	if (event_idx) {
		q->avail->flags = 0;
	}
	if (event_idx && rp->used_event == VB_UE_AHEAD) {
		/* SPDK starts with 0xffff, then writes used_seen - size - 1 at every flush. */
		q->used_event_val = 0xffff;
		*q->used_event = htole16(0xffff);
		return;
	}
	irq_rest(q);
}

static inline void
put_desc(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	d->addr = htole64(addr);
	d->len = htole32(len);
	d->flags = htole16(flags);
	d->next = htole16(next);
}

void
vb_slot_write_chain(struct vb_queue *q, struct vb_slot *s, bool w)
{
	struct vring_desc *d = s->chain;
	/* next fields index the table the chain lives in: the ring's, or its own indirect one. */
	uint16_t base = q->indirect ? 0 : s->head, n = q->ndesc, m;
	uint16_t in = w ? 0 : VRING_DESC_F_WRITE;

	if (q->merged) {
		if (w) {
			put_desc(&d[0], s->hdr_gpa, 16 + q->bs, VRING_DESC_F_NEXT, base + 1);
			put_desc(&d[1], s->buf_gpa + q->bs, 1, VRING_DESC_F_WRITE, 0);
		} else {
			put_desc(&d[0], s->hdr_gpa, 16, VRING_DESC_F_NEXT, base + 1);
			put_desc(&d[1], s->buf_gpa, q->bs + 1, VRING_DESC_F_WRITE, 0);
		}
	} else {
		/* Like Linux: header (device-readable), data, status (device-writable). */
		put_desc(&d[0], s->hdr_gpa, 16, VRING_DESC_F_NEXT, base + 1);
		for (m = 0; m < q->nseg; m++) {
			uint32_t off = m * q->seg_len;

			put_desc(&d[1 + m], s->buf_gpa + off,
			         q->bs - off < q->seg_len ? q->bs - off : q->seg_len,
			         VRING_DESC_F_NEXT | in, (uint16_t)(base + 2 + m));
		}
		put_desc(&d[n - 1], s->hdr_gpa + 16, 1, VRING_DESC_F_WRITE, 0);
	}
	if (q->indirect) {
		put_desc(&q->desc[s->head], s->chain_gpa, 16u * n, VRING_DESC_F_INDIRECT, 0);
	}
	s->write = w;
}

/*
 * Packed: buffer @i of the slot's chain of @n for direction @w, as Linux lays a virtio-blk
 * request out (header, data, status): its address and length, and VRING_DESC_F_WRITE if the
 * device writes it. The same buffers go into the ring (put_packed()) or into the slot's
 * indirect table (vb_slot_write_packed_table()).
 */
static inline uint16_t
packed_buf(const struct vb_queue *q, const struct vb_slot *s, uint16_t i, uint16_t n, bool w,
           uint64_t *addr, uint32_t *len)
{
	uint32_t off;

	if (i == 0) {
		*addr = s->hdr_gpa;
		*len = 16;
		return 0;
	}
	if (i == n - 1) {
		*addr = s->hdr_gpa + 16;
		*len = 1;
		return VRING_DESC_F_WRITE;
	}
	off = (uint32_t)(i - 1) * q->seg_len;
	*addr = s->buf_gpa + off;
	*len = q->bs - off < q->seg_len ? q->bs - off : q->seg_len;
	return w ? 0 : VRING_DESC_F_WRITE;
}

void
vb_slot_write_packed_table(struct vb_queue *q, struct vb_slot *s, bool w)
{
	/* A packed indirect table (VIRTIO 1.2 §2.8.7): descriptors in order, no ids, no NEXT. */
	struct vring_packed_desc *d = (struct vring_packed_desc *)(void *)s->chain;
	uint16_t n = q->ndesc;

	for (uint16_t i = 0; i < n; i++) {
		uint64_t addr;
		uint32_t len;
		uint16_t f = packed_buf(q, s, i, n, w, &addr, &len);

		d[i] = (struct vring_packed_desc){
		        .addr = htole64(addr), .len = htole32(len), .flags = htole16(f)};
	}
	s->write = w;
}

/* Packed: the lists went out at submission; decide on the kick (Linux's kick_prepare). */
static bool
publish_packed(struct vb_queue *q)
{
	uint16_t old = q->p_pub, cur = q->p_avail, flags;
	uint32_t ev, m = 2u * q->size - 1;

	q->p_pub = cur;
	/* Store-load fence, paired with the target's between arming and re-checking the ring. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	ev = le32toh(__atomic_load_n(q->device_evt, __ATOMIC_RELAXED));
	flags = (uint16_t)(ev >> 16) & 3;
	if (flags == VRING_PACKED_EVENT_FLAG_DESC && q->event_idx) {
		uint16_t e = (uint16_t)((ev & 0x7fff) + ((ev & 0x8000) ? 0 : q->size));

		return ((uint16_t)(cur - e - 1) & m) < ((uint16_t)(cur - old) & m);
	}
	return flags != VRING_PACKED_EVENT_FLAG_DISABLE;
}

/* Publish what was queued since the last call; kick if the target asked for it. */
static void
publish(struct vb_thread *t, struct vb_queue *q)
{
	uint16_t old = q->avail_pub, new_idx = q->avail_idx;
	uint64_t one = 1;
	bool kick;

	if (q->packed) {
		if (q->p_pub == q->p_avail || !publish_packed(q)) {
			return;
		}
		goto kick;
	}
	if (old == new_idx) {
		return;
	}
	/* Release: descriptors, headers and ring entries before the index that covers them. */
	__atomic_store_n(&q->avail->idx, htole16(new_idx), __ATOMIC_RELEASE);
	q->avail_pub = new_idx;
	if (q->event_idx && q->used_event_mode == VB_UE_AHEAD) {
		/* SPDK rewrites it at every flush (virtqueue_req_flush), so it never comes in
		 * reach. */
		q->used_event_val = (uint16_t)(q->used_seen - q->size - 1);
		__atomic_store_n(q->used_event, htole16(q->used_event_val), __ATOMIC_RELAXED);
	}
	/*
	 * Store-load fence, paired with the target's fence between arming (clearing NO_NOTIFY or
	 * writing avail_event) and re-reading avail->idx: either it sees our index or we see its
	 * request for a kick.
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (q->event_idx) {
		uint16_t ev = le16toh(__atomic_load_n(q->avail_event, __ATOMIC_RELAXED));

		kick = (uint16_t)(new_idx - ev - 1) < (uint16_t)(new_idx - old);
	} else {
		kick = !(le16toh(__atomic_load_n(&q->used->flags, __ATOMIC_RELAXED)) &
		         VRING_USED_F_NO_NOTIFY);
	}
	if (!kick) {
		return;
	}
kick:
	if (write(q->kick_fd, &one, sizeof(one)) != sizeof(one) && errno != EAGAIN) {
		t->err = -errno;
	}
	t->st.kicks++;
}

/* ---- workload ---------------------------------------------------------------------------- */

static inline bool
pick_write(const struct vb_job *j, struct vb_queue *q)
{
	if (j->read_thresh >= 100) {
		return false;
	}
	if (j->read_thresh == 0) {
		return true;
	}
	return (((rng_next(&q->rng) >> 32) * 100) >> 32) >= j->read_thresh;
}

static inline uint64_t
pick_any_block(const struct vb_job *j, struct vb_queue *q)
{
	uint64_t b;

	if (j->rand) {
		return (uint64_t)(((unsigned __int128)rng_next(&q->rng) * q->nblocks) >> 64);
	}
	b = q->cursor++;
	if (q->cursor == q->nblocks) {
		q->cursor = 0;
	}
	return b;
}

static uint32_t
next_gen(uint32_t g)
{
	g = (g & ~VB_GEN_BUSY) + 1;
	return (g & VB_GEN_BUSY) ? 1 : g;
}

/*
 * Verify mode: a block has at most one request in flight, so what a read returns is exactly the
 * last completed write. There are >= 2 x iodepth blocks per queue, so a free one is found fast.
 */
static bool
pick_verify_block(const struct vb_job *j, struct vb_queue *q, struct vb_slot *s, bool w)
{
	uint64_t tries, b = 0;

	for (tries = 0; tries < q->nblocks + 64; tries++) {
		b = pick_any_block(j, q);
		if (!(q->gen[b] & VB_GEN_BUSY)) {
			break;
		}
	}
	if (q->gen[b] & VB_GEN_BUSY) {
		return false;
	}
	if (w) {
		s->gen = next_gen(q->gen[b]);
	} else {
		s->gen = q->gen[b];
	}
	q->gen[b] = s->gen | VB_GEN_BUSY;
	s->block = b;
	return true;
}

/* Read-back pass: the next block this run wrote. */
static bool
pick_written_block(struct vb_queue *q, struct vb_slot *s)
{
	while (q->cursor < q->nblocks) {
		uint64_t b = q->cursor++;

		if (q->gen[b] != 0) {
			s->gen = q->gen[b];
			q->gen[b] |= VB_GEN_BUSY;
			s->block = b;
			return true;
		}
	}
	return false;
}

/*
 * Packed: write the slot's chain at the next ring positions, the first descriptor's flags last
 * (release: the list is complete when the target sees it available).
 */
static inline void
put_packed(struct vb_queue *q, struct vb_slot *s, bool w)
{
	uint16_t pos = q->p_avail, n = (uint16_t)(q->nseg + 2), first = 0;

	if (q->indirect) {
		/* One descriptor: the table (written at set-up, or at a change of direction). */
		struct vring_packed_desc *d = &q->pring[pos & q->mask];

		d->addr = htole64(s->chain_gpa);
		d->len = htole32(16u * n);
		d->id = htole16(s->head);
		__atomic_store_n(
		        &d->flags,
		        htole16(((pos & q->size) ? P_USED : P_AVAIL) | VRING_DESC_F_INDIRECT),
		        __ATOMIC_RELEASE);
		q->p_avail = (uint16_t)(pos + 1);
		return;
	}

	for (uint16_t i = 0; i < n; i++) {
		uint16_t p = (uint16_t)(pos + i);
		struct vring_packed_desc *d = &q->pring[p & q->mask];
		uint64_t addr;
		uint32_t len;
		uint16_t f = packed_buf(q, s, i, n, w, &addr, &len);

		f |= (p & q->size) ? P_USED : P_AVAIL;
		if (i < n - 1) {
			f |= VRING_DESC_F_NEXT;
		}
		d->addr = htole64(addr);
		d->len = htole32(len);
		d->id = htole16(s->head);
		if (i == 0) {
			first = f;
		} else {
			d->flags = htole16(f);
		}
	}
	__atomic_store_n(&q->pring[pos & q->mask].flags, htole16(first), __ATOMIC_RELEASE);
	q->p_avail = (uint16_t)(pos + n);
}

/* Queue one request on slot s (not published). Returns false if there is nothing to submit. */
static inline bool
submit(struct vb_thread *t, enum phase ph, struct vb_queue *q, struct vb_slot *s, uint64_t now)
{
	const struct vb_job *j = t->job;
	const bool verify = j->o->verify;
	struct virtio_blk_outhdr h;
	uint64_t lba;
	bool w;

	if (ph == PH_VERIFY) {
		w = false;
		if (!pick_written_block(q, s)) {
			return false;
		}
	} else if (ph == PH_RAMP || ph == PH_RUN) {
		if (q->budget == 0) {
			return false;
		}
		w = pick_write(j, q);
		if (verify) {
			if (!pick_verify_block(j, q, s, w)) {
				return false;
			}
		} else {
			s->block = pick_any_block(j, q);
		}
		if (q->budget != UINT64_MAX) {
			q->budget--;
		}
	} else {
		return false;
	}
	lba = (q->first_block + s->block) * j->sect_per_block;
	h.type = htole32(w ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN);
	h.ioprio = 0;
	h.sector = htole64(lba);
	memcpy(s->hdr, &h, sizeof(h));
	*s->status = 0xff; /* a target that never writes the status is caught */
	if (q->rewrite || w != s->write) {
		if (!q->packed) {
			vb_slot_write_chain(q, s, w);
		} else if (q->indirect) {
			vb_slot_write_packed_table(q, s, w);
		}
	}
	s->write = w;
	if (verify) {
		if (w) {
			vb_verify_fill(s->buf, j->bs, lba, s->gen, j->o->seed);
		} else {
			/* Poison: a read that transfers nothing must not pass on stale data. */
			memset(s->buf, 0xa5, VB_VERIFY_HDR_SIZE);
		}
	}
	s->busy = 1;
	s->t_submit = now;
	q->inflight++;
	if (q->packed) {
		put_packed(q, s, w);
		return true;
	}
	q->avail->ring[q->avail_idx & q->mask] = htole16(s->head);
	q->avail_idx++;
	if (q->kick_per_req) {
		/* SPDK's virtio-blk flushes (publishes, decides on a kick) after every request. */
		publish(t, q);
	}
	return true;
}

static void
report_io_error(struct vb_thread *t, struct vb_queue *q, struct vb_slot *s, uint8_t status)
{
	const struct vb_job *j = t->job;

	t->st.errors++;
	if (t->printed++ < MAX_ERROR_LINES) {
		fprintf(stderr,
		        "vhost-bench: queue %u: %s of sector %" PRIu64 " failed: status %u\n",
		        q->idx, s->write ? "write" : "read",
		        (q->first_block + s->block) * j->sect_per_block, status);
	}
}

static void
verify_done(struct vb_thread *t, struct vb_queue *q, struct vb_slot *s, bool ok)
{
	const struct vb_job *j = t->job;
	uint64_t lba = (q->first_block + s->block) * j->sect_per_block;
	struct vb_verify_hdr got;
	enum vb_verify_result r;

	if (s->write) {
		/* A failed write leaves the block unknown: gen 0 accepts any valid header. */
		q->gen[s->block] = ok ? s->gen : 0;
		q->wrote |= ok;
		return;
	}
	q->gen[s->block] &= ~VB_GEN_BUSY;
	if (!ok) {
		return;
	}
	t->st.verified++;
	r = vb_verify_check(s->buf, j->bs, lba, s->gen, &got);
	if (vb_verify_ok(r)) {
		return;
	}
	t->st.mismatches++;
	if (t->printed++ < MAX_ERROR_LINES) {
		fprintf(stderr,
		        "vhost-bench: verify: queue %u sector %" PRIu64
		        ": %s (expected generation %u%s;"
		        " found lba %" PRIu64 " generation %u)\n",
		        q->idx, lba, vb_verify_str(r), s->gen, s->gen ? "" : " = unknown", got.lba,
		        got.gen);
	}
}

static inline void
complete(struct vb_thread *t, struct vb_queue *q, struct vb_slot *s, uint64_t now, bool rec)
{
	uint8_t status = *s->status;

	s->busy = 0;
	q->inflight--;
	if (__builtin_expect(status != VIRTIO_BLK_S_OK, 0)) {
		report_io_error(t, q, s, status);
	}
	if (t->job->o->verify) {
		verify_done(t, q, s, status == VIRTIO_BLK_S_OK);
	}
	if (rec) {
		vb_hist_add(&t->st.hist, now > s->t_submit ? now - s->t_submit : 0);
		t->st.ios++;
		if (s->write) {
			t->st.writes++;
		} else {
			t->st.reads++;
		}
	}
}

static void
protocol_error(struct vb_thread *t, struct vb_queue *q, const char *why, uint32_t v)
{
	fprintf(stderr, "vhost-bench: queue %u: target protocol error: %s (%u)\n", q->idx, why, v);
	t->err = -EPROTO;
	__atomic_store_n(&t->job->abort, 1, __ATOMIC_RELAXED);
}

/* --thinktime: completed slots wait in a FIFO until their time comes (all waits are equal). */
static void
park(struct vb_thread *t, struct vb_queue *q, unsigned int n, uint64_t now)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		struct vb_slot *s = q->done[i];

		s->t_submit = now + t->job->think_ticks; /* ready time while parked */
		q->park[(q->park_head + q->park_n++) % q->nslots] = s;
	}
}

static void
unpark(struct vb_thread *t, enum phase ph, struct vb_queue *q, uint64_t now)
{
	while (q->park_n && now >= q->park[q->park_head]->t_submit) {
		struct vb_slot *s = q->park[q->park_head];

		q->park_head = (q->park_head + 1) % q->nslots;
		q->park_n--;
		if (!submit(t, ph, q, s, ticks())) {
			break;
		}
	}
	publish(t, q);
}

/* Resubmit (or park) the n slots just reaped, publish, account the busy time from t0. */
static void
refill(struct vb_thread *t, enum phase ph, struct vb_queue *q, unsigned int n, uint64_t t0)
{
	uint64_t t1 = ticks();
	unsigned int i;

	if (t->job->think_ticks) {
		park(t, q, n, t1);
	} else {
		for (i = 0; i < n; i++) {
			if (!submit(t, ph, q, q->done[i], t1)) {
				break;
			}
		}
	}
	publish(t, q);
	t->now = t1;
	t->st.busy_ticks += ticks() - t0;
}

/* Packed: reap the used descriptors in ring order, each skipping its chain's descriptors. */
static unsigned int
service_packed(struct vb_thread *t, enum phase ph, struct vb_queue *q)
{
	unsigned int n = 0;
	uint16_t flags;
	uint64_t t0;

	t->st.polls++;
	if (q->inflight == 0 || !p_used_at(q, q->p_used, &flags)) {
		t->st.empty_polls++;
		return 0;
	}
	t0 = ticks();
	do {
		const struct vring_packed_desc *d = &q->pring[q->p_used & q->mask];
		uint16_t id = le16toh(d->id);
		struct vb_slot *s;

		if (id >= q->size || q->slot_of[id] == 0 || !q->slots[q->slot_of[id] - 1].busy) {
			protocol_error(t, q, "used id is not a request in flight", id);
			return n;
		}
		s = &q->slots[q->slot_of[id] - 1];
		q->p_used = (uint16_t)(q->p_used + (q->indirect ? 1 : q->nseg + 2));
		complete(t, q, s, t0, ph == PH_RUN);
		q->done[n++] = s;
	} while (q->inflight > 0 && p_used_at(q, q->p_used, &flags));
	refill(t, ph, q, n, t0);
	return n;
}

/* Reap q's completions, resubmit, publish. Returns the number reaped. */
static unsigned int
service(struct vb_thread *t, enum phase ph, struct vb_queue *q)
{
	uint16_t used_idx;
	unsigned int n = 0;
	uint64_t t0;

	if (q->packed) {
		return service_packed(t, ph, q);
	}
	used_idx = le16toh(__atomic_load_n(&q->used->idx, __ATOMIC_ACQUIRE));
	t->st.polls++;
	if (used_idx == q->used_seen) {
		t->st.empty_polls++;
		return 0;
	}
	if ((uint16_t)(used_idx - q->used_seen) > q->inflight) {
		protocol_error(t, q, "used index ahead of the requests in flight", used_idx);
		return 0;
	}
	t0 = ticks();
	while (q->used_seen != used_idx) {
		const struct vring_used_elem *e = &q->used->ring[q->used_seen & q->mask];
		uint32_t id = le32toh(e->id);
		struct vb_slot *s;

		q->used_seen++;
		if (id >= q->size || q->slot_of[id] == 0 || !q->slots[q->slot_of[id] - 1].busy) {
			protocol_error(t, q, "used id is not a request in flight", id);
			return n;
		}
		s = &q->slots[q->slot_of[id] - 1];
		complete(t, q, s, t0, ph == PH_RUN);
		q->done[n++] = s;
	}
	if (q->used_event_mode == VB_UE_TRACK ||
	    (q->event_idx && q->used_event_mode == VB_UE_LAZY &&
	     (uint16_t)(q->used_seen - q->used_event_val) >= 0x4000)) {
		/* TRACK: re-arm after every batch; LAZY: keep used_event out of reach. */
		irq_rest(q);
	}
	refill(t, ph, q, n, t0);
	return n;
}

static void
prime(struct vb_thread *t, enum phase ph, uint64_t now)
{
	unsigned int i, k;

	for (i = 0; i < t->nq; i++) {
		struct vb_queue *q = t->qs[i];

		for (k = 0; k < q->nslots; k++) {
			if (!q->slots[k].busy && !submit(t, ph, q, &q->slots[k], now)) {
				break;
			}
		}
		publish(t, q);
	}
}

/* ---- interrupt mode ---------------------------------------------------------------------- */

static uint64_t
drain_call_fd(struct vb_queue *q)
{
	uint64_t v;

	if (read(q->call_fd, &v, sizeof(v)) == sizeof(v)) {
		return v;
	}
	return 0;
}

static void
wait_irq(struct vb_thread *t, uint64_t now, uint64_t deadline)
{
	struct pollfd pfd[VB_MAX_QUEUES];
	unsigned int i;
	bool pending = false;
	int ms;

	for (i = 0; i < t->nq; i++) {
		irq_on(t->qs[i]);
		pfd[i] = (struct pollfd){.fd = t->qs[i]->call_fd, .events = POLLIN};
	}
	/* Pairs with the target's fence between its used->idx store and reading used_event. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	for (i = 0; i < t->nq; i++) {
		struct vb_queue *q = t->qs[i];
		uint16_t f;

		if (q->packed ? q->inflight > 0 && p_used_at(q, q->p_used, &f)
		              : le16toh(__atomic_load_n(&q->used->idx, __ATOMIC_ACQUIRE)) !=
		                        q->used_seen) {
			pending = true;
		}
	}
	if (!pending) {
		ms = deadline > now ? (int)(vb_ticks_to_ns(deadline - now) / 1e6) + 1 : 1;
		ms = ms > 100 ? 100 : ms;
		t->st.waits++;
		if (poll(pfd, t->nq, ms) > 0) {
			for (i = 0; i < t->nq; i++) {
				if (pfd[i].revents & POLLIN) {
					t->st.interrupts += drain_call_fd(t->qs[i]);
				}
			}
		}
	}
	for (i = 0; i < t->nq; i++) {
		irq_rest(t->qs[i]);
	}
}

/* ---- phases ------------------------------------------------------------------------------ */

static double
thread_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
window_start(struct vb_thread *t, uint64_t now)
{
	uint64_t errors = t->st.errors, verified = t->st.verified, mism = t->st.mismatches;
	unsigned int i;

	memset(&t->st, 0, offsetof(struct vb_stats, hist));
	vb_hist_reset(&t->st.hist);
	/* Errors and verify results count over the whole run, not only the window. */
	t->st.errors = errors;
	t->st.verified = verified;
	t->st.mismatches = mism;
	for (i = 0; i < t->nq; i++) {
		drain_call_fd(t->qs[i]);
	}
	t->win_start = now;
	t->cpu_s = thread_cpu_s();
}

static void
window_end(struct vb_thread *t, uint64_t now)
{
	unsigned int i;

	t->win_end = now;
	t->cpu_s = thread_cpu_s() - t->cpu_s;
	/* In polling mode nobody reads the call eventfds: what is there was sent anyway. */
	for (i = 0; i < t->nq; i++) {
		t->st.interrupts += drain_call_fd(t->qs[i]);
	}
}

static unsigned int
inflight(const struct vb_thread *t)
{
	unsigned int i, n = 0;

	for (i = 0; i < t->nq; i++) {
		n += t->qs[i]->inflight;
	}
	return n;
}

static bool
parked(const struct vb_thread *t)
{
	unsigned int i;

	for (i = 0; i < t->nq; i++) {
		if (t->qs[i]->park_n) {
			return true;
		}
	}
	return false;
}

static bool
budget_spent(const struct vb_thread *t)
{
	unsigned int i;

	for (i = 0; i < t->nq; i++) {
		if (t->qs[i]->budget) {
			return false;
		}
	}
	return inflight(t) == 0;
}

static bool
wrote_any(const struct vb_thread *t)
{
	unsigned int i;

	for (i = 0; i < t->nq; i++) {
		if (t->qs[i]->wrote) {
			return true;
		}
	}
	return false;
}

static enum phase
advance(struct vb_thread *t, enum phase ph, uint64_t now)
{
	struct vb_job *j = t->job;
	unsigned int i;

	if (__atomic_load_n(&j->abort, __ATOMIC_RELAXED)) {
		return PH_DONE;
	}
	switch (ph) {
	case PH_RAMP:
		if (now < j->t_ramp_end && !budget_spent(t)) {
			return ph;
		}
		window_start(t, now);
		ph = PH_RUN;
		/* fall through */
	case PH_RUN:
		if (now < j->t_end && !budget_spent(t)) {
			return ph;
		}
		window_end(t, now);
		t->deadline = now + j->drain_ticks;
		ph = PH_DRAIN;
		/* fall through */
	case PH_DRAIN:
	case PH_VERIFY:
		if (inflight(t)) {
			if (now > t->deadline) {
				fprintf(stderr,
				        "vhost-bench: thread %u: %u request(s) still in flight "
				        "after "
				        "%.1f s\n",
				        t->idx, inflight(t), vb_ticks_to_ns(j->drain_ticks) / 1e9);
				t->err = -ETIMEDOUT;
				return PH_DONE;
			}
			return ph;
		}
		if (ph == PH_VERIFY || !j->o->verify || !wrote_any(t)) {
			return PH_DONE;
		}
		for (i = 0; i < t->nq; i++) {
			/* Parked slots are idle: prime() reuses them, so forget the FIFO. */
			t->qs[i]->cursor = 0;
			t->qs[i]->park_n = 0;
			t->qs[i]->park_head = 0;
		}
		t->deadline = now + j->drain_ticks * 10;
		prime(t, PH_VERIFY, now);
		return inflight(t) ? PH_VERIFY : PH_DONE;
	case PH_DONE:
		break;
	}
	return PH_DONE;
}

static uint64_t
next_deadline(const struct vb_thread *t, enum phase ph)
{
	if (ph == PH_RAMP) {
		return t->job->t_ramp_end;
	}
	return ph == PH_RUN ? t->job->t_end : t->deadline;
}

static void
run_loop(struct vb_thread *t)
{
	struct vb_job *j = t->job;
	const bool intr = j->o->interrupt;
	uint64_t now = ticks();
	unsigned int spins = 0, got, i;
	enum phase ph = PH_RAMP;

	ph = advance(t, ph, now);
	prime(t, ph, now);
	while (ph != PH_DONE) {
		got = 0;
		for (i = 0; i < t->nq; i++) {
			struct vb_queue *q = t->qs[i];

			got += service(t, ph, q);
			if (q->park_n) {
				unpark(t, ph, q, ticks());
			}
		}
		if (got) {
			now = t->now;
		} else {
			if (++spins < IDLE_SPINS && !intr) {
				continue;
			}
			spins = 0;
			now = ticks();
			if (intr && inflight(t) && !parked(t)) {
				wait_irq(t, now, next_deadline(t, ph));
				now = ticks();
			}
		}
		if (t->err) {
			__atomic_store_n(&j->abort, 1, __ATOMIC_RELAXED);
			break;
		}
		ph = advance(t, ph, now);
	}
	if (ph != PH_DONE && t->win_end == 0) {
		window_end(t, now);
	}
}

static void *
worker(void *arg)
{
	struct vb_thread *t = arg;
	int go;

	if (t->cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(t->cpu, &set);
		if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0) {
			fprintf(stderr, "vhost-bench: cannot pin thread %u to CPU %d\n", t->idx,
			        t->cpu);
		}
	}
	vb_hist_reset(&t->st.hist);
	/* Pairs with the release store in vb_start(): deadlines are visible once go is. */
	while ((go = __atomic_load_n(&t->job->go, __ATOMIC_ACQUIRE)) == 0) {
		sched_yield();
	}
	if (go == 1) {
		run_loop(t);
	}
	return NULL;
}

int
vb_start(struct vb_job *j)
{
	unsigned int i;
	int rc = 0;

	for (i = 0; i < j->nthreads; i++) {
		j->threads[i].job = j;
		rc = -pthread_create(&j->threads[i].tid, NULL, worker, &j->threads[i]);
		if (rc < 0) {
			break;
		}
		j->started++;
	}
	j->t_ramp_end = ticks() + (uint64_t)(j->o->ramp * (double)vb_ticks_per_sec());
	j->t_end = j->t_ramp_end + (uint64_t)(j->o->runtime * (double)vb_ticks_per_sec());
	j->drain_ticks = (uint64_t)((double)j->o->timeout_ms / 1e3 * (double)vb_ticks_per_sec());
	j->think_ticks = (uint64_t)((double)j->o->thinktime_us / 1e6 * (double)vb_ticks_per_sec());
	/* Release: the deadlines above before go. A failed start sends everyone home. */
	__atomic_store_n(&j->go, rc == 0 ? 1 : 2, __ATOMIC_RELEASE);
	return rc;
}

int
vb_join(struct vb_job *j)
{
	unsigned int i;
	int rc = 0;

	for (i = 0; i < j->started; i++) {
		pthread_join(j->threads[i].tid, NULL);
		if (rc == 0 && j->threads[i].err) {
			rc = j->threads[i].err;
		}
	}
	j->started = 0;
	return rc;
}
