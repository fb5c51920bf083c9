/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * NVMe data pointers → iovecs: PRP entries and lists (§4.3) and SGLs (§4.4).
 *
 * Threat model: the guest writes the command, its PRP lists and SGL segments in its own memory
 * and may change them while we read. Each list entry and segment is read exactly once into a
 * local before it is checked; every address must lie in a DMA region with the permission the
 * transfer needs (a device write lands in guest memory, so a read-only region refuses it);
 * lengths are bounded by the command's transfer length and the walk is bounded by the number
 * of pages (PRP) or descriptors (SGL) that length can need, so a list that points at itself
 * ends with an error instead of a loop. A violation completes the command with the status the
 * spec names for it; nothing here is fatal.
 */
#include <string.h>

#include "core/util.h"
#include "vfu/nvme.h"

#define PAGE      VFU_NVME_PAGE
#define MAX_DESCS 256 /* SGL descriptors per command, all segments together */

struct map {
	const struct vfu_dma *dma;
	uint32_t prot;
	struct iovec *iov;
	unsigned max;
	unsigned n;
};

/* Append guest [gpa, gpa + len) (may span adjacent regions). */
static uint16_t
add(struct map *m, uint64_t gpa, uint64_t len)
{
	while (len > 0) {
		uint64_t got, end;
		uint8_t *p;

		if (VH_ADD_OVERFLOW(gpa, len, &end)) {
			return NVME_ST_GEN(VH_NVME_SC_DATA_XFER_ERROR);
		}
		p = vfu_dma_ptr_prefix(m->dma, gpa, len, m->prot, &got);
		if (p == NULL) {
			return NVME_ST_GEN(VH_NVME_SC_DATA_XFER_ERROR);
		}
		if (m->n > 0 &&
		    (uint8_t *)m->iov[m->n - 1].iov_base + m->iov[m->n - 1].iov_len == p) {
			m->iov[m->n - 1].iov_len += got;
		} else {
			if (m->n == m->max) {
				return NVME_ST_GEN(VH_NVME_SC_INVALID_FIELD);
			}
			m->iov[m->n].iov_base = p;
			m->iov[m->n].iov_len = got;
			m->n++;
		}
		gpa += got;
		len -= got;
	}
	return NVME_ST_OK;
}

static uint16_t
map_prp(struct map *m, uint64_t prp1, uint64_t prp2, uint64_t len)
{
	uint64_t first = VH_MIN(len, PAGE - (prp1 & (PAGE - 1)));
	uint64_t remaining = len - first, list = prp2;
	/* Pages of PRP list we may visit: one per data page, plus slack for the alignment. */
	uint64_t budget = len / PAGE + 2;
	uint16_t st;

	if (prp1 & 0x3) {
		return NVME_ST_GEN(VH_NVME_SC_INVALID_PRP_OFFSET);
	}
	st = add(m, prp1, first);
	if (st != NVME_ST_OK || remaining == 0) {
		return st;
	}
	if (remaining <= PAGE) {
		/* PRP2 is the second (last) data page and has no offset. */
		if (prp2 & (PAGE - 1)) {
			return NVME_ST_GEN(VH_NVME_SC_INVALID_PRP_OFFSET);
		}
		return add(m, prp2, remaining);
	}
	if (list & 0x7) {
		return NVME_ST_GEN(VH_NVME_SC_INVALID_PRP_OFFSET);
	}
	while (remaining > 0) {
		unsigned slots = (unsigned)((PAGE - (list & (PAGE - 1))) / 8);
		const uint64_t *entries;

		if (budget-- == 0) {
			return NVME_ST_GEN(VH_NVME_SC_INVALID_FIELD);
		}
		entries = vfu_dma_ptr(m->dma, list, (uint64_t)slots * 8, VFU_DMA_READ);
		if (entries == NULL) {
			return NVME_ST_GEN(VH_NVME_SC_DATA_XFER_ERROR);
		}
		for (unsigned i = 0; i < slots && remaining > 0; i++) {
			uint64_t e = VH_READ_ONCE(entries[i]); /* once: the guest may rewrite it */

			if (i == slots - 1 && remaining > PAGE) {
				/* The last slot of a full list page points to the next list page.
				 */
				if (e & 0x7) {
					return NVME_ST_GEN(VH_NVME_SC_INVALID_PRP_OFFSET);
				}
				list = e;
				break;
			}
			if (e & (PAGE - 1)) {
				return NVME_ST_GEN(VH_NVME_SC_INVALID_PRP_OFFSET);
			}
			st = add(m, e, VH_MIN(remaining, PAGE));
			if (st != NVME_ST_OK) {
				return st;
			}
			remaining -= VH_MIN(remaining, PAGE);
		}
	}
	return NVME_ST_OK;
}

static uint8_t
sgl_type(const struct nvme_sgl_desc *d)
{
	return d->type >> 4;
}

/* A Data Block descriptor: append it, counting against the transfer length. */
static uint16_t
sgl_data(struct map *m, const struct nvme_sgl_desc *d, uint64_t len, uint64_t *total)
{
	if ((d->type & 0xf) != 0) {
		return NVME_ST_GEN(NVME_SC_SGL_DESC_TYPE_INVALID); /* only "address" subtype */
	}
	if (d->len > len - *total) {
		return NVME_ST_GEN(NVME_SC_SGL_DATA_LEN_INVALID);
	}
	*total += d->len;
	return d->len > 0 ? add(m, d->addr, d->len) : NVME_ST_OK;
}

