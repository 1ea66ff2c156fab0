#!/usr/bin/env bats
# Real QEMU guests (TCG, 1 vCPU, 128 MiB) on vf-emu VFs backed by taps:
# clat_rx redirects into the VM's tap, clat_tx runs on it, and a fn's port
# moves to another tap.  Each VM boot costs about 5 s of CPU, so few boots.

load lib/common
load lib/vm

setup() {
	vm_skip_unless_ready
	vmhost_create 2
	RAM=/dev/shm/clat-$TAG-$BATS_TEST_NUMBER.mem
}

teardown() {
	reap
	vmhost_destroy
	rm -f "$RAM"
}

hstat() { # FN COUNTER: one counter of fn from `stats --json` on the host
	in_host "$HOST" "$CLAT_LOAD" stats "$PF" --json |
		jq -r --argjson fn "$1" --arg s "$2" '(.fns[] | select(.fn == $fn) | .counters[$s]) // 0'
}

hstatus() { in_host "$HOST" "$CLAT_LOAD" status "$PF" --json; }

# xdp_on DEV: the XDP program id on a host-netns device, or empty.
xdp_on() {
	ip -n "$HOST" -j -d link show dev "$1" | jq -r '.[0].xdp.prog.id // .[0].xdp.attached[0].prog.id // empty'
}

@test "a VM on a tap VF answers pings from the wire through clat_rx and clat_tx" {
	vm_start vm "$HOST" "${TAP[0]}" "$RAM" "${VF_MAC[0]}" "$VM_IP/24"
	# clat_tx runs natively on the tap (not xdpgeneric).
	run ip -n "$HOST" -d link show dev "${TAP[0]}"
	assert_output --regexp 'xdp id [0-9]+'
	refute_output --partial xdpgeneric
	local rx0 tx0 rx1 tx1
	rx0=$(hstat 1 rx_packets) tx0=$(hstat 1 tx_packets)
	run ip netns exec "$WIRE_NS" ping -c 5 -i 0.2 -W 5 "$VM_IP"
	assert_success
	assert_output --partial '5 received'
	rx1=$(hstat 1 rx_packets) tx1=$(hstat 1 tx_packets)
	# Five echo requests went to fn 1 and five replies came from it (plus
	# ARP), all counted by the XDP programs.
	[ $((rx1 - rx0)) -ge 5 ] && [ $((tx1 - tx0)) -ge 5 ]
	# The guest saw them on its virtio NIC.
	run vm_cmd vm "cat /sys/class/net/eth0/statistics/rx_packets"
	assert_success
	[ "${output//[^0-9]/}" -ge 5 ]
	# The guest's view of its setup: huge pages, pinned-page sysctl, channel.
	run vm_cmd vm 'cat /proc/sys/vm/nr_hugepages /proc/sys/vm/compact_unevictable_allowed; cat /sys/class/virtio-ports/*/name'
	assert_success
	assert_equal "$output" $'16\n0\norg.clat.0'
	run vm_cmd vm false
	assert_failure 1
	# The console carries long output intact (the harness reads the socket).
	run vm_cmd vm 'seq 1 3000'
	assert_success
	assert_equal "$output" "$(seq 1 3000)"
}

@test "a TCP connection from the wire to the VM gets a context in the guest's own tables" {
	# The in-guest table builder (hugetlbfs, pagemap) comes with the guest
	# agent; without it this test cannot run.
	"$BIN/clat-guest" agent --help >/dev/null 2>&1 ||
		skip "clat-guest has no in-guest init/agent yet"
	vm_start vm "$HOST" "${TAP[0]}" "$RAM" "${VF_MAC[0]}" "$VM_IP/24"
	# The guest builds its tables in its own huge pages; the host attaches
	# them in the VM's RAM file at the GPA the guest reports.
	run vm_cmd vm 'clat-guest init --mem /dev/hugepages/clat --size 8M --type conn:ctx=128,block=4096,services=1000 --json'
	assert_success
	local bat
	bat=$(grep '^{' <<<"$output" | jq -r .bat_gpa)
	[ -n "$bat" ] && [ "$bat" != null ]
	in_host "$HOST" "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$RAM" --bat-gpa "$bat"
	vm_cmd vm 'nc -l -p 7000 >/tmp/got </dev/null &'
	# The connection stays open (a FIN would release its context).
	spawn bash -c "(echo hello; sleep 60) | ip netns exec $WIRE_NS socat -u - TCP:$VM_IP:7000,sourceport=45000"
	local i ctx=
	for i in $(seq 50); do
		ctx=$(in_host "$HOST" "$CLAT_LOAD" ctx list "$PF" --fn 1 --json |
			jq -c '.contexts[] | select(.remote_port == 45000)')
		[ -z "$ctx" ] || break
		sleep 0.2
	done
	[ -n "$ctx" ]
	run vm_cmd vm 'cat /tmp/got'
	assert_output --partial hello
	# Written back into guest RAM, the guest reads the same context, with
	# the service number the device gave it.
	in_host "$HOST" "$CLAT_LOAD" guest sync "$PF" --fn 1 >/dev/null
	run vm_cmd vm 'clat-guest ctx list --mem /dev/hugepages/clat --json'
	assert_success
	local g
	g=$(grep '^{' <<<"$output" | jq -c '[.. | objects | select(.remote_port? == 45000)][0]')
	[ "$g" != null ]
	assert_equal "$(jq .svc <<<"$g")" "$(jq .svc <<<"$ctx")"
	reap
}

