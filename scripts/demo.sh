#!/usr/bin/env bash
# The main job on the embedded default: an emulated SR-IOV NIC with 4 VFs,
# clat attached, ARP + ping + TCP from the wire to every VM, stats, teardown.
# Everything it creates has a unique name and is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${CLAT_BIN_DIR:-.output}
CLAT_LOAD=$BIN/clat-load
CLAT_GUEST=$BIN/clat-guest
VF_EMU=$BIN/vf-emu
NUMVFS=4
PF=demo$(printf '%04x' $((RANDOM)))
NET=198.19.$((RANDOM % 250 + 1))
TMP=$(mktemp -d)

TAG=dm$(printf '%04x' $((RANDOM)))
HOST_A=$TAG-ha HOST_B=$TAG-hb WIRE2=$TAG-w VM=$TAG-vm PF_A=${TAG}a PF_B=${TAG}b
PIDS=()

in_host() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@"; }

cleanup() {
	local pid ns
	for pid in "${PIDS[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
	"$CLAT_LOAD" detach "$PF" >/dev/null 2>&1 || true
	"$VF_EMU" destroy "$PF" >/dev/null 2>&1 || true
	if ip netns list | grep -q "^$HOST_A"; then
		in_host "$HOST_A" "$CLAT_LOAD" detach "$PF_A" >/dev/null 2>&1 || true
		in_host "$HOST_B" "$CLAT_LOAD" detach "$PF_B" >/dev/null 2>&1 || true
		in_host "$HOST_A" "$VF_EMU" destroy "$PF_A" >/dev/null 2>&1 || true
		in_host "$HOST_B" "$VF_EMU" destroy "$PF_B" >/dev/null 2>&1 || true
	fi
	for ns in "$HOST_A" "$HOST_B" "$WIRE2" "$VM"; do ip netns del "$ns" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*"; }
off6() { ip netns exec "$1" sh -c "echo 1 > /proc/sys/net/ipv6/conf/$2/disable_ipv6"; }

say "vf-emu: PF $PF with $NUMVFS VFs"
"$VF_EMU" create "$PF" --numvfs "$NUMVFS"
"$VF_EMU" list "$PF"
json=$("$VF_EMU" list "$PF" --json)
wire_ns=$(jq -r .wire_netns <<<"$json")
wire_port=$(jq -r .wire_port <<<"$json")
off6 "$wire_ns" "$wire_port"
ip -n "$wire_ns" addr add "$NET.1/24" dev "$wire_port"
for i in $(seq 0 $((NUMVFS - 1))); do
	ns=$(jq -r ".vfs[$i].netns" <<<"$json")
	off6 "$ns" eth0
	ip -n "$ns" addr add "$NET.$((10 + i))/24" dev eth0
done

say "clat-load attach $PF"
"$CLAT_LOAD" attach "$PF"
"$CLAT_LOAD" status "$PF"

head -c 1048576 /dev/urandom >"$TMP/payload"
for i in $(seq 0 $((NUMVFS - 1))); do
	ns=$(jq -r ".vfs[$i].netns" <<<"$json")
	ip="$NET.$((10 + i))"
	say "VM $i ($ns, $ip): ARP + ping + 1 MiB over TCP from the wire"
	ip netns exec "$wire_ns" ping -c 3 -i 0.2 -W 2 "$ip" | tail -n 2
	ip netns exec "$ns" timeout 30 socat -u TCP-LISTEN:7000,reuseaddr "CREATE:$TMP/recv$i" &
	listener=$!
	for _ in $(seq 50); do ip netns exec "$ns" ss -ltn | grep -q ':7000 ' && break; sleep 0.1; done
	ip netns exec "$wire_ns" timeout 30 socat -u "FILE:$TMP/payload" "TCP:$ip:7000"
	wait "$listener"
	if cmp -s "$TMP/payload" "$TMP/recv$i"; then
		echo "TCP: $(wc -c <"$TMP/recv$i") bytes received intact"
	else
		echo "TCP: payload corrupted" >&2
		exit 1
	fi
done

say "clat-load stats $PF"
"$CLAT_LOAD" stats "$PF"

say "teardown of the single-host NIC"
"$CLAT_LOAD" detach "$PF"
"$VF_EMU" destroy "$PF"

# ---- Part 2: live migration of a VM and its connection contexts ------------
NET2=198.19.$(((RANDOM % 250) + 1))
say "two hosts ($HOST_A, $HOST_B) joined by a bridge; the VM ($VM) sits on VF 0 of host A"
for ns in "$HOST_A" "$HOST_B" "$WIRE2" "$VM"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$WIRE2" link add tor type bridge
ip -n "$WIRE2" link set tor up
in_host "$HOST_A" "$VF_EMU" create "$PF_A" --numvfs 2 --wire-netns "$WIRE2" --wire-port "${TAG}wa" --vm-netns-prefix "$TAG-a-vm"
in_host "$HOST_B" "$VF_EMU" create "$PF_B" --numvfs 2 --wire-netns "$WIRE2" --wire-port "${TAG}wb" --vm-netns-prefix "$TAG-b-vm"
ip -n "$WIRE2" link set "${TAG}wa" master tor
ip -n "$WIRE2" link set "${TAG}wb" master tor
off6 "$WIRE2" all
off6 "$VM" all
ip -n "$WIRE2" addr add "$NET2.1/24" dev tor
in_host "$HOST_A" "$VF_EMU" assign "$PF_A" vf 0 netns "$VM"
ip -n "$VM" addr add "$NET2.10/24" dev eth0
in_host "$HOST_A" "$CLAT_LOAD" attach "$PF_A"
in_host "$HOST_B" "$CLAT_LOAD" attach "$PF_B"

say "the guest builds its context tables in its own memory"
bat=$("$CLAT_GUEST" init --mem "$TMP/vm.mem" --size 64M --type conn:ctx=256,block=4K,services=20000 --json | jq .bat_gpa)
in_host "$HOST_A" "$CLAT_LOAD" guest attach "$PF_A" --fn 1 --mem "$TMP/vm.mem" --bat-gpa "$bat"

say "a TCP stream and UDP flows from the wire to the VM"
setsid ip netns exec "$VM" socat -u TCP-LISTEN:7000,reuseaddr "CREATE:$TMP/stream" </dev/null >/dev/null 2>&1 &
PIDS+=($!)
setsid ip netns exec "$VM" socat -u UDP4-RECV:9000 /dev/null </dev/null >/dev/null 2>&1 &
PIDS+=($!)
sleep 0.5
setsid bash -c "for i in \$(seq 150); do printf 'line %05d\n' \$i; sleep 0.02; done | ip netns exec $WIRE2 socat -u - TCP:$NET2.10:7000,sourceport=45000" </dev/null >/dev/null 2>&1 &
PIDS+=($!)
for p in 9101 9102 9103; do
	ip netns exec "$WIRE2" socat -u - "UDP4-SENDTO:$NET2.10:9000,sourceport=$p" <<<"hello"
done
sleep 1
echo "contexts on host A (fn 1):"
in_host "$HOST_A" "$CLAT_LOAD" ctx list "$PF_A" --fn 1

say "clat-load migrate: host A fn 1 -> host B fn 2"
report=$("$CLAT_LOAD" migrate "$PF_A" "$PF_B" --fn 1 --to-fn 2 --vm-netns "$VM" \
	--src-netns "$HOST_A" --dst-netns "$HOST_B" --dst-mem "$TMP/vm-b.mem" --json)
# The downtime line is the sum of the five phases under it (the report's
# downtime_ns is computed that way); what runs before the pause or after
# B serves is listed apart and not counted.
jq -r '"  pre-copy rounds   " + ([.pre_copy[] | "\(.contexts) ctx/\(.bytes) B/\(.ns / 1e6 | . * 1000 | round / 1000) ms"] | join(", ")),
	"  guest RAM copy    \(.ram_copy.ns / 1e6) ms (the VMM\u0027s job, before the pause)",
	"  B prepare         \(.prepare.ns / 1e6) ms, \(.prepare.live_contexts) live contexts rebuilt (before the pause)",
	"  -- downtime: from the pause on A to the VM\u0027s announcement from B --",
	"  stop-copy on A    \(.stop_copy.ns / 1e6) ms, \(.stop_copy.contexts) contexts, \(.stop_copy.bytes) bytes (pause, settle, last write-back)",
	"  delta RAM copy    \(.delta_copy.ns / 1e6) ms, \(.delta_copy.blocks) blocks",
	"  VM moves to B     \(.vm_move.ns / 1e6) ms (vf-emu: release, set MAC, assign, addresses)",
	"  switch on B       \(.switch.ns / 1e6) ms (\(.switch.blocks_reloaded) blocks re-read)",
	"  announcement      \(.announce.ns / 1e6) ms (gratuitous ARP)",
	"  total downtime    \(.downtime_ns / 1e6) ms = the five phases above",
	"  -- after B serves (not downtime) --",
	"  release on A      \(.release.ns / 1e6) ms"' <<<"$report"
sleep 3
echo "contexts on host B (fn 2): same service numbers, counters continued"
in_host "$HOST_B" "$CLAT_LOAD" ctx list "$PF_B" --fn 2
echo "TCP stream: $(sort -u "$TMP/stream" | wc -l) of 150 lines received"

say "teardown"
cleanup
trap - EXIT
echo "demo finished: nothing left behind"
