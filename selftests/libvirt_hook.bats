#!/usr/bin/env bats
# The libvirt qemu hook script (scripts/libvirt-qemu-hook) as libvirtd runs
# it: domain XML on stdin for each lifecycle step, over the libvirt
# test-driver fixture of lib/lvtest.bash.

load lib/common
load lib/lvtest
bats_require_minimum_version 1.5.0

@test "hook: started attaches and sets the MAC, stopped detaches, migrate prints nothing" {
	local xml=$BATS_TEST_TMPDIR/vm1.dom
	domain_xml vm1 1 "$VMMAC" "${PCI[0]}" "$MEM1" "$BAT1" >"$xml"
	export CLAT_PF=$PF CLAT_LOAD=$CLAT_LOAD CLAT_DEFAULTS=/nonexistent

	run "$CLAT_LOAD" libvirt hook-parse "$PF" <"$xml"
	assert_success
	# One record for the domain, one line.
	assert_equal "${#lines[@]}" 1
	assert_equal "$(jq -c '[.domain, .mem, .bat_gpa]' <<<"$output")" \
		"[\"vm1\",\"$MEM1\",\"$(printf '0x%x' "$BAT1")\"]"
	assert_equal "$(jq -c '.fns' <<<"$output")" \
		"[{\"fn\":1,\"mac\":\"$VMMAC\",\"vlan\":0,\"ifindex\":$(fn_field 1 .ifindex),\"tables\":\"none\",\"migrating\":false}]"

	# At prepare and start QEMU and its RAM do not exist yet: nothing happens.
	for op in prepare start; do
		run "$HOOK" vm1 "$op" begin - <"$xml"
		assert_success
		assert_output ""
		assert_equal "$(fn_field 1 .bat_gpa)" 0
	done
	run "$HOOK" vm1 started begin - <"$xml"
	assert_success
	assert_equal "$(fn_field 1 .bat_gpa)" "$BAT1"
	run "$HOOK" vm1 started begin - <"$xml"
	assert_success
	assert_output --partial "already has these guest tables attached; nothing to do"
	assert_equal "$(fn_field 1 '.macs[0].mac')" "$VMMAC"
	[ "$(fn_field 1 .pool_contexts)" -gt 0 ]
	run ctx_json 1
	assert_success

	run "$HOOK" vm1 migrate begin - <"$xml"
	assert_success
	assert_output ""

	run "$HOOK" vm1 stopped end - <"$xml"
	assert_success
	run "$HOOK" vm1 release end - <"$xml"
	assert_success
	assert_output --partial "no guest tables attached; nothing to do"
	assert_equal "$(fn_field 1 .bat_gpa)" 0
	assert_equal "$(fn_field 1 .pool_contexts)" 0
	# A reconcile would now find the MAC as the hook left it.
	assert_equal "$(fn_field 1 '.macs[0].mac')" "$VMMAC"
}

@test "hook: no metadata, foreign VFs and bad XML" {
	local xml=$BATS_TEST_TMPDIR/vm1.dom
	export CLAT_PF=$PF CLAT_LOAD=$CLAT_LOAD CLAT_DEFAULTS=/nonexistent

	domain_xml vm1 1 "$VMMAC" "${PCI[0]}" "$MEM1" "$BAT1" nometa >"$xml"
	run "$HOOK" vm1 started begin - <"$xml"
	assert_success
	assert_output --partial "fn 1: no clat metadata in the domain; no guest tables"
	assert_equal "$(fn_field 1 '.macs[0].mac')" "$VMMAC"
	assert_equal "$(fn_field 1 .bat_gpa)" 0

	domain_xml vm1 1 "$VMMAC" 0000:99:1f.7 "$MEM1" "$BAT1" >"$xml"
	run "$HOOK" vm1 started begin - <"$xml"
	assert_success
	assert_output --partial "nothing to do"

	run "$HOOK" vm1 started begin - <<<"<domain><name>x</name"
	assert_failure 1
	assert_output --partial "clat-load: failed to parse domain XML"
	assert_output --partial "clat-hook: vm1 started begin: failed to read the domain XML"

	domain_xml vm1 1 "$VMMAC" "${PCI[0]}" "$MEM1" 0x0 >"$xml"
	run "$HOOK" vm1 started begin - <"$xml"
	assert_failure 1
	assert_output --partial 'needs bat-gpa="0x..."'

	CLAT_PF= run "$HOOK" vm1 started begin - <"$xml"
	assert_success
	assert_output --partial "CLAT_PF is not set"
}

