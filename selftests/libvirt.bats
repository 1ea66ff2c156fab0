#!/usr/bin/env bats
# libvirt integration through libvirt's test driver (test:///abs/node.xml, no
# daemon): reconcile and watch with lifecycle events (the qemu hook script:
# libvirt_hook.bats; the fixture: lib/lvtest.bash).  The test driver cannot
# migrate, so a migration is modelled by two node files, one per host state.

load lib/common
load lib/lvtest
bats_require_minimum_version 1.5.0

@test "reconcile: attaches the guest tables and sets the MAC of the domain's VF; a second run changes nothing" {
	local uri
	uri=$(node before vm1 1 "$VMMAC" "${PCI[0]}" "$MEM1" "$BAT1")
	run reconcile --connect "$uri" --json
	assert_success
	assert_equal "$(jq -r '.pf' <<<"$output")" "$PF"
	assert_equal "$(jq '.domains' <<<"$output")" 1
	assert_equal "$(jq -c '[.actions[] | [.action, .fn, .domain, .ok]]' <<<"$output")" \
		'[["set-mac",1,"vm1",true],["attach",1,"vm1",true]]'
	assert_equal "$(jq -r '.actions[0].mac' <<<"$output")" "$VMMAC"
	assert_equal "$(jq '.actions[1].bat_gpa' <<<"$output")" "$BAT1"
	assert_equal "$(fn_field 1 .bat_gpa)" "$BAT1"
	assert_equal "$(fn_field 1 '.macs[0].mac')" "$VMMAC"
	assert_equal "$(guests_bat 1)" "$BAT1"
	run ctx_json 1
	assert_success
	assert_equal "$(jq '.contexts | length' <<<"$output")" 0

	run reconcile --connect "$uri"
	assert_success
	assert_output "reconcile $PF: 1 running domain, nothing to do"
	run reconcile --connect "$uri" --json
	assert_success
	assert_equal "$(jq -c '.actions' <<<"$output")" '[]'
	assert_equal "$(jq '.changes' <<<"$output")" 0
}

@test "reconcile: the two host states of a migration move the tables from fn 1 to fn 2" {
	local before after gone
	before=$(node before vm1 1 "$VMMAC" "${PCI[0]}" "$MEM1" "$BAT1")
	after=$(node after vm1 1 "$VMMAC" "${PCI[1]}" "$MEM1" "$BAT1")
	gone=$(node gone none)
	reconcile --connect "$before" >/dev/null
	assert_equal "$(guests_bat 1)" "$BAT1"

	run reconcile --connect "$after" --json
	assert_success
	assert_equal "$(jq -c '[.actions[] | [.action, .fn, .ok]]' <<<"$output")" \
		'[["detach",1,true],["set-mac",2,true],["attach",2,true]]'
	assert_equal "$(jq -r '.actions[0].reason' <<<"$output")" "no running domain uses it"
	assert_equal "$(jq -r '.actions[1].domain' <<<"$output")" vm1
	assert_equal "$(fn_field 1 .bat_gpa)" 0
	assert_equal "$(fn_field 2 .bat_gpa)" "$BAT1"
	assert_equal "$(fn_field 2 '.macs[0].mac')" "$VMMAC"
	# The MAC is one key of mac_fn: it now selects fn 2 only.
	assert_equal "$(fn_field 1 '.macs | length')" 0
	# fn 1's context memory went back to the pool; fn 2 holds the guest's.
	assert_equal "$(fn_field 1 .pool_contexts)" 0
	[ "$(fn_field 2 .pool_contexts)" -gt 0 ]

	run reconcile --connect "$after"
	assert_output --partial "nothing to do"

	# The domain left this host: its tables go, fn 0 and the MACs stay.
	run reconcile --connect "$gone"
	assert_success
	assert_line --partial "detach  fn 2: $MEM1 BAT $(printf '0x%x' "$BAT1") (no running domain uses it)"
	assert_line "reconcile $PF: 0 running domains, 1 change"
	assert_equal "$(fn_field 2 .bat_gpa)" 0
	assert_equal "$(fn_field 0 .state)" active
}

