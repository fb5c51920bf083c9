/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/vhost/msg.c: the message table's validation and a few handlers. A session is created with
 * vh_session_new() on one end of a socketpair (the other end plays the front-end); messages are
 * placed in s->msg by hand and run through vh_msg_dispatch(), as socket.c does after framing.
 * A closing session is freed by a control-thread message, so the test owns an evloop and pumps
 * it once to let the close finish.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "bdev/bdev_module.h"
#include "guest.h"
#include "vhost/blk.h"

#define NQUEUES 2

struct fix {
	struct vh_vhost_ctrlr *c;
	struct vh_blk_ctrlr *b; /* c->dev */
	struct vh_session *s;
	int peer;
	bool freed;
};

static struct vh_evloop *g_loop;

static int
group_setup(void **state)
{
	(void)state;
	g_loop = vh_evloop_create();
	if (g_loop == NULL || vh_bdev_null_create("null0", 1024, 512) != 0) {
		return -1;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	vh_evloop_destroy(g_loop);
	vh_bdev_fini();
	return 0;
}

static void
stop_loop(void *arg)
{
	(void)arg;
	vh_evloop_stop(g_loop);
}

/* Let queued control messages (the session free) run. */
static void
pump(void)
{
	assert_int_equal(vh_control_send(stop_loop, NULL), 0);
	assert_int_equal(vh_evloop_run(g_loop), 0);
}

static int
setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	int sv[2];

	if (f == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		return -1;
	}
	f->c = calloc(1, sizeof(*f->c));
	snprintf(f->c->name, sizeof(f->c->name), "ctl0");
	f->b = calloc(1, sizeof(*f->b));
	memcpy(f->b->serial, "ctl0", 4);
	f->b->bdev = vh_bdev_find("null0");
	f->c->dev = f->b;
	f->c->ops = &vh_blk_ops;
	f->c->num_queues = NQUEUES;
	f->c->cpumask = 1;
	f->c->listen_fd = -1;
	f->s = vh_session_new(f->c, sv[0]);
	if (f->s == NULL || f->c->sessions[0] != f->s || f->s->nvqs != NQUEUES) {
		return -1;
	}
	f->peer = sv[1];
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;

	if (f->c->sessions[0] != NULL) {
		vh_session_close(f->s, "test over");
		pump();
	}
	close(f->peer);
	free(f->b);
	free(f->c);
	free(f);
	return 0;
}

/* Run one message through the table, then close the fds nobody took (as socket.c does). */
static void
dispatch_fds(struct fix *f, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
             const int *fds, unsigned nfds)
{
	struct vh_session *s = f->s;

	memset(&s->msg, 0, sizeof(s->msg));
	s->msg.request = req;
	s->msg.flags = flags;
	s->msg.size = size;
	if (payload != NULL) {
		memcpy(&s->msg.payload, payload, VH_MIN(size, (uint32_t)sizeof(s->msg.payload)));
	}
	for (unsigned i = 0; i < nfds; i++) {
		s->fds[i] = fds[i];
	}
	s->nfds = nfds;
	vh_msg_dispatch(s);
	for (unsigned i = 0; i < s->nfds; i++) {
		if (s->fds[i] >= 0) {
			close(s->fds[i]);
		}
		s->fds[i] = -1;
	}
	s->nfds = 0;
	s->fd_overflow = false;
}

static void
dispatch(struct fix *f, uint32_t req, uint32_t flags, const void *payload, uint32_t size)
{
	dispatch_fds(f, req, flags, payload, size, NULL, 0);
}

static void
dispatch_u64(struct fix *f, uint32_t req, uint32_t flags, uint64_t v)
{
	dispatch(f, req, flags, &v, sizeof(v));
}

static void
dispatch_state(struct fix *f, uint32_t req, uint32_t flags, uint32_t index, uint32_t num)
{
	struct vhost_vring_state st = {.index = index, .num = num};

	dispatch(f, req, flags, &st, sizeof(st));
}

struct reply {
	uint32_t request, flags, size;
	uint8_t payload[512];
};

/* Read one reply if there is one. Returns false if nothing was sent. */
static bool
get_reply(struct fix *f, struct reply *r)
{
	uint8_t buf[12 + 512];
	ssize_t n = recv(f->peer, buf, sizeof(buf), MSG_DONTWAIT);

	if (n < 0) {
		assert_int_equal(errno, EAGAIN);
		return false;
	}
	assert_true(n >= 12);
	memcpy(&r->request, buf, 4);
	memcpy(&r->flags, buf + 4, 4);
	memcpy(&r->size, buf + 8, 4);
	assert_int_equal((size_t)n, 12 + r->size);
	memcpy(r->payload, buf + 12, r->size);
	return true;
}

static void
expect_no_reply(struct fix *f)
{
	struct reply r;

	assert_false(get_reply(f, &r));
}

static uint64_t
expect_u64_reply(struct fix *f, uint32_t req)
{
	struct reply r;
	uint64_t v;

	assert_true(get_reply(f, &r));
	assert_int_equal(r.request, req);
	assert_int_equal(r.flags, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK); /* 0x5 */
	assert_int_equal(r.size, 8);
	memcpy(&v, r.payload, 8);
	expect_no_reply(f);
	return v;
}

static void
expect_open(struct fix *f)
{
	assert_false(f->s->closing);
}

/* The session is closing; after the free runs the front-end sees EOF. */
static void
expect_closed(struct fix *f)
{
	char b;

	assert_true(f->s->closing);
	expect_no_reply(f);
	pump();
	assert_null(f->c->sessions[0]);
	assert_int_equal(recv(f->peer, &b, 1, MSG_DONTWAIT), 0);
}

