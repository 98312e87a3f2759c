/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "basic/jsonfile.h"
#include "basic/yamldoc.h"
#include "core/vgpu/mdev.h"
#include "k8s/config.h"

#define CONFIG_SIZE_MAX (64 * 1024)

void plugin_config_done(PluginConfig *c) {
        strv_free(c->create_mdev_types);
        free(c->mig_config);
        free(c->node_labels);
        c->create_mdev_types = NULL;
        c->mig_config = c->node_labels = NULL;
}

static int fail(GvError *err, const char *file, const YNode *n, const char *what) {
        return gv_error_take(err, -EINVAL, NULL, "parse", GV_HINT_NONE, ynode_error(file, n, "%s", what));
}

static int parse_bool(const char *file, const YNode *v, bool *ret, GvError *err) {
        const char *s = ynode_scalar(v);
        if (s && streq(s, "true"))
                *ret = true;
        else if (s && streq(s, "false"))
                *ret = false;
        else
                return fail(err, file, v, "expected true or false");
        return 0;
}

/* a relative path under the root, never leaving it */
static int parse_path(const char *file, const YNode *v, char **ret, GvError *err) {
        const char *s = ynode_scalar(v);
        if (isempty(s) || s[0] == '/' || strstr(s, "..") || !string_is_printable(s))
                return fail(err, file, v, "expected a relative path under the root (no '..')");
        char *d = strdup(s);
        if (!d)
                return -ENOMEM;
        free(*ret);
        *ret = d;
        return 0;
}

int plugin_config_load(Root *root, const char *file, PluginConfig *c, GvError *err) {
        _cleanup_free_ char *path = root_path(root, "%s", file);
        if (!path)
                return -ENOMEM;
        _cleanup_ydoc_free_ YDoc *d = NULL;
        int r = ydoc_load(path, path, CONFIG_SIZE_MAX, &d, err);
        if (r == -ENOENT) {
                gv_error_done(err);
                return r;
        }
        if (r < 0)
                return r;
        const YNode *top = ydoc_root(d);
        if (!top) /* an empty file: the defaults */
                return 0;
        if (top->type != YNODE_MAPPING)
                return fail(err, path, top, "expected a mapping of settings");
        PluginConfig n = *c;
        n.create_mdev_types = strv_copy(c->create_mdev_types);
        n.mig_config = c->mig_config ? strdup(c->mig_config) : NULL;
        n.node_labels = c->node_labels ? strdup(c->node_labels) : NULL;
        if ((c->create_mdev_types && !n.create_mdev_types) || (c->mig_config && !n.mig_config) ||
            (c->node_labels && !n.node_labels)) {
                plugin_config_done(&n);
                return -ENOMEM;
        }
        r = 0;
        YNODE_FOREACH_PAIR(top, k, v) {
                if (r < 0)
                        break;
                const char *key = ynode_scalar(k);
                if (streq(key, "mig-strategy")) {
                        const char *s = ynode_scalar(v);
                        n.mig_strategy = s ? mig_strategy_from_string(s) : _MIG_STRATEGY_INVALID;
                        if (n.mig_strategy < 0)
                                r = fail(err, path, v, "expected none, single or mixed");
                } else if (streq(key, "containers"))
                        r = parse_bool(path, v, &n.containers, err);
                else if (streq(key, "kubevirt"))
                        r = parse_bool(path, v, &n.kubevirt, err);
                else if (streq(key, "rescan-interval-ms")) {
                        uint32_t ms;
                        const char *s = ynode_scalar(v);
                        if (!s || parse_u32(s, 10, &ms) < 0 || ms < 100 || ms > 3600000)
                                r = fail(err, path, v, "expected milliseconds, 100 to 3600000");
                        else
                                n.rescan_ms = ms;
                } else if (streq(key, "create-mdevs")) {
                        if (v->type != YNODE_SEQUENCE) {
                                r = fail(err, path, v, "expected a list of mdev types");
                                break;
                        }
                        strv_free(n.create_mdev_types);
                        n.create_mdev_types = NULL;
                        size_t nt = 0;
                        YNODE_FOREACH_ITEM(v, it) {
                                const char *s = ynode_scalar(it);
                                if (!s || !mdev_type_valid(s)) {
                                        r = fail(err, path, it, "expected an mdev type id (nvidia-231)");
                                        break;
                                }
                                if (strv_push(&n.create_mdev_types, &nt, strdup(s)) < 0) {
                                        r = -ENOMEM;
                                        break;
                                }
                        }
                } else if (streq(key, "mig-config"))
                        r = parse_path(path, v, &n.mig_config, err);
                else if (streq(key, "node-labels"))
                        r = parse_path(path, v, &n.node_labels, err);
                else
                        r = fail(err, path, k, "unknown setting (mig-strategy, containers, kubevirt, create-mdevs, "
                                               "rescan-interval-ms, mig-config, node-labels)");
        }
        if (r < 0) {
                plugin_config_done(&n);
                return r;
        }
        plugin_config_done(c);
        *c = n;
        return 0;
}
