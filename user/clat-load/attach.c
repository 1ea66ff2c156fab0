// SPDX-License-Identifier: GPL-2.0
/* attach / detach: load the dispatcher, attach it through pinned bpf_links.
 *
 * attach builds everything in a staging pin dir and publishes it with one
 * rename(), so a PF is either fully attached or untouched.  Links are only
 * kept alive by their pins: if attach dies before the rename, closing its fds
 * detaches every program, and the next attach removes the dead staging dir.
 */
#include "cli.h"
#include "common.h"
#include "json.h"
#include "attach.h"
#include "maps.h"

#include <dirent.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <net/if.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include "clat.skel.h"
#include "vfemu.h"

/* bpffs refuses '.' in names; ':' cannot occur in an interface name, so a
 * staging dir never collides with a PF's pin dir. */
#define STAGING_FMT "%s:staging:%d" /* <pin dir basename>, pid */

/* 1: clat is attached to pf from dir; 0: no state; -ESTALE: state that does
 * not match a live attachment (interface gone, or a different PF). */
static int attach_state(const char *dir, unsigned int pf_ifindex)
{
	char path[PATH_MAX];
	unsigned int ifindex = 0;
	int fd, err;

	err = pin_dir_check(dir);
	if (err)
		return err == -ENOENT ? 0 : err;
	err = pin_path(path, sizeof(path), dir, PIN_LINK_RX);
	if (err)
		return err;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -ESTALE;
	err = xdp_link_ifindex(fd, &ifindex);
	close(fd);
	return (!err && ifindex == pf_ifindex) ? 1 : -ESTALE;
}

/* A staging dir's owner still runs: its PID is alive and is a clat-load
 * (a PID reused by another program does not keep a dead attach's dir). */
static bool staging_owner_alive(int pid)
{
	char path[64], comm[32] = "";
	FILE *f;

	if (kill(pid, 0) < 0 && errno != EPERM)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	f = fopen(path, "re");
	if (!f)
		return true; /* cannot tell: keep it */
	if (!fgets(comm, sizeof(comm), f))
		comm[0] = '\0';
	fclose(f);
	return !strncmp(comm, "clat-load", 9);
}

/* Remove staging dirs left by an attach that was killed. */
static void reap_staging(const char *parent, const char *base)
{
	char prefix[NAME_MAX], path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	snprintf(prefix, sizeof(prefix), "%s:staging:", base);
	d = opendir(parent);
	if (!d)
		return;
	while ((de = readdir(d))) {
		int pid;

		if (strncmp(de->d_name, prefix, strlen(prefix)))
			continue;
		pid = atoi(de->d_name + strlen(prefix));
		if (pid > 0 && staging_owner_alive(pid))
			continue; /* another attach is running */
		if (pin_path(path, sizeof(path), parent, de->d_name) == 0)
			remove_pin_dir(path);
	}
	closedir(d);
}

static int ensure_tx_link(int prog_tx_fd, unsigned int ifindex, uint32_t xdp_flags,
			  const char *dir)
{
	char name[32], path[PATH_MAX];
	int fd;

	snprintf(name, sizeof(name), PIN_LINK_TX_FMT, ifindex);
	if (pin_path(path, sizeof(path), dir, name))
		return -ENAMETOOLONG;
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return xdp_link_pin(prog_tx_fd, ifindex, xdp_flags, dir, name);
}

/* Install one function and attach clat_tx to its representor. */
int port_install(const struct clat_maps *m, int prog_tx_fd, uint32_t xdp_flags,
		 const char *dir, uint32_t fn, const uint8_t mac[6], uint16_t vlan,
		 unsigned int ifindex)
{
	int err = ensure_tx_link(prog_tx_fd, ifindex, xdp_flags, dir);

	if (err)
		return err;
	err = fn_install(m, fn, mac, vlan, ifindex);
	if (err)
		pr_err("failed to install fn %u: %s", fn, strerror(-err));
	return err;
}

/* VF i's port: its representor, unless 'vf set --port' moved the fn to one
 * of the VF's spare taps (a VM handed over to a new VMM reads that one): a
 * re-sync must not move it back. */
