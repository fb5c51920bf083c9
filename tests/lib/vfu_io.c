/* SPDX-License-Identifier: BSD-3-Clause */
/* Verified random I/O over the test vfio-user client (see vfu_io.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vfu_io.h"

#define PAGE 4096u

static uint64_t
rnd(struct vio *v)
{
	v->rng ^= v->rng << 13;
	v->rng ^= v->rng >> 7;
	v->rng ^= v->rng << 17;
	return v->rng;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
vio_init(struct vio *v, struct vfu_client *c, uint64_t seed)
{
	memset(v, 0, sizeof(*v));
	v->c = c;
	v->rng = seed | 1;
	v->depth = 8;
	v->ops = VIO_WRITE | VIO_READ;
	v->max_nlb_bytes = 64 * 1024;
	return 0;
}

int
vio_add_ns(struct vio *v, uint32_t nsid, uint32_t bs, uint64_t nblocks)
{
	struct vio_ns *n;

	if (v->nns == VIO_MAX_NS) {
		return -ENOSPC;
	}
	n = &v->ns[v->nns];
	n->nsid = nsid;
	n->bs = bs;
	n->nblocks = nblocks;
	n->model = calloc(nblocks, bs);
	n->known = malloc(nblocks);
	n->busy = calloc(nblocks, 1);
	if (n->model == NULL || n->known == NULL || n->busy == NULL) {
		return -ENOMEM;
	}
	memset(n->known, 1, nblocks);
	v->nns++;
	return 0;
}

void
vio_fini(struct vio *v)
{
	for (unsigned i = 0; i < v->nns; i++) {
		free(v->ns[i].model);
		free(v->ns[i].known);
		free(v->ns[i].busy);
	}
	v->nns = 0;
}

static bool
range_free(const struct vio_ns *n, uint64_t slba, uint32_t nlb)
{
	for (uint32_t i = 0; i < nlb; i++) {
		if (n->busy[slba + i]) {
			return false;
		}
	}
	return true;
}

static void
mark(struct vio_ns *n, uint64_t slba, uint32_t nlb, uint8_t busy)
{
	memset(n->busy + slba, busy, nlb);
}

/* Pick an operation and a free range; false if none found this time. */
static bool
pick(struct vio *v, struct vio_slot *s)
{
	static const uint8_t opcs[] = {VH_NVME_OPC_WRITE, VH_NVME_OPC_READ,
	                               VH_NVME_OPC_WRITE_ZEROES, VH_NVME_OPC_DSM,
	                               VH_NVME_OPC_FLUSH};
	static const unsigned bits[] = {VIO_WRITE, VIO_READ, VIO_WZ, VIO_DSM, VIO_FLUSH};
	unsigned k;

	for (int tries = 0; tries < 16; tries++) {
		struct vio_ns *n;
		uint32_t max_nlb;

		k = (unsigned)(rnd(v) % 10);
		k = k < 4 ? 0 : k < 8 ? 1 : (unsigned)(2 + rnd(v) % 3);
		if (!(v->ops & bits[k])) {
			continue;
		}
		s->opc = opcs[k];
		s->ns = (unsigned)(rnd(v) % v->nns);
		n = &v->ns[s->ns];
		if (s->opc == VH_NVME_OPC_FLUSH) {
			s->slba = 0;
			s->nlb = 0;
			return true;
		}
		max_nlb = v->max_nlb_bytes / n->bs;
		if (s->opc == VH_NVME_OPC_WRITE_ZEROES || s->opc == VH_NVME_OPC_DSM) {
			max_nlb *= 4; /* no data transfer: larger ranges are fine */
		}
		s->nlb = 1 + (uint32_t)(rnd(v) % max_nlb);
		if (s->nlb > n->nblocks) {
			s->nlb = (uint32_t)n->nblocks;
		}
		s->slba = rnd(v) % (n->nblocks - s->nlb + 1);
		if (range_free(n, s->slba, s->nlb)) {
			return true;
		}
	}
	return false;
}

