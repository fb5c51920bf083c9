/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The PCI face of the emulated NVMe controller: configuration space (PM, MSI-X and PCI Express
 * capabilities), the regions vfio-user describes (BAR0 = registers + doorbells, BAR4 = MSI-X
 * table and PBA, config space), and the interrupt eventfds from SET_IRQS.
 *
 * Threat model: region accesses and SET_IRQS come from the client; msg.c has checked that an
 * access lies inside its region and that SET_IRQS fits the IRQ type's count. Here every write
 * to configuration space goes through a write mask (read-only bits stay as we set them), and
 * an eventfd that is replaced is closed only after every reactor passed a barrier (nvme.h N4).
 *
 * Layout (QEMU's vfio-user client emulates the MSI-X table itself and forwards PBA reads):
 *   BAR0  0x0000-0x0fff registers (trapped: REGION_READ/WRITE)
 *         0x1000-0x1fff doorbells (sparse mmap of a sealed memfd: guest writes never trap)
 *   BAR4  0x000 MSI-X table, 0x800 PBA
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "vfu/nvme.h"

/* PCI IDs: the vendor/device pair SPDK's and libvfio-user's NVMe targets use (no Linux quirks). */
#define PCI_VENDOR  0x4e58
#define PCI_DEVICE  0x0001
#define PCI_CLASS   0x010802 /* mass storage, NVM, NVMe I/O controller */
#define CAP_PM      0x40
#define CAP_MSIX    0x50
#define CAP_EXP     0x60
#define CAP_EXP_LEN 0x3c

static void
put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void
put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void
wmask16(struct vfu_nvme *n, unsigned off, uint16_t m)
{
	put16(&n->cfg_wmask[off], m);
}

void
vfu_nvme_pci_init(struct vfu_nvme *n)
{
	uint8_t *c = n->cfg;

	memset(n->cfg, 0, sizeof(n->cfg));
	memset(n->cfg_wmask, 0, sizeof(n->cfg_wmask));
	memset(n->bar4, 0, sizeof(n->bar4));
	put16(c + 0x00, PCI_VENDOR);
	put16(c + 0x02, PCI_DEVICE);
	put16(c + 0x06, 0x0010); /* status: capabilities list */
	c[0x08] = 0x02;          /* revision */
	c[0x09] = PCI_CLASS & 0xff;
	c[0x0a] = (PCI_CLASS >> 8) & 0xff;
	c[0x0b] = (PCI_CLASS >> 16) & 0xff;
	put32(c + 0x10, 0x4); /* BAR0: 64-bit memory, not prefetchable (BAR1 = upper half) */
	put32(c + 0x20, 0x0); /* BAR4: 32-bit memory */
	put16(c + 0x2c, PCI_VENDOR);
	put16(c + 0x2e, PCI_DEVICE);
	c[0x34] = CAP_PM;
	c[0x3d] = 0; /* no INTx pin: MSI-X only */

	/* Power management (PM 1.2): D0..D3hot, No_Soft_Reset (D3hot→D0 keeps our state). */
	c[CAP_PM] = 0x01;
	c[CAP_PM + 1] = CAP_MSIX;
	put16(c + CAP_PM + 2, 0x0003);
	put16(c + CAP_PM + 4, 0x0008);

	/* MSI-X: nvec vectors, table at BAR4 + 0, PBA at BAR4 + 0x800. */
	c[CAP_MSIX] = 0x11;
	c[CAP_MSIX + 1] = CAP_EXP;
	put16(c + CAP_MSIX + 2, (uint16_t)(n->nvec - 1));
	put32(c + CAP_MSIX + 4, 0x0 | 4);
	put32(c + CAP_MSIX + 8, VFU_NVME_PBA_OFFSET | 4);

	/* PCI Express 2.0 endpoint, x1 at 2.5 GT/s, no FLR (resets come as DEVICE_RESET). */
	c[CAP_EXP] = 0x10;
	c[CAP_EXP + 1] = 0;
	put16(c + CAP_EXP + 2, 0x0002);
	put32(c + CAP_EXP + 4, 0x00008000);    /* devcap: role-based error reporting */
	put16(c + CAP_EXP + 8, 0x2810);        /* devctl: 512 B read requests, RO, no snoop */
	put32(c + CAP_EXP + 0x0c, 0x00000011); /* linkcap: x1, 2.5 GT/s */
	put16(c + CAP_EXP + 0x12, 0x0011);     /* linksta */

	/* Writable bits. */
	wmask16(n, 0x04, 0x0547); /* command: I/O, memory, bus master, parity, SERR, INTx off */
	put32(&n->cfg_wmask[0x10], ~(VFU_NVME_BAR0_SIZE - 1) & ~0xfu);
	put32(&n->cfg_wmask[0x14], 0xffffffffu);
	put32(&n->cfg_wmask[0x20], ~(VFU_NVME_BAR4_SIZE - 1) & ~0xfu);
	n->cfg_wmask[0x3c] = 0xff;          /* interrupt line */
	wmask16(n, CAP_PM + 4, 0x0003);     /* power state */
	wmask16(n, CAP_MSIX + 2, 0xc000);   /* MSI-X enable, function mask */
	wmask16(n, CAP_EXP + 8, 0x7fff);    /* devctl (not "initiate FLR") */
	wmask16(n, CAP_EXP + 0x10, 0x01ff); /* linkctl */
	wmask16(n, CAP_EXP + 0x28, 0x061f); /* devctl2 */
}

void
vfu_nvme_pci_reset(struct vfu_nvme *n)
{
	/* DEVICE_RESET: back to the power-on state, as a function-level reset would. */
	vfu_nvme_pci_init(n);
}

static int
cfg_access(struct vfu_nvme *n, uint64_t off, uint8_t *buf, uint32_t count, bool write)
{
	if (!write) {
		memcpy(buf, &n->cfg[off], count);
		return 0;
	}
	for (uint32_t i = 0; i < count; i++) {
		uint8_t m = n->cfg_wmask[off + i];

		n->cfg[off + i] = (uint8_t)((n->cfg[off + i] & ~m) | (buf[i] & m));
	}
	return 0;
}

static int
bar4_access(struct vfu_nvme *n, uint64_t off, uint8_t *buf, uint32_t count, bool write)
{
	if (off >= VFU_NVME_PBA_OFFSET) {
		/*
		 * PBA: read-only. We never hold an interrupt back (the client emulates masking in
		 * its copy of the table), so no bit is ever pending here.
		 */
		if (!write) {
			memset(buf, 0, count);
		}
		return 0;
	}
	if (VH_MIN((uint64_t)count, VFU_NVME_PBA_OFFSET - off) != count) {
		return -EINVAL;
	}
	if (write) {
		memcpy(&n->bar4[off], buf, count);
	} else {
		memcpy(buf, &n->bar4[off], count);
	}
	return 0;
}

static int
region_access(void *dev, uint32_t index, uint64_t offset, void *buf, uint32_t count, bool write)
{
	struct vfu_nvme *n = dev;

	switch (index) {
	case VFIO_PCI_BAR0_REGION_INDEX:
		return vfu_nvme_bar0_access(n, offset, buf, count, write);
	case VFIO_PCI_BAR4_REGION_INDEX:
		return bar4_access(n, offset, buf, count, write);
	case VFIO_PCI_CONFIG_REGION_INDEX:
		return cfg_access(n, offset, buf, count, write);
	default:
		return -EINVAL;
	}
}

static int
region_info(void *dev, uint32_t index, struct vfu_region_desc *d)
{
	struct vfu_nvme *n = dev;
	uint32_t rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;

	switch (index) {
	case VFIO_PCI_BAR0_REGION_INDEX:
		d->size = VFU_NVME_BAR0_SIZE;
		d->flags = rw | VFIO_REGION_INFO_FLAG_MMAP;
		d->mmap_fd = n->db_fd;
		d->mmap_offset = 0;
		d->nr_sparse = 1;
		d->sparse[0].offset = VFU_NVME_DB_OFFSET;
		d->sparse[0].size = VFU_NVME_BAR0_SIZE - VFU_NVME_DB_OFFSET;
		return 0;
	case VFIO_PCI_BAR4_REGION_INDEX:
		d->size = VFU_NVME_BAR4_SIZE;
		d->flags = rw;
		return 0;
	case VFIO_PCI_CONFIG_REGION_INDEX:
		d->size = VFU_NVME_CFG_SIZE;
		d->flags = rw;
		return 0;
	case VFIO_PCI_BAR1_REGION_INDEX: /* upper half of BAR0 */
	case VFIO_PCI_BAR2_REGION_INDEX:
	case VFIO_PCI_BAR3_REGION_INDEX:
	case VFIO_PCI_BAR5_REGION_INDEX:
	case VFIO_PCI_ROM_REGION_INDEX:
	case VFIO_PCI_VGA_REGION_INDEX:
		d->size = 0;
		d->flags = 0;
		return 0;
	default:
		return -EINVAL;
	}
}

static void
irq_info(void *dev, uint32_t index, uint32_t *count, uint32_t *flags)
{
	struct vfu_nvme *n = dev;

	switch (index) {
	case VFIO_PCI_MSIX_IRQ_INDEX:
		/*
		 * Not NORESIZE: the client may then (re)assign one vector at a time, instead of
		 * disabling every vector to grow the set (interrupts raised meanwhile would be
		 * lost).
		 */
		*count = n->nvec;
		*flags = VFIO_IRQ_INFO_EVENTFD;
		break;
	case VFIO_PCI_ERR_IRQ_INDEX:
	case VFIO_PCI_REQ_IRQ_INDEX:
		*count = 1;
		*flags = VFIO_IRQ_INFO_EVENTFD;
		break;
	default: /* INTx and MSI: none */
		*count = 0;
		*flags = 0;
		break;
	}
}

/* Queue @fd for closing after the next barrier. */
static void
retire_fd(struct vfu_nvme *n, int fd)
{
	if (fd >= 0) {
		n->closing_fds[n->nclosing++] = fd;
	}
}

static void
barrier_done(struct vfu_nvme *n)
{
	for (unsigned i = 0; i < n->nclosing; i++) {
		close(n->closing_fds[i]);
	}
	n->nclosing = 0;
	if (n->session != NULL) {
		vfu_session_async_done(n->session, 0);
	}
}

/* Replace the fd in @slot; the old one closes after the barrier. */
static void
set_fd(struct vfu_nvme *n, int *slot, int fd)
{
	int old = *slot;

	VH_STORE_REL(*slot, fd); /* pairs with the reactors' VH_LOAD_ACQ in vfu_nvme_irq */
	retire_fd(n, old);
}

static int
irq_set(void *dev, const struct vfio_user_irq_set *set, const uint8_t *bools, int *fds,
        unsigned nfds)
{
	struct vfu_nvme *n = dev;
	int *slots;

	switch (set->index) {
	case VFIO_PCI_MSIX_IRQ_INDEX:
		slots = n->msix_fd;
		break;
	case VFIO_PCI_ERR_IRQ_INDEX:
		slots = &n->err_fd;
		break;
	case VFIO_PCI_REQ_IRQ_INDEX:
		slots = &n->req_fd;
		break;
	default:
		return set->count == 0 ? 0 : -EINVAL; /* INTx/MSI: only "disable all" */
	}
	if (!(set->flags & VFIO_IRQ_SET_ACTION_TRIGGER)) {
		return -EINVAL; /* MSI-X is not maskable through VFIO */
	}
	if (set->flags & VFIO_IRQ_SET_DATA_EVENTFD) {
		for (uint32_t i = 0; i < set->count; i++) {
			int fd = nfds > 0 ? fds[i] : -1;

			if (nfds > 0) {
				fds[i] = -1; /* taken */
			}
			set_fd(n, &slots[set->start + i], fd);
		}
	} else if (set->count == 0) {
		uint32_t count, flags;

		irq_info(n, set->index, &count, &flags);
		for (uint32_t i = 0; i < count; i++) {
			set_fd(n, &slots[i], -1);
		}
	} else {
		/* DATA_NONE / DATA_BOOL with TRIGGER: the client fires the interrupts itself. */
		for (uint32_t i = 0; i < set->count; i++) {
			if ((set->flags & VFIO_IRQ_SET_DATA_NONE) || bools[i]) {
				int fd = VH_LOAD_ACQ(slots[set->start + i]);

				if (fd >= 0) {
					vh_peer_eventfd_signal(fd);
				}
			}
		}
	}
	if (n->nclosing == 0) {
		return 0;
	}
	/* Old fds close once no reactor can be inside a write to them (N4). */
	vfu_nvme_op(n, UINT32_MAX, vfu_rctx_barrier, barrier_done);
	return VFU_ASYNC;
}

void
vfu_nvme_irq(struct vfu_nvme *n, uint16_t iv)
{
	int fd, rc;

	if (iv >= n->nvec) {
		return;
	}
	fd = VH_LOAD_ACQ(n->msix_fd[iv]);
	if (fd < 0) {
		return; /* no vector yet: the guest polls, or enables MSI-X later */
	}
	rc = vh_peer_eventfd_signal(fd);
	if (rc < 0) {
		VH_LOG_RL(VH_LOG_WARN, n->prefix, "interrupt vector %u: %s (client not reading?)",
		          iv, strerror(-rc));
	}
}

void
vfu_nvme_irq_close_all(struct vfu_nvme *n)
{
	for (unsigned i = 0; i < VFU_NVME_MAX_VECTORS; i++) {
		if (n->msix_fd[i] >= 0) {
			close(n->msix_fd[i]);
			n->msix_fd[i] = -1;
		}
	}
	if (n->err_fd >= 0) {
		close(n->err_fd);
		n->err_fd = -1;
	}
	if (n->req_fd >= 0) {
		close(n->req_fd);
		n->req_fd = -1;
	}
}

const struct vfu_dev_ops vfu_nvme_dev_ops = {
        .num_regions = VFIO_PCI_NUM_REGIONS,
        .num_irqs = VFIO_PCI_NUM_IRQS,
        .device_flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET,
        .region_info = region_info,
        .region_access = region_access,
        .irq_info = irq_info,
        .irq_set = irq_set,
        .dma_quiesce = vfu_nvme_dma_quiesce,
        .dma_changed = vfu_nvme_dma_changed,
        .reset = vfu_nvme_device_reset,
        .disconnect = vfu_nvme_disconnect,
};
