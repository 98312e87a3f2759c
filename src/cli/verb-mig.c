/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gpuvirt mig: status, profiles, enable, disable, create, destroy, reset, apply, assert, export. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "cli/common.h"
#include "cli/output.h"
#include "core/mig/apply.h"
#include "core/mig/mig.h"
#include "core/mig/migparted.h"
#include "core/mig/migview.h"
#include "core/mig/nvml.h"
#include "core/mig/ops.h"

typedef struct MigArgs {
        int placement, count, gi;
        bool all, force, allow_disrupt, no_reset, bad;
        const char *file, *config;
} MigArgs;

enum { OPT_PLACEMENT = 0x100, OPT_COUNT, OPT_GI, OPT_ALL, OPT_FORCE, OPT_ALLOW_DISRUPT, OPT_NO_RESET };

static void mig_opt(int c, const char *v, void *ud) {
        MigArgs *a = ud;
        uint32_t u;
        switch (c) {
        case OPT_PLACEMENT:
        case OPT_COUNT:
        case OPT_GI:
                if (parse_u32(v, 10, &u) < 0 || u > 255) {
                        log_error("--%s '%s' is not a small non-negative number.",
                                  c == OPT_PLACEMENT ? "placement" : c == OPT_COUNT ? "count" : "gi", v);
                        a->bad = true;
                        return;
                }
                *(c == OPT_PLACEMENT ? &a->placement : c == OPT_COUNT ? &a->count : &a->gi) = (int)u;
                break;
        case OPT_ALL: a->all = true; break;
        case OPT_FORCE: a->force = true; break;
        case OPT_ALLOW_DISRUPT: a->allow_disrupt = true; break;
        case OPT_NO_RESET: a->no_reset = true; break;
        case 'f': a->file = v; break;
        case 'c': a->config = v; break;
        }
}

typedef struct Ctx {
        Root *root;
        Nvml *nvml;
        MigGpu *gpus;
        size_t n;
} Ctx;

static void ctx_done(Ctx *c) {
        free(c->gpus);
        nvml_close(c->nvml);
        root_free(c->root);
}

static int ctx_open(Ctx *c) {
        *c = (Ctx){};
        int r = open_root(0, &c->root);
        if (r)
                return r;
        _cleanup_(gv_error_done) GvError why = {};
        r = nvml_open(c->root, &c->nvml, &why);
        if (r < 0) {
                log_error("%s. MIG needs the NVIDIA driver's NVML (libnvidia-ml.so.1); the other modes work without it.",
                          why.message ?: "NVML not available");
                return failure_errno(r);
        }
        r = mig_gpus_read(c->nvml, &c->gpus, &c->n);
        if (r < 0) {
                _cleanup_free_ char *d = nvml_errno_describe(r);
                return log_error_errno(r, "Cannot read the GPUs through NVML: %s", strna(d)), failure_errno(r);
        }
        return 0;
}

static int ctx_gpu(Ctx *c, const char *input, MigGpu **ret) {
        _cleanup_free_ char *canon = NULL;
        if (pci_addr_canonical(input, &canon) < 0) {
                log_error("'%s' is not a PCI address (expected DDDD:BB:DD.F or BB:DD.F).", input);
                return -EINVAL;
        }
        MigGpu *g = mig_gpu_find(c->gpus, c->n, canon);
        _cleanup_(gv_error_done) GvError dead = {};
        int r;
        if (!g && (r = pci_device_require_alive(c->root, canon, &dead)) < 0) {
                log_error("%s", strna(dead.message)); /* NVML reports it lost, without its address */
                return failure_errno(r);
        }
        if (!g) {
                log_error("NVML knows no GPU %s (GPUs on vfio-pci or without the nvidia driver are not visible; see "
                          "'gpuvirt mig status').", canon);
                return -ENODEV;
        }
        if (g->lost) {
                log_error("%s has fallen off the bus (NVML_ERROR_GPU_IS_LOST): reset or reseat it first (see 'gpuvirt "
                          "check %s').", canon, canon);
                return -ENODEV;
        }
        if (!g->capable) {
                log_error("%s (%s) does not support MIG.", canon, g->name);
                return -EOPNOTSUPP;
        }
        *ret = g;
        return 0;
}

static const char *mode_str(unsigned m) {
        return m == NVML_DEVICE_MIG_ENABLE ? "enabled" : "disabled";
}

/* JSON building with every allocation checked: o[key] = v, v taken (released on failure). v NULL is JSON
 * null where null says the value is absent; otherwise NULL is an allocation that failed. false on failure. */
static bool jset(json_object *o, const char *key, json_object *v, bool null) {
        if (!o || (!v && !null) || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return false;
        }
        return true;
}

