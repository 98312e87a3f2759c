/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <json-c/json.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "core/mig/mig.h"
#include "core/mig/migparted.h"
#include "core/mig/nvml.h"
#include "core/passthrough/vfio.h"
#include "core/sriov/sriov.h"
#include "core/state/hoststate.h"
#include "core/state/state-internal.h"
#include "core/store/statefile.h"
#include "core/vgpu/mdev.h"
#include "core/vgpu/vendor-vgpu.h"

/* A step as the journal holds it (step_json()): every field checked before the step can be run again. */
typedef struct StepRecord {
        const char *action, *device, *description, *type;
        unsigned vfs, count, total;
        bool vfio, force;
        char **include, **units;
        json_object *mig, *mig_at;
} StepRecord;

static bool is_step_kind(const char *s) {
        return step_kind_from_string(s) >= 0;
}

static bool is_vgpu_type(const char *s) {
        return mdev_type_valid(s); /* an mdev type id, or a vendor vGPU type's number */
}


/* A vGPU's identity: its mdev UUID (lower case, as the kernel names it), or a vendor vGPU's VF address. */
static bool is_vgpu_id(const char *s) {
        return mdev_uuid_is_canonical(s) || pci_addr_is_canonical(s);
}

static bool is_mig_profile_name(const char *s) {
        return !isempty(s) && strlen(s) < sizeof ((StepMigAt *)NULL)->profile && string_is_printable(s);
}

static const JsonField step_fields[] = {
        {"action", JSON_KIND_STRING, JSON_MANDATORY, offsetof(StepRecord, action), .valid = is_step_kind,
         .what = "a step (bind-vfio, sriov-set, ...)"},
        {"device", JSON_KIND_STRING, JSON_MANDATORY, offsetof(StepRecord, device), .valid = pci_addr_is_canonical,
         .what = "a PCI address (0000:3b:00.0)"},
        {"description", JSON_KIND_STRING, 0, offsetof(StepRecord, description), .valid = is_any},
        {"vfs", JSON_KIND_UINT, 0, offsetof(StepRecord, vfs), .max = 0xffff},
        {"vfio", JSON_KIND_BOOL, 0, offsetof(StepRecord, vfio)},
        {"force", JSON_KIND_BOOL, 0, offsetof(StepRecord, force)},
        {"include", JSON_KIND_STRV, 0, offsetof(StepRecord, include), .valid = pci_addr_is_canonical,
         .what = "a list of PCI addresses (0000:3b:00.0)"},
        {"mig", JSON_KIND_OBJECT, 0, offsetof(StepRecord, mig)},
        {"type", JSON_KIND_STRING, JSON_NULLABLE, offsetof(StepRecord, type), .valid = is_vgpu_type,
         .what = "a vGPU type id"},
        {"count", JSON_KIND_UINT, 0, offsetof(StepRecord, count), .max = VGPU_MAX_INDEX},
        {"total", JSON_KIND_UINT, 0, offsetof(StepRecord, total), .max = VGPU_MAX_INDEX},
        {"units", JSON_KIND_STRV, 0, offsetof(StepRecord, units), .valid = is_vgpu_id,
         .what = "a list of vGPUs (mdev UUIDs in lower case, or VF addresses)"},
        {"mig_at", JSON_KIND_ARRAY, 0, offsetof(StepRecord, mig_at)},
        {},
};

typedef struct MigAtRecord {
        const char *profile;
        unsigned start;
} MigAtRecord;

static const JsonField mig_at_fields[] = {
        {"profile", JSON_KIND_STRING, JSON_MANDATORY, offsetof(MigAtRecord, profile), .valid = is_mig_profile_name,
         .what = "a MIG profile name (3g.20gb)"},
        {"start", JSON_KIND_UINT, JSON_MANDATORY, offsetof(MigAtRecord, start), .max = MIG_MAX_SLICES - 1},
        {},
};

typedef struct JournalRecord {
        json_object *step;
        int64_t started;
} JournalRecord;

