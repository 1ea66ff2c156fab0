#!/usr/bin/env bats
# Crash consistency: clat-load is SIGKILLed at random points (and at named
# phases through CLAT_TEST_STALL) during attach, detach, guest attach, guest
# sync and vf add/del.  Rerunning the same command, or detach, must converge:
# no pins, links or XDP programs left, and no context lost.

load lib/common

FLOWS=2000

setup() {
	topo_create 2
	MEM=$BATS_TEST_TMPDIR/guest.mem
	PROGS=()
}

teardown() {
	reap
	topo_destroy
	rm -f "$MEM"
}

# kill_after MS CMD...: runs CMD and SIGKILLs it (by its PID) after MS ms,
# or lets it finish if it is quicker.
kill_after() {
	local ms=$1 pid
	shift
	"$@" </dev/null >/dev/null 2>&1 3>&- &
	pid=$!
	sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# stall_kill PHASE CMD...: runs CMD held at PHASE, SIGKILLs it there.
stall_kill() {
	local phase=$1 pid log=$BATS_TEST_TMPDIR/stall.log _
	shift
	: >"$log"
	CLAT_TEST_STALL=$phase:30 "$@" </dev/null >/dev/null 2>"$log" 3>&- &
	pid=$!
	for _ in $(seq 100); do
		grep -q "stalled.*at $phase" "$log" && break
		sleep 0.1
	done
	grep -q "stalled.*at $phase" "$log" || { kill -9 "$pid"; cat "$log"; return 1; }
	kill -9 "$pid"
	wait "$pid" 2>/dev/null || true
}

# Milliseconds one run of CMD takes (to spread the kill points over it).
duration_ms() {
	local t0 t1
	t0=$(date +%s%N)
	"$@" >/dev/null 2>&1
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000 + 1))
}

devs() { echo "$PF" "${VM_REP[@]}" "$HOST_REP"; }

# Remember the XDP programs on our devices, to check they are gone later.
note_progs() {
	local d id
	for d in $(devs); do
		id=$(xdp_prog_of "$d")
		[ -z "$id" ] || PROGS+=("$id")
	done
}

fully_attached() {
	local d
	[ -e "/sys/fs/bpf/clat/$PF/link_rx" ] || return 1
	for d in $(devs); do [ -n "$(xdp_prog_of "$d")" ] || return 1; done
}

# Nothing of clat is left: pins (also staging dirs), XDP on any of our
# devices, and every program we saw attached is freed by the kernel.
assert_clean() {
	local d id _
	run ls -d /sys/fs/bpf/clat/"$PF" /sys/fs/bpf/clat/"$PF":staging:*
	assert_failure
	for d in $(devs); do
		assert_equal "$(xdp_prog_of "$d")" ""
	done
	for id in "${PROGS[@]}"; do
		for _ in $(seq 50); do
			bpftool prog show id "$id" >/dev/null 2>&1 || break
			sleep 0.1 # freed after an RCU grace period
		done
		run bpftool prog show id "$id"
		assert_failure
	done
}

@test "attach killed with everything attached but unpublished: detach alone converges" {
	stall_kill attach_staged "$CLAT_LOAD" attach "$PF"
	# The staged links still hold the programs on the devices.
	note_progs
	[ "${#PROGS[@]}" -gt 0 ]
	ls -d /sys/fs/bpf/clat/"$PF":staging:*
	run "$CLAT_LOAD" detach "$PF"
	assert_success
	assert_clean
}

@test "staging dirs of dead PIDs, or of PIDs now used by other programs, go with the next attach" {
	local other dead
	spawn sleep 60
	other=${SPAWNED[-1]}
	dead=$(($(cat /proc/sys/kernel/pid_max) - 1))
	mkdir -p /sys/fs/bpf/clat
	mkdir "/sys/fs/bpf/clat/$PF:staging:$other" "/sys/fs/bpf/clat/$PF:staging:$dead"
	run attach
	assert_success
	run ls -d /sys/fs/bpf/clat/"$PF":staging:*
	assert_failure
}

@test "attach killed at random points: a rerun converges, detach leaves nothing" {
	local ms i
	ms=$(duration_ms "$CLAT_LOAD" attach "$PF")
	note_progs
	"$CLAT_LOAD" detach "$PF"
	for i in 1 2 3 4 5 6; do
		kill_after $((RANDOM % (ms + ms / 4) + 1)) "$CLAT_LOAD" attach "$PF"
		note_progs
		run "$CLAT_LOAD" attach "$PF"
		assert_success
		fully_attached
		note_progs
		wire ping -c 1 -W 2 "${VM_IP[1]}" >/dev/null
		"$CLAT_LOAD" detach "$PF"
	done
	assert_clean
}

