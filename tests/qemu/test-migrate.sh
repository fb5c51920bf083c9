#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Live migration of a running guest with a vhostd disk, QEMU 7.2 to QEMU 7.2 (the way a QEMU
# upgrade or a host evacuation moves a VM): the guest runs fio randrw with crc32c verify while
# the host migrates it VQ_MIGRATIONS times (default 3) in a row, each time to a new QEMU started
# with -incoming on a unix socket (QMP "migrate"). Guest RAM is a plain memfd (share=on), so RAM
# really is copied and vhostd's dirty log is what tells QEMU which pages the disk wrote. Each
# destination QEMU connects to the same controller while its source still runs (a second
# session). Passes when every migration completes, fio exits 0 and the guest logged no I/O
# error. Reports the total time and the downtime of each migration.
# Env: VQ_MIGRATE_BDEV = ram (default) | file (an io_uring bdev on a file in the temp dir),
#      VQ_MIGRATIONS (3), VQ_MIGRATE_QEMU_DST (the destination QEMU binary, default the same),
#      with VQ_MIGRATE_QEMU_DST_MODULE_DIR and VQ_MIGRATE_QEMU_DST_DATA_DIR for a QEMU unpacked
#      outside /usr (test-migrate-qemu10.sh), VQ_MIGRATE_MACHINE (a machine type both QEMUs
#      know, e.g. pc-i440fx-7.2 when the destination is newer: a migration keeps the type),
#      VQ_MIGRATE_KILL=1: vhostd runs under --supervise and its worker is killed with SIGKILL
#      during every migration (QEMU reconnect=1): the migration may fail (then it is retried)
#      or complete, but the guest's data must stay intact either way.
. "$(dirname "$0")/lib.sh"
vq_init "migrate-${VQ_MIGRATE_BDEV:-ram}"
kind=${VQ_MIGRATE_BDEV:-ram}
migrations=${VQ_MIGRATIONS:-3}
VQ_MEM=${VQ_MEM:-256M}
kill_worker=${VQ_MIGRATE_KILL:-0}
if [[ "$kill_worker" == 1 ]]; then
	VQ_VHOSTD_ARGS="--supervise"
	VQ_RECONNECT=1
fi
vq_backend_start
[[ "$VQ_BACKEND" == vhostd ]] || vq_skip "vhostd-only (qemu-storage-daemon migrates too; not this test)"
if [[ "$kind" == file ]]; then
	truncate -s 64M "$VQ_TMP/disk.img"
	vq_rpc bdev_uring_create "$VQ_TMP/disk.img" Disk0 512 >/dev/null || vq_fail "bdev_uring_create"
	vq_rpc vhost_create_blk_controller --cpumask 0x1 vhost.0 Disk0 >/dev/null ||
		vq_fail "vhost_create_blk_controller"
	VQ_SOCK="$VQ_SOCKDIR/vhost.0"
	vq_wait_for "socket" 10 test -S "$VQ_SOCK" || vq_fail "no controller socket"
else
	vq_backend_add_disk vhost.0 64 512
fi

# Completions held 0-20 ms (out of order): requests are in flight in vhostd when QEMU stops the
# rings, so their data is written during the stop and must be logged to reach the destination.
bdev=$(vq_rpc bdev_get_bdevs | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["name"])')
vq_rpc bdev_set_test_delay "$bdev" 20000 >/dev/null || vq_fail "bdev_set_test_delay"

guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'GUEST'
. /etc/vtest.sh
# Two workloads at once. fio randrw with crc32c verify on [0, 48M): what the issue asks. And
# O_DIRECT reads of [48M, 64M), written once, checked against their md5: dd reads each 1 MiB
# chunk into the same buffer, which only the disk ever writes (the guest CPU reads it, never
# writes it), so data a read left in guest RAM while RAM was being copied reaches the destination
# only through vhostd's dirty log. With the log broken, this part fails.
dd if=/dev/urandom of=/tmp/ro.img bs=1M count=16 2>/dev/null
dd if=/tmp/ro.img of=/dev/vda bs=1M seek=48 oflag=direct 2>/dev/null || vt_fail "seeding the read-only area"
want=$(md5sum </tmp/ro.img | cut -d' ' -f1)
(
	end=$(( $(date +%s) + VT_RUNTIME )); n=0
	while [ "$(date +%s)" -lt "$end" ]; do
		got=$(dd if=/dev/vda bs=1M skip=48 count=16 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
		[ "$got" = "$want" ] || { echo "read-only pass $n: md5 $got, want $want"; exit 1; }
		n=$((n + 1))
	done
	echo "read-only area verified $n times"
) >/tmp/ro.out 2>&1 &
ro=$!
cat >/tmp/job.fio <<JOB
[global]
filename=/dev/vda
direct=1
ioengine=libaio
iodepth=16
rw=randrw
bs=4k
verify=crc32c
verify_backlog=256
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
wait $ro
rorc=$?
cat /tmp/fio.out /tmp/ro.out
[ $rc -eq 0 ] || vt_fail "fio exited with $rc"
grep -q 'err= 0' /tmp/fio.out || vt_fail "fio reported an error"
[ $rorc -eq 0 ] || vt_fail "the read-only area no longer verifies"
vt_no_io_errors
GUEST

initrd="$VQ_TMP/guest.initrd"
vq_make_initrd "$initrd" "$guest" VT_RUNTIME="${VQ_MIGRATE_RUNTIME:-$((20 + 15 * migrations))}"

qmp() { python3 "$VQ_LIB_DIR/qmp.py" "$@"; }
# Whether controller vhost.0 has exactly $1 sessions (front-end connections) now.
sessions_are() {
	local j
	j=$(vq_rpc vhost_get_controllers 2>/dev/null) || return 1
	[[ $(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])[0].get("sessions", [])))' "$j") == "$1" ]]
}

# The source: an ordinary guest with a QMP socket.
machine=${VQ_MIGRATE_MACHINE:-}
VQ_QMP="$VQ_TMP/qmp0.sock"
src_log="$VQ_TMP/guest0.log"
VQ_QEMU_ARGS=()
[[ -n "$machine" ]] && VQ_QEMU_ARGS+=(-machine "$machine")
vq_qemu_start "$src_log" "$initrd"
src_pid=$VQ_QEMU_PID
src_qmp=$VQ_QMP
vq_wait_for "fio in the guest" 120 grep -q fio-starting "$src_log" || vq_fail "the guest never started fio"
sleep 3 # let fio get going: the migrations run under I/O

dst_bin=${VQ_MIGRATE_QEMU_DST:-}
if [[ -n "$dst_bin" ]]; then
	vq_log "source: $(qemu-system-x86_64 --version | head -n1); destinations: $(QEMU_MODULE_DIR=${VQ_MIGRATE_QEMU_DST_MODULE_DIR:-} "$dst_bin" --version | head -n1)"
