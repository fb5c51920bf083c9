/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzz target: vfio-user message sequences and guest NVMe activity against the emulated NVMe
 * controller (src/vfu: msg.c's table and handlers, dma.c, nvme_pci.c, nvme_ctrlr.c,
 * nvme_admin.c, nvme_io.c, nvme_prp.c), single-threaded with the deterministic reactor, event
 * loop and bdev doubles of tests/unit/vfu/nvme_stubs.c.
 *
 * Each input is one session: VERSION and a DMA_MAP of 1 MiB of memfd "guest RAM" at IOVA
 * 0x100000 are done first (so the fuzzer starts inside the protocol), then records:
 *   OP_MSG     cmd8 flags8 len16 fdkinds8 payload[len]   (fds: guest memfd, eventfd, pipe,
 *                                                          short memfd, by 2-bit kind)
 *   OP_GUEST   off16 len8 bytes                          write guest RAM at off * 16
 *   OP_DB      qid8 cq8 value16                          write a doorbell (the mmap'ed page)
 *   OP_ENABLE                                            AQA/ASQ/ACQ at fixed RAM, CC.EN = 1
 *   OP_ADMIN   sqe[64] fix8                              an admin SQ entry, rung
 *   OP_IO      qid8 sqe[64] fix8                         an I/O SQ entry at the queue's RAM
 *   OP_HOLD    on8                                       hold / release bdev completions
 *   OP_PUMP                                              run the reactors and messages
 * ("fix" bits point PRP1/PRP2 into guest RAM, so data pointers are valid more often.)
 * Then the client hangs up.
 *
 * Checked after each input: no sanitizer report; the disconnect completes (the controller's
 * session pointer is cleared, nothing is left in flight, every bdev channel is put back); the
 * process fd count is back at its baseline; no mapping of guest RAM is left.
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/log.h"
#include "tests/unit/vfu/nvme_stubs.h"
#include "vfu/nvme.h"

#define MEM_IOVA 0x100000ull
#define MEM_SIZE (1u << 20)
#define ASQ_OFF  0x1000u
#define ACQ_OFF  0x2000u
#define IOQ_OFF  0x10000u /* queue q: SQ at IOQ_OFF + q * 0x4000, CQ 0x2000 after it */

enum op { OP_MSG, OP_GUEST, OP_DB, OP_ENABLE, OP_ADMIN, OP_IO, OP_HOLD, OP_PUMP, OP_COUNT };

static struct vfu_nvme *N;
static struct vfu_session S;
static struct vh_bdev *B1, *B2;
static uint8_t *g_mem; /* our view of guest RAM (the memfd) */
static uint8_t *g_dbmap;
static uint16_t g_adm_tail, g_io_tail[5];

static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (d == NULL) {
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		n += e->d_name[0] != '.';
	}
	closedir(d);
	return n;
}

/* Mappings of guest RAM memfds left in our address space (the session must unmap them all). */
static int
guest_mappings(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	if (f == NULL) {
		return 0;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		n += strstr(line, "memfd:fuzz-guest") != NULL ||
		     strstr(line, "memfd:fuzz-m") != NULL;
	}
	fclose(f);
	return n;
}

static int
sink(struct vfu_session *s, const struct iovec *iov, int iovcnt, int fd)
{
	return 0;
}

static int
dispatch(uint16_t cmd, uint32_t flags, const void *p, uint32_t len, int *fds, unsigned nfds)
{
	struct vfio_user_header h = {
	        .cmd = cmd, .msg_size = (uint32_t)sizeof(h) + len, .flags = flags};
	int rc;

	if (S.closing || S.holds > 0 || len > VFU_MAX_MSG - sizeof(h)) {
		for (unsigned i = 0; i < nfds; i++) {
			close(fds[i]);
		}
		return -EBUSY; /* a real session would not read now */
	}
	memcpy(S.buf, &h, sizeof(h));
	memcpy(S.buf + sizeof(h), p, len);
	S.got = h.msg_size;
	for (unsigned i = 0; i < nfds; i++) {
		S.fds[i] = fds[i];
	}
	S.nfds = nfds;
	rc = vfu_msg_dispatch(&S);
	S.got = 0;
	if (rc < 0) {
		vfu_session_close(&S, "fuzz: violation");
	}
	return rc;
}

static void
reg32(uint32_t off, uint32_t v)
{
	uint8_t m[20];
	struct vfio_user_region_access a = {.offset = off, .region = 0, .count = 4};

	memcpy(m, &a, 16);
	memcpy(m + 16, &v, 4);
	dispatch(VFIO_USER_REGION_WRITE, 0, m, sizeof(m), NULL, 0);
	stub_pump(200);
}

