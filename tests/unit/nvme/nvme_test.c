/* SPDX-License-Identifier: BSD-3-Clause */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "nvme_test.h"

uint64_t fake_clock_ns = 1000000000ull;
uint64_t fake_clock_step = 1000;

uint64_t
fake_now(void)
{
	fake_clock_ns += fake_clock_step;
	return fake_clock_ns;
}

static void
count_event(struct vh_nvme_ctrlr *c, enum vh_nvme_event ev, void *arg)
{
	struct fixture *f = arg;

	f->events[ev]++;
}

void
fixture_opts(struct fixture *f, struct vh_nvme_ctrlr_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->num_io_queues = 2;
	o->io_queue_depth = 64;
	o->io_timeout_ms = 1000;
	o->admin_timeout_ms = 1000;
	o->health_interval_us = 1000;
	o->max_retries = 3;
	o->now_ns = fake_now;
	o->event_cb = count_event;
	o->event_arg = f;
}

void
fixture_mock(struct fixture *f)
{
	struct vh_nvme_dev_opts dopts = {.mode = VH_NVME_ACCESS_MOCK, .mock_ops = &mock_ops};

	memset(f, 0, sizeof(*f));
	fake_clock_step = 1000;
	f->m = mock_create();
	mock_add_ns(f->m, 1, 1024, 9);
	mock_add_ns(f->m, 2, 256, 12);
	dopts.mock_ctx = f->m;
	assert_int_equal(vh_nvme_dev_open(NULL, &dopts, &f->dev), 0);
}

int
fixture_up(struct fixture *f, const struct vh_nvme_ctrlr_opts *o)
{
	struct vh_nvme_ctrlr_opts def;
	int ret;

	fixture_mock(f);
	if (o == NULL) {
		fixture_opts(f, &def);
		o = &def;
	}
	ret = vh_nvme_ctrlr_init(f->dev, o, &f->c);
	if (ret == 0) {
		f->qp = vh_nvme_ctrlr_ioq(f->c, 0);
	}
	return ret;
}

void
fixture_down(struct fixture *f)
{
	vh_nvme_ctrlr_destroy(f->c);
	vh_nvme_dev_close(f->dev);
	mock_destroy(f->m);
	memset(f, 0, sizeof(*f));
}

void
done_cb(void *arg, int status, const struct vh_nvme_cqe *cqe)
{
	struct done *d = arg;

	d->calls++;
	d->status = status;
}

void
poll_until(struct vh_nvme_qpair *qp, const struct done *d)
{
	for (unsigned i = 0; i < 10000 && d->calls == 0; i++) {
		vh_nvme_qpair_poll(qp, 64);
	}
	assert_int_not_equal(d->calls, 0);
}
