// SPDX-License-Identifier: GPL-2.0
/* libvirt reconcile / watch / hook-parse: the function table and the guest
 * tables of a PF follow libvirt's running domains.
 *
 * The inventory is the domain XML: every <interface type='hostdev'> gives a
 * MAC (and an optional VLAN tag) and the VF's PCI address; an
 * <interface type='ethernet'> whose <target dev=.../> is the port of a fn
 * (a VF backed by a tap that QEMU opens) gives a MAC and that port.  One element
 * in the domain's <metadata>, in the namespace CLAT_XMLNS, names the guest
 * memory file and the BAT GPA:
 *
 *   <metadata>
 *     <clat:guest xmlns:clat="https://clat.dev/xmlns/guest/1"
 *                 mem="/abs/path/vm.mem" bat-gpa="0x..."/>
 *   </metadata>
 *
 * The metadata travels with the domain when libvirt migrates it.
 *
 * Only a running domain gets tables attached or its MAC set: a paused one
 * may be the destination of a migration whose RAM has not arrived yet, or
 * a source whose RAM is leaving.  A fn whose migration lock an orchestrator
 * holds (miglock.h) is left alone, and the tables of a domain that left by
 * migration are dropped without writing back: its RAM is gone. */
#define _GNU_SOURCE /* pipe2 */
#include "cli.h"
#include "common.h"
#include "gtables.h"
#include "json.h"
#include "libvirt.h"
#include "miglock.h"
#include "resync.h"
#include "vfemu.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <signal.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#define CLAT_XMLNS "https://clat.dev/xmlns/guest/1"
#define LV_MAX_IFACES 32
#define LV_MAX_XML (16 << 20)
#define LV_ACTION_TIMEOUT_MS 10000
#define LV_DEFAULT_INTERVAL 60
#define LV_DEFAULT_RESYNC_MS 1000

/* ---- Domain XML ------------------------------------------------------- */

enum meta_state {
	META_NONE, /* no <clat:guest>: the domain's fns get no guest tables */
	META_OK,
	META_BAD,  /* present but unusable: its fns' tables are left alone */
};

struct lv_iface {
	char pci[16]; /* "0000:bb:dd.f", as vf-emu and sysfs spell it; "" for a port */
	char dev[IF_NAMESIZE]; /* <interface type='ethernet'>: the port's name */
	uint8_t mac[6];
	uint16_t vlan;
};

struct lv_domain {
	char name[256];
	bool have_state;   /* from libvirt (not for a hook's XML) */
	int state, reason; /* virDomainGetState */
	bool departed;     /* shut off because it migrated away: its RAM has left */
	enum meta_state meta;
	bool mem_ok;       /* mem holds a clean absolute path (bat-gpa may still be bad) */
	char mem[PATH_MAX];
	uint64_t bat_gpa;
	int nif;
	int nerr; /* interfaces or metadata that could not be used */
	struct lv_iface ifs[LV_MAX_IFACES];
};

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
	char buf[32], *end;

	if (attr_get(n, name, buf, sizeof(buf)))
		return -EINVAL;
	errno = 0;
	*out = strtoull(buf, &end, 0);
	if (errno || end == buf || *end || buf[0] == '-' || *out > max)
		return -EINVAL;
	return 0;
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
static int lv_parse_domain(const char *xml, size_t len, struct lv_domain *d)
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

struct fn_entry {
	char pci[16];          /* "" for a port known only by its name */
	char dev[IF_NAMESIZE]; /* the fn's port (representor or tap); "" if unknown */
	uint32_t fn;
	unsigned int rep_ifindex; /* vf-emu only; 0 when unknown */
};

struct fn_table {
	int n;
	struct fn_entry e[CLAT_MAX_FN];
};

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
static int fn_table_load(const char *pf, const char *pin_dir, struct fn_table *t)
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

static const struct fn_entry *fn_lookup(const struct fn_table *t, const struct lv_iface *ifc)
{
	int i;

	for (i = 0; i < t->n; i++)
		if (ifc->pci[0] ? !strcasecmp(t->e[i].pci, ifc->pci)
				: t->e[i].dev[0] && !strcmp(t->e[i].dev, ifc->dev))
			return &t->e[i];
	return NULL;
}

static const char *iface_name(const struct lv_iface *ifc)
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
static int lv_list(virConnectPtr conn, struct lv_domain **out, int *n, int *ngone, int *nerr)
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
static const char *held_reason(const struct lv_domain *d)
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

/* ---- Reconcile --------------------------------------------------------- */

struct want {
	const struct lv_domain *dom; /* NULL: no running domain uses the fn */
	const struct lv_iface *ifc;
	bool conflict;               /* two domains claim it: leave it alone */
	bool paused;                 /* QUIESCED by a migration, or its lock held: leave it alone */
	bool held;                   /* its domain is not running: leave it alone */
	bool departed;               /* its domain migrated away: drop, never write back */
	bool skip_attach;
	bool mem_known;              /* mem and id: the metadata's file, through gmem_intake */
	char mem[PATH_MAX];
	struct gmem_id id;
};

