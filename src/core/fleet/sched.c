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
 *
 * frag (the default) also looks at what runs out first. Each signature knows its supply (the units its
 * candidates could still take, each alone: room()) and how fast placements drain it (every unit of supply a
 * placement takes away, by any request: its own units, the placements a MIG instance blocks, all of a GPU a
 * mode change commits; decayed over the last FLEET_WINDOW requests). supply / drain is how many requests it
 * lasts. The candidates of a signature are kept in parts, one per pool (the GPUs of one model in one starting
 * mode), each with its buckets; a placement tries first the part whose best candidate hurts the signature that
 * runs out soonest least (the longest time left, after the placement, of the signatures it takes supply
 * from), and within a part the bucket order (a GPU already in the unit's mode first, then the fragmentation
 * score). So a request that several models or modes can serve goes where capacity is least needed by the rest
 * of the demand, and the kinds run out together, not one early.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "basic/fileio.h"
#include "core/fleet/fleet.h"

#define NB 256 /* score buckets */
#define TIER 128 /* scores from TIER up: no mode change */
#define FLEET_WINDOW 65536.0 /* requests over which a signature's drain is measured (exponential decay) */

struct FleetModel {
        FleetModelInfo info; /* owns types */
        char *key;           /* JSON of info: models are interned by it */
        int8_t best[256][MIG_MAX_PROFILES], dflt[256][MIG_MAX_PROFILES];
        /* how many instances of a profile still fit one after another, each where best / dflt puts it */
        uint8_t nbest[256][MIG_MAX_PROFILES], ndflt[256][MIG_MAX_PROFILES];
        uint16_t score[256];
        unsigned versatility; /* how many kinds besides passthrough it can serve */
};

/* What a GPU gives away: its base usage plus the ledger's units. */
typedef struct Usage {
        int kind; /* unit kind of the ledger, -1 when none */
        unsigned occ, mig_count[MIG_MAX_PROFILES];
        int vgpu_type;
        uint64_t budget;
        unsigned vfs_used, vgpus;
} Usage;

