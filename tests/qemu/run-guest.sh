#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# run-guest.sh: boot one test guest by hand.
#
#   run-guest.sh [options] [GUEST-SCRIPT] [VAR=VALUE...]
#
# GUEST-SCRIPT runs inside the guest as /test.sh (busybox sh; source /etc/vtest.sh for the
# vt_* helpers); VAR=VALUE pairs are exported to it.  Without a script the guest only checks
# that /dev/vda appears.  The result is the guest's marker line:
#   VHOSTD-TEST-RESULT: PASS | FAIL <reason>
#
# Disk (one of):
#   --sock PATH          attach an existing vhost-user-blk socket (nothing is started)
#   --backend vhostd|qsd start that back-end with a RAM disk (default: $VHOSTD_QEMU_BACKEND, else
#                        vhostd if built, else qsd)
#   --no-disk            boot without a disk
# Options:
#   --size MIB (64)  --block-size N (512)  --ro  --queues N (2)  --smp N (2)  --mem SIZE (512M)
#   --timeout S (300)  --reconnect S  --qmp PATH  --log FILE (copy of the serial console)
#   --verbose (print the console)  --keep (keep the temp dir)
# Exit: 0 PASS, 1 FAIL, 77 skipped (no QEMU / no guest image / no back-end).
#
# Example:
#   tests/qemu/run-guest.sh --backend qsd --verbose my-check.sh VT_SIZE=64

usage() { sed -n '3,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

sock=""
backend=""
nodisk=0
size=64
bs=512
ro=rw
log_copy=""
script=""
vars=()
while [[ $# -gt 0 ]]; do
	case "$1" in
	--sock) sock=$2; shift ;;
	--backend) backend=$2; shift ;;
	--no-disk) nodisk=1 ;;
	--size) size=$2; shift ;;
	--block-size) bs=$2; shift ;;
	--ro) ro=ro ;;
	--queues) export VQ_QUEUES=$2; shift ;;
	--smp) export VQ_SMP=$2; shift ;;
	--mem) export VQ_MEM=$2; shift ;;
	--timeout) export VQ_GUEST_TIMEOUT=$2; shift ;;
	--reconnect) export VQ_RECONNECT=$2; shift ;;
	--qmp) export VQ_QMP=$2; shift ;;
	--log) log_copy=$2; shift ;;
	--verbose) export VQ_VERBOSE=1 ;;
	--keep) export VQ_KEEP_TMP=1 ;;
	-h|--help) usage 0 ;;
	-*) echo "run-guest.sh: unknown option $1" >&2; usage 2 ;;
	*=*) vars+=("$1") ;;
	*) [[ -z "$script" ]] || usage 2; script=$1 ;;
	esac
	shift
done
[[ -n "$script" && ! -f "$script" ]] && { echo "run-guest.sh: no such script $script" >&2; exit 2; }

backend=${backend:-${VHOSTD_QEMU_BACKEND:-}}
if [[ -z "$backend" && -z "$sock" && $nodisk -eq 0 ]]; then
	backend=qsd
	root=$(cd "$(dirname "$0")/../.." && pwd)
	if [[ -n "${VHOSTD:-}" || -x "$root/build/src/app/vhostd" ]]; then
		backend=vhostd
	fi
fi
export VHOSTD_QEMU_BACKEND=${backend:-vhostd}

. "$(dirname "$0")/lib.sh"
vq_init run-guest
if [[ -z "$script" ]]; then
	script="$VQ_TMP/smoke.sh"
	cat >"$script" <<'EOF'
. /etc/vtest.sh
if [ -e /dev/vda ]; then
	vt_log "vda: $(cat /sys/block/vda/size) sectors, serial '$(cat /sys/block/vda/serial 2>/dev/null)'"
	dd if=/dev/vda of=/dev/null bs=1M count=1 iflag=direct 2>/dev/null || vt_fail "read failed"
fi
EOF
fi
if [[ $nodisk -eq 1 ]]; then
	VQ_SOCK=""
	vars+=(VT_NEED_DISK=0)
elif [[ -n "$sock" ]]; then
	[[ -S "$sock" ]] || vq_fail "$sock is not a socket"
	VQ_SOCK=$sock
else
	vq_backend_start
	vq_backend_add_disk vhost.0 "$size" "$bs" "$ro"
fi
vq_boot_guest guest "$script" "${vars[@]}"
rc=$?
[[ -n "$log_copy" ]] && cp "$VQ_TMP/guest.log" "$log_copy"
[[ $rc -eq 0 ]] || vq_fail "guest failed"
vq_pass
