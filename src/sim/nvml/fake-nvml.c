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
 *  - processes: .gpuvirt-sim/nvml/<bdf>.processes, lines "PID NAME [GI_ID]" (no GI: the whole GPU, as
 *    nvidia-persistenced or DCGM). They make SetMigMode report IN_USE and GI destruction fail with IN_USE.
 *
 * State per GPU lives in .gpuvirt-sim/nvml/<bdf> (text, rewritten after every change), so it survives
 * across processes. Simulated GPUs start with MIG disabled (no state file). Like the driver, which keeps
 * one state for every client, each call that reads or changes that state holds .gpuvirt-sim/nvml/lock
 * (flock) and re-reads the state first: two processes see each other's instances, and a client that acts
 * on what it read earlier finds out (a taken placement is NVML_ERROR_INSUFFICIENT_RESOURCES), so the
 * simulator shows races instead of hiding them. Handles stay valid across re-reads (an instance keeps its
 * slot by id); a handle of an instance another process destroyed is NVML_ERROR_INVALID_ARGUMENT.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>

#include "basic/fileio.h"
#include "core/mig/nvml.h"
#include "sim/sim.h"

#define API __attribute__((visibility("default")))

#define MAX_DEVS 32
#define MAX_GIS  8
#define MAX_CIS  8

enum { MAGIC_DEV = 0x4e564430, MAGIC_GI = 0x4e564731, MAGIC_CI = 0x4e564332 };

typedef struct FProfile {
        unsigned constant, id, compute, size, max, starts; /* starts: bit i = legal start i */
        unsigned long long mem_mb;                        /* memorySizeMB as NVML reports it */
        unsigned sms, ce, dec, jpeg, ofa;
} FProfile;

typedef struct FModel {
        const char *product;
        unsigned long long total_mb; /* the GPU's memory, as nvmlDeviceGetMemoryInfo's total */
        unsigned mem_slices, compute_slices;
        FProfile p[NVML_GPU_INSTANCE_PROFILE_COUNT];
        size_t n;
} FModel;

/*
 * The MIG profile tables of each product, one table per product.
 *
 * Profiles, instance counts, slice fractions and engines (copy engines, NVDEC, JPEG, OFA) are those of
 * NVIDIA's "Multi-Instance GPU User Guide" (r580), section "Supported MIG Profiles" (the A30, A100, H100
 * and H200 tables); placements are those of the same section's diagrams and of `nvidia-smi mig -lgipp` in
 * its "Getting Started with MIG" section. Memory (NVML's memorySizeMB) and SM counts are not in those
 * tables: they are what `nvidia-smi mig -lgip` reports on the product, cited above each table.
 * tests/test-mig.c checks every row against those published numbers.
 *
 * The GPU's total memory (for profile names) is what nvidia-smi reports for the product: 40960, 81920,
 * 24576, 81559 (H100) and 143771 MiB (H200).
 *
 * P(constant, id, compute slices, memory slices, instances, legal starts, MiB, SMs, CE, NVDEC, JPEG, OFA)
 */
#define P(c, i, cs, sz, mx, st, mb, sm, ce_, de, jp, of)                                                      \
        {.constant = (c), .id = (i), .compute = (cs), .size = (sz), .max = (mx), .starts = (st), .mem_mb = (mb), \
         .sms = (sm), .ce = (ce_), .dec = (de), .jpeg = (jp), .ofa = (of)}

/* A100-SXM4-40GB: the guide's table "GPU Instance Profiles on A100", and its own `nvidia-smi mig -lgip`
 * example (Getting Started with MIG: 4.75, 9.62, 9.62, 19.50, 19.50, 39.25 GiB; 14, 14, 14, 28, 42, 56, 98
 * SMs). The PCIe 40GB card (GA100, same partitioning) is assumed to report the same: no capture of it. */
static const FModel a100_40gb = {"A100-40GB", 40960, 8, 7, {
        P(0x0, 19, 1, 1, 7, 0x7f, 4864, 14, 1, 0, 0, 0),   P(0x7, 20, 1, 1, 1, 0x7f, 4864, 14, 1, 1, 1, 1),
        P(0x9, 15, 1, 2, 4, 0x55, 9856, 14, 1, 1, 0, 0),   P(0x1, 14, 2, 2, 3, 0x15, 9856, 28, 2, 1, 0, 0),
        P(0x2, 9, 3, 4, 2, 0x11, 19968, 42, 3, 2, 0, 0),   P(0x3, 5, 4, 4, 1, 0x01, 19968, 56, 4, 2, 0, 0),
        P(0x4, 0, 7, 8, 1, 0x01, 40192, 98, 7, 5, 1, 1)}, 7};
/* A100-SXM4-80GB / A100 80GB PCIe: the guide's A100 table with the 80GB names; memory and SMs from
 * `nvidia-smi mig -lgip` on an A100 80GB PCIe (driver 515: 9.50, 9.50, 19.50, 39.25, 39.25, 79.00 GiB;
 * 14, 14, 28, 42, 56, 98 SMs; MIG device 3g.40gb 40192 MiB). That driver predates 1g.20gb (profile 15):
 * its memory and SMs are taken equal to 2g.20gb's memory and 1g's SMs, as on the 40GB card. */
static const FModel a100_80gb = {"A100-80GB", 81920, 8, 7, {
        P(0x0, 19, 1, 1, 7, 0x7f, 9728, 14, 1, 0, 0, 0),   P(0x7, 20, 1, 1, 1, 0x7f, 9728, 14, 1, 1, 1, 1),
        P(0x9, 15, 1, 2, 4, 0x55, 19968, 14, 1, 1, 0, 0),  P(0x1, 14, 2, 2, 3, 0x15, 19968, 28, 2, 1, 0, 0),
        P(0x2, 9, 3, 4, 2, 0x11, 40192, 42, 3, 2, 0, 0),   P(0x3, 5, 4, 4, 1, 0x01, 40192, 56, 4, 2, 0, 0),
        P(0x4, 0, 7, 8, 1, 0x01, 80896, 98, 7, 5, 1, 1)}, 7};
