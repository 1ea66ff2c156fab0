// SPDX-License-Identifier: GPL-2.0
/* `clat-load migrate`: a whole live migration between two emulated hosts
 * in one process, the VMM's part played by file copies and vf-emu.
 *
 * It drives the same source and destination phases as migrate-out and
 * migrate-in, but not over the device-state channel: playing the VMM, it
 * knows the exact delta of blocks the stop-copy wrote and copies them
 * into the destination's RAM file, so nothing is lost, and the
 * destination can stage its shadow before the pause (migrate-in --listen
 * cannot: guest RAM may not have arrived before COMMIT).
 *
 * The report lists every phase; downtime_ns is exactly the sum of the
 * phases from the pause to the announcement (stop_copy, delta_copy,
 * vm_move, switch, announce), and names what it excludes. */
#define _GNU_SOURCE /* SEEK_DATA, SEEK_HOLE */
#include "cli.h"
#include "json.h"
#include "migrate.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netns.h"
#include "nl.h"
#include "vfemu.h"

/* ---- the whole sequence across two emulated hosts ----------------------------- */

struct vm_addrs {
	struct nl_addr a[16];
	int n;
};

static int keep_addr(const struct nl_addr *a, void *data)
{
	struct vm_addrs *v = data;

	if (v->n < (int)ARRAY_SIZE(v->a))
		v->a[v->n++] = *a;
	return 0;
}

/* Runs fn inside netns ns (NULL: here). */
static int in_netns(const char *ns, int (*fn)(void *), void *arg)
{
	return ns ? netns_run(ns, fn, arg) : fn(arg);
}

struct move {
	const char *src_pf, *dst_pf, *vm_ns;
	int src_vf, dst_vf;
	uint8_t mac[6];
	struct vm_addrs addrs;
};

static int move_release(void *arg)
{
	struct move *mv = arg;

	return vfemu_release(mv->src_pf, mv->src_vf);
}

static int move_assign(void *arg)
{
	struct move *mv = arg;
	int err = vfemu_set_mac(mv->dst_pf, mv->dst_vf, mv->mac);

	return err ? err : vfemu_assign(mv->dst_pf, mv->dst_vf, mv->vm_ns);
}

/* One gratuitous ARP per IPv4 address, as QEMU sends after a migration, so
 * the switch learns the VM's new port. */
static int announce(void *arg)
{
	struct move *mv = arg;
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ARP),
				   .sll_halen = 6 };
	uint8_t f[42];
	int fd, i, err = 0;

	sll.sll_ifindex = (int)if_nametoindex("eth0");
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ARP));
	if (fd < 0 || !sll.sll_ifindex) {
		err = -errno;
		goto out;
	}
	memset(sll.sll_addr, 0xff, 6);
	for (i = 0; i < mv->addrs.n; i++) {
		if (mv->addrs.a[i].family != AF_INET)
			continue;
		memset(f, 0, sizeof(f));
		memset(f, 0xff, 6);
		memcpy(f + 6, mv->mac, 6);
		f[12] = 0x08, f[13] = 0x06;               /* ARP */
		f[15] = 1, f[16] = 0x08, f[18] = 6, f[19] = 4, f[21] = 1; /* request */
		memcpy(f + 22, mv->mac, 6);
		memcpy(f + 28, mv->addrs.a[i].addr, 4);   /* sender = target = own IP */
		memcpy(f + 38, mv->addrs.a[i].addr, 4);
		if (sendto(fd, f, sizeof(f), 0, (struct sockaddr *)&sll, sizeof(sll)) < 0)
			err = -errno;
	}
out:
	if (fd >= 0)
		close(fd);
	return err;
}

static int vm_addrs_get(const char *vm_ns, struct vm_addrs *v)
{
	struct nl_link l;
	struct nl nl;
	int err = nl_open(&nl, vm_ns);

	if (err)
		return err;
	err = nl_link_get(&nl, "eth0", &l);
	if (!err)
		err = nl_addr_dump(&nl, l.ifindex, keep_addr, v);
	nl_close(&nl);
	return err;
}

