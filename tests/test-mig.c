/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* MIG: the planner as pure functions over the five GPU models' tables, and NVML loading. */
#include <setjmp.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "basic/fileio.h"
#include "core/mig/apply.h"
#include "core/mig/mig.h"
#include "core/mig/nvml.h"
#include "core/mig/ops.h"
#include "helpers.h"
#include "sim/sim.h"

/* The profile tables of mig-nvml.md (inputs of the tests, not expected results). */
#define P(nm, c, i, cs, sz, mx, st) {.name = nm, .constant = c, .id = i, .compute = cs, .size = sz, .max = mx, .starts = st}
static const MigProfile a100[] = {
        P("1g.5gb", 0, 19, 1, 1, 7, 0x7f), P("1g.5gb+me", 7, 20, 1, 1, 1, 0x7f), P("1g.10gb", 9, 15, 1, 2, 4, 0x55),
        P("2g.10gb", 1, 14, 2, 2, 3, 0x15), P("3g.20gb", 2, 9, 3, 4, 2, 0x11), P("4g.20gb", 3, 5, 4, 4, 1, 0x01),
        P("7g.40gb", 4, 0, 7, 8, 1, 0x01)};
static const MigProfile a30[] = {
        P("1g.6gb", 0, 14, 1, 1, 4, 0x0f), P("1g.6gb+me", 7, 21, 1, 1, 1, 0x0f), P("2g.12gb", 1, 5, 2, 2, 2, 0x05),
        P("2g.12gb+me", 8, 6, 2, 2, 1, 0x05), P("4g.24gb", 3, 0, 4, 4, 1, 0x01)};
/* A100-80GB, H100-80GB and H200 share the A100's geometry under other names */
static const MigProfile h200[] = {
        P("1g.18gb", 0, 19, 1, 1, 7, 0x7f), P("1g.18gb+me", 7, 20, 1, 1, 1, 0x7f), P("1g.35gb", 9, 15, 1, 2, 4, 0x55),
        P("2g.35gb", 1, 14, 2, 2, 3, 0x15), P("3g.71gb", 2, 9, 3, 4, 2, 0x11), P("4g.71gb", 3, 5, 4, 4, 1, 0x01),
        P("7g.141gb", 4, 0, 7, 8, 1, 0x01)};
#undef P

enum { A1G = 0, A1GME, A1G10, A2G, A3G, A4G, A7G };

static unsigned range(unsigned s, unsigned n) {
        return ((1u << n) - 1) << s;
}

/* Apply a plan to a layout and check it: kept ones untouched, creates legal and disjoint, counts right. */
static size_t check_plan(const MigProfile *p, size_t np, unsigned slices, const MigInstance *cur, size_t n_cur,
                         const unsigned *want, const MigPlan *plan, MigInstance *out) {
        assert_int_equal(plan->n_keep + plan->n_destroy, n_cur);
        unsigned occ = 0, have[MIG_MAX_PROFILES] = {};
        size_t n = 0;
        for (size_t i = 0; i < plan->n_keep; i++) {
                const MigInstance *m = &cur[plan->keep[i]];
                assert_int_equal(occ & range(m->start, m->size), 0);
                occ |= range(m->start, m->size);
                have[m->profile]++;
                out[n++] = *m;
        }
        for (size_t i = 0; i < plan->n_create; i++) {
                const MigProfile *q = &p[plan->create[i].profile];
                unsigned s = plan->create[i].start;
                assert_true(q->starts >> s & 1u);
                assert_true(s + q->size <= slices);
                assert_int_equal(occ & range(s, q->size), 0);
                occ |= range(s, q->size);
                have[plan->create[i].profile]++;
                out[n++] = (MigInstance){.profile = plan->create[i].profile, .start = s, .size = q->size};
        }
        for (size_t i = 0; i < np; i++)
                assert_int_equal(have[i], want[i]);
        return n;
}

static void test_default_placement(void **state) {
        /* the driver's auto-placement, documented: create 19,14,5 gives 1g at 6, 2g at 4, 4g at 0 */
        unsigned occ = 0;
        int s = mig_default_start(a100, ELEMENTSOF(a100), 8, occ, A1G);
        assert_int_equal(s, 6);
        occ |= range(6, 1);
        s = mig_default_start(a100, ELEMENTSOF(a100), 8, occ, A2G);
        assert_int_equal(s, 4);
        occ |= range(4, 2);
        s = mig_default_start(a100, ELEMENTSOF(a100), 8, occ, A4G);
        assert_int_equal(s, 0);
        occ |= range(0, 4);
        /* slice 7 is left: no 1g placement starts there */
        assert_int_equal(mig_default_start(a100, ELEMENTSOF(a100), 8, occ, A1G), -ENOSPC);
}

static void test_best_placement_keeps_big_profiles(void **state) {
        /* on every 8-slice model: one small instance on an empty GPU must leave a 4g and a 3g possible */
        const MigProfile *models[] = {a100, h200};
        for (size_t m = 0; m < ELEMENTSOF(models); m++)
                for (int pi = A1G; pi <= A2G; pi++) {
                        int s = mig_best_start(models[m], 7, 8, 0, pi);
                        assert_true(s >= 0);
                        unsigned occ = range((unsigned)s, models[m][pi].size);
                        assert_true(mig_best_start(models[m], 7, 8, occ, A4G) >= 0);
                        assert_true(mig_best_start(models[m], 7, 8, occ, A3G) >= 0);
                }
        /* and the score prefers it over the lowest start */
        assert_true(mig_layout_score(a100, 7, range(6, 1)) > mig_layout_score(a100, 7, range(0, 1)));
}

static void test_plan_unchanged(void **state) {
        MigInstance cur[] = {{.profile = A3G, .start = 0, .size = 4, .gi_id = 1}, {.profile = A1G, .start = 6, .size = 1, .gi_id = 2}};
        unsigned want[MIG_MAX_PROFILES] = {[A3G] = 1, [A1G] = 1};
        MigPlan plan;
        assert_int_equal(mig_plan(a100, 7, 8, cur, 2, want, false, &plan), 0);
        assert_int_equal(plan.n_destroy, 0);
        assert_int_equal(plan.n_create, 0);
        assert_int_equal(plan.n_keep, 2);
}

static void test_plan_grow_keeps_everything(void **state) {
        MigInstance cur[] = {{.profile = A3G, .start = 4, .size = 4, .gi_id = 1}, {.profile = A1G, .start = 3, .size = 1, .gi_id = 2}};
        unsigned want[MIG_MAX_PROFILES] = {[A3G] = 1, [A1G] = 2, [A2G] = 1};
        MigPlan plan;
        MigInstance out[MIG_MAX_INSTANCES];
        assert_int_equal(mig_plan(a100, 7, 8, cur, 2, want, false, &plan), 0);
        assert_int_equal(plan.n_destroy, 0);
        assert_int_equal(check_plan(a100, 7, 8, cur, 2, want, &plan, out), 4);
}

