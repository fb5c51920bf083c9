#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# test-file-fio-verify.sh with the image on tmpfs (/dev/shm): there the uring bdev copies reads
# and writes inline on the reactor instead of going through io_uring (docs/bdev-file.md), so
# the same guest fio verify, host checksum and restart check run on that path.
[[ -d /dev/shm && -w /dev/shm ]] || { echo "SKIP: no writable /dev/shm"; exit 77; }
export VQ_FILE_DIR=/dev/shm
exec bash "$(dirname "$0")/test-file-fio-verify.sh"
