/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * SCSI commands (SPC-4, SBC-3) for the virtio-scsi device: the subset Linux's sd driver,
 * sg3_utils and Windows' storport use on a disk, decoded from a copy of the CDB, with sense data
 * that says which field was wrong.
 *
 * Threat model: the CDB and the parameter data are the guest's. Each field is read from our
 * copy once; lengths and LBA ranges are checked with overflow-safe arithmetic against the
 * logical unit and the limits we advertise (block limits VPD page). Builders write fixed-size
 * pages that fit VH_SCSI_BUF_SIZE (the longest, VPD 80h, is 68 bytes), and what is returned is
 * cut at the allocation length. Anything not understood is CHECK CONDITION, never an error of
 * the device.
 */
#include <errno.h>
#include <string.h>

#include "core/util.h"
#include "vhost/scsi_cmd.h"

#define VENDOR   "VHOSTD  "         /* T10 vendor identification: 8 bytes */
#define PRODUCT  "vhostd scsi disk" /* 16 bytes */
#define REVISION "0001"

/* Version descriptors (SPC-4 table E.1): SAM-5, SPC-4, SBC-3. */
static const uint16_t g_versions[] = {0x00a0, 0x0460, 0x04c0};

/* VPD pages we build, in the order the supported-pages page lists them. */
static const uint8_t g_vpd_pages[] = {0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2};

/* ---- status and sense ---- */

void
vh_scsi_task_good(struct vh_scsi_task *t)
{
	t->op = VH_SCSI_OP_DONE;
	t->status = VH_SCSI_GOOD;
	t->sense_len = 0;
}

/* Fixed-format sense data (SPC-4 §4.5.3): what Linux and Windows parse without asking. */
static void
fixed_sense(uint8_t *s, uint8_t key, uint16_t asc_ascq)
{
	memset(s, 0, VH_SCSI_FIXED_SENSE_LEN);
	s[0] = 0x70; /* current error, fixed format */
	s[2] = key & 0x0f;
	s[7] = VH_SCSI_FIXED_SENSE_LEN - 8; /* additional sense length */
	s[12] = (uint8_t)(asc_ascq >> 8);
	s[13] = (uint8_t)asc_ascq;
}

void
vh_scsi_task_sense(struct vh_scsi_task *t, uint8_t key, uint16_t asc_ascq)
{
	t->op = VH_SCSI_OP_DONE;
	t->status = VH_SCSI_CHECK_CONDITION;
	t->data_len = 0;
	fixed_sense(t->sense, key, asc_ascq);
	t->sense_len = VH_SCSI_FIXED_SENSE_LEN;
}

void
vh_scsi_task_invalid_field(struct vh_scsi_task *t, bool in_cdb, uint16_t byte, int bit)
{
	vh_scsi_task_sense(t, VH_SCSI_SK_ILLEGAL_REQUEST,
	                   in_cdb ? VH_SCSI_ASC_INVALID_FIELD_CDB
	                          : VH_SCSI_ASC_INVALID_FIELD_PARAM);
	/* Sense-key specific field pointer: SKSV, C/D, BPV + bit pointer, then the byte. */
	t->sense[15] = (uint8_t)(0x80 | (in_cdb ? 0x40 : 0) | (bit >= 0 ? 0x08 | (bit & 7) : 0));
	vh_scsi_put_be16(&t->sense[16], byte);
}

static void
lba_out_of_range(struct vh_scsi_task *t)
{
	vh_scsi_task_sense(t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_LBA_OUT_OF_RANGE);
}

/* ---- CDB decoding ---- */

unsigned
vh_scsi_cdb_len(uint8_t opcode)
{
	switch (opcode >> 5) {
	case 0:
		return 6;
	case 1:
	case 2:
		return 10;
	case 4:
		return 16;
	case 5:
		return 12;
	default:
		return 0; /* reserved, vendor specific, or variable length (0x7f) */
	}
}

