/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Malicious-guest rings (issue 6, item 6) against a running vhostd. Each case opens a fresh
 * session, queues one legitimate READ and one victim request with the test front-end, then
 * rewrites the victim's descriptors (or the avail index) the way a hostile guest driver would,
 * and publishes both with one kick. Outcome: the victim completes with an error status (IOERR
 * or UNSUPP) and the legitimate request still completes OK, or the daemon closes the session.
 * Never a hang (every wait has a deadline) and never a crash: the witness controller serves
 * verified I/O after every case, and the daemon's fd count is back at baseline at the end.
 */
#include "fe_internal.h" /* the queue's kick eventfd, to kick after a raw avail change */
#include "test_hostile_common.h"

enum mut {
	M_LOOP,
	M_NEXT_OOR,
	M_AVAIL_JUMP,
	M_ADDR_OUTSIDE,
	M_ADDR_HOLE_STRADDLE,
	M_LEN_MAX,
	M_ADDR_WRAP,
	M_LEN0,
	M_IND_BADLEN,
	M_IND_NESTED,
	M_IND_NEXT,
	M_IND_ZERO,
	M_HDR_WRITEONLY,
	M_STATUS_READONLY,
	M_BAD_TYPE,
	M_DISCARD0,
	M_DISCARD_10K,
	M_COUNT,
};

static const char *const names[M_COUNT] = {
        "descriptor loop",
        "next >= queue size",
        "avail idx jumps by size+1",
        "data address outside guest memory",
        "data straddles the end of guest memory",
        "data len 0xffffffff",
        "addr+len wraps",
        "data len 0",
        "indirect table of 17 bytes",
        "nested indirect table",
        "indirect descriptor with NEXT",
        "indirect table of 0 bytes",
        "header in a write-only descriptor",
        "status in a read-only descriptor",
        "unknown request type",
        "DISCARD with 0 segments",
        "DISCARD with 10^4 segments",
};

/* i-th descriptor of a request's chain. */
static struct vring_desc *
chain(struct hostile_case *x, const struct vh_fe_req *r, unsigned i)
{
	struct vring_desc *d = vh_fe_vq_desc(x->vq);
	uint16_t idx = r->head;

	while (i-- > 0) {
		idx = d[idx].next;
	}
	return &d[idx];
}

static int
mutate(struct hostile_case *x, enum mut m)
{
	struct vring_desc *hdr = chain(x, &x->bad, 0), *data = chain(x, &x->bad, 1);
	struct vring_desc *status = chain(x, &x->bad, 2);
	uint16_t qs = vh_fe_vq_size(x->vq);
	uint64_t itab;

	switch (m) {
	case M_LOOP:
		status->flags |= VRING_DESC_F_NEXT;
		status->next = x->bad.head;
		break;
	case M_NEXT_OOR:
		data->next = qs;
		break;
	case M_ADDR_OUTSIDE:
		data->addr = 0xdead00000000ull;
		break;
	case M_ADDR_HOLE_STRADDLE:
		data->addr = x->mem->size - 512;
		data->len = 4096;
		break;
	case M_LEN_MAX:
		data->len = 0xffffffffu;
		break;
	case M_ADDR_WRAP:
		data->addr = ~0ull - 1023;
		data->len = 4096;
		break;
	case M_LEN0:
	case M_DISCARD0:
		data->len = 0;
		break;
	case M_IND_BADLEN:
	case M_IND_NESTED:
	case M_IND_NEXT:
	case M_IND_ZERO:
		/* Replace the head by an indirect descriptor pointing at a copy of the chain. */
		itab = vh_fe_mem_alloc(x->mem, 64, 16);
		T_CHECK(itab != UINT64_MAX, "alloc");
		{
			struct vring_desc *t = vh_fe_gpa_to_ptr(x->mem, itab, 64);

			t[0] = *hdr;
			t[0].next = 1;
			t[1] = *data;
			t[1].next = 2;
			t[2] = *status;
			t[3] = (struct vring_desc){itab, 48, VRING_DESC_F_INDIRECT, 0};
			if (m == M_IND_NESTED) {
				t[1] = t[3];
				t[1].flags |= VRING_DESC_F_NEXT;
				t[1].next = 2;
			}
		}
		hdr->addr = itab;
		hdr->len = m == M_IND_BADLEN ? 17 : m == M_IND_ZERO ? 0 : 48;
		hdr->flags = VRING_DESC_F_INDIRECT | (m == M_IND_NEXT ? VRING_DESC_F_NEXT : 0);
		hdr->next = m == M_IND_NEXT ? chain(x, &x->bad, 1) - vh_fe_vq_desc(x->vq) : 0;
		break;
	case M_HDR_WRITEONLY:
		hdr->flags |= VRING_DESC_F_WRITE;
		data->flags |= VRING_DESC_F_WRITE;
		break;
	case M_STATUS_READONLY:
		data->flags &= (uint16_t)~VRING_DESC_F_WRITE;
		status->flags &= (uint16_t)~VRING_DESC_F_WRITE;
		break;
	default:
		break;
	}
	return 0;
}

