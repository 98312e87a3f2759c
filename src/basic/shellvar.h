/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

/*
 * Files that are shell scripts of variable assignments (/etc/default/grub, /etc/os-release), read as the
 * shell reads them: comments; single quotes; double quotes with the backslash escapes \$ \` \" \\ and
 * backslash-newline; unquoted backslash escapes and backslash-newline continuations; $(...), ${...} and
 * `...` kept as written (not run, not expanded). Assignments count where a command starts (after
 * "export" too); the last one of a name wins.
 */

typedef enum ShQuote {
        SH_UNQUOTED,
        SH_SINGLE,
        SH_DOUBLE,
} ShQuote;

/* One character of a decoded value: the source bytes it came from, and the quoting it stood in. */
typedef struct ShChar {
        size_t beg, end;
        ShQuote quote;
} ShChar;

typedef struct ShAssignment {
        size_t beg, end;       /* the value's source bytes (after '='; empty when beg == end) */
        unsigned line, column; /* of the name, 1-based */
        char *value;           /* decoded; expansions kept as written */
        ShChar *chars;         /* per byte of value */
        size_t len;
} ShAssignment;

void sh_assignments_free(ShAssignment *a, size_t n);

/*
 * Parse text (len bytes) and collect the assignments of `name` in order. -EINVAL with *ret_error
 * "LINE:COL: why" for what the shell refuses while reading quotes (what `bash -n` reports for them): an
 * unterminated single or double quote, $(, ${ or `; also NUL bytes. The grammar beyond words (if/fi,
 * case, here-documents) is not checked.
 */
int sh_parse(const char *text, size_t len, const char *name, ShAssignment **ret, size_t *ret_n, char **ret_error);

/* The value `name` has at the end of the script: the last assignment's, with $name and ${name} in it
 * (unquoted or in double quotes) replaced by the value before. NULL when it is never assigned (or on OOM). */
char *sh_value(const char *name, const ShAssignment *a, size_t n);
