/* SPDX-License-Identifier: BSD-3-Clause */
/* Controller bring-up, identify, queue creation, reset and shutdown against the mock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "nvme_test.h"

static void
test_bringup(void **state)
{
	struct fixture f;

	assert_int_equal(fixture_up(&f, NULL), 0);
	/* CC per §3.1.5: NVM set, 4 KiB pages, SQE 2^6, CQE 2^4, enabled; the controller is ready.
	 */
	assert_int_equal(f.m->cc & VH_NVME_CC_EN, VH_NVME_CC_EN);
	assert_int_equal((f.m->cc >> VH_NVME_CC_MPS_SHIFT) & 0xf, 0);
	assert_int_equal((f.m->cc >> VH_NVME_CC_CSS_SHIFT) & 0x7, 0);
	assert_int_equal((f.m->cc >> VH_NVME_CC_IOSQES_SHIFT) & 0xf, 6);
	assert_int_equal((f.m->cc >> VH_NVME_CC_IOCQES_SHIFT) & 0xf, 4);
	assert_true(f.m->csts & VH_NVME_CSTS_RDY);
	assert_int_equal(f.m->aqa, ((32u - 1) << 16) | (32u - 1));
	assert_int_not_equal(f.m->asq, 0);
	assert_int_not_equal(f.m->acq, 0);
	assert_int_equal(f.m->enables, 1);
	/* Identify Controller. */
	assert_memory_equal(f.c->cdata.mn, "vhostd mock controller", 22);
	assert_int_equal(f.c->max_xfer, 4096u << 5);
	assert_true(f.c->cdata.oncs & VH_NVME_ONCS_WRITE_ZEROES);
	/* Namespaces, through the active list (VS 1.4). */
	assert_int_equal(f.c->num_ns, 2);
	assert_int_equal(vh_nvme_ctrlr_ns(f.c, 1)->nsze, 1024);
	assert_int_equal(vh_nvme_ctrlr_ns(f.c, 1)->lba_shift, 9);
	assert_int_equal(vh_nvme_ctrlr_ns(f.c, 2)->lba_shift, 12);
	assert_null(vh_nvme_ctrlr_ns(f.c, 3));
	assert_int_equal(f.m->opc_count[0][VH_NVME_ADM_IDENTIFY], 1 + 1 + 2);
	assert_int_equal(f.m->prp_errors + f.m->bad_doorbells + f.m->cq_overflows, 0);
	fixture_down(&f);
}

static void
test_queue_creation(void **state)
{
	struct fixture f;

	assert_int_equal(fixture_up(&f, NULL), 0);
	assert_int_equal(f.c->num_io_queues, 2);
	for (uint16_t q = 1; q <= 2; q++) {
		assert_true(f.m->sq[q].created);
		assert_true(f.m->cq[q].created);
		assert_true(f.m->cq[q].pc);
		assert_false(f.m->cq[q].ien); /* polled: no interrupts */
		assert_int_equal(f.m->sq[q].cqid, q);
		assert_int_equal(f.m->sq[q].size, 64);
		assert_int_equal(f.m->cq[q].size, 64);
	}
	assert_false(f.m->sq[3].created);
	fixture_down(&f);
	/* Deletion on destroy: SQs before CQs (the mock refuses a CQ with a live SQ), then SHN. */
	assert_int_equal(fixture_up(&f, NULL), 0);
	vh_nvme_ctrlr_destroy(f.c);
	f.c = NULL;
	assert_int_equal(f.m->opc_count[0][VH_NVME_ADM_DELETE_SQ], 2);
	assert_int_equal(f.m->opc_count[0][VH_NVME_ADM_DELETE_CQ], 2);
	assert_false(f.m->cq[1].created);
	assert_int_equal(f.m->shutdowns, 1);
	fixture_down(&f);
}

static void
test_fewer_queues_granted(void **state)
{
	struct vh_nvme_ctrlr_opts o;
	struct fixture f;

	fixture_mock(&f);
	f.m->max_io_queues = 3;
	f.m->mqes = 15; /* CAP.MQES caps the depth too */
	fixture_opts(&f, &o);
	o.num_io_queues = 8;
	assert_int_equal(vh_nvme_ctrlr_init(f.dev, &o, &f.c), 0);
	assert_int_equal(f.c->num_io_queues, 3);
	assert_int_equal(f.c->io_queue_depth, 16);
	assert_int_equal(f.m->sq[3].size, 16);
	assert_null(vh_nvme_ctrlr_ioq(f.c, 3));
	fixture_down(&f);
}

