/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * MIG: the model of a GPU's partitioning read through NVML, the operations on it, and the placement
 * planner. The planner functions (mig_plan, mig_best_start, mig_default_start, mig_layout_score) are
 * pure: they take profile tables and layouts, so unit tests and the benchmark drive them directly.
 */

#include <stdbool.h>
#include <stdint.h>

#include "basic/gverror.h"
#include "core/mig/nvml.h"
#include "core/host/pci.h"
#include "core/host/root.h"

#define MIG_MAX_PROFILES  NVML_GPU_INSTANCE_PROFILE_COUNT
#define MIG_MAX_INSTANCES 8
#define MIG_MAX_SLICES    8

typedef struct MigProfile {
        char name[32];     /* "3g.20gb", "1g.5gb+me": resolved at run time from NVML's profile info */
        unsigned constant; /* NVML_GPU_INSTANCE_PROFILE_* */
        unsigned id;       /* NVML profile id (device specific) */
        unsigned compute;  /* compute slices */
        unsigned size;     /* memory slices of each placement */
        unsigned max;      /* instances at most */
        unsigned starts;   /* legal placement starts, bit i = start i */
        unsigned long long memory_mb;
        unsigned sms;
} MigProfile;

typedef struct MigInstance {
        int profile; /* index in MigGpu.profiles */
        unsigned start, size;
        unsigned gi_id;
        int ci_id; /* -1: no compute instance */
        char uuid[NVML_DEVICE_UUID_BUFFER_SIZE];
} MigInstance;

typedef struct MigGpu {
        unsigned index; /* NVML index (what mig-parted's "devices" lists) */
        char address[PCI_ADDR_STRLEN];
        char name[NVML_DEVICE_NAME_BUFFER_SIZE];
        char uuid[NVML_DEVICE_UUID_BUFFER_SIZE];
        uint32_t pci_device_id;    /* device << 16 | vendor */
        uint32_t pci_subsystem_id; /* subsystem device << 16 | subsystem vendor */
        bool capable;              /* NVML reports a MIG mode */
        bool lost;                 /* NVML_ERROR_GPU_IS_LOST: fallen off the bus, nothing else is known */
        unsigned mode_current, mode_pending;
        unsigned slices; /* memory slices (8; A30 4) */
        MigProfile profiles[MIG_MAX_PROFILES];
        size_t n_profiles;
        MigInstance inst[MIG_MAX_INSTANCES];
        size_t n_inst;
        nvmlDevice_t dev;
} MigGpu;

/* Name of a profile from its compute slices, memory (MiB), constant and the GPU's total memory (bytes, 0 when
 * unknown): "<c>g.<GB>gb[+me]", the GB as NVIDIA names it (go-nvlib: the share of the GPU's memory rounded
 * up to eighths, times the GPU's memory in GiB rounded up, rounded: the H200's 16 GiB 1-slice profile is
 * "1g.18gb"); without the total, the profile's GiB rounded up. */
void mig_profile_name(unsigned compute, unsigned long long memory_mb, unsigned constant,
                      unsigned long long total_bytes, char buf[static 32]);

/* Read every GPU NVML sees (in NVML index order). */
int mig_gpus_read(Nvml *n, MigGpu **ret, size_t *ret_n);
/* NVLink domains: ret[i] for gpus[i] (as mig_gpus_read() read them), one number for the GPUs joined by active
 * NVLinks, directly or through an NVSwitch (the smallest index among them); -1 for a GPU without an active
 * link or where NVML has no NVLink calls. 0 or -ENOMEM. */
int mig_nvlink_domains(Nvml *n, const MigGpu *gpus, size_t n_gpus, int *ret);
/* The one GPU at address (canonical), read as mig_gpus_read() reads it, the others not past their PCI
 * info: -ENODEV when NVML does not report it (or reports it lost). */
int mig_gpu_read(Nvml *n, const char *address, MigGpu *ret);
/* Re-read one GPU's mode and instances. */
int mig_gpu_refresh(Nvml *n, MigGpu *g);
MigGpu *mig_gpu_find(MigGpu *gpus, size_t n, const char *address);
/* Profile index by name ("3g.20gb"), or -ENOENT. */
int mig_profile_find(const MigGpu *g, const char *name);
/* The GPU's profile names, "1g.5gb, 1g.5gb+me, ..." (for messages). */
char *mig_profile_names(const MigGpu *g);
/* Slices taken by the instances, as a bitmask. */
unsigned mig_occupancy(const MigGpu *g);

/* What holds a GPU: processes (NVML's running processes, files of its device node under proc/) and
 * kernel users (nvidia_drm with modeset). */
