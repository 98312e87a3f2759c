/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * gpuvirtd's health, as the plugin offers it to kubelet: the daemon's state file run/gpuvirt/health.json
 * (read only, through core's health_file_read(): version 1, unit -> {"unit","gpu","health","reason","since"}).
 */

#include <json-c/json.h>
#include <stdbool.h>

#include "basic/gverror.h"
#include "core/health/health.h"
#include "core/host/root.h"

typedef struct HealthTable {
        json_object *units; /* unit -> entry; NULL: no file (no daemon: nothing known against any unit) */
} HealthTable;

/* A damaged file, or one of another version: its -errno, err saying what, *ret untouched. */
int health_load(Root *root, HealthTable *ret, GvError *err);
void health_table_done(HealthTable *t);

/* Whether kubelet may be offered the unit: neither its own entry nor its GPU's says unhealthy or gone
 * (degraded still serves). ret_reason: the reason of the entry that says no (borrowed), NULL when none. */
bool health_usable(const HealthTable *t, const char *unit, const char *gpu, const char **ret_reason);
