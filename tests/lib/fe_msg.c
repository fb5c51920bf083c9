/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-user message transport of the test front-end: connect with a deadline, send a header +
 * payload + SCM_RIGHTS fds in one sendmsg (as QEMU does), receive with a bounded wait.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fe_internal.h"
#include "fe_msg.h"

/* Replies larger than this are a broken peer, not something to buffer. */
#define FE_MAX_PAYLOAD 4096u

int64_t
fe_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
connect_once(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, rc;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

int
fe_connect_path(const char *path, int timeout_ms)
{
	int64_t deadline = fe_now_ms() + timeout_ms;
	struct timespec pause = {0, 5 * 1000 * 1000};
	int fd;

	for (;;) {
		fd = connect_once(path);
		if (fd >= 0) {
			return fd;
		}
		/* Not there yet (daemon starting, controller being created): retry until the
		 * deadline. */
		if (fd != -ENOENT && fd != -ECONNREFUSED) {
			return fd;
		}
		if (fe_now_ms() >= deadline) {
			return -ETIMEDOUT;
		}
		nanosleep(&pause, NULL);
	}
}

int
fe_send(int sock, uint32_t request, uint32_t flags, uint32_t size, const void *payload,
        uint32_t payload_len, const int *fds, unsigned int nfds)
{
	return fe_send_ex(sock, request, flags, size, payload, payload_len, fds, nfds, false);
}

int
fe_send_ex(int sock, uint32_t request, uint32_t flags, uint32_t size, const void *payload,
           uint32_t payload_len, const int *fds, unsigned int nfds, bool empty_cmsg)
{
	struct vhost_user_header hdr = {request, flags, size};
	char cbuf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
	struct iovec iov[2] = {
	        {.iov_base = &hdr, .iov_len = sizeof(hdr)},
	        {.iov_base = (void *)payload, .iov_len = payload_len},
	};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = payload_len ? 2 : 1};
	size_t total = sizeof(hdr) + payload_len, done = 0;
	ssize_t n;

	if (sock < 0) {
		return -ENOTCONN;
	}
	if (nfds > VHOST_USER_MAX_FDS) {
		return -EINVAL;
	}
	if (nfds || empty_cmsg) {
		struct cmsghdr *cm;

		/* nfds == 0: an SCM_RIGHTS header with no fd in it, as DPDK sends every message. */
		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		if (nfds) {
			memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
		}
	}
	do {
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		return errno == EPIPE ? -ECONNRESET : -errno;
	}
	done = (size_t)n;
	/* A short write on a stream socket: push the rest without fds. */
	while (done < total) {
		const uint8_t *p;
		size_t left;

		if (done < sizeof(hdr)) {
			p = (const uint8_t *)&hdr + done;
			left = sizeof(hdr) - done;
		} else {
			p = (const uint8_t *)payload + (done - sizeof(hdr));
			left = total - done;
		}
		n = send(sock, p, left, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			return errno == EPIPE ? -ECONNRESET : -errno;
		}
		done += (size_t)n;
	}
	return 0;
}

static int
wait_readable(int fd, int64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int64_t left;
	int rc;

	for (;;) {
		left = deadline - fe_now_ms();
		if (left < 0) {
			left = 0;
		}
		rc = poll(&p, 1, (int)left);
		if (rc > 0) {
			return 0;
		}
		if (rc == 0) {
			return -ETIMEDOUT;
		}
		if (errno != EINTR) {
			return -errno;
		}
	}
}

/* Close the fds that rode along, except the first one if keep != NULL and *keep < 0. */
static void
close_cmsg_fds(struct msghdr *mh, int *keep)
{
	struct cmsghdr *cm;

	for (cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			unsigned int i, n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			int fd;

			for (i = 0; i < n; i++) {
				memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
				if (keep && *keep < 0) {
					*keep = fd;
				} else {
					close(fd);
				}
			}
		}
	}
}

/*
 * Read exactly len bytes before the deadline. Fds that ride along are closed, but the first one
 * goes to *keep when keep != NULL (and *keep is still -1).
 */
