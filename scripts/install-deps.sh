#!/usr/bin/env bash
# Install what vhostd needs to build and test on Debian 12 (run as root). Idempotent.
set -euo pipefail

pkgs=(
  gcc make meson ninja-build pkg-config
  liburing-dev libaio-dev libjansson-dev libcmocka-dev libsystemd-dev
  clang-14 libclang-rt-14-dev clang-format
  qemu-system-x86 qemu-utils
  busybox-static fio kmod cpio e2fsprogs util-linux
  python3 procps psmisc
  librbd-dev ceph-mon ceph-osd ceph-common qemu-block-extra
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
