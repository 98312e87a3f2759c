/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

#include "basic/jsonfile.h"
#include "core/host/root.h"

/*
 * gpuvirt's own small JSON files under the root (var/lib/gpuvirt state, etc/gpuvirt definitions, the
 * journal): one object per file, one line, written atomically through root_write_file() (so --dry-run
 * prints instead, captures refuse). Read back through the strict reader (basic/jsonfile.h): a file is
 * input like any other, and one that fails is named with its reason and never acted on.
 */

/* -ENOENT when absent (err without a message). -EBADMSG when it is not one JSON object (a duplicate key, bad
 * syntax ...), -EFBIG above JSON_FILE_SIZE_MAX, another -errno when unreadable: each with err's message
 * "PATH[:LINE:COL]: reason" (step "parse", or "read"). */
int state_read_json(Root *root, json_object **ret, GvError *err, const char *fmt, ...) _printf_(4, 5);
/* state_read_json(), then json_dispatch() of its fields into out (which may borrow strings from *ret: put
 * it when done with them). */
int state_read_record(Root *root, const JsonField *fields, void *out, json_object **ret, GvError *err,
                      const char *fmt, ...) _printf_(6, 7);
/* Takes no reference: the caller keeps and puts o. */
int state_write_json(Root *root, json_object *o, const char *fmt, ...) _printf_(3, 4);
