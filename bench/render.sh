#!/usr/bin/env bash
# Renders results.json (from bench/run.sh) as the markdown tables of
# docs/PERFORMANCE.md, targets included.  Usage: bench/render.sh results.json
set -eu
exec jq -r '
def r(n): (. * pow(10; n) | round) / pow(10; n);
def spread: "\(.median | r(1)) (\(.min | r(1))–\(.max | r(1)))";
def spread3: "\(.median | r(3)) (\(.min | r(3))–\(.max | r(3)))";
def conns: if . >= 1048576 then "\(. / 1048576)M" elif . >= 1024 then "\(. / 1024)K" else "\(.)" end;
def yes(ok): if ok then "met" else "**missed**" end;
. as $R
| ($R.pkt.cases | map(select((.segments // 1) == 1))) as $c
| ($R.pkt.cases | map(select(.design == "clat"))) as $clat
| ($c | map(select(.design == "clat" and .conns > 1)) | max_by(.conns)) as $big
| ($c | map(select(.design == "clat" and .conns == 1 and .levels == 2))[0]) as $hot2
| ($c | map(select(.design == "lru" and .conns == $big.conns))[0]) as $lrubig
| ($R.migration.sizes) as $m
| ($R.live) as $l
| [
"_Run \($R.date) at \($R.git) on \($R.machine.cpu), \($R.machine.cpus) CPUs, \($R.machine.memory), kernel \($R.machine.kernel); load average at start \($R.machine.loadavg_at_start); \($R.seconds) s\(if $R.quick then "; QUICK (reduced) run" else "" end). Medians, with (min–max) over the runs._",
"",
"### Per-packet cost (BPF_PROG_TEST_RUN, one core)",
"",
"Floor (empty XDP_PASS): \($R.pkt.floor_ns) ns. Driver overhead subtracted: \($R.pkt.driver_ns - $R.pkt.floor_ns) ns.",
"",
"| design | connections | levels | ns/packet | Mpps | × floor | × LRU | hit ratio |",
"|---|---|---|---|---|---|---|---|",
($c[] | select(.design != "driver") |
 "| \(.design) | \(.conns | conns) | \(if .levels > 0 then .levels else "–" end) | \(.ns | spread) | \(.mpps | r(2)) | \(.x_floor | r(2)) | \(if .x_lru then (.x_lru | r(2)) else "–" end) | \(if .hit_ratio then (.hit_ratio | r(4)) else "–" end) |"),
"",
"### Capacity segments (a guest that grew its tables)",
"",
"Every connection is opened while the guest has one segment; it then grows (each time by half its capacity) and is attached again. Lookups probe the newest segment first, so each frame passes the newer, empty segments before it finds its context in the oldest.",
"",
"| connections | levels | segments | capacity | ns/packet | per extra segment (ns) | hit ratio |",
"|---|---|---|---|---|---|---|",
(($clat | map(select(.segments > 1)) | map(.conns) | unique[]) as $n |
 ($clat | map(select(.conns == $n and (($n > 1) or .levels == 2)))) as $rows |
 ($rows | map(select(.segments == 1))[0]) as $one |
 $rows[] | "| \(.conns | conns) | \(.levels) | \(.segments) | \(.capacity | conns) | \(.ns | spread) | \(if .segments > 1 then ((.ns.median - $one.ns.median) / (.segments - 1) | r(1)) else "–" end) | \(.hit_ratio | r(4)) |"),
"",
"### Memory per connection (device side, kernel memlock of the maps)",
"",
"| connections | capacity | clat (contexts + tiers + dirty) | LRU hash | literal (flow map + tiers + contexts) | clat / LRU |",
"|---|---|---|---|---|---|",
($c | map(select(.bytes_per_conn and .conns > 1)) | group_by(.conns)[] |
 (map({(.design): .}) | add) as $g |
 "| \($g.clat.conns | conns) | \($g.clat.capacity | conns) | \($g.clat.bytes_per_conn) B | \($g.lru.bytes_per_conn) B | \($g.literal.bytes_per_conn) B | \(($g.clat.bytes_per_conn / $g.lru.bytes_per_conn) | r(2)) |"),
"",
"### Live path (BPF_F_TEST_XDP_LIVE_FRAMES generator, \($l.frames_per_run) frames per run, \($l.conns) UDP connections)",
"",
"| path | 1 VF: Mpps delivered | \($l.vfs) VFs: Mpps delivered | delivered / sent (1 VF, all) |",
"|---|---|---|---|",
(["clat", "clat_rx, no contexts"], ["clat_ctx", "clat_rx, contexts (guest attached)"], ["bridge", "Linux bridge"], ["macvlan", "macvlan (bridge mode)"] |
 . as [$k, $name] | $l[$k] |
 "| \($name) | \(.one_vf.mpps | spread3) | \(.all_vfs.mpps | spread3) | \(.one_vf.delivered_ratio.median | r(3)), \(.all_vfs.delivered_ratio.median | r(3)) |"),
"",
"### Migration, device side (ms)",
"",
"| connections | contexts moved | delta blocks | switchover (VCT repoint window) | in it: stop-copy | in it: reload | pre-copy | prepare (validate, build, plug) | total | register copy, one by one | register copy, batched |",
"|---|---|---|---|---|---|---|---|---|---|---|",
($m[] | "| \(.conns | conns) | \(.contexts) | \(.delta_blocks) | \(.switchover_ms | spread3) | \(.stop_copy_ms.median | r(3)) | \(.reload_ms.median | r(3)) | \(.precopy_ms | spread) | \(.prepare_ms | spread) | \(.total_ms | spread) | \(.copy_one_ms | spread) | \(.copy_batch_ms | spread) |"),
"",
"### Rebuild (guest attach from a guest memory file)",
"",
"| contexts | build (ms) | attach: validate + build + plug + commit (ms) | contexts/s (attach) | contexts/s (build only) |",
"|---|---|---|---|---|",
($m[] | "| \(.contexts) | \(.build_ms | spread3) | \(.rebuild_ms | spread) | \(.rebuild_ctx_per_s.median | round) | \((.contexts / .build_ms.median * 1000) | round) |"),
"",
"### Targets",
"",
"| target | measured | verdict |",
"|---|---|---|",
"| 2 levels, one hot flow: ≤ 2.5× floor | \($hot2.x_floor | r(2))× (\($hot2.ns.median | r(1)) ns vs \($R.pkt.floor_ns) ns) | \(yes($hot2.x_floor <= 2.5)) |",
($c | map(select(.design == "clat" and .conns >= 16384))[] |
 "| \(.conns | conns) connections, random order: ≤ 0.8× LRU | \(.x_lru | r(2))× | \(yes(.x_lru <= 0.8)) |"),
"| live clat_rx ≥ 2× Linux bridge (all VFs, contexts) | \(($l.clat_ctx.all_vfs.mpps.median / $l.bridge.all_vfs.mpps.median) | r(2))× (\($l.clat_ctx.all_vfs.mpps.median) vs \($l.bridge.all_vfs.mpps.median) Mpps) | \(yes($l.clat_ctx.all_vfs.mpps.median >= 2 * $l.bridge.all_vfs.mpps.median)) |",
"| switchover ≤ 1 ms at \($m[-1].conns | conns) | \($m[-1].switchover_ms.median | r(3)) ms (\($m[-1].delta_blocks) delta blocks, \(($m[-1].switchover_ms.median * 1000 / $m[-1].delta_blocks) | r(2)) µs each) | \(yes($m[-1].switchover_ms.median <= 1)) |",
"| switchover flat from \($m[0].conns | conns) to \($m[-1].conns | conns) | \(($m[-1].switchover_ms.median / $m[0].switchover_ms.median) | r(2))× (register copy, batched: \(($m[-1].copy_batch_ms.median / $m[0].copy_batch_ms.median) | r(1))×) | \(yes($m[-1].switchover_ms.median <= 2 * $m[0].switchover_ms.median)) |",
"| rebuild ≥ 5M contexts/s (\($m[-1].contexts) contexts) | \(($m[-1].rebuild_ctx_per_s.median / 1e6) | r(2))M/s attach, \(($m[-1].contexts / $m[-1].build_ms.median / 1000) | r(2))M/s build only | \(yes($m[-1].rebuild_ctx_per_s.median >= 5e6)) |",
"| memory per connection ≤ LRU (\($big.conns | conns)) | \($big.bytes_per_conn) B vs \($lrubig.bytes_per_conn) B | \(yes($big.bytes_per_conn <= $lrubig.bytes_per_conn)) |",
"",
"![per-packet cost](perf/pkt.png) ![migration](perf/migration.png) ![live path](perf/live.png)"
] | .[]' "$1"
