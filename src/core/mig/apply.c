/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>

#include "basic/fileio.h"
#include "core/mig/apply.h"

int mig_config_find(const MigParted *m, const char *label, const MigPartedConfig **ret, GvError *err) {
        const MigPartedConfig *cfg = migparted_find(m, label);
        if (cfg) {
                *ret = cfg;
                return 0;
        }
        const char *first = m->n_configs ? m->configs[0].label : "", *more = m->n_configs > 1 ? ", ..." : "";
        if (label)
                return gv_error_set(err, -EINVAL, NULL, "config", "%s: no configuration '%s' (it has %zu: %s%s)", m->path,
                                    label, m->n_configs, first, more);
        return gv_error_take(err, -EINVAL, NULL, "config", GV_HINT_MIG_LABEL,
                             strdup_printf("%s holds %zu configurations and none is named (%s%s)", m->path,
                                           m->n_configs, first, more));
}

int mig_gpu_lost_error(const MigGpu *g, GvError *err) {
        return gv_error_take(err, -ENODEV, NULL, "nvml", GV_HINT_LOST_GPU,
                             strdup_printf("GPU %u has fallen off the bus (NVML_ERROR_GPU_IS_LOST): NVML cannot tell "
                                           "what it is",
                                           g->index));
}

void mig_config_plan_done(MigConfigPlan *p) {
        if (!p)
                return;
        for (size_t i = 0; i < p->n; i++)
                gv_error_done(&p->gpus[i].error);
        free(p->gpus);
        *p = (MigConfigPlan){};
}

int mig_config_plan(const MigParted *m, const MigPartedConfig *cfg, const MigGpu *gpus, size_t n,
                    bool assert_only, MigConfigPlan *plan, GvError *err) {
        *plan = (MigConfigPlan){.gpus = calloc(MAX(n, 1u), sizeof *plan->gpus)};
        if (!plan->gpus)
                return gv_error_set(err, -ENOMEM, NULL, "config", NULL);
        plan->n = n;
        for (size_t i = 0; i < n; i++) {
                MigConfigGpu *c = &plan->gpus[i];
                if (migparted_target(m, cfg, &gpus[i], &c->target, &c->error) < 0) {
                        plan->refused++;
                        continue;
                }
                plan->selected += c->target.action != MIGPARTED_UNMATCHED;
                if (gpus[i].lost) {
                        (void)mig_gpu_lost_error(&gpus[i], &c->error);
                        plan->lost++;
                }
        }
        if (plan->refused > 0) /* nothing was changed */
                return gv_error_set(err, -EINVAL, NULL, "config", "%zu GPU(s) cannot take configuration '%s'",
                                    plan->refused, cfg->label);
        if (plan->lost > 0 && !assert_only)
                return gv_error_set(err, -ENODEV, NULL, "config",
                                    "Nothing changed: gpuvirt does not apply '%s' while a GPU is lost.", cfg->label);
        return 0;
}

MigConfigVerdict mig_config_verdict(const MigGpu *g, const MigPartedTarget *t, bool assert_only) {
        if (g->lost)
                return MIG_CONFIG_LOST;
        if (t->action == MIGPARTED_UNMATCHED && (!assert_only || !g->capable))
                return MIG_CONFIG_LEFT_ALONE; /* as mig-parted does */
        if (t->action == MIGPARTED_SKIP)
                return MIG_CONFIG_SKIPPED;
        if (!assert_only)
                return MIG_CONFIG_APPLY;
        if (t->action == MIGPARTED_SET && mig_layout_matches(g, t->enabled, t->want))
                return MIG_CONFIG_MATCHES;
        return t->action == MIGPARTED_UNMATCHED ? MIG_CONFIG_UNMATCHED : MIG_CONFIG_DIFFERS;
}

int mig_config_export(FILE *f, const char *label, const MigGpu *gpus, size_t n) {
        _cleanup_free_ MigPartedExport *e = calloc(MAX(n, 1u), sizeof *e);
        _cleanup_free_ const char *(*names)[MIG_MAX_PROFILES] = calloc(MAX(n, 1u), sizeof *names);
        _cleanup_free_ unsigned (*counts)[MIG_MAX_PROFILES] = calloc(MAX(n, 1u), sizeof *counts);
        if (!e || !names || !counts)
                return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                const MigGpu *g = &gpus[i];
                if (!g->capable)
                        continue;
                for (size_t p = 0; p < g->n_profiles; p++)
                        names[k][p] = g->profiles[p].name;
                for (size_t x = 0; x < g->n_inst; x++)
                        counts[k][g->inst[x].profile]++;
                e[k] = (MigPartedExport){.index = g->index, .mig_enabled = g->mode_current == NVML_DEVICE_MIG_ENABLE,
                                         .profiles = names[k], .counts = counts[k], .n = g->n_profiles};
                k++;
        }
        return migparted_write(f, label, e, k);
}
