#!/usr/bin/env bats
# Isolation in the control plane: one intake for guest memory (no symlink,
# FIFO or device; one file, one fn; the same file at every reopen; a file
# cut under the mapping), an owner change that drops the old owner's shadow,
# and pin dirs that only root owns, even on a bpffs mounted mode 1777.
# The libvirt side (domain XML values, reconcile owner changes) is in
# libvirt.bats.

load lib/common
bats_require_minimum_version 1.5.0

setup() {
	topo_create 2
	MEM=$BATS_TEST_TMPDIR/guest.mem
	MEM2=$BATS_TEST_TMPDIR/guest2.mem
	MOVED=
}

teardown() {
	reap
	# A test that renamed the pin dir puts it back, so detach finds it.
	[ -z "${MOVED:-}" ] || mv "$MOVED" "/sys/fs/bpf/clat/$PF" 2>/dev/null || true
	topo_destroy
}

as_nobody() {
	setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}

# flows N FIRST_PORT: N UDP flows from the wire to VM 0 (fn 1) through clat_rx.
flows() {
	"$BIN/flowgen" --prog "/sys/fs/bpf/clat/$PF/prog_rx" --dst-mac "${VM_MAC[0]}" \
		--src-mac 02:00:5e:00:00:01 --vm-addr "${VM_IP[0]}" --vm-port 5000 \
		--remote-addr "$WIRE_IP" --first-port "$2" --count "$1" --proto udp >/dev/null
}

sum() { sha256sum "$1" | cut -d' ' -f1; }

# bat_save FILE BAT / bat_break FILE BAT / bat_repair FILE BAT: the BAT magic.
bat_save() { dd if="$1" of="$1.magic" bs=1 skip="$2" count=4 status=none; }
bat_break() { dd if=/dev/zero of="$1" bs=1 seek="$2" count=4 conv=notrunc status=none; }
bat_repair() { dd if="$1.magic" of="$1" bs=1 seek="$2" count=4 conv=notrunc status=none; }

@test "guest memory: a FIFO, a socket or a device as --mem is refused at once, never opened" {
	attach
	mkfifo "$BATS_TEST_TMPDIR/fifo.mem"
	# An open() of a FIFO without a writer would block forever.
	run timeout 10 "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$BATS_TEST_TMPDIR/fifo.mem" --bat-gpa 0x1000
	assert_equal "$status" 1
	assert_output --partial "failed to open guest memory $BATS_TEST_TMPDIR/fifo.mem: it is a FIFO, not a regular file (refused)"
	run timeout 10 "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem /dev/zero --bat-gpa 0x1000
	assert_equal "$status" 1
	assert_output --partial "it is a character device, not a regular file (refused)"
	python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$BATS_TEST_TMPDIR/sock.mem"
	run timeout 10 "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$BATS_TEST_TMPDIR/sock.mem" --bat-gpa 0x1000
	assert_equal "$status" 1
	assert_output --partial "it is a socket, not a regular file (refused)"
	# migrate-in takes the same intake.
	run timeout 10 "$CLAT_LOAD" migrate-in "$PF" --fn 2 --mac 02:00:00:00:00:42 --mem "$BATS_TEST_TMPDIR/fifo.mem" --bat-gpa 0x1000
	assert_equal "$status" 1
	assert_output --partial "it is a FIFO, not a regular file (refused)"
	assert_equal "$("$CLAT_LOAD" status "$PF" --json | jq '[.fns[] | select(.bat_gpa != 0)] | length')" 0
}