@test "reconcile leaves a fn that a migration paused alone, and catches up once it resumes" {
	local uri moved gone newmac=52:54:00:aa:bb:cc
	uri=$(node before vm1 1 "$VMMAC" "${PCI[0]}" "$MEM1" "$BAT1")
	moved=$(node moved vm1 1 "$newmac" "${PCI[0]}" "$MEM1" "$BAT1")
	gone=$(node gone none)
	reconcile --connect "$uri" >/dev/null
	# migrate-out holds fn 1 QUIESCED between its pause and its stop-copy.
	bg "$BATS_TEST_TMPDIR/out.log" env CLAT_TEST_STALL=stop_copy:30 "$CLAT_LOAD" migrate-out "$PF" --fn 1
	for _ in $(seq 50); do [ "$(fn_field 1 .state)" = quiesced ] && break; sleep 0.1; done
	assert_equal "$(fn_field 1 .state)" quiesced
	# Neither a MAC change nor the domain leaving touches it: no un-pause, no detach.
	for u in "$moved" "$gone"; do
		run --separate-stderr reconcile --connect "$u" --json
		assert_success
		[[ "$stderr" == *"fn 1 is paused for a migration"* ]]
		assert_equal "$(jq -c '[.actions[] | select(.fn == 1)]' <<<"$output")" '[]'
		assert_equal "$(fn_field 1 .state)" quiesced
		assert_equal "$(fn_field 1 '.macs[0].mac')" "$VMMAC"
		assert_equal "$(guests_bat 1)" "$BAT1"
	done
	kill -9 "$BG_PID"
	"$CLAT_LOAD" migrate-out "$PF" --fn 1 --abort 2>/dev/null
	assert_equal "$(fn_field 1 .state)" active
	run --separate-stderr reconcile --connect "$moved" --json
	assert_success
	assert_equal "$(jq -c '[.actions[] | [.action, .fn, .ok]]' <<<"$output")" '[["set-mac",1,true]]'
	assert_equal "$(fn_field 1 '.macs[0].mac')" "$newmac"
	assert_equal "$(fn_field 1 .state)" active
}

@test "reconcile: changed metadata re-attaches; no metadata sets the MAC only and says so" {
	local uri
	uri=$(node a vm1 1 "$VMMAC" "${PCI[0]}" "$MEM1" "$BAT1")
	reconcile --connect "$uri" >/dev/null
	uri=$(node b vm1 1 "$VMMAC" "${PCI[0]}" "$MEM2" "$BAT2")
	run reconcile --connect "$uri" --json
	assert_success
	assert_equal "$(jq -c '[.actions[] | [.action, .fn, .mem]]' <<<"$output")" \
		"[[\"detach\",1,\"$MEM1\"],[\"attach\",1,\"$MEM2\"]]"
	assert_equal "$(jq -r '.actions[0].reason' <<<"$output")" "another guest memory file owns it"
	assert_equal "$(jq '.actions[0].forced' <<<"$output")" true
	assert_equal "$(fn_field 1 .bat_gpa)" "$BAT2"

	uri=$(node c vm1 1 "$VMMAC" "${PCI[1]}" "$MEM2" "$BAT2" nometa)
	run reconcile --connect "$uri"
	assert_success
	assert_line --partial "domain vm1: no <clat:guest> metadata (namespace https://clat.dev/xmlns/guest/1)"
	assert_line --regexp "^set-mac fn 2 \(vm1\): $VMMAC vlan 0"
	assert_line --regexp "^detach  fn 1: "
	assert_equal "$(fn_field 2 .bat_gpa)" 0
}

@test "reconcile: a bad URI, bad metadata and a detached PF fail with clear errors" {
	run reconcile --connect "test:///nonexistent/node.xml"
	assert_failure 1
	assert_output --partial "clat-load: failed to connect to libvirt at 'test:///nonexistent/node.xml':"

	local uri
	uri=$(node bad vm1 1 "$VMMAC" "${PCI[0]}" "relative.mem" "$BAT1")
	run reconcile --connect "$uri"
	assert_failure 1
	assert_output --partial 'domain vm1: <clat:guest> needs mem="/absolute/path"'
	# The MAC is still set; the tables are left alone.
	assert_equal "$(fn_field 1 '.macs[0].mac')" "$VMMAC"
	assert_equal "$(fn_field 1 .bat_gpa)" 0

	uri=$(node badbat vm1 1 "$VMMAC" "${PCI[0]}" "$MEM1" "zero")
	run reconcile --connect "$uri"
	assert_failure 1
	assert_output --partial 'needs bat-gpa="0x..."'

	uri=$(node ok vm1 1 "$VMMAC" "${PCI[0]}" "$MEM1" "$BAT1")
	"$CLAT_LOAD" detach "$PF"
	run reconcile --connect "$uri"
	assert_failure 1
	assert_output --partial "clat is not attached to $PF"
}

