/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The file back-ends through the whole daemon, driven by the test front-end:
 * - uring and aio: a random workload of every request type on 2 queues, checked against a shadow
 *   copy, then the file itself checked against the shadow; on a disk filesystem (O_DIRECT) and
 *   on a loop device; on tmpfs (inline copies, and the io_uring path with them off); uring with
 * guest RAM on hugetlbfs, whose O_DIRECT requests must use io_uring fixed buffers;
 * - RPC errors: a missing path, a directory, deleting a bdev used by a controller;
 * - resize: bdev_uring_rescan after the file grew sends CONFIG_CHANGE and GET_CONFIG shows the
 *   new capacity;
 * - a file truncated under us: IOERR, the daemon lives, I/O works again once the size is back;
 * - ENOSPC on a size-limited tmpfs (skipped when we cannot mount): IOERR, the daemon lives, and
 *   the same writes succeed after space is freed.
 * Exit: 0 pass, 1 fail, 77 skip (no $VHOSTD).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <stdlib.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "io_engine.h"
#include "vh_test.h"

#define TIMEOUT_MS 20000
#define DISK_MB    32

static uint64_t g_seed;

static uint64_t
ops_per_case(void)
{
	const char *e = getenv("VH_TEST_OPS");

	return e ? strtoull(e, NULL, 0) : 3000;
}

static int
make_file(const char *path, uint64_t size)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0600);

	if (fd < 0) {
		return -errno;
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	close(fd);
	return 0;
}

/* Start vhostd in a fresh temp dir; controller "vhost.0" comes later. */
static int
target_start(struct vh_target *t)
{
	int rc;

	memset(t, 0, sizeof(*t));
	t->d.pid = -1;
	snprintf(t->name, sizeof(t->name), "vhost.0");
	snprintf(t->bdev, sizeof(t->bdev), "f0");
	t->block_size = 512;
	rc = vh_daemon_start(&t->d, NULL, NULL, TIMEOUT_MS);
	if (rc == -ENOENT) {
		return VH_TEST_SKIP;
	}
	T_OK(rc);
	vh_daemon_path(&t->d, t->name, t->sock, sizeof(t->sock));
	return 0;
}

/* Bdev "f0" of @method on @filename, and controller t->name on it (reactor 0). 0 or -1. */
static int
disk_create(struct vh_target *t, const char *method, const char *filename, bool inline_io)
{
	if (vh_target_rpc(t, method,
	                  json_pack("{s:s, s:s, s:b}", "name", "f0", "filename", filename,
	                            "inline_io", inline_io),
	                  NULL) < 0 ||
	    vh_target_rpc(t, "vhost_create_blk_controller",
	                  json_pack("{s:s, s:s, s:s}", "ctrlr", t->name, "dev_name", "f0",
	                            "cpumask", "0x1"),
	                  NULL) < 0) {
		return -1;
	}
	return 0;
}

/* Every sector the workload knows must be in the file. */
static int
check_file(const struct io_engine *e, const char *path)
{
	uint8_t sec[512];
	uint64_t checked = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	T_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	for (uint64_t s = 0; s < e->nsect; s++) {
		if (!e->known[s]) {
			continue;
		}
		if (pread(fd, sec, 512, (off_t)(s * 512)) != 512 ||
		    memcmp(sec, e->shadow + s * 512, 512) != 0) {
			close(fd);
			T_CHECK(false, "sector %" PRIu64 " of %s differs from the shadow", s, path);
		}
		checked++;
	}
	close(fd);
	fprintf(stderr, "  file matches the shadow (%" PRIu64 " known sectors)\n", checked);
	T_CHECK(checked > 0, "nothing was checked");
	return 0;
}

/* bdev_get_bdevs of the target's bdev: *ds is its driver_specific.<module>, owned by *res. */
static int
bdev_info(struct vh_target *t, const char *module, json_t **res, json_t **ds)
{
	*res = NULL;
	T_OK(vh_target_rpc(t, "bdev_get_bdevs", json_pack("{s:s}", "name", t->bdev), res));
	*ds = json_object_get(json_object_get(json_array_get(*res, 0), "driver_specific"), module);
	return 0;
}

