/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-bench internals: options (vb_opts.c), the lean ring driver and worker threads
 * (vb_run.c), and the program (vhost-bench.c).
 *
 * Rules:
 * - The connection, guest RAM and device start/stop come from the test front-end library
 *   (tests/lib/frontend.h) and run on the main thread only, before the workers start and after
 *   they have joined.
 * - Each worker thread owns its queues and their slots outright between start and join: nothing
 *   on the I/O path is shared between threads, takes a lock, allocates, or makes a system call
 *   (except a kick when the target asks for one, and the interrupt-mode wait).
 * - Stats and histograms are per thread and merged after join.
 */
#ifndef VB_H
#define VB_H

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/virtio_ring.h>

#include "vb_hist.h"

/* Exit codes. */
#define VB_EXIT_OK    0
#define VB_EXIT_FAIL  1 /* runtime failure: connection, features, I/O errors, verify */
#define VB_EXIT_USAGE 2 /* bad option */

#define VB_MAX_QUEUES  64
#define VB_MAX_IODEPTH 4096
#define VB_MAX_BS      (16u << 20)

enum vb_rw {
	VB_RW_READ,
	VB_RW_WRITE,
	VB_RW_RANDREAD,
	VB_RW_RANDWRITE,
	VB_RW_RANDRW,
};

/*
 * How the driver asks for interrupts (used_event with EVENT_IDX, VRING_AVAIL_F_NO_INTERRUPT
 * without). Polling drivers never want one; interrupt-driven ones re-arm after every batch.
 */
enum vb_used_event {
	VB_UE_LAZY,  /* polling, ours: used_event half an index lap behind, rewritten every 16 Ki */
	VB_UE_AHEAD, /* polling, SPDK's: used_event = used_seen - size - 1 at every publish */
	VB_UE_TRACK, /* interrupt-driven (Linux): used_event = used_seen after every reap */
};

/* Ring habits of an initiator (--pattern), each also settable alone. */
struct vb_ring_pattern {
	bool event_idx; /* ack VIRTIO_RING_F_EVENT_IDX (if the target offers it) */
	enum vb_used_event used_event;
	bool indirect; /* each request is one ring descriptor pointing at its chain */
	bool merged;   /* header+write data / read data+status share descriptors: 2 per request */
	bool kick_per_req;  /* publish avail->idx (and maybe kick) after every request, not batch */
	bool rewrite;       /* write every descriptor at every submission, as real drivers do */
	bool spdk_features; /* ack only what SPDK's virtio-blk acks (no FLUSH, no INDIRECT, ...) */
};

#define VB_RP_EVENT_IDX  (1u << 0)
#define VB_RP_USED_EVENT (1u << 1)
#define VB_RP_INDIRECT   (1u << 2)
#define VB_RP_LAYOUT     (1u << 3)
#define VB_RP_KICK       (1u << 4)
#define VB_RP_REWRITE    (1u << 5)

struct vb_opts {
	const char *socket;
	enum vb_rw rw;
	unsigned int rwmixread; /* percent of reads with randrw */
	uint32_t bs;
	unsigned int iodepth; /* per queue */
	unsigned int queues;
	double runtime; /* seconds of measurement */
	double ramp;    /* seconds of I/O before measuring */
	double idle;    /* seconds connected without I/O after the run */
	uint64_t size;  /* bytes of the disk to use; 0 = all */
	uint64_t number_ios;
	uint64_t thinktime_us; /* pause between a completion and the slot's next submission */
	cpu_set_t cpus;
	unsigned int ncpus; /* CPUs in --cpumask; 0 = no pinning */
	bool huge;
	bool interrupt;
	bool no_flush; /* do not ack FLUSH/CONFIG_WCE: writes must be durable at completion */
	bool packed;   /* packed virtqueues (VIRTIO_F_RING_PACKED) */
	bool inflight; /* an inflight region for the target (INFLIGHT_SHMFD, as QEMU) */
	bool verify;
	bool json;
	uint64_t seed;
	pid_t target_pid;         /* sample this process's CPU time; 0 = no */
	int timeout_ms;           /* control-message and drain timeout */
	const char *pattern_name; /* --pattern preset, "lean" by default */
	struct vb_ring_pattern ring;
	unsigned int ring_set;   /* VB_RP_* bits: set by their own option, kept over the preset */
	unsigned int queue_size; /* 0 = the smallest power of two that fits iodepth chains */
};

