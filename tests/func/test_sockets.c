/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Socket paths that are already taken. A controller socket and the RPC socket replace only a
 * stale socket (nobody listening); they never unlink a live one, whether it is the daemon's own
 * RPC socket (a controller named like it in the same directory) or another process's listener,
 * even one whose backlog is full; and never anything that is not a socket. The RPC error says
 * the socket path is in use, and the daemon keeps serving on its RPC socket.
 */
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vh_test.h"

#define RPC_TIMEOUT_MS 5000

extern char **environ;

static int
create_ctrlr(struct vh_daemon *d, const char *name, char *msg, size_t msg_len)
{
	json_t *res = NULL;
	int code = 0, rc;

	msg[0] = '\0';
	rc = vh_rpc_call(d->rpc_path, "vhost_create_blk_controller",
	                 json_pack("{s:s, s:s}", "ctrlr", name, "dev_name", "Malloc0"), &res, &code,
	                 msg, msg_len, RPC_TIMEOUT_MS);
	json_decref(res);
	if (rc == 0) {
		/* Free the bdev for the next case. */
		vh_rpc_call(d->rpc_path, "vhost_delete_controller",
		            json_pack("{s:s}", "ctrlr", name), NULL, NULL, NULL, 0, RPC_TIMEOUT_MS);
	}
	return rc;
}

