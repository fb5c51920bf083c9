/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzz target: the virtio-scsi device (src/vhost/scsi.c, scsi_cmd.c) on a guest-controlled
 * ring, single-threaded and deterministic: SCSI commands (request headers, LUN fields, CDBs,
 * UNMAP parameter lists, WRITE SAME blocks) on a request queue, task management and AN
 * requests on the control queue, event buffers on the event queue, while targets are added
 * and removed through the real vhost.h functions.
 *
 * The real vring.c/mem.c/scsi.c/scsi_cmd.c run against in-file doubles of the reactor, the
 * control loop and two bdevs (1 MiB of 512-byte blocks as target 0, 1 MiB of 4096-byte blocks
 * as target 3). Messages, nodes, completions, the poller and deferred work run in reactor
 * order, so one input is one reproducible run. The fake bdevs touch every byte of every iovec.
 *
 * Guest memory and ring layout are fuzz_vring's: regions A [0x10000, 0x20000) and B
 * [0x20000, 0x30000) adjacent, C [0x100000, 0x101000) after a hole, each mapping surrounded by
 * ASan-poisoned guard pages; descriptors at A+0, avail at A+0x1000, used at A+0x2000, the
 * input's blob from A+0x3000 on (then B, then C).
 *
 * Input: struct hdr (9 bytes), then size*16 bytes of descriptors, size*2 avail entries, blob.
 *
 * Checked after each input:
 * - no ASan/UBSan report;
 * - the run settles within a bounded number of reactor iterations (a TMF waits for commands,
 *   which the fake bdev always completes);
 * - every head handed to the device got exactly one used entry, or (only on a queue marked
 *   broken) was dropped; used->idx moved by exactly the number of used entries;
 * - every bdev I/O is inside its disk, block aligned, and READ/WRITE lengths match the iovecs;
 * - the queue stops cleanly; afterwards no channel is open and no target holds a reference,
 *   and a removed target's bdev was released exactly once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <sanitizer/asan_interface.h>

#include "vhost/device.h"
#include "vhost/scsi.h"
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
#define MAX_ITERS 4000

#define F_INDIRECT  0x01
#define F_EVENT_IDX 0x02
#define F_REMOVE    0x04 /* remove target 0 after the first iteration */
#define F_EAGAIN    0x08
#define F_EIO       0x10
#define F_PLAIN     0x20 /* bdevs without discard, write-zeroes or write cache */
#define F_HOTPLUG   0x40 /* HOTPLUG negotiated; add target 5 after the first iteration */
#define F_DISABLED  0x80

struct hdr {
	uint8_t flags;
	uint8_t qlog;
	uint16_t avail_idx;
	uint16_t base;
	uint16_t used_idx;
	uint8_t queue; /* % 3: control, event, request queue */
} __attribute__((packed));

/* ---- doubles: reactor, control loop, bdevs ---- */

struct vh_reactor {
	int unused;
};
struct vh_poller {
	const struct vh_poller_ops *ops;
	void *arg;
};
struct vh_bdev_channel {
	int refs;
};
struct vh_bdev {
	char name[8];
	uint32_t bs;
	int claimed;
	int released;
	struct vh_bdev_channel ch;
};

#define QMAX 1024

struct msg {
	vh_msg_fn fn;
	void *arg;
};

static struct vh_reactor g_reactor;
static struct vh_poller g_poller_obj;
static struct vh_poller *g_poller;
static struct vh_bdev g_bdevs[3];
static struct msg g_rmsgs[QMAX], g_cmsgs[QMAX];
static unsigned g_nr, g_nc;
static struct vh_deferred *g_deferred;
static struct vh_bdev_io *g_done[QMAX];
static unsigned g_ndone;
static uint8_t g_flags;
static bool g_broken_reported;
static volatile uint8_t g_sink;
static struct vh_vhost_ctrlr g_ctrlr;
static bool g_ctrlr_made;

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
		abort();
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

unsigned
vh_reactor_index(const struct vh_reactor *r)
{
	return 0;
}

