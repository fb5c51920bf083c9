/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * PCI device access: VFIO type1, uio_pci_generic and the in-process MOCK (see pci.h).
 *
 * Trust: the device is semi-trusted (its registers and completions are checked by ctrlr.c and
 * qpair.c); sysfs and the kernel are trusted. Nothing here parses guest input.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "bdev/nvme/pci.h"
#include "bdev/nvme/spec.h"
#include "core/log.h"

#define COMP "nvme"

/* PCI configuration space (PCI Local Bus spec 3.0 §6.2.2): the Command register. */
#define PCI_CFG_COMMAND      0x04
#define PCI_CMD_MEMORY       (1u << 1)
#define PCI_CMD_BUS_MASTER   (1u << 2)
#define PCI_CMD_INTX_DISABLE (1u << 10)

#define PAGEMAP_PFN_MASK ((1ull << 55) - 1)
#define PAGEMAP_PRESENT  (1ull << 63)

const char *vh_nvme_sysfs_root = "/sys";

struct vh_nvme_uio_chunk {
	void *va;
	uint64_t pa;
	size_t size;
	size_t used;
	struct vh_nvme_uio_chunk *next;
};

/* VFIO: a live DMA buffer, so that a resumed device maps it into its new container. */
struct vh_nvme_dma_rec {
	uintptr_t va;
	size_t len;
	struct vh_nvme_dma_rec *next;
};

/* Registered guest memory. A slot is stable while seq is even (seqlock, writer: control). */
#define MEM_SLOTS 64
struct mem_slot {
	uint32_t seq;
	uintptr_t vaddr;
	size_t len;
	size_t hp_size;    /* UIO: huge page size, 0 = not hugepage-backed (bounce) */
	uint64_t *hp_phys; /* UIO: physical address of each huge page */
};
static struct mem_slot mem_slots[MEM_SLOTS];
static struct vh_nvme_dev *open_devs;
static unsigned uio_file_seq;

/* ---- sysfs ---------------------------------------------------------------------------------- */

static int
sysfs_write(const char *path, const char *val)
{
	ssize_t n;
	int fd, ret = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		return -errno;
	}
	n = write(fd, val, strlen(val));
	if (n < 0) {
		ret = -errno;
	} else if ((size_t)n != strlen(val)) {
		ret = -EIO;
	}
	close(fd);
	return ret;
}

static int
sysfs_read(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return -errno;
	}
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0) {
		return -errno;
	}
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) {
		buf[--n] = '\0';
	}
	return 0;
}

static void
dev_path(char *buf, size_t size, const char *bdf, const char *leaf)
{
	snprintf(buf, size, "%s/bus/pci/devices/%s%s%s", vh_nvme_sysfs_root, bdf,
	         leaf[0] ? "/" : "", leaf);
}

int
vh_nvme_pci_parse_bdf(const char *in, char *out, size_t size)
{
	unsigned dom = 0, bus, slot, fn;
	int end = -1;

	/* Hex digits and separators only: sscanf's %x would also take "0x" and signs. */
	if (in[strspn(in, "0123456789abcdefABCDEF:.")] != '\0') {
		return -EINVAL;
	}
	if (sscanf(in, "%x:%x:%x.%x%n", &dom, &bus, &slot, &fn, &end) != 4 ||
	    (size_t)end != strlen(in)) {
		dom = 0;
		end = -1;
		if (sscanf(in, "%x:%x.%x%n", &bus, &slot, &fn, &end) != 3 ||
		    (size_t)end != strlen(in)) {
			return -EINVAL;
		}
	}
	if (dom > 0xffff || bus > 0xff || slot > 0x1f || fn > 7 || size < 13) {
		return -EINVAL;
	}
	snprintf(out, size, "%04x:%02x:%02x.%x", dom, bus, slot, fn);
	return 0;
}

int
vh_nvme_pci_driver(const char *bdf, char *buf, size_t size)
{
	char path[PATH_MAX], link[PATH_MAX];
	const char *base;
	ssize_t n;

	dev_path(path, sizeof(path), bdf, "");
	if (access(path, F_OK) != 0) {
		return -ENODEV;
	}
	dev_path(path, sizeof(path), bdf, "driver");
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0) {
		if (errno == ENOENT) {
			buf[0] = '\0';
			return 0;
		}
		return -errno;
	}
	link[n] = '\0';
	base = strrchr(link, '/');
	base = base ? base + 1 : link;
	return vh_strlcpy_checked(buf, base, size);
}

