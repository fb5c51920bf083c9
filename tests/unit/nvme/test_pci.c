/* SPDX-License-Identifier: BSD-3-Clause */
/* PCI helpers: address parsing, sysfs binding against a fake sysfs tree, MOCK device, DMA. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nvme_test.h"

static char root[PATH_MAX];

static void
mkfile(const char *rel, const char *content)
{
	char path[PATH_MAX + 64];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
}

static void
mkdirs(const char *rel)
{
	char cmd[PATH_MAX + 64];

	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/%s'", root, rel);
	assert_int_equal(system(cmd), 0);
}

static char *
slurp(const char *rel)
{
	static char buf[256];
	char path[PATH_MAX + 64];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	f = fopen(path, "r");
	if (f == NULL) {
		return NULL;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int
setup_sysfs(void **state)
{
	char link[PATH_MAX + 64], target[PATH_MAX + 64];

	snprintf(root, sizeof(root), "/tmp/vh-nvme-sysfs-XXXXXX");
	assert_non_null(mkdtemp(root));
	mkdirs("bus/pci/devices/0000:00:04.0");
	mkdirs("bus/pci/devices/0000:00:05.0");
	mkdirs("bus/pci/drivers/nvme");
	mkdirs("bus/pci/drivers/uio_pci_generic");
	mkfile("bus/pci/devices/0000:00:04.0/driver_override", "(null)\n");
	mkfile("bus/pci/devices/0000:00:05.0/driver_override", "(null)\n");
	mkfile("bus/pci/drivers/nvme/unbind", "");
	mkfile("bus/pci/drivers/uio_pci_generic/bind", "");
	/* 04.0 is held by the kernel nvme driver, 05.0 already by uio_pci_generic. */
	snprintf(link, sizeof(link), "%s/bus/pci/devices/0000:00:04.0/driver", root);
	snprintf(target, sizeof(target), "%s/bus/pci/drivers/nvme", root);
	assert_int_equal(symlink(target, link), 0);
	snprintf(link, sizeof(link), "%s/bus/pci/devices/0000:00:05.0/driver", root);
	snprintf(target, sizeof(target), "%s/bus/pci/drivers/uio_pci_generic", root);
	assert_int_equal(symlink(target, link), 0);
	vh_nvme_sysfs_root = root;
	return 0;
}

static int
teardown_sysfs(void **state)
{
	char cmd[PATH_MAX + 64];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
	vh_nvme_sysfs_root = "/sys";
	return 0;
}

static void
test_parse_bdf(void **state)
{
	char out[16];

	assert_int_equal(vh_nvme_pci_parse_bdf("0000:00:04.0", out, sizeof(out)), 0);
	assert_string_equal(out, "0000:00:04.0");
	assert_int_equal(vh_nvme_pci_parse_bdf("00:1f.7", out, sizeof(out)), 0);
	assert_string_equal(out, "0000:00:1f.7");
	assert_int_equal(vh_nvme_pci_parse_bdf("0001:AB:00.1", out, sizeof(out)), 0);
	assert_string_equal(out, "0001:ab:00.1");
	assert_int_equal(vh_nvme_pci_parse_bdf("00:20.0", out, sizeof(out)), -EINVAL);
	assert_int_equal(vh_nvme_pci_parse_bdf("00:04.8", out, sizeof(out)), -EINVAL);
	assert_int_equal(vh_nvme_pci_parse_bdf("00:04.0x", out, sizeof(out)), -EINVAL);
	assert_int_equal(vh_nvme_pci_parse_bdf("nvme0", out, sizeof(out)), -EINVAL);
	assert_int_equal(vh_nvme_pci_parse_bdf("00:04.0", out, 8), -EINVAL);
}

