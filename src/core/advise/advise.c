/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/advise/advise.h"
#include "basic/fileio.h"
#include "basic/json-util.h"
#include "core/host/inventory.h"
#include "core/host/iommu.h"
#include "core/fleet/fleet.h"

typedef struct Ctx {
        const PciHost *host;
        const CheckReport *check;
        const MigGpu *gpus;
        size_t n_gpus;
        const AdviseRequest *req;
        const WorkloadFacts *wf;
        IommuState iommu;
} Ctx;

typedef struct Gpu {
        const PciDevice *d;
        json_object *inv;   /* the inventory's device object */
        const MigGpu *mig;  /* NULL when NVML does not know it */
        bool consumer;      /* check's consumer-gpu verdict */
        const Fleet *fleet; /* advise --fleet: the pool's GPU (NULL: a GPU of this host) */
        uint32_t fleet_gpu;
} Gpu;

/* A pool GPU that serves units now (the fleet's or its host's own): it keeps its mode. */
static bool pool_in_use(const FleetGpuInfo *gi) {
        return gi->n_units > 0 || gi->base_occ > 0 || gi->base_vgpu_count > 0 || gi->base_vfs_used > 0;
}

/* At most cap units of a kind (idx: MIG profile / vGPU type): on a pool GPU in use, what is free on it now
 * (the scheduler's count); an idle one, like a host's GPU, may change mode. */
static unsigned pool_cap(const Gpu *g, FleetKind k, int idx, unsigned cap) {
        if (!g->fleet || !pool_in_use(fleet_gpu(g->fleet, g->fleet_gpu)))
                return cap;
        return MIN(cap, fleet_gpu_free_units(g->fleet, g->fleet_gpu, k, idx));
}

/* One way to lay a mode out on a GPU. */
typedef struct Layout {
        GpuMode mode;
        unsigned capacity;          /* tenants it serves */
        unsigned long long unit_mb; /* GPU memory of each tenant, 0: not known */
        char unit[64];              /* "1g.5gb", "nvidia-222", "1047", "VF", "GPU" */
        char unit_name[64];         /* "GRID T4-1B", "NVIDIA H100-10C", "" */
        UnitPath path;
} Layout;

/* The length of an array that may be JSON null. */
static size_t alen(json_object *a) {
        return json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}

#define push(arr, ...) json_object_array_add((arr), json_string_printf(__VA_ARGS__))

static void push_mode(json_object *arr, GpuMode m, const char *reason) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "mode", json_object_new_string(gpu_mode_to_string(m)));
        json_object_object_add(o, "reason", json_object_new_string(reason));
        json_object_array_add(arr, o);
}

/* check's verdict of that id, for the device (NULL: a host check). */
static const CheckResult *verdict(const Ctx *c, const char *id, const PciDevice *d) {
        for (size_t i = 0; c->check && i < c->check->n_results; i++) {
                const CheckResult *x = &c->check->results[i];
                if (streq(x->id, id) && (d ? x->device && streq(x->device, d->addr) : !x->device))
                        return x;
        }
        return NULL;
}

static bool failed(const CheckResult *x) {
        return x && x->status == CHECK_FAIL;
}

static json_object *modes_of(const Gpu *g, const char *mode) {
        return json_object_object_get(json_object_object_get(g->inv, "modes"), mode);
}

static bool is_nvidia_vgpu(const Gpu *g) {
        return g->d->vendor == PCI_VENDOR_NVIDIA && (modes_of(g, "mdev") || modes_of(g, "vendor_vgpu"));
}

/* The IOMMU rules a mode out: the kernel runs without one. */
static char *no_iommu(const Ctx *c) {
        if (c->iommu != IOMMU_OFF)
                return NULL;
        const CheckResult *x = verdict(c, "iommu-kernel", NULL);
        return strdup_printf("no IOMMU (%s): VMs reach devices only through it", x ? x->message : "no IOMMU groups");
}