int
vh_scsi_lun_decode(const uint8_t lun[8], uint8_t *target, uint16_t *lun_id)
{
	/* Byte 0 is 1 (the only bus); LUNs are single level: bytes 4-7 are zero. */
	if (lun[0] != 1 || lun[4] != 0 || lun[5] != 0 || lun[6] != 0 || lun[7] != 0) {
		return -EINVAL;
	}
	switch (lun[2] >> 6) {
	case 0: /* peripheral device addressing: bus 0, LUN in byte 3 */
		if (lun[2] != 0) {
			return -EINVAL;
		}
		break;
	case 1: /* flat space addressing: 14 bits */
		break;
	default:
		return -EINVAL;
	}
	*target = lun[1];
	*lun_id = (uint16_t)(((lun[2] & 0x3f) << 8) | lun[3]);
	return 0;
}

void
vh_scsi_lun_encode(uint8_t target, uint8_t lun[8])
{
	memset(lun, 0, 8);
	lun[0] = 1;
	lun[1] = target;
	/*
	 * LUN 0 in peripheral device addressing (byte 2 zero), as QEMU encodes LUNs below 256 in
	 * events: Linux reads an event's LUN as (lun[2] << 8) | lun[3] without masking the
	 * address method, so flat addressing (0x40) would name LUN 16384.
	 */
}

/* [lba, lba + n) within the logical unit? A zero-length range still needs a valid LBA. */
static bool
range_ok(const struct vh_scsi_lu *lu, uint64_t lba, uint64_t n)
{
	return lba < lu->num_blocks && n <= lu->num_blocks - lba;
}

/* Finish a command that returns @len bytes built in buf, cut at the allocation length. */
static void
done_data(struct vh_scsi_task *t, uint32_t len, uint32_t alloc_len, uint32_t cap)
{
	vh_scsi_task_good(t);
	t->data_len = VH_MIN(VH_MIN(len, alloc_len), cap);
}

/* ---- INQUIRY ---- */

static uint32_t
std_inquiry(const struct vh_scsi_lu *lu, uint8_t *buf)
{
	const uint32_t len = 58 + 2 * VH_ARRAY_SIZE(g_versions);

	memset(buf, 0, len);
	/* No logical unit here: peripheral qualifier 011b, device type 1Fh (SPC-4 §6.4.2). */
	buf[0] = lu != NULL ? 0x00 : 0x7f;
	buf[2] = 0x06;       /* SPC-4 */
	buf[3] = 0x10 | 0x2; /* HISUP, response data format 2 */
	buf[4] = (uint8_t)(len - 5);
	buf[7] = 0x02; /* CMDQUE */
	memcpy(&buf[8], VENDOR, 8);
	memcpy(&buf[16], PRODUCT, 16);
	memcpy(&buf[32], REVISION, 4);
	for (size_t i = 0; i < VH_ARRAY_SIZE(g_versions); i++) {
		vh_scsi_put_be16(&buf[58 + 2 * i], g_versions[i]);
	}
	return len;
}

/*
 * Device identification (83h): one NAA designator, locally assigned (NAA 3: we own no IEEE
 * company id). Linux takes the highest-priority designator for the disk's wwid and, between
 * equals, the longest: a T10 vendor ID designator here would win over NAA 3 and make the wwid
 * the serial, so there is none.
 */
static uint32_t
vpd_devid(const struct vh_scsi_lu *lu, uint8_t *buf)
{
	uint8_t *d = buf + 4;

	d[0] = 0x01; /* protocol identifier 0, code set: binary */
	d[1] = 0x03; /* PIV 0, associated with the logical unit, designator type: NAA */
	d[2] = 0;
	d[3] = 8;
	vh_scsi_put_be64(&d[4], lu->naa);
	return 4 + 12;
}

