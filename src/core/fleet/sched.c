/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The scheduler: filter -> score -> reserve over an in-memory fleet.
 *
 * Speed: a request's static part (kind, profile or type, memory, model, live migration) is a signature;
 * each signature keeps the GPUs that could ever serve it, bucketed by their current score (0..255, higher
 * better), with a bitmap of the non-empty buckets. Placing takes the best non-empty bucket (O(1) in the
 * fleet size); a GPU whose usage changes moves between the buckets of the signatures it belongs to. The
 * MIG rules stay in core/mig.c: each model's best and driver-default placement and layout score are
 * tabulated from mig_best_start(), mig_default_start() and mig_layout_score() for every occupancy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "basic/fileio.h"
#include "fleet.h"

#define NB 256 /* score buckets */

struct FleetModel {
        FleetModelInfo info; /* owns types */
        char *key;           /* JSON of info: models are interned by it */
        int8_t best[256][MIG_MAX_PROFILES], dflt[256][MIG_MAX_PROFILES];
        uint16_t score[256];
        unsigned versatility; /* how many kinds besides passthrough it can serve */
};

typedef struct Gpu {
        FleetGpuInfo info; /* info.model.types borrowed from model */
        FleetModel *model;
        uint32_t host;
        int64_t rev;
        size_t units_cap;
        /* usage: base plus ledger */
        int kind; /* unit kind of the ledger, -1 when none */
        unsigned occ, mig_count[MIG_MAX_PROFILES];
        int vgpu_type;
        uint64_t budget;
        unsigned vfs_used, vgpus;
        /* signature links: (sig, candidate) pairs */
        uint32_t *links;
        size_t n_links;
} Gpu;

typedef struct Host {
        char name[FLEET_NAME_MAX];
        bool up;
        uint32_t *gpus;
        size_t n_gpus;
} Host;

typedef struct Sig {
        FleetRequest key;
        uint32_t *cand;
        int16_t *cidx;
        int16_t *cbucket;
        uint32_t *cpos;
        size_t n;
        uint32_t *bucket[NB];
        uint32_t bn[NB], bcap[NB];
        uint64_t nonempty[NB / 64];
        size_t ff; /* first fit: no candidate before ff fits (lowered whenever a GPU changes) */
} Sig;

struct Fleet {
        FleetStrategy strategy;
        Host *hosts;
        size_t n_hosts;
        Gpu *gpus;
        size_t n_gpus;
        FleetModel **models;
        size_t n_models;
        Sig **sigs;
        size_t n_sigs;
};

Fleet *fleet_new(FleetStrategy strategy) {
        Fleet *f = calloc(1, sizeof *f);
        if (f)
                f->strategy = strategy;
        return f;
}

static void sig_free(Sig *s) {
        if (!s)
                return;
        free(s->cand);
        free(s->cidx);
        free(s->cbucket);
        free(s->cpos);
        for (size_t b = 0; b < NB; b++)
                free(s->bucket[b]);
        free(s);
}

static void sigs_drop(Fleet *f) {
        for (size_t i = 0; i < f->n_sigs; i++)
                sig_free(f->sigs[i]);
        free(f->sigs);
        f->sigs = NULL;
        f->n_sigs = 0;
        for (size_t i = 0; i < f->n_gpus; i++) {
                free(f->gpus[i].links);
                f->gpus[i].links = NULL;
                f->gpus[i].n_links = 0;
        }
}

Fleet *fleet_free(Fleet *f) {
        if (!f)
                return NULL;
        sigs_drop(f);
        for (size_t i = 0; i < f->n_gpus; i++) {
                f->gpus[i].info.model.types = NULL;
                fleet_gpu_info_done(&f->gpus[i].info);
        }
        free(f->gpus);
        for (size_t i = 0; i < f->n_hosts; i++)
                free(f->hosts[i].gpus);
        free(f->hosts);
        for (size_t i = 0; i < f->n_models; i++) {
                free(f->models[i]->info.types);
                free(f->models[i]->key);
                free(f->models[i]);
        }
        free(f->models);
        free(f);
        return NULL;
}

FleetStrategy fleet_strategy(const Fleet *f) {
        return f->strategy;
}

/* ---- hosts ---- */

int fleet_host_find(const Fleet *f, const char *name) {
        for (size_t i = 0; i < f->n_hosts; i++)
                if (streq(f->hosts[i].name, name))
                        return (int)i;
        return -ENOENT;
}