/* Passthrough: the inventory's verdict (passthrough_blocker), a shared group named by what shares it. */
static char *passthrough_ruled_out(const Ctx *c, const Gpu *g) {
        if (g->fleet) {
                const FleetGpuInfo *gi = fleet_gpu(g->fleet, g->fleet_gpu);
                return gi->isolated ? NULL : strdup(gi->isolation_reason ?: "not isolated (as its host publishes it)");
        }
        char *r = no_iommu(c);
        if (r)
                return r;
        _cleanup_free_ GroupMember *m = NULL;
        size_t n = 0;
        if (g->d->iommu_group >= 0 && iommu_group_members(c->host, g->d, &m, &n) >= 0)
                for (size_t i = 0; i < n; i++) {
                        if (m[i].kind != GROUP_MEMBER_FOREIGN)
                                continue;
                        const PciDevice *f = m[i].device;
                        bool usb = pci_device_class(f) == 0x0c03;
                        return strdup_printf("IOMMU group %d is shared with %s%s%s%s%s: they go to a VM together "
                                             "or not at all",
                                             g->d->iommu_group, usb ? "the host's USB controller " : "", f->addr,
                                             f->driver ? " (" : "", f->driver ?: "", f->driver ? ")" : "");
                }
        _cleanup_free_ char *b = passthrough_blocker(c->host, g->d);
        if (b && g->d->boot_vga == 1)
                return strdup("the boot VGA (host console): passthrough takes the console away");
        return b ? strdup(b) : NULL;
}

static char *consumer_reason(void) {
        return strdup("a consumer GeForce card: NVIDIA enables no SR-IOV, vGPU or MIG on it");
}

static char *ruled_out(const Ctx *c, const Gpu *g, GpuMode m) {
        const CheckResult *x;
        if (pci_device_is_dead(g->d))
                return pci_device_dead_reason(g->d);
        switch (m) {
        case GPU_MODE_PASSTHROUGH:
                return passthrough_ruled_out(c, g);
        case GPU_MODE_SRIOV:
                if (g->consumer)
                        return consumer_reason();
                if (g->d->sriov_totalvfs <= 0)
                        return strdup("no SR-IOV capability");
                if (g->d->vendor == PCI_VENDOR_NVIDIA)
                        return strdup("NVIDIA's VFs carry vendor vGPU types (vgpu mode), not plain VFs");
                if ((x = verdict(c, "mxgpu-host", g->d)) && x->status != CHECK_PASS)
                        return strdup(x->message);
                if ((x = verdict(c, "intel-sriov-host", g->d)) && x->status != CHECK_PASS)
                        return strdup(x->message);
                return no_iommu(c);
        case GPU_MODE_VGPU:
                if (g->consumer)
                        return consumer_reason();
                if (!modes_of(g, "mdev") && !modes_of(g, "vendor_vgpu"))
                        return strdup("no vGPU types (no vGPU host driver for it, or the GPU has none)");
                if (failed(x = verdict(c, "nvidia-vgpu-host", g->d)) || failed(x = verdict(c, "gvt-g-host", g->d)))
                        return strdup(x->message);
                if (is_nvidia_vgpu(g) && (x = verdict(c, "vgpu-license", NULL)) && x->status != CHECK_PASS)
                        return strdup("no license server configured: NVIDIA vGPU needs one (gridd.conf "
                                      "ServerAddress, or a client configuration token)");
                if (modes_of(g, "vendor_vgpu"))
                        return no_iommu(c);
                return NULL;
        case GPU_MODE_MIG:
                if (g->consumer)
                        return consumer_reason();
                if (!json_object_get_boolean(json_object_object_get(modes_of(g, "mig"), "capable")))
                        return strdup("not a MIG-capable GPU");
                if (!g->mig)
                        return strdup("NVML not available: the GPU's MIG profiles are unknown");
                return NULL;
        default:
                return NULL;
        }
}

/* How the units of a mode reach a VM on this GPU (what decides live migration). */
static UnitPath unit_path(const Gpu *g, GpuMode m) {
        switch (m) {
        case GPU_MODE_VGPU:
                if (modes_of(g, "vendor_vgpu"))
                        return UNIT_PATH_VF_NVIDIA;
                if (g->d->vendor == PCI_VENDOR_NVIDIA)
                        return UNIT_PATH_MDEV_NVIDIA;
                if (g->d->vendor == PCI_VENDOR_INTEL)
                        return UNIT_PATH_MDEV_GVTG;
                return UNIT_PATH_MDEV_OTHER;
        case GPU_MODE_MIG:
                return UNIT_PATH_MIG;
        default:
                return UNIT_PATH_VFIO_PCI;
        }
}

/* What the request excludes of a mode this host can do. */
static char *excluded(const Ctx *c, const Gpu *g, GpuMode m) {
        const ModeFacts *f = mode_facts(m);
        bool in_order = false;
        for (size_t i = 0; i < c->wf->n_order; i++)
                in_order = in_order || c->wf->order[i] == m;
        if (!in_order)
                return strdup_printf("does not fit %s workloads (it fits %s)", workload_to_string(c->req->workload),
                                     f->fits);
        if (c->req->isolation >= 0 && f->isolation < c->req->isolation)
                return strdup_printf("%s isolation, less than the %s isolation asked", isolation_to_string(f->isolation),
                                     isolation_to_string(c->req->isolation));
        const MigrationFacts *mf = migration_facts(unit_path(g, m));
        if (c->req->live_migration && !mf->migratable)
                return strdup_printf("not live-migratable: %s (%s)", mf->what, mf->why);
        return NULL;
}