static uint32_t
vpd_block_limits(const struct vh_scsi_lu *lu, uint8_t *buf)
{
	uint32_t bs = lu->block_size, gran = VH_MAX(1u, 4096u / bs);

	memset(buf + 4, 0, 60);
	buf[4] = 0x01; /* WSNZ: WRITE SAME with 0 blocks is refused, not "to the end" */
	vh_scsi_put_be16(&buf[6], (uint16_t)gran);
	vh_scsi_put_be32(&buf[8], VH_SCSI_MAX_XFER_BYTES / bs);
	if (lu->unmap) {
		vh_scsi_put_be32(&buf[20], (uint32_t)(VH_SCSI_MAX_UNMAP_BYTES / bs));
		vh_scsi_put_be32(&buf[24], VH_SCSI_MAX_UNMAP_DESC);
		vh_scsi_put_be32(&buf[28], gran);
	}
	vh_scsi_put_be64(&buf[36], VH_SCSI_MAX_WS_BYTES / bs);
	return 64;
}

static uint32_t
vpd_page(const struct vh_scsi_lu *lu, uint8_t page, uint8_t *buf, bool *ok)
{
	uint32_t len;
	size_t slen;

	*ok = true;
	buf[0] = 0x00; /* connected direct-access block device */
	buf[1] = page;
	buf[2] = 0;
	switch (page) {
	case 0x00:
		memcpy(buf + 4, g_vpd_pages, sizeof(g_vpd_pages));
		len = 4 + sizeof(g_vpd_pages);
		break;
	case 0x80:
		slen = strnlen(lu->serial, 64);
		memcpy(buf + 4, lu->serial, slen);
		len = (uint32_t)(4 + slen);
		break;
	case 0x83:
		len = vpd_devid(lu, buf);
		break;
	case 0xb0:
		len = vpd_block_limits(lu, buf);
		break;
	case 0xb1:
		memset(buf + 4, 0, 60);
		vh_scsi_put_be16(&buf[4], 0x0001); /* medium rotation rate: non-rotating */
		len = 64;
		break;
	case 0xb2:
		memset(buf + 4, 0, 4);
		if (lu->unmap) {
			buf[5] = 0x80 | 0x40 | 0x20; /* LBPU, LBPWS, LBPWS10 */
			buf[6] = 0x02;               /* thin provisioned */
		}
		len = 8;
		break;
	default:
		*ok = false;
		return 0;
	}
	vh_scsi_put_be16(&buf[2], (uint16_t)(len - 4));
	return len;
}

static void
inquiry(struct vh_scsi_task *t, uint8_t *buf, uint32_t cap)
{
	const uint8_t *cdb = t->cdb;
	uint32_t alloc = vh_scsi_be16(&cdb[3]), len;
	bool ok;

	if (cdb[1] & 0x02) { /* CMDDT (obsolete) */
		vh_scsi_task_invalid_field(t, true, 1, 1);
		return;
	}
	if (!(cdb[1] & 0x01)) {
		if (cdb[2] != 0) { /* a page code needs EVPD */
			vh_scsi_task_invalid_field(t, true, 2, 7);
			return;
		}
		done_data(t, std_inquiry(t->lu, buf), alloc, cap);
		return;
	}
	if (t->lu == NULL) {
		/* No logical unit: qualifier 011b and an empty page. */
		memset(buf, 0, 4);
		buf[0] = 0x7f;
		buf[1] = cdb[2];
		done_data(t, 4, alloc, cap);
		return;
	}
	len = vpd_page(t->lu, cdb[2], buf, &ok);
	if (!ok) {
		vh_scsi_task_invalid_field(t, true, 2, 7);
		return;
	}
	done_data(t, len, alloc, cap);
}

/* ---- MODE SENSE ---- */

/* Append page @code (current, changeable or default values) at buf + off. */
static uint32_t
mode_page(const struct vh_scsi_lu *lu, uint8_t code, uint8_t pc, uint8_t *buf, uint32_t off)
{
	uint8_t *p = buf + off;

	if (code == 0x08) { /* caching */
		memset(p, 0, 20);
		p[0] = 0x08;
		p[1] = 18;
		/* Nothing is changeable (no MODE SELECT): the changeable mask is all zero. */
		if (pc != 1 && lu->write_cache) {
			p[2] = 0x04; /* WCE */
		}
		return off + 20;
	}
	/* control */
	memset(p, 0, 12);
	p[0] = 0x0a;
	p[1] = 10;
	if (pc != 1) {
		p[3] = 0x10; /* queue algorithm modifier 1: unrestricted reordering */
		p[8] = 0xff; /* busy timeout period: unlimited */
		p[9] = 0xff;
	}
	return off + 12;
}

