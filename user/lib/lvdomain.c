// SPDX-License-Identifier: GPL-2.0
/* Domains as clat sees them (see lvdomain.h). */
#include "common.h"
#include "lvdomain.h"
#include "maps.h"
#include "parse.h"
#include "vfemu.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

/* ---- Domain XML ------------------------------------------------------- */




static bool is_elem(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && !xmlStrcmp(n->name, BAD_CAST name);
}

static const xmlNode *child_elem(const xmlNode *n, const char *name)
{
	for (n = n->children; n; n = n->next)
		if (is_elem(n, name))
			return n;
	return NULL;
}

/* Values from a domain XML end up in command lines, hook records and logs:
 * a newline there could forge a record for another fn. */
static bool unclean(const char *s, bool allow_space)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f || (*s == ' ' && !allow_space))
			return true;
	return false;
}

/* Copies attribute name of n into buf; -ENOENT if absent, -E2BIG if long,
 * -EILSEQ (message printed) if it holds a control character or whitespace. */
static int attr_get(const xmlNode *n, const char *name, char *buf, size_t len)
{
	xmlChar *v = n ? xmlGetNoNsProp(n, BAD_CAST name) : NULL;
	int ret = 0;

	if (!v)
		return -ENOENT;
	if (unclean((const char *)v, false)) {
		pr_err("domain XML: <%s %s=...> holds a control character or whitespace (refused)",
		       (const char *)n->name, name);
		ret = -EILSEQ;
	} else if ((size_t)snprintf(buf, len, "%s", (const char *)v) >= len) {
		ret = -E2BIG;
	}
	xmlFree(v);
	return ret;
}

static int attr_u64(const xmlNode *n, const char *name, uint64_t max, uint64_t *out)
{
	char buf[32];

	if (attr_get(n, name, buf, sizeof(buf)))
		return -EINVAL;
	return parse_num(buf, strlen(buf), false, max, out) ? -EINVAL : 0;
}

/* <source><address type='pci' domain= bus= slot= function=/></source> */
static int parse_pci(const xmlNode *ifc, char pci[16])
{
	const xmlNode *src = child_elem(ifc, "source");
	const xmlNode *a = src ? child_elem(src, "address") : NULL;
	uint64_t dom, bus, slot, fn;
	char type[16];

	if (!a || attr_get(a, "type", type, sizeof(type)) || strcmp(type, "pci"))
		return -ENOENT;
	if (attr_u64(a, "domain", 0xffff, &dom) || attr_u64(a, "bus", 0xff, &bus) ||
	    attr_u64(a, "slot", 0x1f, &slot) || attr_u64(a, "function", 7, &fn))
		return -EINVAL;
	snprintf(pci, 16, "%04x:%02x:%02x.%x", (unsigned int)dom, (unsigned int)bus,
		 (unsigned int)slot, (unsigned int)fn);
	return 0;
}

static int parse_iface(const struct lv_domain *d, const xmlNode *ifc, bool port,
		       struct lv_iface *out)
{
	const xmlNode *vlan = child_elem(ifc, "vlan");
	char mac[32];
	uint64_t vid = 0;
	int err;

	memset(out, 0, sizeof(*out));
	if (port) {
		err = attr_get(child_elem(ifc, "target"), "dev", out->dev, sizeof(out->dev));
		if (err == -E2BIG)
			pr_err("domain %s: ethernet interface: <target dev=.../> is too long; skipped",
			       d->name);
		if (err)
			return err == -ENOENT ? -ENOENT : -EINVAL;
	} else if ((err = parse_pci(ifc, out->pci))) {
		pr_err("domain %s: hostdev interface without a valid PCI <source><address type='pci' .../>; skipped",
		       d->name);
		return err;
	}
	if (attr_get(child_elem(ifc, "mac"), "address", mac, sizeof(mac)) ||
	    parse_mac(mac, out->mac)) {
		pr_err("domain %s: interface %s has no valid <mac address=.../>; skipped",
		       d->name, port ? out->dev : out->pci);
		return -EINVAL;
	}
	if (vlan && attr_u64(child_elem(vlan, "tag"), "id", 4094, &vid)) {
		pr_err("domain %s: interface %s: invalid <vlan><tag id=.../>; skipped",
		       d->name, port ? out->dev : out->pci);
		return -EINVAL;
	}
	out->vlan = (uint16_t)vid;
	return 0;
}

static const xmlNode *find_clat_meta(const xmlNode *root)
{
	const xmlNode *md = child_elem(root, "metadata"), *n;

	for (n = md ? md->children : NULL; n; n = n->next)
		if (is_elem(n, "guest") && n->ns && n->ns->href &&
		    !xmlStrcmp(n->ns->href, BAD_CAST CLAT_XMLNS))
			return n;
	return NULL;
}

