/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The simulator's NVML: vGPU instances as the vGPU manager on the host sees them (fake-nvml.c says what
 * the library models as a whole).
 *
 * A vGPU instance is a vGPU unit of the GPU, a vendor vGPU (a VF of it with a nonzero
 * nvidia/current_vgpu_type) or an mdev (a UUID directory under it with an mdev_type), that a VM runs: the
 * real manager lists only the vGPUs of running VMs. What the VM does with it lives in
 * .gpuvirt-sim/nvml/vgpu-<unit>, lines "KEY VALUE" that `gpuvirt sim vgpu` writes: vm (the VM's name: set
 * means running), license (licensed, unlicensed, restricted, unrestricted: what the guest driver
 * obtained), expiry (YYYY-MM-DDTHH:MM:SS UTC, or permanent), util_sm, util_mem, util_enc, util_dec
 * (percent), fb_used_mib. Without a license line a running vGPU is licensed, permanently (the guest
 * driver has a license server: the profiles' gridd.conf).
 *
 * Instance ids are a hash of the unit (stable across calls and processes, nonzero); the table of the
 * last nvmlDeviceGetActiveVgpus() answers the per-instance calls.
 */
#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "core/mig/nvml.h"
#include "sim/nvml/fake-nvml.h"
#include "sim/sim.h"

#define MAX_VGPUS 256

typedef struct FVgpu {
        nvmlVgpuInstance_t id;
        char unit[48];   /* VF address or mdev UUID */
        bool mdev;
        const FDev *dev; /* the GPU it runs on */
        unsigned type;
        char type_name[NVML_VGPU_NAME_BUFFER_SIZE];
} FVgpu;

static FVgpu vgpus[MAX_VGPUS];
static size_t n_vgpus;

static nvmlVgpuInstance_t vgpu_id(const char *unit) {
        uint32_t h = 2166136261u; /* FNV-1a */
        for (const char *p = unit; *p; p++)
                h = (h ^ (unsigned char)*p) * 16777619u;
        return (h & 0x7fffffffu) ?: 1;
}

/* KEY's value in the vGPU's state file, copied into buf; false when unset. */
static bool vgpu_get(const char *unit, const char *key, char *buf, size_t len) {
        _cleanup_free_ char *p = strdup_printf("%s/" SIM_MARKER_DIR "/nvml/vgpu-%s", root, unit);
        FILE *f = p ? fopen(p, "re") : NULL;
        char line[256];
        bool found = false;
        size_t kl = strlen(key);
        while (f && fgets(line, sizeof line, f)) {
                line[strcspn(line, "\n")] = 0;
                if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
                        snprintf(buf, len, "%s", line + kl + 1);
                        found = true;
                }
        }
        if (f)
                fclose(f);
        return found;
}

static unsigned long long vgpu_num(const char *unit, const char *key) {
        char b[32];
        return vgpu_get(unit, key, b, sizeof b) ? strtoull(b, NULL, 10) : 0;
}

/* The name of type id in a "ID : NAME" list (nvidia/creatable_vgpu_types). */
static bool type_from_list(const char *path, unsigned id, char *buf, size_t len) {
        FILE *f = fopen(path, "re");
        char line[256];
        bool found = false;
        while (f && !found && fgets(line, sizeof line, f)) {
                unsigned v;
                int n = 0;
                if (sscanf(line, "%u : %n", &v, &n) == 1 && n > 0 && v == id) {
                        line[strcspn(line, "\n")] = 0;
                        snprintf(buf, len, "%s", line + n);
                        found = true;
                }
        }
        if (f)
                fclose(f);
        return found;
}

