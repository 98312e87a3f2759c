/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/*
 * The simulator: builds simulated hosts laid out exactly like the kernel's sysfs/procfs, and plays the
 * kernel's reaction to writes on them (the write path in core/host/root.c hands every write on a simulated
 * root to sim_kernel_write() through the backend sim_backend_register() registers).
 *
 * A simulated host is a directory holding SIM_MARKER_DIR (".gpuvirt-sim/"), where the simulator keeps
 * its own state (profile name, driver match tables, injected faults). Nothing outside that directory is
 * private: everything else is what the kernel would show.
 */

#define SIM_MARKER_DIR ".gpuvirt-sim"

/* Register the simulator's backend of the root (core/host/root.h) so that root_open() takes a directory
 * holding SIM_MARKER_DIR for a simulated host: every program that links the simulator calls it first
 * (without it such a directory is a read-only capture). */
void sim_backend_register(void);

typedef struct SimProfileInfo {
        const char *name;
        const char *summary;
} SimProfileInfo;

size_t sim_profile_count(void);
const SimProfileInfo *sim_profile_info(size_t i);

/* A host of any size for scaling benchmarks (`sim create DIR --profile generated --devices N --gpus M`): not
 * one of the profiles listed, its name carries its size ("generated:N:M", what .gpuvirt-sim/profile holds),
 * "generated" alone is the default size. */
#define SIM_GENERATED_PROFILE "generated"
#define SIM_GENERATED_DEVICES 100u
#define SIM_GENERATED_GPUS    8u
#define SIM_GENERATED_GPUS_MAX 128u /* as many as the fake NVML holds (src/sim/nvml: MAX_DEVS) */
/* -EINVAL when devices cannot hold the GPUs (each takes its root port, each eight GPUs a root complex, and
 * the chipset 7 functions) or gpus is 0, -ERANGE when the host would need more than 256 buses. */
int sim_create_generated(const char *dir, unsigned devices, unsigned gpus);

/* Write a freshly booted simulated host of the named profile into dir (created; must be empty or
 * absent). -ENOENT for an unknown profile, -EEXIST when dir is not empty. */
int sim_create(const char *dir, const char *profile);

/*
 * Play one write as the kernel would, synchronously. rootdir is the simulated root (absolute), rel the
 * written path relative to it ("sys/bus/pci/drivers_probe"), value what was written. Returns 0 or the
 * -errno the real kernel returns for it. A fault queued with sim_inject_fault() for this path is
 * returned instead (and consumed) before anything changes.
 */
int sim_kernel_write(const char *rootdir, const char *rel, const char *value);

/*
 * Load a kernel module as modprobe would (with its dependencies): "vfio-pci"/"vfio_pci" creates
 * sys/module/{vfio,vfio_iommu_type1,vfio_pci_core,vfio_pci,irqbypass}, sys/bus/pci/drivers/vfio-pci and
 * dev/vfio/vfio. Others known: vfio, vfio_iommu_type1, vfio_pci_core, kvm, kvm_intel, kvm_amd, irqbypass,
 * mdev. -ENOENT for a module the simulator does not know.
 */
int sim_module_load(const char *rootdir, const char *module);

/*
 * Queue a failure: the next write whose path relative to the root ends with 'attr' (a whole path
 * component suffix, e.g. "unbind", "0000:01:00.0/driver_override", "drivers_probe") fails with -error.
 * Faults live in <root>/.gpuvirt-sim/faults, one "ATTR ERRNO-NAME" line each (e.g. "unbind EBUSY"),
 * consumed in order. The write's path is matched both as written and as resolved through the sysfs links
 * ("sys/bus/pci/devices/0000:01:00.0/driver_override" and "sys/devices/pci0000:00/.../driver_override").
 *
 * attr "@N" (e.g. "@3") fails the N-th kernel write from now, whatever its path (each write counts the
 * "@N" lines down; one fault fires per write). The simulator's NVML counts too: each change the fake
 * libnvidia-ml.so.1 makes to a GPU's MIG state (mode, GPU and compute instances) is a write to the path
 * "nvml/<bdf>/<NVML function>" (sim_nvml_fault()), so a crash test can stop a MIG apply between two of them.
 *
 * attr "probe:<driver>" (e.g. "probe:vfio-pci") fails the next probe by that driver instead: the device
 * stays unbound, and the write that triggered the probe (drivers_probe, drivers/<driver>/bind, or
 * sriov_numvfs with autoprobe) returns -error. Without an injected fault a failed probe leaves the device
 * unbound and drivers_probe still succeeds, as on the real kernel (vfio-pci on a bridge or on a device
 * without an IOMMU group).
 *
 * Writes the model rejects: a read-only attribute EACCES (what a non-root open(O_WRONLY) gets), a path
 * that does not exist ENOENT, a directory EISDIR, drivers/<driver>/new_id and remove_id EOPNOTSUPP (not
 * modelled: they bind every device of an ID), anything under .gpuvirt-sim EACCES.
 */
