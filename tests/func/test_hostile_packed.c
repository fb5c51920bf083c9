/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Malicious-guest packed rings against a running vhostd (the packed counterpart of
 * test_hostile_ring). Each case opens a fresh session on a packed_ring controller, queues one
 * legitimate READ and one victim request, rewrites the victim's descriptors (or the ring around
 * them, or the driver's event suppression structure) the way a hostile guest driver would, and
 * makes both available with one flush and kick. Outcome: the victim completes with an error
 * status and the legitimate request completes OK, or the daemon closes the session; for the
 * ring-protocol violations the close is required. Never a hang (every wait has a deadline) and
 * never a crash: a witness controller serves verified I/O after every case, and the daemon's fd
 * count is back at its baseline at the end.
 */
#include "fe_internal.h" /* the queue's kick eventfd */
#include "test_hostile_common.h"

#define F_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define F_USED  (1u << VRING_PACKED_DESC_F_USED)

enum mut {
	M_ID_SIZE,
	M_ID_FFFF,
	M_NEXT_UNAVAIL,
	M_ALL_NEXT,
	M_OTHER_LAP,
	M_ADDR_OUTSIDE,
	M_LEN_MAX,
	M_ADDR_WRAP,
	M_IND_BADLEN,
	M_IND_ZERO,
	M_IND_NEXT,
	M_IND_IN_CHAIN,
	M_IND_HUGE,
	M_STATUS_READONLY,
	M_HDR_WRITEONLY,
	M_EVENT_GARBAGE,
	M_COUNT,
};

static const char *const names[M_COUNT] = {
        "buffer id == queue size (SPDK #3860)",
        "buffer id 0xffff",
        "chain runs into a descriptor not made available",
        "NEXT on every descriptor of the ring",
        "chain continues with the other lap's flags",
        "data address outside guest memory",
        "data len 0xffffffff",
        "addr+len wraps",
        "indirect table of 17 bytes",
        "indirect table of 0 bytes",
        "indirect descriptor with NEXT",
        "indirect descriptor inside a chain",
        "indirect table of 2^20 entries",
        "status in a read-only descriptor",
        "header in a write-only descriptor",
        "driver event suppression 0xffffffff",
};

/* Cases the daemon must answer by closing the session. */
static bool
must_close(enum mut m)
{
	return m <= M_OTHER_LAP || m == M_IND_BADLEN || m == M_IND_ZERO || m == M_IND_NEXT ||
	       m == M_IND_IN_CHAIN || m == M_IND_HUGE || m == M_STATUS_READONLY;
}

static struct vring_packed_desc *
at(struct hostile_case *x, uint16_t pos)
{
	return &vh_fe_vq_packed_ring(x->vq)[pos & (vh_fe_vq_size(x->vq) - 1)];
}

/* The availability bits a driver puts on ring position @pos (wrap counter of its lap). */
static uint16_t
avail_bits(struct hostile_case *x, uint16_t pos)
{
	return (pos & vh_fe_vq_size(x->vq)) ? F_USED : F_AVAIL;
}

/*
 * The victim's first descriptor's flags: the library stores them at the flush (that is what
 * makes the list available), so they are changed where it keeps them until then.
 */
static uint16_t *
head_flags(struct hostile_case *x)
{
	struct vh_fe_vq *vq = x->vq;

	for (unsigned int i = 0; i < vq->p_nhold; i++) {
		if (vq->p_hold_idx[i] == (x->bad_pos & (vh_fe_vq_size(vq) - 1))) {
			return &vq->p_hold_flags[i];
		}
	}
	return NULL;
}

