/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gpuvirt vm: hostdev XML, attach/detach through libvirt, and who holds which GPU unit. */
#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "cli/common.h"
#include "cli/output.h"
#include "core/vm/hostdev.h"
#include "core/vgpu/mdev.h"
#include "core/vgpu/vendor-vgpu.h"
#include "core/vgpu/vgpu-types.h"
#include "core/host/iommu.h"
#include "core/vm/holders.h"
#include "core/vm/libvirt.h"
#include "core/host/names.h"

typedef struct VmArgs {
        bool live, config, force, keep;
        int guest_slot;
        const char *mdev_type, *uuid;
        const char *vgpu_type;
        int timeout_s;
        bool bad;
} VmArgs;

enum { OPT_LIVE = 0x100, OPT_CONFIG, OPT_FORCE, OPT_KEEP, OPT_SLOT, OPT_MDEV_TYPE, OPT_UUID, OPT_VGPU_TYPE, OPT_TIMEOUT };

static void vm_opt(int c, const char *v, void *ud) {
        VmArgs *a = ud;
        uint32_t n;
        switch (c) {
        case OPT_LIVE:
                a->live = true;
                break;
        case OPT_CONFIG:
                a->config = true;
                break;
        case OPT_FORCE:
                a->force = true;
                break;
        case OPT_KEEP:
                a->keep = true;
                break;
        case OPT_SLOT:
                if (parse_u32(v, 0, &n) < 0 || n < 1 || n > 0x1f) {
                        log_error("--guest-slot '%s' is not a PCI slot number (1..31, e.g. 0x10).", v);
                        a->bad = true;
                } else
                        a->guest_slot = (int)n;
                break;
        case OPT_MDEV_TYPE:
                if (isempty(v) || strchr(v, '/')) {
                        log_error("--mdev-type '%s' is not an mdev type id (e.g. nvidia-222).", v);
                        a->bad = true;
                }
                a->mdev_type = v;
                break;
        case OPT_UUID:
                if (!uuid_is_valid(v)) {
                        log_error("--uuid '%s' is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx).", v);
                        a->bad = true;
                }
                a->uuid = v;
                break;
        case OPT_VGPU_TYPE:
                if (isempty(v) || strchr(v, '/') || streq(v, "0")) {
                        log_error("--vgpu-type '%s' is not a vGPU type (its number or its name, e.g. 1047 or "
                                  "\"NVIDIA H100-10C\"; see 'gpuvirt vgpu types').", v);
                        a->bad = true;
                }
                a->vgpu_type = v;
                break;
        case OPT_TIMEOUT:
                if (parse_u32(v, 10, &n) < 0 || n > 3600) {
                        log_error("--timeout '%s' is not a number of seconds (0..3600).", v);
                        a->bad = true;
                } else
                        a->timeout_s = (int)n;
                break;
        }
}

static json_object *jstrf(const char *fmt, ...) _printf_(1, 2);
static json_object *jstrf(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *s = NULL;
        int k = vasprintf(&s, fmt, ap);
        va_end(ap);
        json_object *o = json_object_new_string(k >= 0 ? s : "?");
        if (k >= 0)
                free(s);
        return o;
}

/* ---- libvirt connection ---- */

/* required: the verb cannot work without libvirt (attach, detach). Otherwise libvirt is consulted on a
 * live root or when --connect is given, and an unreachable libvirt is a warning: *ret stays NULL. */
static int connect_libvirt(Root *root, bool required, Virt **ret, char **ret_error) {
        *ret = NULL;
        if (!required && !root_has_libvirt(root) && !arg.connect)
                return 0;
        const char *uri = virt_resolve_uri(arg.connect);
        _cleanup_free_ char *msg = NULL;
        int r = virt_open(uri, ret, &msg);
        if (r >= 0)
                return 0;
        if (required) {
                log_error("Cannot connect to libvirt at %s: %s", uri, msg ?: strerror(-r));
                return EXIT_FAILURE;
        }
        log_warning("libvirt at %s is not reachable (%s): domains are not consulted.", uri, msg ?: strerror(-r));
        if (ret_error)
                *ret_error = TAKE_PTR(msg);
        return 0;
}

static int resolve_input(Root *root, const PciHost *h, const char *input, Unit *u) {
        int r = unit_resolve(root, h, input, u);
        if (r >= 0)
                return 0;
        if (r == -EINVAL) {
                log_error("'%s' is neither a PCI address (DDDD:BB:DD.F) nor an mdev UUID.", input);
                return EXIT_USAGE;
        }
        if (r == -EPERM) {
                log_error("%s is a PCI bridge; bridges are not assigned to VMs.", input);
                return EXIT_USAGE;
        }
        if (r == -ENODEV) {
                log_error(uuid_is_valid(input) ? "No mdev %s on this host (sys/bus/mdev/devices)." :
                                                 "No PCI device %s on this host (see 'gpuvirt list').",
                          input);
                return EXIT_FAILURE;
        }
        log_error_errno(r, "Cannot resolve %s: %m", input);
        return EXIT_FAILURE;
}

/* ---- vm xml ---- */

static int do_xml(const char *input, const VmArgs *a) {
        _cleanup_root_free_ Root *root = NULL;
        _cleanup_pci_host_free_ PciHost *h = NULL;
        int r;
        if ((r = open_root(0, &root)) || (r = scan(root, &h)))
                return r;
        Unit u;
        if ((r = resolve_input(root, h, input, &u)))
                return r;
        int slot = a->guest_slot ?: (u.n_funcs > 1 ? 0x10 : -1);
        _cleanup_free_ char *xml = unit_hostdev_xml(&u, slot);
        if (!xml) {
                unit_done(&u);
                return log_error("Out of memory."), EXIT_FAILURE;
        }
        if (arg.json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "unit", json_object_new_string(u.id));
                json_object_object_add(o, "kind", json_object_new_string(unit_kind_to_string(u.kind)));
                json_object_object_add(o, "xml", json_object_new_string(xml));
                json_print(o, stdout);
                json_object_put(o);
        } else
                fputs(xml, stdout);
        unit_done(&u);
        return 0;
}

