#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Persistent configuration: state created over RPC survives kill -9 and a restart without
# --supervise (same bdevs, controllers and socket paths); a truncated or garbage config file
# stops the daemon with exit code 1 and an error naming the file.
set -u
VHOSTD=${VHOSTD:?VHOSTD not set}
VHOSTCTL=${VHOSTCTL:?VHOSTCTL not set}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vhostd-config.XXXXXX")
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
	"$VHOSTD" -m 0x1 -S "$tmp" -r "$tmp/rpc.sock" -c "${1:-$tmp/config.json}" >>"$tmp/log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		ctl spdk_get_version >/dev/null 2>&1 && return 0
		kill -0 "$pid" 2>/dev/null || fail "vhostd exited at start"
		sleep 0.05
	done
	fail "vhostd RPC socket did not answer"
}

# A config path that does not exist yet: start empty, create it on the first change.
start
[ -e "$tmp/config.json" ] && fail "config file created before any change"
ctl bdev_malloc_create -b Malloc0 16 512 >/dev/null || fail "bdev_malloc_create"
ctl bdev_null_create Null0 8 4096 >/dev/null || fail "bdev_null_create"
ctl bdev_null_create --read-zeroes NullZ 8 4096 >/dev/null || fail "bdev_null_create --read-zeroes"
ctl vhost_create_blk_controller --cpumask 0x1 vhost.0 Malloc0 >/dev/null || fail "ctrlr 0"
ctl vhost_create_blk_controller -r vhost.ro Null0 >/dev/null || fail "ctrlr ro"
ctl call bdev_set_qos_limit '{"name": "Malloc0", "rw_ios_per_sec": 3000, "w_mbytes_per_sec": 7}' \
	>/dev/null || fail "bdev_set_qos_limit"
[ -s "$tmp/config.json" ] || fail "config file not written after changes"
before=$(ctl save_config)

kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=
start
after=$(ctl save_config)
[ "$before" = "$after" ] || fail "state differs after restart:
$before
---
$after"
[ -S "$tmp/vhost.0" ] && [ -S "$tmp/vhost.ro" ] || fail "controller sockets not back at the same paths"
ctl vhost_get_controllers -n vhost.ro | grep -q '"readonly": true' || fail "read-only flag lost"
ctl bdev_get_bdevs -b Malloc0 | grep -q '"rw_ios_per_sec": 3000' || fail "QoS limit lost"
# read_zeroes is saved only when on (SPDK's bdev_null_create refuses unknown params).
[ "$(grep -o '"read_zeroes": true' <<<"$after" | wc -l)" -eq 1 ] ||
	fail "read_zeroes not saved exactly once (for NullZ): $after"

# A deletion is persisted too.
ctl vhost_delete_controller vhost.ro >/dev/null || fail "delete"
grep -q vhost.ro "$tmp/config.json" && fail "deleted controller still in the config file"
kill "$pid"
wait "$pid"
rc=$?
pid=
[ "$rc" -eq 0 ] || fail "SIGTERM exit status $rc, expected 0"

# Every creation parameter survives save_config and a restart from the saved file: each object
# is made with non-default values, and save_config must read the same after the restart.
all="$tmp/all.json"
start "$all"
truncate -s 8M "$tmp/u.img" "$tmp/a.img"
ctl call bdev_malloc_create '{"name": "M4k", "num_blocks": 2048, "block_size": 4096,
	"physical_block_size": 4096, "uuid": "6b1c4c39-2d8a-4b5e-9e0c-1a2b3c4d5e6f"}' >/dev/null ||
	fail "malloc with every parameter"
ctl call bdev_null_create '{"name": "N4k", "num_blocks": 100, "block_size": 4096,
	"uuid": "0f3ad5a6-7b59-4e21-8c3d-5a6b7c8d9e0f", "read_zeroes": true}' >/dev/null ||
	fail "null with every parameter"
ctl call bdev_uring_create "{\"name\": \"U4k\", \"filename\": \"$tmp/u.img\", \"block_size\": 4096,
	\"uuid\": \"11111111-2222-4333-8444-555555555555\", \"inline_io\": false}" >/dev/null ||
	fail "uring with every parameter"
