/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The rbd back-end through the whole daemon, against a real single-node Ceph cluster (monitor +
 * one memstore OSD, tests/ceph/ceph-cluster.sh), driven by the test front-end. No mock of librbd:
 * what the daemon wrote is read back with `rbd export`, a separate librbd client.
 *
 * Cases (--case NAME runs one):
 * - io: a random workload of every request type on 4 queues (reads, writes, flushes, discards,
 *   write-zeroes, GET_ID, bad types, out-of-range), checked against a shadow copy; then the
 *   image itself, exported, against the shadow. The cluster is registered with config_param.
 * - dwz: discard of whole objects reads back zeroes; write-zeroes with and without the unmap
 *   flag zero exactly their range; flush.
 * - resize: `rbd resize` elsewhere and bdev_rbd_resize both reach the front-end as
 *   CONFIG_CHANGE_MSG on the back-end channel, with the new capacity in GET_CONFIG; I/O in the
 *   new space works; shrinking through the RPC is refused.
 * - outage: the cluster goes silent (SIGSTOP). An outage shorter than rados_osd_op_timeout
 *   (3 s here) only delays requests; a longer one fails them with IOERR after the bound, while
 *   the daemon stays healthy and answers RPCs; once the cluster is back, I/O works again.
 * - bound: RPCs that wait for a silent cluster return within the control-thread bound
 *   ($VHOSTD_RBD_WAIT_MS); error cases (unknown pool, image, cluster; bad block size; a
 *   cluster in use) fail with clear messages; the daemon stays healthy.
 * - lock: two daemons on one image, as the source and destination of a live migration: the
 *   destination reads what the source wrote, takes the exclusive lock when it first writes
 *   (librbd hands it over), the source then sees the new data (its cache was dropped), and the
 *   lock can come back; a read-only bdev reads and refuses writes.
 * - persist: save_config holds the cluster before the bdev; a daemon restarted with the same
 *   config file comes back with both and the data.
 * Exit: 0 pass, 1 fail, 77 skip (no $VHOSTD, no Ceph, not root).
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ceph_env.h"
#include "io_engine.h"
#include "vh_test.h"

#define TIMEOUT_MS    30000
#define OSD_TIMEOUT_S 3 /* rados_osd_op_timeout of the outage case */

static uint64_t g_seed;
static struct ceph_env g_ceph;

/* ---- daemon + rbd bdev ---- */

/* vhostd in a fresh temp dir, with @extra arguments (NULL-terminated, may be NULL). */
static int
daemon_up(struct vh_target *t, const char *const *extra)
{
	int rc;

	memset(t, 0, sizeof(*t));
	t->d.pid = -1;
	snprintf(t->name, sizeof(t->name), "vhost.0");
	snprintf(t->bdev, sizeof(t->bdev), "r0");
	t->block_size = 512;
	rc = vh_daemon_start(&t->d, NULL, extra, TIMEOUT_MS);
	if (rc == -ENOENT) {
		fprintf(stderr, "SKIP: $VHOSTD not set\n");
		return VH_TEST_SKIP;
	}
	T_OK(rc);
	vh_daemon_path(&t->d, t->name, t->sock, sizeof(t->sock));
	return 0;
}

/* Register cluster @name with config_param (mon_host, auth none) plus @more (stolen, or NULL). */
static int
register_cluster(struct vh_target *t, const char *name, json_t *more)
{
	json_t *cfg = json_pack("{s:s, s:s, s:s, s:s}", "mon_host", g_ceph.mon_host,
	                        "auth_client_required", "none", "auth_cluster_required", "none",
	                        "auth_service_required", "none");

	if (more != NULL) {
		json_object_update(cfg, more);
		json_decref(more);
	}
	return vh_target_rpc(t, "bdev_rbd_register_cluster",
	                     json_pack("{s:s, s:o}", "name", name, "config_param", cfg), NULL);
}

/* Bdev t->bdev on @img of @cluster, and controller t->name with @nq queues on it. */
static int
rbd_bdev(struct vh_target *t, const char *cluster, const char *img, bool read_only, unsigned int nq)
{
	json_t *res = NULL;

	T_OK(vh_target_rpc(t, "bdev_rbd_create",
	                   json_pack("{s:s, s:s, s:s, s:i, s:s, s:b}", "name", t->bdev, "pool_name",
	                             g_ceph.pool, "rbd_name", img, "block_size", (int)t->block_size,
	                             "cluster_name", cluster, "read_only", read_only),
	                   &res));
	T_CHECK(json_is_string(res) && strcmp(json_string_value(res), t->bdev) == 0,
	        "bdev_rbd_create did not return the bdev's name");
	json_decref(res);
	T_OK(vh_target_rpc(t, "vhost_create_blk_controller",
	                   json_pack("{s:s, s:s, s:s, s:i, s:b}", "ctrlr", t->name, "dev_name",
	                             t->bdev, "cpumask", "0x1", "num_queues", (int)nq, "readonly",
	                             read_only),
	                   NULL));
	return 0;
}

static int
image_create(const char *img, unsigned int mib)
{
	if (ceph_sh(&g_ceph,
	            "rbd $CEPH rm --no-progress %s/%s 2>/dev/null; "
	            "rbd $CEPH create --size %uM %s/%s",
	            g_ceph.pool, img, mib, g_ceph.pool, img) != 0) {
		fprintf(stderr, "FAIL: rbd create %s\n", img);
		return -1;
	}
	return 0;
}

