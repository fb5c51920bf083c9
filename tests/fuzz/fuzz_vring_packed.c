/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzz target: packed rings (src/vhost/vring_packed.c, the packed half of inflight.c) with
 * virtio-blk requests (blk.c) and translation (mem.c) against a guest-controlled descriptor
 * ring and, optionally, a front-end-controlled inflight region; single-threaded and
 * deterministic on the doubles of fuzz_ring_common.h.
 *
 * Input: struct hdr (8 bytes), then size*16 bytes of ring descriptors, 4 bytes of the driver's
 * event suppression structure, with F_INFLIGHT the queue's inflight region (packed layout: 32 +
 * 32*size bytes; short input is zero-filled), then the blob (A+0x3000 on, then B, then C).
 *
 * Checked after each input, beyond "no ASan/UBSan report":
 * - a hostile inflight region may be refused (-EINVAL), nothing else fails to start;
 * - the run settles within a bounded number of reactor iterations, and a broken queue reports
 *   exactly when it breaks;
 * - every buffer id handed to blk.c is < size and got exactly one used descriptor, or (only on
 *   a broken queue) was dropped; the used position moved by exactly the descriptors of the
 *   requests answered, the avail position by those fetched;
 * - the queue stops with nothing in flight at the position it reports;
 * - with an inflight region: a "crash" (the queue abandoned at iteration crash_iter) and a
 *   restart over the same region resubmit exactly the requests that were in flight, oldest
 *   first, at the same positions; and after a clean stop a restart resubmits nothing.
 */
#include <inttypes.h>

#include "fuzz_ring_blk.h"
#include "vhost/vring_packed.h"

#define F_INFLIGHT 0x80 /* F_INDIRECT .. F_DISABLED as in fuzz_ring_common.h, fuzz_ring_blk.h */

struct hdr {
	uint8_t flags;
	uint8_t qlog;
	uint16_t base; /* SET_VRING_BASE's avail half (index | wrap << 15); 0 = not sent */
	uint8_t crash_iter;
	uint8_t recovery; /* packed_ring_recovery */
	uint16_t pad;
};

/* Every message, completion and deferred call of the abandoned instance, forgotten. */
static void
forget_reactor(void)
{
	g_nr = g_nc = 0;
	g_ndone = 0;
	g_deferred = NULL;
	g_poller = NULL;
	g_channels = 0;
}

/* A consistent view of the ring to judge the idle state by. */
static bool
settled(const struct vh_vq *vq)
{
	return g_nr == 0 && g_ndone == 0 && g_deferred == NULL && vq->retry_head == NULL &&
	       (vq->broken || !vq->running || !vh_vq_packed_avail((struct vh_vq *)vq));
}

struct inflight_snap {
	uint32_t n;
	uint16_t ids[256];
	uint64_t counters[256];
	uint16_t used, avail;
};

/* What a restart must find: the requests in flight right now, by fetch order. */
static void
snapshot(struct vh_vq *vq, struct inflight_snap *sn)
{
	uint32_t ndesc = 0;

	sn->n = 0;
	for (uint32_t i = 0; i < vq->nslots; i++) {
		struct vh_req *req = vh_vq_req(vq, i);

		if (!req->inflight) {
			continue;
		}
		sn->ids[sn->n] = req->head;
		sn->counters[sn->n] = vq->pk->ifl->desc[req->ifl_entry].counter;
		ndesc += req->ndesc;
		sn->n++;
	}
	sn->used = vq->last_used;
	sn->avail = (uint16_t)(vq->last_used + ndesc);
	if (sn->avail != vq->last_avail) {
		fprintf(stderr, "in flight %u descriptors, but avail - used = %u\n", ndesc,
		        (uint16_t)(vq->last_avail - vq->last_used));
		abort();
	}
}

/*
 * Two of vring.c's free-running packed positions name the same ring slot and wrap counter: they
 * agree modulo twice the ring size. A restart only knows the slot and the wrap counter (what
 * SET_VRING_BASE and the inflight region carry), so it starts from the count below 2 * size.
 */
static bool
same_pos(uint16_t a, uint16_t b, uint16_t size)
{
	return vh_pk_base16(a, size) == vh_pk_base16(b, size);
}