static void
mode_sense(struct vh_scsi_task *t, uint8_t *buf, uint32_t cap)
{
	const uint8_t *cdb = t->cdb;
	const struct vh_scsi_lu *lu = t->lu;
	bool ten = cdb[0] == VH_SCSI_MODE_SENSE_10;
	bool dbd = (cdb[1] & 0x08) != 0, llbaa = ten && (cdb[1] & 0x10);
	uint8_t pc = cdb[2] >> 6, page = cdb[2] & 0x3f, sub = cdb[3];
	uint32_t alloc = ten ? vh_scsi_be16(&cdb[7]) : cdb[4];
	uint32_t hdr = ten ? 8 : 4, bdl = dbd ? 0 : (llbaa ? 16 : 8), off;

	if (pc == 3) {
		vh_scsi_task_sense(t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_SAVING_NOT_SUPP);
		return;
	}
	if (page != 0x08 && page != 0x0a && page != 0x3f) {
		vh_scsi_task_invalid_field(t, true, 2, 5);
		return;
	}
	if (sub != 0 && !(page == 0x3f && sub == 0xff)) {
		vh_scsi_task_invalid_field(t, true, 3, 7);
		return;
	}
	memset(buf, 0, hdr + bdl);
	off = hdr;
	if (bdl == 8) {
		uint64_t nb = lu->num_blocks > 0xffffff ? 0xffffff : lu->num_blocks;

		vh_scsi_put_be32(&buf[off], (uint32_t)nb); /* density code 0 in the top byte */
		vh_scsi_put_be32(&buf[off + 4], lu->block_size & 0xffffff);
	} else if (bdl == 16) {
		vh_scsi_put_be64(&buf[off], lu->num_blocks);
		vh_scsi_put_be32(&buf[off + 12], lu->block_size);
	}
	off += bdl;
	if (page == 0x08 || page == 0x3f) {
		off = mode_page(lu, 0x08, pc, buf, off);
	}
	if (page == 0x0a || page == 0x3f) {
		off = mode_page(lu, 0x0a, pc, buf, off);
	}
	/* Mode parameter header; device-specific parameter 0: not write protected, no DPOFUA. */
	if (ten) {
		vh_scsi_put_be16(&buf[0], (uint16_t)(off - 2));
		buf[4] = llbaa && bdl ? 0x01 : 0x00; /* LONGLBA */
		vh_scsi_put_be16(&buf[6], (uint16_t)bdl);
	} else {
		buf[0] = (uint8_t)(off - 1);
		buf[3] = (uint8_t)bdl;
	}
	done_data(t, off, alloc, cap);
}

/* ---- other non-I/O commands ---- */

static void
request_sense(struct vh_scsi_task *t, uint8_t *buf, uint32_t cap)
{
	bool desc = (t->cdb[1] & 0x01) != 0;
	uint16_t code = t->lu != NULL ? VH_SCSI_ASC_NONE : VH_SCSI_ASC_LUN_NOT_SUPPORTED;
	uint8_t key = t->lu != NULL ? VH_SCSI_SK_NO_SENSE : VH_SCSI_SK_ILLEGAL_REQUEST;
	uint32_t len;

	/*
	 * virtio-scsi returns sense with every failed command (autosense), so there is never a
	 * pending condition to report here: just the state of the logical unit.
	 */
	if (desc) {
		memset(buf, 0, 8);
		buf[0] = 0x72; /* current error, descriptor format */
		buf[1] = key;
		buf[2] = (uint8_t)(code >> 8);
		buf[3] = (uint8_t)code;
		len = 8;
	} else {
		fixed_sense(buf, key, code);
		len = VH_SCSI_FIXED_SENSE_LEN;
	}
	done_data(t, len, t->cdb[4], cap);
}