/* The number in a vGPU type name before its series letter ("GRID T4-2B4": 2, 'B'; "NVIDIA H100-10C": 10, 'C'). */
static bool type_series(const char *name, unsigned *ret_gb, char *ret_series) {
        const char *dash = name ? strrchr(name, '-') : NULL;
        unsigned gb = 0;
        int k = 0;
        if (!dash || sscanf(dash + 1, "%u%n", &gb, &k) != 1 || !dash[1 + k])
                return false;
        *ret_gb = gb;
        *ret_series = dash[1 + k];
        return true;
}

/* Among candidates: want 0 and no preference for large units: the most tenants (the larger unit on a tie);
 * want 0 and large units: the largest unit; want N: the largest unit that serves N, else the most tenants. */
static bool better(const Ctx *c, unsigned want, const Layout *a, const Layout *best) {
        if (best->capacity == 0)
                return true;
        if (want == 0 && c->wf->largest_unit)
                return a->unit_mb > best->unit_mb;
        if (want > 0) {
                bool af = a->capacity >= want, bf = best->capacity >= want;
                if (af != bf)
                        return af;
                if (af)
                        return a->unit_mb > best->unit_mb;
        }
        return a->capacity > best->capacity || (a->capacity == best->capacity && a->unit_mb > best->unit_mb);
}

static unsigned long long memory_min_mb(const Ctx *c) {
        return (unsigned long long)c->req->memory_gb * 1024;
}

/* A unit of unknown memory passes; the trade-offs say it was not checked. */
static bool memory_ok(const Ctx *c, unsigned long long unit_mb) {
        return unit_mb == 0 || unit_mb >= memory_min_mb(c);
}

static unsigned long long gpu_memory_mb(const Gpu *g) {
        unsigned long long mb = g->fleet ? fleet_gpu(g->fleet, g->fleet_gpu)->model.memory_mb : 0;
        for (size_t i = 0; g->mig && i < g->mig->n_profiles; i++)
                mb = MAX(mb, g->mig->profiles[i].memory_mb);
        json_object *types = json_object_object_get(modes_of(g, "mdev"), "types");
        for (size_t i = 0; i < alen(types); i++)
                mb = MAX(mb, (unsigned long long)MAX(0, json_object_get_int64(json_object_object_get(
                                                                 json_object_array_get_idx(types, i), "framebuffer_mb"))));
        types = json_object_object_get(modes_of(g, "vendor_vgpu"), "types");
        for (size_t i = 0; i < alen(types); i++) {
                unsigned gb;
                char s;
                if (type_series(json_object_get_string(json_object_object_get(json_object_array_get_idx(types, i), "name")),
                                &gb, &s))
                        mb = MAX(mb, (unsigned long long)gb * 1024);
        }
        return mb;
}

static void consider(const Ctx *c, unsigned want, const Layout *l, Layout *best) {
        if (l->capacity > 0 && memory_ok(c, l->unit_mb) && better(c, want, l, best))
                *best = *l;
}

