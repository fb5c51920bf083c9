/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Write-through end to end (VIRTIO 1.2 §5.2.6.2): a driver that did not negotiate FLUSH, or that
 * set writeback to 0 through CONFIG_WCE, must find every write it saw complete on stable storage.
 * The daemon runs a file bdev; the test front-end plays QEMU with a Linux guest (with and without
 * FLUSH, switching writeback at run time), SPDK's and DPDK's virtio-user initiators.
 *
 * What we look at, outside the daemon:
 * - a loop device's flush counter (/sys/block/loopN/stat, field 16). The daemon writes to it
 *   with O_DIRECT; the loop driver has a volatile cache and no FUA, so the kernel flushes it for
 *   every write that must be durable (RWF_DSYNC becomes REQ_FUA, emulated with a flush) and for
 *   every fdatasync, and never for a plain write. N durable writes: at least N flushes; N plain
 *   writes: none. Nothing else writes to that device, and sync(2) does not flush it.
 * - the page cache (cachestat(2), Linux 6.5+) of a file on a disk filesystem, for writes the
 *   daemon takes through its buffered fd (unaligned guest buffers): clean when a durable write
 *   completes, dirty after a plain one.
 * - bdev_get_bdevs: the file bdev's fua_writes counter (durable requests completed).
 * Exit: 0 pass, 1 fail, 77 skip (no $VHOSTD, or no loop device and no cachestat).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/loop.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "blk_wce.h"
#include "io_engine.h"
#include "vh_test.h"

#define TIMEOUT_MS 20000
#define DISK_MB    32
#define NWRITES    16

static int
make_file(const char *path, uint64_t size)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0600);
	int rc = 0;

	if (fd < 0) {
		return -errno;
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		rc = -errno;
	}
	close(fd);
	return rc;
}

/* Attach a free loop device to @path; its name in @dev. The fd to close (autoclear), or -1. */
static int
loop_attach(const char *path, char *dev, size_t devlen)
{
	struct loop_info64 info;
	int ctl, fd, lfd = -1;

	fd = open(path, O_RDWR | O_CLOEXEC);
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	/* Another process may grab the same free device: try a few. */
	for (int attempt = 0; attempt < 8 && ctl >= 0 && fd >= 0 && lfd < 0; attempt++) {
		int nr = ioctl(ctl, LOOP_CTL_GET_FREE);

		if (nr < 0) {
			break;
		}
		snprintf(dev, devlen, "/dev/loop%d", nr);
		lfd = open(dev, O_RDWR | O_CLOEXEC);
		if (lfd >= 0 && ioctl(lfd, LOOP_SET_FD, fd) < 0) {
			close(lfd);
			lfd = -1;
		}
	}
	if (lfd >= 0) {
		memset(&info, 0, sizeof(info));
		info.lo_flags = LO_FLAGS_AUTOCLEAR; /* detached when the last opener closes */
		if (ioctl(lfd, LOOP_SET_STATUS64, &info) < 0) {
			ioctl(lfd, LOOP_CLR_FD, 0);
			close(lfd);
			lfd = -1;
		}
	}
	if (ctl >= 0) {
		close(ctl);
	}
	if (fd >= 0) {
		close(fd);
	}
	return lfd;
}

/* Read /sys/block/<loopN>/@attr (first line) into @buf. 0 or -1. */
static int
sysfs_block(const char *dev, const char *attr, char *buf, size_t len)
{
	char path[96];
	FILE *f;

	snprintf(path, sizeof(path), "/sys/block/%s/%s", strrchr(dev, '/') + 1, attr);
	f = fopen(path, "r");
	if (f == NULL) {
		return -1;
	}
	if (fgets(buf, (int)len, f) == NULL) {
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}

/* Flush requests the block device completed (diskstat field 16, Linux 5.5+), or -1. */
static long long
dev_flushes(const char *dev)
{
	char buf[512];
	unsigned long long v[17];

	if (sysfs_block(dev, "stat", buf, sizeof(buf)) < 0 ||
	    sscanf(buf,
	           "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu "
	           "%llu %llu",
	           &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10],
	           &v[11], &v[12], &v[13], &v[14], &v[15], &v[16]) != 17) {
		return -1;
	}
	return (long long)v[15];
}

#ifndef __NR_cachestat
#define __NR_cachestat 451 /* Linux 6.5, the same number on every architecture */
#endif