static void
session_open(void)
{
	struct vfio_user_dma_map m = {.argsz = 32, .flags = 3, .addr = MEM_IOVA, .size = MEM_SIZE};
	uint16_t ver[2] = {0, 0};
	int fd = memfd_create("fuzz-guest", MFD_CLOEXEC), fd2;

	if (fd < 0 || ftruncate(fd, MEM_SIZE) < 0) {
		abort();
	}
	g_mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (g_mem == MAP_FAILED) {
		abort();
	}
	if (vfu_session_init(&S, -1, &vfu_nvme_dev_ops, N, sink, 1ull << 30, "fuzz") < 0) {
		abort();
	}
	N->session = &S;
	dispatch(VFIO_USER_VERSION, 0, ver, 4, NULL, 0);
	fd2 = fd;
	dispatch(VFIO_USER_DMA_MAP, 0, &m, sizeof(m), &fd2, 1);
	stub_pump(100);
	memset(g_io_tail, 0, sizeof(g_io_tail));
	g_adm_tail = 0;
}

static void
session_close(void)
{
	vfu_session_close(&S, "fuzz: hang-up");
	stub_hold(false);
	stub_pump(100000);
	if (N->session != NULL || N->busy || stub_pending() != 0 || stub_channels() != 0) {
		fprintf(stderr,
		        "fuzz_vfu_msg: disconnect did not complete (session %p busy %d "
		        "pending %u channels %d)\n",
		        (void *)N->session, N->busy, stub_pending(), stub_channels());
		abort();
	}
	vfu_session_fini(&S);
	munmap(g_mem, MEM_SIZE);
	g_mem = NULL;
}

static struct vfu_ns *
ns_new(uint32_t nsid, struct vh_bdev *b)
{
	struct vfu_ns *ns = calloc(1, sizeof(*ns));

	ns->nsid = nsid;
	ns->bdev = b;
	ns->block_size = vh_bdev_block_size(b);
	ns->lbads = (uint8_t)__builtin_ctz(ns->block_size);
	ns->nblocks = vh_bdev_num_blocks(b);
	return ns;
}

static void
init_once(void)
{
	int dbfd;

	if (N != NULL) {
		return;
	}
	vh_log_set_level(VH_LOG_DEBUG);
	stub_reset();
	N = calloc(1, sizeof(*N));
	snprintf(N->name, sizeof(N->name), "fuzz");
	snprintf(N->prefix, sizeof(N->prefix), "[fuzz]");
	N->num_ioq = 4;
	N->nvec = 5;
	N->cntlid = 1;
	dbfd = memfd_create("fuzz-db", MFD_CLOEXEC);
	if (dbfd < 0 || ftruncate(dbfd, VFU_NVME_BAR0_SIZE) < 0) {
		abort();
	}
	g_dbmap = mmap(NULL, VFU_NVME_BAR0_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, dbfd, 0);
	N->db_fd = dbfd;
	N->db_page = g_dbmap + VFU_NVME_DB_OFFSET;
	N->err_fd = N->req_fd = -1;
	for (unsigned i = 0; i < VFU_NVME_MAX_VECTORS; i++) {
		N->msix_fd[i] = -1;
	}
	N->closing_fds = calloc(VFU_NVME_MAX_VECTORS + 2, sizeof(int));
	for (unsigned i = 0; i < 2; i++) {
		struct vfu_rctx *x = calloc(1, sizeof(*x));

		x->n = N;
		x->r = (struct vh_reactor *)(uintptr_t)(i + 1);
		x->idx = i;
		x->timerfd = -1;
		N->rctx[N->nrctx++] = x;
	}
	vfu_nvme_pci_init(N);
	vfu_nvme_ctrlr_init(N);
	vfu_nvme_op(N, UINT32_MAX, vfu_rctx_start, NULL);
	stub_pump(10);
	B1 = stub_bdev_new("b1", 256, 512,
	                   (1u << VH_BDEV_IO_READ) | (1u << VH_BDEV_IO_WRITE) |
	                           (1u << VH_BDEV_IO_FLUSH) | (1u << VH_BDEV_IO_DISCARD) |
	                           (1u << VH_BDEV_IO_WRITE_ZEROES),
	                   true);
	B2 = stub_bdev_new("b2", 32, 4096, (1u << VH_BDEV_IO_READ) | (1u << VH_BDEV_IO_WRITE),
	                   false);
	N->ns[1] = ns_new(1, B1);
	N->ns[2] = ns_new(2, B2);
}

/* Point PRP1/PRP2 into guest RAM when the fuzzer asks (bits of @fix). */
static void
fix_ptrs(struct vh_nvme_sqe *c, uint8_t fix)
{
	if (fix & 1) {
		c->prp1 = MEM_IOVA + (c->prp1 % MEM_SIZE);
	}
	if (fix & 2) {
		c->prp2 = MEM_IOVA + (c->prp2 % MEM_SIZE);
	}
}

static void
do_enable(void)
{
	reg32(0x24, (31u << 16) | 31);
	reg32(0x28, (uint32_t)(MEM_IOVA + ASQ_OFF));
	reg32(0x2c, 0);
	reg32(0x30, (uint32_t)(MEM_IOVA + ACQ_OFF));
	reg32(0x34, 0);
	reg32(0x14, (6u << 16) | (4u << 20) | 1);
	g_adm_tail = 0;
}

