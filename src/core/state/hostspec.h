/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "basic/gverror.h"
#include "core/mig/migparted.h"
#include "core/host/pci.h"

/* The largest host.yaml read. */
#define HOST_SPEC_SIZE_MAX (1024 * 1024)

/*
 * The desired state of a host's GPUs: /etc/gpuvirt/host.yaml.
 *
 *   version: 1
 *   gpus:
 *     - select: all | "vvvv:dddd" | "dddd:bb:dd.f"
 *       mode: host | passthrough | sriov | vgpu | mig
 *       force: true                      # passthrough of a boot VGA / a group with foreign members
 *       include: ["0000:03:00.0"]        # foreign group members that move along (with force)
 *       sriov: {vfs: 8, vfs-mode: passthrough|host}
 *       vgpu: {type: nvidia-222, count: 4}
 *       mig: {"1g.5gb": 2, "3g.20gb": 1} | {file: PATH, label: NAME}
 *
 * An address entry wins over a vendor:device entry, which wins over "all"; two entries of the same rank
 * matching one GPU are an error. Every error is "FILE:LINE:COL: reason".
 */

typedef enum GpuMode {
        GPU_MODE_HOST,
        GPU_MODE_PASSTHROUGH,
        GPU_MODE_SRIOV,
        GPU_MODE_VGPU,
        GPU_MODE_MIG,
        _GPU_MODE_MAX,
        _GPU_MODE_INVALID = -EINVAL,
} GpuMode;

const char *gpu_mode_to_string(GpuMode m) _pure_;
GpuMode gpu_mode_from_string(const char *s) _pure_;

typedef enum SelectKind {
        SELECT_ALL = 1,
        SELECT_ID = 2,
        SELECT_ADDRESS = 3, /* the rank: higher wins */
} SelectKind;

typedef struct MigCount {
        char *profile;
        unsigned count;
        unsigned at; /* 1 + the placement start this one instance must have (count 1); 0: anywhere. Not in the
                      * file format: set by programs that build a spec (the fleet agent pins its reservations) */
} MigCount;

typedef struct GpuEntry {
        SelectKind select;
        uint16_t vendor, device;
        char addr[PCI_ADDR_STRLEN];
        GpuMode mode;
        bool force;
        char **include;
        /* sriov */
        unsigned vfs;
        bool vfs_vfio;
        /* vgpu */
        char *vgpu_type;
        unsigned vgpu_count;
        char **vgpu_units; /* exactly these vGPUs (mdev UUIDs; VF addresses for vendor vGPU), vgpu_count of them;
                            * NULL: any vgpu_count. Not in the file format (the fleet agent's units) */
        /* mig: counts, or a mig-parted file and label */
        MigCount *mig;
        size_t n_mig;
        char *mig_file, *mig_label;
        const MigParted *mig_parted;       /* the parsed file: host_spec_load() only */
        const MigPartedConfig *mig_config; /* the label in it */
        unsigned line, column; /* of the entry, 1-based */
        unsigned mode_line, mode_column;
} GpuEntry;

typedef struct HostSpec {
        char *file; /* as named in messages */
        GpuEntry *entries;
        size_t n_entries;
        MigParted **mig_files; /* each mig-parted file the entries name, parsed once */
        size_t n_mig_files;
} HostSpec;

/* Parse the text of a host file (basic/yamldoc.h: strict YAML). On failure err's message is
 * "FILE:LINE:COL: reason" (errno EINVAL, step "parse"). mig-parted files are not read: mig_config stays
 * NULL. */
int host_spec_parse(const char *file, const char *text, size_t len, HostSpec **ret, GvError *err);
/* Read a host file (at most HOST_SPEC_SIZE_MAX bytes, "-": standard input), parse it, and parse each
 * mig-parted file it names once, resolving every entry's label. Errors: -ENOENT, -EFBIG ... when the file
 * cannot be read (step "read"), -EINVAL for bad content (step "parse"); err's message says which. Nothing
 * is written. */
int host_spec_load(const char *path, const char *display_name, HostSpec **ret, GvError *err);
HostSpec *host_spec_free(HostSpec *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(HostSpec *, host_spec_free)
#define _cleanup_host_spec_free_ _cleanup_(host_spec_freep)

/* The entry that governs a GPU (NULL when none does: the GPU is left alone). Two entries of the same
 * rank: -EINVAL with the error. */
int host_spec_match(const HostSpec *s, const PciDevice *gpu, const GpuEntry **ret, GvError *err);

/* Render a spec as YAML that host_spec_parse() reads back. */
char *host_spec_format(const HostSpec *s);
