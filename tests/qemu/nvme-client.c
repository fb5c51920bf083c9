/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * nvme-client: a small vhost-user-blk initiator (tests/lib front-end) for the NVMe guest tests
 * (tests/qemu/test-nvme-*.sh). It runs inside the TCG guest next to vhostd and drives a
 * vhost-blk controller whose bdev is an NVMe namespace attached with the user-space driver.
 *
 *   nvme-client --socket PATH [--huge DIR] [--size MIB] [--seconds S] [--qd N] [--seed N]
 *               [--gen N] MODE
 *
 * MODE:
 *   verify  random writes and read-backs with verification at queue depth --qd (default 32)
 *           for --seconds (default 5) over the first --size MiB (default 32), of 1 block to
 *           --max-kb KiB (default 256; larger ones are split by the driver), with awkward
 *           buffer layouts: page-aligned, offset into a page, scattered 512-byte-granular
 *           iovecs, randomly split descriptors. Then reads all written data back once more.
 *   dwz     flush, discard and write-zeroes: fill 8 MiB, discard 1 MiB and write-zeroes
 *           1 MiB (and the UNMAP flavour, and a small one), read back: write-zeroes ranges are
 *           zero, neighbours keep their data; a discarded range must read back zero only when
 *           the device says so (printed either way).
 *   bench   4 KiB random reads at --qd for --seconds, prints "IOPS <n>" (fallback when
 *           vhost-bench is not built).
 *   fill    write generation --gen (default 1) over the first --size MiB, 1 MiB requests.
 *   check   read the first --size MiB back and check generation --gen (across a detach or a
 *           restart of the back-end).
 * --huge DIR puts the "guest RAM" on hugetlbfs (so vhostd's UIO mode can DMA into it without
 * bouncing). Exit: 0 ok, 1 failure, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frontend.h"

/* Every in-flight I/O stays inside one free cell of CELL bytes (--max-kb, default 256). */
static uint32_t CELL = 256u * 1024;
#define SLOT_BUF      (CELL + 64 * 1024)
#define MAX_QD        64
#define TIMEOUT       20000 /* ms: bound on any wait for a completion */
#define MIN_U64(a, b) ((a) < (b) ? (a) : (b))

static struct vh_fe *fe;
static struct vh_fe_mem *mem;
static struct vh_fe_vq *vq;
static uint64_t capacity; /* bytes */
static uint32_t blk;      /* logical block size */
static uint32_t size_max; /* per-descriptor limit the device asks for (0 = none) */
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t
rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t
mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/* Content of 512-byte sector @sec at generation @gen (gen 0 = never written: not checked). */
static void
fill_sector(uint8_t *p, uint64_t sec, uint32_t gen)
{
	uint64_t *w = (uint64_t *)p;

	for (unsigned i = 0; i < 64; i++) {
		w[i] = mix(sec * 1000003u + ((uint64_t)gen << 40) + i);
	}
}

/* ---- one request slot: a buffer and a request ------------------------------------------- */

struct slot {
	struct vh_fe_req req;
	struct vh_fe_iov iov[16];
	uint64_t buf;   /* GPA of SLOT_BUF bytes */
	uint64_t sec;   /* first sector */
	uint32_t len;   /* bytes */
	uint32_t cell;  /* busy cell */
	uint32_t *gens; /* write: generations written (per sector) */
	bool write;
	bool busy;
};

static struct slot slots[MAX_QD];
static uint32_t *sector_gen; /* expected generation of each sector of the test area */
static uint8_t *cell_busy;
static uint64_t area_sectors;
static uint64_t nerrors, nverified, nwrites, nreads;

/*
 * Describe @len bytes of the slot's buffer as iovecs in one of four layouts. Returns niov and
 * sets req->layout. The data is always taken/put in iovec order, contiguous in "disk" terms.
 */
