/* SPDX-License-Identifier: BSD-3-Clause */
/* Randomised self-checking virtio-blk workload (see io_engine.h). */
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io_engine.h"
#include "vh_test.h"

#define MAX_SECT 64u /* largest request: 32 KiB */

struct io_ctx {
	struct vh_fe_req req;
	struct vh_fe_iov iov[4];
	struct io_engine *e;
	unsigned int q;
	uint64_t buf;   /* GPA of the buffer; data starts 16 bytes in (room for a header) */
	uint64_t chunk; /* owned chunk, or UINT64_MAX */
	uint32_t op;
	uint64_t sector;
	uint32_t nsect;
	uint32_t dwz_flags;
	uint8_t expect; /* expected status */
	bool straddles; /* buffer crosses a region boundary */
	bool busy;
};

static uint64_t
rnd(struct io_engine *e)
{
	e->rng ^= e->rng >> 12;
	e->rng ^= e->rng << 25;
	e->rng ^= e->rng >> 27;
	return e->rng * 0x2545f4914f6cdd1dull;
}

static uint8_t *
data_ptr(struct io_ctx *c, uint32_t len)
{
	return vh_fe_gpa_to_ptr(c->e->mem, c->buf + 16, len);
}

static uint64_t
alloc_buf(struct io_engine *e, unsigned int i)
{
	uint64_t len = 16 + MAX_SECT * 512 + 1;
	unsigned int r;

	/* The first buffers straddle region boundaries (when regions are adjacent). */
	for (r = 0; r + 1 < e->mem->nregions && i == r * e->depth; r++) {
		uint64_t g = vh_fe_mem_alloc_across(e->mem, r, len, 16 + 1000 + rnd(e) % 4096);

		if (g != UINT64_MAX) {
			return g;
		}
	}
	return vh_fe_mem_alloc(e->mem, len, 64);
}

static bool
crosses(const struct vh_fe_mem *m, uint64_t gpa, uint64_t len)
{
	unsigned int r;

	for (r = 0; r < m->nregions; r++) {
		uint64_t end = m->regions[r].gpa + m->regions[r].size;

		if (gpa < end && gpa + len > end) {
			return true;
		}
	}
	return false;
}

int
io_engine_init(struct io_engine *e, struct vh_fe *fe, struct vh_fe_mem *mem, unsigned int nq,
               unsigned int depth, uint64_t seed)
{
	const struct vh_fe_info *in = vh_fe_info(fe);
	uint32_t bs;
	unsigned int i;

	memset(e, 0, sizeof(*e));
	e->fe = fe;
	e->mem = mem;
	e->nq = nq;
	e->depth = depth;
	e->rng = seed ? seed : 1;
	e->ops = IO_OP_ALL;
	e->straddle = true;
	e->layouts = VH_FE_L_INDIRECT | VH_FE_L_INLINE_HDR | VH_FE_L_INLINE_STATUS |
	             VH_FE_L_RANDOM_SPLIT | VH_FE_L_NO_MERGE;
	/* Narrow the layouts when hunting a bug: VH_TEST_LAYOUTS=<mask of VH_FE_L_*>. */
	if (getenv("VH_TEST_LAYOUTS")) {
		e->layouts = (unsigned int)strtoul(getenv("VH_TEST_LAYOUTS"), NULL, 0);
	}
	if (getenv("VH_TEST_OPMASK")) {
		e->ops = (unsigned int)strtoul(getenv("VH_TEST_OPMASK"), NULL, 0);
	}
	e->nsect = vh_fe_cfg_u64(fe, VH_BLK_CFG_CAPACITY);
	bs = vh_fe_has(in->features, VIRTIO_BLK_F_BLK_SIZE) ? vh_fe_cfg_u32(fe, VH_BLK_CFG_BLK_SIZE)
	                                                    : 512;
	e->blk_sect = bs >= 512 ? bs / 512 : 1;
	e->chunk_sect = MAX_SECT;
	if (e->blk_sect > MAX_SECT || e->nsect < 4 * MAX_SECT) {
		return -EINVAL;
	}
	e->nchunks = e->nsect / MAX_SECT;
	e->shadow = calloc(e->nsect, 512);
	e->known = calloc(e->nsect, 1);
	e->chunk_busy = calloc(e->nchunks, 1);
	e->ctx = calloc((size_t)nq * depth, sizeof(*e->ctx));
	if (!e->shadow || !e->known || !e->chunk_busy || !e->ctx) {
		return -ENOMEM;
	}
	for (i = 0; i < nq * depth; i++) {
		e->ctx[i].e = e;
		e->ctx[i].q = i / depth;
		e->ctx[i].buf = alloc_buf(e, i);
		if (e->ctx[i].buf == UINT64_MAX) {
			return -ENOMEM;
		}
		e->ctx[i].straddles = crosses(mem, e->ctx[i].buf, 16 + MAX_SECT * 512 + 1);
	}
	return 0;
}

