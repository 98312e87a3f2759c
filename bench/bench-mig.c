/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * MIG benchmark on a simulated A100-40GB (profile tables read through the fake NVML):
 *  1. layout transitions: instances destroyed and created by our apply (mig_plan) and by the
 *     recreate-everything method (mig-parted: any change destroys every instance and creates the target);
 *  2. a random stream of create/destroy requests: share that fit with our placement (mig_best_start)
 *     and with the driver's default placement (highest free start).
 * Usage: bench-mig SIMULATED_ROOT [REQUESTS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mig/mig.h"
#include "core/mig/nvml.h"
#include "sim/sim.h"

static int pidx(const MigGpu *g, const char *n) {
        int i = mig_profile_find(g, n);
        if (i < 0) {
                fprintf(stderr, "no profile %s\n", n);
                exit(1);
        }
        return i;
}

typedef struct { const char *from[4]; const char *to[4]; } Transition;

int main(int argc, char **argv) {
        if (argc < 2)
                return fprintf(stderr, "usage: bench-mig SIMULATED_ROOT [REQUESTS]\n"), 2;
        long requests = argc > 2 ? atol(argv[2]) : 100000;
        sim_backend_register();
        Root *root;
        Nvml *n;
        if (root_open(argv[1], 0, &root) < 0 || nvml_open(root, &n, NULL) < 0)
                return fprintf(stderr, "cannot open %s with NVML\n", argv[1]), 1;
        MigGpu *gpus;
        size_t ng;
        if (mig_gpus_read(n, &gpus, &ng) < 0 || ng == 0 || !gpus[0].capable)
                return fprintf(stderr, "no MIG GPU\n"), 1;
        MigGpu *g = &gpus[0];
        printf("GPU: %s (profiles read through NVML)\n\n", g->name);

        /* 1. transitions: "PROFILE:COUNT" lists */
        static const Transition tr[] = {
                {{"3g.20gb:1", "1g.5gb:1"}, {"3g.20gb:1", "1g.5gb:2", "2g.10gb:1"}},
                {{"1g.5gb:7"}, {"1g.5gb:5", "2g.10gb:1"}},
                {{"2g.10gb:3", "1g.5gb:1"}, {"2g.10gb:2", "1g.5gb:3"}},
                {{"3g.20gb:2"}, {"3g.20gb:1", "1g.5gb:4"}},
                {{"4g.20gb:1", "3g.20gb:1"}, {"4g.20gb:1", "2g.10gb:1", "1g.5gb:1"}},
                {{"3g.20gb:1", "2g.10gb:1", "1g.5gb:2"}, {"3g.20gb:1", "2g.10gb:1", "1g.5gb:2"}},
                {{"1g.5gb:4", "3g.20gb:1"}, {"1g.5gb:3", "3g.20gb:1"}},
                {{"7g.40gb:1"}, {"3g.20gb:2"}},
                {{"2g.10gb:2", "3g.20gb:1"}, {"2g.10gb:3", "1g.5gb:1"}},
                {{"1g.10gb:4"}, {"1g.10gb:2", "3g.20gb:1"}},
        };
        unsigned ours_d = 0, ours_c = 0, rec_d = 0, rec_c = 0, kept = 0;
        printf("%-44s %-36s %9s %9s\n", "from", "to", "ours d/c", "recreate");
        for (size_t t = 0; t < ELEMENTSOF(tr); t++) {
                MigInstance cur[MIG_MAX_INSTANCES];
                size_t nc = 0;
                unsigned want[MIG_MAX_PROFILES] = {}, from[MIG_MAX_PROFILES] = {};
                char fs[64] = "", ts[64] = "";
                /* build the "from" layout as our apply would have placed it (from empty) */
                for (int k = 0; k < 4 && tr[t].from[k]; k++) {
                        char name[32];
                        unsigned c;
                        sscanf(tr[t].from[k], "%31[^:]:%u", name, &c);
                        from[pidx(g, name)] += c;
                        snprintf(fs + strlen(fs), sizeof fs - strlen(fs), "%s%s", k ? " " : "", tr[t].from[k]);
                }
                MigPlan p0;
                if (mig_plan(g->profiles, g->n_profiles, g->slices, NULL, 0, from, true, &p0) < 0)
                        return fprintf(stderr, "bad from layout %zu\n", t), 1;
                for (size_t i = 0; i < p0.n_create; i++) {
                        cur[nc++] = (MigInstance){.profile = p0.create[i].profile, .start = p0.create[i].start,
                                                  .size = g->profiles[p0.create[i].profile].size};
                }
                for (int k = 0; k < 4 && tr[t].to[k]; k++) {
                        char name[32];
                        unsigned c;
                        sscanf(tr[t].to[k], "%31[^:]:%u", name, &c);
                        want[pidx(g, name)] += c;
                        snprintf(ts + strlen(ts), sizeof ts - strlen(ts), "%s%s", k ? " " : "", tr[t].to[k]);
                }
                MigPlan p;
                int r = mig_plan(g->profiles, g->n_profiles, g->slices, cur, nc, want, true, &p);
                if (r < 0)
                        return fprintf(stderr, "transition %zu does not fit\n", t), 1;
                bool same = memcmp(from, want, sizeof from) == 0;
                unsigned total = 0;
                for (size_t i = 0; i < g->n_profiles; i++)
                        total += want[i];
                unsigned rd = same ? 0 : (unsigned)nc, rcr = same ? 0 : total;
                ours_d += (unsigned)p.n_destroy;
                ours_c += (unsigned)p.n_create;
                rec_d += rd;
                rec_c += rcr;
                kept += (unsigned)p.n_keep;
                char o[16], rc[16];
                snprintf(o, sizeof o, "%zu/%zu", p.n_destroy, p.n_create);
                snprintf(rc, sizeof rc, "%u/%u", rd, rcr);
                printf("%-44s %-36s %9s %9s\n", fs, ts, o, rc);
        }
        printf("\ntotal destroyed/created: ours %u/%u, recreate-everything %u/%u (instances kept undisturbed by ours: %u)\n\n",
               ours_d, ours_c, rec_d, rec_c, kept);

        /* 2. random request stream */
        const char *names[] = {"1g.5gb", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"};
        const unsigned weights[] = {40, 15, 20, 15, 7, 3};
        for (int policy = 0; policy < 2; policy++) {
                unsigned seed = 42;
                MigInstance live[MIG_MAX_INSTANCES];
                size_t nl = 0;
                long creates = 0, fit = 0;
                for (long q = 0; q < requests; q++) {
                        bool destroy = nl > 0 && rand_r(&seed) % 100 < 45;
                        if (destroy) {
                                size_t k = (size_t)rand_r(&seed) % nl;
                                live[k] = live[--nl];
                                continue;
                        }
                        unsigned w = (unsigned)rand_r(&seed) % 100, acc = 0;
                        size_t x = 0;
                        while (x + 1 < ELEMENTSOF(names) && (acc += weights[x]) <= w)
                                x++;
                        int pi = pidx(g, names[x]);
                        unsigned occ = 0, cnt = 0;
                        for (size_t i = 0; i < nl; i++) {
                                occ |= ((1u << live[i].size) - 1) << live[i].start;
                                cnt += live[i].profile == pi;
                        }
                        creates++;
                        int s = cnt >= g->profiles[pi].max ? -1
                                : policy == 0 ? mig_best_start(g->profiles, g->n_profiles, g->slices, occ, pi)
                                              : mig_default_start(g->profiles, g->n_profiles, g->slices, occ, pi);
                        if (s < 0 || nl >= MIG_MAX_INSTANCES)
                                continue;
                        fit++;
                        live[nl++] = (MigInstance){.profile = pi, .start = (unsigned)s, .size = g->profiles[pi].size};
                }
                printf("random stream (%ld requests, seed 42, %ld creates): %s placement: %.1f%% of creates fit\n", requests,
                       creates, policy == 0 ? "our     " : "driver's", 100.0 * (double)fit / (double)creates);
        }
        free(gpus);
        nvml_close(n);
        root_free(root);
        return 0;
}