/* ---- who holds what ---- */

/* Before releasing a device: refuse when a running domain holds its IOMMU group (core: vm_release_holder). */
int vm_check_release(Root *root, const char *bdf, bool force) {
        _cleanup_virt_close_ Virt *v = NULL;
        int r = connect_libvirt(root, false, &v, NULL);
        if (r || !v)
                return r;
        _cleanup_(gv_error_done) GvError err = {};
        _cleanup_(release_holder_done) ReleaseHolder rh = {};
        r = vm_release_holder(root, v, bdf, &rh, &err);
        if (r == -ENOMEM)
                return log_error("Out of memory."), EXIT_FAILURE;
        if (r < 0) {
                log_warning("%s: not checking who holds %s.", gv_error_message(&err), bdf);
                return 0;
        }
        if (!rh.domain)
                return 0;
        if (!force) {
                log_error("Cannot release %s: running domain '%s' holds %s (IOMMU group %d); detach it first "
                          "('gpuvirt vm detach %s %s') or use --force.",
                          bdf, rh.domain, rh.device, rh.iommu_group, rh.domain, rh.device);
                return EXIT_FAILURE;
        }
        log_warning("Releasing %s although running domain '%s' holds %s (--force).", bdf, rh.domain, rh.device);
        return 0;
}

/* ---- vm list ---- */

typedef struct ListUnit {
        Unit u;
        bool present;
} ListUnit;

static bool list_has(const ListUnit *l, size_t n, const char *id) {
        for (size_t i = 0; i < n; i++)
                if (strcasecmp(l[i].u.id, id) == 0)
                        return true;
        return false;
}

static int list_push(ListUnit **l, size_t *n, const Unit *u, bool present) {
        ListUnit *x = realloc(*l, (*n + 1) * sizeof *x);
        if (!x)
                return -ENOMEM;
        *l = x;
        x[(*n)++] = (ListUnit){.u = *u, .present = present};
        return 0;
}

static bool is_consumer_nvidia(PciNames *names, const Unit *u) {
        if (u->vendor != PCI_VENDOR_NVIDIA || u->kind == UNIT_MDEV || u->kind == UNIT_VENDOR_VGPU)
                return false;
        _cleanup_free_ char *nm = pci_names_device(names, u->vendor, u->device);
        return nm && (strstr(nm, "GeForce") || strstr(nm, "TITAN") || strstr(nm, "Titan"));
}

/* Live migration of a domain's GPU units, with what blocks it (core: unit_migration_blockers). NULL on OOM. */
static json_object *migration_json(const MigrationHost *m, const ListUnit *units, const size_t *idx, size_t n,
                                   bool *ret_ok) {
        _cleanup_strv_free_ char **bl = NULL;
        size_t nb = 0;
        for (size_t i = 0; i < n; i++)
                if (unit_migration_blockers(&units[idx[i]].u, m, &bl, &nb) < 0)
                        return NULL;
        json_object *blockers = json_object_new_array();
        for (size_t i = 0; blockers && i < nb; i++)
                json_object_array_add(blockers, json_object_new_string(bl[i]));
        *ret_ok = nb == 0;
        return blockers;
}

