/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A minimal vfio-user *client* for tests and the benchmark: it plays QEMU 10.2's vfio-user-pci
 * (VERSION, DMA_MAP of a memfd as guest RAM, region and IRQ discovery, SET_IRQS with eventfds,
 * REGION_READ/WRITE, DEVICE_RESET) and, on top, a small NVMe driver that writes SQ entries into
 * the mapped guest memory and rings the doorbells in the mmap'ed sparse area, as the guest's
 * nvme driver does.
 *
 * Rules: one thread; every wait polls with a deadline (no sleeps for synchronisation); every
 * function returns 0 (or a count) or -errno; nothing here asserts, so hostile tests can drive
 * the server into errors and look at them.
 */
#ifndef VH_TESTS_VFU_CLIENT_H
#define VH_TESTS_VFU_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bdev/nvme/spec.h"

#define VC_MAX_VECTORS 65
#define VC_MAX_QUEUES  65

struct vc_queue {
	uint16_t qid;
	uint16_t size;
	uint64_t sq_iova, cq_iova;
	struct vh_nvme_sqe *sq;
	volatile struct vh_nvme_cqe *cq;
	uint16_t sq_tail;
	uint16_t cq_head;
	uint8_t phase;
	uint16_t next_cid;
	uint16_t iv;
	unsigned outstanding;
};

struct vfu_client {
	int fd;
	uint16_t next_id;
	/* guest memory: one memfd, mapped here and DMA_MAP'ed at iova mem_iova */
	int mem_fd;
	uint8_t *mem;
	uint64_t mem_size;
	uint64_t mem_iova;
	uint64_t alloc_next; /* bump allocator (offset into mem) */
	uint64_t alloc_wrap; /* where it starts again when it reaches the end */
	/* BAR0: registers via messages, doorbells via the mmap of the sparse area */
	int bar0_fd;
	uint8_t *bar0_map; /* the mmap of the sparse area (doorbells) */
	uint64_t db_offset;
	/* MSI-X eventfds */
	int irq_fd[VC_MAX_VECTORS];
	unsigned nvec;
	/* NVMe */
	struct vc_queue q[VC_MAX_QUEUES];
	uint32_t cap_lo;
};

/* ---- transport ---- */

/*
 * Connect to @sock (retrying up to timeout_ms while it does not exist yet), make a memfd of
 * @mem_size bytes as guest RAM. Does not send anything. Returns 0 or -errno.
 */
int vc_connect(struct vfu_client *c, const char *sock, uint64_t mem_size, int timeout_ms);
void vc_close(struct vfu_client *c);

/*
 * Send one raw message (header built here unless @raw_hdr) and, unless @no_reply, receive the
 * reply: *err gets the reply's errno (0 if none), the payload is copied into @reply (at most
 * reply_max bytes; *reply_len gets its size), and an fd that came with it into *rfd (or -1).
 * Returns 0, or -errno for a transport failure (-ECONNRESET when the server closed).
 */
int vc_msg(struct vfu_client *c, uint16_t cmd, uint32_t flags, const void *payload, size_t len,
           const int *fds, unsigned nfds, void *reply, size_t reply_max, size_t *reply_len,
           int *err, int *rfd);
/* Receive the reply to a @cmd sent with vc_send_raw (fields as vc_msg). */
int vc_recv_reply(struct vfu_client *c, uint16_t cmd, void *reply, size_t reply_max,
                  size_t *reply_len, int *err, int *rfd);
/* Send bytes as they are (for framing tests). */
int vc_send_raw(struct vfu_client *c, const void *buf, size_t len, const int *fds, unsigned nfds);
/* True if the server closed the connection (within timeout_ms). */
bool vc_closed_by_server(struct vfu_client *c, int timeout_ms);

/* The handshake QEMU does: VERSION, DMA_MAP of the whole memory, region and IRQ info, mmap of
 * the doorbells, MSI-X eventfds for @nvec vectors. Returns 0 or -errno. */
int vc_setup(struct vfu_client *c, unsigned nvec);

int vc_version(struct vfu_client *c);
int vc_dma_map(struct vfu_client *c, uint64_t iova, uint64_t size, uint64_t offset, int fd,
               uint32_t flags);
int vc_dma_unmap(struct vfu_client *c, uint64_t iova, uint64_t size, uint32_t flags);
/* REGION_READ/WRITE; returns 0 or the server's -errno. */
int vc_region_read(struct vfu_client *c, uint32_t region, uint64_t off, void *buf, uint32_t count);
int vc_region_write(struct vfu_client *c, uint32_t region, uint64_t off, const void *buf,
                    uint32_t count);
