/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzz target: the split-ring walker and virtio-blk request handling (src/vhost/vring.c,
 * blk.c, mem.c) against a guest-controlled ring, single-threaded and deterministic.
 *
 * The real vring.c/blk.c/mem.c run against in-file doubles of the reactor, the control loop and
 * the bdev layer: start/stop messages, pollers, deferred flushes and completions are queued here
 * and run by the harness in reactor order (messages, completions, poll, deferred), so one input
 * is one reproducible run. The fake bdev touches every byte of every iovec it is given, so a
 * buffer that reaches outside guest memory is an ASan report.
 *
 * Guest memory: three regions, each in its own host mapping surrounded by ASan-poisoned guard
 * pages: A [0x10000, 0x20000) and B [0x20000, 0x30000) are GPA-adjacent (a buffer may straddle),
 * C [0x100000, 0x101000) sits after a hole. Descriptor table at A+0, avail ring at A+0x1000,
 * used ring at A+0x2000, the input's free-form blob from A+0x3000 on (then B, then C).
 *
 * Input: struct hdr (8 bytes), then size*16 bytes of descriptors, size*2 avail entries, blob.
 *
 * Checked after each input:
 * - no ASan/UBSan report (out-of-bounds access through a descriptor, misaligned access...);
 * - the run settles within a bounded number of reactor iterations (no livelock);
 * - every head handed to blk.c got exactly one used entry, or (only on a queue marked broken)
 *   was dropped; used->idx moved by exactly the number of used entries; at most one head more
 *   than the avail index advanced by was looked at (the one that broke the queue);
 * - every bdev I/O is inside the disk and its length matches its iovecs;
 * - the queue stops cleanly (no request left in flight).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <sanitizer/asan_interface.h>

#include "vhost/blk.h"
#include "vhost/device.h"
#include "vhost/session.h"

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

struct hdr {
	uint8_t flags;
	uint8_t qlog;
	uint16_t avail_idx;
	uint16_t base;
	uint16_t used_idx;
};

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
static void
node_run(void *arg)
{
	struct vh_msg_node *n = arg;

	n->queued = 0;
	n->fn(n->arg);
}

static void
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
static bool
in_ring_pages(const uint8_t *p, size_t len)
{
	return p < g_a + BLOB_OFF && p + len > g_a;
}

/* The "device": complete queued I/O, touching every byte of its buffers. */
static void
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

static void
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
static void
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

void fuzz_hook_push_used(struct vh_vq *vq, struct vh_req *req);
void fuzz_hook_drop(struct vh_vq *vq, struct vh_req *req);

static struct vh_dev_ops g_ops;

static void
fuzz_hook_blk_handle(struct vh_vq *vq, struct vh_req *req)
{
	if (req->head >= vq->size || !req->inflight) {
		abort(); /* vring.c hands blk.c only checked heads */
	}
	g_seen[req->head].fetched++;
	g_fetched++;
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
	vh_vq_drop(vq, req);
}

/* ---- guest memory ---- */

static uint8_t *g_host;
static size_t g_host_size;
static uint8_t *g_b, *g_c;

static void
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

static void
poison_guards(void)
{
	ASAN_POISON_MEMORY_REGION(g_host, GUARD);
	ASAN_POISON_MEMORY_REGION(g_a + A_SIZE, GUARD);
	ASAN_POISON_MEMORY_REGION(g_b + B_SIZE, GUARD);
	ASAN_POISON_MEMORY_REGION(g_c + C_SIZE, GUARD);
}

static void
region(struct vh_mem *m, uint64_t gpa, uint64_t size, uint64_t qva, uint8_t *hva)
{
	struct vh_mem_region *r = &m->regions[m->nregions++];

	memset(r, 0, sizeof(*r));
	r->gpa = gpa;
	r->size = size;
	r->qva = qva;
	r->hva = hva; /* map_base stays NULL: nothing to unmap */
}

static void
copy_in(uint8_t *dst, size_t cap, const uint8_t **data, size_t *size)
{
	size_t n = *size < cap ? *size : cap;

	memcpy(dst, *data, n);
	*data += n;
	*size -= n;
}

/* ---- the run ---- */

static struct vh_session *g_s;
static struct vh_vhost_ctrlr *g_c_ctrlr;
static struct vh_blk_ctrlr g_blk;
static struct vh_blk_session g_blk_session;
static bool g_stopped;