static int do_list(void) {
        _cleanup_root_free_ Root *root = NULL;
        _cleanup_pci_host_free_ PciHost *h = NULL;
        _cleanup_virt_close_ Virt *v = NULL;
        _cleanup_free_ char *verr = NULL;
        int r;
        if ((r = open_root(0, &root)) || (r = scan(root, &h)) || (r = connect_libvirt(root, false, &v, &verr)))
                return r;
        VirtDomain *doms = NULL;
        size_t nd = 0;
        if (v && virt_list_domains(v, &doms, &nd) < 0) {
                log_warning("Cannot list libvirt domains at %s: %s", virt_uri(v), virt_last_error(v));
                nd = 0;
                if (!(verr = strdup(virt_last_error(v))))
                        return log_error("Out of memory."), EXIT_FAILURE;
        }
        ListUnit *units = NULL;
        size_t nu = 0;
        bool oom = false;
        /* GPU units: whole GPUs, their VFs (plain or vendor vGPU), mdevs */
        for (size_t i = 0; i < h->n_devices; i++) {
                const PciDevice *d = &h->devices[i];
                const PciDevice *pf = d->physfn ? pci_host_find(h, d->physfn) : d;
                if (pci_device_is_bridge(d) || !pf || !pci_device_is_display(pf))
                        continue;
                Unit u;
                if (unit_resolve(root, h, d->addr, &u) < 0)
                        continue;
                if (list_has(units, nu, u.id))
                        unit_done(&u);
                else if (list_push(&units, &nu, &u, true) < 0) {
                        unit_done(&u);
                        oom = true;
                }
        }
        _cleanup_strv_free_ char **mdevs = NULL;
        _cleanup_free_ char *mdir = root_path(root, "sys/bus/mdev/devices");
        if (mdir)
                (void)dir_list(mdir, &mdevs);
        for (size_t i = 0; mdevs && mdevs[i]; i++) {
                Unit u;
                if (unit_resolve(root, h, mdevs[i], &u) < 0)
                        continue;
                if (list_has(units, nu, u.id))
                        unit_done(&u);
                else if (list_push(&units, &nu, &u, true) < 0) {
                        unit_done(&u);
                        oom = true;
                }
        }
        /* anything else a domain references: other PCI devices, and devices this host lacks */
        for (size_t i = 0; i < nd; i++)
                for (int k = 0; k < 2; k++) {
                        const DomainXmlInfo *x = k ? &doms[i].config : &doms[i].live;
                        for (size_t j = 0; j < x->n_hostdevs; j++) {
                                const HostdevRef *ref = &x->hostdevs[j];
                                bool known = false;
                                for (size_t q = 0; q < nu && !known; q++)
                                        known = unit_matches(&units[q].u, ref);
                                if (known)
                                        continue;
                                char id[40];
                                if (ref->type == HOSTDEV_TYPE_MDEV)
                                        snprintf(id, sizeof id, "%s", ref->uuid);
                                else
                                        pci_addr_format(&ref->addr, id);
                                Unit u;
                                bool present = unit_resolve(root, h, id, &u) >= 0;
                                if (!present) {
                                        u = (Unit){.kind = ref->type == HOSTDEV_TYPE_MDEV ? UNIT_MDEV : UNIT_PCI,
                                                   .iommu_group = -1};
                                        snprintf(u.id, sizeof u.id, "%s", id);
                                        if (ref->type == HOSTDEV_TYPE_PCI) {
                                                u.funcs = malloc(sizeof *u.funcs);
                                                if (!u.funcs) {
                                                        oom = true;
                                                        continue;
                                                }
                                                u.funcs[u.n_funcs++] = ref->addr;
                                        }
                                }
                                if (list_push(&units, &nu, &u, present) < 0) {
                                        unit_done(&u);
                                        oom = true;
                                }
                        }
                }

        _cleanup_pci_names_free_ PciNames *names = NULL;
        (void)pci_names_new(&names);
        json_object *out = json_object_new_object();
        json_object *lv = json_object_new_object();
        json_object_object_add(lv, "uri", v ? json_object_new_string(virt_uri(v)) :
                                       (root_has_libvirt(root) || arg.connect) ?
                                              json_object_new_string(virt_resolve_uri(arg.connect)) : NULL);
        json_object_object_add(lv, "consulted", json_object_new_boolean(v != NULL));
        json_object_object_add(lv, "error", verr ? json_object_new_string(verr) : NULL);
        json_object_object_add(out, "libvirt", lv);

        json_object *ju = json_object_new_array();
        for (size_t i = 0; i < nu; i++) {
                const Unit *u = &units[i].u;
                json_object *o = json_object_new_object();
                json_object_object_add(o, "unit", json_object_new_string(u->id));
                json_object_object_add(o, "kind", json_object_new_string(unit_kind_to_string(u->kind)));
                json_object_object_add(o, "present", json_object_new_boolean(units[i].present));
                json_object *fa = json_object_new_array();
                for (size_t f = 0; f < u->n_funcs; f++) {
                        char b[PCI_ADDR_STRLEN];
                        json_object_array_add(fa, json_object_new_string(pci_addr_format(&u->funcs[f], b)));
                }
                json_object_object_add(o, "functions", fa);
                json_object_object_add(o, "iommu_group", u->iommu_group >= 0 ? json_object_new_int(u->iommu_group) : NULL);
                json_object_object_add(o, "driver", u->driver ? json_object_new_string(u->driver) : NULL);
                json_object_object_add(o, "parent", u->parent ? json_object_new_string(u->parent) : NULL);
                json_object_object_add(o, "type", u->type ? json_object_new_string(u->type) : NULL);
                Holder *hs = NULL;
                size_t nh = 0;
                if (unit_holders(u, doms, nd, &hs, &nh) < 0)
                        oom = true;
                json_object *ja = json_object_new_array();
                for (size_t k = 0; k < nh; k++) {
                        json_object *x = json_object_new_object();
                        json_object_object_add(x, "domain", json_object_new_string(hs[k].dom->name));
                        json_object_object_add(x, "running", json_object_new_boolean(hs[k].dom->active));
                        json_object_object_add(x, "live", json_object_new_boolean(hs[k].live));
                        json_object_object_add(x, "config", json_object_new_boolean(hs[k].config));
                        json_object_array_add(ja, x);
                }
                free(hs);
                json_object_object_add(o, "domains", ja);
                const VirtDomain *run = unit_running_holder(u, doms, nd, NULL);
                json_object_object_add(o, "held_by", run ? json_object_new_string(run->name) : NULL);
                json_object_array_add(ju, o);
        }
        json_object_object_add(out, "units", ju);

        json_object *jd = json_object_new_array();
        size_t *idx = calloc(nu ?: 1, sizeof *idx);
        MigrationHost mh = {};
        if (nd > 0)
                migration_host(root, v, &mh);
        for (size_t i = 0; idx && i < nd; i++) {
                const VirtDomain *d = &doms[i];
                const DomainXmlInfo *eff = d->active ? &d->live : &d->config;
                size_t k = 0;
                for (size_t q = 0; q < nu; q++)
                        for (size_t j = 0; j < eff->n_hostdevs; j++)
                                if (unit_matches(&units[q].u, &eff->hostdevs[j])) {
                                        idx[k++] = q;
                                        break;
                                }
                json_object *o = json_object_new_object();
                json_object_object_add(o, "domain", json_object_new_string(d->name));
                json_object_object_add(o, "state", json_object_new_string(d->active ? "running" : "defined"));
                json_object_object_add(o, "persistent", json_object_new_boolean(d->persistent));
                json_object *us = json_object_new_array();
                json_object *warn = json_object_new_array();
                for (size_t q = 0; q < k; q++) {
                        const Unit *u = &units[idx[q]].u;
                        json_object_array_add(us, json_object_new_string(u->id));
                        if (is_consumer_nvidia(names, u) && !eff->kvm_hidden)
                                json_object_array_add(warn, jstrf(
                                        "%s is a consumer NVIDIA GPU and the domain does not hide KVM: NVIDIA "
                                        "drivers before R465 stop with Error 43; add <kvm><hidden state='on'/></kvm> "
                                        "to <features>",
                                        u->id));
                }
                json_object_object_add(o, "units", us);
                bool ok = false;
                json_object *bl = NULL;
                if (k && !(bl = migration_json(&mh, units, idx, k, &ok))) {
                        json_object_put(o);
                        oom = true;
                        break;
                }
                json_object_object_add(o, "live_migration", k ? json_object_new_boolean(ok) : NULL);
                json_object_object_add(o, "migration_blockers", bl ?: json_object_new_array());
                json_object_object_add(o, "warnings", warn);
                json_object_array_add(jd, o);
        }
        oom |= !idx;
        free(idx);
        json_object_object_add(out, "domains", jd);

        if (oom)
                log_error("Out of memory.");
        else if (arg.json)
                json_print(out, stdout);
        else {
                static const char *const uh[] = {"UNIT", "KIND", "GROUP", "DRIVER", "DOMAINS"};
                Table *t = table_new(ELEMENTSOF(uh), uh);
                for (size_t i = 0; t && i < json_object_array_length(ju); i++) {
                        json_object *o = json_object_array_get_idx(ju, i);
                        json_object *ds = json_object_object_get(o, "domains");
                        char doms_txt[512] = "";
                        size_t off = 0;
                        for (size_t k = 0; k < json_object_array_length(ds) && off < sizeof doms_txt; k++) {
                                json_object *x = json_object_array_get_idx(ds, k);
                                bool running = json_object_get_boolean(json_object_object_get(x, "running"));
                                bool live = json_object_get_boolean(json_object_object_get(x, "live"));
                                off += (size_t)snprintf(doms_txt + off, sizeof doms_txt - off, "%s%s (%s)", k ? ", " : "",
                                                        json_text(json_object_object_get(x, "domain")),
                                                        running && live ? "running" : "defined");
                        }
                        _cleanup_free_ char *kind = strdup_printf("%s%s", json_text(json_object_object_get(o, "kind")),
                                                                 json_object_get_boolean(json_object_object_get(o, "present")) ? "" : " (absent)");
                        _cleanup_free_ char *grp = strdup(json_text(json_object_object_get(o, "iommu_group")));
                        const char *cells[] = {json_text(json_object_object_get(o, "unit")), kind, grp,
                                               json_text(json_object_object_get(o, "driver")), *doms_txt ? doms_txt : "-"};
                        (void)table_add_row(t, cells);
                }
                if (t)
                        table_print(t, stdout);
                table_free(t);
                if (!v)
                        printf("\nlibvirt not consulted%s%s%s.\n", verr ? " (" : "", verr ?: "",
                               verr ? ")" : root_has_libvirt(root) ? "" : " on a simulated or captured root (give --connect URI)");
                else if (json_object_array_length(jd) > 0) {
                        static const char *const dh[] = {"DOMAIN", "STATE", "GPU UNITS", "LIVE MIGRATION"};
                        Table *t2 = table_new(ELEMENTSOF(dh), dh);
                        for (size_t i = 0; t2 && i < json_object_array_length(jd); i++) {
                                json_object *o = json_object_array_get_idx(jd, i);
                                json_object *us = json_object_object_get(o, "units");
                                char ut[512] = "";
                                size_t off = 0;
                                for (size_t k = 0; k < json_object_array_length(us) && off < sizeof ut; k++)
                                        off += (size_t)snprintf(ut + off, sizeof ut - off, "%s%s", k ? "," : "",
                                                                json_object_get_string(json_object_array_get_idx(us, k)));
                                json_object *lm = json_object_object_get(o, "live_migration");
                                json_object *bl = json_object_object_get(o, "migration_blockers");
                                _cleanup_free_ char *mig = !lm ? strdup("-") : json_object_get_boolean(lm) ? strdup("yes") :
                                        strdup_printf("no (%zu blocker%s)", json_object_array_length(bl),
                                                      json_object_array_length(bl) == 1 ? "" : "s");
                                const char *cells[] = {json_text(json_object_object_get(o, "domain")),
                                                       json_text(json_object_object_get(o, "state")), *ut ? ut : "-", mig};
                                (void)table_add_row(t2, cells);
                        }
                        printf("\n");
                        if (t2)
                                table_print(t2, stdout);
                        table_free(t2);
                        for (size_t i = 0; i < json_object_array_length(jd); i++) {
                                json_object *o = json_object_array_get_idx(jd, i);
                                const char *name = json_object_get_string(json_object_object_get(o, "domain"));
                                json_object *bl = json_object_object_get(o, "migration_blockers");
                                json_object *w = json_object_object_get(o, "warnings");
                                for (size_t k = 0; k < json_object_array_length(bl); k++)
                                        printf("%s: not migratable: %s\n", name,
                                               json_object_get_string(json_object_array_get_idx(bl, k)));
                                for (size_t k = 0; k < json_object_array_length(w); k++)
                                        printf("%s: warning: %s\n", name, json_object_get_string(json_object_array_get_idx(w, k)));
                        }
                }
        }
        json_object_put(out);
        for (size_t i = 0; i < nu; i++)
                unit_done(&units[i].u);
        free(units);
        virt_domains_free(doms, nd);
        return oom ? EXIT_FAILURE : 0;
}

