/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Worker side of the supervisor channel (see handover.h). The channel is a SOCK_SEQPACKET
 * socketpair: one datagram per request, "KEEP <key>" with one fd, "DROP <key>", or a notification
 * word. The inherited fds arrive in the environment as lines "<fd>:<key>".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/evloop.h"
#include "core/handover.h"
#include "core/log.h"
#include "core/util.h"

#define MAX_INHERITED 256

struct inherited {
	int fd;
	char key[VH_HANDOVER_KEY_MAX];
};

static struct inherited g_inh[MAX_INHERITED];
static unsigned g_ninh;
static int g_chan = -1;

int
vh_handover_init(void)
{
	const char *chan = getenv(VH_HANDOVER_ENV_FD);
	const char *list = getenv(VH_HANDOVER_ENV_FDS);
	char *copy, *save = NULL;

	if (chan == NULL) {
		return 0;
	}
	g_chan = atoi(chan);
	if (g_chan <= 2 || vh_fd_set_cloexec(g_chan) < 0) {
		g_chan = -1;
		return -EBADF;
	}
	if (list == NULL || *list == '\0') {
		return 0;
	}
	copy = strdup(list);
	if (copy == NULL) {
		return -ENOMEM;
	}
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *colon = strchr(line, ':');

		if (colon == NULL || g_ninh >= MAX_INHERITED) {
			continue;
		}
		*colon = '\0';
		g_inh[g_ninh].fd = atoi(line);
		if (vh_strlcpy_checked(g_inh[g_ninh].key, colon + 1, VH_HANDOVER_KEY_MAX) == 0 &&
		    g_inh[g_ninh].fd > 2) {
			vh_fd_set_cloexec(g_inh[g_ninh].fd);
			g_ninh++;
		}
	}
	free(copy);
	VH_NOTICE("handover", "supervised; inherited %u descriptor(s)", g_ninh);
	return 0;
}

bool
vh_handover_supervised(void)
{
	return g_chan >= 0;
}

int
vh_handover_take(const char *key)
{
	for (unsigned i = 0; i < g_ninh; i++) {
		if (g_inh[i].fd >= 0 && strcmp(g_inh[i].key, key) == 0) {
			int fd = g_inh[i].fd;

			g_inh[i].fd = -1;
			return fd;
		}
	}
	return -ENOENT;
}

static int
send_req(const char *text, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = {0};
	struct iovec iov = {.iov_base = (void *)text, .iov_len = strlen(text)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	if (g_chan < 0) {
		return 0;
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
	if (sendmsg(g_chan, &mh, MSG_NOSIGNAL) < 0) {
		return -errno;
	}
	return 0;
}

int
vh_handover_keep(const char *key, int fd)
{
	char buf[VH_HANDOVER_KEY_MAX + 8];

	if (strchr(key, '\n') != NULL || strlen(key) >= VH_HANDOVER_KEY_MAX) {
		return -EINVAL;
	}
	snprintf(buf, sizeof(buf), "KEEP %s", key);
	return send_req(buf, fd);
}

void
vh_handover_drop(const char *key)
{
	char buf[VH_HANDOVER_KEY_MAX + 8];

	snprintf(buf, sizeof(buf), "DROP %s", key);
	send_req(buf, -1);
}

void
vh_handover_notify(const char *what)
{
	send_req(what, -1);
}

void
vh_handover_close_unclaimed(void)
{
	for (unsigned i = 0; i < g_ninh; i++) {
		if (g_inh[i].fd >= 0) {
			VH_NOTICE("handover", "dropping unused inherited '%s'", g_inh[i].key);
			close(g_inh[i].fd);
			vh_handover_drop(g_inh[i].key);
			g_inh[i].fd = -1;
		}
	}
}

static void (*g_watch_cb)(const char *text, int fd);
static struct vh_evsource *g_watch_src;

static void
chan_input(void *arg, uint32_t events)
{
	char buf[512];
	char cbuf[CMSG_SPACE(sizeof(int))];

	/* Bounded: the supervisor says little, and a stuck loop must not hold the control thread.
	 */
	for (int n = 0; n < 16; n++) {
		struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf) - 1};
		struct msghdr mh = {
		        .msg_iov = &iov,
		        .msg_iovlen = 1,
		        .msg_control = cbuf,
		        .msg_controllen = sizeof(cbuf),
		};
		ssize_t len = recvmsg(g_chan, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		int fd = -1;

		if (len <= 0) {
			if (len == 0 || (errno != EAGAIN && errno != EINTR)) {
				/* The supervisor is gone: PR_SET_PDEATHSIG ends us; stop watching.
				 */
				vh_evloop_del(g_watch_src);
				g_watch_src = NULL;
			}
			return;
		}
		buf[len] = '\0';
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
			    cm->cmsg_len == CMSG_LEN(sizeof(int))) {
				memcpy(&fd, CMSG_DATA(cm), sizeof(int));
			}
		}
		if (g_watch_cb != NULL) {
			g_watch_cb(buf, fd);
		} else if (fd >= 0) {
			close(fd);
		}
	}
}

int
vh_handover_watch(void (*cb)(const char *text, int fd))
{
	if (g_chan < 0 || g_watch_src != NULL) {
		return 0;
	}
	g_watch_cb = cb;
	g_watch_src = vh_evloop_add(vh_evloop_main(), g_chan, EPOLLIN, chan_input, NULL);
	return g_watch_src != NULL ? 0 : -errno;
}

int
vh_fdvec_push(struct vh_fdvec *v, int fd)
{
	if (v->n == v->cap) {
		unsigned cap = v->cap ? v->cap * 2 : 64;
		int *fds = realloc(v->fds, cap * sizeof(*fds));

		if (fds == NULL) {
			return -ENOMEM;
		}
		v->fds = fds;
		v->cap = cap;
	}
	v->fds[v->n] = fd;
	return (int)v->n++;
}

void
vh_fdvec_free(struct vh_fdvec *v)
{
	free(v->fds);
	memset(v, 0, sizeof(*v));
}
