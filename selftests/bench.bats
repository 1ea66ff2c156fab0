#!/usr/bin/env bats
# Smoke test of `make bench QUICK=1`: the reduced run produces every figure,
# table and plot.  It asserts that figures exist and are positive numbers,
# never what they are: times are reported, not tested.

load lib/common

setup_file() {
	export BENCH_DIR
	BENCH_DIR=$(mktemp -d /tmp/clat-bench-smoke.XXXXXX)
	BENCH_OUT=$BENCH_DIR QUICK=1 "$ROOT/bench/run.sh" >"$BENCH_DIR/stdout" 2>"$BENCH_DIR/stderr"
	echo $? >"$BENCH_DIR/rc"
}

teardown_file() {
	rm -rf "$BENCH_DIR"
}

R() { jq -e "$@" "$BENCH_DIR/results.json"; }

@test "bench QUICK=1 completes and writes results.json, tables and plots" {
	run cat "$BENCH_DIR/rc"
	assert_output 0
	for f in results.json tables.md pkt.png migration.png live.png; do
		[ -s "$BENCH_DIR/$f" ] || fail "missing $f"
	done
	run file -b "$BENCH_DIR/pkt.png"
	assert_output --partial PNG
}

@test "bench: every per-packet figure (floor, redirect, hot flow, peers, working sets, 90% load)" {
	R '.pkt.floor_ns > 0 and .pkt.mac_redirect_ns > 0'
	R '.pkt.cases | map(select(.design == "mac_redirect" and .ns.median > 0)) | length == 1'
	R '[.pkt.cases[] | select(.design == "clat" and .conns == 1)] | length == 1'
	for d in clat lru literal; do
		R --arg d "$d" '[.pkt.cases[] | select(.design == $d and .conns > 1)] | length >= 2'
	done
	R '[.pkt.cases[] | select(.design != "floor" and .design != "driver") |
		(.ns.median > 0 and .mpps > 0 and .x_floor > 0)] | all'
	R '[.pkt.cases[] | select(.design == "clat" or .design == "literal") | .x_lru > 0] | all'
	R '[.pkt.cases[] | select(.conns > 1 and .segments == 1) | .bytes_per_conn > 0] | all'
	R '[.pkt.cases[] | select(.design == "lru" and .conns > 1) | .bytes_per_entry > 0] | all'
	R '.pkt.verified_insns | (.clat_rx > 0 and .clat_tx > 0)'
}

@test "bench: every clat frame finds its context, up to 90% load" {
	# Correctness, not speed: after the warm-up every connection has a
	# context, and a pass over all of them finds each one.
	R '[.pkt.cases[] | select(.design == "clat") |
		(.hit_ratio == 1 and .no_ctx_flows == 0 and .ctx_full == 0 and .ctx_busy == 0)] | all'
	R '[.pkt.cases[] | select(.design == "clat" and .cap_pct == 110 and .conns > 1 and .load > 0.9)] | length >= 1'
	R '[.pkt.cases[] | select(.design == "lru" or .design == "literal") | .hit_ratio == 1] | all'
}

@test "bench: the cost of capacity segments, each lookup finding its context in the oldest" {
	R '[.pkt.cases[] | select(.design == "clat" and .segments > 1)] | length >= 2'
	# Found through every newer segment: no frame missed its context.
	R '[.pkt.cases[] | select(.design == "clat" and .segments > 1) |
		(.hit_ratio == 1 and .no_ctx_flows == 0 and .ns.median > 0 and .capacity > 4096)] | all'
	run grep -c '^| 16K | [2-4] |' "$BENCH_DIR/tables.md"
	assert [ "$output" -ge 2 ]
}

@test "bench: every live-path figure (clat with and without contexts, bridge, macvlan)" {
	for k in clat clat_ctx bridge macvlan; do
		R --arg k "$k" '.live[$k] | (.one_vf.mpps.median > 0 and .all_vfs.mpps.median > 0)'
	done
	R '.live.clat_ctx_hits > 0'
}

@test "bench: every migration and rebuild figure" {
	R '.migration.sizes | length >= 2'
	R '[.migration.sizes[] | (.switchover_ms.median > 0 and .total_ms.median > 0 and
		.copy_one_ms.median > 0 and .copy_batch_ms.median > 0 and
		.stop_copy_ms.median > 0 and .reload_ms.median > 0 and
		.rebuild_ctx_per_s.median > 0 and .commit_ms.median > 0)] | all'
	# Every live context moves: as many on the destination as were opened.
	R '[.migration.sizes[] | .contexts == .conns] | all'
}

@test "bench: tables name every target and nothing is left behind" {
	local tag
	run grep -c '^| .*| \(met\|\*\*missed\*\*.*\)\(, \(met\|\*\*missed\*\*.*\)\)\? |$' "$BENCH_DIR/tables.md"
	assert [ "$output" -ge 10 ]
	tag=$(grep -o 'names cb[0-9a-f]*' "$BENCH_DIR/stderr" | cut -d' ' -f2)
	[ -n "$tag" ] || fail "live.sh did not report its names"
	run ip netns list
	refute_output --partial "$tag"
	run ip -o link show
	refute_output --partial "$tag"
	[ ! -e "/sys/fs/bpf/clat/${tag}p" ] || fail "pins left behind"
	run ls /tmp
	refute_output --partial clat-bench-live
	refute_output --partial clat-bench-pkt
}