struct recon {
	const char *pf;
	const char *pin_dir;
	FILE *out;        /* text lines; NULL when j is set */
	struct json *j;
	int ndomains;
	bool *left;       /* per fn, from the watch: its domain migrated away (or NULL) */
	int changes;
	int errors;
	int first_err;
};

static void recon_fail(struct recon *r, int err)
{
	r->errors++;
	if (!r->first_err)
		r->first_err = err ? err : -EINVAL;
}

/* Fns of domains that migrated away, unless a running domain claims them. */
static void mark_departed(struct recon *r, const struct lv_domain *gone, int ngone,
			  const struct fn_table *t, struct want *w)
{
	const struct fn_entry *fe;
	uint32_t fn;
	int i, k;

	for (i = 0; i < ngone; i++)
		for (k = 0; k < gone[i].nif; k++) {
			fe = fn_lookup(t, &gone[i].ifs[k]);
			if (fe && fe->fn && fe->fn < CLAT_MAX_FN && !w[fe->fn].dom)
				w[fe->fn].departed = true;
		}
	for (fn = 1; r->left && fn < CLAT_MAX_FN; fn++)
		if (r->left[fn] && !w[fn].dom)
			w[fn].departed = true;
}

static void build_wants(struct recon *r, const struct lv_domain *d, int nd,
			const struct fn_table *t, struct want *w)
{
	const struct fn_entry *fe;
	int i, k;

	for (i = 0; i < nd; i++) {
		const char *held = held_reason(&d[i]);

		if (held && d[i].nif)
			pr_info("domain %s: %s; its functions are left alone until it runs",
				d[i].name, held);
		for (k = 0; k < d[i].nif; k++) {
			const struct lv_iface *ifc = &d[i].ifs[k];
			struct want *x;

			fe = fn_lookup(t, ifc);
			if (!fe || fe->fn == 0 || fe->fn >= CLAT_MAX_FN) {
				pr_debug("domain %s: %s is not a VF of %s; ignored",
					 d[i].name, iface_name(ifc), r->pf);
				continue;
			}
			x = &w[fe->fn];
			if (x->dom) {
				pr_err("fn %u (%s) is claimed by domains %s and %s; leaving it alone",
				       fe->fn, iface_name(ifc), x->dom->name, d[i].name);
				x->conflict = true;
				recon_fail(r, -EEXIST);
				continue;
			}
			x->dom = &d[i];
			x->ifc = ifc;
			x->held = held != NULL;
			/* The same intake as guest attach: no symlink is resolved,
			 * no FIFO opened; the file is known by device and inode.
			 * A held domain's file may not exist yet: not looked at. */
			if (d[i].mem_ok && !x->held) {
				x->mem_known = !gmem_intake(d[i].mem, x->mem, sizeof(x->mem),
							    &x->id);
				if (!x->mem_known) {
					pr_err("domain %s: <clat:guest> mem=%s refused; fn %u gets no guest tables",
					       d[i].name, d[i].mem, fe->fn);
					recon_fail(r, -EINVAL);
				}
			}
		}
	}
	for (i = 0; i < nd; i++)
		if (d[i].meta == META_NONE && d[i].nif)
			pr_info("domain %s: no <clat:guest> metadata (namespace %s); its functions get no guest tables",
				d[i].name, CLAT_XMLNS);
}

static void action_open(struct recon *r, const char *act, uint32_t fn, const struct want *w)
{
	if (r->j) {
		json_obj_open(r->j, NULL);
		json_str(r->j, "action", act);
		json_u64(r->j, "fn", fn);
		if (w && w->dom)
			json_str(r->j, "domain", w->dom->name);
		if (w && w->ifc)
			json_str(r->j, w->ifc->pci[0] ? "pci" : "port", iface_name(w->ifc));
		return;
	}
	fprintf(r->out, "%-7s fn %u", act, fn);
	if (w && w->dom)
		fprintf(r->out, " (%s)", w->dom->name);
	fprintf(r->out, ":");
}

static void action_close(struct recon *r, int err)
{
	if (err)
		recon_fail(r, err);
	else
		r->changes++;
	if (r->j) {
		json_bool(r->j, "ok", !err);
		if (err)
			json_str(r->j, "error", strerror(-err));
		json_obj_close(r->j);
		return;
	}
	if (err)
		fprintf(r->out, " FAILED: %s", strerror(-err));
	fprintf(r->out, "\n");
}

static void report_tables(struct recon *r, const char *mem, uint64_t bat)
{
	if (r->j) {
		json_str(r->j, "mem", mem);
		json_u64(r->j, "bat_gpa", bat);
	} else {
		fprintf(r->out, " %s BAT 0x%llx", mem, (unsigned long long)bat);
	}
}

/* Why fn's attached tables must go, or NULL when they stay.  *force when
 * the fn changes owner (another guest memory file, or none): the old
 * owner's shadow goes even if it can no longer be written back, so that
 * the new owner's flows never land in the old owner's memory. */
