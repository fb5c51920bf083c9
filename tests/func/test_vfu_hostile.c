/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Hostile vfio-user clients and guests against the NVMe controller. Each case either gets an
 * error reply, closes only its own session, or marks the controller fatal (CSTS.CFS) - and
 * after every case a fresh client still does verified I/O, so the daemon survived and its
 * state is sane. Cases: framing (short and huge sizes, a reply instead of a command, commands
 * before VERSION, a second VERSION, too many fds), DMA_MAP with bad fields, an overlap, an fd
 * shorter than the region, a pipe instead of a memory fd, DMA_UNMAP of unknown ranges, region
 * accesses out of bounds, SET_IRQS with non-eventfds and out-of-range vectors, unknown
 * commands, doorbells out of range, a queue in unmapped memory, a DMA_UNMAP of the memory the
 * queues live in while they run, and a client that vanishes with commands in flight.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vfu/protocol.h"
#include "vfu_io.h"
#include "vfu_test.h"
#include "vh_test.h"

#define VFU_DMA_RW (VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE)

static const struct vfu_target_ns g_ns[] = {{"M0", 4096, 512, 1}};
static uint64_t g_seed;

/* The daemon is fine: a new client does verified I/O on two queues. */
static int
healthy(struct vfu_target *t)
{
	struct vfu_client c;
	struct vio v;
	int rc = -1;

	if (vfu_target_client(t, &c, 32, 2, 32) < 0) {
		vc_close(&c);
		return -1;
	}
	vio_init(&v, &c, g_seed++);
	v.nq = 2;
	v.qids[0] = 1;
	v.qids[1] = 2;
	v.depth = 4;
	/* Earlier cases wrote unknown data: write first, then verify what we wrote. */
	if (vio_add_ns(&v, 1, 512, 4096) == 0) {
		memset(v.ns[0].known, 0, 4096);
		v.ops = VIO_WRITE | VIO_READ;
		rc = vio_run(&v, 200, 20000);
	}
	vio_fini(&v);
	vc_close(&c);
	if (rc < 0) {
		fprintf(stderr, "FAIL: the controller is not healthy after the previous case\n");
	}
	return rc;
}

static int
raw_client(struct vfu_target *t, struct vfu_client *c, bool version)
{
	T_OK(vc_connect(c, t->sock, 16 << 20, 5000));
	if (version) {
		T_OK(vc_version(c));
	}
	return 0;
}

/* Framing violations close the session (and only it). */
static int
case_framing(struct vfu_target *t)
{
	struct vfu_client c;
	struct vfio_user_header h;
	int err = 0, fds[20];

	/* A command before VERSION. */
	T_OK(raw_client(t, &c, false));
	T_CHECK(vc_msg(&c, VFIO_USER_DEVICE_GET_INFO, 0, "0123456789abcdef", 16, NULL, 0, NULL, 0,
	               NULL, &err, NULL) < 0 ||
	                vc_closed_by_server(&c, 2000),
	        "GET_INFO before VERSION answered");
	vc_close(&c);
	/* msg_size smaller than the header, and one larger than anything legal. */
	for (uint32_t sz = 0; sz < 2; sz++) {
		T_OK(raw_client(t, &c, true));
		memset(&h, 0, sizeof(h));
		h.cmd = VFIO_USER_DEVICE_GET_INFO;
		h.msg_size = sz == 0 ? 8 : 0x7fffffff;
		T_OK(vc_send_raw(&c, &h, sizeof(h), NULL, 0));
		T_CHECK(vc_closed_by_server(&c, 2000), "msg_size %u accepted", h.msg_size);
		vc_close(&c);
	}
	/* A reply instead of a command; a second VERSION. */
	T_OK(raw_client(t, &c, true));
	T_CHECK(vc_msg(&c, VFIO_USER_DEVICE_RESET, VFIO_USER_F_TYPE_REPLY, NULL, 0, NULL, 0, NULL,
	               0, NULL, &err, NULL) < 0 ||
	                vc_closed_by_server(&c, 2000),
	        "reply accepted as a command");
	vc_close(&c);
	T_OK(raw_client(t, &c, true));
	T_CHECK(vc_version(&c) < 0 || vc_closed_by_server(&c, 2000), "second VERSION accepted");
	vc_close(&c);
	/* 20 fds with one message (more than max_msg_fds), and fds with a message that takes none.
	 */
	for (int i = 0; i < 20; i++) {
		fds[i] = eventfd(0, EFD_CLOEXEC);
	}
	T_OK(raw_client(t, &c, true));
	T_CHECK(vc_msg(&c, VFIO_USER_DEVICE_RESET, 0, NULL, 0, fds, 20, NULL, 0, NULL, &err, NULL) <
	                        0 ||
	                vc_closed_by_server(&c, 2000),
	        "20 fds accepted");
	vc_close(&c);
	T_OK(raw_client(t, &c, true));
	T_CHECK(vc_msg(&c, VFIO_USER_DEVICE_RESET, 0, NULL, 0, fds, 2, NULL, 0, NULL, &err, NULL) <
	                        0 ||
	                vc_closed_by_server(&c, 2000),
	        "fds with DEVICE_RESET accepted");
	vc_close(&c);
	for (int i = 0; i < 20; i++) {
		close(fds[i]);
	}
	/* A payload size that does not match the command: DMA_MAP with 31 bytes. */
	T_OK(raw_client(t, &c, true));
	T_CHECK(vc_msg(&c, VFIO_USER_DMA_MAP, 0, fds, 31, NULL, 0, NULL, 0, NULL, &err, NULL) < 0 ||
	                vc_closed_by_server(&c, 2000),
	        "31-byte DMA_MAP accepted");
	vc_close(&c);
	return 0;
}

