/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "core/vm/migrate.h"

static void reattach_done(MigrateUnit *m);

#define push(arr, ...) json_object_array_add((arr), json_string_printf(__VA_ARGS__))

/* The message of the last failed libvirt call on v, for the texts of this file (valid until the next call
 * of this function in the thread). */
static const char *libvirt_last_error(const Virt *v) {
        static _Thread_local char *last = NULL;
        _cleanup_(gv_error_done) GvError e = {};
        (void)virt_error_take((Virt *)v, &e, -EIO, NULL, NULL);
        free(last);
        last = gv_error_steal_message(&e);
        return !isempty(last) ? last : "unknown libvirt error";
}

/* The unit's blockers on the side m describes, each "PREFIXID: why" appended to arr. false: some, or OOM. */
static bool verdict(const Unit *u, const MigrationHost *m, const char *prefix, json_object *arr) {
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0;
        if (unit_migration_blockers(u, m, &l, &n) < 0) {
                push(arr, "%s%s: out of memory", prefix, u->id);
                return false;
        }
        for (size_t i = 0; i < n; i++)
                push(arr, "%s%s", prefix, l[i]);
        return n == 0;
}

MigratePlan *migrate_plan_free(MigratePlan *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_units; i++) {
                unit_done(&p->units[i].unit);
                json_object_put(p->units[i].blockers);
                free(p->units[i].dest_parent);
                free(p->units[i].dest_note);
                reattach_done(&p->units[i]);
        }
        free(p->units);
        json_object_put(p->blockers);
        free(p->domain);
        free(p->dest_uri);
        free(p);
        return NULL;
}

/* The destination's side of a unit that can move: its versions, and the unit made there first. */
static void plan_destination(Virt *dst, const MigrationHost *dhost, MigrateUnit *m) {
        const Unit *u = &m->unit;
        /* the destination runs the domain after the move: its versions count as the source's do */
        (void)verdict(u, dhost, "destination: ", m->blockers);
        if (u->kind == UNIT_MDEV) {
                char *parent = NULL;
                int r = virt_mdev_parent_with(dst, u->type, &parent);
                if (r == -ENOENT)
                        push(m->blockers, "%s: the destination has no free instance of mdev type %s", u->id, u->type);
                else if (r < 0)
                        push(m->blockers, "%s: cannot list the destination's node devices: %s", u->id, libvirt_last_error(dst));
                else
                        m->dest_parent = parent;
        } else if (u->kind == UNIT_VENDOR_VGPU)
                m->dest_note = strdup_printf("the destination needs a VF at %s with vGPU type %s: prepare it there "
                                             "first (gpuvirt vgpu create %s %s); libvirt cannot create vendor vGPUs",
                                             u->id, strna(u->type), strna(u->parent), strna(u->type));
}

