/* SPDX-License-Identifier: LGPL-2.1-or-later */
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

static int push_name(char ***l, size_t *n, const char *kind, const char *name) {
        if (isempty(kind) || isempty(name) || strchr(kind, '=') || !strchr(kind, '/'))
                return 0;
        return strv_push(l, n, strdup_printf("%s=%s", kind, name));
}

static int read_json(const char *path, char ***l, size_t *n) {
        _cleanup_json_ json_object *o = NULL;
        GvError err = {};
        int r = json_load_strict(path, path, CDI_SPEC_SIZE_MAX, &o, &err);
        if (r < 0) {
                log_warning("Ignoring the CDI spec %s", gv_error_message(&err));
                gv_error_done(&err);
                return r == -ENOMEM ? r : 0;
        }
        json_object *kind, *devs;
        if (!json_object_object_get_ex(o, "kind", &kind) || !json_object_object_get_ex(o, "devices", &devs) ||
            !json_object_is_type(devs, json_type_array)) {
                log_warning("Ignoring the CDI spec %s: no kind or devices", path);
                return 0;
        }
        for (size_t i = 0; i < json_object_array_length(devs); i++) {
                json_object *name;
                if (json_object_object_get_ex(json_object_array_get_idx(devs, i), "name", &name) &&
                    json_object_is_type(name, json_type_string) &&
                    push_name(l, n, json_object_get_string(kind), json_object_get_string(name)) < 0)
                        return -ENOMEM;
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

static int read_yaml(const char *path, char ***l, size_t *n) {
        _cleanup_ydoc_free_ YDoc *d = NULL;
        GvError err = {};
        int r = ydoc_load(path, path, CDI_SPEC_SIZE_MAX, &d, &err);
        if (r < 0) {
                log_warning("Ignoring the CDI spec %s", gv_error_message(&err));
                gv_error_done(&err);
                return r == -ENOMEM ? r : 0;
        }
        const YNode *top = ydoc_root(d), *devs = ymap_get(top, "devices");
        const char *kind = ynode_scalar(ymap_get(top, "kind"));
        if (!kind || !devs || devs->type != YNODE_SEQUENCE) {
                log_warning("Ignoring the CDI spec %s: no kind or devices", path);
                return 0;
        }
        YNODE_FOREACH_ITEM(devs, it)
                if (push_name(l, n, kind, ynode_scalar(ymap_get(it, "name"))) < 0)
                        return -ENOMEM;
        return 0;
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
                        int r = 0;
                        if (endswith(files[j], ".json"))
                                r = read_json(path, &l, &n);
                        else if (endswith(files[j], ".yaml") || endswith(files[j], ".yml"))
                                r = read_yaml(path, &l, &n);
                        if (r < 0)
                                return r;
                }
        }
        if (n > 0)
                qsort(l, n, sizeof(char *), compare_str);
        *ret = TAKE_PTR(l);
        return 0;
}
