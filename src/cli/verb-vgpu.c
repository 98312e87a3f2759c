/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "cli/common.h"
#include "cli/output.h"
#include "core/vgpu/mdev.h"
#include "core/sriov/sriov.h"
#include "core/vgpu/vendor-vgpu.h"
#include "core/vgpu/vgpu-types.h"

typedef struct VgpuArgs {
        const char *uuid;
        bool persist, autostart, keep_definition, force;
} VgpuArgs;

enum { OPT_UUID = 0x100, OPT_PERSIST, OPT_AUTO, OPT_KEEP, OPT_FORCE };

static void vgpu_opt(int c, const char *v, void *ud) {
        VgpuArgs *a = ud;
        switch (c) {
        case OPT_UUID:
                a->uuid = v;
                break;
        case OPT_PERSIST:
                a->persist = true;
                break;
        case OPT_AUTO:
                a->autostart = true;
                break;
        case OPT_KEEP:
                a->keep_definition = true;
                break;
        case OPT_FORCE:
                a->force = true;
                break;
        }
}

/* o stays the caller's (its _cleanup_json_ drops it) */
static int print_json(json_object *o) {
        return !o || json_print(o, stdout) < 0 ? log_oom() : 0;
}

static int print_rows(Table *t) {
        int r = table_print(t, stdout);
        table_free(t);
        return r < 0 ? log_oom() : 0;
}

/* ---- types ---- */

/* NULL: no types to read, or out of memory */
static json_object *mdev_parent_json(Root *root, const char *parent) {
        _cleanup_free_ char *sys = strdup_printf("sys/class/mdev_bus/%s", parent);
        MdevType *t = NULL;
        size_t n = 0;
        if (!sys || mdev_types_read(root, sys, &t, &n) < 0)
                return NULL;
        _cleanup_json_ json_object *o = json_object_new_object();
        json_object *a = json_object_new_array();
        int r = json_add_string(o, "parent", parent) < 0 || json_add_string(o, "kind", "mdev") < 0 ||
                json_add(o, "types", a) < 0;
        for (size_t i = 0; !r && i < n; i++)
                r = json_append(a, mdev_type_json(&t[i])) < 0;
        mdev_types_free(t, n);
        return r ? NULL : TAKE_PTR(o);
}

/* NULL: no types to read, or out of memory */
static json_object *vendor_parent_json(Root *root, const char *pf) {
        VendorVgpuAvail *t = NULL;
        size_t n = 0;
        if (vendor_vgpu_types(root, pf, &t, &n) < 0)
                return NULL;
        _cleanup_json_ json_object *o = json_object_new_object();
        json_object *a = json_object_new_array();
        int r = json_add_string(o, "parent", pf) < 0 || json_add_string(o, "kind", "vendor") < 0 ||
                json_add(o, "types", a) < 0;
        for (size_t i = 0; !r && i < n; i++) {
                json_object *x = json_object_new_object();
                char id[16];
                snprintf(id, sizeof id, "%u", t[i].id);
                r = json_append(a, x) < 0 || json_add_string(x, "id", id) < 0 ||
                    json_add_string(x, "name", t[i].name) < 0 || json_add_string(x, "description", NULL) < 0 ||
                    json_add_string(x, "device_api", "vfio-pci") < 0 ||
                    json_add(x, "available_instances", json_object_new_int(t[i].available)) < 0 ||
                    json_add_string(x, "framebuffer_mb", NULL) < 0 || json_add_string(x, "max_instances", NULL) < 0;
        }
        vendor_vgpu_avail_free(t, n);
        return r ? NULL : TAKE_PTR(o);
}

