/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The one logger. Levels and a component tag; messages go to stderr as one write() per line so
 * lines from different threads never interleave. Any thread may log.
 *
 * Guest-triggerable paths must use VH_LOG_RL (rate limited): a hostile guest must not be able to
 * flood the host's journal.
 */
#ifndef VH_CORE_LOG_H
#define VH_CORE_LOG_H

#include <stdint.h>

#include "core/util.h"

enum vh_log_level {
	VH_LOG_ERROR = 0,
	VH_LOG_WARN,
	VH_LOG_NOTICE,
	VH_LOG_INFO,
	VH_LOG_DEBUG,
};

/* Set the threshold. Any thread; takes effect for later messages. */
void vh_log_set_level(enum vh_log_level level);
enum vh_log_level vh_log_get_level(void);

/* Parse "error|warn|notice|info|debug" or a digit 0-4. Returns the level or -EINVAL. */
int vh_log_parse_level(const char *s);

/* Write one line: "<time> <level> <comp>: <message>\n". */
void vh_log(enum vh_log_level level, const char *comp, const char *fmt, ...) VH_PRINTF(3, 4);

/*
 * A rate limiter for one call site: at most @burst messages per second; the first message after
 * a suppressed burst says how many were dropped.
 */
struct vh_log_rl {
	uint64_t window_start_ns;
	uint32_t count;
	uint32_t suppressed;
};

/* Returns true if the caller may log now; *suppressed gets the number dropped before. */
bool vh_log_rl_allow(struct vh_log_rl *rl, uint32_t burst, uint32_t *suppressed);

/*
 * Once-per-burst logging for errors of one object (a bdev channel, a virtqueue): the first
 * event after VH_LOG_BURST_QUIET_NS without any is logged, the rest of the burst is counted, and
 * the count goes out with the next logged event; a burst that never ends is reported every
 * VH_LOG_BURST_REPEAT_NS. The state belongs to one thread.
 */
#define VH_LOG_BURST_QUIET_NS  1000000000ull  /* 1 s */
#define VH_LOG_BURST_REPEAT_NS 10000000000ull /* 10 s */

struct vh_log_burst {
	uint64_t last_ns;   /* last event, logged or not; 0 = none yet */
	uint64_t logged_ns; /* last logged event */
	uint32_t suppressed;
};

/* An event at @now: true if it is to be logged; *suppressed gets the events counted before. */
bool vh_log_burst_allow(struct vh_log_burst *b, uint64_t now, uint32_t *suppressed);

#define VH_LOG(level, comp, ...)                                                                   \
	do {                                                                                       \
		if ((level) <= vh_log_get_level()) {                                               \
			vh_log((level), (comp), __VA_ARGS__);                                      \
		}                                                                                  \
	} while (0)

#define VH_ERR(comp, ...)    VH_LOG(VH_LOG_ERROR, comp, __VA_ARGS__)
#define VH_WARN(comp, ...)   VH_LOG(VH_LOG_WARN, comp, __VA_ARGS__)
#define VH_NOTICE(comp, ...) VH_LOG(VH_LOG_NOTICE, comp, __VA_ARGS__)
#define VH_INFO(comp, ...)   VH_LOG(VH_LOG_INFO, comp, __VA_ARGS__)
#define VH_DEBUG(comp, ...)  VH_LOG(VH_LOG_DEBUG, comp, __VA_ARGS__)

/* Rate-limited log: 10 lines per second per call site (thread-local state). */
#define VH_LOG_RL(level, comp, fmt, ...)                                                           \
	do {                                                                                       \
		static __thread struct vh_log_rl _rl;                                              \
		uint32_t _supp;                                                                    \
		if ((level) <= vh_log_get_level() && vh_log_rl_allow(&_rl, 10, &_supp)) {          \
			if (_supp) {                                                               \
				vh_log((level), (comp), "(%u similar messages suppressed)",        \
				       _supp);                                                     \
			}                                                                          \
			vh_log((level), (comp), fmt, ##__VA_ARGS__);                               \
		}                                                                                  \
	} while (0)

#endif
