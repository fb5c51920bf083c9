/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * State-machine abuse by the front-end (issue 6, item 5), against a running vhostd: messages
 * out of order, out-of-range queue indices and sizes, hostile memory tables, removing the ring's
 * region under I/O, a misaligned inflight region, and repetition floods. Each abuse must get an
 * error ack (REPLY_ACK negotiated, NEED_REPLY set) or a disconnect, never a crash or a hang;
 * the witness controller keeps serving verified I/O, and the daemon's fd count and VmRSS come
 * back to baseline. Flood sizes scale with $HOSTILE_FLOOD (default 100000 SET_VRING_CALLs;
 * SET_MEM_TABLE and reconnect floods use a tenth and a hundredth of it).
 */
#include <fcntl.h>
#include <sys/mman.h>

#include "test_hostile_common.h"

#define F_NR (VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK)

struct sess {
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
};

static int
sess_open(struct vh_target *t, struct sess *s, bool start)
{
	struct vh_fe_mem_opts mo = {.size = 8 << 20, .nregions = 2};
	struct vh_fe_opts fo = {.num_queues = 2, .ack_all = true};

	T_OK(vh_test_fe_open(t, &mo, &fo, &s->mem, &s->fe));
	if (start) {
		T_OK(vh_fe_start(s->fe, 0, 0));
	}
	return 0;
}

static void
sess_close(struct sess *s)
{
	vh_test_fe_close(s->mem, s->fe);
	s->mem = NULL;
	s->fe = NULL;
}

/* The message must be refused: an ack != 0, or the connection closed. */
static int
refused(struct vh_fe *fe, const char *what, uint32_t req, const void *p, uint32_t size,
        const int *fds, unsigned nfds)
{
	uint64_t v = 0;
	int rc = vh_fe_call(fe, req, F_NR, p, size, fds, nfds, &v, sizeof(v));

	if (rc == -ECONNRESET || rc == -EPIPE) {
		fprintf(stderr, "ok: %s -> disconnect\n", what);
		return 0;
	}
	T_CHECK(rc == 8 && v != 0, "%s: rc %d ack %llu (expected a refusal)", what, rc,
	        (unsigned long long)v);
	fprintf(stderr, "ok: %s -> error ack\n", what);
	return 0;
}

static int
accepted(struct vh_fe *fe, const char *what, uint32_t req, const void *p, uint32_t size,
         const int *fds, unsigned nfds)
{
	uint64_t v = 1;
	int rc = vh_fe_call(fe, req, F_NR, p, size, fds, nfds, &v, sizeof(v));

	T_CHECK(rc >= 0 && (rc != 8 || v == 0 || !(req != VHOST_USER_GET_VRING_BASE)),
	        "%s: rc %d ack %llu (expected success)", what, rc, (unsigned long long)v);
	return 0;
}

static uint64_t
st(uint32_t idx, uint32_t num)
{
	return (uint64_t)idx | (uint64_t)num << 32;
}

static struct vhost_user_mem_reg
reg(uint64_t gpa, uint64_t size, uint64_t uaddr, uint64_t off)
{
	struct vhost_user_mem_reg r = {.region = {gpa, size, uaddr, off}};

	return r;
}

/* ---- cases ---- */

