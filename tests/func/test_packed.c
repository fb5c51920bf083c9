/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Packed virtqueues (VIRTIO_F_RING_PACKED) end to end: the daemon with a packed_ring controller
 * and the test front-end driving packed rings as Linux does.
 *
 * - negotiation: the feature is offered only by a controller created with packed_ring, and a
 *   driver that does not ack it gets split rings from the same controller;
 * - verified I/O of every request type (shadow-checked, random layouts: direct chains, random
 *   cuts, inline header/status, indirect tables, buffers straddling regions) on 1 and 4 queues,
 *   EVENT_IDX on and off, polling and interrupt mode;
 * - wrap-around at every queue size from 1 to 32768: at least four laps of the ring with
 *   verified writes and reads, chains of 1 (indirect) to 6 descriptors, then GET_VRING_BASE
 *   must give the driver's positions and wrap counters, and the ring resumes from them;
 * - chains across the end of the ring: every start offset of 3- to 8-descriptor chains in an
 *   8-entry ring;
 * - out-of-order completion: completions held back at random by the RAM disk, checked to come
 *   back out of order, every request exactly once, data verified;
 * - stop and restart under load, positions carried by GET_VRING_BASE/SET_VRING_BASE.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "io_engine.h"
#include "vh_test.h"

#define TIMEOUT_MS 30000
#define BLK        4096u

static uint64_t g_seed;

static uint32_t
pos_base16(const struct vh_fe_vq *vq, uint16_t pos)
{
	uint16_t size = vh_fe_vq_size(vq);

	return (uint32_t)(pos & (size - 1)) | ((pos & size) ? 0 : 0x8000u);
}

/* What GET_VRING_BASE must say for a drained packed ring: the driver's own positions. */
static uint32_t
expected_base(const struct vh_fe_vq *vq)
{
	return pos_base16(vq, vh_fe_vq_next_avail(vq)) | pos_base16(vq, vh_fe_vq_next_used(vq))
	                                                         << 16;
}

static uint64_t
packed_features(bool event_idx)
{
	uint64_t f = VH_FE_LINUX_FEATURES | (1ull << VIRTIO_F_RING_PACKED);

	return event_idx ? f : f & ~(1ull << VIRTIO_RING_F_EVENT_IDX);
}

/* ---- negotiation ------------------------------------------------------------------------ */

static int
test_negotiation(struct vh_target *t)
{
	struct vh_fe_mem_opts mo = {.size = 8 << 20};
	struct vh_fe_opts fo = {.num_queues = 1};
	char sock[108];
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	json_t *p;
	int rc;

	/* The packed controller offers it; a Linux driver that does not ack it gets split rings. */
	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	rc = vh_fe_has(vh_fe_info(fe)->backend_features, VIRTIO_F_RING_PACKED) ? 0 : -1;
	if (rc == 0) {
		rc = vh_fe_start(fe, VH_FE_LINUX_FEATURES, 0);
	}
	if (rc == 0 && vh_fe_vq_is_packed(vh_fe_vq(fe, 0))) {
		rc = -1;
	}
	if (rc == 0) {
		rc = io_smoke(fe, mem, 0, 64, 1);
	}
	if (rc == 0) {
		rc = vh_fe_stop(fe);
	}
	vh_test_fe_close(mem, fe);
	T_CHECK(rc == 0, "split driver on a packed_ring controller");

	/* A controller created without packed_ring does not offer it. */
	p = json_pack("{s:s, s:I, s:i}", "name", "Split0", "num_blocks", (json_int_t)2048,
	              "block_size", 512);
	T_OK(vh_target_rpc(t, "bdev_malloc_create", p, NULL));
	p = json_pack("{s:s, s:s, s:s}", "ctrlr", "split.0", "dev_name", "Split0", "cpumask",
	              "0x1");
	T_OK(vh_target_rpc(t, "vhost_create_blk_controller", p, NULL));
	vh_daemon_path(&t->d, "split.0", sock, sizeof(sock));
	T_OK(vh_fe_mem_create(&mem, &mo));
	fo.path = sock;
	T_OK(vh_fe_create(&fe, mem, &fo));
	rc = vh_fe_connect(fe, 0);
	if (rc == 0) {
		rc = vh_fe_init(fe, true);
	}
	if (rc == 0 && vh_fe_has(vh_fe_info(fe)->backend_features, VIRTIO_F_RING_PACKED)) {
		fprintf(stderr,
		        "FAIL: a controller without packed_ring offers VIRTIO_F_RING_PACKED\n");
		rc = -1;
	}
	vh_test_fe_close(mem, fe);
	T_OK(rc);
	p = json_pack("{s:s}", "ctrlr", "split.0");
	T_OK(vh_target_rpc(t, "vhost_delete_controller", p, NULL));
	fprintf(stderr, "negotiation: ok\n");
	return 0;
}

