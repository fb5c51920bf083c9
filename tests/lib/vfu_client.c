/* SPDX-License-Identifier: BSD-3-Clause */
/* A minimal vfio-user client + NVMe driver for tests (see vfu_client.h). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vfu/protocol.h"
#include "vfu_client.h"

#define PAGE 4096u

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
vc_connect(struct vfu_client *c, const char *sock, uint64_t mem_size, int timeout_ms)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	memset(c, 0, sizeof(*c));
	c->fd = c->mem_fd = c->bar0_fd = -1;
	for (unsigned i = 0; i < VC_MAX_VECTORS; i++) {
		c->irq_fd[i] = -1;
	}
	if (strlen(sock) >= sizeof(sa.sun_path)) {
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, sock);
	for (;;) {
		c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd < 0) {
			return -errno;
		}
		if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			break;
		}
		close(c->fd);
		c->fd = -1;
		if (now_ms() > deadline) {
			return -ETIMEDOUT;
		}
		poll(NULL, 0, 10); /* the socket is not there yet: a bounded retry, not a sync */
	}
	c->mem_fd = memfd_create("vc-guest-ram", MFD_CLOEXEC);
	if (c->mem_fd < 0 || ftruncate(c->mem_fd, (off_t)mem_size) < 0) {
		return -errno;
	}
	c->mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->mem_fd, 0);
	if (c->mem == MAP_FAILED) {
		c->mem = NULL;
		return -errno;
	}
	c->mem_size = mem_size;
	c->mem_iova = 0x100000; /* guest "RAM" at 1 MiB, like a PC's above the ISA hole */
	c->alloc_next = PAGE;
	c->alloc_wrap = PAGE;
	return 0;
}

void
vc_close(struct vfu_client *c)
{
	if (c->fd >= 0) {
		close(c->fd);
	}
	if (c->bar0_map != NULL) {
		munmap(c->bar0_map, PAGE);
	}
	if (c->bar0_fd >= 0) {
		close(c->bar0_fd);
	}
	for (unsigned i = 0; i < VC_MAX_VECTORS; i++) {
		if (c->irq_fd[i] >= 0) {
			close(c->irq_fd[i]);
		}
	}
	if (c->mem != NULL) {
		munmap(c->mem, c->mem_size);
	}
	if (c->mem_fd >= 0) {
		close(c->mem_fd);
	}
	memset(c, 0, sizeof(*c));
	c->fd = c->mem_fd = c->bar0_fd = -1;
}

int
vc_send_raw(struct vfu_client *c, const void *buf, size_t len, const int *fds, unsigned nfds)
{
	char cbuf[CMSG_SPACE(64 * sizeof(int))];
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	if (nfds > 64) {
		return -EINVAL;
	}
	if (nfds > 0) {
		struct cmsghdr *cm;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
	if (n < 0) {
		return -errno;
	}
	return (size_t)n == len ? 0 : -EIO;
}

/* Read exactly len bytes (fds of the first segment into *rfd). 5 s at most. */
static int
recv_all(struct vfu_client *c, void *buf, size_t len, int *rfd)
{
	size_t got = 0;

	while (got < len) {
		char cbuf[CMSG_SPACE(4 * sizeof(int))];
		struct iovec iov = {.iov_base = (uint8_t *)buf + got, .iov_len = len - got};
		struct msghdr mh = {.msg_iov = &iov,
		                    .msg_iovlen = 1,
		                    .msg_control = cbuf,
		                    .msg_controllen = sizeof(cbuf)};
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, 5000) <= 0) {
			return -ETIMEDOUT;
		}
		n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0) {
			return -errno;
		}
		if (n == 0) {
			return -ECONNRESET;
		}
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			int nf = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			int fds[4];

			memcpy(fds, CMSG_DATA(cm), (size_t)(nf > 4 ? 4 : nf) * sizeof(int));
			for (int i = 0; i < nf && i < 4; i++) {
				if (rfd != NULL && *rfd < 0) {
					*rfd = fds[i];
				} else {
					close(fds[i]);
				}
			}
		}
		got += (size_t)n;
	}
	return 0;
}

