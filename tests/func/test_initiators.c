/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhostd against every initiator the test front-end can play (frontend.h, enum
 * vh_fe_personality): QEMU 7.2, SPDK v23.05 virtio-user and DPDK 22.11 virtio-user, each with its
 * own message order, memory table, reply parsing and ring habits. For each one:
 *
 * 1. handshake: its init and start sequences are accepted, it negotiates what it would, and one
 *    request per queue goes through; then its stop, which the daemon sees as such. Twice: with
 *    its usual memory layout and with its other common one;
 * 2. verified I/O on 4 queues at depth 16: every block written, a random mix the initiator
 *    would send (checked against a shadow copy), then every block read back and compared;
 * 3. reconnect the way that initiator does it (QEMU: with requests in flight and an inflight
 *    buffer; SPDK: detach + attach; DPDK: re-init on the same socket, a memory event under I/O,
 *    then port close + probe), after which every block reads back as before.
 *
 * A case that fails only because vhostd is stricter than the protocol is reported as a skip
 * that names the vhostd behaviour (none today).
 */
#include <inttypes.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include "io_engine.h"
#include "vh_test.h"

#define NQ         4
#define DEPTH      16
#define TIMEOUT_MS 20000
#define CHUNK_SECT 64u /* 32 KiB per sweep request */

static uint64_t
ops_per_case(void)
{
	const char *e = getenv("VH_TEST_OPS");

	return e ? strtoull(e, NULL, 0) : 10000;
}

/* ---- whole-disk sweeps: write everything, read everything back against the shadow ---- */

struct sweep_slot {
	struct vh_fe_req req;
	struct vh_fe_iov iov;
	uint64_t buf;
	uint64_t sector;
};

struct sweeper {
	struct io_engine *e;
	struct sweep_slot slots[NQ * DEPTH];
	uint64_t rng;
};

static int
sweeper_init(struct sweeper *w, struct io_engine *e, uint64_t seed)
{
	unsigned int i;

	memset(w, 0, sizeof(*w));
	w->e = e;
	w->rng = seed | 1;
	for (i = 0; i < NQ * DEPTH; i++) {
		w->slots[i].buf = vh_fe_mem_alloc(e->mem, CHUNK_SECT * 512, 4096);
		T_CHECK(w->slots[i].buf != UINT64_MAX, "out of guest RAM for sweep buffers");
	}
	return 0;
}

static uint8_t *
slot_data(struct sweeper *w, struct sweep_slot *s)
{
	return vh_fe_gpa_to_ptr(w->e->mem, s->buf, CHUNK_SECT * 512);
}

static void
fill(struct sweeper *w, uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		w->rng ^= w->rng >> 12;
		w->rng ^= w->rng << 25;
		w->rng ^= w->rng >> 27;
		uint64_t v = w->rng * 0x2545f4914f6cdd1dull;

		memcpy(p + i, &v, 8);
	}
}

/* A completed sweep request: status, used length, and for reads the data. */
static int
sweep_check(struct sweeper *w, struct sweep_slot *s, bool write, const char *who)
{
	struct io_engine *e = w->e;
	uint32_t len = CHUNK_SECT * 512, k;
	const uint8_t *d = slot_data(w, s);

	T_CHECK(s->req.status == VIRTIO_BLK_S_OK, "%s: %s of sector %" PRIu64 ": status %u", who,
	        write ? "write" : "read", s->sector, s->req.status);
	T_CHECK(s->req.used_len == (write ? 1 : len + 1), "%s: %s used len %u", who,
	        write ? "write" : "read", s->req.used_len);
	for (k = 0; k < CHUNK_SECT; k++) {
		uint64_t sec = s->sector + k;

		if (write || !e->known[sec]) {
			memcpy(e->shadow + sec * 512, d + k * 512, 512);
			e->known[sec] = 1;
			continue;
		}
		T_CHECK(memcmp(e->shadow + sec * 512, d + k * 512, 512) == 0,
		        "%s: sector %" PRIu64 " read back differs from what was written", who, sec);
	}
	return 0;
}

