#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# libvirt 9.0 (Debian 12) runs a guest on a vhostd disk as a stock install does: QEMU as the
# libvirt-qemu user, connecting to the controller socket through the vhostd group
# (vhostd -g vhostd; contrib/sysusers.d/vhostd.conf), the RPC socket kept 0600
# (--rpc-group -). The domain is contrib/libvirt/vhostd-domain.xml with only what a test must
# change (TCG, kernel boot, file serial, paths): <disk type='vhostuser'> with
# <reconnect enabled='yes' timeout='1'/> and shared memfd memory backing, as shipped.
# Passes when virsh defines and starts the TCG domain, QEMU runs as libvirt-qemu, fio verify
# passes in the guest, the guest shuts down, and vhostd saw the session come and go.
# Also checks contrib/libvirt/apparmor-libvirt-qemu with apparmor_parser (syntax; this kernel
# has no AppArmor to enforce it).
#
# libvirtd is started here, without systemd: bookworm's monolithic libvirtd, its sockets in the
# temp dir. Its QEMU driver reads /etc/libvirt/qemu.conf whatever -f says, so two settings are
# appended there for the test and the file is restored afterwards: stdio_handler = "file" (no
# virtlogd runs) and cgroup_controllers = [ ] (leave the host's cgroups alone). The vhostd group
# is created and libvirt-qemu added to it if needed; /etc/group and /etc/gshadow are restored,
# and the files a first libvirtd start writes under /etc/libvirt (default network, nwfilters)
# are removed again.
# Skipped (77) when not root, without libvirt, or when a libvirtd is already running.
. "$(dirname "$0")/lib.sh"
vq_init libvirt
[[ "$VQ_BACKEND" == vhostd ]] || vq_skip "vhostd only (socket group options)"
[[ $(id -u) == 0 ]] || vq_skip "needs root (libvirtd, /etc/libvirt/qemu.conf)"
command -v libvirtd >/dev/null && command -v virsh >/dev/null ||
	vq_skip "libvirt not installed (Debian: libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients)"
getent passwd libvirt-qemu >/dev/null || vq_skip "no libvirt-qemu user (libvirt-daemon-system creates it)"
pgrep -x libvirtd >/dev/null && vq_skip "a libvirtd is already running: not touching it"
contrib="$VQ_SRC_ROOT/contrib"

# ---- /etc changes, undone at exit ----
etc_saved="$VQ_TMP/etc-saved"
mkdir -p "$etc_saved"
for f in /etc/libvirt/qemu.conf /etc/group /etc/gshadow; do
	[[ -f $f ]] && cp -p "$f" "$etc_saved/$(basename "$f")"
done
dom=
lv_cleanup() {
	if [[ -n "$dom" ]]; then
		lvirsh destroy "$dom" >/dev/null 2>&1
		lvirsh undefine "$dom" >/dev/null 2>&1
	fi
	if [[ -n "${LV_PID:-}" ]]; then
		vq_stop "$LV_PID" libvirtd 10
		vq_untrack "$LV_PID"
	fi
	for f in /etc/libvirt/qemu.conf /etc/group /etc/gshadow; do
		[[ -f "$etc_saved/$(basename "$f")" ]] && cp -p "$etc_saved/$(basename "$f")" "$f"
	done
	# A first libvirtd start writes its defaults (default network, nwfilters) to /etc/libvirt:
	# remove what was not there before, so the host is as the test found it.
	if [[ -f "$etc_saved/libvirt.files" ]]; then
		find /etc/libvirt -type f | sort >"$etc_saved/libvirt.after"
		comm -13 "$etc_saved/libvirt.files" "$etc_saved/libvirt.after" | while read -r f; do
			rm -f -- "$f"
		done
	fi
}
trap 'vq_rc=$?; lv_cleanup; (exit $vq_rc); vq_cleanup' EXIT
lvirsh() { virsh -q -c "qemu:///system?socket=$VQ_TMP/lv/libvirt-sock" "$@"; }

# The packaged group: what contrib/sysusers.d/vhostd.conf declares.
grep -qE '^g vhostd' "$contrib/sysusers.d/vhostd.conf" &&
	grep -qE '^m libvirt-qemu vhostd' "$contrib/sysusers.d/vhostd.conf" ||
	vq_fail "contrib/sysusers.d/vhostd.conf does not declare the vhostd group and its member"
