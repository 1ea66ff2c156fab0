#!/usr/bin/env bats
# The dispatch path end to end: real frames cross veth pairs between network
# namespaces through clat_rx / clat_tx on an emulated SR-IOV NIC.

load lib/common

setup() {
	topo_create 3
	attach
}

teardown() {
	reap
	topo_destroy
}

@test "ARP and ping from the wire reach every VM through XDP" {
	for i in 0 1 2; do
		run wire ping -c 2 -W 2 "${VM_IP[i]}"
		assert_success
		[ "$(counter $((i + 1)) rx_packets)" -ge 2 ]
	done
	[ "$(counter 256 flood_rx)" -ge 1 ] # the ARP requests were flooded
}

@test "detach stops the path: the XDP program was the only way in" {
	run wire ping -c 1 -W 2 "${VM_IP[0]}"
	assert_success
	"$CLAT_LOAD" detach "$PF"
	wire ip neigh flush dev "$WIRE_PORT"
	run wire ping -c 1 -W 1 "${VM_IP[0]}"
	assert_failure
}

@test "unicast to VM1 never arrives in VM2" {
	wire ping -c 1 -W 2 "${VM_IP[0]}" >/dev/null
	wire ping -c 1 -W 2 "${VM_IP[1]}" >/dev/null
	local before_vm2 before_fn1
	before_vm2=$(rx_packets "${VM_NS[1]}" eth0)
	before_fn1=$(counter 1 rx_packets)
	for _ in $(seq 20); do
		wire socat -u - "UDP4-SENDTO:${VM_IP[0]}:9000" <<<"x"
	done
	[ "$(( $(counter 1 rx_packets) - before_fn1 ))" -eq 20 ]
	assert_equal "$(rx_packets "${VM_NS[1]}" eth0)" "$before_vm2"
	assert_equal "$(counter 2 rx_packets)" 1 # only its own ping
}

@test "broadcast from the wire reaches every VM and the host" {
	local i before=() host_before
	for i in 0 1 2; do before[i]=$(rx_packets "${VM_NS[i]}" eth0); done
	host_before=$(ip -j -s link show dev "$HOST_DEV" | jq '.[0].stats64.rx.packets')
	wire socat -u - "UDP4-DATAGRAM:$NET.255:9001,broadcast" <<<"hello"
	for i in 0 1 2; do
		[ "$(rx_packets "${VM_NS[i]}" eth0)" -eq $((before[i] + 1)) ]
	done
	[ "$(ip -j -s link show dev "$HOST_DEV" | jq '.[0].stats64.rx.packets')" -eq $((host_before + 1)) ]
	assert_equal "$(counter 256 flood_rx)" 1
}

@test "unknown unicast reaches the host stack" {
	local before
	wire ip neigh replace "$NET.77" lladdr 02:ee:ee:ee:ee:01 dev "$WIRE_PORT"
	before=$(ip -j -s link show dev "$HOST_DEV" | jq '.[0].stats64.rx.packets')
	wire socat -u - "UDP4-SENDTO:$NET.77:9002" <<<"who"
	[ "$(ip -j -s link show dev "$HOST_DEV" | jq '.[0].stats64.rx.packets')" -eq $((before + 1)) ]
	assert_equal "$(counter 256 pass_unknown)" 1
}

@test "the host reaches a VM and the wire through the host port" {
	run ping -c 1 -W 2 -I "$HOST_DEV" "${VM_IP[2]}"
	assert_success
	run ping -c 1 -W 2 -I "$HOST_DEV" "$WIRE_IP"
	assert_success
	[ "$(counter 0 hairpin_packets)" -ge 1 ]
	[ "$(counter 0 tx_packets)" -ge 1 ]
}

@test "VF-to-VF traffic hairpins without touching the wire" {
	vm 0 ping -c 1 -W 2 "${VM_IP[1]}" >/dev/null
	local wire_before
	wire_before=$(rx_packets "$WIRE_NS" "$WIRE_PORT")
	run vm 0 ping -c 5 -i 0.2 -W 2 "${VM_IP[1]}"
	assert_success
	[ "$(counter 1 hairpin_packets)" -ge 6 ]
	[ "$(counter 2 hairpin_packets)" -ge 6 ]
	assert_equal "$(rx_packets "$WIRE_NS" "$WIRE_PORT")" "$wire_before"
}

