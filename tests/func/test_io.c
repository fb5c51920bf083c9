/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * I/O of every virtio-blk request type against a RAM disk, checked against a shadow copy:
 * 1 and 4 queues, EVENT_IDX on/off, polling and interrupt mode, random descriptor layouts
 * (split/merged/indirect, buffers straddling two regions). Then targeted checks: out-of-range
 * sectors -> IOERR, unknown types -> UNSUPP, discard/write-zeroes read back as zeroes, GET_ID.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "io_engine.h"
#include "vh_test.h"

#define TIMEOUT_MS 20000

static uint64_t
ops_per_case(void)
{
	const char *e = getenv("VH_TEST_OPS");

	return e ? strtoull(e, NULL, 0) : 3000;
}

static int
run_case(struct vh_target *t, unsigned int nq, bool event_idx, enum vh_fe_irq mode, bool pc_layout,
         uint64_t seed)
{
	struct vh_fe_mem_opts mo = {.size = 32 << 20,
	                            .nregions = 3,
	                            .layout = pc_layout ? VH_FE_MEM_QEMU_PC : VH_FE_MEM_SPLIT};
	struct vh_fe_opts fo = {.num_queues = nq};
	struct vh_fe_vq_stats st;
	struct vh_fe_mem *mem;
	struct io_engine e;
	struct vh_fe *fe;
	uint64_t calls = 0;
	unsigned int q;
	int rc = -1;

	fprintf(stderr, "case: %u queue(s), event_idx %s, %s mode, %s layout\n", nq,
	        event_idx ? "on" : "off", mode == VH_FE_POLL ? "poll" : "interrupt",
	        pc_layout ? "qemu-pc" : "3-region");
	fo.driver_features = VH_FE_LINUX_FEATURES;
	if (!event_idx) {
		fo.driver_features &= ~(1ull << VIRTIO_RING_F_EVENT_IDX);
	}
	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	if (vh_fe_start(fe, 0, 0) < 0) {
		fprintf(stderr, "FAIL: start\n");
		goto out;
	}
	for (q = 0; q < nq; q++) {
		vh_fe_vq_set_mode(vh_fe_vq(fe, q), mode);
	}
	if (io_engine_init(&e, fe, mem, nq, 16, seed) < 0) {
		fprintf(stderr, "FAIL: engine init\n");
		goto out;
	}
	e.serial = t->qsd ? NULL : t->name;
	/*
	 * qsd 7.2 counts iovecs against the indirect table length, so a straddling buffer in an
	 * indirect table trips its "Looped descriptor" panic: only vhostd gets that combination.
	 */
	e.straddle = !t->qsd;
	if (io_engine_run(&e, ops_per_case(), true, TIMEOUT_MS) == 0) {
		rc = 0;
	}
	for (q = 0; q < nq; q++) {
		/*
		 * The engine reads the call fd only when it has to wait; a fast run may never wait.
		 * Collect a signal still pending so "never fired" means never signalled.
		 */
		vh_fe_vq_ack_call(vh_fe_vq(fe, q));
		vh_fe_vq_stats(vh_fe_vq(fe, q), &st);
		calls += st.calls;
		if (st.completed == 0 && rc == 0) {
			fprintf(stderr, "FAIL: queue %u completed nothing\n", q);
			rc = -1;
		}
	}
	if (rc == 0 && mode == VH_FE_INTERRUPT && calls == 0) {
		fprintf(stderr, "FAIL: interrupt mode but the call eventfd never fired\n");
		rc = -1;
	}
	io_engine_fini(&e);
	if (vh_fe_stop(fe) < 0) {
		fprintf(stderr, "FAIL: stop\n");
		rc = -1;
	}
out:
	vh_test_fe_close(mem, fe);
	return rc;
}

struct sync_io {
	struct vh_fe *fe;
	struct vh_fe_mem *mem;
	uint64_t buf; /* 64 KiB + headroom */
	uint64_t nsect;
	uint32_t bsect;
};

/* One synchronous request on queue 0; returns its status (or -1 on transport trouble). */
static int
sio(struct sync_io *s, uint32_t type, uint64_t sector, uint32_t len, bool write_dir,
    uint32_t *used_len)
{
	struct vh_fe_iov iov = {s->buf, len};
	struct vh_fe_req r = {.type = type,
	                      .sector = sector,
	                      .iov = &iov,
	                      .niov = len ? 1 : 0,
	                      .dir = write_dir ? VH_FE_DIR_IN : VH_FE_DIR_OUT};
	int rc;

	rc = io_sync(s->fe, 0, &r, TIMEOUT_MS);
	if (rc < 0) {
		fprintf(stderr, "request type %u: %s\n", type, strerror(-rc));
		return -1;
	}
	if (used_len) {
		*used_len = r.used_len;
	}
	return r.status;
}

