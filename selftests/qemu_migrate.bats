#!/usr/bin/env bats
# clat-load qemu migrate: live migration of real QEMU guests (TCG) driven
# over QMP, with the device phases at their one correct point.
#
# Shared mode (x-ignore-shared, one host: a hand-over to a new VMM on the
# same RAM file), all built fresh per test:
#   <wire ns W> WP ===== PF <host ns H>  (clat on a plain uplink)
#                        T1 (tap, fn 1's port) -- QEMU "src"
#                        T2 (tap)              -- QEMU "dst" (-incoming defer, same RAM file)
# A TCP stream from the wire runs through the guest (busybox nc relays it
# back to the wire) across the hand-over; seqstream proves every byte.
# Copy mode runs between two emulated hosts (twohost_create; guest RAM of
# 128 MiB + 8 KiB, see VM_RAM_KB in lib/vm.bash), and the QMP error paths
# against a scripted server (lib/fakeqmp.py).

load lib/common
load lib/vm

setup() {
	vm_skip_unless_ready
	TAG=
}

# onehost_create: the shared-mode topology above.
onehost_create() {
	local ns
	TAG=q$(printf '%x%03x' $(($$ % 256)) $((RANDOM % 4096)))
	H=$TAG-h W=$TAG-w
	PF=${TAG}p WP=${TAG}w T1=${TAG}t1 T2=${TAG}t2
	NET=198.18.$((RANDOM % 250 + 1))
	WIRE_IP=$NET.1 VM_IP=$NET.10
	VM_MAC=52:54:00:$(printf '%02x:%02x:%02x' $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)))
	RAM=/dev/shm/$TAG.mem
	MIG=$BATS_TEST_TMPDIR/mig.sock
	for ns in "$H" "$W"; do
		ip netns add "$ns"
		ip -n "$ns" link set lo up
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
	done
	ip link add "$PF" netns "$H" type veth peer name "$WP" netns "$W"
	ip -n "$H" link set "$PF" up
	ip -n "$W" link set "$WP" up
	ip -n "$W" addr add "$WIRE_IP/24" dev "$WP"
	# Frames XDP redirects into a veth need NAPI on the receiving end.
	ip netns exec "$W" ethtool -K "$WP" gro on >/dev/null
	ip netns exec "$W" ethtool -K "$WP" tx off >/dev/null
	for t in "$T1" "$T2"; do
		ip -n "$H" tuntap add dev "$t" mode tap
		ip -n "$H" link set "$t" up
	done
	host "$CLAT_LOAD" attach "$PF" 2>/dev/null
	host "$CLAT_LOAD" vf add "$PF" --fn 1 --mac "$VM_MAC" --dev "$T1" 2>/dev/null
}

# twohost_create: copy mode between two emulated hosts, each a --vm tap PF
# in its own netns, both wired to one bridge in W; RAM files per host.
#   <W: bridge tor, WIRE_IP> --- PF_A <HA>: TAP_A -- QEMU "src" (RAM_A)
#                            --- PF_B <HB>: TAP_B -- QEMU "dst" (RAM_B, -incoming defer)
twohost_create() {
	local ns json
	TAG=q$(printf '%x%03x' $(($$ % 256)) $((RANDOM % 4096)))
	HA=$TAG-ha HB=$TAG-hb W=$TAG-w PF_A=${TAG}a PF_B=${TAG}b
	NET=198.18.$((RANDOM % 250 + 1))
	WIRE_IP=$NET.1 VM_IP=$NET.10
	RAM_A=/dev/shm/$TAG-a.mem RAM_B=/dev/shm/$TAG-b.mem
	for ns in "$HA" "$HB" "$W"; do
		ip netns add "$ns"
		ip -n "$ns" link set lo up
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
	done
	ip -n "$W" link add tor type bridge
	ip -n "$W" link set tor up
	in_host "$HA" "$VF_EMU" create "$PF_A" --numvfs 1 --vm tap --wire-netns "$W" \
		--wire-port "${TAG}wa" >/dev/null
	in_host "$HB" "$VF_EMU" create "$PF_B" --numvfs 1 --vm tap --wire-netns "$W" \
		--wire-port "${TAG}wb" >/dev/null
	ip -n "$W" link set "${TAG}wa" master tor
	ip -n "$W" link set "${TAG}wb" master tor
	ip -n "$W" addr add "$WIRE_IP/24" dev tor
	json=$(in_host "$HA" "$VF_EMU" list "$PF_A" --json)
	TAP_A=$(jq -r '.vfs[0].rep' <<<"$json") VM_MAC=$(jq -r '.vfs[0].mac' <<<"$json")
	TAP_B=$(in_host "$HB" "$VF_EMU" list "$PF_B" --json | jq -r '.vfs[0].rep')
	in_host "$HA" "$CLAT_LOAD" attach "$PF_A" 2>/dev/null
	in_host "$HB" "$CLAT_LOAD" attach "$PF_B" 2>/dev/null
	# The helpers below act on H/PF/RAM: the source host until the switch.
	H=$HA PF=$PF_A RAM=$RAM_A
}