int migrate_plan(Root *root, const PciHost *h, Virt *src, const char *domain, Virt *dst, const char *dest_uri,
                 const char *dst_error, MigratePlan **ret) {
        bool active = false, persistent = false;
        int r = virt_domain_state(src, domain, &active, &persistent);
        if (r < 0)
                return r;
        _cleanup_free_ char *xml = NULL;
        if ((r = virt_domain_xml(src, domain, !active, &xml)) < 0)
                return r;
        DomainXmlInfo info = {};
        if ((r = domain_xml_parse(xml, &info)) < 0)
                return r;
        _cleanup_migrate_plan_free_ MigratePlan *p = calloc(1, sizeof *p);
        if (!p || !(p->domain = strdup(domain)) || !(p->dest_uri = strdup(dest_uri)) ||
            !(p->blockers = json_object_new_array()) || !(p->units = calloc(info.n_hostdevs + 1, sizeof *p->units))) {
                domain_xml_info_done(&info);
                return -ENOMEM;
        }
        p->running = active;
        if (!active)
                push(p->blockers, "%s is not running: there is nothing to live-migrate", domain);
        if (!dst)
                push(p->blockers, "the destination %s is not reachable: %s", dest_uri, dst_error ?: "unknown error");
        MigrationHost here, there;
        migration_host(root, src, &here);
        migration_host(NULL, dst, &there);
        there.kernel = MIGRATION_KERNEL_NOT_CHECKED;
        for (size_t i = 0; i < info.n_hostdevs; i++) {
                const HostdevRef *ref = &info.hostdevs[i];
                char id[40];
                if (ref->type == HOSTDEV_TYPE_MDEV)
                        snprintf(id, sizeof id, "%s", ref->uuid);
                else
                        pci_addr_format(&ref->addr, id);
                /* one unit per card: its other functions are the same unit */
                bool seen = false;
                for (size_t k = 0; k < p->n_units && !seen; k++)
                        seen = unit_matches(&p->units[k].unit, ref);
                if (seen)
                        continue;
                MigrateUnit *m = &p->units[p->n_units];
                m->blockers = json_object_new_array();
                if (unit_resolve(root, h, id, &m->unit) < 0) {
                        m->unit = (Unit){.kind = ref->type == HOSTDEV_TYPE_MDEV ? UNIT_MDEV : UNIT_PCI, .iommu_group = -1};
                        snprintf(m->unit.id, sizeof m->unit.id, "%s", id);
                        push(m->blockers, "%s: not on this host: the domain's device is missing", id);
                        p->n_units++;
                        continue;
                }
                p->n_units++;
                (void)verdict(&m->unit, &here, "", m->blockers);
                /* the destination's side of what the driver can migrate, whatever else blocks on this side */
                if (dst && migration_facts(unit_migration_path(&m->unit))->migratable)
                        plan_destination(dst, &there, m);
                m->migratable = json_object_array_length(m->blockers) == 0;
        }
        domain_xml_info_done(&info);
        p->migratable = json_object_array_length(p->blockers) == 0;
        for (size_t i = 0; i < p->n_units; i++)
                p->migratable = p->migratable && p->units[i].migratable;
        *ret = TAKE_PTR(p);
        return 0;
}

/* --detach-reattach: what happens to a vfio-pci unit (NULL for the others). */
static json_object *reattach_json(const MigrateUnit *m) {
        if (!m->reattach)
                return NULL;
        json_object *o = json_object_new_object(), *nd = json_object_new_array();
        json_object_object_add(o, "unplug_from_source", json_object_new_int((int)m->n_src_elems));
        json_object_object_add(o, "destination_device", *m->dest_device ? json_object_new_string(m->dest_device) : NULL);
        for (size_t i = 0; i < m->n_dest_nodedevs; i++)
                json_object_array_add(nd, json_object_new_string(m->dest_nodedevs[i]));
        json_object_object_add(o, "destination_nodedevs", nd);
        json_object_object_add(o, "guest_sees", json_object_new_string("a GPU removal before the move and a new GPU after it"));
        return o;
}

json_object *migrate_plan_json(const MigratePlan *p) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "domain", json_object_new_string(p->domain));
        json_object_object_add(o, "destination", json_object_new_string(p->dest_uri));
        json_object_object_add(o, "running", json_object_new_boolean(p->running));
        json_object_object_add(o, "live_migration", json_object_new_boolean(p->migratable));
        json_object_object_add(o, "blockers", json_object_get(p->blockers));
        json_object *us = json_object_new_array(), *dr = json_object_new_array();
        for (size_t i = 0; i < p->n_units; i++) {
                const MigrateUnit *m = &p->units[i];
                json_object *x = json_object_new_object();
                json_object_object_add(x, "unit", json_object_new_string(m->unit.id));
                json_object_object_add(x, "kind", json_object_new_string(unit_kind_to_string(m->unit.kind)));
                json_object_object_add(x, "type", m->unit.type ? json_object_new_string(m->unit.type) : NULL);
                json_object_object_add(x, "migratable", json_object_new_boolean(m->migratable));
                json_object_object_add(x, "blockers", json_object_get(m->blockers));
                json_object *d = NULL;
                if (m->dest_parent) {
                        d = json_object_new_object();
                        json_object_object_add(d, "create", json_object_new_string("mdev"));
                        json_object_object_add(d, "parent", json_object_new_string(m->dest_parent));
                        json_object_object_add(d, "type", json_object_new_string(m->unit.type));
                        json_object_object_add(d, "uuid", json_object_new_string(m->unit.id));
                }
                json_object_object_add(x, "destination", d);
                json_object_object_add(x, "destination_needs", m->dest_note ? json_object_new_string(m->dest_note) : NULL);
                if (p->detach_reattach)
                        json_object_object_add(x, "reattach", reattach_json(m));
                json_object_array_add(us, x);
                if (unit_migration_path(&m->unit) == UNIT_PATH_VFIO_PCI)
                        json_object_array_add(dr, json_object_new_string(m->unit.id));
        }
        json_object_object_add(o, "units", us);
        /* what --detach-reattach would take out before the move and put back after it */
        json_object_object_add(o, "detach_reattach", dr);
        return o;
}

