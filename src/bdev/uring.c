/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * io_uring back-end for files and block devices ("uring", SPDK's name). See docs/bdev-file.md.
 *
 * One ring per channel, that is per (bdev, reactor): rings are never shared between threads, so
 * no locking. The request flow (queueing, synchronous and inline operations, deferred freeing)
 * is the shared channel's (struct vh_file_ch, file_ch.c); this file only talks to io_uring:
 * - submit() prepares an SQE (or queues the request when the SQ or our in-flight budget is full)
 *   and schedules one io_uring_submit() for the end of the reactor iteration (vh_reactor_defer):
 *   every request of a poll goes to the kernel in one system call.
 * - poll() reaps the CQ in user space (no system call when it is empty), feeds each result to
 *   the shared state machine (short I/O, retries, fallbacks), then moves queued requests into
 *   the freed slots.
 * - An eventfd registered with the ring wakes the reactor from its sleep; arm() clears it and
 *   then reports pending CQEs, so a completion racing with the sleep re-signals it.
 * The in-flight budget is the CQ size, so the CQ never overflows.
 *
 * Discards on block devices that the kernel cannot take through fallocate fall back to the
 * BLKDISCARD ioctl, which is synchronous: it runs in submit() and its result is delivered at the
 * next poll (the completion contract holds). On tmpfs, reads and writes are copied inline by the
 * shared channel and never reach the ring (file_common.h explains why).
 */
#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bdev/bdev_file.h"
#include "bdev/file_common.h"
#include "core/log.h"

#define URING_ENTRIES    256 /* SQ size; the CQ is twice that */
#define URING_REAP_BATCH 64

struct uring_ch {
	struct vh_file_ch base; /* first: the module callbacks get &base */
	struct io_uring ring;
	bool fixed;            /* fds registered: 0 = f->fd, 1 = f->fd_buffered */
	bool fixed_bufs;       /* this ring has a buffer table; set once, before any I/O */
	unsigned inflight;     /* SQEs prepared and not reaped */
	unsigned max_inflight; /* CQ entries */
	uint64_t fixed_ios;    /* operations on fixed buffers; written by the reactor */
	struct uring_ch *next; /* g_fixed.channels, under g_fixed.lock */
	/*
	 * Regions this ring could not take (bit per g_fixed.regions entry): their requests use
	 * readv/writev here. Written under g_fixed.lock inside the entry's seq window (or before
	 * the channel is used); read by the reactor inside it. Relaxed atomics.
	 */
	uint64_t unusable[VH_URING_REGIONS / 64];
};

static struct uring_ch *
to_uring(const struct vh_file_ch *ch)
{
	return VH_CONTAINER_OF(ch, struct uring_ch, base);
}

/*
 * Fixed buffers: guest memory registered with every ring, so an O_DIRECT request does not pin
 * its pages in the kernel each time (get_user_pages per I/O).
 *
 * Which memory: huge-page (hugetlbfs) regions only. Registering pins every page of the region
 * in every ring: measured here, 34 ms per GiB of resident 4 KiB pages and 270 ms per GiB when the
 * pages were not yet touched, which also makes the whole guest resident at once. Huge-page guest
 * memory is resident already (QEMU preallocates it) and takes 512 pins per GiB.
 *
 * How: a region is cut in chunks of at most 1 GiB (the kernel's limit per buffer), each a slot
 * of every ring's sparse buffer table. The control thread registers the slots in every ring,
 * then publishes the region in g_fixed.regions; reactors look regions up without locks, under a
 * per-entry sequence count. A region is unregistered only after the rings using it stopped
 * (bdev.h), so no request still points into it, and its address range cannot come back (a new
 * mmap) before it is unpublished; a lookup that races with a change just falls back to readv.
 * Channels join and leave the list under a mutex (at creation and destruction, never per I/O).
 *
 * Sharing: slots and entries are process-wide, so each owner (one front-end) holds at most
 * VH_URING_OWNER_SLOTS slots in VH_URING_OWNER_REGIONS entries: one front-end announcing many or
 * huge regions cannot leave the others none. A region that finds no free slots (its owner's
 * share, or the table) waits in its entry and is published when slots are freed, for instance
 * when the front-end's previous memory table goes. A ring that cannot take a region (a page it
 * cannot pin, RLIMIT_MEMLOCK) marks only that region unusable in that ring: its requests use
 * readv/writev there, and every other region and ring keeps its fixed buffers.
 */
unsigned vh_uring_chunk_shift = VH_URING_CHUNK_SHIFT;
_Static_assert(VH_URING_REGIONS % 64 == 0, "uring_ch.unusable holds whole words");
_Static_assert(VH_URING_OWNER_SLOTS <= VH_URING_SLOTS, "a share fits the table");

struct fixed_region {
	uint32_t seq;   /* odd while the entry changes; atomics */
	uint32_t valid; /* published, slots registered; atomics */
	uintptr_t hva;  /* relaxed atomics, checked against seq */
	uint64_t len;
	uint32_t slot0;
	uint32_t shift; /* chunk size of this region */
	uint32_t nslots;
	/* Under the lock only. */
	bool used; /* published, or waiting for slots */
	const void *owner;
};

static struct {
	pthread_mutex_t lock;      /* channels, slot_used, iov, and writers of regions */
	struct uring_ch *channels; /* live channels on O_DIRECT files */
	uint8_t slot_used[VH_URING_SLOTS];
	struct iovec iov[VH_URING_SLOTS]; /* ring_set_region's argument */
	uint32_t nregions_hw;             /* entries below this may be used; atomics */
	struct fixed_region regions[VH_URING_REGIONS];
} g_fixed = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void
region_begin(struct fixed_region *e)
{
	__atomic_store_n(&e->seq, e->seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static void
region_end(struct fixed_region *e)
{
	__atomic_store_n(&e->seq, e->seq + 1, __ATOMIC_RELEASE);
}

/*
 * Register (@on) or clear the slots of @e in one ring. 0 or -errno. The kernel stops at the
 * first chunk it cannot take and keeps the ones before it: those are cleared again, so a ring
 * has all of a region or none of it. Under the lock.
 */
static int
ring_set_region(struct uring_ch *uc, const struct fixed_region *e, bool on)
{
	struct iovec *iov = g_fixed.iov;
	uint64_t chunk = 1ull << e->shift;
	int rc;

	for (uint32_t i = 0; i < e->nslots; i++) {
		uint64_t off = (uint64_t)i << e->shift;

		iov[i].iov_base = on ? (void *)(e->hva + off) : NULL;
		iov[i].iov_len = on ? VH_MIN(e->len - off, chunk) : 0;
	}
	rc = io_uring_register_buffers_update_tag(&uc->ring, e->slot0, iov, NULL, e->nslots);
	if (!on || rc == (int)e->nslots) {
		return rc < 0 ? rc : 0;
	}
	if (rc > 0) {
		memset(iov, 0, (size_t)rc * sizeof(*iov));
		(void)io_uring_register_buffers_update_tag(&uc->ring, e->slot0, iov, NULL,
		                                           (unsigned)rc);
	}
	return rc < 0 ? rc : -EFAULT;
}

static void
set_unusable(struct uring_ch *uc, uint32_t idx, bool on)
{
	uint64_t *w = &uc->unusable[idx / 64];
	uint64_t bit = 1ull << (idx % 64);
	uint64_t v = __atomic_load_n(w, __ATOMIC_RELAXED);

	__atomic_store_n(w, on ? v | bit : v & ~bit, __ATOMIC_RELAXED);
}

/* Put entry @idx into @uc's buffer table, or mark it unusable there. Under the lock. */
static void
ring_add_region(struct uring_ch *uc, uint32_t idx)
{
	const struct fixed_region *e = &g_fixed.regions[idx];
	int rc = ring_set_region(uc, e, true);

	set_unusable(uc, idx, rc < 0);
	if (rc < 0) {
		VH_LOG_RL(VH_LOG_NOTICE, "uring",
		          "'%s': guest memory %p+%" PRIu64 " not registered with io_uring (%s): "
		          "its requests pin their pages instead",
		          uc->base.f->name, (void *)e->hva, e->len, strerror(-rc));
	}
}

/* Slots held by @owner's published regions. Under the lock. */
static uint32_t
owner_slots(const void *owner)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < g_fixed.nregions_hw; i++) {
		const struct fixed_region *e = &g_fixed.regions[i];

		n += e->valid && e->owner == owner ? e->nslots : 0;
	}
	return n;
}

/*
 * Give entry @idx (used, not yet published) its slots and publish it, when its owner's share
 * and the table have room. Under the lock. True if published.
 */
static bool
region_publish(uint32_t idx)
{
	struct fixed_region *e = &g_fixed.regions[idx];
	uint32_t first = 0, run = 0;

	if (e->owner != NULL && owner_slots(e->owner) + e->nslots > VH_URING_OWNER_SLOTS) {
		return false;
	}
	for (uint32_t i = 0; i < VH_URING_SLOTS && run < e->nslots; i++) {
		run = g_fixed.slot_used[i] ? 0 : run + 1;
		first = run == 1 ? i : first;
	}
	if (run < e->nslots) {
		return false;
	}
	region_begin(e);
	__atomic_store_n(&e->slot0, first, __ATOMIC_RELAXED);
	/* Into every ring first: a reactor may use a slot as soon as the entry is valid. */
	for (struct uring_ch *uc = g_fixed.channels; uc != NULL; uc = uc->next) {
		if (uc->fixed_bufs) {
			ring_add_region(uc, idx);
		}
	}
	memset(&g_fixed.slot_used[first], 1, e->nslots);
	__atomic_store_n(&e->valid, 1, __ATOMIC_RELAXED);
	region_end(e);
	return true;
}

/* A free entry for @owner, or NULL when it holds its share already or the table is full. */
static struct fixed_region *
region_alloc(const void *owner, uint32_t *idx)
{
	struct fixed_region *e = NULL;
	uint32_t mine = 0;

	for (uint32_t i = 0; i < VH_URING_REGIONS; i++) {
		const struct fixed_region *r = &g_fixed.regions[i];

		mine += r->used && r->owner == owner;
		if (!r->used && e == NULL) {
			e = &g_fixed.regions[i];
			*idx = i;
		}
	}
	return owner != NULL && mine >= VH_URING_OWNER_REGIONS ? NULL : e;
}

static int
uring_mem_reg(const void *owner, void *vaddr, size_t len, unsigned flags)
{
	uint32_t shift = vh_uring_chunk_shift;
	uint64_t n = ((uint64_t)len + (1ull << shift) - 1) >> shift;
	uint32_t max = owner != NULL ? VH_URING_OWNER_SLOTS : VH_URING_SLOTS;
	struct fixed_region *e;
	uint32_t idx = 0;
	bool published;

	VH_DEBUG("uring", "guest memory %p+%zu%s", vaddr, len,
	         flags & VH_BDEV_MEM_HUGE ? ", huge pages: fixed buffers" : "");
	if (!(flags & VH_BDEV_MEM_HUGE) || len == 0) {
		return 0;
	}
	pthread_mutex_lock(&g_fixed.lock);
	e = n <= max ? region_alloc(owner, &idx) : NULL;
	if (e == NULL) {
		pthread_mutex_unlock(&g_fixed.lock);
		VH_NOTICE("uring",
		          "guest memory %p+%zu: over its front-end's share of io_uring "
		          "buffer slots",
		          vaddr, len);
		return -ENOSPC;
	}
	region_begin(e);
	__atomic_store_n(&e->hva, (uintptr_t)vaddr, __ATOMIC_RELAXED);
	__atomic_store_n(&e->len, (uint64_t)len, __ATOMIC_RELAXED);
	__atomic_store_n(&e->shift, shift, __ATOMIC_RELAXED);
	e->nslots = (uint32_t)n;
	e->used = true;
	e->owner = owner;
	region_end(e);
	if (idx + 1 > g_fixed.nregions_hw) {
		__atomic_store_n(&g_fixed.nregions_hw, idx + 1, __ATOMIC_RELEASE);
	}
	published = region_publish(idx);
	pthread_mutex_unlock(&g_fixed.lock);
	if (!published) {
		VH_NOTICE("uring", "guest memory %p+%zu waits for free io_uring buffer slots",
		          vaddr, len);
		return -ENOSPC;
	}
	return 0;
}

static int
uring_mem_unreg(void *vaddr, size_t len)
{
	pthread_mutex_lock(&g_fixed.lock);
	for (uint32_t i = 0; i < g_fixed.nregions_hw; i++) {
		struct fixed_region *e = &g_fixed.regions[i];
		bool was_valid = e->valid;

		if (!e->used || e->hva != (uintptr_t)vaddr || e->len != len) {
			continue;
		}
		region_begin(e);
		__atomic_store_n(&e->valid, 0, __ATOMIC_RELAXED);
		region_end(e);
		/* Clearing a slot drops our page pins; in-flight users (none) would keep theirs. */
		for (struct uring_ch *uc = g_fixed.channels; uc != NULL; uc = uc->next) {
			if (was_valid && uc->fixed_bufs &&
			    !(__atomic_load_n(&uc->unusable[i / 64], __ATOMIC_RELAXED) &
			      (1ull << (i % 64)))) {
				(void)ring_set_region(uc, e, false);
			}
			set_unusable(uc, i, false);
		}
		if (was_valid) {
			memset(&g_fixed.slot_used[e->slot0], 0, e->nslots);
		}
		e->used = false;
		e->owner = NULL;
		/* Regions that waited for slots may have them now. */
		for (uint32_t j = 0; was_valid && j < g_fixed.nregions_hw; j++) {
			if (g_fixed.regions[j].used && !g_fixed.regions[j].valid &&
			    region_publish(j)) {
				VH_INFO("uring",
				        "guest memory %p+%" PRIu64 " now uses fixed buffers",
				        (void *)g_fixed.regions[j].hva, g_fixed.regions[j].len);
			}
		}
		break;
	}
	pthread_mutex_unlock(&g_fixed.lock);
	return 0;
}

/* The slot holding [@base, @base + @len) whole in @uc's table, or -1. Reactor, lock-free. */
static int
fixed_slot(const struct uring_ch *uc, const void *base, size_t len)
{
	uint32_t hw = __atomic_load_n(&g_fixed.nregions_hw, __ATOMIC_ACQUIRE);
	uintptr_t a = (uintptr_t)base;

	for (uint32_t i = 0; i < hw; i++) {
		struct fixed_region *e = &g_fixed.regions[i];
		uint32_t s1 = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
		uintptr_t hva;
		uint64_t elen, off, unusable;
		uint32_t slot0, shift;

		if ((s1 & 1) || !__atomic_load_n(&e->valid, __ATOMIC_RELAXED)) {
			continue;
		}
		hva = __atomic_load_n(&e->hva, __ATOMIC_RELAXED);
		elen = __atomic_load_n(&e->len, __ATOMIC_RELAXED);
		slot0 = __atomic_load_n(&e->slot0, __ATOMIC_RELAXED);
		shift = __atomic_load_n(&e->shift, __ATOMIC_RELAXED);
		unusable = __atomic_load_n(&uc->unusable[i / 64], __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&e->seq, __ATOMIC_RELAXED) != s1) {
			continue;
		}
		off = a - hva;
		if (a < hva || off >= elen || len > elen - off) {
			continue;
		}
		if ((unusable & (1ull << (i % 64))) ||
		    (off >> shift) != ((off + len - 1) >> shift)) {
			return -1; /* not in this ring, or straddles two chunks: readv/writev */
		}
		return (int)(slot0 + (off >> shift));
	}
	return -1;
}

