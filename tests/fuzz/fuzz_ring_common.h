/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Shared by the ring fuzz targets (fuzz_vring.c: split rings, fuzz_vring_packed.c: packed rings,
 * fuzz_scsi.c: virtio-scsi on split rings): the guest memory layout, and in-file doubles of the
 * reactor and the control loop, so the real vring.c / vring_packed.c / mem.c and the device
 * (blk.c or scsi.c) run single-threaded and deterministic (the harness runs messages,
 * completions, the poller and deferred work in reactor order). The device's calls to
 * vh_vq_push_used()/vh_vq_drop() go through the fuzz_hook_* accounting below (build.sh), and
 * g_ops is the device's ops with handle() counted (fuzz_ops_init()). The bdev doubles are the
 * target's (fuzz_ring_blk.h for the blk targets): they queue I/O on g_done, and the "device"
 * here completes it touching every byte of every iovec, so a buffer reaching outside guest
 * memory is an ASan report.
 *
 * Guest memory: three regions, each in its own host mapping surrounded by ASan-poisoned guard
 * pages: A [0x10000, 0x20000) and B [0x20000, 0x30000) are GPA-adjacent (a buffer may
 * straddle), C [0x100000, 0x101000) sits after a hole. The rings use A+0, A+0x1000 and
 * A+0x2000; the input's free-form blob starts at A+0x3000 (then B, then C).
 *
 * Flags (an input's first byte): F_INDIRECT, F_EVENT_IDX, F_EAGAIN and F_EIO mean the same in
 * every target; the others are the target's. MAX_ITERS may be defined before the include.
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
#ifndef MAX_ITERS
#define MAX_ITERS 2000
#endif

#define F_INDIRECT  0x01
#define F_EVENT_IDX 0x02
#define F_EAGAIN    0x08
#define F_EIO       0x10

/* ---- doubles: reactor, control loop, session ---- */

struct vh_reactor {
	int unused;
};
struct vh_poller {
	const struct vh_poller_ops *ops;
	void *arg;
};
#define QMAX 1024

struct msg {
	vh_msg_fn fn;
	void *arg;
};

static struct vh_reactor g_reactor;
static struct vh_poller g_poller_obj;
static struct vh_poller *g_poller;
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

/* Not a reactor thread: vh_reactor_now_ticks() reads the clock (vring.c's poll pacing). */
__thread uint64_t vh_reactor_iter_ticks;

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

/*
 * The fake bdevs' vh_bdev_submit() past their own checks: with F_EAGAIN the first submission of
 * each I/O is refused with -EAGAIN (the device must retry it). Otherwise READ/WRITE lengths must
 * equal their iovecs' total, READ/WRITE/DISCARD/WRITE_ZEROES must lie inside the disk, be
 * aligned to @bs, be supported by @b (vh_bdev_io_type_supported()) and, with @nonempty, not be
 * empty; then the I/O is queued for run_completions(). Aborts on a broken promise.
 */
static int
fuzz_bdev_queue(struct vh_bdev_io *io, const struct vh_bdev *b, uint32_t bs, bool nonempty)
{
	uint64_t total = 0;

	if (g_ndone == QMAX) {
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
			abort(); /* the device promised length == iovec total */
		}
		/* fallthrough */
	case VH_BDEV_IO_DISCARD:
	case VH_BDEV_IO_WRITE_ZEROES:
		if (io->offset > DISK_SIZE || io->length > DISK_SIZE - io->offset ||
		    (io->offset | io->length) & (bs - 1) || (nonempty && io->length == 0)) {
			abort(); /* the device must range-check against the capacity */
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
 * ---- request life-cycle hooks: build.sh renames the device's calls to vh_vq_push_used/drop,
 * and the queues' device is g_ops: the device's ops with handle() counted ----
 */

static struct {
	uint32_t fetched, pushed, dropped;
} g_seen[256];
static uint32_t g_fetched, g_pushed, g_dropped;
static uint64_t g_fetched_desc, g_pushed_desc, g_dropped_desc; /* packed: ring descriptors */

void fuzz_hook_push_used(struct vh_vq *vq, struct vh_req *req);
void fuzz_hook_drop(struct vh_vq *vq, struct vh_req *req);

static struct vh_dev_ops g_ops;
static const struct vh_dev_ops *g_dev_ops; /* the device under test */

/* A request the ring handed to the device. */
static void
fuzz_count_fetch(struct vh_vq *vq, struct vh_req *req)
{
	if (req->head >= vq->size || !req->inflight) {
		abort(); /* the ring hands the device only checked heads */
	}
	g_seen[req->head].fetched++;
	g_fetched++;
	g_fetched_desc += req->ndesc;
}

static void
fuzz_hook_handle(struct vh_vq *vq, struct vh_req *req)
{
	fuzz_count_fetch(vq, req);
	g_dev_ops->handle(vq, req);
}

/* g_ops: DEV with every request it is handed counted. */
static void
fuzz_ops_init(const struct vh_dev_ops *dev)
{
	g_dev_ops = dev;
	g_ops = *dev;
	g_ops.handle = fuzz_hook_handle;
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

/* Map the three regions with their guard pages (once, at LLVMFuzzerInitialize). */
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

/*
 * Take the input's header (@n bytes into @hdr) off @data/@size; false when the input is shorter.
 * Its first byte is the run's flags (g_flags).
 */
static bool
fuzz_take_hdr(void *hdr, size_t n, const uint8_t **data, size_t *size)
{
	if (*size < n) {
		return false;
	}
	memcpy(hdr, *data, n);
	*data += n;
	*size -= n;
	g_flags = *(const uint8_t *)hdr;
	return true;
}

/* Zero the three regions before an input is loaded. */
static void
fuzz_mem_clear(void)
{
	memset(g_a, 0, A_SIZE);
	memset(g_b, 0, B_SIZE);
	memset(g_c, 0, C_SIZE);
}

/* The rest of the input as the free-form blob (A+BLOB_OFF, then B, then C), and the memory
 * table the session sees. */
static void
fuzz_mem_load(struct vh_mem *mem, const uint8_t **data, size_t *size)
{
	copy_in(g_a + BLOB_OFF, A_SIZE - BLOB_OFF, data, size);
	copy_in(g_b, B_SIZE, data, size);
	copy_in(g_c, C_SIZE, data, size);
	memset(mem, 0, sizeof(*mem));
	region(mem, A_GPA, A_SIZE, A_QVA, g_a);
	region(mem, B_GPA, B_SIZE, B_QVA, g_b);
	region(mem, C_GPA, C_SIZE, C_QVA, g_c);
}

/*
 * Split rings: zero guest memory, then take the descriptor table (16 * @qsize bytes) and the
 * avail ring's entries (2 * @qsize) off the input; the avail and used indexes are the header's.
 * Sets *@avail and *@used to the rings.
 */
static FUZZ_UNUSED void
fuzz_split_load(uint16_t qsize, uint16_t avail_idx, uint16_t used_idx, const uint8_t **data,
                size_t *size, struct vring_avail **avail, struct vring_used **used)
{
	fuzz_mem_clear();
	copy_in(g_a + DESC_OFF, 16u * qsize, data, size);
	*avail = (struct vring_avail *)(g_a + AVAIL_OFF);
	*used = (struct vring_used *)(g_a + USED_OFF);
	copy_in((uint8_t *)(*avail)->ring, 2u * qsize, data, size);
	(*avail)->idx = avail_idx;
	(*used)->idx = used_idx;
}

/* Split rings: used->idx moved from @used0 by exactly the used entries pushed. */
static FUZZ_UNUSED void
fuzz_check_split_used(const struct vh_vq *vq, const struct vring_used *used, uint16_t used0)
{
	if ((uint16_t)(vq->last_used - used0) != (uint16_t)g_pushed || used->idx != vq->last_used) {
		fprintf(stderr, "%u used entries pushed, used->idx moved by %u\n", g_pushed,
		        (uint16_t)(used->idx - used0));
		abort();
	}
}

/* The ring features FLAGS ask for, on top of VERSION_1 and PROTOCOL_FEATURES. */
static uint64_t
fuzz_features(uint8_t flags)
{
	uint64_t f = (1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES);

	if (flags & F_INDIRECT) {
		f |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	}
	if (flags & F_EVENT_IDX) {
		f |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	}
	return f;
}

/* ---- the run ---- */

static bool g_stopped;

static void
stop_done(struct vh_vq *vq)
{
	g_stopped = true;
}

/*
 * Queue IDX of its session as SET_VRING_NUM/ADDR/KICK/ENABLE leave it: SIZE entries, the rings
 * at A+DESC_OFF/AVAIL_OFF/USED_OFF, no fds, enabled unless DISABLED; and the per-run accounting
 * reset. The caller sets the base.
 */
static void
fuzz_vq_setup(struct vh_vq *vq, unsigned idx, uint16_t size, bool disabled)
{
	vq->kickfd = vq->callfd = vq->errfd = -1;
	snprintf(vq->prefix, sizeof(vq->prefix), "fuzz/q%u", idx);
	vq->size = size;
	vq->addr.desc_user_addr = A_QVA + DESC_OFF;
	vq->addr.avail_user_addr = A_QVA + AVAIL_OFF;
	vq->addr.used_user_addr = A_QVA + USED_OFF;
	vq->addr_set = true;
	vq->kick_set = true;
	vq->enabled = !disabled;
	vq->reactor = &g_reactor;
	g_broken_reported = false;
	g_stopped = false;
	memset(g_seen, 0, sizeof(g_seen));
	g_fetched = g_pushed = g_dropped = 0;
	g_fetched_desc = g_pushed_desc = g_dropped_desc = 0;
}

/* Every head (buffer id) below SIZE handed to the device was answered or dropped, once. */
static void
fuzz_check_heads(uint16_t size)
{
	for (uint32_t i = 0; i < size; i++) {
		if (g_seen[i].fetched != g_seen[i].pushed + g_seen[i].dropped) {
			fprintf(stderr,
			        "head %u: handled %u times, used %u times, dropped %u times\n", i,
			        g_seen[i].fetched, g_seen[i].pushed, g_seen[i].dropped);
			abort();
		}
	}
}

/* Stop the queue as GET_VRING_BASE would, running the reactor until it has stopped. */
static void
fuzz_stop_queue(struct vh_vq *vq)
{
	vh_vq_stop(vq, stop_done);
	for (unsigned iters = 0; !g_stopped; iters++) {
		reactor_iteration();
		run_queue(g_cmsgs, &g_nc);
		if (iters > MAX_ITERS) {
			fprintf(stderr, "queue did not stop\n");
			abort();
		}
	}
}

#endif
