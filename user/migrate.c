// SPDX-License-Identifier: GPL-2.0
/* Live migration of a function's contexts, following VFIO migration v2:
 * RUNNING -> PRE_COPY -> STOP_COPY on the source, RESUMING on the destination.
 *
 * Nothing per connection is copied out of the device: the contexts are
 * written back to their GPAs in guest memory (which the VMM moves anyway),
 * and the destination rebuilds its maps from the guest's tables and flips
 * VCT[fn].  The per-phase times and bytes are reported in --json.
 *
 * Interruption: the source only changes VCT state (ACTIVE <-> QUIESCED) before
 * the final release, so a killed migrate-out leaves it serving or resumable
 * (--abort); every run starts with a full write-back, so a rerun is safe.
 * The destination builds everything before its switch, so a killed
 * migrate-in leaves nothing visible to the datapath. */
#define _GNU_SOURCE /* SEEK_DATA, SEEK_HOLE */
#include "cli.h"
#include "common.h"
#include "json.h"
#include "shadow.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "netns.h"
#include "nl.h"
#include "vfemu.h"

#define DEFAULT_ROUNDS 5
#define DIRTY_CONVERGED 8 /* blocks: stop pre-copy once a round copies this few */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- source ---------------------------------------------------------------- */

struct src {
	char dir[PATH_MAX];
	struct clat_maps m;
	uint32_t fn;
	struct clat_guest_info gi;
	struct clat_vct_entry vct;
	struct clat_mac_key mac;
	bool have_mac;
	struct shadow_writeback wb; /* open from the first copy round on */
	bool wb_open;
};

struct copy_stats {
	uint64_t contexts, bytes, blocks, ns;
};

static int src_open(const char *pf, const char *pin_dir, uint32_t fn, struct src *s)
{
	int err;

	memset(s, 0, sizeof(*s));
	s->fn = fn;
	err = open_attached(pf, pin_dir, s->dir, sizeof(s->dir), &s->m);
	if (err)
		return err;
	bpf_map_lookup_elem(s->m.guests, &fn, &s->gi);
	bpf_map_lookup_elem(s->m.vct, &fn, &s->vct);
	s->have_mac = fn_macs(&s->m, fn, &s->mac, 1) == 1;
	return 0;
}

static void src_close(struct src *s)
{
	if (s->wb_open)
		shadow_writeback_close(&s->wb);
	s->wb_open = false;
	maps_close(&s->m);
}

static int set_fn_state(struct src *s, uint32_t state)
{
	uint32_t fn = s->fn;

	if (bpf_map_lookup_elem(s->m.vct, &fn, &s->vct))
		return -errno;
	s->vct.state = state;
	if (bpf_map_update_elem(s->m.vct, &fn, &s->vct, BPF_ANY))
		return -errno;
	/* Floods reach exactly the ports in flood_ports: a paused VF gets none. */
	if (state == CLAT_FN_QUIESCED) {
		bpf_map_delete_elem(s->m.vf_ports, &fn);
		return flood_port_set(&s->m, fn, 0);
	}
	if (bpf_map_update_elem(s->m.vf_ports, &fn, &s->vct.ifindex, BPF_ANY))
		return -errno;
	return flood_port_set(&s->m, fn, s->vct.ifindex);
}

/* Validating the tables costs O(contexts): done once, before the first
 * round, so that a stop-copy costs only its scan and its dirty blocks. */
static int writeback_open(struct src *s)
{
	int err = s->wb_open ? 0 : shadow_writeback_open(&s->m, s->fn, &s->wb);

	s->wb_open = !err;
	return err;
}

static int copy_round(struct src *s, enum sync_mode mode, struct gpa_list *blocks,
		      struct copy_stats *cs)
{
	uint64_t t0 = mono_ns();
	size_t before = blocks ? blocks->n : 0;
	int err = writeback_open(s);