static unsigned
make_layout(struct slot *s, uint32_t len, unsigned kind)
{
	unsigned n = 0;

	s->req.layout = 0;
	switch (kind) {
	case 0: /* one page-aligned buffer */
		s->iov[0] = (struct vh_fe_iov){s->buf, len};
		return 1;
	case 1: /* one buffer starting 512 bytes into a page (PRP1 offset) */
		s->iov[0] = (struct vh_fe_iov){s->buf + 512, len};
		return 1;
	case 2: { /* scattered pieces, 512-byte granular, gaps between them */
		uint64_t gpa = s->buf + 512 * (rnd() % 8);
		uint32_t left = len;

		while (left > 0 && n < 16) {
			uint32_t piece = n == 15 ? left : (uint32_t)(512 * (1 + rnd() % 24));

			piece = piece > left ? left : piece;
			s->iov[n++] = (struct vh_fe_iov){gpa, piece};
			gpa += piece + 512 * (rnd() % 3);
			left -= piece;
		}
		return n;
	}
	default: /* contiguous, descriptors cut at random points */
		s->iov[0] = (struct vh_fe_iov){s->buf, len};
		s->req.layout = VH_FE_L_RANDOM_SPLIT;
		return 1;
	}
}

/* Copy between the slot's iovecs and a flat buffer. */
static void
iov_copy(struct slot *s, uint8_t *flat, bool to_iov)
{
	uint32_t pos = 0;

	for (unsigned i = 0; i < s->req.niov; i++) {
		uint8_t *p = vh_fe_gpa_to_ptr(mem, s->iov[i].gpa, s->iov[i].len);

		if (to_iov) {
			memcpy(p, flat + pos, s->iov[i].len);
		} else {
			memcpy(flat + pos, p, s->iov[i].len);
		}
		pos += s->iov[i].len;
	}
}

static uint8_t *flatbuf;

static int
submit(struct slot *s, bool write, uint64_t sec, uint32_t len, unsigned kind)
{
	int rc;

	s->write = write;
	s->sec = sec;
	s->len = len;
	s->req = (struct vh_fe_req){
	        .type = write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, .sector = sec, .iov = s->iov};
	s->req.niov = make_layout(s, len, kind);
	s->req.max_desc_len = size_max;
	if (write) {
		for (uint32_t i = 0; i < len / 512; i++) {
			uint32_t g = (uint32_t)(rnd() | 1);

			s->gens[i] = g;
			fill_sector(flatbuf + 512 * i, sec + i, g);
		}
		iov_copy(s, flatbuf, true);
	} else {
		for (unsigned i = 0; i < s->req.niov; i++) {
			memset(vh_fe_gpa_to_ptr(mem, s->iov[i].gpa, s->iov[i].len), 0xee,
			       s->iov[i].len);
		}
	}
	rc = vh_fe_req_queue(vq, &s->req);
	if (rc < 0) {
		fprintf(stderr, "queue: %s\n", strerror(-rc));
		return rc;
	}
	s->busy = true;
	return 0;
}

/* Check a completed request; update the expected state. 0 or -1. */
static int
finish(struct slot *s)
{
	s->busy = false;
	cell_busy[s->cell] = 0;
	if (s->req.status != VIRTIO_BLK_S_OK) {
		fprintf(stderr, "%s sector %" PRIu64 " len %u: status %u\n",
		        s->write ? "write" : "read", s->sec, s->len, s->req.status);
		nerrors++;
		return -1;
	}
	if (s->write) {
		memcpy(&sector_gen[s->sec], s->gens, s->len / 512 * sizeof(uint32_t));
		nwrites++;
		return 0;
	}
	nreads++;
	iov_copy(s, flatbuf, false);
	for (uint32_t i = 0; i < s->len / 512; i++) {
		uint8_t want[512];
		uint32_t g = sector_gen[s->sec + i];

		if (g == 0) {
			continue;
		}
		fill_sector(want, s->sec + i, g);
		if (memcmp(want, flatbuf + 512 * i, 512) != 0) {
			fprintf(stderr,
			        "VERIFY MISMATCH: sector %" PRIu64 " (request sector %" PRIu64
			        " len %u, %u iovecs, layout %u): got %016" PRIx64
			        " want %016" PRIx64 "\n",
			        s->sec + i, s->sec, s->len, s->req.niov, s->req.layout,
			        *(uint64_t *)(flatbuf + 512 * i), *(uint64_t *)want);
			nerrors++;
			return -1;
		}
		nverified++;
	}
	return 0;
}

