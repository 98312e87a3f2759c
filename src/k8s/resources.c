/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "core/host/inventory.h"
#include "core/host/names.h"
#include "core/mig/mig.h"
#include "core/state/hoststate.h"
#include "core/vgpu/mdev.h"
#include "core/vgpu/vendor-vgpu.h"
#include "k8s/cdi.h"
#include "k8s/resources.h"

static const char *const strategy_names[_MIG_STRATEGY_MAX] = {
        [MIG_STRATEGY_NONE] = "none",
        [MIG_STRATEGY_SINGLE] = "single",
        [MIG_STRATEGY_MIXED] = "mixed",
};

const char *mig_strategy_to_string(MigStrategy s) {
        return s >= 0 && s < _MIG_STRATEGY_MAX ? strategy_names[s] : NULL;
}

MigStrategy mig_strategy_from_string(const char *s) {
        for (size_t i = 0; i < _MIG_STRATEGY_MAX; i++)
                if (streq(strategy_names[i], s))
                        return (MigStrategy) i;
        return _MIG_STRATEGY_INVALID;
}

char *resource_name_part(const char *name) {
        size_t n = strlen(name);
        char *p = malloc(n + 1), *q = p;
        if (!p)
                return NULL;
        for (const char *s = name; *s; s++) {
                char c = *s;
                if (c == '/' || c == '.' || c == ' ' || c == '\t' || c == '_')
                        c = '_';
                else if (isalnum((unsigned char) c))
                        c = (char) toupper((unsigned char) c);
                else if (c != '-')
                        continue; /* '[', ']', '(', '+', ...: not in a resource name */
                if (c == '_' && (q == p || q[-1] == '_'))
                        continue; /* no leading or doubled separator */
                *q++ = c;
        }
        while (q > p && (q[-1] == '_' || q[-1] == '-'))
                q--;
        *q = '\0';
        if (q == p) {
                free(p);
                return strdup("DEVICE");
        }
        return p;
}

char *resource_env_name(const char *prefix, const char *resource) {
        char *e = strdup_printf("%s%s", prefix, resource);
        if (!e)
                return NULL;
        for (char *c = e + strlen(prefix); *c; c++)
                *c = *c == '/' || *c == '.' ? '_' : (char) toupper((unsigned char) *c);
        return e;
}

static const char *vendor_domain(uint16_t vendor) {
        switch (vendor) {
        case PCI_VENDOR_NVIDIA:
                return "nvidia.com";
        case PCI_VENDOR_INTEL:
                return "intel.com";
        case PCI_VENDOR_AMD:
                return "amd.com";
        default:
                return NULL;
        }
}

static void device_done(PluginDevice *d) {
        free(d->mdev_type);
        free(d->id);
        free(d->gpu);
        free(d->why_unhealthy);
}

void resource_set_done(ResourceSet *s) {
        for (size_t i = 0; i < s->n_resources; i++) {
                Resource *r = &s->resources[i];
                for (size_t j = 0; j < r->n_devices; j++)
                        device_done(&r->devices[j]);
                free(r->devices);
                free(r->name);
                free(r->endpoint);
        }
        free(s->resources);
        strv_free(s->cdi);
        *s = (ResourceSet) {};
}

const Resource *resource_set_find(const ResourceSet *s, const char *name) {
        for (size_t i = 0; i < s->n_resources; i++)
                if (streq(s->resources[i].name, name))
                        return &s->resources[i];
        return NULL;
}

static Resource *set_get(ResourceSet *s, const char *name, ResourceKind kind) {
        for (size_t i = 0; i < s->n_resources; i++)
                if (streq(s->resources[i].name, name))
                        return &s->resources[i];
        Resource *n = realloc(s->resources, (s->n_resources + 1) * sizeof(Resource));
        if (!n)
                return NULL;
        s->resources = n;
        Resource *r = &n[s->n_resources];
        *r = (Resource) {.kind = kind, .name = strdup(name), .endpoint = strdup_printf("gpuvirt-%s.sock", name)};
        if (!r->name || !r->endpoint) {
                free(r->name);
                free(r->endpoint);
                return NULL;
        }
        for (char *c = r->endpoint; *c; c++)
                if (*c == '/')
                        *c = '_';
        s->n_resources++;
        return r;
}

