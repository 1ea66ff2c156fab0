# Shared helpers for the BATS selftests.  Every test builds its own uniquely
# named topology in setup and removes it in teardown, also on failure.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# selftests/run.sh exports CLAT_BIN_DIR (.output or the sanitized .output/san).
BIN=${CLAT_BIN_DIR:-$ROOT/.output}
CLAT_LOAD=$BIN/clat-load
VF_EMU=$BIN/vf-emu

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

# A PF name no other test or run can be using: at most 12 chars.
unique_pf() {
	printf 'ct%x%04x' $(($$ % 4096)) $((RANDOM))
}

# Turn off IPv6 so that no router/neighbour solicitations disturb counts.
no_ipv6() { # [netns] dev
	local ns=$1 dev=$2
	if [ -n "$ns" ]; then
		ip netns exec "$ns" sh -c "echo 1 > /proc/sys/net/ipv6/conf/$dev/disable_ipv6"
	else
		echo 1 >"/proc/sys/net/ipv6/conf/$dev/disable_ipv6"
	fi
}

# topo_create NUMVFS: vf-emu PF with addresses; sets PF, WIRE_NS, WIRE_PORT,
# NET (198.18.N), VM_NS[i], VM_IP[i], VM_MAC[i], HOST_DEV, HOST_IP, WIRE_IP.
topo_create() {
	local n=$1 i json
	PF=$(unique_pf)
	"$VF_EMU" create "$PF" --numvfs "$n" >/dev/null || return 1
	json=$("$VF_EMU" list "$PF" --json) || return 1
	WIRE_NS=$(jq -r .wire_netns <<<"$json")
	WIRE_PORT=$(jq -r .wire_port <<<"$json")
	HOST_DEV=$(jq -r .host_port.dev <<<"$json")
	HOST_REP=$(jq -r .host_port.rep <<<"$json")
	NET=198.18.$((RANDOM % 250 + 1))
	WIRE_IP=$NET.1
	HOST_IP=$NET.254
	no_ipv6 "$WIRE_NS" "$WIRE_PORT"
	ip -n "$WIRE_NS" addr add "$WIRE_IP/24" dev "$WIRE_PORT"
	ip -n "$WIRE_NS" link set lo up
	for dev in "$PF" "$HOST_DEV" "$HOST_REP"; do no_ipv6 "" "$dev"; done
	ip addr add "$HOST_IP/24" dev "$HOST_DEV"
	VM_NS=() VM_IP=() VM_MAC=() VM_REP=()
	for ((i = 0; i < n; i++)); do
		VM_NS[i]=$(jq -r ".vfs[$i].netns" <<<"$json")
		VM_MAC[i]=$(jq -r ".vfs[$i].mac" <<<"$json")
		VM_REP[i]=$(jq -r ".vfs[$i].rep" <<<"$json")
		VM_IP[i]=$NET.$((10 + i))
		no_ipv6 "" "${VM_REP[i]}"
		no_ipv6 "${VM_NS[i]}" eth0
		ip -n "${VM_NS[i]}" addr add "${VM_IP[i]}/24" dev eth0
	done
}

# pins_sweep PF...: after the devices are gone, detach whatever pins are
# left (a detach that failed in a teardown, e.g. on a binary being rebuilt,
# must not leave a pin dir behind); detach works on a vanished device.
pins_sweep() {
	local pf i
	for pf in "$@"; do
		for i in 1 2 3; do
			[ -e "/sys/fs/bpf/clat/$pf" ] || break
			"$CLAT_LOAD" detach "$pf" >/dev/null 2>&1 || sleep 0.2
		done
	done
}

topo_destroy() {
	[ -n "${PF:-}" ] || return 0
	"$CLAT_LOAD" detach "$PF" >/dev/null 2>&1 || true
	"$VF_EMU" destroy "$PF" >/dev/null 2>&1 || true
	pins_sweep "$PF"
	ip addr del "$HOST_IP/24" dev "$HOST_DEV" 2>/dev/null || true
	PF=
}

