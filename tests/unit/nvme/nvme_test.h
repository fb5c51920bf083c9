/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Shared fixture for the NVMe unit tests: a mock controller, a MOCK device, a controller brought
 * up on it, a fake clock and completion bookkeeping.
 */
#ifndef VH_TEST_NVME_TEST_H
#define VH_TEST_NVME_TEST_H

#include <stdint.h>

#include "bdev/nvme/ctrlr.h"
#include "mock_ctrlr.h"

/* A fake monotonic clock: advances by fake_clock_step on every read (so waits progress). */
extern uint64_t fake_clock_ns;
extern uint64_t fake_clock_step;
uint64_t fake_now(void);

struct fixture {
	struct mock_ctrlr *m;
	struct vh_nvme_dev *dev;
	struct vh_nvme_ctrlr *c;
	struct vh_nvme_qpair *qp; /* I/O queue 1 */
	unsigned events[3];       /* per enum vh_nvme_event */
};

/* Options every test starts from: fake clock, event counting into @f. */
void fixture_opts(struct fixture *f, struct vh_nvme_ctrlr_opts *o);
/* Mock with namespace 1 (1024 x 512 B) and 2 (256 x 4 KiB), device opened. */
void fixture_mock(struct fixture *f);
/* fixture_mock + vh_nvme_ctrlr_init with @o (NULL: fixture_opts). Returns init's result. */
int fixture_up(struct fixture *f, const struct vh_nvme_ctrlr_opts *o);
void fixture_down(struct fixture *f);

/* One tracked command: callback count and last status. */
struct done {
	unsigned calls;
	int status;
};
void done_cb(void *arg, int status, const struct vh_nvme_cqe *cqe);

/* Poll @qp until @d has been called, or fail the test after a bounded number of polls. */
void poll_until(struct vh_nvme_qpair *qp, const struct done *d);

#endif
