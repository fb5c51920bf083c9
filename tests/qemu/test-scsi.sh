#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# vhost-user-scsi with a real QEMU 7.2 guest (Linux 6.1 virtio_scsi + sd), one boot:
# - two targets appear as SCSI disks with the right capacity and block size, distinct unit
#   serial numbers (VPD 80h) and distinct NAA identifiers (VPD 83h, /sys/.../wwid);
# - sg3_utils: sg_inq, sg_vpd -p bl (UNMAP limits), sg_vpd -p lbpv (LBPU), sg_readcap -l,
#   sg_luns answer what vhostd says;
# - fio randrw with crc32c verify on target 0, blkdiscard reads back as zeroes (RAM disk),
#   ext4 (mkfs, files, fsck) on target 1;
# - hot-plug while the guest runs: target 1 removed (its disk goes away), target 2 added (a new
#   disk appears with its size and serial, and takes I/O); the removed bdev is released on the
#   host (deletable).
# vhostd only (qemu-storage-daemon has no vhost-user-scsi export).
. "$(dirname "$0")/lib.sh"
vq_init scsi
[[ "$VQ_BACKEND" == vhostd ]] || vq_skip "vhost-user-scsi is a vhostd back-end"

vq_backend_start
vq_rpc vhost_create_scsi_controller --cpumask 0x1 scsi0 >/dev/null ||
	vq_fail "vhost_create_scsi_controller failed"
vq_rpc bdev_malloc_create -b Malloc0 64 512 >/dev/null || vq_fail "bdev_malloc_create 0"
vq_rpc bdev_malloc_create -b Malloc1 32 4096 >/dev/null || vq_fail "bdev_malloc_create 1"
[[ "$(vq_rpc vhost_scsi_controller_add_target scsi0 0 Malloc0)" == 0 ]] || vq_fail "add target 0"
[[ "$(vq_rpc vhost_scsi_controller_add_target scsi0 -1 Malloc1)" == 1 ]] ||
	vq_fail "add target -1 did not pick 1"
sock="$VQ_SOCKDIR/scsi0"
vq_wait_for "socket $sock" 10 test -S "$sock" || vq_fail "controller socket missing"
VQ_QEMU_ARGS=(-chardev "socket,id=c0,path=$sock"
	-device "vhost-user-scsi-pci,chardev=c0,num_queues=$VQ_QUEUES")

guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'EOF'
. /etc/vtest.sh
# The disk of target T (LUN 0), from sysfs: sd names follow probe order, not target numbers.
disk_of() {
	ls /sys/bus/scsi/devices/0:0:$1:0/block 2>/dev/null | head -n1
}
wait_disk() {
	local i=0
	while [ -z "$(disk_of $1)" ]; do
		i=$((i + 1))
		[ $i -gt 300 ] && return 1
		usleep 100000
	done
}
check_disk() {
	local t=$1 bytes=$2 bs=$3 serial=$4 d sz lbs
	d=$(disk_of $t)
	sz=$(cat /sys/block/$d/size)
	lbs=$(cat /sys/block/$d/queue/logical_block_size)
	echo "VT-SCSI: target $t = $d bytes=$((sz * 512)) lbs=$lbs wwid=$(cat /sys/block/$d/device/wwid)" \
		"cache='$(cat /sys/block/$d/queue/write_cache)'" \
		"discard_max=$(cat /sys/block/$d/queue/discard_max_bytes)"
	[ $((sz * 512)) = "$bytes" ] || vt_fail "target $t: capacity $((sz * 512)), expected $bytes"
	[ "$lbs" = "$bs" ] || vt_fail "target $t: logical block size $lbs, expected $bs"
	sg_vpd -p sn /dev/$d >/tmp/sn || vt_fail "sg_vpd -p sn /dev/$d"
	grep -q "Unit serial number: $serial\$" /tmp/sn || vt_fail "target $t serial: $(cat /tmp/sn)"
}
wait_disk 0 || vt_fail "target 0 did not appear"
wait_disk 1 || vt_fail "target 1 did not appear"
check_disk 0 "$VT_BYTES0" 512 Malloc0
check_disk 1 "$VT_BYTES1" 4096 Malloc1
a=$(disk_of 0)
b=$(disk_of 1)
[ "$(cat /sys/block/$a/device/wwid)" != "$(cat /sys/block/$b/device/wwid)" ] ||
	vt_fail "both targets have the same identifier"
