#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# test-migrate.sh with the disk on an io_uring file bdev instead of a RAM disk: the data a read
# brings into guest memory is written by the kernel (io_uring), and must be logged all the same.
VQ_MIGRATE_BDEV=file exec "$(dirname "$0")/test-migrate.sh" "$@"
