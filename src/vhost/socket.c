/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-user transport: the listening socket, message reception with SCM_RIGHTS fds, replies.
 *
 * Threat model: the peer is any process that can connect to the socket (mode 0600, so normally
 * QEMU running as the same user). It chooses the header, the payload size and how many fds ride
 * along. We never read more than the largest legal payload, we take at most 8 fds per message,
 * and any fd we do not keep is closed (msg.c). A message that violates the framing closes the
 * session. QEMU 7.2 wedges if a connection is accepted and dropped, so we never accept while a
 * session is active: the listening socket is simply not polled.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/handover.h"
#include "core/log.h"
#include "vhost/session.h"
#include "vhost/upgrade.h"

static void session_input(void *arg, uint32_t events);

static void
listen_ready(void *arg, uint32_t events)
{
	struct vh_vhost_ctrlr *c = arg;
	struct vh_session *s;
	int fd;

	if (c->nsessions >= VH_VHOST_MAX_SESSIONS || c->deleting || vh_vhost_frozen()) {
		vh_sock_stop_listening(c); /* the next one waits in the backlog */
		return;
	}
	fd = accept4(c->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR) {
			VH_LOG_RL(VH_LOG_WARN, c->name, "accept: %s", strerror(errno));
		}
		return;
	}
	s = vh_session_new(c, fd);
	if (s == NULL) {
		/* Out of memory: nothing better to do than drop it, and say so. */
		VH_LOG_RL(VH_LOG_ERROR, c->name,
		          "cannot allocate a session; dropping the connection");
		close(fd);
		return;
	}
	if (vh_sock_watch(s) < 0) {
		VH_LOG_RL(VH_LOG_ERROR, c->name, "cannot watch the connection: %s",
		          strerror(errno));
		vh_session_close(s, "epoll failure");
		return;
	}
	c->stat_connections++;
	vh_session_accepted(s);
	if (c->nsessions >= VH_VHOST_MAX_SESSIONS) {
		vh_sock_stop_listening(c); /* the next one waits in the backlog */
	}
	/* A peer can connect and hang up in a loop: rate limited like every line it triggers. */
	VH_LOG_RL(VH_LOG_NOTICE, c->name, "front-end connected");
}

int
vh_sock_listen(struct vh_vhost_ctrlr *c)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char key[VH_HANDOVER_KEY_MAX];
	int fd, rc;

	if (strlen(c->sock_path) >= sizeof(sa.sun_path)) {
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, c->sock_path, strlen(c->sock_path) + 1);
	snprintf(key, sizeof(key), "sock:%s", c->sock_path);
	fd = vh_handover_take(key);
	if (fd >= 0) {
		/*
		 * The supervisor kept it bound while we were down, so QEMU's reconnects waited in
		 * the backlog; they are accepted as soon as we poll it.
		 */
		if (vh_fd_set_nonblock(fd) < 0) {
			close(fd);
			return -EBADF;
		}
		goto listening;
	}
	/*
	 * Replace a stale socket left by a crashed instance, but never a regular file and never a
	 * socket someone listens on (the RPC socket may live in the same directory).
	 */
	rc = vh_unix_unlink_stale(c->sock_path);
	if (rc < 0) {
		VH_ERR(c->name, "%s: %s", c->sock_path,
		       rc == -EADDRINUSE ? "in use: a server is listening there"
		       : rc == -EEXIST   ? "exists and is not a socket"
		                         : strerror(-rc));
		return rc;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	/* Create it owner-only from the start: no window where others could connect. */
	mode_t old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || listen(fd, 16) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (vh_handover_keep(key, fd) < 0) {
		VH_WARN(c->name, "supervisor cannot keep the socket across restarts");
	}
listening:
	c->listen_fd = fd;
	if (vh_vhost_frozen()) {
		return 0; /* a live upgrade's new process polls it once it serves */
	}
	c->listen_src = vh_evloop_add(vh_evloop_main(), fd, EPOLLIN, listen_ready, c);
	if (c->listen_src == NULL) {
		rc = -errno;
		close(fd);
		unlink(c->sock_path);
		c->listen_fd = -1;
		return rc;
	}
	return 0;
}