/* ---- attach / detach ---- */

static void sleep_ms(int ms) {
        nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L}, NULL);
}

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Decide --live/--config when neither is given: live when running, config when persistent. */
static int pick_targets(Virt *v, const char *dom, VmArgs *a) {
        bool active, persistent;
        int r = virt_domain_state(v, dom, &active, &persistent);
        if (r == -ENOENT) {
                log_error("No libvirt domain '%s' at %s.", dom, virt_uri(v));
                return EXIT_FAILURE;
        }
        if (r < 0) {
                log_error("Cannot look up domain '%s': %s", dom, virt_last_error(v));
                return EXIT_FAILURE;
        }
        if (!a->live && !a->config) {
                a->live = active;
                a->config = persistent;
        }
        if (a->live && !active) {
                log_error("Domain '%s' is not running: use --config to change its persistent definition.", dom);
                return EXIT_FAILURE;
        }
        if (a->config && !persistent) {
                log_error("Domain '%s' is transient (no persistent definition): use --live.", dom);
                return EXIT_FAILURE;
        }
        return 0;
}

static json_object *result_json(const char *action, const char *dom, const Unit *u, const VmArgs *a, bool released,
                                const char *kept_for, double secs) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "action", json_object_new_string(action));
        json_object_object_add(o, "domain", json_object_new_string(dom));
        json_object_object_add(o, "unit", json_object_new_string(u->id));
        json_object_object_add(o, "kind", json_object_new_string(unit_kind_to_string(u->kind)));
        json_object_object_add(o, "live", json_object_new_boolean(a->live));
        json_object_object_add(o, "config", json_object_new_boolean(a->config));
        if (streq(action, "detach")) {
                json_object_object_add(o, "released", json_object_new_boolean(released));
                json_object_object_add(o, "kept_for", kept_for ? json_object_new_string(kept_for) : NULL);
        }
        json_object_object_add(o, "seconds", json_object_new_double(secs));
        return o;
}