int migrate_run(Virt *src, Virt *dst, const MigratePlan *p, char **ret_error) {
        if (!p->migratable || !dst)
                return -EPERM;
        _cleanup_strv_free_ char **created = NULL;
        size_t nc = 0;
        int r = 0;
        for (size_t i = 0; i < p->n_units && r >= 0; i++) {
                const MigrateUnit *m = &p->units[i];
                if (!m->dest_parent)
                        continue;
                char *name = NULL;
                r = virt_mdev_create(dst, m->dest_parent, m->unit.type, m->unit.id, &name);
                if (r < 0)
                        *ret_error = strdup_printf("cannot create mdev %s (%s) under %s on the destination: %s", m->unit.id,
                                                   m->unit.type, m->dest_parent, libvirt_last_error(dst));
                else
                        r = strv_push(&created, &nc, name); /* frees name when it fails */
        }
        if (r >= 0 && (r = virt_migrate(src, p->domain, p->dest_uri)) < 0)
                *ret_error = strdup_printf("migration of %s to %s failed: %s", p->domain, p->dest_uri, libvirt_last_error(src));
        if (r < 0)
                /* the domain stays where it was: the destination's new units go again */
                for (size_t i = nc; i-- > 0;)
                        (void)virt_nodedev_destroy(dst, created[i]);
        return r;
}

/* ---- --detach-reattach ---- */

static void reattach_done(MigrateUnit *m) {
        strv_free(m->src_elems);
        strv_free(m->dest_nodedevs);
        strv_free(m->dest_elems);
        m->src_elems = m->dest_nodedevs = m->dest_elems = NULL;
        m->n_src_elems = m->n_dest_nodedevs = m->n_dest_elems = 0;
}

static bool pci_addr_equal(const PciAddr *a, const PciAddr *b) {
        return a->domain == b->domain && a->bus == b->bus && a->slot == b->slot && a->func == b->func;
}

/* The destination domain that references the node device's address, NULL when none does. */
static const char *nodedev_user(const VirtPciNodedev *d, const VirtDomain *doms, size_t n_doms) {
        HostdevRef ref = {.type = HOSTDEV_TYPE_PCI, .addr = d->addr};
        for (size_t i = 0; i < n_doms; i++) {
                const DomainXmlInfo *defs[] = {&doms[i].live, &doms[i].config};
                for (size_t k = 0; k < ELEMENTSOF(defs); k++)
                        for (size_t j = 0; j < defs[k]->n_hostdevs; j++)
                                if (hostdev_ref_equal(&defs[k]->hostdevs[j], &ref))
                                        return doms[i].name;
        }
        return NULL;
}

static const VirtPciNodedev *nodedev_at(const VirtPciNodedev *devs, size_t n, const PciAddr *a) {
        for (size_t i = 0; i < n; i++)
                if (pci_addr_equal(&devs[i].addr, a))
                        return &devs[i];
        return NULL;
}

