/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Hostile guest memory from the front-end, against a running vhostd (docs/security.md 2.3):
 * (a) the front-end truncates its memfd while I/O runs: the daemon takes SIGBUS on its next
 *     access; that must close this session only, while a second controller on the same
 *     reactor keeps serving verified I/O and the controller takes a new front-end afterwards;
 * (b) 4 KiB regions 10 TiB and 100 TiB into a sparse memfd map 4 KiB each (the daemon's VmSize
 *     stays put; the old code mapped the file from offset 0), and regions larger than the
 *     default per-session limit (1 TiB) are refused;
 * (c) a huge-page memfd whose pool has no free page is refused with an error ack at
 *     ADD_MEM_REG and SET_MEM_TABLE (it used to be mapped and SIGBUS on first touch); one
 *     with a free page is accepted;
 * (d) --max-guest-mem: a session's regions together stay under it, a front-end within it
 *     works, one over it cannot start, and bad option values stop the daemon at start.
 * $HOSTILE_MEM_CASES (e.g. "bd") runs a subset.
 */
#include <fcntl.h>
#include <sys/mman.h>

#include "test_hostile_common.h"

#define F_NR             (VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK)
#define TIB              (1ull << 40)
#define VMSIZE_SLACK_KIB (256 * 1024) /* growth allowed per step: far below one region's size */

/* ---- helpers ---- */

static long
vm_size_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (f == NULL) {
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "VmSize: %ld kB", &kib) == 1) {
			break;
		}
	}
	fclose(f);
	return kib;
}

/* vh_target_start() with extra vhostd arguments (NULL-terminated list). vhostd only. */
static int
target_start_args(struct vh_target *t, const char *const *extra)
{
	json_t *p;

	memset(t, 0, sizeof(*t));
	t->d.pid = -1;
	snprintf(t->name, sizeof(t->name), "vhost.0");
	snprintf(t->bdev, sizeof(t->bdev), "Malloc0");
	t->num_blocks = 16384;
	t->block_size = 512;
	int rc;

	T_OK(vh_daemon_start(&t->d, NULL, extra, 10000));
	vh_daemon_path(&t->d, t->name, t->sock, sizeof(t->sock));
	p = json_pack("{s:s, s:I, s:i}", "name", t->bdev, "num_blocks", (json_int_t)t->num_blocks,
	              "block_size", (int)t->block_size);
	rc = vh_target_rpc(t, "bdev_malloc_create", p, NULL);
	if (rc == 0) {
		p = json_pack("{s:s, s:s, s:s}", "ctrlr", t->name, "dev_name", t->bdev, "cpumask",
		              "0x1");
		rc = vh_target_rpc(t, "vhost_create_blk_controller", p, NULL);
	}
	if (rc < 0) {
		vh_daemon_stop(&t->d, 2000);
		return -1;
	}
	return 0;
}

/* The message must get an error ack (REPLY_ACK negotiated, NEED_REPLY set). */
static int
refused(struct vh_fe *fe, const char *what, uint32_t req, const void *p, uint32_t size, int fd)
{
	uint64_t v = 0;
	int rc = vh_fe_call(fe, req, F_NR, p, size, &fd, 1, &v, sizeof(v));

	T_CHECK(rc == 8 && v != 0, "%s: rc %d ack %llu (expected an error ack)", what, rc,
	        (unsigned long long)v);
	fprintf(stderr, "ok: %s -> error ack\n", what);
	return 0;
}

static int
accepted(struct vh_fe *fe, const char *what, uint32_t req, const void *p, uint32_t size, int fd)
{
	uint64_t v = 1;
	int rc = vh_fe_call(fe, req, F_NR, p, size, &fd, 1, &v, sizeof(v));

	T_CHECK(rc == 8 && v == 0, "%s: rc %d ack %llu (expected success)", what, rc,
	        (unsigned long long)v);
	fprintf(stderr, "ok: %s -> accepted\n", what);
	return 0;
}

static struct vhost_user_mem_reg
reg(uint64_t gpa, uint64_t size, uint64_t uaddr, uint64_t off)
{
	struct vhost_user_mem_reg r = {.region = {gpa, size, uaddr, off}};

	return r;
}

