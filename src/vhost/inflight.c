/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Inflight I/O tracking for split rings (vhost-user.rst, "Inflight I/O tracking").
 *
 * We allocate the region (GET_INFLIGHT_FD), the front-end keeps it while we may crash, and gives
 * it back to the next instance (SET_INFLIGHT_FD). Update order, per queue (vring.c):
 *   fetch:   desc[head].counter = ++counter; desc[head].inflight = 1; then process
 *   flush:   link the batch (desc[].next), last_batch_head = first; used->idx = new (release);
 *            desc[h].inflight = 0 for the batch; used_idx = new
 * so at any crash point at most one batch is "published but still marked", and recovery can
 * tell which (used_idx != used->idx).
 *
 * Threat model: the region comes back from the front-end, and a previous instance may have died
 * half-way through a write. Everything is validated: mapping size against the fd (which must be
 * sealed against shrinking, as ours are), queue count and size, version, desc_num, every head
 * index, the batch walk length, and the number of marked entries. A region that fails gets the
 * session closed; it never indexes outside the mapping.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "vhost/inflight.h"
#include "vhost/vhost.h"
#include "vhost/vring.h"

#define INFLIGHT_VERSION 1
#define INFLIGHT_ALIGN   64

uint64_t
vh_inflight_queue_stride(uint16_t queue_size)
{
	uint64_t b = sizeof(struct inflight_split_queue) +
	             (uint64_t)queue_size * sizeof(struct inflight_desc_split);

	return (b + INFLIGHT_ALIGN - 1) & ~(uint64_t)(INFLIGHT_ALIGN - 1);
}

static bool
geometry_ok(uint16_t nq, uint16_t qs)
{
	return nq >= 1 && nq <= VH_VHOST_MAX_QUEUES && VH_IS_POW2(qs) && qs <= VH_MAX_QUEUE_SIZE;
}

int
vh_inflight_create(uint16_t nq, uint16_t qs, uint64_t *size)
{
	uint64_t sz;
	int fd;

	if (!geometry_ok(nq, qs)) {
		return -EINVAL;
	}
	sz = (uint64_t)nq * vh_inflight_queue_stride(qs);
	fd = memfd_create("vhostd-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		return -errno;
	}
	/* Zero-filled by ftruncate; sealed so nobody can shrink it under a mapping (SIGBUS). */
	if (ftruncate(fd, (off_t)sz) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	*size = sz;
	return fd;
}

int
vh_inflight_map(struct vh_inflight *ifl, const struct vhost_user_inflight *w, int fd)
{
	uint64_t need, end, start;
	struct stat st;
	int seals, dup_fd;
	void *p;

	if (!geometry_ok(w->num_queues, w->queue_size)) {
		return -EINVAL;
	}
	need = (uint64_t)w->num_queues * vh_inflight_queue_stride(w->queue_size);
	/* Our regions are 64-byte aligned; a misaligned offset would misalign every field. */
	if (w->mmap_size != need || (w->mmap_offset % INFLIGHT_ALIGN) != 0 ||
	    VH_ADD_OVERFLOW(w->mmap_offset, need, &end)) {
		return -EINVAL;
	}
	/*
	 * Seals first: only memfds have them, so this also keeps us from calling fstat() on a
	 * file whose file system the peer might serve (FUSE would make us wait for it).
	 */
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
		return -EPERM; /* could be truncated under us (SIGBUS) */
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < end ||
	    st.st_blksize <= 0 || !VH_IS_POW2((uint64_t)st.st_blksize)) {
		return -EINVAL;
	}
	/*
	 * Map only the region, from its offset rounded down to the page size: a tiny region at a
	 * huge offset of a sparse memfd must not cost terabytes of our address space.
	 */
	start = w->mmap_offset & ~((uint64_t)st.st_blksize - 1);
	p = mmap(NULL, end - start, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)start);
	if (p == MAP_FAILED) {
		return -errno;
	}
	dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (dup_fd < 0) {
		int rc = -errno;

		munmap(p, end - start);
		return rc;
	}
	vh_inflight_unmap(ifl);
	ifl->fd = dup_fd;
	ifl->wire = *w;
	ifl->map = p;
	ifl->map_size = end - start;
	ifl->base = (uint8_t *)p + (w->mmap_offset - start);
	ifl->num_queues = w->num_queues;
	ifl->queue_size = w->queue_size;
	return 0;
}