/* Dirty or under-writeback pages of [off, off + len) of @path, or -errno (-ENOSYS: no cachestat).
 */
static long
dirty_pages(const char *path, uint64_t off, uint64_t len)
{
	uint64_t range[2] = {off, len}, cs[5] = {0}; /* struct cachestat_range, struct cachestat */
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	long rc;

	if (fd < 0) {
		return -errno;
	}
	rc = syscall(__NR_cachestat, fd, range, cs, 0);
	rc = rc < 0 ? -errno : (long)(cs[1] + cs[2]);
	close(fd);
	return rc;
}

/* A running daemon with a file bdev "f0" (@method on @filename) under controller vhost.0. */
static int
target_open(struct vh_target *t, const char *method, const char *filename)
{
	int rc;

	memset(t, 0, sizeof(*t));
	t->d.pid = -1;
	snprintf(t->name, sizeof(t->name), "vhost.0");
	snprintf(t->bdev, sizeof(t->bdev), "f0");
	t->block_size = 512;
	t->num_blocks = (DISK_MB << 20) / 512;
	rc = vh_daemon_start(&t->d, NULL, NULL, TIMEOUT_MS);
	if (rc == -ENOENT) {
		return VH_TEST_SKIP;
	}
	T_OK(rc);
	vh_daemon_path(&t->d, t->name, t->sock, sizeof(t->sock));
	if (filename == NULL) {
		return 0;
	}
	T_OK(vh_target_rpc(t, method, json_pack("{s:s, s:s}", "name", "f0", "filename", filename),
	                   NULL));
	T_OK(vh_target_rpc(
	        t, "vhost_create_blk_controller",
	        json_pack("{s:s, s:s, s:s}", "ctrlr", t->name, "dev_name", "f0", "cpumask", "0x1"),
	        NULL));
	return 0;
}

/* driver_specific.<module>.fua_writes of "f0", or -1. */
static long long
fua_writes(struct vh_target *t, const char *module)
{
	json_t *res = NULL, *ds;
	long long n = -1;

	if (vh_target_rpc(t, "bdev_get_bdevs", json_pack("{s:s}", "name", "f0"), &res) == 0) {
		ds = json_object_get(json_object_get(json_array_get(res, 0), "driver_specific"),
		                     module);
		if (json_is_integer(json_object_get(ds, "fua_writes"))) {
			n = json_integer_value(json_object_get(ds, "fua_writes"));
		}
	}
	json_decref(res);
	return n;
}

/* One front-end connection, started, with a buffer in guest RAM. */
struct conn {
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	uint64_t buf; /* GPA of 64 KiB + 4 KiB */
	uint64_t seg; /* GPA of a discard/write-zeroes segment */
};

static int
conn_open(struct vh_target *t, struct conn *c, enum vh_fe_personality p, uint64_t features)
{
	struct vh_fe_mem_opts mo = {.size = 16 << 20};
	struct vh_fe_opts fo = {.num_queues = 1, .personality = p, .driver_features = features};

	memset(c, 0, sizeof(*c));
	vh_fe_personality_mem_opts(p, &mo);
	T_OK(vh_test_fe_open(t, &mo, &fo, &c->mem, &c->fe));
	c->buf = vh_fe_mem_alloc(c->mem, 65536 + 4096, 4096);
	c->seg = vh_fe_mem_alloc(c->mem, 16, 16);
	T_CHECK(c->buf != UINT64_MAX && c->seg != UINT64_MAX, "no guest RAM for buffers");
	T_OK(vh_fe_start(c->fe, 0, 0));
	return 0;
}

static void
conn_close(struct conn *c)
{
	if (c->fe != NULL) {
		vh_fe_stop(c->fe);
	}
	vh_test_fe_close(c->mem, c->fe);
	c->fe = NULL;
	c->mem = NULL;
}

/* One request, waited for; its status must be OK. */
static int
sync_req(struct conn *c, uint32_t type, uint64_t sector, uint64_t gpa, uint32_t len)
{
	struct vh_fe_iov iov = {gpa, len};
	struct vh_fe_req r = {.type = type, .sector = sector, .iov = &iov, .niov = len ? 1 : 0};

	T_OK(io_sync(c->fe, 0, &r, TIMEOUT_MS));
	T_CHECK(r.status == VIRTIO_BLK_S_OK, "request type %u at sector %" PRIu64 ": status %u",
	        type, sector, r.status);
	return 0;
}

