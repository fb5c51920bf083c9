/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/app/supervise.c with failures injected: fork(), kill() and signalfd() are wrapped at link
 * time (-Wl,--wrap). Each case runs vh_supervise() in a child process of its own (its signal
 * mask and globals start fresh) and reports what the wrappers saw over a pipe. A worker the
 * supervisor does start is this binary again (it execs /proc/self/exe), which notices the
 * hand-over variable and plays a worker instead of running the tests.
 *
 * What must hold: a failed fork() is retried with a backoff, a SIGTERM while no worker runs ends
 * the supervisor at once, kill() is only ever called with the pid of a worker it started (a
 * kill(-1) would signal every process we may signal), and without a signalfd it starts nothing.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "app/supervise.h"
#include "core/handover.h"
#include "core/log.h"
#include "core/util.h"

#define MODE_ENV        "VH_TEST_SUPERVISE_WORKER"
#define BAD_KILL_EXIT   42
#define CASE_TIMEOUT_MS 10000

pid_t __real_fork(void);
pid_t __wrap_fork(void);
int __real_kill(pid_t pid, int sig);
int __wrap_kill(pid_t pid, int sig);
int __real_signalfd(int fd, const sigset_t *mask, int flags);
int __wrap_signalfd(int fd, const sigset_t *mask, int flags);

/* Set by a case before vh_supervise(), in the case's own process. */
static struct {
	unsigned fail_forks;   /* this many fork() calls fail with EAGAIN */
	unsigned term_on_fail; /* raise SIGTERM at this failed fork (1-based); 0 = never */
	bool fail_signalfd;
} g_inject;

/* What the wrappers saw; sent to the test process when vh_supervise() returns. */
struct seen {
	int rc;             /* vh_supervise()'s return */
	unsigned forks;     /* fork() attempts */
	uint64_t gap_ms[8]; /* time between attempt i and i+1 */
	unsigned kills;
	pid_t kill_pid; /* last kill() target */
	pid_t worker;   /* last pid fork() returned */
};

static struct seen g_seen;
static uint64_t g_last_fork_ns;

pid_t
__wrap_fork(void)
{
	uint64_t now = vh_now_ns();
	pid_t pid;

	if (g_seen.forks > 0 && g_seen.forks <= VH_ARRAY_SIZE(g_seen.gap_ms)) {
		g_seen.gap_ms[g_seen.forks - 1] = (now - g_last_fork_ns) / 1000000;
	}
	g_last_fork_ns = now;
	g_seen.forks++;
	if (g_seen.forks <= g_inject.fail_forks) {
		if (g_seen.forks == g_inject.term_on_fail) {
			raise(SIGTERM); /* blocked: it waits in the signalfd */
		}
		errno = EAGAIN;
		return -1;
	}
	pid = __real_fork();
	if (pid > 0) {
		g_seen.worker = pid;
	}
	return pid;
}

int
__wrap_kill(pid_t pid, int sig)
{
	if (pid <= 0) {
		/* Never pass it on: as root, kill(-1, SIGTERM) would stop the whole machine. */
		fprintf(stderr, "kill(%d, %d) called\n", (int)pid, sig);
		_exit(BAD_KILL_EXIT);
	}
	g_seen.kills++;
	g_seen.kill_pid = pid;
	return __real_kill(pid, sig);
}

int
__wrap_signalfd(int fd, const sigset_t *mask, int flags)
{
	if (g_inject.fail_signalfd) {
		errno = EMFILE;
		return -1;
	}
	return __real_signalfd(fd, mask, flags);
}

/*
 * The worker: "term-parent" asks the supervisor to stop (as an operator's SIGTERM would) and
 * exits 0 when the supervisor passes the SIGTERM on; "serve" says READY and waits for SIGTERM.
 */
static int
worker_main(const char *mode)
{
	const char *chan = getenv(VH_HANDOVER_ENV_FD);
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (chan != NULL) {
		send(atoi(chan), "READY", 5, MSG_NOSIGNAL);
	}
	if (mode != NULL && strcmp(mode, "term-parent") == 0) {
		kill(getppid(), SIGTERM);
	}
	/* Bounded, so a supervisor that never signals us does not leave us behind for ever. */
	sig = sigtimedwait(&set, NULL, &(struct timespec){.tv_sec = 30});
	return sig == SIGTERM ? 0 : 3;
}

