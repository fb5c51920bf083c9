#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# bench/callgrind.sh: target instructions per I/O, a deterministic number to track from commit to
# commit (wall-clock benchmarks on a shared 2-core machine are not).
#
# vhostd runs under `valgrind --tool=callgrind` (--idle-us 0, null bdev, reactor on core 1);
# vhost-bench (native, core 0) does a fixed number of 4 KiB random reads at QD32, then vhostd is
# stopped and callgrind's totals are divided by the I/O count.
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
# left is deterministic: it changes only when the code does.
#
# With -f vfu the same is measured for the vfio-user NVMe front-end (vfu-bench as the initiator,
# polled CQs): the counted functions are the controller's queue poller (rctx_poll: doorbells, SQ
# entry fetch, NVMe parsing, PRP walk, bdev submit), the bdev channel poller (channel_poll:
# completions, CQ entries) and the deferred per-CQ interrupt decision (irq_flush), and the
# calibration window has the queues created and idle.
#
# usage: bench/callgrind.sh [-f vhost|vfu] [-n IOS] [-q DEPTH] [-B BUILDDIR] [-p] [-a] [-k]
#   -f FRONT    vhost (vhost-user-blk, default) or vfu (vfio-user NVMe)
#   -n IOS      I/Os to run (default 200000)
#   -q DEPTH    queue depth (default 32)
#   -B DIR      build directory (default build-bench; configured as release if missing)
#   -p          packed virtqueues (controller with --packed-ring, vhost-bench --packed)
#   -a          also print the call tree below the reactor (callgrind_annotate)
#   -k          keep the callgrind output files (path printed)
# If the data path's functions are renamed, update POLL_FN, CHAN_FN and FLUSH_FN below.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
ios=200000
depth=32
builddir=$root/build-bench
annotate=0
keep=0
front=vhost
packed=0

while getopts "f:n:q:B:pakh" opt; do
	case $opt in
	f) front=$OPTARG ;;
	n) ios=$OPTARG ;;
	q) depth=$OPTARG ;;
	B) builddir=$OPTARG ;;
	p) packed=1 ;;
	a) annotate=1 ;;
	k) keep=1 ;;
	h) sed -n '3,/^set -e/p' "$0" | sed 's/^# \{0,1\}//' | head -n -1; exit 0 ;;
	*) echo "usage: $0 [-f vhost|vfu] [-n IOS] [-q DEPTH] [-B BUILDDIR] [-p] [-a] [-k]" >&2; exit 2 ;;
	esac
done
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
	;;
*) echo "callgrind.sh: -f vhost or vfu" >&2; exit 2 ;;
esac
fns=("$POLL_FN" "$CHAN_FN" "$FLUSH_FN")
[[ $ios =~ ^[1-9][0-9]*$ && $depth =~ ^[1-9][0-9]*$ ]] || { echo "callgrind.sh: bad -n/-q" >&2; exit 2; }

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
	"${toggles[@]}" --fair-sched=yes \
	"$vhostd" -m 0x2 -S "$dir" -r "$dir/rpc.sock" -L warn --idle-us 0 \
	>"$dir/vhostd.log" 2>&1 &
pid=$!

for _ in $(seq 600); do
	[[ -S $dir/rpc.sock ]] && "$vhostctl" -s "$dir/rpc.sock" -t 5 rpc_get_methods >/dev/null 2>&1 && break
	kill -0 "$pid" 2>/dev/null || { cat "$dir/vhostd.log" >&2; exit 1; }
	sleep 0.1
done
"$vhostctl" -s "$dir/rpc.sock" -t 30 bdev_null_create Null0 1024 512 >/dev/null
ring_ctl=()
ring_bench=()
ring=split
if ((packed)); then
	[[ $front == vhost ]] || { echo "callgrind.sh: -p is for -f vhost" >&2; exit 2; }
	ring_ctl=(--packed-ring)
	ring_bench=(--packed)
	ring=packed
fi
if [[ $front == vhost ]]; then
	"$vhostctl" -s "$dir/rpc.sock" -t 30 vhost_create_blk_controller --cpumask 0x2 \
		"${ring_ctl[@]}" vhost.0 Null0 >/dev/null
else
	"$vhostctl" -s "$dir/rpc.sock" -t 30 call vfu_create_nvme_controller \
		'{"ctrlr":"nvme0","cpumask":"0x2","num_io_queues":1}' >/dev/null
	"$vhostctl" -s "$dir/rpc.sock" -t 30 call vfu_controller_add_ns \
		'{"ctrlr":"nvme0","bdev_name":"Null0"}' >/dev/null
