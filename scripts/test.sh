#!/usr/bin/env bash
# The test command: installs dependencies, builds a release and an ASan/UBSan variant, runs every
# test suite, and ends with "N passed, N failed".
#   scripts/test.sh            everything: unit + func (ASan/UBSan), fuzz (30 s per libFuzzer
#                              target), tsan (unit + func under
#                              ThreadSanitizer, clang), qemu (real guests, release build),
#                              fresh (scripts/demo.sh in a fresh minimal Debian 12 root: one test)
#   SUITES="unit func" scripts/test.sh    a subset
set -uo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

if [ "$(id -u)" = 0 ]; then
  scripts/install-deps.sh || { echo "dependency installation failed"; echo "0 passed, 1 failed"; exit 1; }
fi

suites=${SUITES:-"unit func tsan fuzz qemu fresh"}
jobs=$(nproc)
pass=0 fail=0 skip=0

build() { # dir, meson args...
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; return 1; }
  fi
  ninja -C "$dir" -j "$jobs" >"$dir.build.log" 2>&1 || { tail -50 "$dir.build.log"; return 1; }
}

# meson test, then add its counts from the JSON log.
run_suite() { # dir suite
  local dir=$1 suite=$2
  echo "=== $suite tests ($dir) ==="
  meson test -C "$dir" --suite "$suite" --print-errorlogs --no-rebuild --num-processes 1 \
    --timeout-multiplier "${TIMEOUT_MULT:-1}" | tail -25
  local counts
  counts=$(python3 - "$dir/meson-logs/testlog.json" <<'PY'
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"): p += 1
    elif r == "SKIP": s += 1
    else: f += 1
print(p, f, s)
PY
)
  read -r p f s <<<"$counts"
  pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
}

# tests/fresh/run.sh: the README's first command in a fresh root; one test (exit 77: skipped).
run_fresh() {
  echo "=== fresh (scripts/demo.sh in a fresh Debian 12 root; log: build-fresh.log) ==="
  tests/fresh/run.sh >build-fresh.log 2>&1
  local rc=$?
  grep -a 'fresh: ' build-fresh.log
  case $rc in
    0) pass=$((pass + 1)) ;;
    77) skip=$((skip + 1)) ;;
    *) tail -n 60 build-fresh.log; fail=$((fail + 1)) ;;
  esac
}

# Formatting is a check like any test: a violation fails the run (scripts/check-format.sh --fix).
echo "=== format ==="
if scripts/check-format.sh; then pass=$((pass + 1)); else fail=$((fail + 1)); fi

echo "=== build: release ==="
if ! build build-release --buildtype=release -Dwerror=true; then
  echo "0 passed, 1 failed"; exit 1
fi
echo "=== build: asan+ubsan ==="
if ! build build-asan --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false; then
  echo "0 passed, 1 failed"; exit 1
fi

if [[ " $suites " == *" tsan "* ]]; then
  echo "=== build: tsan (clang) ==="
  if ! CC=clang-14 build build-tsan --buildtype=debug -Db_sanitize=thread -Db_lundef=false; then
    echo "0 passed, 1 failed"; exit 1
  fi
fi

export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
for s in $suites; do
  case $s in
    unit|func) run_suite build-asan "$s" ;;
    qemu)
      # The vfio-user guest tests need QEMU >= 10.1: built once per machine from Debian's
      # source package and cached in /var/cache/vhostd-qemu (15-30 min the first time).
      echo "=== QEMU 10.2 with vfio-user (tests/qemu/build-qemu-vfio-user.sh; log: build-qemu-vfu.log) ==="
      t0=$SECONDS
      if tests/qemu/build-qemu-vfio-user.sh >/dev/null 2>build-qemu-vfu.log; then
        echo "QEMU 10.2 ready after $((SECONDS - t0)) s"
      else
        echo "no QEMU with vfio-user (build-qemu-vfu.log): the vfio-user guest tests will skip"
        tail -n 5 build-qemu-vfu.log
      fi
      run_suite build-release qemu ;;
    tsan) run_suite build-tsan unit; run_suite build-tsan func ;;
    fresh) run_fresh ;;
    *) run_suite build-asan "$s" ;;
  esac
done

echo
if [ "$skip" -gt 0 ]; then
  echo "$pass passed, $fail failed, $skip skipped"
else
  echo "$pass passed, $fail failed"
fi
[ "$fail" -eq 0 ]
