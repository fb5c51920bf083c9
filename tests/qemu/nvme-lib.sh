# SPDX-License-Identifier: BSD-3-Clause
# shellcheck shell=bash
#
# nvme-lib.sh: host-side helpers shared by tests/qemu/test-nvme-*.sh, on top of lib.sh.
# vhostd runs *inside* the guest here (the host has no /dev/vfio): the guest gets QEMU's emulated
# NVMe (-device nvme) and an extra initramfs archive (nvme-guest-extra.sh) with vhostd, vhostctl,
# nvme-client, vhost-bench (when built), the uio/vfio/nvme modules and /etc/vtest-nvme.sh.
#
#   . "$(dirname "$0")/nvme-lib.sh"
#   nv_init nvme-io                 # vq_init + binaries + extra archive + NVMe image
#   nv_boot boot1 "$guest_script" VT_X=1 || vq_fail "..."
#   vq_pass
#
# Binaries: VHOSTD, VHOSTCTL, NVME_CLIENT (meson sets them), VHOST_BENCH (optional; default
# <build>/bench/vhost-bench next to vhostd's build dir). Knobs: NV_IMG_MIB (256), NV_MEM (guest RAM, 1536M
# here), NV_MACHINE_ARGS (array: extra QEMU args placed before the NVMe device, e.g. the IOMMU).

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nv_init() {
	local name=$1 bdir
	# lib.sh defaults VQ_MEM to 512M when sourced: the NVMe guests need more (huge pages).
	VQ_MEM=${NV_MEM:-1536M}
	vq_init "$name"
	VHOSTD=$(vq_bin VHOSTD vhostd)
	VHOSTCTL=$(vq_bin VHOSTCTL vhostctl)
	[[ -x "$VHOSTD" ]] || vq_skip "vhostd not built (set VHOSTD)"
	[[ -x "$VHOSTCTL" ]] || vq_skip "vhostctl not built (set VHOSTCTL)"
	bdir=$(cd "$(dirname "$VHOSTD")/../.." && pwd)
	if [[ -z "${NVME_CLIENT:-}" ]]; then
		NVME_CLIENT=$bdir/tests/qemu/nvme-client
	fi
	[[ -x "$NVME_CLIENT" ]] || vq_skip "nvme-client not built (set NVME_CLIENT)"
	if [[ -z "${VHOST_BENCH:-}" && -x "$bdir/bench/vhost-bench" ]]; then
		VHOST_BENCH=$bdir/bench/vhost-bench
	fi
	export VHOSTD VHOSTCTL NVME_CLIENT VHOST_BENCH
	NV_EXTRA="$VQ_TMP/nvme-extra.cpio.gz"
	local rc=0
	"$VQ_LIB_DIR/nvme-guest-extra.sh" "$NV_EXTRA" "$VQ_KERNEL" 2>"$VQ_TMP/nvme-extra.log" || rc=$?
	if [[ $rc -eq 77 ]]; then
		cat "$VQ_TMP/nvme-extra.log" >&2
		vq_skip "cannot build the NVMe guest archive"
	fi
	[[ $rc -eq 0 ]] || { cat "$VQ_TMP/nvme-extra.log" >&2; vq_fail "nvme-guest-extra.sh failed ($rc)"; }
	vq_log "vhost-bench: ${VHOST_BENCH:-not built (nvme-client only)}"
	NV_IMG="$VQ_TMP/nvme.img"
	truncate -s "${NV_IMG_MIB:-256}M" "$NV_IMG" || vq_fail "truncate"
	VT_NEED_DISK=0
}

# nv_boot NAME SCRIPT [VAR=VALUE...]: like vq_boot_guest, with the NVMe device and the extra
# archive. Returns 0 PASS, 1 FAIL; exits 77 when the guest printed "NVME-SKIP: reason".
nv_boot() {
	local name=$1 script=$2 log initrd rc res rrc skip
	shift 2
	log="$VQ_TMP/$name.log"
	initrd="$VQ_TMP/$name.initrd"
	vq_make_initrd "$initrd" "$script" VT_NEED_DISK=0 "$@"
	cat "$NV_EXTRA" >>"$initrd"
	VQ_QEMU_ARGS=()
	if [[ -n "${NV_MACHINE_ARGS+x}" ]]; then
		VQ_QEMU_ARGS+=("${NV_MACHINE_ARGS[@]}")
	fi
	VQ_QEMU_ARGS+=(-drive "file=$NV_IMG,if=none,id=nv0,format=raw,discard=unmap"
		-device "nvme,serial=vhostd-nvme,drive=nv0")
	VQ_SOCK=""
	vq_log "booting guest '$name' (smp=$VQ_SMP mem=$VQ_MEM)"
	vq_qemu_start "$log" "$initrd"
	vq_qemu_wait
	rc=$?
	rm -f "$initrd"
	res=$(vq_result "$log")
	rrc=$?
	vq_log "guest '$name': $res (wall $((SECONDS - VQ_QEMU_T0))s, qemu rc $rc)"
	if [[ "${VQ_VERBOSE:-0}" == 1 ]]; then
		sed 's/^/  | /' "$log" >&2
	fi
	skip=$(vq_guest_output "$name" NVME-SKIP | head -n1)
	if [[ -n "$skip" && $rrc -eq 0 ]]; then
		vq_skip "$skip"
	fi
	if [[ $rrc -ne 0 || $rc -ne 0 ]]; then
		echo "----- serial console of '$name' (last 80 lines) -----" >&2
		tail -n 80 "$log" >&2
		echo "----- QEMU output -----" >&2
		tail -n 20 "${log%.log}.qemu.log" >&2
		return 1
	fi
	return 0
}