int
vc_msg(struct vfu_client *c, uint16_t cmd, uint32_t flags, const void *payload, size_t len,
       const int *fds, unsigned nfds, void *reply, size_t reply_max, size_t *reply_len, int *err,
       int *rfd)
{
	struct vfio_user_header h = {
	        .msg_id = c->next_id++,
	        .cmd = cmd,
	        .msg_size = (uint32_t)(sizeof(h) + len),
	        .flags = flags,
	};
	uint8_t *buf = malloc(sizeof(h) + len);
	int rc;

	if (rfd != NULL) {
		*rfd = -1;
	}
	if (err != NULL) {
		*err = 0;
	}
	if (buf == NULL) {
		return -ENOMEM;
	}
	memcpy(buf, &h, sizeof(h));
	if (len > 0) {
		memcpy(buf + sizeof(h), payload, len);
	}
	rc = vc_send_raw(c, buf, sizeof(h) + len, fds, nfds);
	free(buf);
	if (rc < 0 || (flags & VFIO_USER_F_NO_REPLY)) {
		return rc;
	}
	return vc_recv_reply(c, cmd, reply, reply_max, reply_len, err, rfd);
}

int
vc_recv_reply(struct vfu_client *c, uint16_t cmd, void *reply, size_t reply_max, size_t *reply_len,
              int *err, int *rfd)
{
	struct vfio_user_header h;
	uint8_t *rbuf;
	int rc;

	if (rfd != NULL) {
		*rfd = -1;
	}
	if (err != NULL) {
		*err = 0;
	}
	rc = recv_all(c, &h, sizeof(h), rfd);
	if (rc < 0) {
		return rc;
	}
	if (h.msg_size < sizeof(h) || h.msg_size > (1u << 24)) {
		return -EPROTO;
	}
	rbuf = malloc(h.msg_size - sizeof(h) + 1);
	if (rbuf == NULL) {
		return -ENOMEM;
	}
	rc = recv_all(c, rbuf, h.msg_size - sizeof(h), rfd);
	if (rc == 0) {
		size_t plen = h.msg_size - sizeof(h);

		if (reply != NULL) {
			memcpy(reply, rbuf, plen < reply_max ? plen : reply_max);
		}
		if (reply_len != NULL) {
			*reply_len = plen;
		}
		if (err != NULL && (h.flags & VFIO_USER_F_ERROR)) {
			*err = h.error_no ? (int)h.error_no : EIO;
		}
		if ((h.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_REPLY || h.cmd != cmd) {
			rc = -EPROTO;
		}
	}
	free(rbuf);
	return rc;
}

bool
vc_closed_by_server(struct vfu_client *c, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	char b[256];

	for (;;) {
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		int left = (int)(deadline > now_ms() ? deadline - now_ms() : 0);
		ssize_t n;

		if (poll(&p, 1, left) <= 0) {
			return false;
		}
		n = recv(c->fd, b, sizeof(b), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET)) {
			return true;
		}
		if (n < 0 && errno != EAGAIN) {
			return true;
		}
	}
}

/* A simple command: payload in, payload out, returns -err or 0. */
static int
simple(struct vfu_client *c, uint16_t cmd, const void *p, size_t len, const int *fds, unsigned nfds,
       void *reply, size_t max, int *rfd)
{
	int err = 0, rc = vc_msg(c, cmd, 0, p, len, fds, nfds, reply, max, NULL, &err, rfd);

	return rc < 0 ? rc : -err;
}