void
io_engine_fini(struct io_engine *e)
{
	free(e->shadow);
	free(e->known);
	free(e->chunk_busy);
	free(e->ctx);
	memset(e, 0, sizeof(*e));
}

static uint32_t
pick_op(struct io_engine *e)
{
	static const struct {
		uint32_t op;
		unsigned int weight;
	} mix[] = {
	        {IO_OP_READ, 40}, {IO_OP_WRITE, 40}, {IO_OP_FLUSH, 4},  {IO_OP_GETID, 2},
	        {IO_OP_DISC, 4},  {IO_OP_WZ, 6},     {IO_OP_BADTYP, 2}, {IO_OP_OOR, 2},
	};
	unsigned int i, total = 0, x;

	for (i = 0; i < sizeof(mix) / sizeof(mix[0]); i++) {
		if (e->ops & mix[i].op) {
			total += mix[i].weight;
		}
	}
	x = (unsigned int)(rnd(e) % total);
	for (i = 0; i < sizeof(mix) / sizeof(mix[0]); i++) {
		if (!(e->ops & mix[i].op)) {
			continue;
		}
		if (x < mix[i].weight) {
			return mix[i].op;
		}
		x -= mix[i].weight;
	}
	return IO_OP_READ;
}

static bool
feature(struct io_engine *e, unsigned int bit)
{
	return vh_fe_has(vh_fe_info(e->fe)->features, bit);
}

/* Claim a free chunk and a block-aligned range inside it. */
static bool
pick_range(struct io_engine *e, struct io_ctx *c)
{
	uint64_t ch = rnd(e) % e->nchunks, tries;
	uint32_t nblk = e->chunk_sect / e->blk_sect, first, cnt;

	for (tries = 0; tries < e->nchunks && e->chunk_busy[ch]; tries++) {
		ch = (ch + 1) % e->nchunks;
	}
	if (e->chunk_busy[ch]) {
		return false;
	}
	e->chunk_busy[ch] = 1;
	c->chunk = ch;
	first = (uint32_t)(rnd(e) % nblk);
	cnt = 1 + (uint32_t)(rnd(e) % (nblk - first));
	c->sector = ch * e->chunk_sect + (uint64_t)first * e->blk_sect;
	c->nsect = cnt * e->blk_sect;
	return true;
}

/* Cut [0, len) of the data buffer into 1..4 iovecs. */
static unsigned int
split_iov(struct io_engine *e, struct io_ctx *c, uint32_t len)
{
	unsigned int n = 1 + (unsigned int)(rnd(e) % 4), i;
	uint32_t off = 0;

	if (n > len) {
		n = len;
	}
	for (i = 0; i < n; i++) {
		uint32_t left = len - off, piece;

		piece = i == n - 1 ? left : 1 + (uint32_t)(rnd(e) % (left - (n - 1 - i)));
		c->iov[i].gpa = c->buf + 16 + off;
		c->iov[i].len = piece;
		off += piece;
	}
	return n;
}

static void
fill_random(struct io_engine *e, uint8_t *p, uint32_t len)
{
	uint32_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		uint64_t v = rnd(e);

		memcpy(p + i, &v, 8);
	}
	for (; i < len; i++) {
		p[i] = (uint8_t)rnd(e);
	}
}

static void
prep_data_op(struct io_engine *e, struct io_ctx *c)
{
	struct vh_fe_req *r = &c->req;
	uint32_t len = c->nsect * 512;

	r->sector = c->sector;
	if (c->op == IO_OP_WRITE || c->op == IO_OP_OOR) {
		r->type = VIRTIO_BLK_T_OUT;
		fill_random(e, data_ptr(c, len), len);
		c->expect = e->readonly ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	} else {
		r->type = VIRTIO_BLK_T_IN;
		/* Poison: a read that writes nothing must not pass by luck. */
		memset(data_ptr(c, len), 0x5a, len);
		c->expect = VIRTIO_BLK_S_OK;
	}
	if (c->op == IO_OP_OOR) {
		/* Straddle or pass the end; sometimes a sector whose byte offset overflows. */
		uint64_t k = rnd(e) % 3;

		if (rnd(e) & 1) {
			r->type = VIRTIO_BLK_T_IN;
		}
		r->sector = k == 0 ? e->nsect - e->blk_sect : k == 1 ? e->nsect : UINT64_MAX - 7;
		c->nsect = 2 * e->blk_sect;
		len = c->nsect * 512;
		c->expect = VIRTIO_BLK_S_IOERR;
	}
	r->niov = split_iov(e, c, len);
}

