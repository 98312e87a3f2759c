/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fleet benchmark on a synthetic fleet of HOSTS x 8 GPUs generated in memory (not sysfs): the GPU models are
 * the records that real agents published for simulated hosts (their local stores: the MIG tables come from
 * the fake NVML, the vGPU types and VFs from the simulated sysfs), cloned over the hosts in a mix of models
 * and starting modes.
 *  1. placements per second in process, beside the same decisions made by scanning every GPU (the peer);
 *  2. packing: requests placed before the first rejection under a random stream, per strategy, beside an
 *     upper bound that no strategy can beat (the fractional relaxation, see docs/fleet.md);
 *  3. with --etcd ENDPOINTS: committed reservations per second through etcd, by the number of transactions
 *     in flight and the batch size of each, beside one reservation per transaction, one at a time (the peer).
 * Usage: bench-fleet [--hosts N] [--etcd HOST:PORT,...] ROOT...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "basic/fileio.h"
#include "core/fleet/client.h"
#include "core/fleet/fleet.h"
#include "core/fleet/store.h"
#include "sim/sim.h"

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds this process used */
static double cpu_s(void) {
        struct rusage u;
        getrusage(RUSAGE_SELF, &u);
        return (double)u.ru_utime.tv_sec + (double)u.ru_stime.tv_sec + (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
}

/* templates: GPU records published by agents on simulated hosts */
static FleetGpuInfo templ[64];
static size_t n_templ;

static int load_templates(char **roots, int n) {
        for (int i = 0; i < n; i++) {
                Root *root;
                Store *s;
                GvError err = {};
                if (root_open(roots[i], 0, &root) < 0 || store_open("local", root, &s, &err) < 0)
                        return fprintf(stderr, "cannot open %s: %s\n", roots[i], err.message ?: "?"), -1;
                StoreKv *kv;
                size_t nk;
                if (store_range(s, FLEET_KEY_GPUS, true, &kv, &nk, NULL) < 0)
                        return fprintf(stderr, "no records in %s (run gpuvirt fleet gpus there first)\n", roots[i]), -1;
                for (size_t k = 0; k < nk && n_templ < ELEMENTSOF(templ); k++) {
                        FleetGpuInfo g;
                        if (fleet_gpu_record_parse(s, kv[k].value, &g, NULL) < 0)
                                continue;
                        /* only GPUs that can give units (not the BMC's VGA) */
                        if (!g.isolated && g.model.n_types == 0 && g.model.n_mig == 0 && g.model.total_vfs == 0) {
                                fleet_gpu_info_done(&g);
                                continue;
                        }
                        g.n_units = 0;
                        /* one template per model (the other GPUs of the host are the same) */
                        bool seen = false;
                        json_object *a = fleet_model_info_json(&g.model);
                        for (size_t t = 0; t < n_templ && !seen; t++) {
                                json_object *b = fleet_model_info_json(&templ[t].model);
                                seen = streq(json_object_to_json_string(a), json_object_to_json_string(b));
                                json_object_put(b);
                        }
                        json_object_put(a);
                        if (seen) {
                                fleet_gpu_info_done(&g);
                                continue;
                        }
                        templ[n_templ++] = g;
                }
                store_kvs_free(kv, nk);
                store_free(s);
                root_free(root);
        }
        return n_templ ? 0 : -1;
}

static FleetGpuInfo clone_info(const FleetGpuInfo *t, const char *host, unsigned slot) {
        FleetGpuInfo g = *t;
        g.model.types = t->model.n_types ? malloc(t->model.n_types * sizeof *g.model.types) : NULL;
        if (g.model.types)
                memcpy(g.model.types, t->model.types, t->model.n_types * sizeof *g.model.types);
        g.isolation_reason = NULL;
        g.units = NULL;
        g.n_units = 0;
        snprintf(g.host, sizeof g.host, "%s", host);
        snprintf(g.address, sizeof g.address, "0000:%02x:00.0", 0x10 + slot);
        g.numa = slot < 4 ? 0 : 1;
        if (g.nvlink[0])
                snprintf(g.nvlink, sizeof g.nvlink, "%s/nvswitch", host);
        /* mixed starting modes: some MIG GPUs already in MIG mode, some SR-IOV PFs with their VFs */
        uint64_t r = next_rand() % 4;
        if (t->model.n_mig && r == 0)
                g.base_mode = GPU_MODE_MIG;
        else if ((t->model.total_vfs || t->model.vgpu_vendor) && r == 1)
                g.base_mode = GPU_MODE_SRIOV;
        else
                g.base_mode = GPU_MODE_HOST;
        return g;
}

/* the templates the hosts use (all, or one for the MIG-only packing run) */
static size_t host_templ[64], n_host_templ;

/* host i: 8 GPUs of one template model (hosts hold one model, as real servers do) */
static Fleet *make_fleet(size_t hosts, FleetStrategy st) {
        Fleet *f = fleet_new(st);
        rng = 88172645463325252ull;
        for (size_t h = 0; h < hosts; h++) {
                char name[32];
                snprintf(name, sizeof name, "h%05zu", h);
                uint32_t hi;
                fleet_host_add(f, name, true, &hi);
                const FleetGpuInfo *t = &templ[host_templ[h % n_host_templ]];
                for (unsigned s = 0; s < 8; s++) {
                        FleetGpuInfo g = clone_info(t, name, s);
                        uint32_t gi;
                        if (fleet_gpu_add(f, &g, &gi) < 0)
                                return fprintf(stderr, "cannot add a GPU\n"), NULL;
                        fleet_gpu_info_done(&g);
                }
        }
        return f;
}

/* the request mix: every unit kind the templates offer, drawn at random */
static FleetRequest mix[256];
static unsigned mix_w[256];
static size_t n_mix;

static void add_mix(FleetKind k, const char *arg, unsigned mem_gb, unsigned w, unsigned count, bool same_host) {
        for (size_t i = 0; i < n_mix; i++)
                if (mix[i].kind == k && streq(mix[i].arg, arg ?: "") && mix[i].min_memory_mb == mem_gb * 1024 && mix[i].count == count)
                        return;
        if (n_mix == ELEMENTSOF(mix))
                return;
        FleetRequest *r = &mix[n_mix];
        *r = (FleetRequest){.kind = k, .count = count, .same_host = same_host, .min_memory_mb = mem_gb * 1024};
        snprintf(r->arg, sizeof r->arg, "%s", arg ?: "");
        snprintf(r->owner, sizeof r->owner, "bench");
        mix_w[n_mix++] = w;
}

static void build_mix(bool mig_only) {
        n_mix = 0;
        if (!mig_only) {
                add_mix(FLEET_PASSTHROUGH, NULL, 0, 6, 1, false);
                add_mix(FLEET_PASSTHROUGH, NULL, 40, 3, 1, false);
                add_mix(FLEET_PASSTHROUGH, NULL, 0, 2, 2, true);
        }
        for (size_t k = 0; k < n_host_templ; k++) {
                const FleetModelInfo *m = &templ[host_templ[k]].model;
                if (mig_only) {
                        /* every profile, small ones more often (the usual inference-heavy mix) */
                        for (size_t p = 0; p < m->n_mig; p++)
                                add_mix(FLEET_MIG, m->mig[p].name, 0, 16 / m->mig[p].size, 1, false);
                        continue;
                }
                if (m->total_vfs)
                        add_mix(FLEET_VF, NULL, 0, 8, 1, false);
                for (size_t p = 0; p < m->n_mig; p++)
                        if (!strstr(m->mig[p].name, "+me"))
                                add_mix(FLEET_MIG, m->mig[p].name, 0, m->mig[p].size <= 2 ? 8 : 4, 1, false);
                for (size_t v = 0; v < m->n_types && v < 6; v++)
                        add_mix(FLEET_VGPU, m->types[v].id, 0, 3, 1, false);
        }
}

static const FleetRequest *draw(void) {
        unsigned total = 0;
        for (size_t i = 0; i < n_mix; i++)
                total += mix_w[i];
        unsigned x = (unsigned)(next_rand() % total);
        for (size_t i = 0; i < n_mix; i++) {
                if (x < mix_w[i])
                        return &mix[i];
                x -= mix_w[i];
        }
        return &mix[0];
}

/* ---- the bound: a fractional relaxation (Hall's condition over the sets of GPU classes) ----
 * A class is a template model in one starting mode (what it can serve: fits() never changes a mode other than
 * host). A unit takes a share of a GPU that no feasible layout exceeds in sum: a whole GPU 1, a VF 1/VFs, a
 * vGPU 1/max of its type, a MIG instance its memory slices / slices. Requests of a prefix are placeable at
 * best only if, for every set S of classes, the shares of the requests that can only use classes in S fit the
 * GPUs of S. Second, the MIG counts: a GPU holds either one instance of a whole-GPU profile (size = slices) or
 * at most max of a profile p, so on a model's MIG-capable GPUs G, units(p) / max(p) + units(whole) <= G for the
 * requests only that model can serve (1g.5gb+me: one per GPU, none beside a 7g). The first prefix that breaks
 * either is a bound no strategy (not even an offline one) can beat. */

typedef struct Class {
        size_t templ;
        GpuMode mode;
        double gpus;
} Class;
static Class classes[32];
static size_t n_classes;

static void count_classes(size_t hosts) {
        Fleet *f = make_fleet(hosts, FLEET_FIRST_FIT);
        n_classes = 0;
        for (uint32_t g = 0; g < fleet_n_gpus(f); g++) {
                size_t t = host_templ[(g / 8) % n_host_templ], c;
                GpuMode m = fleet_gpu(f, g)->base_mode;
                for (c = 0; c < n_classes && !(classes[c].templ == t && classes[c].mode == m); c++)
                        ;
                if (c == n_classes && n_classes < ELEMENTSOF(classes))
                        classes[n_classes++] = (Class){t, m, 0};
                if (c < n_classes)
                        classes[c].gpus++;
        }
        fleet_free(f);
}

static double share_in(const FleetRequest *r, const Class *c) {
        const FleetModelInfo *m = &templ[c->templ].model;
        GpuMode b = c->mode;
        switch (r->kind) {
        case FLEET_PASSTHROUGH:
                return b == GPU_MODE_HOST && templ[c->templ].isolated && (!r->min_memory_mb || m->memory_mb >= r->min_memory_mb) ? 1 : -1;
        case FLEET_VF:
                return (b == GPU_MODE_HOST || b == GPU_MODE_SRIOV) && m->total_vfs ? 1.0 / m->total_vfs : -1;
        case FLEET_VGPU:
                if (!(b == GPU_MODE_HOST || b == GPU_MODE_VGPU || (b == GPU_MODE_SRIOV && m->vgpu_vendor)))
                        return -1;
                for (size_t k = 0; k < m->n_types; k++)
                        if (streq(m->types[k].id, r->arg))
                                return 1.0 / m->types[k].max;
                return -1;
        case FLEET_MIG:
                if (!(b == GPU_MODE_HOST || b == GPU_MODE_MIG))
                        return -1;
                for (size_t k = 0; k < m->n_mig; k++)
                        if (streq(m->mig[k].name, r->arg))
                                return (double)m->mig[k].size / m->mig_slices; /* memory slices: at most all */
                return -1;
        default:
                return -1;
        }
}

/* The MIG-capable GPUs of a template model (its classes in host or MIG mode). */
static double mig_gpus(size_t t) {
        double g = 0;
        for (size_t c = 0; c < n_classes; c++)
                if (classes[c].templ == t && (classes[c].mode == GPU_MODE_HOST || classes[c].mode == GPU_MODE_MIG))
                        g += classes[c].gpus;
        return g;
}

static size_t bound(const FleetRequest **stream, size_t n, size_t hosts) {
        count_classes(hosts);
        size_t nc = n_classes;
        double units[ELEMENTSOF(templ)][MIG_MAX_PROFILES] = {}, whole[ELEMENTSOF(templ)] = {};
        double *need = calloc((size_t)1 << nc, sizeof *need), *cap = calloc((size_t)1 << nc, sizeof *cap);
        for (unsigned S = 1; S < (1u << nc); S++)
                for (size_t c = 0; c < nc; c++)
                        if (S >> c & 1)
                                cap[S] += classes[c].gpus;
        size_t i;
        for (i = 0; i < n; i++) {
                /* a request that can use the classes in U adds its smallest share to every set containing U */
                unsigned U = 0;
                double smin = 1e9;
                for (size_t c = 0; c < nc; c++) {
                        double sh = share_in(stream[i], &classes[c]);
                        if (sh >= 0) {
                                U |= 1u << c;
                                smin = MIN(smin, sh * stream[i]->count);
                        }
                }
                bool broken = U == 0;
                for (unsigned S = U; !broken && S < (1u << nc); S = (S + 1) | U) {
                        need[S] += smin;
                        broken = need[S] > cap[S] + 1e-9;
                }
                /* MIG counts, for a profile only one model serves */
                size_t t = SIZE_MAX;
                for (size_t c = 0; c < nc && stream[i]->kind == FLEET_MIG; c++)
                        if (U >> c & 1)
                                t = t == SIZE_MAX || t == classes[c].templ ? classes[c].templ : SIZE_MAX - 1;
                if (!broken && t < n_templ) {
                        const FleetModelInfo *m = &templ[t].model;
                        for (size_t k = 0; k < m->n_mig; k++)
                                if (streq(m->mig[k].name, stream[i]->arg)) {
                                        if (m->mig[k].size >= m->mig_slices)
                                                whole[t] += stream[i]->count;
                                        else
                                                units[t][k] += stream[i]->count;
                                }
                        double g = mig_gpus(t);
                        for (size_t k = 0; k < m->n_mig && !broken; k++)
                                broken = m->mig[k].max && units[t][k] / m->mig[k].max + whole[t] > g + 1e-9;
                }
                if (broken)
                        break;
        }
        free(need);
        free(cap);
        return i;
}

/* ---- 1. placements per second ---- */

static void bench_speed(size_t hosts) {
        Fleet *f = make_fleet(hosts, FLEET_FRAG);
        size_t n = 200000, placed = 0;
        FleetPlacement p[8];
        char id[FLEET_ID_MAX];
        rng = 12345;
        const FleetRequest **stream = malloc(n * sizeof *stream);
        for (size_t i = 0; i < n; i++)
                stream[i] = draw();
        /* warm up the signatures (built once per request kind) */
        for (size_t i = 0; i < n_mix; i++) {
                snprintf(id, sizeof id, "w%zu", i);
                if (fleet_place(f, &mix[i], id, p, NULL) >= 0)
                        fleet_unplace(f, id, &p[0].gpu, 1);
        }
        double t0 = now_s();
        for (size_t i = 0; i < n; i++) {
                snprintf(id, sizeof id, "r%zu", i);
                if (fleet_place(f, stream[i], id, p, NULL) >= 0)
                        placed++;
        }
        double dt = now_s() - t0;
        /* the peer: the same decision by evaluating every GPU (fit and score), as an index-less scheduler does */
        size_t m = 200;
        double t1 = now_s();
        size_t found = 0;
        for (size_t i = 0; i < m; i++) {
                const FleetRequest *r = stream[i];
                int best = -1;
                double best_s = -1;
                for (uint32_t g = 0; g < fleet_n_gpus(f); g++) {
                        int idx = fleet_gpu_resolve(f, g, r);
                        if (idx < 0 || !fleet_gpu_fits(f, g, r->kind, idx))
                                continue;
                        double s = fleet_gpu_used_share(f, g);
                        if (s > best_s) {
                                best_s = s;
                                best = (int)g;
                        }
                }
                found += best >= 0;
        }
        double dt1 = now_s() - t1;
        double ours = (double)n / dt, peer = (double)m / dt1;
        printf("fleet: %zu hosts x 8 GPUs = %zu GPUs, %zu request kinds\n", hosts, fleet_n_gpus(f), n_mix);
        printf("placements in process: %zu requests in %.3f s = %.0f/s (%zu placed, the rest did not fit); goal >= 100000/s\n",
               n, dt, ours, placed);
        printf("peer (scan every GPU per request): %.0f decisions/s; ours / peer = %.0fx\n", peer, ours / MAX(peer, 1e-9));
        (void)found;
        free(stream);
        fleet_free(f);
}

/* ---- 2. packing ---- */

static void bench_packing(size_t hosts, int seeds, const char *what) {
        static const FleetStrategy st[] = {FLEET_FRAG, FLEET_BINPACK, FLEET_SPREAD, FLEET_FIRST_FIT, FLEET_HAMI};
        size_t n = 400000;
        const FleetRequest **stream = malloc(n * sizeof *stream);
        double sum[ELEMENTSOF(st) + 1] = {};
        printf("\npacking, %s: requests placed before the first rejection (%zu hosts, %d random streams)\n", what, hosts, seeds);
        printf("%-6s", "seed");
        for (size_t k = 0; k < ELEMENTSOF(st); k++)
                printf(" %10s", fleet_strategy_to_string(st[k]));
        printf(" %10s\n", "bound");
        for (int seed = 1; seed <= seeds; seed++) {
                rng = 0x9e3779b97f4a7c15ull * (uint64_t)seed;
                for (size_t i = 0; i < n; i++)
                        stream[i] = draw();
                printf("%-6d", seed);
                for (size_t k = 0; k < ELEMENTSOF(st); k++) {
                        Fleet *f = make_fleet(hosts, st[k]);
                        FleetPlacement p[8];
                        char id[FLEET_ID_MAX];
                        size_t i;
                        for (i = 0; i < n; i++) {
                                snprintf(id, sizeof id, "r%zu", i);
                                if (fleet_place(f, stream[i], id, p, NULL) < 0)
                                        break;
                        }
                        printf(" %10zu", i);
                        if (getenv("BENCH_FLEET_DEBUG") && i < n) {
                                _cleanup_free_ char *u = fleet_request_unit(stream[i]);
                                fprintf(stderr, "[%s rejected %s x%u]", fleet_strategy_to_string(st[k]), u, stream[i]->count);
                        }
                        sum[k] += (double)i;
                        fleet_free(f);
                }
                size_t b = bound(stream, n, hosts);
                sum[ELEMENTSOF(st)] += (double)b;
                printf(" %10zu\n", b);
        }
        printf("%-6s", "mean");
        for (size_t k = 0; k <= ELEMENTSOF(st); k++)
                printf(" %10.0f", sum[k] / seeds);
        printf("\n");
        free(stream);
}

/* ---- 3. through etcd ---- */

/* Undo what the reservations did, in the copy and in etcd: their GPUs' records put back without their units, the
 * reservation keys gone. */
static int release_all(Store *s, Fleet *f, const FleetReserved *res, size_t m) {
        size_t units = 0, ng = 0;
        for (size_t i = 0; i < m; i++)
                units += res[i].error ? 0 : res[i].n_units;
        uint32_t *gpus = malloc(MAX(units, (size_t)1) * sizeof *gpus);
        if (!gpus)
                return -ENOMEM;
        for (size_t i = 0; i < m; i++)
                for (size_t u = 0; !res[i].error && u < res[i].n_units; u++) {
                        uint32_t gi = res[i].units[u].gpu;
                        (void)fleet_unplace(f, res[i].id, &gi, 1);
                        gpus[ng++] = gi;
                }
        int r = 0;
        for (size_t i = 0; r >= 0 && i < ng; i += 100) {
                StoreOp ops[100];
                char *keys[100], *vals[100];
                size_t n = MIN(ng - i, (size_t)100);
                for (size_t k = 0; k < n; k++) {
                        const FleetGpuInfo *gi = fleet_gpu(f, gpus[i + k]);
                        keys[k] = fleet_gpu_key(gi->host, gi->address);
                        vals[k] = fleet_gpu_record(gi, NULL, NULL);
                        ops[k] = (StoreOp){STORE_PUT, keys[k], vals[k], 0, false};
                }
                /* a GPU twice in one transaction is refused: put each once */
                size_t w = 0;
                for (size_t k = 0; k < n; k++) {
                        bool dup = false;
                        for (size_t j = 0; j < w && !dup; j++)
                                dup = streq(ops[j].key, ops[k].key);
                        if (!dup)
                                ops[w++] = ops[k];
                }
                StoreTxnResult tr;
                r = store_txn(s, NULL, 0, ops, w, NULL, 0, &tr);
                for (size_t k = 0; r >= 0 && k < n; k++)
                        fleet_gpu_set_revision(f, gpus[i + k], tr.revision);
                store_txn_result_done(&tr);
                for (size_t k = 0; k < n; k++) {
                        free(keys[k]);
                        free(vals[k]);
                }
        }
        free(gpus);
        if (r < 0)
                return r;
        StoreOp del = {STORE_DELETE, FLEET_KEY_RES, NULL, 0, true};
        StoreTxnResult tr;
        r = store_txn(s, NULL, 0, &del, 1, NULL, 0, &tr);
        store_txn_result_done(&tr);
        return r;
}

static int bench_etcd(const char *endpoints, size_t hosts) {
        _cleanup_free_ char *url = strdup_printf("etcd://%s", endpoints);
        Store *s;
        GvError err = {}, oerr = {};
        if (store_open(url, NULL, &s, &oerr) < 0)
                return fprintf(stderr, "%s\n", strna(oerr.message)), 1;
        Fleet *f = make_fleet(hosts, FLEET_FRAG);
        /* the fleet into etcd: hosts, alive keys, GPU records, 100 per transaction */
        double t0 = now_s();
        StoreOp ops[FLEET_TXN_OPS_MAX];
        char *keys[FLEET_TXN_OPS_MAX], *vals[FLEET_TXN_OPS_MAX];
        size_t n = 0;
        for (size_t item = 0; item < 2 * hosts + fleet_n_gpus(f); item++) {
                if (item < 2 * hosts) {
                        const char *h = fleet_host_name(f, (uint32_t)(item / 2));
                        keys[n] = strdup_printf("%s%s", item % 2 ? FLEET_KEY_ALIVE : FLEET_KEY_HOSTS, h);
                        vals[n] = strdup_printf("{\"name\":\"%s\",\"bench\":true}", h);
                } else {
                        const FleetGpuInfo *g = fleet_gpu(f, (uint32_t)(item - 2 * hosts));
                        char *mk = NULL, *mv = NULL;
                        keys[n] = fleet_gpu_key(g->host, g->address);
                        vals[n] = fleet_gpu_record(g, &mk, &mv);
                        if (item - 2 * hosts < 8 * n_templ && (item - 2 * hosts) % 8 == 0) {
                                /* each model once, beside the first GPUs that use it */
                                ops[n] = (StoreOp){STORE_PUT, keys[n], vals[n], 0, false};
                                n++;
                                keys[n] = mk;
                                vals[n] = mv;
                        } else {
                                free(mk);
                                free(mv);
                        }
                }
                ops[n] = (StoreOp){STORE_PUT, keys[n], vals[n], 0, false};
                n++;
                if (n >= 100 || item + 1 == 2 * hosts + fleet_n_gpus(f)) {
                        StoreTxnResult tr;
                        int r = store_txn(s, NULL, 0, ops, n, NULL, 0, &tr);
                        store_txn_result_done(&tr);
                        for (size_t i = 0; i < n; i++) {
                                free(keys[i]);
                                free(vals[i]);
                        }
                        n = 0;
                        if (r < 0)
                                return fprintf(stderr, "loading the fleet: %s\n", store_last_error(s)), 1;
                }
        }
        fleet_free(f);
        double t1 = now_s();
        Fleet *g;
        size_t damaged = 0;
        if (fleet_load(s, FLEET_FRAG, &g, &damaged, &err) < 0)
                return fprintf(stderr, "%s\n", strna(gv_error_message(&err))), 1;
        double t2 = now_s();
        printf("\netcd (3 members, tmpfs): fleet of %zu GPU records loaded in %.1f s, read back in %.1f s\n", fleet_n_gpus(g),
               t1 - t0, t2 - t1);
        static const size_t batches[] = {1, 15, 60}, counts[] = {1000, 6000, 20000}, depths[] = {1, 2, 4, 8, 16};
        double rate[ELEMENTSOF(depths)][ELEMENTSOF(batches)] = {}, cpu[ELEMENTSOF(depths)][ELEMENTSOF(batches)] = {};
        size_t conflicts = 0, uncertain = 0;
        for (size_t b = 0; b < ELEMENTSOF(batches); b++)
                for (size_t d = 0; d < ELEMENTSOF(depths); d++) {
                        size_t m = counts[b];
                        FleetRequest *reqs = malloc(m * sizeof *reqs);
                        FleetReserved *res = calloc(m, sizeof *res);
                        rng = 777 + b * 16 + d;
                        for (size_t i = 0; i < m; i++)
                                reqs[i] = *draw();
                        FleetReserveStats st = {};
                        double a = now_s(), c = cpu_s();
                        int r = fleet_reserve(s, g, reqs, m, batches[b], depths[d], NULL, res, &st, &err);
                        double dt = now_s() - a;
                        cpu[d][b] = (cpu_s() - c) / dt;
                        if (r < 0)
                                return fprintf(stderr, "%s\n", strna(gv_error_message(&err))), 1;
                        size_t ok = 0;
                        for (size_t i = 0; i < m; i++)
                                ok += res[i].error == 0;
                        rate[d][b] = (double)ok / dt;
                        conflicts += st.conflicts;
                        uncertain += st.retries_uncertain;
                        /* back to the empty fleet for the next point: the ledgers of the GPUs used, no reservations */
                        r = release_all(s, g, res, m);
                        fleet_reserved_done(res, m);
                        free(res);
                        free(reqs);
                        if (r < 0)
                                return fprintf(stderr, "resetting the fleet: %s\n", store_last_error(s)), 1;
                }
        printf("committed reservations per second, by transactions in flight (rows) and reservations per transaction\n"
               "(in brackets: the scheduler's own CPU, share of one core):\n");
        printf("%-10s", "in flight");
        for (size_t b = 0; b < ELEMENTSOF(batches); b++) {
                char h[32] = "1 per txn";
                if (batches[b] > 1)
                        snprintf(h, sizeof h, "batch %zu", batches[b]);
                printf("  %-15s", h);
        }
        printf("\n");
        double best = 0;
        for (size_t d = 0; d < ELEMENTSOF(depths); d++) {
                printf("%-10zu", depths[d]);
                for (size_t b = 0; b < ELEMENTSOF(batches); b++) {
                        printf("  %6.0f (%3.0f%%)  ", rate[d][b], 100 * cpu[d][b]);
                        best = MAX(best, rate[d][b]);
                }
                printf("\n");
        }
        printf("(%zu conflicts, %zu answers lost; one scheduler: its transactions in flight never share a GPU)\n", conflicts,
               uncertain);
        printf("best %.0f/s; goal >= 2000/s; best / one per transaction, one at a time = %.1fx; "
               "batch 60: %zu in flight / 1 = %.1fx\n",
               best, best / MAX(rate[0][0], 1e-9), depths[ELEMENTSOF(depths) - 1],
               rate[ELEMENTSOF(depths) - 1][ELEMENTSOF(batches) - 1] / MAX(rate[0][ELEMENTSOF(batches) - 1], 1e-9));
        fleet_free(g);
        store_free(s);
        return 0;
}

int main(int argc, char **argv) {
        setvbuf(stdout, NULL, _IOLBF, 0);
        sim_backend_register(); /* the templates come from simulated hosts */
        size_t hosts = 5000;
        const char *etcd = NULL;
        int i = 1, seeds = 3;
        for (; i < argc && argv[i][0] == '-'; i++) {
                if (streq(argv[i], "--hosts") && i + 1 < argc)
                        hosts = (size_t)atol(argv[++i]);
                else if (streq(argv[i], "--etcd") && i + 1 < argc)
                        etcd = argv[++i];
                else if (streq(argv[i], "--seeds") && i + 1 < argc)
                        seeds = atoi(argv[++i]);
                else
                        return fprintf(stderr, "usage: bench-fleet [--hosts N] [--seeds N] [--etcd HOST:PORT,...] ROOT...\n"), 2;
        }
        if (i == argc || load_templates(argv + i, argc - i) < 0)
                return fprintf(stderr, "usage: bench-fleet [--hosts N] [--etcd HOST:PORT,...] ROOT...\n"), 2;
        for (size_t t = 0; t < n_templ; t++)
                host_templ[n_host_templ++] = t;
        build_mix(false);
        if (etcd)
                return bench_etcd(etcd, hosts);
        bench_speed(hosts);
        bench_packing(hosts, seeds, "every kind on the mixed fleet");
        /* MIG alone on the A100 hosts: where placements fragment GPUs */
        for (size_t t = 0; t < n_templ; t++)
                if (templ[t].model.n_mig && templ[t].isolated && !templ[t].model.vgpu_vendor) {
                        n_host_templ = 1;
                        host_templ[0] = t;
                        build_mix(true);
                        bench_packing(hosts, seeds, "MIG profiles alone on A100 hosts");
                        break;
                }
        return 0;
}
