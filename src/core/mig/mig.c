/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "core/mig/mig.h"

#define NVML_TRY(expr) nvml_error_to_errno(expr)

void mig_profile_name(unsigned compute, unsigned long long memory_mb, unsigned constant,
                      unsigned long long total_bytes, char buf[static 32]) {
        unsigned long long gb = (memory_mb + 1023) / 1024;
        if (total_bytes > 0) {
                const unsigned long long mib = 1024ull * 1024, gib = mib * 1024;
                unsigned long long eighths = (memory_mb * mib * 8 + total_bytes - 1) / total_bytes;
                unsigned long long total_gb = (total_bytes + gib - 1) / gib;
                gb = (eighths * total_gb + 4) / 8;
        }
        bool me = constant == NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1 || constant == NVML_GPU_INSTANCE_PROFILE_2_SLICE_REV1;
        snprintf(buf, 32, "%ug.%llugb%s", compute, gb, me ? "+me" : "");
}

static int busid_to_address(const char *busid, char buf[static PCI_ADDR_STRLEN]) {
        unsigned dom, bus, slot, fn;
        char tail;
        if (sscanf(busid, "%x:%x:%x.%x%c", &dom, &bus, &slot, &fn, &tail) != 4 || dom > 0xffff || bus > 0xff ||
            slot > 31 || fn > 7)
                return -EINVAL;
        PciAddr a = {(uint16_t)dom, (uint8_t)bus, (uint8_t)slot, (uint8_t)fn};
        pci_addr_format(&a, buf);
        return 0;
}

static int read_profiles(Nvml *n, MigGpu *g) {
        g->n_profiles = 0;
        g->slices = 0;
        nvmlMemory_t mem = {};
        if (!n->f.nvmlDeviceGetMemoryInfo || n->f.nvmlDeviceGetMemoryInfo(g->dev, &mem) != NVML_SUCCESS)
                mem.total = 0;
        for (unsigned c = 0; c < NVML_GPU_INSTANCE_PROFILE_COUNT; c++) {
                nvmlGpuInstanceProfileInfo_t info;
                if (n->f.nvmlDeviceGetGpuInstanceProfileInfo(g->dev, c, &info) != NVML_SUCCESS)
                        continue;
                nvmlGpuInstancePlacement_t pl[MIG_MAX_SLICES];
                unsigned cnt = ELEMENTSOF(pl);
                int r = NVML_TRY(n->f.nvmlDeviceGetGpuInstancePossiblePlacements_v2(g->dev, info.id, pl, &cnt));
                if (r < 0)
                        return r;
                MigProfile *p = &g->profiles[g->n_profiles++];
                *p = (MigProfile){.constant = c, .id = info.id, .compute = info.sliceCount, .max = info.instanceCount,
                                  .memory_mb = info.memorySizeMB, .sms = info.multiprocessorCount};
                mig_profile_name(info.sliceCount, info.memorySizeMB, c, mem.total, p->name);
                for (unsigned i = 0; i < cnt && i < ELEMENTSOF(pl); i++) {
                        if (pl[i].start >= MIG_MAX_SLICES || pl[i].start + pl[i].size > MIG_MAX_SLICES)
                                continue;
                        p->starts |= 1u << pl[i].start;
                        p->size = pl[i].size;
                        g->slices = MAX(g->slices, pl[i].start + pl[i].size);
                }
        }
        return 0;
}

static int cmp_inst(const void *a, const void *b) {
        const MigInstance *x = a, *y = b;
        return x->start != y->start ? (x->start < y->start ? -1 : 1) : (int)x->gi_id - (int)y->gi_id;
}

/* g's instances, its MIG mode read already (mode_current) */
static int instances_read(Nvml *n, MigGpu *g) {
        int r;
        g->n_inst = 0;
        if (g->mode_current != NVML_DEVICE_MIG_ENABLE)
                return 0;
        for (size_t pi = 0; pi < g->n_profiles; pi++) {
                nvmlGpuInstance_t gis[MIG_MAX_INSTANCES];
                unsigned cnt = ELEMENTSOF(gis);
                r = NVML_TRY(n->f.nvmlDeviceGetGpuInstances(g->dev, g->profiles[pi].id, gis, &cnt));
                if (r < 0)
                        return r;
                for (unsigned k = 0; k < cnt && g->n_inst < MIG_MAX_INSTANCES; k++) {
                        nvmlGpuInstanceInfo_t info;
                        if ((r = NVML_TRY(n->f.nvmlGpuInstanceGetInfo(gis[k], &info))) < 0)
                                return r;
                        MigInstance *m = &g->inst[g->n_inst++];
                        *m = (MigInstance){.profile = (int)pi, .start = info.placement.start, .size = info.placement.size,
                                           .gi_id = info.id, .ci_id = -1};
                        for (unsigned c = 0; c < NVML_COMPUTE_INSTANCE_PROFILE_COUNT && m->ci_id < 0; c++) {
                                nvmlComputeInstance_t cis[MIG_MAX_INSTANCES];
                                unsigned nc = ELEMENTSOF(cis);
                                nvmlComputeInstanceInfo_t ci;
                                if (n->f.nvmlGpuInstanceGetComputeInstances(gis[k], c, cis, &nc) == NVML_SUCCESS && nc > 0 &&
                                    n->f.nvmlComputeInstanceGetInfo_v2(cis[0], &ci) == NVML_SUCCESS)
                                        m->ci_id = (int)ci.id;
                        }
                }
        }
        /* MIG device UUIDs, through the MIG device handles */
        unsigned max = 0;
        if (n->f.nvmlDeviceGetMaxMigDeviceCount(g->dev, &max) == NVML_SUCCESS)
                for (unsigned i = 0; i < max; i++) {
                        nvmlDevice_t md;
                        unsigned gi, ci;
                        char uuid[NVML_DEVICE_UUID_BUFFER_SIZE];
                        if (n->f.nvmlDeviceGetMigDeviceHandleByIndex(g->dev, i, &md) != NVML_SUCCESS ||
                            n->f.nvmlDeviceGetGpuInstanceId(md, &gi) != NVML_SUCCESS ||
                            n->f.nvmlDeviceGetComputeInstanceId(md, &ci) != NVML_SUCCESS ||
                            n->f.nvmlDeviceGetUUID(md, uuid, sizeof uuid) != NVML_SUCCESS)
                                continue;
                        for (size_t k = 0; k < g->n_inst; k++)
                                if (g->inst[k].gi_id == gi && g->inst[k].ci_id == (int)ci)
                                        snprintf(g->inst[k].uuid, sizeof g->inst[k].uuid, "%s", uuid);
                }
        qsort(g->inst, g->n_inst, sizeof g->inst[0], cmp_inst);
        return 0;
}

