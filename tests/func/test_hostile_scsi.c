/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A hostile guest on a virtio-scsi controller, against a running vhostd with two reactors.
 *
 * Answered cases (one session): short request headers, a response buffer with no room for
 * sense, garbage LUN fields, buffers outside guest memory, huge allocation lengths, UNMAP
 * parameter lists that lie about their length, short and unknown control requests, and 20 000
 * random CDBs to random targets with random buffer sizes. Every request gets exactly the answer
 * virtio-scsi and SPC define (checked per case), the verified I/O of a witness target keeps
 * working, and the daemon's fd count and RSS stay put.
 *
 * Closing cases (a fresh session each): no writable buffer, a response buffer shorter than the
 * response's fixed part, the response split into more pieces than any driver uses, an event
 * buffer too small for an event. The daemon closes that session and serves the next one.
 *
 * Hot-plug storm: targets 1..4 are added and removed 60 times over while two request queues
 * keep commands in flight to them and to a stable target 0 (verified data), and the event
 * queue overflows. Every command is answered (OK or BAD_TARGET), target 0's data is intact,
 * and every removed bdev can be deleted afterwards (no reference leaked).
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "fe_scsi.h"
#include "test_hostile_common.h"

#define TIMEOUT_MS 20000
#define NQ         4
#define NEVT       8
#define NRANDOM    20000

#define CMD_OF(r) ((struct vh_fe_scsi_cmd *)((char *)(r)-offsetof(struct vh_fe_scsi_cmd, req)))

struct ctx {
	struct vh_daemon d;
	char sock[108];
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	struct vh_fe_scsi_cmd c;
	struct vh_fe_scsi_cmd evt[NEVT];
	uint64_t buf; /* 1 MiB */
	uint64_t seed;
	unsigned events, missed;
};

static uint64_t
rnd(struct ctx *x)
{
	x->seed ^= x->seed >> 12;
	x->seed ^= x->seed << 25;
	x->seed ^= x->seed >> 27;
	return x->seed * 0x2545f4914f6cdd1dull;
}

static int
rpc(struct ctx *x, const char *method, json_t *params)
{
	char msg[256] = "";
	int code = 0;
	int rc = vh_rpc_call(x->d.rpc_path, method, params, NULL, &code, msg, sizeof(msg), 10000);

	if (rc < 0) {
		fprintf(stderr, "rpc %s: %s %s\n", method, strerror(-rc), msg);
	}
	return rc;
}

static uint8_t *
ptr(struct ctx *x, uint64_t gpa, uint64_t len)
{
	return vh_fe_gpa_to_ptr(x->mem, gpa, len);
}

/* Open a session with all queues started and event buffers posted. */
static int
open_session(struct ctx *x, struct vh_fe_mem **mem, struct vh_fe **fe, bool events)
{
	struct vh_fe_mem_opts mo = {.size = 16 << 20};
	/* No indirect tables: the cases below rewrite direct descriptors. */
	struct vh_fe_opts fo = {.path = x->sock,
	                        .num_queues = NQ,
	                        .scsi = true,
	                        .driver_features = VH_FE_SCSI_FEATURES &
	                                           ~(1ull << VIRTIO_RING_F_INDIRECT_DESC)};

	T_OK(vh_fe_mem_create(mem, &mo));
	T_OK(vh_fe_create(fe, *mem, &fo));
	T_OK(vh_fe_connect(*fe, 0));
	T_OK(vh_fe_init(*fe, false));
	T_OK(vh_fe_start(*fe, 0, 0));
	for (unsigned q = 0; q < NQ; q++) {
		vh_fe_vq_set_mode(vh_fe_vq(*fe, q), VH_FE_INTERRUPT);
	}
	if (!events) {
		return 0;
	}
	for (unsigned i = 0; i < NEVT; i++) {
		T_OK(vh_fe_scsi_cmd_init(&x->evt[i], *mem));
		T_OK(vh_fe_scsi_evt_prep(&x->evt[i]));
		T_OK(vh_fe_req_queue(vh_fe_vq(*fe, VH_FE_SCSI_EVTQ), &x->evt[i].req));
	}
	vh_fe_vq_flush(vh_fe_vq(*fe, VH_FE_SCSI_EVTQ));
	return 0;
}

