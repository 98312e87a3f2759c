/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the plugin offers kubelet, from the host's state: one resource per kind of unit, each unit offered in
 * the one mode the host gives its GPU (core/state's observation): a GPU on its native driver as a whole GPU
 * for containers (nvidia.com/gpu), a GPU in MIG mode as its MIG devices (mixed: nvidia.com/mig-<profile>;
 * single: nvidia.com/gpu), a GPU or VF on vfio-pci as a KubeVirt passthrough device
 * (<vendor>/<DEVICE_NAME>, IDs the PCI addresses), mdevs as KubeVirt vGPUs (<vendor>/<TYPE NAME>, IDs the
 * UUIDs). Plus what Allocate answers for a set of IDs. No gRPC here: plugin.c puts it on the wire.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "basic/gverror.h"
#include "core/host/root.h"
#include "k8s/health.h"

typedef enum MigStrategy {
        MIG_STRATEGY_NONE,   /* MIG GPUs are not offered */
        MIG_STRATEGY_SINGLE, /* every MIG device of one profile as nvidia.com/gpu */
        MIG_STRATEGY_MIXED,  /* one resource per profile: nvidia.com/mig-1g.5gb */
        _MIG_STRATEGY_MAX,
        _MIG_STRATEGY_INVALID = -EINVAL,
} MigStrategy;

const char *mig_strategy_to_string(MigStrategy s) _pure_;
MigStrategy mig_strategy_from_string(const char *s) _pure_;

typedef struct PluginConfig {
        MigStrategy mig_strategy;
        bool containers; /* offer GPUs and MIG devices to containers */
        bool kubevirt;   /* offer vfio-pci devices and mdevs to KubeVirt */
        char **create_mdev_types; /* mdev types (ids) whose free instances are offered too, created on Allocate */
        unsigned rescan_ms;       /* the periodic rescan */
        char *mig_config;         /* dynamic MIG: the mig-parted file under the root; NULL: off */
        char *node_labels;        /* dynamic MIG: the labels file under the root; NULL: etc/podinfo/labels */
} PluginConfig;

#define PLUGIN_CONFIG_DEFAULT                                                                                 \
        ((PluginConfig) {.mig_strategy = MIG_STRATEGY_MIXED, .containers = true, .kubevirt = true, .rescan_ms = 1000})

typedef enum ResourceKind {
        RESOURCE_GPU,  /* whole GPUs, IDs their UUIDs */
        RESOURCE_MIG,  /* MIG devices, IDs their UUIDs */
        RESOURCE_PCI,  /* vfio-pci devices for KubeVirt, IDs their addresses */
        RESOURCE_MDEV, /* mdevs for KubeVirt, IDs their UUIDs */
        _RESOURCE_KIND_MAX,
} ResourceKind;

typedef struct PluginDevice {
        char *id;
        char *gpu;       /* the physical GPU's address (the PF of a VF, the parent of an mdev or MIG device) */
        int numa_node;   /* -1: none */
        int iommu_group; /* RESOURCE_PCI, RESOURCE_MDEV; -1 otherwise */
        bool healthy;
        char *why_unhealthy;
        unsigned mig_start, mig_size; /* RESOURCE_MIG (and single strategy's): placement on its GPU */
        int mig_gi, mig_ci;           /* and its GPU and compute instance IDs; -1 otherwise */
        int nvml_index;  /* RESOURCE_GPU (a whole GPU): NVML's index, the name CDI specs give it; -1 otherwise */
        int nvlink_domain; /* its GPU's NVLink domain (mig_nvlink_domains()); -1: none known */
        char *mdev_type; /* RESOURCE_MDEV: its type id */
        bool to_create;  /* RESOURCE_MDEV: a free instance of the type, created with this UUID on Allocate */
} PluginDevice;

typedef struct Resource {
        char *name;     /* "nvidia.com/gpu" */
        char *endpoint; /* the socket's name in the device-plugins directory */
        ResourceKind kind;
        PluginDevice *devices;
        size_t n_devices;
} Resource;

typedef struct ResourceSet {
        Resource *resources;
        size_t n_resources;
        char **cdi; /* the host's CDI device names ("nvidia.com/gpu=0"), cdi_device_names() */
} ResourceSet;

/* Observe the host and build the set, resources sorted by name and devices by ID. prev (may be NULL): the last
 * set, whose whole GPUs and MIG devices of a GPU NVML no longer answers for are kept, Unhealthy. */
int resource_set_scan(Root *root, const PluginConfig *config, const HealthTable *health, const ResourceSet *prev,
                      ResourceSet *ret, GvError *err);
void resource_set_done(ResourceSet *s);
const Resource *resource_set_find(const ResourceSet *s, const char *name);
/* Whether the two offer the same devices with the same health (a new list is due when not). */
bool resource_equal(const Resource *a, const Resource *b);

/* The resource name part of a device or type name, as KubeVirt's plugin makes it: upper case, '/', '.' and
 * blanks to '_', '[' ']' and other characters a resource name cannot hold dropped, '-' kept
 * ("GA100 [A100 SXM4 40GB]" -> "GA100_A100_SXM4_40GB", "GRID T4-2Q" -> "GRID_T4-2Q"). */
char *resource_name_part(const char *name);
/* KubeVirt's environment variable for a resource: PREFIX + the name upper-cased, '/' and '.' to '_', the rest
 * kept, as KubeVirt derives it from the resource name it requested ("PCI_RESOURCE_",
 * "nvidia.com/GA100_A100_SXM4_40GB" -> "PCI_RESOURCE_NVIDIA_COM_GA100_A100_SXM4_40GB"; "MDEV_PCI_RESOURCE_",
 * "nvidia.com/GRID_T4-2Q" -> "MDEV_PCI_RESOURCE_NVIDIA_COM_GRID_T4-2Q"). */
char *resource_env_name(const char *prefix, const char *resource);

typedef struct AllocEnv {
        char *name, *value;
} AllocEnv;

typedef struct AllocDevice {
        char *container_path, *host_path, *permissions;
} AllocDevice;

typedef struct ContainerAlloc {
        AllocEnv *env;
        size_t n_env;
        AllocDevice *devices;
        size_t n_devices;
        char **cdi; /* CDI names of the units, where a spec on the host names them */
        size_t n_cdi;
} ContainerAlloc;

/* What a container gets for these IDs of resource r. Unknown IDs (err says when one is another resource's of
 * set), an ID given twice, more IDs than r has: -EINVAL with err naming the ID; nothing is changed. An mdev
 * still to create is created (under the host lock, through core's mdev_create()); when one fails, those this
 * call created are removed again. ret_created: whether it created any (the host changed: rescan). */
int resource_allocate(Root *root, const ResourceSet *set, const Resource *r, char *const *ids, size_t n_ids,
                      ContainerAlloc *ret, bool *ret_created, GvError *err);
void container_alloc_done(ContainerAlloc *a);

/* GetPreferredAllocation for one container: size IDs of r, every ID of must among them, the rest from
 * available. Preferred: the NUMA node most of must are on, else the node whose available devices fit the
 * request most tightly (a node that can hold it all, with the least left over), so a request does not span
 * nodes it need not; then units on the GPUs that already have the most of this resource's units allocated (not
 * available), so MIG devices and mdevs are packed and whole GPUs stay free to be laid out again; then the
 * lower MIG placement, then the ID. IDs not of r, an ID given twice, must not in available, size negative, below
 * the must count or above the available count: -EINVAL with err. ret: a NULL-terminated list of size new strings. */
int resource_preferred(const Resource *r, char *const *available, size_t n_available, char *const *must,
                       size_t n_must, int64_t size, char ***ret, GvError *err);
