/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The vfio-user NVMe controller end to end, driven by the test client that plays QEMU 10.2's
 * vfio-user-pci and the guest's nvme driver: PCI configuration space, registers, Identify and
 * the other admin commands, verified I/O on several queues over two namespaces (PRPs at odd
 * offsets, PRP lists, SGLs, FUA, Write Zeroes, deallocate, flush), interrupts, NVMe error
 * statuses, controller reset under I/O, DEVICE_RESET, shutdown, namespace hot add/remove with
 * asynchronous events, a second client after the first left, and save_config.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vfu/protocol.h"
#include "vfu_io.h"
#include "vfu_test.h"
#include "vh_test.h"

#define NQ 4

static const struct vfu_target_ns g_ns[] = {
        {"M0", 8192, 512, 1},
        {"M1", 2048, 4096, 2},
};

static int
check_pci(struct vfu_client *c)
{
	uint8_t cfg[256];
	unsigned pos, seen = 0;

	T_OK(vc_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX, 0, cfg, sizeof(cfg)));
	T_CHECK(cfg[0x0b] == 0x01 && cfg[0x0a] == 0x08 && cfg[0x09] == 0x02,
	        "class %02x%02x%02x is not NVMe", cfg[0x0b], cfg[0x0a], cfg[0x09]);
	T_CHECK(cfg[0x06] & 0x10, "no capabilities list");
	T_CHECK(cfg[0x3d] == 0, "an INTx pin (%u) although only MSI-X is offered", cfg[0x3d]);
	for (pos = cfg[0x34]; pos != 0 && seen < 8; pos = cfg[pos + 1], seen++) {
		T_CHECK(pos >= 0x40 && pos < 0xfc, "capability at 0x%x", pos);
		if (cfg[pos] == 0x11) {
			uint16_t mc;

			memcpy(&mc, &cfg[pos + 2], 2);
			/* The controller offers 8 I/O queues: 9 vectors (admin + one each). */
			T_CHECK((mc & 0x7ff) + 1u == 9, "MSI-X table size %u", (mc & 0x7ff) + 1);
		}
	}
	T_CHECK(seen == 3, "%u capabilities (PM, MSI-X, PCIe expected)", seen);
	/* BAR0 is 64-bit memory; reads of BAR sizing work like a device's. */
	T_CHECK((cfg[0x10] & 0x6) == 0x4, "BAR0 is not 64-bit memory");
	/* A read-only field stays as it is. */
	uint16_t v = 0x1234;
	T_OK(vc_region_write(c, VFIO_PCI_CONFIG_REGION_INDEX, 0, &v, 2));
	T_OK(vc_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX, 0, &v, 2));
	T_CHECK(v == 0x4e58, "vendor ID changed to 0x%x", v);
	return 0;
}

static int
check_identify(struct vfu_client *c)
{
	uint8_t d[4096];
	uint32_t nn, list[4], sgls;
	uint64_t nsze;
	int st;

	T_CHECK((c->cap_lo & 0xffff) == 1023, "CAP.MQES %u", c->cap_lo & 0xffff);
	T_CHECK(vc_reg32(c, 0x08) == 0x00010400, "VS 0x%x", vc_reg32(c, 0x08));
	T_CHECK(vc_identify(c, 1, 0, d) == 0, "identify controller");
	T_CHECK(memcmp(d + 24, "vhostd vfio-user NVMe", 21) == 0, "model '%.40s'", d + 24);
	memcpy(&nn, d + 516, 4);
	memcpy(&sgls, d + 536, 4);
	T_CHECK(nn == 32 && d[77] == 5 && (sgls & 1) && d[512] == 0x66 && d[513] == 0x44,
	        "NN %u MDTS %u SGLS 0x%x SQES 0x%x", nn, d[77], sgls, d[512]);
	T_CHECK(strncmp((char *)d + 768, "nqn.2026-01.io.vhostd:nvme0", 27) == 0, "subnqn '%s'",
	        d + 768);
	T_CHECK(vc_identify(c, 0, 1, d) == 0, "identify ns 1");
	memcpy(&nsze, d, 8);
	T_CHECK(nsze == 8192 && d[128 + 2] == 9, "ns 1: nsze %" PRIu64 " lbads %u", nsze, d[130]);
	T_CHECK(vc_identify(c, 0, 2, d) == 0, "identify ns 2");
	memcpy(&nsze, d, 8);
	T_CHECK(nsze == 2048 && d[130] == 12, "ns 2: nsze %" PRIu64 " lbads %u", nsze, d[130]);
	/* An inactive NSID in range reads as zeros; 0 and beyond NN are invalid. */
	T_CHECK(vc_identify(c, 0, 5, d) == 0 && d[0] == 0 && d[8] == 0, "inactive ns not zero");
	st = vc_identify(c, 0, 0, d);
	T_CHECK(st == 0x400b, "identify nsid 0: status 0x%x", st);
	st = vc_identify(c, 0, 33, d);
	T_CHECK(st == 0x400b, "identify nsid 33: status 0x%x", st);
	T_CHECK(vc_identify(c, 2, 0, d) == 0, "active namespace list");
	memcpy(list, d, sizeof(list));
	T_CHECK(list[0] == 1 && list[1] == 2 && list[2] == 0, "active list %u %u %u", list[0],
	        list[1], list[2]);
	T_CHECK(vc_identify(c, 3, 1, d) == 0 && d[0] == 2 && d[1] == 16, "ns descriptors");
	/* What Linux asks with VS >= 1.1 (CSI 0): all zero, success. */
	T_CHECK(vc_identify(c, 6, 0, d) == 0, "Identify CNS 0x06 (CSI NVM)");
	/* Unknown CNS values: Invalid Field in Command, not silence. */
	st = vc_identify(c, 0x1f, 0, d);
	T_CHECK(st == 0x4002, "identify CNS 0x1f: status 0x%x", st);
	st = vc_identify(c, 0x42, 0, d);
	T_CHECK(st == 0x4002, "identify CNS 0x42: status 0x%x", st);
	return 0;
}

