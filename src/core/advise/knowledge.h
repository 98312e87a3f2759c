/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "core/state/hostspec.h"

/*
 * What gpuvirt knows about the virtualization modes: overheads, live migration per mode and per driver
 * generation, isolation, what each fits, and which modes each workload prefers. One table, each row with
 * its source; `gpuvirt advise` and the migration verdict of `vm list` / `vm migrate` read only this.
 */

typedef enum Isolation {
        ISOLATION_DRIVER,   /* the vendor driver's scheduler separates tenants (time-sliced vGPU) */
        ISOLATION_HARDWARE, /* the GPU's hardware partitions them (SR-IOV VFs, MIG) */
        ISOLATION_PHYSICAL, /* one tenant owns the whole device (passthrough) */
        _ISOLATION_MAX,
        _ISOLATION_INVALID = -EINVAL,
} Isolation;

const char *isolation_to_string(Isolation i) _pure_;
Isolation isolation_from_string(const char *s) _pure_;

typedef enum Workload {
        WORKLOAD_TRAINING,
        WORKLOAD_INFERENCE,
        WORKLOAD_VDI,
        WORKLOAD_GRAPHICS,
        WORKLOAD_BATCH,
        _WORKLOAD_MAX,
        _WORKLOAD_INVALID = -EINVAL,
} Workload;

const char *workload_to_string(Workload w) _pure_;
Workload workload_from_string(const char *s) _pure_;

/* One mode, as the comparison states it. */
typedef struct ModeFacts {
        GpuMode mode;
        const char *title;      /* "passthrough", "SR-IOV", "vGPU (time-sliced)", "MIG" */
        const char *overhead;   /* "< 5%" */
        unsigned overhead_max;  /* the upper bound in percent (for ordering) */
        bool live_migration;    /* the comparison's claim for the mode; per driver: migration_facts() */
        Isolation isolation;
        const char *fits;       /* "AI training, HPC" */
        const char *note;       /* operational note, NULL when none */
        const char *source;
} ModeFacts;

/* The row of a mode other than host; NULL for host. */
const ModeFacts *mode_facts(GpuMode m) _pure_;

/* How a GPU unit reaches a VM: what decides whether it can be live-migrated. */
typedef enum UnitPath {
        UNIT_PATH_VFIO_PCI,     /* a whole GPU, or a plain VF, on vfio-pci */
        UNIT_PATH_MDEV_NVIDIA,  /* GRID vGPU mdev (nvidia_vgpu_vfio), Maxwell to Ampere */
        UNIT_PATH_VF_NVIDIA,    /* vendor vGPU on a VF (the nvidia driver is the VFIO provider), Ada/Hopper */
        UNIT_PATH_MDEV_GVTG,    /* Intel GVT-g mdev (kvmgt) */
        UNIT_PATH_MDEV_OTHER,   /* any other mdev driver */
        UNIT_PATH_MIG,          /* MIG instances of a GPU on the host */
        _UNIT_PATH_MAX,
        _UNIT_PATH_INVALID = -EINVAL,
} UnitPath;

typedef struct MigrationFacts {
        UnitPath path;
        const char *what;           /* "a GRID vGPU (mdev, nvidia_vgpu_vfio)" */
        bool migratable;            /* the driver implements VFIO migration */
        unsigned long libvirt_min;  /* libvirt version needed (major * 1000000 + minor * 1000), 0: none */
        unsigned long qemu_min;     /* QEMU version needed, same encoding, 0: none */
        int kernel_min;             /* kernel needed (major * 1000 + minor), 0: none */
        const char *why;            /* why not, or what it needs */
        const char *source;
} MigrationFacts;

const MigrationFacts *migration_facts(UnitPath p) _pure_;

/* What a workload asks of a mode: the modes in order of preference, and the NVIDIA vGPU series that fits
 * it ('C' compute, 'B' virtual PC, 'Q' virtual workstation). */
typedef struct WorkloadFacts {
        Workload workload;
        GpuMode order[4];
        size_t n_order;
        char vgpu_series;
        bool largest_unit;  /* one large unit per tenant (training) rather than the most tenants */
        const char *why;    /* the advice the order comes from */
        const char *source;
} WorkloadFacts;

const WorkloadFacts *workload_facts(Workload w) _pure_;