static unsigned int vf_port(const struct clat_maps *m, const struct vfemu_pf *emu, int i)
{
	struct clat_vct_entry e = {};
	uint32_t fn = (uint32_t)emu->vfs[i].fn;
	int t;

	if (bpf_map_lookup_elem(m->vct, &fn, &e) == 0 && e.state != CLAT_FN_FREE)
		for (t = 0; t < emu->ntaps; t++)
			if (emu->taps[t].vf == i && (unsigned int)emu->taps[t].ifindex == e.ifindex)
				return e.ifindex;
	return (unsigned int)emu->vfs[i].rep_ifindex;
}

/* Make the function table match what vf-emu reports (fn 0 = host port). */
static int sync_vfemu(const struct clat_maps *m, const struct vfemu_pf *emu, int prog_tx_fd,
		      uint32_t xdp_flags, const char *dir)
{
	int i, err;

	err = port_install(m, prog_tx_fd, xdp_flags, dir, 0, emu->host_mac, 0,
			   emu->host_rep_ifindex);
	for (i = 0; !err && i < emu->numvfs; i++)
		err = port_install(m, prog_tx_fd, xdp_flags, dir, emu->vfs[i].fn, emu->vfs[i].mac,
				   0, vf_port(m, emu, i));
	return err;
}

static int pin_objects(struct clat *skel, const struct clat_maps *m, const char *dir)
{
	char path[PATH_MAX];
	int err = maps_pin(m, dir);

	if (!err && (pin_path(path, sizeof(path), dir, PIN_PROG_RX) ||
		     bpf_program__pin(skel->progs.clat_rx, path)))
		err = -errno;
	if (!err && (pin_path(path, sizeof(path), dir, PIN_PROG_TX) ||
		     bpf_program__pin(skel->progs.clat_tx, path)))
		err = -errno;
	if (err)
		pr_err("failed to pin programs in %s: %s", dir, strerror(-err));
	return err;
}

/* --pool-contexts (typed and bounded by the table) rounded up to whole buckets. */
static uint32_t pool_contexts_of(const struct invocation *inv)
{
	uint32_t v = opt_u32_or(inv, OPT_POOL_CONTEXTS, CLAT_POOL_DEFAULT);

	return (v + CLAT_BUCKET_SLOTS - 1) / CLAT_BUCKET_SLOTS * CLAT_BUCKET_SLOTS;
}

/* The pool maps take their size from the command line, before load. */
static int size_pool(struct clat *skel, uint32_t contexts)
{
	uint32_t buckets = contexts / CLAT_BUCKET_SLOTS;

	if (bpf_map__set_max_entries(skel->maps.pool_ctx, contexts) ||
	    bpf_map__set_max_entries(skel->maps.pool_meta, buckets) ||
	    bpf_map__set_max_entries(skel->maps.pool_dirty, (buckets + 63) / 64))
		return -EINVAL;
	return 0;
}

/* --json: what attach or detach did, on stdout (the log line says it on
 * stderr either way).  functions < 0: not known (nothing was loaded). */
static void report_json(const struct invocation *inv, const char *pf, const char *what,
			bool changed, const char *dir, const char *mode, int functions)
{
	struct json j;

	if (!has_opt(inv, OPT_JSON))
		return;
	json_init(&j, stdout);
	json_obj_open(&j, NULL);
	json_str(&j, "pf", pf);
	json_str(&j, "state", what);
	json_bool(&j, "changed", changed);
	json_str(&j, "pin_dir", dir);
	if (mode)
		json_str(&j, "mode", mode);
	if (functions >= 0)
		json_u64(&j, "functions", (uint64_t)functions);
	json_obj_close(&j);
	json_end(&j);
}

