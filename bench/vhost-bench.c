/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-bench: a host-side vhost-user-blk initiator, to measure a target without a VM.
 *
 * The test front-end library (tests/lib/frontend.h) plays QEMU: guest RAM, connection,
 * negotiation, device start and stop. vb_run.c drives the rings with per-slot descriptor
 * templates from one pinned thread per CPU of --cpumask. This file glues them: options, setup,
 * the run, the optional idle period, and the report (text or JSON).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "frontend.h"
#include "vb.h"

#define MAX_CHAIN  4 /* library indirect tables: unused, keep them small */
#define MIN_QSIZE  128
#define MAX_QSIZE  32768
#define BUF_ALIGN  4096ull
#define HDR_STRIDE 64ull
#define HUGE_PAGE  ((uint64_t)2 << 20)
#define HUGE_DIR   "/dev/hugepages"
#define SETTLE_NS  500000000ull /* before the idle measurement: let the target go to sleep */
#define CONNECT_MS 200

struct bench {
	struct vb_opts o;
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	char huge_dir[256];
	unsigned int nseg;
	uint32_t seg_len;
	uint16_t qsize;
	uint64_t capacity; /* bytes */
	uint32_t blk_size;
	uint64_t offered;  /* target's virtio features */
	uint64_t features; /* negotiated */
	uint64_t per_q_blocks;
	struct vb_queue *qs;
	struct vb_thread *threads;
	uint32_t *gen;
	struct vb_job job;
	double target_cpu_run; /* percent of one core; < 0 = not measured */
	double target_cpu_idle;
	double idle_s;
};

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
fail(const char *fmt, ...)
{
	va_list ap;

	fputs("vhost-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return VB_EXIT_FAIL;
}

static uint64_t
align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
sleep_ns(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
	}
}

/* ---- target CPU time --------------------------------------------------------------------- */

/* utime + stime of pid in seconds, or -1. */
static double
proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f) {
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: fields restart after the last ')'. */
	p = strrchr(buf, ')');
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) {
		return -1;
	}
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

struct cpu_sample {
	double cpu_s;
	uint64_t ns;
};

static void
sample(const struct bench *b, struct cpu_sample *s)
{
	s->cpu_s = b->o.target_pid ? proc_cpu_s(b->o.target_pid) : -1;
	s->ns = mono_ns();
}

static double
cpu_pct(const struct cpu_sample *a, const struct cpu_sample *z)
{
	if (a->cpu_s < 0 || z->cpu_s < 0 || z->ns <= a->ns) {
		return -1;
	}
	return (z->cpu_s - a->cpu_s) * 1e9 / (double)(z->ns - a->ns) * 100.0;
}

/* ---- guest RAM --------------------------------------------------------------------------- */

static unsigned long
read_ulong(const char *path)
{
	unsigned long v = 0;
	FILE *f = fopen(path, "r");

	if (f) {
		if (fscanf(f, "%lu", &v) != 1) {
			v = 0;
		}
		fclose(f);
	}
	return v;
}

/* A hugetlbfs mount with 2 MiB pages (mount one on /dev/hugepages if there is none). */
static int
find_hugetlbfs(struct bench *b)
{
	char dev[256], dir[256], type[64], opts[512];
	FILE *f = fopen("/proc/mounts", "r");

	while (f && fscanf(f, "%255s %255s %63s %511s %*d %*d", dev, dir, type, opts) == 4) {
		if (strcmp(type, "hugetlbfs") == 0 &&
		    (strstr(opts, "pagesize=") == NULL || strstr(opts, "pagesize=2M") != NULL)) {
			snprintf(b->huge_dir, sizeof(b->huge_dir), "%s", dir);
			fclose(f);
			return 0;
		}
	}
	if (f) {
		fclose(f);
	}
	if (read_ulong("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages") == 0) {
		return fail("--huge: no 2 MiB hugepages are reserved (echo N > "
		            "/proc/sys/vm/nr_hugepages)");
	}
	if (mkdir(HUGE_DIR, 0755) < 0 && errno != EEXIST) {
		return fail("--huge: no hugetlbfs mounted and cannot create %s: %s", HUGE_DIR,
		            strerror(errno));
	}
	if (mount("nodev", HUGE_DIR, "hugetlbfs", 0, "pagesize=2M") < 0) {
		return fail("--huge: no hugetlbfs mounted and mounting one on %s failed: %s (mount "
		            "-t hugetlbfs nodev %s)",
		            HUGE_DIR, strerror(errno), HUGE_DIR);
	}
	snprintf(b->huge_dir, sizeof(b->huge_dir), "%s", HUGE_DIR);
	return 0;
}

/*
 * Guest RAM per slot for its data. Merged layout: [header][data][status] back to back, the data
 * page-aligned, so the slot takes a page more.
 */
