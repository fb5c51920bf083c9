/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/vhost/scsi_cmd.c: every command's decoding, its data and its sense data, with allocation
 * lengths shorter than the data, 6/10/12/16-byte CDB edge cases (READ (6) with length 0 is 256
 * blocks), LBA ranges at and past the end, and the UNMAP parameter list. No sockets, no bdev.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vhost/scsi_cmd.h"

#define NB 4096 /* blocks of the test logical unit */

static struct vh_scsi_lu g_lu = {
        .num_blocks = NB,
        .block_size = 512,
        .write_cache = true,
        .unmap = true,
        .naa = 0x3123456789abcdefull,
        .serial = "ram0",
};

static uint8_t g_cdb[VH_SCSI_CDB_SIZE];
static uint8_t g_buf[VH_SCSI_BUF_SIZE];

/* Run a CDB given as bytes against @lu. */
static struct vh_scsi_task
run_lu(const struct vh_scsi_lu *lu, const uint8_t *cdb, size_t len)
{
	struct vh_scsi_task t;

	memset(&t, 0xa5, sizeof(t)); /* every output must be set */
	memset(g_cdb, 0, sizeof(g_cdb));
	memcpy(g_cdb, cdb, len);
	memset(g_buf, 0xee, sizeof(g_buf));
	t.cdb = g_cdb;
	t.lu = lu;
	vh_scsi_exec(&t, g_buf, sizeof(g_buf));
	return t;
}

#define RUN(...)                                                                                   \
	({                                                                                         \
		const uint8_t c_[] = {__VA_ARGS__};                                                \
		run_lu(&g_lu, c_, sizeof(c_));                                                     \
	})
#define RUN_NOLU(...)                                                                              \
	({                                                                                         \
		const uint8_t c_[] = {__VA_ARGS__};                                                \
		run_lu(NULL, c_, sizeof(c_));                                                      \
	})

static void
assert_good(const struct vh_scsi_task *t)
{
	assert_int_equal(t->op, VH_SCSI_OP_DONE);
	assert_int_equal(t->status, VH_SCSI_GOOD);
	assert_int_equal(t->sense_len, 0);
}

/* CHECK CONDITION with fixed-format sense @key/@asc. */
static void
assert_sense(const struct vh_scsi_task *t, uint8_t key, uint16_t asc)
{
	assert_int_equal(t->op, VH_SCSI_OP_DONE);
	assert_int_equal(t->status, VH_SCSI_CHECK_CONDITION);
	assert_int_equal(t->sense_len, 18);
	assert_int_equal(t->sense[0], 0x70);
	assert_int_equal(t->sense[2], key);
	assert_int_equal(t->sense[7], 10);
	assert_int_equal(t->sense[12], asc >> 8);
	assert_int_equal(t->sense[13], asc & 0xff);
	assert_int_equal(t->data_len, 0);
}

/* INVALID FIELD IN CDB pointing at @byte (and @bit, or no bit pointer if < 0). */
static void
assert_invalid_field(const struct vh_scsi_task *t, uint16_t byte, int bit)
{
	assert_sense(t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_INVALID_FIELD_CDB);
	assert_int_equal(t->sense[15] & 0xc0, 0xc0); /* SKSV, C/D = CDB */
	if (bit >= 0) {
		assert_int_equal(t->sense[15] & 0x0f, 0x08 | bit);
	} else {
		assert_int_equal(t->sense[15] & 0x08, 0);
	}
	assert_int_equal(vh_scsi_be16(&t->sense[16]), byte);
}

/* ---- opcodes, CDB lengths, LUN fields ---- */

static void
test_cdb_len(void **state)
{
	(void)state;
	assert_int_equal(vh_scsi_cdb_len(0x00), 6);
	assert_int_equal(vh_scsi_cdb_len(0x1f), 6);
	assert_int_equal(vh_scsi_cdb_len(0x28), 10);
	assert_int_equal(vh_scsi_cdb_len(0x5a), 10);
	assert_int_equal(vh_scsi_cdb_len(0x7f), 0); /* variable length */
	assert_int_equal(vh_scsi_cdb_len(0x60), 0); /* reserved group 3 */
	assert_int_equal(vh_scsi_cdb_len(0x88), 16);
	assert_int_equal(vh_scsi_cdb_len(0xa8), 12);
	assert_int_equal(vh_scsi_cdb_len(0xc0), 0); /* vendor specific */
	assert_int_equal(vh_scsi_cdb_len(0xff), 0);
}

static void
test_invalid_opcodes(void **state)
{
	/* A spread of unimplemented codes in every group, plus the variable-length one. */
	static const uint8_t ops[] = {0x01, 0x04, 0x15, 0x1e, 0x2e, 0x34, 0x3b, 0x4d, 0x55, 0x5e,
	                              0x7f, 0x83, 0x89, 0x9f, 0xa3, 0xa5, 0xb7, 0xc0, 0xff, 0x60};
	struct vh_scsi_task t;

	(void)state;
	for (size_t i = 0; i < sizeof(ops); i++) {
		uint8_t cdb[16] = {ops[i]};

		t = run_lu(&g_lu, cdb, sizeof(cdb));
		assert_sense(&t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_INVALID_OPCODE);
		t = run_lu(NULL, cdb, sizeof(cdb));
		assert_sense(&t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_INVALID_OPCODE);
	}
	/* SERVICE ACTION IN (16) with another service action: invalid field, not opcode. */
	t = RUN(0x9e, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0);
	assert_invalid_field(&t, 1, 4);
}

static void
test_naca(void **state)
{
	struct vh_scsi_task t;

	(void)state;
	t = RUN(VH_SCSI_TEST_UNIT_READY, 0, 0, 0, 0, 0x04);
	assert_invalid_field(&t, 5, 2);
	t = RUN(VH_SCSI_READ_16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0x04);
	assert_invalid_field(&t, 15, 2);
	t = RUN(VH_SCSI_INQUIRY, 0, 0, 0, 36, 0x04);
	assert_invalid_field(&t, 5, 2);
}

