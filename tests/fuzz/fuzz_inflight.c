/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzz target: restoring the inflight region (src/vhost/inflight.c). The region comes back from
 * the front-end after a back-end crash, so every byte of it is hostile.
 *
 * Input: struct hdr, then the queue's region (header + size entries; a short input is
 * zero-filled). The region sits in a heap block of exactly its size, so ASan's redzones catch
 * any access past either end. With F_MAP the input also describes a SET_INFLIGHT_FD message
 * (geometry, mmap size and offset, the fd's size and seals) for vh_inflight_map().
 *
 * Checked: vh_inflight_recover() either refuses the region or returns at most @max distinct
 * heads, each < size and marked in flight, ordered by counter, with next_avail = used_idx +
 * count and counter = the highest counter among them. vh_inflight_map() only accepts a mapping
 * that covers every queue's stride.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vhost/device.h"
#include "vhost/session.h"

#define F_MAP  0x01
#define F_SEAL 0x02

struct hdr {
	uint8_t flags;
	uint8_t qlog;
	uint16_t used_idx;
	uint16_t max;
	/* F_MAP: */
	uint16_t num_queues;
	uint16_t queue_size;
	uint32_t file_size;
	uint32_t mmap_size;
	uint32_t mmap_offset;
} __attribute__((packed));

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_map(const struct hdr *h)
{
	struct vhost_user_inflight w = {
	        .mmap_size = h->mmap_size,
	        .mmap_offset = h->mmap_offset,
	        .num_queues = h->num_queues,
	        .queue_size = h->queue_size,
	};
	struct vh_inflight ifl = {0};
	int fd = memfd_create("fuzz-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0 || ftruncate(fd, h->file_size % (4u << 20)) < 0) {
		abort();
	}
	if ((h->flags & F_SEAL) && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
		abort();
	}
	if (vh_inflight_map(&ifl, &w, fd, false) == 0) {
		uint64_t need = (uint64_t)ifl.num_queues * vh_inflight_queue_stride(ifl.queue_size);

		if (ifl.base < (uint8_t *)ifl.map ||
		    (uint64_t)(ifl.base - (uint8_t *)ifl.map) + need > ifl.map_size ||
		    ifl.map_size > (uint64_t)(h->file_size % (4u << 20))) {
			fprintf(stderr, "inflight mapping does not cover its queues\n");
			abort();
		}
		/* Touch the last byte of the last queue: must be inside the file. */
		if (need > 0) {
			volatile uint8_t *last = ifl.base + need - 1;

			*last = *last;
		}
	}
	vh_inflight_unmap(&ifl);
	close(fd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct inflight_split_queue *q;
	struct hdr h;
	uint16_t qsize, next_avail;
	uint16_t heads[VH_VQ_MAX_SLOTS];
	uint32_t max, count;
	uint64_t counter, bytes;
	static uint8_t seen[VH_MAX_QUEUE_SIZE];

	if (size < sizeof(h)) {
		return -1;
	}
	memcpy(&h, data, sizeof(h));
	data += sizeof(h);
	size -= sizeof(h);
	if (h.flags & F_MAP) {
		fuzz_map(&h);
	}
	qsize = (uint16_t)(1u << (h.qlog % 16));
	max = h.max % (VH_VQ_MAX_SLOTS + 1);
	bytes = sizeof(*q) + (uint64_t)qsize * sizeof(q->desc[0]);
	q = calloc(1, bytes);
	if (q == NULL) {
		abort();
	}
	memcpy(q, data, size < bytes ? size : bytes);
	if (vh_inflight_recover(q, qsize, qsize, h.used_idx, heads, max, &count, &next_avail,
	                        &counter) == 0) {
		uint64_t maxc = 0;

		if (count > max || next_avail != (uint16_t)(h.used_idx + count)) {
			abort();
		}
		memset(seen, 0, qsize);
		for (uint32_t i = 0; i < count; i++) {
			if (heads[i] >= qsize || seen[heads[i]] ||
			    q->desc[heads[i]].inflight != 1) {
				fprintf(stderr, "bad resubmit head %u\n", heads[i]);
				abort();
			}
			seen[heads[i]] = 1;
			if (i > 0 && q->desc[heads[i]].counter < q->desc[heads[i - 1]].counter) {
				abort(); /* resubmission must be oldest first */
			}
			maxc = VH_MAX(maxc, q->desc[heads[i]].counter);
		}
		if (counter != maxc || q->version != 1 || q->desc_num != qsize ||
		    q->used_idx != h.used_idx) {
			abort();
		}
	}
	free(q);
	return 0;
}