/* Append v to array a, v taken (released on failure); false on failure. */
static bool jpush(json_object *a, json_object *v) {
        if (!a || !v || json_object_array_add(a, v) < 0) {
                json_object_put(v);
                return false;
        }
        return true;
}

static json_object *instance_json(const MigGpu *g, const MigInstance *m) {
        _cleanup_json_ json_object *o = json_object_new_object();
        json_object *pl = NULL;
        if (!jset(o, "profile", json_object_new_string(g->profiles[m->profile].name), false) ||
            !jset(o, "profile_id", json_object_new_int((int)g->profiles[m->profile].id), false) ||
            !jset(o, "placement", pl = json_object_new_object(), false) ||
            !jset(pl, "start", json_object_new_int((int)m->start), false) ||
            !jset(pl, "size", json_object_new_int((int)m->size), false) ||
            !jset(o, "gi_id", json_object_new_int((int)m->gi_id), false) ||
            !jset(o, "ci_id", m->ci_id >= 0 ? json_object_new_int(m->ci_id) : NULL, m->ci_id < 0) ||
            !jset(o, "uuid", m->uuid[0] ? json_object_new_string(m->uuid) : NULL, !m->uuid[0]))
                return NULL;
        return TAKE_PTR(o);
}

static json_object *gpu_json(const MigGpu *g) {
        _cleanup_json_ json_object *o = json_object_new_object();
        json_object *mode = NULL, *a = NULL;
        if (!jset(o, "address", g->address[0] ? json_object_new_string(g->address) : NULL, !g->address[0]) ||
            !jset(o, "index", json_object_new_int((int)g->index), false) ||
            !jset(o, "name", g->name[0] ? json_object_new_string(g->name) : NULL, !g->name[0]) ||
            !jset(o, "uuid", g->uuid[0] ? json_object_new_string(g->uuid) : NULL, !g->uuid[0]) ||
            !jset(o, "lost", json_object_new_boolean(g->lost), false) ||
            !jset(o, "mig_capable", json_object_new_boolean(g->capable), false) ||
            !jset(o, "mig_mode", g->capable ? (mode = json_object_new_object()) : NULL, !g->capable) ||
            (mode && (!jset(mode, "current", json_object_new_string(mode_str(g->mode_current)), false) ||
                      !jset(mode, "pending", json_object_new_string(mode_str(g->mode_pending)), false))) ||
            !jset(o, "instances", a = json_object_new_array(), false))
                return NULL;
        for (size_t i = 0; i < g->n_inst; i++)
                if (!jpush(a, instance_json(g, &g->inst[i])))
                        return NULL;
        char row[MIG_MAX_SLICES + 1];
        mig_slice_map(g, row);
        if (!jset(o, "slices", g->capable ? json_object_new_string(row) : NULL, !g->capable) ||
            !jset(o, "free_slices", g->capable ? json_object_new_int((int)mig_free_slices(g)) : NULL, !g->capable))
                return NULL;
        return TAKE_PTR(o);
}

/* Print o and release it; o NULL: an allocation failed while building it. */
static int print_json(json_object *o) {
        if (!o)
                return log_error("Out of memory."), -ENOMEM;
        json_print(o, stdout);
        json_object_put(o);
        return 0;
}

static void gpu_text(const MigGpu *g) {
        if (g->lost && !g->address[0]) {
                printf("GPU %u  lost: fallen off the bus (NVML_ERROR_GPU_IS_LOST); see 'gpuvirt check'\n", g->index);
                return;
        }
        printf("%s  GPU %u  %s  %s\n", g->address, g->index, g->name, g->uuid);
        if (g->lost) {
                printf("  lost: fallen off the bus (NVML_ERROR_GPU_IS_LOST); see 'gpuvirt check'\n");
                return;
        }
        if (!g->capable) {
                printf("  MIG: not supported\n");
                return;
        }
        printf("  MIG mode: %s", mode_str(g->mode_current));
        if (g->mode_pending != g->mode_current)
                printf(" (pending: %s after a GPU reset: gpuvirt mig reset %s)", mode_str(g->mode_pending), g->address);
        printf("\n");
        if (g->mode_current != NVML_DEVICE_MIG_ENABLE)
                return;
        char row[MIG_MAX_SLICES + 1];
        mig_slice_map(g, row);
        printf("  slices:   [");
        for (size_t i = 0; row[i]; i++)
                printf("%s%c", i ? " " : "", row[i]);
        printf("]  (one per memory slice, 0 first; '.' free)\n");
        if (g->n_inst == 0) {
                printf("  no instances\n");
                return;
        }
        static const char *const headers[] = {"  ", "PROFILE", "PLACEMENT", "GI", "CI", "UUID"};
        Table *t = table_new(6, headers);
        for (size_t i = 0; t && i < g->n_inst; i++) {
                const MigInstance *m = &g->inst[i];
                char letter[4], pl[16], gi[12], ci[12];
                snprintf(letter, sizeof letter, "  %c", mig_instance_letter(i));
                snprintf(pl, sizeof pl, "%u:%u", m->start, m->size);
                snprintf(gi, sizeof gi, "%u", m->gi_id);
                snprintf(ci, sizeof ci, "%d", m->ci_id);
                const char *cells[] = {letter, g->profiles[m->profile].name, pl, gi, m->ci_id >= 0 ? ci : NULL,
                                       m->uuid[0] ? m->uuid : NULL};
                table_add_row(t, cells);
        }
        if (t)
                table_print(t, stdout);
        table_free(t);
}