/* Add a unit; health from the daemon's file (its own entry or its GPU's) and from what the scan saw. */
static int add_device(ResourceSet *s, const char *name, ResourceKind kind, const char *id, const char *gpu,
                      int numa, int group, const char *dead, const HealthTable *health, PluginDevice **ret) {
        Resource *r = set_get(s, name, kind);
        if (!r)
                return -ENOMEM;
        PluginDevice *n = realloc(r->devices, (r->n_devices + 1) * sizeof(PluginDevice));
        if (!n)
                return -ENOMEM;
        r->devices = n;
        const char *why = dead;
        bool healthy = !dead && health_usable(health, id, gpu, &why);
        PluginDevice *d = &n[r->n_devices];
        *d = (PluginDevice) {
                .id = strdup(id),
                .gpu = strdup(gpu),
                .numa_node = numa,
                .iommu_group = group,
                .nvml_index = -1,
                .nvlink_domain = -1,
                .mig_gi = -1,
                .mig_ci = -1,
                .healthy = healthy,
                .why_unhealthy = why ? strdup(why) : NULL,
        };
        if (!d->id || !d->gpu || (why && !d->why_unhealthy)) {
                device_done(d);
                return -ENOMEM;
        }
        r->n_devices++;
        if (ret)
                *ret = d;
        return 0;
}

static int compare_devices(const void *a, const void *b) {
        return strcmp(((const PluginDevice *) a)->id, ((const PluginDevice *) b)->id);
}

static int compare_resources(const void *a, const void *b) {
        return strcmp(((const Resource *) a)->name, ((const Resource *) b)->name);
}

static int add_pci(ResourceSet *s, PciNames *names, const PciDevice *d, const char *gpu, const char *dead,
                   const HealthTable *health) {
        const char *domain = vendor_domain(d->vendor);
        if (!domain)
                return 0;
        _cleanup_free_ char *dn = pci_names_device(names, d->vendor, d->device);
        _cleanup_free_ char *part = dn ? resource_name_part(dn) : NULL;
        _cleanup_free_ char *name = part ? strdup_printf("%s/%s", domain, part) : NULL;
        if (!name)
                return -ENOMEM;
        return add_device(s, name, RESOURCE_PCI, d->addr, gpu, d->numa_node, d->iommu_group, dead, health, NULL);
}

static int add_mig(ResourceSet *s, const PluginConfig *c, const PciDevice *d, const MigGpu *g, const char *dead,
                   const HealthTable *health, const char *single_profile) {
        for (size_t i = 0; i < g->n_inst; i++) {
                const MigInstance *in = &g->inst[i];
                if (in->ci_id < 0 || isempty(in->uuid))
                        continue; /* a GPU instance without its compute instance is no MIG device */
                const char *profile = g->profiles[in->profile].name;
                _cleanup_free_ char *name = NULL;
                if (c->mig_strategy == MIG_STRATEGY_SINGLE) {
                        if (!streq(profile, single_profile))
                                continue;
                        name = strdup("nvidia.com/gpu");
                } else {
                        name = strdup_printf("nvidia.com/mig-%s", profile);
                        for (char *p = name ? name + strlen("nvidia.com/mig-") : NULL; p && *p; p++)
                                if (*p == '+')
                                        *p = '.';
                }
                if (!name)
                        return -ENOMEM;
                PluginDevice *pd;
                int r = add_device(s, name, c->mig_strategy == MIG_STRATEGY_SINGLE ? RESOURCE_GPU : RESOURCE_MIG,
                                   in->uuid, d->addr, d->numa_node, -1, dead, health, &pd);
                if (r < 0)
                        return r;
                pd->mig_start = in->start;
                pd->mig_size = in->size;
                pd->mig_gi = (int) in->gi_id;
                pd->mig_ci = in->ci_id;
        }
        return 0;
}

/* The single strategy offers MIG devices as nvidia.com/gpu only when they are all of one profile (as NVIDIA's
 * plugin requires): that profile, NULL when there are none, "" when they differ. */
static const char *single_profile(const HostObservation *obs) {
        const char *p = NULL;
        for (size_t i = 0; i < obs->n_mig; i++) {
                const MigGpu *g = &obs->mig[i];
                if (!g->capable || g->mode_current != NVML_DEVICE_MIG_ENABLE)
                        continue;
                for (size_t j = 0; j < g->n_inst; j++) {
                        if (g->inst[j].ci_id < 0)
                                continue;
                        const char *n = g->profiles[g->inst[j].profile].name;
                        if (!p)
                                p = n;
                        else if (!streq(p, n))
                                return "";
                }
        }
        return p;
}

/* The resource of an mdev type on parent d: the type's name as the vendor gives it ("GRID T4-2Q"), its id when
 * it has none. */
static char *mdev_resource_name(Root *root, const PciDevice *d, const char *domain, const char *type) {
        _cleanup_free_ char *tn = NULL;
        if (root_read_attr(root, &tn, "%s/mdev_supported_types/%s/name", d->syspath, type) < 0 || isempty(tn)) {
                free(tn);
                tn = strdup(type);
                if (!tn)
                        return NULL;
        }
        _cleanup_free_ char *part = resource_name_part(tn);
        return part ? strdup_printf("%s/%s", domain, part) : NULL;
}

