/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/yamldoc.h"
#include "core/mig/migparted.h"

typedef struct Ctx {
        const char *path;
        GvError *error;
} Ctx;

/* error (may be NULL) = EINVAL at step, "PATH:LINE:COL: message" (replacing what it held); -EINVAL. */
static int vfail(GvError *error, const char *step, const char *path, unsigned line, unsigned column, const char *fmt,
                 va_list ap) _printf_(6, 0);
static int vfail(GvError *error, const char *step, const char *path, unsigned line, unsigned column, const char *fmt,
                 va_list ap) {
        return gv_error_take(error, -EINVAL, NULL, step, GV_HINT_NONE,
                             error ? error_atv(path, line, column, fmt, ap) : NULL);
}

static int fail_at(Ctx *c, const YNode *n, const char *fmt, ...) _printf_(3, 4);
static int fail_at(Ctx *c, const YNode *n, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = vfail(c->error, "parse", c->path, n ? n->line : 1, n ? n->column : 1, fmt, ap);
        va_end(ap);
        return r;
}

static const char *scalar(const YNode *n) {
        return ynode_scalar(n);
}

static int parse_bool(Ctx *c, const YNode *n, bool *ret) {
        const char *s = scalar(n);
        if (s && (streq(s, "true") || streq(s, "True") || streq(s, "TRUE"))) {
                *ret = true;
                return 0;
        }
        if (s && (streq(s, "false") || streq(s, "False") || streq(s, "FALSE"))) {
                *ret = false;
                return 0;
        }
        return fail_at(c, n, "expected true or false");
}

/* "0xDDDDVVVV": a 32-bit id in hexadecimal, up to 8 digits. */
static int parse_id(const char *s, size_t len, uint32_t *ret) {
        char buf[16];
        if (len < 3 || len > 10 || (!strneq(s, "0x", 2) && !strneq(s, "0X", 2)))
                return -EINVAL;
        memcpy(buf, s + 2, len - 2);
        buf[len - 2] = '\0';
        return parse_u32(buf, 16, ret);
}

/* mig-parted's DeviceID: "0xDDDDVVVV" (device, vendor) or "0xDDDDVVVV:0xSSSSVVVV" (and the subsystem's). */
static int parse_filter(Ctx *c, const YNode *n, MigPartedFilter *ret) {
        const char *s = scalar(n);
        const char *colon = s ? strchr(s, ':') : NULL;
        MigPartedFilter f = {.has_subsystem = colon != NULL};
        if (!s || parse_id(s, colon ? (size_t)(colon - s) : strlen(s), &f.device_id) < 0 ||
            (colon && parse_id(colon + 1, strlen(colon + 1), &f.subsystem_id) < 0))
                return fail_at(c, n, "device-filter: expected a PCI id as 0xDDDDVVVV (device, vendor), e.g. \"0x20B010DE\", "
                                     "or 0xDDDDVVVV:0xSSSSVVVV (with the subsystem device and vendor), e.g. "
                                     "\"0x20B010DE:0x134F10DE\"");
        *ret = f;
        return 0;
}

