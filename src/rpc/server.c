/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The JSON-RPC server: a UNIX listening socket on the control loop, non-blocking clients with
 * their own input and output buffers, and the framing that cuts requests out of a byte stream.
 *
 * Security: any local process allowed to open the socket (mode 0600, or 0660 with a group) can
 * send anything, slowly or fast. Each client is bounded: one request (or batch) of at most
 * VH_RPC_MAX_REQUEST bytes and VH_RPC_MAX_DEPTH nesting; we stop reading it while more than
 * VH_RPC_OUT_HIGH_WATER bytes of its replies wait; it must finish a started request within
 * VH_RPC_REQUEST_TIMEOUT_NS. Nothing blocks: a client trickling one byte per second costs one
 * read and a few scanned bytes per second, and never delays another client.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/evloop.h"
#include "core/handover.h"
#include "core/log.h"
#include "rpc/rpc.h"
#include "rpc/rpc_internal.h"

/* ---- framing ---- */

void
vh_rpc_framer_reset(struct vh_rpc_framer *f)
{
	memset(f, 0, sizeof(*f));
}

static bool
is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Scan one byte inside a value. Returns 1 when it closed the value, 0 to go on, or -errno. */
static int
scan_byte(struct vh_rpc_framer *f, char c)
{
	if (f->in_str) {
		if (f->esc) {
			f->esc = false;
		} else if (c == '\\') {
			f->esc = true;
		} else if (c == '"') {
			f->in_str = false;
		}
		return 0;
	}
	switch (c) {
	case '"':
		f->in_str = true;
		return 0;
	case '{':
	case '[':
		if (++f->depth > VH_RPC_MAX_DEPTH) {
			return -ERANGE;
		}
		return 0;
	case '}':
	case ']':
		/* depth >= 1 here: the value started with an opening bracket. */
		return --f->depth == 0 ? 1 : 0;
	default:
		return 0;
	}
}

int
vh_rpc_framer_next(struct vh_rpc_framer *f, const char *buf, size_t len, size_t *start, size_t *end)
{
	while (f->pos < len) {
		char c = buf[f->pos];
		int rc;

		if (!f->started) {
			if (is_ws(c)) {
				f->pos++;
				continue;
			}
			if (c != '{' && c != '[') {
				return -EBADMSG;
			}
			f->started = true;
			f->start = f->pos;
		}
		rc = scan_byte(f, c);
		f->pos++;
		if (rc < 0) {
			return rc;
		}
		if (f->pos - f->start > VH_RPC_MAX_REQUEST) {
			return -EMSGSIZE;
		}
		if (rc == 1) {
			*start = f->start;
			*end = f->pos;
			f->started = false;
			return 1;
		}
	}
	return 0;
}

size_t
vh_rpc_framer_consumed(const struct vh_rpc_framer *f)
{
	return f->started ? f->start : f->pos;
}

void
vh_rpc_framer_shift(struct vh_rpc_framer *f, size_t n)
{
	f->pos -= n;
	if (f->started) {
		f->start -= n;
	}
}

bool
vh_rpc_framer_partial(const struct vh_rpc_framer *f)
{
	return f->started;
}

/* ---- per-client protocol stream (no sockets) ---- */