static void parse_meta(const xmlNode *root, struct lv_domain *d)
{
	const xmlNode *g = find_clat_meta(root);

	d->meta = META_NONE;
	if (!g)
		return;
	d->meta = META_BAD;
	d->nerr++;
	if (attr_get(g, "mem", d->mem, sizeof(d->mem)) || d->mem[0] != '/') {
		pr_err("domain %s: <clat:guest> needs mem=\"/absolute/path\" of the guest memory file",
		       d->name);
		d->mem[0] = '\0';
		return;
	}
	d->mem_ok = true;
	if (attr_u64(g, "bat-gpa", UINT64_MAX, &d->bat_gpa) || !d->bat_gpa) {
		pr_err("domain %s: <clat:guest> needs bat-gpa=\"0x...\", the non-zero GPA of the BAT",
		       d->name);
		return;
	}
	d->meta = META_OK;
	d->nerr--;
}

static void parse_devices(const xmlNode *root, struct lv_domain *d)
{
	const xmlNode *devs = child_elem(root, "devices"), *n;
	char type[16];

	for (n = devs ? devs->children : NULL; n; n = n->next) {
		bool port;
		int err;

		if (!is_elem(n, "interface") || attr_get(n, "type", type, sizeof(type)))
			continue;
		if (strcmp(type, "hostdev") && strcmp(type, "ethernet"))
			continue;
		port = !strcmp(type, "ethernet");
		if (d->nif == LV_MAX_IFACES) {
			pr_err("domain %s: more than %d interfaces; the rest are ignored",
			       d->name, LV_MAX_IFACES);
			d->nerr++;
			return;
		}
		err = parse_iface(d, n, port, &d->ifs[d->nif]);
		/* An ethernet interface without a target yet (libvirt names it
		 * at start) is on no fn's port. */
		if (err && !(port && err == -ENOENT))
			d->nerr++;
		else if (!err)
			d->nif++;
	}
}

/* Fills d from a domain XML; -EINVAL if it is not one. */
int lv_parse_domain(const char *xml, size_t len, struct lv_domain *d)
{
	const xmlNode *root, *name;
	xmlChar *txt;
	xmlDoc *doc;

	memset(d, 0, sizeof(*d));
	doc = xmlReadMemory(xml, (int)len, "domain.xml", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc) {
		const xmlError *e = xmlGetLastError();

		pr_err("failed to parse domain XML: %s",
		       e && e->message ? e->message : "not well-formed");
		return -EINVAL;
	}
	root = xmlDocGetRootElement(doc);
	if (!root || !is_elem(root, "domain")) {
		pr_err("failed to parse domain XML: the root element is not <domain>");
		xmlFreeDoc(doc);
		return -EINVAL;
	}
	name = child_elem(root, "name");
	txt = name ? xmlNodeGetContent(name) : NULL;
	if (txt && unclean((const char *)txt, true)) {
		/* It is printed in every action and log line about the domain. */
		pr_err("failed to parse domain XML: the domain name holds a control character (refused)");
		xmlFree(txt);
		xmlFreeDoc(doc);
		return -EINVAL;
	}
	snprintf(d->name, sizeof(d->name), "%s", txt ? (const char *)txt : "?");
	xmlFree(txt);
	parse_meta(root, d);
	parse_devices(root, d);
	xmlFreeDoc(doc);
	return 0;
}

/* ---- PCI address -> fn ------------------------------------------------ */



/* /sys/class/net/<pf>/device/virtfnN -> ../0000:bb:dd.f, fn = N + 1. */
static int fn_table_sysfs(const char *pf, struct fn_table *t)
{
	char dir[PATH_MAX], link[PATH_MAX], target[PATH_MAX];
	struct dirent *de;
	unsigned int n;
	ssize_t len;
	DIR *d;

	snprintf(dir, sizeof(dir), "/sys/class/net/%s/device", pf);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d)) && t->n < CLAT_MAX_FN) {
		const char *base;

		if (sscanf(de->d_name, "virtfn%u", &n) != 1 || n + 1 >= CLAT_MAX_FN)
			continue;
		snprintf(link, sizeof(link), "%s/%s", dir, de->d_name);
		len = readlink(link, target, sizeof(target) - 1);
		if (len < 0)
			continue;
		target[len] = '\0';
		base = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
		snprintf(t->e[t->n].pci, sizeof(t->e[t->n].pci), "%s", base);
		t->e[t->n].fn = n + 1;
		t->e[t->n].rep_ifindex = 0;
		t->n++;
	}
	closedir(d);
	return 0;
}

