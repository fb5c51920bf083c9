#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Live upgrade by hand-over of a vfio-user session under a real guest (docs/design.md, "Live
# upgrade by hand-over"). QEMU 10.2's vfio-user client cannot reconnect at all: a closed socket
# would cost the guest its NVMe controller for good. `vhostd --supervise` runs from a binary
# installed in the temp dir (upgrade-lib.sh); the guest's own nvme driver runs fio randwrite with
# crc32c verify at iodepth 32 on two jobs (two I/O queues, one per vCPU) against a RAM disk whose
# completions are delayed at random, while the test upgrades the worker VQ_UPGRADES times
# (default 10), alternating SIGHUP and the vhostd_upgrade RPC and alternating vhostd and
# vhostd-alt. Half-way, a broken candidate (crashes after reading the session state, so the
# old worker has frozen the session and must thaw it) is refused.
#
# Checks: after each upgrade exactly one worker runs, a new pid running the file installed now
# and reporting its version; after the refusal the old worker alone serves on and writes
# complete. At the end fio exits 0 (it verified every block it wrote), the guest kernel logged no
# I/O error, NVMe timeout, abort or controller reset, vhostd logged one client connection and no
# closed session, and QEMU's connection is the same socket as at the start. Reports the pauses
# the new workers measured (the old worker pausing the queues to the new one running them).
# Env: VQ_UPGRADES (default 10), VQ_FIO_RUNTIME (default upgrades * 6 + 30 s).
. "$(dirname "$0")/vfu-lib.sh"
. "$(dirname "$0")/upgrade-lib.sh"
VQ_SMP=${VQ_SMP:-2}
vf_init_qemu vfu-upgrade
upgrades=${VQ_UPGRADES:-10}
up_init
UP_BDEV=Malloc0

conf="$VQ_TMP/vhostd.json"
cat >"$conf" <<'JSON'
{"subsystems": [
  {"subsystem": "bdev", "config": [
    {"method": "bdev_malloc_create", "params": {"name": "Malloc0", "num_blocks": 131072, "block_size": 512}},
    {"method": "bdev_set_test_delay", "params": {"name": "Malloc0", "max_delay_us": 2000}}]},
  {"subsystem": "vfio_user", "config": [
    {"method": "vfu_create_nvme_controller", "params": {"ctrlr": "nvme0", "cpumask": "0x1", "num_io_queues": 4}},
    {"method": "vfu_controller_add_ns", "params": {"ctrlr": "nvme0", "bdev_name": "Malloc0", "nsid": 1}}]}
]}
JSON
up_start "$conf"
VF_SOCK="$VQ_SOCKDIR/nvme0"
vq_wait_for "socket $VF_SOCK" 10 test -S "$VF_SOCK" || vq_fail "controller socket missing"

guest="$VQ_TMP/guest.sh"
prologue='vt_check "cannot load the nvme driver" vt_load_nvme
vt_wait_path /dev/nvme0n1 60 || { dmesg | tail -n 30; vt_fail "/dev/nvme0n1 did not appear"; }'
vq_fio_write_guest "$guest" verify "$prologue" 'nvme.*(timeout|abort|reset|fail)'
sed -i 's#^filename=/dev/vda$#filename=/dev/nvme0n1#' "$guest"
grep -q '^filename=/dev/nvme0n1$' "$guest" || vq_fail "cannot point fio at /dev/nvme0n1"
runtime=${VQ_FIO_RUNTIME:-$((upgrades * 6 + 30))}

log="$VQ_TMP/guest.log"
vq_make_initrd "$VQ_TMP/guest.initrd" "$guest" VT_NEED_DISK=0 VT_RUNTIME="$runtime"
vf_qemu_start "$log" "$VQ_TMP/guest.initrd"
VQ_GUEST_LOG=$log
vq_wait_for "QEMU's vfio-user connection" 60 grep -q "vfio-user client connected" "$VQ_TMP/vhostd.log" ||
	vq_fail "QEMU did not connect"
vq_wait_fio_start 180
vq_log "fio runs for $runtime s in the guest; QEMU's vfio-user client cannot reconnect"
conn0=$(qemu_conn)
[[ -n "$conn0" ]] || vq_fail "cannot find QEMU's vfio-user connection (ss -xp)"
vq_log "QEMU's connection socket inode(s): $conn0"

# Spread the upgrades (and the refusal) evenly over fio's run, ending 15 s before it.
pauses=()
up_schedule $((upgrades + 1)) $((runtime - 15))
for ((i = 1; i <= upgrades; i++)); do
	next_slot
	if ((i % 2)); then
		upgrade "$i/$upgrades" SIGHUP
	else
		upgrade "$i/$upgrades" RPC
	fi
	pauses+=("$last_pause")
	if ((i == upgrades / 2)); then
		next_slot
		refused RPC "crashes after reading the session state" \
			"VHOSTD_TEST_UPGRADE_FAULT=state:crash exec '${builds[1]}' \"\$@\""
	fi
done
grep -aq "$VQ_RESULT_MARK" "$log" && vq_fail "fio ended before the last upgrade (raise VQ_FIO_RUNTIME)"
conn1=$(qemu_conn)
[[ "$conn1" == "$conn0" ]] || vq_fail "QEMU's vfio-user connection changed: $conn0 -> $conn1"
nconn=$(grep -c "vfio-user client connected" "$VQ_TMP/vhostd.log")
ndisc=$(grep -c "client session closed" "$VQ_TMP/vhostd.log")
nadopt=$(grep -c "vfio-user session taken over" "$VQ_TMP/vhostd.log")
[[ $nconn -eq 1 && $ndisc -eq 0 ]] ||
	vq_fail "vhostd logged $nconn client connection(s) and $ndisc closed session(s) while the guest ran"
[[ $nadopt -eq $upgrades ]] || vq_fail "$nadopt session hand-overs logged, $upgrades upgrades"

vq_guest_end $((SECONDS - VQ_QEMU_T0 + 90))
ok=$?
vq_log "guest: $VQ_GUEST_RES (qemu rc $VQ_GUEST_QEMU_RC)"
grep -a -E '^ *(write|read):' "$log" | sed 's/^/  fio: /' >&2
((ok == 0)) || vq_guest_fail "the guest saw errors across the upgrades"
sorted=$(printf '%s\n' "${pauses[@]}" | sort -g)
p50=$(sed -n "$(((${#pauses[@]} + 1) / 2))p" <<<"$sorted")
vq_log "$upgrades upgrades under fio on vfio-user NVMe, 1 broken candidate refused, 0 errors; queue pause (vhostd_get_upgrade_info) p50 $p50 ms, max $(tail -n1 <<<"$sorted") ms: ${pauses[*]}"
vq_pass