@test "watch: lifecycle events from test actions reconcile after each one" {
	local dom1=$BATS_TEST_TMPDIR/vm1.dom dom2=$BATS_TEST_TMPDIR/vm2.dom file=$BATS_TEST_TMPDIR/node.xml
	domain_xml vm1 1 "$VMMAC" "${PCI[0]}" "$MEM1" "$BAT1" >"$dom1"
	domain_xml vm2 5 52:54:00:00:00:22 "${PCI[1]}" "$MEM2" "$BAT2" >"$dom2"
	node_xml "$file" "$dom1" "$dom2"
	run timeout 30 "$CLAT_LOAD" libvirt watch "$PF" --connect "test://$file" --interval 0 \
		--test-actions destroy:vm1,create:vm2,suspend:vm2,resume:vm2
	assert_success
	assert_line --partial "attach  fn 1 (vm1)"
	assert_line "watch: domain vm1: STOPPED_DESTROYED"
	assert_line --partial "detach  fn 1: $MEM1"
	assert_line "watch: domain vm2: STARTED_BOOTED"
	assert_line --partial "attach  fn 2 (vm2): $MEM2"
	assert_line "watch: domain vm2: SUSPENDED_PAUSED"
	assert_line "watch: domain vm2: RESUMED_UNPAUSED"
	# Suspend and resume change nothing: a paused domain keeps its tables.
	assert_equal "$(grep -c 'nothing to do' <<<"$output")" 2
	assert_equal "$(fn_field 1 .bat_gpa)" 0
	assert_equal "$(fn_field 2 .bat_gpa)" "$BAT2"
	assert_equal "$(fn_field 2 '.macs[0].mac')" 52:54:00:00:00:22
}

@test "watch --json: one JSON object per event, each followed by its reconcile" {
	local dom1=$BATS_TEST_TMPDIR/vm1.dom dom2=$BATS_TEST_TMPDIR/vm2.dom file=$BATS_TEST_TMPDIR/node.xml
	domain_xml vm1 1 "$VMMAC" "${PCI[0]}" "$MEM1" "$BAT1" >"$dom1"
	domain_xml vm2 5 52:54:00:00:00:22 "${PCI[1]}" "$MEM2" "$BAT2" >"$dom2"
	node_xml "$file" "$dom1" "$dom2"
	run --separate-stderr timeout 30 "$CLAT_LOAD" libvirt watch "$PF" --connect "test://$file" \
		--interval 0 --test-actions destroy:vm1,create:vm2 --json
	assert_success
	# Every stdout line is one object: the first reconcile, then per action
	# its lifecycle event and the reconcile it caused.
	jq -e -s 'length >= 5 and all(.[]; has("event"))' <<<"$output"
	jq -e -s 'map(.event) | .[0] == "reconcile" and index("lifecycle") != null' <<<"$output"
	jq -e -s 'map(select(.event == "lifecycle")) | map(.domain + ":" + .detail) ==
		["vm1:STOPPED_DESTROYED", "vm2:STARTED_BOOTED"]' <<<"$output"
	jq -e -s '[.[] | select(.event == "reconcile") | .actions[]?] | length >= 2' <<<"$output"
}

@test "watch: a guest that grows its tables is resynced without any event" {
	local uri log=$BATS_TEST_TMPDIR/watch.log _
	uri=$(node w vm1 1 "$VMMAC" "${PCI[0]}" "$MEM1" "$BAT1")
	spawn bash -c "'$CLAT_LOAD' libvirt watch '$PF' --connect '$uri' --interval 0 --resync-ms 200 2>'$log'"
	for _ in $(seq 50); do grep -q "attach  fn 1" "$log" 2>/dev/null && break; sleep 0.1; done
	assert_equal "$(fn_field 1 .generation)" 1
	"$BIN/clat-guest" grow --mem "$MEM1" --bat-gpa "$BAT1" --capacity 3000 >/dev/null
	for _ in $(seq 50); do [ "$(fn_field 1 .generation)" = 2 ] && break; sleep 0.1; done
	assert_equal "$(fn_field 1 .generation)" 2
	run cat "$log"
	assert_line --partial "fn 1: resynced generation 1 -> 2: 1 segments and 0 types added"
}

