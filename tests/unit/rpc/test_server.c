/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/rpc/server.c: the framer and the per-client stream without sockets, then the real server on
 * the control loop with real client sockets.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/evloop.h"
#include "core/log.h"
#include "rpc/rpc.h"
#include "rpc/rpc_internal.h"
#include "stubs.h"

#define VERSION_REQ "{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\",\"id\":1}"

/* ---- helpers ---- */

/* Pop one newline-terminated reply from the stream's output; NULL if none is complete. */
static json_t *
take_reply(struct vh_rpc_stream *s)
{
	const char *base = s->out.data + s->out_off;
	size_t pending = vh_rpc_stream_out_pending(s);
	const char *nl = pending ? memchr(base, '\n', pending) : NULL;
	json_error_t jerr;
	json_t *j;

	if (nl == NULL) {
		return NULL;
	}
	j = json_loadb(base, (size_t)(nl - base), 0, &jerr);
	assert_non_null(j);
	vh_rpc_stream_out_consume(s, (size_t)(nl - base) + 1);
	return j;
}

static int
reply_code(const json_t *r)
{
	return (int)json_integer_value(json_object_get(json_object_get(r, "error"), "code"));
}

static void
feed_str(struct vh_rpc_stream *s, const char *str)
{
	assert_int_equal(vh_rpc_stream_feed(s, str, strlen(str)), 0);
}

/* ---- framer ---- */

static void
test_framer_basic(void **state)
{
	const char *buf = "  {\"a\":\"}]\\\"{\"}\n[1,[2]]{}";
	struct vh_rpc_framer f;
	size_t start, end;

	vh_rpc_framer_reset(&f);
	assert_int_equal(vh_rpc_framer_next(&f, buf, strlen(buf), &start, &end), 1);
	assert_int_equal(start, 2);
	assert_memory_equal(buf + start, "{\"a\":\"}]\\\"{\"}", end - start);
	assert_int_equal(vh_rpc_framer_next(&f, buf, strlen(buf), &start, &end), 1);
	assert_memory_equal(buf + start, "[1,[2]]", end - start);
	assert_int_equal(vh_rpc_framer_next(&f, buf, strlen(buf), &start, &end), 1);
	assert_memory_equal(buf + start, "{}", end - start);
	assert_int_equal(vh_rpc_framer_next(&f, buf, strlen(buf), &start, &end), 0);
	assert_false(vh_rpc_framer_partial(&f));
}

static void
test_framer_incremental(void **state)
{
	const char *buf = "{\"method\":\"x\",\"p\":{\"q\":[1,2,\"]\"]}}";
	size_t len = strlen(buf), start, end;
	struct vh_rpc_framer f;

	vh_rpc_framer_reset(&f);
	for (size_t i = 1; i < len; i++) {
		assert_int_equal(vh_rpc_framer_next(&f, buf, i, &start, &end), 0);
		assert_true(vh_rpc_framer_partial(&f));
	}
	assert_int_equal(vh_rpc_framer_next(&f, buf, len, &start, &end), 1);
	assert_int_equal(start, 0);
	assert_int_equal(end, len);
}

static void
test_framer_errors(void **state)
{
	struct vh_rpc_framer f;
	size_t start, end;
	char deep[VH_RPC_MAX_DEPTH + 2];

	vh_rpc_framer_reset(&f);
	assert_int_equal(vh_rpc_framer_next(&f, "\"str\"", 5, &start, &end), -EBADMSG);
	vh_rpc_framer_reset(&f);
	assert_int_equal(vh_rpc_framer_next(&f, "}", 1, &start, &end), -EBADMSG);
	vh_rpc_framer_reset(&f);
	assert_int_equal(vh_rpc_framer_next(&f, "42", 2, &start, &end), -EBADMSG);

	/* Exactly VH_RPC_MAX_DEPTH open brackets are fine, one more is not. */
	memset(deep, '[', sizeof(deep));
	vh_rpc_framer_reset(&f);
	assert_int_equal(vh_rpc_framer_next(&f, deep, VH_RPC_MAX_DEPTH, &start, &end), 0);
	vh_rpc_framer_reset(&f);
	assert_int_equal(vh_rpc_framer_next(&f, deep, VH_RPC_MAX_DEPTH + 1, &start, &end), -ERANGE);
}

