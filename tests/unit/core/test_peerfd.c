/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/core/peerfd.c: telling what a peer's fd is without asking the object behind it.
 * Eventfds and UNIX sockets are recognised and nothing else passes for them; the file system
 * of a file comes from the mount table, memfds are recognised though they are in none, and
 * every other kind of fd has no file system.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/peerfd.h"

static void
test_eventfd(void **state)
{
	int efd = eventfd(0, EFD_CLOEXEC), p[2], sp[2];
	int memfd = memfd_create("peerfd", MFD_CLOEXEC);

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	assert_int_equal(vh_peerfd_check_eventfd(efd), 0);
	assert_int_equal(vh_peerfd_check_eventfd(p[0]), -EINVAL);
	assert_int_equal(vh_peerfd_check_eventfd(sp[0]), -EINVAL);
	assert_int_equal(vh_peerfd_check_eventfd(memfd), -EINVAL);
	assert_int_equal(vh_peerfd_check_eventfd(-1), -EBADF);
	close(efd);
	assert_int_equal(vh_peerfd_check_eventfd(efd), -EBADF);
	close(p[0]);
	close(p[1]);
	close(sp[0]);
	close(sp[1]);
	close(memfd);
}

static void
test_unix_socket(void **state)
{
	int sp[2], seq[2], dg[2], inet = socket(AF_INET, SOCK_STREAM, 0), efd = eventfd(0, 0);

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, seq), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, dg), 0);
	assert_int_equal(vh_peerfd_check_unix_socket(sp[0]), 0);
	assert_int_equal(vh_peerfd_check_unix_socket(seq[0]), 0);
	assert_int_equal(vh_peerfd_check_unix_socket(dg[0]), -EINVAL);
	if (inet >= 0) {
		assert_int_equal(vh_peerfd_check_unix_socket(inet), -EINVAL);
		close(inet);
	}
	assert_int_equal(vh_peerfd_check_unix_socket(efd), -EINVAL);
	assert_int_equal(vh_peerfd_check_unix_socket(-1), -EBADF);
	for (int i = 0; i < 2; i++) {
		close(sp[i]);
		close(seq[i]);
		close(dg[i]);
	}
	close(efd);
}

static void
test_fs_type(void **state)
{
	char type[64], path[] = "/dev/shm/peerfd-XXXXXX";
	int memfd = memfd_create("peerfd", MFD_CLOEXEC), p[2], efd = eventfd(0, 0), fd;
	struct statfs sfs;

	(void)state;
	assert_int_equal(vh_peerfd_fs_type(memfd, type, sizeof(type)), 0);
	assert_string_equal(type, "memfd");
	/* A file on a real mount: the mount table's name for it. */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(fstatfs(fd, &sfs), 0);
	assert_int_equal(vh_peerfd_fs_type(fd, type, sizeof(type)), 0);
	if (sfs.f_type == TMPFS_MAGIC) {
		assert_string_equal(type, "tmpfs");
	}
	/* Not files: no file system. */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(vh_peerfd_fs_type(p[0], type, sizeof(type)), -ENOENT);
	assert_int_equal(vh_peerfd_fs_type(efd, type, sizeof(type)), -ENOENT);
	assert_int_equal(vh_peerfd_fs_type(-1, type, sizeof(type)), -EBADF);
	close(fd);
	assert_int_equal(vh_peerfd_fs_type(fd, type, sizeof(type)), -EBADF);
	close(memfd);
	close(p[0]);
	close(p[1]);
	close(efd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_eventfd),
	        cmocka_unit_test(test_unix_socket),
	        cmocka_unit_test(test_fs_type),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
