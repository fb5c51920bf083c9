#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Controller resets under I/O and namespace hot-plug on vhostd's vfio-user NVMe controller,
# with the guest's own nvme driver (QEMU 10.2 vfio-user-pci):
#  1. fio writes a verifiable pattern (crc32c headers) on every I/O queue while the guest resets
#     the controller twice (`echo 1 > /sys/class/nvme/nvme0/reset_controller`): the driver
#     requeues what was in flight; fio must finish without errors and a verify-only pass must
#     find every block right.
#  2. The host adds a namespace over RPC while the guest runs: the Namespace Attribute Changed
#     event makes the driver rescan and /dev/nvme0n2 appears; the host removes it again and it
#     disappears.
. "$(dirname "$0")/vfu-lib.sh"
VQ_SMP=${VQ_SMP:-2}
vf_init vfu-reset
vf_add_ctrl nvme0 4
vf_add_ns nvme0 64 512

guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'EOF'
. /etc/vtest.sh
vt_check "cannot load the nvme driver" vt_load_nvme
vt_wait_path /dev/nvme0n1 60 || { dmesg | tail -n 30; vt_fail "/dev/nvme0n1 did not appear"; }
nq=$(ls -d /sys/block/nvme0n1/mq/* | wc -l)
ncpu=$(nproc)
cat >/tmp/job.fio <<JOB
[global]
filename=/dev/nvme0n1
direct=1
ioengine=libaio
iodepth=16
bsrange=4k-64k
verify=crc32c
verify_fatal=1
size=24M
JOB
i=0
while [ $i -lt "$nq" ]; do
	printf '[q%d]\noffset=%dM\ncpus_allowed=%d\n' $i $((i * 24)) $((i % ncpu)) >>/tmp/job.fio
	i=$((i + 1))
done
fio --rw=randwrite --do_verify=0 /tmp/job.fio >/tmp/fio-w.out 2>&1 &
fpid=$!
for n in 1 2; do
	usleep 700000
	vt_log "reset $n under I/O"
	echo 1 >/sys/class/nvme/nvme0/reset_controller || vt_fail "reset_controller write failed"
	vt_wait_path /dev/nvme0n1 30 || vt_fail "namespace gone after reset $n"
done
wait $fpid
rc=$?
cat /tmp/fio-w.out
[ $rc -eq 0 ] || vt_fail "fio (writes across resets) exited with $rc"
fio --rw=randwrite --verify_only /tmp/job.fio >/tmp/fio-v.out 2>&1
rc=$?
cat /tmp/fio-v.out
[ $rc -eq 0 ] || vt_fail "verify after the resets failed: $(grep -m1 -iE 'verify|bad' /tmp/fio-v.out)"
dmesg | grep -i "nvme" | tail -n 10
# Each (re)initialisation of the controller logs its queue counts once.
inits=$(dmesg | grep -c 'default/read/poll queues')
echo "VFU-RESETS: $((inits - 1))"
[ "$inits" -ge 3 ] || vt_fail "the driver initialised the controller $inits times (3 expected)"

# Namespace hot-add: the host sees this marker and calls vfu_controller_add_ns.
echo "VFU-WANT-NS"
vt_wait_path /dev/nvme0n2 60 || { dmesg | tail -n 20; vt_fail "hot-added namespace did not appear"; }
dd if=/dev/urandom of=/tmp/p bs=1M count=4 2>/dev/null
dd if=/tmp/p of=/dev/nvme0n2 bs=1M oflag=direct 2>/dev/null || vt_fail "write to the new namespace"
[ "$(vt_sum /dev/nvme0n2 0 4)" = "$(sha256sum </tmp/p | cut -d' ' -f1)" ] || vt_fail "new namespace data"
echo "VFU-DROP-NS"
i=0
while [ -e /dev/nvme0n2 ]; do
	i=$((i + 1))
	[ $i -gt 600 ] && vt_fail "removed namespace still there"
	usleep 100000
done
vt_no_io_errors
EOF

# Boot by hand: the host acts on the guest's markers while it runs.
log="$VQ_TMP/reset.log"
initrd="$VQ_TMP/reset.initrd"
vq_make_initrd "$initrd" "$guest" VT_NEED_DISK=0
vq_log "booting guest 'reset' (smp=$VQ_SMP)"
vf_qemu_start "$log" "$initrd"
added=0 dropped=0
while kill -0 "$VQ_QEMU_PID" 2>/dev/null && ((SECONDS - VQ_QEMU_T0 < VQ_GUEST_TIMEOUT)); do
	if [[ $added == 0 ]] && grep -aq '^VFU-WANT-NS' "$log"; then
		vf_add_ns nvme0 16 4096
		added=1
	fi
	if [[ $dropped == 0 ]] && grep -aq '^VFU-DROP-NS' "$log"; then
		vq_rpc call vfu_controller_remove_ns '{"ctrlr":"nvme0","nsid":2}' >/dev/null ||
			vq_fail "vfu_controller_remove_ns failed"
		dropped=1
	fi
	sleep 0.2
done
vq_qemu_wait
rc=$?
res=$(vq_result "$log")
rrc=$?
vq_log "guest 'reset': $res (wall $((SECONDS - VQ_QEMU_T0))s, qemu rc $rc)"
if [[ $rrc -ne 0 || $rc -ne 0 ]]; then
	tail -n 60 "$log" >&2
	vq_fail "guest reset/hot-plug checks failed"
fi
vq_guest_output reset VFU-RESETS | sed 's/^/  controller resets seen by the guest: /' >&2
vq_backend_alive || vq_fail "vhostd died"
vq_backend_log_errors
vq_pass
