#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Per-disk QoS with a real guest: two vhost-user-blk disks on one reactor, fio reading both at
# once; one disk is limited to 1000 IOPS (bdev_set_qos_limit). Passes when
# - the limited disk's fio IOPS are within 15 % of 1000 over 20 s (the 100 ms burst allowance
#   is worth 0.5 %), and its QoS counter shows requests that waited;
# - the other disk, read at the same time, never waited for a limit (its QoS counter stays 0):
#   a limit on one disk does not throttle its neighbour;
# - bdev_get_iostat and vhostd --metrics (Prometheus) count the guest's reads: at least fio's,
#   at most fio's plus what the guest kernel read at boot, and the same number in both.
# A TCG guest does 1-3 k IOPS in all, whatever the back-end, and stalls for whole seconds when
# the host is busy; a token bucket rightly does not let a disk make up for more than its burst
# allowance afterwards. So the 20 s average must not exceed the limit by 15 %, and the lower bound
# is judged on fio's per-second IOPS, against the other disk in the same guest as the control:
# the limited disk's median second must be within 15 % of 1000 unless the guest could not even
# drive the unlimited disk above 1150 IOPS in its median second (then the host was too busy to
# tell: the run is repeated, 3 tries, then skipped).
# vhostd only (bdev_set_qos_limit and --metrics are its own).
. "$(dirname "$0")/lib.sh"
vq_init qos
[[ "$VQ_BACKEND" == vhostd ]] || vq_skip "vhostd only"
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
VQ_VHOSTD_ARGS="--metrics 127.0.0.1:$mport"
vq_backend_start
vq_backend_add_disk vhost.0 64 512 # Malloc0
sock0=$VQ_SOCK
vq_backend_add_disk vhost.1 64 512 # Malloc1
sock1=$VQ_SOCK
VQ_SOCK=$sock0
vq_rpc call bdev_set_qos_limit '{"name": "Malloc0", "rw_ios_per_sec": 1000}' >/dev/null ||
	vq_fail "bdev_set_qos_limit"
# The limited disk (vhost.0, Malloc0) is the first device; vhost.1 (Malloc1) the second.
VQ_QEMU_ARGS=(-chardev "socket,id=c1,path=$sock1"
	-device "vhost-user-blk-pci,chardev=c1,num-queues=$VQ_QUEUES")

guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'EOF2'
. /etc/vtest.sh
vt_wait_path /dev/vdb 15 || vt_fail "/dev/vdb did not appear"
for d in vda vdb; do
	s=$(cat /sys/block/$d/serial 2>/dev/null)
	[ "$s" = vhost.0 ] && lim=$d
	[ "$s" = vhost.1 ] && free=$d
done
[ -n "$lim" ] && [ -n "$free" ] || vt_fail "serials: $(cat /sys/block/vd*/serial)"
cat >/tmp/job.fio <<JOB
[global]
direct=1
ioengine=libaio
iodepth=16
rw=randread
bs=4k
time_based=1
runtime=$VT_RUNTIME
log_avg_msec=1000
[limited]
filename=/dev/$lim
write_iops_log=/tmp/limited
[free]
filename=/dev/$free
write_iops_log=/tmp/free
JOB
fio --minimal /tmp/job.fio >/tmp/fio.out 2>&1 || vt_fail "fio failed: $(head -c 300 /tmp/fio.out)"
# Terse output, one line per job: field 3 the name, 6 KiB read, 8 read IOPS, 9 runtime ms.
awk -F';' 'NF > 9 { printf "QOS: %s %s %s %s\n", $3, $6, $8, $9 }' /tmp/fio.out
# Per-second IOPS of each job (fio's log, one line a second): median and maximum.
for j in limited free; do
	f=$(ls /tmp/${j}_iops*.log | head -n1)
	sort -t, -k2 -n "$f" | awk -F, -v j=$j '{ v[NR] = int($2) } END {
		printf "QOSSEC: %s %d %d %d\n", j, v[int((NR + 1) / 2)], v[NR], NR }'