static int parse_entry(Ctx *c, const YNode *n, MigPartedEntry *e) {
        if (n->type != YNODE_MAPPING)
                return fail_at(c, n, "expected a mapping with devices, mig-enabled and mig-devices");
        e->line = n->line;
        e->column = n->column;
        bool have_devices = false, have_enabled = false, have_mig_devices = false;
        YNODE_FOREACH_PAIR(n, k, v) {
                const char *key = scalar(k); /* a string: basic/yamldoc.h refuses other keys, and keys given twice */
                int r = 0;
                if (streq(key, "device-filter")) {
                        if (v->type == YNODE_SCALAR && isempty(scalar(v)))
                                ; /* mig-parted: an empty string is no filter */
                        else if (v->type == YNODE_SCALAR) {
                                e->filters = calloc(1, sizeof *e->filters);
                                if (!e->filters)
                                        return -ENOMEM;
                                e->n_filters = 1;
                                r = parse_filter(c, v, &e->filters[0]);
                        } else if (v->type == YNODE_SEQUENCE) {
                                e->filters = calloc(MAX(v->n_children, 1u), sizeof *e->filters);
                                if (!e->filters)
                                        return -ENOMEM;
                                YNODE_FOREACH_ITEM(v, i)
                                        if (r >= 0)
                                                r = parse_filter(c, i, &e->filters[e->n_filters++]);
                        } else
                                r = fail_at(c, v, "device-filter: expected a PCI id or a list of them");
                } else if (streq(key, "devices")) {
                        have_devices = true;
                        const char *s = scalar(v);
                        if (s && streq(s, "all"))
                                e->all_devices = true;
                        else if (v->type == YNODE_SEQUENCE) {
                                e->devices = calloc(MAX(v->n_children, 1u), sizeof *e->devices);
                                if (!e->devices)
                                        return -ENOMEM;
                                YNODE_FOREACH_ITEM(v, x) {
                                        uint32_t idx;
                                        if (!scalar(x) || parse_u32(scalar(x), 10, &idx) < 0 || idx > 255)
                                                return fail_at(c, x, "devices: expected a GPU index (0, 1, ...)");
                                        e->devices[e->n_devices++] = idx;
                                }
                        } else
                                r = fail_at(c, v, "devices: expected \"all\" or a list of GPU indices such as [0, 1] "
                                                  "(a single index is written [7], not 7)");
                } else if (streq(key, "mig-enabled")) {
                        have_enabled = true;
                        r = parse_bool(c, v, &e->mig_enabled);
                } else if (streq(key, "mig-devices")) {
                        have_mig_devices = true;
                        if (v->type != YNODE_MAPPING)
                                return fail_at(c, v, "mig-devices: expected a mapping of profile names to counts, e.g. {\"1g.5gb\": 7}");
                        if (ynode_n_items(v) > MIGPARTED_PROFILES_MAX)
                                return fail_at(c, v, "mig-devices: %zu profiles, more than any GPU has (%d)",
                                               ynode_n_items(v), MIGPARTED_PROFILES_MAX);
                        e->mig_devices = calloc(MAX(ynode_n_items(v), 1u), sizeof *e->mig_devices);
                        if (!e->mig_devices)
                                return -ENOMEM;
                        YNODE_FOREACH_PAIR(v, pk, pv) {
                                uint32_t cnt;
                                if (!scalar(pk) || isempty(scalar(pk)))
                                        return fail_at(c, pk, "mig-devices: expected a profile name such as \"3g.20gb\"");
                                if (!scalar(pv) || parse_u32(scalar(pv), 10, &cnt) < 0 || cnt > 8)
                                        return fail_at(c, pv, "mig-devices: expected a count from 0 to 8 for \"%s\"", scalar(pk));
                                for (size_t d = 0; d < e->n_mig_devices; d++)
                                        if (strcasecmp(e->mig_devices[d].profile, scalar(pk)) == 0)
                                                return fail_at(c, pk, "mig-devices: \"%s\" given twice", scalar(pk));
                                MigPartedDevice *d = &e->mig_devices[e->n_mig_devices++];
                                d->profile = strdup(scalar(pk));
                                if (!d->profile)
                                        return -ENOMEM;
                                d->count = cnt;
                                d->line = pk->line;
                                d->column = pk->column;
                        }
                } else
                        return fail_at(c, k, "unknown key '%s' (expected device-filter, devices, mig-enabled, mig-devices)", key);
                if (r < 0)
                        return r;
        }
        if (!have_devices)
                return fail_at(c, n, "missing 'devices' (all, or a list of GPU indices)");
        if (!have_enabled)
                return fail_at(c, n, "missing 'mig-enabled' (true or false)");
        if (e->mig_enabled && !have_mig_devices)
                return fail_at(c, n, "missing 'mig-devices' (mig-parted requires it with mig-enabled: true; "
                                     "write 'mig-devices: {}' for MIG enabled without instances)");
        if (!e->mig_enabled)
                for (size_t d = 0; d < e->n_mig_devices; d++)
                        if (e->mig_devices[d].count > 0)
                                return fail_at(c, n, "mig-devices given while mig-enabled is false");
        return 0;
}

