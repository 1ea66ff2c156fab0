#!/usr/bin/env bats
# Real libvirt: two private libvirtd instances on this machine (two "hosts",
# each with its own host_uuid), a TCG domain (type='qemu', 1 vCPU, 128 MiB)
# on a tap VF of host A whose guest builds its context tables in its own
# RAM, and 'clat-load libvirt migrate' moving it to host B with its
# contexts, while 'libvirt watch' runs on both hosts.  One migration: the
# RAM copy alone takes seconds under TCG.

load lib/common
load lib/libvirt
bats_require_minimum_version 1.5.0

XMLNS=https://clat.dev/xmlns/guest/1

setup() {
	lv_skip_unless_ready
	"$BIN/clat-guest" agent --help >/dev/null 2>&1 || skip "clat-guest has no in-guest init/agent"
	"$CLAT_LOAD" libvirt migrate --help >/dev/null 2>&1 || skip "clat-load has no libvirt migrate"
	TAG=l$(printf '%x%03x' $(($$ % 256)) $((RANDOM % 4096)))
	PF_A=${TAG}a PF_B=${TAG}b WIRE_A=$TAG-wa WIRE_B=$TAG-wb
	DOM=$TAG-vm
	NET=198.18.$((RANDOM % 250 + 1))
	local pf w json
	for pf in "$PF_A" "$PF_B"; do
		w=$WIRE_A
		[ "$pf" = "$PF_B" ] && w=$WIRE_B
		"$VF_EMU" create "$pf" --numvfs 1 --vm tap --wire-netns "$w" >/dev/null
		"$CLAT_LOAD" attach "$pf" 2>/dev/null
	done
	json=$("$VF_EMU" list "$PF_A" --json)
	TAP_A=$(jq -r '.vfs[0].rep' <<<"$json")
	VM_MAC=$(jq -r '.vfs[0].mac' <<<"$json")
	TAP_B=$("$VF_EMU" list "$PF_B" --json | jq -r '.vfs[0].rep')
	SOCK=$BATS_TEST_TMPDIR/devchan.sock
	IN_PID=
}

teardown() {
	[ -z "${IN_PID:-}" ] || kill -9 "$IN_PID" 2>/dev/null || true
	reap
	lv_teardown_all
	local pf
	for pf in "${PF_A:-}" "${PF_B:-}"; do
		[ -n "$pf" ] || continue
		"$CLAT_LOAD" detach "$pf" >/dev/null 2>&1 || true
		"$VF_EMU" destroy "$pf" >/dev/null 2>&1 || true
		rm -f /run/clat/migrate-"$pf"-fn*.lock
	done
	ip netns del "${WIRE_A:-}" 2>/dev/null || true
	ip netns del "${WIRE_B:-}" 2>/dev/null || true
	pins_sweep "${PF_A:-}" "${PF_B:-}"
	rmdir /run/clat 2>/dev/null || true # only if no one else's lock is in it
}

# flows N FIRST_PORT: N UDP flows from the wire to the VM's MAC on host A.
flows() {
	"$BIN/flowgen" --prog "/sys/fs/bpf/clat/$PF_A/prog_rx" --dst-mac "$VM_MAC" \
		--src-mac 02:00:5e:00:00:01 --vm-addr "$NET.10" --vm-port 5000 \
		--remote-addr "$NET.1" --first-port "$2" --count "$1" --proto udp >/dev/null
}

# ports PF: the sorted remote ports of fn 1's live contexts on PF.
ports() {
	"$CLAT_LOAD" ctx list "$1" --fn 1 --json | jq -c '[.contexts[].remote_port] | sort'
}

fn_field() { # PF FN JQ
	"$CLAT_LOAD" status "$1" --json | jq -r --argjson fn "$2" ".fns[] | select(.fn == \$fn) | $3"
}

