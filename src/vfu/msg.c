/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfio-user message table and handlers.
 *
 * Threat model: the client process controls every byte of every message and the fds attached.
 * Before a handler runs, the table checks that VERSION came first, the message type (a command;
 * we send no commands, so a reply is a violation), the payload size against the command's
 * exact or bounded size, and the number of fds. Handlers then check every index, offset, count
 * and flag against the device's regions and IRQ types with overflow-safe arithmetic, and fds
 * against the kind they must be (eventfds for interrupts). A command that cannot be honoured
 * gets an error reply with an errno (the client decides what to do); a message that breaks the
 * framing or the sequence closes the session. Nothing here trusts a size the client gave to
 * describe a buffer of ours: argsz only bounds how much of our reply the client can take.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/peerfd.h"
#include "vfu/session.h"

struct msg_desc {
	const char *name;
	uint32_t min; /* payload bytes */
	uint32_t max;
	uint8_t max_fds;
	int (*handler)(struct vfu_session *s, const struct vfio_user_header *h, uint8_t *p,
	               uint32_t len);
};

/* ---- replies ---- */

static int
send_reply(struct vfu_session *s, const struct vfio_user_header *req, int err,
           const struct iovec *payload, int npayload, int fd)
{
	struct vfio_user_header h = {
	        .msg_id = req->msg_id,
	        .cmd = req->cmd,
	        .msg_size = sizeof(h),
	        .flags = VFIO_USER_F_TYPE_REPLY,
	};
	struct iovec iov[4];
	int n = 1;

	if (req->flags & VFIO_USER_F_NO_REPLY) {
		if (err != 0) {
			VH_LOG_RL(VH_LOG_WARN, s->prefix, "%s (no reply wanted) failed: %s",
			          vfu_msg_name(req->cmd), strerror(-err));
		}
		return 0;
	}
	if (err != 0) {
		/* "If an error occurs, the reply message must only include the reply header." */
		h.flags |= VFIO_USER_F_ERROR;
		h.error_no = (uint32_t)-err;
		npayload = 0;
		fd = -1;
	}
	iov[0].iov_base = &h;
	iov[0].iov_len = sizeof(h);
	for (int i = 0; i < npayload && n < (int)VH_ARRAY_SIZE(iov); i++) {
		iov[n++] = payload[i];
		h.msg_size += (uint32_t)payload[i].iov_len;
	}
	return s->send(s, iov, n, fd);
}

static int
reply_buf(struct vfu_session *s, const struct vfio_user_header *h, const void *p, size_t len)
{
	struct iovec iov = {.iov_base = (void *)p, .iov_len = len};

	return send_reply(s, h, 0, &iov, len > 0 ? 1 : 0, -1);
}

/* ---- handlers ---- */

static int
h_version(struct vfu_session *s, const struct vfio_user_header *h, uint8_t *p, uint32_t len)
{
	struct vfio_user_version v;
	char caps[192];
	struct iovec iov[2];
	int n;

	memcpy(&v, p, sizeof(v));
	if (s->versioned) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix, "VERSION sent twice");
		return -EPROTO;
	}
	/*
	 * The capabilities are optional JSON. We take nothing from them: every limit that matters
	 * to us is ours to announce, and our replies never exceed what the client asked for. We
	 * only insist that they are a terminated string, as the spec says.
	 */
	if (len > sizeof(v) && p[len - 1] != '\0') {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix, "VERSION capabilities are not NUL-terminated");
		return -EINVAL;
	}
	if (v.major != VFIO_USER_MAJOR) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix, "client speaks vfio-user %u.%u; we speak %u.x",
		          v.major, v.minor, VFIO_USER_MAJOR);
		return -ENOTSUP;
	}
	v.minor = VH_MIN(v.minor, VFIO_USER_MINOR);
	/*
	 * Short on purpose: QEMU 10.2 refuses a reply longer than its own request. pgsizes: DMA
	 * maps at 4 KiB granularity; max_dma_maps: our region table.
	 */
	n = snprintf(caps, sizeof(caps),
	             "{\"capabilities\":{\"max_msg_fds\":%u,\"max_data_xfer_size\":%u,"
	             "\"pgsizes\":4096,\"max_dma_maps\":%u}}",
	             VFU_MAX_FDS, VFU_MAX_DATA_XFER, VFU_DMA_MAX_REGIONS);
	iov[0].iov_base = &v;
	iov[0].iov_len = sizeof(v);
	iov[1].iov_base = caps;
	iov[1].iov_len = (size_t)n + 1;
	s->versioned = true;
	return send_reply(s, h, 0, iov, 2, -1);
}