static void
check_recovered(struct vh_vq *vq, const struct inflight_snap *sn)
{
	const struct vh_vq_packed *pk = vq->pk;

	if (pk == NULL || pk->ifl == NULL || pk->nresub != sn->n ||
	    !same_pos(vq->last_used, sn->used, vq->size) ||
	    !same_pos(vq->last_avail, sn->avail, vq->size)) {
		fprintf(stderr,
		        "restart: %u resubmissions (expected %u), used %u avail %u (expected %u "
		        "%u)\n",
		        pk ? pk->nresub : 0, sn->n, vq->last_used, vq->last_avail, sn->used,
		        sn->avail);
		abort();
	}
	for (uint32_t i = 0; i < pk->nresub; i++) {
		bool found = false;

		for (uint32_t j = 0; j < sn->n; j++) {
			found |= sn->ids[j] == pk->resub[i].id;
		}
		if (!found || (i > 0 && pk->resub[i].counter < pk->resub[i - 1].counter)) {
			fprintf(stderr, "resubmission %u: id %u not in flight, or out of order\n",
			        i, pk->resub[i].id);
			abort();
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vh_session *s = g_s;
	struct inflight_snap sn;
	uint8_t *ifl_buf = NULL;
	struct vh_mem mem;
	struct vh_vq *vq;
	struct hdr h = {0};
	uint16_t qsize, used0, avail0;
	unsigned iters = 0;
	bool crashed = false;
	int rc;

	if (!fuzz_take_hdr(&h, sizeof(h), &data, &size)) {
		return -1;
	}
	qsize = (uint16_t)(1u << (h.qlog % 9)); /* 1..256 */

	fuzz_mem_clear();
	copy_in(g_a + DESC_OFF, 16u * qsize, &data, &size);
	copy_in(g_a + AVAIL_OFF, 4, &data, &size);
	memset(&s->inflight, 0, sizeof(s->inflight));
	if (h.flags & F_INFLIGHT) {
		uint64_t stride = vh_inflight_stride(qsize, true);

		/* Exactly the region, so ASan's redzones catch any access past either end. */
		ifl_buf = calloc(1, stride);
		if (ifl_buf == NULL) {
			abort();
		}
		copy_in(ifl_buf, stride, &data, &size);
		s->inflight.map = ifl_buf;
		s->inflight.base = ifl_buf;
		s->inflight.map_size = stride;
		s->inflight.num_queues = 1;
		s->inflight.queue_size = qsize;
		s->inflight.packed = true;
	}
	fuzz_mem_load(&mem, &data, &size);
	vq = fuzz_blk_session(&mem, h.flags, qsize, 1ull << VIRTIO_F_RING_PACKED);
	g_blk.packed_ring = true;
	g_c_ctrlr->packed_recovery = h.recovery & 1;
	if (h.base != 0) {
		vh_vq_set_position(vq, (uint32_t)h.base * 0x10001u, true);
	}

	vh_vq_init_nodes(vq);
	rc = vh_vq_prepare(vq);
	if (rc != 0) {
		/* A base past the ring, or a region that cannot be trusted: refused, nothing else.
		 */
		if (rc != -EINVAL) {
			abort();
		}
		goto out;
	}
	used0 = vq->last_used;
	avail0 = vq->last_avail;
	/* Requests a previous "instance" left in the region are resubmitted at start (counted). */
	vh_vq_start(vq);
	for (;;) {
		reactor_iteration();
		run_queue(g_cmsgs, &g_nc);
		if (vq->pk != NULL && vq->pk->ifl != NULL && h.crash_iter != 0 &&
		    iters + 1 == h.crash_iter && !vq->broken) {
			/* Die here: what is in flight must come back, nothing else. */
			snapshot(vq, &sn);
			forget_reactor();
			vq->started = false;
			crashed = true;
			break;
		}
		if (settled(vq)) {
			break;
		}
		if (++iters > MAX_ITERS) {
			fprintf(stderr, "queue did not settle after %u iterations\n", MAX_ITERS);
			abort();
		}
	}
	if (crashed) {
		vq->flush.queued = false;
		if (vh_vq_prepare(vq) != 0) {
			abort(); /* the region is the one we kept: it must be accepted */
		}
		check_recovered(vq, &sn);
		goto out;
	}
	if (vq->inflight != 0) {
		fprintf(stderr, "%u requests still in flight on an idle queue\n", vq->inflight);
		abort();
	}
	if (vq->broken != g_broken_reported) {
		abort();
	}
	if (g_dropped > 0 && !vq->broken) {
		abort();
	}
	fuzz_check_heads(qsize);
	/* Positions: used moved by what was answered, avail by what was fetched (resubmissions
	 * were fetched by the previous instance). */
	if ((uint16_t)(vq->last_used - used0) != (uint16_t)g_pushed_desc ||
	    ((uint16_t)(vq->last_avail - avail0) !=
	             (uint16_t)(g_fetched_desc - (uint16_t)(avail0 - used0)) &&
	     !vq->broken)) {
		fprintf(stderr,
		        "used moved %u for %" PRIu64 " descriptors answered; avail %u for %" PRIu64
		        " fetched\n",
		        (uint16_t)(vq->last_used - used0), g_pushed_desc,
		        (uint16_t)(vq->last_avail - avail0), g_fetched_desc);
		abort();
	}
	fuzz_stop_queue(vq);
	if (g_poller != NULL || g_channels != 0 || vq->started ||
	    vh_vq_position(vq) != vh_vq_packed_position(vq)) {
		abort();
	}
	/* A restart over our own region after a clean stop: nothing to resubmit, same place. */
	if (vq->pk->ifl != NULL && !vq->broken) {
		uint16_t used = vq->last_used, avail = vq->last_avail;

		vq->flush.queued = false;
		if (vh_vq_prepare(vq) != 0 || vq->pk->nresub != 0 ||
		    !same_pos(vq->last_used, used, qsize) ||
		    !same_pos(vq->last_avail, avail, qsize)) {
			fprintf(stderr,
			        "clean restart: resubmits %u, used %u -> %u, avail %u -> %u\n",
			        vq->pk ? vq->pk->nresub : 0, used, vq->last_used, avail,
			        vq->last_avail);
			abort();
		}
	}
out:
	forget_reactor();
	vh_vq_free_reqs(vq);
	memset(&s->inflight, 0, sizeof(s->inflight));
	free(ifl_buf);
	return 0;
}
