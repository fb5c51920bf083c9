/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * An in-process NVMe controller model for unit tests. It implements the registers (CAP, VS, CC,
 * CSTS, AQA, ASQ, ACQ, doorbells with CAP.DSTRD), the admin commands the driver uses and the NVM
 * I/O commands against RAM-backed namespaces, reading and writing data through PRPs (and
 * checking the PRP rules). Device addresses are process pointers (the MOCK back-end's IOVA).
 *
 * Commands are processed when an SQ tail doorbell is written (auto mode) or when the test calls
 * mock_process(). A per-command hook lets tests fail, drop, hold or crash on chosen commands.
 * Single-threaded: the test thread is both the driver's reactor and the "device".
 */
#ifndef VH_TEST_NVME_MOCK_CTRLR_H
#define VH_TEST_NVME_MOCK_CTRLR_H

#include <stdbool.h>
#include <stdint.h>

#include "bdev/nvme/pci.h"
#include "bdev/nvme/spec.h"

#define MOCK_MAX_QUEUES 17 /* admin + 16 I/O */
#define MOCK_MAX_NS     4
#define MOCK_MAX_HELD   64

enum mock_verdict {
	MOCK_EXEC = 0, /* execute normally */
	MOCK_FAIL,     /* post *status without executing */
	MOCK_DROP,     /* consume and never complete */
	MOCK_HOLD,     /* park; mock_release_held() completes it later */
	MOCK_FATAL,    /* set CSTS.CFS and stop processing (this command is lost) */
};

struct mock_ctrlr;
typedef enum mock_verdict (*mock_hook_fn)(struct mock_ctrlr *m, uint16_t qid,
                                          const struct vh_nvme_sqe *sqe, uint16_t *status);

struct mock_sq {
	bool created;
	struct vh_nvme_sqe *base;
	uint16_t size;
	uint16_t head;
	uint16_t tail;
	uint16_t cqid;
};

struct mock_cq {
	bool created;
	struct vh_nvme_cqe *base;
	uint16_t size;
	uint16_t tail;
	uint16_t head;
	uint8_t phase;
	bool pc;
	bool ien;
};

struct mock_ns {
	uint32_t nsid;
	uint64_t nsze;
	uint32_t lba_shift;
	uint16_t ms; /* metadata bytes per block (makes the driver skip it) */
	uint8_t *data;
};

struct mock_held {
	uint16_t qid;
	struct vh_nvme_sqe sqe;
};

struct mock_ctrlr {
	/* Configuration: set after mock_create(), before the driver starts. */
	uint16_t mqes; /* CAP.MQES (0's based) */
	uint8_t dstrd; /* CAP.DSTRD */
	uint8_t to;    /* CAP.TO */
	uint32_t vs;
	uint8_t mdts;
	uint16_t oncs;
	uint8_t vwc;
	uint16_t max_io_queues; /* granted by Number of Queues */
	bool no_active_list;    /* answer CNS 2 with Invalid Field */
	bool never_ready;
	bool auto_process; /* process I/O SQ doorbell writes at once (admin: always) */
	mock_hook_fn hook;
	void *hook_arg;

	/* Registers. */
	uint64_t cap;
	uint32_t cc;
	uint32_t csts;
	uint32_t aqa;
	uint64_t asq;
	uint64_t acq;
	bool removed; /* every read returns all-ones */

	struct mock_sq sq[MOCK_MAX_QUEUES];
	struct mock_cq cq[MOCK_MAX_QUEUES];
	struct mock_ns ns[MOCK_MAX_NS];
	unsigned num_ns;
	struct mock_held held[MOCK_MAX_HELD];
	unsigned num_held;

	/* Observations for tests. */
	unsigned enables;  /* CC.EN 0 -> 1 */
	unsigned disables; /* CC.EN 1 -> 0 */
	unsigned shutdowns;
	unsigned opc_count[2][256]; /* [admin=0/io=1][opc] */
	unsigned prp_errors;
	unsigned cq_overflows;
	unsigned bad_doorbells;
	unsigned phase_flips; /* I/O CQ laps */
	unsigned sq_db_writes[MOCK_MAX_QUEUES];
	unsigned cq_db_writes[MOCK_MAX_QUEUES];
	uint64_t last_prp1;
	uint64_t last_prp2;
};

/* A controller with CAP.MQES 1023, DSTRD 0, TO 1, VS 1.4, MDTS 5 (128 KiB), 4 I/O queues. */
struct mock_ctrlr *mock_create(void);
void mock_destroy(struct mock_ctrlr *m);
/* Add namespace @nsid with @nsze blocks of 2^@lba_shift bytes (zeroed). */
void mock_add_ns(struct mock_ctrlr *m, uint32_t nsid, uint64_t nsze, uint32_t lba_shift);

/* Register ops for vh_nvme_dev_opts (ctx = the mock). */
extern const struct vh_nvme_mock_ops mock_ops;

/* Process up to @max commands of SQ @qid; returns how many were consumed. */
unsigned mock_process(struct mock_ctrlr *m, uint16_t qid, unsigned max);
/* Post a completion directly (unknown/duplicate CID tests). */
void mock_post_cqe(struct mock_ctrlr *m, uint16_t cqid, uint16_t sqid, uint16_t cid,
                   uint16_t status);
/* Complete every held command with @status (0 = execute it now). */
void mock_release_held(struct mock_ctrlr *m, uint16_t status);
/* Set CSTS.CFS: the controller stops processing until CC.EN is cleared. */
void mock_set_fatal(struct mock_ctrlr *m);
/* Data of namespace @nsid at byte @off. */
uint8_t *mock_ns_data(struct mock_ctrlr *m, uint32_t nsid, uint64_t off);

#endif
