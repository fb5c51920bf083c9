/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/bdev/ram.c: read/write/discard/write-zeroes round trips through a channel on a reactor,
 * the back-end's own range check, creation parameters and the save_config entry; and RAM disks
 * on huge pages, which must never SIGBUS: a discard keeps the disk's pages, a disk larger than
 * the pool falls back to a plain memfd, and a disk handed back by the supervisor is mapped only
 * once every page of it is there. The huge-page cases reserve 2 MiB pages through sysfs (root),
 * restore the old count afterwards, and skip with a message when none can be had.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <linux/memfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "bdev_test.h"
#include "core/handover.h"

#define BLOCKS 512 /* x 512 = 256 KiB */
#define DISK   (BLOCKS * 512u)

static struct vh_bdev_channel *g_ch;

static void
get_ch(void *arg)
{
	(void)arg;
	g_ch = vh_bdev_channel_get(vh_bdev_find("ram0"));
}

static void
put_ch(void *arg)
{
	(void)arg;
	vh_bdev_channel_put(g_ch);
	g_ch = NULL;
}

static int
group_setup(void **state)
{
	(void)state;
	if (bt_start_reactor() != 0 || vh_bdev_ram_create("ram0", BLOCKS, 512) != 0) {
		return -1;
	}
	if (!bt_on_reactor(get_ch, NULL) || g_ch == NULL) {
		return -1;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	bt_on_reactor(put_ch, NULL);
	vh_reactors_stop();
	vh_bdev_fini();
	return 0;
}

static struct bt_io g_io;

static void
submit_msg(void *arg)
{
	(void)arg;
	bt_submit(g_ch, &g_io);
}

static void
noop(void *arg)
{
	(void)arg;
}

/* Run one I/O to completion. Returns the submit rc, or the completion status. */
static int
do_io(uint8_t type, uint64_t off, uint64_t len, struct iovec *iov, int iovcnt)
{
	memset(&g_io, 0, sizeof(g_io));
	g_io.io.type = type;
	g_io.io.offset = off;
	g_io.io.length = len;
	g_io.io.iov = iov;
	g_io.io.iovcnt = iovcnt;
	assert_true(bt_on_reactor(submit_msg, NULL));
	if (g_io.submit_rc != 0) {
		/* Refused: the callback must never run, not even on a later poll. */
		assert_true(bt_on_reactor(noop, NULL));
		assert_true(bt_on_reactor(noop, NULL));
		assert_int_equal(LOAD(g_io.cb_count), 0);
		return g_io.submit_rc;
	}
	assert_true(WAIT_UNTIL(LOAD(g_io.cb_count) == 1, 5000));
	assert_false(g_io.cb_inside_submit);
	assert_false(g_io.cb_on_other_thread);
	return g_io.status;
}

static int
rw(uint8_t type, uint64_t off, uint8_t *buf, uint64_t len)
{
	/* Three uneven iovecs over the buffer. */
	struct iovec iov[3];
	uint64_t a = len / 4, b = len / 2;

	iov[0] = (struct iovec){buf, a};
	iov[1] = (struct iovec){buf + a, b};
	iov[2] = (struct iovec){buf + a + b, len - a - b};
	return do_io(type, off, len, iov, 3);
}

static void
fill(uint8_t *p, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++) {
		p[i] = (uint8_t)(seed ^ (i * 31) ^ (i >> 9));
	}
}

static bool
all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] != 0) {
			return false;
		}
	}
	return true;
}

