/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errname.h"
#include "fileio.h"
#include "jsonfile.h"

/* ---- the scan after json-c: duplicate keys and what json-c lets through ---- */

typedef struct Frame {
        bool object;
        bool want_key;     /* object: the next string is a key */
        json_object *keys; /* object: key -> offset of its first occurrence */
} Frame;

typedef struct Scan {
        const char *file, *text;
        size_t len;
        char *error;
} Scan;

_printf_(3, 4) static int scan_fail(Scan *s, size_t offset, const char *fmt, ...) {
        unsigned line, column;
        text_position(s->text, s->len, offset, &line, &column);
        va_list ap;
        va_start(ap, fmt);
        s->error = error_atv(s->file, line, column, fmt, ap);
        va_end(ap);
        return s->error ? -EINVAL : -ENOMEM;
}

/* The end of the string literal starting at i (the text is valid JSON: it is closed). */
static size_t string_end(const char *t, size_t len, size_t i) {
        for (i++; i < len && t[i] != '"'; i++)
                if (t[i] == '\\')
                        i++;
        return i + 1;
}

static int scan_keys(Scan *s) {
        Frame stack[JSON_DEPTH_MAX + 1] = {};
        size_t depth = 0;
        int r = 0;
        const char *t = s->text;
        for (size_t i = 0; i < s->len && r >= 0;) {
                char c = t[i];
                Frame *top = depth ? &stack[depth - 1] : NULL;
                if (c == '"') {
                        size_t end = string_end(t, s->len, i);
                        if (top && top->object && top->want_key) {
                                top->want_key = false;
                                /* the key as json-c decodes it (escapes), so "a" and "\u0061" are the same key */
                                _cleanup_free_ char *lit = strndup(t + i, end - i);
                                json_object *k = lit ? json_tokener_parse(lit) : NULL;
                                const char *key = json_object_get_string(k);
                                json_object *first = NULL;
                                if (!key)
                                        r = -ENOMEM;
                                else if (json_object_object_get_ex(top->keys, key, &first)) {
                                        unsigned fl, fc;
                                        text_position(t, s->len, (size_t)json_object_get_int64(first), &fl, &fc);
                                        r = scan_fail(s, i, "duplicate key '%s' (first at line %u, column %u)", key, fl, fc);
                                } else if (json_object_object_add(top->keys, key, json_object_new_int64((int64_t)i)) < 0)
                                        r = -ENOMEM;
                                json_object_put(k);
                        }
                        i = end;
                        continue;
                }
                if (c == '{' || c == '[') {
                        /* json-c refused deeper nesting already */
                        stack[depth++] = (Frame){.object = c == '{', .want_key = c == '{',
                                                 .keys = c == '{' ? json_object_new_object() : NULL};
                        if (c == '{' && !stack[depth - 1].keys)
                                r = -ENOMEM;
                } else if (c == '}' || c == ']') {
                        json_object_put(top->keys);
                        depth--;
                } else if (c == ',' && top && top->object)
                        top->want_key = true;
                else if (c == '\'')
                        r = scan_fail(s, i, "strings must be in double quotes");
                else if (isalpha((unsigned char)c)) {
                        size_t e = i;
                        while (e < s->len && isalnum((unsigned char)t[e]))
                                e++;
                        /* e, E in numbers come after a digit and are skipped with it below */
                        if (!((e - i == 4 && (strneq(t + i, "true", 4) || strneq(t + i, "null", 4))) ||
                              (e - i == 5 && strneq(t + i, "false", 5))))
                                r = scan_fail(s, i, "'%.*s' is not a JSON value", (int)MIN(e - i, (size_t)16), t + i);
                        i = e;
                        continue;
                } else if (isdigit((unsigned char)c) || c == '-') {
                        while (i < s->len && (isalnum((unsigned char)t[i]) || strchr("+-.", t[i])))
                                i++;
                        continue;
                }
                i++;
        }
        for (size_t k = 0; k < depth; k++)
                json_object_put(stack[k].keys);
        return r;
}

/* json-c's strict tokener over the whole text; -ENOMEM, or 0 with the object (NULL on error), json-c's error
 * and where it stopped. */
static int tokenize(const char *text, size_t len, int extra_flags, json_object **ret,
                    enum json_tokener_error *ret_error, size_t *ret_end) {
        struct json_tokener *tok = json_tokener_new_ex(JSON_DEPTH_MAX);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8 | extra_flags);
        *ret = json_tokener_parse_ex(tok, text, (int)len);
        *ret_error = json_tokener_get_error(tok);
        *ret_end = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        return 0;
}