static void vgpu_add(const FDev *d, const char *unit, bool mdev, unsigned type, const char *name) {
        char vm[128];
        if (n_vgpus == MAX_VGPUS || !vgpu_get(unit, "vm", vm, sizeof vm) || !vm[0])
                return; /* no running VM uses it */
        FVgpu *v = &vgpus[n_vgpus++];
        *v = (FVgpu){.id = vgpu_id(unit), .mdev = mdev, .dev = d, .type = type};
        snprintf(v->unit, sizeof v->unit, "%s", unit);
        snprintf(v->type_name, sizeof v->type_name, "%s", name);
}

/* Rebuild the table's entries for d from sysfs: its VFs with a vGPU type, its mdevs. */
static void vgpus_scan(const FDev *d) {
        size_t k = 0;
        for (size_t i = 0; i < n_vgpus; i++)
                if (vgpus[i].dev != d)
                        vgpus[k++] = vgpus[i];
        n_vgpus = k;
        _cleanup_free_ char *dir = strdup_printf("%s/sys/bus/pci/devices/%s", root, d->bdf);
        _cleanup_strv_free_ char **l = NULL;
        if (!dir || dir_list(dir, &l) < 0)
                return;
        for (char **e = l; *e; e++) {
                char p[PATH_MAX], name[NVML_VGPU_NAME_BUFFER_SIZE] = "";
                if (startswith(*e, "virtfn")) {
                        _cleanup_free_ char *bdf = NULL;
                        if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, *e) >= sizeof p || readlink_base(p, &bdf) < 0)
                                continue;
                        uint32_t type = 0;
                        if ((size_t)snprintf(p, sizeof p, "%s/sys/bus/pci/devices/%s/nvidia/current_vgpu_type", root,
                                             bdf) >= sizeof p ||
                            read_attr_u32(p, 10, &type) < 0 || type == 0)
                                continue;
                        /* the name: a VF with the type set no longer offers it; a free sibling does */
                        bool named = false;
                        for (char **o = l; *o && !named; o++)
                                if (startswith(*o, "virtfn") &&
                                    (size_t)snprintf(p, sizeof p, "%s/%s/nvidia/creatable_vgpu_types", dir, *o) < sizeof p)
                                        named = type_from_list(p, type, name, sizeof name);
                        if (!named)
                                snprintf(name, sizeof name, "vGPU type %u", type);
                        vgpu_add(d, bdf, false, type, name);
                } else if (strlen(*e) == 36 && (*e)[8] == '-') {
                        _cleanup_free_ char *tn = NULL; /* nvidia-222 */
                        if ((size_t)snprintf(p, sizeof p, "%s/%s/mdev_type", dir, *e) >= sizeof p ||
                            readlink_base(p, &tn) < 0)
                                continue;
                        const char *dash = strrchr(tn, '-');
                        unsigned type = dash ? (unsigned)strtoul(dash + 1, NULL, 10) : 0;
                        _cleanup_free_ char *np = strdup_printf("%s/mdev_supported_types/%s/name", dir, tn);
                        _cleanup_free_ char *nm = NULL;
                        snprintf(name, sizeof name, "%.63s", np && read_attr(np, &nm) >= 0 ? nm : tn);
                        vgpu_add(d, *e, true, type, name);
                }
        }
}

static FVgpu *vgpu_by_id(nvmlVgpuInstance_t id) {
        for (size_t i = 0; i < n_vgpus; i++)
                if (vgpus[i].id == id)
                        return &vgpus[i];
        return NULL;
}