/* A30-24GB: the guide's table "GPU Instance Profiles on A30"; memory and SMs from `nvidia-smi mig -lgip`
 * on an A30 (5.81, 5.81, 11.69, 11.69, 23.44 GiB; 14, 14, 28, 28, 56 SMs; placements from its -lgipp:
 * {0,1,2,3}:1, {0,2}:2, {0}:4). */
static const FModel a30 = {"A30-24GB", 24576, 4, 4, {
        P(0x0, 14, 1, 1, 4, 0x0f, 5952, 14, 1, 0, 0, 0),   P(0x7, 21, 1, 1, 1, 0x0f, 5952, 14, 1, 1, 1, 1),
        P(0x1, 5, 2, 2, 2, 0x05, 11968, 28, 2, 2, 0, 0),   P(0x8, 6, 2, 2, 1, 0x05, 11968, 28, 2, 2, 1, 1),
        P(0x3, 0, 4, 4, 1, 0x01, 24000, 56, 4, 4, 1, 1)}, 5};
/* H100-SXM5-80GB: the guide's table "GPU Instance Profiles on H100"; memory and SMs from `nvidia-smi mig
 * -lgip` on an H100 80GB HBM3 (9.75, 9.75, 19.62, 19.62, 39.50, 39.50, 79.25 GiB; 16, 16, 26, 32, 60, 64,
 * 132 SMs). */
static const FModel h100_sxm5 = {"H100-SXM5-80GB", 81559, 8, 7, {
        P(0x0, 19, 1, 1, 7, 0x7f, 9984, 16, 1, 1, 1, 0),   P(0x7, 20, 1, 1, 1, 0x7f, 9984, 16, 1, 1, 1, 1),
        P(0x9, 15, 1, 2, 4, 0x55, 20096, 26, 1, 1, 1, 0),  P(0x1, 14, 2, 2, 3, 0x15, 20096, 32, 2, 2, 2, 0),
        P(0x2, 9, 3, 4, 2, 0x11, 40448, 60, 3, 3, 3, 0),   P(0x3, 5, 4, 4, 1, 0x01, 40448, 64, 4, 4, 4, 0),
        P(0x4, 0, 7, 8, 1, 0x01, 81152, 132, 8, 7, 7, 1)}, 7};
/* H100-PCIE-80GB: the guide's H100 table; memory and SMs from `nvidia-smi mig -lgip` on an H100 PCIe
 * (driver 570.169: 9.75, 9.75, 19.62, 19.62, 39.50, 39.50, 79.25 GiB; 14, 14, 14, 30, 46, 62, 114 SMs;
 * MIG device 1g.10gb 9984 MiB). */
static const FModel h100_pcie = {"H100-PCIE-80GB", 81559, 8, 7, {
        P(0x0, 19, 1, 1, 7, 0x7f, 9984, 14, 1, 1, 1, 0),   P(0x7, 20, 1, 1, 1, 0x7f, 9984, 14, 1, 1, 1, 1),
        P(0x9, 15, 1, 2, 4, 0x55, 20096, 14, 1, 1, 1, 0),  P(0x1, 14, 2, 2, 3, 0x15, 20096, 30, 2, 2, 2, 0),
        P(0x2, 9, 3, 4, 2, 0x11, 40448, 46, 3, 3, 3, 0),   P(0x3, 5, 4, 4, 1, 0x01, 40448, 62, 4, 4, 4, 0),
        P(0x4, 0, 7, 8, 1, 0x01, 81152, 114, 8, 7, 7, 1)}, 7};
/* H200-SXM-141GB: the guide's table "GPU Instance Profiles on H200"; memory and SMs from `nvidia-smi mig
 * -lgip` on an H200 in NVIDIA/mig-parted issue #120 ("Add support for the NVIDIA H200 GPU": 16.00, 16.00,
 * 32.25, 32.25, 69.50, 69.50, 139.75 GiB; 16, 16, 26, 32, 60, 64, 132 SMs). H200 NVL is not modelled. */
static const FModel h200_sxm = {"H200-SXM-141GB", 143771, 8, 7, {
        P(0x0, 19, 1, 1, 7, 0x7f, 16384, 16, 1, 1, 1, 0),  P(0x7, 20, 1, 1, 1, 0x7f, 16384, 16, 1, 1, 1, 1),
        P(0x9, 15, 1, 2, 4, 0x55, 33024, 26, 1, 1, 1, 0),  P(0x1, 14, 2, 2, 3, 0x15, 33024, 32, 2, 2, 2, 0),
        P(0x2, 9, 3, 4, 2, 0x11, 71168, 60, 3, 3, 3, 0),   P(0x3, 5, 4, 4, 1, 0x01, 71168, 64, 4, 4, 4, 0),
        P(0x4, 0, 7, 8, 1, 0x01, 143104, 132, 8, 7, 7, 1)}, 7};
#undef P

/* Each product by PCI device id, with the name NVML gives it. */
static const struct {
        uint16_t device;
        const char *name;
        const FModel *model;
} known[] = {
        {0x20b0, "NVIDIA A100-SXM4-40GB", &a100_40gb}, {0x20b1, "NVIDIA A100-PCIE-40GB", &a100_40gb},
        {0x20f1, "NVIDIA A100-PCIE-40GB", &a100_40gb}, {0x20b2, "NVIDIA A100-SXM4-80GB", &a100_80gb},
        {0x20b5, "NVIDIA A100 80GB PCIe", &a100_80gb}, {0x20b7, "NVIDIA A30", &a30},
        {0x2330, "NVIDIA H100 80GB HBM3", &h100_sxm5}, {0x2331, "NVIDIA H100 PCIe", &h100_pcie},
        {0x2335, "NVIDIA H200", &h200_sxm},
        /* GPUs without MIG that the simulator's profiles hold */
        {0x1eb8, "Tesla T4", NULL},                    {0x1fb0, "DGX Display", NULL},
        {0x1e30, "Quadro RTX 6000", NULL},             {0x2206, "NVIDIA GeForce RTX 3080", NULL},
        {0x21c4, "NVIDIA GeForce GTX 1660 SUPER", NULL},
};

typedef struct FDev FDev;
typedef struct FGi FGi;

typedef struct FCi {
        uint32_t magic;
        FGi *gi;
        bool used;
        unsigned id, profile, start, size;
        char uuid[48];
} FCi;