/* Reap completions until at most @keep are in flight. */
static int
reap(unsigned keep)
{
	struct vh_fe_req *done[MAX_QD];
	int64_t deadline = vh_fe_now_ms() + TIMEOUT;
	int rc = 0;

	vh_fe_vq_flush(vq);
	while (vh_fe_vq_inflight(vq) > keep) {
		int n = vh_fe_vq_poll(vq, done, MAX_QD);

		if (n < 0) {
			fprintf(stderr, "poll: %s\n", strerror(-n));
			return -1;
		}
		for (int i = 0; i < n; i++) {
			if (finish((struct slot *)done[i]) < 0) {
				rc = -1;
			}
		}
		if (n == 0 && vh_fe_now_ms() > deadline) {
			fprintf(stderr, "no completion within %d ms (%u in flight)\n", TIMEOUT,
			        vh_fe_vq_inflight(vq));
			return -1;
		}
		if (n > 0) {
			deadline = vh_fe_now_ms() + TIMEOUT;
		}
	}
	return rc;
}

static struct slot *
free_slot(unsigned qd)
{
	for (unsigned i = 0; i < qd; i++) {
		if (!slots[i].busy) {
			return &slots[i];
		}
	}
	return NULL;
}

/* A random I/O inside a random free cell. */
static int
random_io(unsigned qd, bool write)
{
	uint32_t ncells = (uint32_t)(area_sectors * 512 / CELL), cell, len, off;
	struct slot *s;

	if (reap(qd - 1) < 0) {
		return -1;
	}
	s = free_slot(qd);
	do {
		cell = (uint32_t)(rnd() % ncells);
	} while (cell_busy[cell]);
	cell_busy[cell] = 1;
	s->cell = cell;
	/* 1 block .. the cell, biased to small sizes, block-aligned */
	len = blk * (uint32_t)(1 + rnd() % (rnd() % 4 == 0 ? CELL / blk : 8));
	off = blk * (uint32_t)(rnd() % ((CELL - len) / blk + 1));
	return submit(s, write, ((uint64_t)cell * CELL + off) / 512, len, (unsigned)(rnd() % 4));
}

static int
run_verify(unsigned qd, double seconds)
{
	int64_t end = vh_fe_now_ms() + (int64_t)(seconds * 1000);
	uint64_t n = 0;

	/* Mixed phase: 50/50 random writes and verified reads. */
	while (vh_fe_now_ms() < end || n < 200) {
		if (random_io(qd, rnd() & 1) < 0) {
			return -1;
		}
		n++;
	}
	if (reap(0) < 0) {
		return -1;
	}
	/* Read everything back once, in 128 KiB requests, page-aligned. */
	for (uint64_t sec = 0; sec < area_sectors; sec += 256) {
		struct slot *s;

		if (reap(qd - 1) < 0) {
			return -1;
		}
		s = free_slot(qd);
		s->cell = 0;
		if (submit(s, false, sec, 128 * 1024, 0) < 0) {
			return -1;
		}
	}
	if (reap(0) < 0) {
		return -1;
	}
	printf("verify: %" PRIu64 " writes, %" PRIu64 " reads, %" PRIu64
	       " sectors verified, %" PRIu64 " errors\n",
	       nwrites, nreads, nverified, nerrors);
	return nerrors ? -1 : 0;
}

/* ---- dwz ------------------------------------------------------------------------------------ */

/* One synchronous request with a single data buffer (or none). Returns its status. */
static int
sync_req(uint32_t type, uint64_t sec, uint64_t gpa, uint32_t len, enum vh_fe_dir dir)
{
	struct vh_fe_iov iov = {gpa, len};
	struct vh_fe_req r = {.type = type,
	                      .sector = sec,
	                      .iov = &iov,
	                      .niov = len ? 1 : 0,
	                      .dir = dir,
	                      .max_desc_len = size_max};
	struct vh_fe_req *done;
	int64_t deadline = vh_fe_now_ms() + TIMEOUT;
	int rc;

	rc = vh_fe_req_submit(vq, &r);
	if (rc < 0) {
		fprintf(stderr, "submit type %u: %s\n", type, strerror(-rc));
		return -1;
	}
	while ((rc = vh_fe_vq_poll(vq, &done, 1)) == 0) {
		if (vh_fe_now_ms() > deadline) {
			fprintf(stderr, "type %u: no completion\n", type);
			return -1;
		}
	}
	return rc < 0 ? -1 : r.status;
}