static int do_types(const char *only) {
        _cleanup_root_free_ Root *root = NULL;
        _cleanup_pci_host_free_ PciHost *h = NULL;
        int r;
        if ((r = open_root(0, &root)) || (r = scan(root, &h)))
                return r;
        _cleanup_free_ char *want = NULL;
        if (only) {
                r = mdev_parent_resolve(root, only, &want);
                if (r == -EINVAL)
                        return log_error("'%s' is not a PCI address or mdev parent name.", only), -EINVAL;
                if (r < 0) {
                        if (pci_addr_canonical(only, &want) < 0)
                                return log_error("'%s' is not an mdev parent (see 'gpuvirt vgpu types').", only),
                                       -ENODEV;
                        if (!vendor_vgpu_is_parent(root, want))
                                return log_error("%s has no vGPU types (no mdev types, no VFs with NVIDIA vGPU).", want),
                                       -ENODEV;
                }
        }
        _cleanup_json_ json_object *a = json_object_new_array();
        _cleanup_free_ char *bus = root_path(root, "sys/class/mdev_bus");
        _cleanup_strv_free_ char **parents = NULL;
        if (bus && dir_list(bus, &parents) >= 0)
                for (char **p = parents; *p; p++) {
                        if (want && !streq(want, *p))
                                continue;
                        json_object *o = mdev_parent_json(root, *p);
                        if (o && json_append(a, o) < 0)
                                return log_oom();
                }
        for (size_t i = 0; i < h->n_devices; i++) {
                const PciDevice *d = &h->devices[i];
                if (d->sriov_totalvfs < 0 || d->physfn || (want && !streq(want, d->addr)) ||
                    !vendor_vgpu_is_parent(root, d->addr))
                        continue;
                json_object *o = vendor_parent_json(root, d->addr);
                if (o && json_append(a, o) < 0)
                        return log_oom();
        }
        if (arg.json)
                return print_json(a);
        if (json_object_array_length(a) == 0) {
                printf("No vGPU types on this host (no mdev parents, no VFs with NVIDIA vGPU).\n");
                return 0;
        }
        static const char *const hdr[] = {"PARENT", "KIND", "TYPE", "NAME", "AVAILABLE", "FRAMEBUFFER", "MAX"};
        Table *t = table_new(ELEMENTSOF(hdr), hdr);
        for (size_t i = 0; t && i < json_object_array_length(a); i++) {
                json_object *p = json_object_array_get_idx(a, i);
                json_object *types = json_object_object_get(p, "types");
                for (size_t k = 0; k < json_object_array_length(types); k++) {
                        json_object *x = json_object_array_get_idx(types, k);
                        json_object *fb = json_object_object_get(x, "framebuffer_mb");
                        _cleanup_free_ char *av = strdup(json_text(json_object_object_get(x, "available_instances")));
                        _cleanup_free_ char *mx = strdup(json_text(json_object_object_get(x, "max_instances")));
                        _cleanup_free_ char *fbs = fb ? strdup_printf("%" PRId64 " MiB", json_object_get_int64(fb)) : NULL;
                        const char *row[] = {json_text(json_object_object_get(p, "parent")),
                                             json_text(json_object_object_get(p, "kind")),
                                             json_text(json_object_object_get(x, "id")),
                                             json_text(json_object_object_get(x, "name")), av, fbs, mx};
                        if (!av || !mx || (fb && !fbs) || table_add_row(t, row) < 0) {
                                table_free(t);
                                return log_oom();
                        }
                }
        }
        return t ? print_rows(t) : log_oom();
}

/* ---- list ---- */

