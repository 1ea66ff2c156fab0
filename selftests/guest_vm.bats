#!/usr/bin/env bats
# The guest owns its tables for real: a QEMU guest (TCG) builds them in huge
# pages of its own RAM at their guest-physical addresses, tells the host the
# BAT GPA through `clat-guest agent` on a virtio-serial port, the host
# attaches them from the VM's RAM file, and the guest reads back the
# contexts the device wrote.  The first test needs no VM: the host end of
# the channel against a fake agent.

load lib/common
load lib/vm

setup() {
	SPAWNED=()
	GV=gv$(printf '%x%04x' $(($$ % 4096)) $RANDOM)
	VM_NSNAME=
}

teardown() {
	reap
	topo_destroy
	vm_teardown_all
	[ -z "$VM_NSNAME" ] || ip netns del "$VM_NSNAME" 2>/dev/null || true
	rm -f "/dev/shm/$GV".*
}

fake_agent() { # MODE [GPA]: a fake agent on $SOCK, serving one client
	rm -f "$SOCK"
	spawn python3 "$ROOT/selftests/lib/fakeagent.py" "$SOCK" "$@"
	local _
	for _ in $(seq 50); do
		[ -S "$SOCK" ] && return 0
		sleep 0.1
	done
	return 1
}

@test "guest attach --channel: skips a stale answer, attaches the agent's BAT, refuses bad answers" {
	topo_create 1
	attach
	MEM=/dev/shm/$GV.mem
	guest_init "$MEM" conn:ctx=128,block=4K,services=1000
	SOCK=$BATS_TEST_TMPDIR/chan.sock

	run "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM"
	assert_equal "$status" 2
	assert_output --partial "exactly one of --bat-gpa and --channel"
	run "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --channel "$SOCK"
	assert_equal "$status" 2
	assert_output --partial "expected unix:PATH"
	run "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --channel "unix:$SOCK"
	assert_failure
	assert_output --partial "failed to query the guest agent on unix:$SOCK: connect:"

	fake_agent silent
	run "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --channel "unix:$SOCK" \
		--channel-timeout 300
	assert_failure
	assert_output --partial "failed to query the guest agent on unix:$SOCK: timed out"
	fake_agent error
	run "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --channel "unix:$SOCK"
	assert_failure
	assert_output --partial "the agent says: invalid tables at GPA 0x3800000: bad magic"
	fake_agent badhex
	run "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --channel "unix:$SOCK"
	assert_failure
	assert_output --partial 'bat_gpa "0x12g4" is not 0x followed by 1..16 hex digits'
	fake_agent long
	run "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --channel "unix:$SOCK"
	assert_failure
	assert_output --partial "answer longer than 1024 bytes"
	# An answer without our id is someone else's: never used.
	fake_agent noid "$(printf '0x%x' "$BAT")"
	run "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --channel "unix:$SOCK" \
		--channel-timeout 500
	assert_failure
	assert_output --partial "the channel closed before an answer"

	# "good" first sends a stale answer naming GPA 0x7000 (no tables there).
	fake_agent good "$(printf '0x%x' "$BAT")"
	run "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --channel "unix:$SOCK"
	assert_success
	assert_output --partial "BAT at GPA $(printf '0x%x' "$BAT"), generation 1, 1 types"
	run "$CLAT_LOAD" ctx list "$PF" --fn 1 --json
	assert_success
}