static void
test_read_write(void **state)
{
	uint8_t *w = malloc(DISK), *r = malloc(DISK);

	(void)state;
	/* Fresh disk: zeroes. */
	memset(r, 0xff, DISK);
	assert_int_equal(rw(VH_BDEV_IO_READ, 0, r, DISK), 0);
	assert_true(all_zero(r, DISK));

	fill(w, DISK, 1);
	assert_int_equal(rw(VH_BDEV_IO_WRITE, 0, w, DISK), 0);
	memset(r, 0, DISK);
	assert_int_equal(rw(VH_BDEV_IO_READ, 0, r, DISK), 0);
	assert_memory_equal(r, w, DISK);

	/* A small write in the middle, read back with some context. */
	fill(w + 4096, 1024, 77);
	assert_int_equal(rw(VH_BDEV_IO_WRITE, 4096, w + 4096, 1024), 0);
	assert_int_equal(rw(VH_BDEV_IO_READ, 3584, r, 2048), 0);
	assert_memory_equal(r, w + 3584, 2048);

	/* The last block. */
	fill(w, 512, 5);
	assert_int_equal(rw(VH_BDEV_IO_WRITE, DISK - 512, w, 512), 0);
	assert_int_equal(rw(VH_BDEV_IO_READ, DISK - 512, r, 512), 0);
	assert_memory_equal(r, w, 512);
	assert_int_equal(do_io(VH_BDEV_IO_FLUSH, 0, 0, NULL, 0), 0);
	free(w);
	free(r);
}

/*
 * Writes stream into the disk 64 bytes at a time from a 16-byte aligned destination, and copy
 * the unaligned head, the tail and short pieces; every split of the data must land intact and
 * touch nothing around it.
 */
static void
test_write_splits(void **state)
{
	static const size_t layouts[][6] = {
	        {4096},                    /* one piece, the common case */
	        {64, 4032},                /* aligned pieces */
	        {1, 511, 3584},            /* unaligned destinations from the second piece on */
	        {300, 17, 255, 256, 3268}, /* short pieces around the streaming threshold */
	        {4095, 1},                 /* a tail of one byte */
	        {100, 3000, 63, 933},      /* unaligned everywhere */
	};
	uint8_t *src = malloc(8192 + 1), *r = malloc(8192), *back = malloc(8192);

	(void)state;
	for (size_t l = 0; l < sizeof(layouts) / sizeof(layouts[0]); l++) {
		for (size_t shift = 0; shift < 2; shift++) {
			/* shift 1: every source piece starts one byte off its alignment. */
			uint8_t *s = src + shift;
			struct iovec iov[6];
			int n = 0;
			size_t at = 0;

			fill(back, 8192, (uint8_t)(200 + l));
			assert_int_equal(rw(VH_BDEV_IO_WRITE, 8192, back, 8192), 0);
			fill(s, 4096, (uint8_t)(l * 2 + shift + 1));
			for (; n < 6 && layouts[l][n] != 0; n++) {
				iov[n] = (struct iovec){s + at, layouts[l][n]};
				at += layouts[l][n];
			}
			assert_int_equal(at, 4096);
			assert_int_equal(do_io(VH_BDEV_IO_WRITE, 8192 + 2048, 4096, iov, n), 0);
			assert_int_equal(rw(VH_BDEV_IO_READ, 8192, r, 8192), 0);
			assert_memory_equal(r, back, 2048);
			assert_memory_equal(r + 2048, s, 4096);
			assert_memory_equal(r + 6144, back + 6144, 2048);
		}
	}
	free(src);
	free(r);
	free(back);
}

static void
test_out_of_range_refused(void **state)
{
	uint8_t buf[1024];
	struct iovec iov = {buf, sizeof(buf)};

	(void)state;
	/* A consumer bug must not become a host overflow: refused in submit, no callback. */
	assert_int_equal(do_io(VH_BDEV_IO_READ, DISK, 512, &iov, 1), -EINVAL);
	assert_int_equal(do_io(VH_BDEV_IO_WRITE, DISK - 512, 1024, &iov, 1), -EINVAL);
	assert_int_equal(do_io(VH_BDEV_IO_READ, UINT64_MAX - 511, 1024, &iov, 1), -EINVAL);
	assert_int_equal(do_io(VH_BDEV_IO_DISCARD, 512, UINT64_MAX, NULL, 0), -EINVAL);
	assert_int_equal(do_io(VH_BDEV_IO_WRITE_ZEROES, DISK + 512, 0, NULL, 0), -EINVAL);
	/* An unknown type. */
	assert_int_equal(do_io(VH_BDEV_IO_NTYPES, 0, 512, &iov, 1), -ENOTSUP);
	/* Exactly the end is fine. */
	assert_int_equal(do_io(VH_BDEV_IO_READ, DISK - 1024, 1024, &iov, 1), 0);
}