/* A new channel on an O_DIRECT file: a buffer table with every published region. Its reactor. */
static void
channel_join_fixed(struct uring_ch *uc)
{
	int rc;

	if (!uc->base.f->direct) {
		return; /* buffered I/O copies through the page cache: nothing is pinned */
	}
	rc = io_uring_register_buffers_sparse(&uc->ring, VH_URING_SLOTS);
	if (rc < 0) {
		VH_DEBUG("uring", "'%s': no sparse buffer table: %s", uc->base.f->name,
		         strerror(-rc));
		return;
	}
	pthread_mutex_lock(&g_fixed.lock);
	uc->fixed_bufs = true;
	for (uint32_t i = 0; i < g_fixed.nregions_hw; i++) {
		if (g_fixed.regions[i].valid) {
			ring_add_region(uc, i);
		}
	}
	uc->next = g_fixed.channels;
	g_fixed.channels = uc;
	pthread_mutex_unlock(&g_fixed.lock);
}

static void
channel_leave_fixed(struct uring_ch *uc)
{
	pthread_mutex_lock(&g_fixed.lock);
	for (struct uring_ch **pp = &g_fixed.channels; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == uc) {
			*pp = uc->next;
			uc->base.f->fixed_ios_closed += uc->fixed_ios;
			break;
		}
	}
	pthread_mutex_unlock(&g_fixed.lock);
}

