/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * NVMe wire definitions: controller registers, queue entries and the identify data we use.
 * Section numbers refer to the NVM Express Base Specification 1.4 unless noted; field names are
 * the spec's. Everything is little-endian on the wire; like the rest of vhostd we only build for
 * little-endian hosts (checked below).
 */
#ifndef VH_BDEV_NVME_SPEC_H
#define VH_BDEV_NVME_SPEC_H

#include <stddef.h>
#include <stdint.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the NVMe driver assumes a little-endian host"
#endif

/* §3.1 Controller registers (offsets into BAR0). */
#define VH_NVME_REG_CAP   0x00 /* 64-bit: capabilities */
#define VH_NVME_REG_VS    0x08
#define VH_NVME_REG_INTMS 0x0c
#define VH_NVME_REG_INTMC 0x10
#define VH_NVME_REG_CC    0x14
#define VH_NVME_REG_CSTS  0x1c
#define VH_NVME_REG_NSSR  0x20
#define VH_NVME_REG_AQA   0x24
#define VH_NVME_REG_ASQ   0x28   /* 64-bit */
#define VH_NVME_REG_ACQ   0x30   /* 64-bit */
#define VH_NVME_REG_DBS   0x1000 /* first doorbell (SQ0TDBL) */

/* §3.1.1 CAP fields. */
#define VH_NVME_CAP_MQES(cap)   ((uint32_t)((cap)&0xffff))        /* max queue entries, 0's based */
#define VH_NVME_CAP_CQR(cap)    ((uint32_t)(((cap) >> 16) & 0x1)) /* contiguous queues required */
#define VH_NVME_CAP_TO(cap)     ((uint32_t)(((cap) >> 24) & 0xff)) /* ready timeout, 500 ms units */
#define VH_NVME_CAP_DSTRD(cap)  ((uint32_t)(((cap) >> 32) & 0xf))  /* doorbell stride 2^(2+n) */
#define VH_NVME_CAP_NSSRS(cap)  ((uint32_t)(((cap) >> 36) & 0x1))
#define VH_NVME_CAP_CSS(cap)    ((uint32_t)(((cap) >> 37) & 0xff))
#define VH_NVME_CAP_MPSMIN(cap) ((uint32_t)(((cap) >> 48) & 0xf)) /* 2^(12+n) */
#define VH_NVME_CAP_MPSMAX(cap) ((uint32_t)(((cap) >> 52) & 0xf))

#define VH_NVME_CAP_CSS_NVM 0x01 /* NVM command set supported */

/* §3.1.5 CC fields. */
#define VH_NVME_CC_EN           (1u << 0)
#define VH_NVME_CC_CSS_SHIFT    4  /* 000b: NVM command set */
#define VH_NVME_CC_MPS_SHIFT    7  /* host page size 2^(12+MPS) */
#define VH_NVME_CC_AMS_SHIFT    11 /* 000b: round robin */
#define VH_NVME_CC_SHN_SHIFT    14
#define VH_NVME_CC_SHN_MASK     (3u << 14)
#define VH_NVME_CC_SHN_NORMAL   (1u << 14)
#define VH_NVME_CC_IOSQES_SHIFT 16
#define VH_NVME_CC_IOCQES_SHIFT 20

/* §3.1.6 CSTS fields. */
#define VH_NVME_CSTS_RDY       (1u << 0)
#define VH_NVME_CSTS_CFS       (1u << 1)
#define VH_NVME_CSTS_SHST_MASK (3u << 2)
#define VH_NVME_CSTS_SHST_DONE (2u << 2)

/* §3.1.8 AQA: admin queue sizes, 0's based. */
#define VH_NVME_AQA(asqs, acqs) ((((uint32_t)(acqs)-1) << 16) | ((uint32_t)(asqs)-1))

/* The driver's fixed memory page size (CC.MPS = 0). */
#define VH_NVME_PAGE_SHIFT 12
#define VH_NVME_PAGE_SIZE  (1u << VH_NVME_PAGE_SHIFT)

/* §4.2 Submission queue entry (64 bytes). */
struct vh_nvme_sqe {
	uint8_t opc;
	uint8_t fuse_psdt; /* FUSE bits 1:0, PSDT bits 7:6 (00b = PRPs) */
	uint16_t cid;
	uint32_t nsid;
	uint32_t cdw2;
	uint32_t cdw3;
	uint64_t mptr;
	uint64_t prp1;
	uint64_t prp2;
	uint32_t cdw10;
	uint32_t cdw11;
	uint32_t cdw12;
	uint32_t cdw13;
	uint32_t cdw14;
	uint32_t cdw15;
};
_Static_assert(sizeof(struct vh_nvme_sqe) == 64, "SQE is 64 bytes");