/* driver_specific.rbd.<key> of t->bdev as an integer, or -1. */
static long long
bdev_stat(struct vh_target *t, const char *key)
{
	json_t *res = NULL;
	long long v = -1;

	if (vh_target_rpc(t, "bdev_get_bdevs", json_pack("{s:s}", "name", t->bdev), &res) == 0) {
		json_t *ds = json_object_get(json_array_get(res, 0), "driver_specific");

		v = json_integer_value(json_object_get(json_object_get(ds, "rbd"), key));
	}
	json_decref(res);
	return v;
}

/* ---- synchronous requests with patterns ---- */

struct sio {
	struct vh_fe *fe;
	struct vh_fe_mem *mem;
	uint64_t gpa;
	uint8_t *buf;
	uint32_t cap;
};

static int
sio_init(struct sio *s, struct vh_fe *fe, struct vh_fe_mem *mem, uint32_t cap)
{
	s->fe = fe;
	s->mem = mem;
	s->cap = cap;
	s->gpa = vh_fe_mem_alloc(mem, cap, 4096);
	T_CHECK(s->gpa != UINT64_MAX, "out of guest RAM");
	s->buf = vh_fe_gpa_to_ptr(mem, s->gpa, cap);
	return 0;
}

/* One request on queue @q; returns its status, or -1 if it did not complete in time. */
static int
sio_do(struct sio *s, unsigned int q, uint32_t type, uint64_t sector, uint32_t len)
{
	struct vh_fe_iov iov = {s->gpa, len};
	struct vh_fe_req r = {.type = type, .sector = sector, .iov = &iov, .niov = len ? 1 : 0};
	int rc = io_sync(s->fe, q, &r, TIMEOUT_MS);

	if (rc < 0) {
		fprintf(stderr, "request type %u sector %" PRIu64 ": %s\n", type, sector,
		        strerror(-rc));
		return -1;
	}
	return r.status;
}

static void
pattern(uint8_t *p, size_t len, uint64_t sector, uint32_t tag)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = ((sector * 512 + i) * 0x9e3779b97f4a7c15ull) ^ tag;

		memcpy(p + i, &v, 8);
	}
}

static int
write_pat(struct sio *s, unsigned int q, uint64_t sector, uint32_t len, uint32_t tag)
{
	pattern(s->buf, len, sector, tag);
	T_CHECK(sio_do(s, q, VIRTIO_BLK_T_OUT, sector, len) == VIRTIO_BLK_S_OK,
	        "write at sector %" PRIu64 " failed", sector);
	return 0;
}

/* Read [sector, +len) and compare with @tag's pattern, or zeroes when @tag is 0. */
static int
check_pat(struct sio *s, unsigned int q, uint64_t sector, uint32_t len, uint32_t tag)
{
	static uint8_t want[1 << 20];

	memset(s->buf, 0xa5, len);
	T_CHECK(sio_do(s, q, VIRTIO_BLK_T_IN, sector, len) == VIRTIO_BLK_S_OK,
	        "read at sector %" PRIu64 " failed", sector);
	if (tag != 0) {
		pattern(want, len, sector, tag);
	} else {
		memset(want, 0, len);
	}
	T_CHECK(memcmp(s->buf, want, len) == 0,
	        "sector %" PRIu64 " +%u: read %s, expected %s (tag %#x)", sector, len,
	        s->buf[0] == 0 ? "zeroes" : "other data", tag ? "the pattern" : "zeroes", tag);
	return 0;
}

/* Discard or write-zeroes of [sector, +nsect); returns the status. */
static int
dwz(struct sio *s, unsigned int q, uint32_t type, uint64_t sector, uint32_t nsect, uint32_t flags)
{
	vh_fe_blk_dwz_seg(s->buf, sector, nsect, flags);
	return sio_do(s, q, type, 0, 16);
}

/* Compare [off, off+len) of the image, exported by a separate client, with @tag's pattern. */
static int
export_check(const char *img, uint64_t sector, uint32_t len, uint32_t tag)
{
	static uint8_t got[1 << 20], want[1 << 20];
	char name[96];

	snprintf(name, sizeof(name), "%s/%s", g_ceph.pool, img);
	T_OK(ceph_read_image(&g_ceph, name, sector * 512, got, len));
	if (tag != 0) {
		pattern(want, len, sector, tag);
	} else {
		memset(want, 0, len);
	}
	T_CHECK(memcmp(got, want, len) == 0, "rbd export of %s at sector %" PRIu64 " differs", img,
	        sector);
	return 0;
}

/* ---- cases ---- */