teardown() {
	reap
	vm_teardown_all
	[ -n "${TAG:-}" ] || return 0
	local ns pf
	if [ -n "${HA:-}" ]; then
		in_host "$HA" "$CLAT_LOAD" detach "$PF_A" >/dev/null 2>&1 || true
		in_host "$HB" "$CLAT_LOAD" detach "$PF_B" >/dev/null 2>&1 || true
		in_host "$HA" "$VF_EMU" destroy "$PF_A" >/dev/null 2>&1 || true
		in_host "$HB" "$VF_EMU" destroy "$PF_B" >/dev/null 2>&1 || true
		for ns in "$HA" "$HB" "$W"; do ip netns del "$ns" 2>/dev/null || true; done
		pins_sweep "$PF_A" "$PF_B"
		rm -f "$RAM_A" "$RAM_B"
	else
		host "$CLAT_LOAD" detach "$PF" >/dev/null 2>&1 || true
		for ns in "$H" "$W"; do ip netns del "$ns" 2>/dev/null || true; done
		pins_sweep "$PF"
		rm -f "$RAM"
	fi
	TAG= HA=
}

host() { in_host "$H" "$@"; }
wire() { ip netns exec "$W" "$@"; }
ifindex_of() { ip -n "$H" -j link show dev "$1" | jq '.[0].ifindex'; }
fn_port() { # the fn's port ifindex and state, from status
	host "$CLAT_LOAD" status "$PF" --json | jq -r '.fns[] | select(.fn == 1) | "\(.ifindex) \(.state)"'
}
fn_rx() { # frames the device delivered to fn 1
	host "$CLAT_LOAD" stats "$PF" --json | jq -r '(.fns[] | select(.fn == 1) | .counters.rx_packets) // 0'
}

# boot_pair: the source guest on T1 (running, serving), the destination
# QEMU on T2 waiting for an incoming migration on the same RAM file.
boot_pair() {
	vm_start src "$H" "$T1" "$RAM" "$VM_MAC" "$VM_IP/24"
	vm_start dst "$H" "$T2" "$RAM" "$VM_MAC" "" -incoming defer
	# The destination must be up on QMP before anyone migrates to it.
	local _
	for _ in $(seq 100); do
		vm_qmp dst '{"execute":"query-status"}' 2>/dev/null | grep -q inmigrate && return 0
		sleep 0.1
	done
	return 1
}

# stream_start BYTES RATE: wire -> guest:7000 -> (busybox nc) -> wire:7001.
stream_start() {
	bg "$BATS_TEST_TMPDIR/rx.json" ip netns exec "$W" "$BIN/seqstream" tcp-recv 7001
	wait_listen "$W" 7001
	vm_cmd src "nc -l -p 7000 -e nc $WIRE_IP 7001 >/dev/null 2>&1 &"
	local _
	for _ in $(seq 50); do
		vm_cmd src 'netstat -ltn 2>/dev/null | grep -q ":7000 "' && break
		sleep 0.2
	done
	bg "$BATS_TEST_TMPDIR/tx.json" ip netns exec "$W" "$BIN/seqstream" tcp-send "$VM_IP" 7000 "$1" "$2"
	SEND_PID=$BG_PID
}

# stream_check BYTES: every byte arrived once, in order, and the stream ended.
stream_check() {
	local _
	for _ in $(seq 300); do
		[ -s "$BATS_TEST_TMPDIR/rx.json" ] && break
		sleep 0.1
	done
	cat "$BATS_TEST_TMPDIR/rx.json"
	run jq -e --argjson n "$1" '.bytes == $n and .corrupt == 0 and .eof' "$BATS_TEST_TMPDIR/rx.json"
	assert_success
}

