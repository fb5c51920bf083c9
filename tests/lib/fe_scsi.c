/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * virtio-scsi requests on the test front-end's rings (fe_scsi.h): header and response in guest
 * RAM, laid out as raw requests. Little-endian fields (x86_64).
 */
#include <errno.h>
#include <string.h>

#include "fe_scsi.h"

#define HDR_SIZE  64  /* room for any request header */
#define RESP_SIZE 128 /* room for any response */

int
vh_fe_scsi_cmd_init(struct vh_fe_scsi_cmd *c, struct vh_fe_mem *mem)
{
	memset(c, 0, sizeof(*c));
	c->mem = mem;
	c->hdr_gpa = vh_fe_mem_alloc(mem, HDR_SIZE, 64);
	c->resp_gpa = vh_fe_mem_alloc(mem, RESP_SIZE, 64);
	return c->hdr_gpa == UINT64_MAX || c->resp_gpa == UINT64_MAX ? -ENOMEM : 0;
}

void
vh_fe_scsi_lun(uint8_t out[8], uint8_t target, uint16_t lun)
{
	memset(out, 0, 8);
	out[0] = 1;
	out[1] = target;
	out[2] = (uint8_t)(0x40 | ((lun >> 8) & 0x3f));
	out[3] = (uint8_t)lun;
}

struct virtio_scsi_cmd_req *
vh_fe_scsi_cmd_hdr(const struct vh_fe_scsi_cmd *c)
{
	return vh_fe_gpa_to_ptr(c->mem, c->hdr_gpa, HDR_SIZE);
}

const struct virtio_scsi_cmd_resp *
vh_fe_scsi_cmd_resp(const struct vh_fe_scsi_cmd *c)
{
	return vh_fe_gpa_to_ptr(c->mem, c->resp_gpa, RESP_SIZE);
}

/* iov = [header][data-out...][response][data-in...], keeping the data entries in place. */
void
vh_fe_scsi_cmd_relayout(struct vh_fe_scsi_cmd *c, unsigned ndout, unsigned ndin)
{
	unsigned n = 0;

	if (c->hdr_len > 0) {
		c->iov[n++] = (struct vh_fe_iov){c->hdr_gpa, c->hdr_len};
	}
	n += ndout;
	c->req.nout = n;
	if (c->resp_len > 0) {
		c->iov[n++] = (struct vh_fe_iov){c->resp_gpa, c->resp_len};
	}
	c->req.niov = n + ndin;
	c->req.iov = c->iov;
	c->req.dir = VH_FE_DIR_RAW;
}

static void
set_data(struct vh_fe_scsi_cmd *c, const struct vh_fe_iov *dout, unsigned ndout,
         const struct vh_fe_iov *din, unsigned ndin)
{
	unsigned first_out = c->hdr_len > 0 ? 1 : 0;
	unsigned first_in = first_out + ndout + (c->resp_len > 0 ? 1 : 0);

	if (ndout > 0) {
		memcpy(&c->iov[first_out], dout, ndout * sizeof(*dout));
	}
	if (ndin > 0) {
		memcpy(&c->iov[first_in], din, ndin * sizeof(*din));
	}
	vh_fe_scsi_cmd_relayout(c, ndout, ndin);
}

int
vh_fe_scsi_cmd_prep(struct vh_fe_scsi_cmd *c, uint8_t target, uint16_t lun, uint64_t tag,
                    const void *cdb, unsigned cdb_len, const struct vh_fe_iov *dout, unsigned ndout,
                    const struct vh_fe_iov *din, unsigned ndin)
{
	struct virtio_scsi_cmd_req *h = vh_fe_scsi_cmd_hdr(c);

	if (cdb_len > VIRTIO_SCSI_CDB_SIZE || ndout > VH_FE_SCSI_MAX_IOV ||
	    ndin > VH_FE_SCSI_MAX_IOV || c->req.inflight) {
		return -EINVAL;
	}
	memset(h, 0, HDR_SIZE);
	vh_fe_scsi_lun(h->lun, target, lun);
	h->tag = tag;
	h->task_attr = VIRTIO_SCSI_S_SIMPLE;
	memcpy(h->cdb, cdb, cdb_len);
	memset((void *)vh_fe_scsi_cmd_resp(c), 0xee, RESP_SIZE);
	c->hdr_len = sizeof(struct virtio_scsi_cmd_req);
	c->resp_len = sizeof(struct virtio_scsi_cmd_resp);
	set_data(c, dout, ndout, din, ndin);
	return 0;
}

