#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Crash soak for the README's reliability section: `vhostd --supervise` with a RAM disk whose
# completions are delayed at random (out of order), QD128 random 4 KiB writes with verify over
# two queues, and N kill -9 of the worker at random moments; after each, the front-end reconnects
# the way QEMU 7.2 does (same inflight fd). See tests/func/test_crash_soak.c for what is checked.
#
#   bench/crash-soak.sh [-n CYCLES] [-b BUILD_DIR] [-o RESULTS_DIR] [-- extra test options]
#
# Defaults: 200 cycles, build dir build-bench (configured and built if missing), results in
# bench/results/crash-soak-<date>.{json,log,vhostd.log}. Prints a summary (and a Markdown row) at the end.
# Set TEST_CRASH_SOAK and VHOSTD to use prebuilt binaries instead of building.
# Exit status: that of the test (0 pass, 1 fail, 77 skip).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cycles=200
build="$root/build-bench"
out="$here/results"

while getopts "n:b:o:h" opt; do
	case $opt in
	n) cycles=$OPTARG ;;
	b) build=$(cd "$OPTARG" && pwd) ;;
	o) out=$OPTARG ;;
	*) sed -n '3,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
	esac
done
shift $((OPTIND - 1))

# $TEST_CRASH_SOAK and $VHOSTD, when set, name prebuilt binaries (nothing is built then).
if [[ -z "${TEST_CRASH_SOAK:-}" || -z "${VHOSTD:-}" ]]; then
	if [[ ! -f "$build/build.ninja" ]]; then
		nice meson setup "$build" "$root" --buildtype=release >/dev/null
	fi
	nice ninja -C "$build" src/app/vhostd tests/func/test_crash_soak >/dev/null
fi
test_bin="${TEST_CRASH_SOAK:-$build/tests/func/test_crash_soak}"
export VHOSTD="${VHOSTD:-$build/src/app/vhostd}"
[[ -x "$test_bin" ]] || { echo "crash-soak: $test_bin not built (meson line missing?)" >&2; exit 1; }

mkdir -p "$out"
stamp=$(date +%Y-%m-%d-%H%M%S)
json="$out/crash-soak-$stamp.json"
log="$out/crash-soak-$stamp.log"

echo "crash-soak: $cycles kill -9 cycles (this takes a while: see the supervisor's restart backoff)" >&2
set +e
"$test_bin" --cycles "$cycles" --json --keep-log "$out/crash-soak-$stamp.vhostd.log" "$@" \
	>"$json" 2> >(tee "$log" >&2)
rc=$?
set -e
wait

if [[ ! -s "$json" ]]; then
	echo "crash-soak: no JSON result (exit $rc); see $log" >&2
	exit "$rc"
fi

python3 - "$json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rec = r["recovery_ms"]
print()
print(f"kill -9 cycles survived : {r['kills_survived']}/{r['cycles']}  ({'PASS' if r['pass'] else 'FAIL'})")
print(f"writes                  : {r['writes_submitted']} submitted, {r['writes_completed']} completed")
print(f"errors                  : {r['errors']} (lost {r['lost']}, duplicate {r['duplicates']}, "
      f"bad status {r['bad_status']}, verify {r['verify_errors']} of {r['blocks_verified']} blocks)")
print(f"in flight at each kill  : mean {r['inflight_at_kill_mean']}, min {r['inflight_at_kill_min']} "
      f"(resubmitted by the new worker: {r['resubmissions']} queue starts)")
print(f"recovery (kill -> first new completion): p50 {rec['p50']:.1f} ms, p99 {rec['p99']:.1f} ms, "
      f"max {rec['max']:.1f} ms")
net = r.get("recovery_minus_backoff_ms")
if net:
    print(f"  excluding the supervisor's restart backoff: p50 {net['p50']:.1f} ms, "
          f"p99 {net['p99']:.1f} ms, max {net['max']:.1f} ms")
print()
print("| kills survived | I/O errors | lost / duplicate | recovery p50 | recovery p99 | recovery max |")
print("|---|---|---|---|---|---|")
print(f"| {r['kills_survived']}/{r['cycles']} | {r['bad_status'] + r['verify_errors']} | "
      f"{r['lost']} / {r['duplicates']} | {rec['p50']:.0f} ms | {rec['p99']:.0f} ms | {rec['max']:.0f} ms |")
PY
echo "results: $json (stderr in $log)" >&2
exit "$rc"
