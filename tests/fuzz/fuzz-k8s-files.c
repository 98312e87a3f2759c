/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The device plugin's readers of files others write (src/k8s), one target each (FUZZ_K8S):
 *   1 k8s-labels:     the node-labels file (downward API format), node_label_read();
 *   2 k8s-checkpoint: kubelet's device-plugins/kubelet_internal_checkpoint, kubelet_checkpoint_ids();
 *   3 k8s-config:     etc/gpuvirt/device-plugin.yaml, plugin_config_load();
 *   4 k8s-cdi:        a CDI spec under etc/cdi (the first byte: even JSON, 'j'; odd YAML, 'y'), cdi_spec_names() and
 *                     cdi_device_names().
 * Refusals say where (FILE:LINE:COL for the labels and the configuration, the file for the others) and change
 * nothing; what is accepted is written out again in the file's format and reads back the same. */
#include <ctype.h>
#include <string.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "fuzz.h"
#include "k8s/cdi.h"
#include "k8s/config.h"
#include "k8s/migconfig.h"

#if FUZZ_K8S == 1 || FUZZ_K8S == 3
/* msg is "FILE:LINE:COL: ..." with LINE and COL numbers from 1 */
static bool at_line_col(const char *msg, const char *file) {
        const char *p = startswith(msg ?: "", file);
        if (!p || *p++ != ':')
                return false;
        for (int field = 0; field < 2; field++) {
                if (!isdigit((unsigned char) *p) || *p == '0')
                        return false;
                while (isdigit((unsigned char) *p))
                        p++;
                if (*p++ != ':')
                        return false;
        }
        return *p == ' ';
}

/* v as a double-quoted string of the labels file and of YAML: '"' and '\' escaped */
static char *quoted(const char *v) {
        char *q = malloc(strlen(v) * 2 + 3), *o = q;
        FUZZ_CHECK(q);
        *o++ = '"';
        for (const char *c = v; *c; c++) {
                if (*c == '"' || *c == '\\')
                        *o++ = '\\';
                *o++ = *c;
        }
        *o++ = '"';
        *o = '\0';
        return q;
}
#endif

#if FUZZ_K8S == 1
#define LABELS "etc/podinfo/labels"
static void one(const char *text, size_t len) {
        fuzz_write(LABELS, text, len);
        _cleanup_free_ char *v = NULL;
        GvError err = {};
        int r = node_label_read(fuzz_root(), LABELS, MIG_CONFIG_LABEL, &v, &err);
        FUZZ_CHECK(r == 0 || r == -ENOENT || (r == -EINVAL && at_line_col(err.message, LABELS)));
        FUZZ_CHECK((r == 0) == (v != NULL));
        gv_error_done(&err);
        if (r < 0)
                return;
        /* the value written back as kubelet writes it, after another label, reads back the same */
        _cleanup_free_ char *q = quoted(v);
        _cleanup_free_ char *file = strdup_printf("kubernetes.io/hostname=\"node-1\"\n%s=%s\n", MIG_CONFIG_LABEL, q);
        FUZZ_CHECK(file);
        fuzz_write(LABELS, file, strlen(file));
        _cleanup_free_ char *v2 = NULL;
        FUZZ_CHECK(node_label_read(fuzz_root(), LABELS, MIG_CONFIG_LABEL, &v2, &err) == 0);
        FUZZ_CHECK(streq(v, v2));
}

#elif FUZZ_K8S == 2
static void one(const char *text, size_t len) {
        fuzz_write(KUBELET_CHECKPOINT, text, len);
        _cleanup_free_ char *path = root_path(fuzz_root(), KUBELET_CHECKPOINT);
        _cleanup_strv_free_ char **ids = NULL;
        GvError err = {};
        FUZZ_CHECK(path);
        int r = kubelet_checkpoint_ids(fuzz_root(), &ids, &err);
        FUZZ_CHECK(r == 0 || r == -ENOMEM || (r == -EBADMSG && err.message && startswith(err.message, path)));
        FUZZ_CHECK((r == 0) == (ids != NULL));
        gv_error_done(&err);
        if (r < 0)
                return;
        /* the IDs in a checkpoint as kubelet 1.20+ writes it (a NUMA node -> IDs map) read back the same */
        json_object *list = json_object_new_array();
        FUZZ_CHECK(list);
        for (char **i = ids; *i; i++)
                FUZZ_CHECK(json_object_array_add(list, json_object_new_string(*i)) == 0);
        json_object *o = json_object_new_object(), *data = json_object_new_object(),
                    *entries = json_object_new_array(), *e = json_object_new_object(), *m = json_object_new_object();
        FUZZ_CHECK(o && data && entries && e && m);
        json_object_object_add(m, "0", list);
        json_object_object_add(e, "PodUID", json_object_new_string("uid"));
        json_object_object_add(e, "DeviceIDs", m);
        json_object_array_add(entries, e);
        json_object_object_add(data, "PodDeviceEntries", entries);
        json_object_object_add(o, "Data", data);
        json_object_object_add(o, "Checksum", json_object_new_int64(1));
        const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        fuzz_write(KUBELET_CHECKPOINT, t, strlen(t));
        _cleanup_strv_free_ char **ids2 = NULL;
        FUZZ_CHECK(kubelet_checkpoint_ids(fuzz_root(), &ids2, &err) == 0);
        FUZZ_CHECK(strv_length(ids) == strv_length(ids2));
        for (size_t i = 0; ids[i]; i++)
                FUZZ_CHECK(streq(ids[i], ids2[i]));
        json_object_put(o);
}