static void layout_vgpu(const Ctx *c, const Gpu *g, unsigned want, Layout *best) {
        json_object *types = json_object_object_get(modes_of(g, "mdev"), "types");
        for (size_t i = 0; i < alen(types); i++) {
                json_object *t = json_object_array_get_idx(types, i);
                const char *name = json_object_get_string(json_object_object_get(t, "name"));
                unsigned gb;
                char series;
                if (g->d->vendor == PCI_VENDOR_NVIDIA && (!type_series(name, &gb, &series) || series != c->wf->vgpu_series))
                        continue;
                long long fb = json_object_get_int64(json_object_object_get(t, "framebuffer_mb"));
                int avail = json_object_get_int(json_object_object_get(t, "available_instances"));
                Layout l = {.mode = GPU_MODE_VGPU, .capacity = pool_cap(g, FLEET_VGPU, (int)i, (unsigned)MAX(avail, 0)),
                            .unit_mb = fb > 0 ? (unsigned long long)fb : 0, .path = unit_path(g, GPU_MODE_VGPU)};
                snprintf(l.unit, sizeof l.unit, "%s", json_object_get_string(json_object_object_get(t, "id")));
                snprintf(l.unit_name, sizeof l.unit_name, "%s", name ?: "");
                consider(c, want, &l, best);
        }
        json_object *vv = modes_of(g, "vendor_vgpu");
        types = json_object_object_get(vv, "types");
        int vfs = json_object_get_int(json_object_object_get(vv, "vfs")) -
                  json_object_get_int(json_object_object_get(vv, "vfs_in_use"));
        unsigned long long total = gpu_memory_mb(g);
        for (size_t i = 0; i < alen(types); i++) {
                json_object *t = json_object_array_get_idx(types, i);
                const char *name = json_object_get_string(json_object_object_get(t, "name"));
                unsigned gb;
                char series;
                if (!type_series(name, &gb, &series) || series != c->wf->vgpu_series || gb == 0)
                        continue;
                /* time-sliced types of one size: the GPU's memory divided, one VF each */
                unsigned long long n = total / ((unsigned long long)gb * 1024);
                Layout l = {.mode = GPU_MODE_VGPU,
                            .capacity = pool_cap(g, FLEET_VGPU, (int)i, (unsigned)MIN(n, (unsigned long long)MAX(vfs, 0))),
                            .unit_mb = (unsigned long long)gb * 1024, .path = UNIT_PATH_VF_NVIDIA};
                snprintf(l.unit, sizeof l.unit, "%d", json_object_get_int(json_object_object_get(t, "id")));
                snprintf(l.unit_name, sizeof l.unit_name, "%s", name);
                consider(c, want, &l, best);
        }
}

static void layout_mig(const Ctx *c, const Gpu *g, unsigned want, Layout *best) {
        for (size_t i = 0; i < g->mig->n_profiles; i++) {
                const MigProfile *p = &g->mig->profiles[i];
                if (strchr(p->name, '+'))
                        continue; /* media-engine variants: same slices, for video work */
                unsigned fit = 0;
                for (unsigned k = p->max; k > 0 && fit == 0; k--) {
                        unsigned counts[MIG_MAX_PROFILES] = {};
                        counts[i] = k;
                        _cleanup_free_ char *why = NULL;
                        if (mig_layout_fits(g->mig, counts, &why) == 0)
                                fit = k;
                }
                Layout l = {.mode = GPU_MODE_MIG, .capacity = pool_cap(g, FLEET_MIG, (int)i, fit), .unit_mb = p->memory_mb,
                            .path = UNIT_PATH_MIG};
                snprintf(l.unit, sizeof l.unit, "%s", p->name);
                consider(c, want, &l, best);
        }
}

/* The layout of mode m on the GPU for want tenants (0: as many as it serves); capacity 0 when no unit of it
 * meets the memory asked. */
static void layout(const Ctx *c, const Gpu *g, GpuMode m, unsigned want, Layout *ret) {
        *ret = (Layout){.mode = m, .path = unit_path(g, m)};
        Layout l = {.mode = m, .path = unit_path(g, m)};
        switch (m) {
        case GPU_MODE_PASSTHROUGH:
                l.capacity = pool_cap(g, FLEET_PASSTHROUGH, -1, 1);
                l.unit_mb = gpu_memory_mb(g);
                snprintf(l.unit, sizeof l.unit, "GPU");
                consider(c, want, &l, ret);
                break;
        case GPU_MODE_SRIOV:
                l.capacity = pool_cap(g, FLEET_VF, -1, (unsigned)MAX(g->d->sriov_totalvfs, 0));
                snprintf(l.unit, sizeof l.unit, "VF");
                consider(c, want, &l, ret);
                break;
        case GPU_MODE_VGPU:
                layout_vgpu(c, g, want, ret);
                break;
        case GPU_MODE_MIG:
                layout_mig(c, g, want, ret);
                break;
        default:
                break;
        }
}

static json_object *layout_json(const Layout *l, unsigned count) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "unit", json_object_new_string(l->unit));
        json_object_object_add(o, "unit_name", l->unit_name[0] ? json_object_new_string(l->unit_name) : NULL);
        json_object_object_add(o, "count", json_object_new_int((int)count));
        json_object_object_add(o, "memory_mb", l->unit_mb ? json_object_new_int64((int64_t)l->unit_mb) : NULL);
        return o;
}

static void tradeoffs(const Ctx *c, const Gpu *g, const Layout *l, json_object *arr) {
        const ModeFacts *f = mode_facts(l->mode);
        const MigrationFacts *mf = migration_facts(l->path);
        push(arr, "overhead %s (the comparison)", f->overhead);
        push(arr, "isolation: %s", isolation_to_string(f->isolation));
        if (mf->migratable)
                push(arr, "live migration: yes for %s; %s", mf->what, mf->why);
        else
                push(arr, "live migration: no for %s: %s", mf->what, mf->why);
        if (f->note)
                push(arr, "%s", f->note);
        if (l->mode == GPU_MODE_PASSTHROUGH && g->consumer)
                push(arr, "GeForce: NVIDIA drivers before R465 stop with Error 43 in a VM; hide KVM in the domain "
                          "(<kvm><hidden state='on'/></kvm>) or use a current driver");
        if (c->req->memory_gb && !l->unit_mb)
                push(arr, "the memory of each %s is not known to gpuvirt: %u GB per tenant was not checked",
                     l->unit, c->req->memory_gb);
}

