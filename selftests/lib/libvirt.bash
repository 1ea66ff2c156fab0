# Private libvirt daemons for the BATS selftests: real libvirtd instances,
# each in its own mount namespace with its own state, socket and host_uuid
# (two of them on one machine accept a live migration between them; one
# libvirtd refuses a migration to itself).  Source it after common.bash.
#
#   lv_skip_unless_ready          skips unless libvirtd, virsh, QEMU and the guest image exist
#   lv_start NAME [HOOK]          starts instance NAME (HOOK: a script installed as its qemu hook)
#   lv_uri NAME                   its connection URI (qemu+unix:///system?socket=...)
#   lv_virsh NAME ARGS...         virsh on it
#   lv_dir NAME                   its private directory (short: unix socket paths fit)
#   lv_shm NAME                   its memory_backing_dir (tmpfs, under /dev/shm)
#   lv_domain_xml INST DOM TAP MAC IP [META]   a TCG domain for INST (1 vCPU, 128 MiB,
#       direct kernel boot, shared file-backed RAM in lv_shm INST, NIC on the existing
#       tap TAP without checksum offload (a frame XDP redirects loses an offloaded one), console on a unix socket with a log file, the clat channel
#       org.clat.0); META: the <clat:guest .../> element to put in <metadata>
#   lv_ram INST DOM               the domain's RAM file (after it started)
#   lv_cmd INST DOM 'cmd'         runs cmd on the domain's console (QF-DONE protocol)
#   lv_wait_ready INST DOM        waits for QF-READY on its console
#   lv_stop NAME                  destroys its domains, stops the daemon by its
#                                 recorded PID, kills any QEMU left by its recorded
#                                 PID, removes every file
#   lv_teardown_all               lv_stop for every instance of this test
#
# The daemons need no systemd and no virtlogd (stdio_handler = "file").  QEMU
# runs as root, without libvirt's mount namespace (its RAM file stays visible
# to clat on the host), with TCG (domain type='qemu').

source "$(dirname "${BASH_SOURCE[0]}")/console.bash"

GUEST_DIR=${CLAT_GUEST_DIR:-$ROOT/.output/guest}
LV_REG=${LV_REG:-${BATS_TEST_TMPDIR:-/tmp}/libvirtd}
LV_BOOT_TIMEOUT=${LV_BOOT_TIMEOUT:-120} # seconds; TCG on 2 shared cores
LV_CMD_TIMEOUT=${LV_CMD_TIMEOUT:-60}

lv_skip_unless_ready() {
	local c
	for c in libvirtd virsh qemu-system-x86_64 socat unshare; do
		command -v "$c" >/dev/null ||
			skip "$c not installed (scripts/install-deps.sh installs libvirt without systemd)"
	done
	[ -e "$GUEST_DIR/vmlinuz" ] && [ -f "$GUEST_DIR/initrd.gz" ] ||
		skip "no guest image in $GUEST_DIR (scripts/guest-kernel.sh, then make guest-image)"
}

lv_dir() {
	cat "$LV_REG/$1/dir" 2>/dev/null || {
		echo "libvirt: no instance named '$1'" >&2
		return 1
	}
}

lv_shm() {
	local d
	d=$(lv_dir "$1") || return 1
	printf '/dev/shm/%s\n' "${d##*/}"
}

lv_uri() {
	local d
	d=$(lv_dir "$1") || return 1
	printf 'qemu+unix:///system?socket=%s/sock/libvirt-sock\n' "$d"
}

lv_virsh() {
	local uri
	uri=$(lv_uri "$1") || return 1
	shift
	virsh -q -c "$uri" "$@"
}

lv_start() {
	local name=$1 hook=${2:-} d shm uuid port i m
	if [ -z "$name" ] || [[ "$name" == */* ]] || [ -e "$LV_REG/$name" ]; then
		echo "lv_start: bad or existing instance name '$name'" >&2
		return 2
	fi
	mkdir -p "$LV_REG/$name"
	# A short path: the sockets under it must fit sun_path (108 bytes).
	d=$(mktemp -d /tmp/clv.XXXXXX) || return 1
	echo "$d" >"$LV_REG/$name/dir"
	shm=/dev/shm/${d##*/}
	mkdir -p "$d"/{etc,run,lib,cache,log,sock} "$shm"
	cp -a /etc/libvirt/. "$d/etc/"
	rm -f "$d/etc/hooks/"*
	if [ -n "$hook" ]; then
		install -m 0755 "$hook" "$d/etc/hooks/qemu"
	fi
	uuid=$(cat /proc/sys/kernel/random/uuid)
	# Each instance migrates on its own ports: no clash with another test.
	port=$((49152 + (RANDOM % 800) * 16))
	cat >>"$d/etc/libvirtd.conf" <<-EOF
		host_uuid = "$uuid"
		unix_sock_dir = "$d/sock"
		unix_sock_rw_perms = "0700"
		auth_unix_rw = "none"
		auth_unix_ro = "none"
		log_outputs = "3:file:$d/libvirtd.log"
	EOF
	cat >>"$d/etc/qemu.conf" <<-EOF
		stdio_handler = "file"
		memory_backing_dir = "$shm"
		user = "root"
		group = "root"
		dynamic_ownership = 0
		security_driver = "none"
		namespaces = [ ]
		migration_port_min = $port
		migration_port_max = $((port + 15))
	EOF
	# /run/libvirt is a mount point in the namespace; the packages do not
	# create it when no service ever started.
	[ -d /run/libvirt ] || { mkdir /run/libvirt && : >"$LV_REG/made-run-libvirt"; }
	for m in /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do
		[ -d "$m" ] || {
			echo "lv_start: $m missing (install libvirt-daemon-system)" >&2
			return 1
		}
	done
	# Inherited fds (bats's, a caller's locks) must not stay open in the daemon.
	(
		for f in /proc/$BASHPID/fd/*; do
			f=${f##*/}
			[ "$f" -gt 2 ] 2>/dev/null && eval "exec $f>&-"
		done
		exec unshare -m --propagation private sh -c "
			mount --bind '$d/etc' /etc/libvirt && mount --bind '$d/run' /run/libvirt &&
			mount --bind '$d/lib' /var/lib/libvirt && mount --bind '$d/cache' /var/cache/libvirt &&
			mount --bind '$d/log' /var/log/libvirt &&
			exec libvirtd -d -p '$d/libvirtd.pid'"
	) </dev/null >"$d/start.log" 2>&1 || {
		echo "lv_start $name: libvirtd did not start:" >&2
		cat "$d/start.log" "$d/libvirtd.log" >&2 2>/dev/null
		return 1
	}
	for ((i = 0; i < 100; i++)); do
		[ -S "$d/sock/libvirt-sock" ] && lv_virsh "$name" version >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "lv_start $name: libvirtd does not answer on $d/sock/libvirt-sock" >&2
	cat "$d/libvirtd.log" >&2 2>/dev/null
	return 1
}