static int vm_addrs_put(const char *vm_ns, const struct vm_addrs *v)
{
	struct nl_link l;
	struct nl nl;
	int err = nl_open(&nl, vm_ns), i;

	if (err)
		return err;
	err = nl_link_get(&nl, "eth0", &l);
	for (i = 0; !err && i < v->n; i++)
		err = nl_addr_add(&nl, l.ifindex, &v->a[i]);
	nl_close(&nl);
	return err;
}

/* The VMM's part: the VM leaves its VF on host A and lands on a VF of host B
 * with the same MAC and addresses.  It announces itself (announce_vm) only
 * once a device serves its MAC, as QEMU does after the VM resumes: before
 * the switch, B's spoof check would drop the announcement as a frame with
 * a MAC that is not its fn's, and the wire would keep sending to A. */
static int move_vm(struct move *mv, const char *src_ns, const char *dst_ns)
{
	int err = vm_addrs_get(mv->vm_ns, &mv->addrs);

	if (!err)
		err = in_netns(src_ns, move_release, mv);
	if (!err)
		err = in_netns(dst_ns, move_assign, mv);
	if (!err)
		err = vm_addrs_put(mv->vm_ns, &mv->addrs);
	if (err)
		pr_err("failed to move the VM from %s VF %d to %s VF %d: %s", mv->src_pf, mv->src_vf,
		       mv->dst_pf, mv->dst_vf, strerror(-err));
	return err;
}

static int announce_vm(struct move *mv)
{
	int err = netns_run(mv->vm_ns, announce, mv);

	if (err)
		pr_err("failed to announce the VM's addresses: %s", strerror(-err));
	return err;
}

/* Undoes move_vm after a failed switch, so the resumed source reaches it. */
static int move_vm_back(struct move *mv, const char *src_ns, const char *dst_ns)
{
	struct move back = *mv;

	back.src_pf = mv->dst_pf;
	back.src_vf = mv->dst_vf;
	back.dst_pf = mv->src_pf;
	back.dst_vf = mv->src_vf;
	return move_vm(&back, dst_ns, src_ns);
}

/* The VMM moving guest RAM: a full copy during pre-copy, then only the
 * blocks dirtied since. */
static int copy_file(const char *from, const char *to, const struct gpa_list *only,
		     uint64_t block_size)
{
	int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, err = 0;
	static char buf[1 << 20];
	size_t i;
	ssize_t n;

	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_CLOEXEC | (only ? 0 : O_TRUNC), 0600);
	if (out < 0) {
		err = -errno;
		goto out;
	}
	if (!only) {
		off_t size = lseek(in, 0, SEEK_END);

		/* Sparse stays sparse: copy the data extents only. */
		if (size < 0 || ftruncate(out, size) < 0) {
			err = -errno;
			goto out;
		}
		for (off_t pos = lseek(in, 0, SEEK_DATA); pos < size;) {
			off_t hole;

			if (pos < 0) {
				err = errno == ENXIO ? 0 : -errno; /* ENXIO: only a hole is left */
				break;
			}
			hole = lseek(in, pos, SEEK_HOLE);
			if (hole < 0) {
				err = -errno;
				break;
			}
			for (; pos < hole; pos += n) {
				n = pread(in, buf, (size_t)(hole - pos) < sizeof(buf) ? (size_t)(hole - pos) : sizeof(buf), pos);
				if (n <= 0 || pwrite(out, buf, (size_t)n, pos) != n) {
					err = n < 0 ? -errno : -EIO;
					goto out;
				}
			}
			pos = lseek(in, hole, SEEK_DATA);
		}
		goto out;
	}
	for (i = 0; i < only->n; i++) {
		n = pread(in, buf, block_size, (off_t)only->gpa[i]);
		if (n != (ssize_t)block_size || pwrite(out, buf, block_size, (off_t)only->gpa[i]) != n) {
			err = -EIO;
			break;
		}
	}
