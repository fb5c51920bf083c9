# SPDX-License-Identifier: BSD-3-Clause
# shellcheck shell=bash
#
# lib.sh: shared code for the QEMU guest tests.  Source it from a test script:
#
#   . "$(dirname "$0")/lib.sh"
#   vq_init my-test                     # temp dir, traps, skip (77) if QEMU/TCG is missing
#   vq_backend_start                    # vhostd (default) or qemu-storage-daemon
#   vq_backend_add_disk vhost.0 64 512  # sets VQ_SOCK, VQ_DISK_BYTES, VQ_SERIAL
#   vq_boot_guest boot1 "$guest_script" VT_FOO=bar || vq_fail "guest failed"
#   vq_pass
#
# Back-end: VHOSTD_QEMU_BACKEND=vhostd (default) | qsd.  Binaries: VHOSTD, VHOSTCTL (meson sets
# them; default build/src/app/...).  Guest: see guest-image.sh.  Knobs (env, all optional):
#   VQ_QUEUES (2)  VQ_SMP (2)  VQ_MEM (512M)  VQ_QUEUE_SIZE ()  VQ_RECONNECT (seconds, empty=off)
#   VQ_MEM_PATH (a hugetlbfs mount: guest RAM there, preallocated; empty = a memfd)
#   VQ_QMP (path of a QMP socket to create, empty=none)  VQ_BLK_OPTS (",opt=val..." for the
#   vhost-user-blk-pci device)  VQ_APPEND (extra kernel cmdline)  VQ_QEMU_ARGS (array, extra args)
#   VQ_GUEST_TIMEOUT (hard limit per boot, s, default 300)  VQ_KEEP_TMP=1 (keep the temp dir)
#   VQ_VERBOSE=1 (copy the serial console to stderr when the guest ends)
#   VQ_NO_REBOOT=0 (a guest reboot resets the VM instead of ending QEMU)
#   VQ_QEMU_BIN (another QEMU binary, e.g. tests/qemu/qemu-backports.sh's 10.0; default the
#   system's qemu-system-x86_64)
#
# Guests under I/O while the back-end is killed or replaced (see each function's comment):
#   vq_vhostd_paths                     # VQ_VHOSTD VQ_VHOSTCTL VQ_SOCKDIR VQ_RPC, no daemon yet
#   vq_vhostd_conf_start CONF LOG [--supervise]   # vhostd (or its supervisor) from a config file
#   vq_fio_write_guest OUT verify       # guest script: fio randwrite (crc32c verify) on /dev/vda
#   vq_guest_start NAME OUT VT_RUNTIME=60         # QEMU in the background; VQ_GUEST_LOG
#   vq_wait_fio_start                   # until the guest printed "fio-starting"
#   vq_kill_loop KILLS NQ LOG worker|restart CONF # kill -9 KILLS times, wait for NQ queues again
#   vq_guest_end || vq_guest_fail "reason"        # wait for QEMU; VQ_GUEST_RES VQ_GUEST_QEMU_RC
#
# Every process started here is killed by the EXIT trap, in reverse start order.

VQ_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VQ_SRC_ROOT=$(cd "$VQ_LIB_DIR/../.." && pwd)
VQ_BACKEND=${VHOSTD_QEMU_BACKEND:-vhostd}
VQ_QUEUES=${VQ_QUEUES:-2}
VQ_SMP=${VQ_SMP:-2}
VQ_MEM=${VQ_MEM:-512M}
VQ_GUEST_TIMEOUT=${VQ_GUEST_TIMEOUT:-300}
VQ_RESULT_MARK="VHOSTD-TEST-RESULT:"
VQ_PIDS=()        # "pid:name" of everything we started, in start order
VQ_EXTRA_RM=()    # paths outside VQ_TMP to remove on exit
VQ_NAME=test

vq_log() { echo "[$(date +%T)] $VQ_NAME: $*" >&2; }

vq_skip() {
	vq_log "SKIP: $*"
	exit 77
}

vq_fail() {
	vq_log "FAIL: $*"
	exit 1
}