/* Submit x->c on @q and wait; returns the response struct. */
static const struct virtio_scsi_cmd_resp *
run(struct ctx *x, unsigned q)
{
	if (vh_fe_scsi_sync(x->fe, q, &x->c, TIMEOUT_MS) < 0) {
		return NULL;
	}
	return vh_fe_scsi_cmd_resp(&x->c);
}

/* Reap events, count them (and the overflows), post the buffers again. */
static int
reap_events(struct ctx *x)
{
	struct vh_fe_req *done[NEVT];
	int n = vh_fe_vq_poll(vh_fe_vq(x->fe, VH_FE_SCSI_EVTQ), done, NEVT);

	T_CHECK(n >= 0, "event queue: bad used entry");
	for (int i = 0; i < n; i++) {
		struct vh_fe_scsi_cmd *c = CMD_OF(done[i]);
		const struct virtio_scsi_event *e = vh_fe_scsi_evt(c);
		uint32_t type = e->event & ~VIRTIO_SCSI_T_EVENTS_MISSED;

		T_CHECK(c->req.used_len == sizeof(*e), "event used len %u", c->req.used_len);
		T_CHECK(type == VIRTIO_SCSI_T_NO_EVENT || type == VIRTIO_SCSI_T_TRANSPORT_RESET,
		        "event %#x", e->event);
		x->events++;
		x->missed += (e->event & VIRTIO_SCSI_T_EVENTS_MISSED) != 0;
		T_OK(vh_fe_scsi_evt_prep(c));
		T_OK(vh_fe_req_submit(vh_fe_vq(x->fe, VH_FE_SCSI_EVTQ), &c->req));
	}
	return 0;
}

/* ---- answered cases ---- */

static int
witness(struct ctx *x, unsigned q, uint32_t tag)
{
	uint8_t *o = ptr(x, x->buf, 4096), *i = ptr(x, x->buf + 4096, 4096);
	struct vh_fe_iov out = {x->buf, 4096}, in = {x->buf + 4096, 4096};
	uint8_t cdb[10] = {0x2a, 0, 0, 0, 0, (uint8_t)(tag & 0x3f), 0, 0, 8, 0};
	const struct virtio_scsi_cmd_resp *r;

	for (int k = 0; k < 4096; k++) {
		o[k] = (uint8_t)(tag * 31 + k);
	}
	T_OK(vh_fe_scsi_cmd_prep(&x->c, 0, 0, tag, cdb, 10, &out, 1, NULL, 0));
	r = run(x, q);
	T_CHECK(r != NULL && r->response == 0 && r->status == 0, "witness write");
	cdb[0] = 0x28;
	memset(i, 0, 4096);
	T_OK(vh_fe_scsi_cmd_prep(&x->c, 0, 0, tag, cdb, 10, NULL, 0, &in, 1));
	r = run(x, q);
	T_CHECK(r != NULL && r->response == 0 && r->status == 0 && memcmp(o, i, 4096) == 0,
	        "witness read back");
	return 0;
}

/* The descriptor of x->c's chain at position @k (direct chains). */
static struct vring_desc *
chain_desc(struct ctx *x, unsigned q, unsigned k)
{
	struct vring_desc *d = vh_fe_vq_desc(vh_fe_vq(x->fe, q));
	uint16_t i = x->c.req.head;

	while (k-- > 0) {
		i = d[i].next;
	}
	return &d[i];
}

