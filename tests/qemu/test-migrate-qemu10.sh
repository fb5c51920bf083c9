#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# test-migrate.sh across QEMU versions, the way an operator upgrades QEMU under a running VM:
# the guest starts on Debian 12's QEMU 7.2 and migrates to bookworm-backports' QEMU 10.0
# (unpacked by qemu-backports.sh, not installed), then from 10.0 to 10.0, under fio verify and
# the dirty-log md5 check. Both run machine type pc-i440fx-7.2, which a migration keeps. The
# 10.0 destination connects to vhostd while the 7.2 source still runs: two front-end versions
# on one controller at once. Skips when the backports QEMU cannot be fetched.
here=$(dirname "$0")
env=$(bash "$here/qemu-backports.sh" --env 2>/dev/null) || {
	echo "SKIP: no bookworm-backports QEMU (qemu-backports.sh)" >&2
	exit 77
}
eval "$env"
export VQ_MIGRATE_QEMU_DST=$VQB_QEMU
export VQ_MIGRATE_QEMU_DST_MODULE_DIR=$VQB_MODULE_DIR
export VQ_MIGRATE_QEMU_DST_DATA_DIR=$VQB_DATA_DIR
export VQ_MIGRATE_MACHINE=pc-i440fx-7.2
export VQ_MIGRATIONS=${VQ_MIGRATIONS:-2}
exec bash "$here/test-migrate.sh" "$@"