# hook_for NAME PF: the project's qemu hook for instance NAME, with its
# settings baked in (libvirtd gives a hook no environment of ours) and its
# messages in $BATS_TEST_TMPDIR/hook-NAME.log.
hook_for() {
	local f=$BATS_TEST_TMPDIR/hook-$1.sh
	cat >"$f" <<-EOF
		#!/bin/bash
		exec 2>>'$BATS_TEST_TMPDIR/hook-$1.log'
		echo "hook: \$*" >&2
		export CLAT_PF='$2' CLAT_LOAD='$CLAT_LOAD' CLAT_DEFAULTS=/nonexistent CLAT_HOOK_STATE='$BATS_TEST_TMPDIR/hookstate-$1'
		exec '$ROOT/scripts/libvirt-qemu-hook' "\$@"
	EOF
	echo "$f"
}

# boot_with_tables: domain DOM on host A (instance a) runs, its guest built
# its tables, the metadata names them and watch A attached them; 30 flows.
# Sets RAM_A and BAT.
boot_with_tables() {
	lv_domain_xml a "$DOM" "$TAP_A" "$VM_MAC" "$NET.10/24" >"$BATS_TEST_TMPDIR/src.xml"
	lv_virsh a create "$BATS_TEST_TMPDIR/src.xml" >/dev/null
	lv_wait_ready a "$DOM"
	RAM_A=$(lv_ram a "$DOM")
	# The guest builds its tables in its own huge pages and publishes the
	# BAT GPA.  (Long lines crawl over the guest's serial console under
	# TCG: the JSON stays in the guest, the BAT GPA comes out alone.)
	run lv_cmd a "$DOM" "clat-guest init --mem /dev/hugepages/clat --size 2M --type conn:ctx=128,block=4096,services=1000 --json >/tmp/i && sed -n 's/.*\"bat_gpa\":\([0-9]*\).*/bat=\1/p' /tmp/i"
	assert_success
	BAT=$(sed -n 's/^bat=\([0-9][0-9]*\)$/\1/p' <<<"$output")
	[ -n "$BAT" ] && [ "$BAT" -gt 0 ]
	BAT=$(printf '0x%x' "$BAT")
	# The metadata names them: watch A attaches (a metadata-change event).
	lv_virsh a metadata "$DOM" --uri "$XMLNS" --key clat --live \
		--set "<guest mem='$RAM_A' bat-gpa='$BAT'/>" >/dev/null
	wait_log "$BATS_TEST_TMPDIR/watch-a.log" "attach  fn 1 ($DOM): $RAM_A"
	assert_equal "$(printf '0x%x' "$(fn_field "$PF_A" 1 .bat_gpa)")" "$BAT"
	flows 30 20000
	assert_equal "$("$CLAT_LOAD" ctx list "$PF_A" --fn 1 --json | jq '.contexts | length')" 30
}

# dest_xml RAM_B: host B's XML of the domain: its own tap, sockets, RAM file.
dest_xml() {
	lv_virsh a dumpxml --migratable "$DOM" |
		sed -e "s|'$TAP_A'|'$TAP_B'|" -e "s|$(lv_dir a)/|$(lv_dir b)/|g" -e "s|$RAM_A|$1|" \
			>"$BATS_TEST_TMPDIR/dst.xml"
	grep -q "'$TAP_B'" "$BATS_TEST_TMPDIR/dst.xml"
	grep -q "mem=.$1" "$BATS_TEST_TMPDIR/dst.xml"
}

watch_both() {
	bg "$BATS_TEST_TMPDIR/watch-a.log" "$CLAT_LOAD" libvirt watch "$PF_A" --connect "$(lv_uri a)" \
		--interval 0 --resync-ms 0
	bg "$BATS_TEST_TMPDIR/watch-b.log" "$CLAT_LOAD" libvirt watch "$PF_B" --connect "$(lv_uri b)" \
		--interval 0 --resync-ms 0
	wait_log "$BATS_TEST_TMPDIR/watch-a.log" "reconcile $PF_A"
	wait_log "$BATS_TEST_TMPDIR/watch-b.log" "reconcile $PF_B"
}

wait_log() { # LOG TEXT [SECONDS]
	local i
	for ((i = 0; i < ${3:-30} * 10; i++)); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "no '$2' in $1:" >&2
	cat "$1" >&2
	return 1
}

