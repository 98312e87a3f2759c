/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/yamldoc.h"
#include "core/state/hostspec.h"

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
        for (size_t i = 0; i < s->n_mig_files; i++)
                migparted_free(s->mig_files[i]);
        free(s->mig_files);
        free(s->file);
        free(s);
        return NULL;
}

/* ---- parsing over the strict YAML tree (basic/yamldoc.h) ---- */

typedef struct Parser {
        const char *file;
        char *error;
} Parser;

_printf_(3, 4) static int fail(Parser *p, const YNode *n, const char *fmt, ...) {
        if (p->error)
                return -EINVAL;
        char buf[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        p->error = ynode_error(p->file, n, "%s", buf);
        return -EINVAL;
}

static int get_string(Parser *p, const YNode *n, const char *key, const char **ret) {
        const char *s = ynode_scalar(n);
        if (!s)
                return fail(p, n, "'%s' must be a string", key);
        *ret = s;
        return 0;
}

static int get_uint(Parser *p, const YNode *n, const char *key, unsigned max, unsigned *ret) {
        const char *s = ynode_scalar(n);
        uint32_t v;
        if (!s || parse_u32(s, 10, &v) < 0)
                return fail(p, n, "'%s' must be a whole number, not '%s'", key, s ?: "(a collection)");
        if (v > max)
                return fail(p, n, "'%s' is %u, more than %u", key, v, max);
        *ret = v;
        return 0;
}

static int get_bool(Parser *p, const YNode *n, const char *key, bool *ret) {
        const char *s = ynode_scalar(n);
        if (s && (streq(s, "true") || streq(s, "yes")))
                *ret = true;
        else if (s && (streq(s, "false") || streq(s, "no")))
                *ret = false;
        else
                return fail(p, n, "'%s' must be true or false, not '%s'", key, s ?: "(a collection)");
        return 0;
}

static int parse_select(Parser *p, const YNode *n, GpuEntry *e) {
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

static int parse_sriov(Parser *p, const YNode *n, GpuEntry *e) {
        if (n->type != YNODE_MAPPING)
                return fail(p, n, "'sriov' must be a mapping: {vfs: N, vfs-mode: passthrough|host}");
        bool have_vfs = false;
        YNODE_FOREACH_PAIR(n, k, v) {
                const char *key = ynode_scalar(k);
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

static int parse_vgpu(Parser *p, const YNode *n, GpuEntry *e) {
        if (n->type != YNODE_MAPPING)
                return fail(p, n, "'vgpu' must be a mapping: {type: TYPE, count: N}");
        YNODE_FOREACH_PAIR(n, k, v) {
                const char *key = ynode_scalar(k);
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

static int parse_mig(Parser *p, const YNode *n, GpuEntry *e) {
        if (n->type != YNODE_MAPPING)
                return fail(p, n, "'mig' must be a mapping of profile to count, or {file: PATH, label: NAME}");
        YNODE_FOREACH_PAIR(n, k, v) {
                const char *key = ynode_scalar(k);
                int r = 0;
                if (key && (streq(key, "file") || streq(key, "label"))) {
                        const char *s = NULL;
                        r = get_string(p, v, key, &s);
                        if (r >= 0 && !(*(streq(key, "file") ? &e->mig_file : &e->mig_label) = strdup(s)))
                                return -ENOMEM;
                } else if (key && profile_name_valid(key)) {
                        if (e->n_mig >= MIGPARTED_PROFILES_MAX)
                                return fail(p, k, "more than %d MIG profiles: no GPU has that many", MIGPARTED_PROFILES_MAX);
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

static int parse_entry(Parser *p, const YNode *n, GpuEntry *e) {
        if (n->type != YNODE_MAPPING)
                return fail(p, n, "each entry of 'gpus' must be a mapping with 'select' and 'mode'");
        e->line = n->line;
        e->column = n->column;
        e->mode = _GPU_MODE_INVALID;
        const YNode *sriov = NULL, *vgpu = NULL, *mig = NULL, *include = NULL;
        bool have_select = false;
        YNODE_FOREACH_PAIR(n, k, v) {
                const char *key = ynode_scalar(k); /* a string, never given twice: basic/yamldoc.h */
                int r = 0;
                if (streq(key, "select")) {
                        r = parse_select(p, v, e);
                        have_select = true;
                } else if (streq(key, "mode")) {
                        const char *m = NULL;
                        r = get_string(p, v, "mode", &m);
                        if (r >= 0 && (e->mode = gpu_mode_from_string(m)) < 0)
                                r = fail(p, v, "unknown mode '%s' (host, passthrough, sriov, vgpu, mig)", m);
                        e->mode_line = v->line;
                        e->mode_column = v->column;
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
                const YNode *node;
                const char *key;
                GpuMode mode;
                int (*parse)(Parser *, const YNode *, GpuEntry *);
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
                if (include->type != YNODE_SEQUENCE)
                        return fail(p, include, "'include' must be a list of PCI addresses");
                size_t ni = 0;
                YNODE_FOREACH_ITEM(include, x) {
                        char *canon = NULL;
                        if (!ynode_scalar(x) || pci_addr_canonical(ynode_scalar(x), &canon) < 0)
                                return fail(p, x, "'%s' in include is not a PCI address", ynode_scalar(x) ?: "(a collection)");
                        if (strv_push(&e->include, &ni, canon) < 0)
                                return -ENOMEM;
                }
                if (e->mode != GPU_MODE_PASSTHROUGH)
                        return fail(p, include, "'include' is for mode passthrough");
        }
        return 0;
}

static bool same_selector(const GpuEntry *a, const GpuEntry *b) {
        return a->select == b->select && a->vendor == b->vendor && a->device == b->device && streq(a->addr, b->addr);
}

static int cmp_selector(const void *x, const void *y) {
        const GpuEntry *a = *(const GpuEntry *const *)x, *b = *(const GpuEntry *const *)y;
        if (a->select != b->select)
                return a->select < b->select ? -1 : 1;
        if (a->vendor != b->vendor || a->device != b->device)
                return a->vendor != b->vendor ? a->vendor - b->vendor : a->device - b->device;
        int c = strcmp(a->addr, b->addr);
        return c ? c : (a > b) - (a < b); /* then in file order */
}

/* Two entries with the same selector can never both apply: the first repetition in the file is the error.
 * (Sorted, so a file of many entries costs n log n, not n².) */
static int check_selectors(const HostSpec *s, char **ret_error) {
        if (s->n_entries < 2)
                return 0;
        _cleanup_free_ const GpuEntry **l = malloc(s->n_entries * sizeof *l);
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_entries; i++)
                l[i] = &s->entries[i];
        qsort(l, s->n_entries, sizeof *l, cmp_selector);
        const GpuEntry *first = NULL, *dup = NULL;
        for (size_t i = 1; i < s->n_entries; i++)
                /* l[i - 1] first of its group (in file order), l[i] its first repetition */
                if (same_selector(l[i - 1], l[i]) && (i == 1 || !same_selector(l[i - 2], l[i - 1])) && (!dup || l[i] < dup)) {
                        first = l[i - 1];
                        dup = l[i];
                }
        if (!dup)
                return 0;
        *ret_error = strdup_printf("%s:%u:%u: selects the same GPUs as the entry at line %u", s->file, dup->line,
                                   dup->column, first->line);
        return -EINVAL;
}

static int spec_from_doc(const char *file, const YDoc *doc, HostSpec **ret, char **ret_error) {
        Parser p = {.file = file};
        int r = 0;
        _cleanup_host_spec_free_ HostSpec *s = calloc(1, sizeof *s);
        if (!s || !(s->file = strdup(file)))
                return -ENOMEM;
        const YNode *root = ydoc_root(doc), *gpus = NULL;
        bool have_version = false;
        if (!root || root->type != YNODE_MAPPING) {
                r = fail(&p, root, "expected a mapping with 'version: 1' and 'gpus'");
                goto out;
        }
        YNODE_FOREACH_PAIR(root, k, v) {
                const char *key = ynode_scalar(k);
                if (streq(key, "version")) {
                        const char *vs = ynode_scalar(v);
                        if (!vs || !streq(vs, "1")) {
                                r = fail(&p, v, "unsupported version '%s' (this gpuvirt reads version 1)", vs ?: "?");
                                goto out;
                        }
                        have_version = true;
                } else if (streq(key, "gpus"))
                        gpus = v;
                else {
                        r = fail(&p, k, "unknown key '%s' (known: version, gpus)", key);
                        goto out;
                }
        }
        if (!have_version) {
                r = fail(&p, root, "missing 'version: 1'");
                goto out;
        }
        if (gpus && gpus->type != YNODE_SEQUENCE) {
                r = fail(&p, gpus, "'gpus' must be a list of entries");
                goto out;
        }
        if (gpus) {
                s->entries = calloc(gpus->n_children ?: 1, sizeof(GpuEntry));
                if (!s->entries) {
                        r = -ENOMEM;
                        goto out;
                }
                YNODE_FOREACH_ITEM(gpus, it) {
                        GpuEntry *e = &s->entries[s->n_entries++];
                        r = parse_entry(&p, it, e);
                        if (r < 0)
                                goto out;
                }
        }
        r = check_selectors(s, &p.error);
out:
        if (r < 0) {
                *ret_error = p.error ?: strdup_printf("%s: out of memory", file);
                return r;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

static int spec_parse(const char *file, const char *text, size_t len, HostSpec **ret, char **ret_error) {
        _cleanup_ydoc_free_ YDoc *doc = NULL;
        _cleanup_(gv_error_done) GvError e = {};
        int r = ydoc_parse(file, text, len, &doc, &e);
        *ret_error = TAKE_PTR(e.message);
        if (r < 0)
                return r;
        return spec_from_doc(file, doc, ret, ret_error);
}

/* Each mig-parted file the entries name, parsed once (however many entries and GPUs use it), and the
 * label each entry names looked up in it: a broken file or a missing label is an error of host.yaml. */
static int load_mig_files(HostSpec *s, char **ret_error) {
        for (size_t i = 0; i < s->n_entries; i++) {
                GpuEntry *e = &s->entries[i];
                if (!e->mig_file)
                        continue;
                const MigParted *m = NULL;
                for (size_t k = 0; k < s->n_mig_files && !m; k++)
                        if (streq(s->mig_files[k]->path, e->mig_file))
                                m = s->mig_files[k];
                if (!m) {
                        MigParted **l = realloc(s->mig_files, (s->n_mig_files + 1) * sizeof *l);
                        if (!l)
                                return -ENOMEM;
                        s->mig_files = l;
                        _cleanup_(gv_error_done) GvError err = {};
                        int r = migparted_parse(e->mig_file, &l[s->n_mig_files], &err);
                        if (r < 0) {
                                *ret_error = strdup_printf("%s:%u:%u: mig file: %s", s->file, e->line, e->column,
                                                           err.message ?: errno_message(r));
                                return r == -ENOMEM ? r : -EINVAL;
                        }
                        m = l[s->n_mig_files++];
                }
                e->mig_parted = m;
                e->mig_config = migparted_find(m, e->mig_label);
                if (!e->mig_config) {
                        *ret_error = strdup_printf("%s:%u:%u: %s has no configuration '%s'", s->file, e->line, e->column,
                                                   e->mig_file, e->mig_label);
                        return -EINVAL;
                }
        }
        return 0;
}

static int spec_load(const char *path, const char *display_name, HostSpec **ret, char **ret_error) {
        _cleanup_ydoc_free_ YDoc *doc = NULL;
        _cleanup_host_spec_free_ HostSpec *s = NULL;
        _cleanup_(gv_error_done) GvError e = {};
        int r = ydoc_load(path, display_name, HOST_SPEC_SIZE_MAX, &doc, &e);
        *ret_error = TAKE_PTR(e.message);
        if (r < 0)
                return r;
        r = spec_from_doc(display_name, doc, &s, ret_error);
        if (r < 0)
                return r;
        r = load_mig_files(s, ret_error);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

/* The messages of the readers above become the GvError: "FILE:LINE:COL: why", errno as returned (EINVAL for
 * bad content), step "parse" ("read" for a file that could not be read). */
int host_spec_parse(const char *file, const char *text, size_t len, HostSpec **ret, GvError *err) {
        char *e = NULL;
        int r = spec_parse(file, text, len, ret, &e);
        return r < 0 ? gv_error_take(err, r, NULL, "parse", GV_HINT_NONE, e) : 0;
}

int host_spec_load(const char *path, const char *display_name, HostSpec **ret, GvError *err) {
        char *e = NULL;
        int r = spec_load(path, display_name, ret, &e);
        return r < 0 ? gv_error_take(err, r, NULL, r == -EINVAL ? "parse" : "read", GV_HINT_NONE, e) : 0;
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

int host_spec_match(const HostSpec *s, const PciDevice *gpu, const GpuEntry **ret, GvError *err) {
        const GpuEntry *best = NULL;
        for (size_t i = 0; i < s->n_entries; i++) {
                const GpuEntry *e = &s->entries[i];
                if (!entry_matches(e, gpu))
                        continue;
                if (best && best->select == e->select) {
                        return gv_error_set(err, -EINVAL, gpu->addr, "match", "%s:%u:%u: matches %s like the entry at line %u",
                                            s->file, e->line, e->column, gpu->addr, best->line);
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
