#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# fresh/run.sh: the README's first command on a fresh machine. Unpacks a minimal Debian 12 root
# (debootstrap --variant=minbase, nothing else), clones the repository's HEAD into it and runs
# scripts/demo.sh there as root, so that a package missing from scripts/install-deps.sh, or a
# tool the scripts use without installing it, fails here and not on a user's machine.
#
# Usage: tests/fresh/run.sh            (root; needs debootstrap, zstd, git, unshare, chroot)
# Exit: 0 the demo passed in the fresh root, 1 it failed (or the root could not be built),
#       77 cannot run here (not root, debootstrap/zstd/git missing, not a git checkout).
#
# The debootstrap output is cached as a tarball, rebuilt each month or when missing:
#   $FRESH_CACHE/bookworm-minbase-YYYYMM.tar.zst   (FRESH_CACHE default /var/cache/vhostd-fresh)
# It holds debootstrap's output only; the root is unpacked from it afresh every run, and
# everything the project's scripts install comes from the mirror, every run.
# Mirror and network settings are the host's: the root gets the host's apt sources and keys, its
# Acquire:: settings (proxy, ...) and /etc/resolv.conf; debootstrap uses the host's first
# bookworm mirror (FRESH_MIRROR overrides it).
#
# Everything that mounts (debootstrap itself, and /proc, /sys, /dev, /dev/pts, /dev/shm for the
# chroot) runs in a private mount namespace (unshare -m), so no mount is ever visible outside,
# and every mount is undone when that namespace ends. The trap also kills what is left running
# in the root, checks that nothing is mounted below the temp dir, and only then removes it, with
# rm --one-file-system.
#
# Env: FRESH_CACHE, FRESH_MIRROR, FRESH_TIMEOUT (s, default 2700), FRESH_TMP (parent of the
# temp dir, default /var/tmp), FRESH_KEEP=1 (keep the root, unmounted, for a look afterwards),
# FRESH_REV (commit to clone, default HEAD), DEMO_FIO_RUNTIME (passed to the demo),
# FRESH_CMD (what to run in the checkout in the root, default scripts/demo.sh; e.g.
# FRESH_CMD='SUITES="unit func" scripts/test.sh' checks install-deps.sh's full list).

set -uo pipefail
SUITE=bookworm
VARIANT=minbase

log() { echo "[$(date +%T)] fresh: $*" >&2; }
skip() { log "SKIP: $*"; exit 77; }
fail() { log "FAIL: $*"; exit 1; }

