/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Shared by the ring fuzz targets (fuzz_vring.c: split rings, fuzz_vring_packed.c: packed rings):
 * the guest memory layout, and in-file doubles of the reactor, the control loop, the bdev layer
 * and the session, so the real vring.c / vring_packed.c / blk.c / mem.c run single-threaded and
 * deterministic (the harness runs messages, completions, the poller and deferred work in reactor
 * order). The fake bdev touches every byte of every iovec it is given, so a buffer reaching
 * outside guest memory is an ASan report. blk.c's calls to vh_vq_push_used()/vh_vq_drop() go
 * through the fuzz_hook_* accounting below (build.sh), and g_ops wraps the device's handle().
 *
 * Guest memory: three regions, each in its own host mapping surrounded by ASan-poisoned guard
 * pages: A [0x10000, 0x20000) and B [0x20000, 0x30000) are GPA-adjacent (a buffer may
 * straddle), C [0x100000, 0x101000) sits after a hole. The rings use A+0, A+0x1000 and
 * A+0x2000; the input's free-form blob starts at A+0x3000 (then B, then C).
 *
 * Only one harness includes this file per fuzz target.
 */
#ifndef VH_FUZZ_RING_COMMON_H
#define VH_FUZZ_RING_COMMON_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <sanitizer/asan_interface.h>

#include "vhost/blk.h"
#include "vhost/device.h"
#include "vhost/session.h"

/* The harnesses use what they need of these. */
#define FUZZ_UNUSED __attribute__((unused))

#define A_GPA  0x10000ull
#define B_GPA  0x20000ull
#define C_GPA  0x100000ull
#define A_SIZE 0x10000ull
#define B_SIZE 0x10000ull
#define C_SIZE 0x1000ull
#define A_QVA  0x7f0000000000ull
#define B_QVA  0x7f0000100000ull
#define C_QVA  0x7f0000200000ull
#define GUARD  0x1000ull

#define DESC_OFF  0x0
#define AVAIL_OFF 0x1000
#define USED_OFF  0x2000
#define BLOB_OFF  0x3000

#define DISK_SIZE (1024ull * 1024)
#define MAX_ITERS 2000

#define F_INDIRECT  0x01
#define F_EVENT_IDX 0x02
#define F_READONLY  0x04
#define F_EAGAIN    0x08
#define F_EIO       0x10
#define F_DISCARD   0x20
#define F_DISABLED  0x40

/* ---- doubles: reactor, control loop, bdev, session ---- */

struct vh_reactor {
	int unused;
};
struct vh_poller {
	const struct vh_poller_ops *ops;
	void *arg;
};
struct vh_bdev_channel {
	int unused;
};

#define QMAX 1024

struct msg {
	vh_msg_fn fn;
	void *arg;
};

static struct vh_reactor g_reactor;
static struct vh_poller g_poller_obj;
static struct vh_poller *g_poller;
static struct vh_bdev_channel g_ch;
static int g_channels;
static struct msg g_rmsgs[QMAX], g_cmsgs[QMAX];
static unsigned g_nr, g_nc;
static struct vh_deferred *g_deferred;
static struct vh_bdev_io *g_done[QMAX];
static unsigned g_ndone;
static uint8_t g_flags;
static bool g_broken_reported;
static volatile uint8_t g_sink;

int
vh_reactor_send(struct vh_reactor *r, vh_msg_fn fn, void *arg)
{
	if (g_nr == QMAX) {
		return -ENOBUFS;
	}
	g_rmsgs[g_nr++] = (struct msg){fn, arg};
	return 0;
}

struct vh_reactor *
vh_reactor_self(void)
{
	return NULL; /* the harness runs everything on one thread */
}

unsigned
vh_reactor_index(const struct vh_reactor *r)
{
	return 0;
}

int
vh_control_send(vh_msg_fn fn, void *arg)
{
	if (g_nc == QMAX) {
		return -ENOBUFS;
	}
	g_cmsgs[g_nc++] = (struct msg){fn, arg};
	return 0;
}

/* Nodes: coalesced like the real queue (a node still queued is not queued again). */
static FUZZ_UNUSED void
node_run(void *arg)
{
	struct vh_msg_node *n = arg;

	n->queued = 0;
	n->fn(n->arg);
}

static FUZZ_UNUSED void
post(struct msg *q, unsigned *nq, struct vh_msg_node *n)
{
	if (n->queued) {
		return;
	}
	if (*nq == QMAX) {
		abort(); /* more distinct nodes than the harness ever has */
	}
	n->queued = 1;
	q[(*nq)++] = (struct msg){node_run, n};
}

void
vh_reactor_post(struct vh_reactor *r, struct vh_msg_node *n)
{
	post(g_rmsgs, &g_nr, n);
}

void
vh_control_post(struct vh_msg_node *n)
{
	post(g_cmsgs, &g_nc, n);
}