static const char *detach_reason(const struct want *w, const struct clat_guest_info *gi,
				 bool *force)
{
	*force = true;
	if (w->conflict || w->held)
		return NULL;
	if (!w->dom && w->departed)
		return "its domain migrated away: its RAM has left, nothing written back";
	if (!w->dom)
		return "no running domain uses it";
	if (w->dom->meta == META_NONE)
		return "its domain has no clat metadata";
	if (!w->mem_known)
		return w->dom->meta == META_BAD && !w->dom->mem_ok
			       ? "its domain's guest memory is unusable"
			       : "its domain's guest memory file is refused";
	if (gi->mem_dev != w->id.dev || gi->mem_ino != w->id.ino)
		return "another guest memory file owns it";
	*force = false;
	if (w->dom->meta == META_BAD)
		return NULL; /* the same file: left alone until the metadata is fixed */
	if (gi->bat_gpa != w->dom->bat_gpa || strcmp(gi->mem_path, w->mem))
		return "the domain's guest tables changed";
	return NULL;
}

static void phase_detach(struct recon *r, const struct clat_maps *m, struct want *w)
{
	uint32_t fn;

	for (fn = 1; fn < CLAT_MAX_FN; fn++) {
		struct clat_guest_info gi = {};
		const char *why;
		bool force;
		int err;

		if (w[fn].paused)
			continue;
		if (bpf_map_lookup_elem(m->guests, &fn, &gi) || !gi.bat_gpa) {
			if (r->left)
				r->left[fn] = false; /* nothing left to drop */
			continue;
		}
		why = detach_reason(&w[fn], &gi, &force);
		if (!why)
			continue;
		/* Writing contexts into RAM that has left is never right: the
		 * destination got them over the device channel, or not at all. */
		err = guest_detach_fn(r->pf, r->pin_dir, fn,
				      GUEST_F_QUIET | (force ? GUEST_F_FORCE : 0) |
					      (!w[fn].dom && w[fn].departed ? GUEST_F_NO_WRITEBACK : 0));
		action_open(r, "detach", fn, &w[fn]);
		report_tables(r, gi.mem_path, gi.bat_gpa);
		if (r->j) {
			json_str(r->j, "reason", why);
			json_bool(r->j, "forced", force);
		} else {
			fprintf(r->out, " (%s)", why);
		}
		action_close(r, err);
		if (err)
			w[fn].skip_attach = true;
	}
}

static bool macs_match(const struct clat_mac_key *k, int n, const struct lv_iface *ifc)
{
	return n == 1 && !memcmp(k[0].mac, ifc->mac, 6) && k[0].vlan == ifc->vlan;
}

static void phase_mac(struct recon *r, const struct clat_maps *m, struct want *w)
{
	struct clat_mac_key keys[8];
	char old[18], mac[18];
	uint32_t fn;
	int n, err;

	for (fn = 1; fn < CLAT_MAX_FN; fn++) {
		struct clat_vct_entry e = {};

		if (!w[fn].dom || w[fn].conflict || w[fn].paused || w[fn].held)
			continue;
		bpf_map_lookup_elem(m->vct, &fn, &e);
		if (e.state == CLAT_FN_FREE) {
			pr_err("fn %u (%s, domain %s) is not in use on %s; add it with 'clat-load vf add' (or attach on vf-emu)",
			       fn, iface_name(w[fn].ifc), w[fn].dom->name, r->pf);
			recon_fail(r, -ENODEV);
			w[fn].skip_attach = true;
			continue;
		}
		n = fn_macs(m, fn, keys, ARRAY_SIZE(keys));
		if (macs_match(keys, n, w[fn].ifc))
			continue;
		err = fn_install(m, fn, w[fn].ifc->mac, w[fn].ifc->vlan, e.ifindex);
		if (err)
			pr_err("failed to set the MAC of fn %u: %s", fn, strerror(-err));
		format_mac(w[fn].ifc->mac, mac);
		if (n > 0)
			format_mac(keys[0].mac, old);
		action_open(r, "set-mac", fn, &w[fn]);
		if (r->j) {
			json_str(r->j, "mac", mac);
			json_u64(r->j, "vlan", w[fn].ifc->vlan);
			if (n > 0)
				json_str(r->j, "old_mac", old);
		} else {
			fprintf(r->out, " %s vlan %u (was %s)", mac, w[fn].ifc->vlan,
				n > 0 ? old : "none");
		}
		action_close(r, err);
	}
}

static void phase_attach(struct recon *r, const struct clat_maps *m, struct want *w)
{
	uint32_t fn;

	for (fn = 1; fn < CLAT_MAX_FN; fn++) {
		struct clat_guest_info gi = {};
		int err;

		if (!w[fn].dom || w[fn].conflict || w[fn].paused || w[fn].held || w[fn].skip_attach ||
		    w[fn].dom->meta != META_OK || !w[fn].mem_known)
			continue;
		bpf_map_lookup_elem(m->guests, &fn, &gi);
		if (gi.bat_gpa)
			continue; /* the same tables, or a detach that failed */
		err = guest_attach_fn(r->pf, r->pin_dir, fn, w[fn].mem, w[fn].dom->bat_gpa,
				      GUEST_F_QUIET);
		action_open(r, "attach", fn, &w[fn]);
		report_tables(r, w[fn].mem, w[fn].dom->bat_gpa);
		action_close(r, err);
	}
}