static const JsonField journal_fields[] = {
        {"step", JSON_KIND_OBJECT, JSON_MANDATORY, offsetof(JournalRecord, step)},
        {"started", JSON_KIND_INT64, 0, offsetof(JournalRecord, started)},
        {},
};

/* Rebuild a step from its JSON (the journal). */
static int step_from_json(const char *file, json_object *o, Step *ret, char **ret_error) {
        StepRecord rec = {};
        _cleanup_(gv_error_done) GvError e = {};
        int r = json_dispatch(file, o, step_fields, 0, &rec, &e);
        *ret_error = TAKE_PTR(e.message);
        if (r < 0)
                return r;
        Step s = {.kind = step_kind_from_string(rec.action), .vfs = rec.vfs, .vfio = rec.vfio, .force = rec.force,
                  .count = rec.count, .total = rec.total, .include = TAKE_PTR(rec.include), .units = TAKE_PTR(rec.units)};
        if (!json_object_object_get_ex(o, "total", NULL)) /* a journal written before steps carried their total */
                s.total = s.count;
        if (s.units) {
                /* the sequence a vGPU step converges in: distinct identities, total of them at most */
                size_t n = strv_length(s.units);
                bool dup = false;
                for (size_t i = 0; i < n && !dup; i++)
                        for (size_t k = i + 1; k < n && !dup; k++)
                                dup = streq(s.units[i], s.units[k]);
                if (dup || n > VGPU_MAX_INDEX || s.total > n ||
                    (s.kind != STEP_VGPU_CREATE && s.kind != STEP_VGPU_REMOVE) || !rec.type) {
                        *ret_error = strdup_printf("%s: 'units' must list at most %d distinct vGPUs of a vGPU step of "
                                                   "one type, at least 'total' (%u) of them",
                                                   file, VGPU_MAX_INDEX, s.total);
                        return step_done(&s), -EBADMSG;
                }
        }
        snprintf(s.device, sizeof s.device, "%s", rec.device);
        if (rec.type && !(s.vgpu_type = strdup(rec.type)))
                return step_done(&s), -ENOMEM;
        if (rec.mig) {
                size_t cap = (size_t)json_object_object_length(rec.mig);
                if (cap > MIGPARTED_PROFILES_MAX) {
                        *ret_error = strdup_printf("%s: 'mig' names %zu profiles, more than any GPU has", file, cap);
                        return step_done(&s), -EBADMSG;
                }
                s.mig_counts = calloc(cap ?: 1, sizeof(unsigned));
                if (!s.mig_counts)
                        return step_done(&s), -ENOMEM;
                json_object_object_foreach(rec.mig, k, v) {
                        int64_t c = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
                        if (!string_is_printable(k) || isempty(k) || c < 0 || c > MIG_MAX_INSTANCES) {
                                *ret_error = strdup_printf("%s: 'mig' must map MIG profile names to counts from 0 to %d",
                                                           file, MIG_MAX_INSTANCES);
                                return step_done(&s), -EBADMSG;
                        }
                        size_t np = s.n_mig;
                        char *name = strdup(k);
                        if (!name || strv_push(&s.mig_profiles, &np, name) < 0)
                                return step_done(&s), -ENOMEM;
                        s.mig_counts[s.n_mig++] = (unsigned)c;
                }
        }
        if (rec.mig_at) {
                /* pinned instances: each one of a profile the step counts, within its count */
                size_t n = json_object_array_length(rec.mig_at);
                if (n > MIG_MAX_INSTANCES || s.kind != STEP_MIG_APPLY) {
                        *ret_error = strdup_printf("%s: 'mig_at' must list at most %d instances of a mig-apply step",
                                                   file, MIG_MAX_INSTANCES);
                        return step_done(&s), -EBADMSG;
                }
                if (n && !(s.mig_at = calloc(n, sizeof *s.mig_at)))
                        return step_done(&s), -ENOMEM;
                for (size_t i = 0; i < n; i++) {
                        MigAtRecord at = {};
                        r = json_dispatch(file, json_object_array_get_idx(rec.mig_at, i), mig_at_fields, 0, &at, &e);
                        *ret_error = TAKE_PTR(e.message);
                        if (r < 0)
                                return step_done(&s), r;
                        size_t k = 0, pinned = 0;
                        while (k < s.n_mig && !streq(s.mig_profiles[k], at.profile))
                                k++;
                        for (size_t j = 0; j < s.n_mig_at; j++)
                                pinned += streq(s.mig_at[j].profile, at.profile);
                        if (k == s.n_mig || pinned + 1 > s.mig_counts[k]) {
                                *ret_error = strdup_printf("%s: 'mig_at' pins more %s instances than 'mig' counts",
                                                           file, at.profile);
                                return step_done(&s), -EBADMSG;
                        }
                        snprintf(s.mig_at[i].profile, sizeof s.mig_at[i].profile, "%s", at.profile);
                        s.mig_at[i].start = at.start;
                        s.n_mig_at++;
                }
        }
        *ret = s;
        return 0;
}

