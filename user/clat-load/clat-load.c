// SPDX-License-Identifier: GPL-2.0
/* clat-load: loader and control tool for the clat XDP dispatcher. */
#include <stdint.h>
#include <stdlib.h>
#include <bpf/libbpf.h>

#include "cli.h"
#include "common.h"

static const struct opt_def opt_defs[OPT__MAX] = {
	[OPT_JSON] = { "json", NULL, "print JSON on stdout" },
	[OPT_MODE] = { "mode", NULL, "XDP attach mode (default native)", ENUM("native", "skb") },
	[OPT_PIN_DIR] = { "pin-dir", "DIR", "pin directory (default " CLAT_PIN_BASE "/<pf>)" },
	[OPT_FN] = { "fn", "N", "function number (0 = PF host port, i+1 = VF i)", OT_FN },
	[OPT_MAC] = { "mac", "MAC", "unicast MAC that selects the function", OT_MAC },
	[OPT_VLAN] = { "vlan", "VID",
		       "vf add: outer VLAN ID of the MAC (default 0, untagged); vf set: the port "
		       "VLAN, 0..4094 (0 = none): the VM sends and receives untagged, the device "
		       "pushes and pops the tag", U32(0, 4094) },
	[OPT_SPOOFCHK] = { "spoofchk", "on|off",
			   "drop the VF's frames whose source MAC or VLAN is not its own (default on)", ENUM("on", "off") },
	[OPT_TRUST] = { "trust", "on|off",
			"let the VF have more than one MAC (default off; off is refused while it has more)", ENUM("on", "off") },
	[OPT_STATE] = { "state", NULL,
			"link state: disable drops every frame to and from the VF; auto follows the PF "
			"(the datapath treats it as up)", ENUM("auto", "enable", "disable") },
	[OPT_MAX_RATE] = { "max-rate", "MBIT",
			   "police the VF's frames to MBIT Mbit/s (0 = no limit, default)", U32(0, CLAT_MAX_RATE_MBIT) },
	[OPT_ADD_MAC] = { "add-mac", "MAC", "give the VF one more MAC (needs --trust on)", OT_MAC },
	[OPT_DEL_MAC] = { "del-mac", "MAC", "take a MAC from the VF (not its last one)", OT_MAC },
	[OPT_IFINDEX] = { "ifindex", "N", "representor ifindex of the function", U32(1, INT32_MAX) },
	[OPT_DEV] = { "dev", "NAME", "representor netdev of the function", OT_IFNAME },
	[OPT_UNKNOWN_UNICAST] = { "unknown-unicast", NULL,
				  "unknown unicast: to the host port (default), XDP_PASS, or drop", ENUM("host", "pass", "drop") },
	[OPT_POOL_CONTEXTS] = { "pool-contexts", "N",
				"contexts in the PF's context memory, shared by every fn "
				"(K/M/G suffixes; default 256K, rounded up to 32)", SIZE(CLAT_BUCKET_SLOTS, CLAT_POOL_MAX) },
	[OPT_MEM] = { "mem", "FILE", "guest memory file (offset = GPA)" },
	[OPT_BAT_GPA] = { "bat-gpa", "GPA", "guest physical address of the BAT", U64(0, 0) },
	[OPT_TIMEOUT] = { "timeout", "SECONDS",
			  "idle time after which a context is released (default: by state)", U32(0, 0) },
	[OPT_SVC] = { "svc", "S", "service number, 1 .. P*C^N", U32(0, 0) },
	[OPT_CTX_SIZE] = { "ctx-size", "A", "bytes per context (K/M/G suffixes)", SIZE(0, UINT32_MAX) },
	[OPT_BLOCK_SIZE] = { "block-size", "B", "bytes per block, K/M/G suffixes (A divides B)", SIZE(0, UINT32_MAX) },
	[OPT_LEVELS] = { "levels", "N", "CLAT levels, 1..4", U32(0, 0) },
	[OPT_CLAT_ENTRIES] = { "clat-entries", "C", "entries per CLAT page, 1..512 (default 512)", U32(0, 0) },
	[OPT_CONNECT] = { "connect", "URI", "libvirt connection URI, e.g. qemu:///system" },
	[OPT_INTERVAL] = { "interval", "SECONDS",
			   "also reconcile every SECONDS (default 60, 0 = only on events)", U32(0, INT32_MAX / 1000) },
	[OPT_RESYNC_MS] = { "resync-ms", "MS",
			    "poll every attached guest's BAT generation every MS milliseconds and "
			    "resync the ones that grew (default 1000, 0 = never)", U32(0, INT32_MAX) },
	[OPT_TEST_ACTIONS] = { "test-actions", "LIST",
			       "for libvirt's test driver: perform these domain operations on the watch's own connection, e.g. destroy:vm1,create:vm2,suspend:vm3,resume:vm3, then exit" },
	[OPT_TO_FN] = { "to-fn", "M", "function number on the destination PF", OT_FN },
	[OPT_VM_NETNS] = { "vm-netns", "NS", "network namespace that plays the VM" },
	[OPT_SRC_NETNS] = { "src-netns", "NS", "network namespace of the source host" },
	[OPT_DST_NETNS] = { "dst-netns", "NS", "network namespace of the destination host" },
	[OPT_DST_MEM] = { "dst-mem", "FILE", "guest memory file on the destination" },
	[OPT_SRC_PIN_DIR] = { "src-pin-dir", "DIR", "pin directory of the source PF" },
	[OPT_DST_PIN_DIR] = { "dst-pin-dir", "DIR", "pin directory of the destination PF" },
	[OPT_ROUNDS] = { "rounds", "N", "most dirty-block pre-copy rounds (default 5)", U32(0, 64) },
	[OPT_DELTA] = { "delta", "FILE", "write the GPAs of the blocks copied while stopped" },
	[OPT_ABORT] = { "abort", NULL, "resume a paused fn instead of migrating it" },
	[OPT_OBJ] = { "obj", "FILE", "BPF object to load (default: the one built into clat-load)" },
	[OPT_LISTEN] = { "listen", "ADDR:PORT",
			 "serve GET /metrics over HTTP on ADDR:PORT (numeric; [::1]:PORT for IPv6) "
			 "until SIGINT/SIGTERM, instead of printing once" },
	[OPT_SRC_QMP] = { "src-qmp", "SOCK", "QMP unix socket of the source QEMU" },
	[OPT_DST_QMP] = { "dst-qmp", "SOCK",
			  "QMP unix socket of the destination QEMU (started with -incoming defer)" },
	[OPT_URI] = { "uri", "QEMU-URI", "QEMU's migration stream, e.g. unix:/run/mig.sock or tcp:HOST:PORT" },
	[OPT_CHANNEL] = { "channel", "CHAN",
			  "guest attach: ask the guest agent (clat-guest agent) for the BAT GPA "
			  "through QEMU's chardev socket of its virtserialport (unix:PATH), instead of "
			  "--bat-gpa; qemu migrate: copy mode, the device-state channel to the "
			  "destination's migrate-in (unix:PATH or tcp:HOST:PORT)" },
	[OPT_SHARED] = { "shared", NULL,
			 "shared mode: both QEMUs map the same RAM file (x-ignore-shared), on this "
			 "host; the fn moves to --port" },
	[OPT_PORT] = { "port", "IFNAME",
		       "move the function's port to this interface (e.g. a VM's new tap): clat_tx "
		       "moves with it; vf set: alone, not with other vf set options; qemu migrate "
		       "--shared: the destination VMM's tap", OT_IFNAME },
	[OPT_DOWNTIME_LIMIT] = { "downtime-limit", "MS", "QEMU's downtime-limit (default 10)", U32(0, 2000000) },
	[OPT_RECOVER] = { "recover", NULL,
			  "after a killed migrate: finish it if the destination has the guest, "
			  "else roll back, so that exactly one side serves" },
	[OPT_PF] = { "pf", "PF", "the PF whose fn the domain uses on this host", OT_IFNAME },
	[OPT_DEV_CHANNEL] = { "channel", "CHAN",
			  "device-state channel of the destination's 'migrate-in --listen': "
			  "unix:PATH or tcp:HOST:PORT" },
	[OPT_DEST_XML] = { "dest-xml", "FILE",
			   "domain XML for the destination (its own tap, sockets and clat metadata)" },
	[OPT_MIGRATE_URI] = { "migrate-uri", "URI",
			      "where QEMU sends the RAM, e.g. tcp://127.0.0.1:49152" },
	[OPT_LISTEN_ADDRESS] = { "listen-address", "ADDR",
				 "address the destination QEMU listens on for the RAM" },
	[OPT_TO] = { "to", "CHAN",
		     "stream the device state to the destination's migrate-in --listen "
		     "(unix:PATH or tcp:HOST:PORT), COMMIT once stopped, wait for DONE" },
	[OPT_CHAN_LISTEN] = { "listen", "CHAN",
			      "take the device state from one source on unix:PATH or tcp:HOST:PORT; "
			      "the tables' BAT GPA comes from its HELLO" },
	[OPT_WAIT] = { "wait", "SECONDS",
		       "give up when the source is silent this long (default 60)", U32(1, 3600) },
	[OPT_CHANNEL_TIMEOUT] = { "channel-timeout", "MS",
				  "how long to wait for the guest agent's answer (default 10000)", U32(0, 600000) },
	[OPT_FORCE] = { "force", NULL,
			"drop the shadow even if the write-back fails (warns: those contexts are "
			"lost); for a fn that goes to another owner" },
};