static void
test_framer_shift(void **state)
{
	char buf[64] = "{}  {\"a\"";
	struct vh_rpc_framer f;
	size_t start, end, n;

	vh_rpc_framer_reset(&f);
	assert_int_equal(vh_rpc_framer_next(&f, buf, strlen(buf), &start, &end), 1);
	assert_int_equal(vh_rpc_framer_next(&f, buf, strlen(buf), &start, &end), 0);
	n = vh_rpc_framer_consumed(&f);
	assert_int_equal(n, 4);
	memmove(buf, buf + n, strlen(buf) - n + 1);
	vh_rpc_framer_shift(&f, n);
	strcat(buf, ":1}");
	assert_int_equal(vh_rpc_framer_next(&f, buf, strlen(buf), &start, &end), 1);
	assert_int_equal(start, 0);
	assert_memory_equal(buf, "{\"a\":1}", end);
}

/* ---- stream ---- */

static void
test_stream_no_delimiter(void **state)
{
	struct vh_rpc_stream s;
	json_t *r;

	vh_rpc_stream_init(&s);
	feed_str(&s, VERSION_REQ);
	assert_int_equal(vh_rpc_stream_process(&s), 1);
	r = take_reply(&s);
	assert_non_null(r);
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 1);
	assert_non_null(json_object_get(json_object_get(r, "result"), "version"));
	assert_string_equal(json_string_value(json_object_get(r, "jsonrpc")), "2.0");
	json_decref(r);
	assert_int_equal(s.in.len, 0);
	vh_rpc_stream_fini(&s);
}

static void
test_stream_split_reads(void **state)
{
	const char *req = VERSION_REQ;
	struct vh_rpc_stream s;
	json_t *r;

	vh_rpc_stream_init(&s);
	for (size_t i = 0; i < strlen(req) - 1; i++) {
		assert_int_equal(vh_rpc_stream_feed(&s, req + i, 1), 0);
		assert_int_equal(vh_rpc_stream_process(&s), 0);
		assert_int_equal(vh_rpc_stream_out_pending(&s), 0);
	}
	assert_int_equal(vh_rpc_stream_feed(&s, req + strlen(req) - 1, 1), 0);
	assert_int_equal(vh_rpc_stream_process(&s), 1);
	r = take_reply(&s);
	assert_non_null(r);
	json_decref(r);
	vh_rpc_stream_fini(&s);
}

static void
test_stream_two_in_one(void **state)
{
	struct vh_rpc_stream s;
	json_t *r;

	vh_rpc_stream_init(&s);
	/* Back to back, then newline separated, then a partial third. */
	feed_str(&s, "{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\",\"id\":1}"
	             "{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\",\"id\":2}\n"
	             "\r\n {\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\",\"id\":3}\n"
	             "{\"jsonrpc\":\"2.0\",\"meth");
	assert_int_equal(vh_rpc_stream_process(&s), 3);
	for (int id = 1; id <= 3; id++) {
		r = take_reply(&s);
		assert_non_null(r);
		assert_int_equal(json_integer_value(json_object_get(r, "id")), id);
		json_decref(r);
	}
	assert_null(take_reply(&s));
	assert_true(vh_rpc_framer_partial(&s.fr));
	feed_str(&s, "od\":\"spdk_get_version\",\"id\":4}");
	assert_int_equal(vh_rpc_stream_process(&s), 1);
	r = take_reply(&s);
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 4);
	json_decref(r);
	vh_rpc_stream_fini(&s);
}

