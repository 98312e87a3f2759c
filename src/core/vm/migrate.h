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
