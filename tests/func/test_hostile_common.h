/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Shared by the tests/func/test_hostile_*.c suites (header-only, static functions): daemon
 * resource probes (/proc/PID/fd, VmRSS), a bounded wait for them to return to a baseline, and a
 * second "witness" controller whose verified I/O must keep working while another socket is
 * abused.
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

#endif
