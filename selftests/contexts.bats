#!/usr/bin/env bats
# Per-connection contexts in guest-owned tables, with real TCP and UDP
# crossing the emulated NIC.

load lib/common

setup() {
	guest_topo attach
}

teardown() {
	reap
	topo_destroy
}

# le32 N: N as the four bytes of a little-endian map key, for bpftool.
le32() {
	printf '%d %d %d %d' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255))
}

# fn_desc_seg FN FIELD: FIELD of segment 0 of type 0 of FN on the device.
fn_desc_seg() {
	bpftool -j map lookup pinned "/sys/fs/bpf/clat/$PF/fn_desc" key $(le32 "$1") |
		jq ".formatted.value.type[0].seg[0].$2"
}

# tags_set FIRST N: tags that are not FREE (nor FENCE) in pool buckets FIRST..FIRST+N-1.
tags_set() {
	bpftool -j map dump pinned "/sys/fs/bpf/clat/$PF/pool_meta" |
		jq --argjson f "$1" --argjson n "$2" \
			'[.[] | select(.formatted.key >= $f and .formatted.key < $f + $n) |
			  .formatted.value.tag[] | select(. != 0 and . != 65535)] | length'
}

# udp_send COUNT SIZE DIR: DIR "in" sends from the wire to VM0, "out" back.
udp_send() {
	local n=$1 size=$2 dir=$3 i payload
	payload=$(head -c "$size" /dev/zero | tr '\0' x)
	for ((i = 0; i < n; i++)); do
		if [ "$dir" = in ]; then
			wire socat -u - "UDP4-SENDTO:${VM_IP[0]}:5000,sourceport=6000" <<<"$payload"
		else
			vm 0 socat -u - "UDP4-SENDTO:$WIRE_IP:6000,sourceport=5000" <<<"$payload"
		fi
	done
}

@test "UDP: per-direction packet and byte counters equal what was sent" {
	wire ping -c 1 -W 2 "${VM_IP[0]}" >/dev/null # resolve ARP both ways
	udp_send 7 100 in
	udp_send 4 300 out
	run ctx_json 1
	assert_success
	assert_equal "$(jq '.contexts | length' <<<"$output")" 1
	local c
	c=$(jq '.contexts[0]' <<<"$output")
	assert_equal "$(jq -r .proto <<<"$c")" udp
	assert_equal "$(jq .vm_port <<<"$c")" 5000
	assert_equal "$(jq .remote_port <<<"$c")" 6000
	assert_equal "$(jq .packets_in <<<"$c")" 7
	assert_equal "$(jq .packets_out <<<"$c")" 4
	# frame = 14 Ethernet + 20 IPv4 + 8 UDP + payload + newline
	assert_equal "$(jq .bytes_in <<<"$c")" $((7 * (42 + 101)))
	assert_equal "$(jq .bytes_out <<<"$c")" $((4 * (42 + 301)))
}

@test "TCP: each connection gets its own service number and counts match ss" {
	spawn ip netns exec "${VM_NS[0]}" socat TCP-LISTEN:7000,reuseaddr,fork EXEC:cat
	wait_listen "${VM_NS[0]}" 7000
	# The connections stay open (sleep) until ss has read them, even on a
	# loaded machine.
	spawn bash -c "(head -c 50000 /dev/urandom; sleep 15) | ip netns exec $WIRE_NS socat - TCP:${VM_IP[0]}:7000,sourceport=41001"
	spawn bash -c "(head -c 20000 /dev/urandom; sleep 15) | ip netns exec $WIRE_NS socat - TCP:${VM_IP[0]}:7000,sourceport=41002"
	sleep 2
	run ctx_json 1
	assert_equal "$(jq '[.contexts[] | select(.proto == "tcp")] | length' <<<"$output")" 2
	assert_equal "$(jq '[.contexts[].svc] | unique | length' <<<"$output")" 2
	assert_equal "$(jq -r '[.contexts[].tcp_state] | unique | join(",")' <<<"$output")" established
	local port segs_in segs_out c
	for port in 41001 41002; do
		c=$(jq --argjson p $port '.contexts[] | select(.remote_port == $p)' <<<"$output")
		# The VM's own socket: segments it received and sent.
		segs_in=$(vm 0 ss -tinH "dport = :$port" | grep -oE '(^|\s)segs_in:[0-9]+' | cut -d: -f2)
		segs_out=$(vm 0 ss -tinH "dport = :$port" | grep -oE '(^|\s)segs_out:[0-9]+' | cut -d: -f2)
		assert_equal "$(jq .packets_in <<<"$c")" "$segs_in"
		# The SYN-ACK leaves from the listener's request socket, so the
		# accepted socket's segs_out does not count it.
		assert_equal "$(jq .packets_out <<<"$c")" "$((segs_out + 1))"
	done
}