static uint64_t
slot_buf_size(const struct bench *b)
{
	if (b->o.ring.merged) {
		return align_up(b->o.bs + 1, BUF_ALIGN) + BUF_ALIGN;
	}
	return align_up(b->o.bs, BUF_ALIGN);
}

static uint64_t
ram_size(const struct bench *b)
{
	const struct vb_opts *o = &b->o;
	uint64_t n = b->qsize, per_q;

	/* The library's rings, header slots and indirect tables, each 64-byte aligned. */
	per_q = 16 * n + (6 + 2 * n) + (6 + 8 * n) + 32 * n + 16 * n * MAX_CHAIN + 5 * 64;
	per_q += HDR_STRIDE * o->iodepth + 64;
	per_q += slot_buf_size(b) * o->iodepth + BUF_ALIGN;
	/* Indirect tables: one chain per slot (the most descriptors any layout uses). */
	per_q += 16ull * (2 + b->nseg) * o->iodepth + 64;
	return align_up(per_q * o->queues + (2ull << 20), HUGE_PAGE);
}

static int
create_ram(struct bench *b)
{
	struct vh_fe_mem_opts mo = {.size = ram_size(b), .nregions = 1};
	unsigned long free_pages;
	int rc;

	if (b->o.huge) {
		if (!b->huge_dir[0]) {
			rc = find_hugetlbfs(b);
			if (rc) {
				return rc;
			}
		}
		free_pages = read_ulong("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages");
		if (free_pages < mo.size / HUGE_PAGE) {
			return fail("--huge: need %" PRIu64 " free 2 MiB hugepages, %lu free (echo "
			            "%" PRIu64 " > /proc/sys/vm/nr_hugepages)",
			            mo.size / HUGE_PAGE, free_pages,
			            read_ulong("/sys/kernel/mm/hugepages/hugepages-2048kB/"
			                       "nr_hugepages") +
			                    mo.size / HUGE_PAGE - free_pages);
		}
		mo.hugetlbfs_dir = b->huge_dir;
	}
	rc = vh_fe_mem_create(&b->mem, &mo);
	if (rc < 0) {
		return fail("guest RAM (%" PRIu64 " MiB%s): %s", mo.size >> 20,
		            b->o.huge ? " on hugetlbfs" : "", strerror(-rc));
	}
	return 0;
}

/* ---- connection -------------------------------------------------------------------------- */

static unsigned int
pow2_at_least(unsigned int v)
{
	unsigned int p = 1;

	while (p < v) {
		p <<= 1;
	}
	return p;
}

static int
explain_notsup(const struct bench *b)
{
	const struct vh_fe_info *in = vh_fe_info(b->fe);

	if (!vh_fe_has(in->backend_features, VHOST_USER_F_PROTOCOL_FEATURES)) {
		return fail("target refuses needed features: no VHOST_USER_F_PROTOCOL_FEATURES");
	}
	if (!vh_fe_has(in->protocol, VHOST_USER_PROTOCOL_F_CONFIG)) {
		return fail("target refuses needed features: no VHOST_USER_PROTOCOL_F_CONFIG");
	}
	if (in->queue_num < b->o.queues) {
		return fail("target refuses needed features: it has %" PRIu64
		            " queue(s), --queues asks for %u",
		            in->queue_num, b->o.queues);
	}
	return fail("target refuses needed features: no VIRTIO_F_VERSION_1 (features 0x%" PRIx64
	            ")",
	            in->backend_features);
}

/* What the "guest" acks: a Linux guest's set, or SPDK's, adjusted by the options. */
static uint64_t
driver_features(const struct vb_opts *o)
{
	uint64_t f = o->ring.spdk_features ? VH_FE_SPDK_FEATURES : VH_FE_LINUX_FEATURES;

	if (o->no_flush) {
		f &= ~((1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_CONFIG_WCE));
	}
	if (!o->ring.event_idx) {
		f &= ~(1ull << VIRTIO_RING_F_EVENT_IDX);
	}
	/* Acked only when used: a driver that acks it may still not use it, but SPDK's does not. */
	if (o->ring.indirect) {
		f |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	} else if (o->ring.spdk_features) {
		f &= ~(1ull << VIRTIO_RING_F_INDIRECT_DESC);
	}
	return f;
}

