// SPDX-License-Identifier: GPL-2.0
/* upgrade: replace the running programs of an attached PF with a new BPF
 * object, keeping every pinned map and never leaving a device without a
 * program.
 *
 * The new object reuses the pinned maps (so counters, functions and guest
 * contexts carry over), gets the running instance's const volatile config
 * back from the running program's .rodata, and is loaded.  Each pinned XDP
 * link is then switched with BPF_LINK_UPDATE (BPF_F_REPLACE, so a link that
 * changed meanwhile is not overwritten), which the kernel does atomically per
 * device.  If any step fails, links already switched go back to the old
 * programs and the pins are as before.
 */
#include "cli.h"
#include "common.h"
#include "json.h"
#include "rodata.h"
#include "maps.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "clat.skel.h"

/* Layout migrations, run before load when the new object's layout version
 * differs from the running one.  A migration may hand the object converted
 * copies of maps (bpf_map__reuse_fd) but must not change the pinned maps:
 * the upgrade may still be refused after it. */
struct layout_migration {
	uint32_t from, to;
	int (*prepare)(const char *dir, struct bpf_object *obj);
};

static const struct layout_migration migrations[] = {
	{ 0, 0, NULL }, /* none yet: every layout change so far needs a fresh attach */
};

static const struct layout_migration *find_migration(uint32_t from, uint32_t to)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(migrations) && migrations[i].prepare; i++)
		if (migrations[i].from == from && migrations[i].to == to)
			return &migrations[i];
	return NULL;
}

struct link_ent {
	char name[NAME_MAX];
	int fd;
	int old_prog, new_prog; /* borrowed fds */
	bool swapped;
};

struct upgrade {
	const char *pf, *obj_path;
	char dir[PATH_MAX];
	struct clat *skel;      /* the embedded object, or NULL with --obj */
	struct bpf_object *obj;
	int old_fd[2], new_fd[2]; /* [0] clat_rx, [1] clat_tx */
	/* clat_flood_tc of a plain uplink: the program its link runs (owned;
	 * not pinned as a program), and the new object's (-1: none). */
	int tc_old_fd, tc_new_fd;
	__u32 tc_old_id, tc_new_id;
	char tc_old_tag[17], tc_new_tag[17];
	__u32 old_id[2], new_id[2];
	char old_tag[2][17], new_tag[2][17];
	uint32_t old_layout, new_layout;
	int nopts;
	struct link_ent *links;
	int nlinks;
};

static const char *const prog_names[2] = { "clat_rx", "clat_tx" };
static const char *const prog_pins[2] = { PIN_PROG_RX, PIN_PROG_TX };

static const char *obj_label(const struct upgrade *u)
{
	return u->obj_path ? u->obj_path : "the built-in object";
}

static int open_old(struct upgrade *u)
{
	char path[PATH_MAX];
	int i, err;

	for (i = 0; i < 2; i++) {
		if (pin_path(path, sizeof(path), u->dir, prog_pins[i]))
			return -ENAMETOOLONG;
		u->old_fd[i] = bpf_obj_get(path);
		if (u->old_fd[i] < 0) {
			err = -errno;
			pr_err("failed to open pinned program %s: %s", path, strerror(-err));
			return err;
		}
		err = prog_ident(u->old_fd[i], &u->old_id[i], u->old_tag[i]);
		if (err)
			return err;
	}
	return 0;
}

static int open_new(struct upgrade *u)
{
	int err;

	if (u->obj_path) {
		u->obj = bpf_object__open_file(u->obj_path, NULL);
		if (!u->obj) {
			err = -errno;
			pr_err("failed to open BPF object %s: %s", u->obj_path, strerror(-err));
			return err;
		}
		return 0;
	}
	u->skel = clat__open();
	if (!u->skel) {
		err = -errno;
		pr_err("failed to open BPF skeleton: %s", strerror(-err));
		return err;
	}
	u->obj = u->skel->obj;
	return 0;
}