static int
answered_cases(struct ctx *x)
{
	const struct virtio_scsi_cmd_resp *r;
	struct vh_fe_vq *vq = vh_fe_vq(x->fe, 2);
	struct vh_fe_iov in = {x->buf + 8192, 512}, out = {x->buf, 512};
	static const uint8_t inq[6] = {0x12, 0, 0, 0, 255, 0};
	static const uint8_t bad_op[6] = {0xd9, 0, 0, 0, 0, 0};

	/* A header shorter than the request: FAILURE, nothing executed. */
	T_OK(vh_fe_scsi_cmd_prep(&x->c, 0, 0, 1, inq, 6, NULL, 0, &in, 1));
	x->c.hdr_len = 40;
	vh_fe_scsi_cmd_relayout(&x->c, 0, 1);
	r = run(x, 2);
	T_CHECK(r && r->response == VIRTIO_SCSI_S_FAILURE, "short header: %d",
	        r ? r->response : -1);
	/* A response buffer with room for the fixed part only: status kept, sense dropped. */
	T_OK(vh_fe_scsi_cmd_prep(&x->c, 0, 0, 2, bad_op, 6, NULL, 0, NULL, 0));
	x->c.resp_len = 12;
	vh_fe_scsi_cmd_relayout(&x->c, 0, 0);
	r = run(x, 2);
	T_CHECK(r && r->response == 0 && r->status == 2 && r->sense_len == 0 &&
	                x->c.req.used_len == 12,
	        "12-byte response: status %u sense_len %u used %u", r ? r->status : 0,
	        r ? r->sense_len : 0, x->c.req.used_len);
	/* Garbage LUN fields. */
	for (int k = 0; k < 4; k++) {
		static const uint8_t luns[4][8] = {{0xff, 0, 0x40, 0, 0, 0, 0, 0},
		                                   {1, 0, 0x80, 0, 0, 0, 0, 0},
		                                   {1, 0, 0x40, 0, 1, 0, 0, 0},
		                                   {1, 0, 0x3f, 0, 0, 0, 0, 0}};

		T_OK(vh_fe_scsi_cmd_prep(&x->c, 0, 0, 3, inq, 6, NULL, 0, &in, 1));
		memcpy(vh_fe_scsi_cmd_hdr(&x->c)->lun, luns[k], 8);
		r = run(x, 2);
		T_CHECK(r && r->response == VIRTIO_SCSI_S_BAD_TARGET, "LUN %d: %d", k,
		        r ? r->response : -1);
	}
	/* The data-in buffer outside guest memory: FAILURE in the response, nothing else. */
	T_OK(vh_fe_scsi_cmd_prep(&x->c, 0, 0, 4, inq, 6, NULL, 0, &in, 1));
	T_OK(vh_fe_req_queue(vq, &x->c.req));
	chain_desc(x, 2, 2)->addr = 1ull << 40;
	vh_fe_vq_flush(vq);
	T_OK(vh_fe_vq_drain(vq, TIMEOUT_MS));
	r = vh_fe_scsi_cmd_resp(&x->c);
	T_CHECK(r->response == VIRTIO_SCSI_S_FAILURE, "data-in outside memory: %u", r->response);
	/* INQUIRY with allocation length 65535 and a 512-byte buffer: cut at the buffer. */
	T_OK(vh_fe_scsi_cmd_prep(&x->c, 0, 0, 5, (uint8_t[]){0x12, 1, 0x83, 0xff, 0xff, 0}, 6, NULL,
	                         0, &in, 1));
	r = run(x, 2);
	T_CHECK(r && r->response == 0 && r->status == 0 && r->resid < 512 &&
	                x->c.req.used_len == 108 + 512 - r->resid,
	        "INQUIRY 65535: resid %u used %u", r ? r->resid : 0, x->c.req.used_len);
	/* UNMAP whose header promises more descriptors than were sent: only whole ones count. */
	memset(ptr(x, x->buf, 40), 0, 40);
	vh_fe_put_be16(ptr(x, x->buf, 2), 0xffff);
	vh_fe_put_be16(ptr(x, x->buf + 2, 2), 0xfff0);
	vh_fe_put_be64(ptr(x, x->buf + 8, 8), 0);
	vh_fe_put_be32(ptr(x, x->buf + 16, 4), 8);
	out.len = 30;
	T_OK(vh_fe_scsi_cmd_prep(&x->c, 0, 0, 6, (uint8_t[]){0x42, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0},
	                         10, &out, 1, NULL, 0));
	r = run(x, 2);
	T_CHECK(r && r->response == 0 && r->status == 0, "lying UNMAP: %u/%u", r ? r->response : 0,
	        r ? r->status : 0);
	/* Control queue: a short TMF, an unknown type, an AN with a 1-byte response. */
	T_OK(vh_fe_scsi_tmf_prep(&x->c, VIRTIO_SCSI_T_TMF_ABORT_TASK, 0, 0, 0));
	x->c.hdr_len = 10;
	vh_fe_scsi_cmd_relayout(&x->c, 0, 0);
	T_OK(vh_fe_scsi_sync(x->fe, VH_FE_SCSI_CTRLQ, &x->c, TIMEOUT_MS));
	T_CHECK(vh_fe_scsi_tmf_response(&x->c) == VIRTIO_SCSI_S_FAILURE, "short TMF");
	T_OK(vh_fe_scsi_tmf_prep(&x->c, 0, 0, 0, 0));
	*(uint32_t *)(void *)vh_fe_scsi_cmd_hdr(&x->c) = 77;
	T_OK(vh_fe_scsi_sync(x->fe, VH_FE_SCSI_CTRLQ, &x->c, TIMEOUT_MS));
	T_CHECK(x->c.req.used_len == 0, "unknown control type: used %u", x->c.req.used_len);
	T_OK(vh_fe_scsi_an_prep(&x->c, VIRTIO_SCSI_T_AN_SUBSCRIBE, 0, ~0u));
	x->c.resp_len = 1;
	vh_fe_scsi_cmd_relayout(&x->c, 0, 0);
	T_OK(vh_fe_scsi_sync(x->fe, VH_FE_SCSI_CTRLQ, &x->c, TIMEOUT_MS));
	T_CHECK(x->c.req.used_len == 1, "AN with 1 byte: used %u", x->c.req.used_len);
	return witness(x, 2, 1);
}