static int do_status(Ctx *c, int argc, char **argv, int first) {
        MigGpu *only = NULL;
        if (argc - first > 1)
                return usage_error("mig status: expected at most one GPU address"), -EINVAL;
        if (argc - first == 1) {
                int r = ctx_gpu(c, argv[first], &only);
                if (r)
                        return r;
        }
        if (arg.json) {
                _cleanup_json_ json_object *a = json_object_new_array();
                for (size_t i = 0; a && i < c->n; i++)
                        if ((!only || only == &c->gpus[i]) && !jpush(a, gpu_json(&c->gpus[i])))
                                json_object_put(TAKE_PTR(a));
                return print_json(TAKE_PTR(a));
        }
        if (c->n == 0)
                printf("NVML sees no GPU.\n");
        for (size_t i = 0; i < c->n; i++)
                if (!only || only == &c->gpus[i])
                        gpu_text(&c->gpus[i]);
        return 0;
}

static json_object *profile_json(const MigProfile *p, const MigProfileState *st) {
        _cleanup_json_ json_object *o = json_object_new_object();
        json_object *pls = NULL;
        if (!jset(o, "name", json_object_new_string(p->name), false) ||
            !jset(o, "id", json_object_new_int((int)p->id), false) ||
            !jset(o, "compute_slices", json_object_new_int((int)p->compute), false) ||
            !jset(o, "memory_slices", json_object_new_int((int)p->size), false) ||
            !jset(o, "memory_mb", json_object_new_int64((int64_t)p->memory_mb), false) ||
            !jset(o, "multiprocessors", json_object_new_int((int)p->sms), false) ||
            !jset(o, "max_instances", json_object_new_int((int)p->max), false) ||
            !jset(o, "remaining_capacity", json_object_new_int((int)st->remaining), false) ||
            !jset(o, "placements", pls = json_object_new_array(), false))
                return NULL;
        for (unsigned s = 0; s < MIG_MAX_SLICES; s++) {
                if (!(p->starts >> s & 1u))
                        continue;
                json_object *pl = NULL;
                if (!jpush(pls, pl = json_object_new_object()) ||
                    !jset(pl, "start", json_object_new_int((int)s), false) ||
                    !jset(pl, "size", json_object_new_int((int)p->size), false) ||
                    !jset(pl, "free", json_object_new_boolean(st->free_starts >> s & 1u), false))
                        return NULL;
        }
        return TAKE_PTR(o);
}

static int do_profiles(Ctx *c, MigGpu *g) {
        _cleanup_json_ json_object *a = arg.json ? json_object_new_array() : NULL;
        static const char *const headers[] = {"PROFILE", "ID", "INSTANCES", "FREE", "MEMORY", "SMS", "PLACEMENTS", "FREE_NOW"};
        Table *t = arg.json ? NULL : table_new(8, headers);
        for (size_t i = 0; i < g->n_profiles; i++) {
                const MigProfile *p = &g->profiles[i];
                MigProfileState st;
                mig_profile_state(c->nvml, g, i, &st);
                if (a && !jpush(a, profile_json(p, &st)))
                        json_object_put(TAKE_PTR(a));
                if (!t)
                        continue;
                char freenow[32] = "";
                size_t fk = 0;
                for (unsigned s = 0; s < MIG_MAX_SLICES; s++)
                        if ((p->starts >> s & 1u) && (st.free_starts >> s & 1u) && fk < sizeof freenow - 4)
                                fk += (size_t)snprintf(freenow + fk, sizeof freenow - fk, "%s%u", fk ? "," : "", s);
                char id[12], inst[12], fr[12], mem[24], sms[12], pl[40];
                snprintf(id, sizeof id, "%u", p->id);
                snprintf(inst, sizeof inst, "%u", p->max);
                snprintf(fr, sizeof fr, "%u", st.remaining);
                snprintf(mem, sizeof mem, "%.2f GiB", (double)p->memory_mb / 1024.0);
                snprintf(sms, sizeof sms, "%u", p->sms);
                mig_profile_starts_text(p, pl, sizeof pl);
                const char *cells[] = {p->name, id, inst, fr, mem, sms, pl, fk ? freenow : NULL};
                table_add_row(t, cells);
        }
        if (arg.json)
                return print_json(TAKE_PTR(a));
        printf("%s  %s  MIG %s\n", g->address, g->name, mode_str(g->mode_current));
        if (t)
                table_print(t, stdout);
        table_free(t);
        if (g->mode_current != NVML_DEVICE_MIG_ENABLE)
                printf("MIG is not enabled: FREE is 0 until 'gpuvirt mig enable %s'.\n", g->address);
        return 0;
}