static bool
dma_busy_device(struct vfu_session *s)
{
	return s->ops->dma_quiesce != NULL;
}

/* Apply the pending DMA change now that the device does not use the table. */
static int
dma_apply(struct vfu_session *s)
{
	int rc = 0;

	VH_DEBUG(s->prefix, "DMA %s [0x%" PRIx64 ", +0x%" PRIx64 ") flags 0x%x fd %d",
	         s->dma_op == DMA_OP_MAP ? "map" : "unmap", s->dma_map.addr, s->dma_map.size,
	         s->dma_map.flags, s->dma_fd);
	switch (s->dma_op) {
	case DMA_OP_MAP:
		rc = vfu_dma_map(&s->dma, &s->dma_map, s->dma_fd);
		if (rc < 0) {
			VH_LOG_RL(VH_LOG_ERROR, s->prefix,
			          "DMA_MAP [0x%" PRIx64 ", +0x%" PRIx64 ") refused: %s",
			          s->dma_map.addr, s->dma_map.size, strerror(-rc));
		}
		break;
	case DMA_OP_UNMAP:
		rc = vfu_dma_unmap(&s->dma, s->dma_map.addr, s->dma_map.size);
		break;
	case DMA_OP_UNMAP_ALL:
		vfu_dma_unmap_all(&s->dma);
		break;
	case DMA_OP_NONE:
		break;
	}
	if (s->dma_fd >= 0) {
		close(s->dma_fd); /* the mapping keeps the file */
		s->dma_fd = -1;
	}
	s->dma_op = DMA_OP_NONE;
	return rc;
}

void
vfu_session_dma_ready(struct vfu_session *s)
{
	int rc = dma_apply(s);
	int rc2 = s->ops->dma_changed != NULL ? s->ops->dma_changed(s->dev) : 0;

	/* The table changed whatever the outcome: the device re-checks its queues (dma_changed). */
	if (rc2 == VFU_ASYNC) {
		s->async_len = rc == 0 ? s->async_len : 0;
		if (rc < 0) {
			/* Remember the map error for the reply the device will trigger. */
			s->async_hdr.error_no = (uint32_t)-rc;
		}
		return;
	}
	vfu_session_async_done(s, rc < 0 ? rc : rc2);
}

/* Start a DMA change: quiesce the device first if it uses guest memory. */
static int
dma_start(struct vfu_session *s, const struct vfio_user_header *h)
{
	int rc = dma_busy_device(s) ? s->ops->dma_quiesce(s->dev) : 0;

	if (rc < 0) {
		if (s->dma_fd >= 0) {
			close(s->dma_fd);
			s->dma_fd = -1;
		}
		s->dma_op = DMA_OP_NONE;
		return rc;
	}
	s->async = true;
	s->async_hdr = *h;
	s->async_hdr.error_no = 0;
	vfu_session_hold(s);
	if (rc == 0) {
		vfu_session_dma_ready(s);
	}
	return VFU_ASYNC;
}

static int
h_dma_map(struct vfu_session *s, const struct vfio_user_header *h, uint8_t *p, uint32_t len)
{
	struct vfio_user_dma_map m;

	memcpy(&m, p, sizeof(m));
	if (m.argsz < sizeof(m)) {
		return -EINVAL;
	}
	s->dma_map = m;
	s->dma_fd = -1;
	if (s->nfds == 1) {
		s->dma_fd = s->fds[0];
		s->fds[0] = -1;
	}
	s->dma_op = DMA_OP_MAP;
	s->async_len = 0;
	return dma_start(s, h);
}

static int
h_dma_unmap(struct vfu_session *s, const struct vfio_user_header *h, uint8_t *p, uint32_t len)
{
	struct vfio_user_dma_unmap u;

	memcpy(&u, p, sizeof(u));
	if (u.argsz < sizeof(u) || (u.flags & ~(uint32_t)VFIO_DMA_UNMAP_FLAG_ALL) != 0) {
		/* The dirty bitmap (migration) is not supported. */
		return -EINVAL;
	}
	s->dma_fd = -1;
	s->dma_map.addr = u.addr;
	s->dma_map.size = u.size;
	s->dma_op = (u.flags & VFIO_DMA_UNMAP_FLAG_ALL) ? DMA_OP_UNMAP_ALL : DMA_OP_UNMAP;
	if (s->dma_op == DMA_OP_UNMAP) {
		bool found = false;

		for (unsigned i = 0; i < s->dma.n && !found; i++) {
			found = s->dma.r[i].addr == u.addr && s->dma.r[i].size == u.size;
		}
		if (!found) {
			s->dma_op = DMA_OP_NONE;
			return -ENOENT;
		}
	}
	/* "The server responds with the original DMA entry in the request." */
	memcpy(s->async_payload, &u, sizeof(u));
	s->async_len = sizeof(u);
	return dma_start(s, h);
}

