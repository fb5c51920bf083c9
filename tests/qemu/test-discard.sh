#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Discard and write-zeroes from the guest: fill 40 MiB with random data, `blkdiscard` 8 MiB
# and `blkdiscard -z` 20 MiB (more than one request at the 16 MiB limits qsd advertises); the
# two ranges read back as zeroes and the untouched ranges around them keep their data.
. "$(dirname "$0")/lib.sh"
vq_init discard
vq_backend_start
vq_backend_add_disk vhost.0 64 512

guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'EOF'
. /etc/vtest.sh
q=/sys/block/vda/queue
vt_log "discard_max_bytes=$(cat $q/discard_max_bytes) discard_granularity=$(cat $q/discard_granularity) write_zeroes_max_bytes=$(cat $q/write_zeroes_max_bytes)"
[ "$(cat $q/discard_max_bytes)" -gt 0 ] || vt_fail "device does not advertise discard"
[ "$(cat $q/write_zeroes_max_bytes)" -gt 0 ] || vt_fail "device does not advertise write-zeroes"
MiB=1048576
dd if=/dev/urandom of=/tmp/pat bs=1M count=40 2>/dev/null
dd if=/tmp/pat of=/dev/vda bs=1M oflag=direct 2>/dev/null || vt_fail "writing the pattern failed"
sync
patsum() { dd if=/tmp/pat bs=1M skip=$1 count=$2 2>/dev/null | sha256sum | cut -d' ' -f1; }
[ "$(vt_sum /dev/vda 0 40)" = "$(patsum 0 40)" ] || vt_fail "pattern did not read back"
blkdiscard -o $((4 * MiB)) -l $((8 * MiB)) /dev/vda || vt_fail "blkdiscard failed"
blkdiscard -z -o $((16 * MiB)) -l $((20 * MiB)) /dev/vda || vt_fail "blkdiscard -z failed"
vt_is_zero /dev/vda 4 8 || vt_fail "discarded range 4-12 MiB does not read back as zeroes"
vt_is_zero /dev/vda 16 20 || vt_fail "write-zeroes range 16-36 MiB does not read back as zeroes"
for r in "0 4" "12 4" "36 4"; do
	set -- $r
	[ "$(vt_sum /dev/vda $1 $2)" = "$(patsum $1 $2)" ] ||
		vt_fail "data at $1-$(($1 + $2)) MiB changed by a discard/write-zeroes elsewhere"
done
# small, sector-granular write-zeroes in the middle of data
dd if=/tmp/pat of=/dev/vda bs=1M count=1 seek=50 oflag=direct 2>/dev/null
blkdiscard -z -o $((50 * MiB + 4096)) -l 8192 /dev/vda || vt_fail "small blkdiscard -z failed"
dd if=/dev/vda of=/tmp/chk bs=4096 skip=$((50 * 256 + 1)) count=2 iflag=direct 2>/dev/null
dd if=/dev/zero of=/tmp/z bs=4096 count=2 2>/dev/null
cmp -s /tmp/chk /tmp/z || vt_fail "8 KiB write-zeroes did not zero its range"
dd if=/dev/vda of=/tmp/chk bs=4096 skip=$((50 * 256)) count=1 iflag=direct 2>/dev/null
dd if=/tmp/pat of=/tmp/z bs=4096 count=1 2>/dev/null
cmp -s /tmp/chk /tmp/z || vt_fail "8 KiB write-zeroes clobbered the block before it"
vt_no_io_errors
EOF
vq_boot_guest discard "$guest" || vq_fail "guest discard/write-zeroes check failed"
vq_backend_alive || vq_fail "back-end died"
vq_pass
