/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <json-c/json.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "core/state/hoststate.h"
#include "core/host/inventory.h"
#include "core/host/iommu.h"
#include "core/vgpu/mdev.h"
#include "core/mig/mig.h"
#include "core/mig/migparted.h"
#include "core/mig/nvml.h"
#include "core/sriov/sriov.h"
#include "core/store/statefile.h"
#include "core/vgpu/vendor-vgpu.h"
#include "core/passthrough/vfio.h"
#include "core/vgpu/vgpu-types.h"

static const char *const step_kind_table[_STEP_KIND_MAX] = {
        [STEP_VGPU_REMOVE] = "vgpu-remove", [STEP_MIG_DISABLE] = "mig-disable", [STEP_RELEASE_VFIO] = "release-vfio",
        [STEP_SRIOV_SET] = "sriov-set",     [STEP_BIND_VFIO] = "bind-vfio",     [STEP_MIG_APPLY] = "mig-apply",
        [STEP_VGPU_CREATE] = "vgpu-create",
};

const char *step_kind_to_string(StepKind k) {
        return k >= 0 && k < _STEP_KIND_MAX ? step_kind_table[k] : NULL;
}

static StepKind step_kind_from_string(const char *s) {
        for (int i = 0; i < _STEP_KIND_MAX; i++)
                if (s && streq(s, step_kind_table[i]))
                        return (StepKind)i;
        return _STEP_KIND_INVALID;
}

void step_done(Step *s) {
        strv_free(s->include);
        strv_free(s->mig_profiles);
        free(s->mig_counts);
        free(s->mig_at);
        free(s->vgpu_type);
        strv_free(s->units);
        *s = (Step){};
}

Plan *plan_free(Plan *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_steps; i++)
                step_done(&p->steps[i]);
        free(p->steps);
        free(p);
        return NULL;
}

/* The units a vGPU step names, for its description: "", or ", of vGPUs U1 ..." */
static char *named_units(const Step *s) {
        if (!s->units || !s->units[0])
                return strdup("");
        return strdup_printf(", of vGPUs %s%s", s->units[0], s->units[1] ? " ..." : "");
}

char *step_describe(const Step *s) {
        _cleanup_free_ char *named = NULL;
        switch (s->kind) {
        case STEP_VGPU_REMOVE:
                if (!s->vgpu_type)
                        return strdup_printf("remove every vGPU on %s", s->device);
                named = named_units(s);
                return strdup_printf("remove %u vGPU(s) of type %s on %s (%u left%s)", s->count, s->vgpu_type,
                                     s->device, s->total, named ?: "");
        case STEP_MIG_DISABLE:
                return strdup_printf("disable MIG on %s (destroying its instances)", s->device);
        case STEP_RELEASE_VFIO:
                return strdup_printf("give %s and its group back to their host drivers", s->device);
        case STEP_SRIOV_SET:
                return strdup_printf("set %u VF(s) on %s%s", s->vfs, s->device, s->vfio && s->vfs ? ", bound to vfio-pci" : "");
        case STEP_BIND_VFIO:
                return strdup_printf("bind %s and its group to vfio-pci%s", s->device, s->force ? " (forced)" : "");
        case STEP_MIG_APPLY: {
                _cleanup_free_ char *layout = strdup("");
                for (size_t i = 0; i < s->n_mig && layout; i++) {
                        char *x = strdup_printf("%s%s%u x %s", layout, i ? ", " : "", s->mig_counts[i], s->mig_profiles[i]);
                        free(layout);
                        layout = x;
                }
                for (size_t i = 0; i < s->n_mig_at && layout; i++) {
                        char *x = strdup_printf("%s%s%s at %u", layout, i ? ", " : " (", s->mig_at[i].profile,
                                                s->mig_at[i].start);
                        free(layout);
                        layout = x;
                }
                return strdup_printf("MIG on %s: %s%s", s->device, *strna(layout) ? layout : "enabled, no instances",
                                     s->n_mig_at ? ")" : "");
        }
        case STEP_VGPU_CREATE:
                named = named_units(s);
                return strdup_printf("create %u vGPU(s) of type %s on %s (%u in all%s)", s->count, s->vgpu_type,
                                     s->device, s->total, named ?: "");
        default:
                return strdup("?");
        }
}

json_object *step_json(const Step *s) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "action", json_object_new_string(step_kind_to_string(s->kind)));
        json_object_object_add(o, "device", json_object_new_string(s->device));
        _cleanup_free_ char *d = step_describe(s);
        json_object_object_add(o, "description", json_object_new_string(strna(d)));
        switch (s->kind) {
        case STEP_SRIOV_SET:
                json_object_object_add(o, "vfs", json_object_new_int((int)s->vfs));
                json_object_object_add(o, "vfio", json_object_new_boolean(s->vfio));
                break;
        case STEP_BIND_VFIO: {
                json_object_object_add(o, "force", json_object_new_boolean(s->force));
                json_object *inc = json_object_new_array();
                for (char **i = s->include; i && *i; i++)
                        json_object_array_add(inc, json_object_new_string(*i));
                json_object_object_add(o, "include", inc);
                break;
        }
        case STEP_MIG_APPLY: {
                json_object *m = json_object_new_object();
                for (size_t i = 0; i < s->n_mig; i++)
                        json_object_object_add(m, s->mig_profiles[i], json_object_new_int((int)s->mig_counts[i]));
                json_object_object_add(o, "mig", m);
                if (s->n_mig_at) {
                        json_object *at = json_object_new_array();
                        for (size_t i = 0; i < s->n_mig_at; i++) {
                                json_object *x = json_object_new_object();
                                json_object_object_add(x, "profile", json_object_new_string(s->mig_at[i].profile));
                                json_object_object_add(x, "start", json_object_new_int((int)s->mig_at[i].start));
                                json_object_array_add(at, x);
                        }
                        json_object_object_add(o, "mig_at", at);
                }
                break;
        }
        case STEP_VGPU_CREATE:
        case STEP_VGPU_REMOVE:
                json_object_object_add(o, "type", s->vgpu_type ? json_object_new_string(s->vgpu_type) : NULL);
                json_object_object_add(o, "count", json_object_new_int((int)s->count));
                json_object_object_add(o, "total", json_object_new_int((int)s->total));
                if (s->units) {
                        json_object *u = json_object_new_array();
                        for (char **i = s->units; *i; i++)
                                json_object_array_add(u, json_object_new_string(*i));
                        json_object_object_add(o, "units", u);
                }
                break;
        default:
                break;
        }
        return o;
}