/* A fn that migrate-out paused is between its stop-copy and its release:
 * a MAC change would make it ACTIVE again and a detach would drop the
 * contexts it is writing back.  It is left alone until it resumes or goes.
 * So is a fn whose migration lock an orchestrator holds: from its first
 * device round to the source's release, the orchestrator owns the fn (the
 * domain stops here while the device delta is still to be sent). */
static void mark_paused(const struct recon *r, const struct clat_maps *m, struct want *w)
{
	uint32_t fn;

	for (fn = 1; fn < CLAT_MAX_FN; fn++) {
		struct clat_vct_entry e = {};

		if (miglock_held(r->pf, fn)) {
			w[fn].paused = true;
			pr_info("fn %u is being migrated by an orchestrator: left alone until it releases it",
				fn);
			continue;
		}
		if (bpf_map_lookup_elem(m->vct, &fn, &e) || e.state != CLAT_FN_QUIESCED)
			continue;
		w[fn].paused = true;
		pr_info("fn %u is paused for a migration: left alone until it resumes or is released",
			fn);
	}
}

/* Detach first (fns released or changed), then MACs, then attach. */
static int reconcile_apply(struct recon *r, struct want *w)
{
	char dir[PATH_MAX];
	struct clat_maps m;
	int err;

	err = open_attached(r->pf, r->pin_dir, dir, sizeof(dir), &m);
	if (err)
		return err;
	mark_paused(r, &m, w);
	phase_detach(r, &m, w);
	phase_mac(r, &m, w);
	phase_attach(r, &m, w);
	maps_close(&m);
	return 0;
}

static void recon_summary(const struct recon *r, FILE *out)
{
	fprintf(out, "reconcile %s: %d running domain%s, ", r->pf, r->ndomains,
		r->ndomains == 1 ? "" : "s");
	if (r->changes)
		fprintf(out, "%d change%s", r->changes, r->changes == 1 ? "" : "s");
	else
		fprintf(out, "nothing to do");
	if (r->errors)
		fprintf(out, ", %d error%s", r->errors, r->errors == 1 ? "" : "s");
	fprintf(out, "\n");
}

/* One reconcile pass over conn.  Text lines go to out (NULL with as_json);
 * quiet_noop drops the summary line when nothing changed. */
/* What the watch remembers between passes: which domain each fn served,
 * and which fns' domains migrated away (a transient domain that left is
 * gone from libvirt's lists; only its STOPPED_MIGRATED event says so). */
struct lv_track {
	char owner[CLAT_MAX_FN][256];
	bool left[CLAT_MAX_FN];
};

static void track_update(struct lv_track *tr, const struct want *w)
{
	uint32_t fn;

	for (fn = 1; tr && fn < CLAT_MAX_FN; fn++)
		if (w[fn].dom && !w[fn].conflict) {
			snprintf(tr->owner[fn], sizeof(tr->owner[fn]), "%s", w[fn].dom->name);
			tr->left[fn] = false;
		}
}

static void track_departed(struct lv_track *tr, const char *name)
{
	uint32_t fn;

	for (fn = 1; tr && fn < CLAT_MAX_FN; fn++)
		if (!strcmp(tr->owner[fn], name))
			tr->left[fn] = true;
}

/* event: with as_json, the "event" the object reports (libvirt watch --json
 * prints one object per event), or NULL for a plain reconcile. */
static int reconcile_once(virConnectPtr conn, const char *pf, const char *pin_dir, FILE *out,
			  bool as_json, const char *event, bool quiet_noop, struct lv_track *track)
{
	struct recon r = { .pf = pf, .pin_dir = pin_dir, .out = out,
			   .left = track ? track->left : NULL };
	struct lv_domain *d = NULL;
	struct fn_table *t;
	struct want *w;
	struct json j;
	int nd = 0, ngone = 0, err;

	t = calloc(1, sizeof(*t));
	w = calloc(CLAT_MAX_FN, sizeof(*w));
	err = (t && w) ? 0 : -ENOMEM;
	if (!err)
		err = lv_list(conn, &d, &nd, &ngone, &r.errors);
	if (!err)
		err = fn_table_load(pf, pin_dir, t);
	if (err)
		goto out;
	if (r.errors)
		r.first_err = -EINVAL;
	r.ndomains = nd;
	build_wants(&r, d, nd, t, w);
	mark_departed(&r, d + nd, ngone, t, w);
	if (as_json) {
		r.j = &j;
		json_init(&j, stdout);
		json_obj_open(&j, NULL);
		if (event)
			json_str(&j, "event", event);
		json_str(&j, "pf", pf);
		json_u64(&j, "domains", (uint64_t)nd);
		json_arr_open(&j, "actions");
	}
	err = reconcile_apply(&r, w);
	if (!err)
		track_update(track, w);
	if (as_json) {
		json_arr_close(&j);
		json_u64(&j, "changes", (uint64_t)r.changes);
		json_u64(&j, "errors", (uint64_t)r.errors);
		json_obj_close(&j);
		json_end(&j);
	}
	if (!err && (r.changes || r.errors || !quiet_noop))
		recon_summary(&r, as_json ? stderr : out);
	if (!err)
		err = r.first_err;
	fflush(stdout);
out:
	free(d);
	free(w);
	free(t);
	return err;
}

