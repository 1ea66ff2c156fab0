#!/usr/bin/env bash
# Runs every test suite and prints one closing line "N passed, N failed".
# Each suite speaks TAP; an empty run counts as a failure, never a pass.
set -u
cd "$(dirname "$0")/.."

# Where the binaries under test live: .output, or .output/san for a
# sanitized build (`make check SANITIZE=1` sets both variables).
export CLAT_BIN_DIR=${CLAT_BIN_DIR:-$PWD/.output}
bin=$CLAT_BIN_DIR
san_logs=
if [ "${CLAT_SANITIZE:-}" = 1 ]; then
	# Every report, even from a command a test expects to fail or from a
	# background process, lands in a file that the last test looks for.
	san_logs=$(mktemp -d /tmp/clat-san.XXXXXX)
	chmod 1777 "$san_logs" # tests also run binaries as nobody
	export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=86:log_path=$san_logs/asan"
	export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=86"
	export LSAN_OPTIONS="exitcode=86"
	export CLAT_SAN_DIR=$san_logs # UBSan reports, through user/san_hook.c
fi

passed=0 failed=0 skipped=0 times=
log=$(mktemp)
trap 'rm -f "$log"; [ -z "$san_logs" ] || rm -rf "$san_logs"' EXIT

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
	local name=$1 rc t0=$SECONDS
	shift
	echo "# suite: $name"
	"$@" >"$log" 2>&1
	rc=$?
	times+="# $(printf '%5d' $((SECONDS - t0))) s  $name"$'\n'
	local ran=$((passed + failed + skipped)) failed0=$failed
	count_tap
	# A suite that ran nothing, or failed with no failing test, fails.
	if [ $((passed + failed + skipped)) -eq "$ran" ] || { [ "$rc" -ne 0 ] && [ "$failed" -eq "$failed0" ]; }; then
		echo "not ok - suite $name exited $rc without a failing test"
		failed=$((failed + 1))
	fi
}

# One TAP test: no sanitizer wrote a report during the whole run.
sanitizer_reports() {
	local f n=0
	echo "1..1"
	for f in "$san_logs"/*; do
		[ -e "$f" ] || continue
		# LeakSanitizer could not stop a thread of a process that a
		# teardown killed during its exit-time check: no finding, and
		# nothing it checked; say so without failing the run.
		if ! grep -qv 'Unable to get registers from thread' "$f"; then
			sed 's/^/# (not a report) /' "$f"
			continue
		fi
		n=$((n + 1))
		sed 's/^/# /' "$f" | head -60
	done
	if [ "$n" -eq 0 ]; then
		echo "ok 1 - no ASan/UBSan/LeakSanitizer report from any process"
	else
		echo "not ok 1 - $n sanitizer report(s) (leak, memory error or UB), shown above"
	fi
}

suite verdicts "$bin/test_verdicts"
suite arithmetic "$bin/test_arith"
suite jsonr "$bin/test_jsonr"
suite guest-phys "$bin/test_gphys"
suite contexts "$bin/test_ctx"
suite contexts-attack "$bin/test_ctx_attack"
suite datapath-fuzz "$bin/fuzz_datapath" --seconds "${CLAT_DPFUZZ_SECONDS:-20}"
# libFuzzer brings its own sanitizers and reports; keep ours out of its way.
suite fuzz env -u ASAN_OPTIONS -u UBSAN_OPTIONS -u LSAN_OPTIONS selftests/fuzz.sh "${CLAT_FUZZ_SECONDS:-30}"
# One suite per file, so that each file's time is on record.
for f in selftests/${CLAT_TEST_FILTER:-*}.bats; do
	suite "${f#selftests/}" bats --formatter tap "$f"
done
[ -z "$san_logs" ] || suite sanitizers sanitizer_reports

printf '# time per suite:\n%s' "$times"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