int mig_gpu_refresh(Nvml *n, MigGpu *g) {
        g->n_inst = 0;
        if (!g->capable)
                return 0;
        int r = NVML_TRY(n->f.nvmlDeviceGetMigMode(g->dev, &g->mode_current, &g->mode_pending));
        if (r < 0)
                return r;
        return instances_read(n, g);
}

/* GPU i of NVML into g: 0, 1 when it is lost (NVML tells nothing more), -errno. want (may be NULL): only that
 * address is read past its PCI info, 2 for another one. */
static int gpu_read(Nvml *n, unsigned i, const char *want, MigGpu *g) {
        nvmlPciInfo_t pci;
        *g = (MigGpu){.index = i};
        int r = NVML_TRY(n->f.nvmlDeviceGetHandleByIndex_v2(i, &g->dev));
        if (r == -ENODEV) {
                /* NVML_ERROR_GPU_IS_LOST: fallen off the bus; NVML tells nothing more about it */
                g->lost = true;
                g->dev = NULL;
                return 1;
        }
        if (r < 0 || (r = NVML_TRY(n->f.nvmlDeviceGetPciInfo_v3(g->dev, &pci))) < 0 ||
            (r = busid_to_address(pci.busId, g->address)) < 0)
                return r;
        if (want && !streq(want, g->address))
                return 2;
        g->pci_device_id = pci.pciDeviceId;
        g->pci_subsystem_id = pci.pciSubSystemId;
        (void)n->f.nvmlDeviceGetName(g->dev, g->name, sizeof g->name);
        (void)n->f.nvmlDeviceGetUUID(g->dev, g->uuid, sizeof g->uuid);
        unsigned cur = 0, pend = 0;
        nvmlReturn_t mr = n->f.nvmlDeviceGetMigMode(g->dev, &cur, &pend);
        g->lost = mr == NVML_ERROR_GPU_IS_LOST;
        g->capable = mr == NVML_SUCCESS;
        if (!g->capable)
                return 0;
        g->mode_current = cur; /* the mode read once: the instances follow from it */
        g->mode_pending = pend;
        if ((r = read_profiles(n, g)) < 0 || (r = instances_read(n, g)) < 0)
                return r;
        return 0;
}

/* union-find over the GPUs (0..n_gpus-1) and the far ends that are not one of them (NVSwitches) */
static size_t uf_find(size_t *up, size_t x) {
        while (up[x] != x)
                x = up[x] = up[up[x]];
        return x;
}

int mig_nvlink_domains(Nvml *n, const MigGpu *gpus, size_t n_gpus, int *ret) {
        for (size_t i = 0; i < n_gpus; i++)
                ret[i] = -1;
        if (!n || !n->f.nvmlDeviceGetNvLinkState || !n->f.nvmlDeviceGetNvLinkRemotePciInfo_v2 || n_gpus == 0)
                return 0;
        size_t cap = n_gpus + n_gpus * NVML_NVLINK_MAX_LINKS;
        _cleanup_free_ size_t *up = calloc(cap, sizeof *up);
        _cleanup_free_ char (*far)[PCI_ADDR_STRLEN] = calloc(cap, sizeof *far); /* the non-GPU ends */
        _cleanup_free_ bool *linked = calloc(n_gpus, sizeof *linked);
        if (!up || !far || !linked)
                return -ENOMEM;
        for (size_t i = 0; i < cap; i++)
                up[i] = i;
        size_t n_far = 0;
        for (size_t i = 0; i < n_gpus; i++) {
                if (!gpus[i].dev)
                        continue;
                for (unsigned l = 0; l < NVML_NVLINK_MAX_LINKS; l++) {
                        nvmlEnableState_t on = NVML_FEATURE_DISABLED;
                        nvmlPciInfo_t pci;
                        char addr[PCI_ADDR_STRLEN];
                        nvmlReturn_t e = n->f.nvmlDeviceGetNvLinkState(gpus[i].dev, l, &on);
                        if (e == NVML_ERROR_NOT_SUPPORTED || e == NVML_ERROR_INVALID_ARGUMENT)
                                break; /* no NVLink, or no more links */
                        if (e != NVML_SUCCESS || on != NVML_FEATURE_ENABLED ||
                            n->f.nvmlDeviceGetNvLinkRemotePciInfo_v2(gpus[i].dev, l, &pci) != NVML_SUCCESS ||
                            busid_to_address(pci.busId, addr) < 0)
                                continue;
                        size_t other = SIZE_MAX;
                        for (size_t k = 0; k < n_gpus && other == SIZE_MAX; k++)
                                if (k != i && streq(gpus[k].address, addr))
                                        other = k;
                        for (size_t k = 0; k < n_far && other == SIZE_MAX; k++)
                                if (streq(far[k], addr))
                                        other = n_gpus + k;
                        if (other == SIZE_MAX) {
                                memcpy(far[n_far], addr, PCI_ADDR_STRLEN);
                                other = n_gpus + n_far++;
                        }
                        linked[i] = true;
                        up[uf_find(up, i)] = uf_find(up, other);
                }
        }
        for (size_t i = 0; i < n_gpus; i++) {
                if (!linked[i])
                        continue;
                size_t root = uf_find(up, i);
                for (size_t k = 0; k <= i && ret[i] < 0; k++)
                        if (linked[k] && uf_find(up, k) == root)
                                ret[i] = (int)k;
        }
        return 0;
}

int mig_gpus_read(Nvml *n, MigGpu **ret, size_t *ret_n) {
        unsigned count = 0;
        int r = NVML_TRY(n->f.nvmlDeviceGetCount_v2(&count));
        if (r < 0)
                return r;
        MigGpu *gpus = calloc(MAX(count, 1u), sizeof *gpus);
        if (!gpus)
                return -ENOMEM;
        for (unsigned i = 0; i < count; i++)
                if ((r = gpu_read(n, i, NULL, &gpus[i])) < 0) {
                        free(gpus);
                        return r;
                }
        *ret = gpus;
        *ret_n = count;
        return 0;
}

int mig_gpu_read(Nvml *n, const char *address, MigGpu *ret) {
        unsigned count = 0;
        int r = NVML_TRY(n->f.nvmlDeviceGetCount_v2(&count));
        if (r < 0)
                return r;
        for (unsigned i = 0; i < count; i++) {
                MigGpu g;
                r = gpu_read(n, i, address, &g);
                if (r < 0)
                        return r;
                if (r == 0 && streq(g.address, address)) {
                        *ret = g;
                        return 0;
                }
        }
        return -ENODEV;
}

