/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "basic/fileio.h"
#include "core/mig/nvml.h"
#include "sim/nvml/fake-nvml.h"

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
        LOCKED_CHANGE;
        FDev *d = as_dev(device);
        if (!d || !activation || mode > 1)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (!d->m)
                return NVML_ERROR_NOT_SUPPORTED;
        if (mode == 0 && d->cur == 1 && gi_count(d) > 0)
                return NVML_ERROR_IN_USE; /* instances exist */
        FProc p[1];
        int np = dev_processes(d, p, 1);
        if (np < 0)
                return NVML_ERROR_UNKNOWN;
        if (faulted(d, "nvmlDeviceSetMigMode"))
                return NVML_ERROR_UNKNOWN;
        d->pend = mode;
        if (dev_save(d) < 0)
                return NVML_ERROR_UNKNOWN;
        if (mode == d->cur)
                *activation = NVML_SUCCESS;
        else
                *activation = np > 0 ? NVML_ERROR_IN_USE : NVML_ERROR_RESET_REQUIRED;
        return NVML_SUCCESS;
}

/* ---- GPU instances ---- */

API nvmlReturn_t nvmlDeviceGetGpuInstanceProfileInfo(nvmlDevice_t device, unsigned profile,
                                                     nvmlGpuInstanceProfileInfo_t *info) {
        LOCKED;
        FDev *d = as_dev_static(device);
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
        FDev *d = as_dev_static(device);
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
        LOCKED_CHANGE;
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
        LOCKED_CHANGE;
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
        LOCKED_CHANGE;
        FGi *gi = as_gi(h);
        if (!gi)
                return NVML_ERROR_INVALID_ARGUMENT;
        for (unsigned c = 0; c < MAX_CIS; c++)
                if (gi->ci[c].used)
                        return NVML_ERROR_IN_USE;
        FProc p[64];
        int n = dev_processes(gi->dev, p, ELEMENTSOF(p));
        if (n < 0)
                return NVML_ERROR_UNKNOWN;
        for (int i = 0; i < n; i++)
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
        LOCKED_CHANGE;
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
                _cleanup_free_ char *seed = strdup_printf("%s/mig", d->bdf);
                if (!seed)
                        return NVML_ERROR_UNKNOWN;
                if (faulted(d, "nvmlGpuInstanceCreateComputeInstance"))
                        return NVML_ERROR_UNKNOWN;
                d->serial++;
                gi->ci[k] = (FCi){.magic = MAGIC_CI, .gi = gi, .used = true, .id = id, .profile = profileId, .start = s,
                                  .size = info.sliceCount};
                make_uuid("MIG-", seed, d->serial, gi->ci[k].uuid);
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
        LOCKED_CHANGE;
        FCi *c = as_ci(h);
        if (!c)
                return NVML_ERROR_INVALID_ARGUMENT;
        FProc p[64];
        int n = dev_processes(c->gi->dev, p, ELEMENTSOF(p));
        if (n < 0)
                return NVML_ERROR_UNKNOWN;
        for (int i = 0; i < n; i++)
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
        FDev *d = as_dev_static(device);
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
