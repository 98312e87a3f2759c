/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * NVIDIA mig-parted's configuration files (version v1), read unchanged and written in the same format:
 *
 *   version: v1
 *   mig-configs:
 *     LABEL:
 *       - device-filter: ["0x20B010DE"]   # optional: device<<16|vendor, a string or a list
 *         devices: all                    # "all" or a list of NVML indices
 *         mig-enabled: true
 *         mig-devices: {"1g.5gb": 2, "3g.20gb": 1}
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "basic/macro.h"

typedef struct MigPartedDevice {
        char *profile; /* "1g.5gb" */
        unsigned count;
        unsigned line, column; /* of the profile name, for errors found later (unknown on this GPU) */
} MigPartedDevice;

typedef struct MigPartedEntry {
        uint32_t *filters;
        size_t n_filters;
        bool all_devices;
        unsigned *devices;
        size_t n_devices;
        bool mig_enabled;
        MigPartedDevice *mig_devices;
        size_t n_mig_devices;
        unsigned line, column;
} MigPartedEntry;

typedef struct MigPartedConfig {
        char *label;
        MigPartedEntry *entries;
        size_t n_entries;
} MigPartedConfig;

typedef struct MigParted {
        char *path;
        MigPartedConfig *configs;
        size_t n_configs;
} MigParted;

/* Parse a file ("-": stdin). -EINVAL for a malformed file, with ret_error "FILE:LINE:COL: what". */
int migparted_parse(const char *path, MigParted **ret, char **ret_error);
MigParted *migparted_free(MigParted *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(MigParted *, migparted_free)
#define _cleanup_migparted_free_ _cleanup_(migparted_freep)

const MigPartedConfig *migparted_find(const MigParted *m, const char *label);
/* The entry that applies to the GPU with NVML index and pci_device_id (the first one listing it). */
const MigPartedEntry *migparted_match(const MigPartedConfig *c, unsigned index, uint32_t pci_device_id);

/* Writer: one entry per GPU (what `mig export` prints). */
typedef struct MigPartedExport {
        unsigned index;
        bool mig_enabled;
        const char *const *profiles; /* names, counts parallel */
        const unsigned *counts;
        size_t n;
} MigPartedExport;
int migparted_write(FILE *f, const char *label, const MigPartedExport *e, size_t n);