/* @n writes of 4 KiB (@skew bytes into the buffer: unaligned memory takes the buffered fd). */
static int
writes(struct conn *c, unsigned n, uint64_t sector, unsigned skew, uint8_t tag)
{
	for (unsigned i = 0; i < n; i++) {
		memset(vh_fe_gpa_to_ptr(c->mem, c->buf + skew, 4096), tag + i, 4096);
		T_OK(sync_req(c, VIRTIO_BLK_T_OUT, sector + i * 8, c->buf + skew, 4096));
	}
	return 0;
}

/* Discard (@type DISCARD) or write zeroes of 8 sectors at @sector. */
static int
zero_req(struct conn *c, uint32_t type, uint64_t sector)
{
	vh_fe_blk_dwz_seg(vh_fe_gpa_to_ptr(c->mem, c->seg, 16), sector, 8, 0);
	return sync_req(c, type, 0, c->seg, 16);
}

/* The driver writes the writeback byte (REPLY_ACK: applied when we return). */
static int
set_wce(struct conn *c, uint8_t wce)
{
	return blk_wce_set(c->fe, wce);
}

static int
get_wce(struct conn *c)
{
	return blk_wce_get(c->fe);
}

/* What a batch cost the device: flushes, and durable writes the daemon counted. */
struct marks {
	long long flushes, fua;
};

static int
mark(struct vh_target *t, const char *dev, const char *module, struct marks *m)
{
	m->flushes = dev_flushes(dev);
	m->fua = fua_writes(t, module);
	T_CHECK(m->flushes >= 0 && m->fua >= 0, "cannot read the counters");
	return 0;
}

/* Since @m0: at least @durable flushes and exactly @durable durable writes (0: no flush). */
static int
expect(struct vh_target *t, const char *dev, const char *module, const struct marks *m0,
       long long durable, const char *what)
{
	struct marks m;

	T_OK(mark(t, dev, module, &m));
	fprintf(stderr, "  %s: %lld device flushes, %lld durable writes\n", what,
	        m.flushes - m0->flushes, m.fua - m0->fua);
	T_CHECK(m.fua - m0->fua == durable, "%s: %lld durable writes, expected %lld", what,
	        m.fua - m0->fua, durable);
	if (durable == 0) {
		T_CHECK(m.flushes == m0->flushes, "%s: %lld flushes, expected none", what,
		        m.flushes - m0->flushes);
	} else {
		T_CHECK(m.flushes - m0->flushes >= durable,
		        "%s: %lld flushes for %lld durable writes", what, m.flushes - m0->flushes,
		        durable);
	}
	return 0;
}

/*
 * QEMU with a Linux guest (FLUSH, CONFIG_WCE): writeback 1, plain writes; the guest switches to
 * write through: durable writes and write zeroes, discards stay hints; back to writeback.
 */
static int
body_qemu_wce(struct vh_target *t, const char *dev, const char *module)
{
	struct conn c;
	struct marks m;
	int rc = -1;

	if (conn_open(t, &c, VH_FE_QEMU72, 0) < 0) {
		goto out;
	}
	if (get_wce(&c) != 1 || mark(t, dev, module, &m) < 0 || writes(&c, NWRITES, 0, 0, 1) < 0 ||
	    expect(t, dev, module, &m, 0, "writeback 1, 16 writes") < 0) {
		goto out;
	}
	if (set_wce(&c, 0) < 0 || get_wce(&c) != 0 || mark(t, dev, module, &m) < 0 ||
	    writes(&c, NWRITES, 0, 0, 2) < 0 ||
	    expect(t, dev, module, &m, NWRITES, "writeback 0, 16 writes") < 0) {
		goto out;
	}
	if (mark(t, dev, module, &m) < 0 || zero_req(&c, VIRTIO_BLK_T_WRITE_ZEROES, 64) < 0 ||
	    zero_req(&c, VIRTIO_BLK_T_WRITE_ZEROES, 128) < 0 ||
	    expect(t, dev, module, &m, 2, "writeback 0, 2 write zeroes") < 0) {
		goto out;
	}
	if (vh_fe_has(vh_fe_info(c.fe)->features, VIRTIO_BLK_F_DISCARD) &&
	    (mark(t, dev, module, &m) < 0 || zero_req(&c, VIRTIO_BLK_T_DISCARD, 256) < 0 ||
	     expect(t, dev, module, &m, 0, "writeback 0, a discard") < 0)) {
		goto out;
	}
	if (set_wce(&c, 1) < 0 || mark(t, dev, module, &m) < 0 ||
	    writes(&c, NWRITES, 0, 0, 3) < 0 ||
	    expect(t, dev, module, &m, 0, "writeback 1 again, 16 writes") < 0) {
		goto out;
	}
	rc = 0;
out:
	conn_close(&c);
	return rc;
}

