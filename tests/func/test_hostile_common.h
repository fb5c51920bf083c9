/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Shared by the tests/func/test_hostile_*.c suites (header-only, static functions): daemon
 * resource probes (/proc/PID/fd, VmRSS), a bounded wait for them to return to a baseline, a
 * second "witness" controller whose verified I/O must keep working while another socket is
 * abused, and the frame of the hostile ring suites (test_hostile_ring, test_hostile_packed):
 * one session per case with a legitimate READ and a victim request (struct hostile_case), and
 * their main() (hostile_ring_main).
 */
#ifndef VH_TEST_HOSTILE_COMMON_H
#define VH_TEST_HOSTILE_COMMON_H

#include <dirent.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "io_engine.h"
#include "vh_test.h"

#define HOSTILE_RSS_SLACK_KIB (48 * 1024) /* allowed VmRSS growth over a whole suite */

static inline int
hostile_count_fds(pid_t pid)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (d == NULL) {
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		n += de->d_name[0] != '.';
	}
	closedir(d);
	return n;
}

static inline long
hostile_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (f == NULL) {
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) {
			break;
		}
	}
	fclose(f);
	return kib;
}

/* Number of the daemon's mappings whose name contains @what (e.g. "memfd:"). */
static inline int
hostile_count_maps(pid_t pid, const char *what)
{
	char path[64], line[512];
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (f == NULL) {
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		n += strstr(line, what) != NULL;
	}
	fclose(f);
	return n;
}

/*
 * Sessions close asynchronously (after their queues stopped): poll until the daemon's fd count
 * is back to @fds0, for at most @ms. Returns the last count.
 */
static inline int
hostile_wait_fds(pid_t pid, int fds0, int ms)
{
	int64_t deadline = vh_fe_now_ms() + ms;
	int n;

	while ((n = hostile_count_fds(pid)) > fds0 && vh_fe_now_ms() < deadline) {
		poll(NULL, 0, 5); /* re-check interval, bounded by the deadline */
	}
	return n;
}

/* Poll vhost_get_controllers until controller @name has no session (its close completed). */
static inline int
hostile_wait_disconnected(struct vh_target *t, const char *name, int ms)
{
	int64_t deadline = vh_fe_now_ms() + ms;

	for (;;) {
		json_t *res = NULL;
		bool connected = true;

		T_OK(vh_rpc_call(t->d.rpc_path, "vhost_get_controllers",
		                 json_pack("{s:s}", "name", name), &res, NULL, NULL, 0, 5000));
		connected = json_is_true(json_object_get(json_array_get(res, 0), "connected"));
		json_decref(res);
		if (!connected) {
			return 0;
		}
		T_CHECK(vh_fe_now_ms() < deadline, "controller %s still connected after %d ms",
		        name, ms);
		poll(NULL, 0, 5); /* re-check interval, bounded by the deadline */
	}
}

/*
 * A smaller ASan quarantine for the daemon so VmRSS reflects live memory (the default 256 MiB
 * quarantine would hide or fake growth). Call before starting the daemon.
 */
static inline void
hostile_asan_env(void)
{
	const char *old = getenv("ASAN_OPTIONS");
	char buf[1024];

	snprintf(buf, sizeof(buf), "%s%squarantine_size_mb=8:detect_leaks=1", old ? old : "",
	         old && *old ? ":" : "");
	setenv("ASAN_OPTIONS", buf, 1);
}

/* The witness: a second controller with its own bdev, kept connected and started. */
struct witness {
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	uint32_t tag;
	uint64_t rounds;
};