/*
 * Parse argv into o. Returns 0 to run, 1 if --help was printed (exit 0), or -1 after printing
 * why to stderr (exit VB_EXIT_USAGE).
 */
int vb_parse_opts(struct vb_opts *o, int argc, char **argv);
/* "4k", "64KiB", "1m", "512" -> bytes. 0 or -1 (bad syntax or overflow). */
int vb_parse_size(const char *s, uint64_t *out);
const char *vb_rw_name(enum vb_rw rw);

/* ---- ring driver ------------------------------------------------------------------------ */

/*
 * One request slot: a fixed descriptor chain [header][data x nseg][status] (split layout), or
 * [header+data][status] / [header][data+status] (merged), in the ring's table or in the slot's
 * own indirect table. Packed rings write the split layout into the ring at every submission
 * (head = the buffer id, the slot index).
 */
struct vb_slot {
	uint8_t *hdr;             /* 16-byte virtio_blk_outhdr */
	uint8_t *status;          /* split: hdr + 16; merged: buf + bs */
	uint8_t *buf;             /* bs bytes of data */
	struct vring_desc *chain; /* the chain's first descriptor (ring table or indirect table) */
	uint64_t hdr_gpa;
	uint64_t buf_gpa;
	uint64_t chain_gpa; /* indirect table (indirect only) */
	uint64_t t_submit;
	uint64_t block; /* index in the queue's slice */
	uint32_t gen;   /* verify: generation written or expected */
	uint16_t head;
	uint8_t write; /* direction the data descriptors are set up for */
	uint8_t busy;
};

struct vb_stats {
	uint64_t ios; /* completed in the window */
	uint64_t reads;
	uint64_t writes;
	uint64_t bytes;
	uint64_t errors; /* status != OK (any phase) */
	uint64_t verified;
	uint64_t mismatches;
	uint64_t kicks;
	uint64_t polls;       /* ring checks */
	uint64_t empty_polls; /* ring checks that found nothing */
	uint64_t busy_ticks;  /* ticks spent handling completions and submitting */
	uint64_t waits;       /* interrupt mode: sleeps on the call eventfds */
	uint64_t interrupts;  /* sum of call-eventfd counts read */
	struct vb_hist hist;  /* latency in ticks */
};

struct vb_queue {
	unsigned int idx;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t *used_event;  /* &avail->ring[size] */
	uint16_t *avail_event; /* after used->ring[size] */
	uint16_t size;
	uint16_t mask;
	uint16_t avail_idx; /* next avail slot */
	uint16_t avail_pub; /* avail->idx last published */
	uint16_t used_seen;
	uint16_t used_event_val;
	uint16_t nseg;  /* data descriptors per request */
	uint16_t ndesc; /* descriptors per chain */
	uint32_t seg_len;
	uint32_t bs;
	bool event_idx;
	/*
	 * Packed rings: the descriptor ring (desc's memory), the driver's and the device's event
	 * suppression words (avail's and used's), and free-running positions (index p & mask,
	 * wrap counter !(p & size)).
	 */
	bool packed;
	struct vring_packed_desc *pring;
	uint32_t *driver_evt;
	const uint32_t *device_evt;
	uint16_t p_avail, p_pub, p_used;
	enum vb_used_event used_event_mode;
	bool indirect;
	bool merged;
	bool kick_per_req;
	bool rewrite;
	int kick_fd;
	int call_fd;
	unsigned int nslots;
	unsigned int inflight;
	struct vb_slot *slots;
	uint16_t *slot_of;     /* descriptor head -> slot index + 1 (0: not a head) */
	struct vb_slot **done; /* scratch: completed slots to resubmit */
	struct vb_slot **park; /* --thinktime: slots waiting to be resubmitted, FIFO */
	unsigned int park_head;
	unsigned int park_n;
	/* Workload: this queue's slice of the region, in blocks of bs. */
	uint64_t first_block;
	uint64_t nblocks;
	uint64_t cursor; /* sequential / verify pass position */
	uint64_t rng;
	uint32_t *gen; /* verify: generation per block of the slice; VB_GEN_BUSY while in flight */
	uint64_t budget; /* I/Os left to submit (--number_ios); UINT64_MAX = no limit */
	bool wrote;      /* verify: some write completed */
};