/* An operation's failure, as the person reads it (error_text() adds what to type). */
static void mig_error(GvError *err, int r) {
        _cleanup_free_ char *why = error_text(err, r);
        log_error("%s", strna(why));
}

static int do_mode(Ctx *c, MigGpu *g, bool enable) {
        unsigned want = enable ? NVML_DEVICE_MIG_ENABLE : NVML_DEVICE_MIG_DISABLE;
        _cleanup_(gv_error_done) GvError err = {};
        _cleanup_(mig_mode_result_done) MigModeResult res = {};
        int r = mig_mode_change(c->root, c->nvml, g, enable, &res, &err);
        if (r > 0)
                return 0; /* --dry-run: said what it would do */
        if (r < 0)
                return mig_error(&err, r), failure_errno(r);
        if (res.unchanged) {
                if (!arg.json)
                        printf("%s: MIG already %s.\n", g->address, mode_str(want));
                else {
                        _cleanup_json_ json_object *o = gpu_json(g);
                        if (!jset(o, "activation", json_object_new_string("done"), false))
                                json_object_put(TAKE_PTR(o));
                        return print_json(TAKE_PTR(o));
                }
                return 0;
        }
        int act = res.activation;
        if (arg.json) {
                _cleanup_json_ json_object *o = gpu_json(g);
                if (!jset(o, "activation",
                          json_object_new_string(act == 0 ? "done" : act == -EBUSY ? "in_use" : "reset_required"), false) ||
                    !jset(o, "holders", res.holders ? json_object_new_string(res.holders) : NULL, !res.holders))
                        json_object_put(TAKE_PTR(o));
                return print_json(TAKE_PTR(o));
        }
        if (act == 0)
                printf("%s: MIG %s.\n", g->address, mode_str(want));
        else if (act == -EBUSY)
                printf("%s: MIG %s is pending: the GPU is in use (NVML_ERROR_IN_USE) by %s.\n"
                       "Stop them (systemctl stop nvidia-persistenced nvidia-dcgm, ...), then: gpuvirt mig reset %s\n",
                       g->address, mode_str(want), res.holders ?: "processes NVML does not name", g->address);
        else
                printf("%s: MIG %s is pending until the GPU is reset (NVML_ERROR_RESET_REQUIRED).\n"
                       "Reset it now: gpuvirt mig reset %s (or reboot)\n",
                       g->address, mode_str(want), g->address);
        return 0;
}

static int do_reset(Ctx *c, MigGpu *g) {
        _cleanup_(gv_error_done) GvError err = {};
        int r = mig_reset_idle(c->root, c->nvml, g, &err);
        if (r > 0)
                return 0; /* --dry-run */
        if (r < 0)
                return mig_error(&err, r), failure_errno(r);
        if (arg.json)
                return print_json(gpu_json(g));
        printf("%s: reset; MIG %s.\n", g->address, mode_str(g->mode_current));
        return 0;
}

static int do_create(Ctx *c, MigGpu *g, const char *pname, const MigArgs *a) {
        _cleanup_(gv_error_done) GvError err = {};
        MigCreateResult res;
        int r = mig_create_instances(c->root, c->nvml, g, pname, a->placement, (unsigned)a->count, &res, &err);
        if (r == -E2BIG)
                return usage_error("mig create: --placement creates one instance; drop --count"), -EINVAL;
        if (r < 0 && !res.checked) /* the profile, the placement or the MIG mode */
                return mig_error(&err, r), r == -EINVAL ? r : failure_errno(r);
        _cleanup_json_ json_object *out = arg.json ? json_object_new_array() : NULL;
        for (size_t i = 0; i < res.n_created; i++) {
                const MigInstance *m = &res.created[i];
                if (out && !jpush(out, instance_json(g, m)))
                        json_object_put(TAKE_PTR(out));
                if (!arg.json)
                        printf("%s: created %s at %u:%u, GI %u CI %d, %s\n", g->address, g->profiles[m->profile].name,
                               m->start, m->size, m->gi_id, m->ci_id, m->uuid);
        }
        if (r < 0)
                mig_error(&err, r);
        int q = arg.json && !res.dry_run ? print_json(TAKE_PTR(out)) : 0;
        return r < 0 ? failure_errno(r) : q;
}