#define V  VHOST_USER_VERSION
#define NR VHOST_USER_NEED_REPLY

static void
enable_reply_ack(struct fix *f)
{
	dispatch_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES, V,
	             1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK);
	expect_no_reply(f);
	expect_open(f);
}

static void
set_owner(struct fix *f)
{
	dispatch(f, VHOST_USER_SET_OWNER, V, NULL, 0);
	expect_open(f);
}

/* What GET_FEATURES answers: the device's bits plus the ring and transport bits. */
static uint64_t
offered_features(struct fix *f)
{
	return vh_blk_ops.features(f->c) | (1ull << VIRTIO_RING_F_INDIRECT_DESC) |
	       (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_F_VERSION_1) |
	       (1ull << VHOST_USER_F_PROTOCOL_FEATURES) | (1ull << VHOST_F_LOG_ALL);
}

/* The device's config space as a front-end reads it. */
static void
blk_config(struct fix *f, struct virtio_blk_config *cfg)
{
	uint8_t raw[VHOST_USER_MAX_CONFIG_SIZE] = {0};

	vh_blk_ops.get_config(f->s, raw);
	memcpy(cfg, raw, sizeof(*cfg));
}

/* ---- replies ---- */

static void
test_get_replies(void **state)
{
	struct fix *f = *state;
	uint64_t pf;

	dispatch(f, VHOST_USER_GET_FEATURES, V, NULL, 0);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_GET_FEATURES), offered_features(f));
	dispatch(f, VHOST_USER_GET_PROTOCOL_FEATURES, V, NULL, 0);
	pf = expect_u64_reply(f, VHOST_USER_GET_PROTOCOL_FEATURES);
	/* What QEMU 7.2 needs (CONFIG is mandatory, MEM_SLOTS and REPLY_ACK are relied on)... */
	{
		const uint64_t need = (1ull << VHOST_USER_PROTOCOL_F_MQ) |
		                      (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |
		                      (1ull << VHOST_USER_PROTOCOL_F_BACKEND_REQ) |
		                      (1ull << VHOST_USER_PROTOCOL_F_CONFIG) |
		                      (1ull << VHOST_USER_PROTOCOL_F_RESET_DEVICE) |
		                      (1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) |
		                      (1ull << VHOST_USER_PROTOCOL_F_STATUS);
		const uint64_t may = need | (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD) |
		                     (1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD);

		assert_int_equal(pf & need, need);
		/* ...and nothing we have no handler for. Live migration needs LOG_SHMFD. */
		assert_int_equal(pf & ~may, 0);
		assert_true(pf & (1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD));
	}
	dispatch(f, VHOST_USER_GET_QUEUE_NUM, V, NULL, 0);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_GET_QUEUE_NUM), NQUEUES);
	dispatch(f, VHOST_USER_GET_MAX_MEM_SLOTS, V, NULL, 0);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_GET_MAX_MEM_SLOTS), 32);
	dispatch_u64(f, VHOST_USER_SET_STATUS, V, 0x0f);
	expect_no_reply(f);
	dispatch(f, VHOST_USER_GET_STATUS, V, NULL, 0);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_GET_STATUS), 0x0f);
	expect_open(f);
}

static void
test_reply_ack_only_with_need_reply(void **state)
{
	struct fix *f = *state;

	/* Not negotiated: NEED_REPLY is ignored. */
	dispatch(f, VHOST_USER_SET_OWNER, V | NR, NULL, 0);
	expect_no_reply(f);
	enable_reply_ack(f);
	dispatch(f, VHOST_USER_SET_OWNER, V, NULL, 0);
	expect_no_reply(f);
	dispatch(f, VHOST_USER_SET_OWNER, V | NR, NULL, 0);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_OWNER), 0);
	/* A failure with NEED_REPLY is acked as 1 and the session lives on. */
	dispatch_state(f, VHOST_USER_SET_VRING_NUM, V | NR, 0, 3);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_NUM), 1);
	expect_open(f);
	/* A GET_* message answers with its payload only, never an extra ack. */
	dispatch(f, VHOST_USER_GET_FEATURES, V | NR, NULL, 0);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_GET_FEATURES), offered_features(f));
	/* The same failure without NEED_REPLY closes the session. */
	dispatch_state(f, VHOST_USER_SET_VRING_NUM, V, 0, 3);
	expect_closed(f);
}

/* ---- framing checks ---- */

static void
test_bad_version_bits(void **state)
{
	struct fix *f = *state;

	dispatch(f, VHOST_USER_GET_FEATURES, 0, NULL, 0);
	expect_closed(f);
}

static void
test_bad_version_2(void **state)
{
	struct fix *f = *state;

	dispatch(f, VHOST_USER_GET_FEATURES, 2, NULL, 0);
	expect_closed(f);
}

static void
test_reply_bit_from_front_end(void **state)
{
	struct fix *f = *state;

	dispatch(f, VHOST_USER_GET_FEATURES, V | VHOST_USER_REPLY_MASK, NULL, 0);
	expect_closed(f);
}

static void
test_unknown_request_none(void **state)
{
	struct fix *f = *state;

	dispatch(f, VHOST_USER_NONE, V, NULL, 0);
	expect_closed(f);
}

static void
test_unknown_request_max(void **state)
{
	struct fix *f = *state;

	dispatch(f, VHOST_USER_MAX_REQUEST, V, NULL, 0);
	expect_closed(f);
}

static void
test_unknown_request_huge(void **state)
{
	struct fix *f = *state;

	dispatch(f, 0xffffffffu, V | NR, NULL, 0);
	expect_closed(f);
}