static int
read_full_fd(int fd, void *buf, size_t len, int64_t deadline, int *keep)
{
	char cbuf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
	size_t got = 0;
	ssize_t n;
	int rc;

	while (got < len) {
		struct iovec iov = {(uint8_t *)buf + got, len - got};
		struct msghdr mh = {.msg_iov = &iov,
		                    .msg_iovlen = 1,
		                    .msg_control = cbuf,
		                    .msg_controllen = sizeof(cbuf)};

		rc = wait_readable(fd, deadline);
		if (rc < 0) {
			return rc;
		}
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			return errno == ECONNRESET ? -ECONNRESET : -errno;
		}
		close_cmsg_fds(&mh, keep);
		if (n == 0) {
			return -ECONNRESET;
		}
		got += (size_t)n;
	}
	return 0;
}

static int
read_full(int fd, void *buf, size_t len, int64_t deadline)
{
	return read_full_fd(fd, buf, len, deadline, NULL);
}

int
fe_recv(int sock, struct vhost_user_header *hdr, void *payload, uint32_t cap, int timeout_ms)
{
	return fe_recv_fd(sock, hdr, payload, cap, timeout_ms, NULL);
}

int
fe_recv_fd(int sock, struct vhost_user_header *hdr, void *payload, uint32_t cap, int timeout_ms,
           int *fd)
{
	int64_t deadline = fe_now_ms() + timeout_ms;
	uint8_t sink[256];
	uint32_t left;
	int rc;

	if (fd) {
		*fd = -1;
	}
	if (sock < 0) {
		return -ENOTCONN;
	}
	/* The sender attaches fds to the first byte of the message, i.e. to the header. */
	rc = read_full_fd(sock, hdr, sizeof(*hdr), deadline, fd);
	if (rc < 0) {
		goto fail;
	}
	if (hdr->size > FE_MAX_PAYLOAD) {
		rc = -EPROTO;
		goto fail;
	}
	rc = read_full_fd(sock, payload, hdr->size < cap ? hdr->size : cap, deadline, fd);
	if (rc < 0) {
		goto fail;
	}
	for (left = hdr->size > cap ? hdr->size - cap : 0; left;) {
		uint32_t n = left < sizeof(sink) ? left : (uint32_t)sizeof(sink);

		rc = read_full(sock, sink, n, deadline);
		if (rc < 0) {
			goto fail;
		}
		left -= n;
	}
	return (int)hdr->size;

fail:
	if (fd && *fd >= 0) {
		close(*fd);
		*fd = -1;
	}
	return rc;
}

/*
 * SPDK's and DPDK's vhost_user_read(): one recv() for the 12-byte header, one for the payload;
 * anything short is an error for them. A back-end that sends a reply in one sendmsg() has all
 * of it queued by the time the header is readable, so the payload read does not wait.
 */
int
fe_recv_oneshot(int sock, struct vhost_user_header *hdr, void *payload, uint32_t cap,
                int timeout_ms)
{
	char cbuf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
	struct iovec iov;
	struct msghdr mh;
	ssize_t n;
	int rc;

	if (sock < 0) {
		return -ENOTCONN;
	}
	rc = wait_readable(sock, fe_now_ms() + timeout_ms);
	if (rc < 0) {
		return rc;
	}
	for (int part = 0; part < 2; part++) {
		iov = (struct iovec){part ? payload : (void *)hdr, part ? hdr->size : sizeof(*hdr)};
		if (part && (hdr->size == 0 || hdr->size > cap)) {
			/* Larger than their message union: they fail it too. */
			return hdr->size == 0 ? 0 : -EPROTO;
		}
		mh = (struct msghdr){.msg_iov = &iov,
		                     .msg_iovlen = 1,
		                     .msg_control = cbuf,
		                     .msg_controllen = sizeof(cbuf)};
		do {
			n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		} while (n < 0 && errno == EINTR);
		if (n > 0) {
			close_cmsg_fds(&mh, NULL);
		}
		if (n == 0) {
			return -ECONNRESET;
		}
		if (n < 0) {
			return errno == EAGAIN ? -EPROTO : -errno;
		}
		if ((size_t)n != iov.iov_len) {
			return -EPROTO;
		}
	}
	return (int)hdr->size;
}

