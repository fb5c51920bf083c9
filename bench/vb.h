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
	bool verify;
	bool json;
	uint64_t seed;
	pid_t target_pid; /* sample this process's CPU time; 0 = no */
	int timeout_ms;   /* control-message and drain timeout */
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
 * One request slot: a fixed descriptor chain [header][data x nseg][status]. Split rings keep it
 * in the descriptor table (head = its first index); packed rings write it into the ring at every
 * submission (head = its buffer id, the slot index).
 */
struct vb_slot {
	uint8_t *hdr; /* 16-byte virtio_blk_outhdr; the status byte follows at +16 */
	uint8_t *buf; /* bs bytes of data */
	uint64_t hdr_gpa, buf_gpa;
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
	uint16_t nseg; /* data descriptors per request */
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
	uint32_t seg_len, bs;
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
void vb_queue_init_ring(struct vb_queue *q, bool event_idx, bool interrupt);
/*
 * Start one worker per thread and set the deadlines (ramp from now). Returns 0 or -errno (then
 * the workers that did start leave at once; vb_join() them anyway).
 */
int vb_start(struct vb_job *job);
/* Wait for the workers. Returns 0 or the first worker's -errno. */
int vb_join(struct vb_job *job);

#endif
