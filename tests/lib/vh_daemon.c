/* SPDX-License-Identifier: BSD-3-Clause */
/* Spawn/stop vhostd for tests, and a minimal JSON-RPC 2.0 client over its UNIX socket. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fe_msg.h"
#include "vh_daemon.h"

extern char **environ;

#define MAX_ARGS      32
#define RPC_MAX_REPLY (1u << 20)

static int
rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	remove(path);
	return 0;
}

const char *
vh_daemon_path(const struct vh_daemon *d, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", d->sock_dir, name);
	return buf;
}

static int
rpc_ready(const char *path)
{
	int fd = fe_connect_path(path, 0);

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return fd;
}

int
vh_daemon_start(struct vh_daemon *d, const char *binary, const char *const *extra, int timeout_ms)
{
	const char *argv[MAX_ARGS];
	int64_t deadline;
	unsigned int n = 0;
	int rc;

	if (!binary) {
		binary = getenv("VHOSTD");
	}
	if (!binary || access(binary, X_OK) != 0) {
		memset(d, 0, sizeof(*d));
		d->pid = -1;
		return -ENOENT;
	}
	rc = vh_daemon_mkdir(d);
	if (rc < 0) {
		return rc;
	}
	argv[n++] = binary;
	argv[n++] = "-m";
	argv[n++] = "0x1";
	argv[n++] = "-S";
	argv[n++] = d->sock_dir;
	argv[n++] = "-r";
	argv[n++] = d->rpc_path;
	argv[n++] = "-L";
	argv[n++] = "info";
	while (extra && *extra && n < MAX_ARGS - 1) {
		argv[n++] = *extra++;
	}
	argv[n] = NULL;
	rc = posix_spawn(&d->pid, binary, NULL, NULL, (char *const *)argv, environ);
	if (rc) {
		d->pid = -1;
		nftw(d->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
		return -rc;
	}
	deadline = fe_now_ms() + timeout_ms;
	for (;;) {
		struct timespec ts = {0, 5 * 1000 * 1000};

		if (rpc_ready(d->rpc_path) == 0) {
			return 0;
		}
		if (!vh_daemon_alive(d)) {
			vh_daemon_stop(d, 0);
			return -ECHILD;
		}
		if (fe_now_ms() >= deadline) {
			vh_daemon_stop(d, 1000);
			return -ETIMEDOUT;
		}
		nanosleep(&ts, NULL);
	}
}

int
vh_daemon_mkdir(struct vh_daemon *d)
{
	memset(d, 0, sizeof(*d));
	d->pid = -1;
	snprintf(d->dir, sizeof(d->dir), "/tmp/vhostd-test.XXXXXX");
	if (!mkdtemp(d->dir)) {
		d->dir[0] = '\0';
		return -errno;
	}
	snprintf(d->sock_dir, sizeof(d->sock_dir), "%s", d->dir);
	snprintf(d->rpc_path, sizeof(d->rpc_path), "%s/rpc.sock", d->dir);
	return 0;
}

int
vh_daemon_spawn(struct vh_daemon *d, const char *const *argv_in, const char *ready, int timeout_ms)
{
	char args[MAX_ARGS][256], path[160];
	char *argv[MAX_ARGS];
	int64_t deadline;
	unsigned int n;
	int rc;

	if (!d->dir[0]) {
		rc = vh_daemon_mkdir(d);
		if (rc < 0) {
			return rc;
		}
	}
	for (n = 0; argv_in[n] && n < MAX_ARGS - 1; n++) {
		const char *at = strstr(argv_in[n], "@DIR@");

		if (at) {
			snprintf(args[n], sizeof(args[n]), "%.*s%s%s", (int)(at - argv_in[n]),
			         argv_in[n], d->dir, at + 5);
		} else {
			snprintf(args[n], sizeof(args[n]), "%s", argv_in[n]);
		}
		argv[n] = args[n];
	}
	argv[n] = NULL;
	rc = posix_spawnp(&d->pid, argv[0], NULL, NULL, argv, environ);
	if (rc) {
		d->pid = -1;
		vh_daemon_stop(d, 0);
		return -rc;
	}
	snprintf(path, sizeof(path), "%s/%s", d->dir, ready);
	deadline = fe_now_ms() + timeout_ms;
	while (access(path, F_OK) != 0) {
		struct timespec ts = {0, 5 * 1000 * 1000};

		if (!vh_daemon_alive(d)) {
			vh_daemon_stop(d, 0);
			return -ECHILD;
		}
		if (fe_now_ms() >= deadline) {
			vh_daemon_stop(d, 1000);
			return -ETIMEDOUT;
		}
		nanosleep(&ts, NULL);
	}
	return 0;
}

bool
vh_daemon_alive(struct vh_daemon *d)
{
	int status;

	if (d->pid <= 0) {
		return false;
	}
	if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
		fprintf(stderr, "vhostd %d exited: %s %d\n", d->pid,
		        WIFSIGNALED(status) ? "signal" : "status",
		        WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
		d->pid = -status - 1; /* remember it is gone, keep the status */
		return false;
	}
	return true;
}