/* Random CDBs, targets, LUNs and buffer sizes: each one answered as virtio-scsi allows. */
static int
random_commands(struct ctx *x)
{
	static const uint8_t targets[] = {0, 1, 3, 255};
	static const uint8_t ops[] = {0x00, 0x03, 0x08, 0x0a, 0x12, 0x1a, 0x1b, 0x25,
	                              0x28, 0x2a, 0x2f, 0x35, 0x41, 0x42, 0x5a, 0x88,
	                              0x8a, 0x8f, 0x91, 0x93, 0x9e, 0xa0, 0xa8, 0xaa};

	for (unsigned n = 0; n < NRANDOM; n++) {
		uint8_t cdb[32];
		uint64_t r0 = rnd(x), r1 = rnd(x);
		uint32_t olen = (uint32_t)(r0 >> 8) % 70000, ilen = (uint32_t)(r0 >> 32) % 70000;
		struct vh_fe_iov out = {x->buf, olen ? olen : 1}, in = {x->buf + 0x80000, ilen};
		const struct virtio_scsi_cmd_resp *r;

		for (int k = 0; k < 32; k += 8) {
			uint64_t v = rnd(x);

			memcpy(&cdb[k], &v, 8);
		}
		/* Half of them start with a real opcode, so decoding goes deep. */
		if (r0 & 1) {
			cdb[0] = ops[(r0 >> 1) % sizeof(ops)];
			cdb[(r1 >> 3) % 16] =
			        0; /* often a plausible length or a clear control byte */
		}
		T_OK(vh_fe_scsi_cmd_prep(&x->c, targets[r1 % 4], (r1 >> 2) % 8 == 0 ? 1 : 0, n, cdb,
		                         32, olen ? &out : NULL, olen ? 1 : 0, ilen ? &in : NULL,
		                         ilen ? 1 : 0));
		/*
		 * One queue: its commands hit target 0 anywhere, and a second reactor writing the
		 * same RAM-disk blocks would be a race only the guest's ordering explains (TSan
		 * cannot see it). The storm below covers two reactors with disjoint blocks.
		 */
		r = run(x, 2);
		T_CHECK(r != NULL, "command %u: no answer", n);
		T_CHECK(r->response == VIRTIO_SCSI_S_OK || r->response == VIRTIO_SCSI_S_OVERRUN ||
		                r->response == VIRTIO_SCSI_S_BAD_TARGET,
		        "command %u (op 0x%02x): response %u", n, cdb[0], r->response);
		T_CHECK(r->response != 0 || r->status == 0 ||
		                (r->status == 2 && r->sense_len == 18 && r->sense[0] == 0x70),
		        "command %u (op 0x%02x): status %u sense_len %u", n, cdb[0], r->status,
		        r->sense_len);
		T_CHECK(x->c.req.used_len >= 108 && x->c.req.used_len <= 108 + ilen,
		        "command %u: used len %u", n, x->c.req.used_len);
		if (n % 2000 == 0) {
			T_OK(witness(x, 2, n / 2000 + 2));
		}
	}
	return 0;
}

