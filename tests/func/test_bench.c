/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Correctness of bench/vhost-bench (never its speed: nothing here is timed).
 * - The verify checker and the histogram, as units (crc32c vector, corrupted buffers).
 * - Every bad option exits 2 with a message; --help exits 0; a missing socket or one nobody
 *   listens on exits 1.
 * - Against a target (vhostd with a RAM bdev, or qemu-storage-daemon with VH_TEST_QSD=1):
 *   --verify runs pass in polling and interrupt mode, with every ring pattern (presets, and each
 *   habit on its own: EVENT_IDX off, used_event ahead/track, indirect, merged layout, kick per
 *   request, several queues); asking for interrupts (track) gets them; a queue size too small
 *   for the chains exits 2; SPDK's pattern at QD64 against a never-sleeping reactor, which
 *   paces its polls, completes every request; after blocks are overwritten behind
 *   --verify's back, a verify read-back fails (exit 1, mismatches reported); a read-only
 *   controller refuses writes (exit 1); --packed verify runs pass on a packed_ring controller
 *   (vhostd only) and are refused by a split-only one.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vb_hist.h"
#include "vb_verify.h"
#include "vh_test.h"

extern char **environ;

#define RUN_TIMEOUT_MS 60000
#define OUT_CAP        16384

struct run_out {
	int status; /* exit code, or -1 if it did not exit normally */
	char out[OUT_CAP];
	char err[OUT_CAP];
};

static const char *bench_bin;

static void
slurp(int fd, char *buf, size_t *len, bool *open_)
{
	ssize_t n = read(fd, buf + *len, OUT_CAP - 1 - *len);

	if (n <= 0) {
		*open_ = false;
		return;
	}
	*len += (size_t)n;
	buf[*len] = '\0';
	if (*len == OUT_CAP - 1) {
		*open_ = false; /* enough to judge */
	}
}

