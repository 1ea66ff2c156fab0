#!/usr/bin/env bats
# Hot upgrade: `clat-load upgrade` swaps the datapath under live traffic, on
# the same pinned maps, and refuses objects it cannot run without changing
# anything.

load lib/common

SEQ=$BIN/seqstream

setup() {
	guest_topo attach
}

teardown() {
	reap
	topo_destroy
}

# Program ids of every link, sorted, one line.
link_prog_ids() {
	"$CLAT_LOAD" status "$PF" --json | jq -c '[.programs[].prog_id] | sort'
}

# Everything an upgrade may touch: links with their programs, pins, map ids.
snapshot() {
	"$CLAT_LOAD" status "$PF" --json | jq -c '{layout_version, programs: (.programs | sort_by(.ifindex))}'
	ls "/sys/fs/bpf/clat/$PF"
	bpftool -j map show pinned "/sys/fs/bpf/clat/$PF/vct" | jq .id
}

udp_in() { # fn: packets_in of its UDP context, 0 if none yet
	ctx_json "$1" | jq '[.contexts[] | select(.proto == "udp") | .packets_in] | add // 0'
}

tcp_in() {
	ctx_json "$1" | jq '[.contexts[] | select(.proto == "tcp") | .packets_in] | add // 0'
}

@test "20 upgrades in a row under a UDP and a TCP stream: nothing lost, counters continue" {
	local d=$BATS_TEST_TMPDIR i before u t pu=0 pt=0 usend tsend urecv trecv sent
	wire ping -c 1 -W 2 "${VM_IP[0]}" >/dev/null # ARP both ways before the streams
	bg "$d/udp-recv" ip netns exec "${VM_NS[0]}" "$SEQ" udp-recv 5000 1
	urecv=$BG_PID
	bg "$d/tcp-recv" ip netns exec "${VM_NS[0]}" "$SEQ" tcp-recv 7000
	trecv=$BG_PID
	wait_listen "${VM_NS[0]}" 7000
	# Paced well below what a veth ring and the receive buffers absorb, so a
	# loss can only come from the datapath.
	bg "$d/udp-send" ip netns exec "$WIRE_NS" "$SEQ" udp-send "${VM_IP[0]}" 5000 0 500 1
	usend=$BG_PID
	bg "$d/tcp-send" ip netns exec "$WIRE_NS" "$SEQ" tcp-send "${VM_IP[0]}" 7000 0 200000
	tsend=$BG_PID
	for i in $(seq 50); do
		[ "$(udp_in 1)" -gt 0 ] && [ "$(tcp_in 1)" -gt 0 ] && break
		sleep 0.1
	done
	before=$(link_prog_ids)

	for i in $(seq 20); do
		run "$CLAT_LOAD" upgrade "$PF" --json
		assert_success
		assert_equal "$(jq '.links' <<<"$output")" 4 # PF, host port, 2 VFs
		[ "$(jq '.programs[0].new_id' <<<"$output")" != "$(jq '.programs[0].old_id' <<<"$output")" ]
		u=$(udp_in 1) t=$(tcp_in 1)
		[ "$u" -ge "$pu" ] || fail "UDP context went back from $pu to $u after upgrade $i"
		[ "$t" -ge "$pt" ] || fail "TCP context went back from $pt to $t after upgrade $i"
		pu=$u pt=$t
	done
	kill -0 "$usend" || fail "the UDP stream ended before the upgrades did"

	kill -TERM "$usend" "$tsend"
	wait "$usend" "$tsend" "$urecv" "$trecv"
	sent=$(jq .sent "$d/udp-send")
	[ "$sent" -gt "$pu" ]
	assert_equal "$(jq .received "$d/udp-recv")" "$sent"
	assert_equal "$(jq .gaps "$d/udp-recv")" 0
	assert_equal "$(jq .duplicates "$d/udp-recv")" 0
	assert_equal "$(jq .bytes "$d/tcp-recv")" "$(jq .sent "$d/tcp-send")"
	assert_equal "$(jq .corrupt "$d/tcp-recv")" 0
	assert_equal "$(jq .eof "$d/tcp-recv")" true
	# One context saw every datagram, across 21 programs.
	assert_equal "$(udp_in 1)" "$sent"
	[ "$pt" -gt 0 ] # the TCP context counted all along (it is released at FIN)
	# No link runs a program it ran before the upgrades.
	[ "$(link_prog_ids | jq --argjson b "$before" '[.[] | select(. as $x | $b | index($x))] | length')" = 0 ]
	assert_equal "$("$CLAT_LOAD" status "$PF" --json | jq .layout_version)" \
		"$(sed -n 's/^#define CLAT_MAP_LAYOUT_VERSION \([0-9]*\).*/\1/p' "$ROOT/include/clat_abi.h")"
}

