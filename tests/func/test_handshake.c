/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The vhost-user handshake exactly as QEMU 7.2 sends it (reference §1.9 A, B, C): offered
 * features, GET_CONFIG of 57 and 256 bytes, SeaBIOS-minimal start then a Linux restart on the
 * same connection, SET_MEM_TABLE instead of ADD_MEM_REG, an older front-end's protocol subset,
 * and a fresh connection after a clean disconnect.
 */
#include <inttypes.h>

#include "io_engine.h"
#include "vh_test.h"

#define BIT(n) ((uint64_t)1 << (n))

/* What vhostd must offer (DESIGN + brief), read-write controller. */
#define VHOSTD_FEATURES                                                                            \
	(BIT(VIRTIO_BLK_F_SIZE_MAX) | BIT(VIRTIO_BLK_F_SEG_MAX) | BIT(VIRTIO_BLK_F_BLK_SIZE) |     \
	 BIT(VIRTIO_BLK_F_FLUSH) | BIT(VIRTIO_BLK_F_TOPOLOGY) | BIT(VIRTIO_BLK_F_CONFIG_WCE) |     \
	 BIT(VIRTIO_BLK_F_MQ) | BIT(VIRTIO_BLK_F_DISCARD) | BIT(VIRTIO_BLK_F_WRITE_ZEROES) |       \
	 BIT(VIRTIO_RING_F_INDIRECT_DESC) | BIT(VIRTIO_RING_F_EVENT_IDX) | BIT(32) |               \
	 BIT(VHOST_USER_F_PROTOCOL_FEATURES))
#define VHOSTD_PROTOCOL                                                                            \
	(BIT(VHOST_USER_PROTOCOL_F_MQ) | BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) |                    \
	 BIT(VHOST_USER_PROTOCOL_F_BACKEND_REQ) | BIT(VHOST_USER_PROTOCOL_F_CONFIG) |              \
	 BIT(VHOST_USER_PROTOCOL_F_STATUS) | BIT(VHOST_USER_PROTOCOL_F_RESET_DEVICE) |             \
	 BIT(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS))

static int
check_config(struct vh_target *t, struct vh_fe *fe)
{
	const struct vh_fe_info *in = vh_fe_info(fe);
	uint8_t big[VHOST_USER_MAX_CONFIG_SIZE], small[8];
	unsigned int i;
	int n;

	T_CHECK(in->config_size == VH_BLK_CFG_QEMU72_SIZE, "config size %u", in->config_size);
	T_CHECK(vh_fe_cfg_u64(fe, VH_BLK_CFG_CAPACITY) == t->num_blocks * t->block_size / 512,
	        "capacity %" PRIu64 ", expected %" PRIu64, vh_fe_cfg_u64(fe, VH_BLK_CFG_CAPACITY),
	        t->num_blocks * t->block_size / 512);
	T_CHECK(vh_fe_cfg_u32(fe, VH_BLK_CFG_BLK_SIZE) == t->block_size, "blk_size %u, expected %u",
	        vh_fe_cfg_u32(fe, VH_BLK_CFG_BLK_SIZE), t->block_size);
	T_CHECK(vh_fe_cfg_u16(fe, VH_BLK_CFG_NUM_QUEUES) == in->queue_num,
	        "config num_queues %u, GET_QUEUE_NUM %" PRIu64,
	        vh_fe_cfg_u16(fe, VH_BLK_CFG_NUM_QUEUES), in->queue_num);
	T_CHECK(vh_fe_cfg_u32(fe, VH_BLK_CFG_SEG_MAX) >= 1, "seg_max 0");
	if (vh_fe_has(in->backend_features, VIRTIO_BLK_F_DISCARD)) {
		T_CHECK(vh_fe_cfg_u32(fe, VH_BLK_CFG_MAX_DISCARD_SECT) > 0 &&
		                vh_fe_cfg_u32(fe, VH_BLK_CFG_MAX_DISCARD_SEG) > 0,
		        "DISCARD offered but max_discard_sectors/seg is 0");
	}
	if (vh_fe_has(in->backend_features, VIRTIO_BLK_F_WRITE_ZEROES)) {
		T_CHECK(vh_fe_cfg_u32(fe, VH_BLK_CFG_MAX_WZ_SECT) > 0 &&
		                vh_fe_cfg_u32(fe, VH_BLK_CFG_MAX_WZ_SEG) > 0,
		        "WRITE_ZEROES offered but max_write_zeroes_sectors/seg is 0");
	}
	/*
	 * SPDK's initiator asks 256 bytes: same prefix, zero tail (nothing past 57 is offered).
	 * qsd 7.2 answers that with a broken reply (reference §1.2 id 24): vhostd only.
	 */
	if (t->qsd) {
		return 0;
	}
	memset(big, 0xee, sizeof(big));
	n = vh_fe_get_config(fe, 256, big, sizeof(big));
	T_CHECK(n == 256, "GET_CONFIG(256) returned %d bytes", n);
	T_CHECK(memcmp(big, in->config, VH_BLK_CFG_QEMU72_SIZE) == 0,
	        "GET_CONFIG(256) prefix differs from GET_CONFIG(57)");
	for (i = VH_BLK_CFG_QEMU72_SIZE; i < 256; i++) {
		T_CHECK(big[i] == 0, "GET_CONFIG(256) byte %u = 0x%x, expected 0", i, big[i]);
	}
	n = vh_fe_get_config(fe, 8, small, sizeof(small));
	T_CHECK(n == 8 && memcmp(small, in->config, 8) == 0, "GET_CONFIG(8) returned %d", n);
	return 0;
}