vq_pass() {
	vq_log "PASS ($((SECONDS - VQ_T0)) s)"
	exit 0
}

# vq_init NAME: temp dir, traps, prerequisites.
vq_init() {
	VQ_NAME=$1
	VQ_T0=$SECONDS
	set -o pipefail
	command -v qemu-system-x86_64 >/dev/null || vq_skip "qemu-system-x86_64 not installed"
	qemu-system-x86_64 -accel help 2>/dev/null | grep -qx tcg || vq_skip "QEMU has no TCG"
	VQ_TMP=$(mktemp -d "${TMPDIR:-/tmp}/vhostd-qemu-$VQ_NAME.XXXXXX") || vq_fail "mktemp"
	trap vq_cleanup EXIT
	trap 'vq_log "interrupted"; exit 130' INT
	trap 'vq_log "terminated"; exit 143' TERM
	vq_log "temp dir $VQ_TMP, back-end $VQ_BACKEND"
	vq_image
}

# vq_image: build or reuse the cached base image; sets VQ_KERNEL and VQ_INITRD_BASE.
vq_image() {
	local out rc t0=$SECONDS
	out=$("$VQ_LIB_DIR/guest-image.sh" --env 2>"$VQ_TMP/guest-image.log")
	rc=$?
	((SECONDS - t0 > 2)) && vq_log "guest image ready after $((SECONDS - t0)) s (built or waited for the cache lock)"
	if [[ $rc -eq 77 ]]; then
		cat "$VQ_TMP/guest-image.log" >&2
		vq_skip "guest image unavailable"
	fi
	if [[ $rc -ne 0 ]]; then
		cat "$VQ_TMP/guest-image.log" >&2
		vq_fail "guest-image.sh failed ($rc)"
	fi
	eval "$out"
	[[ -f "$VQ_KERNEL" && -f "$VQ_INITRD_BASE" ]] || vq_fail "guest image files missing"
}

# vq_track PID NAME: kill it at exit.
vq_track() { VQ_PIDS+=("$1:$2"); }

# vq_stop PID NAME [TIMEOUT]: SIGTERM, wait up to TIMEOUT s (default 10), then SIGKILL.
# Returns 0 if it exited on SIGTERM, 1 if it had to be killed, 2 if it was already gone.
vq_stop() {
	local pid=$1 name=$2 t=${3:-10} i
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 2; }
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < t * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
		sleep 0.1
	done
	vq_log "$name (pid $pid) ignored SIGTERM for ${t}s: SIGKILL"
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 1
}

vq_untrack() {
	local pid=$1 i
	for i in "${!VQ_PIDS[@]}"; do
		[[ "${VQ_PIDS[$i]%%:*}" == "$pid" ]] && unset 'VQ_PIDS[i]'
	done
	VQ_PIDS=("${VQ_PIDS[@]}")
}