/* Operations on fixed buffers so far on @f, by live channels and gone ones. Control thread. */
static uint64_t
fixed_ios_of(const struct vh_file *f)
{
	uint64_t n;

	pthread_mutex_lock(&g_fixed.lock);
	n = f->fixed_ios_closed;
	for (struct uring_ch *uc = g_fixed.channels; uc != NULL; uc = uc->next) {
		if (uc->base.f == f) {
			n += __atomic_load_n(&uc->fixed_ios, __ATOMIC_RELAXED);
		}
	}
	pthread_mutex_unlock(&g_fixed.lock);
	return n;
}

static void
prep_sqe(struct uring_ch *uc, struct io_uring_sqe *sqe, const struct vh_file_op *op)
{
	int fd = uc->fixed ? (op->buffered ? 1 : 0) : op->fd;
	const struct iovec *v = op->iov; /* the one buffer of a fixed operation */
	int slot = -1;

	/* One O_DIRECT buffer inside registered guest memory: READ_FIXED / WRITE_FIXED. */
	if ((op->kind == VH_FOP_READV || op->kind == VH_FOP_WRITEV) && op->iovcnt == 1 &&
	    !op->buffered && uc->fixed_bufs) {
		slot = fixed_slot(uc, v->iov_base, v->iov_len);
		if (slot >= 0) {
			__atomic_store_n(&uc->fixed_ios, uc->fixed_ios + 1, __ATOMIC_RELAXED);
		}
	}
	switch (op->kind) {
	case VH_FOP_READV:
		if (slot >= 0) {
			io_uring_prep_read_fixed(sqe, fd, v->iov_base, (unsigned)v->iov_len,
			                         op->off, slot);
		} else {
			io_uring_prep_readv(sqe, fd, op->iov, (unsigned)op->iovcnt, op->off);
		}
		break;
	case VH_FOP_WRITEV:
		if (slot >= 0) {
			io_uring_prep_write_fixed(sqe, fd, v->iov_base, (unsigned)v->iov_len,
			                          op->off, slot);
		} else {
			io_uring_prep_writev(sqe, fd, op->iov, (unsigned)op->iovcnt, op->off);
		}
		if (op->dsync) {
			/* Durable at completion: the kernel writes through (REQ_FUA) or syncs. */
			sqe->rw_flags |= RWF_DSYNC;
		}
		if (sqe->rw_flags & RWF_DSYNC) {
			vh_file_count_dsync(uc->base.f); /* what the SQE carries (bdev_get_bdevs) */
		}
		break;
	case VH_FOP_FSYNC:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	case VH_FOP_FALLOC:
		io_uring_prep_fallocate(sqe, fd, op->mode, (off_t)op->off, (off_t)op->len);
		break;
	default:
		io_uring_prep_nop(sqe);
		return;
	}
	if (uc->fixed) {
		sqe->flags |= IOSQE_FIXED_FILE;
	}
}