struct FGi {
        uint32_t magic;
        FDev *dev;
        bool used;
        unsigned id;
        const FProfile *p;
        unsigned start, size;
        FCi ci[MAX_CIS];
};

struct FDev {
        uint32_t magic;
        char bdf[16];
        uint16_t device;
        uint32_t subsystem; /* subsystem device << 16 | subsystem vendor */
        bool lost;          /* config space reads all ones: fallen off the bus */
        const char *name;
        const FModel *m; /* NULL: no MIG */
        unsigned cur, pend;
        unsigned long resets, serial;
        FGi gi[MAX_GIS];
        unsigned loaded; /* the locked section (lock_gen) whose state this holds */
};

static char *root;
static FDev devs[MAX_DEVS];
static unsigned n_devs;
static bool initialized;

/* ---- the state lock: held for the whole of each call that reads or changes a GPU's state ---- */

static int lock_fd = -1;
static unsigned lock_depth, lock_gen;

static unsigned state_lock(void) {
        if (lock_depth++ > 0 || !root)
                return 0;
        lock_gen++; /* every GPU's state is re-read in this section before it is used */
        _cleanup_free_ char *dir = strdup_printf("%s/" SIM_MARKER_DIR "/nvml", root);
        _cleanup_free_ char *p = strdup_printf("%s/" SIM_MARKER_DIR "/nvml/lock", root);
        if (!dir || !p || mkdir_p(dir, 0755) < 0)
                return 0;
        lock_fd = open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        while (lock_fd >= 0 && flock(lock_fd, LOCK_EX) < 0 && errno == EINTR)
                ;
        return 0;
}

static void state_unlockp(unsigned *unused) {
        if (lock_depth == 0 || --lock_depth > 0)
                return;
        if (lock_fd >= 0)
                close(lock_fd);
        lock_fd = -1;
}

/* At the top of every call that touches a GPU's state. */
#define LOCKED _cleanup_(state_unlockp) _unused_ unsigned _locked = state_lock()

/* gpuvirt's fault point for the changes we make (sim_nvml_fault()). */
static GpuvirtSimNvmlFaultHook fault_hook;

API int gpuvirtSimNvmlSetFaultHook(GpuvirtSimNvmlFaultHook hook) {
        fault_hook = hook;
        return 0;
}

/* Before a change to d's state: an injected fault fails the call (a KILL fault ends the process here, the
 * change not made), as a kernel write would. */
static bool faulted(const FDev *d, const char *call) {
        return fault_hook && fault_hook(root, d->bdf, call) < 0;
}

API int gpuvirtSimNvmlSetRoot(const char *rootdir) {
        if (!rootdir || rootdir[0] != '/')
                return -EINVAL;
        char *c = strdup(rootdir);
        if (!c)
                return -ENOMEM;
        free(root);
        root = c;
        return 0;
}

/* ---- state files ---- */

static char *state_path(const FDev *d, const char *suffix) {
        return strdup_printf("%s/" SIM_MARKER_DIR "/nvml/%s%s", root, d->bdf, suffix);
}

static void make_uuid(const char *prefix, const char *seed, unsigned long serial, char out[48]) {
        uint64_t h1 = 1469598103934665603ull, h2 = 1099511628211ull * 31;
        for (const char *s = seed; *s; s++) {
                h1 = (h1 ^ (unsigned char)*s) * 1099511628211ull;
                h2 = (h2 ^ (unsigned char)*s) * 0x100000001b3ull + 7;
        }
        h1 ^= serial * 0x9e3779b97f4a7c15ull;
        h2 = (h2 ^ serial) * 0xff51afd7ed558ccdull;
        snprintf(out, 48, "%s%08x-%04x-%04x-%04x-%012llx", prefix, (unsigned)(h1 >> 32), (unsigned)(h1 >> 16) & 0xffff,
                 0x5000 | ((unsigned)h1 & 0x0fff), 0x8000 | ((unsigned)(h2 >> 48) & 0x3fff),
                 (unsigned long long)(h2 & 0xffffffffffffull));
}

static const FProfile *profile_by_id(const FDev *d, unsigned id) {
        if (!d->m)
                return NULL;
        for (size_t i = 0; i < d->m->n; i++)
                if (d->m->p[i].id == id)
                        return &d->m->p[i];
        return NULL;
}

static int dev_save(const FDev *d) {
        _cleanup_free_ char *dir = strdup_printf("%s/" SIM_MARKER_DIR "/nvml", root);
        _cleanup_free_ char *p = state_path(d, "");
        _cleanup_free_ char *tmp = state_path(d, ".tmp");
        if (!dir || !p || !tmp || mkdir_p(dir, 0755) < 0)
                return -1;
        FILE *f = fopen(tmp, "we");
        if (!f)
                return -1;
        fprintf(f, "mode %u %u\nresets %lu\nserial %lu\n", d->cur, d->pend, d->resets, d->serial);
        for (unsigned g = 0; g < MAX_GIS; g++) {
                const FGi *gi = &d->gi[g];
                if (!gi->used)
                        continue;
                fprintf(f, "gi %u %u %u %u\n", gi->id, gi->p->id, gi->start, gi->size);
                for (unsigned c = 0; c < MAX_CIS; c++)
                        if (gi->ci[c].used)
                                fprintf(f, "ci %u %u %u %u %u %s\n", gi->id, gi->ci[c].id, gi->ci[c].profile,
                                        gi->ci[c].start, gi->ci[c].size, gi->ci[c].uuid);
        }
        bool bad = ferror(f);
        if (fclose(f) != 0 || bad || rename(tmp, p) < 0) {
                unlink(tmp);
                return -1;
        }
        return 0;
}

static FGi *gi_by_id(FDev *d, unsigned id) {
        for (unsigned g = 0; g < MAX_GIS; g++)
                if (d->gi[g].used && d->gi[g].id == id)
                        return &d->gi[g];
        return NULL;
}

/* Re-read the GPU's state from its file. Instances keep their slots by id (so handles stay valid), instances
 * that are gone free theirs, new ones take free slots. No file: MIG disabled, no instances. */
