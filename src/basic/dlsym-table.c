/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dlfcn.h>
#include <errno.h>

#include "basic/dlsym-table.h"

int dlsym_table(void *dl, const DlsymEntry *table, size_t n, const char **ret_missing) {
        for (size_t i = 0; i < n; i++) {
                *table[i].ptr = dlsym(dl, table[i].name);
                if (!*table[i].ptr && table[i].required) {
                        for (size_t j = 0; j < n; j++)
                                *table[j].ptr = NULL;
                        if (ret_missing)
                                *ret_missing = table[i].name;
                        return -ENOPKG;
                }
        }
        return 0;
}
