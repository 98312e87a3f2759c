/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "core/mig/migview.h"

char mig_instance_letter(size_t i) {
        return (char)('a' + i);
}

void mig_slice_map(const MigGpu *g, char buf[static MIG_MAX_SLICES + 1]) {
        size_t k = 0;
        for (unsigned s = 0; s < g->slices && s < MIG_MAX_SLICES; s++) {
                char ch = '.';
                for (size_t i = 0; i < g->n_inst; i++)
                        if (s >= g->inst[i].start && s < g->inst[i].start + g->inst[i].size)
                                ch = mig_instance_letter(i);
                buf[k++] = ch;
        }
        buf[k] = '\0';
}

unsigned mig_free_slices(const MigGpu *g) {
        char row[MIG_MAX_SLICES + 1];
        mig_slice_map(g, row);
        unsigned n = 0;
        for (size_t i = 0; row[i]; i++)
                n += row[i] == '.';
        return n;
}

void mig_profile_state(Nvml *n, const MigGpu *g, size_t pi, MigProfileState *ret) {
        const MigProfile *p = &g->profiles[pi];
        MigProfileState st = {};
        bool enabled = g->mode_current == NVML_DEVICE_MIG_ENABLE;
        if (enabled && n)
                (void)n->f.nvmlDeviceGetGpuInstanceRemainingCapacity(g->dev, p->id, &st.remaining);
        unsigned occ = mig_occupancy(g);
        for (unsigned s = 0; s < MIG_MAX_SLICES; s++)
                if ((p->starts >> s & 1u) && enabled && s + p->size <= g->slices &&
                    !(occ & (((1u << p->size) - 1) << s)))
                        st.free_starts |= 1u << s;
        *ret = st;
}