static int parse_doc(Ctx *c, const YDoc *doc, MigParted *m) {
        const YNode *root = ydoc_root(doc);
        if (!root)
                return fail_at(c, NULL, "empty file: expected 'version: v1' and 'mig-configs'");
        if (root->type != YNODE_MAPPING)
                return fail_at(c, root, "expected a mapping with 'version' and 'mig-configs'");
        const YNode *configs = NULL;
        bool have_version = false;
        YNODE_FOREACH_PAIR(root, k, v) {
                const char *key = scalar(k);
                if (streq(key, "version")) {
                        if (!scalar(v) || !streq(scalar(v), "v1"))
                                return fail_at(c, v, "unsupported version '%s' (this reads mig-parted's v1)", strna(scalar(v)));
                        have_version = true;
                } else if (streq(key, "mig-configs"))
                        configs = v;
                else
                        return fail_at(c, k, "unknown key '%s' (expected version, mig-configs)", key);
        }
        if (!have_version)
                return fail_at(c, root, "missing 'version: v1'");
        if (!configs || configs->type != YNODE_MAPPING)
                return fail_at(c, configs ?: root, "'mig-configs' must be a mapping of labels to lists of entries");
        if (ynode_n_items(configs) == 0)
                return fail_at(c, configs, "'mig-configs' must hold at least one configuration");
        m->configs = calloc(MAX(ynode_n_items(configs), 1u), sizeof *m->configs);
        if (!m->configs)
                return -ENOMEM;
        /* labels are distinct: basic/yamldoc.h refuses a key given twice */
        YNODE_FOREACH_PAIR(configs, k, v) {
                if (v->type != YNODE_SEQUENCE)
                        return fail_at(c, v, "configuration '%s': expected a list of entries (- devices: ...)", scalar(k));
                if (v->n_children == 0)
                        return fail_at(c, v, "configuration '%s': expected at least one entry (- devices: ...)", scalar(k));
                MigPartedConfig *cfg = &m->configs[m->n_configs++];
                cfg->label = strdup(scalar(k));
                cfg->entries = calloc(MAX(v->n_children, 1u), sizeof *cfg->entries);
                if (!cfg->label || !cfg->entries)
                        return -ENOMEM;
                YNODE_FOREACH_ITEM(v, i) {
                        int r = parse_entry(c, i, &cfg->entries[cfg->n_entries++]);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static int parse_ydoc(const char *path, const YDoc *doc, MigParted **ret, GvError *ret_error) {
        _cleanup_(migparted_freep) MigParted *m = calloc(1, sizeof *m);
        if (!m || !(m->path = strdup(path)))
                return gv_error_set(ret_error, -ENOMEM, NULL, "parse", NULL);
        Ctx c = {.path = path, .error = ret_error};
        int r = parse_doc(&c, doc, m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

int migparted_parse_text(const char *file, const char *text, size_t len, MigParted **ret, GvError *ret_error) {
        _cleanup_ydoc_free_ YDoc *doc = NULL;
        int r = ydoc_parse(file, text, len, &doc, ret_error);
        if (r < 0)
                return r;
        return parse_ydoc(file, doc, ret, ret_error);
}

int migparted_parse(const char *path, MigParted **ret, GvError *ret_error) {
        _cleanup_ydoc_free_ YDoc *doc = NULL;
        int r = ydoc_load(path, path, MIGPARTED_SIZE_MAX, &doc, ret_error);
        if (r < 0)
                return r;
        return parse_ydoc(path, doc, ret, ret_error);
}

MigParted *migparted_free(MigParted *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_configs; i++) {
                MigPartedConfig *c = &m->configs[i];
                for (size_t k = 0; k < c->n_entries; k++) {
                        MigPartedEntry *e = &c->entries[k];
                        for (size_t d = 0; d < e->n_mig_devices; d++)
                                free(e->mig_devices[d].profile);
                        free(e->mig_devices);
                        free(e->filters);
                        free(e->devices);
                }
                free(c->entries);
                free(c->label);
        }
        free(m->configs);
        free(m->path);
        free(m);
        return NULL;
}

const MigPartedConfig *migparted_find(const MigParted *m, const char *label) {
        if (!label)
                return m->n_configs == 1 ? &m->configs[0] : NULL;
        for (size_t i = 0; i < m->n_configs; i++)
                if (m->configs[i].label && streq(m->configs[i].label, label))
                        return &m->configs[i];
        return NULL;
}

bool migparted_filter_matches(const MigPartedFilter *f, uint32_t device_id, uint32_t subsystem_id) {
        return f->device_id == device_id && (!f->has_subsystem || f->subsystem_id == subsystem_id);
}

bool migparted_entry_selects(const MigPartedEntry *e, unsigned index, uint32_t device_id, uint32_t subsystem_id) {
        bool dev = e->all_devices;
        for (size_t k = 0; k < e->n_devices && !dev; k++)
                dev = e->devices[k] == index;
        if (!dev)
                return false;
        if (e->n_filters == 0)
                return true;
        for (size_t k = 0; k < e->n_filters; k++)
                if (migparted_filter_matches(&e->filters[k], device_id, subsystem_id))
                        return true;
        return false;
}

static const char *const migparted_action_table[_MIGPARTED_ACTION_MAX] = {
        [MIGPARTED_UNMATCHED] = "unmatched",
        [MIGPARTED_SKIP] = "skipped",
        [MIGPARTED_SET] = "set",
};

const char *migparted_action_to_string(MigPartedAction a) {
        return a >= 0 && a < _MIGPARTED_ACTION_MAX ? migparted_action_table[a] : NULL;
}

static int target_fail(GvError *ret_error, const MigParted *m, unsigned line, unsigned column, const char *fmt, ...)
        _printf_(5, 6);
static int target_fail(GvError *ret_error, const MigParted *m, unsigned line, unsigned column, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = vfail(ret_error, "target", m->path, line, column, fmt, ap);
        va_end(ap);
        return r;
}

int migparted_target(const MigParted *m, const MigPartedConfig *c, const MigGpu *g, MigPartedTarget *ret,
                     GvError *ret_error) {
        MigPartedTarget t = {.action = MIGPARTED_UNMATCHED};
        /* mig-parted walks the entries in order and applies each one to every GPU it selects: the last one
         * decides, and entries that disagree on the mode make it fail */
        for (size_t i = 0; i < c->n_entries; i++) {
                const MigPartedEntry *e = &c->entries[i];
                if (!migparted_entry_selects(e, g->index, g->pci_device_id, g->pci_subsystem_id))
                        continue;
                if (t.entry && t.entry->mig_enabled != e->mig_enabled)
                        return target_fail(ret_error, m, e->line, e->column,
                                           "GPU %u (%s) is selected with mig-enabled: %s here and with mig-enabled: %s by "
                                           "the entry at line %u: a GPU cannot be both",
                                           g->index, g->address, e->mig_enabled ? "true" : "false",
                                           t.entry->mig_enabled ? "true" : "false", t.entry->line);
                if (!g->capable && !g->lost && !e->all_devices && e->mig_enabled)
                        return target_fail(ret_error, m, e->line, e->column, "GPU %u (%s, %s) does not support MIG",
                                           g->index, g->address, g->name);
                t.entry = e;
        }
        if (!t.entry) {
                *ret = t;
                return 0;
        }
        t.enabled = t.entry->mig_enabled;
        if (!g->capable && !g->lost) {
                /* "Skipping -- non MIG-capable GPU": devices: all, or mig-enabled: false */
                t.action = MIGPARTED_SKIP;
                *ret = t;
                return 0;
        }
        t.action = MIGPARTED_SET;
        if (g->lost) {
                *ret = t; /* nothing is known of it: the caller refuses to touch it */
                return 0;
        }
        for (size_t d = 0; d < t.entry->n_mig_devices; d++) {
                const MigPartedDevice *md = &t.entry->mig_devices[d];
                int pi = mig_profile_find(g, md->profile);
                if (pi < 0) {
                        _cleanup_free_ char *list = mig_profile_names(g);
                        return target_fail(ret_error, m, md->line, md->column,
                                           "Unknown MIG profile '%s' on GPU %u (%s, %s). Known: %s", md->profile,
                                           g->index, g->address, g->name, strna(list));
                }
                t.want[pi] += md->count;
        }
        if (t.enabled) {
                _cleanup_free_ char *why = NULL;
                if (mig_layout_fits(g, t.want, &why) < 0)
                        return target_fail(ret_error, m, t.entry->line, t.entry->column,
                                           "this layout does not fit GPU %u (%s, %s): %s", g->index, g->address,
                                           g->name, strna(why));
        }
        *ret = t;
        return 0;
}

int migparted_write(FILE *f, const char *label, const MigPartedExport *e, size_t n) {
        fprintf(f, "version: v1\nmig-configs:\n  %s:\n", label);
        if (n == 0) /* no MIG-capable GPU: "disabled everywhere" is true, a no-op, and a valid file */
                fprintf(f, "    - devices: all\n      mig-enabled: false\n");
        for (size_t i = 0; i < n; i++) {
                fprintf(f, "    - devices: [%u]\n      mig-enabled: %s\n", e[i].index, e[i].mig_enabled ? "true" : "false");
                if (!e[i].mig_enabled)
                        continue;
                size_t shown = 0;
                for (size_t k = 0; k < e[i].n; k++)
                        if (e[i].counts[k] > 0)
                                shown++;
                fprintf(f, "      mig-devices:%s\n", shown ? "" : " {}");
                for (size_t k = 0; k < e[i].n; k++)
                        if (e[i].counts[k] > 0)
                                fprintf(f, "        \"%s\": %u\n", e[i].profiles[k], e[i].counts[k]);
        }
        return fflush(f) == 0 && !ferror(f) ? 0 : -EIO;
}