/* What attach and detach start with: the root (and with it the host lock) and its devices, libvirt and the
 * targets (live/config) for the domain. 0 or an exit code; the caller's cleanups own what was opened. */
static int vm_begin(const char *dom, VmArgs *a, Root **root, PciHost **h, Virt **v) {
        int r;
        if ((r = open_root(0, root)) || (r = scan(*root, h)))
                return r;
        if ((r = connect_libvirt(*root, true, v, NULL)) || (r = pick_targets(*v, dom, a)))
                return r;
        return 0;
}

/* A vGPU type named by id or name on parent (core: vgpu_type_resolve), of the kind the option is for. */
static int resolve_type(Root *root, const char *parent, const char *type, VgpuTypeKind kind, char **ret_id) {
        VgpuTypeRef t;
        _cleanup_free_ char *err = NULL;
        int r = vgpu_type_resolve(root, parent, type, &t, &err);
        if (r < 0) {
                log_error("%s", err ?: "Out of memory.");
                return r == -ENOENT ? EXIT_USAGE : EXIT_FAILURE;
        }
        if (t.kind != kind) {
                log_error("%s: %s is %s type; use %s.", type, parent,
                          t.kind == VGPU_TYPE_MDEV ? "an mdev" : "an NVIDIA vendor vGPU",
                          t.kind == VGPU_TYPE_MDEV ? "--mdev-type" : "--vgpu-type");
                vgpu_type_ref_done(&t);
                return EXIT_USAGE;
        }
        *ret_id = TAKE_PTR(t.id);
        vgpu_type_ref_done(&t);
        return 0;
}