/* ---- closing cases ---- */

enum closing { C_NO_WRITABLE, C_RESP_11, C_RESP_SPLIT, C_EVT_SMALL, C_COUNT };

static int
closing_case(struct ctx *x, enum closing k)
{
	static const char *const names[C_COUNT] = {"no writable buffer", "11-byte response",
	                                           "response in 16 pieces", "8-byte event buffer"};
	struct vh_fe_mem *mem = NULL;
	struct vh_fe *fe = NULL;
	struct vh_fe_scsi_cmd c;
	uint8_t cdb[6] = {0x12, 0, 0, 0, 36, 0};
	int rc = -1;

	fprintf(stderr, "closing case: %s\n", names[k]);
	if (open_session(x, &mem, &fe, false) < 0 || vh_fe_scsi_cmd_init(&c, mem) < 0) {
		goto out;
	}
	switch (k) {
	case C_NO_WRITABLE:
		vh_fe_scsi_cmd_prep(&c, 0, 0, 1, cdb, 6, NULL, 0, NULL, 0);
		c.resp_len = 0;
		vh_fe_scsi_cmd_relayout(&c, 0, 0);
		break;
	case C_RESP_11:
		vh_fe_scsi_cmd_prep(&c, 0, 0, 1, cdb, 6, NULL, 0, NULL, 0);
		c.resp_len = 11;
		vh_fe_scsi_cmd_relayout(&c, 0, 0);
		break;
	case C_RESP_SPLIT:
		vh_fe_scsi_cmd_prep(&c, 0, 0, 1, cdb, 6, NULL, 0, NULL, 0);
		c.req.max_desc_len = 6; /* 108 bytes in 18 descriptors */
		c.req.layout = VH_FE_L_NO_MERGE;
		break;
	case C_EVT_SMALL:
		vh_fe_scsi_evt_prep(&c);
		c.resp_len = 8;
		vh_fe_scsi_cmd_relayout(&c, 0, 0);
		break;
	default:
		break;
	}
	if (k == C_EVT_SMALL) {
		/* The buffer is only taken when there is an event to put in it. */
		if (vh_fe_req_submit(vh_fe_vq(fe, VH_FE_SCSI_EVTQ), &c.req) < 0 ||
		    rpc(x, "bdev_malloc_create",
		        json_pack("{s:s, s:i, s:i}", "name", "H9", "num_blocks", 64, "block_size",
		                  512)) < 0 ||
		    rpc(x, "vhost_scsi_controller_add_target",
		        json_pack("{s:s, s:i, s:s}", "ctrlr", "scsi0", "scsi_target_num", 9,
		                  "bdev_name", "H9")) < 0) {
			goto out;
		}
	} else if (vh_fe_req_submit(vh_fe_vq(fe, 2), &c.req) < 0) {
		goto out;
	}
	if (vh_fe_wait_closed(fe, TIMEOUT_MS) != 0) {
		fprintf(stderr, "FAIL: %s: the session was not closed\n", names[k]);
		goto out;
	}
	rc = 0;
out:
	vh_fe_destroy(fe);
	vh_fe_mem_destroy(mem);
	if (k == C_EVT_SMALL && rc == 0) {
		rc = rpc(x, "vhost_scsi_controller_remove_target",
		         json_pack("{s:s, s:i}", "ctrlr", "scsi0", "scsi_target_num", 9));
	}
	return rc;
}

