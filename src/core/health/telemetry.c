/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "core/health/telemetry.h"

void gpu_telemetry_read(Nvml *n, nvmlDevice_t dev, GpuTelemetry *ret, nvmlReturn_t *ret_error, unsigned *ret_failures) {
        NvmlSyms *f = &n->f;
        GpuTelemetry t = {};
        nvmlReturn_t first = NVML_SUCCESS;
        unsigned failures = 0;
#define CALL(fn, flag, ...)                                                                                   \
        do {                                                                                                  \
                if (!f->fn)                                                                                   \
                        break;                                                                                \
                nvmlReturn_t _e = f->fn(__VA_ARGS__);                                                         \
                if (_e == NVML_SUCCESS)                                                                       \
                        t.flag = true;                                                                        \
                else if (_e != NVML_ERROR_NOT_SUPPORTED) {                                                    \
                        failures++;                                                                           \
                        if (first == NVML_SUCCESS)                                                            \
                                first = _e;                                                                   \
                }                                                                                             \
        } while (0)
        nvmlUtilization_t ut = {};
        CALL(nvmlDeviceGetUtilizationRates, has_util, dev, &ut);
        t.util = ut.gpu;
        t.mem_util = ut.memory;
        CALL(nvmlDeviceGetTemperature, has_temp, dev, NVML_TEMPERATURE_GPU, &t.temp);
        CALL(nvmlDeviceGetPowerUsage, has_power, dev, &t.power_mw);
        CALL(nvmlDeviceGetClockInfo, has_clocks, dev, NVML_CLOCK_SM, &t.clk_sm);
        if (t.has_clocks && f->nvmlDeviceGetClockInfo(dev, NVML_CLOCK_MEM, &t.clk_mem) != NVML_SUCCESS)
                t.clk_mem = 0;
        nvmlMemory_t mem = {};
        CALL(nvmlDeviceGetMemoryInfo, has_mem, dev, &mem);
        t.mem_used = mem.used;
        t.mem_total = mem.total;
        unsigned long long sbe = 0, dbe = 0;
        CALL(nvmlDeviceGetTotalEccErrors, has_ecc, dev, NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_AGGREGATE_ECC, &dbe);
        if (t.has_ecc && f->nvmlDeviceGetTotalEccErrors(dev, NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_AGGREGATE_ECC, &sbe) !=
                                 NVML_SUCCESS)
                sbe = 0;
        t.ecc_sbe = sbe;
        t.ecc_dbe = dbe;
        /* a count query: no buffer, the count comes back with NVML_ERROR_INSUFFICIENT_SIZE (or SUCCESS: none) */
        nvmlReturn_t (*const lists[])(nvmlDevice_t, unsigned *, nvmlProcessInfo_t *) = {
                f->nvmlDeviceGetComputeRunningProcesses_v3, f->nvmlDeviceGetGraphicsRunningProcesses_v3};
        for (size_t i = 0; i < ELEMENTSOF(lists); i++) {
                unsigned k = 0;
                nvmlReturn_t e = lists[i] ? lists[i](dev, &k, NULL) : NVML_ERROR_NOT_SUPPORTED;
                if (e == NVML_SUCCESS || e == NVML_ERROR_INSUFFICIENT_SIZE) {
                        t.has_procs = true;
                        t.procs += e == NVML_SUCCESS ? 0 : k;
                } else if (e != NVML_ERROR_NOT_SUPPORTED && i == 0) {
                        failures++;
                        if (first == NVML_SUCCESS)
                                first = e;
                }
        }
#undef CALL
        *ret = t;
        *ret_error = first;
        if (ret_failures)
                *ret_failures = failures;
}

json_object *gpu_telemetry_json(const GpuTelemetry *t) {
        json_object *m = json_object_new_object();
        if (!m)
                return NULL;
        if (t->has_util) {
                json_object_object_add(m, "utilization_percent", json_object_new_int((int)t->util));
                json_object_object_add(m, "memory_utilization_percent", json_object_new_int((int)t->mem_util));
        }
        if (t->has_mem) {
                json_object_object_add(m, "memory_used_bytes", json_object_new_int64((int64_t)t->mem_used));
                json_object_object_add(m, "memory_total_bytes", json_object_new_int64((int64_t)t->mem_total));
        }
        if (t->has_temp)
                json_object_object_add(m, "temperature_celsius", json_object_new_int((int)t->temp));
        if (t->has_power)
                json_object_object_add(m, "power_watts", json_object_new_double(t->power_mw / 1000.0));
        if (t->has_clocks) {
                json_object_object_add(m, "sm_clock_mhz", json_object_new_int((int)t->clk_sm));
                json_object_object_add(m, "memory_clock_mhz", json_object_new_int((int)t->clk_mem));
        }
        if (t->has_ecc) {
                json_object_object_add(m, "ecc_corrected", json_object_new_int64((int64_t)t->ecc_sbe));
                json_object_object_add(m, "ecc_uncorrected", json_object_new_int64((int64_t)t->ecc_dbe));
        }
        if (t->has_procs)
                json_object_object_add(m, "processes", json_object_new_int((int)t->procs));
        return m;
}
