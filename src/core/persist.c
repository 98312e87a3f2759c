/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "bootcfg.h"
#include "persist.h"
#include "statefile.h"

int vfio_persist_add(Root *root, const char *bdf, bool force, char *const *include) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "driver", json_object_new_string("vfio-pci"));
        json_object_object_add(o, "force", json_object_new_boolean(force));
        json_object *inc = json_object_new_array();
        for (char *const *i = include; i && *i; i++)
                json_object_array_add(inc, json_object_new_string(*i));
        json_object_object_add(o, "include", inc);
        int r = state_write_json(root, o, VFIO_PERSIST_DIR "/%s", bdf);
        json_object_put(o);
        return r;
}

int vfio_persist_remove(Root *root, const char *bdf) {
        return root_write_file(root, NULL, VFIO_PERSIST_DIR "/%s", bdf);
}

int vfio_persist_read(Root *root, const char *bdf, bool *ret_force, char ***ret_include) {
        json_object *o;
        int r = state_read_json(root, &o, VFIO_PERSIST_DIR "/%s", bdf);
        if (r < 0)
                return r;
        const char *drv = json_object_get_string(json_object_object_get(o, "driver"));
        if (!drv || !streq(drv, "vfio-pci")) {
                json_object_put(o);
                return -EBADMSG;
        }
        *ret_force = json_object_get_boolean(json_object_object_get(o, "force"));
        char **l = NULL;
        size_t n = 0;
        json_object *inc = json_object_object_get(o, "include");
        for (size_t i = 0; inc && i < json_object_array_length(inc); i++) {
                const char *s = json_object_get_string(json_object_array_get_idx(inc, i));
                if (s && strv_push(&l, &n, strdup(s)) < 0) {
                        json_object_put(o);
                        strv_free(l);
                        return -ENOMEM;
                }
        }
        json_object_put(o);
        *ret_include = l;
        return 0;
}

/* GPU and audio drivers vfio-pci must load before. */
static const char *const softdep_drivers[] = {"nvidia", "nouveau", "amdgpu", "radeon", "snd_hda_intel"};

static bool line_is(const char *line, size_t len, const char *prefix) {
        size_t l = strlen(prefix);
        return len >= l && strncmp(line, prefix, l) == 0;
}

/* Append "id" to the comma list if missing. */
static int ids_add(char **list, const char *id) {
        size_t l = strlen(id);
        for (const char *p = *list ?: ""; *p;) {
                const char *e = strchrnul(p, ',');
                if ((size_t)(e - p) == l && strncasecmp(p, id, l) == 0)
                        return 0;
                p = *e ? e + 1 : e;
        }
        char *n = *list && **list ? strdup_printf("%s,%s", *list, id) : strdup(id);
        if (!n)
                return -ENOMEM;
        free(*list);
        *list = n;
        return 0;
}

/* Drop "id" (any letter case) from the comma list. */
static int ids_drop(char **list, const char *id) {
        if (!*list)
                return 0;
        size_t l = strlen(id), o = 0;
        char *n = calloc(1, strlen(*list) + 1);
        if (!n)
                return -ENOMEM;
        for (const char *p = *list; *p;) {
                const char *e = strchrnul(p, ',');
                if (e > p && !((size_t)(e - p) == l && strncasecmp(p, id, l) == 0)) {
                        if (o)
                                n[o++] = ',';
                        memcpy(n + o, p, (size_t)(e - p));
                        o += (size_t)(e - p);
                }
                p = *e ? e + 1 : e;
        }
        free(*list);
        *list = n;
        return 0;
}

#define IDS_HEADER "# Written by gpuvirt (passthrough persist --ids): bind these devices to vfio-pci at boot."

/* Where "ids=" starts in an "options vfio-pci" line (and where its value ends, in *ret_e), or NULL. */
static const char *ids_option(const char *line, size_t len, const char **ret_e) {
        if (!line_is(line, len, "options vfio-pci ") && !line_is(line, len, "options vfio_pci "))
                return NULL;
        const char *e = line + len, *ip = memmem(line, len, "ids=", 4);
        if (!ip)
                return NULL;
        const char *ie = ip + 4;
        while (ie < e && *ie != ' ' && *ie != '\t')
                ie++;
        *ret_e = ie;
        return ip;
}

