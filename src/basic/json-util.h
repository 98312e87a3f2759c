/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>

#include "basic/macro.h"

/* A JSON string, or JSON null for a NULL pointer (what every typed --json key does for "unknown"). */
static inline json_object *json_string_or_null(const char *s) {
        return s ? json_object_new_string(s) : NULL;
}

/* A JSON string from a format ("?" when it cannot be formatted). */
static inline json_object *json_string_printf(const char *fmt, ...) _printf_(1, 2);
static inline json_object *json_string_printf(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *s = NULL;
        int k = vasprintf(&s, fmt, ap);
        va_end(ap);
        json_object *o = json_object_new_string(k >= 0 ? s : "?");
        if (k >= 0)
                free(s);
        return o;
}

/* json-c's reference drop as a cleanup: _cleanup_json_ json_object *o = json_object_new_object(); */
static inline void json_object_putp(json_object **o) {
        if (*o)
                json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_object_putp)

/* o[key] = val (taken: dropped when it cannot be added); -ENOMEM when val is NULL (a failed
 * json_object_new_*(); JSON null is json_add_string(o, key, NULL)) or it cannot be added. */
static inline int json_add(json_object *o, const char *key, json_object *val) {
        if (!o || !val || json_object_object_add(o, key, val) < 0) {
                json_object_put(val);
                return -ENOMEM;
        }
        return 0;
}

/* o[key] = s as a JSON string, or null for NULL; -ENOMEM when the string cannot be made or added. */
static inline int json_add_string(json_object *o, const char *key, const char *s) {
        if (s)
                return json_add(o, key, json_object_new_string(s));
        return o && json_object_object_add(o, key, NULL) == 0 ? 0 : -ENOMEM;
}

/* Append val (taken: dropped when it cannot be added) to the array a; -ENOMEM when val is NULL (a failed
 * json_object_new_*()) or on failure. */
static inline int json_append(json_object *a, json_object *val) {
        if (!a || !val || json_object_array_add(a, val) < 0) {
                json_object_put(val);
                return -ENOMEM;
        }
        return 0;
}

/* o[key] = v when known, else null; -ENOMEM on failure. */
static inline int json_add_int_or_null(json_object *o, const char *key, bool known, int v) {
        return known ? json_add(o, key, json_object_new_int(v)) : json_add_string(o, key, NULL);
}
