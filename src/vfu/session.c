/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfio-user transport: message reception with SCM_RIGHTS fds, replies, and the session's life.
 *
 * Threat model: the peer is any process that can connect to the controller's socket (mode 0600,
 * so normally QEMU running as the same user). It chooses the header, the message size and how
 * many fds ride along. We never buffer more than the largest legal message (VFU_MAX_MSG), we
 * take at most VFU_MAX_FDS fds per message (more fail the message and close the session), and
 * every fd we do not keep is closed (msg.c). Replies are sent with MSG_DONTWAIT: the client
 * shares the socket's file description and could make it blocking; a client that does not read
 * its replies is closed instead of waited for.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/evloop.h"
#include "core/log.h"
#include "vfu/session.h"

int
vfu_session_init(struct vfu_session *s, int fd, const struct vfu_dev_ops *ops, void *dev,
                 vfu_send_fn send, uint64_t max_mem, const char *name)
{
	memset(s, 0, sizeof(*s));
	s->buf = malloc(VFU_MAX_MSG);
	if (s->buf == NULL) {
		return -ENOMEM;
	}
	s->fd = fd;
	s->ops = ops;
	s->dev = dev;
	s->send = send;
	s->dma_fd = -1;
	for (unsigned i = 0; i < VFU_MAX_FDS; i++) {
		s->fds[i] = -1;
	}
	snprintf(s->prefix, sizeof(s->prefix), "%s", name);
	vfu_dma_init(&s->dma, s, max_mem, s->prefix);
	return 0;
}

void
vfu_session_fini(struct vfu_session *s)
{
	if (s->src != NULL) {
		vh_evloop_del(s->src);
		s->src = NULL;
	}
	vfu_dma_unmap_all(&s->dma);
	for (unsigned i = 0; i < VFU_MAX_FDS; i++) {
		if (s->fds[i] >= 0) {
			close(s->fds[i]);
			s->fds[i] = -1;
		}
	}
	if (s->dma_fd >= 0) {
		close(s->dma_fd);
		s->dma_fd = -1;
	}
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
	free(s->buf);
	s->buf = NULL;
}

static void
update_watch(struct vfu_session *s)
{
	if (s->src != NULL) {
		vh_evloop_mod(s->src, s->holds > 0 || s->closing ? 0 : EPOLLIN);
	}
}

void
vfu_session_hold(struct vfu_session *s)
{
	s->holds++;
	update_watch(s);
}

static void session_input(void *arg, uint32_t events);

void
vfu_session_release(struct vfu_session *s)
{
	if (s->holds > 0 && --s->holds == 0) {
		update_watch(s);
		/* Messages may already sit in our buffer's socket: epoll reports them (level). */
	}
}

void
vfu_session_close(struct vfu_session *s, const char *why)
{
	if (s->closing) {
		return;
	}
	s->closing = true;
	VH_LOG_RL(VH_LOG_NOTICE, s->prefix, "client session closed: %s", why);
	if (s->src != NULL) {
		vh_evloop_del(s->src);
		s->src = NULL;
	}
	/* The device stops its queues first; then the memory may go (vfu_session_disconnected). */
	s->ops->disconnect(s->dev, s);
}

void
vfu_session_disconnected(struct vfu_session *s)
{
	if (s->on_closed != NULL) {
		s->on_closed(s);
	}
}

/* ---- reception ---- */

static ssize_t
recv_some(struct vfu_session *s, void *buf, size_t len)
{
	char cbuf[CMSG_SPACE(VFU_MAX_FDS * sizeof(int))];
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr mh = {
	        .msg_iov = &iov,
	        .msg_iovlen = 1,
	        .msg_control = cbuf,
	        .msg_controllen = sizeof(cbuf),
	};
	ssize_t n = recvmsg(s->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);

	if (n < 0) {
		return -errno;
	}
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
			continue;
		}
		int nf = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		int fds[VFU_MAX_FDS];

		memcpy(fds, CMSG_DATA(cm), (size_t)VH_MIN(nf, VFU_MAX_FDS) * sizeof(int));
		for (int i = 0; i < nf && i < VFU_MAX_FDS; i++) {
			if (s->nfds < VFU_MAX_FDS) {
				s->fds[s->nfds++] = fds[i];
			} else {
				close(fds[i]);
				s->fd_overflow = true;
			}
		}
	}
	if (mh.msg_flags & MSG_CTRUNC) {
		/* The kernel dropped fds we had no room for: the message is unusable. */
		s->fd_overflow = true;
	}
	return n;
}

/* 1: a whole message is in s->buf; 0: more bytes needed; -errno: close (EOF: -ECONNRESET). */
static int
read_message(struct vfu_session *s)
{
	struct vfio_user_header h;
	uint32_t want;
	ssize_t n;

	for (;;) {
		if (s->got < sizeof(h)) {
			want = (uint32_t)sizeof(h);
		} else {
			memcpy(&h, s->buf, sizeof(h));
			if (h.msg_size < sizeof(h) || h.msg_size > VFU_MAX_MSG) {
				VH_LOG_RL(VH_LOG_ERROR, s->prefix,
				          "message size %u outside [%zu, %zu]", h.msg_size,
				          sizeof(h), (size_t)VFU_MAX_MSG);
				return -EMSGSIZE;
			}
			want = h.msg_size;
		}
		if (s->got == want) {
			return 1;
		}
		n = recv_some(s, s->buf + s->got, want - s->got);
		if (n == -EAGAIN || n == -EINTR) {
			return 0;
		}
		if (n < 0) {
			return (int)n;
		}
		if (n == 0) {
			return -ECONNRESET;
		}
		s->got += (uint32_t)n;
	}
}

static void
session_input(void *arg, uint32_t events)
{
	struct vfu_session *s = arg;

	/* Bounded: one client must not monopolise the control thread. */
	for (int i = 0; i < 64 && s->holds == 0 && !s->closing; i++) {
		int rc = read_message(s);

		if (rc == 0) {
			if (events & (EPOLLHUP | EPOLLERR)) {
				vfu_session_close(s, "client hung up");
			}
			return;
		}
		if (rc < 0) {
			for (unsigned k = 0; k < s->nfds; k++) {
				close(s->fds[k]);
				s->fds[k] = -1;
			}
			s->nfds = 0;
			vfu_session_close(s, rc == -ECONNRESET ? "client disconnected"
			                                       : "malformed message framing");
			return;
		}
		rc = vfu_msg_dispatch(s);
		s->got = 0;
		if (rc < 0) {
			vfu_session_close(s, rc == -EPIPE ? "cannot send a reply"
			                                  : "protocol violation");
			return;
		}
	}
}

int
vfu_session_watch(struct vfu_session *s)
{
	s->src = vh_evloop_add(vh_evloop_main(), s->fd, s->holds > 0 ? 0 : EPOLLIN, session_input,
	                       s);
	return s->src != NULL ? 0 : -errno;
}

void
vfu_session_unwatch(struct vfu_session *s)
{
	if (s->src != NULL) {
		vh_evloop_del(s->src);
		s->src = NULL;
	}
}

int
vfu_session_send_sock(struct vfu_session *s, const struct iovec *iov, int iovcnt, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
	size_t want = 0;
	ssize_t n;

	memset(cbuf, 0, sizeof(cbuf));
	for (int i = 0; i < iovcnt; i++) {
		want += iov[i].iov_len;
	}
	if (fd >= 0) {
		struct cmsghdr *cm;

		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	do {
		n = sendmsg(s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		return -errno;
	}
	return (size_t)n == want ? 0 : -EIO;
}