static void
report_luns(struct vh_scsi_task *t, uint8_t *buf, uint32_t cap)
{
	uint8_t sel = t->cdb[2];
	uint32_t alloc = vh_scsi_be32(&t->cdb[6]), n;

	switch (sel) {
	case 0x00: /* logical units */
	case 0x02: /* all */
	case 0x11: /* the administrative LU's: we are at LUN 0 of the only level */
		n = 1;
		break;
	case 0x01: /* well-known LUs: none */
	case 0x10:
	case 0x12:
		n = 0;
		break;
	default:
		vh_scsi_task_invalid_field(t, true, 2, 7);
		return;
	}
	memset(buf, 0, 8 + 8 * n); /* LUN 0 is eight zero bytes */
	vh_scsi_put_be32(&buf[0], 8 * n);
	done_data(t, 8 + 8 * n, alloc, cap);
}

static void
read_capacity_10(struct vh_scsi_task *t, uint8_t *buf, uint32_t cap)
{
	const struct vh_scsi_lu *lu = t->lu;
	uint64_t last = lu->num_blocks - 1;

	/* PMI is obsolete (SBC-3): without it the LBA field must be zero. */
	if (!(t->cdb[8] & 0x01) && vh_scsi_be32(&t->cdb[2]) != 0) {
		vh_scsi_task_invalid_field(t, true, 2, -1);
		return;
	}
	/* FFFFFFFFh tells the initiator to ask READ CAPACITY (16). */
	vh_scsi_put_be32(&buf[0], last > 0xffffffffull ? 0xffffffffu : (uint32_t)last);
	vh_scsi_put_be32(&buf[4], lu->block_size);
	done_data(t, 8, 8, cap);
}

static void
read_capacity_16(struct vh_scsi_task *t, uint8_t *buf, uint32_t cap)
{
	const struct vh_scsi_lu *lu = t->lu;

	memset(buf, 0, 32);
	vh_scsi_put_be64(&buf[0], lu->num_blocks - 1);
	vh_scsi_put_be32(&buf[8], lu->block_size);
	if (lu->unmap) {
		buf[14] = 0x80; /* LBPME; LBPRZ stays 0: not every back-end reads zeroes after it */
	}
	done_data(t, 32, vh_scsi_be32(&t->cdb[10]), cap);
}

/* ---- I/O commands ---- */

/* Checks shared by READ/WRITE/VERIFY/WRITE SAME: PROTECT field, range, transfer limit. */
static bool
io_checks(struct vh_scsi_task *t, uint64_t lba, uint64_t n, uint64_t max_bytes, unsigned len_byte)
{
	const struct vh_scsi_lu *lu = t->lu;

	if (t->cdb[0] != VH_SCSI_READ_6 && t->cdb[0] != VH_SCSI_WRITE_6 && (t->cdb[1] & 0xe0)) {
		vh_scsi_task_invalid_field(t, true, 1, 7); /* no protection information */
		return false;
	}
	if (n > max_bytes / lu->block_size) {
		vh_scsi_task_invalid_field(t, true, (uint16_t)len_byte, -1);
		return false;
	}
	if (!range_ok(lu, lba, n)) {
		lba_out_of_range(t);
		return false;
	}
	return true;
}