static const struct command commands[] = {
	{ "attach", cmd_attach, "<pf>", 1,
	  { OPT_MODE, OPT_PIN_DIR, OPT_UNKNOWN_UNICAST, OPT_POOL_CONTEXTS, OPT_JSON },
	  "load clat, attach clat_rx to the PF and clat_tx to every representor, pin maps" },
	{ "detach", cmd_detach, "<pf>", 1, { OPT_PIN_DIR, OPT_JSON },
	  "detach the programs and remove every pin; interfaces stay as they were" },
	{ "status", cmd_status, "<pf>", 1, { OPT_PIN_DIR, OPT_JSON },
	  "show attached programs and the function table" },
	{ "upgrade", cmd_upgrade, "<pf>", 1, { OPT_OBJ, OPT_PIN_DIR, OPT_JSON },
	  "load a new BPF object on the pinned maps and switch every attached program to it atomically" },
	{ "stats", cmd_stats, "<pf>", 1, { OPT_PIN_DIR, OPT_JSON },
	  "show per-function counters and per-reason drop/pass counters" },
	{ "metrics", cmd_metrics, "<pf>", 1, { OPT_LISTEN, OPT_PIN_DIR, OPT_JSON },
	  "counters, context table occupancy, pool use and verified insns in the Prometheus "
	  "text format (for node_exporter's textfile collector), or served on GET /metrics" },
	{ "vf add", cmd_vf_add, "<pf>", 1,
	  { REQ(OPT_FN), REQ(OPT_MAC), OPT_VLAN, OPT_IFINDEX, OPT_DEV, OPT_PIN_DIR, OPT_JSON },
	  "map a MAC to a function and its representor (for real SR-IOV NICs)" },
	{ "vf del", cmd_vf_del, "<pf>", 1, { REQ(OPT_FN), OPT_PIN_DIR, OPT_JSON },
	  "remove a function: its MACs, its port and its representor's program" },
	{ "vf set", cmd_vf_set, "<pf>", 1,
	  { REQ(OPT_FN), OPT_VLAN, OPT_SPOOFCHK, OPT_TRUST, OPT_STATE, OPT_MAX_RATE, OPT_ADD_MAC,
	    OPT_DEL_MAC, OPT_PORT, OPT_PIN_DIR, OPT_JSON },
	  "set a function's port policy, like 'ip link set PF vf N': port VLAN, spoof check, "
	  "trust, link state, rate limit, extra MACs; or move its port (--port); changes "
	  "nothing on bad input" },
	{ "guest attach", cmd_guest_attach, "<pf>", 1,
	  { REQ(OPT_FN), REQ(OPT_MEM), OPT_BAT_GPA, OPT_CHANNEL, OPT_CHANNEL_TIMEOUT, OPT_PIN_DIR, OPT_JSON },
	  "validate a guest's BAT/CLAT tables and make its contexts live for fn" },
	{ "guest sync", cmd_guest_sync, "<pf>", 1, { REQ(OPT_FN), OPT_PIN_DIR, OPT_JSON },
	  "write fn's contexts back to their GPAs in guest memory (cache flush)" },
	{ "guest resync", cmd_guest_resync, "<pf>", 1, { REQ(OPT_FN), OPT_PIN_DIR, OPT_JSON },
	  "after the guest grew its tables (new generation): validate only what changed and "
	  "add it to the live shadow; all or nothing" },
	{ "guest detach", cmd_guest_detach, "<pf>", 1, { REQ(OPT_FN), OPT_FORCE, OPT_PIN_DIR, OPT_JSON },
	  "sync, then free everything fn's guest tables use on the device (--force: free them "
	  "even if the sync fails)" },
	{ "ctx list", cmd_ctx_list, "<pf>", 1, { REQ(OPT_FN), OPT_PIN_DIR, OPT_JSON },
	  "list fn's live contexts with their service numbers" },
	{ "gc", cmd_gc, "<pf>", 1, { OPT_FN, OPT_TIMEOUT, OPT_PIN_DIR, OPT_JSON },
	  "release idle contexts and fold drained capacity segments (one-shot, for a timer)" },
	{ "locate", cmd_locate, "", 0,
	  { REQ(OPT_SVC), REQ(OPT_CTX_SIZE), REQ(OPT_BLOCK_SIZE), REQ(OPT_LEVELS), OPT_CLAT_ENTRIES, OPT_JSON },
	  "offset at each CLAT level and element of service S (the patent's arithmetic)" },
	{ "libvirt reconcile", cmd_libvirt_reconcile, "<pf>", 1,
	  { OPT_CONNECT, OPT_PIN_DIR, OPT_JSON },
	  "make MACs and guest tables of pf's functions match libvirt's running domains" },
	{ "libvirt watch", cmd_libvirt_watch, "<pf>", 1,
	  { OPT_CONNECT, OPT_INTERVAL, OPT_RESYNC_MS, OPT_PIN_DIR, OPT_TEST_ACTIONS, OPT_JSON },
	  "reconcile now, on every domain lifecycle event and every interval, and resync guests "
	  "that grew their tables, until SIGINT/SIGTERM; --json: one object per event "
	  "(lifecycle, metadata, reconcile, tick)" },
	{ "libvirt hook-parse", cmd_libvirt_hook_parse, "<pf>", 1, { OPT_PIN_DIR, OPT_JSON },
	  "read a domain XML on stdin; print one JSON record for the qemu hook: domain, mem, "
	  "bat_gpa and per hostdev interface of pf its fn, mac, vlan, ifindex and the tables "
	  "the fn holds (none/same/other); a domain with a control character or whitespace "
	  "in a value is refused" },
	{ "libvirt migrate", cmd_libvirt_migrate, "<domain> <dest-uri>", 2,
	  { REQ(OPT_PF), OPT_FN, REQ(OPT_DEV_CHANNEL), OPT_DEST_XML, OPT_MIGRATE_URI, OPT_LISTEN_ADDRESS,
	    OPT_CONNECT, OPT_PIN_DIR, OPT_JSON },
	  "live-migrate a running domain with libvirt (destination paused until its device state "
	  "is in), streaming fn's contexts to the destination's 'migrate-in --listen' during the "
	  "RAM copy; the final delta and the commit after libvirt's job, then resume there; "
	  "downtime by phase, with libvirt's own figures" },
	{ "migrate-out", cmd_migrate_out, "<pf>", 1,
	  { REQ(OPT_FN), OPT_TO, OPT_ROUNDS, OPT_DELTA, OPT_ABORT, OPT_PIN_DIR, OPT_JSON },
	  "source side: pre-copy contexts to guest memory (and with --to over the device-state "
	  "channel), pause, copy the rest, commit, release fn; on a failure before DONE the fn "
	  "serves again" },
	{ "migrate-in", cmd_migrate_in, "<pf>", 1,
	  { REQ(OPT_FN), REQ(OPT_MAC), REQ(OPT_MEM), OPT_BAT_GPA, OPT_CHAN_LISTEN, OPT_WAIT, OPT_PIN_DIR,
	    OPT_JSON },
	  "destination side: validate the guest tables, build fn's maps, switch in one step; "
	  "with --listen, the source's blocks are written into --mem at COMMIT first, and a "
	  "stream that ends before COMMIT leaves nothing" },
	{ "migrate", cmd_migrate, "<src-pf> <dst-pf>", 2,
	  { REQ(OPT_FN), REQ(OPT_TO_FN), REQ(OPT_VM_NETNS), REQ(OPT_DST_MEM), OPT_SRC_NETNS, OPT_DST_NETNS,
	    OPT_SRC_PIN_DIR, OPT_DST_PIN_DIR, OPT_ROUNDS, OPT_JSON },
	  "move a VM and its contexts between two emulated hosts, reporting downtime by phase" },
	{ "qemu migrate", cmd_qemu_migrate, "<pf>", 1,
	  { REQ(OPT_FN), REQ(OPT_SRC_QMP), REQ(OPT_DST_QMP), OPT_URI, OPT_CHANNEL, OPT_SHARED, OPT_PORT,
	    OPT_DOWNTIME_LIMIT, OPT_RECOVER, OPT_DST_PIN_DIR, OPT_TO_FN, OPT_PIN_DIR, OPT_JSON },
	  "live-migrate a QEMU guest and fn's contexts over QMP: capabilities, pre-copy, the "
	  "device stop at pre-switchover, migrate-continue, device commit, cont; --recover "
	  "after a kill" },
};

/* libbpf's messages one level down: its warnings are our info (shown by
 * default, hidden by -q), its info our debug (-v), its debug our trace. */
static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	int ours = level == LIBBPF_WARN ? LOG_INFO : level == LIBBPF_INFO ? LOG_DEBUG : LOG_TRACE;

	if (!log_enabled(ours))
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static const struct tool clat_load = {
	.prog = "clat-load",
	.opts = opt_defs,
	.cmds = commands,
	.ncmds = ARRAY_SIZE(commands),
	.fn_max = CLAT_MAX_FN - 1,
	.global_flags = "[-v|-vv|-q] ",
};

int main(int argc, char **argv)
{
	libbpf_set_print(libbpf_log);
	return tool_main(&clat_load, argc - 1, argv + 1);
}