static int do_destroy(Ctx *c, MigGpu *g, const MigArgs *a) {
        _cleanup_(gv_error_done) GvError err = {};
        MigDestroyResult res;
        int r = mig_destroy_instances(c->root, c->nvml, g, a->all ? -1 : a->gi, a->force, &res, &err);
        if (r < 0 && !res.checked) /* the MIG mode, no such instance, or in use */
                return mig_error(&err, r), r == -EINVAL ? r : failure_errno(r);
        for (size_t i = 0; i < res.n_destroyed && !arg.json; i++)
                printf("%s: destroyed GPU instance %u\n", g->address, res.destroyed[i]);
        if (r < 0)
                mig_error(&err, r);
        int rc = r < 0 ? failure_errno(r) : 0;
        if (!arg.json || res.dry_run)
                return rc;
        _cleanup_json_ json_object *o = json_object_new_object();
        json_object *out = NULL;
        if (!jset(o, "address", json_object_new_string(g->address), false) ||
            !jset(o, "destroyed", out = json_object_new_array(), false))
                json_object_put(TAKE_PTR(o));
        for (size_t i = 0; o && i < res.n_destroyed; i++)
                if (!jpush(out, json_object_new_int((int)res.destroyed[i])))
                        json_object_put(TAKE_PTR(o));
        int q = print_json(TAKE_PTR(o));
        return rc ?: q;
}

/* ---- mig-parted configs ---- */

static int load_config(const MigArgs *a, MigParted **ret_m, const MigPartedConfig **ret_c) {
        if (!a->file)
                return usage_error("expected -f FILE [-c LABEL] (a mig-parted v1 configuration and one of its labels)"),
                       -EINVAL;
        _cleanup_(gv_error_done) GvError err = {};
        _cleanup_migparted_free_ MigParted *m = NULL;
        int r = migparted_parse(a->file, &m, &err);
        if (r < 0) {
                log_error("%s", err.message ?: "Cannot read the configuration");
                return input_error_exit(r, true) == EXIT_USAGE ? -EINVAL : failure_errno(r);
        }
        const MigPartedConfig *cfg = NULL;
        r = mig_config_find(m, a->config, &cfg, &err);
        if (r < 0) {
                if (err.hint == GV_HINT_MIG_LABEL)
                        log_error("%s holds %zu configurations: choose one with -c LABEL (%s%s)", a->file, m->n_configs,
                                  m->configs[0].label, m->n_configs > 1 ? ", ..." : "");
                else
                        log_error("%s", strna(gv_error_message(&err)));
                return -EINVAL;
        }
        *ret_m = TAKE_PTR(m);
        *ret_c = cfg;
        return 0;
}

static json_object *inst_brief(const MigGpu *g, int profile, unsigned start, int gi) {
        _cleanup_json_ json_object *o = json_object_new_object();
        json_object *pl = NULL;
        if (!jset(o, "profile", json_object_new_string(g->profiles[profile].name), false) ||
            !jset(o, "placement", pl = json_object_new_object(), false) ||
            !jset(pl, "start", json_object_new_int((int)start), false) ||
            !jset(pl, "size", json_object_new_int((int)g->profiles[profile].size), false) ||
            !jset(o, "gi_id", gi >= 0 ? json_object_new_int(gi) : NULL, gi < 0))
                return NULL;
        return TAKE_PTR(o);
}

static const char *const apply_state_table[] = {
        [MIG_APPLY_UNCHANGED] = "unchanged",         [MIG_APPLY_CHANGED] = "changed",
        [MIG_APPLY_PENDING_RESET] = "pending_reset", [MIG_APPLY_IN_USE] = "in_use",
        [MIG_APPLY_NEEDS_DISRUPT] = "needs_disrupt", [MIG_APPLY_FAILED] = "failed",
};

/* Apply what the configuration asks of one GPU (core: mig_apply_gpu) and render what it did or would do into
 * o; *oom is set when building o ran out of memory (o is then not to be printed). */
