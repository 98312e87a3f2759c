/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/jsonfile.h"
#include "core/mig/apply.h"
#include "core/mig/mig.h"
#include "core/mig/migparted.h"
#include "k8s/migconfig.h"

#define LABELS_SIZE_MAX   (256 * 1024)
#define CHECKPOINT_SIZE_MAX (16 * 1024 * 1024)

int node_label_read(Root *root, const char *file, const char *key, char **ret, GvError *err) {
        _cleanup_free_ char *text = NULL;
        int r = root_read_file(root, LABELS_SIZE_MAX, &text, "%s", file);
        if (r == -ENOENT)
                return r;
        if (r < 0)
                return gv_error_set(err, r, NULL, "read", "%s: %s", file, errno_message(r));
        unsigned line = 1;
        for (char *p = text; *p; line++) {
                char *end = strchrnul(p, '\n');
                char *eq = memchr(p, '=', (size_t) (end - p));
                if (end == p) { /* an empty line */
                        p = *end ? end + 1 : end;
                        continue;
                }
                if (!eq)
                        return gv_error_set(err, -EINVAL, NULL, "parse", "%s:%u:1: expected key=\"value\"", file, line);
                if (eq[1] != '"' || end[-1] != '"' || end - eq < 3)
                        return gv_error_set(err, -EINVAL, NULL, "parse", "%s:%u:%u: the value is not quoted", file, line,
                                            (unsigned) (eq - p) + 2);
                bool match = (size_t) (eq - p) == strlen(key) && strneq(p, key, strlen(key));
                _cleanup_free_ char *v = malloc((size_t) (end - eq));
                if (!v)
                        return -ENOMEM;
                char *o = v;
                for (char *c = eq + 2; c < end - 1; c++) {
                        if (*c == '"')
                                return gv_error_set(err, -EINVAL, NULL, "parse", "%s:%u:%u: a quote inside the value",
                                                    file, line, (unsigned) (c - p) + 1);
                        if (*c == '\\') {
                                c++;
                                if (c >= end - 1 || (*c != '"' && *c != '\\'))
                                        return gv_error_set(err, -EINVAL, NULL, "parse",
                                                            "%s:%u:%u: an escape a label value cannot hold", file, line,
                                                            (unsigned) (c - p));
                        }
                        *o++ = *c;
                }
                *o = '\0';
                if (match) {
                        *ret = TAKE_PTR(v);
                        return 0;
                }
                p = *end ? end + 1 : end;
        }
        return -ENOENT;
}

static int push_ids(const char *path, json_object *list, char ***l, size_t *n, GvError *err) {
        if (!json_object_is_type(list, json_type_array))
                return gv_error_set(err, -EBADMSG, NULL, "parse", "%s: DeviceIDs is not a list", path);
        for (size_t i = 0; i < json_object_array_length(list); i++) {
                json_object *s = json_object_array_get_idx(list, i);
                if (!json_object_is_type(s, json_type_string))
                        return gv_error_set(err, -EBADMSG, NULL, "parse", "%s: a device ID is not a string", path);
                if (strv_push(l, n, strdup(json_object_get_string(s))) < 0)
                        return -ENOMEM;
        }
        return 0;
}

