/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <json-c/json.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/jsonfile.h"
#include "basic/log.h"
#include "core/vgpu/mdev.h"
#include "core/host/pci.h"
#include "core/passthrough/vfio.h"

int mdev_uuid_parse(const char *s, char ret[static MDEV_UUID_STRLEN]) {
        if (!s || strlen(s) != 36)
                return -EINVAL;
        char u[MDEV_UUID_STRLEN];
        for (size_t i = 0; i < 36; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return -EINVAL;
                } else if (!isxdigit((unsigned char)s[i]))
                        return -EINVAL;
                u[i] = (char)tolower((unsigned char)s[i]);
        }
        u[36] = '\0';
        memcpy(ret, u, sizeof u);
        return 0;
}

bool mdev_uuid_is_canonical(const char *s) {
        char u[MDEV_UUID_STRLEN];
        return mdev_uuid_parse(s, u) >= 0 && streq(u, s);
}

int mdev_definition_name_parse(const char *name, char ret[static MDEV_UUID_STRLEN]) {
        char buf[MDEV_UUID_STRLEN];
        const char *s = startswith(name, "urn:uuid:") ?: name;
        size_t l = strlen(s);
        if (s == name && l == 38 && s[0] == '{' && s[37] == '}') {
                memcpy(buf, s + 1, 36);
                buf[36] = '\0';
                s = buf;
                l = 36;
        }
        if (l == 36)
                return mdev_uuid_parse(s, ret);
        if (l != 32 || s != name)
                return -EINVAL;
        /* the simple form: 32 digits, hyphens where the canonical form has them */
        size_t k = 0;
        for (size_t i = 0; i < 32; i++) {
                if (i == 8 || i == 12 || i == 16 || i == 20)
                        buf[k++] = '-';
                if (s[i] == '-')
                        return -EINVAL;
                buf[k++] = s[i];
        }
        buf[k] = '\0';
        return mdev_uuid_parse(buf, ret);
}

int mdev_uuid_generate(char ret[static MDEV_UUID_STRLEN]) {
        uint8_t b[16];
        if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
                return negative_errno();
        b[6] = (b[6] & 0x0f) | 0x40; /* version 4 */
        b[8] = (b[8] & 0x3f) | 0x80; /* RFC 4122 variant */
        snprintf(ret, MDEV_UUID_STRLEN, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                 b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
        return 0;
}

static bool name_valid(const char *s, size_t max) {
        if (isempty(s) || strlen(s) > max || streq(s, ".") || streq(s, ".."))
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum((unsigned char)*p) && !strchr("_-.:", *p))
                        return false;
        return true;
}

/* An attribute of the device, possibly in a subdirectory ("nvidia/vgpu_params"); no "..", no absolute path. */
static bool attr_name_valid(const char *s) {
        if (isempty(s) || strlen(s) > 255 || s[0] == '/')
                return false;
        _cleanup_free_ char *c = strdup(s);
        if (!c)
                return false;
        char *save = NULL;
        for (char *p = strtok_r(c, "/", &save); p; p = strtok_r(NULL, "/", &save))
                if (!name_valid(p, 255) || strchr(p, ':'))
                        return false;
        return !endswith(s, "/") && !strstr(s, "//");
}

bool mdev_type_valid(const char *s) {
        return name_valid(s, 64) && !strchr(s, ':');
}

int mdev_parent_resolve(Root *root, const char *input, char **ret) {
        char *name = NULL;
        if (pci_addr_canonical(input, &name) < 0) {
                if (!name_valid(input, 64))
                        return -EINVAL;
                name = strdup(input);
                if (!name)
                        return -ENOMEM;
        }
        if (!root_exists(root, "sys/class/mdev_bus/%s/mdev_supported_types", name)) {
                free(name);
                return -ENODEV;
        }
        *ret = name;
        return 0;
}