@test "guest memory: one file attached to two fns is refused, by guest attach and migrate-in" {
	attach
	guest_init "$MEM" conn:ctx=256,block=4096,services=2000
	"$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$BAT"
	run "$CLAT_LOAD" guest attach "$PF" --fn 2 --mem "$MEM" --bat-gpa "$BAT"
	assert_equal "$status" 1
	assert_output --partial "failed to attach guest tables of fn 2: guest memory $MEM is already attached to fn 1"
	# A hard link is the same file under another name.
	ln "$MEM" "$BATS_TEST_TMPDIR/hard.mem"
	run "$CLAT_LOAD" guest attach "$PF" --fn 2 --mem "$BATS_TEST_TMPDIR/hard.mem" --bat-gpa "$BAT"
	assert_equal "$status" 1
	assert_output --partial "is already attached to fn 1"
	run "$CLAT_LOAD" migrate-in "$PF" --fn 2 --mac 02:00:00:00:00:42 --mem "$MEM" --bat-gpa "$BAT"
	assert_equal "$status" 1
	assert_output --partial "failed to migrate in fn 2: guest memory $MEM is already attached to fn 1"
	assert_equal "$("$CLAT_LOAD" status "$PF" --json | jq '.fns[] | select(.fn == 2) | .bat_gpa')" 0
	# The fn that has it may re-attach it (idempotent), and once detached another fn may take it.
	run "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$BAT"
	assert_success
	assert_output --partial "nothing to do"
	"$CLAT_LOAD" guest detach "$PF" --fn 1
	"$CLAT_LOAD" guest attach "$PF" --fn 2 --mem "$MEM" --bat-gpa "$BAT"
}

@test "guest memory replaced at its path after attach: sync refuses and writes nothing into the new file" {
	attach
	guest_init "$MEM" conn:ctx=256,block=4096,services=2000
	"$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$BAT"
	flows 50 20000
	assert_equal "$(ctx_json 1 | jq '.contexts | length')" 50
	# Same path, same tables, another inode.
	cp "$MEM" "$MEM.new"
	mv "$MEM.new" "$MEM"
	local before
	before=$(sum "$MEM")
	run "$CLAT_LOAD" guest sync "$PF" --fn 1
	assert_equal "$status" 1
	assert_output --partial "guest memory $MEM was replaced since attach (device/inode changed)"
	assert_equal "$(sum "$MEM")" "$before"
	# A plain detach keeps the shadow (nothing written back); --force drops it and says so.
	run "$CLAT_LOAD" guest detach "$PF" --fn 1
	assert_equal "$status" 1
	assert_output --partial "--force drops them without writing back"
	assert_equal "$(ctx_json 1 | jq '.contexts | length')" 50
	run "$CLAT_LOAD" guest detach "$PF" --fn 1 --force
	assert_success
	assert_output --partial "warning: fn 1: contexts were NOT written back to guest memory $MEM"
	assert_equal "$(sum "$MEM")" "$before"
	assert_equal "$("$CLAT_LOAD" status "$PF" --json | jq '.fns[] | select(.fn == 1) | .bat_gpa')" 0
}

@test "guest memory cut under the mapping in the middle of the tables: exit 1 with a clear error, never a signal" {
	local json bat l1 cut pid rc=0 log=$BATS_TEST_TMPDIR/attach.log above=0 k p _
	attach
	# Two levels of 16 entries: 8 level-2 pages.  Layout seed 2 puts the BAT
	# and the level-1 page below most level-2 pages.
	json=$("$BIN/clat-guest" init --mem "$MEM" --size 64M --layout-seed 2 --json \
		--type conn:ctx=256,block=4096,services=2000,levels=2,entries=16)
	bat=$(jq .bat_gpa <<<"$json")
	l1=$(jq .types[0].clat_gpa <<<"$json")
	cut=$(((bat > l1 ? bat : l1) + 4096))
	for k in $(seq 0 7); do
		p=$("$BIN/clat-guest" locate --mem "$MEM" --bat-gpa "$bat" --svc $((k * 256 + 1)) --json |
			jq '.levels[1].page_gpa')
		[ "$p" -lt "$cut" ] || above=$((above + 1))
	done
	# Pages past the cut: the walk reads another one after the first fault.
	[ "$above" -ge 2 ]
	stall_bg guest_mapped:2 "$log" "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" \
		--bat-gpa "$bat"
	pid=$STALL_PID
	# The guest keeps its BAT and level-1 page and cuts what lies above them.
	truncate -s "$cut" "$MEM"
	wait "$pid" || rc=$?
	cat "$log"
	assert_equal "$rc" 1 # not 135 (SIGBUS) nor 139 (SIGSEGV on a NULL page)
	grep -q "failed to attach guest tables of fn 1: .*shrank" "$log"
	assert_equal "$("$CLAT_LOAD" status "$PF" --json | jq '.fns[] | select(.fn == 1) | .bat_gpa')" 0
	# The same cut during a sync: the device keeps every context.
	guest_init "$MEM2" conn:ctx=256,block=4096,services=2000
	"$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM2" --bat-gpa "$BAT"
	flows 100 30000
	rc=0
	CLAT_TEST_STALL=sync_validated:2 "$CLAT_LOAD" guest sync "$PF" --fn 1 \
		</dev/null >/dev/null 2>"$log" 3>&- &
	pid=$!
	for _ in $(seq 50); do
		grep -q stalled "$log" && break
		sleep 0.1
	done
	truncate -s $((BAT + 4096)) "$MEM2"
	wait "$pid" || rc=$?
	cat "$log"
	assert_equal "$rc" 1
	grep -q "shrank while being written" "$log"
	assert_equal "$(ctx_json 1 | jq '.contexts | length')" 100
}

