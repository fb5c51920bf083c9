#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# VM reset inside one QEMU process: the guest reboots itself twice (`reboot -f`, QEMU without
# -no-reboot), so the back-end sees the rings stop and restart on the same connection, and
# QEMU asks GET_INFLIGHT_FD again after each reset.  The boots count themselves with a stamp
# on the disk; each boot checks the previous stamp and runs a short fio verify.  The third
# boot powers off with the result.
. "$(dirname "$0")/lib.sh"
vq_init reset
vq_backend_start
vq_backend_add_disk vhost.0 64 512

guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'EOF'
. /etc/vtest.sh
STAMP_SECTOR=$((60 * 2048))
got=$(dd if=/dev/vda bs=512 skip=$STAMP_SECTOR count=1 iflag=direct 2>/dev/null | tr -d '\000')
case "$got" in
"") boot=1 ;;
vhostd-reset-1) boot=2 ;;
vhostd-reset-2) boot=3 ;;
*) vt_fail "unexpected stamp '$got'" ;;
esac
vt_log "boot $boot (stamp '$got')"
echo "VT-BOOT: $boot"
fio --name=v --filename=/dev/vda --size=48M --direct=1 --ioengine=libaio --iodepth=16 \
	--rw=randrw --bs=4k --verify=crc32c --verify_backlog=512 --verify_fatal=1 \
	--time_based=1 --runtime=4 >/tmp/fio.out 2>&1 || { cat /tmp/fio.out; vt_fail "fio failed on boot $boot"; }
vt_no_io_errors
[ $boot -eq 3 ] && exit 0
printf 'vhostd-reset-%s' "$boot" | dd of=/dev/vda bs=512 seek=$STAMP_SECTOR conv=sync oflag=direct 2>/dev/null ||
	vt_fail "writing the stamp failed"
sync
vt_log "rebooting"
reboot -f
sleep 30
vt_fail "reboot -f did not reboot"
EOF
VQ_NO_REBOOT=0 vq_boot_guest reset "$guest" || vq_fail "guest reset cycle failed"
boots=$(vq_guest_output reset VT-BOOT | tr '\n' ' ')
[[ "$boots" == "1 2 3 " ]] || vq_fail "boot sequence was '$boots', expected '1 2 3'"
vq_backend_alive || vq_fail "back-end died"
vq_pass
