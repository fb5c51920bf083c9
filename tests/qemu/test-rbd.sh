#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# A real guest on a Ceph RBD image served by vhostd, against a real single-node cluster
# (tests/ceph/ceph-cluster.sh):
#   boot 1: the guest writes 16 MiB of random data at 8 MiB with O_DIRECT + fsync and prints its
#           checksum; then waits while the host grows the image with `rbd resize` (another
#           client): the guest sees the new size online and writes its last MiB;
#   host:   `rbd export` (another librbd client) holds exactly what the guest wrote;
#   restart: vhostd stops (SIGTERM) and a new one serves the image from the same config file;
#   boot 2: a second guest reads the same checksum, sees the grown size, and writes more, which
#           the host checks with `rbd export` again.
# vhostd only; skips (77) without Ceph, root, or a vhostd built with rbd.
. "$(dirname "$0")/lib.sh"
vq_init rbd
[[ "$VQ_BACKEND" == vhostd ]] || vq_skip "the rbd bdev is a vhostd feature"
ceph_sh="$VQ_SRC_ROOT/tests/ceph/ceph-cluster.sh"
"$ceph_sh" check || vq_skip "Ceph is not installed (scripts/install-deps.sh)"
[[ $(id -u) -eq 0 ]] || vq_skip "the test Ceph cluster needs root"
VQ_VHOSTD=$(vq_bin VHOSTD vhostd)
VQ_VHOSTCTL=$(vq_bin VHOSTCTL vhostctl)
VQ_SOCKDIR="$VQ_TMP/sock"
VQ_RPC="$VQ_TMP/rpc.sock"
mkdir -p "$VQ_SOCKDIR"
conf="$VQ_TMP/vhostd.json"

# The cluster lives in the temp dir; its watchdog stops it when this script exits.
cdir="$VQ_TMP/ceph"
t0=$SECONDS
while IFS='=' read -r k v; do
	case $k in
	CEPH_CONF) ceph_conf=$v ;;
	CEPH_POOL) pool=$v ;;
	esac
done < <("$ceph_sh" start "$cdir" --owner $$ 2>"$VQ_TMP/ceph-start.log")
[[ -n "${ceph_conf:-}" && -n "${pool:-}" ]] || vq_fail "the Ceph cluster did not start: $(tail -n 5 "$VQ_TMP/ceph-start.log")"
vq_log "Ceph cluster up in $((SECONDS - t0)) s"
rbd -c "$ceph_conf" create --size 64M "$pool/vm" || vq_fail "rbd create"

start_daemon() {
	rm -f "$VQ_RPC"
	"$VQ_VHOSTD" -m 0x1 -S "$VQ_SOCKDIR" -r "$VQ_RPC" -c "$conf" -L info \
		>>"$VQ_TMP/vhostd.log" 2>&1 &
	VQ_DAEMON_PID=$!
	vq_track "$VQ_DAEMON_PID" vhostd
	vq_wait_for "vhostd RPC socket" 30 "$VQ_VHOSTCTL" -s "$VQ_RPC" -t 1 spdk_get_version \
		>/dev/null || vq_fail "vhostd did not come up"
}

start_daemon
vq_rpc rpc_get_methods | grep -q bdev_rbd_create || vq_skip "vhostd was built without rbd"
vq_rpc call bdev_rbd_register_cluster "{\"name\": \"ceph\", \"config_file\": \"$ceph_conf\"}" \
	>/dev/null || vq_fail "bdev_rbd_register_cluster failed"
vq_rpc call bdev_rbd_create "{\"name\": \"rbd0\", \"pool_name\": \"$pool\", \"rbd_name\": \"vm\", \
\"block_size\": 512, \"cluster_name\": \"ceph\"}" >/dev/null || vq_fail "bdev_rbd_create failed"
vq_rpc vhost_create_blk_controller --cpumask 0x1 vhost.0 rbd0 >/dev/null ||
	vq_fail "vhost_create_blk_controller failed"
VQ_SOCK="$VQ_SOCKDIR/vhost.0"
vq_wait_for "socket $VQ_SOCK" 10 test -S "$VQ_SOCK" || vq_fail "controller socket missing"

# Bytes [off_mib, off_mib + len_mib) MiB of the image, as another librbd client reads them.
export_sum() {
	local off=$1 len=$2 out="$VQ_TMP/export.img"
	rm -f "$out"
	rbd -c "$ceph_conf" export --no-progress "$pool/vm" "$out" >&2 || return 1
	dd if="$out" bs=1M skip="$off" count="$len" 2>/dev/null | sha256sum | cut -d' ' -f1
	rm -f "$out"
}

guest1="$VQ_TMP/guest1.sh"
cat >"$guest1" <<'EOF'
. /etc/vtest.sh
[ "$(cat /sys/block/vda/size)" = "$VT_OLD" ] || vt_fail "size $(cat /sys/block/vda/size), expected $VT_OLD"
dd if=/dev/urandom of=/tmp/p bs=1M count=16 2>/dev/null
dd if=/tmp/p of=/dev/vda bs=1M seek=8 count=16 oflag=direct conv=fsync 2>/dev/null ||
	vt_fail "writing the pattern failed"