/* Commands that are refused with an errno; the session lives on. */
static int
case_refused(struct vfu_target *t)
{
	struct vfu_client c;
	uint8_t buf[64];
	int pfd[2], err = 0, efd = eventfd(0, EFD_CLOEXEC), small;
	uint32_t rw = VFU_DMA_RW;

	T_OK(raw_client(t, &c, true));
	/* DMA_MAP: size 0, overflow, unknown flags, overlap, fd too short, a pipe. */
	T_CHECK(vc_dma_map(&c, 0x1000, 0, 0, c.mem_fd, rw) == -EINVAL, "size 0");
	T_CHECK(vc_dma_map(&c, ~0ull - 0xfff, 0x2000, 0, c.mem_fd, rw) == -EINVAL, "wrap");
	T_CHECK(vc_dma_map(&c, 0x1000, 0x1000, 0, c.mem_fd, 0x80 | rw) == -EINVAL, "flags");
	T_OK(vc_dma_map(&c, 0x100000, 0x100000, 0, c.mem_fd, rw));
	T_CHECK(vc_dma_map(&c, 0x180000, 0x100000, 0, c.mem_fd, rw) == -EEXIST, "overlap");
	T_CHECK(vc_dma_map(&c, 0x80000, 0x80001, 0, c.mem_fd, rw) == -EEXIST, "overlap below");
	small = memfd_create("small", MFD_CLOEXEC);
	T_CHECK(small >= 0 && ftruncate(small, 4096) == 0, "memfd");
	T_CHECK(vc_dma_map(&c, 0x10000000, 0x10000, 0, small, rw) == -EINVAL, "fd too short");
	T_CHECK(vc_dma_map(&c, 0x10000000, 0x1000, ~0ull - 0x800, small, rw) == -EINVAL,
	        "offset wrap");
	close(small);
	T_CHECK(pipe(pfd) == 0, "pipe");
	T_CHECK(vc_dma_map(&c, 0x20000000, 0x1000, 0, pfd[0], rw) < 0, "a pipe as memory");
	close(pfd[0]);
	close(pfd[1]);
	/* Without an fd: accepted (not accessible to us), like QEMU's ROMs. */
	T_OK(vc_dma_map(&c, 0xfffc0000, 0x40000, 0, -1, VFIO_USER_F_DMA_REGION_READ));
	T_CHECK(vc_dma_unmap(&c, 0x100000, 0x1000, 0) == -ENOENT, "partial unmap");
	T_CHECK(vc_dma_unmap(&c, 0, 0, 1u) == -EINVAL, "dirty bitmap unmap");
	T_OK(vc_dma_unmap(&c, 0xfffc0000, 0x40000, 0));
	/* Regions: out of range, crossing the end, a region that does not exist, too big. */
	T_CHECK(vc_region_read(&c, 9, 0, buf, 4) == -EINVAL, "region 9");
	T_CHECK(vc_region_read(&c, VFIO_PCI_CONFIG_REGION_INDEX, 4094, buf, 4) == -EINVAL,
	        "config end");
	T_CHECK(vc_region_read(&c, VFIO_PCI_BAR2_REGION_INDEX, 0, buf, 4) == -EINVAL, "BAR2");
	T_CHECK(vc_region_read(&c, VFIO_PCI_BAR0_REGION_INDEX, ~0ull - 2, buf, 4) == -EINVAL,
	        "offset wrap");
	T_CHECK(vc_region_write(&c, VFIO_PCI_BAR0_REGION_INDEX, 0x14, buf, 3) == -EINVAL,
	        "3-byte register write");
	/* SET_IRQS: not an eventfd, beyond the vectors, two actions, MSI (none). */
	T_CHECK(vc_set_irqs(&c, VFIO_PCI_MSIX_IRQ_INDEX,
	                    VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1,
	                    &c.mem_fd, 1) == -EINVAL,
	        "memfd as interrupt");
	T_CHECK(vc_set_irqs(&c, VFIO_PCI_MSIX_IRQ_INDEX,
	                    VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 9, 1, &efd,
	                    1) == -EINVAL,
	        "vector 9 of 9");
	T_CHECK(vc_set_irqs(&c, VFIO_PCI_MSIX_IRQ_INDEX,
	                    VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER |
	                            VFIO_IRQ_SET_ACTION_MASK,
	                    0, 1, &efd, 1) == -EINVAL,
	        "two actions");
	T_CHECK(vc_set_irqs(&c, VFIO_PCI_MSI_IRQ_INDEX,
	                    VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1, &efd,
	                    1) == -EINVAL,
	        "MSI vector");
	close(efd);
	/* Unknown and server-to-client commands. */
	T_OK(vc_msg(&c, 99, 0, NULL, 0, NULL, 0, NULL, 0, NULL, &err, NULL));
	T_CHECK(err == ENOSYS, "unknown command: errno %d", err);
	T_OK(vc_msg(&c, VFIO_USER_DMA_READ, 0, buf, 16, NULL, 0, NULL, 0, NULL, &err, NULL));
	T_CHECK(err == ENOTSUP, "DMA_READ from the client: errno %d", err);
	/* Still a working session: the info. */
	T_OK(vc_msg(&c, VFIO_USER_DEVICE_GET_INFO, 0, "\x10\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16,
	            NULL, 0, buf, sizeof(buf), NULL, &err, NULL));
	T_CHECK(err == 0, "GET_INFO after refusals: errno %d", err);
	vc_close(&c);
	return 0;
}

