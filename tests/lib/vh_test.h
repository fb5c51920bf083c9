/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Functional-test harness: check macros and a "target" = a running vhost-user-blk back-end with
 * one controller, either vhostd (default: $VHOSTD, configured over RPC) or, when VH_TEST_QSD=1,
 * qemu-storage-daemon (the reference peer; vhostd-only tests skip there).
 *
 * Exit codes: 0 pass, 1 fail, 77 skip (meson's convention).
 */
#ifndef VH_TESTS_VH_TEST_H
#define VH_TESTS_VH_TEST_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "frontend.h"
#include "vh_daemon.h"

#define VH_TEST_PASS 0
#define VH_TEST_FAIL 1
#define VH_TEST_SKIP 77

/* In a function returning int: print where and why, return -1. */
#define T_CHECK(cond, ...)                                                                         \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);            \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			return -1;                                                                 \
		}                                                                                  \
	} while (0)

/* expr returns 0/count or -errno. */
#define T_OK(expr)                                                                                 \
	do {                                                                                       \
		long long t_rc_ = (long long)(expr);                                               \
		if (t_rc_ < 0) {                                                                   \
			fprintf(stderr, "FAIL %s:%d: %s = %lld (%s)\n", __FILE__, __LINE__, #expr, \
			        t_rc_, strerror((int)-t_rc_));                                     \
			return -1;                                                                 \
		}                                                                                  \
	} while (0)

struct vh_target_opts {
	const char *name;    /* controller name; default "vhost.0" */
	uint64_t num_blocks; /* default 16384 */
	uint32_t block_size; /* default 512 */
	bool readonly;
	bool null_bdev;                 /* bdev_null_create instead of bdev_malloc_create */
	bool packed_ring;               /* the controller offers packed rings (vhostd only) */
	bool packed_recovery;           /* ... and requires their crash recovery */
	unsigned int qsd_queues;        /* qsd num-queues (vhostd has a fixed maximum); default 4 */
	const char *const *daemon_args; /* more vhostd options, NULL-terminated; or NULL */
};

struct vh_target {
	struct vh_daemon d;
	bool qsd;
	char name[32];
	char bdev[32];
	char sock[108];
	uint64_t num_blocks;
	uint32_t block_size;
};

/* Whether the run uses qemu-storage-daemon (VH_TEST_QSD=1). */
bool vh_test_qsd(void);

/*
 * Start the back-end, create a bdev and a controller. Returns 0, VH_TEST_SKIP (as a positive
 * value) when no binary is available, or -errno (after printing why).
 */
int vh_target_start(struct vh_target *t, const struct vh_target_opts *o);
/* Stop the back-end. Returns 0 if it exited cleanly (status 0), -1 otherwise (printed). */
int vh_target_stop(struct vh_target *t);
/* RPC on the target's daemon; prints the error on failure. */
int vh_target_rpc(struct vh_target *t, const char *method, json_t *params, json_t **result);

/*
 * Convenience: guest RAM + front-end connected and initialised (sequence A) to the target's
 * socket. On failure everything is freed and -errno returned.
 */
int vh_test_fe_open(struct vh_target *t, const struct vh_fe_mem_opts *mo,
                    const struct vh_fe_opts *fo, struct vh_fe_mem **mem, struct vh_fe **fe);
void vh_test_fe_close(struct vh_fe_mem *mem, struct vh_fe *fe);

/* Seed from $VH_TEST_SEED or the clock; printed so a failure can be replayed. */
uint64_t vh_test_seed(const char *test);

#endif