static void test_plan_needs_move(void **state) {
        /* a 4g needs slices 0-3: the 1g at 2 is in the way, the 3g at 4 is unwanted anyway */
        MigInstance cur[] = {{.profile = A3G, .start = 4, .size = 4, .gi_id = 1}, {.profile = A1G, .start = 2, .size = 1, .gi_id = 2}};
        unsigned want[MIG_MAX_PROFILES] = {[A4G] = 1, [A1G] = 1};
        MigPlan plan;
        MigInstance out[MIG_MAX_INSTANCES];
        assert_int_equal(mig_plan(a100, 7, 8, cur, 2, want, false, &plan), -EBUSY);
        assert_int_equal(plan.n_moved, 1);
        assert_true(plan.moved[1]);
        assert_false(plan.moved[0]);
        assert_int_equal(mig_plan(a100, 7, 8, cur, 2, want, true, &plan), 0);
        check_plan(a100, 7, 8, cur, 2, want, &plan, out);
        assert_int_equal(plan.n_destroy, 2);
}

static void test_plan_impossible(void **state) {
        unsigned want[MIG_MAX_PROFILES] = {[A4G] = 1, [A3G] = 1, [A1G] = 1}; /* 9 memory slices */
        MigPlan plan;
        assert_int_equal(mig_plan(a100, 7, 8, NULL, 0, want, true, &plan), -ENOSPC);
        unsigned over[MIG_MAX_PROFILES] = {[A1G] = 8};
        assert_int_equal(mig_plan(a100, 7, 8, NULL, 0, over, true, &plan), -EINVAL);
        /* A30: 4 slices */
        unsigned a30_ok[MIG_MAX_PROFILES] = {[0] = 4};
        assert_int_equal(mig_plan(a30, 5, 4, NULL, 0, a30_ok, false, &plan), 0);
        unsigned a30_2g[MIG_MAX_PROFILES] = {[2] = 2};
        assert_int_equal(mig_plan(a30, 5, 4, NULL, 0, a30_2g, false, &plan), 0);
        assert_int_equal(plan.n_create, 2);
        unsigned a30_bad[MIG_MAX_PROFILES] = {[4] = 1, [0] = 1};
        assert_int_equal(mig_plan(a30, 5, 4, NULL, 0, a30_bad, true, &plan), -ENOSPC);
}

/* Random layouts and targets on every model: every plan is valid, and a target that contains the current
 * layout destroys nothing when that is possible without moving. */
static void test_plan_random(void **state) {
        struct { const MigProfile *p; size_t n; unsigned slices; } models[] = {{a100, 7, 8}, {a30, 5, 4}, {h200, 7, 8}};
        unsigned seed = 12345;
        for (size_t m = 0; m < ELEMENTSOF(models); m++)
                for (int iter = 0; iter < 400; iter++) {
                        const MigProfile *p = models[m].p;
                        size_t np = models[m].n;
                        MigInstance cur[MIG_MAX_INSTANCES];
                        size_t n_cur = 0;
                        unsigned occ = 0, cnt[MIG_MAX_PROFILES] = {};
                        for (int k = 0; k < 6; k++) {
                                int pi = (int)(rand_r(&seed) % np);
                                int s = mig_default_start(p, np, models[m].slices, occ, pi);
                                if (s < 0 || cnt[pi] >= p[pi].max)
                                        continue;
                                cur[n_cur++] = (MigInstance){.profile = pi, .start = (unsigned)s, .size = p[pi].size};
                                occ |= range((unsigned)s, p[pi].size);
                                cnt[pi]++;
                        }
                        unsigned want[MIG_MAX_PROFILES] = {};
                        for (size_t i = 0; i < np; i++)
                                want[i] = rand_r(&seed) % 3 == 0 ? (unsigned)rand_r(&seed) % 3 : cnt[i];
                        MigPlan plan;
                        MigInstance out[MIG_MAX_INSTANCES];
                        int r = mig_plan(p, np, models[m].slices, cur, n_cur, want, true, &plan);
                        if (r == -ENOSPC || r == -EINVAL)
                                continue;
                        assert_int_equal(r, 0);
                        check_plan(p, np, models[m].slices, cur, n_cur, want, &plan, out);
                        /* never destroys more than the surplus plus what it had to move */
                        size_t surplus = 0;
                        for (size_t i = 0; i < np; i++)
                                surplus += cnt[i] > want[i] ? cnt[i] - want[i] : 0;
                        assert_int_equal(plan.n_destroy, surplus + plan.n_moved);
                        /* a plan without moves is found without --allow-disrupt too */
                        MigPlan p2;
                        int r2 = mig_plan(p, np, models[m].slices, cur, n_cur, want, false, &p2);
                        assert_int_equal(r2, plan.n_moved ? -EBUSY : 0);
                }
}

static void test_nvml_errors(void **state) {
        assert_int_equal(nvml_error_to_errno(NVML_SUCCESS), 0);
        assert_int_equal(nvml_error_to_errno(NVML_ERROR_IN_USE), -EBUSY);
        assert_int_equal(nvml_error_to_errno(NVML_ERROR_RESET_REQUIRED), -EAGAIN);
        assert_int_equal(nvml_error_to_errno(NVML_ERROR_INSUFFICIENT_RESOURCES), -ENOSPC);
        assert_int_equal(nvml_error_to_errno((nvmlReturn_t)12345), -EIO);
}

/* NVML once per process: every opener of the root gets the handle the first one initialised, until the GPUs
 * bound to nvidia change (one moved to vfio-pci: NVML's device list is initialised again, one GPU less); a GPU
 * that falls off the bus after the initialisation is lost to the next handle asked for; a MIG step reads its
 * own GPU only, as the whole read has it. */