static void
test_sysfs_bind(void **state)
{
	char drv[64];

	assert_int_equal(vh_nvme_pci_driver("0000:00:04.0", drv, sizeof(drv)), 0);
	assert_string_equal(drv, "nvme");
	assert_int_equal(vh_nvme_pci_driver("0000:00:09.0", drv, sizeof(drv)), -ENODEV);
	/* No such device. */
	assert_int_equal(vh_nvme_pci_bind("0000:00:09.0", "uio_pci_generic", false), -ENODEV);
	/* Already bound to the wanted driver: nothing to write. */
	assert_int_equal(vh_nvme_pci_bind("0000:00:05.0", "uio_pci_generic", false), 0);
	assert_string_equal(slurp("bus/pci/devices/0000:00:05.0/driver_override"), "(null)\n");
	/* The kernel nvme driver holds it: refused without force, nothing touched. */
	assert_int_equal(vh_nvme_pci_bind("0000:00:04.0", "uio_pci_generic", false), -EBUSY);
	assert_string_equal(slurp("bus/pci/devices/0000:00:04.0/driver_override"), "(null)\n");
	assert_string_equal(slurp("bus/pci/drivers/nvme/unbind"), "");
	/* Driver not loaded. */
	assert_int_equal(vh_nvme_pci_bind("0000:00:04.0", "vfio-pci", true), -ENOENT);
	/*
	 * With force: override, unbind from nvme, bind. A fake sysfs does not move the driver
	 * link, so the final check reports the failure; the writes are what we verify.
	 */
	assert_int_equal(vh_nvme_pci_bind("0000:00:04.0", "uio_pci_generic", true), -EIO);
	assert_string_equal(slurp("bus/pci/devices/0000:00:04.0/driver_override"),
	                    "uio_pci_generic");
	assert_string_equal(slurp("bus/pci/drivers/nvme/unbind"), "0000:00:04.0");
	assert_string_equal(slurp("bus/pci/drivers/uio_pci_generic/bind"), "0000:00:04.0");
}

/*
 * One process per device: with the device's sysfs directory flock()ed by another owner (the
 * worker a live upgrade would replace), opening it fails with -EBUSY before anything is
 * written, even with force (uio_pci_generic itself lets a second process map BAR0 and reset a
 * controller that is in use). Once the owner lets go, the open goes on (and fails later here,
 * on the fake hugetlbfs), and a failed open leaves the lock free.
 */
static void
test_device_lock(void **state)
{
	struct vh_nvme_dev_opts o = {
	        .mode = VH_NVME_ACCESS_UIO, .force = true, .hugepage_dir = root};
	struct vh_nvme_dev *dev = NULL;
	char dir[PATH_MAX + 64];
	int owner;

	snprintf(dir, sizeof(dir), "%s/bus/pci/devices/0000:00:04.0", root);
	owner = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(owner >= 0);
	assert_int_equal(flock(owner, LOCK_EX | LOCK_NB), 0);
	assert_int_equal(vh_nvme_dev_open("0000:00:04.0", &o, &dev), -EBUSY);
	assert_null(dev);
	assert_string_equal(slurp("bus/pci/devices/0000:00:04.0/driver_override"), "(null)\n");
	assert_string_equal(slurp("bus/pci/drivers/nvme/unbind"), "");
	o.mode = VH_NVME_ACCESS_VFIO;
	assert_int_equal(vh_nvme_dev_open("0000:00:04.0", &o, &dev), -EBUSY);
	assert_string_equal(slurp("bus/pci/drivers/nvme/unbind"), "");
	/* No such device: -ENODEV, as before. */
	assert_int_equal(vh_nvme_dev_open("0000:00:09.0", &o, &dev), -ENODEV);

	assert_int_equal(flock(owner, LOCK_UN), 0);
	o.mode = VH_NVME_ACCESS_UIO;
	assert_int_equal(vh_nvme_dev_open("0000:00:04.0", &o, &dev), -ENOENT);
	assert_null(dev);
	assert_int_equal(flock(owner, LOCK_EX | LOCK_NB), 0);
	close(owner);
}

/*
 * Live upgrade: a suspended device (released by the old worker) is taken back by
 * vh_nvme_dev_resume() only when nobody else holds it: -EBUSY while the candidate has it,
 * leaving the device suspended (BAR0 still the all-ones stub) and nothing written; once the
 * candidate lets go, the resume goes on (and fails later here, on the fake hugetlbfs) and a
 * failed resume leaves the lock free and the device suspended.
 */
static void
test_resume_lock(void **state)
{
	struct vh_nvme_dev *dev = calloc(1, sizeof(*dev));
	char dir[PATH_MAX + 64];
	void *stub;
	int owner;

	assert_non_null(dev);
	stub = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(stub != MAP_FAILED);
	memset(stub, 0xff, 8192);
	dev->mode = VH_NVME_ACCESS_UIO;
	dev->force = true;
	strcpy(dev->bdf, "0000:00:04.0");
	snprintf(dev->hugepage_dir, sizeof(dev->hugepage_dir), "%s", root);
	dev->container_fd = dev->group_fd = dev->device_fd = -1;
	dev->config_fd = dev->resource_fd = dev->lock_fd = -1;
	dev->bar0 = stub;
	dev->bar0_len = 8192;
	dev->suspended = true;

	snprintf(dir, sizeof(dir), "%s/bus/pci/devices/0000:00:04.0", root);
	owner = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(owner >= 0);
	assert_int_equal(flock(owner, LOCK_EX | LOCK_NB), 0);
	assert_int_equal(vh_nvme_dev_resume(dev), -EBUSY);
	assert_true(dev->suspended);
	assert_ptr_equal(dev->bar0, stub);
	assert_int_equal(vh_nvme_mmio_read32(dev, VH_NVME_REG_CSTS), 0xffffffffu);
	assert_int_equal(dev->lock_fd, -1);
	assert_string_equal(slurp("bus/pci/drivers/nvme/unbind"), "");

	assert_int_equal(flock(owner, LOCK_UN), 0);
	assert_int_equal(vh_nvme_dev_resume(dev), -ENOENT);
	assert_true(dev->suspended);
	assert_ptr_equal(dev->bar0, stub);
	assert_int_equal(flock(owner, LOCK_EX | LOCK_NB), 0);
	close(owner);
	vh_nvme_dev_close(dev);
}

