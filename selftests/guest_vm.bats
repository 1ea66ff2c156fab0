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
	TAG=
}

teardown() {
	reap
	topo_destroy
	vmhost_destroy
	rm -f "/dev/shm/$GV".*
}

hclat() { in_host "$HOST" "$CLAT_LOAD" "$@"; }

# gout CMD: runs CMD in the guest with its stdout in a file, then fetches
# that file over the console with its md5sum, retrying a fetch that arrives
# damaged (under load the TCG serial console now and then repeats a byte).
gout() {
	local out sum i
	vm_cmd vm "$1 >/tmp/gout 2>/tmp/gerr" >/dev/null || {
		echo "in the guest: $1 failed:" >&2
		vm_cmd vm 'cat /tmp/gerr' >&2
		return 1
	}
	for i in 1 2 3 4 5; do
		out=$(vm_cmd vm 'md5sum </tmp/gout; cat /tmp/gout') || return 1
		sum=$(head -1 <<<"$out" | cut -d' ' -f1)
		out=$(tail -n +2 <<<"$out")
		if [ "$(md5sum <<<"$out" | cut -d' ' -f1)" = "$sum" ]; then
			printf '%s\n' "$out"
			return 0
		fi
	done
	echo "gout: the output of '$1' arrived damaged 5 times" >&2
	return 1
}

gjson() { gout "$1" | grep '^{' | tail -1; }

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

@test "a real VM builds its tables in huge pages, announces them over virtio-serial, and reads the contexts the device wrote" {
	vm_skip_unless_ready
	vmhost_create 1
	TAP0=${TAP[0]} VF_MAC0=${VF_MAC[0]}
	local ram=/dev/shm/$GV.ram init bat chan ctx host_ctx guest_ctx svc
	vm_start vm "$HOST" "$TAP0" "$ram" "$VF_MAC0" "$VM_IP/24"

	# Scattered huge pages, a two-level CLAT (40000 services > 32 x 512).
	init=$(gjson 'clat-guest init --mem /dev/hugepages/clat --size 8M --type conn:ctx=128,block=4K,services=40000 --json')
	bat=$(jq .bat_gpa <<<"$init")
	assert_equal "$(jq '.types[0].levels' <<<"$init")" 2
	# The BAT is where the guest's pagemap says file offset 0 is: a huge
	# page's start, and the host finds the BAT's magic there in the RAM file.
	[ "$bat" -gt 0 ] && [ $((bat % (2 << 20))) -eq 0 ]
	assert_equal "$(od -An -tx4 -j "$bat" -N4 "$ram" | tr -d ' ')" \
		"$(printf '%08x' "$(grep -o 'CLAT_BAT_MAGIC 0x[0-9a-fA-F]*' "$ROOT/include/clat_abi.h" | cut -d' ' -f2)")"
	# A later process (show) finds the same pages: hugetlb pages stay put.
	run gout 'clat-guest show --mem /dev/hugepages/clat'
	assert_success
	assert_output --partial "$(printf 'bat_gpa 0x%x generation 1' "$bat")"

	vm_cmd vm 'clat-guest agent --mem /dev/hugepages/clat >/tmp/agent.log 2>&1 &'
	chan=unix:$(vm_chan vm)
	run hclat guest attach "$PF" --fn 1 --mem "$ram" --channel "$chan"
	assert_success
	assert_output --partial "$(printf 'BAT at GPA 0x%x, generation 1, 1 types' "$bat")"

	# A TCP connection from the wire into the VM gets a context; it stays
	# open (a closed one's context is released).
	vm_cmd vm 'nc -l -p 7000 >/tmp/got </dev/null &'
	sleep 1
	spawn ip netns exec "$WIRE_NS" sh -c \
		"(head -c 3000 /dev/zero | tr '\\0' x; sleep 120) | socat -u - TCP:$VM_IP:7000,sourceport=45000"
	local i
	for i in $(seq 50); do
		[ "$(vm_cmd vm 'wc -c </tmp/got' | tr -dc 0-9)" = 3000 ] && break
		sleep 0.2
	done
	run vm_cmd vm 'wc -c </tmp/got'
	assert_output --partial 3000
	run hclat guest sync "$PF" --fn 1
	assert_success
	host_ctx=$(hclat ctx list "$PF" --fn 1 --json | jq -c '.contexts[] | select(.remote_port == 45000)')
	[ -n "$host_ctx" ]
	svc=$(jq .svc <<<"$host_ctx")
	[ "$(jq .bytes_in <<<"$host_ctx")" -ge 3000 ]

	# The guest reads that context in its own RAM: same service number,
	# the counters the device wrote back.
	guest_ctx=$(gjson 'clat-guest ctx list --mem /dev/hugepages/clat --json' |
		jq -c '.contexts[] | select(.remote_port == 45000)')
	[ -n "$guest_ctx" ]
	assert_equal "$(jq -c '[.svc, .vm_port, .proto, .packets_in, .bytes_in, .packets_out, .bytes_out]' <<<"$guest_ctx")" \
		"$(jq -c '[.svc, .vm_port, .proto, .packets_in, .bytes_in, .packets_out, .bytes_out]' <<<"$host_ctx")"
	run gout "clat-guest ctx list --mem /dev/hugepages/clat"
	assert_output --partial "svc $svc live tcp $VM_IP:7000 <-> $WIRE_IP:45000"

	# The guest grows its tables (new pages and blocks in its huge pages);
	# the agent announces the new generation, and the host takes the change.
	run vm_cmd vm 'clat-guest grow --mem /dev/hugepages/clat --capacity 45000'
	assert_success
	run hclat guest attach "$PF" --fn 1 --mem "$ram" --channel "$chan"
	assert_success
	assert_output --partial "generation 2"
	run hclat guest resync "$PF" --fn 1 --json
	assert_success
	[ "$(grep '^{' <<<"$output" | jq -c '[.generation, .changed]')" = '[2,true]' ]
	run hclat ctx list "$PF" --fn 1 --json
	assert_equal "$(jq -c '.contexts[] | select(.remote_port == 45000) | .svc' <<<"$output")" "$svc"

	# Tables the guest breaks are refused by the agent itself, and the host
	# attaches nothing.
	run hclat guest detach "$PF" --fn 1
	assert_success
	run vm_cmd vm 'clat-guest corrupt --mem /dev/hugepages/clat --kind bad-magic'
	assert_success
	run hclat guest attach "$PF" --fn 1 --mem "$ram" --channel "$chan"
	assert_failure
	assert_output --partial "$(printf 'the agent says: invalid tables at GPA 0x%x: BAT at GPA 0x%x: bad magic' "$bat" "$bat")"
	run hclat ctx list "$PF" --fn 1 --json
	assert_equal "$(jq '.contexts | length' <<<"$output")" 0
}