static void
msg_fds(uint8_t kinds, unsigned n, int *fds)
{
	for (unsigned i = 0; i < n; i++) {
		switch ((kinds >> (2 * i)) & 3) {
		case 0:
			fds[i] = memfd_create("fuzz-m", MFD_CLOEXEC);
			if (ftruncate(fds[i], MEM_SIZE) < 0) {
				abort();
			}
			break;
		case 1:
			fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			break;
		case 2: {
			int p[2];

			if (pipe2(p, O_CLOEXEC) < 0) {
				abort();
			}
			close(p[1]);
			fds[i] = p[0];
			break;
		}
		default:
			fds[i] = memfd_create("fuzz-s", MFD_CLOEXEC); /* 0 bytes: too short */
			break;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t pos = 0;
	int fds_now, fds_before;

	init_once();
	fds_before = count_fds(); /* per input: every fd it brings must be gone at its end */
	session_open();
	while (pos < size && !S.closing) {
		uint8_t op = data[pos++] % OP_COUNT;

		switch (op) {
		case OP_MSG: {
			uint16_t len;
			uint8_t cmd, flags, kinds;
			int fds[4];
			unsigned nfds;

			if (size - pos < 5) {
				pos = size;
				break;
			}
			cmd = data[pos];
			flags = data[pos + 1];
			memcpy(&len, data + pos + 2, 2);
			kinds = data[pos + 4];
			pos += 5;
			len = (uint16_t)(len % 4200);
			if (len > size - pos) {
				len = (uint16_t)(size - pos);
			}
			nfds = kinds >> 6; /* 0..3 */
			msg_fds(kinds, nfds, fds);
			dispatch(cmd % 20, flags & 0x3f, data + pos, len, fds, nfds);
			pos += len;
			stub_pump(200);
			break;
		}
		case OP_GUEST: {
			uint16_t off;
			uint8_t len;

			if (size - pos < 3) {
				pos = size;
				break;
			}
			memcpy(&off, data + pos, 2);
			len = data[pos + 2];
			pos += 3;
			if (len > size - pos) {
				len = (uint8_t)(size - pos);
			}
			memcpy(g_mem + ((uint32_t)off * 16u) % (MEM_SIZE - 256), data + pos, len);
			pos += len;
			break;
		}
		case OP_DB: {
			uint16_t v;

			if (size - pos < 4) {
				pos = size;
				break;
			}
			memcpy(&v, data + pos + 2, 2);
			((volatile uint32_t *)
			         N->db_page)[2 * (data[pos] % 6) + (data[pos + 1] & 1)] = v;
			pos += 4;
			stub_pump(200);
			break;
		}
		case OP_ENABLE:
			do_enable();
			break;
		case OP_ADMIN:
		case OP_IO: {
			struct vh_nvme_sqe c;
			unsigned q = 0;
			uint8_t fix;

			if (op == OP_IO) {
				if (size - pos < 1) {
					pos = size;
					break;
				}
				q = 1 + data[pos++] % 4;
			}
			if (size - pos < sizeof(c) + 1) {
				pos = size;
				break;
			}
			memcpy(&c, data + pos, sizeof(c));
			fix = data[pos + sizeof(c)];
			pos += sizeof(c) + 1;
			fix_ptrs(&c, fix);
			if (op == OP_ADMIN) {
				/* Queue creation: the queue's memory at its fixed place when asked.
				 */
				if ((fix & 4) && (c.opc == 0x01 || c.opc == 0x05)) {
					uint16_t qid = c.cdw10 & 0xffff;

					c.prp1 = MEM_IOVA + IOQ_OFF + (uint64_t)(qid % 5) * 0x4000 +
					         (c.opc == 0x05 ? 0x2000 : 0);
				}
				memcpy(g_mem + ASQ_OFF + (g_adm_tail % 32) * 64u, &c, sizeof(c));
				g_adm_tail = (uint16_t)((g_adm_tail + 1) % 32);
				((volatile uint32_t *)N->db_page)[0] = g_adm_tail;
			} else {
				uint16_t size16 = (fix & 8) ? 16 : 32;

				memcpy(g_mem + IOQ_OFF + q * 0x4000u +
				               (g_io_tail[q] % size16) * 64u,
				       &c, sizeof(c));
				g_io_tail[q] = (uint16_t)((g_io_tail[q] + 1) % size16);
				((volatile uint32_t *)N->db_page)[2 * q] = g_io_tail[q];
			}
			stub_pump(200);
			break;
		}
		case OP_HOLD:
			if (pos < size) {
				stub_hold(data[pos++] & 1);
			}
			break;
		case OP_PUMP:
			stub_pump(1000);
			break;
		default:
			break;
		}
	}
	session_close();
	if (guest_mappings() != 0) {
		fprintf(stderr, "fuzz_vfu_msg: guest RAM still mapped after the session\n");
		abort();
	}
	fds_now = count_fds();
	if (fds_now != fds_before && getenv("VHFUZZ_ALLOW_FD_LEAK") == NULL) {
		fprintf(stderr, "fuzz_vfu_msg: %d fds open after the session, %d before\n", fds_now,
		        fds_before);
		abort();
	}
	return 0;
}
