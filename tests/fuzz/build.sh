#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# Build the libFuzzer targets with clang 14 (the main build uses gcc, so this is a standalone
# script rather than a meson option). Every target is built with
# -fsanitize=fuzzer,address,undefined and UBSan made fatal.
#
#   tests/fuzz/build.sh [OUTDIR]        (default: build-fuzz at the top of the tree)
#
# Environment: CC (default clang-14), NICE (default "nice -n 10"), JOBS (default 2),
# EXTRA_CFLAGS (e.g. -fprofile-instr-generate -fcoverage-mapping for a coverage report).
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
out=$(realpath -m "${1:-$top/build-fuzz}")
# Source paths below are relative to the top of the tree, whatever the caller's directory.
cd "$top"
CC=${CC:-clang-14}
NICE=${NICE:-nice -n 10}
JOBS=${JOBS:-2}
EXTRA_CFLAGS=${EXTRA_CFLAGS:-}

command -v "$CC" >/dev/null || { echo "build.sh: $CC not found" >&2; exit 77; }
mkdir -p "$out/obj"
printf '#define VH_HAVE_SYSTEMD 0\n' > "$out/vh_config.h"
printf '#define VH_VERSION "fuzz"\n' > "$out/vh_fuzz_version.h"

SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
CFLAGS="-std=gnu11 -g -O1 -fno-omit-frame-pointer -D_GNU_SOURCE -include $out/vh_fuzz_version.h \
 -DVH_SANITIZE=1 -DVH_FUZZ=1 -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
 -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla -Wformat=2 -Werror \
 -fno-strict-aliasing -I$out -I$top -I$top/src $(pkg-config --cflags jansson) $EXTRA_CFLAGS"
LIBS="$(pkg-config --libs jansson) -lpthread"

# The RPC sources, exactly as src/rpc/meson.build lists them.
rpc_src=$(sed -n "s/^vh_rpc_sources = files(\(.*\))/\1/p" "$top/src/rpc/meson.build" |
	tr -d "', " | tr ',' ' ' | sed 's/\.c/.c /g')
rpc=""
for f in $rpc_src; do rpc="$rpc src/rpc/$f"; done

core="src/core/msg.c src/core/evloop.c src/core/reactor.c src/core/util.c src/core/handover.c \
 src/core/updesc.c \
 src/core/sigbus.c src/core/peerfd.c tests/fuzz/fuzz_log.c"
bdev="src/bdev/bdev.c src/bdev/iostat.c src/bdev/qos.c src/bdev/null.c src/bdev/ram.c"
vhost="src/vhost/socket.c src/vhost/msg.c src/vhost/mem.c src/vhost/vring.c src/vhost/blk.c \
 src/vhost/session.c src/vhost/inflight.c src/vhost/stats.c src/vhost/dirtylog.c src/vhost/upgrade.c \
 src/vhost/scsi.c src/vhost/scsi_cmd.c src/vhost/vring_packed.c"
# The vfio-user NVMe controller without its registry and sockets (src/vfu/meson.build's
# vh_vfu_ctrlr_sources), on the deterministic doubles of tests/unit/vfu/nvme_stubs.c.
vfu="src/vfu/session.c src/vfu/msg.c src/vfu/dma.c src/vfu/nvme_pci.c src/vfu/nvme_ctrlr.c \
 src/vfu/nvme_admin.c src/vfu/nvme_io.c src/vfu/nvme_prp.c tests/unit/vfu/nvme_stubs.c"

# Compile each source once (fuzzer-no-link: coverage instrumentation without libFuzzer's main).
all=$(printf "%s\n" $core $bdev $vhost $vfu $rpc tests/unit/rpc/stubs.c \
	tests/unit/rpc/stubs_file.c tests/unit/rpc/stubs_iostat.c tests/unit/rpc/stubs_vfu.c \
	tests/fuzz/fuzz_*.c | sort -u)
echo "$all" | $NICE xargs -P "$JOBS" -I{} sh -c '
	src="$1"; obj="$2/obj/$(echo "$1" | tr / _).o"
	if [ ! -f "$obj" ] || [ "$3/$src" -nt "$obj" ] || [ -n "$(find "$3/src" "$3/tests/fuzz" \
		-name "*.h" -newer "$obj" 2>/dev/null | head -1)" ]; then
		echo "  CC $src"
		'"$CC $CFLAGS $SAN"' -fsanitize=fuzzer-no-link -c "$3/$src" -o "$obj"
	fi' _ {} "$out" "$top"

