#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# bench/callgrind.sh: target instructions per I/O, a deterministic number to track from commit to
# commit (wall-clock benchmarks on a shared 2-core machine are not).
#
# vhostd runs under `valgrind --tool=callgrind` (--idle-us 0, reactor on core 1); vhost-bench
# (native, core 0) does a fixed number of 4 KiB I/Os per run (by default random reads at QD32 on
# a null bdev, with its own lean ring pattern), vhostd dumps its counters after each run, and
# the totals are divided by the I/O count. Several runs (ring patterns, reads and writes, queue
# depths) share one valgrind session and one calibration.
#
# What is counted: only the reactor's per-I/O work. Collection is toggled on inside the
# virtqueue poller (vq_poll: avail fetch, descriptor walk, virtio-blk parsing, bdev submit), the
# bdev channel poller (channel_poll: completions, used-ring entries) and the deferred used-ring
# publish (vq_flush: used->idx store, call-eventfd decision); the reactor loop around them, the
# control thread and the set-up are not counted.
#
# With --idle-us 0 the reactor also polls empty rings between batches, and how often depends on
# timing (the initiator shares core 0 with whatever else runs). Those empty polls are subtracted
# exactly: a calibration window (device started, no I/O) gives the instructions of one empty
# vq_poll and one empty channel_poll (a fixed code path), and every vq_poll / channel_poll call
# of the measured run that did not end in a used-ring publish (vq_flush) is an empty one. What is
# left is deterministic for a given batching: it changes only when the code does. Batching is
# not: under valgrind the target is ~50x slower than natively, so at QD32 it finds full batches
# (32 requests per poll), while natively a fast target finds 1-2. QD1 runs (-m) measure the
# per-batch costs (poll, publish, notification decision) on every I/O.
#
# With -f vfu the same is measured for the vfio-user NVMe front-end (vfu-bench as the initiator,
# polled CQs): the counted functions are the controller's queue poller (rctx_poll: doorbells, SQ
# entry fetch, NVMe parsing, PRP walk, bdev submit), the bdev channel poller (channel_poll:
# completions, CQ entries) and the deferred per-CQ interrupt decision (irq_flush), and the
# calibration window has the queues created and idle.
#
# usage: bench/callgrind.sh [-f vhost|vfu] [-n IOS] [-q DEPTH] [-w RW] [-x ARGS] [-b BDEV] [-m]
#                           [-p] [-B BUILDDIR] [-a] [-k]
#   -f FRONT    vhost (vhost-user-blk, default) or vfu (vfio-user NVMe; -x, -m and -p do not
#               apply)
#   -n IOS      I/Os per run (default 200000; 50000 at QD1 with -m)
#   -q DEPTH    queue depth (default 32)
#   -w RW       randread (default) or randwrite
#   -x ARGS     more vhost-bench arguments for the run, e.g. "--pattern spdk" or "--inflight"
#               (an inflight region, as QEMU gives)
#   -b BDEV     null (default: reads untouched), null-zeroes (read_zeroes: memset per read) or
#               ram (a 64 MiB RAM disk, written in full first)
#   -m          matrix: patterns lean, spdk, linux, dpdk x randread, randwrite at QD DEPTH and
#               at QD1 (16 runs, ~3 min); -w and -x are ignored
#   -p          packed virtqueues (controller with --packed-ring, vhost-bench --packed; the lean
#               pattern only, so not with -m; -x only with options --packed takes, e.g.
#               "--inflight")
#   -B DIR      build directory (default build-bench; configured as release if missing)
#   -a          also print the call tree below the reactor (callgrind_annotate; last run)
#   -k          keep the callgrind output files (path printed)
# $CALLGRIND_ARGS adds valgrind options (e.g. --dump-instr=yes for callgrind_annotate --auto=yes
# on a build with -g: meson setup build-cg --buildtype=release -Dc_args=-g; -B build-cg).
# If the data path's functions are renamed, update POLL_FN, CHAN_FN and FLUSH_FN below.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
ios=
depth=32
rw=randread
extra=
bdev=null
matrix=0
front=vhost
packed=0
builddir=$root/build-bench
annotate=0
keep=0
usage="usage: $0 [-f vhost|vfu] [-n IOS] [-q DEPTH] [-w RW] [-x ARGS] [-b null|null-zeroes|ram] [-m] [-p] [-B BUILDDIR] [-a] [-k]"

