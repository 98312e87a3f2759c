/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "errname.h"
#include "fileio.h"
#include "yamldoc.h"

struct YDoc {
        YNode *root;
        YNode **nodes; /* every node, for freeing */
        size_t n_nodes, n_alloc;
};

YDoc *ydoc_free(YDoc *d) {
        if (!d)
                return NULL;
        for (size_t i = 0; i < d->n_nodes; i++) {
                free(d->nodes[i]->value);
                free(d->nodes[i]->children);
                free(d->nodes[i]);
        }
        free(d->nodes);
        free(d);
        return NULL;
}

const YNode *ydoc_root(const YDoc *d) {
        return d ? d->root : NULL;
}

char *ynode_error(const char *file, const YNode *n, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *s = error_atv(file, n ? n->line : 1, n ? n->column : 1, fmt, ap);
        va_end(ap);
        return s;
}

typedef struct Builder {
        const char *file;
        YDoc *doc;
        YNode *stack[YAML_DEPTH_MAX];
        size_t depth;
        char *error;
} Builder;

_printf_(3, 4) static int fail_mark(Builder *b, const yaml_mark_t *m, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        free(b->error);
        b->error = error_atv(b->file, (unsigned)m->line + 1, (unsigned)m->column + 1, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

static int push_child(YNode *parent, YNode *child) {
        /* capacity: the next power of two (at least 4) of the count, so growth is amortized linear */
        size_t n = parent->n_children;
        if (n == 0 || (n >= 4 && (n & (n - 1)) == 0)) {
                YNode **c = realloc(parent->children, MAX(n * 2, (size_t)4) * sizeof *c);
                if (!c)
                        return -ENOMEM;
                parent->children = c;
        }
        parent->children[parent->n_children++] = child;
        return 0;
}

/* A new node at event e: checks that apply to every node, then links it under the open collection. */
static int add_node(Builder *b, const yaml_event_t *e, YNodeType type, const yaml_char_t *anchor,
                    const yaml_char_t *tag, YNode **ret) {
        if (anchor)
                return fail_mark(b, &e->start_mark, "anchors (&%s) are not supported: write the value out", anchor);
        if (tag)
                return fail_mark(b, &e->start_mark, "tags (%s) are not supported: values are plain YAML", tag);
        YNode *parent = b->depth ? b->stack[b->depth - 1] : NULL;
        if (parent && parent->type == YNODE_MAPPING && parent->n_children % 2 == 0 && type != YNODE_SCALAR)
                return fail_mark(b, &e->start_mark, "a mapping key must be a plain string");
        if (type != YNODE_SCALAR && b->depth >= YAML_DEPTH_MAX)
                return fail_mark(b, &e->start_mark, "nested deeper than %d levels", YAML_DEPTH_MAX);
        YDoc *d = b->doc;
        if (d->n_nodes == d->n_alloc) {
                size_t na = MAX(d->n_alloc * 2, (size_t)64);
                YNode **l = realloc(d->nodes, na * sizeof *l);
                if (!l)
                        return -ENOMEM;
                d->nodes = l;
                d->n_alloc = na;
        }
        YNode *n = calloc(1, sizeof *n);
        if (!n)
                return -ENOMEM;
        d->nodes[d->n_nodes++] = n;
        n->type = type;
        n->line = (unsigned)e->start_mark.line + 1;
        n->column = (unsigned)e->start_mark.column + 1;
        if (parent) {
                int r = push_child(parent, n);
                if (r < 0)
                        return r;
        } else
                d->root = n;
        if (type != YNODE_SCALAR)
                b->stack[b->depth++] = n;
        *ret = n;
        return 0;
}

typedef struct KeyRef {
        const YNode *key;
        size_t index;
} KeyRef;

static int cmp_keyref(const void *a, const void *b) {
        const KeyRef *x = a, *y = b;
        int c = strcmp(x->key->value, y->key->value);
        return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* A key given twice: the first repetition in the file, reported at its position. */
static int check_duplicates(Builder *b, const YNode *map) {
        size_t n = map->n_children / 2;
        if (n < 2)
                return 0;
        _cleanup_free_ KeyRef *k = malloc(n * sizeof *k);
        if (!k)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                k[i] = (KeyRef){map->children[2 * i], i};
        qsort(k, n, sizeof *k, cmp_keyref);
        const KeyRef *dup = NULL, *first = NULL;
        for (size_t i = 1; i < n; i++) {
                if (!streq(k[i].key->value, k[i - 1].key->value))
                        continue;
                /* k[i - 1] is the first occurrence (groups are sorted by position), k[i] its first repetition */
                if (!dup || k[i].index < dup->index) {
                        dup = &k[i];
                        first = &k[i - 1];
                }
                while (i + 1 < n && streq(k[i + 1].key->value, k[i].key->value))
                        i++;
        }
        if (!dup)
                return 0;
        free(b->error);
        b->error = error_at(b->file, dup->key->line, dup->key->column, "duplicate key '%s' (first at line %u, column %u)",
                            dup->key->value, first->key->line, first->key->column);
        return -EINVAL;
}

static int handle_event(Builder *b, yaml_event_t *e, bool *have_document, bool *done) {
        YNode *n;
        int r;
        switch (e->type) {
        case YAML_DOCUMENT_START_EVENT:
                if (*have_document)
                        return fail_mark(b, &e->start_mark, "a second YAML document: the file must hold one");
                *have_document = true;
                return 0;
        case YAML_ALIAS_EVENT:
                return fail_mark(b, &e->start_mark, "aliases (*%s) are not supported: write the value out",
                                 e->data.alias.anchor);
        case YAML_SCALAR_EVENT:
                if (strlen((const char *)e->data.scalar.value) != e->data.scalar.length)
                        return fail_mark(b, &e->start_mark, "a NUL character in a string");
                r = add_node(b, e, YNODE_SCALAR, e->data.scalar.anchor, e->data.scalar.tag, &n);
                if (r < 0)
                        return r;
                n->value = (char *)e->data.scalar.value; /* taken over: libyaml allocates with malloc */
                e->data.scalar.value = NULL;
                return 0;
        case YAML_SEQUENCE_START_EVENT:
                return add_node(b, e, YNODE_SEQUENCE, e->data.sequence_start.anchor, e->data.sequence_start.tag, &n);
        case YAML_MAPPING_START_EVENT:
                return add_node(b, e, YNODE_MAPPING, e->data.mapping_start.anchor, e->data.mapping_start.tag, &n);
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
                n = b->stack[--b->depth]; /* libyaml balances start and end events */
                return n->type == YNODE_MAPPING ? check_duplicates(b, n) : 0;
        case YAML_STREAM_END_EVENT:
                *done = true;
                return 0;
        default: /* stream start, document end */
                return 0;
        }
}

static int parse(const char *file, const char *text, size_t len, YDoc **ret, char **ret_error) {
        *ret_error = NULL;
        const char *nul = memchr(text, '\0', len);
        if (nul) {
                unsigned line, column;
                text_position(text, len, (size_t)(nul - text), &line, &column);
                *ret_error = error_at(file, line, column, "a NUL byte: this is not a text file");
                return -EINVAL;
        }
        Builder b = {.file = file, .doc = calloc(1, sizeof(YDoc))};
        if (!b.doc)
                return -ENOMEM;
        yaml_parser_t parser;
        if (!yaml_parser_initialize(&parser)) {
                ydoc_free(b.doc);
                return -ENOMEM;
        }
        yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
        yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
        bool have_document = false, done = false;
        int r = 0;
        while (!done && r >= 0) {
                yaml_event_t e;
                if (!yaml_parser_parse(&parser, &e)) {
                        unsigned line, column;
                        if (parser.error == YAML_MEMORY_ERROR)
                                r = -ENOMEM;
                        else {
                                if (parser.error == YAML_READER_ERROR) /* encoding: libyaml gives a byte offset */
                                        text_position(text, len, parser.problem_offset, &line, &column);
                                else {
                                        line = (unsigned)parser.problem_mark.line + 1;
                                        column = (unsigned)parser.problem_mark.column + 1;
                                }
                                free(b.error);
                                b.error = error_at(file, line, column, "%s%s%s", parser.problem ?: "syntax error",
                                                   parser.context ? " " : "", parser.context ?: "");
                                r = -EINVAL;
                        }
                        break;
                }
                r = handle_event(&b, &e, &have_document, &done);
                yaml_event_delete(&e);
        }
        yaml_parser_delete(&parser);
        if (r < 0) {
                ydoc_free(b.doc);
                *ret_error = b.error ?: (r == -ENOMEM ? NULL : strdup_printf("%s: cannot parse", file));
                return r;
        }
        *ret = b.doc;
        return 0;
}

static int load(const char *path, const char *display_name, size_t max, YDoc **ret, char **ret_error) {
        *ret_error = NULL;
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = streq(path, "-") ? read_full_fd(STDIN_FILENO, max, (void **)&text, &len)
                                 : read_full(path, max, (void **)&text, &len);
        if (r == -EFBIG) {
                *ret_error = strdup_printf("%s: larger than %zu bytes: not a file gpuvirt reads", display_name, max);
                return r;
        }
        if (r < 0) {
                *ret_error = strdup_printf("%s: cannot read: %s", display_name, errno_message(r));
                return r;
        }
        return parse(display_name, text, len, ret, ret_error);
}

int ydoc_parse(const char *file, const char *text, size_t len, YDoc **ret, GvError *err) {
        char *e = NULL;
        int r = parse(file, text, len, ret, &e);
        return r < 0 ? gv_error_take(err, r, NULL, "parse", GV_HINT_NONE, e) : 0;
}

int ydoc_load(const char *path, const char *display_name, size_t max, YDoc **ret, GvError *err) {
        char *e = NULL;
        int r = load(path, display_name, max, ret, &e);
        return r < 0 ? gv_error_take(err, r, NULL, r == -EINVAL ? "parse" : "read", GV_HINT_NONE, e) : 0;
}
