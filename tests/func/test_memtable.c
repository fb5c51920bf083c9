/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Memory-table changes under I/O: ADD_MEM_REG of a hot-plugged region and I/O through it,
 * REM_MEM_REG of it (a request that still points there must fail, not crash), and a whole-table
 * SET_MEM_TABLE while the rings run. The random workload on the other regions continues
 * throughout and is checked against its shadow.
 */
#include "io_engine.h"
#include "vh_test.h"

#define NQ 2

/* One read/write pair whose buffers live in region `region`. Returns the read's status. */
static int
io_in_region(struct vh_fe *fe, struct vh_fe_mem *mem, unsigned int region, uint64_t *gpa_cache)
{
	struct vh_fe_iov iov;
	struct vh_fe_req r = {.type = VIRTIO_BLK_T_IN, .sector = 8, .iov = &iov, .niov = 1};
	int rc;

	if (*gpa_cache == 0) {
		*gpa_cache = vh_fe_mem_alloc_in(mem, region, 8192, 4096);
	}
	iov = (struct vh_fe_iov){*gpa_cache, 8192};
	/* The request runs on the last queue so the engine's queues keep their own state. */
	rc = io_sync(fe, NQ, &r, 10000);
	return rc < 0 ? rc : r.status;
}

static int
pump(struct io_engine *e, uint64_t ops)
{
	return io_engine_run(e, ops, false, 10000);
}

static int
run(struct vh_target *t, bool set_mem_table, uint64_t seed)
{
	struct vh_fe_mem_opts mo = {.size = 32 << 20, .nregions = 2, .hotplug_size = 4 << 20};
	struct vh_fe_opts fo = {.num_queues = NQ + 1, .use_set_mem_table = set_mem_table};
	const char *how = set_mem_table ? "SET_MEM_TABLE" : "ADD/REM_MEM_REG";
	struct vh_fe_mem *mem;
	struct io_engine e;
	struct vh_fe *fe;
	uint64_t hp = 0;
	int rc = -1, st, i;

	fprintf(stderr, "memory table changes with %s\n", how);
	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	if (vh_fe_start(fe, 0, 0) < 0 || io_engine_init(&e, fe, mem, NQ, 16, seed) < 0) {
		goto out;
	}
	e.straddle = !t->qsd;
	for (i = 0; i < 5; i++) {
		if (pump(&e, 200) < 0 || io_engine_submit(&e, 32) < 0) {
			goto out_engine;
		}
		st = vh_fe_mem_plug(fe, 2);
		if (st < 0) {
			fprintf(stderr, "FAIL: %s: plug region 2: %s\n", how, strerror(-st));
			goto out_engine;
		}
		if (pump(&e, 100) < 0) {
			goto out_engine;
		}
		st = io_in_region(fe, mem, 2, &hp);
		if (st != VIRTIO_BLK_S_OK) {
			fprintf(stderr, "FAIL: %s: I/O in the plugged region: %d\n", how, st);
			goto out_engine;
		}
		if (io_engine_submit(&e, 32) < 0) {
			goto out_engine;
		}
		st = vh_fe_mem_unplug(fe, 2);
		if (st < 0) {
			fprintf(stderr, "FAIL: %s: unplug region 2: %s\n", how, strerror(-st));
			goto out_engine;
		}
		if (pump(&e, 100) < 0) {
			goto out_engine;
		}
		/* DESIGN §3: a buffer that touches unmapped space fails that request. */
		if (!t->qsd) {
			st = io_in_region(fe, mem, 2, &hp);
			if (st != VIRTIO_BLK_S_IOERR) {
				fprintf(stderr,
				        "FAIL: %s: I/O into an unplugged region: status %d, "
				        "expected IOERR\n",
				        how, st);
				goto out_engine;
			}
		}
		/* Re-sending the same table under I/O must not disturb anything. */
		if (set_mem_table && vh_fe_set_mem_table(fe) < 0) {
			fprintf(stderr, "FAIL: SET_MEM_TABLE resend\n");
			goto out_engine;
		}
	}
	if (io_engine_run(&e, 200, true, 10000) < 0 || vh_fe_stop(fe) < 0) {
		goto out_engine;
	}
	rc = 0;
out_engine:
	io_engine_fini(&e);
out:
	vh_test_fe_close(mem, fe);
	return rc;
}

int
main(void)
{
	struct vh_target_opts to = {.num_blocks = 16384};
	uint64_t seed = vh_test_seed("test_memtable");
	struct vh_target t;
	int rc, fail = 0;

	rc = vh_target_start(&t, &to);
	if (rc) {
		return rc == VH_TEST_SKIP ? VH_TEST_SKIP : VH_TEST_FAIL;
	}
	fail |= run(&t, false, seed) < 0;
	fail |= run(&t, true, seed + 1) < 0;
	if (vh_target_stop(&t) < 0) {
		fail = 1;
	}
	fprintf(stderr, "test_memtable: %s\n", fail ? "FAIL" : "PASS");
	return fail ? VH_TEST_FAIL : VH_TEST_PASS;
}
