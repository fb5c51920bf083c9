/* SPDX-License-Identifier: BSD-3-Clause */
/* Stubs for the file back-ends called by src/rpc/methods_file.c (RPC unit tests). */
#include "bdev/nvme/bdev_nvme.h"
#include <errno.h>
#include <stdio.h>

#include "bdev/bdev_file.h"
#include "bdev/nvme/pci.h"
#include "vhost/vhost.h"

int
vh_bdev_uring_create_ex(const char *name, const char *filename, const struct vh_bdev_file_opts *o,
                        char *err, size_t errlen)
{
	(void)name;
	(void)o;
	snprintf(err, errlen, "cannot access '%s': stubbed", filename);
	return -ENOENT;
}

int
vh_bdev_aio_create_ex(const char *name, const char *filename, const struct vh_bdev_file_opts *o,
                      char *err, size_t errlen)
{
	return vh_bdev_uring_create_ex(name, filename, o, err, errlen);
}

int
vh_bdev_file_rescan(const char *name)
{
	(void)name;
	return -ENODEV;
}

int
vh_vhost_bdev_resized(struct vh_bdev *b)
{
	(void)b;
	return 0;
}

/* User-space NVMe: no controller exists in these tests. */
int
vh_bdev_nvme_attach(const char *name, const char *traddr, enum vh_nvme_access mode,
                    const struct vh_bdev_nvme_opts *opts, json_t **bdevs)
{
	return -ENODEV;
}

int
vh_bdev_nvme_detach(const char *name)
{
	return -ENODEV;
}

int
vh_bdev_nvme_get_controllers(const char *name, json_t **out)
{
	if (name != NULL) {
		return -ENODEV;
	}
	*out = json_array();
	return 0;
}

int
vh_nvme_access_parse(const char *s, enum vh_nvme_access *out)
{
	return -EINVAL;
}

enum vh_nvme_access
vh_nvme_access_auto(const char *traddr)
{
	return (enum vh_nvme_access)0;
}

int
vh_nvme_pci_parse_bdf(const char *in, char *out, size_t size)
{
	unsigned dom = 0, bus, dev, fn;

	if (sscanf(in, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) != 4 &&
	    sscanf(in, "%x:%x.%x", &bus, &dev, &fn) != 3) {
		return -EINVAL;
	}
	snprintf(out, size, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
	return 0;
}
