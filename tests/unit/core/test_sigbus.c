/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/core/sigbus.c: the registry (handles, bad arguments, a full registry, unregister), and
 * real SIGBUS faults on a truncated memfd mapping: recovered in-process (one thread, and
 * several threads faulting on the same area at once), with the notification eventfd, while a
 * fault outside any registered area, or after unregistering, still kills the process.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/sigbus.h"

#define PAGE   4096ul
#define NPAGES 16ul

/* A shared mapping of a memfd of NPAGES pages, each page filled with its number + 1. */
static uint8_t *
guest_map(int *fd)
{
	uint8_t *p;

	*fd = memfd_create("sigbus-test", MFD_CLOEXEC);
	assert_true(*fd >= 0);
	assert_int_equal(ftruncate(*fd, (off_t)(NPAGES * PAGE)), 0);
	p = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	assert_true(p != MAP_FAILED);
	for (unsigned long i = 0; i < NPAGES; i++) {
		memset(p + i * PAGE, (int)(i + 1), PAGE);
	}
	return p;
}

static uint8_t
touch(const uint8_t *p)
{
	return *(const volatile uint8_t *)p;
}

static bool
efd_readable(void)
{
	struct pollfd pfd = {.fd = vh_sigbus_eventfd(), .events = POLLIN};

	return poll(&pfd, 1, 0) == 1;
}

static void
test_registry(void **state)
{
	static int h[VH_SIGBUS_MAX_AREAS];
	uint8_t *fake = (uint8_t *)(uintptr_t)0x100000000ull;

	(void)state;
	assert_int_equal(vh_sigbus_register(fake, 0, PAGE), -EINVAL);
	assert_int_equal(vh_sigbus_register(fake, PAGE, 3 * PAGE), -EINVAL);
	assert_int_equal(vh_sigbus_register(fake, PAGE, 0), -EINVAL);
	assert_int_equal(vh_sigbus_register(fake + 512, PAGE, PAGE), -EINVAL);
	/* Fill it: every handle distinct and not faulted, then one more is refused. */
	for (int i = 0; i < VH_SIGBUS_MAX_AREAS; i++) {
		h[i] = vh_sigbus_register(fake + (uint64_t)i * PAGE, PAGE, PAGE);
		assert_in_range(h[i], 0, VH_SIGBUS_MAX_AREAS - 1);
		assert_false(vh_sigbus_faulted(h[i]));
		if (i > 0) {
			assert_int_not_equal(h[i], h[i - 1]);
		}
	}
	assert_int_equal(vh_sigbus_register(fake, PAGE, PAGE), -ENOSPC);
	/* A freed slot is reused; unregistering twice, or a bad handle, is harmless. */
	vh_sigbus_unregister(h[7]);
	vh_sigbus_unregister(h[7]);
	vh_sigbus_unregister(-1);
	vh_sigbus_unregister(VH_SIGBUS_MAX_AREAS);
	assert_false(vh_sigbus_faulted(-1));
	assert_int_equal(vh_sigbus_register(fake, 2 * PAGE, PAGE), h[7]);
	for (int i = 0; i < VH_SIGBUS_MAX_AREAS; i++) {
		vh_sigbus_unregister(h[i]);
	}
}