static bool
uring_issue(struct vh_file_ch *ch, struct vh_bdev_io *io, const struct vh_file_op *op)
{
	struct uring_ch *uc = to_uring(ch);
	struct io_uring_sqe *sqe;

	if (uc->inflight >= uc->max_inflight) {
		return false;
	}
	sqe = io_uring_get_sqe(&uc->ring);
	if (sqe == NULL) {
		return false;
	}
	prep_sqe(uc, sqe, op);
	io_uring_sqe_set_data(sqe, io);
	uc->inflight++;
	return true;
}

static void
uring_flush(struct vh_file_ch *ch)
{
	struct uring_ch *uc = to_uring(ch);
	int rc;

	if (io_uring_sq_ready(&uc->ring) == 0) {
		return;
	}
	rc = io_uring_submit(&uc->ring);
	/*
	 * On failure the SQEs stay in the ring and poll() schedules another attempt: -EAGAIN and
	 * -EBUSY are kernel back-pressure that the next reaping relieves.
	 */
	if (rc < 0 && rc != -EAGAIN && rc != -EBUSY && rc != -EINTR) {
		VH_LOG_RL(VH_LOG_ERROR, "uring", "'%s': io_uring_submit: %s", ch->f->name,
		          strerror(-rc));
	}
}

static int
uring_reap(struct vh_file_ch *ch)
{
	struct uring_ch *uc = to_uring(ch);
	struct io_uring_cqe *cqes[URING_REAP_BATCH];
	struct {
		struct vh_bdev_io *io;
		int res;
	} done[URING_REAP_BATCH];
	unsigned n, total = 0;

	do {
		n = io_uring_peek_batch_cqe(&uc->ring, cqes, URING_REAP_BATCH);
		/* Copy out and release the CQ slots before callbacks submit more work. */
		for (unsigned i = 0; i < n; i++) {
			done[i].io = io_uring_cqe_get_data(cqes[i]);
			done[i].res = cqes[i]->res;
		}
		io_uring_cq_advance(&uc->ring, n);
		uc->inflight -= n;
		for (unsigned i = 0; i < n && !ch->dead; i++) {
			vh_file_ch_complete(ch, done[i].io, done[i].res);
		}
		total += n;
	} while (n == URING_REAP_BATCH && !ch->dead);
	return (int)total;
}

