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
	guest_topo attach
	# Static neighbours both ways: no ARP probe (as a loaded machine makes
	# when the entry goes stale) adds a frame to the counts compared below.
	wire ip neigh replace "${VM_IP[0]}" lladdr "${VM_MAC[0]}" nud permanent dev "$WIRE_PORT"
	ip netns exec "${VM_NS[0]}" ip neigh replace "$WIRE_IP" \
		lladdr "$(ip -n "$WIRE_NS" -j link show dev "$WIRE_PORT" | jq -r '.[0].address')" nud permanent dev eth0
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

# verify_units DIR: systemd's own checker on an instance of each template,
# in a scratch root holding the installed units and binary and systemd's
# stock targets (a unit's default dependencies); without systemd-analyze,
# an INI parse and the keys systemd needs.
verify_units() {
	local dir=$1 root=$BATS_TEST_TMPDIR/root u
	if ! command -v systemd-analyze >/dev/null; then
		echo "# no systemd-analyze: INI parse only" >&3
		/usr/bin/python3 - "$dir"/clat-* <<'PY'
import configparser, sys
for f in sys.argv[1:]:
    c = configparser.ConfigParser(strict=True, interpolation=None)
    c.optionxform = str
    c.read_file(open(f))
    assert c.get("Unit", "Description"), f
    kind = f.rsplit(".", 1)[1]
    if kind == "service":
        assert c.get("Service", "ExecStart").startswith("/"), f
    else:
        assert c.get("Timer", "OnUnitActiveSec"), f
PY
		return
	fi
	mkdir -p "$root/usr/bin" "$root/usr/lib/systemd/system"
	cp "$INST/usr/bin/clat-load" "$root/usr/bin/"
	cp "$dir"/clat-* /usr/lib/systemd/system/*.target "$root/usr/lib/systemd/system/"
	u=$root/usr/lib/systemd/system
	# --man=no: the pages are checked below, and are not in this root's MANPATH.
	run systemd-analyze verify --man=no --root="$root" \
		"$u/clat-watch@eth0.service" "$u/clat-gc@eth0.service" "$u/clat-gc@eth0.timer"
	assert_success
	assert_output "" # warnings (a misspelt key, a bad value) come with exit 0
	rm -rf "$root"
}

@test "make install puts units and man pages under DESTDIR/PREFIX; they verify and render" {
	INST=$(mktemp -d)
	make -s -C "$ROOT" install DESTDIR="$INST" PREFIX=/usr SANITIZE="${CLAT_SANITIZE:-}" >/dev/null
	local units=$INST/usr/lib/systemd/system man=$INST/usr/share/man/man8 u p c
	for u in clat-watch@.service clat-gc@.service clat-gc@.timer; do
		[ -f "$units/$u" ]
		! grep -q @BINDIR@ "$units/$u"
	done
	grep -qx 'ExecStart=/usr/bin/clat-load libvirt watch %i --connect qemu:///system' "$units/clat-watch@.service"
	grep -qx 'Restart=on-failure' "$units/clat-watch@.service"
	grep -qx 'ExecStart=/usr/bin/clat-load gc %i' "$units/clat-gc@.service"
	grep -qx 'OnUnitActiveSec=5min' "$units/clat-gc@.timer"
	[ -x "$INST/usr/bin/clat-load" ]
	verify_units "$units"

	for p in clat-load clat-guest vf-emu; do
		[ -f "$man/$p.8" ]
		run groff -man -Tutf8 -ww -z "$man/$p.8"
		assert_success
		assert_output ""
		run env MANWIDTH=80 man --warnings -l "$man/$p.8"
		assert_success
		assert_output --partial "EXIT STATUS"
		refute_output --partial "warning"
	done
	# Each page names every command its tool's --help lists.
	while read -r c; do
		c=${c% }
		sed 's/\\-/-/g; s/\\f[BIRP]//g' "$man/clat-load.8" | grep -q -- "^\.BI \"$c " ||
			{ echo "clat-load.8 lacks '$c'"; false; }
	done < <("$CLAT_LOAD" --help | sed -n 's/^  clat-load \([a-z-]*\( [a-z-]*\)\?\) [<[-].*/\1/p')
	while read -r c; do
		sed 's/\\-/-/g; s/\\f[BIRP]//g' "$man/clat-guest.8" | grep -q -- "^\.B \"$c " ||
			{ echo "clat-guest.8 lacks '$c'"; false; }
	done < <("$BIN/clat-guest" --help | sed -n 's/^  clat-guest \([a-z-]*\) .*/\1/p')
	while read -r c; do
		grep -q -- "^\.BI \"$c " "$man/vf-emu.8" || { echo "vf-emu.8 lacks '$c'"; false; }
	done < <("$VF_EMU" --help | sed -n 's/^  vf-emu \([a-z]*\) .*/\1/p')

	make -s -C "$ROOT" uninstall DESTDIR="$INST" PREFIX=/usr SANITIZE="${CLAT_SANITIZE:-}" >/dev/null
	[ -z "$(find "$INST" -type f)" ]
}