	if (!err)
		err = shadow_writeback_round(&s->wb, mode, &cs->contexts, &cs->bytes, blocks);
	cs->blocks = blocks ? blocks->n - before : 0;
	cs->ns = mono_ns() - t0;
	return err;
}

static void json_copy(struct json *j, const char *key, const struct copy_stats *cs)
{
	json_obj_open(j, key);
	json_u64(j, "contexts", cs->contexts);
	json_u64(j, "bytes", cs->bytes);
	json_u64(j, "blocks", cs->blocks);
	json_u64(j, "ns", cs->ns);
	json_obj_close(j);
}

/* PRE_COPY: a full write-back, then rounds of dirty blocks while traffic runs. */
static int precopy(struct src *s, unsigned int rounds, struct json *j)
{
	struct gpa_list scratch = {};
	struct copy_stats cs = {};
	unsigned int r;
	int err;

	json_arr_open(j, "pre_copy");
	err = copy_round(s, SYNC_ALL_CLEAR, NULL, &cs);
	json_copy(j, NULL, &cs);
	for (r = 1; !err && r <= rounds; r++) {
		scratch.n = 0;
		err = copy_round(s, SYNC_DIRTY, &scratch, &cs);
		json_copy(j, NULL, &cs);
		if (cs.blocks <= DIRTY_CONVERGED)
			break;
	}
	json_arr_close(j);
	free(scratch.gpa);
	return err;
}

/* STOP_COPY: pause the fn, let in-flight frames finish, copy the last dirty
 * blocks; their GPAs are the delta the destination must re-read. */
static int stop_copy(struct src *s, bool resumed, struct gpa_list *delta, struct copy_stats *cs)
{
	/* Tables the guest changed during the pre-copy fail here, before the
	 * pause, with the fn still serving. */
	int err = writeback_open(s);

	if (!err)
		err = shadow_writeback_check(&s->wb);
	if (!err)
		err = set_fn_state(s, CLAT_FN_QUIESCED);
	if (err)
		return err;
	/* An XDP program runs for microseconds; 2 ms covers any frame that saw
	 * ACTIVE just before the flip. */
	usleep(2000);
	test_stall("stop_copy");
	if (resumed)
		return copy_round(s, SYNC_ALL_CLEAR, NULL, cs); /* marks may be lost */
	return copy_round(s, SYNC_DIRTY, delta, cs);
}

static int release_fn(struct src *s)
{
	char name[32], path[PATH_MAX];
	int err = shadow_remove(&s->m, s->dir, s->fn);

	if (!err)
		err = fn_remove(&s->m, s->fn);
	snprintf(name, sizeof(name), PIN_LINK_TX_FMT, s->vct.ifindex);
	if (!err && !pin_path(path, sizeof(path), s->dir, name))
		unlink(path); /* the representor gets no more frames to steer */
	return err;
}

/* --json goes to stdout; without it the report is discarded. */
static FILE *report_stream(const struct invocation *inv)
{
	FILE *f = has_opt(inv, OPT_JSON) ? stdout : fopen("/dev/null", "w");

	return f ? f : stdout;
}

static void report_close(const struct invocation *inv, FILE *f)
{
	if (!has_opt(inv, OPT_JSON) && f != stdout)
		fclose(f);
}

static int parse_fn_req(const struct invocation *inv, enum opt_id id, const char *name,
			uint32_t *fn)
{
	if (!has_opt(inv, id)) {
		pr_err("%s: missing %s", inv->cmd->name, name);
		return -EUSAGE;
	}
	return parse_u32(inv->opt[id], name, CLAT_MAX_FN - 1, fn);
}

static int parse_rounds(const struct invocation *inv, unsigned int *rounds)
{
	uint32_t r = DEFAULT_ROUNDS;
	int err = has_opt(inv, OPT_ROUNDS) ? parse_u32(inv->opt[OPT_ROUNDS], "--rounds", 64, &r) : 0;

	*rounds = r;
	return err;
}