/* A truncated file under a registered mapping: the read returns zeros, the area is marked. */
static void
test_fault_recovered(void **state)
{
	uint64_t before = vh_sigbus_fault_count();
	uint8_t *p;
	int fd, h, other;

	(void)state;
	assert_int_equal(vh_sigbus_init(), 0);
	assert_int_equal(vh_sigbus_init(), 0); /* idempotent */
	assert_true(vh_sigbus_eventfd() >= 0);
	assert_int_equal(vh_sigbus_ack(), 0);
	p = guest_map(&fd);
	h = vh_sigbus_register(p, NPAGES * PAGE, PAGE);
	assert_true(h >= 0);
	other = vh_sigbus_register((uint8_t *)(uintptr_t)0x100000000ull, PAGE, PAGE);
	assert_true(other >= 0);
	assert_int_equal(touch(p + 5 * PAGE), 6);

	/* The front-end shrinks its memory: the next access would kill a process. */
	assert_int_equal(ftruncate(fd, (off_t)PAGE), 0);
	assert_int_equal(touch(p + 5 * PAGE + 17), 0);
	assert_true(vh_sigbus_faulted(h));
	assert_false(vh_sigbus_faulted(other));
	assert_int_equal(vh_sigbus_fault_count(), before + 1);
	assert_true(efd_readable());
	assert_int_equal(vh_sigbus_ack(), 1);
	assert_false(efd_readable());
	/* The whole area was replaced at once: no further fault, writes land somewhere harmless. */
	assert_int_equal(touch(p), 0);
	p[NPAGES * PAGE - 1] = 0xaa;
	assert_int_equal(touch(p + NPAGES * PAGE - 1), 0xaa);
	assert_int_equal(vh_sigbus_fault_count(), before + 1);
	assert_false(efd_readable());
	/* The file is untouched by the replacement. */
	{
		uint8_t b = 0;

		assert_int_equal(pread(fd, &b, 1, 0), 1);
		assert_int_equal(b, 1);
	}

	vh_sigbus_unregister(h);
	vh_sigbus_unregister(other);
	assert_false(vh_sigbus_faulted(h));
	assert_int_equal(munmap(p, NPAGES * PAGE), 0);
	close(fd);
	vh_sigbus_fini();
	assert_int_equal(vh_sigbus_eventfd(), -1);
}

/* Several threads fault on the same area at once: all continue, the area is replaced once. */
#define NTHREADS 4

struct reader {
	const uint8_t *p;
	pthread_barrier_t *go;
	unsigned sum;
};

static void *
reader_main(void *arg)
{
	struct reader *r = arg;

	pthread_barrier_wait(r->go);
	for (unsigned long i = 0; i < NPAGES; i++) {
		r->sum += touch(r->p + ((i * 7) % NPAGES) * PAGE);
	}
	return NULL;
}

static void
test_fault_threads(void **state)
{
	uint64_t before = vh_sigbus_fault_count();
	struct reader rd[NTHREADS];
	pthread_t th[NTHREADS];
	pthread_barrier_t go;
	uint8_t *p;
	int fd, h;

	(void)state;
	assert_int_equal(vh_sigbus_init(), 0);
	p = guest_map(&fd);
	h = vh_sigbus_register(p, NPAGES * PAGE, PAGE);
	assert_true(h >= 0);
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(pthread_barrier_init(&go, NULL, NTHREADS), 0);
	for (int i = 0; i < NTHREADS; i++) {
		rd[i] = (struct reader){.p = p, .go = &go};
		assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rd[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(rd[i].sum, 0);
	}
	pthread_barrier_destroy(&go);
	assert_true(vh_sigbus_faulted(h));
	assert_int_equal(vh_sigbus_fault_count(), before + 1);
	assert_int_equal(vh_sigbus_ack(), 1);
	vh_sigbus_unregister(h);
	munmap(p, NPAGES * PAGE);
	close(fd);
	vh_sigbus_fini();
}

/*
 * In a child: install the handler over the default action, truncate a mapping that is not
 * registered (never, or no more) and touch it. The child must die of SIGBUS: a real bug still
 * crashes. It tells the parent over @wfd right before the access.
 */
static void
child_touch(int wfd, bool register_first)
{
	struct rlimit no_core = {0, 0};
	uint8_t *p;
	int fd, h;

	setrlimit(RLIMIT_CORE, &no_core);
	signal(SIGBUS, SIG_DFL); /* not cmocka's handler: it would longjmp into the test runner */
	if (vh_sigbus_init() < 0) {
		_exit(3);
	}
	p = guest_map(&fd);
	if (register_first) {
		h = vh_sigbus_register(p, NPAGES * PAGE, PAGE);
		vh_sigbus_unregister(h);
	}
	if (ftruncate(fd, 0) < 0 || write(wfd, "x", 1) != 1) {
		_exit(4);
	}
	touch(p + PAGE);
	_exit(0); /* survived: wrong */
}

static void
expect_crash(bool register_first)
{
	int pfd[2], status;
	char c = 0;
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		child_touch(pfd[1], register_first);
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &c, 1), 1); /* the child got as far as the access */
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGBUS);
}

static void
test_unregistered_crashes(void **state)
{
	(void)state;
	expect_crash(false);
	expect_crash(true);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_registry),
	        cmocka_unit_test(test_fault_recovered),
	        cmocka_unit_test(test_fault_threads),
	        cmocka_unit_test(test_unregistered_crashes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