/* A driver without FLUSH: every write durable (with CONFIG_WCE, writeback reads 0). */
static int
body_no_flush(struct vh_target *t, const char *dev, const char *module, enum vh_fe_personality p,
              uint64_t features)
{
	struct conn c;
	struct marks m;
	int rc = -1;

	if (conn_open(t, &c, p, features) < 0) {
		goto out;
	}
	if (vh_fe_has(vh_fe_info(c.fe)->features, VIRTIO_BLK_F_CONFIG_WCE) && get_wce(&c) != 0) {
		fprintf(stderr, "FAIL: CONFIG_WCE without FLUSH, writeback is not 0\n");
		goto out;
	}
	if (mark(t, dev, module, &m) < 0 || writes(&c, NWRITES, 512, 0, 4) < 0 ||
	    expect(t, dev, module, &m, NWRITES, "no FLUSH, 16 writes") < 0) {
		goto out;
	}
	rc = 0;
out:
	conn_close(&c);
	return rc;
}

struct loop_case {
	const char *method, *module;
	enum vh_fe_personality p;
	uint64_t features; /* 0: the personality's */
	bool wce_switch;   /* QEMU: writeback switched at run time */
	const char *what;
};

static int
case_loop(const struct loop_case *lc)
{
	struct vh_target t;
	char path[160], dev[32] = "", wc[32] = "";
	int rc, lfd;

	fprintf(stderr, "case: %s on a loop device: %s\n", lc->method, lc->what);
	rc = target_open(&t, NULL, NULL);
	if (rc != 0) {
		return rc;
	}
	snprintf(path, sizeof(path), "%s/disk.img", t.d.dir);
	rc = -1;
	if (make_file(path, DISK_MB << 20) < 0) {
		goto out_stop;
	}
	lfd = loop_attach(path, dev, sizeof(dev));
	if (lfd < 0) {
		fprintf(stderr, "  SKIP: no loop device (%s)\n", strerror(errno));
		rc = VH_TEST_SKIP;
		goto out_stop;
	}
	if (dev_flushes(dev) < 0 || sysfs_block(dev, "queue/write_cache", wc, sizeof(wc)) < 0 ||
	    strncmp(wc, "write back", 10) != 0) {
		fprintf(stderr, "  SKIP: %s has no flush counter or no write cache\n", dev);
		rc = VH_TEST_SKIP;
		goto out_loop;
	}
	if (vh_target_rpc(&t, lc->method, json_pack("{s:s, s:s}", "name", "f0", "filename", dev),
	                  NULL) < 0 ||
	    vh_target_rpc(&t, "vhost_create_blk_controller",
	                  json_pack("{s:s, s:s, s:s}", "ctrlr", t.name, "dev_name", "f0", "cpumask",
	                            "0x1"),
	                  NULL) < 0) {
		goto out_loop;
	}
	rc = lc->wce_switch ? body_qemu_wce(&t, dev, lc->module)
	                    : body_no_flush(&t, dev, lc->module, lc->p, lc->features);
out_loop:
	close(lfd);
out_stop:
	if (vh_target_stop(&t) < 0) {
		rc = -1;
	}
	return rc;
}

/*
 * The page cache of a file on a disk filesystem: a durable write the daemon takes through its
 * buffered fd (unaligned guest memory) is clean when it completes; a plain one is still dirty.
 */