static int write_delta(const char *path, const struct gpa_list *delta)
{
	FILE *f = fopen(path, "w");
	size_t i;

	if (!f) {
		pr_err("failed to write delta %s: %s", path, strerror(errno));
		return -errno;
	}
	for (i = 0; i < delta->n; i++)
		fprintf(f, "0x%llx\n", (unsigned long long)delta->gpa[i]);
	return fclose(f) ? -errno : 0;
}

/* Source side, whole: PRE_COPY, STOP_COPY, release.  The JSON object must be
 * open; phases are written into it. */
static int migrate_out(struct src *s, unsigned int rounds, struct gpa_list *delta, struct json *j,
		       uint64_t *downtime_start)
{
	struct copy_stats cs = {};
	bool resumed = s->vct.state == CLAT_FN_QUIESCED;
	uint64_t t0;
	int err = 0;

	if (!resumed) {
		err = precopy(s, rounds, j);
		test_stall("pre_copy");
	} else {
		err = writeback_open(s); /* outside the downtime it reports */
	}
	*downtime_start = mono_ns();
	if (!err)
		err = stop_copy(s, resumed, delta, &cs);
	json_copy(j, "stop_copy", &cs);
	if (err)
		return err;
	t0 = mono_ns();
	err = release_fn(s);
	json_obj_open(j, "release");
	json_u64(j, "ns", mono_ns() - t0);
	json_obj_close(j);
	return err;
}

int cmd_migrate_out(const struct invocation *inv)
{
	struct gpa_list delta = {};
	unsigned int rounds;
	uint64_t t0 = mono_ns(), down;
	struct json j;
	struct src s;
	uint32_t fn;
	int err;

	err = parse_fn_req(inv, OPT_FN, "--fn", &fn);
	if (!err)
		err = parse_rounds(inv, &rounds);
	if (!err)
		err = require_root();
	if (!err)
		err = src_open(inv->arg[0], inv->opt[OPT_PIN_DIR], fn, &s);
	if (err)
		return err;
	if (has_opt(inv, OPT_ABORT)) {
		err = s.vct.state == CLAT_FN_QUIESCED ? set_fn_state(&s, CLAT_FN_ACTIVE) : 0;
		if (!err)
			pr_info("fn %u: %s", fn, s.vct.state == CLAT_FN_ACTIVE && s.gi.bat_gpa
							 ? "serving (migration aborted)"
							 : "nothing to abort");
		goto out;
	}
	if (!s.gi.bat_gpa) {
		pr_info("fn %u has no guest tables on %s: nothing to migrate out", fn, inv->arg[0]);
		goto out;
	}
	json_init(&j, report_stream(inv));
	json_obj_open(&j, NULL);
	json_u64(&j, "fn", fn);
	json_str(&j, "mem", s.gi.mem_path);
	json_u64(&j, "bat_gpa", s.gi.bat_gpa);
	err = migrate_out(&s, rounds, &delta, &j, &down);
	json_u64(&j, "downtime_ns", mono_ns() - down);
	json_u64(&j, "total_ns", mono_ns() - t0);
	json_obj_close(&j);
	json_end(&j);
	report_close(inv, j.out);
	if (!err && has_opt(inv, OPT_DELTA))
		err = write_delta(inv->opt[OPT_DELTA], &delta);
	if (err)
		pr_err("failed to migrate out fn %u: %s (run again, or --abort to resume)", fn,
		       strerror(-err));
	else
		pr_info("fn %u: contexts written back to %s; fn released", fn, s.gi.mem_path);
out:
	free(delta.gpa);
	src_close(&s);
	return err;
}

/* ---- destination ----------------------------------------------------------- */

struct dst {
	char dir[PATH_MAX];
	char mem[PATH_MAX];
	struct clat_maps m;
	uint32_t fn;
	struct clat_vct_entry vct;
	struct gmem g;
	struct gtables t;
	struct shadow_stage st;
	bool built;
};

static void dst_close(struct dst *d)
{
	if (d->built) {
		shadow_stage_free(&d->st);
		gtables_free(&d->t);
		gmem_close(&d->g);
	}
	maps_close(&d->m);
}