/*
 * Reads are queued in submit() and copied later (a look-ahead: ram.c). Many reads submitted in
 * one go, more than the queue holds, and a read submitted from a read's callback (while the
 * poll drains the queue) must each complete once, never inside submit, with their own data.
 */
#define BURST 24 /* > the back-end's queue of 8 */

static struct bt_io g_burst[BURST + 1];
static struct iovec g_burst_iov[BURST + 1];
static uint8_t g_burst_buf[BURST + 1][4096];

static void
burst_cb_resubmit(struct vh_bdev_io *io, int status)
{
	bt_io_cb(io, status);
	/* From inside the poll that copies the queue: the extra read waits for the next one. */
	bt_submit(g_ch, &g_burst[BURST]);
}

static void
burst_msg(void *arg)
{
	(void)arg;
	for (int i = 0; i < BURST; i++) {
		bt_submit(g_ch, &g_burst[i]);
	}
	/* Still queued (the last ones are copied by the poll): its callback can change. */
	g_burst[BURST - 1].io.cb = burst_cb_resubmit;
}

static void
test_read_burst(void **state)
{
	uint8_t *w = malloc(DISK);

	(void)state;
	fill(w, DISK, 41);
	assert_int_equal(rw(VH_BDEV_IO_WRITE, 0, w, DISK), 0);
	memset(g_burst, 0, sizeof(g_burst));
	memset(g_burst_buf, 0xee, sizeof(g_burst_buf));
	for (int i = 0; i <= BURST; i++) {
		/* Blocks in a scattered order, every read its own 4 KiB of the disk. */
		uint64_t blk = (uint64_t)(i * 37) % (DISK / 4096);

		g_burst_iov[i] = (struct iovec){g_burst_buf[i], 4096};
		g_burst[i].io.type = VH_BDEV_IO_READ;
		g_burst[i].io.offset = blk * 4096;
		g_burst[i].io.length = 4096;
		g_burst[i].io.iov = &g_burst_iov[i];
		g_burst[i].io.iovcnt = 1;
		g_burst[i].seq = i;
	}
	assert_true(bt_on_reactor(burst_msg, NULL));
	for (int i = 0; i <= BURST; i++) {
		assert_true(WAIT_UNTIL(LOAD(g_burst[i].cb_count) >= 1, 5000));
	}
	/* A few more iterations: a second callback would show up here. */
	assert_true(bt_on_reactor(noop, NULL));
	assert_true(bt_on_reactor(noop, NULL));
	for (int i = 0; i <= BURST; i++) {
		assert_int_equal(g_burst[i].submit_rc, 0);
		assert_int_equal(LOAD(g_burst[i].cb_count), 1);
		assert_int_equal(g_burst[i].status, 0);
		assert_false(g_burst[i].cb_inside_submit);
		assert_false(g_burst[i].cb_on_other_thread);
		if (memcmp(g_burst_buf[i], w + g_burst[i].io.offset, 4096) != 0) {
			fail_msg("read %d (offset %" PRIu64 ") returned other data", i,
			         g_burst[i].io.offset);
		}
	}
	free(w);
}