static void test_nvml_once(void **state) {
        TestHost t;
        test_host_open(&t, "dgx-a100");
        Nvml *a = NULL, *b = NULL, *c = NULL;
        /* NVML failing to initialise: refused with the reason, and again (the failed handle was once released
         * under the lock its opener held: the process hung) */
        assert_int_equal(sim_nvml_fail(t.dir, NVML_ERROR_DRIVER_NOT_LOADED), 0);
        GvError e = {};
        assert_true(nvml_open(t.root, &a, &e) < 0);
        assert_non_null(e.message);
        assert_non_null(strstr(e.message, "NVML_ERROR_DRIVER_NOT_LOADED"));
        gv_error_done(&e);
        assert_true(nvml_open(t.root, &a, NULL) < 0);
        assert_null(a);
        assert_int_equal(sim_nvml_fail(t.dir, 0), 0);
        assert_int_equal(nvml_open(t.root, &a, NULL), 0);
        assert_int_equal(nvml_open(t.root, &b, NULL), 0);
        assert_ptr_equal(a, b);
        unsigned count = 0;
        assert_int_equal(a->f.nvmlDeviceGetCount_v2(&count), NVML_SUCCESS);
        assert_int_equal(count, 8);
        MigGpu *all = NULL, one;
        size_t ng = 0;
        assert_int_equal(mig_gpus_read(a, &all, &ng), 0);
        assert_int_equal(mig_gpu_read(a, all[3].address, &one), 0);
        assert_memory_equal(&one, &all[3], sizeof one);
        assert_int_equal(mig_gpu_read(a, "0000:01:00.0", &one), -ENODEV);
        free(all);
        nvml_close(a);
        nvml_close(b);
        assert_int_equal(nvml_open(t.root, &c, NULL), 0);
        assert_ptr_equal(c, a); /* kept for the next opener */
        nvml_close(c);

        /* a GPU leaves nvidia (as in a host.yaml's binding step): initialised again */
        assert_int_equal(root_write(t.root, "0000:23:00.0", "sys/bus/pci/drivers/nvidia/unbind"), 0);
        assert_int_equal(nvml_open(t.root, &c, NULL), 0);
        assert_int_equal(c->f.nvmlDeviceGetCount_v2(&count), NVML_SUCCESS);
        assert_int_equal(count, 7);
        /* held: a caller that finds the set changed meanwhile gets one of its own */
        assert_int_equal(root_write(t.root, "0000:23:00.0", "sys/bus/pci/drivers/nvidia/bind"), 0);
        assert_int_equal(nvml_open(t.root, &b, NULL), 0);
        assert_ptr_not_equal(b, c);
        assert_int_equal(b->f.nvmlDeviceGetCount_v2(&count), NVML_SUCCESS);
        assert_int_equal(count, 8);
        nvml_close(b);
        /* off the bus after the initialisation: its handle is refused from then on */
        assert_int_equal(nvml_open(t.root, &a, NULL), 0);
        nvmlDevice_t dev;
        assert_int_equal(a->f.nvmlDeviceGetHandleByPciBusId_v2("0000:24:00.0", &dev), NVML_SUCCESS);
        assert_int_equal(sim_device_off_bus(t.dir, "0000:24:00.0"), 0);
        assert_int_equal(a->f.nvmlDeviceGetHandleByPciBusId_v2("0000:24:00.0", &dev), NVML_ERROR_GPU_IS_LOST);
        nvml_close(a);
        nvml_close(c);
        test_host_close(&t);
}

static void test_nvml_load(void **state) {
        TestHost t;
        test_host_open(&t, "dgx-a100");
        Nvml *n = NULL;
        GvError why = {};
        assert_int_equal(nvml_open(t.root, &n, &why), 0);
        assert_int_equal(why.error, 0);
        assert_null(why.message);
        MigGpu *g = NULL;
        size_t ng = 0;
        assert_int_equal(mig_gpus_read(n, &g, &ng), 0);
        assert_int_equal(ng, 8);
        assert_true(g[0].capable);
        assert_int_equal(g[0].mode_current, 0);
        assert_int_equal(g[0].pci_device_id, 0x20b010deu);
        assert_int_equal(g[0].slices, 8);
        assert_true(mig_profile_find(&g[0], "3g.20gb") >= 0);
        int act = 1;
        assert_int_equal(mig_set_mode(t.root, n, &g[0], true, &act, NULL), 0);
        assert_int_equal(act, -EAGAIN);
        assert_int_equal(mig_create(t.root, n, &g[0], mig_profile_find(&g[0], "1g.5gb"), -1, NULL, NULL), -EOPNOTSUPP);
        assert_int_equal(mig_reset(t.root, NULL, &g[0], NULL), 0);
        assert_int_equal(mig_gpu_refresh(n, &g[0]), 0);
        assert_int_equal(g[0].mode_current, 1);
        MigInstance m;
        int p3 = mig_profile_find(&g[0], "3g.20gb");
        assert_int_equal(mig_create(t.root, n, &g[0], p3, 4, &m, NULL), 0);
        assert_int_equal(m.start, 4);
        assert_int_equal(mig_create(t.root, n, &g[0], p3, 4, &m, NULL), -ENOSPC);
        assert_int_equal(mig_create(t.root, n, &g[0], p3, 2, &m, NULL), -EINVAL);
        free(g);
        nvml_close(n);
        test_host_close(&t);
}

/* The root the children act on (set by open_mig_gpu0()). */
static Root *child_root;

/* Run fn in a child process (its own view of the fake library, as another gpuvirt has); its exit status. */
static int in_child(int (*fn)(Nvml *n, MigGpu *g, int arg), Nvml *n, MigGpu *g, int arg) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
                _exit(fn(n, g, arg) < 0 ? 1 : 0);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int child_create(Nvml *n, MigGpu *g, int profile) {
        return mig_create(child_root, n, g, profile, 6, NULL, NULL);
}

static int child_destroy(Nvml *n, MigGpu *g, int gi_id) {
        return mig_destroy(child_root, n, g, (unsigned)gi_id, NULL);
}

/* A DGX A100 with MIG enabled on GPU 0, no instances. */
static void open_mig_gpu0(TestHost *t, Nvml **ret_n, MigGpu **ret_g) {
        test_host_open(t, "dgx-a100");
        Nvml *n = NULL;
        assert_int_equal(nvml_open(t->root, &n, NULL), 0);
        MigGpu *g = NULL;
        size_t ng = 0;
        assert_int_equal(mig_gpus_read(n, &g, &ng), 0);
        child_root = t->root;
        int act;
        assert_int_equal(mig_set_mode(t->root, n, &g[0], true, &act, NULL), 0);
        assert_int_equal(mig_reset(t->root, NULL, &g[0], NULL), 0);
        assert_int_equal(mig_gpu_refresh(n, &g[0]), 0);
        *ret_n = n;
        *ret_g = g;
}

/* The fake NVML keeps one state for every process, as the driver does: each call re-reads it under a lock, so
 * what another process created is seen, and acting on a stale view is refused instead of silently
 * overwriting the other process's instance. */
static void test_nvml_shared_state(void **state) {
        TestHost t;
        Nvml *n;
        MigGpu *g;
        open_mig_gpu0(&t, &n, &g);
        int p1 = mig_profile_find(&g[0], "1g.5gb");
        assert_int_equal(g[0].n_inst, 0);

        /* another process takes slice 6 while we hold a view without it */
        assert_int_equal(in_child(child_create, n, &g[0], p1), 0);
        assert_int_equal(g[0].n_inst, 0);
        assert_int_equal(mig_create(t.root, n, &g[0], p1, 6, NULL, NULL), -ENOSPC);
        assert_int_equal(mig_gpu_refresh(n, &g[0]), 0);
        assert_int_equal(g[0].n_inst, 1);
        assert_int_equal(g[0].inst[0].start, 6);
        /* ours goes elsewhere, theirs stays */
        MigInstance mine;
        assert_int_equal(mig_create(t.root, n, &g[0], p1, 5, &mine, NULL), 0);
        assert_int_equal(g[0].n_inst, 2);
        unsigned theirs = g[0].inst[0].gi_id == mine.gi_id ? g[0].inst[1].gi_id : g[0].inst[0].gi_id;
        assert_int_not_equal(theirs, mine.gi_id);

        /* they destroy theirs: we see it gone, and ours is untouched */
        assert_int_equal(in_child(child_destroy, n, &g[0], (int)theirs), 0);
        assert_int_equal(mig_gpu_refresh(n, &g[0]), 0);
        assert_int_equal(g[0].n_inst, 1);
        assert_int_equal(g[0].inst[0].gi_id, mine.gi_id);
        assert_string_equal(g[0].inst[0].uuid, mine.uuid);
        assert_int_equal(mig_destroy(t.root, n, &g[0], theirs, NULL), -ENOENT);
        free(g);
        nvml_close(n);
        test_host_close(&t);
}