int
vh_fe_scsi_tmf_prep(struct vh_fe_scsi_cmd *c, uint32_t subtype, uint8_t target, uint16_t lun,
                    uint64_t tag)
{
	struct virtio_scsi_ctrl_tmf_req *t = (void *)vh_fe_scsi_cmd_hdr(c);

	if (c->req.inflight) {
		return -EINVAL;
	}
	memset(t, 0, HDR_SIZE);
	t->type = VIRTIO_SCSI_T_TMF;
	t->subtype = subtype;
	vh_fe_scsi_lun(t->lun, target, lun);
	t->tag = tag;
	memset((void *)vh_fe_scsi_cmd_resp(c), 0xee, RESP_SIZE);
	c->hdr_len = sizeof(*t);
	c->resp_len = sizeof(struct virtio_scsi_ctrl_tmf_resp);
	set_data(c, NULL, 0, NULL, 0);
	return 0;
}

int
vh_fe_scsi_an_prep(struct vh_fe_scsi_cmd *c, uint32_t type, uint8_t target, uint32_t events)
{
	struct virtio_scsi_ctrl_an_req *a = (void *)vh_fe_scsi_cmd_hdr(c);

	if (c->req.inflight) {
		return -EINVAL;
	}
	memset(a, 0, HDR_SIZE);
	a->type = type;
	vh_fe_scsi_lun(a->lun, target, 0);
	a->event_requested = events;
	memset((void *)vh_fe_scsi_cmd_resp(c), 0xee, RESP_SIZE);
	c->hdr_len = sizeof(*a);
	c->resp_len = sizeof(struct virtio_scsi_ctrl_an_resp);
	set_data(c, NULL, 0, NULL, 0);
	return 0;
}

uint8_t
vh_fe_scsi_tmf_response(const struct vh_fe_scsi_cmd *c)
{
	return *(const uint8_t *)vh_fe_scsi_cmd_resp(c);
}

const struct virtio_scsi_ctrl_an_resp *
vh_fe_scsi_an_resp(const struct vh_fe_scsi_cmd *c)
{
	return (const void *)vh_fe_scsi_cmd_resp(c);
}

int
vh_fe_scsi_evt_prep(struct vh_fe_scsi_cmd *c)
{
	if (c->req.inflight) {
		return -EINVAL;
	}
	memset((void *)vh_fe_scsi_cmd_resp(c), 0xff, sizeof(struct virtio_scsi_event));
	c->hdr_len = 0;
	c->resp_len = sizeof(struct virtio_scsi_event);
	set_data(c, NULL, 0, NULL, 0);
	return 0;
}

const struct virtio_scsi_event *
vh_fe_scsi_evt(const struct vh_fe_scsi_cmd *c)
{
	return (const void *)vh_fe_scsi_cmd_resp(c);
}

int
vh_fe_scsi_sync(struct vh_fe *fe, unsigned q, struct vh_fe_scsi_cmd *c, int timeout_ms)
{
	struct vh_fe_vq *vq = vh_fe_vq(fe, q);
	int rc;

	if (vq == NULL) {
		return -EINVAL;
	}
	rc = vh_fe_req_submit(vq, &c->req);
	if (rc < 0) {
		return rc;
	}
	return vh_fe_vq_drain(vq, timeout_ms);
}

int
vh_fe_scsi_exec(struct vh_fe *fe, unsigned q, struct vh_fe_scsi_cmd *c, uint8_t target,
                const void *cdb, unsigned cdb_len, const struct vh_fe_iov *dout,
                const struct vh_fe_iov *din, uint8_t *status, uint8_t *sense, uint32_t *resid,
                int timeout_ms)
{
	const struct virtio_scsi_cmd_resp *r;
	int rc;

	rc = vh_fe_scsi_cmd_prep(c, target, 0, 0x5c51, cdb, cdb_len, dout, dout ? 1 : 0, din,
	                         din ? 1 : 0);
	if (rc == 0) {
		rc = vh_fe_scsi_sync(fe, q, c, timeout_ms);
	}
	if (rc < 0) {
		return rc;
	}
	r = vh_fe_scsi_cmd_resp(c);
	if (status != NULL) {
		*status = r->status;
	}
	if (sense != NULL) {
		memcpy(sense, r->sense, VIRTIO_SCSI_SENSE_SIZE);
	}
	if (resid != NULL) {
		*resid = r->resid;
	}
	return r->response;
}
