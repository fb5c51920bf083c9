/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Live malformed-message matrix (issue 6, item 4): every request code 0-255 x payload sizes
 * {0, expected-1, expected, expected+1, 4096, a size field larger than the bytes sent} x
 * attached fds {0, expected, expected+1, 8} x {good, bad version bits}, against a running
 * vhostd. Every message carries NEED_REPLY on a connection that negotiated REPLY_ACK and sent
 * SET_OWNER, so each case must end in a reply for that request (an ack, or its payload) or a
 * disconnect: silence is a failure. A reply keeps the connection for the next case; a
 * disconnect opens a new one.
 *
 * Throughout, a second controller (the witness) serves verified I/O between batches, the daemon
 * stays alive, and at the end its fd count is back at the baseline and VmRSS within a small
 * slack. Runtime: about a minute under ASan (most cases close the connection).
 */
#include <sys/socket.h>

#include "test_hostile_common.h"

#define F_NR             (VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK)
#define WITNESS_EVERY    512
#define VH_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Payload size and fd count of a well-formed message (all-zero payload), per request code. */
static void
expected(uint32_t req, uint32_t *size, unsigned *nfds)
{
	static const struct {
		uint16_t size;
		uint8_t nfds;
	} t[] = {
	        [VHOST_USER_SET_FEATURES] = {8, 0},     [VHOST_USER_SET_MEM_TABLE] = {8, 0},
	        [VHOST_USER_SET_LOG_BASE] = {16, 1},    [VHOST_USER_SET_LOG_FD] = {0, 1},
	        [VHOST_USER_SET_VRING_NUM] = {8, 0},    [VHOST_USER_SET_VRING_ADDR] = {40, 0},
	        [VHOST_USER_SET_VRING_BASE] = {8, 0},   [VHOST_USER_GET_VRING_BASE] = {8, 0},
	        [VHOST_USER_SET_VRING_KICK] = {8, 1},   [VHOST_USER_SET_VRING_CALL] = {8, 1},
	        [VHOST_USER_SET_VRING_ERR] = {8, 1},    [VHOST_USER_SET_PROTOCOL_FEATURES] = {8, 0},
	        [VHOST_USER_SET_VRING_ENABLE] = {8, 0}, [VHOST_USER_SEND_RARP] = {8, 0},
	        [VHOST_USER_NET_SET_MTU] = {8, 0},      [VHOST_USER_SET_BACKEND_REQ_FD] = {0, 1},
	        [VHOST_USER_SET_VRING_ENDIAN] = {8, 0}, [VHOST_USER_GET_CONFIG] = {12, 0},
	        [VHOST_USER_SET_CONFIG] = {12, 0},      [VHOST_USER_CLOSE_CRYPTO_SESSION] = {8, 0},
	        [VHOST_USER_GET_INFLIGHT_FD] = {24, 0}, [VHOST_USER_SET_INFLIGHT_FD] = {24, 1},
	        [VHOST_USER_GPU_SET_SOCKET] = {0, 1},   [VHOST_USER_VRING_KICK] = {8, 0},
	        [VHOST_USER_ADD_MEM_REG] = {40, 1},     [VHOST_USER_REM_MEM_REG] = {40, 0},
	        [VHOST_USER_SET_STATUS] = {8, 0},
	};

	*size = req < VH_ARRAY_SIZE(t) ? t[req].size : 0;
	*nfds = req < VH_ARRAY_SIZE(t) ? t[req].nfds : 0;
}

enum size_kind { SZ_ZERO, SZ_MINUS1, SZ_EXACT, SZ_PLUS1, SZ_4096, SZ_SHORT, SZ_KINDS };
enum fd_kind { FD_NONE, FD_EXACT, FD_PLUS1, FD_EIGHT, FD_KINDS };

struct conn {
	struct vh_target *t;
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	bool open;
	unsigned connects;
};

static int
conn_open(struct conn *c)
{
	uint64_t pf = 1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK;

	if (c->open) {
		return 0;
	}
	T_OK(vh_fe_connect(c->fe, 5000));
	c->open = true;
	c->connects++;
	/* REPLY_ACK (no reply asked), then SET_OWNER with an ack: the session is ready. */
	T_OK(vh_fe_send_raw(c->fe, VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_VERSION, 8, &pf, 8,
	                    NULL, 0));
	T_OK(vh_fe_call(c->fe, VHOST_USER_SET_OWNER, F_NR, NULL, 0, NULL, 0, NULL, 0));
	return 0;
}