@test "watch: exits cleanly on SIGTERM; a failing test action fails the watch" {
	local uri log=$BATS_TEST_TMPDIR/watch.log rc=$BATS_TEST_TMPDIR/watch.rc pidf=$BATS_TEST_TMPDIR/watch.pid
	uri=$(node w vm1 1 "$VMMAC" "${PCI[0]}" "$MEM1" "$BAT1")
	spawn bash -c "'$CLAT_LOAD' libvirt watch '$PF' --connect '$uri' --interval 1 2>'$log' & echo \$! >'$pidf'; wait \$!; echo \$? >'$rc'"
	local _
	for _ in $(seq 50); do grep -q "attach  fn 1" "$log" 2>/dev/null && break; sleep 0.1; done
	assert_equal "$(fn_field 1 .bat_gpa)" "$BAT1"
	sleep 1.2 # one tick: quiet when nothing changes
	kill -TERM "$(cat "$pidf")"
	for _ in $(seq 50); do [ -s "$rc" ] && break; sleep 0.1; done
	assert_equal "$(cat "$rc")" 0
	run cat "$log"
	assert_line --partial "watch: Terminated, exiting"
	assert_equal "$(grep -c '^reconcile ' "$log")" 1

	run timeout 30 "$CLAT_LOAD" libvirt watch "$PF" --connect "$uri" --test-actions create:nosuch
	assert_failure 1
	assert_output --partial "failed to run test action create:nosuch"
	run "$CLAT_LOAD" libvirt watch "$PF" --connect "$uri" --test-actions explode:vm1
	assert_failure 2
	assert_output --partial "invalid --test-actions item 'explode:vm1'"
}

@test "reconcile: mem= that is a symlink, a FIFO or a device is refused, never resolved or opened" {
	local uri bad
	ln -s "$MEM1" "$BATS_TEST_TMPDIR/link.mem"
	mkfifo "$BATS_TEST_TMPDIR/fifo.mem"
	for bad in "$BATS_TEST_TMPDIR/link.mem" "$BATS_TEST_TMPDIR/fifo.mem" /dev/zero; do
		uri=$(node bad vm1 1 "$VMMAC" "${PCI[0]}" "$bad" "$BAT1")
		run timeout 20 "$CLAT_LOAD" libvirt reconcile "$PF" --connect "$uri"
		assert_failure 1
		assert_output --partial "domain vm1: <clat:guest> mem=$bad refused; fn 1 gets no guest tables"
		assert_output --regexp "failed to open guest memory $bad: it is a (symlink|FIFO|character device)"
		assert_equal "$(fn_field 1 .bat_gpa)" 0
		# The domain's own VF still gets its MAC.
		assert_equal "$(fn_field 1 '.macs[0].mac')" "$VMMAC"
	done
	# Attached tables whose domain now names a refused file: another owner, dropped.
	uri=$(node good vm1 1 "$VMMAC" "${PCI[0]}" "$MEM1" "$BAT1")
	reconcile --connect "$uri" >/dev/null
	assert_equal "$(fn_field 1 .bat_gpa)" "$BAT1"
	uri=$(node bad vm1 1 "$VMMAC" "${PCI[0]}" "$BATS_TEST_TMPDIR/link.mem" "$BAT1")
	run --separate-stderr reconcile --connect "$uri" --json
	assert_failure 1
	assert_equal "$(jq -c '[.actions[] | [.action, .fn, .reason, .ok]]' <<<"$output")" \
		'[["detach",1,"its domain'"'"'s guest memory file is refused",true]]'
	assert_equal "$(fn_field 1 .bat_gpa)" 0
}