static void
prep_dwz(struct io_engine *e, struct io_ctx *c)
{
	struct vh_fe_req *r = &c->req;
	bool wz = c->op == IO_OP_WZ;

	r->type = wz ? VIRTIO_BLK_T_WRITE_ZEROES : VIRTIO_BLK_T_DISCARD;
	c->dwz_flags = wz && (rnd(e) & 1) ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0;
	vh_fe_blk_dwz_seg(data_ptr(c, 16), c->sector, c->nsect, c->dwz_flags);
	c->iov[0] = (struct vh_fe_iov){c->buf + 16, 16};
	r->niov = 1;
	r->sector = 0;
	c->expect = e->readonly ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
}

/* Turn c into a fresh random request. Returns false if no op can be issued now. */
static bool
prep(struct io_engine *e, struct io_ctx *c)
{
	struct vh_fe_req *r = &c->req;
	uint32_t op = pick_op(e);

	memset(r, 0, sizeof(*r));
	r->iov = c->iov;
	c->chunk = UINT64_MAX;
	if ((op == IO_OP_DISC && !feature(e, VIRTIO_BLK_F_DISCARD)) ||
	    (op == IO_OP_WZ && !feature(e, VIRTIO_BLK_F_WRITE_ZEROES)) ||
	    (op == IO_OP_FLUSH && !feature(e, VIRTIO_BLK_F_FLUSH))) {
		op = IO_OP_READ;
	}
	c->op = op;
	if ((op & (IO_OP_READ | IO_OP_WRITE | IO_OP_DISC | IO_OP_WZ)) && !pick_range(e, c)) {
		return false;
	}
	switch (op) {
	case IO_OP_READ:
	case IO_OP_WRITE:
	case IO_OP_OOR:
		prep_data_op(e, c);
		break;
	case IO_OP_DISC:
	case IO_OP_WZ:
		prep_dwz(e, c);
		break;
	case IO_OP_FLUSH:
		r->type = VIRTIO_BLK_T_FLUSH;
		c->expect = VIRTIO_BLK_S_OK;
		break;
	case IO_OP_GETID:
		r->type = VIRTIO_BLK_T_GET_ID;
		memset(data_ptr(c, VIRTIO_BLK_ID_BYTES), 0x5a, VIRTIO_BLK_ID_BYTES);
		r->niov = split_iov(e, c, VIRTIO_BLK_ID_BYTES);
		c->expect = VIRTIO_BLK_S_OK;
		break;
	default:
		/* An unknown type with a readable payload, as a future driver might send. */
		r->type = 0x7f + (uint32_t)(rnd(e) % 3) * 0x100;
		r->niov = split_iov(e, c, 512);
		c->expect = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	r->layout = (unsigned int)rnd(e) & e->layouts;
	if (!e->straddle && c->straddles) {
		r->layout &= ~VH_FE_L_INDIRECT;
	}
	if (r->niov == 0) {
		r->layout &= ~(VH_FE_L_INLINE_HDR | VH_FE_L_INLINE_STATUS);
	}
	return true;
}

static int
check_read(struct io_engine *e, struct io_ctx *c)
{
	const uint8_t *d = data_ptr(c, c->nsect * 512);
	uint32_t s;

	for (s = 0; s < c->nsect; s++) {
		uint64_t sec = c->sector + s;

		if (!e->known[sec]) {
			memcpy(e->shadow + sec * 512, d + s * 512, 512);
			e->known[sec] = 1;
			continue;
		}
		if (memcmp(e->shadow + sec * 512, d + s * 512, 512) != 0) {
			fprintf(stderr,
			        "FAIL: q%u read sector %" PRIu64 " (req sector %" PRIu64
			        " +%u, layout 0x%x, niov %u) differs from shadow\n",
			        c->q, sec, c->sector, c->nsect, c->req.layout, c->req.niov);
			return -1;
		}
	}
	return 0;
}

static void
apply_write(struct io_engine *e, struct io_ctx *c)
{
	uint64_t off = c->sector * 512;

	if (c->op == IO_OP_WRITE) {
		memcpy(e->shadow + off, data_ptr(c, c->nsect * 512), c->nsect * 512ull);
		memset(e->known + c->sector, 1, c->nsect);
	} else if (c->op == IO_OP_WZ) {
		memset(e->shadow + off, 0, c->nsect * 512ull);
		memset(e->known + c->sector, 1, c->nsect);
	} else if (c->op == IO_OP_DISC) {
		/* Discarded data is unspecified (VIRTIO 1.2 §5.2.6.2): learn it on the next read.
		 */
		memset(e->known + c->sector, 0, c->nsect);
	}
}

static uint32_t
expected_used_len(const struct io_ctx *c)
{
	if (c->req.status != VIRTIO_BLK_S_OK) {
		return 0; /* not checked for failures */
	}
	if (c->op == IO_OP_READ) {
		return c->nsect * 512 + 1;
	}
	if (c->op == IO_OP_GETID) {
		return VIRTIO_BLK_ID_BYTES + 1;
	}
	return 1;
}

static int
check_done(struct io_engine *e, struct io_ctx *c)
{
	struct vh_fe_req *r = &c->req;
	uint32_t want_len = expected_used_len(c);
	int rc = 0;

	if (r->status != c->expect) {
		fprintf(stderr,
		        "FAIL: q%u type %u sector %" PRIu64 " nsect %u layout 0x%x: status %u, "
		        "expected %u\n",
		        c->q, r->type, r->sector, c->nsect, r->layout, r->status, c->expect);
		rc = -1;
	} else if (want_len && r->used_len != want_len) {
		fprintf(stderr, "FAIL: q%u type %u layout 0x%x: used len %u, expected %u\n", c->q,
		        r->type, r->layout, r->used_len, want_len);
		rc = -1;
	} else if (c->op == IO_OP_READ) {
		rc = check_read(e, c);
	} else if (c->op == IO_OP_GETID && e->serial) {
		char want[VIRTIO_BLK_ID_BYTES] = {0};

		memcpy(want, e->serial, strnlen(e->serial, sizeof(want)));
		if (memcmp(data_ptr(c, VIRTIO_BLK_ID_BYTES), want, sizeof(want)) != 0) {
			fprintf(stderr, "FAIL: GET_ID returned '%.20s', expected '%.20s'\n",
			        (char *)data_ptr(c, VIRTIO_BLK_ID_BYTES), want);
			rc = -1;
		}
	}
	if (rc == 0 && r->status == VIRTIO_BLK_S_OK) {
		apply_write(e, c);
	}
	if (c->chunk != UINT64_MAX) {
		e->chunk_busy[c->chunk] = 0;
	}
	c->busy = false;
	e->done++;
	if (rc) {
		e->errors++;
	}
	return rc;
}

int
io_engine_submit(struct io_engine *e, unsigned int n)
{
	unsigned int q, i, sent = 0;
	int rc;

	for (q = 0; q < e->nq && sent < n; q++) {
		struct vh_fe_vq *vq = vh_fe_vq(e->fe, q);

		for (i = 0; i < e->depth && sent < n; i++) {
			struct io_ctx *c = &e->ctx[q * e->depth + i];

			if (c->busy || !prep(e, c)) {
				continue;
			}
			rc = vh_fe_req_queue(vq, &c->req);
			if (rc == -ENOSPC) {
				if (c->chunk != UINT64_MAX) {
					e->chunk_busy[c->chunk] = 0;
				}
				break;
			}
			if (rc < 0) {
				fprintf(stderr, "FAIL: queue request: %s\n", strerror(-rc));
				return -1;
			}
			c->busy = true;
			sent++;
		}
		rc = vh_fe_vq_flush(vq);
		if (rc < 0) {
			fprintf(stderr, "FAIL: kick: %s\n", strerror(-rc));
			return -1;
		}
	}
	return (int)sent;
}

int
io_engine_reap(struct io_engine *e)
{
	struct vh_fe_req *done[64];
	unsigned int q;
	int n, i, total = 0;

	for (q = 0; q < e->nq; q++) {
		struct vh_fe_vq *vq = vh_fe_vq(e->fe, q);

		do {
			n = vh_fe_vq_poll(vq, done, 64);
			if (n < 0) {
				fprintf(stderr, "FAIL: q%u: device put a bad id in the used ring\n",
				        q);
				return -1;
			}
			for (i = 0; i < n; i++) {
				if (check_done(e, (struct io_ctx *)done[i]) < 0) {
					return -1;
				}
			}
			total += n;
		} while (n == 64);
	}
	return total;
}

unsigned int
io_engine_inflight(const struct io_engine *e)
{
	unsigned int q, n = 0;

	for (q = 0; q < e->nq; q++) {
		n += vh_fe_vq_inflight(vh_fe_vq(e->fe, q));
	}
	return n;
}

/* Sleep on the call eventfds (interrupt mode) or yield (poll mode) until something completes. */
static void
wait_some(struct io_engine *e, int timeout_ms)
{
	struct pollfd p[64];
	unsigned int q, n = 0;

	for (q = 0; q < e->nq && q < 64; q++) {
		struct vh_fe_vq *vq = vh_fe_vq(e->fe, q);

		/* A polling driver asked for no interrupts: waiting on the call fd would time out.
		 */
		if (vh_fe_vq_mode(vq) == VH_FE_POLL) {
			sched_yield();
			return;
		}
		if (vh_fe_vq_arm(vq)) {
			return;
		}
		p[n++] = (struct pollfd){.fd = vh_fe_vq_call_fd(vq), .events = POLLIN};
	}
	if (poll(p, n, timeout_ms) > 0) {
		for (q = 0; q < n; q++) {
			if (p[q].revents) {
				vh_fe_vq_ack_call(vh_fe_vq(e->fe, q));
			}
		}
	}
}

int
io_engine_run(struct io_engine *e, uint64_t ops, bool drain, int timeout_ms)
{
	int64_t deadline = vh_fe_now_ms() + timeout_ms;
	uint64_t issued = 0;
	int n;

	while (issued < ops || (drain && io_engine_inflight(e))) {
		if (issued < ops) {
			n = io_engine_submit(
			        e, (unsigned int)(ops - issued < 1024 ? ops - issued : 1024));
			if (n < 0) {
				return -1;
			}
			issued += (uint64_t)n;
		}
		n = io_engine_reap(e);
		if (n < 0) {
			return -1;
		}
		if (n == 0) {
			if (vh_fe_now_ms() > deadline) {
				fprintf(stderr,
				        "FAIL: timeout: %u requests in flight, %" PRIu64
				        " issued of %" PRIu64 "\n",
				        io_engine_inflight(e), issued, ops);
				return -1;
			}
			wait_some(e, 50);
		}
	}
	return 0;
}

int
io_sync(struct vh_fe *fe, unsigned int q, struct vh_fe_req *req, int timeout_ms)
{
	struct vh_fe_vq *vq = vh_fe_vq(fe, q);
	int rc;

	rc = vh_fe_req_submit(vq, req);
	if (rc < 0) {
		return rc;
	}
	return vh_fe_vq_drain(vq, timeout_ms);
}

int
io_smoke(struct vh_fe *fe, struct vh_fe_mem *mem, unsigned int q, uint64_t sector, uint32_t tag)
{
	uint64_t gw = vh_fe_mem_alloc(mem, 4096, 4096), gr = vh_fe_mem_alloc(mem, 4096, 4096);
	struct vh_fe_iov iw = {gw, 4096}, ir = {gr, 4096};
	struct vh_fe_req w = {.type = VIRTIO_BLK_T_OUT, .sector = sector, .iov = &iw, .niov = 1};
	struct vh_fe_req r = {.type = VIRTIO_BLK_T_IN, .sector = sector, .iov = &ir, .niov = 1};
	uint32_t *pw, *pr, i;
	int rc;

	if (gw == UINT64_MAX || gr == UINT64_MAX) {
		fprintf(stderr, "FAIL: io_smoke: out of guest RAM\n");
		return -1;
	}
	pw = vh_fe_gpa_to_ptr(mem, gw, 4096);
	pr = vh_fe_gpa_to_ptr(mem, gr, 4096);
	for (i = 0; i < 1024; i++) {
		pw[i] = tag ^ (uint32_t)(sector * 1024 + i) * 2654435761u;
		pr[i] = ~pw[i];
	}
	rc = io_sync(fe, q, &w, 10000);
	if (rc == 0) {
		rc = io_sync(fe, q, &r, 10000);
	}
	if (rc < 0) {
		fprintf(stderr, "FAIL: io_smoke q%u: %s\n", q, strerror(-rc));
		return -1;
	}
	if (w.status != VIRTIO_BLK_S_OK || r.status != VIRTIO_BLK_S_OK || r.used_len != 4097 ||
	    memcmp(pw, pr, 4096) != 0) {
		fprintf(stderr,
		        "FAIL: io_smoke q%u sector %" PRIu64 ": write status %u, read status "
		        "%u used len %u, data %s\n",
		        q, sector, w.status, r.status, r.used_len,
		        memcmp(pw, pr, 4096) ? "differs" : "ok");
		return -1;
	}
	return 0;
}