getent group vhostd >/dev/null || groupadd --system vhostd || vq_fail "groupadd vhostd"
id -nG libvirt-qemu | grep -qw vhostd || gpasswd -a libvirt-qemu vhostd >/dev/null ||
	vq_fail "gpasswd -a libvirt-qemu vhostd"

# ---- AppArmor rule (syntax) ----
if command -v apparmor_parser >/dev/null && [[ -f /etc/apparmor.d/abstractions/libvirt-qemu ]]; then
	mkdir -p "$VQ_TMP/aa/local/abstractions"
	cp "$contrib/libvirt/apparmor-libvirt-qemu" "$VQ_TMP/aa/local/abstractions/libvirt-qemu"
	printf 'abi <abi/3.0>,\ninclude <tunables/global>\nprofile vhostd-check {\n  include <abstractions/libvirt-qemu>\n}\n' \
		>"$VQ_TMP/aa/profile"
	apparmor_parser -Q -K -I "$VQ_TMP/aa" -I /etc/apparmor.d "$VQ_TMP/aa/profile" \
		>"$VQ_TMP/apparmor.log" 2>&1 || vq_fail "apparmor_parser refuses the contrib rule"
	vq_log "apparmor_parser accepts contrib/libvirt/apparmor-libvirt-qemu in libvirt's QEMU abstraction"
else
	vq_log "apparmor_parser or libvirt's AppArmor abstraction missing: rule syntax not checked"
fi

# ---- vhostd as packaged: sockets for the vhostd group, RPC for root only ----
chmod 0711 "$VQ_TMP" # libvirt-qemu must reach the socket and the guest files below
VQ_VHOSTD_ARGS="-g vhostd --rpc-group -"
vq_backend_start
chgrp vhostd "$VQ_SOCKDIR" && chmod 0750 "$VQ_SOCKDIR"
vq_backend_add_disk vhost.0 64 512
[[ $(stat -c '%a %G' "$VQ_SOCK") == "660 vhostd" ]] || vq_fail "socket is $(stat -c '%a %G' "$VQ_SOCK")"
[[ $(stat -c '%a' "$VQ_RPC") == 600 ]] || vq_fail "RPC socket is $(stat -c '%a' "$VQ_RPC")"

# ---- libvirtd, without systemd ----
find /etc/libvirt -type f | sort >"$etc_saved/libvirt.files"
cat >>/etc/libvirt/qemu.conf <<CONF

# Added by vhostd's tests/qemu/test-libvirt.sh (restored when it ends)
stdio_handler = "file"
cgroup_controllers = [ ]
CONF
mkdir -p "$VQ_TMP/lv"
cat >"$VQ_TMP/libvirtd.conf" <<CONF
unix_sock_dir = "$VQ_TMP/lv"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:$VQ_TMP/libvirtd.log"
CONF
libvirtd -f "$VQ_TMP/libvirtd.conf" -p "$VQ_TMP/libvirtd.pid" </dev/null >"$VQ_TMP/libvirtd.out.log" 2>&1 &
LV_PID=$!
vq_track "$LV_PID" libvirtd
lv_up() { lvirsh version >/dev/null; }
vq_wait_for "libvirtd" 60 lv_up || vq_fail "libvirtd did not answer"
vq_log "libvirt $(lvirsh version | awk '/Using library/ {print $NF}'), QEMU driver up"

# ---- the guest: fio verify on the vhostd disk ----
guest="$VQ_TMP/guest.sh"
cat >"$guest" <<'EOF2'
. /etc/vtest.sh
cat >/tmp/job.fio <<JOB
[verify]
filename=/dev/vda
direct=1
ioengine=libaio
iodepth=16
rw=randrw
bsrange=4k-64k
verify=crc32c
verify_fatal=1
time_based=1
runtime=$VT_RUNTIME
size=48M
JOB
fio /tmp/job.fio >/tmp/fio.out 2>&1 || vt_fail "fio: $(grep -m1 -iE 'verify|error' /tmp/fio.out)"
grep -q 'err= 0' /tmp/fio.out || vt_fail "fio reported an error"
grep -E '^ *(read|write):' /tmp/fio.out
vt_no_io_errors
EOF2
vq_make_initrd "$VQ_TMP/guest.initrd" "$guest" VT_RUNTIME="${VQ_FIO_RUNTIME:-10}"
cp "$VQ_KERNEL" "$VQ_TMP/vmlinuz"
chmod 0644 "$VQ_TMP/vmlinuz" "$VQ_TMP/guest.initrd"
dom="vhostd-test-$$"
serial="$VQ_TMP/serial.log"
python3 - "$contrib/libvirt/vhostd-domain.xml" "$VQ_TMP/domain.xml" "$dom" "$VQ_SOCK" \
	"$VQ_TMP/vmlinuz" "$VQ_TMP/guest.initrd" "$serial" <<'PY' || vq_fail "cannot build the domain XML"
