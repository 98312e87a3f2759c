/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The simulator's NVML: what gpuvirtd samples (fake-nvml.c says what it models): telemetry read from
 * .gpuvirt-sim/nvml/<bdf>.telemetry, Xid events from .gpuvirt-sim/nvml/<bdf>.xid through event sets, and
 * the failing driver of .gpuvirt-sim/nvml/fail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "basic/fileio.h"
#include "core/mig/nvml.h"
#include "sim/nvml/fake-nvml.h"

/* ---- telemetry ---- */

/* KEY's value from the GPU's telemetry file; false when unset. */
bool telemetry_get(const FDev *d, const char *key, unsigned long long *ret) {
        _cleanup_free_ char *p = state_path(d, ".telemetry");
        FILE *f = p ? fopen(p, "re") : NULL;
        char line[128], k[64];
        unsigned long long v;
        bool found = false;
        while (f && fgets(line, sizeof line, f))
                if (sscanf(line, "%63s %llu", k, &v) == 2 && streq(k, key)) {
                        *ret = v;
                        found = true;
                }
        if (f)
                fclose(f);
        return found;
}

nvmlReturn_t telemetry_dev(nvmlDevice_t device, const void *out, FDev **ret) {
        if (!initialized)
                return NVML_ERROR_UNINITIALIZED;
        nvmlReturn_t e = sim_failing();
        if (e != NVML_SUCCESS)
                return e;
        FDev *d = as_dev(device);
        if (!d || !out)
                return NVML_ERROR_INVALID_ARGUMENT;
        _cleanup_free_ char *dir = strdup_printf("%s/sys/bus/pci/devices/%s", root, d->bdf);
        _cleanup_free_ char *cfg = strdup_printf("%s/sys/bus/pci/devices/%s/config", root, d->bdf);
        if (!dir || !cfg || !path_exists(cfg) || config_lost(dir))
                return NVML_ERROR_GPU_IS_LOST;
        *ret = d;
        return NVML_SUCCESS;
}

static unsigned long long telemetry_or(const FDev *d, const char *key, unsigned long long dflt) {
        unsigned long long v;
        return telemetry_get(d, key, &v) ? v : dflt;
}

API nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned length) {
        if (!initialized)
                return NVML_ERROR_UNINITIALIZED;
        return sim_failing() ?: copy_out("550.127.05", version, length);
}

API nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *u) {
        LOCKED;
        FDev *d;
        nvmlReturn_t e = telemetry_dev(device, u, &d);
        if (e != NVML_SUCCESS)
                return e;
        *u = (nvmlUtilization_t){.gpu = (unsigned)telemetry_or(d, "util_gpu", 0),
                                 .memory = (unsigned)telemetry_or(d, "util_mem", 0)};
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, unsigned sensor, unsigned *temp) {
        LOCKED;
        FDev *d;
        nvmlReturn_t e = telemetry_dev(device, temp, &d);
        if (e != NVML_SUCCESS)
                return e;
        if (sensor != NVML_TEMPERATURE_GPU)
                return NVML_ERROR_INVALID_ARGUMENT;
        *temp = (unsigned)telemetry_or(d, "temp", 34);
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned *power) {
        LOCKED;
        FDev *d;
        nvmlReturn_t e = telemetry_dev(device, power, &d);
        if (e != NVML_SUCCESS)
                return e;
        *power = (unsigned)telemetry_or(d, "power_mw", 52000);
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, unsigned type, unsigned *clock) {
        LOCKED;
        FDev *d;
        nvmlReturn_t e = telemetry_dev(device, clock, &d);
        if (e != NVML_SUCCESS)
                return e;
        if (type == NVML_CLOCK_GRAPHICS || type == NVML_CLOCK_SM)
                *clock = (unsigned)telemetry_or(d, "clock_sm", 210);
        else if (type == NVML_CLOCK_MEM)
                *clock = (unsigned)telemetry_or(d, "clock_mem", 1593);
        else
                return NVML_ERROR_NOT_SUPPORTED;
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, unsigned type, unsigned counter,
                                             unsigned long long *count) {
        LOCKED;
        FDev *d;
        nvmlReturn_t e = telemetry_dev(device, count, &d);
        if (e != NVML_SUCCESS)
                return e;
        if (!d->m)
                return NVML_ERROR_NOT_SUPPORTED; /* ECC: the data-center products it models */
        if (type > NVML_MEMORY_ERROR_TYPE_UNCORRECTED || counter > NVML_AGGREGATE_ECC)
                return NVML_ERROR_INVALID_ARGUMENT;
        *count = telemetry_or(d, type == NVML_MEMORY_ERROR_TYPE_CORRECTED ? "ecc_sbe" : "ecc_dbe", 0);
        return NVML_SUCCESS;
}

