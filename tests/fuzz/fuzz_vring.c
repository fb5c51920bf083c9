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
#include "fuzz_ring_blk.h"

struct hdr {
	uint8_t flags;
	uint8_t qlog;
	uint16_t avail_idx;
	uint16_t base;
	uint16_t used_idx;
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vh_mem mem;
	struct vring_avail *avail;
	struct vring_used *used;
	struct vh_vq *vq;
	struct hdr h = {0};
	uint16_t qsize, consumed;
	unsigned iters = 0;

	if (!fuzz_take_hdr(&h, sizeof(h), &data, &size)) {
		return -1;
	}
	qsize = (uint16_t)(1u << (h.qlog % 9)); /* 1..256 */

	fuzz_split_load(qsize, h.avail_idx, h.used_idx, &data, &size, &avail, &used);
	fuzz_mem_load(&mem, &data, &size);
	memset(&g_s->inflight, 0, sizeof(g_s->inflight)); /* split rings: no inflight region */
	vq = fuzz_blk_session(&mem, h.flags, qsize, 0);
	vq->base = h.base;

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
	fuzz_check_heads(qsize);
	fuzz_check_split_used(vq, used, h.used_idx);
	/* Stop the queue as GET_VRING_BASE would, and check it releases everything. */
	fuzz_stop_queue(vq);
	if (g_poller != NULL || g_channels != 0 || vq->started || vq->base != vq->last_avail) {
		abort();
	}
	vh_vq_free_reqs(vq);
	return 0;
}
