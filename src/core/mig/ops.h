/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The operations `mig enable/disable/create/destroy/reset` make on one GPU, with the checks around the NVML
 * calls (mig.h): the profile and placement resolved, MIG required, what holds the GPU asked before a reset or
 * a destroy. Nothing here prints (under --dry-run root_change() says what would be done); results are in the
 * structs, failures in a GvError whose hint says what would let it go on.
 */

#include <stdbool.h>
#include <stddef.h>

#include "basic/gverror.h"
#include "core/mig/mig.h"

/* "0,2,4:2": a profile's legal placement starts and its size (what `mig profiles` shows). */
void mig_profile_starts_text(const MigProfile *p, char *buf, size_t len);

/* 0 when MIG is enabled on g; otherwise -EOPNOTSUPP (GV_HINT_MIG_ENABLE: enabling MIG lets it go on). */
int mig_require_enabled(const MigGpu *g, GvError *err);

typedef struct MigModeResult {
        bool unchanged;  /* already in that mode, current and pending: nothing was done */
        int activation;  /* 0: the mode is current; -EAGAIN: pending a reset; -EBUSY: pending, the GPU is in use */
        char *holders;   /* activation -EBUSY: who holds the GPU, NULL when NVML names nobody */
} MigModeResult;
void mig_mode_result_done(MigModeResult *r);

/* Enable or disable MIG on g (mig_set_mode()). 1 under --dry-run; -EBUSY when disabling with instances left
 * (GV_HINT_MIG_DESTROY_ALL: destroying them lets it go on). res is written on success. */
int mig_mode_change(Root *root, Nvml *n, MigGpu *g, bool enable, MigModeResult *res, GvError *err);

/* Reset g when nothing holds it: -EBUSY (err: who holds it) otherwise. 1 under --dry-run. */
int mig_reset_idle(Root *root, Nvml *n, MigGpu *g, GvError *err);

typedef struct MigCreateResult {
        MigInstance created[MIG_MAX_INSTANCES]; /* what was created, in order */
        size_t n_created;
        bool checked; /* the profile, placement and MIG mode were accepted: creating began */
        bool dry_run; /* --dry-run: nothing was created; g's instances account for what would be */
} MigCreateResult;

/*
 * Create count instances of profile pname on g: one at placement (>= 0; count must be 1), or each at the
 * free start that keeps the best fragmentation score (mig_best_start()). -EINVAL: no such profile, or the
 * placement is not one of the profile's; -E2BIG: a placement with a count other than 1; -EOPNOTSUPP: MIG is not enabled (GV_HINT_MIG_ENABLE); -ENOSPC: no
 * room (GV_HINT_MIG_STATUS when no legal placement is free); NVML's -errno otherwise. Stops at the first
 * failure; res (zeroed first) says what was created until then, on failure too.
 */
int mig_create_instances(Root *root, Nvml *n, MigGpu *g, const char *pname, int placement, unsigned count,
                         MigCreateResult *res, GvError *err);

typedef struct MigDestroyResult {
        unsigned destroyed[MIG_MAX_INSTANCES]; /* GPU instance ids destroyed, in order */
        size_t n_destroyed;
        bool checked; /* the MIG mode, the instance and what holds them were accepted: destroying began */
        bool dry_run;
} MigDestroyResult;

/*
 * Destroy GPU instance gi of g (gi < 0: all of them) with their compute instances. Unless force, refused
 * with -EBUSY (GV_HINT_FORCE_TRY) when something holds one of them. -EINVAL: no such GPU instance
 * (GV_HINT_MIG_STATUS); -EOPNOTSUPP: MIG is not enabled. Stops at the first failure; res (zeroed first) says
 * what was destroyed until then.
 */
int mig_destroy_instances(Root *root, Nvml *n, MigGpu *g, int gi, bool force, MigDestroyResult *res, GvError *err);