/* ---- hot-plug storm ---- */

#define STORM_CYCLES 60
#define STORM_DEPTH  16

static int
storm(struct ctx *x)
{
	static struct vh_fe_scsi_cmd cs[2][STORM_DEPTH];
	static uint8_t shadow[STORM_DEPTH * 2][4096];
	unsigned answered = 0, bad_target = 0;
	int64_t deadline;

	for (unsigned t = 1; t <= 4; t++) {
		char name[8];

		snprintf(name, sizeof(name), "S%u", t);
		T_OK(rpc(x, "bdev_malloc_create",
		         json_pack("{s:s, s:i, s:i}", "name", name, "num_blocks", 2048,
		                   "block_size", 512)));
	}
	for (unsigned q = 0; q < 2; q++) {
		for (unsigned k = 0; k < STORM_DEPTH; k++) {
			T_OK(vh_fe_scsi_cmd_init(&cs[q][k], x->mem));
		}
	}
	for (unsigned cycle = 0; cycle < STORM_CYCLES; cycle++) {
		/* Keep both queues full: even slots write target 0 (verified), odd ones hit 1..4.
		 */
		for (unsigned q = 0; q < 2; q++) {
			struct vh_fe_vq *vq = vh_fe_vq(x->fe, 2 + q);

			for (unsigned k = 0; k < STORM_DEPTH; k++) {
				struct vh_fe_scsi_cmd *c = &cs[q][k];
				unsigned slot = q * STORM_DEPTH + k;
				uint64_t gpa = x->buf + 0x10000 + slot * 4096ull;
				struct vh_fe_iov iov = {gpa, 4096};
				uint8_t cdb[10] = {0x2a, 0, 0, 0, 0, 0, 0, 0, 8, 0};
				uint8_t tgt = k & 1 ? (uint8_t)(1 + rnd(x) % 4) : 0;

				if (c->req.inflight) {
					continue;
				}
				vh_fe_put_be32(&cdb[2], 64 + slot * 8);
				if (tgt == 0) {
					for (int b = 0; b < 4096; b++) {
						shadow[slot][b] = (uint8_t)(cycle + slot * 7 + b);
					}
					memcpy(ptr(x, gpa, 4096), shadow[slot], 4096);
				} else if (rnd(x) & 1) {
					cdb[0] = 0x28;
				}
				T_OK(vh_fe_scsi_cmd_prep(
				        c, tgt, 0, cycle, cdb, 10, cdb[0] == 0x2a ? &iov : NULL,
				        cdb[0] == 0x2a, cdb[0] == 0x28 ? &iov : NULL,
				        cdb[0] == 0x28));
				T_OK(vh_fe_req_queue(vq, &c->req));
			}
			vh_fe_vq_flush(vq);
		}
		/* Meanwhile the operator adds or removes one of targets 1..4. */
		{
			unsigned t = 1 + cycle % 4;
			char name[8];

			snprintf(name, sizeof(name), "S%u", t);
			if ((cycle / 4) % 2 == 0) {
				deadline = vh_fe_now_ms() + TIMEOUT_MS;
				/* The number may still be draining from its last removal. */
				while (rpc(x, "vhost_scsi_controller_add_target",
				           json_pack("{s:s, s:i, s:s}", "ctrlr", "scsi0",
				                     "scsi_target_num", t, "bdev_name", name)) <
				       0) {
					T_CHECK(vh_fe_now_ms() < deadline,
					        "target %u never came back", t);
					T_OK(reap_events(x));
				}
			} else {
				T_OK(rpc(x, "vhost_scsi_controller_remove_target",
				         json_pack("{s:s, s:i}", "ctrlr", "scsi0",
				                   "scsi_target_num", t)));
			}
		}
		/* Reap what completed; every answer is OK or BAD_TARGET, target 0 never fails. */
		for (unsigned q = 0; q < 2; q++) {
			struct vh_fe_req *done[STORM_DEPTH];
			int n = vh_fe_vq_poll(vh_fe_vq(x->fe, 2 + q), done, STORM_DEPTH);

			T_CHECK(n >= 0, "bad used entry");
			for (int i = 0; i < n; i++) {
				struct vh_fe_scsi_cmd *c = CMD_OF(done[i]);
				const struct virtio_scsi_cmd_resp *r = vh_fe_scsi_cmd_resp(c);
				uint8_t tgt = vh_fe_scsi_cmd_hdr(c)->lun[1];

				answered++;
				bad_target += r->response == VIRTIO_SCSI_S_BAD_TARGET;
				T_CHECK((r->response == 0 && r->status == 0) ||
				                (tgt != 0 &&
				                 r->response == VIRTIO_SCSI_S_BAD_TARGET),
				        "target %u: response %u status %u", tgt, r->response,
				        r->status);
			}
		}
		T_OK(reap_events(x));
	}
	for (unsigned q = 0; q < 2; q++) {
		T_OK(vh_fe_vq_drain(vh_fe_vq(x->fe, 2 + q), TIMEOUT_MS));
	}
	/* Target 0's blocks hold what the last write of each slot put there. */
	for (unsigned slot = 0; slot < 2 * STORM_DEPTH; slot += 2) {
		/* Read back on the slot's own queue (reactor), into the slot's own buffer. */
		unsigned q = slot / STORM_DEPTH;
		struct vh_fe_iov iov = {x->buf + 0x10000 + slot * 4096ull, 4096};
		uint8_t cdb[10] = {0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0};
		const struct virtio_scsi_cmd_resp *r;

		vh_fe_put_be32(&cdb[2], 64 + slot * 8);
		T_OK(vh_fe_scsi_cmd_prep(&cs[q][0], 0, 0, 1, cdb, 10, NULL, 0, &iov, 1));
		T_OK(vh_fe_scsi_sync(x->fe, 2 + q, &cs[q][0], TIMEOUT_MS));
		r = vh_fe_scsi_cmd_resp(&cs[q][0]);
		T_CHECK(r->response == 0 && memcmp(ptr(x, iov.gpa, 4096), shadow[slot], 4096) == 0,
		        "target 0 slot %u: data lost in the storm", slot);
	}
	/* Remove what is left and make sure every bdev is released (deletable). */
	for (unsigned t = 1; t <= 4; t++) {
		char name[8];

		snprintf(name, sizeof(name), "S%u", t);
		rpc(x, "vhost_scsi_controller_remove_target",
		    json_pack("{s:s, s:i}", "ctrlr", "scsi0", "scsi_target_num", t));
		deadline = vh_fe_now_ms() + TIMEOUT_MS;
		while (rpc(x, "bdev_malloc_delete", json_pack("{s:s}", "name", name)) < 0) {
			T_CHECK(vh_fe_now_ms() < deadline, "bdev %s never released", name);
			T_OK(reap_events(x));
		}
	}
	T_OK(reap_events(x));
	fprintf(stderr,
	        "storm: %u commands answered (%u BAD_TARGET), %u events (%u with "
	        "EVENTS_MISSED)\n",
	        answered, bad_target, x->events, x->missed);
	T_CHECK(bad_target > 0 && x->events > 0, "the storm never raced a removal");
	return 0;
}

