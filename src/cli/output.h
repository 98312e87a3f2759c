/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdio.h>

#include "basic/macro.h"

/* A text table: headers, then rows of strings; columns padded to their widest cell. */
typedef struct Table Table;

Table *table_new(size_t n_columns, const char *const *headers);
void table_free(Table *t);
/* Add a row of n_columns cells (copied; NULL prints as "-"). */
int table_add_row(Table *t, const char *const *cells);
int table_print(const Table *t, FILE *f);

/* Print a JSON value the way every --json output is printed (pretty, 2 spaces, slashes unescaped). */
int json_print(json_object *o, FILE *f);

/* Render a JSON scalar as display text ("-" for null). Returned pointer valid while o lives or until
 * the next call (static buffer for numbers). */
const char *json_text(json_object *o);

DEFINE_TRIVIAL_CLEANUP_FUNC(Table *, table_free)
#define _cleanup_table_free_ _cleanup_(table_freep)