/* The guest breaks the controller: CSTS.CFS, and a reset brings it back. */
static int
case_guest(struct vfu_target *t)
{
	struct vfu_client c;
	struct vh_nvme_sqe cmd;
	uint32_t *db;

	T_CHECK(vfu_target_client(t, &c, 32, 2, 32) == 0, "client");
	/* SQ tail doorbell beyond the queue size. */
	db = (uint32_t *)c.bar0_map;
	db[2 * 1] = 1000;
	for (int i = 0; i < 2000 && !(vc_reg32(&c, 0x1c) & 2); i++) {
	}
	T_CHECK(vc_reg32(&c, 0x1c) & 2, "CFS not set after a bad doorbell");
	T_OK(vc_nvme_disable(&c, 5000));
	T_CHECK(vc_reg32(&c, 0x1c) == 0, "CSTS 0x%x after reset", vc_reg32(&c, 0x1c));
	/* Admin queue outside the mapped memory: fatal at enable. */
	T_OK(vc_wreg32(&c, 0x24, (31u << 16) | 31));
	T_OK(vc_wreg64(&c, 0x28, 0x7fff00000000ull));
	T_OK(vc_wreg64(&c, 0x30, 0x7fff00010000ull));
	T_OK(vc_wreg32(&c, 0x14, (6u << 16) | (4u << 20) | 1));
	T_CHECK(vc_reg32(&c, 0x1c) & 2, "admin queue outside memory accepted");
	T_OK(vc_nvme_disable(&c, 5000));
	T_OK(vc_nvme_enable(&c, 32, 5000));
	/* An I/O queue in unmapped memory: refused with a status. */
	T_CHECK(vc_set_num_queues(&c, 2, NULL) == 0, "queues");
	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = VH_NVME_ADM_CREATE_CQ;
	cmd.prp1 = 0x7fff00000000ull;
	cmd.cdw10 = (31u << 16) | 1;
	cmd.cdw11 = 1;
	T_CHECK(vc_cmd(&c, 0, &cmd, NULL, 5000) == 0x4004, "CQ in unmapped memory");
	/*
	 * Unmap the memory the queues live in while they run (QEMU does this for a moment when
	 * it rearranges its memory map): nothing is fetched until the memory is mapped again,
	 * then the command completes. No crash, no fatal status.
	 */
	T_CHECK(vc_create_io_queue(&c, 1, 32, 1) == 0, "queue 1");
	T_OK(vc_dma_unmap(&c, c.mem_iova, c.mem_size, 0));
	T_CHECK(!(vc_reg32(&c, 0x1c) & 2), "CFS after a temporary unmap");
	{
		void *va;
		uint64_t iova = vc_alloc(&c, 4096, 4096, &va);
		int cid, st;

		vc_rw_cmd(&c, &cmd, VH_NVME_OPC_READ, 1, 0, 8, iova, 512);
		cid = vc_submit(&c, 1, &cmd);
		T_CHECK(cid >= 0, "submit");
		st = vc_wait(&c, 1, (uint16_t)cid, NULL, 300);
		T_CHECK(st == -ETIMEDOUT, "a command ran while its queue was unmapped: %d", st);
		T_OK(vc_dma_map(&c, c.mem_iova, c.mem_size, 0, c.mem_fd, VFU_DMA_RW));
		st = vc_wait(&c, 1, (uint16_t)cid, NULL, 5000);
		T_CHECK(st == 0, "the command after the memory came back: %d", st);
	}
	/* Gone for good: the host's reset with the memory missing is fatal. */
	T_OK(vc_dma_unmap(&c, c.mem_iova, c.mem_size, 0));
	T_OK(vc_wreg32(&c, 0x14, 0));
	T_OK(vc_wreg32(&c, 0x14, (6u << 16) | (4u << 20) | 1));
	T_CHECK(vc_reg32(&c, 0x1c) & 2, "enable without memory accepted");
	vc_close(&c);
	/* A client that leaves with commands in flight. */
	T_CHECK(vfu_target_client(t, &c, 32, 2, 32) == 0, "client");
	{
		struct vio v;

		vio_init(&v, &c, g_seed++);
		v.nq = 2;
		v.qids[0] = 1;
		v.qids[1] = 2;
		v.depth = 16;
		vio_add_ns(&v, 1, 512, 4096);
		vio_start_only(&v);
		vio_fini(&v);
	}
	vc_close(&c);
	return 0;
}

int
main(void)
{
	struct vfu_target t;
	int rc, fail = 0;

	rc = vfu_target_start(&t, "0x1", 2, g_ns, 1);
	if (rc != 0) {
		return rc == 77 ? VH_TEST_SKIP : VH_TEST_FAIL;
	}
	g_seed = vh_test_seed("test_vfu_hostile");
	if (case_framing(&t) < 0 || healthy(&t) < 0 || case_refused(&t) < 0 || healthy(&t) < 0 ||
	    case_guest(&t) < 0 || healthy(&t) < 0) {
		fail = 1;
	}
	if (vfu_target_stop(&t) < 0) {
		fail = 1;
	}
	fprintf(stderr, "test_vfu_hostile: %s\n", fail ? "FAIL" : "PASS");
	return fail ? VH_TEST_FAIL : VH_TEST_PASS;
}
