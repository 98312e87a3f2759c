/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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
