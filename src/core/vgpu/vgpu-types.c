/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/json-util.h"
#include "core/vgpu/vendor-vgpu.h"
#include "core/vgpu/vgpu-types.h"

void mdev_types_free(MdevType *t, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(t[i].id);
                free(t[i].name);
                free(t[i].description);
                free(t[i].device_api);
        }
        free(t);
}

/* Value of "key=VALUE" in a comma separated NVIDIA description. */
static bool desc_field(const char *desc, const char *key, long *ret) {
        size_t kl = strlen(key);
        for (const char *p = desc; (p = strstr(p, key)); p += kl) {
                if ((p != desc && p[-1] != ' ' && p[-1] != ',') || p[kl] != '=')
                        continue;
                char *end;
                long v = strtol(p + kl + 1, &end, 10);
                if (end == p + kl + 1)
                        return false;
                if (*end == 'G')
                        v *= 1024;
                *ret = v;
                return true;
        }
        return false;
}

int mdev_types_read(Root *root, const char *parent_syspath, MdevType **ret, size_t *ret_n) {
        _cleanup_free_ char *dir = root_path(root, "%s/mdev_supported_types", parent_syspath);
        if (!dir)
                return -ENOMEM;
        _cleanup_strv_free_ char **ids = NULL;
        int n = dir_list(dir, &ids);
        if (n < 0)
                return n;
        MdevType *t = calloc((size_t)n ?: 1, sizeof *t);
        if (!t)
                return -ENOMEM;
        size_t k = 0;
        for (char **id = ids; *id; id++) {
                MdevType *x = &t[k];
                _cleanup_free_ char *p = strdup_printf("%s/%s", dir, *id);
                _cleanup_free_ char *ai = NULL;
                if (!p)
                        goto oom;
                x->id = strdup(*id);
                if (!x->id)
                        goto oom;
                k++;
                _cleanup_free_ char *pn = strdup_printf("%s/name", p), *pd = strdup_printf("%s/description", p),
                                    *pa = strdup_printf("%s/device_api", p),
                                    *pi = strdup_printf("%s/available_instances", p);
                if (!pn || !pd || !pa || !pi)
                        goto oom;
                (void)read_attr(pn, &x->name);
                (void)read_attr(pd, &x->description);
                (void)read_attr(pa, &x->device_api);
                x->available_instances = -1;
                if (read_attr(pi, &ai) == 0)
                        (void)parse_int(ai, &x->available_instances);
                long v;
                x->framebuffer_mb = x->description && desc_field(x->description, "framebuffer", &v) ? v : -1;
                x->max_instances = x->description && desc_field(x->description, "max_instance", &v) ? (int)v : -1;
        }
        *ret = t;
        *ret_n = k;
        return 0;
oom:
        mdev_types_free(t, k);
        return -ENOMEM;
}

void vendor_vgpu_types_free(VendorVgpuType *t, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(t[i].name);
        free(t);
}

int vendor_vgpu_types_read(Root *root, const char *vf_syspath, VendorVgpuType **ret, size_t *ret_n) {
        _cleanup_free_ char *text = NULL;
        int r = root_read_attr(root, &text, "%s/nvidia/creatable_vgpu_types", vf_syspath);
        if (r < 0)
                return r;
        VendorVgpuType *t = NULL;
        size_t n = 0;
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *colon = strchr(line, ':');
                if (!colon)
                        continue; /* a header line ("ID    : vGPU Name") or garbage */
                *colon = '\0';
                uint32_t id;
                if (parse_u32(strip(line), 10, &id) < 0)
                        continue;
                VendorVgpuType *nt = realloc(t, (n + 1) * sizeof *t);
                if (!nt)
                        goto oom;
                t = nt;
                t[n].id = id;
                t[n].name = strdup(strip(colon + 1));
                if (!t[n].name)
                        goto oom;
                n++;
        }
        *ret = t;
        *ret_n = n;
        return 0;
oom:
        vendor_vgpu_types_free(t, n);
        return -ENOMEM;
}

int vendor_vgpu_current(Root *root, const char *vf_syspath, unsigned *ret) {
        _cleanup_free_ char *s = NULL;
        int r = root_read_attr(root, &s, "%s/nvidia/current_vgpu_type", vf_syspath);
        if (r < 0)
                return r;
        uint32_t v;
        r = parse_u32(s, 0, &v);
        if (r < 0)
                return r;
        *ret = v;
        return 0;
}

json_object *mdev_type_json(const MdevType *t) {
        json_object *x = json_object_new_object();
        json_object_object_add(x, "id", json_object_new_string(t->id));
        json_object_object_add(x, "name", json_string_or_null(t->name));
        json_object_object_add(x, "description", json_string_or_null(t->description));
        json_object_object_add(x, "device_api", json_string_or_null(t->device_api));
        json_object_object_add(x, "available_instances",
                               t->available_instances >= 0 ? json_object_new_int(t->available_instances) : NULL);
        json_object_object_add(x, "framebuffer_mb", t->framebuffer_mb >= 0 ? json_object_new_int64(t->framebuffer_mb) : NULL);
        json_object_object_add(x, "max_instances", t->max_instances >= 0 ? json_object_new_int(t->max_instances) : NULL);
        return x;
}

