/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The one strict JSON reader for every JSON file gpuvirt reads back (its own state and definition files,
 * mdevctl's definitions), and typed field access with validation.
 *
 * json_parse_strict() takes exactly one JSON value: json-c's strict mode with UTF-8 validation, at most
 * JSON_DEPTH_MAX levels, then a scan of the (valid) text that refuses what json-c lets through: a key given
 * twice in one object (json-c keeps the last), single-quoted strings, bare words (NaN, Infinity). A NUL
 * byte, trailing text, a second value: all errors as "FILE:LINE:COL: reason". Linear in the input.
 *
 * json_dispatch() checks an object against a table of fields: kind, mandatory or not, null allowed or
 * not, the range of a number, a validator of each string; unknown keys are an error unless allowed.
 */

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gverror.h"
#include "macro.h"

#define JSON_DEPTH_MAX 16
/* The largest state or definition file read: each is one small object. */
#define JSON_FILE_SIZE_MAX (64 * 1024)

/* Failures: err's message "FILE:LINE:COL: reason", errno EINVAL, step "parse". */
int json_parse_strict(const char *file, const char *text, size_t len, json_object **ret, GvError *err);
/* Read path with at most max bytes, then json_parse_strict(). A missing file: -ENOENT (err without a
 * message); another read error or a larger file (-EFBIG): err "FILE: reason", step "read". */
int json_load_strict(const char *path, const char *display_name, size_t max, json_object **ret, GvError *err);

typedef enum JsonKind {
        JSON_KIND_STRING, /* const char *: borrowed from the object (never holds a NUL) */
        JSON_KIND_BOOL,   /* bool */
        JSON_KIND_UINT,   /* unsigned, in min..max (max at most UINT32_MAX) */
        JSON_KIND_INT64,  /* int64_t */
        JSON_KIND_STRV,   /* char **: an array of strings, allocated (strv_free) */
        JSON_KIND_OBJECT, /* json_object *: borrowed */
        JSON_KIND_ARRAY,  /* json_object *: borrowed */
        _JSON_KIND_MAX,
} JsonKind;

enum {
        JSON_MANDATORY = 1 << 0, /* absent is an error */
        JSON_NULLABLE = 1 << 1,  /* null allowed: the output is left as it is (NULL) */
};

typedef struct JsonField {
        const char *name;
        JsonKind kind;
        unsigned flags;
        size_t offset;                /* of the output in the struct passed to json_dispatch() */
        uint32_t min, max;            /* JSON_KIND_UINT */
        bool (*valid)(const char *s); /* JSON_KIND_STRING and each item of JSON_KIND_STRV (NULL: any) */
        const char *what;             /* what valid means, for the message: "a kernel driver name" */
} JsonField;

enum {
        JSON_DISPATCH_ALLOW_UNKNOWN = 1 << 0, /* keys not in the table are ignored (formats of other tools) */
};

/* Store each field of the object o present in the table at its offset in out (absent optional fields are
 * left as they are). On failure -EBADMSG and err "FILE: reason" (key and value named), step "parse"; STRV
 * outputs already stored are freed and reset, the other outputs must be ignored. */
int json_dispatch(const char *file, json_object *o, const JsonField *fields, unsigned flags, void *out, GvError *err);

/* Validators for JsonField.valid */
bool string_is_kernel_name(const char *s); /* a driver or module name: [A-Za-z0-9_-], 1..55 chars */
bool string_is_printable(const char *s);   /* no control characters, at most 255 bytes */