static uint16_t
map_sgl(struct map *m, const struct vh_nvme_sqe *cmd, uint64_t len)
{
	struct nvme_sgl_desc cur, seg[32];
	uint64_t total = 0;
	unsigned budget = MAX_DESCS;
	uint16_t st;

	/* SGL1 occupies the PRP1/PRP2 fields (16 bytes), already copied out with the command. */
	memcpy(&cur, &cmd->prp1, sizeof(cur));
	for (;;) {
		uint8_t t = sgl_type(&cur);
		unsigned n, done = 0;
		bool last, chained = false;

		if (t == NVME_SGL_DATA_BLOCK) {
			st = sgl_data(m, &cur, len, &total);
			break;
		}
		if (t != NVME_SGL_SEGMENT && t != NVME_SGL_LAST_SEGMENT) {
			return NVME_ST_GEN(NVME_SC_SGL_DESC_TYPE_INVALID);
		}
		if ((cur.type & 0xf) != 0 || cur.len == 0 || (cur.len % sizeof(cur)) != 0) {
			return NVME_ST_GEN(NVME_SC_SGL_SEG_DESC_INVALID);
		}
		n = cur.len / (unsigned)sizeof(cur);
		if (n > budget) {
			return NVME_ST_GEN(NVME_SC_SGL_NUM_DESC_INVALID);
		}
		budget -= n;
		last = t == NVME_SGL_LAST_SEGMENT;
		/* Read the segment once, in chunks, into locals. */
		while (done < n) {
			unsigned chunk = VH_MIN(n - done, (unsigned)VH_ARRAY_SIZE(seg));
			const void *src =
			        vfu_dma_ptr(m->dma, cur.addr + (uint64_t)done * sizeof(cur),
			                    (uint64_t)chunk * sizeof(cur), VFU_DMA_READ);

			if (src == NULL) {
				return NVME_ST_GEN(VH_NVME_SC_DATA_XFER_ERROR);
			}
			memcpy(seg, src, (size_t)chunk * sizeof(cur));
			for (unsigned i = 0; i < chunk; i++) {
				uint8_t st_t = sgl_type(&seg[i]);
				bool is_last_desc = done + i == n - 1;

				if (st_t == NVME_SGL_DATA_BLOCK) {
					st = sgl_data(m, &seg[i], len, &total);
					if (st != NVME_ST_OK) {
						return st;
					}
				} else if ((st_t == NVME_SGL_SEGMENT ||
				            st_t == NVME_SGL_LAST_SEGMENT) &&
				           is_last_desc && !last) {
					cur = seg[i]; /* the next segment */
					chained = true;
				} else if (st_t == NVME_SGL_SEGMENT ||
				           st_t == NVME_SGL_LAST_SEGMENT) {
					return NVME_ST_GEN(NVME_SC_SGL_SEG_DESC_INVALID);
				} else {
					return NVME_ST_GEN(NVME_SC_SGL_DESC_TYPE_INVALID);
				}
			}
			done += chunk;
		}
		if (last) {
			st = NVME_ST_OK;
			break;
		}
		if (!chained) {
			/* A Segment must end with a segment descriptor (§4.4.2). */
			return NVME_ST_GEN(NVME_SC_SGL_SEG_DESC_INVALID);
		}
	}
	if (st != NVME_ST_OK) {
		return st;
	}
	return total == len ? NVME_ST_OK : NVME_ST_GEN(NVME_SC_SGL_DATA_LEN_INVALID);
}

uint16_t
vfu_nvme_map_data(const struct vfu_dma *dma, const struct vh_nvme_sqe *cmd, uint64_t len,
                  uint32_t prot, struct iovec *iov, unsigned max, unsigned *niov)
{
	struct map m = {.dma = dma, .prot = prot, .iov = iov, .max = max};
	uint16_t st;

	*niov = 0;
	if (len == 0) {
		return NVME_ST_OK;
	}
	switch (NVME_PSDT(cmd->fuse_psdt)) {
	case 0:
		st = map_prp(&m, cmd->prp1, cmd->prp2, len);
		break;
	case 1:
	case 2:
		/* 10b differs only in the metadata pointer, which we do not use (no metadata). */
		st = map_sgl(&m, cmd, len);
		break;
	default:
		st = NVME_ST_GEN(VH_NVME_SC_INVALID_FIELD);
		break;
	}
	if (st == NVME_ST_OK) {
		*niov = m.n;
	}
	return st;
}

static uint16_t
copy(const struct vfu_dma *dma, const struct vh_nvme_sqe *cmd, void *buf, uint64_t len,
     bool to_guest)
{
	struct iovec iov[VFU_NVME_MAX_IOV];
	unsigned n;
	uint16_t st = vfu_nvme_map_data(dma, cmd, len, to_guest ? VFU_DMA_WRITE : VFU_DMA_READ, iov,
	                                VH_ARRAY_SIZE(iov), &n);
	uint8_t *b = buf;

	if (st != NVME_ST_OK) {
		return st;
	}
	for (unsigned i = 0; i < n; i++) {
		if (to_guest) {
			memcpy(iov[i].iov_base, b, iov[i].iov_len);
		} else {
			memcpy(b, iov[i].iov_base, iov[i].iov_len);
		}
		b += iov[i].iov_len;
	}
	return NVME_ST_OK;
}

uint16_t
vfu_nvme_copy_to_guest(const struct vfu_dma *dma, const struct vh_nvme_sqe *cmd, const void *buf,
                       uint64_t len)
{
	return copy(dma, cmd, (void *)buf, len, true);
}

uint16_t
vfu_nvme_copy_from_guest(const struct vfu_dma *dma, const struct vh_nvme_sqe *cmd, void *buf,
                         uint64_t len)
{
	return copy(dma, cmd, buf, len, false);
}