static int
io_body(struct vh_target *t)
{
	struct vh_fe_mem_opts mo = {.size = 32 << 20, .nregions = 3};
	struct vh_fe_opts fo = {.num_queues = 4, .timeout_ms = TIMEOUT_MS};
	const char *e_ops = getenv("VH_TEST_OPS");
	uint64_t ops = e_ops ? strtoull(e_ops, NULL, 0) : 3000, checked = 0;
	struct vh_fe_mem *mem = NULL;
	struct vh_fe *fe = NULL;
	struct io_engine e;
	uint8_t *img = NULL;
	char name[96];
	int rc = -1;

	if (vh_test_fe_open(t, &mo, &fo, &mem, &fe) < 0 || vh_fe_start(fe, 0, 0) < 0 ||
	    io_engine_init(&e, fe, mem, 4, 8, g_seed) < 0) {
		fprintf(stderr, "FAIL: front-end setup\n");
		vh_test_fe_close(mem, fe);
		return -1;
	}
	e.serial = t->name;
	if (io_engine_run(&e, ops, true, 120000) < 0 || vh_fe_stop(fe) < 0) {
		goto out;
	}
	fprintf(stderr, "  %" PRIu64 " requests on 4 queues checked against the shadow\n", e.done);
	/* The image, as another librbd client sees it. */
	img = malloc(e.nsect * 512);
	snprintf(name, sizeof(name), "%s/io", g_ceph.pool);
	if (img == NULL || ceph_read_image(&g_ceph, name, 0, img, e.nsect * 512) < 0) {
		fprintf(stderr, "FAIL: rbd export\n");
		goto out;
	}
	for (uint64_t s = 0; s < e.nsect; s++) {
		if (!e.known[s]) {
			continue;
		}
		if (memcmp(img + s * 512, e.shadow + s * 512, 512) != 0) {
			fprintf(stderr, "FAIL: sector %" PRIu64 " of the exported image differs\n",
			        s);
			goto out;
		}
		checked++;
	}
	fprintf(stderr, "  exported image matches the shadow (%" PRIu64 " known sectors)\n",
	        checked);
	if (checked == 0 || bdev_stat(t, "io_errors") != 0) {
		fprintf(stderr, "FAIL: nothing checked, or the bdev counted errors\n");
		goto out;
	}
	rc = 0;
out:
	free(img);
	io_engine_fini(&e);
	vh_test_fe_close(mem, fe);
	return rc;
}

static int
case_io(void)
{
	struct vh_target t;
	int rc;

	fprintf(stderr, "case io: random workload on 4 queues, image checked with rbd export\n");
	T_OK(image_create("io", 32));
	rc = daemon_up(&t, NULL);
	if (rc != 0) {
		return rc;
	}
	rc = -1;
	if (register_cluster(&t, "ceph", NULL) == 0 && rbd_bdev(&t, "ceph", "io", false, 4) == 0) {
		rc = io_body(&t);
	}
	if (vh_target_stop(&t) < 0) {
		rc = -1;
	}
	return rc;
}

static int
dwz_body(struct vh_target *t)
{
	const uint64_t obj = (4u << 20) / 512; /* sectors per 4 MiB RADOS object */
	struct vh_fe_mem_opts mo = {.size = 16 << 20};
	struct vh_fe_opts fo = {.num_queues = 2, .timeout_ms = TIMEOUT_MS};
	struct vh_fe_mem *mem = NULL;
	struct vh_fe *fe = NULL;
	struct sio s;
	int rc = -1;

	if (vh_test_fe_open(t, &mo, &fo, &mem, &fe) < 0 || vh_fe_start(fe, 0, 0) < 0 ||
	    sio_init(&s, fe, mem, 1 << 20) < 0) {
		goto out;
	}
	/* Objects 0 and 1 written in full. */
	for (uint64_t sec = 0; sec < 2 * obj; sec += 2048) {
		if (write_pat(&s, sec % 2, sec, 1 << 20, 0x11) < 0) {
			goto out;
		}
	}
	if (sio_do(&s, 0, VIRTIO_BLK_T_FLUSH, 0, 0) != VIRTIO_BLK_S_OK) {
		fprintf(stderr, "FAIL: flush\n");
		goto out;
	}
	/* A whole object discarded: librbd removes it, reads give zeroes. */
	if (dwz(&s, 1, VIRTIO_BLK_T_DISCARD, obj, (uint32_t)obj, 0) != VIRTIO_BLK_S_OK) {
		fprintf(stderr, "FAIL: discard\n");
		goto out;
	}
	for (uint64_t sec = obj; sec < 2 * obj; sec += 2048) {
		if (check_pat(&s, 0, sec, 1 << 20, 0) < 0) {
			goto out;
		}
	}
	fprintf(stderr, "  discard of a whole object reads back as zeroes\n");
	/* Write-zeroes inside object 0: without unmap (thick), and with it. */
	if (dwz(&s, 0, VIRTIO_BLK_T_WRITE_ZEROES, 1024, 128, 0) != VIRTIO_BLK_S_OK ||
	    dwz(&s, 1, VIRTIO_BLK_T_WRITE_ZEROES, 2056, 24, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) !=
	            VIRTIO_BLK_S_OK) {
		fprintf(stderr, "FAIL: write-zeroes\n");
		goto out;
	}
	if (check_pat(&s, 1, 1024, 128 * 512, 0) < 0 || check_pat(&s, 0, 2056, 24 * 512, 0) < 0 ||
	    check_pat(&s, 0, 0, 1024 * 512, 0x11) < 0 ||
	    check_pat(&s, 1, 1152, (2056 - 1152) * 512, 0x11) < 0 ||
	    check_pat(&s, 0, 2080, (4096 - 2080) * 512, 0x11) < 0) {
		goto out;
	}
	if (vh_fe_stop(fe) < 0 || export_check("dwz", 1024, 128 * 512, 0) < 0 ||
	    export_check("dwz", 1152, 512 * 512, 0x11) < 0 ||
	    export_check("dwz", obj, 1 << 20, 0) < 0) {
		goto out;
	}
	fprintf(stderr, "  write-zeroes (thick and unmap) zero exactly their range; flush ok\n");
	rc = 0;
out:
	vh_test_fe_close(mem, fe);
	return rc;
}

