/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

/* The mount ID of the fd, from /proc/self/fdinfo. 0 or -errno. */
static int
fd_mnt_id(int fd, int *mnt_id)
{
	char path[48], line[128];
	FILE *f;
	int rc = -ENOENT;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (f == NULL) {
		return errno == ENOENT && access("/proc/self", F_OK) < 0 ? -ENOSYS : -EBADF;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "mnt_id: %d", mnt_id) == 1) {
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

/*
 * mountinfo line: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE ..."
 * Returns 0 and the type if mount @id is listed.
 */
static int
mount_type(int id, char *type, size_t len)
{
	char *line = NULL;
	size_t cap = 0;
	int rc = -ENOENT;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (f == NULL) {
		return -ENOSYS;
	}
	while (getline(&line, &cap, f) > 0) {
		char *sep, fstype[64];
		int mid;

		if (sscanf(line, "%d", &mid) != 1 || mid != id) {
			continue;
		}
		sep = strstr(line, " - ");
		if (sep != NULL && sscanf(sep + 3, "%63s", fstype) == 1 &&
		    (size_t)snprintf(type, len, "%s", fstype) < len) {
			rc = 0;
		}
		break;
	}
	free(line);
	fclose(f);
	return rc;
}

int
vh_peerfd_fs_type(int fd, char *type, size_t len)
{
	static const char memfd[] = "/memfd:";
	char path[32], target[sizeof(memfd)];
	int id, rc;
	ssize_t n;

	if (fd < 0) {
		return -EBADF;
	}
	rc = fd_mnt_id(fd, &id);
	if (rc < 0) {
		return rc;
	}
	rc = mount_type(id, type, len);
	if (rc != -ENOENT) {
		return rc;
	}
	/* Not in our mount table: memfds live on the kernel's internal shmem/hugetlbfs mounts. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target));
	if (n == (ssize_t)sizeof(target) && memcmp(target, memfd, sizeof(memfd) - 1) == 0) {
		return snprintf(type, len, "memfd") < (int)len ? 0 : -ENAMETOOLONG;
	}
	return -ENOENT;
}