attach() {
	"$CLAT_LOAD" attach "$PF" "$@"
}

# counter FN SLOT: one counter from `clat-load stats --json`.
counter() {
	"$CLAT_LOAD" stats "$PF" --json |
		jq -r --argjson fn "$1" --arg s "$2" \
			'if $fn == 256 then .no_fn[$s] else ((.fns[] | select(.fn == $fn) | .counters[$s]) // 0) end'
}

# Packets received by a netdev, from the kernel's own counters.
rx_packets() { # netns dev
	ip -n "$1" -j -s link show dev "$2" | jq '.[0].stats64.rx.packets'
}

wire() { ip netns exec "$WIRE_NS" "$@"; }
vm() { local i=$1; shift; ip netns exec "${VM_NS[i]}" "$@"; }

# XDP program id attached to a host-ns device, or empty.
xdp_prog_of() {
	ip -j -d link show dev "$1" | jq -r '.[0].xdp.prog.id // .[0].xdp.attached[0].prog.id // empty'
}

# guest_init FILE SPEC...: builds guest tables, sets BAT to the BAT GPA.
guest_init() {
	local mem=$1 json
	shift
	local args=()
	for spec in "$@"; do args+=(--type "$spec"); done
	json=$("$BIN/clat-guest" init --mem "$mem" --size 64M "${args[@]}" --json) || return 1
	BAT=$(jq .bat_gpa <<<"$json")
}

# guest_topo [attach]: the common set-up of the guest-table tests: two VFs,
# clat attached, guest tables for one type (256-byte contexts, 2000
# services) in $MEM with their BAT in $BAT; "attach" also attaches them to
# fn 1.
GUEST_TYPE=conn:ctx=256,block=4096,services=2000
guest_topo() {
	topo_create 2 || return 1
	attach || return 1
	MEM=$BATS_TEST_TMPDIR/guest.mem
	guest_init "$MEM" "$GUEST_TYPE" || return 1
	[ "${1:-}" != attach ] ||
		"$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$BAT" >/dev/null
}

# ctx_json FN: `clat-load ctx list --json` of fn.
ctx_json() {
	"$CLAT_LOAD" ctx list "$PF" --fn "$1" --json
}

# spawn CMD...: runs CMD in the background in a process group of its own,
# detached from bats's output fds (bats waits for whoever holds them), and
# records it so reap can stop it with all its children.
SPAWNED=()
spawn() {
	setsid "$@" </dev/null >/dev/null 2>&1 3>&- &
	SPAWNED+=($!)
}

# bg OUT CMD...: like spawn, with stdout in OUT; sets BG_PID.
bg() {
	local out=$1
	shift
	setsid "$@" </dev/null >"$out" 2>&1 3>&- &
	BG_PID=$!
	SPAWNED+=("$BG_PID")
}

reap() {
	local pid
	for pid in "${SPAWNED[@]}"; do
		kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
	done
	SPAWNED=()
}

# wait_listen NS PORT: until a TCP listener is up in netns NS.
wait_listen() {
	local _
	for _ in $(seq 50); do
		ip netns exec "$1" ss -ltnH "sport = :$2" | grep -q . && return 0
		sleep 0.1
	done
	return 1
}

# ---- two emulated hosts joined by a bridge (a top-of-rack switch) ----------

# in_host NS CMD...: runs CMD in host netns NS without hiding /sys/fs/bpf
# (ip netns exec remounts /sys).
in_host() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$@"
}