@test "reconcile: a guest that broke its BAT loses its fn to the next domain; its file is never written again" {
	local uri old new mac2=52:54:00:00:00:22
	uri=$(node a vm1 1 "$VMMAC" "${PCI[0]}" "$MEM1" "$BAT1")
	reconcile --connect "$uri" >/dev/null
	flows "$VMMAC" 40 20000
	assert_equal "$(ctx_json 1 | jq '.contexts | length')" 40
	# vm1 breaks its BAT, then vm2 gets the same VF.
	dd if="$MEM1" of="$BATS_TEST_TMPDIR/magic" bs=1 skip="$BAT1" count=4 status=none
	dd if=/dev/zero of="$MEM1" bs=1 seek="$BAT1" count=4 conv=notrunc status=none
	uri=$(node b vm2 1 "$mac2" "${PCI[0]}" "$MEM2" "$BAT2")
	run --separate-stderr reconcile --connect "$uri" --json
	assert_success
	assert_equal "$(jq -c '[.actions[] | [.action, .fn, .ok]]' <<<"$output")" \
		'[["detach",1,true],["set-mac",1,true],["attach",1,true]]'
	assert_equal "$(jq -c '[.actions[0].reason, .actions[0].forced]' <<<"$output")" \
		'["another guest memory file owns it",true]'
	[[ "$stderr" == *"warning: fn 1: contexts were NOT written back to guest memory $MEM1"* ]]
	assert_equal "$(fn_field 1 .bat_gpa)" "$BAT2"
	assert_equal "$(guests_bat 1)" "$BAT2"
	# vm2's flows land in vm2's shadow; vm1 repairs its BAT; a sync writes vm2's file only.
	flows "$mac2" 30 40000
	assert_equal "$(ctx_json 1 | jq '.contexts | length')" 30
	dd if="$BATS_TEST_TMPDIR/magic" of="$MEM1" bs=1 seek="$BAT1" conv=notrunc status=none
	old=$(sum "$MEM1")
	new=$(sum "$MEM2")
	run "$CLAT_LOAD" guest sync "$PF" --fn 1
	assert_success
	assert_output --partial "synced 30 contexts"
	assert_equal "$(sum "$MEM1")" "$old"
	[ "$(sum "$MEM2")" != "$new" ]
	run reconcile --connect "$uri"
	assert_output --partial "nothing to do"
	assert_equal "$(sum "$MEM1")" "$old"
}

@test "reconcile: an ethernet interface on a fn's port (a tap a VMM opens) selects that fn" {
	local file=$BATS_TEST_TMPDIR/port.xml
	port_xml vm1 1 "$VMMAC" "${VM_REP[1]}" "$MEM1" "$BAT1" >"$file.dom"
	grep -q "type='ethernet'" "$file.dom"
	node_xml "$file" "$file.dom"
	run --separate-stderr reconcile --connect "test://$file" --json
	assert_success
	assert_equal "$(jq -c '[.actions[] | [.action, .fn, .port, .ok]]' <<<"$output")" \
		"[[\"set-mac\",2,\"${VM_REP[1]}\",true],[\"attach\",2,\"${VM_REP[1]}\",true]]"
	assert_equal "$(fn_field 2 .bat_gpa)" "$BAT1"
	assert_equal "$(fn_field 2 '.macs[0].mac')" "$VMMAC"
	assert_equal "$(fn_field 1 .bat_gpa)" 0
	# The hook reads it the same way.
	run "$CLAT_LOAD" libvirt hook-parse "$PF" <"$file.dom"
	assert_success
	assert_equal "$(jq -c '[.fns[] | [.fn, .tables, .migrating]]' <<<"$output")" '[[2,"same",false]]'
	# A tap that is no fn's port is not ours.
	port_xml vm1 1 "$VMMAC" lo "$MEM1" "$BAT1" >"$file.dom"
	node_xml "$file" "$file.dom"
	run --separate-stderr reconcile --connect "test://$file" --json
	assert_success
	assert_equal "$(jq -c '[.actions[] | [.action, .fn, .reason]]' <<<"$output")" \
		'[["detach",2,"no running domain uses it"]]'
}

