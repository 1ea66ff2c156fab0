# Real QEMU guests for the BATS selftests (TCG, 1 vCPU, 128 MiB + 8 KiB).  Source it
# after common.bash.  Each VM has a state dir $VM_STATE/<name> holding its
# PID, console socket and log, QMP socket, clat channel socket and the path
# of its RAM file; vm_teardown_all stops every VM the test started and
# removes their RAM files, also after a failure.
#
#   vm_start NAME NETNS TAP RAMFILE MAC IP [extra qemu args...]
#       QEMU inside netns NETNS (nsenter, /sys/fs/bpf stays visible), NIC on
#       the existing tap TAP with MAC, guest address IP (A.B.C.D/N, or "" for
#       none), RAM in RAMFILE (shared, GPA = file offset).  Waits for
#       QF-READY unless VM_NO_WAIT=1 or the extra args hold -incoming or -S.
#   vm_cmd NAME 'shell command'   output on stdout, the command's exit status
#   vm_qmp NAME '{"execute":...}' the reply line; status 1 on "error"
#   vm_stop NAME                  QMP quit, then SIGKILL of the recorded PID
#   vm_chan NAME / vm_ram NAME    the clat channel socket / the RAM file
#   vm_wait_ready NAME            waits for QF-READY (after an incoming VM runs)

source "$(dirname "${BASH_SOURCE[0]}")/console.bash"

GUEST_DIR=${CLAT_GUEST_DIR:-$ROOT/.output/guest}
VM_STATE=${VM_STATE:-${BATS_TEST_TMPDIR:-/tmp}/vms}
VM_BOOT_TIMEOUT=${VM_BOOT_TIMEOUT:-90}  # seconds; TCG on 2 shared cores
VM_CMD_TIMEOUT=${VM_CMD_TIMEOUT:-30}
# Guest RAM, KiB: 128 MiB + 8 KiB, on purpose not a multiple of 256 KiB.
# QEMU before 9.0 syncs the dirty bitmap of a RAM block whose size is a
# multiple of 64 pages by a fast path that does not reset TCG's TLB, so the
# vCPU's stores after a sync can go unlogged and a RAM-copy migration loses
# them (fixed upstream by "physmem: Fix migration dirty bitmap coherency
# with TCG memory access").  Any other size takes the per-page path, which
# resets the TLB.  KVM is not affected.  See docs/DESIGN.md.
VM_RAM_KB=${VM_RAM_KB:-131080}

# vm_skip_unless_ready: skips the test unless QEMU and the guest image exist.
vm_skip_unless_ready() {
	command -v qemu-system-x86_64 >/dev/null ||
		skip "qemu-system-x86_64 not installed (scripts/install-deps.sh)"
	command -v socat >/dev/null || skip "socat not installed (scripts/install-deps.sh)"
	[ -e "$GUEST_DIR/vmlinuz" ] && [ -f "$GUEST_DIR/initrd.gz" ] ||
		skip "no guest image in $GUEST_DIR (scripts/guest-kernel.sh, then make guest-image)"
}

_vm_dir() {
	local d=$VM_STATE/$1
	[ -d "$d" ] || {
		echo "vm: no VM named '$1'" >&2
		return 1
	}
	printf '%s\n' "$d"
}

_vm_alive() { # dir
	local pid
	pid=$(cat "$1/pid" 2>/dev/null) || return 1
	kill -0 "$pid" 2>/dev/null
}

# vm_wait_ready NAME: until the console log shows QF-READY.
vm_wait_ready() {
	local d
	d=$(_vm_dir "$1") || return 1
	console_wait_ready "vm $1" "$d/ser.log" "$VM_BOOT_TIMEOUT" _vm_alive "$d" || {
		cat "$d/qemu.err" >&2 2>/dev/null
		return 1
	}
}

vm_start() {
	local name=$1 netns=$2 tap=$3 ram=$4 mac=$5 ip=$6 d a wait=1 append
	shift 6
	if [ -z "$name" ] || [[ "$name" == */* ]] || [ -z "$tap" ] || [[ "$ram" != /* ]]; then
		echo "vm_start: usage: vm_start NAME NETNS TAP /ABS/RAMFILE MAC IP [qemu args]" >&2
		return 2
	fi
	d=$VM_STATE/$name
	if [ -e "$d" ]; then
		echo "vm_start: a VM named '$name' exists already" >&2
		return 1
	fi
	mkdir -p "$d"
	printf '%s\n' "$ram" >"$d/ram"
	# An incoming VM (-incoming) or a paused one (-S) prints nothing yet.
	for a in "$@"; do [ "$a" != -incoming ] && [ "$a" != -S ] || wait=0; done
	[ "${VM_NO_WAIT:-0}" != 1 ] || wait=0
	append="console=ttyS0 panic=-1 quiet hugepages=16"
	[ -z "$ip" ] || append+=" clat.ip=$ip"
	# A subshell that closes every inherited fd above 2 (bats's own, and any
	# lock a caller holds), then becomes QEMU: its PID is QEMU's.
	(
		for f in /proc/$BASHPID/fd/*; do
			f=${f##*/}
			[ "$f" -gt 2 ] 2>/dev/null && eval "exec $f>&-"
		done
		exec setsid nsenter --net="/run/netns/$netns" \
			qemu-system-x86_64 -accel tcg -cpu max -smp 1 -m "${VM_RAM_KB}K" \
			-object "memory-backend-file,id=mem,size=${VM_RAM_KB}K,mem-path=$ram,share=on" \
			-machine q35,memory-backend=mem \
			-kernel "$GUEST_DIR/vmlinuz" -initrd "$GUEST_DIR/initrd.gz" -append "$append" \
			-display none -nodefaults -no-reboot \
			-chardev "socket,id=s0,path=$d/ser.sock,server=on,wait=off,logfile=$d/ser.log" \
			-serial chardev:s0 \
			-qmp "unix:$d/qmp.sock,server=on,wait=off" \
			-netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" \
			-device "virtio-net-pci,netdev=n0,mac=$mac,csum=off,guest_csum=off" \
			-device virtio-serial-pci \
			-chardev "socket,id=clatch,path=$d/chan.sock,server=on,wait=off" \
			-device virtserialport,chardev=clatch,name=org.clat.0 \
			"$@"
	) </dev/null >"$d/qemu.err" 2>&1 &
	echo $! >"$d/pid"
	# csum=off: the guest sends full checksums, since a frame redirected by
	# XDP loses an offloaded one (as vf-emu turns tx offload off on veths).
	[ "$wait" = 0 ] || vm_wait_ready "$name"
}

