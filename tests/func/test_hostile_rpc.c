/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * RPC negative suite (issue 6, item 7) against a running vhostd: unknown methods and bad
 * params, a request over 1 MiB (refused, connection closed), 64 concurrent clients, a client
 * trickling one byte at a time that must not delay others, names that are too long or carry
 * path separators, deleting twice. The daemon stays alive and its fd count returns to baseline.
 */
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "test_hostile_common.h"

#define VH_MAX(a, b) ((a) > (b) ? (a) : (b))

static int
rpc_connect(const struct vh_target *t)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", t->d.rpc_path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (fd >= 0) {
			close(fd);
		}
		return -1;
	}
	return fd;
}

/* Expect an error reply with @code for method(params). */
static int
expect_error(struct vh_target *t, const char *method, json_t *params, int code)
{
	char msg[256] = "";
	int ec = 0, rc;

	rc = vh_rpc_call(t->d.rpc_path, method, params, NULL, &ec, msg, sizeof(msg), 5000);
	T_CHECK(rc == -EREMOTEIO && (code == 0 || ec == code),
	        "%s: rc %d code %d (%s), expected error %d", method, rc, ec, msg, code);
	fprintf(stderr, "ok: %s -> %d %s\n", method, ec, msg);
	return 0;
}

static int
t_bad_calls(struct vh_target *t)
{
	char longname[300];

	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	T_OK(expect_error(t, "no_such_method", NULL, -32601));
	T_OK(expect_error(t, "bdev_malloc_create", json_pack("{s:s}", "name", "x"), -32602));
	T_OK(expect_error(
	        t, "bdev_malloc_create",
	        json_pack("{s:s, s:i, s:s}", "name", "x", "num_blocks", 8, "block_size", "512"),
	        -32602));
	T_OK(expect_error(t, "bdev_malloc_create",
	                  json_pack("{s:s, s:i, s:i, s:b}", "name", "x", "num_blocks", -1,
	                            "block_size", 512, "bogus", 1),
	                  -32602));
	T_OK(expect_error(t, "bdev_malloc_create", json_pack("[i]", 1), -32602));
	T_OK(expect_error(
	        t, "bdev_malloc_create",
	        json_pack("{s:s, s:i, s:i}", "name", longname, "num_blocks", 8, "block_size", 512),
	        -32602));
	T_OK(expect_error(
	        t, "bdev_malloc_create",
	        json_pack("{s:s, s:i, s:i}", "name", "../evil", "num_blocks", 8, "block_size", 512),
	        -32602));
	T_OK(expect_error(t, "vhost_create_blk_controller",
	                  json_pack("{s:s, s:s}", "ctrlr", "../../tmp/evil", "dev_name", t->bdev),
	                  -32602));
	T_OK(expect_error(t, "vhost_create_blk_controller",
	                  json_pack("{s:s, s:s}", "ctrlr", "a/b", "dev_name", t->bdev), -32602));
	T_OK(expect_error(t, "vhost_create_blk_controller",
	                  json_pack("{s:s, s:s}", "ctrlr", longname, "dev_name", t->bdev), -32602));
	T_OK(expect_error(t, "vhost_create_blk_controller",
	                  json_pack("{s:s, s:s}", "ctrlr", "ok.1", "dev_name", "nobdev"), 0));
	/* Create, delete, delete again. */
	T_OK(vh_target_rpc(
	        t, "bdev_malloc_create",
	        json_pack("{s:s, s:i, s:i}", "name", "Twice0", "num_blocks", 64, "block_size", 512),
	        NULL));
	T_OK(vh_target_rpc(t, "vhost_create_blk_controller",
	                   json_pack("{s:s, s:s}", "ctrlr", "twice.0", "dev_name", "Twice0"),
	                   NULL));
	T_OK(expect_error(t, "bdev_malloc_delete", json_pack("{s:s}", "name", "Twice0"), 0));
	T_OK(vh_target_rpc(t, "vhost_delete_controller", json_pack("{s:s}", "ctrlr", "twice.0"),
	                   NULL));
	T_OK(expect_error(t, "vhost_delete_controller", json_pack("{s:s}", "ctrlr", "twice.0"), 0));
	T_OK(vh_target_rpc(t, "bdev_malloc_delete", json_pack("{s:s}", "name", "Twice0"), NULL));
	T_OK(expect_error(t, "bdev_malloc_delete", json_pack("{s:s}", "name", "Twice0"), 0));
	return 0;
}

