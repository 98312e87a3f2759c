/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "shellvar.h"

typedef struct Lexer {
        const char *t;
        size_t len, pos;
        char **error;
        /* the value being decoded (NULL: only skipping) */
        char *buf;
        ShChar *chars;
        size_t n, cap;
} Lexer;

_printf_(3, 4) static int lex_fail(Lexer *l, size_t at, const char *fmt, ...) {
        unsigned line = 1, col = 1;
        for (size_t i = 0; i < at && i < l->len; i++)
                if (l->t[i] == '\n')
                        line++, col = 1;
                else
                        col++;
        char *why = NULL;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&why, fmt, ap) < 0)
                why = NULL;
        va_end(ap);
        if (l->error) {
                free(*l->error);
                *l->error = strdup_printf("%u:%u: %s", line, col, why ?: "syntax error");
        }
        free(why);
        return -EINVAL;
}

/* One decoded character from source bytes [beg, end). */
static int emit(Lexer *l, char c, size_t beg, size_t end, ShQuote q) {
        if (!l->buf)
                return 0;
        if (l->n + 2 > l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 64;
                char *b = realloc(l->buf, cap);
                if (!b)
                        return -ENOMEM;
                l->buf = b;
                ShChar *x = realloc(l->chars, cap * sizeof *x);
                if (!x)
                        return -ENOMEM;
                l->chars = x;
                l->cap = cap;
        }
        l->chars[l->n] = (ShChar){beg, end, q};
        l->buf[l->n++] = c;
        l->buf[l->n] = '\0';
        return 0;
}