void mdev_attrs_free(MdevAttr *a, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(a[i].name);
                free(a[i].value);
        }
        free(a);
}

static void device_done(MdevDevice *d) {
        free(d->parent);
        free(d->type);
        free(d->start);
        mdev_attrs_free(d->attrs, d->n_attrs);
        free(d->held_by);
        free(d->def_type);
        free(d->def_name);
}

void mdev_list_free(MdevDevice *l, size_t n) {
        for (size_t i = 0; i < n; i++)
                device_done(&l[i]);
        free(l);
}

/* ---- definitions (mdevctl's JSON) ---- */

typedef struct DefinitionRecord {
        const char *type, *start;
        json_object *attrs;
} DefinitionRecord;

static bool is_start(const char *s) {
        return streq(s, "auto") || streq(s, "manual");
}

static const JsonField definition_fields[] = {
        {"mdev_type", JSON_KIND_STRING, JSON_MANDATORY, offsetof(DefinitionRecord, type), .valid = mdev_type_valid,
         .what = "an mdev type id"},
        {"start", JSON_KIND_STRING, 0, offsetof(DefinitionRecord, start), .valid = is_start, .what = "auto or manual"},
        {"attrs", JSON_KIND_ARRAY, JSON_NULLABLE, offsetof(DefinitionRecord, attrs)},
        {},
};

int mdev_definition_parse(const char *file, const char *text, size_t len, char **ret_type, char **ret_start,
                          MdevAttr **ret_attrs, size_t *ret_n, GvError *err) {
        json_object *o = NULL;
        DefinitionRecord rec = {.start = "manual"};
        MdevAttr *attrs = NULL;
        size_t n = 0;
        int r = json_parse_strict(file, text, len, &o, err);
        if (r == -EINVAL && err) /* not JSON: a malformed definition */
                err->error = EBADMSG;
        if (r < 0)
                return r == -EINVAL ? -EBADMSG : r;
        /* mdevctl's format: keys gpuvirt does not use are left alone */
        r = json_dispatch(file, o, definition_fields, JSON_DISPATCH_ALLOW_UNKNOWN, &rec, err);
        if (r < 0)
                goto out;
        size_t k = rec.attrs ? json_object_array_length(rec.attrs) : 0;
        attrs = calloc(k ?: 1, sizeof *attrs);
        if (!attrs) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < k; i++) {
                json_object *e = json_object_array_get_idx(rec.attrs, i);
                r = -EBADMSG;
                if (!json_object_is_type(e, json_type_object) || json_object_object_length(e) != 1) {
                        gv_error_set(err, r, NULL, "parse", "%s: attribute %zu must be one {\"name\": \"value\"}",
                                     file, i);
                        goto out;
                }
                json_object_object_foreach(e, key, val) {
                        if (!attr_name_valid(key) || !json_object_is_type(val, json_type_string) ||
                            strlen(json_object_get_string(val)) != (size_t)json_object_get_string_len(val)) {
                                gv_error_set(err, r, NULL, "parse",
                                             "%s: attribute %zu: '%s' is not an attribute of the device with a string "
                                             "value",
                                             file, i, key);
                                goto out;
                        }
                        attrs[n].name = strdup(key);
                        attrs[n].value = strdup(json_object_get_string(val));
                        n++;
                        if (!attrs[n - 1].name || !attrs[n - 1].value) {
                                r = -ENOMEM;
                                goto out;
                        }
                }
        }
        char *t = strdup(rec.type), *s = strdup(rec.start);
        if (!t || !s) {
                free(t);
                free(s);
                r = -ENOMEM;
                goto out;
        }
        *ret_type = t;
        *ret_start = s;
        *ret_attrs = TAKE_PTR(attrs);
        *ret_n = n;
        n = 0;
        r = 0;
out:
        mdev_attrs_free(attrs, n);
        json_object_put(o);
        return r;
}

