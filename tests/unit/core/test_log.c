/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/core/log.c: level parsing, the level filter, the line format and the rate limiter.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#ifdef VH_SANITIZE
#include <sanitizer/common_interface_defs.h>
#endif

#include "core/log.h"

/* stderr is redirected to a pipe while a test captures log output. */
static int g_saved_stderr = -1;
static int g_pipe[2] = {-1, -1};

static void
capture_start(void)
{
	assert_int_equal(pipe2(g_pipe, O_NONBLOCK | O_CLOEXEC), 0);
	g_saved_stderr = dup(STDERR_FILENO);
	assert_true(g_saved_stderr >= 0);
	assert_int_equal(dup2(g_pipe[1], STDERR_FILENO), STDERR_FILENO);
#ifdef VH_SANITIZE
	/* A sanitizer report must reach the real stderr, not our pipe. */
	__sanitizer_set_report_fd((void *)(intptr_t)g_saved_stderr);
#endif
}

/* Stop capturing; returns the bytes logged in @buf (NUL terminated). */
static size_t
capture_stop(char *buf, size_t size)
{
	ssize_t n;

	assert_int_equal(dup2(g_saved_stderr, STDERR_FILENO), STDERR_FILENO);
	close(g_saved_stderr);
	close(g_pipe[1]);
	n = read(g_pipe[0], buf, size - 1);
	if (n < 0) {
		n = 0;
	}
	buf[n] = '\0';
	close(g_pipe[0]);
	return (size_t)n;
}

static unsigned
count_lines(const char *s)
{
	unsigned n = 0;

	for (; *s; s++) {
		n += *s == '\n';
	}
	return n;
}

static void
test_parse_level(void **state)
{
	(void)state;
	assert_int_equal(vh_log_parse_level("error"), VH_LOG_ERROR);
	assert_int_equal(vh_log_parse_level("warn"), VH_LOG_WARN);
	assert_int_equal(vh_log_parse_level("warning"), VH_LOG_WARN);
	assert_int_equal(vh_log_parse_level("notice"), VH_LOG_NOTICE);
	assert_int_equal(vh_log_parse_level("info"), VH_LOG_INFO);
	assert_int_equal(vh_log_parse_level("debug"), VH_LOG_DEBUG);
	assert_int_equal(vh_log_parse_level("DEBUG"), VH_LOG_DEBUG);
	assert_int_equal(vh_log_parse_level("Warn"), VH_LOG_WARN);
	assert_int_equal(vh_log_parse_level("0"), 0);
	assert_int_equal(vh_log_parse_level("4"), 4);
	assert_int_equal(vh_log_parse_level("2"), 2);
	assert_int_equal(vh_log_parse_level("5"), -EINVAL);
	assert_int_equal(vh_log_parse_level("-1"), -EINVAL);
	assert_int_equal(vh_log_parse_level("04"), -EINVAL);
	assert_int_equal(vh_log_parse_level("10"), -EINVAL);
	assert_int_equal(vh_log_parse_level(""), -EINVAL);
	assert_int_equal(vh_log_parse_level("debugx"), -EINVAL);
	assert_int_equal(vh_log_parse_level("err"), -EINVAL);
	assert_int_equal(vh_log_parse_level(" info"), -EINVAL);
}

static void
test_set_get_level(void **state)
{
	enum vh_log_level old = vh_log_get_level();

	(void)state;
	assert_int_equal(old, VH_LOG_NOTICE); /* the default */
	vh_log_set_level(VH_LOG_DEBUG);
	assert_int_equal(vh_log_get_level(), VH_LOG_DEBUG);
	vh_log_set_level(VH_LOG_ERROR);
	assert_int_equal(vh_log_get_level(), VH_LOG_ERROR);
	vh_log_set_level(old);
}

static void
test_line_format_and_filter(void **state)
{
	char buf[4096];
	enum vh_log_level old = vh_log_get_level();

	(void)state;
	vh_log_set_level(VH_LOG_WARN);
	capture_start();
	VH_ERR("compA", "first %d", 1);
	VH_WARN("compB", "second %s", "x");
	VH_NOTICE("compC", "filtered");
	VH_DEBUG("compD", "filtered too");
	capture_stop(buf, sizeof(buf));
	vh_log_set_level(old);

	assert_int_equal(count_lines(buf), 2);
	assert_int_equal(buf[0], '[');
	assert_non_null(strstr(buf, "] error compA: first 1\n"));
	assert_non_null(strstr(buf, "] warn compB: second x\n"));
	assert_null(strstr(buf, "filtered"));
}

static void
test_long_line_truncated(void **state)
{
	char big[3000], buf[4096];
	size_t n;

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	capture_start();
	vh_log(VH_LOG_ERROR, "c", "%s", big);
	n = capture_stop(buf, sizeof(buf));
	/* One write of at most the 1024-byte buffer, still ending in a newline. */
	assert_true(n > 1000);
	assert_true(n <= 1024);
	assert_int_equal(buf[n - 1], '\n');
	assert_int_equal(count_lines(buf), 1);
}