/* A syntax error inside a well-bracketed value: answer -32700 and keep the stream. */
static void
test_stream_parse_error_recovers(void **state)
{
	struct vh_rpc_stream s;
	json_t *r;

	vh_rpc_stream_init(&s);
	feed_str(&s, "{\"a\":}{\"a\":1,\"a\":2}" VERSION_REQ);
	assert_int_equal(vh_rpc_stream_process(&s), 3);
	r = take_reply(&s);
	assert_int_equal(reply_code(r), VH_RPC_PARSE_ERROR);
	assert_true(json_is_null(json_object_get(r, "id")));
	json_decref(r);
	r = take_reply(&s); /* duplicate keys are refused, not silently resolved */
	assert_int_equal(reply_code(r), VH_RPC_PARSE_ERROR);
	json_decref(r);
	r = take_reply(&s);
	assert_non_null(json_object_get(r, "result"));
	json_decref(r);
	assert_false(s.close_after_flush);
	vh_rpc_stream_fini(&s);
}

static void
test_stream_garbage_closes(void **state)
{
	struct vh_rpc_stream s;
	json_t *r;

	vh_rpc_stream_init(&s);
	feed_str(&s, "hello " VERSION_REQ);
	assert_int_equal(vh_rpc_stream_process(&s), 0);
	r = take_reply(&s);
	assert_int_equal(reply_code(r), VH_RPC_PARSE_ERROR);
	json_decref(r);
	assert_null(take_reply(&s));
	assert_true(s.close_after_flush);
	vh_rpc_stream_fini(&s);
}

/* Build a request of exactly @size bytes whose method is unknown. */
static char *
sized_request(size_t size)
{
	const char *head = "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"x\",\"pad\":\"";
	const char *tail = "\"}";
	char *buf = malloc(size + 1);

	assert_non_null(buf);
	assert_true(size > strlen(head) + strlen(tail));
	memset(buf, 'A', size);
	memcpy(buf, head, strlen(head));
	memcpy(buf + size - strlen(tail), tail, strlen(tail));
	buf[size] = '\0';
	return buf;
}

static void
feed_chunked(struct vh_rpc_stream *s, const char *buf, size_t len)
{
	for (size_t off = 0; off < len && !s->close_after_flush; off += VH_RPC_READ_CHUNK) {
		size_t n = VH_MIN(VH_RPC_READ_CHUNK, len - off);

		assert_int_equal(vh_rpc_stream_feed(s, buf + off, n), 0);
		vh_rpc_stream_process(s);
	}
}

static void
test_stream_size_limit(void **state)
{
	char *ok = sized_request(VH_RPC_MAX_REQUEST);
	char *big = sized_request(VH_RPC_MAX_REQUEST + 1);
	struct vh_rpc_stream s;
	json_t *r;

	vh_rpc_stream_init(&s);
	feed_chunked(&s, ok, VH_RPC_MAX_REQUEST);
	r = take_reply(&s);
	assert_int_equal(reply_code(r), VH_RPC_METHOD_NOT_FOUND);
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 7);
	json_decref(r);
	assert_false(s.close_after_flush);

	feed_chunked(&s, big, VH_RPC_MAX_REQUEST + 1);
	r = take_reply(&s);
	assert_int_equal(reply_code(r), VH_RPC_INVALID_REQUEST);
	assert_non_null(
	        strstr(json_string_value(json_object_get(json_object_get(r, "error"), "message")),
	               "exceeds"));
	json_decref(r);
	assert_true(s.close_after_flush);
	vh_rpc_stream_fini(&s);
	free(ok);
	free(big);
}

static void
test_stream_feed_cap(void **state)
{
	size_t cap = VH_RPC_MAX_REQUEST + VH_RPC_READ_CHUNK;
	char *junk = calloc(1, cap + 1);
	struct vh_rpc_stream s;

	vh_rpc_stream_init(&s);
	assert_int_equal(vh_rpc_stream_feed(&s, junk, cap), 0);
	assert_int_equal(vh_rpc_stream_feed(&s, junk, 1), -EMSGSIZE);
	vh_rpc_stream_fini(&s);
	free(junk);
}