static int
dwz_op(uint32_t type, uint64_t sec, uint32_t nsect, uint32_t flags, uint64_t seg_gpa)
{
	vh_fe_blk_dwz_seg(vh_fe_gpa_to_ptr(mem, seg_gpa, 16), sec, nsect, flags);
	return sync_req(type, 0, seg_gpa, 16, VH_FE_DIR_OUT);
}

/* Write @mib MiB of pattern from sector @sec (generation @gen). */
static int
fill(uint64_t big, uint64_t sec, uint32_t bytes, uint32_t gen)
{
	uint8_t *p = vh_fe_gpa_to_ptr(mem, big, bytes);

	for (uint32_t i = 0; i < bytes / 512; i++) {
		fill_sector(p + 512 * i, sec + i, gen);
	}
	return sync_req(VIRTIO_BLK_T_OUT, sec, big, bytes, VH_FE_DIR_OUT) == VIRTIO_BLK_S_OK ? 0
	                                                                                     : -1;
}

/* 0 when [sec, sec+bytes) reads back as generation @gen (or zeroes when gen == 0). */
static int
check(uint64_t big, uint64_t sec, uint32_t bytes, uint32_t gen, const char *what)
{
	uint8_t *p = vh_fe_gpa_to_ptr(mem, big, bytes), want[512];

	memset(p, 0xee, bytes);
	if (sync_req(VIRTIO_BLK_T_IN, sec, big, bytes, VH_FE_DIR_IN) != VIRTIO_BLK_S_OK) {
		fprintf(stderr, "%s: read failed\n", what);
		return -1;
	}
	for (uint32_t i = 0; i < bytes / 512; i++) {
		if (gen == 0) {
			memset(want, 0, 512);
		} else {
			fill_sector(want, sec + i, gen);
		}
		if (memcmp(p + 512 * i, want, 512) != 0) {
			fprintf(stderr, "%s: sector %" PRIu64 " is not %s\n", what, sec + i,
			        gen ? "the expected data" : "zero");
			return -1;
		}
	}
	return 0;
}