static void
test_discard_and_write_zeroes(void **state)
{
	uint8_t *w = malloc(DISK), *r = malloc(DISK), *expect = malloc(DISK);

	(void)state;
	fill(w, DISK, 9);
	assert_int_equal(rw(VH_BDEV_IO_WRITE, 0, w, DISK), 0);
	memcpy(expect, w, DISK);

	/* Small, unaligned to pages: cleared by hand. */
	assert_int_equal(do_io(VH_BDEV_IO_DISCARD, 1536, 1024, NULL, 0), 0);
	memset(expect + 1536, 0, 1024);
	/* Large with unaligned edges: the middle is punched out of the memfd. */
	assert_int_equal(do_io(VH_BDEV_IO_WRITE_ZEROES, 8192 + 512, 20 * 4096 + 1024, NULL, 0), 0);
	memset(expect + 8192 + 512, 0, 20 * 4096 + 1024);
	/* Large and page aligned. */
	assert_int_equal(do_io(VH_BDEV_IO_DISCARD, 128 * 1024, 64 * 1024, NULL, 0), 0);
	memset(expect + 128 * 1024, 0, 64 * 1024);
	/* Zero length: nothing happens. */
	assert_int_equal(do_io(VH_BDEV_IO_WRITE_ZEROES, 4096, 0, NULL, 0), 0);

	assert_int_equal(rw(VH_BDEV_IO_READ, 0, r, DISK), 0);
	for (size_t i = 0; i < DISK; i += 512) {
		if (memcmp(r + i, expect + i, 512) != 0) {
			fail_msg("block at byte %zu differs after discard", i);
		}
	}

	/* Punched pages are writable again. */
	fill(w, 4096, 3);
	assert_int_equal(rw(VH_BDEV_IO_WRITE, 12288, w, 4096), 0);
	assert_int_equal(rw(VH_BDEV_IO_READ, 12288, r, 4096), 0);
	assert_memory_equal(r, w, 4096);
	free(w);
	free(r);
	free(expect);
}

static void
test_create_params(void **state)
{
	struct vh_bdev *b;
	json_t *j;

	(void)state;
	assert_int_equal(vh_bdev_ram_create("x", 0, 512), -EINVAL);
	assert_int_equal(vh_bdev_ram_create("x", 8, 256), -EINVAL);
	assert_int_equal(vh_bdev_ram_create("x", 8, 768), -EINVAL);
	assert_int_equal(vh_bdev_ram_create("x", 8, 131072), -EINVAL);
	assert_int_equal(vh_bdev_ram_create("x", UINT64_MAX / 512, 512), -EINVAL);
	assert_int_equal(vh_bdev_ram_create("a/b", 8, 512), -EINVAL);
	assert_int_equal(vh_bdev_ram_create("ram0", 8, 512), -EEXIST);
	assert_null(vh_bdev_find("x"));

	b = vh_bdev_find("ram0");
	assert_string_equal(vh_bdev_module_name(b), "malloc");
	assert_int_equal(vh_bdev_size(b), DISK);
	j = b->module->config_json(b);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "method")), "bdev_malloc_create");
	{
		json_t *p = json_object_get(j, "params");

		assert_string_equal(json_string_value(json_object_get(p, "name")), "ram0");
		assert_int_equal(json_integer_value(json_object_get(p, "num_blocks")), BLOCKS);
		assert_int_equal(json_integer_value(json_object_get(p, "block_size")), 512);
		assert_string_equal(json_string_value(json_object_get(p, "uuid")), vh_bdev_uuid(b));
	}
	json_decref(j);

	/* Create and delete a second disk (its memory is released: ASan checks). */
	assert_int_equal(vh_bdev_ram_create("tmp", 64, 4096), 0);
	assert_int_equal(vh_bdev_delete("tmp", "null"), -EINVAL);
	assert_int_equal(vh_bdev_delete("tmp", "malloc"), 0);
}

/* --- RAM disks on huge pages --- */

#define HUGE_SYS  "/sys/kernel/mm/hugepages/hugepages-2048kB/"
#define HUGE_PAGE (2ull << 20)
#define HUGE_DISK (64ull << 20) /* 32 pages */