int mdev_define(Root *root, const char *parent, const char *uuid, const char *type, bool autostart,
                const MdevAttr *attrs, size_t n_attrs) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "mdev_type", json_object_new_string(type));
        json_object_object_add(o, "start", json_object_new_string(autostart ? "auto" : "manual"));
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < n_attrs; i++) {
                json_object *e = json_object_new_object();
                json_object_object_add(e, attrs[i].name, json_object_new_string(attrs[i].value));
                json_object_array_add(a, e);
        }
        json_object_object_add(o, "attrs", a);
        _cleanup_free_ char *text = strdup_printf(
                "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                                  JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
        if (!text)
                return -ENOMEM;
        return root_write_file(root, text, MDEVCTL_DIR "/%s/%s", parent, uuid);
}

int mdev_undefine(Root *root, const char *parent, const char *uuid) {
        int r = root_write_file(root, NULL, MDEVCTL_DIR "/%s/%s", parent, uuid);
        if (r < 0)
                return r;
        /* the same UUID under another name mdevctl reads ("ABCD...", 32 digits): it would start it at boot */
        _cleanup_free_ char *pd = root_path(root, MDEVCTL_DIR "/%s", parent);
        _cleanup_strv_free_ char **files = NULL;
        if (pd && dir_list(pd, &files) >= 0)
                for (char **f = files; *f && r >= 0; f++) {
                        char u[MDEV_UUID_STRLEN];
                        if (!streq(*f, uuid) && mdev_definition_name_parse(*f, u) == 0 && streq(u, uuid))
                                r = root_write_file(root, NULL, MDEVCTL_DIR "/%s/%s", parent, *f);
                }
        if (r < 0 || root_dry_run(root))
                return r;
        /* mdevctl leaves empty parent directories; so do we, but drop one we emptied if we can */
        _cleanup_free_ char *dir = root_path(root, MDEVCTL_DIR "/%s", parent);
        if (dir)
                (void)rmdir(dir);
        return 0;
}

/* ---- listing ---- */

static MdevDevice *list_find(MdevDevice *l, size_t n, const char *uuid) {
        for (size_t i = 0; i < n; i++)
                if (streq(l[i].uuid, uuid))
                        return &l[i];
        return NULL;
}

static int list_add(MdevDevice **l, size_t *n, const char *uuid, MdevDevice **ret) {
        MdevDevice *nl = realloc(*l, (*n + 1) * sizeof **l);
        if (!nl)
                return -ENOMEM;
        *l = nl;
        MdevDevice *d = &nl[(*n)++];
        *d = (MdevDevice){.iommu_group = -1};
        memcpy(d->uuid, uuid, MDEV_UUID_STRLEN);
        *ret = d;
        return 0;
}

static int cmp_dev(const void *a, const void *b) {
        const MdevDevice *x = a, *y = b;
        int c = strcmp(x->parent ?: "", y->parent ?: "");
        return c ?: strcmp(x->uuid, y->uuid);
}

static int read_active(Root *root, MdevDevice **l, size_t *n) {
        _cleanup_free_ char *dir = root_path(root, "sys/bus/mdev/devices");
        _cleanup_strv_free_ char **names = NULL;
        if (!dir)
                return -ENOMEM;
        if (dir_list(dir, &names) < 0)
                return 0; /* no mdev core */
        for (char **e = names; *e; e++) {
                char uuid[MDEV_UUID_STRLEN];
                if (mdev_uuid_parse(*e, uuid) < 0)
                        continue;
                _cleanup_free_ char *link = strdup_printf("%s/%s", dir, *e);
                _cleanup_free_ char *target = NULL, *tl = NULL, *gl = NULL, *type = NULL, *g = NULL;
                if (!link)
                        return -ENOMEM;
                if (readlink_resolved(link, &target) < 0)
                        continue; /* went away meanwhile */
                char *slash = strrchr(target, '/');
                if (!slash)
                        continue;
                *slash = '\0';
                const char *pslash = strrchr(target, '/');
                MdevDevice *d;
                int r = list_add(l, n, uuid, &d);
                if (r < 0)
                        return r;
                d->active = true;
                d->parent = strdup(pslash ? pslash + 1 : target);
                tl = strdup_printf("%s/mdev_type", link);
                gl = strdup_printf("%s/iommu_group", link);
                if (!d->parent || !tl || !gl)
                        return -ENOMEM;
                if (readlink_base(tl, &type) >= 0)
                        d->type = TAKE_PTR(type);
                if (readlink_base(gl, &g) >= 0 && parse_int(g, &d->iommu_group) >= 0)
                        d->held_by = vfio_group_holders(root, d->iommu_group);
                else
                        d->iommu_group = -1;
        }
        return 0;
}

