#!/usr/bin/env bats
# Live migration of a VM between two emulated hosts: its contexts travel in
# guest memory, host B rebuilds its maps and repoints one VCT entry.

load lib/common

setup() {
	two_hosts_create 2
	MEM_A=$BATS_TEST_TMPDIR/vm-a.mem
	MEM_B=$BATS_TEST_TMPDIR/vm-b.mem
	guest_init "$MEM_A" conn:ctx=256,block=4096,services=30000
	in_host "$HOST_A" "$CLAT_LOAD" guest attach "$PF_A" --fn 1 --mem "$MEM_A" --bat-gpa "$BAT" 2>/dev/null
}

teardown() {
	reap
	two_hosts_destroy
}

@test "a live TCP stream keeps flowing across a migration, with its context" {
	spawn ip netns exec "$VM" socat -u TCP-LISTEN:7000,reuseaddr "CREATE:$BATS_TEST_TMPDIR/recv"
	wait_listen "$VM" 7000
	# 200 lines, one every 40 ms: the stream spans the migration.
	spawn bash -c "for i in \$(seq 200); do printf 'line %05d\n' \$i; sleep 0.04; done | ip netns exec $WIRE_NS socat -u - TCP:$VM_IP:7000,sourceport=44000"
	sleep 2
	local before after svc
	before=$(ctx_on "$HOST_A" "$PF_A" 1 | jq '.contexts[] | select(.remote_port == 44000)')
	svc=$(jq .svc <<<"$before")
	[ -n "$svc" ]
	run migrate
	assert_success
	local report=$output
	echo "# downtime $(jq .downtime_ns <<<"$report") ns; phases: $(jq -c '{stop_copy, delta_copy, vm_move, switch}' <<<"$report")" >&3
	# Host A's fn is free and its maps are gone.
	assert_equal "$(in_host "$HOST_A" "$CLAT_LOAD" status "$PF_A" --json | jq '[.fns[] | select(.fn == 1)] | length')" 0
	[ -z "$(ls "/sys/fs/bpf/clat/$PF_A" | grep _fn1_)" ]
	sleep 2 # the stream goes on through host B
	after=$(ctx_on "$HOST_B" "$PF_B" 2 | jq '.contexts[] | select(.remote_port == 44000)')
	assert_equal "$(jq .svc <<<"$after")" "$svc"
	assert_equal "$(jq .first_seen_ns <<<"$after")" "$(jq .first_seen_ns <<<"$before")"
	# Counters continue from A's values.
	[ "$(jq .packets_in <<<"$after")" -gt "$(jq .packets_in <<<"$before")" ]
	[ "$(jq .bytes_in <<<"$after")" -gt "$(jq .bytes_in <<<"$before")" ]
	assert_equal "$(in_host "$HOST_B" "$CLAT_LOAD" stats "$PF_B" --json | jq '.fns[] | select(.fn == 2) | .counters.ctx_claim')" 0
	# Every line arrived exactly once, and the flow closed on B.
	for _ in $(seq 100); do [ "$(wc -l <"$BATS_TEST_TMPDIR/recv")" -ge 200 ] && break; sleep 0.1; done
	assert_equal "$(wc -l <"$BATS_TEST_TMPDIR/recv")" 200
	assert_equal "$(sort -u "$BATS_TEST_TMPDIR/recv" | wc -l)" 200
	sleep 0.5
	[ "$(in_host "$HOST_B" "$CLAT_LOAD" stats "$PF_B" --json | jq '.fns[] | select(.fn == 2) | .counters.ctx_release')" -ge 1 ]
}

@test "a flow opened during pre-copy survives, and the UDP gap is measured" {
	wire_udp() { ip netns exec "$WIRE_NS" socat -u - "UDP4-SENDTO:$VM_IP:$1,sourceport=$2"; }
	spawn ip netns exec "$VM" socat -u UDP4-RECV:9100 "CREATE:$BATS_TEST_TMPDIR/udp"
	sleep 0.3
	# A sequence-numbered UDP stream at a fixed rate (every 10 ms) across the move.
	spawn bash -c "for i in \$(seq 600); do printf '%05d\n' \$i; sleep 0.01; done | ip netns exec $WIRE_NS socat -u - UDP4-SENDTO:$VM_IP:9100,sourceport=9200"
	local sender=${SPAWNED[-1]}
	sleep 1
	# Opened after the pre-copy rounds (held there 1 s), before the pause:
	# only the final delta carries its block to B.
	spawn bash -c "sleep 0.5; echo hello | ip netns exec $WIRE_NS socat -u - UDP4-SENDTO:$VM_IP:9300,sourceport=9301"
	CLAT_TEST_STALL=pre_copy:1 run migrate
	assert_success
	[ "$(jq .switch.blocks_reloaded <<<"$output")" -ge 1 ]
	# Count once the sender is done: on a loaded machine its 600 sends
	# take longer than 6 s (fewer are then lost in the same downtime).
	for _ in $(seq 400); do kill -0 "$sender" 2>/dev/null || break; sleep 0.1; done
	sleep 0.5
	local got first_missing last_seq
	got=$(sort -u "$BATS_TEST_TMPDIR/udp" | wc -l)
	echo "# UDP stream: $got of 600 datagrams arrived; $((600 - got)) lost in the switchover (10 ms apart)" >&3
	[ "$got" -gt 300 ]
	echo again | wire_udp 9300 9301
	run ctx_on "$HOST_B" "$PF_B" 2
	assert_equal "$(jq '[.contexts[] | select(.remote_port == 9301)] | length' <<<"$output")" 1
	assert_equal "$(jq '.contexts[] | select(.remote_port == 9301) | .packets_in' <<<"$output")" 2
}