case "$(cat /sys/block/$a/device/wwid)" in
naa.3*) ;;
*) vt_fail "wwid is not our NAA identifier: $(cat /sys/block/$a/device/wwid)" ;;
esac

# sg3_utils: what a storage admin runs.
sg_inq /dev/$a >/tmp/o || vt_fail "sg_inq"
grep -q "Vendor identification: VHOSTD" /tmp/o || vt_fail "sg_inq vendor: $(cat /tmp/o)"
grep -q "Product identification: vhostd scsi disk" /tmp/o || vt_fail "sg_inq product"
sg_vpd -p di /dev/$a >/tmp/o || vt_fail "sg_vpd -p di"
grep -q "designator type: NAA" /tmp/o && grep -Eq "0x3[0-9a-f]{15}" /tmp/o ||
	vt_fail "sg_vpd -p di: no NAA 3 designator: $(cat /tmp/o)"
sg_vpd -p bl /dev/$a >/tmp/o || vt_fail "sg_vpd -p bl"
grep -Eq "Maximum unmap LBA count: [1-9]" /tmp/o || vt_fail "block limits: $(cat /tmp/o)"
grep -Eq "Maximum unmap block descriptor count: [1-9]" /tmp/o || vt_fail "block limits descriptors"
sg_vpd -p lbpv /dev/$a >/tmp/o || vt_fail "sg_vpd -p lbpv"
grep -q "Unmap command supported (LBPU): 1" /tmp/o || vt_fail "lbpv: $(cat /tmp/o)"
sg_readcap -l /dev/$b >/tmp/o || vt_fail "sg_readcap -l"
grep -q "Last LBA=$((VT_BYTES1 / 4096 - 1))" /tmp/o || vt_fail "sg_readcap: $(cat /tmp/o)"
grep -q "Logical block length=4096 bytes" /tmp/o || vt_fail "sg_readcap block length"
grep -q "Logical block provisioning: lbpme=1" /tmp/o || vt_fail "sg_readcap lbpme"
sg_luns /dev/$a >/tmp/o || vt_fail "sg_luns"
grep -q "Lun list length = 8" /tmp/o || vt_fail "sg_luns: $(cat /tmp/o)"
echo "VT-SCSI: sg3_utils ok"

# Verified random I/O on target 0 (two jobs: commands on both request queues).
fio --name=v --filename=/dev/$a --direct=1 --ioengine=psync --rw=randrw --bsrange=4k-64k \
	--size=24M --numjobs=2 --offset_increment=24M --verify=crc32c --verify_fatal=1 \
	--do_verify=1 --group_reporting >/tmp/fio.out 2>&1 || { tail -n 20 /tmp/fio.out; vt_fail "fio verify"; }
echo "VT-SCSI: fio $(grep -Eo 'IOPS=[0-9.k]+' /tmp/fio.out | head -n2 | tr '\n' ' ')"

# Discard: written data reads back as zeroes after blkdiscard (RAM disk).
dd if=/dev/urandom of=/dev/$a bs=1M seek=50 count=8 oflag=direct 2>/dev/null || vt_fail "dd"
vt_is_zero /dev/$a 50 8 && vt_fail "random data read back as zeroes"
blkdiscard -o $((50 << 20)) -l $((8 << 20)) /dev/$a || vt_fail "blkdiscard"
vt_is_zero /dev/$a 50 8 || vt_fail "discarded range does not read back as zeroes"
echo "VT-SCSI: discard ok"

# ext4 on target 1.
mke2fs -q -F -t ext4 /dev/$b || vt_fail "mke2fs"
mount -t ext4 /dev/$b /mnt || vt_fail "mount"
i=0
while [ $i -lt 20 ]; do
	dd if=/dev/urandom of=/mnt/f$i bs=64k count=8 2>/dev/null || vt_fail "write f$i"
	i=$((i + 1))
