/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Ceph clusters for the rbd back-end (bdev_rbd.h): the registry of named rados handles that
 * bdevs share, their configuration and connection, and the helper threads that run everything
 * which waits for the cluster, so neither the control thread nor a reactor ever does.
 *
 * A cluster is refcounted: the registry holds one reference, each bdev one, each helper that
 * uses the handle one. The last reference shuts the handle down (rados_shutdown joins librados'
 * threads and may wait for a monitor, so never on the control thread).
 *
 * Threat model: parameters come from the RPC socket's owner (an administrator); option names and
 * values go to librados, which validates them. A config file, key file or monitor address is
 * the administrator's choice; we only report librados' errors back.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bdev/bdev_module.h"
#include "bdev/rbd_internal.h"
#include "core/evloop.h"
#include "core/log.h"
#include "core/reactor.h"

/*
 * At exit, how long to wait for helpers still closing images (flushing librbd's cache and
 * releasing locks: milliseconds on a healthy cluster). An unreachable cluster would hold us
 * for rados_osd_op_timeout; what it did not take by then is lost either way.
 */
#define RBD_EXIT_WAIT_NS (5ull * 1000000000ull)

static struct rbd_cluster *g_clusters;

#if defined(__SANITIZE_THREAD__)
#define RBD_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RBD_TSAN 1
#endif
#endif
#ifdef RBD_TSAN
/*
 * ThreadSanitizer builds: librados and librbd are not instrumented, so their own
 * synchronisation (spinlocks, atomics) is invisible and the string and memory functions they
 * call look racy. Ignore what they do inside themselves; our side of every hand-over (request
 * slots, the completion queue, refcounts) stays checked. TSan asks for this at start-up.
 */
const char *__tsan_default_suppressions(void);
const char *
__tsan_default_suppressions(void)
{
	return "called_from_lib:libceph-common.so\n"
	       "called_from_lib:librados.so\n"
	       "called_from_lib:librbd.so\n"
	       "called_from_lib:libstdc++.so\n";
}
#endif

/* Helper threads alive, and whether control posts are still allowed. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned threads;
	bool posts_closed;
	bool init;
	bool exiting; /* atexit: close and shut down inline */
} g_rt = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* ---- config lists ---- */

void
rbd_config_free(char **config)
{
	if (config == NULL) {
		return;
	}
	for (char **p = config; *p != NULL; p++) {
		free(*p);
	}
	free(config);
}

char **
rbd_config_dup(const char *const *config, bool *ok)
{
	size_t n = 0;
	char **c;

	*ok = true;
	if (config == NULL) {
		return NULL;
	}
	while (config[n] != NULL) {
		n++;
	}
	c = calloc(n + 1, sizeof(*c));
	if (c == NULL) {
		*ok = false;
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		c[i] = strdup(config[i]);
		if (c[i] == NULL) {
			rbd_config_free(c);
			*ok = false;
			return NULL;
		}
	}
	return c;
}