ctl call bdev_aio_create "{\"name\": \"A4k\", \"filename\": \"$tmp/a.img\", \"block_size\": 4096,
	\"uuid\": \"66666666-7777-4888-8999-aaaaaaaaaaaa\", \"inline_io\": false}" >/dev/null ||
	fail "aio with every parameter"
ctl call vhost_create_blk_controller '{"ctrlr": "q64", "dev_name": "M4k", "cpumask": "0x1",
	"readonly": true, "transport": "vhost_user_blk", "num_queues": 64, "packed_ring": false,
	"packed_ring_recovery": false}' >/dev/null || fail "controller with every parameter"
ctl call vhost_create_blk_controller '{"ctrlr": "q7", "dev_name": "U4k", "num_queues": 7}' \
	>/dev/null || fail "controller with 7 queues"
# A scsi controller with two targets (one picked with -1) and one removed again.
ctl call vhost_create_scsi_controller '{"ctrlr": "s0", "cpumask": "0x1", "num_queues": 6}' \
	>/dev/null || fail "scsi controller with every parameter"
ctl bdev_malloc_create -b MS3 4 512 >/dev/null && ctl bdev_malloc_create -b MS9 4 512 >/dev/null &&
	ctl bdev_malloc_create -b MSx 4 512 >/dev/null || fail "scsi bdevs"
ctl vhost_scsi_controller_add_target s0 3 MS3 >/dev/null || fail "scsi target 3"
ctl vhost_scsi_controller_add_target s0 9 MSx >/dev/null || fail "scsi target 9"
[ "$(ctl vhost_scsi_controller_add_target s0 -1 N4k)" = 0 ] || fail "scsi target -1 is not 0"
ctl vhost_scsi_controller_remove_target s0 9 >/dev/null || fail "remove scsi target 9"
ctl vhost_scsi_controller_add_target s0 9 MS9 >/dev/null || fail "scsi target 9 again"
before=$(ctl save_config)
for want in '"num_queues": 64' '"num_queues": 7' '"readonly": true' '"inline_io": false' \
	'"subsystem": "vhost_scsi"' '"num_queues": 6' '"scsi_target_num": 3' '"bdev_name": "MS9"' \
	'"read_zeroes": true' \
	'"block_size": 4096' '6b1c4c39-2d8a-4b5e-9e0c-1a2b3c4d5e6f' '0f3ad5a6-7b59-4e21-8c3d-5a6b7c8d9e0f' \
	'11111111-2222-4333-8444-555555555555' '66666666-7777-4888-8999-aaaaaaaaaaaa'; do
	grep -qF -- "$want" <<<"$before" || fail "save_config lacks $want:
$before"
done
cmp -s <(echo "$before") <(ctl save_config) || fail "save_config is not stable"
kill "$pid"
wait "$pid" 2>/dev/null
pid=
start "$all"
after=$(ctl save_config)
[ "$before" = "$after" ] || fail "parameters lost in the restart:
$before
---
$after"
ctl vhost_get_controllers -n q64 | grep -q '"num_queues": 64' || fail "q64 back without 64 queues"
ctl vhost_get_controllers -n s0 | tr -d ' \n' | grep -q '"scsi_dev_num":9,"id":9,"target_name":"Target9","luns":\[{"id":0,"bdev_name":"MS9"}\]' ||
	fail "scsi target 9 not back on MS9: $(ctl vhost_get_controllers -n s0)"
grep -qF '"bdev_name": "MSx"' <<<"$after" && fail "removed scsi target back after the restart"
echo "ok: every parameter survives save_config and a restart"
kill "$pid"
wait "$pid" 2>/dev/null
pid=

