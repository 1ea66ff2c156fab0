#!/usr/bin/env bash
# make bench: every benchmark in one run, side by side.  Writes
# $BENCH_OUT (default .output/bench)/results.json, tables.md and the PNG
# plots, and prints the tables.  QUICK=1 is the reduced smoke run;
# UPDATE_DOCS=1 also copies the tables and plots into docs/PERFORMANCE.md
# and docs/perf/; RENDER_ONLY=1 skips the measurements and renders the
# results.json already in $BENCH_OUT.  See docs/PERFORMANCE.md for the method.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${BENCH_OUT:-$ROOT/.output/bench}
BIN=${CLAT_BIN_DIR:-$ROOT/.output}/clat-bench
QUICK=${QUICK:-}

die() { echo "bench: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must be run as root (BPF, netns)"
[ -x "$BIN" ] || die "missing $BIN: run make first"
mkdir -p "$OUT" || die "failed to create $OUT"

# BPF run-time statistics add two clock reads per program run: keep them
# off while timing, and put back whatever was there.
stats_was=$(sysctl -n kernel.bpf_stats_enabled)
restore() { [ "$stats_was" = 0 ] || sysctl -qw kernel.bpf_stats_enabled="$stats_was"; }
trap restore EXIT
trap 'exit 130' INT TERM HUP
[ "$stats_was" = 0 ] || sysctl -qw kernel.bpf_stats_enabled=0 || die "failed to turn off kernel.bpf_stats_enabled"

if [ -n "$QUICK" ] && [ "$QUICK" != 0 ]; then
	q=--quick runs=3 mig_runs=3 vfs=2 frames=200000 live_runs=2 vm_runs=0
else
	q= runs=5 mig_runs=5 vfs=4 frames=2000000 live_runs=3 vm_runs=5
fi
start=$(date +%s)
if [ "${RENDER_ONLY:-0}" != 1 ]; then
load=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench: per-packet cost (BPF_PROG_TEST_RUN)" >&2
"$BIN" pkt $q --runs "$runs" >"$OUT/pkt.json" || die "per-packet benchmark failed"
echo "bench: migration and rebuild" >&2
"$BIN" mig $q --runs "$mig_runs" >"$OUT/mig.json" || die "migration benchmark failed"
echo "bench: live path" >&2
"$ROOT/bench/live.sh" "$vfs" "$frames" "$live_runs" >"$OUT/live.json" || die "live-path benchmark failed"
# A real VM (TCG) is minutes of boot and copy: not in the smoke run.
if [ -n "$q" ]; then
	echo '{"skipped": "QUICK run"}' >"$OUT/vmmig.json"
else
	echo "bench: migration downtime with a real VM" >&2
	"$ROOT/bench/vmmig.sh" "$vm_runs" >"$OUT/vmmig.json" || die "real-VM migration benchmark failed"
fi

jq -n --slurpfile pkt "$OUT/pkt.json" --slurpfile mig "$OUT/mig.json" \
	--slurpfile live "$OUT/live.json" --slurpfile vmmig "$OUT/vmmig.json" \
	--arg kernel "$(uname -r)" --arg cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')" \
	--argjson cpus "$(nproc)" --arg mem "$(free -g | awk '/^Mem/ {print $2 " GiB"}')" \
	--arg date "$(date -u +%Y-%m-%dT%H:%MZ)" --arg rev "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
	--arg load "$load" --argjson quick "$([ -n "$q" ] && echo true || echo false)" \
	--argjson secs "$(($(date +%s) - start))" \
	'{machine: {kernel: $kernel, cpu: $cpu, cpus: $cpus, memory: $mem, loadavg_at_start: $load},
	  date: $date, git: $rev, quick: $quick, seconds: $secs,
	  pkt: $pkt[0], migration: $mig[0], live: $live[0], vm_migration: $vmmig[0]}' >"$OUT/results.json" ||
	die "failed to write results.json"
fi
[ -s "$OUT/results.json" ] || die "no $OUT/results.json to render"

"$ROOT/bench/render.sh" "$OUT/results.json" >"$OUT/tables.md" || die "failed to render the tables"
"$ROOT/bench/plot.sh" "$OUT" || die "failed to draw the plots"
cat "$OUT/tables.md"
echo "bench: results in $OUT (results.json, tables.md, *.png), $(($(date +%s) - start)) s" >&2

if [ "${UPDATE_DOCS:-0}" = 1 ]; then
	doc=$ROOT/docs/PERFORMANCE.md
	mkdir -p "$ROOT/docs/perf" && cp "$OUT"/*.png "$ROOT/docs/perf/" || die "failed to copy the plots"
	# Replace what lies between the markers with the fresh tables.
	awk -v tables="$OUT/tables.md" '
		/<!-- bench:begin -->/ { print; while ((getline l < tables) > 0) print l; skip = 1; next }
		/<!-- bench:end -->/ { skip = 0 }
		!skip' "$doc" >"$doc.tmp" && mv "$doc.tmp" "$doc" || die "failed to update $doc"
	echo "bench: updated $doc and docs/perf/" >&2
fi