static int apply_gpu(Ctx *c, MigGpu *g, const MigPartedTarget *t, const MigArgs *a, json_object *o, bool *oom) {
        int rc = 0;
        MigApplyReport rep;
        int r = mig_apply_gpu(c->root, c->nvml, g, t->enabled, t->want, a->allow_disrupt, a->no_reset, &rep);
        bool ok = jset(o, "state", json_object_new_string(apply_state_table[rep.state]), false);
        if (rep.state == MIG_APPLY_UNCHANGED) {
                *oom = *oom || !ok;
                if (!arg.json)
                        printf("GPU %u (%s): already as configured, untouched\n", g->index, g->address);
                return 0;
        }
        if (!arg.json)
                printf("GPU %u (%s, %s):\n", g->index, g->address, g->name);
        json_object *kept = NULL, *destroyed = NULL, *created = NULL, *must_move = json_object_new_array();
        ok = ok && jset(o, "kept", kept = json_object_new_array(), false) &&
             jset(o, "destroyed", destroyed = json_object_new_array(), false) &&
             jset(o, "created", created = json_object_new_array(), false) && must_move;
        for (size_t i = 0; i < rep.n_actions; i++) {
                const MigAction *x = &rep.actions[i];
                const char *pname = x->profile >= 0 ? g->profiles[x->profile].name : NULL;
                switch (x->kind) {
                case MIG_ACTION_KEEP:
                        ok = jpush(kept, inst_brief(g, x->profile, x->start, x->gi_id)) && ok;
                        if (!arg.json)
                                printf("  keep    %s at %u:%u (GI %d)\n", pname, x->start, x->size, x->gi_id);
                        break;
                case MIG_ACTION_DESTROY:
                        if (rep.state == MIG_APPLY_NEEDS_DISRUPT) {
                                ok = jpush(must_move, inst_brief(g, x->profile, x->start, x->gi_id)) && ok;
                                log_error("GPU %u (%s): reaching the target needs %s at %u:%u (GI %d) moved: it would be "
                                          "destroyed and recreated elsewhere.",
                                          g->index, g->address, pname, x->start, x->size, x->gi_id);
                                break;
                        }
                        if (rep.state == MIG_APPLY_IN_USE && i + 1 == rep.n_actions) {
                                log_error("GPU %u (%s): %s (GI %d) would be destroyed but is in use by %s.", g->index,
                                          g->address, pname, x->gi_id, rep.holders);
                                break;
                        }
                        ok = jpush(destroyed, inst_brief(g, x->profile, x->start, x->gi_id)) && ok;
                        if (!arg.json)
                                printf("  destroy %s at %u:%u (GI %d)%s\n", pname, x->start, x->size, x->gi_id,
                                       x->moved ? ", to be recreated elsewhere (--allow-disrupt)" : "");
                        break;
                case MIG_ACTION_CREATE:
                        ok = jpush(created, inst_brief(g, x->profile, x->start, x->gi_id)) && ok;
                        if (!arg.json) {
                                printf("  create  %s at %u:%u", pname, x->start, x->size);
                                if (x->gi_id >= 0)
                                        printf(" (GI %d, %s)", x->gi_id, x->uuid);
                                printf("\n");
                        }
                        break;
                case MIG_ACTION_ENABLE:
                case MIG_ACTION_DISABLE:
                        if (!arg.json)
                                printf("  %s MIG\n", x->kind == MIG_ACTION_ENABLE ? "enable" : "disable");
                        break;
                case MIG_ACTION_RESET:
                        if (!arg.json)
                                printf("  reset %s\n", g->address);
                        break;
                }
        }
        switch (rep.state) {
        case MIG_APPLY_PENDING_RESET:
                if (!arg.json)
                        printf("  MIG mode change pending a GPU reset (--no-reset): gpuvirt mig reset %s, then apply again\n",
                               g->address);
                break;
        case MIG_APPLY_IN_USE:
                ok = jset(o, "holders", json_object_new_string(strna(rep.holders)), false) && ok;
                /* blocked at a destroy (said above) or at the reset a mode change needs */
                if (rep.n_actions == 0 || rep.actions[rep.n_actions - 1].kind != MIG_ACTION_DESTROY)
                        log_error("GPU %u (%s) needs a reset to change its MIG mode, but it is in use by %s. Stop them "
                                  "(systemctl stop nvidia-persistenced nvidia-dcgm; unload nvidia_drm), then apply again.",
                                  g->index, g->address, rep.holders);
                rc = -EBUSY;
                break;
        case MIG_APPLY_NEEDS_DISRUPT:
                ok = jset(o, "must_move", TAKE_PTR(must_move), false) && ok;
                log_error("Nothing changed on GPU %u; run again with --allow-disrupt to move them.", g->index);
                rc = -EBUSY;
                break;
        case MIG_APPLY_FAILED:
                if (r == -EINVAL || r == -ENOSPC) {
                        /* checked before the first write (migparted_target); a GPU that changed meanwhile */
                        log_error("%s:%u:%u: this layout does not fit GPU %u (%s, %s): %s", a->file, t->entry->line,
                                  t->entry->column, g->index, g->address, g->name, strna(gv_error_message(&rep.error)));
                        rc = -EINVAL;
                } else {
                        _cleanup_free_ char *why = error_text(&rep.error, r);
                        log_error("%s", why ?: "MIG apply failed");
                        rc = failure_errno(r);
                }
                break;
        default:
                break;
        }
        json_object_put(must_move);
        mig_apply_report_done(&rep);
        *oom = *oom || !ok;
        return rc;
}

