#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Live upgrade with a user-space NVMe controller (docs/design.md, "Live upgrade by hand-over":
# the controller is detached from the old worker and attached by the new one inside the freeze).
# Inside a TCG guest with QEMU's emulated NVMe (uio_pci_generic), `vhostd --supervise` runs from
# a binary installed under /tmp/inst with a config that attaches Nvme0 and puts a vhost-blk
# controller on Nvme0n1; nvme-client (a vhost-user-blk initiator) is connected throughout.
#
#   1. a pattern is written, one upgrade (vhostd_upgrade RPC), the pattern reads back;
#   2. nvme-client runs verified random I/O (every write read back and compared) while
#      NV_UPGRADES (default 5) more upgrades alternate between vhostd and vhostd-alt, and two
#      candidates fail after they took the device (VHOSTD_TEST_UPGRADE_FAULT): one crashes, one
#      hangs until the old worker's 10 s phase limit (VHOSTD_UPGRADE_TIMEOUT_MS) and is killed;
#      each time the old worker must take the device back, re-enable the controller and serve on;
#   3. after each upgrade: exactly one worker, a new pid, the controller enabled; a plain second
#      vhostd (not an upgrade) still cannot open the device.
# Prints each upgrade's longest queue pause (max_pause_ms of the vhostd_upgrade result), which
# includes one controller shutdown and one controller bring-up.
# Env: NV_UPGRADES (5), NV_SECONDS (nvme-client's verify run; default 8 s per upgrade + 40),
# NV_MODE (uio, or vfio: behind an emulated intel-iommu as in test-nvme-vfio.sh; skips when the
# guest has no working IOMMU under TCG).
. "$(dirname "$0")/nvme-lib.sh"
mode=${NV_MODE:-uio}
case "$mode" in
uio) ;;
vfio)
	# shellcheck disable=SC2034,SC2054 # nv_boot (nvme-lib.sh) reads it; the commas are QEMU's
	NV_MACHINE_ARGS=(-machine q35,kernel-irqchip=split -device intel-iommu,aw-bits=48)
	VQ_APPEND="intel_iommu=on ${VQ_APPEND:-}"
	;;
*) echo "NV_MODE must be uio or vfio" >&2; exit 2 ;;
esac
nv_init "nvme-upgrade-$mode"

alt=${VHOSTD_ALT:-$(dirname "$VHOSTD")/vhostd-alt}
[[ -x "$alt" ]] || vq_skip "vhostd-alt not built (set VHOSTD_ALT)"
# vhostd-alt (another version string, fault hooks) joins the guest's extra archive; it needs
# the same libraries as vhostd, which the archive has. Concatenated cpio archives are one tree.
alt_root="$VQ_TMP/alt-root"
mkdir -p "$alt_root/opt/vhostd/bin"
cp -L "$alt" "$alt_root/opt/vhostd/bin/vhostd-alt"
(cd "$alt_root" && find . -mindepth 1 | sort | cpio -o -H newc --quiet -R 0:0) | gzip -6 >>"$NV_EXTRA" ||
	vq_fail "cannot add vhostd-alt to the guest archive"

upgrades=${NV_UPGRADES:-5}
seconds=${NV_SECONDS:-$((upgrades * 8 + 40))}
guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'EOF'
. /etc/vtest.sh
. /etc/vtest-nvme.sh
nv_load $VT_MODE || nv_skip "the guest kernel cannot load the $VT_MODE modules"
nv_huge 64 || vt_fail "cannot reserve huge pages"
BDF=$(nv_bdf) || vt_fail "no NVMe controller in the guest"
if [ $VT_MODE = vfio ] && [ ! -e /sys/bus/pci/devices/$BDF/iommu_group ]; then
	nv_skip "no IOMMU group for $BDF under TCG (intel-iommu not active in the guest)"