int fleet_host_add(Fleet *f, const char *name, bool up, uint32_t *ret) {
        int k = fleet_host_find(f, name);
        if (k >= 0) {
                *ret = (uint32_t)k;
                return fleet_host_set_up(f, (uint32_t)k, up);
        }
        if (strlen(name) >= FLEET_NAME_MAX)
                return -EINVAL;
        Host *n = realloc(f->hosts, (f->n_hosts + 1) * sizeof *n);
        if (!n)
                return -ENOMEM;
        f->hosts = n;
        n[f->n_hosts] = (Host){.up = up};
        snprintf(n[f->n_hosts].name, FLEET_NAME_MAX, "%s", name);
        *ret = (uint32_t)f->n_hosts++;
        return 0;
}

size_t fleet_n_hosts(const Fleet *f) {
        return f->n_hosts;
}

const char *fleet_host_name(const Fleet *f, uint32_t host) {
        return host < f->n_hosts ? f->hosts[host].name : NULL;
}

bool fleet_host_up(const Fleet *f, uint32_t host) {
        return host < f->n_hosts && f->hosts[host].up;
}

/* ---- models ---- */

static void model_tables(FleetModel *m) {
        const FleetModelInfo *i = &m->info;
        for (unsigned occ = 0; occ < 256; occ++) {
                m->score[occ] = (uint16_t)mig_layout_score(i->mig, i->n_mig, occ);
                for (size_t p = 0; p < MIG_MAX_PROFILES; p++) {
                        m->best[occ][p] = p < i->n_mig ? (int8_t)MAX(-1, mig_best_start(i->mig, i->n_mig, i->mig_slices, occ, (int)p)) : -1;
                        m->dflt[occ][p] = p < i->n_mig ? (int8_t)MAX(-1, mig_default_start(i->mig, i->n_mig, i->mig_slices, occ, (int)p)) : -1;
                }
        }
        m->versatility = (i->n_mig > 0) + (i->n_types > 0) + (i->total_vfs > 0);
}

static int model_intern(Fleet *f, FleetModelInfo *info, FleetModel **ret) {
        json_object *j = fleet_model_info_json(info);
        _cleanup_free_ char *key = j ? strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN)) : NULL;
        json_object_put(j);
        if (!key)
                return -ENOMEM;
        for (size_t i = 0; i < f->n_models; i++)
                if (streq(f->models[i]->key, key)) {
                        free(info->types);
                        info->types = f->models[i]->info.types;
                        *ret = f->models[i];
                        return 0;
                }
        FleetModel **n = realloc(f->models, (f->n_models + 1) * sizeof *n);
        if (!n)
                return -ENOMEM;
        f->models = n;
        FleetModel *m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        m->info = *info;
        m->key = TAKE_PTR(key);
        model_tables(m);
        f->models[f->n_models++] = m;
        *ret = m;
        return 0;
}

/* ---- usage and scores ---- */

static uint64_t vgpu_weight(const FleetModelInfo *m, int idx) {
        return FLEET_VGPU_BUDGET / MAX(m->types[idx].max, 1u);
}

static void usage_recompute(Gpu *g) {
        const FleetGpuInfo *i = &g->info;
        const FleetModelInfo *m = &i->model;
        g->kind = -1;
        g->occ = i->base_occ;
        memcpy(g->mig_count, i->base_mig_count, sizeof g->mig_count);
        g->vgpu_type = i->base_vgpu_count ? i->base_vgpu_type : -1;
        g->budget = g->vgpu_type >= 0 ? vgpu_weight(m, g->vgpu_type) * i->base_vgpu_count : 0;
        g->vgpus = i->base_vgpu_count;
        g->vfs_used = i->base_vfs_used;
        for (size_t k = 0; k < i->n_units; k++) {
                const FleetUnit *u = &i->units[k];
                g->kind = u->kind;
                switch (u->kind) {
                case FLEET_MIG:
                        if (u->idx >= 0 && (size_t)u->idx < m->n_mig && u->start >= 0) {
                                g->occ |= ((1u << m->mig[u->idx].size) - 1) << u->start;
                                g->mig_count[u->idx]++;
                        }
                        break;
                case FLEET_VGPU:
                        if (u->idx >= 0 && (size_t)u->idx < m->n_types) {
                                g->vgpu_type = u->idx;
                                g->budget += vgpu_weight(m, u->idx);
                                g->vgpus++;
                        }
                        break;
                case FLEET_VF:
                        g->vfs_used++;
                        break;
                default:
                        break;
                }
        }
}

static double share(const Gpu *g, int kind, uint64_t budget, unsigned occ, unsigned vfs) {
        const FleetModelInfo *m = &g->info.model;
        switch (kind) {
        case FLEET_MIG:
                return m->mig_slices ? (double)__builtin_popcount(occ) / m->mig_slices : 1;
        case FLEET_VGPU:
                return (double)budget / FLEET_VGPU_BUDGET;
        case FLEET_VF:
                return m->total_vfs ? (double)vfs / m->total_vfs : 1;
        case FLEET_PASSTHROUGH:
                return 1;
        default:
                return 0;
        }
}

