/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "basic/fileio.h"
#include "core/mig/ops.h"

void mig_profile_starts_text(const MigProfile *p, char *buf, size_t len) {
        size_t k = 0;
        buf[0] = '\0';
        for (unsigned s = 0; s < MIG_MAX_SLICES; s++)
                if (p->starts >> s & 1u)
                        k += (size_t)snprintf(buf + k, len - MIN(k, len), "%s%u", k ? "," : "", s);
        snprintf(buf + MIN(k, len), len - MIN(k, len), ":%u", p->size);
}

int mig_require_enabled(const MigGpu *g, GvError *err) {
        if (g->mode_current == NVML_DEVICE_MIG_ENABLE)
                return 0;
        return gv_error_take(err, -EOPNOTSUPP, g->address, "mig-mode", GV_HINT_MIG_ENABLE,
                             strdup_printf("MIG is not enabled on %s%s", g->address,
                                           g->mode_pending == NVML_DEVICE_MIG_ENABLE ? " (enabled, pending a GPU reset)"
                                                                                     : ""));
}

void mig_mode_result_done(MigModeResult *r) {
        if (!r)
                return;
        free(r->holders);
        *r = (MigModeResult){};
}

static int holders_error(GvError *err, int r, const MigGpu *g) {
        return gv_error_set(err, r, g->address, "holders", "Cannot tell what holds %s: %m", g->address);
}

int mig_mode_change(Root *root, Nvml *n, MigGpu *g, bool enable, MigModeResult *res, GvError *err) {
        unsigned want = enable ? NVML_DEVICE_MIG_ENABLE : NVML_DEVICE_MIG_DISABLE;
        if (g->mode_current == want && g->mode_pending == want) {
                *res = (MigModeResult){.unchanged = true};
                return 0;
        }
        int act = 0;
        int r = mig_set_mode(root, n, g, enable, &act, err);
        if (r > 0)
                return r; /* --dry-run: said what it would do */
        if (r == -EBUSY && !enable) {
                _cleanup_free_ char *d = nvml_errno_describe(r);
                return gv_error_take(err, r, g->address, "set-mode", GV_HINT_MIG_DESTROY_ALL,
                                     strdup_printf("Cannot disable MIG on %s: %zu instance(s) exist (%s)", g->address,
                                                   g->n_inst, strna(d)));
        }
        if (r < 0)
                return r;
        _cleanup_free_ char *holders = NULL;
        if (act == -EBUSY && (r = mig_holders_text(root, n, g, true, 0, &holders)) < 0)
                return holders_error(err, r, g);
        if (holders && !*holders) {
                free(holders);
                holders = NULL;
        }
        *res = (MigModeResult){.activation = act, .holders = TAKE_PTR(holders)};
        return 0;
}

int mig_reset_idle(Root *root, Nvml *n, MigGpu *g, GvError *err) {
        _cleanup_free_ char *holders = NULL;
        int r = mig_holders_text(root, n, g, true, 0, &holders);
        if (r < 0)
                return holders_error(err, r, g);
        if (*holders)
                return gv_error_set(err, -EBUSY, g->address, "reset",
                                    "Cannot reset %s: it is in use by %s. Stop them first (nvidia-persistenced, DCGM: "
                                    "systemctl stop ...; nvidia_drm: unload it or boot without modeset).",
                                    g->address, holders);
        return mig_reset(root, n, g, err);
}