static int
admin_cmd(struct vfu_client *c, uint8_t opc, uint32_t nsid, uint32_t cdw10, uint32_t cdw11,
          uint32_t *dw0, void **data)
{
	struct vh_nvme_sqe cmd;
	void *va;
	uint64_t iova = vc_alloc(c, 4096, 4096, &va);

	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = opc;
	cmd.nsid = nsid;
	cmd.prp1 = iova;
	cmd.cdw10 = cdw10;
	cmd.cdw11 = cdw11;
	if (data != NULL) {
		*data = va;
	}
	return vc_cmd(c, 0, &cmd, dw0, 5000);
}

static int
check_admin(struct vfu_client *c)
{
	uint32_t dw0 = 0;
	uint8_t *d;
	int st;

	/* Get Log Page: SMART (512 bytes = 128 dwords), firmware, effects; unknown page. */
	st = admin_cmd(c, 0x02, 0xffffffff, 0x02 | (127u << 16), 0, NULL, (void **)&d);
	T_CHECK(st == 0 && d[3] == 100, "SMART log: status 0x%x spare %u", st, d[3]);
	T_CHECK(admin_cmd(c, 0x02, 0, 0x03 | (127u << 16), 0, NULL, NULL) == 0, "firmware log");
	T_CHECK(admin_cmd(c, 0x02, 0, 0x05 | (1023u << 16), 0, NULL, (void **)&d) == 0 &&
	                d[4 * 6] == 1,
	        "effects log");
	st = admin_cmd(c, 0x02, 0, 0xd0 | (127u << 16), 0, NULL, NULL);
	T_CHECK(st == 0x4109, "log page 0xd0: status 0x%x", st);
	/* Features. */
	T_CHECK(admin_cmd(c, 0x0a, 0, 0x06, 0, &dw0, NULL) == 0 && dw0 == 1, "VWC get %u", dw0);
	T_CHECK(admin_cmd(c, 0x09, 0, 0x08, 0x0a01, NULL, NULL) == 0, "set coalescing");
	T_CHECK(admin_cmd(c, 0x0a, 0, 0x08, 0, &dw0, NULL) == 0 && dw0 == 0x0a01,
	        "get coalescing 0x%x", dw0);
	st = admin_cmd(c, 0x09, 0, 0x09, 0xffff, NULL, NULL);
	T_CHECK(st == 0x4002, "irq config bad vector: 0x%x", st);
	st = admin_cmd(c, 0x09, 0, 0x06 | (1u << 31), 1, NULL, NULL);
	T_CHECK(st == 0x410d, "saveable set: 0x%x", st);
	st = admin_cmd(c, 0x09, 0, 0x0c, 1, NULL, NULL);
	T_CHECK(st == 0x4002, "APST set: 0x%x", st);
	/* Abort: not aborted (dw0 bit 0). */
	T_CHECK(admin_cmd(c, 0x08, 0, 0x1234 << 16 | 1, 0, &dw0, NULL) == 0 && (dw0 & 1), "abort");
	/* Unknown opcode. */
	st = admin_cmd(c, 0x7e, 0, 0, 0, NULL, NULL);
	T_CHECK(st == 0x4001, "opcode 0x7e: 0x%x", st);
	/* Queue management errors. */
	st = admin_cmd(c, 0x05, 0, (63u << 16) | 60, 1, NULL, NULL);
	T_CHECK(st == 0x4101, "create CQ 60 beyond the granted count: 0x%x", st);
	st = admin_cmd(c, 0x01, 0, (63u << 16) | 1, (9u << 16) | 1, NULL, NULL);
	T_CHECK(st == 0x4101, "create SQ 1 twice: 0x%x", st);
	st = admin_cmd(c, 0x04, 0, 1, 0, NULL, NULL);
	T_CHECK(st == 0x410c, "delete CQ with an SQ: 0x%x", st);
	st = admin_cmd(c, 0x00, 0, 9, 0, NULL, NULL);
	T_CHECK(st == 0x4101, "delete SQ 9: 0x%x", st);
	return 0;
}

