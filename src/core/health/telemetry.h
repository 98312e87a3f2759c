/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One GPU's telemetry through NVML: what gpuvirtd exports for host-visible GPUs and what gpuvirt-agent
 * reports from inside a guest. Each field is there only when NVML answered for it. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/mig/nvml.h"

typedef struct GpuTelemetry {
        bool has_util, has_temp, has_power, has_clocks, has_mem, has_ecc, has_procs;
        unsigned util, mem_util; /* percent */
        unsigned temp;           /* Celsius */
        unsigned power_mw;
        unsigned clk_sm, clk_mem; /* MHz */
        uint64_t mem_used, mem_total; /* bytes */
        uint64_t ecc_sbe, ecc_dbe;    /* corrected, uncorrected (aggregate) */
        unsigned procs;               /* processes on the GPU: NVML's compute list, and its graphics list if any */
} GpuTelemetry;

/* Read what the library offers for dev. *ret_error: the first failing call's error other than
 * NVML_ERROR_NOT_SUPPORTED (NVML_SUCCESS when none); *ret_failures: how many calls failed. */
void gpu_telemetry_read(Nvml *n, nvmlDevice_t dev, GpuTelemetry *ret, nvmlReturn_t *ret_error, unsigned *ret_failures);

/* The fields present, as a JSON object (utilization_percent, memory_used_bytes, ...). */
json_object *gpu_telemetry_json(const GpuTelemetry *t);