static int
check_offer(struct vh_target *t, struct vh_fe *fe)
{
	const struct vh_fe_info *in = vh_fe_info(fe);

	T_CHECK(vh_fe_has(in->backend_features, 32), "VERSION_1 not offered");
	T_CHECK(!vh_fe_has(in->backend_features, VIRTIO_BLK_F_RO), "RO offered on a rw controller");
	if (t->qsd) {
		return 0;
	}
	T_CHECK((in->backend_features & VHOSTD_FEATURES) == VHOSTD_FEATURES,
	        "features 0x%" PRIx64 " lack 0x%" PRIx64, in->backend_features,
	        VHOSTD_FEATURES & ~in->backend_features);
	T_CHECK((in->backend_protocol & VHOSTD_PROTOCOL) == VHOSTD_PROTOCOL,
	        "protocol features 0x%" PRIx64 " lack 0x%" PRIx64, in->backend_protocol,
	        VHOSTD_PROTOCOL & ~in->backend_protocol);
	T_CHECK(in->max_mem_slots >= 8, "GET_MAX_MEM_SLOTS %" PRIu64, in->max_mem_slots);
	T_CHECK(in->queue_num >= 4, "GET_QUEUE_NUM %" PRIu64, in->queue_num);
	return 0;
}

/* Full QEMU order, then SeaBIOS + Linux on the same connection. */
static int
test_qemu_order(struct vh_target *t)
{
	struct vh_fe_mem_opts mo = {.size = 64 << 20, .layout = VH_FE_MEM_QEMU_PC};
	struct vh_fe_opts fo = {.num_queues = 4};
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	unsigned int q;
	int rc = -1;

	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	if (check_offer(t, fe) < 0 || check_config(t, fe) < 0) {
		goto out;
	}
	/* SeaBIOS: minimal features, queue 0 only, reads the boot sector. */
	if (vh_fe_start(fe, VH_FE_SEABIOS_FEATURES, 1) < 0) {
		fprintf(stderr, "FAIL: SeaBIOS start\n");
		goto out;
	}
	if (io_smoke(fe, mem, 0, 0, 0xb105) < 0) {
		goto out;
	}
	/* Linux probes: C, device reset, B with full features on all queues (no mem messages). */
	if (vh_fe_stop(fe) < 0 || vh_fe_reset_rings(fe) < 0 || vh_fe_start(fe, 0, 0) < 0) {
		fprintf(stderr, "FAIL: SeaBIOS -> Linux restart\n");
		goto out;
	}
	for (q = 0; q < 4; q++) {
		if (io_smoke(fe, mem, q, 64 + q * 8, 0x1100 + q) < 0) {
			goto out;
		}
	}
	/* pause/cont: C then B, rings resume from GET_VRING_BASE. */
	if (vh_fe_stop(fe) < 0) {
		goto out;
	}
	T_CHECK(vh_fe_vq_base(vh_fe_vq(fe, 0)) == 2, "queue 0 base %u after 2 requests",
	        vh_fe_vq_base(vh_fe_vq(fe, 0)));
	if (vh_fe_start(fe, 0, 0) < 0 || io_smoke(fe, mem, 1, 200, 0x77) < 0 ||
	    vh_fe_stop(fe) < 0) {
		fprintf(stderr, "FAIL: pause/cont\n");
		goto out;
	}
	rc = 0;
out:
	vh_test_fe_close(mem, fe);
	return rc;
}

/* Variants: SET_MEM_TABLE, an older front-end without REPLY_ACK/STATUS/MEM_SLOTS, one queue. */
static int
test_variant(struct vh_target *t, const char *what, bool set_mem_table, uint64_t proto,
             unsigned int nq)
{
	struct vh_fe_mem_opts mo = {.size = 32 << 20, .nregions = 2};
	struct vh_fe_opts fo = {
	        .num_queues = nq, .use_set_mem_table = set_mem_table, .protocol_features = proto};
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	unsigned int q;
	int rc = -1;

	fprintf(stderr, "variant: %s\n", what);
	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	if (vh_fe_start(fe, 0, 0) < 0) {
		fprintf(stderr, "FAIL: %s: start\n", what);
		goto out;
	}
	for (q = 0; q < nq; q++) {
		if (io_smoke(fe, mem, q, 8 * q, 0xabc0 + q) < 0) {
			goto out;
		}
	}
	rc = vh_fe_stop(fe) < 0 ? -1 : 0;
out:
	vh_test_fe_close(mem, fe);
	return rc;
}

int
main(void)
{
	struct vh_target_opts to = {.num_blocks = 32768, .block_size = 4096};
	uint64_t old_qemu = BIT(VHOST_USER_PROTOCOL_F_MQ) | BIT(VHOST_USER_PROTOCOL_F_CONFIG);
	struct vh_target t;
	int rc, fail = 0;

	rc = vh_target_start(&t, &to);
	if (rc) {
		return rc == VH_TEST_SKIP ? VH_TEST_SKIP : VH_TEST_FAIL;
	}
	fail |= test_qemu_order(&t) < 0;
	fail |= test_variant(&t, "SET_MEM_TABLE", true, 0, 2) < 0;
	fail |= test_variant(&t, "MQ+CONFIG only (no REPLY_ACK/STATUS/MEM_SLOTS)", false, old_qemu,
	                     2) < 0;
	fail |= test_variant(&t, "single queue, fresh connection", false, 0, 1) < 0;
	if (vh_target_stop(&t) < 0) {
		fail = 1;
	}
	fprintf(stderr, "test_handshake: %s\n", fail ? "FAIL" : "PASS");
	return fail ? VH_TEST_FAIL : VH_TEST_PASS;
}