static int
h_device_get_info(struct vfu_session *s, const struct vfio_user_header *h, uint8_t *p, uint32_t len)
{
	struct vfio_user_device_info in, out = {
	                                         .argsz = sizeof(out),
	                                         .flags = s->ops->device_flags,
	                                         .num_regions = s->ops->num_regions,
	                                         .num_irqs = s->ops->num_irqs,
	                                 };

	memcpy(&in, p, sizeof(in));
	if (in.argsz < sizeof(out)) {
		return -EINVAL;
	}
	return reply_buf(s, h, &out, sizeof(out));
}

static int
h_get_region_info(struct vfu_session *s, const struct vfio_user_header *h, uint8_t *p, uint32_t len)
{
	struct {
		struct vfio_user_region_info info;
		struct vfio_user_cap_sparse_mmap cap;
		struct vfio_user_sparse_area areas[2];
	} out;
	struct vfio_user_region_info in;
	struct vfu_region_desc d;
	uint32_t full = sizeof(out.info);
	int rc, fd = -1;

	memcpy(&in, p, sizeof(in));
	if (in.argsz < sizeof(in) || in.index >= s->ops->num_regions) {
		return -EINVAL;
	}
	memset(&d, 0, sizeof(d));
	d.mmap_fd = -1;
	rc = s->ops->region_info(s->dev, in.index, &d);
	if (rc < 0) {
		return rc;
	}
	memset(&out, 0, sizeof(out));
	out.info.index = in.index;
	out.info.size = d.size;
	out.info.flags = d.flags;
	if ((d.flags & VFIO_REGION_INFO_FLAG_MMAP) && d.mmap_fd >= 0) {
		fd = d.mmap_fd;
		out.info.offset = d.mmap_offset;
		if (d.nr_sparse > 0) {
			out.info.flags |= VFIO_REGION_INFO_FLAG_CAPS;
			full += sizeof(out.cap) + d.nr_sparse * sizeof(out.areas[0]);
		}
	}
	out.info.argsz = full;
	/*
	 * cap_offset points after the structure even when argsz is too small for the
	 * capabilities (then they are left out and the client asks again with argsz = full, as
	 * the spec says): QEMU 10.2's client refuses a CAPS reply whose cap_offset is 0, which is
	 * what the kernel's VFIO answers in that case.
	 */
	if (full > sizeof(out.info)) {
		out.info.cap_offset = sizeof(out.info);
	}
	if (in.argsz >= full && full > sizeof(out.info)) {
		out.cap.header.id = VFIO_REGION_INFO_CAP_SPARSE_MMAP;
		out.cap.header.version = 1;
		out.cap.nr_areas = d.nr_sparse;
		memcpy(out.areas, d.sparse, d.nr_sparse * sizeof(out.areas[0]));
	} else {
		full = sizeof(out.info);
	}
	struct iovec iov = {.iov_base = &out, .iov_len = full};

	return send_reply(s, h, 0, &iov, 1, fd);
}

static int
h_get_irq_info(struct vfu_session *s, const struct vfio_user_header *h, uint8_t *p, uint32_t len)
{
	struct vfio_user_irq_info in, out;

	memcpy(&in, p, sizeof(in));
	if (in.argsz < sizeof(in) || in.index >= s->ops->num_irqs) {
		return -EINVAL;
	}
	memset(&out, 0, sizeof(out));
	out.argsz = sizeof(out);
	out.index = in.index;
	s->ops->irq_info(s->dev, in.index, &out.count, &out.flags);
	return reply_buf(s, h, &out, sizeof(out));
}

/* Exactly one bit of @mask set in @flags. */
static bool
one_of(uint32_t flags, uint32_t mask)
{
	uint32_t v = flags & mask;

	return v != 0 && (v & (v - 1)) == 0;
}

