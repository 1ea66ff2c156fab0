#!/usr/bin/env bats
# The README's "Using it" block, run as written against scratch PFs, so that
# README and code cannot drift: every command that needs only a PF and files
# must succeed, and the rest (a VM, QEMU, libvirt, a peer host) may fail for
# want of them but never as a usage error (exit 2).

load lib/common

setup() {
	PF=$(unique_pf)
	PF2=${PF}t
	T=$BATS_TEST_TMPDIR
}

teardown() {
	local p
	for p in "$PF2" "$PF"; do
		"$CLAT_LOAD" detach "$p" >/dev/null 2>&1 || true
		"$VF_EMU" destroy "$p" >/dev/null 2>&1 || true
	done
	pins_sweep "$PF" "$PF2"
}

@test "every command of the README's usage block runs as written" {
	local kind cmd rc bat= n=0 out
	while IFS=$'\t' read -r kind cmd; do
		[ -n "$bat" ] && cmd=${cmd//0x.../$bat}
		# The tools as built, not whatever an earlier install left in PATH.
		rc=0
		out=$(cd "$T" && PATH="$BIN:$PATH" timeout 5 bash -c "$cmd" 2>&1 </dev/null) || rc=$?
		echo "# [$kind rc=$rc] $cmd" >&3
		if [ "$kind" = MUST ] && [ "$rc" -ne 0 ]; then
			echo "$out"
			return 1
		fi
		if [ "$rc" -eq 2 ]; then
			echo "usage error: $out"
			return 1
		fi
		# The BAT GPA that init printed is the 0x... of the lines after it.
		[[ $cmd == "clat-guest init "* ]] && bat=$(sed -n 's/^bat_gpa \(0x[0-9a-f]*\)$/\1/p' <<<"$out")
		n=$((n + 1))
	done < <(python3 "$ROOT/selftests/lib/readme_cmds.py" "$ROOT/README.md" "$PF" "$PF2" "$T")
	[ -n "$bat" ]
	[ "$n" -ge 30 ]
}
