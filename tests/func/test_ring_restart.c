/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Stop and restart the rings under I/O: GET_VRING_BASE must be answered only after every
 * request the driver made available has been completed into the used ring, and its answer is
 * the next avail index. Then the same with QEMU 7.2's reconnect (reference §1.9 E): the
 * front-end drops the connection mid-I/O, reconnects, replays the handshake and restarts each
 * ring at used->idx; every request completes exactly once and the data stay consistent. And
 * once more as QEMU 7.2 reconnects when that races with its handling of the close: straight to
 * the ring start, without the handshake (no SET_OWNER, no protocol negotiation).
 */
#include <unistd.h>

#include "io_engine.h"
#include "vh_test.h"

#define NQ    4
#define DEPTH 16

/*
 * After GET_VRING_BASE: every request the device fetched (avail entries before the returned
 * base) is in the used ring, and base never passes avail->idx. Entries after base were not
 * fetched yet; they are processed after the restart (the spec allows both; *left counts them).
 */
static int
check_quiesced(struct vh_fe *fe, unsigned int round, unsigned int *left)
{
	unsigned int q;

	for (q = 0; q < NQ; q++) {
		struct vh_fe_vq *vq = vh_fe_vq(fe, q);
		uint16_t avail = le16toh(vh_fe_vq_avail(vq)->idx);
		uint16_t used = le16toh(__atomic_load_n(&vh_fe_vq_used(vq)->idx, __ATOMIC_ACQUIRE));
		uint16_t base = vh_fe_vq_base(vq);

		T_CHECK(used == base,
		        "round %u q%u: GET_VRING_BASE answered %u but used->idx is %u: %d fetched "
		        "requests were not completed",
		        round, q, base, used, (int16_t)(base - used));
		T_CHECK((uint16_t)(avail - base) <= vh_fe_vq_size(vq),
		        "round %u q%u: base %u beyond avail idx %u", round, q, base, avail);
		*left += (uint16_t)(avail - base);
	}
	return 0;
}

static int
stop_restart(struct vh_target *t, uint64_t seed)
{
	struct vh_fe_mem_opts mo = {.size = 32 << 20, .nregions = 2};
	struct vh_fe_opts fo = {.num_queues = NQ};
	struct vh_fe_mem *mem;
	struct io_engine e;
	struct vh_fe *fe;
	unsigned int round, busy = 0, left = 0;
	int rc = -1;

	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	if (vh_fe_start(fe, 0, 0) < 0 || io_engine_init(&e, fe, mem, NQ, DEPTH, seed) < 0) {
		goto out;
	}
	e.straddle = !t->qsd;
	for (round = 0; round < 40; round++) {
		if (io_engine_submit(&e, NQ * DEPTH) < 0) {
			goto out_engine;
		}
		busy += io_engine_inflight(&e) > 0;
		/* Stop with the requests just made available: the reply must wait for them. */
		if (vh_fe_stop(fe) < 0) {
			fprintf(stderr, "FAIL: round %u: stop\n", round);
			goto out_engine;
		}
		if (check_quiesced(fe, round, &left) < 0 || io_engine_reap(&e) < 0) {
			goto out_engine;
		}
		if (vh_fe_start(fe, 0, 0) < 0) {
			fprintf(stderr, "FAIL: round %u: restart\n", round);
			goto out_engine;
		}
		if (io_engine_run(&e, 200, false, 10000) < 0) {
			goto out_engine;
		}
	}
	if (io_engine_run(&e, 0, true, 10000) < 0 || vh_fe_stop(fe) < 0) {
		goto out_engine;
	}
	fprintf(stderr,
	        "stop/restart: %u rounds, %u with requests in flight at stop, %u requests left "
	        "unfetched at stop (completed after restart)\n",
	        round, busy, left);
	rc = 0;
out_engine:
	io_engine_fini(&e);
out:
	vh_test_fe_close(mem, fe);
	return rc;
}

/* Until the controller has no session left (its queues drained and the session was freed). */
static int
wait_no_session(struct vh_target *t)
{
	for (int i = 0; i < 1000; i++) {
		json_t *r = NULL;
		bool connected = true;

		if (vh_target_rpc(t, "vhost_get_controllers", NULL, &r) == 0) {
			connected =
			        json_is_true(json_object_get(json_array_get(r, 0), "connected"));
		}
		json_decref(r);
		if (!connected) {
			return 0;
		}
		usleep(2000);
	}
	fprintf(stderr, "FAIL: the old session is still there 2 s after the disconnect\n");
	return -1;
}

static int
reconnect(struct vh_target *t, uint64_t seed, bool raced)
{
	struct vh_fe_mem_opts mo = {.size = 32 << 20, .nregions = 2};
	struct vh_fe_opts fo = {.num_queues = NQ, .inflight = raced};
	struct vh_fe_mem *mem;
	struct io_engine e;
	struct vh_fe *fe;
	unsigned int round;
	int rc = -1, r;

	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	if (vh_fe_start(fe, 0, 0) < 0 || io_engine_init(&e, fe, mem, NQ, DEPTH, seed) < 0) {
		goto out;
	}
	e.straddle = !t->qsd;
	for (round = 0; round < 10; round++) {
		if (io_engine_run(&e, 300, false, 10000) < 0 ||
		    io_engine_submit(&e, NQ * DEPTH) < 0) {
			goto out_engine;
		}
		if (raced) {
			/*
			 * QEMU takes that path after the back-end restarted: the old session is
			 * gone by then (QEMU reconnects 1 s later at the earliest).
			 */
			vh_fe_disconnect(fe);
			if (wait_no_session(t) < 0) {
				goto out_engine;
			}
		}
		r = raced ? vh_fe_reconnect_raced(fe, 10000) : vh_fe_reconnect(fe, 10000);
		if (r < 0) {
			fprintf(stderr, "FAIL: round %u: %sreconnect: %s\n", round,
			        raced ? "raced " : "", strerror(-r));
			goto out_engine;
		}
	}
	if (io_engine_run(&e, 300, true, 10000) < 0 || vh_fe_stop(fe) < 0) {
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
	uint64_t seed = vh_test_seed("test_ring_restart");
	struct vh_target t;
	int rc, fail = 0;

	rc = vh_target_start(&t, &to);
	if (rc) {
		return rc == VH_TEST_SKIP ? VH_TEST_SKIP : VH_TEST_FAIL;
	}
	fail |= stop_restart(&t, seed) < 0;
	fail |= reconnect(&t, seed + 1, false) < 0;
	/* libvhost-user (qemu-storage-daemon) does not assume protocol features. */
	if (!t.qsd) {
		fail |= reconnect(&t, seed + 2, true) < 0;
	}
	if (vh_target_stop(&t) < 0) {
		fail = 1;
	}
	fprintf(stderr, "test_ring_restart: %s\n", fail ? "FAIL" : "PASS");
	return fail ? VH_TEST_FAIL : VH_TEST_PASS;
}
