#!/usr/bin/env bats
# Incremental shadow sync: the guest grows its tables while traffic flows
# (more capacity, more CLAT levels, a new service type) and
# `clat-load guest resync` brings the device's shadow up to date without
# moving a live context and reading only what changed.

load lib/common

setup() {
	topo_create 1
	attach
	MEM=$BATS_TEST_TMPDIR/guest.mem
	# P = 16 contexts per block, C = 8 entries per page: 100 services fit in
	# one level, 1000 need two, 5000 need three.
	guest_init "$MEM" conn:ctx=256,block=4096,services=100,entries=8,proto=tcp
	"$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$BAT"
}

teardown() {
	reap
	topo_destroy
}

grow() { "$BIN/clat-guest" grow --mem "$MEM" --bat-gpa "$BAT" --json "$@"; }
resync() { "$CLAT_LOAD" guest resync "$PF" --fn 1 --json; }
device_generation() {
	"$CLAT_LOAD" status "$PF" --json | jq '.fns[] | select(.fn == 1) | .generation'
}

# A TCP connection from the wire to the VM that sends a line every 50 ms.
stream() {
	spawn bash -c "while :; do echo x; sleep 0.05; done | ip netns exec $WIRE_NS socat - TCP:${VM_IP[0]}:7000,sourceport=$1"
}

# ctx_of PORT: the context of the stream from remote port PORT.
ctx_of() {
	ctx_json 1 | jq -c --argjson p "$1" '.contexts[] | select(.remote_port == $p)'
}

wait_ctx() {
	local i
	for ((i = 0; i < 50; i++)); do
		[ -n "$(ctx_of "$1")" ] && return 0
		sleep 0.1
	done
	fail "no context for remote port $1"
}

@test "TCP streams keep their service numbers and counters across 1 -> 2 -> 3 levels and a new type" {
	spawn ip netns exec "${VM_NS[0]}" socat TCP-LISTEN:7000,reuseaddr,fork EXEC:cat
	wait_listen "${VM_NS[0]}" 7000
	stream 41001
	stream 41002
	wait_ctx 41001
	wait_ctx 41002
	local svc1 svc2 p1 p2 g out
	svc1=$(ctx_of 41001 | jq .svc)
	svc2=$(ctx_of 41002 | jq .svc)

	# One level -> two: a new segment of fresh blocks, no re-root.
	g=$(grow --capacity 1000)
	assert_equal "$(jq .levels <<<"$g")" 2
	assert_equal "$(jq .segment.first_svc <<<"$g")" 113
	run resync
	assert_success
	assert_equal "$(jq .changed <<<"$output")" true
	assert_equal "$(jq .segments_added <<<"$output")" 1
	assert_equal "$(jq .blocks_new <<<"$output")" "$(jq .new_blocks <<<"$g")"
	assert_equal "$(jq .pages_new <<<"$output")" "$(jq .new_pages <<<"$g")"
	assert_equal "$(jq .contexts_read <<<"$output")" $((1000 - 112))
	assert_equal "$(device_generation)" "$(jq .generation <<<"$g")"
	p1=$(ctx_of 41001 | jq .packets_in)
	p2=$(ctx_of 41002 | jq .packets_in)
	sleep 1
	out=$(ctx_of 41001)
	assert_equal "$(jq .svc <<<"$out")" "$svc1"
	[ "$(jq .packets_in <<<"$out")" -gt "$p1" ] || fail "stream 1 stopped counting: $out"
	out=$(ctx_of 41002)
	assert_equal "$(jq .svc <<<"$out")" "$svc2"
	[ "$(jq .packets_in <<<"$out")" -gt "$p2" ] || fail "stream 2 stopped counting: $out"
	# A new connection takes its number from the new segment.
	stream 41003
	wait_ctx 41003
	out=$(ctx_of 41003 | jq .svc)
	[ "$out" -ge 113 ] && [ "$out" -le 1000 ] || fail "new flow at svc $out, not in 113..1000"

	# Two levels -> three: the CLAT is re-rooted above the old level-1 page.
	g=$(grow --capacity 5000)
	assert_equal "$(jq .levels <<<"$g")" 3
	run resync
	assert_success
	assert_equal "$(jq .segments_added <<<"$output")" 1
	assert_equal "$(jq .contexts_read <<<"$output")" $((5000 - 1008))
	p1=$(ctx_of 41001 | jq .packets_in)
	sleep 1
	out=$(ctx_of 41001)
	assert_equal "$(jq .svc <<<"$out")" "$svc1"
	[ "$(jq .packets_in <<<"$out")" -gt "$p1" ] || fail "stream 1 stopped counting: $out"
	stream 41004
	wait_ctx 41004
	out=$(ctx_of 41004 | jq .svc)
	[ "$out" -ge 1009 ] && [ "$out" -le 5000 ] || fail "new flow at svc $out, not in 1009..5000"

	# UDP has no type yet; a second type makes it tracked.
	wire socat -u - "UDP4-SENDTO:${VM_IP[0]}:5000,sourceport=6000" <<<x
	assert_equal "$(ctx_json 1 | jq '[.contexts[] | select(.proto == "udp")] | length')" 0
	"$BIN/clat-guest" add-type --mem "$MEM" --bat-gpa "$BAT" \
		--type dns:ctx=256,block=4096,services=300,proto=udp --json >/dev/null
	run resync
	assert_success
	assert_equal "$(jq .types_added <<<"$output")" 1
	wire socat -u - "UDP4-SENDTO:${VM_IP[0]}:5000,sourceport=6000" <<<x
	out=$(ctx_json 1 | jq -c '.contexts[] | select(.proto == "udp")')
	assert_equal "$(jq .type <<<"$out")" 1
	assert_equal "$(jq .packets_in <<<"$out")" 1

	# Every stream still has its number, and a write-back agrees with the guest.
	assert_equal "$(ctx_of 41001 | jq .svc)" "$svc1"
	assert_equal "$(ctx_of 41002 | jq .svc)" "$svc2"
	run "$CLAT_LOAD" guest sync "$PF" --fn 1
	assert_success
	run "$BIN/clat-guest" show --mem "$MEM" --bat-gpa "$BAT" --json
	assert_success
	assert_equal "$(jq --argjson s "$svc1" '[.types[0].contexts[] | select(.svc == $s)] | length' <<<"$output")" 1
}

