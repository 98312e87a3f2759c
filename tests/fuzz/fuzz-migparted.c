/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* mig-parted v1 files: parse, then match every configuration against a few GPUs; rejections carry
 * "f.yaml:LINE:COL". */
#include <string.h>

#include "basic/fileio.h"
#include "core/mig/migparted.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        MigParted *m = NULL;
        GvError err = {};
        int r = migparted_parse_text("f.yaml", (const char *)data, size, &m, &err);
        if (r < 0) {
                FUZZ_CHECK(r == -EINVAL && err.error == EINVAL && err.message && startswith(err.message, "f.yaml:"));
                gv_error_done(&err);
                return 0;
        }
        static const uint32_t ids[] = {0x20b010de, 0x20b210de, 0x233010de, 0};
        for (size_t c = 0; c < m->n_configs; c++) {
                FUZZ_CHECK(migparted_find(m, m->configs[c].label) == &m->configs[c]); /* labels are distinct */
                for (unsigned i = 0; i < 9; i++)
                        for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++)
                                for (size_t e = 0; e < m->configs[c].n_entries; e++) {
                                        const MigPartedEntry *me = &m->configs[c].entries[e];
                                        FUZZ_CHECK(me->n_mig_devices <= MIGPARTED_PROFILES_MAX);
                                        /* no filter: every listed device is selected, whatever its ids */
                                        if (me->n_filters == 0)
                                                FUZZ_CHECK(migparted_entry_selects(me, i, ids[k], 0x134f10de) ==
                                                           migparted_entry_selects(me, i, 0, 0));
                                }
        }
        migparted_free(m);
        return 0;
}