static int
check_mode(struct vh_target *t, const char *module, const char *engine, bool want_inline)
{
	json_t *res = NULL, *ds;
	const char *got;

	T_OK(bdev_info(t, module, &res, &ds));
	got = json_string_value(json_object_get(ds, "engine"));
	T_CHECK(got != NULL && strcmp(got, engine) == 0, "engine %s, expected %s",
	        got ? got : "(none)", engine);
	got = json_string_value(json_object_get(ds, "io_mode"));
	T_CHECK(got != NULL, "no io_mode");
	T_CHECK(json_is_true(json_object_get(ds, "inline_io")) == want_inline,
	        "inline_io is %s, expected %s",
	        json_is_true(json_object_get(ds, "inline_io")) ? "on" : "off",
	        want_inline ? "on" : "off");
	fprintf(stderr, "  %s engine, %s I/O%s\n", engine, got,
	        want_inline ? ", inline copies" : "");
	json_decref(res);
	return 0;
}

/* A random-workload case: which bdev, on what, with which guest RAM. */
struct io_case {
	const char *method; /* bdev_uring_create or bdev_aio_create */
	const char *module;
	const char *engine;
	bool shm;             /* the file on /dev/shm (tmpfs: inline copies) */
	bool no_inline;       /* inline_io: false */
	bool loop;            /* the bdev on a loop device over the file */
	const char *huge_dir; /* guest RAM on this hugetlbfs mount */
};

static int case_io(const struct io_case *c);

/* A block device is opened O_DIRECT (a regression: its node on devtmpfs once looked like tmpfs). */
static int
check_direct(struct vh_target *t, const char *module)
{
	json_t *res = NULL, *ds;
	const char *mode;

	T_OK(bdev_info(t, module, &res, &ds));
	mode = json_string_value(json_object_get(ds, "io_mode"));
	T_CHECK(mode != NULL && strcmp(mode, "direct") == 0, "block device in %s mode",
	        mode ? mode : "no");
	T_CHECK(json_is_true(json_object_get(ds, "block_device")), "not seen as a block device");
	json_decref(res);
	return 0;
}

/* After a workload on huge-page guest RAM: the O_DIRECT requests used fixed buffers. */
static int
check_fixed(struct vh_target *t, const char *module)
{
	json_t *res = NULL, *ds;
	json_int_t n;

	T_OK(bdev_info(t, module, &res, &ds));
	n = json_integer_value(json_object_get(ds, "fixed_buffer_ios"));
	json_decref(res);
	fprintf(stderr, "  %lld requests on fixed buffers\n", (long long)n);
	T_CHECK(n > 0, "no request used a fixed buffer");
	return 0;
}

/*
 * Random workload on a bdev of @method. The file is in the daemon's directory (the test's
 * TMPDIR, usually a disk filesystem: O_DIRECT), or in /dev/shm when @shm (tmpfs: buffered, and
 * copied inline unless @no_inline).
 */
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