static void
conn_close(struct conn *c)
{
	if (c->open) {
		vh_fe_disconnect(c->fe);
		c->open = false;
	}
}

struct stats {
	unsigned cases, replies, acks_ok, acks_err, disconnects;
};

/* Run one case; 0 if the daemon answered it or hung up, -1 otherwise. */
static int
one_case(struct conn *c, uint32_t req, enum size_kind sk, enum fd_kind fk, bool bad_version,
         struct stats *st)
{
	static uint8_t payload[4096];
	static const uint32_t bad_flags[] = {0x0 | 0x8, 0x2 | 0x8, 0x3 | 0x8, 0x1 | 0x4 | 0x8};
	struct vhost_user_header h;
	uint32_t esize, size, sent;
	unsigned efds, nfds;
	int fds[VHOST_USER_MAX_FDS + 1];
	uint8_t reply[512];
	uint32_t flags;
	int rc, n;

	expected(req, &esize, &efds);
	switch (sk) {
	case SZ_ZERO:
		size = 0;
		break;
	case SZ_MINUS1:
		size = esize ? esize - 1 : 0;
		break;
	case SZ_EXACT:
		size = esize;
		break;
	case SZ_PLUS1:
		size = esize + 1;
		break;
	case SZ_4096:
		size = 4096;
		break;
	default:
		size = esize + 64;
		break;
	}
	sent = sk == SZ_SHORT ? esize : size;
	nfds = fk == FD_NONE ? 0 : fk == FD_EXACT ? efds : fk == FD_PLUS1 ? efds + 1 : 8;
	flags = bad_version ? bad_flags[(req + sk + fk) % 4] : F_NR;
	/* All-zero payloads, except that SET_PROTOCOL_FEATURES keeps REPLY_ACK (else silence). */
	memset(payload, 0, 8);
	if (req == VHOST_USER_SET_PROTOCOL_FEATURES) {
		payload[0] = 1u << VHOST_USER_PROTOCOL_F_REPLY_ACK;
	}
	st->cases++;
	for (int attempt = 0;; attempt++) {
		if (conn_open(c) < 0) {
			return -1;
		}
		hostile_eventfds(fds, nfds);
		rc = vh_fe_send_raw(c->fe, req, flags, size, payload, sent, fds, nfds);
		hostile_close_fds(fds, nfds);
		if ((rc == -EPIPE || rc == -ECONNRESET) && attempt == 0 && sent == size) {
			/* The previous case's session closed after its reply: retry on a new one.
			 */
			conn_close(c);
			continue;
		}
		break;
	}
	if (sk == SZ_SHORT) {
		shutdown(vh_fe_sock(c->fe), SHUT_WR); /* the rest never comes */
	}
	if (rc == -EPIPE || rc == -ECONNRESET) {
		st->disconnects++;
		conn_close(c);
		return 0;
	}
	T_CHECK(rc == 0, "request %u size %u fds %u: send: %s", req, size, nfds, strerror(-rc));
	n = vh_fe_recv_raw(c->fe, &h, reply, sizeof(reply), 3000);
	if (n == -ECONNRESET) {
		st->disconnects++;
		conn_close(c);
		return 0;
	}
	T_CHECK(n != -ETIMEDOUT,
	        "request %u size %u (sent %u) fds %u flags 0x%x: no reply and no disconnect in 3 s",
	        req, size, sent, nfds, flags);
	T_CHECK(n >= 0, "request %u: receive: %s", req, strerror(-n));
	T_CHECK(h.request == req && (h.flags & VHOST_USER_REPLY_MASK),
	        "request %u size %u fds %u: answered with request %u flags 0x%x", req, size, nfds,
	        h.request, h.flags);
	/* A malformed case must not be acked as a success. */
	if (n == 8 && (size != esize || sent != size || nfds != efds || bad_version)) {
		uint64_t ack;

		memcpy(&ack, reply, 8);
		T_CHECK(ack != 0 || req == VHOST_USER_GET_FEATURES ||
		                req == VHOST_USER_GET_PROTOCOL_FEATURES ||
		                req == VHOST_USER_GET_QUEUE_NUM || req == VHOST_USER_GET_STATUS ||
		                req == VHOST_USER_GET_MAX_MEM_SLOTS ||
		                req == VHOST_USER_GET_VRING_BASE,
		        "request %u size %u (expected %u) fds %u (expected %u) flags 0x%x: acked "
		        "as success",
		        req, size, esize, nfds, efds, flags);
		st->acks_err++;
	} else {
		st->replies++;
	}
	if (sk == SZ_SHORT) {
		conn_close(c);
	}
	return 0;
}

