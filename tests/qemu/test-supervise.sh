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
vq_vhostd_paths
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
# The test delay is not part of save_config: the persisted file must keep it for restarts.
cp "$conf" "$conf.orig"
vq_vhostd_conf_start "$conf" "$VQ_TMP/vhostd.log" --supervise

VQ_SOCK="$VQ_SOCKDIR/vhost.0"
VQ_RECONNECT=1
guest="$VQ_TMP/guest.sh"
vq_fio_write_guest "$guest" verify
vq_guest_start guest "$guest" VT_RUNTIME="$((kills * 4 + 12))"
vq_wait_fio_start
vq_kill_loop "$kills" 2 "$VQ_TMP/vhostd.log" worker "$conf"
vq_guest_end
ok=$?
resub=$(grep -c "resubmitting" "$VQ_TMP/vhostd.log")
restarts=$(grep -c "restarting in" "$VQ_TMP/vhostd.log")
vq_log "guest ($bdev_kind disk): $VQ_GUEST_RES (qemu rc $VQ_GUEST_QEMU_RC); $restarts worker restarts, $resub queue resubmissions; kill-to-running ms: ${VQ_RECOV[*]}"
grep -a -E '^ *(write|read):' "$VQ_GUEST_LOG" | sed 's/^/  fio: /' >&2
((ok == 0)) || vq_guest_fail "guest saw errors across restarts"
[[ $restarts -eq $kills ]] || vq_fail "expected $kills restarts, the supervisor logged $restarts"
vq_pass