/* g's snapshot is what NVML says now: mig_create() and mig_destroy() update it from what they changed,
 * without reading the GPU again. */
static void assert_snapshot_fresh(Nvml *n, const MigGpu *g) {
        MigGpu fresh;
        assert_int_equal(mig_gpu_read(n, g->address, &fresh), 0);
        assert_int_equal(fresh.mode_current, g->mode_current);
        assert_int_equal(fresh.mode_pending, g->mode_pending);
        assert_int_equal(fresh.n_inst, g->n_inst);
        for (size_t i = 0; i < g->n_inst; i++) {
                assert_int_equal(fresh.inst[i].profile, g->inst[i].profile);
                assert_int_equal(fresh.inst[i].start, g->inst[i].start);
                assert_int_equal(fresh.inst[i].size, g->inst[i].size);
                assert_int_equal(fresh.inst[i].gi_id, g->inst[i].gi_id);
                assert_int_equal(fresh.inst[i].ci_id, g->inst[i].ci_id);
                assert_string_equal(fresh.inst[i].uuid, g->inst[i].uuid);
        }
}

static void test_snapshot_follows_changes(void **state) {
        TestHost t;
        Nvml *n;
        MigGpu *g;
        open_mig_gpu0(&t, &n, &g);
        int p1 = mig_profile_find(&g[0], "1g.5gb"), p2 = mig_profile_find(&g[0], "2g.10gb"),
            p3 = mig_profile_find(&g[0], "3g.20gb");
        MigInstance made[4];
        /* out of order (the snapshot stays sorted by start), at placements and at the driver's default */
        assert_int_equal(mig_create(t.root, n, &g[0], p2, 4, &made[0], NULL), 0);
        assert_snapshot_fresh(n, &g[0]);
        assert_int_equal(mig_create(t.root, n, &g[0], p1, -1, &made[1], NULL), 0);
        assert_snapshot_fresh(n, &g[0]);
        assert_int_equal(mig_create(t.root, n, &g[0], p3, 0, &made[2], NULL), 0);
        assert_snapshot_fresh(n, &g[0]);
        assert_int_equal(g[0].n_inst, 3);
        assert_int_equal(g[0].inst[0].start, 0);
        assert_int_equal(g[0].inst[2].start, 6);
        for (size_t i = 0; i < 3; i++) {
                assert_true(made[i].ci_id >= 0);
                assert_true(startswith(made[i].uuid, "MIG-"));
        }
        /* the one in the middle goes; another takes its place */
        assert_int_equal(mig_destroy(t.root, n, &g[0], made[0].gi_id, NULL), 0);
        assert_snapshot_fresh(n, &g[0]);
        assert_int_equal(mig_create(t.root, n, &g[0], p1, 4, &made[3], NULL), 0);
        assert_snapshot_fresh(n, &g[0]);
        assert_int_equal(mig_destroy(t.root, n, &g[0], made[2].gi_id, NULL), 0);
        assert_snapshot_fresh(n, &g[0]);
        assert_int_equal(g[0].n_inst, 2);
        free(g);
        nvml_close(n);
        test_host_close(&t);
}

/*
 * NVIDIA's published MIG tables, written here as data (not taken from the fake library), and checked row by
 * row against what the fake libnvidia-ml.so.1 reports through NVML for each product it models.
 *
 * name, profile id, instances, compute slices (the "Fraction of SMs" numerator), placements (starts, memory
 * slices), copy engines, NVDEC, JPEG, OFA: NVIDIA Multi-Instance GPU User Guide (r580), "Supported MIG
 * Profiles" (tables for A30, A100, H100, H200) and "Getting Started with MIG" (nvidia-smi mig -lgipp).
 * GiB (as nvidia-smi mig -lgip prints memorySizeMB / 1024) and SMs: nvidia-smi mig -lgip on the product,
 * as cited in src/sim/nvml/models.c (the guide's tables give fractions, not counts).
 */
typedef struct PubRow {
        const char *name;
        unsigned id, instances, compute, starts, size, ce, dec, jpeg, ofa;
        const char *gib;
        unsigned sms;
} PubRow;

typedef struct PubTable {
        uint16_t device;
        const char *product; /* NVML's name */
        unsigned slices;
        PubRow rows[8];
        size_t n;
} PubTable;