@test "upgrade of a PF that is not attached fails with a clear error" {
	"$CLAT_LOAD" detach "$PF"
	run "$CLAT_LOAD" upgrade "$PF"
	assert_failure
	assert_output --partial "clat is not attached to $PF"
	run "$CLAT_LOAD" upgrade "nosuch$RANDOM"
	assert_failure
	assert_output --partial "is not attached"
	[ ! -e "/sys/fs/bpf/clat/$PF" ]
}

@test "an object with another layout version is refused and nothing changes" {
	local before
	before=$(snapshot)
	run "$CLAT_LOAD" upgrade "$PF" --obj "$BIN/selftests/upgrade_layout_bump.bpf.o"
	assert_failure
	assert_output --partial "has map layout version 999"
	assert_output --partial "nothing changed"
	assert_equal "$(snapshot)" "$before"
}

@test "an object whose maps differ from the pinned ones is refused and nothing changes" {
	local before
	before=$(snapshot)
	run "$CLAT_LOAD" upgrade "$PF" --obj "$BIN/selftests/upgrade_map_mismatch.bpf.o"
	assert_failure
	assert_output --partial "map 'vct'"
	assert_output --partial "does not match the pinned map"
	assert_equal "$(snapshot)" "$before"
	run "$CLAT_LOAD" upgrade "$PF" --obj "$BATS_TEST_TMPDIR/missing.bpf.o"
	assert_failure
	assert_output --partial "failed to open BPF object"
	assert_equal "$(snapshot)" "$before"
}

@test "a switch that fails midway rolls every link back" {
	local before
	before=$(snapshot)
	CLAT_TEST_UPGRADE_FAIL=3 run "$CLAT_LOAD" upgrade "$PF"
	assert_failure
	assert_output --partial "rolling back to the old programs"
	assert_equal "$(snapshot)" "$before"
	run "$CLAT_LOAD" upgrade "$PF"
	assert_success
}

@test "--obj from disk keeps the attach options and the functions" {
	local mac=02:00:00:00:99:99 before
	"$CLAT_LOAD" detach "$PF"
	attach --unknown-unicast drop
	before=$("$CLAT_LOAD" status "$PF" --json | jq -c .fns)
	run "$CLAT_LOAD" upgrade "$PF" --obj "$BIN/clat.bpf.o" --json
	assert_success
	# unknown_unicast, evict_age_ns and plain_uplink: every const volatile option.
	assert_equal "$(jq .options_kept <<<"$output")" 3
	assert_equal "$("$CLAT_LOAD" status "$PF" --json | jq -c .fns)" "$before"
	# A frame to an unknown MAC is still dropped, as attach was told.
	wire ip neigh replace "$NET.99" lladdr "$mac" dev "$WIRE_PORT"
	wire ping -c 1 -W 1 "$NET.99" >/dev/null || true
	assert_equal "$(counter 256 drop_unknown)" 1
	assert_equal "$(counter 256 pass_unknown)" 0
	# and traffic to a VM still gets through.
	wire ping -c 1 -W 2 "${VM_IP[1]}" >/dev/null
	# Guest tables still attach on the upgraded datapath, and track flows.
	"$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$BAT"
	wire socat -u - "UDP4-SENDTO:${VM_IP[0]}:5000,sourceport=6000" <<<hello
	assert_equal "$(udp_in 1)" 1
}