int cmd_libvirt_reconcile(const struct invocation *inv)
{
	virConnectPtr conn;
	int err;

	err = require_root();
	if (err)
		return err;
	conn = lv_open(inv->opt[OPT_CONNECT], false);
	if (!conn)
		return -EIO;
	err = reconcile_once(conn, inv->arg[0], inv->opt[OPT_PIN_DIR], stdout,
			     has_opt(inv, OPT_JSON), NULL, false, NULL);
	virConnectClose(conn);
	return err;
}

/* ---- Watch ------------------------------------------------------------- */

#define NAMES(...) ((const char *const[]){ __VA_ARGS__ })

static const struct {
	const char *event;
	const char *const *detail;
	int ndetail;
} event_names[] = {
	[VIR_DOMAIN_EVENT_DEFINED] = { "DEFINED", NAMES("ADDED", "UPDATED", "RENAMED", "FROM_SNAPSHOT"), 4 },
	[VIR_DOMAIN_EVENT_UNDEFINED] = { "UNDEFINED", NAMES("REMOVED", "RENAMED"), 2 },
	[VIR_DOMAIN_EVENT_STARTED] = { "STARTED", NAMES("BOOTED", "MIGRATED", "RESTORED", "FROM_SNAPSHOT", "WAKEUP"), 5 },
	[VIR_DOMAIN_EVENT_SUSPENDED] = { "SUSPENDED",
		NAMES("PAUSED", "MIGRATED", "IOERROR", "WATCHDOG", "RESTORED", "FROM_SNAPSHOT",
		      "API_ERROR", "POSTCOPY", "POSTCOPY_FAILED"), 9 },
	[VIR_DOMAIN_EVENT_RESUMED] = { "RESUMED",
		NAMES("UNPAUSED", "MIGRATED", "FROM_SNAPSHOT", "POSTCOPY", "POSTCOPY_FAILED"), 5 },
	[VIR_DOMAIN_EVENT_STOPPED] = { "STOPPED",
		NAMES("SHUTDOWN", "DESTROYED", "CRASHED", "MIGRATED", "SAVED", "FAILED",
		      "FROM_SNAPSHOT"), 7 },
	[VIR_DOMAIN_EVENT_SHUTDOWN] = { "SHUTDOWN", NAMES("FINISHED", "GUEST", "HOST"), 3 },
	[VIR_DOMAIN_EVENT_PMSUSPENDED] = { "PMSUSPENDED", NAMES("MEMORY", "DISK"), 2 },
	[VIR_DOMAIN_EVENT_CRASHED] = { "CRASHED", NAMES("PANICKED", "CRASHLOADED"), 2 },
};

_Static_assert(VIR_DOMAIN_EVENT_STARTED_WAKEUP == 4 && VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT == 6 &&
		       VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY_FAILED == 8 &&
		       VIR_DOMAIN_EVENT_RESUMED_POSTCOPY_FAILED == 4,
	       "libvirt event detail numbering changed");

static void event_name(int event, int detail, char *buf, size_t len)
{
	if (event < 0 || (size_t)event >= ARRAY_SIZE(event_names) || !event_names[event].event)
		snprintf(buf, len, "EVENT_%d_%d", event, detail);
	else if (detail < 0 || detail >= event_names[event].ndetail)
		snprintf(buf, len, "%s_%d", event_names[event].event, detail);
	else
		snprintf(buf, len, "%s_%s", event_names[event].event,
			 event_names[event].detail[detail]);
}

/* What an event means for clat, for the log. */
static const char *event_note(virDomainPtr dom, int event, int detail)
{
	int state, reason;

	if (event == VIR_DOMAIN_EVENT_STARTED && detail == VIR_DOMAIN_EVENT_STARTED_MIGRATED)
		return "incoming migration: this host is the destination";
	if (event == VIR_DOMAIN_EVENT_SUSPENDED && detail == VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED)
		return "outgoing migration: paused for the switchover";
	if (event == VIR_DOMAIN_EVENT_STOPPED && detail == VIR_DOMAIN_EVENT_STOPPED_MIGRATED)
		return "outgoing migration done: the domain runs on the destination";
	if (event != VIR_DOMAIN_EVENT_RESUMED || detail != VIR_DOMAIN_EVENT_RESUMED_MIGRATED)
		return NULL;
	if (virDomainGetState(dom, &state, &reason, 0) == 0 &&
	    state == VIR_DOMAIN_RUNNING && reason == VIR_DOMAIN_RUNNING_MIGRATION_CANCELED)
		return "migration cancelled or failed: the domain runs here again";
	return "migration done: running on this host (or back here after a cancelled migration)";
}

struct test_action {
	char op[16];
	char dom[256];
};