static int
one(struct vh_target *t, int mi, struct witness *w)
{
	struct vh_fe_mem_opts mo = {.size = 8 << 20};
	struct vh_fe_opts fo = {.num_queues = 1, .queue_size = 128};
	struct hostile_case x = {0};
	enum mut m = (enum mut)mi;
	bool closed;
	int rc;

	/* The victim's buffer has room for 10^4 DISCARD segments. */
	T_OK(hostile_case_open(t, &mo, &fo, &x, 160000));
	if (m == M_BAD_TYPE) {
		x.bad.type = 0x77;
	} else if (m == M_DISCARD0 || m == M_DISCARD_10K) {
		x.bad.type = VIRTIO_BLK_T_DISCARD;
		x.bad.dir = VH_FE_DIR_OUT;
		x.biov.len = m == M_DISCARD0 ? 16 : 16 * 10000;
		for (unsigned i = 0; m == M_DISCARD_10K && i < 10000; i++) {
			vh_fe_blk_dwz_seg((uint8_t *)vh_fe_gpa_to_ptr(x.mem, x.biov.gpa, 160000) +
			                          16 * i,
			                  i * 8, 8, 0);
		}
	}
	rc = vh_fe_req_queue(x.vq, &x.good);
	if (rc == 0) {
		rc = vh_fe_req_queue(x.vq, &x.bad);
	}
	if (rc == 0) {
		rc = mutate(&x, m);
	}
	if (rc < 0) {
		vh_test_fe_close(x.mem, x.fe);
		T_CHECK(false, "%s: could not build the case", names[m]);
	}
	vh_fe_vq_flush(x.vq);
	rc = vh_fe_vq_drain(x.vq, 3000);
	if (m == M_AVAIL_JUMP && rc == 0) {
		/* Both served; now the guest claims size+1 new entries at once, and kicks. */
		uint64_t one = 1;

		__atomic_store_n(&vh_fe_vq_avail(x.vq)->idx,
		                 (uint16_t)(vh_fe_vq_avail(x.vq)->idx + vh_fe_vq_size(x.vq) + 1),
		                 __ATOMIC_RELEASE);
		T_CHECK(write(x.vq->kick_fd, &one, sizeof(one)) == sizeof(one), "kick");
		rc = -EAGAIN;
		x.bad.status = VIRTIO_BLK_S_IOERR; /* only the close matters here */
	}
	closed = hostile_case_end(&x, names[m], rc);
	T_CHECK(m != M_AVAIL_JUMP || closed, "avail jump: the session stayed open");
	return hostile_case_check(t, w, &x, names[m], closed, rc,
	                          x.bad.status == VIRTIO_BLK_S_IOERR ||
	                                  x.bad.status == VIRTIO_BLK_S_UNSUPP || m == M_LEN0);
}

int
main(void)
{
	struct vh_target_opts to = {.num_blocks = 8192};

	return hostile_ring_main("test_hostile_ring", &to, M_COUNT, names, one);
}
