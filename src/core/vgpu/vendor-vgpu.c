/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <json-c/json.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "core/sriov/sriov.h"
#include "core/store/statefile.h"
#include "core/vgpu/vendor-vgpu.h"
#include "core/passthrough/vfio.h"
#include "core/vgpu/vgpu-types.h"

static char *vf_path(const char *vf) {
        return strdup_printf("sys/bus/pci/devices/%s", vf);
}

static bool vf_has_vgpu(Root *root, const char *vf) {
        return root_exists(root, "sys/bus/pci/devices/%s/nvidia/current_vgpu_type", vf);
}

static int vf_current(Root *root, const char *vf, unsigned *ret) {
        _cleanup_free_ char *p = vf_path(vf);
        return p ? vendor_vgpu_current(root, p, ret) : -ENOMEM;
}

static int vf_creatable(Root *root, const char *vf, VendorVgpuType **ret, size_t *ret_n) {
        _cleanup_free_ char *p = vf_path(vf);
        return p ? vendor_vgpu_types_read(root, p, ret, ret_n) : -ENOMEM;
}

bool vendor_vgpu_is_parent(Root *root, const char *pf) {
        _cleanup_strv_free_ char **vfs = NULL;
        if (sriov_vfs(root, pf, &vfs) < 0)
                return false;
        for (char **v = vfs; *v; v++)
                if (vf_has_vgpu(root, *v))
                        return true;
        return false;
}

void vendor_vgpu_avail_free(VendorVgpuAvail *a, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(a[i].name);
        free(a);
}

int vendor_vgpu_types(Root *root, const char *pf, VendorVgpuAvail **ret, size_t *ret_n) {
        _cleanup_strv_free_ char **vfs = NULL;
        int r = sriov_vfs(root, pf, &vfs);
        if (r < 0)
                return r;
        VendorVgpuAvail *a = NULL;
        size_t n = 0;
        for (char **v = vfs; *v; v++) {
                unsigned cur;
                if (!vf_has_vgpu(root, *v) || vf_current(root, *v, &cur) < 0 || cur != 0)
                        continue;
                VendorVgpuType *t = NULL;
                size_t nt = 0;
                if (vf_creatable(root, *v, &t, &nt) < 0)
                        continue;
                for (size_t i = 0; i < nt; i++) {
                        size_t k;
                        for (k = 0; k < n && a[k].id != t[i].id; k++)
                                ;
                        if (k == n) {
                                VendorVgpuAvail *na = realloc(a, (n + 1) * sizeof *a);
                                if (!na) {
                                        vendor_vgpu_types_free(t, nt);
                                        vendor_vgpu_avail_free(a, n);
                                        return -ENOMEM;
                                }
                                a = na;
                                a[n++] = (VendorVgpuAvail){.id = t[i].id, .name = TAKE_PTR(t[i].name)};
                        }
                        a[k].available++;
                }
                vendor_vgpu_types_free(t, nt);
        }
        *ret = a;
        *ret_n = n;
        return 0;
}

/* ---- state ---- */

typedef struct VgpuRecord {
        const char *pf, *name, *start;
        unsigned type;
} VgpuRecord;

static bool is_start(const char *s) {
        return streq(s, "auto") || streq(s, "manual");
}

/* What gpuvirt set on a VF (var/lib/gpuvirt/vgpu/<vf>). */
static const JsonField state_fields[] = {
        {"pf", JSON_KIND_STRING, JSON_MANDATORY, offsetof(VgpuRecord, pf), .valid = pci_addr_is_canonical,
         .what = "a PCI address (0000:3b:00.0)"},
        {"type", JSON_KIND_UINT, JSON_MANDATORY, offsetof(VgpuRecord, type), .min = 1, .max = UINT32_MAX},
        {"name", JSON_KIND_STRING, JSON_NULLABLE, offsetof(VgpuRecord, name), .valid = string_is_printable,
         .what = "a vGPU type name"},
        {},
};

/* A definition (etc/gpuvirt/vgpu.d/<vf>). */
static const JsonField def_fields[] = {
        {"pf", JSON_KIND_STRING, JSON_MANDATORY, offsetof(VgpuRecord, pf), .valid = pci_addr_is_canonical,
         .what = "a PCI address (0000:3b:00.0)"},
        {"type", JSON_KIND_UINT, JSON_MANDATORY, offsetof(VgpuRecord, type), .min = 1, .max = UINT32_MAX},
        {"start", JSON_KIND_STRING, 0, offsetof(VgpuRecord, start), .valid = is_start, .what = "auto or manual"},
        {},
};

