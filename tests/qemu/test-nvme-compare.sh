#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Kernel NVMe driver vs our path, inside the same TCG guest and on the same emulated NVMe:
#   kernel: fio --ioengine=libaio --direct=1 on /dev/nvme0n1 (the nvme driver bound);
#   ours:   vhost-bench (or nvme-client bench) through a vhost-blk controller on Nvme0n1, the
#           device taken from the kernel driver by bdev_nvme_attach_controller --force in uio
#           mode (first checked to be refused without --force); guest RAM on hugetlbfs, so the
#           driver DMAs straight into the initiator's buffers, and on memfd (bounced).
# 4 KiB random reads over the first 64 MiB (written first), QD1 and QD32, NV_CMP_SECONDS (6)
# each, plus the same initiator on a null bdev of the same vhostd (the vhost-user + polling cost
# in this guest, without NVMe). Prints "qd=N kernel=IOPS ours=IOPS ratio=ours/kernel ...".
# No threshold: TCG makes the absolute numbers meaningless and the ratio only says whether our
# path adds overhead. NV_VHOSTD_ARGS (default "--idle-us 0": poll only, as the comparison is
# about the polled path; with adaptive idle the TCG guest measures vhostd's sleep/wake instead)
# goes to the guest's vhostd.
. "$(dirname "$0")/nvme-lib.sh"
nv_init nvme-compare

guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'EOF'
. /etc/vtest.sh
. /etc/vtest-nvme.sh
T=${VT_SECONDS:-6}
nv_load nvme || nv_skip "the guest kernel cannot load nvme"
nv_load uio || nv_skip "the guest kernel cannot load uio_pci_generic"
nv_huge 192 || vt_fail "cannot reserve huge pages"
BDF=$(nv_bdf) || vt_fail "no NVMe controller in the guest"
nv_bind $BDF nvme || vt_fail "cannot bind $BDF to the kernel nvme driver"
vt_wait_path /dev/nvme0n1 15 || vt_fail "/dev/nvme0n1 did not appear"
dd if=/dev/urandom of=/tmp/fill bs=1M count=8 2>/dev/null
for i in 0 1 2 3 4 5 6 7; do dd if=/tmp/fill of=/dev/nvme0n1 bs=1M seek=$((i * 8)) oflag=direct 2>/dev/null; done
rm -f /tmp/fill
kfio() {
	fio --name=k --filename=/dev/nvme0n1 --ioengine=libaio --direct=1 --rw=randread --bs=4k \
		--iodepth=$1 --size=64M --time_based --runtime=$T --norandommap --minimal 2>/tmp/fio.err |
		awk -F';' '{print int($8)}'
}
K1=$(kfio 1); K32=$(kfio 32)
[ -n "$K1" ] && [ "$K1" -gt 0 ] && [ -n "$K32" ] && [ "$K32" -gt 0 ] || { cat /tmp/fio.err; vt_fail "fio on /dev/nvme0n1 failed"; }
vt_log "kernel nvme: qd1 $K1 IOPS, qd32 $K32 IOPS"
nv_start $VT_VHOSTD_ARGS || vt_fail "vhostd did not start"
if nv_rpc bdev_nvme_attach_controller -b Nvme0 -t PCIe -a $BDF --mode uio 2>/tmp/err; then
	nv_fail "attach took a device bound to the kernel nvme driver without --force"
fi
vt_log "attach without --force refused: $(cat /tmp/err)"
[ "$(nv_driver $BDF)" = nvme ] || nv_fail "a refused attach unbound the kernel driver"
nv_rpc bdev_nvme_attach_controller -b Nvme0 -t PCIe -a $BDF --mode uio --force || nv_fail "attach --force failed"
[ -e /dev/nvme0n1 ] && nv_fail "/dev/nvme0n1 still present after attach --force"
nv_rpc vhost_create_blk_controller --cpumask 0x1 vhost.0 Nvme0n1 || nv_fail "vhost controller on Nvme0n1 failed"
nv_rpc bdev_null_create Null0 64 512 >/dev/null || nv_fail "bdev_null_create failed"
nv_rpc vhost_create_blk_controller --cpumask 0x1 vhost.1 Null0 || nv_fail "vhost controller on Null0 failed"
S=$NV_DIR/vhost.0
ours() { # QD HUGE(0/1)
	local h=""
	if [ -x /opt/vhostd/bin/vhost-bench ]; then
		[ $2 = 1 ] && h=--huge
		vhost-bench --socket $S --rw randread --bs 4k --iodepth $1 --runtime $T --size 64M \
			--cpumask 0x2 $h >/tmp/vb.out 2>&1 || { cat /tmp/vb.out >&2; return 1; }
		awk '/^IOPS:/ {print int($2)}' /tmp/vb.out
	else
		[ $2 = 1 ] && h="--huge /dev/hugepages"
		nvme-client --socket $S --size 64 --qd $1 --seconds $T $h bench >/tmp/vb.out 2>&1 ||
			{ cat /tmp/vb.out >&2; return 1; }
		awk '/^IOPS/ {print int($2)}' /tmp/vb.out
	fi
}
O1=$(ours 1 1) || nv_fail "our path at QD1 failed"
O32=$(ours 32 1) || nv_fail "our path at QD32 failed"
M1=$(ours 1 0) || nv_fail "our path at QD1 (memfd) failed"
M32=$(ours 32 0) || nv_fail "our path at QD32 (memfd) failed"
# The same initiator on a null bdev: what vhost-user + polling cost in this guest, no NVMe.
S=$NV_DIR/vhost.1
N1=$(ours 1 1) || nv_fail "null bdev at QD1 failed"
N32=$(ours 32 1) || nv_fail "null bdev at QD32 failed"
tool=nvme-client; [ -x /opt/vhostd/bin/vhost-bench ] && tool=vhost-bench
ratio() { awk -v o=$1 -v k=$2 'BEGIN { printf "%.2f", o / k }'; }
echo "NVME-COMPARE: qd=1 kernel=$K1 ours=$O1 ratio=$(ratio $O1 $K1) ours_memfd=$M1 ratio_memfd=$(ratio $M1 $K1) null_bdev=$N1 ($tool)"
echo "NVME-COMPARE: qd=32 kernel=$K32 ours=$O32 ratio=$(ratio $O32 $K32) ours_memfd=$M32 ratio_memfd=$(ratio $M32 $K32) null_bdev=$N32 ($tool)"
nv_rpc vhost_delete_controller vhost.0 || nv_fail "vhost_delete_controller failed"
nv_rpc vhost_delete_controller vhost.1 || nv_fail "vhost_delete_controller vhost.1 failed"
nv_rpc bdev_nvme_detach_controller Nvme0 || nv_fail "detach failed"
nv_stop || nv_fail "vhostd did not exit cleanly"
# And back to the kernel driver: it must find the controller usable after our shutdown.
nv_bind $BDF nvme || vt_fail "cannot rebind $BDF to the kernel nvme driver"
vt_wait_path /dev/nvme0n1 15 || vt_fail "/dev/nvme0n1 did not come back"
dd if=/dev/nvme0n1 of=/dev/null bs=1M count=8 iflag=direct 2>/dev/null || vt_fail "kernel cannot read after we gave the device back"
vt_no_io_errors
EOF
nv_boot compare "$guest" VT_SECONDS="${NV_CMP_SECONDS:-6}" VT_VHOSTD_ARGS="${NV_VHOSTD_ARGS---idle-us 0}" || vq_fail "guest NVMe comparison failed"
vq_guest_output compare NVME-COMPARE | sed "s/^/[$(date +%T)] nvme-compare: /" >&2
vq_pass