static uint8_t *
sbuf(struct sync_io *s, uint32_t len)
{
	return vh_fe_gpa_to_ptr(s->mem, s->buf, len);
}

static bool
all_zero(const uint8_t *p, uint32_t len)
{
	uint32_t i;

	for (i = 0; i < len; i++) {
		if (p[i]) {
			return false;
		}
	}
	return true;
}

static int
check_zeroing(struct sync_io *s, uint32_t type, uint32_t flags)
{
	uint64_t sec = 8 * s->bsect;
	uint32_t n = 4 * s->bsect, len = n * 512;

	memset(sbuf(s, len), 0xa5, len);
	T_CHECK(sio(s, VIRTIO_BLK_T_OUT, sec, len, false, NULL) == VIRTIO_BLK_S_OK, "write");
	vh_fe_blk_dwz_seg(sbuf(s, 16), sec, n, flags);
	T_CHECK(sio(s, type, 0, 16, false, NULL) == VIRTIO_BLK_S_OK, "type %u flags %u", type,
	        flags);
	memset(sbuf(s, len), 0x5a, len);
	T_CHECK(sio(s, VIRTIO_BLK_T_IN, sec, len, true, NULL) == VIRTIO_BLK_S_OK, "read back");
	T_CHECK(all_zero(sbuf(s, len), len), "type %u flags %u: data not zero after it", type,
	        flags);
	return 0;
}

static int
check_serial(struct vh_target *t, struct sync_io *s)
{
	char want[VIRTIO_BLK_ID_BYTES] = {0};
	json_t *res = NULL, *c;
	const char *ser;
	uint32_t ul = 0;

	memset(sbuf(s, 20), 0x5a, 20);
	T_CHECK(sio(s, VIRTIO_BLK_T_GET_ID, 0, 20, true, &ul) == VIRTIO_BLK_S_OK, "GET_ID");
	T_CHECK(ul == 21, "GET_ID used len %u, expected 21", ul);
	if (t->qsd) {
		return 0;
	}
	memcpy(want, t->name, strnlen(t->name, sizeof(want)));
	T_CHECK(memcmp(sbuf(s, 20), want, 20) == 0, "GET_ID '%.20s', expected '%s'",
	        (char *)sbuf(s, 20), t->name);
	T_OK(vh_target_rpc(t, "vhost_get_controllers", json_pack("{s:s}", "name", t->name), &res));
	c = json_array_get(res, 0);
	ser = json_string_value(json_object_get(
	        json_object_get(json_object_get(c, "backend_specific"), "block"), "serial"));
	T_CHECK(ser && strncmp(ser, want, 20) == 0, "RPC serial '%s', expected '%.20s'",
	        ser ? ser : "(none)", want);
	json_decref(res);
	return 0;
}

