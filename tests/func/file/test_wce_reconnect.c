/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The writeback byte outlives the session (VIRTIO 1.2 §5.2.6.2; docs/design.md, "The
 * writeback byte across reconnects"). QEMU reads the configuration space once, when it realizes
 * the device, and a reconnecting QEMU never reads it again: it answers its guest from its copy.
 * A guest that switched its disk to write-through and then saw vhostd reconnect (a restart, a
 * crash under --supervise) must still get durable writes. Before the fix every new session
 * started at the default, writeback 1, and the guest's "stable" writes sat in a cache.
 *
 * A file bdev (io_uring) whose fua_writes counter counts the writes made durable. The test
 * front-end plays QEMU 7.2 (FLUSH, CONFIG_WCE, reconnect without GET_CONFIG):
 *   1. reconnect to the same worker: writeback stays 0, writes durable;
 *   2. the worker killed (SIGKILL) under --supervise, the front-end reconnects to the new one:
 *      the same;
 *   3. a restart without a supervisor (nothing remembers): a front-end that reconnects without
 *      reading the configuration is served write-through; a fresh one reads writeback 1 and its
 *      writes are plain (the control that shows the counter tells the two apart).
 * Exit: 0 pass, 1 fail, 77 skip (no $VHOSTD).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "blk_wce.h"
#include "io_engine.h"
#include "vh_test.h"

#define TIMEOUT_MS 20000
#define DISK_MB    16
#define NWRITES    8

struct env {
	struct vh_target t; /* its daemon, and vh_target_rpc() */
	char dir[64];       /* outlives each daemon: the disk file and the config */
	char disk[128];
	char conf[128];
	char sock[108];
};

struct conn {
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	uint64_t buf;
};

/* vhostd [--supervise] -c conf; with @create, the bdev and controller (saved in conf). */
static int
daemon_start(struct env *e, bool supervise, bool create)
{
	const char *sup[] = {"--supervise", "-c", e->conf, NULL};
	const char *plain[] = {"-c", e->conf, NULL};
	int rc;

	rc = vh_daemon_start(&e->t.d, NULL, supervise ? sup : plain, TIMEOUT_MS);
	if (rc == -ENOENT) {
		return VH_TEST_SKIP;
	}
	T_OK(rc);
	vh_daemon_path(&e->t.d, "vhost.0", e->sock, sizeof(e->sock));
	if (!create) {
		return 0;
	}
	T_OK(vh_target_rpc(&e->t, "bdev_uring_create",
	                   json_pack("{s:s, s:s}", "name", "f0", "filename", e->disk), NULL));
	T_OK(vh_target_rpc(&e->t, "vhost_create_blk_controller",
	                   json_pack("{s:s, s:s, s:s}", "ctrlr", "vhost.0", "dev_name", "f0",
	                             "cpumask", "0x1"),
	                   NULL));
	return 0;
}

/* The worker's durable writes so far (bdev_get_bdevs, driver_specific.uring.fua_writes). */
static long long
fua_writes(struct env *e)
{
	json_t *res = NULL, *ds;
	long long n = -1;

	if (vh_target_rpc(&e->t, "bdev_get_bdevs", json_pack("{s:s}", "name", "f0"), &res) == 0) {
		ds = json_object_get(json_object_get(json_array_get(res, 0), "driver_specific"),
		                     "uring");
		if (json_is_integer(json_object_get(ds, "fua_writes"))) {
			n = json_integer_value(json_object_get(ds, "fua_writes"));
		}
	}
	json_decref(res);
	return n;
}

/* A QEMU 7.2 front-end, connected, initialised with GET_CONFIG (a realize) and started. */
static int
conn_open(struct env *e, struct conn *c)
{
	struct vh_fe_mem_opts mo = {.size = 16 << 20};
	struct vh_fe_opts fo = {.num_queues = 1, .personality = VH_FE_QEMU72, .path = e->sock};

	memset(c, 0, sizeof(*c));
	vh_fe_personality_mem_opts(VH_FE_QEMU72, &mo);
	T_OK(vh_fe_mem_create(&c->mem, &mo));
	T_OK(vh_fe_create(&c->fe, c->mem, &fo));
	T_OK(vh_fe_connect(c->fe, TIMEOUT_MS));
	T_OK(vh_fe_init(c->fe, true));
	c->buf = vh_fe_mem_alloc(c->mem, 4096, 4096);
	T_CHECK(c->buf != UINT64_MAX, "no guest RAM for the buffer");
	T_OK(vh_fe_start(c->fe, 0, 0));
	T_CHECK(vh_fe_has(vh_fe_info(c->fe)->features, VIRTIO_BLK_F_CONFIG_WCE) &&
	                vh_fe_has(vh_fe_info(c->fe)->features, VIRTIO_BLK_F_FLUSH),
	        "FLUSH and CONFIG_WCE not negotiated");
	return 0;
}

static void
conn_close(struct conn *c)
{
	if (c->fe != NULL) {
		vh_fe_destroy(c->fe);
	}
	if (c->mem != NULL) {
		vh_fe_mem_destroy(c->mem);
	}
	memset(c, 0, sizeof(*c));
}

/* NWRITES writes of 4 KiB; exactly @durable of them must have been made durable. */
static int
writes(struct env *e, struct conn *c, long long durable, const char *what)
{
	long long before = fua_writes(e), after;

	T_CHECK(before >= 0, "%s: no fua_writes counter", what);
	for (unsigned i = 0; i < NWRITES; i++) {
		struct vh_fe_iov iov = {c->buf, 4096};
		struct vh_fe_req r = {
		        .type = VIRTIO_BLK_T_OUT, .sector = i * 8, .iov = &iov, .niov = 1};

		memset(vh_fe_gpa_to_ptr(c->mem, c->buf, 4096), 0x5a + i, 4096);
		T_OK(io_sync(c->fe, 0, &r, TIMEOUT_MS));
		T_CHECK(r.status == VIRTIO_BLK_S_OK, "%s: write %u status %u", what, i, r.status);
	}
	after = fua_writes(e);
	fprintf(stderr, "  %s: %lld of %d writes durable\n", what, after - before, NWRITES);
	T_CHECK(after - before == durable, "%s: %lld durable writes, expected %lld", what,
	        after - before, durable);
	return 0;
}

/* 1 and 2: the guest chose write-through; a reconnect, then a crash of the supervised worker. */
static int
case_supervised(struct env *e)
{
	struct conn c;
	pid_t worker;
	int rc;

	fprintf(stderr, "case: write-through across a reconnect and a crash (--supervise)\n");
	rc = daemon_start(e, true, true);
	if (rc != 0) {
		return rc;
	}
	rc = -1;
	if (conn_open(e, &c) < 0) {
		goto out;
	}
	T_CHECK(blk_wce_get(c.fe) == 1, "a file bdev starts writeback");
	if (writes(e, &c, 0, "writeback 1") < 0 || blk_wce_set(c.fe, 0) < 0 ||
	    writes(e, &c, NWRITES, "writeback 0") < 0) {
		goto out;
	}
	/* QEMU reconnects to the same worker: A without GET_CONFIG, then B. */
	if (vh_fe_reconnect(c.fe, TIMEOUT_MS) < 0 || writes(e, &c, NWRITES, "reconnected") < 0) {
		goto out;
	}
	worker = vh_daemon_child(&e->t.d);
	T_CHECK(worker > 0, "no worker under the supervisor");
	T_CHECK(kill(worker, SIGKILL) == 0, "kill %d: %s", (int)worker, strerror(errno));
	if (vh_fe_reconnect(c.fe, TIMEOUT_MS) < 0 ||
	    writes(e, &c, NWRITES, "reconnected to a new worker after a crash") < 0) {
		goto out;
	}
	T_CHECK(blk_wce_get(c.fe) == 0, "the new worker reports writeback 1");
	rc = 0;
out:
	conn_close(&c);
	if (vh_daemon_stop(&e->t.d, TIMEOUT_MS) != 0) {
		rc = -1;
	}
	return rc;
}

/* 3: a restart from the config file with no supervisor: nothing remembers the guest's choice. */
static int
case_unsupervised(struct env *e)
{
	struct conn c, fresh;
	int rc;

	fprintf(stderr, "case: a restart without a supervisor\n");
	memset(&fresh, 0, sizeof(fresh));
	rc = daemon_start(e, false, true);
	if (rc != 0) {
		return rc;
	}
	rc = -1;
	if (conn_open(e, &c) < 0 || blk_wce_set(c.fe, 0) < 0 ||
	    writes(e, &c, NWRITES, "writeback 0") < 0) {
		goto out;
	}
	if (vh_daemon_stop(&e->t.d, TIMEOUT_MS) != 0) {
		fprintf(stderr, "FAIL: vhostd did not stop cleanly\n");
		goto out;
	}
	if (daemon_start(e, false, false) != 0) {
		goto out;
	}
	if (vh_fe_reconnect(c.fe, TIMEOUT_MS) < 0 ||
	    writes(e, &c, NWRITES, "reconnected to a restarted vhostd") < 0) {
		goto out;
	}
	/* The control: a front-end that reads the configuration gets the default, plain writes. */
	conn_close(&c);
	if (conn_open(e, &fresh) < 0) {
		goto out;
	}
	T_CHECK(blk_wce_get(fresh.fe) == 1, "a fresh front-end reads writeback %d",
	        blk_wce_get(fresh.fe));
	if (writes(e, &fresh, 0, "a fresh front-end, writeback 1") < 0) {
		goto out;
	}
	rc = 0;
out:
	conn_close(&c);
	conn_close(&fresh);
	if (vh_daemon_stop(&e->t.d, TIMEOUT_MS) != 0) {
		rc = -1;
	}
	return rc;
}

static int
make_env(struct env *e)
{
	int fd;

	memset(e, 0, sizeof(*e));
	e->t.d.pid = -1;
	snprintf(e->dir, sizeof(e->dir), "/var/tmp/vh-wce-XXXXXX");
	T_CHECK(mkdtemp(e->dir) != NULL, "mkdtemp: %s", strerror(errno));
	snprintf(e->disk, sizeof(e->disk), "%s/disk.img", e->dir);
	snprintf(e->conf, sizeof(e->conf), "%s/vhostd.json", e->dir);
	fd = open(e->disk, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0600);
	T_CHECK(fd >= 0 && ftruncate(fd, (off_t)DISK_MB << 20) == 0, "%s: %s", e->disk,
	        strerror(errno));
	close(fd);
	return 0;
}

static void
drop_env(struct env *e)
{
	unlink(e->disk);
	unlink(e->conf);
	rmdir(e->dir);
}

int
main(void)
{
	struct env e;
	int rc, worst = 0;

	for (int i = 0; i < 2; i++) {
		if (make_env(&e) < 0) {
			return 1;
		}
		rc = i == 0 ? case_supervised(&e) : case_unsupervised(&e);
		drop_env(&e);
		if (rc == VH_TEST_SKIP) {
			return VH_TEST_SKIP;
		}
		if (rc != 0) {
			worst = 1;
		}
	}
	fprintf(stderr, worst ? "FAIL\n" : "PASS\n");
	return worst;
}