void
vh_inflight_unmap(struct vh_inflight *ifl)
{
	if (ifl->map != NULL) {
		munmap(ifl->map, ifl->map_size);
		close(ifl->fd);
	}
	memset(ifl, 0, sizeof(*ifl));
}

struct marked {
	uint64_t counter;
	uint16_t head;
};

/* Sorts a private copy: counters in shared memory could change under qsort's feet. */
static int
cmp_counter(const void *a, const void *b)
{
	uint64_t ca = ((const struct marked *)a)->counter;
	uint64_t cb = ((const struct marked *)b)->counter;

	return ca < cb ? -1 : ca > cb;
}

/*
 * Every field of the region is read exactly once into a local before it is checked or used: the
 * region is shared with the front-end, which can rewrite any of it while we look (a desc_num
 * checked and then re-read as a loop bound walked us off the mapping).
 */
int
vh_inflight_recover(struct inflight_split_queue *q, uint16_t size, uint16_t cap, uint16_t used_idx,
                    uint16_t *heads, uint32_t max, uint32_t *count, uint16_t *next_avail,
                    uint64_t *counter)
{
	uint64_t version = VH_READ_ONCE(q->version);
	uint16_t desc_num, last_used;
	struct marked *marked;
	uint32_t n = 0;
	uint64_t maxc = 0;

	*count = 0;
	*counter = 0;
	*next_avail = used_idx;
	if (version == 0) {
		/* Fresh region: nothing was in flight. */
		VH_WRITE_ONCE(q->desc_num, size);
		VH_WRITE_ONCE(q->last_batch_head, 0);
		VH_WRITE_ONCE(q->used_idx, used_idx);
		VH_STORE_REL(q->version, INFLIGHT_VERSION);
		return 0;
	}
	desc_num = VH_READ_ONCE(q->desc_num);
	if (version != INFLIGHT_VERSION || desc_num == 0 || desc_num > cap) {
		return -EINVAL;
	}
	if (desc_num != size) {
		/*
		 * The driver chose another ring size (SeaBIOS uses 256 of QEMU's queue-size=1024,
		 * then Linux the full size): a new ring. Fine if nothing was left in flight;
		 * requests of the old geometry cannot be resubmitted into the new one.
		 */
		for (uint32_t h = 0; h < desc_num; h++) {
			if (VH_READ_ONCE(q->desc[h].inflight) != 0) {
				return -EINVAL;
			}
		}
		VH_WRITE_ONCE(q->desc_num, size);
		VH_WRITE_ONCE(q->last_batch_head, 0);
		VH_STORE_REL(q->used_idx, used_idx);
		return 0;
	}
	last_used = VH_READ_ONCE(q->used_idx);
	if (last_used != used_idx) {
		/* Died between publishing a batch and clearing its marks: clear them now. */
		uint16_t pending = (uint16_t)(used_idx - last_used);
		uint16_t h = VH_READ_ONCE(q->last_batch_head);

		if (pending > size) {
			return -EINVAL;
		}
		for (uint16_t i = 0; i < pending; i++) {
			if (h >= size) {
				return -EINVAL;
			}
			VH_WRITE_ONCE(q->desc[h].inflight, 0);
			h = VH_READ_ONCE(q->desc[h].next);
		}
		VH_WRITE_ONCE(q->used_idx, used_idx);
	}
	marked = calloc(max ? max : 1, sizeof(*marked));
	if (marked == NULL) {
		return -ENOMEM;
	}
	for (uint32_t h = 0; h < size; h++) {
		uint8_t f = VH_READ_ONCE(q->desc[h].inflight);

		if (f > 1 || (f == 1 && n >= max)) {
			free(marked); /* garbage, or more than we can ever have had in flight */
			return -EINVAL;
		}
		if (f == 0) {
			continue;
		}
		marked[n].head = (uint16_t)h;
		marked[n].counter = VH_READ_ONCE(q->desc[h].counter);
		maxc = VH_MAX(maxc, marked[n].counter);
		n++;
	}
	qsort(marked, n, sizeof(*marked), cmp_counter);
	for (uint32_t i = 0; i < n; i++) {
		heads[i] = marked[i].head;
	}
	free(marked);
	*count = n;
	*counter = maxc;
	*next_avail = (uint16_t)(used_idx + n);
	return 0;
}