static int
case_dwz(void)
{
	struct vh_target t;
	int rc;

	fprintf(stderr, "case dwz: discard, write-zeroes, flush\n");
	T_OK(image_create("dwz", 16));
	rc = daemon_up(&t, NULL);
	if (rc != 0) {
		return rc;
	}
	rc = -1;
	if (register_cluster(&t, "ceph", NULL) == 0 && rbd_bdev(&t, "ceph", "dwz", false, 2) == 0) {
		rc = dwz_body(&t);
	}
	if (vh_target_stop(&t) < 0) {
		rc = -1;
	}
	return rc;
}

/* Wait for CONFIG_CHANGE_MSG, then GET_CONFIG must show @mib MiB. */
static int
expect_capacity(struct vh_fe *fe, uint64_t mib, const char *why)
{
	uint8_t cfg[8];
	uint64_t cap;
	int st = vh_fe_backend_handle(fe, TIMEOUT_MS);

	T_CHECK(st == VHOST_USER_BACKEND_CONFIG_CHANGE_MSG,
	        "%s: expected CONFIG_CHANGE_MSG, got %d", why, st);
	T_CHECK(vh_fe_get_config(fe, 8, cfg, sizeof(cfg)) >= 0, "GET_CONFIG");
	memcpy(&cap, cfg, sizeof(cap));
	T_CHECK(le64toh(cap) == (mib << 20) / 512,
	        "%s: capacity %" PRIu64 " sectors, expected %" PRIu64, why, le64toh(cap),
	        (mib << 20) / 512);
	fprintf(stderr, "  %s: CONFIG_CHANGE, capacity %" PRIu64 " MiB\n", why, mib);
	return 0;
}

static int
resize_body(struct vh_target *t)
{
	struct vh_fe_mem_opts mo = {.size = 8 << 20};
	struct vh_fe_opts fo = {.num_queues = 1, .timeout_ms = TIMEOUT_MS};
	struct vh_fe_mem *mem = NULL;
	struct vh_fe *fe = NULL;
	char msg[256] = "";
	struct sio s;
	int rc = -1, code = 0;

	if (vh_test_fe_open(t, &mo, &fo, &mem, &fe) < 0 || vh_fe_start(fe, 0, 0) < 0 ||
	    sio_init(&s, fe, mem, 65536) < 0) {
		goto out;
	}
	/* Elsewhere: another client grows the image; the header watch tells us. */
	if (ceph_sh(&g_ceph, "rbd $CEPH resize --no-progress --size 32M %s/rs", g_ceph.pool) != 0 ||
	    expect_capacity(fe, 32, "rbd resize") < 0) {
		goto out;
	}
	/* Through the RPC (MiB, as SPDK). */
	if (vh_target_rpc(t, "bdev_rbd_resize",
	                  json_pack("{s:s, s:i}", "name", t->bdev, "new_size", 48), NULL) < 0 ||
	    expect_capacity(fe, 48, "bdev_rbd_resize") < 0) {
		goto out;
	}
	if (write_pat(&s, 0, (47u << 20) / 512, 65536, 0x22) < 0 ||
	    check_pat(&s, 0, (47u << 20) / 512, 65536, 0x22) < 0) {
		goto out;
	}
	if (vh_rpc_call(t->d.rpc_path, "bdev_rbd_resize",
	                json_pack("{s:s, s:i}", "name", t->bdev, "new_size", 16), NULL, &code, msg,
	                sizeof(msg), TIMEOUT_MS) != -EREMOTEIO ||
	    strstr(msg, "smaller") == NULL) {
		fprintf(stderr, "FAIL: shrinking through bdev_rbd_resize was not refused (%s)\n",
		        msg);
		goto out;
	}
	fprintf(stderr, "  I/O in the new space works; shrink refused: %s\n", msg);
	rc = vh_fe_stop(fe) == 0 ? 0 : -1;
out:
	vh_test_fe_close(mem, fe);
	return rc;
}

static int
case_resize(void)
{
	struct vh_target t;
	int rc;

	fprintf(stderr, "case resize: rbd resize and bdev_rbd_resize reach the front-end\n");
	T_OK(image_create("rs", 16));
	rc = daemon_up(&t, NULL);
	if (rc != 0) {
		return rc;
	}
	rc = -1;
	if (register_cluster(&t, "ceph", NULL) == 0 && rbd_bdev(&t, "ceph", "rs", false, 1) == 0) {
		rc = resize_body(&t);
	}
	if (vh_target_stop(&t) < 0) {
		rc = -1;
	}
	return rc;
}

/* RPCs answer quickly while requests wait for the cluster. */
static int
rpc_responsive(struct vh_target *t)
{
	int64_t t0 = vh_fe_now_ms();
	json_t *res = NULL;

	T_OK(vh_rpc_call(t->d.rpc_path, "spdk_get_version", NULL, &res, NULL, NULL, 0, 2000));
	json_decref(res);
	res = NULL;
	T_OK(vh_rpc_call(t->d.rpc_path, "bdev_get_bdevs", NULL, &res, NULL, NULL, 0, 2000));
	json_decref(res);
	T_CHECK(vh_fe_now_ms() - t0 < 2000, "RPCs took %lld ms during the outage",
	        (long long)(vh_fe_now_ms() - t0));
	return 0;
}

#define OUT_REQS 16

