/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

#include "root.h"

/*
 * gpuvirt's own small JSON files under the root (var/lib/gpuvirt state, etc/gpuvirt definitions, the
 * journal): one object per file, one line, written atomically through root_write_file() (so --dry-run
 * prints instead, captures refuse).
 */

/* -ENOENT when absent, -EBADMSG when not a JSON object, -EFBIG above 64 KiB. */
int state_read_json(Root *root, json_object **ret, const char *fmt, ...) _printf_(3, 4);
/* Takes no reference: the caller keeps and puts o. */
int state_write_json(Root *root, json_object *o, const char *fmt, ...) _printf_(3, 4);
