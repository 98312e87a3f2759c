/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "hoststate.h"
#include "inventory.h"
#include "iommu.h"
#include "mdev.h"
#include "mig.h"
#include "migparted.h"
#include "nvml.h"
#include "sriov.h"
#include "statefile.h"
#include "vendor-vgpu.h"
#include "vfio.h"
#include "vgpu-types.h"

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

static void step_done(Step *s) {
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

char *step_describe(const Step *s) {
        switch (s->kind) {
        case STEP_VGPU_REMOVE:
                if (s->units)
                        return strdup_printf("remove vGPU(s) %s%s on %s", s->units[0], s->units[1] ? " ..." : "",
                                             s->device);
                return s->count ? strdup_printf("remove %u vGPU(s) of type %s on %s", s->count, s->vgpu_type, s->device)
                                : strdup_printf("remove every vGPU on %s", s->device);
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
                if (s->units)
                        return strdup_printf("create vGPU(s) %s%s of type %s on %s", s->units[0],
                                             s->units[1] ? " ..." : "", s->vgpu_type, s->device);
                return strdup_printf("create %u vGPU(s) of type %s on %s", s->count, s->vgpu_type, s->device);
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

/* Rebuild a step from its JSON (the journal). */
static int step_from_json(json_object *o, Step *ret) {
        Step s = {.kind = step_kind_from_string(json_object_get_string(json_object_object_get(o, "action")))};
        const char *dev = json_object_get_string(json_object_object_get(o, "device"));
        if (s.kind < 0 || !dev || strlen(dev) >= sizeof s.device)
                return -EBADMSG;
        snprintf(s.device, sizeof s.device, "%s", dev);
        s.vfs = (unsigned)json_object_get_int(json_object_object_get(o, "vfs"));
        s.vfio = json_object_get_boolean(json_object_object_get(o, "vfio"));
        s.force = json_object_get_boolean(json_object_object_get(o, "force"));
        s.count = (unsigned)json_object_get_int(json_object_object_get(o, "count"));
        const char *t = json_object_get_string(json_object_object_get(o, "type"));
        if (t && !(s.vgpu_type = strdup(t)))
                return -ENOMEM;
        json_object *inc = json_object_object_get(o, "include");
        size_t ni = 0;
        for (size_t i = 0; inc && i < json_object_array_length(inc); i++)
                if (strv_push(&s.include, &ni, strdup(json_object_get_string(json_object_array_get_idx(inc, i)))) < 0)
                        return step_done(&s), -ENOMEM;
        json_object *units = json_object_object_get(o, "units");
        size_t nu = 0;
        for (size_t i = 0; units && i < json_object_array_length(units); i++)
                if (strv_push(&s.units, &nu, strdup(json_object_get_string(json_object_array_get_idx(units, i)))) < 0)
                        return step_done(&s), -ENOMEM;
        json_object *at = json_object_object_get(o, "mig_at");
        size_t nat = at ? json_object_array_length(at) : 0;
        if (nat > MIG_MAX_INSTANCES)
                return step_done(&s), -EBADMSG;
        if (nat && !(s.mig_at = calloc(nat, sizeof *s.mig_at)))
                return step_done(&s), -ENOMEM;
        for (size_t i = 0; i < nat; i++) {
                json_object *x = json_object_array_get_idx(at, i);
                const char *pn = json_object_get_string(json_object_object_get(x, "profile"));
                if (!pn || strlen(pn) >= sizeof s.mig_at[i].profile)
                        return step_done(&s), -EBADMSG;
                snprintf(s.mig_at[i].profile, sizeof s.mig_at[i].profile, "%s", pn);
                s.mig_at[i].start = (unsigned)json_object_get_int(json_object_object_get(x, "start"));
                s.n_mig_at++;
        }
        json_object *mig = json_object_object_get(o, "mig");
        if (mig) {
                size_t n = 0, cap = (size_t)json_object_object_length(mig);
                s.mig_counts = calloc(cap ?: 1, sizeof(unsigned));
                if (!s.mig_counts)
                        return step_done(&s), -ENOMEM;
                json_object_object_foreach(mig, k, v) {
                        size_t np = s.n_mig;
                        if (strv_push(&s.mig_profiles, &np, strdup(k)) < 0)
                                return step_done(&s), -ENOMEM;
                        s.mig_counts[s.n_mig++] = (unsigned)json_object_get_int(v);
                        n++;
                }
        }
        *ret = s;
        return 0;
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

static int observe(const Host *h, const PciDevice *d, Observed *o) {
        *o = (Observed){.mode = GPU_MODE_HOST};
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

static void observed_done(Observed *o) {
        free(o->vgpu_type);
}

int host_observe(Root *root, HostObservation *ret) {
        return host_load(root, ret);
}

void host_observation_done(HostObservation *h) {
        host_done(h);
        *h = (HostObservation){};
}

int host_observe_gpu(const HostObservation *h, const PciDevice *d, GpuObservation *ret) {
        int r = observe(h, d, ret);
        if (r < 0)
                observed_done(ret);
        return r;
}

void gpu_observation_done(GpuObservation *o) {
        observed_done(o);
        o->vgpu_type = NULL;
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

/* The profile counts a mig entry asks for on one GPU (inline counts, or a mig-parted file and label). */
static int mig_wanted(Planner *p, const GpuEntry *e, const MigGpu *g, bool *ret_enabled,
                      unsigned want[MIG_MAX_PROFILES]) {
        memset(want, 0, sizeof(unsigned) * MIG_MAX_PROFILES);
        *ret_enabled = true;
        if (e->mig_file) {
                _cleanup_(migparted_freep) MigParted *m = NULL;
                _cleanup_free_ char *err = NULL;
                if (migparted_parse(e->mig_file, &m, &err) < 0)
                        return reject(p, e, "mig file: %s", strna(err));
                const MigPartedConfig *c = migparted_find(m, e->mig_label);
                if (!c)
                        return reject(p, e, "%s has no configuration '%s'", e->mig_file, e->mig_label);
                const MigPartedEntry *me = migparted_match(c, g->index, g->pci_device_id);
                if (!me)
                        return reject(p, e, "configuration '%s' of %s does not cover GPU %u (%s)", e->mig_label, e->mig_file,
                                      g->index, g->address);
                *ret_enabled = me->mig_enabled;
                for (size_t i = 0; i < me->n_mig_devices; i++) {
                        int pi = mig_profile_find(g, me->mig_devices[i].profile);
                        if (pi < 0)
                                return reject(p, e, "%s:%u:%u: profile '%s' does not exist on %s (%s)", e->mig_file,
                                              me->mig_devices[i].line, me->mig_devices[i].column,
                                              me->mig_devices[i].profile, g->address, g->name);
                        want[pi] += me->mig_devices[i].count;
                }
                return 0;
        }
        for (size_t i = 0; i < e->n_mig; i++) {
                int pi = mig_profile_find(g, e->mig[i].profile);
                if (pi < 0)
                        return reject(p, e, "MIG profile '%s' does not exist on %s (%s); see 'gpuvirt mig profiles %s'",
                                      e->mig[i].profile, g->address, g->name, g->address);
                want[pi] += e->mig[i].count;
        }
        return 0;
}

/* Instances an entry pins at a placement (MigCount.at): each is one instance of a profile of the GPU. */
static int mig_pins(Planner *p, const GpuEntry *e, const MigGpu *g, MigPlanCreate pins[static MIG_MAX_INSTANCES],
                    size_t *ret_n) {
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
        *ret_n = n;
        return 0;
}

/* Resolve a vGPU type of an entry on a device: mdev type id or name, or vendor vGPU id or name. On success
 * ret_id is the canonical id (mdev type id, or the vendor type's number as text). */
static int vgpu_resolve(Planner *p, const GpuEntry *e, const PciDevice *d, bool *ret_vendor, char **ret_id,
                        unsigned *ret_max) {
        Root *root = p->host.root;
        if (d->has_mdev_types) {
                MdevType *t = NULL;
                size_t n = 0;
                int r = mdev_types_read(root, d->syspath, &t, &n);
                if (r < 0)
                        return reject(p, e, "cannot read the vGPU types of %s: %s", d->addr, strerror(-r));
                for (size_t i = 0; i < n; i++)
                        if (streq(t[i].id, e->vgpu_type) || (t[i].name && streq(t[i].name, e->vgpu_type))) {
                                *ret_vendor = false;
                                *ret_id = strdup(t[i].id);
                                *ret_max = t[i].max_instances > 0 ? (unsigned)t[i].max_instances : 64;
                                mdev_types_free(t, n);
                                return *ret_id ? 0 : -ENOMEM;
                        }
                mdev_types_free(t, n);
                return reject(p, e, "%s has no vGPU type '%s' (see 'gpuvirt vgpu types %s')", d->addr, e->vgpu_type, d->addr);
        }
        if (vendor_vgpu_is_parent(root, d->addr) || d->sriov_totalvfs > 0) {
                VendorVgpuAvail *a = NULL;
                size_t n = 0;
                if (vendor_vgpu_types(root, d->addr, &a, &n) >= 0)
                        for (size_t i = 0; i < n; i++) {
                                char id[16];
                                snprintf(id, sizeof id, "%u", a[i].id);
                                if (streq(id, e->vgpu_type) || streq(a[i].name, e->vgpu_type)) {
                                        *ret_vendor = true;
                                        *ret_id = strdup(id);
                                        *ret_max = (unsigned)d->sriov_totalvfs;
                                        vendor_vgpu_avail_free(a, n);
                                        return *ret_id ? 0 : -ENOMEM;
                                }
                        }
                vendor_vgpu_avail_free(a, n);
                if (vendor_vgpu_is_parent(root, d->addr))
                        return reject(p, e, "%s offers no vGPU type '%s' (see 'gpuvirt vgpu types %s')", d->addr,
                                      e->vgpu_type, d->addr);
        }
        return reject(p, e, "%s (%04x:%04x) cannot do mode vgpu: no mediated device types and no NVIDIA vGPU VFs",
                      d->addr, d->vendor, d->device);
}

/* Explicit vGPUs (GpuEntry.vgpu_units): remove the GPU's vGPUs that are not listed, create the listed ones that
 * do not exist. The GPU's vGPUs are all of the wanted type (vgpu_ok), or removed by a teardown. */
static int plan_vgpu_units(Planner *p, const PciDevice *d, const GpuEntry *e, const char *type, bool vgpu_ok) {
        _cleanup_strv_free_ char **have = NULL, **add = NULL, **drop = NULL;
        size_t nh = 0, na = 0, nd = 0;
        for (size_t i = 0; vgpu_ok && i < p->host.n_mdevs; i++) {
                const MdevDevice *m = &p->host.mdevs[i];
                if (m->active && m->parent && streq(m->parent, d->addr) && strv_push(&have, &nh, strdup(m->uuid)) < 0)
                        return -ENOMEM;
        }
        for (size_t i = 0; vgpu_ok && i < p->host.n_units; i++) {
                const VendorVgpuUnit *u = &p->host.units[i];
                if (u->active && streq(u->pf, d->addr) && strv_push(&have, &nh, strdup(u->vf)) < 0)
                        return -ENOMEM;
        }
        for (char **u = have; u && *u; u++)
                if (!strv_contains(e->vgpu_units, *u) && strv_push(&drop, &nd, strdup(*u)) < 0)
                        return -ENOMEM;
        for (char **u = e->vgpu_units; *u; u++)
                if (!strv_contains(have, *u) && strv_push(&add, &na, strdup(*u)) < 0)
                        return -ENOMEM;
        StepKind kinds[2] = {STEP_VGPU_REMOVE, STEP_VGPU_CREATE};
        char **lists[2] = {drop, add};
        size_t counts[2] = {nd, na};
        for (size_t k = 0; k < 2; k++) {
                if (!counts[k])
                        continue;
                Step *s = add_step(p, kinds[k], d->addr);
                if (!s || !(s->vgpu_type = strdup(type)))
                        return -ENOMEM;
                s->count = (unsigned)counts[k];
                s->units = lists[k];
                lists[k] = NULL;
        }
        drop = lists[0];
        add = lists[1];
        return 0;
}

static int plan_gpu(Planner *p, const PciDevice *d, const GpuEntry *e, Step **teardown, size_t *n_teardown) {
        Observed o;
        int r = observe(&p->host, d, &o);
        if (r < 0)
                return r;
        Step *s;
        bool want_vendor = false;
        _cleanup_free_ char *want_type = NULL;
        unsigned max = 0;

        /* validate the request on this device first: nothing changes when any entry is impossible */
        switch (e->mode) {
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
                for (char **u = e->vgpu_units; r >= 0 && u && *u; u++) {
                        char uuid[MDEV_UUID_STRLEN];
                        const PciDevice *vf = want_vendor ? pci_host_find(p->host.pci, *u) : NULL;
                        if (want_vendor ? !vf || !vf->physfn || !streq(vf->physfn, d->addr)
                                        : mdev_uuid_parse(*u, uuid) < 0 || !streq(uuid, *u))
                                r = reject(p, e, "vGPU '%s' is not %s of %s", *u,
                                           want_vendor ? "a VF" : "a lower-case mdev UUID", d->addr);
                }
                break;
        case GPU_MODE_MIG: {
                if (!o.mig) {
                        r = reject(p, e, "%s: NVML does not report this GPU (NVML not available, or no NVIDIA driver), so "
                                         "MIG cannot be set", d->addr);
                        break;
                }
                if (!o.mig->capable) {
                        r = reject(p, e, "%s (%s) does not support MIG", d->addr, o.mig->name);
                        break;
                }
                bool enabled;
                unsigned want[MIG_MAX_PROFILES];
                MigPlanCreate pins[MIG_MAX_INSTANCES];
                size_t n_pins = 0;
                r = mig_wanted(p, e, o.mig, &enabled, want);
                if (r >= 0)
                        r = mig_pins(p, e, o.mig, pins, &n_pins);
                if (r < 0)
                        break;
                MigPlan mp;
                int k = mig_plan_pinned(o.mig->profiles, o.mig->n_profiles, o.mig->slices, NULL, 0, want, pins, n_pins,
                                        true, &mp);
                if (k < 0) {
                        r = reject(p, e, "this MIG layout does not fit %s (%s): %s", d->addr, o.mig->name,
                                   k == -EINVAL ? "a count is above its profile's limit" : "the instances overlap");
                        break;
                }
                if (mig_layout_matches(o.mig, enabled, want) && (!enabled || mig_has_instances_at(o.mig, pins, n_pins)))
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
                if (enabled && n_pins) {
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
        bool vgpu_ok = e->mode == GPU_MODE_VGPU && o.vgpu_type && streq(o.vgpu_type, want_type);
        if (o.vgpu_count > 0 && !vgpu_ok)
                TEARDOWN(STEP_VGPU_REMOVE);
        if (o.mig && o.mig->capable && o.mig->mode_current == NVML_DEVICE_MIG_ENABLE && e->mode != GPU_MODE_MIG)
                TEARDOWN(STEP_MIG_DISABLE);
        if (o.mode == GPU_MODE_PASSTHROUGH && e->mode != GPU_MODE_PASSTHROUGH)
                TEARDOWN(STEP_RELEASE_VFIO);
        /* VFs: kept for sriov (set below) and vendor vGPU (they carry the vGPUs) */
        bool vfs_needed = e->mode == GPU_MODE_SRIOV || (e->mode == GPU_MODE_VGPU && want_vendor);
        if (o.vfs > 0 && !vfs_needed) {
                Step *t = TEARDOWN(STEP_SRIOV_SET);
                t->vfs = 0;
        }

        /* build-ups */
        switch (e->mode) {
        case GPU_MODE_PASSTHROUGH:
                if (o.mode != GPU_MODE_PASSTHROUGH) {
                        s = add_step(p, STEP_BIND_VFIO, d->addr);
                        if (!s)
                                return observed_done(&o), -ENOMEM;
                        s->force = e->force;
                        size_t ni = 0;
                        for (char **i = e->include; i && *i; i++)
                                if (strv_push(&s->include, &ni, strdup(*i)) < 0)
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
                unsigned have = vgpu_ok ? o.vgpu_count : 0;
                if (e->vgpu_units) {
                        r = plan_vgpu_units(p, d, e, want_type, vgpu_ok);
                        if (r < 0)
                                return observed_done(&o), r;
                } else if (have != e->vgpu_count) {
                        bool more = e->vgpu_count > have;
                        s = add_step(p, more ? STEP_VGPU_CREATE : STEP_VGPU_REMOVE, d->addr);
                        if (!s || !(s->vgpu_type = strdup(want_type)))
                                return observed_done(&o), -ENOMEM;
                        s->count = more ? e->vgpu_count - have : have - e->vgpu_count;
                }
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
                if (!inventory_is_gpu(d, false))
                        continue;
                const GpuEntry *e = NULL;
                r = host_spec_match(spec, d, &e, &p.error);
                if (r < 0 || !e)
                        continue;
                r = plan_gpu(&p, d, e, &teardown, &n_teardown);
        }
        /* An address entry that names no GPU on this host is a mistake in the file. */
        for (size_t i = 0; r >= 0 && i < spec->n_entries; i++) {
                const GpuEntry *e = &spec->entries[i];
                if (e->select != SELECT_ADDRESS)
                        continue;
                const PciDevice *d = pci_host_find(p.host.pci, e->addr);
                if (!d)
                        r = reject(&p, e, "no PCI device %s on this host", e->addr);
                else if (!inventory_is_gpu(d, false))
                        r = reject(&p, e, "%s is not a GPU (class %06x)", e->addr, d->class);
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

static int run_vgpu_create(Root *root, const Step *s, char **err) {
        bool vendor = vendor_vgpu_is_parent(root, s->device);
        unsigned done = 0;
        for (char **u = s->units; u && *u; u++) {
                int r;
                if (vendor) {
                        _cleanup_free_ char *cur = NULL, *vf = NULL;
                        unsigned type = 0;
                        if (root_read_attr(root, &cur, "sys/bus/pci/devices/%s/nvidia/current_vgpu_type", *u) >= 0 &&
                            !streq(cur, "0"))
                                continue; /* made by an earlier (interrupted) run */
                        r = vendor_vgpu_create(root, *u, s->vgpu_type, &vf, &type, err);
                } else {
                        if (root_exists(root, "sys/bus/mdev/devices/%s", *u))
                                continue;
                        r = mdev_create(root, s->device, s->vgpu_type, *u, NULL, 0, err);
                        if (r == -EEXIST)
                                continue;
                }
                if (r < 0)
                        return r;
        }
        if (s->units)
                return 0;
        for (unsigned idx = 0; done < s->count && idx < 256; idx++) {
                if (vendor) {
                        _cleanup_free_ char *vf = NULL;
                        unsigned type = 0;
                        int r = vendor_vgpu_create(root, s->device, s->vgpu_type, &vf, &type, err);
                        if (r < 0)
                                return r;
                        done++;
                        continue;
                }
                char uuid[MDEV_UUID_STRLEN];
                vgpu_uuid(s->device, idx, uuid);
                if (root_exists(root, "sys/bus/mdev/devices/%s", uuid))
                        continue; /* made by an earlier (interrupted) run */
                int r = mdev_create(root, s->device, s->vgpu_type, uuid, NULL, 0, err);
                if (r == -EEXIST)
                        continue;
                if (r < 0)
                        return r;
                done++;
        }
        return done == s->count ? 0 : -EUSERS;
}

static int run_vgpu_remove(Root *root, const Step *s, char **err) {
        for (char **x = s->units; x && *x; x++) {
                int r = mdev_uuid_parse(*x, (char[MDEV_UUID_STRLEN]){}) >= 0 ? mdev_remove(root, *x, false, err)
                                                                              : vendor_vgpu_remove(root, *x, false, err);
                if (r < 0 && r != -ENOENT)
                        return r;
        }
        if (s->units)
                return 0;
        VendorVgpuUnit *u = NULL;
        size_t nu = 0;
        unsigned done = 0;
        if (vendor_vgpu_units(root, &u, &nu) >= 0) {
                int r = 0;
                for (size_t i = nu; i-- > 0 && (!s->count || done < s->count);) {
                        char id[16];
                        snprintf(id, sizeof id, "%u", u[i].type);
                        if (!u[i].active || !streq(u[i].pf, s->device) || (s->vgpu_type && !streq(id, s->vgpu_type)))
                                continue;
                        r = vendor_vgpu_remove(root, u[i].vf, true, err);
                        if (r < 0 && r != -ENOENT)
                                break;
                        r = 0;
                        done++;
                }
                vendor_vgpu_units_free(u, nu);
                if (r < 0)
                        return r;
        }
        MdevDevice *m = NULL;
        size_t nm = 0;
        int r = mdev_list(root, &m, &nm);
        if (r < 0)
                return r;
        for (size_t i = nm; i-- > 0 && (!s->count || done < s->count);) {
                if (!m[i].active || !m[i].parent || !streq(m[i].parent, s->device) ||
                    (s->vgpu_type && (!m[i].type || !streq(m[i].type, s->vgpu_type))))
                        continue;
                r = mdev_remove(root, m[i].uuid, false, err);
                if (r < 0 && r != -ENOENT)
                        break;
                r = 0;
                done++;
        }
        mdev_list_free(m, nm);
        return r;
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
                                                     : strdup(strna(rep.error));
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
                        *err = vr.error ? strdup(vr.error) : NULL;
                vfio_report_done(&vr);
                return r;
        case STEP_RELEASE_VFIO:
                vo.force = false;
                r = vfio_disable(root, s->device, &vo, &vr);
                if (r < 0)
                        *err = vr.error ? strdup(vr.error) : NULL;
                vfio_report_done(&vr);
                return r;
        case STEP_SRIOV_SET: {
                SriovOptions so = {.vfio = s->vfio, .settle_ms = 5000};
                r = sriov_set(root, s->device, s->vfs, &so, &sr);
                if (r < 0)
                        *err = sr.error ? strdup(sr.error) : NULL;
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

int host_recover(Root *root, char **ret_step, char **ret_error) {
        *ret_step = NULL;
        json_object *o = NULL;
        int r = state_read_json(root, &o, HOST_JOURNAL_FILE);
        if (r == -ENOENT)
                return 0;
        Step s = {};
        if (r >= 0)
                r = step_from_json(json_object_object_get(o, "step"), &s);
        json_object_put(o);
        if (r < 0) {
                *ret_error = strdup_printf(HOST_JOURNAL_FILE " is damaged; remove it and run 'gpuvirt apply'");
                return r;
        }
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
        return r;
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
                if ((r = observe(&h, d, &o)) < 0)
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
