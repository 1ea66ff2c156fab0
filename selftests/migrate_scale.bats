#!/usr/bin/env bats
# Migration at scale: 10,000 idle UDP connections, seeded as contexts in guest
# memory before the attach, all arrive on host B, and a packet of each (run
# through B's live clat_rx) finds its context there.

load lib/common

FLOWS=10000
VM_PORT=5000
FIRST_PORT=20000

setup() {
	two_hosts_create 2
	MEM_A=$BATS_TEST_TMPDIR/vm-a.mem
	MEM_B=$BATS_TEST_TMPDIR/vm-b.mem
	# 10,000 flows in 12,000 slots (83% load): two 32-slot candidate
	# buckets place every flow below 90% load (test_arith simulates it).
	guest_init "$MEM_A" conn:ctx=128,block=4096,services=12000
}

teardown() {
	reap
	two_hosts_destroy
}

# fn_counter HOST PF FN NAME
fn_counter() {
	in_host "$1" "$CLAT_LOAD" stats "$2" --json |
		jq --argjson fn "$3" --arg s "$4" '(.fns[] | select(.fn == $fn) | .counters[$s]) // 0'
}

@test "10,000 idle connections migrate, and a packet of each finds its context on B" {
	run "$BIN/clat-guest" seed --mem "$MEM_A" --bat-gpa "$BAT" --count "$FLOWS" \
		--vm-addr "$VM_IP" --vm-port "$VM_PORT" --remote-addr "$WIRE_IP" \
		--first-port "$FIRST_PORT" --proto udp --json
	assert_success
	assert_equal "$(jq .seeded <<<"$output")" "$FLOWS"

	# The attach loads them all.
	run in_host "$HOST_A" "$CLAT_LOAD" guest attach "$PF_A" --fn 1 --mem "$MEM_A" --bat-gpa "$BAT" --json
	assert_success
	assert_equal "$(jq .live_contexts <<<"$output")" "$FLOWS"
	local svcs_a svcs_b
	svcs_a=$(ctx_on "$HOST_A" "$PF_A" 1 | jq -c '[.contexts[].svc] | sort')
	assert_equal "$(jq length <<<"$svcs_a")" "$FLOWS"

	run migrate
	assert_success
	local report=$output
	echo "# $FLOWS contexts: downtime $(jq .downtime_ns <<<"$report") ns, prepare $(jq .prepare.ns <<<"$report") ns (live_contexts $(jq .prepare.live_contexts <<<"$report"))" >&3
	assert_equal "$(jq .prepare.live_contexts <<<"$report")" "$FLOWS"

	# Host A's fn is free.
	assert_equal "$(in_host "$HOST_A" "$CLAT_LOAD" status "$PF_A" --json | jq '[.fns[] | select(.fn == 1)] | length')" 0

	# All of them are on B, at the same service numbers.
	svcs_b=$(ctx_on "$HOST_B" "$PF_B" 2 | jq -c '[.contexts[].svc] | sort')
	assert_equal "$(jq length <<<"$svcs_b")" "$FLOWS"
	[ "$svcs_a" = "$svcs_b" ]

	# One packet per flow through B's live clat_rx, remote -> VM.
	run "$BIN/flowgen" --prog "/sys/fs/bpf/clat/$PF_B/prog_rx" \
		--dst-mac "$VM_MAC" --src-mac 02:00:5e:00:00:01 --vm-addr "$VM_IP" \
		--vm-port "$VM_PORT" --remote-addr "$WIRE_IP" --first-port "$FIRST_PORT" \
		--count "$FLOWS" --proto udp
	assert_success
	assert_equal "$(jq .sent <<<"$output")" "$FLOWS"
	assert_equal "$(jq .redirected <<<"$output")" "$FLOWS"

	# Every packet found its migrated context; none claimed a new one.
	assert_equal "$(fn_counter "$HOST_B" "$PF_B" 2 ctx_hit)" "$FLOWS"
	assert_equal "$(fn_counter "$HOST_B" "$PF_B" 2 ctx_claim)" 0
	run ctx_on "$HOST_B" "$PF_B" 2
	assert_equal "$(jq '[.contexts[] | select(.packets_in == 1)] | length' <<<"$output")" "$FLOWS"
	assert_equal "$(jq '[.contexts[].svc] | sort' -c <<<"$output")" "$svcs_a"
}
