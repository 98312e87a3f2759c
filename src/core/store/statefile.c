/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "basic/fileio.h"
#include "core/store/statefile.h"

_printf_(5, 0) static int read_v(Root *root, json_object **ret, char **ret_path, GvError *err, const char *fmt,
                                 va_list ap) {
        _cleanup_free_ char *rel = NULL;
        if (vasprintf(&rel, fmt, ap) < 0)
                return gv_error_set(err, -ENOMEM, NULL, "read", NULL);
        _cleanup_free_ char *p = root_path(root, "%s", rel);
        if (!p)
                return gv_error_set(err, -ENOMEM, NULL, "read", NULL);
        json_object *o = NULL;
        int r = json_load_strict(p, p, JSON_FILE_SIZE_MAX, &o, err);
        if (r == -EINVAL && err) /* not JSON: what this reader calls a damaged record */
                err->error = EBADMSG;
        if (r < 0)
                return r == -EINVAL ? -EBADMSG : r;
        if (!json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return gv_error_take(err, -EBADMSG, NULL, "parse", GV_HINT_NONE, strdup_printf("%s: expected a JSON object", p));
        }
        *ret = o;
        *ret_path = TAKE_PTR(p);
        return 0;
}

int state_read_json(Root *root, json_object **ret, GvError *err, const char *fmt, ...) {
        _cleanup_free_ char *path = NULL;
        va_list ap;
        va_start(ap, fmt);
        int r = read_v(root, ret, &path, err, fmt, ap);
        va_end(ap);
        return r;
}

int state_read_record(Root *root, const JsonField *fields, void *out, json_object **ret, GvError *err,
                      const char *fmt, ...) {
        _cleanup_free_ char *path = NULL;
        json_object *o = NULL;
        va_list ap;
        va_start(ap, fmt);
        int r = read_v(root, &o, &path, err, fmt, ap);
        va_end(ap);
        if (r < 0)
                return r;
        r = json_dispatch(path, o, fields, 0, out, err);
        if (r < 0) {
                json_object_put(o);
                return r;
        }
        *ret = o;
        return 0;
}

int state_write_json(Root *root, json_object *o, const char *fmt, ...) {
        _cleanup_free_ char *rel = NULL;
        va_list ap;
        va_start(ap, fmt);
        int k = vasprintf(&rel, fmt, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        _cleanup_free_ char *text = strdup_printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        if (!text)
                return -ENOMEM;
        return root_write_file(root, text, "%s", rel);
}
