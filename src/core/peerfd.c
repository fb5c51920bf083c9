/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/peerfd.h"

int
vh_peerfd_check_eventfd(int fd)
{
	static const char want[] = "anon_inode:[eventfd]";
	char path[32], target[64];
	ssize_t n;

	if (fd < 0) {
		return -EBADF;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target));
	if (n < 0) {
		return errno == ENOENT && access("/proc/self/fd", F_OK) < 0 ? -ENOSYS : -EBADF;
	}
	if ((size_t)n != sizeof(want) - 1 || memcmp(target, want, sizeof(want) - 1) != 0) {
		return -EINVAL;
	}
	return 0;
}

int
vh_peerfd_check_unix_socket(int fd)
{
	struct stat st;
	int v;
	socklen_t len = sizeof(v);

	if (fd < 0 || fstat(fd, &st) < 0) {
		return -EBADF;
	}
	if (!S_ISSOCK(st.st_mode)) {
		return -EINVAL;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) < 0 || v != AF_UNIX) {
		return -EINVAL;
	}
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) < 0 ||
	    (v != SOCK_STREAM && v != SOCK_SEQPACKET)) {
		return -EINVAL;
	}
	return 0;
}