@test "a TCP transfer of a known size arrives intact" {
	local src dst port=7100
	src=$(mktemp) dst=$(mktemp)
	head -c 4194304 /dev/urandom >"$src"
	spawn ip netns exec "${VM_NS[1]}" timeout 30 socat -u "TCP-LISTEN:$port,reuseaddr" "CREATE:$dst"
	wait_listen "${VM_NS[1]}" "$port"
	wire timeout 30 socat -u "FILE:$src" "TCP:${VM_IP[1]}:$port"
	for _ in $(seq 50); do [ "$(wc -c <"$dst")" -ge 4194304 ] && break; sleep 0.1; done
	assert_equal "$(wc -c <"$dst")" 4194304
	assert_equal "$(sha256sum <"$dst")" "$(sha256sum <"$src")"
	rm -f "$src" "$dst"
	[ "$(counter 2 rx_bytes)" -ge 4194304 ]
}

@test "bpftool reads typed fields from the pinned VCT" {
	run bpftool -j map dump pinned "/sys/fs/bpf/clat/$PF/vct"
	assert_success
	assert_equal "$(jq '[.[] | select(.formatted.value.state == 1)] | length' <<<"$output")" 4
	assert_equal "$(jq -r '.[1].formatted.value | has("bat_gpa") and has("generation") and has("ifindex")' <<<"$output")" true
	run bpftool map dump pinned "/sys/fs/bpf/clat/$PF/mac_fn"
	assert_output --partial '"mac": ['
	assert_output --partial '"fn": '
}

@test "detach leaves no pins and no XDP programs behind" {
	[ -n "$(xdp_prog_of "$PF")" ]
	"$CLAT_LOAD" detach "$PF"
	[ ! -e "/sys/fs/bpf/clat/$PF" ]
	for dev in "$PF" "$HOST_REP" "${VM_REP[@]}"; do
		assert_equal "$(xdp_prog_of "$dev")" ""
	done
	ip link show dev "$PF" >/dev/null # the interfaces stay
	run "$CLAT_LOAD" detach "$PF"
	assert_success
	assert_output --partial "nothing to do"
}

@test "attaching twice is idempotent and never stacks programs" {
	local id
	id=$(xdp_prog_of "$PF")
	run "$CLAT_LOAD" attach "$PF"
	assert_success
	assert_output --partial "already attached"
	assert_equal "$(xdp_prog_of "$PF")" "$id"
	assert_equal "$(bpftool -j net show dev "$PF" | jq '.[0].xdp | length')" 1
}

@test "status --json reports programs and every function" {
	run "$CLAT_LOAD" status "$PF" --json
	assert_success
	assert_equal "$(jq -r .mode <<<"$output")" native
	assert_equal "$(jq '.programs | length' <<<"$output")" 5
	assert_equal "$(jq '[.fns[].fn] | sort' -c <<<"$output")" "[0,1,2,3]"
	assert_equal "$(jq -r '.fns[] | select(.fn == 2) | .macs[0].mac' <<<"$output")" "${VM_MAC[1]}"
}

@test "vf del removes a function and vf add brings it back" {
	"$CLAT_LOAD" vf del "$PF" --fn 2
	assert_equal "$(xdp_prog_of "${VM_REP[1]}")" ""
	run wire ping -c 1 -W 1 "${VM_IP[1]}"
	assert_failure
	"$CLAT_LOAD" vf add "$PF" --fn 2 --mac "${VM_MAC[1]}" --dev "${VM_REP[1]}"
	[ -n "$(xdp_prog_of "${VM_REP[1]}")" ]
	run wire ping -c 1 -W 2 "${VM_IP[1]}"
	assert_success
}

@test "a MAC changed with vf-emu set is picked up by re-attach" {
	"$VF_EMU" set "$PF" vf 0 mac 02:12:34:56:78:9a
	"$CLAT_LOAD" attach "$PF"
	assert_equal "$("$CLAT_LOAD" status "$PF" --json | jq -r '.fns[] | select(.fn == 1) | .macs | map(.mac) | join(",")')" "02:12:34:56:78:9a"
	wire ip neigh flush dev "$WIRE_PORT"
	run wire ping -c 1 -W 2 "${VM_IP[0]}"
	assert_success
}