static int read_defined(Root *root, MdevDevice **l, size_t *n) {
        _cleanup_free_ char *dir = root_path(root, MDEVCTL_DIR);
        _cleanup_strv_free_ char **parents = NULL;
        if (!dir)
                return -ENOMEM;
        if (dir_list(dir, &parents) < 0)
                return 0;
        for (char **p = parents; *p; p++) {
                if (streq(*p, "scripts.d"))
                        continue; /* mdevctl's callouts, not devices */
                _cleanup_free_ char *pd = strdup_printf("%s/%s", dir, *p);
                _cleanup_strv_free_ char **files = NULL;
                if (!pd)
                        return -ENOMEM;
                if (!dir_exists(pd) || dir_list(pd, &files) < 0)
                        continue;
                for (char **f = files; *f; f++) {
                        char uuid[MDEV_UUID_STRLEN];
                        if (mdev_definition_name_parse(*f, uuid) < 0)
                                continue; /* temp files, editor backups: mdevctl skips them too */
                        _cleanup_free_ char *fp = strdup_printf("%s/%s", pd, *f);
                        _cleanup_free_ char *text = NULL, *type = NULL, *start = NULL;
                        _cleanup_(gv_error_done) GvError bad = {};
                        MdevAttr *attrs = NULL;
                        size_t na = 0, len = 0;
                        if (!fp)
                                return -ENOMEM;
                        if (read_full(fp, JSON_FILE_SIZE_MAX, (void **)&text, &len) < 0 ||
                            mdev_definition_parse(fp, text, len, &type, &start, &attrs, &na, &bad) < 0) {
                                log_debug("Ignoring malformed mdevctl definition %s: %s", fp, strna(bad.message));
                                continue;
                        }
                        MdevDevice *d = list_find(*l, *n, uuid);
                        if (d && d->parent && !streq(d->parent, *p))
                                d = NULL; /* defined on another parent: a separate entry */
                        if (!d) {
                                int r = list_add(l, n, uuid, &d);
                                if (r < 0) {
                                        mdev_attrs_free(attrs, na);
                                        return r;
                                }
                                d->parent = strdup(*p);
                                if (!d->parent) {
                                        mdev_attrs_free(attrs, na);
                                        return -ENOMEM;
                                }
                        }
                        if (d->defined) {
                                /* two names for one UUID on this parent: the canonical one is mdevctl's */
                                if (!streq(*f, uuid)) {
                                        mdev_attrs_free(attrs, na);
                                        continue;
                                }
                                mdev_attrs_free(d->attrs, d->n_attrs);
                                d->attrs = NULL;
                                d->n_attrs = 0;
                                d->start = (free(d->start), NULL);
                                d->def_name = (free(d->def_name), NULL);
                                d->def_type = (free(d->def_type), NULL);
                        }
                        d->defined = true;
                        if (!streq(*f, uuid) && !(d->def_name = strdup(*f))) {
                                mdev_attrs_free(attrs, na);
                                return -ENOMEM;
                        }
                        d->start = TAKE_PTR(start);
                        d->attrs = attrs;
                        d->n_attrs = na;
                        if (!d->type)
                                d->type = TAKE_PTR(type);
                        else if (!streq(d->type, type))
                                d->def_type = TAKE_PTR(type);
                }
        }
        return 0;
}

