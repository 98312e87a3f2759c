/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <json-c/json.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "bootcfg.h"
#include "pci.h"
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

int vfio_persist_read(Root *root, const char *bdf, bool *ret_force, char ***ret_include, char **ret_error) {
        json_object *o = NULL;
        PersistRecord rec = {};
        int r = state_read_record(root, persist_fields, &rec, &o, ret_error, VFIO_PERSIST_DIR "/%s", bdf);
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

int vfio_persist_ids(Root *root, char *const *ids, IdsPersistResult *ret) {
        _cleanup_free_ char *p = root_path(root, "etc/modprobe.d/vfio.conf");
        _cleanup_free_ char *old = NULL;
        if (!p)
                return -ENOMEM;
        int r = read_full(p, 1024 * 1024, (void **)&old, NULL);
        if (r < 0 && r != -ENOENT)
                return r;

        /* Keep every line except the ids option, which we rewrite merged; note existing softdeps. */
        char *merged = NULL;
        bool has_softdep[ELEMENTSOF(softdep_drivers)] = {};
        size_t cap = (old ? strlen(old) : 0) + 1024 + 16 * strv_length(ids);
        _cleanup_free_ char *out = calloc(1, cap);
        if (!out)
                return -ENOMEM;
        size_t o = 0;
        for (const char *line = old ?: ""; *line;) {
                const char *e = strchrnul(line, '\n');
                size_t len = (size_t)(e - line);
                if (line_is(line, len, "options vfio-pci ") || line_is(line, len, "options vfio_pci ")) {
                        const char *ip = memmem(line, len, "ids=", 4);
                        if (ip) {
                                const char *ie = ip + 4;
                                while (ie < e && *ie != ' ' && *ie != '\t')
                                        ie++;
                                _cleanup_free_ char *v = strndup(ip + 4, (size_t)(ie - ip - 4));
                                for (char *tok = v, *save = NULL; (tok = strtok_r(tok, ",", &save)); tok = NULL)
                                        if (ids_add(&merged, tok) < 0)
                                                return -ENOMEM;
                                /* other options on that line are kept on a line of their own */
                                _cleanup_free_ char *before = strndup(line, (size_t)(ip - line));
                                _cleanup_free_ char *after = strndup(ie, (size_t)(e - ie));
                                if (!before || !after)
                                        return free(merged), -ENOMEM;
                                strip(before);
                                strip(after);
                                if (*after)
                                        o += (size_t)snprintf(out + o, cap - o, "%s %s\n", before, after);
                                line = *e ? e + 1 : e;
                                continue;
                        }
                }
                for (size_t i = 0; i < ELEMENTSOF(softdep_drivers); i++) {
                        _cleanup_free_ char *sd = strdup_printf("softdep %s pre:", softdep_drivers[i]);
                        if (sd && line_is(line, len, sd) && memmem(line, len, "vfio-pci", 8))
                                has_softdep[i] = true;
                }
                o += (size_t)snprintf(out + o, cap - o, "%.*s\n", (int)len, line);
                line = *e ? e + 1 : e;
        }
        for (char *const *i = ids; i && *i; i++)
                if (ids_add(&merged, *i) < 0)
                        return -ENOMEM;
        if (!old)
                o += (size_t)snprintf(out + o, cap - o,
                                      "# Written by gpuvirt (passthrough persist --ids): bind these devices to vfio-pci "
                                      "at boot.\n");
        o += (size_t)snprintf(out + o, cap - o, "options vfio-pci ids=%s\n", merged ?: "");
        for (size_t i = 0; i < ELEMENTSOF(softdep_drivers); i++)
                if (!has_softdep[i])
                        o += (size_t)snprintf(out + o, cap - o, "softdep %s pre: vfio-pci\n", softdep_drivers[i]);
        r = root_write_file(root, out, "etc/modprobe.d/vfio.conf");
        if (r < 0) {
                free(merged);
                return r;
        }

        _cleanup_free_ char *ml = NULL;
        _cleanup_free_ char *mp = root_path(root, "etc/modules-load.d/vfio-pci.conf");
        if (!mp || (read_full(mp, 65536, (void **)&ml, NULL) < 0 && !(ml = strdup(""))))
                return free(merged), -ENOMEM;
        if (!cmdline_has(ml, "vfio-pci") && !cmdline_has(ml, "vfio_pci")) {
                _cleanup_free_ char *n = strdup_printf("%s%svfio-pci\n", ml, *ml && ml[strlen(ml) - 1] != '\n' ? "\n" : "");
                r = n ? root_write_file(root, n, "etc/modules-load.d/vfio-pci.conf") : -ENOMEM;
                if (r < 0)
                        return free(merged), r;
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
                .ids = merged,
                .initramfs_has_gpu_driver = in_initramfs,
                .initramfs_command = rhel ? "dracut -f" : "update-initramfs -u",
        };
        return 0;
}

void ids_persist_result_done(IdsPersistResult *r) {
        free(r->ids);
}