static int
connect_target(struct bench *b)
{
	struct vh_fe_opts fo = {
	        .path = b->o.socket,
	        .timeout_ms = b->o.timeout_ms,
	        .num_queues = b->o.queues,
	        .queue_size = b->qsize,
	        .max_chain = MAX_CHAIN,
	        .driver_features =
	                driver_features(&b->o) | (b->o.packed ? 1ull << VIRTIO_F_RING_PACKED : 0),
	        .inflight = b->o.inflight,
	};
	int rc;

	rc = create_ram(b);
	if (rc) {
		return rc;
	}
	rc = vh_fe_create(&b->fe, b->mem, &fo);
	if (rc < 0) {
		return fail("front-end: %s", strerror(-rc));
	}
	rc = vh_fe_connect(b->fe, CONNECT_MS);
	if (rc == -ETIMEDOUT) {
		return fail("cannot connect to %s: connection refused (nothing listening)",
		            b->o.socket);
	}
	if (rc < 0) {
		return fail("cannot connect to %s: %s", b->o.socket, strerror(-rc));
	}
	rc = vh_fe_init(b->fe, true);
	if (rc == -ENOTSUP) {
		return explain_notsup(b);
	}
	if (rc < 0) {
		return fail("vhost-user negotiation with %s failed: %s", b->o.socket,
		            strerror(-rc));
	}
	return 0;
}

static void
disconnect_target(struct bench *b)
{
	vh_fe_destroy(b->fe);
	vh_fe_mem_destroy(b->mem);
	b->fe = NULL;
	b->mem = NULL;
}

static bool
writes(const struct vb_opts *o)
{
	return o->rw == VB_RW_WRITE || o->rw == VB_RW_RANDWRITE ||
	       (o->rw == VB_RW_RANDRW && o->rwmixread < 100);
}

/* Read the config; returns 0, or an exit code. Sets the segment layout the target wants. */
static int
check_config(struct bench *b, unsigned int *nseg)
{
	const struct vh_fe_info *in = vh_fe_info(b->fe);
	uint32_t size_max, seg_max;

	b->offered = in->backend_features;
	b->capacity = vh_fe_cfg_u64(b->fe, VH_BLK_CFG_CAPACITY) * 512;
	b->blk_size = 512;
	if (vh_fe_has(b->offered, VIRTIO_BLK_F_BLK_SIZE)) {
		b->blk_size = vh_fe_cfg_u32(b->fe, VH_BLK_CFG_BLK_SIZE);
	}
	if (writes(&b->o) && vh_fe_has(b->offered, VIRTIO_BLK_F_RO)) {
		return fail("target is read-only (VIRTIO_BLK_F_RO) and --rw %s writes",
		            vb_rw_name(b->o.rw));
	}
	if (b->blk_size == 0 || b->o.bs % b->blk_size) {
		fprintf(stderr,
		        "vhost-bench: bad --bs %u: not a multiple of the target's block size %u\n",
		        b->o.bs, b->blk_size);
		return VB_EXIT_USAGE;
	}
	size_max = vh_fe_has(b->offered, VIRTIO_BLK_F_SIZE_MAX)
	                   ? vh_fe_cfg_u32(b->fe, VH_BLK_CFG_SIZE_MAX)
	                   : 0;
	b->seg_len = size_max >= 512 && size_max < b->o.bs ? size_max & ~511u : b->o.bs;
	*nseg = (b->o.bs + b->seg_len - 1) / b->seg_len;
	seg_max = vh_fe_has(b->offered, VIRTIO_BLK_F_SEG_MAX)
	                  ? vh_fe_cfg_u32(b->fe, VH_BLK_CFG_SEG_MAX)
	                  : 0;
	if (seg_max && *nseg > seg_max) {
		return fail("--bs %u needs %u segments of %u bytes; the target takes %u", b->o.bs,
		            *nseg, b->seg_len, seg_max);
	}
	if (b->o.ring.merged && *nseg > 1) {
		fprintf(stderr,
		        "vhost-bench: bad --layout merged: --bs %u is larger than the target's "
		        "size_max (%u), so the data needs %u descriptors\n",
		        b->o.bs, size_max, *nseg);
		return VB_EXIT_USAGE;
	}
	return 0;
}

/* Connect, negotiate and size the rings for the target's segment limits. */
static int
open_target(struct bench *b)
{
	unsigned int guess = (b->o.bs + (128u << 10) - 1) / (128u << 10), nseg = guess, qs;
	int rc, tries;

	for (tries = 0; tries < 2; tries++) {
		/* Ring descriptors per request: one with indirect, 2 merged, 2 + nseg split. */
		unsigned int per = b->o.ring.indirect ? 1 : b->o.ring.merged ? 2 : 2 + nseg;

		qs = pow2_at_least(per * b->o.iodepth);
		if (qs > MAX_QSIZE) {
			fprintf(stderr,
			        "vhost-bench: bad --iodepth %u: needs %u descriptors per queue "
			        "(max "
			        "%u)\n",
			        b->o.iodepth, per * b->o.iodepth, MAX_QSIZE);
			return VB_EXIT_USAGE;
		}
		qs = qs < MIN_QSIZE ? MIN_QSIZE : qs;
		if (b->o.queue_size) {
			if (b->o.queue_size < per * b->o.iodepth) {
				fprintf(stderr,
				        "vhost-bench: bad --queue-size %u: --iodepth %u needs %u "
				        "descriptors\n",
				        b->o.queue_size, b->o.iodepth, per * b->o.iodepth);
				return VB_EXIT_USAGE;
			}
			qs = b->o.queue_size;
		}
		b->qsize = (uint16_t)qs;
		b->nseg = nseg;
		rc = connect_target(b);
		if (rc == 0) {
			rc = check_config(b, &nseg);
		}
		if (rc || nseg == b->nseg) {
			return rc;
		}
		/* The target cuts requests finer than guessed: size the rings again. */
		disconnect_target(b);
	}
	return fail("target's segment limits keep changing");
}

