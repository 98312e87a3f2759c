/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

/* A JSON string, or JSON null for a NULL pointer (what every typed --json key does for "unknown"). */
static inline json_object *json_string_or_null(const char *s) {
        return s ? json_object_new_string(s) : NULL;
}
