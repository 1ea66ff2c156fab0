#!/usr/bin/env bash
# Draws the PNG plots of results.json with gnuplot: pkt.png (ns/packet vs
# connections), migration.png (switchover and register copy vs contexts),
# live.png (Mpps per path).  Usage: bench/plot.sh DIR (holding results.json)
set -eu
D=$1
R=$D/results.json
for d in clat lru literal; do
	jq -r --arg d "$d" '.pkt.cases[] | select(.design == $d and .conns > 1 and (.segments // 1) == 1 and (.cap_pct // 150) == 150) |
		"\(.conns) \(.ns.median) \(.ns.min) \(.ns.max)"' "$R" >"$D/pkt_$d.dat"
done
jq -r '.pkt.cases[] | select(.design == "clat" and .conns > 1 and (.segments // 1) == 1 and .cap_pct == 110) |
	"\(.conns) \(.ns.median) \(.ns.min) \(.ns.max)"' "$R" >"$D/pkt_clat90.dat"
jq -r '.migration.sizes[] | "\(.contexts) \(.switchover_ms.median) \(.total_ms.median) \(.copy_one_ms.median) \(.copy_batch_ms.median)"' \
	"$R" >"$D/migration.dat"
jq -r '.live as $l | ["clat", "clat_ctx", "bridge", "macvlan"][] as $k |
	"\"\($k)\" \($l[$k].one_vf.mpps.median) \($l[$k].all_vfs.mpps.median)"' "$R" >"$D/live.dat"
floor=$(jq '.pkt.floor_ns' "$R")
vfs=$(jq '.live.vfs' "$R")

gnuplot <<GP
set terminal pngcairo size 800,500 font ",10"
set grid
set key top left

set output "$D/pkt.png"
set title "Per-packet cost, random order over live connections (BPF\\\\_PROG\\\\_TEST\\\\_RUN)"
set logscale x 2
set xlabel "live connections"
set ylabel "ns per packet (median, min-max)"
set yrange [0:*]
plot "$D/pkt_clat.dat" using 1:2:3:4 with yerrorlines lw 2 title "clat (pool, capacity 1.5x)", \
     "$D/pkt_clat90.dat" using 1:2:3:4 with yerrorlines lw 2 title "clat (pool, 90% load)", \
     "$D/pkt_lru.dat" using 1:2:3:4 with yerrorlines lw 2 title "LRU hash peer", \
     "$D/pkt_literal.dat" using 1:2:3:4 with yerrorlines lw 2 title "patent literal (flow map + walk)", \
     $floor with lines dt 2 lw 2 title "floor (empty XDP\\\\_PASS)"

set output "$D/migration.png"
set title "Device-side migration vs connections"
set logscale xy 10
set xlabel "contexts"
set ylabel "ms (median)"
set yrange [*:*]
plot "$D/migration.dat" using 1:2 with linespoints lw 2 title "clat switchover (VCT repoint window)", \
     "$D/migration.dat" using 1:3 with linespoints lw 2 title "clat total device-side", \
     "$D/migration.dat" using 1:4 with linespoints lw 2 title "register copy, one by one", \
     "$D/migration.dat" using 1:5 with linespoints lw 2 title "register copy, batched"

set output "$D/live.png"
set title "Live path: Mpps delivered to the VM ports"
unset logscale
set xlabel ""
set ylabel "Mpps"
set yrange [0:*]
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
plot "$D/live.dat" using 2:xtic(1) title "1 VF", "" using 3 title "$vfs VFs"
GP
rm -f "$D"/*.dat
