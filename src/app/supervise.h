/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VH_APP_SUPERVISE_H
#define VH_APP_SUPERVISE_H

/*
 * Run as the supervisor of a worker started with the same arguments minus --supervise.
 * Returns the process exit status. Main thread, before anything else is set up.
 */
int vh_supervise(int argc, char **argv);

#endif
