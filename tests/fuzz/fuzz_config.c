/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzz target: the configuration file loader, vh_rpc_load_config(), which replays a save_config
 * document through the RPC method table at start-up. The input is the file, served from a memfd
 * through /proc/self/fd (a regular file, no disk I/O). Each run starts from an empty dry-run
 * registry (tests/unit/rpc/stubs.c).
 *
 * Checked: no sanitizer report, no leak, and a rejected file returns -errno.
 */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_rpc_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int g_fd = -1;
static char g_path[64];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	g_fd = memfd_create("fuzz-config", MFD_CLOEXEC);
	if (g_fd < 0) {
		abort();
	}
	snprintf(g_path, sizeof(g_path), "/proc/self/fd/%d", g_fd);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int rc;

	stub_reset();
	if (ftruncate(g_fd, 0) < 0 || pwrite(g_fd, data, size, 0) != (ssize_t)size) {
		abort();
	}
	rc = vh_rpc_load_config(g_path);
	if (rc > 0 || rc == -ENOENT) {
		abort(); /* the file exists: it is applied (0) or refused (-errno, not ENOENT) */
	}
	return 0;
}
