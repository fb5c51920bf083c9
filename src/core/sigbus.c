/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * SIGBUS on guest memory: the registry and the handler (sigbus.h says what and why).
 *
 * Each registry entry has one 64-bit state word, generation << 3 | A_*, changed only with
 * compare-and-swap. The generation grows with each registration, so a handler that read an
 * entry just before it was unregistered and reused cannot act on the new area by mistake: its
 * CAS fails and it looks again. The address fields are relaxed atomics, read only after an
 * acquire load of the state saw the entry in use, and validated by the CAS on that same state.
 *
 *   A_FREE --register--> A_RESERVED --fields written--> A_ACTIVE --SIGBUS--> A_FIXING
 *   A_FIXING --mmap done--> A_FAULTED;  A_ACTIVE/A_FAULTED --unregister--> A_FREE
 *
 * Only the handler holds A_FIXING, for the length of one mmap system call; unregister spins
 * until it is over, so the owner never unmaps a range the handler is about to map over.
 *
 * Signal-safety: the handler uses lock-free atomics, raw mmap/write system calls and
 * sigaction/raise (async-signal-safe), saves errno, and never allocates or logs. mmap goes
 * through syscall() so no sanitizer interceptor runs inside the handler.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/sigbus.h"
#include "core/util.h"

enum {
	A_FREE = 0,
	A_RESERVED, /* being filled by vh_sigbus_register() */
	A_ACTIVE,
	A_FIXING, /* a handler is replacing the area */
	A_FAULTED,
};
#define ST_BITS 3
#define ST_MASK ((1ull << ST_BITS) - 1)

struct area {
	uint64_t state; /* generation << ST_BITS | A_*; atomics */
	uint64_t base;  /* relaxed atomics, valid while the state says so */
	uint64_t len;
	uint64_t page;
};

static struct area g_areas[VH_SIGBUS_MAX_AREAS];
static uint32_t g_hw; /* entries below this may be in use; atomics */
static uint64_t g_faults;
static int g_efd = -1; /* read by the handler: set before the handler is installed */
static struct sigaction g_old;
static bool g_installed;

static uint64_t
st_of(uint64_t s)
{
	return s & ST_MASK;
}

static uint64_t
with_st(uint64_t s, uint64_t st)
{
	return (s & ~ST_MASK) | st;
}

/* ---- handler ---- */

/* Anonymous zero pages over [base, base+len). Raw system call: no interceptor runs. */
static bool
map_anon(uint64_t base, uint64_t len)
{
	long p = syscall(SYS_mmap, (unsigned long)base, (unsigned long)len, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0L);

	return p != -1 && (uint64_t)p == base;
}

/*
 * Replace the area holding @addr. Whole area first (one fault per area, and every other page
 * becomes safe at once); if the kernel refuses that much (strict overcommit), just the page that
 * faulted: the next fault in the area replaces the next page.
 */
static bool
fix_area(struct area *a, uint64_t s, uint64_t addr)
{
	uint64_t base = __atomic_load_n(&a->base, __ATOMIC_RELAXED);
	uint64_t len = __atomic_load_n(&a->len, __ATOMIC_RELAXED);
	uint64_t page = __atomic_load_n(&a->page, __ATOMIC_RELAXED);
	bool first = st_of(s) == A_ACTIVE, ok;

	ok = (first && map_anon(base, len)) || map_anon(addr & ~(page - 1), page);
	/* Release: the new mapping is in place before anyone sees the area as faulted. */
	__atomic_store_n(&a->state, with_st(s, A_FAULTED), __ATOMIC_RELEASE);
	if (ok && first) {
		uint64_t one = 1;

		__atomic_fetch_add(&g_faults, 1, __ATOMIC_RELAXED);
		if (syscall(SYS_write, g_efd, &one, sizeof(one)) < 0) {
			/* EAGAIN: the counter is saturated, the control thread will wake anyway. */
		}
	}
	return ok;
}