typedef struct Gpu {
        FleetGpuInfo info; /* info.model.types borrowed from model */
        FleetModel *model;
        uint32_t host;
        int64_t rev;
        size_t units_cap;
        Usage u;
        bool held; /* its record is in a transaction in flight: no placements on it */
        uint32_t pool;
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

/* GPUs of one model in one starting mode. */
typedef struct Pool {
        const FleetModel *model;
        GpuMode mode;
} Pool;

/* The candidates of a signature in one pool (frag; the other strategies have one part for all). */
typedef struct Part {
        uint32_t pool;
        uint32_t *bucket[NB];
        uint32_t bn[NB], bcap[NB];
        uint64_t nonempty[NB / 64];
} Part;

typedef struct Sig {
        FleetRequest key;
        uint32_t *cand;
        int16_t *cidx;
        int16_t *cbucket;
        uint32_t *cpos;
        uint16_t *cpart;
        uint16_t *croom; /* units of the signature the candidate can take now: room() */
        size_t n;
        int64_t supply;  /* sum of croom */
        double drain;    /* units of supply placements took, each scaled by Fleet.decay when taken */
        Part *parts;
        size_t n_parts;
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
        Pool *pools;
        size_t n_pools;
        double decay; /* grows by 1/(1 - 1/FLEET_WINDOW) per request: what was taken earlier weighs less */
        bool placing; /* GPUs change because units are placed: supply lost is drain */
};

Fleet *fleet_new(FleetStrategy strategy) {
        Fleet *f = calloc(1, sizeof *f);
        if (f) {
                f->strategy = strategy;
                f->decay = 1;
        }
        return f;
}

static void sig_free(Sig *s) {
        if (!s)
                return;
        free(s->cand);
        free(s->cidx);
        free(s->cbucket);
        free(s->cpos);
        free(s->cpart);
        free(s->croom);
        for (size_t p = 0; p < s->n_parts; p++)
                for (size_t b = 0; b < NB; b++)
                        free(s->parts[p].bucket[b]);
        free(s->parts);
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
        free(f->pools);
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
        for (unsigned occ = 0; occ < 256; occ++)
                for (size_t p = 0; p < i->n_mig && p < MIG_MAX_PROFILES; p++) {
                        unsigned nb = 0, nd = 0;
                        for (unsigned o = occ; m->best[o][p] >= 0; nb++)
                                o = (o | ((1u << i->mig[p].size) - 1) << m->best[o][p]) & 0xff;
                        for (unsigned o = occ; m->dflt[o][p] >= 0; nd++)
                                o = (o | ((1u << i->mig[p].size) - 1) << m->dflt[o][p]) & 0xff;
                        m->nbest[occ][p] = (uint8_t)nb;
                        m->ndflt[occ][p] = (uint8_t)nd;
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

/* One more unit in a usage (MIG: at start). */
static void usage_add(const FleetModelInfo *m, Usage *u, FleetKind kind, int idx, int start) {
        u->kind = (int)kind;
        switch (kind) {
        case FLEET_MIG:
                if (idx >= 0 && (size_t)idx < m->n_mig && start >= 0) {
                        u->occ |= ((1u << m->mig[idx].size) - 1) << start;
                        u->mig_count[idx]++;
                }
                break;
        case FLEET_VGPU:
                if (idx >= 0 && (size_t)idx < m->n_types) {
                        u->vgpu_type = idx;
                        u->budget += vgpu_weight(m, idx);
                        u->vgpus++;
                }
                break;
        case FLEET_VF:
                u->vfs_used++;
                break;
        default:
                break;
        }
}

static void usage_recompute(Gpu *g) {
        const FleetGpuInfo *i = &g->info;
        const FleetModelInfo *m = &i->model;
        Usage *u = &g->u;
        *u = (Usage){.kind = -1, .occ = i->base_occ, .vgpus = i->base_vgpu_count, .vfs_used = i->base_vfs_used};
        memcpy(u->mig_count, i->base_mig_count, sizeof u->mig_count);
        u->vgpu_type = i->base_vgpu_count ? i->base_vgpu_type : -1;
        u->budget = u->vgpu_type >= 0 ? vgpu_weight(m, u->vgpu_type) * i->base_vgpu_count : 0;
        for (size_t k = 0; k < i->n_units; k++)
                usage_add(m, u, i->units[k].kind, i->units[k].idx, i->units[k].start);
}

static double share(const Gpu *g, int kind, const Usage *u) {
        const FleetModelInfo *m = &g->info.model;
        switch (kind) {
        case FLEET_MIG:
                return m->mig_slices ? (double)__builtin_popcount(u->occ) / m->mig_slices : 1;
        case FLEET_VGPU:
                return (double)u->budget / FLEET_VGPU_BUDGET;
        case FLEET_VF:
                return m->total_vfs ? (double)u->vfs_used / m->total_vfs : 1;
        case FLEET_PASSTHROUGH:
                return 1;
        default:
                return 0;
        }
}

static double gpu_share(const Gpu *g) {
        if (g->u.kind >= 0)
                return share(g, g->u.kind, &g->u);
        /* no fleet unit: what is there without the fleet */
        switch (g->info.base_mode) {
        case GPU_MODE_PASSTHROUGH:
                return 1;
        case GPU_MODE_MIG:
                return share(g, FLEET_MIG, &g->u);
        case GPU_MODE_VGPU:
                return share(g, FLEET_VGPU, &g->u);
        case GPU_MODE_SRIOV:
                return share(g, g->info.model.vgpu_vendor ? FLEET_VGPU : FLEET_VF, &g->u);
        default:
                return 0;
        }
}

/* How many more units of (kind, idx) fit on the GPU with usage u, added one after another, each where the
 * strategy puts it; 0 when none does or the GPU takes no placements (host down, draining, held). ret_start:
 * where the next MIG instance goes. Ignores the request's dynamic constraints. */
static unsigned room(const Fleet *f, const Gpu *g, const Usage *u, FleetKind kind, int idx, int *ret_start) {
        const FleetGpuInfo *i = &g->info;
        const FleetModelInfo *m = &i->model;
        if (!f->hosts[g->host].up || i->drain || g->held)
                return 0;
        if (u->kind >= 0 && u->kind != (int)kind)
                return 0;
        GpuMode base = i->base_mode;
        switch (kind) {
        case FLEET_PASSTHROUGH:
                return u->kind < 0 && base == GPU_MODE_HOST && i->isolated;
        case FLEET_VF:
                if (base != GPU_MODE_HOST && base != GPU_MODE_SRIOV)
                        return 0;
                return m->total_vfs > u->vfs_used ? m->total_vfs - u->vfs_used : 0;
        case FLEET_VGPU: {
                if (base != GPU_MODE_HOST && base != GPU_MODE_VGPU && !(base == GPU_MODE_SRIOV && m->vgpu_vendor))
                        return 0;
                if (idx < 0 || (size_t)idx >= m->n_types)
                        return 0;
                if (m->vgpu_one_type && u->vgpu_type >= 0 && u->vgpu_type != idx)
                        return 0;
                uint64_t w = vgpu_weight(m, idx);
                uint64_t by_budget = u->budget < FLEET_VGPU_BUDGET ? (FLEET_VGPU_BUDGET - u->budget) / w : 0;
                unsigned by_count = m->types[idx].max > u->vgpus ? m->types[idx].max - u->vgpus : 0;
                return (unsigned)MIN(by_budget, (uint64_t)by_count);
        }
        case FLEET_MIG: {
                if (base != GPU_MODE_HOST && base != GPU_MODE_MIG)
                        return 0;
                if (idx < 0 || (size_t)idx >= m->n_mig || u->mig_count[idx] >= m->mig[idx].max)
                        return 0;
                bool driver = f->strategy == FLEET_FIRST_FIT || f->strategy == FLEET_HAMI;
                unsigned occ = u->occ & 0xff;
                int st = (driver ? g->model->dflt : g->model->best)[occ][idx];
                if (st < 0)
                        return 0;
                if (ret_start)
                        *ret_start = st;
                return MIN((unsigned)(driver ? g->model->ndflt : g->model->nbest)[occ][idx], m->mig[idx].max - u->mig_count[idx]);
        }
        default:
                return 0;
        }
}

static bool fits(const Fleet *f, const Gpu *g, FleetKind kind, int idx, int *ret_start) {
        return room(f, g, &g->u, kind, idx, ret_start) > 0;
}

static int score(const Fleet *f, const Gpu *g, FleetKind kind, int idx) {
        int st = -1;
        if (!fits(f, g, kind, idx, &st))
                return -1;
        const FleetModelInfo *m = &g->info.model;
        Usage after = g->u;
        usage_add(m, &after, kind, idx, st);
        double sh = share(g, kind, &after);
        /* a GPU already in the unit's mode (SR-IOV for vendor vGPU: its VFs carry them) changes nothing */
        GpuMode need = kind == FLEET_VGPU && m->vgpu_vendor ? GPU_MODE_SRIOV : fleet_kind_mode(kind);
        bool mode_change = g->u.kind < 0 && g->info.base_mode != need && g->info.base_mode != fleet_kind_mode(kind);
        int tier = mode_change ? 0 : TIER;
        switch (f->strategy) {
        case FLEET_FRAG:
                if (kind == FLEET_MIG) {
                        /* placements of every profile this one takes away (mig_layout_score), fewest wins */
                        unsigned before = g->model->score[g->u.occ & 0xff], lost = before - g->model->score[after.occ & 0xff];
                        unsigned full = MAX(g->model->score[0], 1u);
                        return tier + 127 - (int)(127u * MIN(lost, full) / full);
                }
                if (kind == FLEET_PASSTHROUGH) {
                        /* whole GPUs from the models that can do least else, smallest memory first */
                        unsigned mem_rank = MIN(m->memory_mb / (16 * 1024), 15u);
                        return tier + 127 - (int)(32 * g->model->versatility) - (int)mem_rank;
                }
                return tier + (int)(127 * sh);
        case FLEET_BINPACK:
                return tier + (int)(127 * sh);
        case FLEET_SPREAD:
                return tier + 127 - (int)(127 * sh);
        case FLEET_HAMI: {
                /* (request+used)/allocatable*10 for the node, then the GPU: HAMi's binpack */
                const Host *h = &f->hosts[g->host];
                double used = 0;
                for (size_t k = 0; k < h->n_gpus; k++)
                        used += h->gpus[k] == (uint32_t)(g - f->gpus) ? sh : gpu_share(&f->gpus[h->gpus[k]]);
                int node = (int)(10.0 * used / MAX(h->n_gpus, (size_t)1));
                return node * 11 + (int)(10.0 * sh);
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
        Part *p = &s->parts[s->cpart[c]];
        uint32_t pos = s->cpos[c], last = p->bucket[b][--p->bn[b]];
        p->bucket[b][pos] = last;
        s->cpos[last] = pos;
        s->cbucket[c] = -1;
        if (p->bn[b] == 0)
                p->nonempty[b / 64] &= ~(1ull << (b % 64));
}

static int bucket_insert(Sig *s, size_t c, int b) {
        Part *p = &s->parts[s->cpart[c]];
        if (p->bn[b] == p->bcap[b]) {
                uint32_t nc = p->bcap[b] ? p->bcap[b] * 2 : 16;
                uint32_t *n = realloc(p->bucket[b], nc * sizeof *n);
                if (!n)
                        return -ENOMEM;
                p->bucket[b] = n;
                p->bcap[b] = nc;
        }
        s->cpos[c] = p->bn[b];
        p->bucket[b][p->bn[b]++] = (uint32_t)c;
        s->cbucket[c] = (int16_t)b;
        p->nonempty[b / 64] |= 1ull << (b % 64);
        return 0;
}

/* The best non-empty bucket of a part at or below b, -1 when none. */
static int bucket_next(const Part *p, int b) {
        for (int w = b / 64; b >= 0 && w >= 0; w--) {
                uint64_t bits = p->nonempty[w];
                if (w == b / 64 && b % 64 != 63)
                        bits &= (2ull << (b % 64)) - 1;
                if (bits)
                        return w * 64 + 63 - __builtin_clzll(bits);
        }
        return -1;
}

static int sig_refresh(const Fleet *f, Sig *s, size_t c) {
        s->ff = MIN(s->ff, c);
        if (f->strategy == FLEET_FIRST_FIT)
                return 0;
        const Gpu *g = &f->gpus[s->cand[c]];
        if (f->strategy == FLEET_FRAG) {
                unsigned n = MIN(room(f, g, &g->u, s->key.kind, s->cidx[c], NULL), (unsigned)UINT16_MAX);
                if (n < s->croom[c] && f->placing)
                        s->drain += (double)(s->croom[c] - n) * f->decay;
                s->supply += (int64_t)n - s->croom[c];
                s->croom[c] = (uint16_t)n;
        }
        int sc = score(f, g, s->key.kind, s->cidx[c]);
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

/* The part of a candidate: frag keeps one per pool, the other strategies one for all. */
static int part_of(const Fleet *f, Sig *s, const Gpu *g, uint16_t *ret) {
        uint32_t pool = f->strategy == FLEET_FRAG ? g->pool : 0;
        size_t p;
        for (p = 0; p < s->n_parts; p++)
                if (s->parts[p].pool == pool)
                        return *ret = (uint16_t)p, 0;
        if (p >= UINT16_MAX)
                return -E2BIG;
        Part *n = realloc(s->parts, (p + 1) * sizeof *n);
        if (!n)
                return -ENOMEM;
        s->parts = n;
        n[p] = (Part){.pool = pool};
        s->n_parts++;
        *ret = (uint16_t)p;
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
        int k;
        size_t cap = 0;
        for (size_t i = 0; i < f->n_gpus; i++) {
                int idx;
                if (!sig_accepts(r, &f->gpus[i], &idx))
                        continue;
                if (s->n == cap) {
                        cap = cap ? cap * 2 : 64;
                        uint32_t *a = realloc(s->cand, cap * sizeof *a);
                        if (a)
                                s->cand = a;
                        uint32_t *d = a ? realloc(s->cpos, cap * sizeof *d) : NULL;
                        if (d)
                                s->cpos = d;
                        int16_t *b = d ? realloc(s->cidx, cap * sizeof *b) : NULL;
                        if (b)
                                s->cidx = b;
                        int16_t *c = b ? realloc(s->cbucket, cap * sizeof *c) : NULL;
                        if (c)
                                s->cbucket = c;
                        uint16_t *p = c ? realloc(s->cpart, cap * sizeof *p) : NULL;
                        if (p)
                                s->cpart = p;
                        uint16_t *q = p ? realloc(s->croom, cap * sizeof *q) : NULL;
                        if (q)
                                s->croom = q;
                        if (!q)
                                return sig_free(s), -ENOMEM;
                }
                s->cand[s->n] = (uint32_t)i;
                s->cidx[s->n] = (int16_t)idx;
                s->cbucket[s->n] = -1;
                s->croom[s->n] = 0;
                if ((k = part_of(f, s, &f->gpus[i], &s->cpart[s->n])) < 0)
                        return sig_free(s), k;
                s->n++;
        }
        f->sigs[f->n_sigs] = s;
        uint32_t sid = (uint32_t)f->n_sigs++;
        for (size_t c = 0; c < s->n; c++) {
                k = gpu_link(&f->gpus[s->cand[c]], sid, (uint32_t)c);
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

/* The GPU's pool, made when new. */
static int pool_join(Fleet *f, Gpu *g) {
        size_t p;
        for (p = 0; p < f->n_pools; p++)
                if (f->pools[p].model == g->model && f->pools[p].mode == g->info.base_mode)
                        break;
        if (p == f->n_pools) {
                Pool *n = realloc(f->pools, (p + 1) * sizeof *n);
                if (!n)
                        return -ENOMEM;
                f->pools = n;
                n[p] = (Pool){.model = g->model, .mode = g->info.base_mode};
                f->n_pools++;
        }
        g->pool = (uint32_t)p;
        return 0;
}

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
        *g = (Gpu){.host = (uint32_t)h, .units_cap = info->n_units, .pool = UINT32_MAX};
        int r = model_intern(f, &info->model, &g->model);
        if (r < 0)
                return r;
        g->info = *info;
        *info = (FleetGpuInfo){};
        hg[host->n_gpus++] = (uint32_t)f->n_gpus;
        uint32_t gi = (uint32_t)f->n_gpus++;
        usage_recompute(g);
        if ((r = pool_join(f, g)) < 0)
                return r;
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
        /* what decides the signatures and parts a GPU is in */
        bool same_static = m == g->model && g->info.isolated == info->isolated && g->info.base_mode == info->base_mode;
        g->info.model.types = NULL;
        fleet_gpu_info_done(&g->info);
        g->info = *info;
        *info = (FleetGpuInfo){};
        g->model = m;
        g->units_cap = g->info.n_units;
        if (!same_static) {
                sigs_drop(f);
                usage_recompute(g);
                return pool_join(f, g);
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
        const Gpu *g = &f->gpus[gpu];
        return room(f, g, &g->u, kind, idx, NULL);
}

int fleet_gpu_hold(Fleet *f, uint32_t gpu, bool held) {
        Gpu *g = &f->gpus[gpu];
        if (g->held == held)
                return 0;
        g->held = held;
        return reindex(f, gpu);
}

bool fleet_gpu_held(const Fleet *f, uint32_t gpu) {
        return f->gpus[gpu].held;
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
        f->placing = true;
        int k = reindex(f, gi);
        f->placing = false;
        return k;
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

/* A stretch of buckets of one part, walked best bucket first. */
typedef struct Walk {
        uint32_t part;
        int hi, lo;
        double last; /* lasts() of its best candidate */
} Walk;

static int walk_cmp(const void *a, const void *b) {
        const Walk *x = a, *y = b;
        if (x->last != y->last)
                return x->last > y->last ? -1 : 1;
        if (x->hi != y->hi)
                return x->hi > y->hi ? -1 : 1;
        return x->part < y->part ? -1 : x->part > y->part;
}

/* frag: after one unit of (kind, idx) is placed on the GPU, how long the signature that runs out soonest among
 * those the placement takes supply from still lasts: supply left / drain, in a unit common to all signatures
 * (the drains are scaled by Fleet.decay). The request's own signature loses its unit wherever it goes, so only
 * the others count; INFINITY when the placement takes from none that is being drained. */
static double lasts(const Fleet *f, const Sig *self, const Gpu *g, FleetKind kind, int idx) {
        int st = -1;
        if (!fits(f, g, kind, idx, &st))
                return 0;
        Usage after = g->u;
        usage_add(&g->info.model, &after, kind, idx, st);
        double t = INFINITY;
        for (size_t l = 0; l < g->n_links; l++) {
                const Sig *s = f->sigs[g->links[2 * l]];
                uint32_t k = g->links[2 * l + 1];
                if (s->drain <= 0 || s == self)
                        continue;
                unsigned left = room(f, g, &after, s->key.kind, s->cidx[k], NULL);
                if (left < s->croom[k])
                        t = MIN(t, (double)(s->supply - (s->croom[k] - left)) / s->drain);
        }
        return t;
}

/* The order in which the candidates are tried. frag: each part's candidates without and with a mode change,
 * the one whose best candidate leaves the longest time (lasts()) first, then the one without a mode change,
 * then the best score; the other strategies: every bucket, best first. */
static size_t walks(const Fleet *f, const Sig *s, Walk *ret) {
        if (f->strategy != FLEET_FRAG) {
                ret[0] = (Walk){0, NB - 1, 0, 0};
                return s->n_parts > 0;
        }
        size_t n = 0;
        for (uint32_t p = 0; p < s->n_parts; p++)
                for (int t = 0; t < 2; t++) {
                        Walk w = {p, t == 0 ? NB - 1 : TIER - 1, t == 0 ? TIER : 0, 0};
                        int b = bucket_next(&s->parts[p], w.hi);
                        if (b < w.lo)
                                continue;
                        const Part *pt = &s->parts[p];
                        uint32_t c = pt->bucket[b][pt->bn[b] - 1]; /* the first one the walk tries */
                        w.last = lasts(f, s, &f->gpus[s->cand[c]], s->key.kind, s->cidx[c]);
                        w.hi = b;
                        ret[n++] = w;
                }
        qsort(ret, n, sizeof *ret, walk_cmp);
        return n;
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
        Walk stack[16];
        _cleanup_free_ Walk *heap = 2 * s->n_parts > ELEMENTSOF(stack) ? malloc(2 * s->n_parts * sizeof *heap) : NULL;
        if (2 * s->n_parts > ELEMENTSOF(stack) && !heap)
                return -ENOMEM;
        Walk *w = heap ?: stack;
        size_t nw = walks(f, s, w);
        for (size_t k = 0; k < nw; k++) {
                Part *p = &s->parts[w[k].part];
                for (int b = bucket_next(p, w[k].hi); b >= w[k].lo; b = bucket_next(p, b - 1)) {
                        /* a failed co-located attempt moves GPUs between buckets: walk a copy then */
                        size_t nb = p->bn[b];
                        _cleanup_free_ uint32_t *copy = walk_copy ? malloc(MAX(nb, (size_t)1) * sizeof *copy) : NULL;
                        if (walk_copy && !copy)
                                return -ENOMEM;
                        if (copy)
                                memcpy(copy, p->bucket[b], nb * sizeof *copy);
                        for (size_t i = MIN(nb, (size_t)p->bn[b]); i-- > 0;) {
                                int x = try_candidate(f, r, res, s, copy ? copy[i] : p->bucket[b][i], done, n, tried);
                                if (x != -ENOSPC)
                                        return x;
                        }
                }
        }
        return -ENOSPC;
}

int fleet_place(Fleet *f, const FleetRequest *r, const char *res, FleetPlacement *ret, GvError *err) {
        if (r->count == 0 || r->count > 64)
                return gv_error_set(err, -EINVAL, NULL, NULL, "count must be 1 to 64, not %u", r->count);
        Sig *s;
        int k = sig_get(f, r, &s);
        if (k < 0)
                return gv_error_set(err, k, NULL, NULL, NULL);
        /* what was taken before this request weighs 1 - 1/FLEET_WINDOW less */
        f->decay /= 1.0 - 1.0 / FLEET_WINDOW;
        if (f->decay > 1e200) {
                for (size_t i = 0; i < f->n_sigs; i++)
                        f->sigs[i]->drain /= f->decay;
                f->decay = 1;
        }
        if (s->n == 0) {
                _cleanup_free_ char *u = err ? fleet_request_unit(r) : NULL;
                return gv_error_set(err, -EINVAL, NULL, NULL, "no GPU in the fleet offers %s%s%s", strna(u),
                                    r->vendor ? " on that model" : "", r->live_migratable ? " with live migration" : "");
        }
        FleetPlacement stack[8];
        _cleanup_free_ FleetPlacement *heap = r->count > ELEMENTSOF(stack) ? calloc(r->count, sizeof *heap) : NULL;
        FleetPlacement *done = heap ?: stack;
        if (r->count > ELEMENTSOF(stack) && !heap)
                return gv_error_set(err, -ENOMEM, NULL, NULL, NULL);
        size_t n = 0;
        while (n < r->count && (k = place_next(f, r, res, s, done, &n)) >= 0)
                ;
        if (k < 0) {
                undo(f, res, done, &n);
                if (k != -ENOSPC)
                        return gv_error_set(err, k, NULL, NULL, NULL);
                _cleanup_free_ char *u = err ? fleet_request_unit(r) : NULL;
                return gv_error_set(err, k, NULL, NULL, "no room for %u x %s%s now", r->count, strna(u),
                                    r->same_host ? " on one host" : r->same_nvlink ? " in one NVLink domain" : "");
        }
        memcpy(ret, done, r->count * sizeof *ret);
        return 0;
}