# pids_in_root DIR: every process whose root directory is DIR or below it.
pids_in_root() {
	local d=$1 p r
	for p in /proc/[0-9]*; do
		r=$(readlink "$p/root" 2>/dev/null) || continue
		[[ "$r" == "$d" || "$r" == "$d"/* ]] && echo "${p#/proc/}"
	done
}

# kill_in_root DIR: SIGTERM, then SIGKILL, what still runs in DIR (a demo that left a vhostd or
# QEMU behind would keep the root busy).
kill_in_root() {
	local d=$1 pids i
	mapfile -t pids < <(pids_in_root "$d")
	((${#pids[@]})) || return 0
	log "processes still running in $d: ${pids[*]}: SIGTERM"
	kill -TERM "${pids[@]}" 2>/dev/null
	for ((i = 0; i < 50; i++)); do
		mapfile -t pids < <(pids_in_root "$d")
		((${#pids[@]})) || return 0
		sleep 0.1
	done
	log "still running after 5 s: ${pids[*]}: SIGKILL"
	kill -KILL "${pids[@]}" 2>/dev/null
	sleep 0.2
}

# mounts_below DIR: mount points at or below DIR in our mount namespace, deepest first.
mounts_below() {
	awk -v d="$1" '{ p = $5; gsub(/\\040/, " ", p); if (p == d || index(p, d "/") == 1) print p }' \
		/proc/self/mountinfo | sort -r
}

# safe_rm DIR: unmount anything below DIR, refuse to remove it if that fails, else remove it
# without crossing into any other file system.
safe_rm() {
	local d=$1 m left
	[[ -n "$d" && -d "$d" ]] || return 0
	kill_in_root "$d"
	mapfile -t left < <(mounts_below "$d")
	for m in "${left[@]}"; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
	mapfile -t left < <(mounts_below "$d")
	if ((${#left[@]})); then
		log "ERROR: still mounted below $d, NOT removing it: ${left[*]}"
		return 1
	fi
	rm -rf --one-file-system "$d"
}

# ---- inside the private mount namespace -----------------------------------------------------

# in_ns_debootstrap DIR MIRROR: debootstrap mounts /proc and /sys in its target and may leave
# them mounted when it fails; in this namespace they vanish with it.
in_ns_debootstrap() {
	local dir=$1 mirror=$2 rc m mounts
	debootstrap --variant="$VARIANT" "$SUITE" "$dir" "$mirror" >"$dir.log" 2>&1
	rc=$?
	mapfile -t mounts < <(mounts_below "$dir")
	for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m"; done
	[[ $rc -eq 0 ]] || tail -n 30 "$dir.log" >&2
	return $rc
}

NS_MOUNTS=()
ns_cleanup() {
	local rc=$? i
	trap - EXIT INT TERM
	kill_in_root "$NS_ROOT"
	for ((i = ${#NS_MOUNTS[@]} - 1; i >= 0; i--)); do
		umount "${NS_MOUNTS[$i]}" 2>/dev/null || umount -l "${NS_MOUNTS[$i]}" ||
			log "cannot unmount ${NS_MOUNTS[$i]}"
	done
	exit "$rc"
}

ns_mount() { # TARGET MOUNT-ARGS...
	local t=$1
	shift
	mount "$@" "$t" || fail "mount $* $t"
	NS_MOUNTS+=("$t")
}

# in_ns_chroot ROOT CMD: mount what the demo needs and run CMD (bash) as root in ROOT, in the
# checkout, with a clean environment. Returns CMD's exit status.
in_ns_chroot() {
	NS_ROOT=$1
	local cmd=$2
	trap ns_cleanup EXIT
	trap 'log "interrupted"; exit 130' INT
	trap 'log "terminated"; exit 143' TERM
	ns_mount "$NS_ROOT/proc" -t proc proc
	ns_mount "$NS_ROOT/sys" -t sysfs sysfs
	ns_mount "$NS_ROOT/dev" --bind /dev
	ns_mount "$NS_ROOT/dev/pts" --bind /dev/pts
	ns_mount "$NS_ROOT/dev/shm" -t tmpfs -o mode=1777,nosuid,nodev shm
	env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		TERM=dumb LANG=C.UTF-8 DEMO_FIO_RUNTIME="${DEMO_FIO_RUNTIME:-10}" \
		chroot "$NS_ROOT" /bin/bash -c "cd /src/vhostd && $cmd" </dev/null
}

# The two internal modes mount: only ever in a mount namespace of their own (unshare -m).
case "${1:-}" in
--ns-*) [[ -n "${FRESH_HOST_MNTNS:-}" && $(readlink /proc/self/ns/mnt) != "$FRESH_HOST_MNTNS" ]] ||
	fail "$1 must run in a private mount namespace (unshare --mount)" ;;
esac
case "${1:-}" in
--ns-debootstrap) shift; in_ns_debootstrap "$@"; exit ;;
--ns-chroot) shift; in_ns_chroot "$@"; exit ;;
esac

# ---- on the host ----------------------------------------------------------------------------

top=$(cd "$(dirname "$0")/../.." && pwd)
FRESH_HOST_MNTNS=$(readlink /proc/self/ns/mnt) && export FRESH_HOST_MNTNS
self="$top/tests/fresh/run.sh"
[[ $(id -u) -eq 0 ]] || skip "needs root (debootstrap, chroot, mounts)"
for p in debootstrap zstd git unshare chroot tar; do
	command -v "$p" >/dev/null || skip "$p not installed (scripts/install-deps.sh installs it)"
done
git -C "$top" rev-parse --git-dir >/dev/null 2>&1 || skip "$top is not a git checkout"
rev=$(git -C "$top" rev-parse --verify "${FRESH_REV:-HEAD}^{commit}") || fail "no commit ${FRESH_REV:-HEAD}"
[[ -n "$(git -C "$top" status --porcelain --untracked-files=no)" ]] &&
	log "note: uncommitted changes are not part of the test: it clones $rev"

# host_mirror: the first bookworm "deb" URI of the host's apt sources (one-line or deb822).
host_mirror() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -f "$f" ]] || continue
		# "deb [opt=val ...] URI SUITE COMPONENTS..."
		awk -v s="$SUITE" '{ sub(/\[[^]]*\]/, ""); if ($1 == "deb" && $3 == s) { print $2; exit } }' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -f "$f" ]] || continue
		awk -v s="$SUITE" 'BEGIN { RS = "" } {
			t = u = su = ""; en = "yes"; n = split($0, L, "\n")
			for (i = 1; i <= n; i++) {
				l = L[i]
				if (l ~ /^#/) continue
				if (l ~ /^Types:/) { sub(/^Types:[ \t]*/, "", l); t = l }
				else if (l ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", l); u = l }
				else if (l ~ /^Suites:/) { sub(/^Suites:[ \t]*/, "", l); su = l }
				else if (l ~ /^Enabled:/) { sub(/^Enabled:[ \t]*/, "", l); en = l }
			}
			if (en != "no" && (" " t " ") ~ / deb / && (" " su " ") ~ (" " s " ")) {
				split(u, a, " "); print a[1]; exit
			}
		}' "$f"
	done
}