/* Without driver_override (kernels < 3.16) the driver learns the vendor:device pair instead. */
static int
bind_new_id(const char *bdf, const char *driver)
{
	char path[PATH_MAX], vendor[16], device[16], id[40];
	int ret;

	dev_path(path, sizeof(path), bdf, "vendor");
	ret = sysfs_read(path, vendor, sizeof(vendor));
	if (ret == 0) {
		dev_path(path, sizeof(path), bdf, "device");
		ret = sysfs_read(path, device, sizeof(device));
	}
	if (ret < 0) {
		return ret;
	}
	snprintf(id, sizeof(id), "%s %s", vendor, device);
	snprintf(path, sizeof(path), "%s/bus/pci/drivers/%s/new_id", vh_nvme_sysfs_root, driver);
	ret = sysfs_write(path, id);
	/* EEXIST: the id is already known, so the write to bind below does the work. */
	return ret == -EEXIST ? 0 : ret;
}

static int
bind_unbind_current(const char *bdf, const char *cur)
{
	char path[PATH_MAX];
	int ret;

	if (cur[0] == '\0') {
		return 0;
	}
	dev_path(path, sizeof(path), bdf, "driver/unbind");
	ret = sysfs_write(path, bdf);
	if (ret < 0) {
		VH_ERR(COMP, "%s: unbinding from %s failed: %s", bdf, cur, strerror(-ret));
	}
	return ret;
}

int
vh_nvme_pci_bind(const char *bdf, const char *driver, bool force)
{
	char path[PATH_MAX], cur[64];
	bool have_override;
	int ret;

	ret = vh_nvme_pci_driver(bdf, cur, sizeof(cur));
	if (ret < 0) {
		VH_ERR(COMP, "%s: no such PCI device under %s/bus/pci/devices", bdf,
		       vh_nvme_sysfs_root);
		return ret;
	}
	if (strcmp(cur, driver) == 0) {
		return 0;
	}
	if (strcmp(cur, "nvme") == 0 && !force) {
		VH_ERR(COMP,
		       "%s: bound to the kernel nvme driver (its namespaces may be in use); "
		       "refusing to unbind without force",
		       bdf);
		return -EBUSY;
	}
	snprintf(path, sizeof(path), "%s/bus/pci/drivers/%s", vh_nvme_sysfs_root, driver);
	if (access(path, F_OK) != 0) {
		VH_ERR(COMP, "%s: driver %s is not loaded (modprobe %s)", bdf, driver, driver);
		return -ENOENT;
	}
	dev_path(path, sizeof(path), bdf, "driver_override");
	have_override = access(path, F_OK) == 0;
	if (have_override) {
		ret = sysfs_write(path, driver);
		if (ret < 0) {
			VH_ERR(COMP, "%s: writing driver_override failed: %s", bdf, strerror(-ret));
			return ret;
		}
	}
	ret = bind_unbind_current(bdf, cur);
	if (ret == 0 && !have_override) {
		ret = bind_new_id(bdf, driver);
	}
	if (ret < 0) {
		return ret;
	}
	snprintf(path, sizeof(path), "%s/bus/pci/drivers/%s/bind", vh_nvme_sysfs_root, driver);
	ret = sysfs_write(path, bdf);
	/* new_id may have bound it already: then bind says EBUSY/ENODEV, and the check decides. */
	if (vh_nvme_pci_driver(bdf, cur, sizeof(cur)) == 0 && strcmp(cur, driver) == 0) {
		VH_INFO(COMP, "%s: bound to %s", bdf, driver);
		return 0;
	}
	VH_ERR(COMP, "%s: binding to %s failed (%s); now bound to '%s'", bdf, driver,
	       ret < 0 ? strerror(-ret) : "driver did not take it", cur);
	return ret < 0 ? ret : -EIO;
}

/* ---- VFIO ----------------------------------------------------------------------------------- */

static int
vfio_map(int container_fd, uintptr_t vaddr, size_t len)
{
	struct vfio_iommu_type1_dma_map map = {
	        .argsz = sizeof(map),
	        .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
	        .vaddr = vaddr,
	        .iova = vaddr, /* IOVA == VA: no per-device translation table needed */
	        .size = len,
	};

	if (ioctl(container_fd, VFIO_IOMMU_MAP_DMA, &map) != 0) {
		return -errno;
	}
	return 0;
}

static void
vfio_unmap(int container_fd, uintptr_t vaddr, size_t len)
{
	struct vfio_iommu_type1_dma_unmap unmap = {
	        .argsz = sizeof(unmap),
	        .iova = vaddr,
	        .size = len,
	};

	if (ioctl(container_fd, VFIO_IOMMU_UNMAP_DMA, &unmap) != 0) {
		VH_WARN(COMP, "VFIO unmap of 0x%" PRIxPTR "+%zu failed: %s", vaddr, len,
		        strerror(errno));
	}
}