#define ALL7 0x7f /* {0,1,2,3,4,5,6} */
static const PubTable published[] = {
        {0x20b0, "NVIDIA A100-SXM4-40GB", 8, {
                {"1g.5gb", 19, 7, 1, ALL7, 1, 1, 0, 0, 0, "4.75", 14},
                {"1g.5gb+me", 20, 1, 1, ALL7, 1, 1, 1, 1, 1, "4.75", 14},
                {"1g.10gb", 15, 4, 1, 0x55, 2, 1, 1, 0, 0, "9.62", 14},
                {"2g.10gb", 14, 3, 2, 0x15, 2, 2, 1, 0, 0, "9.62", 28},
                {"3g.20gb", 9, 2, 3, 0x11, 4, 3, 2, 0, 0, "19.50", 42},
                {"4g.20gb", 5, 1, 4, 0x01, 4, 4, 2, 0, 0, "19.50", 56},
                {"7g.40gb", 0, 1, 7, 0x01, 8, 7, 5, 1, 1, "39.25", 98}}, 7},
        {0x20b2, "NVIDIA A100-SXM4-80GB", 8, {
                {"1g.10gb", 19, 7, 1, ALL7, 1, 1, 0, 0, 0, "9.50", 14},
                {"1g.10gb+me", 20, 1, 1, ALL7, 1, 1, 1, 1, 1, "9.50", 14},
                {"1g.20gb", 15, 4, 1, 0x55, 2, 1, 1, 0, 0, "19.50", 14},
                {"2g.20gb", 14, 3, 2, 0x15, 2, 2, 1, 0, 0, "19.50", 28},
                {"3g.40gb", 9, 2, 3, 0x11, 4, 3, 2, 0, 0, "39.25", 42},
                {"4g.40gb", 5, 1, 4, 0x01, 4, 4, 2, 0, 0, "39.25", 56},
                {"7g.80gb", 0, 1, 7, 0x01, 8, 7, 5, 1, 1, "79.00", 98}}, 7},
        {0x20b7, "NVIDIA A30", 4, {
                {"1g.6gb", 14, 4, 1, 0x0f, 1, 1, 0, 0, 0, "5.81", 14},
                {"1g.6gb+me", 21, 1, 1, 0x0f, 1, 1, 1, 1, 1, "5.81", 14},
                {"2g.12gb", 5, 2, 2, 0x05, 2, 2, 2, 0, 0, "11.69", 28},
                {"2g.12gb+me", 6, 1, 2, 0x05, 2, 2, 2, 1, 1, "11.69", 28},
                {"4g.24gb", 0, 1, 4, 0x01, 4, 4, 4, 1, 1, "23.44", 56}}, 5},
        {0x2330, "NVIDIA H100 80GB HBM3", 8, {
                {"1g.10gb", 19, 7, 1, ALL7, 1, 1, 1, 1, 0, "9.75", 16},
                {"1g.10gb+me", 20, 1, 1, ALL7, 1, 1, 1, 1, 1, "9.75", 16},
                {"1g.20gb", 15, 4, 1, 0x55, 2, 1, 1, 1, 0, "19.62", 26},
                {"2g.20gb", 14, 3, 2, 0x15, 2, 2, 2, 2, 0, "19.62", 32},
                {"3g.40gb", 9, 2, 3, 0x11, 4, 3, 3, 3, 0, "39.50", 60},
                {"4g.40gb", 5, 1, 4, 0x01, 4, 4, 4, 4, 0, "39.50", 64},
                {"7g.80gb", 0, 1, 7, 0x01, 8, 8, 7, 7, 1, "79.25", 132}}, 7},
        {0x2331, "NVIDIA H100 PCIe", 8, {
                {"1g.10gb", 19, 7, 1, ALL7, 1, 1, 1, 1, 0, "9.75", 14},
                {"1g.10gb+me", 20, 1, 1, ALL7, 1, 1, 1, 1, 1, "9.75", 14},
                {"1g.20gb", 15, 4, 1, 0x55, 2, 1, 1, 1, 0, "19.62", 14},
                {"2g.20gb", 14, 3, 2, 0x15, 2, 2, 2, 2, 0, "19.62", 30},
                {"3g.40gb", 9, 2, 3, 0x11, 4, 3, 3, 3, 0, "39.50", 46},
                {"4g.40gb", 5, 1, 4, 0x01, 4, 4, 4, 4, 0, "39.50", 62},
                {"7g.80gb", 0, 1, 7, 0x01, 8, 8, 7, 7, 1, "79.25", 114}}, 7},
        {0x2335, "NVIDIA H200", 8, {
                {"1g.18gb", 19, 7, 1, ALL7, 1, 1, 1, 1, 0, "16.00", 16},
                {"1g.18gb+me", 20, 1, 1, ALL7, 1, 1, 1, 1, 1, "16.00", 16},
                {"1g.35gb", 15, 4, 1, 0x55, 2, 1, 1, 1, 0, "32.25", 26},
                {"2g.35gb", 14, 3, 2, 0x15, 2, 2, 2, 2, 0, "32.25", 32},
                {"3g.71gb", 9, 2, 3, 0x11, 4, 3, 3, 3, 0, "69.50", 60},
                {"4g.71gb", 5, 1, 4, 0x01, 4, 4, 4, 4, 0, "69.50", 64},
                {"7g.141gb", 0, 1, 7, 0x01, 8, 8, 7, 7, 1, "139.75", 132}}, 7},
        /* the PCIe cards of the same silicon and memory: the same tables */
        {0x20f1, "NVIDIA A100-PCIE-40GB", 8, {{"1g.5gb", 19, 7, 1, ALL7, 1, 1, 0, 0, 0, "4.75", 14}}, 1},
        {0x20b5, "NVIDIA A100 80GB PCIe", 8, {{"7g.80gb", 0, 1, 7, 0x01, 8, 7, 5, 1, 1, "79.00", 98}}, 1},
};
#undef ALL7

/* Rewrite a simulated GPU's identity (device attribute and config header) to another product's. */
static void set_device_id(TestHost *t, const PciDevice *d, uint16_t device) {
        char v[16];
        snprintf(v, sizeof v, "0x%04x\n", device);
        _cleanup_free_ char *attr = root_path(t->root, "%s/device", d->syspath);
        _cleanup_free_ char *cfgp = root_path(t->root, "%s/config", d->syspath);
        assert_int_equal(write_text(attr, v), 0);
        _cleanup_free_ uint8_t *cfg = NULL;
        size_t n = 0;
        assert_int_equal(read_full(cfgp, 4096, (void **)&cfg, &n), 0);
        cfg[2] = (uint8_t)device;
        cfg[3] = (uint8_t)(device >> 8);
        assert_int_equal(write_file(cfgp, (const char *)cfg, n, O_TRUNC, 0644), 0);
}

static void test_published_tables(void **state) {
        TestHost t;
        test_host_open(&t, "dgx-a100");
        /* the eight A100s become one GPU of each product */
        size_t k = 0;
        for (size_t i = 0; i < t.host->n_devices && k < ELEMENTSOF(published); i++)
                if (t.host->devices[i].vendor == 0x10de && t.host->devices[i].device == 0x20b0)
                        set_device_id(&t, &t.host->devices[i], published[k++].device);
        assert_int_equal(k, ELEMENTSOF(published));
        Nvml *n = NULL;
        assert_int_equal(nvml_open(t.root, &n, NULL), 0);
        MigGpu *g = NULL;
        size_t ng = 0;
        assert_int_equal(mig_gpus_read(n, &g, &ng), 0);
        assert_int_equal(ng, ELEMENTSOF(published));
        for (size_t i = 0; i < ng; i++) {
                const PubTable *pt = NULL;
                for (size_t j = 0; j < ELEMENTSOF(published); j++)
                        if (g[i].pci_device_id == ((uint32_t)published[j].device << 16 | 0x10de))
                                pt = &published[j];
                assert_non_null(pt);
                assert_string_equal(g[i].name, pt->product);
                assert_true(g[i].capable);
                assert_int_equal(g[i].slices, pt->slices);
                if (pt->n == 7 || pt->n == 5)
                        assert_int_equal(g[i].n_profiles, pt->n); /* every profile of the table, no other */
                for (size_t r = 0; r < pt->n; r++) {
                        const PubRow *w = &pt->rows[r];
                        int pi = mig_profile_find(&g[i], w->name);
                        if (pi < 0)
                                fail_msg("%s: no profile %s", pt->product, w->name);
                        const MigProfile *p = &g[i].profiles[pi];
                        assert_string_equal(p->name, w->name);
                        assert_int_equal(p->id, w->id);
                        assert_int_equal(p->max, w->instances);
                        assert_int_equal(p->compute, w->compute);
                        assert_int_equal(p->starts, w->starts);
                        assert_int_equal(p->size, w->size);
                        assert_int_equal(p->sms, w->sms);
                        char gib[16];
                        snprintf(gib, sizeof gib, "%.2f", (double)p->memory_mb / 1024.0);
                        if (!streq(gib, w->gib))
                                fail_msg("%s %s: %s GiB, published %s", pt->product, w->name, gib, w->gib);
                        nvmlGpuInstanceProfileInfo_t info;
                        assert_int_equal(n->f.nvmlDeviceGetGpuInstanceProfileInfo(g[i].dev, p->constant, &info), NVML_SUCCESS);
                        assert_int_equal(info.copyEngineCount, w->ce);
                        assert_int_equal(info.decoderCount, w->dec);
                        assert_int_equal(info.jpegCount, w->jpeg);
                        assert_int_equal(info.ofaCount, w->ofa);
                }
        }
        free(g);
        nvml_close(n);
        test_host_close(&t);
}