static int
buf_append(struct vh_rpc_buf *b, const void *data, size_t len)
{
	if (len > b->cap - b->len) {
		size_t cap = b->cap != 0 ? b->cap : 4096;
		char *p;

		while (cap - b->len < len) {
			cap *= 2;
		}
		p = realloc(b->data, cap);
		if (p == NULL) {
			return -ENOMEM;
		}
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

void
vh_rpc_stream_init(struct vh_rpc_stream *s)
{
	memset(s, 0, sizeof(*s));
}

void
vh_rpc_stream_fini(struct vh_rpc_stream *s)
{
	json_decref(s->waiting);
	free(s->in.data);
	free(s->out.data);
	memset(s, 0, sizeof(*s));
}

int
vh_rpc_stream_feed(struct vh_rpc_stream *s, const void *data, size_t len)
{
	if (s->in.len + len > VH_RPC_MAX_REQUEST + VH_RPC_READ_CHUNK) {
		return -EMSGSIZE;
	}
	return buf_append(&s->in, data, len);
}

size_t
vh_rpc_stream_out_pending(const struct vh_rpc_stream *s)
{
	return s->out.len - s->out_off;
}

void
vh_rpc_stream_out_consume(struct vh_rpc_stream *s, size_t n)
{
	s->out_off += n;
	if (s->out_off == s->out.len) {
		s->out_off = 0;
		s->out.len = 0;
	} else if (s->out_off > s->out.cap / 2) {
		/* Keep the buffer from creeping: slide the unsent tail to the front. */
		memmove(s->out.data, s->out.data + s->out_off, s->out.len - s->out_off);
		s->out.len -= s->out_off;
		s->out_off = 0;
	}
}

static int
queue_json(struct vh_rpc_stream *s, const json_t *reply)
{
	char *text = json_dumps(reply, JSON_COMPACT);
	int rc;

	if (text == NULL) {
		return -ENOMEM;
	}
	/* One reply per line: rpc.py parses incrementally, line-oriented clients read lines. */
	rc = buf_append(&s->out, text, strlen(text));
	if (rc == 0) {
		rc = buf_append(&s->out, "\n", 1);
	}
	free(text);
	return rc;
}

int
vh_rpc_stream_queue_error(struct vh_rpc_stream *s, int code, const char *msg)
{
	struct vh_rpc_error err;
	json_t *reply;
	int rc;

	vh_rpc_error_set(&err, code, "%s", msg);
	reply = vh_rpc_error_reply(NULL, &err);
	if (reply == NULL) {
		return -ENOMEM;
	}
	rc = queue_json(s, reply);
	json_decref(reply);
	return rc;
}

static void
framing_error(struct vh_rpc_stream *s, int rc)
{
	char msg[128];

	switch (rc) {
	case -EMSGSIZE:
		snprintf(msg, sizeof(msg), "request exceeds %u bytes", VH_RPC_MAX_REQUEST);
		vh_rpc_stream_queue_error(s, VH_RPC_INVALID_REQUEST, msg);
		break;
	case -ERANGE:
		snprintf(msg, sizeof(msg), "parse error: nesting deeper than %d", VH_RPC_MAX_DEPTH);
		vh_rpc_stream_queue_error(s, VH_RPC_PARSE_ERROR, msg);
		break;
	default:
		vh_rpc_stream_queue_error(s, VH_RPC_PARSE_ERROR,
		                          "parse error: expected a JSON object or array");
		break;
	}
	s->close_after_flush = true;
}

static void
queue_reply(struct vh_rpc_stream *s, json_t *reply)
{
	if (reply != NULL) {
		if (queue_json(s, reply) < 0) {
			VH_ERR("rpc", "out of memory queueing a reply; closing the client");
			s->close_after_flush = true;
		}
		json_decref(reply);
	}
}

/* Run @msg (first run at @since_ns). Returns false if it waits: then s->waiting holds it. */
static bool
run_msg(struct vh_rpc_stream *s, json_t *msg, uint64_t since_ns)
{
	bool waiting = false;
	uint64_t until = 0;
	json_t *reply = vh_rpc_handle_wait(msg, since_ns, &waiting, &until);

	if (waiting) {
		if (s->waiting != msg) {
			s->waiting = json_incref(msg);
			s->wait_since_ns = since_ns;
		}
		s->wait_until_ns = until;
		return false;
	}
	if (s->waiting == msg) {
		s->waiting = NULL;
		json_decref(msg);
	}
	queue_reply(s, reply);
	return true;
}

/* Parse and answer one framed message. Returns false if it waits. */
static bool
handle_text(struct vh_rpc_stream *s, const char *text, size_t len)
{
	json_error_t jerr;
	json_t *msg;
	bool done;

	msg = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	s->requests++;
	if (msg == NULL) {
		char m[200];

		/* The framer found its end, so the stream stays in sync: answer and go on. */
		snprintf(m, sizeof(m), "parse error: %s (column %d)", jerr.text, jerr.column);
		vh_rpc_stream_queue_error(s, VH_RPC_PARSE_ERROR, m);
		return true;
	}
	done = run_msg(s, msg, vh_now_ns());
	json_decref(msg);
	return done;
}

unsigned
vh_rpc_stream_process(struct vh_rpc_stream *s)
{
	unsigned handled = 0;
	size_t consumed;

	/* A waiting request goes first: the requests behind it must not overtake it. */
	if (s->waiting != NULL) {
		if (s->close_after_flush || !run_msg(s, s->waiting, s->wait_since_ns)) {
			return 0;
		}
		handled++;
	}
	while (!s->close_after_flush && s->waiting == NULL &&
	       vh_rpc_stream_out_pending(s) <= VH_RPC_OUT_HIGH_WATER) {
		size_t start, end;
		int rc = vh_rpc_framer_next(&s->fr, s->in.data, s->in.len, &start, &end);

		if (rc == 0) {
			break;
		}
		if (rc < 0) {
			framing_error(s, rc);
			break;
		}
		if (handle_text(s, s->in.data + start, end - start)) {
			handled++;
		}
	}
	consumed = vh_rpc_framer_consumed(&s->fr);
	if (consumed > 0) {
		memmove(s->in.data, s->in.data + consumed, s->in.len - consumed);
		s->in.len -= consumed;
		vh_rpc_framer_shift(&s->fr, consumed);
	}
	return handled;
}

/* ---- sockets ---- */

struct client {
	int fd;
	struct vh_evsource *src;
	uint32_t events; /* currently watched */
	struct vh_rpc_stream st;
	bool eof;                       /* peer shut down its write side */
	uint64_t last_io_ns;            /* last byte received or sent */
	uint64_t partial_ns;            /* when the current partial request started, 0 if none */
	uint64_t blocked_ns;            /* when output started waiting on the peer, 0 if not */
	struct vh_evsource *wait_timer; /* runs a waiting request again at its deadline */
	uint64_t wait_timer_ns;         /* the deadline it is armed for */
	struct client *prev, *next;
};

static struct {
	int fd;
	struct vh_evsource *src;
	struct vh_evsource *sweep;   /* timeout timer, armed while clients exist */
	struct vh_evsource *backoff; /* re-enables accept after EMFILE */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct client *clients;
	unsigned nclients;
	char rbuf[VH_RPC_READ_CHUNK];
} g_srv = {.fd = -1};

static void client_event(void *arg, uint32_t events);

static void
client_close(struct client *c, const char *why)
{
	VH_DEBUG("rpc", "client fd %d closed: %s", c->fd, why);
	if (c->wait_timer != NULL) {
		vh_evloop_del(c->wait_timer);
	}
	vh_evloop_del(c->src);
	close(c->fd);
	if (c->prev != NULL) {
		c->prev->next = c->next;
	} else {
		g_srv.clients = c->next;
	}
	if (c->next != NULL) {
		c->next->prev = c->prev;
	}
	g_srv.nclients--;
	vh_rpc_stream_fini(&c->st);
	free(c);
}

/* Send what we can. Returns 0, or -errno when the client is gone. */
static int
client_flush(struct client *c)
{
	while (vh_rpc_stream_out_pending(&c->st) > 0) {
		ssize_t n = send(c->fd, c->st.out.data + c->st.out_off,
		                 vh_rpc_stream_out_pending(&c->st), MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (c->blocked_ns == 0) {
					c->blocked_ns = vh_now_ns();
				}
				return 0;
			}
			return -errno;
		}
		vh_rpc_stream_out_consume(&c->st, (size_t)n);
		c->last_io_ns = vh_now_ns();
		c->blocked_ns = 0;
	}
	c->blocked_ns = 0;
	return 0;
}

static void wait_timer_cb(void *arg, uint32_t events);

/* Keep a timer at the deadline of the client's waiting request, and none without one. */
static void
client_arm_wait(struct client *c)
{
	uint64_t now = vh_now_ns(), until = c->st.wait_until_ns;

	if (c->wait_timer != NULL && (c->st.waiting == NULL || c->wait_timer_ns != until)) {
		vh_evloop_del(c->wait_timer);
		c->wait_timer = NULL;
	}
	if (c->st.waiting == NULL || c->wait_timer != NULL) {
		return;
	}
	c->wait_timer =
	        vh_evloop_timer(vh_evloop_main(), until > now ? until - now : 1, wait_timer_cb, c);
	c->wait_timer_ns = until;
	if (c->wait_timer == NULL) {
		/* The sweep runs it again within a second instead. */
		VH_WARN("rpc", "cannot arm a wait timer: %s", strerror(errno));
	}
}

/*
 * Decide what to wait for: input while we are willing to parse more, output while replies wait.
 * Returns false if the client was closed.
 */
static bool
client_update(struct client *c)
{
	size_t pending = vh_rpc_stream_out_pending(&c->st);
	uint32_t ev = 0;

	if (pending == 0 && (c->st.close_after_flush || c->eof)) {
		client_close(c, c->eof ? "end of stream" : "protocol error");
		return false;
	}
	if (!c->st.close_after_flush && !c->eof && pending <= VH_RPC_OUT_HIGH_WATER) {
		ev |= EPOLLIN;
	}
	if (pending > 0) {
		ev |= EPOLLOUT;
	}
	if (ev != c->events) {
		if (vh_evloop_mod(c->src, ev) < 0) {
			client_close(c, "epoll_ctl failed");
			return false;
		}
		c->events = ev;
	}
	client_arm_wait(c);
	return true;
}

static void
client_read(struct client *c)
{
	ssize_t n = recv(c->fd, g_srv.rbuf, sizeof(g_srv.rbuf), MSG_DONTWAIT);
	int rc;

	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
			return;
		}
		c->eof = true;
		c->st.close_after_flush = true;
		return;
	}
	if (n == 0) {
		c->eof = true;
		return;
	}
	c->last_io_ns = vh_now_ns();
	rc = vh_rpc_stream_feed(&c->st, g_srv.rbuf, (size_t)n);
	if (rc < 0) {
		char msg[96];

		snprintf(msg, sizeof(msg), "request exceeds %u bytes", VH_RPC_MAX_REQUEST);
		vh_rpc_stream_queue_error(&c->st, VH_RPC_INVALID_REQUEST, msg);
		c->st.close_after_flush = true;
	}
}

