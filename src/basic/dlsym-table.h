/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/*
 * One loader for libraries opened with dlopen() (NVML, libvirt): a table of the symbols a caller needs,
 * each with the pointer it fills and whether the library is unusable without it.
 */

typedef struct DlsymEntry {
        const char *name;
        void **ptr;    /* where the symbol's address goes (NULL when absent) */
        bool required;
} DlsymEntry;

/* Resolve every entry of table in dl. 0, or -ENOPKG when a required symbol is missing: *ret_missing
 * (may be NULL) then names the first, and every pointer of the table is reset to NULL. */
int dlsym_table(void *dl, const DlsymEntry *table, size_t n, const char **ret_missing);
