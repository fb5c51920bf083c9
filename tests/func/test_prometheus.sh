#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# A real Prometheus (Debian's prometheus package) scrapes `vhostd --metrics` on loopback: its
# HTTP API must report the target up and return vhostd's series (build info, and a bdev's read
# counter with the value vhostd itself reports). Skipped (77) when prometheus is not installed.
# Everything lives in a temp dir: config, TSDB, logs; both processes are stopped at the end.
set -u
VHOSTD=${VHOSTD:?VHOSTD not set}
VHOSTCTL=${VHOSTCTL:?VHOSTCTL not set}
PROMETHEUS=${PROMETHEUS:-$(command -v prometheus || true)}
if [ -z "$PROMETHEUS" ] || [ ! -x "$PROMETHEUS" ]; then
	echo "SKIP: prometheus not installed (Debian: apt-get install prometheus)"
	exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vhostd-prom.XXXXXX")
vpid= ppid=
cleanup() {
	[ -n "$ppid" ] && kill "$ppid" 2>/dev/null && wait "$ppid" 2>/dev/null
	[ -n "$vpid" ] && kill "$vpid" 2>/dev/null && wait "$vpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	for f in vhostd.log prometheus.log; do
		[ -f "$tmp/$f" ] && { echo "--- $f" >&2; tail -n 15 "$tmp/$f" >&2; }
	done
	exit 1
}
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# GET http://127.0.0.1:$1/api/v1/query?query=$2 and print the first sample's value (or nothing).
query() {
	python3 - "$1" "$2" <<'PY'
import json, sys, urllib.parse, urllib.request
url = "http://127.0.0.1:%s/api/v1/query?query=%s" % (sys.argv[1], urllib.parse.quote(sys.argv[2]))
try:
    r = json.load(urllib.request.urlopen(url, timeout=5))
except Exception:
    sys.exit(0)
res = r.get("data", {}).get("result", [])
if r.get("status") == "success" and res:
    print(res[0]["value"][1])
PY
}
ctl() { "$VHOSTCTL" -s "$tmp/rpc.sock" -t 5 "$@"; }

mport=$(free_port)
"$VHOSTD" -m 0x1 -S "$tmp" -r "$tmp/rpc.sock" --metrics "127.0.0.1:$mport" >"$tmp/vhostd.log" 2>&1 &
vpid=$!
for _ in $(seq 100); do
	ctl spdk_get_version >/dev/null 2>&1 && break
	kill -0 "$vpid" 2>/dev/null || fail "vhostd exited at start"
	sleep 0.05
done
ctl bdev_null_create Null0 8 512 >/dev/null || fail "bdev_null_create"

pport=$(free_port)
cat >"$tmp/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: vhostd
    static_configs:
      - targets: ['127.0.0.1:$mport']
YML
"$PROMETHEUS" --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
	--web.listen-address="127.0.0.1:$pport" >"$tmp/prometheus.log" 2>&1 &
ppid=$!

# Scraped: the target is up and vhostd's series are queryable (deadline 60 s: Prometheus
# starts in a few seconds, then scrapes every second).
ok=0
for _ in $(seq 120); do
	kill -0 "$ppid" 2>/dev/null || fail "prometheus exited"
	if [ "$(query "$pport" 'up{job="vhostd"}')" = 1 ] &&
		[ "$(query "$pport" 'vhostd_build_info')" = 1 ]; then
		ok=1
		break
	fi
	sleep 0.5
done
[ $ok = 1 ] || fail "Prometheus never scraped vhostd's build info"
want=$(ctl call bdev_get_iostat '{"name": "Null0"}' |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["bdevs"][0]["num_read_ops"])')
got=$(query "$pport" 'vhostd_bdev_read_ops_total{bdev="Null0"}')
[ "$got" = "$want" ] || fail "vhostd_bdev_read_ops_total{bdev=\"Null0\"} = '$got', vhostd says '$want'"
hist=$(query "$pport" 'vhostd_bdev_latency_seconds_count{bdev="Null0",op="read"}')
[ -n "$hist" ] || fail "no latency histogram series"
echo "prometheus scraped vhostd: up, build info, read ops $got, histogram count $hist"
kill "$vpid" && wait "$vpid"
st=$?
vpid=
[ $st = 0 ] || fail "vhostd exit status $st"
echo PASS