static void
read_write(struct vh_scsi_task *t)
{
	const uint8_t *cdb = t->cdb;
	bool write = false;
	unsigned len_byte;
	uint64_t lba, n;

	switch (cdb[0]) {
	case VH_SCSI_WRITE_6:
		write = true;
		/* fall through */
	case VH_SCSI_READ_6:
		lba = ((uint32_t)(cdb[1] & 0x1f) << 16) | vh_scsi_be16(&cdb[2]);
		n = cdb[4] == 0 ? 256 : cdb[4]; /* SBC-3 §5.15: 0 means 256 blocks */
		len_byte = 4;
		break;
	case VH_SCSI_WRITE_10:
		write = true;
		/* fall through */
	case VH_SCSI_READ_10:
		lba = vh_scsi_be32(&cdb[2]);
		n = vh_scsi_be16(&cdb[7]);
		len_byte = 7;
		break;
	case VH_SCSI_WRITE_12:
		write = true;
		/* fall through */
	case VH_SCSI_READ_12:
		lba = vh_scsi_be32(&cdb[2]);
		n = vh_scsi_be32(&cdb[6]);
		len_byte = 6;
		break;
	case VH_SCSI_WRITE_16:
		write = true;
		/* fall through */
	default: /* READ (16) */
		lba = vh_scsi_be64(&cdb[2]);
		n = vh_scsi_be32(&cdb[10]);
		len_byte = 10;
		break;
	}
	if (!io_checks(t, lba, n, VH_SCSI_MAX_XFER_BYTES, len_byte)) {
		return;
	}
	if (n == 0) {
		vh_scsi_task_good(t); /* "not an error": nothing is transferred */
		return;
	}
	t->op = write ? VH_SCSI_OP_WRITE : VH_SCSI_OP_READ;
	t->lba = lba;
	t->nblocks = n;
	t->xfer = n * t->lu->block_size;
	/* FUA (byte 1 bit 3) only exists in the 10/12/16-byte forms. */
	t->fua = cdb[0] != VH_SCSI_READ_6 && cdb[0] != VH_SCSI_WRITE_6 && (cdb[1] & 0x08);
}

static void
verify(struct vh_scsi_task *t)
{
	const uint8_t *cdb = t->cdb;
	bool ten = cdb[0] == VH_SCSI_VERIFY_10;
	uint64_t lba = ten ? vh_scsi_be32(&cdb[2]) : vh_scsi_be64(&cdb[2]);
	uint64_t n = ten ? vh_scsi_be16(&cdb[7]) : vh_scsi_be32(&cdb[10]);

	/* BYTCHK: comparing against data-out is not offered; medium verification is a no-op. */
	if (cdb[1] & 0x06) {
		vh_scsi_task_invalid_field(t, true, 1, 2);
		return;
	}
	if (!io_checks(t, lba, n, UINT64_MAX, ten ? 7 : 10)) {
		return;
	}
	vh_scsi_task_good(t);
}

static void
sync_cache(struct vh_scsi_task *t)
{
	const uint8_t *cdb = t->cdb;
	bool ten = cdb[0] == VH_SCSI_SYNC_CACHE_10;
	uint64_t lba = ten ? vh_scsi_be32(&cdb[2]) : vh_scsi_be64(&cdb[2]);
	uint64_t n = ten ? vh_scsi_be16(&cdb[7]) : vh_scsi_be32(&cdb[10]);

	/* 0 blocks means "to the end of the medium"; either way we flush everything. */
	if (!range_ok(t->lu, lba, n)) {
		lba_out_of_range(t);
		return;
	}
	if (!t->lu->write_cache) {
		vh_scsi_task_good(t);
		return;
	}
	t->op = VH_SCSI_OP_FLUSH;
}

static void
write_same(struct vh_scsi_task *t)
{
	const uint8_t *cdb = t->cdb;
	bool ten = cdb[0] == VH_SCSI_WRITE_SAME_10;
	uint64_t lba = ten ? vh_scsi_be32(&cdb[2]) : vh_scsi_be64(&cdb[2]);
	uint64_t n = ten ? vh_scsi_be16(&cdb[7]) : vh_scsi_be32(&cdb[10]);

	if (cdb[1] & 0x10) { /* ANCHOR: ANC_SUP is 0 */
		vh_scsi_task_invalid_field(t, true, 1, 4);
		return;
	}
	if (cdb[1] & 0x08 && !t->lu->unmap) { /* UNMAP without LBPWS */
		vh_scsi_task_invalid_field(t, true, 1, 3);
		return;
	}
	/* (10): bits 2-1 are the obsolete PBDATA/LBDATA; (16): bit 0 is NDOB. */
	if (cdb[1] & 0x06) {
		vh_scsi_task_invalid_field(t, true, 1, 2);
		return;
	}
	if (n == 0) { /* WSNZ = 1 in the block limits page */
		vh_scsi_task_invalid_field(t, true, ten ? 7 : 10, -1);
		return;
	}
	if (!io_checks(t, lba, n, VH_SCSI_MAX_WS_BYTES, ten ? 7 : 10)) {
		return;
	}
	t->op = VH_SCSI_OP_WRITE_SAME;
	t->lba = lba;
	t->nblocks = n;
	t->ws_unmap = (cdb[1] & 0x08) != 0;
	t->ws_ndob = !ten && (cdb[1] & 0x01);
	t->xfer = t->ws_ndob ? 0 : t->lu->block_size;
}