done
vt_no_io_errors
EOF2
stats() { # bdev -> "num_read_ops qos_throttled_ops"
	vq_rpc call bdev_get_iostat "{\"name\": \"$1\"}" | python3 -c '
import json, sys
b = json.load(sys.stdin)["bdevs"][0]
print(b["num_read_ops"], b["qos_throttled_ops"])'
}
metric() {
	python3 -c 'import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' \
		"http://127.0.0.1:$mport/metrics" | awk -v s="$1" '$1 == s { print $2 }'
}

for try in 1 2 3; do
	vq_rpc call bdev_reset_iostat >/dev/null || vq_fail "bdev_reset_iostat"
	base0=$(metric 'vhostd_bdev_read_ops_total{bdev="Malloc0"}')
	base1=$(metric 'vhostd_bdev_read_ops_total{bdev="Malloc1"}')
	vq_boot_guest "qos$try" "$guest" VT_RUNTIME="${VQ_QOS_RUNTIME:-20}" || vq_fail "guest failed"
	out=$(vq_guest_output "qos$try" QOS)
	sec=$(vq_guest_output "qos$try" QOSSEC)
	echo "$sec" | sed 's/^/  per second (median max samples): /' >&2
	read -r _ lmed lmax _ < <(echo "$sec" | grep '^limited ')
	read -r _ fmed _ _ < <(echo "$sec" | grep '^free ')
	[[ -n "$lmed" && -n "$fmed" ]] || vq_fail "no per-second fio results from the guest"
	echo "$out" | sed 's/^/  fio: /' >&2
	read -r _ lkib liops _ < <(echo "$out" | grep '^limited ')
	read -r _ fkib fiops _ < <(echo "$out" | grep '^free ')
	[[ -n "$liops" && -n "$fiops" ]] || vq_fail "no fio results from the guest"
	vq_log "limited disk: $liops IOPS, other disk: $fiops IOPS (limit 1000)"
	((liops <= 1150)) || vq_fail "limited disk at $liops IOPS: more than 15 % over 1000"

	# Counting: fio's reads (KiB / 4) against the bdev's, over RPC and over Prometheus (raw
	# counters, so the difference from before this boot).
	for pair in "Malloc0 $lkib $base0" "Malloc1 $fkib $base1"; do
		read -r bdev kib base <<<"$pair"
		read -r reads throttled < <(stats "$bdev")
		prom=$(metric "vhostd_bdev_read_ops_total{bdev=\"$bdev\"}")
		fio_reads=$((kib / 4))
		vq_log "$bdev: fio read $fio_reads, bdev_get_iostat $reads (waited: $throttled)," \
			"/metrics +$((prom - base))"
		((reads >= fio_reads && reads <= fio_reads + 200)) ||
			vq_fail "$bdev: $reads reads counted, fio did $fio_reads"
		((prom - base == reads)) || vq_fail "$bdev: /metrics counted $((prom - base)), bdev_get_iostat $reads"
	done
	read -r _ throttled1 < <(stats Malloc1)
	((throttled1 == 0)) || vq_fail "the unlimited disk waited $throttled1 times"
	read -r reads0 throttled0 < <(stats Malloc0)
	((throttled0 > 0)) || vq_fail "the limited disk never waited for its limit"
	((lmax <= 1150)) || vq_fail "limited disk at $lmax IOPS in its fastest second"
	if ((lmed >= 850 && lmed <= 1150)); then
		vq_log "limited disk's median second: $lmed IOPS; its neighbour's: $fmed IOPS" \
			"($throttled0 of $reads0 limited reads waited)"
		vq_backend_alive || vq_fail "vhostd died"
		vq_backend_log_errors
		vq_pass
	fi
	if ((fmed > 1150)); then
		vq_fail "limited disk's median second at $lmed IOPS while the guest drove the other" \
			"disk at $fmed: the limiter held it below its limit"
	fi
	vq_log "median seconds: limited $lmed, unlimited $fmed IOPS: the guest could not drive" \
		"even the unlimited disk past the limit, the host is too busy to tell (try $try)"
done
vq_skip "the guest never ran fast enough to reach the limit"