/*
 * Run vh_supervise() in a child process, with the failures in g_inject and workers in @mode;
 * wait for it (with a deadline) and return in @out what the wrappers saw there. *status gets
 * its wait status.
 */
static void
run_case(const char *mode, struct seen *out, int *status)
{
	int p[2];
	pid_t pid;
	uint64_t deadline = vh_now_ns() + CASE_TIMEOUT_MS * 1000000ull;

	assert_int_equal(pipe(p), 0);
	pid = __real_fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[] = {"/proc/self/exe", NULL};

		close(p[0]);
		if (mode != NULL) {
			setenv(MODE_ENV, mode, 1);
		}
		memset(&g_seen, 0, sizeof(g_seen));
		g_seen.rc = vh_supervise(1, argv, true);
		if (write(p[1], &g_seen, sizeof(g_seen)) != sizeof(g_seen)) {
			_exit(2);
		}
		_exit(0);
	}
	close(p[1]);
	memset(out, 0, sizeof(*out));
	for (;;) {
		struct pollfd pfd = {.fd = p[0], .events = POLLIN};
		uint64_t now = vh_now_ns();

		if (now >= deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, status, 0);
			close(p[0]);
			fail_msg("vh_supervise() did not return within %d ms", CASE_TIMEOUT_MS);
		}
		if (poll(&pfd, 1, (int)((deadline - now) / 1000000) + 1) > 0) {
			break;
		}
	}
	if (read(p[0], out, sizeof(*out)) != sizeof(*out)) {
		memset(out, 0, sizeof(*out));
		out->rc = -1;
	}
	close(p[0]);
	assert_int_equal(waitpid(pid, status, 0), pid);
	if (WIFEXITED(*status) && WEXITSTATUS(*status) == BAD_KILL_EXIT) {
		fail_msg("the supervisor called kill() with a pid <= 0");
	}
	assert_true(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

/* fork() fails and SIGTERM comes while it waits to retry: exit 0 at once, nobody signalled. */
static void
test_fork_fails_then_sigterm(void **state)
{
	struct seen s;
	int status;

	(void)state;
	g_inject = (typeof(g_inject)){.fail_forks = 100, .term_on_fail = 1};
	run_case(NULL, &s, &status);
	assert_int_equal(s.rc, 0);
	assert_int_equal(s.forks, 1);
	assert_int_equal(s.kills, 0);
}

/* Failed forks are retried, with a growing backoff (50 ms, then 100 ms), not given up on. */
static void
test_fork_retried_with_backoff(void **state)
{
	struct seen s;
	int status;

	(void)state;
	g_inject = (typeof(g_inject)){.fail_forks = 100, .term_on_fail = 3};
	run_case(NULL, &s, &status);
	assert_int_equal(s.rc, 0);
	assert_int_equal(s.forks, 3);
	assert_true(s.gap_ms[0] >= 49);
	assert_true(s.gap_ms[1] >= 99);
	assert_int_equal(s.kills, 0);
}

/* After two failed forks the third works; that worker is the one (and only) kill() target. */
static void
test_fork_recovers(void **state)
{
	struct seen s;
	int status;

	(void)state;
	g_inject = (typeof(g_inject)){.fail_forks = 2};
	run_case("term-parent", &s, &status);
	assert_int_equal(s.forks, 3);
	assert_true(s.worker > 0);
	assert_int_equal(s.kills, 1);
	assert_int_equal(s.kill_pid, s.worker);
	assert_int_equal(s.rc, 0); /* the worker's clean exit */
}

/* Without a signalfd the supervisor could neither stop nor reap a worker: it starts none. */
static void
test_no_signalfd(void **state)
{
	struct seen s;
	int status;

	(void)state;
	g_inject = (typeof(g_inject)){.fail_signalfd = true};
	run_case("serve", &s, &status);
	assert_int_equal(s.rc, 1);
	assert_int_equal(s.forks, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_fork_fails_then_sigterm),
	        cmocka_unit_test(test_fork_retried_with_backoff),
	        cmocka_unit_test(test_fork_recovers),
	        cmocka_unit_test(test_no_signalfd),
	};

	if (getenv(VH_HANDOVER_ENV_FD) != NULL) {
		return worker_main(getenv(MODE_ENV));
	}
	vh_log_set_level(VH_LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
