/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Applying and asserting a mig-parted configuration over every GPU NVML sees (`mig apply`, `mig assert`),
 * in the steps a program renders one by one: the configuration picked from its file (mig_config_find()),
 * what it asks of each GPU, checked against every GPU before anything changes (mig_config_plan()), and per
 * GPU what is to be done with it (mig_config_verdict(); a GPU to change goes through mig_apply_gpu()). Nothing
 * here prints: results are in the structs, failures in a GvError.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "basic/gverror.h"
#include "core/mig/mig.h"
#include "core/mig/migparted.h"

/* The configuration with that label in m; label NULL: the only one (as mig-parted takes a file of one
 * configuration without -c). -EINVAL (step "config") when there is no such label, or when label is NULL and
 * the file holds several (GV_HINT_MIG_LABEL: naming one of m's labels lets it go on). */
int mig_config_find(const MigParted *m, const char *label, const MigPartedConfig **ret, GvError *err);

/* A GPU that fell off the bus (MigGpu.lost): ENODEV, step "nvml", GV_HINT_LOST_GPU (what to look at and how
 * to bring it back). */
int mig_gpu_lost_error(const MigGpu *g, GvError *err);

typedef struct MigConfigGpu {
        MigPartedTarget target; /* what the configuration asks of the GPU (migparted_target()) */
        GvError error;          /* the GPU's target was refused (EINVAL, FILE:LINE:COL) or the GPU is lost */
} MigConfigGpu;

typedef struct MigConfigPlan {
        MigConfigGpu *gpus; /* parallel to the MigGpu array given */
        size_t n;
        size_t selected; /* GPUs some entry selects */
        size_t refused;  /* GPUs whose target was refused */
        size_t lost;     /* GPUs fallen off the bus */
} MigConfigPlan;

void mig_config_plan_done(MigConfigPlan *p);

/*
 * What configuration cfg of m asks of each of the n GPUs, checked against all of them before anything
 * changes (a file that cannot be applied changes nothing). plan is filled on failure too, its per-GPU
 * errors saying which GPU failed and why (in GPU order). Returns 0; -EINVAL when a target was refused;
 * -ENODEV (err: what) when a GPU is lost and the configuration is to be applied (assert_only false: a lost
 * GPU is not touched, nor any other while one is lost; an assert reports it as differing); -ENOMEM.
 */
int mig_config_plan(const MigParted *m, const MigPartedConfig *cfg, const MigGpu *gpus, size_t n,
                    bool assert_only, MigConfigPlan *plan, GvError *err);

typedef enum MigConfigVerdict {
        MIG_CONFIG_LEFT_ALONE, /* no entry selects it (apply), or an unselected GPU without MIG (assert), as
                                * mig-parted leaves them: not reported */
        MIG_CONFIG_LOST,       /* fallen off the bus: never touched; an assert counts it as differing */
        MIG_CONFIG_SKIPPED,    /* selected but not MIG-capable (devices: all, or mig-enabled: false): a no-op */
        MIG_CONFIG_MATCHES,    /* assert: as configured */
        MIG_CONFIG_UNMATCHED,  /* assert: MIG-capable, but no entry selects it */
        MIG_CONFIG_DIFFERS,    /* assert: not as configured */
        MIG_CONFIG_APPLY,      /* apply: to be brought to the target (mig_apply_gpu()) */
} MigConfigVerdict;

/* What is done with GPU g, whose target t a successful mig_config_plan() gave. */
MigConfigVerdict mig_config_verdict(const MigGpu *g, const MigPartedTarget *t, bool assert_only) _pure_;

/* Write the MIG layout of every MIG-capable GPU as a mig-parted v1 file of one configuration, label (what
 * `mig export` prints; applying it reproduces the layout). 0, -ENOMEM, or -EIO when f fails. */
int mig_config_export(FILE *f, const char *label, const MigGpu *gpus, size_t n);