int mdev_list(Root *root, MdevDevice **ret, size_t *ret_n) {
        MdevDevice *l = NULL;
        size_t n = 0;
        int r = read_active(root, &l, &n);
        if (r >= 0)
                r = read_defined(root, &l, &n);
        if (r < 0) {
                mdev_list_free(l, n);
                return r;
        }
        if (n > 0)
                qsort(l, n, sizeof *l, cmp_dev);
        *ret = l;
        *ret_n = n;
        return 0;
}

/* ---- create / remove ---- */

static int type_count(Root *root, const char *parent, const char *type) {
        _cleanup_free_ char *p = root_path(root, "sys/class/mdev_bus/%s/mdev_supported_types/%s/devices", parent, type);
        _cleanup_strv_free_ char **l = NULL;
        if (!p || dir_list(p, &l) < 0)
                return 0;
        return (int)strv_length(l);
}

static bool parent_is_nvidia(Root *root, const char *parent) {
        _cleanup_free_ char *v = NULL;
        uint32_t id;
        return root_read_attr(root, &v, "sys/class/mdev_bus/%s/vendor", parent) >= 0 && parse_u32(v, 16, &id) >= 0 &&
               id == PCI_VENDOR_NVIDIA;
}

/* The other type in use on an NVIDIA GPU (time-sliced vGPU runs one type at a time), or NULL. */
static char *nvidia_type_in_use(Root *root, const char *parent, const char *type) {
        _cleanup_free_ char *dir = root_path(root, "sys/class/mdev_bus/%s/mdev_supported_types", parent);
        _cleanup_strv_free_ char **types = NULL;
        if (!dir || dir_list(dir, &types) < 0)
                return NULL;
        for (char **t = types; *t; t++)
                if (!streq(*t, type) && type_count(root, parent, *t) > 0)
                        return strdup(*t);
        return NULL;
}

static char *create_message(Root *root, int r, const char *parent, const char *type, const char *uuid) {
        _cleanup_free_ char *et = errno_describe(r);
        switch (r) {
        case -EEXIST:
                return strdup_printf("UUID %s is already in use by a mediated device (UUIDs are unique across all "
                                     "parents and types; a device being removed keeps its UUID until it is closed): %s",
                                     uuid, et);
        case -EUSERS:
        case -ENOSPC:
                return strdup_printf("no instance of %s left on %s: %s; remove a vGPU of this type or choose a "
                                     "smaller type (see 'gpuvirt vgpu types %s')",
                                     type, parent, et, parent);
        case -EINVAL:
                if (parent_is_nvidia(root, parent))
                        return strdup_printf("the NVIDIA driver refused type %s on %s: %s; a GPU runs one vGPU type "
                                             "at a time, or the type needs a GPU mode (ECC, MIG) it is not in",
                                             type, parent, et);
                return strdup_printf("the driver of %s refused type %s: %s", parent, type, et);
        case -ENOENT:
                return strdup_printf("type %s does not exist on %s (see 'gpuvirt vgpu types %s')", type, parent, parent);
        default:
                return strdup_printf("creating a %s device on %s failed: %s", type, parent, et);
        }
}

/* Why the create of a type-TYPE device UUID on PARENT failed with r: err filled (step "create"), r returned. */
static int create_error(Root *root, GvError *err, int r, const char *parent, const char *type, const char *uuid) {
        return gv_error_take(err, r, parent, "create", GV_HINT_NONE, create_message(root, r, parent, type, uuid));
}

