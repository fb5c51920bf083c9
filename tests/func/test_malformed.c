/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Malformed vhost-user messages from the front-end (reference-security §1, DESIGN §4): wrong
 * payload sizes, vring index >= queue count, queue size not a power of two, fds attached to
 * messages that take none, oversized headers, unknown requests. Each must get an error reply
 * (REPLY_ACK u64 != 0) or a disconnect; the daemon stays alive, leaks no fds, and a new
 * connection then completes a handshake and I/O.
 */
#include <dirent.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io_engine.h"
#include "vh_test.h"

#define F_NR (VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK)

struct bad_msg {
	const char *what;
	uint32_t request;
	uint32_t size;        /* header size field */
	uint32_t payload_len; /* bytes actually sent */
	unsigned int nfds;
	uint64_t w0, w1;  /* first payload words (vring state = {w0 low, w0 high}) */
	bool start_first; /* start the device before sending */
	bool half_close;  /* shutdown(SHUT_WR) after sending: a truncated message */
};

static int
count_fds(pid_t pid)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d) {
		return -1;
	}
	while ((de = readdir(d))) {
		n += de->d_name[0] != '.';
	}
	closedir(d);
	return n;
}

/* 0 if the daemon rejected the message (error ack or close), -1 otherwise. */
static int
expect_reject(struct vh_fe *fe, const struct bad_msg *m)
{
	struct vhost_user_header h;
	uint64_t ack = 0;
	int n;

	n = vh_fe_recv_raw(fe, &h, &ack, sizeof(ack), 3000);
	if (n == -ECONNRESET) {
		fprintf(stderr, "ok: %s -> disconnect\n", m->what);
		return 0;
	}
	if (n == -ETIMEDOUT) {
		fprintf(stderr, "FAIL: %s: neither an error reply nor a disconnect within 3 s\n",
		        m->what);
		return -1;
	}
	if (n < 0) {
		fprintf(stderr, "FAIL: %s: %s\n", m->what, strerror(-n));
		return -1;
	}
	if (h.request == m->request && (h.flags & VHOST_USER_REPLY_MASK) && n == 8 && ack != 0) {
		fprintf(stderr, "ok: %s -> error ack %llu\n", m->what, (unsigned long long)ack);
		return 0;
	}
	fprintf(stderr, "FAIL: %s: got reply request %u flags 0x%x size %d value %llu\n", m->what,
	        h.request, h.flags, n, (unsigned long long)ack);
	return -1;
}

static int
one(struct vh_target *t, const struct bad_msg *m)
{
	struct vh_fe_mem_opts mo = {.size = 16 << 20};
	struct vh_fe_opts fo = {.num_queues = 2};
	uint8_t payload[512] = {0};
	int fds[VHOST_USER_MAX_FDS];
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	unsigned int i;
	int rc = -1;

	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	if (m->start_first && vh_fe_start(fe, 0, 0) < 0) {
		goto out;
	}
	memcpy(payload, &m->w0, 8);
	memcpy(payload + 8, &m->w1, 8);
	for (i = 0; i < m->nfds; i++) {
		fds[i] = eventfd(0, EFD_CLOEXEC);
	}
	rc = vh_fe_send_raw(fe, m->request, F_NR, m->size, payload, m->payload_len, fds, m->nfds);
	for (i = 0; i < m->nfds; i++) {
		close(fds[i]);
	}
	if (m->half_close) {
		shutdown(vh_fe_sock(fe), SHUT_WR);
	}
	if (rc < 0 && rc != -ECONNRESET) {
		fprintf(stderr, "FAIL: %s: send: %s\n", m->what, strerror(-rc));
		goto out;
	}
	rc = rc == -ECONNRESET ? 0 : expect_reject(fe, m);
out:
	vh_test_fe_close(mem, fe);
	return rc;
}

static int
healthy(struct vh_target *t)
{
	struct vh_fe_mem_opts mo = {.size = 16 << 20};
	struct vh_fe_opts fo = {.num_queues = 2};
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	int rc = -1;

	T_CHECK(vh_daemon_alive(&t->d), "daemon died");
	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	if (vh_fe_start(fe, 0, 0) == 0 && io_smoke(fe, mem, 1, 16, 7) == 0 && vh_fe_stop(fe) == 0) {
		rc = 0;
	} else {
		fprintf(stderr, "FAIL: handshake/I/O after malformed input\n");
	}
	vh_test_fe_close(mem, fe);
	return rc;
}

#define ST(idx, num) ((uint64_t)(idx) | (uint64_t)(num) << 32)