@test "reconcile and watch: a paused domain gets no MAC and no tables until it runs; its RAM file may not exist yet" {
	local uri file=$BATS_TEST_TMPDIR/node.xml arriving=$BATS_TEST_TMPDIR/arriving.mem mac1
	mac1=$(fn_field 1 '.macs[0].mac')
	# The destination of a migration before its RAM arrived: paused, file absent.
	uri=$(node in vm1 3 "$VMMAC" "${PCI[0]}" "$arriving" "$BAT1")
	run --separate-stderr reconcile --connect "$uri" --json
	assert_success
	assert_equal "$(jq -c '.actions' <<<"$output")" '[]'
	[[ "$stderr" == *"domain vm1: it is paused; its functions are left alone until it runs"* ]]
	assert_equal "$(fn_field 1 .bat_gpa)" 0
	assert_equal "$(fn_field 1 '.macs[0].mac')" "$mac1"

	# Paused with its RAM in place: still nothing; resumed: MAC and tables.
	domain_xml vm1 3 "$VMMAC" "${PCI[0]}" "$MEM1" "$BAT1" >"$file.dom"
	node_xml "$file" "$file.dom"
	run reconcile --connect "test://$file"
	assert_success
	assert_line "reconcile $PF: 1 running domain, nothing to do"
	assert_equal "$(fn_field 1 .bat_gpa)" 0
	run timeout 30 "$CLAT_LOAD" libvirt watch "$PF" --connect "test://$file" --interval 0 \
		--resync-ms 0 --test-actions resume:vm1,suspend:vm1
	assert_success
	assert_line "watch: domain vm1: RESUMED_UNPAUSED"
	assert_line --regexp "^set-mac fn 1 \(vm1\): $VMMAC"
	assert_line --partial "attach  fn 1 (vm1): $MEM1"
	# Paused again: the tables stay (no flush, no detach).
	assert_line "watch: domain vm1: SUSPENDED_PAUSED"
	assert_equal "$(grep -c '^detach' <<<"$output")" 0
	assert_equal "$(fn_field 1 .bat_gpa)" "$BAT1"
	assert_equal "$(fn_field 1 '.macs[0].mac')" "$VMMAC"
}

@test "reconcile, watch and the hook leave a fn alone while a migration orchestrator holds its lock" {
	local uri gone xml=$BATS_TEST_TMPDIR/vm1.dom lock=/run/clat/migrate-$PF-fn1.lock _
	export CLAT_PF=$PF CLAT_LOAD=$CLAT_LOAD CLAT_DEFAULTS=/nonexistent
	uri=$(node before vm1 1 "$VMMAC" "${PCI[0]}" "$MEM1" "$BAT1")
	gone=$(node gone none)
	domain_xml vm1 1 "$VMMAC" "${PCI[0]}" "$MEM1" "$BAT1" >"$xml"
	reconcile --connect "$uri" >/dev/null
	assert_equal "$(fn_field 1 .bat_gpa)" "$BAT1"
	# What 'clat-load libvirt migrate' holds from its first round to its release.
	mkdir -p /run/clat
	bg "$BATS_TEST_TMPDIR/lock.log" flock -x "$lock" sleep 60
	for _ in $(seq 50); do
		[ "$("$CLAT_LOAD" libvirt hook-parse "$PF" <"$xml" | jq .fns[0].migrating)" = true ] && break
		sleep 0.1
	done
	run "$CLAT_LOAD" libvirt hook-parse "$PF" <"$xml"
	assert_equal "$(jq .fns[0].migrating <<<"$output")" true
	# The domain stopped here (it migrated): neither a flush nor a detach.
	run --separate-stderr reconcile --connect "$gone" --json
	assert_success
	[[ "$stderr" == *"fn 1 is being migrated by an orchestrator: left alone until it releases it"* ]]
	assert_equal "$(jq -c '.actions' <<<"$output")" '[]'
	run "$HOOK" vm1 stopped end - <"$xml"
	assert_success
	assert_output --partial "fn 1 is being migrated by an orchestrator; left alone"
	run timeout 30 "$CLAT_LOAD" libvirt watch "$PF" --connect "$uri" --interval 0 --resync-ms 0 \
		--test-actions destroy:vm1
	assert_success
	assert_line "watch: domain vm1: STOPPED_DESTROYED"
	assert_equal "$(grep -c '^detach' <<<"$output")" 0
	assert_equal "$(fn_field 1 .bat_gpa)" "$BAT1"
	# The orchestrator is gone (even killed): the fn is an ordinary one again.
	kill -- "-$BG_PID"
	for _ in $(seq 50); do
		[ "$("$CLAT_LOAD" libvirt hook-parse "$PF" <"$xml" | jq .fns[0].migrating)" = false ] && break
		sleep 0.1
	done
	run reconcile --connect "$gone"
	assert_success
	assert_line --partial "detach  fn 1: $MEM1"
	assert_equal "$(fn_field 1 .bat_gpa)" 0
}