static int
io_status(struct vfu_client *c, struct vh_nvme_sqe *cmd)
{
	return vc_cmd(c, 1, cmd, NULL, 5000);
}

static int
check_io_errors(struct vfu_client *c)
{
	struct vh_nvme_sqe cmd;
	uint8_t *va;
	uint64_t iova = vc_alloc(c, 65536, 4096, (void **)&va);
	int st;

	vc_rw_cmd(c, &cmd, VH_NVME_OPC_READ, 1, 8190, 4, iova, 512);
	T_CHECK((st = io_status(c, &cmd)) == 0x4080, "LBA out of range: 0x%x", st);
	vc_rw_cmd(c, &cmd, VH_NVME_OPC_READ, 1, ~0ull - 1, 4, iova, 512);
	T_CHECK((st = io_status(c, &cmd)) == 0x4080, "LBA wrap: 0x%x", st);
	vc_rw_cmd(c, &cmd, VH_NVME_OPC_READ, 7, 0, 1, iova, 512);
	T_CHECK((st = io_status(c, &cmd)) == 0x400b, "inactive nsid: 0x%x", st);
	vc_rw_cmd(c, &cmd, 0x05, 1, 0, 1, iova, 512);
	T_CHECK((st = io_status(c, &cmd)) == 0x4001, "compare opcode: 0x%x", st);
	vc_rw_cmd(c, &cmd, VH_NVME_OPC_READ, 1, 0, 1, iova + 2, 512);
	T_CHECK((st = io_status(c, &cmd)) == 0x4013, "PRP1 not dword aligned: 0x%x", st);
	vc_rw_cmd(c, &cmd, VH_NVME_OPC_READ, 1, 0, 16, iova, 512);
	cmd.prp2 = iova + 4096 + 8; /* second page with an offset */
	T_CHECK((st = io_status(c, &cmd)) == 0x4013, "PRP2 with offset: 0x%x", st);
	vc_rw_cmd(c, &cmd, VH_NVME_OPC_READ, 1, 0, 1, 0x7f0000000000ull, 512);
	T_CHECK((st = io_status(c, &cmd)) == 0x4004, "PRP outside guest memory: 0x%x", st);
	vc_rw_cmd(c, &cmd, VH_NVME_OPC_READ, 1, 0, 512, iova, 512); /* 256 KiB > MDTS */
	T_CHECK((st = io_status(c, &cmd)) == 0x4002, "beyond MDTS: 0x%x", st);
	vc_rw_cmd(c, &cmd, VH_NVME_OPC_READ, 1, 0, 1, iova, 512);
	cmd.fuse_psdt = 1; /* fused */
	T_CHECK((st = io_status(c, &cmd)) == 0x4002, "fused: 0x%x", st);
	/* An SGL shorter than the transfer. */
	vc_rw_cmd(c, &cmd, VH_NVME_OPC_READ, 1, 0, 8, iova, 512);
	vc_build_sgl(c, &cmd, iova, 2048);
	T_CHECK((st = io_status(c, &cmd)) == 0x400f, "SGL too short: 0x%x", st);
	/* An SGL Segment that points at itself (a loop): bounded, an error, no hang. */
	{
		uint64_t *seg;
		uint64_t seg_iova = vc_alloc(c, 4096, 4096, (void **)&seg);

		vc_rw_cmd(c, &cmd, VH_NVME_OPC_READ, 1, 0, 8, iova, 512);
		seg[0] = seg_iova;
		seg[1] = (0x2ull << 60) | 16; /* Segment, 16 bytes: itself */
		cmd.prp1 = seg_iova;
		cmd.prp2 = (0x2ull << 60) | 16;
		cmd.fuse_psdt = 1u << 6;
		st = io_status(c, &cmd);
		T_CHECK(st != 0 && st >= 0, "SGL loop accepted: 0x%x", st);
	}
	/* A PRP list that chains to itself. */
	{
		uint64_t *list;
		uint64_t list_iova = vc_alloc(c, 4096, 4096, (void **)&list);

		vc_rw_cmd(c, &cmd, VH_NVME_OPC_READ, 1, 0, 256, iova, 512);
		for (unsigned i = 0; i < 511; i++) {
			list[i] = iova;
		}
		list[511] = list_iova;
		cmd.prp2 = list_iova + 4088; /* one slot: the chain pointer */
		st = io_status(c, &cmd);
		T_CHECK(st >= 0, "PRP chain loop: %d", st);
	}
	return 0;
}

