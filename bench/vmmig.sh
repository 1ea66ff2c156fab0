#!/usr/bin/env bash
# Migration downtime with a real VM (TCG, 1 vCPU, RAM as lib/vm.bash's
# VM_RAM_KB): RUNS shared-mode hand-overs by 'clat-load qemu migrate'
# (x-ignore-shared: a new VMM on the same RAM file, on its own tap), each
# after the previous one, with the guest's tables attached through its
# agent and 3 TCP connections from the wire open through it.  Prints one
# JSON object: the per-run reports and
# the downtime split into QEMU's share (its final switchover and the
# 'cont') and clat's (fn stop, commit: port move); then LV_RUNS (default 3)
# libvirt migrations by 'make demo-vm' (skipped without libvirtd), split
# into libvirt's downtime and clat's phases after its job.  Prints
# {"skipped": "..."} when QEMU or the guest image is missing.  Every
# namespace, link, VM and file it makes is removed on exit.
#   bench/vmmig.sh RUNS
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CLAT_BIN_DIR:-$ROOT/.output}
CLAT_LOAD=$BIN/clat-load
RUNS=${1:-3}
TMPD=$(mktemp -d /tmp/clat-bench-vm.XXXXXX)
VM_STATE=$TMPD/vms
TAG=cv$(printf '%x%03x' $(($$ % 256)) $((RANDOM % 4096)))
H=$TAG-h W=$TAG-w PF=${TAG}p WP=${TAG}w
NET=198.18.$((RANDOM % 250 + 1))
WIRE_IP=$NET.1 VM_IP=$NET.10
VM_MAC=52:54:00:$(printf '%02x:%02x:%02x' $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)))
RAM=/dev/shm/$TAG.mem
PIDS=()

skip() { jq -n --arg r "$*" '{skipped: $r}'; echo "bench: vm migration skipped: $*" >&2; exit 0; }
die() { echo "bench/vmmig.sh: $*" >&2; exit 1; }
# The QEMU guest helpers of the selftests (vm_start, vm_cmd, vm_qmp, ...).
# shellcheck source=../selftests/lib/vm.bash
. "$ROOT/selftests/lib/vm.bash"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed (make deps)"
command -v socat >/dev/null || skip "socat not installed (make deps)"
[ -e "$GUEST_DIR/vmlinuz" ] && [ -f "$GUEST_DIR/initrd.gz" ] ||
	skip "no guest image in $GUEST_DIR (scripts/guest-kernel.sh, then make guest-image)"

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
	vm_teardown_all
	nsenter --net="/run/netns/$H" "$CLAT_LOAD" detach "$PF" >/dev/null 2>&1
	ip netns del "$H" 2>/dev/null
	ip netns del "$W" 2>/dev/null
	rm -f "$RAM"
	rm -rf "$TMPD"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
host() { nsenter --net="/run/netns/$H" "$@"; }

# libvirt: LV_RUNS whole migrations between two private libvirtds, as
# 'make demo-vm' does them (each boots its own domain), before anything
# else of this script runs.
LV_RUNS=${LV_RUNS:-3}
lv_note=
: >"$TMPD/lv.json"
if ! command -v libvirtd >/dev/null || ! command -v virsh >/dev/null; then
	lv_note="libvirtd or virsh not installed (make deps)"
else
	for i in $(seq 1 "$LV_RUNS"); do
		echo "bench: vm migration, libvirt run $i/$LV_RUNS (scripts/demo-vm.sh)" >&2
		DEMO_VM_REPORT=$TMPD/lv$i.json "$ROOT/scripts/demo-vm.sh" >/dev/null 2>"$TMPD/lv.log" &&
			jq -c . "$TMPD/lv$i.json" >>"$TMPD/lv.json" || {
			lv_note="libvirt run $i failed: $(tail -1 "$TMPD/lv.log")"
			break
		}
	done
fi

echo "bench: vm migration, $RUNS shared-mode hand-overs, names $TAG*" >&2
# <W: WIRE_IP> WP === PF <H>, taps t0..tRUNS in H (one per VMM)
for ns in "$H" "$W"; do
	ip netns add "$ns" || die "failed to create netns $ns"
	ip -n "$ns" link set lo up
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1
done
ip link add "$PF" netns "$H" type veth peer name "$WP" netns "$W" || die "failed to create the uplink"
ip -n "$H" link set "$PF" up
ip -n "$W" link set "$WP" up
ip -n "$W" addr add "$WIRE_IP/24" dev "$WP"
ip netns exec "$W" ethtool -K "$WP" gro on >/dev/null # NAPI for XDP-redirected frames
ip netns exec "$W" ethtool -K "$WP" tx off >/dev/null
for i in $(seq 0 "$RUNS"); do
	ip -n "$H" tuntap add dev "${TAG}t$i" mode tap && ip -n "$H" link set "${TAG}t$i" up ||
		die "failed to create tap ${TAG}t$i"
