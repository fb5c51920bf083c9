#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# fio randrw with verify=crc32c, iodepth 32, one job per virtqueue, each pinned to its vCPU, so
# that every queue (num-queues=2, -smp 2) carries I/O.  Passes when fio exits 0, each queue dispatched
# requests, and the guest kernel logged no I/O errors.
# Env: VQ_FIO_RUNTIME (s, default 25).
. "$(dirname "$0")/lib.sh"
vq_init fio-verify
vq_backend_start
vq_backend_add_disk vhost.0 64 512

guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'EOF'
. /etc/vtest.sh
nq=$(ls -d /sys/block/vda/mq/* | wc -l)
[ "$nq" = "$VT_QUEUES" ] || vt_fail "guest sees $nq queues, expected $VT_QUEUES"
# One job per queue, each pinned to one vCPU (blk-mq maps CPU i to queue i) and owning its own
# slice of the disk, so that verification never sees another job's writes.
ncpu=$(nproc)
slice=$(( $(cat /sys/block/vda/size) / 2048 / nq ))
cat >/tmp/job.fio <<JOB
[global]
filename=/dev/vda
direct=1
ioengine=libaio
iodepth=32
rw=randrw
bsrange=4k-64k
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
# Each virtqueue has its own MSI-X vector "virtioN-req.Q": completions arrived on every queue.
vdev=$(basename "$(readlink /sys/block/vda/device)")
grep -E "$vdev-req" /proc/interrupts
q=0
while [ $q -lt "$VT_QUEUES" ]; do
	n=$(grep -E " $vdev-req\.$q\$" /proc/interrupts | awk '{s = 0; for (i = 2; i <= NF - 3; i++) s += $i; print s}')
	vt_log "queue $q: ${n:-no} interrupts"
	[ "${n:-0}" -gt 0 ] || vt_fail "queue $q completed no I/O"
	q=$((q + 1))
done
vt_no_io_errors
EOF
# Linux uses at most one queue per possible CPU.
guest_queues=$((VQ_QUEUES < VQ_SMP ? VQ_QUEUES : VQ_SMP))
vq_boot_guest fio "$guest" VT_QUEUES="$guest_queues" VT_RUNTIME="${VQ_FIO_RUNTIME:-25}" ||
	vq_fail "guest fio verify failed"
grep -a -E '^ *(read|write):|READ:|WRITE:' "$VQ_TMP/fio.log" | sed 's/^/  fio: /' >&2
vq_backend_alive || vq_fail "back-end died"
vq_backend_log_errors
vq_pass