/* Layout check and config carry-over, before anything is loaded. */
static int configure(struct upgrade *u)
{
	const struct layout_migration *mig = NULL;
	struct rodata old, new;
	int err;

	err = rodata_of_prog(u->old_fd[0], &old);
	if (!err)
		err = rodata_u32(&old, "layout_version", &u->old_layout);
	if (err == -ENOENT)
		pr_err("the running program on %s records no layout version (attached by an older clat-load); detach and attach again",
		       u->pf);
	else if (err)
		pr_err("failed to read the running config of %s: %s", u->pf, strerror(-err));
	if (err) {
		rodata_free(&old);
		return err == -ENOENT ? -EPROTO : err;
	}
	err = rodata_of_obj(u->obj, &new);
	if (!err)
		err = rodata_u32(&new, "layout_version", &u->new_layout);
	if (err) {
		pr_err("%s declares no layout_version; refusing it, nothing changed", obj_label(u));
		goto out;
	}
	if (u->new_layout != u->old_layout) {
		mig = find_migration(u->old_layout, u->new_layout);
		if (!mig) {
			pr_err("%s has map layout version %u but %s runs layout %u and no migration from %u to %u exists; refusing it, nothing changed",
			       obj_label(u), u->new_layout, u->pf, u->old_layout, u->old_layout,
			       u->new_layout);
			err = -EPROTO;
			goto out;
		}
	}
	u->nopts = rodata_copy_vars(&new, &old, "layout_version");
	err = rodata_store(&new);
	if (err)
		pr_err("failed to set the running config in %s: %s", obj_label(u), strerror(-err));
	if (!err && mig) {
		err = mig->prepare(u->dir, u->obj);
		if (err)
			pr_err("failed to migrate layout %u to %u: %s; nothing changed", mig->from,
			       mig->to, strerror(-err));
	}
out:
	rodata_free(&old);
	rodata_free(&new);
	return err;
}

/* Point every map of the new object at its pinned twin, after checking that
 * the twin has the shape the object was compiled for. */
static int reuse_maps(struct upgrade *u)
{
	char path[PATH_MAX];
	struct bpf_map *map;
	int fd, ok, err;

	bpf_object__for_each_map(map, u->obj) {
		struct bpf_map_info mi = {};
		__u32 len = sizeof(mi), flags = bpf_map__map_flags(map);
		const char *name = bpf_map__name(map);

		if (bpf_map__is_internal(map))
			continue;
		if (pin_path(path, sizeof(path), u->dir, name))
			return -ENAMETOOLONG;
		fd = bpf_obj_get(path);
		if (fd < 0 && errno == ENOENT)
			continue; /* not pinned: the object makes its own */
		if (fd < 0 || bpf_obj_get_info_by_fd(fd, &mi, &len)) {
			err = -errno;
			pr_err("failed to open pinned map %s: %s", path, strerror(-err));
			if (fd >= 0)
				close(fd);
			return err;
		}
		/* The pool's size is the attach's choice, not the object's. */
		if (!strncmp(name, "pool_", 5) && mi.type == bpf_map__type(map))
			bpf_map__set_max_entries(map, mi.max_entries);
		/* The kernel makes every DEVMAP read-only for programs. */
		if (mi.type == BPF_MAP_TYPE_DEVMAP || mi.type == BPF_MAP_TYPE_DEVMAP_HASH)
			flags |= BPF_F_RDONLY_PROG;
		ok = mi.type == bpf_map__type(map) && mi.key_size == bpf_map__key_size(map) &&
		     mi.value_size == bpf_map__value_size(map) &&
		     mi.max_entries == bpf_map__max_entries(map) && mi.map_flags == flags;
		if (!ok) {
			close(fd);
			pr_err("map '%s' of %s does not match the pinned map (type %u/%u, key %u/%u, value %u/%u, entries %u/%u, flags %#x/%#x); refusing it, nothing changed",
			       name, obj_label(u), bpf_map__type(map), mi.type, bpf_map__key_size(map),
			       mi.key_size, bpf_map__value_size(map), mi.value_size,
			       bpf_map__max_entries(map), mi.max_entries, flags, mi.map_flags);
			return -EPROTO;
		}
		err = bpf_map__reuse_fd(map, fd);
		close(fd);
		if (err) {
			pr_err("failed to reuse pinned map %s: %s", path, strerror(-err));
			return err;
		}
	}
	return 0;
}

static int load_new(struct upgrade *u)
{
	struct bpf_program *p;
	int i, err = bpf_object__load(u->obj);

	if (err) {
		pr_err("failed to load %s: %s; nothing changed", obj_label(u), strerror(-err));
		return err;
	}
	for (i = 0; i < 2; i++) {
		p = bpf_object__find_program_by_name(u->obj, prog_names[i]);
		if (!p) {
			pr_err("%s has no program %s; nothing changed", obj_label(u), prog_names[i]);
			return -ENOENT;
		}
		u->new_fd[i] = bpf_program__fd(p);
		err = prog_ident(u->new_fd[i], &u->new_id[i], u->new_tag[i]);
		if (err)
			return err;
	}
	p = bpf_object__find_program_by_name(u->obj, "clat_flood_tc");
	u->tc_new_fd = p ? bpf_program__fd(p) : -1;
	if (u->tc_new_fd >= 0)
		prog_ident(u->tc_new_fd, &u->tc_new_id, u->tc_new_tag);
	return 0;
}

