#!/usr/bin/env bats
# Privileges and permissions: what a local unprivileged user can do (nothing),
# who can read the pins (root), and guest memory files that try to redirect
# or crash the loader (symlinks, shrinking under the mapping).

load lib/common

setup() {
	guest_topo
}

teardown() {
	reap
	topo_destroy
	rm -f "$MEM"
}

as_nobody() {
	setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"
}

guest_attached() { # fn
	"$CLAT_LOAD" status "$PF" --json | jq -e --argjson fn "$1" \
		'[.fns[] | select(.fn == $fn and (.guest // null) != null)] | length > 0' >/dev/null
}

@test "every clat-load command refuses a non-root user clearly and changes nothing" {
	local before cmd
	"$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$BAT"
	before=$("$CLAT_LOAD" status "$PF" --json | jq -S 'del(.programs)')
	while IFS= read -r cmd; do
		# shellcheck disable=SC2086
		run as_nobody "$CLAT_LOAD" $cmd
		assert_equal "$status" 1
		assert_output --partial "must be run as root"
	done <<EOF
attach $PF
detach $PF
vf add $PF --fn 3 --mac 02:00:00:00:00:33 --dev lo
vf del $PF --fn 2
guest attach $PF --fn 2 --mem $MEM --bat-gpa $BAT
guest sync $PF --fn 1
guest detach $PF --fn 1
ctx list $PF --fn 1
gc $PF
status $PF
stats $PF
EOF
	assert_equal "$("$CLAT_LOAD" status "$PF" --json | jq -S 'del(.programs)')" "$before"
	wire ping -c 1 -W 2 "${VM_IP[1]}" >/dev/null
}

@test "the pin dirs are 0700 and root's alone: nobody cannot list or open a map" {
	assert_equal "$(stat -c %a /sys/fs/bpf/clat)" 700
	assert_equal "$(stat -c %a "/sys/fs/bpf/clat/$PF")" 700
	assert_equal "$(stat -c %u "/sys/fs/bpf/clat/$PF")" 0
	run as_nobody ls "/sys/fs/bpf/clat/$PF"
	assert_failure
	run as_nobody cat "/sys/fs/bpf/clat/$PF/vct"
	assert_failure
}

@test "a guest memory path that is a symlink is refused, nothing attached" {
	ln -s "$MEM" "$BATS_TEST_TMPDIR/link.mem"
	run "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$BATS_TEST_TMPDIR/link.mem" --bat-gpa "$BAT"
	assert_failure
	assert_output --partial "symlink"
	run "$CLAT_LOAD" ctx list "$PF" --fn 1 --json
	assert_equal "$(jq '.contexts | length' <<<"$output" 2>/dev/null || echo 0)" 0
	assert_equal "$("$CLAT_LOAD" guest sync "$PF" --fn 1 2>&1 | grep -c 'synced' || true)" 0
	# The real file still attaches.
	run "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$BAT"
	assert_success
}

@test "guest memory that shrinks while mapped fails the attach cleanly, no SIGBUS" {
	local pid rc=0 log=$BATS_TEST_TMPDIR/attach.log _
	stall_bg guest_mapped:2 "$log" "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" \
		--bat-gpa "$BAT"
	pid=$STALL_PID
	# The guest cuts its memory to one page while the loader holds it mapped.
	truncate -s 4096 "$MEM"
	wait "$pid" || rc=$?
	cat "$log"
	assert_equal "$rc" 1 # not 135 (SIGBUS)
	grep -q "shrank while being read" "$log"
	grep -q "failed to attach guest tables of fn 1" "$log"
	# Nothing installed: sync has no guest to write back to.
	run "$CLAT_LOAD" guest detach "$PF" --fn 1
	assert_success
	assert_output --partial "no guest tables attached"
	# The loader and the PF are fine: a good file attaches.
	guest_init "$BATS_TEST_TMPDIR/good.mem" conn:ctx=256,block=4096,services=2000
	run "$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$BATS_TEST_TMPDIR/good.mem" --bat-gpa "$BAT"
	assert_success
}

@test "guest memory that shrinks during a sync fails the sync, no SIGBUS, device contexts kept" {
	local pid rc=0 log=$BATS_TEST_TMPDIR/sync.log _
	"$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$BAT"
	"$BIN/flowgen" --prog "/sys/fs/bpf/clat/$PF/prog_rx" --dst-mac "${VM_MAC[0]}" \
		--src-mac 02:00:5e:00:00:01 --vm-addr "${VM_IP[0]}" --vm-port 5000 \
		--remote-addr "$WIRE_IP" --first-port 20000 --count 100 --proto udp >/dev/null
	assert_equal "$(ctx_json 1 | jq '.contexts | length')" 100
	CLAT_TEST_STALL=sync_validated:2 "$CLAT_LOAD" guest sync "$PF" --fn 1 \
		</dev/null >/dev/null 2>"$log" 3>&- &
	pid=$!
	for _ in $(seq 50); do
		grep -q stalled "$log" && break
		sleep 0.1
	done
	truncate -s 4096 "$MEM"
	wait "$pid" || rc=$?
	cat "$log"
	assert_equal "$rc" 1 # not 135 (SIGBUS)
	grep -q "shrank while being written" "$log"
	# The device still holds every context and their counts.
	assert_equal "$(ctx_json 1 | jq '[.contexts[] | select(.packets_in == 1)] | length')" 100
}
