#!/usr/bin/env bats
# clat on a plain uplink, one vf-emu did not create (issue 12, item 6): no
# host port fn 0, the PF's own stack is the host's.  Broadcast and
# multicast from the wire must reach the host stack as well as the VFs of
# their flood domain, so the host's ARP and NDP keep working.
#
# Topology, all built by hand in fresh namespaces per test:
#   <wire ns> WP ===== PF <host ns, holds the host's addresses>
#                     REP[i] ===== eth0 <VM ns i>   (clat-load vf add)

load lib/common

# No 802.1Q devices on this kernel: tagged frames come from a raw socket.
PEER="python3 $ROOT/selftests/lib/vlanpeer.py"

setup() {
	local i ns
	TAG=u$(printf '%x%03x' $(($$ % 256)) $((RANDOM % 4096)))
	H=$TAG-h W=$TAG-w
	PF=${TAG}p WP=${TAG}w
	VMS=("$TAG-v1" "$TAG-v2")
	REP=("${TAG}r1" "${TAG}r2")
	VM_MAC=(02:c1:a7:00:00:01 02:c1:a7:00:00:02)
	NET=198.18.$((RANDOM % 250 + 1))
	WIRE_IP=$NET.1 HOST_IP=$NET.254
	VM_IP=("$NET.11" "$NET.12")
	NET6=fd00:c1a7:$(printf '%x' $((RANDOM % 65536)))
	for ns in "$H" "$W" "${VMS[@]}"; do
		ip netns add "$ns"
		ip -n "$ns" link set lo up
		# No IPv6 chatter unless a test turns it on for its devices.
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
	done
	ip link add "$PF" netns "$H" type veth peer name "$WP" netns "$W"
	ip -n "$H" link set "$PF" up
	ip -n "$H" addr add "$HOST_IP/24" dev "$PF"
	ip -n "$W" link set "$WP" up
	ip -n "$W" addr add "$WIRE_IP/24" dev "$WP"
	# Frames XDP redirects into a veth need NAPI on the receiving end.
	ip netns exec "$W" ethtool -K "$WP" gro on >/dev/null
	for i in 0 1; do
		ip link add "${REP[i]}" netns "$H" type veth peer name eth0 netns "${VMS[i]}"
		ip -n "$H" link set "${REP[i]}" up
		ip -n "${VMS[i]}" link set eth0 address "${VM_MAC[i]}" up
		ip -n "${VMS[i]}" addr add "${VM_IP[i]}/24" dev eth0
		ip netns exec "${VMS[i]}" ethtool -K eth0 gro on >/dev/null
	done
	PF_MAC=$(ip -n "$H" -j link show dev "$PF" | jq -r '.[0].address')
	host "$CLAT_LOAD" attach "$PF" 2>/dev/null
	for i in 0 1; do
		host "$CLAT_LOAD" vf add "$PF" --fn $((i + 1)) --mac "${VM_MAC[i]}" --dev "${REP[i]}" \
			2>/dev/null
	done
}

teardown() {
	reap
	[ -n "${TAG:-}" ] || return 0
	host "$CLAT_LOAD" detach "$PF" >/dev/null 2>&1 || true
	local ns
	for ns in "$H" "$W" "${VMS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
	pins_sweep "$PF"
	TAG=
}

# host CMD...: in the host namespace, with /sys/fs/bpf (nsenter, not ip netns exec).
host() { in_host "$H" "$@"; }
wire() { ip netns exec "$W" "$@"; }
vm() { local i=$1; shift; ip netns exec "${VMS[i]}" "$@"; }
stat_of() { # FN SLOT
	host "$CLAT_LOAD" stats "$PF" --json |
		jq -r --argjson fn "$1" --arg s "$2" \
			'if $fn == 256 then .no_fn[$s] else ((.fns[] | select(.fn == $fn) | .counters[$s]) // 0) end'
}

# listen NS PORT OUT: a UDP receiver on every address of NS, output in OUT.
listen() {
	local ns=$1 port=$2 out=$3 _
	bg "$out" ip netns exec "$ns" socat -u "UDP4-RECV:$port,reuseaddr" -
	for _ in $(seq 50); do
		ip netns exec "$ns" ss -lunH "sport = :$port" | grep -q . && return 0
		sleep 0.1
	done
	return 1
}

