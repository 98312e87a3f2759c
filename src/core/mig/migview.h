/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What `mig status` and `mig profiles` show of a GPU, computed once for every program that shows it (the
 * CLI renders it as text or JSON; a daemon or device plugin reports the same): the slice map, free slices,
 * and per profile the capacity left and the placements free now.
 */

#include "core/mig/mig.h"

/* The letter of instance i in the slice map: 'a', 'b', ... */
char mig_instance_letter(size_t i);

/* "aaaab.c.": one character per memory slice, the letter of the instance taking it, '.' free. */
void mig_slice_map(const MigGpu *g, char buf[static MIG_MAX_SLICES + 1]);
/* Memory slices no instance takes. */
unsigned mig_free_slices(const MigGpu *g) _pure_;

typedef struct MigProfileState {
        unsigned remaining;   /* instances of it NVML can still create (0 unless MIG is enabled) */
        unsigned free_starts; /* bit s: a legal placement at s whose slices are free now (MIG enabled) */
} MigProfileState;

/* The state of profile pi on the GPU (n may be NULL: remaining unknown, 0). */
void mig_profile_state(Nvml *n, const MigGpu *g, size_t pi, MigProfileState *ret);