static void dev_load(FDev *d) {
        struct { unsigned id, profile, start, size; } gis[MAX_GIS];
        struct { unsigned gi, id, profile, start, size; char uuid[48]; } cis[MAX_GIS * MAX_CIS];
        size_t ngi = 0, nci = 0;
        d->cur = d->pend = 0;
        d->resets = d->serial = 0;
        _cleanup_free_ char *p = state_path(d, "");
        FILE *f = p ? fopen(p, "re") : NULL;
        char line[256];
        while (f && fgets(line, sizeof line, f)) {
                unsigned a, b, c, e, g;
                char uuid[48];
                if (sscanf(line, "mode %u %u", &a, &b) == 2) {
                        d->cur = a;
                        d->pend = b;
                } else if (sscanf(line, "resets %lu", &d->resets) == 1 || sscanf(line, "serial %lu", &d->serial) == 1)
                        continue;
                else if (sscanf(line, "gi %u %u %u %u", &a, &b, &c, &e) == 4 && ngi < MAX_GIS && profile_by_id(d, b))
                        gis[ngi++] = (__typeof__(gis[0])){a, b, c, e};
                else if (sscanf(line, "ci %u %u %u %u %u %47s", &a, &b, &c, &e, &g, uuid) == 6 && nci < ELEMENTSOF(cis)) {
                        cis[nci] = (__typeof__(cis[0])){a, b, c, e, g, ""};
                        snprintf(cis[nci++].uuid, sizeof cis[0].uuid, "%s", uuid);
                }
        }
        if (f)
                fclose(f);

        /* GPU instances: the ones still there keep their slots, then the new ones take the freed ones */
        bool keep[MAX_GIS] = {}, placed[MAX_GIS] = {};
        for (size_t k = 0; k < ngi; k++) {
                FGi *gi = gi_by_id(d, gis[k].id);
                if (gi) {
                        keep[gi - d->gi] = placed[k] = true;
                        gi->p = profile_by_id(d, gis[k].profile);
                        gi->start = gis[k].start;
                        gi->size = gis[k].size;
                }
        }
        for (unsigned g = 0; g < MAX_GIS; g++)
                d->gi[g].used = keep[g];
        for (size_t k = 0; k < ngi; k++) {
                unsigned g;
                for (g = 0; g < MAX_GIS && d->gi[g].used; g++)
                        ;
                if (placed[k] || g == MAX_GIS)
                        continue;
                d->gi[g] = (FGi){.magic = MAGIC_GI, .dev = d, .used = true, .id = gis[k].id,
                                 .p = profile_by_id(d, gis[k].profile), .start = gis[k].start, .size = gis[k].size};
        }
        /* compute instances of each, the same way */
        for (unsigned g = 0; g < MAX_GIS; g++) {
                FGi *gi = &d->gi[g];
                bool keep_ci[MAX_CIS] = {}, placed_ci[ELEMENTSOF(cis)] = {};
                for (size_t k = 0; gi->used && k < nci; k++)
                        for (unsigned c = 0; c < MAX_CIS && cis[k].gi == gi->id && !placed_ci[k]; c++)
                                if (gi->ci[c].used && !keep_ci[c] && gi->ci[c].id == cis[k].id)
                                        keep_ci[c] = placed_ci[k] = true;
                for (unsigned c = 0; c < MAX_CIS; c++)
                        gi->ci[c].used = keep_ci[c];
                for (size_t k = 0; gi->used && k < nci; k++) {
                        if (cis[k].gi != gi->id)
                                continue;
                        unsigned c = 0;
                        if (placed_ci[k])
                                while (gi->ci[c].id != cis[k].id || !gi->ci[c].used)
                                        c++;
                        else
                                while (c < MAX_CIS && gi->ci[c].used)
                                        c++;
                        if (c == MAX_CIS)
                                continue;
                        gi->ci[c] = (FCi){.magic = MAGIC_CI, .gi = gi, .used = true, .id = cis[k].id,
                                          .profile = cis[k].profile, .start = cis[k].start, .size = cis[k].size};
                        snprintf(gi->ci[c].uuid, sizeof gi->ci[c].uuid, "%s", cis[k].uuid);
                }
        }
}

/* The kernel model counts resets; a reset applies the pending mode and clears every instance. */
static void dev_sync(FDev *d) {
        _cleanup_free_ char *p = strdup_printf("%s/" SIM_MARKER_DIR "/resets/%s", root, d->bdf);
        uint32_t n = 0;
        if (!p || read_attr_u32(p, 10, &n) < 0 || n <= d->resets)
                return;
        d->resets = n;
        d->cur = d->pend;
        for (unsigned g = 0; g < MAX_GIS; g++)
                d->gi[g].used = false;
        (void)dev_save(d);
}

typedef struct FProc {
        unsigned pid, gi;
        char name[64];
} FProc;

static size_t dev_processes(const FDev *d, FProc *out, size_t max) {
        _cleanup_free_ char *p = state_path(d, ".processes");
        FILE *f = p ? fopen(p, "re") : NULL;
        size_t n = 0;
        if (!f)
                return 0;
        char line[256];
        while (fgets(line, sizeof line, f) && n < max) {
                FProc x = {.gi = NVML_INSTANCE_ID_NONE};
                int k = sscanf(line, "%u %63s %u", &x.pid, x.name, &x.gi);
                if (k >= 2)
                        out[n++] = x;
        }
        fclose(f);
        return n;
}

static uint32_t read_hex(const char *dir, const char *name) {
        _cleanup_free_ char *p = strdup_printf("%s/%s", dir, name);
        uint32_t v = 0;
        if (p)
                (void)read_attr_u32(p, 16, &v);
        return v;
}

/* A device whose config space reads back all ones (vendor 0xffff) no longer answers on the bus: the
 * driver reports it lost (NVML_ERROR_GPU_IS_LOST), as it does after an Xid 79. */
static bool config_lost(const char *dir) {
        _cleanup_free_ char *p = strdup_printf("%s/config", dir);
        uint8_t cfg[16];
        size_t n = 0;
        if (!p || read_head_at(AT_FDCWD, p, cfg, sizeof cfg, &n) < 0 || n < sizeof cfg)
                return false;
        for (size_t i = 0; i < sizeof cfg; i++)
                if (cfg[i] != 0xff)
                        return false;
        return true;
}

