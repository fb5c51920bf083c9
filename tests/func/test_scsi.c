/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The virtio-scsi controller end to end: vhostd (two reactors) with a scsi controller driven by
 * the test front-end playing QEMU 7.2's vhost-user-scsi-pci and a Linux guest's virtio_scsi
 * driver (tests/lib/fe_scsi.h).
 *
 * - identity: INQUIRY (standard, VPD 80/83/B0/B2), READ CAPACITY, REPORT LUNS of two targets
 *   with distinct serials and NAA identifiers; a missing target is BAD_TARGET, a missing LUN
 *   answers with qualifier 011b / LOGICAL UNIT NOT SUPPORTED;
 * - verified I/O on four request queues, both targets, every READ/WRITE CDB size, several
 *   commands in flight per queue, then read back and compared;
 * - UNMAP, WRITE SAME (zero with UNMAP, and a pattern), SYNCHRONIZE CACHE, VERIFY, overrun;
 * - hot-plug: add a target (RESCAN event), remove it (REMOVED event, BAD_TARGET after);
 * - removal with I/O in flight: commands already running complete with GOOD, new ones get
 *   BAD_TARGET at once, and the bdev is released (deletable) once they completed;
 * - task management: ABORT TASK completes only after the command it names has completed and
 *   is visible; LOGICAL UNIT RESET; BAD_TARGET and INCORRECT_LUN; AN requests;
 * - resize of a file bdev: a PARAM_CHANGE event (CAPACITY DATA HAS CHANGED) and the new size.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fe_scsi.h"
#include "vh_test.h"

#define TIMEOUT_MS 20000
#define NQ         6 /* control, event, 4 request queues */
#define NREQQ      (NQ - VH_FE_SCSI_REQQ0)
#define NEVT       8 /* event buffers, as Linux posts */
#define BUF_SIZE   (1u << 20)
#define DEPTH      8 /* commands in flight per queue in the I/O phase */

#define CMD_OF(r) ((struct vh_fe_scsi_cmd *)((char *)(r)-offsetof(struct vh_fe_scsi_cmd, req)))

struct ctx {
	struct vh_daemon d;
	char sock[108];
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	struct vh_fe_scsi_cmd evt[NEVT];
	/*
	 * Synchronous commands and their buffers, one set per reactor (queue parity, with the
	 * two-reactor cpumask): guest memory one reactor writes is never written by the other,
	 * so the TSan build sees no race the guest's ordering would explain.
	 */
	struct vh_fe_scsi_cmd c[2];
	uint64_t dout[2]; /* BUF_SIZE of data-out */
	uint64_t din[2];  /* BUF_SIZE of data-in */
	/* Events reaped but not consumed by a test yet. */
	struct virtio_scsi_event got[64];
	unsigned ngot;
};

/* ---- helpers ---- */

static int
rpc(struct ctx *x, const char *method, json_t *params, json_t **res)
{
	char msg[256] = "";
	int code = 0;
	int rc = vh_rpc_call(x->d.rpc_path, method, params, res, &code, msg, sizeof(msg), 10000);

	if (rc < 0) {
		fprintf(stderr, "rpc %s: %s (%d) %s\n", method, strerror(-rc), code, msg);
	}
	return rc;
}

/* An RPC expected to fail with a message containing @want. */
static int
rpc_fails(struct ctx *x, const char *method, json_t *params, const char *want)
{
	char msg[256] = "";
	int code = 0;
	int rc = vh_rpc_call(x->d.rpc_path, method, params, NULL, &code, msg, sizeof(msg), 10000);

	T_CHECK(rc == -EREMOTEIO, "%s succeeded (rc %d)", method, rc);
	T_CHECK(strstr(msg, want) != NULL, "%s: '%s' lacks '%s'", method, msg, want);
	return 0;
}

static uint8_t *
ptr(struct ctx *x, uint64_t gpa, uint64_t len)
{
	return vh_fe_gpa_to_ptr(x->mem, gpa, len);
}

/*
 * One command on request queue @q: @out bytes of data-out from x->dout[q & 1], @in bytes of
 * data-in into x->din[q & 1]. Returns the virtio-scsi response, or -1.
 */
static int
cmd(struct ctx *x, unsigned q, uint8_t target, uint16_t lun, const uint8_t *cdb, unsigned len,
    uint32_t out, uint32_t in, uint8_t *status, uint8_t *sense, uint32_t *resid)
{
	struct vh_fe_iov o = {x->dout[q & 1], out}, i = {x->din[q & 1], in};
	struct vh_fe_scsi_cmd *c = &x->c[q & 1];
	const struct virtio_scsi_cmd_resp *r;
	int rc;

	rc = vh_fe_scsi_cmd_prep(c, target, lun, 1, cdb, len, &o, out ? 1 : 0, &i, in ? 1 : 0);
	if (rc == 0) {
		rc = vh_fe_scsi_sync(x->fe, q, c, TIMEOUT_MS);
	}
	if (rc < 0) {
		fprintf(stderr, "command 0x%02x: %s\n", cdb[0], strerror(-rc));
		return -1;
	}
	r = vh_fe_scsi_cmd_resp(c);
	if (status) {
		*status = r->status;
	}
	if (sense) {
		memcpy(sense, r->sense, 18);
	}
	if (resid) {
		*resid = r->resid;
	}
	return r->response;
}

/* A command that must succeed with GOOD. */
#define GOOD(x, q, tgt, in, ...)                                                                   \
	do {                                                                                       \
		const uint8_t cdb_[] = {__VA_ARGS__};                                              \
		uint8_t st_ = 0xff, sn_[18];                                                       \
		int r_ = cmd(x, q, tgt, 0, cdb_, sizeof(cdb_), 0, in, &st_, sn_, NULL);            \
		T_CHECK(r_ == VIRTIO_SCSI_S_OK && st_ == 0,                                        \
		        "op 0x%02x: response %d status %u "                                        \
		        "sense %x/%02x",                                                           \
		        cdb_[0], r_, st_, sn_[2], sn_[12]);                                        \
	} while (0)