static int resync_attached(const char *pf, const char *dir, unsigned int pf_ifindex)
{
	struct clat_maps m;
	struct vfemu_pf emu;
	char path[PATH_MAX];
	uint32_t flags;
	int prog_fd, err;

	err = vfemu_query(pf, &emu);
	if (err == -ENODEV) {
		pr_info("clat already attached to %s (pins in %s); nothing changed", pf, dir);
		return 0;
	}
	if (err)
		return err;
	err = maps_open_pinned(dir, &m);
	if (err) {
		pr_err("failed to open pinned maps in %s: %s", dir, strerror(-err));
		return err;
	}
	prog_fd = pin_path(path, sizeof(path), dir, PIN_PROG_TX) ? -1 : bpf_obj_get(path);
	err = prog_fd < 0 ? -errno : attached_xdp_flags(pf_ifindex, &flags);
	if (!err)
		err = sync_vfemu(&m, &emu, prog_fd, flags, dir);
	if (prog_fd >= 0)
		close(prog_fd);
	maps_close(&m);
	if (!err)
		pr_info("clat already attached to %s; re-synced %d VFs from vf-emu", pf, emu.numvfs);
	return err;
}

int cmd_attach(const struct invocation *inv)
{
	const char *pf = inv->arg[0];
	char dir[PATH_MAX], parent[PATH_MAX], base[NAME_MAX], staging[PATH_MAX];
	unsigned int pf_ifindex;
	uint32_t xdp_flags, unknown, uplink = CLAT_UPLINK_SLOT, pool_contexts;
	struct vfemu_pf emu;
	struct clat_maps m;
	struct clat *skel = NULL;
	struct pin_dir spd;
	bool have_emu;
	int err, state;

	/* --mode native|skb and --unknown-unicast host|pass|drop: the enum's
	 * index is the value (CLAT_UNKNOWN_* follow the listed order). */
	xdp_flags = opt_u32(inv, OPT_MODE) ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
	unknown = opt_u32_or(inv, OPT_UNKNOWN_UNICAST, CLAT_UNKNOWN_HOST);
	pool_contexts = pool_contexts_of(inv);
	err = require_root();
	if (!err)
		err = resolve_ifindex(pf, &pf_ifindex);
	if (!err)
		err = ensure_bpffs();
	if (!err)
		err = pin_dir_for(pf, inv->opt[OPT_PIN_DIR], dir, sizeof(dir));
	if (err)
		return err;

	state = attach_state(dir, pf_ifindex);
	if (state == 1) {
		err = resync_attached(pf, dir, pf_ifindex);
		if (!err)
			report_json(inv, pf, "attached", false, dir, NULL, -1);
		return err;
	}
	if (state == -ESTALE) {
		pr_info("removing stale clat state in %s", dir);
		err = remove_pin_dir(dir);
		if (err)
			return err;
	} else if (state < 0) {
		pr_err("failed to attach clat to %s: pin dir %s refused (%s)", pf, dir,
		       strerror(-state));
		return state;
	}

	err = vfemu_query(pf, &emu);
	have_emu = !err;
	if (err && err != -ENODEV)
		return err;
	if (!have_emu)
		pr_info("%s is not a vf-emu PF; add functions with 'clat-load vf add'", pf);

	snprintf(parent, sizeof(parent), "%s", dir);
	snprintf(base, sizeof(base), "%s", basename(parent));
	snprintf(parent, sizeof(parent), "%s", dir);
	dirname(parent);
	snprintf(staging, sizeof(staging), "%s/" STAGING_FMT, parent, base, (int)getpid());
	/* Creates (or accepts, by the pin dir rules) CLAT_PIN_BASE too. */
	err = pin_dir_open(staging, true, &spd);
	pin_dir_close(&spd);
	if (err) {
		pr_err("failed to attach clat to %s: cannot create its staging dir %s", pf, staging);
		return err;
	}
	reap_staging(parent, base);

	skel = clat__open();
	if (!skel) {
		err = -errno;
		pr_err("failed to open BPF skeleton: %s", strerror(-err));
		goto fail;
	}
	skel->rodata->unknown_unicast = unknown;
	/* A plain uplink has no host port: the PF's stack is the host's, and
	 * floods reach it by XDP_PASS and the fns by clat_flood_tc's copies. */
	skel->rodata->plain_uplink = !have_emu;
	if (have_emu)
		bpf_program__set_autoload(skel->progs.clat_flood_tc, false);
	err = size_pool(skel, pool_contexts);
	if (!err)
		err = clat__load(skel);
	if (err) {
		pr_err("failed to load BPF programs: %s", strerror(-err));
		goto fail;
	}
	maps_from_skel(skel, &m);
	err = clock_refresh(&m);
	if (err) {
		pr_err("failed to set the datapath clock: %s", strerror(-err));
		goto fail;
	}
	err = pin_objects(skel, &m, staging);
	if (err)
		goto fail;

	/* The uplink's flood entry runs no program: a flood leaves tagged
	 * with its VLAN, as clat_tx made it. */
	if (bpf_map_update_elem(m.vf_ports, &uplink, &pf_ifindex, BPF_ANY) ||
	    bpf_map_update_elem(m.flood_ports, &uplink,
				&(struct bpf_devmap_val){ .ifindex = pf_ifindex, .bpf_prog.fd = -1 },
				BPF_ANY)) {
		err = -errno;
		pr_err("failed to add uplink port: %s", strerror(-err));
		goto fail;
	}
	if (have_emu) {
		err = sync_vfemu(&m, &emu, bpf_program__fd(skel->progs.clat_tx), xdp_flags,
				 staging);
		if (err)
			goto fail;
	}
	/* Before clat_rx: from its first pass on, every flood is copied. */
	if (!have_emu) {
		err = tcx_link_pin(bpf_program__fd(skel->progs.clat_flood_tc), pf_ifindex, staging,
				   PIN_LINK_FLOOD_TC);
		if (err)
			goto fail;
	}
	err = xdp_link_pin(bpf_program__fd(skel->progs.clat_rx), pf_ifindex, xdp_flags, staging,
			   PIN_LINK_RX);
	if (err)
		goto fail;
	test_stall("attach_staged"); /* everything attached, nothing published */
	if (rename(staging, dir) < 0) {
		err = -errno;
		pr_err("failed to publish pin dir %s: %s", dir, strerror(-err));
		goto fail;
	}
	clat__destroy(skel);
	pr_info("attached clat to %s (%s mode), %d functions, pins in %s", pf,
		xdp_flags == XDP_FLAGS_SKB_MODE ? "skb" : "native", have_emu ? emu.numvfs + 1 : 0,
		dir);
	report_json(inv, pf, "attached", true, dir, xdp_flags == XDP_FLAGS_SKB_MODE ? "skb" : "native",
		    have_emu ? emu.numvfs + 1 : 0);
	return 0;

fail:
	remove_pin_dir(staging);
	clat__destroy(skel);
	return err;
}