static void
test_unsupported_request_closes_its_fd(void **state)
{
	struct fix *f = *state;
	uint8_t payload[16] = {0};
	int efd = eventfd(0, EFD_CLOEXEC);

	/* SET_LOG_BASE: known, not offered. Its fd is not kept. */
	dispatch_fds(f, VHOST_USER_SET_LOG_BASE, V, payload, 16, &efd, 1);
	assert_int_equal(fcntl(efd, F_GETFD), -1);
	expect_closed(f);
	assert_string_equal(vh_msg_name(VHOST_USER_SET_LOG_BASE), "SET_LOG_BASE");
	assert_string_equal(vh_msg_name(VHOST_USER_GET_CONFIG), "GET_CONFIG");
	assert_string_equal(vh_msg_name(0), "UNKNOWN");
	assert_string_equal(vh_msg_name(41), "UNKNOWN");
	assert_string_equal(vh_msg_name(0x7fffffff), "UNKNOWN");
}

static void
test_wrong_payload_size_get(void **state)
{
	struct fix *f = *state;

	dispatch_u64(f, VHOST_USER_GET_FEATURES, V, 0);
	expect_closed(f);
}

static void
test_wrong_payload_size_set(void **state)
{
	struct fix *f = *state;
	uint32_t v = 0;

	enable_reply_ack(f);
	/* Even with REPLY_ACK negotiated, a framing error is not acked: it closes. */
	dispatch(f, VHOST_USER_SET_FEATURES, V | NR, &v, 4);
	expect_closed(f);
}

static void
test_wrong_payload_size_state(void **state)
{
	struct fix *f = *state;
	uint8_t p[16] = {0};

	set_owner(f);
	dispatch(f, VHOST_USER_SET_VRING_NUM, V, p, 16);
	expect_closed(f);
}

static void
test_wrong_payload_size_addr(void **state)
{
	struct fix *f = *state;
	uint8_t p[48] = {0};

	set_owner(f);
	dispatch(f, VHOST_USER_SET_VRING_ADDR, V, p, 32);
	expect_closed(f);
}

static void
test_fd_on_message_without_fds(void **state)
{
	struct fix *f = *state;
	uint64_t feat = 1ull << VIRTIO_F_VERSION_1;
	int efd = eventfd(0, EFD_CLOEXEC);

	dispatch_fds(f, VHOST_USER_SET_FEATURES, V, &feat, 8, &efd, 1);
	expect_closed(f);
	assert_false(f->c->sessions[0] != NULL);
}

static void
test_missing_fd(void **state)
{
	struct fix *f = *state;

	dispatch(f, VHOST_USER_SET_BACKEND_REQ_FD, V, NULL, 0);
	expect_closed(f);
}

static void
test_fd_overflow(void **state)
{
	struct fix *f = *state;
	int efd = eventfd(0, EFD_CLOEXEC);

	f->s->fd_overflow = true;
	dispatch_fds(f, VHOST_USER_SET_BACKEND_REQ_FD, V, NULL, 0, &efd, 1);
	expect_closed(f);
}

static void
test_backend_fd_taken(void **state)
{
	struct fix *f = *state;
	int sp[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	dispatch_fds(f, VHOST_USER_SET_BACKEND_REQ_FD, V, NULL, 0, &sp[0], 1);
	expect_open(f);
	assert_int_equal(f->s->backend_fd, sp[0]);
	assert_true(fcntl(sp[0], F_GETFD) >= 0);
	close(sp[1]);
}

/* We only send on the back-end channel: anything but a UNIX socket is refused (and closed). */
static void
test_backend_fd_not_a_socket(void **state)
{
	struct fix *f = *state;
	int efd = eventfd(0, EFD_CLOEXEC);

	enable_reply_ack(f);
	dispatch_fds(f, VHOST_USER_SET_BACKEND_REQ_FD, V | NR, NULL, 0, &efd, 1);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_BACKEND_REQ_FD), 1);
	assert_int_equal(f->s->backend_fd, -1);
	assert_true(fcntl(efd, F_GETFD) < 0 && errno == EBADF);
	expect_open(f);
}

/* ---- ownership and queue messages ---- */

/*
 * SET_OWNER is not required: QEMU 7.2 skips it when its reconnect races with the close of the
 * previous connection (docs/design.md, "A crash during live migration"), and closing the
 * session for it wedges that QEMU's disk.
 */
static void
test_vring_without_owner(void **state)
{
	struct fix *f = *state;

	enable_reply_ack(f);
	dispatch_state(f, VHOST_USER_SET_VRING_NUM, V | NR, 0, 128);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_NUM), 0);
	assert_int_equal(f->s->vqs[0].size, 128);
	expect_open(f);
}

/*
 * What QEMU 7.2 sends on that racy reconnect: SET_FEATURES acking PROTOCOL_FEATURES with no
 * protocol negotiation on this connection, then messages that rely on the earlier connection's
 * protocol features (NEED_REPLY here). We take our whole offer until told otherwise.
 */
