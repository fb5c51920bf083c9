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