static double gpu_share(const Gpu *g) {
        return g->kind < 0 && g->info.base_mode == GPU_MODE_HOST ? 0 : share(g, g->kind < 0 ? -1 : g->kind, g->budget, g->occ, g->vfs_used);
}

/* Whether one more unit fits now, ignoring the request's dynamic constraints; ret_start for MIG. */
static bool fits(const Fleet *f, const Gpu *g, FleetKind kind, int idx, int *ret_start) {
        const FleetGpuInfo *i = &g->info;
        const FleetModelInfo *m = &i->model;
        if (!f->hosts[g->host].up || i->drain)
                return false;
        if (g->kind >= 0 && g->kind != (int)kind)
                return false;
        GpuMode base = i->base_mode;
        switch (kind) {
        case FLEET_PASSTHROUGH:
                return g->kind < 0 && base == GPU_MODE_HOST && i->isolated;
        case FLEET_VF:
                return (base == GPU_MODE_HOST || base == GPU_MODE_SRIOV) && m->total_vfs > 0 && g->vfs_used < m->total_vfs;
        case FLEET_VGPU: {
                if (base != GPU_MODE_HOST && base != GPU_MODE_VGPU && !(base == GPU_MODE_SRIOV && m->vgpu_vendor))
                        return false;
                if (idx < 0 || (size_t)idx >= m->n_types)
                        return false;
                if (m->vgpu_one_type && g->vgpu_type >= 0 && g->vgpu_type != idx)
                        return false;
                return g->budget + vgpu_weight(m, idx) <= FLEET_VGPU_BUDGET && g->vgpus < m->types[idx].max;
        }
        case FLEET_MIG: {
                if (base != GPU_MODE_HOST && base != GPU_MODE_MIG)
                        return false;
                if (idx < 0 || (size_t)idx >= m->n_mig || g->mig_count[idx] >= m->mig[idx].max)
                        return false;
                bool driver = f->strategy == FLEET_FIRST_FIT || f->strategy == FLEET_HAMI;
                int st = (driver ? g->model->dflt : g->model->best)[g->occ & 0xff][idx];
                if (st < 0)
                        return false;
                if (ret_start)
                        *ret_start = st;
                return true;
        }
        default:
                return false;
        }
}

static int score(const Fleet *f, const Gpu *g, FleetKind kind, int idx) {
        int st = -1;
        if (!fits(f, g, kind, idx, &st))
                return -1;
        const FleetModelInfo *m = &g->info.model;
        unsigned occ = g->occ, vfs = g->vfs_used;
        uint64_t budget = g->budget;
        if (kind == FLEET_MIG)
                occ |= ((1u << m->mig[idx].size) - 1) << st;
        else if (kind == FLEET_VGPU)
                budget += vgpu_weight(m, idx);
        else if (kind == FLEET_VF)
                vfs++;
        double after = share(g, kind, budget, occ, vfs);
        /* a GPU already in the unit's mode (SR-IOV for vendor vGPU: its VFs carry them) changes nothing */
        GpuMode need = kind == FLEET_VGPU && m->vgpu_vendor ? GPU_MODE_SRIOV : fleet_kind_mode(kind);
        bool mode_change = g->kind < 0 && g->info.base_mode != need && g->info.base_mode != fleet_kind_mode(kind);
        int tier = mode_change ? 0 : 128;
        switch (f->strategy) {
        case FLEET_FRAG:
                if (kind == FLEET_MIG) {
                        /* placements of every profile this one takes away (mig_layout_score), fewest wins */
                        unsigned before = g->model->score[g->occ & 0xff], lost = before - g->model->score[occ & 0xff];
                        unsigned full = MAX(g->model->score[0], 1u);
                        return tier + 127 - (int)(127u * MIN(lost, full) / full);
                }
                if (kind == FLEET_PASSTHROUGH) {
                        /* whole GPUs from the models that can do least else, smallest memory first */
                        unsigned mem_rank = MIN(m->memory_mb / (16 * 1024), 15u);
                        return tier + 127 - (int)(32 * g->model->versatility) - (int)mem_rank;
                }
                return tier + (int)(127 * after);
        case FLEET_BINPACK:
                return tier + (int)(127 * after);
        case FLEET_SPREAD:
                return tier + 127 - (int)(127 * after);
        case FLEET_HAMI: {
                /* (request+used)/allocatable*10 for the node, then the GPU: HAMi's binpack */
                const Host *h = &f->hosts[g->host];
                double used = 0;
                for (size_t k = 0; k < h->n_gpus; k++)
                        used += h->gpus[k] == (uint32_t)(g - f->gpus) ? after : gpu_share(&f->gpus[h->gpus[k]]);
                int node = (int)(10.0 * used / MAX(h->n_gpus, (size_t)1));
                return node * 11 + (int)(10.0 * after);
        }
        default:
                return 0;
        }
}