static int
case_io(const struct io_case *c)
{
	const char *method = c->method, *module = c->module, *engine = c->engine;
	bool shm = c->shm, no_inline = c->no_inline;
	struct vh_fe_mem_opts mo = {.size = 32 << 20, .nregions = 3, .hugetlbfs_dir = c->huge_dir};
	struct vh_fe_opts fo = {.num_queues = 2};
	struct vh_fe_mem *mem = NULL;
	struct vh_fe *fe = NULL;
	struct vh_target t;
	struct io_engine e;
	char path[160], dev[32] = "";
	int rc, lfd = -1;

	fprintf(stderr, "case: %s, random workload%s%s%s%s\n", method, shm ? ", on tmpfs" : "",
	        no_inline ? ", inline copies off" : "", c->loop ? ", on a loop device" : "",
	        c->huge_dir ? ", huge-page guest RAM" : "");
	if (shm && access("/dev/shm", W_OK) != 0) {
		fprintf(stderr, "  SKIP: no /dev/shm\n");
		return VH_TEST_SKIP;
	}
	rc = target_start(&t);
	if (rc != 0) {
		return rc;
	}
	if (shm) {
		snprintf(path, sizeof(path), "/dev/shm/vhostd-test-file.%d.img", (int)getpid());
	} else {
		snprintf(path, sizeof(path), "%s/disk.img", t.d.dir);
	}
	rc = -1;
	if (make_file(path, DISK_MB << 20) < 0) {
		goto out;
	}
	if (c->loop) {
		lfd = loop_attach(path, dev, sizeof(dev));
		if (lfd < 0) {
			fprintf(stderr, "  SKIP: no loop device (%s)\n", strerror(errno));
			rc = VH_TEST_SKIP;
			goto out;
		}
	}
	if (disk_create(&t, method, c->loop ? dev : path, !no_inline) < 0 ||
	    check_mode(&t, module, engine, shm && !no_inline) < 0 ||
	    (c->loop && check_direct(&t, module) < 0)) {
		goto out;
	}
	if (vh_test_fe_open(&t, &mo, &fo, &mem, &fe) < 0 || vh_fe_start(fe, 0, 0) < 0 ||
	    io_engine_init(&e, fe, mem, 2, 16, g_seed) < 0) {
		fprintf(stderr, "FAIL: front-end setup\n");
		goto out;
	}
	e.serial = t.name;
	if (io_engine_run(&e, ops_per_case(), true, TIMEOUT_MS) == 0 && vh_fe_stop(fe) == 0 &&
	    check_file(&e, c->loop ? dev : path) == 0) {
		rc = 0;
	}
	io_engine_fini(&e);
out:
	vh_test_fe_close(mem, fe);
	if (vh_target_stop(&t) < 0) {
		rc = -1;
	}
	if (lfd >= 0) {
		close(lfd);
	}
	if (shm) {
		unlink(path);
	}
	return rc;
}

struct sync_io {
	struct vh_fe *fe;
	struct vh_fe_mem *mem;
	uint64_t buf;
};

static int
sio(struct sync_io *s, uint32_t type, uint64_t sector, uint32_t len)
{
	struct vh_fe_iov iov = {s->buf, len};
	struct vh_fe_req r = {.type = type, .sector = sector, .iov = &iov, .niov = 1};
	int rc = io_sync(s->fe, 0, &r, TIMEOUT_MS);

	if (rc < 0) {
		fprintf(stderr, "request type %u: %s\n", type, strerror(-rc));
		return -1;
	}
	return r.status;
}

static int
expect_rpc_error(struct vh_target *t, const char *method, json_t *params, const char *needle)
{
	char msg[256] = "";
	int code = 0;
	int rc = vh_rpc_call(t->d.rpc_path, method, params, NULL, &code, msg, sizeof(msg),
	                     TIMEOUT_MS);

	T_CHECK(rc == -EREMOTEIO, "%s succeeded (rc %d)", method, rc);
	T_CHECK(code == -32602, "%s: code %d, expected -32602 (%s)", method, code, msg);
	T_CHECK(strstr(msg, needle) != NULL, "%s: '%s' does not mention '%s'", method, msg, needle);
	fprintf(stderr, "  %s: %s\n", method, msg);
	return 0;
}