int host_journal_read(Root *root, Step *ret, GvError *err) {
        json_object *o = NULL;
        JournalRecord rec = {};
        int r = state_read_record(root, journal_fields, &rec, &o, err, HOST_JOURNAL_FILE);
        if (r < 0)
                return r;
        _cleanup_free_ char *file = root_path(root, HOST_JOURNAL_FILE);
        char *why = NULL;
        r = file ? step_from_json(file, rec.step, ret, &why) : -ENOMEM;
        json_object_put(o);
        return r < 0 ? gv_error_take(err, r, NULL, "parse", GV_HINT_NONE, why) : r;
}

/* ---- carrying steps out ---- */

/* Converge to s->total units: the missing identities of the sequence are created, lowest rank first, until
 * there are that many (units made before a crash count, so running it again never makes more). A vendor
 * vGPU without named VFs takes the driver's first free VF. */
static int run_vgpu_create(Root *root, const Step *s, char **err) {
        _cleanup_free_ Unit *have = NULL;
        size_t n = 0;
        int r = vgpu_units(root, s, &have, &n);
        if (r < 0)
                return r;
        bool vendor = vendor_vgpu_is_parent(root, s->device);
        if (vendor && !s->units) {
                for (; n < s->total; n++) {
                        _cleanup_free_ char *vf = NULL;
                        unsigned type = 0;
                        _cleanup_(gv_error_done) GvError e = {};
                        r = vendor_vgpu_create(root, s->device, s->vgpu_type, &vf, &type, &e);
                        *err = TAKE_PTR(e.message);
                        if (r < 0)
                                return r;
                }
                return 0;
        }
        size_t n_have = n;
        for (unsigned idx = 0; n < s->total && idx < VGPU_MAX_INDEX && (!s->units || s->units[idx]); idx++) {
                bool exists = false;
                for (size_t k = 0; k < n_have && !exists; k++)
                        exists = have[k].rank == (int)idx;
                if (exists)
                        continue;
                char uuid[MDEV_UUID_STRLEN];
                if (!s->units)
                        vgpu_uuid(s->device, idx, uuid);
                const char *id = s->units ? s->units[idx] : uuid;
                _cleanup_(gv_error_done) GvError e = {};
                if (vendor) {
                        _cleanup_free_ char *vf = NULL;
                        unsigned type = 0;
                        r = vendor_vgpu_create(root, id, s->vgpu_type, &vf, &type, &e);
                } else
                        r = mdev_create(root, s->device, s->vgpu_type, id, NULL, 0, &e);
                *err = TAKE_PTR(e.message);
                if (r < 0)
                        return r;
                n++;
        }
        return n >= s->total ? 0 : -EUSERS;
}

/* Converge to s->total units by removing from the end: units outside the sequence first (made outside the
 * file, or not named), then the highest ranks (3 -> 2 removes index 2; the VM using index 1 keeps its vGPU). */