static int child_create_killed(Nvml *n, MigGpu *g, int profile) {
        return mig_create(child_root, n, g, profile, -1, NULL, NULL);
}

/* A crash between a GPU instance and its compute instance (the fake NVML's changes are fault points, as
 * kernel writes are) leaves a GPU instance that is no MIG device: the layout does not match, and an apply
 * makes it right. */
static void test_half_made_instance(void **state) {
        TestHost t;
        Nvml *n;
        MigGpu *g;
        open_mig_gpu0(&t, &n, &g);
        int p1 = mig_profile_find(&g[0], "1g.5gb");
        assert_int_equal(sim_inject_fault(t.dir, "nvmlGpuInstanceCreateComputeInstance", SIM_FAULT_KILL), 0);
        assert_int_equal(in_child(child_create_killed, n, &g[0], p1), -1); /* killed */
        assert_int_equal(mig_gpu_refresh(n, &g[0]), 0);
        assert_int_equal(g[0].n_inst, 1);
        assert_int_equal(g[0].inst[0].ci_id, -1);
        unsigned want[MIG_MAX_PROFILES] = {};
        want[p1] = 1;
        assert_false(mig_layout_matches(&g[0], true, want));
        MigApplyReport rep;
        assert_int_equal(mig_apply_gpu(t.root, n, &g[0], true, want, true, false, &rep), 0);
        mig_apply_report_done(&rep);
        assert_int_equal(mig_gpu_refresh(n, &g[0]), 0);
        assert_int_equal(g[0].n_inst, 1);
        assert_true(g[0].inst[0].ci_id >= 0);
        assert_true(mig_layout_matches(&g[0], true, want));
        free(g);
        nvml_close(n);
        test_host_close(&t);
}

/* Every change of MIG state asks root_change(): under --dry-run create, destroy, set-mode and reset say what
 * they would do and return 1 with NVML's state untouched, and an apply plans without changing anything. A
 * failing change reports through the GvError: the device, the step, NVML's code and the errno described. */
static void test_dry_run_and_errors(void **state) {
        TestHost t;
        Nvml *n;
        MigGpu *g;
        open_mig_gpu0(&t, &n, &g);
        int p1 = mig_profile_find(&g[0], "1g.5gb");
        MigInstance m;
        assert_int_equal(mig_create(t.root, n, &g[0], p1, 6, &m, NULL), 0);
        _cleanup_free_ char *before = NULL;
        _cleanup_free_ char *statefile = strdup_printf("%s/.gpuvirt-sim/nvml/%s", t.dir, g[0].address);
        assert_int_equal(read_full(statefile, 1 << 20, (void **)&before, NULL), 0);

        Root *dry = NULL;
        assert_int_equal(root_open(t.dir, ROOT_DRY_RUN, &dry), 0);
        char *printed = NULL;
        size_t printed_len = 0;
        FILE *f = open_memstream(&printed, &printed_len);
        assert_non_null(f);
        root_set_dry_run_stream(dry, f);
        int act = 7;
        assert_int_equal(mig_create(dry, n, &g[0], p1, 5, NULL, NULL), 1);
        assert_int_equal(mig_destroy(dry, n, &g[0], m.gi_id, NULL), 1);
        assert_int_equal(mig_set_mode(dry, n, &g[0], false, &act, NULL), 1);
        assert_int_equal(act, 7);
        assert_int_equal(mig_reset(dry, n, &g[0], NULL), 1);
        unsigned want[MIG_MAX_PROFILES] = {};
        want[mig_profile_find(&g[0], "3g.20gb")] = 2;
        MigApplyReport rep;
        assert_int_equal(mig_apply_gpu(dry, n, &g[0], true, want, true, false, &rep), 0);
        assert_int_equal(rep.state, MIG_APPLY_CHANGED);
        assert_int_equal(rep.error.error, 0);
        size_t creates = 0;
        for (size_t i = 0; i < rep.n_actions; i++)
                if (rep.actions[i].kind == MIG_ACTION_CREATE) {
                        assert_int_equal(rep.actions[i].gi_id, -1);
                        creates++;
                }
        assert_int_equal(creates, 2);
        mig_apply_report_done(&rep);
        assert_int_equal(fclose(f), 0);
        assert_non_null(strstr(printed, "would create 1g.5gb at 5:1 on "));
        assert_non_null(strstr(printed, "would destroy GPU instance "));
        assert_non_null(strstr(printed, "would set MIG mode of "));
        assert_non_null(strstr(printed, "/reset <- \"1\""));
        assert_non_null(strstr(printed, "would create 3g.20gb at "));
        free(printed);
        root_free(dry);
        _cleanup_free_ char *after = NULL;
        assert_int_equal(read_full(statefile, 1 << 20, (void **)&after, NULL), 0);
        assert_string_equal(before, after);
        assert_int_equal(mig_gpu_refresh(n, &g[0]), 0);
        assert_int_equal(g[0].n_inst, 1);

        /* slice 6 is taken: NVML_ERROR_INSUFFICIENT_RESOURCES, as -ENOSPC, named in the error */
        GvError err = {};
        assert_int_equal(mig_create(t.root, n, &g[0], p1, 6, NULL, &err), -ENOSPC);
        assert_int_equal(err.error, ENOSPC);
        assert_string_equal(err.device, g[0].address);
        assert_string_equal(err.step, "create");
        assert_non_null(strstr(err.message, "cannot create 1g.5gb at 6:1 on "));
        assert_non_null(strstr(err.message, "NVML_ERROR_INSUFFICIENT_RESOURCES: "));
        assert_non_null(strstr(err.message, "(ENOSPC)"));
        gv_error_done(&err);
        free(g);
        nvml_close(n);
        test_host_close(&t);
}

/* Pinned instances (the fleet's MigCount.at) go through the same apply: a half-made GPU instance is no pinned
 * instance and is replaced by a whole one, a pin at no placement of its profile is refused with the reason
 * before anything changes, and a GPU that fell off the bus is refused as without pins. */
