/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The simulator's libnvidia-ml.so.1: the NVML subset gpuvirt uses, played over a simulated host.
 *
 * It is built from our own declarations (core/mig/nvml.h), never installed on the system library path, and
 * loaded by gpuvirt through the same dlopen() path as the real library (core/mig/nvml.c). gpuvirt tells it
 * the simulated root with gpuvirtSimNvmlSetRoot() before nvmlInit_v2().
 *
 * What it models:
 *  - the GPUs NVML sees: NVIDIA display-class physical functions bound to "nvidia" under
 *    sys/bus/pci/devices, in address order (that order is the NVML index); SR-IOV VFs (vGPU hosts) are
 *    not GPUs to NVML;
 *  - the MIG profile tables of each product it knows (A100-SXM4-40GB, A100-PCIE-40GB, A100-SXM4-80GB,
 *    A100 80GB PCIe, A30, H100-SXM5-80GB, H100-PCIE-80GB, H200-SXM-141GB), keyed by PCI device id, as
 *    NVIDIA publishes them (see the tables below);
 *  - MIG mode: a change is pending (NVML_ERROR_RESET_REQUIRED, or NVML_ERROR_IN_USE while processes hold
 *    the GPU) until the GPU is reset; the simulator's kernel model counts writes to the device's `reset`
 *    attribute in .gpuvirt-sim/resets/<bdf>, and a reset makes the pending mode current and clears every
 *    instance;
 *  - GPU instances with placements (NVML_ERROR_INSUFFICIENT_RESOURCES for a taken placement; the driver's
 *    default placement fills from high slice indices), compute instances, MIG device handles and UUIDs;
 *  - NVLink: .gpuvirt-sim/nvml/<bdf>.nvlink, lines "LINK ADDRESS" (the active links and what is at their far
 *    end, a GPU or an NVSwitch; no file: the GPU has no NVLink, NVML_ERROR_NOT_SUPPORTED);
 *  - processes: .gpuvirt-sim/nvml/<bdf>.processes, lines "PID NAME [GI_ID] [graphics]" (no GI: the whole
 *    GPU, as nvidia-persistenced or DCGM; "graphics": on the graphics list, else the compute list). They make SetMigMode report IN_USE and GI destruction fail with IN_USE.
 *
 *  - telemetry (what gpuvirtd samples): .gpuvirt-sim/nvml/<bdf>.telemetry, lines "KEY VALUE" that
 *    `gpuvirt sim telemetry` sets (util_gpu, util_mem, mem_used_mib, temp, power_mw, clock_sm, clock_mem,
 *    ecc_sbe, ecc_dbe; unset keys read as an idle GPU); Xid events: .gpuvirt-sim/nvml/<bdf>.xid, one code
 *    a line appended by `gpuvirt sim xid`, delivered through event sets to the clients registered at the
 *    time (each set reads from the file's end when the device is registered); a failing driver:
 *    .gpuvirt-sim/nvml/fail holds an nvmlReturn_t that nvmlInit, the handle look-ups and every telemetry
 *    call return while it exists (`gpuvirt sim nvml-fail`). A GPU that fell off the bus or was removed
 *    is NVML_ERROR_GPU_IS_LOST to every telemetry call.
 *
 * State per GPU lives in .gpuvirt-sim/nvml/<bdf> (text, replaced whole by rename() after every change), so
 * it survives across processes. Simulated GPUs start with MIG disabled (no state file). Like the driver,
 * which keeps one state for every client in memory, each call first checks whether the GPU's state file or
 * its reset count changed since this process last read or wrote them (the host's generation counter,
 * generation.h, says whether anything was written since; then stat() of each says which), and reads them
 * again under .gpuvirt-sim/nvml/lock (flock) when they did; each call that changes the state holds that lock from
 * before it reads the state to after it is written. Two processes see each other's instances, and a client
 * that acts on what it read earlier finds out (a taken placement is NVML_ERROR_INSUFFICIENT_RESOURCES), so
 * the simulator shows races instead of hiding them. Handles stay valid across re-reads (an instance keeps
 * its slot by id); a handle of an instance another process destroyed is NVML_ERROR_INVALID_ARGUMENT.
 *
 * The library is several files: this one (the root, the GPUs found at init, device queries and processes),
 * models.c (the MIG profile tables), state.c (the state lock, state files and handles), fault.c (the
 * fault point), mig.c (MIG mode, GPU and compute instances, MIG device handles), telemetry.c (what
 * gpuvirtd samples: utilization, temperature, power, clocks, ECC, the driver version, Xid events), vgpu.c
 * (the vGPU instances of running VMs: per-VM utilization, framebuffer, license);
 * fake-nvml.h is what they share.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "core/mig/nvml.h"
#include "sim/nvml/fake-nvml.h"
#include "sim/sim.h"

char *root;
FDev devs[MAX_DEVS];
unsigned n_devs;
bool initialized;
/* what nvml/fail said when the host's generation was fail_gen (fail_known false: look) */
static bool fail_known;
static uint64_t fail_gen;
static nvmlReturn_t fail_value;

API int gpuvirtSimNvmlSetRoot(const char *rootdir) {
        if (!rootdir || rootdir[0] != '/')
                return -EINVAL;
        char *c = strdup(rootdir);
        if (!c)
                return -ENOMEM;
        free(root);
        root = c;
        state_lock_close();
        fail_known = false;
        return 0;
}

/* A hex attribute of the device at dir, 0 when it cannot be read. No allocation, so none can fail: a path too
 * long for the buffer is one the kernel would refuse too (ENAMETOOLONG), read as 0 like any unreadable one. */
static uint32_t read_hex(const char *dir, const char *name) {
        char p[PATH_MAX];
        uint32_t v = 0;
        if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, name) < sizeof p)
                (void)read_attr_u32(p, 16, &v);
        return v;
}