/* managed: -1 unknown (null); NULL: out of memory */
static json_object *unit_json(const char *id, const char *kind, const char *parent, const char *type, const char *type_name,
                              bool active, bool defined, const char *start, int group, const char *held_by, int managed) {
        _cleanup_json_ json_object *o = json_object_new_object();
        if (json_add_string(o, "id", id) < 0 || json_add_string(o, "kind", kind) < 0 ||
            json_add_string(o, "parent", parent) < 0 || json_add_string(o, "type", type) < 0 ||
            json_add_string(o, "type_name", type_name) < 0 || json_add(o, "active", json_object_new_boolean(active)) < 0 ||
            json_add(o, "defined", json_object_new_boolean(defined)) < 0 || json_add_string(o, "start", start) < 0 ||
            json_add_int_or_null(o, "iommu_group", group >= 0, group) < 0 || json_add_string(o, "held_by", held_by) < 0 ||
            (managed >= 0 ? json_add(o, "managed", json_object_new_boolean(managed))
                          : json_add_string(o, "managed", NULL)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

static char *mdev_type_name(Root *root, const char *parent, const char *type) {
        char *n = NULL;
        if (parent && type)
                (void)root_read_attr(root, &n, "sys/class/mdev_bus/%s/mdev_supported_types/%s/name", parent, type);
        return n;
}

/* Every vGPU unit: mdevs (active and defined) and NVIDIA vendor vGPUs. 0 or an exit code. */
static int load_units(Root *root, MdevDevice **ret_m, size_t *ret_nm, VendorVgpuUnit **ret_u, size_t *ret_nu) {
        int r = mdev_list(root, ret_m, ret_nm);
        if (r < 0)
                return log_error_errno(r, "Cannot list mediated devices: %m"), failure_errno(r);
        for (size_t i = 0; i < *ret_nm; i++) {
                const MdevDevice *d = &(*ret_m)[i];
                if (d->def_name)
                        log_warning(MDEVCTL_DIR "/%s/%s defines %s under another name than its UUID: mdevctl starts it at "
                                    "boot, but 'mdevctl list --defined' does not show it and 'mdevctl modify/undefine' "
                                    "leave it unchanged. Rename it to " MDEVCTL_DIR "/%s/%s.",
                                    d->parent, d->def_name, d->uuid, d->parent, d->uuid);
        }
        r = vendor_vgpu_units(root, ret_u, ret_nu);
        if (r < 0) {
                mdev_list_free(*ret_m, *ret_nm);
                *ret_m = NULL;
                *ret_nm = 0;
                return log_error_errno(r, "Cannot list NVIDIA vendor vGPUs: %m"), failure_errno(r);
        }
        return 0;
}

static int do_list(void) {
        _cleanup_root_free_ Root *root = NULL;
        int r = open_root(0, &root);
        if (r)
                return r;
        MdevDevice *m = NULL;
        size_t nm = 0;
        VendorVgpuUnit *u = NULL;
        size_t nu = 0;
        if ((r = load_units(root, &m, &nm, &u, &nu)))
                return r;
        _cleanup_json_ json_object *a = json_object_new_array();
        for (size_t i = 0; i < nm; i++) {
                _cleanup_free_ char *tn = mdev_type_name(root, m[i].parent, m[i].type);
                if (json_append(a, unit_json(m[i].uuid, "mdev", m[i].parent, m[i].type, tn, m[i].active, m[i].defined,
                                             m[i].start, m[i].iommu_group, m[i].held_by, -1)) < 0)
                        r = -ENOMEM;
        }
        for (size_t i = 0; i < nu; i++) {
                char type[16];
                snprintf(type, sizeof type, "%u", u[i].type);
                if (json_append(a, unit_json(u[i].vf, "vendor", u[i].pf[0] ? u[i].pf : NULL, type, u[i].type_name,
                                             u[i].active, u[i].defined, u[i].start, u[i].iommu_group, u[i].held_by,
                                             u[i].active ? u[i].managed : -1)) < 0)
                        r = -ENOMEM;
        }
        mdev_list_free(m, nm);
        vendor_vgpu_units_free(u, nu);
        if (r < 0)
                return log_oom();
        if (arg.json)
                return print_json(a);
        if (json_object_array_length(a) == 0) {
                printf("No vGPUs (active or defined).\n");
                return 0;
        }
        static const char *const hdr[] = {"ID", "KIND", "PARENT", "TYPE", "NAME", "ACTIVE", "START", "GROUP", "HELD BY"};
        Table *t = table_new(ELEMENTSOF(hdr), hdr);
        for (size_t i = 0; t && i < json_object_array_length(a); i++) {
                json_object *o = json_object_array_get_idx(a, i);
                json_object *mg = json_object_object_get(o, "managed");
                bool act = json_object_get_boolean(json_object_object_get(o, "active"));
                const char *active = !act ? "no" : mg && !json_object_get_boolean(mg) ? "yes (not gpuvirt's)" : "yes";
                _cleanup_free_ char *grp = strdup(json_text(json_object_object_get(o, "iommu_group")));
                const char *row[] = {json_text(json_object_object_get(o, "id")),       json_text(json_object_object_get(o, "kind")),
                                     json_text(json_object_object_get(o, "parent")),   json_text(json_object_object_get(o, "type")),
                                     json_text(json_object_object_get(o, "type_name")), active,
                                     json_text(json_object_object_get(o, "start")),    grp,
                                     json_text(json_object_object_get(o, "held_by"))};
                if (!grp || table_add_row(t, row) < 0) {
                        table_free(t);
                        return log_oom();
                }
        }
        return t ? print_rows(t) : log_oom();
}

/* ---- create ---- */

/* NULL: out of memory */
static json_object *created_json(const char *id, const char *kind, const char *parent, const char *type, bool persisted,
                                 const char *start) {
        _cleanup_json_ json_object *o = json_object_new_object();
        if (json_add_string(o, "id", id) < 0 || json_add_string(o, "kind", kind) < 0 ||
            json_add_string(o, "parent", parent) < 0 || json_add_string(o, "type", type) < 0 ||
            json_add(o, "persistent", json_object_new_boolean(persisted)) < 0 ||
            json_add_string(o, "start", persisted ? start : NULL) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* A type is an mdev type id or a vendor type id or name ("NVIDIA H100-10C"): printable, no '/'. */
static bool type_arg_valid(const char *t) {
        if (mdev_type_valid(t))
                return true;
        if (isempty(t) || strlen(t) > 128 || streq(t, ".") || streq(t, ".."))
                return false;
        for (const char *p = t; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '/')
                        return false;
        return true;
}

/* An unknown type is bad input (exit 2); anything else the kernel or the checks refused is a failure (1),
 * -EINVAL (a type that cannot be mixed with those running) included. */
static int create_errno(int r) {
        return r == -ENOENT ? -EINVAL : failure_errno(r);
}

static int do_create(const char *parent_in, const char *type, const VgpuArgs *a) {
        _cleanup_root_free_ Root *root = NULL;
        int r = open_root(0, &root);
        if (r)
                return r;
        char uuid[MDEV_UUID_STRLEN] = "";
        if (a->uuid && mdev_uuid_parse(a->uuid, uuid) < 0)
                return log_error("--uuid '%s' is not a UUID (expected 8-4-4-4-12 hex digits).", a->uuid), -EINVAL;
        if (!type_arg_valid(type))
                return log_error("'%s' is not a vGPU type (expected an id such as nvidia-222, i915-GVTg_V5_4 or 1044, "
                                 "or a name).",
                                 type),
                       -EINVAL;
        _cleanup_free_ char *parent = NULL;
        bool vendor = false;
        r = mdev_parent_resolve(root, parent_in, &parent);
        if (r == -EINVAL)
                return log_error("'%s' is not a PCI address or mdev parent name.", parent_in), -EINVAL;
        if (r == -ENODEV) {
                if (pci_addr_canonical(parent_in, &parent) < 0)
                        return log_error("'%s' is not an mdev parent (see 'gpuvirt vgpu types').", parent_in), -ENODEV;
                if (!root_exists(root, "sys/bus/pci/devices/%s", parent))
                        return log_error("No PCI device %s on this host.", parent), -ENODEV;
                vendor = vendor_vgpu_is_parent(root, parent) ||
                         root_exists(root, "sys/bus/pci/devices/%s/nvidia/current_vgpu_type", parent);
                if (!vendor)
                        return log_error("%s has no vGPU support: no mdev types (is the vGPU host driver loaded?) and "
                                         "no VFs with NVIDIA vGPU (see 'gpuvirt vgpu types').",
                                         parent),
                               -ENODEV;
        } else if (r < 0)
                return log_error_errno(r, "Cannot resolve %s: %m", parent_in), failure_errno(r);
        if (vendor && a->uuid)
                return log_error("--uuid: NVIDIA vendor vGPUs have no UUID (they are named by their VF address)."),
                       -EINVAL;
        /* the type by id or name, through the one resolver */
        VgpuTypeRef ref = {};
        _cleanup_(gv_error_done) GvError rerr = {};
        r = vgpu_type_resolve(root, parent, type, &ref, &rerr);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error("%s", strna(rerr.message)), create_errno(r);
        _cleanup_free_ char *type_id = TAKE_PTR(ref.id);
        vgpu_type_ref_done(&ref);
        type = type_id;


        _cleanup_(gv_error_done) GvError err = {};
        bool persisted = false;
        _cleanup_json_ json_object *out = NULL;
        if (!vendor) {
                if (!a->uuid && (r = mdev_uuid_generate(uuid)) < 0)
                        return log_error_errno(r, "Cannot generate a UUID: %m"), failure_errno(r);
                r = mdev_create(root, parent, type, uuid, NULL, 0, &err);
                if (r < 0)
                        return log_error("Cannot create a %s vGPU on %s: %s", type, parent, err.message ?: errno_message(r)),
                               create_errno(r);
                if (a->persist) {
                        int k = mdev_define(root, parent, uuid, type, a->autostart, NULL, 0);
                        if (k < 0)
                                log_warning_errno(k, "%s was created, but its definition could not be written: %m", uuid);
                        persisted = k >= 0;
                }
                out = created_json(uuid, "mdev", parent, type, persisted, a->autostart ? "auto" : "manual");
                if (!arg.json) {
                        printf("%s: %s vGPU on %s%s\n", uuid, type, parent, arg.dry_run ? " (dry run)" : "");
                        if (persisted && !arg.dry_run)
                                printf("defined in " MDEVCTL_DIR "/%s/%s (start %s)\n", parent, uuid,
                                       a->autostart ? "auto" : "manual");
                }
        } else {
                _cleanup_free_ char *vf = NULL;
                unsigned id = 0;
                r = vendor_vgpu_create(root, parent, type, &vf, &id, &err);
                if (r < 0)
                        return log_error("Cannot create a %s vGPU on %s: %s", type, parent, err.message ?: errno_message(r)),
                               create_errno(r);
                _cleanup_free_ char *pfn = NULL, *pl = root_path(root, "sys/bus/pci/devices/%s/physfn", vf);
                if (pl)
                        (void)readlink_base(pl, &pfn);
                if (a->persist) {
                        int k = vendor_vgpu_define(root, vf, pfn ?: parent, id, a->autostart);
                        if (k < 0)
                                log_warning_errno(k, "%s carries the vGPU, but its definition could not be written: %m", vf);
                        persisted = k >= 0;
                }
                char ids[16];
                snprintf(ids, sizeof ids, "%u", id);
                out = created_json(vf, "vendor", pfn ?: parent, ids, persisted, a->autostart ? "auto" : "manual");
                if (!arg.json) {
                        printf("%s: vGPU type %u on VF of %s%s; give the VF to a VM as a PCI hostdev\n", vf, id,
                               pfn ?: parent, arg.dry_run ? " (dry run)" : "");
                        if (persisted && !arg.dry_run)
                                printf("defined in " VENDOR_VGPU_PERSIST_DIR "/%s (start %s)\n", vf,
                                       a->autostart ? "auto" : "manual");
                }
        }
        if (arg.json)
                return print_json(out);
        return 0;
}

/* ---- remove ---- */

static int do_remove(const char *id, const VgpuArgs *a) {
        _cleanup_root_free_ Root *root = NULL;
        int r = open_root(0, &root);
        if (r)
                return r;
        char uuid[MDEV_UUID_STRLEN];
        _cleanup_free_ char *vf = NULL;
        bool is_mdev = mdev_uuid_parse(id, uuid) >= 0;
        if (!is_mdev && pci_addr_canonical(id, &vf) < 0)
                return log_error("'%s' is neither an mdev UUID nor a VF address.", id), -EINVAL;


        _cleanup_(gv_error_done) GvError gerr = {};
        bool removed = false, undefined = false;
        if (is_mdev) {
                MdevDevice *m = NULL;
                size_t n = 0;
                if ((r = mdev_list(root, &m, &n)) < 0)
                        return log_error_errno(r, "Cannot list mediated devices: %m"), failure_errno(r);
                bool active = false, defined = false;
                for (size_t i = 0; i < n; i++)
                        if (streq(m[i].uuid, uuid)) {
                                active |= m[i].active;
                                defined |= m[i].defined;
                        }
                if (!active && !(defined && !a->keep_definition)) {
                        mdev_list_free(m, n);
                        return log_error("No mediated device %s%s.", uuid,
                                         defined ? " is active (its definition is kept)" : ", active or defined"),
                               -ENOENT;
                }
                if (active) {
                        r = mdev_remove(root, uuid, a->force, &gerr);
                        if (r < 0) {
                                mdev_list_free(m, n);
                                _cleanup_free_ char *t = error_text(&gerr, r);
                                return log_error("Cannot remove %s: %s", uuid, strna(t)), failure_errno(r);
                        }
                        removed = true;
                }
                if (!a->keep_definition)
                        for (size_t i = 0; i < n; i++)
                                if (streq(m[i].uuid, uuid) && m[i].defined) {
                                        r = mdev_undefine(root, m[i].parent, uuid);
                                        if (r < 0)
                                                log_warning_errno(r, "Cannot remove the definition of %s: %m", uuid);
                                        else
                                                undefined = true;
                                }
                mdev_list_free(m, n);
        } else {
                bool defined = root_exists(root, VENDOR_VGPU_PERSIST_DIR "/%s", vf);
                r = vendor_vgpu_remove(root, vf, a->force, &gerr);
                if (r < 0 && !(r == -ENOENT && defined && !a->keep_definition)) {
                        _cleanup_free_ char *t = error_text(&gerr, r);
                        return log_error("Cannot remove the vGPU on %s: %s", vf, strna(t)), failure_errno(r);
                }
                removed = r >= 0;
                if (defined && !a->keep_definition) {
                        r = vendor_vgpu_undefine(root, vf);
                        if (r < 0)
                                log_warning_errno(r, "Cannot remove the definition of %s: %m", vf);
                        else
                                undefined = true;
                }
        }
        const char *the_id = is_mdev ? uuid : vf;
        if (arg.json) {
                _cleanup_json_ json_object *o = json_object_new_object();
                if (json_add_string(o, "id", the_id) < 0 || json_add_string(o, "kind", is_mdev ? "mdev" : "vendor") < 0 ||
                    json_add(o, "removed", json_object_new_boolean(removed)) < 0 ||
                    json_add(o, "definition_removed", json_object_new_boolean(undefined)) < 0)
                        return log_oom();
                return print_json(o);
        }
        printf("%s: %s%s%s%s\n", the_id, removed ? "removed" : "", removed && undefined ? ", " : "",
               undefined ? "definition removed" : "", arg.dry_run ? " (dry run)" : "");
        return 0;
}

/* ---- start-defined ---- */

/* NULL: out of memory */
static json_object *start_json(const char *id, const char *kind, const char *parent, const char *type, const char *result,
                               const char *error) {
        _cleanup_json_ json_object *o = json_object_new_object();
        if (json_add_string(o, "id", id) < 0 || json_add_string(o, "kind", kind) < 0 ||
            json_add_string(o, "parent", parent) < 0 || json_add_string(o, "type", type) < 0 ||
            json_add_string(o, "result", result) < 0 || json_add_string(o, "error", error) < 0)
                return NULL;
        return TAKE_PTR(o);
}

static bool mdev_is(Root *root, const char *uuid, const char *type) {
        _cleanup_free_ char *l = root_path(root, "sys/bus/mdev/devices/%s/mdev_type", uuid);
        _cleanup_free_ char *t = NULL;
        return l && readlink_base(l, &t) >= 0 && streq(t, type);
}

/* device: only the definitions on that mdev parent, PF or VF (what gpuvirt-vgpu@.service starts when udev
 * sees the parent register); NULL: all. */
static int do_start_defined(const char *device_in) {
        _cleanup_free_ char *device = NULL;
        if (device_in && pci_addr_canonical(device_in, &device) < 0) {
                if (!*device_in || strchr(device_in, '/'))
                        return log_error("'%s' is not a PCI address or mdev parent name.", device_in), -EINVAL;
                if (!(device = strdup(device_in)))
                        return log_oom();
        }
        _cleanup_root_free_ Root *root = NULL;
        int r = open_root(0, &root);
        if (r)
                return r;
        MdevDevice *m = NULL;
        size_t nm = 0;
        VendorVgpuUnit *u = NULL;
        size_t nu = 0;
        if ((r = load_units(root, &m, &nm, &u, &nu)))
                return r;
        _cleanup_json_ json_object *a = json_object_new_array();
        int failed = 0;
        for (size_t i = 0; i < nm; i++) {
                MdevDevice *d = &m[i];
                if (!d->defined || !streq(d->start, "auto") || (device && !streq(d->parent, device)))
                        continue;
                const char *type = d->def_type ?: d->type;
                _cleanup_free_ char *err = NULL;
                const char *result;
                if (d->active && !d->def_type)
                        result = "active";
                else {
                        _cleanup_(gv_error_done) GvError cerr = {};
                        r = d->active ? -EEXIST : mdev_create(root, d->parent, type, d->uuid, d->attrs, d->n_attrs, &cerr);
                        err = TAKE_PTR(cerr.message);
                        /* mdevctl's own udev autostart may have won the race: the device we want exists */
                        if (r == -EEXIST && mdev_is(root, d->uuid, type))
                                r = 1;
                        if (r < 0 && !err)
                                err = strdup_printf("UUID %s is in use by a device of another type", d->uuid);
                        result = r < 0 ? "failed" : r == 1 ? "active" : "started";
                        /* At boot a parent registers when its driver is ready, maybe after this ran: the
                         * registration's uevent starts its definitions (92-gpuvirt-vgpu.rules). Only a parent
                         * asked for by name must be there. */
                        if (r == -ENODEV && !device) {
                                free(err);
                                err = strdup_printf("%s is not a registered mdev parent yet: its definitions start "
                                                    "when it registers",
                                                    d->parent);
                                result = "waiting";
                                r = 0;
                        }
                }
                if (r < 0) {
                        failed++;
                        log_error("Cannot start %s (%s on %s): %s", d->uuid, type, d->parent, err);
                }
                if (json_append(a, start_json(d->uuid, "mdev", d->parent, type, result, err)) < 0) {
                        mdev_list_free(m, nm);
                        vendor_vgpu_units_free(u, nu);
                        return log_oom();
                }
        }
        for (size_t i = 0; i < nu; i++) {
                VendorVgpuUnit *x = &u[i];
                if (!x->defined || !streq(x->start, "auto") || (device && !streq(x->vf, device) && !streq(x->pf, device)))
                        continue;
                _cleanup_(gv_error_done) GvError gerr = {};
                r = vendor_vgpu_start(root, x->vf, &gerr);
                _cleanup_free_ char *err = r < 0 ? error_text(&gerr, r) : NULL;
                if (r < 0) {
                        failed++;
                        log_error("Cannot start the vGPU on %s: %s", x->vf, strna(err));
                }
                char ty[16];
                snprintf(ty, sizeof ty, "%u", x->type);
                if (json_append(a, start_json(x->vf, "vendor", x->pf[0] ? x->pf : NULL, ty,
                                              r < 0 ? "failed" : r == 1 ? "active" : "started", err)) < 0) {
                        mdev_list_free(m, nm);
                        vendor_vgpu_units_free(u, nu);
                        return log_oom();
                }
        }
        mdev_list_free(m, nm);
        vendor_vgpu_units_free(u, nu);
        if (arg.json)
                return print_json(a) ?: (failed ? -EIO : 0); /* the errors are printed, each its own */
        if (device && json_object_array_length(a) == 0)
                printf("No definitions to start on %s.\n", device);
        for (size_t i = 0; i < json_object_array_length(a); i++) {
                json_object *o = json_object_array_get_idx(a, i);
                printf("%s: %s (%s on %s)\n", json_text(json_object_object_get(o, "id")),
                       json_object_get_string(json_object_object_get(o, "result")),
                       json_object_get_string(json_object_object_get(o, "type")),
                       json_object_get_string(json_object_object_get(o, "parent")) ?: "-");
        }
        return failed ? -EIO : 0;
}

/* The sub-verbs (the verb table dispatches them; argv[0] is "vgpu", argv[1] the sub-verb) share one option
 * parser; each refuses the options of the others. */
static int vgpu_run(int argc, char **argv, int (*run)(char **argv, int first, int npos, const VgpuArgs *a)) {
        static const struct option opts[] = {
                {"uuid", required_argument, NULL, OPT_UUID},
                {"persist", no_argument, NULL, OPT_PERSIST},
                {"auto", no_argument, NULL, OPT_AUTO},
                {"keep-definition", no_argument, NULL, OPT_KEEP},
                {"force", no_argument, NULL, OPT_FORCE},
                {},
        };
        VgpuArgs a = {};
        int k = parse_verb_options(argc - 1, argv + 1, opts, "", vgpu_opt, &a);
        return k < 0 ? -EINVAL : run(argv, k + 1, argc - (k + 1), &a); /* parse_verb_options() said why */
}

static bool create_opts(const VgpuArgs *a) {
        return a->uuid || a->persist || a->autostart;
}

static bool remove_opts(const VgpuArgs *a) {
        return a->keep_definition || a->force;
}

static int vgpu_types(char **argv, int first, int npos, const VgpuArgs *a) {
        if (npos > 1 || create_opts(a) || remove_opts(a))
                return usage_error("vgpu types: expected at most one parent (vgpu types [BDF|NAME])");
        return do_types(npos ? argv[first] : NULL);
}

static int vgpu_list(char **argv, int first, int npos, const VgpuArgs *a) {
        (void)argv, (void)first;
        if (npos > 0 || create_opts(a) || remove_opts(a))
                return usage_error("vgpu list: takes no arguments");
        return do_list();
}

static int vgpu_create(char **argv, int first, int npos, const VgpuArgs *a) {
        if (npos != 2 || remove_opts(a))
                return usage_error("vgpu create: expected PARENT TYPE [--uuid U] [--persist [--auto]]");
        if (a->autostart && !a->persist)
                return usage_error("vgpu create: --auto needs --persist");
        return do_create(argv[first], argv[first + 1], a);
}

static int vgpu_remove(char **argv, int first, int npos, const VgpuArgs *a) {
        if (npos != 1 || create_opts(a))
                return usage_error("vgpu remove: expected one ID (an mdev UUID or a VF address) [--keep-definition] [--force]");
        return do_remove(argv[first], a);
}

static int vgpu_start_defined(char **argv, int first, int npos, const VgpuArgs *a) {
        if (npos > 1 || create_opts(a) || remove_opts(a))
                return usage_error("vgpu start-defined: expected at most one device (vgpu start-defined [PARENT|VF])");
        return do_start_defined(npos ? argv[first] : NULL);
}

int verb_vgpu_types(int argc, char **argv) {
        return vgpu_run(argc, argv, vgpu_types);
}

int verb_vgpu_list(int argc, char **argv) {
        return vgpu_run(argc, argv, vgpu_list);
}

int verb_vgpu_create(int argc, char **argv) {
        return vgpu_run(argc, argv, vgpu_create);
}

int verb_vgpu_remove(int argc, char **argv) {
        return vgpu_run(argc, argv, vgpu_remove);
}

int verb_vgpu_start_defined(int argc, char **argv) {
        return vgpu_run(argc, argv, vgpu_start_defined);
}
