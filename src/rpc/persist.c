/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Persistent configuration: after every successful state-changing RPC the whole save_config
 * document replaces the --config file atomically (temp file, fsync, rename, fsync of the
 * directory), so a crash at any point leaves the old file or the new one, never a torn one, and a
 * restarted daemon comes back with the same bdevs and controllers at the same socket paths.
 *
 * Threat model: the file is written 0600 by the daemon and read back only through the same
 * validating replay as any RPC (rpc.c); a corrupt file stops the daemon with an error. Whoever
 * writes the file administers the daemon, so a file someone else could have written is refused
 * before it is parsed (vh_rpc_config_trusted). The temp file gets an unpredictable name and is
 * created with O_EXCL|O_NOFOLLOW: a file or link planted in the config's directory is never
 * opened, let alone written through. rename() replaces a symlink at the config path itself and
 * never writes to where it points.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "rpc/rpc.h"
#include "rpc/rpc_internal.h"

static char *g_path;
static bool g_suspended;

void
vh_rpc_set_config_path(const char *path)
{
	free(g_path);
	g_path = path ? strdup(path) : NULL;
}

void
vh_rpc_persist_suspend(bool suspend)
{
	g_suspended = suspend;
}

static int
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
fsync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int fd, rc = 0;

	if (copy == NULL) {
		return -ENOMEM;
	}
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0) {
		rc = -errno;
	}
	if (fd >= 0) {
		close(fd);
	}
	free(copy);
	return rc;
}

/*
 * A crash between creating the temp file and the rename leaves "<path>.tmp.XXXXXX" behind. Its
 * name is unique, so it never gets in the next writer's way, and nothing ever reads it.
 */
static int
write_atomically(const char *path, const char *text)
{
	size_t tlen = strlen(path) + sizeof(".tmp.XXXXXX");
	char *tmp = malloc(tlen);
	int fd, rc;

	if (tmp == NULL) {
		return -ENOMEM;
	}
	snprintf(tmp, tlen, "%s.tmp.XXXXXX", path);
	/* mkostemp opens O_RDWR|O_CREAT|O_EXCL, mode 0600; we add the rest. */
	fd = mkostemp(tmp, O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		rc = -errno;
		goto out_free;
	}
	rc = write_all(fd, text, strlen(text));
	if (rc == 0) {
		rc = write_all(fd, "\n", 1);
	}
	if (rc == 0 && fsync(fd) < 0) {
		rc = -errno;
	}
	close(fd);
	if (rc == 0 && rename(tmp, path) < 0) {
		rc = -errno;
	}
	if (rc < 0) {
		unlink(tmp);
		goto out_free;
	}
	rc = fsync_dir_of(path);
out_free:
	free(tmp);
	return rc;
}

static bool
trusted_owner(uid_t uid)
{
	return uid == geteuid() || uid == 0;
}

int
vh_rpc_config_trusted(const char *path, const struct stat *st)
{
	struct stat lst;

	if (!trusted_owner(st->st_uid)) {
		VH_ERR("rpc", "config %s: owned by uid %u, not by us (uid %u) or root; refusing it",
		       path, (unsigned)st->st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	if (st->st_mode & S_IWOTH) {
		VH_ERR("rpc", "config %s: writable by everyone (mode %04o); refusing it", path,
		       (unsigned)(st->st_mode & 07777));
		return -EPERM;
	}
	/*
	 * A link is followed (operators link configs), but only one we or root made: another
	 * user's link would choose which of our files we replay.
	 */
	if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode) && !trusted_owner(lst.st_uid)) {
		VH_ERR("rpc", "config %s: a symbolic link owned by uid %u; refusing it", path,
		       (unsigned)lst.st_uid);
		return -EPERM;
	}
	return 0;
}

int
vh_rpc_save_config_file(void)
{
	struct vh_rpc_error err;
	json_t *cfg;
	char *text;
	int rc;

	if (g_path == NULL) {
		return 0;
	}
	cfg = vh_rpc_call("save_config", NULL, &err);
	if (cfg == NULL) {
		return -ENOMEM;
	}
	text = json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(cfg);
	if (text == NULL) {
		return -ENOMEM;
	}
	rc = write_atomically(g_path, text);
	free(text);
	return rc;
}

void
vh_rpc_persist_after(const char *method, json_t **result, struct vh_rpc_error *err)
{
	int rc;

	if (g_path == NULL || g_suspended) {
		return;
	}
	rc = vh_rpc_save_config_file();
	if (rc == 0) {
		return;
	}
	/* The change is live but would not survive a restart: the operator must know. */
	VH_ERR("rpc", "%s applied, but writing config %s failed: %s", method, g_path,
	       strerror(-rc));
	json_decref(*result);
	*result = NULL;
	vh_rpc_error_set(err, VH_RPC_INTERNAL_ERROR,
	                 "%s applied, but saving the config file %s failed: %s", method, g_path,
	                 strerror(-rc));
}