static int
h_set_irqs(struct vfu_session *s, const struct vfio_user_header *h, uint8_t *p, uint32_t len)
{
	struct vfio_user_irq_set set;
	uint32_t count = 0, flags = 0, end;
	int rc;

	memcpy(&set, p, sizeof(set));
	if (set.argsz < sizeof(set) || set.index >= s->ops->num_irqs ||
	    (set.flags &
	     ~(uint32_t)(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK)) != 0 ||
	    !one_of(set.flags, VFIO_IRQ_SET_DATA_TYPE_MASK) ||
	    !one_of(set.flags, VFIO_IRQ_SET_ACTION_TYPE_MASK)) {
		return -EINVAL;
	}
	s->ops->irq_info(s->dev, set.index, &count, &flags);
	/* count 0 with DATA_NONE: "disables all interrupts of the index" (start must be 0). */
	if (set.count == 0) {
		if (!(set.flags & VFIO_IRQ_SET_DATA_NONE) || set.start != 0 || s->nfds != 0) {
			return -EINVAL;
		}
	} else if (VH_ADD_OVERFLOW(set.start, set.count, &end) || end > count) {
		return -EINVAL;
	}
	if (set.flags & VFIO_IRQ_SET_DATA_BOOL) {
		if (len != sizeof(set) + set.count || s->nfds != 0) {
			return -EINVAL;
		}
	} else if (len != sizeof(set)) {
		return -EINVAL;
	}
	if (set.flags & VFIO_IRQ_SET_DATA_EVENTFD) {
		/* QEMU sends one fd per vector, or none to de-assign the range. */
		if (s->nfds != 0 && s->nfds != set.count) {
			return -EINVAL;
		}
		for (unsigned i = 0; i < s->nfds; i++) {
			rc = vh_peerfd_check_eventfd(s->fds[i]);
			if (rc < 0 && rc != -ENOSYS) {
				VH_LOG_RL(VH_LOG_ERROR, s->prefix,
				          "SET_IRQS: fd %u is not an eventfd", i);
				return -EINVAL;
			}
		}
	} else if (s->nfds != 0) {
		return -EINVAL;
	}
	rc = s->ops->irq_set(s->dev, &set, p + sizeof(set), s->fds, s->nfds);
	if (rc == VFU_ASYNC) {
		s->async = true;
		s->async_hdr = *h;
		s->async_len = 0;
		vfu_session_hold(s);
		return VFU_ASYNC;
	}
	return rc < 0 ? rc : reply_buf(s, h, NULL, 0);
}

/* A region access [offset, offset + count) the region can take. */
static int
check_access(struct vfu_session *s, uint32_t region, uint64_t offset, uint32_t count, bool write)
{
	struct vfu_region_desc d;
	uint64_t end;

	if (region >= s->ops->num_regions || count == 0 || count > VFU_MAX_DATA_XFER) {
		return -EINVAL;
	}
	memset(&d, 0, sizeof(d));
	d.mmap_fd = -1;
	if (s->ops->region_info(s->dev, region, &d) < 0) {
		return -EINVAL;
	}
	if (VH_ADD_OVERFLOW(offset, count, &end) || end > d.size) {
		return -EINVAL;
	}
	if (!(d.flags & (write ? VFIO_REGION_INFO_FLAG_WRITE : VFIO_REGION_INFO_FLAG_READ))) {
		return -EACCES;
	}
	return 0;
}

static int
h_region_read(struct vfu_session *s, const struct vfio_user_header *h, uint8_t *p, uint32_t len)
{
	struct vfio_user_region_access a;
	/* The reply's data goes right after the request in the message buffer (room for it). */
	uint8_t *data = s->buf + sizeof(*h) + sizeof(a);
	struct iovec iov[2];
	int rc;

	memcpy(&a, p, sizeof(a));
	rc = check_access(s, a.region, a.offset, a.count, false);
	if (rc < 0) {
		return rc;
	}
	rc = s->ops->region_access(s->dev, a.region, a.offset, data, a.count, false);
	if (rc < 0) {
		return rc;
	}
	iov[0].iov_base = &a;
	iov[0].iov_len = sizeof(a);
	iov[1].iov_base = data;
	iov[1].iov_len = a.count;
	return send_reply(s, h, 0, iov, 2, -1);
}

static int
h_region_write(struct vfu_session *s, const struct vfio_user_header *h, uint8_t *p, uint32_t len)
{
	struct vfio_user_region_access a;
	int rc;

	memcpy(&a, p, sizeof(a));
	if (len - sizeof(a) != a.count) {
		return -EINVAL;
	}
	rc = check_access(s, a.region, a.offset, a.count, true);
	if (rc < 0) {
		return rc;
	}
	rc = s->ops->region_access(s->dev, a.region, a.offset, p + sizeof(a), a.count, true);
	if (rc < 0) {
		return rc;
	}
	a.count = (uint32_t)(len - sizeof(a));
	return reply_buf(s, h, &a, sizeof(a));
}

