/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * NVIDIA mig-parted's configuration files (version v1), read unchanged and written in the same format:
 *
 *   version: v1
 *   mig-configs:
 *     LABEL:
 *       - device-filter: ["0x20B010DE"]   # optional: a string or a list of "0xDDDDVVVV" (device<<16|vendor)
 *                                         # or "0xDDDDVVVV:0xSSSSVVVV" (and subsystem device<<16|vendor)
 *         devices: all                    # "all" or a list of NVML indices
 *         mig-enabled: true
 *         mig-devices: {"1g.5gb": 2, "3g.20gb": 1}
 *
 * What a configuration asks of each GPU follows mig-parted's apply and assert (docs/mig-parted.md):
 * migparted_target() is the one implementation, used by `gpuvirt mig apply/assert` and by host.yaml's
 * `mig: {file:, label:}`.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "basic/macro.h"
#include "core/mig/mig.h"

typedef struct MigPartedDevice {
        char *profile; /* "1g.5gb" */
        unsigned count;
        unsigned line, column; /* of the profile name, for errors found later (unknown on this GPU) */
} MigPartedDevice;

/* One device-filter: the GPU's PCI device and vendor, and optionally its subsystem (mig-parted's DeviceID). */
typedef struct MigPartedFilter {
        uint32_t device_id;    /* device << 16 | vendor, as NVML's pciDeviceId */
        uint32_t subsystem_id; /* subsystem device << 16 | subsystem vendor, as NVML's pciSubSystemId */
        bool has_subsystem;    /* the "0xDDDDVVVV:0xSSSSVVVV" form: all four must match */
} MigPartedFilter;

typedef struct MigPartedEntry {
        MigPartedFilter *filters;
        size_t n_filters; /* 0: every GPU */
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
 * -EINVAL for a malformed file, ret_error's message (may be NULL) "FILE:LINE:COL: what", step "parse"; the
 * file's -errno (-ENOENT, -EFBIG ...) when it cannot be read, message "FILE: why", step "read". */
int migparted_parse(const char *path, MigParted **ret, GvError *ret_error);
/* The same for len bytes of text (errors named file). */
int migparted_parse_text(const char *file, const char *text, size_t len, MigParted **ret, GvError *ret_error);
MigParted *migparted_free(MigParted *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(MigParted *, migparted_free)
#define _cleanup_migparted_free_ _cleanup_(migparted_freep)

/* The configuration with that label; with label NULL, the only one when the file has exactly one (as
 * mig-parted takes it without -c). */
const MigPartedConfig *migparted_find(const MigParted *m, const char *label);

/* Whether a filter, or an entry (its devices and its filters), selects the GPU with that NVML index and
 * PCI identity. */
bool migparted_filter_matches(const MigPartedFilter *f, uint32_t device_id, uint32_t subsystem_id);
bool migparted_entry_selects(const MigPartedEntry *e, unsigned index, uint32_t device_id, uint32_t subsystem_id);

typedef enum MigPartedAction {
        MIGPARTED_UNMATCHED, /* no entry selects the GPU: left alone; `assert` fails for a MIG-capable one */
        MIGPARTED_SKIP,      /* selected, cannot do MIG, and `devices: all` or `mig-enabled: false`: a no-op */
        MIGPARTED_SET,       /* bring it to mig-enabled with want[] */
        _MIGPARTED_ACTION_MAX,
        _MIGPARTED_ACTION_INVALID = -EINVAL,
} MigPartedAction;

const char *migparted_action_to_string(MigPartedAction a) _pure_;

typedef struct MigPartedTarget {
        MigPartedAction action;
        const MigPartedEntry *entry; /* the entry that decides: the last one selecting the GPU (mig-parted
                                      * applies the entries in order), NULL when UNMATCHED */
        bool enabled;
        unsigned want[MIG_MAX_PROFILES]; /* instances per profile of the GPU (indices of MigGpu.profiles) */
} MigPartedTarget;

/*
 * What configuration c of file m asks of GPU g, checked against the GPU before anything changes. -EINVAL
 * with ret_error (may be NULL) "FILE:LINE:COL: why", step "target", when the entries selecting the GPU disagree on mig-enabled, an entry
 * naming it by index asks MIG of a GPU that cannot do it, a profile does not exist on it, or the layout
 * cannot be placed on it (mig_layout_fits()).
 */
int migparted_target(const MigParted *m, const MigPartedConfig *c, const MigGpu *g, MigPartedTarget *ret,
                     GvError *ret_error);

/* Writer: one entry per GPU (what `mig export` prints). */
typedef struct MigPartedExport {
        unsigned index;
        bool mig_enabled;
        const char *const *profiles; /* names, counts parallel */
        const unsigned *counts;
        size_t n;
} MigPartedExport;
int migparted_write(FILE *f, const char *label, const MigPartedExport *e, size_t n);