/* The pinned links; with check, each must run the pinned program of its kind. */
static int collect_links(struct upgrade *u, bool check)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(u->dir);
	int err = 0;

	if (!d)
		return -errno;
	while (!err && (de = readdir(d))) {
		bool rx = !strcmp(de->d_name, PIN_LINK_RX);
		/* Only the first pass: a concurrent vf add never makes one. */
		bool tc = check && !strcmp(de->d_name, PIN_LINK_FLOOD_TC);
		struct bpf_link_info li = {};
		__u32 len = sizeof(li);
		struct link_ent *l, *grown;

		if (!rx && !tc && strncmp(de->d_name, "link_tx_", 8))
			continue;
		grown = realloc(u->links, (u->nlinks + 1) * sizeof(*u->links));
		if (!grown) {
			err = -ENOMEM;
			break;
		}
		u->links = grown;
		l = &u->links[u->nlinks];
		memset(l, 0, sizeof(*l));
		snprintf(l->name, sizeof(l->name), "%s", de->d_name);
		l->old_prog = u->old_fd[!rx];
		l->new_prog = u->new_fd[!rx];
		l->fd = pin_path(path, sizeof(path), u->dir, l->name) ? -1 : bpf_obj_get(path);
		if (tc) {
			/* A plain uplink's TCX link: from whatever clat_flood_tc it
			 * runs to the new object's. */
			if (l->fd < 0 || bpf_obj_get_info_by_fd(l->fd, &li, &len)) {
				err = -errno;
				pr_err("failed to open link %s: %s; nothing changed", path,
				       strerror(-err));
			} else if (u->tc_new_fd < 0) {
				pr_err("%s has no program clat_flood_tc, which %s runs; nothing changed",
				       obj_label(u), path);
				err = -ENOENT;
			} else if ((u->tc_old_fd = bpf_prog_get_fd_by_id(li.prog_id)) < 0) {
				err = -errno;
				pr_err("failed to open the program of link %s: %s; nothing changed",
				       path, strerror(-err));
			} else {
				err = prog_ident(u->tc_old_fd, &u->tc_old_id, u->tc_old_tag);
			}
			l->old_prog = u->tc_old_fd;
			l->new_prog = u->tc_new_fd;
		} else if (!check) {
			/* catching up: take what opens, quietly */
		} else if (l->fd < 0 || bpf_obj_get_info_by_fd(l->fd, &li, &len)) {
			err = -errno;
			pr_err("failed to open link %s: %s; nothing changed", path, strerror(-err));
		} else if (li.prog_id != u->old_id[!rx]) {
			pr_err("link %s runs program %u, not the pinned %s %u; nothing changed", path,
			       li.prog_id, prog_names[!rx], u->old_id[!rx]);
			err = -ESTALE;
		}
		u->nlinks++;
	}
	closedir(d);
	return err;
}

/* CLAT_TEST_UPGRADE_FAIL=N makes the N-th link switch fail, for tests. */
static int switch_link(const struct link_ent *l, int to, int from, int nth)
{
	LIBBPF_OPTS(bpf_link_update_opts, o, .flags = BPF_F_REPLACE, .old_prog_fd = from);
	const char *fail = getenv("CLAT_TEST_UPGRADE_FAIL");

	if (fail && atoi(fail) == nth) {
		errno = EIO;
		return -EIO;
	}
	return bpf_link_update(l->fd, to, &o) ? -errno : 0;
}

static void roll_back(struct upgrade *u)
{
	int i, err;

	for (i = 0; i < u->nlinks; i++) {
		if (!u->links[i].swapped)
			continue;
		err = switch_link(&u->links[i], u->links[i].old_prog, u->links[i].new_prog, -1);
		if (err)
			pr_err("failed to roll back link %s: %s", u->links[i].name, strerror(-err));
		else
			u->links[i].swapped = false;
	}
}