sum=$(sha256sum </tmp/p | cut -d' ' -f1)
[ "$(vt_sum /dev/vda 8 16)" = "$sum" ] || vt_fail "read back differs"
echo "SUM: $sum"
echo "VT-WAIT-RESIZE"
i=0
while [ "$(cat /sys/block/vda/size)" = "$VT_OLD" ]; do
	i=$((i + 1))
	[ $i -gt 600 ] && vt_fail "size still $VT_OLD after 60 s"
	usleep 100000
done
s1=$(cat /sys/block/vda/size)
[ "$s1" = "$VT_NEW" ] || vt_fail "new size $s1, expected $VT_NEW"
vt_log "size $VT_OLD -> $s1 sectors"
last=$((s1 / 2048 - 1))
dd if=/dev/urandom of=/tmp/blk bs=1M count=1 2>/dev/null
dd if=/tmp/blk of=/dev/vda bs=1M seek=$last count=1 oflag=direct conv=fsync 2>/dev/null ||
	vt_fail "write at ${last} MiB"
[ "$(vt_sum /dev/vda $last 1)" = "$(sha256sum </tmp/blk | cut -d' ' -f1)" ] ||
	vt_fail "read back at ${last} MiB differs"
echo "LAST: $(sha256sum </tmp/blk | cut -d' ' -f1)"
vt_no_io_errors
EOF
log="$VQ_TMP/boot1.log"
initrd="$VQ_TMP/boot1.initrd"
vq_make_initrd "$initrd" "$guest1" VT_OLD=$((64 * 2048)) VT_NEW=$((96 * 2048))
vq_log "booting guest 'boot1'"
vq_qemu_start "$log" "$initrd"
vq_wait_for "the guest to wait for the resize" 180 grep -aq VT-WAIT-RESIZE "$log" ||
	vq_fail "guest never got to the resize: $(tail -n 5 "$log")"
rbd -c "$ceph_conf" resize --no-progress --size 96M "$pool/vm" || vq_fail "rbd resize"
vq_log "image grown to 96 MiB by another client"
vq_qemu_wait
rc=$?
rm -f "$initrd"
res=$(vq_result "$log")
rrc=$?
vq_log "guest 'boot1': $res (qemu rc $rc)"
if [[ $rrc -ne 0 || $rc -ne 0 ]]; then
	tail -n 30 "$log" >&2
	vq_fail "boot 1 failed"
fi
sum=$(vq_guest_output boot1 SUM)
last=$(vq_guest_output boot1 LAST)
[[ -n "$sum" && -n "$last" ]] || vq_fail "boot 1 printed no checksum"

# Another librbd client sees exactly what the guest wrote.
[[ "$(export_sum 8 16)" == "$sum" ]] || vq_fail "rbd export differs from what the guest wrote"
[[ "$(export_sum 95 1)" == "$last" ]] || vq_fail "rbd export: the last MiB differs"
vq_log "rbd export matches the guest's data ($sum)"

# Restart: a clean stop closes the image (flushes, releases the lock); the config comes back.
vq_stop "$VQ_DAEMON_PID" vhostd 20 || vq_fail "vhostd did not exit on SIGTERM"
vq_untrack "$VQ_DAEMON_PID"
start_daemon
vq_wait_for "socket $VQ_SOCK" 10 test -S "$VQ_SOCK" || vq_fail "controller not restored from $conf"

guest2="$VQ_TMP/guest2.sh"
cat >"$guest2" <<'EOF'
. /etc/vtest.sh
[ "$(cat /sys/block/vda/size)" = "$VT_NEW" ] || vt_fail "size $(cat /sys/block/vda/size), expected $VT_NEW"
[ "$(vt_sum /dev/vda 8 16)" = "$VT_SUM" ] || vt_fail "the data changed across the restart"
[ "$(vt_sum /dev/vda 95 1)" = "$VT_LAST" ] || vt_fail "the last MiB changed across the restart"
dd if=/dev/urandom of=/tmp/q bs=1M count=4 2>/dev/null
dd if=/tmp/q of=/dev/vda bs=1M seek=40 count=4 oflag=direct conv=fsync 2>/dev/null ||
	vt_fail "writing after the restart failed"
echo "SUM2: $(sha256sum </tmp/q | cut -d' ' -f1)"
vt_no_io_errors
EOF
vq_boot_guest boot2 "$guest2" VT_SUM="$sum" VT_LAST="$last" VT_NEW=$((96 * 2048)) ||
	vq_fail "boot 2 (after the restart) failed"
sum2=$(vq_guest_output boot2 SUM2)
[[ -n "$sum2" && "$(export_sum 40 4)" == "$sum2" ]] || vq_fail "rbd export differs after boot 2"
vq_log "second guest read the same data after the restart; its writes are in the image"
vq_backend_alive || vq_fail "vhostd died"
vq_backend_log_errors
# vhostd first: closing the image needs the cluster.
vq_stop "$VQ_DAEMON_PID" vhostd 20 || vq_fail "vhostd did not exit on SIGTERM"
vq_untrack "$VQ_DAEMON_PID"
"$ceph_sh" stop "$cdir"
vq_pass
