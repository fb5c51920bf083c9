#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Crash recovery: a guest runs fio randwrite at iodepth 32 on 2 queues while vhostd is killed
# with SIGKILL and restarted from its config file VQ_KILLS times (default 5). QEMU reconnects
# (reconnect=1), hands the inflight region back, and vhostd resubmits what was in flight.
# Passes when fio exits 0 and the guest kernel logged no I/O error, "is not a head" or hung task.
# The disk is a null bdev whose completions are held for a random 0-3 ms (bdev_set_test_delay),
# so requests are in flight, and complete out of order, when the kill lands. This test is about
# lost or doubled requests, not data (the file back-end tests verify data across restarts).
# Env: VQ_KILLS (default 5).
. "$(dirname "$0")/lib.sh"
vq_init reconnect
kills=${VQ_KILLS:-5}
VQ_VHOSTD=$(vq_bin VHOSTD vhostd)
VQ_VHOSTCTL=$(vq_bin VHOSTCTL vhostctl)
VQ_SOCKDIR="$VQ_TMP/sock"
VQ_RPC="$VQ_TMP/rpc.sock"
mkdir -p "$VQ_SOCKDIR"
conf="$VQ_TMP/vhostd.json"
cat >"$conf" <<JSON
{"subsystems": [
  {"subsystem": "bdev", "config": [
    {"method": "bdev_null_create", "params": {"name": "Null0", "num_blocks": 131072, "block_size": 512}},
    {"method": "bdev_set_test_delay", "params": {"name": "Null0", "max_delay_us": 3000}}]},
  {"subsystem": "vhost_blk", "config": [
    {"method": "vhost_create_blk_controller", "params": {"ctrlr": "vhost.0", "dev_name": "Null0", "cpumask": "0x1"}}]}
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
vq_image
VQ_SOCK="$VQ_SOCKDIR/vhost.0"
VQ_RECONNECT=1

guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'GUEST'
. /etc/vtest.sh
cat >/tmp/job.fio <<JOB
[global]
filename=/dev/vda
direct=1
ioengine=libaio
iodepth=32
rw=randwrite
bs=4k
time_based=1
runtime=$VT_RUNTIME
numjobs=2
cpus_allowed=0-1
cpus_allowed_policy=split
group_reporting=1
[vtest]
JOB
echo "fio-starting"
fio /tmp/job.fio >/tmp/fio.out 2>&1
rc=$?
cat /tmp/fio.out
[ $rc -eq 0 ] || vt_fail "fio exited with $rc"
grep -q 'err= 0' /tmp/fio.out || vt_fail "fio reported an error"
dmesg | grep -iE 'is not a head|blocked for more than|hung task' && vt_fail "guest kernel complained"
vt_no_io_errors
GUEST
runtime=$((kills * 4 + 12))
initrd="$VQ_TMP/guest.initrd"
vq_make_initrd "$initrd" "$guest" VT_RUNTIME="$runtime"
log="$VQ_TMP/guest.log"
vq_qemu_start "$log" "$initrd"
vq_wait_for "fio to start in the guest" 120 grep -q fio-starting "$log" || vq_fail "guest never started fio"
recov=()
for ((i = 1; i <= kills; i++)); do
	# A random moment inside the next 1.5-3.5 s of I/O.
	sleep "$((RANDOM % 3 + 1)).$((RANDOM % 10))"
	kill -9 "$VQ_DAEMON_PID" 2>/dev/null
	wait "$VQ_DAEMON_PID" 2>/dev/null
	vq_untrack "$VQ_DAEMON_PID"
	t0=$(date +%s%N)
	n0=$(grep -c "started: size" "$VQ_TMP/vhostd.log")
	start_daemon
	# Recovered when QEMU's reconnect started the queues again (two queues).
	vq_wait_for "QEMU to reconnect" 30 bash -c "[ \$(grep -c 'started: size' '$VQ_TMP/vhostd.log') -ge $((n0 + 2)) ]" ||
		vq_fail "QEMU did not reconnect after kill $i"
	recov+=($((($(date +%s%N) - t0) / 1000000)))
	vq_log "kill $i/$kills: reconnected after ${recov[-1]} ms"
done
vq_qemu_wait
rc=$?
res=$(vq_result "$log")
rrc=$?
resub=$(grep -c "resubmitting" "$VQ_TMP/vhostd.log")
vq_log "guest: $res (qemu rc $rc); $kills kills, resubmissions logged: $resub; restart-to-reconnect ms: ${recov[*]}"
if [[ $rrc -ne 0 || $rc -ne 0 ]]; then
	tail -n 40 "$log" >&2
	vq_fail "guest saw errors across restarts"
fi
vq_pass