/*
 * mig apply / mig assert: what the configuration asks of every GPU is resolved and checked first (profiles,
 * counts, placements, MIG capability: migparted_target), so a file that cannot be applied changes nothing.
 */
static int do_apply_assert(Ctx *c, const MigParted *m, const MigPartedConfig *cfg, const MigArgs *a,
                           bool assert_only) {
        _cleanup_(mig_config_plan_done) MigConfigPlan plan = {};
        _cleanup_(gv_error_done) GvError err = {};
        int r = mig_config_plan(m, cfg, c->gpus, c->n, assert_only, &plan, &err);
        for (size_t i = 0; i < plan.n; i++)
                if (plan.gpus[i].error.error) {
                        _cleanup_free_ char *why = error_text(&plan.gpus[i].error, -plan.gpus[i].error.error);
                        log_error("%s", strna(why));
                }
        if (r == -EINVAL)
                return -EINVAL; /* a target refused, said above: nothing was changed */
        if (r < 0) {
                _cleanup_free_ char *why = error_text(&err, r);
                return log_error("%s", strna(why)), failure_errno(r);
        }

        int rc = 0;
        _cleanup_json_ json_object *out = json_object_new_array();
        bool oom = !out;
        size_t differ = 0;
        for (size_t i = 0; i < c->n && rc == 0; i++) {
                MigGpu *g = &c->gpus[i];
                const MigPartedTarget *t = &plan.gpus[i].target;
                MigConfigVerdict v = mig_config_verdict(g, t, assert_only);
                if (v == MIG_CONFIG_LOST) {
                        differ++;
                        continue;
                }
                if (v == MIG_CONFIG_LEFT_ALONE)
                        continue;
                json_object *o = json_object_new_object();
                if (!jpush(out, o) || !jset(o, "index", json_object_new_int((int)g->index), false) ||
                    !jset(o, "address", json_object_new_string(g->address), false)) {
                        oom = true;
                        o = NULL; /* taken by jpush(), released with out; every jset() below fails */
                }
                if (v == MIG_CONFIG_SKIPPED) {
                        if (!jset(o, assert_only ? "matches" : "state",
                                  assert_only ? json_object_new_boolean(true) : json_object_new_string("skipped"), false) ||
                            !jset(o, "reason", json_object_new_string("not MIG-capable"), false))
                                oom = true;
                        if (!arg.json && !assert_only)
                                printf("GPU %u (%s, %s): skipped, not MIG-capable\n", g->index, g->address, g->name);
                        continue;
                }
                if (assert_only) {
                        bool ok = v == MIG_CONFIG_MATCHES;
                        if (!jset(o, "matches", json_object_new_boolean(ok), false) ||
                            !jset(o, "reason",
                                  ok ? NULL : json_object_new_string(v == MIG_CONFIG_UNMATCHED ? "unmatched" : "differs"), ok))
                                oom = true;
                        if (ok)
                                continue;
                        differ++;
                        if (arg.json)
                                continue;
                        if (v == MIG_CONFIG_UNMATCHED)
                                printf("GPU %u (%s): MIG-capable, but no entry of '%s' selects it\n", g->index, g->address,
                                       cfg->label);
                        else
                                printf("GPU %u (%s): not as configured (MIG %s%s, %zu instance(s))\n", g->index, g->address,
                                       mode_str(g->mode_current), g->mode_pending != g->mode_current ? ", change pending" : "",
                                       g->n_inst);
                        continue;
                }
                rc = apply_gpu(c, g, t, a, o, &oom); /* o NULL (out of memory): applied all the same */
        }
        if (oom && arg.json) { /* no JSON that lacks parts: what was done is said by the host */
                (void)print_json(NULL);
                return rc ?: -ENOMEM;
        }
        if (arg.json)
                json_print(out, stdout);
        if (rc)
                return rc;
        if (assert_only) {
                if (!arg.json)
                        printf(differ ? "Configuration '%s' is not applied (%zu GPU(s) differ).\n"
                                      : "Configuration '%s' is applied.\n", cfg->label, differ);
                return differ ? VERB_CHECK_FAILED : 0; /* a failed check, not a failed operation */
        }
        if (plan.selected == 0 && !arg.json)
                printf("Configuration '%s' selects none of the %zu GPU(s) NVML sees (device-filter, devices): nothing to "
                       "do.\n", cfg->label, c->n);
        return 0;
}