/* Reap completed event buffers into x->got and post them again. */
static int
reap_events(struct ctx *x)
{
	struct vh_fe_req *done[NEVT];
	int n = vh_fe_vq_poll(vh_fe_vq(x->fe, VH_FE_SCSI_EVTQ), done, NEVT);

	T_CHECK(n >= 0, "event queue: bad used entry");
	for (int i = 0; i < n; i++) {
		struct vh_fe_scsi_cmd *c = CMD_OF(done[i]);

		T_CHECK(c->req.used_len == sizeof(struct virtio_scsi_event), "event used len %u",
		        c->req.used_len);
		T_CHECK(x->ngot < sizeof(x->got) / sizeof(x->got[0]), "too many events");
		x->got[x->ngot++] = *vh_fe_scsi_evt(c);
		T_OK(vh_fe_scsi_evt_prep(c));
		T_OK(vh_fe_req_submit(vh_fe_vq(x->fe, VH_FE_SCSI_EVTQ), &c->req));
	}
	return 0;
}

/* Wait for the next event; it must be @event/@reason for @target. */
static int
expect_event(struct ctx *x, uint32_t event, uint32_t reason, uint8_t target)
{
	int64_t deadline = vh_fe_now_ms() + TIMEOUT_MS;

	while (x->ngot == 0) {
		T_OK(reap_events(x));
		T_CHECK(vh_fe_now_ms() < deadline, "no event %u/%u for target %u", event, reason,
		        target);
		if (x->ngot == 0) {
			vh_fe_vq_wait(vh_fe_vq(x->fe, VH_FE_SCSI_EVTQ), 100);
		}
	}
	/* LUN 0 as Linux decodes events: (lun[2] << 8) | lun[3] must be 0. */
	T_CHECK(x->got[0].event == event && x->got[0].reason == reason && x->got[0].lun[0] == 1 &&
	                x->got[0].lun[1] == target && x->got[0].lun[2] == 0 &&
	                x->got[0].lun[3] == 0,
	        "event %#x reason %u lun %u/%u, expected %u/%u for target %u", x->got[0].event,
	        x->got[0].reason, x->got[0].lun[0], x->got[0].lun[1], event, reason, target);
	memmove(&x->got[0], &x->got[1], --x->ngot * sizeof(x->got[0]));
	return 0;
}

/* The vhost_get_controllers entry of target @t ("removing" state into *removing), or NULL. */
static int
target_state(struct ctx *x, int t, bool *present, bool *removing)
{
	json_t *res = NULL, *arr;
	size_t i;
	json_t *e;

	T_OK(rpc(x, "vhost_get_controllers", json_pack("{s:s}", "name", "scsi0"), &res));
	arr = json_object_get(json_object_get(json_array_get(res, 0), "backend_specific"), "scsi");
	T_CHECK(json_is_array(arr), "no scsi array in vhost_get_controllers");
	*present = false;
	*removing = false;
	json_array_foreach(arr, i, e)
	{
		if (json_integer_value(json_object_get(e, "scsi_dev_num")) == t) {
			*present = true;
			*removing = json_is_true(json_object_get(e, "removing"));
		}
	}
	json_decref(res);
	return 0;
}

static int
wait_target_gone(struct ctx *x, int t)
{
	int64_t deadline = vh_fe_now_ms() + TIMEOUT_MS;
	bool present = true, removing;

	while (present) {
		T_OK(target_state(x, t, &present, &removing));
		T_CHECK(!present || vh_fe_now_ms() < deadline, "target %d never went away", t);
		if (present) {
			usleep(10000); /* polling an RPC with a deadline */
		}
	}
	return 0;
}

static int
add_malloc_target(struct ctx *x, const char *bdev, uint64_t blocks, uint32_t bs, int target,
                  int want)
{
	json_t *res = NULL;

	T_OK(rpc(x, "bdev_malloc_create",
	         json_pack("{s:s, s:I, s:i}", "name", bdev, "num_blocks", (json_int_t)blocks,
	                   "block_size", (int)bs),
	         NULL));
	T_OK(rpc(x, "vhost_scsi_controller_add_target",
	         json_pack("{s:s, s:i, s:s}", "ctrlr", "scsi0", "scsi_target_num", target,
	                   "bdev_name", bdev),
	         &res));
	T_CHECK(json_integer_value(res) == want, "add_target returned %lld, expected %d",
	        (long long)json_integer_value(res), want);
	json_decref(res);
	return 0;
}

/*
 * Wait until request queue @q has fetched everything submitted so far: a TEST UNIT READY
 * queued behind it completes at once, and only after the queue took what came before.
 */
static int
queue_fetched(struct ctx *x, unsigned q, struct vh_fe_scsi_cmd *tur)
{
	struct vh_fe_vq *vq = vh_fe_vq(x->fe, q);
	int64_t deadline = vh_fe_now_ms() + TIMEOUT_MS;

	T_OK(vh_fe_scsi_cmd_prep(tur, 0, 0, 99, (uint8_t[]){0, 0, 0, 0, 0, 0}, 6, NULL, 0, NULL,
	                         0));
	T_OK(vh_fe_req_submit(vq, &tur->req));
	while (tur->req.inflight) {
		T_CHECK(vh_fe_vq_poll(vq, NULL, 0) >= 0 && vh_fe_now_ms() < deadline,
		        "TEST UNIT READY on q%u", q);
		vh_fe_vq_wait(vq, 10);
	}
	return 0;
}

/* ---- identity ---- */