MigGpu *mig_gpu_find(MigGpu *gpus, size_t n, const char *address) {
        for (size_t i = 0; i < n; i++)
                if (gpus[i].address[0] && streq(gpus[i].address, address))
                        return &gpus[i];
        return NULL;
}

int mig_profile_find(const MigGpu *g, const char *name) {
        for (size_t i = 0; i < g->n_profiles; i++)
                if (strcasecmp(g->profiles[i].name, name) == 0)
                        return (int)i;
        return -ENOENT;
}

char *mig_profile_names(const MigGpu *g) {
        char *list = strdup("");
        for (size_t i = 0; i < g->n_profiles && list; i++) {
                char *x = strdup_printf("%s%s%s", list, i ? ", " : "", g->profiles[i].name);
                free(list);
                list = x;
        }
        return list;
}

static unsigned range_mask(unsigned start, unsigned size) {
        return ((1u << size) - 1) << start;
}

unsigned mig_occupancy(const MigGpu *g) {
        unsigned occ = 0;
        for (size_t i = 0; i < g->n_inst; i++)
                occ |= range_mask(g->inst[i].start, g->inst[i].size);
        return occ;
}

/* ---- holders ---- */

static int holder_add(MigHolder **l, size_t *n, unsigned pid, const char *name, unsigned gi) {
        for (size_t i = 0; i < *n; i++)
                if (pid != 0 && (*l)[i].pid == pid)
                        return 0;
        MigHolder *x = realloc(*l, (*n + 1) * sizeof **l);
        if (!x)
                return -ENOMEM;
        *l = x;
        x[*n] = (MigHolder){.pid = pid, .gi_id = gi};
        snprintf(x[*n].name, sizeof x[*n].name, "%s", name);
        (*n)++;
        return 0;
}

static char *proc_name(Root *root, unsigned pid) {
        char *c = NULL;
        if (root_read_attr(root, &c, "proc/%u/comm", pid) >= 0)
                return c;
        return strdup_printf("pid %u", pid);
}

int nvidia_gpu_minor(Root *root, const char *address, unsigned *ret) {
        _cleanup_free_ char *text = NULL;
        int r = root_read_file(root, 65536, &text, "proc/driver/nvidia/gpus/%s/information", address);
        if (r < 0)
                return r;
        const char *m = strstr(text, "Device Minor:");
        unsigned v;
        if (!m || sscanf(m, "Device Minor: %u", &v) != 1)
                return -EBADMSG;
        *ret = v;
        return 0;
}

int nvidia_mig_cap_minor(Root *root, unsigned gpu_minor, unsigned gi, int ci, unsigned *ret) {
        _cleanup_free_ char *text = NULL;
        int r = root_read_file(root, 1024 * 1024, &text, "proc/driver/nvidia-caps/mig-minors");
        if (r < 0)
                return r;
        char want[64];
        if (ci < 0)
                snprintf(want, sizeof want, "gpu%u/gi%u/access ", gpu_minor, gi);
        else
                snprintf(want, sizeof want, "gpu%u/gi%u/ci%d/access ", gpu_minor, gi, ci);
        for (const char *l = text; *l; l = strchrnul(l, '\n'), l += *l == '\n') {
                const char *v = startswith(l, want);
                unsigned n;
                if (v && sscanf(v, "%u", &n) == 1) {
                        *ret = n;
                        return 0;
                }
        }
        return -ENOENT;
}

/* The minor number of the GPU's device node (nvidiaN): what the driver says, else the NVML index. */
static unsigned gpu_minor(Root *root, const MigGpu *g) {
        unsigned v;
        return nvidia_gpu_minor(root, g->address, &v) >= 0 ? v : g->index;
}

int mig_holders(Root *root, Nvml *n, const MigGpu *g, MigHolder **ret, size_t *ret_n) {
        MigHolder *l = NULL;
        size_t cnt = 0;
        int r = 0;
        if (n && n->f.nvmlDeviceGetComputeRunningProcesses_v3) {
                nvmlProcessInfo_t pi[64];
                unsigned k = ELEMENTSOF(pi);
                if (n->f.nvmlDeviceGetComputeRunningProcesses_v3(g->dev, &k, pi) == NVML_SUCCESS)
                        for (unsigned i = 0; i < k && r >= 0; i++) {
                                char nm[64] = "";
                                _cleanup_free_ char *pn = NULL;
                                if (!n->f.nvmlSystemGetProcessName ||
                                    n->f.nvmlSystemGetProcessName(pi[i].pid, nm, sizeof nm) != NVML_SUCCESS)
                                        pn = proc_name(root, pi[i].pid);
                                r = holder_add(&l, &cnt, pi[i].pid, pn ?: nm, pi[i].gpuInstanceId);
                        }
        }
        /* processes with the GPU's device node open (nvidia-persistenced, DCGM, ... are not compute processes) */
        char node[32];
        snprintf(node, sizeof node, "nvidia%u", gpu_minor(root, g));
        _cleanup_free_ char *procdir = root_path(root, "proc");
        _cleanup_strv_free_ char **pids = NULL;
        if (r >= 0 && procdir && dir_list(procdir, &pids) >= 0)
                for (char **e = pids; *e && r >= 0; e++) {
                        uint32_t pid;
                        if (parse_u32(*e, 10, &pid) < 0)
                                continue;
                        _cleanup_free_ char *fddir = root_path(root, "proc/%u/fd", pid);
                        _cleanup_strv_free_ char **fds = NULL;
                        if (!fddir || dir_list(fddir, &fds) < 0)
                                continue;
                        for (char **f = fds; *f; f++) {
                                _cleanup_free_ char *lp = strdup_printf("%s/%s", fddir, *f);
                                char target[256];
                                ssize_t k = lp ? readlink(lp, target, sizeof target - 1) : -1;
                                if (k <= 0)
                                        continue;
                                target[k] = '\0';
                                if (root_link_is_dev_node(target, node)) {
                                        _cleanup_free_ char *pn = proc_name(root, pid);
                                        r = holder_add(&l, &cnt, pid, pn ?: "?", NVML_INSTANCE_ID_NONE);
                                        break;
                                }
                        }
                }
        /* nvidia_drm with modeset holds every GPU it drives: resets fail while it is loaded */
        _cleanup_free_ char *modeset = NULL;
        if (r >= 0 && root_read_attr(root, &modeset, "sys/module/nvidia_drm/parameters/modeset") >= 0 &&
            (streq(modeset, "Y") || streq(modeset, "1")))
                r = holder_add(&l, &cnt, 0, "nvidia_drm (kernel module, modeset=1)", NVML_INSTANCE_ID_NONE);
        if (r < 0) {
                free(l);
                return r;
        }
        *ret = l;
        *ret_n = cnt;
        return 0;
}

