/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * SPDK v23.05's scripts/rpc.py drives vhostd unchanged: replay the exact parameter sets rpc.py
 * sends for every method vhostd shares with SPDK (tests/func/rpc_spdk_v2305.json, made from
 * `rpc.py --dry-run`) against a running daemon. Each is accepted, or refused with -32602 and the
 * documented message when it asks for something vhostd cannot honour.
 *
 * The requests are framed as rpc.py frames them: JSON indented by 2, no trailing newline, ids
 * counting up on one connection (rpc.py's script and --server modes keep one connection), and
 * the reply is read until it parses as one complete JSON value.
 *
 * Usage: test_rpc_spdk FIXTURE.json
 */
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fe_msg.h"
#include "vh_test.h"

#define RPC_TIMEOUT_MS 10000
#define FILE_BYTES     (4u << 20)

/* One client connection with a receive buffer that keeps what follows a reply. */
struct conn {
	int fd;
	char buf[1 << 20];
	size_t len;
	int next_id;
};

static int
send_text(int fd, const char *text)
{
	size_t len = strlen(text);

	while (len > 0) {
		ssize_t n = send(fd, text, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			return -errno;
		}
		text += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Like rpc.py's recv(): read until the buffer starts with one complete JSON value. */
static int
recv_reply(struct conn *c, json_t **out)
{
	int64_t deadline = fe_now_ms() + RPC_TIMEOUT_MS;

	for (;;) {
		json_error_t jerr;
		size_t skip = 0;
		ssize_t n;

		while (skip < c->len && strchr(" \t\r\n", c->buf[skip]) != NULL) {
			skip++;
		}
		if (skip < c->len) {
			*out = json_loadb(c->buf + skip, c->len - skip, JSON_DISABLE_EOF_CHECK,
			                  &jerr);
			if (*out != NULL) {
				size_t used = skip + (size_t)jerr.position;

				memmove(c->buf, c->buf + used, c->len - used);
				c->len -= used;
				return 0;
			}
		}
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		int64_t left = deadline - fe_now_ms();

		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			return -ETIMEDOUT;
		}
		if (c->len == sizeof(c->buf)) {
			return -E2BIG;
		}
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return n == 0 ? -ECONNRESET : -errno;
		}
		c->len += (size_t)n;
	}
}

/* rpc.py's request: {"jsonrpc", "method", "id"} and "params" only when non-empty. */
static char *
request_text(struct conn *c, const char *method, const json_t *params)
{
	json_t *req = json_pack("{s:s, s:s, s:i}", "jsonrpc", "2.0", "method", method, "id",
	                        ++c->next_id);
	char *text;

	if (req == NULL) {
		return NULL;
	}
	if (params != NULL && json_object_size(params) > 0) {
		json_object_set(req, "params", (json_t *)params);
	}
	text = json_dumps(req, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(req);
	return text;
}

/* "@DIR@" in the fixture's strings is the daemon's temp dir. */
static json_t *
subst_dir(const json_t *params, const char *dir)
{
	char *text, *out, *p, *q;
	size_t n = 0;
	json_t *res;

	if (params == NULL) {
		return NULL;
	}
	text = json_dumps(params, JSON_PRESERVE_ORDER);
	if (text == NULL) {
		return NULL;
	}
	for (p = text; (p = strstr(p, "@DIR@")) != NULL; p += 5) {
		n++;
	}
	out = malloc(strlen(text) + n * strlen(dir) + 1);
	if (out == NULL) {
		free(text);
		return NULL;
	}
	for (p = text, q = out; *p != '\0';) {
		if (strncmp(p, "@DIR@", 5) == 0) {
			q = stpcpy(q, dir);
			p += 5;
		} else {
			*q++ = *p++;
		}
	}
	*q = '\0';
	res = json_loads(out, JSON_REJECT_DUPLICATES, NULL);
	free(text);
	free(out);
	return res;
}

/* Check one reply against the case. Returns 0 or -1 (printed). */
static int
check_reply(const json_t *cs, const json_t *reply, int id)
{
	const char *cmd = json_string_value(json_object_get(cs, "cmd"));
	const char *expect = json_string_value(json_object_get(cs, "expect"));
	const json_t *err = json_object_get(reply, "error");
	const json_t *want = json_object_get(cs, "result");

	T_CHECK(json_integer_value(json_object_get(reply, "id")) == id, "%s: reply id", cmd);
	T_CHECK(strcmp(json_string_value(json_object_get(reply, "jsonrpc")) ?: "", "2.0") == 0,
	        "%s: jsonrpc member", cmd);
	if (strcmp(expect, "ok") == 0) {
		T_CHECK(err == NULL, "%s: refused: %s", cmd,
		        json_string_value(json_object_get(err, "message")));
		T_CHECK(json_object_get(reply, "result") != NULL, "%s: no result", cmd);
		if (want != NULL) {
			char *got = json_dumps(json_object_get(reply, "result"), JSON_ENCODE_ANY);
			bool same = json_equal(want, json_object_get(reply, "result"));

			T_CHECK(same, "%s: result %s", cmd, got);
			free(got);
		}
		fprintf(stderr, "ok: %s\n", cmd);
		return 0;
	}
	const char *msg = json_string_value(json_object_get(err, "message"));
	const char *sub = json_string_value(json_object_get(cs, "message"));

	T_CHECK(err != NULL, "%s: accepted, expected an error containing \"%s\"", cmd, sub);
	T_CHECK(json_integer_value(json_object_get(err, "code")) == -32602, "%s: code %lld (%s)",
	        cmd, (long long)json_integer_value(json_object_get(err, "code")), msg);
	T_CHECK(msg != NULL && strstr(msg, sub) != NULL, "%s: message \"%s\" lacks \"%s\"", cmd,
	        msg ?: "", sub);
	fprintf(stderr, "ok: %s -> %s\n", cmd, msg);
	return 0;
}

static int
run_case(struct conn *c, const json_t *cs, const char *dir)
{
	const char *method = json_string_value(json_object_get(cs, "method"));
	json_t *params = subst_dir(json_object_get(cs, "params"), dir);
	json_t *reply = NULL;
	char *text;
	int rc;

	T_CHECK(method != NULL, "case without a method");
	text = request_text(c, method, params);
	json_decref(params);
	T_CHECK(text != NULL, "out of memory");
	rc = send_text(c->fd, text);
	free(text);
	T_OK(rc);
	T_OK(recv_reply(c, &reply));
	rc = check_reply(cs, reply, c->next_id);
	json_decref(reply);
	return rc;
}

/*
 * rpc.py's flush() joins queued requests with "\n" and no trailing newline: two requests in one
 * write get two replies, in order.
 */
static int
check_joined(struct conn *c)
{
	char *a = request_text(c, "spdk_get_version", NULL);
	char *b = request_text(c, "bdev_get_bdevs", NULL);
	char *both = NULL;
	json_t *r1 = NULL, *r2 = NULL;
	int rc = -1;

	if (a != NULL && b != NULL && asprintf(&both, "%s\n%s", a, b) > 0 &&
	    send_text(c->fd, both) == 0 && recv_reply(c, &r1) == 0 && recv_reply(c, &r2) == 0 &&
	    json_integer_value(json_object_get(r1, "id")) == c->next_id - 1 &&
	    json_integer_value(json_object_get(r2, "id")) == c->next_id &&
	    json_is_array(json_object_get(r2, "result"))) {
		rc = 0;
	}
	free(a);
	free(b);
	free(both);
	json_decref(r1);
	json_decref(r2);
	T_CHECK(rc == 0, "two requests joined by a newline did not get two replies in order");
	fprintf(stderr, "ok: two requests in one write, joined by \\n, no trailing newline\n");
	return 0;
}

static int
make_file(const char *dir, const char *name)
{
	char path[256];
	int fd, rc;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		return -errno;
	}
	rc = ftruncate(fd, FILE_BYTES) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

static int
run(struct vh_daemon *d, const json_t *cases)
{
	static struct conn c;
	const json_t *cs;
	size_t i;
	int fails = 0;

	for (i = 0; i < 4; i++) {
		static const char *const files[] = {"aio0.img", "aio1.img", "uring0.img",
		                                    "uring1.img"};

		T_OK(make_file(d->dir, files[i]));
	}
	c.fd = fe_connect_path(d->rpc_path, RPC_TIMEOUT_MS);
	T_OK(c.fd);
	json_array_foreach(cases, i, cs)
	{
		if (run_case(&c, cs, d->dir) < 0) {
			fails++;
		}
	}
	if (check_joined(&c) < 0) {
		fails++;
	}
	close(c.fd);
	T_CHECK(vh_daemon_alive(d), "daemon died");
	fprintf(stderr, "%zu cases, %d failed\n", json_array_size(cases), fails);
	return fails ? -1 : 0;
}

int
main(int argc, char **argv)
{
	struct vh_daemon d = {0};
	json_error_t jerr;
	json_t *fixture, *cases;
	int rc, fail;

	if (argc != 2) {
		fprintf(stderr, "usage: %s FIXTURE.json\n", argv[0]);
		return VH_TEST_FAIL;
	}
	if (vh_test_qsd()) {
		return VH_TEST_SKIP;
	}
	fixture = json_load_file(argv[1], JSON_REJECT_DUPLICATES, &jerr);
	cases = json_object_get(fixture, "cases");
	if (!json_is_array(cases) || json_array_size(cases) == 0) {
		fprintf(stderr, "FAIL: %s: %s\n", argv[1], fixture ? "no cases" : jerr.text);
		json_decref(fixture);
		return VH_TEST_FAIL;
	}
	rc = vh_daemon_start(&d, NULL, NULL, 10000);
	if (rc == -ENOENT) {
		json_decref(fixture);
		return VH_TEST_SKIP;
	}
	if (rc < 0) {
		fprintf(stderr, "FAIL: vhostd did not start: %s\n", strerror(-rc));
		json_decref(fixture);
		return VH_TEST_FAIL;
	}
	fail = run(&d, cases) < 0;
	rc = vh_daemon_stop(&d, 10000);
	if (rc != 0) {
		fprintf(stderr, "FAIL: vhostd exit status %d\n", rc);
		fail = 1;
	}
	json_decref(fixture);
	fprintf(stderr, "test_rpc_spdk: %s\n", fail ? "FAIL" : "PASS");
	return fail ? VH_TEST_FAIL : VH_TEST_PASS;
}
