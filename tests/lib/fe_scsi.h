/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * virtio-scsi requests for the test front-end (VIRTIO 1.2 §5.6), built as raw requests
 * (VH_FE_DIR_RAW) on the front-end's queues: SCSI commands on the request queues (2..), task
 * management and asynchronous-notification requests on the control queue (0), and event
 * buffers on the event queue (1). Connection, memory and rings are frontend.h's.
 *
 * Rules: as frontend.h. A struct vh_fe_scsi_cmd is owned by the caller and reused: it owns its
 * request header and response buffer in guest RAM (allocated once by vh_fe_scsi_cmd_init) and
 * must not be re-prepared while in flight. Nothing here allocates per command.
 */
#ifndef VH_TESTS_FE_SCSI_H
#define VH_TESTS_FE_SCSI_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/virtio_scsi.h>

#include "frontend.h"

/* What a Linux 6.1 guest acks on QEMU's vhost-user-scsi-pci (ring bits included). */
#define VH_FE_SCSI_FEATURES                                                                        \
	((1ull << VIRTIO_SCSI_F_HOTPLUG) | (1ull << VIRTIO_SCSI_F_CHANGE) |                        \
	 (1ull << VIRTIO_RING_F_INDIRECT_DESC) | (1ull << VIRTIO_RING_F_EVENT_IDX) |               \
	 (1ull << 32 /* VERSION_1 */))

#define VH_FE_SCSI_CTRLQ   0
#define VH_FE_SCSI_EVTQ    1
#define VH_FE_SCSI_REQQ0   2
#define VH_FE_SCSI_MAX_IOV 32 /* data buffers per direction */
/* Linux names it VIRTIO_SCSI_S_OK; VIRTIO 1.2 §5.6.6.2 FUNCTION COMPLETE. */
#ifndef VIRTIO_SCSI_S_FUNCTION_COMPLETE
#define VIRTIO_SCSI_S_FUNCTION_COMPLETE 0
#endif

struct vh_fe_scsi_cmd {
	struct vh_fe_req req; /* the raw request; results in req.used_len */
	struct vh_fe_iov iov[2 * VH_FE_SCSI_MAX_IOV + 2];
	struct vh_fe_mem *mem;
	uint64_t hdr_gpa;  /* the request header (command, TMF or AN request) */
	uint64_t resp_gpa; /* the response (or the event) */
	uint32_t hdr_len;  /* bytes of header the next prep sends */
	uint32_t resp_len; /* bytes of response buffer the next prep offers */
};

/* Allocate the command's header and response buffers in @mem. 0 or -ENOMEM. */
int vh_fe_scsi_cmd_init(struct vh_fe_scsi_cmd *c, struct vh_fe_mem *mem);

/* The virtio-scsi LUN field of (target, lun): flat addressing, as Linux builds it. */
void vh_fe_scsi_lun(uint8_t out[8], uint8_t target, uint16_t lun);

/*
 * A SCSI command: header {LUN of target/lun, tag, CDB (cdb_len <= 32 bytes, zero-padded)},
 * data-out buffers, the 108-byte response, data-in buffers. Returns 0 or -EINVAL (too many
 * buffers, CDB too long). After prep the header can still be changed through
 * vh_fe_scsi_cmd_hdr() and hdr_len/resp_len adjusted (hostile tests) before submitting.
 */
int vh_fe_scsi_cmd_prep(struct vh_fe_scsi_cmd *c, uint8_t target, uint16_t lun, uint64_t tag,
                        const void *cdb, unsigned cdb_len, const struct vh_fe_iov *dout,
                        unsigned ndout, const struct vh_fe_iov *din, unsigned ndin);
/* Rebuild the descriptor list after changing hdr_len or resp_len (keeps the data buffers). */
void vh_fe_scsi_cmd_relayout(struct vh_fe_scsi_cmd *c, unsigned ndout, unsigned ndin);
struct virtio_scsi_cmd_req *vh_fe_scsi_cmd_hdr(const struct vh_fe_scsi_cmd *c);
/* The response the device wrote (valid after completion). */
const struct virtio_scsi_cmd_resp *vh_fe_scsi_cmd_resp(const struct vh_fe_scsi_cmd *c);

/* A task management function on the control queue. */
int vh_fe_scsi_tmf_prep(struct vh_fe_scsi_cmd *c, uint32_t subtype, uint8_t target, uint16_t lun,
                        uint64_t tag);
/* An AN_QUERY / AN_SUBSCRIBE request on the control queue. */
int vh_fe_scsi_an_prep(struct vh_fe_scsi_cmd *c, uint32_t type, uint8_t target, uint32_t events);
/* The response byte of a TMF (or AN: struct virtio_scsi_ctrl_an_resp at the same place). */
uint8_t vh_fe_scsi_tmf_response(const struct vh_fe_scsi_cmd *c);
const struct virtio_scsi_ctrl_an_resp *vh_fe_scsi_an_resp(const struct vh_fe_scsi_cmd *c);

/* An event buffer (16 writable bytes, pre-filled with 0xff) for the event queue. */
int vh_fe_scsi_evt_prep(struct vh_fe_scsi_cmd *c);
const struct virtio_scsi_event *vh_fe_scsi_evt(const struct vh_fe_scsi_cmd *c);

/* Submit on queue @q and wait up to timeout_ms for the queue to drain. 0 or -errno. */
int vh_fe_scsi_sync(struct vh_fe *fe, unsigned q, struct vh_fe_scsi_cmd *c, int timeout_ms);

/*
 * One SCSI command with at most one data buffer each way, synchronously: returns the
 * virtio-scsi response code (VIRTIO_SCSI_S_*) and fills *status (SAM status), the sense data
 * (sense, up to 96 bytes, may be NULL) and *resid; or -errno on transport trouble.
 */
int vh_fe_scsi_exec(struct vh_fe *fe, unsigned q, struct vh_fe_scsi_cmd *c, uint8_t target,
                    const void *cdb, unsigned cdb_len, const struct vh_fe_iov *dout,
                    const struct vh_fe_iov *din, uint8_t *status, uint8_t *sense, uint32_t *resid,
                    int timeout_ms);

/* Big-endian helpers for CDBs and SCSI data. */
static inline void
vh_fe_put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void
vh_fe_put_be32(uint8_t *p, uint32_t v)
{
	vh_fe_put_be16(p, (uint16_t)(v >> 16));
	vh_fe_put_be16(p + 2, (uint16_t)v);
}

static inline void
vh_fe_put_be64(uint8_t *p, uint64_t v)
{
	vh_fe_put_be32(p, (uint32_t)(v >> 32));
	vh_fe_put_be32(p + 4, (uint32_t)v);
}

static inline uint32_t
vh_fe_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t
vh_fe_be64(const uint8_t *p)
{
	return ((uint64_t)vh_fe_be32(p) << 32) | vh_fe_be32(p + 4);
}

#endif