int migrate_find_equivalent(const Unit *u, const uint32_t *func_ids, uint16_t pf_vendor, uint16_t pf_device,
                            const VirtPciNodedev *devs, size_t n_devs, const VirtDomain *doms, size_t n_doms,
                            char *const *taken, size_t *ret_funcs, char **ret_why) {
        bool vf = u->kind == UNIT_VF;
        size_t models = 0;
        const char *used_by = NULL;
        char used_dev[PCI_ADDR_STRLEN] = "";
        for (size_t i = 0; i < n_devs; i++) {
                const VirtPciNodedev *d = &devs[i];
                if (d->is_vf != vf || ((uint32_t)d->vendor << 16 | d->device) != func_ids[0] ||
                    (!vf && d->addr.func != u->funcs[0].func))
                        continue;
                if (vf) {
                        const VirtPciNodedev *pf = nodedev_at(devs, n_devs, &d->pf);
                        if (!pf || pf->vendor != pf_vendor || pf->device != pf_device)
                                continue;
                }
                /* every function of the card, at the same function number with the same IDs */
                size_t idx[8] = {i};
                bool whole = u->n_funcs <= ELEMENTSOF(idx);
                for (size_t f = 1; f < u->n_funcs && whole; f++) {
                        PciAddr a = d->addr;
                        a.func = u->funcs[f].func;
                        const VirtPciNodedev *o = nodedev_at(devs, n_devs, &a);
                        whole = o && ((uint32_t)o->vendor << 16 | o->device) == func_ids[f];
                        if (whole)
                                idx[f] = (size_t)(o - devs);
                }
                if (!whole)
                        continue;
                models++;
                const char *user = NULL;
                bool chosen = false;
                for (size_t f = 0; f < u->n_funcs && !user && !chosen; f++) {
                        user = nodedev_user(&devs[idx[f]], doms, n_doms);
                        chosen = strv_contains(taken, devs[idx[f]].name);
                }
                if (user) {
                        used_by = user;
                        pci_addr_format(&d->addr, used_dev);
                        continue;
                }
                if (chosen)
                        continue;
                for (size_t f = 0; f < u->n_funcs; f++)
                        ret_funcs[f] = idx[f];
                return 0;
        }
        char what[64];
        if (vf)
                snprintf(what, sizeof what, "VF %04x:%04x of a %04x:%04x PF", func_ids[0] >> 16, func_ids[0] & 0xffff,
                         pf_vendor, pf_device);
        else
                snprintf(what, sizeof what, "device %04x:%04x", func_ids[0] >> 16, func_ids[0] & 0xffff);
        if (models == 0)
                *ret_why = strdup_printf("%s: the destination has no %s", u->id, what);
        else if (used_by)
                *ret_why = strdup_printf("%s: every %s on the destination (%zu) is in use (%s by domain '%s')", u->id,
                                         what, models, used_dev, used_by);
        else
                *ret_why = strdup_printf("%s: every %s on the destination (%zu) is taken by the other units of this move",
                                         u->id, what, models);
        return *ret_why ? -ENOENT : -ENOMEM;
}

/* The unit's elements in the source domain's live definition, and the destination's equivalent. */
static int plan_reattach_unit(MigrateUnit *m, const PciHost *h, const char *live_xml,
                              const VirtPciNodedev *devs, size_t n_devs, const VirtDomain *doms, size_t n_doms,
                              char ***taken, size_t *n_taken) {
        const Unit *u = &m->unit;
        _cleanup_free_ HostdevRef *refs = NULL;
        size_t n_refs = 0;
        int r = unit_refs(u, &refs, &n_refs);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_refs; i++) {
                char *el = NULL;
                r = domain_xml_hostdev_element(live_xml, &refs[i], &el);
                if (r == -ENOENT)
                        continue; /* a function the domain does not have */
                if (r < 0 || (r = strv_push(&m->src_elems, &m->n_src_elems, el)) < 0)
                        return r; /* strv_push frees el when it fails */
        }
        uint32_t ids[8] = {};
        uint16_t pfv = 0, pfd = 0;
        for (size_t f = 0; f < u->n_funcs && f < ELEMENTSOF(ids); f++) {
                char a[PCI_ADDR_STRLEN];
                const PciDevice *d = pci_host_find(h, pci_addr_format(&u->funcs[f], a));
                ids[f] = d ? (uint32_t)d->vendor << 16 | d->device : 0;
        }
        if (u->kind == UNIT_VF) {
                const PciDevice *pf = u->parent ? pci_host_find(h, u->parent) : NULL;
                if (pf)
                        pfv = pf->vendor, pfd = pf->device;
        }
        if (u->n_funcs == 0 || u->n_funcs > ELEMENTSOF(ids)) {
                push(m->blockers, "%s: cannot find an equivalent for a unit of %zu functions", u->id, u->n_funcs);
                return 0;
        }
        size_t idx[8];
        _cleanup_free_ char *why = NULL;
        r = migrate_find_equivalent(u, ids, pfv, pfd, devs, n_devs, doms, n_doms, *taken, idx, &why);
        if (r == -ENOENT) {
                push(m->blockers, "%s", why);
                return 0;
        }
        if (r < 0)
                return r;
        Unit dest = {.kind = u->kind, .id = "", .iommu_group = -1};
        _cleanup_free_ PciAddr *funcs = calloc(u->n_funcs, sizeof *funcs);
        if (!funcs)
                return -ENOMEM;
        for (size_t f = 0; f < u->n_funcs; f++) {
                funcs[f] = devs[idx[f]].addr;
                char *a = strdup(devs[idx[f]].name), *b = strdup(devs[idx[f]].name);
                if (!a || !b) {
                        free(a);
                        free(b);
                        return -ENOMEM;
                }
                /* strv_push frees what it cannot take */
                if ((r = strv_push(&m->dest_nodedevs, &m->n_dest_nodedevs, a)) < 0) {
                        free(b);
                        return r;
                }
                if ((r = strv_push(taken, n_taken, b)) < 0)
                        return r;
        }
        dest.funcs = funcs;
        dest.n_funcs = u->n_funcs;
        pci_addr_format(&funcs[0], m->dest_device);
        return unit_hostdev_elements(&dest, -1, &m->dest_elems, &m->n_dest_elems);
}

