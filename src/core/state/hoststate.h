/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

#include "core/host/root.h"
#include "core/mig/mig.h"
#include "core/passthrough/vfio.h"
#include "core/state/hostspec.h"
#include "core/vgpu/mdev.h"
#include "core/vgpu/vendor-vgpu.h"

/*
 * From the host's current state to the state a HostSpec describes: observe every GPU, validate the spec
 * against the devices (before anything changes), plan the steps, apply them in a fixed order, each
 * journaled before it is made.
 *
 * Order: teardowns first (vGPUs removed, MIG disabled, vfio released, VFs to 0), then build-ups in the
 * order the hardware needs them: VFs, driver binding, MIG, mdev / vendor vGPU. Every step is idempotent
 * and converges, so the step a crash interrupted is finished by running it again (`gpuvirt recover`,
 * or the next apply).
 */

#define HOST_STATE_FILE   "etc/gpuvirt/host.yaml"
#define HOST_JOURNAL_FILE "var/lib/gpuvirt/journal.json"
#define HOST_RESULT_FILE  "var/lib/gpuvirt/last-apply.json"

typedef enum StepKind {
        STEP_VGPU_REMOVE,
        STEP_MIG_DISABLE,
        STEP_RELEASE_VFIO,
        STEP_SRIOV_SET,
        STEP_BIND_VFIO,
        STEP_MIG_APPLY,
        STEP_VGPU_CREATE,
        _STEP_KIND_MAX,
        _STEP_KIND_INVALID = -EINVAL,
} StepKind;

const char *step_kind_to_string(StepKind k) _pure_;

/* A MIG instance pinned at a placement (MigCount.at). */
typedef struct StepMigAt {
        char profile[32];
        unsigned start;
} StepMigAt;

/* The most vGPUs a step converges to, and the stable indices derived from a parent. */
#define VGPU_MAX_INDEX 256

typedef struct Step {
        StepKind kind;
        char device[PCI_ADDR_STRLEN];
        /* STEP_SRIOV_SET */
        unsigned vfs;
        bool vfio;
        /* STEP_BIND_VFIO */
        bool force;
        char **include;
        /* STEP_MIG_APPLY: profile names and counts */
        char **mig_profiles;
        unsigned *mig_counts;
        size_t n_mig;
        StepMigAt *mig_at; /* pinned instances (counted in mig_counts too) */
        size_t n_mig_at;
        /* STEP_VGPU_CREATE / REMOVE: one model of a vGPU step. The device's units of the type converge to
         * total, by identity: each unit's identity has a rank in a sequence, the stable UUIDs derived from the
         * parent and an index (0, 1, ...), or, when units is set, exactly the identities listed there (mdev
         * UUIDs, or VF addresses for vendor vGPU: the fleet's reservations). A create makes the missing
         * identities of the sequence, in order, until the device has total; a remove removes from the end
         * (units outside the sequence first, then the highest rank) until it has total. So running the step
         * again after a crash creates only what is missing and never removes a unit that should stay. */
        char *vgpu_type; /* NULL with REMOVE: of any type */
        unsigned count;  /* instances to create / remove, as planned (0 with REMOVE: all) */
        unsigned total;  /* what the step converges to: that many of the type on the device */
        char **units;    /* the sequence when given (at most VGPU_MAX_INDEX, total <= its length); NULL: derived */
} Step;

typedef struct Plan {
        Step *steps;
        size_t n_steps;
} Plan;

Plan *plan_free(Plan *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Plan *, plan_free)
#define _cleanup_plan_free_ _cleanup_(plan_freep)

/* One line describing a step ("bind 0000:17:00.0 to vfio-pci"); the step and the plan as JSON (what the journal
 * holds). Each is NULL when out of memory, never a partial answer. */
char *step_describe(const Step *s);
json_object *step_json(const Step *s);
json_object *plan_json(const Plan *p);

/* The observation the engine plans from (and the fleet's capacity comes from): the host's PCI devices,
 * NVML's MIG view, mdevs and vendor vGPUs, and per GPU the mode it is in. */
typedef struct HostObservation {
        Root *root;
        PciHost *pci;
        Nvml *nvml;
        MigGpu *mig;
        size_t n_mig;
        MdevDevice *mdevs;
        size_t n_mdevs;
        VendorVgpuUnit *units;
        size_t n_units;
} HostObservation;

typedef struct GpuObservation {
        GpuMode mode;
        unsigned vfs;
        bool vfs_vfio;
        char *vgpu_type; /* mdev type id, or the vendor vGPU type's numeric id as text */
        unsigned vgpu_count;
        bool vendor_vgpu;     /* the device's vGPUs are NVIDIA vendor vGPU VFs */
        const MigGpu *mig;    /* NULL: NVML does not know this GPU */
        VfioGroupState group; /* the GPU's IOMMU group, the unit passthrough moves */
        bool lost;            /* the GPU itself has no driver, though gpuvirt recorded the one it had */
} GpuObservation;

int host_observe(Root *root, HostObservation *ret);
void host_observation_done(HostObservation *h);
int host_observe_gpu(const HostObservation *h, const PciDevice *d, GpuObservation *ret);
void gpu_observation_done(GpuObservation *o);

/* Validate the spec against this host and compute the steps. Errors: -EINVAL with "FILE:LINE:COL: why"
 * for requests the host cannot do; other -errno when the host cannot be read. */
int host_plan(Root *root, const HostSpec *spec, Plan **ret, GvError *err);

/* Carry the plan out in order, journaling each step first. Stops at the first failure (the failed step
 * left its devices as they were) and says which. ret_done: steps completed. */
int host_apply(Root *root, const Plan *p, size_t *ret_done, GvError *err);

/* Finish the step an interrupted apply left in the journal (0 and *ret_step NULL when there was none), then
 * give every device that lost its driver back to it (vfio_restore_lost(); *ret_restored lists them, NULL
 * when none). A damaged journal is -EBADMSG, and nothing is done. */
int host_recover(Root *root, char **ret_step, char ***ret_restored, GvError *err);

/* The host's current state as a spec (one address entry per GPU) that host_plan() turns into no steps. */
int host_export(Root *root, HostSpec **ret, GvError *err);

/* The stable UUID of vGPU number index named by name (the host state names its vGPUs by parent and index;
 * the fleet by reservation and unit): a name-based UUID, the same at every call. */
void host_vgpu_uuid(const char *name, unsigned index, char ret[static MDEV_UUID_STRLEN]);

/* The step an interrupted apply left in the journal. -ENOENT when none; -EBADMSG ... for a damaged journal,
 * with err's message naming the file and the reason (every field is checked before the step is run again). */
int host_journal_read(Root *root, Step *ret, GvError *err);
void step_done(Step *s);

/* Record and read the outcome of the last apply (for `gpuvirt status` and the boot unit). */
typedef struct HostResult {
        int64_t time;
        char *file;
        bool ok;
        unsigned steps;
        char *error;
} HostResult;
int host_result_write(Root *root, const char *file, bool ok, size_t steps, const char *error);
/* -ENOENT when no apply was recorded; -EBADMSG ... for a damaged file, err's message saying why. */
int host_result_read(Root *root, HostResult *ret, GvError *err);
void host_result_done(HostResult *r);