struct watch {
	const char *pf;
	const char *pin_dir;
	virConnectPtr conn;
	int cb_id;
	bool close_cb;
	int tick, kick, act_timer, guard, sig_watch, resync;
	uint32_t resync_ms;
	int sigpipe[2];
	bool quit;
	int status;
	struct test_action *acts;
	int nacts, next_act;
	struct lv_track *track;
	int meta_cb_id;
	bool awaiting_event; /* a test action ran; reconcile after its event, then go on */
	bool json;           /* --json: one object per event on stdout */
};

/* --json: a libvirt event as one line of JSON, before the reconcile it
 * causes (which prints its own object). */
static void event_json(const struct watch *w, const char *event, virDomainPtr dom,
		       const char *detail, const char *note)
{
	struct json j;

	if (!w->json)
		return;
	json_init(&j, stdout);
	json_obj_open(&j, NULL);
	json_str(&j, "event", event);
	json_str(&j, "pf", w->pf);
	json_str(&j, "domain", virDomainGetName(dom));
	if (detail)
		json_str(&j, "detail", detail);
	if (note)
		json_str(&j, "note", note);
	json_obj_close(&j);
	json_end(&j);
	fflush(stdout);
}

static int sigpipe_wr = -1;

static void on_signal(int sig)
{
	unsigned char c = (unsigned char)sig;
	int saved = errno;

	if (sigpipe_wr >= 0 && write(sigpipe_wr, &c, 1) < 0) {
		/* nothing to do: the loop is woken by the EINTR anyway */
	}
	errno = saved;
}

static void watch_stop(struct watch *w, int status)
{
	w->quit = true;
	if (status && !w->status)
		w->status = status;
}

static void on_sigpipe(int watch_id, int fd, int events, void *opaque)
{
	struct watch *w = opaque;
	unsigned char c = 0;

	(void)watch_id;
	(void)events;
	if (read(fd, &c, 1) == 1)
		pr_info("watch: %s, exiting", strsignal(c));
	watch_stop(w, 0);
}

static void watch_reconcile(struct watch *w, bool quiet_noop)
{
	int err = reconcile_once(w->conn, w->pf, w->pin_dir, stderr, w->json,
				 quiet_noop ? "tick" : "reconcile", quiet_noop, w->track);

	/* Errors are logged and retried at the next event or tick; only a
	 * scripted test run reports them in its exit status. */
	if (err && w->nacts && !w->status)
		w->status = err;
}

/* Guests grow their tables at run time: pick up new generations. */
static void on_resync(int timer, void *opaque)
{
	struct watch *w = opaque;
	struct clat_maps m;
	char dir[PATH_MAX];
	uint32_t n;

	(void)timer;
	if (open_attached(w->pf, w->pin_dir, dir, sizeof(dir), &m))
		return; /* not attached (yet): the reconcile reports it */
	guest_resync_changed(&m, dir, &n);
	maps_close(&m);
}

static void on_tick(int timer, void *opaque)
{
	(void)timer;
	watch_reconcile(opaque, true);
}

static void arm(int timer, int ms)
{
	if (timer >= 0)
		virEventUpdateTimeout(timer, ms);
}

/* Runs after the lifecycle callback returns: reconcile, then the next action. */
static void on_kick(int timer, void *opaque)
{
	struct watch *w = opaque;

	arm(timer, -1);
	watch_reconcile(w, false);
	if (!w->awaiting_event)
		return;
	w->awaiting_event = false;
	arm(w->guard, -1);
	if (w->next_act < w->nacts)
		arm(w->act_timer, 0);
	else
		watch_stop(w, 0);
}

static int lifecycle_cb(virConnectPtr conn, virDomainPtr dom, int event, int detail,
			void *opaque)
{
	struct watch *w = opaque;
	const char *note = event_note(dom, event, detail);
	char name[64];

	(void)conn;
	event_name(event, detail, name, sizeof(name));
	pr_info("watch: domain %s: %s%s%s", virDomainGetName(dom), name, note ? " - " : "",
		note ? note : "");
	event_json(w, "lifecycle", dom, name, note);
	if (event == VIR_DOMAIN_EVENT_STOPPED && detail == VIR_DOMAIN_EVENT_STOPPED_MIGRATED)
		track_departed(w->track, virDomainGetName(dom));
	arm(w->kick, 0);
	return 0;
}

/* A guest publishes its BAT GPA at run time (virsh metadata --live). */
static void metadata_cb(virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri,
			void *opaque)
{
	struct watch *w = opaque;

	(void)conn;
	if (type != VIR_DOMAIN_METADATA_ELEMENT || !nsuri || strcmp(nsuri, CLAT_XMLNS))
		return;
	pr_info("watch: domain %s: clat metadata changed", virDomainGetName(dom));
	event_json(w, "metadata", dom, NULL, NULL);
	arm(w->kick, 0);
}