int
vh_sock_watch(struct vh_session *s)
{
	s->src = vh_evloop_add(vh_evloop_main(), s->fd, EPOLLIN, session_input, s);
	return s->src != NULL ? 0 : -errno;
}

void
vh_sock_stop_listening(struct vh_vhost_ctrlr *c)
{
	if (c->listen_src != NULL) {
		vh_evloop_del(c->listen_src);
		c->listen_src = NULL;
	}
}

void
vh_sock_resume_listening(struct vh_vhost_ctrlr *c)
{
	if (c->listen_src == NULL && c->listen_fd >= 0 && !c->deleting && !vh_vhost_frozen()) {
		c->listen_src =
		        vh_evloop_add(vh_evloop_main(), c->listen_fd, EPOLLIN, listen_ready, c);
		if (c->listen_src == NULL) {
			VH_LOG_RL(VH_LOG_ERROR, c->name, "cannot poll the listening socket: %s",
			          strerror(errno));
		}
	}
}

void
vh_sock_pause(struct vh_session *s)
{
	s->paused = true;
	if (s->src) {
		vh_evloop_mod(s->src, 0);
	}
}

void
vh_sock_resume(struct vh_session *s)
{
	if (s->wait_sibling) {
		return; /* resumed when the closing sibling is freed (session.c) */
	}
	if (vh_vhost_frozen()) {
		/* A live upgrade is taking over: the next message is the new process's. */
		vh_upgrade_poke();
		return;
	}
	s->paused = false;
	if (s->src) {
		vh_evloop_mod(s->src, EPOLLIN);
	}
}

void
vh_sock_close_fds(struct vh_session *s)
{
	for (unsigned i = 0; i < s->nfds; i++) {
		if (s->fds[i] >= 0) {
			close(s->fds[i]);
		}
		s->fds[i] = -1;
	}
	s->nfds = 0;
}

/* Receive into the message buffer; collects fds. Returns bytes read, 0 on EOF, -errno. */
static ssize_t
recv_some(struct vh_session *s, void *buf, size_t len)
{
	char cbuf[CMSG_SPACE(VHOST_USER_MAX_FDS * sizeof(int))];
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr mh = {
	        .msg_iov = &iov,
	        .msg_iovlen = 1,
	        .msg_control = cbuf,
	        .msg_controllen = sizeof(cbuf),
	};
	ssize_t n = recvmsg(s->fd, &mh, MSG_CMSG_CLOEXEC);

	if (n < 0) {
		return -errno;
	}
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
			continue;
		}
		int nf = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		int *fds = (int *)CMSG_DATA(cm);

		for (int i = 0; i < nf; i++) {
			if (s->nfds < VHOST_USER_MAX_FDS) {
				s->fds[s->nfds++] = fds[i];
			} else {
				close(fds[i]); /* more than the protocol allows */
				s->fd_overflow = true;
			}
		}
	}
	if (mh.msg_flags & MSG_CTRUNC) {
		return -EMSGSIZE; /* the kernel already dropped fds we could not take */
	}
	return n;
}

/*
 * Read as much of the current message as is available. Returns 1 when a whole message is in
 * s->msg, 0 when more bytes are needed, or -errno (EOF is -ECONNRESET).
 */
static int
read_message(struct vh_session *s)
{
	uint8_t *hdr = (uint8_t *)&s->msg;
	uint8_t *payload = (uint8_t *)&s->msg.payload;

	while (s->msg_got < VHOST_USER_HDR_SIZE) {
		ssize_t n = recv_some(s, hdr + s->msg_got, VHOST_USER_HDR_SIZE - s->msg_got);

		if (n == -EAGAIN) {
			return 0;
		}
		if (n < 0) {
			return (int)n;
		}
		if (n == 0) {
			return -ECONNRESET;
		}
		s->msg_got += (uint32_t)n;
	}
	if (s->msg.size > sizeof(s->msg.payload)) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix, "%s: payload size %u exceeds the maximum %zu",
		          vh_msg_name(s->msg.request), s->msg.size, sizeof(s->msg.payload));
		return -EMSGSIZE;
	}
	while (s->msg_got < VHOST_USER_HDR_SIZE + s->msg.size) {
		uint32_t want = VHOST_USER_HDR_SIZE + s->msg.size - s->msg_got;
		ssize_t n = recv_some(s, payload + (s->msg_got - VHOST_USER_HDR_SIZE), want);

		if (n == -EAGAIN) {
			return 0;
		}
		if (n < 0) {
			return (int)n;
		}
		if (n == 0) {
			return -ECONNRESET;
		}
		s->msg_got += (uint32_t)n;
	}
	return 1;
}

