/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A second front-end on a busy controller socket: its connect succeeds (it waits in the
 * backlog; accept-then-close would wedge QEMU 7.2, reference §2.2) but nothing answers it while
 * the first front-end is connected. Once the first disconnects, the second gets the reply to
 * the request it sent while waiting, completes the handshake and does I/O.
 */
#include "io_engine.h"
#include "vh_test.h"

static int
run(struct vh_target *t)
{
	struct vh_fe_mem_opts mo = {.size = 16 << 20};
	struct vh_fe_opts fo = {.num_queues = 1};
	struct vh_fe_mem *mem1, *mem2 = NULL;
	struct vh_fe *fe1, *fe2 = NULL;
	struct vhost_user_header h;
	uint64_t feat = 0;
	int rc = -1, n;

	T_OK(vh_test_fe_open(t, &mo, &fo, &mem1, &fe1));
	if (vh_fe_start(fe1, 0, 0) < 0 || io_smoke(fe1, mem1, 0, 0, 1) < 0) {
		goto out;
	}
	fo.path = t->sock;
	if (vh_fe_mem_create(&mem2, &mo) < 0 || vh_fe_create(&fe2, mem2, &fo) < 0) {
		goto out;
	}
	n = vh_fe_connect(fe2, 2000);
	if (n < 0) {
		fprintf(stderr, "FAIL: second connect: %s (must sit in the backlog)\n",
		        strerror(-n));
		goto out;
	}
	n = vh_fe_send_raw(fe2, VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, 0, NULL, 0, NULL, 0);
	if (n < 0) {
		fprintf(stderr, "FAIL: second front-end send: %s\n", strerror(-n));
		goto out;
	}
	n = vh_fe_recv_raw(fe2, &h, &feat, sizeof(feat), 500);
	if (n != -ETIMEDOUT) {
		fprintf(stderr, "FAIL: second front-end got %s while the first is connected\n",
		        n >= 0 ? "a reply" : strerror(-n));
		goto out;
	}
	/* The first keeps working meanwhile. */
	if (io_smoke(fe1, mem1, 0, 8, 2) < 0 || vh_fe_stop(fe1) < 0) {
		goto out;
	}
	vh_fe_disconnect(fe1);
	n = vh_fe_recv_raw(fe2, &h, &feat, sizeof(feat), 5000);
	if (n != 8 || h.request != VHOST_USER_GET_FEATURES || !(h.flags & VHOST_USER_REPLY_MASK)) {
		fprintf(stderr, "FAIL: queued GET_FEATURES not answered after the first left: %d\n",
		        n);
		goto out;
	}
	if (vh_fe_init(fe2, true) < 0 || vh_fe_start(fe2, 0, 0) < 0 ||
	    io_smoke(fe2, mem2, 0, 0, 1) < 0 || vh_fe_stop(fe2) < 0) {
		fprintf(stderr, "FAIL: second front-end handshake/I/O after the first left\n");
		goto out;
	}
	rc = 0;
out:
	vh_test_fe_close(mem2, fe2);
	vh_test_fe_close(mem1, fe1);
	return rc;
}

int
main(void)
{
	struct vh_target_opts to = {.num_blocks = 8192};
	struct vh_target t;
	int rc, fail;

	if (vh_test_qsd()) {
		fprintf(stderr, "SKIP: qsd accepts and drops a second client\n");
		return VH_TEST_SKIP;
	}
	rc = vh_target_start(&t, &to);
	if (rc) {
		return rc == VH_TEST_SKIP ? VH_TEST_SKIP : VH_TEST_FAIL;
	}
	fail = run(&t) < 0;
	if (vh_target_stop(&t) < 0) {
		fail = 1;
	}
	fprintf(stderr, "test_busy_socket: %s\n", fail ? "FAIL" : "PASS");
	return fail ? VH_TEST_FAIL : VH_TEST_PASS;
}
