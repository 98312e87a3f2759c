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
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "basic/macro.h"
#include "mig.h"

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

/* The largest mig-parted file read (NVIDIA's own config-default.yaml is about 20 KiB). */
#define MIGPARTED_SIZE_MAX (1024 * 1024)

/* Profiles one entry may name: more than any GPU has (A100: 6, H100: 9 with the +me variants). */
#define MIGPARTED_PROFILES_MAX 32

/* Parse a file ("-": stdin) through basic/yamldoc.h (strict YAML, at most MIGPARTED_SIZE_MAX bytes).
 * -EINVAL for a malformed file, with ret_error "FILE:LINE:COL: what"; the file's -errno (-ENOENT, -EFBIG
 * ...) when it cannot be read, with ret_error "FILE: why". */
int migparted_parse(const char *path, MigParted **ret, char **ret_error);
/* The same for len bytes of text (errors named file). */
int migparted_parse_text(const char *file, const char *text, size_t len, MigParted **ret, char **ret_error);
MigParted *migparted_free(MigParted *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(MigParted *, migparted_free)
#define _cleanup_migparted_free_ _cleanup_(migparted_freep)

const MigPartedConfig *migparted_find(const MigParted *m, const char *label);
/* The entry that applies to the GPU with NVML index and pci_device_id (the first one listing it). */
const MigPartedEntry *migparted_match(const MigPartedConfig *c, unsigned index, uint32_t pci_device_id);

/* The counts an entry asks for on a GPU, indexed like g->profiles. -ENOENT when the GPU has no profile of a
 * name the entry uses: *ret_unknown is that one (with its position in the file). */
int migparted_entry_want(const MigPartedEntry *e, const MigGpu *g, unsigned want[MIG_MAX_PROFILES],
                         const MigPartedDevice **ret_unknown);

/* Writer: one entry per GPU (what `mig export` prints). */
typedef struct MigPartedExport {
        unsigned index;
        bool mig_enabled;
        const char *const *profiles; /* names, counts parallel */
        const unsigned *counts;
        size_t n;
} MigPartedExport;
int migparted_write(FILE *f, const char *label, const MigPartedExport *e, size_t n);