bool
fe_request_has_reply(uint32_t request)
{
	switch (request) {
	case VHOST_USER_GET_FEATURES:
	case VHOST_USER_GET_PROTOCOL_FEATURES:
	case VHOST_USER_GET_QUEUE_NUM:
	case VHOST_USER_GET_VRING_BASE:
	case VHOST_USER_GET_CONFIG:
	case VHOST_USER_GET_INFLIGHT_FD:
	case VHOST_USER_GET_MAX_MEM_SLOTS:
	case VHOST_USER_GET_STATUS:
	case VHOST_USER_SET_LOG_BASE:
	case VHOST_USER_POSTCOPY_ADVISE:
	case VHOST_USER_POSTCOPY_END:
		return true;
	default:
		return false;
	}
}

int64_t
vh_fe_now_ms(void)
{
	return fe_now_ms();
}

int
vh_fe_send_raw(struct vh_fe *fe, uint32_t request, uint32_t flags, uint32_t size,
               const void *payload, uint32_t payload_len, const int *fds, unsigned int nfds)
{
	return fe_send(fe->sock, request, flags, size, payload, payload_len, fds, nfds);
}

int
vh_fe_recv_raw(struct vh_fe *fe, struct vhost_user_header *hdr, void *payload, uint32_t cap,
               int timeout_ms)
{
	return fe_recv(fe->sock, hdr, payload, cap,
	               timeout_ms < 0 ? fe->opts.timeout_ms : timeout_ms);
}

int
vh_fe_call(struct vh_fe *fe, uint32_t request, uint32_t flags, const void *payload, uint32_t size,
           const int *fds, unsigned int nfds, void *reply, uint32_t reply_cap)
{
	/* The virtio-user initiators read replies the strict way (fe_recv_oneshot()). */
	bool strict = fe->opts.personality != VH_FE_QEMU72;
	struct vhost_user_header hdr;
	union vhost_user_payload buf;
	int rc;

	rc = fe_send_ex(fe->sock, request, flags, size, payload, size, fds, nfds,
	                fe->opts.personality == VH_FE_DPDK2211);
	if (rc < 0) {
		return rc;
	}
	if (!fe_request_has_reply(request) && !(flags & VHOST_USER_NEED_REPLY_MASK)) {
		return 0;
	}
	rc = strict ? fe_recv_oneshot(fe->sock, &hdr, &buf, sizeof(buf), fe->opts.timeout_ms)
	            : fe_recv(fe->sock, &hdr, &buf, sizeof(buf), fe->opts.timeout_ms);
	if (rc < 0) {
		return rc;
	}
	if (hdr.request != request ||
	    (hdr.flags & (VHOST_USER_VERSION_MASK | VHOST_USER_REPLY_MASK)) !=
	            (VHOST_USER_VERSION | VHOST_USER_REPLY_MASK) ||
	    (strict && hdr.flags != (VHOST_USER_VERSION | VHOST_USER_REPLY_MASK))) {
		return -EPROTO;
	}
	if (reply) {
		uint32_t n = (uint32_t)rc < reply_cap ? (uint32_t)rc : reply_cap;

		memset(reply, 0, reply_cap);
		memcpy(reply, &buf, n < sizeof(buf) ? n : sizeof(buf));
	}
	return rc;
}

int
vh_fe_wait_closed(struct vh_fe *fe, int timeout_ms)
{
	int64_t deadline = fe_now_ms() + timeout_ms;
	uint8_t b[64];
	ssize_t n;
	int rc;

	if (fe->sock < 0) {
		return 0;
	}
	rc = wait_readable(fe->sock, deadline);
	if (rc < 0) {
		return rc;
	}
	n = recv(fe->sock, b, sizeof(b), MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno == ECONNRESET)) {
		return 0;
	}
	return n < 0 ? -errno : -EPROTO;
}