static int do_attach(const char *dom, const char *input, VmArgs *a) {
        _cleanup_root_free_ Root *root = NULL;
        _cleanup_pci_host_free_ PciHost *h = NULL;
        _cleanup_virt_close_ Virt *v = NULL;
        int r = vm_begin(dom, a, &root, &h, &v);
        if (r)
                return r;
        double t0 = now_s();

        /* 1. create the vGPU when asked */
        char created_uuid[37] = "";
        bool created_vendor = false;
        Unit u = {.iommu_group = -1};
        if (a->mdev_type) {
                _cleanup_free_ char *parent = NULL;
                if (pci_addr_canonical(input, &parent) < 0 && !(parent = strdup(input)))
                        return EXIT_FAILURE;
                if (a->uuid)
                        snprintf(created_uuid, sizeof created_uuid, "%s", a->uuid);
                else if (mdev_uuid_generate(created_uuid) < 0)
                        return log_error("Cannot generate a UUID."), EXIT_FAILURE;
                for (char *p = created_uuid; *p; p++)
                        *p = (char)tolower((unsigned char)*p);
                _cleanup_free_ char *err = NULL, *type = NULL;
                if ((r = resolve_type(root, parent, a->mdev_type, VGPU_TYPE_MDEV, &type)))
                        return r;
                r = mdev_create(root, parent, type, created_uuid, NULL, 0, &err);
                if (r == -ENOENT || r == -ENODEV)
                        return log_error("%s", err ?: "no such mdev parent or type"), EXIT_USAGE;
                if (r < 0)
                        return log_error("Cannot create an mdev of type %s on %s: %s", a->mdev_type, parent,
                                         err ?: strerror(-r)), EXIT_FAILURE;
                if (root_dry_run(root)) {
                        u.kind = UNIT_MDEV;
                        snprintf(u.id, sizeof u.id, "%s", created_uuid);
                } else if ((r = resolve_input(root, h, created_uuid, &u))) {
                        (void)mdev_remove(root, created_uuid, true, NULL);
                        return r;
                }
        } else {
                if ((r = resolve_input(root, h, input, &u)))
                        return r;
                _cleanup_free_ char *dead = NULL;
                if (unit_require_alive(root, &u, &dead) < 0) {
                        log_error("Cannot attach %s: %s", u.id, strna(dead));
                        unit_done(&u);
                        return EXIT_FAILURE;
                }
                if (a->vgpu_type) {
                        if (u.kind != UNIT_VF) {
                                log_error("--vgpu-type needs an SR-IOV VF without a vGPU type; %s is %s.", u.id,
                                          u.kind == UNIT_VENDOR_VGPU ? "already carrying one" : "not a VF");
                                unit_done(&u);
                                return EXIT_USAGE;
                        }
                        _cleanup_free_ char *type = NULL;
                        if ((r = resolve_type(root, u.id, a->vgpu_type, VGPU_TYPE_VENDOR, &type))) {
                                unit_done(&u);
                                return r;
                        }
                        _cleanup_free_ char *vf = NULL, *err = NULL;
                        unsigned set = 0;
                        r = vendor_vgpu_create(root, u.id, type, &vf, &set, &err);
                        if (r < 0) {
                                log_error("Cannot set vGPU type %s on %s: %s", a->vgpu_type, u.id, err ?: strerror(-r));
                                unit_done(&u);
                                return EXIT_FAILURE;
                        }
                        created_vendor = true;
                        u.kind = UNIT_VENDOR_VGPU;
                        free(u.type);
                        if (!(u.type = strdup_printf("%u", set))) {
                                (void)vendor_vgpu_remove(root, u.id, true, NULL);
                                unit_done(&u);
                                return log_error("Out of memory."), EXIT_FAILURE;
                        }
                }
        }

        int rc = EXIT_FAILURE;
        bool prepared = false, config_done = false;
        _cleanup_free_ char *orig_config = NULL;
        _cleanup_strv_free_ char **elems = NULL;
        size_t n_elems = 0, n_live = 0;
        VfioOptions o = {.force = a->force, .settle_ms = 2000};

        /* 2. held elsewhere? */
        VirtDomain *doms = NULL;
        size_t nd = 0;
        if (virt_list_domains(v, &doms, &nd) < 0) {
                log_error("Cannot list libvirt domains: %s", virt_last_error(v));
                goto undo;
        }
        const VirtDomain *other = unit_running_holder(&u, doms, nd, dom);
        if (other && !a->force) {
                log_error("%s is held by running domain '%s'; detach it there first or use --force.", u.id, other->name);
                virt_domains_free(doms, nd);
                goto undo;
        }
        virt_domains_free(doms, nd);
        if ((a->live && vm_unit_count(v, dom, false, &u) > 0) || (a->config && vm_unit_count(v, dom, true, &u) > 0)) {
                log_error("%s is already attached to '%s'%s.", u.id, dom, a->live ? " (live)" : " (config)");
                goto undo;
        }

        /* 3. prepare the host side */
        VfioReport rep;
        bool changed = false;
        r = unit_prepare(root, &u, &o, &rep, &changed);
        if (r < 0) {
                _cleanup_free_ char *why = error_text(&rep.error, r);
                log_error("Cannot prepare %s: %s", u.id, strna(why));
                vfio_report_done(&rep);
                goto undo;
        }
        vfio_report_done(&rep);
        prepared = changed;

        /* 4. the guest slot for multifunction units: free in every definition we change */
        int slot = a->guest_slot ?: -1;
        if (slot < 0 && u.n_funcs > 1) {
                int s1 = -1, s2 = -1;
                _cleanup_free_ char *lx = NULL, *cx = NULL;
                if (a->live && (virt_domain_xml(v, dom, false, &lx) < 0 || domain_xml_free_slot(lx, &s1) < 0))
                        goto slot_fail;
                if (a->config && (virt_domain_xml(v, dom, true, &cx) < 0 || domain_xml_free_slot(cx, &s2) < 0))
                        goto slot_fail;
                slot = MAX(s1, s2);
                /* when the two differ, take the higher if it is free in both (else fail below on define) */
        }
        if (unit_hostdev_elements(&u, slot, &elems, &n_elems) < 0) {
                log_error("Out of memory.");
                goto undo;
        }
        /* the libvirt changes, decided where every other change is (root_change: --dry-run prints them) */
        {
                _cleanup_free_ char *shown = unit_hostdev_xml(&u, slot);
                if (!shown) {
                        log_error("Out of memory.");
                        goto undo;
                }
                size_t len = strlen(shown);
                r = root_change(root, "would attach to %s (%s%s%s):\n%.*s", dom, a->live ? "live" : "",
                                a->live && a->config ? ", " : "", a->config ? "config" : "",
                                (int)(len > 0 && shown[len - 1] == '\n' ? len - 1 : len), shown);
                if (r < 0) {
                        log_error_errno(r, "Cannot attach %s to '%s': %m", u.id, dom);
                        goto undo;
                }
                if (r > 0) {
                        rc = 0;
                        goto out;
                }
        }

        /* 5. persistent definition: edit the inactive XML and redefine */
        if (a->config) {
                _cleanup_free_ char *joined = unit_hostdev_xml(&u, slot), *new_xml = NULL;
                if (!joined || virt_domain_xml(v, dom, true, &orig_config) < 0 ||
                    domain_xml_add_hostdevs(orig_config, joined, &new_xml) < 0) {
                        log_error("Cannot edit the definition of '%s': %s", dom, virt_last_error(v));
                        goto undo;
                }
                if (virt_define(v, new_xml) < 0) {
                        log_error("Cannot redefine '%s' with %s: %s", dom, u.id, virt_last_error(v));
                        goto undo;
                }
                config_done = true;
                /* the round trip: libvirt must hand back every hostdev we added */
                int k = vm_unit_count(v, dom, true, &u);
                if (k != (int)n_elems) {
                        log_error("'%s' was redefined but its definition holds %d of %zu hostdevs for %s.", dom, k < 0 ? 0 : k,
                                  n_elems, u.id);
                        goto undo;
                }
        }
        /* 6. hot-plug: function 0 last (the guest sees a multifunction slot when function 0 appears) */
        if (a->live) {
                for (size_t step = 0; step < n_elems; step++) {
                        size_t e = n_elems - 1 - step;
                        if (virt_attach_live(v, dom, elems[e]) < 0) {
                                log_error("Cannot hot-plug %s into '%s': %s", u.id, dom, virt_last_error(v));
                                goto undo;
                        }
                        n_live++;
                }
                int k = vm_unit_count(v, dom, false, &u);
                if (k != (int)n_elems) {
                        log_error("'%s' accepted %s but its running definition holds %d of %zu hostdevs.", dom, u.id,
                                  k < 0 ? 0 : k, n_elems);
                        goto undo;
                }
        }
        rc = 0;
        double secs = now_s() - t0;
        if (arg.json) {
                json_object *j = result_json("attach", dom, &u, a, false, NULL, secs);
                json_print(j, stdout);
                json_object_put(j);
        } else
                printf("%s (%s, %zu hostdev%s) attached to %s (%s%s%s) in %.2f s\n", u.id, unit_kind_to_string(u.kind), n_elems,
                       n_elems == 1 ? "" : "s", dom, a->live ? "live" : "", a->live && a->config ? ", " : "",
                       a->config ? "config" : "", secs);
        goto out;

slot_fail:
        log_error("No free guest PCI slot on bus 0 of '%s' for the %zu functions of %s (give --guest-slot).", dom, u.n_funcs,
                  u.id);
undo:
        /* in reverse: hot-plugged devices, the redefinition, the host preparation, the created vGPU */
        for (size_t i = 0; i < n_live; i++) {
                size_t e = n_elems - n_live + i;
                if (virt_detach_live(v, dom, elems[e]) < 0)
                        log_error("Undo: cannot hot-unplug a hostdev of %s from '%s': %s", u.id, dom, virt_last_error(v));
        }
        if (config_done && virt_define(v, orig_config) < 0)
                log_error("Undo: cannot restore the definition of '%s': %s", dom, virt_last_error(v));
        if (prepared) {
                VfioReport rep2;
                if (unit_release(root, &u, &o, &rep2) < 0)
                        log_error("Undo: cannot give %s back to its drivers: %s", u.id, gv_error_message(&rep2.error) ?: "?");
                vfio_report_done(&rep2);
        }
        if (*created_uuid || created_vendor) {
                _cleanup_(gv_error_done) GvError e1 = {}, e2 = {};
                if (*created_uuid && mdev_remove(root, created_uuid, true, &e1) < 0)
                        log_error("Undo: cannot remove mdev %s: %s", created_uuid, gv_error_message(&e1));
                if (created_vendor && vendor_vgpu_remove(root, u.id, true, &e2) < 0)
                        log_error("Undo: cannot clear the vGPU type of %s: %s", u.id, gv_error_message(&e2));
        }
out:
        unit_done(&u);
        return rc;
}