static void
test_doorbell_stride(void **state)
{
	struct fixture f;
	struct done d = {0};
	static uint8_t buf[512] __attribute__((aligned(4096)));
	struct iovec iov = {buf, sizeof(buf)};

	fixture_mock(&f);
	f.m->dstrd = 3; /* doorbells 32 bytes apart: a wrong stride never reaches the queues */
	{
		struct vh_nvme_ctrlr_opts o;

		fixture_opts(&f, &o);
		assert_int_equal(vh_nvme_ctrlr_init(f.dev, &o, &f.c), 0);
	}
	assert_int_equal(f.c->db_stride, 32);
	assert_int_equal(vh_nvme_qpair_rw(vh_nvme_ctrlr_ioq(f.c, 1), false, 1, 0, 1, &iov, 1, 0,
	                                  512, done_cb, &d),
	                 0);
	poll_until(vh_nvme_ctrlr_ioq(f.c, 1), &d);
	assert_int_equal(d.status, 0);
	assert_int_equal(f.m->bad_doorbells, 0);
	fixture_down(&f);
}

static void
test_no_active_list(void **state)
{
	struct fixture f;

	fixture_mock(&f);
	mock_add_ns(f.m, 4, 16, 9);      /* NSID 3 is inactive: probing skips it */
	f.m->ns[f.m->num_ns - 1].ms = 8; /* and 4 has metadata: skipped */
	f.m->no_active_list = true;
	{
		struct vh_nvme_ctrlr_opts o;

		fixture_opts(&f, &o);
		assert_int_equal(vh_nvme_ctrlr_init(f.dev, &o, &f.c), 0);
	}
	assert_int_equal(f.c->num_ns, 2);
	assert_non_null(vh_nvme_ctrlr_ns(f.c, 2));
	assert_null(vh_nvme_ctrlr_ns(f.c, 4));
	fixture_down(&f);

	/* VS 1.0 controllers are probed NSID by NSID without asking for the list. */
	fixture_mock(&f);
	f.m->vs = 0x00010000;
	{
		struct vh_nvme_ctrlr_opts o;

		fixture_opts(&f, &o);
		assert_int_equal(vh_nvme_ctrlr_init(f.dev, &o, &f.c), 0);
	}
	assert_int_equal(f.c->num_ns, 2);
	assert_int_equal(f.m->opc_count[0][VH_NVME_ADM_IDENTIFY], 1 + 2);
	fixture_down(&f);
}

static void
test_ready_timeout(void **state)
{
	struct vh_nvme_ctrlr_opts o;
	struct fixture f;

	fixture_mock(&f);
	f.m->never_ready = true;
	f.m->to = 4; /* 2 s */
	fixture_opts(&f, &o);
	fake_clock_step = 10000000; /* 10 ms per clock read: the wait gives up after ~200 reads */
	assert_int_equal(vh_nvme_ctrlr_init(f.dev, &o, &f.c), -ETIMEDOUT);
	f.c = NULL;
	fixture_down(&f);
}

static void
test_was_enabled(void **state)
{
	struct fixture f;

	/* Left enabled by a previous owner: disabled (and its queues dropped) before set-up. */
	fixture_mock(&f);
	f.m->cc = VH_NVME_CC_EN | (6u << 16) | (4u << 20);
	f.m->csts = VH_NVME_CSTS_RDY;
	{
		struct vh_nvme_ctrlr_opts o;

		fixture_opts(&f, &o);
		assert_int_equal(vh_nvme_ctrlr_init(f.dev, &o, &f.c), 0);
	}
	assert_int_equal(f.m->disables, 1);
	assert_int_equal(f.m->enables, 1);
	fixture_down(&f);
}

static void
test_removed_at_bringup(void **state)
{
	struct vh_nvme_ctrlr_opts o;
	struct fixture f;

	fixture_mock(&f);
	f.m->removed = true;
	fixture_opts(&f, &o);
	assert_int_equal(vh_nvme_ctrlr_init(f.dev, &o, &f.c), -ENODEV);
	f.c = NULL;
	fixture_down(&f);
}