out:
	if (out >= 0 && close(out) < 0 && !err)
		err = -errno;
	close(in);
	return err;
}

/* DEVMAP updates resolve ifindexes in the caller's netns, so each host's
 * port changes run inside that host's namespace. */
struct commit_args {
	struct mig_dst *d;
	const uint8_t *mac;
	struct gpa_list *delta;
	uint64_t reloaded;
};

static int commit_cb(void *arg)
{
	struct commit_args *c = arg;

	return mig_dst_commit(c->d, c->mac, c->delta, &c->reloaded);
}

static int resume_cb(void *arg)
{
	return mig_src_set_state(arg, CLAT_FN_ACTIVE);
}

/* Phases back to back: each one's time runs from the previous one's end,
 * so the phases of the downtime add up to it exactly, report writing
 * included. */
struct lap {
	uint64_t last;
};

static uint64_t lap(struct lap *l)
{
	uint64_t now = mig_now_ns(), d = now - l->last;

	l->last = now;
	return d;
}

static void json_ns(struct json *j, const char *key, uint64_t ns)
{
	json_obj_open(j, key);
	json_u64(j, "ns", ns);
	json_obj_close(j);
}

/* Largest block size of the tables: delta entries are block GPAs of any
 * type, and copying that much is safe, the source file being the newer
 * copy of all of it. */
static uint64_t max_block(const struct gtables *t)
{
	uint64_t b = 0;

	for (unsigned int i = 0; i < t->ntypes; i++)
		if (t->types[i].e.block_size > b)
			b = t->types[i].e.block_size;
	return b;
}