static void
test_protocol_features_assumed(void **state)
{
	struct fix *f = *state;
	uint64_t feat = (1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES);

	dispatch_u64(f, VHOST_USER_SET_FEATURES, V, feat);
	expect_no_reply(f);
	expect_open(f);
	assert_true(f->s->protocol_features & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK));
	assert_true(f->s->protocol_features & (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD));
	dispatch_state(f, VHOST_USER_SET_VRING_NUM, V | NR, 0, 128);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_NUM), 0);
	/* A later SET_PROTOCOL_FEATURES (rust-vmm front-ends send it after SET_FEATURES) wins. */
	dispatch_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES, V, 1ull << VHOST_USER_PROTOCOL_F_MQ);
	expect_no_reply(f);
	assert_int_equal(f->s->protocol_features, 1ull << VHOST_USER_PROTOCOL_F_MQ);
	dispatch_state(f, VHOST_USER_SET_VRING_NUM, V | NR, 0, 64);
	expect_no_reply(f);
	/* Negotiated once on this connection: a repeated SET_FEATURES does not widen it. */
	dispatch_u64(f, VHOST_USER_SET_FEATURES, V, feat);
	assert_int_equal(f->s->protocol_features, 1ull << VHOST_USER_PROTOCOL_F_MQ);
	expect_open(f);
}

/* Without PROTOCOL_FEATURES acked there are no protocol features: NEED_REPLY is ignored. */
static void
test_no_protocol_features(void **state)
{
	struct fix *f = *state;

	dispatch_u64(f, VHOST_USER_SET_FEATURES, V, 1ull << VIRTIO_F_VERSION_1);
	assert_int_equal(f->s->protocol_features, 0);
	dispatch_state(f, VHOST_USER_SET_VRING_NUM, V | NR, 0, 128);
	expect_no_reply(f);
	expect_open(f);
}

/*
 * GET_VRING_BASE of a ring this connection never set up has no answer: a made-up 0 would
 * become QEMU's queue state (and the migration stream's). The session closes instead, so QEMU
 * takes the base from the used ring.
 */
static void
test_vring_base_never_set_up(void **state)
{
	struct fix *f = *state;

	set_owner(f);
	dispatch_state(f, VHOST_USER_SET_VRING_NUM, V, 0, 128);
	expect_no_reply(f);
	dispatch_state(f, VHOST_USER_GET_VRING_BASE, V, 0, 0);
	expect_closed(f);
}

static void
test_vring_num_sizes(void **state)
{
	struct fix *f = *state;
	static const uint32_t good[] = {1, 2, 256, 1024, 32768};
	static const uint32_t bad[] = {0, 3, 100, 32769, 65536, 0x80000000u, UINT32_MAX};

	enable_reply_ack(f);
	set_owner(f);
	for (size_t i = 0; i < VH_ARRAY_SIZE(good); i++) {
		dispatch_state(f, VHOST_USER_SET_VRING_NUM, V | NR, 1, good[i]);
		assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_NUM), 0);
		assert_int_equal(f->s->vqs[1].size, good[i]);
	}
	for (size_t i = 0; i < VH_ARRAY_SIZE(bad); i++) {
		dispatch_state(f, VHOST_USER_SET_VRING_NUM, V | NR, 1, bad[i]);
		if (expect_u64_reply(f, VHOST_USER_SET_VRING_NUM) != 1) {
			fail_msg("queue size %u accepted", bad[i]);
		}
		assert_int_equal(f->s->vqs[1].size, 32768);
	}
	expect_open(f);
}

static void
test_queue_index_out_of_range(void **state)
{
	struct fix *f = *state;
	struct vhost_vring_addr a = {.index = NQUEUES};

	enable_reply_ack(f);
	set_owner(f);
	dispatch_state(f, VHOST_USER_SET_VRING_NUM, V | NR, NQUEUES, 128);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_NUM), 1);
	dispatch_state(f, VHOST_USER_SET_VRING_NUM, V | NR, 0xffffffffu, 128);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_NUM), 1);
	dispatch_state(f, VHOST_USER_SET_VRING_BASE, V | NR, NQUEUES, 0);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_BASE), 1);
	dispatch_state(f, VHOST_USER_SET_VRING_ENABLE, V | NR, NQUEUES, 1);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_ENABLE), 1);
	dispatch(f, VHOST_USER_SET_VRING_ADDR, V | NR, &a, sizeof(a));
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_ADDR), 1);
	dispatch_u64(f, VHOST_USER_SET_VRING_CALL, V | NR, NQUEUES | VHOST_USER_VRING_NOFD);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_CALL), 1);
	dispatch_u64(f, VHOST_USER_SET_VRING_KICK, V | NR, 0xff | VHOST_USER_VRING_NOFD);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_KICK), 1);
	/* The last valid index works. */
	dispatch_state(f, VHOST_USER_SET_VRING_NUM, V | NR, NQUEUES - 1, 128);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_NUM), 0);
	expect_open(f);
	/* GET_VRING_BASE answers with its payload: a bad index closes. */
	dispatch_state(f, VHOST_USER_GET_VRING_BASE, V | NR, NQUEUES, 0);
	expect_closed(f);
}