/* ---- verified I/O ----------------------------------------------------------------------- */

static int
run_engine(struct vh_target *t, unsigned int nq, bool event_idx, enum vh_fe_irq mode, uint64_t ops)
{
	struct vh_fe_mem_opts mo = {.size = 32 << 20, .nregions = 3};
	struct vh_fe_opts fo = {.num_queues = nq, .driver_features = packed_features(event_idx)};
	struct vh_fe_vq_stats st;
	struct vh_fe_mem *mem;
	struct io_engine e;
	struct vh_fe *fe;
	uint64_t calls = 0;
	int rc = -1;

	fprintf(stderr, "engine: %u queue(s), event_idx %s, %s mode\n", nq,
	        event_idx ? "on" : "off", mode == VH_FE_POLL ? "poll" : "interrupt");
	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	if (vh_fe_start(fe, 0, 0) < 0 || !vh_fe_vq_is_packed(vh_fe_vq(fe, 0))) {
		fprintf(stderr, "FAIL: start with packed rings\n");
		goto out;
	}
	for (unsigned int q = 0; q < nq; q++) {
		vh_fe_vq_set_mode(vh_fe_vq(fe, q), mode);
	}
	if (io_engine_init(&e, fe, mem, nq, 16, g_seed + nq * 4 + event_idx * 2 + mode) < 0) {
		fprintf(stderr, "FAIL: engine init\n");
		goto out;
	}
	e.serial = t->name;
	rc = io_engine_run(&e, ops, true, TIMEOUT_MS);
	for (unsigned int q = 0; q < nq; q++) {
		vh_fe_vq_ack_call(vh_fe_vq(fe, q));
		vh_fe_vq_stats(vh_fe_vq(fe, q), &st);
		calls += st.calls;
		if (rc == 0 && (st.completed == 0 || st.bad_used)) {
			fprintf(stderr,
			        "FAIL: queue %u: %" PRIu64 " completed, %" PRIu64 " bad used\n", q,
			        st.completed, st.bad_used);
			rc = -1;
		}
	}
	if (rc == 0 && mode == VH_FE_INTERRUPT && calls == 0) {
		fprintf(stderr, "FAIL: interrupt mode but the call eventfd never fired\n");
		rc = -1;
	}
	io_engine_fini(&e);
	if (rc == 0 && vh_fe_stop(fe) < 0) {
		fprintf(stderr, "FAIL: stop\n");
		rc = -1;
	}
out:
	vh_test_fe_close(mem, fe);
	return rc;
}

/* ---- a small verified workload with chosen layouts --------------------------------------- */

struct slot {
	struct vh_fe_req req;
	struct vh_fe_iov iov;
	uint8_t *buf;
	uint64_t block;
	uint32_t gen;
	bool reading;
	bool busy;
};

struct wl {
	struct vh_fe *fe;
	struct vh_fe_vq *vq;
	struct slot *s;
	unsigned int nslots;
	uint64_t nblocks;
	uint32_t *gen; /* per block: generation written (0: never) */
	uint64_t rng;
	uint64_t done, desc_used;
	unsigned int layout_mode; /* 0 indirect, 1 direct, 2 direct cut in 1 KiB pieces, 3 mixed */
	uint32_t cut;             /* if set: direct, data cut in pieces of at most this */
};

static uint64_t
rnd(uint64_t *r)
{
	*r ^= *r >> 12;
	*r ^= *r << 25;
	*r ^= *r >> 27;
	return *r * 0x2545f4914f6cdd1dull;
}

static void
fill(uint8_t *b, uint64_t block, uint32_t gen)
{
	uint64_t r = block * 0x9e3779b97f4a7c15ull + gen;

	for (unsigned int i = 0; i < BLK; i += 8) {
		uint64_t v = rnd(&r);

		memcpy(b + i, &v, 8);
	}
}

static unsigned int
pick_layout(struct wl *w, struct slot *s)
{
	unsigned int m = w->layout_mode == 3 ? (unsigned int)(rnd(&w->rng) % 3) : w->layout_mode;

	if (w->cut) {
		s->req.max_desc_len = w->cut;
		return VH_FE_L_NO_MERGE;
	}
	s->req.max_desc_len = m == 2 ? 1024 : 0;
	return m == 0 ? VH_FE_L_INDIRECT : VH_FE_L_NO_MERGE;
}