static bool mdev_uuid_known(const HostObservation *obs, const char *uuid) {
        for (size_t i = 0; i < obs->n_mdevs; i++)
                if (streq(obs->mdevs[i].uuid, uuid))
                        return true;
        return false;
}

static int add_mdevs(ResourceSet *s, Root *root, const PluginConfig *c, const HostObservation *obs,
                     const PciDevice *d, const char *dead, const HealthTable *health) {
        const char *domain = vendor_domain(d->vendor);
        if (!domain)
                return 0;
        const char *type = NULL; /* the GPU's type (NVIDIA's time-sliced vGPUs: one type per GPU) */
        for (size_t i = 0; i < obs->n_mdevs; i++) {
                const MdevDevice *m = &obs->mdevs[i];
                if (!m->active || !m->parent || !streq(m->parent, d->addr) || !m->type)
                        continue;
                _cleanup_free_ char *name = mdev_resource_name(root, d, domain, m->type);
                if (!name)
                        return -ENOMEM;
                PluginDevice *pd;
                int r = add_device(s, name, RESOURCE_MDEV, m->uuid, d->addr, d->numa_node, m->iommu_group, dead,
                                   health, &pd);
                if (r < 0)
                        return r;
                if (!(pd->mdev_type = strdup(m->type)))
                        return -ENOMEM;
                type = type ?: m->type;
        }
        /* the type's free instances, when configured: offered under the stable UUIDs the host state gives a
         * parent's vGPUs (index 0, 1, ... not in use), so `gpuvirt apply` counts them as its own */
        if (!type || !strv_contains(c->create_mdev_types, type))
                return 0;
        _cleanup_free_ char *avail_s = NULL;
        uint32_t avail = 0;
        if (root_read_attr(root, &avail_s, "%s/mdev_supported_types/%s/available_instances", d->syspath, type) < 0 ||
            parse_u32(avail_s, 10, &avail) < 0)
                return 0;
        _cleanup_free_ char *name = mdev_resource_name(root, d, domain, type);
        if (!name)
                return -ENOMEM;
        for (unsigned idx = 0, n = 0; n < avail && idx < 1024; idx++) {
                char uuid[MDEV_UUID_STRLEN];
                host_vgpu_uuid(d->addr, idx, uuid);
                if (mdev_uuid_known(obs, uuid))
                        continue;
                PluginDevice *pd;
                int r = add_device(s, name, RESOURCE_MDEV, uuid, d->addr, d->numa_node, -1, dead, health, &pd);
                if (r < 0)
                        return r;
                pd->to_create = true;
                if (!(pd->mdev_type = strdup(type)))
                        return -ENOMEM;
                n++;
        }
        return 0;
}

/* NVIDIA vendor vGPU (SR-IOV VFs with a vGPU type set, Hopper and later): each VF goes to a VM whole through
 * its VFIO group, a PCI resource named after the type ("NVIDIA H100-4C" -> nvidia.com/NVIDIA_H100-4C). */