/*
 * Answer what the input holds and send, as long as the client keeps reading: processing stops
 * at the output high-water mark, and a flush that empties the output lets it continue (input
 * already buffered would not raise another EPOLLIN). Returns 0, or -EPIPE if the client is gone.
 */
static int
client_pump(struct client *c)
{
	unsigned handled;

	do {
		handled = vh_rpc_stream_process(&c->st);
		/* The request timer runs from the start of the request now partially received. */
		if (!vh_rpc_framer_partial(&c->st.fr)) {
			c->partial_ns = 0;
		} else if (c->partial_ns == 0 || handled > 0) {
			c->partial_ns = vh_now_ns();
		}
		if (client_flush(c) < 0) {
			return -EPIPE;
		}
	} while (handled > 0 && !c->st.close_after_flush && c->st.in.len > 0 &&
	         vh_rpc_stream_out_pending(&c->st) <= VH_RPC_OUT_HIGH_WATER);
	return 0;
}

/* Run @c's waiting request again (and what queued behind it); false if @c was closed. */
static bool
client_retry(struct client *c)
{
	if (client_pump(c) < 0) {
		client_close(c, "write failed");
		return false;
	}
	return client_update(c);
}

/*
 * Another client's request may have made what a waiting request waits for (a new bdev): run
 * the waiting requests again. Their own requests wake nobody here, so this never recurses; what
 * they make is seen by the others at the next request or deadline.
 */
