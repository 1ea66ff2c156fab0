// SPDX-License-Identifier: GPL-2.0
/* clat-guest: plays the VM driver.  It builds the guest tables (BAT, CLAT,
 * context blocks) in a guest memory file, shows and walks them, and for
 * tests damages them the way a buggy or hostile guest would.  This file is
 * its command table; the commands live in cg_*.c (see cg.h). */
#include <stdint.h>
#include <string.h>

#include "cg.h"
#include "common.h"
#include "gagent.h"
#include "gbuild.h"
#include "gcorrupt.h"
#include "gphys.h"

static const struct opt_def opt_defs[G__MAX] = {
	[G_MEM] = { "mem", "FILE", "guest memory file: file offset = GPA, except on hugetlbfs "
		    "inside a guest, where each huge page is at its guest-physical address "
		    "(from /proc/self/pagemap; needs root)" },
	[G_SIZE] = { "size", "SIZE", "guest memory size, K/M/G suffixes allowed", SIZE(1, 0) },
	[G_TYPE_SPEC] = { "type", "NAME:ctx=A,block=B,services=S[,...]",
			  "a service type; repeat for more (up to 4). Optional keys: levels=N "
			  "(default: smallest that fits), entries=C (512), proto=tcp|udp|any (any), "
			  "seed=X (random). A is at least 128, the context record's size" },
	[G_TYPE] = { "type", "T", "service type, by index or name (default 0)" },
	[G_LAYOUT_SEED] = { "layout-seed", "N", "seed of the page/block placement "
			    "(default: from the hash seeds)", U64(0, 0) },
	[G_FORCE] = { "force", NULL, "reuse an existing file of another size (resized)" },
	[G_BAT_GPA] = { "bat-gpa", "GPA", "guest physical address of the BAT (default on "
			"hugetlbfs: the GPA of file offset 0, where init puts it)", U64(0, 0) },
	[G_SVC] = { "svc", "S", "service number, 1..capacity", U32(1, UINT32_MAX) },
	[G_KIND] = { "kind", "KIND", "what to damage (Kinds, below)", OT_ENUM, 0, 0,
		     gbuild_corrupt_kinds },
	[G_COUNT] = { "count", "N", "number of flows", U32(1, 65535) },
	[G_VM_ADDR] = { "vm-addr", "IPv4", "the VM's address" },
	[G_VM_PORT] = { "vm-port", "P", "the VM's port", U32(1, 65535) },
	[G_REMOTE_ADDR] = { "remote-addr", "IPv4", "the remote peer's address" },
	[G_FIRST_PORT] = { "first-port", "X", "remote port of the first flow; flow i uses X+i",
			   U32(1, 65535) },
	[G_PROTO] = { "proto", NULL, "protocol of the flows (default udp)", ENUM("udp", "tcp") },
	[G_CAPACITY] = { "capacity", "S", "the type's new capacity, in services",
			 U32(1, CLAT_MAX_CAPACITY) },
	[G_JSON] = { "json", NULL, "print JSON on stdout" },
	[G_PORT] = { "port", "NAME", "virtio-serial port name (default org.clat.0)" },
};

_Static_assert(G__MAX <= CMD_MAX_OPT_IDS, "too many option ids");

/* The in-guest agent: a daemon that answers on its port, never on stdout. */
static int cmd_agent(const struct invocation *inv)
{
	return gagent_run(inv->opt[G_MEM], opt_str_or(inv, G_PORT, "org.clat.0"));
}

static const struct command commands[] = {
	{ "init", cg_init, NULL, 0,
	  { REQ(G_MEM), REQ(G_SIZE), G_TYPE_SPEC, G_LAYOUT_SEED, G_FORCE, G_JSON },
	  "build a BAT, CLAT pages and context blocks scattered over guest memory" },
	{ "show", cg_show, NULL, 0, { REQ(G_MEM), G_BAT_GPA, G_JSON },
	  "validate the tables, then show each type and its live contexts" },
	{ "ctx list", cg_ctx_list, NULL, 0, { REQ(G_MEM), G_BAT_GPA, G_TYPE, G_JSON },
	  "list the live contexts (all types, or --type T) with what the device wrote" },
	{ "agent", cmd_agent, NULL, 0, { REQ(G_MEM), G_PORT },
	  "inside a VM: answer the host's {\"req\":\"bat\"} on a virtio-serial port with the "
	  "BAT GPA, generation and type count, read afresh each time" },
	{ "locate", cg_locate, NULL, 0, { REQ(G_MEM), G_BAT_GPA, G_TYPE, REQ(G_SVC), G_JSON },
	  "walk BAT -> CLAT levels -> block for one service, printing every GPA visited" },
	{ "corrupt", cg_corrupt, NULL, 0, { REQ(G_MEM), G_BAT_GPA, REQ(G_KIND), G_TYPE, G_JSON },
	  "testing aid: damage valid tables in place like a buggy or hostile guest" },
	{ "seed", cg_seed, NULL, 0,
	  { REQ(G_MEM), G_BAT_GPA, G_TYPE, REQ(G_COUNT), REQ(G_VM_ADDR), REQ(G_VM_PORT),
	    REQ(G_REMOTE_ADDR), REQ(G_FIRST_PORT), G_PROTO, G_JSON },
	  "testing aid: pre-populate LIVE contexts for N flows at the slots the datapath "
	  "would pick" },
	{ "grow", cg_grow, NULL, 0,
	  { REQ(G_MEM), G_BAT_GPA, G_TYPE, REQ(G_CAPACITY), G_LAYOUT_SEED, G_JSON },
	  "grow a type of live tables like a driver: new blocks and pages, a new level if "
	  "needed, one new capacity segment, generation + 1; live contexts never move" },
	{ "add-type", cg_add_type, NULL, 0,
	  { REQ(G_MEM), G_BAT_GPA, G_TYPE_SPEC, G_LAYOUT_SEED, G_JSON },
	  "add a service type to live tables (--type NAME:ctx=A,block=B,services=S[,...]), "
	  "generation + 1" },
};


static void corrupt_notes(FILE *out, const struct command *c)
{
	unsigned int i;

	if (strcmp(c->name, "corrupt"))
		return;
	fprintf(out, "  Kinds:");
	for (i = 0; gbuild_corrupt_kinds[i]; i++)
		fprintf(out, " %s", gbuild_corrupt_kinds[i]);
	fputc('\n', out);
}

static const struct tool clat_guest = {
	.prog = "clat-guest",
	.opts = opt_defs,
	.cmds = commands,
	.ncmds = ARRAY_SIZE(commands),
	.repeat_id = G_TYPE_SPEC,
	.notes = corrupt_notes,
	.global_flags = "[-v|-q] ",
};


int main(int argc, char **argv)
{
	/* clat-guest plays the VM driver: inside a guest, a file on hugetlbfs
	 * is guest RAM at its guest-physical addresses. */
	gmem_guest_view(true);
	return tool_main(&clat_guest, argc - 1, argv + 1);
}
