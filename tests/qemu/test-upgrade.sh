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
vq_init upgrade
upgrades=${VQ_UPGRADES:-10}
vq_vhostd_paths
alt=${VHOSTD_ALT:-$(dirname "$VQ_VHOSTD")/vhostd-alt}
[[ -x "$alt" ]] || vq_skip "vhostd-alt not built (set VHOSTD_ALT)"
mkdir -p "$VQ_TMP/bin"

# Private copies of the two builds (a rebuild during the test changes nothing), and the path
# the supervisor runs: replaced by rename, as a package manager does.
builds=("$VQ_TMP/bin/build-0" "$VQ_TMP/bin/build-1")
cp "$VQ_VHOSTD" "${builds[0]}"
cp "$alt" "${builds[1]}"
versions=("$("${builds[0]}" --version | sed 's/^vhostd //')" "$("${builds[1]}" --version | sed 's/^vhostd //')")
[[ -n "${versions[0]}" && "${versions[0]}" != "${versions[1]}" ]] ||
	vq_fail "the two builds report the same version (${versions[*]})"
installed_path="$VQ_TMP/bin/vhostd"
install_file() { # FILE: rename a hard link (or a copy) of FILE over the installed path
	rm -f "$installed_path.new"
	ln "$1" "$installed_path.new" 2>/dev/null || cp "$1" "$installed_path.new"
	mv -f "$installed_path.new" "$installed_path"
}
install_script() { # BODY: a shell script as the installed binary (a broken candidate)
	printf '#!/bin/sh\n%s\n' "$1" >"$installed_path.new"
	chmod 0755 "$installed_path.new"
	mv -f "$installed_path.new" "$installed_path"
}
cur=0
install_file "${builds[$cur]}"

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
# The test delay is not part of save_config: each candidate replays the original file.
cp "$conf" "$conf.orig"
"$installed_path" --supervise -m 0x1 -S "$VQ_SOCKDIR" -r "$VQ_RPC" -c "$conf" -L info \
	</dev/null >>"$VQ_TMP/vhostd.log" 2>&1 &
sup=$!
vq_track "$sup" supervisor
vq_wait_for "vhostd RPC socket" 15 "$VQ_VHOSTCTL" -s "$VQ_RPC" -t 1 spdk_get_version >/dev/null ||
	vq_fail "vhostd did not come up"

# The supervisor's children (the worker, and a candidate during an upgrade).
workers() {
	local w=()
	read -ra w <"/proc/$sup/task/$sup/children" 2>/dev/null
	echo "${w[*]}"
}
one_worker_not() { # OLD: exactly one worker, not OLD
	local w
	w=$(workers)
	[[ $(wc -w <<<"$w") -eq 1 && $w -ne $1 ]]
}
only_worker() { # PID: exactly one worker, PID
	local w
	w=$(workers)
	[[ $(wc -w <<<"$w") -eq 1 && $w -eq $1 ]]
}
json_get() { # KEY.PATH...: fields of the JSON on stdin, one per line ("-" if missing)
	python3 -c '
import json, sys
j = json.load(sys.stdin)
for path in sys.argv[1:]:
    v = j
    for k in path.split("."):
        v = v.get(k) if isinstance(v, dict) else None
    print("-" if v is None else v)' "$@"
}
writes() { vq_rpc bdev_get_iostat -b Malloc0 | python3 -c '
import json, sys
print(json.load(sys.stdin)["bdevs"][0]["num_write_ops"])'; }
writes_above() { [[ $(writes) -gt $1 ]]; }

VQ_SOCK="$VQ_SOCKDIR/vhost.0"
VQ_RECONNECT= # no reconnect: a closed socket would be fatal to the disk
guest="$VQ_TMP/guest.sh"
vq_fio_write_guest "$guest" verify
# The upgrades are spread over fio's run (about 5 s apart); they must all happen while it runs.
runtime=${VQ_FIO_RUNTIME:-$((upgrades * 5 + 30))}

# QEMU's end of the vhost-user connection: its socket inode, which must never change.
qemu_conn() {
	local pid=$VQ_QEMU_PID c
	# timeout(1) runs QEMU as its child.
	c=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null)
	[[ -n "$c" ]] && pid=${c%% *}
	ss -xpn 2>/dev/null | awk -v p="pid=$pid," '$0 ~ p && $1 == "u_str" && $2 == "ESTAB" {print $6}' |
		sort -u | tr '\n' ' '
}

