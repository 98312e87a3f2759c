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
#include "migparted.h"

typedef struct Ctx {
        const char *path;
        char **error;
} Ctx;

static int fail_at(Ctx *c, const YNode *n, const char *fmt, ...) _printf_(3, 4);
static int fail_at(Ctx *c, const YNode *n, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *msg = NULL;
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        free(*c->error);
        *c->error = ynode_error(c->path, n, "%s", msg ?: "error");
        return -EINVAL;
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

static int parse_filter(Ctx *c, const YNode *n, uint32_t *ret) {
        const char *s = scalar(n);
        const char *hex = s ? (startswith(s, "0x") ?: startswith(s, "0X")) : NULL;
        if (!hex || parse_u32(hex, 16, ret) < 0)
                return fail_at(c, n, "device-filter: expected a PCI id as 0xDDDDVVVV (device, vendor), e.g. \"0x20B010DE\"");
        return 0;
}

static int parse_entry(Ctx *c, const YNode *n, MigPartedEntry *e) {
        if (n->type != YNODE_MAPPING)
                return fail_at(c, n, "expected a mapping with devices, mig-enabled and mig-devices");
        e->line = n->line;
        e->column = n->column;
        bool have_devices = false, have_enabled = false;
        YNODE_FOREACH_PAIR(n, k, v) {
                const char *key = scalar(k); /* a string: basic/yamldoc.h refuses other keys, and keys given twice */
                int r = 0;
                if (streq(key, "device-filter")) {
                        if (v->type == YNODE_SCALAR) {
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
        m->configs = calloc(MAX(ynode_n_items(configs), 1u), sizeof *m->configs);
        if (!m->configs)
                return -ENOMEM;
        /* labels are distinct: basic/yamldoc.h refuses a key given twice */
        YNODE_FOREACH_PAIR(configs, k, v) {
                if (v->type != YNODE_SEQUENCE)
                        return fail_at(c, v, "configuration '%s': expected a list of entries (- devices: ...)", scalar(k));
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

static int parse_ydoc(const char *path, const YDoc *doc, MigParted **ret, char **ret_error) {
        _cleanup_(migparted_freep) MigParted *m = calloc(1, sizeof *m);
        if (!m || !(m->path = strdup(path)))
                return -ENOMEM;
        Ctx c = {.path = path, .error = ret_error};
        int r = parse_doc(&c, doc, m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

int migparted_parse_text(const char *file, const char *text, size_t len, MigParted **ret, char **ret_error) {
        *ret_error = NULL;
        _cleanup_ydoc_free_ YDoc *doc = NULL;
        int r = ydoc_parse(file, text, len, &doc, ret_error);
        if (r < 0)
                return r;
        return parse_ydoc(file, doc, ret, ret_error);
}

int migparted_parse(const char *path, MigParted **ret, char **ret_error) {
        *ret_error = NULL;
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
        for (size_t i = 0; i < m->n_configs; i++)
                if (m->configs[i].label && streq(m->configs[i].label, label))
                        return &m->configs[i];
        return NULL;
}

const MigPartedEntry *migparted_match(const MigPartedConfig *c, unsigned index, uint32_t pci_device_id) {
        for (size_t i = 0; i < c->n_entries; i++) {
                const MigPartedEntry *e = &c->entries[i];
                bool dev = e->all_devices;
                for (size_t k = 0; k < e->n_devices && !dev; k++)
                        dev = e->devices[k] == index;
                if (!dev)
                        continue;
                bool filt = e->n_filters == 0;
                for (size_t k = 0; k < e->n_filters && !filt; k++)
                        filt = e->filters[k] == pci_device_id;
                if (filt)
                        return e;
        }
        return NULL;
}

int migparted_entry_want(const MigPartedEntry *e, const MigGpu *g, unsigned want[MIG_MAX_PROFILES],
                         const MigPartedDevice **ret_unknown) {
        memset(want, 0, sizeof(unsigned) * MIG_MAX_PROFILES);
        for (size_t d = 0; d < e->n_mig_devices; d++) {
                int pi = mig_profile_find(g, e->mig_devices[d].profile);
                if (pi < 0) {
                        *ret_unknown = &e->mig_devices[d];
                        return -ENOENT;
                }
                want[pi] = e->mig_devices[d].count; /* names are distinct (parse_entry) */
        }
        return 0;
}

int migparted_write(FILE *f, const char *label, const MigPartedExport *e, size_t n) {
        fprintf(f, "version: v1\nmig-configs:\n  %s:\n", label);
        if (n == 0)
                fprintf(f, "    []\n");
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