/* §4.6 Completion queue entry (16 bytes). */
struct vh_nvme_cqe {
	uint32_t dw0; /* command specific */
	uint32_t dw1;
	uint16_t sqhd; /* SQ head pointer */
	uint16_t sqid;
	uint16_t cid;
	uint16_t status; /* bit 0: phase tag P; bits 15:1: status field */
};
_Static_assert(sizeof(struct vh_nvme_cqe) == 16, "CQE is 16 bytes");

/* §4.6.1 status field, as it sits in cqe.status (so including the phase bit at 0). */
#define VH_NVME_STATUS_P      0x0001
#define VH_NVME_STATUS_SC(s)  (((s) >> 1) & 0xff)
#define VH_NVME_STATUS_SCT(s) (((s) >> 9) & 0x7)
#define VH_NVME_STATUS_CRD(s) (((s) >> 12) & 0x3)
#define VH_NVME_STATUS_M      0x4000
#define VH_NVME_STATUS_DNR    0x8000
/* Build a status field (without phase) from SCT/SC, for the mock and tests. */
#define VH_NVME_STATUS(sct, sc) ((uint16_t)((((sct)&0x7) << 9) | (((sc)&0xff) << 1)))

/* §4.6.1.1 status code types. */
enum {
	VH_NVME_SCT_GENERIC = 0,
	VH_NVME_SCT_CMD_SPECIFIC = 1,
	VH_NVME_SCT_MEDIA = 2,
	VH_NVME_SCT_PATH = 3,
	VH_NVME_SCT_VENDOR = 7,
};

/* §4.6.1.2.1 generic command status (the ones we treat specially). */
enum {
	VH_NVME_SC_SUCCESS = 0x00,
	VH_NVME_SC_INVALID_OPCODE = 0x01,
	VH_NVME_SC_INVALID_FIELD = 0x02,
	VH_NVME_SC_CID_CONFLICT = 0x03,
	VH_NVME_SC_DATA_XFER_ERROR = 0x04,
	VH_NVME_SC_POWER_LOSS_ABORT = 0x05,
	VH_NVME_SC_INTERNAL = 0x06,
	VH_NVME_SC_ABORT_REQUESTED = 0x07,
	VH_NVME_SC_SQ_DELETION = 0x08,
	VH_NVME_SC_INVALID_PRP_OFFSET = 0x13,
	VH_NVME_SC_INVALID_NS = 0x0b,
	VH_NVME_SC_NS_NOT_READY = 0x82,
	VH_NVME_SC_LBA_OUT_OF_RANGE = 0x80,
	VH_NVME_SC_CAP_EXCEEDED = 0x81,
	VH_NVME_SC_RESERVATION_CONFLICT = 0x83,
};

/* §4.6.1.2.3 media and data integrity errors. */
enum {
	VH_NVME_SC_WRITE_FAULT = 0x80,
	VH_NVME_SC_UNRECOVERED_READ = 0x81,
	VH_NVME_SC_COMPARE_FAILURE = 0x85,
	VH_NVME_SC_ACCESS_DENIED = 0x86,
};

/* §5 admin command opcodes. */
enum {
	VH_NVME_ADM_DELETE_SQ = 0x00,
	VH_NVME_ADM_CREATE_SQ = 0x01,
	VH_NVME_ADM_DELETE_CQ = 0x04,
	VH_NVME_ADM_CREATE_CQ = 0x05,
	VH_NVME_ADM_IDENTIFY = 0x06,
	VH_NVME_ADM_ABORT = 0x08,
	VH_NVME_ADM_SET_FEATURES = 0x09,
	VH_NVME_ADM_GET_FEATURES = 0x0a,
};

/* §5.15.1 Identify CNS values. */
enum {
	VH_NVME_CNS_NS = 0x00,
	VH_NVME_CNS_CTRLR = 0x01,
	VH_NVME_CNS_ACTIVE_NS_LIST = 0x02,
};

/* §5.21.1.7 Number of Queues feature. */
#define VH_NVME_FEAT_NUM_QUEUES 0x07

/* §5.3 / §5.4 Create I/O CQ/SQ: CDW11 bits. */
#define VH_NVME_QUEUE_PC (1u << 0) /* physically contiguous */
#define VH_NVME_CQ_IEN   (1u << 1) /* interrupts enabled (we poll: never set) */

/* NVM command set (NVM Command Set spec 1.0 / Base 1.4 §6) opcodes. */
enum {
	VH_NVME_OPC_FLUSH = 0x00,
	VH_NVME_OPC_WRITE = 0x01,
	VH_NVME_OPC_READ = 0x02,
	VH_NVME_OPC_WRITE_ZEROES = 0x08,
	VH_NVME_OPC_DSM = 0x09,
};

