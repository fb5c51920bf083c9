/* SPDX-License-Identifier: BSD-3-Clause */
/* What the rbd double (stubs_rbd.c) recorded: RPC unit tests only. */
#ifndef VH_TESTS_STUBS_RBD_H
#define VH_TESTS_STUBS_RBD_H

#include <stdbool.h>
#include <stdint.h>

#define STUB_RBD_MAX_CLUSTERS 8
#define STUB_RBD_MAX_KV       16

struct stub_rbd {
	char clusters[STUB_RBD_MAX_CLUSTERS][64];
	unsigned nclusters;
	char kv[STUB_RBD_MAX_KV][64]; /* the last config map: key, value, ... */
	unsigned nkv;
	bool kv_present;
	char user_id[64];
	unsigned creates;
	uint32_t last_block_size;
	bool last_read_only;
	uint64_t last_new_size;
	int create_rc; /* make vh_bdev_rbd_create fail with this */
};

extern struct stub_rbd g_stub_rbd;

void stub_rbd_reset(void);

#endif