qemu_migrate() {
	host "$CLAT_LOAD" qemu migrate "$PF" --fn 1 --src-qmp "$VM_STATE/src/qmp.sock" \
		--dst-qmp "$VM_STATE/dst/qmp.sock" "$@"
}

# guest_tables VM: the guest builds its context tables in its own huge
# pages and runs the agent; the host attaches them through the channel.
guest_tables() {
	vm_cmd "$1" 'clat-guest init --mem /dev/hugepages/clat --size 8M --type conn:ctx=128,block=4K,services=64 --json'
	vm_cmd "$1" 'clat-guest agent --mem /dev/hugepages/clat >/dev/null 2>&1 &'
	host "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$RAM" --channel "unix:$(vm_chan "$1")"
}

# ctx_summary: "svc:packets_in" of fn 1's live TCP contexts, one per line, by svc.
ctx_summary() {
	host "$CLAT_LOAD" ctx list "$PF" --fn 1 --json |
		jq -r '.contexts[] | select(.proto == "tcp") | "\(.svc) \(.packets_in + .packets_out)"' | sort -n
}

# contexts_carried BEFORE: a second on, the fn's TCP contexts are the ones
# of BEFORE (ctx_summary), on the same service numbers with counters that
# grew, and the guest on the destination VM reads the same service numbers
# in its own RAM (compared inside the guest: only the exit status crosses
# the console, whose log can repeat a byte when QEMU retries a write).
contexts_carried() {
	local before=$1 after want
	sleep 1
	after=$(ctx_summary)
	echo "contexts after: $after"
	[ "$(cut -d' ' -f1 <<<"$after")" = "$(cut -d' ' -f1 <<<"$before")" ] || return 1
	paste <(echo "$before") <(echo "$after") | while read -r s0 p0 s1 p1; do
		[ "$s0" = "$s1" ] && [ "$p1" -gt "$p0" ] || exit 1
	done || return 1
	host "$CLAT_LOAD" guest sync "$PF" --fn 1
	want=$(cut -d' ' -f1 <<<"$after" | tr '\n' ' ')
	vm_cmd dst "test \"\$(clat-guest ctx list --mem /dev/hugepages/clat --json | grep -o '\"svc\":[0-9]*' | cut -d: -f2 | sort -n | tr '\\n' ' ')\" = '$want'"
}

@test "shared mode: a hand-over to a new VMM on the same RAM file keeps a TCP stream whole" {
	onehost_create
	boot_pair
	guest_tables src
	stream_start 1200000 100000 # 12 s
	sleep 2 # the stream is running before the hand-over
	local rx0 out before after
	rx0=$(fn_rx)
	[ "$rx0" -gt 0 ]
	before=$(ctx_summary)
	echo "contexts before: $before"
	[ "$(wc -l <<<"$before")" -eq 2 ] # wire -> guest:7000 and guest -> wire:7001
	run qemu_migrate --uri "unix:$MIG" --shared --port "$T2" --json
	echo "$output"
	assert_success
	out=$(grep '^{' <<<"$output")
	# QEMU's total-time of an x-ignore-shared migration can round to 0 ms.
	jq -e '.migrated and .mode == "shared" and .qemu.transferred_bytes > 0 and
		(.qemu.total_time_ms | type) == "number" and
		.phases_ns.switchover > 0 and .phases_ns.commit > 0' <<<"$out"
	# The fn serves on the new VMM's tap; the old tap has no clat_tx left.
	[ "$(fn_port)" = "$(ifindex_of "$T2") active" ]
	[ -z "$(ip -n "$H" -j -d link show dev "$T1" | jq -r '.[0].xdp.prog.id // empty')" ]
	# The source QEMU is gone, the destination runs the guest.
	run vm_qmp dst '{"execute":"query-status"}'
	assert_output --partial '"running"'
	# While the stream still runs: counters continue on the same fn, each
	# context on its service number, and the guest on the new VMM reads them.
	[ "$(fn_rx)" -gt "$rx0" ]
	run contexts_carried "$before"
	echo "$output"
	assert_success
	stream_check 1200000
}

