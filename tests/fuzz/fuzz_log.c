/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Quiet replacement for src/core/log.c in the fuzz targets: every message is still formatted
 * (so a bad format argument is caught by ASan/UBSan) but nothing is written, which keeps the
 * fuzzer's output readable and its exec rate up. Set VHFUZZ_LOG=1 to print them.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

static enum vh_log_level g_level = VH_LOG_DEBUG;
static int g_print = -1;

void
vh_log_set_level(enum vh_log_level level)
{
	g_level = level;
}

enum vh_log_level
vh_log_get_level(void)
{
	return g_level;
}

int
vh_log_parse_level(const char *s)
{
	static const char *const names[] = {"error", "warn", "notice", "info", "debug"};

	for (int i = 0; i < 5; i++) {
		if (strcmp(s, names[i]) == 0) {
			return i;
		}
	}
	if (s[0] >= '0' && s[0] <= '4' && s[1] == '\0') {
		return s[0] - '0';
	}
	return -EINVAL;
}

void
vh_log(enum vh_log_level level, const char *comp, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (g_print < 0) {
		const char *e = getenv("VHFUZZ_LOG");

		g_print = e != NULL && e[0] == '1';
	}
	if (g_print) {
		fprintf(stderr, "[%d] %s: %s\n", (int)level, comp, buf);
	}
}

bool
vh_log_rl_allow(struct vh_log_rl *rl, uint32_t burst, uint32_t *suppressed)
{
	*suppressed = 0;
	return true; /* format every message: the point is to exercise the format strings */
}

bool
vh_log_burst_allow(struct vh_log_burst *b, uint64_t now, uint32_t *suppressed)
{
	(void)b;
	(void)now;
	*suppressed = 1; /* log every event, with the "more since" line too */
	return true;
}

/*
 * Targets that link src/vhost/mem.c without the bdev layer: guest memory registration for DMA
 * back-ends is a no-op here. Weak, so targets that link bdev.c use the real ones.
 */
__attribute__((weak)) void vh_bdev_mem_register(void *vaddr, size_t len, unsigned flags);
__attribute__((weak)) void vh_bdev_mem_register_owned(const void *owner, void *vaddr, size_t len,
                                                      unsigned flags);
__attribute__((weak)) void vh_bdev_mem_unregister(void *vaddr, size_t len);

__attribute__((weak)) void
vh_bdev_mem_register(void *vaddr, size_t len, unsigned flags)
{
	(void)vaddr;
	(void)len;
	(void)flags;
}

__attribute__((weak)) void
vh_bdev_mem_register_owned(const void *owner, void *vaddr, size_t len, unsigned flags)
{
	(void)owner;
	(void)vaddr;
	(void)len;
	(void)flags;
}

__attribute__((weak)) void
vh_bdev_mem_unregister(void *vaddr, size_t len)
{
	(void)vaddr;
	(void)len;
}
