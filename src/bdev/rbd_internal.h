/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Private to the rbd back-end (rbd.c: bdevs and images; rbd_io.c: the data path; rbd_cluster.c:
 * clusters, helper threads).
 *
 * Threads (docs/rbd.md):
 * - control thread: the registries, RPC entry points, size changes, and every refcount's first
 *   and last user in normal operation;
 * - reactors: rbd_aio_* submissions and completions through their channel (rbd_io.c);
 * - librbd's threads: completion and header-watch callbacks, which only post messages;
 * - helper threads (rbd_spawn): everything that waits for the cluster (connect, open, close,
 *   get size, resize, shutdown), so the control thread never does.
 */
#ifndef VH_BDEV_RBD_INTERNAL_H
#define VH_BDEV_RBD_INTERNAL_H

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

#include "bdev/bdev.h"
#include "bdev/bdev_rbd.h"
#include "core/msg.h"

struct rbd_cluster {
	char name[VH_NAME_MAX]; /* "" for a bdev's private handle */
	bool is_private;
	char *user_id;
	char **config; /* key, value, ..., NULL (config_param, or a private handle's config) */
	char *config_file;
	char *key_file;
	char *core_mask;
	cpu_set_t cpus; /* where its librados/librbd threads run, when pin */
	bool pin;
	rados_t rados; /* set by rbd_cluster_connect(), on a helper thread */
	bool connected;
	char fsid[40];
	uint64_t instance_id;
	int refs;       /* atomic: the registry, each bdev, each helper using the handle */
	unsigned bdevs; /* control thread: bdevs on it */
	struct rbd_cluster *next;
};

/* An open image (rbd.c), what its channels (rbd_io.c) use of it included. */
struct rbd_disk {
	struct vh_bdev *bdev;   /* control thread; NULL once destructed */
	struct rbd_cluster *cl; /* one reference */
	char *pool_name;
	char *rbd_name;
	char *cluster_name; /* as given (NULL: a private handle) */
	char *user_id;      /* as given, for save_config */
	char **config;      /* as given, for save_config */
	bool read_only;
	rados_ioctx_t ioctx;
	bool has_ioctx;
	rbd_image_t image;
	bool has_image;
	uint64_t watch_handle;
	bool watching;
	uint64_t size; /* bytes; control thread (the last size applied) */
	int refs;      /* atomic */
	/* The header watch posts update_node; update_posted is set until it ran. */
	struct vh_msg_node update_node;
	int update_posted;
	/* A size read on a helper; control thread, except the result fields (helper, then post). */
	struct vh_msg_node refresh_node;
	bool refreshing;
	bool refresh_again;
	int refresh_rc;
	uint64_t refresh_size;
	/* Reactors, relaxed atomics. */
	uint64_t io_errors;
	uint64_t io_timeouts;
	struct rbd_disk *next_open; /* control thread: images open for a registered bdev */
};

/*
 * The data path (rbd_io.c), the module's channel callbacks: create/destroy/submit/poll/arm/
 * wake_fd with the contracts of bdev_module.h (reactor thread owning the channel).
 */
void *rbd_channel_create(struct vh_bdev *b);
void rbd_channel_destroy(void *ch);
int rbd_submit(void *ch, struct vh_bdev_io *io);
int rbd_poll(void *ch);
int rbd_arm(void *ch);
int rbd_wake_fd(void *ch);

/* A NULL-terminated key, value list, copied. NULL in, NULL out; *ok false on ENOMEM. */
char **rbd_config_dup(const char *const *config, bool *ok);
void rbd_config_free(char **config);
/* {key: value, ...} of a list (new reference, or NULL on ENOMEM). */
json_t *rbd_config_json(char *const *config);

/*
 * A new cluster object, not connected, one reference (the caller's). NULL with @err filled in
 * (-EINVAL for a bad core mask, -ENOMEM) through *rc.
 */
struct rbd_cluster *rbd_cluster_new(const struct vh_rbd_cluster_opts *o, bool is_private, int *rc,
                                    char *err, size_t errlen);
/* Registered cluster @name, or NULL. Control thread. */
struct rbd_cluster *rbd_cluster_find(const char *name);
void rbd_cluster_get(struct rbd_cluster *cl);
/* The last put shuts the handle down (on a helper thread when called on the control thread). */
void rbd_cluster_put(struct rbd_cluster *cl);
/*
 * Create the handle, configure it (our defaults, then the file, config_param and key file) and
 * connect. Helper thread, after rbd_thread_enter(@cl). Returns 0 or -errno with @err filled in.
 */
int rbd_cluster_connect(struct rbd_cluster *cl, char *err, size_t errlen);
/* The cluster's JSON (get_clusters_info) and its register_cluster params. New references. */
json_t *rbd_cluster_info_json(const struct rbd_cluster *cl);

/*
 * Helper threads. rbd_spawn runs fn(arg) on a new detached thread (counted, so the process
 * waits a bounded time for them at exit); 0 or -errno. rbd_thread_enter pins the calling helper
 * to @cl's CPUs, so threads librados/librbd create from it inherit them.
 */
int rbd_spawn(void *(*fn)(void *), void *arg);
void rbd_thread_enter(const struct rbd_cluster *cl);
/* Every helper thread calls this last (after its last touch of anything shared). */
void rbd_thread_exit(void);
/*
 * Whether a blocking step (closing an image, shutting a handle down) should go to a new helper
 * thread: yes on the control thread; no on a helper (it may wait itself) or once the process
 * exits (nobody would wait for the thread).
 */
bool rbd_may_spawn(void);

/*
 * A blocking operation the control thread waits for with a bound. run() executes on a helper
 * thread; if the control thread gave up (-ETIMEDOUT), abandoned() runs there afterwards with
 * run()'s result and must undo and free everything, the job included. Otherwise the control
 * thread owns the job again once rbd_job_wait() returns.
 */
struct rbd_job {
	int (*run)(struct rbd_job *j);
	void (*abandoned)(struct rbd_job *j, int rc);
	const struct rbd_cluster *cl; /* whose CPUs the helper runs on; may be NULL */
	/* Private. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	bool gave_up;
	int rc;
};

/*
 * Start @j and wait up to vh_bdev_rbd_wait_ms(). Returns run()'s result; or -ETIMEDOUT with
 * *gave_up set, and then the job belongs to the helper (do not touch it again).
 */
int rbd_job_wait(struct rbd_job *j, bool *gave_up);

/*
 * Post @n to the control thread from any thread, unless the module is shutting down (the
 * control loop may be gone then): returns true if posted.
 */
bool rbd_control_post(struct vh_msg_node *n);

/*
 * rbd.c: close every image still open for a bdev, waiting for the cluster. Only for the exit
 * path that never ran vh_bdev_fini() (a failed start). Main thread, at exit.
 */
void rbd_disks_close_all(void);

/* First use of the module (hooks, exit handler). Control thread. */
void rbd_module_init(void);
/* From vh_bdev_fini(): no more control posts. */
void rbd_module_fini_posts(void);

#endif