# A config saved by an SPDK v23.05 vhost target (its shape and defaults): the tuning methods
# SPDK writes at the head of the bdev subsystem are accepted, the rest builds the same disks.
cat >"$tmp/spdk.json" <<'JSON'
{"subsystems": [
  {"subsystem": "bdev", "config": [
    {"method": "bdev_set_options", "params": {"bdev_io_pool_size": 65535, "bdev_io_cache_size": 256, "bdev_auto_examine": true}},
    {"method": "bdev_nvme_set_options", "params": {"action_on_timeout": "none", "timeout_us": 0, "timeout_admin_us": 0, "keep_alive_timeout_ms": 10000, "transport_retry_count": 4, "arbitration_burst": 0, "low_priority_weight": 0, "medium_priority_weight": 0, "high_priority_weight": 0, "nvme_adminq_poll_period_us": 10000, "nvme_ioq_poll_period_us": 0, "io_queue_requests": 0, "delay_cmd_submit": true, "bdev_retry_count": 3, "transport_ack_timeout": 0, "ctrlr_loss_timeout_sec": 0, "reconnect_delay_sec": 0, "fast_io_fail_timeout_sec": 0, "generate_uuids": false, "transport_tos": 0, "io_path_stat": false}},
    {"method": "bdev_nvme_set_hotplug", "params": {"period_us": 100000, "enable": false}},
    {"method": "bdev_malloc_create", "params": {"name": "Malloc0", "num_blocks": 32768, "block_size": 512, "uuid": "5c4e7a10-8f1e-4b1a-9d0e-0a1b2c3d4e5f"}},
    {"method": "bdev_wait_for_examine"}]},
  {"subsystem": "scsi", "config": null},
  {"subsystem": "vhost_scsi", "config": []},
  {"subsystem": "vhost_blk", "config": [
    {"method": "vhost_create_blk_controller", "params": {"ctrlr": "vhost.0", "dev_name": "Malloc0", "cpumask": "0x1", "readonly": false, "transport": "vhost_user_blk"}}]}
]}
JSON
: >"$tmp/log"
start "$tmp/spdk.json"
ctl vhost_get_controllers -n vhost.0 | grep -q '"bdev": "Malloc0"' || fail "SPDK's config: vhost.0 not on Malloc0"
grep -q "bdev_nvme_set_options: accepted without effect" "$tmp/log" || fail "SPDK's config: no notice for the inert options"
kill "$pid"
wait "$pid" 2>/dev/null
pid=
# A value vhostd cannot honour stops the replay, naming the entry.
sed -i 's/"timeout_us": 0/"timeout_us": 5000/' "$tmp/spdk.json"
: >"$tmp/log"
timeout 10 "$VHOSTD" -m 0x1 -S "$tmp" -r "$tmp/rpc2.sock" -c "$tmp/spdk.json" >"$tmp/log" 2>&1
rc=$?
[ "$rc" -eq 1 ] || fail "SPDK's config with timeout_us: exit status $rc, expected 1"
grep -q "bdev_nvme_set_options.*'timeout_us' is not supported" "$tmp/log" || fail "timeout_us refusal not named: $(cat "$tmp/log")"
echo "ok: an SPDK v23.05 save_config replays; a timeout it cannot honour is refused by name"

# Corrupt files: exit 1 and name the file; never a half-started daemon.
good=$(cat "$tmp/config.json")
for bad in garbage truncated badentry; do
	case $bad in
	garbage) printf 'not json at all\n' >"$tmp/config.json" ;;
	truncated) printf '%s' "${good:0:$((${#good} / 2))}" >"$tmp/config.json" ;;
	badentry) printf '{"subsystems":[{"subsystem":"vhost_blk","config":[{"method":"vhost_create_blk_controller","params":{"ctrlr":"x","dev_name":"Nope"}}]}]}\n' >"$tmp/config.json" ;;
	esac
	: >"$tmp/log"
	timeout 10 "$VHOSTD" -m 0x1 -S "$tmp" -r "$tmp/rpc2.sock" -c "$tmp/config.json" >"$tmp/log" 2>&1
	rc=$?
	[ "$rc" -eq 1 ] || fail "$bad config: exit status $rc, expected 1"
	grep -q "config $tmp/config.json" "$tmp/log" || fail "$bad config: error does not name the file"
	[ -e "$tmp/rpc2.sock" ] && fail "$bad config: RPC socket created (half-started daemon)"
	echo "ok: $bad config -> exit 1: $(grep -m1 'error' "$tmp/log" | sed 's/^\[[^]]*\] //')"
done
echo "test_config: PASS"
