#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# guest-image.sh: build (once) and cache the test guest: a Debian 6.1 kernel and a base
# initramfs holding busybox-static, fio, mke2fs/e2fsck, blkdiscard, sg3_utils (sg_inq, sg_vpd,
# sg_readcap, sg_luns), nvme-cli, their libraries and the virtio-blk, virtio-scsi + sd and ext4
# modules (and the nvme modules, loaded on demand: vt_load_nvme).  Per-test scripts are appended later as a second cpio archive
# (tests/qemu/lib.sh: vq_make_initrd), so this base image is built once per kernel version.
#
# Usage: guest-image.sh [--env] [--force]
#   --env    print VQ_KERNEL=... and VQ_INITRD_BASE=... (shell assignments) on stdout
#   --force  rebuild even if a cached image exists
# Environment:
#   VHOSTD_GUEST_CACHE       cache directory (default /var/cache/vhostd-guest, or
#                            ~/.cache/vhostd-guest when that is not writable)
#   VHOSTD_GUEST_KERNEL_PKG  kernel package to use (default: what linux-image-amd64 depends on)
#   VHOSTD_GUEST_NO_APT=1    never call apt-get install/update (fail instead)
# Exit: 0 ok, 77 prerequisites missing and cannot be installed (not root / no apt), 1 error.
#
# What runs in the guest: /init (below) mounts proc/sys/dev, loads the modules in dependency
# order with insmod, waits for /dev/vda, sources /test.env and runs /test.sh, then prints
#   VHOSTD-TEST-RESULT: PASS            or
#   VHOSTD-TEST-RESULT: FAIL <reason>
# on the serial console and powers off.  Helpers for test scripts live in /etc/vtest.sh.

set -euo pipefail

# Bump when the image layout or /init changes, so that stale caches are rebuilt.
RECIPE_VERSION=4

# Modules the guest needs; dependencies are added from `modinfo -F depends`.
WANT_MODULES=(virtio_blk virtio_scsi sd_mod virtio_pci ext4 crc32c_generic)
# In the image but not loaded by /init (the NVMe driver tests bind QEMU's emulated NVMe to
# uio/vfio first): a test loads them with vt_load_nvme (the vfio-user NVMe guest tests).
LATER_MODULES=(nvme)
# Programs copied with their ldd libraries (first match on PATH wins). nvme: nvme-cli.
WANT_PROGRAMS=(fio mke2fs e2fsck blkdiscard sg_inq sg_vpd sg_readcap sg_luns nvme)

log() { echo "guest-image: $*" >&2; }
die() { log "error: $*"; exit "${2:-1}"; }

opt_env=0
opt_force=0
for a in "$@"; do
	case "$a" in
	--env) opt_env=1 ;;
	--force) opt_force=1 ;;
	-h|--help) sed -n '3,24p' "$0"; exit 0 ;;
	*) die "unknown argument $a" ;;
	esac
done

export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
export LC_ALL=C

pick_cache_dir() {
	local d="${VHOSTD_GUEST_CACHE:-}"
	if [[ -n "$d" ]]; then
		mkdir -p "$d" || die "cannot create $d"
		echo "$d"
		return
	fi
	d=/var/cache/vhostd-guest
	if mkdir -p "$d" 2>/dev/null && [[ -w "$d" ]]; then
		echo "$d"
		return
	fi
	d="${XDG_CACHE_HOME:-$HOME/.cache}/vhostd-guest"
	mkdir -p "$d" || die "cannot create $d"
	echo "$d"
}

apt_updated=0
apt_install() {
	[[ "${VHOSTD_GUEST_NO_APT:-0}" == 1 ]] && die "missing packages: $* (VHOSTD_GUEST_NO_APT=1)" 77
	[[ $(id -u) -eq 0 ]] || die "missing packages: $* (run as root to install them)" 77
	command -v apt-get >/dev/null || die "missing packages: $* and no apt-get" 77
	log "installing $*"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2; then
		apt_update
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2 ||
			die "apt-get install $* failed" 77
	fi
}
apt_update() {
	[[ $apt_updated -eq 1 ]] && return 0
	apt_updated=1
	log "apt-get update"
	apt-get update >&2 || die "apt-get update failed" 77
}