int sim_inject_fault(const char *rootdir, const char *attr, int error);

/* The fault point of one change the fake NVML is about to make to a GPU ("nvml/<bdf>/<call>", see
 * sim_inject_fault()): 0 to go on, -errno to fail the call; a KILL fault kills the process here. */
int sim_nvml_fault(const char *rootdir, const char *bdf, const char *call);

/*
 * The fake libnvidia-ml.so.1 (src/sim/nvml/) that plays NVML on every simulated root: a fixed path, never
 * one read from the simulated tree (a tree is input, not code to run). The copy built in this build tree
 * when the running program belongs to that tree (tests, build/src/gpuvirt), else the copy installed with
 * gpuvirt under GPUVIRT_PKGLIBDIR. -ENOENT when it is absent, -EPERM when it is not a regular file of
 * root or of us, or others may write it.
 */
int sim_nvml_library(char **ret);

/* The fake library also exports this: which simulated root its state lives in. The sim backend calls it
 * right after dlopen(), before nvmlInit_v2(). A real libnvidia-ml has no such symbol. */
#define GPUVIRT_SIM_NVML_SET_ROOT "gpuvirtSimNvmlSetRoot"
int gpuvirtSimNvmlSetRoot(const char *rootdir);
/* And this: the simulator's fault point (sim_nvml_fault()), which the fake library passes each change it is
 * about to make to a GPU, so injected faults and crashes reach NVML calls as they reach kernel writes. */
#define GPUVIRT_SIM_NVML_SET_FAULT_HOOK "gpuvirtSimNvmlSetFaultHook"
typedef int (*GpuvirtSimNvmlFaultHook)(const char *rootdir, const char *bdf, const char *call);
int gpuvirtSimNvmlSetFaultHook(GpuvirtSimNvmlFaultHook hook);

/*
 * Make a device fall off the bus, as after a PCIe link down or an NVIDIA Xid 79: its config space reads all
 * ones from now on (the kernel keeps the vendor, device and class attributes it read at enumeration, and
 * the driver stays bound), and the fake NVML reports it lost. -ENODEV when there is no such device.
 */
int sim_device_off_bus(const char *rootdir, const char *bdf);

/*
 * What goes wrong while a host runs (src/sim/health.c), for gpuvirtd's health model. Each returns -ENODEV
 * when there is no such device.
 *  - sim_device_aer(): `add` more errors of the kind in the device's AER counters (aer_dev_correctable,
 *    aer_dev_nonfatal, aer_dev_fatal, in the kernel's format);
 *  - sim_device_link(): the link trained to another speed ("8.0 GT/s PCIe") and width (-EOPNOTSUPP
 *    without a PCIe link);
 *  - sim_device_remove(): a surprise removal: the device's directory and bus link are gone;
 *  - sim_nvml_xid(): an Xid event the fake NVML delivers to its event sets;
 *  - sim_nvml_telemetry(): one telemetry value (util_gpu, util_mem, mem_used_mib, temp, power_mw, clock_sm,
 *    clock_mem, ecc_sbe, ecc_dbe; -EINVAL for another key);
 *  - sim_nvml_fail(): NVML fails with that nvmlReturn_t from now on (0: works again);
 *  - sim_nvml_vgpu(): what a VM does with a vGPU unit (a VF with a vendor vGPU type, or an mdev UUID), as
 *    the vGPU manager reports it: vm NAME (running in that VM; empty: stopped), license licensed |
 *    unlicensed | restricted | unrestricted | uninitialized, expiry YYYY-MM-DDTHH:MM:SS | permanent,
 *    util_sm, util_mem, util_enc, util_dec (percent), fb_used_mib. -EINVAL for another key, -EDOM for a
 *    bad value, -ENODEV when the unit does not exist.
 */
typedef enum SimAerKind {
        SIM_AER_CORRECTABLE,
        SIM_AER_NONFATAL,
        SIM_AER_FATAL,
        _SIM_AER_MAX,
} SimAerKind;
int sim_aer_kind_from_string(const char *s);
int sim_aer_write(const char *dir, SimAerKind kind, uint64_t add);
int sim_device_aer(const char *rootdir, const char *bdf, SimAerKind kind, uint64_t add);
int sim_device_link(const char *rootdir, const char *bdf, const char *speed, unsigned width);
int sim_device_remove(const char *rootdir, const char *bdf);
int sim_nvml_xid(const char *rootdir, const char *bdf, unsigned xid);
int sim_nvml_telemetry(const char *rootdir, const char *bdf, const char *key, uint64_t value);
int sim_nvml_fail(const char *rootdir, int nvml_return);
int sim_nvml_vgpu(const char *rootdir, const char *unit, const char *key, const char *value);

/* As the error of sim_inject_fault() (or "KILL" in the faults file): the process writing is killed with
 * SIGKILL at that write, before the kernel model sees it — a crash at an exact point for recovery tests. */
#define SIM_FAULT_KILL 0x10000