static void
test_stream_depth(void **state)
{
	char buf[2 * (VH_RPC_MAX_DEPTH + 1) + 1];
	struct vh_rpc_stream s;
	json_t *r;

	/* A batch nested exactly to the limit is parsed (and its element is invalid). */
	memset(buf, '[', VH_RPC_MAX_DEPTH);
	memset(buf + VH_RPC_MAX_DEPTH, ']', VH_RPC_MAX_DEPTH);
	buf[2 * VH_RPC_MAX_DEPTH] = '\0';
	vh_rpc_stream_init(&s);
	feed_str(&s, buf);
	assert_int_equal(vh_rpc_stream_process(&s), 1);
	r = take_reply(&s);
	assert_true(json_is_array(r));
	assert_int_equal(reply_code(json_array_get(r, 0)), VH_RPC_INVALID_REQUEST);
	json_decref(r);

	memset(buf, '[', VH_RPC_MAX_DEPTH + 1);
	memset(buf + VH_RPC_MAX_DEPTH + 1, ']', VH_RPC_MAX_DEPTH + 1);
	buf[2 * (VH_RPC_MAX_DEPTH + 1)] = '\0';
	feed_str(&s, buf);
	assert_int_equal(vh_rpc_stream_process(&s), 0);
	r = take_reply(&s);
	assert_int_equal(reply_code(r), VH_RPC_PARSE_ERROR);
	json_decref(r);
	assert_true(s.close_after_flush);
	vh_rpc_stream_fini(&s);
}

#define WAIT_REQ(id, ms)                                                                           \
	"{\"jsonrpc\":\"2.0\",\"method\":\"bdev_get_bdevs\",\"id\":" #id                           \
	",\"params\":{\"name\":\"Late\",\"timeout\":" #ms "}}"

static void
create_late(void)
{
	struct vh_rpc_error err = {0};
	json_t *p =
	        json_pack("{s:s, s:i, s:i}", "name", "Late", "num_blocks", 8, "block_size", 512);
	json_t *r = vh_rpc_call("bdev_malloc_create", p, &err);

	assert_non_null(r);
	json_decref(r);
	json_decref(p);
}

/*
 * bdev_get_bdevs with a timeout waits for the bdev (SPDK's rpc.py -t): the request and the ones
 * behind it stay queued, in order, until the bdev appears or the time is up.
 */
static void
test_stream_wait(void **state)
{
	struct vh_rpc_stream s;
	json_t *r;

	stub_reset();
	vh_rpc_stream_init(&s);
	feed_str(&s, WAIT_REQ(1, 60000) VERSION_REQ);
	assert_int_equal(vh_rpc_stream_process(&s), 0);
	assert_non_null(s.waiting);
	assert_int_equal(vh_rpc_stream_out_pending(&s), 0);
	assert_int_equal(vh_rpc_stream_process(&s), 0); /* still nothing to answer */
	create_late();
	assert_int_equal(vh_rpc_stream_process(&s), 2);
	assert_null(s.waiting);
	r = take_reply(&s);
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 1);
	assert_string_equal(json_string_value(json_object_get(
	                            json_array_get(json_object_get(r, "result"), 0), "name")),
	                    "Late");
	json_decref(r);
	r = take_reply(&s);
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 1); /* VERSION_REQ's id */
	assert_non_null(json_object_get(r, "result"));
	json_decref(r);
	vh_rpc_stream_fini(&s);

	/* The time runs out: the usual error. */
	stub_reset();
	vh_rpc_stream_init(&s);
	feed_str(&s, WAIT_REQ(2, 1));
	assert_int_equal(vh_rpc_stream_process(&s), 0);
	assert_non_null(s.waiting);
	while (vh_now_ns() < s.wait_until_ns) {
		/* a 1 ms deadline: poll it */
	}
	assert_int_equal(vh_rpc_stream_process(&s), 1);
	r = take_reply(&s);
	assert_int_equal(reply_code(r), VH_RPC_INVALID_PARAMS);
	assert_non_null(
	        strstr(json_string_value(json_object_get(json_object_get(r, "error"), "message")),
	               "bdev 'Late' not found"));
	json_decref(r);

	/* In a batch nothing waits: the answer comes at once. */
	feed_str(&s, "[" WAIT_REQ(3, 60000) "]");
	assert_int_equal(vh_rpc_stream_process(&s), 1);
	assert_null(s.waiting);
	r = take_reply(&s);
	assert_int_equal(reply_code(json_array_get(r, 0)), VH_RPC_INVALID_PARAMS);
	json_decref(r);

	/* A client that goes away while waiting leaks nothing. */
	feed_str(&s, WAIT_REQ(4, 60000));
	assert_int_equal(vh_rpc_stream_process(&s), 0);
	assert_non_null(s.waiting);
	vh_rpc_stream_fini(&s);
	stub_reset();
}