/* Every chunk of the disk once, NQ queues x DEPTH requests in flight. */
static int
sweep(struct sweeper *w, bool write, const char *who)
{
	struct io_engine *e = w->e;
	uint64_t next = 0, nchunks = e->nsect / CHUNK_SECT, done = 0;
	int64_t deadline = vh_fe_now_ms() + TIMEOUT_MS;
	struct vh_fe_req *out[DEPTH];
	unsigned int q, i;
	int n;

	for (i = 0; i < NQ * DEPTH; i++) {
		w->slots[i].req.inflight = false;
	}
	while (done < nchunks) {
		for (q = 0; q < NQ; q++) {
			struct vh_fe_vq *vq = vh_fe_vq(e->fe, q);

			for (i = 0; i < DEPTH && next < nchunks; i++) {
				struct sweep_slot *s = &w->slots[q * DEPTH + i];

				if (s->req.inflight) {
					continue;
				}
				s->sector = next++ * CHUNK_SECT;
				s->iov = (struct vh_fe_iov){s->buf, CHUNK_SECT * 512};
				s->req = (struct vh_fe_req){.type = write ? VIRTIO_BLK_T_OUT
				                                          : VIRTIO_BLK_T_IN,
				                            .sector = s->sector,
				                            .iov = &s->iov,
				                            .niov = 1};
				if (write) {
					fill(w, slot_data(w, s), CHUNK_SECT * 512);
				} else {
					memset(slot_data(w, s), 0x5a, CHUNK_SECT * 512);
				}
				T_OK(vh_fe_req_queue(vq, &s->req));
			}
			T_OK(vh_fe_vq_flush(vq));
		}
		for (q = 0; q < NQ; q++) {
			n = vh_fe_vq_poll(vh_fe_vq(e->fe, q), out, DEPTH);
			T_OK(n);
			for (i = 0; i < (unsigned int)n; i++) {
				if (sweep_check(w, (struct sweep_slot *)(void *)out[i], write,
				                who) < 0) {
					return -1;
				}
				done++;
			}
		}
		T_CHECK(vh_fe_now_ms() < deadline,
		        "%s: sweep timed out (%" PRIu64 " of %" PRIu64 " chunks done)", who, done,
		        nchunks);
	}
	return 0;
}

/* ---- per-initiator plumbing ---- */

struct run {
	struct vh_target *t;
	enum vh_fe_personality p;
	const char *who;
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	struct io_engine e;
	bool engine;
	struct sweeper w;
};

static json_t *
ctrlr_info(struct vh_target *t)
{
	json_t *res = NULL, *c;

	if (vh_target_rpc(t, "vhost_get_controllers", json_pack("{s:s}", "name", t->name), &res) <
	    0) {
		return NULL;
	}
	c = json_incref(json_array_get(res, 0));
	json_decref(res);
	return c;
}

/* The daemon's view: connected or not, and how many connections it has accepted. */
static int
daemon_view(struct vh_target *t, bool *connected, int64_t *connections)
{
	json_t *c = ctrlr_info(t);

	T_CHECK(c != NULL, "vhost_get_controllers");
	*connected = json_is_true(json_object_get(c, "connected"));
	*connections = json_integer_value(json_object_get(c, "connections"));
	json_decref(c);
	return 0;
}

/* Poll (with a deadline) until the daemon has dropped the session. */
static int
wait_daemon_disconnected(struct run *r)
{
	int64_t deadline = vh_fe_now_ms() + TIMEOUT_MS, n;
	bool conn = true;

	while (vh_fe_now_ms() < deadline) {
		if (daemon_view(r->t, &conn, &n) < 0) {
			return -1;
		}
		if (!conn) {
			return 0;
		}
		sched_yield();
	}
	T_CHECK(!conn, "%s: the daemon still shows the session after the initiator closed it",
	        r->who);
	return 0;
}

/* DPDK never reads config space: the test tells the library what the daemon exports. */
static int
learn_geometry(struct run *r)
{
	uint8_t cfg[VH_BLK_CFG_QEMU72_SIZE] = {0};
	uint64_t cap = htole64(r->t->num_blocks * r->t->block_size / 512);

	memcpy(cfg + VH_BLK_CFG_CAPACITY, &cap, sizeof(cap));
	return vh_fe_config_learned(r->fe, cfg, sizeof(cfg));
}

/*
 * Guest RAM as the initiator has it. alt_mem: its other common layout: SPDK with DPDK's
 * --single-file-segments (one file, one region), DPDK with a file per memseg (a region each),
 * QEMU's pc machine (two regions around the VGA hole).
 */
static int
run_open(struct run *r, bool inflight, bool alt_mem)
{
	struct vh_fe_mem_opts mo = {.size = 32 << 20, .nregions = 3};
	struct vh_fe_opts fo = {.num_queues = NQ, .personality = r->p, .inflight = inflight};

	vh_fe_personality_mem_opts(r->p, &mo);
	if (alt_mem && r->p == VH_FE_QEMU72) {
		mo.layout = VH_FE_MEM_QEMU_PC;
	} else if (alt_mem) {
		mo.fd_per_region = !mo.fd_per_region;
	}
	T_OK(vh_test_fe_open(r->t, &mo, &fo, &r->mem, &r->fe));
	if (r->p == VH_FE_DPDK2211) {
		T_OK(learn_geometry(r));
	}
	return 0;
}