char *mig_holders_format(const MigHolder *h, size_t n) {
        char *s = strdup("");
        for (size_t i = 0; i < n && s; i++) {
                char *x = h[i].pid ? strdup_printf("%s%s%s (pid %u%s)", s, i ? ", " : "", h[i].name, h[i].pid,
                                                   h[i].gi_id != NVML_INSTANCE_ID_NONE ? ", in a MIG instance" : "")
                                   : strdup_printf("%s%s%s", s, i ? ", " : "", h[i].name);
                free(s);
                s = x;
        }
        return s;
}

/* ---- operations ---- */

/* A failed NVML change: the GvError says what, with NVML's code and the errno described. */
static int nvml_fail(GvError *err, int r, const MigGpu *g, const char *step, const char *fmt, ...) _printf_(5, 6);
static int nvml_fail(GvError *err, int r, const MigGpu *g, const char *step, const char *fmt, ...) {
        if (!err)
                return -abs(r);
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *what = NULL;
        if (vasprintf(&what, fmt, ap) < 0)
                what = NULL;
        va_end(ap);
        _cleanup_free_ char *d = nvml_errno_describe(r);
        return gv_error_take(err, r, g->address, step, GV_HINT_NONE,
                             what && d ? strdup_printf("%s: %s", what, d) : NULL);
}

static const char *mode_name(bool enable) {
        return enable ? "enabled" : "disabled";
}

int mig_set_mode(Root *root, Nvml *n, MigGpu *g, bool enable, int *ret_activation, GvError *err) {
        int r = root_change(root, "would set MIG mode of %s to %s (takes effect after a GPU reset)", g->address,
                            mode_name(enable));
        if (r != 0)
                return r < 0 ? gv_error_set(err, r, g->address, "set-mode", NULL) : r;
        nvmlReturn_t act = NVML_SUCCESS;
        r = NVML_TRY(n->f.nvmlDeviceSetMigMode(g->dev, enable ? NVML_DEVICE_MIG_ENABLE : NVML_DEVICE_MIG_DISABLE, &act));
        if (r < 0)
                return nvml_fail(err, r, g, "set-mode", "cannot %s MIG on %s", enable ? "enable" : "disable",
                                 g->address);
        *ret_activation = nvml_error_to_errno(act);
        r = mig_gpu_refresh(n, g);
        if (r < 0)
                return nvml_fail(err, r, g, "set-mode", "cannot read %s after setting its MIG mode", g->address);
        return 0;
}

static int full_ci(Nvml *n, nvmlGpuInstance_t gi, unsigned compute, nvmlComputeInstance_t *ret) {
        for (unsigned c = 0; c < NVML_COMPUTE_INSTANCE_PROFILE_COUNT; c++) {
                nvmlComputeInstanceProfileInfo_t info;
                if (n->f.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, c, NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED,
                                                                       &info) != NVML_SUCCESS ||
                    info.sliceCount != compute)
                        continue;
                return NVML_TRY(n->f.nvmlGpuInstanceCreateComputeInstance(gi, info.id, ret));
        }
        return -EOPNOTSUPP;
}

/* The MIG device UUID of m (its GPU and compute instance), through the MIG device handles, as
 * mig_gpu_refresh() finds it; unchanged when NVML has none. */
static void instance_uuid(Nvml *n, const MigGpu *g, MigInstance *m) {
        unsigned max = 0;
        if (n->f.nvmlDeviceGetMaxMigDeviceCount(g->dev, &max) != NVML_SUCCESS)
                return;
        for (unsigned i = 0; i < max; i++) {
                nvmlDevice_t md;
                unsigned gi, ci;
                char uuid[NVML_DEVICE_UUID_BUFFER_SIZE];
                if (n->f.nvmlDeviceGetMigDeviceHandleByIndex(g->dev, i, &md) != NVML_SUCCESS ||
                    n->f.nvmlDeviceGetGpuInstanceId(md, &gi) != NVML_SUCCESS || gi != m->gi_id ||
                    n->f.nvmlDeviceGetComputeInstanceId(md, &ci) != NVML_SUCCESS || (int)ci != m->ci_id)
                        continue;
                if (n->f.nvmlDeviceGetUUID(md, uuid, sizeof uuid) == NVML_SUCCESS)
                        snprintf(m->uuid, sizeof m->uuid, "%s", uuid);
                return;
        }
}

int mig_create(Root *root, Nvml *n, MigGpu *g, int profile, int start, MigInstance *ret, GvError *err) {
        if (profile < 0 || (size_t)profile >= g->n_profiles)
                return gv_error_set(err, -EINVAL, g->address, "create", "no such MIG profile on %s", g->address);
        const MigProfile *p = &g->profiles[profile];
        int r = start < 0 ? root_change(root, "would create %s on %s (GPU instance + full compute instance)", p->name,
                                        g->address)
                          : root_change(root, "would create %s at %d:%u on %s (GPU instance + full compute instance)",
                                        p->name, start, p->size, g->address);
        if (r != 0)
                return r < 0 ? gv_error_set(err, r, g->address, "create", NULL) : r;
        nvmlGpuInstance_t gi;
        if (start < 0)
                r = NVML_TRY(n->f.nvmlDeviceCreateGpuInstance(g->dev, p->id, &gi));
        else {
                nvmlGpuInstancePlacement_t pl = {(unsigned)start, p->size};
                r = NVML_TRY(n->f.nvmlDeviceCreateGpuInstanceWithPlacement(g->dev, p->id, &pl, &gi));
        }
        if (r < 0) {
                log_debug_errno(r, "Creating %s on %s failed: %m", p->name, g->address);
                return start < 0 ? nvml_fail(err, r, g, "create", "cannot create %s on %s", p->name, g->address)
                                 : nvml_fail(err, r, g, "create", "cannot create %s at %d:%u on %s", p->name, start,
                                             p->size, g->address);
        }
        nvmlGpuInstanceInfo_t info;
        nvmlComputeInstance_t ci;
        r = NVML_TRY(n->f.nvmlGpuInstanceGetInfo(gi, &info));
        if (r >= 0)
                r = full_ci(n, gi, p->compute, &ci);
        if (r < 0) {
                (void)n->f.nvmlGpuInstanceDestroy(gi); /* no half-made instance left behind */
                return nvml_fail(err, r, g, "create", "cannot create the compute instance of %s on %s", p->name,
                                 g->address);
        }
        /* the snapshot gains what was made (the instances already there are as they were): read back only it */
        MigInstance m = {.profile = profile, .start = info.placement.start, .size = info.placement.size,
                         .gi_id = info.id, .ci_id = -1};
        nvmlComputeInstanceInfo_t cinfo;
        if (n->f.nvmlComputeInstanceGetInfo_v2(ci, &cinfo) == NVML_SUCCESS)
                m.ci_id = (int)cinfo.id;
        instance_uuid(n, g, &m);
        if (g->n_inst >= MIG_MAX_INSTANCES)
                return gv_error_set(err, -EIO, g->address, "create", "the new GPU instance %u is not on %s", info.id,
                                    g->address);
        g->inst[g->n_inst++] = m;
        qsort(g->inst, g->n_inst, sizeof g->inst[0], cmp_inst);
        if (ret)
                *ret = m;
        return 0;
}