/* SET_MEM_TABLE of @n regions, all from @fd; @ok: expect success, else an error ack. */
static int
set_table(struct vh_fe *fe, const char *what, bool ok, const struct vhost_user_memory_region *rg,
          uint32_t n, int fd)
{
	struct vhost_user_memory m = {.nregions = n};
	int fds[VHOST_MEMORY_BASELINE_NREGIONS];
	uint64_t v = 0;
	int rc;

	for (uint32_t i = 0; i < n; i++) {
		m.regions[i] = rg[i];
		fds[i] = fd;
	}
	rc = vh_fe_call(fe, VHOST_USER_SET_MEM_TABLE, F_NR, &m, 8 + 32 * n, fds, n, &v, sizeof(v));
	T_CHECK(rc == 8 && (v == 0) == ok, "%s: rc %d ack %llu (expected %s)", what, rc,
	        (unsigned long long)v, ok ? "success" : "an error ack");
	fprintf(stderr, "ok: %s -> %s\n", what, ok ? "accepted" : "error ack");
	return 0;
}

/* A front-end that negotiated and set its owner, but sent no memory yet. */
static int
raw_open(struct vh_target *t, struct vh_fe_mem **mem, struct vh_fe **fe)
{
	struct vh_fe_mem_opts mo = {.size = 1 << 20};
	struct vh_fe_opts fo = {.num_queues = 1, .ack_all = true};

	T_OK(vh_test_fe_open(t, &mo, &fo, mem, fe));
	T_CHECK(vh_fe_info(*fe)->protocol & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK),
	        "REPLY_ACK not negotiated");
	return 0;
}

/* A new front-end on @t's controller: start it and run a verified write/read. */
static int
fresh_io(struct vh_target *t, uint64_t mem_size)
{
	struct vh_fe_mem_opts mo = {.size = mem_size};
	struct vh_fe_opts fo = {.num_queues = 1};
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	int rc;

	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	rc = vh_fe_start(fe, 0, 0);
	if (rc == 0) {
		rc = io_smoke(fe, mem, 0, 64, 0x5eed) < 0 ? -EIO : 0;
	}
	vh_test_fe_close(mem, fe);
	return rc;
}

/* ---- (a) truncate under I/O ---- */

static int
kick_all(struct vh_fe *fe, unsigned nq)
{
	uint64_t one = 1;

	for (unsigned i = 0; i < nq; i++) {
		T_CHECK(write(vh_fe_vq_kick_fd(vh_fe_vq(fe, i)), &one, sizeof(one)) == 8, "kick");
	}
	return 0;
}

static int
truncate_under_io(struct vh_target *t, struct witness *w, uint64_t seed)
{
	struct vh_fe_mem_opts mo = {.size = 16 << 20};
	struct vh_fe_opts fo = {.num_queues = 2};
	int64_t deadline;
	struct vh_fe_mem *mem;
	struct io_engine e;
	struct vh_fe *fe;
	int rc = -1, closed = -ETIMEDOUT;

	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	if (vh_fe_start(fe, 0, 0) < 0 || io_engine_init(&e, fe, mem, 2, 16, seed) < 0) {
		fprintf(stderr, "FAIL: victim start\n");
		vh_test_fe_close(mem, fe);
		return -1;
	}
	if (io_engine_run(&e, 400, false, 10000) < 0 || io_engine_submit(&e, 32) < 0) {
		goto out;
	}
	fprintf(stderr, "victim: %llu requests done, %u in flight; truncating its memory\n",
	        (unsigned long long)e.done, io_engine_inflight(&e));
	/* From here on neither side may touch that memory: ours would SIGBUS too. */
	if (ftruncate(mem->fd, 0) < 0) {
		fprintf(stderr, "FAIL: ftruncate: %s\n", strerror(errno));
		goto out;
	}
	deadline = vh_fe_now_ms() + 10000;
	while (closed == -ETIMEDOUT && vh_fe_now_ms() < deadline) {
		/* Wake the victim's queues if their reactor went to sleep. */
		if (kick_all(fe, 2) < 0 || witness_check(t, w) < 0) {
			goto out;
		}
		closed = vh_fe_wait_closed(fe, 20);
	}
	if (closed != 0) {
		fprintf(stderr, "FAIL: the victim's session did not close (%s)\n",
		        strerror(-closed));
		goto out;
	}
	fprintf(stderr, "ok: victim session closed, witness did %llu rounds meanwhile\n",
	        (unsigned long long)w->rounds);
	if (hostile_wait_disconnected(t, t->name, 5000) < 0) {
		goto out;
	}
	for (int i = 0; i < 20; i++) {
		if (witness_check(t, w) < 0) {
			goto out;
		}
	}
	/* The controller serves the next front-end. */
	if (fresh_io(t, 8 << 20) < 0) {
		fprintf(stderr, "FAIL: the controller does not serve a new front-end\n");
		goto out;
	}
	fprintf(stderr, "ok: daemon alive, witness and a new front-end work\n");
	rc = 0;
out:
	io_engine_fini(&e);
	vh_test_fe_close(mem, fe);
	return rc;
}

