/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Verified random I/O over the test vfio-user client (vfu_client.h): several I/O queues, each
 * with a fixed depth, on one or more namespaces, checked against an in-memory model of every
 * namespace. Ranges in flight never overlap, so every read has one right answer. Buffers start
 * at random 512-byte offsets inside pages (PRP1 offsets, PRP lists); a share of the commands
 * use SGLs. Write Zeroes and deallocation are mixed in (deallocated blocks are then unknown
 * until written again).
 *
 * One thread; waits poll with a deadline.
 */
#ifndef VH_TESTS_VFU_IO_H
#define VH_TESTS_VFU_IO_H

#include <stdbool.h>
#include <stdint.h>

#include "vfu_client.h"

#define VIO_MAX_NS    4
#define VIO_MAX_DEPTH 32
#define VIO_MAX_Q     16

enum {
	VIO_WRITE = 1u << 0,
	VIO_READ = 1u << 1,
	VIO_WZ = 1u << 2,
	VIO_DSM = 1u << 3,
	VIO_FLUSH = 1u << 4,
	VIO_SGL = 1u << 5, /* a quarter of reads and writes use SGLs */
	VIO_FUA = 1u << 6, /* a share of writes are FUA */
};

struct vio_ns {
	uint32_t nsid;
	uint32_t bs;
	uint64_t nblocks;
	uint8_t *model; /* nblocks * bs */
	uint8_t *known; /* per block: model is the content */
	uint8_t *busy;  /* per block: in flight */
};

struct vio_slot {
	bool used;
	uint16_t cid;
	uint8_t opc;
	unsigned ns;
	uint64_t slba;
	uint32_t nlb;
	uint64_t iova; /* data buffer */
	uint8_t *va;
};

struct vio {
	struct vfu_client *c;
	struct vio_ns ns[VIO_MAX_NS];
	unsigned nns;
	uint16_t qids[VIO_MAX_Q];
	unsigned nq;
	unsigned depth;
	unsigned ops; /* VIO_* */
	uint32_t max_nlb_bytes;
	uint64_t rng;
	struct vio_slot slot[VIO_MAX_Q][VIO_MAX_DEPTH];
	uint64_t done, errors, mismatches;
	bool verbose;
};

/* Set up: models zeroed and known (fresh RAM disks read zeros). Returns 0 or -ENOMEM. */
int vio_init(struct vio *v, struct vfu_client *c, uint64_t seed);
/* Add namespace @nsid of @nblocks blocks of @bs bytes. */
int vio_add_ns(struct vio *v, uint32_t nsid, uint32_t bs, uint64_t nblocks);
void vio_fini(struct vio *v);
/*
 * Run @count commands spread over the queues (qids, depth set by the caller), then drain.
 * Returns 0, or -1 after printing the first mismatch or unexpected status, or -ETIMEDOUT.
 */
int vio_run(struct vio *v, uint64_t count, int timeout_ms);
/* Submit up to depth commands per queue and return without waiting (for reset-under-I/O). */
int vio_start_only(struct vio *v);
/* Forget everything in flight (after a controller reset): ranges they touched become unknown. */
void vio_abandon(struct vio *v);
/* Read the whole of every namespace back and compare with the model. */
int vio_verify_all(struct vio *v, uint16_t qid, int timeout_ms);

#endif