/* RESUMING, first half: validate the incoming tables and build every map,
 * invisible to the datapath until the commit. */
static int dst_prepare(const char *pf, const char *pin_dir, uint32_t fn, const char *mem,
		       uint64_t bat_gpa, struct dst *d)
{
	struct clat_guest_info gi = {};
	struct gmem_id id;
	char msg[512];
	uint32_t other;
	int err;

	memset(d, 0, sizeof(*d));
	d->fn = fn;
	err = open_attached(pf, pin_dir, d->dir, sizeof(d->dir), &d->m);
	if (err)
		return err;
	bpf_map_lookup_elem(d->m.vct, &fn, &d->vct);
	bpf_map_lookup_elem(d->m.guests, &fn, &gi);
	if (d->vct.state == CLAT_FN_FREE || !d->vct.ifindex) {
		pr_err("failed to migrate in: fn %u has no port on %s", fn, pf);
		return -ENODEV;
	}
	err = gmem_intake(mem, d->mem, sizeof(d->mem), &id);
	if (err)
		return err;
	if (guest_mem_user(&d->m, fn, &id, &other)) {
		pr_err("failed to migrate in fn %u: guest memory %s is already attached to fn %u",
		       fn, d->mem, other);
		return -EBUSY;
	}
	if (gi.bat_gpa || d->vct.bat_gpa) {
		/* Re-plugging under live traffic would roll contexts back to the file. */
		pr_err("failed to migrate in: fn %u already serves guest tables (%s); detach them first",
		       fn, gi.mem_path);
		return -EBUSY;
	}
	if (shadow_leftovers(&d->m, fn)) { /* a killed attach or migrate-in */
		err = shadow_remove(&d->m, d->dir, fn);
		if (err)
			return err;
	}
	err = gmem_open_id(d->mem, false, &id, &d->g);
	if (err)
		return err;
	err = gtables_load(&d->g, bat_gpa, &d->t, msg, sizeof(msg));
	if (err) {
		pr_err("failed to migrate in fn %u: incoming guest tables refused: %s", fn, msg);
		gmem_close(&d->g);
		return err;
	}
	/* Straight into pool extents: no map to create, no RCU wait. */
	err = shadow_stage_build(&d->st, &d->m, fn, d->mem, &d->g, &d->t);
	if (err) {
		gtables_free(&d->t);
		gmem_close(&d->g);
		return err;
	}
	d->built = true;
	return 0;
}

/* RESUMING, second half: re-read the final delta, then switch in one step:
 * tables live, VCT[fn] ACTIVE, and the MAC mapped to fn last. */
static int dst_commit(struct dst *d, const uint8_t mac[6], struct gpa_list *delta,
		      uint64_t *reloaded)
{
	int err = 0;

	*reloaded = 0;
	if (delta && delta->n)
		err = shadow_stage_reload(&d->st, &d->g, &d->t, delta->gpa, delta->n, reloaded);
	test_stall("commit");
	if (!err)
		err = shadow_stage_commit(&d->st, d->dir);
	if (!err) {
		err = fn_install(&d->m, d->fn, mac, 0, d->vct.ifindex);
		if (err) /* all or nothing: take the tables back off */
			shadow_remove(&d->m, d->dir, d->fn);
	}
	return err;
}

static int parse_bat(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	if (errno || end == s || *end) {
		pr_err("invalid --bat-gpa '%s'", s);
		return -EUSAGE;
	}
	return 0;
}