/* ---- signatures ---- */

static bool sig_key_eq(const FleetRequest *a, const FleetRequest *b) {
        return a->kind == b->kind && streq(a->arg, b->arg) && a->min_memory_mb == b->min_memory_mb &&
               a->vendor == b->vendor && a->device == b->device && a->live_migratable == b->live_migratable;
}

/* The index of the request's profile / type in a model: -1 when the model has none; 0 for kinds without. */
static int resolve(const FleetModelInfo *m, const FleetRequest *r) {
        switch (r->kind) {
        case FLEET_MIG:
                for (size_t i = 0; i < m->n_mig; i++)
                        if (strcasecmp(m->mig[i].name, r->arg) == 0)
                                return (int)i;
                return -1;
        case FLEET_VGPU:
                for (size_t i = 0; i < m->n_types; i++)
                        if (streq(m->types[i].id, r->arg) || streq(m->types[i].name, r->arg))
                                return (int)i;
                return -1;
        case FLEET_VF:
                return m->total_vfs > 0 ? 0 : -1;
        case FLEET_PASSTHROUGH:
                return !r->min_memory_mb || m->memory_mb >= r->min_memory_mb ? 0 : -1;
        default:
                return -1;
        }
}

static bool sig_accepts(const FleetRequest *r, const Gpu *g, int *ret_idx) {
        const FleetModelInfo *m = &g->info.model;
        if (r->vendor && (m->vendor != r->vendor || m->device != r->device))
                return false;
        if (r->live_migratable && !fleet_kind_live_migratable(r->kind))
                return false;
        if (r->kind == FLEET_PASSTHROUGH && !g->info.isolated)
                return false;
        int idx = resolve(m, r);
        if (idx < 0)
                return false;
        *ret_idx = r->kind == FLEET_MIG || r->kind == FLEET_VGPU ? idx : -1;
        return true;
}

static void bucket_remove(Sig *s, size_t c) {
        int b = s->cbucket[c];
        if (b < 0)
                return;
        uint32_t pos = s->cpos[c], last = s->bucket[b][--s->bn[b]];
        s->bucket[b][pos] = last;
        s->cpos[last] = pos;
        s->cbucket[c] = -1;
        if (s->bn[b] == 0)
                s->nonempty[b / 64] &= ~(1ull << (b % 64));
}

static int bucket_insert(Sig *s, size_t c, int b) {
        if (s->bn[b] == s->bcap[b]) {
                uint32_t nc = s->bcap[b] ? s->bcap[b] * 2 : 16;
                uint32_t *n = realloc(s->bucket[b], nc * sizeof *n);
                if (!n)
                        return -ENOMEM;
                s->bucket[b] = n;
                s->bcap[b] = nc;
        }
        s->cpos[c] = s->bn[b];
        s->bucket[b][s->bn[b]++] = (uint32_t)c;
        s->cbucket[c] = (int16_t)b;
        s->nonempty[b / 64] |= 1ull << (b % 64);
        return 0;
}

static int sig_refresh(const Fleet *f, Sig *s, size_t c) {
        s->ff = MIN(s->ff, c);
        if (f->strategy == FLEET_FIRST_FIT)
                return 0;
        int sc = score(f, &f->gpus[s->cand[c]], s->key.kind, s->cidx[c]);
        if (sc == s->cbucket[c])
                return 0;
        bucket_remove(s, c);
        return sc >= 0 ? bucket_insert(s, c, MIN(sc, NB - 1)) : 0;
}

static int gpu_link(Gpu *g, uint32_t sig, uint32_t cand) {
        uint32_t *n = realloc(g->links, (g->n_links + 1) * 2 * sizeof *n);
        if (!n)
                return -ENOMEM;
        g->links = n;
        n[g->n_links * 2] = sig;
        n[g->n_links * 2 + 1] = cand;
        g->n_links++;
        return 0;
}