static int
check_identity(struct ctx *x)
{
	uint8_t naa[2][8], st, sense[18];
	uint8_t *d = ptr(x, x->din[0], 4096);
	const uint8_t tg[2] = {0, 3};
	const char *serial[2] = {"M0", "M3"};
	const uint64_t blocks[2] = {16384, 2048};
	const uint32_t bsz[2] = {512, 4096};
	uint32_t resid;

	for (int i = 0; i < 2; i++) {
		GOOD(x, 2, tg[i], 255, 0x12, 0, 0, 0, 255, 0); /* INQUIRY */
		T_CHECK(d[0] == 0 && memcmp(&d[8], "VHOSTD  ", 8) == 0, "standard INQUIRY");
		GOOD(x, 2, tg[i], 255, 0x12, 1, 0x80, 0, 255, 0);
		T_CHECK(d[3] == strlen(serial[i]) && memcmp(&d[4], serial[i], d[3]) == 0,
		        "target %u serial '%.*s'", tg[i], d[3], &d[4]);
		GOOD(x, 2, tg[i], 255, 0x12, 1, 0x83, 0, 255, 0);
		T_CHECK(d[5] == 0x03 && d[7] == 8 && (d[8] >> 4) == 3, "NAA designator");
		memcpy(naa[i], &d[8], 8);
		GOOD(x, 2, tg[i], 32, 0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0);
		T_CHECK(vh_fe_be64(d) == blocks[i] - 1 && vh_fe_be32(d + 8) == bsz[i],
		        "target %u capacity %" PRIu64 " x %u", tg[i], vh_fe_be64(d) + 1,
		        vh_fe_be32(d + 8));
		T_CHECK(d[14] & 0x80, "LBPME (malloc bdevs discard)");
		GOOD(x, 2, tg[i], 64, 0x12, 1, 0xb2, 0, 64, 0);
		T_CHECK(d[5] & 0x80, "LBPU");
		GOOD(x, 2, tg[i], 16, 0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0); /* REPORT LUNS */
		T_CHECK(vh_fe_be32(d) == 8, "REPORT LUNS length");
		GOOD(x, 2, tg[i], 0, 0x00, 0, 0, 0, 0, 0); /* TEST UNIT READY */
	}
	T_CHECK(memcmp(naa[0], naa[1], 8) != 0, "both targets have the same NAA identifier");
	/* A response bigger than the allocation length is cut, the rest is residual. */
	T_CHECK(cmd(x, 2, 0, 0, (uint8_t[]){0x12, 0, 0, 0, 36, 0}, 6, 0, 4096, &st, NULL, &resid) ==
	                        VIRTIO_SCSI_S_OK &&
	                st == 0 && resid == 4096 - 36,
	        "INQUIRY residual %u", resid);
	/* Missing target, missing LUN, bad LUN field. */
	T_CHECK(cmd(x, 3, 1, 0, (uint8_t[]){0x00, 0, 0, 0, 0, 0}, 6, 0, 0, &st, NULL, NULL) ==
	                VIRTIO_SCSI_S_BAD_TARGET,
	        "missing target");
	T_CHECK(cmd(x, 3, 0, 1, (uint8_t[]){0x12, 0, 0, 0, 36, 0}, 6, 0, 36, &st, NULL, NULL) ==
	                        VIRTIO_SCSI_S_OK &&
	                st == 0 && *ptr(x, x->din[1], 1) == 0x7f,
	        "INQUIRY of a missing LUN: qualifier 011b");
	T_CHECK(cmd(x, 3, 0, 1, (uint8_t[]){0x00, 0, 0, 0, 0, 0}, 6, 0, 0, &st, sense, NULL) ==
	                        VIRTIO_SCSI_S_OK &&
	                st == 2 && sense[2] == 5 && sense[12] == 0x25,
	        "TUR of a missing LUN: status %u sense %x/%02x", st, sense[2], sense[12]);
	/* Unknown opcode: ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE. */
	T_CHECK(cmd(x, 4, 3, 0, (uint8_t[]){0xd1, 0, 0, 0, 0, 0}, 6, 0, 0, &st, sense, NULL) ==
	                        VIRTIO_SCSI_S_OK &&
	                st == 2 && sense[0] == 0x70 && sense[2] == 5 && sense[12] == 0x20,
	        "unknown opcode: status %u sense %x/%02x", st, sense[2], sense[12]);
	return 0;
}

/* ---- verified I/O on every request queue ---- */

struct io_slot {
	struct vh_fe_scsi_cmd c;
	uint64_t buf;
	uint32_t len;
};

/* A READ or WRITE CDB of one of the four sizes for [lba, lba + n). */
static unsigned
rw_cdb(uint8_t *cdb, bool write, unsigned size, uint64_t lba, uint32_t n)
{
	memset(cdb, 0, 16);
	switch (size) {
	case 6:
		cdb[0] = write ? 0x0a : 0x08;
		cdb[1] = (uint8_t)(lba >> 16) & 0x1f;
		vh_fe_put_be16(&cdb[2], (uint16_t)lba);
		cdb[4] = (uint8_t)n; /* n == 256 encodes as 0 */
		return 6;
	case 10:
		cdb[0] = write ? 0x2a : 0x28;
		vh_fe_put_be32(&cdb[2], (uint32_t)lba);
		vh_fe_put_be16(&cdb[7], (uint16_t)n);
		return 10;
	case 12:
		cdb[0] = write ? 0xaa : 0xa8;
		vh_fe_put_be32(&cdb[2], (uint32_t)lba);
		vh_fe_put_be32(&cdb[6], n);
		return 12;
	default:
		cdb[0] = write ? 0x8a : 0x88;
		vh_fe_put_be64(&cdb[2], lba);
		vh_fe_put_be32(&cdb[10], n);
		return 16;
	}
}

