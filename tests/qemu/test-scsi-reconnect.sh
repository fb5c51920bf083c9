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

vq_vhostd_paths
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

vq_vhostd_conf_start "$conf" "$VQ_TMP/vhostd.log"
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
vq_guest_start guest "$guest" VT_NEED_DISK=0 VT_SIZE=24M
vq_wait_fio_start 180
# Fewer kills when fio finishes early.
vq_kill_loop --spread 2 --while-qemu "$kills" "$nvq" "$VQ_TMP/vhostd.log" restart "$conf"
((${#VQ_RECOV[@]} > 0)) || vq_fail "the guest finished before the first kill"
vq_guest_end
ok=$?
resub=$(grep -c "resubmitting" "$VQ_TMP/vhostd.log")
vq_log "guest: $VQ_GUEST_RES (qemu rc $VQ_GUEST_QEMU_RC); ${#VQ_RECOV[@]} kills, resubmissions logged: $resub; restart-to-reconnect ms: ${VQ_RECOV[*]}"
((ok == 0)) || vq_guest_fail "guest saw errors across restarts"
vq_pass