static void
stop_done(struct vh_vq *vq)
{
	g_stopped = true;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	setup_memory();
	poison_guards();
	g_ops = vh_blk_ops;
	g_ops.handle = fuzz_hook_blk_handle;
	g_s = calloc(1, sizeof(*g_s));
	g_c_ctrlr = calloc(1, sizeof(*g_c_ctrlr));
	if (g_s == NULL || g_c_ctrlr == NULL) {
		abort();
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vh_vhost_ctrlr *c = g_c_ctrlr;
	struct vh_session *s = g_s;
	struct vh_mem mem;
	struct vring_avail *avail;
	struct vring_used *used;
	struct vh_vq *vq;
	struct hdr h = {0};
	uint16_t qsize, consumed;
	unsigned iters = 0;

	if (size < sizeof(h)) {
		return -1;
	}
	memcpy(&h, data, sizeof(h));
	data += sizeof(h);
	size -= sizeof(h);
	g_flags = h.flags;
	qsize = (uint16_t)(1u << (h.qlog % 9)); /* 1..256 */

	memset(g_a, 0, A_SIZE);
	memset(g_b, 0, B_SIZE);
	memset(g_c, 0, C_SIZE);
	copy_in(g_a + DESC_OFF, 16u * qsize, &data, &size);
	avail = (struct vring_avail *)(g_a + AVAIL_OFF);
	used = (struct vring_used *)(g_a + USED_OFF);
	copy_in((uint8_t *)avail->ring, 2u * qsize, &data, &size);
	avail->idx = h.avail_idx;
	used->idx = h.used_idx;
	copy_in(g_a + BLOB_OFF, A_SIZE - BLOB_OFF, &data, &size);
	copy_in(g_b, B_SIZE, &data, &size);
	copy_in(g_c, C_SIZE, &data, &size);

	memset(&mem, 0, sizeof(mem));
	region(&mem, A_GPA, A_SIZE, A_QVA, g_a);
	region(&mem, B_GPA, B_SIZE, B_QVA, g_b);
	region(&mem, C_GPA, C_SIZE, C_QVA, g_c);

	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "fuzz");
	memset(&g_blk, 0, sizeof(g_blk));
	memcpy(g_blk.serial, "fuzz-serial-0123456789", VIRTIO_BLK_ID_BYTES);
	g_blk.bdev = (struct vh_bdev *)&g_ch; /* opaque to vring/blk: only passed to the doubles */
	g_blk.readonly = (h.flags & F_READONLY) != 0;
	c->dev = &g_blk;
	c->ops = &g_ops;
	c->num_queues = 1;
	c->listen_fd = -1;

	memset(s, 0, sizeof(*s));
	s->c = c;
	s->fd = -1;
	s->backend_fd = -1;
	s->mem = &mem;
	s->nvqs = 1;
	g_blk_session.wce = 1;
	s->dev = &g_blk_session;
	s->features = (1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES);
	if (h.flags & F_INDIRECT) {
		s->features |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	}
	if (h.flags & F_EVENT_IDX) {
		s->features |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	}
	if (h.flags & F_DISCARD) {
		s->features |= (1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES);
	}
	vq = &s->vqs[0];
	vq->s = s;
	vq->ops = &g_ops;
	vq->log_all = &s->log_all;
	vq->kickfd = vq->callfd = vq->errfd = -1;
	snprintf(vq->prefix, sizeof(vq->prefix), "fuzz/q0");
	vq->size = qsize;
	vq->base = h.base;
	vq->addr.desc_user_addr = A_QVA + DESC_OFF;
	vq->addr.avail_user_addr = A_QVA + AVAIL_OFF;
	vq->addr.used_user_addr = A_QVA + USED_OFF;
	vq->addr_set = true;
	vq->kick_set = true;
	vq->enabled = !(h.flags & F_DISABLED);
	vq->reactor = &g_reactor;
	g_broken_reported = false;
	g_stopped = false;
	memset(g_seen, 0, sizeof(g_seen));
	g_fetched = g_pushed = g_dropped = 0;

	vh_vq_init_nodes(vq);
	if (vh_vq_prepare(vq) != 0) {
		abort(); /* the harness's own layout is valid */
	}
	vh_vq_start(vq);
	/* Run until the queue has nothing left to do; a guest must not keep it busy forever. */
	for (;;) {
		bool idle;

		reactor_iteration();
		run_queue(g_cmsgs, &g_nc);
		idle = g_nr == 0 && g_ndone == 0 && g_deferred == NULL && vq->retry_head == NULL &&
		       (vq->broken || !vq->running || vq->last_avail == avail->idx);
		if (idle) {
			break;
		}
		if (++iters > MAX_ITERS) {
			fprintf(stderr, "queue did not settle after %u iterations\n", MAX_ITERS);
			abort();
		}
	}
	if (vq->inflight != 0) {
		fprintf(stderr, "%u requests still in flight on an idle queue\n", vq->inflight);
		abort();
	}
	if (vq->broken != g_broken_reported) {
		abort(); /* a broken queue reports to the session exactly when it breaks */
	}
	/* Every head handed to blk.c got exactly one used entry, or was dropped by a broken queue.
	 */
	consumed = (uint16_t)(vq->last_avail - h.base);
	if (consumed > qsize || g_fetched < consumed ||
	    g_fetched > consumed + (vq->broken ? 1u : 0u) || (g_dropped > 0 && !vq->broken)) {
		fprintf(stderr, "consumed %u, handled %u, dropped %u, broken %d\n", consumed,
		        g_fetched, g_dropped, vq->broken);
		abort();
	}
	for (uint32_t i = 0; i < qsize; i++) {
		if (g_seen[i].fetched != g_seen[i].pushed + g_seen[i].dropped) {
			fprintf(stderr,
			        "head %u: handled %u times, used %u times, dropped %u times\n", i,
			        g_seen[i].fetched, g_seen[i].pushed, g_seen[i].dropped);
			abort();
		}
	}
	if ((uint16_t)(vq->last_used - h.used_idx) != (uint16_t)g_pushed ||
	    used->idx != vq->last_used) {
		fprintf(stderr, "%u used entries pushed, used->idx moved by %u\n", g_pushed,
		        (uint16_t)(used->idx - h.used_idx));
		abort();
	}
	/* Stop the queue as GET_VRING_BASE would, and check it releases everything. */
	vh_vq_stop(vq, stop_done);
	for (iters = 0; !g_stopped; iters++) {
		reactor_iteration();
		run_queue(g_cmsgs, &g_nc);
		if (iters > MAX_ITERS) {
			fprintf(stderr, "queue did not stop\n");
			abort();
		}
	}
	if (g_poller != NULL || g_channels != 0 || vq->started || vq->base != vq->last_avail) {
		abort();
	}
	vh_vq_free_reqs(vq);
	return 0;
}
