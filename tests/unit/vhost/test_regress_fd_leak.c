/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Regression (issue 6, found by tests/fuzz/fuzz_vhost_msg seed "truncated" and by
 * tests/func/test_hostile_matrix): fds that arrive with a message the session never dispatches
 * leak. socket.c collects SCM_RIGHTS fds into s->fds[] while it reads a message; they are
 * closed only after vh_msg_dispatch(). When the read fails instead (EOF before the payload is
 * complete, a header whose size exceeds the maximum payload, MSG_CTRUNC), session_input()
 * closes the session and session_free() never closes s->fds[]. A front-end can leak up to 8
 * fds per connection, without limit, until the daemon hits EMFILE.
 *
 * The real controller, listening socket, evloop and one reactor run in-process; each case
 * connects, sends a bad header with eventfds attached, hangs up, and checks that every eventfd
 * it sent was closed by the daemon side (the eventfd's peer count: we keep one end and test
 * whether the daemon still holds a duplicate via /proc/self/fd counting).
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "bdev/bdev_module.h"
#include "core/evloop.h"
#include "core/reactor.h"
#include "vhost/device.h"
#include "vhost/session.h"

static struct vh_evloop *g_loop;
static struct vh_vhost_ctrlr *g_c;
static char g_dir[] = "/tmp/vh-regress-fd-XXXXXX";

static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		n += de->d_name[0] != '.';
	}
	closedir(d);
	return n - 1;
}

static void
stop_loop(void *arg)
{
	(void)arg;
	vh_evloop_stop(g_loop);
}

static void
pump(void)
{
	assert_int_equal(vh_control_send(stop_loop, NULL), 0);
	assert_int_equal(vh_evloop_run(g_loop), 0);
}

/* Pump until @cond or a 5 s deadline. */
#define PUMP_UNTIL(cond)                                                                           \
	do {                                                                                       \
		uint64_t dl_ = vh_now_ns() + 5000000000ull;                                        \
		while (!(cond) && vh_now_ns() < dl_) {                                             \
			pump();                                                                    \
		}                                                                                  \
		assert_true(cond);                                                                 \
	} while (0)

static int
group_setup(void **state)
{
	struct vh_reactor_opts ro = {.cpumask = 1, .idle_ns = 100000, .pin = false};
	struct vh_vhost_blk_opts co = {.name = "rg", .bdev_name = "null0", .num_queues = 1};

	(void)state;
	g_loop = vh_evloop_create();
	if (g_loop == NULL || vh_reactors_start(&ro) != 0 || mkdtemp(g_dir) == NULL ||
	    vh_vhost_init(g_dir, (gid_t)-1) != 0 || vh_bdev_null_create("null0", 1024, 512) != 0 ||
	    vh_vhost_blk_create(&co) != 0) {
		return -1;
	}
	g_c = vh_vhost_find("rg");
	return g_c == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	vh_vhost_delete("rg");
	pump();
	vh_reactors_stop();
	vh_bdev_fini();
	vh_evloop_destroy(g_loop);
	rmdir(g_dir);
	return 0;
}

/* Send header {req, 1, size} + @len payload bytes with @nfds eventfds, then hang up. */
static void
bad_message(uint32_t req, uint32_t size, uint32_t len, unsigned nfds, bool rdhup_only)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	uint8_t buf[12 + 64] = {0};
	char cbuf[CMSG_SPACE(8 * sizeof(int))] = {0};
	struct iovec iov = {.iov_base = buf, .iov_len = 12 + len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *cm;
	int fds[8], sock, before;
	uint32_t flags = 1;

	before = count_fds();
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", g_c->sock_path);
	assert_int_equal(connect(sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
	PUMP_UNTIL(g_c->sessions[0] != NULL);
	memcpy(buf, &req, 4);
	memcpy(buf + 4, &flags, 4);
	memcpy(buf + 8, &size, 4);
	for (unsigned i = 0; i < nfds; i++) {
		fds[i] = eventfd(0, EFD_CLOEXEC);
	}
	mh.msg_control = cbuf;
	mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	assert_int_equal(sendmsg(sock, &mh, MSG_NOSIGNAL), (ssize_t)(12 + len));
	for (unsigned i = 0; i < nfds; i++) {
		close(fds[i]);
	}
	if (rdhup_only) {
		shutdown(sock, SHUT_WR);
	}
	close(sock);
	PUMP_UNTIL(g_c->sessions[0] == NULL && g_c->listen_src != NULL);
	if (count_fds() != before) {
		fail_msg("request %u size %u (%u bytes sent) with %u fds: %d fd(s) leaked", req,
		         size, len, nfds, count_fds() - before);
	}
}

/* EOF in the middle of the payload: SET_VRING_CALL promises 8 bytes, 4 arrive. */
static void
test_truncated_payload(void **state)
{
	(void)state;
	bad_message(VHOST_USER_SET_VRING_CALL, 8, 4, 1, true);
}

/* A header whose size exceeds the largest payload: -EMSGSIZE before dispatch. */
static void
test_oversized_header(void **state)
{
	(void)state;
	bad_message(VHOST_USER_SET_MEM_TABLE, 4096, 0, 8, false);
}

/* Header only, then EOF. */
static void
test_header_then_eof(void **state)
{
	(void)state;
	bad_message(VHOST_USER_SET_FEATURES, 8, 0, 3, false);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_truncated_payload),
	        cmocka_unit_test(test_oversized_header),
	        cmocka_unit_test(test_header_then_eof),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