/* Run vhost-bench with args (NULL-terminated), capturing stdout and stderr. */
static int
run_bench(struct run_out *r, const char *const *args)
{
	const char *argv[48];
	posix_spawn_file_actions_t fa;
	int po[2], pe[2], st, n = 0;
	size_t lo = 0, le = 0;
	bool oo = true, eo = true;
	int64_t deadline = vh_fe_now_ms() + RUN_TIMEOUT_MS;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	argv[n++] = bench_bin;
	while (*args && n < 47) {
		argv[n++] = *args++;
	}
	argv[n] = NULL;
	if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
		return -errno;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, po[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
	st = posix_spawn(&pid, bench_bin, &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(po[1]);
	close(pe[1]);
	if (st) {
		close(po[0]);
		close(pe[0]);
		return -st;
	}
	while (oo || eo) {
		struct pollfd p[2] = {{.fd = oo ? po[0] : -1, .events = POLLIN},
		                      {.fd = eo ? pe[0] : -1, .events = POLLIN}};
		int64_t left = deadline - vh_fe_now_ms();

		if (left <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		if (poll(p, 2, (int)left) <= 0) {
			continue;
		}
		if (p[0].revents) {
			slurp(po[0], r->out, &lo, &oo);
		}
		if (p[1].revents) {
			slurp(pe[0], r->err, &le, &eo);
		}
	}
	close(po[0]);
	close(pe[0]);
	waitpid(pid, &st, 0);
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return 0;
}

/* Run and expect exit code `want`; on mismatch print what happened. */
static int
expect_exit(struct run_out *r, int want, const char *const *args)
{
	const char *const *a;

	T_OK(run_bench(r, args));
	if (r->status != want) {
		fprintf(stderr, "FAIL: vhost-bench");
		for (a = args; *a; a++) {
			fprintf(stderr, " %s", *a);
		}
		fprintf(stderr, "\n  exit %d, wanted %d\n  stdout: %s\n  stderr: %s\n", r->status,
		        want, r->out, r->err);
		return -1;
	}
	return 0;
}

/* ---- units ------------------------------------------------------------------------------- */

static int
test_verify_unit(void)
{
	static uint8_t blk[8192], zero[4096];
	struct vb_verify_hdr h;

	T_CHECK(vb_crc32c(0, "123456789", 9) == 0xe3069283u, "crc32c test vector: 0x%08x",
	        vb_crc32c(0, "123456789", 9));
	/* Incremental == one shot. */
	T_CHECK(vb_crc32c(vb_crc32c(0, "1234", 4), "56789", 5) == 0xe3069283u, "crc32c chaining");

	vb_verify_fill(blk, sizeof(blk), 4096, 7, 42);
	T_CHECK(vb_verify_check(blk, sizeof(blk), 4096, 7, &h) == VB_VERIFY_OK, "fresh block");
	T_CHECK(h.gen == 7 && h.lba == 4096 && h.seed == 42 && h.bs == sizeof(blk),
	        "header fields");
	T_CHECK(vb_verify_check(blk, 4096, 4096, 7, NULL) == VB_VERIFY_BAD_BS,
	        "written with another block size");
	T_CHECK(vb_verify_check(blk, sizeof(blk), 4096, 0, NULL) == VB_VERIFY_OK,
	        "unknown generation accepts a valid header");
	T_CHECK(vb_verify_check(blk, sizeof(blk), 4096, 8, NULL) == VB_VERIFY_BAD_GEN,
	        "stale generation");
	T_CHECK(vb_verify_check(blk, sizeof(blk), 4112, 7, NULL) == VB_VERIFY_BAD_LBA,
	        "misdirected block");

	/* One flipped bit anywhere in the data is caught. */
	blk[5000] ^= 0x10;
	T_CHECK(vb_verify_check(blk, sizeof(blk), 4096, 7, NULL) == VB_VERIFY_BAD_CRC,
	        "corrupted data");
	blk[5000] ^= 0x10;
	/* ... and in the header's generation (the crc covers the header too). */
	blk[24] ^= 1;
	T_CHECK(vb_verify_check(blk, sizeof(blk), 4096, 0, NULL) == VB_VERIFY_BAD_CRC,
	        "corrupted header");
	blk[24] ^= 1;
	T_CHECK(vb_verify_check(blk, sizeof(blk), 4096, 7, NULL) == VB_VERIFY_OK, "restored");

	T_CHECK(vb_verify_check(zero, sizeof(zero), 0, 0, NULL) == VB_VERIFY_ZERO,
	        "never-written block");
	T_CHECK(vb_verify_check(zero, sizeof(zero), 0, 3, NULL) == VB_VERIFY_BAD_MAGIC,
	        "zeroes where a write was expected");
	memset(zero, 0xa5, 32);
	T_CHECK(vb_verify_check(zero, sizeof(zero), 0, 0, NULL) == VB_VERIFY_BAD_MAGIC,
	        "poisoned buffer (the target transferred nothing)");
	return 0;
}

static int
test_hist_unit(void)
{
	static struct vb_hist h;
	uint64_t v, p50, p99;

	vb_hist_reset(&h);
	T_CHECK(vb_hist_percentile(&h, 50) == 0, "empty histogram");
	for (v = 1; v <= 100000; v++) {
		vb_hist_add(&h, v);
	}
	p50 = vb_hist_percentile(&h, 50);
	p99 = vb_hist_percentile(&h, 99);
	T_CHECK(h.count == 100000 && h.min == 1 && h.max == 100000, "count/min/max");
	T_CHECK(p50 > 49000 && p50 < 51000, "p50 %llu", (unsigned long long)p50);
	T_CHECK(p99 > 97500 && p99 < 100500, "p99 %llu", (unsigned long long)p99);
	T_CHECK(vb_hist_percentile(&h, 100) == 100000, "p100 is the max");
	for (v = 0; v < 4000; v++) {
		unsigned int i = vb_hist_index(v * 7919 + 13);

		T_CHECK(vb_hist_bucket_low(i) <= v * 7919 + 13 &&
		                v * 7919 + 13 < vb_hist_bucket_low(i) + vb_hist_bucket_width(i),
		        "bucket bounds for %llu", (unsigned long long)(v * 7919 + 13));
	}
	T_CHECK(vb_hist_index(UINT64_MAX) < VB_HIST_N, "largest value fits");
	return 0;
}

/* ---- options ----------------------------------------------------------------------------- */

static int
test_bad_options(void)
{
	static const char *const bad[][6] = {
	        {NULL},
	        {"--socket", "/x", "--rw", "sideways", NULL},
	        {"--socket", "/x", "--bs", "1000", NULL},
	        {"--socket", "/x", "--bs", "0", NULL},
	        {"--socket", "/x", "--bs", "4q", NULL},
	        {"--socket", "/x", "--bs", "32m", NULL},
	        {"--socket", "/x", "--iodepth", "0", NULL},
	        {"--socket", "/x", "--iodepth", "many", NULL},
	        {"--socket", "/x", "--iodepth", "5000", NULL},
	        {"--socket", "/x", "--queues", "0", NULL},
	        {"--socket", "/x", "--queues", "-1", NULL},
	        {"--socket", "/x", "--runtime", "0", NULL},
	        {"--socket", "/x", "--runtime", "5h", NULL},
	        {"--socket", "/x", "--ramp", "-1", NULL},
	        {"--socket", "/x", "--rwmixread", "101", NULL},
	        {"--socket", "/x", "--size", "1x", NULL},
	        {"--socket", "/x", "--size", "0", NULL},
	        {"--socket", "/x", "--cpumask", "0x0", NULL},
	        {"--socket", "/x", "--cpumask", "zz", NULL},
	        {"--socket", "/x", "--cpumask", "0x10000000000000000", NULL},
	        {"--socket", "/x", "--seed", "", NULL},
	        {"--socket", "/x", "--number_ios", "0", NULL},
	        {"--socket", "/x", "--target-pid", "0", NULL},
	        {"--socket", "/x", "--frobnicate", NULL},
	        {"--socket", "/x", "extra", NULL},
	        {"--socket", "/x", "--bs", "512", "--size", NULL}, /* value missing */
	        {"--socket", "", NULL},
	        {"--socket", "/x", "--pattern", "windows", NULL},
	        {"--socket", "/x", "--event-idx", "yes", NULL},
	        {"--socket", "/x", "--used-event", "soon", NULL},
	        {"--socket", "/x", "--indirect", "1", NULL},
	        {"--socket", "/x", "--layout", "single", NULL},
	        {"--socket", "/x", "--kick", "never", NULL},
	        {"--socket", "/x", "--rewrite", "always", NULL},
	        {"--socket", "/x", "--queue-size", "100", NULL},
	        {"--socket", "/x", "--queue-size", "65536", NULL},
	};
	static const char *const help[] = {"--help", NULL};
	struct run_out *r = malloc(sizeof(*r));
	unsigned int i;
	int rc = 0;

	T_CHECK(r, "oom");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]) && rc == 0; i++) {
		rc = expect_exit(r, 2, bad[i]);
		if (rc == 0 && strlen(r->err) < 10) {
			fprintf(stderr, "FAIL: bad option case %u exits 2 without a message\n", i);
			rc = -1;
		}
	}
	if (rc == 0) {
		rc = expect_exit(r, 0, help);
	}
	if (rc == 0 && !strstr(r->out, "--socket")) {
		fprintf(stderr, "FAIL: --help prints no usage\n");
		rc = -1;
	}
	free(r);
	return rc;
}

