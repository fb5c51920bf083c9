/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Guest memory tables: the regions a front-end maps to us, and address translation.
 *
 * Rules: a table is built and changed on the control thread only, and only while no started
 * queue uses it (design rule 10); reactors translate through it without locks. Every
 * translation checks that each byte of the range is mapped.
 */
#ifndef VH_VHOST_MEM_H
#define VH_VHOST_MEM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/util.h"
#include "vhost/protocol.h"

#define VH_MAX_MEM_REGIONS 32 /* GET_MAX_MEM_SLOTS */

struct vh_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t qva; /* the front-end's virtual address (ring addresses use it) */
	uint64_t mmap_offset;
	void *map_base; /* what we mmap'ed */
	uint64_t map_size;
	uint8_t *hva;    /* host address of gpa: map_base + mmap_offset % page size */
	int sigbus_area; /* handle of map_base in the SIGBUS registry (core/sigbus.h), or -1 */
	int fd;          /* our duplicate of the region's fd (valid while map_base is set) */
};

struct vh_mem {
	uint32_t nregions;
	struct vh_mem_region regions[VH_MAX_MEM_REGIONS];
};

/*
 * Map one region from @fd. Validates size, overflow of gpa/qva + size, that the fd is a
 * regular file on an accepted filesystem and large enough, and maps only the region (at most
 * the per-session limit), registered for SIGBUS recovery. Keeps a duplicate of @fd (a live
 * upgrade hands it to the next process) and does not close @fd itself. Returns 0,
 * -EINVAL, -EBADF, -EOPNOTSUPP (filesystem refused), -E2BIG (over the limit), -ENOMEM (e.g. no
 * free huge pages), -ENOSPC (SIGBUS registry full) or another -errno from mmap. @owner (the
 * session, or NULL) is charged for the region in the bdev layer's shared tables. Control thread.
 */
int vh_mem_region_map(struct vh_mem_region *r, const struct vhost_user_memory_region *wire, int fd,
                      const void *owner);
void vh_mem_region_unmap(struct vh_mem_region *r);
/* -EINVAL if @r overlaps a region of @m in guest-physical or front-end virtual space. */
int vh_mem_check_overlap(const struct vh_mem *m, const struct vh_mem_region *r);
/*
 * May mapped region @r join table @m (NULL: empty)? -EINVAL if it overlaps (as above), -E2BIG
 * if the table's mappings would exceed the per-session limit (vh_vhost_set_max_guest_mem).
 * Control thread.
 */
int vh_mem_check_add(const struct vh_mem *m, const struct vh_mem_region *r);
/* True if a SIGBUS hit a mapping of @m (may be NULL): the session must close. Any thread. */
bool vh_mem_faulted(const struct vh_mem *m);
void vh_mem_unmap_all(struct vh_mem *m);

/*
 * Translate [gpa, gpa+len) into host iovecs, splitting at region boundaries. Appends at
 * iov[*n], never past @max. Returns 0, -EFAULT (some byte unmapped, or wrap) or -ENOBUFS.
 */
int vh_mem_gpa_to_iov(const struct vh_mem *m, uint64_t gpa, uint64_t len, struct iovec *iov, int *n,
                      int max);
/*
 * The per-request fast path of vh_mem_gpa_to_iov(), for ring walks. @hint is the region the
 * caller's previous buffers were in (vh_mem_hint(); its index kept in *@hint_idx): a buffer that
 * lies wholly inside it is one iovec, translated inline with no search (regions never overlap,
 * so it is the region the search would find). Anything else takes the search, which moves
 * *@hint_idx to the region holding @gpa. @len > 0. Returns as vh_mem_gpa_to_iov().
 */
extern const struct vh_mem_region vh_mem_no_region;

/* The translation hint for region index @i of @m: a region that holds nothing if out of range. */
static inline const struct vh_mem_region *
vh_mem_hint(const struct vh_mem *m, uint32_t i)
{
	return i < m->nregions ? &m->regions[i] : &vh_mem_no_region;
}

int vh_mem_gpa_to_iov_search(const struct vh_mem *m, uint32_t *hint_idx, uint64_t gpa, uint64_t len,
                             struct iovec *iov, int *n, int max);

static inline __attribute__((always_inline)) int
vh_mem_gpa_to_iov_hinted(const struct vh_mem *m, const struct vh_mem_region *hint,
                         uint32_t *hint_idx, uint64_t gpa, uint64_t len, struct iovec *iov, int *n,
                         int max)
{
	uint64_t off = gpa - hint->gpa;
	int i = *n;

	if (VH_LIKELY(gpa >= hint->gpa && off < hint->size && len <= hint->size - off && i < max)) {
		iov[i].iov_base = hint->hva + off;
		iov[i].iov_len = len;
		*n = i + 1;
		return 0;
	}
	return vh_mem_gpa_to_iov_search(m, hint_idx, gpa, len, iov, n, max);
}

/* Host address of [gpa, gpa+len) if it lies in one region, else NULL. */
void *vh_mem_gpa_to_hva(const struct vh_mem *m, uint64_t gpa, uint64_t len);
/* Host address of front-end VA range [qva, qva+len) if it lies in one region, else NULL. */
void *vh_mem_qva_to_hva(const struct vh_mem *m, uint64_t qva, uint64_t len);
/* Copy @len bytes at @gpa out of guest memory (may span regions). 0 or -EFAULT. */
int vh_mem_copy_from_guest(const struct vh_mem *m, void *dst, uint64_t gpa, uint64_t len);

#endif