static void test_pinned_apply(void **state) {
        TestHost t;
        Nvml *n;
        MigGpu *g;
        open_mig_gpu0(&t, &n, &g);
        int p1 = mig_profile_find(&g[0], "1g.5gb"), p3 = mig_profile_find(&g[0], "3g.20gb");
        assert_int_equal(sim_inject_fault(t.dir, "nvmlGpuInstanceCreateComputeInstance", SIM_FAULT_KILL), 0);
        assert_int_equal(in_child(child_create_killed, n, &g[0], p1), -1); /* killed */
        assert_int_equal(mig_gpu_refresh(n, &g[0]), 0);
        assert_int_equal(g[0].n_inst, 1);
        assert_int_equal(g[0].inst[0].ci_id, -1);
        MigPlanCreate pin = {p1, g[0].inst[0].start};
        assert_false(mig_has_instances_at(&g[0], &pin, 1));
        unsigned want[MIG_MAX_PROFILES] = {};
        want[p1] = 1;
        MigApplyReport rep;
        assert_int_equal(mig_apply_gpu_pinned(t.root, n, &g[0], true, want, &pin, 1, true, false, &rep), 0);
        mig_apply_report_done(&rep);
        assert_int_equal(mig_gpu_refresh(n, &g[0]), 0);
        assert_int_equal(g[0].n_inst, 1);
        assert_true(g[0].inst[0].ci_id >= 0);
        assert_true(mig_has_instances_at(&g[0], &pin, 1));
        /* 3g.20gb starts at 0 or 4 on an A100-40GB: at 2 it is refused, and the GPU keeps its instance */
        want[p3] = 1;
        MigPlanCreate pins[] = {pin, {p3, 2}};
        assert_int_equal(mig_apply_gpu_pinned(t.root, n, &g[0], true, want, pins, 2, true, false, &rep), -ENOSPC);
        assert_non_null(rep.error.message);
        assert_non_null(strstr(rep.error.message, "3g.20gb at 2 is not one of its placements"));
        assert_int_equal(rep.error.error, ENOSPC);
        assert_string_equal(rep.error.device, g[0].address);
        mig_apply_report_done(&rep);
        char *why = NULL;
        assert_int_equal(mig_layout_fits_pinned(&g[0], want, pins, 2, &why), -ENOSPC);
        free(why);
        assert_int_equal(mig_gpu_refresh(n, &g[0]), 0);
        assert_int_equal(g[0].n_inst, 1);
        assert_true(mig_has_instances_at(&g[0], &pin, 1));
        /* at a legal start beside the 1g.5gb (slices 0-3 or 4-7) it fits */
        pins[1].start = pin.start >= 4 ? 0 : 4;
        assert_int_equal(mig_layout_fits_pinned(&g[0], want, pins, 2, NULL), 0);
        /* a GPU that fell off the bus */
        assert_int_equal(sim_device_off_bus(t.dir, g[0].address), 0);
        free(g);
        nvml_close(n);
        assert_int_equal(nvml_open(t.root, &n, NULL), 0);
        size_t ng = 0;
        assert_int_equal(mig_gpus_read(n, &g, &ng), 0);
        assert_true(g[0].lost);
        assert_int_equal(mig_apply_gpu_pinned(t.root, n, &g[0], true, want, pins, 2, true, false, &rep), -ENODEV);
        assert_non_null(strstr(rep.error.message, "fallen off the bus"));
        assert_int_equal(rep.error.error, ENODEV);
        mig_apply_report_done(&rep);
        free(g);
        nvml_close(n);
        test_host_close(&t);
}

/* A mig-parted configuration over the eight GPUs of a DGX A100 (MIG on GPU 0 only), in core's steps: the
 * configuration picked by label (several and none named: the hint, no option in the message), every GPU's
 * target checked first (a layout that cannot fit and a lost GPU are refused per GPU, with their error), and
 * per GPU what is done with it. */
static void test_config_steps(void **state) {
        TestHost t;
        Nvml *n;
        MigGpu *g;
        open_mig_gpu0(&t, &n, &g);
        static const char text[] = "version: v1\nmig-configs:\n"
                                   "  two:\n    - devices: [0]\n      mig-enabled: true\n      mig-devices:\n        \"1g.5gb\": 2\n"
                                   "  toomany:\n    - devices: [0]\n      mig-enabled: true\n      mig-devices:\n        \"1g.5gb\": 8\n";
        _cleanup_(migparted_freep) MigParted *m = NULL;
        assert_int_equal(migparted_parse_text("m.yaml", text, sizeof text - 1, &m, NULL), 0);
        const MigPartedConfig *cfg = NULL;
        GvError err = {};
        assert_int_equal(mig_config_find(m, NULL, &cfg, &err), -EINVAL);
        assert_null(cfg);
        assert_int_equal(err.hint, GV_HINT_MIG_LABEL);
        assert_string_equal(err.message, "m.yaml holds 2 configurations and none is named (two, ...)");
        assert_int_equal(mig_config_find(m, "nosuch", &cfg, &err), -EINVAL);
        assert_int_equal(err.hint, GV_HINT_NONE);
        assert_string_equal(err.message, "m.yaml: no configuration 'nosuch' (it has 2: two, ...)");
        gv_error_done(&err);
        assert_int_equal(mig_config_find(m, "two", &cfg, &err), 0);
        assert_string_equal(cfg->label, "two");

        MigConfigPlan plan;
        assert_int_equal(mig_config_plan(m, cfg, g, 8, false, &plan, &err), 0);
        assert_int_equal(plan.selected, 1);
        assert_int_equal(plan.refused + plan.lost, 0);
        assert_int_equal(mig_config_verdict(&g[0], &plan.gpus[0].target, false), MIG_CONFIG_APPLY);
        assert_int_equal(mig_config_verdict(&g[0], &plan.gpus[0].target, true), MIG_CONFIG_DIFFERS);
        assert_int_equal(mig_config_verdict(&g[1], &plan.gpus[1].target, false), MIG_CONFIG_LEFT_ALONE);
        assert_int_equal(mig_config_verdict(&g[1], &plan.gpus[1].target, true), MIG_CONFIG_UNMATCHED);
        mig_config_plan_done(&plan);

        /* a lost GPU: nothing is applied anywhere; an assert goes on and counts it */
        g[3].lost = true;
        assert_int_equal(mig_config_plan(m, cfg, g, 8, false, &plan, &err), -ENODEV);
        assert_int_equal(plan.lost, 1);
        assert_int_equal(plan.gpus[3].error.error, ENODEV);
        assert_int_equal(plan.gpus[3].error.hint, GV_HINT_LOST_GPU);
        assert_non_null(strstr(plan.gpus[3].error.message, "GPU 3 has fallen off the bus"));
        assert_int_equal(plan.gpus[0].error.error, 0);
        assert_non_null(strstr(err.message, "while a GPU is lost"));
        mig_config_plan_done(&plan);
        gv_error_done(&err);
        assert_int_equal(mig_config_plan(m, cfg, g, 8, true, &plan, &err), 0);
        assert_int_equal(mig_config_verdict(&g[3], &plan.gpus[3].target, true), MIG_CONFIG_LOST);
        mig_config_plan_done(&plan);
        g[3].lost = false;

        /* 8 x 1g.5gb does not fit: refused at its entry, before anything changed */
        assert_int_equal(mig_config_find(m, "toomany", &cfg, NULL), 0);
        assert_int_equal(mig_config_plan(m, cfg, g, 8, false, &plan, &err), -EINVAL);
        assert_int_equal(plan.refused, 1);
        assert_int_equal(plan.gpus[0].error.error, EINVAL);
        assert_string_equal(plan.gpus[0].error.step, "target");
        assert_true(startswith(plan.gpus[0].error.message, "m.yaml:9:7: this layout does not fit GPU 0"));
        mig_config_plan_done(&plan);
        gv_error_done(&err);
        assert_int_equal(mig_gpu_refresh(n, &g[0]), 0);
        assert_int_equal(g[0].n_inst, 0);
        free(g);
        nvml_close(n);
        test_host_close(&t);
}