/* ---- queues and threads ------------------------------------------------------------------ */

static int
setup_region(struct bench *b)
{
	const struct vb_opts *o = &b->o;
	uint64_t size = o->size ? o->size : b->capacity;

	if (size > b->capacity) {
		fprintf(stderr,
		        "vhost-bench: bad --size %" PRIu64 ": the disk has %" PRIu64 " bytes\n",
		        size, b->capacity);
		return VB_EXIT_USAGE;
	}
	b->per_q_blocks = size / o->bs / o->queues;
	if (b->per_q_blocks == 0) {
		fprintf(stderr,
		        "vhost-bench: the region (%" PRIu64 " bytes) is smaller than --bs x "
		        "--queues\n",
		        size);
		return VB_EXIT_USAGE;
	}
	if (o->verify && b->per_q_blocks < 2ull * o->iodepth) {
		fprintf(stderr,
		        "vhost-bench: --verify needs at least 2 x --iodepth blocks per queue "
		        "(%" PRIu64 " here): use a larger --size or a smaller --iodepth\n",
		        b->per_q_blocks);
		return VB_EXIT_USAGE;
	}
	if (o->verify) {
		b->gen = calloc(b->per_q_blocks * o->queues, sizeof(*b->gen));
		if (!b->gen) {
			return fail("verify map: out of memory");
		}
	}
	return 0;
}

static void
init_slot(struct bench *b, struct vb_queue *q, unsigned int k, uint64_t hdr_gpa, uint64_t buf_gpa,
          uint64_t table_gpa)
{
	struct vb_slot *s = &q->slots[k];
	uint16_t head = (uint16_t)(q->indirect ? k : k * q->ndesc);

	if (q->packed) {
		/* The buffer id; the chain is written into the ring at each submission. */
		s->hdr = vh_fe_gpa_to_ptr(b->mem, hdr_gpa, 16);
		s->buf = vh_fe_gpa_to_ptr(b->mem, buf_gpa, b->o.bs);
		s->status = s->hdr + 16;
		s->hdr_gpa = hdr_gpa;
		s->buf_gpa = buf_gpa;
		s->write = 0;
		s->head = (uint16_t)k;
		q->slot_of[k] = (uint16_t)(k + 1);
		if (q->indirect) {
			s->chain_gpa = table_gpa;
			s->chain = vh_fe_gpa_to_ptr(b->mem, table_gpa, 16ull * q->ndesc);
			vb_slot_write_packed_table(q, s, false);
		}
		/* Writes without --verify carry a fixed non-zero pattern. */
		memset(s->buf, 0x5a, b->o.bs);
		return;
	}
	if (q->merged) {
		/* [header][data][status] back to back: the header sits just below the page. */
		buf_gpa += BUF_ALIGN;
		hdr_gpa = buf_gpa - 16;
	}
	s->hdr_gpa = hdr_gpa;
	s->buf_gpa = buf_gpa;
	s->hdr = vh_fe_gpa_to_ptr(b->mem, hdr_gpa, 16);
	s->buf = vh_fe_gpa_to_ptr(b->mem, buf_gpa, b->o.bs + (q->merged ? 1 : 0));
	s->status = q->merged ? s->buf + b->o.bs : s->hdr + 16;
	s->head = head;
	if (q->indirect) {
		s->chain_gpa = table_gpa;
		s->chain = vh_fe_gpa_to_ptr(b->mem, table_gpa, 16ull * q->ndesc);
	} else {
		s->chain = &q->desc[head];
	}
	q->slot_of[head] = (uint16_t)(k + 1);
	vb_slot_write_chain(q, s, false);
	/* Writes without --verify carry a fixed non-zero pattern. */
	memset(s->buf, 0x5a, b->o.bs);
}