/* A damaged record is treated as absent (the VF is not ours: nothing is cleared without --force). */
static int state_read(Root *root, const char *vf, unsigned *ret_type, char **ret_name) {
        json_object *o = NULL;
        VgpuRecord rec = {};
        _cleanup_(gv_error_done) GvError err = {};
        int r = state_read_record(root, state_fields, &rec, &o, &err, VENDOR_VGPU_STATE_DIR "/%s", vf);
        if (r < 0)
                return r;
        char *name = NULL;
        if (ret_name && rec.name && !(name = strdup(rec.name))) {
                json_object_put(o);
                return -ENOMEM;
        }
        json_object_put(o);
        *ret_type = rec.type;
        if (ret_name)
                *ret_name = name;
        return 0;
}

static int state_write(Root *root, const char *vf, const char *pf, unsigned type, const char *name) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "pf", json_object_new_string(pf));
        json_object_object_add(o, "type", json_object_new_int((int)type));
        json_object_object_add(o, "name", name ? json_object_new_string(name) : NULL);
        int r = state_write_json(root, o, VENDOR_VGPU_STATE_DIR "/%s", vf);
        json_object_put(o);
        return r;
}

/* ---- create / remove ---- */

static char *pf_of(Root *root, const char *vf) {
        _cleanup_free_ char *p = root_path(root, "sys/bus/pci/devices/%s/physfn", vf);
        char *pf = NULL;
        if (p)
                (void)readlink_base(p, &pf);
        return pf;
}



int vendor_vgpu_create(Root *root, const char *parent, const char *type, char **ret_vf, unsigned *ret_type,
                       GvError *err) {
        _cleanup_strv_free_ char **cands = NULL;
        _cleanup_free_ char *pf = NULL;
        size_t nc = 0;
        if (pci_device_require_alive(root, parent, err) < 0)
                return -ENODEV;
        if (vf_has_vgpu(root, parent)) {
                pf = pf_of(root, parent);
                (void)strv_push(&cands, &nc, strdup(parent));
        } else {
                pf = strdup(parent);
                int r = sriov_vfs(root, parent, &cands);
                if (r < 0)
                        return r;
        }
        if (!pf || !cands)
                return -ENOMEM;
        if (!streq(pf, parent) && pci_device_require_alive(root, pf, err) < 0)
                return -ENODEV; /* a VF of a GPU that fell off the bus */
        unsigned in_use = 0;
        size_t free_vfs = 0, vgpu_vfs = 0;
        bool known = false;
        for (char **v = cands; *v; v++) {
                unsigned cur;
                if (!vf_has_vgpu(root, *v) || vf_current(root, *v, &cur) < 0)
                        continue;
                vgpu_vfs++;
                if (cur != 0) {
                        in_use = cur;
                        continue;
                }
                free_vfs++;
                VendorVgpuType *t = NULL;
                size_t nt = 0;
                if (vf_creatable(root, *v, &t, &nt) < 0)
                        continue;
                const VendorVgpuType *m = vendor_vgpu_type_find(t, nt, type);
                if (!m) {
                        vendor_vgpu_types_free(t, nt);
                        continue;
                }
                known = true;
                unsigned id = m->id;
                char idv[16];
                snprintf(idv, sizeof idv, "%u", id);
                int r = root_write(root, idv, "sys/bus/pci/devices/%s/nvidia/current_vgpu_type", *v);
                if (r < 0) {
                        _cleanup_free_ char *et = errno_describe(r);
                        r = gv_error_set(err, r, *v, "current_vgpu_type",
                                         "writing type %u (%s) to %s's nvidia/current_vgpu_type failed: %s", id, m->name,
                                         *v, et);
                        vendor_vgpu_types_free(t, nt);
                        return r;
                }
                r = state_write(root, *v, pf, id, m->name);
                if (r < 0) {
                        /* without a record we could never release it safely: undo */
                        (void)root_write(root, "0", "sys/bus/pci/devices/%s/nvidia/current_vgpu_type", *v);
                        _cleanup_free_ char *et = errno_describe(r);
                        r = gv_error_set(err, r, *v, "record",
                                         "cannot record the vGPU in " VENDOR_VGPU_STATE_DIR ": %s; type cleared again", et);
                        vendor_vgpu_types_free(t, nt);
                        return r;
                }
                vendor_vgpu_types_free(t, nt);
                *ret_vf = strdup(*v);
                *ret_type = id;
                return *ret_vf ? 0 : -ENOMEM;
        }
        if (vgpu_vfs == 0)
                return gv_error_set(err, -ENODEV, parent, NULL,
                                    "%s has no VFs with NVIDIA vGPU support (no nvidia/current_vgpu_type): enable "
                                    "them with NVIDIA's sriov-manage -e, or 'gpuvirt sriov set'",
                                    parent);
        if (free_vfs == 0)
                return gv_error_set(err, -EUSERS, pf, NULL,
                                    "every VF of %s already carries a vGPU (%zu VFs): remove one first", pf, vgpu_vfs);
        if (!known && in_use != 0)
                return gv_error_set(err, -EINVAL, pf, NULL,
                                    "%s runs vGPU type %u, and NVIDIA vGPU allows one type per GPU at a time: "
                                    "type '%s' is not creatable now (see 'gpuvirt vgpu types %s')",
                                    pf, in_use, type, pf);
        return gv_error_set(err, -ENOENT, pf, NULL,
                            "type '%s' is not among the creatable vGPU types of %s (see 'gpuvirt vgpu types %s')", type,
                            pf, pf);
}