@test "guest detach --force after a broken BAT, then another file: the old file is never written again" {
	attach
	guest_init "$MEM" conn:ctx=256,block=4096,services=2000
	local bat1=$BAT old new
	guest_init "$MEM2" conn:ctx=256,block=4096,services=1000
	"$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$bat1"
	flows 40 20000
	# The old owner breaks its BAT: its own detach cannot write back.
	bat_save "$MEM" "$bat1"
	bat_break "$MEM" "$bat1"
	run "$CLAT_LOAD" guest detach "$PF" --fn 1
	assert_equal "$status" 1
	run "$CLAT_LOAD" guest detach "$PF" --fn 1 --force
	assert_success
	assert_output --partial "warning: fn 1: contexts were NOT written back to guest memory $MEM"
	assert_equal "$("$CLAT_LOAD" status "$PF" --json | jq '.fns[] | select(.fn == 1) | .bat_gpa')" 0
	# The new owner of fn 1: its tables, its flows.
	"$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM2" --bat-gpa "$BAT"
	assert_equal "$("$CLAT_LOAD" status "$PF" --json | jq '.fns[] | select(.fn == 1) | .bat_gpa')" "$BAT"
	flows 30 40000
	assert_equal "$(ctx_json 1 | jq '.contexts | length')" 30
	# The old owner repairs its BAT; a sync writes only into the new file.
	bat_repair "$MEM" "$bat1"
	old=$(sum "$MEM")
	new=$(sum "$MEM2")
	run "$CLAT_LOAD" guest sync "$PF" --fn 1
	assert_success
	assert_output --partial "synced 30 contexts"
	assert_equal "$(sum "$MEM")" "$old"
	[ "$(sum "$MEM2")" != "$new" ]
	"$CLAT_LOAD" guest detach "$PF" --fn 1
	assert_equal "$(sum "$MEM")" "$old"
}

@test "status: clat_rx attached but its pin dir renamed away is reported, in text and JSON" {
	attach
	local prog
	prog=$(xdp_prog_of "$PF")
	[ -n "$prog" ]
	mv "/sys/fs/bpf/clat/$PF" "/sys/fs/bpf/clat/$PF-moved"
	MOVED=/sys/fs/bpf/clat/$PF-moved
	run "$CLAT_LOAD" status "$PF"
	assert_success
	assert_output "$PF: clat_rx attached (prog $prog) but its pin dir /sys/fs/bpf/clat/$PF is missing (renamed or removed?)"
	run --separate-stderr "$CLAT_LOAD" status "$PF" --json
	assert_success
	assert_equal "$(jq -c '[.attached, .pin_dir_missing, .unpinned_prog_id]' <<<"$output")" "[false,true,$prog]"
	mv "$MOVED" "/sys/fs/bpf/clat/$PF"
	MOVED=
	run "$CLAT_LOAD" status "$PF" --json
	assert_success
	assert_equal "$(jq -c '[.attached, .pf_prog_pinned]' <<<"$output")" "[true,true]"
}

