/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A vfio-user session: one client connection to one device (an emulated NVMe controller), with
 * its DMA table, and the device interface the protocol code calls.
 *
 * Rules:
 * - Everything here runs on the control thread.
 * - Messages are handled one at a time, in order. A handler that cannot answer at once (the
 *   device must first quiesce its queues) returns VFU_ASYNC; input then stays paused until the
 *   device calls vfu_session_async_done(), which sends the reply. The device may also pause
 *   input while it works on something of its own (vfu_session_hold/release).
 * - A protocol violation closes the session (vfu_session_close); the device sees
 *   ops->disconnect and keeps its configuration, as the spec asks.
 * - Fds received with a message belong to the session until a handler takes them (sets the
 *   slot to -1); the rest are closed after the handler returns, whatever the message was.
 */
#ifndef VH_VFU_SESSION_H
#define VH_VFU_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vfu/dma.h"
#include "vfu/protocol.h"

struct vh_evsource;
struct vfu_session;

/* Largest REGION_READ/WRITE data we accept and advertise (max_data_xfer_size). */
#define VFU_MAX_DATA_XFER 65536u
/* Largest message: a REGION_WRITE of VFU_MAX_DATA_XFER bytes. */
#define VFU_MAX_MSG (sizeof(struct vfio_user_header) + 16u + VFU_MAX_DATA_XFER)
/* fds per message we accept and advertise (max_msg_fds). QEMU accepts at most 16. */
#define VFU_MAX_FDS 16
/* Returned by a handler or device op that will answer later (vfu_session_async_done). */
#define VFU_ASYNC 1

/* One region of the device as GET_REGION_INFO describes it. */
struct vfu_region_desc {
	uint64_t size;  /* 0: the region does not exist */
	uint32_t flags; /* VFIO_REGION_INFO_FLAG_READ | _WRITE | _MMAP */
	int mmap_fd;    /* with _MMAP: the fd to send (not consumed), mapped from mmap_offset */
	uint64_t mmap_offset;
	unsigned nr_sparse; /* with _MMAP: mmap-able parts, or 0 for the whole region */
	struct vfio_user_sparse_area sparse[2];
};

/*
 * The device under the protocol. Every op runs on the control thread, gets the device pointer
 * the session was created with, and returns 0, a positive byte count where stated, VFU_ASYNC,
 * or -errno (sent back to the client as the reply's error).
 */
struct vfu_dev_ops {
	/* DEVICE_GET_INFO: regions, irq types, VFIO_DEVICE_FLAGS_*. */
	uint32_t num_regions;
	uint32_t num_irqs;
	uint32_t device_flags;
	/* Region @index (< num_regions), or -EINVAL. */
	int (*region_info)(void *dev, uint32_t index, struct vfu_region_desc *out);
	/*
	 * Read or write @count bytes at @offset of region @index; the protocol code has checked
	 * that the range lies inside the region. Returns 0 or -errno.
	 */
	int (*region_access)(void *dev, uint32_t index, uint64_t offset, void *buf, uint32_t count,
	                     bool write);
	/* IRQ type @index (< num_irqs): count and VFIO_IRQ_INFO_* flags. */
	void (*irq_info)(void *dev, uint32_t index, uint32_t *count, uint32_t *flags);
	/*
	 * SET_IRQS, fields checked against irq_info (index, start + count <= count, one data type,
	 * one action). @fds: for DATA_EVENTFD, @nfds (== count, or 0 to de-assign) eventfds the
	 * device takes (it sets each slot it keeps to -1). @bools: DATA_BOOL's count bytes.
	 * Returns 0, VFU_ASYNC or -errno.
	 */
	int (*irq_set)(void *dev, const struct vfio_user_irq_set *set, const uint8_t *bools,
	               int *fds, unsigned nfds);
	/*
	 * The DMA table is about to change (@s->dma): stop using guest memory. Returns 0 if
	 * nothing uses it, or VFU_ASYNC and later calls vfu_session_dma_ready(). Then the table
	 * changes and dma_changed() follows, which may again return VFU_ASYNC and later call
	 * vfu_session_async_done().
	 */
	int (*dma_quiesce)(void *dev);
	int (*dma_changed)(void *dev);
	/* DEVICE_RESET: 0, or VFU_ASYNC then vfu_session_async_done(). */
	int (*reset)(void *dev);
	/*
	 * The session is closing: stop everything that uses its memory and fds, then call
	 * vfu_session_disconnected(s) (now or later). The DMA table is unmapped after that.
	 */
	void (*disconnect)(void *dev, struct vfu_session *s);
};

