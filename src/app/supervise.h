/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VH_APP_SUPERVISE_H
#define VH_APP_SUPERVISE_H

#include <stdbool.h>

/*
 * Run as the supervisor of a worker started with the same arguments minus --supervise.
 * @have_config: the command line names a config file (as parsed, so "--conf=F" and "-cF" count);
 * without one the supervisor adds "-c <file>" in a private directory it creates (mkdtemp, 0700)
 * and removes on exit, so a restarted worker comes back with the same state.
 * Returns the process exit status: the worker's when it stopped on SIGTERM/SIGINT or exited 0,
 * 0 when asked to stop while no worker ran, 1 if the supervisor itself could not be set up.
 * Main thread, before anything else is set up.
 */
int vh_supervise(int argc, char **argv, bool have_config);

#endif
