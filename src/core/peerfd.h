/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What kind of object an fd from a peer is, found without asking the object itself.
 *
 * A front-end hands us fds with SCM_RIGHTS and says what they are; it may lie. An fd we will
 * write to on a reactor (a call eventfd) or poll (a kick eventfd) must really be an eventfd: a
 * pipe nobody reads, or a file on a FUSE mount the peer serves, would block us. These checks
 * read only what the kernel says about our own descriptor table (/proc/self/fd, fstat of a
 * socket), so they cannot block on the peer.
 *
 * Any thread. Each returns 0 when the fd is of the kind asked, -EINVAL when it is another kind,
 * -EBADF for a bad fd, or -ENOSYS when /proc is not mounted (the kind cannot be told).
 */
#ifndef VH_CORE_PEERFD_H
#define VH_CORE_PEERFD_H

#include <stddef.h>

/* An eventfd (anon_inode:[eventfd]). */
int vh_peerfd_check_eventfd(int fd);
/* A UNIX-domain socket (SOCK_STREAM or SOCK_SEQPACKET). */
int vh_peerfd_check_unix_socket(int fd);

/*
 * The type of the file system the fd's file lives on, as the kernel's mount table names it
 * ("tmpfs", "hugetlbfs", "ext4", "fuse.sshfs", ...), or "memfd" for a memfd (an internal mount
 * that is in no mount table). Learned from /proc/self/fdinfo and /proc/self/mountinfo, so a
 * FUSE or NFS server is never asked (fstat()/fstatfs() on such a file would wait for it).
 * Returns 0, -EBADF, -ENOSYS (no /proc), or -ENOENT (mount not found and not a memfd).
 */
int vh_peerfd_fs_type(int fd, char *type, size_t len);

#endif
