/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include "basic/macro.h"
#include "output.h"

struct Table {
        size_t n_columns;
        char **cells; /* row-major, headers first */
        size_t n_rows;
};

Table *table_new(size_t n_columns, const char *const *headers) {
        Table *t = calloc(1, sizeof *t);
        if (!t)
                return NULL;
        t->n_columns = n_columns;
        if (table_add_row(t, headers) < 0) {
                table_free(t);
                return NULL;
        }
        return t;
}

void table_free(Table *t) {
        if (!t)
                return;
        for (size_t i = 0; i < t->n_rows * t->n_columns; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
}

int table_add_row(Table *t, const char *const *cells) {
        char **n = realloc(t->cells, (t->n_rows + 1) * t->n_columns * sizeof(char *));
        if (!n)
                return -ENOMEM;
        t->cells = n;
        for (size_t c = 0; c < t->n_columns; c++) {
                n[t->n_rows * t->n_columns + c] = strdup(cells[c] ?: "-");
                if (!n[t->n_rows * t->n_columns + c])
                        return -ENOMEM;
        }
        t->n_rows++;
        return 0;
}

static size_t display_width(const char *s) {
        /* UTF-8: count code points (our cells are ASCII plus the odd block character). */
        size_t w = 0;
        for (; *s; s++)
                if (((unsigned char)*s & 0xc0) != 0x80)
                        w++;
        return w;
}

int table_print(const Table *t, FILE *f) {
        size_t *w = calloc(t->n_columns, sizeof *w);
        if (!w)
                return -ENOMEM;
        for (size_t r = 0; r < t->n_rows; r++)
                for (size_t c = 0; c < t->n_columns; c++)
                        w[c] = MAX(w[c], display_width(t->cells[r * t->n_columns + c]));
        for (size_t r = 0; r < t->n_rows; r++) {
                for (size_t c = 0; c < t->n_columns; c++) {
                        const char *s = t->cells[r * t->n_columns + c];
                        if (c + 1 == t->n_columns)
                                fputs(s, f);
                        else
                                fprintf(f, "%s%*s", s, (int)(w[c] - display_width(s) + 2), "");
                }
                fputc('\n', f);
        }
        free(w);
        return 0;
}

int json_print(json_object *o, FILE *f) {
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                                  JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!s)
                return -ENOMEM;
        fputs(s, f);
        fputc('\n', f);
        return 0;
}

const char *json_text(json_object *o) {
        static char buf[64];
        switch (json_object_get_type(o)) {
        case json_type_null:
                return "-";
        case json_type_string:
                return json_object_get_string(o);
        case json_type_boolean:
                return json_object_get_boolean(o) ? "yes" : "no";
        case json_type_int:
                snprintf(buf, sizeof buf, "%lld", (long long)json_object_get_int64(o));
                return buf;
        default:
                return json_object_get_string(o);
        }
}
