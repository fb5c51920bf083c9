/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Surviving SIGBUS on memory another process controls (guest RAM from a vhost-user front-end).
 *
 * A front-end can make its memory fault under us at any time: it truncates the file behind a
 * region, a tmpfs fills up, a hardware memory error poisons a page. The kernel answers our next
 * access with SIGBUS, whose default action kills the whole daemon. So every guest mapping is
 * entered in a fixed-size registry that the signal handler reads without locks. A SIGBUS whose
 * address lies in a registered area replaces that whole area with anonymous zero pages
 * (MAP_FIXED), marks the area "faulted" and signals an eventfd; the faulting instruction then
 * re-runs on the new pages, and so does any other thread reading the area. The control thread
 * watches the eventfd and closes the sessions whose areas faulted. A SIGBUS anywhere else is a
 * bug of ours: the handler puts back the previous action (default: core dump; a sanitizer's
 * report in sanitizer builds) and the fault happens again under it.
 *
 * Rules:
 * - vh_sigbus_init()/vh_sigbus_fini(): control thread, once, while no area is registered by
 *   another thread.
 * - vh_sigbus_register()/vh_sigbus_unregister(): any thread; the caller owns the handle and is
 *   the only one to unregister it. Unregister before munmap, never after: once the range is
 *   unmapped, another mapping may take its place and must not be replaced by the handler.
 * - vh_sigbus_faulted(): any thread.
 * - The registry works without the handler (unit tests, the fuzz harness): faults then kill the
 *   process as before.
 * - Kernel accesses to a faulted area (readv/writev, io_uring, vfio pinning) do not raise
 *   SIGBUS: the system call fails with EFAULT and only that request fails. The area is replaced
 *   the next time a thread of ours touches it.
 */
#ifndef VH_CORE_SIGBUS_H
#define VH_CORE_SIGBUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Registry size: 32 regions per session, times two while a new memory table waits for the old
 * one's queues to stop, for 64 sessions. A full registry refuses new mappings (-ENOSPC).
 */
#define VH_SIGBUS_MAX_AREAS 4096

/*
 * Install the process-wide SIGBUS handler (SA_SIGINFO | SA_ONSTACK) and create the
 * notification eventfd. Control thread, once. Returns 0, or -errno from eventfd/sigaction
 * (nothing is installed then). A second call without vh_sigbus_fini() returns 0.
 */
int vh_sigbus_init(void);
/* Put the previous SIGBUS action back and close the eventfd. Control thread. */
void vh_sigbus_fini(void);

/*
 * The eventfd that becomes readable (EPOLLIN) after an area faulted, or -1 before
 * vh_sigbus_init(). The control loop watches it and then calls vh_sigbus_ack().
 */
int vh_sigbus_eventfd(void);
/* Consume the notification. Returns how many faults it counted (0 if none). Control thread. */
uint64_t vh_sigbus_ack(void);

/*
 * Register [base, base+len) (a whole mapping, as returned by mmap) whose page size is @page
 * (a power of two: the size the mapping can be split at, 4 KiB or the huge page size).
 * Returns a handle >= 0, -EINVAL (len 0, bad page size) or -ENOSPC (registry full). Any thread.
 */
int vh_sigbus_register(void *base, size_t len, size_t page);
/*
 * Forget an area. On return the handler no longer touches it (if a handler is replacing it
 * right now, this waits the few microseconds that takes), so the caller may munmap it. A
 * negative handle is ignored. Any thread, but only the owner of @handle.
 */
void vh_sigbus_unregister(int handle);
/* True once a SIGBUS hit the area (it then holds anonymous zero pages). Any thread. */
bool vh_sigbus_faulted(int handle);
/* Areas replaced since start (for tests and statistics). Any thread. */
uint64_t vh_sigbus_fault_count(void);

#endif
