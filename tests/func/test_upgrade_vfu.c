/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Live upgrade with a vfio-user NVMe controller. QEMU's vfio-user client cannot reconnect and
 * its sessions are not handed over, so:
 *   - while a client is connected, vhostd_upgrade fails with an error naming the controller,
 *     the worker stays the same process and the client's I/O goes on;
 *   - with no client, the upgrade goes through, the new worker listens on the same socket and
 *     a new client reads what the first one wrote (the RAM disk came across).
 * Before the fix the upgrade "succeeded" and the connected client lost its device.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vfu_client.h"
#include "vfu_test.h"
#include "vh_test.h"

#define BS      512u
#define NBLOCKS 8192u

static int
rpc(struct vfu_target *t, const char *method, json_t *params, json_t **result, char *msg,
    size_t msglen)
{
	int code = 0;

	return vh_rpc_call(t->d.rpc_path, method, params, result, &code, msg, msglen, 60000);
}

/* Write @n blocks of pattern @seed at @slba, or read them back and compare. */
static int
io(struct vfu_client *c, bool write, uint64_t slba, uint32_t n, uint8_t seed)
{
	struct vh_nvme_sqe cmd;
	uint8_t *va;
	uint64_t iova = vc_alloc(c, (uint64_t)n * BS, 4096, (void **)&va);
	int st;

	T_CHECK(iova != 0, "no client memory left");
	for (uint32_t i = 0; write && i < n * BS; i++) {
		va[i] = (uint8_t)(seed + i * 7);
	}
	if (!write) {
		memset(va, 0, (size_t)n * BS);
	}
	vc_rw_cmd(c, &cmd, write ? VH_NVME_OPC_WRITE : VH_NVME_OPC_READ, 1, slba, n, iova, BS);
	st = vc_cmd(c, 1, &cmd, NULL, 5000);
	T_CHECK(st == 0, "%s at %llu: status 0x%x", write ? "write" : "read",
	        (unsigned long long)slba, st);
	for (uint32_t i = 0; !write && i < n * BS; i++) {
		T_CHECK(va[i] == (uint8_t)(seed + i * 7), "byte %u of block %llu differs", i,
		        (unsigned long long)slba);
	}
	return 0;
}

static int
wait_disconnected(struct vfu_target *t)
{
	for (int i = 0; i < 500; i++) {
		json_t *r = NULL;
		bool connected = true;

		if (rpc(t, "vfu_get_controllers", json_pack("{s:s}", "name", "nvme0"), &r, NULL,
		        0) == 0) {
			connected =
			        json_is_true(json_object_get(json_array_get(r, 0), "connected"));
		}
		json_decref(r);
		if (!connected) {
			return 0;
		}
		usleep(10000);
	}
	fprintf(stderr, "FAIL: the client still shows as connected 5 s after it left\n");
	return -1;
}