fi

# 1. Calibration: a started device with no I/O, so every poll is an empty one.
if [[ $front == vhost ]]; then
	"$bench" --socket "$dir/vhost.0" --rw randread --number_ios 1 --runtime 1000 --timeout 120 \
		--cpumask 0x1 --idle 4 "${ring_bench[@]}" >/dev/null &
else
	"$bench" --socket "$dir/nvme0" --idle 4 --cpu 0 --iodepth "$depth" >/dev/null &
fi
bpid=$!
sleep 2.5
callgrind_control -z "$pid" >/dev/null 2>&1
sleep 1
callgrind_control -d calibrate "$pid" >/dev/null 2>&1
wait "$bpid" || { echo "callgrind.sh: calibration run failed" >&2; exit 1; }

# 2. The measured run, between a zero and a dump.
callgrind_control -z "$pid" >/dev/null 2>&1
if [[ $front == vhost ]]; then
	json=$("$bench" --socket "$dir/vhost.0" --rw randread --bs 4k --iodepth "$depth" \
		--number_ios "$ios" --runtime 1000 --timeout 120 --cpumask 0x1 --json "${ring_bench[@]}")
else
	json=$("$bench" --socket "$dir/nvme0" --rw randread --bs 4k --iodepth "$depth" \
		--number_ios "$ios" --cpu 0 --json)
fi
callgrind_control -d measure "$pid" >/dev/null 2>&1
kill -TERM "$pid"
wait "$pid" || true
pid=

rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
python3 - "$dir/callgrind.out.1" "$dir/callgrind.out.2" "$ios" "$depth" "$rev" "$json" \
	"$POLL_FN" "$CHAN_FN" "$FLUSH_FN" "$front" "$ring" <<'EOF'
import json, re, sys
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
            incl[callee] += int(line.split()[1])
            pending = False
            continue
        if line.startswith(("summary:", "totals:")):
            total = int(line.split()[1])
    return total, calls, incl


cal_path, run_path, ios, depth, rev, res, POLL, CHAN, FLUSH, FRONT, RING = sys.argv[1:12]
ios = int(ios)
res = json.loads(res)
if res["ios"] != ios or res["errors"]:
    sys.exit(f"callgrind.sh: the initiator did {res['ios']} I/Os ({res['errors']} errors), "
             f"wanted {ios}")
_, ccal, ical = parse(cal_path)
if ccal[FLUSH] or ccal[POLL] < 1000 or ccal[CHAN] < 1000:
    sys.exit(f"callgrind.sh: the calibration window saw I/O or too few polls "
             f"({FLUSH} {ccal[FLUSH]}, {POLL} {ccal[POLL]}, {CHAN} {ccal[CHAN]}); rerun")
e_vq = ical[POLL] / ccal[POLL]
e_ch = ical[CHAN] / ccal[CHAN]
total, c, incl = parse(run_path)
batches = c[FLUSH]
empty = (c[POLL] - batches) * e_vq + (c[CHAN] - batches) * e_ch
work = total - empty
# valgrind counts `rep stosb` once per byte: the null bdev's zero-fill of each read buffer is
# ~4100 of the total. Shown apart so a data-path change is visible next to it.
fill = sum(v for k, v in incl.items() if "memset" in k)
front = "vhost-user-blk" if FRONT == "vhost" else "vfio-user NVMe"
rings = f", {RING} rings" if FRONT == "vhost" else ""
print(f"vhostd {rev} ({front}): {work / ios:.1f} instructions per I/O "
      f"(4k randread QD{depth}{rings}, null bdev, {ios} I/Os in {batches} batches)")
print(f"  of which zero-filling read buffers (memset): {fill / ios:.1f}; "
      f"the rest: {(work - fill) / ios:.1f}")
print(f"  {total} Ir counted, minus {c[POLL] - batches} empty {POLL} x {e_vq:.1f} "
      f"and {c[CHAN] - batches} empty {CHAN} x {e_ch:.1f} = {work:.0f} Ir")
EOF
if ((annotate)); then
	echo "call tree (inclusive Ir, empty polls included):"
	callgrind_annotate --tree=calling --inclusive=yes "$dir/callgrind.out.2" 2>/dev/null |
		grep -E '^ *[0-9,]+ \(' | grep -v 'clone\|start_thread\|PROGRAM' | sed -n '1,30p'
fi
((keep)) && echo "callgrind output: $dir/callgrind.out.2 (calibration: .1)"
exit 0