static bool
is_socket(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* The daemon still answers on its RPC socket (a fresh connection). */
static int
rpc_alive(struct vh_daemon *d)
{
	json_t *res = NULL;
	int rc = vh_rpc_call(d->rpc_path, "spdk_get_version", NULL, &res, NULL, NULL, 0,
	                     RPC_TIMEOUT_MS);

	json_decref(res);
	return rc;
}

/* A listener at @path whose backlog is full: connect() answers EAGAIN. cfd[] gets the clients. */
static int
full_listener(const char *path, int *cfd, int ncfd, int *nc)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	T_CHECK(lfd >= 0, "socket: %s", strerror(errno));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	T_CHECK(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(lfd, 0) == 0,
	        "bind/listen %s: %s", path, strerror(errno));
	for (*nc = 0; *nc < ncfd; (*nc)++) {
		cfd[*nc] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (connect(cfd[*nc], (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			T_CHECK(errno == EAGAIN, "filling the backlog: %s", strerror(errno));
			close(cfd[*nc]);
			return lfd;
		}
	}
	T_CHECK(false, "backlog of %s never filled", path);
	return -1;
}

static int
case_rpc_socket_name(struct vh_daemon *d)
{
	char msg[256];
	int rc = create_ctrlr(d, "rpc.sock", msg, sizeof(msg));

	T_CHECK(rc == -EREMOTEIO, "controller named like the RPC socket: %s",
	        rc == 0 ? "created" : strerror(-rc));
	T_CHECK(strstr(msg, "in use") != NULL, "error does not say the path is in use: %s", msg);
	T_CHECK(is_socket(d->rpc_path), "RPC socket file is gone");
	T_OK(rpc_alive(d));
	fprintf(stderr, "ok: controller 'rpc.sock' refused: %s\n", msg);
	return 0;
}

static int
case_foreign_listener(struct vh_daemon *d)
{
	char path[128], msg[256];
	int lfd, cfd[64], nc = 0, rc;

	vh_daemon_path(d, "foreign", path, sizeof(path));
	lfd = full_listener(path, cfd, 64, &nc);
	T_CHECK(lfd >= 0, "listener");
	rc = create_ctrlr(d, "foreign", msg, sizeof(msg));
	while (nc-- > 0) {
		close(cfd[nc]);
	}
	T_CHECK(rc == -EREMOTEIO, "controller over a live listener (full backlog): %s",
	        rc == 0 ? "created" : strerror(-rc));
	T_CHECK(strstr(msg, "in use") != NULL, "error does not say the path is in use: %s", msg);
	T_CHECK(is_socket(path), "the other process's socket was unlinked");
	/* With room in the backlog (connect succeeds) it is just as alive. */
	rc = create_ctrlr(d, "foreign", msg, sizeof(msg));
	close(lfd);
	T_CHECK(rc == -EREMOTEIO && strstr(msg, "in use") != NULL,
	        "controller over a live listener: %s", rc == 0 ? "created" : msg);
	T_CHECK(is_socket(path), "the other process's socket was unlinked");
	T_OK(rpc_alive(d));
	fprintf(stderr, "ok: controller over another process's listener refused: %s\n", msg);
	/* Now nobody listens: the socket is stale and is replaced. */
	T_OK(create_ctrlr(d, "foreign", msg, sizeof(msg)));
	fprintf(stderr, "ok: stale socket replaced\n");
	return 0;
}

static int
case_regular_file(struct vh_daemon *d)
{
	char path[128], msg[256], buf[8] = "";
	int fd, rc;

	vh_daemon_path(d, "plain", path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	T_CHECK(fd >= 0 && write(fd, "data", 4) == 4, "regular file: %s", strerror(errno));
	close(fd);
	rc = create_ctrlr(d, "plain", msg, sizeof(msg));
	T_CHECK(rc == -EREMOTEIO, "controller over a regular file: %s",
	        rc == 0 ? "created" : strerror(-rc));
	T_CHECK(strstr(msg, "not a socket") != NULL, "error does not say why: %s", msg);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	T_CHECK(fd >= 0 && read(fd, buf, sizeof(buf)) == 4 && memcmp(buf, "data", 4) == 0,
	        "the regular file was changed");
	close(fd);
	fprintf(stderr, "ok: controller over a regular file refused: %s\n", msg);
	return 0;
}

/*
 * A second daemon whose RPC path is a live listener with a full backlog must refuse to start
 * (exit 1) and leave the socket alone; it used to block in connect() for ever.
 */
static int
case_rpc_over_full_listener(struct vh_daemon *d)
{
	const char *bin = getenv("VHOSTD");
	char path[128];
	int lfd, cfd[64], nc = 0, status = 0;
	int64_t deadline;
	pid_t pid, w = 0;

	vh_daemon_path(d, "busy.sock", path, sizeof(path));
	lfd = full_listener(path, cfd, 64, &nc);
	T_CHECK(lfd >= 0, "listener");
	{
		char *argv[] = {(char *)bin, "-m", "0x1", "-S", d->sock_dir, "-r", path, NULL};

		T_CHECK(posix_spawn(&pid, bin, NULL, NULL, argv, environ) == 0, "spawn");
	}
	deadline = vh_fe_now_ms() + 10000;
	while ((w = waitpid(pid, &status, WNOHANG)) == 0 && vh_fe_now_ms() < deadline) {
		struct timespec ts = {0, 5 * 1000 * 1000};

		nanosleep(&ts, NULL);
	}
	if (w == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	while (nc-- > 0) {
		close(cfd[nc]);
	}
	close(lfd);
	T_CHECK(w == pid, "daemon with its RPC path on a busy listener still runs after 10 s");
	T_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1, "exit status 0x%x, expected 1",
	        (unsigned)status);
	T_CHECK(is_socket(path), "the busy listener's socket was unlinked");
	fprintf(stderr, "ok: RPC socket over a busy listener: exit 1\n");
	return 0;
}

int
main(void)
{
	struct vh_daemon d;
	int rc, fail = 0;

	if (vh_test_qsd()) {
		return VH_TEST_SKIP;
	}
	rc = vh_daemon_start(&d, NULL, NULL, 10000);
	if (rc == -ENOENT) {
		return VH_TEST_SKIP;
	}
	if (rc < 0) {
		fprintf(stderr, "FAIL: vhostd did not start: %s\n", strerror(-rc));
		return VH_TEST_FAIL;
	}
	if (vh_rpc_call(d.rpc_path, "bdev_malloc_create",
	                json_pack("{s:s, s:i, s:i}", "name", "Malloc0", "num_blocks", 2048,
	                          "block_size", 512),
	                NULL, NULL, NULL, 0, RPC_TIMEOUT_MS) < 0) {
		fprintf(stderr, "FAIL: bdev_malloc_create\n");
		fail = 1;
	}
	fail |= !fail && case_rpc_socket_name(&d) < 0;
	fail |= !fail && case_foreign_listener(&d) < 0;
	fail |= !fail && case_regular_file(&d) < 0;
	fail |= !fail && case_rpc_over_full_listener(&d) < 0;
	rc = vh_daemon_stop(&d, 10000);
	if (rc != 0) {
		fprintf(stderr, "FAIL: vhostd stop status %d\n", rc);
		fail = 1;
	}
	fprintf(stderr, "test_sockets: %s\n", fail ? "FAIL" : "PASS");
	return fail ? VH_TEST_FAIL : VH_TEST_PASS;
}
