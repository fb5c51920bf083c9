#!/usr/bin/env bash
# Fails (exit 1) when a tracked C file differs from what clang-format makes of it with the
# project's .clang-format. Run `scripts/check-format.sh --fix` to reformat in place.
set -uo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.c' '*.h')
if [ "${1:-}" = "--fix" ]; then
	clang-format -i "${files[@]}"
	exit 0
fi
bad=()
for f in "${files[@]}"; do
	clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if ((${#bad[@]})); then
	echo "clang-format: ${#bad[@]} file(s) need formatting (scripts/check-format.sh --fix):"
	printf '  %s\n' "${bad[@]}"
	exit 1
fi
echo "clang-format: ${#files[@]} files clean"
