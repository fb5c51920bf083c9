/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Ceph RBD back-end ("rbd", SPDK's module name) over librbd's asynchronous API: bdevs and the
 * life of their images. See docs/rbd.md and bdev_rbd.h; the reactors' data path is in
 * rbd_io.c, clusters and helper threads in rbd_cluster.c.
 *
 * Resize: rbd_update_watch() tells us (on a librbd thread) that the image header changed; we
 * post to the control thread, which reads the size on a helper thread (rbd_get_size may refresh
 * the header from the cluster) and applies it there: the bdev grows, and the resize callback
 * (the vhost layer's config-change notice) runs.
 *
 * Lifetime of an image: a refcount (the registry, the header watch, each posted message or
 * helper). Deleting the bdev drops the registry's; a helper thread unregisters the watch and
 * drops the watch's; the last reference closes the image on a helper thread (rbd_close flushes
 * librbd's cache and releases the exclusive lock: network round trips).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rbd/librbd.h>

#include "bdev/bdev_module.h"
#include "bdev/rbd_internal.h"
#include "core/log.h"

static void (*g_resize_cb)(struct vh_bdev *b);
static struct rbd_disk *g_open;
static unsigned g_name_seq;

/* ---- image lifetime ---- */

static void
disk_free(struct rbd_disk *d)
{
	free(d->pool_name);
	free(d->rbd_name);
	free(d->cluster_name);
	free(d->user_id);
	rbd_config_free(d->config);
	free(d);
}

/* Close what is open (helper thread: these wait for the cluster). */
static void
disk_close_handles(struct rbd_disk *d)
{
	if (d->watching) {
		rbd_update_unwatch(d->image, d->watch_handle);
		d->watching = false;
	}
	if (d->has_image) {
		/* Flushes librbd's cache and hands the exclusive lock back. */
		int rc = rbd_close(d->image);

		if (rc < 0) {
			VH_WARN("rbd", "closing image %s/%s: %s", d->pool_name, d->rbd_name,
			        strerror(-rc));
		}
		d->has_image = false;
	}
	if (d->has_ioctx) {
		rados_ioctx_destroy(d->ioctx);
		d->has_ioctx = false;
	}
}

static void
disk_close(struct rbd_disk *d)
{
	disk_close_handles(d);
	VH_INFO("rbd", "image %s/%s closed", d->pool_name, d->rbd_name);
	rbd_cluster_put(d->cl);
	disk_free(d);
}

static void *
close_thread(void *arg)
{
	struct rbd_disk *d = arg;

	rbd_thread_enter(d->cl);
	disk_close(d);
	rbd_thread_exit();
	return NULL;
}

static void
disk_get(struct rbd_disk *d)
{
	__atomic_add_fetch(&d->refs, 1, __ATOMIC_RELAXED);
}

static void
disk_put(struct rbd_disk *d)
{
	/* acq_rel: every user's accesses happen before the close. */
	if (__atomic_sub_fetch(&d->refs, 1, __ATOMIC_ACQ_REL) != 0) {
		return;
	}
	if (!rbd_may_spawn() || rbd_spawn(close_thread, d) < 0) {
		disk_close(d);
	}
}

/* The watch's reference goes with the watch; unregistering waits for a running callback. */
static void *
unwatch_thread(void *arg)
{
	struct rbd_disk *d = arg;

	rbd_thread_enter(d->cl);
	rbd_update_unwatch(d->image, d->watch_handle);
	d->watching = false;
	disk_put(d);
	rbd_thread_exit();
	return NULL;
}

static void
disk_unwatch_async(struct rbd_disk *d)
{
	if (!d->watching) {
		return;
	}
	if (rbd_spawn(unwatch_thread, d) < 0) {
		rbd_update_unwatch(d->image, d->watch_handle); /* local: waits for a callback */
		d->watching = false;
		disk_put(d);
	}
}

static void
open_list_del(struct rbd_disk *d)
{
	for (struct rbd_disk **pp = &g_open; *pp != NULL; pp = &(*pp)->next_open) {
		if (*pp == d) {
			*pp = d->next_open;
			return;
		}
	}
}

/* The process exits without vh_bdev_fini() (a failed start): close images here, waiting. */
void
rbd_disks_close_all(void)
{
	while (g_open != NULL) {
		struct rbd_disk *d = g_open;

		g_open = d->next_open;
		d->bdev = NULL;
		if (d->watching) {
			rbd_update_unwatch(d->image, d->watch_handle);
			d->watching = false;
			__atomic_sub_fetch(&d->refs, 1, __ATOMIC_ACQ_REL);
		}
		if (__atomic_sub_fetch(&d->refs, 1, __ATOMIC_ACQ_REL) == 0) {
			disk_close(d);
		}
	}
}

/* ---- size changes ---- */

static void
apply_size(struct rbd_disk *d, uint64_t size)
{
	struct vh_bdev *b = d->bdev;
	uint64_t nb = size / b->block_size, old = vh_bdev_num_blocks(b);

	d->size = size;
	if (nb == old) {
		return;
	}
	if (nb < old && vh_bdev_claimed_by(b) != NULL) {
		VH_WARN("rbd",
		        "'%s': image %s/%s shrank from %" PRIu64 " to %" PRIu64
		        " blocks while in use: keeping the old size (I/O past the end fails)",
		        b->name, d->pool_name, d->rbd_name, old, nb);
		return;
	}
	if (nb == 0) {
		VH_WARN("rbd", "'%s': image is now smaller than one block: keeping the old size",
		        b->name);
		return;
	}
	/* Relaxed: readers need an untorn value; a request checked against the old size is still
	 * inside a grown image. */
	__atomic_store_n(&b->num_blocks, nb, __ATOMIC_RELAXED);
	VH_NOTICE("rbd", "'%s': resized from %" PRIu64 " to %" PRIu64 " blocks", b->name, old, nb);
	if (g_resize_cb != NULL) {
		g_resize_cb(b);
	}
}

static void refresh_start(struct rbd_disk *d);

static void *
refresh_thread(void *arg)
{
	struct rbd_disk *d = arg;
	uint64_t size = 0;

	rbd_thread_enter(d->cl);
	d->refresh_rc = rbd_get_size(d->image, &size);
	d->refresh_size = size;
	/* The message carries our reference; at shutdown nobody reads it, so drop it here. */
	if (!rbd_control_post(&d->refresh_node)) {
		disk_put(d);
	}
	rbd_thread_exit();
	return NULL;
}

static void
refresh_done(void *arg)
{
	struct rbd_disk *d = arg;

	d->refreshing = false;
	if (d->bdev != NULL) {
		if (d->refresh_rc < 0) {
			VH_WARN("rbd", "'%s': cannot read the size of %s/%s: %s", d->bdev->name,
			        d->pool_name, d->rbd_name, strerror(-d->refresh_rc));
		} else {
			apply_size(d, d->refresh_size);
		}
		if (d->refresh_again) {
			d->refresh_again = false;
			refresh_start(d);
		}
	}
	disk_put(d);
}

static void
refresh_start(struct rbd_disk *d)
{
	if (d->refreshing) {
		d->refresh_again = true; /* the running read may predate this change */
		return;
	}
	d->refreshing = true;
	disk_get(d);
	if (rbd_spawn(refresh_thread, d) < 0) {
		VH_WARN("rbd", "'%s': no thread to read the new image size", d->bdev->name);
		d->refreshing = false;
		disk_put(d);
	}
}

/* Control thread: the header changed (maybe a resize). */
static void
update_msg(void *arg)
{
	struct rbd_disk *d = arg;

	/* Release: a change after this store posts again. */
	__atomic_store_n(&d->update_posted, 0, __ATOMIC_RELEASE);
	if (d->bdev != NULL) {
		refresh_start(d);
	}
	disk_put(d);
}

/*
 * librbd's thread: only post. The watch's reference keeps @d alive while we run (unwatching
 * waits for us); ours, taken first, ends every path with a release on refs, which orders our
 * accesses before the free for ThreadSanitizer too (librbd's own wait is invisible to it).
 */
static void
watch_cb(void *arg)
{
	struct rbd_disk *d = arg;

	disk_get(d);
	if (__atomic_exchange_n(&d->update_posted, 1, __ATOMIC_ACQ_REL) == 0 &&
	    rbd_control_post(&d->update_node)) {
		return; /* the message carries our reference */
	}
	/* A message is on its way and will read the header afresh, or we are shutting down.
	 * Never the last reference: the watch's is there. */
	__atomic_sub_fetch(&d->refs, 1, __ATOMIC_RELEASE);
}

/* ---- bdev glue (control thread) ---- */

static void
rbd_destruct(struct vh_bdev *b)
{
	struct rbd_disk *d = b->ctx;

	d->bdev = NULL;
	open_list_del(d);
	if (d->cl->bdevs > 0) {
		d->cl->bdevs--;
	}
	VH_INFO("rbd", "'%s': closing image %s/%s", b->name, d->pool_name, d->rbd_name);
	disk_unwatch_async(d);
	disk_put(d);
}

static void
rbd_info_json(struct vh_bdev *b, json_t *driver_specific)
{
	const struct rbd_disk *d = b->ctx;
	json_t *o = json_pack("{s:s, s:s, s:b, s:I, s:I}", "pool_name", d->pool_name, "rbd_name",
	                      d->rbd_name, "read_only", d->read_only, "io_errors",
	                      (json_int_t)__atomic_load_n(&d->io_errors, __ATOMIC_RELAXED),
	                      "io_timeouts",
	                      (json_int_t)__atomic_load_n(&d->io_timeouts, __ATOMIC_RELAXED));

	if (o == NULL) {
		return;
	}
	if (d->cluster_name != NULL) {
		/* SPDK shows the cluster's settings here; and we say which cluster. */
		json_t *c = rbd_cluster_info_json(d->cl);

		json_object_update(o, c);
		json_decref(c);
	} else {
		if (d->user_id != NULL) {
			json_object_set_new(o, "user_id", json_string(d->user_id));
		}
		if (d->config != NULL) {
			json_object_set_new(o, "config", rbd_config_json(d->config));
		}
	}
	json_object_set_new(driver_specific, b->module->name, o);
}

static json_t *
rbd_config_json_entry(struct vh_bdev *b)
{
	const struct rbd_disk *d = b->ctx;
	json_t *p = json_pack("{s:s, s:s, s:s, s:i}", "name", b->name, "pool_name", d->pool_name,
	                      "rbd_name", d->rbd_name, "block_size", (int)b->block_size);

	if (p == NULL) {
		return NULL;
	}
	if (d->user_id != NULL) {
		json_object_set_new(p, "user_id", json_string(d->user_id));
	}
	if (d->config != NULL) {
		json_object_set_new(p, "config", rbd_config_json(d->config));
	}
	if (d->cluster_name != NULL) {
		json_object_set_new(p, "cluster_name", json_string(d->cluster_name));
	}
	json_object_set_new(p, "uuid", json_string(b->uuid));
	/* Only when set: SPDK v23.05 has no such parameter. */
	if (d->read_only) {
		json_object_set_new(p, "read_only", json_true());
	}
	return json_pack("{s:s, s:o}", "method", "bdev_rbd_create", "params", p);
}

static const struct vh_bdev_module rbd_module = {
        .name = VH_RBD_MODULE,
        .channel_create = rbd_channel_create,
        .channel_destroy = rbd_channel_destroy,
        .submit = rbd_submit,
        .poll = rbd_poll,
        .arm = rbd_arm,
        .wake_fd = rbd_wake_fd,
        .destruct = rbd_destruct,
        .info_json = rbd_info_json,
        .config_json = rbd_config_json_entry,
};

/* ---- creation ---- */

struct create_job {
	struct rbd_job j;
	struct rbd_disk *d;
	char err[256];
};

static int
create_run(struct rbd_job *j)
{
	struct create_job *cj = VH_CONTAINER_OF(j, struct create_job, j);
	struct rbd_disk *d = cj->d;
	int rc = 0;

	if (!d->cl->connected) {
		rc = rbd_cluster_connect(d->cl, cj->err, sizeof(cj->err));
		if (rc < 0) {
			return rc;
		}
	}
	rc = rados_ioctx_create(d->cl->rados, d->pool_name, &d->ioctx);
	if (rc < 0) {
		snprintf(cj->err, sizeof(cj->err), "pool '%.64s': %s", d->pool_name,
		         rc == -ENOENT ? "no such pool" : strerror(-rc));
		return rc;
	}
	d->has_ioctx = true;
	rc = d->read_only ? rbd_open_read_only(d->ioctx, d->rbd_name, &d->image, NULL)
	                  : rbd_open(d->ioctx, d->rbd_name, &d->image, NULL);
	if (rc < 0) {
		snprintf(cj->err, sizeof(cj->err), "image '%.64s' in pool '%.64s': %s", d->rbd_name,
		         d->pool_name, rc == -ENOENT ? "no such image" : strerror(-rc));
		goto out_close;
	}
	d->has_image = true;
	rc = rbd_get_size(d->image, &d->size);
	if (rc < 0) {
		snprintf(cj->err, sizeof(cj->err), "size of image '%.64s': %s", d->rbd_name,
		         strerror(-rc));
		goto out_close;
	}
	/* The watch's reference first: its callback may run before we return. */
	disk_get(d);
	rc = rbd_update_watch(d->image, &d->watch_handle, watch_cb, d);
	if (rc < 0) {
		__atomic_sub_fetch(&d->refs, 1, __ATOMIC_RELAXED);
		snprintf(cj->err, sizeof(cj->err), "watching image '%.64s': %s", d->rbd_name,
		         strerror(-rc));
		goto out_close;
	}
	d->watching = true;
	return 0;

out_close:
	disk_close_handles(d);
	return rc;
}

static void
create_abandoned(struct rbd_job *j, int rc)
{
	struct create_job *cj = VH_CONTAINER_OF(j, struct create_job, j);
	struct rbd_disk *d = cj->d;

	VH_NOTICE("rbd", "image %s/%s %s after the RPC gave up: closed", d->pool_name, d->rbd_name,
	          rc == 0 ? "opened" : "failed");
	disk_close(d); /* closes whatever run() left open, and drops the cluster */
	free(cj);
}

static int
dup_str(char **dst, const char *src)
{
	*dst = NULL;
	if (src != NULL && (*dst = strdup(src)) == NULL) {
		return -ENOMEM;
	}
	return 0;
}

/* The disk (refs 1, not open) on its cluster, or NULL with *rc and @err. */
static struct rbd_disk *
disk_new(const struct vh_rbd_bdev_opts *o, int *rc, char *err, size_t errlen)
{
	struct rbd_disk *d = calloc(1, sizeof(*d));
	bool ok = true;

	*rc = -ENOMEM;
	if (d == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->refs = 1;
	d->read_only = o->read_only;
	d->config = rbd_config_dup(o->config, &ok);
	if (!ok || dup_str(&d->pool_name, o->pool_name) < 0 ||
	    dup_str(&d->rbd_name, o->rbd_name) < 0 ||
	    dup_str(&d->cluster_name, o->cluster_name) < 0 ||
	    dup_str(&d->user_id, o->user_id) < 0) {
		snprintf(err, errlen, "out of memory");
		disk_free(d);
		return NULL;
	}
	vh_msg_node_init(&d->update_node, update_msg, d);
	vh_msg_node_init(&d->refresh_node, refresh_done, d);
	if (o->cluster_name != NULL) {
		d->cl = rbd_cluster_find(o->cluster_name);
		if (d->cl == NULL) {
			snprintf(err, errlen, "cluster '%.64s' is not registered", o->cluster_name);
			*rc = -ENOENT;
			disk_free(d);
			return NULL;
		}
		rbd_cluster_get(d->cl);
	} else {
		/* SPDK's older form: a handle of the bdev's own, from user_id and config. */
		struct vh_rbd_cluster_opts co = {.user_id = o->user_id, .config_param = o->config};

		d->cl = rbd_cluster_new(&co, true, rc, err, errlen);
		if (d->cl == NULL) {
			disk_free(d);
			return NULL;
		}
	}
	*rc = 0;
	return d;
}

static int
pick_name(const char *want, char *out, size_t len)
{
	if (want != NULL) {
		return vh_strlcpy_checked(out, want, len) < 0 ? -EINVAL : 0;
	}
	/* SPDK's default: Ceph0, Ceph1, ... */
	do {
		snprintf(out, len, "Ceph%u", g_name_seq++);
	} while (vh_bdev_find(out) != NULL);
	return 0;
}

static int
check_opts(const struct vh_rbd_bdev_opts *o, char *name, size_t name_len, char *err, size_t errlen)
{
	if (pick_name(o->name, name, name_len) < 0 || vh_name_check(name) < 0) {
		snprintf(err, errlen,
		         "invalid name '%.64s': use 1-%d characters of [A-Za-z0-9_.:-]",
		         o->name ? o->name : "", VH_NAME_MAX - 1);
		return -EINVAL;
	}
	if (vh_bdev_find(name) != NULL) {
		snprintf(err, errlen, "name '%s' already exists", name);
		return -EEXIST;
	}
	if (o->pool_name == NULL || o->rbd_name == NULL) {
		snprintf(err, errlen, "pool_name and rbd_name are required");
		return -EINVAL;
	}
	if (!VH_IS_POW2(o->block_size) || o->block_size < 512 || o->block_size > 65536) {
		snprintf(err, errlen, "block_size %u must be a power of two from 512 to 65536",
		         o->block_size);
		return -EINVAL;
	}
	if (o->uuid != NULL && !vh_uuid_valid(o->uuid)) {
		snprintf(err, errlen, "invalid uuid '%.64s'", o->uuid);
		return -EINVAL;
	}
	return 0;
}

/* Make the bdev for an open disk. On failure the disk is closed (asynchronously). */
static int
register_disk(struct rbd_disk *d, const struct vh_rbd_bdev_opts *o, const char *name, char *err,
              size_t errlen)
{
	struct vh_bdev *b = calloc(1, sizeof(*b));
	int rc = -ENOMEM;

	if (b == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out_drop;
	}
	snprintf(b->name, sizeof(b->name), "%s", name);
	b->module = &rbd_module;
	b->ctx = d;
	b->block_size = o->block_size;
	b->num_blocks = d->size / o->block_size;
	b->io_types = (1u << VH_BDEV_IO_READ) | (1u << VH_BDEV_IO_FLUSH);
	if (!d->read_only) {
		b->io_types |= (1u << VH_BDEV_IO_WRITE) | (1u << VH_BDEV_IO_DISCARD) |
		               (1u << VH_BDEV_IO_WRITE_ZEROES);
	}
	/* librbd may cache writes (rbd_cache, and pool or image overrides we cannot see): the
	 * guest must send flushes. Claiming a cache that is not there costs a cheap flush. */
	b->write_cache = true;
	if (o->uuid != NULL) {
		for (size_t i = 0; i < sizeof(b->uuid) - 1 && o->uuid[i] != '\0'; i++) {
			b->uuid[i] = (char)(o->uuid[i] >= 'A' && o->uuid[i] <= 'F' ? o->uuid[i] + 32
			                                                           : o->uuid[i]);
		}
	}
	if (b->num_blocks == 0) {
		snprintf(err, errlen, "image '%s' (%" PRIu64 " bytes) is smaller than one block",
		         d->rbd_name, d->size);
		rc = -EINVAL;
		goto out_free;
	}
	d->bdev = b;
	rc = vh_bdev_register(b);
	if (rc < 0) {
		snprintf(err, errlen, "cannot register bdev '%s': %s", name, strerror(-rc));
		d->bdev = NULL;
		goto out_free;
	}
	d->cl->bdevs++;
	d->next_open = g_open;
	g_open = d;
	return 0;

out_free:
	free(b);
out_drop:
	disk_unwatch_async(d);
	disk_put(d);
	return rc;
}

int
vh_bdev_rbd_create(const struct vh_rbd_bdev_opts *o, char *name_out, size_t name_len, char *err,
                   size_t errlen)
{
	char name[VH_NAME_MAX];
	struct create_job *cj;
	struct rbd_disk *d;
	bool gave_up;
	int rc;

	err[0] = '\0';
	rc = check_opts(o, name, sizeof(name), err, errlen);
	if (rc < 0) {
		return rc;
	}
	rbd_module_init();
	d = disk_new(o, &rc, err, errlen);
	if (d == NULL) {
		return rc;
	}
	cj = calloc(1, sizeof(*cj));
	if (cj == NULL) {
		snprintf(err, errlen, "out of memory");
		rbd_cluster_put(d->cl);
		disk_free(d);
		return -ENOMEM;
	}
	cj->j.run = create_run;
	cj->j.abandoned = create_abandoned;
	cj->j.cl = d->cl;
	cj->d = d;
	rc = rbd_job_wait(&cj->j, &gave_up);
	if (gave_up) {
		snprintf(err, errlen,
		         "image %s/%s not open within %u ms (it is closed if it opens later)",
		         o->pool_name, o->rbd_name, vh_bdev_rbd_wait_ms());
		return rc;
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s", cj->err[0] ? cj->err : strerror(-rc));
		free(cj);
		rbd_cluster_put(d->cl);
		disk_free(d);
		return rc;
	}
	free(cj);
	rc = register_disk(d, o, name, err, errlen);
	if (rc < 0) {
		return rc;
	}
	VH_NOTICE("rbd", "bdev '%s' on image %s/%s%s%s: %" PRIu64 " bytes%s", name, o->pool_name,
	          o->rbd_name, o->cluster_name ? " of cluster " : "",
	          o->cluster_name ? o->cluster_name : "", d->size,
	          o->read_only ? ", read-only" : "");
	snprintf(name_out, name_len, "%s", name);
	return 0;
}

int
vh_bdev_rbd_delete(const char *name)
{
	return vh_bdev_delete(name, VH_RBD_MODULE);
}

/* ---- resize ---- */

struct resize_job {
	struct rbd_job j;
	struct rbd_disk *d;
	uint64_t bytes;
};

static int
resize_run(struct rbd_job *j)
{
	struct resize_job *rj = VH_CONTAINER_OF(j, struct resize_job, j);

	return rbd_resize(rj->d->image, rj->bytes);
}

static void
resize_abandoned(struct rbd_job *j, int rc)
{
	struct resize_job *rj = VH_CONTAINER_OF(j, struct resize_job, j);

	/* A resize that succeeded late reaches the bdev through the header watch. */
	VH_NOTICE("rbd", "image %s/%s: late resize %s", rj->d->pool_name, rj->d->rbd_name,
	          rc == 0 ? "done" : strerror(-rc));
	disk_put(rj->d);
	free(rj);
}

int
vh_bdev_rbd_resize(const char *name, uint64_t new_size_mib, char *err, size_t errlen)
{
	struct vh_bdev *b = vh_bdev_find(name);
	struct resize_job *rj;
	struct rbd_disk *d;
	uint64_t bytes;
	bool gave_up;
	int rc;

	err[0] = '\0';
	if (b == NULL) {
		snprintf(err, errlen, "bdev '%.64s' not found", name);
		return -ENODEV;
	}
	if (b->module != &rbd_module) {
		snprintf(err, errlen, "bdev '%.64s' is a %s bdev, not rbd", name, b->module->name);
		return -EINVAL;
	}
	d = b->ctx;
	if (VH_MUL_OVERFLOW(new_size_mib, UINT64_C(1) << 20, &bytes)) {
		snprintf(err, errlen, "new_size %" PRIu64 " MiB is too large", new_size_mib);
		return -EINVAL;
	}
	/* SPDK compares in whole MiB: the image may only grow. */
	if (new_size_mib < vh_bdev_size(b) >> 20) {
		snprintf(err, errlen,
		         "new_size %" PRIu64 " MiB is smaller than the current %" PRIu64 " MiB",
		         new_size_mib, vh_bdev_size(b) >> 20);
		return -EINVAL;
	}
	if (d->read_only) {
		snprintf(err, errlen, "bdev '%s' is read-only", name);
		return -EINVAL;
	}
	rj = calloc(1, sizeof(*rj));
	if (rj == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rj->j.run = resize_run;
	rj->j.abandoned = resize_abandoned;
	rj->j.cl = d->cl;
	rj->d = d;
	rj->bytes = bytes;
	disk_get(d);
	rc = rbd_job_wait(&rj->j, &gave_up);
	if (gave_up) {
		snprintf(err, errlen, "resize not done within %u ms (it may still happen)",
		         vh_bdev_rbd_wait_ms());
		return rc;
	}
	free(rj);
	if (rc < 0) {
		snprintf(err, errlen, "rbd_resize: %s", strerror(-rc));
	} else if (d->bdev != NULL) {
		apply_size(d, bytes);
	}
	disk_put(d);
	return rc;
}

void
vh_bdev_rbd_set_resize_cb(void (*cb)(struct vh_bdev *b))
{
	g_resize_cb = cb;
}
