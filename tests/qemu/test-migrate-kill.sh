#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# test-migrate.sh with vhostd under --supervise and its worker killed (SIGKILL) during every
# migration: the source and the destination QEMU both lose their back-end mid-migration and
# reconnect (QEMU 7.2 takes the shortcut described in docs/design.md, "A crash during live
# migration"). The guest's data must come through intact and no I/O error may reach it.
VQ_MIGRATE_KILL=1 exec "$(dirname "$0")/test-migrate.sh" "$@"