/* Bytes kept as written (an expansion), each its own decoded character. */
static int emit_raw(Lexer *l, size_t beg, size_t end, ShQuote q) {
        for (size_t i = beg; i < end; i++) {
                int r = emit(l, l->t[i], i, i + 1, q);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int skip_subst(Lexer *l, size_t *p, char close, size_t opened_at);

/* `...` starting at *p (the backquote): past the closing one. */
static int skip_backquote(Lexer *l, size_t *p) {
        size_t open = *p;
        for (size_t i = *p + 1; i < l->len; i++) {
                if (l->t[i] == '\\')
                        i++;
                else if (l->t[i] == '`') {
                        *p = i + 1;
                        return 0;
                }
        }
        return lex_fail(l, open, "unterminated ` command substitution");
}

/* "..." starting at *p, skipped (inside $(...) and ${...}). */
static int skip_dquote(Lexer *l, size_t *p) {
        size_t open = *p;
        for (size_t i = *p + 1; i < l->len;) {
                char c = l->t[i];
                int r;
                if (c == '\\')
                        i += 2;
                else if (c == '"') {
                        *p = i + 1;
                        return 0;
                } else if (c == '`') {
                        if ((r = skip_backquote(l, &i)) < 0)
                                return r;
                } else if (c == '$' && i + 1 < l->len && (l->t[i + 1] == '(' || l->t[i + 1] == '{')) {
                        size_t at = i;
                        i += 2;
                        if ((r = skip_subst(l, &i, l->t[at + 1] == '(' ? ')' : '}', at)) < 0)
                                return r;
                } else
                        i++;
        }
        return lex_fail(l, open, "unterminated double quote");
}

/* The inside of $( ... ) or ${ ... } from *p to past the matching close. */
static int skip_subst(Lexer *l, size_t *p, char close, size_t opened_at) {
        char open = close == ')' ? '(' : '{';
        unsigned depth = 1;
        for (size_t i = *p; i < l->len;) {
                char c = l->t[i];
                int r;
                if (c == '\\')
                        i += 2;
                else if (c == '\'') {
                        const char *e = memchr(l->t + i + 1, '\'', l->len - i - 1);
                        if (!e)
                                return lex_fail(l, i, "unterminated single quote");
                        i = (size_t)(e - l->t) + 1;
                } else if (c == '"') {
                        if ((r = skip_dquote(l, &i)) < 0)
                                return r;
                } else if (c == '`') {
                        if ((r = skip_backquote(l, &i)) < 0)
                                return r;
                } else if (c == open) {
                        depth++;
                        i++;
                } else if (c == close) {
                        i++;
                        if (--depth == 0) {
                                *p = i;
                                return 0;
                        }
                } else
                        i++;
        }
        return lex_fail(l, opened_at, "unterminated %s", close == ')' ? "$( command substitution" : "${ expansion");
}

/* A '$' at *p: $(...) and ${...} are kept as written; a plain $ and the name after it are ordinary bytes. */
static int dollar(Lexer *l, size_t *p, ShQuote q) {
        size_t at = *p;
        if (at + 1 < l->len && (l->t[at + 1] == '(' || l->t[at + 1] == '{')) {
                size_t i = at + 2;
                int r = skip_subst(l, &i, l->t[at + 1] == '(' ? ')' : '}', at);
                if (r < 0)
                        return r;
                *p = i;
                return emit_raw(l, at, i, q);
        }
        *p = at + 1;
        return emit(l, '$', at, at + 1, q);
}

static bool is_meta(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == ';' || c == '&' || c == '|' || c == '(' || c == ')' ||
               c == '<' || c == '>';
}

/* One word from l->pos to the first unquoted metacharacter, decoded into l->buf when it is set. */
static int word(Lexer *l) {
        int r = 0;
        while (l->pos < l->len && r >= 0) {
                size_t i = l->pos;
                char c = l->t[i];
                if (is_meta(c))
                        break;
                if (c == '\\') {
                        if (i + 1 >= l->len) { /* a backslash at the very end is itself */
                                r = emit(l, c, i, i + 1, SH_UNQUOTED);
                                l->pos = i + 1;
                        } else if (l->t[i + 1] == '\n') /* continuation: nothing */
                                l->pos = i + 2;
                        else {
                                r = emit(l, l->t[i + 1], i, i + 2, SH_UNQUOTED);
                                l->pos = i + 2;
                        }
                } else if (c == '\'') {
                        const char *e = memchr(l->t + i + 1, '\'', l->len - i - 1);
                        if (!e)
                                return lex_fail(l, i, "unterminated single quote");
                        size_t close = (size_t)(e - l->t);
                        for (size_t k = i + 1; k < close && r >= 0; k++)
                                r = emit(l, l->t[k], k, k + 1, SH_SINGLE);
                        l->pos = close + 1;
                } else if (c == '"') {
                        size_t k = i + 1;
                        for (;;) {
                                if (k >= l->len)
                                        return lex_fail(l, i, "unterminated double quote");
                                char d = l->t[k];
                                if (d == '"')
                                        break;
                                if (d == '\\' && k + 1 < l->len && strchr("$`\"\\\n", l->t[k + 1])) {
                                        if (l->t[k + 1] != '\n')
                                                r = emit(l, l->t[k + 1], k, k + 2, SH_DOUBLE);
                                        k += 2;
                                } else if (d == '$')
                                        r = dollar(l, &k, SH_DOUBLE);
                                else if (d == '`') {
                                        size_t b = k;
                                        r = skip_backquote(l, &k);
                                        if (r >= 0)
                                                r = emit_raw(l, b, k, SH_DOUBLE);
                                } else {
                                        r = emit(l, d, k, k + 1, SH_DOUBLE);
                                        k++;
                                }
                                if (r < 0)
                                        return r;
                        }
                        l->pos = k + 1;
                } else if (c == '$')
                        r = dollar(l, &l->pos, SH_UNQUOTED);
                else if (c == '`') {
                        r = skip_backquote(l, &l->pos);
                        if (r >= 0)
                                r = emit_raw(l, i, l->pos, SH_UNQUOTED);
                } else {
                        r = emit(l, c, i, i + 1, SH_UNQUOTED);
                        l->pos = i + 1;
                }
        }
        return r;
}

void sh_assignments_free(ShAssignment *a, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(a[i].value);
                free(a[i].chars);
        }
        free(a);
}

static bool name_char(char c, bool first) {
        return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (!first && c >= '0' && c <= '9');
}

static bool word_is(const char *w, size_t n, const char *const *list, size_t n_list) {
        for (size_t i = 0; i < n_list; i++)
                if (strlen(list[i]) == n && memcmp(list[i], w, n) == 0)
                        return true;
        return false;
}

/* Reserved words after which a command (and so an assignment) may still start. */
static bool is_reserved(const char *w, size_t n) {
        static const char *const kw[] = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until",
                                         "{", "}", "!", "time"};
        return word_is(w, n, kw, ELEMENTSOF(kw));
}

/* Commands whose NAME=value arguments assign in the shell itself. */
static bool is_declaration(const char *w, size_t n) {
        static const char *const kw[] = {"export", "readonly", "declare", "typeset", "local"};
        return word_is(w, n, kw, ELEMENTSOF(kw));
}

static void drop_from(ShAssignment *a, size_t *n, size_t from) {
        for (size_t i = from; i < *n; i++) {
                free(a[i].value);
                free(a[i].chars);
        }
        *n = from;
}

