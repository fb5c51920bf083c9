#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# The user-space NVMe driver on a real (emulated) device: inside a TCG guest with QEMU's NVMe,
# vhostd binds it to uio_pci_generic (bdev_nvme_attach_controller --mode uio), exports Nvme0n1
# as a vhost-user-blk controller, and an initiator inside the guest runs verified random I/O
# through it: nvme-client (awkward iovec layouts, memfd guest RAM, so every transfer bounces;
# then hugetlbfs guest RAM, so UIO translates guest pages zero-copy) and vhost-bench --verify
# when it is built. bdev_nvme_get_controllers must list the controller.
. "$(dirname "$0")/nvme-lib.sh"
nv_init nvme-io

guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'EOF'
. /etc/vtest.sh
. /etc/vtest-nvme.sh
nv_load uio || nv_skip "the guest kernel cannot load uio_pci_generic"
nv_huge 192 || vt_fail "cannot reserve huge pages"
BDF=$(nv_bdf) || vt_fail "no NVMe controller in the guest"
vt_log "NVMe at $BDF, driver $(nv_driver $BDF)"
nv_start || vt_fail "vhostd did not start"
nv_rpc bdev_nvme_attach_controller -b Nvme0 -t PCIe -a $BDF --mode uio || nv_fail "attach failed"
[ "$(nv_driver $BDF)" = uio_pci_generic ] || nv_fail "not bound to uio_pci_generic after attach"
nv_rpc bdev_nvme_get_controllers >/tmp/ctrls || nv_fail "bdev_nvme_get_controllers failed"
cat /tmp/ctrls
grep -q Nvme0 /tmp/ctrls || nv_fail "Nvme0 missing from bdev_nvme_get_controllers"
nv_rpc vhost_create_blk_controller --cpumask 0x1 vhost.0 Nvme0n1 || nv_fail "vhost controller on Nvme0n1 failed"
S=$NV_DIR/vhost.0
if [ -x /opt/vhostd/bin/vhost-bench ]; then
	vhost-bench --socket $S --rw randrw --bs 4k --iodepth 32 --runtime ${VT_SECONDS:-6} --size 64M --verify ||
		nv_fail "vhost-bench --verify failed"
	echo "NVME-RESULT: vhost-bench --verify passed"
else
	echo "NVME-RESULT: vhost-bench not built: nvme-client only"
fi
# After vhost-bench: its --verify takes blocks it never wrote to be zero, nvme-client's are not.
nvme-client --socket $S --seconds ${VT_SECONDS:-6} --qd 32 --seed 1 verify || nv_fail "nvme-client verify (memfd guest RAM) failed"
nvme-client --socket $S --huge /dev/hugepages --seconds ${VT_SECONDS:-6} --qd 32 --seed 2 verify ||
	nv_fail "nvme-client verify (hugetlbfs guest RAM) failed"
echo "NVME-RESULT: nvme-client verify passed (memfd and hugetlbfs guest RAM)"
nv_rpc bdev_nvme_get_controllers
grep -iE 'error|bad|timeout|reset' $NV_LOG | head -n 20
nv_rpc vhost_delete_controller vhost.0 || nv_fail "vhost_delete_controller failed"
nv_rpc bdev_nvme_detach_controller Nvme0 || nv_fail "detach failed"
nv_stop || nv_fail "vhostd did not exit cleanly"
grep -iE 'nvme' $NV_LOG | tail -n 20
EOF
nv_boot io "$guest" VT_SECONDS="${NV_SECONDS:-6}" || vq_fail "guest NVMe I/O test failed"
vq_guest_output io NVME-RESULT >&2
vq_pass