int mig_create_instances(Root *root, Nvml *n, MigGpu *g, const char *pname, int placement, unsigned count,
                         MigCreateResult *res, GvError *err) {
        *res = (MigCreateResult){};
        int pi = mig_profile_find(g, pname);
        if (pi < 0) {
                _cleanup_free_ char *list = mig_profile_names(g);
                return gv_error_set(err, -EINVAL, g->address, "create", "Unknown MIG profile '%s' on %s (%s). Known: %s",
                                    pname, g->address, g->name, strna(list));
        }
        const MigProfile *p = &g->profiles[pi];
        if (placement >= 0) {
                char pl[40];
                mig_profile_starts_text(p, pl, sizeof pl);
                if (placement >= MIG_MAX_SLICES || !(p->starts >> placement & 1u))
                        return gv_error_set(err, -EINVAL, g->address, "create",
                                            "Placement %d is not valid for %s on %s: its placements are %s (start:size).",
                                            placement, p->name, g->address, pl);
                if (count != 1)
                        return gv_error_set(err, -E2BIG, g->address, "create",
                                            "a placement creates one instance, not %u", count);
        }
        int r = mig_require_enabled(g, err);
        if (r < 0)
                return r;
        res->checked = true;
        for (unsigned k = 0; k < count; k++) {
                int start = placement >= 0 ? placement
                                           : mig_best_start(g->profiles, g->n_profiles, g->slices, mig_occupancy(g), pi);
                if (start < 0 || res->n_created >= MIG_MAX_INSTANCES)
                        return gv_error_take(err, -ENOSPC, g->address, "create", GV_HINT_MIG_STATUS,
                                             strdup_printf("No room for %s %s on %s: no legal placement is free",
                                                           k ? "another" : "a", p->name, g->address));
                MigInstance m;
                r = mig_create(root, n, g, pi, start, &m, err);
                if (r > 0) {
                        /* --dry-run: said what it would do; account for it in the following ones */
                        res->dry_run = true;
                        if (g->n_inst < MIG_MAX_INSTANCES)
                                g->inst[g->n_inst++] = (MigInstance){.profile = pi, .start = (unsigned)start,
                                                                     .size = p->size, .ci_id = -1};
                        continue;
                }
                if (r == -ENOSPC)
                        return gv_error_set(err, r, g->address, "create",
                                            "Cannot create %s at %d:%u on %s: slices %d-%u are taken or the profile's "
                                            "limit (%u) is reached (NVML_ERROR_INSUFFICIENT_RESOURCES).",
                                            p->name, start, p->size, g->address, start, (unsigned)start + p->size - 1,
                                            p->max);
                if (r < 0)
                        return r;
                res->created[res->n_created++] = m;
        }
        return 0;
}

int mig_destroy_instances(Root *root, Nvml *n, MigGpu *g, int gi, bool force, MigDestroyResult *res, GvError *err) {
        *res = (MigDestroyResult){};
        int r = mig_require_enabled(g, err);
        if (r < 0)
                return r;
        unsigned ids[MIG_MAX_INSTANCES];
        size_t k = 0;
        for (size_t i = 0; i < g->n_inst; i++)
                if (gi < 0 || (int)g->inst[i].gi_id == gi)
                        ids[k++] = g->inst[i].gi_id;
        if (gi >= 0 && k == 0)
                return gv_error_take(err, -EINVAL, g->address, "destroy", GV_HINT_MIG_STATUS,
                                     strdup_printf("%s has no GPU instance %d", g->address, gi));
        if (!force)
                for (size_t i = 0; i < k; i++) {
                        _cleanup_free_ char *h = NULL;
                        if ((r = mig_holders_text(root, n, g, false, ids[i], &h)) < 0)
                                return holders_error(err, r, g);
                        if (*h)
                                return gv_error_take(err, -EBUSY, g->address, "destroy", GV_HINT_FORCE_TRY,
                                                     strdup_printf("GPU instance %u on %s is in use by %s; stop them first",
                                                                   ids[i], g->address, h));
                }
        res->checked = true;
        for (size_t i = 0; i < k; i++) {
                r = mig_destroy(root, n, g, ids[i], err);
                if (r > 0) {
                        res->dry_run = true; /* --dry-run: said what it would do */
                        continue;
                }
                if (r < 0)
                        return r;
                res->destroyed[res->n_destroyed++] = ids[i];
        }
        return 0;
}