static int advise_gpu(const Ctx *c, const Gpu *g, unsigned want, unsigned *ret_served, json_object **ret) {
        json_object *o = json_object_new_object();
        json_object *reasons = json_object_new_array(), *trade = json_object_new_array();
        json_object *out = json_object_new_array(), *excl = json_object_new_array();
        _cleanup_free_ char *nm = NULL;
        json_object_object_add(o, "address", json_object_new_string(g->d->addr));
        json_object_object_add(o, "name", json_object_get(json_object_object_get(g->inv, "name")));

        static const GpuMode all[] = {GPU_MODE_PASSTHROUGH, GPU_MODE_SRIOV, GPU_MODE_VGPU, GPU_MODE_MIG};
        GpuMode order[4];
        size_t n = 0;
        for (size_t i = 0; i < c->wf->n_order; i++)
                order[n++] = c->wf->order[i];
        for (size_t i = 0; i < ELEMENTSOF(all); i++) {
                bool in = false;
                for (size_t k = 0; k < n; k++)
                        in = in || order[k] == all[i];
                if (!in)
                        order[n++] = all[i];
        }
        Layout chosen = {.mode = GPU_MODE_HOST};
        bool settled = false; /* chosen serves what this GPU should take: later modes are alternatives */
        for (size_t i = 0; i < n; i++) {
                GpuMode m = order[i];
                _cleanup_free_ char *r = ruled_out(c, g, m);
                if (r) {
                        push_mode(out, m, r);
                        continue;
                }
                _cleanup_free_ char *e = excluded(c, g, m);
                if (e) {
                        push_mode(excl, m, e);
                        continue;
                }
                Layout l;
                layout(c, g, m, want, &l);
                if (l.capacity == 0) {
                        _cleanup_free_ char *why =
                                c->req->memory_gb ? strdup_printf("no unit with %u GB or more", c->req->memory_gb)
                                                  : strdup("no unit available");
                        push_mode(excl, m, why);
                        continue;
                }
                if (settled) {
                        _cleanup_free_ char *alt = strdup_printf("possible too (%u x %s%s%s%s); %s comes first for %s",
                                                                 want ? MIN(l.capacity, want) : l.capacity, l.unit,
                                                                 l.unit_name[0] ? " (" : "", l.unit_name,
                                                                 l.unit_name[0] ? ")" : "", mode_facts(chosen.mode)->title,
                                                                 workload_to_string(c->req->workload));
                        push_mode(excl, m, alt);
                        continue;
                }
                if (chosen.mode == GPU_MODE_HOST || l.capacity > chosen.capacity) {
                        if (chosen.mode != GPU_MODE_HOST)
                                push(reasons, "%s serves %u tenant(s) on this GPU, fewer than the %u it should take",
                                     mode_facts(chosen.mode)->title, chosen.capacity, want);
                        chosen = l;
                        settled = want == 0 || l.capacity >= want;
                }
        }
        unsigned served = 0;
        if (chosen.mode == GPU_MODE_HOST) {
                push(reasons, "no mode serves tenants on this GPU here: it stays with the host");
                json_object_object_add(o, "layout", NULL);
        } else {
                served = want ? MIN(chosen.capacity, want) : chosen.capacity;
                push(reasons, "%s", c->wf->why);
                if (chosen.mode != c->wf->order[0])
                        push(reasons, "%s, the first choice for %s, is not possible here (below): %s is the next that is",
                             mode_facts(c->wf->order[0])->title, workload_to_string(c->req->workload),
                             mode_facts(chosen.mode)->title);
                push(reasons, "%s fits %s (the comparison)", mode_facts(chosen.mode)->title, mode_facts(chosen.mode)->fits);
                if (chosen.unit_mb)
                        push(reasons, "%u x %s%s%s%s: %u tenant(s), %llu MiB of GPU memory each", served, chosen.unit,
                             chosen.unit_name[0] ? " (" : "", chosen.unit_name, chosen.unit_name[0] ? ")" : "", served,
                             chosen.unit_mb);
                else
                        push(reasons, "%u x %s%s%s%s: %u tenant(s)", served, chosen.unit, chosen.unit_name[0] ? " (" : "",
                             chosen.unit_name, chosen.unit_name[0] ? ")" : "", served);
                tradeoffs(c, g, &chosen, trade);
                json_object_object_add(o, "layout", layout_json(&chosen, served));
        }
        json_object_object_add(o, "mode", json_object_new_string(gpu_mode_to_string(chosen.mode)));
        json_object_object_add(o, "tenants", json_object_new_int((int)served));
        json_object_object_add(o, "reasons", reasons);
        json_object_object_add(o, "tradeoffs", trade);
        json_object_object_add(o, "ruled_out", out);
        json_object_object_add(o, "excluded", excl);
        *ret_served = served;
        *ret = o;
        return 0;
}