static int
test_no_target(void)
{
	char dir[] = "/tmp/vb-test.XXXXXX", path[96];
	const char *const missing[] = {"--socket", path, "--runtime", "0.1", NULL};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct run_out *r = malloc(sizeof(*r));
	int fd, rc;

	T_CHECK(r && mkdtemp(dir), "setup");
	snprintf(path, sizeof(path), "%s/nothing.sock", dir);
	rc = expect_exit(r, 1, missing);
	if (rc == 0 && !strstr(r->err, "No such file")) {
		fprintf(stderr, "FAIL: missing socket: unclear message: %s\n", r->err);
		rc = -1;
	}
	/* A bound socket nobody listens on: connect() is refused. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (rc == 0 && (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)) {
		fprintf(stderr, "FAIL: bind %s: %s\n", path, strerror(errno));
		rc = -1;
	}
	if (rc == 0) {
		rc = expect_exit(r, 1, missing);
	}
	if (rc == 0 && !strstr(r->err, "refused")) {
		fprintf(stderr, "FAIL: refused connection: unclear message: %s\n", r->err);
		rc = -1;
	}
	if (fd >= 0) {
		close(fd);
	}
	unlink(path);
	rmdir(dir);
	free(r);
	return rc;
}

/* ---- against a target -------------------------------------------------------------------- */

/* The value of "key": in vhost-bench's JSON (flat search; keys used here are unique). */
static long long
json_int(const char *json, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(json, pat);
	return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

static int
test_verify_runs(struct vh_target *t, struct run_out *r)
{
	const char *s = t->sock;
	/* All runs use --bs 8k: a verify pass can only check blocks written with its own --bs. */
	const char *const mixed[] = {"--socket", s,
	                             "--rw",     "randrw",
	                             "--verify", "--queues",
	                             "2",        "--bs",
	                             "8k",       "--iodepth",
	                             "8",        "--size",
	                             "4m",       "--number_ios",
	                             "20000",    "--runtime",
	                             "30",       "--json",
	                             NULL};
	const char *const intr[] = {
	        "--socket",     s,      "--rw",      "randrw", "--verify", "--interrupt",
	        "--iodepth",    "4",    "--bs",      "8k",     "--size",   "1m",
	        "--number_ios", "3000", "--runtime", "30",     "--json",   NULL};
	/* Regression: slots parked by --thinktime were submitted twice by the read-back pass. */
	const char *const think[] = {
	        "--socket", s,        "--rw", "randrw",       "--verify", "--queues",
	        "3",        "--bs",   "8k",   "--iodepth",    "7",        "--thinktime",
	        "5",        "--size", "4m",   "--number_ios", "6000",     "--runtime",
	        "30",       "--json", NULL};
	const char *const wr[] = {"--socket", s,           "--rw", "write",
	                          "--verify", "--bs",      "8k",   "--iodepth",
	                          "4",        "--size",    "1m",   "--number_ios",
	                          "128",      "--runtime", "30",   NULL};
	const char *const rd[] = {
	        "--socket", s,           "--rw", "read",   "--verify", "--bs",
	        "8k",       "--iodepth", "4",    "--size", "1m",       "--number_ios",
	        "512",      "--runtime", "30",   "--json", NULL};
	const char *const clobber[] = {"--socket",  s,        "--rw", "randwrite",    "--bs",
	                               "4k",        "--size", "1m",   "--number_ios", "64",
	                               "--runtime", "30",     NULL};

	T_OK(expect_exit(r, 0, mixed));
	T_CHECK(json_int(r->out, "ios") == 20000 && json_int(r->out, "errors") == 0 &&
	                json_int(r->out, "mismatches") == 0 && json_int(r->out, "checked") > 0,
	        "mixed verify run: %s", r->out);
	T_OK(expect_exit(r, 0, intr));
	T_CHECK(json_int(r->out, "mismatches") == 0 && json_int(r->out, "checked") > 0,
	        "interrupt-mode verify run: %s", r->out);
	T_OK(expect_exit(r, 0, think));
	T_CHECK(json_int(r->out, "mismatches") == 0 && json_int(r->out, "ios") == 6000,
	        "verify run with --thinktime: %s", r->out);
	/* Sequential write pass, then an independent read pass that knows no generations. */
	T_OK(expect_exit(r, 0, wr));
	T_CHECK(strstr(r->out, "128 blocks checked, 0 mismatches"), "read-back: %s", r->out);
	T_OK(expect_exit(r, 0, rd));
	T_CHECK(json_int(r->out, "checked") == 512 && json_int(r->out, "mismatches") == 0,
	        "read pass: %s", r->out);
	/* Overwrite half-blocks without headers: the next verify pass must fail. */
	T_OK(expect_exit(r, 0, clobber));
	T_OK(expect_exit(r, 1, rd));
	T_CHECK(json_int(r->out, "mismatches") > 0 && strstr(r->err, "verify:"),
	        "corruption not reported: %s / %s", r->out, r->err);
	return 0;
}

/*
 * --packed: the same verify runs on packed rings (chains written into the ring, wrapping it
 * many times, out-of-order completions from 2 queues), in polling and interrupt mode, and with an
 * inflight region (--inflight: the target copies and records every chain), and with indirect
 * tables (--indirect on, the shape of a Linux guest's requests: reads and writes mixed, so each
 * slot's table is rewritten when its direction changes); a target that does not offer packed
 * rings is refused with a clear message.
 */
/*
 * A packed --verify run of 20000 I/Os (@args) that must exit 0 with every I/O done, no error, no
 * mismatch, blocks checked, and @must in its JSON (NULL: nothing more). @what names it on failure.
 */
static int
packed_verify_run(struct run_out *r, const char *const *args, const char *what, const char *must)
{
	if (expect_exit(r, 0, args) < 0) {
		return -1;
	}
	if (json_int(r->out, "ios") != 20000 || json_int(r->out, "errors") != 0 ||
	    json_int(r->out, "mismatches") != 0 || json_int(r->out, "checked") <= 0 ||
	    (must != NULL && !strstr(r->out, must))) {
		fprintf(stderr, "FAIL: packed verify run%s: %s\n", what, r->out);
		return -1;
	}
	return 0;
}

static int
test_packed(struct vh_target_opts *o, struct run_out *r)
{
	struct vh_target t;
	const char *const mixed[] = {"--socket",  t.sock,      "--rw",   "randrw", "--verify",
	                             "--packed",  "--queues",  "2",      "--bs",   "8k",
	                             "--iodepth", "8",         "--size", "4m",     "--number_ios",
	                             "20000",     "--runtime", "30",     "--json", NULL};
	const char *const intr[] = {
	        "--socket",  t.sock,      "--rw", "randrw", "--verify", "--packed", "--interrupt",
	        "--iodepth", "4",         "--bs", "8k",     "--size",   "1m",       "--number_ios",
	        "3000",      "--runtime", "30",   "--json", NULL};
	const char *const ifl[] = {
	        "--socket",   t.sock,     "--rw", "randrw",       "--verify", "--packed",
	        "--inflight", "--queues", "2",    "--bs",         "8k",       "--iodepth",
	        "8",          "--size",   "4m",   "--number_ios", "20000",    "--runtime",
	        "30",         "--json",   NULL};
	/* As a Linux guest sends them: one ring descriptor per request, its chain in a table. */
	const char *const ind[] = {
	        "--socket",   t.sock,      "--rw",       "randrw",   "--verify", "--packed",
	        "--indirect", "on",        "--inflight", "--queues", "2",        "--bs",
	        "8k",         "--iodepth", "8",          "--size",   "4m",       "--number_ios",
	        "20000",      "--runtime", "30",         "--json",   NULL};
	int rc;

	o->readonly = false;
	o->packed_ring = false;
	T_OK(vh_target_start(&t, o));
	rc = expect_exit(r, 1, mixed);
	if (rc == 0 && !strstr(r->err, "VIRTIO_F_RING_PACKED")) {
		fprintf(stderr, "FAIL: --packed on split rings: unclear message: %s\n", r->err);
		rc = -1;
	}
	if (vh_target_stop(&t) < 0 || rc < 0) {
		return -1;
	}
	o->packed_ring = true;
	T_OK(vh_target_start(&t, o));
	rc = packed_verify_run(r, mixed, "", "\"ring\":\"packed\"");
	if (rc == 0) {
		rc = expect_exit(r, 0, intr);
	}
	if (rc == 0 && (json_int(r->out, "mismatches") != 0 || json_int(r->out, "checked") <= 0)) {
		fprintf(stderr, "FAIL: packed interrupt-mode verify run: %s\n", r->out);
		rc = -1;
	}
	if (rc == 0) {
		rc = packed_verify_run(r, ifl, " with an inflight region", NULL);
	}
	if (rc == 0) {
		rc = packed_verify_run(r, ind, " with indirect tables", "\"indirect\":true");
	}
	if (vh_target_stop(&t) < 0) {
		rc = -1;
	}
	return rc;
}

/* Every ring pattern moves the right data: randrw --verify on two queues. */
static int
test_patterns(struct vh_target *t, struct run_out *r)
{
	static const char *const variants[][6] = {
	        {"--pattern", "lean", NULL},
	        {"--pattern", "spdk", NULL},
	        {"--pattern", "linux", NULL},
	        {"--pattern", "dpdk", NULL},
	        {"--pattern", "spdk", "--layout", "merged", NULL},
	        {"--pattern", "linux", "--event-idx", "off", NULL},
	        {"--event-idx", "off", "--kick", "request", NULL},
	        {"--indirect", "on", "--used-event", "ahead", NULL},
	        {"--layout", "merged", "--rewrite", "on", "--interrupt", NULL},
	        {"--pattern", "spdk", "--interrupt", NULL},
	};
	const char *args[40];
	unsigned int i, n, k;

	for (i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		static const char *const base[] = {
		        "--rw", "randrw",    "--verify", "--queues", "2",  "--bs",
		        "8k",   "--iodepth", "8",        "--size",   "4m", "--number_ios",
		        "4000", "--runtime", "30",       "--json",   NULL};

		n = 0;
		args[n++] = "--socket";
		args[n++] = t->sock;
		for (k = 0; base[k]; k++) {
			args[n++] = base[k];
		}
		for (k = 0; variants[i][k]; k++) {
			args[n++] = variants[i][k];
		}
		args[n] = NULL;
		T_OK(expect_exit(r, 0, args));
		T_CHECK(json_int(r->out, "ios") == 4000 && json_int(r->out, "errors") == 0 &&
		                json_int(r->out, "mismatches") == 0 &&
		                json_int(r->out, "checked") > 0,
		        "pattern variant %u: %s", i, r->out);
		if (strcmp(variants[i][1], "linux") == 0) {
			/* track re-arms after every batch: the target must signal (not timed). */
			T_CHECK(json_int(r->out, "interrupts") >= 10,
			        "used_event track got no interrupts: %s", r->out);
		}
		if (strcmp(variants[i][0], "--event-idx") == 0 || i == 5) {
			/* The target's (negotiated) event_idx comes before the job's. */
			const char *ev = strstr(r->out, "\"event_idx\":false");
			const char *job = strstr(r->out, "\"job\"");

			T_CHECK(ev != NULL && job != NULL && ev < job,
			        "--event-idx off still negotiated it: %s", r->out);
		}
	}
	/* 8 requests of 3 descriptors do not fit a ring of 16. */
	{
		const char *const small[] = {
		        "--socket", t->sock,     "--iodepth", "8", "--queue-size",
		        "16",       "--runtime", "1",         NULL};

		T_OK(expect_exit(r, 2, small));
		T_CHECK(strstr(r->err, "queue-size"), "unclear message: %s", r->err);
	}
	return 0;
}

/*
 * SPDK's habit (a request at a time) at a depth where vhostd paces its polls of the avail ring
 * (vring.c vq_poll). The reactor never sleeps (--idle-us 0), so nothing but the pacing's own end
 * brings the poller back: a pause that does not end stalls the queue and the run falls short.
 */
static int
test_paced(struct vh_target *t, struct run_out *r)
{
	const char *const args[] = {
	        "--socket", t->sock,     "--pattern", "spdk",   "--rw",   "randrw", "--verify",
	        "--bs",     "4k",        "--iodepth", "64",     "--size", "4m",     "--number_ios",
	        "20000",    "--runtime", "20",        "--json", NULL};

	T_OK(expect_exit(r, 0, args));
	T_CHECK(json_int(r->out, "ios") == 20000 && json_int(r->out, "errors") == 0 &&
	                json_int(r->out, "mismatches") == 0,
	        "paced queue: %s", r->out);
	return 0;
}

static int
test_target(void)
{
	struct vh_target_opts o = {.num_blocks = 8192, .block_size = 512};
	struct vh_target t;
	struct run_out *r = malloc(sizeof(*r));
	int rc;

	T_CHECK(r, "oom");
	rc = vh_target_start(&t, &o);
	if (rc == VH_TEST_SKIP) {
		free(r);
		return VH_TEST_SKIP;
	}
	T_OK(rc);
	rc = test_verify_runs(&t, r);
	if (vh_target_stop(&t) < 0) {
		rc = -1;
	}
	/* A fresh disk: test_verify_runs left blocks corrupted on purpose. */
	if (rc == 0) {
		T_OK(vh_target_start(&t, &o));
		rc = test_patterns(&t, r);
		if (vh_target_stop(&t) < 0) {
			rc = -1;
		}
	}
	if (rc == 0 && !vh_test_qsd()) {
		static const char *const polling[] = {"--idle-us", "0", NULL};
		struct vh_target_opts po = o;

		po.daemon_args = polling;
		T_OK(vh_target_start(&t, &po));
		rc = test_paced(&t, r);
		if (vh_target_stop(&t) < 0) {
			rc = -1;
		}
	}
	if (rc == 0) {
		/* A read-only controller: writes are refused up front. */
		const char *const wr[] = {"--socket",  t.sock, "--rw", "randwrite",
		                          "--runtime", "1",    NULL};

		o.readonly = true;
		T_OK(vh_target_start(&t, &o));
		rc = expect_exit(r, 1, wr);
		if (rc == 0 && !strstr(r->err, "read-only")) {
			fprintf(stderr, "FAIL: read-only target: unclear message: %s\n", r->err);
			rc = -1;
		}
		if (vh_target_stop(&t) < 0) {
			rc = -1;
		}
	}
	if (rc == 0 && !vh_test_qsd()) {
		rc = test_packed(&o, r);
	}
	free(r);
	return rc;
}

int
main(void)
{
	int rc;

	bench_bin = getenv("VHOST_BENCH");
	if (test_verify_unit() < 0 || test_hist_unit() < 0) {
		return VH_TEST_FAIL;
	}
	if (!bench_bin || access(bench_bin, X_OK) != 0) {
		fprintf(stderr, "SKIP: $VHOST_BENCH not set or not executable\n");
		return VH_TEST_SKIP;
	}
	signal(SIGPIPE, SIG_IGN);
	if (test_bad_options() < 0 || test_no_target() < 0) {
		return VH_TEST_FAIL;
	}
	rc = test_target();
	if (rc == VH_TEST_SKIP) {
		fprintf(stderr, "SKIP: no target ($VHOSTD); option and unit checks passed\n");
		return VH_TEST_SKIP;
	}
	return rc < 0 ? VH_TEST_FAIL : VH_TEST_PASS;
}