fi
mkdir -p $NV_DIR /tmp/inst
INST=/tmp/inst/vhostd
cp /opt/vhostd/bin/vhostd /tmp/inst/build-0
cp /opt/vhostd/bin/vhostd-alt /tmp/inst/build-1
install_file() { cp "$1" $INST.new && chmod 0755 $INST.new && mv -f $INST.new $INST; }
install_script() { printf '#!/bin/sh\n%s\n' "$1" >$INST.new && chmod 0755 $INST.new && mv -f $INST.new $INST; }
CONF=$NV_DIR/vhostd.json
cat >$CONF <<JSON
{"subsystems": [
  {"subsystem": "bdev", "config": [
    {"method": "bdev_nvme_attach_controller", "params": {"name": "Nvme0", "trtype": "PCIe", "traddr": "$BDF", "mode": "$VT_MODE"}}]},
  {"subsystem": "vhost_blk", "config": [
    {"method": "vhost_create_blk_controller", "params": {"ctrlr": "vhost.0", "dev_name": "Nvme0n1", "cpumask": "0x1"}}]}
]}
JSON
cp $CONF $CONF.orig
cur=0
install_file /tmp/inst/build-$cur
# 10 s per phase: a hung candidate costs the guest's I/O 10 s (nvme-client allows 20 s).
VHOSTD_UPGRADE_TIMEOUT_MS=10000 $INST --supervise -m 0x1 -S $NV_DIR -r $NV_RPC -c $CONF -L info </dev/null >>$NV_LOG 2>&1 &
SUP=$!
i=0
until [ -S $NV_RPC ] && nv_rpc spdk_get_version >/dev/null 2>&1; do
	kill -0 $SUP 2>/dev/null || nv_fail "the supervisor exited"
	i=$((i + 1))
	[ $i -gt 300 ] && nv_fail "vhostd did not come up"
	usleep 100000
done
workers() { echo $(cat /proc/$SUP/task/$SUP/children 2>/dev/null); }
one_worker_not() { w=$(workers); [ -n "$w" ] && [ "$w" = "${w% *}" ] && [ "$w" != "$1" ]; }
only_worker() { [ "$(workers)" = "$1" ]; }
wait_for() { # WHAT TENTHS CMD...: poll CMD every 100 ms for TENTHS tenths of a second
	local what=$1 n=$2 i=0
	shift 2
	until "$@"; do
		i=$((i + 1))
		[ $i -gt $n ] && { vt_log "timed out waiting for $what"; return 1; }
		usleep 100000
	done
}
nvme_state() { nv_rpc bdev_nvme_get_controllers | sed -n 's/.*"state": *"\([^"]*\)".*/\1/p' | head -n1; }
S=$NV_DIR/vhost.0
[ "$(nvme_state)" = enabled ] || nv_fail "Nvme0 is not enabled after the config replay: $(nvme_state)"
vt_log "vhostd --supervise up, worker $(workers), Nvme0 at $BDF ($VT_MODE)"

PAUSES=""
upgrade() { # N
	local old new next out pause
	old=$(workers)
	next=$((1 - cur))
	install_file /tmp/inst/build-$next
	cp $CONF.orig $CONF
	out=$(nv_rpc -t 90 call vhostd_upgrade 2>&1) || nv_fail "upgrade $1: vhostd_upgrade failed: $out"
	pause=$(echo "$out" | tr -d '\n' | sed -n 's/.*"max_pause_ms": *\([0-9.e+-]*\).*/\1/p')
	wait_for "upgrade $1 to finish" 300 one_worker_not "$old" ||
		nv_fail "upgrade $1: workers now '$(workers)', old $old"
	new=$(workers)
	[ "$(nvme_state)" = enabled ] || nv_fail "upgrade $1: Nvme0 is '$(nvme_state)' in the new worker"
	echo "NVME-PAUSE: upgrade $1: worker $old -> $new, max_pause_ms $pause"
	PAUSES="$PAUSES $pause"
	cur=$next
}
refused() { # FAULT WHAT: a candidate that fails after it took the device; the old worker takes it back
	local old out nback
	old=$(workers)
	nback=$(grep -c "took .* back and re-enabled it" $NV_LOG)
	install_script "VHOSTD_TEST_UPGRADE_FAULT=$1 exec /tmp/inst/build-1 \"\$@\""
	cp $CONF.orig $CONF
	if out=$(nv_rpc -t 90 call vhostd_upgrade 2>&1); then
		nv_fail "a candidate that $2 after taking the device upgraded: $out"
	fi
	wait_for "the failed candidate to go" 300 only_worker "$old" ||
		nv_fail "after the candidate that $2: workers '$(workers)', old $old"
	[ "$(grep -c "took .* back and re-enabled it" $NV_LOG)" -gt "$nback" ] ||
		nv_fail "the old worker did not take the device back"
	[ "$(nvme_state)" = enabled ] || nv_fail "Nvme0 is '$(nvme_state)' after the rollback"
	echo "NVME-PAUSE: candidate that $2: worker $old serves on ($(echo "$out" | tr -d '\n' | cut -c1-160))"
	install_file /tmp/inst/build-$cur
}

