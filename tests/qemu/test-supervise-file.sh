#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# test-supervise.sh with a file-backed disk (io_uring bdev) instead of a RAM disk.
VQ_SUPERVISE_BDEV=file exec bash "$(dirname "$0")/test-supervise.sh" "$@"