/* Queue the slot's next request: a write of a new generation, or the read that checks it. */
static int
wl_queue(struct wl *w, struct slot *s)
{
	struct vh_fe_req *r = &s->req;

	memset(r, 0, sizeof(*r));
	r->iov = &s->iov;
	r->niov = 1;
	r->layout = pick_layout(w, s);
	r->sector = s->block * (BLK / 512);
	if (!s->reading) {
		s->gen = w->gen[s->block] + 1;
		fill(s->buf, s->block, s->gen);
		r->type = VIRTIO_BLK_T_OUT;
	} else {
		memset(s->buf, 0xa5, BLK);
		r->type = VIRTIO_BLK_T_IN;
	}
	T_OK(vh_fe_req_queue(w->vq, r));
	s->busy = true;
	return 0;
}

static int
wl_check(struct wl *w, struct slot *s)
{
	uint8_t want[BLK];

	s->busy = false;
	T_CHECK(s->req.status == VIRTIO_BLK_S_OK, "block %" PRIu64 ": status %u", s->block,
	        s->req.status);
	w->done++;
	w->desc_used += s->req.ndesc;
	if (!s->reading) {
		w->gen[s->block] = s->gen;
		s->reading = true;
		return 0;
	}
	fill(want, s->block, w->gen[s->block]);
	T_CHECK(memcmp(want, s->buf, BLK) == 0 && s->req.used_len == BLK + 1,
	        "block %" PRIu64 " generation %u read back wrong (used len %u)", s->block,
	        w->gen[s->block], s->req.used_len);
	s->reading = false;
	s->block = (s->block + w->nslots) % w->nblocks; /* next block of this slot */
	return 0;
}

/* Run until @descs ring descriptors were used (or @reqs requests, whichever first). */
static int
wl_run(struct wl *w, uint64_t descs, uint64_t reqs)
{
	uint64_t deadline = (uint64_t)vh_fe_now_ms() + TIMEOUT_MS, start = w->done,
	         d0 = w->desc_used;
	struct vh_fe_req *done[64];
	bool more = true;

	for (;;) {
		int n;

		more = w->desc_used - d0 < descs && w->done - start < reqs;
		for (unsigned int i = 0; more && i < w->nslots; i++) {
			if (!w->s[i].busy) {
				int rc = wl_queue(w, &w->s[i]);

				if (rc < 0) {
					return rc;
				}
			}
		}
		T_OK(vh_fe_vq_flush(w->vq));
		n = vh_fe_vq_poll(w->vq, done, 64);
		T_CHECK(n >= 0, "bad used descriptor (duplicate or invented id)");
		for (int i = 0; i < n; i++) {
			T_OK(wl_check(w, (struct slot *)(void *)done[i]));
		}
		if (!more && vh_fe_vq_inflight(w->vq) == 0) {
			return 0;
		}
		T_CHECK((uint64_t)vh_fe_now_ms() < deadline, "no progress: %u in flight",
		        vh_fe_vq_inflight(w->vq));
		if (n == 0) {
			vh_fe_vq_wait(w->vq, 1);
		}
	}
}

static int
wl_init(struct wl *w, struct vh_fe *fe, struct vh_fe_mem *mem, unsigned int nslots,
        uint64_t nblocks)
{
	memset(w, 0, sizeof(*w));
	w->fe = fe;
	w->vq = vh_fe_vq(fe, 0);
	w->nslots = nslots;
	w->nblocks = nblocks;
	w->rng = g_seed | 1;
	w->s = calloc(nslots, sizeof(*w->s));
	w->gen = calloc(nblocks, sizeof(*w->gen));
	T_CHECK(w->s && w->gen, "calloc");
	for (unsigned int i = 0; i < nslots; i++) {
		uint64_t gpa = vh_fe_mem_alloc(mem, BLK, BLK);

		T_CHECK(gpa != UINT64_MAX, "guest RAM");
		w->s[i].buf = vh_fe_gpa_to_ptr(mem, gpa, BLK);
		w->s[i].iov = (struct vh_fe_iov){gpa, BLK};
		w->s[i].block = i;
	}
	return 0;
}

static void
wl_fini(struct wl *w)
{
	free(w->s);
	free(w->gen);
}