cache=${FRESH_CACHE:-/var/cache/vhostd-fresh}
tarball="$cache/$SUITE-$VARIANT-$(date +%Y%m).tar.zst"
mkdir -p "$cache" || fail "cannot create $cache"
work=""
bs=""
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n "$bs" ]]; then
		safe_rm "$bs" || rc=1
		rm -f "$bs.log"
	fi
	if [[ -n "$work" ]]; then
		if [[ "${FRESH_KEEP:-0}" == 1 ]]; then
			kill_in_root "$work"
			[[ -z "$(mounts_below "$work")" ]] || log "ERROR: mounts left below $work"
			log "root kept in $work/root"
		else
			local t=$SECONDS
			safe_rm "$work" || rc=1
			log "temp root removed ($((SECONDS - t)) s)"
		fi
	fi
	exit "$rc"
}
# run_child CMD...: CMD in its own process group (setsid), waited for so that a signal to us is
# handled at once: on_signal passes it on to the whole group (the demo, QEMU, vhostd, apt...).
CHILD=""
run_child() {
	local rc
	setsid "$@" &
	CHILD=$!
	wait "$CHILD"
	rc=$?
	CHILD=""
	return $rc
}
on_signal() { # MESSAGE EXIT-CODE
	log "$1"
	if [[ -n "$CHILD" ]]; then
		kill -TERM -- -"$CHILD" 2>/dev/null
		wait "$CHILD"
	fi
	exit "$2"
}
trap cleanup EXIT
trap 'on_signal interrupted 130' INT
trap 'on_signal terminated 143' TERM
t0=$SECONDS