int mig_destroy(Root *root, Nvml *n, MigGpu *g, unsigned gi_id, GvError *err) {
        int r = root_change(root, "would destroy GPU instance %u on %s", gi_id, g->address);
        if (r != 0)
                return r < 0 ? gv_error_set(err, r, g->address, "destroy", NULL) : r;
        nvmlGpuInstance_t gi;
        r = NVML_TRY(n->f.nvmlDeviceGetGpuInstanceById(g->dev, gi_id, &gi));
        if (r < 0)
                return nvml_fail(err, r, g, "destroy", "cannot destroy GI %u on %s", gi_id, g->address);
        for (unsigned c = 0; c < NVML_COMPUTE_INSTANCE_PROFILE_COUNT; c++) {
                nvmlComputeInstance_t cis[MIG_MAX_INSTANCES];
                unsigned nc = ELEMENTSOF(cis);
                if (n->f.nvmlGpuInstanceGetComputeInstances(gi, c, cis, &nc) != NVML_SUCCESS)
                        continue;
                for (unsigned k = 0; k < nc; k++)
                        if ((r = NVML_TRY(n->f.nvmlComputeInstanceDestroy(cis[k]))) < 0)
                                return nvml_fail(err, r, g, "destroy", "cannot destroy GI %u on %s", gi_id, g->address);
        }
        r = NVML_TRY(n->f.nvmlGpuInstanceDestroy(gi));
        if (r < 0)
                return nvml_fail(err, r, g, "destroy", "cannot destroy GI %u on %s", gi_id, g->address);
        /* the snapshot loses what was destroyed; the other instances are as they were */
        size_t k = 0;
        for (size_t i = 0; i < g->n_inst; i++)
                if (g->inst[i].gi_id != gi_id)
                        g->inst[k++] = g->inst[i];
        g->n_inst = k;
        return 0;
}

int mig_reset(Root *root, Nvml *n, MigGpu *g, GvError *err) {
        int r = root_write(root, "1", "sys/bus/pci/devices/%s/reset", g->address);
        if (r < 0) {
                _cleanup_free_ char *d = errno_describe(r);
                return gv_error_take(err, r, g->address, "reset", GV_HINT_NONE,
                                     d ? strdup_printf("resetting %s failed: %s", g->address, d) : NULL);
        }
        /* root_write() asked root_change(): under --dry-run nothing was written, so nothing is re-read */
        if (root_dry_run(root))
                return 1;
        if (n && (r = mig_gpu_refresh(n, g)) < 0)
                return nvml_fail(err, r, g, "reset", "cannot read %s after the reset", g->address);
        return 0;
}

/* ---- planner ---- */

static bool fits(const MigProfile *p, unsigned slices, unsigned occ, unsigned s) {
        return s < MIG_MAX_SLICES && (p->starts >> s & 1u) && s + p->size <= slices && !(occ & range_mask(s, p->size));
}

unsigned mig_layout_score(const MigProfile *p, size_t n_profiles, unsigned occ) {
        unsigned score = 0;
        for (size_t i = 0; i < n_profiles; i++)
                for (unsigned s = 0; s < MIG_MAX_SLICES; s++)
                        if ((p[i].starts >> s & 1u) && !(occ & range_mask(s, p[i].size)))
                                score += p[i].size * p[i].size;
        return score;
}

int mig_best_start(const MigProfile *p, size_t n_profiles, unsigned slices, unsigned occ, int pi) {
        int best = -ENOSPC;
        unsigned best_score = 0;
        for (int s = MIG_MAX_SLICES - 1; s >= 0; s--) {
                if (!fits(&p[pi], slices, occ, (unsigned)s))
                        continue;
                unsigned sc = mig_layout_score(p, n_profiles, occ | range_mask((unsigned)s, p[pi].size));
                if (best < 0 || sc > best_score) {
                        best = s;
                        best_score = sc;
                }
        }
        return best;
}

int mig_default_start(const MigProfile *p, size_t n_profiles, unsigned slices, unsigned occ, int pi) {
        for (int s = MIG_MAX_SLICES - 1; s >= 0; s--)
                if (fits(&p[pi], slices, occ, (unsigned)s))
                        return s;
        return -ENOSPC;
}

typedef struct Search {
        const MigProfile *p;
        size_t np;
        unsigned slices;
        int todo[MIG_MAX_INSTANCES];
        size_t n_todo;
        unsigned cur[MIG_MAX_INSTANCES], best[MIG_MAX_INSTANCES];
        unsigned best_score;
        bool found;
        MigPlanCreate fixed[MIG_MAX_INSTANCES]; /* pinned instances created at their placement */
        size_t n_fixed;
} Search;

static void place(Search *s, size_t k, unsigned occ) {
        if (k == s->n_todo) {
                unsigned sc = mig_layout_score(s->p, s->np, occ);
                if (!s->found || sc > s->best_score) {
                        s->found = true;
                        s->best_score = sc;
                        memcpy(s->best, s->cur, sizeof s->cur);
                }
                return;
        }
        const MigProfile *p = &s->p[s->todo[k]];
        /* instances of one profile are interchangeable: place them in decreasing start order */
        int hi = k > 0 && s->todo[k - 1] == s->todo[k] ? (int)s->cur[k - 1] - 1 : MIG_MAX_SLICES - 1;
        for (int st = hi; st >= 0; st--)
                if (fits(p, s->slices, occ, (unsigned)st)) {
                        s->cur[k] = (unsigned)st;
                        place(s, k + 1, occ | range_mask((unsigned)st, p->size));
                }
}

static int cmp_todo_ctx_size(const MigProfile *p, int a, int b) {
        if (p[a].size != p[b].size)
                return p[a].size > p[b].size ? -1 : 1;
        return a - b;
}

int mig_plan(const MigProfile *p, size_t n_profiles, unsigned slices, const MigInstance *cur, size_t n_cur,
             const unsigned want[MIG_MAX_PROFILES], bool allow_disrupt, MigPlan *ret) {
        return mig_plan_pinned(p, n_profiles, slices, cur, n_cur, want, NULL, 0, allow_disrupt, ret);
}