static int
setup_queue(struct bench *b, unsigned int i)
{
	const struct vb_opts *o = &b->o;
	struct vh_fe_vq *vq = vh_fe_vq(b->fe, i);
	struct vb_queue *q = &b->qs[i];
	uint64_t bufsz = slot_buf_size(b), hdr_gpa, buf_gpa, tbl_gpa = 0, r;
	unsigned int k;

	q->idx = i;
	q->desc = vh_fe_vq_desc(vq);
	q->avail = vh_fe_vq_avail(vq);
	q->used = vh_fe_vq_used(vq);
	q->size = vh_fe_vq_size(vq);
	q->kick_fd = vh_fe_vq_kick_fd(vq);
	q->call_fd = vh_fe_vq_call_fd(vq);
	q->nseg = (uint16_t)b->nseg;
	q->packed = vh_fe_vq_is_packed(vq);
	q->ndesc = (uint16_t)(o->ring.merged ? 2 : 2 + b->nseg);
	q->seg_len = b->seg_len;
	q->bs = o->bs;
	q->indirect = o->ring.indirect;
	q->merged = o->ring.merged;
	q->nslots = o->iodepth;
	q->slots = calloc(q->nslots, sizeof(*q->slots));
	q->slot_of = calloc(q->size, sizeof(*q->slot_of));
	q->done = calloc(q->nslots, sizeof(*q->done));
	q->park = calloc(q->nslots, sizeof(*q->park));
	hdr_gpa = vh_fe_mem_alloc(b->mem, HDR_STRIDE * q->nslots, HDR_STRIDE);
	buf_gpa = vh_fe_mem_alloc(b->mem, bufsz * q->nslots, BUF_ALIGN);
	if (q->indirect) {
		tbl_gpa = vh_fe_mem_alloc(b->mem, 16ull * q->ndesc * q->nslots, 16);
	}
	if (!q->slots || !q->slot_of || !q->done || !q->park || hdr_gpa == UINT64_MAX ||
	    buf_gpa == UINT64_MAX || tbl_gpa == UINT64_MAX) {
		return fail("queue %u: out of memory", i);
	}
	for (k = 0; k < q->nslots; k++) {
		init_slot(b, q, k, hdr_gpa + HDR_STRIDE * k, buf_gpa + bufsz * k,
		          tbl_gpa + 16ull * q->ndesc * k);
	}
	q->first_block = b->per_q_blocks * i;
	q->nblocks = b->per_q_blocks;
	q->gen = b->gen ? b->gen + b->per_q_blocks * i : NULL;
	r = o->seed ^ (0x9e3779b97f4a7c15ull * (i + 1));
	q->rng = r ? r : 1;
	q->budget = UINT64_MAX;
	if (o->number_ios) {
		q->budget = o->number_ios / o->queues + (i < o->number_ios % o->queues ? 1 : 0);
	}
	vb_queue_init_ring(q, vh_fe_has(b->features, VIRTIO_RING_F_EVENT_IDX), &o->ring);
	return 0;
}

static int
setup_threads(struct bench *b)
{
	const struct vb_opts *o = &b->o;
	unsigned int n = o->ncpus ? (o->ncpus < o->queues ? o->ncpus : o->queues) : 1;
	unsigned int i, t, cpu = 0;

	b->threads = calloc(n, sizeof(*b->threads));
	if (!b->threads) {
		return fail("threads: out of memory");
	}
	for (t = 0; t < n; t++) {
		struct vb_thread *th = &b->threads[t];

		th->idx = t;
		th->cpu = -1;
		if (o->ncpus) {
			while (!CPU_ISSET(cpu, &o->cpus)) {
				cpu++;
			}
			th->cpu = (int)cpu++;
		}
		th->qs = calloc((o->queues + n - 1) / n, sizeof(*th->qs));
		if (!th->qs) {
			return fail("threads: out of memory");
		}
	}
	for (i = 0; i < o->queues; i++) {
		struct vb_thread *th = &b->threads[i % n];

		th->qs[th->nq++] = &b->qs[i];
	}
	b->job.o = o;
	b->job.bs = o->bs;
	b->job.sect_per_block = o->bs / 512;
	b->job.rand = o->rw == VB_RW_RANDREAD || o->rw == VB_RW_RANDWRITE || o->rw == VB_RW_RANDRW;
	b->job.read_thresh = o->rw == VB_RW_READ || o->rw == VB_RW_RANDREAD ? 100
	                     : o->rw == VB_RW_RANDRW                        ? o->rwmixread
	                                                                    : 0;
	b->job.nthreads = n;
	b->job.threads = b->threads;
	return 0;
}

static int
start_device(struct bench *b)
{
	unsigned int i;
	int rc;

	rc = vh_fe_start(b->fe, 0, b->o.queues);
	if (rc < 0) {
		return fail("target refused to start the device (%u queue(s) of %u): %s",
		            b->o.queues, b->qsize, strerror(-rc));
	}
	b->features = vh_fe_info(b->fe)->features;
	if (b->o.packed && !vh_fe_vq_is_packed(vh_fe_vq(b->fe, 0))) {
		return fail("target refuses needed features: no VIRTIO_F_RING_PACKED (features "
		            "0x%" PRIx64 "; vhostd: vhost_create_blk_controller --packed-ring)",
		            b->offered);
	}
	if (b->o.ring.indirect && !vh_fe_has(b->features, VIRTIO_RING_F_INDIRECT_DESC)) {
		return fail("target does not offer VIRTIO_RING_F_INDIRECT_DESC (--indirect on)");
	}
	rc = setup_region(b);
	if (rc) {
		return rc;
	}
	b->qs = calloc(b->o.queues, sizeof(*b->qs));
	if (!b->qs) {
		return fail("queues: out of memory");
	}
	for (i = 0; i < b->o.queues; i++) {
		rc = setup_queue(b, i);
		if (rc) {
			return rc;
		}
	}
	return setup_threads(b);
}