void
vh_msg_node_init(struct vh_msg_node *n, vh_msg_fn fn, void *arg)
{
	memset(n, 0, sizeof(*n));
	n->fn = fn;
	n->arg = arg;
}

int
vh_peer_eventfd_signal(int fd)
{
	return 0; /* the harness has no call fd */
}

struct vh_poller *
vh_poller_register(const struct vh_poller_ops *ops, void *arg, int wake_fd, const char *name)
{
	if (g_poller != NULL) {
		abort(); /* one queue per run: a second registration is a double start */
	}
	g_poller_obj.ops = ops;
	g_poller_obj.arg = arg;
	g_poller = &g_poller_obj;
	return g_poller;
}

int
vh_poller_set_wake_fd(struct vh_poller *p, int wake_fd)
{
	return 0;
}

void
vh_poller_unregister(struct vh_poller **p)
{
	if (*p != g_poller) {
		abort();
	}
	g_poller = NULL;
	*p = NULL;
}

void
vh_reactor_defer(struct vh_deferred *d)
{
	if (d->queued) {
		return;
	}
	d->queued = true;
	d->next = g_deferred;
	g_deferred = d;
}

void
vh_session_report_broken(struct vh_session *s)
{
	g_broken_reported = true;
}

uint32_t
vh_bdev_block_size(const struct vh_bdev *b)
{
	return 512;
}

uint64_t
vh_bdev_size(const struct vh_bdev *b)
{
	return DISK_SIZE;
}

bool
vh_bdev_io_type_supported(const struct vh_bdev *b, enum vh_bdev_io_type t)
{
	return t < VH_BDEV_IO_NTYPES;
}

/* A cached bdev: write-through sessions then flag their writes (VH_BDEV_IO_F_FUA) too. */
bool
vh_bdev_has_write_cache(const struct vh_bdev *b)
{
	return true;
}

struct vh_bdev_channel *
vh_bdev_channel_get(struct vh_bdev *b)
{
	g_channels++;
	return &g_ch;
}

void
vh_bdev_channel_put(struct vh_bdev_channel *ch)
{
	if (ch != &g_ch || g_channels <= 0) {
		abort();
	}
	g_channels--;
}

/*
 * blk.c's control-side code (controller creation, JSON, resize notices) is linked but never
 * runs here: these doubles only satisfy the linker, and abort if anything calls them.
 */
struct vh_bdev *
vh_bdev_find(const char *name)
{
	abort();
}

int
vh_bdev_claim(struct vh_bdev *b, const char *owner)
{
	abort();
}

void
vh_bdev_release(struct vh_bdev *b)
{
	abort();
}

const char *
vh_bdev_name(const struct vh_bdev *b)
{
	abort();
}

int
vh_name_check(const char *name)
{
	abort();
}

struct vh_vhost_ctrlr *
vh_vhost_find(const char *name)
{
	abort();
}

int
vh_ctrlr_create(const char *name, uint64_t cpumask, uint16_t num_queues,
                const struct vh_dev_ops *ops, void *dev, struct vh_vhost_ctrlr **out)
{
	abort();
}

int
vh_session_config_changed(struct vh_session *s)
{
	abort();
}

json_t *
vh_vhost_cpumask_json(uint64_t mask)
{
	abort();
}

int
vh_bdev_submit(struct vh_bdev_channel *ch, struct vh_bdev_io *io)
{
	uint64_t total = 0;

	if (ch != &g_ch || g_ndone == QMAX) {
		abort();
	}
	if ((g_flags & F_EAGAIN) && io->module_ctx[0] == 0) {
		io->module_ctx[0] = 1;
		return -EAGAIN;
	}
	io->module_ctx[0] = 0;
	switch (io->type) {
	case VH_BDEV_IO_READ:
	case VH_BDEV_IO_WRITE:
		for (int i = 0; i < io->iovcnt; i++) {
			total += io->iov[i].iov_len;
		}
		if (total != io->length) {
			abort(); /* blk.c promised length == iovec total */
		}
		/* fallthrough */
	case VH_BDEV_IO_DISCARD:
	case VH_BDEV_IO_WRITE_ZEROES:
		if (io->offset > DISK_SIZE || io->length > DISK_SIZE - io->offset ||
		    (io->offset | io->length) & 511) {
			abort(); /* blk.c must range-check against the capacity */
		}
		break;
	case VH_BDEV_IO_FLUSH:
		break;
	default:
		abort();
	}
	g_done[g_ndone++] = io;
	return 0;
}

static uint8_t *g_a;

/* Device writes into the ring pages would only make the harness's view of the rings murky. */
static FUZZ_UNUSED bool
in_ring_pages(const uint8_t *p, size_t len)
{
	return p < g_a + BLOB_OFF && p + len > g_a;
}