static int
queue_params(struct sess s)
{
	static const uint32_t bad_sizes[] = {0, 3, 100, 32769, 65536, 0xffffffffu};
	uint32_t nq = (uint32_t)vh_fe_info(s.fe)->queue_num;
	struct vhost_vring_addr a = {.index = nq};
	uint64_t v;
	char what[64];

	/* Ring messages before any memory table: stored, nothing starts. */
	v = st(0, 128);
	T_OK(accepted(s.fe, "SET_VRING_NUM before the memory table", VHOST_USER_SET_VRING_NUM, &v,
	              8, NULL, 0));
	v = 0 | VHOST_USER_VRING_NOFD_MASK;
	T_OK(accepted(s.fe, "SET_VRING_KICK before the memory table", VHOST_USER_SET_VRING_KICK, &v,
	              8, NULL, 0));
	for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
		v = st(1, bad_sizes[i]);
		snprintf(what, sizeof(what), "queue size %u", bad_sizes[i]);
		T_OK(refused(s.fe, what, VHOST_USER_SET_VRING_NUM, &v, 8, NULL, 0));
	}
	v = st(nq, 128);
	T_OK(refused(s.fe, "SET_VRING_NUM index = queue count", VHOST_USER_SET_VRING_NUM, &v, 8,
	             NULL, 0));
	v = st(255, 0);
	T_OK(refused(s.fe, "SET_VRING_BASE index 255", VHOST_USER_SET_VRING_BASE, &v, 8, NULL, 0));
	T_OK(refused(s.fe, "SET_VRING_ADDR index = queue count", VHOST_USER_SET_VRING_ADDR, &a,
	             sizeof(a), NULL, 0));
	v = 64 | VHOST_USER_VRING_NOFD_MASK;
	T_OK(refused(s.fe, "SET_VRING_CALL index 64", VHOST_USER_SET_VRING_CALL, &v, 8, NULL, 0));
	/*
	 * GET_VRING_BASE on a queue that never started answers with the base it was given (one
	 * never given any closes the session: unit test test_vring_base_never_set_up).
	 */
	{
		struct vhost_vring_state r = {0};
		int rc;

		v = st(1, 77);
		T_OK(accepted(s.fe, "SET_VRING_BASE 77", VHOST_USER_SET_VRING_BASE, &v, 8, NULL,
		              0));
		v = st(1, 0);
		rc = vh_fe_call(s.fe, VHOST_USER_GET_VRING_BASE, F_NR, &v, 8, NULL, 0, &r,
		                sizeof(r));
		T_CHECK(rc == 8 && r.index == 1 && r.num == 77,
		        "GET_VRING_BASE on an unstarted queue: rc %d index %u num %u", rc, r.index,
		        r.num);
	}
	v = st(nq + 3, 0);
	T_OK(refused(s.fe, "GET_VRING_BASE index out of range", VHOST_USER_GET_VRING_BASE, &v, 8,
	             NULL, 0));
	return 0;
}

static int
t_queue_params(struct vh_target *t)
{
	struct sess s;
	int rc;

	T_OK(sess_open(t, &s, false));
	rc = queue_params(s);
	sess_close(&s);
	return rc;
}

static int
mem_slots(struct sess s)
{
	struct vhost_user_mem_reg r;
	int fd = s.mem->fd;
	uint64_t base = (uint64_t)(uintptr_t)s.mem->base;

	for (unsigned i = 0; i < 33; i++) {
		char what[48];

		r = reg(0x100000000ull + i * 0x2000ull, 0x1000, base + i * 0x2000ull,
		        i * 0x2000ull);
		snprintf(what, sizeof(what), "ADD_MEM_REG #%u", i + 1);
		if (i < 32) {
			T_OK(accepted(s.fe, what, VHOST_USER_ADD_MEM_REG, &r, sizeof(r), &fd, 1));
		} else {
			T_OK(refused(s.fe, what, VHOST_USER_ADD_MEM_REG, &r, sizeof(r), &fd, 1));
		}
	}
	return 0;
}

