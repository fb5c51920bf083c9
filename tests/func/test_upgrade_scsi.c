/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Live upgrade of a virtio-scsi controller (docs/design.md, "Live upgrade by hand-over"):
 * `vhostd --supervise` with a scsi controller, driven by the test front-end playing QEMU 7.2's
 * vhost-user-scsi-pci and a guest driver that has not posted its event buffers yet. Two
 * targets are hot-plugged then, so their RESCAN events wait in the worker. The worker is
 * upgraded (vhostd_upgrade); the driver then posts its event buffers and must get both events
 * from the new worker, on the same connection, and the new targets must answer. Before the
 * events were part of the hand-over they were lost: the guest never learnt of the new disks.
 */
#include <stddef.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fe_scsi.h"
#include "vh_test.h"

#define TIMEOUT_MS 20000
#define NQ         3 /* control, event, 1 request queue */
#define NEVT       4

#define CMD_OF(r) ((struct vh_fe_scsi_cmd *)((char *)(r)-offsetof(struct vh_fe_scsi_cmd, req)))

struct ctx {
	struct vh_daemon d;
	char sock[108];
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
	struct vh_fe_scsi_cmd evt[NEVT];
	struct vh_fe_scsi_cmd c;
};

static int
rpc(struct ctx *x, const char *method, json_t *params, json_t **res, int timeout_ms)
{
	char msg[256] = "";
	int code = 0;
	int rc = vh_rpc_call(x->d.rpc_path, method, params, res, &code, msg, sizeof(msg),
	                     timeout_ms);

	if (rc < 0) {
		fprintf(stderr, "rpc %s: %s (%d) %s\n", method, strerror(-rc), code, msg);
	}
	return rc;
}

static int
add_target(struct ctx *x, const char *bdev, int target)
{
	T_OK(rpc(x, "bdev_malloc_create",
	         json_pack("{s:s, s:i, s:i}", "name", bdev, "num_blocks", 2048, "block_size", 512),
	         NULL, 10000));
	T_OK(rpc(x, "vhost_scsi_controller_add_target",
	         json_pack("{s:s, s:i, s:s}", "ctrlr", "scsi0", "scsi_target_num", target,
	                   "bdev_name", bdev),
	         NULL, 10000));
	return 0;
}

static int
setup(struct ctx *x)
{
	const char *extra[] = {"--supervise", NULL};
	struct vh_fe_mem_opts mo = {.size = 16 << 20};
	struct vh_fe_opts fo = {
	        .num_queues = NQ, .driver_features = VH_FE_SCSI_FEATURES, .scsi = true};
	int rc;

	rc = vh_daemon_start(&x->d, NULL, extra, 10000);
	if (rc == -ENOENT) {
		return VH_TEST_SKIP;
	}
	T_OK(rc);
	T_OK(rpc(x, "vhost_create_scsi_controller",
	         json_pack("{s:s, s:s, s:i}", "ctrlr", "scsi0", "cpumask", "0x1", "num_queues", NQ),
	         NULL, 10000));
	T_OK(add_target(x, "M0", 0));
	vh_daemon_path(&x->d, "scsi0", x->sock, sizeof(x->sock));
	fo.path = x->sock;
	T_OK(vh_fe_mem_create(&x->mem, &mo));
	T_OK(vh_fe_create(&x->fe, x->mem, &fo));
	T_OK(vh_fe_connect(x->fe, 0));
	T_OK(vh_fe_init(x->fe, false));
	T_OK(vh_fe_start(x->fe, 0, 0));
	T_CHECK(vh_fe_has(vh_fe_info(x->fe)->features, VIRTIO_SCSI_F_HOTPLUG), "HOTPLUG acked");
	for (unsigned q = 0; q < NQ; q++) {
		vh_fe_vq_set_mode(vh_fe_vq(x->fe, q), VH_FE_INTERRUPT);
	}
	T_OK(vh_fe_scsi_cmd_init(&x->c, x->mem));
	for (unsigned i = 0; i < NEVT; i++) {
		T_OK(vh_fe_scsi_cmd_init(&x->evt[i], x->mem));
	}
	return 0;
}