static int sig_get(Fleet *f, const FleetRequest *r, Sig **ret) {
        for (size_t i = 0; i < f->n_sigs; i++)
                if (sig_key_eq(&f->sigs[i]->key, r))
                        return *ret = f->sigs[i], 0;
        Sig **ns = realloc(f->sigs, (f->n_sigs + 1) * sizeof *ns);
        if (!ns)
                return -ENOMEM;
        f->sigs = ns;
        Sig *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->key = *r;
        s->key.count = 1;
        s->key.owner[0] = s->key.group[0] = '\0';
        s->key.same_host = s->key.same_numa = s->key.same_nvlink = false;
        size_t cap = 0;
        for (size_t i = 0; i < f->n_gpus; i++) {
                int idx;
                if (!sig_accepts(r, &f->gpus[i], &idx))
                        continue;
                if (s->n == cap) {
                        cap = cap ? cap * 2 : 64;
                        uint32_t *a = realloc(s->cand, cap * sizeof *a), *d = a ? realloc(s->cpos, cap * sizeof *d) : NULL;
                        if (a)
                                s->cand = a;
                        if (d)
                                s->cpos = d;
                        int16_t *b = d ? realloc(s->cidx, cap * sizeof *b) : NULL, *c = b ? realloc(s->cbucket, cap * sizeof *c) : NULL;
                        if (b)
                                s->cidx = b;
                        if (c)
                                s->cbucket = c;
                        if (!c)
                                return sig_free(s), -ENOMEM;
                }
                s->cand[s->n] = (uint32_t)i;
                s->cidx[s->n] = (int16_t)idx;
                s->cbucket[s->n] = -1;
                s->n++;
        }
        f->sigs[f->n_sigs] = s;
        uint32_t sid = (uint32_t)f->n_sigs++;
        for (size_t c = 0; c < s->n; c++) {
                int k = gpu_link(&f->gpus[s->cand[c]], sid, (uint32_t)c);
                if (k >= 0)
                        k = sig_refresh(f, s, c);
                if (k < 0)
                        return k;
        }
        *ret = s;
        return 0;
}

