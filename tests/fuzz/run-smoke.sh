#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# Run every fuzz target for SECONDS (default 30) on a scratch copy of its committed seed corpus.
# Exits non-zero if any target crashed, leaked, timed out or hit a sanitizer report; the
# reproducer is left in OUTDIR/artifacts/<target>/ and its path printed.
#
#   tests/fuzz/run-smoke.sh [SECONDS] [OUTDIR]     (OUTDIR: build.sh's, default build-fuzz)
#
# Builds the targets first if they are missing. Targets run one after another under nice (the
# CI machine has 2 cores); FUZZ_TARGETS="fuzz_vring fuzz_rpc" restricts the list.
set -u

top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-30}
out=${2:-$top/build-fuzz}
targets=${FUZZ_TARGETS:-"fuzz_vring fuzz_vring_packed fuzz_scsi fuzz_inflight fuzz_vhost_msg fuzz_rpc fuzz_config fuzz_vfu_msg"}

for t in $targets; do
	if [ ! -x "$out/$t" ]; then
		"$top/tests/fuzz/build.sh" "$out" || exit $?
		break
	fi
done
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:abort_on_error=1:detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:print_stacktrace=1:halt_on_error=1"
fail=0
for t in $targets; do
	work=$(mktemp -d "${TMPDIR:-/tmp}/vhfuzz-$t.XXXXXX")
	art="$out/artifacts/$t"
	mkdir -p "$art"
	cp "$top/tests/fuzz/corpus/$t/"* "$work/" 2>/dev/null
	log="$out/$t.smoke.log"
	nice -n 10 "$out/$t" -max_total_time="$secs" -timeout=25 -rss_limit_mb=4096 \
		-print_final_stats=1 -print_funcs=0 -artifact_prefix="$art/" "$work" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	if [ $rc -ne 0 ]; then
		echo "FAIL $t (rc $rc, ${execs:-?} execs): see $log"
		# What the target printed just before it died (its own check's message, an
		# assertion), the report with only its C frames, then the reproducer, inline when
		# small: CI machines are cleaned up, and a crash found once may take hours to find
		# again.
		awk '/^INFO: Seed:/ { print "  " $0; next }
		     !err && /^==[0-9]+== ?ERROR/ {
			for (i = k - 7; i <= k; i++) if (i > 0) print "  | " last[i % 8]
			err = 1
		     }
		     err && /^SUMMARY/ { print "  | " $0; exit }
		     err && /^(NOTE|  +Combine)/ { next }
		     err { if (!/^ *#[0-9]/ || (/[.][ch]:[0-9]/ && ++frames <= 10)) print "  | " $0; next }
		     !/^(#[0-9]|INFO:|MS:|base unit:|stat::|Done |Dictionary:|[[:space:]]*$)/ {
			last[++k % 8] = $0
		     }' "$log"
		for f in "$art"/*; do
			[ -f "$f" ] || continue
			sz=$(stat -c %s "$f")
			echo "  reproducer: $f ($sz bytes)"
			if [ "$sz" -le 16384 ]; then
				echo "  base64 (tests/fuzz/README.md: replaying a CI crash):"
				base64 -w 100 "$f" | sed 's/^/    /'
			fi
		done
		fail=1
	else
		echo "ok   $t: ${execs:-?} execs, ${rate:-?}/s"
	fi
	rm -rf "$work"
done
exit $fail