/* Post every event buffer, then collect @n events; they must be RESCANs of @targets, in order. */
static int
expect_rescans(struct ctx *x, const uint8_t *targets, unsigned n)
{
	struct vh_fe_vq *vq = vh_fe_vq(x->fe, VH_FE_SCSI_EVTQ);
	int64_t deadline = vh_fe_now_ms() + TIMEOUT_MS;
	unsigned got = 0;

	for (unsigned i = 0; i < NEVT; i++) {
		T_OK(vh_fe_scsi_evt_prep(&x->evt[i]));
		T_OK(vh_fe_req_queue(vq, &x->evt[i].req));
	}
	vh_fe_vq_flush(vq);
	while (got < n) {
		struct vh_fe_req *done[NEVT];
		int k = vh_fe_vq_poll(vq, done, NEVT);

		T_CHECK(k >= 0, "event queue: bad used entry");
		for (int i = 0; i < k; i++) {
			const struct virtio_scsi_event *e = vh_fe_scsi_evt(CMD_OF(done[i]));

			T_CHECK(got < n, "more events than expected (event %#x)", e->event);
			T_CHECK(e->event == VIRTIO_SCSI_T_TRANSPORT_RESET &&
			                e->reason == VIRTIO_SCSI_EVT_RESET_RESCAN &&
			                e->lun[0] == 1 && e->lun[1] == targets[got],
			        "event %u: %#x reason %u target %u, expected a RESCAN of target %u",
			        got, e->event, e->reason, e->lun[1], targets[got]);
			got++;
		}
		T_CHECK(got == n || vh_fe_now_ms() < deadline,
		        "%u of %u events after the upgrade: the waiting events were lost", got, n);
		if (got < n) {
			vh_fe_vq_wait(vq, 100);
		}
	}
	return 0;
}

static int
check_upgrade(struct ctx *x)
{
	static const uint8_t targets[] = {5, 9};
	const uint8_t tur[6] = {0}; /* TEST UNIT READY */
	json_t *res = NULL;
	pid_t old = vh_daemon_child(&x->d), now;
	uint8_t status = 0xff;
	int r;

	T_CHECK(old > 0, "no worker");
	/* The driver has no event buffer out: both events wait in the worker. */
	T_OK(add_target(x, "M5", 5));
	T_OK(add_target(x, "M9", 9));
	T_OK(rpc(x, "vhostd_upgrade", NULL, &res, 60000));
	now = (pid_t)json_integer_value(json_object_get(res, "new_pid"));
	json_decref(res);
	T_CHECK(now > 0 && now != old, "the upgrade did not replace worker %d", (int)old);
	/* The old worker exits right after its reply: then the new one is the only child. */
	for (int64_t end = vh_fe_now_ms() + TIMEOUT_MS; vh_daemon_child(&x->d) != now;) {
		T_CHECK(vh_fe_now_ms() < end, "worker %d is not the supervisor's child", (int)now);
		usleep(10000); /* polling the process table with a deadline */
	}
	T_OK(expect_rescans(x, targets, 2));
	for (unsigned i = 0; i < 2; i++) {
		r = vh_fe_scsi_exec(x->fe, VH_FE_SCSI_REQQ0, &x->c, targets[i], tur, sizeof(tur),
		                    NULL, NULL, &status, NULL, NULL, TIMEOUT_MS);
		T_CHECK(r == VIRTIO_SCSI_S_OK && status == 0,
		        "TEST UNIT READY of target %u after the upgrade: response %d status %u",
		        targets[i], r, status);
	}
	return 0;
}

int
main(void)
{
	static struct ctx x;
	int rc = setup(&x);

	if (rc == VH_TEST_SKIP) {
		fprintf(stderr, "SKIP: $VHOSTD not set\n");
		return VH_TEST_SKIP;
	}
	if (rc == 0) {
		rc = check_upgrade(&x);
	}
	if (x.fe != NULL && vh_fe_stop(x.fe) < 0 && rc == 0) {
		fprintf(stderr, "FAIL: stop after the upgrade\n");
		rc = -1;
	}
	vh_test_fe_close(x.mem, x.fe);
	if (x.d.pid > 0) {
		bool alive = vh_daemon_alive(&x.d);
		int st = vh_daemon_stop(&x.d, 5000);

		if (!alive || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "FAIL: vhostd died or did not exit cleanly (0x%x)\n", st);
			rc = -1;
		}
	}
	fprintf(stderr, "%s\n", rc == 0 ? "PASS" : "FAIL");
	return rc == 0 ? VH_TEST_PASS : VH_TEST_FAIL;
}
