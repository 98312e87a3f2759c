/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

#include "pci.h"

/* A mediated device type under <parent>/mdev_supported_types/<id>/. */
typedef struct MdevType {
        char *id;          /* "nvidia-222", "i915-GVTg_V5_4" */
        char *name;        /* NULL when the driver has no name file */
        char *description; /* NULL when absent */
        char *device_api;  /* "vfio-pci" */
        int available_instances;
        /* Parsed from NVIDIA's description ("framebuffer=1024M, max_instance=16"); -1 when absent. */
        long framebuffer_mb;
        int max_instances;
} MdevType;

/* Types of an mdev parent directory (relative to the root). */
int mdev_types_read(Root *root, const char *parent_syspath, MdevType **ret, size_t *ret_n);
void mdev_types_free(MdevType *t, size_t n);
/* {"id","name","description","device_api","available_instances","framebuffer_mb","max_instances"}: the one
 * JSON form of a type (list, show, vgpu types). */
#include <json-c/json.h>
json_object *mdev_type_json(const MdevType *t);

/* NVIDIA vendor-VFIO vGPU type of a VF ("id : name" lines of nvidia/creatable_vgpu_types). */
typedef struct VendorVgpuType {
        unsigned id;
        char *name;
} VendorVgpuType;

int vendor_vgpu_types_read(Root *root, const char *vf_syspath, VendorVgpuType **ret, size_t *ret_n);
void vendor_vgpu_types_free(VendorVgpuType *t, size_t n);
/* nvidia/current_vgpu_type of a VF: 0 when none. */
int vendor_vgpu_current(Root *root, const char *vf_syspath, unsigned *ret);
