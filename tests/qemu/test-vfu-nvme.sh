#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# The guest's own nvme driver on vhostd's vfio-user NVMe controller (QEMU 10.2 vfio-user-pci):
# `nvme list` and `nvme id-ctrl` show our controller; two namespaces (512 B and 4 KiB blocks)
# appear as nvme0n1 and nvme0n2; fio randrw with crc32c verify runs one job per I/O queue,
# each pinned to its vCPU, and every queue takes interrupts; discard and write zeroes read back
# as zeroes without touching the data around them; the second namespace keeps its data while
# the first is hammered. Passes when all of that holds and the guest logged no I/O errors.
# Env: VQ_FIO_RUNTIME (s, default 20).
. "$(dirname "$0")/vfu-lib.sh"
VQ_SMP=${VQ_SMP:-2}
vf_init vfu-nvme
vf_add_ctrl nvme0 4
vf_add_ns nvme0 96 512
vf_add_ns nvme0 32 4096

guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'EOF'
. /etc/vtest.sh
vt_check "cannot load the nvme driver" vt_load_nvme
vt_wait_path /dev/nvme0n1 60 || { dmesg | tail -n 30; vt_fail "/dev/nvme0n1 did not appear"; }
vt_wait_path /dev/nvme0n2 20 || vt_fail "/dev/nvme0n2 did not appear"
nvme list >/tmp/list 2>&1
cat /tmp/list
grep -q "vhostd vfio-user NVMe" /tmp/list || vt_fail "nvme list does not show the vhostd controller"
nvme id-ctrl /dev/nvme0 >/tmp/idc 2>&1 || vt_fail "nvme id-ctrl failed"
for f in mn sn subnqn mdts oncs sgls nn; do
	echo "VFU-IDCTRL: $(grep -m1 "^$f " /tmp/idc)"
done
nvme id-ns /dev/nvme0n2 >/tmp/idns 2>&1 || vt_fail "nvme id-ns failed"
grep -q "lbads:12" /tmp/idns || vt_fail "namespace 2 is not a 4 KiB-block namespace"
nq=$(ls -d /sys/block/nvme0n1/mq/* | wc -l)
echo "VFU-QUEUES: $nq"
[ "$nq" -ge 2 ] || vt_fail "only $nq I/O queue(s)"

# The second namespace gets a pattern first; it must survive everything done to the first.
dd if=/dev/urandom of=/tmp/pat2 bs=1M count=8 2>/dev/null
dd if=/tmp/pat2 of=/dev/nvme0n2 bs=1M oflag=direct 2>/dev/null || vt_fail "write to nvme0n2"
sum2=$(sha256sum </tmp/pat2 | cut -d' ' -f1)

# fio: one job per queue, pinned to its vCPU (blk-mq maps CPU i to queue i), own slice.
ncpu=$(nproc)
slice=$(( 64 / nq ))
cat >/tmp/job.fio <<JOB
[global]
filename=/dev/nvme0n1
direct=1
ioengine=libaio
iodepth=16
rw=randrw
bsrange=4k-128k
verify=crc32c
verify_backlog=1024
verify_fatal=1
time_based=1
runtime=$VT_RUNTIME
size=${slice}M
group_reporting=1
JOB
i=0
while [ $i -lt "$nq" ]; do
	printf '[q%d]\noffset=%dM\ncpus_allowed=%d\n' $i $((i * slice)) $((i % ncpu)) >>/tmp/job.fio
	i=$((i + 1))
done
fio /tmp/job.fio >/tmp/fio.out 2>&1
rc=$?
cat /tmp/fio.out
[ $rc -eq 0 ] || vt_fail "fio exited with $rc: $(grep -m1 -iE 'verify|error|err=' /tmp/fio.out)"
grep -q 'err= 0' /tmp/fio.out || vt_fail "fio reported an error"
# Interrupts per queue: nvme0q1.. each got some.
grep nvme0q /proc/interrupts
q=1
while [ $q -le "$nq" ]; do
	n=$(grep -E " nvme0q$q\$" /proc/interrupts | awk '{s = 0; for (i = 2; i <= NF - 3; i++) s += $i; print s}')
	vt_log "queue $q: ${n:-no} interrupts"
	[ "${n:-0}" -gt 0 ] || vt_fail "queue $q took no interrupt"
	q=$((q + 1))
done

# Discard and write zeroes (Dataset Management / Write Zeroes) in the middle of data.
MiB=1048576
q=/sys/block/nvme0n1/queue
vt_log "discard_max_bytes=$(cat $q/discard_max_bytes) write_zeroes_max_bytes=$(cat $q/write_zeroes_max_bytes)"
dd if=/dev/urandom of=/tmp/pat bs=1M count=24 2>/dev/null
dd if=/tmp/pat of=/dev/nvme0n1 bs=1M seek=64 oflag=direct 2>/dev/null || vt_fail "pattern write"
patsum() { dd if=/tmp/pat bs=1M skip=$1 count=$2 2>/dev/null | sha256sum | cut -d' ' -f1; }
blkdiscard -o $(((64 + 4) * MiB)) -l $((4 * MiB)) /dev/nvme0n1 || vt_fail "blkdiscard failed"
blkdiscard -z -o $(((64 + 12) * MiB)) -l $((8 * MiB)) /dev/nvme0n1 || vt_fail "blkdiscard -z failed"
vt_is_zero /dev/nvme0n1 68 4 || vt_fail "the discarded range does not read back as zeroes"
vt_is_zero /dev/nvme0n1 76 8 || vt_fail "the write-zeroes range does not read back as zeroes"
for r in "0 4" "8 4" "20 4"; do
	set -- $r
	[ "$(vt_sum /dev/nvme0n1 $((64 + $1)) $2)" = "$(patsum $1 $2)" ] ||
		vt_fail "data at +$1 MiB changed by a discard/write-zeroes elsewhere"
done
[ "$(vt_sum /dev/nvme0n2 0 8)" = "$sum2" ] || vt_fail "namespace 2 changed"
nvme smart-log /dev/nvme0 >/dev/null 2>&1 || vt_fail "nvme smart-log failed"
vt_no_io_errors
EOF
vf_boot nvme "$guest" VT_RUNTIME="${VQ_FIO_RUNTIME:-20}" || vq_fail "guest NVMe checks failed"
vq_guest_output nvme VFU-IDCTRL | sed 's/^/  id-ctrl: /' >&2
vq_guest_output nvme VFU-QUEUES | sed 's/^/  I\/O queues: /' >&2
grep -a -E '^ *(read|write):|READ:|WRITE:' "$VQ_TMP/nvme.log" | sed 's/^/  fio: /' >&2
vq_backend_alive || vq_fail "vhostd died"
vq_backend_log_errors
vq_pass