static void
wake_waiters(const struct client *except)
{
	for (struct client *c = g_srv.clients, *next; c != NULL; c = next) {
		next = c->next;
		if (c != except && c->st.waiting != NULL) {
			client_retry(c);
		}
	}
}

void
vh_rpc_server_wake(void)
{
	wake_waiters(NULL);
}

static void
wait_timer_cb(void *arg, uint32_t events)
{
	struct client *c = arg;

	c->wait_timer = NULL; /* the loop retired the one-shot timer */
	client_retry(c);
}

static void
client_event(void *arg, uint32_t events)
{
	struct client *c = arg;
	uint64_t before = c->st.requests;

	if (events & EPOLLIN) {
		client_read(c);
	} else if (events & (EPOLLHUP | EPOLLERR)) {
		client_close(c, "hang-up");
		return;
	}
	if (client_pump(c) < 0) {
		client_close(c, "write failed");
		c = NULL;
	} else if (!client_update(c)) {
		c = NULL;
	}
	if (g_srv.clients != NULL && (c == NULL || c->st.requests != before)) {
		wake_waiters(c);
	}
}

static void sweep_cb(void *arg, uint32_t events);

static void
sweep_arm(void)
{
	if (g_srv.sweep == NULL && g_srv.clients != NULL) {
		g_srv.sweep = vh_evloop_timer(vh_evloop_main(), VH_RPC_SWEEP_NS, sweep_cb, NULL);
		if (g_srv.sweep == NULL) {
			VH_WARN("rpc", "cannot arm the client timeout timer: %s", strerror(errno));
		}
	}
}