static int
outage_long(struct vh_target *t, struct vh_fe *fe, struct sio *s)
{
	struct vh_fe_req req[OUT_REQS];
	struct vh_fe_iov iov[OUT_REQS];
	unsigned int done = 0, ioerr = 0;
	int64_t t0, elapsed;

	T_OK(ceph_env_pause(&g_ceph, true));
	t0 = vh_fe_now_ms();
	for (unsigned int i = 0; i < OUT_REQS; i++) {
		iov[i] = (struct vh_fe_iov){s->gpa + i * 4096, 4096};
		req[i] = (struct vh_fe_req){.type = i % 2 ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT,
		                            .sector = 4096 + i * 8,
		                            .iov = &iov[i],
		                            .niov = 1};
		T_OK(vh_fe_req_submit(vh_fe_vq(fe, i % 2), &req[i]));
	}
	T_OK(rpc_responsive(t));
	T_CHECK(vh_daemon_alive(&t->d), "daemon died during the outage");
	while (done < OUT_REQS && vh_fe_now_ms() - t0 < TIMEOUT_MS) {
		struct vh_fe_req *d[OUT_REQS];

		for (unsigned int q = 0; q < 2; q++) {
			int n = vh_fe_vq_poll(vh_fe_vq(fe, q), d, OUT_REQS);

			T_CHECK(n >= 0, "bad used ring");
			for (int i = 0; i < n; i++) {
				ioerr += d[i]->status == VIRTIO_BLK_S_IOERR;
			}
			done += (unsigned int)n;
		}
		if (done < OUT_REQS) {
			vh_fe_vq_wait(vh_fe_vq(fe, 0), 50);
		}
	}
	elapsed = vh_fe_now_ms() - t0;
	T_CHECK(done == OUT_REQS, "%u of %u requests completed %lld ms into the outage", done,
	        OUT_REQS, (long long)elapsed);
	T_CHECK(ioerr == OUT_REQS, "%u of %u requests failed with IOERR", ioerr, OUT_REQS);
	/* librados gives up after rados_osd_op_timeout, not before. */
	T_CHECK(elapsed >= OSD_TIMEOUT_S * 1000 - 500, "failed after %lld ms, before the bound",
	        (long long)elapsed);
	fprintf(stderr, "  long outage: %u requests failed with IOERR after %lld ms (bound %d s)\n",
	        ioerr, (long long)elapsed, OSD_TIMEOUT_S);
	T_CHECK(bdev_stat(t, "io_timeouts") >= OUT_REQS, "io_timeouts %lld",
	        bdev_stat(t, "io_timeouts"));
	T_OK(ceph_env_pause(&g_ceph, false));
	return 0;
}

static int
outage_body(struct vh_target *t)
{
	struct vh_fe_mem_opts mo = {.size = 8 << 20};
	struct vh_fe_opts fo = {.num_queues = 2, .timeout_ms = TIMEOUT_MS};
	struct vh_fe_mem *mem = NULL;
	struct vh_fe *fe = NULL;
	struct vh_fe_iov iov;
	struct vh_fe_req w;
	struct sio s;
	int64_t t0;
	int rc = -1, n;

	if (vh_test_fe_open(t, &mo, &fo, &mem, &fe) < 0 || vh_fe_start(fe, 0, 0) < 0 ||
	    sio_init(&s, fe, mem, 1 << 20) < 0 || write_pat(&s, 0, 0, 65536, 0x31) < 0 ||
	    check_pat(&s, 1, 0, 65536, 0x31) < 0) {
		goto out;
	}
	/* Shorter than the bound: the write waits for the cluster and then succeeds. */
	if (ceph_env_pause(&g_ceph, true) < 0) {
		goto out;
	}
	pattern(s.buf, 65536, 256, 0x32);
	iov = (struct vh_fe_iov){s.gpa, 65536};
	w = (struct vh_fe_req){.type = VIRTIO_BLK_T_OUT, .sector = 256, .iov = &iov, .niov = 1};
	if (vh_fe_req_submit(vh_fe_vq(fe, 0), &w) < 0) {
		goto out;
	}
	t0 = vh_fe_now_ms();
	while (vh_fe_now_ms() - t0 < 1000) {
		n = vh_fe_vq_poll(vh_fe_vq(fe, 0), NULL, 0);
		if (n != 0) {
			fprintf(stderr, "FAIL: a write completed while the cluster was stopped\n");
			goto out;
		}
		vh_fe_vq_wait(vh_fe_vq(fe, 0), 50);
	}
	if (ceph_env_pause(&g_ceph, false) < 0 || vh_fe_vq_drain(vh_fe_vq(fe, 0), TIMEOUT_MS) < 0 ||
	    w.status != VIRTIO_BLK_S_OK || check_pat(&s, 1, 256, 65536, 0x32) < 0) {
		fprintf(stderr, "FAIL: the write did not complete once the cluster was back\n");
		goto out;
	}
	fprintf(stderr, "  short outage: the write waited %lld ms and succeeded\n",
	        (long long)(vh_fe_now_ms() - t0 + 1000));
	if (outage_long(t, fe, &s) < 0) {
		ceph_env_pause(&g_ceph, false);
		goto out;
	}
	/* Back: I/O works again. */
	if (write_pat(&s, 0, 8192, 65536, 0x33) < 0 || check_pat(&s, 1, 8192, 65536, 0x33) < 0 ||
	    check_pat(&s, 0, 0, 65536, 0x31) < 0) {
		goto out;
	}
	fprintf(stderr, "  cluster back: I/O works again\n");
	rc = vh_fe_stop(fe) == 0 ? 0 : -1;
out:
	vh_test_fe_close(mem, fe);
	return rc;
}