/* A GPU that the tenants no longer need. */
static json_object *idle_gpu(const Gpu *g) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "address", json_object_new_string(g->d->addr));
        json_object_object_add(o, "name", json_object_get(json_object_object_get(g->inv, "name")));
        json_object_object_add(o, "layout", NULL);
        json_object_object_add(o, "mode", json_object_new_string("host"));
        json_object_object_add(o, "tenants", json_object_new_int(0));
        json_object *r = json_object_new_array();
        push(r, "the GPUs before it serve every tenant asked: it stays with the host");
        json_object_object_add(o, "reasons", r);
        json_object_object_add(o, "tradeoffs", json_object_new_array());
        json_object_object_add(o, "ruled_out", json_object_new_array());
        json_object_object_add(o, "excluded", json_object_new_array());
        return o;
}

static json_object *request_json(const AdviseRequest *req) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "workload", json_object_new_string(workload_to_string(req->workload)));
        json_object_object_add(o, "tenants", req->tenants ? json_object_new_int((int)req->tenants) : NULL);
        json_object_object_add(o, "live_migration", json_object_new_boolean(req->live_migration));
        json_object_object_add(o, "isolation", json_string_or_null(isolation_to_string(req->isolation)));
        json_object_object_add(o, "memory_per_tenant_gb", req->memory_gb ? json_object_new_int((int)req->memory_gb) : NULL);
        json_object *d = json_object_new_array();
        for (char **x = req->devices; x && *x; x++)
                json_object_array_add(d, json_object_new_string(*x));
        json_object_object_add(o, "devices", d);
        return o;
}

static int advise_gpus(const Ctx *c, const Gpu *list, size_t n, const char *where, json_object **ret);

int advise_host(const PciHost *h, json_object *inventory, const CheckReport *check, const MigGpu *gpus,
                size_t n_gpus, const AdviseRequest *req, json_object **ret) {
        Ctx c = {.host = h, .check = check, .gpus = gpus, .n_gpus = n_gpus, .req = req,
                 .wf = workload_facts(req->workload), .iommu = iommu_state(h, NULL)};
        if (!c.wf)
                return -EINVAL;
        for (char **x = req->devices; x && *x; x++) {
                bool found = false;
                for (size_t i = 0; i < alen(inventory) && !found; i++)
                        found = streq(json_object_get_string(json_object_object_get(
                                              json_object_array_get_idx(inventory, i), "address")), *x);
                if (!found)
                        return -EINVAL;
        }
        _cleanup_free_ Gpu *list = calloc(alen(inventory) + 1, sizeof *list);
        if (!list)
                return -ENOMEM;
        size_t n = 0;
        for (size_t i = 0; i < alen(inventory); i++) {
                json_object *inv = json_object_array_get_idx(inventory, i);
                const char *addr = json_object_get_string(json_object_object_get(inv, "address"));
                const PciDevice *d = addr ? pci_host_find((PciHost *)h, addr) : NULL;
                if (!d || (req->devices && !strv_contains(req->devices, addr)))
                        continue;
                const MigGpu *mg = NULL;
                for (size_t k = 0; k < n_gpus && !mg; k++)
                        if (streq(gpus[k].address, addr) && gpus[k].capable && !gpus[k].lost)
                                mg = &gpus[k];
                const CheckResult *cons = verdict(&c, "consumer-gpu", d);
                list[n++] = (Gpu){.d = d, .inv = inv, .mig = mg, .consumer = cons && cons->status != CHECK_PASS};
        }
        return advise_gpus(&c, list, n, "this host", ret);
}

/* The advice over the GPUs of list in order (the tenants spread evenly over those left), as the one JSON
 * model; where names them in the warnings ("this host", "the fleet"). */