/* Whether the pin is an instance of cur[c] (same profile, same placement). */
static bool pin_matches(const MigPlanCreate *pin, const MigInstance *m) {
        return m->profile == pin->profile && m->start == pin->start;
}

int mig_plan_pinned(const MigProfile *p, size_t n_profiles, unsigned slices, const MigInstance *cur, size_t n_cur,
                    const unsigned want[MIG_MAX_PROFILES], const MigPlanCreate *pins, size_t n_pins,
                    bool allow_disrupt, MigPlan *ret) {
        unsigned total = 0, pinned[MIG_MAX_PROFILES] = {};
        if (n_pins > MIG_MAX_INSTANCES)
                return -ENOSPC;
        for (size_t i = 0; i < n_pins; i++) {
                if (pins[i].profile < 0 || (size_t)pins[i].profile >= n_profiles)
                        return -EINVAL;
                pinned[pins[i].profile]++;
        }
        for (size_t i = 0; i < n_profiles; i++)
                if (pinned[i] > want[i])
                        return -EINVAL;
        for (size_t i = 0; i < n_profiles; i++) {
                if (want[i] > p[i].max)
                        return -EINVAL;
                total += want[i];
        }
        if (total > MIG_MAX_INSTANCES || n_cur > MIG_MAX_INSTANCES)
                return -ENOSPC;

        unsigned cur_count[MIG_MAX_PROFILES] = {};
        for (size_t c = 0; c < n_cur; c++)
                cur_count[cur[c].profile]++;

        bool found = false;
        unsigned best_mask = 0, best_score = 0;
        Search best = {};
        for (unsigned k = 0; k <= n_cur && !found; k++)
                for (unsigned mask = 0; mask < (1u << n_cur); mask++) {
                        if ((unsigned)__builtin_popcount(mask) != k)
                                continue;
                        unsigned kept[MIG_MAX_PROFILES] = {}, occ = 0;
                        bool ok = true, pin_kept[MIG_MAX_INSTANCES] = {};
                        for (size_t c = 0; c < n_cur && ok; c++) {
                                bool is_pin = false;
                                for (size_t k2 = 0; k2 < n_pins; k2++)
                                        if (!pin_kept[k2] && pin_matches(&pins[k2], &cur[c])) {
                                                pin_kept[k2] = is_pin = true;
                                                break;
                                        }
                                if (mask >> c & 1u) {
                                        ok = !is_pin; /* a pinned instance that exists is kept */
                                        continue;
                                }
                                int pi = cur[c].profile;
                                if (++kept[pi] > want[pi])
                                        ok = false;
                                occ |= range_mask(cur[c].start, cur[c].size);
                        }
                        /* pins not kept are created exactly where they are pinned */
                        MigPlanCreate fixed[MIG_MAX_INSTANCES];
                        size_t n_fixed = 0;
                        for (size_t k2 = 0; k2 < n_pins && ok; k2++) {
                                if (pin_kept[k2])
                                        continue;
                                const MigProfile *pp = &p[pins[k2].profile];
                                if (!fits(pp, slices, occ, pins[k2].start) || ++kept[pins[k2].profile] > want[pins[k2].profile])
                                        ok = false;
                                else {
                                        occ |= range_mask(pins[k2].start, pp->size);
                                        fixed[n_fixed++] = pins[k2];
                                }
                        }
                        if (!ok)
                                continue;
                        Search s = {.p = p, .np = n_profiles, .slices = slices, .n_fixed = n_fixed};
                        memcpy(s.fixed, fixed, n_fixed * sizeof fixed[0]);
                        for (size_t i = 0; i < n_profiles; i++)
                                for (unsigned x = kept[i]; x < want[i]; x++)
                                        s.todo[s.n_todo++] = (int)i;
                        /* largest first: fewer dead ends */
                        for (size_t a = 1; a < s.n_todo; a++)
                                for (size_t b = a; b > 0 && cmp_todo_ctx_size(p, s.todo[b - 1], s.todo[b]) > 0; b--) {
                                        int t = s.todo[b];
                                        s.todo[b] = s.todo[b - 1];
                                        s.todo[b - 1] = t;
                                }
                        place(&s, 0, occ);
                        if (s.found && (!found || s.best_score > best_score)) {
                                found = true;
                                best_score = s.best_score;
                                best_mask = mask;
                                best = s;
                        }
                }
        if (!found)
                return -ENOSPC;

        MigPlan plan = {};
        unsigned dropped[MIG_MAX_PROFILES] = {};
        for (size_t c = 0; c < n_cur; c++) {
                if (!(best_mask >> c & 1u)) {
                        plan.keep[plan.n_keep++] = c;
                        continue;
                }
                int pi = cur[c].profile;
                plan.destroy[plan.n_destroy++] = c;
                /* beyond the surplus of its profile, a destroyed instance is one moved to make room */
                unsigned surplus = cur_count[pi] > want[pi] ? cur_count[pi] - want[pi] : 0;
                if (++dropped[pi] > surplus) {
                        plan.moved[c] = true;
                        plan.n_moved++;
                }
        }
        for (size_t i = 0; i < best.n_fixed; i++)
                plan.create[plan.n_create++] = best.fixed[i];
        for (size_t i = 0; i < best.n_todo; i++)
                plan.create[plan.n_create++] = (MigPlanCreate){best.todo[i], best.best[i]};
        *ret = plan;
        return plan.n_moved > 0 && !allow_disrupt ? -EBUSY : 0;
}

/* ---- applying a layout to one GPU ---- */

void mig_apply_report_done(MigApplyReport *r) {
        free(r->holders);
        r->holders = NULL;
        gv_error_done(&r->error);
}

int mig_layout_fits(const MigGpu *g, const unsigned want[MIG_MAX_PROFILES], char **ret_why) {
        return mig_layout_fits_pinned(g, want, NULL, 0, ret_why);
}

