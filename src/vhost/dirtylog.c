/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Dirty log for live migration (see dirtylog.h for the rules and the threat model).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "vhost/dirtylog.h"
#include "vhost/mem.h"

int
vh_dlog_map(struct vh_dlog *l, uint64_t size, uint64_t offset, int fd)
{
	uint64_t end, start;
	struct stat st;
	int seals;
	void *p;

	memset(l, 0, sizeof(*l));
	if (size == 0 || VH_ADD_OVERFLOW(offset, size, &end)) {
		return -EINVAL;
	}
	/*
	 * Seals first: only memfds have them, so this also keeps us from calling fstat() on a
	 * file a FUSE server (the peer?) would have to answer. QEMU's log is a sealed memfd.
	 */
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
		return -EPERM;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < end ||
	    st.st_blksize <= 0 || !VH_IS_POW2((uint64_t)st.st_blksize)) {
		return -EINVAL;
	}
	start = offset & ~((uint64_t)st.st_blksize - 1);
	p = mmap(NULL, end - start, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)start);
	if (p == MAP_FAILED) {
		return -errno;
	}
	l->map = p;
	l->map_size = end - start;
	l->bits = (uint8_t *)p + (offset - start);
	l->bytes = size;
	return 0;
}

void
vh_dlog_unmap(struct vh_dlog *l)
{
	if (l->map != NULL) {
		munmap(l->map, l->map_size);
	}
	memset(l, 0, sizeof(*l));
}

bool
vh_dlog_covers(const struct vh_dlog *l, const struct vh_mem *m)
{
	for (uint32_t i = 0; m != NULL && i < m->nregions; i++) {
		const struct vh_mem_region *r = &m->regions[i];
		uint64_t last_page = (r->gpa + r->size - 1) >> VH_DLOG_PAGE_SHIFT;

		if (last_page / 8 >= l->bytes) {
			return false;
		}
	}
	return true;
}

void
vh_dlog_mark(struct vh_dlog *l, uint64_t gpa, uint64_t len)
{
	uint64_t page, last, end;

	if (len == 0 || l->bits == NULL) {
		return;
	}
	if (VH_ADD_OVERFLOW(gpa, len - 1, &end)) {
		end = UINT64_MAX;
	}
	last = end >> VH_DLOG_PAGE_SHIFT;
	for (page = gpa >> VH_DLOG_PAGE_SHIFT; page <= last; page++) {
		if (VH_UNLIKELY(page / 8 >= l->bytes)) {
			/* Never outside the bitmap: the front-end sized it too small. */
			__atomic_fetch_add(&l->missed, last - page + 1, __ATOMIC_RELAXED);
			return;
		}
		/*
		 * Release: pairs with the front-end's atomic exchange when it syncs the log (QEMU
		 * clears each word with an xchg, then copies the pages): a page it finds marked
		 * holds the data we (or the kernel, whose completion we acquired) wrote before.
		 */
		__atomic_fetch_or(&l->bits[page / 8], (uint8_t)(1u << (page % 8)),
		                  __ATOMIC_RELEASE);
		if (page == UINT64_MAX >> VH_DLOG_PAGE_SHIFT) {
			break;
		}
	}
}

void
vh_dlog_mark_hva(struct vh_dlog *l, const struct vh_mem *m, const void *hva, uint64_t len)
{
	const uint8_t *p = hva;

	for (uint32_t i = 0; len > 0 && i < m->nregions; i++) {
		const struct vh_mem_region *r = &m->regions[i];

		if (p >= r->hva && (uint64_t)(p - r->hva) < r->size) {
			uint64_t off = (uint64_t)(p - r->hva);
			uint64_t chunk = VH_MIN(len, r->size - off);

			vh_dlog_mark(l, r->gpa + off, chunk);
			/* A buffer we mapped as one iovec lies in one region. */
			return;
		}
	}
}

void
vh_dlog_mark_iov(struct vh_dlog *l, const struct vh_mem *m, const struct iovec *iov, int n)
{
	for (int i = 0; i < n; i++) {
		vh_dlog_mark_hva(l, m, iov[i].iov_base, iov[i].iov_len);
	}
}