done
host "$CLAT_LOAD" attach "$PF" 2>/dev/null || die "clat-load attach failed"
host "$CLAT_LOAD" vf add "$PF" --fn 1 --mac "$VM_MAC" --dev "${TAG}t0" >/dev/null 2>&1 || die "vf add failed"

vm_start v0 "$H" "${TAG}t0" "$RAM" "$VM_MAC" "$VM_IP/24" || die "the guest did not boot"
vm_cmd v0 'clat-guest init --mem /dev/hugepages/clat --size 8M --type conn:ctx=128,block=4K,services=64 >/dev/null' ||
	die "clat-guest init failed in the guest"
vm_cmd v0 'clat-guest agent --mem /dev/hugepages/clat >/dev/null 2>&1 &' >/dev/null
host "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$RAM" --channel "unix:$(vm_chan v0)" >/dev/null 2>&1 ||
	die "guest attach failed"
vm_cmd v0 'for p in 7000 7001 7002; do nc -l -p $p -e cat >/dev/null 2>&1 & done' >/dev/null
sleep 1
for p in 7000 7001 7002; do
	setsid ip netns exec "$W" bash -c "exec 3<>/dev/tcp/$VM_IP/$p && while echo tick >&3; do sleep 0.2; done" \
		</dev/null >/dev/null 2>&1 &
	PIDS+=("$!")
done
sleep 2

: >"$TMPD/runs.json"
for i in $(seq 1 "$RUNS"); do
	VM_NO_WAIT=1 vm_start "v$i" "$H" "${TAG}t$i" "$RAM" "$VM_MAC" "" -incoming defer || die "no destination VMM"
	for _ in $(seq 100); do
		vm_qmp "v$i" '{"execute":"query-status"}' 2>/dev/null | grep -q inmigrate && break
		sleep 0.1
	done
	host "$CLAT_LOAD" qemu migrate "$PF" --fn 1 --src-qmp "$VM_STATE/v$((i - 1))/qmp.sock" \
		--dst-qmp "$VM_STATE/v$i/qmp.sock" --uri "unix:$TMPD/mig.sock" --shared --port "${TAG}t$i" \
		--json >"$TMPD/r.json" 2>"$TMPD/r.log" || die "qemu migrate $i failed: $(cat "$TMPD/r.log")"
	jq -c . "$TMPD/r.json" >>"$TMPD/runs.json" || die "qemu migrate $i: no JSON report"
	sleep 1
done
live=$(host "$CLAT_LOAD" ctx list "$PF" --fn 1 --json | jq '[.contexts[] | select(.proto == "tcp")] | length')

jq -s --argjson live "$live" --arg vm "TCG, 1 vCPU, $VM_RAM_KB KiB of RAM" --slurpfile lv "$TMPD/lv.json" --arg lv_note "$lv_note" '
def st: sort as $s | {median: $s[(length / 2 | floor)], min: $s[0], max: $s[-1]};
def ms: . / 1e6;
{mode: "shared", runs: length, tcp_contexts: $live, vm: $vm,
 guest_paused_ms: (map(.guest_paused_ns | ms) | st),
 qemu_share_ms: (map((.phases_ns.switchover + .phases_ns.resume) | ms) | st),
 clat_share_ms: (map((.phases_ns.device_stop + .phases_ns.commit) | ms) | st),
 fn_stopped_ms: (map(.fn_stopped_ns | ms) | st),
 qemu_downtime_ms: (map(.qemu.downtime_ms) | st),
 qemu_total_ms: (map(.qemu.total_time_ms) | st),
 total_ms: (map(.total_ns | ms) | st),
 reports: .,
 libvirt: (if $lv_note != "" then {skipped: $lv_note} else
   {runs: ($lv | length),
    downtime_ms: ($lv | map(.libvirt.downtime_ms + .downtime.clat_ns / 1e6) | st),
    libvirt_downtime_ms: ($lv | map(.libvirt.downtime_ms) | st),
    clat_ms: ($lv | map(.downtime.clat_ns / 1e6) | st),
    clat_stop_copy_ms: ($lv | map(.stop_copy.ns / 1e6) | st),
    clat_commit_ms: ($lv | map(.commit.ns / 1e6) | st),
    clat_resume_ms: ($lv | map(.resume.ns / 1e6) | st),
    libvirt_job_ms: ($lv | map(.libvirt.ns / 1e6) | st),
    reports: $lv} end)}' "$TMPD/runs.json"
