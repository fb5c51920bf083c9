#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# bench/qemu-vfu-compare.sh: the same guest, the same bdev, the same fio job, through vhostd's
# two front-ends: vhost-user-blk (virtio-blk in the guest) and vfio-user NVMe (the guest's own
# nvme driver). One QEMU 10.2 (tests/qemu/build-qemu-vfio-user.sh), TCG, 2 vCPUs, a 256 MiB RAM
# bdev with 512-byte blocks, fio 4k random reads at QD32 with libaio for RUNTIME seconds.
#
# Reported per front-end: the guest's IOPS (TCG-bound: what the guest's driver costs under
# emulation, not the target's speed), vhostd's CPU time per I/O (utime+stime over the fio run,
# reactors sleeping when idle as by default), and with -c the target's instructions per I/O
# under callgrind, counted like bench/callgrind.sh (the front-end's queue poller, the bdev
# channel poller and the deferred completion work; polls that found nothing are subtracted
# using an idle window measured while the guest waits before fio starts).
#
# usage: bench/qemu-vfu-compare.sh [-t RUNTIME] [-c] [-B BUILDDIR]
#   -t RUNTIME  fio seconds per front-end (default 15)
#   -c          run vhostd under callgrind and report instructions per I/O (slower)
#   -B DIR      build directory (default build-release)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
runtime=15
cg=0
builddir=$root/build-release
while getopts "t:cB:h" opt; do
	case $opt in
	t) runtime=$OPTARG ;;
	c) cg=1 ;;
	B) builddir=$OPTARG ;;
	*) sed -n '3,20p' "$0"; exit 2 ;;
	esac
done
export VHOSTD=$builddir/src/app/vhostd VHOSTCTL=$builddir/src/app/vhostctl
VQ_SMP=2
# shellcheck source=../tests/qemu/vfu-lib.sh
. "$root/tests/qemu/vfu-lib.sh"
vq_init vfu-compare
env=$("$root/tests/qemu/build-qemu-vfio-user.sh" --env) || vq_skip "no QEMU with vfio-user"
eval "$env"
if ((cg)); then
	wrap="$VQ_TMP/vhostd-cg"
	cat >"$wrap" <<EOF
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file=$VQ_TMP/cg.out --fair-sched=yes \\
	--toggle-collect=vq_poll --toggle-collect=vq_flush --toggle-collect=rctx_poll \\
	--toggle-collect=irq_flush --toggle-collect=channel_poll "$VHOSTD" "\$@"
EOF
	chmod +x "$wrap"
	VHOSTD=$wrap
fi
vq_vhostd_start
vq_rpc bdev_malloc_create -b Disk0 256 512 >/dev/null || vq_fail "bdev"

guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'EOF'
. /etc/vtest.sh
if [ "$VT_FRONT" = vfu ]; then
	vt_load_nvme || vt_fail "nvme driver"
	dev=/dev/nvme0n1
else
	dev=/dev/vda
fi
vt_wait_path $dev 60 || vt_fail "$dev did not appear"
echo "BENCH-IDLE"
sleep 4
echo "BENCH-GO"
fio --name=r --filename=$dev --direct=1 --ioengine=libaio --rw=randread --bs=4k --iodepth=32 \
	--time_based --runtime=$VT_RUNTIME --size=200M --group_reporting >/tmp/fio.out 2>&1 ||
	vt_fail "fio failed"
echo "BENCH-DONE"
cat /tmp/fio.out
echo "BENCH-IOS: $(sed -n 's/.*ios=\([0-9]*\)\/.*/\1/p' /tmp/fio.out | head -n1)"
EOF