static int
errors_body(struct vh_target *t, const char *path)
{
	struct vh_fe_mem_opts mo = {.size = 16 << 20};
	struct vh_fe_opts fo = {.num_queues = 1};
	struct vh_fe_mem *mem = NULL;
	struct vh_fe *fe = NULL;
	struct sync_io s;
	char missing[200];
	uint8_t cfg[8];
	uint64_t cap;
	int rc = -1, st;

	snprintf(missing, sizeof(missing), "%s/missing.img", t->d.dir);
	T_OK(expect_rpc_error(t, "bdev_uring_create",
	                      json_pack("{s:s, s:s}", "name", "e0", "filename", missing), missing));
	T_OK(expect_rpc_error(t, "bdev_aio_create",
	                      json_pack("{s:s, s:s}", "name", "e0", "filename", t->d.dir),
	                      "directory"));
	T_OK(expect_rpc_error(t, "bdev_uring_delete", json_pack("{s:s}", "name", "f0"), "in use"));
	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	s.fe = fe;
	s.mem = mem;
	s.buf = vh_fe_mem_alloc(mem, 65536, 4096);
	if (vh_fe_start(fe, 0, 0) < 0 || s.buf == UINT64_MAX) {
		fprintf(stderr, "FAIL: front-end start\n");
		goto out;
	}
	/* Grow the file, rescan: the front-end hears CONFIG_CHANGE and reads the new size. */
	if (truncate(path, (DISK_MB * 2) << 20) < 0 ||
	    vh_target_rpc(t, "bdev_uring_rescan", json_pack("{s:s}", "name", "f0"), NULL) < 0) {
		fprintf(stderr, "FAIL: grow + rescan\n");
		goto out;
	}
	st = vh_fe_backend_handle(fe, TIMEOUT_MS);
	if (st != VHOST_USER_BACKEND_CONFIG_CHANGE_MSG) {
		fprintf(stderr, "FAIL: expected CONFIG_CHANGE_MSG, got %d\n", st);
		goto out;
	}
	if (vh_fe_get_config(fe, 8, cfg, sizeof(cfg)) < 0) {
		fprintf(stderr, "FAIL: GET_CONFIG\n");
		goto out;
	}
	memcpy(&cap, cfg, sizeof(cap));
	if (cap != ((uint64_t)DISK_MB * 2 << 20) / 512) {
		fprintf(stderr, "FAIL: capacity %" PRIu64 " after resize\n", cap);
		goto out;
	}
	fprintf(stderr, "  resize: CONFIG_CHANGE sent, capacity %" PRIu64 " sectors\n", cap);
	/* Truncated under us: reads past the new end fail, the daemon carries on. */
	if (truncate(path, 1 << 20) < 0) {
		goto out;
	}
	st = sio(&s, VIRTIO_BLK_T_IN, (8 << 20) / 512, 4096);
	if (st != VIRTIO_BLK_S_IOERR || !vh_daemon_alive(&t->d)) {
		fprintf(stderr, "FAIL: read past a truncated end: status %d\n", st);
		goto out;
	}
	if (sio(&s, VIRTIO_BLK_T_IN, 0, 4096) != VIRTIO_BLK_S_OK) {
		fprintf(stderr, "FAIL: read inside the truncated file\n");
		goto out;
	}
	if (truncate(path, (DISK_MB * 2) << 20) < 0 ||
	    sio(&s, VIRTIO_BLK_T_IN, (8 << 20) / 512, 4096) != VIRTIO_BLK_S_OK) {
		fprintf(stderr, "FAIL: read after the size came back\n");
		goto out;
	}
	fprintf(stderr, "  truncated file: IOERR past the end, daemon alive\n");
	rc = vh_fe_stop(fe) == 0 ? 0 : -1;
out:
	vh_test_fe_close(mem, fe);
	return rc;
}

static int
case_errors(void)
{
	struct vh_target t;
	char path[160];
	int rc;

	fprintf(stderr, "case: RPC errors, resize, truncation\n");
	rc = target_start(&t);
	if (rc != 0) {
		return rc;
	}
	snprintf(path, sizeof(path), "%s/disk.img", t.d.dir);
	rc = -1;
	if (make_file(path, DISK_MB << 20) == 0 &&
	    disk_create(&t, "bdev_uring_create", path, true) == 0) {
		rc = errors_body(&t, path);
	}
	if (vh_target_stop(&t) < 0) {
		rc = -1;
	}
	return rc;
}