# got OUT TEXT: OUT holds TEXT within 3 s.
got() {
	local _
	for _ in $(seq 30); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "$1: $(cat "$1" 2>/dev/null)"
	return 1
}

@test "the wire pings the host's address on the PF: ARP reaches the host stack" {
	run wire ping -c 2 -W 2 "$HOST_IP"
	echo "$output"
	assert_success
	# The request was counted as a flood, and the host learned the wire's MAC.
	[ "$(stat_of 256 flood_rx)" -ge 1 ]
	run ip -n "$H" -j neigh show dev "$PF" "$WIRE_IP"
	assert_equal "$(jq -r '.[0].lladdr' <<<"$output")" "$(wire cat /sys/class/net/$WP/address)"
}

@test "a broadcast from the wire reaches every VF of its flood domain and the host" {
	local d=$BATS_TEST_TMPDIR
	# ARP from the wire resolves a VM (its reply leaves through clat_tx).
	run wire ping -c 1 -W 2 "${VM_IP[0]}"
	assert_success
	listen "$H" 9001 "$d/host"
	listen "${VMS[0]}" 9001 "$d/vm1"
	listen "${VMS[1]}" 9001 "$d/vm2"
	local before
	before=$(stat_of 256 flood_rx)
	wire socat -u - "UDP4-DATAGRAM:$NET.255:9001,broadcast" <<<"hello-all"
	got "$d/host" hello-all
	got "$d/vm1" hello-all
	got "$d/vm2" hello-all
	assert_equal "$(stat_of 256 flood_rx)" $((before + 1))
	# A disabled VF is left out of the flood, the others still get it.
	host "$CLAT_LOAD" vf set "$PF" --fn 2 --state disable 2>/dev/null
	wire socat -u - "UDP4-DATAGRAM:$NET.255:9001,broadcast" <<<"second"
	got "$d/host" second
	got "$d/vm1" second
	sleep 0.3
	run grep -c second "$d/vm2"
	assert_output 0
	[ "$(stat_of 2 drop_link_down)" -ge 1 ]
}

@test "IPv6 NDP between the wire and the host works with clat attached" {
	local dev
	ip netns exec "$H" sysctl -qw "net.ipv6.conf.$PF.disable_ipv6=0"
	wire sysctl -qw "net.ipv6.conf.$WP.disable_ipv6=0"
	ip -n "$H" addr add "$NET6::254/64" dev "$PF" nodad
	ip -n "$W" addr add "$NET6::1/64" dev "$WP" nodad
	run wire ping -6 -c 2 -W 2 "$NET6::254"
	echo "$output"
	assert_success
	# The solicitation was multicast: it went up through XDP_PASS.
	[ "$(stat_of 256 flood_rx)" -ge 1 ]
	run ip -n "$H" -6 -j neigh show dev "$PF" "$NET6::1"
	[ "$(jq -r '.[0].lladdr' <<<"$output")" = "$(wire cat /sys/class/net/$WP/address)" ]
	# And the other way: the host resolves the wire.
	run ip netns exec "$H" ping -6 -c 1 -W 2 "$NET6::1"
	assert_success
}

@test "unknown unicast to the host's MAC reaches the host; ARP resolves it first" {
	local d=$BATS_TEST_TMPDIR
	listen "$H" 9002 "$d/host"
	# Resolved by ARP (a broadcast the host must see and answer) ...
	run wire ping -c 1 -W 2 "$HOST_IP"
	assert_success
	local before
	before=$(stat_of 256 pass_unknown)
	# ... then unicast to the PF's MAC, which no fn owns: passed up.
	for i in 1 2 3; do
		wire socat -u - "UDP4-SENDTO:$HOST_IP:9002" <<<"uni-$i"
	done
	got "$d/host" uni-3
	[ "$(grep -c uni- "$d/host")" -eq 3 ]
	[ "$(stat_of 256 pass_unknown)" -ge $((before + 3)) ]
	# No VM saw it.
	assert_equal "$(stat_of 1 rx_packets)" 0
	assert_equal "$(stat_of 2 rx_packets)" 0
}