/* One pass: every queue writes (or reads back) DEPTH extents of both targets at once. */
static int
io_pass(struct ctx *x, struct io_slot slots[NREQQ][DEPTH], bool write, uint8_t *shadow[2])
{
	static const unsigned sizes[] = {6, 10, 12, 16};
	const uint8_t tg[2] = {0, 3};
	const uint32_t bsz[2] = {512, 4096};

	for (unsigned q = 0; q < NREQQ; q++) {
		struct vh_fe_vq *vq = vh_fe_vq(x->fe, VH_FE_SCSI_REQQ0 + q);

		for (unsigned k = 0; k < DEPTH; k++) {
			struct io_slot *s = &slots[q][k];
			unsigned t = k & 1, size = sizes[(q + k) % 4];
			/* Disjoint extents per (queue, k): 8 KiB each at 64 KiB strides. */
			uint64_t off = ((uint64_t)q * DEPTH + k) * 65536;
			uint32_t n = (k % 4 == 0 && t == 0) ? 256 : 8192 / bsz[t];
			uint8_t cdb[16];
			unsigned len;
			struct vh_fe_iov iov = {s->buf, n * bsz[t]};

			if (n == 256) {
				size = 6; /* READ/WRITE (6) with length 0 means 256 blocks */
			}
			s->len = n * bsz[t];
			len = rw_cdb(cdb, write, size, off / bsz[t], n);
			if (write) {
				memcpy(ptr(x, s->buf, s->len), shadow[t] + off, s->len);
			} else {
				memset(ptr(x, s->buf, s->len), 0x5a, s->len);
			}
			T_OK(vh_fe_scsi_cmd_prep(&s->c, tg[t], 0, q * 100 + k, cdb, len,
			                         write ? &iov : NULL, write, write ? NULL : &iov,
			                         !write));
			T_OK(vh_fe_req_queue(vq, &s->c.req));
		}
		vh_fe_vq_flush(vq);
	}
	for (unsigned q = 0; q < NREQQ; q++) {
		T_OK(vh_fe_vq_drain(vh_fe_vq(x->fe, VH_FE_SCSI_REQQ0 + q), TIMEOUT_MS));
		for (unsigned k = 0; k < DEPTH; k++) {
			struct io_slot *s = &slots[q][k];
			const struct virtio_scsi_cmd_resp *r = vh_fe_scsi_cmd_resp(&s->c);
			unsigned t = k & 1;
			uint64_t off = ((uint64_t)q * DEPTH + k) * 65536;

			T_CHECK(r->response == 0 && r->status == 0 && r->resid == 0,
			        "q%u slot %u: response %u status %u resid %u", q, k, r->response,
			        r->status, r->resid);
			T_CHECK(s->c.req.used_len == sizeof(*r) + (write ? 0 : s->len),
			        "q%u slot %u: used len %u", q, k, s->c.req.used_len);
			if (!write) {
				T_CHECK(memcmp(ptr(x, s->buf, s->len), shadow[t] + off, s->len) ==
				                0,
				        "q%u slot %u: data read back differs (target %u)", q, k,
				        tg[t]);
			}
		}
	}
	return 0;
}

static int
check_io(struct ctx *x, uint64_t seed)
{
	static struct io_slot slots[NREQQ][DEPTH];
	uint8_t *shadow[2];
	int rc = -1;

	shadow[0] = malloc(8u << 20);
	shadow[1] = malloc(8u << 20);
	if (shadow[0] == NULL || shadow[1] == NULL) {
		goto out;
	}
	for (size_t i = 0; i < (8u << 20); i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		shadow[0][i] = (uint8_t)(seed >> 33);
		shadow[1][i] = (uint8_t)(seed >> 41);
	}
	for (unsigned q = 0; q < NREQQ; q++) {
		for (unsigned k = 0; k < DEPTH; k++) {
			if (vh_fe_scsi_cmd_init(&slots[q][k].c, x->mem) < 0) {
				goto out;
			}
			slots[q][k].buf = vh_fe_mem_alloc(x->mem, 131072, 4096);
		}
	}
	if (io_pass(x, slots, true, shadow) == 0 && io_pass(x, slots, false, shadow) == 0) {
		rc = 0;
	}
out:
	free(shadow[0]);
	free(shadow[1]);
	return rc;
}

/* ---- provisioning, write same, cache, verify, overrun ---- */

static int
all_bytes(const uint8_t *p, uint32_t len, uint8_t v)
{
	for (uint32_t i = 0; i < len; i++) {
		if (p[i] != v) {
			return 0;
		}
	}
	return 1;
}