int sh_parse(const char *text, size_t len, const char *name, ShAssignment **ret, size_t *ret_n, char **ret_error) {
        Lexer l = {.t = text, .len = len, .error = ret_error};
        ShAssignment *out = NULL;
        size_t n_out = 0;
        /* command_start: where a command may begin, so NAME=value assigns (as a prefix of a command, which
         * only counts when no command name follows: "A=1 cmd" sets A for cmd alone); declaring: after
         * export and the like, whose NAME=value arguments assign; prefix: the first of the current
         * command's prefix assignments */
        bool command_start = true, declaring = false, redirect = false;
        size_t prefix = 0;
        int r = 0;
        const char *nul = memchr(text, '\0', len);
        if (nul)
                return lex_fail(&l, (size_t)(nul - text), "NUL byte");
        while (l.pos < len && r >= 0) {
                char c = text[l.pos];
                if (c == ' ' || c == '\t') {
                        l.pos++;
                        continue;
                }
                if (c == '\\' && l.pos + 1 < len && text[l.pos + 1] == '\n') {
                        l.pos += 2;
                        continue;
                }
                if (c == '<' || c == '>') {
                        redirect = true; /* the next word is a file name */
                        l.pos++;
                        continue;
                }
                if (is_meta(c)) {
                        command_start = true;
                        declaring = redirect = false;
                        prefix = n_out;
                        l.pos++;
                        continue;
                }
                if (c == '#') {
                        const char *e = memchr(text + l.pos, '\n', len - l.pos);
                        l.pos = e ? (size_t)(e - text) : len;
                        continue;
                }
                size_t start = l.pos, k = start;
                while (k < len && name_char(text[k], k == start))
                        k++;
                if (!redirect && (command_start || declaring) && k > start && k < len && text[k] == '=') {
                        bool wanted = strlen(name) == k - start && memcmp(text + start, name, k - start) == 0;
                        l.pos = k + 1;
                        if (wanted && !(l.buf = calloc(1, 1))) {
                                r = -ENOMEM;
                                break;
                        }
                        r = word(&l);
                        if (r >= 0 && wanted) {
                                ShAssignment *x = realloc(out, (n_out + 1) * sizeof *out);
                                if (!x)
                                        r = -ENOMEM;
                                else {
                                        out = x;
                                        unsigned line = 1, col = 1;
                                        for (size_t i = 0; i < start; i++)
                                                if (text[i] == '\n')
                                                        line++, col = 1;
                                                else
                                                        col++;
                                        out[n_out++] = (ShAssignment){.beg = k + 1, .end = l.pos, .line = line, .column = col,
                                                                      .value = l.buf, .chars = l.chars, .len = l.n};
                                        l.buf = NULL;
                                        l.chars = NULL;
                                }
                        }
                        free(l.buf);
                        free(l.chars);
                        l = (Lexer){.t = text, .len = len, .pos = l.pos, .error = ret_error};
                        continue;
                }
                r = word(&l);
                if (redirect)
                        redirect = false;
                else if (command_start && is_reserved(text + start, l.pos - start))
                        prefix = n_out;
                else if (command_start) {
                        /* the command name: what came before it was its environment, not the shell's */
                        drop_from(out, &n_out, prefix);
                        declaring = is_declaration(text + start, l.pos - start);
                        command_start = false;
                }
        }
        if (r < 0) {
                sh_assignments_free(out, n_out);
                return r;
        }
        *ret = out;
        *ret_n = n_out;
        return 0;
}

/* $name or ${name} at value[i] (not single-quoted): its length, else 0. */
static size_t self_reference(const char *name, const ShAssignment *a, size_t i) {
        size_t nl = strlen(name);
        const char *v = a->value + i;
        if (v[0] != '$' || a->chars[i].quote == SH_SINGLE || a->chars[i].end - a->chars[i].beg != 1)
                return 0;
        if (strncmp(v + 1, name, nl) == 0 && !name_char(v[1 + nl], false))
                return 1 + nl;
        if (v[1] == '{' && strncmp(v + 2, name, nl) == 0 && v[2 + nl] == '}')
                return 3 + nl;
        return 0;
}

char *sh_value(const char *name, const ShAssignment *a, size_t n) {
        char *cur = NULL;
        for (size_t k = 0; k < n; k++) {
                size_t refs = 0, o = 0;
                for (size_t i = 0; i < a[k].len; i++)
                        refs += self_reference(name, &a[k], i) > 0;
                char *v = malloc(a[k].len + refs * (cur ? strlen(cur) : 0) + 1);
                if (!v) {
                        free(cur);
                        return NULL;
                }
                for (size_t i = 0; i < a[k].len;) {
                        size_t ref = self_reference(name, &a[k], i);
                        if (ref) {
                                size_t cl = cur ? strlen(cur) : 0;
                                memcpy(v + o, cur ?: "", cl);
                                o += cl;
                                i += ref;
                        } else
                                v[o++] = a[k].value[i++];
                }
                v[o] = '\0';
                free(cur);
                cur = v;
        }
        return cur;
}
