#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# nvme-guest-extra.sh: build the extra initramfs archive the NVMe guest tests (test-nvme-*.sh)
# append to the base guest image (guest-image.sh, unchanged): vhostd, vhostctl, nvme-client and,
# when built, vhost-bench, with their ldd libraries (under /opt/vhostd/bin); the uio,
# uio_pci_generic, vfio-pci (+ type1 IOMMU) and kernel nvme modules of the guest's kernel with
# their dependencies (load lists /etc/vtest-nvme-{uio,vfio,nvme}); and /etc/vtest-nvme.sh, the
# guest-side helpers (hugepages, binding, vhostd start/stop, skip marker).
#
# Usage: nvme-guest-extra.sh OUT.cpio.gz KERNEL
#   KERNEL   the guest vmlinuz (VQ_KERNEL from guest-image.sh --env): its cache directory names
#            the kernel version, whose .deb guest-image.sh keeps in <cache>/debs.
# Environment: VHOSTD VHOSTCTL NVME_CLIENT (required), VHOST_BENCH (optional).
# The module part is cached next to the kernel (nvme-modules-<hash>.cpio.gz): extracting the
# kernel package takes ~10 s the first time.
# Exit: 0 ok, 77 something needed is missing (message on stderr), 1 error.

set -euo pipefail
export LC_ALL=C

log() { echo "nvme-guest-extra: $*" >&2; }
skip() { log "$*"; exit 77; }
die() { log "error: $*"; exit 1; }

[[ $# -eq 2 ]] || die "usage: $0 OUT.cpio.gz KERNEL"
out=$1
kernel=$2
for v in VHOSTD VHOSTCTL NVME_CLIENT; do
	[[ -n "${!v:-}" && -x "${!v}" ]] || skip "$v not set or not executable (${!v:-unset})"
done
for p in cpio gzip modinfo dpkg-deb ldd; do
	command -v "$p" >/dev/null || skip "$p not installed"
done

imgdir=$(cd "$(dirname "$kernel")" && pwd)
cache=$(dirname "$imgdir")
kdir=$(basename "$imgdir")
kver=${kdir%-*} # "6.1.0-57-amd64-<recipe hash>" -> "6.1.0-57-amd64"

# Modules wanted; their dependencies are added from modinfo. Three load lists.
UIO_MODS=(uio_pci_generic)
VFIO_MODS=(vfio_pci vfio_iommu_type1)
NVME_MODS=(nvme)

# ---- modules (cached per kernel and per version of this script) ---------------------------

hash=$({ sed -n '/^# ---- modules/,/^# ---- end of modules/p' "$0"; echo "$kver"; } |
	sha256sum | cut -c1-12)
modcpio="$imgdir/nvme-modules-$hash.cpio.gz"

declare -A MODFILE MODSEEN
builtin_list=""
ORDER=()

add_module() {
	local name=${1//-/_} f dep deps
	[[ -n "${MODSEEN[$name]:-}" ]] && return 0
	MODSEEN[$name]=1
	f=${MODFILE[$name]:-}
	if [[ -z "$f" ]]; then
		grep -qE "/${name//_/[-_]}\\.ko\$" <<<"$builtin_list" && return 0
		skip "module $name is neither in the kernel package nor built in"
	fi
	deps=$(modinfo -F depends "$f")
	for dep in ${deps//,/ }; do
		add_module "$dep"
	done
	ORDER+=("$name")
}

copy_module() {
	local name=$1 dst=$2 f=${MODFILE[$1]}
	case "$f" in
	*.ko) cp "$f" "$dst/$name.ko" ;;
	*.ko.xz) xz -dc "$f" >"$dst/$name.ko" ;;
	*.ko.zst) zstd -qdc "$f" >"$dst/$name.ko" ;;
	*.ko.gz) gzip -dc "$f" >"$dst/$name.ko" ;;
	esac
}

# list NAME MODS...: write /etc/vtest-nvme-NAME with the load order of MODS and their deps.
write_list() {
	local root=$1 name=$2 m
	shift 2
	MODSEEN=()
	ORDER=()
	for m in "$@"; do
		add_module "$m"
	done
	: >"$root/etc/vtest-nvme-$name"
	for m in "${ORDER[@]}"; do
		[[ -f "$root/lib/modules/vtest-nvme/$m.ko" ]] || copy_module "$m" "$root/lib/modules/vtest-nvme"
		echo "$m" >>"$root/etc/vtest-nvme-$name"
	done
	log "$name modules: ${ORDER[*]}"
}