@test "detach killed halfway through its pins, and at random points: a rerun converges" {
	local ms i
	attach
	note_progs
	stall_kill unpin "$CLAT_LOAD" detach "$PF"
	[ -d "/sys/fs/bpf/clat/$PF" ] # half removed
	run "$CLAT_LOAD" detach "$PF"
	assert_success
	assert_clean
	for i in 1 2 3 4; do
		attach
		note_progs
		ms=$(duration_ms "$CLAT_LOAD" status "$PF")
		kill_after $((RANDOM % (ms * 2) + 1)) "$CLAT_LOAD" detach "$PF"
		run "$CLAT_LOAD" detach "$PF"
		assert_success
		assert_clean
	done
}

@test "vf del and vf add killed at random points: reruns converge" {
	local i mac=${VM_MAC[1]} rep=${VM_REP[1]}
	attach
	note_progs
	for i in 1 2 3 4 5; do
		kill_after $((RANDOM % 8 + 1)) "$CLAT_LOAD" vf del "$PF" --fn 2
		run "$CLAT_LOAD" vf del "$PF" --fn 2
		assert_success
		assert_equal "$(xdp_prog_of "$rep")" ""
		assert_equal "$("$CLAT_LOAD" status "$PF" --json | jq '[.fns[] | select(.fn == 2)] | length')" 0
		kill_after $((RANDOM % 8 + 1)) "$CLAT_LOAD" vf add "$PF" --fn 2 --mac "$mac" --dev "$rep"
		if [ $((i % 2)) -eq 0 ]; then
			# A del after a killed add also converges, link included.
			run "$CLAT_LOAD" vf del "$PF" --fn 2
			assert_success
			assert_equal "$(xdp_prog_of "$rep")" ""
		fi
		run "$CLAT_LOAD" vf add "$PF" --fn 2 --mac "$mac" --dev "$rep"
		assert_success
		[ -n "$(xdp_prog_of "$rep")" ]
		wire ping -c 1 -W 2 "${VM_IP[1]}" >/dev/null
	done
	"$CLAT_LOAD" detach "$PF"
	assert_clean
}

# seed_guest: FLOWS contexts in guest memory before any attach.
seed_guest() {
	# 1/8 load: far below the 90% that two 32-slot candidate buckets hold.
	guest_init "$MEM" conn:ctx=256,block=4096,services=16000
	"$BIN/clat-guest" seed --mem "$MEM" --bat-gpa "$BAT" --count "$FLOWS" \
		--vm-addr "${VM_IP[0]}" --vm-port 5000 --remote-addr "$WIRE_IP" \
		--first-port 20000 --proto udp --json >/dev/null
}

@test "guest attach killed at random points: a rerun converges with every context" {
	local ms i
	seed_guest
	attach
	note_progs
	ms=$(duration_ms "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$BAT")
	"$CLAT_LOAD" guest detach "$PF" --fn 1
	for i in 1 2 3 4 5; do
		kill_after $((RANDOM % (ms + ms / 4) + 1)) \
			"$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$BAT"
		run "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$BAT"
		assert_success
		assert_equal "$(ctx_json 1 | jq '.contexts | length')" "$FLOWS"
		# Tracking is really on: a packet finds its context.
		run "$BIN/flowgen" --prog "/sys/fs/bpf/clat/$PF/prog_rx" --dst-mac "${VM_MAC[0]}" \
			--src-mac 02:00:5e:00:00:01 --vm-addr "${VM_IP[0]}" --vm-port 5000 \
			--remote-addr "$WIRE_IP" --first-port 20000 --count 1 --proto udp
		assert_success
		assert_equal "$(counter 1 ctx_hit)" "$i"
		"$CLAT_LOAD" guest detach "$PF" --fn 1
	done
	# Every packet counted above is back in guest memory.
	assert_equal "$("$BIN/clat-guest" show --mem "$MEM" --bat-gpa "$BAT" --json |
		jq '[.types[0].contexts[] | select(.remote_port == 20000)] | .[0].packets_in')" 5
	"$CLAT_LOAD" detach "$PF"
	assert_clean
}

