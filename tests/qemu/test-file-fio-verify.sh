#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# A file-backed disk (bdev_uring_create on a sparse file in the temp dir):
#   boot 1: fio randrw with verify=crc32c on the first 48 MiB (two jobs, both queues), then
#           16 MiB of random data at 48 MiB, synced, and its sha256 printed;
#   host:   the same range of the image file has the same sha256 (the data reached the file);
#   restart: vhostd is stopped (SIGTERM) and a new one serves the same file;
#   boot 2: the range still has that sha256.
# vhostd only (skips with the qsd back-end). Env: VQ_FIO_RUNTIME (s, default 15),
# VQ_FILE_METHOD (bdev_uring_create | bdev_aio_create), VQ_FILE_DIR (where the image lives,
# default the temp dir; test-file-tmpfs.sh puts it on /dev/shm, where the bdev copies inline),
# VQ_FILE_EXPECT_FIXED=1 (test-file-huge.sh: the requests must have used fixed buffers).
. "$(dirname "$0")/lib.sh"
vq_init file-fio-verify
[[ "$VQ_BACKEND" == vhostd ]] || vq_skip "file bdevs are a vhostd feature"
method=${VQ_FILE_METHOD:-bdev_uring_create}

# file_disk FILE: bdev f0 on FILE and controller vhost.0 on it.
file_disk() {
	vq_rpc call "$method" "{\"name\": \"f0\", \"filename\": \"$1\"}" >/dev/null ||
		vq_fail "$method failed"
	vq_rpc vhost_create_blk_controller --cpumask 0x1 vhost.0 f0 >/dev/null ||
		vq_fail "vhost_create_blk_controller failed"
	VQ_SOCK="$VQ_SOCKDIR/vhost.0"
	vq_wait_for "socket $VQ_SOCK" 10 test -S "$VQ_SOCK" || vq_fail "controller socket missing"
	vq_log "$method: $(vq_rpc bdev_get_bdevs -b f0 | tr -d ' \n' |
		grep -oE '"(io_mode|inline_io)":("[a-z]*"|true|false)' | tr '\n' ' ')"
}

if [[ -n "${VQ_FILE_DIR:-}" ]]; then
	imgdir=$(mktemp -d "$VQ_FILE_DIR/vq-file.XXXXXX") || vq_fail "cannot use $VQ_FILE_DIR"
	VQ_EXTRA_RM+=("$imgdir")
	img="$imgdir/disk.img"
else
	img="$VQ_TMP/disk.img"
fi
truncate -s 64M "$img"
vq_backend_start
file_disk "$img"

guest1="$VQ_TMP/guest1.sh"
cat >"$guest1" <<'EOF'
. /etc/vtest.sh
cat >/tmp/job.fio <<JOB
[global]
filename=/dev/vda
direct=1
ioengine=libaio
iodepth=32
rw=randrw
bsrange=4k-64k
verify=crc32c
verify_backlog=1024
verify_fatal=1
time_based=1
runtime=$VT_RUNTIME
size=24M
offset_increment=24M
numjobs=2
cpus_allowed=0-1
cpus_allowed_policy=split
group_reporting=1
[vtest]
JOB
fio /tmp/job.fio >/tmp/fio.out 2>&1
rc=$?
cat /tmp/fio.out
[ $rc -eq 0 ] || vt_fail "fio exited with $rc: $(grep -m1 -iE 'verify|error|err=' /tmp/fio.out)"
grep -q 'err= 0' /tmp/fio.out || vt_fail "fio reported an error"
dd if=/dev/urandom of=/tmp/rand bs=1M count=16 2>/dev/null
dd if=/tmp/rand of=/dev/vda bs=1M seek=48 count=16 oflag=direct 2>/dev/null || vt_fail "dd write"
sync
sum=$(vt_sum /dev/vda 48 16)
[ "$sum" = "$(sha256sum </tmp/rand | cut -d' ' -f1)" ] || vt_fail "read back differs"
echo "SUM: $sum"
vt_no_io_errors
EOF
vq_boot_guest boot1 "$guest1" VT_RUNTIME="${VQ_FIO_RUNTIME:-15}" || vq_fail "boot 1 (fio verify) failed"
grep -a -E '^ *(read|write):' "$VQ_TMP/boot1.log" | sed 's/^/  fio: /' >&2
sum=$(vq_guest_output boot1 SUM)
[[ -n "$sum" ]] || vq_fail "boot 1 printed no checksum"
host_sum=$(dd if="$img" bs=1M skip=48 count=16 2>/dev/null | sha256sum | cut -d' ' -f1)
[[ "$host_sum" == "$sum" ]] || vq_fail "image file sha256 $host_sum, guest wrote $sum"
vq_log "image file holds what the guest wrote ($sum)"
if [[ "${VQ_FILE_EXPECT_FIXED:-0}" == 1 ]]; then
	fixed=$(vq_rpc bdev_get_bdevs -b f0 | tr -d ' \n' | grep -o '"fixed_buffer_ios":[0-9]*' |
		cut -d: -f2)
	[[ "${fixed:-0}" -gt 0 ]] || vq_fail "no request used an io_uring fixed buffer"
	vq_log "$fixed requests used io_uring fixed buffers (guest RAM on huge pages)"
fi

vq_stop "$VQ_DAEMON_PID" vhostd 10 || vq_fail "vhostd did not exit cleanly on SIGTERM"
vq_untrack "$VQ_DAEMON_PID"
rm -f "$VQ_RPC"
vq_backend_start
file_disk "$img"

guest2="$VQ_TMP/guest2.sh"
cat >"$guest2" <<'EOF'
. /etc/vtest.sh
sum=$(vt_sum /dev/vda 48 16)
vt_log "sum after restart: $sum"
[ "$sum" = "$VT_SUM" ] || vt_fail "data changed across the restart: $sum != $VT_SUM"
vt_no_io_errors
EOF
vq_boot_guest boot2 "$guest2" VT_SUM="$sum" || vq_fail "boot 2 (after restart) failed"
vq_backend_alive || vq_fail "back-end died"
vq_backend_log_errors
vq_pass