static bool
uring_unsent(const struct vh_file_ch *ch)
{
	return io_uring_sq_ready(&to_uring(ch)->ring) > 0;
}

static bool
uring_ready(const struct vh_file_ch *ch)
{
	return io_uring_cq_ready(&to_uring(ch)->ring) > 0;
}

static bool
uring_room(const struct vh_file_ch *ch)
{
	const struct uring_ch *uc = to_uring(ch);

	return uc->inflight < uc->max_inflight;
}

static void
uring_free(struct vh_file_ch *ch)
{
	struct uring_ch *uc = to_uring(ch);

	channel_leave_fixed(uc);
	io_uring_queue_exit(&uc->ring);
	close(ch->efd);
	free(uc);
}

static const struct vh_file_engine uring_engine = {
        .name = "uring",
        .async_kinds = (1u << VH_FOP_READV) | (1u << VH_FOP_WRITEV) | (1u << VH_FOP_FSYNC) |
                       (1u << VH_FOP_FALLOC),
        .issue = uring_issue,
        .reap = uring_reap,
        .flush = uring_flush,
        .unsent = uring_unsent,
        .ready = uring_ready,
        .room = uring_room,
        .free = uring_free,
};

static void *
uring_channel_create(struct vh_bdev *b)
{
	struct vh_file *f = b->ctx;
	struct uring_ch *uc;
	int fds[2];
	int rc;

	uc = calloc(1, sizeof(*uc));
	if (uc == NULL) {
		return NULL;
	}
	vh_file_ch_init(&uc->base, &uring_engine, f);
	rc = io_uring_queue_init(URING_ENTRIES, &uc->ring, 0);
	if (rc < 0) {
		VH_ERR("uring", "'%s': io_uring_queue_init: %s", f->name, strerror(-rc));
		goto out_free;
	}
	uc->max_inflight = uc->ring.cq.ring_entries;
	uc->base.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (uc->base.efd < 0) {
		VH_ERR("uring", "'%s': eventfd: %s", f->name, strerror(errno));
		goto out_exit;
	}
	rc = io_uring_register_eventfd(&uc->ring, uc->base.efd);
	if (rc < 0) {
		VH_ERR("uring", "'%s': io_uring_register_eventfd: %s", f->name, strerror(-rc));
		goto out_close;
	}
	/* Registered files save an fget/fput per request; without them we still work. */
	fds[0] = f->fd;
	fds[1] = f->fd_buffered;
	rc = io_uring_register_files(&uc->ring, fds, 2);
	uc->fixed = rc == 0;
	if (rc < 0) {
		VH_DEBUG("uring", "'%s': io_uring_register_files: %s", f->name, strerror(-rc));
	}
	channel_join_fixed(uc);
	return &uc->base;

out_close:
	close(uc->base.efd);
out_exit:
	io_uring_queue_exit(&uc->ring);
out_free:
	free(uc);
	return NULL;
}

