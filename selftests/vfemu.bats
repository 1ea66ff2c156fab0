#!/usr/bin/env bats
# vf-emu: the emulated SR-IOV NIC keeps its state in the kernel and refuses
# bad input clearly.

load lib/common

setup() {
	PF=
}

teardown() {
	topo_destroy
}

@test "create builds the PF, host port, VFs and VM namespaces" {
	topo_create 2
	run "$VF_EMU" list "$PF" --json
	assert_success
	assert_equal "$(jq -r .pf <<<"$output")" "$PF"
	assert_equal "$(jq '.vfs | length' <<<"$output")" 2
	assert_equal "$(jq -c '[.vfs[] | .fn]' <<<"$output")" "[1,2]"
	assert_equal "$(jq -r '.vfs[1] | has("mac") and has("rep") and has("rep_ifindex") and has("netns") and has("pci")' <<<"$output")" true
	assert_equal "$(jq -r .host_port.fn <<<"$output")" 0
	ip netns list | grep -q "^$WIRE_NS"
	ip -n "${VM_NS[1]}" link show eth0 | grep -q "${VM_MAC[1]}"
	ip link show "${VM_REP[1]}" >/dev/null
}

@test "MACs and PCI addresses are deterministic and locally administered" {
	topo_create 2
	local first
	first=$("$VF_EMU" list "$PF" --json | jq -c '[.vfs[] | {mac, pci}]')
	"$VF_EMU" destroy "$PF"
	"$VF_EMU" create "$PF" --numvfs 2
	assert_equal "$("$VF_EMU" list "$PF" --json | jq -c '[.vfs[] | {mac, pci}]')" "$first"
	[[ "${VM_MAC[0]}" == 02:* ]]
}

@test "set changes the VF's live MAC" {
	topo_create 1
	"$VF_EMU" set "$PF" vf 0 mac 02:aa:bb:cc:dd:ee
	assert_equal "$("$VF_EMU" list "$PF" --json | jq -r '.vfs[0].mac')" 02:aa:bb:cc:dd:ee
	ip -n "${VM_NS[0]}" link show eth0 | grep -q 02:aa:bb:cc:dd:ee
}

@test "bad arguments are refused" {
	topo_create 1
	run "$VF_EMU" create "$PF" --numvfs 1
	assert_failure
	assert_output --partial "exists"
	run "$VF_EMU" create "x$PF" --numvfs 0
	assert_failure
	run "$VF_EMU" create "x$PF" --numvfs 65
	assert_failure
	run "$VF_EMU" set "$PF" vf 0 mac 01:00:5e:00:00:01
	assert_failure
	run "$VF_EMU" set "$PF" vf 0 mac zz:00
	assert_failure
	run "$VF_EMU" set "$PF" vf 7 mac 02:00:00:00:00:01
	assert_failure
	run setpriv --reuid=nobody --regid=nogroup --clear-groups "$VF_EMU" list "$PF"
	assert_failure
	assert_output --partial "root"
	ip link show "x$PF" 2>/dev/null && return 1
	true
}

@test "a failed create rolls back everything" {
	local pf
	pf=$(unique_pf)
	ip netns add "$pf-vm1"
	run "$VF_EMU" create "$pf" --numvfs 3
	ip netns del "$pf-vm1"
	assert_failure
	run ip link show "$pf"
	assert_failure
	[ -z "$(ip netns list | grep "^$pf-" || true)" ]
}

@test "destroy removes everything and is idempotent" {
	topo_create 2
	local pf=$PF
	"$VF_EMU" destroy "$pf"
	run ip link show "$pf"
	assert_failure
	[ -z "$(ip netns list | grep "^$pf-" || true)" ]
	run "$VF_EMU" destroy "$pf"
	assert_success
	PF=
}