static void
test_rate_limit_burst_and_window(void **state)
{
	struct vh_log_rl rl = {0};
	uint32_t supp = 99;

	(void)state;
	for (int i = 0; i < 3; i++) {
		assert_true(vh_log_rl_allow(&rl, 3, &supp));
		assert_int_equal(supp, 0);
	}
	for (int i = 0; i < 5; i++) {
		assert_false(vh_log_rl_allow(&rl, 3, &supp));
		assert_int_equal(supp, 0);
	}
	assert_int_equal(rl.count, 3);
	assert_int_equal(rl.suppressed, 5);

	/* The window is over: the next message is allowed and reports what was dropped. */
	rl.window_start_ns -= 1000000000ull;
	assert_true(vh_log_rl_allow(&rl, 3, &supp));
	assert_int_equal(supp, 5);
	assert_true(vh_log_rl_allow(&rl, 3, &supp));
	assert_int_equal(supp, 0);
	assert_true(vh_log_rl_allow(&rl, 3, &supp));
	assert_false(vh_log_rl_allow(&rl, 3, &supp));

	/* Just inside the window: still suppressed. */
	rl.window_start_ns = vh_now_ns() - 900000000ull;
	assert_false(vh_log_rl_allow(&rl, 3, &supp));
	assert_int_equal(supp, 0);

	/* A new window with nothing suppressed reports 0. */
	rl = (struct vh_log_rl){0};
	assert_true(vh_log_rl_allow(&rl, 1, &supp));
	rl.window_start_ns -= 2000000000ull;
	assert_true(vh_log_rl_allow(&rl, 1, &supp));
	assert_int_equal(supp, 0);
}

/* Once per burst: first event logged, the rest counted until a quiet second or 10 s pass. */
static void
test_burst(void **state)
{
	const uint64_t ms = 1000000ull;
	struct vh_log_burst b = {0};
	uint64_t t = 5000 * ms;
	uint32_t supp = 99;

	(void)state;
	assert_true(vh_log_burst_allow(&b, t, &supp));
	assert_int_equal(supp, 0);
	/* The rest of the burst, events 100 ms apart: counted, not logged. */
	for (int i = 1; i <= 7; i++) {
		assert_false(vh_log_burst_allow(&b, t + (uint64_t)i * 100 * ms, &supp));
	}
	/* A quiet second later: logged, with the count. */
	t += 700 * ms + VH_LOG_BURST_QUIET_NS;
	assert_true(vh_log_burst_allow(&b, t, &supp));
	assert_int_equal(supp, 7);
	/* A burst that never pauses is still reported every VH_LOG_BURST_REPEAT_NS. */
	unsigned logged = 0, counted = 0;

	for (uint64_t dt = 10 * ms; dt <= 25000 * ms; dt += 10 * ms) {
		if (vh_log_burst_allow(&b, t + dt, &supp)) {
			logged++;
			counted += supp;
		}
	}
	assert_int_equal(logged, 2); /* at +10 s and +20 s */
	assert_int_equal(counted + b.suppressed + logged, 2500);
}

static void
log_rl_site(int i)
{
	VH_LOG_RL(VH_LOG_ERROR, "rl", "message %d", i);
}

static void
test_rate_limited_macro(void **state)
{
	char buf[8192];

	(void)state;
	capture_start();
	for (int i = 0; i < 25; i++) {
		log_rl_site(i);
	}
	capture_stop(buf, sizeof(buf));
	/* 10 lines per second per call site; 25 calls within far less than a second. */
	assert_int_equal(count_lines(buf), 10);
	assert_non_null(strstr(buf, "rl: message 0\n"));
	assert_non_null(strstr(buf, "rl: message 9\n"));
	assert_null(strstr(buf, "rl: message 10\n"));
}

/*
 * BUG (src/core/log.c:54-56, vh_log): when the "[time] level comp: " prefix is longer than the
 * 1024-byte buffer, snprintf() returns the would-be length n > 1024; vsnprintf() is then called
 * with buf + n (past the end) and size sizeof(buf) - n - 1, which wraps to a huge size_t: a stack
 * buffer overflow. Expected: the line is truncated to the buffer like a long message is.
 * Not reachable from today's callers (component tags are at most ~80 bytes), but the logger
 * must not trust its arguments' lengths. ASan reports it; a plain build may pass by luck.
 */
static void
test_long_component_truncated(void **state)
{
	char comp[1100], buf[4096];
	size_t n;

	(void)state;
	memset(comp, 'c', sizeof(comp) - 1);
	comp[sizeof(comp) - 1] = '\0';
	capture_start();
	vh_log(VH_LOG_ERROR, comp, "tail");
	n = capture_stop(buf, sizeof(buf));
	assert_true(n <= 1024);
	assert_int_equal(buf[n - 1], '\n');
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse_level),
	        cmocka_unit_test(test_set_get_level),
	        cmocka_unit_test(test_line_format_and_filter),
	        cmocka_unit_test(test_long_line_truncated),
	        cmocka_unit_test(test_rate_limit_burst_and_window),
	        cmocka_unit_test(test_burst),
	        cmocka_unit_test(test_rate_limited_macro),
	        /* Last: it overflows a stack buffer until log.c is fixed. */
	        cmocka_unit_test(test_long_component_truncated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