static int parse_strict(const char *file, const char *text, size_t len, json_object **ret, char **ret_error) {
        *ret_error = NULL;
        unsigned line, column;
        const char *nul = memchr(text, '\0', len);
        if (nul) {
                text_position(text, len, (size_t)(nul - text), &line, &column);
                *ret_error = error_at(file, line, column, "a NUL byte: this is not a text file");
                return -EINVAL;
        }
        size_t end = 0;
        enum json_tokener_error e;
        json_object *o = NULL;
        if (tokenize(text, len, 0, &o, &e, &end) < 0)
                return -ENOMEM;
        if (e != json_tokener_success || !o) {
                json_object_put(o);
                /* one whole value, then more: say so (json-c says "unexpected character") */
                size_t vend = 0;
                enum json_tokener_error e2;
                json_object *first = NULL;
                if (tokenize(text, len, JSON_TOKENER_ALLOW_TRAILING_CHARS, &first, &e2, &vend) < 0)
                        return -ENOMEM;
                json_object_put(first);
                bool trailing = e2 == json_tokener_success && first && vend < len;
                text_position(text, len, trailing ? vend : end, &line, &column);
                *ret_error = trailing ? error_at(file, line, column, "text after the JSON value (a second document?)")
                             : e == json_tokener_continue
                                     ? error_at(file, line, column, len ? "unexpected end of the file" : "empty file")
                                     : error_at(file, line, column, "%s", json_tokener_error_desc(e));
                return *ret_error ? -EINVAL : -ENOMEM;
        }
        Scan s = {.file = file, .text = text, .len = len};
        int r = scan_keys(&s);
        if (r < 0) {
                json_object_put(o);
                *ret_error = s.error;
                return r;
        }
        *ret = o;
        return 0;
}

static int load_strict(const char *path, const char *display_name, size_t max, json_object **ret, char **ret_error) {
        *ret_error = NULL;
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = read_full(path, max, (void **)&text, &len);
        if (r == -ENOENT)
                return r;
        if (r == -EFBIG)
                *ret_error = strdup_printf("%s: larger than %zu bytes: not a file gpuvirt wrote", display_name, max);
        else if (r < 0)
                *ret_error = strdup_printf("%s: cannot read: %s", display_name, errno_message(r));
        if (r < 0)
                return r;
        return parse_strict(display_name, text, len, ret, ret_error);
}

int json_parse_strict(const char *file, const char *text, size_t len, json_object **ret, GvError *err) {
        char *e = NULL;
        int r = parse_strict(file, text, len, ret, &e);
        return r < 0 ? gv_error_take(err, r, NULL, "parse", GV_HINT_NONE, e) : 0;
}

int json_load_strict(const char *path, const char *display_name, size_t max, json_object **ret, GvError *err) {
        char *e = NULL;
        int r = load_strict(path, display_name, max, ret, &e);
        return r < 0 ? gv_error_take(err, r, NULL, r == -EINVAL ? "parse" : "read", GV_HINT_NONE, e) : 0;
}

/* ---- typed fields ---- */

bool string_is_kernel_name(const char *s) {
        size_t n = strlen(s);
        if (n == 0 || n > 55) /* MODULE_NAME_LEN - 1 */
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
                        return false;
        return true;
}

bool string_is_printable(const char *s) {
        size_t n = 0;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++)
                if (*p < 0x20 || *p == 0x7f)
                        return false;
        return n <= 255;
}

static const char *const kind_what[_JSON_KIND_MAX] = {
        [JSON_KIND_STRING] = "a string",     [JSON_KIND_BOOL] = "true or false",
        [JSON_KIND_UINT] = "a whole number", [JSON_KIND_INT64] = "a whole number",
        [JSON_KIND_STRV] = "a list of strings", [JSON_KIND_OBJECT] = "an object", [JSON_KIND_ARRAY] = "a list",
};

static bool string_ok(const JsonField *f, json_object *v) {
        const char *s = json_object_get_string(v);
        return json_object_is_type(v, json_type_string) && strlen(s) == (size_t)json_object_get_string_len(v) &&
               (!f->valid || f->valid(s));
}

/* The value shown in a message: short, and its control characters escaped by json-c. */
static char *shown(json_object *v) {
        const char *j = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        size_t n = strlen(j);
        return n > 80 ? strdup_printf("%.77s...", j) : strdup(j);
}

