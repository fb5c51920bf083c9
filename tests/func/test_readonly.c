/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A read-only controller offers VIRTIO_BLK_F_RO and fails every write-type request (OUT,
 * DISCARD, WRITE_ZEROES) with IOERR, while reads, FLUSH and GET_ID work.
 */
#include "io_engine.h"
#include "vh_test.h"

static int
run(struct vh_target *t, uint64_t seed)
{
	struct vh_fe_mem_opts mo = {.size = 32 << 20, .nregions = 2};
	struct vh_fe_opts fo = {.num_queues = 2};
	struct vh_fe_mem *mem;
	struct io_engine e;
	struct vh_fe *fe;
	int rc = -1;

	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	if (!vh_fe_has(vh_fe_info(fe)->backend_features, VIRTIO_BLK_F_RO)) {
		fprintf(stderr, "FAIL: read-only controller does not offer VIRTIO_BLK_F_RO\n");
		goto out;
	}
	if (vh_fe_start(fe, 0, 0) < 0) {
		goto out;
	}
	if (!vh_fe_has(vh_fe_info(fe)->features, VIRTIO_BLK_F_RO)) {
		fprintf(stderr, "FAIL: RO not acked\n");
		goto out;
	}
	if (io_engine_init(&e, fe, mem, 2, 8, seed) < 0) {
		goto out;
	}
	e.readonly = true;
	e.straddle = !t->qsd;
	e.ops = IO_OP_READ | IO_OP_WRITE | IO_OP_FLUSH | IO_OP_GETID | IO_OP_DISC | IO_OP_WZ |
	        IO_OP_BADTYP | IO_OP_OOR;
	rc = io_engine_run(&e, 1500, true, 20000);
	io_engine_fini(&e);
	if (vh_fe_stop(fe) < 0) {
		rc = -1;
	}
out:
	vh_test_fe_close(mem, fe);
	return rc;
}

int
main(void)
{
	struct vh_target_opts to = {.num_blocks = 8192, .block_size = 512, .readonly = true};
	struct vh_target t;
	int rc, fail;

	rc = vh_target_start(&t, &to);
	if (rc) {
		return rc == VH_TEST_SKIP ? VH_TEST_SKIP : VH_TEST_FAIL;
	}
	fail = run(&t, vh_test_seed("test_readonly")) < 0;
	if (vh_target_stop(&t) < 0) {
		fail = 1;
	}
	fprintf(stderr, "test_readonly: %s\n", fail ? "FAIL" : "PASS");
	return fail ? VH_TEST_FAIL : VH_TEST_PASS;
}