fi
retries=0
for ((i = 1; i <= migrations; i++)); do
	VQ_QMP="$VQ_TMP/qmp$i.sock"
	uri="unix:$VQ_TMP/mig$i.sock"
	dst_log="$VQ_TMP/guest$i.log"
	VQ_QEMU_ARGS=(-incoming "$uri")
	[[ -n "$machine" ]] && VQ_QEMU_ARGS+=(-machine "$machine")
	[[ -n "${VQ_MIGRATE_QEMU_DST_DATA_DIR:-}" ]] && VQ_QEMU_ARGS+=(-L "$VQ_MIGRATE_QEMU_DST_DATA_DIR")
	if [[ -n "$dst_bin" ]]; then
		# A newer QEMU as the destination (an actual QEMU upgrade): same machine type.
		VQ_QEMU_BIN=$dst_bin
		[[ -n "${VQ_MIGRATE_QEMU_DST_MODULE_DIR:-}" ]] &&
			export QEMU_MODULE_DIR=$VQ_MIGRATE_QEMU_DST_MODULE_DIR
	fi
	vq_qemu_start "$dst_log" "$initrd"
	if [[ -n "$dst_bin" ]]; then
		unset VQ_QEMU_BIN QEMU_MODULE_DIR
	fi

	dst_pid=$VQ_QEMU_PID
	qmp "$VQ_QMP" --wait-ready --timeout 30 >/dev/null || vq_fail "destination $i: no QMP"
	if [[ "$kill_worker" == 1 ]]; then
		# QEMU 7.2 mishandles a back-end that is away at the switch-over, on both sides, and
		# no back-end can prevent it (docs/design.md, "A crash during live migration"): the
		# source stops its rings without GET_VRING_BASE and sends a stale position, and the
		# destination cannot start its disk and never retries. Its reconnect timer is 1 s. So
		# RAM is copied at 1 MiB/s until both QEMUs are connected again, then at QEMU's
		# default 128 MiB/s: the kill lands while RAM and the dirty log are being copied,
		# and the switch-over comes after the reconnect, as a management layer that watches
		# its storage would arrange.
		qmp "$src_qmp" migrate-set-parameters '{"max-bandwidth": 1048576}' >/dev/null ||
			vq_fail "max-bandwidth refused"
	fi
	qmp "$src_qmp" migrate "{\"uri\": \"$uri\"}" >/dev/null || vq_fail "migrate $i refused"
	if [[ "$kill_worker" == 1 ]]; then
		sleep "0.$((RANDOM % 9 + 1))"
		worker=$(pgrep -P "$VQ_DAEMON_PID" | head -n1)
		[[ -n "$worker" ]] || vq_fail "no vhostd worker to kill"
		kill -KILL "$worker"
		vq_log "migration $i: killed the vhostd worker (pid $worker)"
		vq_wait_for "both QEMUs connected again" 30 sessions_are 2 ||
			vq_fail "migration $i: the QEMUs did not reconnect"
		qmp "$src_qmp" migrate-set-parameters '{"max-bandwidth": 134217728}' >/dev/null ||
			vq_fail "max-bandwidth back"
	fi
	status=""
	for ((w = 0; w < 1800; w++)); do
		info=$(qmp "$src_qmp" query-migrate) || vq_fail "query-migrate $i"
		status=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("status",""))' "$info")
		[[ "$status" == completed || "$status" == failed || "$status" == cancelled ]] && break
		sleep 0.1
	done
	if [[ "$status" != completed && "$kill_worker" == 1 ]]; then
		# The worker died under the migration: QEMU may give up. A failed migration leaves the
		# source running (its disk reconnects); try again to a new destination.
		vq_log "migration $i ended '$status' after the kill: retrying"
		echo "MIGRATION $i $status (worker killed), retried" >>"$VQ_TMP/migrations.txt"
		VQ_QEMU_PID=$dst_pid
		kill "$dst_pid" 2>/dev/null
		vq_qemu_wait 30 >/dev/null
		((i--))
		((retries++ < 5)) || vq_fail "too many failed migrations"
		continue
	fi
	[[ "$status" == completed ]] || { echo "$info" >&2; vq_fail "migration $i ended '$status'"; }
	read -r total down <<<"$(python3 -c '
import json, sys
i = json.loads(sys.argv[1])
print(i.get("total-time", -1), i.get("downtime", -1))' "$info")"
	vq_log "migration $i: completed, total ${total} ms, downtime ${down} ms"
	echo "MIGRATION $i total_ms=$total downtime_ms=$down" >>"$VQ_TMP/migrations.txt"
	# The source is done: quit it (as a management layer does), the destination runs on.
	qmp "$src_qmp" quit >/dev/null 2>&1
	VQ_QEMU_PID=$src_pid
	vq_qemu_wait 30 >/dev/null
	status=$(qmp "$VQ_QMP" query-status) || vq_fail "destination $i: query-status"
	grep -q '"running"' <<<"$status" || vq_fail "destination $i not running: $status"
	src_pid=$dst_pid
	src_qmp=$VQ_QMP
	vq_backend_alive || vq_fail "vhostd died during migration $i"
done

# The last destination finishes the guest's run.
VQ_QEMU_PID=$src_pid
vq_qemu_wait
rc=$?
res=$(vq_result "$dst_log")
vq_log "guest: $res (qemu rc $rc)"
sed -n '/READ:\|WRITE:\|err=\|verified\|failed/p' "$dst_log" | tr -d '\r' | head -8 >&2
[[ "$res" == PASS* ]] || { tail -n 40 "$dst_log" >&2; vq_fail "the guest failed after $migrations migrations"; }
vq_rpc vhost_get_controllers >"$VQ_TMP/ctrlrs.json"
vq_backend_alive || vq_fail "vhostd died"
cat "$VQ_TMP/migrations.txt" >&2
vq_pass
