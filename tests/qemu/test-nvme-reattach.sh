#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Detach and re-attach with the user-space NVMe driver (uio, inside a TCG guest with QEMU's
# NVMe): write a pattern through a vhost-blk controller on Nvme0n1; detaching while the bdev is
# in use must be refused; then delete the controller, detach (the bdev disappears, the controller
# is shut down), attach again (the device is still bound to uio_pci_generic), and the pattern
# must read back, followed by verified random I/O. Three detach/attach cycles, the last one
# across a vhostd restart.
. "$(dirname "$0")/nvme-lib.sh"
nv_init nvme-reattach

guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'EOF'
. /etc/vtest.sh
. /etc/vtest-nvme.sh
nv_load uio || nv_skip "the guest kernel cannot load uio_pci_generic"
nv_huge 64 || vt_fail "cannot reserve huge pages"
BDF=$(nv_bdf) || vt_fail "no NVMe controller in the guest"
nv_start || vt_fail "vhostd did not start"
S=$NV_DIR/vhost.0
attach() {
	nv_rpc bdev_nvme_attach_controller -b Nvme0 -t PCIe -a $BDF --mode uio || nv_fail "attach ($1) failed"
	nv_rpc vhost_create_blk_controller --cpumask 0x1 vhost.0 Nvme0n1 || nv_fail "vhost controller ($1) failed"
}
detach() {
	nv_rpc vhost_delete_controller vhost.0 || nv_fail "vhost_delete_controller ($1) failed"
	nv_rpc bdev_nvme_detach_controller Nvme0 || nv_fail "detach ($1) failed"
	nv_rpc bdev_get_bdevs | grep -q Nvme0n1 && nv_fail "Nvme0n1 still listed after detach ($1)"
	nv_rpc bdev_nvme_get_controllers | grep -q Nvme0 && nv_fail "Nvme0 still listed after detach ($1)"
	return 0
}
attach first
nvme-client --socket $S --size 16 --gen 11 fill || nv_fail "fill failed"
if nv_rpc bdev_nvme_detach_controller Nvme0 2>/tmp/err; then
	nv_fail "detach succeeded while a vhost controller uses Nvme0n1"
fi
vt_log "detach while in use refused: $(cat /tmp/err)"
nvme-client --socket $S --size 16 --gen 11 check || nv_fail "pattern lost after the refused detach"
detach 1
attach 2
nvme-client --socket $S --size 16 --gen 11 check || nv_fail "pattern lost across detach/attach"
nvme-client --socket $S --size 16 --seconds 3 --seed 3 verify || nv_fail "verify after re-attach failed"
nvme-client --socket $S --size 16 --gen 12 fill || nv_fail "second fill failed"
detach 2
attach 3
nvme-client --socket $S --size 16 --gen 12 check || nv_fail "pattern lost across the second detach/attach"
# Shut down with the controller attached: vhostd must detach on exit, and a new vhostd attach.
nv_stop || nv_fail "vhostd did not exit cleanly with Nvme0 attached"
nv_start || vt_fail "vhostd did not start again"
attach 4
nvme-client --socket $S --size 16 --gen 12 check || nv_fail "pattern lost across a vhostd restart"
nvme-client --socket $S --size 16 --seconds 3 --seed 4 verify || nv_fail "verify after the restart failed"
detach 4
nv_stop || nv_fail "vhostd did not exit cleanly"
echo "NVME-RESULT: 4 attach/detach cycles (one across a vhostd restart) kept the data"
EOF
nv_boot reattach "$guest" || vq_fail "guest NVMe detach/re-attach test failed"
vq_guest_output reattach NVME-RESULT >&2
vq_pass