@test "VLAN scoping holds for the copies: port VLAN 10 gets only floods tagged 10, popped" {
	local d=$BATS_TEST_TMPDIR bcast=ff:ff:ff:ff:ff:ff
	host "$CLAT_LOAD" vf set "$PF" --fn 1 --vlan 10 2>/dev/null
	bg "$d/vm1" ip netns exec "${VMS[0]}" $PEER count eth0 9003 3
	local pid1=$BG_PID
	bg "$d/vm2" ip netns exec "${VMS[1]}" $PEER count eth0 9003 3
	local pid2=$BG_PID
	bg "$d/host" ip netns exec "$H" $PEER count "$PF" 9003 3
	local pid3=$BG_PID
	sleep 0.8 # the raw sockets are open
	wire $PEER send "$WP" 10 "$bcast" "$NET.255" 9003 4
	wire $PEER send "$WP" 20 "$bcast" "$NET.255" 9003 2
	wire $PEER send "$WP" 0 "$bcast" "$NET.255" 9003 3
	wait "$pid1" "$pid2" "$pid3" || true
	cat "$d/vm1" "$d/vm2" "$d/host"
	# fn 1 (port VLAN 10): the 4 tagged 10, untagged; nothing else.
	assert_equal "$(jq -c . "$d/vm1")" '{"0":4}'
	# fn 2 (no port VLAN): only the 3 untagged.
	assert_equal "$(jq -c . "$d/vm2")" '{"0":3}'
	# The host stack sees every frame as it came from the wire.
	assert_equal "$(jq -c -S . "$d/host")" '{"0":3,"10":4,"20":2}'
}

@test "status lists clat_flood_tc; detach leaves no TC program on the PF" {
	local json link prog
	json=$(host "$CLAT_LOAD" status "$PF" --json)
	link=$(jq -r '.programs[] | select(.prog == "clat_flood_tc") | .link_id' <<<"$json")
	prog=$(jq -r '.programs[] | select(.prog == "clat_flood_tc") | .prog_id' <<<"$json")
	echo "$json" | jq -c .programs
	[ -n "$link" ] && [ -n "$prog" ]
	assert_equal "$(jq -r '.programs[] | select(.prog == "clat_flood_tc") | .dev' <<<"$json")" "$PF"
	[ "$(jq -r '.programs[] | select(.prog == "clat_flood_tc") | .verified_insns' <<<"$json")" -gt 0 ]
	[ -e "/sys/fs/bpf/clat/$PF/link_flood_tc" ]
	host "$CLAT_LOAD" detach "$PF"
	local _
	for _ in $(seq 50); do
		bpftool prog show id "$prog" >/dev/null 2>&1 || break
		sleep 0.1 # freed after an RCU grace period
	done
	run bpftool link show id "$link"
	assert_failure
	run bpftool prog show id "$prog"
	assert_failure
	# Nothing of clat on the PF: no XDP, no TCX, no tc filter.
	assert_equal "$(ip -n "$H" -j -d link show dev "$PF" | jq -r '.[0].xdp // empty')" ""
	run bpftool -j link show
	assert_equal "$(jq --argjson id "$link" '[.[] | select(.id == $id)] | length' <<<"$output")" 0
	run ip netns exec "$H" tc filter show dev "$PF" ingress
	assert_output ""
	# And the host still answers ARP without clat.
	run wire ping -c 1 -W 2 "$HOST_IP"
	assert_success
}

@test "upgrade switches clat_flood_tc too and keeps the plain-uplink flood path" {
	local d=$BATS_TEST_TMPDIR before after json
	before=$(host "$CLAT_LOAD" status "$PF" --json |
		jq -r '.programs[] | select(.prog == "clat_flood_tc") | .prog_id')
	[ -n "$before" ]
	json=$(host "$CLAT_LOAD" upgrade "$PF" --json)
	echo "$json"
	after=$(host "$CLAT_LOAD" status "$PF" --json |
		jq -r '.programs[] | select(.prog == "clat_flood_tc") | .prog_id')
	[ -n "$after" ] && [ "$after" != "$before" ]
	assert_equal "$(jq -r '.programs[] | select(.prog == "clat_flood_tc") | .new_id' <<<"$json")" "$after"
	# plain_uplink was carried over: floods still reach the host and both VMs.
	listen "$H" 9004 "$d/host"
	listen "${VMS[0]}" 9004 "$d/vm1"
	listen "${VMS[1]}" 9004 "$d/vm2"
	wire socat -u - "UDP4-DATAGRAM:$NET.255:9004,broadcast" <<<"after-upgrade"
	got "$d/host" after-upgrade
	got "$d/vm1" after-upgrade
	got "$d/vm2" after-upgrade
	run wire ping -c 1 -W 2 "$HOST_IP"
	assert_success
}
