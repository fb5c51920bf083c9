/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * core/updesc.c: the live upgrade's description encoding. A reader takes each fd once, refuses
 * malformed fields instead of defaulting them, and byte strings survive the round trip.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/updesc.h"

static void
test_bytes_round_trip(void **state)
{
	uint8_t in[256], out[256];
	json_t *j;

	(void)state;
	for (unsigned i = 0; i < sizeof(in); i++) {
		in[i] = (uint8_t)(i * 37 + 11);
	}
	j = vh_updesc_bytes(in, sizeof(in));
	assert_non_null(j);
	assert_int_equal(strlen(json_string_value(j)), 2 * sizeof(in));
	assert_int_equal(vh_updesc_get_bytes(j, out, sizeof(out)), sizeof(in));
	assert_memory_equal(in, out, sizeof(in));
	/* Longer than the destination: refused, nothing partial accepted. */
	assert_int_equal(vh_updesc_get_bytes(j, out, sizeof(out) - 1), -1);
	json_decref(j);
	j = vh_updesc_bytes(in, 0);
	assert_int_equal(vh_updesc_get_bytes(j, out, sizeof(out)), 0);
	json_decref(j);
}

static void
test_bytes_malformed(void **state)
{
	static const char *const bad[] = {"abc", "0g", "AB", "+1", " 1"};
	uint8_t out[8];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *j = json_string(bad[i]);

		assert_int_equal(vh_updesc_get_bytes(j, out, sizeof(out)), -1);
		json_decref(j);
	}
	assert_int_equal(vh_updesc_get_bytes(NULL, out, sizeof(out)), -1);
	{
		json_t *j = json_integer(12);

		assert_int_equal(vh_updesc_get_bytes(j, out, sizeof(out)), -1);
		json_decref(j);
	}
}

static void
test_take_fd_once(void **state)
{
	int fds[3] = {10, 11, -1};
	char why[64];
	struct vh_updesc_reader rd = {fds, 3, why, sizeof(why)};
	json_t *i1 = json_integer(1), *none = json_integer(-1), *big = json_integer(3),
	       *neg = json_integer(-2), *taken = json_integer(2), *str = json_string("1");

	(void)state;
	assert_int_equal(vh_updesc_take_fd(&rd, i1), 11);
	assert_int_equal(fds[1], -1);
	assert_int_equal(vh_updesc_take_fd(&rd, i1), -2); /* twice: the second use is refused */
	assert_int_equal(vh_updesc_take_fd(&rd, none), -1);
	assert_int_equal(vh_updesc_take_fd(&rd, big), -2);
	assert_int_equal(vh_updesc_take_fd(&rd, neg), -2);
	assert_int_equal(vh_updesc_take_fd(&rd, taken), -2);
	assert_int_equal(vh_updesc_take_fd(&rd, str), -2);
	assert_int_equal(vh_updesc_take_fd(&rd, NULL), -2);
	assert_int_equal(fds[0], 10);
	assert_int_equal(vh_updesc_fail(&rd, "x %d", 5), -EINVAL);
	assert_string_equal(why, "x 5");
	json_decref(i1);
	json_decref(none);
	json_decref(big);
	json_decref(neg);
	json_decref(taken);
	json_decref(str);
}

static void
test_fields(void **state)
{
	json_t *o = json_pack("{s:o, s:s, s:s, s:i, s:b, s:i}", "u", vh_updesc_hex(UINT64_MAX),
	                      "nohex", "1234", "junk", "0x12z", "i", 7, "b", 1, "bnot", 1);
	uint64_t u = 0;
	int64_t i = 0;
	bool b = false;

	(void)state;
	assert_int_equal(vh_updesc_get_u64(o, "u", &u), 0);
	assert_true(u == UINT64_MAX);
	assert_int_equal(vh_updesc_get_u64(o, "nohex", &u), -1);
	assert_int_equal(vh_updesc_get_u64(o, "junk", &u), -1);
	assert_int_equal(vh_updesc_get_u64(o, "missing", &u), -1);
	assert_int_equal(vh_updesc_get_int(o, "i", 0, 7, &i), 0);
	assert_int_equal(i, 7);
	assert_int_equal(vh_updesc_get_int(o, "i", 0, 6, &i), -1);
	assert_int_equal(vh_updesc_get_int(o, "u", 0, 6, &i), -1);
	assert_int_equal(vh_updesc_get_bool(o, "b", &b), 0);
	assert_true(b);
	assert_int_equal(vh_updesc_get_bool(o, "bnot", &b), -1);
	json_decref(o);
}

static void
test_msg_round_trip(void **state)
{
	const uint8_t bytes[5] = {1, 2, 3, 0xfe, 0xff};
	const int mfds[2] = {40, 41};
	struct vh_fdvec vec = {0};
	char why[64];
	uint8_t buf[8];
	int got[2] = {-1, -1}, one[1] = {-1};
	unsigned n = 0;
	bool ovf = false;
	json_t *j = vh_updesc_msg(&vec, bytes, sizeof(bytes), mfds, 2, true);
	struct vh_updesc_reader rd;

	(void)state;
	assert_non_null(j);
	assert_int_equal(vec.n, 2);
	rd = (struct vh_updesc_reader){vec.fds, vec.n, why, sizeof(why)};
	assert_int_equal(vh_updesc_get_msg(&rd, j, buf, sizeof(buf), got, 2, &n, &ovf), 5);
	assert_memory_equal(buf, bytes, 5);
	assert_int_equal(n, 2);
	assert_int_equal(got[0], 40);
	assert_int_equal(got[1], 41);
	assert_true(ovf);
	/* The fds are taken: a second read finds their indexes used. */
	n = 0;
	assert_int_equal(vh_updesc_get_msg(&rd, j, buf, sizeof(buf), got, 2, &n, &ovf), -2);
	/* More fds than the reader takes, or more bytes than it holds: malformed. */
	n = 0;
	assert_int_equal(vh_updesc_get_msg(&rd, j, buf, sizeof(buf), one, 1, &n, &ovf), -1);
	assert_int_equal(vh_updesc_get_msg(&rd, j, buf, 4, got, 2, &n, &ovf), -1);
	assert_int_equal(n, 0);
	json_decref(j);
	vh_fdvec_free(&vec);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_bytes_round_trip), cmocka_unit_test(test_bytes_malformed),
	        cmocka_unit_test(test_take_fd_once),     cmocka_unit_test(test_fields),
	        cmocka_unit_test(test_msg_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