static int do_detach(const char *dom, const char *input, VmArgs *a) {
        _cleanup_root_free_ Root *root = NULL;
        _cleanup_pci_host_free_ PciHost *h = NULL;
        _cleanup_virt_close_ Virt *v = NULL;
        int r = vm_begin(dom, a, &root, &h, &v);
        if (r)
                return r;
        Unit u;
        if ((r = resolve_input(root, h, input, &u)))
                return r;
        double t0 = now_s();
        int rc = EXIT_FAILURE;
        HostdevRef *refs = NULL;
        size_t n_refs = 0;
        bool dry = false;
        if (unit_refs(&u, &refs, &n_refs) < 0) {
                log_error("Out of memory.");
                goto out;
        }
        int in_live = a->live ? vm_unit_count(v, dom, false, &u) : 0;
        int in_config = a->config ? vm_unit_count(v, dom, true, &u) : 0;
        if (in_live < 0 || in_config < 0) {
                log_error("Cannot read the definition of '%s': %s", dom, virt_last_error(v));
                goto out;
        }
        if (in_live == 0 && in_config == 0) {
                log_error("%s is not attached to '%s'%s.", u.id, dom,
                          a->live && a->config ? "" : a->live ? " (live)" : " (config)");
                goto out;
        }
        r = root_change(root, "would detach %s from %s (%s%s%s)", u.id, dom, a->live ? "live" : "",
                        a->live && a->config ? ", " : "", a->config ? "config" : "");
        if (r < 0) {
                log_error_errno(r, "Cannot detach %s from '%s': %m", u.id, dom);
                goto out;
        }
        dry = r > 0;
        if (dry) {
                rc = 0;
                goto release;
        }
        if (a->config && in_config > 0) {
                _cleanup_free_ char *xml = NULL, *new_xml = NULL;
                size_t removed = 0;
                if (virt_domain_xml(v, dom, true, &xml) < 0 ||
                    domain_xml_remove_hostdevs(xml, refs, n_refs, &new_xml, &removed) < 0 || virt_define(v, new_xml) < 0) {
                        log_error("Cannot remove %s from the definition of '%s': %s", u.id, dom, virt_last_error(v));
                        goto out;
                }
                if (vm_unit_count(v, dom, true, &u) != 0) {
                        log_error("'%s' was redefined but its definition still holds %s.", dom, u.id);
                        goto out;
                }
        }
        if (a->live && in_live > 0) {
                /* the element as libvirt has it (with its guest address and alias), function 0 first */
                _cleanup_free_ char *xml = NULL;
                if (virt_domain_xml(v, dom, false, &xml) < 0) {
                        log_error("Cannot read the running definition of '%s': %s", dom, virt_last_error(v));
                        goto out;
                }
                for (size_t i = 0; i < n_refs; i++) {
                        _cleanup_free_ char *el = NULL;
                        if (domain_xml_hostdev_element(xml, &refs[i], &el) < 0)
                                continue;
                        if (virt_detach_live(v, dom, el) < 0) {
                                log_error("Cannot hot-unplug %s from '%s': %s", u.id, dom, virt_last_error(v));
                                goto out;
                        }
                }
                /* libvirt returns once the unplug is requested; the guest OS must answer it */
                int k;
                for (int waited = 0;; waited += 100) {
                        k = vm_unit_count(v, dom, false, &u);
                        if (k <= 0 || waited >= a->timeout_s * 1000)
                                break;
                        sleep_ms(100);
                }
                if (k != 0) {
                        log_error("The guest of '%s' did not release %s within %d s (its OS must answer the PCI hot-unplug "
                                  "request); the device stays assigned and is not given back to the host.",
                                  dom, u.id, a->timeout_s);
                        goto out;
                }
        }
        rc = 0;
release:;
        /* give it back, unless someone else still wants it */
        {
                const char *kept_for = NULL;
                _cleanup_free_ char *kept = NULL;
                bool released = false;
                r = vm_detach_holder(v, &u, dom, a->live, a->config, &kept);
                if (r == -ENOMEM)
                        kept_for = "unknown: out of memory";
                else if (r < 0) {
                        log_warning("Cannot list libvirt domains (%s): %s stays prepared.", virt_last_error(v), u.id);
                        kept_for = "unknown: cannot list domains";
                } else
                        kept_for = kept;
                if (dry)
                        kept_for = NULL; /* the definitions above are unchanged: say what a real run releases */
                if (!a->keep && !kept_for) {
                        VfioOptions o = {.force = a->force, .settle_ms = 2000};
                        VfioReport rep;
                        r = unit_release(root, &u, &o, &rep);
                        if (r < 0) {
                                _cleanup_free_ char *why = error_text(&rep.error, r);
                                log_error("%s was detached but cannot be given back to the host: %s", u.id, strna(why));
                                rc = EXIT_FAILURE;
                        } else
                                released = true;
                        vfio_report_done(&rep);
                }
                if (rc == 0 && !dry) {
                        double secs = now_s() - t0;
                        if (arg.json) {
                                json_object *j = result_json("detach", dom, &u, a, released, kept_for, secs);
                                json_print(j, stdout);
                                json_object_put(j);
                        } else {
                                printf("%s detached from %s (%s%s%s) in %.2f s\n", u.id, dom, a->live ? "live" : "",
                                       a->live && a->config ? ", " : "", a->config ? "config" : "", secs);
                                if (released)
                                        printf("%s given back to the host\n", u.id);
                                else if (kept_for)
                                        printf("%s kept prepared: still referenced by %s\n", u.id, kept_for);
                        }
                }
        }
out:
        free(refs);
        unit_done(&u);
        return rc;
}