static void
test_vring_state_messages(void **state)
{
	struct fix *f = *state;
	struct vhost_vring_addr a = {.index = 1,
	                             .desc_user_addr = 0x1000,
	                             .used_user_addr = 0x2000,
	                             .avail_user_addr = 0x3000};
	struct reply r;
	struct vhost_vring_state st;

	enable_reply_ack(f);
	set_owner(f);
	dispatch_state(f, VHOST_USER_SET_VRING_BASE, V | NR, 1, 0xffff);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_BASE), 0);
	dispatch_state(f, VHOST_USER_SET_VRING_BASE, V | NR, 1, 0x10000);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_BASE), 1);
	dispatch_state(f, VHOST_USER_GET_VRING_BASE, V, 1, 0);
	assert_true(get_reply(f, &r));
	assert_int_equal(r.request, VHOST_USER_GET_VRING_BASE);
	assert_int_equal(r.flags, 0x5);
	assert_int_equal(r.size, 8);
	memcpy(&st, r.payload, 8);
	assert_int_equal(st.index, 1);
	assert_int_equal(st.num, 0xffff);

	dispatch(f, VHOST_USER_SET_VRING_ADDR, V | NR, &a, sizeof(a));
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_ADDR), 0);
	assert_true(f->s->vqs[1].addr_set);
	assert_int_equal(f->s->vqs[1].addr.avail_user_addr, 0x3000);
	a.flags = 1; /* VHOST_VRING_F_LOG: live migration logs the used ring */
	dispatch(f, VHOST_USER_SET_VRING_ADDR, V | NR, &a, sizeof(a));
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_ADDR), 0);
	a.flags = 1u << 31; /* no other flag exists */
	dispatch(f, VHOST_USER_SET_VRING_ADDR, V | NR, &a, sizeof(a));
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_ADDR), 1);

	dispatch_state(f, VHOST_USER_SET_VRING_ENABLE, V | NR, 1, 1);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_ENABLE), 0);
	assert_true(f->s->vqs[1].enabled);
	dispatch_state(f, VHOST_USER_SET_VRING_ENABLE, V | NR, 1, 0);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_ENABLE), 0);
	assert_false(f->s->vqs[1].enabled);
	/* SPDK's virtio-user initiator sends the queue size as num: any non-zero value enables. */
	dispatch_state(f, VHOST_USER_SET_VRING_ENABLE, V | NR, 1, 256);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_ENABLE), 0);
	assert_true(f->s->vqs[1].enabled);
	expect_open(f);
}

static void
test_vring_fd_messages(void **state)
{
	struct fix *f = *state;
	int a = eventfd(0, EFD_CLOEXEC), b = eventfd(0, EFD_CLOEXEC), c = eventfd(0, EFD_CLOEXEC);

	enable_reply_ack(f);
	set_owner(f);
	/* CALL with an fd: kept. */
	dispatch_fds(f, VHOST_USER_SET_VRING_CALL, V | NR, &(uint64_t){1}, 8, &a, 1);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_CALL), 0);
	assert_int_equal(f->s->vqs[1].callfd, a);
	/* A new one replaces and closes the old one. */
	dispatch_fds(f, VHOST_USER_SET_VRING_CALL, V | NR, &(uint64_t){1}, 8, &b, 1);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_CALL), 0);
	assert_int_equal(f->s->vqs[1].callfd, b);
	assert_int_equal(fcntl(a, F_GETFD), -1);
	/* NOFD with no fd: -1. */
	dispatch_u64(f, VHOST_USER_SET_VRING_CALL, V | NR, 1 | VHOST_USER_VRING_NOFD);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_CALL), 0);
	assert_int_equal(f->s->vqs[1].callfd, -1);
	assert_int_equal(fcntl(b, F_GETFD), -1);
	/* NOFD but an fd attached, or no NOFD and no fd: refused (the fd is closed). */
	dispatch_fds(f, VHOST_USER_SET_VRING_ERR, V | NR, &(uint64_t){1 | VHOST_USER_VRING_NOFD}, 8,
	             &c, 1);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_ERR), 1);
	assert_int_equal(fcntl(c, F_GETFD), -1);
	dispatch_u64(f, VHOST_USER_SET_VRING_ERR, V | NR, 1);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_ERR), 1);
	/* Unknown bits above NOFD. */
	dispatch_u64(f, VHOST_USER_SET_VRING_ERR, V | NR, 0x200 | VHOST_USER_VRING_NOFD);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_ERR), 1);
	/* KICK with NOFD: marks the kick as set, and starts nothing without a memory table. */
	dispatch_u64(f, VHOST_USER_SET_VRING_KICK, V | NR, 0 | VHOST_USER_VRING_NOFD);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_KICK), 0);
	assert_true(f->s->vqs[0].kick_set);
	assert_false(f->s->vqs[0].started);
	expect_open(f);
}

/*
 * Call and kick fds must be eventfds: a pipe nobody drains (or a FUSE file the peer serves)
 * would block the reactor that writes or waits on it. Refused, closed, session kept.
 */
static void
test_vring_fd_not_eventfd(void **state)
{
	struct fix *f = *state;
	const uint32_t reqs[] = {VHOST_USER_SET_VRING_CALL, VHOST_USER_SET_VRING_KICK,
	                         VHOST_USER_SET_VRING_ERR};

	enable_reply_ack(f);
	set_owner(f);
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		int p[2], memfd = memfd_create("not-an-eventfd", MFD_CLOEXEC);

		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		assert_true(memfd >= 0);
		dispatch_fds(f, reqs[i], V | NR, &(uint64_t){1}, 8, &p[1], 1);
		assert_int_equal(expect_u64_reply(f, reqs[i]), 1);
		assert_int_equal(fcntl(p[1], F_GETFD), -1);
		dispatch_fds(f, reqs[i], V | NR, &(uint64_t){1}, 8, &memfd, 1);
		assert_int_equal(expect_u64_reply(f, reqs[i]), 1);
		assert_int_equal(fcntl(memfd, F_GETFD), -1);
		close(p[0]);
	}
	assert_int_equal(f->s->vqs[1].callfd, -1);
	assert_int_equal(f->s->vqs[1].kickfd, -1);
	assert_int_equal(f->s->vqs[1].errfd, -1);
	expect_open(f);
}

