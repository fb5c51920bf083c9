#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Online resize of a file-backed disk: the guest boots on a 64 MiB file and waits; the host
# grows the file to 96 MiB and calls bdev_uring_rescan; vhostd sends CONFIG_CHANGE_MSG, QEMU
# re-reads the config, and the guest's /sys/block/vda/size changes without a reboot. The guest
# then writes and reads back the last MiB of the new space.
# vhostd only (skips with the qsd back-end).
. "$(dirname "$0")/lib.sh"
vq_init file-resize
[[ "$VQ_BACKEND" == vhostd ]] || vq_skip "file bdevs are a vhostd feature"

img="$VQ_TMP/disk.img"
truncate -s 64M "$img"
vq_backend_start
vq_rpc call bdev_uring_create "{\"name\": \"f0\", \"filename\": \"$img\"}" >/dev/null ||
	vq_fail "bdev_uring_create failed"
vq_rpc vhost_create_blk_controller --cpumask 0x1 vhost.0 f0 >/dev/null ||
	vq_fail "vhost_create_blk_controller failed"
VQ_SOCK="$VQ_SOCKDIR/vhost.0"
vq_wait_for "socket $VQ_SOCK" 10 test -S "$VQ_SOCK" || vq_fail "controller socket missing"

guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'EOF'
. /etc/vtest.sh
s0=$(cat /sys/block/vda/size)
[ "$s0" = "$VT_OLD" ] || vt_fail "initial size $s0, expected $VT_OLD"
echo "VT-WAIT-RESIZE"
i=0
while [ "$(cat /sys/block/vda/size)" = "$s0" ]; do
	i=$((i + 1))
	[ $i -gt 400 ] && vt_fail "size still $s0 after 40 s"
	usleep 100000
done
s1=$(cat /sys/block/vda/size)
vt_log "size $s0 -> $s1 sectors"
[ "$s1" = "$VT_NEW" ] || vt_fail "new size $s1, expected $VT_NEW"
last=$((s1 / 2048 - 1))
dd if=/dev/urandom of=/tmp/blk bs=1M count=1 2>/dev/null
dd if=/tmp/blk of=/dev/vda bs=1M seek=$last count=1 oflag=direct 2>/dev/null || vt_fail "write at ${last} MiB"
[ "$(vt_sum /dev/vda $last 1)" = "$(sha256sum </tmp/blk | cut -d' ' -f1)" ] ||
	vt_fail "read back at ${last} MiB differs"
vt_no_io_errors
EOF
log="$VQ_TMP/resize.log"
initrd="$VQ_TMP/resize.initrd"
vq_make_initrd "$initrd" "$guest" VT_OLD=$((64 * 2048)) VT_NEW=$((96 * 2048))
vq_log "booting guest 'resize'"
vq_qemu_start "$log" "$initrd"
vq_wait_for "the guest to wait for the resize" 120 grep -aq VT-WAIT-RESIZE "$log" ||
	vq_fail "guest never got ready: $(tail -n 5 "$log")"
truncate -s 96M "$img"
vq_rpc call bdev_uring_rescan '{"name": "f0"}' >/dev/null || vq_fail "bdev_uring_rescan failed"
vq_log "file grown to 96 MiB, rescan done"
vq_qemu_wait
rc=$?
res=$(vq_result "$log")
rrc=$?
vq_log "guest 'resize': $res (qemu rc $rc)"
if [[ $rrc -ne 0 || $rc -ne 0 ]]; then
	tail -n 30 "$log" >&2
	vq_fail "guest did not see the resize"
fi
grep -a 'vtest: size' "$log" | sed 's/^/  /' >&2
nb=$(vq_rpc bdev_get_bdevs -b f0 | tr -d ' \n' | grep -o '"num_blocks":[0-9]*' | cut -d: -f2)
[[ "$nb" == $((96 * 2048)) ]] || vq_fail "bdev num_blocks $nb after the rescan"
vq_backend_alive || vq_fail "back-end died"
vq_backend_log_errors
vq_pass
