/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/vfu/msg.c: the vfio-user message table and handlers, with a mock device and no socket.
 * A session is set up with a capturing sender; each test puts a message in s->buf (as
 * session.c does after framing), runs vfu_msg_dispatch() and looks at the reply, the device
 * calls and the fds. Covers the framing checks that close a session, the refusals that are
 * answered with an errno, QEMU 10.2's version and region-info expectations, SET_IRQS
 * validation, the asynchronous DMA path and fd ownership.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "vfu/session.h"

/* ---- capture ---- */

static uint8_t g_reply[VFU_MAX_MSG];
static size_t g_reply_len;
static int g_reply_fd;
static unsigned g_replies;

static int
capture(struct vfu_session *s, const struct iovec *iov, int iovcnt, int fd)
{
	size_t off = 0;

	for (int i = 0; i < iovcnt; i++) {
		memcpy(g_reply + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	g_reply_len = off;
	g_reply_fd = fd;
	g_replies++;
	return 0;
}

static const struct vfio_user_header *
reply_hdr(void)
{
	return (const struct vfio_user_header *)g_reply;
}

/* ---- mock device ---- */

static struct {
	unsigned region_accesses;
	uint64_t last_off;
	uint32_t last_count;
	bool last_write;
	uint8_t cfg[256];
	unsigned irq_sets;
	int kept_fd;
	int quiesce_rc;
	unsigned quiesces, changes, resets, disconnects;
	int db_fd;
} g_dev;

static int
m_region_info(void *dev, uint32_t index, struct vfu_region_desc *d)
{
	switch (index) {
	case 0:
		d->size = 0x2000;
		d->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
		           VFIO_REGION_INFO_FLAG_MMAP;
		d->mmap_fd = g_dev.db_fd;
		d->nr_sparse = 1;
		d->sparse[0].offset = 0x1000;
		d->sparse[0].size = 0x1000;
		return 0;
	case 7:
		d->size = sizeof(g_dev.cfg);
		d->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
		return 0;
	case 8:
		d->size = 0x100;
		d->flags = VFIO_REGION_INFO_FLAG_READ; /* read-only region */
		return 0;
	default:
		d->size = 0;
		return 0;
	}
}

static int
m_region_access(void *dev, uint32_t index, uint64_t off, void *buf, uint32_t count, bool write)
{
	g_dev.region_accesses++;
	g_dev.last_off = off;
	g_dev.last_count = count;
	g_dev.last_write = write;
	if (index == 7) {
		if (write) {
			memcpy(g_dev.cfg + off, buf, count);
		} else {
			memcpy(buf, g_dev.cfg + off, count);
		}
	}
	return 0;
}

static void
m_irq_info(void *dev, uint32_t index, uint32_t *count, uint32_t *flags)
{
	*count = index == VFIO_PCI_MSIX_IRQ_INDEX ? 4 : 0;
	*flags = VFIO_IRQ_INFO_EVENTFD;
}

static int
m_irq_set(void *dev, const struct vfio_user_irq_set *set, const uint8_t *bools, int *fds,
          unsigned nfds)
{
	g_dev.irq_sets++;
	if (nfds > 0) {
		g_dev.kept_fd = fds[0]; /* take the first, leave the rest to the session */
		fds[0] = -1;
	}
	return 0;
}

static int
m_dma_quiesce(void *dev)
{
	g_dev.quiesces++;
	return g_dev.quiesce_rc;
}

static int
m_dma_changed(void *dev)
{
	g_dev.changes++;
	return 0;
}

static int
m_reset(void *dev)
{
	g_dev.resets++;
	return 0;
}

static void
m_disconnect(void *dev, struct vfu_session *s)
{
	g_dev.disconnects++;
	vfu_session_disconnected(s);
}

static const struct vfu_dev_ops g_ops = {
        .num_regions = 9,
        .num_irqs = 5,
        .device_flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET,
        .region_info = m_region_info,
        .region_access = m_region_access,
        .irq_info = m_irq_info,
        .irq_set = m_irq_set,
        .dma_quiesce = m_dma_quiesce,
        .dma_changed = m_dma_changed,
        .reset = m_reset,
        .disconnect = m_disconnect,
};

/* ---- helpers ---- */

static struct vfu_session g_s;

static int
setup(void **state)
{
	memset(&g_dev, 0, sizeof(g_dev));
	g_dev.kept_fd = -1;
	g_dev.db_fd = memfd_create("db", MFD_CLOEXEC);
	g_replies = 0;
	assert_int_equal(vfu_session_init(&g_s, -1, &g_ops, NULL, capture, 1ull << 30, "t"), 0);
	return 0;
}

static int
teardown(void **state)
{
	vfu_session_fini(&g_s);
	if (g_dev.kept_fd >= 0) {
		close(g_dev.kept_fd);
	}
	close(g_dev.db_fd);
	return 0;
}

/* Put a message in the buffer with @fds and dispatch it; returns dispatch's result. */
static int
send_msg(uint16_t cmd, uint32_t flags, const void *p, uint32_t len, const int *fds, unsigned nfds)
{
	struct vfio_user_header h = {
	        .msg_id = 7, .cmd = cmd, .msg_size = (uint32_t)sizeof(h) + len, .flags = flags};

	memcpy(g_s.buf, &h, sizeof(h));
	if (len > 0) {
		memcpy(g_s.buf + sizeof(h), p, len);
	}
	g_s.got = h.msg_size;
	for (unsigned i = 0; i < nfds; i++) {
		g_s.fds[i] = fds[i];
	}
	g_s.nfds = nfds;
	g_reply_len = 0;
	return vfu_msg_dispatch(&g_s);
}

/* The reply's errno (0 when none), asserting it is a reply to @cmd. */
static int
reply_err(uint16_t cmd)
{
	assert_true(g_reply_len >= sizeof(struct vfio_user_header));
	assert_int_equal(reply_hdr()->cmd, cmd);
	assert_int_equal(reply_hdr()->msg_id, 7);
	assert_int_equal(reply_hdr()->flags & VFIO_USER_F_TYPE_MASK, VFIO_USER_F_TYPE_REPLY);
	return (reply_hdr()->flags & VFIO_USER_F_ERROR) ? (int)reply_hdr()->error_no : 0;
}

static void
version(void)
{
	static const char caps[] = "{\"capabilities\":{\"max_msg_fds\":16}}";
	uint8_t buf[4 + sizeof(caps)] = {0};

	memcpy(buf + 4, caps, sizeof(caps));
	assert_int_equal(send_msg(VFIO_USER_VERSION, 0, buf, sizeof(buf), NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_VERSION), 0);
}

static bool
fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* ---- tests ---- */

static void
test_version(void **state)
{
	const char *json;
	uint16_t mm[2] = {1, 0};

	/* Anything before VERSION closes the session. */
	assert_int_equal(send_msg(VFIO_USER_DEVICE_RESET, 0, NULL, 0, NULL, 0), -EPROTO);
	/* A major we do not speak: an error reply, still not versioned. */
	assert_int_equal(send_msg(VFIO_USER_VERSION, 0, mm, 4, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_VERSION), ENOTSUP);
	/* Capabilities that are not a terminated string. */
	assert_int_equal(send_msg(VFIO_USER_VERSION, 0, "\0\0\0\0{x", 6, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_VERSION), EINVAL);
	version();
	/* The reply: 0.0 and NUL-terminated JSON, short (QEMU 10.2: not longer than its request).
	 */
	json = (const char *)g_reply + sizeof(struct vfio_user_header) + 4;
	assert_int_equal(g_reply[g_reply_len - 1], '\0');
	assert_non_null(strstr(json, "\"max_msg_fds\":16"));
	assert_true(g_reply_len - sizeof(struct vfio_user_header) < 120);
	/* Twice: a violation. */
	assert_int_equal(send_msg(VFIO_USER_VERSION, 0, "\0\0\0\0", 4, NULL, 0), -EPROTO);
}

static void
test_framing(void **state)
{
	uint8_t big[64] = {0};
	int efd = eventfd(0, EFD_CLOEXEC);

	version();
	/* A reply type, the error bit in a command. */
	assert_int_equal(send_msg(VFIO_USER_DEVICE_RESET, VFIO_USER_F_TYPE_REPLY, NULL, 0, NULL, 0),
	                 -EPROTO);
	assert_int_equal(send_msg(VFIO_USER_DEVICE_RESET, VFIO_USER_F_ERROR, NULL, 0, NULL, 0),
	                 -EPROTO);
	/* Wrong payload sizes for fixed-size commands. */
	assert_int_equal(send_msg(VFIO_USER_DEVICE_GET_INFO, 0, big, 15, NULL, 0), -EPROTO);
	assert_int_equal(send_msg(VFIO_USER_DEVICE_GET_INFO, 0, big, 17, NULL, 0), -EPROTO);
	assert_int_equal(send_msg(VFIO_USER_DMA_UNMAP, 0, big, 32, NULL, 0), -EPROTO);
	assert_int_equal(send_msg(VFIO_USER_DEVICE_RESET, 0, big, 1, NULL, 0), -EPROTO);
	/* An fd with a command that takes none is closed, and the message refused. */
	assert_int_equal(send_msg(VFIO_USER_DEVICE_RESET, 0, NULL, 0, &efd, 1), -EPROTO);
	assert_false(fd_open(efd));
	/* Too many fds (reception overflowed). */
	g_s.fd_overflow = true;
	assert_int_equal(send_msg(VFIO_USER_DEVICE_RESET, 0, NULL, 0, NULL, 0), -EPROTO);
	assert_false(g_s.fd_overflow);
	/* A message shorter than a header. */
	g_s.got = 8;
	assert_int_equal(vfu_msg_dispatch(&g_s), -EPROTO);
	/* Unknown commands: an error reply, not fatal; NO_REPLY gets nothing. */
	assert_int_equal(send_msg(200, 0, NULL, 0, NULL, 0), 0);
	assert_int_equal(reply_err(200), ENOSYS);
	assert_int_equal(send_msg(VFIO_USER_DMA_READ, 0, big, 16, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_DMA_READ), ENOTSUP);
	g_replies = 0;
	assert_int_equal(send_msg(VFIO_USER_DEVICE_RESET, VFIO_USER_F_NO_REPLY, NULL, 0, NULL, 0),
	                 0);
	assert_int_equal(g_replies, 0);
	assert_int_equal(g_dev.resets, 1);
}

static void
test_info(void **state)
{
	struct vfio_user_device_info di = {.argsz = 16};
	struct vfio_user_irq_info ii = {.argsz = 16, .index = VFIO_PCI_MSIX_IRQ_INDEX};
	struct vfio_user_region_info ri = {.argsz = 32, .index = 0};
	const struct vfio_user_region_info *r;
	const struct vfio_user_cap_sparse_mmap *cap;

	version();
	assert_int_equal(send_msg(VFIO_USER_DEVICE_GET_INFO, 0, &di, 16, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_DEVICE_GET_INFO), 0);
	memcpy(&di, g_reply + 16, 16);
	assert_int_equal(di.num_regions, 9);
	assert_int_equal(di.num_irqs, 5);
	di.argsz = 8;
	assert_int_equal(send_msg(VFIO_USER_DEVICE_GET_INFO, 0, &di, 16, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_DEVICE_GET_INFO), EINVAL);

	/* Region info with argsz too small for the capability: argsz says how much, CAPS is set
	 * and cap_offset already points after the structure (QEMU 10.2 checks it). */
	assert_int_equal(send_msg(VFIO_USER_DEVICE_GET_REGION_INFO, 0, &ri, 32, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_DEVICE_GET_REGION_INFO), 0);
	r = (const void *)(g_reply + 16);
	assert_int_equal(g_reply_len, 16 + 32);
	assert_int_equal(r->argsz, 32 + 16 + 16);
	assert_true(r->flags & VFIO_REGION_INFO_FLAG_CAPS);
	assert_int_equal(r->cap_offset, 32);
	assert_int_equal(g_reply_fd, g_dev.db_fd);
	/* Again with room: the sparse area comes along. */
	ri.argsz = 64;
	assert_int_equal(send_msg(VFIO_USER_DEVICE_GET_REGION_INFO, 0, &ri, 32, NULL, 0), 0);
	assert_int_equal(g_reply_len, 16 + 64);
	cap = (const void *)(g_reply + 16 + 32);
	assert_int_equal(cap->header.id, VFIO_REGION_INFO_CAP_SPARSE_MMAP);
	assert_int_equal(cap->nr_areas, 1);
	/* A region without mmap: no fd. An index beyond num_regions: EINVAL. */
	ri.index = 7;
	assert_int_equal(send_msg(VFIO_USER_DEVICE_GET_REGION_INFO, 0, &ri, 32, NULL, 0), 0);
	assert_int_equal(g_reply_fd, -1);
	ri.index = 9;
	assert_int_equal(send_msg(VFIO_USER_DEVICE_GET_REGION_INFO, 0, &ri, 32, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_DEVICE_GET_REGION_INFO), EINVAL);

	assert_int_equal(send_msg(VFIO_USER_DEVICE_GET_IRQ_INFO, 0, &ii, 16, NULL, 0), 0);
	memcpy(&ii, g_reply + 16, 16);
	assert_int_equal(ii.count, 4);
	ii.index = 5;
	assert_int_equal(send_msg(VFIO_USER_DEVICE_GET_IRQ_INFO, 0, &ii, 16, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_DEVICE_GET_IRQ_INFO), EINVAL);
}

static void
test_region_access(void **state)
{
	struct {
		struct vfio_user_region_access a;
		uint8_t data[8];
	} m;

	version();
	g_dev.cfg[3] = 0x42;
	m.a = (struct vfio_user_region_access){.offset = 0, .region = 7, .count = 4};
	assert_int_equal(send_msg(VFIO_USER_REGION_READ, 0, &m.a, 16, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_REGION_READ), 0);
	assert_int_equal(g_reply_len, 16 + 16 + 4);
	assert_int_equal(g_reply[16 + 16 + 3], 0x42);
	/* The end of the region, beyond it, offset wrap, size 0, too big. */
	m.a.offset = 252;
	assert_int_equal(send_msg(VFIO_USER_REGION_READ, 0, &m.a, 16, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_REGION_READ), 0);
	m.a.offset = 253;
	assert_int_equal(send_msg(VFIO_USER_REGION_READ, 0, &m.a, 16, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_REGION_READ), EINVAL);
	m.a.offset = ~0ull - 1;
	assert_int_equal(send_msg(VFIO_USER_REGION_READ, 0, &m.a, 16, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_REGION_READ), EINVAL);
	m.a.offset = 0;
	m.a.count = 0;
	assert_int_equal(send_msg(VFIO_USER_REGION_READ, 0, &m.a, 16, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_REGION_READ), EINVAL);
	m.a.count = VFU_MAX_DATA_XFER + 1;
	assert_int_equal(send_msg(VFIO_USER_REGION_READ, 0, &m.a, 16, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_REGION_READ), EINVAL);
	/* A region of size 0 (BAR2) and a read-only one written to. */
	m.a = (struct vfio_user_region_access){.offset = 0, .region = 2, .count = 4};
	assert_int_equal(send_msg(VFIO_USER_REGION_READ, 0, &m.a, 16, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_REGION_READ), EINVAL);
	m.a = (struct vfio_user_region_access){.offset = 0, .region = 8, .count = 4};
	assert_int_equal(send_msg(VFIO_USER_REGION_WRITE, 0, &m, 20, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_REGION_WRITE), EACCES);
	/* A write whose count does not match its data. */
	m.a = (struct vfio_user_region_access){.offset = 0, .region = 7, .count = 8};
	assert_int_equal(send_msg(VFIO_USER_REGION_WRITE, 0, &m, 20, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_REGION_WRITE), EINVAL);
	m.a.count = 4;
	memcpy(m.data, "abcd", 4);
	assert_int_equal(send_msg(VFIO_USER_REGION_WRITE, 0, &m, 20, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_REGION_WRITE), 0);
	assert_memory_equal(g_dev.cfg, "abcd", 4);
}

static void
test_write_multi(void **state)
{
	struct {
		uint64_t n;
		struct vfio_user_write_one w[2];
	} m;

	version();
	memset(&m, 0, sizeof(m));
	m.n = 2;
	m.w[0] = (struct vfio_user_write_one){.offset = 8, .region = 7, .count = 2, .data = {1, 2}};
	m.w[1] = (struct vfio_user_write_one){.offset = 16, .region = 7, .count = 1, .data = {9}};
	assert_int_equal(send_msg(VFIO_USER_REGION_WRITE_MULTI, 0, &m, sizeof(m), NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_REGION_WRITE_MULTI), 0);
	assert_int_equal(g_dev.cfg[9], 2);
	assert_int_equal(g_dev.cfg[16], 9);
	/* wr_cnt that does not match the size, an entry with count > 8. */
	m.n = 3;
	assert_int_equal(send_msg(VFIO_USER_REGION_WRITE_MULTI, 0, &m, sizeof(m), NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_REGION_WRITE_MULTI), EINVAL);
	m.n = 2;
	m.w[1].count = 9;
	assert_int_equal(send_msg(VFIO_USER_REGION_WRITE_MULTI, 0, &m, sizeof(m), NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_REGION_WRITE_MULTI), EINVAL);
}

static void
test_set_irqs(void **state)
{
	struct vfio_user_irq_set s = {.argsz = 20,
	                              .flags = VFIO_IRQ_SET_DATA_EVENTFD |
	                                       VFIO_IRQ_SET_ACTION_TRIGGER,
	                              .index = VFIO_PCI_MSIX_IRQ_INDEX,
	                              .start = 0,
	                              .count = 2};
	int efd[2] = {eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC)};
	int mfd = memfd_create("x", MFD_CLOEXEC), e2;

	version();
	/* Two eventfds: the device took the first; the session closed the other. */
	assert_int_equal(send_msg(VFIO_USER_DEVICE_SET_IRQS, 0, &s, 20, efd, 2), 0);
	assert_int_equal(reply_err(VFIO_USER_DEVICE_SET_IRQS), 0);
	assert_int_equal(g_dev.kept_fd, efd[0]);
	assert_true(fd_open(efd[0]));
	assert_false(fd_open(efd[1]));
	/* Not an eventfd. */
	s.count = 1;
	assert_int_equal(send_msg(VFIO_USER_DEVICE_SET_IRQS, 0, &s, 20, &mfd, 1), 0);
	assert_int_equal(reply_err(VFIO_USER_DEVICE_SET_IRQS), EINVAL);
	assert_false(fd_open(mfd));
	/* Beyond the vectors, wrap, fd count mismatch, two data types, no action. */
	e2 = eventfd(0, EFD_CLOEXEC);
	s.start = 4;
	assert_int_equal(send_msg(VFIO_USER_DEVICE_SET_IRQS, 0, &s, 20, &e2, 1), 0);
	assert_int_equal(reply_err(VFIO_USER_DEVICE_SET_IRQS), EINVAL);
	s.start = 0xffffffff;
	assert_int_equal(send_msg(VFIO_USER_DEVICE_SET_IRQS, 0, &s, 20, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_DEVICE_SET_IRQS), EINVAL);
	s.start = 0;
	s.count = 2;
	e2 = eventfd(0, EFD_CLOEXEC);
	assert_int_equal(send_msg(VFIO_USER_DEVICE_SET_IRQS, 0, &s, 20, &e2, 1), 0);
	assert_int_equal(reply_err(VFIO_USER_DEVICE_SET_IRQS), EINVAL);
	assert_false(fd_open(e2));
	s.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
	assert_int_equal(send_msg(VFIO_USER_DEVICE_SET_IRQS, 0, &s, 20, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_DEVICE_SET_IRQS), EINVAL);
	s.flags = VFIO_IRQ_SET_DATA_EVENTFD;
	assert_int_equal(send_msg(VFIO_USER_DEVICE_SET_IRQS, 0, &s, 20, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_DEVICE_SET_IRQS), EINVAL);
	/* count 0 only as "disable all" (DATA_NONE, start 0); BOOL needs count bytes. */
	s.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	s.count = 0;
	assert_int_equal(send_msg(VFIO_USER_DEVICE_SET_IRQS, 0, &s, 20, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_DEVICE_SET_IRQS), EINVAL);
	s.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
	assert_int_equal(send_msg(VFIO_USER_DEVICE_SET_IRQS, 0, &s, 20, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_DEVICE_SET_IRQS), 0);
	s.flags = VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER;
	s.count = 2;
	assert_int_equal(send_msg(VFIO_USER_DEVICE_SET_IRQS, 0, &s, 20, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_DEVICE_SET_IRQS), EINVAL);
}

static void
test_dma(void **state)
{
	struct vfio_user_dma_map m = {
	        .argsz = 32, .flags = 3, .offset = 0, .addr = 0x100000, .size = 0x10000};
	struct vfio_user_dma_unmap u = {.argsz = 24, .addr = 0x100000, .size = 0x10000};
	int fd = memfd_create("ram", MFD_CLOEXEC);

	assert_int_equal(ftruncate(fd, 0x10000), 0);
	version();
	/* Synchronous device: mapped and answered at once; the fd is closed (the map keeps it). */
	assert_int_equal(send_msg(VFIO_USER_DMA_MAP, 0, &m, 32, &fd, 1), 0);
	assert_int_equal(reply_err(VFIO_USER_DMA_MAP), 0);
	assert_false(fd_open(fd));
	assert_int_equal(g_s.dma.n, 1);
	assert_non_null(vfu_dma_ptr(&g_s.dma, 0x100000, 0x10000, 3));
	assert_int_equal(g_dev.quiesces, 1);
	assert_int_equal(g_dev.changes, 1);
	/* An overlap is refused after the quiesce; the device still hears about the change. */
	assert_int_equal(send_msg(VFIO_USER_DMA_MAP, 0, &m, 32, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_DMA_MAP), EEXIST);
	/* An asynchronous device: no reply and input held until it is ready. */
	g_dev.quiesce_rc = VFU_ASYNC;
	g_replies = 0;
	assert_int_equal(send_msg(VFIO_USER_DMA_UNMAP, 0, &u, 24, NULL, 0), 0);
	assert_int_equal(g_replies, 0);
	assert_int_equal(g_s.holds, 1);
	assert_int_equal(g_s.dma.n, 1);
	vfu_session_dma_ready(&g_s);
	assert_int_equal(g_replies, 1);
	assert_int_equal(g_s.holds, 0);
	assert_int_equal(g_s.dma.n, 0);
	/* The unmap reply echoes the request. */
	assert_int_equal(reply_err(VFIO_USER_DMA_UNMAP), 0);
	assert_memory_equal(g_reply + 16, &u, 24);
	/* Unknown range and the dirty-bitmap flag: refused without a quiesce. */
	g_dev.quiesce_rc = 0;
	assert_int_equal(send_msg(VFIO_USER_DMA_UNMAP, 0, &u, 24, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_DMA_UNMAP), ENOENT);
	u.flags = 1;
	assert_int_equal(send_msg(VFIO_USER_DMA_UNMAP, 0, &u, 24, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_DMA_UNMAP), EINVAL);
	/* argsz smaller than the structure. */
	m.argsz = 16;
	assert_int_equal(send_msg(VFIO_USER_DMA_MAP, 0, &m, 32, NULL, 0), 0);
	assert_int_equal(reply_err(VFIO_USER_DMA_MAP), EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_version, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_framing, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_info, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_region_access, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_write_multi, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_set_irqs, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_dma, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