typedef struct MigHolder {
        unsigned pid; /* 0 for a kernel module */
        char name[64];
        unsigned gi_id; /* NVML_INSTANCE_ID_NONE: the whole GPU */
} MigHolder;
int mig_holders(Root *root, Nvml *n, const MigGpu *g, MigHolder **ret, size_t *ret_n);
/* The minor of the GPU's node /dev/nvidia<minor> (proc/driver/nvidia/gpus/ADDRESS/information, "Device Minor:"):
 * -ENOENT when the file is absent (not on the nvidia driver), -EBADMSG without the line. */
int nvidia_gpu_minor(Root *root, const char *address, unsigned *ret);
/* The minor of the node /dev/nvidia-caps/nvidia-cap<minor> that grants a GPU instance (ci < 0) or a compute
 * instance of the GPU whose node minor is gpu_minor (proc/driver/nvidia-caps/mig-minors: "gpuG/giI/access N",
 * "gpuG/giI/ciC/access N"). -ENOENT: no such file or line. */
int nvidia_mig_cap_minor(Root *root, unsigned gpu_minor, unsigned gi, int ci, unsigned *ret);
/* "nvidia-persistenced (pid 812), dcgm (pid 900)" */
char *mig_holders_format(const MigHolder *h, size_t n);
/* The holders of the whole GPU (whole) or of GPU instance gi, formatted; "" when none. -ENOMEM. */
int mig_holders_text(Root *root, Nvml *n, const MigGpu *g, bool whole, unsigned gi, char **ret);

/*
 * The changes of MIG state. Each asks root_change() first, the one place that decides whether a change is
 * made: under --dry-run it prints what would be done and the operation returns 1, changing nothing; a root
 * that takes no writes gives -EROFS. Otherwise 0, or -errno (NVML's return code through
 * nvml_error_to_errno()) with err (may be NULL) saying what failed, the NVML detail in its message.
 */
/* ret_activation gets 0 when the mode is current, -EAGAIN (reset required) or -EBUSY (in use) when it is
 * pending (not written under --dry-run). */
int mig_set_mode(Root *root, Nvml *n, MigGpu *g, bool enable, int *ret_activation, GvError *err);
/* Create a GI of the profile at start (-1: the driver's default placement) plus a full CI. g's snapshot gains
 * the new instance (only it is read back from NVML; the others are taken as they were). */
int mig_create(Root *root, Nvml *n, MigGpu *g, int profile, int start, MigInstance *ret, GvError *err);
/* Destroy the GI with its CIs; g's snapshot loses it (nothing is read back). */
int mig_destroy(Root *root, Nvml *n, MigGpu *g, unsigned gi_id, GvError *err);
/* Reset the GPU through the kernel (write path: <dev>/reset), then re-read it (n may be NULL: not re-read).
 * 1 under --dry-run. */
int mig_reset(Root *root, Nvml *n, MigGpu *g, GvError *err);

/* ---- the planner (pure) ---- */

/* Fragmentation score of a layout (slices taken = occ): how many placements of every profile stay free,
 * larger profiles weighing more. Higher is better. */
unsigned mig_layout_score(const MigProfile *p, size_t n_profiles, unsigned occ);
/* Start for one more instance of profile pi: the legal free start that keeps the best score (ours), or
 * the highest free legal start (what the driver does without a placement). -ENOSPC when none. */
int mig_best_start(const MigProfile *p, size_t n_profiles, unsigned slices, unsigned occ, int pi);
int mig_default_start(const MigProfile *p, size_t n_profiles, unsigned slices, unsigned occ, int pi);

typedef struct MigPlanCreate {
        int profile;
        unsigned start;
} MigPlanCreate;

typedef struct MigPlan {
        size_t keep[MIG_MAX_INSTANCES], n_keep;       /* indices of current instances that stay */
        size_t destroy[MIG_MAX_INSTANCES], n_destroy; /* indices of current instances to destroy */
        bool moved[MIG_MAX_INSTANCES];                /* by current index: destroyed only to make room */
        size_t n_moved;
        MigPlanCreate create[MIG_MAX_INSTANCES];
        size_t n_create;
} MigPlan;

/*
 * From the current instances to want[profile] instances of each profile, with the fewest instances
 * destroyed (each kept instance keeps its placement, UUID and users), new ones placed for the best
 * fragmentation score. Returns 0 with the plan; -EBUSY when the target needs existing instances moved
 * and allow_disrupt is false (the plan says which: moved[]); -ENOSPC when the target does not fit this
 * GPU at all; -EINVAL for a count above a profile's maximum.
 */
int mig_plan(const MigProfile *p, size_t n_profiles, unsigned slices, const MigInstance *cur, size_t n_cur,
             const unsigned want[MIG_MAX_PROFILES], bool allow_disrupt, MigPlan *ret);
/* The same with pins: instances that must exist at exactly that placement (the fleet's reservations). An
 * existing instance at a pin's profile and start is kept; a missing one is created there; want[] counts
 * the pinned instances too. -ENOSPC when a pin overlaps or is not a legal placement. */