# lv_domain_xml INST DOM TAP MAC IP [META]
lv_domain_xml() {
	local inst=$1 dom=$2 tap=$3 mac=$4 ip=$5 meta=${6:-} d append
	d=$(lv_dir "$inst") || return 1
	append="console=ttyS0 panic=-1 quiet hugepages=16"
	[ -z "$ip" ] || append+=" clat.ip=$ip"
	cat <<-EOF
		<domain type='qemu'>
		  <name>$dom</name>
		  <metadata>$meta</metadata>
		  <memory unit='MiB'>128</memory>
		  <vcpu>1</vcpu>
		  <memoryBacking><source type='file'/><access mode='shared'/></memoryBacking>
		  <os>
		    <type arch='x86_64' machine='q35'>hvm</type>
		    <kernel>$GUEST_DIR/vmlinuz</kernel>
		    <initrd>$GUEST_DIR/initrd.gz</initrd>
		    <cmdline>$append</cmdline>
		  </os>
		  <cpu mode='custom' match='exact' check='none'><model fallback='allow'>qemu64</model></cpu>
		  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
		  <devices>
		    <emulator>$(command -v qemu-system-x86_64)</emulator>
		    <interface type='ethernet'>
		      <target dev='$tap' managed='no'/>
		      <mac address='$mac'/>
		      <model type='virtio'/>
		      <driver><host csum='off'/><guest csum='off'/></driver>
		    </interface>
		    <serial type='unix'>
		      <source mode='bind' path='$d/$dom-ser.sock'/>
		      <log file='$d/$dom-ser.log' append='on'/>
		      <target port='0'/>
		    </serial>
		    <channel type='unix'>
		      <source mode='bind' path='$d/$dom-chan.sock'/>
		      <target type='virtio' name='org.clat.0'/>
		    </channel>
		    <memballoon model='none'/>
		  </devices>
		</domain>
	EOF
}

# lv_ram INST DOM: the RAM file libvirt gave the running domain.
lv_ram() {
	local f
	f=$(find "$(lv_shm "$1")" -type f -path "*-$2/*" 2>/dev/null | head -1)
	[ -n "$f" ] || {
		echo "lv_ram: no RAM file of $2 in $(lv_shm "$1")" >&2
		return 1
	}
	printf '%s\n' "$f"
}

lv_wait_ready() {
	local d
	d=$(lv_dir "$1") || return 1
	console_wait_ready "libvirt $1: domain $2" "$d/$2-ser.log" "$LV_BOOT_TIMEOUT"
}

# lv_cmd INST DOM CMD: runs CMD on the domain's console (console_cmd).
lv_cmd() {
	local d
	d=$(lv_dir "$1") || return 1
	console_cmd "lv_cmd $2" "$d/$2-ser.sock" "$d/$2-cmd.out" "$LV_CMD_TIMEOUT" "$3"
}

_lv_kill_pid() { # pid: TERM, then KILL after 5 s
	local pid=$1 i
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	kill "$pid" 2>/dev/null
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
	for ((i = 0; i < 20; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
}

# lv_stop NAME: safe under errexit and after any failure.
lv_stop() {
	local name=$1 d dom f pids=()
	d=$(lv_dir "$name" 2>/dev/null) || return 0
	if [ -S "$d/sock/libvirt-sock" ]; then
		for dom in $(timeout 20 virsh -q -c "$(lv_uri "$name")" list --all --name 2>/dev/null); do
			timeout 20 virsh -q -c "$(lv_uri "$name")" destroy "$dom" >/dev/null 2>&1 || true
			timeout 20 virsh -q -c "$(lv_uri "$name")" undefine "$dom" >/dev/null 2>&1 || true
		done
	fi
	# QEMU's PIDs as libvirt recorded them, before the daemon goes.
	for f in "$d"/run/qemu/*.pid; do
		[ -f "$f" ] && pids+=("$(cat "$f")")
	done
	_lv_kill_pid "$(cat "$d/libvirtd.pid" 2>/dev/null)"
	for f in "${pids[@]}"; do _lv_kill_pid "$f"; done
	rm -rf "$d" "/dev/shm/${d##*/}"
	rm -rf "${LV_REG:?}/$name"
}

lv_teardown_all() {
	local i
	for i in "$LV_REG"/*/; do
		[ -d "$i" ] || continue
		i=${i%/}
		lv_stop "${i##*/}"
	done
	if [ -e "$LV_REG/made-run-libvirt" ]; then
		rmdir /run/libvirt 2>/dev/null || true
		rm -f "$LV_REG/made-run-libvirt"
	fi
}