static void
test_features_negotiation(void **state)
{
	struct fix *f = *state;
	uint64_t offered = offered_features(f);

	enable_reply_ack(f);
	dispatch_u64(f, VHOST_USER_SET_FEATURES, V | NR, offered);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_FEATURES), 0);
	assert_int_equal(f->s->features, offered);
	dispatch_u64(f, VHOST_USER_SET_FEATURES, V | NR, offered | (1ull << VIRTIO_BLK_F_RO));
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_FEATURES), 1);
	dispatch_u64(f, VHOST_USER_SET_FEATURES, V | NR, offered & ~(1ull << VIRTIO_F_VERSION_1));
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_FEATURES), 1);
	assert_int_equal(f->s->features, offered);
	dispatch_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES, V | NR,
	             (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |
	                     (1ull << 11 /* HOST_NOTIFIER: not offered */));
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_PROTOCOL_FEATURES), 1);
	dispatch_u64(f, VHOST_USER_SET_STATUS, V | NR, 0x100);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_STATUS), 1);
	expect_open(f);
}

/* ---- config space ---- */

static void
get_config(struct fix *f, uint32_t offset, uint32_t size, uint32_t msg_size)
{
	union vhost_user_payload p = {.config = {.offset = offset, .size = size}};

	dispatch(f, VHOST_USER_GET_CONFIG, V, &p, msg_size);
}

static void
test_get_config_sizes(void **state)
{
	struct fix *f = *state;
	struct virtio_blk_config cfg;
	uint8_t full[256] = {0};
	struct reply r;
	uint32_t hdr[3];

	blk_config(f, &cfg);
	memcpy(full, &cfg, sizeof(cfg));

	/* QEMU asks for the size it knows of (e.g. 57 bytes up to write_zeroes_may_unmap). */
	get_config(f, 0, 57, 12 + 57);
	assert_true(get_reply(f, &r));
	assert_int_equal(r.request, VHOST_USER_GET_CONFIG);
	assert_int_equal(r.flags, 0x5);
	assert_int_equal(r.size, 12 + 57);
	memcpy(hdr, r.payload, 12);
	assert_int_equal(hdr[0], 0);
	assert_int_equal(hdr[1], 57);
	assert_int_equal(hdr[2], 0);
	assert_memory_equal(r.payload + 12, full, 57);

	/* SPDK's initiator asks for 256: the tail past the struct is zero. */
	get_config(f, 0, 256, 12 + 256);
	assert_true(get_reply(f, &r));
	assert_int_equal(r.size, 12 + 256);
	assert_memory_equal(r.payload + 12, full, 256);
	for (int i = 60; i < 256; i++) {
		assert_int_equal(r.payload[12 + i], 0);
	}

	/* A window at an offset. */
	get_config(f, 34, 2, 12 + 2);
	assert_true(get_reply(f, &r));
	assert_int_equal(r.size, 14);
	memcpy(hdr, r.payload, 12);
	assert_int_equal(hdr[0], 34);
	assert_int_equal(hdr[1], 2);
	assert_int_equal(r.payload[12] | (r.payload[13] << 8), NQUEUES);
	get_config(f, 255, 1, 12 + 1);
	assert_true(get_reply(f, &r));
	assert_int_equal(r.size, 13);
	assert_int_equal(r.payload[12], 0);
	expect_open(f);
}

static void
test_get_config_size_0(void **state)
{
	struct fix *f = *state;

	get_config(f, 0, 0, 12);
	expect_closed(f);
}

static void
test_get_config_size_257(void **state)
{
	struct fix *f = *state;

	get_config(f, 0, 257, 12 + 257);
	expect_closed(f);
}

static void
test_get_config_past_256(void **state)
{
	struct fix *f = *state;

	get_config(f, 200, 57, 12 + 57);
	expect_closed(f);
}

static void
test_get_config_size_mismatch(void **state)
{
	struct fix *f = *state;

	struct reply r;

	/* SPDK pads to the whole window: config.size 57 in a 268-byte payload is answered. */
	get_config(f, 0, 57, 12 + 256);
	assert_true(get_reply(f, &r));
	assert_int_equal(r.size, 12 + 57);
	expect_open(f);
	/* A payload shorter than config.size says is refused. */
	get_config(f, 0, 57, 12 + 56);
	expect_closed(f);
}

static void
test_get_config_padding_past_window(void **state)
{
	struct fix *f = *state;

	/* Padding past the 256-byte window is not a config message any more. */
	get_config(f, 0, 57, 12 + 260);
	expect_closed(f);
}

static void
test_set_config_wce(void **state)
{
	struct fix *f = *state;
	struct vhost_user_config c = {.offset = 32, .size = 1};
	struct virtio_blk_config cfg;

	enable_reply_ack(f);
	/* CONFIG_WCE not negotiated yet: refused. */
	c.region[0] = 1;
	dispatch(f, VHOST_USER_SET_CONFIG, V | NR, &c, 13);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_CONFIG), 1);
	f->s->features = offered_features(f);
	dispatch(f, VHOST_USER_SET_CONFIG, V | NR, &c, 13);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_CONFIG), 0);
	assert_int_equal(((struct vh_blk_session *)f->s->dev)->wce, 1);
	blk_config(f, &cfg);
	assert_int_equal(cfg.wce, 1);
	c.region[0] = 2;
	dispatch(f, VHOST_USER_SET_CONFIG, V | NR, &c, 13);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_CONFIG), 1);
	c.region[0] = 0;
	dispatch(f, VHOST_USER_SET_CONFIG, V | NR, &c, 13);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_CONFIG), 0);
	assert_int_equal(((struct vh_blk_session *)f->s->dev)->wce, 0);
	/* Any other field is read-only. */
	c.offset = 0;
	dispatch(f, VHOST_USER_SET_CONFIG, V | NR, &c, 13);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_CONFIG), 1);
	c.offset = 32;
	c.size = 2;
	dispatch(f, VHOST_USER_SET_CONFIG, V | NR, &c, 14);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_CONFIG), 1);
	expect_open(f);
}

