/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/jsonfile.h"
#include "basic/log.h"
#include "basic/yamldoc.h"
#include "k8s/cdi.h"

#define CDI_SPEC_SIZE_MAX (4 * 1024 * 1024)

static const char *const cdi_dirs[] = {"etc/cdi", "var/run/cdi"};

/* CDI's rules (the spec's parser): a vendor and a class are letters, digits, '_', '-' and '.', starting with a
 * letter and ending with a letter or digit; a device name may hold ':' too and starts with a letter or digit. */
static bool cdi_word_valid(const char *s, bool device) {
        if (isempty(s) || !(device ? isalnum((unsigned char) s[0]) : isalpha((unsigned char) s[0])) ||
            !isalnum((unsigned char) s[strlen(s) - 1]))
                return false;
        for (const char *c = s; *c; c++)
                if (!isalnum((unsigned char) *c) && !strchr(device ? "_-.:" : "_-.", *c))
                        return false;
        return true;
}

bool cdi_kind_valid(const char *kind) {
        const char *slash = kind ? strchr(kind, '/') : NULL;
        if (!slash)
                return false;
        _cleanup_free_ char *vendor = strndup(kind, (size_t) (slash - kind));
        return vendor && cdi_word_valid(vendor, false) && cdi_word_valid(slash + 1, false);
}

bool cdi_device_name_valid(const char *name) {
        return cdi_word_valid(name, true);
}

static int push_name(char ***l, size_t *n, const char *path, const char *kind, size_t i, const char *name,
                     GvError *err) {
        if (!cdi_device_name_valid(name))
                return gv_error_set(err, -EINVAL, NULL, "parse", "%s: device %zu: %s", path, i,
                                    name ? "the name is not a CDI device name" : "no name");
        return strv_push(l, n, strdup_printf("%s=%s", kind, name));
}

static int bad_kind(const char *path, GvError *err) {
        return gv_error_set(err, -EINVAL, NULL, "parse", "%s: kind is not a CDI vendor/class", path);
}

static int read_json(const char *path, char ***l, size_t *n, GvError *err) {
        _cleanup_json_ json_object *o = NULL;
        int r = json_load_strict(path, path, CDI_SPEC_SIZE_MAX, &o, err);
        if (r < 0)
                return r;
        json_object *kind, *devs;
        if (!json_object_object_get_ex(o, "kind", &kind) || !json_object_object_get_ex(o, "devices", &devs) ||
            !json_object_is_type(devs, json_type_array))
                return gv_error_set(err, -EINVAL, NULL, "parse", "%s: no kind or devices", path);
        if (!json_object_is_type(kind, json_type_string) || !cdi_kind_valid(json_object_get_string(kind)))
                return bad_kind(path, err);
        for (size_t i = 0; i < json_object_array_length(devs); i++) {
                json_object *d = json_object_array_get_idx(devs, i), *name = NULL;
                if (json_object_is_type(d, json_type_object))
                        (void) json_object_object_get_ex(d, "name", &name);
                r = push_name(l, n, path, json_object_get_string(kind), i,
                              json_object_is_type(name, json_type_string) ? json_object_get_string(name) : NULL, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

static const YNode *ymap_get(const YNode *m, const char *key) {
        if (!m || m->type != YNODE_MAPPING)
                return NULL;
        YNODE_FOREACH_PAIR(m, k, v)
                if (streq(ynode_scalar(k) ?: "", key))
                        return v;
        return NULL;
}

static int read_yaml(const char *path, char ***l, size_t *n, GvError *err) {
        _cleanup_ydoc_free_ YDoc *d = NULL;
        int r = ydoc_load(path, path, CDI_SPEC_SIZE_MAX, &d, err);
        if (r < 0)
                return r;
        const YNode *top = ydoc_root(d), *devs = ymap_get(top, "devices");
        const char *kind = ynode_scalar(ymap_get(top, "kind"));
        if (!ymap_get(top, "kind") || !devs || devs->type != YNODE_SEQUENCE)
                return gv_error_set(err, -EINVAL, NULL, "parse", "%s: no kind or devices", path);
        if (!cdi_kind_valid(kind))
                return bad_kind(path, err);
        size_t i = 0;
        YNODE_FOREACH_ITEM(devs, it) {
                r = push_name(l, n, path, kind, i++, ynode_scalar(ymap_get(it, "name")), err);
                if (r < 0)
                        return r;
        }
        return 0;
}

int cdi_spec_names(const char *path, char ***l, size_t *n, GvError *err) {
        size_t n0 = *n;
        int r = endswith(path, ".json") ? read_json(path, l, n, err) : read_yaml(path, l, n, err);
        if (r < 0) /* all or nothing: drop what this spec added */
                for (; *n > n0; (*n)--) {
                        free((*l)[*n - 1]);
                        (*l)[*n - 1] = NULL;
                }
        return r;
}

static int compare_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int cdi_device_names(Root *root, char ***ret) {
        _cleanup_strv_free_ char **l = calloc(1, sizeof(char *));
        size_t n = 0;
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(cdi_dirs); i++) {
                _cleanup_free_ char *dir = root_path(root, "%s", cdi_dirs[i]);
                _cleanup_strv_free_ char **files = NULL;
                if (!dir)
                        return -ENOMEM;
                if (dir_list(dir, &files) < 0)
                        continue; /* no such directory: no specs there */
                for (size_t j = 0; files[j]; j++) {
                        _cleanup_free_ char *path = strdup_printf("%s/%s", dir, files[j]);
                        if (!path)
                                return -ENOMEM;
                        if (!endswith(files[j], ".json") && !endswith(files[j], ".yaml") && !endswith(files[j], ".yml"))
                                continue;
                        GvError err = {};
                        int r = cdi_spec_names(path, &l, &n, &err);
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0)
                                log_warning("Ignoring the CDI spec %s", gv_error_message(&err));
                        gv_error_done(&err);
                }
        }
        if (n > 0)
                qsort(l, n, sizeof(char *), compare_str);
        *ret = TAKE_PTR(l);
        return 0;
}