static int
submit_one(struct vio *v, unsigned qi, struct vio_slot *s)
{
	struct vio_ns *n = &v->ns[s->ns];
	struct vh_nvme_sqe cmd;
	uint64_t len = (uint64_t)s->nlb * n->bs;
	int cid;

	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = s->opc;
	cmd.nsid = n->nsid;
	cmd.cdw10 = (uint32_t)s->slba;
	cmd.cdw11 = (uint32_t)(s->slba >> 32);
	cmd.cdw12 = s->nlb > 0 ? s->nlb - 1 : 0;
	switch (s->opc) {
	case VH_NVME_OPC_WRITE:
	case VH_NVME_OPC_READ: {
		/* A buffer at a random 512-byte offset: PRP1 offsets and PRP lists. */
		uint64_t off = (rnd(v) % 8) * 512;

		s->iova = vc_alloc(v->c, len + off + PAGE, PAGE, (void **)&s->va) + off;
		s->va += off;
		if (s->opc == VH_NVME_OPC_WRITE) {
			for (uint64_t i = 0; i < len; i += 8) {
				uint64_t r = rnd(v);

				memcpy(s->va + i, &r, len - i < 8 ? len - i : 8);
			}
			if ((v->ops & VIO_FUA) && rnd(v) % 4 == 0) {
				cmd.cdw12 |= 1u << 30;
			}
		} else {
			memset(s->va, 0xee, len);
		}
		if ((v->ops & VIO_SGL) && rnd(v) % 4 == 0) {
			vc_build_sgl(v->c, &cmd, s->iova, len);
		} else {
			vc_build_prp(v->c, &cmd, s->iova, len);
		}
		break;
	}
	case VH_NVME_OPC_WRITE_ZEROES:
		if (rnd(v) % 2) {
			cmd.cdw12 |= 1u << 25; /* DEAC */
		}
		break;
	case VH_NVME_OPC_DSM: {
		uint32_t *r;

		s->iova = vc_alloc(v->c, 16, 16, (void **)&r);
		r[0] = 0;
		r[1] = s->nlb;
		memcpy(&r[2], &s->slba, 8);
		cmd.cdw10 = 0;       /* one range */
		cmd.cdw11 = 1u << 2; /* AD */
		cmd.cdw12 = 0;
		vc_build_prp(v->c, &cmd, s->iova, 16);
		break;
	}
	default:
		break;
	}
	cid = vc_queue_cmd(v->c, v->qids[qi], &cmd);
	if (cid < 0) {
		return cid;
	}
	s->cid = (uint16_t)cid;
	s->used = true;
	if (s->nlb > 0) {
		mark(n, s->slba, s->nlb, 1);
	}
	return 0;
}

static int
finish(struct vio *v, struct vio_slot *s, const struct vh_nvme_cqe *e)
{
	struct vio_ns *n = &v->ns[s->ns];
	uint64_t len = (uint64_t)s->nlb * n->bs, off = s->slba * n->bs;
	int st = e->status >> 1;

	s->used = false;
	if (s->nlb > 0) {
		mark(n, s->slba, s->nlb, 0);
	}
	v->done++;
	if (st != 0) {
		fprintf(stderr, "vio: opc 0x%02x ns %u slba %" PRIu64 " nlb %u: status 0x%x\n",
		        s->opc, n->nsid, s->slba, s->nlb, st);
		v->errors++;
		return -1;
	}
	switch (s->opc) {
	case VH_NVME_OPC_WRITE:
		memcpy(n->model + off, s->va, len);
		memset(n->known + s->slba, 1, s->nlb);
		break;
	case VH_NVME_OPC_WRITE_ZEROES:
		memset(n->model + off, 0, len);
		memset(n->known + s->slba, 1, s->nlb);
		break;
	case VH_NVME_OPC_DSM:
		memset(n->known + s->slba, 0, s->nlb); /* deallocated: content unspecified */
		break;
	case VH_NVME_OPC_READ:
		for (uint32_t b = 0; b < s->nlb; b++) {
			if (n->known[s->slba + b] &&
			    memcmp(s->va + (uint64_t)b * n->bs,
			           n->model + off + (uint64_t)b * n->bs, n->bs) != 0) {
				fprintf(stderr,
				        "vio: MISMATCH ns %u lba %" PRIu64
				        " (read of %u at %" PRIu64 ")\n",
				        n->nsid, s->slba + b, s->nlb, s->slba);
				v->mismatches++;
				return -1;
			}
		}
		break;
	default:
		break;
	}
	return 0;
}