int
vc_version(struct vfu_client *c)
{
	/* QEMU 10.2's capabilities, verbatim in shape. */
	static const char caps[] =
	        "{\"capabilities\":{\"migration\":{\"pgsize\":4096,\"max_bitmap_size\":268435456},"
	        "\"max_msg_fds\":16,\"max_data_xfer_size\":1048576,\"pgsizes\":4096,"
	        "\"max_dma_maps\":65535,\"write_multiple\":true}}";
	uint8_t buf[4 + sizeof(caps)], reply[512];
	uint16_t v[2] = {0, 0};
	size_t rlen = 0;
	int err = 0, rc;

	memcpy(buf, v, 4);
	memcpy(buf + 4, caps, sizeof(caps));
	rc = vc_msg(c, VFIO_USER_VERSION, 0, buf, sizeof(buf), NULL, 0, reply, sizeof(reply) - 1,
	            &rlen, &err, NULL);
	if (rc < 0 || err) {
		return rc < 0 ? rc : -err;
	}
	/* QEMU refuses a reply longer than its request, or one without a terminated string. */
	if (rlen > sizeof(buf) || rlen < 5 || reply[rlen - 1] != '\0') {
		return -EPROTO;
	}
	return 0;
}

int
vc_dma_map(struct vfu_client *c, uint64_t iova, uint64_t size, uint64_t offset, int fd,
           uint32_t flags)
{
	struct vfio_user_dma_map m = {
	        .argsz = sizeof(m), .flags = flags, .offset = offset, .addr = iova, .size = size};

	return simple(c, VFIO_USER_DMA_MAP, &m, sizeof(m), &fd, fd >= 0 ? 1 : 0, NULL, 0, NULL);
}

int
vc_dma_unmap(struct vfu_client *c, uint64_t iova, uint64_t size, uint32_t flags)
{
	struct vfio_user_dma_unmap u = {
	        .argsz = sizeof(u), .flags = flags, .addr = iova, .size = size};
	struct vfio_user_dma_unmap r;
	int rc = simple(c, VFIO_USER_DMA_UNMAP, &u, sizeof(u), NULL, 0, &r, sizeof(r), NULL);

	if (rc == 0 && (r.addr != iova || r.size != size)) {
		return -EPROTO; /* the reply echoes the request */
	}
	return rc;
}

int
vc_region_read(struct vfu_client *c, uint32_t region, uint64_t off, void *buf, uint32_t count)
{
	struct vfio_user_region_access a = {.offset = off, .region = region, .count = count};
	uint8_t *r = malloc(sizeof(a) + count);
	size_t rlen = 0;
	int err = 0, rc;

	if (r == NULL) {
		return -ENOMEM;
	}
	rc = vc_msg(c, VFIO_USER_REGION_READ, 0, &a, sizeof(a), NULL, 0, r, sizeof(a) + count,
	            &rlen, &err, NULL);
	if (rc == 0 && err == 0) {
		if (rlen != sizeof(a) + count) {
			rc = -EPROTO;
		} else {
			memcpy(buf, r + sizeof(a), count);
		}
	}
	free(r);
	return rc < 0 ? rc : -err;
}

int
vc_region_write(struct vfu_client *c, uint32_t region, uint64_t off, const void *buf,
                uint32_t count)
{
	struct vfio_user_region_access a = {.offset = off, .region = region, .count = count};
	uint8_t *m = malloc(sizeof(a) + count);
	int rc;

	if (m == NULL) {
		return -ENOMEM;
	}
	memcpy(m, &a, sizeof(a));
	memcpy(m + sizeof(a), buf, count);
	rc = simple(c, VFIO_USER_REGION_WRITE, m, sizeof(a) + count, NULL, 0, NULL, 0, NULL);
	free(m);
	return rc;
}

int
vc_set_irqs(struct vfu_client *c, uint32_t index, uint32_t flags, uint32_t start, uint32_t count,
            const int *fds, unsigned nfds)
{
	struct vfio_user_irq_set s = {
	        .argsz = sizeof(s), .flags = flags, .index = index, .start = start, .count = count};

	return simple(c, VFIO_USER_DEVICE_SET_IRQS, &s, sizeof(s), fds, nfds, NULL, 0, NULL);
}

int
vc_device_reset(struct vfu_client *c)
{
	return simple(c, VFIO_USER_DEVICE_RESET, NULL, 0, NULL, 0, NULL, 0, NULL);
}

