/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Test helpers around a vhostd process: spawn it in a fresh temp dir, talk JSON-RPC to it, and
 * stop it. Used by tests/func and bench.
 *
 * Rules:
 * - No globals: all state is in struct vh_daemon / the caller.
 * - Every wait is a poll with a deadline; nothing sleeps for synchronisation.
 * - Not thread-safe; call from one thread.
 */
#ifndef VH_TESTS_VH_DAEMON_H
#define VH_TESTS_VH_DAEMON_H

#include <stddef.h>
#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

struct vh_daemon {
	pid_t pid;
	/* Short paths: they end up in sockaddr_un (108 bytes). */
	char dir[64];      /* fresh temp dir, removed by vh_daemon_stop() */
	char sock_dir[64]; /* == dir: controllers' sockets live here */
	char rpc_path[96]; /* dir/rpc.sock */
	int rpc_id;
};

/*
 * Make a temp dir and start `$VHOSTD -m 0x1 -S dir -r dir/rpc.sock -L info [extra...]`
 * (extra is a NULL-terminated list, may be NULL); wait up to timeout_ms for the RPC socket to
 * accept connections. The binary comes from $VHOSTD (or `binary` if not NULL).
 * Returns 0, -ENOENT (no binary), -ETIMEDOUT, -ECHILD (daemon exited early) or -errno.
 */
int vh_daemon_start(struct vh_daemon *d, const char *binary, const char *const *extra,
                    int timeout_ms);
/* Reset d and make its fresh temp dir (vh_daemon_start() does this itself). 0 or -errno. */
int vh_daemon_mkdir(struct vh_daemon *d);
/*
 * Generic variant: make the temp dir unless d->dir is already set (zero d first), spawn argv
 * (argv[0] is the binary; the string "@DIR@" in any argument is replaced by the temp dir), and wait
 * up to timeout_ms for `ready` (relative to the dir) to exist. For peers without an RPC socket,
 * e.g. qemu-storage-daemon.
 */
int vh_daemon_spawn(struct vh_daemon *d, const char *const *argv, const char *ready,
                    int timeout_ms);
/*
 * SIGTERM, wait up to timeout_ms, then SIGKILL; reap; remove the temp dir.
 * Returns the exit status as from waitpid() (or -errno), so callers can check for a clean exit.
 */
int vh_daemon_stop(struct vh_daemon *d, int timeout_ms);
/* Whether the process is still running (reaps it if it died). */
bool vh_daemon_alive(struct vh_daemon *d);
/*
 * For `vhostd --supervise`: the pid of the daemon's (the supervisor's) child, i.e. the worker,
 * from /proc/PID/task/PID/children or, without CONFIG_PROC_CHILDREN, a scan of /proc/N/stat.
 * Returns the pid, or -ESRCH if it has none right now (e.g. between a crash and the restart).
 */
pid_t vh_daemon_child(const struct vh_daemon *d);
/* dir/name into buf (for controller sockets). */
const char *vh_daemon_path(const struct vh_daemon *d, const char *name, char *buf, size_t len);

/*
 * One JSON-RPC 2.0 call on a fresh connection to rpc_path. params is stolen (may be NULL).
 * On success returns 0 and *result (new reference, may be NULL if not wanted). If the server
 * answered with an error object, returns -EREMOTEIO and sets *err_code / *err_msg (copied into
 * err_msg_buf, may be NULL). Transport failures return -errno (-ETIMEDOUT after timeout_ms).
 */
int vh_rpc_call(const char *rpc_path, const char *method, json_t *params, json_t **result,
                int *err_code, char *err_msg_buf, size_t err_msg_len, int timeout_ms);

/*
 * Send raw bytes (e.g. malformed JSON) and read one JSON reply. Returns 0 and *reply (new
 * reference), or -errno; -ECONNRESET if the server closed without answering.
 */
int vh_rpc_raw(const char *rpc_path, const char *text, json_t **reply, int timeout_ms);

#endif
