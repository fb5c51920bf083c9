/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The SCSI command layer of the virtio-scsi device (scsi_cmd.c): SBC/SPC command decoding,
 * sense data and the builders of INQUIRY (standard data and VPD pages), MODE SENSE, READ
 * CAPACITY and REPORT LUNS data. Pure functions: no guest memory, no bdev, no threads. The
 * device (scsi.c) copies the CDB and parameter data out of guest memory, calls these, and turns
 * the decided operation into bdev I/O.
 *
 * Threat model: the CDB and every parameter list come from the guest. They are decoded from
 * our own copies, every length and LBA range is checked with overflow-safe arithmetic, and the
 * data built never exceeds VH_SCSI_BUF_SIZE; what is returned is cut at the allocation length.
 *
 * Threads: any (no state).
 */
#ifndef VH_VHOST_SCSI_CMD_H
#define VH_VHOST_SCSI_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VH_SCSI_CDB_SIZE        32 /* virtio-scsi cdb_size (QEMU's config default) */
#define VH_SCSI_SENSE_SIZE      96 /* virtio-scsi sense_size */
#define VH_SCSI_FIXED_SENSE_LEN 18
/* Scratch a caller hands vh_scsi_exec() for built data: enough for the largest page we build. */
#define VH_SCSI_BUF_SIZE 512

/* Limits we advertise in the block limits VPD page and enforce. */
#define VH_SCSI_MAX_UNMAP_DESC  32                 /* block descriptors per UNMAP */
#define VH_SCSI_MAX_UNMAP_BYTES (2ull << 30)       /* per descriptor, like blk's discard */
#define VH_SCSI_MAX_WS_BYTES    (2ull << 30)       /* per WRITE SAME */
#define VH_SCSI_MAX_XFER_BYTES  (8u * 1024 * 1024) /* per READ/WRITE */

/* SAM status codes. */
#define VH_SCSI_GOOD            0x00
#define VH_SCSI_CHECK_CONDITION 0x02
#define VH_SCSI_BUSY            0x08

/* Sense keys. */
#define VH_SCSI_SK_NO_SENSE        0x0
#define VH_SCSI_SK_NOT_READY       0x2
#define VH_SCSI_SK_MEDIUM_ERROR    0x3
#define VH_SCSI_SK_HARDWARE_ERROR  0x4
#define VH_SCSI_SK_ILLEGAL_REQUEST 0x5
#define VH_SCSI_SK_UNIT_ATTENTION  0x6
#define VH_SCSI_SK_DATA_PROTECT    0x7
#define VH_SCSI_SK_ABORTED_COMMAND 0xb

/* Additional sense codes (ASC << 8 | ASCQ). */
#define VH_SCSI_ASC_NONE                0x0000
#define VH_SCSI_ASC_WRITE_ERROR         0x0c00
#define VH_SCSI_ASC_UNRECOVERED_READ    0x1100
#define VH_SCSI_ASC_PARAM_LIST_LENGTH   0x1a00
#define VH_SCSI_ASC_INVALID_OPCODE      0x2000
#define VH_SCSI_ASC_LBA_OUT_OF_RANGE    0x2100
#define VH_SCSI_ASC_INVALID_FIELD_CDB   0x2400
#define VH_SCSI_ASC_LUN_NOT_SUPPORTED   0x2500
#define VH_SCSI_ASC_INVALID_FIELD_PARAM 0x2600
#define VH_SCSI_ASC_CAPACITY_CHANGED    0x2a09
#define VH_SCSI_ASC_SAVING_NOT_SUPP     0x3900
#define VH_SCSI_ASC_INTERNAL_FAILURE    0x4400

/* Operation codes we implement. */
#define VH_SCSI_TEST_UNIT_READY      0x00
#define VH_SCSI_REQUEST_SENSE        0x03
#define VH_SCSI_READ_6               0x08
#define VH_SCSI_WRITE_6              0x0a
#define VH_SCSI_INQUIRY              0x12
#define VH_SCSI_MODE_SENSE_6         0x1a
#define VH_SCSI_START_STOP_UNIT      0x1b
#define VH_SCSI_READ_CAPACITY_10     0x25
#define VH_SCSI_READ_10              0x28
#define VH_SCSI_WRITE_10             0x2a
#define VH_SCSI_VERIFY_10            0x2f
#define VH_SCSI_SYNC_CACHE_10        0x35
#define VH_SCSI_WRITE_SAME_10        0x41
#define VH_SCSI_UNMAP                0x42
#define VH_SCSI_MODE_SENSE_10        0x5a
#define VH_SCSI_READ_16              0x88
#define VH_SCSI_WRITE_16             0x8a
#define VH_SCSI_VERIFY_16            0x8f
#define VH_SCSI_SYNC_CACHE_16        0x91
#define VH_SCSI_WRITE_SAME_16        0x93
#define VH_SCSI_SERVICE_ACTION_IN_16 0x9e
#define VH_SCSI_SAI_READ_CAPACITY_16 0x10
#define VH_SCSI_REPORT_LUNS          0xa0
#define VH_SCSI_READ_12              0xa8
#define VH_SCSI_WRITE_12             0xaa

/* What the command layer needs to know about a logical unit (built per command). */
struct vh_scsi_lu {
	uint64_t num_blocks;
	uint32_t block_size; /* power of two, 512..65536 */
	bool write_cache;    /* volatile cache: WCE = 1, SYNCHRONIZE CACHE flushes */
	bool unmap;          /* UNMAP and WRITE SAME's UNMAP bit can deallocate (LBPU, LBPWS) */
	/* NAA designator (VPD 83), stable across restarts: derived from the bdev's uuid. */
	uint64_t naa;
	/* VPD 80 unit serial number and T10 vendor designator; printable ASCII, <= 64 bytes. */
	const char *serial;
};