static int
reap(struct vio *v, unsigned qi)
{
	struct vh_nvme_cqe e[32];
	int n = vc_reap(v->c, v->qids[qi], e, 32), rc = 0;

	for (int i = 0; i < n; i++) {
		bool found = false;

		for (unsigned d = 0; d < v->depth; d++) {
			struct vio_slot *s = &v->slot[qi][d];

			if (s->used && s->cid == e[i].cid) {
				found = true;
				if (finish(v, s, &e[i]) < 0) {
					rc = -1;
				}
				break;
			}
		}
		if (!found) {
			fprintf(stderr, "vio: completion for unknown cid %u on queue %u\n",
			        e[i].cid, v->qids[qi]);
			rc = -1;
		}
	}
	return rc < 0 ? rc : n;
}

static unsigned
inflight(const struct vio *v)
{
	unsigned n = 0;

	for (unsigned q = 0; q < v->nq; q++) {
		for (unsigned d = 0; d < v->depth; d++) {
			n += v->slot[q][d].used;
		}
	}
	return n;
}

static int
fill(struct vio *v, uint64_t *left)
{
	for (unsigned q = 0; q < v->nq; q++) {
		bool any = false;

		for (unsigned d = 0; d<v->depth && * left> 0; d++) {
			struct vio_slot *s = &v->slot[q][d];

			if (s->used || !pick(v, s)) {
				continue;
			}
			if (submit_one(v, q, s) < 0) {
				break;
			}
			(*left)--;
			any = true;
		}
		if (any) {
			vc_ring(v->c, v->qids[q]);
		}
	}
	return 0;
}

int
vio_run(struct vio *v, uint64_t count, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms, left = count;

	if (v->depth > VIO_MAX_DEPTH || v->nq > VIO_MAX_Q || v->nns == 0) {
		return -EINVAL;
	}
	while (left > 0 || inflight(v) > 0) {
		fill(v, &left);
		for (unsigned q = 0; q < v->nq; q++) {
			if (reap(v, q) < 0) {
				return -1;
			}
		}
		if (now_ms() > deadline) {
			fprintf(stderr, "vio: timeout with %u in flight, %" PRIu64 " left\n",
			        inflight(v), left);
			return -ETIMEDOUT;
		}
	}
	return 0;
}

int
vio_start_only(struct vio *v)
{
	uint64_t left = (uint64_t)v->nq * v->depth;

	return fill(v, &left);
}

void
vio_abandon(struct vio *v)
{
	for (unsigned q = 0; q < v->nq; q++) {
		for (unsigned d = 0; d < v->depth; d++) {
			struct vio_slot *s = &v->slot[q][d];

			if (s->used && s->nlb > 0) {
				struct vio_ns *n = &v->ns[s->ns];

				mark(n, s->slba, s->nlb, 0);
				if (s->opc != VH_NVME_OPC_READ) {
					memset(n->known + s->slba, 0, s->nlb);
				}
			}
			s->used = false;
		}
	}
}

int
vio_verify_all(struct vio *v, uint16_t qid, int timeout_ms)
{
	for (unsigned i = 0; i < v->nns; i++) {
		struct vio_ns *n = &v->ns[i];
		uint32_t step = v->max_nlb_bytes / n->bs;

		for (uint64_t lba = 0; lba < n->nblocks; lba += step) {
			uint32_t nlb =
			        (uint32_t)(n->nblocks - lba < step ? n->nblocks - lba : step);
			struct vh_nvme_sqe cmd;
			uint8_t *va;
			uint64_t iova = vc_alloc(v->c, (uint64_t)nlb * n->bs, PAGE, (void **)&va);
			int st;

			vc_rw_cmd(v->c, &cmd, VH_NVME_OPC_READ, n->nsid, lba, nlb, iova, n->bs);
			st = vc_cmd(v->c, qid, &cmd, NULL, timeout_ms);
			if (st != 0) {
				fprintf(stderr,
				        "vio: verify read ns %u lba %" PRIu64 ": status %d\n",
				        n->nsid, lba, st);
				return -1;
			}
			for (uint32_t b = 0; b < nlb; b++) {
				if (n->known[lba + b] &&
				    memcmp(va + (uint64_t)b * n->bs, n->model + (lba + b) * n->bs,
				           n->bs) != 0) {
					fprintf(stderr,
					        "vio: verify MISMATCH ns %u lba %" PRIu64 "\n",
					        n->nsid, lba + b);
					return -1;
				}
			}
		}
	}
	return 0;
}
