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

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "cli/common.h"
#include "cli/output.h"
#include "core/vm/agentchan.h"
#include "core/vm/hostdev.h"
#include "core/vgpu/mdev.h"
#include "core/vgpu/vendor-vgpu.h"
#include "core/vgpu/vgpu-types.h"
#include "core/host/iommu.h"
#include "core/vm/attach.h"
#include "core/vm/holders.h"
#include "core/vm/vmlist.h"
#include "core/vm/libvirt.h"
#include "core/vm/migrate.h"
#include "core/host/names.h"

typedef struct VmArgs {
        bool live, config, force, keep;
        int guest_slot;
        const char *mdev_type, *uuid;
        const char *vgpu_type;
        int timeout_s;
        bool plan, detach_reattach;
        bool agent_channel;
        bool bad;
} VmArgs;

enum { OPT_LIVE = 0x100, OPT_CONFIG, OPT_FORCE, OPT_KEEP, OPT_SLOT, OPT_MDEV_TYPE, OPT_UUID, OPT_VGPU_TYPE, OPT_TIMEOUT, OPT_PLAN,
       OPT_DETACH_REATTACH, OPT_AGENT };

static void vm_opt(int c, const char *v, void *ud) {
        VmArgs *a = ud;
        uint32_t n;
        switch (c) {
        case OPT_AGENT:
                a->agent_channel = true;
                break;
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
        case OPT_PLAN:
                a->plan = true;
                break;
        case OPT_DETACH_REATTACH:
                a->detach_reattach = true;
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

/* ---- libvirt connection ---- */

/* required: the verb cannot work without libvirt (attach, detach): -errno when it cannot be reached.
 * Otherwise libvirt is consulted on a live root or when --connect is given, and an unreachable libvirt is a
 * warning: *ret stays NULL. */
static int connect_libvirt(Root *root, bool required, Virt **ret, char **ret_error) {
        *ret = NULL;
        if (!required && !root_has_libvirt(root) && !arg.connect)
                return 0;
        const char *uri = virt_resolve_uri(arg.connect);
        _cleanup_(gv_error_done) GvError err = {};
        int r = virt_open(uri, ret, &err);
        if (r >= 0)
                return 0;
        const char *msg = err.message ?: errno_message(r);
        if (required) {
                log_error("Cannot connect to libvirt at %s: %s", uri, msg);
                return r == -EINVAL || r == -ERANGE ? -EIO : r; /* libvirt is not there: not bad input */
        }
        log_warning("libvirt at %s is not reachable (%s): domains are not consulted.", uri, msg);
        if (ret_error)
                *ret_error = TAKE_PTR(err.message);
        return 0;
}

/* ---- vm xml ---- */

/* json-c building that checks every allocation: a value that could not be made or added sets *oom. */
static json_object *jmade(json_object *o, bool *oom) {
        if (!o)
                *oom = true;
        return o;
}

/* Add val (taken; NULL is JSON null) under key. */
static void jset(json_object *obj, const char *key, json_object *val, bool *oom) {
        if (!obj || json_object_object_add(obj, key, val) < 0) {
                json_object_put(val);
                *oom = true;
        }
}

static void jpush(json_object *arr, json_object *val, bool *oom) {
        if (!arr || !val || json_object_array_add(arr, val) < 0) {
                json_object_put(val);
                *oom = true;
        }
}

#define JSTR(s) jmade(json_object_new_string(s), &oom)
#define JBOOL(b) jmade(json_object_new_boolean(b), &oom)


/* A core failure as the person reads it (error_text() adds the option its hint names). The -errno. */
static int vm_error(GvError *err, int r) {
        _cleanup_free_ char *why = error_text(err, r);
        log_error("%s", why ?: "Out of memory.");
        return r;
}

static int do_xml(const char *input, const VmArgs *a) {
        _cleanup_root_free_ Root *root = NULL;
        _cleanup_pci_host_free_ PciHost *h = NULL;
        int r;
        if ((r = open_root(0, &root)) || (r = scan(root, &h)))
                return r;
        Unit u;
        _cleanup_(gv_error_done) GvError err = {};
        if ((r = vm_resolve_unit(root, h, input, &u, &err)) < 0)
                return vm_error(&err, r);
        int slot = a->guest_slot ?: (u.n_funcs > 1 ? 0x10 : -1);
        _cleanup_free_ char *xml = unit_hostdev_xml(&u, slot);
        if (!xml) {
                unit_done(&u);
                return log_error("Out of memory."), -ENOMEM;
        }
        if (arg.json) {
                bool oom = false;
                json_object *o = jmade(json_object_new_object(), &oom);
                jset(o, "unit", JSTR(u.id), &oom);
                jset(o, "kind", JSTR(unit_kind_to_string(u.kind)), &oom);
                jset(o, "xml", JSTR(xml), &oom);
                if (a->agent_channel)
                        jset(o, "agent_channel", JSTR(AGENT_CHANNEL_XML), &oom);
                if (!oom)
                        json_print(o, stdout);
                json_object_put(o);
                if (oom) {
                        unit_done(&u);
                        return log_error("Out of memory."), -ENOMEM;
                }
        } else {
                fputs(xml, stdout);
                if (a->agent_channel)
                        fputs(AGENT_CHANNEL_XML, stdout);
        }
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
                return log_oom();
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
                return -EBUSY;
        }
        log_warning("Releasing %s although running domain '%s' holds %s (--force).", bdf, rh.domain, rh.device);
        return 0;
}

/* ---- vm list ---- */

/* The list (core: vm_list_gather) as JSON, which the text form is rendered from too. NULL on OOM. */
static json_object *list_json(const VmList *l, Root *root, Virt *v, const char *verr) {
        bool oom = false;
        json_object *out = jmade(json_object_new_object(), &oom);
        json_object *lv = jmade(json_object_new_object(), &oom);
        const char *uri = v ? virt_uri(v) : (root_has_libvirt(root) || arg.connect) ? virt_resolve_uri(arg.connect) : NULL;
        jset(lv, "uri", uri ? JSTR(uri) : NULL, &oom);
        jset(lv, "consulted", JBOOL(v != NULL), &oom);
        jset(lv, "error", verr ? JSTR(verr) : NULL, &oom);
        jset(out, "libvirt", lv, &oom);

        json_object *ju = jmade(json_object_new_array(), &oom);
        for (size_t i = 0; !oom && i < l->n_units; i++) {
                const VmListUnit *lu = &l->units[i];
                const Unit *u = &lu->unit;
                json_object *o = jmade(json_object_new_object(), &oom);
                jset(o, "unit", JSTR(u->id), &oom);
                jset(o, "kind", JSTR(unit_kind_to_string(u->kind)), &oom);
                jset(o, "present", JBOOL(lu->present), &oom);
                json_object *fa = jmade(json_object_new_array(), &oom);
                for (size_t f = 0; f < u->n_funcs; f++) {
                        char b[PCI_ADDR_STRLEN];
                        jpush(fa, JSTR(pci_addr_format(&u->funcs[f], b)), &oom);
                }
                jset(o, "functions", fa, &oom);
                jset(o, "iommu_group", u->iommu_group >= 0 ? jmade(json_object_new_int(u->iommu_group), &oom) : NULL, &oom);
                jset(o, "driver", u->driver ? JSTR(u->driver) : NULL, &oom);
                jset(o, "parent", u->parent ? JSTR(u->parent) : NULL, &oom);
                jset(o, "type", u->type ? JSTR(u->type) : NULL, &oom);
                json_object *ja = jmade(json_object_new_array(), &oom);
                for (size_t k = 0; k < lu->n_holders; k++) {
                        const Holder *hd = &lu->holders[k];
                        json_object *x = jmade(json_object_new_object(), &oom);
                        jset(x, "domain", JSTR(hd->dom->name), &oom);
                        jset(x, "running", JBOOL(hd->dom->active), &oom);
                        jset(x, "live", JBOOL(hd->live), &oom);
                        jset(x, "config", JBOOL(hd->config), &oom);
                        jpush(ja, x, &oom);
                }
                jset(o, "domains", ja, &oom);
                jset(o, "held_by", lu->held_by ? JSTR(lu->held_by->name) : NULL, &oom);
                jpush(ju, o, &oom);
        }
        jset(out, "units", ju, &oom);

        json_object *jd = jmade(json_object_new_array(), &oom);
        for (size_t i = 0; !oom && i < l->n_doms; i++) {
                const VmListDomain *ld = &l->domains[i];
                const VirtDomain *d = ld->dom;
                json_object *o = jmade(json_object_new_object(), &oom);
                jset(o, "domain", JSTR(d->name), &oom);
                jset(o, "state", JSTR(d->active ? "running" : "defined"), &oom);
                jset(o, "persistent", JBOOL(d->persistent), &oom);
                json_object *us = jmade(json_object_new_array(), &oom);
                for (size_t q = 0; q < ld->n_units; q++)
                        jpush(us, JSTR(l->units[ld->units[q]].unit.id), &oom);
                jset(o, "units", us, &oom);
                jset(o, "live_migration", ld->n_units ? JBOOL(ld->migratable) : NULL, &oom);
                json_object *bl = jmade(json_object_new_array(), &oom);
                for (size_t k = 0; k < ld->n_blockers; k++)
                        jpush(bl, JSTR(ld->blockers[k]), &oom);
                jset(o, "migration_blockers", bl, &oom);
                json_object *warn = jmade(json_object_new_array(), &oom);
                for (size_t k = 0; k < ld->n_warnings; k++)
                        jpush(warn, JSTR(ld->warnings[k]), &oom);
                jset(o, "warnings", warn, &oom);
                jpush(jd, o, &oom);
        }
        jset(out, "domains", jd, &oom);
        if (oom) {
                json_object_put(out);
                return NULL;
        }
        return out;
}

static int do_list(void) {
        _cleanup_root_free_ Root *root = NULL;
        _cleanup_pci_host_free_ PciHost *h = NULL;
        _cleanup_virt_close_ Virt *v = NULL;
        _cleanup_free_ char *verr = NULL;
        int r;
        if ((r = open_root(0, &root)) || (r = scan(root, &h)) || (r = connect_libvirt(root, false, &v, &verr)))
                return r;
        _cleanup_(vm_list_done) VmList l = {};
        _cleanup_(gv_error_done) GvError err = {};
        if ((r = vm_list_gather(root, h, v, &l, &err)) < 0)
                return log_error("Out of memory."), r;
        if (l.libvirt_error) {
                log_warning("Cannot list libvirt domains at %s: %s", virt_uri(v), l.libvirt_error);
                free(verr);
                verr = TAKE_PTR(l.libvirt_error);
        }
        json_object *out = list_json(&l, root, v, verr);
        bool oom = !out;
        json_object *ju = out ? json_object_object_get(out, "units") : NULL;
        json_object *jd = out ? json_object_object_get(out, "domains") : NULL;

        if (oom)
                log_error("Out of memory.");
        else if (arg.json)
                json_print(out, stdout);
        else {
                static const char *const uh[] = {"UNIT", "KIND", "GROUP", "DRIVER", "DOMAINS"};
                Table *t = table_new(ELEMENTSOF(uh), uh);
                oom |= !t;
                for (size_t i = 0; t && !oom && i < json_object_array_length(ju); i++) {
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
                        oom |= !kind || !grp || table_add_row(t, cells) < 0;
                }
                if (t && !oom)
                        table_print(t, stdout);
                table_free(t);
                if (!oom && !v)
                        printf("\nlibvirt not consulted%s%s%s.\n", verr ? " (" : "", verr ?: "",
                               verr ? ")" : root_has_libvirt(root) ? "" : " on a simulated or captured root (give --connect URI)");
                else if (!oom && json_object_array_length(jd) > 0) {
                        static const char *const dh[] = {"DOMAIN", "STATE", "GPU UNITS", "LIVE MIGRATION"};
                        Table *t2 = table_new(ELEMENTSOF(dh), dh);
                        oom |= !t2;
                        for (size_t i = 0; t2 && !oom && i < json_object_array_length(jd); i++) {
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
                                oom |= !mig || table_add_row(t2, cells) < 0;
                        }
                        if (!oom) {
                                printf("\n");
                                table_print(t2, stdout);
                        }
                        table_free(t2);
                        for (size_t i = 0; !oom && i < json_object_array_length(jd); i++) {
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
        if (oom && out)
                log_error("Out of memory.");
        return oom ? -ENOMEM : 0;
}

/* ---- attach / detach ---- */

static json_object *result_json(const char *action, const char *dom, const VmResult *res) {
        const Unit *u = &res->unit;
        bool oom = false;
        json_object *o = jmade(json_object_new_object(), &oom);
        jset(o, "action", JSTR(action), &oom);
        jset(o, "domain", JSTR(dom), &oom);
        jset(o, "unit", JSTR(u->id), &oom);
        jset(o, "kind", JSTR(unit_kind_to_string(u->kind)), &oom);
        jset(o, "live", JBOOL(res->live), &oom);
        jset(o, "config", JBOOL(res->config), &oom);
        if (streq(action, "detach")) {
                jset(o, "released", JBOOL(res->released), &oom);
                jset(o, "kept_for", res->kept_for ? JSTR(res->kept_for) : NULL, &oom);
        }
        jset(o, "seconds", jmade(json_object_new_double(res->seconds), &oom), &oom);
        if (oom) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

/* The JSON result, or "Out of memory." and -ENOMEM. */
static int print_result(const char *action, const char *dom, const VmResult *res) {
        json_object *j = result_json(action, dom, res);
        if (!j)
                return log_error("Out of memory."), -ENOMEM;
        json_print(j, stdout);
        json_object_put(j);
        return 0;
}

static VmRequest vm_request(const char *dom, const char *input, const VmArgs *a) {
        return (VmRequest){.domain = dom, .device = input, .live = a->live, .config = a->config, .force = a->force,
                           .keep = a->keep, .guest_slot = a->guest_slot, .mdev_type = a->mdev_type, .uuid = a->uuid,
                           .vgpu_type = a->vgpu_type, .timeout_s = a->timeout_s,
                           .agent_channel = a->agent_channel};
}

/* What attach and detach start with: the root (and with it the host lock), its devices and libvirt. 0, an
 * exit code, or -errno; the caller's cleanups own what was opened. */
static int vm_begin(Root **root, PciHost **h, Virt **v) {
        int r;
        if ((r = open_root(0, root)) || (r = scan(*root, h)))
                return r;
        return connect_libvirt(*root, true, v, NULL);
}

static int do_attach(const char *dom, const char *input, const VmArgs *a) {
        _cleanup_root_free_ Root *root = NULL;
        _cleanup_pci_host_free_ PciHost *h = NULL;
        _cleanup_virt_close_ Virt *v = NULL;
        int r = vm_begin(&root, &h, &v);
        if (r)
                return r;
        VmRequest req = vm_request(dom, input, a);
        _cleanup_(vm_result_done) VmResult res = {};
        _cleanup_(gv_error_done) GvError err = {};
        _cleanup_strv_free_ char **undo = NULL;
        r = vm_attach(root, h, v, &req, &res, &undo, &err);
        if (r < 0) {
                (void)vm_error(&err, r);
                for (size_t i = 0; undo && undo[i]; i++)
                        log_error("%s", undo[i]);
                return r;
        }
        if (res.dry_run)
                return 0;
        if (arg.json)
                return print_result("attach", dom, &res);
        else
                printf("%s (%s, %zu hostdev%s) attached to %s (%s%s%s) in %.2f s\n", res.unit.id,
                       unit_kind_to_string(res.unit.kind), res.n_hostdevs, res.n_hostdevs == 1 ? "" : "s", dom,
                       res.live ? "live" : "", res.live && res.config ? ", " : "", res.config ? "config" : "", res.seconds);
        return 0;
}

static int do_detach(const char *dom, const char *input, const VmArgs *a) {
        _cleanup_root_free_ Root *root = NULL;
        _cleanup_pci_host_free_ PciHost *h = NULL;
        _cleanup_virt_close_ Virt *v = NULL;
        int r = vm_begin(&root, &h, &v);
        if (r)
                return r;
        VmRequest req = vm_request(dom, input, a);
        _cleanup_(vm_result_done) VmResult res = {};
        _cleanup_(gv_error_done) GvError err = {};
        r = vm_detach(root, h, v, &req, &res, &err);
        if (r < 0)
                return vm_error(&err, r);
        if (res.warning)
                log_warning("%s", res.warning);
        if (res.dry_run)
                return 0;
        if (arg.json)
                return print_result("detach", dom, &res);
        else {
                printf("%s detached from %s (%s%s%s) in %.2f s\n", res.unit.id, dom, res.live ? "live" : "",
                       res.live && res.config ? ", " : "", res.config ? "config" : "", res.seconds);
                if (res.released)
                        printf("%s given back to the host\n", res.unit.id);
                else if (res.kept_for)
                        printf("%s kept prepared: still referenced by %s\n", res.unit.id, res.kept_for);
        }
        return 0;
}

/* Bad usage: the message (usage_error()), and -EINVAL, which exits 2. */
#define vm_usage(...) (usage_error(__VA_ARGS__), -EINVAL)

/* ---- vm migrate ---- */

static void print_migrate_text(json_object *o) {
        printf("%s -> %s: live migration %s\n", json_object_get_string(json_object_object_get(o, "domain")),
               json_object_get_string(json_object_object_get(o, "destination")),
               json_object_get_boolean(json_object_object_get(o, "live_migration")) ? "possible" : "blocked");
        json_object *bl = json_object_object_get(o, "blockers");
        for (size_t i = 0; i < json_object_array_length(bl); i++)
                printf("  blocked: %s\n", json_object_get_string(json_object_array_get_idx(bl, i)));
        json_object *us = json_object_object_get(o, "units");
        for (size_t i = 0; i < json_object_array_length(us); i++) {
                json_object *u = json_object_array_get_idx(us, i);
                json_object *d = json_object_object_get(u, "destination");
                json_object *need = json_object_object_get(u, "destination_needs");
                printf("  %s (%s): %s\n", json_text(json_object_object_get(u, "unit")),
                       json_text(json_object_object_get(u, "kind")),
                       json_object_get_boolean(json_object_object_get(u, "migratable")) ? "migratable" : "not migratable");
                json_object *ub = json_object_object_get(u, "blockers");
                for (size_t k = 0; k < json_object_array_length(ub); k++)
                        printf("    %s\n", json_object_get_string(json_object_array_get_idx(ub, k)));
                if (d)
                        printf("    on the destination first: mdev %s of type %s under %s\n",
                               json_text(json_object_object_get(d, "uuid")), json_text(json_object_object_get(d, "type")),
                               json_text(json_object_object_get(d, "parent")));
                if (need)
                        printf("    %s\n", json_object_get_string(need));
                json_object *ra = json_object_object_get(u, "reattach");
                if (ra && json_object_object_get(ra, "destination_device"))
                        printf("    --detach-reattach: hot-unplug it here, migrate, then bind %s to vfio-pci on the "
                               "destination and hot-plug it (the guest sees a GPU removal and a new GPU)\n",
                               json_text(json_object_object_get(ra, "destination_device")));
        }
        json_object *dr = json_object_object_get(o, "detach_reattach");
        if (json_object_array_length(dr) > 0)
                printf("  --detach-reattach would hot-unplug %zu unit(s), migrate, and hot-plug an equivalent unit on "
                       "the destination (the guest sees a GPU removal)\n",
                       json_object_array_length(dr));
}

/* --detach-reattach without --plan: the run, and what happened to each unit. */
static int migrate_detach_reattach(Virt *v, Virt *dst, const MigratePlan *p) {
        _cleanup_free_ char *err = NULL;
        json_object *res = NULL;
        size_t missing = 0;
        int r = migrate_run_detach_reattach(&migrate_libvirt_ops, v, dst, p, &res, &missing, &err);
        if (r == -ENOMEM)
                return log_oom();
        /* what to type for a unit the move left out (core says which, the command line is ours) */
        for (size_t i = 0; i < json_object_array_length(res); i++) {
                json_object *u = json_object_array_get_idx(res, i);
                json_object *d = json_object_object_get(u, "destination_device");
                if (d && streq(json_text(json_object_object_get(u, "state")), "missing from the migrated domain") &&
                    json_object_object_add(u, "retry", json_string_printf(
                            "on the destination host: gpuvirt --connect %s vm attach --live %s %s", p->dest_uri,
                            p->domain, json_text(d))) < 0)
                        return log_oom();
        }
        if (arg.json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "domain", json_object_new_string(p->domain));
                json_object_object_add(o, "destination", json_object_new_string(p->dest_uri));
                json_object_object_add(o, "migrated", json_object_new_boolean(r >= 0));
                json_object_object_add(o, "error", err ? json_object_new_string(err) : NULL);
                json_object_object_add(o, "units", json_object_get(res));
                json_print(o, stdout);
                json_object_put(o);
        } else
                for (size_t i = 0; i < json_object_array_length(res); i++) {
                        json_object *u = json_object_array_get_idx(res, i);
                        json_object *d = json_object_object_get(u, "destination_device");
                        printf("  %s: %s%s%s\n", json_text(json_object_object_get(u, "unit")),
                               json_text(json_object_object_get(u, "state")), d ? " as " : "", d ? json_text(d) : "");
                        for (const char *k = "error"; k; k = streq(k, "error") ? "retry" : NULL)
                                if (json_object_object_get(u, k))
                                        printf("    %s: %s\n", k, json_text(json_object_object_get(u, k)));
                }
        json_object_put(res);
        if (r < 0)
                return log_error("%s (the domain stays on the source)", strna(err)), failure_errno(r);
        if (missing > 0)
                return log_error("Migrated %s to %s, but %zu unit(s) are missing from it there (see above).", p->domain,
                                 p->dest_uri, missing),
                       -EIO;
        printf("Migrated %s to %s; the guest saw its GPU(s) removed and new ones added.\n", p->domain, p->dest_uri);
        return 0;
}

static int do_migrate(const char *domain, const char *dest_uri, const VmArgs *a) {
        if (isempty(dest_uri))
                return vm_usage("vm migrate: DEST_URI is empty");
        _cleanup_root_free_ Root *root = NULL;
        _cleanup_pci_host_free_ PciHost *h = NULL;
        _cleanup_virt_close_ Virt *v = NULL, *dst = NULL;
        int r;
        if ((r = open_root(0, &root)) || (r = scan(root, &h)) || (r = connect_libvirt(root, true, &v, NULL)))
                return r;
        _cleanup_(gv_error_done) GvError derr = {};
        (void)virt_open(dest_uri, &dst, &derr);
        _cleanup_migrate_plan_free_ MigratePlan *p = NULL;
        r = migrate_plan(root, h, v, domain, dst, dest_uri, gv_error_message(&derr), &p);
        if (r == -ENOENT)
                return log_error("No domain '%s' at %s.", domain, virt_uri(v)), -ENOENT;
        if (r >= 0 && a->detach_reattach)
                r = migrate_plan_detach_reattach(p, h, v, dst);
        if (r < 0) {
                _cleanup_(gv_error_done) GvError e = {};
                (void)virt_error_take(v, &e, r, NULL, "Cannot plan the migration of %s", domain);
                return log_error("%s", gv_error_message(&e) ?: "Cannot plan the migration"), failure_errno(r);
        }
        json_object *o = migrate_plan_json(p);
        if (arg.json && (a->plan || (a->detach_reattach && !p->migratable)))
                json_print(o, stdout);
        else if (!arg.json || !a->detach_reattach) /* a --json detach-reattach run prints its outcome only */
                print_migrate_text(o);
        json_object_put(o);
        if (a->plan)
                return p->migratable ? 0 : VERB_CHECK_FAILED;
        if (!p->migratable)
                return log_error("Not migrating %s: the plan has blockers (see above).", domain), -EPERM;
        _cleanup_free_ char *err = NULL;
        if (a->detach_reattach)
                return migrate_detach_reattach(v, dst, p);
        r = migrate_run(v, dst, p, &err);
        if (r < 0)
                return log_error("%s (the destination's new units were released)", strna(err)), failure_errno(r);
        printf("Migrated %s to %s.\n", domain, dest_uri);
        return 0;
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
                {"agent-channel", no_argument, NULL, OPT_AGENT},
                {"plan", no_argument, NULL, OPT_PLAN},
                {"detach-reattach", no_argument, NULL, OPT_DETACH_REATTACH},
                {},
        };
        const char *sub = argv[1];
        VmArgs a = {.timeout_s = 30};
        int k = parse_verb_options(argc - 1, argv + 1, opts, "", vm_opt, &a);
        if (k < 0 || a.bad)
                return -EINVAL;
        int first = k + 1, npos = argc - first;
        bool attach = streq(sub, "attach"), detach = streq(sub, "detach");
        if ((a.live || a.config) && !attach && !detach)
                return vm_usage("vm %s: --live and --config are for attach and detach", sub);
        if ((a.mdev_type || a.vgpu_type || a.uuid) && !attach)
                return vm_usage("vm %s: --mdev-type, --uuid and --vgpu-type are for attach", sub);
        if (a.mdev_type && a.vgpu_type)
                return vm_usage("vm attach: --mdev-type and --vgpu-type exclude each other");
        if (a.uuid && !a.mdev_type)
                return vm_usage("vm attach: --uuid names the mdev that --mdev-type creates");
        if (a.agent_channel && !attach && !streq(sub, "xml"))
                return vm_usage("vm %s: --agent-channel is for attach and xml", sub);
        if (streq(sub, "xml")) {
                if (npos != 1)
                        return vm_usage("vm xml: expected one device (PCI address or mdev UUID)");
                return do_xml(argv[first], &a);
        }
        if ((a.plan || a.detach_reattach) && !streq(sub, "migrate"))
                return vm_usage("vm %s: --plan and --detach-reattach are for migrate", sub);
        if (streq(sub, "migrate")) {
                if (npos != 2)
                        return vm_usage("vm migrate: expected DOMAIN DEST_URI");
                if (a.plan)
                        arg.mutating = false; /* a plan changes nothing: no host lock (no lock file) either */
                return do_migrate(argv[first], argv[first + 1], &a);
        }
        if (streq(sub, "list")) {
                if (npos != 0)
                        return vm_usage("vm list: takes no arguments");
                return do_list();
        }
        if (attach || detach) {
                if (npos != 2)
                        return vm_usage("vm %s: expected DOMAIN DEVICE", sub);
                if (detach && a.guest_slot)
                        return vm_usage("vm detach: --guest-slot is for attach and xml");
                return attach ? do_attach(argv[first], argv[first + 1], &a) : do_detach(argv[first], argv[first + 1], &a);
        }
        return vm_usage("vm: unknown command '%s' (xml, attach, detach, list, migrate)", sub);
}