int
main(void)
{
	struct vh_fe_mem_opts mo = {.size = 1 << 20};
	struct vh_target_opts to = {.num_blocks = 8192};
	struct stats st = {0};
	struct witness w;
	struct vh_fe_opts fo = {.num_queues = 2};
	struct conn c = {0};
	struct vh_target t;
	int64_t t0 = vh_fe_now_ms();
	int fail = 0, fds0, fds1, rc;
	long rss0, rss1;

	if (vh_test_qsd()) {
		fprintf(stderr, "SKIP: vhostd-only (qsd aborts on most of these)\n");
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
	c.t = &t;
	fo.path = t.sock;
	if (vh_fe_mem_create(&c.mem, &mo) < 0 || vh_fe_create(&c.fe, c.mem, &fo) < 0) {
		vh_target_stop(&t);
		return VH_TEST_FAIL;
	}
	/* Baseline with one hostile session opened and closed (lazy allocations done). */
	if (conn_open(&c) < 0) {
		fail = 1;
	}
	conn_close(&c);
	if (hostile_wait_disconnected(&t, t.name, 5000) < 0) {
		fail = 1;
	}
	fds0 = hostile_count_fds(t.d.pid);
	rss0 = hostile_rss_kib(t.d.pid);

	for (uint32_t req = 0; req < 256 && !fail; req++) {
		for (int sk = 0; sk < SZ_KINDS && !fail; sk++) {
			for (int fk = 0; fk < FD_KINDS && !fail; fk++) {
				for (int bv = 0; bv < 2 && !fail; bv++) {
					if (one_case(&c, req, sk, fk, bv, &st) < 0) {
						fail = 1;
					}
					if (st.cases % WITNESS_EVERY == 0 &&
					    witness_check(&t, &w) < 0) {
						fail = 1;
					}
				}
			}
		}
	}
	conn_close(&c);
	vh_fe_destroy(c.fe);
	vh_fe_mem_destroy(c.mem);
	if (!fail && witness_check(&t, &w) < 0) {
		fail = 1;
	}
	if (hostile_wait_disconnected(&t, t.name, 5000) < 0) {
		fail = 1;
	}
	fds1 = hostile_wait_fds(t.d.pid, fds0, 2000);
	rss1 = hostile_rss_kib(t.d.pid);
	fprintf(stderr,
	        "%u cases in %lld ms: %u replies, %u error acks, %u disconnects (%u "
	        "connections); daemon fds %d -> %d, VmRSS %ld -> %ld KiB; witness %llu rounds\n",
	        st.cases, (long long)(vh_fe_now_ms() - t0), st.replies, st.acks_err, st.disconnects,
	        c.connects, fds0, fds1, rss0, rss1, (unsigned long long)w.rounds);
	if (fds1 > fds0) {
		fprintf(stderr, "FAIL: daemon fd count grew from %d to %d\n", fds0, fds1);
		fail = 1;
	}
	if (rss1 > rss0 + HOSTILE_RSS_SLACK_KIB) {
		fprintf(stderr, "FAIL: daemon VmRSS grew from %ld to %ld KiB\n", rss0, rss1);
		fail = 1;
	}
	witness_close(&w);
	if (vh_target_stop(&t) < 0) {
		fail = 1;
	}
	fprintf(stderr, "test_hostile_matrix: %s\n", fail ? "FAIL" : "PASS");
	return fail ? VH_TEST_FAIL : VH_TEST_PASS;
}