static int
mem_tables(struct sess s)
{
	struct vhost_user_mem_reg r;
	struct vhost_user_memory m = {0};
	int fd, small;
	uint64_t base;

	fd = s.mem->fd;
	base = (uint64_t)(uintptr_t)s.mem->base;
	r = reg(0, 0x10000, base, 0);
	T_OK(accepted(s.fe, "ADD_MEM_REG", VHOST_USER_ADD_MEM_REG, &r, sizeof(r), &fd, 1));
	r = reg(0x8000, 0x10000, base + 0x100000, 0x100000);
	T_OK(refused(s.fe, "ADD_MEM_REG overlapping in GPA", VHOST_USER_ADD_MEM_REG, &r, sizeof(r),
	             &fd, 1));
	r = reg(0x200000, 0x10000, base + 0x8000, 0x100000);
	T_OK(refused(s.fe, "ADD_MEM_REG overlapping in user address", VHOST_USER_ADD_MEM_REG, &r,
	             sizeof(r), &fd, 1));
	r = reg(0x400000, 0x1000, ~0ull - 0xfff + 0x800, 0x1000);
	T_OK(refused(s.fe, "ADD_MEM_REG with a wrapping user address", VHOST_USER_ADD_MEM_REG, &r,
	             sizeof(r), &fd, 1));
	r = reg(~0ull - 0x7ff, 0x1000, base + 0x300000, 0x1000);
	T_OK(refused(s.fe, "ADD_MEM_REG with a wrapping GPA", VHOST_USER_ADD_MEM_REG, &r, sizeof(r),
	             &fd, 1));
	r = reg(0x500000, 0x1000, base + 0x500000, ~0ull - 0x800);
	T_OK(refused(s.fe, "ADD_MEM_REG with a wrapping mmap offset", VHOST_USER_ADD_MEM_REG, &r,
	             sizeof(r), &fd, 1));
	small = memfd_create("hostile-small", MFD_CLOEXEC);
	T_CHECK(small >= 0 && ftruncate(small, 0x1000) == 0, "memfd");
	r = reg(0x600000, 0x10000, base + 0x600000, 0);
	T_OK(refused(s.fe, "ADD_MEM_REG larger than its fd", VHOST_USER_ADD_MEM_REG, &r, sizeof(r),
	             &small, 1));
	r = reg(0x700000, 0x1000, base + 0x700000, 0x1000);
	T_OK(refused(s.fe, "ADD_MEM_REG with an offset past its fd", VHOST_USER_ADD_MEM_REG, &r,
	             sizeof(r), &small, 1));
	close(small);
	r = reg(0x123000, 0x1000, 0, 0);
	T_OK(refused(s.fe, "REM_MEM_REG of an unknown region", VHOST_USER_REM_MEM_REG, &r,
	             sizeof(r), NULL, 0));
	/* SET_MEM_TABLE: two overlapping regions in one table. */
	m.nregions = 2;
	m.regions[0] = (struct vhost_user_memory_region){0, 0x20000, base, 0};
	m.regions[1] = (struct vhost_user_memory_region){0x10000, 0x20000, base + 0x40000, 0x40000};
	{
		int fds2[2] = {fd, fd};

		T_OK(refused(s.fe, "SET_MEM_TABLE with overlapping regions",
		             VHOST_USER_SET_MEM_TABLE, &m, 8 + 2 * 32, fds2, 2));
	}
	return 0;
}

/* 32 regions (the limit) fit, the 33rd is refused; then hostile region descriptions. */
static int
t_mem_tables(struct vh_target *t)
{
	struct sess s;
	int rc;

	T_OK(sess_open(t, &s, false));
	rc = mem_slots(s);
	sess_close(&s);
	if (rc == 0) {
		T_OK(sess_open(t, &s, false));
		rc = mem_tables(s);
		sess_close(&s);
	}
	return rc;
}

/* Remove the region holding the rings while a queue runs I/O: refused or closed, never a crash. */
static int
t_remove_ring_region(struct vh_target *t, struct witness *w)
{
	struct vh_fe_mem_opts mo = {.size = 8 << 20, .nregions = 2};
	struct vh_fe_opts fo = {.num_queues = 1, .ack_all = true};
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	struct vh_fe_req reqs[16];
	struct vh_fe_iov iov[16];
	struct vhost_user_mem_reg r;
	uint64_t v = 0;
	int rc;

	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	T_OK(vh_fe_start(fe, 0, 0));
	for (int i = 0; i < 16; i++) {
		iov[i].gpa = vh_fe_mem_alloc(mem, 4096, 4096);
		iov[i].len = 4096;
		memset(&reqs[i], 0, sizeof(reqs[i]));
		reqs[i].type = i & 1 ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
		reqs[i].sector = (uint64_t)i * 8;
		reqs[i].iov = &iov[i];
		reqs[i].niov = 1;
		T_OK(vh_fe_req_queue(vh_fe_vq(fe, 0), &reqs[i]));
	}
	vh_fe_vq_flush(vh_fe_vq(fe, 0));
	/* Region 0 holds the rings (the library carves them from the first region). */
	r = reg(mem->regions[0].gpa, mem->regions[0].size,
	        (uint64_t)(uintptr_t)mem->base + mem->regions[0].gpa, mem->regions[0].gpa);
	rc = vh_fe_call(fe, VHOST_USER_REM_MEM_REG, F_NR, &r, sizeof(r), NULL, 0, &v, sizeof(v));
	fprintf(stderr, "REM_MEM_REG of the ring region under I/O -> rc %d ack %llu\n", rc,
	        (unsigned long long)v);
	vh_test_fe_close(mem, fe);
	/* Design rule 10: a running ring left without memory closes the session (no ack). */
	T_CHECK(rc == -ECONNRESET || rc == -EPIPE,
	        "removing the running ring's region did not close the session (rc %d ack %llu)", rc,
	        (unsigned long long)v);
	T_OK(witness_check(t, w));
	return 0;
}

