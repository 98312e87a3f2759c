/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the files of core/state/ share (hoststate.h is the API): the observation the planner, the export
 * and the step runners read, and the vGPU units a step counts. Not for use outside core/state/. */

#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <string.h>

#include "basic/json-util.h"
#include "core/state/hoststate.h"

StepKind step_kind_from_string(const char *s);

/* Journal and result fields: any text of a sane length. */
static inline bool is_any(const char *s) {
        return strlen(s) <= 4096;
}

/* JSON is built with every constructor checked (basic/json-util.h: json_add(), json_append()): the journal
 * is run again from what it holds, so a member lost to a failed allocation must fail the write, not go
 * missing. */

/* ---- observing the host (observe.c) ---- */

typedef GpuObservation Observed;
typedef HostObservation Host;

int host_load(Root *root, Host *h);
void host_done(Host *h);
int observe(const Host *h, const PciDevice *d, char *const *include, Observed *o);
bool group_passed_through(const Observed *o);
bool group_touched(const Observed *o);
void observed_done(Observed *o);

/* ---- vGPU units and their identities (units.c) ---- */

/* A vGPU unit of a step's device and type, and its rank: the position of its identity in the step's
 * sequence (Step.units, or the stable indices; a vendor vGPU without named VFs: its place in address order),
 * VGPU_MAX_INDEX when outside it. Removing from the end keeps ranks 0..total-1. */
typedef struct Unit {
        char id[MDEV_UUID_STRLEN]; /* mdev UUID, or the VF address of a vendor vGPU */
        int rank;
        bool vendor;
} Unit;

void vgpu_uuid(const char *parent, unsigned index, char ret[static MDEV_UUID_STRLEN]);
int vgpu_units_of(const Step *s, const MdevDevice *m, size_t nm, const VendorVgpuUnit *u, size_t nu,
                  Unit **ret, size_t *ret_n);
int vgpu_units(Root *root, const Step *s, Unit **ret, size_t *ret_n);
