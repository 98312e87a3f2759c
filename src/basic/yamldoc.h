/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The one strict YAML reader every YAML file of gpuvirt goes through (host.yaml, mig-parted files).
 *
 * libyaml's event parser builds a small tree of scalars, sequences and mappings, each with its position.
 * Refused, each as "FILE:LINE:COL: reason" before any caller sees a node:
 *   - a file larger than the caller's bound, a NUL byte, invalid UTF-8 (only UTF-8 is read);
 *   - a second document (a second '---');
 *   - any tag (explicit '!!str', '!local'): the files are plain data, a tag could only change types;
 *   - any anchor or alias: the formats need none, and an alias would make the work proportional to its
 *     expansion rather than to the input (20,000 labels aliasing one list);
 *   - a mapping key that is not a scalar, and a key given twice in one mapping (libyaml keeps both);
 *   - nesting deeper than YAML_DEPTH_MAX.
 * The cost is linear in the input (duplicate keys are found by sorting each mapping's keys).
 */

#include <stdbool.h>
#include <stddef.h>

#include "gverror.h"
#include "macro.h"

#define YAML_DEPTH_MAX 64

typedef enum YNodeType {
        YNODE_SCALAR,
        YNODE_SEQUENCE,
        YNODE_MAPPING,
} YNodeType;

typedef struct YNode YNode;
struct YNode {
        YNodeType type;
        unsigned line, column; /* 1-based, of the node's first character */
        char *value;           /* scalar: the text (never holds a NUL) */
        YNode **children;      /* sequence: the items; mapping: key, value, key, value, ... */
        size_t n_children;
};

typedef struct YDoc YDoc;

/* Parse len bytes of text as at most one YAML document. A stream with no document gives a YDoc whose
 * root is NULL. On failure -EINVAL (-ENOMEM) and err: message "FILE:LINE:COL: reason", step "parse". */
int ydoc_parse(const char *file, const char *text, size_t len, YDoc **ret, GvError *err);
/* Read path ("-": standard input) with at most max bytes, then ydoc_parse(). A missing or unreadable file:
 * its -errno; a larger one -EFBIG; both with err "FILE: reason", step "read". */
int ydoc_load(const char *path, const char *display_name, size_t max, YDoc **ret, GvError *err);
YDoc *ydoc_free(YDoc *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(YDoc *, ydoc_free)
#define _cleanup_ydoc_free_ _cleanup_(ydoc_freep)

const YNode *ydoc_root(const YDoc *d);

/* The text of a scalar node, NULL for a collection (or no node). */
static inline const char *ynode_scalar(const YNode *n) {
        return n && n->type == YNODE_SCALAR ? n->value : NULL;
}
static inline size_t ynode_n_items(const YNode *n) {
        return n->type == YNODE_MAPPING ? n->n_children / 2 : n->n_children;
}

/* for (k, v) in a mapping node */
#define YNODE_FOREACH_PAIR(map, k, v)                                                                          \
        for (size_t _yi_##k = 0; _yi_##k + 1 < (map)->n_children; _yi_##k += 2)                                 \
                for (const YNode *k = (map)->children[_yi_##k], *v = (map)->children[_yi_##k + 1]; k; k = NULL)
/* for item in a sequence node */
#define YNODE_FOREACH_ITEM(seq, it)                                                                            \
        for (size_t _yi_##it = 0; _yi_##it < (seq)->n_children; _yi_##it++)                                    \
                for (const YNode *it = (seq)->children[_yi_##it]; it; it = NULL)

/* "FILE:LINE:COL: message" at a node (line 1, column 1 for NULL). */
char *ynode_error(const char *file, const YNode *n, const char *fmt, ...) _printf_(3, 4);
