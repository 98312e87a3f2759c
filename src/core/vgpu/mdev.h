/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "basic/gverror.h"
#include "core/host/root.h"

/*
 * Mediated devices (NVIDIA GRID before Ada, Intel GVT-g, the kernel's sample parents) and their
 * persistent definitions in mdevctl's format, so that mdevctl and libvirt see what gpuvirt defines and
 * the other way round.
 *
 * Parents are the entries of sys/class/mdev_bus: a PCI address for real GPUs, a name for virtual
 * parents (mbochs). Devices are sys/bus/mdev/devices/<uuid>. A definition is the JSON file
 * etc/mdevctl.d/<parent>/<uuid>: {"mdev_type":"...","start":"auto|manual","attrs":[{"name":"value"},...]}
 * (attrs are written, in order, to the device's sysfs attributes after it is created).
 * etc/mdevctl.d/scripts.d/ holds mdevctl's callout scripts, not devices.
 */

#define MDEV_UUID_STRLEN 37
#define MDEVCTL_DIR      "etc/mdevctl.d"

/* Accepts a UUID in either case; writes the canonical lower-case form (the kernel names devices so).
 * -EINVAL when s is not 8-4-4-4-12 hex digits. */
int mdev_uuid_parse(const char *s, char ret[static MDEV_UUID_STRLEN]);
/* Whether s is a UUID in the canonical form (lower case), as the kernel names an mdev. */
bool mdev_uuid_is_canonical(const char *s);
/* A definition's file name under etc/mdevctl.d/<parent>/ as mdevctl (1.2) reads it, with its UUID parser:
 * 8-4-4-4-12 or 32 hex digits, in either case, optionally braced ("{...}") or "urn:uuid:" prefixed. 0 with
 * the canonical lower-case UUID; -EINVAL when the name is no UUID (mdevctl skips it with a warning). A name
 * other than the canonical UUID is started by mdevctl at boot, but `mdevctl list --defined` does not show
 * it and `mdevctl modify/undefine` leave it unchanged (they use the canonical name). */
int mdev_definition_name_parse(const char *name, char ret[static MDEV_UUID_STRLEN]);
/* A random (version 4) UUID. */
int mdev_uuid_generate(char ret[static MDEV_UUID_STRLEN]);
/* Type ids are one path component of letters, digits, '_', '-', '.' ("nvidia-222", "i915-GVTg_V5_4"). */
bool mdev_type_valid(const char *s);

/* Resolve user input (a PCI address in any accepted form, or a parent name) to the parent's name under
 * sys/class/mdev_bus. -EINVAL malformed, -ENODEV not an mdev parent. */
int mdev_parent_resolve(Root *root, const char *input, char **ret);

typedef struct MdevAttr {
        char *name, *value;
} MdevAttr;

typedef struct MdevDevice {
        char uuid[MDEV_UUID_STRLEN];
        char *parent;
        char *type;
        bool active;   /* exists in sys/bus/mdev/devices */
        bool defined;  /* has a definition in etc/mdevctl.d */
        char *start;   /* "auto" / "manual" from the definition, NULL when not defined */
        MdevAttr *attrs;
        size_t n_attrs;
        int iommu_group; /* -1 when not active */
        char *held_by;   /* processes holding /dev/vfio/<group>, NULL when none */
        char *def_type;  /* type of the definition when it differs from the active device's, else NULL */
        char *def_name;  /* the definition's file name when it is not the canonical UUID, else NULL */
} MdevDevice;

/* Active and defined devices merged by UUID, sorted by parent then UUID. */
int mdev_list(Root *root, MdevDevice **ret, size_t *ret_n);
void mdev_list_free(MdevDevice *l, size_t n);

/*
 * Create an mdev. Checks first (parent, type, UUID free, available_instances, NVIDIA's one type per
 * GPU), then writes the UUID to the type's create file and the attrs in order (removing the device
 * again when an attr is refused). On failure err (may be NULL) says what failed and the likely cause.
 * Errors: -ENODEV no such parent, or a PCI parent that does not answer on the bus, -ENOENT no such type,
 * -EEXIST UUID in use, -EUSERS no instance left, -EINVAL type cannot be mixed with those on the GPU, other
 * -errno from the kernel.
 */
int mdev_create(Root *root, const char *parent, const char *type, const char *uuid, const MdevAttr *attrs,
                size_t n_attrs, GvError *err);

/* Remove an active mdev (write 1 to remove). A device whose /dev/vfio group is held open is refused
 * with -EBUSY unless force (the kernel's remove then blocks until the holder closes it; the hint
 * GV_HINT_FORCE_BUSY). -ENOENT when not active. err (may be NULL) says what failed. */
int mdev_remove(Root *root, const char *uuid, bool force, GvError *err);

/* Definitions (mdevctl format). */
int mdev_define(Root *root, const char *parent, const char *uuid, const char *type, bool autostart,
                const MdevAttr *attrs, size_t n_attrs);
/* Remove the definition of uuid on parent, under whatever name mdevctl would read it by. */
int mdev_undefine(Root *root, const char *parent, const char *uuid);

/* Parse one definition's JSON text (len bytes of the file named file) through the strict reader
 * (basic/jsonfile.h). -EBADMSG when malformed, with err (may be NULL) "FILE[:LINE:COL]: reason". */
int mdev_definition_parse(const char *file, const char *text, size_t len, char **ret_type, char **ret_start,
                          MdevAttr **ret_attrs, size_t *ret_n, GvError *err);
void mdev_attrs_free(MdevAttr *a, size_t n);