static int
run_dwz(void)
{
	const uint32_t MiB = 1 << 20, S = MiB / 512; /* sectors per MiB */
	uint64_t big = vh_fe_mem_alloc(mem, 8 * MiB, 4096), seg = vh_fe_mem_alloc(mem, 4096, 4096);
	uint64_t feat = vh_fe_info(fe)->features;
	int st;

	if (big == UINT64_MAX || seg == UINT64_MAX) {
		fprintf(stderr, "out of guest RAM\n");
		return -1;
	}
	printf("dwz: features flush=%d discard=%d write_zeroes=%d max_discard_sectors=%u "
	       "max_write_zeroes_sectors=%u wz_may_unmap=%u\n",
	       vh_fe_has(feat, VIRTIO_BLK_F_FLUSH), vh_fe_has(feat, VIRTIO_BLK_F_DISCARD),
	       vh_fe_has(feat, VIRTIO_BLK_F_WRITE_ZEROES),
	       vh_fe_cfg_u32(fe, VH_BLK_CFG_MAX_DISCARD_SECT),
	       vh_fe_cfg_u32(fe, VH_BLK_CFG_MAX_WZ_SECT),
	       *(uint8_t *)&vh_fe_info(fe)->config[VH_BLK_CFG_WZ_MAY_UNMAP]);
	if (!vh_fe_has(feat, VIRTIO_BLK_F_FLUSH) || !vh_fe_has(feat, VIRTIO_BLK_F_DISCARD) ||
	    !vh_fe_has(feat, VIRTIO_BLK_F_WRITE_ZEROES)) {
		fprintf(stderr, "dwz: the device lacks flush, discard or write-zeroes\n");
		return -1;
	}
	if (fill(big, 0, 8 * MiB, 7) < 0) {
		fprintf(stderr, "dwz: pattern write failed\n");
		return -1;
	}
	st = sync_req(VIRTIO_BLK_T_FLUSH, 0, 0, 0, VH_FE_DIR_OUT);
	if (st != VIRTIO_BLK_S_OK) {
		fprintf(stderr, "dwz: flush status %d\n", st);
		return -1;
	}
	if (check(big, 0, 8 * MiB, 7, "pattern") < 0) {
		return -1;
	}
	st = dwz_op(VIRTIO_BLK_T_DISCARD, 1 * S, S, 0, seg);
	if (st != VIRTIO_BLK_S_OK) {
		fprintf(stderr, "dwz: discard status %d\n", st);
		return -1;
	}
	st = dwz_op(VIRTIO_BLK_T_WRITE_ZEROES, 3 * S, S, 0, seg);
	if (st != VIRTIO_BLK_S_OK) {
		fprintf(stderr, "dwz: write-zeroes status %d\n", st);
		return -1;
	}
	st = dwz_op(VIRTIO_BLK_T_WRITE_ZEROES, 5 * S, S, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP, seg);
	if (st != VIRTIO_BLK_S_OK) {
		fprintf(stderr, "dwz: write-zeroes(unmap) status %d\n", st);
		return -1;
	}
	/* 8 KiB in the middle of a page-sized block run: sector-granular edges. */
	st = dwz_op(VIRTIO_BLK_T_WRITE_ZEROES, 7 * S + 8, 16, 0, seg);
	if (st != VIRTIO_BLK_S_OK) {
		fprintf(stderr, "dwz: small write-zeroes status %d\n", st);
		return -1;
	}
	if (sync_req(VIRTIO_BLK_T_FLUSH, 0, 0, 0, VH_FE_DIR_OUT) != VIRTIO_BLK_S_OK) {
		fprintf(stderr, "dwz: second flush failed\n");
		return -1;
	}
	if (check(big, 3 * S, MiB, 0, "write-zeroes range") < 0 ||
	    check(big, 5 * S, MiB, 0, "write-zeroes(unmap) range") < 0 ||
	    check(big, 7 * S + 8, 8192, 0, "small write-zeroes range") < 0 ||
	    check(big, 0, MiB, 7, "data before the discard") < 0 ||
	    check(big, 2 * S, MiB, 7, "data between discard and write-zeroes") < 0 ||
	    check(big, 4 * S, MiB, 7, "data between the write-zeroes") < 0 ||
	    check(big, 6 * S, MiB, 7, "data after write-zeroes(unmap)") < 0 ||
	    check(big, 7 * S, 4096, 7, "data before the small write-zeroes") < 0 ||
	    check(big, 7 * S + 24, MiB - 24 * 512, 7, "data after the small write-zeroes") < 0) {
		return -1;
	}
	/* A write-zeroes larger than one NVMe command (65536 blocks): the driver splits it. */
	for (uint64_t m = 8; m < 48; m += 8) {
		if (fill(big, m * S, 8 * MiB, 9) < 0) {
			fprintf(stderr, "dwz: second pattern write failed\n");
			return -1;
		}
	}
	st = dwz_op(VIRTIO_BLK_T_WRITE_ZEROES, 9 * S, 36 * S, 0, seg);
	if (st != VIRTIO_BLK_S_OK) {
		fprintf(stderr, "dwz: 36 MiB write-zeroes status %d\n", st);
		return -1;
	}
	for (uint64_t m = 9; m < 45; m += 4) {
		if (check(big, m * S, 4 * MiB, 0, "36 MiB write-zeroes range") < 0) {
			return -1;
		}
	}
	if (check(big, 8 * S, MiB, 9, "data before the 36 MiB write-zeroes") < 0 ||
	    check(big, 45 * S, 3 * MiB, 9, "data after the 36 MiB write-zeroes") < 0) {
		return -1;
	}
	printf("dwz: discarded range reads back %s\n",
	       check(big, 1 * S, MiB, 0, "discarded range (informational)") == 0 ? "zero"
	                                                                         : "NOT zero");
	printf("dwz: ok\n");
	return 0;
}