/* ---- (b) huge offsets, huge regions ---- */

static int
vmsize_step(struct vh_target *t, long vm0, const char *what)
{
	long vm = vm_size_kib(t->d.pid);

	T_CHECK(vm >= 0 && vm - vm0 < VMSIZE_SLACK_KIB,
	        "after %s the daemon's VmSize grew by %ld MiB", what, (vm - vm0) / 1024);
	return 0;
}

static int
huge_offsets(struct vh_target *t, struct vh_fe *fe)
{
	const uint64_t off = 100 * TIB;
	struct vhost_user_memory_region tab[1];
	struct vhost_user_mem_reg r;
	long vm0 = vm_size_kib(t->d.pid);
	int fd, rc = -1;

	fd = memfd_create("hostile-sparse", MFD_CLOEXEC);
	T_CHECK(fd >= 0 && ftruncate(fd, (off_t)(off + (2 << 20))) == 0, "sparse memfd: %s",
	        strerror(errno));
	/* 10 TiB fits in the address space (the old code mapped it all), 100 TiB may not. */
	r = reg(0x200000000ull, 0x1000, 0x7d0000000000ull, 10 * TIB);
	if (accepted(fe, "ADD_MEM_REG of 4 KiB at offset 10 TiB", VHOST_USER_ADD_MEM_REG, &r,
	             sizeof(r), fd) < 0 ||
	    vmsize_step(t, vm0, "ADD_MEM_REG at 10 TiB") < 0) {
		goto out;
	}
	r = reg(0x100000000ull, 0x1000, 0x7e0000000000ull, off);
	if (accepted(fe, "ADD_MEM_REG of 4 KiB at offset 100 TiB", VHOST_USER_ADD_MEM_REG, &r,
	             sizeof(r), fd) < 0 ||
	    vmsize_step(t, vm0, "ADD_MEM_REG at 100 TiB") < 0) {
		goto out;
	}
	tab[0] = (struct vhost_user_memory_region){0, 2 << 20, 0x7e0000000000ull, off};
	if (set_table(fe, "SET_MEM_TABLE of 2 MiB at offset 100 TiB", true, tab, 1, fd) < 0 ||
	    vmsize_step(t, vm0, "SET_MEM_TABLE at 100 TiB") < 0) {
		goto out;
	}
	/* Larger than the default limit of 1 TiB per session. */
	r = reg(0x10000000000ull, 2 * TIB, 0x100000000000ull, 0);
	if (refused(fe, "ADD_MEM_REG of 2 TiB", VHOST_USER_ADD_MEM_REG, &r, sizeof(r), fd) < 0 ||
	    vmsize_step(t, vm0, "ADD_MEM_REG of 2 TiB") < 0) {
		goto out;
	}
	tab[0] = (struct vhost_user_memory_region){0, off, 0x100000000000ull, 0};
	if (set_table(fe, "SET_MEM_TABLE of 100 TiB", false, tab, 1, fd) < 0 ||
	    vmsize_step(t, vm0, "SET_MEM_TABLE of 100 TiB") < 0) {
		goto out;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

/* ---- (c) huge pages without free pages ---- */

struct pool {
	char dir[96];
	uint64_t page;
	long nr; /* nr_hugepages to put back, or -1 if we did not change it */
};

static long
pool_read(const struct pool *p, const char *file)
{
	char path[160];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", p->dir, file);
	f = fopen(path, "re");
	if (f != NULL) {
		if (fscanf(f, "%ld", &v) != 1) {
			v = -1;
		}
		fclose(f);
	}
	return v;
}

static int
pool_write_nr(const struct pool *p, long nr)
{
	char path[160];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/nr_hugepages", p->dir);
	f = fopen(path, "we");
	if (f == NULL) {
		return -errno;
	}
	ok = fprintf(f, "%ld\n", nr) > 0;
	ok &= fclose(f) == 0;
	return ok ? 0 : -EIO;
}

/* Pages the pool can still give: free and not reserved by someone. */
static long
pool_available(const struct pool *p)
{
	long f = pool_read(p, "free_hugepages"), r = pool_read(p, "resv_hugepages");

	return f < 0 || r < 0 ? -1 : f - r;
}

static void
pool_init(struct pool *p, unsigned kib)
{
	snprintf(p->dir, sizeof(p->dir), "/sys/kernel/mm/hugepages/hugepages-%ukB", kib);
	p->page = (uint64_t)kib << 10;
	p->nr = -1;
}

static void
pool_restore(struct pool *p)
{
	if (p->nr >= 0) {
		if (pool_write_nr(p, p->nr) < 0) {
			fprintf(stderr, "WARNING: could not restore %s/nr_hugepages to %ld\n",
			        p->dir, p->nr);
		}
		p->nr = -1;
	}
}

/*
 * A pool with no page to give: one that is empty already (usually the 1 GiB pool), or else the
 * 2 MiB pool shrunk to the pages in use (the kernel keeps used and reserved ones), restored by
 * pool_restore(). Returns 1 if found, 0 if not possible (skip).
 */
static int
pool_find_empty(struct pool *p)
{
	static const unsigned kib[] = {1048576, 2048};
	long nr, avail;

	for (size_t i = 0; i < sizeof(kib) / sizeof(kib[0]); i++) {
		pool_init(p, kib[i]);
		if (pool_available(p) == 0 && pool_read(p, "nr_overcommit_hugepages") == 0) {
			return 1;
		}
	}
	pool_init(p, 2048);
	nr = pool_read(p, "nr_hugepages");
	avail = pool_available(p);
	if (pool_read(p, "nr_overcommit_hugepages") != 0 || nr < 0 || avail < 0 || avail > nr) {
		return 0;
	}
	p->nr = nr;
	if (pool_write_nr(p, nr - avail) < 0 || pool_available(p) != 0) {
		fprintf(stderr, "cannot empty the 2 MiB huge page pool\n");
		pool_restore(p);
		return 0;
	}
	fprintf(stderr, "2 MiB huge page pool shrunk from %ld pages for the test\n", p->nr);
	return 1;
}

static int
huge_memfd(const struct pool *p)
{
	/* MFD_HUGE_* uses the same encoding as MAP_HUGE_* (log2 of the size, shifted). */
	int fd = memfd_create("hostile-huge", MFD_CLOEXEC | MFD_HUGETLB |
	                                              (__builtin_ctzll(p->page) << MAP_HUGE_SHIFT));

	if (fd >= 0 && ftruncate(fd, (off_t)p->page) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
huge_no_pages(struct vh_target *t, struct vh_fe *fe)
{
	struct vhost_user_memory_region tab[1];
	struct vhost_user_mem_reg r;
	struct pool p, q;
	int fd, rc = -1;

	if (pool_find_empty(&p) == 0) {
		fprintf(stderr, "skip: no huge page pool can be emptied here\n");
		return 1;
	}
	fd = huge_memfd(&p);
	if (fd < 0) {
		fprintf(stderr, "skip: no %llu KiB huge-page memfd: %s\n",
		        (unsigned long long)(p.page >> 10), strerror(errno));
		pool_restore(&p);
		return 1;
	}
	r = reg(0, p.page, 0x7e0000000000ull, 0);
	rc = refused(fe, "ADD_MEM_REG of huge pages with none free", VHOST_USER_ADD_MEM_REG, &r,
	             sizeof(r), fd);
	if (rc == 0) {
		tab[0] = r.region;
		rc = set_table(fe, "SET_MEM_TABLE of huge pages with none free", false, tab, 1, fd);
	}
	close(fd);
	pool_restore(&p);
	T_CHECK(vh_daemon_alive(&t->d), "daemon died");
	if (rc < 0) {
		return -1;
	}
	/* Control: with a free huge page the same region is accepted. */
	pool_init(&q, 2048);
	fd = pool_available(&q) > 0 ? huge_memfd(&q) : -1;
	if (fd >= 0) {
		r = reg(0, q.page, 0x7e0000000000ull, 0);
		rc = accepted(fe, "ADD_MEM_REG of a free huge page", VHOST_USER_ADD_MEM_REG, &r,
		              sizeof(r), fd);
		close(fd);
	} else {
		fprintf(stderr, "no free 2 MiB huge page: positive control skipped\n");
	}
	return rc;
}

/* ---- (d) --max-guest-mem ---- */

static int
session_cap(struct vh_target *t, struct vh_fe *fe)
{
	struct vhost_user_memory_region tab[2];
	struct vhost_user_mem_reg r;
	const uint64_t M = 1 << 20, ua = 0x7e0000000000ull;
	int fd, rc = -1;

	fd = memfd_create("hostile-cap", MFD_CLOEXEC);
	T_CHECK(fd >= 0 && ftruncate(fd, (off_t)(64 * M)) == 0, "memfd");
	r = reg(0, 8 * M, ua, 0);
	if (accepted(fe, "ADD_MEM_REG 8 MiB (limit 16 MiB)", VHOST_USER_ADD_MEM_REG, &r, sizeof(r),
	             fd) < 0) {
		goto out;
	}
	r = reg(16 * M, 8 * M, ua + 16 * M, 8 * M);
	if (accepted(fe, "ADD_MEM_REG another 8 MiB", VHOST_USER_ADD_MEM_REG, &r, sizeof(r), fd) <
	    0) {
		goto out;
	}
	r = reg(32 * M, 4096, ua + 32 * M, 16 * M);
	if (refused(fe, "ADD_MEM_REG 4 KiB over the limit", VHOST_USER_ADD_MEM_REG, &r, sizeof(r),
	            fd) < 0) {
		goto out;
	}
	r = reg(32 * M, 17 * M, ua + 32 * M, 16 * M);
	if (refused(fe, "ADD_MEM_REG of 17 MiB alone", VHOST_USER_ADD_MEM_REG, &r, sizeof(r), fd) <
	    0) {
		goto out;
	}
	tab[0] = (struct vhost_user_memory_region){0, 12 * M, ua, 0};
	tab[1] = (struct vhost_user_memory_region){16 * M, 12 * M, ua + 16 * M, 16 * M};
	if (set_table(fe, "SET_MEM_TABLE of 2 x 12 MiB", false, tab, 2, fd) < 0) {
		goto out;
	}
	tab[0] = (struct vhost_user_memory_region){0, 16 * M, ua, 0};
	if (set_table(fe, "SET_MEM_TABLE of 16 MiB", true, tab, 1, fd) < 0) {
		goto out;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

static int
bad_option_values(void)
{
	static const char *const bad[] = {"0", "-1", "1X", "16MB", "", "99999999999T"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *extra[] = {"--max-guest-mem", bad[i], NULL};
		struct vh_daemon d = {0};
		int rc = vh_daemon_start(&d, NULL, extra, 5000);

		if (rc == 0) {
			vh_daemon_stop(&d, 2000);
		}
		T_CHECK(rc == -ECHILD, "--max-guest-mem '%s': start gave %d, expected an exit",
		        bad[i], rc);
	}
	fprintf(stderr, "ok: bad --max-guest-mem values stop the daemon\n");
	return 0;
}

/* ---- main ---- */

static bool
want(char c)
{
	const char *e = getenv("HOSTILE_MEM_CASES");

	return e == NULL || *e == '\0' || strchr(e, c) != NULL;
}

/* (b) or (c) on a fresh front-end without memory. Returns < 0 fail, 0 pass, 1 skipped. */
static int
on_raw_session(struct vh_target *t, int (*fn)(struct vh_target *t, struct vh_fe *fe))
{
	struct vh_fe_mem *mem = NULL;
	struct vh_fe *fe = NULL;
	int rc;

	if (raw_open(t, &mem, &fe) < 0) {
		return -1;
	}
	rc = fn(t, fe);
	vh_test_fe_close(mem, fe);
	return rc;
}

static int
run_default(uint64_t seed, bool *skipped)
{
	struct vh_target t;
	struct witness w;
	int fail = 0, rc;

	if (target_start_args(&t, NULL) < 0) {
		return -1;
	}
	if (witness_open(&t, &w) < 0) {
		vh_target_stop(&t);
		return -1;
	}
	if (want('a')) {
		fprintf(stderr, "--- (a) truncated guest memory under I/O\n");
		fail |= truncate_under_io(&t, &w, seed) < 0;
	}
	if (want('b')) {
		fprintf(stderr, "--- (b) huge offsets and huge regions\n");
		fail |= on_raw_session(&t, huge_offsets) < 0;
		fail |= witness_check(&t, &w) < 0;
	}
	if (want('c')) {
		fprintf(stderr, "--- (c) huge pages without a free page\n");
		rc = on_raw_session(&t, huge_no_pages);
		fail |= rc < 0;
		*skipped = rc > 0;
		fail |= witness_check(&t, &w) < 0;
	}
	fail |= fresh_io(&t, 8 << 20) < 0;
	witness_close(&w);
	fail |= vh_target_stop(&t) < 0;
	return fail ? -1 : 0;
}

static int
run_cap(void)
{
	const char *extra[] = {"--max-guest-mem", "16M", NULL};
	struct vh_fe_mem *mem = NULL;
	struct vh_fe *fe = NULL;
	struct vh_target t;
	int fail = 0, rc;

	fprintf(stderr, "--- (d) --max-guest-mem 16M\n");
	fail |= bad_option_values() < 0;
	if (target_start_args(&t, extra) < 0) {
		return -1;
	}
	if (raw_open(&t, &mem, &fe) == 0) {
		fail |= session_cap(&t, fe) < 0;
		vh_test_fe_close(mem, fe);
	} else {
		fail = 1;
	}
	/* A front-end within the limit works; one over it cannot start. */
	if (fresh_io(&t, 8 << 20) < 0) {
		fprintf(stderr, "FAIL: 8 MiB front-end under a 16 MiB limit\n");
		fail = 1;
	}
	rc = fresh_io(&t, 32 << 20);
	if (rc == 0) {
		fprintf(stderr, "FAIL: 32 MiB front-end started under a 16 MiB limit\n");
		fail = 1;
	} else {
		fprintf(stderr, "ok: 32 MiB front-end refused (%s)\n", strerror(-rc));
	}
	fail |= hostile_wait_disconnected(&t, t.name, 5000) < 0;
	fail |= fresh_io(&t, 8 << 20) < 0;
	fail |= vh_target_stop(&t) < 0;
	return fail ? -1 : 0;
}

int
main(void)
{
	uint64_t seed = vh_test_seed("test_hostile_mem");
	bool skipped = false;
	int fail = 0;

	if (vh_test_qsd()) {
		fprintf(stderr, "SKIP: vhostd-only test\n");
		return VH_TEST_SKIP;
	}
	if (getenv("VHOSTD") == NULL) {
		fprintf(stderr, "SKIP: $VHOSTD not set\n");
		return VH_TEST_SKIP;
	}
	fail |= run_default(seed, &skipped) < 0;
	if (want('d')) {
		fail |= run_cap() < 0;
	}
	fprintf(stderr, "test_hostile_mem: %s%s\n", fail ? "FAIL" : "PASS",
	        skipped && !fail ? " (huge page case skipped)" : "");
	return fail ? VH_TEST_FAIL : VH_TEST_PASS;
}