#elif FUZZ_K8S == 3
static bool streq_ptr(const char *a, const char *b) {
        return a == b || (a && b && streq(a, b));
}

static bool config_equal(const PluginConfig *a, const PluginConfig *b) {
        if (a->mig_strategy != b->mig_strategy || a->containers != b->containers || a->kubevirt != b->kubevirt ||
            a->rescan_ms != b->rescan_ms || !streq_ptr(a->mig_config, b->mig_config) ||
            !streq_ptr(a->node_labels, b->node_labels) || strv_length(a->create_mdev_types) != strv_length(b->create_mdev_types))
                return false;
        for (size_t i = 0; a->create_mdev_types && a->create_mdev_types[i]; i++)
                if (!streq(a->create_mdev_types[i], b->create_mdev_types[i]))
                        return false;
        return true;
}

/* the settings file grows by line (taken) */
static void append(char **s, char *line) {
        FUZZ_CHECK(line);
        char *n = strdup_printf("%s%s\n", *s ?: "", line);
        FUZZ_CHECK(n);
        free(*s);
        free(line);
        *s = n;
}

static bool path_under_root(const char *p) {
        return !p || (*p && *p != '/' && !strstr(p, ".."));
}

static void one(const char *text, size_t len) {
        fuzz_write(PLUGIN_CONFIG_FILE, text, len);
        _cleanup_free_ char *path = root_path(fuzz_root(), PLUGIN_CONFIG_FILE);
        FUZZ_CHECK(path);
        PluginConfig c = PLUGIN_CONFIG_DEFAULT, def = PLUGIN_CONFIG_DEFAULT;
        GvError err = {};
        int r = plugin_config_load(fuzz_root(), PLUGIN_CONFIG_FILE, &c, &err);
        FUZZ_CHECK(r == 0 || r == -ENOMEM || ((r == -EINVAL || r == -EFBIG) && at_line_col(err.message, path)));
        gv_error_done(&err);
        if (r < 0) {
                FUZZ_CHECK(config_equal(&c, &def)); /* a bad file changes nothing */
                return;
        }
        FUZZ_CHECK(c.mig_strategy >= 0 && c.mig_strategy < _MIG_STRATEGY_MAX);
        FUZZ_CHECK(c.rescan_ms >= 100 && c.rescan_ms <= 3600000);
        FUZZ_CHECK(path_under_root(c.mig_config) && path_under_root(c.node_labels));
        /* written out again, it loads to the same settings */
        _cleanup_free_ char *y = NULL;
        append(&y, strdup_printf("mig-strategy: %s", mig_strategy_to_string(c.mig_strategy)));
        append(&y, strdup_printf("containers: %s", c.containers ? "true" : "false"));
        append(&y, strdup_printf("kubevirt: %s", c.kubevirt ? "true" : "false"));
        append(&y, strdup_printf("rescan-interval-ms: %u", c.rescan_ms));
        if (c.create_mdev_types) {
                append(&y, strdup_printf("create-mdevs:%s", c.create_mdev_types[0] ? "" : " []"));
                for (char **t = c.create_mdev_types; *t; t++) {
                        _cleanup_free_ char *q = quoted(*t);
                        append(&y, strdup_printf("  - %s", q));
                }
        }
        if (c.mig_config) {
                _cleanup_free_ char *q = quoted(c.mig_config);
                append(&y, strdup_printf("mig-config: %s", q));
        }
        if (c.node_labels) {
                _cleanup_free_ char *q = quoted(c.node_labels);
                append(&y, strdup_printf("node-labels: %s", q));
        }
        fuzz_write(PLUGIN_CONFIG_FILE, y, strlen(y));
        PluginConfig c2 = PLUGIN_CONFIG_DEFAULT;
        r = plugin_config_load(fuzz_root(), PLUGIN_CONFIG_FILE, &c2, &err);
        if (r < 0)
                fprintf(stderr, "%s\n---\n%s", gv_error_message(&err), y);
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(config_equal(&c, &c2));
        plugin_config_done(&c);
        plugin_config_done(&c2);
}

