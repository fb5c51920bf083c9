/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * virtio-scsi wire definitions (VIRTIO 1.2 §5.6) and the limits of our virtio-scsi device
 * (scsi.c). Little-endian on the wire (x86_64 only for now, as in protocol.h). Everything else
 * reaches the device through vh_scsi_ops (device.h) and the vhost.h functions.
 */
#ifndef VH_VHOST_SCSI_H
#define VH_VHOST_SCSI_H

#include <stdint.h>

#include "vhost/scsi_cmd.h"
#include "vhost/vhost.h"

/* Queues: control, event, then request queues (VIRTIO 1.2 §5.6.2). */
#define VH_SCSI_CTRLQ      0
#define VH_SCSI_EVTQ       1
#define VH_SCSI_REQQ0      2
#define VH_SCSI_MIN_QUEUES 3
/*
 * Target numbers 0..255, LUN 0 each: the whole target address space a virtio-scsi LUN field
 * (byte 1) and QEMU's config space (max_target 255) give the guest.
 */
#define VH_SCSI_MAX_TARGETS VH_VHOST_SCSI_MAX_TARGETS

/* Feature bits. */
#define VIRTIO_SCSI_F_INOUT   0
#define VIRTIO_SCSI_F_HOTPLUG 1
#define VIRTIO_SCSI_F_CHANGE  2
#define VIRTIO_SCSI_F_T10_PI  3

/* Response codes (virtio_scsi_cmd_resp.response, TMF and AN responses). */
#define VIRTIO_SCSI_S_OK                 0
#define VIRTIO_SCSI_S_FUNCTION_COMPLETE  0
#define VIRTIO_SCSI_S_OVERRUN            1
#define VIRTIO_SCSI_S_ABORTED            2
#define VIRTIO_SCSI_S_BAD_TARGET         3
#define VIRTIO_SCSI_S_RESET              4
#define VIRTIO_SCSI_S_BUSY               5
#define VIRTIO_SCSI_S_TRANSPORT_FAILURE  6
#define VIRTIO_SCSI_S_TARGET_FAILURE     7
#define VIRTIO_SCSI_S_NEXUS_FAILURE      8
#define VIRTIO_SCSI_S_FAILURE            9
#define VIRTIO_SCSI_S_FUNCTION_SUCCEEDED 10
#define VIRTIO_SCSI_S_FUNCTION_REJECTED  11
#define VIRTIO_SCSI_S_INCORRECT_LUN      12

/* Control queue request types and TMF subtypes. */
#define VIRTIO_SCSI_T_TMF                    0
#define VIRTIO_SCSI_T_AN_QUERY               1
#define VIRTIO_SCSI_T_AN_SUBSCRIBE           2
#define VIRTIO_SCSI_T_TMF_ABORT_TASK         0
#define VIRTIO_SCSI_T_TMF_ABORT_TASK_SET     1
#define VIRTIO_SCSI_T_TMF_CLEAR_ACA          2
#define VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET     3
#define VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET    4
#define VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET 5
#define VIRTIO_SCSI_T_TMF_QUERY_TASK         6
#define VIRTIO_SCSI_T_TMF_QUERY_TASK_SET     7

/* Events. */
#define VIRTIO_SCSI_T_NO_EVENT        0
#define VIRTIO_SCSI_T_TRANSPORT_RESET 1
#define VIRTIO_SCSI_T_ASYNC_NOTIFY    2
#define VIRTIO_SCSI_T_PARAM_CHANGE    3
#define VIRTIO_SCSI_T_EVENTS_MISSED   0x80000000u
#define VIRTIO_SCSI_EVT_RESET_HARD    0
#define VIRTIO_SCSI_EVT_RESET_RESCAN  1
#define VIRTIO_SCSI_EVT_RESET_REMOVED 2

struct virtio_scsi_cmd_req {
	uint8_t lun[8];
	uint64_t tag;
	uint8_t task_attr;
	uint8_t prio;
	uint8_t crn;
	uint8_t cdb[VH_SCSI_CDB_SIZE];
} __attribute__((packed));

struct virtio_scsi_cmd_resp {
	uint32_t sense_len;
	uint32_t resid;
	uint16_t status_qualifier;
	uint8_t status;
	uint8_t response;
	uint8_t sense[VH_SCSI_SENSE_SIZE];
} __attribute__((packed));

#define VH_SCSI_RESP_HDR 12u /* virtio_scsi_cmd_resp without the sense bytes */

struct virtio_scsi_ctrl_tmf_req {
	uint32_t type;
	uint32_t subtype;
	uint8_t lun[8];
	uint64_t tag;
} __attribute__((packed));

struct virtio_scsi_ctrl_an_req {
	uint32_t type;
	uint8_t lun[8];
	uint32_t event_requested;
} __attribute__((packed));

struct virtio_scsi_ctrl_an_resp {
	uint32_t event_actual;
	uint8_t response;
} __attribute__((packed));

struct virtio_scsi_event {
	uint32_t event;
	uint8_t lun[8];
	uint32_t reason;
} __attribute__((packed));

struct virtio_scsi_config {
	uint32_t num_queues;
	uint32_t seg_max;
	uint32_t max_sectors;
	uint32_t cmd_per_lun;
	uint32_t event_info_size;
	uint32_t sense_size;
	uint32_t cdb_size;
	uint16_t max_channel;
	uint16_t max_target;
	uint32_t max_lun;
} __attribute__((packed));

#endif