uint64_t
vc_irq_count(struct vfu_client *c, unsigned v)
{
	uint64_t n = 0;

	if (v >= VC_MAX_VECTORS || c->irq_fd[v] < 0 || read(c->irq_fd[v], &n, sizeof(n)) != 8) {
		return 0;
	}
	return n;
}

int
vc_setup(struct vfu_client *c, unsigned nvec)
{
	struct vfio_user_device_info di = {.argsz = sizeof(di)}, dr;
	struct {
		struct vfio_user_region_info info;
		struct vfio_user_cap_sparse_mmap cap;
		struct vfio_user_sparse_area areas[4];
	} ri;
	struct vfio_user_region_info rq = {.argsz = sizeof(ri),
	                                   .index = VFIO_PCI_BAR0_REGION_INDEX};
	int rc, fd = -1, fds[VC_MAX_VECTORS];

	rc = vc_version(c);
	if (rc == 0) {
		rc = vc_dma_map(c, c->mem_iova, c->mem_size, 0, c->mem_fd,
		                VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE);
	}
	if (rc == 0) {
		rc = simple(c, VFIO_USER_DEVICE_GET_INFO, &di, sizeof(di), NULL, 0, &dr, sizeof(dr),
		            NULL);
	}
	if (rc == 0 && (!(dr.flags & VFIO_DEVICE_FLAGS_PCI) || dr.num_regions < 9)) {
		rc = -EPROTO;
	}
	if (rc == 0) {
		memset(&ri, 0, sizeof(ri));
		rc = simple(c, VFIO_USER_DEVICE_GET_REGION_INFO, &rq, sizeof(rq), NULL, 0, &ri,
		            sizeof(ri), &fd);
	}
	if (rc < 0) {
		return rc;
	}
	if (!(ri.info.flags & VFIO_REGION_INFO_FLAG_MMAP) || fd < 0 ||
	    !(ri.info.flags & VFIO_REGION_INFO_FLAG_CAPS) || ri.cap.nr_areas != 1) {
		if (fd >= 0) {
			close(fd);
		}
		return -EPROTO;
	}
	c->bar0_fd = fd;
	c->db_offset = ri.cap.nr_areas ? ri.areas[0].offset : 0;
	/* Like QEMU: map the sparse area at region offset + area offset. */
	c->bar0_map = mmap(NULL, ri.areas[0].size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
	                   (off_t)(ri.info.offset + ri.areas[0].offset));
	if (c->bar0_map == MAP_FAILED) {
		c->bar0_map = NULL;
		return -errno;
	}
	c->cap_lo = vc_reg32(c, 0);
	if (nvec > VC_MAX_VECTORS) {
		nvec = VC_MAX_VECTORS;
	}
	for (unsigned i = 0; i < nvec; i++) {
		c->irq_fd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		fds[i] = c->irq_fd[i];
	}
	c->nvec = nvec;
	/* QEMU sends at most max_msg_fds (16) per message. */
	for (unsigned s = 0; s < nvec && rc == 0; s += 16) {
		unsigned n = nvec - s < 16 ? nvec - s : 16;

		rc = vc_set_irqs(c, VFIO_PCI_MSIX_IRQ_INDEX,
		                 VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, s, n,
		                 &fds[s], n);
	}
	return rc;
}

/* ---- guest memory ---- */

uint64_t
vc_alloc(struct vfu_client *c, uint64_t len, uint64_t align, void **va)
{
	uint64_t off = (c->alloc_next + align - 1) & ~(align - 1);

	if (off + len > c->mem_size) {
		/* Wrap around: tests allocate per phase and reuse the memory freely. */
		off = c->alloc_wrap;
	}
	c->alloc_next = off + len;
	if (va != NULL) {
		*va = c->mem + off;
	}
	return c->mem_iova + off;
}

void
vc_alloc_mark(struct vfu_client *c)
{
	c->alloc_wrap = c->alloc_next;
}

void *
vc_va(struct vfu_client *c, uint64_t iova)
{
	return c->mem + (iova - c->mem_iova);
}

/* ---- NVMe ---- */

