/* SPDX-License-Identifier: BSD-3-Clause */
/* A test Ceph cluster through tests/ceph/ceph-cluster.sh; see ceph_env.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ceph_env.h"

static int
status_of(int st)
{
	if (st == -1) {
		return -1;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static int vsh(const struct ceph_env *c, char *out, size_t len, const char *fmt, va_list ap)
        __attribute__((format(printf, 4, 0)));

static int
vsh(const struct ceph_env *c, char *out, size_t len, const char *fmt, va_list ap)
{
	char cmd[1024], full[1200];
	FILE *p;
	size_t n = 0;

	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	snprintf(full, sizeof(full), "CEPH='-c %s'; %s", c->conf, cmd);
	fflush(stderr);
	if (out == NULL) {
		/* stdout to stderr: the test's stdout stays clean. */
		char redir[1300];

		snprintf(redir, sizeof(redir), "{ %s; } >&2", full);
		return status_of(system(redir));
	}
	p = popen(full, "r");
	if (p == NULL) {
		return -1;
	}
	while (n + 1 < len) {
		size_t r = fread(out + n, 1, len - 1 - n, p);

		if (r == 0) {
			break;
		}
		n += r;
	}
	out[n] = '\0';
	/* Drain what did not fit so the command does not die of SIGPIPE. */
	while (fgetc(p) != EOF) {
	}
	return status_of(pclose(p));
}

int
ceph_sh(const struct ceph_env *c, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vsh(c, NULL, 0, fmt, ap);
	va_end(ap);
	return rc;
}

int
ceph_sh_out(const struct ceph_env *c, char *out, size_t len, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vsh(c, out, len, fmt, ap);
	va_end(ap);
	return rc;
}

static void
set_kv(struct ceph_env *c, const char *line)
{
	const char *eq = strchr(line, '=');
	char key[32];
	size_t klen;

	if (eq == NULL || (klen = (size_t)(eq - line)) >= sizeof(key)) {
		return;
	}
	memcpy(key, line, klen);
	key[klen] = '\0';
	eq++;
	if (strcmp(key, "CEPH_CONF") == 0) {
		snprintf(c->conf, sizeof(c->conf), "%s", eq);
	} else if (strcmp(key, "CEPH_MON_HOST") == 0) {
		snprintf(c->mon_host, sizeof(c->mon_host), "%s", eq);
	} else if (strcmp(key, "CEPH_POOL") == 0) {
		snprintf(c->pool, sizeof(c->pool), "%s", eq);
	}
}

int
ceph_env_start(struct ceph_env *c)
{
	const char *script = getenv("VH_CEPH_CLUSTER");
	char cmd[512], line[256];
	FILE *p;
	int st;

	memset(c, 0, sizeof(*c));
	if (script == NULL || access(script, X_OK) != 0) {
		fprintf(stderr, "SKIP: $VH_CEPH_CLUSTER (tests/ceph/ceph-cluster.sh) not set\n");
		return 77;
	}
	snprintf(c->script, sizeof(c->script), "%s", script);
	snprintf(cmd, sizeof(cmd), "'%s' check", c->script);
	st = status_of(system(cmd));
	if (st != 0) {
		fprintf(stderr,
		        "SKIP: Ceph is not installed (scripts/install-deps.sh installs it)\n");
		return 77;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "SKIP: the test Ceph cluster needs root\n");
		return 77;
	}
	snprintf(c->dir, sizeof(c->dir), "%s/vh-ceph.XXXXXX",
	         getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(c->dir) == NULL) {
		fprintf(stderr, "FAIL: mkdtemp %s: %s\n", c->dir, strerror(errno));
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "'%s' start '%s' --owner %d", c->script, c->dir, (int)getpid());
	fflush(stderr);
	p = popen(cmd, "r");
	if (p == NULL) {
		return -1;
	}
	while (fgets(line, sizeof(line), p) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		set_kv(c, line);
	}
	st = status_of(pclose(p));
	c->started = true;
	if (st != 0 || c->conf[0] == '\0' || c->mon_host[0] == '\0' || c->pool[0] == '\0') {
		fprintf(stderr, "FAIL: Ceph cluster did not start (status %d); its logs:\n", st);
		snprintf(cmd, sizeof(cmd), "tail -n 20 '%s'/log/* >&2", c->dir);
		if (system(cmd) != 0) {
			fprintf(stderr, "(no logs)\n");
		}
		ceph_env_stop(c);
		return -1;
	}
	fprintf(stderr, "ceph: cluster up in %s (mon %s)\n", c->dir, c->mon_host);
	return 0;
}

void
ceph_env_stop(struct ceph_env *c)
{
	char cmd[512];

	if (!c->started) {
		return;
	}
	c->started = false;
	snprintf(cmd, sizeof(cmd), "'%s' stop '%s' >&2", c->script, c->dir);
	fflush(stderr);
	if (system(cmd) != 0) {
		fprintf(stderr, "warning: stopping the Ceph cluster in %s failed\n", c->dir);
	}
}

int
ceph_env_pause(struct ceph_env *c, bool pause)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "'%s' %s '%s' >&2", c->script, pause ? "pause" : "resume",
	         c->dir);
	fflush(stderr);
	return status_of(system(cmd)) == 0 ? 0 : -1;
}

int
ceph_read_image(const struct ceph_env *c, const char *img, unsigned long long off, void *buf,
                size_t len)
{
	char path[160];
	int fd, rc = -1;

	snprintf(path, sizeof(path), "%s/export.%d", c->dir, (int)getpid());
	if (ceph_sh(c, "rbd $CEPH export --no-progress %s %s", img, path) != 0) {
		fprintf(stderr, "rbd export %s failed\n", img);
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && pread(fd, buf, len, (off_t)off) == (ssize_t)len) {
		rc = 0;
	}
	if (fd >= 0) {
		close(fd);
	}
	unlink(path);
	return rc;
}
