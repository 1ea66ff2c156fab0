#!/usr/bin/env bats
# Functions come and go, guests attach and detach, and the datapath is
# upgraded, all while tagged UDP streams flow to several VMs: every VM's
# packet tap checks that each frame it receives is addressed to it and
# carries its own tag.

load lib/common

SEQ=$BIN/seqstream
NVM=4
RATE=300

setup() {
	topo_create $NVM
	attach
	local i
	for i in 0 1; do
		MEM[i]=$BATS_TEST_TMPDIR/guest$i.mem
		guest_init "${MEM[i]}" conn:ctx=256,block=4096,services=2000
		GBAT[i]=$BAT
	done
}

teardown() {
	reap
	ip link del "${PF}x" 2>/dev/null || true # the VCT race test's spare port
	topo_destroy
}

# Guests 0 and 1 (fns 1, 2) attach and detach over and over.
guest_churn() {
	local r i
	for r in $(seq 8); do
		for i in 0 1; do
			"$CLAT_LOAD" guest attach "$PF" --fn $((i + 1)) --mem "${MEM[i]}" \
				--bat-gpa "${GBAT[i]}" || return 1
		done
		sleep 0.2
		for i in 0 1; do
			"$CLAT_LOAD" guest detach "$PF" --fn $((i + 1)) || return 1
		done
	done
	echo done
}

@test "VF add/del, guest attach/detach and upgrades under traffic never misdeliver a frame" {
	local d=$BATS_TEST_TMPDIR i r churn tap=() send=()
	# Static neighbours: a removed fn must not turn into ARP failures that
	# stop a sender.
	for ((i = 0; i < NVM; i++)); do
		wire ip neigh replace "${VM_IP[i]}" lladdr "${VM_MAC[i]}" nud permanent dev "$WIRE_PORT"
	done
	vm 2 ip neigh replace "${VM_IP[3]}" lladdr "${VM_MAC[3]}" nud permanent dev eth0
	for ((i = 0; i < NVM; i++)); do
		bg "$d/tap$i" ip netns exec "${VM_NS[i]}" "$SEQ" tap eth0 "${VM_MAC[i]}" "$i"
		tap[i]=$BG_PID
	done
	sleep 0.5 # the taps bind before the first frame
	for ((i = 0; i < NVM; i++)); do
		bg "$d/send$i" ip netns exec "$WIRE_NS" "$SEQ" udp-send "${VM_IP[i]}" 5000 0 $RATE "$i"
		send[i]=$BG_PID
	done
	# VM 2 -> VM 3 crosses clat_tx's hairpin, tagged for VM 3.
	bg "$d/send-hairpin" ip netns exec "${VM_NS[2]}" "$SEQ" udp-send "${VM_IP[3]}" 5001 0 $RATE 3
	send[NVM]=$BG_PID

	bg "$d/guest-churn" bash -c "$(declare -f guest_churn); CLAT_LOAD=$CLAT_LOAD PF=$PF; MEM=(${MEM[*]}); GBAT=(${GBAT[*]}); guest_churn"
	churn=$BG_PID
	for r in $(seq 10); do
		"$CLAT_LOAD" vf del "$PF" --fn 3
		"$CLAT_LOAD" vf del "$PF" --fn 4
		sleep 0.1
		"$CLAT_LOAD" vf add "$PF" --fn 4 --mac "${VM_MAC[3]}" --dev "${VM_REP[3]}"
		"$CLAT_LOAD" vf add "$PF" --fn 3 --mac "${VM_MAC[2]}" --dev "${VM_REP[2]}"
		if [ $((r % 4)) -eq 0 ]; then
			"$CLAT_LOAD" upgrade "$PF" >/dev/null 2>&1
		fi
		sleep 0.1
	done
	wait "$churn" || fail "guest churn failed: $(cat "$d/guest-churn")"
	sleep 0.5

	kill -TERM "${send[@]}"
	wait "${send[@]}"
	sleep 0.5 # frames in flight reach the taps
	kill -TERM "${tap[@]}"
	wait "${tap[@]}"
	for ((i = 0; i < NVM; i++)); do
		echo "VM $i: $(cat "$d/tap$i")"
		assert_equal "$(jq .wrong_mac "$d/tap$i")" 0
		assert_equal "$(jq .wrong_tag "$d/tap$i")" 0
		[ "$(jq .mine "$d/tap$i")" -gt 0 ]
	done
	# The functions that were never removed lost nothing to the churn.
	for i in 0 1; do
		assert_equal "$(jq .mine "$d/tap$i")" "$(jq .sent "$d/send$i")"
	done
	# Every function is back, each with its own MAC and port.
	run "$CLAT_LOAD" status "$PF" --json
	for ((i = 0; i < NVM; i++)); do
		assert_equal "$(jq -r --argjson fn $((i + 1)) '.fns[] | select(.fn == $fn) | "\(.dev) \(.macs[0].mac)"' <<<"$output")" \
			"${VM_REP[i]} ${VM_MAC[i]}"
	done
	assert_equal "$(jq '[.programs[].prog_id] | unique | length' <<<"$output")" 2
}

# VCT[fn] has one owner (user/lib/vct.c): a writer holds the PF's VCT lock from
# its read to its write.  A resync (generation) held at that point must not
# have its write lose the port move another clat-load makes meanwhile, nor
# the other way round: the move waits and then changes only the ifindex.
@test "two clat-load processes writing one VCT entry lose no update" {
	local spare=${PF}x peer=${PF}y log=$BATS_TEST_TMPDIR/resync.log
	ip link add "$spare" type veth peer name "$peer"
	ip link set "$spare" up
	ip link set "$peer" up
	"$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "${MEM[0]}" --bat-gpa "${GBAT[0]}" 2>/dev/null
	"$BIN/clat-guest" grow --mem "${MEM[0]}" --bat-gpa "${GBAT[0]}" --capacity 3000 >/dev/null
	# The resync reads VCT[1] under the lock and stalls 2 s before writing.
	stall_bg vct_locked:2 "$log" "$CLAT_LOAD" guest resync "$PF" --fn 1
	run "$CLAT_LOAD" vf set "$PF" --fn 1 --port "$spare" --json
	local port_rc=$status
	echo "$output"
	wait "$STALL_PID"
	local resync_rc=$?
	assert_equal "$port_rc" 0
	assert_equal "$resync_rc" 0
	grep -q "stalled 2s at vct_locked" "$log"
	# Both changes are in: the generation of the resync and the moved port.
	local fn
	fn=$("$CLAT_LOAD" status "$PF" --json | jq '.fns[] | select(.fn == 1)')
	assert_equal "$(jq .generation <<<"$fn")" 2
	assert_equal "$(jq .ifindex <<<"$fn")" "$(cat /sys/class/net/"$spare"/ifindex)"
}