@test "libvirt migrate: bad input, a busy fn and a failed libvirt job leave the fn serving here; the destination discards" {
	local uri sock=$BATS_TEST_TMPDIR/ch.sock memd=$BATS_TEST_TMPDIR/dst.mem lock=/run/clat/migrate-$PF-fn1.lock _
	uri=$(node m vm1 1 "$VMMAC" "${PCI[0]}" "$MEM1" "$BAT1")
	reconcile --connect "$uri" >/dev/null
	flows "$VMMAC" 20 20000
	run "$CLAT_LOAD" libvirt migrate vm1 "$uri" --connect "$uri" --channel "unix:$sock"
	assert_failure 2
	assert_output --partial "libvirt migrate: --pf is required"
	run "$CLAT_LOAD" libvirt migrate nosuch "$uri" --connect "$uri" --pf "$PF" --channel "unix:$sock"
	assert_failure 1
	assert_output --partial "failed to find domain nosuch"
	# Nobody listens on the channel: nothing starts, fn 1 serves on.
	run "$CLAT_LOAD" libvirt migrate vm1 "$uri" --connect "$uri" --pf "$PF" --channel "unix:$sock"
	assert_failure 1
	assert_output --partial "failed to start the device migration of fn 1 on $PF"
	assert_equal "$(fn_field 1 .state)" active
	# Another orchestrator holds fn 1.
	mkdir -p /run/clat
	bg "$BATS_TEST_TMPDIR/lock.log" flock -x "$lock" sleep 60
	for _ in $(seq 50); do
		[ "$("$CLAT_LOAD" libvirt hook-parse "$PF" <"${uri#test://}.dom" | jq .fns[0].migrating)" = true ] && break
		sleep 0.1
	done
	run "$CLAT_LOAD" libvirt migrate vm1 "$uri" --connect "$uri" --pf "$PF" --channel "unix:$sock"
	assert_failure 1
	assert_output --partial "failed to take the migration lock of fn 1 on $PF: another migration of it is running"
	kill -- "-$BG_PID"
	# The destination listens (fn 2 of the same PF plays host B); libvirt's
	# job fails (the test driver cannot migrate): the device aborts, the
	# destination discards everything, fn 1 serves here with its contexts.
	cp "$MEM1" "$memd"
	"$CLAT_LOAD" migrate-in "$PF" --fn 2 --mac "$VMMAC" --mem "$memd" --listen "unix:$sock" \
		</dev/null >/dev/null 2>"$BATS_TEST_TMPDIR/in.log" 3>&- &
	local in_pid=$! rc=0
	for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
	run --separate-stderr "$CLAT_LOAD" libvirt migrate vm1 "$uri" --connect "$uri" --pf "$PF" \
		--channel "unix:$sock" --json
	assert_failure 1
	[[ "$stderr" == *"libvirt migration of vm1 failed"* ]]
	[[ "$stderr" == *"fn serving again on this host"* ]]
	assert_equal "$(jq .ok <<<"$output")" false
	[ "$(jq .pre_copy.first.blocks <<<"$output")" -gt 0 ]
	wait "$in_pid" || rc=$?
	assert_equal "$rc" 1
	run cat "$BATS_TEST_TMPDIR/in.log"
	assert_output --partial "discarded"
	assert_equal "$(fn_field 1 .state)" active
	assert_equal "$(fn_field 1 .bat_gpa)" "$BAT1"
	assert_equal "$(ctx_json 1 | jq '.contexts | length')" 20
	assert_equal "$(fn_field 2 .bat_gpa)" 0
	# Its lock went with it.
	assert_equal "$("$CLAT_LOAD" libvirt hook-parse "$PF" <"${uri#test://}.dom" | jq .fns[0].migrating)" false
}
