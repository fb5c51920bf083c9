#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# A filesystem on a file-backed disk survives a restart of vhostd:
#   boot 1: mke2fs -t ext4, mount, write files, sync, print their checksum, umount;
#   restart: vhostd is killed with SIGKILL (no clean shutdown) and a new one serves the file
#            from the same config file (the controller comes back at the same socket);
#   boot 2: e2fsck -fn is clean, mount, the files have the same checksum, write more, umount.
# vhostd only. Env: VQ_FILE_METHOD (bdev_uring_create | bdev_aio_create).
. "$(dirname "$0")/lib.sh"
vq_init file-ext4-restart
[[ "$VQ_BACKEND" == vhostd ]] || vq_skip "file bdevs are a vhostd feature"
method=${VQ_FILE_METHOD:-bdev_uring_create}
VQ_VHOSTD=$(vq_bin VHOSTD vhostd)
VQ_VHOSTCTL=$(vq_bin VHOSTCTL vhostctl)
VQ_SOCKDIR="$VQ_TMP/sock"
VQ_RPC="$VQ_TMP/rpc.sock"
mkdir -p "$VQ_SOCKDIR"
conf="$VQ_TMP/vhostd.json"
img="$VQ_TMP/disk.img"
truncate -s 64M "$img"

start_daemon() {
	rm -f "$VQ_RPC"
	"$VQ_VHOSTD" -m 0x1 -S "$VQ_SOCKDIR" -r "$VQ_RPC" -c "$conf" -L info \
		>>"$VQ_TMP/vhostd.log" 2>&1 &
	VQ_DAEMON_PID=$!
	vq_track "$VQ_DAEMON_PID" vhostd
	vq_wait_for "vhostd RPC socket" 10 "$VQ_VHOSTCTL" -s "$VQ_RPC" -t 1 spdk_get_version \
		>/dev/null || vq_fail "vhostd did not come up"
}

start_daemon
vq_rpc call "$method" "{\"name\": \"f0\", \"filename\": \"$img\"}" >/dev/null ||
	vq_fail "$method failed"
vq_rpc vhost_create_blk_controller --cpumask 0x1 vhost.0 f0 >/dev/null ||
	vq_fail "vhost_create_blk_controller failed"
grep -q vhost_create_blk_controller "$conf" || vq_fail "the config file was not written"
VQ_SOCK="$VQ_SOCKDIR/vhost.0"

guest1="$VQ_TMP/guest1.sh"
cat >"$guest1" <<'EOF'
. /etc/vtest.sh
mke2fs -q -F -t ext4 /dev/vda || vt_fail "mke2fs failed"
mount -t ext4 /dev/vda /mnt || vt_fail "mount failed"
dd if=/dev/urandom of=/mnt/big bs=1M count=12 2>/dev/null || vt_fail "writing /mnt/big failed"
i=0
while [ $i -lt 200 ]; do echo "file $i $(seq $i)" >/mnt/f$i; i=$((i + 1)); done
sync
echo "SUM: $(cat /mnt/big /mnt/f* | sha256sum | cut -d' ' -f1)"
umount /mnt || vt_fail "umount failed"
vt_no_io_errors
EOF
vq_boot_guest boot1 "$guest1" || vq_fail "boot 1 (mkfs and write) failed"
sum=$(vq_guest_output boot1 SUM)
[[ -n "$sum" ]] || vq_fail "boot 1 printed no checksum"

# No clean shutdown: what the guest synced must already be in the file.
kill -9 "$VQ_DAEMON_PID"
wait "$VQ_DAEMON_PID" 2>/dev/null
vq_untrack "$VQ_DAEMON_PID"
start_daemon
vq_wait_for "socket $VQ_SOCK" 10 test -S "$VQ_SOCK" || vq_fail "controller not restored from $conf"

guest2="$VQ_TMP/guest2.sh"
cat >"$guest2" <<'EOF'
. /etc/vtest.sh
e2fsck -fn /dev/vda >/tmp/fsck.out 2>&1 || { cat /tmp/fsck.out; vt_fail "e2fsck found problems"; }
mount -t ext4 /dev/vda /mnt || vt_fail "mount after restart failed"
sum=$(cat /mnt/big /mnt/f* | sha256sum | cut -d' ' -f1)
[ "$sum" = "$VT_SUM" ] || vt_fail "files changed across the restart: $sum != $VT_SUM"
dd if=/dev/urandom of=/mnt/more bs=1M count=4 2>/dev/null || vt_fail "writing after restart failed"
umount /mnt || vt_fail "umount failed"
vt_no_io_errors
EOF
vq_boot_guest boot2 "$guest2" VT_SUM="$sum" || vq_fail "boot 2 (after restart) failed"
vq_log "filesystem intact across kill -9 and restart ($sum)"
vq_pass