/* ---- memory table ---- */

struct mem_msg {
	uint32_t nregions;
	uint32_t padding;
	struct vhost_user_memory_region r[VHOST_MEMORY_MAX_REGIONS];
};

static void
test_set_mem_table(void **state)
{
	struct fix *f = *state;
	struct mem_msg m = {.nregions = 2};
	int fds[2] = {guest_memfd(0x10000), guest_memfd(0x10000)};
	int fd0 = fds[0];

	enable_reply_ack(f);
	set_owner(f);
	m.r[0] = (struct vhost_user_memory_region){0x0, 0x10000, 0x7f0000000000, 0};
	m.r[1] = (struct vhost_user_memory_region){0x10000, 0x10000, 0x7f0000010000, 0};
	dispatch_fds(f, VHOST_USER_SET_MEM_TABLE, V | NR, &m, 8 + 2 * 32, fds, 2);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_MEM_TABLE), 0);
	assert_non_null(f->s->mem);
	assert_int_equal(f->s->mem->nregions, 2);
	assert_int_equal(f->s->mem->regions[1].gpa, 0x10000);
	/* The fds were not kept (the mappings were). */
	assert_int_equal(fcntl(fd0, F_GETFD), -1);

	/* Overlapping regions inside one table. */
	fds[0] = guest_memfd(0x10000);
	fds[1] = guest_memfd(0x10000);
	m.r[1].guest_phys_addr = 0x8000;
	dispatch_fds(f, VHOST_USER_SET_MEM_TABLE, V | NR, &m, 8 + 2 * 32, fds, 2);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_MEM_TABLE), 1);
	/* Fewer fds than regions. */
	fds[0] = guest_memfd(0x10000);
	m.r[1].guest_phys_addr = 0x10000;
	dispatch_fds(f, VHOST_USER_SET_MEM_TABLE, V | NR, &m, 8 + 2 * 32, fds, 1);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_MEM_TABLE), 1);
	/* An fd smaller than its region. */
	fds[0] = guest_memfd(0x1000);
	m.nregions = 1;
	dispatch_fds(f, VHOST_USER_SET_MEM_TABLE, V | NR, &m, 8 + 32, fds, 1);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_MEM_TABLE), 1);
	/* The table from the first message is still installed. */
	assert_int_equal(f->s->mem->nregions, 2);

	/* ADD_MEM_REG overlapping an installed region; then a fitting one. */
	{
		struct vhost_user_mem_reg reg = {.region = {0x18000, 0x1000, 0x7f1000000000, 0}};
		int fd = guest_memfd(0x1000);

		dispatch_fds(f, VHOST_USER_ADD_MEM_REG, V | NR, &reg, 40, &fd, 1);
		assert_int_equal(expect_u64_reply(f, VHOST_USER_ADD_MEM_REG), 1);
		fd = guest_memfd(0x1000);
		reg.region.guest_phys_addr = 0x20000;
		dispatch_fds(f, VHOST_USER_ADD_MEM_REG, V | NR, &reg, 40, &fd, 1);
		assert_int_equal(expect_u64_reply(f, VHOST_USER_ADD_MEM_REG), 0);
		assert_int_equal(f->s->mem->nregions, 3);
		/* A pipe is not guest memory. */
		{
			int p[2];

			assert_int_equal(pipe(p), 0);
			reg.region.guest_phys_addr = 0x30000;
			reg.region.userspace_addr = 0x7f2000000000;
			dispatch_fds(f, VHOST_USER_ADD_MEM_REG, V | NR, &reg, 40, &p[0], 1);
			assert_int_equal(expect_u64_reply(f, VHOST_USER_ADD_MEM_REG), 1);
			close(p[1]);
		}
		/* REM_MEM_REG of the one we added. */
		reg.region.guest_phys_addr = 0x20000;
		reg.region.userspace_addr = 0x7f1000000000;
		dispatch(f, VHOST_USER_REM_MEM_REG, V | NR, &reg, 40);
		assert_int_equal(expect_u64_reply(f, VHOST_USER_REM_MEM_REG), 0);
		assert_int_equal(f->s->mem->nregions, 2);
		dispatch(f, VHOST_USER_REM_MEM_REG, V | NR, &reg, 40);
		assert_int_equal(expect_u64_reply(f, VHOST_USER_REM_MEM_REG), 1);
	}
	expect_open(f);
}

static void
test_mem_table_too_many_regions(void **state)
{
	struct fix *f = *state;
	uint8_t p[8 + 9 * 32] = {9};

	set_owner(f);
	dispatch(f, VHOST_USER_SET_MEM_TABLE, V, p, sizeof(p));
	expect_closed(f);
}