static bool cfg_all_ones(const uint8_t *cfg, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (cfg[i] != 0xff)
                        return false;
        return true;
}

static unsigned le16(const uint8_t *p) {
        return (unsigned)p[0] | (unsigned)p[1] << 8;
}

static unsigned le32(const uint8_t *p) {
        return le16(p) | le16(p + 2) << 16;
}

bool config_lost(const char *dir) {
        char p[PATH_MAX];
        uint8_t cfg[16];
        size_t n = 0;
        if ((size_t)snprintf(p, sizeof p, "%s/config", dir) >= sizeof p || read_head_at(AT_FDCWD, p, cfg, sizeof cfg, &n) < 0 || n < sizeof cfg)
                return false;
        return cfg_all_ones(cfg, sizeof cfg);
}

/* Lost from the moment its config space stops answering, as the driver finds at its next access: a handle
 * asked for after the fall (by a process that initialised NVML before it) is refused too. */
static bool dev_lost(FDev *d) {
        char dir[PATH_MAX];
        uint64_t gen = 0;
        bool have_gen = state_generation(&gen);
        if (d->lost || (have_gen && d->lost_checked && d->lost_gen == gen)) /* off-bus writes move the count */
                return d->lost;
        if ((size_t)snprintf(dir, sizeof dir, "%s/sys/bus/pci/devices/%s", root, d->bdf) < sizeof dir)
                d->lost = config_lost(dir);
        d->lost_checked = have_gen;
        d->lost_gen = gen;
        return d->lost;
}

/* ---- init ---- */

nvmlReturn_t sim_failing(void) {
        if (!root)
                return NVML_SUCCESS;
        uint64_t gen = 0;
        bool have_gen = state_generation(&gen);
        if (have_gen && fail_known && fail_gen == gen) /* `gpuvirt sim nvml-fail` moves the count */
                return fail_value;
        _cleanup_free_ char *p = strdup_printf("%s/" SIM_MARKER_DIR "/nvml/fail", root);
        uint32_t v = 0;
        if (!p)
                return NVML_SUCCESS;
        if (path_exists(p) && (read_attr_u32(p, 10, &v) < 0 || v == 0))
                v = NVML_ERROR_UNKNOWN;
        fail_known = have_gen;
        fail_gen = gen;
        fail_value = (nvmlReturn_t)v;
        return fail_value;
}