/* More than 1 MiB in one request: an error reply, then the server closes the connection. */
static int
t_oversized(struct vh_target *t)
{
	size_t len = (1u << 20) + 4096;
	char *buf = malloc(len), rbuf[4096];
	int fd = rpc_connect(t), got = 0;
	int64_t deadline = vh_fe_now_ms() + 10000;
	size_t off = 0;

	T_CHECK(buf != NULL && fd >= 0, "connect");
	memset(buf, ' ', len);
	memcpy(buf, "{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":{\"a\":\"", 44);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	for (;;) {
		ssize_t n;
		struct pollfd p = {.fd = fd, .events = POLLIN | (off < len ? POLLOUT : 0)};

		T_CHECK(vh_fe_now_ms() < deadline, "server neither refused nor closed in 10 s");
		poll(&p, 1, 100);
		if (off < len && (p.revents & POLLOUT)) {
			n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
			if (n > 0) {
				off += (size_t)n;
			} else if (n < 0 && errno != EAGAIN) {
				break; /* closed on us: fine, check what we got */
			}
		}
		if (p.revents & (POLLIN | POLLHUP)) {
			n = recv(fd, rbuf + got, sizeof(rbuf) - 1 - (size_t)got, 0);
			if (n <= 0) {
				break;
			}
			got += (int)n;
		}
	}
	rbuf[got] = '\0';
	close(fd);
	free(buf);
	T_CHECK(strstr(rbuf, "\"error\"") != NULL, "no error reply before the close: '%s'", rbuf);
	fprintf(stderr, "ok: 1 MiB+ request -> %s", rbuf);
	return 0;
}

/* 64 clients connected at once, each with a request outstanding, all answered. */
static int
t_many_clients(struct vh_target *t)
{
	enum { N = 64 };
	int fds[N];
	static const char req[] = "{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\",\"id\":7}";

	for (int i = 0; i < N; i++) {
		fds[i] = rpc_connect(t);
		T_CHECK(fds[i] >= 0, "client %d: connect", i);
	}
	for (int i = 0; i < N; i++) {
		T_CHECK(send(fds[i], req, sizeof(req) - 1, MSG_NOSIGNAL) == sizeof(req) - 1,
		        "send");
	}
	for (int i = 0; i < N; i++) {
		struct pollfd p = {.fd = fds[i], .events = POLLIN};
		char buf[512];
		ssize_t n;

		T_CHECK(poll(&p, 1, 5000) == 1, "client %d: no reply in 5 s", i);
		n = recv(fds[i], buf, sizeof(buf) - 1, 0);
		T_CHECK(n > 0, "client %d: recv", i);
		buf[n] = '\0';
		T_CHECK(strstr(buf, "\"result\"") != NULL, "client %d: %s", i, buf);
		close(fds[i]);
	}
	fprintf(stderr, "ok: %d concurrent clients answered\n", N);
	return 0;
}

/* A client sends one byte of a request every 200 ms; 20 other calls complete meanwhile. */
static int
t_slow_client(struct vh_target *t)
{
	static const char req[] = "{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\",\"id\":1}";
	int fd = rpc_connect(t);
	size_t sent = 0;
	int64_t t0 = vh_fe_now_ms(), worst = 0;

	T_CHECK(fd >= 0, "connect");
	for (int i = 0; i < 20; i++) {
		int64_t a;

		T_CHECK(send(fd, req + sent, 1, MSG_NOSIGNAL) == 1, "trickle");
		sent++;
		a = vh_fe_now_ms();
		T_OK(vh_target_rpc(t, "bdev_get_bdevs", NULL, NULL));
		worst = VH_MAX(worst, vh_fe_now_ms() - a);
		poll(NULL, 0, 200); /* the trickle rate itself, not synchronisation */
	}
	close(fd);
	fprintf(stderr, "ok: slow client did not block others (worst call %lld ms over %lld ms)\n",
	        (long long)worst, (long long)(vh_fe_now_ms() - t0));
	T_CHECK(worst < 1000, "a call took %lld ms while another client trickled",
	        (long long)worst);
	return 0;
}

int
main(void)
{
	struct vh_target_opts to = {.num_blocks = 1024};
	struct vh_target t;
	int fail = 0, rc, fds0, fds1;

	if (vh_test_qsd()) {
		return VH_TEST_SKIP;
	}
	hostile_asan_env();
	rc = vh_target_start(&t, &to);
	if (rc) {
		return rc == VH_TEST_SKIP ? VH_TEST_SKIP : VH_TEST_FAIL;
	}
	fds0 = hostile_count_fds(t.d.pid);
	if (t_bad_calls(&t) < 0 || t_oversized(&t) < 0 || t_many_clients(&t) < 0 ||
	    t_slow_client(&t) < 0) {
		fail = 1;
	}
	fds1 = hostile_wait_fds(t.d.pid, fds0, 3000);
	if (fds1 > fds0) {
		fprintf(stderr, "FAIL: daemon fd count grew from %d to %d\n", fds0, fds1);
		fail = 1;
	}
	if (vh_target_stop(&t) < 0) {
		fail = 1;
	}
	fprintf(stderr, "test_hostile_rpc: %s\n", fail ? "FAIL" : "PASS");
	return fail ? VH_TEST_FAIL : VH_TEST_PASS;
}
