/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * gpuvirtd's health state file, run/gpuvirt/health.json under the root (docs/metrics.md of the daemon: "The
 * state file"), read only: {"version":1,"units":[{"unit","gpu","health","reason","since"}]}, "health" one of
 * healthy, degraded, unhealthy, gone; "reason" null when healthy; "since" UTC text. Another version is refused.
 */

#include "basic/gverror.h"
#include "core/host/root.h"

#define HEALTH_FILE "run/gpuvirt/health.json"

typedef enum HealthLevel {
        HEALTH_HEALTHY,
        HEALTH_DEGRADED,
        HEALTH_UNHEALTHY,
        HEALTH_GONE,
        _HEALTH_LEVEL_MAX,
        _HEALTH_LEVEL_INVALID = -EINVAL,
} HealthLevel;

typedef struct HealthUnit {
        char *unit, *gpu, *reason, *since;
        HealthLevel level;
} HealthUnit;

typedef struct HealthTable {
        HealthUnit *units;
        size_t n_units;
} HealthTable;

/* An absent file is an empty table (no daemon: nothing known against any unit). A damaged one, or one of
 * another version: -EBADMSG, err "FILE:LINE:COL: reason" or "FILE: reason", *ret untouched. */
int health_load(Root *root, HealthTable *ret, GvError *err);
void health_table_done(HealthTable *t);

/* The entry for a unit (a PCI address, mdev UUID or MIG UUID), else NULL. */
const HealthUnit *health_find(const HealthTable *t, const char *unit);
/* Whether kubelet may be offered the unit: neither its own entry nor its GPU's says unhealthy or gone
 * (degraded still serves). ret_reason: the reason of the entry that says no (borrowed), NULL when none. */
bool health_usable(const HealthTable *t, const char *unit, const char *gpu, const char **ret_reason);
