#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# The user-space NVMe driver in VFIO mode, inside a TCG guest with an emulated IOMMU:
# -machine q35,kernel-irqchip=split, -device intel-iommu,aw-bits=48 (before the NVMe device:
# the driver maps DMA with IOVA == VA, which needs 48 bits), intel_iommu=on in the guest.
# vhostd binds the device to vfio-pci (bdev_nvme_attach_controller --mode vfio), maps the vhost
# guest memory into the IOMMU and runs verified I/O zero-copy (nvme-client, vhost-bench --verify
# when built), then detaches and re-attaches once.
# Skips (77) with the reason when the guest has no working IOMMU or vfio under TCG: the guest's
# IOMMU/DMAR/vfio kernel messages are printed.
. "$(dirname "$0")/nvme-lib.sh"
NV_MACHINE_ARGS=(-machine q35,kernel-irqchip=split -device intel-iommu,aw-bits=48)
VQ_APPEND="intel_iommu=on ${VQ_APPEND:-}"
nv_init nvme-vfio

guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'EOF'
. /etc/vtest.sh
. /etc/vtest-nvme.sh
iommu_log() { dmesg | grep -iE 'DMAR|iommu|vfio|remapping' | tail -n 25; }
nv_load vfio || { iommu_log; nv_skip "the guest kernel cannot load vfio-pci"; }
BDF=$(nv_bdf) || vt_fail "no NVMe controller in the guest"
if [ ! -e /sys/bus/pci/devices/$BDF/iommu_group ]; then
	iommu_log
	nv_skip "no IOMMU group for $BDF under TCG (intel-iommu not active in the guest)"
fi
vt_log "NVMe at $BDF, IOMMU group $(basename $(readlink /sys/bus/pci/devices/$BDF/iommu_group)), $(ls /sys/bus/pci/devices/$BDF/iommu_group/devices | wc -l) device(s) in it"
iommu_log
nv_start || vt_fail "vhostd did not start"
S=$NV_DIR/vhost.0
if ! nv_rpc bdev_nvme_attach_controller -b Nvme0 -t PCIe -a $BDF --mode vfio; then
	nv_dump
	iommu_log
	ls -l /dev/vfio 2>&1
	nv_fail "attach in vfio mode failed"
fi
[ "$(nv_driver $BDF)" = vfio-pci ] || nv_fail "not bound to vfio-pci after attach"
nv_rpc bdev_nvme_get_controllers | grep -q '"vfio"' || nv_fail "get_controllers does not say vfio"
nv_rpc vhost_create_blk_controller --cpumask 0x1 vhost.0 Nvme0n1 || nv_fail "vhost controller on Nvme0n1 failed"
if [ -x /opt/vhostd/bin/vhost-bench ]; then
	vhost-bench --socket $S --rw randrw --bs 4k --iodepth 32 --runtime ${VT_SECONDS:-5} --size 64M --verify ||
		{ iommu_log; nv_fail "vhost-bench --verify (vfio) failed"; }
fi
nvme-client --socket $S --seconds ${VT_SECONDS:-5} --seed 5 verify || { iommu_log; nv_fail "nvme-client verify (vfio) failed"; }
nvme-client --socket $S --size 8 --gen 21 fill || nv_fail "fill failed"
nv_rpc vhost_delete_controller vhost.0 || nv_fail "vhost_delete_controller failed"
nv_rpc bdev_nvme_detach_controller Nvme0 || nv_fail "detach failed"
nv_rpc bdev_nvme_attach_controller -b Nvme0 -t PCIe -a $BDF --mode vfio || nv_fail "re-attach (vfio) failed"
nv_rpc vhost_create_blk_controller --cpumask 0x1 vhost.0 Nvme0n1 || nv_fail "vhost controller after re-attach failed"
nvme-client --socket $S --size 8 --gen 21 check || nv_fail "pattern lost across detach/attach (vfio)"
nvme-client --socket $S --seconds 2 --seed 6 verify || nv_fail "verify after re-attach (vfio) failed"
nv_rpc vhost_delete_controller vhost.0 || nv_fail "vhost_delete_controller failed"
nv_rpc bdev_nvme_detach_controller Nvme0 || nv_fail "detach failed"
nv_stop || nv_fail "vhostd did not exit cleanly"
dmesg | grep -iE 'DMAR.*fault|DMAR:.*\[DMA' && vt_fail "the IOMMU logged DMA faults"
echo "NVME-RESULT: vfio mode behind intel-iommu: verified I/O and re-attach passed"
EOF
nv_boot vfio "$guest" VT_SECONDS="${NV_SECONDS:-5}" || vq_fail "guest NVMe vfio test failed"
vq_guest_output vfio NVME-RESULT >&2
vq_pass
