#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Ring options the default tests do not exercise, on one daemon and controller, two boots:
#   big:   queue-size=1024 and fio at iodepth 256 per queue.  SeaBIOS drives the disk first
#          with a smaller ring (256) than the size QEMU announces in GET_INFLIGHT_FD (1024),
#          then Linux uses all 1024 entries: a ring may be smaller than the inflight region.
#   plain: event_idx=off,indirect_desc=off: plain descriptor chains, flag-based notification.
# Both boots always run; the test fails if either fails.
. "$(dirname "$0")/lib.sh"
vq_init ring-options
vq_backend_start
vq_backend_add_disk vhost.0 64 512
VQ_GUEST_TIMEOUT=${VQ_GUEST_TIMEOUT_RING:-75}

guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'EOF'
. /etc/vtest.sh
vt_log "nr_requests=$(cat /sys/block/vda/queue/nr_requests) max_segments=$(cat /sys/block/vda/queue/max_segments)"
fio --filename=/dev/vda --direct=1 --ioengine=libaio --rw=randrw --bsrange=4k-128k \
	--iodepth="$VT_IODEPTH" --size=32M --verify=crc32c --verify_backlog=1024 --verify_fatal=1 \
	--time_based=1 --runtime=8 --group_reporting=1 \
	--name=q0 --offset=0 --cpus_allowed=0 --name=q1 --offset=32M --cpus_allowed=1 >/tmp/fio.out 2>&1
rc=$?
grep -E 'err=|IOPS' /tmp/fio.out
[ $rc -eq 0 ] || { cat /tmp/fio.out; vt_fail "fio exited with $rc"; }
vt_no_io_errors
EOF
failed=()
VQ_QUEUE_SIZE=1024 vq_boot_guest big "$guest" VT_IODEPTH=256 || failed+=("queue-size=1024")
vq_backend_alive || vq_fail "back-end died"
VQ_BLK_OPTS=",event_idx=off,indirect_desc=off" vq_boot_guest plain "$guest" VT_IODEPTH=32 ||
	failed+=("event_idx=off,indirect_desc=off")
vq_backend_alive || vq_fail "back-end died"
[[ ${#failed[@]} -eq 0 ]] || vq_fail "failed with: ${failed[*]}"
vq_pass
