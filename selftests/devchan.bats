#!/usr/bin/env bats
# The device-state channel: migrate-out --to streams the blocks its
# write-back rounds wrote, migrate-in --listen writes them into guest RAM at
# COMMIT.  Nothing relies on host writes reaching the destination in RAM.

load lib/common

setup() {
	two_hosts_create 2
	MEM_A=$BATS_TEST_TMPDIR/vm-a.mem
	MEM_B=$BATS_TEST_TMPDIR/vm-b.mem
	SOCK=$BATS_TEST_TMPDIR/ds.sock
	guest_init "$MEM_A" conn:ctx=256,block=4096,services=30000
	in_host "$HOST_A" "$CLAT_LOAD" guest attach "$PF_A" --fn 1 --mem "$MEM_A" --bat-gpa "$BAT" 2>/dev/null
	IN_PID=
	CHAN=
}

teardown() {
	[ -z "$IN_PID" ] || kill -9 "$IN_PID" 2>/dev/null || true
	[ -z "${STALL_PID:-}" ] || kill -9 "$STALL_PID" 2>/dev/null || true
	reap
	two_hosts_destroy
}

# listen_bg MEM [ARGS...]: migrate-in --listen on host B fn 2 in the
# background (stdout in.json, stderr in.log), on $CHAN (default the unix
# socket $SOCK); returns once it listens.
listen_bg() {
	local mem=$1 chan=${CHAN:-unix:$SOCK} _
	shift
	nsenter --net="/run/netns/$HOST_B" "$CLAT_LOAD" migrate-in "$PF_B" --fn 2 --mac "$VM_MAC" \
		--mem "$mem" --listen "$chan" --json "$@" \
		</dev/null >"$BATS_TEST_TMPDIR/in.json" 2>"$BATS_TEST_TMPDIR/in.log" 3>&- &
	IN_PID=$!
	for _ in $(seq 100); do
		if [ "${chan#unix:}" != "$chan" ]; then
			[ -S "${chan#unix:}" ] && return 0
		else
			ip netns exec "$HOST_B" ss -ltnH "sport = :${chan##*:}" | grep -q . && return 0
		fi
		sleep 0.05
	done
	return 1
}

# wait_in: migrate-in's exit status (it is our child).
wait_in() {
	local rc=0
	wait "$IN_PID" || rc=$?
	IN_PID=
	return "$rc"
}

# wait_log LOG TEXT: until TEXT is in LOG (10 s).
wait_log() {
	local _
	for _ in $(seq 100); do
		grep -q "$2" "$1" && return 0
		sleep 0.1
	done
	return 1
}

# B holds nothing of the migration: fn 2 tracks no tables, no fn has the
# VM's MAC, no pin of fn 2, and every pool extent is free (none staged).
assert_b_clean() {
	local st
	st=$(in_host "$HOST_B" "$CLAT_LOAD" status "$PF_B" --json)
	assert_equal "$(jq '.fns[] | select(.fn == 2) | .bat_gpa' <<<"$st")" 0
	assert_equal "$(jq --arg m "$VM_MAC" '[.fns[].macs[] | select(.mac == $m)] | length' <<<"$st")" 0
	assert_equal "$(jq '.fns[] | select(.fn == 2) | .pool_contexts' <<<"$st")" 0
	assert_equal "$(jq '.pool.used' <<<"$st")" 0
	assert_equal "$(jq '.pool.staged' <<<"$st")" 0
	[ -z "$(ls "/sys/fs/bpf/clat/$PF_B" | grep _fn2_)" ]
}

# The VMM's part of the switchover: the VM leaves A's VF 0 for B's VF 1.
move_vm() {
	in_host "$HOST_A" "$VF_EMU" release "$PF_A" vf 0
	in_host "$HOST_B" "$VF_EMU" set "$PF_B" vf 1 mac "$VM_MAC"
	in_host "$HOST_B" "$VF_EMU" assign "$PF_B" vf 1 netns "$VM"
	ip -n "$VM" addr add "$VM_IP/24" dev eth0 2>/dev/null || true
	ip -n "$VM" link set eth0 up
}