static int
setup(struct ctx *x)
{
	const char *extra[] = {"-m", "0x3", NULL};
	int rc = vh_daemon_start(&x->d, NULL, extra, 10000);

	if (rc == -ENOENT) {
		return VH_TEST_SKIP;
	}
	T_OK(rc);
	T_OK(rpc(x, "vhost_create_scsi_controller",
	         json_pack("{s:s, s:s, s:i}", "ctrlr", "scsi0", "cpumask", "0x3", "num_queues",
	                   NQ)));
	T_OK(rpc(
	        x, "bdev_malloc_create",
	        json_pack("{s:s, s:i, s:i}", "name", "W0", "num_blocks", 8192, "block_size", 512)));
	T_OK(rpc(x, "vhost_scsi_controller_add_target",
	         json_pack("{s:s, s:i, s:s}", "ctrlr", "scsi0", "scsi_target_num", 0, "bdev_name",
	                   "W0")));
	vh_daemon_path(&x->d, "scsi0", x->sock, sizeof(x->sock));
	return 0;
}

int
main(void)
{
	static struct ctx x;
	int fds0, fds1, rc;
	long rss0, rss1;

	x.seed = vh_test_seed("test_hostile_scsi") | 1;
	rc = setup(&x);
	if (rc == VH_TEST_SKIP) {
		fprintf(stderr, "SKIP: $VHOSTD not set\n");
		return VH_TEST_SKIP;
	}
	if (rc < 0) {
		return VH_TEST_FAIL;
	}
	fds0 = hostile_count_fds(x.d.pid);
	rss0 = hostile_rss_kib(x.d.pid);
	for (int k = 0; rc == 0 && k < C_COUNT; k++) {
		rc = closing_case(&x, (enum closing)k);
	}
	if (rc == 0) {
		rc = open_session(&x, &x.mem, &x.fe, true);
	}
	if (rc == 0 && vh_fe_scsi_cmd_init(&x.c, x.mem) == 0) {
		x.buf = vh_fe_mem_alloc(x.mem, 1 << 20, 4096);
		rc = answered_cases(&x);
	}
	if (rc == 0) {
		rc = random_commands(&x);
	}
	if (rc == 0) {
		rc = storm(&x);
	}
	vh_fe_destroy(x.fe);
	vh_fe_mem_destroy(x.mem);
	if (rc == 0) {
		/* The session's fds and mappings go once it is closed. */
		fds1 = hostile_wait_fds(x.d.pid, fds0, 5000);
		rss1 = hostile_rss_kib(x.d.pid);
		if (fds1 != fds0 || rss1 > rss0 + HOSTILE_RSS_SLACK_KIB) {
			fprintf(stderr, "FAIL: daemon fds %d -> %d, RSS %ld -> %ld KiB\n", fds0,
			        fds1, rss0, rss1);
			rc = -1;
		}
	}
	if (x.d.pid > 0) {
		bool alive = vh_daemon_alive(&x.d);
		int st = vh_daemon_stop(&x.d, 5000);

		if (!alive || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "FAIL: vhostd died or did not exit cleanly (0x%x)\n", st);
			rc = -1;
		}
	}
	fprintf(stderr, "%s\n", rc == 0 ? "PASS" : "FAIL");
	return rc == 0 ? VH_TEST_PASS : VH_TEST_FAIL;
}
