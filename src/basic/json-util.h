/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

#include "basic/macro.h"

/* A JSON string, or JSON null for a NULL pointer (what every typed --json key does for "unknown"). */
static inline json_object *json_string_or_null(const char *s) {
        return s ? json_object_new_string(s) : NULL;
}

/* json-c's reference drop as a cleanup: _cleanup_json_ json_object *o = json_object_new_object(); */
static inline void json_object_putp(json_object **o) {
        if (*o)
                json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_object_putp)
