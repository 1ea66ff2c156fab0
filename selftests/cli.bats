#!/usr/bin/env bats
# Bad input gets a clear error and a non-zero exit, and changes nothing.

load lib/common
bats_require_minimum_version 1.5.0

setup() {
	PF=
}

teardown() {
	[ -z "$PF" ] || ip link del "${PF}x" 2>/dev/null || true
	topo_destroy
}

@test "clat-load --help lists every command and each has --help" {
	local top
	top=$("$CLAT_LOAD" --help)
	for c in attach detach status stats "vf add" "vf del"; do
		[[ "$top" == *"clat-load $c "* ]]
		run "$CLAT_LOAD" $c --help
		assert_success
		assert_output --partial "--help"
	done
}

@test "an unknown command is a usage error" {
	run "$CLAT_LOAD" frobnicate
	assert_equal "$status" 2
	assert_output --partial "unknown command 'frobnicate'"
}

@test "attach without a PF is a usage error" {
	run "$CLAT_LOAD" attach
	assert_equal "$status" 2
	assert_output --partial "missing argument <pf>"
}

@test "attach to an unknown interface fails clearly and pins nothing" {
	run "$CLAT_LOAD" attach nosuchdev0
	assert_equal "$status" 1
	assert_output --partial "failed to find interface nosuchdev0"
	[ ! -e /sys/fs/bpf/clat/nosuchdev0 ]
}

@test "an unknown option and a bad mode are usage errors" {
	run "$CLAT_LOAD" attach lo --bogus
	assert_equal "$status" 2
	assert_output --partial "unknown option"
	run "$CLAT_LOAD" attach lo --mode turbo
	assert_equal "$status" 2
	assert_output --partial "invalid --mode 'turbo'"
}

@test "attach as a non-root user is refused" {
	topo_create 1
	run setpriv --reuid=nobody --regid=nogroup --clear-groups "$CLAT_LOAD" attach "$PF"
	assert_equal "$status" 1
	assert_output --partial "must be run as root"
	[ ! -e "/sys/fs/bpf/clat/$PF" ]
	[ -z "$(xdp_prog_of "$PF")" ]
}

@test "vf add validates --fn, --mac and the port" {
	topo_create 1
	attach
	run "$CLAT_LOAD" vf add "$PF" --fn 300 --mac 02:00:00:00:00:01 --dev "${VM_REP[0]}"
	assert_equal "$status" 2
	assert_output --partial "invalid --fn '300'"
	run "$CLAT_LOAD" vf add "$PF" --fn 5 --mac ff:ff:ff:ff:ff:ff --dev "${VM_REP[0]}"
	assert_equal "$status" 2
	assert_output --partial "multicast"
	run "$CLAT_LOAD" vf add "$PF" --fn 5 --mac 02:00:00:00:00:01
	assert_equal "$status" 2
	assert_output --partial "exactly one of --ifindex and --dev"
	run "$CLAT_LOAD" vf add "$PF" --fn 5 --mac 02:00:00:00:00:01 --dev "${VM_REP[0]}"
	assert_equal "$status" 1
	assert_output --partial "already belongs to fn 1"
	run "$CLAT_LOAD" vf add "$PF" --fn 5 --mac 02:00:00:00:00:01 --dev nosuchdev0
	assert_equal "$status" 1
	assert_output --partial "failed to find interface nosuchdev0"
}

@test "commands on a PF that is not attached say so" {
	run "$CLAT_LOAD" stats lo
	assert_equal "$status" 1
	assert_output --partial "clat is not attached to lo"
	run "$CLAT_LOAD" status lo --json
	assert_success
	assert_equal "$(jq .attached <<<"$output")" false
}

@test "attach refuses a device that already has another XDP program" {
	topo_create 1
	# vf-emu's XDP_PASS program on the host-stack end stands in for a foreign one.
	attach
	run "$CLAT_LOAD" vf add "$PF" --fn 9 --mac 02:00:00:00:00:09 --dev "$HOST_DEV"
	assert_equal "$status" 1
	assert_output --partial "another XDP program is attached"
	assert_equal "$("$CLAT_LOAD" status "$PF" --json | jq '[.fns[] | select(.fn == 9)] | length')" 0
}

@test "locate takes sizes with K/M suffixes, as the README shows" {
	run "$CLAT_LOAD" locate --svc 2054 --ctx-size 1K --block-size 4K --levels 2 --json
	assert_success
	assert_equal "$(jq -c . <<<"$output")" "$("$CLAT_LOAD" locate --svc 2054 --ctx-size 1024 --block-size 4096 --levels 2 --json | jq -c .)"
	run "$CLAT_LOAD" locate --svc 1 --ctx-size 1Q --block-size 4K --levels 1
	assert_failure 2
	[[ $output == *"invalid --ctx-size '1Q'"* ]]
}

@test "-q keeps only errors, -vv adds libbpf's debug, and errors name the tool" {
	topo_create 1
	run "$CLAT_LOAD" -q attach "$PF"
	assert_success
	assert_output ""
	"$CLAT_LOAD" detach "$PF" >/dev/null 2>&1
	run "$CLAT_LOAD" -vv attach "$PF"
	assert_success
	assert_output --partial "libbpf: "
	run "$CLAT_LOAD" attach "$PF"
	[[ $output != *"libbpf: "* ]]
	run "$BIN/clat-guest" -q show --mem "$BATS_TEST_TMPDIR/none.mem"
	assert_failure
	assert_output --partial "clat-guest: failed to open guest memory"
}

@test "attach, detach, vf add and vf del print what they did with --json" {
	topo_create 1
	run --separate-stderr "$CLAT_LOAD" attach "$PF" --json
	assert_success
	jq -e --arg pf "$PF" '.pf == $pf and .state == "attached" and .changed and .functions == 2' <<<"$output"
	run --separate-stderr "$CLAT_LOAD" attach "$PF" --json
	jq -e '.state == "attached" and (.changed | not)' <<<"$output"
	ip link add "${PF}x" type veth peer name "${PF}y"
	run --separate-stderr "$CLAT_LOAD" vf add "$PF" --fn 7 --mac 02:00:00:00:00:07 --dev "${PF}x" --json
	assert_success
	jq -e '.fn == 7 and .changed and .mac == "02:00:00:00:00:07"' <<<"$output"
	run --separate-stderr "$CLAT_LOAD" vf del "$PF" --fn 7 --json
	jq -e '.fn == 7 and .changed' <<<"$output"
	run --separate-stderr "$CLAT_LOAD" vf del "$PF" --fn 7 --json
	jq -e '.fn == 7 and (.changed | not)' <<<"$output"
	run --separate-stderr "$CLAT_LOAD" detach "$PF" --json
	jq -e '.state == "detached" and .changed' <<<"$output"
	run --separate-stderr "$CLAT_LOAD" detach "$PF" --json
	jq -e '.state == "detached" and (.changed | not)' <<<"$output"
}