static int run_vgpu_remove(Root *root, const Step *s, char **err) {
        _cleanup_free_ Unit *have = NULL;
        size_t n = 0;
        int r = vgpu_units(root, s, &have, &n);
        if (r < 0)
                return r;
        for (; n > s->total; n--) {
                const Unit *u = &have[n - 1];
                _cleanup_(gv_error_done) GvError e = {};
                r = u->vendor ? vendor_vgpu_remove(root, u->id, true, &e) : mdev_remove(root, u->id, false, &e);
                if (r < 0 && r != -ENOENT) {
                        *err = gv_error_steal_message(&e);
                        return r;
                }
        }
        return 0;
}

static int run_mig(Root *root, const Step *s, char **err) {
        _cleanup_nvml_close_ Nvml *n = NULL;
        _cleanup_(gv_error_done) GvError nerr = {};
        int r = nvml_open(root, &n, &nerr);
        if (r < 0)
                return *err = TAKE_PTR(nerr.message), r;
        /* only the step's GPU: the others are other steps' */
        MigGpu one;
        r = mig_gpu_read(n, s->device, &one);
        if (r == -ENODEV)
                return *err = strdup_printf("NVML does not report %s", s->device), -ENODEV;
        if (r < 0)
                return r;
        MigGpu *g = &one;
        unsigned want[MIG_MAX_PROFILES] = {};
        for (size_t i = 0; i < s->n_mig; i++) {
                int pi = mig_profile_find(g, s->mig_profiles[i]);
                if (pi < 0)
                        return *err = strdup_printf("no MIG profile %s on %s", s->mig_profiles[i], s->device), -ENOENT;
                want[pi] = s->mig_counts[i];
        }
        MigPlanCreate pins[MIG_MAX_INSTANCES];
        size_t n_pins = 0;
        for (size_t i = 0; i < s->n_mig_at && n_pins < MIG_MAX_INSTANCES; i++) {
                int pi = mig_profile_find(g, s->mig_at[i].profile);
                if (pi < 0)
                        return *err = strdup_printf("no MIG profile %s on %s", s->mig_at[i].profile, s->device), -ENOENT;
                pins[n_pins++] = (MigPlanCreate){pi, s->mig_at[i].start};
        }
        MigApplyReport rep;
        r = mig_apply_gpu_pinned(root, n, g, s->kind == STEP_MIG_APPLY, want, pins, n_pins, true, false, &rep);
        if (r < 0 || rep.state == MIG_APPLY_IN_USE)
                *err = rep.state == MIG_APPLY_IN_USE ? strdup_printf("%s is in use by %s", s->device, strna(rep.holders))
                                                     : strdup(gv_error_message(&rep.error) ?: "MIG apply failed");
        mig_apply_report_done(&rep);
        return r;
}

static int run_step(Root *root, const Step *s, char **err) {
        VfioOptions vo = {.force = s->force, .include = s->include, .settle_ms = 2000};
        VfioReport vr;
        SriovReport sr;
        int r;
        switch (s->kind) {
        case STEP_BIND_VFIO:
                r = vfio_enable(root, s->device, &vo, &vr);
                if (r < 0)
                        *err = vr.error.error ? strdup(gv_error_message(&vr.error)) : NULL;
                vfio_report_done(&vr);
                return r;
        case STEP_RELEASE_VFIO:
                vo.force = false;
                r = vfio_disable(root, s->device, &vo, &vr);
                if (r < 0)
                        *err = vr.error.error ? strdup(gv_error_message(&vr.error)) : NULL;
                vfio_report_done(&vr);
                return r;
        case STEP_SRIOV_SET: {
                SriovOptions so = {.vfio = s->vfio, .settle_ms = 5000};
                r = sriov_set(root, s->device, s->vfs, &so, &sr);
                if (r < 0)
                        *err = sr.error.error ? strdup(gv_error_message(&sr.error)) : NULL;
                sriov_report_done(&sr);
                return r;
        }
        case STEP_MIG_APPLY:
        case STEP_MIG_DISABLE:
                return run_mig(root, s, err);
        case STEP_VGPU_CREATE:
                return run_vgpu_create(root, s, err);
        case STEP_VGPU_REMOVE:
                return run_vgpu_remove(root, s, err);
        default:
                return -EINVAL;
        }
}

