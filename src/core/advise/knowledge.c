/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "basic/macro.h"
#include "core/advise/knowledge.h"

/* The seed document's comparison of the four modes (linux-gpu-virt.md section 10) and its selection advice;
 * NVIDIA's vGPU documentation for migration; the kernel's VFIO migration drivers. */
#define SEED "linux-gpu-virt.md section 10 (the seed's comparison of the four modes)"
#define SEED_ADVICE "the seed's selection advice: performance first, passthrough; multi-tenant, SR-IOV and MIG"
#define NVIDIA_MIGRATION                                                                                       \
        "NVIDIA Virtual GPU Software User Guide, 'Migrating a VM Configured with vGPU'; linux-gpu-virt.md "   \
        "section 9 (libvirt >= 8.6, QEMU >= 8.1, kernel >= 5.18, no post-copy)"
#define VFIO_MIGRATION                                                                                         \
        "Linux drivers/vfio/pci: the VFIO migration drivers (mlx5, hisi_acc, pds, virtio, qat) and vendor "  \
        "vGPU drivers; none for plain vfio-pci, GIM, i915 VFs or kvmgt"

static const char *const isolation_table[_ISOLATION_MAX] = {
        [ISOLATION_DRIVER] = "driver",
        [ISOLATION_HARDWARE] = "hardware",
        [ISOLATION_PHYSICAL] = "physical",
};

const char *isolation_to_string(Isolation i) {
        return i >= 0 && i < _ISOLATION_MAX ? isolation_table[i] : NULL;
}

Isolation isolation_from_string(const char *s) {
        for (int i = 0; s && i < _ISOLATION_MAX; i++)
                if (streq(isolation_table[i], s))
                        return i;
        return _ISOLATION_INVALID;
}

static const char *const workload_table[_WORKLOAD_MAX] = {
        [WORKLOAD_TRAINING] = "training",
        [WORKLOAD_INFERENCE] = "inference",
        [WORKLOAD_VDI] = "vdi",
        [WORKLOAD_GRAPHICS] = "graphics",
        [WORKLOAD_BATCH] = "batch",
};

const char *workload_to_string(Workload w) {
        return w >= 0 && w < _WORKLOAD_MAX ? workload_table[w] : NULL;
}

Workload workload_from_string(const char *s) {
        for (int i = 0; s && i < _WORKLOAD_MAX; i++)
                if (streq(workload_table[i], s))
                        return i;
        return _WORKLOAD_INVALID;
}

static const ModeFacts modes[] = {
        {GPU_MODE_PASSTHROUGH, "passthrough", "< 5%", 5, false, ISOLATION_PHYSICAL, "AI training, HPC",
         "the host loses sight of the GPU (no NVML monitoring there)", SEED},
        {GPU_MODE_SRIOV, "SR-IOV", "5-10%", 10, true, ISOLATION_HARDWARE, "multi-tenant cloud desktops, inference",
         NULL, SEED},
        {GPU_MODE_VGPU, "vGPU (time-sliced)", "10-15%", 15, true, ISOLATION_DRIVER,
         "graphics workstations, VDI", "NVIDIA GRID vGPU needs a license server", SEED},
        {GPU_MODE_MIG, "MIG", "< 5%", 5, true, ISOLATION_HARDWARE, "parallel jobs, fine-grained pools",
         "changing the MIG mode needs a GPU reset", SEED},
};

const ModeFacts *mode_facts(GpuMode m) {
        for (size_t i = 0; i < ELEMENTSOF(modes); i++)
                if (modes[i].mode == m)
                        return &modes[i];
        return NULL;
}

static const MigrationFacts migration[] = {
        {UNIT_PATH_VFIO_PCI, "a device on vfio-pci (passthrough, or a plain SR-IOV VF)", false, 0, 0, 0,
         "vfio-pci has no migration support: QEMU blocks migration of the domain", VFIO_MIGRATION},
        {UNIT_PATH_MDEV_NVIDIA, "a GRID vGPU (mdev, nvidia_vgpu_vfio)", true, 8006000, 8001000, 5018,
         "needs libvirt >= 8.6, QEMU >= 8.1, kernel >= 5.18 and the same vGPU type free on the destination",
         NVIDIA_MIGRATION},
        {UNIT_PATH_VF_NVIDIA, "an NVIDIA vendor vGPU on a VF", true, 8006000, 8001000, 5018,
         "needs libvirt >= 8.6, QEMU >= 8.1, kernel >= 5.18 and the same vGPU type free on the destination",
         NVIDIA_MIGRATION},
        {UNIT_PATH_MDEV_GVTG, "an Intel GVT-g vGPU (mdev, kvmgt)", false, 0, 0, 0,
         "kvmgt implements no VFIO migration", VFIO_MIGRATION},
        {UNIT_PATH_MDEV_OTHER, "an mdev of another driver", false, 0, 0, 0,
         "the driver has no VFIO migration support", VFIO_MIGRATION},
        {UNIT_PATH_MIG, "MIG instances passed through with their GPU", false, 0, 0, 0,
         "MIG-backed passthrough is passthrough; the comparison's 'yes' holds for MIG-backed vGPU",
         SEED "; " NVIDIA_MIGRATION},
};

const MigrationFacts *migration_facts(UnitPath p) {
        for (size_t i = 0; i < ELEMENTSOF(migration); i++)
                if (migration[i].path == p)
                        return &migration[i];
        return NULL;
}

static const WorkloadFacts workloads[] = {
        {WORKLOAD_TRAINING, {GPU_MODE_PASSTHROUGH, GPU_MODE_MIG, GPU_MODE_SRIOV, GPU_MODE_VGPU}, 4, 'C', true,
         "performance first: the whole GPU by passthrough; MIG when tenants outnumber GPUs", SEED_ADVICE},
        {WORKLOAD_INFERENCE, {GPU_MODE_MIG, GPU_MODE_SRIOV, GPU_MODE_VGPU, GPU_MODE_PASSTHROUGH}, 4, 'C', false,
         "multi-tenant: hardware partitions (MIG, SR-IOV) before time slicing", SEED_ADVICE},
        {WORKLOAD_VDI, {GPU_MODE_VGPU, GPU_MODE_SRIOV, GPU_MODE_PASSTHROUGH}, 3, 'B', false,
         "virtual desktops: vGPU (virtual PC types), SR-IOV desktops otherwise", SEED},
        {WORKLOAD_GRAPHICS, {GPU_MODE_VGPU, GPU_MODE_PASSTHROUGH, GPU_MODE_SRIOV}, 3, 'Q', true,
         "graphics workstations: vGPU (virtual workstation types), or the whole GPU", SEED},
        {WORKLOAD_BATCH, {GPU_MODE_MIG, GPU_MODE_PASSTHROUGH, GPU_MODE_SRIOV, GPU_MODE_VGPU}, 4, 'C', false,
         "parallel jobs and fine-grained pools: MIG", SEED},
};

const WorkloadFacts *workload_facts(Workload w) {
        for (size_t i = 0; i < ELEMENTSOF(workloads); i++)
                if (workloads[i].workload == w)
                        return &workloads[i];
        return NULL;
}