@test "libvirt migrate moves a TCG domain between two libvirtds with its contexts; watch on both sides stays consistent" {
	local ram_b log_a=$BATS_TEST_TMPDIR/watch-a.log log_b=$BATS_TEST_TMPDIR/watch-b.log
	local out live
	# The qemu hook on both hosts too: it must leave the migration alone.
	lv_start a "$(hook_for a "$PF_A")"
	lv_start b "$(hook_for b "$PF_B")"
	watch_both
	boot_with_tables

	# Host B: the domain's XML with its own tap, sockets and RAM file (the
	# first domain of a fresh libvirtd is id 1), and the device-state
	# listener on that file.
	ram_b=$(lv_shm b)/libvirt/qemu/1-$DOM/pc.ram
	mkdir -p "${ram_b%/*}"
	truncate -s 128M "$ram_b"
	dest_xml "$ram_b"
	"$CLAT_LOAD" migrate-in "$PF_B" --fn 1 --mac "$VM_MAC" --mem "$ram_b" --listen "unix:$SOCK" \
		--json </dev/null >"$BATS_TEST_TMPDIR/in.json" 2>"$BATS_TEST_TMPDIR/in.log" 3>&- &
	IN_PID=$!
	for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
	[ -S "$SOCK" ]

	# More flows while libvirt copies the RAM: they land in pre-copy rounds
	# or in the final delta, never in RAM that libvirt already sent.
	bg "$BATS_TEST_TMPDIR/flows.log" bash -c "for p in \$(seq 21000 10 21400); do
		'$BIN/flowgen' --prog /sys/fs/bpf/clat/$PF_A/prog_rx --dst-mac $VM_MAC --src-mac 02:00:5e:00:00:01 \
			--vm-addr $NET.10 --vm-port 5000 --remote-addr $NET.1 --first-port \$p --count 10 --proto udp || exit 0
		sleep 0.1; done"
	local flow_pid=$BG_PID
	run --separate-stderr "$CLAT_LOAD" libvirt migrate "$DOM" "$(lv_uri b)" --connect "$(lv_uri a)" \
		--pf "$PF_A" --channel "unix:$SOCK" --dest-xml "$BATS_TEST_TMPDIR/dst.xml" \
		--migrate-uri tcp://127.0.0.1 --listen-address 127.0.0.1 --json
	echo "$stderr" >&2
	assert_success
	out=$output
	echo "# libvirt migrate: $(jq -c . <<<"$out")" >&3
	local rc=0
	wait "$IN_PID" || rc=$?
	IN_PID=
	assert_equal "$rc" 0
	kill -- "-$flow_pid" 2>/dev/null || true # no more frames for host A

	# The report: libvirt's own figures and clat's phases after its job.
	assert_equal "$(jq .ok <<<"$out")" true
	assert_equal "$(jq .fn <<<"$out")" 1
	[ "$(jq .libvirt.downtime_ms <<<"$out")" != null ]
	[ "$(jq .libvirt.memory_processed_bytes <<<"$out")" -gt 0 ]
	[ "$(jq .downtime.clat_ns <<<"$out")" -gt 0 ]
	live=$(jq .commit.live_contexts <<<"$out")
	[ "$live" -ge 30 ]

	# Host B serves the domain with every context, host A holds nothing.
	run lv_virsh b domstate "$DOM"
	assert_output running
	run lv_virsh a list --all --name
	refute_output --partial "$DOM"
	assert_equal "$(printf '0x%x' "$(fn_field "$PF_B" 1 .bat_gpa)")" "$BAT"
	assert_equal "$(fn_field "$PF_B" 1 '.macs[0].mac')" "$VM_MAC"
	assert_equal "$("$CLAT_LOAD" ctx list "$PF_B" --fn 1 --json | jq '.contexts | length')" "$live"
	[ "$(ports "$PF_B" | jq '[.[] | select(. >= 20000 and . < 20030)] | length')" = 30 ]
	# The source fn was released: no tables (nor the fn) left on host A.
	run fn_field "$PF_A" 1 .bat_gpa
	[ -z "$output" ] || [ "$output" = 0 ]
	# The guest reads them in its own RAM on host B: the device wrote them
	# there at the commit, after libvirt's copy.
	# (A count and one flow, not 440 contexts of JSON over the serial line.)
	run lv_cmd b "$DOM" "clat-guest ctx list --mem /dev/hugepages/clat --json >/tmp/c; sed -n 's/.*\"live\":\([0-9]*\).*/live=\1/p' /tmp/c; grep -c '\"remote_port\":20007,' /tmp/c"
	assert_success
	assert_line "live=$live"
	assert_line 1

	# watch never flushed or detached on A, never attached or set a MAC on B.
	wait_log "$log_b" "domain $DOM: RESUMED"
	run cat "$log_a"
	refute_line --regexp '^detach'
	assert_line --partial "watch: domain $DOM: STOPPED_MIGRATED"
	run cat "$log_b"
	assert_line --partial "watch: domain $DOM: STARTED_MIGRATED"
	refute_line --regexp '^(attach|set-mac|detach)'
	# The hook: A's stopped saw the orchestrator's lock, B's started saw the
	# incoming marker; neither touched the fn.
	run cat "$BATS_TEST_TMPDIR/hook-a.log"
	assert_line "hook: $DOM stopped end -"
	assert_line --partial "fn 1 is being migrated by an orchestrator; left alone"
	refute_line --partial "detached"
	run cat "$BATS_TEST_TMPDIR/hook-b.log"
	assert_line "hook: $DOM migrate begin -"
	assert_line --partial "its RAM is still arriving (incoming migration or restore); no tables, no MAC"
	# Both agree with libvirt now: nothing to do.
	run "$CLAT_LOAD" libvirt reconcile "$PF_B" --connect "$(lv_uri b)" --json
	assert_success
	assert_equal "$(jq -c .actions <<<"$output")" '[]'
	run "$CLAT_LOAD" libvirt reconcile "$PF_A" --connect "$(lv_uri a)" --json
	assert_success
	assert_equal "$(jq -c .actions <<<"$output")" '[]'
}

