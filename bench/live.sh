#!/usr/bin/env bash
# Live path: the same generated traffic through clat_rx (vf-emu + clat-load
# attach), a Linux bridge and macvlan, for 1 VF and all VFs, clat with and
# without contexts.  Prints one JSON object; every namespace, link, pin and
# file it makes has a unique name and is removed on exit, also on failure
# or Ctrl-C.
#   bench/live.sh NUMVFS FRAMES RUNS
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${CLAT_BIN_DIR:-$ROOT/.output}
N=${1:-4} FRAMES=${2:-1000000} RUNS=${3:-3}
CONNS=1024
TAG=cb$(printf '%x%03x' $(($$ % 256)) $((RANDOM % 4096)))
PF=${TAG}p
TMPD=$(mktemp -d "/tmp/clat-bench-live.XXXXXX")
NSS=()

cleanup() {
	"$OUT/clat-load" detach "$PF" >/dev/null 2>&1
	"$OUT/vf-emu" destroy "$PF" >/dev/null 2>&1
	for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null; done
	rm -rf "$TMPD"
}
trap cleanup EXIT
echo "bench: live path, names $TAG*" >&2
trap 'exit 130' INT TERM HUP

die() { echo "bench/live.sh: $*" >&2; exit 1; }
mkns() { ip netns add "$1" || die "failed to create netns $1"; NSS+=("$1"); ip -n "$1" link set lo up; }
gen() { "$OUT/clat-bench" live --frames "$FRAMES" --conns "$CONNS" --runs "$RUNS" "$@"; }

# ---- clat: vf-emu + clat-load attach ----------------------------------------
"$OUT/vf-emu" create "$PF" --numvfs "$N" >/dev/null || die "vf-emu create failed"
json=$("$OUT/vf-emu" list "$PF" --json) || die "vf-emu list failed"
WNS=$(jq -r .wire_netns <<<"$json") WPORT=$(jq -r .wire_port <<<"$json")
MACS=() SINKS=()
for ((i = 0; i < N; i++)); do
	MACS+=("$(jq -r ".vfs[$i].mac" <<<"$json")")
	SINKS+=("$(jq -r ".vfs[$i].netns" <<<"$json"):eth0")
done
"$OUT/clat-load" attach "$PF" >/dev/null || die "clat-load attach failed"

run_pair() { # prefix: 1 VF, then all VFs
	local one all a=()
	one=$(gen --wire "$WNS:$WPORT" --sink "${SINKS[0]}" --mac "${MACS[0]}" "$@") || return 1
	for ((i = 0; i < N; i++)); do a+=(--sink "${SINKS[i]}" --mac "${MACS[i]}"); done
	all=$(gen --wire "$WNS:$WPORT" "${a[@]}" "$@") || return 1
	jq -n --argjson one "$one" --argjson all "$all" '{one_vf: $one, all_vfs: $all}'
}
clat_plain=$(run_pair) || die "clat run failed"
for ((i = 0; i < N; i++)); do
	g=$("$OUT/clat-guest" init --mem "$TMPD/vm$i.mem" --size 64M \
		--type "conn:ctx=128,block=4K,services=4096" --json) || die "clat-guest init failed"
	"$OUT/clat-load" guest attach "$PF" --fn $((i + 1)) --mem "$TMPD/vm$i.mem" \
		--bat-gpa "$(jq .bat_gpa <<<"$g")" >/dev/null || die "guest attach failed"
done
clat_ctx=$(run_pair) || die "clat run with contexts failed"
hits=$("$OUT/clat-load" stats "$PF" --json | jq '[.fns[].counters.ctx_hit // 0] | add')
"$OUT/clat-load" detach "$PF" >/dev/null
"$OUT/vf-emu" destroy "$PF" >/dev/null

# ---- Linux bridge ------------------------------------------------------------
BW=$TAG-bw BR=$TAG-br
mkns "$BW"; mkns "$BR"
ip link add w0 netns "$BW" type veth peer name b0 netns "$BR" || die "veth failed"
ip -n "$BR" link add br0 type bridge || die "bridge failed"
ip -n "$BR" link set b0 master br0
SINKS=()
for ((i = 0; i < N; i++)); do
	mkns "$TAG-bv$i"
	ip link add eth0 netns "$TAG-bv$i" address "${MACS[i]}" type veth peer name v$i netns "$BR" ||
		die "veth failed"
	ip -n "$BR" link set v$i master br0 up
	ip -n "$TAG-bv$i" link set eth0 up
	# A static FDB entry, as a learned one would be: no flooding.
	bridge -n "$BR" fdb add "${MACS[i]}" dev v$i master static
	SINKS+=("$TAG-bv$i:eth0")
done
ip -n "$BR" link set br0 up; ip -n "$BR" link set b0 up; ip -n "$BW" link set w0 up
run_pair_on() { # wire pass
	local one all a=()
	one=$(gen --wire "$1" --pass "$2" --sink "${SINKS[0]}" --mac "${MACS[0]}" "${@:3}") || return 1
	for ((i = 0; i < N; i++)); do a+=(--sink "${SINKS[i]}" --mac "${MACS[i]}"); done
	all=$(gen --wire "$1" --pass "$2" "${a[@]}" "${@:3}") || return 1
	jq -n --argjson one "$one" --argjson all "$all" '{one_vf: $one, all_vfs: $all}'
}
bridge_res=$(run_pair_on "$BW:w0" "$BR:b0") || die "bridge run failed"

# ---- macvlan -----------------------------------------------------------------
MW=$TAG-mw MH=$TAG-mh
mkns "$MW"; mkns "$MH"
ip link add w0 netns "$MW" type veth peer name m0 netns "$MH" || die "veth failed"
ip -n "$MH" link set m0 up; ip -n "$MW" link set w0 up
SINKS=()
for ((i = 0; i < N; i++)); do
	mkns "$TAG-mv$i"
	ip -n "$MH" link add mv$i link m0 address "${MACS[i]}" type macvlan mode bridge ||
		die "macvlan failed"
	ip -n "$MH" link set mv$i netns "$TAG-mv$i"
	ip -n "$TAG-mv$i" link set mv$i up
	# macvlan has no native XDP: the sink runs in generic (skb) mode.
	SINKS+=("$TAG-mv$i:mv$i:skb")
done
macvlan_res=$(run_pair_on "$MW:w0" "$MH:m0") || die "macvlan run failed"

jq -n --argjson vfs "$N" --argjson frames "$FRAMES" --argjson conns "$CONNS" \
	--argjson cp "$clat_plain" --argjson cc "$clat_ctx" --argjson hits "${hits:-0}" \
	--argjson br "$bridge_res" --argjson mv "$macvlan_res" \
	'{vfs: $vfs, frames_per_run: $frames, conns: $conns, clat: $cp, clat_ctx: $cc,
	  clat_ctx_hits: $hits, bridge: $br, macvlan: $mv}'
