/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Harness for the vfio-user functional tests: a vhostd with RAM bdevs and one vfio-user NVMe
 * controller, reached with the test client (vfu_client.h).
 */
#ifndef VH_TESTS_VFU_TEST_H
#define VH_TESTS_VFU_TEST_H

#include <stdint.h>

#include "vfu_client.h"
#include "vh_daemon.h"

struct vfu_target {
	struct vh_daemon d;
	char sock[108];
	const char *name;
};

struct vfu_target_ns {
	const char *bdev;
	uint64_t num_blocks;
	uint32_t block_size;
	uint32_t nsid;
};

/*
 * Start vhostd (reactor mask @cpumask, e.g. "0x1"), create one RAM bdev per @ns entry (up to 4,
 * @nns of them) and controller "nvme0" with @queues I/O queues, attaching each bdev at its nsid.
 * Returns 0, 77 (no vhostd binary) or -errno.
 */
int vfu_target_start(struct vfu_target *t, const char *cpumask, uint16_t queues,
                     const struct vfu_target_ns *ns, unsigned nns);
int vfu_target_stop(struct vfu_target *t);
/* RPC with a printed error; params stolen. */
int vfu_target_rpc(struct vfu_target *t, const char *method, json_t *params, json_t **result);

/*
 * Connect a client with @mem_mb MiB of guest RAM, do QEMU's handshake (vc_setup), enable the
 * controller, grant and create @nq I/O queue pairs of @qsize entries (vector = qid).
 */
int vfu_target_client(struct vfu_target *t, struct vfu_client *c, unsigned mem_mb, unsigned nq,
                      uint16_t qsize);

#endif