#define VB_GEN_BUSY 0x80000000u

struct vb_job;

struct vb_thread {
	pthread_t tid;
	unsigned int idx;
	int cpu; /* -1 = not pinned */
	struct vb_job *job;
	struct vb_queue **qs;
	unsigned int nq;
	struct vb_stats st;
	uint64_t win_start, win_end; /* ticks of the measured window */
	double cpu_s;                /* thread CPU seconds in the window */
	uint64_t now;                /* last timestamp taken by the ring code */
	uint64_t deadline;           /* drain / read-back deadline */
	int err;                     /* 0 or -errno: protocol error, kick failure, drain timeout */
	unsigned int printed;        /* error lines printed (rate limit) */
};

struct vb_job {
	const struct vb_opts *o;
	uint32_t bs;
	uint32_t sect_per_block;
	uint32_t seg_len; /* bytes per data descriptor */
	bool rand;
	uint32_t read_thresh; /* read if (rng32 * 100) >> 32 < this */
	uint64_t t_ramp_end;  /* ticks */
	uint64_t t_end;
	uint64_t drain_ticks;
	uint64_t think_ticks;
	int go; /* 0 wait, 1 run, 2 abort: released by vb_start() once deadlines are set */
	unsigned int nthreads;
	unsigned int started;
	struct vb_thread *threads;
	int abort; /* set when a thread fails: everyone stops */
};

/* Ticks (TSC when invariant, else CLOCK_MONOTONIC ns) and their conversion. */
void vb_clock_init(void);
uint64_t vb_ticks(void);
uint64_t vb_ticks_per_sec(void);
double vb_ticks_to_ns(uint64_t t);
/* Recalibrate ticks -> ns from a long interval (start pair taken at vb_clock_init()). */
void vb_clock_calibrate(void);

/*
 * Set up queue q (ring pointers from the front-end library, slots carved from guest RAM by the
 * caller). Called on the main thread before the workers start.
 */
void vb_queue_init_ring(struct vb_queue *q, bool event_idx, const struct vb_ring_pattern *rp);
/* Write slot s's whole chain for direction w (and its ring descriptor if indirect). */
void vb_slot_write_chain(struct vb_queue *q, struct vb_slot *s, bool w);
/* Packed rings with --indirect on: the slot's indirect table for direction @w. */
void vb_slot_write_packed_table(struct vb_queue *q, struct vb_slot *s, bool w);
/* Set the ring pattern preset @name in o->ring. 0, or -1 for an unknown name. */
int vb_pattern_preset(const char *name, struct vb_ring_pattern *rp);
const char *vb_used_event_name(enum vb_used_event m);
/*
 * Start one worker per thread and set the deadlines (ramp from now). Returns 0 or -errno (then
 * the workers that did start leave at once; vb_join() them anyway).
 */
int vb_start(struct vb_job *job);
/* Wait for the workers. Returns 0 or the first worker's -errno. */
int vb_join(struct vb_job *job);

#endif
