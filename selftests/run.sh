#!/usr/bin/env bash
# Runs every test suite and prints one closing line "N passed, N failed".
# Each suite speaks TAP; an empty run counts as a failure, never a pass.
set -u
cd "$(dirname "$0")/.."

passed=0 failed=0 skipped=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

count_tap() {
	local line
	while IFS= read -r line; do
		printf '%s\n' "$line"
		case "$line" in
		"ok "*"# skip"*) skipped=$((skipped + 1)) ;;
		"ok "*) passed=$((passed + 1)) ;;
		"not ok "*) failed=$((failed + 1)) ;;
		esac
	done <"$log"
}

suite() {
	local name=$1 rc
	shift
	echo "# suite: $name"
	"$@" >"$log" 2>&1
	rc=$?
	local before=$((passed + failed))
	count_tap
	if [ $((passed + failed)) -eq "$before" ] || { [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; }; then
		echo "not ok - suite $name exited $rc without a failing test"
		failed=$((failed + 1))
	fi
}

suite verdicts .output/test_verdicts
suite arithmetic .output/test_arith
suite contexts .output/test_ctx
suite fuzz selftests/fuzz.sh "${CLAT_FUZZ_SECONDS:-30}"
suite selftests bats --formatter tap selftests/${CLAT_TEST_FILTER:-*}.bats

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
