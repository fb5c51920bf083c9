/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * JSON-RPC 2.0 server on a UNIX socket, with SPDK's method and parameter names.
 *
 * Rules:
 * - Everything here runs on the control thread.
 * - The socket is created mode 0600 (owner only), with @group if it is not -1 (then 0660).
 * - Limits: request size, concurrent clients and idle time are bounded (docs/rpc.md).
 */
#ifndef VH_RPC_RPC_H
#define VH_RPC_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

/* Listen on @path (an existing stale socket is replaced). Returns 0 or -errno. */
int vh_rpc_server_start(const char *path, gid_t group);
/* Close every client and the listening socket; unlink it. */
void vh_rpc_server_stop(void);
/* Stop accepting clients (a live upgrade's new worker takes the socket over); keep the rest. */
void vh_rpc_server_pause_accept(void);

/*
 * Replay a save_config JSON file (subsystems -> config -> {method, params}) through the method
 * table. Returns 0, -ENOENT if the file does not exist, or another -errno after logging an error
 * that names the file and the failing entry.
 */
int vh_rpc_load_config(const char *path);

/*
 * Persist the configuration to @path (NULL: never) after every successful state-changing RPC:
 * the whole save_config document, written to a temp file, fsync'ed, renamed over @path, and the
 * directory fsync'ed, so a crash leaves either the old or the new file.
 */
void vh_rpc_set_config_path(const char *path);

/* Write the current configuration to the config path now. Returns 0 or -errno. */
int vh_rpc_save_config_file(void);

/*
 * Live upgrade (src/app/upgrade.c). While frozen, methods that change state are refused
 * (-EBUSY: the new process replays the config file as it is now); the others are served.
 */
void vh_rpc_freeze(bool frozen);
/* Run requests that wait (vh_rpc_wait) again now: what they wait for may have happened. */
void vh_rpc_wake(void);
/*
 * The vhostd_upgrade method's engine: start() begins an upgrade (0, or -errno: -ENOTSUP when
 * not supervised, -EALREADY); poll() returns 1 while it runs, 0 when it finished (*result: a
 * new reference), or -errno with a reason in @why; info() describes the upgrade that started
 * this process, if one did (vhostd_get_upgrade_info; a new reference).
 */
struct vh_rpc_upgrade_ops {
	int (*start)(void);
	int (*poll)(json_t **result, char *why, size_t whylen);
	json_t *(*info)(void);
};
void vh_rpc_set_upgrade_ops(const struct vh_rpc_upgrade_ops *ops);

#endif