static int
fill_file(const char *path, uint64_t size)
{
	static uint8_t chunk[65536];
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);

	if (fd < 0) {
		return -errno;
	}
	memset(chunk, 0x33, sizeof(chunk));
	for (uint64_t off = 0; off < size; off += sizeof(chunk)) {
		if (write(fd, chunk, sizeof(chunk)) != (ssize_t)sizeof(chunk)) {
			close(fd);
			return -ENOSPC;
		}
	}
	close(fd);
	return 0;
}

/* Write [0, bytes) in 256 KiB requests; returns how many failed with IOERR, or -1. */
static int
write_range(struct sync_io *s, uint64_t bytes, uint8_t tag)
{
	const uint32_t chunk = 256 << 10;
	int ioerr = 0;

	for (uint64_t off = 0; off < bytes; off += chunk) {
		int st;

		memset(vh_fe_gpa_to_ptr(s->mem, s->buf, chunk), tag ^ (uint8_t)(off >> 18), chunk);
		st = sio(s, VIRTIO_BLK_T_OUT, off / 512, chunk);
		if (st == VIRTIO_BLK_S_IOERR) {
			ioerr++;
		} else if (st != VIRTIO_BLK_S_OK) {
			return -1;
		}
	}
	return ioerr;
}

static int
enospc_body(struct vh_target *t, const char *filler)
{
	struct vh_fe_mem_opts mo = {.size = 16 << 20};
	struct vh_fe_opts fo = {.num_queues = 1};
	struct vh_fe_mem *mem = NULL;
	struct vh_fe *fe = NULL;
	struct sync_io s;
	int rc = -1, n;

	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	s.fe = fe;
	s.mem = mem;
	s.buf = vh_fe_mem_alloc(mem, 256 << 10, 4096);
	if (vh_fe_start(fe, 0, 0) < 0 || s.buf == UINT64_MAX) {
		goto out;
	}
	/* 8 MiB filesystem, 6 MiB filler: 4 MiB of writes cannot all fit. */
	n = write_range(&s, 4 << 20, 0x11);
	if (n <= 0 || !vh_daemon_alive(&t->d)) {
		fprintf(stderr, "FAIL: expected IOERR on a full filesystem, got %d failures\n", n);
		goto out;
	}
	fprintf(stderr, "  full filesystem: %d of 16 writes failed with IOERR, daemon alive\n", n);
	if (unlink(filler) < 0) {
		goto out;
	}
	n = write_range(&s, 4 << 20, 0x22);
	if (n != 0) {
		fprintf(stderr, "FAIL: %d writes still fail after space was freed\n", n);
		goto out;
	}
	/* And the data is there. */
	for (uint64_t off = 0; off < (4 << 20); off += 256 << 10) {
		uint8_t *p = vh_fe_gpa_to_ptr(mem, s.buf, 256 << 10);

		if (sio(&s, VIRTIO_BLK_T_IN, off / 512, 256 << 10) != VIRTIO_BLK_S_OK ||
		    p[0] != (uint8_t)(0x22 ^ (uint8_t)(off >> 18)) || p[(256 << 10) - 1] != p[0]) {
			fprintf(stderr, "FAIL: read back at %" PRIu64 "\n", off);
			goto out;
		}
	}
	fprintf(stderr, "  after freeing space: writes succeed and read back\n");
	rc = vh_fe_stop(fe) == 0 ? 0 : -1;
out:
	vh_test_fe_close(mem, fe);
	return rc;
}

