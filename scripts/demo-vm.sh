#!/usr/bin/env bash
# make demo-vm: a real VM (TCG, 1 vCPU, 128 MiB) under libvirt, live-migrated
# with its connections' contexts between two private libvirtd instances
# ("host A" and "host B"), each with its own emulated SR-IOV PF (vf-emu
# --vm tap) wired to one bridge.  The guest builds its context tables in
# its own RAM and its agent announces the BAT; TCP connections from the
# wire run through it; 'clat-load libvirt migrate' moves it; the contexts
# are printed before and after, as the device and as the guest see them,
# with the downtime by phase.  Everything it creates has a unique name and
# is removed on exit, also on failure or Ctrl-C.  DEMO_VM_REPORT=FILE: a copy
# of the migration's --json report (for bench/vmmig.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CLAT_BIN_DIR:-$ROOT/.output}
CLAT_LOAD=$BIN/clat-load
VF_EMU=$BIN/vf-emu

die() { echo "demo-vm: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must be run as root (BPF, netns, libvirtd)"
for c in libvirtd virsh qemu-system-x86_64 socat unshare jq; do
	command -v "$c" >/dev/null || die "$c not installed (make deps)"
done

TMP=$(mktemp -d /tmp/demovm.XXXXXX)
LV_REG=$TMP/libvirtd
# The private libvirtd pair and the console helpers of the selftests.
# shellcheck source=../selftests/lib/libvirt.bash
. "$ROOT/selftests/lib/libvirt.bash"
[ -e "$GUEST_DIR/vmlinuz" ] && [ -f "$GUEST_DIR/initrd.gz" ] ||
	die "no guest image in $GUEST_DIR (scripts/guest-kernel.sh, then make guest-image)"

TAG=dv$(printf '%04x' $((RANDOM)))
W=$TAG-w PF_A=${TAG}a PF_B=${TAG}b DOM=$TAG-vm
NET=198.19.$((RANDOM % 250 + 1))
WIRE_IP=$NET.1 VM_IP=$NET.10
PORTS=(7000 7001 7002)
PIDS=()

cleanup() {
	local pid pf
	trap - EXIT INT TERM HUP
	for pid in "${PIDS[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
	lv_teardown_all
	for pf in "$PF_A" "$PF_B"; do
		"$CLAT_LOAD" detach "$pf" >/dev/null 2>&1 || true
		"$VF_EMU" destroy "$pf" >/dev/null 2>&1 || true
		rm -f /run/clat/migrate-"$pf"-fn*.lock
	done
	ip netns del "$W" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# fg_wait CMD...: CMD in the foreground, but through 'wait', which a
# Ctrl-C interrupts at once (bash defers the trap until a foreground child
# exits, and forgets it when that child survives the SIGINT).
fg_wait() {
	"$@" &
	PIDS+=("$!")
	wait "$!"
}
say() { printf '\n== %s\n' "$*"; }
bgrun() { # LOG CMD...: in its own process group, killed at exit
	local out=$1
	shift
	setsid "$@" </dev/null >"$out" 2>&1 &
	PIDS+=("$!")
}

say "two hosts: PF $PF_A (libvirtd a) and PF $PF_B (libvirtd b), one tap VF each, wires on one bridge in netns $W"
ip netns add "$W"
ip -n "$W" link set lo up
ip netns exec "$W" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1
ip -n "$W" link add tor type bridge
ip -n "$W" link set tor up
for pf in "$PF_A" "$PF_B"; do
	"$VF_EMU" create "$pf" --numvfs 1 --vm tap --wire-netns "$W" --wire-port "${pf}w" >/dev/null
	ip -n "$W" link set "${pf}w" master tor
	"$CLAT_LOAD" attach "$pf" 2>/dev/null
done
ip -n "$W" addr add "$WIRE_IP/24" dev tor
json=$("$VF_EMU" list "$PF_A" --json)
TAP_A=$(jq -r '.vfs[0].rep' <<<"$json") VM_MAC=$(jq -r '.vfs[0].mac' <<<"$json")
TAP_B=$("$VF_EMU" list "$PF_B" --json | jq -r '.vfs[0].rep')
lv_start a
lv_start b

say "boot domain $DOM on host A (TCG, 1 vCPU, 128 MiB, RAM shared in $(lv_shm a))"
lv_domain_xml a "$DOM" "$TAP_A" "$VM_MAC" "$VM_IP/24" >"$TMP/src.xml"
lv_virsh a create "$TMP/src.xml" >/dev/null
lv_wait_ready a "$DOM"
RAM_A=$(lv_ram a "$DOM")
echo "guest up; its RAM on the host: $RAM_A"

say "the guest builds its tables in its own huge pages; its agent announces the BAT"
lv_cmd a "$DOM" 'clat-guest init --mem /dev/hugepages/clat --size 2M --type conn:ctx=128,block=4096,services=64 >/dev/null'
lv_cmd a "$DOM" 'clat-guest agent --mem /dev/hugepages/clat >/dev/null 2>&1 &'
"$CLAT_LOAD" guest attach "$PF_A" --fn 1 --mem "$RAM_A" --channel "unix:$(lv_dir a)/$DOM-chan.sock"

say "TCP from the wire ($WIRE_IP) to the guest ($VM_IP) on ports ${PORTS[*]}"
lv_cmd a "$DOM" "for p in ${PORTS[*]}; do nc -l -p \$p -e cat >/dev/null 2>&1 & done" # echoes the ticks back
sleep 1
for p in "${PORTS[@]}"; do
	# One line every half second: each connection keeps counting.
	bgrun "$TMP/tcp$p" ip netns exec "$W" bash -c \
		"exec 3<>/dev/tcp/$VM_IP/$p && while echo tick >&3; do sleep 0.5; done"
done
for _ in $(seq 100); do
	n=$("$CLAT_LOAD" ctx list "$PF_A" --fn 1 --json | jq '[.contexts[] | select(.proto == "tcp")] | length')
	[ "$n" -ge "${#PORTS[@]}" ] && break
	sleep 0.2
done
[ "$n" -ge "${#PORTS[@]}" ] || die "only $n TCP contexts on $PF_A; the connections did not come up"
sleep 2

# The fields of a TCP context worth reading, one connection a line.
CTX_JQ='.contexts[] | select(.proto == "tcp") | {svc, vm_port, remote: "\(.remote_addr):\(.remote_port)",
	tcp_state, seq_next_in, seq_next_out, packets_in, packets_out, bytes_in, bytes_out}'
# dev_ctx PF: each connection's context as the device holds it.
dev_ctx() {
	"$CLAT_LOAD" ctx list "$1" --fn 1 --json | jq -c "$CTX_JQ" | sort
}
# guest_ctx INST PF: the same contexts, read by the guest in its own RAM
# (after the device wrote its latest counters there).
guest_ctx() {
	"$CLAT_LOAD" guest sync "$2" --fn 1 >/dev/null
	lv_cmd "$1" "$DOM" 'clat-guest ctx list --mem /dev/hugepages/clat --json' | jq -c "$CTX_JQ" | sort
}
say "before: contexts as the device on host A sees them (clat-load ctx list --json)"
dev_ctx "$PF_A"
say "before: the same, as the guest sees them (clat-guest ctx list --json in the VM)"
guest_ctx a "$PF_A"

say "migrate $DOM live from host A to host B (clat-load libvirt migrate)"
ram_b=$(lv_shm b)/libvirt/qemu/1-$DOM/pc.ram # the first domain of a fresh libvirtd is id 1
mkdir -p "${ram_b%/*}"
truncate -s 128M "$ram_b"
lv_virsh a dumpxml --migratable "$DOM" |
	sed -e "s|'$TAP_A'|'$TAP_B'|" -e "s|$(lv_dir a)/|$(lv_dir b)/|g" -e "s|$RAM_A|$ram_b|" >"$TMP/dst.xml"
"$CLAT_LOAD" migrate-in "$PF_B" --fn 1 --mac "$VM_MAC" --mem "$ram_b" --listen "unix:$TMP/devchan.sock" \
	--json </dev/null >"$TMP/in.json" 2>"$TMP/in.log" &
in_pid=$!
PIDS+=("$in_pid")
for _ in $(seq 100); do [ -S "$TMP/devchan.sock" ] && break; sleep 0.05; done
fg_wait "$CLAT_LOAD" libvirt migrate "$DOM" "$(lv_uri b)" --connect "$(lv_uri a)" --pf "$PF_A" \
	--channel "unix:$TMP/devchan.sock" --dest-xml "$TMP/dst.xml" \
	--migrate-uri tcp://127.0.0.1 --listen-address 127.0.0.1 --json >"$TMP/mig.json" ||
	die "libvirt migrate failed: $(cat "$TMP/mig.json")"
wait "$in_pid" || die "migrate-in failed: $(cat "$TMP/in.log")"
# bench/vmmig.sh keeps the report.
[ -z "${DEMO_VM_REPORT:-}" ] || cp "$TMP/mig.json" "$DEMO_VM_REPORT"
echo "host B runs it: $(lv_virsh b domstate "$DOM"); host A: $(lv_virsh a list --all --name | grep -c . || true) domains"
sleep 2

say "after: contexts as the device on host B sees them"
dev_ctx "$PF_B"
say "after: the same, as the guest on host B sees them"
guest_ctx b "$PF_B"

# The downtime: the guest was stopped for libvirt's own downtime (its last
# RAM copy), then for clat's phases while the destination stayed paused.
say "downtime by phase (from the --json report)"
jq -r '
	[["libvirt: stop-and-copy of the RAM (libvirt downtime)", .libvirt.downtime_ms * 1000000],
	 ["clat: final delta of the contexts (stop_copy)", .stop_copy.ns],
	 ["clat: commit on host B (tables written, port moved)", .commit.ns],
	 ["clat: resume on host B", .resume.ns]] as $p |
	"downtime \(($p | map(.[1]) | add) / 1000000 * 100 | round / 100) ms" +
	" (libvirt \(.libvirt.downtime_ms) ms + clat \(.downtime.clat_ns / 1000000 * 100 | round / 100) ms)",
	($p[] | "  \(.[1] / 1000000 * 100 | round / 100 | tostring | .[0:10]) ms\t\(.[0])"),
	"(migration total \(.total_ns / 1000000 | round) ms, libvirt job \(.libvirt.ns / 1000000 | round) ms, \(.commit.live_contexts) contexts moved)"
' "$TMP/mig.json"
say "done; removing everything"