static int
check_io(struct vfu_client *c, struct vio *v)
{
	uint64_t irqs = 0;

	v->ops = VIO_WRITE | VIO_READ | VIO_WZ | VIO_DSM | VIO_FLUSH | VIO_SGL | VIO_FUA;
	T_OK(vio_run(v, 3000, 60000));
	for (unsigned q = 1; q <= NQ; q++) {
		irqs += vc_irq_count(c, q);
	}
	T_CHECK(irqs > 0, "no interrupt on any I/O vector");
	T_OK(vio_verify_all(v, 1, 10000));
	return 0;
}

static int
create_queues(struct vfu_client *c)
{
	uint32_t dw0;

	T_CHECK(vc_set_num_queues(c, NQ, &dw0) == 0, "number of queues");
	for (unsigned q = 1; q <= NQ; q++) {
		T_CHECK(vc_create_io_queue(c, (uint16_t)q, 64, (uint16_t)q) == 0, "queue %u", q);
	}
	return 0;
}

/* CC.EN = 0 with commands in flight on every queue, then back with fresh queues. */
static int
check_reset_under_io(struct vfu_client *c, struct vio *v)
{
	v->ops = VIO_WRITE | VIO_READ;
	T_OK(vio_start_only(v));
	T_OK(vc_nvme_disable(c, 10000));
	vio_abandon(v);
	T_OK(vc_nvme_enable(c, 32, 5000));
	T_OK(create_queues(c));
	T_OK(vio_verify_all(v, 1, 10000));
	T_OK(vio_run(v, 500, 30000));
	/* The same through DEVICE_RESET (what QEMU sends on a system reset). */
	T_OK(vio_start_only(v));
	T_OK(vc_device_reset(c));
	vio_abandon(v);
	T_CHECK((vc_reg32(c, 0x1c) & 1) == 0, "RDY after DEVICE_RESET");
	T_OK(vc_nvme_enable(c, 32, 5000));
	T_OK(create_queues(c));
	T_OK(vio_run(v, 500, 30000));
	T_OK(vio_verify_all(v, 1, 10000));
	return 0;
}

static int
check_hotplug(struct vfu_target *t, struct vfu_client *c, struct vio *v)
{
	struct vh_nvme_sqe aer;
	uint32_t dw0 = 0, *log;
	uint8_t d[4096];
	int cid, st;

	/* Enable namespace attribute notices and leave an AER outstanding. */
	T_CHECK(admin_cmd(c, 0x09, 0, 0x0b, 1u << 8, NULL, NULL) == 0, "AEC");
	memset(&aer, 0, sizeof(aer));
	aer.opc = 0x0c;
	cid = vc_submit(c, 0, &aer);
	T_CHECK(cid >= 0, "AER submit");
	T_OK(vfu_target_rpc(
	        t, "bdev_malloc_create",
	        json_pack("{s:s, s:i, s:i}", "name", "M2", "num_blocks", 1024, "block_size", 512),
	        NULL));
	T_OK(vfu_target_rpc(t, "vfu_controller_add_ns",
	                    json_pack("{s:s, s:s}", "ctrlr", "nvme0", "bdev_name", "M2"), NULL));
	st = vc_wait(c, 0, (uint16_t)cid, &dw0, 5000);
	T_CHECK(st == 0 && (dw0 & 0x7) == 2 && ((dw0 >> 16) & 0xff) == 4, "AER: st %d dw0 0x%x", st,
	        dw0);
	st = admin_cmd(c, 0x02, 0, 0x04 | (1023u << 16), 0, NULL, (void **)&log);
	T_CHECK(st == 0 && log[0] == 3 && log[1] == 0, "changed ns log: %u %u", log[0], log[1]);
	T_CHECK(vc_identify(c, 2, 0, d) == 0 && d[8] == 3, "ns 3 not active");
	T_OK(vio_add_ns(v, 3, 512, 1024));
	T_OK(vio_run(v, 300, 30000));
	/* Remove namespace 2 while queues run: its commands fail, the others go on. */
	cid = vc_submit(c, 0, &aer);
	T_OK(vfu_target_rpc(t, "vfu_controller_remove_ns",
	                    json_pack("{s:s, s:i}", "ctrlr", "nvme0", "nsid", 2), NULL));
	st = vc_wait(c, 0, (uint16_t)cid, &dw0, 5000);
	T_CHECK(st == 0, "AER after removal: %d", st);
	{
		struct vh_nvme_sqe cmd;
		void *va;
		uint64_t iova = vc_alloc(c, 4096, 4096, &va);

		vc_rw_cmd(c, &cmd, VH_NVME_OPC_READ, 2, 0, 1, iova, 4096);
		st = vc_cmd(c, 1, &cmd, NULL, 5000);
		T_CHECK(st == 0x400b, "read of a removed namespace: 0x%x", st);
	}
	/* The bdev is free again. */
	T_OK(vfu_target_rpc(t, "bdev_malloc_delete", json_pack("{s:s}", "name", "M1"), NULL));
	free(v->ns[1].model);
	free(v->ns[1].known);
	free(v->ns[1].busy);
	v->ns[1] = v->ns[v->nns - 1];
	v->nns--;
	T_OK(vio_run(v, 300, 30000));
	return 0;
}