int migrate_plan_detach_reattach(MigratePlan *p, const PciHost *h, Virt *src, Virt *dst) {
        p->detach_reattach = true;
        _cleanup_free_ char *xml = NULL;
        VirtPciNodedev *devs = NULL;
        VirtDomain *doms = NULL;
        size_t n_devs = 0, n_doms = 0, n_taken = 0;
        char **taken = NULL;
        int r = 0;
        bool any = false;
        for (size_t i = 0; i < p->n_units; i++)
                any = any || (p->units[i].unit.n_funcs > 0 && unit_migration_path(&p->units[i].unit) == UNIT_PATH_VFIO_PCI);
        if (!any || !p->running)
                goto recount;
        if ((r = virt_domain_xml(src, p->domain, false, &xml)) < 0)
                return r;
        bool listed = false;
        if (dst && virt_list_pci_nodedevs(dst, &devs, &n_devs) < 0)
                push(p->blockers, "cannot list the destination's node devices: %s", libvirt_last_error(dst));
        else if (dst && virt_list_domains(dst, &doms, &n_doms) < 0)
                push(p->blockers, "cannot list the destination's domains: %s", libvirt_last_error(dst));
        else
                listed = dst != NULL;
        for (size_t i = 0; i < p->n_units && r >= 0; i++) {
                MigrateUnit *m = &p->units[i];
                if (m->unit.n_funcs == 0 || unit_migration_path(&m->unit) != UNIT_PATH_VFIO_PCI)
                        continue; /* not on this host (its blocker stays), or moved by the driver */
                /* its only blocker was vfio-pci's: it is taken out instead */
                json_object_put(m->blockers);
                if (!(m->blockers = json_object_new_array())) {
                        r = -ENOMEM;
                        break;
                }
                m->reattach = true;
                if (listed)
                        r = plan_reattach_unit(m, h, xml, devs, n_devs, doms, n_doms, &taken, &n_taken);
                m->migratable = r >= 0 && json_object_array_length(m->blockers) == 0;
        }
        virt_pci_nodedevs_free(devs, n_devs);
        virt_domains_free(doms, n_doms);
        strv_free(taken);
        if (r < 0)
                return r;
recount:
        p->migratable = json_object_array_length(p->blockers) == 0;
        for (size_t i = 0; i < p->n_units; i++)
                p->migratable = p->migratable && p->units[i].migratable;
        return 0;
}


const MigrateOps migrate_libvirt_ops = {
        .unplug = virt_detach_live,
        .plug = virt_attach_live,
        .migrate = migrate_run,
        .nodedev_detach = virt_nodedev_detach,
        .last_error = libvirt_last_error,
};

/* Plug the source units [0, n) back into the source domain, last first, each element taken out (e of the
 * unit at n, when partly unplugged, counts its elements); what did not go back is named in the result. */
