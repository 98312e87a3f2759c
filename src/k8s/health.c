/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "k8s/health.h"

int health_load(Root *root, HealthTable *ret, GvError *err) {
        json_object *map = NULL;
        int r = health_file_read(root, &map, err);
        if (r < 0)
                return r;
        *ret = (HealthTable) {.units = map};
        return 0;
}

void health_table_done(HealthTable *t) {
        json_object_put(t->units);
        t->units = NULL;
}

bool health_usable(const HealthTable *t, const char *unit, const char *gpu, const char **ret_reason) {
        const char *keys[] = {unit, gpu};
        for (size_t i = 0; t->units && i < ELEMENTSOF(keys); i++) {
                json_object *e;
                if (!keys[i] || !json_object_object_get_ex(t->units, keys[i], &e))
                        continue;
                HealthLevel l = health_level_from_string(json_object_get_string(json_object_object_get(e, "health")));
                if (l >= HEALTH_UNHEALTHY) {
                        if (ret_reason) {
                                json_object *why = json_object_object_get(e, "reason");
                                *ret_reason = json_object_is_type(why, json_type_string) ? json_object_get_string(why)
                                                                                          : health_level_to_string(l);
                        }
                        return false;
                }
        }
        if (ret_reason)
                *ret_reason = NULL;
        return true;
}