static int
run_fill_check(bool write, uint32_t gen)
{
	const uint32_t MiB = 1 << 20;
	uint64_t big = vh_fe_mem_alloc(mem, MiB, 4096);

	if (big == UINT64_MAX) {
		return -1;
	}
	for (uint64_t sec = 0; sec < area_sectors; sec += MiB / 512) {
		if (write ? fill(big, sec, MiB, gen) : check(big, sec, MiB, gen, "check")) {
			fprintf(stderr, "%s failed at sector %" PRIu64 "\n",
			        write ? "fill" : "check", sec);
			return -1;
		}
	}
	printf("%s: %" PRIu64 " MiB of generation %u\n", write ? "fill" : "check",
	       area_sectors >> 11, gen);
	return 0;
}

/* ---- bench ---------------------------------------------------------------------------------- */

static int
run_bench(unsigned qd, double seconds)
{
	uint64_t nblk = capacity / 4096, done_n = 0;
	struct vh_fe_req *done[MAX_QD];
	int64_t t0 = vh_fe_now_ms(), end = t0 + (int64_t)(seconds * 1000), deadline;

	for (unsigned i = 0; i < qd; i++) {
		slots[i].iov[0] = (struct vh_fe_iov){slots[i].buf, 4096};
	}
	for (;;) {
		bool stop = vh_fe_now_ms() >= end;

		for (unsigned i = 0; i < qd && !stop; i++) {
			struct slot *s = &slots[i];

			if (s->busy) {
				continue;
			}
			s->req = (struct vh_fe_req){.type = VIRTIO_BLK_T_IN,
			                            .sector = (rnd() % nblk) * 8,
			                            .iov = s->iov,
			                            .niov = 1};
			if (vh_fe_req_queue(vq, &s->req) < 0) {
				return -1;
			}
			s->busy = true;
		}
		vh_fe_vq_flush(vq);
		if (stop && vh_fe_vq_inflight(vq) == 0) {
			break;
		}
		deadline = vh_fe_now_ms() + TIMEOUT;
		int n;
		while ((n = vh_fe_vq_poll(vq, done, MAX_QD)) == 0) {
			if (vh_fe_now_ms() > deadline) {
				fprintf(stderr, "bench: no completion\n");
				return -1;
			}
		}
		if (n < 0) {
			return -1;
		}
		for (int i = 0; i < n; i++) {
			struct slot *s = (struct slot *)done[i];

			s->busy = false;
			if (s->req.status != VIRTIO_BLK_S_OK) {
				fprintf(stderr, "bench: read status %u\n", s->req.status);
				return -1;
			}
			done_n++;
		}
	}
	printf("IOPS %.0f\n", (double)done_n * 1000.0 / (double)(vh_fe_now_ms() - t0));
	return 0;
}

/* ---- main ----------------------------------------------------------------------------------- */