/* ---- handles ---- */

/* The GPU's state as the file holds it now: re-read once per locked section (the caller holds LOCKED). */
static void dev_refresh(FDev *d) {
        if (d->loaded == lock_gen)
                return;
        d->loaded = lock_gen;
        dev_load(d);
        dev_sync(d);
}

static FDev *as_dev(nvmlDevice_t h) {
        FDev *d = (FDev *)h;
        if (!initialized || !d || d->magic != MAGIC_DEV)
                return NULL;
        dev_refresh(d);
        return d;
}

static FCi *as_migdev(nvmlDevice_t h) {
        FCi *c = (FCi *)h;
        if (!initialized || !c || c->magic != MAGIC_CI)
                return NULL;
        dev_refresh(c->gi->dev);
        return c->used && c->gi->used ? c : NULL;
}

static FGi *as_gi(nvmlGpuInstance_t h) {
        FGi *g = (FGi *)h;
        if (!initialized || !g || g->magic != MAGIC_GI)
                return NULL;
        dev_refresh(g->dev);
        return g->used ? g : NULL;
}

static FCi *as_ci(nvmlComputeInstance_t h) {
        return as_migdev((nvmlDevice_t)h);
}

/* ---- init ---- */

API nvmlReturn_t nvmlInit_v2(void) {
        LOCKED;
        if (!root)
                return NVML_ERROR_DRIVER_NOT_LOADED;
        _cleanup_free_ char *pci = strdup_printf("%s/sys/bus/pci/devices", root);
        _cleanup_strv_free_ char **l = NULL;
        if (!pci || dir_list(pci, &l) < 0)
                return NVML_ERROR_DRIVER_NOT_LOADED;
        memset(devs, 0, sizeof devs);
        n_devs = 0;
        for (char **e = l; *e && n_devs < MAX_DEVS; e++) {
                _cleanup_free_ char *dir = strdup_printf("%s/%s", pci, *e);
                _cleanup_free_ char *drvl = strdup_printf("%s/%s/driver", pci, *e);
                _cleanup_free_ char *drv = NULL, *pf = strdup_printf("%s/physfn", dir);
                if (!dir || !drvl || !pf || read_hex(dir, "vendor") != 0x10de || (read_hex(dir, "class") >> 16) != 0x03 ||
                    readlink_base(drvl, &drv) < 0 || !streq(drv, "nvidia") || path_exists(pf))
                        continue;
                FDev *d = &devs[n_devs++];
                d->magic = MAGIC_DEV;
                snprintf(d->bdf, sizeof d->bdf, "%s", *e);
                d->device = (uint16_t)read_hex(dir, "device");
                d->subsystem = read_hex(dir, "subsystem_device") << 16 | (read_hex(dir, "subsystem_vendor") & 0xffff);
                d->lost = config_lost(dir);
                d->name = "NVIDIA GPU";
                for (size_t k = 0; k < ELEMENTSOF(known); k++)
                        if (known[k].device == d->device) {
                                d->name = known[k].name;
                                d->m = known[k].model;
                        }
                dev_refresh(d);
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
        if (devs[index].lost)
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
        for (unsigned i = 0; i < n_devs; i++)
                if (bus_id_parse(devs[i].bdf, &b[0], &b[1], &b[2], &b[3]) && memcmp(a, b, sizeof a) == 0) {
                        if (devs[i].lost)
                                return NVML_ERROR_GPU_IS_LOST;
                        *device = (nvmlDevice_t)&devs[i];
                        return NVML_SUCCESS;
                }
        return NVML_ERROR_NOT_FOUND;
}

static nvmlReturn_t copy_out(const char *s, char *buf, unsigned len) {
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
        FDev *d = as_dev(device);
        if (!d)
                return initialized ? NVML_ERROR_INVALID_ARGUMENT : NVML_ERROR_UNINITIALIZED;
        char u[48];
        make_uuid("GPU-", d->bdf, 0, u);
        return copy_out(u, uuid, length);
}

API nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned length) {
        LOCKED;
        FDev *d = as_dev(device);
        if (!d)
                return NVML_ERROR_INVALID_ARGUMENT;
        return copy_out(d->name, name, length);
}

API nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci) {
        LOCKED;
        FDev *d = as_dev(device);
        unsigned dom, bus, slot, fn;
        if (!d || !pci || !bus_id_parse(d->bdf, &dom, &bus, &slot, &fn))
                return NVML_ERROR_INVALID_ARGUMENT;
        *pci = (nvmlPciInfo_t){.domain = dom, .bus = bus, .device = slot,
                               .pciDeviceId = (unsigned)d->device << 16 | 0x10de, .pciSubSystemId = d->subsystem};
        snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%04X:%02X:%02X.%X", dom, bus, slot, fn);
        snprintf(pci->busId, sizeof pci->busId, "%08X:%02X:%02X.%X", dom, bus, slot, fn);
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
        FDev *d = as_dev(device);
        if (!d || !memory)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (!d->m)
                return NVML_ERROR_NOT_SUPPORTED; /* only the products it models */
        *memory = (nvmlMemory_t){.total = d->m->total_mb << 20, .free = d->m->total_mb << 20};
        return NVML_SUCCESS;
}

/* ---- MIG mode ---- */

static unsigned gi_count(const FDev *d) {
        unsigned n = 0;
        for (unsigned g = 0; g < MAX_GIS; g++)
                n += d->gi[g].used;
        return n;
}

API nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned *current, unsigned *pending) {
        LOCKED;
        FDev *d = as_dev(device);
        if (!d || !current || !pending)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (!d->m)
                return NVML_ERROR_NOT_SUPPORTED;
        *current = d->cur;
        *pending = d->pend;
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceSetMigMode(nvmlDevice_t device, unsigned mode, nvmlReturn_t *activation) {
        LOCKED;
        FDev *d = as_dev(device);
        if (!d || !activation || mode > 1)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (!d->m)
                return NVML_ERROR_NOT_SUPPORTED;
        if (mode == 0 && d->cur == 1 && gi_count(d) > 0)
                return NVML_ERROR_IN_USE; /* instances exist */
        if (faulted(d, "nvmlDeviceSetMigMode"))
                return NVML_ERROR_UNKNOWN;
        d->pend = mode;
        if (dev_save(d) < 0)
                return NVML_ERROR_UNKNOWN;
        FProc p[1];
        if (mode == d->cur)
                *activation = NVML_SUCCESS;
        else
                *activation = dev_processes(d, p, 1) > 0 ? NVML_ERROR_IN_USE : NVML_ERROR_RESET_REQUIRED;
        return NVML_SUCCESS;
}

/* ---- GPU instances ---- */

API nvmlReturn_t nvmlDeviceGetGpuInstanceProfileInfo(nvmlDevice_t device, unsigned profile,
                                                     nvmlGpuInstanceProfileInfo_t *info) {
        LOCKED;
        FDev *d = as_dev(device);
        if (!d || !info || profile >= NVML_GPU_INSTANCE_PROFILE_COUNT)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (!d->m)
                return NVML_ERROR_NOT_SUPPORTED;
        for (size_t i = 0; i < d->m->n; i++) {
                const FProfile *p = &d->m->p[i];
                if (p->constant != profile)
                        continue;
                *info = (nvmlGpuInstanceProfileInfo_t){
                        .id = p->id, .isP2pSupported = 0, .sliceCount = p->compute, .instanceCount = p->max,
                        .multiprocessorCount = p->sms, .copyEngineCount = p->ce, .decoderCount = p->dec,
                        .encoderCount = 0, .jpegCount = p->jpeg, .ofaCount = p->ofa, .memorySizeMB = p->mem_mb};
                return NVML_SUCCESS;
        }
        return NVML_ERROR_NOT_SUPPORTED;
}

static bool range_free(const FDev *d, unsigned start, unsigned size) {
        for (unsigned g = 0; g < MAX_GIS; g++) {
                const FGi *gi = &d->gi[g];
                if (gi->used && start < gi->start + gi->size && gi->start < start + size)
                        return false;
        }
        return start + size <= d->m->mem_slices;
}

static unsigned profile_count(const FDev *d, const FProfile *p) {
        unsigned n = 0;
        for (unsigned g = 0; g < MAX_GIS; g++)
                n += d->gi[g].used && d->gi[g].p == p;
        return n;
}

API nvmlReturn_t nvmlDeviceGetGpuInstancePossiblePlacements_v2(nvmlDevice_t device, unsigned profileId,
                                                               nvmlGpuInstancePlacement_t *placements, unsigned *count) {
        LOCKED;
        FDev *d = as_dev(device);
        if (!d || !count)
                return NVML_ERROR_INVALID_ARGUMENT;
        const FProfile *p = profile_by_id(d, profileId);
        if (!p)
                return d->m ? NVML_ERROR_INVALID_ARGUMENT : NVML_ERROR_NOT_SUPPORTED;
        unsigned n = (unsigned)__builtin_popcount(p->starts);
        if (!placements) {
                *count = n;
                return NVML_SUCCESS;
        }
        if (*count < n) {
                *count = n;
                return NVML_ERROR_INSUFFICIENT_SIZE;
        }
        unsigned k = 0;
        for (unsigned s = 0; s < 8; s++)
                if (p->starts & (1u << s))
                        placements[k++] = (nvmlGpuInstancePlacement_t){s, p->size};
        *count = n;
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetGpuInstanceRemainingCapacity(nvmlDevice_t device, unsigned profileId, unsigned *count) {
        LOCKED;
        FDev *d = as_dev(device);
        if (!d || !count)
                return NVML_ERROR_INVALID_ARGUMENT;
        const FProfile *p = profile_by_id(d, profileId);
        if (!p)
                return d->m ? NVML_ERROR_INVALID_ARGUMENT : NVML_ERROR_NOT_SUPPORTED;
        if (d->cur != 1) {
                *count = 0;
                return NVML_SUCCESS;
        }
        /* greedy over the legal starts, low to high, on the current occupancy */
        unsigned n = 0, taken = 0;
        for (unsigned s = 0; s < 8; s++) {
                if (!(p->starts & (1u << s)) || !range_free(d, s, p->size))
                        continue;
                unsigned mask = ((1u << p->size) - 1) << s;
                if (taken & mask)
                        continue;
                taken |= mask;
                n++;
        }
        unsigned left = p->max > profile_count(d, p) ? p->max - profile_count(d, p) : 0;
        *count = n < left ? n : left;
        return NVML_SUCCESS;
}

static nvmlReturn_t gi_create(FDev *d, const FProfile *p, unsigned start, nvmlGpuInstance_t *ret) {
        unsigned g;
        for (g = 0; g < MAX_GIS && d->gi[g].used; g++)
                ;
        if (g == MAX_GIS || profile_count(d, p) >= p->max)
                return NVML_ERROR_INSUFFICIENT_RESOURCES;
        if (faulted(d, "nvmlDeviceCreateGpuInstance"))
                return NVML_ERROR_UNKNOWN;
        unsigned id = 1;
        while (gi_by_id(d, id))
                id++;
        d->gi[g] = (FGi){.magic = MAGIC_GI, .dev = d, .used = true, .id = id, .p = p, .start = start, .size = p->size};
        if (dev_save(d) < 0) {
                d->gi[g].used = false;
                return NVML_ERROR_UNKNOWN;
        }
        *ret = (nvmlGpuInstance_t)&d->gi[g];
        return NVML_SUCCESS;
}

static nvmlReturn_t gi_check(FDev *d, unsigned profileId, const FProfile **ret) {
        if (!d->m)
                return NVML_ERROR_NOT_SUPPORTED;
        if (d->cur != 1)
                return NVML_ERROR_NOT_SUPPORTED; /* MIG is not enabled */
        *ret = profile_by_id(d, profileId);
        return *ret ? NVML_SUCCESS : NVML_ERROR_INVALID_ARGUMENT;
}

API nvmlReturn_t nvmlDeviceCreateGpuInstance(nvmlDevice_t device, unsigned profileId, nvmlGpuInstance_t *gi) {
        LOCKED;
        FDev *d = as_dev(device);
        const FProfile *p;
        if (!d || !gi)
                return NVML_ERROR_INVALID_ARGUMENT;
        nvmlReturn_t e = gi_check(d, profileId, &p);
        if (e != NVML_SUCCESS)
                return e;
        /* the driver's default placement: the highest free legal start */
        for (int s = 7; s >= 0; s--)
                if ((p->starts & (1u << s)) && range_free(d, (unsigned)s, p->size))
                        return gi_create(d, p, (unsigned)s, gi);
        return NVML_ERROR_INSUFFICIENT_RESOURCES;
}

API nvmlReturn_t nvmlDeviceCreateGpuInstanceWithPlacement(nvmlDevice_t device, unsigned profileId,
                                                          const nvmlGpuInstancePlacement_t *pl, nvmlGpuInstance_t *gi) {
        LOCKED;
        FDev *d = as_dev(device);
        const FProfile *p;
        if (!d || !gi || !pl)
                return NVML_ERROR_INVALID_ARGUMENT;
        nvmlReturn_t e = gi_check(d, profileId, &p);
        if (e != NVML_SUCCESS)
                return e;
        if (pl->start >= 8 || !(p->starts & (1u << pl->start)) || pl->size != p->size)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (!range_free(d, pl->start, p->size))
                return NVML_ERROR_INSUFFICIENT_RESOURCES;
        return gi_create(d, p, pl->start, gi);
}

API nvmlReturn_t nvmlGpuInstanceDestroy(nvmlGpuInstance_t h) {
        LOCKED;
        FGi *gi = as_gi(h);
        if (!gi)
                return NVML_ERROR_INVALID_ARGUMENT;
        for (unsigned c = 0; c < MAX_CIS; c++)
                if (gi->ci[c].used)
                        return NVML_ERROR_IN_USE;
        FProc p[64];
        size_t n = dev_processes(gi->dev, p, ELEMENTSOF(p));
        for (size_t i = 0; i < n; i++)
                if (p[i].gi == gi->id)
                        return NVML_ERROR_IN_USE;
        if (faulted(gi->dev, "nvmlGpuInstanceDestroy"))
                return NVML_ERROR_UNKNOWN;
        gi->used = false;
        return dev_save(gi->dev) < 0 ? NVML_ERROR_UNKNOWN : NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetGpuInstances(nvmlDevice_t device, unsigned profileId, nvmlGpuInstance_t *gis,
                                           unsigned *count) {
        LOCKED;
        FDev *d = as_dev(device);
        const FProfile *p;
        if (!d || !gis || !count)
                return NVML_ERROR_INVALID_ARGUMENT;
        nvmlReturn_t e = gi_check(d, profileId, &p);
        if (e != NVML_SUCCESS)
                return e;
        unsigned n = 0;
        for (unsigned g = 0; g < MAX_GIS; g++)
                if (d->gi[g].used && d->gi[g].p == p)
                        gis[n++] = (nvmlGpuInstance_t)&d->gi[g];
        *count = n;
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetGpuInstanceById(nvmlDevice_t device, unsigned id, nvmlGpuInstance_t *gi) {
        LOCKED;
        FDev *d = as_dev(device);
        if (!d || !gi)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (!d->m || d->cur != 1)
                return NVML_ERROR_NOT_SUPPORTED;
        FGi *g = gi_by_id(d, id);
        if (!g)
                return NVML_ERROR_NOT_FOUND;
        *gi = (nvmlGpuInstance_t)g;
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlGpuInstanceGetInfo(nvmlGpuInstance_t h, nvmlGpuInstanceInfo_t *info) {
        LOCKED;
        FGi *gi = as_gi(h);
        if (!gi || !info)
                return NVML_ERROR_INVALID_ARGUMENT;
        *info = (nvmlGpuInstanceInfo_t){.device = (nvmlDevice_t)gi->dev, .id = gi->id, .profileId = gi->p->id,
                                        .placement = {gi->start, gi->size}};
        return NVML_SUCCESS;
}

/* ---- compute instances ---- */

static const unsigned ci_slices[NVML_COMPUTE_INSTANCE_PROFILE_COUNT] = {1, 2, 3, 4, 7, 8, 6};

API nvmlReturn_t nvmlGpuInstanceGetComputeInstanceProfileInfo(nvmlGpuInstance_t h, unsigned profile, unsigned eng,
                                                              nvmlComputeInstanceProfileInfo_t *info) {
        LOCKED;
        FGi *gi = as_gi(h);
        if (!gi || !info || profile >= NVML_COMPUTE_INSTANCE_PROFILE_COUNT || eng != 0)
                return NVML_ERROR_INVALID_ARGUMENT;
        unsigned s = ci_slices[profile];
        if (s > gi->p->compute || s == 8 || s == 6 || (gi->p->compute == 4 && s == 3 && gi->dev->m->mem_slices == 4))
                return NVML_ERROR_NOT_SUPPORTED;
        unsigned per = gi->p->sms / gi->p->compute;
        *info = (nvmlComputeInstanceProfileInfo_t){.id = profile, .sliceCount = s, .instanceCount = gi->p->compute / s,
                                                   .multiprocessorCount = per * s, .sharedCopyEngineCount = gi->p->compute};
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlGpuInstanceCreateComputeInstance(nvmlGpuInstance_t h, unsigned profileId, nvmlComputeInstance_t *ret) {
        LOCKED;
        FGi *gi = as_gi(h);
        nvmlComputeInstanceProfileInfo_t info;
        if (!gi || !ret)
                return NVML_ERROR_INVALID_ARGUMENT;
        nvmlReturn_t e = nvmlGpuInstanceGetComputeInstanceProfileInfo(h, profileId, 0, &info);
        if (e != NVML_SUCCESS)
                return e;
        unsigned used = 0;
        for (unsigned c = 0; c < MAX_CIS; c++)
                if (gi->ci[c].used)
                        used |= ((1u << gi->ci[c].size) - 1) << gi->ci[c].start;
        for (unsigned s = 0; s + info.sliceCount <= gi->p->compute; s += info.sliceCount) {
                unsigned mask = ((1u << info.sliceCount) - 1) << s;
                if (used & mask)
                        continue;
                unsigned k, id = 0;
                for (k = 0; k < MAX_CIS && gi->ci[k].used; k++)
                        ;
                if (k == MAX_CIS)
                        break;
                bool taken;
                do {
                        taken = false;
                        for (unsigned c = 0; c < MAX_CIS; c++)
                                taken |= gi->ci[c].used && gi->ci[c].id == id;
                } while (taken && ++id);
                FDev *d = gi->dev;
                if (faulted(d, "nvmlGpuInstanceCreateComputeInstance"))
                        return NVML_ERROR_UNKNOWN;
                d->serial++;
                gi->ci[k] = (FCi){.magic = MAGIC_CI, .gi = gi, .used = true, .id = id, .profile = profileId, .start = s,
                                  .size = info.sliceCount};
                _cleanup_free_ char *seed = strdup_printf("%s/mig", d->bdf);
                make_uuid("MIG-", seed ?: d->bdf, d->serial, gi->ci[k].uuid);
                if (dev_save(d) < 0) {
                        gi->ci[k].used = false;
                        return NVML_ERROR_UNKNOWN;
                }
                *ret = (nvmlComputeInstance_t)&gi->ci[k];
                return NVML_SUCCESS;
        }
        return NVML_ERROR_INSUFFICIENT_RESOURCES;
}

API nvmlReturn_t nvmlComputeInstanceDestroy(nvmlComputeInstance_t h) {
        LOCKED;
        FCi *c = as_ci(h);
        if (!c)
                return NVML_ERROR_INVALID_ARGUMENT;
        FProc p[64];
        size_t n = dev_processes(c->gi->dev, p, ELEMENTSOF(p));
        for (size_t i = 0; i < n; i++)
                if (p[i].gi == c->gi->id)
                        return NVML_ERROR_IN_USE;
        if (faulted(c->gi->dev, "nvmlComputeInstanceDestroy"))
                return NVML_ERROR_UNKNOWN;
        c->used = false;
        return dev_save(c->gi->dev) < 0 ? NVML_ERROR_UNKNOWN : NVML_SUCCESS;
}

API nvmlReturn_t nvmlGpuInstanceGetComputeInstances(nvmlGpuInstance_t h, unsigned profileId,
                                                    nvmlComputeInstance_t *cis, unsigned *count) {
        LOCKED;
        FGi *gi = as_gi(h);
        if (!gi || !cis || !count || profileId >= NVML_COMPUTE_INSTANCE_PROFILE_COUNT)
                return NVML_ERROR_INVALID_ARGUMENT;
        unsigned n = 0;
        for (unsigned c = 0; c < MAX_CIS; c++)
                if (gi->ci[c].used && gi->ci[c].profile == profileId)
                        cis[n++] = (nvmlComputeInstance_t)&gi->ci[c];
        *count = n;
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlComputeInstanceGetInfo_v2(nvmlComputeInstance_t h, nvmlComputeInstanceInfo_t *info) {
        LOCKED;
        FCi *c = as_ci(h);
        if (!c || !info)
                return NVML_ERROR_INVALID_ARGUMENT;
        *info = (nvmlComputeInstanceInfo_t){.device = (nvmlDevice_t)c->gi->dev, .gpuInstance = (nvmlGpuInstance_t)c->gi,
                                            .id = c->id, .profileId = c->profile, .placement = {c->start, c->size}};
        return NVML_SUCCESS;
}

/* ---- MIG device handles ---- */

API nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned *count) {
        LOCKED;
        FDev *d = as_dev(device);
        if (!d || !count)
                return NVML_ERROR_INVALID_ARGUMENT;
        *count = d->m ? d->m->compute_slices : 0;
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned index, nvmlDevice_t *mig) {
        LOCKED;
        FDev *d = as_dev(device);
        if (!d || !mig)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (!d->m || d->cur != 1)
                return NVML_ERROR_NOT_SUPPORTED;
        /* ordered by GI id, then CI id */
        unsigned k = 0;
        for (unsigned id = 0; id < 64; id++) {
                FGi *gi = gi_by_id(d, id);
                if (!gi)
                        continue;
                for (unsigned cid = 0; cid < 8; cid++)
                        for (unsigned c = 0; c < MAX_CIS; c++)
                                if (gi->ci[c].used && gi->ci[c].id == cid && k++ == index) {
                                        *mig = (nvmlDevice_t)&gi->ci[c];
                                        return NVML_SUCCESS;
                                }
        }
        return NVML_ERROR_NOT_FOUND;
}

API nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t device, unsigned *id) {
        LOCKED;
        FCi *c = as_migdev(device);
        if (!c || !id)
                return as_dev(device) ? NVML_ERROR_NOT_SUPPORTED : NVML_ERROR_INVALID_ARGUMENT;
        *id = c->gi->id;
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t device, unsigned *id) {
        LOCKED;
        FCi *c = as_migdev(device);
        if (!c || !id)
                return as_dev(device) ? NVML_ERROR_NOT_SUPPORTED : NVML_ERROR_INVALID_ARGUMENT;
        *id = c->id;
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceIsMigDeviceHandle(nvmlDevice_t device, unsigned *is_mig) {
        LOCKED;
        if (!is_mig)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (as_migdev(device)) {
                *is_mig = 1;
                return NVML_SUCCESS;
        }
        if (!as_dev(device))
                return NVML_ERROR_INVALID_ARGUMENT;
        *is_mig = 0;
        return NVML_SUCCESS;
}

/* ---- processes ---- */

API nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned *count, nvmlProcessInfo_t *infos) {
        LOCKED;
        FDev *d = as_dev(device);
        if (!d || !count)
                return NVML_ERROR_INVALID_ARGUMENT;
        FProc p[64];
        size_t n = dev_processes(d, p, ELEMENTSOF(p));
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

API nvmlReturn_t nvmlSystemGetProcessName(unsigned pid, char *name, unsigned length) {
        if (!initialized)
                return NVML_ERROR_UNINITIALIZED;
        for (unsigned i = 0; i < n_devs; i++) {
                FProc p[64];
                size_t n = dev_processes(&devs[i], p, ELEMENTSOF(p));
                for (size_t k = 0; k < n; k++)
                        if (p[k].pid == pid)
                                return copy_out(p[k].name, name, length);
        }
        return NVML_ERROR_NOT_FOUND;
}