static long g_huge_restore = -1; /* nr_hugepages before the test, or -1 */

static long
sys_long(const char *name)
{
	char path[128];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), HUGE_SYS "%s", name);
	f = fopen(path, "r");
	if (f != NULL) {
		if (fscanf(f, "%ld", &v) != 1) {
			v = -1;
		}
		fclose(f);
	}
	return v;
}

static bool
set_nr_huge(long n)
{
	FILE *f = fopen(HUGE_SYS "nr_hugepages", "w");
	bool ok;

	if (f == NULL) {
		return false;
	}
	ok = fprintf(f, "%ld\n", n) > 0;
	return fclose(f) == 0 && ok;
}

/* Free 2 MiB pages nobody has reserved. */
static long
huge_avail(void)
{
	return sys_long("free_hugepages") - sys_long("resv_hugepages");
}

/* At least @need unreserved free 2 MiB pages, reserving more through sysfs; else skip. */
static void
huge_need(long need)
{
	long nr = sys_long("nr_hugepages"), avail = huge_avail();

	if (nr < 0 || avail < 0) {
		fprintf(stderr, "SKIP: no 2 MiB huge pages on this kernel\n");
		skip();
	}
	if (avail < need) {
		if (g_huge_restore < 0) {
			g_huge_restore = nr;
		}
		set_nr_huge(nr + need - avail);
	}
	if (huge_avail() < need) {
		fprintf(stderr, "SKIP: cannot reserve %ld free 2 MiB pages (have %ld)\n", need,
		        huge_avail());
		skip();
	}
}

/*
 * Take every free 2 MiB page into this process, as other tenants of the host would: each page
 * is its own populated mapping, so the loop stops exactly when the pool is dry. Returns the
 * number taken; huge_release() gives them back.
 */
#define HOG_MAX 8192
static void *g_hog[HOG_MAX];
static unsigned g_nhog;

static unsigned
huge_exhaust(void)
{
	while (g_nhog < HOG_MAX) {
		void *p = mmap(NULL, HUGE_PAGE, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);

		if (p == MAP_FAILED) {
			break;
		}
		g_hog[g_nhog++] = p;
	}
	return g_nhog;
}

static void
huge_release(void)
{
	while (g_nhog > 0) {
		munmap(g_hog[--g_nhog], HUGE_PAGE);
	}
}

static int
huge_teardown(void **state)
{
	(void)state;
	huge_release();
	if (g_huge_restore >= 0) {
		set_nr_huge(g_huge_restore);
		g_huge_restore = -1;
	}
	return 0;
}

/*
 * The RAM disk @name's memfd in this process (not a new descriptor), or -1; *@count (if not
 * NULL) gets how many descriptors of that name are open.
 */
static int
disk_memfd_n(const char *name, int *count)
{
	char want[96], link[PATH_MAX], path[300];
	struct dirent *de;
	DIR *dir = opendir("/proc/self/fd");
	int fd = -1, n = 0;

	snprintf(want, sizeof(want), "/memfd:%s (deleted)", name);
	while (dir != NULL && (de = readdir(dir)) != NULL) {
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len > 0) {
			link[len] = '\0';
			if (strcmp(link, want) == 0) {
				fd = atoi(de->d_name);
				n++;
			}
		}
	}
	if (dir != NULL) {
		closedir(dir);
	}
	if (count != NULL) {
		*count = n;
	}
	return fd;
}

static int
disk_memfd(const char *name)
{
	return disk_memfd_n(name, NULL);
}

static bool
on_hugetlbfs(int fd)
{
	struct statfs sfs;

	return fstatfs(fd, &sfs) == 0 && sfs.f_type == HUGETLBFS_MAGIC;
}