static void
run_close(struct run *r)
{
	if (r->engine) {
		io_engine_fini(&r->e);
		r->engine = false;
	}
	vh_test_fe_close(r->mem, r->fe);
	r->mem = NULL;
	r->fe = NULL;
}

/* What this initiator would have negotiated with vhostd's offer. */
static int
check_negotiation(struct run *r)
{
	const struct vh_fe_info *in = vh_fe_info(r->fe);
	uint64_t want_proto, f = in->features;

	switch (r->p) {
	case VH_FE_SPDK2305:
		want_proto = in->backend_protocol & VH_FE_SPDK_PROTOCOL_FEATURES;
		T_CHECK(f == (in->backend_features & VH_FE_SPDK_FEATURES),
		        "spdk: acked 0x%" PRIx64 ", expected 0x%" PRIx64, f,
		        (uint64_t)(in->backend_features & VH_FE_SPDK_FEATURES));
		/* It asks for EVENT_IDX (and polls); vhostd offers it. */
		T_CHECK(vh_fe_has(f, VIRTIO_RING_F_EVENT_IDX), "spdk: EVENT_IDX not negotiated");
		T_CHECK(!vh_fe_has(f, VIRTIO_BLK_F_FLUSH) &&
		                !vh_fe_has(f, VIRTIO_RING_F_INDIRECT_DESC),
		        "spdk: acked FLUSH or INDIRECT_DESC");
		T_CHECK(in->config_size == VHOST_USER_MAX_CONFIG_SIZE, "spdk: config size %u",
		        in->config_size);
		break;
	case VH_FE_DPDK2211:
		want_proto = in->backend_protocol & VH_FE_DPDK_PROTOCOL_FEATURES;
		T_CHECK(vh_fe_has(f, VIRTIO_RING_F_INDIRECT_DESC) &&
		                !vh_fe_has(f, VIRTIO_RING_F_EVENT_IDX),
		        "dpdk: acked 0x%" PRIx64, f);
		break;
	default:
		want_proto = in->backend_protocol & VH_FE_PROTOCOL_FEATURES;
		T_CHECK(in->config_size == VH_BLK_CFG_QEMU72_SIZE, "qemu: config size %u",
		        in->config_size);
		break;
	}
	T_CHECK(in->protocol == want_proto,
	        "%s: protocol features 0x%" PRIx64 ", expected 0x%" PRIx64
	        " (vhostd offers 0x%" PRIx64 ")",
	        r->who, in->protocol, want_proto, in->backend_protocol);
	T_CHECK(vh_fe_has(f, 32), "%s: VERSION_1 not negotiated", r->who);
	T_CHECK(vh_fe_cfg_u64(r->fe, VH_BLK_CFG_CAPACITY) ==
	                r->t->num_blocks * r->t->block_size / 512,
	        "%s: capacity %" PRIu64, r->who, vh_fe_cfg_u64(r->fe, VH_BLK_CFG_CAPACITY));
	return 0;
}

static int
handshake(struct run *r, bool alt_mem)
{
	int64_t before, after;
	bool conn;
	unsigned int q;

	T_OK(daemon_view(r->t, &conn, &before));
	if (run_open(r, false, alt_mem) < 0) {
		return -1;
	}
	T_OK(vh_fe_start(r->fe, 0, 0));
	if (check_negotiation(r) < 0) {
		return -1;
	}
	for (q = 0; q < NQ; q++) {
		if (io_smoke(r->fe, r->mem, q, 8 * q, 0x1a2b3c00u + q) < 0) {
			fprintf(stderr, "FAIL: %s: first request on queue %u\n", r->who, q);
			return -1;
		}
	}
	T_OK(daemon_view(r->t, &conn, &after));
	T_CHECK(conn && after == before + 1,
	        "%s: daemon shows connected=%d, %" PRId64 " connections (was %" PRId64 ")", r->who,
	        conn, after, before);
	T_OK(vh_fe_stop(r->fe));
	/* SPDK's stop is a detach that closes the socket; the others close it now. */
	T_CHECK(r->p != VH_FE_SPDK2305 || vh_fe_sock(r->fe) < 0, "spdk: socket open after detach");
	run_close(r);
	return wait_daemon_disconnected(r);
}