API nvmlReturn_t nvmlInit_v2(void) {
        LOCKED;
        if (!root)
                return NVML_ERROR_DRIVER_NOT_LOADED;
        if (sim_failing() != NVML_SUCCESS)
                return sim_failing();
        /* the GPUs the driver drives, as the driver knows them: its sysfs directory lists each bound device */
        _cleanup_free_ char *pci = strdup_printf("%s/sys/bus/pci/devices", root);
        _cleanup_free_ char *drv = strdup_printf("%s/sys/bus/pci/drivers/nvidia", root);
        _cleanup_strv_free_ char **l = NULL;
        if (!pci || !drv)
                return NVML_ERROR_UNKNOWN;
        /* no driver directory: no GPU is bound to nvidia (what this library always said on such hosts) */
        int lr = dir_list(drv, &l);
        if (lr == -ENOENT && path_exists(pci))
                lr = (l = calloc(1, sizeof *l)) ? 0 : -ENOMEM;
        if (lr < 0)
                return NVML_ERROR_DRIVER_NOT_LOADED;
        memset(devs, 0, sizeof devs);
        n_devs = 0;
        for (char **e = l; *e && n_devs < MAX_DEVS; e++) {
                const char *b = *e; /* DDDD:BB:DD.F; bind, unbind, new_id, module... are the driver's own files */
                if (strlen(b) != 12 || b[4] != ':' || b[7] != ':' || b[10] != '.')
                        continue;
                _cleanup_free_ char *dir = strdup_printf("%s/%s", pci, b);
                _cleanup_free_ char *pf = strdup_printf("%s/physfn", dir);
                if (!dir || !pf)
                        return NVML_ERROR_UNKNOWN;
                /* the IDs as the driver read them at probe: the config header, one read; a GPU that fell off
                 * the bus reads all ones there, and the kernel's attributes keep what it read at enumeration */
                _cleanup_free_ char *cp = strdup_printf("%s/config", dir);
                uint8_t cfg[64];
                size_t cn = 0;
                if (!cp)
                        return NVML_ERROR_UNKNOWN;
                uint64_t gen = 0;
                bool have_gen = state_generation(&gen); /* what dev_lost() would know from the read below */
                bool header = read_head_at(AT_FDCWD, cp, cfg, sizeof cfg, &cn) >= 0 && cn == sizeof cfg;
                bool lost = header && cfg_all_ones(cfg, 16);
                unsigned vendor, class, device, subsystem;
                bool by_header = header && !lost && (cfg[0x0e] & 0x7f) == 0;
                if (by_header) {
                        vendor = le16(cfg), device = le16(cfg + 2), class = le32(cfg + 8) >> 8;
                        subsystem = (unsigned)le16(cfg + 0x2e) << 16 | le16(cfg + 0x2c);
                } else {
                        vendor = read_hex(dir, "vendor"), device = read_hex(dir, "device"), class = read_hex(dir, "class");
                        subsystem = read_hex(dir, "subsystem_device") << 16 | (read_hex(dir, "subsystem_vendor") & 0xffff);
                }
                /* a VF's ID registers read 0xffff (SR-IOV): by its header it is no GPU; by its attributes, physfn says */
                if (vendor != 0x10de || (class >> 16) != 0x03 || (!by_header && path_exists(pf)))
                        continue;
                FDev *d = &devs[n_devs++];
                d->magic = MAGIC_DEV;
                snprintf(d->bdf, sizeof d->bdf, "%s", *e);
                d->device = (uint16_t)device;
                d->subsystem = subsystem;
                d->lost = lost;
                d->lost_checked = have_gen && header;
                d->lost_gen = gen;
                d->name = "NVIDIA GPU";
                for (size_t k = 0; k < n_known; k++)
                        if (known[k].device == d->device) {
                                d->name = known[k].name;
                                d->m = known[k].model;
                        }
                if (dev_refresh(d) < 0)
                        return NVML_ERROR_UNKNOWN;
        }
        initialized = true;
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlShutdown(void) {
        if (!initialized)
                return NVML_ERROR_UNINITIALIZED;
        initialized = false;
        n_devs = 0;
        return NVML_SUCCESS;
}

/* Free the root string when the library is unloaded (leak checkers watch the tests). */
__attribute__((destructor)) static void fake_nvml_unload(void) {
        state_lock_close();
        free(root);
        root = NULL;
}

API const char *nvmlErrorString(nvmlReturn_t r) {
        switch (r) {
        case NVML_SUCCESS: return "Success";
        case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
        case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
        case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
        case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
        case NVML_ERROR_NOT_FOUND: return "Not Found";
        case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
        case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
        case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
        case NVML_ERROR_RESET_REQUIRED: return "GPU requires reset";
        case NVML_ERROR_IN_USE: return "In use by another client";
        case NVML_ERROR_INSUFFICIENT_RESOURCES: return "Insufficient resources";
        default: return "Unknown Error";
        }
}

API nvmlReturn_t nvmlDeviceGetCount_v2(unsigned *count) {
        if (!initialized)
                return NVML_ERROR_UNINITIALIZED;
        if (!count)
                return NVML_ERROR_INVALID_ARGUMENT;
        *count = n_devs;
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned index, nvmlDevice_t *device) {
        if (!initialized)
                return NVML_ERROR_UNINITIALIZED;
        if (!device || index >= n_devs)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (sim_failing() != NVML_SUCCESS)
                return sim_failing();
        if (dev_lost(&devs[index]))
                return NVML_ERROR_GPU_IS_LOST;
        *device = (nvmlDevice_t)&devs[index];
        return NVML_SUCCESS;
}

/* Accepts "0000:3b:00.0", "00000000:3B:00.0" and "3b:00.0". */
static bool bus_id_parse(const char *s, unsigned *dom, unsigned *bus, unsigned *slot, unsigned *fn) {
        char tail;
        if (sscanf(s, "%x:%x:%x.%x%c", dom, bus, slot, fn, &tail) == 4)
                return true;
        *dom = 0;
        return sscanf(s, "%x:%x.%x%c", bus, slot, fn, &tail) == 3;
}

API nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *busid, nvmlDevice_t *device) {
        if (!initialized)
                return NVML_ERROR_UNINITIALIZED;
        unsigned a[4], b[4];
        if (!busid || !device || !bus_id_parse(busid, &a[0], &a[1], &a[2], &a[3]))
                return NVML_ERROR_INVALID_ARGUMENT;
        if (sim_failing() != NVML_SUCCESS)
                return sim_failing();
        for (unsigned i = 0; i < n_devs; i++)
                if (bus_id_parse(devs[i].bdf, &b[0], &b[1], &b[2], &b[3]) && memcmp(a, b, sizeof a) == 0) {
                        if (dev_lost(&devs[i]))
                                return NVML_ERROR_GPU_IS_LOST;
                        *device = (nvmlDevice_t)&devs[i];
                        return NVML_SUCCESS;
                }
        return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t copy_out(const char *s, char *buf, unsigned len) {
        if (!buf)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (strlen(s) >= len)
                return NVML_ERROR_INSUFFICIENT_SIZE;
        memcpy(buf, s, strlen(s) + 1);
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned length) {
        LOCKED;
        FCi *c = as_migdev(device);
        if (c)
                return copy_out(c->uuid, uuid, length);
        FDev *d = as_dev_static(device);
        if (!d)
                return initialized ? NVML_ERROR_INVALID_ARGUMENT : NVML_ERROR_UNINITIALIZED;
        char u[48];
        make_uuid("GPU-", d->bdf, 0, u);
        return copy_out(u, uuid, length);
}

API nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned length) {
        LOCKED;
        FDev *d = as_dev_static(device);
        if (!d)
                return NVML_ERROR_INVALID_ARGUMENT;
        return copy_out(d->name, name, length);
}

