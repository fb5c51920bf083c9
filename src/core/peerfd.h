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

/* An eventfd (anon_inode:[eventfd]). */
int vh_peerfd_check_eventfd(int fd);
/* A UNIX-domain socket (SOCK_STREAM or SOCK_SEQPACKET). */
int vh_peerfd_check_unix_socket(int fd);

#endif