# The base: debootstrap's output, nothing else. One builder at a time (the lock); a month-old
# or missing tarball is rebuilt, older ones are removed.
exec 8>"$cache/.lock"
flock 8
if [[ ! -s "$tarball" ]]; then
	mirror=${FRESH_MIRROR:-$(host_mirror | head -n1)}
	mirror=${mirror:-http://deb.debian.org/debian}
	bs=$(mktemp -d "$cache/debootstrap.XXXXXX") || fail "mktemp"
	log "debootstrap --variant=$VARIANT $SUITE from $mirror (cached afterwards in $tarball)"
	run_child unshare --mount --propagation private "$self" --ns-debootstrap "$bs" "$mirror" ||
		fail "debootstrap failed (log above)"
	tar --numeric-owner --xattrs -C "$bs" -cf - . | zstd -q -f -T0 -o "$tarball.tmp" ||
		fail "cannot pack $tarball"
	mv "$tarball.tmp" "$tarball"
	safe_rm "$bs" || fail "cannot remove $bs"
	rm -f "$bs.log"
	bs=""
	find "$cache" -maxdepth 1 -name "$SUITE-$VARIANT-*.tar.zst" ! -path "$tarball" -delete
	log "base root built and cached in $((SECONDS - t0)) s ($(du -h "$tarball" | cut -f1))"
fi
flock -u 8

# Roots of runs that were killed (SIGKILL: no trap) are removed once nothing runs in them; the
# timeout bounds a run far below a day.
tmp=${FRESH_TMP:-/var/tmp}
while IFS= read -r d; do
	[[ -z "$(pids_in_root "$d/root")" ]] && log "removing the stale $d" && safe_rm "$d"
done < <(find "$tmp" -maxdepth 1 -name 'vhostd-fresh.??????' -type d -mtime +0 2>/dev/null)
work=$(mktemp -d "$tmp/vhostd-fresh.XXXXXX") || fail "mktemp"
root="$work/root"
mkdir "$root"
zstd -q -dc "$tarball" | tar --numeric-owner --xattrs -C "$root" -xpf - || fail "cannot unpack $tarball"

# The host's way to the mirror: apt sources, their keys, Acquire:: settings (proxies,
# validity checks), DNS. Packages come from the same mirror the host uses.
rm -f "$root/etc/apt/sources.list"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
	/etc/apt/trusted.gpg /etc/apt/trusted.gpg.d/*; do
	[[ -f "$f" ]] || continue
	mkdir -p "$root$(dirname "$f")"
	cp -L "$f" "$root$f"
done
for f in $(sed -n 's/.*[Ss]igned-[Bb]y[:=][ \t]*\([^] \t]*\).*/\1/p' /etc/apt/sources.list \
	/etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null | sort -u); do
	[[ "$f" == /* && -f "$f" && ! -e "$root$f" ]] || continue
	mkdir -p "$root$(dirname "$f")"
	cp -L "$f" "$root$f"
done
[[ -f /etc/apt/apt.conf ]] && cp -L /etc/apt/apt.conf "$root/etc/apt/apt.conf"
for f in /etc/apt/apt.conf.d/*; do
	[[ -f "$f" ]] && grep -q 'Acquire' "$f" && cp -L "$f" "$root/etc/apt/apt.conf.d/"
done
rm -f "$root/etc/resolv.conf"
cp -L /etc/resolv.conf "$root/etc/resolv.conf" || fail "cannot copy /etc/resolv.conf"

# A clean clone of the one commit, as CI has it: no build directories, nothing untracked.
src="$root/src/vhostd"
git init -q "$src" && git -C "$src" fetch -q "$top" "$rev" &&
	git -C "$src" checkout -q --detach FETCH_HEAD || fail "cannot clone $rev into the root"
log "fresh root ready in $((SECONDS - t0)) s: $root, vhostd $(git -C "$top" rev-parse --short "$rev")"

cmd=${FRESH_CMD:-scripts/demo.sh}
log "running $cmd in the fresh root (timeout ${FRESH_TIMEOUT:-2700} s)"
t1=$SECONDS
run_child timeout -k 30 "${FRESH_TIMEOUT:-2700}" unshare --mount --propagation private "$self" --ns-chroot \
	"$root" "$cmd"
rc=$?
[[ $rc -eq 124 ]] && log "$cmd did not finish within ${FRESH_TIMEOUT:-2700} s"
if [[ $rc -ne 0 ]]; then
	fail "$cmd exited with $rc in a fresh Debian $SUITE root ($((SECONDS - t1)) s)"
fi
log "PASS: $cmd in a fresh Debian $SUITE root took $((SECONDS - t1)) s ($((SECONDS - t0)) s so far)"
exit 0
