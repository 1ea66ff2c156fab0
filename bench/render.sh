#!/usr/bin/env bash
# Renders results.json (from bench/run.sh) as the markdown tables of
# docs/PERFORMANCE.md, every target of the datapath-v2 issue with its
# verdict included.  Usage: bench/render.sh results.json
set -eu
exec jq -r '
def r(n): (. * pow(10; n) | round) / pow(10; n);
def spread: "\(.median | r(1)) (\(.min | r(1))–\(.max | r(1)))";
def spread3: "\(.median | r(3)) (\(.min | r(3))–\(.max | r(3)))";
def conns: if . >= 1048576 then "\(. / 1048576)M" elif . >= 1024 then "\(. / 1024)K" else "\(.)" end;
# Verdict of value v against an upper (le) or lower bound t.
def le(v; t): if v <= t then "met" else "**missed** (by \((v / t) | r(2))×)" end;
def ge(v; t): if v >= t then "met" else "**missed** (by \((t / v) | r(2))×)" end;
def na(x): if x == null then "–" else x end;
. as $R
| ($R.pkt.cases | map(select((.segments // 1) == 1))) as $c
| ($R.pkt.cases | map(select(.design == "clat"))) as $clat
| ($c | map(select(.design == "clat" and .conns == 1))[0]) as $hot
| ($c | map(select(.design == "clat" and .conns > 1 and .cap_pct == 150)) | sort_by(.conns)) as $ws
| ($c | map(select(.design == "clat" and .cap_pct == 110)) | sort_by(.conns)) as $full
| ($clat | map(select(.segments > 1)) | max_by(.segments)) as $segmax
| ($c | map(select(.design == "clat" and .cap_pct == 150 and .conns == $segmax.conns))[0]) as $seg1
| ($R.migration.sizes) as $m
| ($R.live) as $l
| ($R.pkt.verified_insns) as $vi
| [
"_Run \($R.date) at \($R.git) on \($R.machine.cpu), \($R.machine.cpus) CPUs, \($R.machine.memory), kernel \($R.machine.kernel); load average at start \($R.machine.loadavg_at_start); \($R.seconds) s\(if $R.quick then "; QUICK (reduced) run" else "" end). Medians, with (min–max) over the runs._",
"",
"### Per-packet cost (BPF_PROG_TEST_RUN, one core)",
"",
"Floor (empty XDP_PASS): \($R.pkt.floor_ns) ns. Driver overhead subtracted: \($R.pkt.driver_ns - $R.pkt.floor_ns) ns. Capacity: every table sized 1.5× the connections, and clat also at 1.1× (90% load); a flow without a context is one that a pass over every connection did not find.",
"",
"| design | connections | capacity | load | ns/packet | Mpps | × floor | × LRU | hit ratio | flows without a context |",
"|---|---|---|---|---|---|---|---|---|---|",
($c[] | select(.design != "driver") |
 "| \(.design) | \(.conns | conns) | \(if .conns > 1 then "\(.capacity) (\(.cap_pct)%)" else "–" end) | \(if .conns > 1 then (.load | r(3)) else "–" end) | \(.ns | spread) | \(.mpps | r(2)) | \(.x_floor | r(2)) | \(if .x_lru then (.x_lru | r(2)) else "–" end) | \(if .hit_ratio then (.hit_ratio | r(4)) else "–" end) | \(na(.no_ctx_flows)) |"),
"",
"### Capacity segments (a guest that grew its tables)",
"",
"Every connection of the working set is opened while the guest has one segment; it then grows (each time by half its capacity) and is attached again, and one more connection opens in each new segment so that none is drained and folded. Lookups try the newest segment first, so each frame passes every newer segment (two tag-line reads each) before it finds its context in the oldest.",
"",
"| connections | segments | capacity | ns/packet | per extra segment (ns) | hit ratio | flows without a context |",
"|---|---|---|---|---|---|---|",
(($clat | map(select(.segments > 1)) | map(.conns) | unique[]) as $n |
 ($clat | map(select(.conns == $n and .cap_pct == 150)) | sort_by(.segments)) as $rows |
 ($rows | map(select(.segments == 1))[0]) as $one |
 $rows[] | "| \(.conns | conns) | \(.segments) | \(.capacity) | \(.ns | spread) | \(if .segments > 1 then ((.ns.median - $one.ns.median) / (.segments - 1) | r(1)) else "–" end) | \(.hit_ratio | r(4)) | \(na(.no_ctx_flows)) |"),
"",
"### Memory per connection (device side)",
"",
"clat: the guest'"'"'s pool extents, 128-byte contexts plus a 2-byte tag and a dirty bit per slot (per bucket: 32 × 128 B + 64 B + 1 bit). LRU hash and literal: kernel memlock of their maps. LRU per entry: memlock ÷ max_entries, what the LRU costs per connection if sized exactly.",
"",
"| connections | clat at 1.5× | clat at 1.1× (90% load) | LRU hash at 1.5× | LRU per entry | literal at 1.5× (flow map + tiers + contexts) | clat 90% ÷ LRU per entry |",
"|---|---|---|---|---|---|---|",
($c | map(select(.bytes_per_conn and .conns > 1 and .design == "lru")) | sort_by(.conns)[] | . as $lr |
 ($c | map(select(.conns == $lr.conns))) as $g |
 ($g | map(select(.design == "clat" and .cap_pct == 150))[0]) as $c15 |
 ($g | map(select(.design == "clat" and .cap_pct == 110))[0]) as $c11 |
 ($g | map(select(.design == "literal"))[0]) as $lit |
 "| \($lr.conns | conns) | \(na($c15.bytes_per_conn)) B | \(if $c11 then "\($c11.bytes_per_conn) B" else "–" end) | \($lr.bytes_per_conn) B | \($lr.bytes_per_entry) B | \(na($lit.bytes_per_conn)) B | \(if $c11 then (($c11.bytes_per_conn / $lr.bytes_per_entry) | r(2)) else "–" end) |"),
"",
"### Verified instructions (bpf_prog_info.verified_insns; the verifier'"'"'s budget is 1M)",
"",
"| program | instructions |",
"|---|---|",
"| clat_rx | \($vi.clat_rx) |",
"| clat_tx | \($vi.clat_tx) |",
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
"Traffic of \($m[0].dirty_frames) frames (random connections) runs between the last pre-copy round and the switchover; the delta is what it dirtied.",
"",
"| connections | contexts moved | delta blocks | switchover (VCT repoint window) | in it: stop-copy | in it: reload | in it: commit | pre-copy | prepare (validate, build) | total | register copy, one by one | register copy, batched |",
"|---|---|---|---|---|---|---|---|---|---|---|---|",
($m[] | "| \(.conns | conns) | \(.contexts) | \(.delta_blocks) | \(.switchover_ms | spread3) | \(.stop_copy_ms.median | r(3)) | \(.reload_ms.median | r(3)) | \(.commit_ms.median | r(3)) | \(.precopy_ms | spread) | \(.prepare_ms | spread) | \(.total_ms | spread) | \(.copy_one_ms | spread) | \(.copy_batch_ms | spread) |"),
"",
"### Migration downtime with a real VM (ms)",
"",
($R.vm_migration // {skipped: "not measured in this run"} | . as $v |
 if $v.skipped then "Not measured: \($v.skipped)." else
 "\($v.runs) shared-mode hand-overs by `clat-load qemu migrate` (x-ignore-shared: a new VMM on the same RAM file) of a real guest (\($v.vm)) with \($v.tcp_contexts) TCP connections open through it. The guest is paused from QEMU'"'"'s pre-switchover stop until the destination runs: QEMU'"'"'s share is its switchover (the last dirty RAM, device state, destination loaded) plus the `cont`; clat'"'"'s share is the fn stop and the commit (the port moved to the new tap).\n\n| guest paused | QEMU'"'"'s share | clat'"'"'s share | QEMU'"'"'s own downtime figure | fn stopped | QEMU total | hand-over total |\n|---|---|---|---|---|---|---|\n| \($v.guest_paused_ms | spread) | \($v.qemu_share_ms | spread) | \($v.clat_share_ms | spread3) | \($v.qemu_downtime_ms | spread) | \($v.fn_stopped_ms | spread) | \($v.qemu_total_ms | spread) | \($v.total_ms | spread) |" +
 (if $v.libvirt == null then "" elif $v.libvirt.skipped then "\n\nlibvirt: not measured: \($v.libvirt.skipped)." else
  ($v.libvirt | "\n\n\(.runs) live migrations by `clat-load libvirt migrate` between two private libvirtd instances (`make demo-vm`, copy mode: the RAM goes over TCP, the contexts over the device-state channel). Downtime = libvirt'"'"'s own downtime figure (the guest stopped for its last RAM copy) + clat'"'"'s phases after libvirt'"'"'s job, while the destination stays paused.\n\n| downtime | libvirt'"'"'s share | clat'"'"'s share | in it: final delta | in it: commit | in it: resume | libvirt job |\n|---|---|---|---|---|---|---|\n| \(.downtime_ms | spread) | \(.libvirt_downtime_ms | spread) | \(.clat_ms | spread) | \(.clat_stop_copy_ms.median | r(2)) | \(.clat_commit_ms.median | r(2)) | \(.clat_resume_ms.median | r(2)) | \(.libvirt_job_ms | spread) |") end)
 end),
"",
"### Rebuild (guest attach from a guest memory file)",
"",
"| contexts | build (ms) | attach: validate + build + commit (ms) | contexts/s (attach), median (min–max) | max/min | contexts/s (build only) |",
"|---|---|---|---|---|---|",
($m[] | "| \(.contexts) | \(.build_ms | spread3) | \(.rebuild_ms | spread) | \((.rebuild_ctx_per_s.median / 1e6) | r(2))M (\((.rebuild_ctx_per_s.min / 1e6) | r(2))–\((.rebuild_ctx_per_s.max / 1e6) | r(2))M) | \((.rebuild_ctx_per_s.max / .rebuild_ctx_per_s.min) | r(2)) | \((.contexts / .build_ms.median / 1000) | r(2))M |"),
"",
"### Targets (issue 11)",
"",
"| figure | target | measured | verdict |",
"|---|---|---|---|",
($ws | map(select(.conns >= 16384))[] |
 "| \(.conns | conns) random connections, × LRU peer | ≤ 0.7× | \(.x_lru | r(2))× (\(.ns.median | r(1)) ns) | \(le(.x_lru; 0.7)) |"),
"| one hot flow, × mac_redirect | ≤ 1.5× | \($hot.x_mac_redirect | r(2))× (\($hot.ns.median | r(1)) vs \($R.pkt.mac_redirect_ns | r(1)) ns) | \(le($hot.x_mac_redirect; 1.5)) |",
($full[] |
 "| hit ratio at 90% load, \(.conns | conns) (capacity \(.capacity), load \(.load | r(3))) | 1.0000, 0 flows without a context | \(.hit_ratio | r(4)), \(.no_ctx_flows) without (CTX_FULL \(.ctx_full)) | \(if .no_ctx_flows == 0 and .hit_ratio == 1 then "met" else "**missed** (\(.no_ctx_flows) flows)" end) |"),
(if $segmax then (((($segmax.ns.median - $seg1.ns.median) / ($segmax.segments - 1))) as $per |
 "| each extra capacity segment, \($segmax.conns | conns) connections | ≤ 60 ns | \($per | r(1)) ns (\($segmax.segments) segments: \($segmax.ns.median | r(1)) ns, 1: \($seg1.ns.median | r(1)) ns) | \(le([$per, 0.01] | max; 60)) |") else empty end),
($m[-1] | (.rebuild_ctx_per_s.max / .rebuild_ctx_per_s.min) as $sp |
 "| rebuild, \(.contexts) contexts (guest attach) | ≥ 10M/s, max/min ≤ 1.5 | \((.rebuild_ctx_per_s.median / 1e6) | r(2))M/s, max/min \($sp | r(2)) over \(.rebuild_ctx_per_s.runs) runs | \(ge(.rebuild_ctx_per_s.median; 1e7)), \(le($sp; 1.5)) |"),
"| switchover at \($m[-1].conns | conns), \($m[-1].delta_blocks) dirty blocks | ≤ 1 ms | \($m[-1].switchover_ms.median | r(3)) ms | \(le($m[-1].switchover_ms.median; 1)) |",
"| switchover at \($m[-1].conns | conns) ÷ at \($m[0].conns | conns) (\($m[0].delta_blocks) dirty blocks), same traffic | ≤ 2× | \(($m[-1].switchover_ms.median / $m[0].switchover_ms.median) | r(2))× (\($m[0].switchover_ms.median | r(3)) ms at \($m[0].conns | conns)) | \(le($m[-1].switchover_ms.median / $m[0].switchover_ms.median; 2)) |",
($full | max_by(.conns) | . as $f | ($c | map(select(.design == "lru" and .conns == $f.conns))[0]) as $lr |
 if $lr then "| device bytes per connection at 90% load, \($f.conns | conns), × LRU per entry | ≤ 0.45× | \(($f.bytes_per_conn / $lr.bytes_per_entry) | r(2))× (\($f.bytes_per_conn) B vs \($lr.bytes_per_entry) B) | \(le($f.bytes_per_conn / $lr.bytes_per_entry; 0.45)) |" else empty end),
(($l.clat_ctx.all_vfs.mpps.median / $l.clat.all_vfs.mpps.median) as $lv |
 "| live path, \($l.vfs) VFs: Mpps with contexts ÷ without | ≥ 0.85 | \($lv | r(3)) (\($l.clat_ctx.all_vfs.mpps.median | r(3)) vs \($l.clat.all_vfs.mpps.median | r(3)) Mpps) | \(ge($lv; 0.85)) |"),
(([$vi.clat_rx, $vi.clat_tx] | max) as $v |
 "| verified instructions per program | ≤ 250K | clat_rx \($vi.clat_rx), clat_tx \($vi.clat_tx) | \(le($v; 250000)) |"),
"",
"![per-packet cost](perf/pkt.png) ![migration](perf/migration.png) ![live path](perf/live.png)"
] | .[]' "$1"