# run FRONT: boot, follow the markers, print one result line.
run() {
	local front=$1 log="$VQ_TMP/$1.log" initrd="$VQ_TMP/$1.initrd" ios cpu0=0 cpu1=0 st n=0
	vq_make_initrd "$initrd" "$guest" VT_NEED_DISK=0 VT_FRONT="$front" VT_RUNTIME="$runtime"
	if [[ $front == vfu ]]; then
		vq_rpc call vfu_create_nvme_controller '{"ctrlr":"nvme0","cpumask":"0x1","num_io_queues":2}' \
			>/dev/null || vq_fail "vfu controller"
		vq_rpc call vfu_controller_add_ns '{"ctrlr":"nvme0","bdev_name":"Disk0"}' >/dev/null ||
			vq_fail "namespace"
		VF_SOCK=$VQ_SOCKDIR/nvme0
		vf_qemu_start "$log" "$initrd"
	else
		vq_rpc vhost_create_blk_controller --cpumask 0x1 vhost.0 Disk0 >/dev/null ||
			vq_fail "vhost controller"
		VQ_SOCK=$VQ_SOCKDIR/vhost.0
		VQ_QUEUES=2
		vq_qemu_argv "$initrd" "$log"
		VQ_ARGV[0]=$VQ_VFU_QEMU
		# shellcheck disable=SC2206
		VQ_ARGV+=($VQ_VFU_QEMU_L)
		: >"$log"
		timeout --foreground -k 5 $((VQ_GUEST_TIMEOUT + 30)) "${VQ_ARGV[@]}" </dev/null \
			>"${log%.log}.qemu.log" 2>&1 &
		VQ_QEMU_PID=$!
		VQ_QEMU_T0=$SECONDS
		vq_track "$VQ_QEMU_PID" qemu
		VQ_SOCK=""
	fi
	local phase=0
	while kill -0 "$VQ_QEMU_PID" 2>/dev/null; do
		if [[ $phase == 0 ]] && grep -aq '^BENCH-IDLE' "$log"; then
			phase=1
			if ((cg)); then
				sleep 1
				callgrind_control -z "$VQ_DAEMON_PID" >/dev/null 2>&1
				sleep 2
				callgrind_control -d "$front-idle" "$VQ_DAEMON_PID" >/dev/null 2>&1
			fi
		fi
		if [[ $phase == 1 ]] && grep -aq '^BENCH-GO' "$log"; then
			phase=2
			((cg)) && callgrind_control -z "$VQ_DAEMON_PID" >/dev/null 2>&1
			read -r st < "/proc/$VQ_DAEMON_PID/stat"
			set -- ${st#*) }
			cpu0=$((${12} + ${13}))
		fi
		if [[ $phase == 2 ]] && grep -aq '^BENCH-DONE' "$log"; then
			phase=3
			read -r st < "/proc/$VQ_DAEMON_PID/stat"
			set -- ${st#*) }
			cpu1=$((${12} + ${13}))
			((cg)) && callgrind_control -d "$front-run" "$VQ_DAEMON_PID" >/dev/null 2>&1
		fi
		sleep 0.2
	done
	vq_qemu_wait >/dev/null
	ios=$(grep -a '^BENCH-IOS:' "$log" | awk '{print $2}' | tr -d '\r')
	[[ -n $ios && $ios -gt 0 ]] || { tail -n 30 "$log" >&2; vq_fail "$front: no fio result"; }
	local hz
	hz=$(getconf CLK_TCK)
	echo "$front $ios $(((cpu1 - cpu0) * 1000000 / hz))"
	if [[ $front == vfu ]]; then
		vq_rpc call vfu_delete_controller '{"ctrlr":"nvme0"}' >/dev/null
	else
		vq_rpc vhost_delete_controller vhost.0 >/dev/null
	fi
	n=$((n + 1))
}

results=()
for f in vhost vfu; do
	results+=("$(run $f)") || exit 1
done
echo
printf '%-16s %10s %10s %16s\n' "front-end" "guest IOPS" "I/Os" "vhostd CPU/I/O"
for r in "${results[@]}"; do
	set -- $r
	printf '%-16s %10d %10d %13.1f us\n' "$([[ $1 == vfu ]] && echo vfio-user-nvme || echo vhost-user-blk)" \
		$(($2 / runtime)) "$2" "$(echo "$3 / $2" | bc -l)"
done
if ((cg)); then
	python3 - "$VQ_TMP" "${results[@]}" <<'PY'
import glob, re, sys
from collections import Counter
tmp = sys.argv[1]
ios = {r.split()[0]: int(r.split()[1]) for r in sys.argv[2:]}
FN = {"vhost": ("vq_poll", "channel_poll", "vq_flush"), "vfu": ("rctx_poll", "channel_poll", "irq_flush")}


def parse(path):
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


print()
# Dumps in order: vhost idle, vhost run, vfu idle, vfu run.
for i, front in enumerate(("vhost", "vfu")):
    poll, chan, flush = FN[front]
    idle, run = f"{tmp}/cg.out.{2 * i + 1}", f"{tmp}/cg.out.{2 * i + 2}"
    _, ci, ii = parse(idle)
    total, c, inc = parse(run)
    e_p = ii[poll] / max(ci[poll], 1)
    e_c = ii[chan] / max(ci[chan], 1)
    empty = (c[poll] - c[flush]) * e_p + (c[chan] - c[flush]) * e_c
    work = total - empty
    copies = sum(v for k, v in inc.items() if re.search(r"memcpy|memmove", k))
    print(f"{front}: {work / ios[front]:.0f} target instructions per I/O in the guest run, "
          f"of which {copies / ios[front]:.0f} in memcpy (the RAM disk's data copies)")
PY
fi
vq_pass