struct vh_reactor *
vh_reactor_self(void)
{
	return NULL; /* the harness runs everything on one thread */
}

int
vh_peer_eventfd_signal(int fd)
{
	return 0;
}

struct vh_poller *
vh_poller_register(const struct vh_poller_ops *ops, void *arg, int wake_fd, const char *name)
{
	if (g_poller != NULL) {
		abort();
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

/* Control-side functions scsi.c calls when targets change. */
int
vh_name_check(const char *name)
{
	return 0;
}

struct vh_vhost_ctrlr *
vh_vhost_find(const char *name)
{
	return g_ctrlr_made ? &g_ctrlr : NULL;
}

int
vh_ctrlr_create(const char *name, uint64_t cpumask, uint16_t num_queues,
                const struct vh_dev_ops *ops, void *dev, struct vh_vhost_ctrlr **out)
{
	memset(&g_ctrlr, 0, sizeof(g_ctrlr));
	snprintf(g_ctrlr.name, sizeof(g_ctrlr.name), "%s", name);
	g_ctrlr.ops = ops;
	g_ctrlr.dev = dev;
	g_ctrlr.num_queues = num_queues;
	g_ctrlr.listen_fd = -1;
	g_ctrlr_made = true;
	*out = &g_ctrlr;
	return 0;
}

json_t *
vh_vhost_cpumask_json(uint64_t mask)
{
	abort();
}

struct vh_bdev *
vh_bdev_find(const char *name)
{
	for (unsigned i = 0; i < 3; i++) {
		if (strcmp(g_bdevs[i].name, name) == 0) {
			return &g_bdevs[i];
		}
	}
	return NULL;
}

int
vh_bdev_claim(struct vh_bdev *b, const char *owner)
{
	if (b->claimed) {
		return -EBUSY;
	}
	b->claimed = 1;
	return 0;
}

void
vh_bdev_release(struct vh_bdev *b)
{
	if (!b->claimed || b->ch.refs != 0) {
		abort(); /* released twice, or while a channel is still open */
	}
	b->claimed = 0;
	b->released++;
}

const char *
vh_bdev_name(const struct vh_bdev *b)
{
	return b->name;
}

const char *
vh_bdev_uuid(const struct vh_bdev *b)
{
	return "0a2d7f30-1f59-4bb0-9f3e-0f8e8f4b7a11";
}

uint32_t
vh_bdev_block_size(const struct vh_bdev *b)
{
	return b->bs;
}

uint64_t
vh_bdev_num_blocks(const struct vh_bdev *b)
{
	return DISK_SIZE / b->bs;
}

bool
vh_bdev_io_type_supported(const struct vh_bdev *b, enum vh_bdev_io_type t)
{
	return !(g_flags & F_PLAIN) || t == VH_BDEV_IO_READ || t == VH_BDEV_IO_WRITE;
}

bool
vh_bdev_has_write_cache(const struct vh_bdev *b)
{
	return !(g_flags & F_PLAIN);
}

struct vh_bdev_channel *
vh_bdev_channel_get(struct vh_bdev *b)
{
	if (!b->claimed) {
		abort(); /* a channel to a bdev nobody holds */
	}
	b->ch.refs++;
	return &b->ch;
}

void
vh_bdev_channel_put(struct vh_bdev_channel *ch)
{
	if (ch->refs <= 0) {
		abort();
	}
	ch->refs--;
}

int
vh_bdev_submit(struct vh_bdev_channel *ch, struct vh_bdev_io *io)
{
	struct vh_bdev *b = VH_CONTAINER_OF(ch, struct vh_bdev, ch);
	uint64_t total = 0;

	if (ch->refs <= 0 || !b->claimed || g_ndone == QMAX) {
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
		if (total != io->length || io->length == 0) {
			abort();
		}
		/* fallthrough */
	case VH_BDEV_IO_DISCARD:
	case VH_BDEV_IO_WRITE_ZEROES:
		if (io->offset > DISK_SIZE || io->length > DISK_SIZE - io->offset ||
		    (io->offset | io->length) & (b->bs - 1) || io->length == 0) {
			abort(); /* scsi.c must range-check against the capacity */
		}
		if (!vh_bdev_io_type_supported(b, io->type)) {
			abort();
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

static bool
in_ring_pages(const uint8_t *p, size_t len)
{
	return p < g_a + BLOB_OFF && p + len > g_a;
}

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

/* ---- request life-cycle hooks (build.sh renames scsi.c's push_used/drop/fetch_one) ---- */

static struct {
	uint32_t fetched, pushed, dropped;
} g_seen[256];
static uint32_t g_fetched, g_pushed, g_dropped;

void fuzz_hook_push_used(struct vh_vq *vq, struct vh_req *req);
void fuzz_hook_drop(struct vh_vq *vq, struct vh_req *req);
struct vh_req *fuzz_hook_fetch_one(struct vh_vq *vq);

static struct vh_dev_ops g_ops;

static void
count_fetch(struct vh_vq *vq, struct vh_req *req)
{
	if (req->head >= vq->size || !req->inflight) {
		abort();
	}
	g_seen[req->head].fetched++;
	g_fetched++;
}

static void
hook_handle(struct vh_vq *vq, struct vh_req *req)
{
	count_fetch(vq, req);
	vh_scsi_ops.handle(vq, req);
}

struct vh_req *
fuzz_hook_fetch_one(struct vh_vq *vq)
{
	struct vh_req *req = vh_vq_fetch_one(vq);

	if (req != NULL) {
		count_fetch(vq, req);
	}
	return req;
}

void
fuzz_hook_push_used(struct vh_vq *vq, struct vh_req *req)
{
	if (!req->inflight) {
		abort();
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
static uint8_t *g_b, *g_c;

static void
setup_memory(void)
{
	size_t sz = GUARD + A_SIZE + GUARD + B_SIZE + GUARD + C_SIZE + GUARD;

	g_host = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g_host == MAP_FAILED) {
		abort();
	}
	g_a = g_host + GUARD;
	g_b = g_a + A_SIZE + GUARD;
	g_c = g_b + B_SIZE + GUARD;
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
	r->hva = hva;
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
	g_ops = vh_scsi_ops;
	g_ops.handle = hook_handle;
	g_s = calloc(1, sizeof(*g_s));
	if (g_s == NULL) {
		abort();
	}
	return 0;
}

static void
make_controller(void)
{
	struct vh_vhost_scsi_opts o = {.name = "fuzz", .num_queues = 3};

	memset(g_bdevs, 0, sizeof(g_bdevs));
	snprintf(g_bdevs[0].name, sizeof(g_bdevs[0].name), "b0");
	snprintf(g_bdevs[1].name, sizeof(g_bdevs[1].name), "b1");
	snprintf(g_bdevs[2].name, sizeof(g_bdevs[2].name), "b2");
	g_bdevs[0].bs = 512;
	g_bdevs[1].bs = 4096;
	g_bdevs[2].bs = 512;
	g_ctrlr_made = false;
	if (vh_vhost_scsi_create(&o) != 0 || vh_vhost_scsi_add_target("fuzz", 0, "b0") != 0 ||
	    vh_vhost_scsi_add_target("fuzz", 3, "b1") != 3) {
		abort();
	}
	/* The queues get the hooked ops (vq->ops); the controller stays a scsi controller. */
}

/* Between iterations: what the operator does while the guest runs. */
static void
operator_actions(unsigned iter)
{
	if (iter != 1) {
		return;
	}
	if ((g_flags & F_REMOVE) && vh_vhost_scsi_remove_target("fuzz", 0) != 0) {
		abort();
	}
	if ((g_flags & F_HOTPLUG) && vh_vhost_scsi_add_target("fuzz", 5, "b2") != 5) {
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vh_session *s = g_s;
	struct vh_mem mem;
	struct vring_avail *avail;
	struct vring_used *used;
	struct vh_vq *vq;
	struct hdr h = {0};
	uint16_t qsize;
	unsigned iters = 0;

	if (size < sizeof(h)) {
		return -1;
	}
	memcpy(&h, data, sizeof(h));
	data += sizeof(h);
	size -= sizeof(h);
	g_flags = h.flags;
	h.queue %= 3;
	qsize = (uint16_t)(1u << (h.qlog % 9));

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

	make_controller();
	memset(s, 0, sizeof(*s));
	s->c = &g_ctrlr;
	s->fd = -1;
	s->backend_fd = -1;
	s->mem = &mem;
	s->nvqs = 3;
	s->features = (1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES);
	if (h.flags & F_INDIRECT) {
		s->features |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	}
	if (h.flags & F_EVENT_IDX) {
		s->features |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	}
	if (h.flags & F_HOTPLUG) {
		s->features |= 1ull << VIRTIO_SCSI_F_HOTPLUG;
	}
	for (unsigned i = 0; i < 3; i++) {
		s->vqs[i].s = s;
		s->vqs[i].ops = &g_ops;
		s->vqs[i].log_all = &s->log_all; /* as vh_session_new() sets it */
		s->vqs[i].idx = (uint16_t)i;
	}
	if (vh_scsi_ops.session_init(s) != 0) {
		abort();
	}
	g_ctrlr.sessions[0] = s;
	vq = &s->vqs[h.queue];
	vq->kickfd = vq->callfd = vq->errfd = -1;
	snprintf(vq->prefix, sizeof(vq->prefix), "fuzz/q%u", h.queue);
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
		abort();
	}
	vh_vq_start(vq);
	for (;;) {
		bool idle;

		reactor_iteration();
		run_queue(g_cmsgs, &g_nc);
		operator_actions(++iters);
		idle = iters > 1 && g_nr == 0 && g_nc == 0 && g_ndone == 0 && g_deferred == NULL &&
		       vq->retry_head == NULL &&
		       (vq->broken || !vq->running || vq->no_fetch || vq->last_avail == avail->idx);
		if (idle) {
			break;
		}
		if (iters > MAX_ITERS) {
			fprintf(stderr, "queue did not settle after %u iterations\n", MAX_ITERS);
			abort();
		}
	}
	if (vq->inflight != 0 || vq->broken != g_broken_reported) {
		fprintf(stderr, "%u in flight on an idle queue, broken %d/%d\n", vq->inflight,
		        vq->broken, g_broken_reported);
		abort();
	}
	if ((uint16_t)(vq->last_avail - h.base) > qsize || (g_dropped > 0 && !vq->broken)) {
		abort();
	}
	for (uint32_t i = 0; i < qsize; i++) {
		if (g_seen[i].fetched != g_seen[i].pushed + g_seen[i].dropped) {
			fprintf(stderr, "head %u: handled %u times, used %u, dropped %u\n", i,
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
	vh_vq_stop(vq, stop_done);
	for (iters = 0; !g_stopped; iters++) {
		reactor_iteration();
		run_queue(g_cmsgs, &g_nc);
		if (iters > MAX_ITERS) {
			fprintf(stderr, "queue did not stop\n");
			abort();
		}
	}
	run_queue(g_cmsgs, &g_nc);
	if (g_poller != NULL || vq->started || vq->base != vq->last_avail) {
		abort();
	}
	for (unsigned i = 0; i < 3; i++) {
		if (g_bdevs[i].ch.refs != 0) {
			fprintf(stderr, "bdev %u: %d channel(s) left open\n", i,
			        g_bdevs[i].ch.refs);
			abort();
		}
	}
	/* A removal completes once the queue let go: the bdev is back, exactly once. */
	if ((h.flags & F_REMOVE) && (g_bdevs[0].released != 1 || g_bdevs[0].claimed)) {
		fprintf(stderr, "removed target's bdev: released %d, claimed %d\n",
		        g_bdevs[0].released, g_bdevs[0].claimed);
		abort();
	}
	vh_vq_free_reqs(vq);
	vh_scsi_ops.session_fini(s);
	g_ctrlr.sessions[0] = NULL;
	vh_scsi_ops.ctrlr_free(&g_ctrlr);
	return 0;
}