# two_hosts_create NUMVFS: sets TAG, HOST_A, HOST_B, WIRE_NS, PF_A, PF_B, NET,
# WIRE_IP, VM (the VM's netns, holding VF 0 of host A), VM_IP, VM_MAC.
two_hosts_create() {
	local n=$1 ns
	TAG=m$(printf '%x%03x' $(($$ % 256)) $((RANDOM % 4096)))
	HOST_A=$TAG-ha HOST_B=$TAG-hb WIRE_NS=$TAG-w
	PF_A=${TAG}a PF_B=${TAG}b
	NET=198.18.$((RANDOM % 250 + 1))
	WIRE_IP=$NET.1 VM_IP=$NET.10
	VM=$TAG-vm
	for ns in "$HOST_A" "$HOST_B" "$WIRE_NS" "$VM"; do
		ip netns add "$ns"
		ip -n "$ns" link set lo up
	done
	ip -n "$WIRE_NS" link add tor type bridge
	ip -n "$WIRE_NS" link set tor up
	in_host "$HOST_A" "$VF_EMU" create "$PF_A" --numvfs "$n" --wire-netns "$WIRE_NS" \
		--wire-port "${TAG}wa" --vm-netns-prefix "$TAG-a-vm" >/dev/null
	in_host "$HOST_B" "$VF_EMU" create "$PF_B" --numvfs "$n" --wire-netns "$WIRE_NS" \
		--wire-port "${TAG}wb" --vm-netns-prefix "$TAG-b-vm" >/dev/null
	ip -n "$WIRE_NS" link set "${TAG}wa" master tor
	ip -n "$WIRE_NS" link set "${TAG}wb" master tor
	ip netns exec "$WIRE_NS" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6'
	ip -n "$WIRE_NS" addr add "$WIRE_IP/24" dev tor
	ip netns exec "$VM" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6'
	in_host "$HOST_A" "$VF_EMU" assign "$PF_A" vf 0 netns "$VM"
	ip -n "$VM" addr add "$VM_IP/24" dev eth0
	VM_MAC=$(in_host "$HOST_A" "$VF_EMU" list "$PF_A" --json | jq -r '.vfs[0].mac')
	in_host "$HOST_A" "$CLAT_LOAD" attach "$PF_A" 2>/dev/null
	in_host "$HOST_B" "$CLAT_LOAD" attach "$PF_B" 2>/dev/null
}

two_hosts_destroy() {
	[ -n "${TAG:-}" ] || return 0
	in_host "$HOST_A" "$CLAT_LOAD" detach "$PF_A" >/dev/null 2>&1 || true
	in_host "$HOST_B" "$CLAT_LOAD" detach "$PF_B" >/dev/null 2>&1 || true
	in_host "$HOST_A" "$VF_EMU" destroy "$PF_A" >/dev/null 2>&1 || true
	in_host "$HOST_B" "$VF_EMU" destroy "$PF_B" >/dev/null 2>&1 || true
	local ns
	for ns in "$HOST_A" "$HOST_B" "$WIRE_NS" "$VM"; do ip netns del "$ns" 2>/dev/null || true; done
	pins_sweep "$PF_A" "$PF_B"
	TAG=
}

# ctx_on HOST PF FN: `ctx list --json` on one host.
ctx_on() {
	in_host "$1" "$CLAT_LOAD" ctx list "$2" --fn "$3" --json
}

# migrate: `clat-load migrate` of the VM from host A fn 1 to host B fn 2,
# JSON report on stdout, logs appended to the test's migrate.log.
migrate() {
	"$CLAT_LOAD" migrate "$PF_A" "$PF_B" --fn 1 --to-fn 2 --vm-netns "$VM" \
		--src-netns "$HOST_A" --dst-netns "$HOST_B" --dst-mem "$MEM_B" --json \
		2>>"$BATS_TEST_TMPDIR/migrate.log"
}

# stall_bg PHASE[:SECONDS] LOG CMD...: runs CMD in the background held at
# PHASE (CLAT_TEST_STALL), its stderr in LOG; returns once it stalled there.
# STALL_PID is its PID.
stall_bg() {
	local phase=$1 log=$2 _
	shift 2
	CLAT_TEST_STALL=$phase "$@" </dev/null >/dev/null 2>"$log" 3>&- &
	STALL_PID=$!
	for _ in $(seq 50); do
		grep -q stalled "$log" && return 0
		sleep 0.1
	done
	return 1
}