static void
test_queue_create_fails(void **state)
{
	struct vh_nvme_ctrlr_opts o;
	struct fixture f;

	/*
	 * A broken answer to Number of Queues (0xffff: more than asked, clamped to 1) and then a
	 * refused Create I/O CQ: init fails cleanly and frees what it built.
	 */
	fixture_mock(&f);
	f.m->max_io_queues = 0;
	fixture_opts(&f, &o);
	o.num_io_queues = 1;
	assert_int_equal(vh_nvme_ctrlr_init(f.dev, &o, &f.c), -EIO);
	assert_int_equal(f.m->opc_count[0][VH_NVME_ADM_CREATE_CQ], 1);
	assert_int_equal(f.m->opc_count[0][VH_NVME_ADM_CREATE_SQ], 0);
	f.c = NULL;
	fixture_down(&f);
}

static void
test_reset_idle(void **state)
{
	struct fixture f;
	struct done d = {0};
	static uint8_t buf[4096] __attribute__((aligned(4096)));
	struct iovec iov = {buf, sizeof(buf)};

	assert_int_equal(fixture_up(&f, NULL), 0);
	assert_int_equal(vh_nvme_ctrlr_reset(f.c), 0);
	assert_int_equal(f.m->disables, 1);
	assert_int_equal(f.m->enables, 2);
	assert_true(f.m->sq[1].created);
	assert_int_equal(f.c->resets, 1);
	/* The re-created queue works from slot 0 with phase 1 again. */
	assert_int_equal(vh_nvme_qpair_rw(f.qp, true, 1, 0, 8, &iov, 1, 0, 4096, done_cb, &d), 0);
	poll_until(f.qp, &d);
	assert_int_equal(d.status, 0);
	fixture_down(&f);
}

static void
test_health(void **state)
{
	struct fixture f;

	assert_int_equal(fixture_up(&f, NULL), 0);
	assert_int_equal(vh_nvme_ctrlr_check_health(f.c), 0);
	mock_set_fatal(f.m);
	assert_int_equal(vh_nvme_ctrlr_check_health(f.c), -EIO);
	f.m->removed = true;
	assert_int_equal(vh_nvme_ctrlr_check_health(f.c), -ENODEV);
	/* Destroying a removed controller touches no register it cannot reach and frees all. */
	fixture_down(&f);
}

static enum mock_verdict
drop_get_features(struct mock_ctrlr *m, uint16_t qid, const struct vh_nvme_sqe *sqe,
                  uint16_t *status)
{
	return qid == 0 && sqe->opc == VH_NVME_ADM_GET_FEATURES ? MOCK_DROP : MOCK_EXEC;
}

static void
test_admin_timeout(void **state)
{
	struct vh_nvme_sqe sqe = {.opc = VH_NVME_ADM_GET_FEATURES, .cdw10 = 0x07};
	struct fixture f;

	assert_int_equal(fixture_up(&f, NULL), 0);
	f.m->hook = drop_get_features;
	fake_clock_step = 10000000; /* 10 ms per read: the 1 s admin timeout comes quickly */
	assert_int_equal(vh_nvme_ctrlr_admin_sync(f.c, &sqe, NULL), -ETIMEDOUT);
	fake_clock_step = 1000;
	/* The abandoned command holds its slot until the reset (ASan checks it is freed then). */
	assert_int_equal(vh_nvme_qpair_outstanding(f.c->adminq), 1);
	assert_int_equal(vh_nvme_ctrlr_reset(f.c), 0);
	assert_int_equal(vh_nvme_qpair_outstanding(f.c->adminq), 0);
	f.m->hook = NULL;
	assert_int_equal(vh_nvme_ctrlr_admin_sync(f.c, &sqe, NULL), -EOPNOTSUPP);
	fixture_down(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_bringup),
	        cmocka_unit_test(test_queue_creation),
	        cmocka_unit_test(test_fewer_queues_granted),
	        cmocka_unit_test(test_doorbell_stride),
	        cmocka_unit_test(test_no_active_list),
	        cmocka_unit_test(test_ready_timeout),
	        cmocka_unit_test(test_was_enabled),
	        cmocka_unit_test(test_removed_at_bringup),
	        cmocka_unit_test(test_queue_create_fails),
	        cmocka_unit_test(test_reset_idle),
	        cmocka_unit_test(test_health),
	        cmocka_unit_test(test_admin_timeout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