/* libvirtd went away: exit non-zero so that a service manager restarts us. */
static void on_conn_close(virConnectPtr conn, int reason, void *opaque)
{
	static const char *const why[] = { "error", "end of file", "keepalive timeout",
					   "client closed it" };

	(void)conn;
	pr_err("libvirt connection closed (%s); exiting",
	       reason >= 0 && (size_t)reason < ARRAY_SIZE(why) ? why[reason] : "unknown reason");
	watch_stop(opaque, -ECONNRESET);
}

static int run_test_action(virConnectPtr conn, const struct test_action *a)
{
	virDomainPtr dom = virDomainLookupByName(conn, a->dom);
	int ret = -1;

	if (!dom) {
		pr_err("failed to run test action %s:%s: %s", a->op, a->dom, lv_errmsg());
		return -ENOENT;
	}
	if (!strcmp(a->op, "create"))
		ret = virDomainCreate(dom);
	else if (!strcmp(a->op, "destroy"))
		ret = virDomainDestroy(dom);
	else if (!strcmp(a->op, "shutdown"))
		ret = virDomainShutdown(dom);
	else if (!strcmp(a->op, "suspend"))
		ret = virDomainSuspend(dom);
	else if (!strcmp(a->op, "resume"))
		ret = virDomainResume(dom);
	if (ret < 0)
		pr_err("failed to run test action %s:%s: %s", a->op, a->dom, lv_errmsg());
	virDomainFree(dom);
	return ret < 0 ? -EIO : 0;
}

static void on_act(int timer, void *opaque)
{
	struct watch *w = opaque;
	const struct test_action *a = &w->acts[w->next_act++];
	int err;

	arm(timer, -1);
	pr_info("watch: test action %s:%s", a->op, a->dom);
	err = run_test_action(w->conn, a);
	if (err) {
		watch_stop(w, err);
		return;
	}
	w->awaiting_event = true;
	arm(w->guard, LV_ACTION_TIMEOUT_MS);
}

static void on_guard(int timer, void *opaque)
{
	struct watch *w = opaque;

	arm(timer, -1);
	pr_err("failed to run test actions: no lifecycle event within %d ms of %s:%s",
	       LV_ACTION_TIMEOUT_MS, w->acts[w->next_act - 1].op, w->acts[w->next_act - 1].dom);
	watch_stop(w, -ETIMEDOUT);
}

static int parse_test_actions(const char *s, struct test_action **out, int *n)
{
	static const char *const ops[] = { "create", "destroy", "shutdown", "suspend", "resume" };
	char *copy = strdup(s), *tok, *save = NULL;
	struct test_action *a;
	int cap = 1, k = 0;
	size_t i;

	for (i = 0; s[i]; i++)
		cap += s[i] == ',';
	a = calloc(cap, sizeof(*a));
	if (!copy || !a) {
		free(copy);
		free(a);
		return -ENOMEM;
	}
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		bool known = false;

		for (i = 0; colon && i < ARRAY_SIZE(ops); i++)
			known |= (size_t)(colon - tok) == strlen(ops[i]) &&
				 !strncmp(tok, ops[i], colon - tok);
		if (!known || !colon[1] || strlen(colon + 1) >= sizeof(a[k].dom)) {
			pr_err("invalid --test-actions item '%s': expected OP:DOMAIN with OP one of create, destroy, shutdown, suspend, resume",
			       tok);
			free(copy);
			free(a);
			return -EUSAGE;
		}
		*colon = '\0';
		snprintf(a[k].op, sizeof(a[k].op), "%s", tok);
		snprintf(a[k].dom, sizeof(a[k].dom), "%s", colon + 1);
		k++;
	}
	free(copy);
	if (!k) {
		free(a);
		pr_err("invalid --test-actions '%s': no actions", s);
		return -EUSAGE;
	}
	*out = a;
	*n = k;
	return 0;
}

static int watch_parse(const struct invocation *inv, struct watch *w, uint32_t *interval)
{
	int err = 0;

	*interval = LV_DEFAULT_INTERVAL;
	w->resync_ms = LV_DEFAULT_RESYNC_MS;
	w->json = has_opt(inv, OPT_JSON);
	if (has_opt(inv, OPT_INTERVAL))
		err = parse_u32(inv->opt[OPT_INTERVAL], "--interval", INT32_MAX / 1000, interval);
	if (!err && has_opt(inv, OPT_RESYNC_MS))
		err = parse_u32(inv->opt[OPT_RESYNC_MS], "--resync-ms", INT32_MAX, &w->resync_ms);
	if (!err && has_opt(inv, OPT_TEST_ACTIONS))
		err = parse_test_actions(inv->opt[OPT_TEST_ACTIONS], &w->acts, &w->nacts);
	if (!err)
		err = require_root();
	return err;
}

static int add_timer(struct watch *w, int ms, virEventTimeoutCallback cb, int *id)
{
	*id = virEventAddTimeout(ms, cb, w, NULL);
	if (*id < 0) {
		pr_err("failed to add a libvirt event timer");
		return -EIO;
	}
	return 0;
}

