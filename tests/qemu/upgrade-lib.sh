# SPDX-License-Identifier: BSD-3-Clause
# shellcheck shell=bash
#
# upgrade-lib.sh: the live-upgrade guest tests' host side (test-upgrade.sh for vhost-user,
# test-vfu-upgrade.sh for vfio-user), on top of lib.sh: two builds of vhostd (VQ_VHOSTD and
# vhostd-alt, different version strings) installed in turn at one path by rename, as a package
# manager does; a supervisor started from that path; an upgrade by SIGHUP or RPC with every
# check on the new worker; a broken candidate that must be refused.
#
#   up_init                             # builds, versions, the installed path (cur=0)
#   up_start CONF                       # vhostd --supervise from the installed path
#   upgrade N SIGHUP|RPC                # sets last_pause (ms)
#   refused SIGHUP|RPC WHAT BODY        # BODY: the broken candidate's shell script
#   up_schedule SLOTS SPAN              # SLOTS evenly spaced moments over the next SPAN s
#   next_slot                           # wait for the next one (no wait if it passed)
#
# UP_BDEV names the bdev whose write count shows the guest's I/O going on (default Malloc0).

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

up_init() {
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
	cur=0
	install_file "${builds[$cur]}"
}

up_start() { # CONF: the config file (CONF.orig: what every candidate replays)
	conf=$1
	# The test delay is not part of save_config: each candidate replays the original file.
	cp "$conf" "$conf.orig"
	"$installed_path" --supervise -m 0x1 -S "$VQ_SOCKDIR" -r "$VQ_RPC" -c "$conf" -L info \
		</dev/null >>"$VQ_TMP/vhostd.log" 2>&1 &
	sup=$!
	vq_track "$sup" supervisor
	vq_wait_for "vhostd RPC socket" 15 "$VQ_VHOSTCTL" -s "$VQ_RPC" -t 1 spdk_get_version >/dev/null ||
		vq_fail "vhostd did not come up"
}

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
writes() { vq_rpc bdev_get_iostat -b "${UP_BDEV:-Malloc0}" | python3 -c '
import json, sys
print(json.load(sys.stdin)["bdevs"][0]["num_write_ops"])'; }
writes_above() { [[ $(writes) -gt $1 ]]; }

# QEMU's end of its connection to vhostd: its socket inode, which must never change.
qemu_conn() {
	local pid=$VQ_QEMU_PID c
	# timeout(1) runs QEMU as its child.
	c=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null)
	[[ -n "$c" ]] && pid=${c%% *}
	ss -xpn 2>/dev/null | awk -v p="pid=$pid," '$0 ~ p && $1 == "u_str" && $2 == "ESTAB" {print $6}' |
		sort -u | tr '\n' ' '
}


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

up_schedule() { # SLOTS SPAN_S
	t_fio=$SECONDS
	step=$(($2 * 10 / $1))
	slot=0
}
next_slot() {
	slot=$((slot + 1))
	while ((SECONDS * 10 < t_fio * 10 + slot * step)); do
		sleep 0.$((RANDOM % 5 + 1))
	done
}
