#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Packed virtqueues with a real QEMU 7.2 guest (vhost-user-blk-pci packed=on), two boots:
#   verify:    a controller created with packed_ring; the guest must have negotiated
#              VIRTIO_F_RING_PACKED (bit 34 of /sys/block/vda/device/features) and passes fio
#              randrw with crc32c verify at iodepth 32 on 2 queues, every queue completing I/O.
#   supervise: `vhostd --supervise` with a packed_ring + packed_ring_recovery controller on a
#              RAM disk whose completions are delayed at random (out of order), QEMU with
#              reconnect=1, and VQ_KILLS (default 10) kill -9 of the worker under fio randwrite
#              verify. QEMU 7.2 restarts a packed ring with the stale base of its previous start,
#              so each recovery rests on the packed inflight region; fio must exit 0 with no
#              guest I/O error or hung task, and the worker restart once per kill.
# Env: VQ_KILLS (default 10), VQ_FIO_RUNTIME (verify boot, s, default 25).
. "$(dirname "$0")/lib.sh"
vq_init packed
kills=${VQ_KILLS:-10}
[[ "$VQ_BACKEND" == vhostd ]] || vq_skip "packed rings: vhostd only"
VQ_BLK_OPTS=",packed=on"

# ---- boot 1: negotiation and fio verify -------------------------------------------------

vq_backend_start
vq_rpc bdev_malloc_create -b Malloc0 64 512 >/dev/null || vq_fail "bdev_malloc_create failed"
vq_rpc vhost_create_blk_controller --cpumask 0x1 --packed-ring vhost.0 Malloc0 >/dev/null ||
	vq_fail "vhost_create_blk_controller --packed-ring failed"
VQ_SOCK="$VQ_SOCKDIR/vhost.0"
vq_wait_for "socket $VQ_SOCK" 10 test -S "$VQ_SOCK" || vq_fail "controller socket missing"