static int
check_config(struct vfu_target *t)
{
	json_t *r = NULL, *subs;
	size_t i;
	bool found = false;

	T_OK(vfu_target_rpc(t, "save_config", NULL, &r));
	subs = json_object_get(r, "subsystems");
	for (i = 0; i < json_array_size(subs); i++) {
		json_t *s = json_array_get(subs, i);

		if (strcmp(json_string_value(json_object_get(s, "subsystem")), "vfio_user") == 0) {
			json_t *cfg = json_object_get(s, "config");

			found = json_array_size(cfg) == 3; /* controller + ns 1 + ns 3 */
		}
	}
	json_decref(r);
	T_CHECK(found, "save_config lacks the controller and its two namespaces");
	T_OK(vfu_target_rpc(t, "vfu_get_controllers", NULL, &r));
	T_CHECK(json_is_true(json_object_get(json_array_get(r, 0), "connected")), "not connected");
	json_decref(r);
	return 0;
}

static int
run(struct vfu_target *t, uint64_t seed)
{
	struct vfu_client c;
	struct vio *v = malloc(sizeof(*v));
	int rc = -1;

	if (v == NULL) {
		return -1;
	}
	vio_init(v, &c, seed);
	if (vfu_target_client(t, &c, 96, NQ, 64) < 0 || vio_add_ns(v, 1, 512, 8192) < 0 ||
	    vio_add_ns(v, 2, 4096, 2048) < 0) {
		goto out;
	}
	v->nq = NQ;
	v->depth = 8;
	for (unsigned q = 0; q < NQ; q++) {
		v->qids[q] = (uint16_t)(q + 1);
	}
	if (check_pci(&c) < 0 || check_identify(&c) < 0 || check_admin(&c) < 0 ||
	    check_io_errors(&c) < 0 || check_io(&c, v) < 0 || check_reset_under_io(&c, v) < 0 ||
	    check_hotplug(t, &c, v) < 0 || check_config(t) < 0) {
		goto out;
	}
	/* Normal shutdown, then a second client gets a fresh controller with the same data. */
	if (vc_nvme_shutdown(&c, 5000) < 0) {
		fprintf(stderr, "FAIL: shutdown notification\n");
		goto out;
	}
	vc_close(&c);
	if (vfu_target_client(t, &c, 96, NQ, 64) < 0) {
		goto out;
	}
	v->c = &c;
	if (vio_verify_all(v, 1, 10000) < 0 || vio_run(v, 500, 30000) < 0) {
		goto out;
	}
	rc = 0;
out:
	vc_close(&c);
	vio_fini(v);
	free(v);
	return rc;
}

int
main(void)
{
	struct vfu_target t;
	int rc, fail;

	rc = vfu_target_start(&t, getenv("VH_TEST_CPUMASK") ? getenv("VH_TEST_CPUMASK") : "0x1", 8,
	                      g_ns, 2);
	if (rc != 0) {
		return rc == 77 ? VH_TEST_SKIP : VH_TEST_FAIL;
	}
	fail = run(&t, vh_test_seed("test_vfu")) < 0;
	if (vfu_target_stop(&t) < 0) {
		fail = 1;
	}
	fprintf(stderr, "test_vfu: %s\n", fail ? "FAIL" : "PASS");
	return fail ? VH_TEST_FAIL : VH_TEST_PASS;
}