static int
mutate(struct hostile_case *x, enum mut m)
{
	uint16_t p = x->bad_pos, qs = vh_fe_vq_size(x->vq);
	struct vring_packed_desc *hdr = at(x, p), *data = at(x, p + 1), *status = at(x, p + 2);
	uint16_t *hf = head_flags(x);
	uint64_t itab;

	T_CHECK(hf != NULL, "the victim is not waiting for the flush");
	switch (m) {
	case M_ID_SIZE:
		status->id = qs;
		break;
	case M_ID_FFFF:
		status->id = 0xffff;
		break;
	case M_NEXT_UNAVAIL:
		status->flags |= VRING_DESC_F_NEXT; /* p + 3 was never made available */
		break;
	case M_ALL_NEXT:
		/* Every other descriptor of the ring available with NEXT: the chain never ends. */
		status->flags |= VRING_DESC_F_NEXT;
		for (uint16_t i = 3; i < qs; i++) {
			struct vring_packed_desc *d = at(x, (uint16_t)(p + i));

			d->addr = data->addr;
			d->len = 16;
			d->id = 0;
			d->flags = (uint16_t)(VRING_DESC_F_WRITE | VRING_DESC_F_NEXT |
			                      avail_bits(x, (uint16_t)(p + i)));
		}
		break;
	case M_OTHER_LAP:
		data->flags ^= F_AVAIL | F_USED;
		break;
	case M_ADDR_OUTSIDE:
		data->addr = 0xdead00000000ull;
		break;
	case M_LEN_MAX:
		data->len = 0xffffffffu;
		break;
	case M_ADDR_WRAP:
		data->addr = ~0ull - 1023;
		data->len = 4096;
		break;
	case M_IND_BADLEN:
	case M_IND_ZERO:
	case M_IND_NEXT:
	case M_IND_IN_CHAIN:
	case M_IND_HUGE:
		itab = vh_fe_mem_alloc(x->mem, 48, 16);
		T_CHECK(itab != UINT64_MAX, "alloc");
		{
			struct vring_packed_desc *t = vh_fe_gpa_to_ptr(x->mem, itab, 48);

			t[0] = *hdr;
			t[0].flags = *hf;
			t[1] = *data;
			t[2] = *status;
			for (int i = 0; i < 3; i++) {
				t[i].flags &= VRING_DESC_F_WRITE;
			}
		}
		if (m == M_IND_IN_CHAIN) {
			data->addr = itab;
			data->len = 48;
			data->flags = (uint16_t)((data->flags & ~VRING_DESC_F_WRITE) |
			                         VRING_DESC_F_INDIRECT);
			break;
		}
		hdr->addr = itab;
		hdr->len = m == M_IND_BADLEN ? 17
		           : m == M_IND_ZERO ? 0
		           : m == M_IND_HUGE ? 16u << 20
		                             : 48;
		*hf = (uint16_t)((*hf & (F_AVAIL | F_USED)) | VRING_DESC_F_INDIRECT |
		                 (m == M_IND_NEXT ? VRING_DESC_F_NEXT : 0));
		if (m != M_IND_NEXT) {
			/* A one-descriptor list now: its id must be where the device reads it. */
			hdr->id = status->id;
		}
		break;
	case M_STATUS_READONLY:
		data->flags &= (uint16_t)~VRING_DESC_F_WRITE;
		status->flags &= (uint16_t)~VRING_DESC_F_WRITE;
		break;
	case M_HDR_WRITEONLY:
		*hf |= VRING_DESC_F_WRITE;
		break;
	case M_EVENT_GARBAGE:
		__atomic_store_n((uint32_t *)(void *)vh_fe_vq_driver_event(x->vq), 0xffffffffu,
		                 __ATOMIC_RELAXED);
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
	struct vh_fe_opts fo = {.num_queues = 1,
	                        .queue_size = 64,
	                        .driver_features =
	                                VH_FE_LINUX_FEATURES | (1ull << VIRTIO_F_RING_PACKED)};
	struct hostile_case x = {0};
	enum mut m = (enum mut)mi;
	uint64_t one = 1;
	bool closed;
	int rc;

	T_OK(hostile_case_open(t, &mo, &fo, &x, 4096));
	if (!vh_fe_vq_is_packed(x.vq)) {
		vh_test_fe_close(x.mem, x.fe);
		T_CHECK(false, "start with packed rings: the queue is a split ring");
	}
	/* All-NEXT takes the whole ring: no room for a legitimate request there. */
	rc = m == M_ALL_NEXT ? 0 : vh_fe_req_queue(x.vq, &x.good);
	x.bad_pos = vh_fe_vq_next_avail(x.vq);
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
	T_CHECK(write(x.vq->kick_fd, &one, sizeof(one)) == sizeof(one), "kick");
	rc = vh_fe_vq_drain(x.vq, 3000);
	closed = hostile_case_end(&x, names[m], rc);
	T_CHECK(closed || !must_close(m), "%s: a ring-protocol violation left the session open",
	        names[m]);
	/* A garbage event suppression structure is the driver's own business: the victim is OK. */
	return hostile_case_check(
	        t, w, &x, names[m], closed, rc,
	        x.bad.status == (m == M_EVENT_GARBAGE ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR));
}

int
main(void)
{
	struct vh_target_opts to = {.num_blocks = 8192, .packed_ring = true};

	return hostile_ring_main("test_hostile_packed", &to, M_COUNT, names, one);
}