# gone NAME: that VM's QEMU has exited (within 5 s).
gone() {
	local pid _
	pid=$(vm_pid "$1")
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

@test "SIGKILL of the orchestrator at each phase, then --recover: exactly one side serves" {
	onehost_create
	vm_start v0 "$H" "$T1" "$RAM" "$VM_MAC" "$VM_IP/24"
	# The same stream runs across every kill and recovery.
	CUR=v0 CUR_TAP=$T1
	local -a order=(src)
	vm_start_dst() { # NAME TAP
		vm_start "$1" "$H" "$2" "$RAM" "$VM_MAC" "" -incoming defer
		local _
		for _ in $(seq 100); do
			vm_qmp "$1" '{"execute":"query-status"}' 2>/dev/null | grep -q inmigrate && return 0
			sleep 0.1
		done
		return 1
	}
	bg "$BATS_TEST_TMPDIR/rx.json" ip netns exec "$W" "$BIN/seqstream" tcp-recv 7001
	wait_listen "$W" 7001
	vm_cmd v0 "nc -l -p 7000 -e nc $WIRE_IP 7001 >/dev/null 2>&1 &"
	sleep 1
	bg "$BATS_TEST_TMPDIR/tx.json" ip netns exec "$W" "$BIN/seqstream" tcp-send "$VM_IP" 7000 3000000 100000
	local i=0 phase expect next tap log
	for phase in qm_setup:2 qm_switchover qm_completed qm_committed qm_resumed; do
		i=$((i + 1))
		next=v$i
		tap=$([ "$CUR_TAP" = "$T1" ] && echo "$T2" || echo "$T1")
		vm_start_dst "$next" "$tap"
		log=$BATS_TEST_TMPDIR/stall-$i.log
		stall_bg "$phase" "$log" nsenter --net="/run/netns/$H" "$CLAT_LOAD" qemu migrate "$PF" \
			--fn 1 --src-qmp "$VM_STATE/$CUR/qmp.sock" --dst-qmp "$VM_STATE/$next/qmp.sock" \
			--uri "unix:$BATS_TEST_TMPDIR/mig$i.sock" --shared --port "$tap"
		kill -9 "$STALL_PID"
		wait "$STALL_PID" 2>/dev/null || true
		run host "$CLAT_LOAD" qemu migrate "$PF" --fn 1 --src-qmp "$VM_STATE/$CUR/qmp.sock" \
			--dst-qmp "$VM_STATE/$next/qmp.sock" --shared --port "$tap" --recover --json
		echo "# $phase: $output"
		assert_success
		case $phase in
		qm_setup* | qm_switchover) expect=rollback ;;
		*) expect=forward ;;
		esac
		jq -e --arg e "$expect" '.recovered == $e' <<<"$(grep '^{' <<<"$output")"
		if [ "$expect" = forward ]; then
			gone "$CUR"
			CUR=$next CUR_TAP=$tap
		else
			gone "$next"
		fi
		# Exactly one side: the fn serves on the running guest's tap.
		[ "$(fn_port)" = "$(ifindex_of "$CUR_TAP") active" ]
		run vm_qmp "$CUR" '{"execute":"query-status"}'
		assert_output --partial '"running"'
	done
	stream_check 3000000
}