/* ---- the run ----------------------------------------------------------------------------- */

static int
run(struct bench *b)
{
	struct cpu_sample s0, s1;
	uint64_t left;
	int rc, jrc;

	b->target_cpu_run = b->target_cpu_idle = -1;
	rc = vb_start(&b->job);
	if (rc == 0 && b->o.ramp > 0) {
		left = b->job.t_ramp_end - vb_ticks();
		if ((int64_t)left > 0) {
			sleep_ns((uint64_t)vb_ticks_to_ns(left));
		}
	}
	sample(b, &s0);
	jrc = vb_join(&b->job);
	sample(b, &s1);
	vb_clock_calibrate();
	b->target_cpu_run = cpu_pct(&s0, &s1);
	if (rc < 0) {
		return fail("cannot start worker threads: %s", strerror(-rc));
	}
	if (jrc < 0) {
		return fail("run aborted: %s", strerror(-jrc));
	}
	if (b->o.idle > 0) {
		sleep_ns(SETTLE_NS);
		sample(b, &s0);
		sleep_ns((uint64_t)(b->o.idle * 1e9));
		sample(b, &s1);
		b->target_cpu_idle = cpu_pct(&s0, &s1);
		b->idle_s = (double)(s1.ns - s0.ns) / 1e9;
	}
	rc = vh_fe_stop(b->fe);
	if (rc < 0) {
		return fail("stopping the device failed: %s", strerror(-rc));
	}
	return 0;
}

/* ---- report ------------------------------------------------------------------------------ */

struct result {
	struct vb_stats st;
	double window_s; /* average over threads */
	double iops;
	double mib_s;
	double busy_pct;  /* initiator threads' time spent on completions and submissions */
	double cpu_pct;   /* initiator threads' CPU time / window */
	double lat_ns[6]; /* avg, min, p50, p99, p99.9, max */
};

static void
collect(const struct bench *b, struct result *r)
{
	double win_sum = 0, busy_sum = 0, cpu_sum = 0;
	unsigned int t;

	memset(r, 0, sizeof(*r));
	vb_hist_reset(&r->st.hist);
	for (t = 0; t < b->job.nthreads; t++) {
		const struct vb_thread *th = &b->threads[t];
		const struct vb_stats *s = &th->st;
		double w = th->win_end > th->win_start
		                   ? vb_ticks_to_ns(th->win_end - th->win_start) / 1e9
		                   : 0;

		r->st.ios += s->ios;
		r->st.reads += s->reads;
		r->st.writes += s->writes;
		r->st.errors += s->errors;
		r->st.verified += s->verified;
		r->st.mismatches += s->mismatches;
		r->st.kicks += s->kicks;
		r->st.polls += s->polls;
		r->st.empty_polls += s->empty_polls;
		r->st.waits += s->waits;
		r->st.interrupts += s->interrupts;
		vb_hist_merge(&r->st.hist, &s->hist);
		if (w > 0) {
			r->iops += (double)s->ios / w;
			busy_sum += vb_ticks_to_ns(s->busy_ticks) / 1e9;
			cpu_sum += th->cpu_s;
			win_sum += w;
		}
	}
	r->window_s = b->job.nthreads ? win_sum / b->job.nthreads : 0;
	r->mib_s = r->iops * b->o.bs / (1024.0 * 1024.0);
	r->busy_pct = win_sum > 0 ? busy_sum / win_sum * 100 : 0;
	r->cpu_pct = win_sum > 0 ? cpu_sum / win_sum * 100 : 0;
	if (r->st.hist.count) {
		r->lat_ns[0] = vb_ticks_to_ns(r->st.hist.sum) / (double)r->st.hist.count;
		r->lat_ns[1] = vb_ticks_to_ns(r->st.hist.min);
		r->lat_ns[2] = vb_ticks_to_ns(vb_hist_percentile(&r->st.hist, 50));
		r->lat_ns[3] = vb_ticks_to_ns(vb_hist_percentile(&r->st.hist, 99));
		r->lat_ns[4] = vb_ticks_to_ns(vb_hist_percentile(&r->st.hist, 99.9));
		r->lat_ns[5] = vb_ticks_to_ns(r->st.hist.max);
	}
}

