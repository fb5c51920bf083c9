/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Helpers for a live upgrade's state description (docs/design.md, "Live upgrade by
 * hand-over"): JSON plus a vector of fds named by index. The writer (old process) and the
 * reader (new process) of src/vhost and src/vfu share them, so both encode u64 values, fds and
 * byte strings the same way and the reader checks every field the same way.
 *
 * Rules: any thread, one description at a time. Readers treat the description as input from
 * another version of vhostd: a missing or malformed field is an error, never a default.
 */
#ifndef VH_CORE_UPDESC_H
#define VH_CORE_UPDESC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/handover.h"
#include "core/util.h"

/* u64 values travel as "0x..." strings (JSON integers stop at 2^63). New reference. */
json_t *vh_updesc_hex(uint64_t v);
/* @len bytes as a lower-case hex string. New reference, or NULL (-ENOMEM). */
json_t *vh_updesc_bytes(const void *p, size_t len);
/* Append @fd (>= 0) to @fds and return its index, or -1 for fd -1 (and -ENOMEM). */
int vh_updesc_push_fd(struct vh_fdvec *fds, int fd);

/*
 * A message the peer had only partly sent when the old process froze: its @len bytes, and the
 * @nfds fds that came with them (appended to @fds) and whether some were dropped. New
 * reference, or NULL (-ENOMEM).
 */
json_t *vh_updesc_msg(struct vh_fdvec *fds, const void *bytes, size_t len, const int *mfds,
                      unsigned nfds, bool fd_overflow);

/* The reader's side: the received fds and where an error message goes. */
struct vh_updesc_reader {
	int *fds; /* fds[i] for index i; a taken fd becomes -1 */
	unsigned nfds;
	char *why;
	size_t whylen;
};

/* Write the reason into rd->why; returns -EINVAL. */
int vh_updesc_fail(struct vh_updesc_reader *rd, const char *fmt, ...) VH_PRINTF(2, 3);
/*
 * Take fd index @v (a JSON integer; -1 = none): returns the fd (now the caller's), -1 for none,
 * or -2 if @v is not an integer, out of range or names an fd taken already.
 */
int vh_updesc_take_fd(struct vh_updesc_reader *rd, const json_t *v);
/* Member @key of @o: "0x..." into *out. Returns 0 or -1. */
int vh_updesc_get_u64(const json_t *o, const char *key, uint64_t *out);
/* Member @key of @o: an integer in [lo, hi] into *out. Returns 0 or -1. */
int vh_updesc_get_int(const json_t *o, const char *key, int64_t lo, int64_t hi, int64_t *out);
/* Member @key of @o: a boolean into *out. Returns 0 or -1. */
int vh_updesc_get_bool(const json_t *o, const char *key, bool *out);
/*
 * A hex string (vh_updesc_bytes) of at most @max bytes into @out: returns the byte count, or
 * -1 if @v is not such a string.
 */
long vh_updesc_get_bytes(const json_t *v, void *out, size_t max);
/*
 * @j as vh_updesc_msg() wrote it: at most @max bytes into @buf, at most @max_fds fds taken into
 * @mfds (*nfds counts them, also on failure: they are the caller's), *fd_overflow. Returns the
 * byte count, -1 if malformed, or -2 if an fd index is bad.
 */
long vh_updesc_get_msg(struct vh_updesc_reader *rd, const json_t *j, void *buf, size_t max,
                       int *mfds, unsigned max_fds, unsigned *nfds, bool *fd_overflow);

#endif
