/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * core/handover.c for the ring fuzz targets: never supervised, so nothing is inherited and
 * nothing is kept (what handover.c itself does without a supervisor), without its event loop.
 */
#include <errno.h>

#include "core/handover.h"

int
vh_handover_take(const char *key)
{
	(void)key;
	return -ENOENT;
}

int
vh_handover_keep(const char *key, int fd)
{
	(void)key;
	(void)fd;
	return 0;
}

void
vh_handover_drop(const char *key)
{
	(void)key;
}