static int advise_gpus(const Ctx *c, const Gpu *list, size_t n, const char *where, json_object **ret) {
        const AdviseRequest *req = c->req;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "request", request_json(req));
        json_object *ja = json_object_new_array();
        unsigned served = 0, rem = req->tenants;
        for (size_t i = 0; i < n; i++) {
                if (req->tenants && rem == 0) {
                        json_object_array_add(ja, idle_gpu(&list[i]));
                        continue;
                }
                unsigned want = req->tenants ? (rem + (unsigned)(n - i) - 1) / (unsigned)(n - i) : 0, got = 0;
                json_object *g = NULL;
                int r = advise_gpu(c, &list[i], want, &got, &g);
                if (r < 0) {
                        json_object_put(ja);
                        json_object_put(o);
                        return r;
                }
                json_object_array_add(ja, g);
                served += got;
                rem -= MIN(rem, got);
        }
        json_object_object_add(o, "gpus", ja);
        json_object *t = json_object_new_object();
        json_object_object_add(t, "asked", req->tenants ? json_object_new_int((int)req->tenants) : NULL);
        json_object_object_add(t, "served", json_object_new_int((int)served));
        json_object_object_add(o, "tenants", t);
        json_object *w = json_object_new_array();
        if (req->tenants && served < req->tenants)
                push(w, "%u tenant(s) asked, %u served: %s lacks the units (see what each GPU rules out)",
                     req->tenants, served, where);
        if (served == 0)
                push(w, "no GPU of %s serves a tenant for this request", where);
        json_object_object_add(o, "warnings", w);
        *ret = o;
        return 0;
}

int advise_host_spec(json_object *advice, HostSpec **ret) {
        _cleanup_host_spec_free_ HostSpec *s = calloc(1, sizeof *s);
        json_object *gpus = json_object_object_get(advice, "gpus");
        size_t n = alen(gpus);
        if (!s || !(s->entries = calloc(n + 1, sizeof *s->entries)))
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *g = json_object_array_get_idx(gpus, i);
                json_object *l = json_object_object_get(g, "layout");
                GpuEntry *e = &s->entries[s->n_entries++];
                *e = (GpuEntry){.select = SELECT_ADDRESS,
                                .mode = gpu_mode_from_string(json_object_get_string(json_object_object_get(g, "mode")))};
                snprintf(e->addr, sizeof e->addr, "%s", json_object_get_string(json_object_object_get(g, "address")));
                unsigned count = (unsigned)json_object_get_int(json_object_object_get(l, "count"));
                const char *unit = json_object_get_string(json_object_object_get(l, "unit"));
                switch (e->mode) {
                case GPU_MODE_SRIOV:
                        e->vfs = count;
                        e->vfs_vfio = true;
                        break;
                case GPU_MODE_VGPU:
                        if (!(e->vgpu_type = strdup(unit)))
                                return -ENOMEM;
                        e->vgpu_count = count;
                        break;
                case GPU_MODE_MIG:
                        if (!(e->mig = calloc(1, sizeof *e->mig)) || !(e->mig[0].profile = strdup(unit)))
                                return -ENOMEM;
                        e->mig[0].count = count;
                        e->n_mig = 1;
                        break;
                default:
                        break;
                }
        }
        *ret = TAKE_PTR(s);
        return 0;
}

/* ---- advise --fleet: the same decision over the pool's GPUs ---- */

/* What the pool does not carry of what the host-local advice reads. */
#define FLEET_HOST_DECIDES                                                                                         \
        "the pool carries the model, its units and the host's isolation verdict, not check's verdicts (the vendor " \
        "host driver, the vGPU license server, a consumer card): the host's own gpuvirt advise decides those"

/* The inventory object advise_gpu() reads, from what the host published of the GPU. */
static json_object *pool_inventory(const FleetGpuInfo *gi) {
        const FleetModelInfo *m = &gi->model;
        json_object *o = json_object_new_object(), *modes = json_object_new_object();
        json_object_object_add(o, "address", json_object_new_string(gi->address));
        json_object_object_add(o, "name", json_object_new_string(m->name));
        if (m->n_types > 0) {
                json_object *mode = json_object_new_object(), *types = json_object_new_array();
                for (size_t i = 0; i < m->n_types; i++) {
                        json_object *t = json_object_new_object();
                        unsigned gb;
                        char series;
                        if (m->vgpu_vendor) {
                                uint32_t id = 0;
                                (void)parse_u32(m->types[i].id, 10, &id);
                                json_object_object_add(t, "id", json_object_new_int((int)id));
                        } else {
                                json_object_object_add(t, "id", json_object_new_string(m->types[i].id));
                                json_object_object_add(t, "available_instances", json_object_new_int((int)m->types[i].max));
                                json_object_object_add(t, "framebuffer_mb", json_object_new_int64(
                                        type_series(m->types[i].name, &gb, &series) ? (int64_t)gb * 1024 : 0));
                        }
                        json_object_object_add(t, "name", json_object_new_string(m->types[i].name));
                        json_object_array_add(types, t);
                }
                json_object_object_add(mode, "types", types);
                if (m->vgpu_vendor) {
                        json_object_object_add(mode, "vfs", json_object_new_int((int)m->total_vfs));
                        json_object_object_add(mode, "vfs_in_use", json_object_new_int(0));
                }
                json_object_object_add(modes, m->vgpu_vendor ? "vendor_vgpu" : "mdev", mode);
        }
        json_object *mig = json_object_new_object();
        json_object_object_add(mig, "capable", json_object_new_boolean(m->n_mig > 0));
        json_object_object_add(modes, "mig", mig);
        json_object_object_add(o, "modes", modes);
        return o;
}