static void
test_lun_decode(void **state)
{
	uint8_t lun[8], tgt;
	uint16_t id;

	(void)state;
	vh_scsi_lun_encode(7, lun);
	/* Linux reads an event's LUN as lun[2] << 8 | lun[3]: both must be 0 for LUN 0. */
	assert_memory_equal(lun, ((uint8_t[]){1, 7, 0, 0, 0, 0, 0, 0}), 8);
	assert_int_equal(vh_scsi_lun_decode(lun, &tgt, &id), 0);
	assert_int_equal(tgt, 7);
	assert_int_equal(id, 0);
	/* Linux: flat addressing, LUN 0x123. */
	memcpy(lun, (uint8_t[]){1, 255, 0x41, 0x23, 0, 0, 0, 0}, 8);
	assert_int_equal(vh_scsi_lun_decode(lun, &tgt, &id), 0);
	assert_int_equal(tgt, 255);
	assert_int_equal(id, 0x123);
	/* Peripheral addressing, LUN 5. */
	memcpy(lun, (uint8_t[]){1, 0, 0, 5, 0, 0, 0, 0}, 8);
	assert_int_equal(vh_scsi_lun_decode(lun, &tgt, &id), 0);
	assert_int_equal(id, 5);
	/* Byte 0 not 1; peripheral addressing with a bus; logical unit / extended addressing;
	 * a second level. */
	memcpy(lun, (uint8_t[]){0, 0, 0x40, 0, 0, 0, 0, 0}, 8);
	assert_int_equal(vh_scsi_lun_decode(lun, &tgt, &id), -EINVAL);
	memcpy(lun, (uint8_t[]){1, 0, 0x01, 0, 0, 0, 0, 0}, 8);
	assert_int_equal(vh_scsi_lun_decode(lun, &tgt, &id), -EINVAL);
	memcpy(lun, (uint8_t[]){1, 0, 0x80, 0, 0, 0, 0, 0}, 8);
	assert_int_equal(vh_scsi_lun_decode(lun, &tgt, &id), -EINVAL);
	memcpy(lun, (uint8_t[]){1, 0, 0xc1, 0x01, 0, 0, 0, 0}, 8);
	assert_int_equal(vh_scsi_lun_decode(lun, &tgt, &id), -EINVAL);
	memcpy(lun, (uint8_t[]){1, 0, 0x40, 0, 0x40, 1, 0, 0}, 8);
	assert_int_equal(vh_scsi_lun_decode(lun, &tgt, &id), -EINVAL);
	memcpy(lun, (uint8_t[]){1, 0, 0x40, 0, 0, 0, 0, 1}, 8);
	assert_int_equal(vh_scsi_lun_decode(lun, &tgt, &id), -EINVAL);
}

/* ---- INQUIRY ---- */

static void
test_inquiry_standard(void **state)
{
	struct vh_scsi_task t;

	(void)state;
	t = RUN(VH_SCSI_INQUIRY, 0, 0, 0, 255, 0);
	assert_good(&t);
	assert_int_equal(t.data_len, 64);
	assert_int_equal(g_buf[0], 0x00); /* direct access, connected */
	assert_int_equal(g_buf[2], 0x06);
	assert_int_equal(g_buf[3] & 0x0f, 2);
	assert_int_equal(g_buf[4], 64 - 5);
	assert_int_equal(g_buf[7] & 0x02, 0x02); /* CMDQUE */
	assert_memory_equal(&g_buf[8], "VHOSTD  ", 8);
	assert_memory_equal(&g_buf[16], "vhostd scsi disk", 16);
	assert_int_equal(vh_scsi_be16(&g_buf[60]), 0x0460);
	/* Allocation length shorter than the data: cut, and the rest of buf untouched by us. */
	t = RUN(VH_SCSI_INQUIRY, 0, 0, 0, 5, 0);
	assert_good(&t);
	assert_int_equal(t.data_len, 5);
	t = RUN(VH_SCSI_INQUIRY, 0, 0, 0, 0, 0);
	assert_good(&t);
	assert_int_equal(t.data_len, 0);
	/* A 16-bit allocation length (SPC-3 and later): 0x0100 is 256, not 0. */
	t = RUN(VH_SCSI_INQUIRY, 0, 0, 1, 0, 0);
	assert_good(&t);
	assert_int_equal(t.data_len, 64);
	/* Page code without EVPD; CMDDT. */
	t = RUN(VH_SCSI_INQUIRY, 0, 0x80, 0, 255, 0);
	assert_invalid_field(&t, 2, 7);
	t = RUN(VH_SCSI_INQUIRY, 0x02, 0, 0, 255, 0);
	assert_invalid_field(&t, 1, 1);
}

static void
test_inquiry_no_lu(void **state)
{
	struct vh_scsi_task t;

	(void)state;
	t = RUN_NOLU(VH_SCSI_INQUIRY, 0, 0, 0, 96, 0);
	assert_good(&t);
	assert_int_equal(g_buf[0], 0x7f); /* qualifier 011b, type 1Fh */
	t = RUN_NOLU(VH_SCSI_INQUIRY, 1, 0x80, 0, 96, 0);
	assert_good(&t);
	assert_int_equal(g_buf[0], 0x7f);
	assert_int_equal(t.data_len, 4);
	/* Everything that needs the logical unit: LOGICAL UNIT NOT SUPPORTED. */
	t = RUN_NOLU(VH_SCSI_TEST_UNIT_READY, 0, 0, 0, 0, 0);
	assert_sense(&t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_LUN_NOT_SUPPORTED);
	t = RUN_NOLU(VH_SCSI_READ_10, 0, 0, 0, 0, 0, 0, 0, 1, 0);
	assert_sense(&t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_LUN_NOT_SUPPORTED);
	t = RUN_NOLU(VH_SCSI_READ_CAPACITY_10, 0, 0, 0, 0, 0, 0, 0, 0, 0);
	assert_sense(&t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_LUN_NOT_SUPPORTED);
	/* ...but REPORT LUNS is the target's, and REQUEST SENSE reports the condition. */
	t = RUN_NOLU(VH_SCSI_REPORT_LUNS, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0);
	assert_good(&t);
	assert_int_equal(vh_scsi_be32(g_buf), 8);
	t = RUN_NOLU(VH_SCSI_REQUEST_SENSE, 0, 0, 0, 252, 0);
	assert_good(&t);
	assert_int_equal(t.data_len, 18);
	assert_int_equal(g_buf[2], VH_SCSI_SK_ILLEGAL_REQUEST);
	assert_int_equal(g_buf[12], 0x25);
}