static const struct vh_bdev_global_hooks g_uring_hooks = {
        .mem_reg_owned = uring_mem_reg,
        .mem_unreg = uring_mem_unreg,
};

static void
uring_info_json(struct vh_bdev *b, json_t *driver_specific)
{
	json_t *o;

	vh_file_bdev_info_json(b, driver_specific);
	o = json_object_get(driver_specific, b->module->name);
	if (o != NULL) {
		json_object_set_new(o, "fixed_buffer_ios",
		                    json_integer((json_int_t)fixed_ios_of(b->ctx)));
	}
}

static const struct vh_bdev_module uring_module = {
        .name = "uring",
        .channel_create = uring_channel_create,
        .channel_destroy = vh_file_ch_destroy,
        .submit = vh_file_ch_submit,
        .poll = vh_file_ch_poll,
        .arm = vh_file_ch_arm,
        .wake_fd = vh_file_ch_wake_fd,
        .destruct = vh_file_bdev_destruct,
        .info_json = uring_info_json,
        .config_json = vh_file_bdev_config_json,
};

/*
 * Whether this process can use io_uring: the sysctl (Linux 6.6+) and a real ring, since
 * seccomp filters and old kernels say no only when asked (ENOSYS, EPERM).
 */
static bool
uring_available(const char **why)
{
	struct io_uring r;
	int rc;

	if (vh_file_uring_disabled()) {
		*why = "kernel.io_uring_disabled is set";
		return false;
	}
	rc = io_uring_queue_init(2, &r, 0);
	if (rc == -ENOSYS || rc == -EPERM || rc == -EACCES) {
		*why = strerror(-rc);
		return false;
	}
	if (rc == 0) {
		io_uring_queue_exit(&r);
	}
	return true;
}

