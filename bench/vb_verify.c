/* SPDX-License-Identifier: BSD-3-Clause */
/* Block headers and the checker behind vhost-bench --verify (see vb_verify.h). */
#include <endian.h>
#include <stdbool.h>
#include <string.h>

#include "vb_verify.h"

#define CRC32C_POLY_REV 0x82f63b78u

static uint32_t crc_table[256];
static bool crc_table_ready;

static void
crc_table_init(void)
{
	uint32_t i, j, c;

	for (i = 0; i < 256; i++) {
		c = i;
		for (j = 0; j < 8; j++) {
			c = (c >> 1) ^ (c & 1 ? CRC32C_POLY_REV : 0);
		}
		crc_table[i] = c;
	}
	__atomic_store_n(&crc_table_ready, true, __ATOMIC_RELEASE);
}

static uint32_t
crc_sw(uint32_t crc, const uint8_t *p, size_t len)
{
	if (!__atomic_load_n(&crc_table_ready, __ATOMIC_ACQUIRE)) {
		/* Idempotent: two threads racing here write the same table. */
		crc_table_init();
	}
	while (len--) {
		crc = (crc >> 8) ^ crc_table[(crc ^ *p++) & 0xff];
	}
	return crc;
}

#if defined(__x86_64__)
/* SSE4.2 has the Castagnoli polynomial in hardware: 8 bytes per instruction. */
__attribute__((target("sse4.2"))) static uint32_t
crc_hw(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = crc, v;

	while (len >= 8) {
		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		len -= 8;
	}
	while (len--) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	}
	return (uint32_t)c;
}
#endif

uint32_t
vb_crc32c(uint32_t crc, const void *buf, size_t len)
{
	crc = ~crc;
#if defined(__x86_64__)
	if (__builtin_cpu_supports("sse4.2")) {
		return ~crc_hw(crc, buf, len);
	}
#endif
	return ~crc_sw(crc, buf, len);
}

static uint64_t
pattern_next(uint64_t *s)
{
	/* splitmix64: every (lba, gen, seed) gives its own stream. */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint32_t
block_crc(const uint8_t *buf, uint32_t bs)
{
	static const uint8_t zero4[4];
	uint32_t crc;

	/* The crc field (bytes 28..31) counts as zero. */
	crc = vb_crc32c(0, buf, 28);
	crc = vb_crc32c(crc, zero4, 4);
	return vb_crc32c(crc, buf + VB_VERIFY_HDR_SIZE, bs - VB_VERIFY_HDR_SIZE);
}

void
vb_verify_fill(void *buf, uint32_t bs, uint64_t lba, uint32_t gen, uint64_t seed)
{
	uint8_t *p = buf;
	uint64_t s = seed ^ (lba * 0x2545f4914f6cdd1dull) ^ ((uint64_t)gen << 40), v;
	struct vb_verify_hdr h = {
	        .magic = htole64(VB_VERIFY_MAGIC),
	        .lba = htole64(lba),
	        .seed = htole32((uint32_t)seed),
	        .bs = htole32(bs),
	        .gen = htole32(gen),
	        .crc = 0,
	};
	uint32_t off, crc;

	for (off = VB_VERIFY_HDR_SIZE; off + 8 <= bs; off += 8) {
		v = pattern_next(&s);
		memcpy(p + off, &v, 8);
	}
	memcpy(p, &h, sizeof(h));
	crc = htole32(block_crc(p, bs));
	memcpy(p + offsetof(struct vb_verify_hdr, crc), &crc, 4);
}

static bool
all_zero(const uint8_t *p, uint32_t len)
{
	uint64_t v, acc = 0;
	uint32_t off;

	for (off = 0; off + 8 <= len; off += 8) {
		memcpy(&v, p + off, 8);
		acc |= v;
	}
	for (; off < len; off++) {
		acc |= p[off];
	}
	return acc == 0;
}

enum vb_verify_result
vb_verify_check(const void *buf, uint32_t bs, uint64_t lba, uint32_t expect_gen,
                struct vb_verify_hdr *got)
{
	const uint8_t *p = buf;
	struct vb_verify_hdr h;

	memcpy(&h, p, sizeof(h));
	h.magic = le64toh(h.magic);
	h.lba = le64toh(h.lba);
	h.seed = le32toh(h.seed);
	h.bs = le32toh(h.bs);
	h.gen = le32toh(h.gen);
	h.crc = le32toh(h.crc);
	if (got) {
		*got = h;
	}
	if (h.magic != VB_VERIFY_MAGIC) {
		if (got) {
			memset(got, 0, sizeof(*got));
		}
		if (expect_gen == 0 && all_zero(p, bs)) {
			return VB_VERIFY_ZERO;
		}
		return VB_VERIFY_BAD_MAGIC;
	}
	if (h.lba != lba) {
		return VB_VERIFY_BAD_LBA;
	}
	if (h.bs != bs) {
		return VB_VERIFY_BAD_BS;
	}
	if (block_crc(p, bs) != h.crc) {
		return VB_VERIFY_BAD_CRC;
	}
	if (expect_gen != 0 && h.gen != expect_gen) {
		return VB_VERIFY_BAD_GEN;
	}
	return VB_VERIFY_OK;
}

const char *
vb_verify_str(enum vb_verify_result r)
{
	switch (r) {
	case VB_VERIFY_OK:
		return "ok";
	case VB_VERIFY_ZERO:
		return "zeroes (never written)";
	case VB_VERIFY_BAD_MAGIC:
		return "no verify header";
	case VB_VERIFY_BAD_LBA:
		return "header of another block";
	case VB_VERIFY_BAD_BS:
		return "written with another --bs";
	case VB_VERIFY_BAD_CRC:
		return "crc32c mismatch";
	case VB_VERIFY_BAD_GEN:
		return "wrong generation";
	}
	return "?";
}
