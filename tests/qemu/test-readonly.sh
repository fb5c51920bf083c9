#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# A read-only controller (vhost_create_blk_controller -r; qsd writable=off): the guest sees
# /sys/block/vda/ro = 1, reads work, and writes and discards fail.
. "$(dirname "$0")/lib.sh"
vq_init readonly
vq_backend_start
vq_backend_add_disk vhost.ro 64 512 ro

guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'EOF'
. /etc/vtest.sh
ro=$(cat /sys/block/vda/ro)
vt_log "ro=$ro"
[ "$ro" = 1 ] || vt_fail "/sys/block/vda/ro is $ro, expected 1"
dd if=/dev/vda of=/dev/null bs=1M count=8 iflag=direct 2>/dev/null || vt_fail "read from the read-only disk failed"
if dd if=/dev/zero of=/dev/vda bs=4096 count=1 oflag=direct 2>/tmp/err; then
	vt_fail "a write to the read-only disk succeeded"
fi
vt_log "write refused: $(tail -n1 /tmp/err)"
if blkdiscard -o 0 -l 1048576 /dev/vda 2>/tmp/err; then
	vt_fail "a discard on the read-only disk succeeded"
fi
vt_log "discard refused: $(tail -n1 /tmp/err)"
if fio --name=w --filename=/dev/vda --rw=write --bs=4k --size=1M --direct=1 >/tmp/fio.out 2>&1; then
	vt_fail "fio wrote to the read-only disk"
fi
EOF
vq_boot_guest readonly "$guest" || vq_fail "guest read-only check failed"
vq_backend_alive || vq_fail "back-end died"
vq_pass
