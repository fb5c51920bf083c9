/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The virtio-blk writeback byte (CONFIG_WCE) as a guest driver reads and writes it, through the
 * test front-end: shared by the write-through tests of this folder.
 */
#ifndef VH_TEST_BLK_WCE_H
#define VH_TEST_BLK_WCE_H

#include "vh_test.h"

/* The driver writes the writeback byte (SET_CONFIG with REPLY_ACK: applied when we return). */
static inline int
blk_wce_set(struct vh_fe *fe, uint8_t wce)
{
	struct vhost_user_config cfg = {.offset = VH_BLK_CFG_WCE, .size = 1};
	uint64_t ack = 1;

	cfg.region[0] = wce;
	T_OK(vh_fe_call(fe, VHOST_USER_SET_CONFIG, VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK,
	                &cfg, VHOST_USER_CONFIG_HDR_SIZE + 1, NULL, 0, &ack, sizeof(ack)));
	T_CHECK(ack == 0, "SET_CONFIG writeback=%u refused", wce);
	return 0;
}

/* The writeback byte as GET_CONFIG reads it, or -1. */
static inline int
blk_wce_get(struct vh_fe *fe)
{
	uint8_t cfg[64];

	T_OK(vh_fe_get_config(fe, 60, cfg, sizeof(cfg)));
	return cfg[VH_BLK_CFG_WCE];
}

#endif