#elif FUZZ_K8S == 4
/* CDI's characters, checked here on their own: kind "vendor/class", then '=', then the device name */
static bool qualified_name(const char *s, const char *kind) {
        const char *eq = strchr(s, '=');
        if (!eq || strchr(eq + 1, '=') || (size_t) (eq - s) != strlen(kind) || !strneq(s, kind, strlen(kind)) ||
            !eq[1])
                return false;
        size_t slashes = 0;
        for (const char *c = s; c < eq; c++) {
                slashes += *c == '/';
                if (!isalnum((unsigned char) *c) && !strchr("/_-.", *c))
                        return false;
        }
        for (const char *c = eq + 1; *c; c++)
                if (!isalnum((unsigned char) *c) && !strchr("_-.:", *c))
                        return false;
        return slashes == 1;
}

static void one(const char *data, size_t len) {
        if (len < 1)
                return;
        bool json = !(data[0] & 1);
        const char *name = json ? "etc/cdi/fuzz.json" : "etc/cdi/fuzz.yaml";
        fuzz_write(name, data + 1, len - 1);
        _cleanup_free_ char *path = root_path(fuzz_root(), "%s", name);
        _cleanup_free_ char *other = root_path(fuzz_root(), json ? "etc/cdi/fuzz.yaml" : "etc/cdi/fuzz.json");
        FUZZ_CHECK(path && other);
        (void) unlink(other);
        _cleanup_strv_free_ char **l = calloc(1, sizeof(char *));
        size_t n = 0;
        GvError err = {};
        FUZZ_CHECK(l);
        int r = cdi_spec_names(path, &l, &n, &err);
        FUZZ_CHECK(r == 0 || r == -ENOMEM || (err.message && startswith(err.message, path)));
        gv_error_done(&err);
        /* the host's list: this spec's names (sorted), or none when it is refused */
        _cleanup_strv_free_ char **all = NULL;
        FUZZ_CHECK(cdi_device_names(fuzz_root(), &all) == 0);
        if (r < 0) {
                FUZZ_CHECK(n == 0 && !l[0]);
                FUZZ_CHECK(!all[0]);
                return;
        }
        FUZZ_CHECK(strv_length(all) == n);
        for (size_t i = 0; i < n; i++) {
                FUZZ_CHECK(strv_contains(all, l[i]));
                FUZZ_CHECK(i == 0 || strcmp(all[i - 1], all[i]) <= 0);
        }
        if (n == 0)
                return;
        /* the names written into a JSON spec of their kind read back the same */
        _cleanup_free_ char *kind = strndup(l[0], strcspn(l[0], "="));
        FUZZ_CHECK(kind);
        json_object *o = json_object_new_object(), *devs = json_object_new_array();
        FUZZ_CHECK(o && devs);
        json_object_object_add(o, "cdiVersion", json_object_new_string("0.5.0"));
        json_object_object_add(o, "kind", json_object_new_string(kind));
        for (size_t i = 0; i < n; i++) {
                FUZZ_CHECK(qualified_name(l[i], kind));
                json_object *d = json_object_new_object();
                FUZZ_CHECK(d);
                json_object_object_add(d, "name", json_object_new_string(strchr(l[i], '=') + 1));
                json_object_array_add(devs, d);
        }
        json_object_object_add(o, "devices", devs);
        const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        _cleanup_free_ char *back = root_path(fuzz_root(), "etc/cdi/back.json");
        FUZZ_CHECK(back);
        fuzz_write("etc/cdi/back.json", t, strlen(t));
        _cleanup_strv_free_ char **l2 = calloc(1, sizeof(char *));
        size_t n2 = 0;
        FUZZ_CHECK(l2);
        FUZZ_CHECK(cdi_spec_names(back, &l2, &n2, &err) == 0);
        FUZZ_CHECK(n2 == n);
        for (size_t i = 0; i < n; i++)
                FUZZ_CHECK(streq(l[i], l2[i]));
        (void) unlink(back);
        json_object_put(o);
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *text = fuzz_text(data, size);
        one(text, size);
        free(text);
        return 0;
}