static int
vfio_group_number(const char *bdf, int *group)
{
	char path[PATH_MAX], link[PATH_MAX];
	const char *base;
	ssize_t n;

	dev_path(path, sizeof(path), bdf, "iommu_group");
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0) {
		VH_ERR(COMP, "%s: no IOMMU group (IOMMU off? use uio mode or intel_iommu=on)", bdf);
		return -ENOTSUP;
	}
	link[n] = '\0';
	base = strrchr(link, '/');
	*group = atoi(base ? base + 1 : link);
	return 0;
}

static int
vfio_open_container(struct vh_nvme_dev *dev, int group)
{
	struct vfio_group_status st = {.argsz = sizeof(st)};
	char path[64];
	int type;

	dev->container_fd = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (dev->container_fd < 0) {
		VH_ERR(COMP, "%s: /dev/vfio/vfio: %s", dev->bdf, strerror(errno));
		return -errno;
	}
	if (ioctl(dev->container_fd, VFIO_GET_API_VERSION) != VFIO_API_VERSION) {
		return -ENOTSUP;
	}
	type = ioctl(dev->container_fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) > 0
	               ? VFIO_TYPE1v2_IOMMU
	               : VFIO_TYPE1_IOMMU;
	snprintf(path, sizeof(path), "/dev/vfio/%d", group);
	dev->group_fd = open(path, O_RDWR | O_CLOEXEC);
	if (dev->group_fd < 0) {
		VH_ERR(COMP, "%s: %s: %s", dev->bdf, path, strerror(errno));
		return -errno;
	}
	if (ioctl(dev->group_fd, VFIO_GROUP_GET_STATUS, &st) != 0) {
		return -errno;
	}
	if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		VH_ERR(COMP,
		       "%s: IOMMU group %d is not viable: bind every device in it to vfio-pci",
		       dev->bdf, group);
		return -EBUSY;
	}
	if (ioctl(dev->group_fd, VFIO_GROUP_SET_CONTAINER, &dev->container_fd) != 0 ||
	    ioctl(dev->container_fd, VFIO_SET_IOMMU, type) != 0) {
		VH_ERR(COMP, "%s: VFIO container setup: %s", dev->bdf, strerror(errno));
		return -errno;
	}
	return 0;
}

static int
vfio_enable_bus_master(struct vh_nvme_dev *dev)
{
	struct vfio_region_info reg = {.argsz = sizeof(reg), .index = VFIO_PCI_CONFIG_REGION_INDEX};
	uint16_t cmd;

	if (ioctl(dev->device_fd, VFIO_DEVICE_GET_REGION_INFO, &reg) != 0) {
		return -errno;
	}
	if (pread(dev->device_fd, &cmd, 2, (off_t)(reg.offset + PCI_CFG_COMMAND)) != 2) {
		return -EIO;
	}
	/* Bus mastering lets the device DMA; INTx stays off because we poll. */
	cmd |= PCI_CMD_MEMORY | PCI_CMD_BUS_MASTER | PCI_CMD_INTX_DISABLE;
	if (pwrite(dev->device_fd, &cmd, 2, (off_t)(reg.offset + PCI_CFG_COMMAND)) != 2) {
		return -EIO;
	}
	return 0;
}

static int
vfio_map_bar0(struct vh_nvme_dev *dev)
{
	struct vfio_region_info reg = {.argsz = sizeof(reg), .index = VFIO_PCI_BAR0_REGION_INDEX};
	void *p;

	if (ioctl(dev->device_fd, VFIO_DEVICE_GET_REGION_INFO, &reg) != 0) {
		return -errno;
	}
	if (!(reg.flags & VFIO_REGION_INFO_FLAG_MMAP) || reg.size < 0x2000) {
		VH_ERR(COMP, "%s: BAR0 cannot be mmapped (flags 0x%x size %llu)", dev->bdf,
		       reg.flags, (unsigned long long)reg.size);
		return -ENOTSUP;
	}
	p = mmap(NULL, reg.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev->device_fd,
	         (off_t)reg.offset);
	if (p == MAP_FAILED) {
		return -errno;
	}
	dev->bar0 = p;
	dev->bar0_len = reg.size;
	return 0;
}