# fuzz_vring observes the request life cycle exactly: blk.c's calls to vh_vq_push_used() and
# vh_vq_drop() go through hooks in fuzz_vring.c (which also wraps the device's handle()).
variant() {
	obj="$out/obj/$(echo "$1" | tr / _).hooked.o"; src=$1; shift
	if [ ! -f "$obj" ] || [ "$top/$src" -nt "$obj" ] || [ -n "$(find "$top/src" \
		"$top/tests/fuzz" -name "*.h" -newer "$obj" 2>/dev/null | head -1)" ]; then
		echo "  CC $src (hooked)"
		$NICE $CC $CFLAGS $SAN -fsanitize=fuzzer-no-link "$@" -c "$top/$src" -o "$obj"
	fi
}
variant src/vhost/blk.c -Dvh_vq_push_used=fuzz_hook_push_used -Dvh_vq_drop=fuzz_hook_drop
# fuzz_scsi: the same for scsi.c, whose event queue also takes buffers with vh_vq_fetch_one().
variant src/vhost/scsi.c -Dvh_vq_push_used=fuzz_hook_push_used -Dvh_vq_drop=fuzz_hook_drop \
	-Dvh_vq_fetch_one=fuzz_hook_fetch_one

o() { for f in "$@"; do printf '%s/obj/%s.o ' "$out" "$(echo "$f" | tr / _)"; done; }
link() {
	name=$1; shift
	echo "  LD $name"
	$NICE $CC $SAN -fsanitize=fuzzer -o "$out/$name" $(o "$@") $HOOKED $LIBS
	HOOKED=
}
HOOKED=
HOOKED="$out/obj/src_vhost_blk.c.hooked.o $out/obj/src_vhost_vring.c.o"
link fuzz_vring tests/fuzz/fuzz_vring.c src/vhost/mem.c src/vhost/inflight.c src/vhost/dirtylog.c \
	src/vhost/vring_packed.c \
	src/core/util.c tests/fuzz/fuzz_handover.c \
	src/core/sigbus.c src/core/peerfd.c tests/fuzz/fuzz_log.c
HOOKED="$out/obj/src_vhost_scsi.c.hooked.o $out/obj/src_vhost_vring.c.o"
link fuzz_scsi tests/fuzz/fuzz_scsi.c src/vhost/scsi_cmd.c src/vhost/mem.c src/vhost/inflight.c \
	src/vhost/dirtylog.c src/vhost/vring_packed.c \
	src/core/util.c src/core/sigbus.c src/core/peerfd.c tests/fuzz/fuzz_log.c
HOOKED="$out/obj/src_vhost_blk.c.hooked.o $out/obj/src_vhost_vring.c.o"
link fuzz_vring_packed tests/fuzz/fuzz_vring_packed.c src/vhost/mem.c src/vhost/inflight.c \
	src/vhost/dirtylog.c src/vhost/vring_packed.c src/core/util.c src/core/sigbus.c \
	tests/fuzz/fuzz_handover.c src/core/peerfd.c tests/fuzz/fuzz_log.c
link fuzz_inflight tests/fuzz/fuzz_inflight.c src/vhost/inflight.c src/core/util.c \
	tests/fuzz/fuzz_log.c
link fuzz_vhost_msg tests/fuzz/fuzz_vhost_msg.c $core $bdev $vhost
link fuzz_rpc tests/fuzz/fuzz_rpc.c tests/fuzz/fuzz_rpc_weak.c $rpc tests/unit/rpc/stubs.c \
	tests/unit/rpc/stubs_file.c tests/unit/rpc/stubs_iostat.c tests/unit/rpc/stubs_vfu.c \
	$core
link fuzz_config tests/fuzz/fuzz_config.c tests/fuzz/fuzz_rpc_weak.c $rpc tests/unit/rpc/stubs.c \
	tests/unit/rpc/stubs_file.c tests/unit/rpc/stubs_iostat.c tests/unit/rpc/stubs_vfu.c \
	$core
link fuzz_vfu_msg tests/fuzz/fuzz_vfu_msg.c $vfu src/core/util.c src/core/sigbus.c \
	src/core/peerfd.c tests/fuzz/fuzz_log.c
echo "fuzz targets in $out"
