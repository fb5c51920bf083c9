/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Randomised, self-checking virtio-blk workload for functional tests: keeps `depth` requests in
 * flight per queue with random types, sizes and descriptor layouts, and checks every completion
 * (status, used length, data) against a private shadow copy of the disk.
 *
 * Overlap rule: a request owns a disk chunk while in flight, so two in-flight requests never
 * touch the same sectors and the shadow stays exact.
 */
#ifndef VH_TESTS_IO_ENGINE_H
#define VH_TESTS_IO_ENGINE_H

#include <endian.h>

#include "frontend.h"

/* Operation mix bits. */
#define IO_OP_READ   (1u << 0)
#define IO_OP_WRITE  (1u << 1)
#define IO_OP_FLUSH  (1u << 2)
#define IO_OP_GETID  (1u << 3)
#define IO_OP_DISC   (1u << 4)
#define IO_OP_WZ     (1u << 5)
#define IO_OP_BADTYP (1u << 6) /* unknown request type -> UNSUPP */
#define IO_OP_OOR    (1u << 7) /* out-of-range read/write -> IOERR */
#define IO_OP_ALL    0xffu

struct io_ctx;

struct io_engine {
	struct vh_fe *fe;
	struct vh_fe_mem *mem;
	unsigned int nq;
	unsigned int depth;
	uint64_t nsect;      /* capacity in 512-byte sectors */
	uint32_t blk_sect;   /* sectors per logical block */
	uint32_t chunk_sect; /* sectors per chunk (= max request) */
	uint8_t *shadow;
	uint8_t *known; /* per sector: content known (0 after discard) */
	uint8_t *chunk_busy;
	uint64_t nchunks;
	struct io_ctx *ctx; /* nq * depth */
	uint64_t rng;
	unsigned int ops;     /* IO_OP_* allowed */
	unsigned int layouts; /* VH_FE_L_* flags chosen at random */
	bool readonly;        /* writes must fail with IOERR */
	bool straddle;        /* allow buffers that straddle regions (default true) */
	const char *serial;   /* expected GET_ID (NULL = unchecked) */
	uint64_t done, errors;
	bool verbose;
};

/*
 * Set up over a started device. Buffers come from mem (one straddles each region boundary when
 * the regions are GPA-adjacent). The shadow starts as "unknown": the first read of each sector
 * learns it. Returns 0 or -errno.
 */
int io_engine_init(struct io_engine *e, struct vh_fe *fe, struct vh_fe_mem *mem, unsigned int nq,
                   unsigned int depth, uint64_t seed);
void io_engine_fini(struct io_engine *e);

/*
 * Run `ops` more requests (0 = only keep what is in flight) and, if drain, wait for all.
 * Returns 0, or -1 after printing the first mismatch. timeout_ms bounds the whole call.
 */
int io_engine_run(struct io_engine *e, uint64_t ops, bool drain, int timeout_ms);

/* Submit up to `n` new requests across the queues without waiting. */
int io_engine_submit(struct io_engine *e, unsigned int n);
/* Reap whatever completed on every queue and check it. Returns completions or -1. */
int io_engine_reap(struct io_engine *e);
/* Requests in flight. */
unsigned int io_engine_inflight(const struct io_engine *e);

/* Synchronous single request helpers for targeted checks (queue q). */
int io_sync(struct vh_fe *fe, unsigned int q, struct vh_fe_req *req, int timeout_ms);
/*
 * Write a 4 KiB pattern (derived from sector and tag) at `sector` through queue q, read it back
 * and compare. Buffers come from mem. Returns 0 or -1 (printed).
 */
int io_smoke(struct vh_fe *fe, struct vh_fe_mem *mem, unsigned int q, uint64_t sector,
             uint32_t tag);

#endif