@test "copy mode: QEMU copies RAM between two hosts, the device channel the contexts; a TCP stream stays whole" {
	twohost_create
	vm_start src "$HA" "$TAP_A" "$RAM_A" "$VM_MAC" "$VM_IP/24"
	guest_tables src
	vm_start dst "$HB" "$TAP_B" "$RAM_B" "$VM_MAC" "" -incoming defer
	local _ before after out want chan=$BATS_TEST_TMPDIR/devchan.sock
	for _ in $(seq 100); do
		vm_qmp dst '{"execute":"query-status"}' 2>/dev/null | grep -q inmigrate && break
		sleep 0.1
	done
	bg "$BATS_TEST_TMPDIR/in.json" nsenter --net="/run/netns/$HB" "$CLAT_LOAD" migrate-in \
		"$PF_B" --fn 1 --mac "$VM_MAC" --mem "$RAM_B" --listen "unix:$chan" --json
	for _ in $(seq 50); do [ -S "$chan" ] && break; sleep 0.1; done
	stream_start 1200000 100000 # 12 s
	sleep 2
	before=$(ctx_summary)
	echo "contexts before: $before"
	[ "$(wc -l <<<"$before")" -eq 2 ]
	run qemu_migrate --uri "unix:$BATS_TEST_TMPDIR/mig.sock" --channel "unix:$chan" --json
	echo "$output"
	assert_success
	out=$(grep '^{' <<<"$output")
	# QEMU copied the RAM; the device streamed a full round, then deltas,
	# and the destination switched on COMMIT.
	jq -e '.migrated and .mode == "copy" and .qemu.transferred_bytes > 1000000 and
		(.device.pre_copy | length) >= 1 and .device.pre_copy[0].blocks > 0 and
		.device.commit.live_contexts == 2' <<<"$out"
	# The source let go of fn 1; the destination serves it on its tap.
	run in_host "$HA" "$CLAT_LOAD" status "$PF_A" --json
	refute_output --partial '"state":"active","dev":"'"$TAP_A"'"'
	H=$HB PF=$PF_B
	[ "$(fn_port)" = "$(ifindex_of "$TAP_B") active" ]
	cat "$VM_STATE/dst/qemu.err" "$BATS_TEST_TMPDIR/in.json"
	grep -a -m5 -B2 -A12 "BUG\|Oops\|general protection" "$VM_STATE/dst/ser.log" || true
	run vm_qmp dst '{"execute":"query-status"}'
	assert_output --partial '"running"'
	# The contexts carry over, and the guest reads them in its RAM on the
	# destination host.
	run contexts_carried "$before"
	echo "$output"
	assert_success
	stream_check 1200000
}

# fake NAME MODE: a scripted QMP server (lib/fakeqmp.py) on $BATS_TEST_TMPDIR/NAME.
fake() {
	rm -f "$BATS_TEST_TMPDIR/$1"
	bg "$BATS_TEST_TMPDIR/$1.log" python3 "$ROOT/selftests/lib/fakeqmp.py" "$BATS_TEST_TMPDIR/$1" "$2"
	local _
	for _ in $(seq 50); do [ -S "$BATS_TEST_TMPDIR/$1" ] && return 0; sleep 0.1; done
	return 1
}

@test "QMP errors: QEMU's desc is quoted, hostile replies are refused, nothing changes" {
	onehost_create
	local port0
	port0=$(fn_port)
	fake s src
	fake d dst
	run host "$CLAT_LOAD" qemu migrate "$PF" --fn 1 --src-qmp "$BATS_TEST_TMPDIR/s" \
		--dst-qmp "$BATS_TEST_TMPDIR/d" --uri "unix:$BATS_TEST_TMPDIR/m" --shared --port "$T2"
	assert_failure
	assert_output --partial 'source QEMU refused migrate-set-capabilities: Postcopy is not supported "here" é (GenericError)'
	assert_output --partial 'rolling back'
	[ "$(fn_port)" = "$port0" ]
	for mode in garbage huge; do
		reap
		fake s "$mode"
		run host "$CLAT_LOAD" qemu migrate "$PF" --fn 1 --src-qmp "$BATS_TEST_TMPDIR/s" \
			--dst-qmp "$BATS_TEST_TMPDIR/d" --uri "unix:$BATS_TEST_TMPDIR/m" --shared --port "$T2"
		echo "$mode: $output"
		assert_failure
		case $mode in
		garbage) assert_output --partial 'not a QMP message (invalid JSON)' ;;
		huge) assert_output --partial 'a message longer than 65536 bytes' ;;
		esac
		[ "$(fn_port)" = "$port0" ]
	done
	# Bad input never reaches QEMU.
	run host "$CLAT_LOAD" qemu migrate "$PF" --fn 1 --src-qmp x --dst-qmp y --uri 'unix:/a"b' --shared --port "$T2"
	assert_failure
	run host "$CLAT_LOAD" qemu migrate "$PF" --fn 1 --src-qmp x --dst-qmp y --uri u --channel c --shared --port "$T2"
	assert_failure 2
	assert_output --partial 'either --channel'
	run host "$CLAT_LOAD" qemu migrate "$PF" --fn 0 --src-qmp x --dst-qmp y --uri u --shared --port "$T2"
	assert_failure 2
}
