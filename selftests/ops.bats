#!/usr/bin/env bats
# Ops: `clat-load metrics` (Prometheus text checked by prometheus_client's
# own parser, JSON, the --listen HTTP server and its signals), the systemd
# units and the man pages `make install` puts in place.

load lib/common

# The Debian interpreter: python3-prometheus-client installs for it.
PROMPARSE="/usr/bin/python3 $ROOT/selftests/lib/promparse.py"

setup() {
	PF=
	INST=
}

teardown() {
	reap
	topo_destroy
	[ -z "$INST" ] || rm -rf "$INST"
}

# sample NAME LABELS: the value of one parsed sample (labels sorted, as
# promparse.py prints them), or nothing.
sample() {
	awk -v k="$1{$2}" '$1 == k { print $2 }' <<<"$PARSED"
}

# free_port: a TCP port nobody listens on right now.
free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT: until something listens on 127.0.0.1:PORT (host netns).
wait_port() {
	local _
	for _ in $(seq 50); do
		ss -ltnH "sport = :$1" | grep -q . && return 0
		sleep 0.1
	done
	return 1
}

@test "metrics: prometheus_client parses it; counters, table occupancy, pool and insns are right" {
	topo_create 2
	attach
	MEM=$BATS_TEST_TMPDIR/guest.mem
	guest_init "$MEM" conn:ctx=256,block=4096,services=2000
	"$CLAT_LOAD" guest attach "$PF" --fn 1 --mem "$MEM" --bat-gpa "$BAT" >/dev/null
	wire ping -c 1 -W 2 "${VM_IP[0]}" >/dev/null # resolve ARP both ways
	local before i
	before=$(counter 1 rx_packets)
	for ((i = 0; i < 7; i++)); do
		wire socat -u - "UDP4-SENDTO:${VM_IP[0]}:5000,sourceport=6000" <<<x
	done

	run "$CLAT_LOAD" metrics "$PF"
	assert_success
	local text=$output
	run $PROMPARSE <<<"$text"
	assert_success
	PARSED=$output
	# What was sent, and the same figure stats reports.
	assert_equal "$(sample clat_rx_packets_total "fn=\"1\",pf=\"$PF\"")" $((before + 7))
	assert_equal "$(sample clat_rx_packets_total "fn=\"1\",pf=\"$PF\"")" "$(counter 1 rx_packets)"
	assert_line "# FAMILY clat_rx_packets counter"
	assert_line "# FAMILY clat_drops counter"
	assert_line "# FAMILY clat_ctx_live gauge"
	# Every counter of enum clat_stat is there, once, for fn 1 and for no fn.
	local nstats
	nstats=$("$CLAT_LOAD" stats "$PF" --json | jq '.totals | length')
	assert_equal "$(grep -v '^#' <<<"$PARSED" | grep -c "_total{fn=\"1\",pf=\"$PF\"")" "$nstats"
	assert_equal "$(grep -v '^#' <<<"$PARSED" | grep -c "_total{fn=\"none\",pf=\"$PF\"")" "$nstats"
	assert_equal "$(sample clat_drops_total "fn=\"1\",pf=\"$PF\",reason=\"spoof\"")" 0
	# One UDP flow: one LIVE context of the conn table.
	assert_equal "$(sample clat_ctx_live "fn=\"1\",pf=\"$PF\",type=\"conn\",type_index=\"0\"")" 1
	assert_equal "$(ctx_json 1 | jq '.contexts | length')" 1
	local cap
	cap=$(sample clat_ctx_capacity "fn=\"1\",pf=\"$PF\",type=\"conn\",type_index=\"0\"")
	[ "$cap" -ge 2000 ]
	assert_equal "$(sample clat_ctx_full_total "fn=\"1\",pf=\"$PF\"")" 0
	# fn 2 has no guest tables: no occupancy series.
	[ -z "$(sample clat_ctx_live "fn=\"2\",pf=\"$PF\",type=\"conn\",type_index=\"0\"")" ]
	# Pool and verified insns agree with status.
	local st
	st=$("$CLAT_LOAD" status "$PF" --json)
	assert_equal "$(sample clat_pool_contexts "pf=\"$PF\"")" "$(jq .pool.contexts <<<"$st")"
	assert_equal "$(sample clat_pool_used_contexts "pf=\"$PF\"")" "$(jq .pool.used <<<"$st")"
	assert_equal "$(sample clat_pool_free_contexts "pf=\"$PF\"")" "$(jq .pool.free <<<"$st")"
	assert_equal "$(sample clat_pool_staged_contexts "pf=\"$PF\"")" 0
	assert_equal "$(sample clat_pool_fn_contexts "fn=\"1\",pf=\"$PF\"")" \
		"$(jq '.fns[] | select(.fn == 1) | .pool_contexts' <<<"$st")"
	local rx_id rx_insns
	rx_id=$(jq '.programs[] | select(.prog == "clat_rx") | .prog_id' <<<"$st")
	rx_insns=$(jq '.programs[] | select(.prog == "clat_rx") | .verified_insns' <<<"$st")
	[ "$rx_insns" -gt 0 ]
	assert_equal "$(sample clat_prog_verified_insns "dev=\"$PF\",pf=\"$PF\",prog=\"clat_rx\",prog_id=\"$rx_id\"")" "$rx_insns"
	assert_equal "$(grep -c '^clat_prog_verified_insns{' <<<"$PARSED")" "$(jq '.programs | length' <<<"$st")"

	# --json: the same data.
	run "$CLAT_LOAD" metrics "$PF" --json
	assert_success
	assert_equal "$(jq '.fns[] | select(.fn == 1) | .counters.rx_packets' <<<"$output")" $((before + 7))
	assert_equal "$(jq '.fns[] | select(.fn == 1) | .types[0].live' <<<"$output")" 1
	assert_equal "$(jq -r '.fns[] | select(.fn == 1) | .types[0].type' <<<"$output")" conn
	assert_equal "$(jq '.pool.contexts' <<<"$output")" "$(jq .pool.contexts <<<"$st")"
	assert_equal "$(jq '.no_fn | length' <<<"$output")" "$nstats"
	assert_equal "$(jq '[.programs[] | select(.prog == "clat_rx")][0].verified_insns' <<<"$output")" "$rx_insns"

	# Not attached: a clear error, exit 1.
	run "$CLAT_LOAD" metrics nosuchpf0
	assert_equal "$status" 1
	assert_output --partial "clat is not attached to nosuchpf0"
}

