/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The simulator's private model. A profile is a compiled-in description of a host (CPU, firmware, kernel
 * command line) plus a builder that lays out its PCI tree. The tree is rebuilt from the profile name
 * (stored in .gpuvirt-sim/profile) whenever the kernel model needs the static facts of a device (IDs,
 * native driver, SR-IOV geometry, vGPU types); everything that changes at run time (bindings,
 * overrides, VFs, mdevs, groups) lives in the simulated sysfs itself, as on a real host.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "basic/macro.h"
#include "core/host/root.h"
#include "sim.h"

#define SIM_OSRELEASE "6.1.0-27-amd64"
#define SIM_NR_CPUS   8

/* Role of a function in the PCIe topology; selects header type and the Express capability's type. */
typedef enum SimPort {
        SIM_PORT_HOST,         /* host bridge / root complex function: no Express capability */
        SIM_PORT_RCIEP,        /* root complex integrated endpoint (chipset functions, iGPU) */
        SIM_PORT_ROOT,         /* root port (type 1 header) */
        SIM_PORT_UPSTREAM,     /* switch upstream port (type 1) */
        SIM_PORT_DOWNSTREAM,   /* switch downstream port (type 1) */
        SIM_PORT_PCIE_TO_PCI,  /* PCIe-to-PCI bridge (type 1, ASPEED AST1150) */
        SIM_PORT_PCI,          /* conventional PCI function behind a PCIe-to-PCI bridge */
        SIM_PORT_ENDPOINT,     /* PCIe endpoint */
} SimPort;

typedef enum SimVgpu {
        SIM_VGPU_NONE,
        SIM_VGPU_NVIDIA_MDEV, /* GRID (Turing and older): mdev types on the PF, one type per GPU */
        SIM_VGPU_GVTG,        /* Intel GVT-g: mdev types on the iGPU, shared budget */
        SIM_VGPU_NVIDIA_VF,   /* Hopper+: nvidia/current_vgpu_type on each VF, one type per GPU */
} SimVgpu;

typedef struct SimVgpuType {
        const char *id;          /* mdev type id ("nvidia-222"), or the numeric id for SIM_VGPU_NVIDIA_VF */
        const char *name;
        const char *description;
        unsigned max_instances;
        unsigned cost;           /* GVT-g: share of the budget (SIM_GVTG_BUDGET) one instance takes */
} SimVgpuType;

#define SIM_GVTG_BUDGET 8

typedef struct SimModel {
        uint16_t vendor, device, subvendor, subdevice;
        uint32_t class;
        uint8_t revision;
        SimPort port;
        const char *driver;      /* native driver, NULL when none binds */
        uint8_t link_gen;        /* max link generation (1..5), 0: no link */
        uint8_t link_width;
        bool rom;
        bool flr;                /* function level reset */
        bool msix;
        uint16_t sriov_total, sriov_offset, sriov_stride, vf_device;
        SimVgpu vgpu;
        const SimVgpuType *types;
        size_t n_types;
        uint32_t bar0_size_mb;   /* size of BAR0 in MiB (0: no BAR) */
        bool vf_probe_fails;     /* the native driver's probe fails on the VFs (QEMU's NVMe VFs have no
                                  * resources until the PF assigns them: the real kernel leaves them unbound) */
} SimModel;

/* Flags for sim_host_add() */
#define SIM_ACS        (1u << 0) /* ACS capability present and enabled (ports, multifunction endpoints) */
#define SIM_BOOT_VGA   (1u << 1)
#define SIM_VFS_AT_BOOT (1u << 2)

typedef struct SimDev {
        const SimModel *m;
        uint8_t bus, slot, func;
        int parent; /* index in SimHost.devs of the upstream bridge, -1 on a root bus */
        uint8_t root_bus;
        int numa;
        unsigned flags;
        /* computed by sim_host_finish() */
        uint8_t secondary, subordinate;
        bool multifunction;
        bool is_vf;
        int group; /* -1: no IOMMU */
        char name[16];
        char *path; /* "sys/devices/pci0000:00/0000:00:01.0/..." */
} SimDev;

typedef struct SimProfile SimProfile;

typedef enum SimLicense {
        SIM_LICENSE_NONE,
        SIM_LICENSE_SERVER, /* gridd.conf ServerAddress= (a legacy license server) */
        SIM_LICENSE_TOKEN,  /* an NLS client configuration token in etc/nvidia/ClientConfigToken */
} SimLicense;

typedef struct SimHost {
        const SimProfile *profile;
        SimDev *devs;
        size_t n;
        int error;
        unsigned gen_devices, gen_gpus; /* the size of a generated host */
} SimHost;

struct SimProfile {
        SimProfileInfo info;
        bool amd;
        const char *cpu_model;
        unsigned cpu_family, cpu_model_id, cpu_stepping;
        unsigned sockets;
        unsigned numa_nodes;
        bool iommu_fw;     /* DMAR/IVRS table */
        bool iommu_kernel; /* IOMMU on in the kernel (groups exist) */
        bool intr_remap;
        bool vfio_loaded;
        bool mdev;         /* mdev core + vfio_mdev loaded */
        const char *cmdline_extra;
        const char *const *extra_modules;
        const char *const *daemons; /* processes running (proc/PID/comm): "nvidia-vgpu-mgr" */
        SimLicense license;         /* the NVIDIA vGPU license configuration in etc/nvidia */
        void (*build)(SimHost *h);
};