static inline int
witness_open(struct vh_target *t, struct witness *w)
{
	struct vh_fe_mem_opts mo = {.size = 8 << 20};
	struct vh_fe_opts fo = {.num_queues = 1};
	char sock[108];
	json_t *p;
	int rc;

	memset(w, 0, sizeof(*w));
	p = json_pack("{s:s, s:i, s:i}", "name", "Witness0", "num_blocks", 4096, "block_size", 512);
	T_OK(vh_target_rpc(t, "bdev_malloc_create", p, NULL));
	p = json_pack("{s:s, s:s, s:s}", "ctrlr", "witness.0", "dev_name", "Witness0", "cpumask",
	              "0x1");
	T_OK(vh_target_rpc(t, "vhost_create_blk_controller", p, NULL));
	vh_daemon_path(&t->d, "witness.0", sock, sizeof(sock));
	fo.path = sock;
	T_OK(vh_fe_mem_create(&w->mem, &mo));
	rc = vh_fe_create(&w->fe, w->mem, &fo);
	if (rc == 0) {
		rc = vh_fe_connect(w->fe, 5000);
	}
	if (rc == 0) {
		rc = vh_fe_init(w->fe, true);
	}
	if (rc == 0) {
		rc = vh_fe_start(w->fe, 0, 0);
	}
	T_CHECK(rc == 0, "witness controller: %s", strerror(-rc));
	return 0;
}

/* One verified write/read round trip on the witness; fails if the daemon stopped serving it. */
static inline int
witness_check(struct vh_target *t, struct witness *w)
{
	uint32_t tag = ++w->tag;

	T_CHECK(vh_daemon_alive(&t->d), "daemon died");
	T_CHECK(io_smoke(w->fe, w->mem, 0, (tag % 512) * 8, tag) == 0,
	        "witness I/O failed after %llu rounds", (unsigned long long)w->rounds);
	w->rounds++;
	return 0;
}

static inline void
witness_close(struct witness *w)
{
	vh_test_fe_close(w->mem, w->fe);
}

/* n fresh eventfds into fds[] (closed with hostile_close_fds). */
static inline void
hostile_eventfds(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		fds[i] = eventfd(0, EFD_CLOEXEC);
	}
}

static inline void
hostile_close_fds(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (fds[i] >= 0) {
			close(fds[i]);
		}
		fds[i] = -1;
	}
}

/* ---- the hostile ring suites: one case, one session ---- */

/* A case's session: one queue, a legitimate READ (good) and the request a case abuses (bad). */
struct hostile_case {
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	struct vh_fe_vq *vq;
	struct vh_fe_req good, bad;
	struct vh_fe_iov giov, biov;
	uint16_t bad_pos; /* packed rings: ring position of the victim's first descriptor */
};

/*
 * Open a session on @t (@mo, @fo) and start it; set up x->good (READ of sector 8) and x->bad
 * (READ of sector 0) with one 4 KiB buffer each, the victim's buffer at the start of a
 * @bad_buf-byte allocation. Returns 0, or -errno with nothing left open.
 */
static inline int
hostile_case_open(struct vh_target *t, const struct vh_fe_mem_opts *mo, const struct vh_fe_opts *fo,
                  struct hostile_case *x, uint64_t bad_buf)
{
	int rc;

	rc = vh_test_fe_open(t, mo, fo, &x->mem, &x->fe);
	if (rc < 0) {
		return rc;
	}
	rc = vh_fe_start(x->fe, 0, 0);
	if (rc < 0) {
		vh_test_fe_close(x->mem, x->fe);
		return rc;
	}
	x->vq = vh_fe_vq(x->fe, 0);
	x->giov = (struct vh_fe_iov){vh_fe_mem_alloc(x->mem, 4096, 4096), 4096};
	x->good = (struct vh_fe_req){.type = VIRTIO_BLK_T_IN,
	                             .sector = 8,
	                             .iov = &x->giov,
	                             .niov = 1,
	                             .layout = VH_FE_L_NO_MERGE};
	x->biov = (struct vh_fe_iov){vh_fe_mem_alloc(x->mem, bad_buf, 4096), 4096};
	x->bad = (struct vh_fe_req){.type = VIRTIO_BLK_T_IN,
	                            .sector = 0,
	                            .iov = &x->biov,
	                            .niov = 1,
	                            .layout = VH_FE_L_NO_MERGE};
	return 0;
}

