/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A real single-node Ceph cluster for the rbd tests, started and stopped with
 * tests/ceph/ceph-cluster.sh ($VH_CEPH_CLUSTER), plus helpers to run Ceph's command-line tools
 * against it. No mock: librbd in the daemon talks to a real monitor and OSD.
 *
 * Rules: one thread; every wait is bounded; the cluster is stopped by ceph_env_stop(), and by
 * the script's watchdog if this process dies first (--owner).
 */
#ifndef VH_TESTS_CEPH_ENV_H
#define VH_TESTS_CEPH_ENV_H

#include <stdbool.h>
#include <stddef.h>

struct ceph_env {
	char script[256];
	char dir[96];
	char conf[128];     /* CEPH_CONF: the config file (mon host, auth none) */
	char mon_host[128]; /* CEPH_MON_HOST: for config_param's mon_host */
	char pool[32];
	bool started;
};

/*
 * Start a cluster in a fresh temp dir. Returns 0, 77 (skip: Ceph or the script missing, not
 * root; the reason is printed), or -1 (printed, with the end of the cluster's logs).
 */
int ceph_env_start(struct ceph_env *c);
/* Stop it and remove its dir. Safe to call twice. */
void ceph_env_stop(struct ceph_env *c);
/* SIGSTOP / SIGCONT every daemon of the cluster (a silent cluster, like a partition). 0 or -1. */
int ceph_env_pause(struct ceph_env *c, bool pause);

/*
 * Run a shell command with "$CEPH" standing for "-c <conf>" (e.g. "rbd $CEPH create ...").
 * Returns the exit status (0 success), or -1 if it could not run. Output goes to stderr.
 */
int ceph_sh(const struct ceph_env *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, capturing stdout (NUL-terminated, truncated to @len - 1). */
int ceph_sh_out(const struct ceph_env *c, char *out, size_t len, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/*
 * Read @len bytes at @off of image @img (pool/name) into @buf with `rbd export`, i.e. through a
 * separate librbd client. Returns 0 or -1.
 */
int ceph_read_image(const struct ceph_env *c, const char *img, unsigned long long off, void *buf,
                    size_t len);

#endif