static int
run(struct vfu_target *t)
{
	struct vfu_client c1, c2;
	char msg[512] = "";
	json_t *r = NULL;
	pid_t w0, w1;
	int rc;

	w0 = vh_daemon_child(&t->d);
	T_CHECK(w0 > 0, "no worker");
	T_CHECK(vfu_target_client(t, &c1, 16, 1, 32) == 0, "client 1 setup");
	T_CHECK(io(&c1, true, 100, 8, 0x5a) == 0, "write before the upgrade");

	rc = rpc(t, "vhostd_upgrade", NULL, &r, msg, sizeof(msg));
	json_decref(r);
	r = NULL;
	T_CHECK(rc == -EREMOTEIO, "vhostd_upgrade with a vfio-user client should fail, got %d", rc);
	T_CHECK(strstr(msg, "vfio-user controller 'nvme0' has a connected client") != NULL,
	        "unexpected error text: %s", msg);
	T_CHECK(vh_daemon_child(&t->d) == w0, "the worker changed after a refused upgrade");
	T_CHECK(io(&c1, false, 100, 8, 0x5a) == 0, "read after the refused upgrade");
	T_CHECK(io(&c1, true, 200, 8, 0xa5) == 0, "write after the refused upgrade");
	vc_close(&c1);
	T_CHECK(wait_disconnected(t) == 0, "client 1 gone");

	/* The supervisor reaps the refused candidate in the background: until then it says so. */
	for (int i = 0; i < 100; i++) {
		rc = rpc(t, "vhostd_upgrade", NULL, &r, msg, sizeof(msg));
		if (rc != -EREMOTEIO || strstr(msg, "already in progress") == NULL) {
			break;
		}
		usleep(50000);
	}
	T_CHECK(rc == 0, "vhostd_upgrade without a client: %d (%s)", rc, msg);
	w1 = (pid_t)json_integer_value(json_object_get(r, "new_pid"));
	json_decref(r);
	T_CHECK(w1 > 0 && w1 != w0, "new_pid %d (old worker %d)", (int)w1, (int)w0);
	/* The old worker answered, then exits: the supervisor's only child becomes w1. */
	for (int i = 0; i < 500 && vh_daemon_child(&t->d) != w1; i++) {
		usleep(10000);
	}
	T_CHECK(vh_daemon_child(&t->d) == w1, "the worker is %d, not the new one %d",
	        (int)vh_daemon_child(&t->d), (int)w1);

	T_CHECK(vfu_target_client(t, &c2, 16, 1, 32) == 0, "client 2 setup on the new worker");
	T_CHECK(io(&c2, false, 100, 8, 0x5a) == 0, "data written before the upgrade");
	T_CHECK(io(&c2, false, 200, 8, 0xa5) == 0, "data written after the refusal");
	vc_close(&c2);
	return 0;
}

int
main(void)
{
	const char *bin = getenv("VHOSTD");
	struct vfu_target t;
	char conf[128];
	int rc;

	if (bin == NULL || access(bin, X_OK) != 0) {
		fprintf(stderr, "SKIP: no vhostd binary ($VHOSTD)\n");
		return 77;
	}
	memset(&t, 0, sizeof(t));
	t.name = "nvme0";
	if (vh_daemon_mkdir(&t.d) < 0) {
		return 1;
	}
	snprintf(conf, sizeof(conf), "%s/vhostd.json", t.d.dir);
	{
		const char *argv[] = {bin,          "--supervise", "-m",         "0x1", "-S",
		                      t.d.sock_dir, "-r",          t.d.rpc_path, "-c",  conf,
		                      "-L",         "info",        NULL};

		rc = vh_daemon_spawn(&t.d, argv, "rpc.sock", 10000);
	}
	if (rc < 0) {
		fprintf(stderr, "FAIL: vhostd --supervise did not come up: %s\n", strerror(-rc));
		return 1;
	}
	vh_daemon_path(&t.d, t.name, t.sock, sizeof(t.sock));
	rc = vfu_target_rpc(
	        &t, "bdev_malloc_create",
	        json_pack("{s:s, s:i, s:i}", "name", "M0", "num_blocks", NBLOCKS, "block_size", BS),
	        NULL);
	if (rc == 0) {
		rc = vfu_target_rpc(&t, "vfu_create_nvme_controller",
		                    json_pack("{s:s, s:i}", "ctrlr", t.name, "num_io_queues", 1),
		                    NULL);
	}
	if (rc == 0) {
		rc = vfu_target_rpc(
		        &t, "vfu_controller_add_ns",
		        json_pack("{s:s, s:s, s:i}", "ctrlr", t.name, "bdev_name", "M0", "nsid", 1),
		        NULL);
	}
	if (rc == 0) {
		rc = run(&t);
	}
	if (vh_daemon_stop(&t.d, 10000) != 0 && rc == 0) {
		fprintf(stderr, "FAIL: vhostd did not exit cleanly\n");
		rc = -1;
	}
	printf("test_upgrade_vfu: %s\n", rc == 0 ? "PASS" : "FAIL");
	return rc == 0 ? 0 : 1;
}