/* §6.7 Dataset Management: CDW11 attribute bits and the range entry. */
#define VH_NVME_DSM_AD (1u << 2) /* deallocate */
struct vh_nvme_dsm_range {
	uint32_t cattr;
	uint32_t nlb;
	uint64_t slba;
};
_Static_assert(sizeof(struct vh_nvme_dsm_range) == 16, "DSM range is 16 bytes");
#define VH_NVME_DSM_MAX_RANGES 256

/*
 * §6.15 Write and §6.16 Write Zeroes, CDW12: Force Unit Access. Part of the base command (no
 * capability bit): the controller completes the command only once its data is on non-volatile
 * media, whatever its volatile write cache (VWC) holds.
 */
#define VH_NVME_RW_FUA (1u << 30)

/* §6.16 Write Zeroes: CDW12 bits. */
#define VH_NVME_WZ_DEAC    (1u << 25)
#define VH_NVME_WZ_MAX_NLB 65536u /* NLB is a 16-bit 0's based count */

/* §5.15.2.2 Identify Controller data structure (only what we read is named). */
struct vh_nvme_id_ctrl {
	uint16_t vid;
	uint16_t ssvid;
	char sn[20];
	char mn[40];
	char fr[8];
	uint8_t rab;
	uint8_t ieee[3];
	uint8_t cmic;
	uint8_t mdts; /* max data transfer size: 2^mdts min pages, 0 = no limit */
	uint16_t cntlid;
	uint32_t ver;
	uint8_t rsvd84[172];
	uint16_t oacs; /* byte 256 */
	uint8_t acl;
	uint8_t aerl;
	uint8_t frmw;
	uint8_t lpa;
	uint8_t elpe;
	uint8_t npss;
	uint8_t rsvd264[248];
	uint8_t sqes; /* byte 512 */
	uint8_t cqes;
	uint16_t maxcmd;
	uint32_t nn;
	uint16_t oncs; /* byte 520 */
	uint16_t fuses;
	uint8_t fna;
	uint8_t vwc;
	uint16_t awun;
	uint16_t awupf;
	uint8_t nvscc;
	uint8_t nwpc;
	uint16_t acwu;
	uint8_t rsvd534[2];
	uint32_t sgls;
	uint8_t rsvd540[228];
	char subnqn[256]; /* byte 768 */
	uint8_t rsvd1024[3072];
};
_Static_assert(sizeof(struct vh_nvme_id_ctrl) == 4096, "Identify Controller is 4 KiB");
_Static_assert(offsetof(struct vh_nvme_id_ctrl, oacs) == 256, "oacs offset");
_Static_assert(offsetof(struct vh_nvme_id_ctrl, sqes) == 512, "sqes offset");
_Static_assert(offsetof(struct vh_nvme_id_ctrl, oncs) == 520, "oncs offset");
_Static_assert(offsetof(struct vh_nvme_id_ctrl, vwc) == 525, "vwc offset");
_Static_assert(offsetof(struct vh_nvme_id_ctrl, subnqn) == 768, "subnqn offset");

#define VH_NVME_ONCS_DSM          (1u << 2)
#define VH_NVME_ONCS_WRITE_ZEROES (1u << 3)
#define VH_NVME_VWC_PRESENT       (1u << 0)

/* §5.15.2.1 Identify Namespace data structure. */
struct vh_nvme_lbaf {
	uint16_t ms;   /* metadata bytes per LBA */
	uint8_t lbads; /* LBA data size, 2^n */
	uint8_t rp;
};

struct vh_nvme_id_ns {
	uint64_t nsze;
	uint64_t ncap;
	uint64_t nuse;
	uint8_t nsfeat;
	uint8_t nlbaf;
	uint8_t flbas;
	uint8_t mc;
	uint8_t dpc;
	uint8_t dps;
	uint8_t nmic;
	uint8_t rescap;
	uint8_t fpi;
	uint8_t dlfeat;
	uint16_t nawun;
	uint16_t nawupf;
	uint16_t nacwu;
	uint16_t nabsn;
	uint16_t nabo;
	uint16_t nabspf;
	uint16_t noiob;
	uint8_t nvmcap[16];
	uint8_t rsvd64[40];
	uint8_t nguid[16]; /* byte 104 */
	uint8_t eui64[8];
	struct vh_nvme_lbaf lbaf[16]; /* byte 128 */
	uint8_t rsvd192[3904];
};
_Static_assert(sizeof(struct vh_nvme_id_ns) == 4096, "Identify Namespace is 4 KiB");
_Static_assert(offsetof(struct vh_nvme_id_ns, nguid) == 104, "nguid offset");
_Static_assert(offsetof(struct vh_nvme_id_ns, lbaf) == 128, "lbaf offset");

#define VH_NVME_FLBAS_INDEX(f) ((f)&0xf)
#define VH_NVME_FLBAS_EXTENDED (1u << 4)

#endif