# 1. Data written before an upgrade reads back after it.
nvme-client --socket $S --size 8 --gen 41 fill || nv_fail "fill failed"
upgrade 1
nvme-client --socket $S --size 8 --gen 41 check || nv_fail "pattern lost across the upgrade"

# 2. Verified I/O across the upgrades and one rollback.
nvme-client --socket $S --size 16 --seconds $VT_SECONDS --seed 17 verify >/tmp/verify.out 2>&1 &
VPID=$!
sleep 2
n=2
while [ $n -le $VT_UPGRADES ]; do
	upgrade $n
	[ $n -eq 2 ] && refused ready:hang "hangs"
	[ $n -eq $((VT_UPGRADES / 2 + 1)) ] && refused nvme:crash "crashes"
	kill -0 $VPID 2>/dev/null || { cat /tmp/verify.out; nv_fail "nvme-client ended before upgrade $n was done (raise NV_SECONDS)"; }
	sleep 1
	n=$((n + 1))
done
wait $VPID
rc=$?
cat /tmp/verify.out
[ $rc -eq 0 ] || nv_fail "nvme-client verify across the upgrades failed ($rc)"

# 3. A second vhostd that is not an upgrade still cannot open the device.
mkdir -p /tmp/second
vhostd -m 0x1 -S /tmp/second -r /tmp/second/rpc.sock -L info </dev/null >/tmp/second/log 2>&1 &
P2=$!
wait_for "the second vhostd" 300 vhostctl -s /tmp/second/rpc.sock spdk_get_version || nv_fail "second vhostd did not start"
if vhostctl -s /tmp/second/rpc.sock bdev_nvme_attach_controller -b Nvme9 -t PCIe -a $BDF --mode $VT_MODE 2>/tmp/second/err; then
	nv_fail "a second vhostd attached the device the worker holds"
fi
vt_log "second opener refused: $(cat /tmp/second/err)"
kill -TERM $P2
wait $P2
[ "$(nvme_state)" = enabled ] || nv_fail "Nvme0 is '$(nvme_state)' after the second opener"
nvme-client --socket $S --size 8 --seconds 2 --seed 18 verify || nv_fail "verify after the second opener failed"
kill -TERM $SUP
wait_for "the supervisor to exit" 300 eval '! kill -0 $SUP 2>/dev/null' || nv_fail "the supervisor did not exit"
grep -iE "AddressSanitizer|runtime error" $NV_LOG && nv_fail "sanitizer report in the vhostd log"
# What the pauses are made of: the old worker's shutdown+release, the new one's bring-up.
grep -E "released for the new worker|took over .* from the old worker|taken back" $NV_LOG |
	sed 's/^/NVME-STEP: /'
[ "$(grep -c "took over .* from the old worker" $NV_LOG)" -ge "$VT_UPGRADES" ] ||
	nv_fail "fewer NVMe take-overs logged than upgrades"
dmesg | grep -iE 'DMAR.*fault|DMAR:.*\[DMA' && vt_fail "the IOMMU logged DMA faults"
echo "NVME-RESULT: $VT_MODE: $VT_UPGRADES upgrades + 2 failed candidates under verified NVMe I/O; max_pause_ms:$PAUSES"
EOF
nv_boot upgrade "$guest" VT_SECONDS="$seconds" VT_UPGRADES="$upgrades" VT_MODE="$mode" || vq_fail "guest NVMe live upgrade test failed"
vq_guest_output upgrade NVME-PAUSE >&2
vq_guest_output upgrade NVME-STEP >&2
vq_guest_output upgrade NVME-RESULT >&2
vq_pass
