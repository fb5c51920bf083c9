#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Flush, discard and write-zeroes through the user-space NVMe driver (uio, inside a TCG guest
# with QEMU's NVMe): the vhost-blk controller on Nvme0n1 must offer all three (ONCS advertises
# Write Zeroes and Dataset Management), and nvme-client dwz checks that write-zeroes ranges
# (plain, with UNMAP, and an 8 KiB one) read back as zeroes and that the data around them and
# around a 1 MiB discard is untouched; whether the discarded range reads back zero is printed.
# Then the same from the guest kernel's side: the NVMe namespace as a virtio-blk disk is not
# possible here (vhostd runs in the guest), so the kernel nvme driver is bound afterwards and
# reads the same image: what we wrote through our driver must be what the kernel reads.
. "$(dirname "$0")/nvme-lib.sh"
nv_init nvme-dwz

guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'EOF'
. /etc/vtest.sh
. /etc/vtest-nvme.sh
nv_load uio || nv_skip "the guest kernel cannot load uio_pci_generic"
nv_huge 64 || vt_fail "cannot reserve huge pages"
BDF=$(nv_bdf) || vt_fail "no NVMe controller in the guest"
nv_start || vt_fail "vhostd did not start"
nv_rpc bdev_nvme_attach_controller -b Nvme0 -t PCIe -a $BDF --mode uio || nv_fail "attach failed"
nv_rpc vhost_create_blk_controller --cpumask 0x1 vhost.0 Nvme0n1 || nv_fail "vhost controller on Nvme0n1 failed"
nvme-client --socket $NV_DIR/vhost.0 dwz | tee /tmp/dwz.out || nv_fail "nvme-client dwz failed"
grep -q '^dwz: ok' /tmp/dwz.out || nv_fail "nvme-client dwz did not finish"
echo "NVME-RESULT: $(grep 'discarded range' /tmp/dwz.out)"
nv_rpc vhost_delete_controller vhost.0 || nv_fail "vhost_delete_controller failed"
nv_rpc bdev_nvme_detach_controller Nvme0 || nv_fail "detach failed"
nv_stop || nv_fail "vhostd did not exit cleanly"
# Cross-check with the kernel driver: the first 8 MiB as nvme-client left them.
nv_load nvme || nv_skip "the guest kernel cannot load nvme (our path passed)"
nv_bind $BDF nvme || vt_fail "cannot bind $BDF to the kernel nvme driver"
vt_wait_path /dev/nvme0n1 15 || vt_fail "/dev/nvme0n1 did not appear"
vt_is_zero /dev/nvme0n1 3 1 || vt_fail "kernel reads non-zero data in our write-zeroes range"
vt_is_zero /dev/nvme0n1 5 1 || vt_fail "kernel reads non-zero data in our write-zeroes(unmap) range"
vt_is_zero /dev/nvme0n1 2 1 && vt_fail "kernel reads zeroes where our pattern should be"
vt_no_io_errors
EOF
nv_boot dwz "$guest" || vq_fail "guest NVMe flush/discard/write-zeroes test failed"
vq_guest_output dwz NVME-RESULT >&2
vq_pass