/* Parent pid from /proc/N/stat ("N (comm) S PPID ..."; comm may hold spaces and parens). */
static pid_t
proc_ppid(const char *pid)
{
	char path[300], buf[512], *p;
	ssize_t n;
	int fd, ppid;

	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return -1;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0) {
		return -1;
	}
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1) {
		return -1;
	}
	return ppid;
}

pid_t
vh_daemon_child(const struct vh_daemon *d)
{
	char path[64], buf[256];
	struct dirent *de;
	pid_t child = -ESRCH;
	ssize_t n;
	DIR *dir;
	int fd;

	if (d->pid <= 0) {
		return -ESRCH;
	}
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)d->pid, (int)d->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n < 0) {
			return -ESRCH;
		}
		buf[n] = '\0';
		return atoi(buf) > 0 ? (pid_t)atoi(buf) : -ESRCH;
	}
	dir = opendir("/proc");
	if (!dir) {
		return -errno;
	}
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] >= '1' && de->d_name[0] <= '9' &&
		    proc_ppid(de->d_name) == d->pid) {
			child = (pid_t)atoi(de->d_name);
			break;
		}
	}
	closedir(dir);
	return child;
}

int
vh_daemon_stop(struct vh_daemon *d, int timeout_ms)
{
	int64_t deadline = fe_now_ms() + timeout_ms;
	int status = 0, rc = 0;

	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		for (;;) {
			struct timespec ts = {0, 2 * 1000 * 1000};
			pid_t p = waitpid(d->pid, &status, WNOHANG);

			if (p == d->pid) {
				rc = status;
				break;
			}
			if (p < 0) {
				rc = -errno;
				break;
			}
			if (fe_now_ms() >= deadline) {
				kill(d->pid, SIGKILL);
				waitpid(d->pid, &status, 0);
				rc = status;
				break;
			}
			nanosleep(&ts, NULL);
		}
	} else if (d->pid < -1) {
		rc = -d->pid - 1;
	}
	d->pid = -1;
	if (d->dir[0]) {
		nftw(d->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
		d->dir[0] = '\0';
	}
	return rc;
}

static int
send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read until one complete JSON value parses (the server does not frame with newlines). */
static int
read_json(int fd, json_t **out, int timeout_ms)
{
	int64_t deadline = fe_now_ms() + timeout_ms;
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	int rc = -ETIMEDOUT;

	if (!buf) {
		return -ENOMEM;
	}
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - fe_now_ms();
		json_error_t jerr;
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			rc = -ETIMEDOUT;
			break;
		}
		if (len == cap) {
			char *nb = cap >= RPC_MAX_REPLY ? NULL : realloc(buf, cap * 2);

			if (!nb) {
				rc = -E2BIG;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		n = recv(fd, buf + len, cap - len, 0);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			rc = n == 0 ? -ECONNRESET : -errno;
			break;
		}
		len += (size_t)n;
		*out = json_loadb(buf, len, JSON_DISABLE_EOF_CHECK, &jerr);
		if (*out) {
			rc = 0;
			break;
		}
	}
	free(buf);
	return rc;
}

int
vh_rpc_raw(const char *rpc_path, const char *text, json_t **reply, int timeout_ms)
{
	int fd, rc;

	fd = fe_connect_path(rpc_path, timeout_ms);
	if (fd < 0) {
		return fd;
	}
	rc = send_all(fd, text, strlen(text));
	if (rc == 0) {
		rc = read_json(fd, reply, timeout_ms);
	}
	close(fd);
	return rc;
}

int
vh_rpc_call(const char *rpc_path, const char *method, json_t *params, json_t **result,
            int *err_code, char *err_msg_buf, size_t err_msg_len, int timeout_ms)
{
	json_t *req, *reply = NULL, *err, *res;
	char *text;
	int rc;

	if (result) {
		*result = NULL;
	}
	req = json_pack("{s:s, s:s, s:i}", "jsonrpc", "2.0", "method", method, "id", 1);
	if (!req) {
		json_decref(params);
		return -ENOMEM;
	}
	if (params) {
		json_object_set_new(req, "params", params);
	}
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!text) {
		return -ENOMEM;
	}
	rc = vh_rpc_raw(rpc_path, text, &reply, timeout_ms);
	free(text);
	if (rc < 0) {
		return rc;
	}
	err = json_object_get(reply, "error");
	res = json_object_get(reply, "result");
	if (err) {
		if (err_code) {
			*err_code = (int)json_integer_value(json_object_get(err, "code"));
		}
		if (err_msg_buf && err_msg_len) {
			const char *m = json_string_value(json_object_get(err, "message"));

			snprintf(err_msg_buf, err_msg_len, "%s", m ? m : "");
		}
		rc = -EREMOTEIO;
	} else if (!res) {
		rc = -EPROTO;
	} else if (result) {
		*result = json_incref(res);
	}
	json_decref(reply);
	return rc;
}