static int
case_outage(void)
{
	struct vh_target t;
	char v[8];
	int rc;

	fprintf(stderr, "case outage: the cluster stops under I/O (bound %d s)\n", OSD_TIMEOUT_S);
	T_OK(image_create("out", 16));
	rc = daemon_up(&t, NULL);
	if (rc != 0) {
		return rc;
	}
	rc = -1;
	snprintf(v, sizeof(v), "%d", OSD_TIMEOUT_S);
	/* No cache: writes must reach the OSD for the bound to show on them. */
	if (register_cluster(&t, "ceph",
	                     json_pack("{s:s, s:s}", "rados_osd_op_timeout", v, "rbd_cache",
	                               "false")) == 0 &&
	    rbd_bdev(&t, "ceph", "out", false, 2) == 0) {
		rc = outage_body(&t);
	}
	ceph_env_pause(&g_ceph, false);
	if (vh_target_stop(&t) < 0) {
		rc = -1;
	}
	return rc;
}

/* @method fails with -32602 or -32603 and a message containing @needle. */
static int
expect_error(struct vh_target *t, const char *method, json_t *params, const char *needle)
{
	char msg[256] = "";
	int code = 0;
	int rc = vh_rpc_call(t->d.rpc_path, method, params, NULL, &code, msg, sizeof(msg),
	                     TIMEOUT_MS);

	T_CHECK(rc == -EREMOTEIO, "%s succeeded (rc %d)", method, rc);
	T_CHECK(strstr(msg, needle) != NULL, "%s: '%s' does not mention '%s'", method, msg, needle);
	fprintf(stderr, "  %s: %s\n", method, msg);
	return 0;
}

static json_t *
create_params(const char *cluster, const char *pool, const char *img, int bs)
{
	return json_pack("{s:s, s:s, s:s, s:i, s:s}", "name", "e0", "pool_name", pool, "rbd_name",
	                 img, "block_size", bs, "cluster_name", cluster);
}

static int
bound_body(struct vh_target *t)
{
	json_t *silent;
	int64_t t0, ms;

	/* A silent cluster: connecting waits client_mount_timeout (60 s); the RPC does not. */
	T_OK(ceph_env_pause(&g_ceph, true));
	silent = json_pack("{s:s, s:s, s:s}", "mon_host", g_ceph.mon_host, "client_mount_timeout",
	                   "60", "auth_client_required", "none");
	t0 = vh_fe_now_ms();
	T_OK(expect_error(t, "bdev_rbd_register_cluster",
	                  json_pack("{s:s, s:o}", "name", "slow", "config_param", silent),
	                  "within 2000 ms"));
	ms = vh_fe_now_ms() - t0;
	T_CHECK(ms < 6000, "register_cluster took %lld ms with a 2000 ms bound", (long long)ms);
	T_OK(rpc_responsive(t));
	T_OK(ceph_env_pause(&g_ceph, false));
	fprintf(stderr, "  register on a silent cluster: failed after %lld ms\n", (long long)ms);

	T_OK(register_cluster(t, "ceph", NULL));
	T_OK(expect_error(t, "bdev_rbd_register_cluster",
	                  json_pack("{s:s, s:{s:s}}", "name", "ceph", "config_param", "mon_host",
	                            g_ceph.mon_host),
	                  "already registered"));
	T_OK(expect_error(t, "bdev_rbd_register_cluster",
	                  json_pack("{s:s, s:{s:s}}", "name", "bad", "config_param",
	                            "no_such_option_xyz", "1"),
	                  "no such option"));
	T_OK(expect_error(t, "bdev_rbd_register_cluster",
	                  json_pack("{s:s, s:{s:{}}}", "name", "bad", "config_param", "mon_host"),
	                  "string value"));
	T_OK(expect_error(t, "bdev_rbd_create", create_params("ceph", "nopool", "x", 512),
	                  "no such pool"));
	T_OK(expect_error(t, "bdev_rbd_create", create_params("ceph", g_ceph.pool, "noimg", 512),
	                  "no such image"));
	T_OK(expect_error(t, "bdev_rbd_create", create_params("nocl", g_ceph.pool, "bd", 512),
	                  "not registered"));
	T_OK(expect_error(t, "bdev_rbd_create", create_params("ceph", g_ceph.pool, "bd", 1000),
	                  "block_size"));
	T_OK(expect_error(t, "bdev_rbd_get_clusters_info", json_pack("{s:s}", "name", "nocl"),
	                  "not found"));

	/* Opening an image on a silent cluster: bounded too; undone when it finishes. */
	T_OK(ceph_env_pause(&g_ceph, true));
	t0 = vh_fe_now_ms();
	T_OK(expect_error(t, "bdev_rbd_create", create_params("ceph", g_ceph.pool, "bd", 512),
	                  "within 2000 ms"));
	ms = vh_fe_now_ms() - t0;
	T_OK(ceph_env_pause(&g_ceph, false));
	T_CHECK(ms < 6000, "bdev_rbd_create took %lld ms with a 2000 ms bound", (long long)ms);
	fprintf(stderr, "  create on a silent cluster: failed after %lld ms\n", (long long)ms);

	/* The same create works now; the cluster is then in use. */
	T_OK(vh_target_rpc(t, "bdev_rbd_create", create_params("ceph", g_ceph.pool, "bd", 512),
	                   NULL));
	T_OK(expect_error(t, "bdev_rbd_unregister_cluster", json_pack("{s:s}", "name", "ceph"),
	                  "used by rbd bdevs"));
	T_OK(vh_target_rpc(t, "bdev_rbd_delete", json_pack("{s:s}", "name", "e0"), NULL));
	T_OK(vh_target_rpc(t, "bdev_rbd_unregister_cluster", json_pack("{s:s}", "name", "ceph"),
	                   NULL));
	T_CHECK(vh_daemon_alive(&t->d), "daemon died");
	return 0;
}

