#!/usr/bin/env bash
# The main job on the embedded default: an emulated SR-IOV NIC with 4 VFs,
# clat attached, ARP + ping + TCP from the wire to every VM, stats, teardown.
# Everything it creates has a unique name and is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

CLAT_LOAD=.output/clat-load
VF_EMU=.output/vf-emu
NUMVFS=4
PF=demo$(printf '%04x' $((RANDOM)))
NET=198.19.$((RANDOM % 250 + 1))
TMP=$(mktemp -d)

cleanup() {
	"$CLAT_LOAD" detach "$PF" >/dev/null 2>&1 || true
	"$VF_EMU" destroy "$PF" >/dev/null 2>&1 || true
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

say "teardown"
"$CLAT_LOAD" detach "$PF"
"$VF_EMU" destroy "$PF"
echo "demo finished: nothing left behind"