static int
check_provisioning(struct ctx *x)
{
	uint8_t *o = ptr(x, x->dout[0], 65536), *d = ptr(x, x->din[0], 65536), st, sense[18];
	uint8_t cdb[16];

	/* Fill LBA 100..163 of target 0 with 0xa5, UNMAP 100..131, read back zeroes there. */
	memset(o, 0xa5, 32768);
	rw_cdb(cdb, true, 10, 100, 64);
	T_CHECK(cmd(x, 2, 0, 0, cdb, 10, 32768, 0, &st, NULL, NULL) == 0 && st == 0, "write");
	memset(o, 0, 24);
	vh_fe_put_be16(&o[0], 22);
	vh_fe_put_be16(&o[2], 16);
	vh_fe_put_be64(&o[8], 100);
	vh_fe_put_be32(&o[16], 32);
	T_CHECK(cmd(x, 2, 0, 0, (uint8_t[]){0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0}, 10, 24, 0, &st,
	            sense, NULL) == 0 &&
	                st == 0,
	        "UNMAP: status %u sense %x/%02x", st, sense[2], sense[12]);
	rw_cdb(cdb, false, 16, 100, 64);
	T_CHECK(cmd(x, 2, 0, 0, cdb, 16, 0, 32768, &st, NULL, NULL) == 0 && st == 0, "read");
	T_CHECK(all_bytes(d, 16384, 0) && all_bytes(d + 16384, 16384, 0xa5),
	        "UNMAP: range not zero, or its neighbour changed");

	/* WRITE SAME (16) of a zero block with UNMAP over 132..163. */
	memset(o, 0, 512);
	T_CHECK(cmd(x, 4, 0, 0,
	            (uint8_t[]){0x93, 0x08, 0, 0, 0, 0, 0, 0, 0, 132, 0, 0, 0, 32, 0, 0}, 16, 512,
	            0, &st, sense, NULL) == 0 &&
	                st == 0,
	        "WRITE SAME (16) UNMAP: status %u sense %x/%02x", st, sense[2], sense[12]);
	T_CHECK(cmd(x, 2, 0, 0, cdb, 16, 0, 32768, &st, NULL, NULL) == 0 && st == 0, "read");
	T_CHECK(all_bytes(d, 32768, 0), "WRITE SAME of zeroes did not zero");

	/* WRITE SAME (10) of a pattern block over 200..219 (not 512-aligned data). */
	for (int i = 0; i < 512; i++) {
		o[i] = (uint8_t)(i * 7 + 3);
	}
	T_CHECK(cmd(x, 4, 0, 0, (uint8_t[]){0x41, 0, 0, 0, 0, 200, 0, 0, 20, 0}, 10, 512, 0, &st,
	            sense, NULL) == 0 &&
	                st == 0,
	        "WRITE SAME (10): status %u sense %x/%02x", st, sense[2], sense[12]);
	rw_cdb(cdb, false, 10, 200, 20);
	T_CHECK(cmd(x, 2, 0, 0, cdb, 10, 0, 10240, &st, NULL, NULL) == 0 && st == 0, "read");
	for (int b = 0; b < 20; b++) {
		T_CHECK(memcmp(d + 512 * b, o, 512) == 0, "WRITE SAME pattern: block %d differs",
		        b);
	}
	/* With the block missing from data-out: an overrun, nothing written. */
	T_CHECK(cmd(x, 4, 0, 0, (uint8_t[]){0x41, 0, 0, 0, 0, 200, 0, 0, 20, 0}, 10, 0, 0, &st,
	            NULL, NULL) == VIRTIO_SCSI_S_OVERRUN,
	        "WRITE SAME without data");
	/* A READ whose buffer is too small: overrun, not a short transfer. */
	rw_cdb(cdb, false, 10, 0, 8);
	T_CHECK(cmd(x, 2, 0, 0, cdb, 10, 0, 4095, &st, NULL, NULL) == VIRTIO_SCSI_S_OVERRUN,
	        "short READ buffer");
	/* A bigger one: the extra is residual. */
	{
		uint32_t resid = 0;

		T_CHECK(cmd(x, 2, 0, 0, cdb, 10, 0, 8192, &st, NULL, &resid) == 0 && st == 0 &&
		                resid == 4096,
		        "READ residual %u", resid);
	}
	GOOD(x, 5, 0, 0, 0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0);                   /* SYNC 10 */
	GOOD(x, 5, 3, 0, 0x91, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0); /* SYNC 16 */
	GOOD(x, 5, 3, 0, 0x2f, 0, 0, 0, 0, 0, 0, 0, 8, 0);                   /* VERIFY 10 */
	GOOD(x, 5, 3, 0, 0x8f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0); /* VERIFY 16 */
	GOOD(x, 5, 3, 0, 0x1b, 0, 0, 0, 1, 0);                               /* START */
	/* Past the end of target 3 (2048 blocks). */
	rw_cdb(cdb, true, 16, 2047, 2);
	T_CHECK(cmd(x, 5, 3, 0, cdb, 16, 8192, 0, &st, sense, NULL) == 0 && st == 2 &&
	                sense[2] == 5 && sense[12] == 0x21,
	        "write past the end: status %u sense %x/%02x", st, sense[2], sense[12]);
	return 0;
}

/* ---- hot-plug and removal under I/O ---- */

static int
check_hotplug(struct ctx *x)
{
	uint8_t st;
	bool present, removing;

	T_OK(add_malloc_target(x, "M5", 4096, 512, -1, 1)); /* -1: the lowest free number */
	T_OK(expect_event(x, VIRTIO_SCSI_T_TRANSPORT_RESET, VIRTIO_SCSI_EVT_RESET_RESCAN, 1));
	GOOD(x, 2, 1, 36, 0x12, 0, 0, 0, 36, 0);
	T_OK(rpc_fails(x, "vhost_scsi_controller_add_target",
	               json_pack("{s:s, s:i, s:s}", "ctrlr", "scsi0", "scsi_target_num", 1,
	                         "bdev_name", "M5"),
	               "already in use"));
	T_OK(rpc(x, "vhost_scsi_controller_remove_target",
	         json_pack("{s:s, s:i}", "ctrlr", "scsi0", "scsi_target_num", 1), NULL));
	T_OK(expect_event(x, VIRTIO_SCSI_T_TRANSPORT_RESET, VIRTIO_SCSI_EVT_RESET_REMOVED, 1));
	T_CHECK(cmd(x, 2, 1, 0, (uint8_t[]){0x00, 0, 0, 0, 0, 0}, 6, 0, 0, &st, NULL, NULL) ==
	                VIRTIO_SCSI_S_BAD_TARGET,
	        "removed target still answers");
	T_OK(wait_target_gone(x, 1));
	T_OK(target_state(x, 1, &present, &removing));
	T_CHECK(!present, "target 1 listed after removal");
	T_OK(rpc(x, "bdev_malloc_delete", json_pack("{s:s}", "name", "M5"), NULL));
	return 0;
}