int vendor_vgpu_remove(Root *root, const char *vf, bool force, GvError *err) {
        unsigned cur, mine;
        if (!vf_has_vgpu(root, vf) || vf_current(root, vf, &cur) < 0)
                return gv_error_set(err, -ENODEV, vf, "remove", "%s is not a VF with NVIDIA vGPU support", vf);
        int r = state_read(root, vf, &mine, NULL);
        if (cur == 0) {
                if (r >= 0)
                        (void)root_write_file(root, NULL, VENDOR_VGPU_STATE_DIR "/%s", vf);
                return gv_error_set(err, -ENOENT, vf, "remove", "%s carries no vGPU type", vf);
        }
        if (r < 0 && !force)
                return gv_error_take(err, -EPERM, vf, "refuse", GV_HINT_FORCE_CLEAR,
                                     strdup_printf("%s carries vGPU type %u, which gpuvirt did not set: not clearing it",
                                                   vf, cur));
        if (r >= 0 && mine != cur && !force)
                return gv_error_take(err, -EPERM, vf, "refuse", GV_HINT_FORCE_CLEAR,
                                     strdup_printf("%s carries vGPU type %u, not type %u that gpuvirt set: someone "
                                                   "changed it; not clearing it",
                                                   vf, cur, mine));
        _cleanup_free_ char *busy = sriov_vf_busy(root, vf);
        if (busy && strstr(busy, "held open") && !force)
                return gv_error_take(err, -EBUSY, vf, "refuse", GV_HINT_FORCE_BUSY,
                                     strdup_printf("%s is in use: %s; stop the VM first", vf, busy));
        r = root_write(root, "0", "sys/bus/pci/devices/%s/nvidia/current_vgpu_type", vf);
        if (r < 0) {
                _cleanup_free_ char *et = errno_describe(r);
                return gv_error_set(err, r, vf, "current_vgpu_type", "clearing the vGPU type of %s failed: %s", vf,
                                    strna(et));
        }
        (void)root_write_file(root, NULL, VENDOR_VGPU_STATE_DIR "/%s", vf);
        return 0;
}

/* ---- definitions ---- */

int vendor_vgpu_define(Root *root, const char *vf, const char *pf, unsigned type, bool autostart) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "pf", json_object_new_string(pf));
        json_object_object_add(o, "type", json_object_new_int((int)type));
        json_object_object_add(o, "start", json_object_new_string(autostart ? "auto" : "manual"));
        int r = state_write_json(root, o, VENDOR_VGPU_PERSIST_DIR "/%s", vf);
        json_object_put(o);
        return r;
}

int vendor_vgpu_undefine(Root *root, const char *vf) {
        return root_write_file(root, NULL, VENDOR_VGPU_PERSIST_DIR "/%s", vf);
}

static int def_read(Root *root, const char *vf, char **ret_pf, unsigned *ret_type, char **ret_start,
                    char **ret_error) {
        json_object *o = NULL;
        VgpuRecord rec = {};
        _cleanup_(gv_error_done) GvError e = {};
        int r = state_read_record(root, def_fields, &rec, &o, &e, VENDOR_VGPU_PERSIST_DIR "/%s", vf);
        *ret_error = TAKE_PTR(e.message);
        if (r < 0)
                return r;
        _cleanup_free_ char *pf = strdup(rec.pf), *start = strdup(rec.start ?: "manual");
        json_object_put(o);
        if (!pf || !start)
                return -ENOMEM;
        *ret_type = rec.type;
        if (ret_pf)
                *ret_pf = TAKE_PTR(pf);
        if (ret_start)
                *ret_start = TAKE_PTR(start);
        return 0;
}