static int
body_page_cache(struct vh_target *t, const char *path)
{
	struct conn c;
	long dirty = 0;
	int rc = -1;

	if (conn_open(t, &c, VH_FE_SPDK2305, 0) < 0 || writes(&c, 4, 0, 1, 5) < 0) {
		goto out;
	}
	dirty = dirty_pages(path, 0, 4 * 4096);
	fprintf(stderr, "  spdk (no FLUSH): %ld dirty pages after 4 writes\n", dirty);
	if (dirty != 0) {
		fprintf(stderr, "FAIL: durable writes left %ld dirty pages\n", dirty);
		goto out;
	}
	conn_close(&c);
	/* The control: FLUSH acked, writeback 1. A sync(2) in between could clean: try thrice. */
	if (conn_open(t, &c, VH_FE_QEMU72, 0) < 0) {
		goto out;
	}
	for (int i = 0; i < 3 && dirty <= 0; i++) {
		if (writes(&c, 4, 64, 1, (uint8_t)(6 + i)) < 0) {
			goto out;
		}
		dirty = dirty_pages(path, 64 * 512, 4 * 4096);
	}
	fprintf(stderr, "  qemu (FLUSH, writeback 1): %ld dirty pages after 4 writes\n", dirty);
	if (dirty <= 0) {
		fprintf(stderr, "FAIL: plain writes left no dirty page: the check sees nothing\n");
		goto out;
	}
	rc = 0;
out:
	conn_close(&c);
	return rc;
}

static int
case_page_cache(void)
{
	struct vh_target t;
	struct statfs sfs;
	char path[160];
	int rc;

	fprintf(stderr, "case: bdev_uring_create on a file, buffered writes, page cache\n");
	rc = target_open(&t, NULL, NULL);
	if (rc != 0) {
		return rc;
	}
	snprintf(path, sizeof(path), "%s/disk.img", t.d.dir);
	rc = -1;
	if (make_file(path, DISK_MB << 20) < 0) {
		goto out;
	}
	if (statfs(path, &sfs) != 0 || sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC ||
	    dirty_pages(path, 0, 4096) == -ENOSYS) {
		fprintf(stderr, "  SKIP: the file is on tmpfs, or no cachestat(2)\n");
		rc = VH_TEST_SKIP;
		goto out;
	}
	if (vh_target_rpc(&t, "bdev_uring_create",
	                  json_pack("{s:s, s:s}", "name", "f0", "filename", path), NULL) < 0 ||
	    vh_target_rpc(&t, "vhost_create_blk_controller",
	                  json_pack("{s:s, s:s, s:s}", "ctrlr", t.name, "dev_name", "f0", "cpumask",
	                            "0x1"),
	                  NULL) < 0) {
		goto out;
	}
	rc = body_page_cache(&t, path);
out:
	if (vh_target_stop(&t) < 0) {
		rc = -1;
	}
	return rc;
}

int
main(void)
{
	const uint64_t linux_no_flush = VH_FE_LINUX_FEATURES & ~(1ull << VIRTIO_BLK_F_FLUSH);
	const struct loop_case cases[] = {
	        {"bdev_uring_create", "uring", VH_FE_QEMU72, 0, true,
	         "qemu + Linux, writeback switched at run time"},
	        {"bdev_uring_create", "uring", VH_FE_QEMU72, linux_no_flush, false,
	         "qemu, a driver with CONFIG_WCE and without FLUSH"},
	        {"bdev_uring_create", "uring", VH_FE_SPDK2305, 0, false, "spdk virtio-user"},
	        {"bdev_aio_create", "aio", VH_FE_DPDK2211, 0, false, "dpdk virtio-user"},
	        {"bdev_aio_create", "aio", VH_FE_QEMU72, 0, true,
	         "qemu + Linux, writeback switched at run time"},
	};
	int rc, fails = 0, skips = 0, runs = 0;

	if (vh_test_qsd()) {
		fprintf(stderr, "SKIP: vhostd-only test\n");
		return VH_TEST_SKIP;
	}
	for (size_t i = 0; i <= sizeof(cases) / sizeof(cases[0]); i++) {
		rc = i < sizeof(cases) / sizeof(cases[0]) ? case_loop(&cases[i])
		                                          : case_page_cache();
		if (rc == VH_TEST_SKIP) {
			skips++;
			continue;
		}
		fails += rc != 0;
		runs++;
	}
	fprintf(stderr, "%d case(s) run, %d failed, %d skipped\n", runs, fails, skips);
	if (runs == 0) {
		return VH_TEST_SKIP;
	}
	return fails ? VH_TEST_FAIL : VH_TEST_PASS;
}