int cmd_detach(const struct invocation *inv)
{
	const char *pf = inv->arg[0];
	char dir[PATH_MAX], parent[PATH_MAX], base[NAME_MAX];
	int err;

	err = require_root();
	if (!err)
		err = pin_dir_for(pf, inv->opt[OPT_PIN_DIR], dir, sizeof(dir));
	if (err)
		return err;
	/* An attach killed before its rename left links pinned in its staging
	 * dir, still attached: detach must converge without an attach first. */
	snprintf(parent, sizeof(parent), "%s", dir);
	snprintf(base, sizeof(base), "%s", basename(parent));
	snprintf(parent, sizeof(parent), "%s", dir);
	err = pin_dir_check(dir);
	if (err == -ENOENT) {
		reap_staging(dirname(parent), base);
		pr_info("clat is not attached to %s (no %s); nothing to do", pf, dir);
		report_json(inv, pf, "detached", false, dir, NULL, -1);
		return 0;
	}
	if (err) {
		pr_err("failed to detach clat from %s: pin dir %s refused", pf, dir);
		return err;
	}
	reap_staging(dirname(parent), base);
	err = remove_pin_dir(dir);
	if (err)
		return err;
	if (!inv->opt[OPT_PIN_DIR]) {
		snprintf(parent, sizeof(parent), "%s", dir);
		rmdir(dirname(parent)); /* only succeeds once the last PF is gone */
	}
	pr_info("detached clat from %s", pf);
	report_json(inv, pf, "detached", true, dir, NULL, -1);
	return 0;
}