int vc_set_irqs(struct vfu_client *c, uint32_t index, uint32_t flags, uint32_t start,
                uint32_t count, const int *fds, unsigned nfds);
int vc_device_reset(struct vfu_client *c);
/* Interrupts seen on vector @v since the last call (reads the eventfd, non-blocking). */
uint64_t vc_irq_count(struct vfu_client *c, unsigned v);

/* ---- guest memory ---- */

/* Allocate @len bytes aligned to @align in guest memory; returns the IOVA, fills *va. */
uint64_t vc_alloc(struct vfu_client *c, uint64_t len, uint64_t align, void **va);
void *vc_va(struct vfu_client *c, uint64_t iova);
/* Keep what is allocated so far (queues): later allocations wrap around above it. */
void vc_alloc_mark(struct vfu_client *c);

/* ---- NVMe driver ---- */

uint32_t vc_reg32(struct vfu_client *c, uint32_t off);
int vc_wreg32(struct vfu_client *c, uint32_t off, uint32_t v);
int vc_wreg64(struct vfu_client *c, uint32_t off, uint64_t v);
/* Enable the controller with an admin queue pair of @size entries; waits for CSTS.RDY. */
int vc_nvme_enable(struct vfu_client *c, uint16_t size, int timeout_ms);
/* CC.EN = 0 and wait for CSTS.RDY = 0 (the controller reset). */
int vc_nvme_disable(struct vfu_client *c, int timeout_ms);
/* CC.SHN = normal, wait for CSTS.SHST = complete. */
int vc_nvme_shutdown(struct vfu_client *c, int timeout_ms);
/* Submit @cmd (cid assigned here, returned) on queue @qid and ring its doorbell. */
int vc_submit(struct vfu_client *c, uint16_t qid, struct vh_nvme_sqe *cmd);
/* Submit without ringing; vc_ring() rings. */
int vc_queue_cmd(struct vfu_client *c, uint16_t qid, struct vh_nvme_sqe *cmd);
void vc_ring(struct vfu_client *c, uint16_t qid);
/*
 * Reap up to @max completions of queue @qid into @out (consumes them, rings the CQ head).
 * Returns how many, 0 if none.
 */
int vc_reap(struct vfu_client *c, uint16_t qid, struct vh_nvme_cqe *out, int max);
/* Wait for the completion of @cid on @qid (others are dropped). Returns the status field
 * (NVMe status without phase: sct << 8 | sc, DNR at bit 14) or -ETIMEDOUT. */
int vc_wait(struct vfu_client *c, uint16_t qid, uint16_t cid, uint32_t *dw0, int timeout_ms);
/* Submit and wait: returns the status (>= 0) or -errno. */
int vc_cmd(struct vfu_client *c, uint16_t qid, struct vh_nvme_sqe *cmd, uint32_t *dw0,
           int timeout_ms);
/* Admin helpers. */
int vc_identify(struct vfu_client *c, uint8_t cns, uint32_t nsid, void *buf4k);
int vc_set_num_queues(struct vfu_client *c, uint16_t n, uint32_t *dw0);
/* Create I/O queue pair @qid; @iv VC_NO_IRQ creates the CQ without interrupts (polled). */
#define VC_NO_IRQ 0xffff
int vc_create_io_queue(struct vfu_client *c, uint16_t qid, uint16_t size, uint16_t iv);
int vc_delete_io_queue(struct vfu_client *c, uint16_t qid);
/*
 * Build PRP1/PRP2 for the guest buffer [iova, iova + len) (page-aligned pieces; a PRP list is
 * allocated in guest memory when needed).
 */
void vc_build_prp(struct vfu_client *c, struct vh_nvme_sqe *cmd, uint64_t iova, uint64_t len);
/* Build a one-segment SGL (a Last Segment of Data Blocks, one per 4 KiB page). */
void vc_build_sgl(struct vfu_client *c, struct vh_nvme_sqe *cmd, uint64_t iova, uint64_t len);
/* Read/Write command for @nlb blocks at @slba, data at @iova (PRPs). */
void vc_rw_cmd(struct vfu_client *c, struct vh_nvme_sqe *cmd, uint8_t opc, uint32_t nsid,
               uint64_t slba, uint32_t nlb, uint64_t iova, uint32_t block_size);

/* NVMe status helpers (status as vc_wait returns it). */
#define VC_SC(st)  ((st)&0xff)
#define VC_SCT(st) (((st) >> 8) & 0x7)

#endif
