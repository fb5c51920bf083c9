#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# vhostd --supervise, the parts an attacker or an operator can poke at:
# 1. Without -c the worker's state lives in a private directory (mkdtemp, 0700) under $TMPDIR,
#    never at a predictable path: a config planted where it used to live
#    ($TMPDIR/vhostd-supervised-<pid>.json) is not replayed by a restarted worker, the state
#    created over RPC is, and the directory is gone after a clean stop.
# 2. SIGTERM while the supervisor waits to restart a crash-looping worker ends it at once, with
#    exit 0 and without starting another worker.
# 3. kill -9 of the supervisor does not leave its worker running: the worker shuts down.
set -u
VHOSTD=${VHOSTD:?VHOSTD not set}
VHOSTCTL=${VHOSTCTL:?VHOSTCTL not set}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vhostd-supervise.test.XXXXXX")
pid=
worker=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	[ -n "$worker" ] && kill -9 "$worker" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	[ -f "$tmp/log" ] && tail -n 30 "$tmp/log" >&2
	exit 1
}
ctl() { "$VHOSTCTL" -s "$tmp/rpc.sock" -t 5 "$@"; }
# Poll "$@" (a command) every 20 ms, at most $1 times.
wait_for() {
	local tries=$1
	shift
	for _ in $(seq "$tries"); do
		"$@" && return 0
		sleep 0.02
	done
	return 1
}
rpc_up() { ctl spdk_get_version >/dev/null 2>&1; }
# The supervisor's current worker (its only child), or nothing.
child_of() { cat "/proc/$1/task/$1/children" 2>/dev/null | tr -d ' '; }
new_worker() {
	local w
	w=$(child_of "$pid")
	[ -n "$w" ] && [ "$w" != "$1" ]
}
# Gone, or a zombie nobody reaped yet (our pid 1 may not reap orphans).
gone() { [ ! -e "/proc/$1" ] || grep -q '^[^)]*) Z' "/proc/$1/stat" 2>/dev/null; }
start() {
	: >"$tmp/log"
	env -u RUNTIME_DIRECTORY TMPDIR="$tmp/t" \
		"$VHOSTD" --supervise -m 0x1 -S "$tmp" -r "$tmp/rpc.sock" -L info "$@" \
		>>"$tmp/log" 2>&1 &
	pid=$!
}
stop() {
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	pid=
	return $rc
}
mkdir -m 0755 "$tmp/t"

# ---- 1. no -c: private state directory ----
start
wait_for 500 rpc_up || fail "supervised vhostd did not come up"
worker=$(child_of "$pid")
[ -n "$worker" ] || fail "no worker under supervisor $pid"
# Another user's move: plant a config where the state file used to be, before the first change.
cat >"$tmp/t/vhostd-supervised-$pid.json" <<'EOF'
{"subsystems": [{"subsystem": "bdev", "config": [{"method": "bdev_malloc_create", "params": {"name": "Planted", "num_blocks": 64, "block_size": 512}}]}]}
EOF
kill -9 "$worker"
wait_for 500 new_worker "$worker" || fail "worker not restarted"
wait_for 500 rpc_up || fail "restarted worker does not answer"
ctl bdev_get_bdevs | grep -q Planted && fail "the restarted worker replayed a planted config"
echo "ok: a config planted at the old predictable path is ignored"
rm -f "$tmp/t/vhostd-supervised-$pid.json"

ctl bdev_malloc_create -b Malloc0 16 512 >/dev/null || fail "bdev_malloc_create"
entries=$(ls -A "$tmp/t")
[ "$(echo "$entries" | wc -l)" -eq 1 ] || fail "expected one state directory in \$TMPDIR: $entries"
state="$tmp/t/$entries"
[ -d "$state" ] && [ ! -L "$state" ] || fail "$state is not a directory"
[ "$(stat -c '%a %u' "$state")" = "700 $(id -u)" ] || fail "state dir is $(stat -c '%a %u' "$state")"
[ "$(stat -c '%a' "$state/config.json")" = 600 ] || fail "state file is not 0600"
grep -q Malloc0 "$state/config.json" || fail "state not written to $state/config.json"
echo "ok: state kept in $(basename "$state") (0700)"

worker=$(child_of "$pid")
kill -9 "$worker"
wait_for 500 new_worker "$worker" || fail "worker not restarted"
wait_for 500 rpc_up || fail "restarted worker does not answer"
ctl bdev_get_bdevs | grep -q Malloc0 || fail "state lost across a worker restart"
echo "ok: state survives a worker restart"
worker=
stop || fail "supervisor exit status $rc after SIGTERM, expected 0"
[ -z "$(ls -A "$tmp/t")" ] || fail "left behind in \$TMPDIR: $(ls -A "$tmp/t")"
echo "ok: state directory removed on exit"

# ---- 2. SIGTERM during the restart backoff ----
printf 'not json\n' >"$tmp/bad.json"
start -c "$tmp/bad.json"
# 50, 100, 200, 400, 800 ms: the 800 ms wait is a wide window to land the signal in.
wait_for 1000 grep -q "restarting in 800 ms" "$tmp/log" || fail "no crash-loop backoff"
before=$(grep -c "started worker" "$tmp/log")
stop
rc=$?
[ "$rc" -eq 0 ] || fail "supervisor exit status $rc after SIGTERM in backoff, expected 0"
after=$(grep -c "started worker" "$tmp/log")
[ "$after" -eq "$before" ] || fail "a worker was started after SIGTERM ($before -> $after)"
grep -q "while no worker runs; exiting" "$tmp/log" || fail "supervisor did not stop at once"
echo "ok: SIGTERM in backoff: exit 0, no new worker"

# ---- 3. the supervisor dies: its worker must not stay behind ----
start -c "$tmp/config.json"
wait_for 500 rpc_up || fail "supervised vhostd did not come up"
worker=$(child_of "$pid")
[ -n "$worker" ] || fail "no worker under supervisor $pid"
kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=
wait_for 750 gone "$worker" || fail "worker $worker still runs after its supervisor died"
grep -q "signal 15: shutting down" "$tmp/log" || fail "worker did not shut down cleanly"
worker=
echo "ok: worker shuts down when the supervisor is killed"

echo "test_supervise: PASS"