uint32_t
vc_reg32(struct vfu_client *c, uint32_t off)
{
	uint32_t v = 0xffffffffu;

	vc_region_read(c, VFIO_PCI_BAR0_REGION_INDEX, off, &v, 4);
	return v;
}

int
vc_wreg32(struct vfu_client *c, uint32_t off, uint32_t v)
{
	return vc_region_write(c, VFIO_PCI_BAR0_REGION_INDEX, off, &v, 4);
}

int
vc_wreg64(struct vfu_client *c, uint32_t off, uint64_t v)
{
	return vc_region_write(c, VFIO_PCI_BAR0_REGION_INDEX, off, &v, 8);
}

static volatile uint32_t *
doorbell(struct vfu_client *c, uint16_t qid, bool cq)
{
	return (volatile uint32_t *)(c->bar0_map + (2u * qid + (cq ? 1 : 0)) * 4);
}

static int
wait_csts(struct vfu_client *c, uint32_t mask, uint32_t want, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		uint32_t v = vc_reg32(c, 0x1c);

		if (v == 0xffffffffu) {
			return -EIO;
		}
		if ((v & mask) == want) {
			return 0;
		}
		if (v & 0x2) {
			return -EFAULT; /* CFS */
		}
		if (now_ms() > deadline) {
			return -ETIMEDOUT;
		}
	}
}

static void
queue_init(struct vfu_client *c, uint16_t qid, uint16_t size, uint16_t iv)
{
	struct vc_queue *q = &c->q[qid];
	void *sq, *cq;

	memset(q, 0, sizeof(*q));
	q->qid = qid;
	q->size = size;
	q->sq_iova = vc_alloc(c, (uint64_t)size * 64, PAGE, &sq);
	q->cq_iova = vc_alloc(c, (uint64_t)size * 16, PAGE, &cq);
	memset(sq, 0, (size_t)size * 64);
	memset(cq, 0, (size_t)size * 16);
	q->sq = sq;
	q->cq = cq;
	q->phase = 1;
	q->iv = iv;
}

int
vc_nvme_enable(struct vfu_client *c, uint16_t size, int timeout_ms)
{
	int rc;

	queue_init(c, 0, size, 0);
	rc = vc_wreg32(c, 0x24, ((uint32_t)(size - 1) << 16) | (size - 1u));
	if (rc == 0) {
		rc = vc_wreg64(c, 0x28, c->q[0].sq_iova);
	}
	if (rc == 0) {
		rc = vc_wreg64(c, 0x30, c->q[0].cq_iova);
	}
	/* IOSQES 6, IOCQES 4, EN. */
	if (rc == 0) {
		rc = vc_wreg32(c, 0x14, (6u << 16) | (4u << 20) | 1u);
	}
	return rc < 0 ? rc : wait_csts(c, 1, 1, timeout_ms);
}

int
vc_nvme_disable(struct vfu_client *c, int timeout_ms)
{
	int rc = vc_wreg32(c, 0x14, 0);

	for (unsigned i = 0; i < VC_MAX_QUEUES; i++) {
		c->q[i].size = 0;
	}
	return rc < 0 ? rc : wait_csts(c, 1, 0, timeout_ms);
}

int
vc_nvme_shutdown(struct vfu_client *c, int timeout_ms)
{
	int rc = vc_wreg32(c, 0x14, (6u << 16) | (4u << 20) | 1u | (1u << 14));

	return rc < 0 ? rc : wait_csts(c, 0xc, 0x8, timeout_ms);
}

int
vc_queue_cmd(struct vfu_client *c, uint16_t qid, struct vh_nvme_sqe *cmd)
{
	struct vc_queue *q = &c->q[qid];

	if (qid >= VC_MAX_QUEUES || q->size == 0) {
		return -EINVAL;
	}
	if (q->outstanding + 1u >= q->size) {
		return -EAGAIN;
	}
	cmd->cid = q->next_cid++;
	memcpy(&q->sq[q->sq_tail], cmd, sizeof(*cmd));
	q->sq_tail = (uint16_t)((q->sq_tail + 1) % q->size);
	q->outstanding++;
	return cmd->cid;
}

