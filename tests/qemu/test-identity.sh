#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# What the guest sees: /sys/block/vdX/serial equals the controller's serial (the controller
# name truncated to 20 bytes, as vhost_get_controllers reports it), capacity equals the bdev
# size, logical block size and queue count match.  Two controllers: a 64 MiB/512 B disk with
# a name longer than 20 bytes and 2 queues, and a 32 MiB/4096 B disk with 1 queue.
# qemu-storage-daemon cannot set a serial: that check is skipped there.
. "$(dirname "$0")/lib.sh"
vq_init identity
vq_backend_start

name1=vhost.identity-long-name.0   # 26 bytes: the serial is its first 20
VQ_QUEUES=1 vq_backend_add_disk vhost.1 32 4096
sock2=$VQ_SOCK serial2=$VQ_SERIAL bytes2=$VQ_DISK_BYTES
vq_backend_add_disk "$name1" 64 512
if [[ "$VQ_BACKEND" == vhostd ]]; then
	[[ "$VQ_SERIAL" == "${name1:0:20}" ]] ||
		vq_fail "vhost_get_controllers serial '$VQ_SERIAL' is not the name truncated to 20 bytes"
	[[ "$serial2" == vhost.1 ]] || vq_fail "serial of vhost.1 is '$serial2'"
fi
# vda = the first -device (the 2-queue, 512 B disk), vdb = the second.
VQ_QEMU_ARGS=(-chardev "socket,id=c1,path=$sock2" -device "vhost-user-blk-pci,chardev=c1,num-queues=1")

guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'EOF'
. /etc/vtest.sh
vt_wait_path /dev/vdb 10 || vt_fail "/dev/vdb did not appear"
check_disk() {
	local d=$1 serial=$2 bytes=$3 bs=$4 nq=$5 s sz lbs q
	s=$(cat /sys/block/$d/serial)
	sz=$(cat /sys/block/$d/size)
	lbs=$(cat /sys/block/$d/queue/logical_block_size)
	q=$(ls -d /sys/block/$d/mq/* | wc -l)
	echo "VT-ID: $d serial='$s' bytes=$((sz * 512)) lbs=$lbs queues=$q ro=$(cat /sys/block/$d/ro)" \
		"cache='$(cat /sys/block/$d/queue/write_cache)' max_segments=$(cat /sys/block/$d/queue/max_segments)" \
		"discard_max=$(cat /sys/block/$d/queue/discard_max_bytes)" \
		"wz_max=$(cat /sys/block/$d/queue/write_zeroes_max_bytes)"
	if [ -n "$serial" ] && [ "$s" != "$serial" ]; then
		vt_fail "$d serial '$s', expected '$serial'"
	fi
	[ $((sz * 512)) = "$bytes" ] || vt_fail "$d capacity $((sz * 512)), expected $bytes"
	[ "$lbs" = "$bs" ] || vt_fail "$d logical block size $lbs, expected $bs"
	[ "$q" = "$nq" ] || vt_fail "$d has $q queues, expected $nq"
	[ "$(cat /sys/block/$d/ro)" = 0 ] || vt_fail "$d is read-only"
	dd if=/dev/$d of=/dev/null bs=1M count=4 iflag=direct 2>/dev/null || vt_fail "$d read failed"
	# last block: the device must accept I/O up to its capacity, and nothing beyond
	dd if=/dev/$d of=/dev/null bs=$bs skip=$((sz * 512 / bs - 1)) count=1 iflag=direct 2>/dev/null ||
		vt_fail "$d: reading the last block failed"
}
check_disk vda "$VT_SERIAL1" "$VT_BYTES1" 512 "$VT_QUEUES1"
check_disk vdb "$VT_SERIAL2" "$VT_BYTES2" 4096 1
vt_no_io_errors
EOF
vq_boot_guest identity "$guest" VT_SERIAL1="$VQ_SERIAL" VT_BYTES1="$VQ_DISK_BYTES" \
	VT_QUEUES1="$VQ_QUEUES" VT_SERIAL2="$serial2" VT_BYTES2="$bytes2" ||
	vq_fail "guest identity check failed"
vq_guest_output identity VT-ID | sed 's/^/  guest: /' >&2
vq_backend_alive || vq_fail "back-end died"
vq_pass
