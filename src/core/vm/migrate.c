/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "core/vm/migrate.h"

#define push(arr, ...) json_object_array_add((arr), json_string_printf(__VA_ARGS__))

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
                        push(m->blockers, "%s: cannot list the destination's node devices: %s", u->id, virt_last_error(dst));
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
                                                   m->unit.type, m->dest_parent, virt_last_error(dst));
                else if (strv_push(&created, &nc, name) < 0) {
                        free(name);
                        r = -ENOMEM;
                }
        }
        if (r >= 0 && (r = virt_migrate(src, p->domain, p->dest_uri)) < 0)
                *ret_error = strdup_printf("migration of %s to %s failed: %s", p->domain, p->dest_uri, virt_last_error(src));
        if (r < 0)
                /* the domain stays where it was: the destination's new units go again */
                for (size_t i = nc; i-- > 0;)
                        (void)virt_nodedev_destroy(dst, created[i]);
        return r;
}