pauses=()
upgrade() { # N BY: upgrade number N by SIGHUP or RPC
	local n=$1 by=$2 old new next out info t0 ms
	local r_old r_new r_oldv r_newv r_dur i_pid i_ver i_pause ver
	old=$(workers)
	[[ $(wc -w <<<"$old") -eq 1 ]] || vq_fail "upgrade $n: not exactly one worker before ($old)"
	next=$((cur ^ 1))
	install_file "${builds[$next]}"
	cp "$conf.orig" "$conf"
	t0=$(date +%s%N)
	if [[ "$by" == RPC ]]; then
		out=$(vq_rpc -t 90 call vhostd_upgrade) || vq_fail "upgrade $n: vhostd_upgrade failed: $out"
	else
		kill -HUP "$sup"
	fi
	vq_wait_for "upgrade $n to finish" 60 one_worker_not "$old" ||
		vq_fail "upgrade $n ($by): workers now: $(workers) (old $old)"
	ms=$((($(date +%s%N) - t0) / 1000000))
	new=$(workers)
	if [[ "$by" == RPC ]]; then
		{ read -r r_old; read -r r_new; read -r r_oldv; read -r r_newv; read -r r_dur; } < <(
			json_get old_pid new_pid old_version new_version duration_ms <<<"$out")
		[[ $r_old == "$old" && $r_new == "$new" && $r_oldv == "${versions[$cur]}" &&
			$r_newv == "${versions[$next]}" ]] ||
			vq_fail "upgrade $n: expected $old (${versions[$cur]}) -> $new (${versions[$next]}), the RPC says: $out"
		ms=$(printf "%.0f" "$r_dur") # the RPC's own duration_ms
	fi
	# The new worker runs the file installed now (not the old one, not the supervisor's).
	[[ $(stat -L -c %d:%i "/proc/$new/exe") == $(stat -c %d:%i "$installed_path") ]] ||
		vq_fail "upgrade $n: worker $new runs $(readlink "/proc/$new/exe"), not $installed_path"
	info=$(vq_rpc call vhostd_get_upgrade_info)
	{ read -r i_pid; read -r i_ver; read -r i_pause; read -r ver; } < <(
		json_get upgraded_from.pid upgraded_from.version max_pause_ms version <<<"$info")
	[[ $i_pid == "$old" && $i_ver == "${versions[$cur]}" && $ver == "${versions[$next]}" ]] ||
		vq_fail "upgrade $n: vhostd_get_upgrade_info should name worker $old (${versions[$cur]}) and version ${versions[$next]}: $info"
	last_pause=$i_pause
	vq_log "upgrade $n by $by: worker $old (${versions[$cur]}) -> $new (${versions[$next]}) in $ms ms, longest queue pause $i_pause ms"
	cur=$next
}

refused() { # BY WHAT BODY: a broken candidate; the old worker serves on
	local by=$1 what=$2 body=$3 old out w0 nfail
	old=$(workers)
	nfail=$(grep -c "upgrade failed, vhostd" "$VQ_TMP/vhostd.log")
	install_script "$body"
	cp "$conf.orig" "$conf"
	if [[ "$by" == RPC ]]; then
		out=$(vq_rpc -t 90 call vhostd_upgrade 2>&1) && vq_fail "broken candidate ($what): vhostd_upgrade succeeded: $out"
	else
		kill -HUP "$sup"
	fi
	vq_wait_for "the worker to report the failed upgrade" 60 bash -c \
		"[ \$(grep -c 'upgrade failed, vhostd' '$VQ_TMP/vhostd.log') -gt $nfail ]" ||
		vq_fail "broken candidate ($what): no failure logged"
	vq_wait_for "the candidate to go" 15 only_worker "$old" ||
		vq_fail "broken candidate ($what): workers now $(workers), old $old"
	w0=$(writes)
	vq_wait_for "writes after the refused upgrade" 10 writes_above "$w0" ||
		vq_fail "broken candidate ($what): no write completed after the refusal"
	vq_log "broken candidate ($what, by $by) refused: ${out:+$(tr -d '\n' <<<"$out" | cut -c1-160) }worker $old serves on"
	install_file "${builds[$cur]}"
}

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
t_fio=$SECONDS
step=$(((runtime - 15) * 10 / (upgrades + 2)))
slot=0
next_slot() { # wait for the next slot (no wait if the last step overran it)
	slot=$((slot + 1))
	while ((SECONDS * 10 < t_fio * 10 + slot * step)); do
		sleep 0.$((RANDOM % 5 + 1))
	done
}
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