/* What vh_scsi_exec() decided. */
enum vh_scsi_op {
	VH_SCSI_OP_DONE = 0,   /* status, sense and data are final */
	VH_SCSI_OP_READ,       /* lba, nblocks: data-in */
	VH_SCSI_OP_WRITE,      /* lba, nblocks: data-out; fua */
	VH_SCSI_OP_FLUSH,      /* whole device */
	VH_SCSI_OP_UNMAP,      /* parameter list of xfer bytes in data-out: vh_scsi_unmap_*() */
	VH_SCSI_OP_WRITE_SAME, /* lba, nblocks; one block of data-out unless ndob; unmap */
};

struct vh_scsi_task {
	/* In: set by the caller. */
	const uint8_t *cdb;          /* VH_SCSI_CDB_SIZE bytes, our copy */
	const struct vh_scsi_lu *lu; /* NULL: no logical unit at this LUN (target present) */

	/* Out. */
	uint8_t op;     /* enum vh_scsi_op */
	uint8_t status; /* SAM status (with VH_SCSI_OP_DONE) */
	uint8_t sense_len;
	uint8_t sense[VH_SCSI_FIXED_SENSE_LEN];
	uint32_t data_len; /* VH_SCSI_OP_DONE: bytes of buf to return to the initiator */
	uint64_t lba;
	uint64_t nblocks;
	uint64_t xfer; /* bytes the data phase of an I/O operation moves (or needs) */
	bool fua;
	bool ws_unmap;
	bool ws_ndob;
};

/*
 * Decode and, for everything that is not I/O, execute the command in t->cdb for t->lu. Data to
 * return goes to buf (cap bytes, at least VH_SCSI_BUF_SIZE), already cut at the CDB's
 * allocation length: t->data_len. The caller cuts again at the size of the initiator's buffer.
 * For I/O (t->op != DONE) the caller performs the operation and completes the command with
 * vh_scsi_task_good() or vh_scsi_task_sense(). Never fails: bad commands get CHECK CONDITION.
 */
void vh_scsi_exec(struct vh_scsi_task *t, uint8_t *buf, uint32_t cap);

/* Status GOOD, no sense. */
void vh_scsi_task_good(struct vh_scsi_task *t);
/* CHECK CONDITION with fixed-format sense data: @key, @asc_ascq (VH_SCSI_ASC_*). */
void vh_scsi_task_sense(struct vh_scsi_task *t, uint8_t key, uint16_t asc_ascq);
/*
 * CHECK CONDITION, ILLEGAL REQUEST, INVALID FIELD IN CDB (or IN PARAMETER LIST when !in_cdb)
 * with the sense-key specific field pointer to byte @byte, bit @bit (bit < 0: no bit pointer).
 */
void vh_scsi_task_invalid_field(struct vh_scsi_task *t, bool in_cdb, uint16_t byte, int bit);

/* Length of a CDB from its operation code's group (6, 10, 12, 16), or 0 if unknown. */
unsigned vh_scsi_cdb_len(uint8_t opcode);

/*
 * Decode a virtio-scsi LUN field (VIRTIO 1.2 §5.6.6.1): byte 0 is 1, byte 1 the target, bytes
 * 2-3 a single-level LUN in peripheral (00b) or flat (01b) addressing, bytes 4-7 zero.
 * Returns 0 with *target and *lun set, or -EINVAL.
 */
int vh_scsi_lun_decode(const uint8_t lun[8], uint8_t *target, uint16_t *lun_id);
/* The LUN field of target @target, LUN 0, for events (peripheral addressing: bytes 2-3 zero). */
void vh_scsi_lun_encode(uint8_t target, uint8_t lun[8]);

/*
 * UNMAP parameter list: check the 8-byte header against the parameter list length the CDB
 * gave (t->xfer bytes were sent, @sent of them are in the buffers). Returns the number of
 * block descriptors (0 is legal: nothing to do) or -1 with the task failed (CHECK CONDITION).
 */
int vh_scsi_unmap_header(struct vh_scsi_task *t, const uint8_t hdr[8], uint64_t sent);
/*
 * One 16-byte UNMAP block descriptor (our copy) checked against the logical unit: range and
 * per-descriptor limit. Returns 0 with *lba and *nblocks set (nblocks may be 0: skip it), or
 * -1 with the task failed.
 */
int vh_scsi_unmap_desc(struct vh_scsi_task *t, const uint8_t d[16], uint64_t *lba,
                       uint64_t *nblocks);

/* Big-endian helpers for CDBs and SCSI data. */
static inline uint16_t
vh_scsi_be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t
vh_scsi_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t
vh_scsi_be64(const uint8_t *p)
{
	return ((uint64_t)vh_scsi_be32(p) << 32) | vh_scsi_be32(p + 4);
}

static inline void
vh_scsi_put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void
vh_scsi_put_be32(uint8_t *p, uint32_t v)
{
	vh_scsi_put_be16(p, (uint16_t)(v >> 16));
	vh_scsi_put_be16(p + 2, (uint16_t)v);
}

static inline void
vh_scsi_put_be64(uint8_t *p, uint64_t v)
{
	vh_scsi_put_be32(p, (uint32_t)(v >> 32));
	vh_scsi_put_be32(p + 4, (uint32_t)v);
}

#endif