static void
test_vpd_supported(void **state)
{
	static const uint8_t want[] = {0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2};
	struct vh_scsi_task t;

	(void)state;
	t = RUN(VH_SCSI_INQUIRY, 1, 0x00, 0, 255, 0);
	assert_good(&t);
	assert_int_equal(g_buf[1], 0x00);
	assert_int_equal(vh_scsi_be16(&g_buf[2]), sizeof(want));
	assert_memory_equal(&g_buf[4], want, sizeof(want));
	assert_int_equal(t.data_len, 4 + sizeof(want));
	/* Every listed page is served; an unlisted one is an invalid field. */
	for (size_t i = 0; i < sizeof(want); i++) {
		t = RUN(VH_SCSI_INQUIRY, 1, want[i], 0, 255, 0);
		assert_good(&t);
		assert_int_equal(g_buf[1], want[i]);
		assert_int_equal(t.data_len, 4u + vh_scsi_be16(&g_buf[2]));
	}
	t = RUN(VH_SCSI_INQUIRY, 1, 0x86, 0, 255, 0);
	assert_invalid_field(&t, 2, 7);
	/* A page cut at 2 bytes still starts right. */
	t = RUN(VH_SCSI_INQUIRY, 1, 0x83, 0, 2, 0);
	assert_good(&t);
	assert_int_equal(t.data_len, 2);
	assert_int_equal(g_buf[1], 0x83);
}

static void
test_vpd_serial_devid(void **state)
{
	struct vh_scsi_lu lu2 = g_lu;
	struct vh_scsi_task t;
	uint8_t naa1[8];

	(void)state;
	t = RUN(VH_SCSI_INQUIRY, 1, 0x80, 0, 255, 0);
	assert_good(&t);
	assert_int_equal(vh_scsi_be16(&g_buf[2]), 4);
	assert_memory_equal(&g_buf[4], "ram0", 4);

	t = RUN(VH_SCSI_INQUIRY, 1, 0x83, 0, 255, 0);
	assert_good(&t);
	/* One designator: NAA, binary, LU association, 8 bytes, NAA 3 (locally assigned). */
	assert_int_equal(vh_scsi_be16(&g_buf[2]), 12);
	assert_int_equal(t.data_len, 16);
	assert_int_equal(g_buf[4], 0x01);
	assert_int_equal(g_buf[5], 0x03);
	assert_int_equal(g_buf[7], 8);
	assert_int_equal(g_buf[8] >> 4, 3);
	assert_int_equal(vh_scsi_be64(&g_buf[8]), g_lu.naa);
	memcpy(naa1, &g_buf[8], 8);

	/* Another unit: another identifier (the device computes it from the bdev's uuid), and a
	 * 64-byte serial fits VPD 80h. */
	lu2.naa = 0x3fedcba987654321ull;
	lu2.serial = "a-much-longer-serial-number-that-fills-many-bytes-of-the-page-64";
	t = run_lu(&lu2, (uint8_t[]){VH_SCSI_INQUIRY, 1, 0x83, 0, 255, 0}, 6);
	assert_good(&t);
	assert_memory_not_equal(&g_buf[8], naa1, 8);
	t = run_lu(&lu2, (uint8_t[]){VH_SCSI_INQUIRY, 1, 0x80, 0, 255, 0}, 6);
	assert_int_equal(vh_scsi_be16(&g_buf[2]), 64);
	assert_int_equal(t.data_len, 68);
}

static void
test_vpd_limits_provisioning(void **state)
{
	struct vh_scsi_lu lu = g_lu;
	struct vh_scsi_task t;

	(void)state;
	t = RUN(VH_SCSI_INQUIRY, 1, 0xb0, 0, 255, 0);
	assert_good(&t);
	assert_int_equal(vh_scsi_be16(&g_buf[2]), 0x3c);
	assert_int_equal(g_buf[4] & 1, 1); /* WSNZ */
	assert_int_equal(vh_scsi_be32(&g_buf[8]), VH_SCSI_MAX_XFER_BYTES / 512);
	assert_int_equal(vh_scsi_be32(&g_buf[20]), VH_SCSI_MAX_UNMAP_BYTES / 512);
	assert_int_equal(vh_scsi_be32(&g_buf[24]), VH_SCSI_MAX_UNMAP_DESC);
	assert_int_equal(vh_scsi_be32(&g_buf[28]), 8);
	assert_int_equal(vh_scsi_be64(&g_buf[36]), VH_SCSI_MAX_WS_BYTES / 512);

	t = RUN(VH_SCSI_INQUIRY, 1, 0xb1, 0, 255, 0);
	assert_good(&t);
	assert_int_equal(vh_scsi_be16(&g_buf[4]), 1); /* non-rotating */

	t = RUN(VH_SCSI_INQUIRY, 1, 0xb2, 0, 255, 0);
	assert_good(&t);
	assert_int_equal(vh_scsi_be16(&g_buf[2]), 4);
	assert_int_equal(g_buf[5] & 0xe0, 0xe0); /* LBPU, LBPWS, LBPWS10 */
	assert_int_equal(g_buf[6] & 7, 2);       /* thin */

	/* Without unmap support: no unmap limits, no provisioning bits, and 4 KiB blocks. */
	lu.unmap = false;
	lu.block_size = 4096;
	lu.num_blocks = 512;
	t = run_lu(&lu, (uint8_t[]){VH_SCSI_INQUIRY, 1, 0xb0, 0, 255, 0}, 6);
	assert_int_equal(vh_scsi_be32(&g_buf[8]), VH_SCSI_MAX_XFER_BYTES / 4096);
	assert_int_equal(vh_scsi_be32(&g_buf[20]), 0);
	assert_int_equal(vh_scsi_be32(&g_buf[24]), 0);
	assert_int_equal(vh_scsi_be16(&g_buf[6]), 1);
	t = run_lu(&lu, (uint8_t[]){VH_SCSI_INQUIRY, 1, 0xb2, 0, 255, 0}, 6);
	assert_int_equal(g_buf[5], 0);
	assert_int_equal(g_buf[6], 0);
}

