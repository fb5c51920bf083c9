/* SPDX-License-Identifier: BSD-3-Clause */
/* Private state of the test front-end, shared by fe_conn.c (control) and fe_vq.c (rings). */
#ifndef VH_TESTS_FE_INTERNAL_H
#define VH_TESTS_FE_INTERNAL_H

#include "frontend.h"

/* Per-head scratch in guest RAM: the 16-byte request header and the status byte. */
#define FE_SLOT_SIZE 32u

struct vh_fe_vq {
	struct vh_fe *fe;
	unsigned int idx;
	uint16_t size;

	/* Ring in guest RAM. */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint8_t *slots; /* size * FE_SLOT_SIZE */
	uint64_t slots_gpa;
	struct vring_desc *ind; /* size * max_chain indirect descriptors */
	uint64_t ind_gpa;
	unsigned int max_chain;

	int kick_fd, call_fd, err_fd;

	/*
	 * Driver state (private memory: never re-read from guest RAM). A packed ring
	 * (fe_vq_packed.c) uses avail_idx, avail_pub and used_seen as free-running ring positions,
	 * next[] and free_head as its free list of buffer ids, num_free for descriptors.
	 */
	uint16_t avail_idx; /* next avail slot to fill */
	uint16_t avail_pub; /* avail->idx we last published */
	uint16_t used_seen; /* used entries reaped */
	uint32_t base;      /* SET_VRING_BASE value for the next start (packed: 32 bits) */
	bool fresh;         /* reset since the last start: the base is the layout's initial one */
	uint16_t free_head;
	uint16_t num_free;
	uint16_t *next; /* free list / chain links, mirrors desc[].next */
	/*
	 * Packed: first descriptors queued but not yet made available (their flags are stored by
	 * the next flush, in ring order, as the split layout publishes avail->idx then).
	 */
	uint16_t *p_hold_idx, *p_hold_flags;
	unsigned int p_nhold;
	struct vh_fe_req **inflight; /* by head */
	unsigned int ninflight;

	bool started;
	bool packed; /* VIRTIO_F_RING_PACKED negotiated at the last start */
	bool event_idx;
	bool indirect;
	bool always_kick;
	struct vh_fe_ring_opts ring; /* the personality's ring habits (copied from the fe) */
	enum vh_fe_irq mode;
	uint64_t rng;
	struct vh_fe_vq_stats st;
};

struct vh_fe {
	struct vh_fe_opts opts;
	struct vh_fe_mem *mem;
	int sock;
	int backend_fd; /* our end of the SET_BACKEND_REQ_FD socketpair */
	bool mem_sent;  /* regions announced on this connection */
	bool running;   /* between start and stop */
	unsigned int nstarted;
	/* Inflight buffer (opts.inflight): QEMU's s->inflight, kept across reconnects. */
	int inflight_fd;
	/* Dirty log (opts.log): QEMU's vhost log, a sealed memfd. */
	int log_fd;
	uint8_t *log_map;
	uint64_t log_bytes;
	/* A migration's destination connection (vh_fe_migrate_prepare), or -1. */
	int next_sock, next_backend;
	struct vh_fe_info next_info;
	void *inflight_addr;
	struct vhost_user_inflight inflight;
	struct vh_fe_info info;
	struct vh_fe_ring_opts ring; /* resolved opts.ring */
	struct vh_fe_vq *vqs;
};

/* fe_conn.c: message helpers shared by the personalities (all return 0 or -errno). */
/*
 * Send a request without a natural reply; with REPLY_ACK negotiated, `ack` (or opts.ack_all)
 * sets NEED_REPLY and a non-zero answer is -EREMOTEIO.
 */
int fe_msg(struct vh_fe *fe, uint32_t request, const void *payload, uint32_t size, const int *fds,
           unsigned int nfds, bool ack);
/* A request whose reply is one u64 (GET_FEATURES, GET_QUEUE_NUM, ...). */
int fe_get_u64(struct vh_fe *fe, uint32_t request, uint64_t *val);
int fe_set_u64(struct vh_fe *fe, uint32_t request, uint64_t val, bool ack);
int fe_set_state(struct vh_fe *fe, uint32_t request, uint32_t index, uint32_t num);
int fe_set_vring_fd(struct vh_fe *fe, uint32_t request, unsigned int q, int fd);
/* SET_VRING_NUM, SET_VRING_BASE(vq->base), SET_VRING_ADDR(log_guest_addr), SET_VRING_KICK. */
int fe_start_queue(struct vh_fe *fe, struct vh_fe_vq *vq, uint64_t log_guest_addr);
/* GET_VRING_BASE(q): the answer becomes vq->base and the queue counts as stopped. */
int fe_get_vring_base(struct vh_fe *fe, struct vh_fe_vq *vq);
/* Region i of the memory as a wire region (GPA, size, our address, file offset). */
void fe_wire_region(const struct vh_fe_mem *m, unsigned int i, struct vhost_user_memory_region *r);
bool fe_proto(const struct vh_fe *fe, unsigned int bit);

/* fe_persona.c: the SPDK v23.05 and DPDK 22.11 virtio-user sequences. */
int fe_spdk_init(struct vh_fe *fe, bool get_config);
int fe_spdk_start(struct vh_fe *fe, uint64_t features, unsigned int nqueues);
int fe_spdk_stop(struct vh_fe *fe);
int fe_dpdk_init(struct vh_fe *fe);
int fe_dpdk_start(struct vh_fe *fe, uint64_t features, unsigned int nqueues);
int fe_dpdk_stop(struct vh_fe *fe);
/* DPDK's memory event: SET_VRING_ENABLE(0), SET_MEM_TABLE, SET_VRING_ENABLE(1). */
int fe_dpdk_mem_event(struct vh_fe *fe);
/* Stop if connected (errors ignored), close, connect, init, start. -EBUSY if I/O is in flight. */
int fe_persona_reconnect(struct vh_fe *fe, int timeout_ms);

/* fe_vq.c */
void fe_log_free(struct vh_fe *fe);

int fe_vq_setup(struct vh_fe *fe, struct vh_fe_vq *vq, unsigned int idx);
void fe_vq_teardown(struct vh_fe_vq *vq);
void fe_vq_reset(struct vh_fe_vq *vq);
/* Called at start with the negotiated features, before the ring is handed to the device. */
void fe_vq_prepare(struct vh_fe_vq *vq, uint64_t features);
/* Build req's chain into scratch descriptors d[] (header, data, status). Count or -errno. */
int fe_build_chain(struct vh_fe_vq *vq, struct vh_fe_req *req, struct vring_desc *d,
                   unsigned int max);

/* fe_vq_packed.c: the same operations on a packed ring (VIRTIO_F_RING_PACKED). */
void fe_vq_packed_reset(struct vh_fe_vq *vq);
void fe_vq_packed_irq(struct vh_fe_vq *vq, bool want_irq);
int fe_vq_packed_queue(struct vh_fe_vq *vq, struct vh_fe_req *req);
int fe_vq_packed_flush(struct vh_fe_vq *vq);
int fe_vq_packed_poll(struct vh_fe_vq *vq, struct vh_fe_req **done, unsigned int max);
int fe_vq_packed_arm(struct vh_fe_vq *vq);
unsigned int fe_vq_packed_pending(struct vh_fe_vq *vq);

static inline bool
fe_has(uint64_t features, unsigned int bit)
{
	return (features >> bit) & 1;
}

#endif
