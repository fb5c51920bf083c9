# SPDX-License-Identifier: BSD-3-Clause
# shellcheck shell=bash
#
# vfu-lib.sh: host-side helpers for the vfio-user NVMe guest tests (test-vfu-*.sh), on top of
# lib.sh. The guest's own nvme driver drives vhostd's emulated NVMe controller through QEMU's
# vfio-user client (-device vfio-user-pci), which Debian 12's QEMU 7.2 lacks: the tests use the
# QEMU 10.2 that build-qemu-vfio-user.sh built and cached (/var/cache/vhostd-qemu/10.2). They
# skip when it is not there, unless VHOSTD_QEMU_BUILD=1 (then the first test builds it: 15-30
# minutes). scripts/test.sh builds it before the qemu suite.
#
#   . "$(dirname "$0")/vfu-lib.sh"
#   vf_init vfu-nvme                    # vq_init + QEMU 10.2 + vhostd (vf_init_qemu: no vhostd)
#   vf_add_ctrl nvme0 4                 # vfio-user NVMe controller with 4 I/O queues
#   vf_add_ns nvme0 64 512              # a 64 MiB RAM bdev as the next namespace
#   vf_boot boot1 "$guest_script" VT_X=1 || vq_fail "..."
#   vq_pass
#
# Knobs: VF_MEM (guest RAM, default 1024M), VQ_SMP, VF_QEMU_EXTRA (array, extra QEMU args).
# QEMU 10.2's vfio-user client cannot reconnect: a vhostd restart loses the device.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

vf_init() {
	vf_init_qemu "$1"
	vq_vhostd_start
}

# vf_init_qemu NAME: vq_init and QEMU 10.2 (VQ_VFU_QEMU), without starting vhostd (a test that
# starts its own, e.g. under --supervise).
vf_init_qemu() {
	local name=$1 env rc=0 mode=--check
	VQ_MEM=${VF_MEM:-1024M}
	vq_init "$name"
	[[ "${VHOSTD_QEMU_BUILD:-0}" == 1 ]] && mode=--env
	if [[ $mode == --check ]] && ! "$VQ_LIB_DIR/build-qemu-vfio-user.sh" --check; then
		vq_skip "no QEMU >= 10.1 with vfio-user (run tests/qemu/build-qemu-vfio-user.sh, or set VHOSTD_QEMU_BUILD=1)"
	fi
	env=$("$VQ_LIB_DIR/build-qemu-vfio-user.sh" --env 2>"$VQ_TMP/qemu-build.log") || rc=$?
	if [[ $rc -eq 77 ]]; then
		cat "$VQ_TMP/qemu-build.log" >&2
		vq_skip "cannot build QEMU with vfio-user here"
	fi
	[[ $rc -eq 0 ]] || { cat "$VQ_TMP/qemu-build.log" >&2; vq_fail "build-qemu-vfio-user.sh failed ($rc)"; }
	eval "$env"
	[[ -x "$VQ_VFU_QEMU" ]] || vq_fail "no $VQ_VFU_QEMU"
	vq_log "QEMU: $("$VQ_VFU_QEMU" --version | head -n1)"
	VT_NEED_DISK=0
}

# vf_add_ctrl NAME IO_QUEUES: a vfio-user NVMe controller; sets VF_SOCK.
vf_add_ctrl() {
	local name=$1 nq=$2
	vq_rpc call vfu_create_nvme_controller "{\"ctrlr\":\"$name\",\"num_io_queues\":$nq}" >/dev/null ||
		vq_fail "vfu_create_nvme_controller $name failed"
	VF_SOCK="$VQ_SOCKDIR/$name"
	vq_wait_for "socket $VF_SOCK" 10 test -S "$VF_SOCK" || vq_fail "controller socket missing"
	VF_NS_SEQ=0
}

# vf_add_ns CTRLR SIZE_MIB BLOCK_SIZE: a RAM bdev as the controller's next namespace.
vf_add_ns() {
	local ctrlr=$1 mib=$2 bs=$3 bdev
	VF_NS_SEQ=$((${VF_NS_SEQ:-0} + 1))
	bdev="${ctrlr}n$VF_NS_SEQ"
	vq_rpc bdev_malloc_create -b "$bdev" "$mib" "$bs" >/dev/null || vq_fail "bdev_malloc_create failed"
	vq_rpc call vfu_controller_add_ns "{\"ctrlr\":\"$ctrlr\",\"bdev_name\":\"$bdev\"}" >/dev/null ||
		vq_fail "vfu_controller_add_ns $ctrlr $bdev failed"
	vq_log "namespace $VF_NS_SEQ of $ctrlr: bdev $bdev ${mib}MiB bs=$bs"
}

# vf_qemu_start LOG INITRD: lib.sh's command line with QEMU 10.2, Debian's firmware (-L) and
# the vfio-user device instead of vhost-user-blk.
vf_qemu_start() {
	local log=$1 initrd=$2 l
	local sock=$VF_SOCK
	VQ_SOCK="" vq_qemu_argv "$initrd" "$log"
	VQ_ARGV[0]=$VQ_VFU_QEMU
	# shellcheck disable=SC2206 # a list of "-L dir" words
	l=($VQ_VFU_QEMU_L)
	VQ_ARGV+=("${l[@]}" -device "{\"driver\":\"vfio-user-pci\",\"socket\":{\"path\":\"$sock\",\"type\":\"unix\"}}")
	if [[ -n "${VF_QEMU_EXTRA+x}" ]]; then
		VQ_ARGV+=("${VF_QEMU_EXTRA[@]}")
	fi
	: >"$log"
	printf '%q ' "${VQ_ARGV[@]}" >"${log%.log}.qemu.log"
	echo >>"${log%.log}.qemu.log"
	timeout --foreground -k 5 $((VQ_GUEST_TIMEOUT + 30)) "${VQ_ARGV[@]}" </dev/null >>"${log%.log}.qemu.log" 2>&1 &
	VQ_QEMU_PID=$!
	VQ_QEMU_T0=$SECONDS
	vq_track "$VQ_QEMU_PID" qemu
}

# vf_boot NAME SCRIPT [VAR=VALUE...]: like vq_boot_guest with the vfio-user controller.
vf_boot() {
	local name=$1 script=$2 log initrd rc res rrc ready
	shift 2
	log="$VQ_TMP/$name.log"
	initrd="$VQ_TMP/$name.initrd"
	vq_make_initrd "$initrd" "$script" VT_NEED_DISK=0 "$@"
	vq_log "booting guest '$name' (smp=$VQ_SMP, vfio-user $VF_SOCK)"
	vf_qemu_start "$log" "$initrd"
	vq_qemu_wait
	rc=$?
	rm -f "$initrd"
	res=$(vq_result "$log")
	rrc=$?
	ready=$(grep -a -o 'vtest: ready at [0-9.]*s' "$log" | head -n1 | sed 's/.* at //')
	VQ_LAST_WALL=$((SECONDS - VQ_QEMU_T0))
	vq_log "guest '$name': $res (wall ${VQ_LAST_WALL}s, guest ready at ${ready:-?}, qemu rc $rc)"
	[[ "${VQ_VERBOSE:-0}" == 1 ]] && sed 's/^/  | /' "$log" >&2
	if [[ $rrc -ne 0 ]]; then
		echo "----- serial console of '$name' (last 40 lines) -----" >&2
		tail -n 40 "$log" >&2
		echo "----- QEMU output -----" >&2
		tail -n 20 "${log%.log}.qemu.log" >&2
		return 1
	fi
	[[ $rc -eq 0 ]] || { vq_log "QEMU exited with $rc"; return 1; }
	return 0
}