/* GET_VRING_BASE of a drained ring must be the driver's positions, wrap counters included. */
static int
check_stop_base(struct vh_fe *fe)
{
	struct vh_fe_vq *vq = vh_fe_vq(fe, 0);
	uint32_t want = expected_base(vq);

	T_OK(vh_fe_stop(fe));
	T_CHECK(vh_fe_vq_base32(vq) == want, "GET_VRING_BASE 0x%08x, the driver is at 0x%08x",
	        vh_fe_vq_base32(vq), want);
	return 0;
}

/* ---- wrap-around at every queue size ----------------------------------------------------- */

static int
run_wrap(struct vh_target *t, unsigned int size)
{
	struct vh_fe_mem_opts mo = {.size = 24 << 20};
	struct vh_fe_opts fo = {.num_queues = 1,
	                        .queue_size = size,
	                        .max_chain = 8,
	                        .driver_features = packed_features(true)};
	/* Direct chains are 3 descriptors, 6 when cut: keep them within the ring. */
	unsigned int mode = size < 4 ? 0 : size < 8 ? 1 : 3;
	unsigned int nslots = size < 4 ? size : size < 12 ? 1 : size / 6 < 16 ? size / 6 : 16;
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	struct wl w;
	int rc;

	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	rc = wl_init(&w, fe, mem, nslots, 2048);
	if (rc == 0) {
		w.layout_mode = mode;
		rc = vh_fe_start(fe, 0, 0);
	}
	/* Four laps: both wrap counter values, each at least twice. */
	if (rc == 0) {
		rc = wl_run(&w, 4ull * size + 7, UINT64_MAX);
	}
	if (rc == 0) {
		rc = check_stop_base(fe);
	}
	/* Resume from that position and do another lap and a half. */
	if (rc == 0) {
		rc = vh_fe_start(fe, 0, 0);
	}
	if (rc == 0) {
		rc = wl_run(&w, 3ull * size / 2 + 3, UINT64_MAX);
	}
	if (rc == 0) {
		rc = check_stop_base(fe);
	}
	if (rc == 0) {
		fprintf(stderr,
		        "wrap: size %5u: %" PRIu64 " requests, %" PRIu64
		        " descriptors, stopped at 0x%08x\n",
		        size, w.done, w.desc_used, vh_fe_vq_base32(vh_fe_vq(fe, 0)));
	}
	wl_fini(&w);
	vh_test_fe_close(mem, fe);
	return rc;
}

/* ---- chains across the end of the ring --------------------------------------------------- */

static int
test_chains_across_wrap(struct vh_target *t)
{
	struct vh_fe_mem_opts mo = {.size = 16 << 20};
	struct vh_fe_opts fo = {
	        .num_queues = 1, .queue_size = 8, .driver_features = packed_features(true)};
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	struct wl w;
	int rc;

	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	rc = wl_init(&w, fe, mem, 1, 64);
	if (rc == 0) {
		rc = vh_fe_start(fe, 0, 0);
	}
	/*
	 * One request at a time, chains of 3 + k descriptors (data cut in k + 1 pieces): the
	 * start offsets walk the whole 8-entry ring, so every chain length crosses its end.
	 */
	for (unsigned int k = 0; rc == 0 && k <= 5; k++) {
		w.cut = BLK / (k + 1) + (BLK % (k + 1) ? 1 : 0);
		/* 8 writes and 8 reads: 16 chains of k + 3 descriptors, one at a time. */
		rc = wl_run(&w, UINT64_MAX, 16);
	}
	if (rc == 0) {
		rc = check_stop_base(fe);
	}
	wl_fini(&w);
	vh_test_fe_close(mem, fe);
	T_OK(rc);
	fprintf(stderr, "chains across the wrap: ok\n");
	return 0;
}

/* ---- out-of-order completion ------------------------------------------------------------- */

static int
set_delay(struct vh_target *t, unsigned int us)
{
	json_t *p = json_pack("{s:s, s:i}", "name", t->bdev, "max_delay_us", (int)us);

	return vh_target_rpc(t, "bdev_set_test_delay", p, NULL);
}