/* Event handles, timers and the lifecycle callback, all on w->conn. */
static int watch_register(struct watch *w, uint32_t interval)
{
	int err = 0;

	if (pipe2(w->sigpipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	w->sig_watch = virEventAddHandle(w->sigpipe[0], VIR_EVENT_HANDLE_READABLE, on_sigpipe, w,
					 NULL);
	if (w->sig_watch < 0)
		err = -EIO;
	if (!err && interval)
		err = add_timer(w, (int)interval * 1000, on_tick, &w->tick);
	if (!err && w->resync_ms)
		err = add_timer(w, (int)w->resync_ms, on_resync, &w->resync);
	if (!err)
		err = add_timer(w, -1, on_kick, &w->kick);
	if (!err && w->nacts)
		err = add_timer(w, -1, on_act, &w->act_timer);
	if (!err && w->nacts)
		err = add_timer(w, -1, on_guard, &w->guard);
	if (err)
		return err;
	/* Both fail harmlessly on drivers without keepalive (test:///). */
	virConnectSetKeepAlive(w->conn, 5, 3);
	if (virConnectRegisterCloseCallback(w->conn, on_conn_close, w, NULL) == 0)
		w->close_cb = true;
	w->cb_id = virConnectDomainEventRegisterAny(w->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
						    VIR_DOMAIN_EVENT_CALLBACK(lifecycle_cb), w,
						    NULL);
	if (w->cb_id < 0) {
		pr_err("failed to register for domain lifecycle events: %s", lv_errmsg());
		return -EIO;
	}
	/* Optional: drivers without it still reconcile every interval. */
	w->meta_cb_id = virConnectDomainEventRegisterAny(
		w->conn, NULL, VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
		VIR_DOMAIN_EVENT_CALLBACK(metadata_cb), w, NULL);
	return 0;
}

static void drop_timer(int *id)
{
	if (*id >= 0)
		virEventRemoveTimeout(*id);
	*id = -1;
}

static void on_flush(int timer, void *opaque)
{
	(void)opaque;
	virEventRemoveTimeout(timer);
}

/* Removes everything; one more loop turn lets libvirt free what it holds. */
static void watch_unregister(struct watch *w)
{
	int flush;

	if (w->cb_id >= 0)
		virConnectDomainEventDeregisterAny(w->conn, w->cb_id);
	if (w->meta_cb_id >= 0)
		virConnectDomainEventDeregisterAny(w->conn, w->meta_cb_id);
	if (w->close_cb)
		virConnectUnregisterCloseCallback(w->conn, on_conn_close);
	if (w->sig_watch >= 0)
		virEventRemoveHandle(w->sig_watch);
	drop_timer(&w->tick);
	drop_timer(&w->kick);
	drop_timer(&w->act_timer);
	drop_timer(&w->guard);
	drop_timer(&w->resync);
	flush = virEventAddTimeout(0, on_flush, NULL, NULL);
	if (flush >= 0)
		virEventRunDefaultImpl();
	if (w->sigpipe[0] >= 0)
		close(w->sigpipe[0]);
	if (w->sigpipe[1] >= 0)
		close(w->sigpipe[1]);
}

static void set_signals(void (*handler)(int))
{
	struct sigaction sa = { .sa_handler = handler };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int cmd_libvirt_watch(const struct invocation *inv)
{
	struct watch w = { .pf = inv->arg[0], .pin_dir = inv->opt[OPT_PIN_DIR], .cb_id = -1,
			   .meta_cb_id = -1,
			   .tick = -1, .kick = -1, .act_timer = -1, .guard = -1, .sig_watch = -1,
			   .resync = -1,
			   .sigpipe = { -1, -1 } };
	uint32_t interval;
	int err;

	err = watch_parse(inv, &w, &interval);
	if (!err) {
		w.track = calloc(1, sizeof(*w.track));
		err = w.track ? 0 : -ENOMEM;
	}
	if (err)
		goto out;
	if (virEventRegisterDefaultImpl() < 0) {
		pr_err("failed to set up libvirt's event loop: %s", lv_errmsg());
		err = -EIO;
		goto out;
	}
	/* Test actions change domains, so they need a read-write connection. */
	w.conn = lv_open(inv->opt[OPT_CONNECT], w.nacts > 0);
	if (!w.conn) {
		err = -EIO;
		goto out;
	}
	err = watch_register(&w, interval);
	if (!err) {
		sigpipe_wr = w.sigpipe[1];
		set_signals(on_signal);
		char *uri = virConnectGetURI(w.conn);

		pr_info("watch: %s on %s: reconciling on lifecycle events%s", w.pf,
			uri ? uri : "libvirt", interval ? " and every interval" : "");
		free(uri);
		watch_reconcile(&w, false);
		if (w.nacts)
			arm(w.act_timer, 0);
	}
	while (!err && !w.quit)
		if (virEventRunDefaultImpl() < 0 && errno != EINTR) {
			pr_err("libvirt event loop failed: %s", lv_errmsg());
			err = -EIO;
		}
	set_signals(SIG_DFL);
	sigpipe_wr = -1;
	watch_unregister(&w);
	virConnectClose(w.conn);
	if (!err)
		err = w.status;
out:
	free(w.track);
	free(w.acts);
	return err;
}

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