static void
test_stream_backpressure(void **state)
{
	const char *req = "{\"jsonrpc\":\"2.0\",\"method\":\"rpc_get_methods\",\"id\":1}";
	unsigned total = 0, n, want = 0;
	struct vh_rpc_stream s;

	vh_rpc_stream_init(&s);
	/* Enough requests that their replies pass the high-water mark. */
	while (s.in.len + strlen(req) < VH_RPC_MAX_REQUEST) {
		feed_str(&s, req);
		want++;
	}
	n = vh_rpc_stream_process(&s);
	assert_true(n > 0 && n < want);
	assert_true(vh_rpc_stream_out_pending(&s) > VH_RPC_OUT_HIGH_WATER);
	total = n;
	while (total < want) {
		vh_rpc_stream_out_consume(&s, vh_rpc_stream_out_pending(&s));
		n = vh_rpc_stream_process(&s);
		assert_true(n > 0);
		total += n;
	}
	assert_int_equal(total, want);
	assert_int_equal(s.in.len, 0);
	vh_rpc_stream_fini(&s);
}

/* ---- the real server ---- */

struct srv_fixture {
	char dir[48];
	char path[96];
	struct vh_evloop *loop;
};

static int
srv_setup(void **state)
{
	struct srv_fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/vh-rpc-test.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/rpc.sock", fx->dir);
	fx->loop = vh_evloop_create();
	assert_non_null(fx->loop);
	assert_int_equal(vh_rpc_server_start(fx->path, (gid_t)-1), 0);
	*state = fx;
	return 0;
}

static int
srv_teardown(void **state)
{
	struct srv_fixture *fx = *state;

	vh_rpc_server_stop();
	vh_evloop_destroy(fx->loop);
	rmdir(fx->dir);
	free(fx);
	stub_reset();
	return 0;
}

struct waiter {
	struct vh_evloop *loop;
	bool (*cond)(void *arg);
	void *arg;
	uint64_t deadline;
	bool met;
};

static void
waiter_tick(void *arg, uint32_t events)
{
	struct waiter *w = arg;

	if (w->cond(w->arg)) {
		w->met = true;
		vh_evloop_stop(w->loop);
		return;
	}
	if (vh_now_ns() > w->deadline) {
		vh_evloop_stop(w->loop);
		return;
	}
	assert_non_null(vh_evloop_timer(w->loop, 1000000, waiter_tick, w));
}

/* Run the control loop until cond(arg) holds (polled every ms) or @ms pass. */
static bool
run_until(struct vh_evloop *loop, bool (*cond)(void *arg), void *arg, unsigned ms)
{
	struct waiter w = {loop, cond, arg, vh_now_ns() + ms * 1000000ull, false};

	assert_non_null(vh_evloop_timer(loop, 1000000, waiter_tick, &w));
	vh_evloop_run(loop);
	return w.met;
}

static bool
never(void *arg)
{
	return false;
}

struct peer {
	int fd;
	char buf[8192];
	size_t len;
	bool eof;
};