guest="$VQ_TMP/guest-verify.sh"
cat >"$guest" <<'EOF'
. /etc/vtest.sh
feat=$(cat /sys/block/vda/device/features)
vt_log "features $feat"
# The string is bit 0 first: bit 34 is its 35th character.
[ "$(echo "$feat" | cut -c35)" = 1 ] || vt_fail "VIRTIO_F_RING_PACKED (bit 34) not negotiated"
nq=$(ls -d /sys/block/vda/mq/* | wc -l)
[ "$nq" = "$VT_QUEUES" ] || vt_fail "guest sees $nq queues, expected $VT_QUEUES"
slice=$(( $(cat /sys/block/vda/size) / 2048 / nq ))
cat >/tmp/job.fio <<JOB
[global]
filename=/dev/vda
direct=1
ioengine=libaio
iodepth=32
rw=randrw
bsrange=4k-64k
verify=crc32c
verify_backlog=1024
verify_fatal=1
time_based=1
runtime=$VT_RUNTIME
size=${slice}M
group_reporting=1
JOB
i=0
while [ $i -lt "$nq" ]; do
	printf '[q%d]\noffset=%dM\ncpus_allowed=%d\n' $i $((i * slice)) $((i % $(nproc))) >>/tmp/job.fio
	i=$((i + 1))
done
fio /tmp/job.fio >/tmp/fio.out 2>&1
rc=$?
cat /tmp/fio.out
[ $rc -eq 0 ] || vt_fail "fio exited with $rc: $(grep -m1 -iE 'verify|error|err=' /tmp/fio.out)"
grep -q 'err= 0' /tmp/fio.out || vt_fail "fio reported an error"
vdev=$(basename "$(readlink /sys/block/vda/device)")
q=0
while [ $q -lt "$VT_QUEUES" ]; do
	n=$(grep -E " $vdev-req\.$q\$" /proc/interrupts | awk '{s = 0; for (i = 2; i <= NF - 3; i++) s += $i; print s}')
	vt_log "queue $q: ${n:-no} interrupts"
	[ "${n:-0}" -gt 0 ] || vt_fail "queue $q completed no I/O"
	q=$((q + 1))
done
vt_no_io_errors
EOF
guest_queues=$((VQ_QUEUES < VQ_SMP ? VQ_QUEUES : VQ_SMP))
vq_boot_guest verify "$guest" VT_QUEUES="$guest_queues" VT_RUNTIME="${VQ_FIO_RUNTIME:-25}" ||
	vq_fail "packed rings: guest fio verify failed"
grep -a -E '^ *(read|write):' "$VQ_TMP/verify.log" | sed 's/^/  fio: /' >&2
grep -q "packed rings" "$VQ_TMP/vhostd.log" || vq_fail "the controller does not say it has packed rings"
vq_backend_alive || vq_fail "back-end died"
vq_stop "$VQ_DAEMON_PID" vhostd 10
stop_rc=$?
vq_untrack "$VQ_DAEMON_PID"
[[ $stop_rc -eq 0 ]] || vq_fail "vhostd did not exit on SIGTERM after the verify boot"

# ---- boot 2: --supervise, reconnect=1, kill -9 under fio verify --------------------------

VQ_SOCKDIR="$VQ_TMP/sock2"
VQ_RPC="$VQ_TMP/rpc2.sock"
mkdir -p "$VQ_SOCKDIR"
conf="$VQ_TMP/vhostd.json"
cat >"$conf" <<JSON
{"subsystems": [
  {"subsystem": "bdev", "config": [
    {"method": "bdev_malloc_create", "params": {"name": "Malloc0", "num_blocks": 131072, "block_size": 512}},
    {"method": "bdev_set_test_delay", "params": {"name": "Malloc0", "max_delay_us": 2000}}]},
  {"subsystem": "vhost_blk", "config": [
    {"method": "vhost_create_blk_controller", "params": {"ctrlr": "vhost.0", "dev_name": "Malloc0",
     "cpumask": "0x1", "packed_ring": true, "packed_ring_recovery": true}}]}
]}
JSON
cp "$conf" "$conf.orig" # the test delay is not part of save_config: keep it for restarts
vq_vhostd_conf_start "$conf" "$VQ_TMP/supervise.log" --supervise
VQ_SOCK="$VQ_SOCKDIR/vhost.0"
VQ_RECONNECT=1
guest="$VQ_TMP/guest-supervise.sh"
vq_fio_write_guest "$guest" verify \
	'[ "$(cut -c35 /sys/block/vda/device/features)" = 1 ] || vt_fail "VIRTIO_F_RING_PACKED not negotiated"' \
	'id .* is not'
vq_guest_start supervise-guest "$guest" VT_RUNTIME="$((kills * 4 + 12))"
vq_wait_fio_start
vq_kill_loop "$kills" 2 "$VQ_TMP/supervise.log" worker "$conf"
vq_guest_end
ok=$?
resub=$(grep -c "resubmitting" "$VQ_TMP/supervise.log")
restarts=$(grep -c "restarting in" "$VQ_TMP/supervise.log")
broken=$(grep -c "violated\|cannot start" "$VQ_TMP/supervise.log")
vq_log "guest: $VQ_GUEST_RES (qemu rc $VQ_GUEST_QEMU_RC); $restarts worker restarts, $resub queue resubmissions, $broken ring errors; kill-to-running ms: ${VQ_RECOV[*]}"
grep -a -E '^ *(write|read):' "$VQ_GUEST_LOG" | sed 's/^/  fio: /' >&2
((ok == 0)) || vq_guest_fail "guest saw errors across restarts of packed rings"
[[ $restarts -eq $kills ]] || vq_fail "expected $kills restarts, the supervisor logged $restarts"
[[ $broken -eq 0 ]] || vq_fail "vhostd logged $broken ring violations or start failures"
vq_pass