int mdev_create(Root *root, const char *parent, const char *type, const char *uuid, const MdevAttr *attrs,
                size_t n_attrs, GvError *err) {
        /* a PCI parent (a GPU) must answer on the bus; virtual parents (mbochs) have no address */
        PciAddr pa;
        if (pci_addr_parse(parent, &pa) == 0 && pci_device_require_alive(root, parent, err) < 0)
                return -ENODEV;
        if (!root_exists(root, "sys/class/mdev_bus/%s/mdev_supported_types", parent))
                return gv_error_set(err, -ENODEV, parent, "create",
                                    "%s is not a mediated device parent (no sys/class/mdev_bus/%s: the vGPU "
                                    "host driver is not loaded, or the device has no vGPU support)",
                                    parent, parent);
        if (!mdev_type_valid(type) || !root_exists(root, "sys/class/mdev_bus/%s/mdev_supported_types/%s", parent, type))
                return create_error(root, err, -ENOENT, parent, type, uuid);
        if (root_exists(root, "sys/bus/mdev/devices/%s", uuid))
                return create_error(root, err, -EEXIST, parent, type, uuid);
        if (parent_is_nvidia(root, parent)) {
                _cleanup_free_ char *other = nvidia_type_in_use(root, parent, type);
                if (other)
                        return gv_error_set(err, -EINVAL, parent, "create",
                                            "%s already runs vGPUs of type %s; NVIDIA time-sliced vGPU allows "
                                            "one type per GPU at a time: remove those first or use type %s",
                                            parent, other, other);
        }
        _cleanup_free_ char *avail = NULL;
        int n;
        if (root_read_attr(root, &avail, "sys/class/mdev_bus/%s/mdev_supported_types/%s/available_instances", parent,
                           type) >= 0 &&
            parse_int(avail, &n) >= 0 && n <= 0)
                return create_error(root, err, -EUSERS, parent, type, uuid);
        int r = root_write(root, uuid, "sys/class/mdev_bus/%s/mdev_supported_types/%s/create", parent, type);
        if (r < 0)
                return create_error(root, err, r, parent, type, uuid);
        for (size_t i = 0; i < n_attrs; i++) {
                r = root_write(root, attrs[i].value, "sys/bus/mdev/devices/%s/%s", uuid, attrs[i].name);
                if (r < 0) {
                        _cleanup_free_ char *et = errno_describe(r);
                        int k = root_write(root, "1", "sys/bus/mdev/devices/%s/remove", uuid);
                        return gv_error_set(err, r, uuid, attrs[i].name, "writing attribute %s=%s on %s failed: %s; %s",
                                            attrs[i].name, attrs[i].value, uuid, et,
                                            k < 0 ? "removing the device again failed too"
                                                  : "the device was removed again");
                }
        }
        return 0;
}

int mdev_remove(Root *root, const char *uuid, bool force, GvError *err) {
        if (!root_exists(root, "sys/bus/mdev/devices/%s", uuid))
                return gv_error_set(err, -ENOENT, uuid, "remove", "no active mediated device %s", uuid);
        _cleanup_free_ char *g = NULL, *gl = root_path(root, "sys/bus/mdev/devices/%s/iommu_group", uuid);
        int group;
        if (gl && readlink_base(gl, &g) >= 0 && parse_int(g, &group) >= 0) {
                _cleanup_free_ char *holders = vfio_group_holders(root, group);
                if (holders && !force)
                        return gv_error_take(err, -EBUSY, uuid, "remove", GV_HINT_FORCE_BUSY,
                                             strdup_printf("%s is in use: /dev/vfio/%d is held open by %s, and removal "
                                                           "waits until the VM lets go; stop the VM first",
                                                           uuid, group, holders));
        }
        int r = root_write(root, "1", "sys/bus/mdev/devices/%s/remove", uuid);
        if (r < 0) {
                _cleanup_free_ char *et = errno_describe(r);
                return gv_error_set(err, r, uuid, "remove", "removing %s failed: %s", uuid, strna(et));
        }
        return 0;
}