@test "metrics --listen serves GET /metrics, 404 elsewhere, exits 0 on SIGTERM and SIGINT" {
	topo_create 1
	attach
	local port url rc sig
	run "$CLAT_LOAD" metrics "$PF" --listen 127.0.0.1
	assert_equal "$status" 2
	assert_output --partial "invalid --listen '127.0.0.1'"
	for bad in 127.0.0.1:70000 127.0.0.1:0 localhost:9435 1.2.3.4.5:80 "[::1]9435" 127.0.0.1:80x; do
		run "$CLAT_LOAD" metrics "$PF" --listen "$bad"
		assert_equal "$status" 2
		assert_output --partial "invalid --listen"
	done
	run "$CLAT_LOAD" metrics nosuchpf0 --listen 127.0.0.1:9
	assert_equal "$status" 1
	assert_output --partial "not attached"

	for sig in TERM INT; do
		port=$(free_port)
		url=http://127.0.0.1:$port
		bg "$BATS_TEST_TMPDIR/srv-$sig.log" "$CLAT_LOAD" metrics "$PF" --listen "127.0.0.1:$port"
		wait_port "$port"
		run curl -sS -f "$url/metrics"
		assert_success
		run $PROMPARSE <<<"$output"
		assert_success
		PARSED=$output
		[ -n "$(sample clat_rx_packets_total "fn=\"1\",pf=\"$PF\"")" ]
		[ -n "$(sample clat_pool_contexts "pf=\"$PF\"")" ]
		assert_equal "$(curl -sS -o /dev/null -w '%{http_code} %{content_type}' "$url/metrics")" \
			"200 text/plain; version=0.0.4; charset=utf-8"
		assert_equal "$(curl -sS -o /dev/null -w '%{http_code}' "$url/")" 404
		assert_equal "$(curl -sS -o /dev/null -w '%{http_code}' "$url/metricsx")" 404
		assert_equal "$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$url/metrics")" 405
		# Still serving after all that.
		curl -sS -f "$url/metrics?x=1" | grep -q '^clat_pool_contexts{'
		kill -"$sig" "$BG_PID"
		rc=0
		wait "$BG_PID" || rc=$?
		assert_equal "$rc" 0
		! ss -ltnH "sport = :$port" | grep -q .
	done
}