@test "guest sync and guest detach killed at random points: reruns lose no context" {
	local ms i dev file
	seed_guest
	attach
	note_progs
	"$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$BAT"
	"$BIN/flowgen" --prog "/sys/fs/bpf/clat/$PF/prog_rx" --dst-mac "${VM_MAC[0]}" \
		--src-mac 02:00:5e:00:00:01 --vm-addr "${VM_IP[0]}" --vm-port 5000 \
		--remote-addr "$WIRE_IP" --first-port 20000 --count "$FLOWS" --proto udp >/dev/null
	ms=$(duration_ms "$CLAT_LOAD" guest sync "$PF" --fn 1)
	for i in 1 2 3 4; do
		# More packets, so each sync has something new to write.
		"$BIN/flowgen" --prog "/sys/fs/bpf/clat/$PF/prog_rx" --dst-mac "${VM_MAC[0]}" \
			--src-mac 02:00:5e:00:00:01 --vm-addr "${VM_IP[0]}" --vm-port 5000 \
			--remote-addr "$WIRE_IP" --first-port 20000 --count "$FLOWS" --proto udp >/dev/null
		kill_after $((RANDOM % (ms + ms / 4) + 1)) "$CLAT_LOAD" guest sync "$PF" --fn 1
		run "$CLAT_LOAD" guest sync "$PF" --fn 1
		assert_success
		dev=$(ctx_json 1 | jq -c '[.contexts[] | {svc, remote_port, packets_in}] | sort_by(.svc)')
		file=$("$BIN/clat-guest" show --mem "$MEM" --bat-gpa "$BAT" --json |
			jq -c '[.types[0].contexts[] | {svc, remote_port, packets_in}] | sort_by(.svc)')
		assert_equal "$(jq length <<<"$dev")" "$FLOWS"
		assert_equal "$(jq "[.[] | select(.packets_in == $((i + 1)))] | length" <<<"$dev")" "$FLOWS"
		[ "$dev" = "$file" ]
	done
	kill_after $((RANDOM % (ms + ms / 4) + 1)) "$CLAT_LOAD" guest detach "$PF" --fn 1
	run "$CLAT_LOAD" guest detach "$PF" --fn 1
	assert_success
	assert_equal "$("$BIN/clat-guest" show --mem "$MEM" --bat-gpa "$BAT" --json |
		jq '[.types[0].contexts[] | select(.packets_in == 5)] | length')" "$FLOWS"
	"$CLAT_LOAD" detach "$PF"
	assert_clean
}

pool_of() { "$CLAT_LOAD" status "$PF" --json | jq -c '.pool | [.used, .staged]'; }

@test "pool allocator killed at every step: nothing leaks after the next attach or detach" {
	local phase used
	seed_guest
	attach
	note_progs
	"$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$BAT"
	used=$("$CLAT_LOAD" status "$PF" --json | jq '.pool.used')
	[ "$used" -gt 0 ]
	"$CLAT_LOAD" guest detach "$PF" --fn 1
	assert_equal "$(pool_of)" "[0,0]"
	for phase in pool_staged pool_published; do
		# Killed with an extent STAGED, or published but still STAGED:
		# the next attach takes the fn over cleanly, with every context.
		stall_kill "$phase" "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$BAT"
		[ "$(pool_of)" != "[0,0]" ]
		run "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$BAT"
		assert_success
		assert_equal "$(ctx_json 1 | jq '.contexts | length')" "$FLOWS"
		assert_equal "$(pool_of)" "[$used,0]"
		"$CLAT_LOAD" guest detach "$PF" --fn 1
		assert_equal "$(pool_of)" "[0,0]"
		# Or a detach alone reclaims what the dead attach held.
		stall_kill "$phase" "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$BAT"
		run "$CLAT_LOAD" guest detach "$PF" --fn 1
		assert_success
		assert_equal "$(pool_of)" "[0,0]"
	done
	# Killed after unpublishing, before freeing: a rerun frees it.
	"$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$BAT"
	stall_kill pool_unpublished "$CLAT_LOAD" guest detach "$PF" --fn 1
	assert_equal "$(pool_of)" "[$used,0]"
	run "$CLAT_LOAD" guest detach "$PF" --fn 1
	assert_success
	assert_equal "$(pool_of)" "[0,0]"
	"$CLAT_LOAD" detach "$PF"
	assert_clean
}
