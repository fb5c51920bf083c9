#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Filesystem on top: mke2fs -t ext4 (which discards the device first), mount, write files,
# unmount, remount, verify checksums, e2fsck -fn is clean.
. "$(dirname "$0")/lib.sh"
vq_init ext4
vq_backend_start
vq_backend_add_disk vhost.0 64 512

guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'EOF'
. /etc/vtest.sh
mke2fs -q -F -t ext4 /dev/vda || vt_fail "mke2fs failed"
mount -t ext4 /dev/vda /mnt || vt_fail "mount failed"
dd if=/dev/urandom of=/mnt/big bs=1M count=12 2>/dev/null || vt_fail "writing /mnt/big failed"
i=0
while [ $i -lt 200 ]; do echo "file $i $(seq $i)" >/mnt/f$i; i=$((i + 1)); done
sum1=$(cat /mnt/big /mnt/f* | sha256sum)
sync
umount /mnt || vt_fail "umount failed"
echo 3 >/proc/sys/vm/drop_caches
e2fsck -fn /dev/vda >/tmp/fsck.out 2>&1 || { cat /tmp/fsck.out; vt_fail "e2fsck found problems"; }
mount -t ext4 /dev/vda /mnt || vt_fail "remount failed"
sum2=$(cat /mnt/big /mnt/f* | sha256sum)
[ "$sum1" = "$sum2" ] || vt_fail "file contents changed across umount/mount"
umount /mnt
vt_no_io_errors
EOF
vq_boot_guest ext4 "$guest" || vq_fail "guest ext4 check failed"
vq_backend_alive || vq_fail "back-end died"
vq_pass