@test "TCP: states run to closed, the slot is released (tag cleared) and is reused" {
	spawn ip netns exec "${VM_NS[0]}" socat -u TCP-LISTEN:7001,reuseaddr /dev/null
	wait_listen "${VM_NS[0]}" 7001
	head -c 1000 /dev/zero | wire timeout 10 socat -u - "TCP:${VM_IP[0]}:7001,sourceport=42000,reuseaddr"
	sleep 0.5
	assert_equal "$(ctx_json 1 | jq '[.contexts[] | select(.proto == "tcp")] | length')" 0
	[ "$(counter 1 ctx_release)" -ge 1 ]
	# No tag of fn 1's buckets is left set: the released slot is free.
	local fb nb
	fb=$(fn_desc_seg 1 first_bucket)
	nb=$(fn_desc_seg 1 nbuckets)
	assert_equal "$(tags_set "$fb" "$nb")" 0
	# The same 5-tuple again: it takes its old slot back.
	spawn ip netns exec "${VM_NS[0]}" socat -u TCP-LISTEN:7001,reuseaddr /dev/null
	wait_listen "${VM_NS[0]}" 7001
	spawn bash -c "(head -c 1000 /dev/zero; sleep 5) | ip netns exec $WIRE_NS socat -u - TCP:${VM_IP[0]}:7001,sourceport=42000,reuseaddr"
	sleep 1
	run ctx_json 1
	assert_equal "$(jq '[.contexts[] | select(.remote_port == 42000)] | length' <<<"$output")" 1
	assert_equal "$(tags_set "$fb" "$nb")" 1
	[ "$(counter 1 ctx_claim)" -eq 2 ]
	[ "$(counter 1 ctx_full)" -eq 0 ]
}

@test "guest sync writes exactly the device's contexts to their GPAs" {
	wire ping -c 1 -W 2 "${VM_IP[0]}" >/dev/null
	udp_send 3 10 in
	local p
	for p in 6101 6102 6103; do
		wire socat -u - "UDP4-SENDTO:${VM_IP[0]}:5000,sourceport=$p" <<<"x"
	done
	run "$CLAT_LOAD" guest sync "$PF" --fn 1 --json
	assert_success
	assert_equal "$(jq .contexts <<<"$output")" 4
	local dev file
	dev=$(ctx_json 1 | jq -c '[.contexts[] | {svc, remote_port, packets_in, bytes_in}] | sort_by(.svc)')
	file=$("$BIN/clat-guest" show --mem "$MEM" --bat-gpa "$BAT" --json |
		jq -c '[.types[0].contexts[] | {svc, remote_port, packets_in, bytes_in}] | sort_by(.svc)')
	assert_equal "$file" "$dev"
	# Each one sits at the GPA the walk gives for its service number.
	local svc gpa
	for svc in $(jq '.[].svc' <<<"$dev"); do
		gpa=$("$BIN/clat-guest" locate --mem "$MEM" --bat-gpa "$BAT" --type 0 --svc "$svc" --json | jq .ctx_gpa)
		assert_equal "$("$BIN/clat-guest" show --mem "$MEM" --bat-gpa "$BAT" --json |
			jq --argjson s "$svc" '.types[0].contexts[] | select(.svc == $s) | .gpa')" "$gpa"
	done
}