static void
session_input(void *arg, uint32_t events)
{
	struct vh_session *s = arg;

	/*
	 * A paused session (waiting for its queues to stop) still gets HUP/ERR: epoll reports them
	 * whatever the mask. The peer is gone, so close now instead of spinning on the event.
	 */
	if (s->paused && (events & (EPOLLHUP | EPOLLERR))) {
		vh_sock_close_fds(s);
		vh_session_close(s, "front-end hung up");
		return;
	}

	/* Bounded: one connection must not monopolise the control thread. */
	for (int i = 0; i < 64 && !s->paused && !s->closing; i++) {
		int rc = read_message(s);

		if (rc == 0) {
			if (events & (EPOLLHUP | EPOLLERR)) {
				vh_session_close(s, "front-end hung up");
			}
			return;
		}
		if (rc < 0) {
			/* fds that arrived with a message we will never dispatch are ours to close.
			 */
			vh_sock_close_fds(s);
			vh_session_close(s, rc == -ECONNRESET ? "front-end disconnected"
			                                      : "malformed message framing");
			return;
		}
		s->msg_got = 0;
		vh_msg_dispatch(s);
		/* Whatever the handler did not take is closed, whatever the message was. */
		vh_sock_close_fds(s);
		s->fd_overflow = false;
	}
}

/* Send header and payload as one message (one sendmsg, as the front-end expects). */
static int
send_msg(int fd, const struct vhost_user_msg *m, int pass_fd)
{
	struct iovec iov[2] = {
	        {.iov_base = (void *)m, .iov_len = VHOST_USER_HDR_SIZE},
	        {.iov_base = (void *)&m->payload, .iov_len = m->size},
	};
	char cbuf[CMSG_SPACE(sizeof(int))] = {0};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = m->size ? 2 : 1};

	if (pass_fd >= 0) {
		struct cmsghdr *cm;

		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
	}
	size_t want = VHOST_USER_HDR_SIZE + m->size;
	ssize_t n;

	/*
	 * MSG_DONTWAIT per call: the back-end channel is the front-end's socket, and it can clear
	 * O_NONBLOCK on the shared file description whenever it likes. Replies are small and the
	 * front-end waits for them, so a full buffer means a peer that does not read: we never
	 * wait for it.
	 */
	do {
		n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		return -errno;
	}
	return (size_t)n == want ? 0 : -EIO;
}

int
vh_sock_reply(struct vh_session *s, const struct vhost_user_msg *req, const void *payload,
              uint32_t size)
{
	return vh_sock_reply_fd(s, req, payload, size, -1);
}

int
vh_sock_reply_fd(struct vh_session *s, const struct vhost_user_msg *req, const void *payload,
                 uint32_t size, int fd)
{
	struct vhost_user_msg m;

	m.request = req->request;
	m.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
	m.size = size;
	if (size > sizeof(m.payload)) {
		return -EINVAL;
	}
	if (size > 0) {
		memcpy(&m.payload, payload, size);
	}
	return send_msg(s->fd, &m, fd);
}

int
vh_sock_send_backend(struct vh_session *s, uint32_t request, const void *payload, uint32_t size)
{
	struct vhost_user_msg m;

	if (s->backend_fd < 0) {
		return -ENOTCONN;
	}
	if (size > sizeof(m.payload)) {
		return -EINVAL;
	}
	m.request = request;
	m.flags = VHOST_USER_VERSION;
	m.size = size;
	if (size > 0) {
		memcpy(&m.payload, payload, size);
	}
	return send_msg(s->backend_fd, &m, -1);
}