static int
h_region_write_multi(struct vfu_session *s, const struct vfio_user_header *h, uint8_t *p,
                     uint32_t len)
{
	uint64_t wr_cnt;
	int rc;

	memcpy(&wr_cnt, p, sizeof(wr_cnt));
	if (wr_cnt == 0 || wr_cnt > VFIO_USER_MULTI_MAX ||
	    len != sizeof(wr_cnt) + wr_cnt * sizeof(struct vfio_user_write_one)) {
		return -EINVAL;
	}
	for (uint64_t i = 0; i < wr_cnt; i++) {
		struct vfio_user_write_one w;

		memcpy(&w, p + sizeof(wr_cnt) + i * sizeof(w), sizeof(w));
		if (w.count > VFIO_USER_MULTI_DATA) {
			return -EINVAL;
		}
		rc = check_access(s, w.region, w.offset, w.count, true);
		if (rc == 0) {
			rc = s->ops->region_access(s->dev, w.region, w.offset, w.data, w.count,
			                           true);
		}
		if (rc < 0) {
			return rc;
		}
	}
	return reply_buf(s, h, &wr_cnt, sizeof(wr_cnt));
}

static int
h_device_reset(struct vfu_session *s, const struct vfio_user_header *h, uint8_t *p, uint32_t len)
{
	int rc = s->ops->reset != NULL ? s->ops->reset(s->dev) : 0;

	if (rc == VFU_ASYNC) {
		s->async = true;
		s->async_hdr = *h;
		s->async_len = 0;
		vfu_session_hold(s);
		return VFU_ASYNC;
	}
	return rc < 0 ? rc : reply_buf(s, h, NULL, 0);
}

/* Server-to-client commands, migration, dirty pages, ioeventfds: not offered. */
static int
h_unsupported(struct vfu_session *s, const struct vfio_user_header *h, uint8_t *p, uint32_t len)
{
	return -ENOTSUP;
}

#define ANY_SIZE 0, VFU_MAX_MSG - sizeof(struct vfio_user_header)

static const struct msg_desc g_msgs[VFIO_USER_MAX_COMMAND] = {
        [VFIO_USER_VERSION] = {"VERSION", 4, 4 + 4096, 0, h_version},
        [VFIO_USER_DMA_MAP] = {"DMA_MAP", 32, 32, 1, h_dma_map},
        [VFIO_USER_DMA_UNMAP] = {"DMA_UNMAP", 24, 24, 0, h_dma_unmap},
        [VFIO_USER_DEVICE_GET_INFO] = {"DEVICE_GET_INFO", 16, 16, 0, h_device_get_info},
        [VFIO_USER_DEVICE_GET_REGION_INFO] = {"DEVICE_GET_REGION_INFO", 32, 32, 0,
                                              h_get_region_info},
        [VFIO_USER_DEVICE_GET_REGION_IO_FDS] = {"DEVICE_GET_REGION_IO_FDS", ANY_SIZE, 0,
                                                h_unsupported},
        [VFIO_USER_DEVICE_GET_IRQ_INFO] = {"DEVICE_GET_IRQ_INFO", 16, 16, 0, h_get_irq_info},
        [VFIO_USER_DEVICE_SET_IRQS] = {"DEVICE_SET_IRQS", 20, 20 + 4096, VFU_MAX_FDS, h_set_irqs},
        [VFIO_USER_REGION_READ] = {"REGION_READ", 16, 16, 0, h_region_read},
        [VFIO_USER_REGION_WRITE] = {"REGION_WRITE", 16, 16 + VFU_MAX_DATA_XFER, 0, h_region_write},
        [VFIO_USER_DMA_READ] = {"DMA_READ", ANY_SIZE, 0, h_unsupported},
        [VFIO_USER_DMA_WRITE] = {"DMA_WRITE", ANY_SIZE, 0, h_unsupported},
        [VFIO_USER_DEVICE_RESET] = {"DEVICE_RESET", 0, 0, 0, h_device_reset},
        [VFIO_USER_DIRTY_PAGES] = {"DIRTY_PAGES", ANY_SIZE, 0, h_unsupported},
        [VFIO_USER_REGION_WRITE_MULTI] = {"REGION_WRITE_MULTI", 8,
                                          8 + VFIO_USER_MULTI_MAX *
                                                          sizeof(struct vfio_user_write_one),
                                          0, h_region_write_multi},
        [VFIO_USER_DEVICE_FEATURE] = {"DEVICE_FEATURE", ANY_SIZE, 0, h_unsupported},
        [VFIO_USER_MIG_DATA_READ] = {"MIG_DATA_READ", ANY_SIZE, 0, h_unsupported},
        [VFIO_USER_MIG_DATA_WRITE] = {"MIG_DATA_WRITE", ANY_SIZE, 0, h_unsupported},
};