@test "the channel, not RAM, carries the contexts: RAM copied before the stop-copy and never again" {
	spawn ip netns exec "$VM" socat -u TCP-LISTEN:7000,reuseaddr "CREATE:$BATS_TEST_TMPDIR/recv"
	wait_listen "$VM" 7000
	spawn bash -c "for i in \$(seq 300); do printf 'line %05d\n' \$i; sleep 0.04; done | ip netns exec $WIRE_NS socat -u - TCP:$VM_IP:7000,sourceport=44000"
	sleep 1.5
	local before svc
	before=$(ctx_on "$HOST_A" "$PF_A" 1 | jq '.contexts[] | select(.remote_port == 44000)')
	svc=$(jq .svc <<<"$before")
	[ -n "$svc" ]
	# The destination VMM's RAM file exists, empty, before the migration.
	truncate -s "$(stat -c %s "$MEM_A")" "$MEM_B"
	listen_bg "$MEM_B"
	# Held after its pre-copy rounds (QEMU's bulk pass runs then) and again
	# between STOPPED and COMMIT (the VM moves then).
	CLAT_TEST_STALL=pre_copy:5,pre_commit:3 nsenter --net="/run/netns/$HOST_A" "$CLAT_LOAD" \
		migrate-out "$PF_A" --fn 1 --to "unix:$SOCK" --json \
		</dev/null >"$BATS_TEST_TMPDIR/out.json" 2>"$BATS_TEST_TMPDIR/out.log" 3>&- &
	local out_pid=$!
	wait_log "$BATS_TEST_TMPDIR/out.log" "at pre_copy"
	# The bulk pass: guest RAM to the destination, once, now.
	dd if="$MEM_A" of="$MEM_B" bs=1M conv=notrunc,sparse status=none
	local ram_pkts
	ram_pkts=$("$BIN/clat-guest" show --mem "$MEM_B" --bat-gpa "$BAT" --json |
		jq '.types[0].contexts[] | select(.remote_port == 44000) | .packets_in')
	[ -n "$ram_pkts" ]
	# A flow born after the bulk pass: only the channel can carry it.
	for _ in 1 2 3 4 5; do
		ip netns exec "$WIRE_NS" socat -u - "UDP4-SENDTO:$VM_IP:9800,sourceport=9801" <<<"x"
	done
	wait_log "$BATS_TEST_TMPDIR/out.log" "at pre_commit"
	# The source is stopped: its counters are final.
	local final
	final=$(ctx_on "$HOST_A" "$PF_A" 1 | jq '.contexts[] | select(.remote_port == 44000)')
	[ "$(jq .packets_in <<<"$final")" -gt "$ram_pkts" ]
	move_vm
	local rc=0
	wait "$out_pid" || rc=$?
	assert_equal "$rc" 0
	wait_in
	# The VM announces itself once B serves it, as QEMU does on resume:
	# the switch learns its new port.
	ip netns exec "$VM" ping -c 1 -W 2 "$WIRE_IP" >/dev/null
	# The RAM file was never copied again, yet B's contexts have A's counters.
	run "$BIN/clat-guest" show --mem "$MEM_B" --bat-gpa "$BAT" --json
	assert_equal "$(jq '[.types[0].contexts[] | select(.remote_port == 9801)] | length' <<<"$output")" 1
	local after
	after=$(ctx_on "$HOST_B" "$PF_B" 2 | jq '.contexts[] | select(.remote_port == 44000)')
	assert_equal "$(jq .svc <<<"$after")" "$svc"
	assert_equal "$(jq .first_seen_ns <<<"$after")" "$(jq .first_seen_ns <<<"$before")"
	[ "$(jq .packets_in <<<"$after")" -ge "$(jq .packets_in <<<"$final")" ]
	assert_equal "$(ctx_on "$HOST_B" "$PF_B" 2 | jq '.contexts[] | select(.remote_port == 9801) | .packets_in')" 5
	assert_equal "$(in_host "$HOST_B" "$CLAT_LOAD" stats "$PF_B" --json | jq '.fns[] | select(.fn == 2) | .counters.ctx_claim')" 0
	# Reports: B wrote blocks from at least two rounds; A's downtime is
	# the sum of its stop-copy and its commit.
	local in out
	in=$(cat "$BATS_TEST_TMPDIR/in.json")
	out=$(cat "$BATS_TEST_TMPDIR/out.json")
	assert_equal "$(jq .committed <<<"$in")" true
	[ "$(jq .blocks_written <<<"$in")" -ge 1 ]
	[ "$(jq .rounds <<<"$in")" -ge 2 ]
	assert_equal "$(jq '.downtime_ns == .stop_copy.ns + .commit.ns' <<<"$out")" true
	assert_equal "$(jq .commit.live_contexts <<<"$out")" "$(jq .live_contexts <<<"$in")"
	echo "# downtime $(jq .downtime_ns <<<"$out") ns = stop_copy $(jq .stop_copy.ns <<<"$out") + commit $(jq .commit.ns <<<"$out") (B: $(jq -c .ns <<<"$in"))" >&3
	# A let go; the stream went on through B, every line exactly once.
	assert_equal "$(in_host "$HOST_A" "$CLAT_LOAD" status "$PF_A" --json | jq '[.fns[] | select(.fn == 1)] | length')" 0
	for _ in $(seq 300); do [ "$(wc -l <"$BATS_TEST_TMPDIR/recv")" -ge 300 ] && break; sleep 0.1; done
	assert_equal "$(wc -l <"$BATS_TEST_TMPDIR/recv")" 300
	assert_equal "$(sort -u "$BATS_TEST_TMPDIR/recv" | wc -l)" 300
}