int verb_vm(int argc, char **argv) {
        static const struct option opts[] = {
                {"live", no_argument, NULL, OPT_LIVE},
                {"config", no_argument, NULL, OPT_CONFIG},
                {"force", no_argument, NULL, OPT_FORCE},
                {"keep", no_argument, NULL, OPT_KEEP},
                {"guest-slot", required_argument, NULL, OPT_SLOT},
                {"mdev-type", required_argument, NULL, OPT_MDEV_TYPE},
                {"uuid", required_argument, NULL, OPT_UUID},
                {"vgpu-type", required_argument, NULL, OPT_VGPU_TYPE},
                {"timeout", required_argument, NULL, OPT_TIMEOUT},
                {},
        };
        const char *sub = argv[1];
        VmArgs a = {.timeout_s = 30};
        int k = parse_verb_options(argc - 1, argv + 1, opts, "", vm_opt, &a);
        if (k < 0)
                return -k;
        if (a.bad)
                return EXIT_USAGE;
        int first = k + 1, npos = argc - first;
        bool attach = streq(sub, "attach"), detach = streq(sub, "detach");
        if ((a.live || a.config) && !attach && !detach)
                return usage_error("vm %s: --live and --config are for attach and detach", sub);
        if ((a.mdev_type || a.vgpu_type || a.uuid) && !attach)
                return usage_error("vm %s: --mdev-type, --uuid and --vgpu-type are for attach", sub);
        if (a.mdev_type && a.vgpu_type)
                return usage_error("vm attach: --mdev-type and --vgpu-type exclude each other");
        if (a.uuid && !a.mdev_type)
                return usage_error("vm attach: --uuid names the mdev that --mdev-type creates");
        if (streq(sub, "xml")) {
                if (npos != 1)
                        return usage_error("vm xml: expected one device (PCI address or mdev UUID)");
                return do_xml(argv[first], &a);
        }
        if (streq(sub, "list")) {
                if (npos != 0)
                        return usage_error("vm list: takes no arguments");
                return do_list();
        }
        if (attach || detach) {
                if (npos != 2)
                        return usage_error("vm %s: expected DOMAIN DEVICE", sub);
                if (detach && a.guest_slot)
                        return usage_error("vm detach: --guest-slot is for attach and xml");
                return attach ? do_attach(argv[first], argv[first + 1], &a) : do_detach(argv[first], argv[first + 1], &a);
        }
        return usage_error("vm: unknown command '%s' (xml, attach, detach, list)", sub);
}
