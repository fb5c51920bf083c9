/* SPDX-License-Identifier: BSD-3-Clause */
/* A live upgrade's state description: encoding and checked decoding (core/updesc.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/updesc.h"

json_t *
vh_updesc_hex(uint64_t v)
{
	char b[24];

	snprintf(b, sizeof(b), "0x%" PRIx64, v);
	return json_string(b);
}

json_t *
vh_updesc_bytes(const void *p, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *b = p;
	char *h = malloc(len * 2 + 1);
	json_t *j;

	if (h == NULL) {
		return NULL;
	}
	for (size_t i = 0; i < len; i++) {
		h[2 * i] = digits[b[i] >> 4];
		h[2 * i + 1] = digits[b[i] & 15];
	}
	h[2 * len] = '\0';
	j = json_string(h);
	free(h);
	return j;
}

int
vh_updesc_push_fd(struct vh_fdvec *fds, int fd)
{
	return fd < 0 ? -1 : vh_fdvec_push(fds, fd);
}

json_t *
vh_updesc_msg(struct vh_fdvec *fds, const void *bytes, size_t len, const int *mfds, unsigned nfds,
              bool fd_overflow)
{
	json_t *a = json_array();

	for (unsigned i = 0; a != NULL && i < nfds; i++) {
		json_array_append_new(a, json_integer(vh_updesc_push_fd(fds, mfds[i])));
	}
	return json_pack("{s:o?, s:o?, s:b}", "bytes", vh_updesc_bytes(bytes, len), "fds", a,
	                 "fd_overflow", fd_overflow);
}

int
vh_updesc_fail(struct vh_updesc_reader *rd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rd->why, rd->whylen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int
vh_updesc_take_fd(struct vh_updesc_reader *rd, const json_t *v)
{
	json_int_t i;
	int fd;

	if (v == NULL || !json_is_integer(v)) {
		return -2;
	}
	i = json_integer_value(v);
	if (i == -1) {
		return -1;
	}
	if (i < 0 || (uint64_t)i >= rd->nfds || rd->fds[i] < 0) {
		return -2;
	}
	fd = rd->fds[i];
	rd->fds[i] = -1;
	return fd;
}

int
vh_updesc_get_u64(const json_t *o, const char *key, uint64_t *out)
{
	const char *s = json_string_value(json_object_get(o, key));
	char *end;

	if (s == NULL || strncmp(s, "0x", 2) != 0) {
		return -1;
	}
	errno = 0;
	*out = strtoull(s + 2, &end, 16);
	return errno != 0 || end == s + 2 || *end != '\0' ? -1 : 0;
}

int
vh_updesc_get_int(const json_t *o, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
		return -1;
	}
	*out = json_integer_value(v);
	return 0;
}

int
vh_updesc_get_bool(const json_t *o, const char *key, bool *out)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_boolean(v)) {
		return -1;
	}
	*out = json_is_true(v);
	return 0;
}

static int
nibble(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	return -1;
}

long
vh_updesc_get_bytes(const json_t *v, void *out, size_t max)
{
	const char *h = json_string_value(v);
	size_t len = h != NULL ? strlen(h) : 0;
	uint8_t *b = out;

	if (h == NULL || (len % 2) != 0 || len / 2 > max) {
		return -1;
	}
	for (size_t i = 0; i < len / 2; i++) {
		int hi = nibble(h[2 * i]), lo = nibble(h[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			return -1;
		}
		b[i] = (uint8_t)(hi << 4 | lo);
	}
	return (long)(len / 2);
}

long
vh_updesc_get_msg(struct vh_updesc_reader *rd, const json_t *j, void *buf, size_t max, int *mfds,
                  unsigned max_fds, unsigned *nfds, bool *fd_overflow)
{
	const json_t *a = json_object_get(j, "fds"), *v;
	long len = vh_updesc_get_bytes(json_object_get(j, "bytes"), buf, max);
	size_t i;

	if (len < 0 || !json_is_array(a) || json_array_size(a) > max_fds ||
	    vh_updesc_get_bool(j, "fd_overflow", fd_overflow) < 0) {
		return -1;
	}
	json_array_foreach(a, i, v)
	{
		int fd = vh_updesc_take_fd(rd, v);

		if (fd < 0) {
			return -2;
		}
		mfds[(*nfds)++] = fd;
	}
	return len;
}
