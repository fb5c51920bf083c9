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
#include "fuzz_ring_common.h"

struct hdr {
	uint8_t flags;
	uint8_t qlog;
	uint16_t avail_idx;
	uint16_t base;
	uint16_t used_idx;
};

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
