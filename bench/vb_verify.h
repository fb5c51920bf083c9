/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Data verification for vhost-bench --verify. Every block (one I/O of --bs bytes) written with
 * --verify starts with a header {magic, LBA, seed, generation, crc32c}; the rest is a pattern
 * derived from (LBA, generation, seed). The crc32c covers the whole block with the crc field
 * zeroed, so any change to any byte is caught, and the LBA catches misdirected I/O.
 *
 * A generation of 0 means "unknown" (not written by this run): the block must then be all
 * zeroes (never written) or carry a valid header for its own LBA (any generation). Runs that
 * check each other's data must use the same --bs.
 *
 * Rules: pure functions on caller memory; callable from any thread.
 */
#ifndef VB_VERIFY_H
#define VB_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#define VB_VERIFY_MAGIC    0x3148434e45424856ull /* "VHBENCH1" read as little-endian */
#define VB_VERIFY_HDR_SIZE 32u

/* Block header, little-endian on disk. */
struct vb_verify_hdr {
	uint64_t magic;
	uint64_t lba;  /* 512-byte sector of the block's first byte */
	uint32_t seed; /* low half of --seed (informational) */
	uint32_t bs;   /* block size it was written with */
	uint32_t gen;
	uint32_t crc; /* crc32c of the block with this field zero */
};

enum vb_verify_result {
	VB_VERIFY_OK = 0,
	VB_VERIFY_ZERO,      /* all zeroes, accepted when the generation is unknown */
	VB_VERIFY_BAD_MAGIC, /* neither zeroes nor a header */
	VB_VERIFY_BAD_LBA,   /* a header for another block */
	VB_VERIFY_BAD_BS,    /* written with another --bs: cannot be checked */
	VB_VERIFY_BAD_CRC,   /* contents changed */
	VB_VERIFY_BAD_GEN,   /* an older (or newer) write of this block */
};

/* crc32c (Castagnoli) update: start with crc = 0, feed buffers in order. */
uint32_t vb_crc32c(uint32_t crc, const void *buf, size_t len);

/* Fill buf (bs >= VB_VERIFY_HDR_SIZE bytes, multiple of 8) with generation gen of block lba. */
void vb_verify_fill(void *buf, uint32_t bs, uint64_t lba, uint32_t gen, uint64_t seed);

/*
 * Check a block read back from sector lba. expect_gen 0 = unknown (see above).
 * Returns VB_VERIFY_OK or VB_VERIFY_ZERO when it is acceptable, another value otherwise; *got
 * (may be NULL) receives the header found (zeroed when there is none).
 */
enum vb_verify_result vb_verify_check(const void *buf, uint32_t bs, uint64_t lba,
                                      uint32_t expect_gen, struct vb_verify_hdr *got);

/* Whether r means the block is acceptable. */
static inline int
vb_verify_ok(enum vb_verify_result r)
{
	return r == VB_VERIFY_OK || r == VB_VERIFY_ZERO;
}

const char *vb_verify_str(enum vb_verify_result r);

#endif