# forge SCENARIO MEM [BAT]: a hostile stream into migrate-in --listen on MEM.
forge() {
	listen_bg "$2"
	run python3 "$ROOT/selftests/lib/dsforge.py" "$SOCK" "$1" "$(stat -c %s "$2")" "${3:-0x1000}" "$VM_MAC"
	FORGE=$output
	local rc=0
	wait_in || rc=$?
	assert_equal "$rc" 1
	run cat "$BATS_TEST_TMPDIR/in.log"
	assert_output --partial "failed to migrate in fn 2"
	assert_output --partial "nothing is visible"
	assert_b_clean
	[ ! -e "$SOCK" ]
}

@test "hostile or garbled streams are refused with a clear error; B stays clean" {
	local small=$BATS_TEST_TMPDIR/small.mem
	truncate -s 4M "$small"
	forge bad-magic "$small"
	assert_output --partial "bad magic 0xdeadbeef"
	forge gpa-outside "$small"
	assert_output --partial "is outside guest RAM"
	forge len-over-block "$small"
	assert_output --partial "length 8192 is not a multiple of 4 KiB up to 4096"
	forge truncated "$small"
	assert_output --partial "truncated BLOCKS frame"
	forge flood "$small"
	assert_output --partial "flood"
	forge commit-early "$small"
	assert_output --partial "COMMIT before STOPPED"
	forge abort "$small"
	assert_output --partial "the source sent ABORT (operator said so)"
	# The refusal reaches the source too, as DONE with the reason.
	forge gpa-outside "$small"
	assert_equal "$(jq .frames <<<"$FORGE" -c)" '["DONE"]'
	jq -r .msg <<<"$FORGE" | grep -q "outside guest RAM"
	# At COMMIT, with valid tables: a block that is the guest's BAT page,
	# not a context block, is refused and nothing is written.
	cp "$MEM_A" "$MEM_B"
	local sum
	sum=$(md5sum <"$MEM_B")
	forge not-a-block "$MEM_B" "$BAT"
	assert_output --partial "is no context block of the guest's tables"
	assert_equal "$(md5sum <"$MEM_B")" "$sum"
	# A RAM size that differs from the source's is refused at HELLO.
	truncate -s 8M "$small"
	listen_bg "$small"
	run nsenter --net="/run/netns/$HOST_A" "$CLAT_LOAD" migrate-out "$PF_A" --fn 1 --to "unix:$SOCK"
	assert_failure
	assert_output --partial "guest RAM sizes differ"
	assert_output --partial "the fn is serving again"
	wait_in || true
	assert_b_clean
	assert_equal "$(in_host "$HOST_A" "$CLAT_LOAD" status "$PF_A" --json | jq -r '.fns[] | select(.fn == 1) | .state')" active
}

