/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "basic/fileio.h"
#include "hostspec.h"

static const char *const gpu_mode_table[_GPU_MODE_MAX] = {
        [GPU_MODE_HOST] = "host",
        [GPU_MODE_PASSTHROUGH] = "passthrough",
        [GPU_MODE_SRIOV] = "sriov",
        [GPU_MODE_VGPU] = "vgpu",
        [GPU_MODE_MIG] = "mig",
};

const char *gpu_mode_to_string(GpuMode m) {
        return m >= 0 && m < _GPU_MODE_MAX ? gpu_mode_table[m] : NULL;
}

GpuMode gpu_mode_from_string(const char *s) {
        for (int i = 0; i < _GPU_MODE_MAX; i++)
                if (s && streq(gpu_mode_table[i], s))
                        return (GpuMode)i;
        return _GPU_MODE_INVALID;
}

static void entry_done(GpuEntry *e) {
        strv_free(e->include);
        free(e->vgpu_type);
        strv_free(e->vgpu_units);
        for (size_t i = 0; i < e->n_mig; i++)
                free(e->mig[i].profile);
        free(e->mig);
        free(e->mig_file);
        free(e->mig_label);
}

HostSpec *host_spec_free(HostSpec *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_entries; i++)
                entry_done(&s->entries[i]);
        free(s->entries);
        free(s->file);
        free(s);
        return NULL;
}

/* ---- parsing over libyaml's document model ---- */

typedef struct Parser {
        yaml_document_t doc;
        const char *file;
        char *error;
} Parser;

