/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "core/host/inventory.h"
#include "core/host/iommu.h"
#include "core/mig/mig.h"
#include "core/mig/migparted.h"
#include "core/mig/nvml.h"
#include "core/state/hoststate.h"
#include "core/state/state-internal.h"
#include "core/vgpu/mdev.h"
#include "core/vgpu/vgpu-types.h"

static const char *const step_kind_table[_STEP_KIND_MAX] = {
        [STEP_VGPU_REMOVE] = "vgpu-remove", [STEP_MIG_DISABLE] = "mig-disable", [STEP_RELEASE_VFIO] = "release-vfio",
        [STEP_SRIOV_SET] = "sriov-set",     [STEP_BIND_VFIO] = "bind-vfio",     [STEP_MIG_APPLY] = "mig-apply",
        [STEP_VGPU_CREATE] = "vgpu-create",
};

const char *step_kind_to_string(StepKind k) {
        return k >= 0 && k < _STEP_KIND_MAX ? step_kind_table[k] : NULL;
}

StepKind step_kind_from_string(const char *s) {
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
                if (!named)
                        return NULL;
                return strdup_printf("remove %u vGPU(s) of type %s on %s (%u left%s)", s->count, s->vgpu_type,
                                     s->device, s->total, named);
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
                if (!layout) /* not "no instances": the layout is unknown */
                        return NULL;
                return strdup_printf("MIG on %s: %s%s", s->device, *layout ? layout : "enabled, no instances",
                                     s->n_mig_at ? ")" : "");
        }
        case STEP_VGPU_CREATE:
                named = named_units(s);
                if (!named)
                        return NULL;
                return strdup_printf("create %u vGPU(s) of type %s on %s (%u in all%s)", s->count, s->vgpu_type,
                                     s->device, s->total, named);
        default:
                return strdup("?");
        }
}

json_object *step_json(const Step *s) {
        _cleanup_free_ char *d = step_describe(s);
        json_object *o = json_object_new_object();
        if (!d || !o || json_add(o, "action", json_object_new_string(step_kind_to_string(s->kind))) < 0 ||
            json_add(o, "device", json_object_new_string(s->device)) < 0 ||
            json_add(o, "description", json_object_new_string(d)) < 0)
                goto fail;
        switch (s->kind) {
        case STEP_SRIOV_SET:
                if (json_add(o, "vfs", json_object_new_int((int)s->vfs)) < 0 ||
                    json_add(o, "vfio", json_object_new_boolean(s->vfio)) < 0)
                        goto fail;
                break;
        case STEP_BIND_VFIO: {
                json_object *inc = json_object_new_array();
                if (json_add(o, "force", json_object_new_boolean(s->force)) < 0 || json_add(o, "include", inc) < 0)
                        goto fail;
                for (char **i = s->include; i && *i; i++)
                        if (json_append(inc, json_object_new_string(*i)) < 0)
                                goto fail;
                break;
        }
        case STEP_MIG_APPLY: {
                json_object *m = json_object_new_object();
                if (json_add(o, "mig", m) < 0)
                        goto fail;
                for (size_t i = 0; i < s->n_mig; i++)
                        if (json_add(m, s->mig_profiles[i], json_object_new_int((int)s->mig_counts[i])) < 0)
                                goto fail;
                if (s->n_mig_at) {
                        json_object *at = json_object_new_array();
                        if (json_add(o, "mig_at", at) < 0)
                                goto fail;
                        for (size_t i = 0; i < s->n_mig_at; i++) {
                                json_object *x = json_object_new_object();
                                if (json_append(at, x) < 0 ||
                                    json_add(x, "profile", json_object_new_string(s->mig_at[i].profile)) < 0 ||
                                    json_add(x, "start", json_object_new_int((int)s->mig_at[i].start)) < 0)
                                        goto fail;
                        }
                }
                break;
        }
        case STEP_VGPU_CREATE:
        case STEP_VGPU_REMOVE:
                if (json_add_string(o, "type", s->vgpu_type) < 0 ||
                    json_add(o, "count", json_object_new_int((int)s->count)) < 0 ||
                    json_add(o, "total", json_object_new_int((int)s->total)) < 0)
                        goto fail;
                if (s->units) {
                        json_object *u = json_object_new_array();
                        if (json_add(o, "units", u) < 0)
                                goto fail;
                        for (char **i = s->units; *i; i++)
                                if (json_append(u, json_object_new_string(*i)) < 0)
                                        goto fail;
                }
                break;
        default:
                break;
        }
        return o;
fail:
        json_object_put(o);
        return NULL;
}

json_object *plan_json(const Plan *p) {
        json_object *a = json_object_new_array();
        for (size_t i = 0; a && i < p->n_steps; i++)
                if (json_append(a, step_json(&p->steps[i])) < 0) {
                        json_object_put(a);
                        return NULL;
                }
        return a;
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
                _cleanup_(gv_error_done) GvError err = {};
                MigPartedTarget t;
                if (migparted_target(e->mig_parted, e->mig_config, g, &t, &err) < 0)
                        return reject(p, e, "mig file: %s", strna(gv_error_message(&err)));
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
        _cleanup_(gv_error_done) GvError err = {};
        int r = vgpu_type_resolve(p->host.root, d->addr, e->vgpu_type, &t, &err);
        if (r == -ENODEV)
                return reject(p, e, "%s (%04x:%04x) cannot do mode vgpu: no mediated device types and no NVIDIA vGPU VFs",
                              d->addr, d->vendor, d->device);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return reject(p, e, "%s", strna(err.message));
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
                                char *name = strdup(o.mig->profiles[i].name);
                                if (!name || strv_push(&s->mig_profiles, &np, name) < 0)
                                        return observed_done(&o), -ENOMEM;
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

int host_plan(Root *root, const HostSpec *spec, Plan **ret, GvError *err) {
        Planner p = {.spec = spec};
        int r = host_load(root, &p.host);
        if (r < 0)
                return gv_error_set(err, r, NULL, "read", "cannot read the host's PCI devices: %s", errno_message(r));
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
                _cleanup_(gv_error_done) GvError me = {};
                r = host_spec_match(spec, d, &e, &me);
                if (r < 0) {
                        free(p.error);
                        p.error = TAKE_PTR(me.message);
                }
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
                return gv_error_take(err, r, NULL, "plan", GV_HINT_NONE, p.error ?: strdup(errno_message(r)));
        }
        if (p.plan->n_steps > 1)
                qsort(p.plan->steps, p.plan->n_steps, sizeof(Step), cmp_steps);
        *ret = p.plan;
        return 0;
}
