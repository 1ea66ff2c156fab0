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

# Every command of a tool, from its generated --help: "tap add", "ctx list".
commands_of() { # tool
	"$1" --help | sed -n "s/^  $(basename "$1") \([a-z-]*\( [a-z-]*\)\?\)\( [<[-].*\)\?$/\1/p"
}

@test "--json works on every command that prints, in all three tools" {
	local tool c n=0
	for tool in "$CLAT_LOAD" "$BIN/clat-guest" "$VF_EMU"; do
		while read -r c; do
			# The in-guest agent is a daemon: it answers on its port, never on stdout.
			[ "$(basename "$tool") $c" = "clat-guest agent" ] && continue
			run "$tool" $c --help
			assert_success
			[[ $output == *"--json "* ]] || { echo "$(basename "$tool") $c lacks --json"; false; }
			n=$((n + 1))
		done < <(commands_of "$tool")
	done
	# The table was read: 25 clat-load, 8 clat-guest and 8 vf-emu commands.
	[ "$n" -ge 40 ]
}

@test "usage is generated from the typed table: bounds shown, required options without brackets" {
	run "$CLAT_LOAD" vf add --help
	assert_success
	assert_output --partial "clat-load vf add <pf> --fn N --mac MAC [--vlan VID]"
	assert_output --partial "--fn N (0..255)"
	assert_output --partial "--vlan VID (0..4094)"
	run "$CLAT_LOAD" attach --help
	assert_output --partial "[--unknown-unicast host|pass|drop]"
	run "$VF_EMU" create --help
	assert_output --partial "vf-emu create <pf> --numvfs N [--wire-netns NS]"
	assert_output --partial "--numvfs N (1..64)"
	run "$BIN/clat-guest" seed --help
	assert_output --partial "--count N (1..65535)"
	assert_output --partial "[--proto udp|tcp]"
}

# run_usage_error WANT CMD...: exit 2 and WANT on stderr.
usage_error() {
	local want=$1
	shift
	run "$@"
	assert_equal "$status" 2
	assert_output --partial "$want"
}