/* What each initiator's driver sends: SPDK reads, writes and discards; the others anything. */
static unsigned int
engine_ops(enum vh_fe_personality p)
{
	return p == VH_FE_SPDK2305 ? IO_OP_READ | IO_OP_WRITE | IO_OP_DISC : IO_OP_ALL;
}

static int
start_io(struct run *r, uint64_t seed)
{
	T_OK(vh_fe_start(r->fe, 0, 0));
	T_OK(io_engine_init(&r->e, r->fe, r->mem, NQ, DEPTH, seed));
	r->engine = true;
	r->e.ops = engine_ops(r->p);
	r->e.serial = r->t->name;
	return sweeper_init(&r->w, &r->e, seed ^ 0x5eed);
}

/* Interrupts signalled on the call eventfds since the last call (their counters, consumed). */
static uint64_t
take_calls(struct run *r)
{
	uint64_t total = 0, v;
	unsigned int q;

	for (q = 0; q < NQ; q++) {
		if (read(vh_fe_vq_call_fd(vh_fe_vq(r->fe, q)), &v, sizeof(v)) == sizeof(v)) {
			total += v;
		}
	}
	return total;
}

static int
verified_io(struct run *r)
{
	uint64_t calls;

	(void)take_calls(r); /* the one every ring start sends */
	if (sweep(&r->w, true, r->who) < 0 ||
	    io_engine_run(&r->e, ops_per_case(), true, TIMEOUT_MS) < 0 ||
	    sweep(&r->w, false, r->who) < 0) {
		fprintf(stderr, "FAIL: %s: verified I/O\n", r->who);
		return -1;
	}
	/*
	 * SPDK and DPDK poll and say so (SPDK: used_event parked a ring behind what it reaped,
	 * DPDK: VRING_AVAIL_F_NO_INTERRUPT). Per ring, allow the signal of its start (it may land
	 * after the drain above) and the first completion's (nothing to compare with yet); one
	 * per batch would be hundreds. (Our QEMU-guest poll mode parks used_event only one behind,
	 * which a completion racing the poll may legitimately hit.)
	 */
	calls = take_calls(r);
	T_CHECK(r->p == VH_FE_QEMU72 || calls <= 2 * NQ,
	        "%s: %" PRIu64 " interrupts signalled to a driver that asked for none", r->who,
	        calls);
	return 0;
}

static int
connections(struct run *r, int64_t *n)
{
	bool conn;

	return daemon_view(r->t, &conn, n);
}

/* QEMU 7.2: back-end connection lost with requests in flight, inflight buffer kept. */
static int
reconnect_qemu(struct run *r)
{
	unsigned int round;
	int rc;

	for (round = 0; round < 3; round++) {
		T_CHECK(io_engine_submit(&r->e, NQ * DEPTH) >= 0, "submit");
		rc = vh_fe_reconnect(r->fe, TIMEOUT_MS);
		T_CHECK(rc == 0, "qemu: reconnect round %u: %s", round, strerror(-rc));
		T_CHECK(vh_fe_inflight_fd(r->fe) >= 0, "qemu: no inflight buffer kept");
		if (io_engine_run(&r->e, 0, true, TIMEOUT_MS) < 0) {
			return -1;
		}
	}
	return 0;
}

/* SPDK: bdev_virtio_detach_controller + attach: a new device on fresh rings. */
static int
reconnect_spdk(struct run *r)
{
	int64_t before, after;

	T_OK(connections(r, &before));
	T_OK(vh_fe_reconnect(r->fe, TIMEOUT_MS));
	T_OK(connections(r, &after));
	T_CHECK(after == before + 1,
	        "spdk: %" PRId64 " connections after re-attach (was %" PRId64 ")", after, before);
	T_CHECK(vh_fe_vq_base(vh_fe_vq(r->fe, 0)) == 0 &&
	                le16toh(vh_fe_vq_avail(vh_fe_vq(r->fe, 0))->idx) == 0,
	        "spdk: re-attach did not start from fresh rings");
	return 0;
}

/*
 * DPDK: a device re-init on the same socket (stop, then start on zeroed rings at index 0), a
 * memory event while requests are in flight, then the port closed and probed again.
 */
