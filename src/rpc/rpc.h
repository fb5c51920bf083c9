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

#include <sys/types.h>

/* Listen on @path (an existing stale socket is replaced). Returns 0 or -errno. */
int vh_rpc_server_start(const char *path, gid_t group);
/* Close every client and the listening socket; unlink it. */
void vh_rpc_server_stop(void);

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

#endif