while getopts "f:n:q:w:x:b:mpB:akh" opt; do
	case $opt in
	f) front=$OPTARG ;;
	p) packed=1 ;;
	n) ios=$OPTARG ;;
	q) depth=$OPTARG ;;
	w) rw=$OPTARG ;;
	x) extra=$OPTARG ;;
	b) bdev=$OPTARG ;;
	m) matrix=1 ;;
	B) builddir=$OPTARG ;;
	a) annotate=1 ;;
	k) keep=1 ;;
	h) sed -n '3,/^set -e/p' "$0" | sed 's/^# \{0,1\}//' | head -n -1; exit 0 ;;
	*) echo "$usage" >&2; exit 2 ;;
	esac
done
[[ -z $ios || $ios =~ ^[1-9][0-9]*$ ]] && [[ $depth =~ ^[1-9][0-9]*$ ]] ||
	{ echo "callgrind.sh: bad -n/-q" >&2; exit 2; }
[[ $rw == randread || $rw == randwrite ]] || { echo "callgrind.sh: bad -w '$rw'" >&2; exit 2; }
[[ $bdev == null || $bdev == null-zeroes || $bdev == ram ]] ||
	{ echo "callgrind.sh: bad -b '$bdev'" >&2; exit 2; }
case $front in
vhost)
	# The reactor's virtqueue poller, bdev channel poller and deferred used-ring publish.
	POLL_FN=vq_poll
	CHAN_FN=channel_poll
	FLUSH_FN=vq_flush
	;;
vfu)
	# The NVMe queue poller, bdev channel poller and deferred per-CQ interrupt decision.
	POLL_FN=rctx_poll
	CHAN_FN=channel_poll
	FLUSH_FN=irq_flush
	((matrix == 0 && packed == 0)) && [[ -z $extra ]] ||
		{ echo "callgrind.sh: -m, -p and -x are for -f vhost" >&2; exit 2; }
	;;
*) echo "callgrind.sh: -f vhost or vfu" >&2; exit 2 ;;
esac
fns=("$POLL_FN" "$CHAN_FN" "$FLUSH_FN")
ring_ctl=()
ring_bench=
if ((packed)); then
	((matrix == 0)) ||
		{ echo "callgrind.sh: -p runs the lean pattern only (not with -m)" >&2; exit 2; }
	ring_ctl=(--packed-ring)
	ring_bench=--packed
fi

# Runs: "label|rw|depth|ios|vhost-bench args".
runs=()
if ((matrix)); then
	for qd in "$depth" 1; do
		n=${ios:-$((qd == 1 ? 50000 : 200000))}
		for p in lean spdk linux dpdk; do
			for w in randread randwrite; do
				runs+=("$p|$w|$qd|$n|--pattern $p")
			done
		done
	done
else
	label=lean
	[[ -n $extra ]] && label=$extra
	((packed)) && label="lean, packed rings${extra:+ $extra}"
	[[ $front == vfu ]] && label="vfio-user NVMe"
	runs+=("$label|$rw|$depth|${ios:-200000}|$extra")
fi

command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind not installed (apt-get install valgrind)" >&2; exit 1; }
if [[ ! -f $builddir/build.ninja ]]; then
	meson setup "$builddir" "$root" --buildtype=release >/dev/null
fi
ninja -C "$builddir" >/dev/null
vhostd=$builddir/src/app/vhostd
vhostctl=$builddir/src/app/vhostctl
bench=$builddir/bench/vhost-bench
[[ $front == vfu ]] && bench=$builddir/bench/vfu-bench
for f in "$vhostd" "$vhostctl" "$bench"; do
	[[ -x $f ]] || { echo "callgrind.sh: $f not built" >&2; exit 1; }