/* The instance for a per-instance call, or the error (a failing driver, an unknown id). */
static nvmlReturn_t vgpu_call(nvmlVgpuInstance_t id, const void *out, FVgpu **ret) {
        if (!initialized)
                return NVML_ERROR_UNINITIALIZED;
        nvmlReturn_t e = sim_failing();
        if (e != NVML_SUCCESS)
                return e;
        FVgpu *v = vgpu_by_id(id);
        if (!v || !out)
                return NVML_ERROR_INVALID_ARGUMENT;
        *ret = v;
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetActiveVgpus(nvmlDevice_t device, unsigned *count, nvmlVgpuInstance_t *ids) {
        LOCKED;
        FDev *d;
        nvmlReturn_t e = telemetry_dev(device, count, &d);
        if (e != NVML_SUCCESS)
                return e;
        vgpus_scan(d);
        unsigned n = 0;
        for (size_t i = 0; i < n_vgpus; i++)
                n += vgpus[i].dev == d;
        if (*count < n || (n > 0 && !ids)) {
                *count = n;
                return NVML_ERROR_INSUFFICIENT_SIZE;
        }
        unsigned k = 0;
        for (size_t i = 0; i < n_vgpus; i++)
                if (vgpus[i].dev == d)
                        ids[k++] = vgpus[i].id;
        *count = n;
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlVgpuInstanceGetUUID(nvmlVgpuInstance_t id, char *uuid, unsigned size) {
        FVgpu *v;
        nvmlReturn_t e = vgpu_call(id, uuid, &v);
        if (e != NVML_SUCCESS)
                return e;
        char u[48];
        make_uuid("", v->unit, v->id, u);
        return copy_out(u, uuid, size);
}

API nvmlReturn_t nvmlVgpuInstanceGetVmID(nvmlVgpuInstance_t id, char *vm, unsigned size, nvmlVgpuVmIdType_t *type) {
        FVgpu *v;
        nvmlReturn_t e = vgpu_call(id, vm, &v);
        if (e != NVML_SUCCESS)
                return e;
        if (!type)
                return NVML_ERROR_INVALID_ARGUMENT;
        char name[128] = "";
        (void)vgpu_get(v->unit, "vm", name, sizeof name);
        *type = NVML_VGPU_VM_ID_DOMAIN_ID; /* KVM: the domain's name */
        return copy_out(name, vm, size);
}

API nvmlReturn_t nvmlVgpuInstanceGetMdevUUID(nvmlVgpuInstance_t id, char *uuid, unsigned size) {
        FVgpu *v;
        nvmlReturn_t e = vgpu_call(id, uuid, &v);
        if (e != NVML_SUCCESS)
                return e;
        if (!v->mdev)
                return NVML_ERROR_NOT_SUPPORTED; /* a vendor vGPU (a VF) has no mdev */
        return copy_out(v->unit, uuid, size);
}

API nvmlReturn_t nvmlVgpuInstanceGetType(nvmlVgpuInstance_t id, nvmlVgpuTypeId_t *type) {
        FVgpu *v;
        nvmlReturn_t e = vgpu_call(id, type, &v);
        if (e != NVML_SUCCESS)
                return e;
        *type = v->type;
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlVgpuTypeGetName(nvmlVgpuTypeId_t type, char *name, unsigned *size) {
        if (!initialized)
                return NVML_ERROR_UNINITIALIZED;
        if (!name || !size)
                return NVML_ERROR_INVALID_ARGUMENT;
        for (size_t i = 0; i < n_vgpus; i++)
                if (vgpus[i].type == type) {
                        nvmlReturn_t e = copy_out(vgpus[i].type_name, name, *size);
                        *size = (unsigned)strlen(vgpus[i].type_name) + 1;
                        return e;
                }
        return NVML_ERROR_INVALID_ARGUMENT;
}

API nvmlReturn_t nvmlVgpuInstanceGetFbUsage(nvmlVgpuInstance_t id, unsigned long long *used) {
        FVgpu *v;
        nvmlReturn_t e = vgpu_call(id, used, &v);
        if (e != NVML_SUCCESS)
                return e;
        *used = vgpu_num(v->unit, "fb_used_mib") << 20;
        return NVML_SUCCESS;
}

static unsigned license_state(const char *s) {
        return streq(s, "licensed")       ? NVML_GRID_LICENSE_STATE_LICENSED :
               streq(s, "unlicensed")     ? NVML_GRID_LICENSE_STATE_UNLICENSED :
               streq(s, "restricted")     ? NVML_GRID_LICENSE_STATE_UNLICENSED_RESTRICTED :
               streq(s, "unrestricted")   ? NVML_GRID_LICENSE_STATE_UNLICENSED_UNRESTRICTED :
               streq(s, "uninitialized")  ? NVML_GRID_LICENSE_STATE_UNINITIALIZED :
                                            NVML_GRID_LICENSE_STATE_UNKNOWN;
}

API nvmlReturn_t nvmlVgpuInstanceGetLicenseInfo_v2(nvmlVgpuInstance_t id, nvmlVgpuLicenseInfo_t *info) {
        FVgpu *v;
        nvmlReturn_t e = vgpu_call(id, info, &v);
        if (e != NVML_SUCCESS)
                return e;
        char st[32] = "licensed", ex[32] = "permanent";
        (void)vgpu_get(v->unit, "license", st, sizeof st);
        (void)vgpu_get(v->unit, "expiry", ex, sizeof ex);
        *info = (nvmlVgpuLicenseInfo_t){.currentState = license_state(st)};
        info->isLicensed = info->currentState == NVML_GRID_LICENSE_STATE_LICENSED;
        nvmlVgpuLicenseExpiry_t *x = &info->licenseExpiry;
        unsigned y, mo, dd, h, mi, s;
        if (!info->isLicensed)
                x->status = NVML_GRID_LICENSE_EXPIRY_NOT_APPLICABLE;
        else if (streq(ex, "permanent"))
                x->status = NVML_GRID_LICENSE_EXPIRY_PERMANENT;
        else if (sscanf(ex, "%u-%u-%uT%u:%u:%u", &y, &mo, &dd, &h, &mi, &s) == 6) {
                *x = (nvmlVgpuLicenseExpiry_t){.year = y, .month = (unsigned short)mo, .day = (unsigned short)dd,
                                               .hour = (unsigned short)h, .min = (unsigned short)mi,
                                               .sec = (unsigned short)s, .status = NVML_GRID_LICENSE_EXPIRY_VALID};
        } else
                x->status = NVML_GRID_LICENSE_EXPIRY_INVALID;
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetVgpuUtilization(nvmlDevice_t device, unsigned long long last_seen, nvmlValueType_t *type,
                                              unsigned *count, nvmlVgpuInstanceUtilizationSample_t *samples) {
        LOCKED;
        FDev *d;
        nvmlReturn_t e = telemetry_dev(device, count, &d);
        if (e != NVML_SUCCESS)
                return e;
        if (!type)
                return NVML_ERROR_INVALID_ARGUMENT;
        vgpus_scan(d);
        unsigned n = 0;
        for (size_t i = 0; i < n_vgpus; i++)
                n += vgpus[i].dev == d;
        if (*count == 0 || !samples) { /* the size query */
                *count = n;
                return NVML_SUCCESS;
        }
        if (*count < n) {
                *count = n;
                return NVML_ERROR_INSUFFICIENT_SIZE;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long long now = (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000;
        unsigned k = 0;
        for (size_t i = 0; i < n_vgpus; i++) {
                const FVgpu *v = &vgpus[i];
                if (v->dev != d || now <= last_seen)
                        continue;
                samples[k++] = (nvmlVgpuInstanceUtilizationSample_t){
                        .vgpuInstance = v->id, .timeStamp = now,
                        .smUtil.uiVal = (unsigned)vgpu_num(v->unit, "util_sm"),
                        .memUtil.uiVal = (unsigned)vgpu_num(v->unit, "util_mem"),
                        .encUtil.uiVal = (unsigned)vgpu_num(v->unit, "util_enc"),
                        .decUtil.uiVal = (unsigned)vgpu_num(v->unit, "util_dec")};
        }
        *type = NVML_VALUE_TYPE_UNSIGNED_INT;
        *count = k;
        return NVML_SUCCESS;
}
