#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# The guest's write-cache choice survives a crash of the worker (docs/design.md, "The writeback
# byte across reconnects"). `vhostd --supervise` serves an io_uring bdev on a file; QEMU 7.2
# with reconnect=1. The guest boots seeing "write back" (QEMU read the configuration space at
# realize), writes for a while (the bdev counts no durable write), switches the disk to
# "write through" (/sys/block/vda/cache_type: SET_CONFIG through QEMU) and keeps writing with
# fio crc32c verify. The host checks that writes are now durable (the bdev's fua_writes
# counter grows), kills the worker with SIGKILL VQ_KILLS times (default 2), and after each
# reconnect (QEMU does not read the configuration again) checks that the new worker still makes
# every write durable. Then the guest must still read "write through", fio must pass, and the
# guest kernel must log no I/O error.
. "$(dirname "$0")/lib.sh"
vq_init wce
kills=${VQ_KILLS:-2}
vq_vhostd_paths
conf="$VQ_TMP/vhostd.json"
truncate -s 64M "$VQ_TMP/disk.img"
cat >"$conf" <<JSON
{"subsystems": [
  {"subsystem": "bdev", "config": [
    {"method": "bdev_uring_create", "params": {"name": "File0", "filename": "$VQ_TMP/disk.img", "block_size": 512}}]},
  {"subsystem": "vhost_blk", "config": [
    {"method": "vhost_create_blk_controller", "params": {"ctrlr": "vhost.0", "dev_name": "File0", "cpumask": "0x1"}}]}
]}
JSON
vq_vhostd_conf_start "$conf" "$VQ_TMP/vhostd.log" --supervise
sup=$VQ_DAEMON_PID

# The current worker's durable writes of File0 (its counters start at 0 with each worker).
fua() {
	vq_rpc -t 5 call bdev_get_bdevs '{"name": "File0"}' |
		python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["driver_specific"]["uring"]["fua_writes"])'
}

vq_image
VQ_SOCK="$VQ_SOCKDIR/vhost.0"
VQ_RECONNECT=1
guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'GUEST'
. /etc/vtest.sh
ct=$(cat /sys/block/vda/cache_type)
[ "$ct" = "write back" ] || vt_fail "cache_type at boot is '$ct', expected 'write back'"
fio --name=wb --filename=/dev/vda --direct=1 --ioengine=libaio --iodepth=4 --rw=randwrite \
	--bs=4k --size=16M --time_based=1 --runtime=3 >/tmp/wb.out 2>&1 || vt_fail "fio (write back) failed"
echo "wb-done"
echo "write through" >/sys/block/vda/cache_type || vt_fail "cannot switch to write through"
echo "wt-set"
fio --name=wt --filename=/dev/vda --direct=1 --ioengine=libaio --iodepth=4 --rw=randwrite \
	--bs=4k --offset=16M --size=32M --verify=crc32c --verify_backlog=256 --verify_fatal=1 \
	--do_verify=1 --time_based=1 --runtime="$VT_RUNTIME" >/tmp/wt.out 2>&1
rc=$?
cat /tmp/wt.out
[ $rc -eq 0 ] || vt_fail "fio (write through) exited with $rc"
grep -q 'err= 0' /tmp/wt.out || vt_fail "fio reported an error"
ct=$(cat /sys/block/vda/cache_type)
[ "$ct" = "write through" ] || vt_fail "cache_type is '$ct' after the restarts"
vt_no_io_errors
GUEST
runtime=$((kills * 8 + 12))
initrd="$VQ_TMP/guest.initrd"
vq_make_initrd "$initrd" "$guest" VT_RUNTIME="$runtime"
log="$VQ_TMP/guest.log"
vq_qemu_start "$log" "$initrd"
vq_wait_for "the guest's writeback phase" 180 grep -q wb-done "$log" || vq_fail "guest never wrote"
n=$(fua) || vq_fail "cannot read fua_writes"
vq_log "write back: $n durable writes"
[[ "$n" -eq 0 ]] || vq_fail "writes were made durable while the guest had a write cache ($n)"
vq_wait_for "the guest to choose write through" 60 grep -q wt-set "$log" || vq_fail "guest never switched"
sleep 2
n=$(fua) || vq_fail "cannot read fua_writes"
vq_log "write through: $n durable writes in ~2 s"
[[ "$n" -gt 0 ]] || vq_fail "write through: no durable write"
for ((i = 1; i <= kills; i++)); do
	worker=$(pgrep -P "$sup" | head -n1)
	[[ -n "$worker" ]] || vq_fail "no worker process before kill $i"
	n0=$(grep -c "started: size" "$VQ_TMP/vhostd.log")
	kill -9 "$worker"
	vq_wait_for "the queues to restart" 30 bash -c "[ \$(grep -c 'started: size' '$VQ_TMP/vhostd.log') -ge $((n0 + 1)) ]" ||
		vq_fail "QEMU did not reconnect after kill $i"
	a=$(fua) || vq_fail "cannot read fua_writes after kill $i"
	sleep 3
	b=$(fua) || vq_fail "cannot read fua_writes after kill $i"
	vq_log "kill $i/$kills: the new worker made $((b - a)) writes durable in 3 s"
	[[ $((b - a)) -gt 0 ]] || vq_fail "after kill $i the guest's writes are no longer durable"
done
vq_qemu_wait
rc=$?
res=$(vq_result "$log")
rrc=$?
vq_log "guest: $res (qemu rc $rc)"
if [[ $rrc -ne 0 || $rc -ne 0 ]]; then
	tail -n 40 "$log" >&2
	vq_fail "guest failed"
fi
vq_pass