static int add_vendor_vgpus(ResourceSet *s, const HostObservation *obs, const PciDevice *d, const char *dead,
                            const HealthTable *health) {
        for (size_t i = 0; i < obs->n_units; i++) {
                const VendorVgpuUnit *u = &obs->units[i];
                if (!u->active || !streq(u->pf, d->addr))
                        continue;
                _cleanup_free_ char *tn = u->type_name ? strdup(u->type_name) : strdup_printf("vgpu-%u", u->type);
                _cleanup_free_ char *part = tn ? resource_name_part(tn) : NULL;
                _cleanup_free_ char *name = part ? strdup_printf("nvidia.com/%s", part) : NULL;
                if (!name)
                        return -ENOMEM;
                int r = add_device(s, name, RESOURCE_PCI, u->vf, d->addr, d->numa_node, u->iommu_group, dead, health,
                                   NULL);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* A GPU NVML no longer answers for (off the bus: NVML_ERROR_GPU_IS_LOST, no UUID, no instances): its whole GPU and
 * MIG devices as the last scan had them, Unhealthy with the reason, so kubelet sees them fail rather than
 * vanish (NVIDIA's plugin marks them unhealthy too). */
static int add_lost(ResourceSet *s, const ResourceSet *prev, const PciDevice *d, const char *dead) {
        for (size_t i = 0; prev && i < prev->n_resources; i++) {
                const Resource *pr = &prev->resources[i];
                if (pr->kind != RESOURCE_GPU && pr->kind != RESOURCE_MIG)
                        continue;
                for (size_t j = 0; j < pr->n_devices; j++) {
                        const PluginDevice *o = &pr->devices[j];
                        if (!streq(o->gpu, d->addr))
                                continue;
                        PluginDevice *pd;
                        int r = add_device(s, pr->name, pr->kind, o->id, o->gpu, o->numa_node, o->iommu_group, dead,
                                           NULL, &pd);
                        if (r < 0)
                                return r;
                        pd->mig_start = o->mig_start;
                        pd->mig_size = o->mig_size;
                        pd->mig_gi = o->mig_gi;
                        pd->mig_ci = o->mig_ci;
                        pd->nvml_index = o->nvml_index;
                }
        }
        return 0;
}

int resource_set_scan(Root *root, const PluginConfig *c, const HealthTable *health, const ResourceSet *prev,
                      ResourceSet *ret, GvError *err) {
        HostObservation obs = {};
        /* NVML through core's one handle per process (nvml_open()): initialised at the first rescan, again only
         * when the GPUs bound to nvidia changed; without NVML, no MIG devices, and it is tried again next time */
        int r = host_observe(root, &obs);
        if (r < 0)
                return gv_error_set(err, r, NULL, "observe", "cannot observe the host: %s", errno_message(r));
        _cleanup_pci_names_free_ PciNames *names = NULL;
        (void) pci_names_new(&names); /* without the database: "Device 20b0" names */
        const char *single = c->mig_strategy == MIG_STRATEGY_SINGLE ? single_profile(&obs) : NULL;
        if (single && !*single)
                log_debug("MIG devices of several profiles: the single strategy offers none of them");

        ResourceSet s = {};
        for (size_t i = 0; i < obs.pci->n_devices && r >= 0; i++) {
                const PciDevice *d = &obs.pci->devices[i];
                if (!inventory_is_gpu(d, false))
                        continue;
                GpuObservation o = {};
                r = host_observe_gpu(&obs, d, &o);
                if (r < 0)
                        break;
                _cleanup_free_ char *dead = pci_device_is_dead(d) ? pci_device_dead_reason(d) : NULL;
                if (!dead && o.mig && o.mig->lost)
                        dead = strdup("NVML reports the GPU lost");
                switch (o.mode) {
                case GPU_MODE_HOST:
                        if (c->containers && d->vendor == PCI_VENDOR_NVIDIA && o.mig && !isempty(o.mig->uuid)) {
                                PluginDevice *pd;
                                r = add_device(&s, "nvidia.com/gpu", RESOURCE_GPU, o.mig->uuid, d->addr,
                                               d->numa_node, -1, dead, health, &pd);
                                if (r >= 0)
                                        pd->nvml_index = (int) o.mig->index;
                        } else if (c->containers && d->vendor == PCI_VENDOR_NVIDIA && dead)
                                r = add_lost(&s, prev, d, dead); /* NVML has no UUID for it: what it was */
                        break;
                case GPU_MODE_MIG:
                        if (c->containers && c->mig_strategy != MIG_STRATEGY_NONE && o.mig &&
                            (c->mig_strategy == MIG_STRATEGY_MIXED || !isempty(single)))
                                r = add_mig(&s, c, d, o.mig, dead, health, single);
                        break;
                case GPU_MODE_PASSTHROUGH:
                        if (c->kubevirt)
                                r = add_pci(&s, names, d, d->addr, dead, health);
                        break;
                case GPU_MODE_SRIOV:
                        /* the VFs on vfio-pci go to VMs; the PF stays the host's */
                        for (size_t j = 0; c->kubevirt && j < obs.pci->n_devices && r >= 0; j++) {
                                const PciDevice *vf = &obs.pci->devices[j];
                                if (vf->physfn && streq(vf->physfn, d->addr) && vf->is_vfio)
                                        r = add_pci(&s, names, vf, d->addr,
                                                    dead ?: (pci_device_is_dead(vf) ? "the VF does not answer" : NULL),
                                                    health);
                        }
                        break;
                case GPU_MODE_VGPU:
                        if (c->kubevirt && o.vendor_vgpu)
                                r = add_vendor_vgpus(&s, &obs, d, dead, health);
                        else if (c->kubevirt)
                                r = add_mdevs(&s, root, c, &obs, d, dead, health);
                        break;
                default:
                        break;
                }
                gpu_observation_done(&o);
        }
        /* the NVLink domain of each unit's GPU, for GetPreferredAllocation */
        _cleanup_free_ int *dom = obs.n_mig > 0 ? calloc(obs.n_mig, sizeof *dom) : NULL;
        if (r >= 0 && obs.n_mig > 0 && (!dom || (r = mig_nvlink_domains(obs.nvml, obs.mig, obs.n_mig, dom)) < 0))
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < s.n_resources; i++)
                for (size_t k = 0; k < s.resources[i].n_devices; k++) {
                        PluginDevice *pd = &s.resources[i].devices[k];
                        for (size_t g = 0; g < obs.n_mig; g++)
                                if (streq(obs.mig[g].address, pd->gpu))
                                        pd->nvlink_domain = dom[g];
                }
        host_observation_done(&obs);
        if (r >= 0)
                r = cdi_device_names(root, &s.cdi);
        if (r < 0) {
                resource_set_done(&s);
                return gv_error_set(err, r, NULL, "observe", "cannot build the resources: %s", errno_message(r));
        }
        for (size_t i = 0; i < s.n_resources; i++)
                qsort(s.resources[i].devices, s.resources[i].n_devices, sizeof(PluginDevice), compare_devices);
        if (s.n_resources > 0)
                qsort(s.resources, s.n_resources, sizeof(Resource), compare_resources);
        *ret = s;
        return 0;
}

bool resource_equal(const Resource *a, const Resource *b) {
        if (!a || !b || a->n_devices != b->n_devices)
                return false;
        for (size_t i = 0; i < a->n_devices; i++) {
                const PluginDevice *x = &a->devices[i], *y = &b->devices[i];
                if (!streq(x->id, y->id) || x->healthy != y->healthy || x->numa_node != y->numa_node)
                        return false;
        }
        return true;
}

void container_alloc_done(ContainerAlloc *a) {
        for (size_t i = 0; i < a->n_env; i++) {
                free(a->env[i].name);
                free(a->env[i].value);
        }
        free(a->env);
        for (size_t i = 0; i < a->n_devices; i++) {
                free(a->devices[i].container_path);
                free(a->devices[i].host_path);
                free(a->devices[i].permissions);
        }
        free(a->devices);
        strv_free(a->cdi);
        *a = (ContainerAlloc) {};
}

static int alloc_env(ContainerAlloc *a, char *name, char *value) {
        if (!name || !value) {
                free(name);
                free(value);
                return -ENOMEM;
        }
        AllocEnv *n = realloc(a->env, (a->n_env + 1) * sizeof(AllocEnv));
        if (!n) {
                free(name);
                free(value);
                return -ENOMEM;
        }
        a->env = n;
        n[a->n_env++] = (AllocEnv) {name, value};
        return 0;
}

static int alloc_node(ContainerAlloc *a, const char *path) {
        for (size_t i = 0; i < a->n_devices; i++)
                if (streq(a->devices[i].host_path, path))
                        return 0;
        AllocDevice *n = realloc(a->devices, (a->n_devices + 1) * sizeof(AllocDevice));
        if (!n)
                return -ENOMEM;
        a->devices = n;
        AllocDevice *d = &n[a->n_devices];
        *d = (AllocDevice) {strdup(path), strdup(path), strdup("mrw")};
        if (!d->container_path || !d->host_path || !d->permissions) {
                free(d->container_path);
                free(d->host_path);
                free(d->permissions);
                return -ENOMEM;
        }
        a->n_devices++;
        return 0;
}

static const PluginDevice *resource_find_device(const Resource *r, const char *id) {
        for (size_t i = 0; i < r->n_devices; i++)
                if (streq(r->devices[i].id, id))
                        return &r->devices[i];
        return NULL;
}

static char *join_ids(char *const *ids, size_t n) {
        size_t len = 1;
        for (size_t i = 0; i < n; i++)
                len += strlen(ids[i]) + 1;
        char *s = malloc(len), *p = s;
        if (!s)
                return NULL;
        *p = '\0';
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        *p++ = ',';
                p = stpcpy(p, ids[i]);
        }
        return s;
}

static void remove_created(Root *root, char **created) {
        for (size_t i = 0; created && created[i]; i++) {
                GvError e = {};
                if (mdev_remove(root, created[i], false, &e) < 0)
                        log_debug("cannot remove mdev %s again: %s", created[i], gv_error_message(&e));
                gv_error_done(&e);
        }
}

/* Create the mdev pd stands for (the host lock held by the caller) and give its IOMMU group. */
static int create_mdev(Root *root, const PluginDevice *pd, int *ret_group, GvError *err) {
        GvError e = {};
        int r = mdev_create(root, pd->gpu, pd->mdev_type, pd->id, NULL, 0, &e);
        if (r < 0) {
                r = gv_error_set(err, r, pd->id, "allocate", "cannot create mdev %s: %s", pd->id, gv_error_message(&e));
                gv_error_done(&e);
                return r;
        }
        _cleanup_free_ char *link = root_path(root, "sys/bus/mdev/devices/%s/iommu_group", pd->id);
        _cleanup_free_ char *group = NULL;
        int g;
        if (!link || readlink_base(link, &group) < 0 || parse_int(group, &g) < 0 || g < 0)
                return gv_error_set(err, -ENODEV, pd->id, "allocate", "the new mdev %s has no IOMMU group", pd->id);
        *ret_group = g;
        return 0;
}

/* The nodes a container needs for GPUs and MIG devices, those the host has: the driver's control nodes
 * (/dev/nvidiactl, /dev/nvidia-uvm, /dev/nvidia-uvm-tools), each GPU's /dev/nvidia<minor> (of a MIG device:
 * its GPU's), and of a MIG device the capability nodes of its GPU instance and compute instance
 * (/dev/nvidia-caps/nvidia-cap<N>, N from the driver's mig-minors). A GPU the driver names no minor for (not
 * on nvidia, or a host without the proc files) gets no node of its own: the NVIDIA runtime finds it by UUID. */
static int alloc_nvidia_nodes(Root *root, const Resource *r, char *const *ids, size_t n_ids, ContainerAlloc *a) {
        /* each where the host has it: nvidia-modeset only where nvidia-modeset.ko is loaded (displays) */
        static const char *const control[] = {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools",
                                              "/dev/nvidia-modeset"};
        for (size_t i = 0; i < ELEMENTSOF(control); i++) {
                _cleanup_free_ char *p = root_path(root, "%s", control[i] + 1);
                if (!p)
                        return -ENOMEM;
                int q = path_exists(p) ? alloc_node(a, control[i]) : 0;
                if (q < 0)
                        return q;
        }
        for (size_t i = 0; i < n_ids; i++) {
                const PluginDevice *d = resource_find_device(r, ids[i]);
                unsigned minor, cap;
                if (nvidia_gpu_minor(root, d->gpu, &minor) < 0) {
                        log_debug("No device minor for GPU %s: no node of its own for %s", d->gpu, d->id);
                        continue;
                }
                const char *paths[3] = {};
                _cleanup_free_ char *gpu = strdup_printf("/dev/nvidia%u", minor), *gi = NULL, *ci = NULL;
                if (!gpu)
                        return -ENOMEM;
                paths[0] = gpu;
                if (d->mig_gi >= 0 && nvidia_mig_cap_minor(root, minor, (unsigned) d->mig_gi, -1, &cap) >= 0 &&
                    !(paths[1] = gi = strdup_printf("/dev/nvidia-caps/nvidia-cap%u", cap)))
                        return -ENOMEM;
                if (d->mig_gi >= 0 && d->mig_ci >= 0 &&
                    nvidia_mig_cap_minor(root, minor, (unsigned) d->mig_gi, d->mig_ci, &cap) >= 0 &&
                    !(paths[2] = ci = strdup_printf("/dev/nvidia-caps/nvidia-cap%u", cap)))
                        return -ENOMEM;
                for (size_t j = 0; j < ELEMENTSOF(paths); j++) {
                        int q = paths[j] ? alloc_node(a, paths[j]) : 0;
                        if (q < 0)
                                return q;
                }
        }
        return 0;
}

int resource_allocate(Root *root, const ResourceSet *set, const Resource *r, char *const *ids, size_t n_ids,
                      ContainerAlloc *ret, bool *ret_created, GvError *err) {
        if (n_ids == 0)
                return gv_error_set(err, -EINVAL, NULL, "allocate", "no device IDs requested of %s", r->name);
        if (n_ids > r->n_devices)
                return gv_error_set(err, -EINVAL, NULL, "allocate", "%zu devices requested of %s, which has %zu",
                                    n_ids, r->name, r->n_devices);
        for (size_t i = 0; i < n_ids; i++) {
                for (size_t j = 0; j < i; j++)
                        if (streq(ids[i], ids[j]))
                                return gv_error_set(err, -EINVAL, ids[i], "allocate", "device ID %s requested twice",
                                                    ids[i]);
                if (resource_find_device(r, ids[i]))
                        continue;
                for (size_t k = 0; k < set->n_resources; k++)
                        if (&set->resources[k] != r && resource_find_device(&set->resources[k], ids[i]))
                                return gv_error_set(err, -EINVAL, ids[i], "allocate",
                                                    "device ID %s is one of %s, not of %s", ids[i],
                                                    set->resources[k].name, r->name);
                return gv_error_set(err, -EINVAL, ids[i], "allocate", "unknown device ID %s for %s", ids[i], r->name);
        }

        ContainerAlloc a = {};
        _cleanup_close_ int lock_fd = -1;
        _cleanup_strv_free_ char **created = NULL;
        size_t n_created = 0;
        int q = 0;
        switch (r->kind) {
        case RESOURCE_GPU:
        case RESOURCE_MIG:
                /* the NVIDIA container runtime takes the GPUs and MIG devices by UUID and adds their nodes */
                q = alloc_env(&a, strdup("NVIDIA_VISIBLE_DEVICES"), join_ids(ids, n_ids));
                /* and where a CDI spec names them (nvidia-ctk: by UUID, or a GPU by its index), their CDI names */
                for (size_t i = 0; i < n_ids && q >= 0; i++) {
                        const PluginDevice *d = resource_find_device(r, ids[i]);
                        _cleanup_free_ char *by_uuid = strdup_printf("nvidia.com/gpu=%s", d->id);
                        _cleanup_free_ char *by_index = d->nvml_index >= 0 ? strdup_printf("nvidia.com/gpu=%d", d->nvml_index)
                                                                           : NULL;
                        if (!by_uuid || (d->nvml_index >= 0 && !by_index))
                                q = -ENOMEM;
                        else if (strv_contains(set->cdi, by_uuid))
                                q = strv_push(&a.cdi, &a.n_cdi, TAKE_PTR(by_uuid));
                        else if (by_index && strv_contains(set->cdi, by_index))
                                q = strv_push(&a.cdi, &a.n_cdi, TAKE_PTR(by_index));
                }
                /* and the device nodes, as NVIDIA's plugin passes them (--pass-device-specs) */
                if (q >= 0)
                        q = alloc_nvidia_nodes(root, r, ids, n_ids, &a);
                break;
        case RESOURCE_PCI:
        case RESOURCE_MDEV:
                /* KubeVirt's contract: the IDs in the resource's variable, the VFIO container and the groups */
                q = alloc_env(&a, resource_env_name(r->kind == RESOURCE_PCI ? "PCI_RESOURCE_" : "MDEV_PCI_RESOURCE_",
                                                    r->name),
                              join_ids(ids, n_ids));
                if (q >= 0)
                        q = alloc_node(&a, "/dev/vfio/vfio");
                for (size_t i = 0; i < n_ids && q >= 0; i++) {
                        const PluginDevice *d = resource_find_device(r, ids[i]);
                        int group = d->iommu_group;
                        if (d->to_create) {
                                if (lock_fd < 0 && (lock_fd = root_lock(root, 5000, err)) < 0) {
                                        q = lock_fd;
                                        break;
                                }
                                q = create_mdev(root, d, &group, err);
                                if (q < 0)
                                        break;
                                char *u = strdup(d->id);
                                if (!u || strv_push(&created, &n_created, u) < 0) {
                                        q = -ENOMEM;
                                        break;
                                }
                        }
                        if (group < 0) {
                                q = gv_error_set(err, -ENODEV, ids[i], "allocate", "%s has no IOMMU group", ids[i]);
                                break;
                        }
                        _cleanup_free_ char *node = strdup_printf("/dev/vfio/%d", group);
                        q = node ? alloc_node(&a, node) : -ENOMEM;
                }
                break;
        default:
                break;
        }
        if (q < 0) {
                container_alloc_done(&a);
                remove_created(root, created); /* a failed Allocate leaves the host as it was */
                if (err && !err->error)
                        (void) gv_error_set(err, q, NULL, "allocate", NULL);
                return q;
        }
        *ret = a;
        if (ret_created)
                *ret_created = n_created > 0;
        return 0;
}

typedef struct Candidate {
        const PluginDevice *d;
        unsigned gpu_allocated; /* units of the resource on the same GPU that are not available */
        bool on_node, in_domain;
} Candidate;

static int compare_candidates(const void *a, const void *b) {
        const Candidate *x = a, *y = b;
        if (x->on_node != y->on_node)
                return x->on_node ? -1 : 1;
        if (x->in_domain != y->in_domain)
                return x->in_domain ? -1 : 1;
        if (x->gpu_allocated != y->gpu_allocated)
                return x->gpu_allocated > y->gpu_allocated ? -1 : 1;
        int c = strcmp(x->d->gpu, y->d->gpu);
        if (c != 0)
                return c;
        if (x->d->mig_start != y->d->mig_start)
                return x->d->mig_start < y->d->mig_start ? -1 : 1;
        return strcmp(x->d->id, y->d->id);
}

static bool strv_n_contains(char *const *l, size_t n, const char *s) {
        for (size_t i = 0; i < n; i++)
                if (streq(l[i], s))
                        return true;
        return false;
}

static int numa_key(const PluginDevice *d) {
        return d->numa_node;
}

static int nvlink_key(const PluginDevice *d) {
        return d->nvlink_domain;
}

/* The group (key(): a NUMA node, an NVLink domain) to take a request of size units from: the one holding most
 * of must, else the one that fits the whole request with the least room left (when none can, the largest),
 * the lower number on a tie. skip_none: units whose key is -1 are in no group; on_node: only units there. */
static int pick_group(const PluginDevice *const *av, size_t n_av, char *const *must, size_t n_must, size_t size,
                      int (*key)(const PluginDevice *), bool skip_none, const int *on_node) {
        int group = -1;
        size_t best = 0;
        bool have = false;
        for (size_t i = 0; i < n_av; i++) {
                int g = key(av[i]);
                if ((skip_none && g < 0) || (on_node && av[i]->numa_node != *on_node))
                        continue;
                size_t in_must = 0, in_av = 0;
                for (size_t j = 0; j < n_av; j++)
                        if (key(av[j]) == g && (!on_node || av[j]->numa_node == *on_node)) {
                                in_av++;
                                in_must += strv_n_contains(must, n_must, av[j]->id);
                        }
                /* score: must-members first, then fitting the whole request, then the least room left */
                size_t score = in_must * 1000000 + (in_av >= size ? 100000 + (100000 - MIN(in_av - size, 99999)) : in_av);
                if (!have || score > best || (score == best && g < group)) {
                        have = true;
                        best = score;
                        group = g;
                }
        }
        return group;
}

int resource_preferred(const Resource *r, char *const *available, size_t n_available, char *const *must,
                       size_t n_must, int64_t want, char ***ret, GvError *err) {
        if (want < 0)
                return gv_error_set(err, -EINVAL, NULL, "preferred", "negative allocation size of %s", r->name);
        size_t size = (size_t) want;
        if (size < n_must || size > n_available)
                return gv_error_set(err, -EINVAL, NULL, "preferred",
                                    "allocation size %zu of %s: %zu IDs must be included, %zu are available", size,
                                    r->name, n_must, n_available);
        _cleanup_free_ const PluginDevice **av = calloc(n_available ?: 1, sizeof(*av));
        if (!av)
                return -ENOMEM;
        for (size_t i = 0; i < n_available; i++) {
                av[i] = resource_find_device(r, available[i]);
                if (!av[i])
                        return gv_error_set(err, -EINVAL, available[i], "preferred", "unknown device ID %s for %s",
                                            available[i], r->name);
                if (strv_n_contains(available, i, available[i]))
                        return gv_error_set(err, -EINVAL, available[i], "preferred", "device ID %s given twice",
                                            available[i]);
        }
        for (size_t i = 0; i < n_must; i++) {
                if (!strv_n_contains(available, n_available, must[i]))
                        return gv_error_set(err, -EINVAL, must[i], "preferred",
                                            "device ID %s must be included but is not available", must[i]);
                if (strv_n_contains(must, i, must[i])) /* else the answer would hold it twice */
                        return gv_error_set(err, -EINVAL, must[i], "preferred", "device ID %s must be included twice",
                                            must[i]);
        }

        /* the node: where most of must are; else the tightest fit of the rest of the request */
        int node = pick_group(av, n_available, must, n_must, size, numa_key, false, NULL);
        /* then, on that node, the NVLink domain chosen the same way (the units a multi-GPU job gets talk over
         * NVLink, directly or through an NVSwitch); a unit without one is in none */
        int domain = pick_group(av, n_available, must, n_must, size, nvlink_key, true, &node);

        _cleanup_free_ Candidate *c = calloc(n_available ?: 1, sizeof(*c));
        char **out = calloc(size + 1, sizeof(char *));
        if (!c || !out) {
                free(out);
                return -ENOMEM;
        }
        size_t n_out = 0, n_c = 0;
        for (size_t i = 0; i < n_must; i++)
                if (!(out[n_out++] = strdup(must[i]))) {
                        strv_free(out);
                        return -ENOMEM;
                }
        for (size_t i = 0; i < n_available; i++) {
                if (strv_n_contains(must, n_must, av[i]->id))
                        continue;
                unsigned allocated = 0;
                for (size_t j = 0; j < r->n_devices; j++)
                        if (streq(r->devices[j].gpu, av[i]->gpu) &&
                            !strv_n_contains(available, n_available, r->devices[j].id))
                                allocated++;
                c[n_c++] = (Candidate) {av[i], allocated, av[i]->numa_node == node,
                                        domain >= 0 && av[i]->nvlink_domain == domain};
        }
        if (n_c > 0)
                qsort(c, n_c, sizeof(*c), compare_candidates);
        for (size_t i = 0; n_out < size && i < n_c; i++)
                if (!(out[n_out++] = strdup(c[i].d->id))) {
                        strv_free(out);
                        return -ENOMEM;
                }
        *ret = out;
        return 0;
}
