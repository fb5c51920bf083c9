#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# vhost-user-scsi crash recovery: vhostd is killed with SIGKILL and restarted from its config
# file VQ_KILLS times (default 3) while the guest writes with fio (libaio, iodepth 16, two jobs)
# and then verifies every block (crc32c). QEMU reconnects, hands the inflight region back, and
# vhostd resubmits the commands that were in flight on the request queues (and answers event
# buffers left in flight with NO_EVENT). The disk is a file on tmpfs (its data survives the
# kills) whose completions are held for a random 0-3 ms, so commands are in flight, and
# complete out of order, when a kill lands.
#
# Needs QEMU >= 8.2: 7.2's vhost-user-scsi has no reconnect (a lost back-end is fatal to the
# device). Uses Debian 12's bookworm-backports QEMU 10.0, unpacked next to 7.2 by
# qemu-backports.sh (skips when it cannot be had). vhostd only.
. "$(dirname "$0")/lib.sh"
vq_init scsi-reconnect
[[ "$VQ_BACKEND" == vhostd ]] || vq_skip "vhost-user-scsi is a vhostd back-end"
kills=${VQ_KILLS:-3}
bpo=$("$VQ_LIB_DIR/qemu-backports.sh" --env 2>"$VQ_TMP/qemu-backports.log")
case $? in
0) eval "$bpo" ;;
77) cat "$VQ_TMP/qemu-backports.log" >&2; vq_skip "bookworm-backports QEMU unavailable" ;;
*) cat "$VQ_TMP/qemu-backports.log" >&2; vq_fail "qemu-backports.sh failed" ;;
esac
export QEMU_MODULE_DIR=$VQB_MODULE_DIR
VQ_QEMU_BIN=$VQB_QEMU
vq_log "QEMU $VQB_VERSION ($VQB_QEMU)"

VQ_VHOSTD=$(vq_bin VHOSTD vhostd)
VQ_VHOSTCTL=$(vq_bin VHOSTCTL vhostctl)
[[ -x "$VQ_VHOSTD" && -x "$VQ_VHOSTCTL" ]] || vq_skip "vhostd not built (set VHOSTD, VHOSTCTL)"
VQ_SOCKDIR="$VQ_TMP/sock"
VQ_RPC="$VQ_TMP/rpc.sock"
mkdir -p "$VQ_SOCKDIR"
img=$(mktemp /dev/shm/vhostd-scsi-reconnect.XXXXXX)
VQ_EXTRA_RM+=("$img")
truncate -s 128M "$img"
conf="$VQ_TMP/vhostd.json"
cat >"$conf" <<JSON
{"subsystems": [
  {"subsystem": "bdev", "config": [
    {"method": "bdev_uring_create", "params": {"name": "F0", "filename": "$img", "block_size": 512}},
    {"method": "bdev_set_test_delay", "params": {"name": "F0", "max_delay_us": 3000}}]},
  {"subsystem": "vhost_scsi", "config": [
    {"method": "vhost_create_scsi_controller", "params": {"ctrlr": "scsi0", "cpumask": "0x1"}},
    {"method": "vhost_scsi_controller_add_target", "params": {"ctrlr": "scsi0", "scsi_target_num": 0, "bdev_name": "F0"}}]}
]}
JSON

start_daemon() {
	rm -f "$VQ_RPC"
	"$VQ_VHOSTD" -m 0x1 -S "$VQ_SOCKDIR" -r "$VQ_RPC" -c "$conf" -L debug >>"$VQ_TMP/vhostd.log" 2>&1 &
	VQ_DAEMON_PID=$!
	vq_track "$VQ_DAEMON_PID" vhostd
	vq_wait_for "vhostd RPC socket" 10 "$VQ_VHOSTCTL" -s "$VQ_RPC" -t 1 spdk_get_version >/dev/null ||
		vq_fail "vhostd did not come up"
}

start_daemon
sock="$VQ_SOCKDIR/scsi0"
# 10.0 spells the chardev option reconnect-ms; -L: its own firmware (and backports' seabios).
VQ_QEMU_ARGS=(-L "$VQB_DATA_DIR" -chardev "socket,id=c0,path=$sock,reconnect-ms=1000"
	-device "vhost-user-scsi-pci,chardev=c0,num_queues=$VQ_QUEUES")
nvq=$((VQ_QUEUES + 2))

guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'GUEST'
. /etc/vtest.sh
i=0
while [ ! -e /sys/bus/scsi/devices/0:0:0:0/block ]; do
	i=$((i + 1))
	[ $i -gt 300 ] && vt_fail "no SCSI disk"
	usleep 100000
done
d=$(ls /sys/bus/scsi/devices/0:0:0:0/block)
echo "fio-starting on $d"
fio --name=v --filename=/dev/$d --direct=1 --ioengine=libaio --iodepth=16 --rw=randwrite \
	--bs=4k --size=$VT_SIZE --numjobs=2 --offset_increment=$VT_SIZE --verify=crc32c \
	--verify_fatal=1 --do_verify=1 --group_reporting >/tmp/fio.out 2>&1
rc=$?
tail -n 25 /tmp/fio.out
[ $rc -eq 0 ] || vt_fail "fio exited with $rc (verify failed or I/O error)"
dmesg | grep -iE 'blocked for more than|hung task|timing out command' && vt_fail "guest kernel complained"
vt_no_io_errors
GUEST
initrd="$VQ_TMP/guest.initrd"
vq_make_initrd "$initrd" "$guest" VT_NEED_DISK=0 VT_SIZE=24M
log="$VQ_TMP/guest.log"
vq_qemu_start "$log" "$initrd"
vq_wait_for "fio to start in the guest" 180 grep -q fio-starting "$log" || vq_fail "guest never started fio"
recov=()
for ((i = 1; i <= kills; i++)); do
	sleep "$((RANDOM % 2 + 1)).$((RANDOM % 10))"
	kill -0 "$VQ_QEMU_PID" 2>/dev/null || break # fio finished early: fewer kills
	kill -9 "$VQ_DAEMON_PID" 2>/dev/null
	wait "$VQ_DAEMON_PID" 2>/dev/null
	vq_untrack "$VQ_DAEMON_PID"
	t0=$(date +%s%N)
	n0=$(grep -c "started: size" "$VQ_TMP/vhostd.log")
	start_daemon
	vq_wait_for "QEMU to reconnect" 30 bash -c "[ \$(grep -c 'started: size' '$VQ_TMP/vhostd.log') -ge $((n0 + nvq)) ]" ||
		vq_fail "QEMU did not reconnect after kill $i"
	recov+=($((($(date +%s%N) - t0) / 1000000)))
	vq_log "kill $i/$kills: reconnected after ${recov[-1]} ms"
done
((${#recov[@]} > 0)) || vq_fail "the guest finished before the first kill"
vq_qemu_wait
rc=$?
res=$(vq_result "$log")
rrc=$?
resub=$(grep -c "resubmitting" "$VQ_TMP/vhostd.log")
vq_log "guest: $res (qemu rc $rc); ${#recov[@]} kills, resubmissions logged: $resub; restart-to-reconnect ms: ${recov[*]}"
if [[ $rrc -ne 0 || $rc -ne 0 ]]; then
	tail -n 40 "$log" >&2
	vq_fail "guest saw errors across restarts"
fi
vq_pass
