#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# build-qemu-vfio-user.sh: a QEMU with the vfio-user client (-device vfio-user-pci, QEMU >= 10.1)
# for the vfio-user guest tests and the benchmark.  Debian 12 ships QEMU 7.2 (no client), so this
# builds Debian's own qemu 10.2 *source package* for x86_64-softmmu only and caches the result
# outside the checkout, keyed by QEMU series:
#
#   /var/cache/vhostd-qemu/10.2/bin/qemu-system-x86_64     (VHOSTD_QEMU_CACHE overrides the root)
#   /var/cache/vhostd-qemu/10.2/BUILT                      which Debian version, when, how long
#
# Only the first run on a machine pays (15-30 min on 2 cores, nice'd, -j2: other engineers share
# the machine); later runs find the stamp and return at once.  Nothing of QEMU is kept in the
# repository: the source comes from the Debian mirror at build time.
#
#   build-qemu-vfio-user.sh            build if missing; print the path of qemu-system-x86_64
#   build-qemu-vfio-user.sh --env      build if missing; print shell assignments (VQ_VFU_QEMU=...,
#                                      VQ_VFU_QEMU_L="-L dir -L dir")
#   build-qemu-vfio-user.sh --check    never build: exit 0 if the cache holds a build, 1 if not
#
# Exit status: 0 ok, 1 build failed (log kept in the cache dir), 77 cannot build here (not root
# and the build dependencies are missing, or no mirror has a QEMU >= 10.1 source package).
#
# How (see also docs/vfio-user.md): deb-src lines live in a private apt state directory under the
# cache (the system's sources.list is not touched).  sid had 1:10.2.2+ds-1 when this was written;
# the newest 10.2.x found is used, else the newest >= 10.1.  Debian's "+ds" tarball lacks
# python/wheels and QEMU 10.2 needs meson >= 1.5, so meson and python3-pycotap come from
# bookworm-backports as .debs, unpacked (not installed) and put on PYTHONPATH.  Debian's package
# already leaves the stripped firmware out of pc-bios/meson.build; placeholders are created for
# any blob the build still names, and --disable-install-blobs keeps them out of the install.
# At run time -L points at Debian's firmware (qemu-system-data, seabios).
set -uo pipefail

SERIES=${VHOSTD_QEMU_SERIES:-10.2}
CACHE=${VHOSTD_QEMU_CACHE:-/var/cache/vhostd-qemu}
MIRROR=${VHOSTD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
JOBS=${VHOSTD_QEMU_JOBS:-2}
PREFIX=$CACHE/$SERIES
STAMP=$PREFIX/BUILT
FW_DIRS=(/usr/share/qemu /usr/share/seabios /usr/lib/ipxe/qemu)
BUILD_DEPS=(libglib2.0-dev libpixman-1-dev ninja-build python3-venv dpkg-dev xz-utils
	pkg-config flex bison)

log() { echo "build-qemu-vfio-user: $*" >&2; }

print_result() {
	local l="" d
	for d in "${FW_DIRS[@]}"; do
		[[ -d $d ]] && l+="-L $d "
	done
	if [[ $mode == --env ]]; then
		echo "VQ_VFU_QEMU=$PREFIX/bin/qemu-system-x86_64"
		echo "VQ_VFU_QEMU_L=\"${l% }\""
	else
		echo "$PREFIX/bin/qemu-system-x86_64"
	fi
}

have_build() { [[ -f $STAMP && -x $PREFIX/bin/qemu-system-x86_64 ]]; }

mode=${1:-}
case $mode in
"" | --env | --check) ;;
*)
	echo "usage: $0 [--env|--check]" >&2
	exit 2
	;;
esac

if have_build; then
	[[ $mode == --check ]] && exit 0
	print_result
	exit 0
fi
[[ $mode == --check ]] && exit 1

mkdir -p "$CACHE" 2>/dev/null || {
	log "cannot create $CACHE (set VHOSTD_QEMU_CACHE)"
	exit 77
}
# One builder at a time; a second caller waits and then finds the stamp.
exec 9>"$CACHE/.lock" || exit 77
flock 9
if have_build; then
	print_result
	exit 0
fi

missing=()
for p in "${BUILD_DEPS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	if [[ $(id -u) != 0 ]]; then
		log "missing build dependencies (${missing[*]}) and not root"
		exit 77
	fi
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" \
		>&2 || exit 77
fi

