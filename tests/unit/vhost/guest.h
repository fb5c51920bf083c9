/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Test helpers for the vhost unit tests: memfd "guest RAM" regions mapped through the real
 * vh_mem_region_map(), and a guest-side view of descriptors and rings.
 */
#ifndef VH_TEST_GUEST_H
#define VH_TEST_GUEST_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include "vhost/device.h"
#include "vhost/session.h"

/* A memfd of @size bytes (sealed to nothing; the caller closes it). */
int guest_memfd(uint64_t size);

/*
 * Map a new memfd region [gpa, gpa + size) at front-end address @qva into @m with the real
 * vh_mem_region_map() and append it. The fd is closed again (the mapping keeps the memory).
 */
void guest_add_region(struct vh_mem *m, uint64_t gpa, uint64_t size, uint64_t qva);

/* Our host address of guest-physical @gpa (must be mapped). */
void *guest_ptr(const struct vh_mem *m, uint64_t gpa);

/* Copy @len bytes to guest-physical @gpa (may cross regions). */
void guest_write(const struct vh_mem *m, uint64_t gpa, const void *src, uint64_t len);

/* Write one descriptor into a table at guest-physical @table_gpa. */
void guest_set_desc(const struct vh_mem *m, uint64_t table_gpa, uint16_t i, uint64_t addr,
                    uint32_t len, uint16_t flags, uint16_t next);

#define WAIT_UNTIL(cond, ms)                                                                       \
	({                                                                                         \
		uint64_t _dl = vh_now_ns() + (uint64_t)(ms)*1000000ull;                            \
		bool _ok;                                                                          \
		while (!(_ok = (cond)) && vh_now_ns() < _dl) {                                     \
			sched_yield();                                                             \
		}                                                                                  \
		_ok;                                                                               \
	})

#endif
