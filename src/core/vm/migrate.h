/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

#include "core/advise/knowledge.h"
#include "core/hostdev.h"
#include "core/libvirt.h"
#include "core/root.h"

/*
 * Live migration of a domain's GPU units: the one verdict per unit (vm list, vm migrate, from the knowledge
 * table's migration rows), the plan of a move to a destination, and the move.
 */

/* What the verdict depends on besides the unit: the versions on the side that runs the domain. */
typedef struct MigrateEnv {
        unsigned long libvirt; /* major*1000000+minor*1000+micro, 0: unknown */
        unsigned long qemu;    /* the hypervisor's version when the connection is QEMU's, else 0 */
        bool is_qemu;
        int kernel; /* major*1000+minor, -1: unknown (a destination's kernel is not known here) */
} MigrateEnv;

/* The versions of this connection; the kernel of the root when root is given. */
void migrate_env_read(Root *root, Virt *v, MigrateEnv *ret);

/* How the unit reaches the VM (the knowledge table's row). */
UnitPath unit_migration_path(const Unit *u);

/* Whether the unit can be live-migrated: true, or false with each reason appended to *blockers ("ID: why"). */
bool unit_migration_verdict(const Unit *u, const MigrateEnv *env, json_object *blockers);

/* One unit of a migration plan. */
typedef struct MigrateUnit {
        Unit unit;
        bool migratable;
        json_object *blockers; /* array of strings */
        char *dest_parent;     /* mdev: the destination's node device with the type free (created there first) */
        char *dest_note;       /* what the destination needs that gpuvirt cannot prepare through libvirt */
} MigrateUnit;

typedef struct MigratePlan {
        char *domain, *dest_uri;
        bool running;
        MigrateUnit *units;
        size_t n_units;
        json_object *blockers; /* the domain's own (not running, destination unreachable, ...) */
        bool migratable;       /* no blocker anywhere */
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
