#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Live upgrade by hand-over under a real guest (docs/design.md, "Live upgrade by hand-over").
# QEMU 7.2 is started WITHOUT reconnect, so a closed vhost-user socket would cost the guest its
# disk for good. `vhostd --supervise` runs from a binary installed in the temp dir; a guest runs
# fio randwrite with crc32c verify (80 s) at iodepth 32 on two queues against a RAM disk whose
# completions are delayed at random (requests are in flight, out of order, at every switch),
# while the test upgrades the worker VQ_UPGRADES times (default 10), alternating SIGHUP to the
# supervisor and the vhostd_upgrade RPC, and alternating the installed file between vhostd and
# vhostd-alt (another version string). Between them, two broken candidates are refused: one that
# exits at once (SIGHUP) and one that crashes after reading the session state (RPC; the old
# worker has frozen its sessions by then and must thaw them).
#
# Checks: after each upgrade exactly one worker runs, it is a new pid, /proc/PID/exe is the file
# installed now, spdk_get_version reports the installed version and vhostd_get_upgrade_info names
# the old worker; after a refused candidate the old worker alone serves on and the disk still
# completes writes. At the end fio exits 0 (it verified every block it wrote), the guest kernel
# logged no I/O error or hung task, vhostd logged exactly one front-end connection and no
# disconnect while the guest ran, and QEMU's connection is the same socket as at the start.
# Reports the pauses the new workers measured (stop of the first queue in the old worker to all
# queues running in the new one).
# Before fio starts, VQ_BOOT_UPGRADES (default 4) more upgrades by SIGHUP land while QEMU
# negotiates, SeaBIOS reads the disk and the guest driver sets up its rings.
# Env: VQ_UPGRADES (default 10), VQ_BOOT_UPGRADES (default 4), VHOSTD_ALT (default: vhostd-alt
# next to VHOSTD), VQ_FIO_RUNTIME (default 80 s).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/upgrade-lib.sh"
vq_init upgrade
upgrades=${VQ_UPGRADES:-10}
up_init

conf="$VQ_TMP/vhostd.json"
cat >"$conf" <<'JSON'
{"subsystems": [
  {"subsystem": "bdev", "config": [
    {"method": "bdev_malloc_create", "params": {"name": "Malloc0", "num_blocks": 131072, "block_size": 512}},
    {"method": "bdev_set_test_delay", "params": {"name": "Malloc0", "max_delay_us": 2000}}]},
  {"subsystem": "vhost_blk", "config": [
    {"method": "vhost_create_blk_controller", "params": {"ctrlr": "vhost.0", "dev_name": "Malloc0", "cpumask": "0x1"}}]}
]}
JSON
up_start "$conf"

VQ_SOCK="$VQ_SOCKDIR/vhost.0"
VQ_RECONNECT= # no reconnect: a closed socket would be fatal to the disk
guest="$VQ_TMP/guest.sh"
vq_fio_write_guest "$guest" verify
# The upgrades are spread over fio's run (about 5 s apart); they must all happen while it runs.
runtime=${VQ_FIO_RUNTIME:-$((upgrades * 5 + 30))}

pauses=()
vq_guest_start guest "$guest" VT_RUNTIME="$runtime"
log=$VQ_GUEST_LOG
vq_wait_for "QEMU's vhost-user connection" 30 grep -q "front-end connected" "$VQ_TMP/vhostd.log" ||
	vq_fail "QEMU did not connect"
# While QEMU negotiates, SeaBIOS reads the disk and the guest's driver sets its rings up: the
# switch then falls between (or inside) handshake messages, not only into steady I/O.
boot_pauses=()
for ((i = 1; i <= ${VQ_BOOT_UPGRADES:-4}; i++)); do
	grep -q fio-starting "$log" && break
	sleep "$((RANDOM % 2 + 1)).$((RANDOM % 10))" # spread over SeaBIOS and the driver's set-up
	upgrade "during boot $i" SIGHUP
	boot_pauses+=("$last_pause")
done
vq_wait_fio_start
vq_log "fio runs for $runtime s in the guest; QEMU has no reconnect"
conn0=$(qemu_conn)
[[ -n "$conn0" ]] || vq_fail "cannot find QEMU's vhost-user connection (ss -xp)"
vq_log "QEMU's connection socket inode(s): $conn0"

# Spread the upgrades (and the two refusals) evenly over fio's run, ending 10 s before it.
up_schedule $((upgrades + 2)) $((runtime - 15))
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
		refused SIGHUP "exits at once" "exit 1"
		next_slot
		refused RPC "crashes after reading the session state" \
			"VHOSTD_TEST_UPGRADE_FAULT=state:crash exec '${builds[1]}' \"\$@\""
	fi
done
grep -aq "$VQ_RESULT_MARK" "$log" && vq_fail "fio ended before the last upgrade (raise VQ_FIO_RUNTIME)"
conn1=$(qemu_conn)
[[ "$conn1" == "$conn0" ]] || vq_fail "QEMU's vhost-user connection changed: $conn0 -> $conn1"
nconn=$(grep -c "front-end connected" "$VQ_TMP/vhostd.log")
ndisc=$(grep -c "closing session" "$VQ_TMP/vhostd.log")
[[ $nconn -eq 1 && $ndisc -eq 0 ]] ||
	vq_fail "vhostd logged $nconn front-end connection(s) and $ndisc closed session(s) while the guest ran"

# fio's runtime plus its verify pass and the shutdown: a guest still running after that hangs.
vq_guest_end $((SECONDS - VQ_QEMU_T0 + 60))
ok=$?
vq_log "guest: $VQ_GUEST_RES (qemu rc $VQ_GUEST_QEMU_RC)"
grep -a -E '^ *(write|read):' "$log" | sed 's/^/  fio: /' >&2
((ok == 0)) || vq_guest_fail "the guest saw errors across the upgrades"
sorted=$(printf '%s\n' "${pauses[@]}" | sort -g)
p50=$(sed -n "$(((${#pauses[@]} + 1) / 2))p" <<<"$sorted")
vq_log "${#boot_pauses[@]} upgrades during boot (pauses ${boot_pauses[*]} ms)"
vq_log "$upgrades upgrades under fio, 2 broken candidates refused, 0 errors; queue pause (vhostd_get_upgrade_info) p50 $p50 ms, max $(tail -n1 <<<"$sorted") ms: ${pauses[*]}"
vq_pass