# Install what is missing.  busybox must be the static build: it is /init's shell.
ensure_deps() {
	local missing=() p
	dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' ||
		missing+=(busybox-static)
	command -v fio >/dev/null || missing+=(fio)
	command -v modinfo >/dev/null || missing+=(kmod)
	command -v cpio >/dev/null || missing+=(cpio)
	command -v gzip >/dev/null || missing+=(gzip)
	command -v mke2fs >/dev/null || missing+=(e2fsprogs)
	command -v blkdiscard >/dev/null || missing+=(util-linux)
	command -v sg_inq >/dev/null || missing+=(sg3-utils)
	command -v nvme >/dev/null || missing+=(nvme-cli)
	command -v xz >/dev/null || missing+=(xz-utils)
	command -v zstd >/dev/null || missing+=(zstd)
	command -v dpkg-deb >/dev/null || die "dpkg-deb not found: this script needs Debian" 77
	if [[ ${#missing[@]} -gt 0 ]]; then
		apt_install "${missing[@]}"
	fi
	for p in busybox fio modinfo cpio gzip mke2fs e2fsck blkdiscard sg_inq sg_vpd sg_readcap \
		sg_luns nvme; do
		command -v "$p" >/dev/null || die "$p still missing after install"
	done
}

# The kernel package: what the linux-image-amd64 meta-package depends on, else the highest
# linux-image-6.1.0-N-amd64 that apt-cache knows.  Prints nothing if apt knows none.
resolve_kernel_pkg() {
	local pkg=""
	if [[ -n "${VHOSTD_GUEST_KERNEL_PKG:-}" ]]; then
		echo "$VHOSTD_GUEST_KERNEL_PKG"
		return
	fi
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-amd64\)$/\1/p' | head -n1) || true
	if [[ -z "$pkg" ]]; then
		pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null |
			awk '{print $1}' | sort -V | tail -n1) || true
	fi
	echo "$pkg"
}

# Recipe hash: this script's own content, so an edited builder never reuses a stale image.
recipe_hash() {
	{ echo "$RECIPE_VERSION"; cat "$0"; } | sha256sum | cut -c1-12
}

# ---- kernel + modules ---------------------------------------------------------------------

fetch_kernel() {
	local pkg=$1 debdir=$2 kx=$3 deb
	mkdir -p "$debdir"
	deb=$(ls "$debdir/${pkg}"_*.deb 2>/dev/null | sort -V | tail -n1 || true)
	if [[ -z "$deb" ]]; then
		log "apt-get download $pkg"
		# _apt cannot write to a root-only directory: download in a world-writable temp dir.
		local dl
		dl=$(mktemp -d)
		chmod 0777 "$dl"
		if ! (cd "$dl" && apt-get download "$pkg" >&2); then
			apt_update
			(cd "$dl" && apt-get download "$pkg" >&2) || { rm -rf "$dl"; die "apt-get download $pkg failed"; }
		fi
		mv "$dl"/*.deb "$debdir/"
		rm -rf "$dl"
		deb=$(ls "$debdir/${pkg}"_*.deb | sort -V | tail -n1)
	fi
	rm -rf "$kx"
	mkdir -p "$kx"
	dpkg-deb -x "$deb" "$kx"
	echo "$deb"
}

# Map "module name" (dashes folded to underscores, as modinfo reports them) -> file path.
declare -A MODFILE
index_modules() {
	local mdir=$1 f b
	while IFS= read -r f; do
		b=${f##*/}
		b=${b%%.ko*}
		MODFILE[${b//-/_}]=$f
	done < <(find "$mdir/kernel" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')
}

declare -A MODSEEN
MODORDER=()
builtin_list=""
# Depth-first: dependencies first, then the module (insmod needs this order).
add_module() {
	local name=${1//-/_} f dep deps
	[[ -n "${MODSEEN[$name]:-}" ]] && return 0
	MODSEEN[$name]=1
	f=${MODFILE[$name]:-}
	if [[ -z "$f" ]]; then
		if grep -qE "/${name//_/[-_]}\\.ko\$" <<<"$builtin_list"; then
			return 0	# built into the kernel
		fi
		die "module $name not found in the kernel package"
	fi
	deps=$(modinfo -F depends "$f")
	for dep in ${deps//,/ }; do
		add_module "$dep"
	done
	MODORDER+=("$name")
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

# ---- programs -----------------------------------------------------------------------------

# Copy a file to the same path under $root, following symlinks (the image is usr-merged:
# /lib, /bin, /sbin, /lib64 are symlinks into /usr, so any path lands in the right place).
copy_path() {
	local src=$1 root=$2
	[[ -e "$root$src" ]] && return 0
	mkdir -p "$root$(dirname "$src")"
	cp -L "$src" "$root$src"
}

copy_program() {
	local prog=$1 root=$2 path lib
	path=$(command -v "$prog")
	copy_path "$path" "$root"
	# ldd lines: "libx.so => /path (addr)", "/lib64/ld-linux-x86-64.so.2 (addr)", "linux-vdso..."
	while read -r lib; do
		[[ -n "$lib" ]] && copy_path "$lib" "$root"
	done < <(ldd "$path" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
}

# ---- guest files --------------------------------------------------------------------------

write_init() {
	local root=$1
	cat >"$root/init" <<'EOF'
#!/bin/sh
# vhostd test guest init (generated by tests/qemu/guest-image.sh)
export PATH=/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /tmp /run /mnt
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /dev/shm
exec </dev/console >/dev/console 2>&1
. /etc/vtest.sh

vt_finish() {
	sync
	echo
	echo "VHOSTD-TEST-RESULT: $*"
	poweroff -f
	sleep 10
}

echo "vtest: init up at $(cut -d' ' -f1 /proc/uptime)s, kernel $(uname -r), $(nproc) cpus"
while read -r m; do
	insmod "/lib/modules/vtest/$m.ko" || vt_finish "FAIL insmod $m failed"
done </etc/vtest-modules
[ -f /test.env ] && . /test.env
if [ "${VT_NEED_DISK:-1}" = 1 ]; then
	vt_wait_path /dev/vda "${VT_DISK_WAIT:-15}" || {
		dmesg | tail -n 30
		vt_finish "FAIL /dev/vda did not appear"
	}
fi
echo "vtest: ready at $(cut -d' ' -f1 /proc/uptime)s"
if [ -f /test.sh ]; then
	sh /test.sh
	rc=$?
else
	echo "vtest: no /test.sh, smoke test only"
	rc=0
fi
if [ $rc -eq 0 ]; then
	vt_finish PASS
else
	reason=$(cat /tmp/vt.reason 2>/dev/null)
	echo "vtest: --- dmesg tail ---"
	dmesg | tail -n 40
	vt_finish "FAIL ${reason:-test script exited with status $rc}"
fi
EOF
	chmod 0755 "$root/init"

	# Helpers for test scripts: source /etc/vtest.sh (init already did, test.sh is a new sh).
	cat >"$root/etc/vtest.sh" <<'EOF'
# vtest helpers for guest test scripts (generated by tests/qemu/guest-image.sh)
export PATH=/usr/sbin:/usr/bin
vt_log() { echo "vtest: $*"; }
# vt_fail REASON: record the reason and exit 1 (init prints the FAIL marker).
vt_fail() { echo "$*" >/tmp/vt.reason; echo "vtest: FAIL: $*"; exit 1; }
# vt_check DESCRIPTION CMD...: run CMD, fail with DESCRIPTION if it fails.
vt_check() { local d=$1; shift; "$@" || vt_fail "$d"; }
# vt_wait_path PATH SECONDS
vt_wait_path() {
	local i=0 n=$(( $2 * 10 ))
	while [ ! -e "$1" ]; do
		i=$((i + 1))
		[ $i -gt $n ] && return 1
		usleep 100000
	done
	return 0
}
# vt_no_io_errors: fail if the kernel logged block I/O errors.
vt_no_io_errors() {
	if dmesg | grep -iE 'I/O error|blk_update_request|Buffer I/O|critical medium|virtio_blk.*(error|fail)' >/tmp/vt.ioerr; then
		cat /tmp/vt.ioerr | head -n 20
		vt_fail "kernel logged I/O errors: $(head -n1 /tmp/vt.ioerr)"
	fi
}
# vt_is_zero DEV OFFSET_MIB LEN_MIB: the range reads back as zeroes (O_DIRECT).
vt_is_zero() {
	dd if="$1" of=/tmp/vt.zchk bs=1M skip="$2" count="$3" iflag=direct 2>/dev/null || return 1
	dd if=/dev/zero of=/tmp/vt.zref bs=1M count="$3" 2>/dev/null
	cmp -s /tmp/vt.zchk /tmp/vt.zref
	local rc=$?
	rm -f /tmp/vt.zchk /tmp/vt.zref
	return $rc
}
# vt_load_nvme: load the kernel NVMe driver and what it needs (skipping loaded modules).
vt_load_nvme() {
	local m
	while read -r m; do
		grep -q "^$m " /proc/modules && continue
		insmod "/lib/modules/vtest/$m.ko" || return 1
	done </etc/vtest-modules-nvme
}
# vt_sum DEV OFFSET_MIB LEN_MIB: sha256 of a range (O_DIRECT).
vt_sum() {
	dd if="$1" bs=1M skip="$2" count="$3" iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1
}
EOF
}

build_image() {
	local out=$1 kx=$2 kver=$3 root mdir name prog
	root="$out/root"
	rm -rf "$root"
	mkdir -p "$root"/usr/{bin,sbin,lib,lib64} "$root"/{dev,proc,sys,tmp,run,mnt,etc,root}
	ln -s usr/bin "$root/bin"
	ln -s usr/sbin "$root/sbin"
	ln -s usr/lib "$root/lib"
	ln -s usr/lib64 "$root/lib64"
	# The kernel opens /dev/console for init before devtmpfs is mounted.
	if [[ $(id -u) -eq 0 ]]; then
		mknod -m 0600 "$root/dev/console" c 5 1
		mknod -m 0666 "$root/dev/null" c 1 3
	fi

	cp "$(command -v busybox)" "$root/usr/bin/busybox"
	file -L "$root/usr/bin/busybox" 2>/dev/null | grep -q 'statically linked' ||
		[[ ! -x /usr/bin/file ]] || die "busybox is not static (install busybox-static)"
	for name in $("$root/usr/bin/busybox" --list); do
		[[ -e "$root/usr/bin/$name" ]] || ln -s busybox "$root/usr/bin/$name"
	done
	# Real binaries replace the busybox applets of the same name.
	for prog in "${WANT_PROGRAMS[@]}"; do
		rm -f "$root/usr/bin/$prog" "$root/usr/sbin/$prog"
		copy_program "$prog" "$root"
	done
	[[ -e "$root/usr/bin/fio" ]] || die "fio missing from the image"

	mdir="$kx/lib/modules/$kver"
	builtin_list=$(cat "$mdir/modules.builtin" 2>/dev/null || true)
	index_modules "$mdir"
	for name in "${WANT_MODULES[@]}"; do
		add_module "$name"
	done
	mkdir -p "$root/lib/modules/vtest"
	: >"$root/etc/vtest-modules"
	for name in "${MODORDER[@]}"; do
		copy_module "$name" "$root/lib/modules/vtest"
		echo "$name" >>"$root/etc/vtest-modules"
	done
	log "modules (load order): ${MODORDER[*]}"
	# Modules loaded later (vt_load_nvme), with the dependencies /init did not load.
	local base=${#MODORDER[@]}
	for name in "${LATER_MODULES[@]}"; do
		add_module "$name"
	done
	: >"$root/etc/vtest-modules-nvme"
	for name in "${MODORDER[@]:$base}"; do
		copy_module "$name" "$root/lib/modules/vtest"
		echo "$name" >>"$root/etc/vtest-modules-nvme"
	done
	log "nvme modules (vt_load_nvme): ${MODORDER[*]:$base}"

	# Debian's mke2fs defaults (ext4 features); mke2fs falls back to built-ins without it.
	[[ -f /etc/mke2fs.conf ]] && cp /etc/mke2fs.conf "$root/etc/mke2fs.conf"
	ln -s ../proc/mounts "$root/etc/mtab"
	write_init "$root"
	# busybox's ash runs its own applet of the same name even when a real binary comes first
	# on PATH (FEATURE_SH_STANDALONE): route the real programs through their full paths.
	{
		echo "# real programs shadow busybox applets"
		for prog in "${WANT_PROGRAMS[@]}"; do
			echo "$prog() { $(command -v "$prog") \"\$@\"; }"
		done
	} >>"$root/etc/vtest.sh"
	echo "$kver" >"$root/etc/vtest-kernel"

	log "packing initramfs"
	(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) |
		gzip -6 >"$out/initrd.base.gz.tmp"
	mv "$out/initrd.base.gz.tmp" "$out/initrd.base.gz"
	cp "$kx/boot/vmlinuz-$kver" "$out/vmlinuz"
	rm -rf "$root"
}

main() {
	local cache pkg kver hash dir kx deb
	cache=$(pick_cache_dir)
	exec 9>"$cache/.lock"
	flock 9

	pkg=$(resolve_kernel_pkg)
	if [[ -z "$pkg" && "${VHOSTD_GUEST_NO_APT:-0}" != 1 && $(id -u) -eq 0 ]]; then
		apt_update
		pkg=$(resolve_kernel_pkg)
	fi
	hash=$(recipe_hash)
	if [[ -z "$pkg" ]]; then
		# No apt metadata: fall back to the newest cached image built by this recipe.
		dir=$(ls -d "$cache"/*-"$hash" 2>/dev/null | sort -V | tail -n1 || true)
		[[ -n "$dir" && -f "$dir/.done" ]] || die "no linux-image-6.1.0-*-amd64 known to apt-cache and no cached image" 77
	else
		kver=${pkg#linux-image-}
		dir="$cache/$kver-$hash"
	fi

	if [[ $opt_force -eq 1 || ! -f "$dir/.done" ]]; then
		ensure_deps
		[[ -n "$pkg" ]] || die "cannot rebuild without a kernel package"
		rm -rf "$dir"
		mkdir -p "$dir"
		kx="$dir/kx"
		deb=$(fetch_kernel "$pkg" "$cache/debs" "$kx")
		log "kernel $kver from $(basename "$deb")"
		[[ -f "$kx/boot/vmlinuz-$kver" ]] || die "no vmlinuz-$kver in $deb"
		build_image "$dir" "$kx" "$kver"
		rm -rf "$kx"
		basename "$deb" >"$dir/kernel-deb"
		touch "$dir/.done"
		log "built $dir ($(du -h "$dir/initrd.base.gz" | cut -f1) initramfs)"
		# Images of other kernels/recipes that nobody rebuilt for a day are stale: drop them
		# (a younger one may still be in use by a concurrent run of an older checkout).
		find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name debs ! -path "$dir" -mtime +0 \
			-exec rm -rf {} + 2>/dev/null || true
		find "$cache/debs" -name '*.deb' ! -name "$(basename "$deb")" -mtime +0 -delete 2>/dev/null || true
	fi
	if [[ $opt_env -eq 1 ]]; then
		printf 'VQ_KERNEL=%q\nVQ_INITRD_BASE=%q\n' "$dir/vmlinuz" "$dir/initrd.base.gz"
	else
		echo "$dir"
	fi
}

main