import sys
import xml.etree.ElementTree as ET
src, out, name, sock, kernel, initrd, serial = sys.argv[1:]
d = ET.parse(src).getroot()
# What a test must change; the disk and the memory backing stay as shipped.
d.set("type", "qemu")  # TCG: this host's KVM cannot run a stock kernel
d.find("name").text = name
d.find("memory").text = "512"
os_ = d.find("os")
for e in list(os_):
    if e.tag != "type":
        os_.remove(e)
for tag, text in (("kernel", kernel), ("initrd", initrd),
                  ("cmdline", "console=ttyS0 quiet loglevel=4 panic=-1 rdinit=/init")):
    ET.SubElement(os_, tag).text = text
d.find("cpu").set("mode", "maximum")
disk = d.find("devices/disk[@type='vhostuser']")
disk.find("source").set("path", sock)
devs = d.find("devices")
for tag in ("serial", "console"):
    for e in devs.findall(tag):
        devs.remove(e)
ser = ET.SubElement(devs, "serial", type="file")
ET.SubElement(ser, "source", path=serial)
ET.SubElement(ser, "target", port="0")
ET.ElementTree(d).write(out)
PY
grep -q "<reconnect enabled=\"yes\" timeout=\"1\"" "$VQ_TMP/domain.xml" &&
	grep -q '<source type="memfd"' "$VQ_TMP/domain.xml" &&
	grep -q '<access mode="shared"' "$VQ_TMP/domain.xml" || vq_fail "the example lost its vhost-user settings"
lvirsh define "$VQ_TMP/domain.xml" >/dev/null || vq_fail "virsh define"
lvirsh start "$dom" >/dev/null || vq_fail "virsh start: $(tail -n 5 "/var/log/libvirt/qemu/$dom.log" 2>/dev/null)"
vq_log "domain $dom started"
qpid=$(pgrep -f "guest=$dom" | head -n1)
[[ -n "$qpid" ]] || vq_fail "no QEMU process for $dom"
quser=$(ps -o user= -p "$qpid" | tr -d ' ')
[[ "$quser" == libvirt-qemu ]] || vq_fail "QEMU runs as '$quser', not libvirt-qemu"
grep -q "vhost.0: front-end connected" "$VQ_TMP/vhostd.log" ||
	vq_wait_for "vhostd session" 30 grep -q "vhost.0: front-end connected" "$VQ_TMP/vhostd.log" ||
	vq_fail "QEMU (as libvirt-qemu) never connected to vhostd"
vq_log "QEMU runs as libvirt-qemu (pid $qpid) and is connected to vhostd"

deadline=$((SECONDS + VQ_GUEST_TIMEOUT))
until [[ "$(lvirsh domstate "$dom" 2>/dev/null)" == "shut off" ]]; do
	((SECONDS < deadline)) || vq_fail "the guest did not shut down within ${VQ_GUEST_TIMEOUT}s"
	sleep 1
done
res=$(vq_result "$serial")
rrc=$?
grep -a -E '^ *(read|write):' "$serial" | sed 's/^/  fio: /' >&2
((rrc == 0)) || { tail -n 30 "$serial" >&2; vq_fail "guest: $res"; }
vq_log "guest: $res; domain shut off"
lvirsh undefine "$dom" >/dev/null || vq_fail "virsh undefine"
dom=
vq_wait_for "vhostd session end" 30 grep -q "vhost.0: closing session" "$VQ_TMP/vhostd.log" ||
	vq_fail "vhostd never saw the guest go"
vq_backend_alive || vq_fail "vhostd died"
vq_backend_log_errors
vq_pass