@test "type errors are usage errors (exit 2) with a clear message, and change nothing" {
	local before mem=$BATS_TEST_TMPDIR/g.mem
	topo_create 1
	attach >/dev/null 2>&1
	before=$("$CLAT_LOAD" status "$PF" --json | jq -c '.fns')
	# A bad size suffix, an out-of-bounds u32 and fn, a bad MAC, an unknown
	# enum value, an interface name too long, a missing required option.
	usage_error "invalid --pool-contexts '64X': expected a byte count 32..33554432 (K/M/G suffixes)" \
		"$CLAT_LOAD" attach "$PF" --pool-contexts 64X
	usage_error "invalid --fn '256': expected an integer 0..255" \
		"$CLAT_LOAD" vf del "$PF" --fn 256
	usage_error "invalid --fn '-1'" "$CLAT_LOAD" vf del "$PF" --fn -1
	usage_error "invalid --vlan '4095': expected an integer 0..4094" \
		"$CLAT_LOAD" vf set "$PF" --fn 1 --vlan 4095
	usage_error "invalid --max-rate '400001'" "$CLAT_LOAD" vf set "$PF" --fn 1 --max-rate 400001
	usage_error "invalid --mac '02:00:00:00:00': expected xx:xx:xx:xx:xx:xx" \
		"$CLAT_LOAD" vf add "$PF" --fn 5 --mac 02:00:00:00:00 --dev "${VM_REP[0]}"
	usage_error "invalid --mac '00:00:00:00:00:00': all-zero address" \
		"$CLAT_LOAD" vf add "$PF" --fn 5 --mac 00:00:00:00:00:00 --dev "${VM_REP[0]}"
	usage_error "invalid --state 'sideways': expected auto, enable or disable" \
		"$CLAT_LOAD" vf set "$PF" --fn 1 --state sideways
	usage_error "invalid --dev 'a-name-much-too-long': expected an interface name" \
		"$CLAT_LOAD" vf add "$PF" --fn 5 --mac 02:00:00:00:00:05 --dev a-name-much-too-long
	usage_error "vf add: --fn is required" \
		"$CLAT_LOAD" vf add "$PF" --mac 02:00:00:00:00:05 --dev "${VM_REP[0]}"
	usage_error "vf add: --mac is required" "$CLAT_LOAD" vf add "$PF" --fn 5 --dev "${VM_REP[0]}"
	usage_error "invalid --bat-gpa '0x1000q'" \
		"$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$mem" --bat-gpa 0x1000q
	usage_error "invalid --ctx-size '1.5K'" \
		"$CLAT_LOAD" locate --svc 1 --ctx-size 1.5K --block-size 4K --levels 1
	assert_equal "$("$CLAT_LOAD" status "$PF" --json | jq -c '.fns')" "$before"

	usage_error "invalid --numvfs '65': expected an integer 1..64" \
		"$VF_EMU" create "x$PF" --numvfs 65
	usage_error "invalid --vm 'vhost': expected netns or tap" \
		"$VF_EMU" create "x$PF" --numvfs 1 --vm vhost
	usage_error "create: --numvfs is required" "$VF_EMU" create "x$PF"
	usage_error "invalid VF index '64': expected an integer 0..63" \
		"$VF_EMU" set "$PF" vf 64 mac 02:00:00:00:00:01
	usage_error "set: expected 'mac'" "$VF_EMU" set "$PF" vf 0 max 02:00:00:00:00:01
	run ip link show "x$PF"
	assert_failure

	usage_error "invalid --size '1X'" "$BIN/clat-guest" init --mem "$mem" --size 1X \
		--type a:ctx=1K,block=4K,services=8
	usage_error "invalid --kind 'frobnicate': expected gpa-out-of-range, misaligned" \
		"$BIN/clat-guest" corrupt --mem "$mem" --bat-gpa 0 --kind frobnicate
	usage_error "seed: --count is required" "$BIN/clat-guest" seed --mem "$mem" --bat-gpa 0
	usage_error "invalid --proto 'icmp': expected udp or tcp" "$BIN/clat-guest" seed \
		--mem "$mem" --bat-gpa 0 --count 1 --vm-addr 10.0.0.1 --vm-port 1 \
		--remote-addr 10.0.0.2 --first-port 1 --proto icmp
	[ ! -e "$mem" ]
}

@test "sizes take K/M/G suffixes wherever sizes are taken" {
	topo_create 1
	run --separate-stderr "$CLAT_LOAD" attach "$PF" --pool-contexts 64K --json
	assert_success
	assert_equal "$("$CLAT_LOAD" status "$PF" --json | jq .pool.contexts)" 65536
	run "$CLAT_LOAD" locate --svc 2054 --ctx-size 1K --block-size 4K --levels 2
	assert_success
	assert_output --partial "element 2"
	run "$BIN/clat-guest" init --mem "$BATS_TEST_TMPDIR/g.mem" --size 2M \
		--type a:ctx=1K,block=4K,services=8 --json
	assert_success
	assert_equal "$(jq .size <<<"$output")" 2097152
}

@test "vf-emu's changing commands print what they did with --json" {
	local pf
	pf=$(unique_pf)
	PF=$pf
	run --separate-stderr "$VF_EMU" create "$pf" --numvfs 2 --json
	assert_success
	jq -e --arg pf "$pf" '.pf == $pf and (.vfs | length) == 2' <<<"$output"
	run --separate-stderr "$VF_EMU" set "$pf" vf 1 mac 02:aa:00:00:00:01 --json
	assert_success
	jq -e '.done == "set" and .vf == 1 and .mac == "02:aa:00:00:00:01"' <<<"$output"
	assert_equal "$("$VF_EMU" list "$pf" --json | jq -r '.vfs[1].mac')" 02:aa:00:00:00:01
	run --separate-stderr "$VF_EMU" destroy "$pf" --json
	assert_success
	jq -e '.done == "destroy"' <<<"$output"
	run --separate-stderr "$VF_EMU" destroy "$pf" --json
	assert_success
	jq -e '.done == "nothing"' <<<"$output"
	PF=
}