int mig_plan_pinned(const MigProfile *p, size_t n_profiles, unsigned slices, const MigInstance *cur, size_t n_cur,
                    const unsigned want[MIG_MAX_PROFILES], const MigPlanCreate *pins, size_t n_pins,
                    bool allow_disrupt, MigPlan *ret);

/*
 * Whether want[profile] instances fit the GPU at all (from no instances, any placement): a layout fits only
 * if the planner can place it. 0, or -EINVAL (a count above its profile's limit) / -ENOSPC (no placement of
 * them all exists) with ret_why saying which ("7 x 1g.10gb, at most 4 on this GPU").
 */
int mig_layout_fits(const MigGpu *g, const unsigned want[MIG_MAX_PROFILES], char **ret_why);
/* The same with pins (mig_plan_pinned(); want counts them too): also -ENOSPC when a pin is not a legal
 * placement of its profile or no layout holds every pin where it is. */
int mig_layout_fits_pinned(const MigGpu *g, const unsigned want[MIG_MAX_PROFILES], const MigPlanCreate *pins,
                           size_t n_pins, char **ret_why);

/* ---- applying a layout to one GPU (mig apply, and the host state's MIG steps) ---- */

typedef enum MigActionKind {
        MIG_ACTION_KEEP,
        MIG_ACTION_DESTROY,
        MIG_ACTION_CREATE,
        MIG_ACTION_ENABLE,
        MIG_ACTION_DISABLE,
        MIG_ACTION_RESET,
} MigActionKind;

typedef struct MigAction {
        MigActionKind kind;
        int profile; /* -1 for mode changes and resets */
        unsigned start, size;
        int gi_id; /* -1: not known (dry run) */
        bool moved; /* destroyed only to make room (--allow-disrupt) */
        char uuid[NVML_DEVICE_UUID_BUFFER_SIZE];
} MigAction;

typedef enum MigApplyState {
        MIG_APPLY_UNCHANGED,      /* already as wanted: untouched */
        MIG_APPLY_CHANGED,
        MIG_APPLY_PENDING_RESET,  /* the mode change waits for a reset (no_reset) */
        MIG_APPLY_IN_USE,         /* a reset or destroy is needed but something holds the GPU: holders says who */
        MIG_APPLY_NEEDS_DISRUPT,  /* existing instances would move: actions with moved=true say which */
        MIG_APPLY_FAILED,
} MigApplyState;

typedef struct MigApplyReport {
        MigApplyState state;
        MigAction actions[4 * MIG_MAX_INSTANCES + 4];
        size_t n_actions;
        char *holders; /* MIG_APPLY_IN_USE: who holds the GPU or the instance */
        GvError error; /* every state but UNCHANGED, CHANGED and PENDING_RESET: what stopped it */
} MigApplyReport;

void mig_apply_report_done(MigApplyReport *r);

/*
 * Bring one GPU to MIG enabled with want[profile] instances (or to MIG disabled), changing only what
 * differs: a GPU already as wanted is not touched; kept instances keep their placement and UUID; new ones
 * are placed for the best fragmentation score. A needed mode change is made and the GPU reset (unless
 * no_reset) when nothing holds it. Under --dry-run (root_dry_run) nothing is changed and the actions are
 * the plan. A layout that cannot fit (mig_layout_fits()) is refused before the mode is touched. Returns 0
 * (UNCHANGED, CHANGED, PENDING_RESET), -EBUSY (IN_USE, NEEDS_DISRUPT), -EINVAL (a count above a profile's
 * limit), -ENOSPC (the layout does not fit), -ENODEV (the GPU is lost), other -errno (FAILED); on each
 * failure the report's error says what (NEEDS_DISRUPT carries GV_HINT_DISRUPT: allowing the moves lets it go
 * on).
 */
int mig_apply_gpu(Root *root, Nvml *n, MigGpu *g, bool enabled, const unsigned want[MIG_MAX_PROFILES],
                  bool allow_disrupt, bool no_reset, MigApplyReport *ret);

/* Whether the GPU is already in the wanted mode with that layout. */
bool mig_layout_matches(const MigGpu *g, bool enabled, const unsigned want[MIG_MAX_PROFILES]);
/* Whether every pin is an instance of the GPU (each instance matching one pin). */
bool mig_has_instances_at(const MigGpu *g, const MigPlanCreate *pins, size_t n_pins);
/* mig_apply_gpu() with pinned placements (see mig_plan_pinned()). */
int mig_apply_gpu_pinned(Root *root, Nvml *n, MigGpu *g, bool enabled, const unsigned want[MIG_MAX_PROFILES],
                         const MigPlanCreate *pins, size_t n_pins, bool allow_disrupt, bool no_reset,
                         MigApplyReport *ret);