static int
reconnect_dpdk(struct run *r)
{
	int64_t before, after;

	T_OK(connections(r, &before));
	T_OK(vh_fe_stop(r->fe));
	T_OK(vh_fe_start(r->fe, 0, 0));
	T_OK(connections(r, &after));
	T_CHECK(after == before, "dpdk: re-init opened a new connection");
	if (sweep(&r->w, false, "dpdk after re-init") < 0) {
		return -1;
	}
	T_CHECK(io_engine_submit(&r->e, NQ * DEPTH) >= 0, "submit");
	T_OK(vh_fe_set_mem_table(r->fe));
	if (io_engine_run(&r->e, 200, true, TIMEOUT_MS) < 0 ||
	    sweep(&r->w, false, "dpdk after memory event") < 0) {
		return -1;
	}
	T_OK(vh_fe_reconnect(r->fe, TIMEOUT_MS));
	T_OK(connections(r, &after));
	T_CHECK(after == before + 1,
	        "dpdk: %" PRId64 " connections after re-probe (was %" PRId64 ")", after, before);
	return 0;
}

static int
reconnect(struct run *r, uint64_t seed)
{
	int rc;

	if (run_open(r, r->p == VH_FE_QEMU72, false) < 0 || start_io(r, seed) < 0) {
		return -1;
	}
	/* Everything written and known before the connection goes. */
	if (sweep(&r->w, true, r->who) < 0 || io_engine_run(&r->e, 500, true, TIMEOUT_MS) < 0) {
		return -1;
	}
	switch (r->p) {
	case VH_FE_SPDK2305:
		rc = reconnect_spdk(r);
		break;
	case VH_FE_DPDK2211:
		rc = reconnect_dpdk(r);
		break;
	default:
		rc = reconnect_qemu(r);
		break;
	}
	if (rc < 0) {
		return -1;
	}
	/* Data still there, and the new session works. */
	if (sweep(&r->w, false, r->who) < 0 ||
	    io_engine_run(&r->e, ops_per_case() / 2, true, TIMEOUT_MS) < 0 ||
	    sweep(&r->w, false, r->who) < 0) {
		fprintf(stderr, "FAIL: %s: I/O after reconnect\n", r->who);
		return -1;
	}
	T_OK(vh_fe_stop(r->fe));
	return 0;
}

static int
run_personality(struct vh_target *t, enum vh_fe_personality p, uint64_t seed)
{
	struct run r = {.t = t, .p = p, .who = vh_fe_personality_name(p)};
	int rc;

	fprintf(stderr, "== %s: handshake\n", r.who);
	rc = handshake(&r, false);
	if (rc == 0) {
		fprintf(stderr, "== %s: handshake, other memory layout\n", r.who);
		rc = handshake(&r, true);
	}
	if (rc == 0) {
		fprintf(stderr, "== %s: verified I/O, %u queues x depth %u\n", r.who, NQ, DEPTH);
		rc = run_open(&r, false, false) < 0 || start_io(&r, seed) < 0 ||
		                     verified_io(&r) < 0 || vh_fe_stop(r.fe) < 0
		             ? -1
		             : 0;
		run_close(&r);
	}
	if (rc == 0) {
		fprintf(stderr, "== %s: reconnect\n", r.who);
		rc = reconnect(&r, seed + 1);
	}
	run_close(&r);
	if (rc == 0) {
		/* Let the daemon drop the session before the next initiator connects. */
		rc = wait_daemon_disconnected(&r);
	}
	fprintf(stderr, "== %s: %s\n", r.who, rc == 0 ? "PASS" : "FAIL");
	return rc;
}

int
main(void)
{
	struct vh_target_opts to = {.num_blocks = 16384, .block_size = 512};
	uint64_t seed = vh_test_seed("test_initiators");
	struct vh_target t;
	unsigned int p;
	int rc, fail = 0;

	if (vh_test_qsd()) {
		/* qsd 7.2 answers SPDK's GET_CONFIG(256) with size 0 and has no RPC socket. */
		fprintf(stderr, "SKIP: vhostd-only test\n");
		return VH_TEST_SKIP;
	}
	rc = vh_target_start(&t, &to);
	if (rc) {
		return rc == VH_TEST_SKIP ? VH_TEST_SKIP : VH_TEST_FAIL;
	}
	for (p = 0; p < VH_FE_NPERSONALITIES; p++) {
		if (run_personality(&t, (enum vh_fe_personality)p, seed + 16 * p) < 0) {
			fail = 1;
		}
	}
	if (vh_target_stop(&t) < 0) {
		fail = 1;
	}
	fprintf(stderr, "test_initiators: %s\n", fail ? "FAIL" : "PASS");
	return fail ? VH_TEST_FAIL : VH_TEST_PASS;
}