/* Whether @addr is in a registered area that is now safe to access again. */
static bool
fix(uint64_t addr)
{
	uint32_t hw = __atomic_load_n(&g_hw, __ATOMIC_ACQUIRE); /* pairs with register's bump */

	for (uint32_t i = 0; i < hw; i++) {
		struct area *a = &g_areas[i];
		/* Acquire: pairs with the release that published the fields. */
		uint64_t s = __atomic_load_n(&a->state, __ATOMIC_ACQUIRE);

		for (;;) {
			uint64_t base = __atomic_load_n(&a->base, __ATOMIC_RELAXED);
			uint64_t len = __atomic_load_n(&a->len, __ATOMIC_RELAXED);

			if (st_of(s) < A_ACTIVE || addr - base >= len) {
				break;
			}
			if (st_of(s) == A_FIXING) {
				/* Another thread is replacing it: wait, then re-run the access. */
				while (__atomic_load_n(&a->state, __ATOMIC_ACQUIRE) == s) {
					vh_cpu_relax();
				}
				return true;
			}
			if (__atomic_compare_exchange_n(&a->state, &s, with_st(s, A_FIXING), false,
			                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
				return fix_area(a, s, addr);
			}
			/* The entry changed under us (s has its new state): look again. */
		}
	}
	return false;
}

static void
on_sigbus(int sig, siginfo_t *si, void *uctx)
{
	int saved = errno;

	(void)uctx;
	/* si_code > 0: sent by the kernel for a fault, si_addr is meaningful. */
	if (si->si_code > 0 && fix((uint64_t)(uintptr_t)si->si_addr)) {
		errno = saved;
		return;
	}
	/*
	 * Not guest memory: a bug of ours. Hand the signal back to its previous owner. A fault
	 * re-runs the instruction on return and faults again under that action (default: core
	 * dump with the faulting stack); a signal that was sent, or an asynchronous memory error,
	 * does not come back by itself, so send it again.
	 */
	sigaction(SIGBUS, &g_old, NULL);
	if (si->si_code <= 0 || si->si_code == BUS_MCEERR_AO) {
		raise(sig);
	}
	errno = saved;
}

/* ---- control ---- */

int
vh_sigbus_init(void)
{
	struct sigaction sa;
	int rc;

	if (g_installed) {
		return 0;
	}
	g_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (g_efd < 0) {
		return -errno;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	/*
	 * SA_ONSTACK: a thread that has an alternate stack (the sanitizers give each thread one)
	 * uses it; the others run the handler on their own stack, which is fine: a guest-memory
	 * fault is an ordinary load or store, not a stack overflow, so no thread needs one.
	 */
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &g_old) < 0) {
		rc = -errno;
		close(g_efd);
		g_efd = -1;
		return rc;
	}
	g_installed = true;
	return 0;
}

void
vh_sigbus_fini(void)
{
	if (!g_installed) {
		return;
	}
	sigaction(SIGBUS, &g_old, NULL);
	g_installed = false;
	close(g_efd);
	g_efd = -1;
}

int
vh_sigbus_eventfd(void)
{
	return g_efd;
}

uint64_t
vh_sigbus_ack(void)
{
	uint64_t v = 0;

	if (g_efd < 0 || read(g_efd, &v, sizeof(v)) != sizeof(v)) {
		return 0; /* EAGAIN: nothing new */
	}
	return v;
}

/* ---- registry ---- */

int
vh_sigbus_register(void *base, size_t len, size_t page)
{
	if (len == 0 || !VH_IS_POW2(page) || ((uintptr_t)base & (page - 1)) != 0) {
		return -EINVAL;
	}
	for (uint32_t i = 0; i < VH_SIGBUS_MAX_AREAS; i++) {
		struct area *a = &g_areas[i];
		uint64_t s = __atomic_load_n(&a->state, __ATOMIC_ACQUIRE);
		uint64_t gen = (s >> ST_BITS) + 1;
		uint32_t hw;

		if (st_of(s) != A_FREE ||
		    !__atomic_compare_exchange_n(&a->state, &s, gen << ST_BITS | A_RESERVED, false,
		                                 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
			continue;
		}
		__atomic_store_n(&a->base, (uint64_t)(uintptr_t)base, __ATOMIC_RELAXED);
		__atomic_store_n(&a->len, (uint64_t)len, __ATOMIC_RELAXED);
		__atomic_store_n(&a->page, (uint64_t)page, __ATOMIC_RELAXED);
		hw = __atomic_load_n(&g_hw, __ATOMIC_RELAXED);
		while (hw < i + 1 &&
		       !__atomic_compare_exchange_n(&g_hw, &hw, i + 1, true, __ATOMIC_RELEASE,
		                                    __ATOMIC_RELAXED)) {
		}
		/* Release: pairs with the handler's acquire load; the fields are visible first. */
		__atomic_store_n(&a->state, gen << ST_BITS | A_ACTIVE, __ATOMIC_RELEASE);
		return (int)i;
	}
	return -ENOSPC;
}

void
vh_sigbus_unregister(int handle)
{
	struct area *a;
	uint64_t s;

	if (handle < 0 || handle >= VH_SIGBUS_MAX_AREAS) {
		return;
	}
	a = &g_areas[handle];
	s = __atomic_load_n(&a->state, __ATOMIC_ACQUIRE);
	for (;;) {
		if (st_of(s) == A_FIXING) {
			/* A handler is mapping over the area: it takes one system call. */
			vh_cpu_relax();
			s = __atomic_load_n(&a->state, __ATOMIC_ACQUIRE);
			continue;
		}
		if (st_of(s) != A_ACTIVE && st_of(s) != A_FAULTED) {
			return; /* not registered */
		}
		/* Acquire: the handler's mmap (if any) is complete before the owner munmaps. */
		if (__atomic_compare_exchange_n(&a->state, &s, with_st(s, A_FREE), false,
		                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			return;
		}
	}
}

bool
vh_sigbus_faulted(int handle)
{
	uint64_t st;

	if (handle < 0 || handle >= VH_SIGBUS_MAX_AREAS) {
		return false;
	}
	st = st_of(__atomic_load_n(&g_areas[handle].state, __ATOMIC_ACQUIRE));
	return st == A_FIXING || st == A_FAULTED;
}

uint64_t
vh_sigbus_fault_count(void)
{
	return __atomic_load_n(&g_faults, __ATOMIC_RELAXED);
}