static void
json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			printf("\\%c", c);
		} else if (c < 0x20) {
			printf("\\u%04x", c);
		} else {
			putchar(c);
		}
	}
	putchar('"');
}

static void
json_num(const char *key, double v, bool comma)
{
	if (v < 0 || !isfinite(v)) {
		printf("\"%s\":null%s", key, comma ? "," : "");
	} else {
		printf("\"%s\":%.3f%s", key, v, comma ? "," : "");
	}
}

static void
report_json(const struct bench *b, const struct result *r)
{
	const struct vb_opts *o = &b->o;
	const struct vb_stats *s = &r->st;

	printf("{\"target\":{\"socket\":");
	json_str(o->socket);
	printf(",\"capacity\":%" PRIu64 ",\"block_size\":%u,\"features\":\"0x%" PRIx64
	       "\",\"negotiated\":\"0x%" PRIx64 "\",\"queue_size\":%u,\"event_idx\":%s,"
	       "\"ring\":\"%s\"},",
	       b->capacity, b->blk_size, b->offered, b->features, b->qsize,
	       vh_fe_has(b->features, VIRTIO_RING_F_EVENT_IDX) ? "true" : "false",
	       o->packed ? "packed" : "split");
	printf("\"job\":{\"rw\":\"%s\",\"rwmixread\":%u,\"bs\":%u,\"iodepth\":%u,\"queues\":%u,"
	       "\"threads\":%u,\"runtime\":%.3f,\"ramp\":%.3f,\"size\":%" PRIu64
	       ",\"number_ios\":%" PRIu64 ",\"thinktime_us\":%" PRIu64
	       ",\"mode\":\"%s\",\"memory\":\"%s\",\"verify\":%s,"
	       "\"seed\":%" PRIu64 ",\"segments\":%u,",
	       vb_rw_name(o->rw), o->rwmixread, o->bs, o->iodepth, o->queues, b->job.nthreads,
	       o->runtime, o->ramp, b->per_q_blocks * o->bs * o->queues, o->number_ios,
	       o->thinktime_us, o->interrupt ? "interrupt" : "poll",
	       o->huge ? "hugetlbfs" : "memfd", o->verify ? "true" : "false", o->seed, b->nseg);
	printf("\"pattern\":");
	json_str(o->pattern_name);
	printf(",\"ring\":{\"event_idx\":%s,\"used_event\":\"%s\",\"indirect\":%s,"
	       "\"layout\":\"%s\",\"kick\":\"%s\",\"rewrite\":%s,\"spdk_features\":%s}},",
	       o->ring.event_idx ? "true" : "false", vb_used_event_name(o->ring.used_event),
	       o->ring.indirect ? "true" : "false", o->ring.merged ? "merged" : "split",
	       o->ring.kick_per_req ? "request" : "batch", o->ring.rewrite ? "true" : "false",
	       o->ring.spdk_features ? "true" : "false");
	printf("\"window_s\":%.6f,\"ios\":%" PRIu64 ",\"reads\":%" PRIu64 ",\"writes\":%" PRIu64
	       ",\"errors\":%" PRIu64 ",",
	       r->window_s, s->ios, s->reads, s->writes, s->errors);
	json_num("iops", r->iops, true);
	json_num("mib_s", r->mib_s, true);
	printf("\"lat_us\":{");
	json_num("avg", r->lat_ns[0] / 1e3, true);
	json_num("min", r->lat_ns[1] / 1e3, true);
	json_num("p50", r->lat_ns[2] / 1e3, true);
	json_num("p99", r->lat_ns[3] / 1e3, true);
	json_num("p99_9", r->lat_ns[4] / 1e3, true);
	json_num("max", r->lat_ns[5] / 1e3, false);
	printf("},\"initiator\":{");
	json_num("busy_pct", r->busy_pct, true);
	json_num("cpu_pct", r->cpu_pct, true);
	printf("\"polls\":%" PRIu64 ",\"empty_polls\":%" PRIu64 ",\"kicks\":%" PRIu64
	       ",\"interrupts\":%" PRIu64 ",\"waits\":%" PRIu64 "},",
	       s->polls, s->empty_polls, s->kicks, s->interrupts, s->waits);
	printf("\"target_cpu\":{");
	json_num("run_pct", b->target_cpu_run, false);
	printf("},\"idle\":{");
	json_num("seconds", o->idle > 0 ? b->idle_s : -1, true);
	json_num("target_cpu_pct", b->target_cpu_idle, false);
	printf("},\"verify\":{\"enabled\":%s,\"checked\":%" PRIu64 ",\"mismatches\":%" PRIu64
	       "}}\n",
	       o->verify ? "true" : "false", s->verified, s->mismatches);
}