@test "hostile incoming tables are refused: nothing on B, the VM stays on A" {
	cp "$MEM_A" "$BATS_TEST_TMPDIR/bad.mem"
	"$BIN/clat-guest" corrupt --mem "$BATS_TEST_TMPDIR/bad.mem" --bat-gpa "$BAT" --kind gpa-out-of-range 2>/dev/null
	run in_host "$HOST_B" "$CLAT_LOAD" migrate-in "$PF_B" --fn 2 --mac "$VM_MAC" --mem "$BATS_TEST_TMPDIR/bad.mem" --bat-gpa "$BAT"
	assert_equal "$status" 1
	assert_output --partial "outside guest memory"
	assert_equal "$(bpftool -j map dump pinned "/sys/fs/bpf/clat/$PF_B/vct" | jq '.[2].formatted.value.bat_gpa')" 0
	[ -z "$(ls "/sys/fs/bpf/clat/$PF_B" | grep _fn2_)" ]
	run ip netns exec "$WIRE_NS" ping -c 1 -W 2 "$VM_IP"
	assert_success
	assert_equal "$(in_host "$HOST_A" "$CLAT_LOAD" status "$PF_A" --json | jq -r '.fns[] | select(.fn == 1) | .state')" active
}

@test "migrate-out killed while paused: --abort resumes the source, a rerun completes" {
	ip netns exec "$WIRE_NS" socat -u - "UDP4-SENDTO:$VM_IP:9400,sourceport=9401" <<<"x"
	CLAT_TEST_STALL=stop_copy in_host "$HOST_A" "$CLAT_LOAD" migrate-out "$PF_A" --fn 1 &
	local pid=$!
	for _ in $(seq 50); do
		[ "$(in_host "$HOST_A" "$CLAT_LOAD" status "$PF_A" --json | jq -r '.fns[] | select(.fn == 1) | .state')" = quiesced ] && break
		sleep 0.1
	done
	kill -9 "$pid"
	wait "$pid" || true
	assert_equal "$(in_host "$HOST_A" "$CLAT_LOAD" status "$PF_A" --json | jq -r '.fns[] | select(.fn == 1) | .state')" quiesced
	run ip netns exec "$WIRE_NS" ping -c 1 -W 1 "$VM_IP"
	assert_failure # paused: frames are dropped and counted
	[ "$(in_host "$HOST_A" "$CLAT_LOAD" stats "$PF_A" --json | jq '.fns[] | select(.fn == 1) | .counters.drop_quiesced')" -ge 1 ]
	in_host "$HOST_A" "$CLAT_LOAD" migrate-out "$PF_A" --fn 1 --abort
	run ip netns exec "$WIRE_NS" ping -c 1 -W 2 "$VM_IP"
	assert_success
	assert_equal "$(ctx_on "$HOST_A" "$PF_A" 1 | jq '[.contexts[] | select(.remote_port == 9401)] | length')" 1
	# Killed again, then simply rerun: it completes and nothing is lost.
	CLAT_TEST_STALL=stop_copy in_host "$HOST_A" "$CLAT_LOAD" migrate-out "$PF_A" --fn 1 &
	pid=$!
	sleep 1
	kill -9 "$pid"
	wait "$pid" || true
	run in_host "$HOST_A" "$CLAT_LOAD" migrate-out "$PF_A" --fn 1 --json
	assert_success
	run "$BIN/clat-guest" show --mem "$MEM_A" --bat-gpa "$BAT" --json
	assert_equal "$(jq '[.types[0].contexts[] | select(.remote_port == 9401)] | length' <<<"$output")" 1
	# And the destination takes it from guest memory.
	cp "$MEM_A" "$MEM_B"
	in_host "$HOST_B" "$CLAT_LOAD" migrate-in "$PF_B" --fn 2 --mac "$VM_MAC" --mem "$MEM_B" --bat-gpa "$BAT"
	assert_equal "$(ctx_on "$HOST_B" "$PF_B" 2 | jq '[.contexts[] | select(.remote_port == 9401)] | length')" 1
}

