/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-bdev QoS (bdev_set_qos_limit) and I/O statistics (bdev_get_iostat), end to end through
 * the vhost-user front-end:
 * - an IOPS limit and a bandwidth limit each hold within +-10 % over 5 s, at QD1 and at QD128;
 * - a read-bandwidth limit leaves writes alone;
 * - removing the limit restores full speed (at least 5x the old limit), and a change applies to
 *   a running queue at once;
 * - bdev_get_iostat counts exactly what the front-end did, per type, in ops and bytes (and
 *   per_channel sums to the same), and bdev_reset_iostat starts the counters over; so do
 *   vhost_get_controllers' per-controller and per-queue counters.
 *
 * The rate assertions are functional: a limiter that does not limit is a bug. They are not
 * performance assertions: the limits (5000 IOPS, 20 MiB/s) are far below what this machine does
 * unthrottled even when both cores are shared, and the window (+-10 % over 5 s, with the 100 ms
 * burst allowance worth +2 %) leaves room for a scheduler hiccup of several hundred ms.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

#include "io_engine.h"
#include "vh_test.h"

#ifndef VH_MAX
#define VH_MAX(a, b) ((a) > (b) ? (a) : (b))
#endif

#define TIMEOUT_MS 20000
#define MAX_QD     128
#define SECS       5.0