json_object *plan_json(const Plan *p) {
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < p->n_steps; i++)
                json_object_array_add(a, step_json(&p->steps[i]));
        return a;
}

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

static bool is_any(const char *s) {
        return strlen(s) <= 4096;
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
        int r = json_dispatch(file, o, step_fields, 0, &rec, ret_error);
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
                        if (strv_push(&s.mig_profiles, &np, strdup(k)) < 0)
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
                        r = json_dispatch(file, json_object_array_get_idx(rec.mig_at, i), mig_at_fields, 0, &at,
                                          ret_error);
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

int host_journal_read(Root *root, Step *ret, char **ret_error) {
        *ret_error = NULL;
        json_object *o = NULL;
        JournalRecord rec = {};
        int r = state_read_record(root, journal_fields, &rec, &o, ret_error, HOST_JOURNAL_FILE);
        if (r < 0)
                return r;
        _cleanup_free_ char *file = root_path(root, HOST_JOURNAL_FILE);
        r = file ? step_from_json(file, rec.step, ret, ret_error) : -ENOMEM;
        json_object_put(o);
        return r;
}

/* ---- observing the host ---- */

typedef GpuObservation Observed;
typedef HostObservation Host;

static void host_done(Host *h) {
        pci_host_free(h->pci);
        free(h->mig);
        nvml_close(h->nvml);
        mdev_list_free(h->mdevs, h->n_mdevs);
        vendor_vgpu_units_free(h->units, h->n_units);
}

static int host_load(Root *root, Host *h) {
        *h = (Host){.root = root};
        int r = pci_host_scan(root, &h->pci);
        if (r < 0)
                return r;
        if (nvml_open(root, &h->nvml, NULL) >= 0 && mig_gpus_read(h->nvml, &h->mig, &h->n_mig) < 0)
                h->n_mig = 0;
        (void)mdev_list(root, &h->mdevs, &h->n_mdevs);
        (void)vendor_vgpu_units(root, &h->units, &h->n_units);
        return 0;
}

/* include: the foreign group members the entry moves along (passthrough), judged with the GPU. */
static int observe(const Host *h, const PciDevice *d, char *const *include, Observed *o) {
        *o = (Observed){.mode = GPU_MODE_HOST};
        int r = vfio_group_state(h->root, h->pci, d, include, &o->group);
        if (r < 0)
                return r;
        _cleanup_free_ char *saved = !d->driver ? vfio_saved_driver(h->root, d->addr) : NULL;
        o->lost = saved != NULL;
        for (size_t i = 0; i < h->n_mig; i++)
                if (streq(h->mig[i].address, d->addr))
                        o->mig = &h->mig[i];
        if (o->mig && o->mig->capable && o->mig->mode_current == NVML_DEVICE_MIG_ENABLE)
                o->mode = GPU_MODE_MIG;
        /* vGPUs: mdevs on the GPU, or vendor vGPU types set on its VFs */
        for (size_t i = 0; i < h->n_mdevs; i++) {
                const MdevDevice *m = &h->mdevs[i];
                if (!m->active || !m->parent || !streq(m->parent, d->addr) || !m->type)
                        continue;
                if (!o->vgpu_type && !(o->vgpu_type = strdup(m->type)))
                        return -ENOMEM;
                if (streq(o->vgpu_type, m->type))
                        o->vgpu_count++;
        }
        for (size_t i = 0; i < h->n_units; i++) {
                const VendorVgpuUnit *u = &h->units[i];
                if (!u->active || !streq(u->pf, d->addr))
                        continue;
                o->vendor_vgpu = true;
                if (!o->vgpu_type && !(o->vgpu_type = strdup_printf("%u", u->type)))
                        return -ENOMEM;
                o->vgpu_count++;
        }
        if (o->vgpu_count > 0)
                o->mode = GPU_MODE_VGPU;
        if (d->sriov_numvfs > 0) {
                o->vfs = (unsigned)d->sriov_numvfs;
                o->vfs_vfio = true;
                for (size_t i = 0; i < h->pci->n_devices; i++) {
                        const PciDevice *vf = &h->pci->devices[i];
                        if (vf->physfn && streq(vf->physfn, d->addr) && !vf->is_vfio)
                                o->vfs_vfio = false;
                }
                if (o->mode == GPU_MODE_HOST)
                        o->mode = GPU_MODE_SRIOV;
        }
        if (d->is_vfio)
                o->mode = GPU_MODE_PASSTHROUGH;
        return 0;
}

/* Passthrough is done when the GPU and every judged member of its group are on vfio-pci (or on no driver,
 * as functions that never had one); a member on a host driver or one that lost its driver is not. */
static bool group_passed_through(const Observed *o) {
        return o->mode == GPU_MODE_PASSTHROUGH && o->group.n_host == 0 && o->group.n_lost == 0;
}

/* Anything of the group on vfio-pci, or lost on the way: a release (to the recorded drivers) is due. */
static bool group_touched(const Observed *o) {
        return o->mode == GPU_MODE_PASSTHROUGH || o->group.n_vfio > 0 || o->group.n_lost > 0;
}

static void observed_done(Observed *o) {
        free(o->vgpu_type);
}

int host_observe(Root *root, HostObservation *ret) {
        int r = host_load(root, ret);
        if (r < 0)
                host_observation_done(ret);
        return r;
}

void host_observation_done(HostObservation *h) {
        host_done(h);
        *h = (HostObservation){};
}

int host_observe_gpu(const HostObservation *h, const PciDevice *d, GpuObservation *ret) {
        int r = observe(h, d, NULL, ret);
        if (r < 0)
                gpu_observation_done(ret);
        return r;
}

void gpu_observation_done(GpuObservation *o) {
        observed_done(o);
        o->vgpu_type = NULL;
}

/* ---- vGPU units and their identities (Step.units) ---- */

/* Stable UUIDs for the vGPUs the host state creates: the same parent and index give the same UUID at every
 * boot, so VM definitions that reference them keep working. (A name-based UUID: FNV-1a over the parent
 * address and index, version 8, RFC 4122 variant.) */
static void vgpu_uuid(const char *parent, unsigned index, char ret[static MDEV_UUID_STRLEN]) {
        uint8_t b[16];
        for (int half = 0; half < 2; half++) {
                uint64_t h = 1469598103934665603ull ^ (uint64_t)half;
                for (const char *c = parent; *c; c++)
                        h = (h ^ (uint8_t)*c) * 1099511628211ull;
                for (int i = 0; i < 4; i++)
                        h = (h ^ ((index >> (8 * i)) & 0xff)) * 1099511628211ull;
                h = (h ^ 0x67707576u) * 1099511628211ull; /* "gpuv" */
                for (int i = 0; i < 8; i++)
                        b[half * 8 + i] = (uint8_t)(h >> (8 * i));
        }
        b[6] = (uint8_t)((b[6] & 0x0f) | 0x80);
        b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
        snprintf(ret, MDEV_UUID_STRLEN, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

void host_vgpu_uuid(const char *name, unsigned index, char ret[static MDEV_UUID_STRLEN]) {
        vgpu_uuid(name, index, ret);
}

/* The index of a stable UUID of the parent, or -1 when the UUID is not one of them. */
static int vgpu_stable_index(const char *parent, const char *uuid) {
        for (unsigned idx = 0; idx < VGPU_MAX_INDEX; idx++) {
                char u[MDEV_UUID_STRLEN];
                vgpu_uuid(parent, idx, u);
                if (streq(u, uuid))
                        return (int)idx;
        }
        return -1;
}

/* A vGPU unit of a step's device and type, and its rank: the position of its identity in the step's
 * sequence (Step.units, or the stable indices; a vendor vGPU without named VFs: its place in address order),
 * VGPU_MAX_INDEX when outside it. Removing from the end keeps ranks 0..total-1. */
typedef struct Unit {
        char id[MDEV_UUID_STRLEN]; /* mdev UUID, or the VF address of a vendor vGPU */
        int rank;
        bool vendor;
} Unit;

static int unit_rank(const Step *s, const char *id, bool vendor, size_t pos) {
        if (s->units) {
                for (size_t i = 0; s->units[i]; i++)
                        if (streq(s->units[i], id))
                                return (int)i;
                return VGPU_MAX_INDEX;
        }
        if (vendor)
                return (int)pos;
        int idx = vgpu_stable_index(s->device, id);
        return idx >= 0 ? idx : VGPU_MAX_INDEX;
}

static int cmp_units(const void *a, const void *b) {
        const Unit *x = a, *y = b;
        return x->rank != y->rank ? (x->rank < y->rank ? -1 : 1) : strcmp(x->id, y->id);
}

static int unit_push(Unit **l, size_t *n, const char *id, int rank, bool vendor) {
        Unit *x = realloc(*l, (*n + 1) * sizeof **l);
        if (!x)
                return -ENOMEM;
        *l = x;
        x[*n] = (Unit){.rank = rank, .vendor = vendor};
        snprintf(x[(*n)++].id, sizeof x->id, "%s", id);
        return 0;
}

/* The units a step counts among these: active vGPUs on its device, of its type (any type with type NULL),
 * in rank order. The planner passes what it observed, a step being run what the host has now. */
static int vgpu_units_of(const Step *s, const MdevDevice *m, size_t nm, const VendorVgpuUnit *u, size_t nu,
                         Unit **ret, size_t *ret_n) {
        Unit *l = NULL;
        size_t n = 0;
        int r = 0;
        for (size_t i = 0; i < nu && r >= 0; i++) {
                char id[16];
                snprintf(id, sizeof id, "%u", u[i].type);
                /* a VF's address is its identity; the list is in address order */
                if (u[i].active && streq(u[i].pf, s->device) && (!s->vgpu_type || streq(id, s->vgpu_type)))
                        r = unit_push(&l, &n, u[i].vf, unit_rank(s, u[i].vf, true, n), true);
        }
        for (size_t i = 0; i < nm && r >= 0; i++) {
                if (!m[i].active || !m[i].parent || !streq(m[i].parent, s->device) ||
                    (s->vgpu_type && (!m[i].type || !streq(m[i].type, s->vgpu_type))))
                        continue;
                r = unit_push(&l, &n, m[i].uuid, unit_rank(s, m[i].uuid, false, n), false);
        }
        if (r < 0) {
                free(l);
                return r;
        }
        if (n > 1)
                qsort(l, n, sizeof *l, cmp_units);
        *ret = l;
        *ret_n = n;
        return 0;
}

static int vgpu_units(Root *root, const Step *s, Unit **ret, size_t *ret_n) {
        VendorVgpuUnit *u = NULL;
        MdevDevice *m = NULL;
        size_t nu = 0, nm = 0;
        if (vendor_vgpu_units(root, &u, &nu) < 0)
                nu = 0;
        int r = mdev_list(root, &m, &nm);
        if (r >= 0)
                r = vgpu_units_of(s, m, nm, u, nu, ret, ret_n);
        mdev_list_free(m, nm);
        vendor_vgpu_units_free(u, nu);
        return r;
}

/* ---- validating and planning ---- */

typedef struct Planner {
        Host host;
        const HostSpec *spec;
        Plan *plan;
        char *error;
} Planner;

_printf_(3, 4) static int reject(Planner *p, const GpuEntry *e, const char *fmt, ...) {
        char buf[768];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        free(p->error);
        p->error = strdup_printf("%s:%u:%u: %s", p->spec->file, e->line, e->column, buf);
        return -EINVAL;
}

static Step *add_step(Planner *p, StepKind kind, const char *device) {
        Step *n = realloc(p->plan->steps, (p->plan->n_steps + 1) * sizeof *n);
        if (!n)
                return NULL;
        p->plan->steps = n;
        Step *s = &n[p->plan->n_steps++];
        *s = (Step){.kind = kind};
        snprintf(s->device, sizeof s->device, "%s", device);
        return s;
}

/* The layout a mig entry asks for on one GPU: inline counts, or a mig-parted file and label under
 * mig-parted's rules (migparted_target: the same as `gpuvirt mig apply`). *ret_skip: the file leaves the GPU
 * alone (not MIG-capable, selected by `devices: all` or with mig-enabled: false). */
static int mig_wanted(Planner *p, const GpuEntry *e, const MigGpu *g, bool *ret_enabled,
                      unsigned want[MIG_MAX_PROFILES], bool *ret_skip) {
        memset(want, 0, sizeof(unsigned) * MIG_MAX_PROFILES);
        *ret_enabled = true;
        *ret_skip = false;
        if (e->mig_file) {
                /* the file was parsed once, with host.yaml (host_spec_load) */
                if (!e->mig_config)
                        return reject(p, e, "mig file %s was not loaded with the host file", e->mig_file);
                _cleanup_free_ char *err = NULL;
                MigPartedTarget t;
                if (migparted_target(e->mig_parted, e->mig_config, g, &t, &err) < 0)
                        return reject(p, e, "mig file: %s", strna(err));
                if (t.action == MIGPARTED_UNMATCHED && g->capable)
                        return reject(p, e, "configuration '%s' of %s does not cover GPU %u (%s): no entry selects this "
                                            "MIG-capable GPU (mig-parted's assert fails on it)",
                                      e->mig_label, e->mig_file, g->index, g->address);
                if (t.action != MIGPARTED_SET) {
                        *ret_skip = true;
                        return 0;
                }
                *ret_enabled = t.enabled;
                memcpy(want, t.want, sizeof t.want);
                return 0;
        }
        if (!g->capable)
                return reject(p, e, "%s (%s) does not support MIG", g->address, g->name);
        for (size_t i = 0; i < e->n_mig; i++) {
                int pi = mig_profile_find(g, e->mig[i].profile);
                if (pi < 0)
                        return reject(p, e, "MIG profile '%s' does not exist on %s (%s); see 'gpuvirt mig profiles %s'",
                                      e->mig[i].profile, g->address, g->name, g->address);
                /* names are distinct in a file (basic/yamldoc.h refuses a key given twice); a program's spec
                 * names a profile once per pinned instance (MigCount.at) */
                want[pi] += e->mig[i].count;
        }
        _cleanup_free_ char *why = NULL;
        if (mig_layout_fits(g, want, &why) < 0)
                return reject(p, e, "this MIG layout does not fit %s (%s): %s", g->address, g->name, strna(why));
        return 0;
}

/* Instances an entry pins at a placement (MigCount.at): each one instance of a profile of the GPU, all of
 * them placeable together with the rest of the layout (want). */
static int mig_pins(Planner *p, const GpuEntry *e, const MigGpu *g, const unsigned want[MIG_MAX_PROFILES],
                    MigPlanCreate pins[static MIG_MAX_INSTANCES], size_t *ret_n) {
        size_t n = 0;
        for (size_t i = 0; i < e->n_mig; i++) {
                if (!e->mig[i].at)
                        continue;
                int pi = mig_profile_find(g, e->mig[i].profile);
                if (pi < 0 || e->mig[i].count != 1 || e->mig[i].at > MIG_MAX_SLICES || n >= MIG_MAX_INSTANCES)
                        return reject(p, e, "MIG instance %s pinned at %u is not one instance of a profile of %s",
                                      e->mig[i].profile, e->mig[i].at - 1, g->address);
                pins[n++] = (MigPlanCreate){pi, e->mig[i].at - 1};
        }
        _cleanup_free_ char *why = NULL;
        if (n > 0 && mig_layout_fits_pinned(g, want, pins, n, &why) < 0)
                return reject(p, e, "this MIG layout does not fit %s (%s): %s", g->address, g->name, strna(why));
        *ret_n = n;
        return 0;
}

/* Resolve a vGPU type of an entry on a device (vgpu_type_resolve: an mdev type id or name, or a vendor vGPU
 * id or name). On success ret_id is the canonical id (mdev type id, or the vendor type's number as text). */
static int vgpu_resolve(Planner *p, const GpuEntry *e, const PciDevice *d, bool *ret_vendor, char **ret_id,
                        unsigned *ret_max) {
        VgpuTypeRef t;
        _cleanup_free_ char *err = NULL;
        int r = vgpu_type_resolve(p->host.root, d->addr, e->vgpu_type, &t, &err);
        if (r == -ENODEV)
                return reject(p, e, "%s (%04x:%04x) cannot do mode vgpu: no mediated device types and no NVIDIA vGPU VFs",
                              d->addr, d->vendor, d->device);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return reject(p, e, "%s", strna(err));
        *ret_vendor = t.kind == VGPU_TYPE_VENDOR;
        *ret_max = t.kind == VGPU_TYPE_VENDOR ? (unsigned)MAX(d->sriov_totalvfs, 0)
                   : t.max_instances > 0     ? (unsigned)t.max_instances
                                             : 64;
        *ret_id = TAKE_PTR(t.id);
        vgpu_type_ref_done(&t);
        return 0;
}

/* The vGPU steps of an entry (one model, Step.units): the units of the type converge to vgpu_count, by their
 * identity in the entry's sequence (its named vGPUs, or the stable indices). Named, a unit outside the list
 * goes and every listed one is made; derived, units count as main's file does (made outside the file, they
 * count too) and the highest ranks go first. vgpu_ok: the GPU's vGPUs are of the type (else a teardown
 * removes them all first). */
static int plan_vgpu(Planner *p, const PciDevice *d, const GpuEntry *e, const char *type, bool vgpu_ok) {
        Step t = {.device = "", .vgpu_type = (char *)type, .units = e->vgpu_units};
        snprintf(t.device, sizeof t.device, "%s", d->addr);
        _cleanup_free_ Unit *have = NULL;
        size_t n_have = 0, inside = 0;
        if (vgpu_ok) {
                int r = vgpu_units_of(&t, p->host.mdevs, p->host.n_mdevs, p->host.units, p->host.n_units, &have,
                                      &n_have);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < n_have; i++)
                inside += have[i].rank < VGPU_MAX_INDEX;
        unsigned want = e->vgpu_count, keep = e->vgpu_units ? (unsigned)inside : MIN((unsigned)n_have, want);
        for (int k = 0; k < 2; k++) {
                bool create = k == 1;
                if (create ? want <= keep : n_have <= keep)
                        continue;
                Step *s = add_step(p, create ? STEP_VGPU_CREATE : STEP_VGPU_REMOVE, d->addr);
                if (!s || !(s->vgpu_type = strdup(type)))
                        return -ENOMEM;
                s->count = create ? want - keep : (unsigned)n_have - keep;
                s->total = create ? want : keep;
                if (e->vgpu_units && !(s->units = strv_copy(e->vgpu_units)))
                        return -ENOMEM;
        }
        return 0;
}

static int plan_gpu(Planner *p, const PciDevice *d, const GpuEntry *e, Step **teardown, size_t *n_teardown) {
        if (pci_device_is_dead(d)) {
                _cleanup_free_ char *m = pci_device_dead_message(d);
                return reject(p, e, "%s", strna(m));
        }
        Observed o;
        int r = observe(&p->host, d, e->mode == GPU_MODE_PASSTHROUGH ? e->include : NULL, &o);
        if (r < 0)
                return r;
        Step *s;
        bool want_vendor = false;
        _cleanup_free_ char *want_type = NULL;
        unsigned max = 0;

        /* validate the request on this device first: nothing changes when any entry is impossible. A GPU that
         * lost its driver cannot say what MIG or vGPU it can do until it is given back (the release planned
         * below; apply and recover do that first), so those wait for the next plan. */
        bool later = o.lost && (e->mode == GPU_MODE_MIG || e->mode == GPU_MODE_VGPU);
        switch (later ? _GPU_MODE_INVALID : e->mode) {
        case GPU_MODE_PASSTHROUGH:
                if (d->iommu_group < 0)
                        r = reject(p, e, "%s has no IOMMU group: the IOMMU is off (see 'gpuvirt check')", d->addr);
                else if (d->boot_vga == 1 && !e->force)
                        r = reject(p, e, "%s is the boot VGA (host console); add 'force: true' to take it", d->addr);
                else {
                        _cleanup_free_ GroupMember *m = NULL;
                        size_t n = 0;
                        if (iommu_group_members(p->host.pci, d, &m, &n) == 0)
                                for (size_t i = 0; i < n && r >= 0; i++)
                                        if (m[i].kind == GROUP_MEMBER_FOREIGN &&
                                            (!e->force || !strv_contains(e->include, m[i].device->addr)))
                                                r = reject(p, e, "%s shares IOMMU group %d with %s, which is not part of "
                                                                 "the card: add 'force: true' and 'include: [\"%s\"]'",
                                                           d->addr, d->iommu_group, m[i].device->addr, m[i].device->addr);
                }
                break;
        case GPU_MODE_SRIOV:
                if (d->sriov_totalvfs <= 0)
                        r = reject(p, e, "%s (%04x:%04x) has no SR-IOV capability", d->addr, d->vendor, d->device);
                else if (e->vfs > (unsigned)d->sriov_totalvfs)
                        r = reject(p, e, "%s supports at most %d VFs, not %u", d->addr, d->sriov_totalvfs, e->vfs);
                else if (e->vfs_vfio && d->iommu_group < 0)
                        r = reject(p, e, "vfs-mode passthrough on %s needs the IOMMU (see 'gpuvirt check')", d->addr);
                break;
        case GPU_MODE_VGPU:
                r = vgpu_resolve(p, e, d, &want_vendor, &want_type, &max);
                if (r >= 0 && e->vgpu_count > max)
                        r = reject(p, e, "type %s on %s allows at most %u instances, not %u", e->vgpu_type, d->addr, max,
                                   e->vgpu_count);
                /* named vGPUs (the fleet's): mdev UUIDs as the kernel names them, or VFs of this PF */
                for (char **u = e->vgpu_units; r >= 0 && u && *u; u++) {
                        const PciDevice *vf = want_vendor ? pci_host_find(p->host.pci, *u) : NULL;
                        if (want_vendor ? !vf || !vf->physfn || !streq(vf->physfn, d->addr) : !mdev_uuid_is_canonical(*u))
                                r = reject(p, e, "vGPU '%s' is not %s of %s", *u,
                                           want_vendor ? "a VF" : "a lower-case mdev UUID", d->addr);
                        else if (strv_contains(u + 1, *u))
                                r = reject(p, e, "vGPU '%s' is named twice", *u);
                }
                if (r >= 0 && e->vgpu_units && strv_length(e->vgpu_units) != e->vgpu_count)
                        r = reject(p, e, "%zu vGPUs named, but a count of %u", strv_length(e->vgpu_units), e->vgpu_count);
                break;
        case GPU_MODE_MIG: {
                /* a mig-parted file configures NVIDIA's GPUs only: any other display device is not one of them */
                if (!o.mig && e->mig_file && d->vendor != PCI_VENDOR_NVIDIA)
                        break;
                if (!o.mig) {
                        r = reject(p, e, "%s: NVML does not report this GPU (NVML not available, or no NVIDIA driver), so "
                                         "MIG cannot be set", d->addr);
                        break;
                }
                bool enabled, skip;
                unsigned want[MIG_MAX_PROFILES];
                MigPlanCreate pins[MIG_MAX_INSTANCES];
                size_t n_pins = 0;
                r = mig_wanted(p, e, o.mig, &enabled, want, &skip);
                if (r < 0 || skip)
                        break;
                if (enabled && (r = mig_pins(p, e, o.mig, want, pins, &n_pins)) < 0)
                        break;
                if (mig_layout_matches(o.mig, enabled, want) && mig_has_instances_at(o.mig, pins, n_pins))
                        break;
                s = add_step(p, enabled ? STEP_MIG_APPLY : STEP_MIG_DISABLE, d->addr);
                if (!s)
                        return -ENOMEM;
                size_t np = 0;
                s->mig_counts = calloc(o.mig->n_profiles ?: 1, sizeof(unsigned));
                if (!s->mig_counts)
                        return -ENOMEM;
                for (size_t i = 0; enabled && i < o.mig->n_profiles; i++)
                        if (want[i]) {
                                if (strv_push(&s->mig_profiles, &np, strdup(o.mig->profiles[i].name)) < 0)
                                        return -ENOMEM;
                                s->mig_counts[s->n_mig++] = want[i];
                        }
                if (n_pins) {
                        if (!(s->mig_at = calloc(n_pins, sizeof *s->mig_at)))
                                return -ENOMEM;
                        for (size_t i = 0; i < n_pins; i++) {
                                snprintf(s->mig_at[i].profile, sizeof s->mig_at[i].profile, "%s",
                                         o.mig->profiles[pins[i].profile].name);
                                s->mig_at[i].start = pins[i].start;
                        }
                        s->n_mig_at = n_pins;
                }
                break;
        }
        default:
                break;
        }
        if (r < 0) {
                observed_done(&o);
                return r;
        }

        /* teardowns of what the GPU does now and should not */
#define TEARDOWN(k)                                                                                            \
        ({                                                                                                     \
                Step *_n = realloc(*teardown, (*n_teardown + 1) * sizeof(Step));                               \
                if (!_n)                                                                                       \
                        return observed_done(&o), -ENOMEM;                                                     \
                *teardown = _n;                                                                                \
                _n[*n_teardown] = (Step){.kind = (k)};                                                         \
                snprintf(_n[*n_teardown].device, sizeof _n[*n_teardown].device, "%s", d->addr);                 \
                &_n[(*n_teardown)++];                                                                          \
        })
        bool vgpu_ok = e->mode == GPU_MODE_VGPU && o.vgpu_type && want_type && streq(o.vgpu_type, want_type);
        if (o.vgpu_count > 0 && !vgpu_ok && !later)
                TEARDOWN(STEP_VGPU_REMOVE);
        if (o.mig && o.mig->capable && o.mig->mode_current == NVML_DEVICE_MIG_ENABLE && e->mode != GPU_MODE_MIG)
                TEARDOWN(STEP_MIG_DISABLE);
        if (group_touched(&o) && e->mode != GPU_MODE_PASSTHROUGH)
                TEARDOWN(STEP_RELEASE_VFIO);
        /* VFs: kept for sriov (set below) and vendor vGPU (they carry the vGPUs) */
        bool vfs_needed = e->mode == GPU_MODE_SRIOV || (e->mode == GPU_MODE_VGPU && want_vendor);
        if (o.vfs > 0 && !vfs_needed && !later) {
                Step *t = TEARDOWN(STEP_SRIOV_SET);
                t->vfs = 0;
        }

        /* build-ups */
        switch (later ? _GPU_MODE_INVALID : e->mode) {
        case GPU_MODE_PASSTHROUGH:
                if (!group_passed_through(&o)) {
                        s = add_step(p, STEP_BIND_VFIO, d->addr);
                        if (!s)
                                return observed_done(&o), -ENOMEM;
                        s->force = e->force;
                        if (e->include && !(s->include = strv_copy(e->include)))
                                return observed_done(&o), -ENOMEM;
                }
                break;
        case GPU_MODE_SRIOV:
                if (o.vfs != e->vfs || (e->vfs > 0 && o.vfs_vfio != e->vfs_vfio)) {
                        s = add_step(p, STEP_SRIOV_SET, d->addr);
                        if (!s)
                                return observed_done(&o), -ENOMEM;
                        s->vfs = e->vfs;
                        s->vfio = e->vfs_vfio;
                }
                break;
        case GPU_MODE_VGPU: {
                if (want_vendor && o.vfs == 0) {
                        s = add_step(p, STEP_SRIOV_SET, d->addr);
                        if (!s)
                                return observed_done(&o), -ENOMEM;
                        s->vfs = (unsigned)d->sriov_totalvfs; /* as sriov-manage -e does */
                }
                r = plan_vgpu(p, d, e, want_type, vgpu_ok);
                if (r < 0)
                        return observed_done(&o), r;
                break;
        }
        default:
                break;
        }
#undef TEARDOWN
        observed_done(&o);
        return 0;
}

static int step_phase(StepKind k) {
        return (int)k; /* the enum is in execution order */
}

static int cmp_steps(const void *a, const void *b) {
        const Step *x = a, *y = b;
        int d = step_phase(x->kind) - step_phase(y->kind);
        return d ? d : strcmp(x->device, y->device);
}

/* The devices a file governs: GPUs (not VFs), and any other PCI endpoint it names by address (an SR-IOV
 * NIC or NVMe whose VFs go to VMs, as the real-kernel rig's SR-IOV device is); `all` and vendor:device
 * entries match GPUs only. */
static bool governed(const HostSpec *spec, const PciDevice *d) {
        if (inventory_is_gpu(d, false))
                return true;
        if (d->physfn || pci_device_is_bridge(d))
                return false;
        for (size_t i = 0; i < spec->n_entries; i++)
                if (spec->entries[i].select == SELECT_ADDRESS && streq(spec->entries[i].addr, d->addr))
                        return true;
        return false;
}

int host_plan(Root *root, const HostSpec *spec, Plan **ret, char **ret_error) {
        Planner p = {.spec = spec};
        int r = host_load(root, &p.host);
        if (r < 0) {
                *ret_error = strdup_printf("cannot read the host's PCI devices: %s", strerror(-r));
                return r;
        }
        p.plan = calloc(1, sizeof(Plan));
        Step *teardown = NULL;
        size_t n_teardown = 0;
        if (!p.plan)
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < p.host.pci->n_devices; i++) {
                const PciDevice *d = &p.host.pci->devices[i];
                if (!governed(spec, d))
                        continue;
                const GpuEntry *e = NULL;
                r = host_spec_match(spec, d, &e, &p.error);
                if (r < 0 || !e)
                        continue;
                r = plan_gpu(&p, d, e, &teardown, &n_teardown);
        }
        /* An address entry that names no device it can govern on this host is a mistake in the file. */
        for (size_t i = 0; r >= 0 && i < spec->n_entries; i++) {
                const GpuEntry *e = &spec->entries[i];
                if (e->select != SELECT_ADDRESS)
                        continue;
                const PciDevice *d = pci_host_find(p.host.pci, e->addr);
                if (!d)
                        r = reject(&p, e, "no PCI device %s on this host", e->addr);
                else if (!governed(spec, d))
                        r = reject(&p, e, "%s is not a GPU (class %06x)%s", e->addr, d->class,
                                   d->physfn ? ": it is a VF, name its PF" : pci_device_is_bridge(d) ? ": it is a bridge" : "");
        }
        if (r >= 0 && n_teardown > 0) {
                Step *n = realloc(p.plan->steps, (p.plan->n_steps + n_teardown) * sizeof(Step));
                if (!n)
                        r = -ENOMEM;
                else {
                        p.plan->steps = n;
                        memcpy(n + p.plan->n_steps, teardown, n_teardown * sizeof(Step));
                        p.plan->n_steps += n_teardown;
                        n_teardown = 0;
                }
        }
        for (size_t i = 0; i < n_teardown; i++)
                step_done(&teardown[i]);
        free(teardown);
        host_done(&p.host);
        if (r < 0) {
                plan_free(p.plan);
                *ret_error = p.error ?: strdup(strerror(-r));
                return r;
        }
        if (p.plan->n_steps > 1)
                qsort(p.plan->steps, p.plan->n_steps, sizeof(Step), cmp_steps);
        *ret = p.plan;
        return 0;
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
                        r = vendor_vgpu_create(root, s->device, s->vgpu_type, &vf, &type, err);
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
                if (vendor) {
                        _cleanup_free_ char *vf = NULL;
                        unsigned type = 0;
                        r = vendor_vgpu_create(root, id, s->vgpu_type, &vf, &type, err);
                } else
                        r = mdev_create(root, s->device, s->vgpu_type, id, NULL, 0, err);
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
                r = u->vendor ? vendor_vgpu_remove(root, u->id, true, err) : mdev_remove(root, u->id, false, err);
                if (r < 0 && r != -ENOENT)
                        return r;
        }
        return 0;
}

static int run_mig(Root *root, const Step *s, char **err) {
        _cleanup_nvml_close_ Nvml *n = NULL;
        _cleanup_free_ MigGpu *gpus = NULL;
        size_t ng = 0;
        int r = nvml_open(root, &n, err);
        if (r < 0)
                return r;
        r = mig_gpus_read(n, &gpus, &ng);
        if (r < 0)
                return r;
        MigGpu *g = mig_gpu_find(gpus, ng, s->device);
        if (!g)
                return *err = strdup_printf("NVML does not report %s", s->device), -ENODEV;
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
        json_object_object_add(o, "step", step_json(s));
        json_object_object_add(o, "started", json_object_new_int64((int64_t)time(NULL)));
        int r = state_write_json(root, o, HOST_JOURNAL_FILE);
        json_object_put(o);
        return r;
}

int host_apply(Root *root, const Plan *p, size_t *ret_done, char **ret_error) {
        *ret_done = 0;
        for (size_t i = 0; i < p->n_steps; i++) {
                const Step *s = &p->steps[i];
                int r = journal_write(root, s);
                if (r < 0) {
                        *ret_error = strdup_printf("cannot write the journal " HOST_JOURNAL_FILE ": %s", strerror(-r));
                        return r;
                }
                char *err = NULL;
                r = run_step(root, s, &err);
                if (r < 0) {
                        _cleanup_free_ char *d = step_describe(s);
                        *ret_error = strdup_printf("step %zu/%zu (%s) failed: %s", i + 1, p->n_steps, strna(d),
                                                   err ?: strerror(-r));
                        free(err);
                        /* the step left its devices as they were: nothing to finish */
                        (void)root_write_file(root, NULL, HOST_JOURNAL_FILE);
                        return r;
                }
                free(err);
                (*ret_done)++;
        }
        (void)root_write_file(root, NULL, HOST_JOURNAL_FILE);
        return 0;
}

int host_recover(Root *root, char **ret_step, char ***ret_restored, char **ret_error) {
        *ret_step = NULL;
        *ret_restored = NULL;
        Step s = {};
        _cleanup_free_ char *bad = NULL;
        int r = host_journal_read(root, &s, &bad);
        if (r < 0 && r != -ENOENT) {
                *ret_error = strdup_printf("the journal is damaged (%s); remove it and run 'gpuvirt apply'",
                                           bad ?: strerror(-r));
                return r;
        }
        if (r >= 0) {
                *ret_step = step_describe(&s);
                char *err = NULL;
                /* Every step converges when run again: this finishes the interrupted one. */
                r = run_step(root, &s, &err);
                if (r < 0 && s.kind == STEP_BIND_VFIO) {
                        /* cannot finish: roll back, so no function stays half moved */
                        VfioOptions vo = {.settle_ms = 2000};
                        VfioReport vr;
                        (void)vfio_disable(root, s.device, &vo, &vr);
                        vfio_report_done(&vr);
                }
                if (r < 0)
                        *ret_error = strdup_printf("the interrupted step could not be finished: %s", err ?: strerror(-r));
                else
                        (void)root_write_file(root, NULL, HOST_JOURNAL_FILE);
                free(err);
                step_done(&s);
                if (r < 0)
                        return r;
        }
        /* A device left with no driver (a crash between unbind and bind, a rollback that failed) goes back to
         * the driver its record names, whatever step (if any) the journal held. */
        return vfio_restore_lost(root, ret_restored, ret_error);
}

int host_export(Root *root, HostSpec **ret, char **ret_error) {
        Host h;
        int r = host_load(root, &h);
        if (r < 0) {
                *ret_error = strdup_printf("cannot read the host's PCI devices: %s", strerror(-r));
                return r;
        }
        _cleanup_host_spec_free_ HostSpec *s = calloc(1, sizeof *s);
        if (!s || !(s->file = strdup("export"))) {
                host_done(&h);
                return -ENOMEM;
        }
        s->entries = calloc(h.pci->n_devices ?: 1, sizeof(GpuEntry));
        for (size_t i = 0; s->entries && i < h.pci->n_devices; i++) {
                const PciDevice *d = &h.pci->devices[i];
                if (!inventory_is_gpu(d, false))
                        continue;
                Observed o;
                if ((r = observe(&h, d, NULL, &o)) < 0)
                        break;
                GpuEntry *e = &s->entries[s->n_entries++];
                e->select = SELECT_ADDRESS;
                memcpy(e->addr, d->addr, sizeof e->addr);
                e->mode = o.mode;
                switch (o.mode) {
                case GPU_MODE_PASSTHROUGH: {
                        e->force = d->boot_vga == 1;
                        _cleanup_free_ GroupMember *m = NULL;
                        size_t n = 0, ni = 0;
                        if (iommu_group_members(h.pci, d, &m, &n) == 0)
                                for (size_t k = 0; k < n; k++)
                                        if (m[k].kind == GROUP_MEMBER_FOREIGN && m[k].device->is_vfio) {
                                                e->force = true;
                                                (void)strv_push(&e->include, &ni, strdup(m[k].device->addr));
                                        }
                        break;
                }
                case GPU_MODE_SRIOV:
                        e->vfs = o.vfs;
                        e->vfs_vfio = o.vfs_vfio;
                        break;
                case GPU_MODE_VGPU:
                        e->vgpu_type = TAKE_PTR(o.vgpu_type);
                        e->vgpu_count = o.vgpu_count;
                        break;
                case GPU_MODE_MIG: {
                        unsigned counts[MIG_MAX_PROFILES] = {};
                        for (size_t k = 0; k < o.mig->n_inst; k++)
                                counts[o.mig->inst[k].profile]++;
                        e->mig = calloc(o.mig->n_profiles ?: 1, sizeof(MigCount));
                        for (size_t k = 0; e->mig && k < o.mig->n_profiles; k++)
                                if (counts[k])
                                        e->mig[e->n_mig++] = (MigCount){strdup(o.mig->profiles[k].name), counts[k]};
                        break;
                }
                default:
                        break;
                }
                observed_done(&o);
        }
        host_done(&h);
        if (!s->entries)
                return -ENOMEM;
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

typedef struct ResultRecord {
        int64_t time;
        const char *file, *error;
        bool ok;
        unsigned steps;
} ResultRecord;

static const JsonField result_fields[] = {
        {"time", JSON_KIND_INT64, JSON_MANDATORY, offsetof(ResultRecord, time)},
        {"file", JSON_KIND_STRING, JSON_MANDATORY, offsetof(ResultRecord, file), .valid = is_any},
        {"ok", JSON_KIND_BOOL, JSON_MANDATORY, offsetof(ResultRecord, ok)},
        {"steps", JSON_KIND_UINT, JSON_MANDATORY, offsetof(ResultRecord, steps), .max = INT32_MAX},
        {"error", JSON_KIND_STRING, JSON_NULLABLE, offsetof(ResultRecord, error), .valid = is_any},
        {},
};

void host_result_done(HostResult *r) {
        free(r->file);
        free(r->error);
        *r = (HostResult){};
}

int host_result_read(Root *root, HostResult *ret, char **ret_error) {
        json_object *o = NULL;
        ResultRecord rec = {};
        int r = state_read_record(root, result_fields, &rec, &o, ret_error, HOST_RESULT_FILE);
        if (r < 0)
                return r;
        HostResult h = {.time = rec.time, .ok = rec.ok, .steps = rec.steps, .file = strdup(rec.file),
                        .error = rec.error ? strdup(rec.error) : NULL};
        json_object_put(o);
        if (!h.file || (rec.error && !h.error)) {
                host_result_done(&h);
                return -ENOMEM;
        }
        *ret = h;
        return 0;
}

int host_result_write(Root *root, const char *file, bool ok, size_t steps, const char *error) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "time", json_object_new_int64((int64_t)time(NULL)));
        json_object_object_add(o, "file", json_object_new_string(file));
        json_object_object_add(o, "ok", json_object_new_boolean(ok));
        json_object_object_add(o, "steps", json_object_new_int((int)steps));
        json_object_object_add(o, "error", error ? json_object_new_string(error) : NULL);
        int r = state_write_json(root, o, HOST_RESULT_FILE);
        json_object_put(o);
        return r;
}
