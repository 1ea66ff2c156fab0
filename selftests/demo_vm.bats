#!/usr/bin/env bats
# make demo-vm (scripts/demo-vm.sh): a real TCG VM under two private
# libvirtds, live-migrated with its TCP connections' contexts.  It runs
# whole once, and is interrupted once during the migration; both times it
# must leave nothing behind.

load lib/common
load lib/libvirt
bats_require_minimum_version 1.5.0

setup() {
	lv_skip_unless_ready
	command -v jq >/dev/null || skip "jq not installed"
	DEMO_PID=
}

teardown() {
	[ -z "${DEMO_PID:-}" ] || kill -9 -- "-$DEMO_PID" 2>/dev/null || true
}

# leftovers TAG: what the demo named TAG* that still exists, one a line.
leftovers() {
	ip netns list | grep "^$1" || true
	ip -o link show | grep -o "$1[a-z0-9-]*" || true
	ls /sys/fs/bpf/clat 2>/dev/null | grep "^$1" || true
	ps -eo pid,args | grep "$1-vm" | grep -v grep || true
}

# the demo's name tag, from its first line
demo_tag() { sed -n 's/^== two hosts: PF \(dv[0-9a-f]*\)a .*/\1/p' "$1" | head -1; }

@test "demo-vm migrates the VM with its TCP contexts, the header downtime is the sum of its phases, nothing left" {
	run --separate-stderr "$ROOT/scripts/demo-vm.sh"
	echo "$output"
	echo "$stderr" >&2
	assert_success
	local tag
	tag=$(demo_tag <(echo "$output"))
	[ -n "$tag" ]
	# Four blocks of contexts (device/guest, before/after): the same three
	# connections (svc, VM port, remote) in each, TCP established.
	local blocks
	blocks=$(awk '/^== (before|after):/ {b++} /^\{"svc"/ {print b, $0}' <<<"$output")
	local b
	for b in 1 2 3 4; do
		[ "$(grep -c "^$b " <<<"$blocks")" -eq 3 ]
		[ "$(grep "^$b " <<<"$blocks" | cut -d' ' -f2- | jq -c '{svc, vm_port, remote}' | sort)" = \
			"$(grep '^1 ' <<<"$blocks" | cut -d' ' -f2- | jq -c '{svc, vm_port, remote}' | sort)" ]
	done
	[ "$(grep -c '"tcp_state":"established"' <<<"$blocks")" -eq 12 ]
	# After the move the connections kept counting on host B.
	[ "$(grep '^3 ' <<<"$blocks" | cut -d' ' -f2- | jq -s 'map(.packets_in) | add')" -gt \
		"$(grep '^1 ' <<<"$blocks" | cut -d' ' -f2- | jq -s 'map(.packets_in) | add')" ]
	# The header downtime equals the sum of the phases listed under it.
	local head sum
	head=$(sed -n 's/^downtime \([0-9.]*\) ms .*/\1/p' <<<"$output")
	sum=$(sed -n '/^downtime /,/^(migration/p' <<<"$output" | sed -n 's/^  \([0-9.]*\) ms\t.*/\1/p' |
		awk '{s += $1} END {printf "%.2f", s}')
	[ -n "$head" ]
	awk -v h="$head" -v s="$sum" 'BEGIN { d = h - s; exit !(d < 0.02 && d > -0.02) }'
	[ -z "$(leftovers "$tag")" ]
}

@test "demo-vm interrupted during the migration removes everything it made" {
	local log=$BATS_TEST_TMPDIR/demo.log tag _
	# A background job starts with SIGINT ignored; a terminal's Ctrl-C does not.
	setsid env --default-signal=INT "$ROOT/scripts/demo-vm.sh" </dev/null >"$log" 2>&1 3>&- &
	DEMO_PID=$!
	for _ in $(seq 1200); do
		grep -q '^== migrate' "$log" && break
		kill -0 "$DEMO_PID" 2>/dev/null || break
		sleep 0.1
	done
	grep -q '^== migrate' "$log"
	tag=$(demo_tag "$log")
	[ -n "$tag" ]
	# Ctrl-C: SIGINT to the demo's process group.
	kill -INT -- "-$DEMO_PID"
	local rc=0
	wait "$DEMO_PID" || rc=$?
	DEMO_PID=
	cat "$log"
	[ "$rc" -ne 0 ]
	run grep -c '^== done' "$log"
	assert_output 0
	[ -z "$(leftovers "$tag")" ]
}
