#!/usr/bin/env bash
# A throw-away single-node Ceph cluster for tests: one monitor and one OSD on the memstore object
# store, auth off, pool size 1, no manager and no systemd. Everything it makes (config, monitor
# and OSD data, pid files, admin sockets, logs) lives in DIR, and stop kills exactly the daemons
# whose pid files are in DIR and whose command line names DIR's config.
#
#   ceph-cluster.sh start DIR [--owner PID] [--pool NAME]   up in ~20 s; prints KEY=VALUE lines:
#                                       CEPH_CONF (for -c / config_file), CEPH_MON_HOST (for
#                                       mon_host), CEPH_POOL (an rbd pool, initialised)
#   ceph-cluster.sh stop DIR            SIGKILL the daemons, wait for them to go; removes DIR
#   ceph-cluster.sh pause DIR           SIGSTOP both daemons: the cluster goes silent, as in a
#                                       network partition (connections stay open, nothing answers)
#   ceph-cluster.sh resume DIR          SIGCONT
#   ceph-cluster.sh check               exit 0 if the Ceph daemons and tools are installed, 77
#                                       (the test suites' skip code) with a reason otherwise
#
# --owner PID: a watchdog stops the cluster when PID exits, so a test killed by its timeout
# does not leave daemons behind. DIR must not exist yet, or be empty. Needs root (the daemons
# open their data with the caller's identity; root avoids a ceph user and setuid games).
#
# Exit: 0 ok, 1 error (the daemons' logs are in DIR/log), 77 Ceph is not installed.
set -euo pipefail

POOL=rbd
WATCHDOG_PERIOD=1 # seconds between the owner checks; not a synchronisation delay

die() {
  echo "ceph-cluster: $*" >&2
  exit 1
}