@test "resync work follows the change, not the table: one more block of a 4-level table" {
	"$CLAT_LOAD" guest detach "$PF" --fn 1
	guest_init "$MEM" big:ctx=256,block=4096,services=60000,entries=8
	"$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$BAT"
	run grow --capacity 60010
	assert_success
	assert_equal "$(jq .levels <<<"$output")" 4
	run resync
	assert_success
	# 3750 blocks and 536 pages in the table; the change is one block
	# (svc 60001..60010) under one path of 4 pages of 8 entries.
	[ "$(jq .entries_read <<<"$output")" -le 32 ] || fail "read too much: $output"
	assert_equal "$(jq .contexts_read <<<"$output")" 10
	assert_equal "$(jq .blocks_new <<<"$output")" 1
	run "$CLAT_LOAD" guest resync "$PF" --fn 1 --json
	assert_success
	assert_equal "$(jq .changed <<<"$output")" false
}

# hostile KIND WANT [CAPACITY]: grow, damage the new part, resync must fail
# naming it, and the old shadow keeps serving.
hostile() {
	local kind=$1 want=$2 cap=${3:-1000} gen pool
	gen=$(device_generation)
	pool=$("$CLAT_LOAD" status "$PF" --json | jq -c '.pool | [.used, .staged]')
	grow --capacity "$cap" >/dev/null
	run "$BIN/clat-guest" corrupt --mem "$MEM" --bat-gpa "$BAT" --kind "$kind"
	assert_success
	run "$CLAT_LOAD" guest resync "$PF" --fn 1
	assert_failure
	assert_output --partial "failed to resync fn 1"
	assert_output --partial "$want"
	assert_output --partial "the device keeps serving generation $gen"
	assert_equal "$(device_generation)" "$gen"
	# Nothing of the refused change is on the device.
	assert_equal "$("$CLAT_LOAD" status "$PF" --json | jq -c '.pool | [.used, .staged]')" "$pool"
	# And the old shadow still tracks flows.
	spawn ip netns exec "${VM_NS[0]}" socat TCP-LISTEN:7000,reuseaddr,fork EXEC:cat
	wait_listen "${VM_NS[0]}" 7000
	stream 42001
	wait_ctx 42001
	[ "$(ctx_of 42001 | jq .svc)" -le 100 ] || fail "a flow went to a refused segment"
}

