#!/usr/bin/env bash
# Fuzzes gtables_load() for SECONDS (default 60) and prints TAP:
#   1: every reproducer in selftests/fuzz-regressions/ still loads cleanly
#   2: a fresh fuzzing run over the seeded corpus finds no crash
# Needs clang and libclang-rt-14-dev (libFuzzer); skips if they are missing.
set -u
cd "$(dirname "$0")/.."

secs=${1:-60}
out=.output
bin=$out/fuzz_gtables
corpus=$out/fuzz-corpus
artifacts=$out/fuzz-artifacts
regress=selftests/fuzz-regressions
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "1..2"
if ! make -s "$bin" "$out/fuzz_seeds" >"$log" 2>&1; then
	if grep -q 'libclang_rt.fuzzer\|fuzzer' "$log"; then
		echo "ok 1 - fuzz regressions # skip libFuzzer runtime missing (libclang-rt-14-dev)"
		echo "ok 2 - gtables_load fuzzing # skip libFuzzer runtime missing (libclang-rt-14-dev)"
		exit 0
	fi
	sed 's/^/# /' "$log"
	echo "not ok 1 - fuzz regressions: build failed"
	echo "not ok 2 - gtables_load fuzzing: build failed"
	exit 1
fi

rc=0
mkdir -p "$corpus" "$artifacts"
shopt -s nullglob
repros=("$regress"/*)
if [ ${#repros[@]} -eq 0 ]; then
	echo "ok 1 - fuzz regressions # skip none in $regress"
elif "$bin" "${repros[@]}" >"$log" 2>&1; then
	echo "ok 1 - fuzz regressions: ${#repros[@]} reproducers load without a crash"
else
	grep -E 'validator hole|ERROR|runtime error|Running:' "$log" | sed 's/^/# /'
	echo "not ok 1 - fuzz regressions: a reproducer in $regress crashes again"
	rc=1
fi

if ! "$out/fuzz_seeds" "$corpus" >"$log" 2>&1; then
	sed 's/^/# /' "$log"
	echo "not ok 2 - gtables_load fuzzing: seed generation failed"
	exit 1
fi
start=$(date +%s)
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	-artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1
frc=$?
elapsed=$(($(date +%s) - start))
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
[ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -1)
if [ "$frc" -eq 0 ]; then
	echo "ok 2 - gtables_load fuzzed ${elapsed} s, ${execs:-?} execs, no crash"
else
	artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
	grep -E 'validator hole|ERROR: |runtime error|SUMMARY' "$log" | head -20 | sed 's/^/# /'
	echo "not ok 2 - gtables_load fuzzing crashed after ${elapsed} s: ${artifact:-see log} (copy it to $regress/ once fixed)"
	rc=1
fi
exit $rc
