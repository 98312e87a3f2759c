/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

#include "core/advise/knowledge.h"
#include "core/vm/hostdev.h"
#include "core/vm/libvirt.h"
#include "core/host/root.h"
#include "core/vm/holders.h"

/*
 * Live migration of a domain: the plan of a move to a destination (each unit's verdict on both sides from
 * unit_migration_blockers(), the one vm list shows), and the move.
 */

/* One unit of a migration plan. */
typedef struct MigrateUnit {
        Unit unit;
        bool migratable;
        json_object *blockers; /* array of strings */
        char *dest_parent;     /* mdev: the destination's node device with the type free (created there first) */
        char *dest_note;       /* what the destination needs that gpuvirt cannot prepare through libvirt */
        /* --detach-reattach (migrate_plan_detach_reattach()): a vfio-pci unit taken out before the move */
        bool reattach;
        char **src_elems;      /* the source domain's live <hostdev> elements of the unit, unplugged in order */
        size_t n_src_elems;
        char **dest_nodedevs;  /* the equivalent on the destination: one node device per function */
        size_t n_dest_nodedevs;
        char **dest_elems;     /* and its <hostdev> elements, hot-plugged after the move */
        size_t n_dest_elems;
        char dest_device[40];  /* its BDF ("" when none is free) */
} MigrateUnit;

typedef struct MigratePlan {
        char *domain, *dest_uri;
        bool running;
        MigrateUnit *units;
        size_t n_units;
        json_object *blockers; /* the domain's own (not running, destination unreachable, ...) */
        bool migratable;       /* no blocker anywhere */
        bool detach_reattach;  /* the vfio-pci units are unplugged, the domain moves, equivalents are plugged */
} MigratePlan;

MigratePlan *migrate_plan_free(MigratePlan *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(MigratePlan *, migrate_plan_free)
#define _cleanup_migrate_plan_free_ _cleanup_(migrate_plan_freep)

/* The plan of moving the domain from src to the destination (dst: its connection, NULL when it cannot be
 * reached, with dst_error saying why). -ENOENT when src has no such domain. */
int migrate_plan(Root *root, const PciHost *h, Virt *src, const char *domain, Virt *dst, const char *dest_uri,
                 const char *dst_error, MigratePlan **ret);
json_object *migrate_plan_json(const MigratePlan *p);

/* Carry a plan out: create the mdevs on the destination (same UUID and type), migrate, and on failure destroy
 * the destination's new units again. -EPERM for a plan with blockers. *ret_error says what failed. */
int migrate_run(Virt *src, Virt *dst, const MigratePlan *p, char **ret_error);

/*
 * --detach-reattach: the units that block only because they are on vfio-pci (passthrough, MIG-backed
 * passthrough, plain VFs) are hot-unplugged before the move and an equivalent device of the destination is
 * hot-plugged after it (the guest sees a GPU removal and a new GPU).
 */

/* The destination's equivalent of u (a card: the same vendor:device per function, at the same function
 * numbers of one slot; a VF: a VF of the same vendor:device whose PF is the same model as u's, pf_vendor and
 * pf_device), not referenced by any of the destination's domains and not in taken (the node devices
 * already chosen, NULL-terminated, may be NULL). *ret_index (function 0's node device, then the others in *ret_funcs) or -ENOENT with
 * *ret_why saying why none fits; func_ids: vendor << 16 | device of each of u->funcs. Pure: tests call it with made-up node devices. */
int migrate_find_equivalent(const Unit *u, const uint32_t *func_ids, uint16_t pf_vendor, uint16_t pf_device,
                            const VirtPciNodedev *devs, size_t n_devs, const VirtDomain *doms, size_t n_doms,
                            char *const *taken, size_t *ret_funcs, char **ret_why);

/* Turn the plan into a detach-reattach plan: each vfio-pci unit's blockers become "no equivalent on the
 * destination" or nothing, with the elements to unplug and the destination's device to plug. */
int migrate_plan_detach_reattach(MigratePlan *p, const PciHost *h, Virt *src, Virt *dst);

/* The libvirt calls of a detach-reattach run (the test suite replaces them to make each one fail). */
typedef struct MigrateOps {
        int (*unplug)(Virt *v, const char *domain, const char *device_xml);
        int (*plug)(Virt *v, const char *domain, const char *device_xml);
        /* the move itself: migrate_run() (the destination's mdevs first, released again on failure) */
        int (*migrate)(Virt *src, Virt *dst, const MigratePlan *p, char **ret_error);
        int (*nodedev_detach)(Virt *v, const char *name);
        const char *(*last_error)(const Virt *v);
} MigrateOps;

extern const MigrateOps migrate_libvirt_ops;

/* Carry a detach-reattach plan out: unplug each unit on the source (a failure plugs the earlier ones back),
 * migrate (a failure plugs every unit back into the source domain), then on the destination detach each
 * equivalent to vfio-pci and plug it into the migrated domain (a failure there is reported per unit with the
 * command to retry: the domain has moved). *ret_result: the per-unit outcome (JSON array), also on failure.
 * -EPERM for a plan with blockers; 0 also when some plug on the destination failed (the domain moved):
 * *ret_missing counts those. */
int migrate_run_detach_reattach(const MigrateOps *ops, Virt *src, Virt *dst, const MigratePlan *p,
                                json_object **ret_result, size_t *ret_missing, char **ret_error);
