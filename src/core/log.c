/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/log.h"

static int g_level = VH_LOG_NOTICE;
static const char *const level_names[] = {"error", "warn", "notice", "info", "debug"};

void
vh_log_set_level(enum vh_log_level level)
{
	__atomic_store_n(&g_level, (int)level, __ATOMIC_RELAXED);
}

enum vh_log_level
vh_log_get_level(void)
{
	return (enum vh_log_level)__atomic_load_n(&g_level, __ATOMIC_RELAXED);
}

int
vh_log_parse_level(const char *s)
{
	if (s[0] >= '0' && s[0] <= '4' && s[1] == '\0') {
		return s[0] - '0';
	}
	for (size_t i = 0; i < VH_ARRAY_SIZE(level_names); i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			return (int)i;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		return VH_LOG_WARN;
	}
	return -EINVAL;
}

void
vh_log(enum vh_log_level level, const char *comp, const char *fmt, ...)
{
	char buf[1024];
	struct timespec ts;
	va_list ap;
	int n, m;

	clock_gettime(CLOCK_REALTIME, &ts);
	n = snprintf(buf, sizeof(buf), "[%ld.%06ld] %s %s: ", (long)ts.tv_sec, ts.tv_nsec / 1000,
	             level_names[level < VH_ARRAY_SIZE(level_names) ? level : VH_LOG_DEBUG], comp);
	/* A prefix that filled the buffer (absurdly long component) leaves no room for text. */
	if (n < 0 || n > (int)sizeof(buf) - 2) {
		n = (int)sizeof(buf) - 2;
		buf[n++] = '\n';
		if (write(STDERR_FILENO, buf, (size_t)n) < 0) {
			/* Nowhere left to report it. */
		}
		return;
	}
	va_start(ap, fmt);
	m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0) {
		m = 0;
	}
	n += m;
	if (n > (int)sizeof(buf) - 2) {
		n = (int)sizeof(buf) - 2;
	}
	buf[n++] = '\n';
	/* One write per line: atomic with respect to other threads' lines on a pipe or file. */
	if (write(STDERR_FILENO, buf, (size_t)n) < 0) {
		/* Nowhere left to report it. */
	}
}

bool
vh_log_burst_allow(struct vh_log_burst *b, uint64_t now, uint32_t *suppressed)
{
	bool quiet = b->last_ns == 0 || now - b->last_ns >= VH_LOG_BURST_QUIET_NS;
	bool overdue = now - b->logged_ns >= VH_LOG_BURST_REPEAT_NS;

	b->last_ns = now;
	*suppressed = 0;
	if (quiet || overdue) {
		*suppressed = b->suppressed;
		b->suppressed = 0;
		b->logged_ns = now;
		return true;
	}
	b->suppressed++;
	return false;
}

bool
vh_log_rl_allow(struct vh_log_rl *rl, uint32_t burst, uint32_t *suppressed)
{
	uint64_t now = vh_now_ns();

	*suppressed = 0;
	if (now - rl->window_start_ns >= 1000000000ull) {
		*suppressed = rl->suppressed;
		rl->window_start_ns = now;
		rl->count = 0;
		rl->suppressed = 0;
	}
	if (rl->count < burst) {
		rl->count++;
		return true;
	}
	rl->suppressed++;
	return false;
}
