#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# qemu-backports.sh: Debian 12's bookworm-backports QEMU (10.0) next to the system's 7.2, not
# installed: its .debs (qemu-system-x86, -common, -data, and the newer seabios it needs) are
# fetched with `apt-get download` through a private apt configuration that only knows
# bookworm-backports (so the machine's sources and package state are left alone), unpacked with
# `dpkg -x` into a cache outside the checkout keyed by version, and checked to start.
#
# Usage: qemu-backports.sh [--env]
#   prints the path of its qemu-system-x86_64; with --env, shell assignments instead:
#     VQB_QEMU=...        the binary
#     VQB_MODULE_DIR=...  export as QEMU_MODULE_DIR (its modules, not 7.2's)
#     VQB_DATA_DIR=...    pass as -L (its firmware and keymaps; seabios from backports)
#     VQB_VERSION=...     the Debian version
# Environment:
#   VHOSTD_QEMU_CACHE        cache root (default /var/cache/vhostd-qemu); the unpacked tree is
#                            <root>/bpo-<version>
#   VHOSTD_DEBIAN_MIRROR     Debian mirror (default: the machine's bookworm URI, else
#                            http://deb.debian.org/debian)
# Exit: 0 ok, 77 unavailable (no apt/dpkg, no mirror and nothing cached, not root), 1 error.
set -euo pipefail

PKGS=(qemu-system-x86 qemu-system-common qemu-system-data seabios)

log() { echo "qemu-backports: $*" >&2; }
die() { log "error: $*"; exit "${2:-1}"; }

opt_env=0
for a in "$@"; do
	case "$a" in
	--env) opt_env=1 ;;
	-h | --help) sed -n '3,22p' "$0"; exit 0 ;;
	*) die "unknown argument $a" ;;
	esac
done
export LC_ALL=C

if ! command -v dpkg-deb >/dev/null || ! command -v apt-get >/dev/null; then
	die "needs Debian (apt, dpkg)" 77
fi
cache=${VHOSTD_QEMU_CACHE:-/var/cache/vhostd-qemu}
mkdir -p "$cache" 2>/dev/null || die "cannot create $cache" 77
exec 9>"$cache/.lock-backports"
flock 9

# The machine's Debian mirror for bookworm (deb822 or one-line sources), else the default.
mirror() {
	local m=${VHOSTD_DEBIAN_MIRROR:-}
	if [[ -z "$m" ]]; then
		m=$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ {print u; exit}' \
			/etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	fi
	if [[ -z "$m" ]]; then
		m=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list \
			/etc/apt/sources.list.d/*.list 2>/dev/null || true)
	fi
	echo "${m:-http://deb.debian.org/debian}"
}

apt_dir="$cache/apt-backports"
APT_OPTS=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
	-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
	-o "APT::Get::List-Cleanup=0" -o "Debug::NoLocking=1")

# The newest cached tree that passed its check, if any.
newest_cached() {
	local d
	for d in "$cache"/bpo-*/; do
		if [[ -f "$d/.done" ]]; then
			echo "${d%/}"
		fi
	done | sort -V | tail -n1
}

# Refresh the private package lists (once per run). Fails quietly without a network.
refresh() {
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
	echo "deb $(mirror) bookworm-backports main" >"$apt_dir/sources.list"
	[[ $(id -u) -eq 0 ]] || return 1
	apt-get "${APT_OPTS[@]}" update >"$apt_dir/update.log" 2>&1
}

# The backports version of $1 (a private list knows only backports; dpkg's status may add the
# installed 7.2, so take the highest version that came from backports).
bpo_version() {
	{ apt-cache "${APT_OPTS[@]}" show "$1" 2>/dev/null || true; } |
		awk '/^Version:/ {print $2}' | { grep -F '~bpo12' || true; } | sort -V | tail -n1
}

unpack() {
	local ver=$1 dir=$2 dl p
	rm -rf "$dir" "$dir.tmp"
	mkdir -p "$dir.tmp/debs"
	# _apt downloads into the current directory: a world-writable one.
	dl=$(mktemp -d)
	chmod 0777 "$dl"
	for p in "${PKGS[@]}"; do
		local v
		v=$(bpo_version "$p")
		[[ -n "$v" ]] || { rm -rf "$dl"; die "no $p in bookworm-backports"; }
		log "apt-get download $p=$v"
		(cd "$dl" && apt-get "${APT_OPTS[@]}" download "$p=$v" >&2) ||
			{ rm -rf "$dl"; die "apt-get download $p=$v failed"; }
	done
	mv "$dl"/*.deb "$dir.tmp/debs/"
	rm -rf "$dl"
	for p in "$dir.tmp"/debs/*.deb; do
		dpkg -x "$p" "$dir.tmp/root"
	done
	echo "$ver" >"$dir.tmp/version"
	mv "$dir.tmp" "$dir"
}

# Paths inside an unpacked tree.
paths() {
	local dir=$1
	QEMU_BIN="$dir/root/usr/bin/qemu-system-x86_64"
	MODULE_DIR="$dir/root/usr/lib/x86_64-linux-gnu/qemu"
	DATA_DIR="$dir/root/usr/share/qemu"
}

# It must start, know vhost-user-scsi-pci, and find its own firmware. (Not `-device help`: that
# loads every module it can find, including 7.2's in the system directory, which QEMU searches
# after QEMU_MODULE_DIR and refuses with an assertion. A normal start loads none of them; it
# may warn once about 7.2's ui-opengl, harmlessly.)
check() {
	local dir=$1
	paths "$dir"
	[[ -x "$QEMU_BIN" ]] || return 1
	QEMU_MODULE_DIR="$MODULE_DIR" "$QEMU_BIN" -L "$DATA_DIR" -device vhost-user-scsi-pci,help \
		2>/dev/null | grep -q '^ *num_queues=' || return 1
	QEMU_MODULE_DIR="$MODULE_DIR" timeout 20 "$QEMU_BIN" -L "$DATA_DIR" -accel tcg \
		-machine q35 -nographic -display none -S -monitor none -serial none \
		-no-reboot -qmp stdio </dev/null >/dev/null 2>&1 <<<'{"execute":"qmp_capabilities"}
{"execute":"quit"}' || return 1
}

main() {
	local ver dir
	if refresh; then
		ver=$(bpo_version qemu-system-x86)
	else
		ver=""
		log "cannot refresh bookworm-backports (offline or not root): using the cache"
	fi
	if [[ -n "$ver" ]]; then
		dir="$cache/bpo-${ver//:/_}"
		if [[ ! -f "$dir/.done" ]]; then
			unpack "$ver" "$dir"
			check "$dir" || die "the unpacked QEMU $ver does not start (see $dir)"
			touch "$dir/.done"
			log "QEMU $ver unpacked in $dir"
		fi
	else
		dir=$(newest_cached)
		[[ -n "$dir" ]] || die "no bookworm-backports QEMU known and none cached" 77
	fi
	paths "$dir"
	if [[ $opt_env -eq 1 ]]; then
		printf 'VQB_QEMU=%q\nVQB_MODULE_DIR=%q\nVQB_DATA_DIR=%q\nVQB_VERSION=%q\n' \
			"$QEMU_BIN" "$MODULE_DIR" "$DATA_DIR" "$(cat "$dir/version")"
	else
		echo "$QEMU_BIN"
	fi
}

main