@test "guest detach then attach restores every context and counters continue" {
	spawn ip netns exec "${VM_NS[0]}" socat TCP-LISTEN:7002,reuseaddr EXEC:cat
	wait_listen "${VM_NS[0]}" 7002
	# One line every 0.2 s for 8 s on one long-lived connection.
	spawn bash -c "for i in \$(seq 40); do echo \$i; sleep 0.2; done | ip netns exec $WIRE_NS socat - TCP:${VM_IP[0]}:7002,sourceport=43000"
	sleep 1.5
	local before svc after
	before=$(ctx_json 1 | jq '.contexts[] | select(.remote_port == 43000)')
	svc=$(jq .svc <<<"$before")
	"$CLAT_LOAD" guest detach "$PF" --fn 1
	assert_equal "$(bpftool -j map dump pinned "/sys/fs/bpf/clat/$PF/vct" | jq '.[1].formatted.value.bat_gpa')" 0
	# fn 1 has no types on the device and owns no pool extent any more.
	assert_equal "$(fn_desc_seg 1 nbuckets)" 0
	assert_equal "$(bpftool -j map dump pinned "/sys/fs/bpf/clat/$PF/pool_alloc" |
		jq '[.[] | select(.formatted.key >= 16 and .formatted.key < 32 and .formatted.value.state != 0)] | length')" 0
	sleep 1
	"$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$BAT"
	sleep 2
	after=$(ctx_json 1 | jq '.contexts[] | select(.remote_port == 43000)')
	assert_equal "$(jq .svc <<<"$after")" "$svc"
	[ "$(jq .packets_in <<<"$after")" -gt "$(jq .packets_in <<<"$before")" ]
	[ "$(jq .first_seen_ns <<<"$after")" -eq "$(jq .first_seen_ns <<<"$before")" ]
	assert_equal "$(jq -r .tcp_state <<<"$after")" established
	[ "$(counter 1 ctx_claim)" -eq 1 ] # found again, never claimed anew
}

@test "bpftool prints typed fields of the pinned context pool and its tag line" {
	wire ping -c 1 -W 2 "${VM_IP[0]}" >/dev/null
	udp_send 1 10 in
	local svc base fb idx c tag
	svc=$(ctx_json 1 | jq '.contexts[0].svc')
	base=$(fn_desc_seg 1 base)
	fb=$(fn_desc_seg 1 first_bucket)
	# Service base + 1 + i sits at pool index first_bucket * 32 + i.
	idx=$((fb * 32 + svc - base - 1))
	run bpftool -j map lookup pinned "/sys/fs/bpf/clat/$PF/pool_ctx" key $(le32 "$idx")
	assert_success
	c=$(jq '.formatted.value' <<<"$output")
	assert_equal "$(jq .svc <<<"$c")" "$svc"
	assert_equal "$(jq .fn <<<"$c")" 1
	assert_equal "$(jq .key.proto <<<"$c")" 17
	assert_equal "$(jq .key.vm_port <<<"$c")" "$(( (5000 >> 8) | ((5000 & 255) << 8) ))"
	assert_equal "$(jq '.packets[0]' <<<"$c")" 1
	# LIVE (2) with its tag in the state word (below 2^48: exact in jq),
	# and the same tag in the bucket's tag line.
	tag=$(bpftool -j map lookup pinned "/sys/fs/bpf/clat/$PF/pool_meta" key $(le32 $((idx / 32))) |
		jq ".formatted.value.tag[$((idx % 32))]")
	[ "$tag" -gt 0 ] && [ "$tag" -lt 65535 ]
	assert_equal "$(jq .state_word <<<"$c")" "$((tag * 4294967296 + 2))"
}

@test "guest attach is idempotent and refuses a second set of tables" {
	run "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$BAT"
	assert_success
	assert_output --partial "nothing to do"
	guest_init "$BATS_TEST_TMPDIR/other.mem" conn:ctx=256,block=4096,services=100
	run "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$BATS_TEST_TMPDIR/other.mem" --bat-gpa "$BAT"
	assert_equal "$status" 1
	assert_output --partial "already has tables"
	run "$CLAT_LOAD" guest attach "$PF" --fn 9 --mem "$MEM" --bat-gpa "$BAT"
	assert_equal "$status" 1
	assert_output --partial "fn 9 is not in use"
}