/* ---- capacity, LUNs, sense, mode pages ---- */

static void
test_read_capacity(void **state)
{
	struct vh_scsi_lu big = g_lu;
	struct vh_scsi_task t;

	(void)state;
	t = RUN(VH_SCSI_READ_CAPACITY_10, 0, 0, 0, 0, 0, 0, 0, 0, 0);
	assert_good(&t);
	assert_int_equal(t.data_len, 8);
	assert_int_equal(vh_scsi_be32(&g_buf[0]), NB - 1);
	assert_int_equal(vh_scsi_be32(&g_buf[4]), 512);
	/* LBA without PMI: invalid; with PMI: accepted. */
	t = RUN(VH_SCSI_READ_CAPACITY_10, 0, 0, 0, 0, 1, 0, 0, 0, 0);
	assert_invalid_field(&t, 2, -1);
	t = RUN(VH_SCSI_READ_CAPACITY_10, 0, 0, 0, 0, 1, 0, 0, 1, 0);
	assert_good(&t);

	t = RUN(0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0);
	assert_good(&t);
	assert_int_equal(t.data_len, 32);
	assert_int_equal(vh_scsi_be64(&g_buf[0]), NB - 1);
	assert_int_equal(vh_scsi_be32(&g_buf[8]), 512);
	assert_int_equal(g_buf[14] & 0x80, 0x80); /* LBPME */
	assert_int_equal(g_buf[14] & 0x40, 0);    /* no LBPRZ promise */
	t = RUN(0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0);
	assert_int_equal(t.data_len, 12);
	t = RUN(0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
	assert_good(&t);
	assert_int_equal(t.data_len, 0);

	/* More than 2^32 blocks: READ CAPACITY (10) says FFFFFFFFh, (16) the real value. */
	big.num_blocks = 0x123456789ull;
	t = run_lu(&big, (uint8_t[]){VH_SCSI_READ_CAPACITY_10, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 10);
	assert_int_equal(vh_scsi_be32(&g_buf[0]), 0xffffffffu);
	t = run_lu(&big, (uint8_t[]){0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0}, 16);
	assert_int_equal(vh_scsi_be64(&g_buf[0]), 0x123456788ull);
	/* Exactly 2^32 blocks: the last LBA fits in 32 bits. */
	big.num_blocks = 0x100000000ull;
	t = run_lu(&big, (uint8_t[]){VH_SCSI_READ_CAPACITY_10, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 10);
	assert_int_equal(vh_scsi_be32(&g_buf[0]), 0xffffffffu);
}

static void
test_report_luns(void **state)
{
	struct vh_scsi_task t;

	(void)state;
	t = RUN(VH_SCSI_REPORT_LUNS, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0);
	assert_good(&t);
	assert_int_equal(t.data_len, 16);
	assert_int_equal(vh_scsi_be32(&g_buf[0]), 8);
	assert_int_equal(vh_scsi_be64(&g_buf[8]), 0);
	/* Allocation length below 16: cut, not refused (SPC-4). */
	t = RUN(VH_SCSI_REPORT_LUNS, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0);
	assert_good(&t);
	assert_int_equal(t.data_len, 4);
	assert_int_equal(vh_scsi_be32(&g_buf[0]), 8);
	/* Well-known LUNs only: an empty list. */
	t = RUN(VH_SCSI_REPORT_LUNS, 0, 0x01, 0, 0, 0, 0, 0, 1, 0, 0, 0);
	assert_good(&t);
	assert_int_equal(t.data_len, 8);
	assert_int_equal(vh_scsi_be32(&g_buf[0]), 0);
	t = RUN(VH_SCSI_REPORT_LUNS, 0, 0x02, 0, 0, 0, 0, 0, 1, 0, 0, 0);
	assert_int_equal(t.data_len, 16);
	t = RUN(VH_SCSI_REPORT_LUNS, 0, 0x03, 0, 0, 0, 0, 0, 1, 0, 0, 0);
	assert_invalid_field(&t, 2, 7);
	t = RUN(VH_SCSI_REPORT_LUNS, 0, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 0);
	assert_invalid_field(&t, 2, 7);
}

static void
test_request_sense_tur_ssu(void **state)
{
	struct vh_scsi_task t;

	(void)state;
	t = RUN(VH_SCSI_REQUEST_SENSE, 0, 0, 0, 252, 0);
	assert_good(&t);
	assert_int_equal(t.data_len, 18);
	assert_int_equal(g_buf[0], 0x70);
	assert_int_equal(g_buf[2], VH_SCSI_SK_NO_SENSE);
	assert_int_equal(g_buf[12], 0);
	/* Descriptor format on request. */
	t = RUN(VH_SCSI_REQUEST_SENSE, 1, 0, 0, 252, 0);
	assert_good(&t);
	assert_int_equal(t.data_len, 8);
	assert_int_equal(g_buf[0], 0x72);
	/* Allocation length 0 and 3. */
	t = RUN(VH_SCSI_REQUEST_SENSE, 0, 0, 0, 0, 0);
	assert_good(&t);
	assert_int_equal(t.data_len, 0);
	t = RUN(VH_SCSI_REQUEST_SENSE, 0, 0, 0, 3, 0);
	assert_int_equal(t.data_len, 3);

	t = RUN(VH_SCSI_TEST_UNIT_READY, 0, 0, 0, 0, 0);
	assert_good(&t);
	assert_int_equal(t.data_len, 0);
	t = RUN(VH_SCSI_START_STOP_UNIT, 1, 0, 0, 0x01, 0); /* IMMED, START */
	assert_good(&t);
	t = RUN(VH_SCSI_START_STOP_UNIT, 0, 0, 0, 0x00, 0); /* STOP */
	assert_good(&t);
}

/* Offset of the first mode page after the header and block descriptor. */
static unsigned
first_page(bool ten)
{
	return ten ? 8u + vh_scsi_be16(&g_buf[6]) : 4u + g_buf[3];
}

static void
test_mode_sense(void **state)
{
	struct vh_scsi_lu lu = g_lu;
	struct vh_scsi_task t;
	unsigned p;

	(void)state;
	/* (6), caching page, block descriptor included. */
	t = RUN(VH_SCSI_MODE_SENSE_6, 0, 0x08, 0, 255, 0);
	assert_good(&t);
	assert_int_equal(t.data_len, 4 + 8 + 20);
	assert_int_equal(g_buf[0], t.data_len - 1);
	assert_int_equal(g_buf[2], 0); /* not write protected, no DPOFUA */
	assert_int_equal(g_buf[3], 8);
	assert_int_equal(vh_scsi_be32(&g_buf[4]) & 0xffffff, NB);
	assert_int_equal(vh_scsi_be32(&g_buf[8]) & 0xffffff, 512);
	p = first_page(false);
	assert_int_equal(g_buf[p], 0x08);
	assert_int_equal(g_buf[p + 1], 18);
	assert_int_equal(g_buf[p + 2] & 0x04, 0x04); /* WCE */
	assert_int_equal(g_buf[p + 2] & 0x01, 0);    /* RCD */

	/* DBD, control page. */
	t = RUN(VH_SCSI_MODE_SENSE_6, 0x08, 0x0a, 0, 255, 0);
	assert_good(&t);
	assert_int_equal(g_buf[3], 0);
	assert_int_equal(t.data_len, 4 + 12);
	assert_int_equal(g_buf[4], 0x0a);
	assert_int_equal(g_buf[5], 10);
	assert_int_equal(g_buf[6] & 0x04, 0); /* D_SENSE: fixed format */

	/* All pages, (10) with a long LBA block descriptor. */
	t = RUN(VH_SCSI_MODE_SENSE_10, 0x10, 0x3f, 0, 0, 0, 0, 1, 0, 0);
	assert_good(&t);
	assert_int_equal(t.data_len, 8 + 16 + 20 + 12);
	assert_int_equal(vh_scsi_be16(&g_buf[0]), t.data_len - 2);
	assert_int_equal(g_buf[4] & 1, 1); /* LONGLBA */
	assert_int_equal(vh_scsi_be16(&g_buf[6]), 16);
	assert_int_equal(vh_scsi_be64(&g_buf[8]), NB);
	assert_int_equal(vh_scsi_be32(&g_buf[20]), 512);
	p = first_page(true);
	assert_int_equal(g_buf[p], 0x08);
	assert_int_equal(g_buf[p + 20], 0x0a);
	/* All pages and subpages. */
	t = RUN(VH_SCSI_MODE_SENSE_10, 0x08, 0x3f, 0xff, 0, 0, 0, 1, 0, 0);
	assert_good(&t);
	assert_int_equal(t.data_len, 8 + 20 + 12);

	/* Changeable values: nothing (no MODE SELECT), so WCE reads 0. */
	t = RUN(VH_SCSI_MODE_SENSE_6, 0x08, 0x48, 0, 255, 0);
	assert_good(&t);
	assert_int_equal(g_buf[4 + 2], 0);
	/* Default values equal the current ones. */
	t = RUN(VH_SCSI_MODE_SENSE_6, 0x08, 0x88, 0, 255, 0);
	assert_int_equal(g_buf[4 + 2] & 0x04, 0x04);
	/* Saved values: not supported. */
	t = RUN(VH_SCSI_MODE_SENSE_6, 0, 0xc8, 0, 255, 0);
	assert_sense(&t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_SAVING_NOT_SUPP);
	/* Unknown page, subpage of a page. */
	t = RUN(VH_SCSI_MODE_SENSE_6, 0, 0x1c, 0, 255, 0);
	assert_invalid_field(&t, 2, 5);
	t = RUN(VH_SCSI_MODE_SENSE_6, 0, 0x08, 0x01, 255, 0);
	assert_invalid_field(&t, 3, 7);
	/* Short allocation length: header only, length field still the whole data. */
	t = RUN(VH_SCSI_MODE_SENSE_6, 0, 0x3f, 0, 4, 0);
	assert_good(&t);
	assert_int_equal(t.data_len, 4);
	assert_int_equal(g_buf[0], 4 + 8 + 20 + 12 - 1);
	t = RUN(VH_SCSI_MODE_SENSE_10, 0, 0x3f, 0, 0, 0, 0, 0, 1, 0);
	assert_int_equal(t.data_len, 1);

	/* No write cache: WCE 0. Huge unit: short block descriptor saturates at FFFFFFh. */
	lu.write_cache = false;
	lu.num_blocks = 1ull << 30;
	t = run_lu(&lu, (uint8_t[]){VH_SCSI_MODE_SENSE_6, 0, 0x08, 0, 255, 0}, 6);
	assert_int_equal(vh_scsi_be32(&g_buf[4]) & 0xffffff, 0xffffff);
	assert_int_equal(g_buf[first_page(false) + 2] & 0x04, 0);
}

/* ---- I/O commands ---- */

static void
test_read_write_6(void **state)
{
	struct vh_scsi_task t;

	(void)state;
	/* Length 0 means 256 blocks. */
	t = RUN(VH_SCSI_READ_6, 0, 0, 0, 0, 0);
	assert_int_equal(t.op, VH_SCSI_OP_READ);
	assert_int_equal(t.lba, 0);
	assert_int_equal(t.nblocks, 256);
	assert_int_equal(t.xfer, 256 * 512);
	assert_false(t.fua);
	/* 21-bit LBA; the top three bits of byte 1 are reserved and ignored. */
	t = RUN(VH_SCSI_WRITE_6, 0xe0, 0x0e, 0xff, 1, 0);
	assert_int_equal(t.op, VH_SCSI_OP_WRITE);
	assert_int_equal(t.lba, 0xeff);
	assert_int_equal(t.nblocks, 1);
	/* Last block; one past it; 256 blocks ending exactly at the end. */
	t = RUN(VH_SCSI_READ_6, 0, (NB - 1) >> 8, (NB - 1) & 0xff, 1, 0);
	assert_int_equal(t.op, VH_SCSI_OP_READ);
	t = RUN(VH_SCSI_READ_6, 0, NB >> 8, NB & 0xff, 1, 0);
	assert_sense(&t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_LBA_OUT_OF_RANGE);
	t = RUN(VH_SCSI_READ_6, 0, (NB - 256) >> 8, (NB - 256) & 0xff, 0, 0);
	assert_int_equal(t.op, VH_SCSI_OP_READ);
	assert_int_equal(t.nblocks, 256);
	t = RUN(VH_SCSI_READ_6, 0, (NB - 255) >> 8, (NB - 255) & 0xff, 0, 0);
	assert_sense(&t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_LBA_OUT_OF_RANGE);
	t = RUN(VH_SCSI_WRITE_6, 0x1f, 0xff, 0xff, 1, 0);
	assert_sense(&t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_LBA_OUT_OF_RANGE);
}

static void
test_read_write_10_12_16(void **state)
{
	struct vh_scsi_task t;

	(void)state;
	t = RUN(VH_SCSI_READ_10, 0, 0, 0, 0x0f, 0xf0, 0, 0, 0x10, 0);
	assert_int_equal(t.op, VH_SCSI_OP_READ);
	assert_int_equal(t.lba, 0xff0);
	assert_int_equal(t.nblocks, 16);
	t = RUN(VH_SCSI_WRITE_10, 0x08, 0, 0, 0, 1, 0, 0, 2, 0); /* FUA */
	assert_int_equal(t.op, VH_SCSI_OP_WRITE);
	assert_true(t.fua);
	assert_int_equal(t.xfer, 1024);
	t = RUN(VH_SCSI_READ_12, 0x10, 0, 0, 0, 7, 0, 0, 0, 9, 0, 0); /* DPO is ignored */
	assert_int_equal(t.op, VH_SCSI_OP_READ);
	assert_int_equal(t.lba, 7);
	assert_int_equal(t.nblocks, 9);
	t = RUN(VH_SCSI_WRITE_12, 0, 0, 0, 0, 7, 0, 0, 0, 9, 0, 0);
	assert_int_equal(t.op, VH_SCSI_OP_WRITE);
	t = RUN(VH_SCSI_READ_16, 0, 0, 0, 0, 0, 0, 0, 0x0f, 0xff, 0, 0, 0, 1, 0, 0);
	assert_int_equal(t.op, VH_SCSI_OP_READ);
	assert_int_equal(t.lba, NB - 1);
	t = RUN(VH_SCSI_WRITE_16, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0);
	assert_int_equal(t.op, VH_SCSI_OP_WRITE);
	assert_true(t.fua);

	/* Transfer length 0: no data, GOOD, in every size except (6). */
	t = RUN(VH_SCSI_READ_10, 0, 0, 0, 0, 5, 0, 0, 0, 0);
	assert_good(&t);
	t = RUN(VH_SCSI_WRITE_12, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0);
	assert_good(&t);
	t = RUN(VH_SCSI_READ_16, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0);
	assert_good(&t);
	/* ...but the LBA must still be valid. */
	t = RUN(VH_SCSI_READ_10, 0, 0, 0, NB >> 8, NB & 0xff, 0, 0, 0, 0);
	assert_sense(&t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_LBA_OUT_OF_RANGE);

	/* Past the end, and LBAs that overflow when the length is added. */
	t = RUN(VH_SCSI_READ_10, 0, 0, 0, 0x0f, 0xff, 0, 0, 2, 0);
	assert_sense(&t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_LBA_OUT_OF_RANGE);
	t = RUN(VH_SCSI_READ_16, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2, 0,
	        0);
	assert_sense(&t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_LBA_OUT_OF_RANGE);
	t = RUN(VH_SCSI_WRITE_12, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0);
	assert_sense(&t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_LBA_OUT_OF_RANGE);

	/* Over the maximum transfer length: invalid field pointing at the length. */
	t = RUN(VH_SCSI_READ_16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0);
	assert_invalid_field(&t, 10, -1);
	t = RUN(VH_SCSI_READ_12, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0); /* 64 Ki blocks = 32 MiB */
	assert_invalid_field(&t, 6, -1);

	/* RDPROTECT / WRPROTECT: no protection information. */
	t = RUN(VH_SCSI_READ_10, 0x20, 0, 0, 0, 0, 0, 0, 1, 0);
	assert_invalid_field(&t, 1, 7);
	t = RUN(VH_SCSI_WRITE_16, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0);
	assert_invalid_field(&t, 1, 7);
}

static void
test_verify_sync(void **state)
{
	struct vh_scsi_lu lu = g_lu;
	struct vh_scsi_task t;

	(void)state;
	t = RUN(VH_SCSI_VERIFY_10, 0, 0, 0, 0, 0, 0, 0, 8, 0);
	assert_good(&t);
	t = RUN(VH_SCSI_VERIFY_16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0);
	assert_good(&t);
	t = RUN(VH_SCSI_VERIFY_10, 0, 0, 0, 0x0f, 0xff, 0, 0, 8, 0);
	assert_sense(&t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_LBA_OUT_OF_RANGE);
	t = RUN(VH_SCSI_VERIFY_10, 0x02, 0, 0, 0, 0, 0, 0, 8, 0); /* BYTCHK */
	assert_invalid_field(&t, 1, 2);

	t = RUN(VH_SCSI_SYNC_CACHE_10, 0, 0, 0, 0, 0, 0, 0, 0, 0);
	assert_int_equal(t.op, VH_SCSI_OP_FLUSH);
	t = RUN(VH_SCSI_SYNC_CACHE_16, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
	assert_int_equal(t.op, VH_SCSI_OP_FLUSH);
	t = RUN(VH_SCSI_SYNC_CACHE_10, 0, 0, 0, NB >> 8, NB & 0xff, 0, 0, 0, 0);
	assert_sense(&t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_LBA_OUT_OF_RANGE);
	/* No volatile cache: nothing to flush. */
	lu.write_cache = false;
	t = run_lu(&lu, (uint8_t[]){VH_SCSI_SYNC_CACHE_10, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 10);
	assert_good(&t);
}

static void
test_write_same(void **state)
{
	struct vh_scsi_lu lu = g_lu;
	struct vh_scsi_task t;

	(void)state;
	t = RUN(VH_SCSI_WRITE_SAME_10, 0, 0, 0, 0, 8, 0, 0, 16, 0);
	assert_int_equal(t.op, VH_SCSI_OP_WRITE_SAME);
	assert_int_equal(t.lba, 8);
	assert_int_equal(t.nblocks, 16);
	assert_int_equal(t.xfer, 512);
	assert_false(t.ws_unmap);
	assert_false(t.ws_ndob);
	t = RUN(VH_SCSI_WRITE_SAME_16, 0x08, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 16, 0, 0);
	assert_int_equal(t.op, VH_SCSI_OP_WRITE_SAME);
	assert_true(t.ws_unmap);
	t = RUN(VH_SCSI_WRITE_SAME_16, 0x09, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 16, 0, 0);
	assert_true(t.ws_ndob);
	assert_int_equal(t.xfer, 0);
	/* 0 blocks with WSNZ; ANCHOR; PBDATA/LBDATA; past the end; over the limit. */
	t = RUN(VH_SCSI_WRITE_SAME_10, 0, 0, 0, 0, 8, 0, 0, 0, 0);
	assert_invalid_field(&t, 7, -1);
	t = RUN(VH_SCSI_WRITE_SAME_16, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0);
	assert_invalid_field(&t, 10, -1);
	t = RUN(VH_SCSI_WRITE_SAME_16, 0x18, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 16, 0, 0);
	assert_invalid_field(&t, 1, 4);
	t = RUN(VH_SCSI_WRITE_SAME_10, 0x02, 0, 0, 0, 8, 0, 0, 16, 0);
	assert_invalid_field(&t, 1, 2);
	t = RUN(VH_SCSI_WRITE_SAME_10, 0, 0, 0, 0x0f, 0xf8, 0, 0, 9, 0);
	assert_sense(&t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_LBA_OUT_OF_RANGE);
	t = RUN(VH_SCSI_WRITE_SAME_16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0);
	assert_invalid_field(&t, 10, -1);
	/* UNMAP bit without LBPWS: invalid; without it, still a plain write of the pattern. */
	lu.unmap = false;
	t = run_lu(&lu, (uint8_t[]){VH_SCSI_WRITE_SAME_10, 0x08, 0, 0, 0, 8, 0, 0, 16, 0}, 10);
	assert_invalid_field(&t, 1, 3);
	t = run_lu(&lu, (uint8_t[]){VH_SCSI_WRITE_SAME_10, 0, 0, 0, 0, 8, 0, 0, 16, 0}, 10);
	assert_int_equal(t.op, VH_SCSI_OP_WRITE_SAME);
}

static void
test_unmap(void **state)
{
	struct vh_scsi_lu lu = g_lu;
	struct vh_scsi_task t;
	uint8_t hdr[8], d[16];
	uint64_t lba, n;

	(void)state;
	t = RUN(VH_SCSI_UNMAP, 0, 0, 0, 0, 0, 0, 0, 24, 0);
	assert_int_equal(t.op, VH_SCSI_OP_UNMAP);
	assert_int_equal(t.xfer, 24);
	/* Parameter list length 0: nothing to do; 1..7: a length error. */
	t = RUN(VH_SCSI_UNMAP, 0, 0, 0, 0, 0, 0, 0, 0, 0);
	assert_good(&t);
	t = RUN(VH_SCSI_UNMAP, 0, 0, 0, 0, 0, 0, 0, 7, 0);
	assert_sense(&t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_PARAM_LIST_LENGTH);
	t = RUN(VH_SCSI_UNMAP, 1, 0, 0, 0, 0, 0, 0, 24, 0);
	assert_invalid_field(&t, 1, 0);

	/* Header: the descriptor count follows the smallest of the lengths; a partial one is
	 * dropped. */
	t = RUN(VH_SCSI_UNMAP, 0, 0, 0, 0, 0, 0, 0, 40, 0);
	memset(hdr, 0, sizeof(hdr));
	vh_scsi_put_be16(&hdr[0], 38);
	vh_scsi_put_be16(&hdr[2], 32);
	assert_int_equal(vh_scsi_unmap_header(&t, hdr, 40), 2);
	assert_int_equal(vh_scsi_unmap_header(&t, hdr, 39), 1); /* the guest sent less */
	vh_scsi_put_be16(&hdr[2], 20);
	assert_int_equal(vh_scsi_unmap_header(&t, hdr, 40), 1);
	vh_scsi_put_be16(&hdr[2], 0);
	assert_int_equal(vh_scsi_unmap_header(&t, hdr, 40), 0);
	assert_int_equal(vh_scsi_unmap_header(&t, hdr, 7), -1);
	assert_sense(&t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_PARAM_LIST_LENGTH);
	/* More descriptors than we advertise. */
	t = RUN(VH_SCSI_UNMAP, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0);
	vh_scsi_put_be16(&hdr[2], 16 * (VH_SCSI_MAX_UNMAP_DESC + 1));
	assert_int_equal(vh_scsi_unmap_header(&t, hdr, 0xffff), -1);
	assert_sense(&t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_INVALID_FIELD_PARAM);
	assert_int_equal(t.sense[15] & 0x40, 0); /* C/D = parameter list */

	/* Descriptors. */
	t = RUN(VH_SCSI_UNMAP, 0, 0, 0, 0, 0, 0, 0, 24, 0);
	memset(d, 0, sizeof(d));
	vh_scsi_put_be64(d, NB - 8);
	vh_scsi_put_be32(&d[8], 8);
	assert_int_equal(vh_scsi_unmap_desc(&t, d, &lba, &n), 0);
	assert_int_equal(lba, NB - 8);
	assert_int_equal(n, 8);
	vh_scsi_put_be32(&d[8], 9);
	assert_int_equal(vh_scsi_unmap_desc(&t, d, &lba, &n), -1);
	assert_sense(&t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_LBA_OUT_OF_RANGE);
	vh_scsi_put_be64(d, UINT64_MAX);
	vh_scsi_put_be32(&d[8], 0); /* 0 blocks: skipped whatever the LBA */
	assert_int_equal(vh_scsi_unmap_desc(&t, d, &lba, &n), 0);
	assert_int_equal(n, 0);
	vh_scsi_put_be64(d, UINT64_MAX - 1);
	vh_scsi_put_be32(&d[8], 4);
	assert_int_equal(vh_scsi_unmap_desc(&t, d, &lba, &n), -1);
	assert_sense(&t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_LBA_OUT_OF_RANGE);
	vh_scsi_put_be64(d, 0);
	vh_scsi_put_be32(&d[8], 0xffffffff);
	assert_int_equal(vh_scsi_unmap_desc(&t, d, &lba, &n), -1);
	assert_sense(&t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_INVALID_FIELD_PARAM);

	/* No unmap support: UNMAP is not a command of this unit. */
	lu.unmap = false;
	t = run_lu(&lu, (uint8_t[]){VH_SCSI_UNMAP, 0, 0, 0, 0, 0, 0, 0, 24, 0}, 10);
	assert_sense(&t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_INVALID_OPCODE);
}

static void
test_sense_helpers(void **state)
{
	struct vh_scsi_task t;

	(void)state;
	memset(&t, 0, sizeof(t));
	vh_scsi_task_sense(&t, VH_SCSI_SK_MEDIUM_ERROR, VH_SCSI_ASC_UNRECOVERED_READ);
	assert_sense(&t, VH_SCSI_SK_MEDIUM_ERROR, VH_SCSI_ASC_UNRECOVERED_READ);
	assert_int_equal(t.sense[15], 0); /* no field pointer */
	vh_scsi_task_invalid_field(&t, false, 0x1234, -1);
	assert_int_equal(t.sense[12], 0x26);
	assert_int_equal(t.sense[15], 0x80);
	assert_int_equal(vh_scsi_be16(&t.sense[16]), 0x1234);
	vh_scsi_task_good(&t);
	assert_good(&t);
}

/* Every 16-byte CDB with a random-ish first bytes pattern: never crashes, always answers. */
static void
test_all_opcodes_all_lus(void **state)
{
	struct vh_scsi_lu tiny = g_lu;
	struct vh_scsi_task t;

	(void)state;
	tiny.num_blocks = 1;
	for (unsigned op = 0; op < 256; op++) {
		for (unsigned v = 0; v < 4; v++) {
			uint8_t cdb[VH_SCSI_CDB_SIZE];

			memset(cdb, v == 0 ? 0 : v == 1 ? 0xff : (int)(op * 37 + v), sizeof(cdb));
			cdb[0] = (uint8_t)op;
			t = run_lu(v & 1 ? &tiny : &g_lu, cdb, sizeof(cdb));
			assert_true(t.data_len <= sizeof(g_buf));
			assert_true(t.status == VH_SCSI_GOOD ||
			            t.status == VH_SCSI_CHECK_CONDITION);
			if (t.op != VH_SCSI_OP_DONE) {
				assert_int_equal(t.status, VH_SCSI_GOOD);
			}
			t = run_lu(NULL, cdb, sizeof(cdb));
			assert_int_equal(t.op, VH_SCSI_OP_DONE);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_cdb_len),
	        cmocka_unit_test(test_invalid_opcodes),
	        cmocka_unit_test(test_naca),
	        cmocka_unit_test(test_lun_decode),
	        cmocka_unit_test(test_inquiry_standard),
	        cmocka_unit_test(test_inquiry_no_lu),
	        cmocka_unit_test(test_vpd_supported),
	        cmocka_unit_test(test_vpd_serial_devid),
	        cmocka_unit_test(test_vpd_limits_provisioning),
	        cmocka_unit_test(test_read_capacity),
	        cmocka_unit_test(test_report_luns),
	        cmocka_unit_test(test_request_sense_tur_ssu),
	        cmocka_unit_test(test_mode_sense),
	        cmocka_unit_test(test_read_write_6),
	        cmocka_unit_test(test_read_write_10_12_16),
	        cmocka_unit_test(test_verify_sync),
	        cmocka_unit_test(test_write_same),
	        cmocka_unit_test(test_unmap),
	        cmocka_unit_test(test_sense_helpers),
	        cmocka_unit_test(test_all_opcodes_all_lus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
