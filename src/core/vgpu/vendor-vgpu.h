/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "basic/gverror.h"
#include "core/host/pci.h"

/*
 * NVIDIA vendor-specific VFIO vGPU (vGPU 17+ on Ada, Hopper, Blackwell; kernel 6.8+): no mdev. The
 * PF's SR-IOV VFs (enabled by sriov-manage at boot) each have nvidia/creatable_vgpu_types ("id : name"
 * lines), nvidia/current_vgpu_type (0 = none). A vGPU is created by writing a type id to a free VF and
 * released by writing 0; the VF is then passed to a VM as a plain PCI hostdev.
 *
 * Such a vGPU has no UUID: gpuvirt names it by its VF address. What gpuvirt sets is recorded in
 * var/lib/gpuvirt/vgpu/<vf> ({"pf":..,"type":N,"name":..}); a release writes 0 only when the VF still
 * carries the recorded type, so a type someone else set (nvidia-smi, another tool) is never cleared by
 * mistake. Persistent definitions: etc/gpuvirt/vgpu.d/<vf> ({"pf":..,"type":N,"start":"auto|manual"}).
 */

#define VENDOR_VGPU_STATE_DIR   "var/lib/gpuvirt/vgpu"
#define VENDOR_VGPU_PERSIST_DIR "etc/gpuvirt/vgpu.d"

typedef struct VendorVgpuAvail {
        unsigned id;
        char *name;
        int available; /* free VFs on which this type can be created now */
} VendorVgpuAvail;

/* Whether the PF has VFs with NVIDIA's vendor vGPU interface. */
bool vendor_vgpu_is_parent(Root *root, const char *pf);
/* Types creatable on the PF now, with how many free VFs take each. */
int vendor_vgpu_types(Root *root, const char *pf, VendorVgpuAvail **ret, size_t *ret_n);
void vendor_vgpu_avail_free(VendorVgpuAvail *a, size_t n);

/*
 * Create: TYPE is a numeric id or a name as creatable_vgpu_types lists it; parent is the PF (gpuvirt picks
 * the first free VF that offers the type) or one VF. Errors: -ENOENT unknown type, -EINVAL the GPU runs
 * another type (one type per GPU), -EUSERS no free VF, -ENODEV the GPU does not answer on the bus, other
 * -errno from the kernel; err (may be NULL) says what failed.
 */
int vendor_vgpu_create(Root *root, const char *parent, const char *type, char **ret_vf, unsigned *ret_type,
                       GvError *err);
/* Release what gpuvirt set on a VF. -ENOENT the VF has no type, -EPERM it carries a type gpuvirt did not
 * set (or not the one it set) and force is off (hint GV_HINT_FORCE_CLEAR), -EBUSY its group is held open
 * and force is off (GV_HINT_FORCE_BUSY). err (may be NULL) says what failed. */
int vendor_vgpu_remove(Root *root, const char *vf, bool force, GvError *err);

typedef struct VendorVgpuUnit {
        char vf[PCI_ADDR_STRLEN];
        char pf[PCI_ADDR_STRLEN];
        unsigned type;   /* current type when active, else the defined one */
        char *type_name; /* NULL when unknown */
        bool active;     /* current_vgpu_type != 0 */
        bool managed;    /* gpuvirt set it (state record matches) */
        bool defined;
        char *start;     /* of the definition */
        int iommu_group;
        char *held_by;
} VendorVgpuUnit;

int vendor_vgpu_units(Root *root, VendorVgpuUnit **ret, size_t *ret_n);
void vendor_vgpu_units_free(VendorVgpuUnit *u, size_t n);

int vendor_vgpu_define(Root *root, const char *vf, const char *pf, unsigned type, bool autostart);
int vendor_vgpu_undefine(Root *root, const char *vf);
/* Start one definition: 0 started, 1 already active with that type, -errno (err, may be NULL, says what
 * failed). */
int vendor_vgpu_start(Root *root, const char *vf, GvError *err);