@test "vf set --port moves fn 1 to a spare tap and back: clat_tx, maps and status follow" {
	local spare=${TAG}s sidx old
	in_host "$HOST" "$VF_EMU" tap add "$PF" vf 0 "$spare"
	run in_host "$HOST" "$VF_EMU" list "$PF" --json
	assert_success
	assert_equal "$(jq -r '.vfs[0].kind' <<<"$output")" tap
	assert_equal "$(jq -r --arg s "$spare" '.taps[] | select(.name == $s) | .vf' <<<"$output")" 0
	sidx=$(ip -n "$HOST" -j link show dev "$spare" | jq '.[0].ifindex')
	old=$(ip -n "$HOST" -j link show dev "${TAP[0]}" | jq '.[0].ifindex')
	[ -n "$(xdp_on "${TAP[0]}")" ]
	[ -z "$(xdp_on "$spare")" ]

	# Bad input changes nothing: another fn's port, the uplink, a bad name,
	# a policy option alongside.
	run in_host "$HOST" "$CLAT_LOAD" vf set "$PF" --fn 1 --port "${TAP[1]}"
	assert_failure
	assert_output --partial 'belongs to fn 2'
	run in_host "$HOST" "$CLAT_LOAD" vf set "$PF" --fn 1 --port "$PF"
	assert_failure
	assert_output --partial 'uplink'
	run in_host "$HOST" "$CLAT_LOAD" vf set "$PF" --fn 1 --port nosuchdev0
	assert_failure
	run in_host "$HOST" "$CLAT_LOAD" vf set "$PF" --fn 1 --port "$spare" --trust on
	assert_failure
	assert_output --partial 'alone'
	assert_equal "$(hstatus | jq '.fns[] | select(.fn == 1) | .ifindex')" "$old"

	run in_host "$HOST" "$CLAT_LOAD" vf set "$PF" --fn 1 --port "$spare" --json
	assert_success
	assert_equal "$(jq .ifindex <<<"$output")" "$sidx"
	assert_equal "$(jq .old_ifindex <<<"$output")" "$old"
	run hstatus
	assert_equal "$(jq '.fns[] | select(.fn == 1) | .ifindex' <<<"$output")" "$sidx"
	assert_equal "$(jq -r '.fns[] | select(.fn == 1) | .dev' <<<"$output")" "$spare"
	assert_equal "$(jq --argjson i "$sidx" '[.programs[] | select(.prog == "clat_tx" and .ifindex == $i)] | length' <<<"$output")" 1
	assert_equal "$(jq --argjson i "$old" '[.programs[] | select(.ifindex == $i)] | length' <<<"$output")" 0
	[ -n "$(xdp_on "$spare")" ]
	[ -z "$(xdp_on "${TAP[0]}")" ]
	[ -e "/sys/fs/bpf/clat/$PF/link_tx_$sidx" ] && [ ! -e "/sys/fs/bpf/clat/$PF/link_tx_$old" ]
	# The same move again is a no-op; so is a re-attach (it re-syncs from
	# vf-emu, and the spare tap is VF 0's).
	in_host "$HOST" "$CLAT_LOAD" vf set "$PF" --fn 1 --port "$spare"
	in_host "$HOST" "$CLAT_LOAD" attach "$PF" 2>/dev/null
	assert_equal "$(hstatus | jq '.fns[] | select(.fn == 1) | .ifindex')" "$sidx"
	[ -z "$(xdp_on "${TAP[0]}")" ]

	# A VM on the spare tap is fn 1 now: the wire reaches it through clat.
	local rx0
	rx0=$(hstat 1 rx_packets)
	vm_start vm "$HOST" "$spare" "$RAM" "${VF_MAC[0]}" "$VM_IP/24"
	run ip netns exec "$WIRE_NS" ping -c 3 -i 0.2 -W 5 "$VM_IP"
	assert_success
	[ $(($(hstat 1 rx_packets) - rx0)) -ge 3 ]
	vm_stop vm

	run in_host "$HOST" "$CLAT_LOAD" vf set "$PF" --fn 1 --port "${TAP[0]}"
	assert_success
	assert_equal "$(hstatus | jq '.fns[] | select(.fn == 1) | .ifindex')" "$old"
	[ -n "$(xdp_on "${TAP[0]}")" ]
	[ -z "$(xdp_on "$spare")" ]
	[ ! -e "/sys/fs/bpf/clat/$PF/link_tx_$sidx" ]

	in_host "$HOST" "$VF_EMU" tap del "$PF" "$spare"
	run ip -n "$HOST" link show dev "$spare"
	assert_failure
}

@test "vf-emu destroy removes the taps of a --vm tap PF, spares too" {
	in_host "$HOST" "$VF_EMU" tap add "$PF" vf 1 "${TAG}s"
	# Bad input: an unknown --vm kind, a VF out of range, a name in use.
	run in_host "$HOST" "$VF_EMU" create "${TAG}x" --numvfs 1 --vm vhost
	assert_failure 2
	run in_host "$HOST" "$VF_EMU" tap add "$PF" vf 2 "${TAG}t"
	assert_failure
	assert_output --partial 'no such VF'
	run in_host "$HOST" "$VF_EMU" tap add "$PF" vf 0 "${TAG}s"
	assert_failure
	assert_output --partial 'already exists'
	in_host "$HOST" "$CLAT_LOAD" detach "$PF" 2>/dev/null
	run in_host "$HOST" "$VF_EMU" tap del "$PF" "${TAP[0]}"
	assert_failure
	assert_output --partial 'not a spare tap'
	# A tap VF has no netns end to move.
	run in_host "$HOST" "$VF_EMU" assign "$PF" vf 0 netns "$HOST"
	assert_failure
	assert_output --partial 'tap'
	in_host "$HOST" "$VF_EMU" destroy "$PF"
	run ip -n "$HOST" -br link show
	assert_success
	refute_output --partial "$PF"
	refute_output --partial "${TAG}s"
	run ip netns list
	refute_output --partial "$WIRE_NS"
}