/*
 * SET_INFLIGHT_FD with an odd mmap_offset: the region's u16/u64 fields end up misaligned in the
 * back-end. Must be refused (or handled without misaligned access: UBSan aborts the daemon).
 */
static int
t_inflight_misaligned(struct vh_target *t)
{
	struct vh_fe_mem_opts mo = {.size = 8 << 20};
	struct vh_fe_opts fo = {.num_queues = 1, .queue_size = 128, .ack_all = true};
	struct {
		uint64_t mmap_size, mmap_offset;
		uint16_t num_queues, queue_size;
		uint32_t pad;
	} __attribute__((packed)) inf;
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	uint64_t need = (16 + 128 * 16 + 63) & ~63ull, v = 1;
	int fd, rc;

	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	/* The test library does not negotiate INFLIGHT_SHMFD; the back-end takes the fd anyway. */
	fd = memfd_create("hostile-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	T_CHECK(fd >= 0 && ftruncate(fd, (off_t)need + 4096) == 0 &&
	                fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0,
	        "memfd");
	inf.mmap_size = need;
	inf.mmap_offset = 1;
	inf.num_queues = 1;
	inf.queue_size = 128;
	inf.pad = 0;
	rc = vh_fe_call(fe, VHOST_USER_SET_INFLIGHT_FD, F_NR, &inf, sizeof(inf), &fd, 1, &v,
	                sizeof(v));
	close(fd);
	fprintf(stderr, "SET_INFLIGHT_FD at mmap_offset 1: rc %d ack %llu\n", rc,
	        (unsigned long long)v);
	if (rc == 8 && v == 0) {
		/* Accepted: starting the queue now reads the region through the odd offset. */
		rc = vh_fe_start(fe, 0, 0);
		fprintf(stderr, "SET_INFLIGHT_FD at offset 1 accepted; start: %s\n",
		        rc < 0 ? strerror(-rc) : "ok");
		if (rc == 0) {
			rc = io_smoke(fe, mem, 0, 0, 77);
		}
	}
	vh_test_fe_close(mem, fe);
	T_CHECK(vh_daemon_alive(&t->d), "daemon died after a misaligned inflight region");
	return 0;
}