int vendor_vgpu_start(Root *root, const char *vf, GvError *err) {
        unsigned type, cur;
        _cleanup_free_ char *pf = NULL;
        _cleanup_free_ char *bad = NULL;
        int r = def_read(root, vf, &pf, &type, NULL, &bad);
        if (r < 0)
                return bad ? gv_error_take(err, r, vf, "definition", GV_HINT_NONE, TAKE_PTR(bad))
                           : gv_error_set(err, r, vf, "definition", "cannot read " VENDOR_VGPU_PERSIST_DIR "/%s: %s", vf,
                                          errno_message(r));
        if (!vf_has_vgpu(root, vf) || vf_current(root, vf, &cur) < 0)
                return gv_error_set(err, -ENODEV, vf, "start",
                                    "%s is not a VF with NVIDIA vGPU support (are the VFs enabled?)", vf);
        if (cur == type) {
                unsigned mine;
                if (state_read(root, vf, &mine, NULL) < 0)
                        (void)state_write(root, vf, pf, type, NULL);
                return 1;
        }
        if (cur != 0)
                return gv_error_set(err, -EBUSY, vf, "start", "%s carries vGPU type %u, not the defined type %u", vf, cur,
                                    type);
        char v[16];
        snprintf(v, sizeof v, "%u", type);
        r = root_write(root, v, "sys/bus/pci/devices/%s/nvidia/current_vgpu_type", vf);
        if (r < 0) {
                _cleanup_free_ char *et = errno_describe(r);
                return gv_error_set(err, r, vf, "current_vgpu_type", "writing type %u to %s failed: %s", type, vf,
                                    strna(et));
        }
        r = state_write(root, vf, pf, type, NULL);
        if (r < 0) {
                (void)root_write(root, "0", "sys/bus/pci/devices/%s/nvidia/current_vgpu_type", vf);
                return gv_error_set(err, r, vf, "record", "cannot record the vGPU of %s; type cleared again", vf);
        }
        return 0;
}

/* ---- listing ---- */

void vendor_vgpu_units_free(VendorVgpuUnit *u, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(u[i].type_name);
                free(u[i].start);
                free(u[i].held_by);
        }
        free(u);
}

static VendorVgpuUnit *unit_get(VendorVgpuUnit **u, size_t *n, const char *vf) {
        for (size_t i = 0; i < *n; i++)
                if (streq((*u)[i].vf, vf))
                        return &(*u)[i];
        VendorVgpuUnit *nu = realloc(*u, (*n + 1) * sizeof **u);
        if (!nu)
                return NULL;
        *u = nu;
        VendorVgpuUnit *x = &nu[(*n)++];
        *x = (VendorVgpuUnit){.iommu_group = -1};
        snprintf(x->vf, sizeof x->vf, "%s", vf);
        return x;
}

int vendor_vgpu_units(Root *root, VendorVgpuUnit **ret, size_t *ret_n) {
        _cleanup_pci_host_free_ PciHost *h = NULL;
        /* declared before the first 'goto oom': the cleanups must never see them uninitialized */
        _cleanup_free_ char *dir = NULL;
        _cleanup_strv_free_ char **defs = NULL;
        /* vendor vGPUs live on NVIDIA VFs, which the GPU scan reads in full (has_vendor_vgpu): not every device */
        int r = pci_host_scan_gpus(root, &h);
        if (r < 0)
                return r;
        VendorVgpuUnit *u = NULL;
        size_t n = 0;
        for (size_t i = 0; i < h->n_devices; i++) {
                const PciDevice *d = &h->devices[i];
                unsigned cur;
                if (!d->has_vendor_vgpu || vf_current(root, d->addr, &cur) < 0 || cur == 0)
                        continue;
                VendorVgpuUnit *x = unit_get(&u, &n, d->addr);
                if (!x)
                        goto oom;
                snprintf(x->pf, sizeof x->pf, "%s", d->physfn ?: "");
                x->type = cur;
                x->active = true;
                unsigned mine;
                char *name = NULL;
                if (state_read(root, d->addr, &mine, &name) >= 0 && mine == cur) {
                        x->managed = true;
                        x->type_name = name;
                } else
                        free(name);
                x->iommu_group = d->iommu_group;
                if (d->iommu_group >= 0)
                        x->held_by = vfio_group_holders(root, d->iommu_group);
        }
        dir = root_path(root, VENDOR_VGPU_PERSIST_DIR);
        if (dir && dir_list(dir, &defs) >= 0)
                for (char **e = defs; *e; e++) {
                        PciAddr a;
                        if (pci_addr_parse(*e, &a) < 0)
                                continue;
                        unsigned type;
                        _cleanup_free_ char *pf = NULL, *start = NULL, *bad = NULL;
                        if (def_read(root, *e, &pf, &type, &start, &bad) < 0) {
                                log_debug("Ignoring the vGPU definition of %s: %s", *e, strna(bad));
                                continue;
                        }
                        VendorVgpuUnit *x = unit_get(&u, &n, *e);
                        if (!x)
                                goto oom;
                        x->defined = true;
                        free(x->start);
                        x->start = TAKE_PTR(start);
                        if (!x->active) {
                                x->type = type;
                                snprintf(x->pf, sizeof x->pf, "%s", pf ?: "");
                        }
                }
        *ret = u;
        *ret_n = n;
        return 0;
oom:
        vendor_vgpu_units_free(u, n);
        return -ENOMEM;
}