# in_private_bpffs SCRIPT: runs SCRIPT (bash) as root in a mount namespace of
# its own with a fresh bpffs mounted mode 1777 on /sys/fs/bpf; the host's
# bpffs is untouched.  PF, CLAT_LOAD and the helpers' variables are exported.
in_private_bpffs() {
	PF=$PF CLAT_LOAD=$CLAT_LOAD unshare -m --propagation private bash -euc '
		mount -t bpf bpf /sys/fs/bpf -o mode=1777
		nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
		xdp() { ip -j -d link show dev "$PF" | jq -r ".[0].xdp.prog.id // .[0].xdp.attached[0].prog.id // empty"; }
		'"$1"
}

@test "pin dir: /sys/fs/bpf/clat pre-created by another user on a 1777 bpffs is refused, nothing attached" {
	run in_private_bpffs '
		nobody mkdir /sys/fs/bpf/clat
		rc=0; "$CLAT_LOAD" attach "$PF" 2>&1 || rc=$?
		echo "rc=$rc xdp=[$(xdp)]"
		ls -A /sys/fs/bpf/clat | sed "s/^/left: /"
		stat -c "owner=%u mode=%a" /sys/fs/bpf/clat
		# A root-owned dir with a loose mode is ours: its mode is fixed.
		rmdir /sys/fs/bpf/clat; mkdir -m 0777 /sys/fs/bpf/clat
		"$CLAT_LOAD" attach "$PF" 2>&1
		stat -c "fixed=%a" /sys/fs/bpf/clat /sys/fs/bpf/clat/"$PF"
		"$CLAT_LOAD" detach "$PF" 2>&1
		echo "after detach xdp=[$(xdp)]"'
	echo "$output"
	assert_success
	assert_line --partial "failed to use pin dir /sys/fs/bpf/clat: owned by uid 65534, not root (refused; remove it as root)"
	assert_line "rc=1 xdp=[]"
	refute_line --partial "left: "
	assert_line "owner=65534 mode=755"
	assert_line "fixed=700"
	assert_equal "$(grep -c '^fixed=700$' <<<"$output")" 2
	assert_line "after detach xdp=[]"
	[ -z "$(xdp_prog_of "$PF")" ]
}

@test "pin dir: a symlink at /sys/fs/bpf/clat or at --pin-dir is refused and nothing is unlinked through it" {
	run in_private_bpffs '
		mkdir /sys/fs/bpf/victim
		bpftool map create /sys/fs/bpf/victim/keep type array key 4 value 4 entries 1 name keep
		nobody ln -s /sys/fs/bpf/victim /sys/fs/bpf/clat
		nobody ln -s /sys/fs/bpf/victim /sys/fs/bpf/pd
		for cmd in "attach $PF" "detach $PF" "status $PF" "attach $PF --pin-dir /sys/fs/bpf/pd" \
			"detach $PF --pin-dir /sys/fs/bpf/pd" "status $PF --pin-dir /sys/fs/bpf/pd"; do
			rc=0; $CLAT_LOAD $cmd 2>&1 || rc=$?
			echo "$cmd: rc=$rc xdp=[$(xdp)]"
		done
		ls -A /sys/fs/bpf/victim | sed "s/^/victim: /"
		stat -c "victim mode=%a" /sys/fs/bpf/victim'
	echo "$output"
	assert_success
	assert_line --partial "failed to use pin dir /sys/fs/bpf/clat: it is a symlink (refused; nothing is followed)"
	assert_line --partial "failed to use pin dir /sys/fs/bpf/pd: it is a symlink (refused; nothing is followed)"
	assert_line "attach $PF: rc=1 xdp=[]"
	assert_line "detach $PF: rc=1 xdp=[]"
	assert_line "status $PF: rc=1 xdp=[]"
	assert_line "attach $PF --pin-dir /sys/fs/bpf/pd: rc=1 xdp=[]"
	assert_line "detach $PF --pin-dir /sys/fs/bpf/pd: rc=1 xdp=[]"
	assert_line "status $PF --pin-dir /sys/fs/bpf/pd: rc=1 xdp=[]"
	assert_line "victim: keep"
	refute_line --regexp "^victim: .+:staging:"
	assert_line "victim mode=755"
	[ -z "$(xdp_prog_of "$PF")" ]
}