need_tools() {
  local t missing=()
  for t in ceph-mon ceph-osd monmaptool ceph rbd; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  if ((${#missing[@]})); then
    echo "ceph-cluster: Ceph is not installed (missing ${missing[*]}; scripts/install-deps.sh" \
      "installs ceph-mon ceph-osd ceph-common)" >&2
    return 77
  fi
  return 0
}

# Two free TCP ports on 127.0.0.1 (the monitor's msgr2 and msgr1 addresses). Several clusters
# (parallel test runs) must not collide on Ceph's default ports.
free_ports() {
  python3 - <<'PY'
import socket
socks = []
for _ in range(2):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# Poll @cmd until it succeeds or @secs pass. Polling with a deadline, not a fixed sleep.
wait_for() {
  local secs=$1
  shift
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || return 1
    sleep 0.2
  done
}

# Pids of our daemons: from DIR's pid files, kept only if the process still runs with DIR's
# config on its command line (a stale pid file must never make us kill someone else).
our_pids() {
  local dir=$1 f pid
  for f in "$dir"/run/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null) || continue
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir/ceph.conf"; then
      echo "$pid"
    fi
  done
}

write_conf() {
  local dir=$1 fsid=$2 p2=$3 p1=$4
  cat >"$dir/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$p2,v1:127.0.0.1:$p1]
public addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
run dir = $dir/run
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
mon data = $dir/mon/\$cluster-\$id
osd data = $dir/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = 4294967296
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
# A client killed with SIGKILL keeps its watches (and so its exclusive lock looks alive) until
# this expires; 30 s by default. Clients ping every 5 s, so 15 s keeps healthy watches.
osd client watch timeout = 15
osd op num shards = 2
osd op num threads per shard = 1

[mon]
admin socket = $dir/run/\$name.asok

[osd]
admin socket = $dir/run/\$name.asok

[client]
admin socket = $dir/run/\$name.\$pid.asok
log file = $dir/log/\$name.\$pid.log
EOF
}

# Kill @pids that still run with @dir's config on their command line (it stays there after
# DIR is removed, so this works when the pid files are gone).
kill_checked() {
  local dir=$1 p
  shift
  for p in "$@"; do
    if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$dir/ceph.conf"; then
      kill -KILL "$p" 2>/dev/null || true
    fi
  done
}

start_watchdog() {
  local dir=$1 owner=$2 self
  self=$(readlink -f "$0")
  # Detached from the caller's stdout/stderr so a test harness waiting for EOF is not held.
  # It remembers the daemons' pids: if the owner removes DIR without stopping the cluster
  # (a test's cleanup), the pid files are gone but the daemons are still found and killed.
  (
    trap '' HUP
    pids=""
    while kill -0 "$owner" 2>/dev/null && [ -d "$dir" ]; do
      p=$(our_pids "$dir")
      [ -n "$p" ] && pids=$p
      sleep "$WATCHDOG_PERIOD"
    done
    if [ -d "$dir" ]; then
      "$self" stop "$dir"
    else
      kill_checked "$dir" $pids
    fi
  ) </dev/null >/dev/null 2>&1 &
  echo $! >"$dir/run/watchdog.pid.w"
}

cmd_start() {
  local dir=$1
  shift
  local owner="" fsid osd_uuid ports p2 p1 conf id
  while (($#)); do
    case $1 in
      --owner) owner=$2; shift 2 ;;
      --pool) POOL=$2; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  need_tools || exit $?
  [ "$(id -u)" = 0 ] || die "needs root"
  if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
    die "$dir exists and is not empty"
  fi
  mkdir -p "$dir"/{run,log,mon,osd}
  dir=$(cd "$dir" && pwd)
  conf=$dir/ceph.conf
  fsid=$(cat /proc/sys/kernel/random/uuid)
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  read -r p2 p1 <<<"$(free_ports)"
  write_conf "$dir" "$fsid" "$p2" "$p1"
  if [ -n "$owner" ]; then
    start_watchdog "$dir" "$owner"
  fi

  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$p2,v1:127.0.0.1:$p1]" \
    "$dir/monmap" >"$dir/log/monmaptool.out" 2>&1 || die "monmaptool failed (see $dir/log)"
  ceph-mon -c "$conf" -i a --mkfs --monmap "$dir/monmap" >"$dir/log/mon-mkfs.out" 2>&1 ||
    die "ceph-mon --mkfs failed (see $dir/log/mon-mkfs.out)"
  ceph-mon -c "$conf" -i a >"$dir/log/mon-start.out" 2>&1 ||
    die "ceph-mon failed to start (see $dir/log)"

  # The first command also waits for the monitor to form its quorum of one.
  id=$(timeout 60 ceph -c "$conf" --connect-timeout 30 osd create "$osd_uuid" 2>"$dir/log/osd-create.out") ||
    die "ceph osd create failed (see $dir/log)"
  mkdir -p "$dir/osd/ceph-$id"
  ceph-osd -c "$conf" -i "$id" --mkfs --osd-uuid "$osd_uuid" >"$dir/log/osd-mkfs.out" 2>&1 ||
    die "ceph-osd --mkfs failed (see $dir/log/osd-mkfs.out)"
  ceph-osd -c "$conf" -i "$id" >"$dir/log/osd-start.out" 2>&1 ||
    die "ceph-osd failed to start (see $dir/log)"

  timeout 60 ceph -c "$conf" osd pool create "$POOL" 8 8 >"$dir/log/pool.out" 2>&1 ||
    die "pool create failed (see $dir/log/pool.out)"
  # Writes the pool's rbd objects: returns once the OSD is up and the PGs are active.
  timeout 120 rbd -c "$conf" pool init "$POOL" >>"$dir/log/pool.out" 2>&1 ||
    die "rbd pool init failed: the OSD did not come up (see $dir/log)"

  echo "CEPH_CONF=$conf"
  echo "CEPH_MON_HOST=[v2:127.0.0.1:$p2,v1:127.0.0.1:$p1]"
  echo "CEPH_POOL=$POOL"
}

cmd_stop() {
  local dir=$1 pids w end
  [ -d "$dir" ] || return 0
  dir=$(cd "$dir" && pwd)
  pids=$(our_pids "$dir")
  if [ -n "$pids" ]; then
    # The data goes with DIR, so nothing is worth a clean shutdown (which takes the OSD ~7 s:
    # it waits for the monitor to mark it down). SIGKILL also ends a paused daemon.
    kill -KILL $pids 2>/dev/null || true
    end=$((SECONDS + 10))
    for p in $pids; do
      while kill -0 "$p" 2>/dev/null && ((SECONDS < end)); do
        sleep 0.05
      done
    done
  fi
  # The watchdog (when we are not it) has nothing left to watch.
  if [ -f "$dir/run/watchdog.pid.w" ]; then
    w=$(cat "$dir/run/watchdog.pid.w")
    if [ "$w" != "$$" ] && [ "$w" != "$PPID" ]; then
      kill "$w" 2>/dev/null || true
    fi
  fi
  rm -rf "$dir"
}

cmd_signal() {
  local sig=$1 dir=$2 pids
  [ -d "$dir" ] || die "$dir does not exist"
  dir=$(cd "$dir" && pwd)
  pids=$(our_pids "$dir")
  [ -n "$pids" ] || die "no daemon of $dir is running"
  kill "-$sig" $pids
}

case ${1:-} in
  start) [ $# -ge 2 ] || die "usage: $0 start DIR [--owner PID] [--pool NAME]"; shift; cmd_start "$@" ;;
  stop) [ $# -eq 2 ] || die "usage: $0 stop DIR"; cmd_stop "$2" ;;
  pause) [ $# -eq 2 ] || die "usage: $0 pause DIR"; cmd_signal STOP "$2" ;;
  resume) [ $# -eq 2 ] || die "usage: $0 resume DIR"; cmd_signal CONT "$2" ;;
  check) need_tools ;;
  *) die "usage: $0 start|stop|pause|resume DIR, or $0 check" ;;
esac
