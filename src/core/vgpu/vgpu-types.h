/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "core/host/pci.h"

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

/* Whether TYPE, as a user names a vGPU type, is the type with this id and name: the id exactly ("nvidia-222",
 * "1047"), or the name without regard to case ("GRID T4-1Q", "NVIDIA H100-10C"). */
bool vgpu_type_is(const char *id, const char *name, const char *type);
/* The vendor type TYPE names in a creatable list, or NULL. */
const VendorVgpuType *vendor_vgpu_type_find(const VendorVgpuType *t, size_t n, const char *type);

typedef enum VgpuTypeKind {
        VGPU_TYPE_MDEV,   /* an mdev type: created with mdev_create() */
        VGPU_TYPE_VENDOR, /* an NVIDIA vendor vGPU type: vendor_vgpu_create() */
        _VGPU_TYPE_KIND_MAX,
        _VGPU_TYPE_KIND_INVALID = -EINVAL,
} VgpuTypeKind;

typedef struct VgpuTypeRef {
        VgpuTypeKind kind;
        char *id;          /* mdev type id, or the vendor type's number as text */
        char *name;        /* NULL when the type has no name */
        int max_instances; /* mdev: from the description, -1 when unknown; vendor: -1 */
} VgpuTypeRef;

void vgpu_type_ref_done(VgpuTypeRef *t);

/*
 * The one resolver of a vGPU type named by a user (vgpu create, vm attach --mdev-type/--vgpu-type,
 * host.yaml vgpu.type): TYPE is an id or a name (vgpu_type_is()) among the types of PARENT, an mdev parent
 * (its name under sys/class/mdev_bus: a PCI address, or a virtual parent such as mbochs), a PF whose VFs
 * carry NVIDIA's vendor vGPU types (those its free VFs offer) or one such VF. -ENOENT no such type,
 * -ENODEV the parent has no vGPU types; err (may be NULL, device PARENT) says which.
 */
int vgpu_type_resolve(Root *root, const char *parent, const char *type, VgpuTypeRef *ret, GvError *err);
