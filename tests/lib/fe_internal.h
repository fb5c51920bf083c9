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

	/* Driver state (private memory: never re-read from guest RAM). */
	uint16_t avail_idx; /* next avail slot to fill */
	uint16_t avail_pub; /* avail->idx we last published */
	uint16_t used_seen; /* used entries reaped */
	uint16_t base;      /* SET_VRING_BASE value for the next start */
	uint16_t free_head;
	uint16_t num_free;
	uint16_t *next;              /* free list / chain links, mirrors desc[].next */
	struct vh_fe_req **inflight; /* by head */
	unsigned int ninflight;

	bool started;
	bool event_idx;
	bool indirect;
	bool always_kick;
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
	void *inflight_addr;
	struct vhost_user_inflight inflight;
	struct vh_fe_info info;
	struct vh_fe_vq *vqs;
};

/* fe_vq.c */
int fe_vq_setup(struct vh_fe *fe, struct vh_fe_vq *vq, unsigned int idx);
void fe_vq_teardown(struct vh_fe_vq *vq);
void fe_vq_reset(struct vh_fe_vq *vq);
/* Called at start with the negotiated features, before the ring is handed to the device. */
void fe_vq_prepare(struct vh_fe_vq *vq, uint64_t features);

static inline bool
fe_has(uint64_t features, unsigned int bit)
{
	return (features >> bit) & 1;
}

#endif