/* The GPU's usage changed: move it in every signature (HAMi: every GPU of its host, the node score moved). */
static int reindex(Fleet *f, uint32_t gi) {
        Gpu *g = &f->gpus[gi];
        usage_recompute(g);
        const Host *h = &f->hosts[g->host];
        size_t n = f->strategy == FLEET_HAMI ? h->n_gpus : 1;
        for (size_t k = 0; k < n; k++) {
                const Gpu *x = f->strategy == FLEET_HAMI ? &f->gpus[h->gpus[k]] : g;
                for (size_t l = 0; l < x->n_links; l++) {
                        int r = sig_refresh(f, f->sigs[x->links[2 * l]], x->links[2 * l + 1]);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

/* ---- GPUs ---- */

int fleet_gpu_find(const Fleet *f, const char *host, const char *address) {
        int h = fleet_host_find(f, host);
        if (h < 0)
                return -ENOENT;
        for (size_t k = 0; k < f->hosts[h].n_gpus; k++)
                if (streq(f->gpus[f->hosts[h].gpus[k]].info.address, address))
                        return (int)f->hosts[h].gpus[k];
        return -ENOENT;
}

int fleet_gpu_add(Fleet *f, FleetGpuInfo *info, uint32_t *ret) {
        int h = fleet_host_find(f, info->host);
        if (h < 0)
                return -ENOENT;
        if (fleet_gpu_find(f, info->host, info->address) >= 0)
                return -EEXIST;
        Gpu *n = realloc(f->gpus, (f->n_gpus + 1) * sizeof *n);
        if (!n)
                return -ENOMEM;
        f->gpus = n;
        Host *host = &f->hosts[h];
        uint32_t *hg = realloc(host->gpus, (host->n_gpus + 1) * sizeof *hg);
        if (!hg)
                return -ENOMEM;
        host->gpus = hg;
        Gpu *g = &f->gpus[f->n_gpus];
        *g = (Gpu){.host = (uint32_t)h, .units_cap = info->n_units};
        int r = model_intern(f, &info->model, &g->model);
        if (r < 0)
                return r;
        g->info = *info;
        *info = (FleetGpuInfo){};
        hg[host->n_gpus++] = (uint32_t)f->n_gpus;
        uint32_t gi = (uint32_t)f->n_gpus++;
        usage_recompute(g);
        /* a GPU joins the signatures that exist lazily: rebuild them */
        if (f->n_sigs)
                sigs_drop(f);
        *ret = gi;
        return 0;
}

int fleet_gpu_update(Fleet *f, uint32_t gi, FleetGpuInfo *info) {
        Gpu *g = &f->gpus[gi];
        FleetModel *m;
        int r = model_intern(f, &info->model, &m);
        if (r < 0)
                return r;
        bool same_static = m == g->model && g->info.isolated == info->isolated;
        g->info.model.types = NULL;
        fleet_gpu_info_done(&g->info);
        g->info = *info;
        *info = (FleetGpuInfo){};
        g->model = m;
        g->units_cap = g->info.n_units;
        if (!same_static) {
                sigs_drop(f);
                usage_recompute(g);
                return 0;
        }
        return reindex(f, gi);
}

int fleet_host_set_up(Fleet *f, uint32_t host, bool up) {
        if (f->hosts[host].up == up)
                return 0;
        f->hosts[host].up = up;
        for (size_t k = 0; k < f->hosts[host].n_gpus; k++) {
                int r = reindex(f, f->hosts[host].gpus[k]);
                if (r < 0)
                        return r;
        }
        return 0;
}

size_t fleet_n_gpus(const Fleet *f) {
        return f->n_gpus;
}

const FleetGpuInfo *fleet_gpu(const Fleet *f, uint32_t gpu) {
        return gpu < f->n_gpus ? &f->gpus[gpu].info : NULL;
}

int64_t fleet_gpu_revision(const Fleet *f, uint32_t gpu) {
        return f->gpus[gpu].rev;
}

void fleet_gpu_set_revision(Fleet *f, uint32_t gpu, int64_t rev) {
        f->gpus[gpu].rev = rev;
}

int fleet_gpu_resolve(const Fleet *f, uint32_t gpu, const FleetRequest *r) {
        int idx;
        return sig_accepts(r, &f->gpus[gpu], &idx) ? MAX(idx, 0) : -1;
}

bool fleet_gpu_fits(const Fleet *f, uint32_t gpu, FleetKind kind, int idx) {
        return fits(f, &f->gpus[gpu], kind, idx, NULL);
}

double fleet_gpu_used_share(const Fleet *f, uint32_t gpu) {
        return gpu_share(&f->gpus[gpu]);
}

unsigned fleet_gpu_free_units(const Fleet *f, uint32_t gpu, FleetKind kind, int idx) {
        /* on a scratch copy of the usage: add units until one does not fit */
        Gpu g = f->gpus[gpu];
        unsigned n = 0;
        for (int st; n < 4096 && fits(f, &g, kind, idx, &st); n++) {
                g.kind = (int)kind;
                if (kind == FLEET_MIG) {
                        g.occ |= ((1u << g.info.model.mig[idx].size) - 1) << st;
                        g.mig_count[idx]++;
                } else if (kind == FLEET_VGPU) {
                        g.vgpu_type = idx;
                        g.budget += vgpu_weight(&g.info.model, idx);
                        g.vgpus++;
                } else if (kind == FLEET_VF)
                        g.vfs_used++;
                else
                        return 1;
        }
        return n;
}

/* ---- placing ---- */

static int unit_add(Fleet *f, uint32_t gi, const FleetRequest *r, const char *res, unsigned n, int idx, int start) {
        Gpu *g = &f->gpus[gi];
        if (g->info.n_units == g->units_cap) {
                size_t nc = g->units_cap ? g->units_cap * 2 : 4;
                FleetUnit *u = realloc(g->info.units, nc * sizeof *u);
                if (!u)
                        return -ENOMEM;
                g->info.units = u;
                g->units_cap = nc;
        }
        FleetUnit *u = &g->info.units[g->info.n_units++];
        *u = (FleetUnit){.n = n, .kind = r->kind, .idx = idx, .start = start};
        snprintf(u->res, sizeof u->res, "%s", res);
        snprintf(u->group, sizeof u->group, "%s", r->group);
        return reindex(f, gi);
}

static int units_remove(Fleet *f, uint32_t gi, const char *res) {
        Gpu *g = &f->gpus[gi];
        size_t k = 0;
        for (size_t i = 0; i < g->info.n_units; i++)
                if (!streq(g->info.units[i].res, res))
                        g->info.units[k++] = g->info.units[i];
        if (k == g->info.n_units)
                return 0;
        g->info.n_units = k;
        return reindex(f, gi);
}

int fleet_unplace(Fleet *f, const char *res, const uint32_t *gpus, size_t n_gpus) {
        for (size_t i = 0; i < (gpus ? n_gpus : f->n_gpus); i++) {
                int r = units_remove(f, gpus ? gpus[i] : (uint32_t)i, res);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Constraints that depend on what else the request placed, or on other reservations (anti-affinity). */
static bool constraints_ok(const Fleet *f, const FleetRequest *r, uint32_t gi, const FleetPlacement *done, size_t n) {
        const Gpu *g = &f->gpus[gi];
        if (n > 0) {
                const Gpu *first = &f->gpus[done[0].gpu];
                if (r->same_host && g->host != first->host)
                        return false;
                if (r->same_numa && g->info.numa != first->info.numa)
                        return false;
                if (r->same_nvlink && (!g->info.nvlink[0] || !streq(g->info.nvlink, first->info.nvlink)))
                        return false;
        } else if (r->same_nvlink && !g->info.nvlink[0] && r->count > 1)
                return false;
        if (r->group[0]) {
                const Host *h = &f->hosts[g->host];
                for (size_t k = 0; k < h->n_gpus; k++) {
                        const FleetGpuInfo *x = &f->gpus[h->gpus[k]].info;
                        for (size_t u = 0; u < x->n_units; u++)
                                if (streq(x->units[u].group, r->group))
                                        return false;
                }
        }
        return true;
}

/* The best GPU for one more unit among a host's GPUs (co-located requests after their first unit). */
static int pick_on_host(const Fleet *f, const FleetRequest *r, const Sig *s, uint32_t host, const FleetPlacement *done,
                        size_t n, uint32_t *ret, int *ret_idx) {
        int best = -1, best_sc = -1;
        const Host *h = &f->hosts[host];
        for (size_t k = 0; k < h->n_gpus; k++) {
                uint32_t gi = h->gpus[k];
                int idx;
                if (!sig_accepts(&s->key, &f->gpus[gi], &idx) || !constraints_ok(f, r, gi, done, n))
                        continue;
                int sc = f->strategy == FLEET_FIRST_FIT ? (fits(f, &f->gpus[gi], r->kind, idx, NULL) ? 1 : -1)
                                                        : score(f, &f->gpus[gi], r->kind, idx);
                if (sc > best_sc) {
                        best_sc = sc;
                        best = (int)gi;
                        *ret_idx = idx;
                }
                if (best >= 0 && f->strategy == FLEET_FIRST_FIT)
                        break;
        }
        if (best < 0)
                return -ENOSPC;
        *ret = (uint32_t)best;
        return 0;
}

static int place_one(Fleet *f, const FleetRequest *r, const char *res, uint32_t gi, int idx, FleetPlacement *done,
                     size_t *n) {
        int st = -1;
        if (!fits(f, &f->gpus[gi], r->kind, idx, &st))
                return -ENOSPC;
        int k = unit_add(f, gi, r, res, (unsigned)*n, idx, r->kind == FLEET_MIG ? st : -1);
        if (k < 0)
                return k;
        done[(*n)++] = (FleetPlacement){gi, idx, r->kind == FLEET_MIG ? st : -1};
        return 0;
}

static void undo(Fleet *f, const char *res, const FleetPlacement *done, size_t *n) {
        for (size_t i = 0; i < *n; i++)
                (void)units_remove(f, done[i].gpu, res);
        *n = 0;
}

/* After the first unit of a co-located request: the rest on its host (NUMA node), or in its NVLink domain. */
static int place_colocated(Fleet *f, const FleetRequest *r, const char *res, Sig *s, FleetPlacement *done, size_t *n) {
        while (*n < r->count) {
                uint32_t gi = 0;
                int idx = -1, k = -ENOSPC;
                if (r->same_host || r->same_numa)
                        k = pick_on_host(f, r, s, f->gpus[done[0].gpu].host, done, *n, &gi, &idx);
                else
                        for (size_t c = 0, best_sc = 0; c < s->n; c++)
                                if (constraints_ok(f, r, s->cand[c], done, *n)) {
                                        int sc = score(f, &f->gpus[s->cand[c]], r->kind, s->cidx[c]);
                                        if (sc >= 0 && (k < 0 || (size_t)sc > best_sc)) {
                                                best_sc = (size_t)sc;
                                                gi = s->cand[c];
                                                idx = s->cidx[c];
                                                k = 0;
                                        }
                                }
                if (k < 0 || (k = place_one(f, r, res, gi, idx, done, n)) < 0)
                        return k;
        }
        return 0;
}

/* Whether the host (the GPU's NUMA node, for same_numa) has room for every unit of the request, each alone:
 * a cheap test before trying a host for a co-located request. */
static bool host_can_hold(const Fleet *f, const FleetRequest *r, const Sig *s, uint32_t gi) {
        const Gpu *g0 = &f->gpus[gi];
        const Host *h = &f->hosts[g0->host];
        unsigned room = 0;
        for (size_t k = 0; k < h->n_gpus && room < r->count; k++) {
                const Gpu *g = &f->gpus[h->gpus[k]];
                int idx;
                if ((r->same_numa && g->info.numa != g0->info.numa) || !sig_accepts(&s->key, g, &idx))
                        continue;
                room += fleet_gpu_free_units(f, h->gpus[k], r->kind, idx);
        }
        return room >= r->count;
}

/* One candidate for the next unit: place it, and for the first unit of a co-located request the rest too.
 * -ENOSPC: try the next candidate. tried: hosts a co-located request already failed on (may be NULL). */
static int try_candidate(Fleet *f, const FleetRequest *r, const char *res, Sig *s, size_t c, FleetPlacement *done,
                         size_t *n, bool *tried) {
        uint32_t gi = s->cand[c];
        if (!constraints_ok(f, r, gi, done, *n))
                return -ENOSPC;
        bool first_of_colocated = *n == 0 && r->count > 1 && (r->same_host || r->same_numa || r->same_nvlink);
        if (first_of_colocated && tried && (r->same_host || r->same_numa)) {
                if (tried[f->gpus[gi].host])
                        return -ENOSPC;
                if (!host_can_hold(f, r, s, gi)) {
                        if (!r->same_numa)
                                tried[f->gpus[gi].host] = true;
                        return -ENOSPC;
                }
        }
        int k = place_one(f, r, res, gi, s->cidx[c], done, n);
        if (k < 0 || !first_of_colocated)
                return k;
        k = place_colocated(f, r, res, s, done, n);
        if (k < 0)
                undo(f, res, done, n);
        return k;
}

/* Place the next unit (all of them for a co-located request): candidates best first (first-fit: in order). */
static int place_next(Fleet *f, const FleetRequest *r, const char *res, Sig *s, FleetPlacement *done, size_t *n) {
        bool walk_copy = *n == 0 && r->count > 1 && (r->same_host || r->same_numa || r->same_nvlink);
        _cleanup_free_ bool *tried = walk_copy ? calloc(MAX(f->n_hosts, (size_t)1), sizeof(bool)) : NULL;
        if (walk_copy && !tried)
                return -ENOMEM;
        if (f->strategy == FLEET_FIRST_FIT) {
                for (size_t c = s->ff; c < s->n; c++) {
                        if (!fits(f, &f->gpus[s->cand[c]], r->kind, s->cidx[c], NULL)) {
                                if (c == s->ff)
                                        s->ff++;
                                continue;
                        }
                        int k = try_candidate(f, r, res, s, c, done, n, tried);
                        if (k != -ENOSPC)
                                return k;
                }
                return -ENOSPC;
        }
        for (int w = NB / 64 - 1; w >= 0; w--) {
                uint64_t bits = s->nonempty[w];
                while (bits) {
                        int b = w * 64 + 63 - __builtin_clzll(bits);
                        bits &= ~(1ull << (b % 64));
                        /* a failed co-located attempt moves GPUs between buckets: walk a copy then */
                        size_t nb = s->bn[b];
                        _cleanup_free_ uint32_t *copy = walk_copy ? malloc(MAX(nb, (size_t)1) * sizeof *copy) : NULL;
                        if (walk_copy && !copy)
                                return -ENOMEM;
                        if (copy)
                                memcpy(copy, s->bucket[b], nb * sizeof *copy);
                        for (size_t i = MIN(nb, (size_t)s->bn[b]); i-- > 0;) {
                                int k = try_candidate(f, r, res, s, copy ? copy[i] : s->bucket[b][i], done, n, tried);
                                if (k != -ENOSPC)
                                        return k;
                        }
                }
        }
        return -ENOSPC;
}

int fleet_place(Fleet *f, const FleetRequest *r, const char *res, FleetPlacement *ret, char **ret_error) {
        if (r->count == 0 || r->count > 64)
                return -EINVAL;
        Sig *s;
        int k = sig_get(f, r, &s);
        if (k < 0)
                return k;
        if (s->n == 0) {
                if (ret_error) {
                        _cleanup_free_ char *u = fleet_request_unit(r);
                        *ret_error = strdup_printf("no GPU in the fleet offers %s%s%s", strna(u),
                                                   r->vendor ? " on that model" : "",
                                                   r->live_migratable ? " with live migration" : "");
                }
                return -EINVAL;
        }
        FleetPlacement stack[8];
        _cleanup_free_ FleetPlacement *heap = r->count > ELEMENTSOF(stack) ? calloc(r->count, sizeof *heap) : NULL;
        FleetPlacement *done = heap ?: stack;
        if (r->count > ELEMENTSOF(stack) && !heap)
                return -ENOMEM;
        size_t n = 0;
        while (n < r->count && (k = place_next(f, r, res, s, done, &n)) >= 0)
                ;
        if (k < 0) {
                undo(f, res, done, &n);
                if (k == -ENOSPC && ret_error) {
                        _cleanup_free_ char *u = fleet_request_unit(r);
                        *ret_error = strdup_printf("no room for %u x %s%s now", r->count, strna(u),
                                                   r->same_host ? " on one host" : r->same_nvlink ? " in one NVLink domain" : "");
                }
                return k;
        }
        memcpy(ret, done, r->count * sizeof *ret);
        return 0;
}