/*
 * The drain of case @name returned @rc: on an error wait (3 s at most) for the daemon to close
 * the session, print the outcome, and close our end. Returns whether the daemon had closed it.
 */
static inline bool
hostile_case_end(struct hostile_case *x, const char *name, int rc)
{
	bool closed = false;

	if (rc < 0) {
		closed = vh_fe_wait_closed(x->fe, 3000) == 0;
	}
	fprintf(stderr, "%s: %s (good status %u, victim status %u)\n", name,
	        closed   ? "session closed"
	        : rc < 0 ? "NO ANSWER"
	                 : "completed",
	        x->good.status, x->bad.status);
	vh_test_fe_close(x->mem, x->fe);
	return closed;
}

/*
 * Judge case @name after hostile_case_end(): a session left open must have answered both
 * requests (drain @rc 0), the legitimate one OK and the victim as the case expects
 * (@victim_ok); then the daemon must have dropped the session (5 s) and still serve the
 * witness. Returns 0 or -1 (the failure printed).
 */
static inline int
hostile_case_check(struct vh_target *t, struct witness *w, const struct hostile_case *x,
                   const char *name, bool closed, int rc, bool victim_ok)
{
	if (!closed) {
		T_CHECK(rc == 0, "%s: neither completed nor closed (%s)", name, strerror(-rc));
		T_CHECK(x->good.status == VIRTIO_BLK_S_OK, "%s: the legitimate request got %u",
		        name, x->good.status);
		T_CHECK(victim_ok, "%s: victim completed with status %u", name, x->bad.status);
	}
	T_OK(hostile_wait_disconnected(t, t->name, 5000));
	T_OK(witness_check(t, w));
	return 0;
}

/*
 * main() of a hostile ring suite: start a target (@to) and the witness, run the @ncases cases
 * (@one(t, case, w), named @names[case]) in order, stopping when the daemon dies, then check
 * the daemon's fd count is back at its baseline (3 s) and that it stops cleanly. Prints
 * "@suite: PASS" or FAIL; returns VH_TEST_PASS, VH_TEST_FAIL, or VH_TEST_SKIP (against qsd,
 * or when the target cannot run here).
 */
static inline int
hostile_ring_main(const char *suite, const struct vh_target_opts *to, int ncases,
                  const char *const *names, int (*one)(struct vh_target *, int, struct witness *))
{
	struct vh_target t;
	struct witness w;
	int fail = 0, rc, fds0, fds1;

	if (vh_test_qsd()) {
		return VH_TEST_SKIP;
	}
	hostile_asan_env();
	rc = vh_target_start(&t, to);
	if (rc) {
		return rc == VH_TEST_SKIP ? VH_TEST_SKIP : VH_TEST_FAIL;
	}
	if (witness_open(&t, &w) < 0) {
		vh_target_stop(&t);
		return VH_TEST_FAIL;
	}
	fds0 = hostile_count_fds(t.d.pid);
	for (int m = 0; m < ncases; m++) {
		if (one(&t, m, &w) < 0) {
			fail = 1;
		}
		if (!vh_daemon_alive(&t.d)) {
			fprintf(stderr, "FAIL: daemon died on '%s'\n", names[m]);
			fail = 1;
			break;
		}
	}
	fds1 = hostile_wait_fds(t.d.pid, fds0, 3000);
	if (fds1 > fds0) {
		fprintf(stderr, "FAIL: daemon fd count grew from %d to %d\n", fds0, fds1);
		fail = 1;
	}
	witness_close(&w);
	if (vh_target_stop(&t) < 0) {
		fail = 1;
	}
	fprintf(stderr, "%s: %s\n", suite, fail ? "FAIL" : "PASS");
	return fail ? VH_TEST_FAIL : VH_TEST_PASS;
}

#endif
