#!/usr/bin/env bash
# The one list of Debian 12 packages vhostd needs; scripts/demo.sh and scripts/test.sh both
# install through this script. Idempotent: installs only what is missing (run as root).
#
#   scripts/install-deps.sh [--check] [--list] [demo|all]
#     demo     build vhostd and run scripts/demo.sh (a QEMU guest with fio in it)
#     all      (default) demo + everything scripts/test.sh runs
#     --check  install nothing: name the missing packages and exit 1 if there are any
#     --list   print the packages of the mode, one per line, and exit
#
# A minimal Debian 12 (debootstrap --variant=minbase) has none of these; it has apt, dpkg
# (dpkg-deb), bash, coreutils (timeout, sha256sum), findutils, grep, sed, gzip, tar, util-linux
# (flock, mount) and libc-bin (ldd), which the scripts use as well. tests/fresh/run.sh checks
# that this list is complete: it runs scripts/demo.sh in such a root.
set -euo pipefail

# Build: meson.build and src/bdev/meson.build (liburing >= 2.0, libaio.h, jansson >= 2.12,
# libmicrohttpd for --metrics; libsystemd and cmocka are 'auto' features: installed so that
# every build has them).
build=(
  gcc meson ninja-build pkg-config
  liburing-dev libaio-dev libjansson-dev libcmocka-dev libsystemd-dev
  libmicrohttpd-dev
)
# The guest demo (tests/qemu/lib.sh, tests/qemu/guest-image.sh): QEMU, python3 (lib.sh reads
# vhostctl's JSON), the guest's busybox (static), fio, mke2fs/e2fsck (e2fsprogs), blkdiscard
# (util-linux), sg_inq/sg_vpd/sg_readcap/sg_luns (sg3-utils), nvme (nvme-cli); modinfo (kmod), cpio and gzip to
# build the initramfs; xz and zstd to unpack the kernel's compressed modules.
demo=(
  qemu-system-x86 python3
  busybox-static fio e2fsprogs util-linux sg3-utils nvme-cli kmod cpio gzip xz-utils zstd
)
# scripts/test.sh on top: clang 14 for the tsan build and the fuzz targets (libclang-rt: the
# sanitizer and libFuzzer runtimes), clang-format and git for the format check, pgrep
# (procps) in tests/qemu/test-supervise.sh, debootstrap and zstd for tests/fresh/run.sh; the rbd
# bdev (librbd-dev: -Drbd=auto builds it when present) and the single-node Ceph cluster its
# tests start (tests/ceph/ceph-cluster.sh), qemu-block-extra for qemu-storage-daemon's rbd driver
# in bench/compare; prometheus (promtool, and a real scrape: tests/func/test_metrics.c,
# test_prometheus.sh); libvirt 9.0's daemon, QEMU driver and virsh, and apparmor_parser
# (tests/qemu/test-libvirt.sh).
test=(
  clang-14 libclang-rt-14-dev clang-format git
  procps
  debootstrap
  prometheus
  libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients apparmor
  librbd-dev ceph-mon ceph-osd ceph-common qemu-block-extra
)

check=0 list=0 mode=all
for a in "$@"; do
  case $a in
    --check) check=1 ;;
    --list) list=1 ;;
    demo|all) mode=$a ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "install-deps: unknown argument '$a' (see --help)" >&2; exit 2 ;;
  esac
done

pkgs=("${build[@]}" "${demo[@]}")
[[ $mode == all ]] && pkgs+=("${test[@]}")
if ((list)); then
  printf '%s\n' "${pkgs[@]}"
  exit 0
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0
if ((check)); then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
