#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# vfio-user NVMe controllers in the persistent configuration: a controller with non-default
# cpumask and queue count and namespaces at chosen NSIDs survive kill -9 and a restart from the
# --config file (same save_config, same socket path), a namespace removal and a controller
# deletion are persisted, and save_config lists the controller before its namespaces.
set -u
VHOSTD=${VHOSTD:?VHOSTD not set}
VHOSTCTL=${VHOSTCTL:?VHOSTCTL not set}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vhostd-vfu-config.XXXXXX")
pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	[ -f "$tmp/log" ] && tail -n 20 "$tmp/log" >&2
	exit 1
}
ctl() { "$VHOSTCTL" -s "$tmp/rpc.sock" -t 5 "$@"; }
start() {
	rm -f "$tmp/rpc.sock"
	"$VHOSTD" -m 0x1 -S "$tmp" -r "$tmp/rpc.sock" -c "$tmp/config.json" >>"$tmp/log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		ctl spdk_get_version >/dev/null 2>&1 && return 0
		kill -0 "$pid" 2>/dev/null || fail "vhostd exited at start"
		sleep 0.05
	done
	fail "vhostd RPC socket did not answer"
}

start
ctl bdev_malloc_create -b M0 16 512 >/dev/null || fail "bdev M0"
ctl bdev_null_create N0 8 4096 >/dev/null || fail "bdev N0"
ctl bdev_malloc_create -b M1 8 4096 >/dev/null || fail "bdev M1"
ctl call vfu_create_nvme_controller '{"ctrlr": "nvme0", "cpumask": "0x1", "num_io_queues": 7}' \
	>/dev/null || fail "vfu_create_nvme_controller"
ctl call vfu_controller_add_ns '{"ctrlr": "nvme0", "bdev_name": "M0", "nsid": 3}' >/dev/null ||
	fail "add_ns 3"
ctl call vfu_controller_add_ns '{"ctrlr": "nvme0", "bdev_name": "N0", "nsid": 9}' >/dev/null ||
	fail "add_ns 9"
nsid=$(ctl call vfu_controller_add_ns '{"ctrlr": "nvme0", "bdev_name": "M1"}') || fail "add_ns auto"
[ "$nsid" = 1 ] || fail "automatic NSID is $nsid, expected 1 (the lowest free)"
[ -S "$tmp/nvme0" ] || fail "no socket"
cfg=$(ctl save_config)
# The controller comes before its namespaces, inside the vfio_user subsystem.
python3 - "$cfg" <<'PY' || fail "save_config's vfio_user subsystem is wrong"
import json, sys
subs = {s["subsystem"]: s["config"] for s in json.loads(sys.argv[1])["subsystems"]}
c = subs["vfio_user"]
assert [e["method"] for e in c] == ["vfu_create_nvme_controller"] + ["vfu_controller_add_ns"] * 3, c
assert c[0]["params"] == {"ctrlr": "nvme0", "cpumask": "0x1", "num_io_queues": 7}, c[0]
assert sorted(e["params"]["nsid"] for e in c[1:]) == [1, 3, 9], c
PY

kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=
start
after=$(ctl save_config)
[ "$cfg" = "$after" ] || fail "state differs after restart:
$cfg
---
$after"
[ -S "$tmp/nvme0" ] || fail "controller socket not back at the same path"
ctl call vfu_get_controllers '{"name": "nvme0"}' | grep -q '"num_io_queues": 7' ||
	fail "queue count lost"

# Removal and deletion are persisted, and free the bdevs.
ctl call vfu_controller_remove_ns '{"ctrlr": "nvme0", "nsid": 9}' >/dev/null || fail "remove_ns"
grep -q '"nsid": 9' "$tmp/config.json" && fail "removed namespace still in the config file"
ctl bdev_null_delete N0 >/dev/null || fail "bdev of a removed namespace still claimed"
ctl call vfu_delete_controller '{"ctrlr": "nvme0"}' >/dev/null || fail "delete"
grep -q vfu_create_nvme_controller "$tmp/config.json" && fail "deleted controller still saved"
[ -e "$tmp/nvme0" ] && fail "socket left after delete"
ctl bdev_malloc_delete M0 >/dev/null || fail "bdev of a deleted controller still claimed"
kill "$pid"
wait "$pid"
rc=$?
pid=
[ "$rc" -eq 0 ] || fail "SIGTERM exit status $rc, expected 0"
echo "test_vfu_config: PASS"