static int fn_table_vfemu(const char *pf, struct fn_table *t)
{
	struct vfemu_pf *emu = calloc(1, sizeof(*emu));
	int i, err;

	if (!emu)
		return -ENOMEM;
	err = vfemu_query(pf, emu);
	for (i = 0; !err && i < emu->numvfs && t->n < CLAT_MAX_FN; i++) {
		snprintf(t->e[t->n].pci, sizeof(t->e[t->n].pci), "%s", emu->vfs[i].pci);
		t->e[t->n].fn = (uint32_t)emu->vfs[i].fn;
		t->e[t->n].rep_ifindex = (unsigned int)emu->vfs[i].rep_ifindex;
		t->n++;
	}
	free(emu);
	return err;
}

/* The port names of the fns in use, from the pinned VCT when clat is
 * attached: an <interface type='ethernet'> names its tap, and that tap is
 * the port of one fn (vf-emu's --vm tap, or 'vf add --dev TAP'). */
static void fn_table_ports(const char *pf, const char *pin_dir, struct fn_table *t)
{
	char dir[PATH_MAX], name[IF_NAMESIZE];
	struct clat_maps m;
	uint32_t fn;
	int i;

	for (i = 0; i < t->n; i++)
		if (t->e[i].rep_ifindex && if_indextoname(t->e[i].rep_ifindex, name))
			snprintf(t->e[i].dev, sizeof(t->e[i].dev), "%s", name);
	if (geteuid() != 0 || pin_dir_for(pf, pin_dir, dir, sizeof(dir)) ||
	    maps_open_pinned(dir, &m))
		return;
	for (fn = 1; fn < CLAT_MAX_FN && t->n < CLAT_MAX_FN; fn++) {
		struct clat_vct_entry e = {};

		if (bpf_map_lookup_elem(m.vct, &fn, &e) || e.state == CLAT_FN_FREE || !e.ifindex ||
		    !if_indextoname(e.ifindex, name))
			continue;
		for (i = 0; i < t->n && t->e[i].fn != fn; i++)
			;
		if (i == t->n) {
			memset(&t->e[i], 0, sizeof(t->e[i]));
			t->e[i].fn = fn;
			t->n++;
		}
		/* The live port wins over vf-emu's representor: a moved fn. */
		snprintf(t->e[i].dev, sizeof(t->e[i].dev), "%s", name);
		t->e[i].rep_ifindex = e.ifindex;
	}
	maps_close(&m);
}

/* A real NIC has a PCI device in sysfs; a vf-emu PF (a veth) has none. */
int fn_table_load(const char *pf, const char *pin_dir, struct fn_table *t)
{
	int err;

	t->n = 0;
	err = fn_table_sysfs(pf, t);
	if (err != -ENOENT)
		goto done;
	err = fn_table_vfemu(pf, t);
done:
	if (err)
		pr_err("failed to map VF PCI addresses of %s: %s", pf,
		       err == -ENODEV ? "neither an SR-IOV PF in sysfs nor a vf-emu PF"
				      : strerror(-err));
	else
		fn_table_ports(pf, pin_dir, t);
	return err;
}

const struct fn_entry *fn_lookup(const struct fn_table *t, const struct lv_iface *ifc)
{
	int i;

	for (i = 0; i < t->n; i++)
		if (ifc->pci[0] ? !strcasecmp(t->e[i].pci, ifc->pci)
				: t->e[i].dev[0] && !strcmp(t->e[i].dev, ifc->dev))
			return &t->e[i];
	return NULL;
}

const char *iface_name(const struct lv_iface *ifc)
{
	return ifc->pci[0] ? ifc->pci : ifc->dev;
}

/* ---- libvirt connection ------------------------------------------------ */

/* libvirt prints every error to stderr by default; clat reports its own. */
static void lv_quiet(void *opaque, virErrorPtr err)
{
	(void)opaque;
	(void)err;
}

const char *lv_errmsg(void)
{
	const char *m = virGetLastErrorMessage();

	return m ? m : "unknown libvirt error";
}

virConnectPtr lv_open(const char *uri, bool rw)
{
	virConnectPtr c;

	virSetErrorFunc(NULL, lv_quiet);
	c = rw ? virConnectOpen(uri) : virConnectOpenReadOnly(uri);
	if (!c)
		pr_err("failed to connect to libvirt at '%s': %s", uri ? uri : "(default URI)",
		       lv_errmsg());
	return c;
}