/* A softdep that loads vfio-pci before one of softdep_drivers (its index in *ret_i); *ret_exact: the very
 * line gpuvirt writes. */
static bool is_vfio_softdep(const char *line, size_t len, size_t *ret_i, bool *ret_exact) {
        for (size_t i = 0; i < ELEMENTSOF(softdep_drivers); i++) {
                _cleanup_free_ char *sd = strdup_printf("softdep %s pre:", softdep_drivers[i]);
                if (sd && line_is(line, len, sd) && memmem(line, len, "vfio-pci", 8)) {
                        *ret_i = i;
                        *ret_exact = len == strlen(sd) + strlen(" vfio-pci") && memcmp(line + strlen(sd), " vfio-pci", 9) == 0;
                        return true;
                }
        }
        return false;
}

int vfio_persist_ids(Root *root, char *const *ids, bool remove, IdsPersistResult *ret) {
        _cleanup_free_ char *p = root_path(root, "etc/modprobe.d/vfio.conf");
        _cleanup_free_ char *old = NULL;
        if (!p)
                return -ENOMEM;
        int r = read_full(p, 1024 * 1024, (void **)&old, NULL);
        if (r < 0 && r != -ENOENT)
                return r;

        /* The IDs the file binds, with ours added or dropped. */
        _cleanup_free_ char *merged = NULL;
        for (const char *line = old ?: ""; *line;) {
                const char *e = strchrnul(line, '\n'), *ie;
                const char *ip = ids_option(line, (size_t)(e - line), &ie);
                if (ip) {
                        _cleanup_free_ char *v = strndup(ip + 4, (size_t)(ie - ip - 4));
                        if (!v)
                                return -ENOMEM;
                        for (char *tok = v, *save = NULL; (tok = strtok_r(tok, ",", &save)); tok = NULL)
                                if (ids_add(&merged, tok) < 0)
                                        return -ENOMEM;
                }
                line = *e ? e + 1 : e;
        }
        for (char *const *i = ids; i && *i; i++)
                if ((remove ? ids_drop(&merged, *i) : ids_add(&merged, *i)) < 0)
                        return -ENOMEM;
        bool any = merged && *merged;
        /* a file gpuvirt created (its header) goes entirely with the last ID; in anyone else's only ids= goes */
        bool ours = !old;
        for (const char *line = old ?: ""; *line && !ours;) {
                const char *e = strchrnul(line, '\n');
                ours = line_is(line, (size_t)(e - line), IDS_HEADER);
                line = *e ? e + 1 : e;
        }
        bool drop_ours = !any && ours;

        /* Keep every line except the ids option, which is rewritten merged (other options on that line stay on
         * a line of their own). With no ID left in a file gpuvirt created, its header and softdeps go too. */
        bool has_softdep[ELEMENTSOF(softdep_drivers)] = {};
        size_t cap = (old ? strlen(old) : 0) + 1024 + (merged ? strlen(merged) : 0);
        _cleanup_free_ char *out = calloc(1, cap);
        if (!out)
                return -ENOMEM;
        size_t o = 0;
        for (const char *line = old ?: ""; *line;) {
                const char *e = strchrnul(line, '\n'), *ie;
                size_t len = (size_t)(e - line), k;
                bool exact;
                const char *ip = ids_option(line, len, &ie);
                if (ip) {
                        _cleanup_free_ char *before = strndup(line, (size_t)(ip - line));
                        _cleanup_free_ char *after = strndup(ie, (size_t)(e - ie));
                        if (!before || !after)
                                return -ENOMEM;
                        strip(before);
                        strip(after);
                        if (*after)
                                o += (size_t)snprintf(out + o, cap - o, "%s %s\n", before, after);
                } else if (is_vfio_softdep(line, len, &k, &exact)) {
                        has_softdep[k] = true;
                        if (!drop_ours || !exact)
                                o += (size_t)snprintf(out + o, cap - o, "%.*s\n", (int)len, line);
                } else if (!drop_ours || !line_is(line, len, IDS_HEADER))
                        o += (size_t)snprintf(out + o, cap - o, "%.*s\n", (int)len, line);
                line = *e ? e + 1 : e;
        }
        if (any) {
                if (!old)
                        o += (size_t)snprintf(out + o, cap - o, IDS_HEADER "\n");
                o += (size_t)snprintf(out + o, cap - o, "options vfio-pci ids=%s\n", merged);
                for (size_t i = 0; i < ELEMENTSOF(softdep_drivers); i++)
                        if (!has_softdep[i])
                                o += (size_t)snprintf(out + o, cap - o, "softdep %s pre: vfio-pci\n", softdep_drivers[i]);
        }
        /* nothing of anyone's left: no file */
        bool empty = strspn(out, " \t\n") == strlen(out);
        if (old || !empty) {
                r = root_write_file(root, empty ? NULL : out, "etc/modprobe.d/vfio.conf");
                if (r < 0)
                        return r;
        }

        /* modules-load.d loads vfio-pci while IDs are bound, and no longer when none is */
        _cleanup_free_ char *ml = NULL;
        _cleanup_free_ char *mp = root_path(root, "etc/modules-load.d/vfio-pci.conf");
        if (!mp || (read_full(mp, 65536, (void **)&ml, NULL) < 0 && !(ml = strdup(""))))
                return -ENOMEM;
        bool listed = cmdline_has(ml, "vfio-pci") || cmdline_has(ml, "vfio_pci");
        if (any && !listed) {
                _cleanup_free_ char *n = strdup_printf("%s%svfio-pci\n", ml, *ml && ml[strlen(ml) - 1] != '\n' ? "\n" : "");
                r = n ? root_write_file(root, n, "etc/modules-load.d/vfio-pci.conf") : -ENOMEM;
                if (r < 0)
                        return r;
        } else if (!any && listed) {
                _cleanup_free_ char *n = calloc(1, strlen(ml) + 1);
                if (!n)
                        return -ENOMEM;
                size_t no = 0;
                for (const char *line = ml; *line;) {
                        const char *e = strchrnul(line, '\n');
                        _cleanup_free_ char *w = strndup(line, (size_t)(e - line));
                        if (!w)
                                return -ENOMEM;
                        strip(w);
                        if (!streq(w, "vfio-pci") && !streq(w, "vfio_pci"))
                                no += (size_t)snprintf(n + no, strlen(ml) + 1 - no, "%.*s\n", (int)(e - line), line);
                        line = *e ? e + 1 : e;
                }
                r = root_write_file(root, strspn(n, " \t\n") == strlen(n) ? NULL : n, "etc/modules-load.d/vfio-pci.conf");
                if (r < 0)
                        return r;
        }

        /* Does a GPU driver load from the initramfs? Then vfio-pci must be in it too. */
        bool in_initramfs = false;
        static const char *const cfgs[] = {"etc/initramfs-tools/modules", "etc/dracut.conf.d/gpu.conf",
                                           "etc/dracut.conf"};
        for (size_t i = 0; i < ELEMENTSOF(cfgs); i++) {
                _cleanup_free_ char *t = NULL;
                if (root_read_attr(root, &t, "%s", cfgs[i]) < 0)
                        continue;
                for (size_t k = 0; k < ELEMENTSOF(softdep_drivers); k++)
                        if (strstr(t, softdep_drivers[k]))
                                in_initramfs = true;
        }
        BootConfig bc = {};
        bool rhel = false;
        if (boot_config_read(root, &bc) == 0) {
                rhel = bc.rhel_like;
                boot_config_done(&bc);
        }
        *ret = (IdsPersistResult){
                .ids = any ? TAKE_PTR(merged) : NULL,
                .initramfs_has_gpu_driver = in_initramfs,
                .initramfs_command = rhel ? "dracut -f" : "update-initramfs -u",
        };
        return 0;
}

void ids_persist_result_done(IdsPersistResult *r) {
        free(r->ids);
}