static int journal_write(Root *root, const Step *s) {
        json_object *o = json_object_new_object();
        if (!o || json_add(o, "step", step_json(s)) < 0 ||
            json_add(o, "started", json_object_new_int64((int64_t)time(NULL))) < 0) {
                json_object_put(o);
                return -ENOMEM;
        }
        int r = state_write_json(root, o, HOST_JOURNAL_FILE);
        json_object_put(o);
        return r;
}

int host_apply(Root *root, const Plan *p, size_t *ret_done, GvError *err) {
        *ret_done = 0;
        for (size_t i = 0; i < p->n_steps; i++) {
                const Step *s = &p->steps[i];
                int r = journal_write(root, s);
                if (r < 0)
                        return gv_error_set(err, r, s->device, "journal",
                                            "cannot write the journal " HOST_JOURNAL_FILE ": %s", errno_message(r));
                char *why = NULL;
                r = run_step(root, s, &why);
                if (r < 0) {
                        _cleanup_free_ char *d = step_describe(s);
                        gv_error_set(err, r, s->device, step_kind_to_string(s->kind), "step %zu/%zu (%s) failed: %s",
                                     i + 1, p->n_steps, strna(d), why ?: errno_message(r));
                        free(why);
                        /* the step left its devices as they were: nothing to finish */
                        (void)root_write_file(root, NULL, HOST_JOURNAL_FILE);
                        return r;
                }
                free(why);
                (*ret_done)++;
        }
        (void)root_write_file(root, NULL, HOST_JOURNAL_FILE);
        return 0;
}

int host_recover(Root *root, char **ret_step, char ***ret_restored, GvError *err) {
        *ret_step = NULL;
        *ret_restored = NULL;
        Step s = {};
        _cleanup_(gv_error_done) GvError bad = {};
        int r = host_journal_read(root, &s, &bad);
        if (r < 0 && r != -ENOENT)
                return gv_error_set(err, r, NULL, "journal", "the journal is damaged (%s); remove it and run 'gpuvirt apply'",
                                    bad.message ?: errno_message(r));
        if (r >= 0) {
                /* NULL says "no interrupted step": a description lost to a failed allocation must not */
                if (!(*ret_step = step_describe(&s)))
                        return step_done(&s), gv_error_set(err, -ENOMEM, NULL, NULL, NULL);
                char *why = NULL;
                /* Every step converges when run again: this finishes the interrupted one. */
                r = run_step(root, &s, &why);
                if (r < 0 && s.kind == STEP_BIND_VFIO) {
                        /* cannot finish: roll back, so no function stays half moved */
                        VfioOptions vo = {.settle_ms = 2000};
                        VfioReport vr;
                        (void)vfio_disable(root, s.device, &vo, &vr);
                        vfio_report_done(&vr);
                }
                if (r < 0)
                        gv_error_set(err, r, s.device, step_kind_to_string(s.kind),
                                     "the interrupted step could not be finished: %s", why ?: errno_message(r));
                else
                        (void)root_write_file(root, NULL, HOST_JOURNAL_FILE);
                free(why);
                step_done(&s);
                if (r < 0)
                        return r;
        }
        /* A device left with no driver (a crash between unbind and bind, a rollback that failed) goes back to
         * the driver its record names, whatever step (if any) the journal held. */
        char *why = NULL;
        r = vfio_restore_lost(root, ret_restored, &why);
        return r < 0 ? gv_error_take(err, r, NULL, "restore", GV_HINT_NONE, why) : r;
}