done
# The toggles name static functions: make sure they survived inlining.
syms=$(nm "$vhostd")
for fn in "${fns[@]}"; do
	grep -qE " [tT] $fn\$" <<<"$syms" ||
		{ echo "callgrind.sh: no symbol '$fn' in $vhostd (inlined or renamed? see POLL_FN)" >&2; exit 1; }
done

dir=$(mktemp -d /tmp/vhb-cg.XXXXXX)
pid=
cleanup() {
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	((keep)) || rm -rf "$dir"
}
trap cleanup EXIT

toggles=()
for fn in "${fns[@]}"; do
	toggles+=("--toggle-collect=$fn")
done
taskset -c 1 valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
	"${toggles[@]}" --fair-sched=yes ${CALLGRIND_ARGS:-} \
	"$vhostd" -m 0x2 -S "$dir" -r "$dir/rpc.sock" -L warn --idle-us 0 \
	>"$dir/vhostd.log" 2>&1 &
pid=$!

for _ in $(seq 600); do
	[[ -S $dir/rpc.sock ]] && "$vhostctl" -s "$dir/rpc.sock" -t 5 rpc_get_methods >/dev/null 2>&1 && break
	kill -0 "$pid" 2>/dev/null || { cat "$dir/vhostd.log" >&2; exit 1; }
	sleep 0.1
done
case $bdev in
null) "$vhostctl" -s "$dir/rpc.sock" -t 30 bdev_null_create Null0 1024 512 >/dev/null ;;
null-zeroes) "$vhostctl" -s "$dir/rpc.sock" -t 30 bdev_null_create --read-zeroes Null0 1024 512 >/dev/null ;;
ram) "$vhostctl" -s "$dir/rpc.sock" -t 30 bdev_malloc_create -b Null0 64 512 >/dev/null ;;
esac
if [[ $front == vfu ]]; then
	"$vhostctl" -s "$dir/rpc.sock" -t 30 call vfu_create_nvme_controller \
		'{"ctrlr":"nvme0","cpumask":"0x2","num_io_queues":1}' >/dev/null
	"$vhostctl" -s "$dir/rpc.sock" -t 30 call vfu_controller_add_ns \
		'{"ctrlr":"nvme0","bdev_name":"Null0"}' >/dev/null
else
	"$vhostctl" -s "$dir/rpc.sock" -t 30 vhost_create_blk_controller --cpumask 0x2 \
		"${ring_ctl[@]}" vhost.0 Null0 >/dev/null
fi
if [[ $bdev == ram && $front == vhost ]]; then
	# Fault the memfd in first: the runs measure the data path, not first touches.
	"$bench" --socket "$dir/vhost.0" --rw write --bs 1m --iodepth 4 --number_ios 64 \
		--runtime 1000 --timeout 300 --cpumask 0x1 >/dev/null
fi

# 1. Calibration: a started device with no I/O, so every poll is an empty one.
if [[ $front == vfu ]]; then
	"$bench" --socket "$dir/nvme0" --idle 4 --cpu 0 --iodepth "$depth" >/dev/null &
else
	# shellcheck disable=SC2086 # ring_bench is empty or one option
	"$bench" --socket "$dir/vhost.0" --rw randread --number_ios 1 --runtime 1000 --timeout 120 \
		--cpumask 0x1 --idle 4 $ring_bench >/dev/null &
fi
bpid=$!
sleep 2.5
callgrind_control -z "$pid" >/dev/null 2>&1
sleep 1
callgrind_control -d calibrate "$pid" >/dev/null 2>&1
wait "$bpid" || { echo "callgrind.sh: calibration run failed" >&2; exit 1; }

# 2. The measured runs, each between a zero and a dump (callgrind.out.2, .3, ...).
: >"$dir/runs"
for r in "${runs[@]}"; do
	IFS='|' read -r label w qd n args <<<"$r"
	callgrind_control -z "$pid" >/dev/null 2>&1
	if [[ $front == vfu ]]; then
		json=$("$bench" --socket "$dir/nvme0" --rw "$w" --bs 4k --iodepth "$qd" \
			--number_ios "$n" --cpu 0 --json)
	else
		# shellcheck disable=SC2086 # args is a list of options, ring_bench empty or one
		json=$("$bench" --socket "$dir/vhost.0" --rw "$w" --bs 4k --iodepth "$qd" \
			--number_ios "$n" --runtime 1000 --timeout 300 --cpumask 0x1 --json $args \
			$ring_bench)
	fi
	callgrind_control -d measure "$pid" >/dev/null 2>&1
	printf '%s\t%s\t%s\t%s\t%s\n' "$label" "$w" "$qd" "$n" "$json" >>"$dir/runs"