vq_cleanup() {
	local rc=$? i entry pid name
	trap - EXIT INT TERM
	for ((i = ${#VQ_PIDS[@]} - 1; i >= 0; i--)); do
		entry=${VQ_PIDS[$i]}
		pid=${entry%%:*}
		name=${entry#*:}
		vq_stop "$pid" "$name" 10
		if [[ $? -eq 1 && "$name" == vhostd ]]; then
			vq_log "FAIL: vhostd did not exit on SIGTERM"
			rc=1
		fi
	done
	if [[ $rc -ne 0 && $rc -ne 77 ]]; then
		vq_dump_logs
	fi
	# Paths a test created outside its temp dir (a disk image on tmpfs, say).
	for i in "${VQ_EXTRA_RM[@]}"; do
		rm -rf "$i"
	done
	if [[ "${VQ_KEEP_TMP:-0}" == 1 || ($rc -ne 0 && $rc -ne 77 && "${VQ_KEEP_TMP:-}" != 0) ]]; then
		[[ -n "${VQ_TMP:-}" ]] && vq_log "logs kept in $VQ_TMP"
	else
		[[ -n "${VQ_TMP:-}" ]] && rm -rf "$VQ_TMP"
	fi
	exit "$rc"
}

# On failure: the tail of every log in the temp dir.
vq_dump_logs() {
	local f
	[[ -n "${VQ_TMP:-}" ]] || return 0
	for f in "$VQ_TMP"/*.log; do
		[[ -s "$f" ]] || continue
		echo "----- $(basename "$f") (last 60 lines) -----" >&2
		tail -n 60 "$f" >&2
	done
}

# vq_wait_for DESCRIPTION TIMEOUT_S CMD...: poll CMD every 0.1 s until it succeeds.
vq_wait_for() {
	local what=$1 t=$2 deadline
	shift 2
	deadline=$((SECONDS + t))
	until "$@" 2>/dev/null; do
		((SECONDS >= deadline)) && { vq_log "timeout (${t}s) waiting for $what"; return 1; }
		sleep 0.1
	done
}

# ---- guest ----------------------------------------------------------------------------

# vq_make_initrd OUT SCRIPT [VAR=VALUE...]: base image + a second cpio with /test.sh and
# /test.env (the VAR=VALUE pairs, shell-quoted).
vq_make_initrd() {
	local out=$1 script=$2 st kv
	shift 2
	st=$(mktemp -d "$VQ_TMP/initrd.XXXXXX")
	cp "$script" "$st/test.sh"
	chmod 0755 "$st/test.sh"
	: >"$st/test.env"
	for kv in "$@"; do
		printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}" >>"$st/test.env"
	done
	(cd "$st" && printf '%s\n' test.sh test.env | cpio -o -H newc --quiet -R 0:0) | gzip -1 >"$st/tail.gz" ||
		vq_fail "cpio"
	cat "$VQ_INITRD_BASE" "$st/tail.gz" >"$out"
	rm -rf "$st"
}

# vq_qemu_cmd INITRD LOG: print the QEMU argv, one per line (for the logs and for reuse).
vq_qemu_argv() {
	local initrd=$1 log=$2 chr dev
	local memobj="memory-backend-memfd,id=mem,size=$VQ_MEM,share=on"
	[[ -n "${VQ_MEM_PATH:-}" ]] &&
		memobj="memory-backend-file,id=mem,size=$VQ_MEM,mem-path=$VQ_MEM_PATH,share=on,prealloc=on"
	VQ_ARGV=("${VQ_QEMU_BIN:-qemu-system-x86_64}" -accel tcg -cpu max -smp "$VQ_SMP" -m "$VQ_MEM"
		-object "$memobj" -machine "memory-backend=mem"
		-nographic -serial "file:$log" -monitor none -vga none -net none
		-kernel "$VQ_KERNEL" -initrd "$initrd"
		-append "console=ttyS0 quiet loglevel=4 panic=-1 rdinit=/init ${VQ_APPEND:-}")
	# A guest reboot ends QEMU unless VQ_NO_REBOOT=0 (then the VM resets in place).
	[[ "${VQ_NO_REBOOT:-1}" == 1 ]] && VQ_ARGV+=(-no-reboot)
	if [[ -n "${VQ_SOCK:-}" ]]; then
		chr="socket,id=c0,path=$VQ_SOCK"
		[[ -n "${VQ_RECONNECT:-}" ]] && chr+=",reconnect=$VQ_RECONNECT"
		dev="vhost-user-blk-pci,chardev=c0,num-queues=$VQ_QUEUES"
		[[ -n "${VQ_QUEUE_SIZE:-}" ]] && dev+=",queue-size=$VQ_QUEUE_SIZE"
		dev+="${VQ_BLK_OPTS:-}"
		VQ_ARGV+=(-chardev "$chr" -device "$dev")
	fi
	[[ -n "${VQ_QMP:-}" ]] && VQ_ARGV+=(-qmp "unix:$VQ_QMP,server=on,wait=off")
	if [[ -n "${VQ_QEMU_ARGS+x}" ]]; then
		VQ_ARGV+=("${VQ_QEMU_ARGS[@]}")
	fi
}

# vq_qemu_start LOG INITRD: start QEMU in the background; sets VQ_QEMU_PID.
# QEMU's own stderr goes to LOG with .qemu.log appended.
vq_qemu_start() {
	local log=$1 initrd=$2
	vq_qemu_argv "$initrd" "$log"
	: >"$log"
	printf '%q ' "${VQ_ARGV[@]}" >"${log%.log}.qemu.log"
	echo >>"${log%.log}.qemu.log"
	# timeout(1) is the last line of defence against a wedged guest if we die without cleanup.
	# --foreground keeps it in our process group, so a kill of the group (meson timeout) reaches QEMU.
	timeout --foreground -k 5 $((VQ_GUEST_TIMEOUT + 30)) "${VQ_ARGV[@]}" </dev/null >>"${log%.log}.qemu.log" 2>&1 &
	VQ_QEMU_PID=$!
	VQ_QEMU_T0=$SECONDS
	vq_track "$VQ_QEMU_PID" qemu
}

# vq_qemu_wait [TIMEOUT]: wait for QEMU to exit; prints nothing, returns QEMU's exit status,
# or 124 after killing it on timeout.
vq_qemu_wait() {
	local t=${1:-$VQ_GUEST_TIMEOUT} deadline rc
	deadline=$((VQ_QEMU_T0 + t))
	while kill -0 "$VQ_QEMU_PID" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			vq_log "guest still running after ${t}s: killing QEMU"
			vq_stop "$VQ_QEMU_PID" qemu 5
			vq_untrack "$VQ_QEMU_PID"
			return 124
		fi
		sleep 0.2
	done
	wait "$VQ_QEMU_PID"
	rc=$?
	vq_untrack "$VQ_QEMU_PID"
	return $rc
}

# vq_result LOG: print the result line; return 0 PASS, 1 FAIL, 2 no marker.
vq_result() {
	local line
	line=$(grep -a -o "$VQ_RESULT_MARK.*" "$1" | tail -n1 | tr -d '\r')
	if [[ -z "$line" ]]; then
		echo "no result marker"
		return 2
	fi
	echo "${line#"$VQ_RESULT_MARK" }"
	[[ "$line" == "$VQ_RESULT_MARK PASS"* ]]
}

# vq_boot_guest NAME SCRIPT [VAR=VALUE...]: build the initrd, boot, wait, judge.
# Serial log: $VQ_TMP/NAME.log.  Returns 0 when the guest printed PASS and QEMU exited 0.
vq_boot_guest() {
	local name=$1 script=$2 log initrd rc res ready
	shift 2
	log="$VQ_TMP/$name.log"
	initrd="$VQ_TMP/$name.initrd"
	vq_make_initrd "$initrd" "$script" "$@"
	vq_log "booting guest '$name' (queues=$VQ_QUEUES smp=$VQ_SMP)"
	vq_qemu_start "$log" "$initrd"
	vq_qemu_wait
	rc=$?
	rm -f "$initrd"
	res=$(vq_result "$log")
	local rrc=$?
	ready=$(grep -a -o 'vtest: ready at [0-9.]*s' "$log" | head -n1 | sed 's/.* at //')
	VQ_LAST_WALL=$((SECONDS - VQ_QEMU_T0))
	vq_log "guest '$name': $res (wall ${VQ_LAST_WALL}s, guest ready at ${ready:-?}, qemu rc $rc)"
	if [[ "${VQ_VERBOSE:-0}" == 1 ]]; then
		sed 's/^/  | /' "$log" >&2
	fi
	if [[ $rrc -ne 0 ]]; then
		echo "----- serial console of '$name' (last 40 lines) -----" >&2
		tail -n 40 "$log" >&2
		echo "----- QEMU output -----" >&2
		tail -n 20 "${log%.log}.qemu.log" >&2
		return 1
	fi
	[[ $rc -eq 0 ]] || { vq_log "QEMU exited with $rc"; return 1; }
	return 0
}

# vq_guest_output NAME TAG: lines the guest printed as "TAG: text" (TAG stripped).
vq_guest_output() {
	grep -a "^$2: " "$VQ_TMP/$1.log" | sed "s/^$2: //" | tr -d '\r'
}

# vq_qmp ARGS...: tests/qemu/qmp.py against $VQ_QMP.
vq_qmp() { python3 "$VQ_LIB_DIR/qmp.py" "$VQ_QMP" "$@"; }

# ---- back-ends ------------------------------------------------------------------------

vq_bin() {
	local var=$1 def=$2
	if [[ -n "${!var:-}" ]]; then
		echo "${!var}"
	elif [[ -x "$VQ_SRC_ROOT/build/src/app/$def" ]]; then
		echo "$VQ_SRC_ROOT/build/src/app/$def"
	else
		command -v "$def" || true
	fi
}

vq_rpc() { "$VQ_VHOSTCTL" -s "$VQ_RPC" "$@"; }

vq_backend_start() {
	case "$VQ_BACKEND" in
	vhostd) vq_vhostd_start ;;
	qsd)
		command -v qemu-storage-daemon >/dev/null || vq_skip "qemu-storage-daemon not installed"
		VQ_SOCKDIR="$VQ_TMP/sock"
		mkdir -p "$VQ_SOCKDIR"
		;;
	*) vq_fail "unknown VHOSTD_QEMU_BACKEND=$VQ_BACKEND" ;;
	esac
}

# vq_vhostd_paths: set VQ_VHOSTD and VQ_VHOSTCTL (skip the test when they are not built),
# VQ_SOCKDIR (created) and VQ_RPC in the temp dir.
vq_vhostd_paths() {
	VQ_VHOSTD=$(vq_bin VHOSTD vhostd)
	VQ_VHOSTCTL=$(vq_bin VHOSTCTL vhostctl)
	[[ -x "$VQ_VHOSTD" ]] || vq_skip "vhostd not built (set VHOSTD)"
	[[ -x "$VQ_VHOSTCTL" ]] || vq_skip "vhostctl not built (set VHOSTCTL)"
	VQ_SOCKDIR="$VQ_TMP/sock"
	VQ_RPC="$VQ_TMP/rpc.sock"
	mkdir -p "$VQ_SOCKDIR"
}

# vq_vhostd_start: start the daemon, wait until its RPC socket answers.
vq_vhostd_start() {
	vq_vhostd_paths
	# shellcheck disable=SC2086 # VQ_VHOSTD_ARGS is a list of words
	"$VQ_VHOSTD" -m 0x1 -S "$VQ_SOCKDIR" -r "$VQ_RPC" -L "${VQ_VHOSTD_LOGLEVEL:-info}" \
		${VQ_VHOSTD_ARGS:-} </dev/null >"$VQ_TMP/vhostd.log" 2>&1 &
	VQ_DAEMON_PID=$!
	vq_track "$VQ_DAEMON_PID" vhostd
	local deadline=$((SECONDS + 15))
	until [[ -S "$VQ_RPC" ]] && vq_rpc vhost_get_controllers >/dev/null 2>&1; do
		kill -0 "$VQ_DAEMON_PID" 2>/dev/null || vq_fail "vhostd exited during start-up"
		((SECONDS >= deadline)) && vq_fail "vhostd RPC socket not ready after 15 s"
		sleep 0.1
	done
	vq_log "vhostd up (pid $VQ_DAEMON_PID)"
}

# vq_backend_alive: the daemon(s) are still running.
vq_backend_alive() {
	local p
	if [[ "$VQ_BACKEND" == vhostd ]]; then
		kill -0 "$VQ_DAEMON_PID" 2>/dev/null
		return
	fi
	for p in "${VQ_QSD_PIDS[@]}"; do
		kill -0 "$p" 2>/dev/null || return 1
	done
}

# vq_backend_add_disk NAME SIZE_MIB BLOCK_SIZE [ro] [malloc|null]
# Creates a bdev and a vhost-user-blk controller NAME; sets VQ_SOCK, VQ_DISK_BYTES and
# VQ_SERIAL (empty for qsd: its serial is not settable).
vq_backend_add_disk() {
	local name=$1 mib=$2 bs=$3 ro=${4:-rw} kind=${5:-malloc} bdev
	VQ_SOCK="$VQ_SOCKDIR/$name"
	VQ_DISK_BYTES=$((mib * 1024 * 1024))
	VQ_SERIAL=""
	if [[ "$VQ_BACKEND" == qsd ]]; then
		vq_qsd_add_disk "$name" "$mib" "$bs" "$ro" "$kind"
		return
	fi
	VQ_BDEV_SEQ=$((${VQ_BDEV_SEQ:--1} + 1))
	case "$kind" in
	malloc)
		bdev="Malloc$VQ_BDEV_SEQ"
		vq_rpc bdev_malloc_create -b "$bdev" "$mib" "$bs" >/dev/null ||
			vq_fail "bdev_malloc_create failed"
		;;
	null)
		bdev="Null$VQ_BDEV_SEQ"
		vq_rpc bdev_null_create "$bdev" "$mib" "$bs" >/dev/null || vq_fail "bdev_null_create failed"
		;;
	esac
	local roflag=()
	[[ "$ro" == ro ]] && roflag=(-r)
	vq_rpc vhost_create_blk_controller --cpumask 0x1 "$name" "$bdev" "${roflag[@]}" >/dev/null ||
		vq_fail "vhost_create_blk_controller $name failed"
	vq_wait_for "socket $VQ_SOCK" 10 test -S "$VQ_SOCK" || vq_fail "controller socket missing"
	VQ_SERIAL=$(vq_rpc vhost_get_controllers | python3 -c '
import json, sys
name = sys.argv[1]
for c in json.load(sys.stdin):
    if c.get("ctrlr") == name or c.get("name") == name:
        print(c["backend_specific"]["block"]["serial"])
' "$name") || vq_fail "cannot read the serial of $name from vhost_get_controllers"
	vq_log "controller $name: bdev $bdev ${mib}MiB bs=$bs $ro serial='$VQ_SERIAL'"
}

# qsd equivalent: a sparse file (malloc) or null-co (null), one qsd process per disk.
VQ_QSD_PIDS=()
vq_qsd_add_disk() {
	local name=$1 mib=$2 bs=$3 ro=$4 kind=$5 img blockdev writable=on pidf
	img="$VQ_TMP/$name.img"
	if [[ "$kind" == null ]]; then
		blockdev="driver=null-co,node-name=f0,size=$VQ_DISK_BYTES"
	else
		truncate -s "${mib}M" "$img"
		blockdev="driver=file,node-name=f0,filename=$img,discard=unmap"
	fi
	[[ "$ro" == ro ]] && writable=off
	pidf="$VQ_TMP/$name.qsd.pid"
	qemu-storage-daemon --blockdev "$blockdev" \
		--export "type=vhost-user-blk,id=e0,node-name=f0,writable=$writable,logical-block-size=$bs,num-queues=$VQ_QUEUES,addr.type=unix,addr.path=$VQ_SOCK" \
		--pidfile "$pidf" </dev/null >"$VQ_TMP/$name.qsd.log" 2>&1 &
	local pid=$!
	VQ_QSD_PIDS+=("$pid")
	vq_track "$pid" qsd
	# qsd writes the pid file after the export listens (documented ordering).
	vq_wait_for "qsd $name" 15 test -s "$pidf" || vq_fail "qemu-storage-daemon did not start"
	VQ_DAEMON_PID=$pid
	vq_log "qsd export $name: ${mib}MiB bs=$bs $ro (pid $pid)"
}

# vq_backend_log_errors: print daemon log lines that look like errors (informational).
vq_backend_log_errors() {
	local f
	for f in "$VQ_TMP"/vhostd.log "$VQ_TMP"/*.qsd.log; do
		[[ -f "$f" ]] || continue
		grep -aiE '\b(error|fatal|crit|warn|broken|violation)' "$f" | head -n 20 | sed "s|^|$(basename "$f"): |" >&2
	done
	return 0
}

# ---- kill -9 under I/O ----------------------------------------------------------------

# vq_vhostd_conf_start CONF LOG [--supervise]: start vhostd (with --supervise: its supervisor)
# from the config file CONF at log level debug, output appended to LOG, on VQ_SOCKDIR and VQ_RPC
# (vq_vhostd_paths); sets VQ_DAEMON_PID (tracked as "vhostd", or "supervisor"). Returns once the
# RPC socket answers; fails the test after 10 s.
vq_vhostd_conf_start() {
	local conf=$1 log=$2 name=vhostd
	shift 2
	[[ "${1:-}" == --supervise ]] && name=supervisor
	rm -f "$VQ_RPC"
	"$VQ_VHOSTD" "$@" -m 0x1 -S "$VQ_SOCKDIR" -r "$VQ_RPC" -c "$conf" -L debug >>"$log" 2>&1 &
	VQ_DAEMON_PID=$!
	vq_track "$VQ_DAEMON_PID" "$name"
	vq_wait_for "vhostd RPC socket" 10 "$VQ_VHOSTCTL" -s "$VQ_RPC" -t 1 spdk_get_version >/dev/null ||
		vq_fail "vhostd${1:+ $1} did not come up"
}

# vq_fio_write_guest OUT verify|noverify [PROLOGUE [DMESG]]: write to OUT a guest script that
# prints "fio-starting" and runs fio randwrite (4k, libaio, iodepth 32, two jobs split over vCPUs
# 0-1) on /dev/vda for $VT_RUNTIME s. verify: each job writes its own 24 MiB and fio checks every
# block it wrote (crc32c, fatal). The guest fails when fio fails or reports an error, on a guest
# I/O error, or when dmesg tells of a descriptor that "is not a head" (or matches the extended
# regex DMESG) or of a hung task. PROLOGUE: guest shell lines run before fio.
vq_fio_write_guest() {
	local out=$1 mode=$2 prologue=${3:-} dmesg="is not a head|${4:+$4|}blocked for more than|hung task"
	{
		echo '. /etc/vtest.sh'
		[[ -n "$prologue" ]] && printf '%s\n' "$prologue"
		printf '%s\n' 'cat >/tmp/job.fio <<JOB' '[global]' 'filename=/dev/vda' 'direct=1' \
			'ioengine=libaio' 'iodepth=32' 'rw=randwrite' 'bs=4k'
		[[ "$mode" == verify ]] &&
			printf '%s\n' 'verify=crc32c' 'verify_backlog=512' 'verify_fatal=1' 'do_verify=1'
		# shellcheck disable=SC2016 # $VT_RUNTIME is the guest's
		printf '%s\n' 'time_based=1' 'runtime=$VT_RUNTIME'
		[[ "$mode" == verify ]] && printf '%s\n' 'size=24M' 'offset_increment=24M'
		cat <<EOF
numjobs=2
cpus_allowed=0-1
cpus_allowed_policy=split
group_reporting=1
[vtest]
JOB
echo "fio-starting"
fio /tmp/job.fio >/tmp/fio.out 2>&1
rc=\$?
cat /tmp/fio.out
[ \$rc -eq 0 ] || vt_fail "fio exited with \$rc"
grep -q 'err= 0' /tmp/fio.out || vt_fail "fio reported an error"
dmesg | grep -iE '$dmesg' && vt_fail "guest kernel complained"
vt_no_io_errors
EOF
	} >"$out"
}

# vq_guest_start NAME SCRIPT [VAR=VALUE...]: build the initrd and start QEMU in the background
# (vq_qemu_start); the serial log is $VQ_TMP/NAME.log, also in VQ_GUEST_LOG.
vq_guest_start() {
	local name=$1 script=$2
	shift 2
	VQ_GUEST_LOG="$VQ_TMP/$name.log"
	vq_make_initrd "$VQ_TMP/$name.initrd" "$script" "$@"
	vq_qemu_start "$VQ_GUEST_LOG" "$VQ_TMP/$name.initrd"
}

# vq_wait_fio_start [TIMEOUT]: wait (TIMEOUT s, default 120) until the guest of vq_guest_start
# printed "fio-starting" (vq_fio_write_guest's scripts do); fails the test after that.
vq_wait_fio_start() {
	vq_wait_for "fio to start in the guest" "${1:-120}" grep -q fio-starting "$VQ_GUEST_LOG" ||
		vq_fail "guest never started fio"
}

# vq_guest_end [TIMEOUT]: wait for the QEMU of vq_guest_start (vq_qemu_wait TIMEOUT) and read
# the result of VQ_GUEST_LOG; sets VQ_GUEST_QEMU_RC and VQ_GUEST_RES (vq_result's text). Returns
# 0 when the guest printed PASS and QEMU exited 0, else 1.
vq_guest_end() {
	local rrc
	vq_qemu_wait "$@"
	VQ_GUEST_QEMU_RC=$?
	VQ_GUEST_RES=$(vq_result "$VQ_GUEST_LOG")
	rrc=$?
	[[ $rrc -eq 0 && $VQ_GUEST_QEMU_RC -eq 0 ]]
}

# vq_guest_fail MESSAGE: the last 40 lines of VQ_GUEST_LOG, then vq_fail MESSAGE.
vq_guest_fail() {
	tail -n 40 "$VQ_GUEST_LOG" >&2
	vq_fail "$1"
}

# vq_kill_loop [--spread S] [--while-qemu] KILLS NQ LOG worker|restart CONF: KILLS times, at a
# random moment 1.0 to S.9 s (S default 3) after the last recovery, SIGKILL the back-end, then
# wait (30 s at most, else fail the test) until LOG holds NQ more "started: size" lines than
# before the kill: QEMU reconnected and started its NQ queues again.
#   worker:  VQ_DAEMON_PID is a supervisor (vq_vhostd_conf_start CONF LOG --supervise): restore
#            CONF from CONF.orig (what save_config does not keep), kill the supervisor's worker;
#            the supervisor starts the next one.
#   restart: kill vhostd (VQ_DAEMON_PID) and start it again from CONF (vq_vhostd_conf_start).
# --while-qemu: stop early (fewer kills) once QEMU has exited.  Sets VQ_RECOV: the ms from each
# kill (restart: from each restart) to the queues running again.
vq_kill_loop() {
	local spread=3 while_qemu=0 kills nq log how conf i n0 t0 worker
	while [[ "$1" == --* ]]; do
		case "$1" in
		--spread) spread=$2; shift 2 ;;
		--while-qemu) while_qemu=1; shift ;;
		*) vq_fail "vq_kill_loop: unknown option $1" ;;
		esac
	done
	kills=$1 nq=$2 log=$3 how=$4 conf=$5
	VQ_RECOV=()
	for ((i = 1; i <= kills; i++)); do
		sleep "$((RANDOM % spread + 1)).$((RANDOM % 10))"
		if ((while_qemu)) && ! kill -0 "$VQ_QEMU_PID" 2>/dev/null; then
			break
		fi
		n0=$(grep -c "started: size" "$log")
		if [[ "$how" == worker ]]; then
			worker=$(pgrep -P "$VQ_DAEMON_PID" | head -n1)
			[[ -n "$worker" ]] || vq_fail "no worker process before kill $i"
			cp "$conf.orig" "$conf"
			t0=$(date +%s%N)
			kill -9 "$worker"
		else
			kill -9 "$VQ_DAEMON_PID" 2>/dev/null
			wait "$VQ_DAEMON_PID" 2>/dev/null
			vq_untrack "$VQ_DAEMON_PID"
			t0=$(date +%s%N)
			vq_vhostd_conf_start "$conf" "$log"
		fi
		vq_wait_for "QEMU to restart the queues" 30 \
			bash -c "[ \$(grep -c 'started: size' '$log') -ge $((n0 + nq)) ]" ||
			vq_fail "QEMU did not reconnect after kill $i"
		VQ_RECOV+=($((($(date +%s%N) - t0) / 1000000)))
		vq_log "kill $i/$kills: queues running again after ${VQ_RECOV[-1]} ms"
	done
}