build_modules() {
	local deb tmp root f b mdir
	deb=$(ls "$cache/debs/linux-image-${kver}"_*.deb 2>/dev/null | sort -V | tail -n1 || true)
	[[ -n "$deb" ]] || skip "kernel package linux-image-$kver not in $cache/debs (run guest-image.sh --force)"
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/nvme-extra.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	log "extracting modules from $(basename "$deb")"
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards "./lib/modules/$kver/*" 2>/dev/null ||
		dpkg-deb -x "$deb" "$tmp"
	mdir="$tmp/lib/modules/$kver"
	[[ -d "$mdir/kernel" ]] || die "no modules for $kver in $deb"
	builtin_list=$(cat "$mdir/modules.builtin" 2>/dev/null || true)
	while IFS= read -r f; do
		b=${f##*/}
		b=${b%%.ko*}
		MODFILE[${b//-/_}]=$f
	done < <(find "$mdir/kernel" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')
	root="$tmp/root"
	mkdir -p "$root/lib/modules/vtest-nvme" "$root/etc"
	write_list "$root" uio "${UIO_MODS[@]}"
	write_list "$root" vfio "${VFIO_MODS[@]}"
	write_list "$root" nvme "${NVME_MODS[@]}"
	# usr-merged image: /lib is a symlink to usr/lib in the base archive; keep paths under usr.
	mkdir -p "$root/usr"
	mv "$root/lib" "$root/usr/lib"
	(cd "$root" && find . -mindepth 1 | sort | cpio -o -H newc --quiet -R 0:0) | gzip -6 >"$modcpio.tmp"
	mv "$modcpio.tmp" "$modcpio"
	rm -rf "$tmp"
	trap - EXIT
}
# ---- end of modules

exec 9>"$imgdir/.nvme-extra.lock"
flock 9
[[ -s "$modcpio" ]] || build_modules

# ---- binaries and helpers (per run: the binaries change with every build) -----------------

st=$(mktemp -d "${TMPDIR:-/tmp}/nvme-extra-bin.XXXXXX")
trap 'rm -rf "$st"' EXIT
mkdir -p "$st/opt/vhostd/bin" "$st/etc"

copy_path() {
	local src=$1
	[[ -e "$st$src" ]] && return 0
	mkdir -p "$st$(dirname "$src")"
	cp -L "$src" "$st$src"
}
copy_bin() {
	local src=$1 name=$2 lib
	cp -L "$src" "$st/opt/vhostd/bin/$name"
	while read -r lib; do
		[[ -n "$lib" ]] && copy_path "$lib"
	done < <(ldd "$src" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
}
copy_bin "$VHOSTD" vhostd
copy_bin "$VHOSTCTL" vhostctl
copy_bin "$NVME_CLIENT" nvme-client
if [[ -n "${VHOST_BENCH:-}" && -x "$VHOST_BENCH" ]]; then
	copy_bin "$VHOST_BENCH" vhost-bench
fi
# The base image is usr-merged (/lib -> usr/lib, /lib64 -> usr/lib64): move library paths
# under usr so that unpacking does not replace those symlinks with directories.
for d in lib lib64; do
	if [[ -d "$st/$d" ]]; then
		mkdir -p "$st/usr/$d"
		cp -a "$st/$d/." "$st/usr/$d/"
		rm -rf "${st:?}/$d"
	fi
done

cat >"$st/etc/vtest-nvme.sh" <<'EOF'
# Guest-side helpers of the NVMe tests (generated by tests/qemu/nvme-guest-extra.sh).
# Source after /etc/vtest.sh.
export PATH=/opt/vhostd/bin:$PATH
NV_DIR=/tmp/vhostd
NV_RPC=$NV_DIR/rpc.sock
NV_LOG=$NV_DIR/vhostd.log

# nv_skip REASON: the host turns this into exit 77 (the guest itself still ends with PASS).
nv_skip() { echo "NVME-SKIP: $*"; exit 0; }

# nv_load uio|vfio|nvme: insmod the list in order; modules already loaded are fine.
nv_load() {
	local m
	while read -r m; do
		[ -d "/sys/module/$m" ] && continue
		insmod "/lib/modules/vtest-nvme/$m.ko" || return 1
	done </etc/vtest-nvme-$1
}

# nv_bdf: PCI address of the first NVMe controller (class 010802).
nv_bdf() {
	local d
	for d in /sys/bus/pci/devices/*; do
		case "$(cat $d/class)" in 0x010802) basename "$d"; return 0 ;; esac
	done
	return 1
}

# nv_driver BDF: the bound driver, or "none".
nv_driver() {
	if [ -e "/sys/bus/pci/devices/$1/driver" ]; then
		basename "$(readlink "/sys/bus/pci/devices/$1/driver")"
	else
		echo none
	fi
}

# nv_bind BDF DRIVER: driver_override + unbind + bind (what the test does by hand for the
# kernel nvme driver; vhostd binds uio/vfio itself).
nv_bind() {
	local bdf=$1 drv=$2 d=/sys/bus/pci/devices/$1
	[ "$(nv_driver $bdf)" = "$drv" ] && return 0
	echo "$drv" >$d/driver_override || return 1
	[ -e $d/driver ] && { echo "$bdf" >$d/driver/unbind || return 1; }
	echo "$bdf" >/sys/bus/pci/drivers/$drv/bind 2>/dev/null
	[ "$(nv_driver $bdf)" = "$drv" ]
}

# nv_unbind BDF: unbind from whatever holds it and clear driver_override.
nv_unbind() {
	local d=/sys/bus/pci/devices/$1
	[ -e $d/driver ] && echo "$1" >$d/driver/unbind
	echo >$d/driver_override 2>/dev/null
	return 0
}

# nv_huge N: reserve N 2 MiB pages and mount hugetlbfs on /dev/hugepages.
nv_huge() {
	echo "$1" >/proc/sys/vm/nr_hugepages
	local got=$(cat /proc/sys/vm/nr_hugepages)
	[ "$got" -ge "$1" ] || { vt_log "only $got of $1 huge pages"; return 1; }
	mkdir -p /dev/hugepages
	grep -q ' /dev/hugepages hugetlbfs' /proc/mounts || mount -t hugetlbfs none /dev/hugepages
}

# nv_start [ARGS]: start vhostd (reactor on CPU 0) and wait for its RPC socket.
nv_start() {
	mkdir -p $NV_DIR
	vhostd -m 0x1 -S $NV_DIR -r $NV_RPC -L info "$@" </dev/null >>$NV_LOG 2>&1 &
	NV_PID=$!
	local i=0
	until [ -S $NV_RPC ] && vhostctl -s $NV_RPC vhost_get_controllers >/dev/null 2>&1; do
		kill -0 $NV_PID 2>/dev/null || { nv_dump; return 1; }
		i=$((i + 1))
		[ $i -gt 300 ] && { nv_dump; return 1; }
		usleep 100000
	done
	vt_log "vhostd up (pid $NV_PID)"
}

# nv_stop: SIGTERM vhostd, which must exit within 20 s.
nv_stop() {
	local i=0
	kill -TERM $NV_PID 2>/dev/null
	while kill -0 $NV_PID 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 200 ] && { kill -KILL $NV_PID; vt_log "vhostd ignored SIGTERM"; return 1; }
		usleep 100000
	done
	wait $NV_PID
	local rc=$?
	[ $rc -eq 0 ] || vt_log "vhostd exited with $rc"
	return $rc
}

nv_rpc() { vhostctl -s $NV_RPC "$@"; }

# nv_dump: the vhostd log, for failures.
nv_dump() { echo "----- vhostd log -----"; tail -n 60 $NV_LOG 2>/dev/null; echo "-----"; }

# nv_fail REASON: dump the log and fail.
nv_fail() { nv_dump; vt_fail "$*"; }
EOF

(cd "$st" && find . -mindepth 1 | sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 >"$st/bin.cpio.gz"
cat "$modcpio" "$st/bin.cpio.gz" >"$out"