static int
check_remove_under_io(struct ctx *x)
{
	enum { N = 16 };
	static struct vh_fe_scsi_cmd cs[2][N], tur[2];
	bool present, removing;
	uint8_t st;

	T_OK(add_malloc_target(x, "M7", 4096, 512, 7, 7));
	T_OK(expect_event(x, VIRTIO_SCSI_T_TRANSPORT_RESET, VIRTIO_SCSI_EVT_RESET_RESCAN, 7));
	/* Completions held 0..1 s: the commands are still running when the target goes. */
	T_OK(rpc(x, "bdev_set_test_delay",
	         json_pack("{s:s, s:i}", "name", "M7", "max_delay_us", 1000000), NULL));
	for (unsigned q = 0; q < 2; q++) {
		struct vh_fe_vq *vq = vh_fe_vq(x->fe, VH_FE_SCSI_REQQ0 + q);

		for (unsigned k = 0; k < N; k++) {
			/* Buffers and blocks of their own per queue: the queues run on two
			 * reactors. */
			struct vh_fe_iov iov = {x->din[q] + 0x80000 + k * 4096, 4096};
			uint8_t cdb[16];
			unsigned len = rw_cdb(cdb, k & 1, 10, (q * N + k) * 8, 8);

			T_OK(vh_fe_scsi_cmd_init(&cs[q][k], x->mem));
			T_OK(vh_fe_scsi_cmd_prep(&cs[q][k], 7, 0, k, cdb, len, k & 1 ? &iov : NULL,
			                         k & 1, k & 1 ? NULL : &iov, !(k & 1)));
			T_OK(vh_fe_req_queue(vq, &cs[q][k].req));
		}
		vh_fe_vq_flush(vq);
	}
	for (unsigned q = 0; q < 2; q++) {
		T_OK(vh_fe_scsi_cmd_init(&tur[q], x->mem));
		T_OK(queue_fetched(x, VH_FE_SCSI_REQQ0 + q, &tur[q]));
	}
	T_OK(rpc(x, "vhost_scsi_controller_remove_target",
	         json_pack("{s:s, s:i}", "ctrlr", "scsi0", "scsi_target_num", 7), NULL));
	/* While they run: listed as removing, the bdev held, the number busy, new commands out. */
	T_OK(target_state(x, 7, &present, &removing));
	T_CHECK(present && removing, "target 7 not shown as removing (present %d)", present);
	T_OK(rpc_fails(x, "bdev_malloc_delete", json_pack("{s:s}", "name", "M7"), "in use"));
	T_OK(rpc_fails(x, "vhost_scsi_controller_add_target",
	               json_pack("{s:s, s:i, s:s}", "ctrlr", "scsi0", "scsi_target_num", 7,
	                         "bdev_name", "M0"),
	               "still being removed"));
	T_CHECK(cmd(x, 4, 7, 0, (uint8_t[]){0x00, 0, 0, 0, 0, 0}, 6, 0, 0, &st, NULL, NULL) ==
	                VIRTIO_SCSI_S_BAD_TARGET,
	        "new command to a removed target");
	/* The running ones complete, successfully: nothing hangs, nothing is lost. */
	for (unsigned q = 0; q < 2; q++) {
		T_OK(vh_fe_vq_drain(vh_fe_vq(x->fe, VH_FE_SCSI_REQQ0 + q), TIMEOUT_MS));
		for (unsigned k = 0; k < N; k++) {
			const struct virtio_scsi_cmd_resp *r = vh_fe_scsi_cmd_resp(&cs[q][k]);

			T_CHECK(r->response == 0 && r->status == 0,
			        "q%u command %u: response %u status %u", q, k, r->response,
			        r->status);
		}
	}
	T_OK(expect_event(x, VIRTIO_SCSI_T_TRANSPORT_RESET, VIRTIO_SCSI_EVT_RESET_REMOVED, 7));
	T_OK(wait_target_gone(x, 7));
	T_OK(rpc(x, "bdev_malloc_delete", json_pack("{s:s}", "name", "M7"), NULL));
	/* And the number can be used again. */
	T_OK(add_malloc_target(x, "M8", 64, 512, 7, 7));
	T_OK(expect_event(x, VIRTIO_SCSI_T_TRANSPORT_RESET, VIRTIO_SCSI_EVT_RESET_RESCAN, 7));
	GOOD(x, 3, 7, 36, 0x12, 0, 0, 0, 36, 0);
	return 0;
}

/* ---- task management ---- */