done
sha256sum /mnt/f* >/tmp/sums
umount /mnt || vt_fail "umount"
mount -t ext4 /dev/$b /mnt || vt_fail "remount"
sha256sum -c /tmp/sums >/dev/null || vt_fail "ext4 files changed"
umount /mnt
e2fsck -fn /dev/$b >/tmp/o 2>&1 || { cat /tmp/o; vt_fail "e2fsck"; }
echo "VT-SCSI: ext4 ok"
vt_no_io_errors

# Hot-plug: the host removes target 1 and adds target 2 while we run.
echo "VT-SCSI-HOTPLUG"
i=0
while [ -e /sys/bus/scsi/devices/0:0:1:0 ] || [ -z "$(disk_of 2)" ]; do
	i=$((i + 1))
	[ $i -gt 600 ] && vt_fail "hot-plug not seen: $(ls /sys/bus/scsi/devices)"
	usleep 100000
done
check_disk 2 "$VT_BYTES2" 512 Malloc2
c=$(disk_of 2)
dd if=/dev/urandom of=/tmp/blk bs=1M count=2 2>/dev/null
dd if=/tmp/blk of=/dev/$c bs=1M seek=10 count=2 oflag=direct 2>/dev/null || vt_fail "write new disk"
[ "$(vt_sum /dev/$c 10 2)" = "$(sha256sum </tmp/blk | cut -d' ' -f1)" ] ||
	vt_fail "new disk read back differs"
echo "VT-SCSI: hot-plug ok (target 1 gone, target 2 is $c)"
# Removal sends SYNCHRONIZE CACHE to the vanished target (BAD_TARGET): no data I/O may fail.
vt_no_io_errors
EOF

log="$VQ_TMP/scsi.log"
initrd="$VQ_TMP/scsi.initrd"
vq_make_initrd "$initrd" "$guest" VT_NEED_DISK=0 VT_BYTES0=$((64 << 20)) VT_BYTES1=$((32 << 20)) \
	VT_BYTES2=$((48 << 20))
vq_log "booting guest 'scsi' (num_queues=$VQ_QUEUES smp=$VQ_SMP)"
vq_qemu_start "$log" "$initrd"
vq_wait_for "the guest to reach the hot-plug step" 240 grep -aq VT-SCSI-HOTPLUG "$log" ||
	vq_fail "guest never reached the hot-plug step: $(grep -a 'vtest' "$log" | tail -n 5)"
vq_rpc vhost_scsi_controller_remove_target scsi0 1 >/dev/null || vq_fail "remove target 1"
vq_rpc bdev_malloc_create -b Malloc2 48 512 >/dev/null || vq_fail "bdev_malloc_create 2"
[[ "$(vq_rpc vhost_scsi_controller_add_target scsi0 2 Malloc2)" == 2 ]] || vq_fail "add target 2"
vq_log "target 1 removed, target 2 added"
vq_qemu_wait
rc=$?
res=$(vq_result "$log")
rrc=$?
vq_log "guest 'scsi': $res (qemu rc $rc, wall $((SECONDS - VQ_QEMU_T0))s)"
grep -a '^VT-SCSI: ' "$log" | tr -d '\r' | sed 's/^/  guest: /' >&2
if [[ $rrc -ne 0 || $rc -ne 0 ]]; then
	tail -n 40 "$log" >&2
	vq_fail "guest checks failed"
fi
# The removed target's bdev is free again: the removal completed on the host too.
vq_wait_for "Malloc1 to be released" 10 vq_rpc bdev_malloc_delete Malloc1 ||
	vq_fail "Malloc1 still claimed after the removal"
vq_rpc vhost_get_controllers -n scsi0 | grep -q '"Malloc2"' || vq_fail "target 2 not listed"
vq_backend_alive || vq_fail "back-end died"
vq_backend_log_errors
vq_pass