static void
unmap(struct vh_scsi_task *t)
{
	uint32_t plen = vh_scsi_be16(&t->cdb[7]);

	if (!t->lu->unmap) {
		vh_scsi_task_sense(t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_INVALID_OPCODE);
		return;
	}
	if (t->cdb[1] & 0x01) { /* ANCHOR */
		vh_scsi_task_invalid_field(t, true, 1, 0);
		return;
	}
	if (plen == 0) {
		vh_scsi_task_good(t); /* no parameter data: nothing to unmap */
		return;
	}
	if (plen < 8) {
		vh_scsi_task_sense(t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_PARAM_LIST_LENGTH);
		return;
	}
	t->op = VH_SCSI_OP_UNMAP;
	t->xfer = plen;
}

int
vh_scsi_unmap_header(struct vh_scsi_task *t, const uint8_t hdr[8], uint64_t sent)
{
	uint64_t have = VH_MIN(t->xfer, sent);
	uint32_t bd_len = vh_scsi_be16(&hdr[2]), n;

	if (have < 8) {
		vh_scsi_task_sense(t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_PARAM_LIST_LENGTH);
		return -1;
	}
	/* A descriptor cut short by either length is ignored (SBC-3 §5.25.2). */
	n = (uint32_t)(VH_MIN((uint64_t)bd_len, have - 8) / 16);
	if (n > VH_SCSI_MAX_UNMAP_DESC) {
		vh_scsi_task_invalid_field(t, false, 2, -1);
		return -1;
	}
	return (int)n;
}

int
vh_scsi_unmap_desc(struct vh_scsi_task *t, const uint8_t d[16], uint64_t *lba, uint64_t *nblocks)
{
	const struct vh_scsi_lu *lu = t->lu;
	uint64_t l = vh_scsi_be64(d), n = vh_scsi_be32(&d[8]);

	if (n > VH_SCSI_MAX_UNMAP_BYTES / lu->block_size) {
		vh_scsi_task_invalid_field(t, false, 8, -1);
		return -1;
	}
	if (n != 0 && !range_ok(lu, l, n)) {
		lba_out_of_range(t);
		return -1;
	}
	*lba = l;
	*nblocks = n;
	return 0;
}

/* ---- dispatch ---- */

static void
exec_lu(struct vh_scsi_task *t, uint8_t *buf, uint32_t cap)
{
	const uint8_t *cdb = t->cdb;

	switch (cdb[0]) {
	case VH_SCSI_TEST_UNIT_READY:
	case VH_SCSI_START_STOP_UNIT: /* no medium to load, no power conditions */
		vh_scsi_task_good(t);
		break;
	case VH_SCSI_MODE_SENSE_6:
	case VH_SCSI_MODE_SENSE_10:
		mode_sense(t, buf, cap);
		break;
	case VH_SCSI_READ_CAPACITY_10:
		read_capacity_10(t, buf, cap);
		break;
	case VH_SCSI_SERVICE_ACTION_IN_16:
		if ((cdb[1] & 0x1f) != VH_SCSI_SAI_READ_CAPACITY_16) {
			vh_scsi_task_invalid_field(t, true, 1, 4);
			break;
		}
		read_capacity_16(t, buf, cap);
		break;
	case VH_SCSI_READ_6:
	case VH_SCSI_READ_10:
	case VH_SCSI_READ_12:
	case VH_SCSI_READ_16:
	case VH_SCSI_WRITE_6:
	case VH_SCSI_WRITE_10:
	case VH_SCSI_WRITE_12:
	case VH_SCSI_WRITE_16:
		read_write(t);
		break;
	case VH_SCSI_VERIFY_10:
	case VH_SCSI_VERIFY_16:
		verify(t);
		break;
	case VH_SCSI_SYNC_CACHE_10:
	case VH_SCSI_SYNC_CACHE_16:
		sync_cache(t);
		break;
	case VH_SCSI_WRITE_SAME_10:
	case VH_SCSI_WRITE_SAME_16:
		write_same(t);
		break;
	case VH_SCSI_UNMAP:
		unmap(t);
		break;
	default:
		vh_scsi_task_sense(t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_INVALID_OPCODE);
		break;
	}
}