static int
case_bound(void)
{
	const char *prev = getenv("VHOSTD_RBD_WAIT_MS");
	struct vh_target t;
	int rc;

	fprintf(stderr, "case bound: RPCs against a silent cluster, and RPC errors\n");
	T_OK(image_create("bd", 16));
	setenv("VHOSTD_RBD_WAIT_MS", "2000", 1);
	rc = daemon_up(&t, NULL);
	if (prev != NULL) {
		setenv("VHOSTD_RBD_WAIT_MS", prev, 1);
	} else {
		unsetenv("VHOSTD_RBD_WAIT_MS");
	}
	if (rc != 0) {
		return rc;
	}
	rc = bound_body(&t);
	ceph_env_pause(&g_ceph, false);
	if (vh_target_stop(&t) < 0) {
		rc = -1;
	}
	return rc;
}

/* The client id ("client.N") holding @img's exclusive lock, per `rbd lock ls`. */
static int
lock_owner(const char *img, long long *id)
{
	char out[1024];
	const char *p;

	T_CHECK(ceph_sh_out(&g_ceph, out, sizeof(out), "rbd $CEPH lock ls --format json %s/%s",
	                    g_ceph.pool, img) == 0,
	        "rbd lock ls");
	p = strstr(out, "\"client.");
	*id = p != NULL ? strtoll(p + 8, NULL, 10) : -1;
	return 0;
}

static long long
instance_id(struct vh_target *t)
{
	json_t *res = NULL;
	long long id = -1;

	if (vh_target_rpc(t, "bdev_rbd_get_clusters_info", json_pack("{s:s}", "name", "ceph"),
	                  &res) == 0) {
		id = json_integer_value(json_object_get(res, "instance_id"));
	}
	json_decref(res);
	return id;
}

struct side {
	struct vh_target t;
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	struct sio s;
	long long id;
};

static int
side_open(struct side *x, const char *img, bool read_only)
{
	struct vh_fe_mem_opts mo = {.size = 8 << 20};
	struct vh_fe_opts fo = {.num_queues = 1, .timeout_ms = TIMEOUT_MS};
	int rc = daemon_up(&x->t, NULL);

	if (rc != 0) {
		return rc;
	}
	T_OK(register_cluster(&x->t, "ceph", NULL));
	T_OK(rbd_bdev(&x->t, "ceph", img, read_only, 1));
	T_OK(vh_test_fe_open(&x->t, &mo, &fo, &x->mem, &x->fe));
	T_OK(vh_fe_start(x->fe, 0, 0));
	T_OK(sio_init(&x->s, x->fe, x->mem, 1 << 20));
	x->id = instance_id(&x->t);
	T_CHECK(x->id > 0, "no instance id");
	return 0;
}

static int
side_close(struct side *x)
{
	vh_test_fe_close(x->mem, x->fe);
	x->mem = NULL;
	x->fe = NULL;
	return x->t.d.pid > 0 ? vh_target_stop(&x->t) : 0;
}

static int
expect_owner(const char *img, const struct side *x, const char *who)
{
	long long owner;

	T_OK(lock_owner(img, &owner));
	T_CHECK(owner == x->id, "lock held by client.%lld, expected %s (client.%lld)", owner, who,
	        x->id);
	fprintf(stderr, "  exclusive lock: %s (client.%lld)\n", who, owner);
	return 0;
}

static int
lock_body(struct side *src, struct side *dst, struct side *ro)
{
	const uint32_t len = 256 << 10;

	/* The source runs the guest: it writes and holds the lock. */
	T_OK(side_open(src, "lk", false));
	T_OK(write_pat(&src->s, 0, 0, len, 0x41));
	T_CHECK(sio_do(&src->s, 0, VIRTIO_BLK_T_FLUSH, 0, 0) == VIRTIO_BLK_S_OK, "flush");
	T_OK(expect_owner("lk", src, "source"));
	/* The destination opens the same image while the source runs, and can read it. */
	T_OK(side_open(dst, "lk", false));
	T_OK(check_pat(&dst->s, 0, 0, len, 0x41));
	T_OK(expect_owner("lk", src, "source, after the destination opened"));
	/* Switch-over: the source stops its rings; the destination's first write takes the lock. */
	T_OK(vh_fe_stop(src->fe));
	T_OK(write_pat(&dst->s, 0, 0, len, 0x42));
	T_CHECK(sio_do(&dst->s, 0, VIRTIO_BLK_T_FLUSH, 0, 0) == VIRTIO_BLK_S_OK, "flush");
	T_OK(expect_owner("lk", dst, "destination"));
	/* The source gave its cache up with the lock: it reads the destination's data. */
	T_OK(vh_fe_start(src->fe, 0, 0));
	T_OK(check_pat(&src->s, 0, 0, len, 0x42));
	/* A migration back: the lock returns on the source's next write. */
	T_OK(vh_fe_stop(dst->fe));
	T_OK(write_pat(&src->s, 0, 512, len, 0x43));
	T_OK(expect_owner("lk", src, "source again"));
	T_OK(vh_fe_start(dst->fe, 0, 0));
	T_OK(check_pat(&dst->s, 0, 512, len, 0x43));
	T_OK(export_check("lk", 0, 512 * 512, 0x42));
	/* A read-only bdev on the image: reads work, writes fail, the lock stays. */
	T_OK(side_open(ro, "lk", true));
	T_OK(check_pat(&ro->s, 0, 512, len, 0x43));
	pattern(ro->s.buf, 4096, 0, 0x44);
	T_CHECK(sio_do(&ro->s, 0, VIRTIO_BLK_T_OUT, 0, 4096) == VIRTIO_BLK_S_IOERR,
	        "a write to a read-only bdev did not fail");
	T_OK(expect_owner("lk", src, "source, after the read-only open"));
	fprintf(stderr, "  read-only bdev: reads ok, writes IOERR\n");
	return 0;
}