static int swap_links(struct upgrade *u)
{
	int i, err;

	for (i = 0; i < u->nlinks; i++) {
		err = switch_link(&u->links[i], u->links[i].new_prog, u->links[i].old_prog, i + 1);
		if (err) {
			pr_err("failed to switch link %s to the new program: %s; rolling back to the old programs, nothing changed",
			       u->links[i].name, strerror(-err));
			roll_back(u);
			return err;
		}
		u->links[i].swapped = true;
	}
	return 0;
}

/* Replace prog_rx/prog_tx: pin the new programs under temporary names, then
 * rename them over the old pins (rename is atomic on bpffs). */
static int replace_pins(struct upgrade *u)
{
	char tmp[2][PATH_MAX], pin[2][PATH_MAX], name[NAME_MAX];
	int i, err = 0;

	for (i = 0; i < 2; i++) {
		snprintf(name, sizeof(name), "%s:new:%d", prog_pins[i], (int)getpid());
		if (pin_path(tmp[i], sizeof(tmp[i]), u->dir, name) ||
		    pin_path(pin[i], sizeof(pin[i]), u->dir, prog_pins[i]))
			return -ENAMETOOLONG;
	}
	for (i = 0; i < 2 && !err; i++)
		if (bpf_obj_pin(u->new_fd[i], tmp[i]))
			err = -errno;
	if (!err && rename(tmp[0], pin[0]))
		err = -errno;
	if (!err && rename(tmp[1], pin[1])) {
		err = -errno;
		/* Put the old clat_rx pin back so the pins match the links. */
		if (bpf_obj_pin(u->old_fd[0], tmp[0]) || rename(tmp[0], pin[0]))
			pr_err("failed to restore %s: %s", pin[0], strerror(errno));
	}
	unlink(tmp[0]);
	unlink(tmp[1]);
	if (err)
		pr_err("failed to replace the program pins in %s: %s; rolling back", u->dir,
		       strerror(-err));
	return err;
}

/* Every fn's flood entry runs clat_flood as its egress program: point the
 * entries at the new one (one atomic devmap update each), then its pin,
 * which `vf add` reads for new entries.  Floods stay correct throughout:
 * both programs work on the same maps. */
static int switch_floods(struct upgrade *u)
{
	struct bpf_program *p = bpf_object__find_program_by_name(u->obj, "clat_flood");
	char path[PATH_MAX], tmp[PATH_MAX], name[NAME_MAX];
	int fd, map, err = 0;
	uint32_t fn;

	if (!p)
		return 0; /* an object without VLAN-scoped floods */
	fd = bpf_program__fd(p);
	if (pin_path(path, sizeof(path), u->dir, PIN_MAP_FLOOD_PORTS))
		return -ENAMETOOLONG;
	map = bpf_obj_get(path);
	if (map < 0)
		return -errno;
	for (fn = 0; fn < CLAT_MAX_FN; fn++) {
		struct bpf_devmap_val v = {};

		if (bpf_map_lookup_elem(map, &fn, &v) || !v.bpf_prog.id)
			continue;
		v.bpf_prog.fd = fd;
		if (bpf_map_update_elem(map, &fn, &v, BPF_EXIST) && errno != ENOENT && !err)
			err = -errno;
	}
	close(map);
	snprintf(name, sizeof(name), "%s:new:%d", PIN_PROG_FLOOD, (int)getpid());
	if (!err && (pin_path(tmp, sizeof(tmp), u->dir, name) ||
		     pin_path(path, sizeof(path), u->dir, PIN_PROG_FLOOD)))
		err = -ENAMETOOLONG;
	if (!err && (bpf_obj_pin(fd, tmp) || rename(tmp, path)))
		err = -errno;
	if (!err)
		unlink(tmp);
	if (err)
		pr_err("failed to switch the flood program: %s (floods keep the old one)",
		       strerror(-err));
	return err;
}

/* A representor linked by a concurrent `vf add` between collect_links and
 * replace_pins got the old clat_tx: move it too. */
static void catch_up_links(struct upgrade *u)
{
	struct upgrade late = { .pf = u->pf, .tc_old_fd = -1, .tc_new_fd = -1 };
	int i;

	memcpy(late.dir, u->dir, sizeof(late.dir));
	memcpy(late.old_fd, u->old_fd, sizeof(late.old_fd));
	memcpy(late.new_fd, u->new_fd, sizeof(late.new_fd));
	memcpy(late.old_id, u->old_id, sizeof(late.old_id));
	collect_links(&late, false);
	for (i = 0; i < late.nlinks; i++) {
		struct bpf_link_info li = {};
		__u32 len = sizeof(li);

		if (late.links[i].fd < 0 || bpf_obj_get_info_by_fd(late.links[i].fd, &li, &len) ||
		    li.prog_id != u->old_id[1] || !strcmp(late.links[i].name, PIN_LINK_RX))
			continue;
		if (switch_link(&late.links[i], u->new_fd[1], u->old_fd[1], -1) == 0)
			u->nlinks++;
	}
	for (i = 0; i < late.nlinks; i++)
		if (late.links[i].fd >= 0)
			close(late.links[i].fd);
	free(late.links);
}