/* profiles.c */
const SimProfile *sim_profile_find(const char *name);
int sim_host_new(const char *profile, SimHost **ret);
SimHost *sim_host_free(SimHost *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(SimHost *, sim_host_free)
#define _cleanup_sim_host_free_ _cleanup_(sim_host_freep)
/* Host of the simulated root (from .gpuvirt-sim/profile). */
int sim_host_load(const char *rootdir, SimHost **ret);
SimDev *sim_host_find(const SimHost *h, const char *bdf);
/* Whether a driver's ID table matches vendor:device (vfio-pci has none: it binds by override only). */
bool sim_driver_matches(const SimHost *h, const char *driver, uint16_t vendor, uint16_t device);
/* Module providing a driver, NULL when built in. */
const char *sim_driver_module(const char *driver);
/* The PCI driver a module registers (reverse of sim_driver_module), NULL when none. */
const char *sim_module_driver(const char *module);
/* Fill a VF of pf (index i, 0-based). */
int sim_vf_make(const SimDev *pf, unsigned i, SimDev *ret, SimModel *ret_model);

/* config.c: 4096 bytes of config space. numvfs: current NumVFs for PFs. */
void sim_config_build(const SimDev *d, unsigned numvfs, uint8_t cfg[static 4096]);
unsigned sim_config_sriov_pos(const SimDev *d);

/* util */
int sim_attr(const char *dir, const char *name, mode_t mode, const char *fmt, ...) _printf_(4, 5);
int sim_file(const char *path, mode_t mode, const void *data, size_t len);
int sim_link(const char *target, const char *link);
bool sim_is_bdf(const char *s);
/* Lowest number n >= 0 such that "<dir>/<prefix><n>" does not exist. */
int sim_free_index(const char *dir, const char *prefix);
int sim_read_int(const char *dir, const char *name, int def);

/* create.c: device directories (shared by boot and VF creation) */
int sim_write_device(const char *root, const SimHost *h, const SimDev *d);
int sim_group_add(const char *root, int group, const char *dev_abs, const char *name);
int sim_next_group(const char *root);

/* system.c */
int sim_system_write(const char *root, const SimHost *h);

/* kernel.c: binding */
int sim_attach(const char *root, const SimHost *h, const char *devdir, const char *driver);
int sim_detach(const char *root, const SimHost *h, const char *devdir);
int sim_probe(const char *root, const SimHost *h, const char *devdir, bool explicit_driver, const char *driver);
int sim_module_load_internal(const char *root, const SimHost *h, const char *module);

/* vgpu.c */
int sim_mdev_parent_attach(const char *root, const SimDev *d, const char *devdir);
int sim_mdev_parent_detach(const char *root, const char *devdir);
int sim_mdev_refresh(const char *root, const SimModel *m, const char *devdir);
int sim_mdev_create(const char *root, const SimHost *h, const char *typedir, const char *value);
int sim_mdev_remove(const char *root, const char *mdevdir, const char *value);
int sim_nvvf_attach(const char *root, const SimModel *pfm, const char *devdir);
/* /dev/nvidiactl, /dev/nvidia-uvm(-tools), /dev/nvidia-caps/nvidia-cap{1,2} and proc/driver/nvidia-caps/mig-minors,
 * once (nvidia.ko loaded); a GPU nvidia binds adds its proc/driver/nvidia/gpus/<bdf>/information and nodes. */
int sim_nvidia_module_load(const char *root);
int sim_nvvf_refresh(const char *root, const SimModel *pfm, const char *pfdir);
int sim_nvvf_write_type(const char *root, const SimHost *h, const char *vfdir, const char *value);

/* sriov */
int sim_sriov_set(const char *root, const SimHost *h, const char *pfdir, const char *value);
int sim_sriov_enable(const char *root, const SimHost *h, const SimDev *pf, const char *pfdir, unsigned n,
                     bool autoprobe);

/* fault.c */
/* Consume the first fault matching one of the paths (or "probe:<driver>"); returns -errno or 0. */
int sim_fault_take(const char *root, const char *const *paths, size_t n_paths, bool is_write);

/* device directory helpers */
int sim_dev_lookup(const char *root, const char *bdf, char **ret_devdir);
int sim_dev_ids(const char *devdir, uint16_t *vendor, uint16_t *device);
/* The static description of a device (from the profile; VFs through their PF). */
int sim_dev_model(const SimHost *h, const char *devdir, SimDev *ret_dev, SimModel *ret_model);

/* Count a reset of the device in .gpuvirt-sim/resets/<bdf> (the fake NVML applies pending MIG modes and
 * clears instances when it sees the count grow). */
int sim_reset_count(const char *root, const char *bdf);