/* Whether we implement @op: the others are refused before their CDB is looked at. */
static bool
known_opcode(uint8_t op)
{
	switch (op) {
	case VH_SCSI_TEST_UNIT_READY:
	case VH_SCSI_REQUEST_SENSE:
	case VH_SCSI_READ_6:
	case VH_SCSI_WRITE_6:
	case VH_SCSI_INQUIRY:
	case VH_SCSI_MODE_SENSE_6:
	case VH_SCSI_START_STOP_UNIT:
	case VH_SCSI_READ_CAPACITY_10:
	case VH_SCSI_READ_10:
	case VH_SCSI_WRITE_10:
	case VH_SCSI_VERIFY_10:
	case VH_SCSI_SYNC_CACHE_10:
	case VH_SCSI_WRITE_SAME_10:
	case VH_SCSI_UNMAP:
	case VH_SCSI_MODE_SENSE_10:
	case VH_SCSI_READ_16:
	case VH_SCSI_WRITE_16:
	case VH_SCSI_VERIFY_16:
	case VH_SCSI_SYNC_CACHE_16:
	case VH_SCSI_WRITE_SAME_16:
	case VH_SCSI_SERVICE_ACTION_IN_16:
	case VH_SCSI_REPORT_LUNS:
	case VH_SCSI_READ_12:
	case VH_SCSI_WRITE_12:
		return true;
	default:
		return false;
	}
}

void
vh_scsi_exec(struct vh_scsi_task *t, uint8_t *buf, uint32_t cap)
{
	const uint8_t *cdb = t->cdb;
	unsigned len = vh_scsi_cdb_len(cdb[0]);

	t->op = VH_SCSI_OP_DONE;
	t->status = VH_SCSI_GOOD;
	t->sense_len = 0;
	t->data_len = 0;
	t->lba = 0;
	t->nblocks = 0;
	t->xfer = 0;
	t->fua = false;
	t->ws_unmap = false;
	t->ws_ndob = false;
	if (len == 0 || !known_opcode(cdb[0])) {
		vh_scsi_task_sense(t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_INVALID_OPCODE);
		return;
	}
	/* CONTROL byte: NACA asks for auto contingent allegiance, which we do not support. */
	if (cdb[len - 1] & 0x04) {
		vh_scsi_task_invalid_field(t, true, (uint16_t)(len - 1), 2);
		return;
	}
	switch (cdb[0]) {
	case VH_SCSI_INQUIRY:
		inquiry(t, buf, cap);
		return;
	case VH_SCSI_REPORT_LUNS: /* addressed to the target: any LUN answers it */
		report_luns(t, buf, cap);
		return;
	case VH_SCSI_REQUEST_SENSE:
		request_sense(t, buf, cap);
		return;
	default:
		break;
	}
	if (t->lu == NULL) {
		vh_scsi_task_sense(t, VH_SCSI_SK_ILLEGAL_REQUEST, VH_SCSI_ASC_LUN_NOT_SUPPORTED);
		return;
	}
	exec_lu(t, buf, cap);
}