static int
t_floods(struct vh_target *t, struct witness *w, unsigned n)
{
	struct sess s;
	struct vhost_user_memory m = {0};
	int64_t t0 = vh_fe_now_ms();
	int fds0, fds1;
	long rss0, rss1;

	T_OK(hostile_wait_disconnected(t, t->name, 5000));
	fds0 = hostile_count_fds(t->d.pid);
	rss0 = hostile_rss_kib(t->d.pid);
	T_OK(sess_open(t, &s, true));
	/* SET_VRING_CALL with a new eventfd each time, on a running queue; an ack every 1000. */
	for (unsigned i = 0; i < n; i++) {
		int efd = eventfd(0, EFD_CLOEXEC);
		uint64_t idx = i & 1, v = 0;
		int rc;

		if (i % 1000 == 999) {
			rc = vh_fe_call(s.fe, VHOST_USER_SET_VRING_CALL, F_NR, &idx, 8, &efd, 1, &v,
			                sizeof(v));
			T_CHECK(rc == 8 && v == 0, "SET_VRING_CALL #%u: rc %d ack %llu", i, rc,
			        (unsigned long long)v);
		} else {
			T_OK(vh_fe_send_raw(s.fe, VHOST_USER_SET_VRING_CALL, VHOST_USER_VERSION, 8,
			                    &idx, 8, &efd, 1));
		}
		close(efd);
	}
	T_OK(io_smoke(s.fe, s.mem, 0, 64, 5));
	fprintf(stderr, "%u x SET_VRING_CALL on running queues: %lld ms, daemon fds %d\n", n,
	        (long long)(vh_fe_now_ms() - t0), hostile_count_fds(t->d.pid));
	/* SET_MEM_TABLE re-sent while the queues run (each one quiesces and restarts them). */
	t0 = vh_fe_now_ms();
	for (unsigned i = 0; i < n / 10; i++) {
		T_OK(vh_fe_set_mem_table(s.fe));
	}
	T_OK(io_smoke(s.fe, s.mem, 1, 128, 6));
	fprintf(stderr, "%u x SET_MEM_TABLE: %lld ms, daemon fds %d, memfd maps %d\n", n / 10,
	        (long long)(vh_fe_now_ms() - t0), hostile_count_fds(t->d.pid),
	        hostile_count_maps(t->d.pid, "memfd:"));
	(void)m;
	sess_close(&s);
	T_OK(witness_check(t, w));
	/* Connect / disconnect. */
	t0 = vh_fe_now_ms();
	for (unsigned i = 0; i < n / 100; i++) {
		T_OK(sess_open(t, &s, i % 4 == 0));
		sess_close(&s);
	}
	fprintf(stderr, "%u x connect/handshake/disconnect: %lld ms\n", n / 100,
	        (long long)(vh_fe_now_ms() - t0));
	T_OK(hostile_wait_disconnected(t, t->name, 5000));
	fds1 = hostile_wait_fds(t->d.pid, fds0, 2000);
	rss1 = hostile_rss_kib(t->d.pid);
	fprintf(stderr, "floods: daemon fds %d -> %d, VmRSS %ld -> %ld KiB, memfd maps %d\n", fds0,
	        fds1, rss0, rss1, hostile_count_maps(t->d.pid, "memfd:"));
	T_CHECK(fds1 <= fds0, "fd count grew from %d to %d", fds0, fds1);
	T_CHECK(rss1 <= rss0 + HOSTILE_RSS_SLACK_KIB, "VmRSS grew from %ld to %ld KiB", rss0, rss1);
	return 0;
}

int
main(void)
{
	struct vh_target_opts to = {.num_blocks = 8192};
	const char *e = getenv("HOSTILE_FLOOD");
	unsigned flood = e ? (unsigned)strtoul(e, NULL, 0) : 100000;
	struct witness w;
	struct vh_target t;
	int fail = 0, rc;

	if (vh_test_qsd()) {
		fprintf(stderr, "SKIP: vhostd-only\n");
		return VH_TEST_SKIP;
	}
	hostile_asan_env();
	rc = vh_target_start(&t, &to);
	if (rc) {
		return rc == VH_TEST_SKIP ? VH_TEST_SKIP : VH_TEST_FAIL;
	}
	if (witness_open(&t, &w) < 0 || witness_check(&t, &w) < 0) {
		vh_target_stop(&t);
		return VH_TEST_FAIL;
	}
#define RUN(x)                                                                                     \
	do {                                                                                       \
		fprintf(stderr, "--- %s\n", #x);                                                   \
		if ((x) < 0 || witness_check(&t, &w) < 0) {                                        \
			fprintf(stderr, "FAIL: %s\n", #x);                                         \
			fail = 1;                                                                  \
		}                                                                                  \
	} while (0)
	RUN(t_queue_params(&t));
	RUN(t_mem_tables(&t));
	RUN(t_remove_ring_region(&t, &w));
	RUN(t_floods(&t, &w, flood));
	/* Last: today it kills a sanitizer build of the daemon (see docs/security.md). */
	RUN(t_inflight_misaligned(&t));
	witness_close(&w);
	if (vh_target_stop(&t) < 0) {
		fail = 1;
	}
	fprintf(stderr, "test_hostile_state: %s\n", fail ? "FAIL" : "PASS");
	return fail ? VH_TEST_FAIL : VH_TEST_PASS;
}