struct load {
	struct vh_fe *fe;
	struct vh_fe_mem *mem;
	struct vh_fe_vq *vq;
	uint64_t nsect;
	uint64_t rng;
	struct vh_fe_req req[MAX_QD];
	struct vh_fe_iov iov[MAX_QD];
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
prep(struct load *l, unsigned i, uint32_t bs, bool write)
{
	struct vh_fe_req *r = &l->req[i];
	uint64_t slots = l->nsect / (bs / 512);

	l->rng ^= l->rng << 13;
	l->rng ^= l->rng >> 7;
	l->rng ^= l->rng << 17;
	l->iov[i].len = bs;
	*r = (struct vh_fe_req){.type = write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
	                        .sector = (l->rng % slots) * (bs / 512),
	                        .iov = &l->iov[i],
	                        .niov = 1,
	                        .layout = VH_FE_L_INDIRECT,
	                        .dir = write ? VH_FE_DIR_OUT : VH_FE_DIR_IN};
}

/*
 * Keep @qd requests of @bs bytes in flight for @secs; returns the completions per second inside
 * the window (requests still in flight at its end are drained and not counted), or < 0.
 */
static double
run(struct load *l, unsigned qd, uint32_t bs, bool write, double secs)
{
	struct vh_fe_req *done[MAX_QD];
	uint64_t count = 0;
	double start, end;

	for (unsigned i = 0; i < qd; i++) {
		prep(l, i, bs, write);
		if (vh_fe_req_queue(l->vq, &l->req[i]) < 0) {
			fprintf(stderr, "FAIL: queue request %u\n", i);
			return -1;
		}
	}
	vh_fe_vq_flush(l->vq);
	start = now_s();
	end = start + secs;
	while (now_s() < end) {
		int n = vh_fe_vq_poll(l->vq, done, MAX_QD);

		if (n < 0) {
			fprintf(stderr, "FAIL: poll: %s\n", strerror(-n));
			return -1;
		}
		for (int j = 0; j < n; j++) {
			unsigned i = (unsigned)(done[j] - l->req);

			if (done[j]->status != VIRTIO_BLK_S_OK) {
				fprintf(stderr, "FAIL: request status %u\n", done[j]->status);
				return -1;
			}
			count++;
			prep(l, i, bs, write);
			vh_fe_req_queue(l->vq, &l->req[i]);
		}
		if (n > 0) {
			vh_fe_vq_flush(l->vq);
		}
	}
	secs = now_s() - start;
	/* Throttled requests drain at the limit: 128 at 5000 IOPS take 26 ms. */
	if (vh_fe_vq_drain(l->vq, TIMEOUT_MS) < 0) {
		fprintf(stderr, "FAIL: drain\n");
		return -1;
	}
	return (double)count / secs;
}

static int
set_qos(struct vh_target *t, const char *key, uint64_t v)
{
	return vh_target_rpc(t, "bdev_set_qos_limit",
	                     json_pack("{s:s, s:I}", "name", t->bdev, key, (json_int_t)v), NULL);
}

static int
check_rate(const char *what, double got, double want)
{
	fprintf(stderr, "  %-36s %10.1f /s (limit %.0f, %+.1f %%)\n", what, got, want,
	        (got / want - 1) * 100);
	T_CHECK(got >= want * 0.9 && got <= want * 1.1, "%s: %.1f/s is not within 10 %% of %.0f",
	        what, got, want);
	return 0;
}

/*
 * One limited window: @limit (I/Os or MiB per second) must hold within 10 %. Above the limit is
 * always a failure. Below it is one only if it happens in all 3 tries while the same load
 * without QoS, measured right after each (QoS is switched off for a second), runs well above
 * the limit: on this shared 2-core machine a QD1 round trip sometimes waits for a core for
 * milliseconds, and a limiter cannot be blamed for a window the machine starved.
 */
static int
limited_window(struct vh_target *t, struct load *l, const char *key, uint64_t limit, unsigned qd,
               uint32_t bs, bool write)
{
	double scale = strcmp(key, "rw_ios_per_sec") == 0 ? 1.0 : (double)bs / 1048576;
	char what[80];

	snprintf(what, sizeof(what), "%s %" PRIu64 ", %uk %s QD%u", key, limit, bs / 1024,
	         write ? "write" : "read", qd);
	unsigned slow = 0;

	for (int attempt = 0; attempt < 3; attempt++) {
		double r, free_rate;

		T_OK(set_qos(t, key, limit));
		r = run(l, qd, bs, write, SECS) * scale;
		T_CHECK(r >= 0, "run");
		if (r >= limit * 0.9) {
			T_OK(set_qos(t, key, 0));
			return check_rate(what, r, (double)limit);
		}
		T_OK(set_qos(t, key, 0));
		free_rate = run(l, qd, bs, write, 1.0) * scale;
		fprintf(stderr, "  %-36s %10.1f /s, %.1f /s without the limit\n", what, r,
		        free_rate);
		/*
		 * Below the limit although the same load runs well above it: the limiter held it
		 * back, or the machine starved this window and not the next. Over-throttling
		 * shows in every attempt; a busy moment does not (seen at load average 8).
		 */
		if (free_rate >= 1.5 * limit) {
			slow++;
			if (attempt == 2 && slow == 3) {
				return check_rate(what, r, (double)limit);
			}
		}
		fprintf(stderr, "  (below the limit: retrying)\n");
	}
	T_CHECK(false, "%s: the load never ran near the limit in 3 windows (%u held back)", what,
	        slow);
	return -1;
}

static int
rate_limits(struct vh_target *t, struct load *l)
{
	double base, r;

	base = run(l, MAX_QD, 4096, false, 1.0);
	T_CHECK(base > 0, "unthrottled run");
	fprintf(stderr, "  %-36s %10.1f /s\n", "unthrottled 4k read QD128", base);
	/* Sanitizer builds run at a fraction of release speed: enough if well above 10000. */
	T_CHECK(base > 20000, "unthrottled only %.0f IOPS: a 10000 IOPS limit would not show",
	        base);
	/* SPDK's smallest IOPS limit at QD1, where each I/O is a round trip between processes. */
	if (limited_window(t, l, "rw_ios_per_sec", 1000, 1, 4096, false) < 0 ||
	    limited_window(t, l, "rw_ios_per_sec", 5000, MAX_QD, 4096, false) < 0 ||
	    limited_window(t, l, "rw_mbytes_per_sec", 20, 1, 65536, true) < 0 ||
	    limited_window(t, l, "rw_mbytes_per_sec", 20, MAX_QD, 65536, true) < 0) {
		return -1;
	}
	/* A change reaches a running queue at once: the next window sees the new limit. */
	T_OK(set_qos(t, "rw_ios_per_sec", 5000));
	r = run(l, MAX_QD, 4096, true, 1.0);
	T_CHECK(r > 0 && r <= 5000 * 1.2, "5000 IOPS limit: %.0f", r);
	if (limited_window(t, l, "rw_ios_per_sec", 10000, MAX_QD, 4096, true) < 0) {
		return -1;
	}
	/* r_mbytes_per_sec limits reads only. */
	T_OK(set_qos(t, "r_mbytes_per_sec", 20));
	r = run(l, 32, 65536, true, 1.0) * 65536 / 1048576;
	fprintf(stderr, "  %-36s %10.1f MiB/s\n", "r_mbytes_per_sec 20, 64k write QD32", r);
	T_CHECK(r > 60, "writes throttled by a read limit: %.1f MiB/s", r);
	T_OK(set_qos(t, "r_mbytes_per_sec", 0));
	if (limited_window(t, l, "r_mbytes_per_sec", 20, 32, 65536, false) < 0 ||
	    limited_window(t, l, "w_mbytes_per_sec", 20, 32, 65536, true) < 0) {
		return -1;
	}
	/*
	 * Removing the limit restores full speed (limited_window() removed the last one): well
	 * above every limit this test set, and of the order of the first unthrottled run. Best of
	 * three 1 s runs, because another job may hold a core for a second.
	 */
	r = 0;
	for (int i = 0; i < 3 && r < 0.5 * base; i++) {
		double x = run(l, MAX_QD, 4096, false, 1.0);

		r = VH_MAX(r, x);
	}
	fprintf(stderr, "  %-36s %10.1f /s\n", "no limit again, 4k read QD128", r);
	T_CHECK(r > 15000 && r > 0.3 * base,
	        "after removing the limits: %.0f IOPS (unthrottled before: %.0f)", r, base);
	return 0;
}

/* ---- exact statistics ---- */

static uint64_t
stat_u64(json_t *o, const char *key)
{
	return (uint64_t)json_integer_value(json_object_get(o, key));
}

static int
sync_req(struct load *l, uint32_t type, uint64_t sector, uint64_t gpa, uint32_t len, bool in)
{
	struct vh_fe_iov iov = {gpa, len};
	struct vh_fe_req r = {.type = type,
	                      .sector = sector,
	                      .iov = &iov,
	                      .niov = len ? 1 : 0,
	                      .dir = in ? VH_FE_DIR_IN : VH_FE_DIR_OUT};
	int rc = io_sync(l->fe, 0, &r, TIMEOUT_MS);

	T_CHECK(rc >= 0 && r.status == VIRTIO_BLK_S_OK, "request type %u: rc %d status %u", type,
	        rc, r.status);
	return 0;
}

static int
exact_counts(struct vh_target *t, struct load *l)
{
	uint64_t buf = vh_fe_mem_alloc(l->mem, 65536, 4096);
	uint64_t rd = 0, rb = 0, wr = 0, wb = 0, un = 0, ub = 0, wz = 0, fl = 0;
	json_t *res = NULL, *st, *chans;
	uint64_t sum = 0;

	T_CHECK(buf != UINT64_MAX, "buffer");
	T_OK(vh_target_rpc(t, "bdev_reset_iostat", json_pack("{s:s}", "name", t->bdev), NULL));
	for (unsigned i = 0; i < 37; i++) {
		uint32_t len = 512u << (i % 8);

		T_OK(sync_req(l, VIRTIO_BLK_T_IN, i * 8, buf, len, true));
		rd++, rb += len;
		if (i % 3 == 0) {
			T_OK(sync_req(l, VIRTIO_BLK_T_OUT, i * 8, buf, len, false));
			wr++, wb += len;
		}
	}
	for (unsigned i = 0; i < 5; i++) {
		vh_fe_blk_dwz_seg(vh_fe_gpa_to_ptr(l->mem, buf, 16), 1024 + i * 64, 16 + i, 0);
		T_OK(sync_req(l, VIRTIO_BLK_T_DISCARD, 0, buf, 16, false));
		un++, ub += (16 + i) * 512;
	}
	vh_fe_blk_dwz_seg(vh_fe_gpa_to_ptr(l->mem, buf, 16), 4096, 8, 0);
	T_OK(sync_req(l, VIRTIO_BLK_T_WRITE_ZEROES, 0, buf, 16, false));
	wz++;
	T_OK(sync_req(l, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false));
	fl++;

	T_OK(vh_target_rpc(t, "bdev_get_iostat", json_pack("{s:s}", "name", t->bdev), &res));
	T_CHECK(stat_u64(res, "tick_rate") == 1000000000, "tick_rate");
	st = json_array_get(json_object_get(res, "bdevs"), 0);
	T_CHECK(st != NULL, "no bdevs entry");
#define EQ(key, v)                                                                                 \
	T_CHECK(stat_u64(st, key) == (v), "%s = %" PRIu64 ", front-end did %" PRIu64, key,         \
	        stat_u64(st, key), (uint64_t)(v))
	EQ("num_read_ops", rd);
	EQ("bytes_read", rb);
	EQ("num_write_ops", wr);
	EQ("bytes_written", wb);
	EQ("num_unmap_ops", un);
	EQ("bytes_unmapped", ub);
	EQ("num_write_zeroes_ops", wz);
	EQ("num_flush_ops", fl);
#undef EQ
	T_CHECK(stat_u64(st, "read_latency_ticks") > 0 &&
	                stat_u64(st, "max_read_latency_ticks") >=
	                        stat_u64(st, "min_read_latency_ticks") &&
	                stat_u64(st, "min_read_latency_ticks") > 0,
	        "read latencies: sum %" PRIu64 " min %" PRIu64 " max %" PRIu64,
	        stat_u64(st, "read_latency_ticks"), stat_u64(st, "min_read_latency_ticks"),
	        stat_u64(st, "max_read_latency_ticks"));
	json_decref(res);

	/* The controller counted the same requests, per queue and in total. */
	T_OK(vh_target_rpc(t, "vhost_get_controllers", json_pack("{s:s}", "name", t->name), &res));
	st = json_object_get(json_array_get(res, 0), "stats");
	T_CHECK(stat_u64(st, "requests") == rd + wr + un + wz + fl,
	        "controller requests %" PRIu64 ", front-end sent %" PRIu64,
	        stat_u64(st, "requests"), rd + wr + un + wz + fl);
	T_CHECK(stat_u64(st, "bytes") == rb + wb, "controller bytes %" PRIu64 ", want %" PRIu64,
	        stat_u64(st, "bytes"), rb + wb);
	T_CHECK(stat_u64(st, "errors") == 0 && stat_u64(st, "queue_depth") == 0,
	        "errors %" PRIu64 " depth %" PRIu64, stat_u64(st, "errors"),
	        stat_u64(st, "queue_depth"));
	chans = json_object_get(st, "queues");
	T_CHECK(json_array_size(chans) == 1 &&
	                stat_u64(json_array_get(chans, 0), "requests") == rd + wr + un + wz + fl,
	        "per-queue requests");
	json_decref(res);

	/* per_channel: one entry per reactor that served the bdev, summing to the same. */
	T_OK(vh_target_rpc(t, "bdev_get_iostat",
	                   json_pack("{s:s, s:b}", "name", t->bdev, "per_channel", 1), &res));
	chans = json_object_get(res, "channels");
	T_CHECK(json_array_size(chans) == 1, "%zu channels, one reactor", json_array_size(chans));
	sum = stat_u64(json_array_get(chans, 0), "num_read_ops");
	json_decref(res);
	/* per_channel counts since creation (the reset is the bdev's): at least ours. */
	T_CHECK(sum >= rd, "per-channel reads %" PRIu64 " < %" PRIu64, sum, rd);

	/* A reset starts over; maxmin keeps the counts. */
	T_OK(vh_target_rpc(t, "bdev_reset_iostat",
	                   json_pack("{s:s, s:s}", "name", t->bdev, "mode", "maxmin"), NULL));
	T_OK(vh_target_rpc(t, "bdev_get_iostat", json_pack("{s:s}", "name", t->bdev), &res));
	st = json_array_get(json_object_get(res, "bdevs"), 0);
	T_CHECK(stat_u64(st, "num_read_ops") == rd, "maxmin reset changed the counts");
	T_CHECK(stat_u64(st, "max_read_latency_ticks") == 0, "max not reset");
	json_decref(res);
	T_OK(vh_target_rpc(t, "bdev_reset_iostat", json_pack("{s:s}", "name", t->bdev), NULL));
	T_OK(vh_target_rpc(t, "bdev_get_iostat", json_pack("{s:s}", "name", t->bdev), &res));
	st = json_array_get(json_object_get(res, "bdevs"), 0);
	T_CHECK(stat_u64(st, "num_read_ops") == 0 && stat_u64(st, "bytes_written") == 0,
	        "counters not reset");
	json_decref(res);
	return 0;
}

/* Bad parameters get a clear error, and the limit survives save_config. */
static int
rpc_checks(struct vh_target *t)
{
	json_t *res = NULL, *lim;
	char msg[256], *text;
	bool found;
	int code = 0;

	T_CHECK(vh_rpc_call(t->d.rpc_path, "bdev_set_qos_limit",
	                    json_pack("{s:s}", "name", t->bdev), NULL, &code, msg, sizeof(msg),
	                    TIMEOUT_MS) == -EREMOTEIO &&
	                code == -32602,
	        "no limits accepted");
	T_CHECK(vh_rpc_call(t->d.rpc_path, "bdev_set_qos_limit",
	                    json_pack("{s:s, s:i}", "name", "nope", "rw_ios_per_sec", 1000), NULL,
	                    &code, msg, sizeof(msg), TIMEOUT_MS) == -EREMOTEIO,
	        "unknown bdev accepted");
	T_CHECK(vh_rpc_call(t->d.rpc_path, "bdev_set_qos_limit",
	                    json_pack("{s:s, s:I}", "name", t->bdev, "rw_mbytes_per_sec",
	                              (json_int_t)INT64_MAX),
	                    NULL, &code, msg, sizeof(msg), TIMEOUT_MS) == -EREMOTEIO,
	        "overflowing bandwidth accepted");
	/* SPDK rounds an IOPS limit up to a multiple of 1000. */
	T_OK(set_qos(t, "rw_ios_per_sec", 1500));
	T_OK(vh_target_rpc(t, "bdev_get_bdevs", json_pack("{s:s}", "name", t->bdev), &res));
	lim = json_object_get(json_array_get(res, 0), "assigned_rate_limits");
	T_CHECK(stat_u64(lim, "rw_ios_per_sec") == 2000, "rw_ios_per_sec %" PRIu64 ", want 2000",
	        stat_u64(lim, "rw_ios_per_sec"));
	json_decref(res);
	T_OK(vh_target_rpc(t, "save_config", NULL, &res));
	text = json_dumps(res, JSON_COMPACT);
	json_decref(res);
	found = text != NULL && strstr(text, "\"bdev_set_qos_limit\"") != NULL;
	free(text);
	T_CHECK(found, "save_config has no bdev_set_qos_limit entry");
	return set_qos(t, "rw_ios_per_sec", 0);
}

int
main(void)
{
	struct vh_target_opts o = {.null_bdev = false, .num_blocks = 65536, .block_size = 512};
	struct vh_fe_mem_opts mo = {.size = 64 << 20};
	struct vh_fe_opts fo = {.num_queues = 1, .queue_size = 256};
	struct vh_target t;
	struct load *l;
	int rc;

	if (vh_test_qsd()) {
		return VH_TEST_SKIP; /* vhostd's methods */
	}
	rc = vh_target_start(&t, &o);
	if (rc != 0) {
		return rc > 0 ? rc : VH_TEST_FAIL;
	}
	l = calloc(1, sizeof(*l));
	rc = -1;
	if (l == NULL || vh_test_fe_open(&t, &mo, &fo, &l->mem, &l->fe) < 0) {
		goto out_stop;
	}
	if (vh_fe_start(l->fe, 0, 0) < 0) {
		goto out_close;
	}
	l->vq = vh_fe_vq(l->fe, 0);
	l->nsect = vh_fe_cfg_u64(l->fe, VH_BLK_CFG_CAPACITY);
	l->rng = vh_test_seed("test_qos") | 1;
	for (unsigned i = 0; i < MAX_QD; i++) {
		l->iov[i].gpa = vh_fe_mem_alloc(l->mem, 65536, 4096);
		if (l->iov[i].gpa == UINT64_MAX) {
			goto out_close;
		}
	}
	fprintf(stderr, "exact statistics\n");
	if (exact_counts(&t, l) < 0) {
		goto out_close;
	}
	fprintf(stderr, "RPC checks\n");
	if (rpc_checks(&t) < 0) {
		goto out_close;
	}
	fprintf(stderr, "rate limits\n");
	if (rate_limits(&t, l) < 0) {
		goto out_close;
	}
	rc = vh_fe_stop(l->fe) < 0 ? -1 : 0;
out_close:
	vh_test_fe_close(l->mem, l->fe);
out_stop:
	free(l);
	if (vh_target_stop(&t) < 0) {
		rc = -1;
	}
	fprintf(stderr, "%s\n", rc == 0 ? "PASS" : "FAIL");
	return rc == 0 ? VH_TEST_PASS : VH_TEST_FAIL;
}