static int
check_tmf(struct ctx *x)
{
	static struct vh_fe_scsi_cmd io, tmf, tur;
	int was_running = 0;
	bool running;
	struct vh_fe_vq *ioq = vh_fe_vq(x->fe, 3), *cq = vh_fe_vq(x->fe, VH_FE_SCSI_CTRLQ);
	/* Blocks and a buffer nothing else touches: ioq runs on the other reactor. */
	struct vh_fe_iov iov = {x->din[1] + 0x80000, 4096};
	uint8_t cdb[16];
	unsigned len;

	T_OK(vh_fe_scsi_cmd_init(&io, x->mem));
	T_OK(vh_fe_scsi_cmd_init(&tmf, x->mem));
	/* LOGICAL UNIT RESET with nothing running; a missing target; a missing LUN. */
	T_OK(vh_fe_scsi_tmf_prep(&tmf, VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, 0, 0, 0));
	T_OK(vh_fe_scsi_sync(x->fe, VH_FE_SCSI_CTRLQ, &tmf, TIMEOUT_MS));
	T_CHECK(vh_fe_scsi_tmf_response(&tmf) == VIRTIO_SCSI_S_FUNCTION_COMPLETE &&
	                tmf.req.used_len == 1,
	        "LUN reset: response %u", vh_fe_scsi_tmf_response(&tmf));
	T_OK(vh_fe_scsi_tmf_prep(&tmf, VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, 2, 0, 0));
	T_OK(vh_fe_scsi_sync(x->fe, VH_FE_SCSI_CTRLQ, &tmf, TIMEOUT_MS));
	T_CHECK(vh_fe_scsi_tmf_response(&tmf) == VIRTIO_SCSI_S_BAD_TARGET, "TMF missing target");
	T_OK(vh_fe_scsi_tmf_prep(&tmf, VIRTIO_SCSI_T_TMF_ABORT_TASK, 0, 3, 0));
	T_OK(vh_fe_scsi_sync(x->fe, VH_FE_SCSI_CTRLQ, &tmf, TIMEOUT_MS));
	T_CHECK(vh_fe_scsi_tmf_response(&tmf) == VIRTIO_SCSI_S_INCORRECT_LUN, "TMF missing LUN");
	T_OK(vh_fe_scsi_tmf_prep(&tmf, VIRTIO_SCSI_T_TMF_CLEAR_ACA, 0, 0, 0));
	T_OK(vh_fe_scsi_sync(x->fe, VH_FE_SCSI_CTRLQ, &tmf, TIMEOUT_MS));
	T_CHECK(vh_fe_scsi_tmf_response(&tmf) == VIRTIO_SCSI_S_FUNCTION_REJECTED, "CLEAR ACA");
	T_OK(vh_fe_scsi_an_prep(&tmf, VIRTIO_SCSI_T_AN_QUERY, 0, 0xffff));
	T_OK(vh_fe_scsi_sync(x->fe, VH_FE_SCSI_CTRLQ, &tmf, TIMEOUT_MS));
	T_CHECK(vh_fe_scsi_an_resp(&tmf)->response == 0 &&
	                vh_fe_scsi_an_resp(&tmf)->event_actual == 0 && tmf.req.used_len == 5,
	        "AN query");

	/*
	 * ABORT TASK of a command held in the back-end for 0.3-0.5 s: the TMF completes only after
	 * the command did, and by then the command's used entry is visible (VIRTIO 1.2 §5.6.6.2).
	 */
	T_OK(rpc(x, "bdev_set_test_delay",
	         json_pack("{s:s, s:i}", "name", "M0", "max_delay_us", 500000), NULL));
	T_OK(vh_fe_scsi_cmd_init(&tur, x->mem));
	for (int round = 0; round < 3; round++) {
		len = rw_cdb(cdb, false, 10, 10000, 8);
		T_OK(vh_fe_scsi_cmd_prep(&io, 0, 0, 77, cdb, len, NULL, 0, &iov, 1));
		T_OK(vh_fe_req_submit(ioq, &io.req));
		/* As when Linux aborts a command that timed out: the device has it. */
		T_OK(queue_fetched(x, 3, &tur));
		was_running += io.req.inflight;
		T_OK(vh_fe_scsi_tmf_prep(&tmf,
		                         round == 1 ? VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET
		                                    : VIRTIO_SCSI_T_TMF_ABORT_TASK,
		                         0, 0, 77));
		T_OK(vh_fe_req_submit(cq, &tmf.req));
		T_OK(vh_fe_vq_drain(cq, TIMEOUT_MS));
		T_CHECK(vh_fe_scsi_tmf_response(&tmf) == VIRTIO_SCSI_S_FUNCTION_COMPLETE,
		        "abort: response %u", vh_fe_scsi_tmf_response(&tmf));
		T_CHECK(vh_fe_vq_pending(ioq) == 0,
		        "TMF answered before the command it waited for");
		T_OK(vh_fe_vq_drain(ioq, TIMEOUT_MS));
		T_CHECK(vh_fe_scsi_cmd_resp(&io)->response == 0, "the command itself");
	}
	T_CHECK(was_running > 0, "the command never outlived its TEST UNIT READY: no TMF waited");
	/* QUERY TASK SET: a command running -> SUCCEEDED; none -> COMPLETE. */
	len = rw_cdb(cdb, false, 10, 10000, 8);
	T_OK(vh_fe_scsi_cmd_prep(&io, 0, 0, 78, cdb, len, NULL, 0, &iov, 1));
	T_OK(vh_fe_req_submit(ioq, &io.req));
	T_OK(queue_fetched(x, 3, &tur));
	running = io.req.inflight;
	T_OK(vh_fe_scsi_tmf_prep(&tmf, VIRTIO_SCSI_T_TMF_QUERY_TASK_SET, 0, 0, 0));
	T_OK(vh_fe_scsi_sync(x->fe, VH_FE_SCSI_CTRLQ, &tmf, TIMEOUT_MS));
	/* (the command may have finished between the two looks: then either answer is right) */
	T_CHECK(!running || vh_fe_scsi_tmf_response(&tmf) == VIRTIO_SCSI_S_FUNCTION_SUCCEEDED ||
	                !io.req.inflight || vh_fe_vq_pending(ioq) == 0,
	        "QUERY TASK SET with a command running: %u", vh_fe_scsi_tmf_response(&tmf));
	T_OK(vh_fe_vq_drain(ioq, TIMEOUT_MS));
	/*
	 * A command stops counting just after its completion is published (so an ABORT never
	 * answers before the command's own completion is visible): a QUERY sent the moment the
	 * driver sees the completion may still find it, on another reactor. It must go soon.
	 */
	for (int64_t end = vh_fe_now_ms() + 2000;;) {
		T_OK(vh_fe_scsi_tmf_prep(&tmf, VIRTIO_SCSI_T_TMF_QUERY_TASK_SET, 0, 0, 0));
		T_OK(vh_fe_scsi_sync(x->fe, VH_FE_SCSI_CTRLQ, &tmf, TIMEOUT_MS));
		if (vh_fe_scsi_tmf_response(&tmf) != VIRTIO_SCSI_S_FUNCTION_SUCCEEDED ||
		    vh_fe_now_ms() >= end) {
			break;
		}
	}
	T_CHECK(vh_fe_scsi_tmf_response(&tmf) == VIRTIO_SCSI_S_FUNCTION_COMPLETE,
	        "QUERY TASK SET idle: %u", vh_fe_scsi_tmf_response(&tmf));
	T_OK(rpc(x, "bdev_set_test_delay", json_pack("{s:s, s:i}", "name", "M0", "max_delay_us", 0),
	         NULL));
	return 0;
}

/* ---- resize ---- */