static int lv_domain_load(virDomainPtr dom, struct lv_domain *d)
{
	char *xml = virDomainGetXMLDesc(dom, 0);
	int err;

	if (!xml) {
		pr_err("failed to read the XML of domain %s: %s", virDomainGetName(dom),
		       lv_errmsg());
		return -EIO;
	}
	err = lv_parse_domain(xml, strlen(xml), d);
	free(xml);
	return err;
}

/* Whether an inactive (persistent) domain is shut off because it migrated
 * away; *departed is false for every other one, and for transient domains,
 * which are gone altogether (the watch remembers those from their event). */
static int lv_state(virDomainPtr dom, struct lv_domain *d, bool *skip)
{
	int active = virDomainIsActive(dom);

	*skip = false;
	if (virDomainGetState(dom, &d->state, &d->reason, 0) < 0 || active < 0)
		return -EIO; /* it went away meanwhile */
	d->have_state = true;
	if (active)
		return 0;
	d->departed = d->state == VIR_DOMAIN_SHUTOFF && d->reason == VIR_DOMAIN_SHUTOFF_MIGRATED;
	*skip = !d->departed;
	return 0;
}

int lv_domain_fn(virDomainPtr dom, const char *pf, const char *pin_dir, uint32_t *fn)
{
	struct lv_domain *d = calloc(1, sizeof(*d));
	struct fn_table *t = calloc(1, sizeof(*t));
	const struct fn_entry *fe;
	int err, i, n = 0;

	err = d && t ? lv_domain_load(dom, d) : -ENOMEM;
	if (!err)
		err = fn_table_load(pf, pin_dir, t);
	for (i = 0; !err && i < d->nif; i++) {
		fe = fn_lookup(t, &d->ifs[i]);
		if (!fe || !fe->fn)
			continue;
		if (n++ && fe->fn != *fn) {
			pr_err("domain %s uses fns %u and %u of %s: name one with --fn", d->name,
			       *fn, fe->fn, pf);
			err = -EEXIST;
		}
		*fn = fe->fn;
	}
	if (!err && !n) {
		pr_err("domain %s has no interface on a fn of %s (a hostdev VF, or an ethernet interface on a fn's port)",
		       d->name, pf);
		err = -ENOENT;
	}
	free(t);
	free(d);
	return err;
}

/* Every active domain (running or not), parsed, then those that migrated
 * away (departed); *out is freed by the caller, *n counts the active ones. */
int lv_list(virConnectPtr conn, struct lv_domain **out, int *n, int *ngone, int *nerr)
{
	virDomainPtr *doms = NULL;
	struct lv_domain *d = NULL, tmp;
	int nd, i, k = 0, g, nact = 0;
	bool skip;

	nd = virConnectListAllDomains(conn, &doms, 0);
	if (nd < 0) {
		pr_err("failed to list running domains: %s", lv_errmsg());
		return -EIO;
	}
	d = calloc(nd ? nd : 1, sizeof(*d));
	/* Two passes keep the active ones first. */
	for (g = 0; g < 2; g++) {
		for (i = 0; i < nd && d; i++) {
			memset(&tmp, 0, sizeof(tmp));
			if (lv_state(doms[i], &tmp, &skip) || skip || tmp.departed != (g == 1))
				continue;
			if (lv_domain_load(doms[i], &d[k]) == 0) {
				d[k].have_state = true;
				d[k].state = tmp.state;
				d[k].reason = tmp.reason;
				d[k].departed = tmp.departed;
				if (!g)
					*nerr += d[k].nerr;
				nact += !g;
				k++;
			} else if (!g) {
				*nerr += 1;
			}
		}
	}
	for (i = 0; i < nd; i++)
		virDomainFree(doms[i]);
	free(doms);
	if (!d)
		return -ENOMEM;
	*out = d;
	*n = nact;
	*ngone = k - nact;
	return 0;
}

/* Why a domain's fns are left alone (no MAC, no attach, no detach), or NULL
 * when it runs.  Its RAM may not have arrived (an incoming migration, a
 * restore) or may be leaving (an outgoing migration's switchover). */
const char *held_reason(const struct lv_domain *d)
{
	if (!d->have_state || d->state == VIR_DOMAIN_RUNNING)
		return NULL;
	if (d->state != VIR_DOMAIN_PAUSED)
		return "it is not running";
	if (d->reason == VIR_DOMAIN_PAUSED_MIGRATION)
		return "it is paused for a migration (its RAM is moving)";
	if (d->reason == VIR_DOMAIN_PAUSED_STARTING_UP)
		return "it is paused while starting up (an incoming migration's RAM has not arrived)";
	return "it is paused";
}