/* ---- events ---- */

#define MAX_EVENT_DEVS MAX_DEVS
struct nvmlEventSet_st {
        uint32_t magic;
        size_t n;
        struct {
                FDev *dev;
                long offset; /* how far into <bdf>.xid this set has read */
        } reg[MAX_EVENT_DEVS];
};
enum { MAGIC_SET = 0x4e564553 };

static long xid_file_size(const FDev *d) {
        _cleanup_free_ char *p = state_path(d, ".xid");
        struct stat st;
        return p && stat(p, &st) == 0 ? (long)st.st_size : 0;
}

API nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) {
        if (!initialized)
                return NVML_ERROR_UNINITIALIZED;
        if (!set)
                return NVML_ERROR_INVALID_ARGUMENT;
        struct nvmlEventSet_st *s = calloc(1, sizeof *s);
        if (!s)
                return NVML_ERROR_UNKNOWN;
        s->magic = MAGIC_SET;
        *set = s;
        return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long types, nvmlEventSet_t set) {
        LOCKED;
        FDev *d = as_dev(device);
        if (!d || !set || set->magic != MAGIC_SET)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (types & ~nvmlEventTypeXidCriticalError)
                return NVML_ERROR_NOT_SUPPORTED;
        for (size_t i = 0; i < set->n; i++)
                if (set->reg[i].dev == d)
                        return NVML_SUCCESS;
        if (set->n == MAX_EVENT_DEVS)
                return NVML_ERROR_INSUFFICIENT_RESOURCES;
        set->reg[set->n].dev = d;
        set->reg[set->n++].offset = xid_file_size(d);
        return NVML_SUCCESS;
}

/* The next Xid after the set's offset for one registered device: true with *ret set. */
static bool xid_next(struct nvmlEventSet_st *s, size_t i, unsigned long long *ret) {
        _cleanup_free_ char *p = state_path(s->reg[i].dev, ".xid");
        FILE *f = p ? fopen(p, "re") : NULL;
        char line[64];
        bool found = false;
        if (f && fseek(f, s->reg[i].offset, SEEK_SET) == 0)
                while (!found && fgets(line, sizeof line, f)) {
                        s->reg[i].offset = ftell(f);
                        found = sscanf(line, "%llu", ret) == 1;
                }
        if (f)
                fclose(f);
        return found;
}

API nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned timeoutms) {
        if (!initialized)
                return NVML_ERROR_UNINITIALIZED;
        if (!set || set->magic != MAGIC_SET || !data)
                return NVML_ERROR_INVALID_ARGUMENT;
        for (unsigned waited = 0;; waited += 10) {
                nvmlReturn_t e = sim_failing();
                if (e != NVML_SUCCESS)
                        return e;
                for (size_t i = 0; i < set->n; i++) {
                        unsigned long long xid;
                        if (xid_next(set, i, &xid)) {
                                *data = (nvmlEventData_t){.device = (nvmlDevice_t)set->reg[i].dev,
                                                          .eventType = nvmlEventTypeXidCriticalError, .eventData = xid,
                                                          .gpuInstanceId = NVML_INSTANCE_ID_NONE,
                                                          .computeInstanceId = NVML_INSTANCE_ID_NONE};
                                return NVML_SUCCESS;
                        }
                }
                if (waited >= timeoutms)
                        return NVML_ERROR_TIMEOUT;
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
}

API nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
        if (!set || set->magic != MAGIC_SET)
                return NVML_ERROR_INVALID_ARGUMENT;
        set->magic = 0;
        free(set);
        return NVML_SUCCESS;
}