int cmd_migrate_in(const struct invocation *inv)
{
	uint64_t t0 = mono_ns(), t1, bat, reloaded;
	uint8_t mac[6];
	struct dst d = {};
	struct json j;
	uint32_t fn;
	int err;

	err = parse_fn_req(inv, OPT_FN, "--fn", &fn);
	if (!err && (!has_opt(inv, OPT_MAC) || !has_opt(inv, OPT_MEM) || !has_opt(inv, OPT_BAT_GPA))) {
		pr_err("migrate-in: --mac, --mem and --bat-gpa are required");
		err = -EUSAGE;
	}
	if (!err)
		err = parse_mac(inv->opt[OPT_MAC], mac);
	if (!err)
		err = parse_bat(inv->opt[OPT_BAT_GPA], &bat);
	if (!err)
		err = require_root();
	if (err)
		return err;
	err = dst_prepare(inv->arg[0], inv->opt[OPT_PIN_DIR], fn, inv->opt[OPT_MEM], bat, &d);
	t1 = mono_ns();
	if (!err)
		err = dst_commit(&d, mac, NULL, &reloaded);
	if (!err && has_opt(inv, OPT_JSON)) {
		json_init(&j, stdout);
		json_obj_open(&j, NULL);
		json_u64(&j, "fn", fn);
		json_u64(&j, "live_contexts", d.st.live);
		json_obj_open(&j, "prepare");
		json_u64(&j, "ns", t1 - t0);
		json_obj_close(&j);
		json_obj_open(&j, "commit");
		json_u64(&j, "ns", mono_ns() - t1);
		json_obj_close(&j);
		json_obj_close(&j);
		json_end(&j);
	}
	if (!err)
		pr_info("fn %u: migrated in, %llu live contexts, switch took %.3f ms", fn,
			(unsigned long long)d.st.live, (mono_ns() - t1) / 1e6);
	else
		pr_err("failed to migrate in fn %u: %s", fn, strerror(-err));
	dst_close(&d);
	return err;
}

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
	struct dst *d;
	const uint8_t *mac;
	struct gpa_list *delta;
	uint64_t reloaded;
};

static int commit_cb(void *arg)
{
	struct commit_args *c = arg;

	return dst_commit(c->d, c->mac, c->delta, &c->reloaded);
}

static int resume_cb(void *arg)
{
	return set_fn_state(arg, CLAT_FN_ACTIVE);
}