int kubelet_checkpoint_ids(Root *root, char ***ret, GvError *err) {
        _cleanup_free_ char *path = root_path(root, KUBELET_CHECKPOINT);
        if (!path)
                return -ENOMEM;
        _cleanup_json_ json_object *o = NULL;
        int r = json_load_strict(path, path, CHECKPOINT_SIZE_MAX, &o, err);
        if (r == -ENOENT) {
                gv_error_done(err);
                return r;
        }
        if (r < 0)
                return r == -EINVAL ? -EBADMSG : r;
        json_object *data, *entries;
        if (!json_object_object_get_ex(o, "Data", &data) || !json_object_object_get_ex(data, "PodDeviceEntries", &entries))
                return gv_error_set(err, -EBADMSG, NULL, "parse", "%s: no Data.PodDeviceEntries", path);
        if (json_object_is_type(entries, json_type_null)) {
                *ret = calloc(1, sizeof(char *));
                return *ret ? 0 : -ENOMEM;
        }
        if (!json_object_is_type(entries, json_type_array))
                return gv_error_set(err, -EBADMSG, NULL, "parse", "%s: PodDeviceEntries is not a list", path);
        _cleanup_strv_free_ char **l = calloc(1, sizeof(char *));
        size_t n = 0;
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < json_object_array_length(entries); i++) {
                json_object *e = json_object_array_get_idx(entries, i), *ids;
                if (!json_object_is_type(e, json_type_object) || !json_object_object_get_ex(e, "DeviceIDs", &ids))
                        return gv_error_set(err, -EBADMSG, NULL, "parse", "%s: entry %zu has no DeviceIDs", path, i);
                if (json_object_is_type(ids, json_type_object)) { /* kubelet >= 1.20: NUMA node -> IDs */
                        json_object_object_foreach(ids, node, list) {
                                (void) node;
                                if ((r = push_ids(path, list, &l, &n, err)) < 0)
                                        return r;
                        }
                } else if ((r = push_ids(path, ids, &l, &n, err)) < 0)
                        return r;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static int refuse(GvError *err, const MigGpu *g, const char *fmt, const char *what) {
        return gv_error_set(err, -EBUSY, g->address, "refused", "GPU %u (%s): %s %s", g->index, g->address, fmt, what);
}

int k8s_mig_apply(Root *root, const char *file, const char *label, char *const *allocated, GvError *err) {
        _cleanup_free_ char *path = root_path(root, "%s", file);
        if (!path)
                return -ENOMEM;
        _cleanup_migparted_free_ MigParted *m = NULL;
        int r = migparted_parse(path, &m, err);
        if (r < 0)
                return r;
        const MigPartedConfig *cfg;
        r = mig_config_find(m, label, &cfg, err);
        if (r < 0)
                return r;
        _cleanup_nvml_close_ Nvml *n = NULL; /* core's one handle of the process, the rescans' too */
        r = nvml_open(root, &n, err);
        if (r < 0)
                return r;
        MigGpu *gpus = NULL;
        size_t ng = 0;
        MigConfigPlan plan = {};
        MigPlanCreate (*pins)[MIG_MAX_INSTANCES] = NULL;
        size_t *n_pins = NULL;
        int lock = -1;
        r = mig_gpus_read(n, &gpus, &ng);
        if (r < 0) {
                r = gv_error_set(err, r, NULL, "nvml", "cannot read the GPUs: %s", errno_message(r));
                goto out;
        }
        r = mig_config_plan(m, cfg, gpus, ng, false, &plan, err);
        if (r == -EINVAL)
                for (size_t i = 0; i < plan.n; i++)
                        if (plan.gpus[i].error.error) {
                                gv_error_move(err, &plan.gpus[i].error);
                                break;
                        }
        if (r < 0)
                goto out;

        /* first every GPU, so a configuration that cannot keep what pods use changes nothing */
        pins = calloc(ng ?: 1, sizeof(*pins));
        n_pins = calloc(ng ?: 1, sizeof(*n_pins));
        if (!pins || !n_pins) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < ng; i++) {
                MigGpu *g = &gpus[i];
                const MigPartedTarget *t = &plan.gpus[i].target;
                n_pins[i] = 0;
                if (mig_config_verdict(g, t, false) != MIG_CONFIG_APPLY)
                        continue;
                bool mig_now = g->capable && g->mode_current == NVML_DEVICE_MIG_ENABLE;
                if (!mig_now && strv_contains(allocated, g->uuid) && t->enabled) {
                        r = refuse(err, g, "is allocated to a pod as a whole GPU, MIG cannot be enabled on it:", g->uuid);
                        goto out;
                }
                unsigned pinned[MIG_MAX_PROFILES] = {};
                for (size_t j = 0; j < g->n_inst; j++) {
                        const MigInstance *in = &g->inst[j];
                        if (in->ci_id < 0 || !strv_contains(allocated, in->uuid))
                                continue;
                        if (!t->enabled) {
                                r = refuse(err, g, "MIG cannot be disabled, a MIG device is allocated to a pod:", in->uuid);
                                goto out;
                        }
                        pins[i][n_pins[i]++] = (MigPlanCreate) {in->profile, in->start};
                        if (++pinned[in->profile] > t->want[in->profile]) {
                                r = refuse(err, g, "the configuration has fewer devices of a profile than are allocated:",
                                           g->profiles[in->profile].name);
                                goto out;
                        }
                }
                _cleanup_free_ char *why = NULL;
                if (n_pins[i] > 0 && mig_layout_fits_pinned(g, t->want, pins[i], n_pins[i], &why) < 0) {
                        r = refuse(err, g, "the layout cannot keep the allocated MIG devices where they are:", strna(why));
                        goto out;
                }
        }
        lock = root_lock(root, 5000, err);
        if (lock < 0) {
                r = lock;
                goto out;
        }
        for (size_t i = 0; i < ng; i++) {
                MigGpu *g = &gpus[i];
                const MigPartedTarget *t = &plan.gpus[i].target;
                if (mig_config_verdict(g, t, false) != MIG_CONFIG_APPLY)
                        continue;
                MigApplyReport rep = {};
                /* instances no pod holds may move (the least disruption the layout allows); pinned ones stay */
                r = mig_apply_gpu_pinned(root, n, g, t->enabled, t->want, pins[i], n_pins[i], true, false, &rep);
                if (r < 0)
                        gv_error_move(err, &rep.error);
                mig_apply_report_done(&rep);
                if (r < 0)
                        goto out;
        }
        r = 0;
out:
        if (lock >= 0)
                close(lock);
        mig_config_plan_done(&plan);
        free(pins);
        free(n_pins);
        free(gpus);
        return r;
}