/* The address parts and both bus ID forms of the device at address s; false: not an address. */
static bool pci_info_fill(const char *s, nvmlPciInfo_t *pci) {
        unsigned dom, bus, slot, fn;
        if (!bus_id_parse(s, &dom, &bus, &slot, &fn))
                return false;
        *pci = (nvmlPciInfo_t){.domain = dom, .bus = bus, .device = slot};
        snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%04X:%02X:%02X.%X", dom, bus, slot, fn);
        snprintf(pci->busId, sizeof pci->busId, "%08X:%02X:%02X.%X", dom, bus, slot, fn);
        return true;
}

API nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci) {
        LOCKED;
        FDev *d = as_dev_static(device);
        if (!d || !pci || !pci_info_fill(d->bdf, pci))
                return NVML_ERROR_INVALID_ARGUMENT;
        pci->pciDeviceId = (unsigned)d->device << 16 | 0x10de;
        pci->pciSubSystemId = d->subsystem;
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
        FDev *d = as_dev(device);
        if (!d || !memory)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (!d->m)
                return NVML_ERROR_NOT_SUPPORTED; /* only the products it models */
        unsigned long long used = 0;
        (void)telemetry_get(d, "mem_used_mib", &used);
        used = used > d->m->total_mb ? d->m->total_mb << 20 : used << 20;
        *memory = (nvmlMemory_t){.total = d->m->total_mb << 20, .free = (d->m->total_mb << 20) - used, .used = used};
        return NVML_SUCCESS;
}