int
main(void)
{
	const struct bad_msg cases[] = {
	        {"SET_FEATURES with 4-byte payload", VHOST_USER_SET_FEATURES, 4, 4, 0, 1ull << 32},
	        {"SET_FEATURES size 8, 4 bytes sent then EOF", VHOST_USER_SET_FEATURES, 8, 4, 0, 0,
	         0, false, true},
	        {"SET_VRING_NUM with 12-byte payload", VHOST_USER_SET_VRING_NUM, 12, 12, 0,
	         ST(0, 128)},
	        {"SET_VRING_NUM index = max queues", VHOST_USER_SET_VRING_NUM, 8, 8, 0,
	         ST(32, 128)},
	        {"SET_VRING_NUM index 0xffffffff", VHOST_USER_SET_VRING_NUM, 8, 8, 0,
	         ST(0xffffffffu, 128)},
	        {"SET_VRING_NUM num 100 (not a power of two)", VHOST_USER_SET_VRING_NUM, 8, 8, 0,
	         ST(0, 100)},
	        {"SET_VRING_NUM num 0", VHOST_USER_SET_VRING_NUM, 8, 8, 0, ST(0, 0)},
	        {"SET_VRING_NUM num 65536", VHOST_USER_SET_VRING_NUM, 8, 8, 0, ST(0, 65536)},
	        {"SET_VRING_BASE index 1000", VHOST_USER_SET_VRING_BASE, 8, 8, 0, ST(1000, 0)},
	        {"SET_VRING_ENABLE index 64", VHOST_USER_SET_VRING_ENABLE, 8, 8, 0, ST(64, 1)},
	        {"SET_VRING_CALL index 200 with fd", VHOST_USER_SET_VRING_CALL, 8, 8, 1, 200},
	        {"SET_VRING_KICK index 0 with 2 fds", VHOST_USER_SET_VRING_KICK, 8, 8, 2, 0},
	        {"SET_OWNER with 3 fds attached", VHOST_USER_SET_OWNER, 0, 0, 3, 0},
	        {"SET_FEATURES with an fd attached", VHOST_USER_SET_FEATURES, 8, 8, 1,
	         (1ull << 32) | (1ull << 30)},
	        {"SET_VRING_NUM with 8 fds attached", VHOST_USER_SET_VRING_NUM, 8, 8, 8,
	         ST(0, 128)},
	        {"ADD_MEM_REG without fd", VHOST_USER_ADD_MEM_REG, 40, 40, 0, 0, 0},
	        {"SET_MEM_TABLE nregions 9", VHOST_USER_SET_MEM_TABLE, 8 + 32, 8 + 32, 1, 9},
	        {"SET_MEM_TABLE 1 region, 0 fds", VHOST_USER_SET_MEM_TABLE, 8 + 32, 8 + 32, 0, 1},
	        {"unknown request 999", 999, 0, 0, 0, 0},
	        {"request 0", 0, 0, 0, 0, 0},
	        {"header size 0x10000000", VHOST_USER_SET_FEATURES, 0x10000000u, 8, 0, 0},
	        {"SET_VRING_ADDR with 8-byte payload", VHOST_USER_SET_VRING_ADDR, 8, 8, 0, 0},
	        {"GET_VRING_BASE index 99 (started)", VHOST_USER_GET_VRING_BASE, 8, 8, 0, ST(99, 0),
	         0, true},
	        {"SET_VRING_NUM while started", VHOST_USER_SET_VRING_NUM, 8, 8, 0, ST(0, 77), 0,
	         true},
	};
	struct vh_target_opts to = {.num_blocks = 8192};
	struct vh_target t;
	unsigned int i;
	int rc, fail = 0, fds0 = -1, fds1;

	if (vh_test_qsd()) {
		fprintf(stderr, "SKIP: qsd panics on most of these (by design)\n");
		return VH_TEST_SKIP;
	}
	rc = vh_target_start(&t, &to);
	if (rc) {
		return rc == VH_TEST_SKIP ? VH_TEST_SKIP : VH_TEST_FAIL;
	}
	if (healthy(&t) < 0) {
		fail = 1;
	}
	fds0 = count_fds(t.d.pid);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (one(&t, &cases[i]) < 0) {
			fail = 1;
		}
		if (healthy(&t) < 0) {
			fprintf(stderr, "FAIL: after '%s'\n", cases[i].what);
			fail = 1;
			break;
		}
	}
	/* Sessions close asynchronously: allow the daemon a moment to drop the last one. */
	for (i = 0; i < 100; i++) {
		fds1 = count_fds(t.d.pid);
		if (fds1 <= fds0) {
			break;
		}
		poll(NULL, 0, 10); /* re-check interval of a 1 s deadline */
	}
	if (fds1 > fds0) {
		fprintf(stderr, "FAIL: daemon fd count grew from %d to %d\n", fds0, fds1);
		fail = 1;
	}
	if (vh_target_stop(&t) < 0) {
		fail = 1;
	}
	fprintf(stderr, "test_malformed: %s\n", fail ? "FAIL" : "PASS");
	return fail ? VH_TEST_FAIL : VH_TEST_PASS;
}