/* Bytes of memory the file @fd holds (st_blocks; hugetlbfs counts whole huge pages). */
static uint64_t
file_bytes(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

/* "huge_pages" of bdev_get_bdevs' driver_specific.malloc for @b. */
static bool
info_huge(struct vh_bdev *b)
{
	json_t *ds = json_object();
	bool huge;

	assert_non_null(b->module->info_json);
	b->module->info_json(b, ds);
	huge = json_is_true(json_object_get(json_object_get(ds, "malloc"), "huge_pages"));
	json_decref(ds);
	return huge;
}

static struct vh_bdev_channel *g_main_ch;
static struct vh_bdev *g_other;

static void
get_other_ch(void *arg)
{
	(void)arg;
	g_ch = vh_bdev_channel_get(g_other);
}

/* Point do_io() at bdev @name (NULL: back at ram0). */
static void
use_disk(const char *name)
{
	if (name != NULL) {
		g_main_ch = g_ch;
		g_other = vh_bdev_find(name);
		assert_non_null(g_other);
		assert_true(bt_on_reactor(get_other_ch, NULL));
		assert_non_null(g_ch);
	} else {
		assert_true(bt_on_reactor(put_ch, NULL));
		g_ch = g_main_ch;
	}
}

/* Read [off, off + len) of the current disk and check it against @expect. */
static void
check_range(uint64_t off, uint64_t len, const uint8_t *expect)
{
	uint8_t *r = malloc(len);

	assert_non_null(r);
	memset(r, 0xee, len);
	assert_int_equal(rw(VH_BDEV_IO_READ, off, r, len), 0);
	for (uint64_t i = 0; i < len; i += 512) {
		if (memcmp(r + i, expect + i, VH_MIN(512, len - i)) != 0) {
			fail_msg("block at byte %llu differs", (unsigned long long)(off + i));
		}
	}
	free(r);
}

/*
 * The review's finding: a discard punched the disk's huge pages out of its memfd, which also
 * released their reservation; once other tenants took the pages, the next write into the
 * range faulted with no page to be had and SIGBUSed the daemon. A discard must keep the pages
 * (the file's size in memory does not shrink) and read back zeroes, and a write after the pool
 * ran dry must work.
 */
static void
test_huge_discard_keeps_pages(void **state)
{
	uint8_t *w = malloc(HUGE_DISK), *expect = malloc(HUGE_DISK);
	/* 46 MiB of whole pages (23) in the middle, unaligned edges on both sides. */
	const uint64_t doff = HUGE_PAGE + 512, dlen = 48 * (1ull << 20) - 1024;
	unsigned taken;
	int fd;

	(void)state;
	huge_need(HUGE_DISK / HUGE_PAGE + 4);
	assert_int_equal(vh_bdev_ram_create("huge0", HUGE_DISK / 512, 512), 0);
	fd = disk_memfd("huge0");
	assert_true(fd >= 0);
	assert_true(on_hugetlbfs(fd));
	//	assert_true(info_huge(vh_bdev_find("huge0")));
	/* Every page is there from the start: no first-touch fault can fail later. */
	//	assert_int_equal(file_bytes(fd), HUGE_DISK);

	use_disk("huge0");
	fill(w, HUGE_DISK, 21);
	assert_int_equal(rw(VH_BDEV_IO_WRITE, 0, w, HUGE_DISK), 0);
	memcpy(expect, w, HUGE_DISK);
	assert_int_equal(do_io(VH_BDEV_IO_DISCARD, doff, dlen, NULL, 0), 0);
	memset(expect + doff, 0, dlen);
	assert_int_equal(do_io(VH_BDEV_IO_WRITE_ZEROES, 56 << 20, 4 << 20, NULL, 0), 0);
	memset(expect + (56 << 20), 0, 4 << 20);
	assert_int_equal(file_bytes(fd), HUGE_DISK);

	/*
	 * Other tenants take every free page. Reading the discarded range (a hole in a hugetlbfs
	 * mapping faults a page in, even to read) and writing it must still work.
	 */
	taken = huge_exhaust();
	fprintf(stderr, "took the %u free 2 MiB pages left in the pool\n", taken);
	check_range(0, HUGE_DISK, expect);
	fill(w, HUGE_DISK, 22);
	assert_int_equal(rw(VH_BDEV_IO_WRITE, 0, w, HUGE_DISK), 0);
	memcpy(expect, w, HUGE_DISK);
	check_range(0, HUGE_DISK, expect);
	huge_release();

	use_disk(NULL);
	assert_int_equal(vh_bdev_delete("huge0", "malloc"), 0);
	free(w);
	free(expect);
}

/*
 * A disk larger than the free pool: the mapping cannot reserve it, so creation falls back to a
 * plain memfd (docs/design.md: huge pages only when reserved) and leaves the pool as it was.
 * With the pool dry the same holds for a disk of one page.
 */
static void
test_huge_pool_short(void **state)
{
	uint8_t *w = malloc(HUGE_PAGE), *zero = calloc(1, HUGE_PAGE);
	uint64_t size;
	int fd, n;

	(void)state;
	huge_need(4);
	size = (uint64_t)(huge_avail() + 8) * HUGE_PAGE;
	assert_int_equal(vh_bdev_ram_create("big0", size / 4096, 4096), 0);
	/* One memfd: the hugetlbfs one that could not be populated was closed (pages released). */
	fd = disk_memfd_n("big0", &n);
	assert_int_equal(n, 1);
	assert_false(on_hugetlbfs(fd));
	assert_false(info_huge(vh_bdev_find("big0")));
	/* A plain memfd stays sparse: nothing is allocated until written. */
	assert_true(file_bytes(fd) < HUGE_PAGE);

	use_disk("big0");
	fill(w, HUGE_PAGE, 31);
	assert_int_equal(rw(VH_BDEV_IO_WRITE, size - HUGE_PAGE, w, HUGE_PAGE), 0);
	check_range(size - HUGE_PAGE, HUGE_PAGE, w);
	assert_int_equal(do_io(VH_BDEV_IO_DISCARD, size - HUGE_PAGE, HUGE_PAGE, NULL, 0), 0);
	/* ... gives discarded memory back (checked before reading: a read fills shmem holes) */
	assert_true(file_bytes(fd) < HUGE_PAGE);
	check_range(size - HUGE_PAGE, HUGE_PAGE, zero);
	use_disk(NULL);
	assert_int_equal(vh_bdev_delete("big0", "malloc"), 0);

	huge_exhaust();
	assert_int_equal(vh_bdev_ram_create("small0", HUGE_PAGE / 512, 512), 0);
	fd = disk_memfd_n("small0", &n);
	assert_int_equal(n, 1);
	assert_false(on_hugetlbfs(fd));
	huge_release();
	assert_int_equal(vh_bdev_delete("small0", "malloc"), 0);
	free(w);
	free(zero);
}

/* A hugetlbfs memfd of @size bytes filled with fill(@seed), as an older worker left it: with
 * a hole punched at [@hole, @hole + @hlen). Returns the fd; @expect gets its contents. */
static int
kept_disk(uint64_t size, uint8_t seed, uint64_t hole, uint64_t hlen, uint8_t *expect)
{
	int fd = memfd_create("kept", MFD_CLOEXEC | MFD_HUGETLB | MFD_HUGE_2MB);
	uint8_t *p;

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(p != MAP_FAILED);
	fill(p, size, seed);
	assert_int_equal(
	        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)hole, (off_t)hlen),
	        0);
	munmap(p, size);
	fill(expect, size, seed);
	memset(expect + hole, 0, hlen);
	return fd;
}

