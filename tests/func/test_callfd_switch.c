/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Regression: a completion signalled on a call fd that the front-end then replaces must not
 * leave the driver waiting forever. QEMU starts a device with its masked notifiers as call fds
 * and unmasks them (SET_VRING_CALL with the guest's irqfds) right after, dropping what the
 * masked ones caught. With EVENT_IDX the back-end then stayed silent: the driver had not moved
 * used_event, so no later completion crossed it. A vhost-user-scsi guest (whose commands never
 * time out) hung after a back-end restart with QEMU 10.0.
 *
 * Here: one READ completes and is signalled on call fd A, which we drain without looking at
 * the used ring (what QEMU's unmask does); then SET_VRING_CALL gives the queue call fd B. B must
 * be signalled without any new completion, and a following request must complete and signal B.
 */
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fe_internal.h"
#include "vh_test.h"

#define TIMEOUT_MS 10000

static bool
readable(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, ms) == 1;
}

static int
run(struct vh_target *t)
{
	struct vh_fe_mem_opts mo = {.size = 16 << 20};
	struct vh_fe_opts fo = {.num_queues = 1};
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	struct vh_fe_vq *vq;
	struct vh_fe_iov iov;
	struct vh_fe_req r = {.type = VIRTIO_BLK_T_IN, .niov = 1};
	uint64_t cnt;
	int b, rc = -1;

	T_OK(vh_test_fe_open(t, &mo, &fo, &mem, &fe));
	if (vh_fe_start(fe, 0, 0) < 0 ||
	    !vh_fe_has(vh_fe_info(fe)->features, VIRTIO_RING_F_EVENT_IDX)) {
		fprintf(stderr, "FAIL: start with EVENT_IDX\n");
		goto out;
	}
	vq = vh_fe_vq(fe, 0);
	vh_fe_vq_set_mode(vq, VH_FE_INTERRUPT); /* used_event = 0: interrupt at the first one */
	iov = (struct vh_fe_iov){vh_fe_mem_alloc(mem, 4096, 4096), 4096};
	r.iov = &iov;
	if (vh_fe_req_submit(vq, &r) < 0 || !readable(vh_fe_vq_call_fd(vq), TIMEOUT_MS)) {
		fprintf(stderr, "FAIL: the first completion was not signalled\n");
		goto out;
	}
	/* QEMU's unmask drops the masked notifier's event: so do we, used ring unread. */
	if (read(vh_fe_vq_call_fd(vq), &cnt, sizeof(cnt)) != sizeof(cnt)) {
		goto out;
	}
	b = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b < 0 || fe_set_vring_fd(fe, VHOST_USER_SET_VRING_CALL, 0, b) < 0) {
		fprintf(stderr, "FAIL: SET_VRING_CALL\n");
		goto out;
	}
	close(vq->call_fd);
	vq->call_fd = b;
	if (!readable(b, TIMEOUT_MS)) {
		fprintf(stderr, "FAIL: the new call fd was never signalled: the driver would wait "
		                "forever for a completion already in the used ring\n");
		goto out;
	}
	if (vh_fe_vq_drain(vq, TIMEOUT_MS) < 0 || r.status != VIRTIO_BLK_S_OK) {
		fprintf(stderr, "FAIL: first request\n");
		goto out;
	}
	/* And completions keep being signalled on B. */
	vh_fe_vq_ack_call(vq);
	vh_fe_vq_set_mode(vq, VH_FE_INTERRUPT);
	if (vh_fe_req_submit(vq, &r) < 0 || !readable(b, TIMEOUT_MS) ||
	    vh_fe_vq_drain(vq, TIMEOUT_MS) < 0 || r.status != VIRTIO_BLK_S_OK) {
		fprintf(stderr, "FAIL: a completion after the switch was not signalled\n");
		goto out;
	}
	rc = 0;
out:
	vh_test_fe_close(mem, fe);
	return rc;
}

int
main(void)
{
	struct vh_target_opts o = {0};
	struct vh_target t;
	int rc = vh_target_start(&t, &o);

	if (rc == VH_TEST_SKIP) {
		return VH_TEST_SKIP;
	}
	if (rc < 0) {
		return VH_TEST_FAIL;
	}
	rc = run(&t);
	if (vh_target_stop(&t) < 0) {
		rc = -1;
	}
	fprintf(stderr, "%s\n", rc == 0 ? "PASS" : "FAIL");
	return rc == 0 ? VH_TEST_PASS : VH_TEST_FAIL;
}