/* The "device": complete queued I/O, touching every byte of its buffers. */
static FUZZ_UNUSED void
run_completions(void)
{
	unsigned n = g_ndone;
	struct vh_bdev_io *done[QMAX];

	memcpy(done, g_done, n * sizeof(done[0]));
	g_ndone = 0;
	for (unsigned i = 0; i < n; i++) {
		struct vh_bdev_io *io = done[i];

		for (int j = 0; j < io->iovcnt; j++) {
			uint8_t *p = io->iov[j].iov_base;

			if (io->type == VH_BDEV_IO_READ && !in_ring_pages(p, io->iov[j].iov_len)) {
				memset(p, 0xa5, io->iov[j].iov_len);
			} else {
				for (size_t k = 0; k < io->iov[j].iov_len; k++) {
					g_sink ^= p[k];
				}
			}
		}
		io->cb(io, (g_flags & F_EIO) ? -EIO : 0);
	}
}

static FUZZ_UNUSED void
run_queue(struct msg *q, unsigned *n)
{
	struct msg copy[QMAX];
	unsigned cnt = *n;

	memcpy(copy, q, cnt * sizeof(copy[0]));
	*n = 0;
	for (unsigned i = 0; i < cnt; i++) {
		copy[i].fn(copy[i].arg);
	}
}

/* One reactor loop iteration: messages, back-end completions, the poller, deferred work. */
static FUZZ_UNUSED void
reactor_iteration(void)
{
	run_queue(g_rmsgs, &g_nr);
	run_completions();
	if (g_poller != NULL) {
		g_poller->ops->poll(g_poller->arg);
	}
	while (g_deferred != NULL) {
		struct vh_deferred *d = g_deferred;

		g_deferred = d->next;
		d->queued = false;
		d->fn(d);
	}
}

/*
 * ---- request life-cycle hooks: build.sh renames blk.c's calls to vh_vq_push_used/drop, and
 * the queue's device is vh_blk_ops with handle() wrapped (g_ops) ----
 */

static struct {
	uint32_t fetched, pushed, dropped;
} g_seen[256];
static uint32_t g_fetched, g_pushed, g_dropped;
static uint64_t g_fetched_desc, g_pushed_desc, g_dropped_desc; /* packed: ring descriptors */

void fuzz_hook_push_used(struct vh_vq *vq, struct vh_req *req);
void fuzz_hook_drop(struct vh_vq *vq, struct vh_req *req);

static struct vh_dev_ops g_ops;

static FUZZ_UNUSED void
fuzz_hook_blk_handle(struct vh_vq *vq, struct vh_req *req)
{
	if (req->head >= vq->size || !req->inflight) {
		abort(); /* vring.c hands blk.c only checked heads */
	}
	g_seen[req->head].fetched++;
	g_fetched++;
	g_fetched_desc += req->ndesc;
	vh_blk_ops.handle(vq, req);
}

void
fuzz_hook_push_used(struct vh_vq *vq, struct vh_req *req)
{
	if (!req->inflight) {
		abort(); /* a second completion of the same request */
	}
	g_seen[req->head].pushed++;
	g_pushed++;
	g_pushed_desc += req->ndesc;
	vh_vq_push_used(vq, req);
}

void
fuzz_hook_drop(struct vh_vq *vq, struct vh_req *req)
{
	if (!req->inflight) {
		abort();
	}
	g_seen[req->head].dropped++;
	g_dropped++;
	g_dropped_desc += req->ndesc;
	vh_vq_drop(vq, req);
}

/* ---- guest memory ---- */

static uint8_t *g_host;
static size_t g_host_size;
static uint8_t *g_b, *g_c;

static FUZZ_UNUSED void
setup_memory(void)
{
	g_host_size = GUARD + A_SIZE + GUARD + B_SIZE + GUARD + C_SIZE + GUARD;
	g_host =
	        mmap(NULL, g_host_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g_host == MAP_FAILED) {
		abort();
	}
	g_a = g_host + GUARD;
	g_b = g_a + A_SIZE + GUARD;
	g_c = g_b + B_SIZE + GUARD;
}

static FUZZ_UNUSED void
poison_guards(void)
{
	ASAN_POISON_MEMORY_REGION(g_host, GUARD);
	ASAN_POISON_MEMORY_REGION(g_a + A_SIZE, GUARD);
	ASAN_POISON_MEMORY_REGION(g_b + B_SIZE, GUARD);
	ASAN_POISON_MEMORY_REGION(g_c + C_SIZE, GUARD);
}

static FUZZ_UNUSED void
region(struct vh_mem *m, uint64_t gpa, uint64_t size, uint64_t qva, uint8_t *hva)
{
	struct vh_mem_region *r = &m->regions[m->nregions++];

	memset(r, 0, sizeof(*r));
	r->gpa = gpa;
	r->size = size;
	r->qva = qva;
	r->hva = hva; /* map_base stays NULL: nothing to unmap */
}

static FUZZ_UNUSED void
copy_in(uint8_t *dst, size_t cap, const uint8_t **data, size_t *size)
{
	size_t n = *size < cap ? *size : cap;

	memcpy(dst, *data, n);
	*data += n;
	*size -= n;
}

#endif
