#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# One daemon, one controller, three guests in a row (each boots, does I/O, powers off, and
# QEMU exits, so the daemon sees three connect/start/stop/disconnect cycles).  Each boot checks
# the stamp the previous boot left at 60 MiB, writes its own, and runs a short fio verify.
# Guest RAM is two regions here (VGA hole), one in the other tests.
. "$(dirname "$0")/lib.sh"
vq_init reboot
vq_backend_start
vq_backend_add_disk vhost.0 64 512
# With a VGA device QEMU maps guest RAM as two regions of the same memfd (0-640 KiB and
# 768 KiB-end, around the VGA hole): two ADD_MEM_REG per connection.  The other tests use
# -vga none, which gives one region.
VQ_QEMU_ARGS=(-vga std)

guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'EOF'
. /etc/vtest.sh
STAMP_SECTOR=$((60 * 2048))
readstamp() {
	dd if=/dev/vda bs=512 skip=$STAMP_SECTOR count=1 iflag=direct 2>/dev/null | tr -d '\000'
}
if [ "$VT_BOOT" -gt 1 ]; then
	got=$(readstamp)
	want="vhostd-boot-$((VT_BOOT - 1))"
	vt_log "stamp: '$got'"
	[ "$got" = "$want" ] || vt_fail "boot $VT_BOOT: stamp '$got', expected '$want'"
fi
printf 'vhostd-boot-%s' "$VT_BOOT" | dd of=/dev/vda bs=512 seek=$STAMP_SECTOR conv=sync oflag=direct 2>/dev/null ||
	vt_fail "writing the stamp failed"
[ "$(readstamp)" = "vhostd-boot-$VT_BOOT" ] || vt_fail "stamp did not read back"
fio --name=v --filename=/dev/vda --size=48M --direct=1 --ioengine=libaio --iodepth=16 \
	--rw=randrw --bs=4k --verify=crc32c --verify_backlog=512 --verify_fatal=1 \
	--time_based=1 --runtime=5 >/tmp/fio.out 2>&1 || { cat /tmp/fio.out; vt_fail "fio failed on boot $VT_BOOT"; }
vt_no_io_errors
EOF
for boot in 1 2 3; do
	vq_boot_guest "boot$boot" "$guest" VT_BOOT=$boot || vq_fail "boot $boot failed"
	vq_backend_alive || vq_fail "back-end died after boot $boot"
	if [[ "$VQ_BACKEND" == vhostd ]]; then
		vq_rpc vhost_get_controllers | grep -q '"vhost.0"' ||
			vq_fail "vhost.0 no longer listed after boot $boot"
	fi
done
vq_backend_log_errors
vq_pass