static void
sweep_cb(void *arg, uint32_t events)
{
	uint64_t now = vh_now_ns();
	struct client *c, *next;

	g_srv.sweep = NULL; /* the loop retired the one-shot timer */
	for (c = g_srv.clients; c != NULL; c = next) {
		next = c->next;
		if (c->blocked_ns != 0 && now - c->blocked_ns > VH_RPC_WRITE_TIMEOUT_NS) {
			client_close(c, "not reading its replies");
		} else if (c->partial_ns != 0 && now - c->partial_ns > VH_RPC_REQUEST_TIMEOUT_NS) {
			vh_rpc_stream_queue_error(&c->st, VH_RPC_INVALID_REQUEST,
			                          "request not completed in time");
			c->st.close_after_flush = true;
			c->partial_ns = 0;
			if (client_flush(c) < 0) {
				client_close(c, "write failed");
			} else {
				client_update(c);
			}
		} else if (c->st.waiting != NULL) {
			client_retry(c); /* a waiting request is not idle */
		} else if (vh_rpc_stream_out_pending(&c->st) == 0 && c->partial_ns == 0 &&
		           now - c->last_io_ns > VH_RPC_IDLE_TIMEOUT_NS) {
			client_close(c, "idle");
		}
	}
	sweep_arm();
}