static int
targeted(struct vh_target *t)
{
	struct vh_fe_mem_opts mo = {.size = 16 << 20};
	struct vh_fe_opts fo = {.num_queues = 1};
	struct vh_fe_mem *mem;
	struct sync_io s;
	struct vh_fe *fe;
	uint32_t bs, ul;
	int rc = -1;

	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	if (vh_fe_start(fe, 0, 0) < 0) {
		goto out;
	}
	bs = vh_fe_cfg_u32(fe, VH_BLK_CFG_BLK_SIZE);
	s = (struct sync_io){fe, mem, vh_fe_mem_alloc(mem, 65536, 4096),
	                     vh_fe_cfg_u64(fe, VH_BLK_CFG_CAPACITY), bs / 512};
#define EXPECT(call, st)                                                                           \
	do {                                                                                       \
		int st_ = (call);                                                                  \
		if (st_ != (st)) {                                                                 \
			fprintf(stderr, "FAIL %s:%d: %s -> status %d, expected %d\n", __FILE__,    \
			        __LINE__, #call, st_, (int)(st));                                  \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)
	/* Last block OK; one past, straddling the end, and overflowing byte offsets -> IOERR. */
	EXPECT(sio(&s, VIRTIO_BLK_T_IN, s.nsect - s.bsect, bs, true, &ul), VIRTIO_BLK_S_OK);
	if (ul != bs + 1) {
		fprintf(stderr, "FAIL: read used len %u, expected %u\n", ul, bs + 1);
		goto out;
	}
	EXPECT(sio(&s, VIRTIO_BLK_T_IN, s.nsect, bs, true, NULL), VIRTIO_BLK_S_IOERR);
	EXPECT(sio(&s, VIRTIO_BLK_T_OUT, s.nsect, bs, false, NULL), VIRTIO_BLK_S_IOERR);
	EXPECT(sio(&s, VIRTIO_BLK_T_IN, s.nsect - s.bsect, 2 * bs, true, NULL), VIRTIO_BLK_S_IOERR);
	EXPECT(sio(&s, VIRTIO_BLK_T_OUT, s.nsect - s.bsect, 2 * bs, false, NULL),
	       VIRTIO_BLK_S_IOERR);
	EXPECT(sio(&s, VIRTIO_BLK_T_IN, UINT64_MAX / 512 * 8, bs, true, NULL), VIRTIO_BLK_S_IOERR);
	EXPECT(sio(&s, VIRTIO_BLK_T_IN, UINT64_MAX - 7, bs, true, NULL), VIRTIO_BLK_S_IOERR);
	/* Unknown and unimplemented types. */
	EXPECT(sio(&s, 0xff, 0, 0, false, NULL), VIRTIO_BLK_S_UNSUPP);
	EXPECT(sio(&s, 0xff, 0, 512, false, NULL), VIRTIO_BLK_S_UNSUPP);
	EXPECT(sio(&s, 0x1000, 0, 512, true, NULL), VIRTIO_BLK_S_UNSUPP);
	EXPECT(sio(&s, 2 /* legacy SCSI_CMD */, 0, 0, false, NULL), VIRTIO_BLK_S_UNSUPP);
	EXPECT(sio(&s, VIRTIO_BLK_T_FLUSH, 0, 0, false, &ul), VIRTIO_BLK_S_OK);
	if (ul != 1) {
		fprintf(stderr, "FAIL: flush used len %u, expected 1\n", ul);
		goto out;
	}
	if (check_serial(t, &s) < 0 || check_zeroing(&s, VIRTIO_BLK_T_WRITE_ZEROES, 0) < 0 ||
	    check_zeroing(&s, VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) < 0 ||
	    /* qsd's file node has discard=ignore: only vhostd's RAM disk must read back zeroes. */
	    (!t->qsd && check_zeroing(&s, VIRTIO_BLK_T_DISCARD, 0) < 0)) {
		goto out;
	}
	/* A discard segment past the end is an I/O error, not a silent success. */
	vh_fe_blk_dwz_seg(sbuf(&s, 16), s.nsect - s.bsect, 2 * s.bsect, 0);
	EXPECT(sio(&s, VIRTIO_BLK_T_DISCARD, 0, 16, false, NULL), VIRTIO_BLK_S_IOERR);
	vh_fe_blk_dwz_seg(sbuf(&s, 16), s.nsect, s.bsect, 0);
	EXPECT(sio(&s, VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false, NULL), VIRTIO_BLK_S_IOERR);
#undef EXPECT
	rc = vh_fe_stop(fe) < 0 ? -1 : 0;
out:
	vh_test_fe_close(mem, fe);
	return rc;
}

int
main(void)
{
	struct vh_target_opts to = {.num_blocks = 16384, .block_size = 512};
	uint64_t seed = vh_test_seed("test_io");
	struct vh_target t;
	int rc, fail = 0, i;

	rc = vh_target_start(&t, &to);
	if (rc) {
		return rc == VH_TEST_SKIP ? VH_TEST_SKIP : VH_TEST_FAIL;
	}
	for (i = 0; i < 8 && !fail; i++) {
		unsigned int nq = i & 4 ? 4 : 1;
		bool ev = !(i & 1);
		enum vh_fe_irq mode = i & 2 ? VH_FE_INTERRUPT : VH_FE_POLL;

		if (run_case(&t, nq, ev, mode, i == 5, seed + (uint64_t)i) < 0) {
			fail = 1;
		}
	}
	if (!fail && targeted(&t) < 0) {
		fail = 1;
	}
	if (vh_target_stop(&t) < 0) {
		fail = 1;
	}
	fprintf(stderr, "test_io: %s\n", fail ? "FAIL" : "PASS");
	return fail ? VH_TEST_FAIL : VH_TEST_PASS;
}
