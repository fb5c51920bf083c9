#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Crash recovery with data: `vhostd --supervise` serves a RAM disk whose completions are delayed
# at random (out of order); a guest runs fio randwrite with crc32c verify at iodepth 32 on two
# queues while the worker is killed with SIGKILL VQ_KILLS times (default 5). The supervisor keeps
# the socket bound and the RAM disk's memfd, restarts the worker, QEMU reconnects and hands back
# the inflight region. Passes when fio (which verifies every block it wrote, including blocks
# written across the kills) exits 0 and the guest logged no I/O error, "is not a head" or hung
# task. Reports the time from each kill to the first completion of the new worker.
# Env: VQ_KILLS (default 20), VQ_SUPERVISE_BDEV (ram, default, or file: an io_uring bdev on a
# file in the temp dir, which the restarted worker reopens).
. "$(dirname "$0")/lib.sh"
vq_init supervise
kills=${VQ_KILLS:-20}
bdev_kind=${VQ_SUPERVISE_BDEV:-ram}
VQ_VHOSTD=$(vq_bin VHOSTD vhostd)
VQ_VHOSTCTL=$(vq_bin VHOSTCTL vhostctl)
VQ_SOCKDIR="$VQ_TMP/sock"
VQ_RPC="$VQ_TMP/rpc.sock"
mkdir -p "$VQ_SOCKDIR"
conf="$VQ_TMP/vhostd.json"
if [[ "$bdev_kind" == file ]]; then
	truncate -s 64M "$VQ_TMP/disk.img"
	create="{\"method\": \"bdev_uring_create\", \"params\": {\"name\": \"Malloc0\", \"filename\": \"$VQ_TMP/disk.img\", \"block_size\": 512}}"
else
	create='{"method": "bdev_malloc_create", "params": {"name": "Malloc0", "num_blocks": 131072, "block_size": 512}}'
fi
cat >"$conf" <<JSON
{"subsystems": [
  {"subsystem": "bdev", "config": [
    $create,
    {"method": "bdev_set_test_delay", "params": {"name": "Malloc0", "max_delay_us": 2000}}]},
  {"subsystem": "vhost_blk", "config": [
    {"method": "vhost_create_blk_controller", "params": {"ctrlr": "vhost.0", "dev_name": "Malloc0", "cpumask": "0x1"}}]}
]}
JSON
"$VQ_VHOSTD" --supervise -m 0x1 -S "$VQ_SOCKDIR" -r "$VQ_RPC" -c "$conf" -L debug \
	>>"$VQ_TMP/vhostd.log" 2>&1 &
sup=$!
vq_track "$sup" supervisor
vq_wait_for "vhostd RPC socket" 10 "$VQ_VHOSTCTL" -s "$VQ_RPC" -t 1 spdk_get_version >/dev/null ||
	vq_fail "vhostd did not come up"
# The test delay is not part of save_config: the persisted file must keep it for restarts.
cp "$conf" "$conf.orig"

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
verify=crc32c
verify_backlog=512
verify_fatal=1
do_verify=1
time_based=1
runtime=$VT_RUNTIME
size=24M
offset_increment=24M
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
	sleep "$((RANDOM % 3 + 1)).$((RANDOM % 10))"
	worker=$(pgrep -P "$sup" | head -n1)
	[[ -n "$worker" ]] || vq_fail "no worker process before kill $i"
	cp "$conf.orig" "$conf" # keep the test delay in the replayed file
	n0=$(grep -c "started: size" "$VQ_TMP/vhostd.log")
	t0=$(date +%s%N)
	kill -9 "$worker"
	vq_wait_for "the queues to restart" 30 bash -c "[ \$(grep -c 'started: size' '$VQ_TMP/vhostd.log') -ge $((n0 + 2)) ]" ||
		vq_fail "QEMU did not reconnect after kill $i"
	recov+=($((($(date +%s%N) - t0) / 1000000)))
	vq_log "kill $i/$kills: queues running again after ${recov[-1]} ms"
done
vq_qemu_wait
rc=$?
res=$(vq_result "$log")
rrc=$?
resub=$(grep -c "resubmitting" "$VQ_TMP/vhostd.log")
restarts=$(grep -c "restarting in" "$VQ_TMP/vhostd.log")
vq_log "guest ($bdev_kind disk): $res (qemu rc $rc); $restarts worker restarts, $resub queue resubmissions; kill-to-running ms: ${recov[*]}"
grep -a -E '^ *(write|read):' "$log" | sed 's/^/  fio: /' >&2
if [[ $rrc -ne 0 || $rc -ne 0 ]]; then
	tail -n 40 "$log" >&2
	vq_fail "guest saw errors across restarts"
fi
[[ $restarts -eq $kills ]] || vq_fail "expected $kills restarts, the supervisor logged $restarts"
vq_pass