static int
case_enospc(void)
{
	struct vh_target t;
	char mnt[160], path[200], filler[200];
	int rc;

	fprintf(stderr, "case: ENOSPC on an 8 MiB tmpfs\n");
	rc = target_start(&t);
	if (rc != 0) {
		return rc;
	}
	snprintf(mnt, sizeof(mnt), "%s/mnt", t.d.dir);
	snprintf(path, sizeof(path), "%s/disk.img", mnt);
	snprintf(filler, sizeof(filler), "%s/filler", mnt);
	if (mkdir(mnt, 0700) < 0 ||
	    mount("vhostd-test", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=8m,mode=0700") < 0) {
		fprintf(stderr, "  SKIP: cannot mount a tmpfs (%s)\n", strerror(errno));
		rmdir(mnt);
		vh_target_stop(&t);
		return VH_TEST_SKIP;
	}
	rc = -1;
	if (fill_file(filler, 6 << 20) == 0 && make_file(path, 16 << 20) == 0 &&
	    disk_create(&t, "bdev_uring_create", path, true) == 0) {
		rc = enospc_body(&t, filler);
	}
	if (vh_target_stop(&t) < 0) {
		rc = -1;
	}
	/* The daemon has exited (it held the file open), so the mount is not busy. */
	if (umount2(mnt, MNT_DETACH) < 0) {
		fprintf(stderr, "umount %s: %s\n", mnt, strerror(errno));
	}
	rmdir(mnt);
	return rc;
}

#define HUGE_NR   "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
#define HUGE_FREE "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"

/* The number in sysfs file @path, or -1. */
static long
sysfs_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f != NULL) {
		if (fscanf(f, "%ld", &v) != 1) {
			v = -1;
		}
		fclose(f);
	}
	return v;
}

/* Set the number of reserved 2 MiB pages. False if it cannot be written. */
static bool
huge_pages_set(long total)
{
	FILE *f = fopen(HUGE_NR, "w");

	if (f == NULL) {
		return false;
	}
	fprintf(f, "%ld\n", total);
	fclose(f);
	return true;
}

/* Free 2 MiB pages for @need of them: reserve more when root. False when there cannot be. */
static bool
huge_pages_ready(unsigned need, long *restore)
{
	long total = sysfs_long(HUGE_NR), free_pages = sysfs_long(HUGE_FREE);

	*restore = -1;
	if (total < 0 || free_pages < 0) {
		return false;
	}
	if (free_pages >= (long)need) {
		return true;
	}
	if (!huge_pages_set(total + (long)need - free_pages)) {
		return false;
	}
	*restore = total;
	return sysfs_long(HUGE_FREE) >= (long)need;
}

static void
huge_pages_restore(long total)
{
	if (total >= 0) {
		huge_pages_set(total);
	}
}

/*
 * uring on an O_DIRECT file with guest RAM on hugetlbfs: the random workload (odd layouts, which
 * mostly take the buffered twin), then aligned one-buffer writes and reads, which must go
 * through io_uring fixed buffers and read back what was written.
 */
static int
fixed_buffers_run(void)
{
	struct vh_fe_mem_opts mo = {
	        .size = 32 << 20, .nregions = 2, .hugetlbfs_dir = "/dev/hugepages"};
	struct vh_fe_opts fo = {.num_queues = 1};
	struct vh_fe_mem *mem = NULL;
	struct vh_fe *fe = NULL;
	struct vh_target t;
	struct sync_io s;
	char path[160];
	uint8_t *p;
	int rc;

	rc = case_io(&(struct io_case){"bdev_uring_create", "uring", "uring",
	                               .huge_dir = "/dev/hugepages"});
	if (rc != 0) {
		return rc;
	}
	fprintf(stderr, "case: aligned requests on huge-page guest RAM\n");
	rc = target_start(&t);
	if (rc != 0) {
		return rc;
	}
	snprintf(path, sizeof(path), "%s/disk.img", t.d.dir);
	rc = -1;
	if (make_file(path, DISK_MB << 20) < 0 ||
	    disk_create(&t, "bdev_uring_create", path, true) < 0 ||
	    vh_test_fe_open(&t, &mo, &fo, &mem, &fe) < 0) {
		goto out;
	}
	s.fe = fe;
	s.mem = mem;
	s.buf = vh_fe_mem_alloc(mem, 65536, 4096);
	if (vh_fe_start(fe, 0, 0) < 0 || s.buf == UINT64_MAX) {
		goto out;
	}
	p = vh_fe_gpa_to_ptr(mem, s.buf, 65536);
	for (unsigned i = 0; i < 64; i++) {
		uint32_t len = 4096u << (i % 5);
		uint64_t sector = (uint64_t)i * 256;

		for (uint32_t j = 0; j < len; j++) {
			p[j] = (uint8_t)(i * 7 + j * 13);
		}
		if (sio(&s, VIRTIO_BLK_T_OUT, sector, len) != VIRTIO_BLK_S_OK) {
			fprintf(stderr, "FAIL: write %u\n", i);
			goto out;
		}
		memset(p, 0, len);
		if (sio(&s, VIRTIO_BLK_T_IN, sector, len) != VIRTIO_BLK_S_OK) {
			fprintf(stderr, "FAIL: read %u\n", i);
			goto out;
		}
		for (uint32_t j = 0; j < len; j++) {
			if (p[j] != (uint8_t)(i * 7 + j * 13)) {
				fprintf(stderr, "FAIL: request %u: byte %u differs\n", i, j);
				goto out;
			}
		}
	}
	fprintf(stderr, "  64 aligned writes and reads (4-64 KiB) read back\n");
	if (vh_fe_stop(fe) == 0 && check_mode(&t, "uring", "uring", false) == 0 &&
	    check_fixed(&t, "uring") == 0) {
		rc = 0;
	}
out:
	vh_test_fe_close(mem, fe);
	if (vh_target_stop(&t) < 0) {
		rc = -1;
	}
	return rc;
}