static void
test_mem_table_size_mismatch(void **state)
{
	struct fix *f = *state;
	struct mem_msg m = {.nregions = 2};

	set_owner(f);
	dispatch(f, VHOST_USER_SET_MEM_TABLE, V, &m, 8 + 32);
	expect_closed(f);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* ---- live migration: SET_LOG_BASE, LOG_ALL, VHOST_VRING_F_LOG ---- */

static int
log_memfd(uint64_t size, bool seal)
{
	int fd = memfd_create("vhost-log", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	if (seal) {
		assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
	}
	return fd;
}

static void
enable_log_shmfd(struct fix *f)
{
	dispatch_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES, V,
	             (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |
	                     (1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD));
	expect_no_reply(f);
	set_owner(f);
}

static void
test_log_base(void **state)
{
	struct fix *f = *state;
	uint64_t p[2] = {4096, 0};
	int fd = log_memfd(4096, true);

	enable_log_shmfd(f);
	/* QEMU 7.2 waits for a reply (checking only its type), NEED_REPLY or not. */
	dispatch_fds(f, VHOST_USER_SET_LOG_BASE, V, p, sizeof(p), &fd, 1);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_LOG_BASE), 0);
	assert_non_null(f->s->log.bits);
	assert_int_equal(f->s->log.bytes, 4096);
	/* A new log replaces the old one. */
	fd = log_memfd(8192, true);
	p[0] = 8192;
	dispatch_fds(f, VHOST_USER_SET_LOG_BASE, V, p, sizeof(p), &fd, 1);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_LOG_BASE), 0);
	assert_int_equal(f->s->log.bytes, 8192);
	/* SET_LOG_FD: accepted, its fd closed. */
	fd = eventfd(0, EFD_CLOEXEC);
	dispatch_fds(f, VHOST_USER_SET_LOG_FD, V | NR, NULL, 0, &fd, 1);
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_LOG_FD), 0);
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	expect_open(f);
}

/* A log that can be truncated under us (SIGBUS) is refused: the session closes. */
static void
test_log_base_unsealed(void **state)
{
	struct fix *f = *state;
	uint64_t p[2] = {4096, 0};
	int fd = log_memfd(4096, false);

	enable_log_shmfd(f);
	dispatch_fds(f, VHOST_USER_SET_LOG_BASE, V, p, sizeof(p), &fd, 1);
	expect_closed(f);
	assert_int_equal(fcntl(fd, F_GETFD), -1);
}

static void
test_log_base_bad_sizes(void **state)
{
	struct fix *f = *state;
	uint64_t p[2] = {8192, 0};
	int fd = log_memfd(4096, true);

	enable_log_shmfd(f);
	dispatch_fds(f, VHOST_USER_SET_LOG_BASE, V, p, sizeof(p), &fd, 1); /* past the file */
	expect_closed(f);
}

static void
test_log_base_not_negotiated(void **state)
{
	struct fix *f = *state;
	uint64_t p[2] = {4096, 0};
	int fd = log_memfd(4096, true);

	enable_reply_ack(f);
	set_owner(f);
	dispatch_fds(f, VHOST_USER_SET_LOG_BASE, V, p, sizeof(p), &fd, 1);
	expect_closed(f);
}

/* VHOST_VRING_F_LOG is the only flag; LOG_ALL comes and goes through SET_FEATURES. */
static void
test_log_vring_flags(void **state)
{
	struct fix *f = *state;
	struct vhost_vring_addr a = {.index = 1,
	                             .flags = VHOST_VRING_F_LOG,
	                             .desc_user_addr = 0x1000,
	                             .used_user_addr = 0x2000,
	                             .avail_user_addr = 0x3000,
	                             .log_guest_addr = 0x2000};

	enable_log_shmfd(f);
	dispatch(f, VHOST_USER_SET_VRING_ADDR, V | NR, &a, sizeof(a));
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_ADDR), 0);
	a.flags = 2;
	dispatch(f, VHOST_USER_SET_VRING_ADDR, V | NR, &a, sizeof(a));
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_VRING_ADDR), 1);
	dispatch_u64(f, VHOST_USER_SET_FEATURES, V | NR, offered_features(f));
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_FEATURES), 0);
	assert_int_equal(f->s->log_all, 1);
	dispatch_u64(f, VHOST_USER_SET_FEATURES, V | NR,
	             offered_features(f) & ~(1ull << VHOST_F_LOG_ALL));
	assert_int_equal(expect_u64_reply(f, VHOST_USER_SET_FEATURES), 0);
	assert_int_equal(f->s->log_all, 0);
	expect_open(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        T(test_get_replies),
	        T(test_reply_ack_only_with_need_reply),
	        T(test_bad_version_bits),
	        T(test_bad_version_2),
	        T(test_reply_bit_from_front_end),
	        T(test_unknown_request_none),
	        T(test_unknown_request_max),
	        T(test_unknown_request_huge),
	        T(test_unsupported_request_closes_its_fd),
	        T(test_wrong_payload_size_get),
	        T(test_wrong_payload_size_set),
	        T(test_wrong_payload_size_state),
	        T(test_wrong_payload_size_addr),
	        T(test_fd_on_message_without_fds),
	        T(test_missing_fd),
	        T(test_fd_overflow),
	        T(test_backend_fd_taken),
	        T(test_log_base),
	        T(test_log_base_unsealed),
	        T(test_log_base_bad_sizes),
	        T(test_log_base_not_negotiated),
	        T(test_log_vring_flags),
	        T(test_backend_fd_not_a_socket),
	        T(test_vring_without_owner),
	        T(test_protocol_features_assumed),
	        T(test_no_protocol_features),
	        T(test_vring_base_never_set_up),
	        T(test_vring_num_sizes),
	        T(test_queue_index_out_of_range),
	        T(test_vring_state_messages),
	        T(test_vring_fd_messages),
	        T(test_vring_fd_not_eventfd),
	        T(test_features_negotiation),
	        T(test_get_config_sizes),
	        T(test_get_config_size_0),
	        T(test_get_config_size_257),
	        T(test_get_config_past_256),
	        T(test_get_config_size_mismatch),
	        T(test_get_config_padding_past_window),
	        T(test_set_config_wce),
	        T(test_set_mem_table),
	        T(test_mem_table_too_many_regions),
	        T(test_mem_table_size_mismatch),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