int mig_layout_fits_pinned(const MigGpu *g, const unsigned want[MIG_MAX_PROFILES], const MigPlanCreate *pins,
                           size_t n_pins, char **ret_why) {
        _cleanup_free_ char *pinned = strdup("");
        if (!pinned)
                return -ENOMEM;
        for (size_t i = 0; i < n_pins; i++) {
                if (pins[i].profile < 0 || (size_t)pins[i].profile >= g->n_profiles) {
                        if (ret_why)
                                *ret_why = strdup_printf("a pinned instance is of no profile of %s", g->address);
                        return -EINVAL;
                }
                const MigProfile *pp = &g->profiles[pins[i].profile];
                if (!fits(pp, g->slices, 0, pins[i].start)) {
                        if (ret_why)
                                *ret_why = strdup_printf("%s at %u is not one of its placements (see 'gpuvirt mig "
                                                         "profiles %s')",
                                                         pp->name, pins[i].start, g->address);
                        return -ENOSPC;
                }
                char *x = strdup_printf("%s%s%s at %u", pinned, i ? ", " : " with ", pp->name, pins[i].start);
                if (!x)
                        return -ENOMEM;
                free(pinned);
                pinned = x;
        }
        for (size_t i = 0; i < g->n_profiles; i++)
                if (want[i] > g->profiles[i].max) {
                        if (ret_why)
                                *ret_why = strdup_printf("%u x %s, but at most %u fit%s this GPU", want[i],
                                                         g->profiles[i].name, g->profiles[i].max,
                                                         g->profiles[i].max == 1 ? "s" : "");
                        return -EINVAL;
                }
        MigPlan plan;
        int r = mig_plan_pinned(g->profiles, g->n_profiles, g->slices, NULL, 0, want, pins, n_pins, true, &plan);
        if (r == -EINVAL || r == -ENOSPC) {
                if (ret_why) {
                        _cleanup_free_ char *layout = strdup("");
                        unsigned slices = 0;
                        for (size_t i = 0; i < g->n_profiles && layout; i++)
                                if (want[i]) {
                                        char *x = strdup_printf("%s%s%u x %s", layout, *layout ? " + " : "", want[i],
                                                                g->profiles[i].name);
                                        free(layout);
                                        layout = x; /* NULL on OOM: the loop ends, no message */
                                        slices += want[i] * g->profiles[i].size;
                                }
                        *ret_why = !layout ? NULL : strdup_printf("%s%s: no placement of them all exists (%u memory slices asked, %u on "
                                                 "this GPU, and each profile has fixed placements)",
                                                 strna(layout), strna(pinned), slices, g->slices);
                }
                return r;
        }
        return r < 0 && r != -EBUSY ? r : 0;
}

bool mig_layout_matches(const MigGpu *g, bool enabled, const unsigned want[MIG_MAX_PROFILES]) {
        unsigned mode = enabled ? NVML_DEVICE_MIG_ENABLE : NVML_DEVICE_MIG_DISABLE;
        if (g->mode_current != mode || g->mode_pending != mode)
                return false;
        if (!enabled)
                return true;
        unsigned have[MIG_MAX_PROFILES] = {};
        for (size_t i = 0; i < g->n_inst; i++) {
                /* a GPU instance without its compute instance (a crash between the two) is no MIG device */
                if (g->inst[i].ci_id < 0)
                        return false;
                have[g->inst[i].profile]++;
        }
        return memcmp(have, want, sizeof have) == 0;
}

static MigAction *action_add(MigApplyReport *r, MigActionKind kind, int profile, unsigned start, unsigned size,
                             int gi) {
        if (r->n_actions >= ELEMENTSOF(r->actions))
                return &r->actions[ELEMENTSOF(r->actions) - 1];
        MigAction *a = &r->actions[r->n_actions++];
        *a = (MigAction){.kind = kind, .profile = profile, .start = start, .size = size, .gi_id = gi};
        return a;
}

/* FAILED, with msg as the error; msg NULL keeps the error the operation gave (its errno otherwise). */
static int apply_failed(MigApplyReport *r, int err, const MigGpu *g, const char *step, char *msg) {
        r->state = MIG_APPLY_FAILED;
        if (!msg && r->error.error != 0)
                return -abs(err);
        return gv_error_take(&r->error, err, g->address, step, GV_HINT_NONE, msg);
}