void
vc_ring(struct vfu_client *c, uint16_t qid)
{
	__atomic_thread_fence(__ATOMIC_RELEASE); /* entries before the doorbell */
	*doorbell(c, qid, false) = c->q[qid].sq_tail;
}

int
vc_submit(struct vfu_client *c, uint16_t qid, struct vh_nvme_sqe *cmd)
{
	int cid = vc_queue_cmd(c, qid, cmd);

	if (cid >= 0) {
		vc_ring(c, qid);
	}
	return cid;
}

int
vc_reap(struct vfu_client *c, uint16_t qid, struct vh_nvme_cqe *out, int max)
{
	struct vc_queue *q = &c->q[qid];
	int n = 0;

	while (n < max && q->size != 0) {
		volatile struct vh_nvme_cqe *e = &q->cq[q->cq_head];
		uint16_t st = __atomic_load_n(&e->status, __ATOMIC_ACQUIRE);

		if ((st & 1) != q->phase) {
			break;
		}
		out[n].dw0 = e->dw0;
		out[n].dw1 = e->dw1;
		out[n].sqhd = e->sqhd;
		out[n].sqid = e->sqid;
		out[n].cid = e->cid;
		out[n].status = st;
		n++;
		if (++q->cq_head == q->size) {
			q->cq_head = 0;
			q->phase ^= 1;
		}
		if (q->outstanding > 0) {
			q->outstanding--;
		}
	}
	if (n > 0) {
		*doorbell(c, qid, true) = q->cq_head;
	}
	return n;
}

int
vc_wait(struct vfu_client *c, uint16_t qid, uint16_t cid, uint32_t *dw0, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	struct vh_nvme_cqe e;

	for (;;) {
		while (vc_reap(c, qid, &e, 1) == 1) {
			if (e.cid == cid) {
				if (dw0 != NULL) {
					*dw0 = e.dw0;
				}
				return e.status >> 1;
			}
		}
		if (now_ms() > deadline) {
			return -ETIMEDOUT;
		}
	}
}

int
vc_cmd(struct vfu_client *c, uint16_t qid, struct vh_nvme_sqe *cmd, uint32_t *dw0, int timeout_ms)
{
	int cid = vc_submit(c, qid, cmd);

	return cid < 0 ? cid : vc_wait(c, qid, (uint16_t)cid, dw0, timeout_ms);
}

int
vc_identify(struct vfu_client *c, uint8_t cns, uint32_t nsid, void *buf4k)
{
	struct vh_nvme_sqe cmd;
	void *va;
	uint64_t iova = vc_alloc(c, PAGE, PAGE, &va);
	int st;

	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = VH_NVME_ADM_IDENTIFY;
	cmd.nsid = nsid;
	cmd.prp1 = iova;
	cmd.cdw10 = cns;
	memset(va, 0xa5, PAGE);
	st = vc_cmd(c, 0, &cmd, NULL, 5000);
	if (st == 0 && buf4k != NULL) {
		memcpy(buf4k, va, PAGE);
	}
	return st;
}

int
vc_set_num_queues(struct vfu_client *c, uint16_t n, uint32_t *dw0)
{
	struct vh_nvme_sqe cmd;

	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = VH_NVME_ADM_SET_FEATURES;
	cmd.cdw10 = VH_NVME_FEAT_NUM_QUEUES;
	cmd.cdw11 = ((uint32_t)(n - 1) << 16) | (n - 1u);
	return vc_cmd(c, 0, &cmd, dw0, 5000);
}