@test "hostile growth: a new entry pointing outside guest memory is refused" {
	hostile gpa-out-of-range "outside guest memory"
}

@test "hostile growth: a new block that is an existing block is refused" {
	hostile shared-new-block "already belongs to the attached tables"
}

@test "hostile growth: a cycle introduced by a re-root is refused" {
	hostile cycle "re-root: entry 0 must lead to the old level-1 page" 5000
}

@test "hostile growth: changing a live segment or the geometry is refused" {
	grow --capacity 1000 >/dev/null
	# Rewrite segment 0's size in the BAT: the device serves 1..100.
	local off
	off=$((BAT + 16 + 60))
	printf '\x32\x00\x00\x00' | dd of="$MEM" bs=1 seek="$off" conv=notrunc status=none
	run "$CLAT_LOAD" guest resync "$PF" --fn 1
	assert_failure
	assert_output --partial "segment 0 is services 1..50 in the BAT but 1..100 on the device"
}

@test "clat-guest grow refuses what cannot be grown, and changes nothing" {
	local before
	before=$(sha256sum <"$MEM")
	run "$BIN/clat-guest" grow --mem "$MEM" --bat-gpa "$BAT" --capacity 100
	assert_equal "$status" 2
	assert_output --partial "does not grow past 112"
	run "$BIN/clat-guest" grow --mem "$MEM" --bat-gpa "$BAT" --capacity 999999
	assert_equal "$status" 2
	assert_output --partial "needs more than 4 CLAT levels"
	run "$BIN/clat-guest" grow --mem "$MEM" --bat-gpa "$BAT"
	assert_equal "$status" 2
	run "$BIN/clat-guest" add-type --mem "$MEM" --bat-gpa "$BAT" --type conn:ctx=256,block=4096,services=10
	assert_equal "$status" 2
	assert_output --partial "already named 'conn'"
	assert_equal "$(sha256sum <"$MEM")" "$before"
	run "$CLAT_LOAD" guest resync "$PF" --fn 9
	assert_failure
	assert_output --partial "fn 9 has no guest tables attached"
}

# pool_used: contexts of the pool in use, on the whole PF.
pool_used() { "$CLAT_LOAD" status "$PF" --json | jq '.pool.used'; }

@test "a drained older segment is folded away by gc; a live one is not, and its flows are found" {
	spawn ip netns exec "${VM_NS[0]}" socat TCP-LISTEN:7000,reuseaddr,fork EXEC:cat
	wait_listen "${VM_NS[0]}" 7000
	stream 42001
	wait_ctx 42001
	local svc used1 used2 out
	svc=$(ctx_of 42001 | jq .svc)
	grow --capacity 1000 >/dev/null
	run resync
	assert_success
	# The old segment still holds a live flow: the resync folds nothing.
	assert_equal "$(jq .segments_folded <<<"$output")" 0
	used1=$(pool_used)
	# The old segment still holds a live flow: gc keeps it on the device.
	run "$CLAT_LOAD" gc "$PF" --json
	assert_success
	assert_equal "$(jq .segments_folded <<<"$output")" 0
	assert_equal "$(pool_used)" "$used1"
	# A flow opened now goes to the new segment (services 101..1000).
	stream 42002
	wait_ctx 42002
	[ "$(ctx_of 42002 | jq .svc)" -gt 100 ]
	# The old segment's flow ends; gc folds the drained segment away.
	kill -- -"${SPAWNED[1]}" # the stream of 42001, its whole group
	for _ in $(seq 50); do
		[ "$(ctx_of 42001 | jq -r .state)" != live ] && break
		sleep 0.1
	done
	run "$CLAT_LOAD" gc "$PF" --json
	assert_success
	assert_equal "$(jq .segments_folded <<<"$output")" 1
	used2=$(pool_used)
	[ "$used2" -lt "$used1" ]
	# The new segment's flow is still found and counted.
	out=$(ctx_of 42002 | jq .packets_in)
	sleep 0.3
	[ "$(ctx_of 42002 | jq .packets_in)" -gt "$out" ]
	# and a write-back after the fold still matches the guest's tables.
	run "$CLAT_LOAD" guest sync "$PF" --fn 1
	assert_success
	# A detach and attach rebuilds without the drained segment.
	"$CLAT_LOAD" guest detach "$PF" --fn 1 >/dev/null
	"$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$BAT" >/dev/null
	assert_equal "$(pool_used)" "$used2"
}