done
kill -TERM "$pid"
wait "$pid" || true
pid=

rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
python3 - "$dir" "$rev" "$bdev" "$POLL_FN" "$CHAN_FN" "$FLUSH_FN" <<'EOF'
import json, os, re, sys
from collections import Counter


def parse(path):
    """Totals, and calls / inclusive Ir per callee, from a callgrind dump."""
    names, calls, incl = {}, Counter(), Counter()
    total, callee, pending = None, None, False
    for line in open(path):
        m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?", line)
        if m:
            if m.group(3):
                names[m.group(2)] = m.group(3).strip()
            callee = names.get(m.group(2)) if m.group(1) == "cfn" else None
            continue
        if line.startswith("calls=") and callee:
            calls[callee] += int(line[6:].split()[0])
            pending = True
            continue
        if pending:
            incl[callee] += int(line.split()[-1])
            pending = False
            continue
        if line.startswith(("summary:", "totals:")):
            total = int(line.split()[1])
    return total, calls, incl


d, rev, bdev, POLL, CHAN, FLUSH = sys.argv[1:7]
_, ccal, ical = parse(os.path.join(d, "callgrind.out.1"))
if ccal[FLUSH] or ccal[POLL] < 1000 or ccal[CHAN] < 1000:
    sys.exit("callgrind.sh: the calibration window saw I/O or too few polls; rerun")
e_vq = ical[POLL] / ccal[POLL]
e_ch = ical[CHAN] / ccal[CHAN]
runs = [line.rstrip("\n").split("\t", 4) for line in open(os.path.join(d, "runs"))]
print(f"vhostd {rev}: target instructions per 4 KiB I/O ({bdev} bdev; empty polls subtracted: "
      f"vq_poll {e_vq:.1f}, channel_poll {e_ch:.1f} each)")
print(f"  {'pattern':24s} {'rw':9s} {'QD':>3s} {'I/Os':>7s} {'batches':>7s} "
      f"{'per I/O':>8s} {'memset/cpy':>10s} {'the rest':>8s}")
for i, (label, rw, qd, ios, res) in enumerate(runs):
    ios = int(ios)
    res = json.loads(res)
    if res["ios"] != ios or res["errors"]:
        sys.exit(f"callgrind.sh: vhost-bench did {res['ios']} I/Os ({res['errors']} errors), "
                 f"wanted {ios}")
    total, c, incl = parse(os.path.join(d, f"callgrind.out.{i + 2}"))
    batches = c[FLUSH]
    empty = (c[POLL] - batches) * e_vq + (c[CHAN] - batches) * e_ch
    work = total - empty
    # valgrind counts `rep stosb`/`rep movsb` once per byte: a null read_zeroes fill or a RAM
    # copy is ~4100 per 4 KiB. Shown apart so a data-path change is visible next to it.
    bulk = sum(v for k, v in incl.items() if "memset" in k or "memcpy" in k or "memmove" in k)
    print(f"  {label:24s} {rw:9s} {qd:>3s} {ios:7d} {batches:7d} {work / ios:8.1f} "
          f"{bulk / ios:10.1f} {(work - bulk) / ios:8.1f}")
EOF
if ((annotate)); then
	last=$((${#runs[@]} + 1))
	echo "call tree of the last run (inclusive Ir, empty polls included):"
	callgrind_annotate --tree=calling --inclusive=yes "$dir/callgrind.out.$last" 2>/dev/null |
		grep -E '^ *[0-9,]+ \(' | grep -v 'clone\|start_thread\|PROGRAM' | sed -n '1,30p'
fi
((keep)) && echo "callgrind output: $dir/callgrind.out.N (1: calibration; then one per run)"
exit 0