@test "hook and reconcile: a newline in mem= cannot forge a record for another fn" {
	local xml=$BATS_TEST_TMPDIR/evil.dom uri mac2 forged
	export CLAT_PF=$PF CLAT_LOAD=$CLAT_LOAD CLAT_DEFAULTS=/nonexistent
	mac2=$(fn_field 2 '.macs[0].mac')
	# What the old line format would have read as fn 2's record.
	forged="2 02:66:66:66:66:66 0 $(fn_field 2 .ifindex) - -"
	domain_xml vm1 1 "$VMMAC" "${PCI[0]}" @EVIL@ "$BAT1" |
		sed "s|@EVIL@|$MEM1\&#10;$forged|" >"$xml"
	grep -q "&#10;$forged" "$xml"

	run --separate-stderr "$CLAT_LOAD" libvirt hook-parse "$PF" <"$xml"
	assert_failure 1
	assert_output ""
	[[ "$stderr" == *"<guest mem=...> holds a control character or whitespace (refused)"* ]]
	[[ "$stderr" == *"domain vm1: refused"* ]]

	run "$HOOK" vm1 started begin - <"$xml"
	assert_failure 1
	assert_output --partial "failed to read the domain XML"
	run "$HOOK" vm1 stopped end - <"$xml"
	assert_failure 1
	assert_equal "$(fn_field 2 '.macs[0].mac')" "$mac2"
	assert_equal "$(fn_field 1 .bat_gpa)" 0
	assert_equal "$(fn_field 2 .bat_gpa)" 0

	uri=$(node evil vm1 1 "$VMMAC" "${PCI[0]}" /x "$BAT1")
	sed -i "s|mem='/x'|mem='$MEM1\&#10;$forged'|" "${uri#test://}"
	run --separate-stderr reconcile --connect "$uri" --json
	assert_failure 1
	[[ "$stderr" == *"holds a control character or whitespace (refused)"* ]]
	assert_equal "$(fn_field 2 '.macs[0].mac')" "$mac2"
	assert_equal "$(fn_field 1 .bat_gpa)" 0
	assert_equal "$(fn_field 2 .bat_gpa)" 0
	assert_equal "$(jq -c '[.actions[] | select(.fn == 2)]' <<<"$output")" '[]'
}

@test "hook: a fn that still holds another guest's tables is dropped (forced) before the new domain gets it" {
	local xml1=$BATS_TEST_TMPDIR/vm1.dom xml2=$BATS_TEST_TMPDIR/vm2.dom old
	export CLAT_PF=$PF CLAT_LOAD=$CLAT_LOAD CLAT_DEFAULTS=/nonexistent
	domain_xml vm1 1 "$VMMAC" "${PCI[0]}" "$MEM1" "$BAT1" >"$xml1"
	domain_xml vm2 1 52:54:00:00:00:22 "${PCI[0]}" "$MEM2" "$BAT2" >"$xml2"
	"$HOOK" vm1 started begin - <"$xml1"
	assert_equal "$(fn_field 1 .bat_gpa)" "$BAT1"
	flows "$VMMAC" 20 20000
	# vm1 breaks its BAT and its stop hook never ran (or failed).
	dd if=/dev/zero of="$MEM1" bs=1 seek="$BAT1" count=4 conv=notrunc status=none
	run "$CLAT_LOAD" libvirt hook-parse "$PF" <"$xml2"
	assert_success
	assert_equal "$(jq -r '.fns[0].tables' <<<"$output")" other
	# vm2's stop hook leaves vm1's tables alone; its start drops them first.
	run "$HOOK" vm2 stopped end - <"$xml2"
	assert_success
	assert_output --partial "fn 1 holds another guest's tables; left alone"
	assert_equal "$(fn_field 1 .bat_gpa)" "$BAT1"
	old=$(sum "$MEM1")
	run "$HOOK" vm2 started begin - <"$xml2"
	assert_success
	assert_output --partial "fn 1 holds another guest's tables; dropping them first"
	assert_output --partial "contexts were NOT written back to guest memory $MEM1"
	assert_equal "$(fn_field 1 .bat_gpa)" "$BAT2"
	assert_equal "$(fn_field 1 '.macs[0].mac')" 52:54:00:00:00:22
	assert_equal "$(sum "$MEM1")" "$old"
	run "$HOOK" vm2 release end - <"$xml2"
	assert_success
	assert_equal "$(fn_field 1 .bat_gpa)" 0
}

@test "hook: an incoming domain (migrate or restore) gets nothing at started; its next boot does" {
	local xml=$BATS_TEST_TMPDIR/vm1.dom mac1 op
	export CLAT_PF=$PF CLAT_LOAD=$CLAT_LOAD CLAT_DEFAULTS=/nonexistent
	domain_xml vm1 1 "$VMMAC" "${PCI[0]}" "$MEM1" "$BAT1" >"$xml"
	mac1=$(fn_field 1 '.macs[0].mac')
	for op in migrate restore; do
		run "$HOOK" vm1 "$op" begin - <"$xml"
		assert_success
		assert_output ""
		[ -e "$CLAT_HOOK_STATE/vm1.incoming" ]
		run "$HOOK" vm1 started begin - <"$xml"
		assert_success
		assert_output --partial "its RAM is still arriving (incoming migration or restore); no tables, no MAC"
		assert_equal "$(fn_field 1 .bat_gpa)" 0
		assert_equal "$(fn_field 1 '.macs[0].mac')" "$mac1"
		# A failed incoming migration stops it; the marker goes with it.
		run "$HOOK" vm1 stopped end - <"$xml"
		assert_success
		run "$HOOK" vm1 release end - <"$xml"
		assert_success
		[ ! -e "$CLAT_HOOK_STATE/vm1.incoming" ]
	done
	run "$HOOK" vm1 started begin - <"$xml"
	assert_success
	assert_equal "$(fn_field 1 .bat_gpa)" "$BAT1"
	assert_equal "$(fn_field 1 '.macs[0].mac')" "$VMMAC"
	# A name that could leave the state directory is never used as a path.
	run "$HOOK" ../vm1 migrate begin - <"$xml"
	assert_success
	run ls -A "$CLAT_HOOK_STATE"
	assert_output ""
}