static int do_export(Ctx *c, const MigArgs *a) {
        int r = mig_config_export(stdout, a->config ?: "current", c->gpus, c->n);
        return r < 0 ? failure_errno(r) : 0; /* as before: a failed write of stdout exits 1 without a message */
}

int verb_mig(int argc, char **argv) {
        static const struct option opts[] = {
                {"placement", required_argument, NULL, OPT_PLACEMENT},
                {"count", required_argument, NULL, OPT_COUNT},
                {"gi", required_argument, NULL, OPT_GI},
                {"all", no_argument, NULL, OPT_ALL},
                {"force", no_argument, NULL, OPT_FORCE},
                {"allow-disrupt", no_argument, NULL, OPT_ALLOW_DISRUPT},
                {"no-reset", no_argument, NULL, OPT_NO_RESET},
                {"file", required_argument, NULL, 'f'},
                {"config", required_argument, NULL, 'c'},
                {},
        };
        static const char *const subs = "status, profiles, enable, disable, create, destroy, reset, apply, assert, export";
        if (argc < 2)
                return usage_error("mig: expected a command: %s", subs), -EINVAL;
        const char *sub = argv[1];
        MigArgs a = {.placement = -1, .count = 1, .gi = -1};
        int k = parse_verb_options(argc - 1, argv + 1, opts, "f:c:", mig_opt, &a);
        if (k < 0 || a.bad)
                return -EINVAL; /* said by parse_verb_options() or mig_opt() */
        int first = k + 1, npos = argc - first;
        bool needs_bdf = streq(sub, "profiles") || streq(sub, "enable") || streq(sub, "disable") || streq(sub, "reset") ||
                         streq(sub, "destroy");
        if (needs_bdf && npos != 1)
                return usage_error("mig %s: expected one GPU address", sub), -EINVAL;
        if (streq(sub, "create") && npos != 2)
                return usage_error("mig create: expected BDF PROFILE [--placement START] [--count N]"), -EINVAL;
        if (streq(sub, "create") && a.count < 1)
                return usage_error("mig create: --count must be at least 1"), -EINVAL;
        if (streq(sub, "destroy") && a.all == (a.gi >= 0))
                return usage_error("mig destroy: give --gi ID or --all"), -EINVAL;
        if ((streq(sub, "apply") || streq(sub, "assert") || streq(sub, "export")) && npos != 0)
                return usage_error("mig %s: unexpected argument '%s'", sub, argv[first]), -EINVAL;
        bool mutating = streq(sub, "enable") || streq(sub, "disable") || streq(sub, "create") || streq(sub, "destroy") ||
                        streq(sub, "reset");
        if (!needs_bdf && !mutating && !streq(sub, "status") && !streq(sub, "apply") && !streq(sub, "assert") &&
            !streq(sub, "export"))
                return usage_error("mig: unknown command '%s' (%s)", sub, subs), -EINVAL;
        if ((streq(sub, "apply") || streq(sub, "assert")) && !a.file)
                return usage_error("mig %s: expected -f FILE [-c LABEL]", sub), -EINVAL;

        /* the file first: input that is refused changes nothing, not even the host lock */
        _cleanup_migparted_free_ MigParted *m = NULL;
        const MigPartedConfig *cfg = NULL;
        int rc;
        if ((streq(sub, "apply") || streq(sub, "assert")) && (rc = load_config(&a, &m, &cfg)))
                return rc;
        Ctx c;
        rc = ctx_open(&c);
        if (rc) {
                ctx_done(&c);
                return rc;
        }
        MigGpu *g = NULL;
        if (needs_bdf || streq(sub, "create"))
                rc = ctx_gpu(&c, argv[first], &g);
        if (rc == 0) {
                if (streq(sub, "status"))
                        rc = do_status(&c, argc, argv, first);
                else if (streq(sub, "profiles"))
                        rc = do_profiles(&c, g);
                else if (streq(sub, "enable") || streq(sub, "disable"))
                        rc = do_mode(&c, g, streq(sub, "enable"));
                else if (streq(sub, "reset"))
                        rc = do_reset(&c, g);
                else if (streq(sub, "create"))
                        rc = do_create(&c, g, argv[first + 1], &a);
                else if (streq(sub, "destroy"))
                        rc = do_destroy(&c, g, &a);
                else if (streq(sub, "apply") || streq(sub, "assert"))
                        rc = do_apply_assert(&c, m, cfg, &a, streq(sub, "assert"));
                else
                        rc = do_export(&c, &a);
        }
        ctx_done(&c);
        return rc;
}