static void
peer_connect(struct peer *p, const char *path)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};

	memset(p, 0, sizeof(*p));
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	p->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(p->fd >= 0);
	assert_int_equal(connect(p->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
}

static void
peer_send(struct peer *p, const char *s)
{
	assert_int_equal(send(p->fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* Condition: the peer has a complete line, or saw EOF. */
static bool
peer_has_line(void *arg)
{
	struct peer *p = arg;

	for (;;) {
		ssize_t n = recv(p->fd, p->buf + p->len, sizeof(p->buf) - 1 - p->len, MSG_DONTWAIT);

		if (n > 0) {
			p->len += (size_t)n;
			continue;
		}
		if (n == 0) {
			p->eof = true;
		}
		break;
	}
	p->buf[p->len] = '\0';
	return strchr(p->buf, '\n') != NULL || p->eof;
}

static bool
peer_eof(void *arg)
{
	struct peer *p = arg;

	peer_has_line(p);
	return p->eof;
}

static json_t *
peer_reply(struct peer *p)
{
	char *nl = strchr(p->buf, '\n');
	json_t *j;

	assert_non_null(nl);
	j = json_loadb(p->buf, (size_t)(nl - p->buf), 0, NULL);
	assert_non_null(j);
	memmove(p->buf, nl + 1, p->len - (size_t)(nl + 1 - p->buf) + 1);
	p->len -= (size_t)(nl + 1 - p->buf);
	return j;
}

static void
test_server_socket_mode(void **state)
{
	struct srv_fixture *fx = *state;
	struct stat st;

	assert_int_equal(stat(fx->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(vh_rpc_server_start(fx->path, (gid_t)-1), -EALREADY);
}

static void
test_server_request_reply(void **state)
{
	struct srv_fixture *fx = *state;
	struct peer p;
	json_t *r;

	peer_connect(&p, fx->path);
	/* Two writes with the control loop running in between: a split request. */
	peer_send(&p, "{\"jsonrpc\":\"2.0\",\"me");
	run_until(fx->loop, never, NULL, 20);
	peer_send(&p, "thod\":\"spdk_get_version\",\"id\":\"a\"}");
	assert_true(run_until(fx->loop, peer_has_line, &p, 2000));
	r = peer_reply(&p);
	assert_string_equal(json_string_value(json_object_get(r, "id")), "a");
	json_decref(r);
	/* Same connection, two more requests in one write, then a notification. */
	peer_send(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\",\"id\":2}"
	              "{\"jsonrpc\":\"2.0\",\"method\":\"nope\",\"id\":3}"
	              "{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\"}");
	assert_true(run_until(fx->loop, peer_has_line, &p, 2000));
	r = peer_reply(&p);
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 2);
	json_decref(r);
	if (strchr(p.buf, '\n') == NULL) {
		assert_true(run_until(fx->loop, peer_has_line, &p, 2000));
	}
	r = peer_reply(&p);
	assert_int_equal(reply_code(r), VH_RPC_METHOD_NOT_FOUND);
	json_decref(r);
	run_until(fx->loop, never, NULL, 20);
	peer_has_line(&p);
	assert_int_equal(p.len, 0); /* nothing for the notification */
	close(p.fd);
}

static void
test_server_slow_client(void **state)
{
	struct srv_fixture *fx = *state;
	struct peer slow, fast;
	json_t *r;

	peer_connect(&slow, fx->path);
	peer_send(&slow, "{");
	run_until(fx->loop, never, NULL, 10);
	peer_send(&slow, "\"");
	/* The trickling client holds no lock on anything: another is served at once. */
	peer_connect(&fast, fx->path);
	peer_send(&fast, VERSION_REQ);
	assert_true(run_until(fx->loop, peer_has_line, &fast, 2000));
	r = peer_reply(&fast);
	assert_non_null(json_object_get(r, "result"));
	json_decref(r);
	peer_has_line(&slow);
	assert_int_equal(slow.len, 0);
	close(fast.fd);
	close(slow.fd);
}

static void
test_server_oversize(void **state)
{
	struct srv_fixture *fx = *state;
	char *big = sized_request(VH_RPC_MAX_REQUEST + 1000);
	size_t off = 0, len = strlen(big);
	struct peer p;
	json_t *r;

	peer_connect(&p, fx->path);
	/* Push while the server drains; stop when it closes on us. */
	while (off < len && !p.eof) {
		ssize_t n = send(p.fd, big + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			off += (size_t)n;
		} else if (n < 0 && errno != EAGAIN) {
			break;
		}
		run_until(fx->loop, never, NULL, 1);
		peer_has_line(&p);
	}
	assert_true(run_until(fx->loop, peer_eof, &p, 2000));
	r = peer_reply(&p);
	assert_int_equal(reply_code(r), VH_RPC_INVALID_REQUEST);
	json_decref(r);
	close(p.fd);
	free(big);
}

static void
test_server_client_limit(void **state)
{
	struct srv_fixture *fx = *state;
	struct peer *peers = calloc(VH_RPC_MAX_CLIENTS + 1, sizeof(*peers));
	struct peer *last = &peers[VH_RPC_MAX_CLIENTS];
	json_t *r;

	assert_non_null(peers);
	for (int i = 0; i < VH_RPC_MAX_CLIENTS; i++) {
		peer_connect(&peers[i], fx->path);
	}
	run_until(fx->loop, never, NULL, 50);
	peer_connect(last, fx->path);
	assert_true(run_until(fx->loop, peer_eof, last, 2000));
	r = peer_reply(last);
	assert_int_equal(reply_code(r), VH_RPC_INTERNAL_ERROR);
	json_decref(r);
	close(last->fd);
	/* A slot freed is a slot usable again. */
	close(peers[0].fd);
	run_until(fx->loop, never, NULL, 20);
	peer_connect(last, fx->path);
	peer_send(last, VERSION_REQ);
	assert_true(run_until(fx->loop, peer_has_line, last, 2000));
	r = peer_reply(last);
	assert_non_null(json_object_get(r, "result"));
	json_decref(r);
	close(last->fd);
	for (int i = 1; i < VH_RPC_MAX_CLIENTS; i++) {
		close(peers[i].fd);
	}
	free(peers);
}

struct line_counter {
	int fd;
	unsigned lines;
};

static bool
count_lines(void *arg)
{
	struct line_counter *lc = arg;
	char buf[65536];
	ssize_t n;

	while ((n = recv(lc->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			lc->lines += buf[i] == '\n';
		}
	}
	return false;
}

/*
 * Replies to pipelined requests that pass the output high-water mark: the server must resume
 * parsing the input it already holds once the client has read, without new input to wake it.
 */
static void
test_server_pipelined(void **state)
{
	const char *req = "{\"jsonrpc\":\"2.0\",\"method\":\"rpc_get_methods\",\"id\":1}";
	struct srv_fixture *fx = *state;
	size_t len = strlen(req), total = 4000 * len, off = 0;
	char *all = malloc(total);
	struct line_counter lc;
	struct peer p;

	assert_non_null(all);
	for (unsigned i = 0; i < 4000; i++) {
		memcpy(all + i * len, req, len);
	}
	peer_connect(&p, fx->path);
	lc.fd = p.fd;
	lc.lines = 0;
	for (int spins = 0; lc.lines < 4000 && spins < 5000; spins++) {
		ssize_t n = off < total ? send(p.fd, all + off, total - off, MSG_DONTWAIT) : 0;

		if (n > 0) {
			off += (size_t)n;
		}
		run_until(fx->loop, never, NULL, 1);
		count_lines(&lc);
	}
	assert_int_equal(lc.lines, 4000);
	close(p.fd);
	free(all);
}

/* One client waits for a bdev (rpc.py bdev_get_bdevs -b Late -t 5000); another creates it. */
static void
test_server_wait_other_client(void **state)
{
	struct srv_fixture *fx = *state;
	struct peer a, b;
	uint64_t t0;
	json_t *r;

	stub_reset();
	peer_connect(&a, fx->path);
	peer_connect(&b, fx->path);
	peer_send(&a, WAIT_REQ(7, 5000));
	assert_false(run_until(fx->loop, peer_has_line, &a, 50));
	peer_send(&b, "{\"jsonrpc\":\"2.0\",\"method\":\"bdev_malloc_create\",\"id\":1,"
	              "\"params\":{\"name\":\"Late\",\"num_blocks\":8,\"block_size\":512}}");
	assert_true(run_until(fx->loop, peer_has_line, &b, 2000));
	assert_true(run_until(fx->loop, peer_has_line, &a, 2000));
	r = peer_reply(&a);
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 7);
	assert_int_equal(json_array_size(json_object_get(r, "result")), 1);
	json_decref(r);
	/* A bdev that never comes: the error arrives at the deadline, not before. */
	t0 = vh_now_ns();
	peer_send(&a, "{\"jsonrpc\":\"2.0\",\"method\":\"bdev_get_bdevs\",\"id\":8,"
	              "\"params\":{\"name\":\"Never\",\"timeout\":100}}");
	assert_true(run_until(fx->loop, peer_has_line, &a, 3000));
	assert_true(vh_now_ns() - t0 >= 100000000ull);
	r = peer_reply(&a);
	assert_int_equal(reply_code(r), VH_RPC_INVALID_PARAMS);
	json_decref(r);
	close(a.fd);
	close(b.fd);
	stub_reset();
}

static void
test_server_stale_and_busy(void **state)
{
	struct srv_fixture *fx = *state;
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	char path[100];
	int fd;

	/* A live server at the path is not replaced. */
	snprintf(path, sizeof(path), "%s", fx->path);
	vh_rpc_server_stop();
	assert_int_equal(access(path, F_OK), -1); /* stop unlinks */
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(vh_rpc_server_start(path, (gid_t)-1), -EADDRINUSE);
	/* Once nobody listens, the leftover socket is stale and replaced. */
	close(fd);
	assert_int_equal(vh_rpc_server_start(path, (gid_t)-1), 0);
	vh_rpc_server_stop();
	/* Not a socket: left alone. */
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(vh_rpc_server_start(path, (gid_t)-1), -EEXIST);
	unlink(path);
	assert_int_equal(vh_rpc_server_start(path, (gid_t)-1), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_framer_basic),
	        cmocka_unit_test(test_framer_incremental),
	        cmocka_unit_test(test_framer_errors),
	        cmocka_unit_test(test_framer_shift),
	        cmocka_unit_test(test_stream_no_delimiter),
	        cmocka_unit_test(test_stream_split_reads),
	        cmocka_unit_test(test_stream_two_in_one),
	        cmocka_unit_test(test_stream_parse_error_recovers),
	        cmocka_unit_test(test_stream_garbage_closes),
	        cmocka_unit_test(test_stream_size_limit),
	        cmocka_unit_test(test_stream_feed_cap),
	        cmocka_unit_test(test_stream_depth),
	        cmocka_unit_test(test_stream_backpressure),
	        cmocka_unit_test(test_stream_wait),
	        cmocka_unit_test_setup_teardown(test_server_socket_mode, srv_setup, srv_teardown),
	        cmocka_unit_test_setup_teardown(test_server_request_reply, srv_setup, srv_teardown),
	        cmocka_unit_test_setup_teardown(test_server_slow_client, srv_setup, srv_teardown),
	        cmocka_unit_test_setup_teardown(test_server_oversize, srv_setup, srv_teardown),
	        cmocka_unit_test_setup_teardown(test_server_client_limit, srv_setup, srv_teardown),
	        cmocka_unit_test_setup_teardown(test_server_pipelined, srv_setup, srv_teardown),
	        cmocka_unit_test_setup_teardown(test_server_wait_other_client, srv_setup,
	                                        srv_teardown),
	        cmocka_unit_test_setup_teardown(test_server_stale_and_busy, srv_setup,
	                                        srv_teardown),
	};

	vh_log_set_level(VH_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
