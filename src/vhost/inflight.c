/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Inflight I/O tracking (vhost-user.rst, "Inflight I/O tracking"), split and packed layouts.
 *
 * Split rings:
 * We allocate the region (GET_INFLIGHT_FD), the front-end keeps it while we may crash, and gives
 * it back to the next instance (SET_INFLIGHT_FD). Update order, per queue (vring.c):
 *   fetch:   desc[head].counter = ++counter; desc[head].inflight = 1; then process
 *   flush:   link the batch (desc[].next), last_batch_head = first; used->idx = new (release);
 *            desc[h].inflight = 0 for the batch; used_idx = new
 * so at any crash point at most one batch is "published but still marked", and recovery can
 * tell which (used_idx != used->idx).
 *
 * Packed rings (the spec's two-phase recipe, one used descriptor per commit; vring_packed.c):
 *   fetch:   copy the chain into entries taken from the free list (addr, len, flags, id), then
 *            the head entry's num, last, counter, inflight = 1; free_head = old_free_head = next
 *            free entry (the commit)
 *   used:    link the chain back onto the free list (desc[last].next, free_head); one 64-bit
 *            store of {used_idx = new, old_used_idx = old, used_wrap = new, old_used_wrap = old};
 *            the used descriptor's flags (publish); inflight = 0; old_free_head = free_head; one
 *            64-bit store of {new, new, new, new} (the commit)
 * so at any crash point at most one update is half-done: a fetch (free_head != old_free_head:
 * rolled back, the chain is still in the ring) or a completion (used != old_used: finished if the
 * ring shows the used descriptor at old_used_idx, rolled back otherwise). The used index and wrap
 * counter and their old copies share one aligned 8-byte word so they never tear apart.
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
#include "vhost/vring_packed.h"

#define INFLIGHT_VERSION 1
#define INFLIGHT_ALIGN   64

uint64_t
vh_inflight_queue_stride(uint16_t queue_size)
{
	uint64_t b = sizeof(struct inflight_split_queue) +
	             (uint64_t)queue_size * sizeof(struct inflight_desc_split);

	return (b + INFLIGHT_ALIGN - 1) & ~(uint64_t)(INFLIGHT_ALIGN - 1);
}

uint64_t
vh_inflight_stride(uint16_t queue_size, bool packed)
{
	uint64_t b = sizeof(struct inflight_packed_queue) +
	             (uint64_t)queue_size * sizeof(struct inflight_desc_packed);

	if (!packed) {
		return vh_inflight_queue_stride(queue_size);
	}
	return (b + INFLIGHT_ALIGN - 1) & ~(uint64_t)(INFLIGHT_ALIGN - 1);
}

static bool
geometry_ok(uint16_t nq, uint16_t qs)
{
	return nq >= 1 && nq <= VH_VHOST_MAX_QUEUES && VH_IS_POW2(qs) && qs <= VH_MAX_QUEUE_SIZE;
}

int
vh_inflight_create(uint16_t nq, uint16_t qs, bool packed, uint64_t *size)
{
	uint64_t sz;
	int fd;

	if (!geometry_ok(nq, qs)) {
		return -EINVAL;
	}
	sz = (uint64_t)nq * vh_inflight_stride(qs, packed);
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
vh_inflight_map(struct vh_inflight *ifl, const struct vhost_user_inflight *w, int fd, bool packed)
{
	uint64_t need, end, start;
	struct stat st;
	int seals, dup_fd;
	void *p;

	if (!geometry_ok(w->num_queues, w->queue_size)) {
		return -EINVAL;
	}
	need = (uint64_t)w->num_queues * vh_inflight_stride(w->queue_size, packed);
	/*
	 * A front-end that asked GET_INFLIGHT_FD before SET_FEATURES (QEMU < 5.2) got the split
	 * layout; packed rings then cannot use it (vring_packed.c says so at ring start).
	 */
	if (packed && w->mmap_size != need &&
	    w->mmap_size == (uint64_t)w->num_queues * vh_inflight_queue_stride(w->queue_size)) {
		packed = false;
		need = w->mmap_size;
	}
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
	ifl->packed = packed;
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

/* ---- packed rings ---- */

/* A fresh region for a ring of @size starting at position @start: every entry free. */
static void
packed_init(struct inflight_packed_queue *q, uint16_t size, uint16_t start, uint16_t *next)
{
	for (uint32_t i = 0; i < size; i++) {
		next[i] = (uint16_t)(i + 1); /* the last one's is size: the end of the list */
		VH_WRITE_ONCE(q->desc[i].next, next[i]);
		VH_WRITE_ONCE(q->desc[i].inflight, 0);
	}
	VH_WRITE_ONCE(q->desc_num, size);
	VH_WRITE_ONCE(q->free_head, 0);
	VH_WRITE_ONCE(q->old_free_head, 0);
	VH_WRITE_ONCE(*vh_pk_used_word_ptr(q), vh_pk_used_word(start, start, size));
	VH_STORE_REL(q->version, INFLIGHT_VERSION);
}

static int
cmp_resub(const void *a, const void *b)
{
	uint64_t ca = ((const struct vh_inflight_resub *)a)->counter;
	uint64_t cb = ((const struct vh_inflight_resub *)b)->counter;

	return ca < cb ? -1 : ca > cb;
}

enum { ENT_UNSEEN, ENT_FREE, ENT_CHAIN };

/*
 * The chains still in flight: head entries off the free list with their mark set, each walked
 * num entries along the (private) links to its last entry, none shared. Their descriptors are
 * copied to descs[]. Returns 0 or -EINVAL.
 */
static int
packed_chains(struct inflight_packed_queue *q, uint16_t size, const uint16_t *next, uint8_t *ent,
              uint64_t *ids, struct vh_inflight_resub *resub, uint32_t max,
              struct pvirtq_desc *descs, struct vh_inflight_packed_state *st)
{
	uint32_t n = 0, ndesc = 0;

	for (uint32_t h = 0; h < size; h++) {
		uint8_t f;
		uint16_t num, last, e = (uint16_t)h, id;

		if (ent[h] == ENT_FREE) {
			continue;
		}
		f = VH_READ_ONCE(q->desc[h].inflight);
		if (f == 0) {
			continue;
		}
		/* Garbage, a mark inside another chain, or more than we can have had in flight. */
		if (f != 1 || ent[h] != ENT_UNSEEN || n >= max) {
			return -EINVAL;
		}
		num = VH_READ_ONCE(q->desc[h].num);
		last = VH_READ_ONCE(q->desc[h].last);
		if (num == 0 || num > size - ndesc) {
			return -EINVAL;
		}
		for (uint32_t k = 0; k < num; k++) {
			struct pvirtq_desc *d = &descs[ndesc + k];

			if (e >= size || ent[e] != ENT_UNSEEN) {
				return -EINVAL;
			}
			ent[e] = ENT_CHAIN;
			d->addr = VH_READ_ONCE(q->desc[e].addr);
			d->len = VH_READ_ONCE(q->desc[e].len);
			d->flags = VH_READ_ONCE(q->desc[e].flags);
			d->id = VH_READ_ONCE(q->desc[e].id);
			if (k + 1 < num) {
				e = next[e];
			}
		}
		id = descs[ndesc + num - 1].id;
		if (e != last || id >= size || (ids[id >> 6] & (1ull << (id & 63)))) {
			return -EINVAL;
		}
		ids[id >> 6] |= 1ull << (id & 63);
		resub[n] = (struct vh_inflight_resub){
		        .counter = VH_READ_ONCE(q->desc[h].counter),
		        .off = ndesc,
		        .num = num,
		        .id = id,
		        .entry = (uint16_t)h,
		        .last = last,
		};
		st->counter = VH_MAX(st->counter, resub[n].counter);
		ndesc += num;
		n++;
	}
	st->nresub = n;
	st->ndesc = ndesc;
	return 0;
}

/*
 * Every field of the region is read once into a local or a private array before it is checked or
 * used (the front-end shares the region and may rewrite it while we look), and every index is
 * checked against the ring size before it indexes anything.
 */
int
vh_inflight_packed_recover(struct inflight_packed_queue *q, uint16_t size, uint16_t cap,
                           const struct pvirtq_desc *ring, uint16_t start, uint16_t *next,
                           struct vh_inflight_resub *resub, uint32_t max, struct pvirtq_desc *descs,
                           struct vh_inflight_packed_state *st)
{
	uint16_t version = VH_READ_ONCE(q->version), desc_num, fh, ofh, ui, oui, used, old;
	uint32_t nfree = 0;
	uint8_t uw, ouw, *ent = NULL;
	uint64_t w, *ids = NULL;
	int rc = -EINVAL;

	memset(st, 0, sizeof(*st));
	st->avail = st->used = start;
	if (version == 0) {
		packed_init(q, size, start, next); /* fresh region: nothing was in flight */
		return 0;
	}
	desc_num = VH_READ_ONCE(q->desc_num);
	if (version != INFLIGHT_VERSION || desc_num == 0 || desc_num > cap) {
		return -EINVAL;
	}
	if (desc_num != size) {
		/* Another ring size: a new ring, fine only if nothing was left in flight. */
		for (uint32_t h = 0; h < desc_num; h++) {
			if (VH_READ_ONCE(q->desc[h].inflight) != 0) {
				return -EINVAL;
			}
		}
		packed_init(q, size, start, next);
		return 0;
	}
	fh = VH_READ_ONCE(q->free_head);
	ofh = VH_READ_ONCE(q->old_free_head);
	w = VH_READ_ONCE(*vh_pk_used_word_ptr(q));
	ui = (uint16_t)w;
	oui = (uint16_t)(w >> 16);
	uw = (uint8_t)(w >> 32);
	ouw = (uint8_t)(w >> 40);
	if (fh > size || ofh > size || ui >= size || oui >= size || uw > 1 || ouw > 1) {
		return -EINVAL;
	}
	used = vh_pk_pos(ui, uw, size);
	old = vh_pk_pos(oui, ouw, size);
	if (used != old) {
		/*
		 * Died in the middle of a completion. If the ring at the committed used position
		 * no longer shows the driver's available descriptor, the used descriptor went out:
		 * finish the update. Otherwise roll it back (the request is resubmitted).
		 */
		uint16_t f = VH_READ_ONCE(ring[oui].flags);

		if ((f & (VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED)) !=
		    (ouw ? VIRTQ_DESC_F_AVAIL : VIRTQ_DESC_F_USED)) {
			ofh = fh;
			old = used;
		}
	}
	/* The committed state; a fetch that died before its commit is rolled back with it. */
	fh = ofh;
	used = old;
	for (uint32_t i = 0; i < size; i++) {
		next[i] = VH_READ_ONCE(q->desc[i].next);
	}
	ent = calloc(size, 1);
	ids = calloc((size + 63u) / 64u, sizeof(*ids));
	if (ent == NULL || ids == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	/* The free list: entries in range, no cycle (each visited once). */
	for (uint16_t e = fh; e != size; e = next[e]) {
		if (e > size || ent[e] != ENT_UNSEEN) {
			goto out;
		}
		ent[e] = ENT_FREE;
		nfree++;
	}
	rc = packed_chains(q, size, next, ent, ids, resub, max, descs, st);
	/* Every entry is free or held by a chain in flight: none leaked, none shared. */
	if (rc < 0 || nfree + st->ndesc != size) {
		rc = -EINVAL;
		goto out;
	}
	/* Free entries are not in flight, whatever their mark says (a completion died there). */
	for (uint32_t i = 0; i < size; i++) {
		if (ent[i] == ENT_FREE) {
			VH_WRITE_ONCE(q->desc[i].inflight, 0);
		}
	}
	VH_WRITE_ONCE(q->free_head, fh);
	VH_WRITE_ONCE(q->old_free_head, fh);
	VH_STORE_REL(*vh_pk_used_word_ptr(q), vh_pk_used_word(used, used, size));
	qsort(resub, st->nresub, sizeof(*resub), cmp_resub);
	st->used = used;
	/* Fetched = used + still in flight: fetching resumes after the last chain we took. */
	st->avail = (uint16_t)(used + st->ndesc);
	st->free_head = fh;
	rc = 0;
out:
	free(ent);
	free(ids);
	if (rc < 0) {
		memset(st, 0, sizeof(*st));
	}
	return rc;
}