_printf_(3, 4) static int fail(Parser *p, const yaml_node_t *n, const char *fmt, ...) {
        if (p->error)
                return -EINVAL;
        char buf[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        p->error = strdup_printf("%s:%zu:%zu: %s", p->file, n ? n->start_mark.line + 1 : 1,
                                 n ? n->start_mark.column + 1 : 1, buf);
        return -EINVAL;
}

static const char *scalar(const yaml_node_t *n) {
        return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int get_string(Parser *p, const yaml_node_t *n, const char *key, const char **ret) {
        const char *s = scalar(n);
        if (!s)
                return fail(p, n, "'%s' must be a string", key);
        *ret = s;
        return 0;
}

static int get_uint(Parser *p, const yaml_node_t *n, const char *key, unsigned max, unsigned *ret) {
        const char *s = scalar(n);
        uint32_t v;
        if (!s || parse_u32(s, 10, &v) < 0)
                return fail(p, n, "'%s' must be a whole number, not '%s'", key, s ?: "(a collection)");
        if (v > max)
                return fail(p, n, "'%s' is %u, more than %u", key, v, max);
        *ret = v;
        return 0;
}

static int get_bool(Parser *p, const yaml_node_t *n, const char *key, bool *ret) {
        const char *s = scalar(n);
        if (s && (streq(s, "true") || streq(s, "yes")))
                *ret = true;
        else if (s && (streq(s, "false") || streq(s, "no")))
                *ret = false;
        else
                return fail(p, n, "'%s' must be true or false, not '%s'", key, s ?: "(a collection)");
        return 0;
}

#define FOREACH_PAIR(p, map, k, v)                                                                            \
        for (yaml_node_pair_t *_pair = (map)->data.mapping.pairs.start; _pair < (map)->data.mapping.pairs.top;   \
             _pair++)                                                                                          \
                for (yaml_node_t *k = yaml_document_get_node(&(p)->doc, _pair->key),                          \
                                 *v = yaml_document_get_node(&(p)->doc, _pair->value);                        \
                     k; k = NULL)

static int parse_select(Parser *p, const yaml_node_t *n, GpuEntry *e) {
        const char *s = NULL;
        int r = get_string(p, n, "select", &s);
        if (r < 0)
                return r;
        PciAddr a;
        unsigned v, d;
        int used = 0;
        if (streq(s, "all"))
                e->select = SELECT_ALL;
        else if (pci_addr_parse(s, &a) == 0) {
                e->select = SELECT_ADDRESS;
                pci_addr_format(&a, e->addr);
        } else if (strlen(s) == 9 && sscanf(s, "%4x:%4x%n", &v, &d, &used) == 2 && used == 9) {
                e->select = SELECT_ID;
                e->vendor = (uint16_t)v;
                e->device = (uint16_t)d;
        } else
                return fail(p, n, "select '%s' is neither 'all', a vendor:device ID (10de:20b0) nor a PCI address "
                                  "(0000:3b:00.0)", s);
        return 0;
}

static int parse_sriov(Parser *p, const yaml_node_t *n, GpuEntry *e) {
        if (n->type != YAML_MAPPING_NODE)
                return fail(p, n, "'sriov' must be a mapping: {vfs: N, vfs-mode: passthrough|host}");
        bool have_vfs = false;
        FOREACH_PAIR(p, n, k, v) {
                const char *key = scalar(k);
                int r;
                if (key && streq(key, "vfs")) {
                        r = get_uint(p, v, "vfs", 4096, &e->vfs);
                        have_vfs = true;
                } else if (key && streq(key, "vfs-mode")) {
                        const char *m = NULL;
                        r = get_string(p, v, "vfs-mode", &m);
                        if (r >= 0 && !streq(m, "passthrough") && !streq(m, "host"))
                                r = fail(p, v, "vfs-mode must be 'passthrough' or 'host', not '%s'", m);
                        if (r >= 0)
                                e->vfs_vfio = streq(m, "passthrough");
                } else
                        r = fail(p, k, "unknown key '%s' in sriov (known: vfs, vfs-mode)", strna(key));
                if (r < 0)
                        return r;
        }
        if (!have_vfs)
                return fail(p, n, "sriov needs 'vfs'");
        return 0;
}

static int parse_vgpu(Parser *p, const yaml_node_t *n, GpuEntry *e) {
        if (n->type != YAML_MAPPING_NODE)
                return fail(p, n, "'vgpu' must be a mapping: {type: TYPE, count: N}");
        FOREACH_PAIR(p, n, k, v) {
                const char *key = scalar(k);
                int r;
                if (key && streq(key, "type")) {
                        const char *t = NULL;
                        r = get_string(p, v, "type", &t);
                        if (r >= 0 && !(e->vgpu_type = strdup(t)))
                                return -ENOMEM;
                } else if (key && streq(key, "count"))
                        r = get_uint(p, v, "count", 64, &e->vgpu_count);
                else
                        r = fail(p, k, "unknown key '%s' in vgpu (known: type, count)", strna(key));
                if (r < 0)
                        return r;
        }
        if (!e->vgpu_type)
                return fail(p, n, "vgpu needs 'type'");
        if (e->vgpu_count == 0)
                return fail(p, n, "vgpu needs a 'count' of at least 1");
        return 0;
}

static bool profile_name_valid(const char *s) {
        /* "1g.5gb", "1g.10gb+me", "7g.80gb": <n>g.<n>gb[+me] */
        unsigned g, gb;
        int used = 0;
        if (sscanf(s, "%ug.%ugb%n", &g, &gb, &used) != 2)
                return false;
        return s[used] == '\0' || streq(s + used, "+me");
}

static int parse_mig(Parser *p, const yaml_node_t *n, GpuEntry *e) {
        if (n->type != YAML_MAPPING_NODE)
                return fail(p, n, "'mig' must be a mapping of profile to count, or {file: PATH, label: NAME}");
        FOREACH_PAIR(p, n, k, v) {
                const char *key = scalar(k);
                int r = 0;
                if (key && (streq(key, "file") || streq(key, "label"))) {
                        const char *s = NULL;
                        r = get_string(p, v, key, &s);
                        if (r >= 0 && !(*(streq(key, "file") ? &e->mig_file : &e->mig_label) = strdup(s)))
                                return -ENOMEM;
                } else if (key && profile_name_valid(key)) {
                        MigCount *m = realloc(e->mig, (e->n_mig + 1) * sizeof *m);
                        if (!m)
                                return -ENOMEM;
                        e->mig = m;
                        m[e->n_mig] = (MigCount){.profile = strdup(key)};
                        if (!m[e->n_mig].profile)
                                return -ENOMEM;
                        r = get_uint(p, v, key, 8, &m[e->n_mig++].count);
                } else
                        r = fail(p, k, "'%s' is not a MIG profile name (like 1g.5gb or 3g.40gb)", strna(key));
                if (r < 0)
                        return r;
        }
        if ((e->mig_file != NULL) != (e->mig_label != NULL))
                return fail(p, n, "mig needs both 'file' and 'label' to use a mig-parted configuration");
        if (e->mig_file && e->n_mig > 0)
                return fail(p, n, "mig takes either profile counts or file/label, not both");
        return 0;
}

static int parse_entry(Parser *p, const yaml_node_t *n, GpuEntry *e) {
        if (n->type != YAML_MAPPING_NODE)
                return fail(p, n, "each entry of 'gpus' must be a mapping with 'select' and 'mode'");
        e->line = (unsigned)n->start_mark.line + 1;
        e->column = (unsigned)n->start_mark.column + 1;
        e->mode = _GPU_MODE_INVALID;
        const yaml_node_t *sriov = NULL, *vgpu = NULL, *mig = NULL, *include = NULL;
        bool have_select = false;
        FOREACH_PAIR(p, n, k, v) {
                const char *key = scalar(k);
                int r = 0;
                if (!key)
                        r = fail(p, k, "keys must be strings");
                else if (streq(key, "select")) {
                        r = parse_select(p, v, e);
                        have_select = true;
                } else if (streq(key, "mode")) {
                        const char *m = NULL;
                        r = get_string(p, v, "mode", &m);
                        if (r >= 0 && (e->mode = gpu_mode_from_string(m)) < 0)
                                r = fail(p, v, "unknown mode '%s' (host, passthrough, sriov, vgpu, mig)", m);
                        e->mode_line = (unsigned)v->start_mark.line + 1;
                        e->mode_column = (unsigned)v->start_mark.column + 1;
                } else if (streq(key, "force"))
                        r = get_bool(p, v, "force", &e->force);
                else if (streq(key, "include"))
                        include = v;
                else if (streq(key, "sriov"))
                        sriov = v;
                else if (streq(key, "vgpu"))
                        vgpu = v;
                else if (streq(key, "mig"))
                        mig = v;
                else
                        r = fail(p, k, "unknown key '%s' (known: select, mode, force, include, sriov, vgpu, mig)", key);
                if (r < 0)
                        return r;
        }
        if (!have_select)
                return fail(p, n, "entry without 'select'");
        if (e->mode < 0)
                return fail(p, n, "entry without 'mode'");
        const struct {
                const yaml_node_t *node;
                const char *key;
                GpuMode mode;
                int (*parse)(Parser *, const yaml_node_t *, GpuEntry *);
        } sections[] = {
                {sriov, "sriov", GPU_MODE_SRIOV, parse_sriov},
                {vgpu, "vgpu", GPU_MODE_VGPU, parse_vgpu},
                {mig, "mig", GPU_MODE_MIG, parse_mig},
        };
        for (size_t i = 0; i < ELEMENTSOF(sections); i++) {
                if (!sections[i].node) {
                        if (e->mode == sections[i].mode)
                                return fail(p, n, "mode %s needs a '%s' section", sections[i].key, sections[i].key);
                        continue;
                }
                if (e->mode != sections[i].mode)
                        return fail(p, sections[i].node, "'%s' belongs to mode %s, this entry is mode %s",
                                    sections[i].key, sections[i].key, gpu_mode_to_string(e->mode));
                int r = sections[i].parse(p, sections[i].node, e);
                if (r < 0)
                        return r;
        }
        if (include) {
                if (include->type != YAML_SEQUENCE_NODE)
                        return fail(p, include, "'include' must be a list of PCI addresses");
                size_t ni = 0;
                for (yaml_node_item_t *it = include->data.sequence.items.start; it < include->data.sequence.items.top;
                     it++) {
                        yaml_node_t *x = yaml_document_get_node(&p->doc, *it);
                        char *canon = NULL;
                        if (!scalar(x) || pci_addr_canonical(scalar(x), &canon) < 0)
                                return fail(p, x, "'%s' in include is not a PCI address", scalar(x) ?: "(a collection)");
                        if (strv_push(&e->include, &ni, canon) < 0)
                                return -ENOMEM;
                }
                if (e->mode != GPU_MODE_PASSTHROUGH)
                        return fail(p, include, "'include' is for mode passthrough");
        }
        return 0;
}

int host_spec_parse(const char *file, const char *text, size_t len, HostSpec **ret, char **ret_error) {
        Parser p = {.file = file};
        yaml_parser_t parser;
        int r = 0;
        if (!yaml_parser_initialize(&parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
        if (!yaml_parser_load(&parser, &p.doc)) {
                *ret_error = strdup_printf("%s:%zu:%zu: %s%s%s", file, parser.problem_mark.line + 1,
                                           parser.problem_mark.column + 1, parser.problem ?: "syntax error",
                                           parser.context ? " " : "", parser.context ?: "");
                yaml_parser_delete(&parser);
                return -EINVAL;
        }
        yaml_parser_delete(&parser);

        _cleanup_host_spec_free_ HostSpec *s = calloc(1, sizeof *s);
        if (!s || !(s->file = strdup(file))) {
                yaml_document_delete(&p.doc);
                return -ENOMEM;
        }
        yaml_node_t *root = yaml_document_get_root_node(&p.doc);
        const yaml_node_t *gpus = NULL;
        bool have_version = false;
        if (!root || root->type != YAML_MAPPING_NODE) {
                r = fail(&p, root, "expected a mapping with 'version: 1' and 'gpus'");
                goto out;
        }
        FOREACH_PAIR(&p, root, k, v) {
                const char *key = scalar(k);
                if (key && streq(key, "version")) {
                        const char *vs = scalar(v);
                        if (!vs || !streq(vs, "1")) {
                                r = fail(&p, v, "unsupported version '%s' (this gpuvirt reads version 1)", vs ?: "?");
                                goto out;
                        }
                        have_version = true;
                } else if (key && streq(key, "gpus"))
                        gpus = v;
                else {
                        r = fail(&p, k, "unknown key '%s' (known: version, gpus)", strna(key));
                        goto out;
                }
        }
        if (!have_version) {
                r = fail(&p, root, "missing 'version: 1'");
                goto out;
        }
        if (gpus && gpus->type != YAML_SEQUENCE_NODE) {
                r = fail(&p, gpus, "'gpus' must be a list of entries");
                goto out;
        }
        if (gpus) {
                size_t n = (size_t)(gpus->data.sequence.items.top - gpus->data.sequence.items.start);
                s->entries = calloc(n ?: 1, sizeof(GpuEntry));
                if (!s->entries) {
                        r = -ENOMEM;
                        goto out;
                }
                for (yaml_node_item_t *it = gpus->data.sequence.items.start; it < gpus->data.sequence.items.top; it++) {
                        GpuEntry *e = &s->entries[s->n_entries++];
                        r = parse_entry(&p, yaml_document_get_node(&p.doc, *it), e);
                        if (r < 0)
                                goto out;
                }
        }
        /* Two entries with the same selector can never both apply. */
        for (size_t i = 0; i < s->n_entries; i++)
                for (size_t j = 0; j < i; j++) {
                        const GpuEntry *a = &s->entries[j], *b = &s->entries[i];
                        if (a->select == b->select && a->vendor == b->vendor && a->device == b->device &&
                            streq(a->addr, b->addr)) {
                                p.error = strdup_printf("%s:%u:%u: selects the same GPUs as the entry at line %u",
                                                        file, b->line, b->column, a->line);
                                r = -EINVAL;
                                goto out;
                        }
                }
out:
        yaml_document_delete(&p.doc);
        if (r < 0) {
                *ret_error = p.error ?: strdup_printf("%s: out of memory", file);
                return r;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

int host_spec_load(const char *path, const char *display_name, HostSpec **ret, char **ret_error) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = read_full(path, 1024 * 1024, (void **)&text, &len);
        if (r < 0) {
                *ret_error = strdup_printf("%s: cannot read: %s", display_name, strerror(-r));
                return r;
        }
        return host_spec_parse(display_name, text, len, ret, ret_error);
}

static bool entry_matches(const GpuEntry *e, const PciDevice *d) {
        switch (e->select) {
        case SELECT_ALL:
                return true;
        case SELECT_ID:
                return e->vendor == d->vendor && e->device == d->device;
        case SELECT_ADDRESS:
                return streq(e->addr, d->addr);
        }
        return false;
}

int host_spec_match(const HostSpec *s, const PciDevice *gpu, const GpuEntry **ret, char **ret_error) {
        const GpuEntry *best = NULL;
        for (size_t i = 0; i < s->n_entries; i++) {
                const GpuEntry *e = &s->entries[i];
                if (!entry_matches(e, gpu))
                        continue;
                if (best && best->select == e->select) {
                        *ret_error = strdup_printf("%s:%u:%u: matches %s like the entry at line %u", s->file, e->line,
                                                   e->column, gpu->addr, best->line);
                        return -EINVAL;
                }
                if (!best || e->select > best->select)
                        best = e;
        }
        *ret = best;
        return 0;
}

/* A YAML double-quoted scalar: backslash, quote and control characters escaped. */
static void fput_quoted(FILE *f, const char *v) {
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
                if (*p == '"' || *p == '\\')
                        fprintf(f, "\\%c", *p);
                else if (*p < 0x20 || *p == 0x7f)
                        fprintf(f, "\\x%02x", *p);
                else
                        fputc(*p, f);
        }
        fputc('"', f);
}

static void fmt_entry(FILE *f, const GpuEntry *e) {
        if (e->select == SELECT_ALL)
                fprintf(f, "  - select: all\n");
        else if (e->select == SELECT_ID)
                fprintf(f, "  - select: \"%04x:%04x\"\n", e->vendor, e->device);
        else
                fprintf(f, "  - select: \"%s\"\n", e->addr);
        fprintf(f, "    mode: %s\n", gpu_mode_to_string(e->mode));
        if (e->force)
                fprintf(f, "    force: true\n");
        if (e->include) {
                fprintf(f, "    include: [");
                for (char **i = e->include; *i; i++)
                        fprintf(f, "%s\"%s\"", i == e->include ? "" : ", ", *i);
                fprintf(f, "]\n");
        }
        switch (e->mode) {
        case GPU_MODE_SRIOV:
                fprintf(f, "    sriov: {vfs: %u, vfs-mode: %s}\n", e->vfs, e->vfs_vfio ? "passthrough" : "host");
                break;
        case GPU_MODE_VGPU:
                fprintf(f, "    vgpu: {type: ");
                fput_quoted(f, e->vgpu_type);
                fprintf(f, ", count: %u}\n", e->vgpu_count);
                break;
        case GPU_MODE_MIG:
                if (e->mig_file) {
                        fprintf(f, "    mig: {file: ");
                        fput_quoted(f, e->mig_file);
                        fprintf(f, ", label: ");
                        fput_quoted(f, e->mig_label);
                        fprintf(f, "}\n");
                } else {
                        fprintf(f, "    mig: {");
                        for (size_t i = 0; i < e->n_mig; i++) {
                                fprintf(f, "%s", i ? ", " : "");
                                fput_quoted(f, e->mig[i].profile);
                                fprintf(f, ": %u", e->mig[i].count);
                        }
                        fprintf(f, "}\n");
                }
                break;
        default:
                break;
        }
}

char *host_spec_format(const HostSpec *s) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return NULL;
        fprintf(f, "# gpuvirt desired state (gpuvirt export); apply with: gpuvirt apply -f FILE\nversion: 1\n");
        fprintf(f, s->n_entries == 0 ? "gpus: []\n" : "gpus:\n");
        for (size_t i = 0; i < s->n_entries; i++)
                fmt_entry(f, &s->entries[i]);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}
