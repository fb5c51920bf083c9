/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The NVMe definitions the emulated controller needs on top of bdev/nvme/spec.h (the driver's
 * side of the same specification: registers, queue entries, status codes). Section numbers are
 * the NVM Express Base Specification 1.4's; names are the spec's.
 */
#ifndef VH_VFU_NVME_SPEC_H
#define VH_VFU_NVME_SPEC_H

#include <stdint.h>

#include "bdev/nvme/spec.h"

/* §3.1 registers we answer beyond the driver's list. */
#define NVME_REG_CMBLOC 0x38
#define NVME_REG_CMBSZ  0x3c
#define NVME_REG_END    0x40 /* registers below, reserved (reads 0) above up to the doorbells */

/* §3.1.5 CC fields. */
#define NVME_CC_EN(cc)     ((cc)&1u)
#define NVME_CC_CSS(cc)    (((cc) >> 4) & 0x7u)
#define NVME_CC_MPS(cc)    (((cc) >> 7) & 0xfu)
#define NVME_CC_AMS(cc)    (((cc) >> 11) & 0x7u)
#define NVME_CC_SHN(cc)    (((cc) >> 14) & 0x3u)
#define NVME_CC_IOSQES(cc) (((cc) >> 16) & 0xfu)
#define NVME_CC_IOCQES(cc) (((cc) >> 20) & 0xfu)

/* §3.1.6 CSTS shutdown status. */
#define NVME_CSTS_SHST_OCCURRING (1u << 2)

/* §4.6.1.2.2 command specific status values (SCT 1). */
enum {
	NVME_SC_CQ_INVALID = 0x00,
	NVME_SC_QID_INVALID = 0x01,
	NVME_SC_QUEUE_SIZE_INVALID = 0x02,
	NVME_SC_ABORT_LIMIT = 0x03,
	NVME_SC_AER_LIMIT = 0x05,
	NVME_SC_INVALID_VECTOR = 0x08,
	NVME_SC_INVALID_LOG_PAGE = 0x09,
	NVME_SC_QUEUE_DELETION_INVALID = 0x0c,
	NVME_SC_FEATURE_NOT_SAVEABLE = 0x0d,
	NVME_SC_FEATURE_NOT_CHANGEABLE = 0x0e,
};

/* §4.6.1.2.1 generic status values the driver's list lacks. */
enum {
	NVME_SC_SGL_SEG_DESC_INVALID = 0x0d,
	NVME_SC_SGL_NUM_DESC_INVALID = 0x0e,
	NVME_SC_SGL_DATA_LEN_INVALID = 0x0f,
	NVME_SC_SGL_DESC_TYPE_INVALID = 0x11,
};

/*
 * Our status values: SCT in bits 10:8, SC in bits 7:0, DNR in bit 14 (how they sit in the CQE
 * status field after a shift by one, phase excluded).
 */
#define NVME_ST(sct, sc)  ((uint16_t)((((sct)&0x7u) << 8) | ((sc)&0xffu)))
#define NVME_ST_DNR       0x4000u
#define NVME_ST_OK        0
#define NVME_ST_GEN(sc)   (NVME_ST(VH_NVME_SCT_GENERIC, (sc)) | NVME_ST_DNR)
#define NVME_ST_CMD(sc)   (NVME_ST(VH_NVME_SCT_CMD_SPECIFIC, (sc)) | NVME_ST_DNR)
#define NVME_ST_MEDIA(sc) (NVME_ST(VH_NVME_SCT_MEDIA, (sc)))

/* §5 admin opcodes beyond the driver's list. */
enum {
	NVME_ADM_GET_LOG_PAGE = 0x02,
	NVME_ADM_ASYNC_EVENT = 0x0c,
	NVME_ADM_DBBUF_CONFIG = 0x7c,
};

/* §5.15.1 Identify CNS values we answer. */
enum {
	NVME_CNS_NS_DESC_LIST = 0x03,
	NVME_CNS_CS_NS = 0x05,    /* I/O command set specific namespace (NVMe 2.0) */
	NVME_CNS_CS_CTRLR = 0x06, /* I/O command set specific controller (NVMe 2.0) */
};

/* §5.21.1 feature identifiers. */
enum {
	NVME_FEAT_ARBITRATION = 0x01,
	NVME_FEAT_POWER_MGMT = 0x02,
	NVME_FEAT_TEMP_THRESH = 0x04,
	NVME_FEAT_ERROR_RECOVERY = 0x05,
	NVME_FEAT_VOLATILE_WC = 0x06,
	NVME_FEAT_NUM_QUEUES = 0x07,
	NVME_FEAT_IRQ_COALESCE = 0x08,
	NVME_FEAT_IRQ_CONFIG = 0x09,
	NVME_FEAT_WRITE_ATOMIC = 0x0a,
	NVME_FEAT_ASYNC_EVENT = 0x0b,
};

/* §5.14.1 log page identifiers. */
enum {
	NVME_LOG_ERROR = 0x01,
	NVME_LOG_SMART = 0x02,
	NVME_LOG_FW_SLOT = 0x03,
	NVME_LOG_CHANGED_NS = 0x04,
	NVME_LOG_CMD_EFFECTS = 0x05,
};

/* §5.2 asynchronous events: type, information, log page. */
#define NVME_AER_TYPE_NOTICE     0x2
#define NVME_AER_INFO_NS_CHANGED 0x00
#define NVME_AEC_NS_ATTR         (1u << 8) /* Async Event Configuration: namespace notices */

/* §4.4 SGL descriptors (16 bytes): address, length, then type in the high nibble of byte 15. */
struct nvme_sgl_desc {
	uint64_t addr;
	uint32_t len;
	uint8_t rsvd[3];
	uint8_t type; /* bits 7:4 descriptor type, 3:0 subtype */
};
_Static_assert(sizeof(struct nvme_sgl_desc) == 16, "SGL descriptor is 16 bytes");
enum {
	NVME_SGL_DATA_BLOCK = 0x0,
	NVME_SGL_BIT_BUCKET = 0x1,
	NVME_SGL_SEGMENT = 0x2,
	NVME_SGL_LAST_SEGMENT = 0x3,
};
/* PSDT (SQE byte 1, bits 7:6): 00b PRPs, 01b/10b SGLs. */
#define NVME_PSDT(fuse_psdt) (((fuse_psdt) >> 6) & 0x3u)
#define NVME_FUSE(fuse_psdt) ((fuse_psdt)&0x3u)

/* NVM command set: Read/Write CDW12 bits. */
#define NVME_RW_FUA (1u << 30)

#endif