static int dispatch_one(const char *file, const JsonField *f, json_object *v, void *out, char **ret_error) {
        void *p = (char *)out + f->offset;
        const char *what = f->what ?: kind_what[f->kind];
        if (!v) { /* null */
                if (f->flags & JSON_NULLABLE)
                        return 0;
                *ret_error = strdup_printf("%s: '%s' is null, expected %s", file, f->name, what);
                return -EBADMSG;
        }
        switch (f->kind) {
        case JSON_KIND_STRING:
                if (string_ok(f, v)) {
                        *(const char **)p = json_object_get_string(v);
                        return 0;
                }
                break;
        case JSON_KIND_BOOL:
                if (json_object_is_type(v, json_type_boolean)) {
                        *(bool *)p = json_object_get_boolean(v);
                        return 0;
                }
                break;
        case JSON_KIND_UINT:
        case JSON_KIND_INT64: {
                if (!json_object_is_type(v, json_type_int))
                        break;
                int64_t x = json_object_get_int64(v);
                if (f->kind == JSON_KIND_INT64 && x != INT64_MAX) { /* INT64_MAX: json-c's clamp of a larger one */
                        *(int64_t *)p = x;
                        return 0;
                }
                if (f->kind == JSON_KIND_UINT) {
                        if (x >= f->min && x <= f->max) {
                                *(unsigned *)p = (unsigned)x;
                                return 0;
                        }
                        _cleanup_free_ char *sv = shown(v);
                        *ret_error = strdup_printf("%s: '%s' is %s, out of the range %u..%u", file, f->name, strna(sv),
                                                   f->min, f->max);
                        return -EBADMSG;
                }
                break;
        }
        case JSON_KIND_STRV: {
                if (!json_object_is_type(v, json_type_array))
                        break;
                size_t n = json_object_array_length(v);
                char **l = calloc(n + 1, sizeof *l);
                if (!l)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++) {
                        json_object *x = json_object_array_get_idx(v, i);
                        if (!x || !string_ok(f, x)) {
                                strv_free(l);
                                _cleanup_free_ char *sv = x ? shown(x) : strdup("null");
                                *ret_error = strdup_printf("%s: item %zu of '%s' is %s, expected %s", file, i, f->name,
                                                           strna(sv), what);
                                return -EBADMSG;
                        }
                        if (!(l[i] = strdup(json_object_get_string(x)))) {
                                strv_free(l);
                                return -ENOMEM;
                        }
                }
                strv_free(*(char ***)p);
                *(char ***)p = l;
                return 0;
        }
        case JSON_KIND_OBJECT:
        case JSON_KIND_ARRAY:
                if (json_object_is_type(v, f->kind == JSON_KIND_OBJECT ? json_type_object : json_type_array)) {
                        *(json_object **)p = v;
                        return 0;
                }
                break;
        default:
                break;
        }
        _cleanup_free_ char *sv = shown(v);
        *ret_error = strdup_printf("%s: '%s' is %s, expected %s", file, f->name, strna(sv), what);
        return -EBADMSG;
}

static int dispatch(const char *file, json_object *o, const JsonField *fields, unsigned flags, void *out,
                    char **ret_error) {
        *ret_error = NULL;
        int r = 0;
        if (!json_object_is_type(o, json_type_object)) {
                *ret_error = strdup_printf("%s: expected a JSON object", file);
                return -EBADMSG;
        }
        json_object_object_foreach(o, key, v) {
                const JsonField *f = fields;
                while (f->name && !streq(f->name, key))
                        f++;
                if (!f->name) {
                        if (flags & JSON_DISPATCH_ALLOW_UNKNOWN)
                                continue;
                        *ret_error = strdup_printf("%s: unknown key '%s'", file, key);
                        r = -EBADMSG;
                        break;
                }
                r = dispatch_one(file, f, v, out, ret_error);
                if (r < 0)
                        break;
        }
        for (const JsonField *f = fields; r >= 0 && f->name; f++)
                if ((f->flags & JSON_MANDATORY) && !json_object_object_get_ex(o, f->name, NULL)) {
                        *ret_error = strdup_printf("%s: '%s' is missing", file, f->name);
                        r = -EBADMSG;
                }
        if (r < 0)
                for (const JsonField *f = fields; f->name; f++)
                        if (f->kind == JSON_KIND_STRV) {
                                char ***p = (char ***)((char *)out + f->offset);
                                strv_free(*p);
                                *p = NULL;
                        }
        return r;
}

int json_dispatch(const char *file, json_object *o, const JsonField *fields, unsigned flags, void *out, GvError *err) {
        char *e = NULL;
        int r = dispatch(file, o, fields, flags, out, &e);
        return r < 0 ? gv_error_take(err, r, NULL, "parse", GV_HINT_NONE, e) : 0;
}
