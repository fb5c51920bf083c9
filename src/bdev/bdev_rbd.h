/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Ceph RBD back-end ("rbd", SPDK's module name): a bdev on a RADOS block device image, through
 * librbd's asynchronous API. See docs/rbd.md.
 *
 * Rules:
 * - Every function here runs on the control thread (they touch the cluster and bdev registries).
 *   None waits for the network without a bound: connecting, opening, closing and resizing run
 *   on helper threads, and the control thread waits for them at most vh_bdev_rbd_wait_ms()
 *   (then the call fails with -ETIMEDOUT and the operation is undone when it finishes).
 * - A cluster (one rados handle, one set of librados/librbd threads) is shared by the bdevs that
 *   name it; it cannot be unregistered while a bdev uses it.
 * - Resizes reach the guest through the vhost layer: the caller installs a callback
 *   (vh_bdev_rbd_set_resize_cb), called on the control thread after the size of a bdev changed,
 *   whether through vh_bdev_rbd_resize() or because the image was resized elsewhere.
 * - Built only with librbd (meson -Drbd); vh_config.h's VH_HAVE_RBD says whether it was.
 */
#ifndef VH_BDEV_RBD_H
#define VH_BDEV_RBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct vh_bdev;

#define VH_RBD_MODULE "rbd"

/*
 * Client settings applied before the config file and config_param, which may override them:
 * a request that the cluster does not answer fails after RADOS_OSD_OP_TIMEOUT seconds (librados
 * resends it to each new OSD map until then), a monitor command after RADOS_MON_OP_TIMEOUT, and
 * connecting gives up after CLIENT_MOUNT_TIMEOUT.
 */
#define VH_RBD_DEFAULT_OSD_OP_TIMEOUT "60"
#define VH_RBD_DEFAULT_MON_OP_TIMEOUT "30"
#define VH_RBD_DEFAULT_MOUNT_TIMEOUT  "15"
/* How long the control thread waits for a helper (connect, open, resize); see above. */
#define VH_RBD_DEFAULT_WAIT_MS 20000u

/* bdev_rbd_register_cluster's parameters (SPDK's names). */
struct vh_rbd_cluster_opts {
	const char *name;
	const char *user_id;             /* NULL: Ceph's default ("admin") */
	const char *const *config_param; /* NULL, or key, value, ..., NULL: rados_conf_set() */
	const char *config_file;         /* NULL: Ceph's default search path, silently optional */
	const char *key_file;            /* the "keyring" option */
	const char *core_mask;           /* CPUs for librados/librbd threads, as --cpumask */
};

/*
 * Connect to a cluster and keep the handle as @o->name. Returns 0, -EEXIST (name taken),
 * -EINVAL (bad name, core mask, option), -ETIMEDOUT (not connected within the bound), or the
 * -errno of librados (-ENOENT config file, -ENOTCONN...). @err (always NUL-terminated) says
 * what failed in words, for the RPC error.
 */
int vh_bdev_rbd_register_cluster(const struct vh_rbd_cluster_opts *o, char *err, size_t errlen);
/* Drop a cluster. -ENOENT unknown, -EBUSY while a bdev uses it. */
int vh_bdev_rbd_unregister_cluster(const char *name);
/*
 * bdev_rbd_get_clusters_info: @name NULL gives an array of every cluster, else that cluster's
 * object. *out is a new reference. Returns 0, -ENOENT (unknown name), -ENOMEM.
 */
int vh_bdev_rbd_clusters_info(const char *name, json_t **out);
/* save_config: append a bdev_rbd_register_cluster entry per cluster to @config. 0 or -ENOMEM. */
int vh_bdev_rbd_clusters_config(json_t *config);

/* bdev_rbd_create's parameters (SPDK's names). */
struct vh_rbd_bdev_opts {
	const char *name; /* NULL: "Ceph<n>", as SPDK */
	const char *pool_name;
	const char *rbd_name;
	uint32_t block_size;
	const char *cluster_name; /* a registered cluster; NULL: a private handle made from... */
	const char *user_id;      /* ...these two (SPDK's older form) */
	const char *const *config;
	const char *uuid; /* NULL: a random one */
	bool read_only;
};

/*
 * Open the image and register a bdev on it; its name goes to @name_out. Returns 0, -EEXIST,
 * -EINVAL (name, block size, uuid, image smaller than a block), -ENOENT (cluster, pool or image
 * not found), -ETIMEDOUT, or librbd's -errno, with @err saying which.
 */
int vh_bdev_rbd_create(const struct vh_rbd_bdev_opts *o, char *name_out, size_t name_len, char *err,
                       size_t errlen);
/* Delete. -ENODEV unknown, -EINVAL not an rbd bdev, -EBUSY claimed. The image closes later. */
int vh_bdev_rbd_delete(const char *name);
/*
 * Grow the image to @new_size_mib MiB (SPDK's unit) and the bdev with it. Returns 0, -ENODEV,
 * -EINVAL (not an rbd bdev, smaller than now, read-only), -ETIMEDOUT, or librbd's -errno.
 */
int vh_bdev_rbd_resize(const char *name, uint64_t new_size_mib, char *err, size_t errlen);

/* Called on the control thread after an rbd bdev changed size. NULL: nobody is told. */
void vh_bdev_rbd_set_resize_cb(void (*cb)(struct vh_bdev *b));

/*
 * The control thread's bound on helpers, in ms: VH_RBD_DEFAULT_WAIT_MS, or $VHOSTD_RBD_WAIT_MS
 * (read once; for tests that need a short bound).
 */
unsigned vh_bdev_rbd_wait_ms(void);

#endif