@test "migrate-out killed mid-stream (over TCP): B discards everything, A resumes with --abort" {
	# A management link between the two hosts carries the channel.
	ip link add "${TAG}ca" netns "$HOST_A" type veth peer name "${TAG}cb" netns "$HOST_B"
	ip -n "$HOST_A" addr add 169.254.77.1/30 dev "${TAG}ca"
	ip -n "$HOST_B" addr add 169.254.77.2/30 dev "${TAG}cb"
	ip -n "$HOST_A" link set "${TAG}ca" up
	ip -n "$HOST_B" link set "${TAG}cb" up
	CHAN=tcp:169.254.77.2:7731
	ip netns exec "$WIRE_NS" socat -u - "UDP4-SENDTO:$VM_IP:9400,sourceport=9401" <<<"x"
	truncate -s "$(stat -c %s "$MEM_A")" "$MEM_B"
	listen_bg "$MEM_B"
	# Held after its pause, its pre-copy rounds streamed: killed there.
	stall_bg stop_copy:30 "$BATS_TEST_TMPDIR/out.log" nsenter --net="/run/netns/$HOST_A" \
		"$CLAT_LOAD" migrate-out "$PF_A" --fn 1 --to "$CHAN"
	kill -9 "$STALL_PID"
	wait "$STALL_PID" || true
	STALL_PID=
	local rc=0
	wait_in || rc=$?
	assert_equal "$rc" 1
	run cat "$BATS_TEST_TMPDIR/in.log"
	assert_output --partial "the source closed the channel before COMMIT"
	assert_output --partial "nothing is visible"
	assert_equal "$(jq .committed "$BATS_TEST_TMPDIR/in.json")" false
	[ "$(jq .blocks_received "$BATS_TEST_TMPDIR/in.json")" -ge 1 ]
	assert_b_clean
	# Nothing was written into B's RAM either.
	assert_equal "$(du -k "$MEM_B" | cut -f1)" 0
	# A is paused, and --abort resumes it with its context.
	assert_equal "$(in_host "$HOST_A" "$CLAT_LOAD" status "$PF_A" --json | jq -r '.fns[] | select(.fn == 1) | .state')" quiesced
	in_host "$HOST_A" "$CLAT_LOAD" migrate-out "$PF_A" --fn 1 --abort
	run ip netns exec "$WIRE_NS" ping -c 1 -W 2 "$VM_IP"
	assert_success
	ip netns exec "$WIRE_NS" socat -u - "UDP4-SENDTO:$VM_IP:9400,sourceport=9401" <<<"y"
	assert_equal "$(ctx_on "$HOST_A" "$PF_A" 1 | jq '.contexts[] | select(.remote_port == 9401) | .packets_in')" 2
}

@test "migrate-in killed while holding blocks leaves nothing; a rerun listens on the same path" {
	local small=$BATS_TEST_TMPDIR/small.mem _
	truncate -s 4M "$small"
	# A listener killed before any source came leaves its socket file (the
	# accept removes it: one source per migration); the next one replaces it.
	listen_bg "$small"
	kill -9 "$IN_PID"
	wait "$IN_PID" || true
	[ -S "$SOCK" ]
	listen_bg "$small"
	# The stale file satisfied listen_bg: wait for the new listener itself
	# (a sanitized build on a loaded machine can take seconds).
	for _ in $(seq 300); do
		grep -q "waiting for the source" "$BATS_TEST_TMPDIR/in.log" && break
		sleep 0.1
	done
	grep -q "waiting for the source" "$BATS_TEST_TMPDIR/in.log"
	spawn python3 "$ROOT/selftests/lib/dsforge.py" "$SOCK" hold 4194304 0x1000 "$VM_MAC"
	for _ in $(seq 100); do
		[ -S "$SOCK" ] || break # accepted: the listener removed its file
		sleep 0.1
	done
	[ ! -S "$SOCK" ]
	sleep 0.5 # HELLO and a block held
	kill -9 "$IN_PID"
	wait "$IN_PID" || true
	IN_PID=
	assert_b_clean
	forge abort "$small"
	assert_output --partial "the source sent ABORT"
}

@test "emulated migrate: the downtime is the sum of the phases it lists" {
	run migrate
	assert_success
	local r=$output
	assert_equal "$(jq '.downtime_ns == .stop_copy.ns + .delta_copy.ns + .vm_move.ns + .switch.ns + .announce.ns' <<<"$r")" true
	jq -r .downtime_excludes <<<"$r" | grep -q "release"
	# The log line prints that same downtime.
	local ms
	ms=$(awk -v ns="$(jq .downtime_ns <<<"$r")" 'BEGIN { printf "%.3f", ns / 1e6 }')
	grep -q "downtime $ms ms" "$BATS_TEST_TMPDIR/migrate.log"
}