/* Over the client limit: say so and close. Best effort; the reply fits any socket buffer. */
static void
refuse_client(int fd)
{
	struct vh_rpc_stream st;
	char msg[96];

	vh_rpc_stream_init(&st);
	snprintf(msg, sizeof(msg), "too many clients (limit %d)", VH_RPC_MAX_CLIENTS);
	if (vh_rpc_stream_queue_error(&st, VH_RPC_INTERNAL_ERROR, msg) == 0) {
		if (send(fd, st.out.data, st.out.len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			/* The peer is gone or its buffer is full: it sees the close. */
		}
	}
	vh_rpc_stream_fini(&st);
	close(fd);
}

static void
add_client(int fd)
{
	struct client *c;

	if (g_srv.nclients >= VH_RPC_MAX_CLIENTS) {
		VH_LOG_RL(VH_LOG_WARN, "rpc", "refusing a client: %d already connected",
		          VH_RPC_MAX_CLIENTS);
		refuse_client(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->last_io_ns = vh_now_ns();
	vh_rpc_stream_init(&c->st);
	c->events = EPOLLIN;
	c->src = vh_evloop_add(vh_evloop_main(), fd, c->events, client_event, c);
	if (c->src == NULL) {
		VH_WARN("rpc", "cannot watch a client: %s", strerror(errno));
		free(c);
		close(fd);
		return;
	}
	c->next = g_srv.clients;
	if (c->next != NULL) {
		c->next->prev = c;
	}
	g_srv.clients = c;
	g_srv.nclients++;
	sweep_arm();
}

static void
backoff_done(void *arg, uint32_t events)
{
	g_srv.backoff = NULL;
	if (g_srv.src != NULL) {
		vh_evloop_mod(g_srv.src, EPOLLIN);
	}
}

static void
accept_event(void *arg, uint32_t events)
{
	/* Bounded so a connect storm cannot monopolise the control thread. */
	for (int i = 0; i < 32; i++) {
		int fd = accept4(g_srv.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			add_client(fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED) {
			continue;
		}
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/*
			 * Out of descriptors: the pending connection keeps the socket readable,
			 * so stop watching it for a moment instead of spinning.
			 */
			VH_LOG_RL(VH_LOG_WARN, "rpc", "accept: %s; pausing 100 ms",
			          strerror(errno));
			if (g_srv.backoff == NULL && vh_evloop_mod(g_srv.src, 0) == 0) {
				g_srv.backoff = vh_evloop_timer(vh_evloop_main(), 100000000ull,
				                                backoff_done, NULL);
				if (g_srv.backoff == NULL) {
					vh_evloop_mod(g_srv.src, EPOLLIN);
				}
			}
		}
		return;
	}
}

/*
 * Remove a leftover socket at @path (a crashed instance's). A live server there is not ours to
 * replace, and neither is anything that is not a socket.
 */
static int
remove_stale(const char *path)
{
	int rc = vh_unix_unlink_stale(path);

	if (rc == -EEXIST) {
		VH_ERR("rpc", "%s exists and is not a socket; not replacing it", path);
	} else if (rc == -EADDRINUSE) {
		VH_ERR("rpc", "%s is in use: a server is listening there", path);
	} else if (rc == 1) {
		VH_INFO("rpc", "replaced stale socket %s", path);
	}
	return rc < 0 ? rc : 0;
}

static int
bind_socket(int fd, const char *path, const struct sockaddr_un *addr, gid_t group)
{
	mode_t old;
	int rc = 0;

	/*
	 * Create it owner-only from the start: no window where others may connect. umask is
	 * process-wide, but only the control thread creates files, and this is it.
	 */
	old = umask(0177);
	if (bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0) {
		rc = -errno;
	}
	umask(old);
	if (rc < 0) {
		return rc;
	}
	if (group != (gid_t)-1) {
		if (chown(path, (uid_t)-1, group) < 0 || chmod(path, 0660) < 0) {
			rc = -errno;
			unlink(path);
			return rc;
		}
	}
	return 0;
}

int
vh_rpc_server_start(const char *path, gid_t group)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	char key[VH_HANDOVER_KEY_MAX];
	int fd, rc;

	if (g_srv.fd >= 0) {
		return -EALREADY;
	}
	if (vh_evloop_main() == NULL) {
		return -ENODEV;
	}
	rc = vh_strlcpy_checked(addr.sun_path, path, sizeof(addr.sun_path));
	if (rc < 0) {
		VH_ERR("rpc", "socket path %s is too long (limit %zu bytes)", path,
		       sizeof(addr.sun_path) - 1);
		return rc;
	}
	snprintf(key, sizeof(key), "sock:%s", path);
	fd = vh_handover_take(key);
	if (fd >= 0) {
		/* Kept bound by the supervisor while we were down: clients waited in its backlog.
		 */
		if (vh_fd_set_nonblock(fd) < 0) {
			close(fd);
			return -EBADF;
		}
		goto listening;
	}
	rc = remove_stale(path);
	if (rc < 0) {
		return rc;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	rc = bind_socket(fd, path, &addr, group);
	if (rc < 0) {
		VH_ERR("rpc", "bind %s: %s", path, strerror(-rc));
		goto out_close;
	}
	if (listen(fd, 128) < 0) {
		rc = -errno;
		goto out_unlink;
	}
	if (vh_handover_keep(key, fd) < 0) {
		VH_WARN("rpc", "supervisor cannot keep %s: it closes while the worker restarts",
		        path);
	}
listening:
	g_srv.src = vh_evloop_add(vh_evloop_main(), fd, EPOLLIN, accept_event, NULL);
	if (g_srv.src == NULL) {
		rc = -errno;
		goto out_unlink;
	}
	g_srv.fd = fd;
	memcpy(g_srv.path, addr.sun_path, sizeof(g_srv.path));
	VH_NOTICE("rpc", "listening on %s", path);
	return 0;

out_unlink:
	unlink(path);
out_close:
	close(fd);
	return rc;
}

void
vh_rpc_server_pause_accept(void)
{
	/* The socket stays bound: the supervisor and the new worker hold it too. */
	vh_evloop_del(g_srv.backoff);
	g_srv.backoff = NULL;
	if (g_srv.src != NULL) {
		vh_evloop_del(g_srv.src);
		g_srv.src = NULL;
	}
}

void
vh_rpc_server_stop(void)
{
	while (g_srv.clients != NULL) {
		client_close(g_srv.clients, "server stopping");
	}
	vh_evloop_del(g_srv.sweep);
	g_srv.sweep = NULL;
	vh_evloop_del(g_srv.backoff);
	g_srv.backoff = NULL;
	if (g_srv.fd < 0) {
		return;
	}
	vh_evloop_del(g_srv.src);
	g_srv.src = NULL;
	close(g_srv.fd);
	g_srv.fd = -1;
	unlink(g_srv.path);
}