static int
test_out_of_order(struct vh_target *t)
{
	struct vh_fe_mem_opts mo = {.size = 16 << 20};
	struct vh_fe_opts fo = {
	        .num_queues = 1, .queue_size = 128, .driver_features = packed_features(true)};
	struct vh_fe_req *done[64];
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	uint64_t ooo = 0, seq = 0, seqs[32];
	struct wl w;
	int rc;

	T_OK(set_delay(t, 800));
	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	rc = wl_init(&w, fe, mem, 16, 1024);
	if (rc == 0) {
		rc = vh_fe_start(fe, 0, 0);
	}
	w.layout_mode = 3;
	/* 16 in flight, 2000 completions; an older request still in flight = out of order. */
	for (unsigned int round = 0; rc == 0 && w.done < 2000; round++) {
		int n;

		for (unsigned int i = 0; rc == 0 && i < w.nslots; i++) {
			if (!w.s[i].busy) {
				rc = wl_queue(&w, &w.s[i]);
				seqs[i] = ++seq;
			}
		}
		if (rc == 0) {
			rc = vh_fe_vq_flush(w.vq) < 0 ? -1 : 0;
		}
		n = rc == 0 ? vh_fe_vq_poll(w.vq, done, 64) : -1;
		if (n < 0) {
			rc = -1;
			break;
		}
		for (int i = 0; i < n && rc == 0; i++) {
			unsigned int si = (unsigned int)((struct slot *)(void *)done[i] - w.s);

			for (unsigned int j = 0; j < w.nslots; j++) {
				if (w.s[j].busy && j != si && seqs[j] < seqs[si]) {
					ooo++;
					break;
				}
			}
			rc = wl_check(&w, &w.s[si]);
		}
		if (rc == 0 && n == 0) {
			vh_fe_vq_wait(w.vq, 2);
		}
	}
	if (rc == 0) {
		rc = wl_run(&w, 0, 0); /* drain */
	}
	if (rc == 0) {
		rc = check_stop_base(fe);
	}
	wl_fini(&w);
	vh_test_fe_close(mem, fe);
	T_OK(set_delay(t, 0));
	T_OK(rc);
	T_CHECK(ooo > 100, "only %" PRIu64 " out-of-order completions in %" PRIu64, ooo, w.done);
	fprintf(stderr,
	        "out-of-order: %" PRIu64 " of %" PRIu64 " completions overtook an older "
	        "request; all verified\n",
	        ooo, w.done);
	return 0;
}

/* ---- stop and restart under load --------------------------------------------------------- */

static int
test_restarts(struct vh_target *t)
{
	struct vh_fe_mem_opts mo = {.size = 16 << 20};
	struct vh_fe_opts fo = {
	        .num_queues = 1, .queue_size = 32, .driver_features = packed_features(true)};
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	struct wl w;
	int rc;

	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	rc = wl_init(&w, fe, mem, 5, 512);
	w.layout_mode = 3;
	for (unsigned int i = 0; rc == 0 && i < 20; i++) {
		rc = vh_fe_start(fe, 0, 0);
		if (rc == 0) {
			rc = wl_run(&w, UINT64_MAX, 7 + rnd(&w.rng) % 40);
		}
		if (rc == 0) {
			rc = check_stop_base(fe);
		}
	}
	wl_fini(&w);
	vh_test_fe_close(mem, fe);
	T_OK(rc);
	fprintf(stderr, "restarts: 20 stop/start cycles, positions carried: ok\n");
	return 0;
}

int
main(void)
{
	struct vh_target_opts to = {.packed_ring = true, .packed_recovery = true};
	struct vh_target t;
	int rc, fails = 0;

	if (vh_test_qsd()) {
		fprintf(stderr, "SKIP: qemu-storage-daemon has no packed rings\n");
		return VH_TEST_SKIP;
	}
	g_seed = vh_test_seed("test_packed");
	rc = vh_target_start(&t, &to);
	if (rc == VH_TEST_SKIP) {
		return VH_TEST_SKIP;
	}
	if (rc < 0) {
		return VH_TEST_FAIL;
	}
	fails += test_negotiation(&t) < 0;
	fails += run_engine(&t, 1, true, VH_FE_POLL, 3000) < 0;
	fails += run_engine(&t, 1, true, VH_FE_INTERRUPT, 3000) < 0;
	fails += run_engine(&t, 1, false, VH_FE_INTERRUPT, 2000) < 0;
	fails += run_engine(&t, 4, true, VH_FE_POLL, 6000) < 0;
	fails += run_engine(&t, 4, false, VH_FE_INTERRUPT, 6000) < 0;
	for (unsigned int size = 1; size <= 32768; size *= 2) {
		fails += run_wrap(&t, size) < 0;
	}
	fails += test_chains_across_wrap(&t) < 0;
	fails += test_out_of_order(&t) < 0;
	fails += test_restarts(&t) < 0;
	if (vh_target_stop(&t) < 0) {
		fails++;
	}
	fprintf(stderr, "%s (%d failure(s))\n", fails ? "FAIL" : "PASS", fails);
	return fails ? VH_TEST_FAIL : VH_TEST_PASS;
}