@test "hostile or corrupt guest tables are refused, each with its own message, nothing installed" {
	local kind mem msg
	declare -A expect=(
		[gpa-out-of-range]="outside guest memory"
		[misaligned]="misaligned"
		[cycle]="cycle"
		[shared-page]="shared"
		[too-many-levels]="levels"
		[ctx-not-dividing]="does not divide"
		[bad-magic]="magic"
		[bad-version]="version"
		[truncated]="truncated"
		[capacity-mismatch]="capacity"
		[bad-ctx-state]="state"
		[ctx-selfcheck]="claims svc"
	)
	for kind in "${!expect[@]}"; do
		mem=$BATS_TEST_TMPDIR/$kind.mem
		guest_init "$mem" conn:ctx=256,block=4096,services=20000,levels=3,entries=64
		"$BIN/clat-guest" corrupt --mem "$mem" --bat-gpa "$BAT" --kind "$kind" 2>/dev/null
		run "$CLAT_LOAD" guest attach "$PF" --fn 2 --mem "$mem" --bat-gpa "$BAT"
		echo "# $kind: $output" >&3
		assert_equal "$status" 1
		assert_output --partial "${expect[$kind]}"
		assert_equal "$(bpftool -j map dump pinned "/sys/fs/bpf/clat/$PF/vct" | jq '.[2].formatted.value.bat_gpa')" 0
		[ -z "$(ls "/sys/fs/bpf/clat/$PF" | grep '_fn2_')" ]
	done
}

@test "a flood of flows that are never answered does not starve the VM's own new flows" {
	local mem=$BATS_TEST_TMPDIR/small.mem i
	# A table of 64 contexts (two buckets), flooded with 2000 one-packet
	# UDP flows from the wire that the VM never answers.
	"$CLAT_LOAD" guest detach "$PF" --fn 1
	guest_init "$mem" conn:ctx=128,block=4096,services=64
	"$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$mem" --bat-gpa "$BAT"
	run "$BIN/flowgen" --prog "/sys/fs/bpf/clat/$PF/prog_rx" --dst-mac "${VM_MAC[0]}" \
		--src-mac 02:00:5e:00:00:01 --vm-addr "${VM_IP[0]}" --vm-port 7000 \
		--remote-addr "$WIRE_IP" --first-port 20000 --count 2000 --proto udp
	assert_success
	assert_equal "$(ctx_json 1 | jq '.contexts | length')" 64
	[ "$(counter 1 ctx_full)" -gt 1000 ]
	# Past the age an unanswered flow keeps its slot against a claim (2 s),
	# the VM opens 20 flows of its own: every one gets a context.
	sleep 2.5
	wire ping -c 1 -W 2 "${VM_IP[0]}" >/dev/null
	for ((i = 0; i < 20; i++)); do
		vm 0 socat -u - "UDP4-SENDTO:$WIRE_IP:9000,sourceport=$((30000 + i))" <<<x
	done
	assert_equal "$(ctx_json 1 | jq '[.contexts[] | select(.vm_port >= 30000 and .vm_port < 30020)] | length')" 20
	[ "$(counter 1 ctx_evict)" -ge 20 ]
	# and an answered flow is never taken over: the wire answers one of
	# them, another flood comes, it keeps its context.
	wire socat -u - "UDP4-SENDTO:${VM_IP[0]}:30000,sourceport=9000" <<<y
	sleep 2.5
	"$BIN/flowgen" --prog "/sys/fs/bpf/clat/$PF/prog_rx" --dst-mac "${VM_MAC[0]}" \
		--src-mac 02:00:5e:00:00:01 --vm-addr "${VM_IP[0]}" --vm-port 7001 \
		--remote-addr "$WIRE_IP" --first-port 20000 --count 2000 --proto udp >/dev/null
	assert_equal "$(ctx_json 1 | jq '[.contexts[] | select(.vm_port == 30000 and .packets_in == 1)] | length')" 1
}