int advise_fleet(const Fleet *f, const AdviseRequest *req, json_object **ret) {
        Ctx c = {.req = req, .wf = workload_facts(req->workload), .iommu = IOMMU_ON};
        if (!c.wf)
                return -EINVAL;
        size_t n_all = fleet_n_gpus(f), n = 0;
        _cleanup_free_ Gpu *list = calloc(n_all + 1, sizeof *list);
        _cleanup_free_ PciDevice *devs = calloc(n_all + 1, sizeof *devs);
        _cleanup_free_ MigGpu *migs = calloc(n_all + 1, sizeof *migs);
        json_object *invs = json_object_new_array(), *left_out = json_object_new_array();
        int r = list && devs && migs && invs && left_out ? 0 : -ENOMEM;
        for (uint32_t i = 0; i < n_all && r >= 0; i++) {
                const FleetGpuInfo *gi = fleet_gpu(f, i);
                int h = fleet_host_find(f, gi->host);
                if (h < 0 || !fleet_host_up(f, (uint32_t)h) || gi->drain) {
                        push(left_out, "%s %s: %s", gi->host, gi->address, gi->drain ? "draining" : "its host is down");
                        continue;
                }
                PciDevice *d = &devs[n];
                (void)pci_addr_parse(gi->address, &d->a);
                *d = (PciDevice){.a = d->a, .vendor = gi->model.vendor, .device = gi->model.device, .iommu_group = -1,
                                 .numa_node = gi->numa, .boot_vga = -1, .sriov_totalvfs = (int)gi->model.total_vfs,
                                 .sriov_numvfs = -1};
                snprintf(d->addr, sizeof d->addr, "%s", gi->address);
                MigGpu *mg = NULL;
                if (gi->model.n_mig > 0) {
                        mg = &migs[n];
                        snprintf(mg->address, sizeof mg->address, "%s", gi->address);
                        mg->capable = true;
                        mg->slices = gi->model.mig_slices;
                        mg->n_profiles = gi->model.n_mig;
                        memcpy(mg->profiles, gi->model.mig, sizeof mg->profiles);
                }
                json_object *inv = pool_inventory(gi);
                json_object_array_add(invs, inv);
                list[n++] = (Gpu){.d = d, .inv = inv, .mig = mg, .fleet = f, .fleet_gpu = i};
        }
        json_object *o = NULL;
        if (r >= 0)
                r = advise_gpus(&c, list, n, "the fleet", &o);
        if (r >= 0) {
                json_object *ga = json_object_object_get(o, "gpus");
                for (size_t i = 0; i < alen(ga); i++) {
                        json_object *g = json_object_array_get_idx(ga, i);
                        const FleetGpuInfo *gi = fleet_gpu(f, list[i].fleet_gpu);
                        json_object_object_add(g, "host", json_object_new_string(gi->host));
                        /* in use: the advice is what is left in the mode it has now */
                        json_object_object_add(g, "in_use", json_object_new_boolean(pool_in_use(gi)));
                        json_object_object_add(g, "mode_now", json_object_new_string(gpu_mode_to_string(
                                gi->n_units ? fleet_kind_mode(gi->units[0].kind) : gi->base_mode)));
                }
                json_object_object_add(o, "scope", json_object_new_string("fleet"));
                json_object_object_add(o, "host_decides", json_object_new_string(FLEET_HOST_DECIDES));
                json_object_object_add(o, "hosts", json_object_new_int((int)fleet_n_hosts(f)));
                json_object_object_add(o, "left_out", json_object_get(left_out));
        }
        json_object_put(invs);
        json_object_put(left_out);
        if (r < 0)
                return r;
        *ret = o;
        return 0;
}