/* ---- processes ---- */

/* One of NVML's two lists: the processes of the file on that list. */
static nvmlReturn_t running_processes(nvmlDevice_t device, bool graphics, unsigned *count, nvmlProcessInfo_t *infos) {
        FDev *d = as_dev(device);
        if (!d || !count)
                return NVML_ERROR_INVALID_ARGUMENT;
        FProc all[64], p[64];
        int np = dev_processes(d, all, ELEMENTSOF(all));
        if (np < 0)
                return NVML_ERROR_UNKNOWN;
        size_t n = 0;
        for (int i = 0; i < np; i++)
                if (all[i].graphics == graphics)
                        p[n++] = all[i];
        if (!infos || *count < n) {
                *count = (unsigned)n;
                return n == 0 ? NVML_SUCCESS : NVML_ERROR_INSUFFICIENT_SIZE;
        }
        for (size_t i = 0; i < n; i++)
                infos[i] = (nvmlProcessInfo_t){.pid = p[i].pid, .usedGpuMemory = 0, .gpuInstanceId = p[i].gi,
                                               .computeInstanceId = p[i].gi == NVML_INSTANCE_ID_NONE ? NVML_INSTANCE_ID_NONE : 0};
        *count = (unsigned)n;
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned *count, nvmlProcessInfo_t *infos) {
        LOCKED;
        return running_processes(device, false, count, infos);
}

API nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t device, unsigned *count, nvmlProcessInfo_t *infos) {
        LOCKED;
        return running_processes(device, true, count, infos);
}

/* ---- NVLink ---- */

/* The GPU's link from .gpuvirt-sim/nvml/<bdf>.nvlink, lines "LINK ADDRESS" (the active links and what is at
 * their far end, a GPU's or an NVSwitch's address): *ret_active, and far when it is. No file: the GPU has no
 * NVLink (NVML_ERROR_NOT_SUPPORTED). */
static nvmlReturn_t nvlink_far(nvmlDevice_t device, unsigned link, bool *ret_active, char far[static 16]) {
        FDev *d = as_dev(device);
        if (!d)
                return NVML_ERROR_INVALID_ARGUMENT;
        _cleanup_free_ char *p = state_path(d, ".nvlink");
        if (!p)
                return NVML_ERROR_UNKNOWN;
        _cleanup_fclose_ FILE *f = fopen(p, "re");
        if (!f)
                return NVML_ERROR_NOT_SUPPORTED;
        if (link >= NVML_NVLINK_MAX_LINKS)
                return NVML_ERROR_INVALID_ARGUMENT;
        *ret_active = false;
        char line[128];
        while (fgets(line, sizeof line, f) && !*ret_active) {
                unsigned l;
                char a[16];
                if (sscanf(line, "%u %15s", &l, a) == 2 && l == link) {
                        memcpy(far, a, 16);
                        *ret_active = true;
                }
        }
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetNvLinkState(nvmlDevice_t device, unsigned link, nvmlEnableState_t *active) {
        LOCKED;
        bool on;
        char far[16];
        nvmlReturn_t e = active ? nvlink_far(device, link, &on, far) : NVML_ERROR_INVALID_ARGUMENT;
        if (e == NVML_SUCCESS)
                *active = on ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
        return e;
}

API nvmlReturn_t nvmlDeviceGetNvLinkRemotePciInfo_v2(nvmlDevice_t device, unsigned link, nvmlPciInfo_t *pci) {
        LOCKED;
        bool on;
        char far[16];
        nvmlReturn_t e = pci ? nvlink_far(device, link, &on, far) : NVML_ERROR_INVALID_ARGUMENT;
        if (e == NVML_SUCCESS && (!on || !pci_info_fill(far, pci)))
                e = NVML_ERROR_UNKNOWN;
        return e;
}

API nvmlReturn_t nvmlSystemGetProcessName(unsigned pid, char *name, unsigned length) {
        if (!initialized)
                return NVML_ERROR_UNINITIALIZED;
        for (unsigned i = 0; i < n_devs; i++) {
                FProc p[64];
                int n = dev_processes(&devs[i], p, ELEMENTSOF(p));
                if (n < 0)
                        return NVML_ERROR_UNKNOWN;
                for (int k = 0; k < n; k++)
                        if (p[k].pid == pid)
                                return copy_out(p[k].name, name, length);
        }
        return NVML_ERROR_NOT_FOUND;
}