work=$CACHE/work-$SERIES
blog=$CACHE/build-$SERIES.log
rm -rf "$work" "$PREFIX"
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/dl" || exit 1
log "building QEMU $SERIES into $PREFIX (log: $blog); the first run takes 15-30 min"
t0=$SECONDS
# Everything into the log; fds 3 and 4 keep our stderr and stdout for the messages and result.
exec 3>&2 4>&1 2>"$blog" 1>&2

fail() {
	echo "FAILED: $*"
	tail -n 30 "$blog" >&3
	log "$* (log: $blog)" 2>&3
	exit 1
}

# A private apt configuration: our deb-src lines and the backports binaries, nothing else.
cat >"$work/apt/sources.list" <<EOF
deb-src $MIRROR sid main
deb-src $MIRROR trixie-backports main
deb-src $MIRROR trixie main
deb $MIRROR bookworm-backports main
EOF
apt_opts=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
	-o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache"
	-o APT::Sandbox::User=root)
apt-get "${apt_opts[@]}" update || {
	log "apt-get update failed: no mirror?" 2>&3
	exit 77
}

# The newest version of the series, else the newest >= 10.1.
versions=$(apt-cache "${apt_opts[@]}" showsrc qemu | sed -n 's/^Version: //p' | sort -u)
pick=""
for v in $versions; do
	up=${v#*:}
	up=${up%%+*}
	case $up in
	"$SERIES" | "$SERIES".*)
		if [[ -z $pick ]] || dpkg --compare-versions "$v" gt "$pick"; then pick=$v; fi
		;;
	esac
done
if [[ -z $pick ]]; then
	for v in $versions; do
		if dpkg --compare-versions "$v" ge 1:10.1 &&
			{ [[ -z $pick ]] || dpkg --compare-versions "$v" gt "$pick"; }; then
			pick=$v
		fi
	done
fi
[[ -n $pick ]] || {
	log "no qemu >= 10.1 source package on $MIRROR" 2>&3
	exit 77
}
echo "using qemu $pick"

cd "$work/dl" || fail "cd"
apt-get "${apt_opts[@]}" source --download-only "qemu=$pick" || fail "apt-get source qemu=$pick"
dpkg-source -x ./qemu_*.dsc "$work/src" || fail "dpkg-source -x"
apt-get "${apt_opts[@]}" download meson/bookworm-backports python3-pycotap/bookworm-backports ||
	fail "apt-get download meson python3-pycotap"
mkdir -p "$work/py"
for d in ./meson_*.deb ./python3-pycotap_*.deb; do
	dpkg-deb -x "$d" "$work/py" || fail "dpkg-deb -x $d"
done
export PYTHONPATH=$work/py/usr/lib/python3/dist-packages
export PATH=$work/py/usr/bin:$PATH

cd "$work/src" || fail "cd src"
mkdir -p python/wheels
# Blobs Debian strips from the +ds tarball but a meson.build may still list: empty placeholders
# (never installed: --disable-install-blobs; at run time -L finds Debian's real firmware).
for f in $(sed -n "s/^ *'\([^']*\.\(bin\|rom\|img\|fd\|lid\|ndrv\)\)',\$/\1/p" pc-bios/meson.build); do
	[[ -e pc-bios/$f ]] || : >"pc-bios/$f"
done

mkdir -p build && cd build || fail "mkdir build"
../configure --prefix="$PREFIX" --target-list=x86_64-softmmu --disable-docs --disable-rust \
	--disable-download --disable-install-blobs --disable-werror --disable-debug-info
# The emulator only (not QEMU's own tests, tools or docs): about 1,500 objects.
nice -n 19 ninja -j"$JOBS" qemu-system-x86_64 || fail "ninja qemu-system-x86_64"
mkdir -p "$PREFIX/bin" "$PREFIX/share/qemu" || fail "mkdir $PREFIX"
install -m 0755 qemu-system-x86_64 "$PREFIX/bin/" || fail "install"
cp -r pc-bios/keymaps "$PREFIX/share/qemu/" 2>/dev/null || true
"$PREFIX/bin/qemu-system-x86_64" -device help | grep -q vfio-user-pci ||
	fail "the build has no vfio-user-pci device"

cat >"$STAMP" <<EOF
qemu $pick (Debian source package), x86_64-softmmu
built $(date -u +%FT%TZ) in $((SECONDS - t0)) s with -j$JOBS
EOF
cd / && rm -rf "$work"
exec 2>&3 1>&4 3>&- 4>&-
log "done in $((SECONDS - t0)) s"
print_result