bool vgpu_type_is(const char *id, const char *name, const char *type) {
        return streq(id, type) || (name && strcasecmp(name, type) == 0);
}

void vgpu_type_ref_done(VgpuTypeRef *t) {
        free(t->id);
        free(t->name);
        *t = (VgpuTypeRef){};
}

static int ref_set(VgpuTypeRef *ret, VgpuTypeKind kind, const char *id, const char *name, int max) {
        *ret = (VgpuTypeRef){.kind = kind, .id = strdup(id), .name = name ? strdup(name) : NULL, .max_instances = max};
        if (!ret->id || (name && !ret->name)) {
                vgpu_type_ref_done(ret);
                return -ENOMEM;
        }
        return 0;
}

const VendorVgpuType *vendor_vgpu_type_find(const VendorVgpuType *t, size_t n, const char *type) {
        for (size_t i = 0; i < n; i++) {
                char id[16];
                snprintf(id, sizeof id, "%u", t[i].id);
                if (vgpu_type_is(id, t[i].name, type))
                        return &t[i];
        }
        return NULL;
}

/* The vendor types a VF offers, or a PF's free VFs offer (vendor_vgpu_types()). */
static int vendor_types_offered(Root *root, const char *parent, VendorVgpuType **ret, size_t *ret_n) {
        if (root_exists(root, "sys/bus/pci/devices/%s/nvidia/creatable_vgpu_types", parent)) {
                _cleanup_free_ char *sys = strdup_printf("sys/bus/pci/devices/%s", parent);
                return sys ? vendor_vgpu_types_read(root, sys, ret, ret_n) : -ENOMEM;
        }
        VendorVgpuAvail *a = NULL;
        size_t n = 0;
        int r = vendor_vgpu_types(root, parent, &a, &n);
        if (r < 0)
                return r;
        VendorVgpuType *t = calloc(n ?: 1, sizeof *t);
        if (!t) {
                vendor_vgpu_avail_free(a, n);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                t[i] = (VendorVgpuType){.id = a[i].id, .name = TAKE_PTR(a[i].name)};
        vendor_vgpu_avail_free(a, n);
        *ret = t;
        *ret_n = n;
        return 0;
}

int vgpu_type_resolve(Root *root, const char *parent, const char *type, VgpuTypeRef *ret, GvError *err) {
        int r = -ENOENT;
        bool vendor = true; /* a vendor vGPU parent (PF or VF), not an mdev parent */
        if (root_exists(root, "sys/class/mdev_bus/%s/mdev_supported_types", parent)) {
                vendor = false;
                _cleanup_free_ char *sys = strdup_printf("sys/class/mdev_bus/%s", parent);
                MdevType *t = NULL;
                size_t n = 0;
                if (!sys)
                        return -ENOMEM;
                r = mdev_types_read(root, sys, &t, &n);
                for (size_t i = 0; r >= 0 && i < n; i++)
                        if (vgpu_type_is(t[i].id, t[i].name, type)) {
                                r = ref_set(ret, VGPU_TYPE_MDEV, t[i].id, t[i].name, t[i].max_instances);
                                mdev_types_free(t, n);
                                return r;
                        }
                mdev_types_free(t, n);
                r = r < 0 ? r : -ENOENT;
        } else if (root_exists(root, "sys/bus/pci/devices/%s/nvidia/creatable_vgpu_types", parent) ||
                   vendor_vgpu_is_parent(root, parent)) {
                VendorVgpuType *t = NULL;
                size_t n = 0;
                r = vendor_types_offered(root, parent, &t, &n);
                const VendorVgpuType *m = r >= 0 ? vendor_vgpu_type_find(t, n, type) : NULL;
                if (m) {
                        char id[16];
                        snprintf(id, sizeof id, "%u", m->id);
                        r = ref_set(ret, VGPU_TYPE_VENDOR, id, m->name, -1);
                        vendor_vgpu_types_free(t, n);
                        return r;
                }
                vendor_vgpu_types_free(t, n);
                r = r < 0 ? r : -ENOENT;
        } else
                return gv_error_set(err, -ENODEV, parent, NULL,
                                    "%s has no vGPU types: no mdev types (is the vGPU host driver loaded?) and no "
                                    "VFs with NVIDIA vGPU (see 'gpuvirt vgpu types')",
                                    parent);
        /* A GPU running one vendor type offers only that one on its free VFs: a numeric id is still a type
         * id (vendor_vgpu_create() says which type runs); a name cannot be told from what is offered now. */
        uint32_t num;
        if (r == -ENOENT && vendor && parse_u32(type, 10, &num) >= 0 && num > 0) {
                char id[16];
                snprintf(id, sizeof id, "%u", num);
                return ref_set(ret, VGPU_TYPE_VENDOR, id, NULL, -1);
        }
        if (r == -ENOENT)
                return gv_error_set(err, r, parent, NULL,
                                    "%s has no vGPU type '%s' (an id or a name; see 'gpuvirt vgpu types %s')%s", parent,
                                    type, parent, vendor ? "; a GPU running a vendor vGPU type offers only that one" : "");
        if (r < 0 && r != -ENOMEM)
                return gv_error_set(err, r, parent, NULL, "cannot read the vGPU types of %s: %s", parent,
                                    errno_message(r));
        return r;
}