/* How a session sends bytes (a socket normally; the unit tests and the fuzzer capture). */
typedef int (*vfu_send_fn)(struct vfu_session *s, const struct iovec *iov, int iovcnt, int fd);

struct vfu_session {
	const struct vfu_dev_ops *ops;
	void *dev;
	char prefix[80]; /* log prefix "[ctrlr]" */

	int fd;                  /* the connection; -1 without a socket (tests) */
	struct vh_evsource *src; /* its epoll registration */
	vfu_send_fn send;
	void *send_arg; /* for test senders */

	/* Reception of the current message. */
	uint8_t *buf; /* VFU_MAX_MSG bytes: header then payload */
	uint32_t got;
	int fds[VFU_MAX_FDS];
	unsigned nfds;
	bool fd_overflow; /* more fds came than VFU_MAX_FDS: closed, the message is refused */

	bool versioned; /* VERSION done */
	bool closing;
	unsigned holds; /* input paused while > 0 */

	/* The message answered later (VFU_ASYNC). */
	bool async;
	struct vfio_user_header async_hdr;
	uint8_t async_payload[24]; /* DMA_UNMAP echoes its request */
	uint32_t async_len;
	enum { DMA_OP_NONE, DMA_OP_MAP, DMA_OP_UNMAP, DMA_OP_UNMAP_ALL } dma_op;
	struct vfio_user_dma_map dma_map; /* the pending DMA_MAP */
	int dma_fd;                       /* its fd, -1 if none */

	struct vfu_dma dma;

	uint64_t stat_msgs;
	void (*on_closed)(struct vfu_session *s); /* after everything is released */
	void *owner;                              /* for on_closed */
};

/*
 * Set up a session over connection @fd (or -1 for a socket-less session) with @send.
 * @max_mem bounds its DMA mappings. Returns 0 or -ENOMEM. Control thread.
 */
int vfu_session_init(struct vfu_session *s, int fd, const struct vfu_dev_ops *ops, void *dev,
                     vfu_send_fn send, uint64_t max_mem, const char *name);
/* Free what init allocated (after disconnect). Closes the connection. Control thread. */
void vfu_session_fini(struct vfu_session *s);

/*
 * Handle the complete message in s->buf (header + payload, s->got bytes) with s->fds. Sends
 * the reply (unless the command asked for none or VFU_ASYNC), closes untaken fds. Returns 0,
 * or -errno when the session must be closed (a protocol violation). Control thread.
 */
int vfu_msg_dispatch(struct vfu_session *s);
/* The command's name for logs ("DMA_MAP"); "UNKNOWN" for others. */
const char *vfu_msg_name(uint16_t cmd);

/*
 * The device finished what VFU_ASYNC started: send the pending reply (@err 0 or -errno) and
 * resume input. Control thread.
 */
void vfu_session_async_done(struct vfu_session *s, int err);
/* The device stopped using guest memory (after dma_quiesce returned VFU_ASYNC). */
void vfu_session_dma_ready(struct vfu_session *s);
/* Pause / resume message input (counted). Control thread. */
void vfu_session_hold(struct vfu_session *s);
void vfu_session_release(struct vfu_session *s);
/* Close after a violation or hang-up: the device is told, then the session is freed. */
void vfu_session_close(struct vfu_session *s, const char *why);
/* The device released everything (ops->disconnect finished). */
void vfu_session_disconnected(struct vfu_session *s);

/* Socket side: start reading the connection (paused while held); 0 or -errno. */
int vfu_session_watch(struct vfu_session *s);
/*
 * Stop watching the connection at all, hang-ups included (a live upgrade's freeze: the bytes
 * wait in the socket for whichever process reads next). vfu_session_watch() undoes it.
 */
void vfu_session_unwatch(struct vfu_session *s);
/* The default sender: one sendmsg with MSG_DONTWAIT, @fd attached when >= 0. */
int vfu_session_send_sock(struct vfu_session *s, const struct iovec *iov, int iovcnt, int fd);

#endif