@test "a libvirt migration without the orchestrator: A drops the tables without writing into RAM that left, B attaches only once the domain runs" {
	local ram_b log_a=$BATS_TEST_TMPDIR/watch-a.log log_b=$BATS_TEST_TMPDIR/watch-b.log
	lv_start a
	lv_start b
	watch_both
	boot_with_tables
	ram_b=$(lv_shm b)/libvirt/qemu/1-$DOM/pc.ram
	dest_xml "$ram_b"
	# Plain virsh, destination left paused (--suspend).
	lv_virsh a migrate --live --suspend --xml "$BATS_TEST_TMPDIR/dst.xml" \
		--migrateuri tcp://127.0.0.1 --listen-address 127.0.0.1 "$DOM" "$(lv_uri b)"
	wait_log "$log_a" "its domain migrated away"
	run cat "$log_a"
	assert_line --partial "watch: domain $DOM: STOPPED_MIGRATED"
	assert_line "detach  fn 1: $RAM_A BAT $BAT (its domain migrated away: its RAM has left, nothing written back)"
	refute_line --regexp '^detach .*no running domain'
	run fn_field "$PF_A" 1 .bat_gpa
	assert_output 0
	# B: paused, so nothing yet (its RAM is there now, but the guest has
	# not run; libvirt's pause is the point where an orchestrator commits).
	run lv_virsh b domstate "$DOM"
	assert_output paused
	run cat "$log_b"
	assert_line --partial "domain $DOM: it is paused"
	refute_line --regexp '^(attach|set-mac)'
	assert_equal "$(fn_field "$PF_B" 1 .bat_gpa)" 0
	lv_virsh b resume "$DOM" >/dev/null
	wait_log "$log_b" "attach  fn 1 ($DOM): $ram_b BAT $BAT"
	run cat "$log_b"
	assert_line --regexp "^set-mac fn 1 \($DOM\): $VM_MAC"
	assert_equal "$(printf '0x%x' "$(fn_field "$PF_B" 1 .bat_gpa)")" "$BAT"
	# Without the device channel the 30 contexts stayed behind: none on B.
	assert_equal "$("$CLAT_LOAD" ctx list "$PF_B" --fn 1 --json | jq '.contexts | length')" 0
}