const char *
vfu_msg_name(uint16_t cmd)
{
	return cmd < VFIO_USER_MAX_COMMAND && g_msgs[cmd].name != NULL ? g_msgs[cmd].name
	                                                               : "UNKNOWN";
}

static void
close_fds(struct vfu_session *s)
{
	for (unsigned i = 0; i < s->nfds; i++) {
		if (s->fds[i] >= 0) {
			close(s->fds[i]);
		}
		s->fds[i] = -1;
	}
	s->nfds = 0;
	s->fd_overflow = false;
}

/* Checks that close the session; returns the descriptor or NULL after logging. */
static const struct msg_desc *
check_framing(struct vfu_session *s, const struct vfio_user_header *h, uint32_t len)
{
	const struct msg_desc *d;

	if ((h->flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_COMMAND ||
	    (h->flags & VFIO_USER_F_ERROR)) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix,
		          "message type 0x%x: we sent no command to reply to", h->flags);
		return NULL;
	}
	if (!s->versioned && h->cmd != VFIO_USER_VERSION) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix, "%s before VERSION", vfu_msg_name(h->cmd));
		return NULL;
	}
	if (s->fd_overflow) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix, "%s: more than %d fds", vfu_msg_name(h->cmd),
		          VFU_MAX_FDS);
		return NULL;
	}
	if (h->cmd >= VFIO_USER_MAX_COMMAND || g_msgs[h->cmd].handler == NULL) {
		return &g_msgs[0]; /* unknown: answered with an error, not fatal */
	}
	d = &g_msgs[h->cmd];
	if (len < d->min || len > d->max) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix, "%s: payload of %u bytes (expected %u..%u)",
		          d->name, len, d->min, d->max);
		return NULL;
	}
	if (s->nfds > d->max_fds) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix, "%s: %u fds (at most %u)", d->name, s->nfds,
		          d->max_fds);
		return NULL;
	}
	return d;
}

int
vfu_msg_dispatch(struct vfu_session *s)
{
	struct vfio_user_header h;
	const struct msg_desc *d;
	uint32_t len;
	int rc;

	if (s->got < sizeof(h)) {
		close_fds(s);
		return -EPROTO;
	}
	memcpy(&h, s->buf, sizeof(h));
	len = s->got - (uint32_t)sizeof(h);
	s->stat_msgs++;
	d = check_framing(s, &h, len);
	if (d == NULL) {
		close_fds(s);
		return -EPROTO;
	}
	if (d == &g_msgs[0]) {
		VH_LOG_RL(VH_LOG_WARN, s->prefix, "unknown command %u refused", h.cmd);
		close_fds(s);
		return send_reply(s, &h, -ENOSYS, NULL, 0, -1) < 0 ? -EPIPE : 0;
	}
	rc = d->handler(s, &h, s->buf + sizeof(h), len);
	close_fds(s);
	if (rc == -EPROTO) {
		return rc;
	}
	if (rc < 0) {
		VH_LOG_RL(VH_LOG_INFO, s->prefix, "%s refused: %s", d->name, strerror(-rc));
		rc = send_reply(s, &h, rc, NULL, 0, -1);
	}
	/* VFU_ASYNC and sent replies: nothing more to do; a failed send closes the session. */
	return rc < 0 ? -EPIPE : 0;
}

void
vfu_session_async_done(struct vfu_session *s, int err)
{
	struct iovec iov = {.iov_base = s->async_payload, .iov_len = s->async_len};

	if (!s->async) {
		return;
	}
	s->async = false;
	if (err == 0 && s->async_hdr.error_no != 0) {
		err = -(int)s->async_hdr.error_no;
	}
	if (!s->closing &&
	    send_reply(s, &s->async_hdr, err, &iov, s->async_len > 0 ? 1 : 0, -1) < 0) {
		vfu_session_close(s, "cannot send a reply");
	}
	vfu_session_release(s);
}