static void report(const struct upgrade *u, bool as_json)
{
	struct json j;
	int i;

	if (!as_json) {
		pr_info("upgraded clat on %s: layout %u%s, %d links switched, %d options kept", u->pf,
			u->new_layout, u->new_layout != u->old_layout ? " (migrated)" : "",
			u->nlinks, u->nopts);
		for (i = 0; i < 2; i++)
			pr_info("  %s: prog %u (%s) -> %u (%s)", prog_names[i], u->old_id[i],
				u->old_tag[i], u->new_id[i], u->new_tag[i]);
		if (u->tc_old_fd >= 0)
			pr_info("  clat_flood_tc: prog %u (%s) -> %u (%s)", u->tc_old_id,
				u->tc_old_tag, u->tc_new_id, u->tc_new_tag);
		return;
	}
	json_init(&j, stdout);
	json_obj_open(&j, NULL);
	json_str(&j, "pf", u->pf);
	json_str(&j, "object", u->obj_path ? u->obj_path : "built-in");
	json_u64(&j, "layout_version", u->new_layout);
	json_u64(&j, "previous_layout_version", u->old_layout);
	json_u64(&j, "links", u->nlinks);
	json_u64(&j, "options_kept", u->nopts);
	json_arr_open(&j, "programs");
	for (i = 0; i < 2; i++) {
		json_obj_open(&j, NULL);
		json_str(&j, "prog", prog_names[i]);
		json_u64(&j, "old_id", u->old_id[i]);
		json_str(&j, "old_tag", u->old_tag[i]);
		json_u64(&j, "new_id", u->new_id[i]);
		json_str(&j, "new_tag", u->new_tag[i]);
		json_obj_close(&j);
	}
	if (u->tc_old_fd >= 0) {
		json_obj_open(&j, NULL);
		json_str(&j, "prog", "clat_flood_tc");
		json_u64(&j, "old_id", u->tc_old_id);
		json_str(&j, "old_tag", u->tc_old_tag);
		json_u64(&j, "new_id", u->tc_new_id);
		json_str(&j, "new_tag", u->tc_new_tag);
		json_obj_close(&j);
	}
	json_arr_close(&j);
	json_obj_close(&j);
	json_end(&j);
}

static void upgrade_free(struct upgrade *u)
{
	int i;

	for (i = 0; i < u->nlinks; i++)
		if (u->links[i].fd >= 0)
			close(u->links[i].fd);
	free(u->links);
	for (i = 0; i < 2; i++)
		if (u->old_fd[i] >= 0)
			close(u->old_fd[i]);
	if (u->tc_old_fd >= 0)
		close(u->tc_old_fd);
	if (u->skel)
		clat__destroy(u->skel);
	else
		bpf_object__close(u->obj);
}

int cmd_upgrade(const struct invocation *inv)
{
	struct upgrade u = { .pf = inv->arg[0], .obj_path = inv->opt[OPT_OBJ],
			     .old_fd = { -1, -1 }, .new_fd = { -1, -1 },
			     .tc_old_fd = -1, .tc_new_fd = -1 };
	struct clat_maps m;
	int err;

	err = open_attached(u.pf, inv->opt[OPT_PIN_DIR], u.dir, sizeof(u.dir), &m);
	if (err)
		return err;
	maps_close(&m);
	err = open_old(&u);
	if (!err)
		err = open_new(&u);
	if (!err)
		err = configure(&u);
	if (!err)
		err = reuse_maps(&u);
	if (!err)
		err = load_new(&u);
	if (!err)
		err = collect_links(&u, true);
	if (!err)
		err = swap_links(&u);
	if (!err) {
		err = replace_pins(&u);
		if (err)
			roll_back(&u);
	}
	if (!err) {
		catch_up_links(&u);
		err = switch_floods(&u);
		report(&u, has_opt(inv, OPT_JSON));
	}
	upgrade_free(&u);
	return err;
}
