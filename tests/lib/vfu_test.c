/* SPDX-License-Identifier: BSD-3-Clause */
/* Harness for the vfio-user functional tests (see vfu_test.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vfu_test.h"

int
vfu_target_rpc(struct vfu_target *t, const char *method, json_t *params, json_t **result)
{
	char msg[256];
	int code = 0, rc;

	rc = vh_rpc_call(t->d.rpc_path, method, params, result, &code, msg, sizeof(msg), 5000);
	if (rc == -EREMOTEIO) {
		fprintf(stderr, "rpc %s: error %d: %s\n", method, code, msg);
	} else if (rc < 0) {
		fprintf(stderr, "rpc %s: %s\n", method, strerror(-rc));
	}
	return rc;
}

int
vfu_target_start(struct vfu_target *t, const char *cpumask, uint16_t queues,
                 const struct vfu_target_ns *ns, unsigned nns)
{
	const char *extra[] = {"-m", cpumask, NULL};
	int rc;

	memset(t, 0, sizeof(*t));
	t->name = "nvme0";
	rc = vh_daemon_start(&t->d, NULL, cpumask != NULL ? extra : NULL, 10000);
	if (rc == -ENOENT) {
		fprintf(stderr, "SKIP: no vhostd binary ($VHOSTD)\n");
		return 77;
	}
	if (rc < 0) {
		return rc;
	}
	vh_daemon_path(&t->d, t->name, t->sock, sizeof(t->sock));
	for (unsigned i = 0; i < nns && rc == 0; i++) {
		rc = vfu_target_rpc(t, "bdev_malloc_create",
		                    json_pack("{s:s, s:I, s:i}", "name", ns[i].bdev, "num_blocks",
		                              (json_int_t)ns[i].num_blocks, "block_size",
		                              (int)ns[i].block_size),
		                    NULL);
	}
	if (rc == 0) {
		rc = vfu_target_rpc(
		        t, "vfu_create_nvme_controller",
		        json_pack("{s:s, s:i}", "ctrlr", t->name, "num_io_queues", (int)queues),
		        NULL);
	}
	for (unsigned i = 0; i < nns && rc == 0; i++) {
		rc = vfu_target_rpc(t, "vfu_controller_add_ns",
		                    json_pack("{s:s, s:s, s:i}", "ctrlr", t->name, "bdev_name",
		                              ns[i].bdev, "nsid", (int)ns[i].nsid),
		                    NULL);
	}
	if (rc < 0) {
		vh_daemon_stop(&t->d, 5000);
	}
	return rc;
}

int
vfu_target_stop(struct vfu_target *t)
{
	int st = vh_daemon_stop(&t->d, 10000);

	if (st != 0) {
		fprintf(stderr, "vhostd exit status 0x%x (expected a clean exit)\n", st);
		return -1;
	}
	return 0;
}

int
vfu_target_client(struct vfu_target *t, struct vfu_client *c, unsigned mem_mb, unsigned nq,
                  uint16_t qsize)
{
	uint32_t dw0 = 0;
	int rc;

	rc = vc_connect(c, t->sock, (uint64_t)mem_mb << 20, 5000);
	if (rc == 0) {
		rc = vc_setup(c, nq + 1);
	}
	if (rc == 0) {
		rc = vc_nvme_enable(c, 32, 5000);
	}
	if (rc < 0) {
		fprintf(stderr, "client setup: %s\n", strerror(-rc));
		return rc;
	}
	if (nq > 0) {
		rc = vc_set_num_queues(c, (uint16_t)nq, &dw0);
		if (rc != 0 || (dw0 & 0xffff) + 1 < nq) {
			fprintf(stderr, "Set Features (Number of Queues): status %d dw0 0x%x\n", rc,
			        dw0);
			return -EIO;
		}
	}
	for (unsigned q = 1; q <= nq; q++) {
		rc = vc_create_io_queue(c, (uint16_t)q, qsize, (uint16_t)q);
		if (rc != 0) {
			fprintf(stderr, "create I/O queue %u: status 0x%x\n", q, rc);
			return -EIO;
		}
	}
	vc_alloc_mark(c);
	return 0;
}