static int
case_fixed_buffers(void)
{
	struct statfs sfs;
	long restore;
	int rc;

	if (statfs("/dev/hugepages", &sfs) != 0 || sfs.f_type != HUGETLBFS_MAGIC) {
		fprintf(stderr, "case: fixed buffers\n  SKIP: no hugetlbfs at /dev/hugepages\n");
		return VH_TEST_SKIP;
	}
	if (!huge_pages_ready(24, &restore)) {
		fprintf(stderr, "case: fixed buffers\n  SKIP: no free 2 MiB pages\n");
		huge_pages_restore(restore);
		return VH_TEST_SKIP;
	}
	rc = fixed_buffers_run();
	huge_pages_restore(restore);
	return rc;
}

int
main(void)
{
	int rc, fails = 0, skips = 0, runs = 0;
	int (*cases[])(void) = {case_errors, case_enospc, case_fixed_buffers};
	/* aio on a file; both engines on a loop device; tmpfs (inline copies, and off). */
	const struct io_case more[] = {
	        {"bdev_aio_create", "aio", "aio"},
	        {"bdev_uring_create", "uring", "uring", .loop = true},
	        {"bdev_aio_create", "aio", "aio", .loop = true},
	        {"bdev_uring_create", "uring", "uring", .shm = true},
	        {"bdev_aio_create", "aio", "aio", .shm = true},
	        {"bdev_uring_create", "uring", "uring", .shm = true, .no_inline = true},
	};

	if (vh_test_qsd()) {
		fprintf(stderr, "SKIP: vhostd-only test\n");
		return VH_TEST_SKIP;
	}
	g_seed = vh_test_seed("test_file");
	rc = case_io(&(struct io_case){"bdev_uring_create", "uring", "uring"});
	if (rc == VH_TEST_SKIP) {
		fprintf(stderr, "SKIP: $VHOSTD not set or not executable\n");
		return VH_TEST_SKIP;
	}
	fails += rc != 0;
	runs++;
	for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++) {
		rc = case_io(&more[i]);
		if (rc == VH_TEST_SKIP) {
			skips++;
			continue;
		}
		fails += rc != 0;
		runs++;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rc = cases[i]();
		if (rc == VH_TEST_SKIP) {
			skips++;
			continue;
		}
		fails += rc != 0;
		runs++;
	}
	fprintf(stderr, "%d case(s) run, %d failed, %d skipped\n", runs, fails, skips);
	return fails ? VH_TEST_FAIL : VH_TEST_PASS;
}