int
vh_bdev_uring_create_ex(const char *name, const char *filename, const struct vh_bdev_file_opts *o,
                        char *err, size_t errlen)
{
	const char *why = NULL;

	if (!uring_available(&why)) {
		VH_NOTICE("uring", "io_uring unavailable (%s): bdev '%s' uses the aio engine", why,
		          name != NULL ? name : "?");
		return vh_file_aio_create("uring", name, filename, o, err, errlen);
	}
	/* From the first uring bdev on, huge-page guest memory becomes fixed buffers. */
	if (vh_bdev_global_hooks_register(&g_uring_hooks) < 0) {
		VH_NOTICE("uring", "no room for the fixed-buffer hooks: requests pin their pages");
	}
	return vh_file_bdev_create(&uring_module, "uring", name, filename, o, err, errlen);
}

int
vh_bdev_uring_create(const char *name, const char *filename, uint32_t block_size)
{
	struct vh_bdev_file_opts o = {.block_size = block_size, .inline_io = true};
	char err[256];
	int rc = vh_bdev_uring_create_ex(name, filename, &o, err, sizeof(err));

	if (rc < 0) {
		VH_ERR("uring", "cannot create bdev '%s': %s", name != NULL ? name : "?", err);
	}
	return rc;
}

int
vh_bdev_uring_delete(const char *name)
{
	return vh_bdev_delete(name, "uring");
}