static void
test_mock_dev(void **state)
{
	struct vh_nvme_dev_opts o = {.mode = VH_NVME_ACCESS_MOCK};
	struct vh_nvme_dev *dev;
	struct vh_nvme_dma dma;
	struct mock_ctrlr *m = mock_create();
	uint64_t iova;

	/* MOCK needs its register ops. */
	assert_int_equal(vh_nvme_dev_open(NULL, &o, &dev), -EINVAL);
	o.mock_ops = &mock_ops;
	o.mock_ctx = m;
	assert_int_equal(vh_nvme_dev_open(NULL, &o, &dev), 0);
	/* 64-bit registers go low half first. */
	vh_nvme_mmio_write64(dev, VH_NVME_REG_ASQ, 0x1122334455667788ull);
	assert_int_equal(m->asq, 0x1122334455667788ull);
	assert_int_equal(vh_nvme_mmio_read64(dev, VH_NVME_REG_ASQ), 0x1122334455667788ull);
	assert_int_equal(VH_NVME_CAP_MQES(vh_nvme_mmio_read64(dev, VH_NVME_REG_CAP)), 1023);
	/* DMA memory: page aligned, zeroed, rounded up; IOVA == VA in MOCK. */
	assert_int_equal(vh_nvme_dma_alloc(dev, 100, &dma), 0);
	assert_int_equal((uintptr_t)dma.vaddr % 4096, 0);
	assert_int_equal(dma.size, 4096);
	assert_int_equal(dma.iova, (uintptr_t)dma.vaddr);
	assert_int_equal(((uint8_t *)dma.vaddr)[4095], 0);
	vh_nvme_dma_free(dev, &dma);
	assert_null(dma.vaddr);
	assert_int_equal(vh_nvme_dma_alloc(dev, 0, &dma), -EINVAL);
	assert_int_equal(vh_nvme_dev_translate(dev, &iova, 8, &iova), 8);
	vh_nvme_dev_close(dev);
	vh_nvme_dev_close(NULL);
	mock_destroy(m);
}

static void
test_mem_register(void **state)
{
	static uint8_t region[4][8192] __attribute__((aligned(4096)));

	assert_int_equal(vh_nvme_mem_register(region[0] + 1, 4096), -EINVAL);
	assert_int_equal(vh_nvme_mem_register(region[0], 100), -EINVAL);
	assert_int_equal(vh_nvme_mem_register(region[0], 0), -EINVAL);
	assert_int_equal(vh_nvme_mem_register((void *)(UINTPTR_MAX & ~4095ul), 8192), -EINVAL);
	assert_int_equal(vh_nvme_mem_register(region[0], 8192), 0);
	assert_int_equal(vh_nvme_mem_register(region[1], 8192), 0);
	assert_int_equal(vh_nvme_mem_unregister(region[2], 8192), -ENOENT);
	assert_int_equal(vh_nvme_mem_unregister(region[0], 8192), 0);
	assert_int_equal(vh_nvme_mem_unregister(region[0], 8192), -ENOENT);
	assert_int_equal(vh_nvme_mem_unregister(region[1], 8192), 0);
	/* The table is bounded. */
	{
		static uint8_t many[65][4096] __attribute__((aligned(4096)));
		int ret = 0;
		unsigned i;

		for (i = 0; i < 65 && ret == 0; i++) {
			ret = vh_nvme_mem_register(many[i], 4096);
		}
		assert_int_equal(ret, -ENOSPC);
		while (i-- > 0) {
			vh_nvme_mem_unregister(many[i], 4096);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse_bdf),
	        cmocka_unit_test_setup_teardown(test_sysfs_bind, setup_sysfs, teardown_sysfs),
	        cmocka_unit_test_setup_teardown(test_device_lock, setup_sysfs, teardown_sysfs),
	        cmocka_unit_test_setup_teardown(test_resume_lock, setup_sysfs, teardown_sysfs),
	        cmocka_unit_test(test_mock_dev),
	        cmocka_unit_test(test_mem_register),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
