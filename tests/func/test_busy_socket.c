/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A full controller socket: a controller serves VH_VHOST_MAX_SESSIONS front-ends at once (a
 * live migration's destination connects while the source runs; each one does its own I/O), and
 * the next one's connect succeeds but waits in the backlog (accept-then-close would wedge QEMU
 * 7.2, reference §2.2): nothing answers it. Once one of the others leaves, it gets the reply to
 * the request it sent while waiting, completes the handshake and does I/O.
 */
#include "io_engine.h"
#include "vh_test.h"

#define MAXS 4 /* VH_VHOST_MAX_SESSIONS */

static int
run(struct vh_target *t)
{
	struct vh_fe_mem_opts mo = {.size = 16 << 20};
	struct vh_fe_opts fo = {.num_queues = 1};
	struct vh_fe_mem *mem[MAXS + 1] = {NULL};
	struct vh_fe *fe[MAXS + 1] = {NULL};
	struct vhost_user_header h;
	uint64_t feat = 0;
	int rc = -1, n;

	for (int i = 0; i < MAXS; i++) {
		if (vh_test_fe_open(t, &mo, &fo, &mem[i], &fe[i]) < 0 ||
		    vh_fe_start(fe[i], 0, 0) < 0 ||
		    io_smoke(fe[i], mem[i], 0, (uint64_t)i * 8, (uint32_t)i + 1) < 0) {
			fprintf(stderr, "FAIL: front-end %d of %d\n", i + 1, MAXS);
			goto out;
		}
	}
	fo.path = t->sock;
	if (vh_fe_mem_create(&mem[MAXS], &mo) < 0 || vh_fe_create(&fe[MAXS], mem[MAXS], &fo) < 0) {
		goto out;
	}
	n = vh_fe_connect(fe[MAXS], 2000);
	if (n < 0) {
		fprintf(stderr, "FAIL: one more connect: %s (must sit in the backlog)\n",
		        strerror(-n));
		goto out;
	}
	n = vh_fe_send_raw(fe[MAXS], VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, 0, NULL, 0, NULL,
	                   0);
	if (n < 0) {
		fprintf(stderr, "FAIL: one more front-end: send: %s\n", strerror(-n));
		goto out;
	}
	n = vh_fe_recv_raw(fe[MAXS], &h, &feat, sizeof(feat), 500);
	if (n != -ETIMEDOUT) {
		fprintf(stderr, "FAIL: front-end %d got %s while %d are connected\n", MAXS + 1,
		        n >= 0 ? "a reply" : strerror(-n), MAXS);
		goto out;
	}
	/* The others keep working meanwhile. */
	for (int i = 0; i < MAXS; i++) {
		if (io_smoke(fe[i], mem[i], 0, 64 + (uint64_t)i * 8, 100 + (uint32_t)i) < 0) {
			goto out;
		}
	}
	if (vh_fe_stop(fe[1]) < 0) {
		goto out;
	}
	vh_fe_disconnect(fe[1]);
	n = vh_fe_recv_raw(fe[MAXS], &h, &feat, sizeof(feat), 5000);
	if (n != 8 || h.request != VHOST_USER_GET_FEATURES || !(h.flags & VHOST_USER_REPLY_MASK)) {
		fprintf(stderr, "FAIL: queued GET_FEATURES not answered after one left: %d\n", n);
		goto out;
	}
	if (vh_fe_init(fe[MAXS], true) < 0 || vh_fe_start(fe[MAXS], 0, 0) < 0 ||
	    io_smoke(fe[MAXS], mem[MAXS], 0, 0, 1) < 0 || vh_fe_stop(fe[MAXS]) < 0) {
		fprintf(stderr, "FAIL: the waiting front-end's handshake/I/O after one left\n");
		goto out;
	}
	rc = 0;
out:
	for (int i = 0; i <= MAXS; i++) {
		vh_test_fe_close(mem[i], fe[i]);
	}
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