# vm_cmd NAME CMD: runs CMD on the guest console (console_cmd), giving up
# early if the VM died.
vm_cmd() {
	local d
	d=$(_vm_dir "$1") || return 1
	console_cmd "vm_cmd $1" "$d/ser.sock" "$d/cmd.out" "$VM_CMD_TIMEOUT" "$2" _vm_alive "$d"
}

vm_qmp() {
	local d
	d=$(_vm_dir "$1") || return 1
	python3 "$ROOT/selftests/lib/qmp.py" "$d/qmp.sock" "$2" "${VM_QMP_TIMEOUT:-10}"
}

vm_chan() {
	local d
	d=$(_vm_dir "$1") || return 1
	printf '%s\n' "$d/chan.sock"
}

vm_ram() {
	local d
	d=$(_vm_dir "$1") || return 1
	cat "$d/ram"
}

vm_pid() {
	local d
	d=$(_vm_dir "$1") || return 1
	cat "$d/pid"
}

# vm_stop NAME: quit over QMP; SIGKILL (of this VM's recorded PID only) if
# it has not gone within 5 s.  Removes its RAM file and state dir.  Safe
# under bats's errexit: every step may fail (the VM may be gone already).
vm_stop() {
	local d pid i
	d=$(_vm_dir "$1") || return 0
	pid=$(cat "$d/pid" 2>/dev/null)
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		VM_QMP_TIMEOUT=3 vm_qmp "$1" '{"execute":"quit"}' >/dev/null 2>&1 || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
	wait "$pid" 2>/dev/null || true
	rm -f "$(cat "$d/ram" 2>/dev/null)"
	rm -rf "$d"
	return 0
}

# vm_teardown_all: stops every VM started through vm_start in this test.
vm_teardown_all() {
	local d
	for d in "$VM_STATE"/*/; do
		[ -d "$d" ] || continue
		d=${d%/}
		vm_stop "${d##*/}"
	done
}

# ---- an emulated host whose VFs are taps (needs lib/common) -----------------

# vmhost_create NUMVFS: a host netns HOST holding a --vm tap PF, its wire in
# netns WIRE_NS (NET.1), clat attached.  Sets TAG, HOST, WIRE_NS, PF, NET,
# WIRE_IP, VM_IP (NET.10), TAP[i], VF_MAC[i].
vmhost_create() {
	local n=$1 json i
	TAG=v$(printf '%x%03x' $(($$ % 256)) $((RANDOM % 4096)))
	HOST=$TAG-h WIRE_NS=$TAG-w PF=${TAG}p
	NET=198.18.$((RANDOM % 250 + 1))
	WIRE_IP=$NET.1 VM_IP=$NET.10
	ip netns add "$HOST"
	ip -n "$HOST" link set lo up
	# No IPv6 chatter from the taps or the wire into the counters.
	ip netns exec "$HOST" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6'
	in_host "$HOST" "$VF_EMU" create "$PF" --numvfs "$n" --vm tap --wire-netns "$WIRE_NS" \
		>/dev/null || return 1
	no_ipv6 "$WIRE_NS" "$PF"
	ip -n "$WIRE_NS" addr add "$WIRE_IP/24" dev "$PF"
	ip -n "$WIRE_NS" link set lo up
	json=$(in_host "$HOST" "$VF_EMU" list "$PF" --json) || return 1
	TAP=() VF_MAC=()
	for ((i = 0; i < n; i++)); do
		TAP[i]=$(jq -r ".vfs[$i].rep" <<<"$json")
		VF_MAC[i]=$(jq -r ".vfs[$i].mac" <<<"$json")
	done
	in_host "$HOST" "$CLAT_LOAD" attach "$PF" 2>/dev/null
}

vmhost_destroy() {
	[ -n "${TAG:-}" ] || return 0
	vm_teardown_all
	in_host "$HOST" "$CLAT_LOAD" detach "$PF" >/dev/null 2>&1 || true
	in_host "$HOST" "$VF_EMU" destroy "$PF" >/dev/null 2>&1 || true
	ip netns del "$WIRE_NS" 2>/dev/null || true
	ip netns del "$HOST" 2>/dev/null || true
	pins_sweep "$PF"
	TAG=
}
