// SPDX-License-Identifier: GPL-2.0
/* libvirt hook-parse: the qemu hook's view of one domain XML, as one JSON
 * record (scripts/libvirt-qemu-hook). */
#include "cli.h"
#include "common.h"
#include "json.h"
#include "libvirt.h"
#include "lvdomain.h"
#include "miglock.h"
#include "maps.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>

/* ---- hook-parse ---------------------------------------------------------- */

static int read_all(int fd, char **out, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap), *p;
	ssize_t r;

	if (!buf)
		return -ENOMEM;
	while ((r = read(fd, buf + n, cap - n)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || n + (size_t)r >= LV_MAX_XML) {
			int err = r < 0 ? -errno : -EFBIG;

			free(buf);
			return err;
		}
		n += (size_t)r;
		if (n == cap) {
			p = realloc(buf, cap * 2);
			if (!p) {
				free(buf);
				return -ENOMEM;
			}
			buf = p;
			cap *= 2;
		}
	}
	*out = buf;
	*len = n;
	return 0;
}

/* The port ifindex of fn: the pinned VCT when clat is attached and the fn is
 * in use, else the vf-emu representor, else 0. */
static unsigned int port_ifindex(const struct clat_maps *m, bool have_maps,
				 const struct fn_entry *fe)
{
	struct clat_vct_entry e = {};

	if (have_maps && bpf_map_lookup_elem(m->vct, &fe->fn, &e) == 0 &&
	    e.state != CLAT_FN_FREE && e.ifindex)
		return e.ifindex;
	return fe->rep_ifindex;
}

/* What fn holds now, against the domain's guest memory: "none", "same"
 * (that file) or "other" (another owner's: the hook drops it first).  By
 * lstat, silently: at prepare the file may not exist yet. */
static const char *fn_tables(const struct clat_maps *m, bool have_maps, uint32_t fn,
			     const struct lv_domain *d)
{
	struct clat_guest_info gi = {};
	struct stat st;

	if (!have_maps || bpf_map_lookup_elem(m->guests, &fn, &gi) || !gi.bat_gpa)
		return "none";
	if (d->meta == META_OK && lstat(d->mem, &st) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_dev == gi.mem_dev && (uint64_t)st.st_ino == gi.mem_ino)
		return "same";
	return "other";
}

/* One record per domain, every field validated or encoded: nothing a
 * domain author writes can become a second record. */
static void print_hook_record(const struct lv_domain *d, const struct fn_table *t,
			      const struct clat_maps *m, bool have_maps, const char *pf)
{
	char bat[32] = "";
	struct json j;
	int i;

	if (d->meta == META_OK)
		snprintf(bat, sizeof(bat), "0x%llx", (unsigned long long)d->bat_gpa);
	json_init(&j, stdout);
	json_obj_open(&j, NULL);
	json_str(&j, "domain", d->name);
	json_str(&j, "mem", d->meta == META_OK ? d->mem : "");
	json_str(&j, "bat_gpa", bat);
	json_arr_open(&j, "fns");
	for (i = 0; i < d->nif; i++) {
		const struct fn_entry *fe = fn_lookup(t, &d->ifs[i]);

		if (!fe) {
			pr_info("domain %s: %s is not a VF of %s; ignored", d->name, iface_name(&d->ifs[i]),
				pf);
			continue;
		}
		json_obj_open(&j, NULL);
		json_u64(&j, "fn", fe->fn);
		json_mac(&j, "mac", d->ifs[i].mac);
		json_u64(&j, "vlan", d->ifs[i].vlan);
		json_u64(&j, "ifindex", port_ifindex(m, have_maps, fe));
		json_str(&j, "tables", fn_tables(m, have_maps, fe->fn, d));
		/* An orchestrator owns the fn: the hook leaves it alone. */
		json_bool(&j, "migrating", miglock_held(pf, fe->fn));
		json_obj_close(&j);
	}
	json_arr_close(&j);
	json_obj_close(&j);
	json_end(&j);
}

int cmd_libvirt_hook_parse(const struct invocation *inv)
{
	const char *pf = inv->arg[0];
	char *xml = NULL, dir[PATH_MAX];
	struct lv_domain *d = NULL;
	struct fn_table *t = NULL;
	bool have_maps = false;
	struct clat_maps m;
	size_t len = 0;
	int err;

	err = read_all(STDIN_FILENO, &xml, &len);
	if (err) {
		pr_err("failed to read the domain XML on stdin: %s", strerror(-err));
		return err;
	}
	d = calloc(1, sizeof(*d));
	t = calloc(1, sizeof(*t));
	err = (d && t) ? lv_parse_domain(xml, len, d) : -ENOMEM;
	if (!err)
		err = fn_table_load(pf, inv->opt[OPT_PIN_DIR], t);
	if (err)
		goto out;
	if (d->meta == META_NONE)
		pr_info("domain %s: no <clat:guest> metadata (namespace %s); no guest tables", d->name,
			CLAT_XMLNS);
	/* A domain with anything refused gets no record at all. */
	if (d->nerr) {
		pr_err("domain %s: refused (see above); nothing for the hook to do", d->name);
		err = -EINVAL;
		goto out;
	}
	if (geteuid() == 0 && !pin_dir_for(pf, inv->opt[OPT_PIN_DIR], dir, sizeof(dir)))
		have_maps = maps_open_pinned(dir, &m) == 0;
	print_hook_record(d, t, &m, have_maps, pf);
	if (have_maps)
		maps_close(&m);
out:
	free(t);
	free(d);
	free(xml);
	return err;
}
