/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Small helpers shared by every folder: compiler hints, overflow-safe arithmetic, barriers and
 * the clock. Header-only; callable from any thread.
 */
#ifndef VH_CORE_UTIL_H
#define VH_CORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define VH_LIKELY(x)                       __builtin_expect(!!(x), 1)
#define VH_UNLIKELY(x)                     __builtin_expect(!!(x), 0)
#define VH_ARRAY_SIZE(a)                   (sizeof(a) / sizeof((a)[0]))
#define VH_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define VH_MIN(a, b)                       ((a) < (b) ? (a) : (b))
#define VH_MAX(a, b)                       ((a) > (b) ? (a) : (b))
#define VH_CACHE_LINE                      64
#define VH_ALIGNED(n)                      __attribute__((aligned(n)))
#define VH_PRINTF(a, b)                    __attribute__((format(printf, a, b)))
#define VH_UNUSED                          __attribute__((unused))
#define VH_IS_POW2(x)                      ((x) != 0 && (((x) & ((x)-1)) == 0))

/* Overflow-safe arithmetic: return true when the result overflowed. */
#define VH_ADD_OVERFLOW(a, b, res) __builtin_add_overflow(a, b, res)
#define VH_MUL_OVERFLOW(a, b, res) __builtin_mul_overflow(a, b, res)

/*
 * Accesses to memory shared with another process (guest rings) or thread. A plain load may be
 * torn or re-read by the compiler; these force exactly one access of the full width.
 */
#define VH_READ_ONCE(x)     __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define VH_WRITE_ONCE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define VH_LOAD_ACQ(x)      __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define VH_STORE_REL(x, v)  __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)
#define VH_SMP_MB()         __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define VH_SMP_RMB()        __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define VH_SMP_WMB()        __atomic_thread_fence(__ATOMIC_RELEASE)

static inline uint64_t
vh_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Cheap timestamps for per-I/O accounting: the TSC on x86 (invariant on every CPU we run on;
 * clock_gettime() costs twice as much in a VM), CLOCK_MONOTONIC nanoseconds elsewhere. Only
 * differences mean anything; vh_ticks_hz() converts. Any thread.
 */
static inline uint64_t
vh_ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __builtin_ia32_rdtsc();
#else
	return vh_now_ns();
#endif
}

/*
 * Ticks per second, measured against CLOCK_MONOTONIC over at least 20 ms since the process
 * started (the first call may sleep for what is missing). Any thread.
 */
uint64_t vh_ticks_hz(void);
/* Multiplier for vh_ticks_to_ns(): ns = ticks * mult / 2^32. Any thread. */
uint64_t vh_ticks_ns_mult(void);

static inline uint64_t
vh_ticks_to_ns(uint64_t ticks, uint64_t mult)
{
	return (uint64_t)(((unsigned __int128)ticks * mult) >> 32);
}

/* @ns in vh_ticks() (a division: work it out once, not per I/O). Any thread. */
static inline uint64_t
vh_ns_to_ticks(uint64_t ns)
{
	return (uint64_t)((unsigned __int128)ns * vh_ticks_hz() / 1000000000u);
}

/*
 * A counter with one writer (a reactor) that other threads read with relaxed loads: a plain
 * read-modify-write by its only writer, published with a relaxed store so readers never see a
 * torn value. No lock prefix, no shared cache line written by two threads.
 */
#define VH_STAT_ADD(x, v) __atomic_store_n(&(x), (x) + (v), __ATOMIC_RELAXED)
#define VH_STAT_GET(x)    __atomic_load_n(&(x), __ATOMIC_RELAXED)

static inline void
vh_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Copy a C string into a fixed buffer; returns -ENAMETOOLONG if it does not fit (never truncates).
 */
int vh_strlcpy_checked(char *dst, const char *src, size_t size);

/*
 * Parse a CPU mask ("0x3", "3", "[0,2-3]") into a bit set of up to 64 cores.
 * Returns 0 or -EINVAL. Any thread.
 */
int vh_parse_cpumask(const char *s, uint64_t *mask);

/* True if @s has the shape xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (hex digits). Any thread. */
bool vh_uuid_valid(const char *s);

/*
 * Make room for a UNIX stream socket at @path before bind(). Nothing there: returns 0. A socket
 * file nobody listens on (a crashed process left it; a non-blocking connect() is refused) is
 * removed: returns 1. Anything else is left alone: -EEXIST if @path is not a socket,
 * -EADDRINUSE if a server listens there (this process's own sockets included: they answer the
 * probe like anyone's), -ENAMETOOLONG if @path does not fit a sockaddr_un, or another -errno
 * from the probe (e.g. -EACCES: we may not connect, so we cannot tell). Never blocks, even on a
 * full backlog. Any thread; it does not log (the caller knows what the socket is for).
 */
int vh_unix_unlink_stale(const char *path);

/* Set FD_CLOEXEC|O_NONBLOCK on @fd. Returns 0 or -errno. */
int vh_fd_set_nonblock(int fd);
/* Set FD_CLOEXEC on @fd. Returns 0 or -errno. */
int vh_fd_set_cloexec(int fd);

/*
 * The running binary's version ("0.1.0"), as main() set it: libraries built once serve several
 * binaries (a live upgrade's test pairs two builds). Any thread after start-up.
 */
const char *vh_version(void);
void vh_version_set(const char *v);

#endif