@test "migrate-in killed before its switch leaves nothing; a rerun completes" {
	ip netns exec "$WIRE_NS" socat -u - "UDP4-SENDTO:$VM_IP:9500,sourceport=9501" <<<"x"
	in_host "$HOST_A" "$CLAT_LOAD" migrate-out "$PF_A" --fn 1
	cp "$MEM_A" "$MEM_B"
	# nsenter execs clat-load: $! is the process to kill, not a subshell.
	CLAT_TEST_STALL=commit nsenter --net="/run/netns/$HOST_B" "$CLAT_LOAD" migrate-in "$PF_B" --fn 2 --mac "$VM_MAC" --mem "$MEM_B" --bat-gpa "$BAT" &
	local pid=$!
	sleep 1.5
	kill -9 "$pid"
	wait "$pid" || true
	assert_equal "$(bpftool -j map dump pinned "/sys/fs/bpf/clat/$PF_B/vct" | jq '.[2].formatted.value.bat_gpa')" 0
	[ -z "$(ls "/sys/fs/bpf/clat/$PF_B" | grep _fn2_)" ]
	run in_host "$HOST_B" "$CLAT_LOAD" migrate-in "$PF_B" --fn 2 --mac "$VM_MAC" --mem "$MEM_B" --bat-gpa "$BAT" --json
	assert_success
	assert_equal "$(jq .live_contexts <<<"$output")" 1
	assert_equal "$(ctx_on "$HOST_B" "$PF_B" 2 | jq '[.contexts[] | select(.remote_port == 9501)] | length')" 1
}

@test "migrate-out killed during pre-copy: the source never stopped serving" {
	ip netns exec "$WIRE_NS" socat -u - "UDP4-SENDTO:$VM_IP:9600,sourceport=9601" <<<"x"
	CLAT_TEST_STALL=pre_copy in_host "$HOST_A" "$CLAT_LOAD" migrate-out "$PF_A" --fn 1 &
	local pid=$!
	sleep 1.5
	kill -9 "$pid"
	wait "$pid" || true
	assert_equal "$(in_host "$HOST_A" "$CLAT_LOAD" status "$PF_A" --json | jq -r '.fns[] | select(.fn == 1) | .state')" active
	run ip netns exec "$WIRE_NS" ping -c 1 -W 2 "$VM_IP"
	assert_success
	ip netns exec "$WIRE_NS" socat -u - "UDP4-SENDTO:$VM_IP:9600,sourceport=9601" <<<"y"
	assert_equal "$(ctx_on "$HOST_A" "$PF_A" 1 | jq '.contexts[] | select(.remote_port == 9601) | .packets_in')" 2
	# A rerun completes.
	run in_host "$HOST_A" "$CLAT_LOAD" migrate-out "$PF_A" --fn 1
	assert_success
	run "$BIN/clat-guest" show --mem "$MEM_A" --bat-gpa "$BAT" --json
	assert_equal "$(jq '.types[0].contexts[] | select(.remote_port == 9601) | .packets_in' <<<"$output")" 2
}

@test "a guest that grows its tables during pre-copy fails migrate-out before the pause" {
	ip netns exec "$WIRE_NS" socat -u - "UDP4-SENDTO:$VM_IP:9700,sourceport=9701" <<<"x"
	# The write-back validated the tables in its first round; the stop-copy
	# reuses them, so it must notice that the guest moved on.
	CLAT_TEST_STALL=pre_copy:2 in_host "$HOST_A" "$CLAT_LOAD" migrate-out "$PF_A" --fn 1 \
		2>"$BATS_TEST_TMPDIR/out.err" &
	local pid=$! rc=0
	sleep 0.5
	"$BIN/clat-guest" grow --mem "$MEM_A" --bat-gpa "$BAT" --capacity 45000 >/dev/null
	wait "$pid" || rc=$?
	[ "$rc" -ne 0 ]
	run cat "$BATS_TEST_TMPDIR/out.err"
	assert_output --partial "guest tables changed"
	assert_output --partial "run 'guest resync' first"
	# Never paused: the fn serves, and its context kept counting.
	assert_equal "$(in_host "$HOST_A" "$CLAT_LOAD" status "$PF_A" --json | jq -r '.fns[] | select(.fn == 1) | .state')" active
	ip netns exec "$WIRE_NS" socat -u - "UDP4-SENDTO:$VM_IP:9700,sourceport=9701" <<<"y"
	assert_equal "$(ctx_on "$HOST_A" "$PF_A" 1 | jq '.contexts[] | select(.remote_port == 9701) | .packets_in')" 2
	# After a resync the migration completes, and the context is in guest memory.
	in_host "$HOST_A" "$CLAT_LOAD" guest resync "$PF_A" --fn 1 >/dev/null
	run in_host "$HOST_A" "$CLAT_LOAD" migrate-out "$PF_A" --fn 1
	assert_success
	run "$BIN/clat-guest" show --mem "$MEM_A" --bat-gpa "$BAT" --json
	assert_equal "$(jq '.types[0].contexts[] | select(.remote_port == 9701) | .packets_in' <<<"$output")" 2
}