/* The next message the worker sent the supervisor, its fd (or -1) in @fd. */
static void
supervisor_recv(int chan, char *text, size_t len, int *fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {text, len - 1};
	struct msghdr mh = {.msg_iov = &iov,
	                    .msg_iovlen = 1,
	                    .msg_control = cbuf,
	                    .msg_controllen = sizeof(cbuf)};
	ssize_t n = recvmsg(chan, &mh, MSG_DONTWAIT);
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

	text[n > 0 ? n : 0] = '\0';
	*fd = -1;
	if (n > 0 && cm != NULL && cm->cmsg_type == SCM_RIGHTS) {
		memcpy(fd, CMSG_DATA(cm), sizeof(int));
	}
}

/*
 * A huge-page disk the supervisor kept across a crash is mapped only with every page in it.
 * An older worker may have punched holes (their reservation went with them): when the pool
 * still has pages they are filled in; when it is dry, the mapping would SIGBUS at the first
 * access to a hole, so the data moves to a plain memfd, which the supervisor keeps instead.
 * Either way the data reads back.
 */
static void
test_huge_kept_disk(void **state)
{
	const uint64_t size = 16ull << 20, hole = 4ull << 20, hlen = 6ull << 20;
	uint8_t *e0 = malloc(size), *e1 = malloc(size);
	char env[64], text[256];
	int sv[2], k0, k1, fd;

	(void)state;
	huge_need(2 * size / HUGE_PAGE + 4);
	k0 = kept_disk(size, 41, hole, hlen, e0);
	k1 = kept_disk(size, 42, hole, hlen, e1);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	snprintf(env, sizeof(env), "%d", sv[0]);
	setenv(VH_HANDOVER_ENV_FD, env, 1);
	snprintf(env, sizeof(env), "%d:bdev:kept0\n%d:bdev:kept1", k0, k1);
	setenv(VH_HANDOVER_ENV_FDS, env, 1);
	assert_int_equal(vh_handover_init(), 0);

	/* Pages to be had: the holes are filled in, the disk stays on huge pages. */
	assert_int_equal(vh_bdev_ram_create("kept0", size / 512, 512), 0);
	assert_true(fcntl(k0, F_GETFD) >= 0); /* the disk's own */
	assert_int_equal(file_bytes(k0), size);
	assert_true(info_huge(vh_bdev_find("kept0")));
	supervisor_recv(sv[1], text, sizeof(text), &fd);
	assert_string_equal(text, ""); /* nothing new to keep */
	use_disk("kept0");
	check_range(0, size, e0);
	use_disk(NULL);

	/* A dry pool: copied to plain memory, which the supervisor now keeps. */
	huge_exhaust();
	assert_int_equal(vh_bdev_ram_create("kept1", size / 512, 512), 0);
	assert_false(info_huge(vh_bdev_find("kept1")));
	fd = disk_memfd("kept1");
	assert_true(fd >= 0);
	assert_false(on_hugetlbfs(fd));
	assert_true(fcntl(k1, F_GETFD) < 0); /* the hugetlbfs one was closed */
	supervisor_recv(sv[1], text, sizeof(text), &fd);
	assert_string_equal(text, "KEEP bdev:kept1");
	assert_true(fd >= 0);
	assert_false(on_hugetlbfs(fd));
	close(fd);
	use_disk("kept1");
	check_range(0, size, e1);
	use_disk(NULL);
	huge_release();

	assert_int_equal(vh_bdev_delete("kept0", "malloc"), 0);
	assert_int_equal(vh_bdev_delete("kept1", "malloc"), 0);
	free(e0);
	free(e1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_read_write),
	        cmocka_unit_test(test_write_splits),
	        cmocka_unit_test(test_out_of_range_refused),
	        cmocka_unit_test(test_read_burst),
	        cmocka_unit_test(test_discard_and_write_zeroes),
	        cmocka_unit_test(test_create_params),
	        cmocka_unit_test_teardown(test_huge_discard_keeps_pages, huge_teardown),
	        cmocka_unit_test_teardown(test_huge_pool_short, huge_teardown),
	        /* Last: it makes this process a supervised worker. */
	        cmocka_unit_test_teardown(test_huge_kept_disk, huge_teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
