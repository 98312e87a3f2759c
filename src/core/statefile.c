/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "basic/fileio.h"
#include "statefile.h"

int state_read_json(Root *root, json_object **ret, const char *fmt, ...) {
        _cleanup_free_ char *rel = NULL, *text = NULL;
        va_list ap;
        va_start(ap, fmt);
        int k = vasprintf(&rel, fmt, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        _cleanup_free_ char *p = root_path(root, "%s", rel);
        if (!p)
                return -ENOMEM;
        int r = read_full(p, 65536, (void **)&text, NULL);
        if (r < 0)
                return r;
        json_object *o = json_tokener_parse(text);
        if (!o || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return -EBADMSG;
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
