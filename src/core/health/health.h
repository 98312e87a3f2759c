/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The health of a unit (GPU, VF, mdev, vGPU, MIG instance) as gpuvirtd judges it, and the state file it
 * keeps for other programs (the Kubernetes device plugin, `gpuvirt list`).
 *
 * Each collector cycle hands health_update() what it observed of a unit (HealthSample). Any fault latches
 * the unit at the worst level seen with its reason; the unit becomes healthy again only after it stayed
 * clean for the clean period (no new fault, no persisting condition) AND passes re-qualification: present
 * on the bus, its driver bound, NVML answering where NVML is expected. A unit that is gone (removed, fell
 * off the bus) stays gone until it is back and re-qualifies.
 */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "basic/gverror.h"
#include "basic/macro.h"
#include "core/host/root.h"

typedef enum HealthLevel {
        HEALTH_HEALTHY,
        HEALTH_DEGRADED,
        HEALTH_UNHEALTHY,
        HEALTH_GONE,
        _HEALTH_LEVEL_MAX,
        _HEALTH_LEVEL_INVALID = -EINVAL,
} HealthLevel;

const char *health_level_to_string(HealthLevel l) _pure_;
HealthLevel health_level_from_string(const char *s) _pure_;

/* What an NVIDIA Xid means, for the common ones ("double-bit ECC error"), NULL for others. */
const char *xid_meaning(unsigned xid) _pure_;
/* Xids caused by the application running on the GPU (13, 31, 43, 45, 68, 109): not device health. */
bool xid_is_application(unsigned xid) _pure_;
/* The level a device Xid puts the unit at (HEALTHY for application Xids). */
HealthLevel xid_level(unsigned xid) _pure_;

#define HEALTH_MAX_XIDS 16

/* One cycle's observation of a unit. Counters are totals since boot (their increase is a fault). */
typedef struct HealthSample {
        bool present;       /* in sysfs */
        bool off_bus;       /* config space reads all ones */
        bool driver_bound;  /* some driver is bound (re-qualification) */
        bool nvml_expected; /* a host-visible NVIDIA GPU: NVML must answer for it */
        int nvml_error;     /* -errno of the last NVML call for it, 0 when it answered */
        const char *nvml_error_name; /* "NVML_ERROR_UNKNOWN" */
        unsigned xids[HEALTH_MAX_XIDS];
        size_t n_xids;
        bool have_ecc, have_aer;
        uint64_t ecc_dbe;           /* double-bit (uncorrected) ECC errors, aggregate */
        uint64_t aer_fatal, aer_nonfatal;
        bool link_downgraded;       /* current speed or width below the maximum */
        const char *link_now, *link_max; /* "8.0 GT/s x8", for the reason */
        bool have_license;          /* a vGPU the vGPU manager reports (a running VM's) */
        bool licensed;              /* its guest driver holds a license */
        const char *license_state;  /* "unlicensed (restricted)", for the reason */
} HealthSample;

typedef struct HealthUnit {
        HealthLevel level;
        char *reason;        /* NULL when healthy */
        uint64_t since_usec; /* CLOCK_REALTIME of the last level change */
        uint64_t last_fault_usec; /* CLOCK_MONOTONIC of the last fault seen; 0: none */
        bool baseline;       /* counters below hold the last sample's */
        uint64_t ecc_dbe, aer_fatal, aer_nonfatal;
        unsigned last_xid;
} HealthUnit;

/* A change of level, for the journal and /v1/events. */
typedef struct HealthChange {
        HealthLevel from, to;
        char *reason; /* why (the new reason, or "recovered: ...") */
} HealthChange;

/*
 * Feed one sample. now_mono / now_real: the clocks in µs. clean_usec: how long a unit must stay clean to
 * recover. Returns 1 with *ret_change filled (reason to free) when the level changed, 0 when not, -ENOMEM.
 */
int health_update(HealthUnit *u, const HealthSample *s, uint64_t now_mono, uint64_t now_real, uint64_t clean_usec,
                  HealthChange *ret_change);
void health_unit_done(HealthUnit *u);

/* ---- the state file: run/gpuvirt/health.json ---- */

#define HEALTH_FILE "run/gpuvirt/health.json"
#define HEALTH_FILE_VERSION 1

/* RFC 3339 UTC of a CLOCK_REALTIME µs value ("2026-12-01T15:04:05Z"). */
void health_format_time(uint64_t usec, char buf[static 32]);

/* The JSON object of one unit in the state file: {"unit","gpu","health","reason","since"}. */
json_object *health_unit_json(const char *unit, const char *gpu, const HealthUnit *u);

/*
 * Read the state file of a running daemon: *ret gets an object mapping each unit to its entry, or NULL
 * when there is no file (0). -EINVAL with err (step "parse") when the file is damaged (FILE: what is wrong,
 * FILE:LINE:COL for bad JSON); another -errno (step "read") when it cannot be read.
 */
int health_file_read(const Root *root, json_object **ret, GvError *err);