static int
vfio_map_registered(struct vh_nvme_dev *dev)
{
	int ret;

	for (unsigned i = 0; i < MEM_SLOTS; i++) {
		if (mem_slots[i].len == 0) {
			continue;
		}
		ret = vfio_map(dev->container_fd, mem_slots[i].vaddr, mem_slots[i].len);
		if (ret < 0) {
			VH_ERR(COMP, "%s: mapping registered memory: %s", dev->bdf, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

static int
vfio_open(struct vh_nvme_dev *dev, const struct vh_nvme_dev_opts *opts)
{
	int group, ret;

	ret = vh_nvme_pci_bind(dev->bdf, "vfio-pci", opts->force);
	if (ret < 0) {
		return ret;
	}
	ret = vfio_group_number(dev->bdf, &group);
	if (ret < 0) {
		return ret;
	}
	ret = vfio_open_container(dev, group);
	if (ret < 0) {
		return ret;
	}
	dev->device_fd = ioctl(dev->group_fd, VFIO_GROUP_GET_DEVICE_FD, dev->bdf);
	if (dev->device_fd < 0) {
		VH_ERR(COMP, "%s: VFIO_GROUP_GET_DEVICE_FD: %s", dev->bdf, strerror(errno));
		return -errno;
	}
	ret = vfio_map_bar0(dev);
	if (ret == 0) {
		ret = vfio_enable_bus_master(dev);
	}
	if (ret == 0) {
		ret = vfio_map_registered(dev);
	}
	return ret;
}

/* ---- UIO ------------------------------------------------------------------------------------ */

static int
virt_to_phys(const void *va, uint64_t *pa)
{
	uint64_t ent;
	int fd, ret = 0;

	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return -errno;
	}
	if (pread(fd, &ent, 8, (off_t)((uintptr_t)va / 4096 * 8)) != 8) {
		ret = -EIO;
	} else if (!(ent & PAGEMAP_PRESENT) || (ent & PAGEMAP_PFN_MASK) == 0) {
		/* Without CAP_SYS_ADMIN the kernel reports PFN 0. */
		ret = -EACCES;
	} else {
		*pa = (ent & PAGEMAP_PFN_MASK) * 4096 + (uintptr_t)va % 4096;
	}
	close(fd);
	return ret;
}

static int
uio_enable_bus_master(struct vh_nvme_dev *dev)
{
	char path[PATH_MAX];
	uint16_t cmd;

	dev_path(path, sizeof(path), dev->bdf, "config");
	dev->config_fd = open(path, O_RDWR | O_CLOEXEC);
	if (dev->config_fd < 0) {
		VH_ERR(COMP, "%s: %s: %s", dev->bdf, path, strerror(errno));
		return -errno;
	}
	if (pread(dev->config_fd, &cmd, 2, PCI_CFG_COMMAND) != 2) {
		return -EIO;
	}
	cmd |= PCI_CMD_MEMORY | PCI_CMD_BUS_MASTER | PCI_CMD_INTX_DISABLE;
	if (pwrite(dev->config_fd, &cmd, 2, PCI_CFG_COMMAND) != 2) {
		return -EIO;
	}
	return 0;
}

static int
uio_map_bar0(struct vh_nvme_dev *dev)
{
	char path[PATH_MAX];
	struct stat st;
	void *p;

	dev_path(path, sizeof(path), dev->bdf, "resource0");
	dev->resource_fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
	if (dev->resource_fd < 0) {
		VH_ERR(COMP, "%s: %s: %s", dev->bdf, path, strerror(errno));
		return -errno;
	}
	if (fstat(dev->resource_fd, &st) != 0) {
		return -errno;
	}
	if (st.st_size < 0x2000) {
		VH_ERR(COMP, "%s: BAR0 is %lld bytes, too small for NVMe", dev->bdf,
		       (long long)st.st_size);
		return -EINVAL;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, dev->resource_fd, 0);
	if (p == MAP_FAILED) {
		return -errno;
	}
	dev->bar0 = p;
	dev->bar0_len = (size_t)st.st_size;
	return 0;
}

static int
uio_open(struct vh_nvme_dev *dev, const struct vh_nvme_dev_opts *opts)
{
	const char *dir = opts->hugepage_dir ? opts->hugepage_dir : "/dev/hugepages";
	struct statfs sfs;
	int ret;

	if (statfs(dir, &sfs) != 0 || (uint32_t)sfs.f_type != (uint32_t)HUGETLBFS_MAGIC) {
		VH_ERR(COMP, "%s: %s is not a hugetlbfs mount (mount -t hugetlbfs none %s)",
		       dev->bdf, dir, dir);
		return -ENOENT;
	}
	ret = vh_strlcpy_checked(dev->hugepage_dir, dir, sizeof(dev->hugepage_dir));
	if (ret < 0) {
		return ret;
	}
	ret = vh_nvme_pci_bind(dev->bdf, "uio_pci_generic", opts->force);
	if (ret < 0) {
		return ret;
	}
	ret = uio_map_bar0(dev);
	if (ret == 0) {
		ret = uio_enable_bus_master(dev);
	}
	return ret;
}

static int
uio_new_chunk(struct vh_nvme_dev *dev, struct vh_nvme_uio_chunk **out)
{
	struct vh_nvme_uio_chunk *c;
	char path[PATH_MAX + 64];
	struct statfs sfs;
	void *p;
	int fd, ret;

	snprintf(path, sizeof(path), "%s/vhostd-nvme-%d-%u", dev->hugepage_dir, (int)getpid(),
	         uio_file_seq++);
	fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		return -errno;
	}
	unlink(path); /* the mapping keeps the page; nothing is left behind on a crash */
	if (fstatfs(fd, &sfs) != 0 || ftruncate(fd, sfs.f_bsize) != 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	p = mmap(NULL, sfs.f_bsize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		VH_ERR(COMP, "%s: no free huge page in %s", dev->bdf, dev->hugepage_dir);
		return -ENOMEM;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		munmap(p, sfs.f_bsize);
		return -ENOMEM;
	}
	c->va = p;
	c->size = sfs.f_bsize;
	memset(p, 0, c->size); /* fault it in before asking for its frame */
	ret = virt_to_phys(p, &c->pa);
	if (ret < 0) {
		VH_ERR(COMP, "%s: no physical address from pagemap (need CAP_SYS_ADMIN): %s",
		       dev->bdf, strerror(-ret));
		munmap(p, c->size);
		free(c);
		return ret;
	}
	c->next = dev->chunks;
	dev->chunks = c;
	*out = c;
	return 0;
}

/* UIO memory is a bump allocator over huge pages; it is returned when the device closes. */
static int
uio_dma_alloc(struct vh_nvme_dev *dev, size_t size, struct vh_nvme_dma *dma)
{
	struct vh_nvme_uio_chunk *c;
	int ret;

	for (c = dev->chunks; c != NULL; c = c->next) {
		if (c->size - c->used >= size) {
			break;
		}
	}
	if (c == NULL) {
		ret = uio_new_chunk(dev, &c);
		if (ret < 0) {
			return ret;
		}
		if (size > c->size) {
			return -EINVAL;
		}
	}
	dma->vaddr = (uint8_t *)c->va + c->used;
	dma->iova = c->pa + c->used;
	dma->size = size;
	memset(dma->vaddr, 0, size);
	c->used += size;
	return 0;
}

/* ---- common --------------------------------------------------------------------------------- */

int
vh_nvme_dma_alloc(struct vh_nvme_dev *dev, size_t size, struct vh_nvme_dma *dma)
{
	struct vh_nvme_dma_rec *rec;
	void *p;
	int ret;

	memset(dma, 0, sizeof(*dma));
	if (size == 0 || size > (1u << 30)) {
		return -EINVAL;
	}
	size = (size + VH_NVME_PAGE_SIZE - 1) & ~(size_t)(VH_NVME_PAGE_SIZE - 1);
	switch (dev->mode) {
	case VH_NVME_ACCESS_MOCK:
		p = aligned_alloc(VH_NVME_PAGE_SIZE, size);
		if (p == NULL) {
			return -ENOMEM;
		}
		memset(p, 0, size);
		*dma = (struct vh_nvme_dma){p, (uintptr_t)p, size, p, size};
		return 0;
	case VH_NVME_ACCESS_VFIO:
		p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		         MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (p == MAP_FAILED) {
			return -ENOMEM;
		}
		rec = malloc(sizeof(*rec));
		ret = rec == NULL ? -ENOMEM : vfio_map(dev->container_fd, (uintptr_t)p, size);
		if (ret < 0) {
			free(rec);
			munmap(p, size);
			return ret;
		}
		*rec = (struct vh_nvme_dma_rec){(uintptr_t)p, size, dev->dmas};
		dev->dmas = rec;
		*dma = (struct vh_nvme_dma){p, (uintptr_t)p, size, p, size};
		return 0;
	case VH_NVME_ACCESS_UIO:
		return uio_dma_alloc(dev, size, dma);
	}
	return -EINVAL;
}

void
vh_nvme_dma_free(struct vh_nvme_dev *dev, struct vh_nvme_dma *dma)
{
	if (dma->map_base != NULL) {
		if (dev->mode == VH_NVME_ACCESS_MOCK) {
			free(dma->map_base);
		} else if (dev->mode == VH_NVME_ACCESS_VFIO) {
			for (struct vh_nvme_dma_rec **pp = &dev->dmas; *pp != NULL;
			     pp = &(*pp)->next) {
				if ((*pp)->va == (uintptr_t)dma->map_base) {
					struct vh_nvme_dma_rec *rec = *pp;

					*pp = rec->next;
					free(rec);
					break;
				}
			}
			if (dev->container_fd >= 0) {
				vfio_unmap(dev->container_fd, (uintptr_t)dma->map_base,
				           dma->map_len);
			}
			munmap(dma->map_base, dma->map_len);
		}
	}
	memset(dma, 0, sizeof(*dma));
}

/*
 * One process per device. VFIO refuses a second opener of the group, but uio_pci_generic and
 * the sysfs resource files do not: a live upgrade's candidate replaying the config would map
 * BAR0 and reset the controller under the worker that still serves from it. A non-blocking
 * flock() on the device's sysfs directory, held until vh_nvme_dev_close() (or our death, which
 * releases it), makes the second opener fail before it touches the device.
 */
static int
lock_device(struct vh_nvme_dev *dev)
{
	char path[PATH_MAX];

	dev_path(path, sizeof(path), dev->bdf, "");
	dev->lock_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dev->lock_fd < 0) {
		VH_ERR(COMP, "%s: %s: %s", dev->bdf, path, strerror(errno));
		return errno == ENOENT ? -ENODEV : -errno;
	}
	if (flock(dev->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		int err = errno;

		VH_ERR(COMP, "%s: %s", dev->bdf,
		       err == EWOULDBLOCK ? "in use by another process (another vhostd, or the one "
		                            "a live upgrade would replace)"
		                          : strerror(err));
		return err == EWOULDBLOCK ? -EBUSY : -err;
	}
	return 0;
}

int
vh_nvme_dev_open(const char *bdf, const struct vh_nvme_dev_opts *opts, struct vh_nvme_dev **out)
{
	struct vh_nvme_dev *dev;
	int ret = 0;

	dev = calloc(1, sizeof(*dev));
	if (dev == NULL) {
		return -ENOMEM;
	}
	dev->mode = opts->mode;
	dev->force = opts->force;
	dev->container_fd = dev->group_fd = dev->device_fd = -1;
	dev->config_fd = dev->resource_fd = dev->lock_fd = -1;
	if (opts->mode == VH_NVME_ACCESS_MOCK) {
		if (opts->mock_ops == NULL || opts->mock_ops->read32 == NULL ||
		    opts->mock_ops->write32 == NULL) {
			ret = -EINVAL;
			goto out_free;
		}
		dev->mock = opts->mock_ops;
		dev->mock_ctx = opts->mock_ctx;
		*out = dev;
		return 0;
	}
	ret = vh_nvme_pci_parse_bdf(bdf, dev->bdf, sizeof(dev->bdf));
	if (ret < 0) {
		goto out_free;
	}
	ret = lock_device(dev);
	if (ret < 0) {
		goto out_close;
	}
	ret = opts->mode == VH_NVME_ACCESS_VFIO ? vfio_open(dev, opts) : uio_open(dev, opts);
	if (ret < 0) {
		goto out_close;
	}
	dev->next = open_devs;
	open_devs = dev;
	*out = dev;
	return 0;

out_close:
	vh_nvme_dev_close(dev);
	return ret;
out_free:
	free(dev);
	return ret;
}

/* Close every fd of @dev, the lock last: the next owner may start the moment it closes. */
static void
close_fds(struct vh_nvme_dev *dev)
{
	int *fds[] = {&dev->device_fd, &dev->group_fd,    &dev->container_fd,
	              &dev->config_fd, &dev->resource_fd, &dev->lock_fd};

	/* Closing the container drops every IOMMU mapping, which unpins the memory. */
	for (unsigned i = 0; i < VH_ARRAY_SIZE(fds); i++) {
		if (*fds[i] >= 0) {
			close(*fds[i]);
			*fds[i] = -1;
		}
	}
}

static void
dev_unlink(struct vh_nvme_dev *dev)
{
	struct vh_nvme_dev **pp;

	for (pp = &open_devs; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == dev) {
			*pp = dev->next;
			return;
		}
	}
}

void
vh_nvme_dev_close(struct vh_nvme_dev *dev)
{
	struct vh_nvme_uio_chunk *c;

	if (dev == NULL) {
		return;
	}
	dev_unlink(dev);
	if (dev->bar0 != NULL) {
		munmap((void *)dev->bar0, dev->bar0_len);
	}
	while ((c = dev->chunks) != NULL) {
		dev->chunks = c->next;
		munmap(c->va, c->size);
		free(c);
	}
	while (dev->dmas != NULL) {
		struct vh_nvme_dma_rec *rec = dev->dmas;

		dev->dmas = rec->next;
		free(rec); /* the buffers themselves went with their owners' dma_free */
	}
	close_fds(dev);
	free(dev);
}

int
vh_nvme_dev_suspend(struct vh_nvme_dev *dev)
{
	void *stub;

	if (dev->suspended || dev->mode == VH_NVME_ACCESS_MOCK) {
		dev->suspended = true;
		return 0;
	}
	stub = mmap(NULL, dev->bar0_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
	            0);
	if (stub == MAP_FAILED) {
		return -ENOMEM;
	}
	memset(stub, 0xff, dev->bar0_len);
	munmap((void *)dev->bar0, dev->bar0_len);
	dev->bar0 = stub;
	dev_unlink(dev); /* guest memory registered meanwhile is mapped on resume */
	close_fds(dev);
	dev->suspended = true;
	VH_INFO(COMP, "%s: released (suspended)", dev->bdf);
	return 0;
}

/* VFIO, resuming: every DMA buffer into the new container, at its old IOVA (== VA). */
static int
vfio_map_dmas(struct vh_nvme_dev *dev)
{
	for (struct vh_nvme_dma_rec *r = dev->dmas; r != NULL; r = r->next) {
		int ret = vfio_map(dev->container_fd, r->va, r->len);

		if (ret < 0) {
			VH_ERR(COMP, "%s: re-mapping DMA memory: %s", dev->bdf, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

int
vh_nvme_dev_resume(struct vh_nvme_dev *dev)
{
	struct vh_nvme_dev_opts o = {.mode = dev->mode, .force = dev->force};
	volatile uint8_t *stub = dev->bar0;
	size_t stub_len = dev->bar0_len;
	char dir[PATH_MAX];
	int ret;

	if (!dev->suspended || dev->mode == VH_NVME_ACCESS_MOCK) {
		dev->suspended = false;
		return 0;
	}
	memcpy(dir, dev->hugepage_dir, sizeof(dir));
	o.hugepage_dir = dir[0] ? dir : NULL;
	dev->bar0 = NULL;
	ret = lock_device(dev);
	if (ret == 0) {
		ret = dev->mode == VH_NVME_ACCESS_VFIO ? vfio_open(dev, &o) : uio_open(dev, &o);
	}
	if (ret == 0 && dev->mode == VH_NVME_ACCESS_VFIO) {
		ret = vfio_map_dmas(dev);
	}
	if (ret < 0) {
		if (dev->bar0 != NULL) {
			munmap((void *)dev->bar0, dev->bar0_len);
		}
		dev->bar0 = stub;
		dev->bar0_len = stub_len;
		close_fds(dev);
		return ret;
	}
	munmap((void *)stub, stub_len);
	dev->next = open_devs;
	open_devs = dev;
	dev->suspended = false;
	VH_INFO(COMP, "%s: taken back", dev->bdf);
	return 0;
}

/* ---- registered memory ---------------------------------------------------------------------- */

/* Huge page size of the mapping holding @va, from /proc/self/smaps; 0 if not hugepage-backed. */
static size_t
smaps_page_size(uintptr_t va)
{
	unsigned long lo, hi, kb;
	bool in = false;
	size_t ret = 0;
	char line[512];
	FILE *f;

	f = fopen("/proc/self/smaps", "re");
	if (f == NULL) {
		return 0;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in = va >= lo && va < hi;
		} else if (in && sscanf(line, "KernelPageSize: %lu kB", &kb) == 1) {
			ret = kb * 1024 > 4096 ? kb * 1024 : 0;
			break;
		}
	}
	fclose(f);
	return ret;
}

/* UIO: resolve every huge page of the region, or leave it as bounce-only (hp_size 0). */
static void
uio_resolve_region(struct mem_slot *s)
{
	size_t hp = smaps_page_size(s->vaddr), n;
	uint64_t *phys;

	if (hp == 0 || s->vaddr % hp != 0 || s->len % hp != 0) {
		return;
	}
	n = s->len / hp;
	phys = calloc(n, sizeof(*phys));
	if (phys == NULL) {
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (virt_to_phys((void *)(s->vaddr + i * hp), &phys[i]) < 0) {
			free(phys);
			return;
		}
	}
	s->hp_phys = phys;
	s->hp_size = hp;
}

static int
vfio_map_all(uintptr_t va, size_t len)
{
	struct vh_nvme_dev *d, *u;
	int ret;

	for (d = open_devs; d != NULL; d = d->next) {
		if (d->mode != VH_NVME_ACCESS_VFIO) {
			continue;
		}
		ret = vfio_map(d->container_fd, va, len);
		if (ret < 0) {
			VH_ERR(COMP, "%s: VFIO map of guest memory failed: %s", d->bdf,
			       strerror(-ret));
			for (u = open_devs; u != d; u = u->next) {
				if (u->mode == VH_NVME_ACCESS_VFIO) {
					vfio_unmap(u->container_fd, va, len);
				}
			}
			return ret;
		}
	}
	return 0;
}

int
vh_nvme_mem_register(void *vaddr, size_t len)
{
	uintptr_t va = (uintptr_t)vaddr;
	struct mem_slot *s = NULL;
	uintptr_t end;
	int ret;

	if (len == 0 || va % 4096 != 0 || len % 4096 != 0 || VH_ADD_OVERFLOW(va, len, &end)) {
		return -EINVAL;
	}
	for (unsigned i = 0; i < MEM_SLOTS; i++) {
		if (mem_slots[i].len == 0 && s == NULL) {
			s = &mem_slots[i];
		}
	}
	if (s == NULL) {
		return -ENOSPC;
	}
	ret = vfio_map_all(va, len);
	if (ret < 0) {
		return ret;
	}
	/* Odd seq: readers skip the slot until the release store below (pairs with slot_read). */
	VH_STORE_REL(s->seq, s->seq + 1);
	VH_WRITE_ONCE(s->vaddr, va);
	VH_WRITE_ONCE(s->hp_size, 0);
	VH_WRITE_ONCE(s->len, len);
	uio_resolve_region(s);
	VH_STORE_REL(s->seq, s->seq + 1);
	return 0;
}

int
vh_nvme_mem_unregister(void *vaddr, size_t len)
{
	struct vh_nvme_dev *d;

	for (unsigned i = 0; i < MEM_SLOTS; i++) {
		struct mem_slot *s = &mem_slots[i];

		if (s->len != len || s->vaddr != (uintptr_t)vaddr) {
			continue;
		}
		for (d = open_devs; d != NULL; d = d->next) {
			if (d->mode == VH_NVME_ACCESS_VFIO) {
				vfio_unmap(d->container_fd, s->vaddr, s->len);
			}
		}
		VH_STORE_REL(s->seq, s->seq + 1); /* pairs with the acquire in slot_read() */
		VH_WRITE_ONCE(s->len, 0);
		free(s->hp_phys);
		s->hp_phys = NULL;
		s->hp_size = 0;
		VH_STORE_REL(s->seq, s->seq + 1);
		return 0;
	}
	return -ENOENT;
}

/* Seqlock read of the slot holding @va: copies it to *out. False if no slot holds @va. */
static bool
slot_find(uintptr_t va, struct mem_slot *out)
{
	for (unsigned i = 0; i < MEM_SLOTS; i++) {
		struct mem_slot *s = &mem_slots[i];
		uint32_t seq;

		do {
			seq = VH_LOAD_ACQ(s->seq); /* pairs with the release stores on update */
			out->vaddr = VH_READ_ONCE(s->vaddr);
			out->len = VH_READ_ONCE(s->len);
			out->hp_size = VH_READ_ONCE(s->hp_size);
			out->hp_phys = VH_READ_ONCE(s->hp_phys);
			VH_SMP_RMB(); /* the field loads above complete before re-reading seq */
		} while ((seq & 1) != 0 || VH_READ_ONCE(s->seq) != seq);
		if (out->len != 0 && va >= out->vaddr && va - out->vaddr < out->len) {
			return true;
		}
	}
	return false;
}

int64_t
vh_nvme_dev_translate(void *arg, const void *vaddr, size_t len, uint64_t *iova)
{
	struct vh_nvme_dev *dev = arg;
	uintptr_t va = (uintptr_t)vaddr;
	struct mem_slot s;
	size_t off, n;

	if (dev->mode == VH_NVME_ACCESS_MOCK) {
		if (dev->mock->translate != NULL) {
			return dev->mock->translate(dev->mock_ctx, vaddr, len, iova);
		}
		*iova = va;
		return (int64_t)len;
	}
	if (!slot_find(va, &s)) {
		return -EFAULT;
	}
	off = va - s.vaddr;
	n = VH_MIN(len, s.len - off);
	if (dev->mode == VH_NVME_ACCESS_VFIO) {
		*iova = va;
		return (int64_t)n;
	}
	if (s.hp_size == 0) {
		return -EFAULT; /* UIO and not hugepage-backed: the caller bounces */
	}
	*iova = s.hp_phys[off / s.hp_size] + off % s.hp_size;
	return (int64_t)VH_MIN(n, s.hp_size - off % s.hp_size);
}
