/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <json-c/json.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "core/host/bootcfg.h"
#include "core/host/pci.h"
#include "core/passthrough/persist.h"
#include "core/store/statefile.h"

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

typedef struct PersistRecord {
        const char *driver;
        bool force;
        char **include;
} PersistRecord;

static bool is_vfio_pci(const char *s) {
        return streq(s, "vfio-pci");
}

static const JsonField persist_fields[] = {
        {"driver", JSON_KIND_STRING, JSON_MANDATORY, offsetof(PersistRecord, driver), .valid = is_vfio_pci,
         .what = "\"vfio-pci\""},
        {"force", JSON_KIND_BOOL, 0, offsetof(PersistRecord, force)},
        {"include", JSON_KIND_STRV, 0, offsetof(PersistRecord, include), .valid = pci_addr_is_canonical,
         .what = "a list of PCI addresses (0000:3b:00.0)"},
        {},
};

int vfio_persist_read(Root *root, const char *bdf, bool *ret_force, char ***ret_include, GvError *err) {
        json_object *o = NULL;
        PersistRecord rec = {};
        int r = state_read_record(root, persist_fields, &rec, &o, err, VFIO_PERSIST_DIR "/%s", bdf);
        if (r < 0)
                return r;
        json_object_put(o);
        *ret_force = rec.force;
        *ret_include = rec.include;
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

/* A file gpuvirt created starts with a comment line that starts so (the program that writes it says which of
 * its commands did, vfio_persist_ids()'s header). */
#define IDS_MARK "# Written by gpuvirt"
#define IDS_HEADER_PLAIN IDS_MARK ": bind these devices to vfio-pci at boot."

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

/* "softdep MODULE pre: ... vfio-pci ...": MODULE (in *ret_module) and whether the line is exactly the one
 * gpuvirt writes, "softdep MODULE pre: vfio-pci". 0 not such a line, 1 it is, -ENOMEM. */
static int vfio_softdep(const char *line, size_t len, char **ret_module, bool *ret_exact) {
        if (!line_is(line, len, "softdep ") || !memmem(line, len, "vfio-pci", 8))
                return 0;
        const char *m = line + strlen("softdep "), *me = memchr(m, ' ', len - strlen("softdep "));
        if (!me || me == m || !line_is(me, (size_t)(line + len - me), " pre:"))
                return 0;
        char *mod = strndup(m, (size_t)(me - m));
        if (!mod)
                return -ENOMEM;
        *ret_exact = (size_t)(line + len - me) == strlen(" pre: vfio-pci") && memcmp(me, " pre: vfio-pci", 14) == 0;
        *ret_module = mod;
        return 1;
}

int vfio_persist_ids(Root *root, char *const *ids, char *const *modules, bool remove, const char *header,
                     IdsPersistResult *ret) {
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
                ours = line_is(line, (size_t)(e - line), IDS_MARK);
                line = *e ? e + 1 : e;
        }
        bool drop_ours = !any && ours;

        /* Keep every line except the ids option, which is rewritten merged (other options on that line stay on
         * a line of their own). With no ID left in a file gpuvirt created, its header and softdeps go too. */
        _cleanup_strv_free_ char **has_softdep = NULL; /* modules some line already loads vfio-pci before */
        size_t n_has = 0;
        size_t cap = (old ? strlen(old) : 0) + 1024 + (merged ? strlen(merged) : 0) + (header ? strlen(header) : 0);
        for (char *const *m = modules; m && *m; m++)
                cap += strlen(*m) + 32;
        _cleanup_free_ char *out = calloc(1, cap);
        if (!out)
                return -ENOMEM;
        size_t o = 0;
        for (const char *line = old ?: ""; *line;) {
                const char *e = strchrnul(line, '\n'), *ie;
                size_t len = (size_t)(e - line);
                bool exact = false;
                char *mod = NULL;
                int k = vfio_softdep(line, len, &mod, &exact);
                if (k < 0)
                        return k;
                if (k > 0 && strv_push(&has_softdep, &n_has, mod) < 0)
                        return free(mod), -ENOMEM;
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
                } else if (k > 0) {
                        if (!drop_ours || !exact)
                                o += (size_t)snprintf(out + o, cap - o, "%.*s\n", (int)len, line);
                } else if (!drop_ours || !line_is(line, len, IDS_MARK))
                        o += (size_t)snprintf(out + o, cap - o, "%.*s\n", (int)len, line);
                line = *e ? e + 1 : e;
        }
        if (any) {
                if (!old)
                        o += (size_t)snprintf(out + o, cap - o, "%s\n", header ?: IDS_HEADER_PLAIN);
                o += (size_t)snprintf(out + o, cap - o, "options vfio-pci ids=%s\n", merged);
                /* the usual GPU and audio drivers, and the drivers the devices have now */
                for (size_t i = 0; i < ELEMENTSOF(softdep_drivers) + strv_length(modules); i++) {
                        const char *m = i < ELEMENTSOF(softdep_drivers) ? softdep_drivers[i]
                                                                         : modules[i - ELEMENTSOF(softdep_drivers)];
                        if (strv_contains(has_softdep, m))
                                continue;
                        o += (size_t)snprintf(out + o, cap - o, "softdep %s pre: vfio-pci\n", m);
                        char *d = strdup(m);
                        if (!d || strv_push(&has_softdep, &n_has, d) < 0)
                                return free(d), -ENOMEM;
                }
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
                for (char **m = has_softdep; m && *m; m++)
                        if (strstr(t, *m)) /* nvidia_drm listed loads nvidia too */
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
                .softdeps = any ? TAKE_PTR(has_softdep) : NULL,
                .initramfs_has_gpu_driver = in_initramfs,
                .initramfs_command = rhel ? "dracut -f" : "update-initramfs -u",
        };
        return 0;
}

void ids_persist_result_done(IdsPersistResult *r) {
        free(r->ids);
        strv_free(r->softdeps);
}