static int
check_resize(struct ctx *x)
{
	char path[128];
	uint8_t *d = ptr(x, x->din[0], 64);
	int fd;

	snprintf(path, sizeof(path), "%s/disk.img", x->d.dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	T_CHECK(fd >= 0 && ftruncate(fd, 1 << 20) == 0, "disk image");
	T_OK(rpc(x, "bdev_uring_create",
	         json_pack("{s:s, s:s, s:i}", "name", "F0", "filename", path, "block_size", 512),
	         NULL));
	T_OK(rpc(x, "vhost_scsi_controller_add_target",
	         json_pack("{s:s, s:i, s:s}", "ctrlr", "scsi0", "scsi_target_num", 9, "bdev_name",
	                   "F0"),
	         NULL));
	T_OK(expect_event(x, VIRTIO_SCSI_T_TRANSPORT_RESET, VIRTIO_SCSI_EVT_RESET_RESCAN, 9));
	GOOD(x, 2, 9, 8, 0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0);
	T_CHECK(vh_fe_be32(d) == 2047, "capacity before: %u", vh_fe_be32(d));
	T_CHECK(ftruncate(fd, 4 << 20) == 0, "grow");
	close(fd);
	T_OK(rpc(x, "bdev_uring_rescan", json_pack("{s:s}", "name", "F0"), NULL));
	/* Reason: ASC 2Ah in bits 0-7, ASCQ 09h in bits 8-15. */
	T_OK(expect_event(x, VIRTIO_SCSI_T_PARAM_CHANGE, 0x092a, 9));
	GOOD(x, 2, 9, 8, 0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0);
	T_CHECK(vh_fe_be32(d) == 8191, "capacity after: %u", vh_fe_be32(d));
	return 0;
}

/* ---- setup ---- */

static int
setup(struct ctx *x)
{
	const char *extra[] = {"-m", "0x3", NULL};
	struct vh_fe_mem_opts mo = {.size = 64 << 20, .nregions = 2};
	struct vh_fe_opts fo = {
	        .num_queues = NQ, .driver_features = VH_FE_SCSI_FEATURES, .scsi = true};
	struct virtio_scsi_config cfg;
	int rc;

	rc = vh_daemon_start(&x->d, NULL, extra, 10000);
	if (rc == -ENOENT) {
		return VH_TEST_SKIP;
	}
	T_OK(rc);
	T_OK(rpc(x, "vhost_create_scsi_controller",
	         json_pack("{s:s, s:s, s:i}", "ctrlr", "scsi0", "cpumask", "0x3", "num_queues", NQ),
	         NULL));
	T_OK(add_malloc_target(x, "M0", 16384, 512, 0, 0));
	T_OK(add_malloc_target(x, "M3", 2048, 4096, 3, 3));
	vh_daemon_path(&x->d, "scsi0", x->sock, sizeof(x->sock));
	fo.path = x->sock;
	T_OK(vh_fe_mem_create(&x->mem, &mo));
	T_OK(vh_fe_create(&x->fe, x->mem, &fo));
	T_OK(vh_fe_connect(x->fe, 0));
	/* QEMU 7.2 does not read a vhost-user-scsi back-end's config; other front-ends may. */
	T_OK(vh_fe_init(x->fe, false));
	T_CHECK(vh_fe_get_config(x->fe, sizeof(cfg), &cfg, sizeof(cfg)) == sizeof(cfg),
	        "GET_CONFIG");
	T_CHECK(cfg.num_queues == NREQQ && cfg.max_target == 255 && cfg.cdb_size == 32 &&
	                cfg.sense_size == 96 && cfg.event_info_size == 16,
	        "config: %u queues, max_target %u", cfg.num_queues, cfg.max_target);
	T_OK(vh_fe_start(x->fe, 0, 0));
	T_CHECK(vh_fe_has(vh_fe_info(x->fe)->features, VIRTIO_SCSI_F_HOTPLUG), "HOTPLUG acked");
	for (unsigned q = 0; q < NQ; q++) {
		vh_fe_vq_set_mode(vh_fe_vq(x->fe, q), VH_FE_INTERRUPT);
	}
	for (unsigned i = 0; i < NEVT; i++) {
		T_OK(vh_fe_scsi_cmd_init(&x->evt[i], x->mem));
		T_OK(vh_fe_scsi_evt_prep(&x->evt[i]));
		T_OK(vh_fe_req_queue(vh_fe_vq(x->fe, VH_FE_SCSI_EVTQ), &x->evt[i].req));
	}
	vh_fe_vq_flush(vh_fe_vq(x->fe, VH_FE_SCSI_EVTQ));
	for (unsigned i = 0; i < 2; i++) {
		T_OK(vh_fe_scsi_cmd_init(&x->c[i], x->mem));
		x->dout[i] = vh_fe_mem_alloc(x->mem, BUF_SIZE, 4096);
		x->din[i] = vh_fe_mem_alloc(x->mem, BUF_SIZE, 4096);
		T_CHECK(x->dout[i] != UINT64_MAX && x->din[i] != UINT64_MAX, "guest RAM");
	}
	return 0;
}

int
main(void)
{
	static struct ctx x;
	uint64_t seed = vh_test_seed("test_scsi");
	int rc = setup(&x);

	if (rc == VH_TEST_SKIP) {
		fprintf(stderr, "SKIP: $VHOSTD not set\n");
		return VH_TEST_SKIP;
	}
	if (rc == 0) {
		rc = check_identity(&x);
	}
	if (rc == 0) {
		rc = check_io(&x, seed);
	}
	if (rc == 0) {
		rc = check_provisioning(&x);
	}
	if (rc == 0) {
		rc = check_hotplug(&x);
	}
	if (rc == 0) {
		rc = check_remove_under_io(&x);
	}
	if (rc == 0) {
		rc = check_tmf(&x);
	}
	if (rc == 0) {
		rc = check_resize(&x);
	}
	if (rc == 0 && x.ngot != 0) {
		fprintf(stderr, "FAIL: %u unexpected event(s), first %#x\n", x.ngot,
		        x.got[0].event);
		rc = -1;
	}
	if (x.fe != NULL && vh_fe_stop(x.fe) < 0 && rc == 0) {
		fprintf(stderr, "FAIL: stop\n");
		rc = -1;
	}
	vh_test_fe_close(x.mem, x.fe);
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