int cmd_migrate(const struct invocation *inv)
{
	const char *src_ns = inv->opt[OPT_SRC_NETNS], *dst_ns = inv->opt[OPT_DST_NETNS];
	struct gpa_list delta = {};
	bool moved = false, switched = false;
	struct move mv = {};
	uint64_t t0 = mono_ns(), down = 0, t, reloaded = 0, block_size;
	unsigned int rounds;
	struct dst d = {};
	struct src s = {};
	struct json j;
	uint32_t fn, to_fn;
	int err;

	err = parse_fn_req(inv, OPT_FN, "--fn", &fn);
	if (!err)
		err = parse_fn_req(inv, OPT_TO_FN, "--to-fn", &to_fn);
	if (!err)
		err = parse_rounds(inv, &rounds);
	if (!err && (!has_opt(inv, OPT_VM_NETNS) || !has_opt(inv, OPT_DST_MEM))) {
		pr_err("migrate: --vm-netns and --dst-mem are required");
		err = -EUSAGE;
	}
	if (!err && (fn == 0 || to_fn == 0)) {
		pr_err("migrate: fn 0 is the host port, not a VF");
		err = -EUSAGE;
	}
	if (!err)
		err = require_root();
	if (!err)
		err = src_open(inv->arg[0], inv->opt[OPT_SRC_PIN_DIR], fn, &s);
	if (err)
		return err;
	if (!s.gi.bat_gpa || !s.have_mac) {
		pr_err("failed to migrate: fn %u on %s has no guest tables or no MAC", fn, inv->arg[0]);
		err = -ENOENT;
		goto out;
	}
	json_init(&j, report_stream(inv));
	json_obj_open(&j, NULL);
	json_str(&j, "src_pf", inv->arg[0]);
	json_str(&j, "dst_pf", inv->arg[1]);
	json_u64(&j, "fn", fn);
	json_u64(&j, "to_fn", to_fn);

	/* PRE_COPY on A while the VM runs; the VMM copies guest RAM meanwhile. */
	err = precopy(&s, rounds, &j);
	test_stall("pre_copy");
	t = mono_ns();
	if (!err)
		err = copy_file(s.gi.mem_path, inv->opt[OPT_DST_MEM], NULL, 0);
	json_obj_open(&j, "ram_copy");
	json_u64(&j, "ns", mono_ns() - t);
	json_obj_close(&j);

	/* RESUMING, staged on B while A still serves. */
	t = mono_ns();
	if (!err)
		err = dst_prepare(inv->arg[1], inv->opt[OPT_DST_PIN_DIR], to_fn, inv->opt[OPT_DST_MEM],
				  s.gi.bat_gpa, &d);
	json_obj_open(&j, "prepare");
	json_u64(&j, "ns", mono_ns() - t);
	json_u64(&j, "live_contexts", d.st.live);
	json_obj_close(&j);
	if (err) {
		json_obj_close(&j);
		json_end(&j);
		goto out; /* A was never paused: it keeps serving */
	}

	/* Downtime starts: STOP_COPY on A, the last dirty blocks to B's RAM. */
	down = mono_ns();
	{
		struct copy_stats cs = {};

		err = stop_copy(&s, false, &delta, &cs);
		json_copy(&j, "stop_copy", &cs);
	}
	/* Delta entries are block GPAs of any type: copying the largest block
	 * size is safe, the source file is the newer copy of all of it. */
	block_size = 0;
	for (unsigned int i = 0; i < d.t.ntypes; i++)
		if (d.t.types[i].e.block_size > block_size)
			block_size = d.t.types[i].e.block_size;
	t = mono_ns();
	if (!err)
		err = copy_file(s.gi.mem_path, inv->opt[OPT_DST_MEM], &delta, block_size);
	json_obj_open(&j, "delta_copy");
	json_u64(&j, "blocks", delta.n);
	json_u64(&j, "bytes", delta.n * block_size);
	json_u64(&j, "ns", mono_ns() - t);
	json_obj_close(&j);

	/* The VM moves, then B switches in one step. */
	mv = (struct move){ .src_pf = inv->arg[0], .dst_pf = inv->arg[1],
			    .vm_ns = inv->opt[OPT_VM_NETNS], .src_vf = (int)fn - 1,
			    .dst_vf = (int)to_fn - 1 };
	memcpy(mv.mac, s.mac.mac, 6);
	t = mono_ns();
	if (!err) {
		err = move_vm(&mv, src_ns, dst_ns);
		moved = !err;
	}
	json_obj_open(&j, "vm_move");
	json_u64(&j, "ns", mono_ns() - t);
	json_obj_close(&j);
	t = mono_ns();
	if (!err) {
		struct commit_args ca = { &d, mv.mac, &delta, 0 };

		err = in_netns(dst_ns, commit_cb, &ca);
		reloaded = ca.reloaded;
	}
	if (!err)
		announce_vm(&mv); /* a lost announcement does not fail the migration */
	json_obj_open(&j, "switch");
	json_u64(&j, "ns", mono_ns() - t);
	json_u64(&j, "blocks_reloaded", reloaded);
	json_obj_close(&j);
	json_u64(&j, "downtime_ns", mono_ns() - down);

	/* A lets go of the fn: its maps are gone. */
	t = mono_ns();
	if (!err) {
		switched = true;
		err = release_fn(&s);
	}
	json_obj_open(&j, "release");
	json_u64(&j, "ns", mono_ns() - t);
	json_obj_close(&j);
	json_u64(&j, "total_ns", mono_ns() - t0);
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
		pr_info("migrated fn %u on %s to fn %u on %s: %llu live contexts, downtime %.3f ms",
			fn, inv->arg[0], to_fn, inv->arg[1], (unsigned long long)d.st.live,
			(double)(mono_ns() - down) / 1e6);
	}
	report_close(inv, j.out);
out:
	free(delta.gpa);
	dst_close(&d);
	src_close(&s);
	return err;
}