int cmd_migrate(const struct invocation *inv)
{
	const char *src_ns = inv->opt[OPT_SRC_NETNS], *dst_ns = inv->opt[OPT_DST_NETNS];
	bool moved = false, switched = false;
	struct mig_copy_stats cs = {};
	struct move mv = {};
	uint64_t t0 = mig_now_ns(), down = 0, ns, reloaded = 0, bsize;
	unsigned int rounds = opt_u32_or(inv, OPT_ROUNDS, MIG_DEFAULT_ROUNDS);
	struct mig_dst d = {};
	struct mig_src s = { .ch.fd = -1 };
	struct lap l;
	struct json j;
	uint32_t fn = opt_u32(inv, OPT_FN), to_fn = opt_u32(inv, OPT_TO_FN);
	int err = 0;

	if (fn == 0 || to_fn == 0) {
		pr_err("migrate: fn 0 is the host port, not a VF");
		err = -EUSAGE;
	}
	if (!err)
		err = require_root();
	if (err)
		return err;
	err = mig_src_begin(&s, inv->arg[0], inv->opt[OPT_SRC_PIN_DIR], fn, NULL);
	if (err == -ENOENT || (!err && !s.have_mac)) {
		pr_err("failed to migrate: fn %u on %s has no guest tables or no MAC", fn, inv->arg[0]);
		err = -ENOENT;
	}
	if (err)
		goto out;
	json_init(&j, mig_report_stream(inv));
	json_obj_open(&j, NULL);
	json_str(&j, "src_pf", inv->arg[0]);
	json_str(&j, "dst_pf", inv->arg[1]);
	json_u64(&j, "fn", fn);
	json_u64(&j, "to_fn", to_fn);

	/* PRE_COPY on A while the VM runs; the VMM copies guest RAM meanwhile. */
	err = mig_precopy(&s, rounds, &j);
	test_stall("pre_copy");
	l.last = mig_now_ns();
	if (!err)
		err = copy_file(s.gi.mem_path, inv->opt[OPT_DST_MEM], NULL, 0);
	json_ns(&j, "ram_copy", lap(&l));

	/* RESUMING, staged on B while A still serves. */
	if (!err)
		err = mig_dst_open(&d, inv->arg[1], inv->opt[OPT_DST_PIN_DIR], to_fn,
				   inv->opt[OPT_DST_MEM]);
	if (!err)
		err = mig_dst_prepare(&d, s.gi.bat_gpa);
	json_obj_open(&j, "prepare");
	json_u64(&j, "ns", lap(&l));
	json_u64(&j, "live_contexts", d.st.live);
	json_obj_close(&j);
	if (err) {
		json_obj_close(&j);
		json_end(&j);
		goto out; /* A was never paused: it keeps serving */
	}

	/* Downtime starts: STOP_COPY on A, the last dirty blocks to B's RAM. */
	lap(&l); /* the pause starts now */
	err = mig_src_stop(&s, &cs);
	ns = lap(&l);
	cs.ns = ns;
	down += ns;
	mig_json_copy(&j, "stop_copy", &cs);
	bsize = max_block(&d.t);
	if (!err)
		err = copy_file(s.gi.mem_path, inv->opt[OPT_DST_MEM], &s.scratch, bsize);
	json_obj_open(&j, "delta_copy");
	json_u64(&j, "blocks", s.scratch.n);
	json_u64(&j, "bytes", s.scratch.n * bsize);
	json_u64(&j, "ns", ns = lap(&l));
	json_obj_close(&j);
	down += ns;

	/* The VM moves, then B switches in one step, then the VM announces. */
	mv = (struct move){ .src_pf = inv->arg[0], .dst_pf = inv->arg[1],
			    .vm_ns = inv->opt[OPT_VM_NETNS], .src_vf = (int)fn - 1,
			    .dst_vf = (int)to_fn - 1 };
	memcpy(mv.mac, s.mac.mac, 6);
	if (!err) {
		err = move_vm(&mv, src_ns, dst_ns);
		moved = !err;
	}
	json_ns(&j, "vm_move", ns = lap(&l));
	down += ns;
	if (!err) {
		struct commit_args ca = { &d, mv.mac, &s.scratch, 0 };

		err = in_netns(dst_ns, commit_cb, &ca);
		reloaded = ca.reloaded;
	}
	json_obj_open(&j, "switch");
	json_u64(&j, "blocks_reloaded", reloaded);
	json_u64(&j, "ns", ns = lap(&l));
	json_obj_close(&j);
	down += ns;
	if (!err)
		announce_vm(&mv); /* a lost announcement does not fail the migration */
	json_ns(&j, "announce", ns = lap(&l));
	down += ns;
	json_u64(&j, "downtime_ns", down);
	json_str(&j, "downtime_is", "stop_copy + delta_copy + vm_move + switch + announce");
	json_str(&j, "downtime_excludes", "pre_copy, ram_copy and prepare (before the pause), "
		 "release (after B serves)");

	/* A lets go of the fn: its maps are gone. */
	if (!err) {
		switched = true;
		err = mig_src_release(&s);
	}
	json_ns(&j, "release", lap(&l));
	json_u64(&j, "total_ns", mig_now_ns() - t0);
	json_obj_close(&j);
	json_end(&j);
	if (err && switched) {
		/* B serves the VM; only A's cleanup failed: never resume A. */
		pr_err("migrated fn %u, but failed to release it on %s: %s (run 'clat-load vf del')",
		       fn, inv->arg[0], strerror(-err));
	} else if (err) {
		pr_err("failed to migrate fn %u: %s; resuming it on %s", fn, strerror(-err),
		       inv->arg[0]);
		if (moved && move_vm_back(&mv, src_ns, dst_ns))
			pr_err("the VM could not be moved back to %s VF %d", mv.src_pf, mv.src_vf);
		in_netns(src_ns, resume_cb, &s);
		if (moved)
			announce_vm(&mv);
	} else {
		pr_info("migrated fn %u on %s to fn %u on %s: %llu live contexts, downtime %.3f ms "
			"(pause to announcement; excludes pre-copy, RAM copy, prepare, release)",
			fn, inv->arg[0], to_fn, inv->arg[1], (unsigned long long)d.st.live,
			(double)down / 1e6);
	}
	mig_report_close(inv, j.out);
out:
	mig_dst_close(&d);
	mig_src_close(&s);
	return err;
}