json_t *
rbd_config_json(char *const *config)
{
	json_t *o = json_object();

	for (size_t i = 0; o != NULL && config != NULL && config[i] != NULL; i += 2) {
		if (json_object_set_new(o, config[i], json_string(config[i + 1])) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

/* ---- helper threads ---- */

int
rbd_spawn(void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	pthread_mutex_lock(&g_rt.lock);
	g_rt.threads++;
	pthread_mutex_unlock(&g_rt.lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* Created from the control thread: signals stay blocked (they go to its signalfd). */
	rc = pthread_create(&t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		rbd_thread_exit();
		return -rc;
	}
	return 0;
}

void
rbd_thread_exit(void)
{
	pthread_mutex_lock(&g_rt.lock);
	if (--g_rt.threads == 0) {
		pthread_cond_broadcast(&g_rt.cond);
	}
	pthread_mutex_unlock(&g_rt.lock);
}

/* This thread is a helper (rbd_thread_enter). */
static __thread bool t_helper;

bool
rbd_may_spawn(void)
{
	/* Helpers do the work themselves; so does the exit path (nobody would wait). */
	return !t_helper && !__atomic_load_n(&g_rt.exiting, __ATOMIC_RELAXED);
}

void
rbd_thread_enter(const struct rbd_cluster *cl)
{
	t_helper = true;
	pthread_setname_np(pthread_self(), "vh-rbd");
	if (cl != NULL && cl->pin &&
	    pthread_setaffinity_np(pthread_self(), sizeof(cl->cpus), &cl->cpus) != 0) {
		VH_DEBUG("rbd", "cannot pin a helper thread to the cluster's CPUs");
	}
}

bool
rbd_control_post(struct vh_msg_node *n)
{
	bool posted = false;

	/* The lock orders us against vh_bdev_fini(), after which the control loop goes away. */
	pthread_mutex_lock(&g_rt.lock);
	if (!g_rt.posts_closed) {
		vh_control_post(n);
		posted = true;
	}
	pthread_mutex_unlock(&g_rt.lock);
	return posted;
}

void
rbd_module_fini_posts(void)
{
	pthread_mutex_lock(&g_rt.lock);
	g_rt.posts_closed = true;
	pthread_mutex_unlock(&g_rt.lock);
}

/* ---- jobs: a blocking operation the control thread waits for with a bound ---- */

static uint64_t
mono_ns(void)
{
	return vh_now_ns();
}

static void *
job_thread(void *arg)
{
	struct rbd_job *j = arg;
	bool gave_up;
	int rc;

	rbd_thread_enter(j->cl);
	rc = j->run(j);
	pthread_mutex_lock(&j->lock);
	j->rc = rc;
	j->done = true;
	gave_up = j->gave_up;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->lock);
	if (gave_up) {
		/* Nobody waits for us any more: undo, and free the job (it is ours now). */
		pthread_mutex_destroy(&j->lock);
		pthread_cond_destroy(&j->cond);
		j->abandoned(j, rc);
	}
	rbd_thread_exit();
	return NULL;
}

int
rbd_job_wait(struct rbd_job *j, bool *gave_up)
{
	uint64_t deadline = mono_ns() + (uint64_t)vh_bdev_rbd_wait_ms() * 1000000ull;
	pthread_condattr_t ca;
	int rc;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&j->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&j->lock, NULL);
	j->done = false;
	j->gave_up = false;
	*gave_up = false;
	rc = rbd_spawn(job_thread, j);
	if (rc < 0) {
		/* No thread: do it here. Bounded by librados' own timeouts, not by ours. */
		VH_WARN("rbd", "no helper thread (%s): the control thread waits for the cluster",
		        strerror(-rc));
		rc = j->run(j);
		goto out_destroy;
	}
	pthread_mutex_lock(&j->lock);
	while (!j->done) {
		uint64_t now = mono_ns();
		struct timespec ts;

		if (now >= deadline) {
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)((deadline - now) / 1000000000ull);
		ts.tv_nsec += (long)((deadline - now) % 1000000000ull);
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&j->cond, &j->lock, &ts);
	}
	if (!j->done) {
		/* The helper finishes on its own and undoes what it did (job->abandoned). */
		j->gave_up = true;
		*gave_up = true;
		pthread_mutex_unlock(&j->lock);
		return -ETIMEDOUT;
	}
	rc = j->rc;
	pthread_mutex_unlock(&j->lock);
out_destroy:
	pthread_mutex_destroy(&j->lock);
	pthread_cond_destroy(&j->cond);
	return rc;
}

unsigned
vh_bdev_rbd_wait_ms(void)
{
	static unsigned ms;

	if (ms == 0) {
		const char *e = getenv("VHOSTD_RBD_WAIT_MS");
		char *end;
		unsigned long v = e != NULL ? strtoul(e, &end, 10) : 0;

		ms = (e != NULL && *end == '\0' && v > 0 && v <= 600000) ? (unsigned)v
		                                                         : VH_RBD_DEFAULT_WAIT_MS;
	}
	return ms;
}

/* ---- clusters ---- */

static void
cluster_free(struct rbd_cluster *cl)
{
	free(cl->user_id);
	rbd_config_free(cl->config);
	free(cl->config_file);
	free(cl->key_file);
	free(cl->core_mask);
	free(cl);
}

static int
dup_opt(char **dst, const char *src)
{
	if (src == NULL) {
		*dst = NULL;
		return 0;
	}
	*dst = strdup(src);
	return *dst != NULL ? 0 : -ENOMEM;
}

/*
 * Where librados' threads go: @core_mask when given (SPDK's meaning); otherwise the CPUs we may
 * run on minus the reactors' (a busy-polling reactor and a librbd thread sharing a core make
 * every completion wait for a time slice); if that leaves none, wherever the control thread
 * runs.
 */
static int
cluster_cpus(struct rbd_cluster *cl, const char *core_mask)
{
	uint64_t mask = 0, reactors = vh_reactor_mask();
	cpu_set_t allowed;

	CPU_ZERO(&cl->cpus);
	if (core_mask != NULL) {
		if (vh_parse_cpumask(core_mask, &mask) < 0 || mask == 0) {
			return -EINVAL;
		}
		for (unsigned i = 0; i < 64; i++) {
			if (mask & (1ull << i)) {
				CPU_SET(i, &cl->cpus);
			}
		}
		cl->pin = true;
		return 0;
	}
	if (sched_getaffinity(0, sizeof(allowed), &allowed) < 0) {
		return 0;
	}
	for (unsigned i = 0; i < CPU_SETSIZE; i++) {
		if (CPU_ISSET(i, &allowed) && !(i < 64 && (reactors & (1ull << i)))) {
			CPU_SET(i, &cl->cpus);
		}
	}
	cl->pin = CPU_COUNT(&cl->cpus) > 0;
	return 0;
}

struct rbd_cluster *
rbd_cluster_new(const struct vh_rbd_cluster_opts *o, bool is_private, int *rc, char *err,
                size_t errlen)
{
	struct rbd_cluster *cl = calloc(1, sizeof(*cl));
	bool ok;

	*rc = -ENOMEM;
	if (cl == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	cl->is_private = is_private;
	cl->refs = 1;
	if (o->name != NULL) {
		snprintf(cl->name, sizeof(cl->name), "%s", o->name);
	}
	cl->config = rbd_config_dup(o->config_param, &ok);
	if (!ok || dup_opt(&cl->user_id, o->user_id) < 0 ||
	    dup_opt(&cl->config_file, o->config_file) < 0 ||
	    dup_opt(&cl->key_file, o->key_file) < 0 || dup_opt(&cl->core_mask, o->core_mask) < 0) {
		snprintf(err, errlen, "out of memory");
		cluster_free(cl);
		return NULL;
	}
	if (cluster_cpus(cl, o->core_mask) < 0) {
		snprintf(err, errlen, "invalid core_mask '%.64s'", o->core_mask);
		*rc = -EINVAL;
		cluster_free(cl);
		return NULL;
	}
	*rc = 0;
	return cl;
}

struct rbd_cluster *
rbd_cluster_find(const char *name)
{
	for (struct rbd_cluster *cl = g_clusters; cl != NULL; cl = cl->next) {
		if (strcmp(cl->name, name) == 0) {
			return cl;
		}
	}
	return NULL;
}

void
rbd_cluster_get(struct rbd_cluster *cl)
{
	__atomic_add_fetch(&cl->refs, 1, __ATOMIC_RELAXED);
}

static void
cluster_shutdown(struct rbd_cluster *cl)
{
	if (cl->connected) {
		rados_shutdown(cl->rados);
		VH_INFO("rbd", "cluster '%s' disconnected", cl->name[0] ? cl->name : "(private)");
	}
	cluster_free(cl);
}

static void *
shutdown_thread(void *arg)
{
	struct rbd_cluster *cl = arg;

	rbd_thread_enter(cl);
	cluster_shutdown(cl);
	rbd_thread_exit();
	return NULL;
}

void
rbd_cluster_put(struct rbd_cluster *cl)
{
	/* acq_rel: every user's accesses to the handle happen before the shutdown. */
	if (cl == NULL || __atomic_sub_fetch(&cl->refs, 1, __ATOMIC_ACQ_REL) != 0) {
		return;
	}
	if (!rbd_may_spawn() || !cl->connected || rbd_spawn(shutdown_thread, cl) < 0) {
		cluster_shutdown(cl);
	}
}

static int
conf_set(struct rbd_cluster *cl, const char *key, const char *value, char *err, size_t errlen)
{
	int rc = rados_conf_set(cl->rados, key, value);

	if (rc < 0) {
		snprintf(err, errlen, "Ceph option '%.64s' = '%.64s': %s", key, value,
		         rc == -ENOENT ? "no such option" : strerror(-rc));
	}
	return rc;
}

int
rbd_cluster_connect(struct rbd_cluster *cl, char *err, size_t errlen)
{
	static const char *const defaults[] = {
	        "rados_osd_op_timeout", VH_RBD_DEFAULT_OSD_OP_TIMEOUT,
	        "rados_mon_op_timeout", VH_RBD_DEFAULT_MON_OP_TIMEOUT,
	        "client_mount_timeout", VH_RBD_DEFAULT_MOUNT_TIMEOUT,
	};
	int rc;

	rc = rados_create(&cl->rados, cl->user_id);
	if (rc < 0) {
		snprintf(err, errlen, "rados_create(user '%.64s'): %s",
		         cl->user_id ? cl->user_id : "admin", strerror(-rc));
		return rc;
	}
	/* Ours first: the file and config_param may override them. */
	for (size_t i = 0; i < VH_ARRAY_SIZE(defaults); i += 2) {
		rc = conf_set(cl, defaults[i], defaults[i + 1], err, errlen);
		if (rc < 0) {
			goto out_shutdown;
		}
	}
	/*
	 * As SPDK: a named cluster reads its config_file (or Ceph's default path, whose absence
	 * is fine); a bdev's private handle reads the default path only when it got no config.
	 */
	if (!cl->is_private || cl->config == NULL) {
		rc = rados_conf_read_file(cl->rados, cl->config_file);
		if (rc < 0 && cl->config_file != NULL) {
			snprintf(err, errlen, "cannot read Ceph config file '%.128s': %s",
			         cl->config_file, strerror(-rc));
			goto out_shutdown;
		}
	}
	for (char **p = cl->config; p != NULL && *p != NULL; p += 2) {
		rc = conf_set(cl, p[0], p[1], err, errlen);
		if (rc < 0) {
			goto out_shutdown;
		}
	}
	if (cl->key_file != NULL && (rc = conf_set(cl, "keyring", cl->key_file, err, errlen)) < 0) {
		goto out_shutdown;
	}
	/* Whatever the config says: submitting must hand requests to librbd's threads, never
	 * run them on the reactor (the reactor must not block). */
	rc = conf_set(cl, "rbd_non_blocking_aio", "true", err, errlen);
	if (rc < 0) {
		goto out_shutdown;
	}
	rc = rados_connect(cl->rados);
	if (rc < 0) {
		snprintf(err, errlen, "cannot connect to the Ceph cluster: %s%s", strerror(-rc),
		         rc == -ETIMEDOUT ? " (no monitor answered within client_mount_timeout)"
		                          : "");
		goto out_shutdown;
	}
	if (rados_cluster_fsid(cl->rados, cl->fsid, sizeof(cl->fsid)) < 0) {
		cl->fsid[0] = '\0';
	}
	cl->instance_id = rados_get_instance_id(cl->rados);
	cl->connected = true;
	return 0;

out_shutdown:
	rados_shutdown(cl->rados);
	return rc;
}

json_t *
rbd_cluster_info_json(const struct rbd_cluster *cl)
{
	json_t *o = json_pack("{s:s}", "cluster_name", cl->name);

	if (o == NULL) {
		return NULL;
	}
	if (cl->user_id != NULL) {
		json_object_set_new(o, "user_id", json_string(cl->user_id));
	}
	if (cl->config != NULL) {
		json_object_set_new(o, "config_param", rbd_config_json(cl->config));
	}
	if (cl->config_file != NULL) {
		json_object_set_new(o, "config_file", json_string(cl->config_file));
	}
	if (cl->key_file != NULL) {
		json_object_set_new(o, "key_file", json_string(cl->key_file));
	}
	if (cl->core_mask != NULL) {
		json_object_set_new(o, "core_mask", json_string(cl->core_mask));
	}
	return o;
}

/* ---- registration (control thread) ---- */

struct connect_job {
	struct rbd_job j;
	struct rbd_cluster *cl;
	char err[256];
};

static int
connect_run(struct rbd_job *j)
{
	struct connect_job *cj = VH_CONTAINER_OF(j, struct connect_job, j);

	return rbd_cluster_connect(cj->cl, cj->err, sizeof(cj->err));
}

static void
connect_abandoned(struct rbd_job *j, int rc)
{
	struct connect_job *cj = VH_CONTAINER_OF(j, struct connect_job, j);

	VH_NOTICE("rbd", "cluster '%s': connection %s after the RPC gave up; dropped", cj->cl->name,
	          rc == 0 ? "made" : "failed");
	cluster_shutdown(cj->cl);
	free(cj);
}

int
vh_bdev_rbd_register_cluster(const struct vh_rbd_cluster_opts *o, char *err, size_t errlen)
{
	struct connect_job *cj;
	struct rbd_cluster *cl;
	bool gave_up;
	int rc;

	err[0] = '\0';
	if (vh_name_check(o->name) < 0) {
		snprintf(err, errlen, "invalid cluster name '%.64s'", o->name ? o->name : "");
		return -EINVAL;
	}
	if (rbd_cluster_find(o->name) != NULL) {
		snprintf(err, errlen, "cluster '%s' is already registered", o->name);
		return -EEXIST;
	}
	rbd_module_init();
	cl = rbd_cluster_new(o, false, &rc, err, errlen);
	if (cl == NULL) {
		return rc;
	}
	cj = calloc(1, sizeof(*cj));
	if (cj == NULL) {
		cluster_free(cl);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	cj->j.run = connect_run;
	cj->j.abandoned = connect_abandoned;
	cj->j.cl = cl;
	cj->cl = cl;
	rc = rbd_job_wait(&cj->j, &gave_up);
	if (gave_up) {
		snprintf(
		        err, errlen,
		        "no connection to the cluster within %u ms (the attempt is dropped when it "
		        "ends)",
		        vh_bdev_rbd_wait_ms());
		return rc; /* cj and cl belong to the helper now */
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s", cj->err[0] ? cj->err : strerror(-rc));
		free(cj);
		cluster_free(cl);
		return rc;
	}
	free(cj);
	cl->next = g_clusters;
	g_clusters = cl;
	VH_NOTICE("rbd", "cluster '%s' registered: fsid %s, client.%" PRIu64 "%s%s", cl->name,
	          cl->fsid, cl->instance_id, cl->core_mask ? ", threads on " : "",
	          cl->core_mask ? cl->core_mask : "");
	return 0;
}

int
vh_bdev_rbd_unregister_cluster(const char *name)
{
	for (struct rbd_cluster **pp = &g_clusters; *pp != NULL; pp = &(*pp)->next) {
		struct rbd_cluster *cl = *pp;

		if (strcmp(cl->name, name) != 0) {
			continue;
		}
		if (cl->bdevs > 0) {
			return -EBUSY;
		}
		*pp = cl->next;
		VH_NOTICE("rbd", "cluster '%s' unregistered", name);
		/* Images of deleted bdevs may still be closing: they hold their own reference. */
		rbd_cluster_put(cl);
		return 0;
	}
	return -ENOENT;
}

int
vh_bdev_rbd_clusters_info(const char *name, json_t **out)
{
	json_t *arr;

	*out = NULL;
	if (name != NULL) {
		const struct rbd_cluster *cl = rbd_cluster_find(name);
		json_t *o;

		if (cl == NULL) {
			return -ENOENT;
		}
		o = rbd_cluster_info_json(cl);
		if (o == NULL) {
			return -ENOMEM;
		}
		/* vhostd's additions: what an operator needs to match Ceph's views of us. */
		json_object_set_new(o, "fsid", json_string(cl->fsid));
		json_object_set_new(o, "instance_id", json_integer((json_int_t)cl->instance_id));
		json_object_set_new(o, "bdevs", json_integer(cl->bdevs));
		*out = o;
		return 0;
	}
	arr = json_array();
	if (arr == NULL) {
		return -ENOMEM;
	}
	/* Registration order (the list is newest first). */
	for (struct rbd_cluster *cl = g_clusters; cl != NULL; cl = cl->next) {
		json_t *o = NULL;

		if (vh_bdev_rbd_clusters_info(cl->name, &o) < 0 ||
		    json_array_insert_new(arr, 0, o)) {
			json_decref(arr);
			return -ENOMEM;
		}
	}
	*out = arr;
	return 0;
}

int
vh_bdev_rbd_clusters_config(json_t *config)
{
	size_t at = json_array_size(config);

	for (struct rbd_cluster *cl = g_clusters; cl != NULL; cl = cl->next) {
		json_t *p = rbd_cluster_info_json(cl);
		json_t *e;

		if (p == NULL) {
			return -ENOMEM;
		}
		/* get_clusters_info says cluster_name; the method's parameter is name. */
		json_object_set(p, "name", json_object_get(p, "cluster_name"));
		json_object_del(p, "cluster_name");
		e = json_pack("{s:s, s:o}", "method", "bdev_rbd_register_cluster", "params", p);
		/* Inserted at the same index: the oldest ends up first, as registered. */
		if (e == NULL || json_array_insert_new(config, at, e) < 0) {
			return -ENOMEM;
		}
	}
	return 0;
}

/* ---- module life ---- */

static void
rbd_atexit(void)
{
	uint64_t deadline = mono_ns() + RBD_EXIT_WAIT_NS;
	unsigned left;

	__atomic_store_n(&g_rt.exiting, true, __ATOMIC_RELAXED);
	/* Without vh_bdev_fini() (a failed start): close what is still open, here. */
	rbd_module_fini_posts();
	rbd_disks_close_all();
	pthread_mutex_lock(&g_rt.lock);
	while (g_rt.threads > 0 && mono_ns() < deadline) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&g_rt.cond, &g_rt.lock, &ts);
	}
	left = g_rt.threads;
	pthread_mutex_unlock(&g_rt.lock);
	if (left > 0) {
		/* An unreachable cluster: its librados threads keep running while we exit. */
		VH_WARN("rbd", "%u helper thread(s) still waiting for a cluster: exiting anyway",
		        left);
		return;
	}
	while (g_clusters != NULL) {
		struct rbd_cluster *cl = g_clusters;

		g_clusters = cl->next;
		rbd_cluster_put(cl);
	}
}

static void
rbd_fini_hook(void)
{
	/* vh_bdev_fini(): the control loop goes away next, so nothing may post to it. */
	rbd_module_fini_posts();
}

static const struct vh_bdev_global_hooks g_rbd_hooks = {
        .fini = rbd_fini_hook,
};

void
rbd_module_init(void)
{
	if (g_rt.init) {
		return;
	}
	g_rt.init = true;
	if (vh_bdev_global_hooks_register(&g_rbd_hooks) < 0) {
		VH_WARN("rbd", "no room for the shutdown hook: exit may race with image closing");
	}
	atexit(rbd_atexit);
}
