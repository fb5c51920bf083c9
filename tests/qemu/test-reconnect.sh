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
vq_vhostd_paths
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

vq_vhostd_conf_start "$conf" "$VQ_TMP/vhostd.log"
VQ_SOCK="$VQ_SOCKDIR/vhost.0"
VQ_RECONNECT=1

guest="$VQ_TMP/guest.sh"
vq_fio_write_guest "$guest" noverify
vq_guest_start guest "$guest" VT_RUNTIME="$((kills * 4 + 12))"
vq_wait_fio_start
# Recovered when QEMU's reconnect started the queues again (two queues).
vq_kill_loop "$kills" 2 "$VQ_TMP/vhostd.log" restart "$conf"
vq_guest_end
ok=$?
resub=$(grep -c "resubmitting" "$VQ_TMP/vhostd.log")
vq_log "guest: $VQ_GUEST_RES (qemu rc $VQ_GUEST_QEMU_RC); $kills kills, resubmissions logged: $resub; restart-to-reconnect ms: ${VQ_RECOV[*]}"
((ok == 0)) || vq_guest_fail "guest saw errors across restarts"
vq_pass