int
vc_create_io_queue(struct vfu_client *c, uint16_t qid, uint16_t size, uint16_t iv)
{
	struct vh_nvme_sqe cmd;
	int st;

	queue_init(c, qid, size, iv);
	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = VH_NVME_ADM_CREATE_CQ;
	cmd.prp1 = c->q[qid].cq_iova;
	cmd.cdw10 = ((uint32_t)(size - 1) << 16) | qid;
	cmd.cdw11 = iv == VC_NO_IRQ ? VH_NVME_QUEUE_PC
	                            : ((uint32_t)iv << 16) | VH_NVME_CQ_IEN | VH_NVME_QUEUE_PC;
	st = vc_cmd(c, 0, &cmd, NULL, 30000);
	if (st != 0) {
		c->q[qid].size = 0;
		return st;
	}
	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = VH_NVME_ADM_CREATE_SQ;
	cmd.prp1 = c->q[qid].sq_iova;
	cmd.cdw10 = ((uint32_t)(size - 1) << 16) | qid;
	cmd.cdw11 = ((uint32_t)qid << 16) | VH_NVME_QUEUE_PC;
	st = vc_cmd(c, 0, &cmd, NULL, 30000);
	if (st != 0) {
		c->q[qid].size = 0;
	}
	return st;
}

int
vc_delete_io_queue(struct vfu_client *c, uint16_t qid)
{
	struct vh_nvme_sqe cmd;
	int st;

	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = VH_NVME_ADM_DELETE_SQ;
	cmd.cdw10 = qid;
	st = vc_cmd(c, 0, &cmd, NULL, 10000);
	if (st != 0) {
		return st;
	}
	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = VH_NVME_ADM_DELETE_CQ;
	cmd.cdw10 = qid;
	st = vc_cmd(c, 0, &cmd, NULL, 10000);
	c->q[qid].size = 0;
	return st;
}

void
vc_build_prp(struct vfu_client *c, struct vh_nvme_sqe *cmd, uint64_t iova, uint64_t len)
{
	uint64_t first = PAGE - (iova & (PAGE - 1));
	uint64_t rest, *list;
	unsigned n;

	cmd->prp1 = iova;
	cmd->prp2 = 0;
	if (len <= first) {
		return;
	}
	rest = len - first;
	if (rest <= PAGE) {
		cmd->prp2 = iova + first;
		return;
	}
	n = (unsigned)((rest + PAGE - 1) / PAGE);
	/* One list page holds 512 entries: enough for MDTS (128 KiB). */
	cmd->prp2 = vc_alloc(c, PAGE, PAGE, (void **)&list);
	for (unsigned i = 0; i < n && i < 512; i++) {
		list[i] = iova + first + (uint64_t)i * PAGE;
	}
}

void
vc_build_sgl(struct vfu_client *c, struct vh_nvme_sqe *cmd, uint64_t iova, uint64_t len)
{
	struct {
		uint64_t addr;
		uint32_t len;
		uint8_t rsvd[3];
		uint8_t type;
	} * seg, d0;
	unsigned n = 0;

	seg = NULL;
	uint64_t seg_iova = vc_alloc(c, PAGE, PAGE, (void **)&seg);

	while (len > 0) {
		uint64_t l = PAGE - (iova & (PAGE - 1));

		if (l > len) {
			l = len;
		}
		memset(&seg[n], 0, sizeof(seg[n]));
		seg[n].addr = iova;
		seg[n].len = (uint32_t)l;
		seg[n].type = 0x00; /* Data Block, address */
		n++;
		iova += l;
		len -= l;
	}
	memset(&d0, 0, sizeof(d0));
	d0.addr = seg_iova;
	d0.len = n * 16;
	d0.type = 0x30; /* Last Segment */
	memcpy(&cmd->prp1, &d0, sizeof(d0));
	cmd->fuse_psdt = (uint8_t)((cmd->fuse_psdt & 0x3f) | (1u << 6));
}

void
vc_rw_cmd(struct vfu_client *c, struct vh_nvme_sqe *cmd, uint8_t opc, uint32_t nsid, uint64_t slba,
          uint32_t nlb, uint64_t iova, uint32_t block_size)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->opc = opc;
	cmd->nsid = nsid;
	cmd->cdw10 = (uint32_t)slba;
	cmd->cdw11 = (uint32_t)(slba >> 32);
	cmd->cdw12 = nlb - 1;
	vc_build_prp(c, cmd, iova, (uint64_t)nlb * block_size);
}