/* The single-GPU operations with their checks: a profile or placement that does not exist is bad input
 * (EINVAL, nothing done), a placement with a count is E2BIG; instances are placed until there is no room
 * (ENOSPC with the status hint, what was made listed); MIG off is EOPNOTSUPP with the enable hint; an
 * unknown GPU instance has the status hint; destroying all lists every one; what export writes asserts as
 * the layout it came from. */
static void test_instance_ops(void **state) {
        TestHost t;
        Nvml *n;
        MigGpu *g;
        open_mig_gpu0(&t, &n, &g);
        GvError err = {};
        MigCreateResult cr;
        assert_int_equal(mig_create_instances(t.root, n, &g[0], "9g.99gb", -1, 1, &cr, &err), -EINVAL);
        assert_false(cr.checked);
        assert_true(startswith(err.message, "Unknown MIG profile '9g.99gb' on "));
        assert_int_equal(mig_create_instances(t.root, n, &g[0], "3g.20gb", 3, 1, &cr, &err), -EINVAL);
        assert_non_null(strstr(err.message, "its placements are 0,4:4 (start:size)"));
        assert_int_equal(mig_create_instances(t.root, n, &g[0], "3g.20gb", 4, 2, &cr, &err), -E2BIG);
        assert_int_equal(g[0].n_inst, 0);

        assert_int_equal(mig_create_instances(t.root, n, &g[0], "1g.5gb", -1, 3, &cr, &err), 0);
        assert_true(cr.checked);
        assert_false(cr.dry_run);
        assert_int_equal(cr.n_created, 3);
        assert_int_equal(g[0].n_inst, 3);
        assert_true(cr.created[0].gi_id != cr.created[1].gi_id && cr.created[1].gi_id != cr.created[2].gi_id);
        assert_int_equal(mig_create_instances(t.root, n, &g[0], "1g.5gb", -1, 5, &cr, &err), -ENOSPC);
        assert_true(cr.checked);
        assert_int_equal(cr.n_created, 4); /* 7 at most */
        assert_int_equal(err.hint, GV_HINT_MIG_STATUS);
        assert_string_equal(err.device, g[0].address);
        assert_true(startswith(err.message, "No room for another 1g.5gb on "));
        assert_null(strstr(err.message, "gpuvirt"));

        MigDestroyResult dr;
        assert_int_equal(mig_destroy_instances(t.root, n, &g[0], 99, false, &dr, &err), -EINVAL);
        assert_false(dr.checked);
        assert_int_equal(err.hint, GV_HINT_MIG_STATUS);
        assert_true(endswith(err.message, "has no GPU instance 99"));
        assert_int_equal(mig_destroy_instances(t.root, n, &g[0], -1, false, &dr, &err), 0);
        assert_int_equal(dr.n_destroyed, 7);
        assert_int_equal(g[0].n_inst, 0);

        /* GPU 1 has MIG off */
        assert_int_equal(mig_create_instances(t.root, n, &g[1], "1g.5gb", -1, 1, &cr, &err), -EOPNOTSUPP);
        assert_false(cr.checked);
        assert_int_equal(err.hint, GV_HINT_MIG_ENABLE);
        _cleanup_free_ char *off = strdup_printf("MIG is not enabled on %s", g[1].address);
        assert_string_equal(err.message, off);
        assert_int_equal(mig_destroy_instances(t.root, n, &g[1], -1, false, &dr, &err), -EOPNOTSUPP);
        /* what export writes reads back as the layout it came from */
        assert_int_equal(mig_create_instances(t.root, n, &g[0], "3g.20gb", -1, 2, &cr, &err), 0);
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        assert_non_null(f);
        assert_int_equal(mig_config_export(f, "snap", g, 8), 0);
        assert_int_equal(fclose(f), 0);
        assert_non_null(strstr(text, "  snap:\n    - devices: [0]\n      mig-enabled: true\n"));
        assert_non_null(strstr(text, "    - devices: [1]\n      mig-enabled: false\n"));
        _cleanup_(migparted_freep) MigParted *m = NULL;
        assert_int_equal(migparted_parse_text("e.yaml", text, len, &m, NULL), 0);
        free(text);
        const MigPartedConfig *cfg = NULL;
        assert_int_equal(mig_config_find(m, NULL, &cfg, NULL), 0);
        MigConfigPlan plan;
        assert_int_equal(mig_config_plan(m, cfg, g, 8, true, &plan, NULL), 0);
        for (size_t i = 0; i < 8; i++)
                assert_int_equal(mig_config_verdict(&g[i], &plan.gpus[i].target, true), MIG_CONFIG_MATCHES);
        mig_config_plan_done(&plan);

        MigModeResult mr;
        assert_int_equal(mig_mode_change(t.root, n, &g[0], true, &mr, &err), 0);
        assert_true(mr.unchanged);
        mig_mode_result_done(&mr);
        gv_error_done(&err);
        free(g);
        nvml_close(n);
        test_host_close(&t);
}

/* NVIDIA names profiles by their share of the GPU's memory (go-nvlib), not by their GiB rounded up. */
static void test_profile_names(void **state) {
        char b[32];
        const unsigned long long h200_total = 143771ull << 20, a100_total = 40960ull << 20;
        mig_profile_name(1, 16384, NVML_GPU_INSTANCE_PROFILE_1_SLICE, h200_total, b);
        assert_string_equal(b, "1g.18gb");
        mig_profile_name(1, 16384, NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1, h200_total, b);
        assert_string_equal(b, "1g.18gb+me");
        mig_profile_name(3, 71168, NVML_GPU_INSTANCE_PROFILE_3_SLICE, h200_total, b);
        assert_string_equal(b, "3g.71gb");
        mig_profile_name(7, 143104, NVML_GPU_INSTANCE_PROFILE_7_SLICE, h200_total, b);
        assert_string_equal(b, "7g.141gb");
        mig_profile_name(1, 4864, NVML_GPU_INSTANCE_PROFILE_1_SLICE, a100_total, b);
        assert_string_equal(b, "1g.5gb");
        /* without the GPU's total: GiB rounded up */
        mig_profile_name(1, 16384, NVML_GPU_INSTANCE_PROFILE_1_SLICE, 0, b);
        assert_string_equal(b, "1g.16gb");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_default_placement),
                cmocka_unit_test(test_best_placement_keeps_big_profiles),
                cmocka_unit_test(test_plan_unchanged),
                cmocka_unit_test(test_plan_grow_keeps_everything),
                cmocka_unit_test(test_plan_needs_move),
                cmocka_unit_test(test_plan_impossible),
                cmocka_unit_test(test_plan_random),
                cmocka_unit_test(test_nvml_errors),
                cmocka_unit_test(test_nvml_load),
                cmocka_unit_test(test_nvml_shared_state),
                cmocka_unit_test(test_snapshot_follows_changes),
                cmocka_unit_test(test_half_made_instance),
                cmocka_unit_test(test_pinned_apply),
                cmocka_unit_test(test_dry_run_and_errors),
                cmocka_unit_test(test_published_tables),
                cmocka_unit_test(test_profile_names),
                cmocka_unit_test(test_config_steps),
                cmocka_unit_test(test_instance_ops),
                cmocka_unit_test(test_nvml_once),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
