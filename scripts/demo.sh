#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# demo.sh: vhostd end to end on a fresh Debian 12 machine (run as root).
#
#   1. installs the build and guest dependencies (scripts/install-deps.sh demo),
#   2. builds vhostd (meson setup build && ninja -C build),
#   3. starts vhostd with a 64 MiB RAM disk behind a vhost-user-blk controller,
#   4. boots a small Linux guest (QEMU, TCG) on it and runs fio inside,
#   5. prints fio's summary and cleans up.
# Exit status: 0 when everything worked.
#
# Env: DEMO_FIO_RUNTIME (s, default 10), DEMO_BUILD_DIR (default build), DEMO_NO_APT=1 (skip
# apt-get), plus the tests/qemu/lib.sh knobs (VHOSTD_GUEST_CACHE, VQ_QUEUES, ...).

set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${DEMO_BUILD_DIR:-build}
RUNTIME=${DEMO_FIO_RUNTIME:-10}

step() { printf '\n==> %s\n' "$*" >&2; }
die() { echo "demo: error: $*" >&2; exit 1; }

step "installing dependencies"
# The one package list is scripts/install-deps.sh; "demo" = the build + the guest.
if [[ "${DEMO_NO_APT:-0}" == 1 ]]; then
	"$ROOT/scripts/install-deps.sh" --check demo || die "missing packages (DEMO_NO_APT=1)"
else
	"$ROOT/scripts/install-deps.sh" demo || die "installing the dependencies failed"
fi

step "building vhostd in $ROOT/$BUILD"
cd "$ROOT" || die "cd $ROOT"
if [[ ! -f "$BUILD/build.ninja" ]]; then
	meson setup "$BUILD" || die "meson setup failed"
fi
nice ninja -C "$BUILD" || die "build failed"
export VHOSTD="$ROOT/$BUILD/src/app/vhostd" VHOSTCTL="$ROOT/$BUILD/src/app/vhostctl"
export VHOSTD_QEMU_BACKEND=vhostd

step "preparing the guest image (cached after the first run)"
# lib.sh: temp dir, traps that stop everything we start, QEMU/vhostd helpers.
. "$ROOT/tests/qemu/lib.sh"
vq_init demo

step "starting vhostd with a 64 MiB RAM disk"
vq_backend_start
echo "\$ vhostctl -s $VQ_RPC bdev_malloc_create -b Malloc0 64 512" >&2
echo "\$ vhostctl -s $VQ_RPC vhost_create_blk_controller --cpumask 0x1 vhost.0 Malloc0" >&2
vq_backend_add_disk vhost.0 64 512
vq_rpc vhost_get_controllers >&2

guest="$VQ_TMP/demo-guest.sh"
cat >"$guest" <<'EOF'
. /etc/vtest.sh
vt_log "disk: /dev/vda $(( $(cat /sys/block/vda/size) / 2048 )) MiB, serial '$(cat /sys/block/vda/serial)', $(ls /sys/block/vda/mq | wc -l) queues"
# one job per vCPU/virtqueue, each on its own half of the disk, data verified with crc32c
fio --filename=/dev/vda --direct=1 --ioengine=libaio --rw=randrw --bs=4k --iodepth=32 \
	--size=32M --verify=crc32c --verify_backlog=1024 --verify_fatal=1 --time_based=1 \
	--runtime="$VT_RUNTIME" --group_reporting=1 \
	--name=q0 --offset=0 --cpus_allowed=0 --name=q1 --offset=32M --cpus_allowed=1 >/tmp/fio.out 2>&1
rc=$?
echo "DEMO-FIO-BEGIN"
cat /tmp/fio.out
echo "DEMO-FIO-END"
[ $rc -eq 0 ] || vt_fail "fio exited with $rc"
vt_no_io_errors
EOF

step "booting the guest and running fio for ${RUNTIME}s (QEMU TCG: expect a few thousand IOPS)"
vq_boot_guest demo "$guest" VT_RUNTIME="$RUNTIME"
rc=$?

step "fio result (inside the guest)"
sed -n '/DEMO-FIO-BEGIN/,/DEMO-FIO-END/p' "$VQ_TMP/demo.log" | sed '1d;$d' | tr -d '\r'
[[ $rc -eq 0 ]] || vq_fail "the guest run failed (serial log above)"
vq_backend_alive || vq_fail "vhostd died"

step "cleaning up"
# The EXIT trap stops vhostd (SIGTERM) and removes the temp dir.
echo "demo: OK" >&2
vq_pass
