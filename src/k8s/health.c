/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/jsonfile.h"
#include "core/store/statefile.h"
#include "k8s/health.h"

static const char *const level_names[_HEALTH_LEVEL_MAX] = {
        [HEALTH_HEALTHY] = "healthy",
        [HEALTH_DEGRADED] = "degraded",
        [HEALTH_UNHEALTHY] = "unhealthy",
        [HEALTH_GONE] = "gone",
};

static HealthLevel level_from_string(const char *s) {
        for (size_t i = 0; i < _HEALTH_LEVEL_MAX; i++)
                if (streq(level_names[i], s))
                        return (HealthLevel) i;
        return _HEALTH_LEVEL_INVALID;
}

static bool valid_level(const char *s) {
        return level_from_string(s) >= 0;
}

typedef struct HeaderRecord {
        unsigned version;
        json_object *units;
} HeaderRecord;

typedef struct UnitRecord {
        const char *unit, *gpu, *health, *reason, *since;
} UnitRecord;

static const JsonField header_fields[] = {
        {"version", JSON_KIND_UINT, JSON_MANDATORY, offsetof(HeaderRecord, version), 1, 1, NULL, NULL},
        {"units", JSON_KIND_ARRAY, JSON_MANDATORY, offsetof(HeaderRecord, units), 0, 0, NULL, NULL},
        {},
};

static const JsonField unit_fields[] = {
        {"unit", JSON_KIND_STRING, JSON_MANDATORY, offsetof(UnitRecord, unit), 0, 0, string_is_printable,
         "a PCI address or UUID"},
        {"gpu", JSON_KIND_STRING, JSON_MANDATORY, offsetof(UnitRecord, gpu), 0, 0, string_is_printable,
         "a PCI address"},
        {"health", JSON_KIND_STRING, JSON_MANDATORY, offsetof(UnitRecord, health), 0, 0, valid_level,
         "healthy, degraded, unhealthy or gone"},
        {"reason", JSON_KIND_STRING, JSON_MANDATORY | JSON_NULLABLE, offsetof(UnitRecord, reason), 0, 0,
         string_is_printable, "printable text"},
        {"since", JSON_KIND_STRING, JSON_MANDATORY, offsetof(UnitRecord, since), 0, 0, string_is_printable,
         "a UTC time"},
        {},
};

void health_table_done(HealthTable *t) {
        for (size_t i = 0; i < t->n_units; i++) {
                free(t->units[i].unit);
                free(t->units[i].gpu);
                free(t->units[i].reason);
                free(t->units[i].since);
        }
        free(t->units);
        *t = (HealthTable) {};
}

int health_load(Root *root, HealthTable *ret, GvError *err) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        HeaderRecord h = {};
        int r = state_read_record(root, header_fields, &h, &o, err, HEALTH_FILE);
        if (r == -ENOENT) { /* no daemon (yet): not an error */
                gv_error_done(err);
                *ret = (HealthTable) {};
                return 0;
        }
        if (r < 0)
                return r;
        size_t n = json_object_array_length(h.units);
        HealthTable t = {.units = calloc(n ?: 1, sizeof(HealthUnit))};
        if (!t.units)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                UnitRecord u = {};
                json_object *e = json_object_array_get_idx(h.units, i);
                _cleanup_free_ char *what = strdup_printf("%s (units[%zu])", HEALTH_FILE, i);
                if (!what) {
                        health_table_done(&t);
                        return -ENOMEM;
                }
                if (!json_object_is_type(e, json_type_object)) {
                        health_table_done(&t);
                        return gv_error_set(err, -EBADMSG, NULL, "parse", "%s: not an object", what);
                }
                r = json_dispatch(what, e, unit_fields, 0, &u, err);
                if (r < 0) {
                        health_table_done(&t);
                        return -EBADMSG;
                }
                HealthUnit *hu = &t.units[t.n_units++];
                hu->level = level_from_string(u.health);
                hu->unit = strdup(u.unit);
                hu->gpu = strdup(u.gpu);
                hu->since = strdup(u.since);
                hu->reason = u.reason ? strdup(u.reason) : NULL;
                if (!hu->unit || !hu->gpu || !hu->since || (u.reason && !hu->reason)) {
                        health_table_done(&t);
                        return -ENOMEM;
                }
        }
        *ret = t;
        return 0;
}

const HealthUnit *health_find(const HealthTable *t, const char *unit) {
        for (size_t i = 0; i < t->n_units; i++)
                if (strcasecmp(t->units[i].unit, unit) == 0)
                        return &t->units[i];
        return NULL;
}

bool health_usable(const HealthTable *t, const char *unit, const char *gpu, const char **ret_reason) {
        const char *keys[] = {unit, gpu};
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                if (!keys[i])
                        continue;
                const HealthUnit *u = health_find(t, keys[i]);
                if (u && u->level >= HEALTH_UNHEALTHY) {
                        if (ret_reason)
                                *ret_reason = u->reason ?: level_names[u->level];
                        return false;
                }
        }
        if (ret_reason)
                *ret_reason = NULL;
        return true;
}