static void
usage(void)
{
	fprintf(stderr, "usage: nvme-client --socket PATH [--huge DIR] [--size MIB] [--seconds S] "
	                "[--qd N] [--seed N] [--gen N] [--max-kb N] verify|dwz|bench|fill|check\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {{"socket", required_argument, NULL, 's'},
	                                   {"huge", required_argument, NULL, 'H'},
	                                   {"size", required_argument, NULL, 'z'},
	                                   {"seconds", required_argument, NULL, 't'},
	                                   {"qd", required_argument, NULL, 'q'},
	                                   {"seed", required_argument, NULL, 'S'},
	                                   {"gen", required_argument, NULL, 'g'},
	                                   {"max-kb", required_argument, NULL, 'm'},
	                                   {NULL, 0, NULL, 0}};
	const char *sock = NULL, *huge = NULL, *mode;
	unsigned qd = 32, size_mib = 32, gen = 1;
	double seconds = 5;
	int c, rc;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's':
			sock = optarg;
			break;
		case 'H':
			huge = optarg;
			break;
		case 'z':
			size_mib = (unsigned)atoi(optarg);
			break;
		case 't':
			seconds = atof(optarg);
			break;
		case 'q':
			qd = (unsigned)atoi(optarg);
			break;
		case 'S':
			rng = strtoull(optarg, NULL, 0);
			break;
		case 'g':
			gen = (unsigned)atoi(optarg);
			break;
		case 'm':
			CELL = (uint32_t)atoi(optarg) * 1024;
			break;
		default:
			usage();
		}
	}
	if (sock == NULL || optind != argc - 1 || qd == 0 || qd > MAX_QD || size_mib == 0 ||
	    CELL < 64 * 1024 || CELL > 8u << 20 || CELL % 4096 != 0) {
		usage();
	}
	mode = argv[optind];

	struct vh_fe_mem_opts mo = {.size = 16ull * 1024 * 1024 + 2ull * qd * SLOT_BUF + (8u << 20),
	                            .hugetlbfs_dir = huge};
	struct vh_fe_opts fo = {.path = sock,
	                        .num_queues = 1,
	                        .queue_size = 256,
	                        .timeout_ms = 10000,
	                        .max_chain = 128};

	rc = vh_fe_mem_create(&mem, &mo);
	if (rc < 0) {
		fprintf(stderr, "guest RAM%s%s: %s\n", huge ? " on " : "", huge ? huge : "",
		        strerror(-rc));
		return 1;
	}
	rc = vh_fe_create(&fe, mem, &fo);
	if (rc == 0) {
		rc = vh_fe_connect(fe, 0);
	}
	if (rc == 0) {
		rc = vh_fe_init(fe, true);
	}
	if (rc == 0) {
		rc = vh_fe_start(fe, 0, 0);
	}
	if (rc < 0) {
		fprintf(stderr, "vhost-user connect/start %s: %s\n", sock, strerror(-rc));
		return 1;
	}
	vq = vh_fe_vq(fe, 0);
	vh_fe_vq_seed(vq, rng);
	capacity = vh_fe_cfg_u64(fe, VH_BLK_CFG_CAPACITY) * 512;
	blk = vh_fe_has(vh_fe_info(fe)->features, VIRTIO_BLK_F_BLK_SIZE)
	              ? vh_fe_cfg_u32(fe, VH_BLK_CFG_BLK_SIZE)
	              : 512;
	if (vh_fe_has(vh_fe_info(fe)->features, VIRTIO_BLK_F_SIZE_MAX)) {
		size_max = vh_fe_cfg_u32(fe, VH_BLK_CFG_SIZE_MAX);
	}
	area_sectors = MIN_U64((uint64_t)size_mib << 20, capacity) / CELL * CELL / 512;
	printf("device: %" PRIu64 " MiB, block size %u, guest RAM %s, test area %" PRIu64 " MiB\n",
	       capacity >> 20, blk, huge ? "hugetlbfs" : "memfd", area_sectors >> 11);
	if (area_sectors == 0 || blk < 512 || blk > 65536 || (blk & (blk - 1)) != 0) {
		fprintf(stderr, "unusable device geometry\n");
		return 1;
	}
	sector_gen = calloc(area_sectors, sizeof(*sector_gen));
	flatbuf = malloc(SLOT_BUF);
	cell_busy = calloc(area_sectors * 512 / CELL, 1);
	for (unsigned i = 0; i < qd; i++) {
		slots[i].buf = vh_fe_mem_alloc(mem, SLOT_BUF, 4096);
		slots[i].gens = calloc(CELL / 512, sizeof(uint32_t));
		if (slots[i].buf == UINT64_MAX || slots[i].gens == NULL) {
			fprintf(stderr, "out of memory\n");
			return 1;
		}
	}
	if (sector_gen == NULL || cell_busy == NULL || flatbuf == NULL) {
		return 1;
	}
	if (strcmp(mode, "verify") == 0) {
		rc = run_verify(qd, seconds);
	} else if (strcmp(mode, "dwz") == 0) {
		rc = run_dwz();
	} else if (strcmp(mode, "fill") == 0 || strcmp(mode, "check") == 0) {
		rc = run_fill_check(mode[0] == 'f', gen);
	} else if (strcmp(mode, "bench") == 0) {
		rc = run_bench(qd, seconds);
	} else {
		usage();
	}
	if (vh_fe_stop(fe) < 0) {
		fprintf(stderr, "stop failed\n");
		rc = -1;
	}
	vh_fe_destroy(fe);
	vh_fe_mem_destroy(mem);
	printf("nvme-client %s: %s\n", mode, rc == 0 ? "OK" : "FAILED");
	return rc == 0 ? 0 : 1;
}