int mig_holders_text(Root *root, Nvml *n, const MigGpu *g, bool whole, unsigned gi, char **ret) {
        _cleanup_free_ MigHolder *h = NULL;
        size_t cnt = 0, k = 0;
        int r = mig_holders(root, n, g, &h, &cnt);
        if (r < 0)
                return r;
        for (size_t i = 0; i < cnt; i++)
                if (whole || h[i].gi_id == gi)
                        h[k++] = h[i];
        char *s = mig_holders_format(h, k);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* IN_USE when anything holds the GPU (whole) or the GPU instance; 1 then, 0 when nothing does. */
static int apply_in_use(Root *root, Nvml *n, const MigGpu *g, bool whole, unsigned gi, MigApplyReport *r) {
        char *h = NULL;
        int k = mig_holders_text(root, n, g, whole, gi, &h);
        if (k < 0)
                return apply_failed(r, k, g, "holders", NULL);
        if (!*h) {
                free(h);
                return 0;
        }
        r->state = MIG_APPLY_IN_USE;
        r->holders = h;
        if (whole)
                (void)gv_error_set(&r->error, -EBUSY, g->address, "reset", "%s needs a reset, but it is in use by %s",
                                   g->address, h);
        else
                (void)gv_error_set(&r->error, -EBUSY, g->address, "destroy", "GI %u on %s is in use by %s", gi,
                                   g->address, h);
        return 1;
}

/* The reset a mode change needs: refused while anything holds the GPU. */
static int apply_reset(Root *root, Nvml *n, MigGpu *g, bool no_reset, MigApplyReport *r) {
        if (no_reset) {
                r->state = MIG_APPLY_PENDING_RESET;
                return 0;
        }
        int k = apply_in_use(root, n, g, true, 0, r);
        if (k != 0)
                return k < 0 ? k : -EBUSY;
        action_add(r, MIG_ACTION_RESET, -1, 0, 0, -1);
        k = mig_reset(root, n, g, &r->error);
        if (k < 0)
                r->state = MIG_APPLY_FAILED;
        return MIN(k, 0);
}

bool mig_has_instances_at(const MigGpu *g, const MigPlanCreate *pins, size_t n_pins) {
        bool used[MIG_MAX_INSTANCES] = {};
        for (size_t k = 0; k < n_pins; k++) {
                bool found = false;
                /* a GPU instance without its compute instance is no MIG device: not the pinned instance */
                for (size_t i = 0; i < g->n_inst && !found; i++)
                        if (!used[i] && g->inst[i].ci_id >= 0 && pin_matches(&pins[k], &g->inst[i]))
                                used[i] = found = true;
                if (!found)
                        return false;
        }
        return true;
}

int mig_apply_gpu(Root *root, Nvml *n, MigGpu *g, bool enabled, const unsigned want[MIG_MAX_PROFILES],
                  bool allow_disrupt, bool no_reset, MigApplyReport *r) {
        return mig_apply_gpu_pinned(root, n, g, enabled, want, NULL, 0, allow_disrupt, no_reset, r);
}

int mig_apply_gpu_pinned(Root *root, Nvml *n, MigGpu *g, bool enabled, const unsigned want[MIG_MAX_PROFILES],
                         const MigPlanCreate *pins, size_t n_pins, bool allow_disrupt, bool no_reset,
                         MigApplyReport *r) {
        int k;
        *r = (MigApplyReport){.state = MIG_APPLY_CHANGED};
        if (g->lost || !g->capable)
                return apply_failed(r, g->lost ? -ENODEV : -EOPNOTSUPP, g, "lookup",
                                    strdup_printf("GPU %u %s", g->index,
                                                  g->lost ? "has fallen off the bus (NVML_ERROR_GPU_IS_LOST)"
                                                          : "does not support MIG"));
        if (mig_layout_matches(g, enabled, want) && (!enabled || mig_has_instances_at(g, pins, n_pins))) {
                r->state = MIG_APPLY_UNCHANGED;
                return 0;
        }
        /* a layout that cannot be placed is refused before the mode changes or the GPU is reset */
        if (enabled) {
                char *why = NULL;
                k = mig_layout_fits_pinned(g, want, pins, n_pins, &why);
                if (k < 0)
                        return apply_failed(r, k, g, "plan", why);
        }
        /* each change below is made, or under --dry-run only printed (1), by the operation: root_change() */
        if (!enabled) {
                for (size_t i = g->n_inst; i-- > 0;) {
                        const MigInstance *m = &g->inst[i];
                        action_add(r, MIG_ACTION_DESTROY, m->profile, m->start, m->size, (int)m->gi_id);
                        if ((k = mig_destroy(root, n, g, m->gi_id, &r->error)) < 0)
                                return apply_failed(r, k, g, "destroy", NULL);
                }
                action_add(r, MIG_ACTION_DISABLE, -1, 0, 0, -1);
                int act = 0;
                if ((k = mig_set_mode(root, n, g, false, &act, &r->error)) < 0)
                        return apply_failed(r, k, g, "set-mode", NULL);
                if (k == 0 && act == 0)
                        return 0;
                return apply_reset(root, n, g, no_reset, r);
        }

        /* enable first; a fresh mode starts without instances */
        MigInstance cur[MIG_MAX_INSTANCES];
        size_t n_cur = g->mode_current == NVML_DEVICE_MIG_ENABLE ? g->n_inst : 0;
        memcpy(cur, g->inst, sizeof cur);
        if (g->mode_current != NVML_DEVICE_MIG_ENABLE) {
                action_add(r, MIG_ACTION_ENABLE, -1, 0, 0, -1);
                int act = 0;
                if ((k = mig_set_mode(root, n, g, true, &act, &r->error)) < 0)
                        return apply_failed(r, k, g, "set-mode", NULL);
                bool made = k == 0;
                if (!made || g->mode_current != NVML_DEVICE_MIG_ENABLE) {
                        k = apply_reset(root, n, g, no_reset, r);
                        if (k < 0 || r->state != MIG_APPLY_CHANGED)
                                return k;
                }
                if (made && g->mode_current != NVML_DEVICE_MIG_ENABLE)
                        return apply_failed(r, -EIO, g, "reset",
                                            strdup_printf("MIG is still not enabled on %s after the reset", g->address));
                n_cur = 0;
        }
        /* a GPU instance left without its compute instance (a crash between the two creates) has no users and
         * is no MIG device: it goes, and the plan places what the layout needs */
        for (size_t i = 0; i < n_cur;) {
                if (cur[i].ci_id >= 0) {
                        i++;
                        continue;
                }
                action_add(r, MIG_ACTION_DESTROY, cur[i].profile, cur[i].start, cur[i].size, (int)cur[i].gi_id);
                if ((k = mig_destroy(root, n, g, cur[i].gi_id, &r->error)) < 0)
                        return apply_failed(r, k, g, "destroy", NULL);
                cur[i] = cur[--n_cur];
        }

        MigPlan plan;
        k = mig_plan_pinned(g->profiles, g->n_profiles, g->slices, cur, n_cur, want, pins, n_pins, allow_disrupt, &plan);
        if (k == -EINVAL || k == -ENOSPC) {
                char *why = NULL;
                (void)mig_layout_fits_pinned(g, want, pins, n_pins, &why);
                return apply_failed(r, k, g, "plan", why ?: strdup("the layout does not fit this GPU"));
        }
        for (size_t i = 0; i < plan.n_keep; i++) {
                const MigInstance *m = &cur[plan.keep[i]];
                action_add(r, MIG_ACTION_KEEP, m->profile, m->start, m->size, (int)m->gi_id);
        }
        if (k == -EBUSY) {
                for (size_t i = 0; i < plan.n_destroy; i++)
                        if (plan.moved[plan.destroy[i]]) {
                                const MigInstance *m = &cur[plan.destroy[i]];
                                action_add(r, MIG_ACTION_DESTROY, m->profile, m->start, m->size, (int)m->gi_id)->moved = true;
                        }
                r->state = MIG_APPLY_NEEDS_DISRUPT;
                return gv_error_take(&r->error, -EBUSY, g->address, "plan", GV_HINT_DISRUPT,
                                     strdup_printf("reaching the layout on %s needs existing instances moved",
                                                   g->address));
        }
        for (size_t i = 0; i < plan.n_destroy; i++) {
                const MigInstance *m = &cur[plan.destroy[i]];
                k = apply_in_use(root, n, g, false, m->gi_id, r);
                if (k < 0)
                        return k;
                if (k > 0) {
                        action_add(r, MIG_ACTION_DESTROY, m->profile, m->start, m->size, (int)m->gi_id)->moved =
                                plan.moved[plan.destroy[i]];
                        return -EBUSY;
                }
        }
        for (size_t i = 0; i < plan.n_destroy; i++) {
                const MigInstance *m = &cur[plan.destroy[i]];
                action_add(r, MIG_ACTION_DESTROY, m->profile, m->start, m->size, (int)m->gi_id)->moved =
                        plan.moved[plan.destroy[i]];
                if ((k = mig_destroy(root, n, g, m->gi_id, &r->error)) < 0)
                        return apply_failed(r, k, g, "destroy", NULL);
        }
        for (size_t i = 0; i < plan.n_create; i++) {
                const MigProfile *p = &g->profiles[plan.create[i].profile];
                MigInstance m = {.gi_id = 0};
                if ((k = mig_create(root, n, g, plan.create[i].profile, (int)plan.create[i].start, &m, &r->error)) < 0)
                        return apply_failed(r, k, g, "create", NULL);
                MigAction *a = action_add(r, MIG_ACTION_CREATE, plan.create[i].profile, plan.create[i].start, p->size,
                                          k == 0 ? (int)m.gi_id : -1);
                snprintf(a->uuid, sizeof a->uuid, "%s", k == 0 ? m.uuid : "");
        }
        return 0;
}