static int
case_lock(void)
{
	struct side src, dst, ro;
	int rc;

	fprintf(stderr, "case lock: two daemons on one image (live-migration hand-over)\n");
	memset(&src, 0, sizeof(src));
	memset(&dst, 0, sizeof(dst));
	memset(&ro, 0, sizeof(ro));
	src.t.d.pid = dst.t.d.pid = ro.t.d.pid = -1;
	T_OK(image_create("lk", 16));
	rc = lock_body(&src, &dst, &ro);
	if (side_close(&ro) < 0 || side_close(&dst) < 0 || side_close(&src) < 0) {
		rc = -1;
	}
	return rc;
}

static int
persist_check_file(const char *conf)
{
	char buf[8192], *reg, *cre;
	FILE *f = fopen(conf, "r");
	size_t n;

	T_CHECK(f != NULL, "no config file %s", conf);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	reg = strstr(buf, "bdev_rbd_register_cluster");
	cre = strstr(buf, "bdev_rbd_create");
	T_CHECK(reg != NULL && cre != NULL && reg < cre,
	        "config lacks the cluster or the bdev, or has them out of order");
	T_CHECK(strstr(buf, "\"mon_host\"") != NULL, "config_param not saved");
	return 0;
}

static int
persist_once(const char *conf, bool first)
{
	const char *extra[] = {"-c", conf, NULL};
	struct vh_fe_mem_opts mo = {.size = 8 << 20};
	struct vh_fe_opts fo = {.num_queues = 1, .timeout_ms = TIMEOUT_MS};
	struct vh_fe_mem *mem = NULL;
	struct vh_fe *fe = NULL;
	struct vh_target t;
	struct sio s;
	int rc = daemon_up(&t, extra);

	if (rc != 0) {
		return rc;
	}
	rc = -1;
	if (first &&
	    (register_cluster(&t, "ceph", NULL) < 0 || rbd_bdev(&t, "ceph", "ps", false, 1) < 0)) {
		goto out;
	}
	if (vh_test_fe_open(&t, &mo, &fo, &mem, &fe) < 0 || vh_fe_start(fe, 0, 0) < 0 ||
	    sio_init(&s, fe, mem, 1 << 20) < 0) {
		goto out;
	}
	if (first ? write_pat(&s, 0, 100, 1 << 20, 0x51) : check_pat(&s, 0, 100, 1 << 20, 0x51)) {
		goto out;
	}
	rc = vh_fe_stop(fe) == 0 ? 0 : -1;
out:
	vh_test_fe_close(mem, fe);
	if (vh_target_stop(&t) < 0) {
		rc = -1;
	}
	return rc;
}

static int
case_persist(void)
{
	char conf[160];

	fprintf(stderr, "case persist: save_config and replay\n");
	T_OK(image_create("ps", 16));
	snprintf(conf, sizeof(conf), "%s/vhostd-persist.json", g_ceph.dir);
	T_OK(persist_once(conf, true));
	T_OK(persist_check_file(conf));
	T_OK(persist_once(conf, false));
	fprintf(stderr, "  restarted daemon replayed the cluster and the bdev; data intact\n");
	unlink(conf);
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(void);
} g_cases[] = {
        {"io", case_io},           {"dwz", case_dwz},     {"resize", case_resize},
        {"outage", case_outage},   {"bound", case_bound}, {"lock", case_lock},
        {"persist", case_persist},
};

int
main(int argc, char **argv)
{
	const char *only = NULL;
	int fail = 0, ran = 0, rc, opt;

	while ((opt = getopt(argc, argv, "c:")) != -1) {
		if (opt == 'c') {
			only = optarg;
		} else {
			fprintf(stderr, "usage: %s [-c CASE]\n", argv[0]);
			return VH_TEST_FAIL;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	g_seed = vh_test_seed("test_rbd");
	if (getenv("VHOSTD") == NULL) {
		fprintf(stderr, "SKIP: $VHOSTD not set\n");
		return VH_TEST_SKIP;
	}
	rc = ceph_env_start(&g_ceph);
	if (rc != 0) {
		return rc == 77 ? VH_TEST_SKIP : VH_TEST_FAIL;
	}
	for (size_t i = 0; i < sizeof(g_cases) / sizeof(g_cases[0]); i++) {
		int64_t t0 = vh_fe_now_ms();

		if (only != NULL && strcmp(only, g_cases[i].name) != 0) {
			continue;
		}
		ran++;
		rc = g_cases[i].fn();
		fprintf(stderr, "%s %s (%.1f s)\n", rc == 0 ? "PASS" : "FAIL", g_cases[i].name,
		        (double)(vh_fe_now_ms() - t0) / 1000);
		fail += rc != 0;
	}
	ceph_env_stop(&g_ceph);
	if (ran == 0) {
		fprintf(stderr, "no case named '%s'\n", only);
		return VH_TEST_FAIL;
	}
	return fail ? VH_TEST_FAIL : VH_TEST_PASS;
}