static void replug_source(const MigrateOps *ops, Virt *src, const MigratePlan *p, json_object **res, size_t n,
                          size_t e_last) {
        for (size_t i = n + 1; i-- > 0;) {
                if (i >= p->n_units || !p->units[i].reattach || !res[i])
                        continue;
                const MigrateUnit *m = &p->units[i];
                size_t ne = i == n ? e_last : m->n_src_elems;
                bool ok = true;
                for (size_t e = ne; e-- > 0;)
                        if (ops->plug(src, p->domain, m->src_elems[e]) < 0) {
                                ok = false;
                                json_object_object_add(res[i], "error", json_string_printf(
                                        "cannot plug %s back into %s on the source: %s", m->unit.id, p->domain,
                                        ops->last_error(src)));
                        }
                if (ne > 0)
                        json_object_object_add(res[i], "state",
                                               json_object_new_string(ok ? "plugged back into the source domain"
                                                                         : "missing from the source domain"));
        }
}

int migrate_run_detach_reattach(const MigrateOps *ops, Virt *src, Virt *dst, const MigratePlan *p,
                                json_object **ret_result, size_t *ret_missing, char **ret_error) {
        if (!p->migratable || !dst || !p->detach_reattach)
                return -EPERM;
        json_object *result = json_object_new_array();
        _cleanup_free_ json_object **res = calloc(p->n_units + 1, sizeof *res);
        if (!result || !res) {
                json_object_put(result);
                return -ENOMEM;
        }
        for (size_t i = 0; i < p->n_units; i++) {
                if (!p->units[i].reattach)
                        continue;
                res[i] = json_object_new_object();
                json_object_object_add(res[i], "unit", json_object_new_string(p->units[i].unit.id));
                json_object_object_add(res[i], "state", json_object_new_string("not touched"));
                json_object_array_add(result, res[i]);
        }
        int r = 0;
        /* 1. take the units out of the running domain (the guest sees a GPU removal) */
        for (size_t i = 0; i < p->n_units && r >= 0; i++) {
                const MigrateUnit *m = &p->units[i];
                for (size_t e = 0; m->reattach && e < m->n_src_elems; e++) {
                        if ((r = ops->unplug(src, p->domain, m->src_elems[e])) < 0) {
                                *ret_error = strdup_printf("cannot hot-unplug %s from %s on the source: %s", m->unit.id,
                                                           p->domain, ops->last_error(src));
                                replug_source(ops, src, p, res, i, e);
                                break;
                        }
                }
                if (r >= 0 && m->reattach)
                        json_object_object_add(res[i], "state", json_object_new_string("unplugged from the source"));
        }
        /* 2. move the domain; if it stays, every unit goes back */
        if (r >= 0 && (r = ops->migrate(src, dst, p, ret_error)) < 0)
                replug_source(ops, src, p, res, p->n_units, 0);
        if (r < 0) {
                *ret_result = result;
                return r;
        }
        /* 3. the domain runs on the destination: bind each equivalent to vfio-pci there and plug it in */
        size_t missing = 0;
        for (size_t i = 0; i < p->n_units; i++) {
                const MigrateUnit *m = &p->units[i];
                if (!m->reattach)
                        continue;
                json_object_object_add(res[i], "destination_device", json_object_new_string(m->dest_device));
                int k = 0;
                const char *step = "";
                for (size_t f = 0; f < m->n_dest_nodedevs && k >= 0; f++)
                        if ((k = ops->nodedev_detach(dst, m->dest_nodedevs[f])) < 0)
                                step = "bind it to vfio-pci (virNodeDeviceDetachFlags)";
                for (size_t e = 0; e < m->n_dest_elems && k >= 0; e++)
                        if ((k = ops->plug(dst, p->domain, m->dest_elems[e])) < 0)
                                step = "hot-plug it";
                if (k >= 0) {
                        json_object_object_add(res[i], "state", json_object_new_string("replaced on the destination"));
                        continue;
                }
                missing++;
                json_object_object_add(res[i], "state", json_object_new_string("missing from the migrated domain"));
                json_object_object_add(res[i], "error", json_string_printf(
                        "cannot %s: %s", step, ops->last_error(dst)));
        }
        *ret_result = result;
        *ret_missing = missing;
        return 0;
}