static void
report_text(const struct bench *b, const struct result *r)
{
	const struct vb_opts *o = &b->o;
	const struct vb_stats *s = &r->st;
	double nonempty = (double)(s->polls - s->empty_polls);

	printf("vhost-bench: %s bs=%u iodepth=%u queues=%u threads=%u runtime=%.1fs ramp=%.1fs "
	       "%s mode, %s guest RAM\n",
	       vb_rw_name(o->rw), o->bs, o->iodepth, o->queues, b->job.nthreads, o->runtime,
	       o->ramp, o->interrupt ? "interrupt" : "poll", o->huge ? "hugetlbfs" : "memfd");
	printf("target:    %s, %.2f GiB, block size %u, %s queues of %u, event_idx %s\n", o->socket,
	       (double)b->capacity / (1ull << 30), b->blk_size, o->packed ? "packed" : "split",
	       b->qsize, vh_fe_has(b->features, VIRTIO_RING_F_EVENT_IDX) ? "on" : "off");
	if (!o->packed) {
		printf("pattern:   %s: used_event %s, %s, %s layout, kick per %s, descriptors %s\n",
		       o->pattern_name, vb_used_event_name(o->ring.used_event),
		       o->ring.indirect ? "indirect" : "direct",
		       o->ring.merged ? "merged" : "split",
		       o->ring.kick_per_req ? "request" : "batch",
		       o->ring.rewrite ? "rewritten per request" : "written once");
	}
	printf("IOPS:      %.0f (%" PRIu64 " I/Os in %.3f s; %" PRIu64 " reads, %" PRIu64
	       " writes)\n",
	       r->iops, s->ios, r->window_s, s->reads, s->writes);
	printf("bandwidth: %.1f MiB/s\n", r->mib_s);
	printf("latency:   avg %.2f us, min %.2f, p50 %.2f, p99 %.2f, p99.9 %.2f, max %.2f us\n",
	       r->lat_ns[0] / 1e3, r->lat_ns[1] / 1e3, r->lat_ns[2] / 1e3, r->lat_ns[3] / 1e3,
	       r->lat_ns[4] / 1e3, r->lat_ns[5] / 1e3);
	printf("initiator: busy %.1f %% of the window, CPU %.1f %%, %.2f completions per non-empty "
	       "poll\n",
	       r->busy_pct, r->cpu_pct, nonempty > 0 ? (double)s->ios / nonempty : 0);
	printf("notify:    %" PRIu64 " kicks sent, %" PRIu64 " interrupts received (%" PRIu64
	       " waits)\n",
	       s->kicks, s->interrupts, s->waits);
	if (b->target_cpu_run >= 0) {
		printf("target:    %.1f %% CPU during the run (pid %d)\n", b->target_cpu_run,
		       (int)o->target_pid);
	}
	if (b->target_cpu_idle >= 0) {
		printf("idle:      target %.2f %% CPU over %.1f s connected without I/O\n",
		       b->target_cpu_idle, b->idle_s);
	}
	if (o->verify) {
		printf("verify:    %" PRIu64 " blocks checked, %" PRIu64 " mismatches\n",
		       s->verified, s->mismatches);
	}
	if (s->errors) {
		printf("errors:    %" PRIu64 " I/O errors\n", s->errors);
	}
}

static void
cleanup(struct bench *b)
{
	unsigned int i;

	if (b->qs) {
		for (i = 0; i < b->o.queues; i++) {
			free(b->qs[i].slots);
			free(b->qs[i].slot_of);
			free(b->qs[i].done);
			free(b->qs[i].park);
		}
	}
	if (b->threads) {
		for (i = 0; i < b->job.nthreads; i++) {
			free(b->threads[i].qs);
		}
	}
	free(b->threads);
	free(b->qs);
	free(b->gen);
	disconnect_target(b);
}

int
main(int argc, char **argv)
{
	static struct bench bench;
	struct bench *b = &bench;
	struct result r;
	struct stat sb;
	int rc;

	rc = vb_parse_opts(&b->o, argc, argv);
	if (rc) {
		return rc > 0 ? VB_EXIT_OK : VB_EXIT_USAGE;
	}
	if (stat(b->o.socket, &sb) < 0) {
		return fail("socket %s: %s", b->o.socket, strerror(errno));
	}
	if (!S_ISSOCK(sb.st_mode)) {
		return fail("%s is not a UNIX socket", b->o.socket);
	}
	vb_clock_init();
	rc = open_target(b);
	if (rc == 0) {
		rc = start_device(b);
	}
	if (rc == 0) {
		rc = run(b);
	}
	if (rc == 0) {
		collect(b, &r);
		if (b->o.json) {
			report_json(b, &r);
		} else {
			report_text(b, &r);
		}
		if (r.st.errors || r.st.mismatches) {
			rc = fail("%" PRIu64 " I/O error(s), %" PRIu64 " verify mismatch(es)",
			          r.st.errors, r.st.mismatches);
		}
	}
	fflush(stdout);
	cleanup(b);
	return rc;
}
