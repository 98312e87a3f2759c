/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fleet: requests, GPU records, the scheduler's rules, pinned MIG plans, the local store's transactions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <cmocka.h>
#include <unistd.h>

#include "basic/base64.h"
#include "basic/fileio.h"
#include "core/fleet/client.h"
#include "core/fleet/fleet.h"
#include "core/fleet/store.h"
#include "helpers.h"

/* The A100-40GB table of mig-nvml.md (input of the tests) */
#define P(nm, c, i, cs, sz, mx, st) {.name = nm, .constant = c, .id = i, .compute = cs, .size = sz, .max = mx, .starts = st}
static const MigProfile a100[] = {
        P("1g.5gb", 0, 19, 1, 1, 7, 0x7f), P("1g.5gb+me", 7, 20, 1, 1, 1, 0x7f), P("1g.10gb", 9, 15, 1, 2, 4, 0x55),
        P("2g.10gb", 1, 14, 2, 2, 3, 0x15), P("3g.20gb", 2, 9, 3, 4, 2, 0x11), P("4g.20gb", 3, 5, 4, 4, 1, 0x01),
        P("7g.40gb", 4, 0, 7, 8, 1, 0x01)};
/* H100-80GB: its 1g.10gb is one slice, where the A100-40GB's is two */
static const MigProfile h100[] = {
        P("1g.10gb", 0, 19, 1, 1, 7, 0x7f), P("1g.10gb+me", 7, 20, 1, 1, 1, 0x7f), P("1g.20gb", 9, 15, 1, 2, 4, 0x55),
        P("2g.20gb", 1, 14, 2, 2, 3, 0x15), P("3g.40gb", 2, 9, 3, 4, 2, 0x11), P("4g.40gb", 3, 5, 4, 4, 1, 0x01),
        P("7g.80gb", 4, 0, 7, 8, 1, 0x01)};
#undef P
enum { A1G = 0, A1GME, A1G10, A2G, A3G, A4G, A7G };

static FleetGpuInfo gpu(const char *host, unsigned slot, const char *kind) {
        FleetGpuInfo g = {.numa = slot < 2 ? 0 : 1, .isolated = true, .base_mode = GPU_MODE_HOST, .base_vgpu_type = -1};
        snprintf(g.host, sizeof g.host, "%s", host);
        snprintf(g.address, sizeof g.address, "0000:%02x:00.0", 0x10 + slot);
        FleetModelInfo *m = &g.model;
        if (startswith(kind, "a100")) {
                if (streq(kind, "a100-mig"))
                        g.base_mode = GPU_MODE_MIG; /* already in MIG mode: no mode change to weigh */
                *m = (FleetModelInfo){.vendor = 0x10de, .device = 0x20b0, .memory_mb = 40960, .vgpu_one_type = true,
                                      .n_mig = ELEMENTSOF(a100), .mig_slices = 8};
                memcpy(m->mig, a100, sizeof a100);
                snprintf(g.nvlink, sizeof g.nvlink, "%s/nvswitch", host);
        } else if (streq(kind, "h100-mig")) {
                g.base_mode = GPU_MODE_MIG;
                *m = (FleetModelInfo){.vendor = 0x10de, .device = 0x2331, .memory_mb = 81920, .vgpu_one_type = true,
                                      .n_mig = ELEMENTSOF(h100), .mig_slices = 8};
                memcpy(m->mig, h100, sizeof h100);
        } else if (streq(kind, "t4")) {
                *m = (FleetModelInfo){.vendor = 0x10de, .device = 0x1eb8, .memory_mb = 16384, .vgpu_one_type = true, .n_types = 2};
                m->types = calloc(2, sizeof *m->types);
                m->types[0] = (FleetVgpuType){"nvidia-222", "GRID T4-1B", 16};
                m->types[1] = (FleetVgpuType){"nvidia-231", "GRID T4-2Q", 8};
        } else {
                *m = (FleetModelInfo){.vendor = 0x8086, .device = 0x56c0, .memory_mb = 16384, .total_vfs = 31};
        }
        snprintf(m->name, sizeof m->name, "%s", kind);
        return g;
}

/* hosts h0..h{n-1}, each with `per` GPUs of the kind */
static Fleet *fleet_of(FleetStrategy st, size_t n, size_t per, const char *kind) {
        Fleet *f = fleet_new(st);
        assert_non_null(f);
        for (size_t h = 0; h < n; h++) {
                char name[16];
                snprintf(name, sizeof name, "h%zu", h);
                uint32_t hi, gi;
                assert_int_equal(fleet_host_add(f, name, true, &hi), 0);
                for (unsigned s = 0; s < per; s++) {
                        FleetGpuInfo g = gpu(name, s, kind);
                        assert_int_equal(fleet_gpu_add(f, &g, &gi), 0);
                        fleet_gpu_info_done(&g);
                }
        }
        return f;
}

static FleetRequest req(const char *line) {
        FleetRequest r;
        _cleanup_(gv_error_done) GvError err = {};
        assert_int_equal(fleet_request_parse_line(line, &r, &err), 0);
        return r;
}

static void test_request_parse(void **state) {
        FleetRequest r = req("mig:3g.20gb count=2 same-numa owner=vm1 group=g1");
        assert_int_equal(r.kind, FLEET_MIG);
        assert_string_equal(r.arg, "3g.20gb");
        assert_int_equal(r.count, 2);
        assert_true(r.same_host && r.same_numa);
        r = req("gpu:40gb owner=x");
        assert_int_equal(r.kind, FLEET_PASSTHROUGH);
        assert_int_equal(r.min_memory_mb, 40 * 1024);
        _cleanup_free_ char *u = fleet_request_unit(&r);
        assert_string_equal(u, "gpu:40gb");
        static const char *const bad[] = {
                "mig owner=x", "vgpu: owner=x", "passthrough:x owner=x", "gpu:40 owner=x", "gpu:0gb owner=x",
                "mig:3g.20gb", "mig:3g.20gb count=0 owner=x", "mig:3g.20gb count=65 owner=x", "passthrough live owner=x",
                "vf owner=a/b", "vf vf owner=x", "vf model=10de owner=x", "frobnicate owner=x", "",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                FleetRequest x;
                GvError err = {};
                assert_int_equal(fleet_request_parse_line(bad[i], &x, &err), -EINVAL);
                assert_non_null(err.message);
                assert_int_equal(err.error, EINVAL);
                gv_error_done(&err);
        }
        /* the JSON form reads back */
        json_object *j = fleet_request_json(&r);
        FleetRequest back;
        assert_int_equal(fleet_request_from_json(j, &back), 0);
        assert_int_equal(back.min_memory_mb, r.min_memory_mb);
        json_object_put(j);
}

static void test_record_roundtrip(void **state) {
        FleetGpuInfo g = gpu("h0", 0, "a100");
        g.base_mode = GPU_MODE_MIG;
        g.base_occ = 0x80;
        g.base_mig_count[A1G] = 1;
        g.units = calloc(1, sizeof *g.units);
        g.units[0] = (FleetUnit){.res = "r1", .n = 0, .kind = FLEET_MIG, .idx = A3G, .start = 0};
        g.n_units = 1;
        json_object *j = fleet_gpu_info_json(&g);
        const char *text = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN);
        FleetGpuInfo b;
        assert_int_equal(fleet_gpu_info_parse(text, &b, NULL), 0);
        json_object *k = fleet_gpu_info_json(&b);
        assert_string_equal(text, json_object_to_json_string_ext(k, JSON_C_TO_STRING_PLAIN));
        /* damaged records are refused with the reason */
        static const char *const edits[][2] = {
                {"\"kind\":\"mig\"", "\"kind\":\"x\""},   {"\"profile\":\"3g.20gb\"", "\"profile\":\"9g\""},
                {"\"mode\":\"mig\"", "\"mode\":\"y\""},   {"\"address\":\"0000:10:00.0\"", "\"address\":\"zz\""},
                {"\"start\":0", "\"start\":9"},           {"\"slices\":8", "\"slices\":\"8\""},
                /* a PCI address the store's keys and sysfs never spell so (upper case): found by fuzz-fleet */
                {"\"address\":\"0000:10:00.0\"", "\"address\":\"0000:1A:00.0\""},
                /* the strict JSON layer: json-c alone keeps the last of two keys */
                {"\"host\":", "\"host\":\"evil\",\"host\":"},
        };
        for (size_t i = 0; i < ELEMENTSOF(edits); i++) {
                char *t = strdup(text), *p = strstr(t, edits[i][0]);
                assert_non_null(p);
                _cleanup_free_ char *bad = strdup_printf("%.*s%s%s", (int)(p - t), t, edits[i][1], p + strlen(edits[i][0]));
                GvError err = {};
                FleetGpuInfo x;
                assert_int_equal(fleet_gpu_info_parse(bad, &x, &err), -EBADMSG);
                assert_non_null(err.message);
                assert_int_equal(err.error, EBADMSG);
                gv_error_done(&err);
                free(t);
        }
        json_object_put(j);
        json_object_put(k);
        fleet_gpu_info_done(&g);
        fleet_gpu_info_done(&b);
}

static void test_mig_placement(void **state) {
        _cleanup_fleet_free_ Fleet *f = fleet_of(FLEET_FRAG, 1, 1, "a100");
        FleetRequest r = req("mig:3g.20gb count=2 owner=a");
        FleetPlacement p[2];
        assert_int_equal(fleet_place(f, &r, "r1", p, NULL), 0);
        /* both on the one GPU, at the two legal starts; the GPU is then full */
        assert_int_equal(p[0].gpu, 0);
        assert_int_equal(p[0].start + p[1].start, 4);
        FleetRequest one = req("mig:1g.5gb owner=b");
        GvError err = {};
        assert_int_equal(fleet_place(f, &one, "r2", p, &err), -ENOSPC);
        gv_error_done(&err);
        assert_int_equal(fleet_gpu_free_units(f, 0, FLEET_MIG, A1G), 0);
        assert_int_equal(fleet_unplace(f, "r1", NULL, 0), 0);
        /* the scheduler's start is mig_best_start's (the MIG rules of core/mig.c) */
        assert_int_equal(fleet_place(f, &one, "r3", p, NULL), 0);
        assert_int_equal(p[0].start, mig_best_start(a100, ELEMENTSOF(a100), 8, 0, A1G));
        FleetRequest big = req("mig:7g.40gb owner=c");
        assert_int_equal(fleet_place(f, &big, "r4", p, &err), -ENOSPC);
        gv_error_done(&err);
        FleetRequest unknown = req("mig:9g.99gb owner=d");
        assert_int_equal(fleet_place(f, &unknown, "r5", p, &err), -EINVAL);
        assert_non_null(strstr(err.message, "no GPU in the fleet offers mig:9g.99gb"));
        gv_error_done(&err);
}

static void test_frag_prefers_fewest_lost(void **state) {
        /* GPU 0 holds a 1g at 6; a second 1g costs fewer future placements next to it than on the empty GPU 1 */
        _cleanup_fleet_free_ Fleet *f = fleet_of(FLEET_FRAG, 1, 2, "a100-mig");
        FleetRequest one = req("mig:1g.5gb owner=a");
        FleetPlacement p[1], q[1];
        assert_int_equal(fleet_place(f, &one, "r1", p, NULL), 0);
        assert_int_equal(fleet_place(f, &one, "r2", q, NULL), 0);
        assert_int_equal(q[0].gpu, p[0].gpu);
        /* spread does the opposite */
        _cleanup_fleet_free_ Fleet *s = fleet_of(FLEET_SPREAD, 1, 2, "a100-mig");
        assert_int_equal(fleet_place(s, &one, "r1", p, NULL), 0);
        assert_int_equal(fleet_place(s, &one, "r2", q, NULL), 0);
        assert_int_not_equal(q[0].gpu, p[0].gpu);
        /* but a mode change costs more than spreading: with GPU 1 in host mode, spread stays on GPU 0 */
        _cleanup_fleet_free_ Fleet *m = fleet_of(FLEET_SPREAD, 1, 1, "a100-mig");
        uint32_t gi;
        FleetGpuInfo idle = gpu("h0", 1, "a100");
        assert_int_equal(fleet_gpu_add(m, &idle, &gi), 0);
        fleet_gpu_info_done(&idle);
        assert_int_equal(fleet_place(m, &one, "r1", p, NULL), 0);
        assert_int_equal(fleet_place(m, &one, "r2", q, NULL), 0);
        assert_int_equal(p[0].gpu, 0);
        assert_int_equal(q[0].gpu, 0);
}

/* frag: a profile two models offer (1g.10gb: two slices of an A100-40GB, one of an H100) goes to the model where
 * it takes nothing from a profile that is being drained; the demand decides, not the fragmentation score (which
 * alone picks the A100 in round 0 and the H100 in round 1). */
static void test_frag_follows_demand(void **state) {
        for (int round = 0; round < 2; round++) {
                _cleanup_fleet_free_ Fleet *f = fleet_new(FLEET_FRAG);
                uint32_t hi, gi;
                const char *kinds[2] = {"a100-mig", "h100-mig"};
                for (int h = 0; h < 2; h++) {
                        char name[8];
                        snprintf(name, sizeof name, "h%d", h);
                        assert_int_equal(fleet_host_add(f, name, true, &hi), 0);
                        FleetGpuInfo g = gpu(name, 0, kinds[h]);
                        assert_int_equal(fleet_gpu_add(f, &g, &gi), 0);
                        fleet_gpu_info_done(&g);
                }
                /* round 0: demand for the A100's 1g.5gb; round 1: for the H100's 1g.20gb */
                FleetRequest d = req(round == 0 ? "mig:1g.5gb owner=a" : "mig:1g.20gb owner=a");
                FleetPlacement p[1];
                for (int i = 0; i < 1 + round; i++) {
                        char id[8];
                        snprintf(id, sizeof id, "d%d", i);
                        assert_int_equal(fleet_place(f, &d, id, p, NULL), 0);
                        assert_string_equal(fleet_gpu(f, p[0].gpu)->host, round == 0 ? "h0" : "h1");
                }
                FleetRequest small = req("mig:1g.10gb owner=b");
                assert_int_equal(fleet_place(f, &small, "s", p, NULL), 0);
                assert_string_equal(fleet_gpu(f, p[0].gpu)->model.name, round == 0 ? "h100-mig" : "a100-mig");
        }
}

/* A GPU held by a transaction in flight takes no placement until it is let go. */
static void test_hold(void **state) {
        _cleanup_fleet_free_ Fleet *f = fleet_of(FLEET_FRAG, 1, 2, "flex");
        FleetRequest r = req("passthrough owner=a");
        FleetPlacement p[1];
        GvError err = {};
        assert_int_equal(fleet_gpu_hold(f, 0, true), 0);
        assert_true(fleet_gpu_held(f, 0));
        assert_int_equal(fleet_gpu_free_units(f, 0, FLEET_PASSTHROUGH, -1), 0);
        assert_int_equal(fleet_place(f, &r, "r1", p, NULL), 0);
        assert_int_equal(p[0].gpu, 1);
        assert_int_equal(fleet_place(f, &r, "r2", p, &err), -ENOSPC);
        gv_error_done(&err);
        assert_int_equal(fleet_gpu_hold(f, 0, false), 0);
        assert_int_equal(fleet_place(f, &r, "r2", p, NULL), 0);
        assert_int_equal(p[0].gpu, 0);
}

static void test_vgpu_one_type(void **state) {
        _cleanup_fleet_free_ Fleet *f = fleet_of(FLEET_BINPACK, 1, 2, "t4");
        FleetRequest a = req("vgpu:nvidia-222 owner=a"), b = req("vgpu:nvidia-231 owner=b");
        snprintf(b.arg, sizeof b.arg, "GRID T4-2Q"); /* by name */
        FleetPlacement p[1], q[1];
        assert_int_equal(fleet_place(f, &a, "r1", p, NULL), 0);
        assert_int_equal(fleet_place(f, &b, "r2", q, NULL), 0);
        assert_int_not_equal(p[0].gpu, q[0].gpu); /* NVIDIA: one type per GPU */
        /* 16 of the first type fill its GPU; a 17th does not fit anywhere (the other GPU runs the other type) */
        for (int i = 0; i < 15; i++) {
                char id[8];
                snprintf(id, sizeof id, "a%d", i);
                assert_int_equal(fleet_place(f, &a, id, p, NULL), 0);
        }
        GvError err = {};
        assert_int_equal(fleet_place(f, &a, "a99", p, &err), -ENOSPC);
        gv_error_done(&err);
}

static void test_constraints(void **state) {
        _cleanup_fleet_free_ Fleet *f = fleet_of(FLEET_FRAG, 3, 2, "flex");
        FleetPlacement p[4];
        GvError err = {};
        /* 3 whole GPUs on one host of 2 GPUs: no; anywhere: yes */
        FleetRequest r = req("passthrough count=3 same-host owner=a");
        assert_int_equal(fleet_place(f, &r, "r1", p, &err), -ENOSPC);
        gv_error_done(&err);
        r.same_host = false;
        assert_int_equal(fleet_place(f, &r, "r1", p, NULL), 0);
        assert_int_equal(fleet_unplace(f, "r1", NULL, 0), 0);
        /* same NUMA node: both on slots 0-1 of one host */
        FleetRequest n = req("passthrough count=2 same-numa owner=b");
        assert_int_equal(fleet_place(f, &n, "r2", p, NULL), 0);
        assert_int_equal(fleet_gpu(f, p[0].gpu)->numa, fleet_gpu(f, p[1].gpu)->numa);
        assert_string_equal(fleet_gpu(f, p[0].gpu)->host, fleet_gpu(f, p[1].gpu)->host);
        /* anti-affinity: VFs of one group never share a host */
        FleetRequest g = req("vf count=2 group=ha owner=c");
        assert_int_equal(fleet_place(f, &g, "r3", p, NULL), 0);
        assert_string_not_equal(fleet_gpu(f, p[0].gpu)->host, fleet_gpu(f, p[1].gpu)->host);
        FleetRequest g2 = req("vf count=2 group=ha owner=d");
        assert_int_equal(fleet_place(f, &g2, "r4", p, &err), -ENOSPC); /* one host left without the group */
        gv_error_done(&err);
        /* a down host takes nothing */
        _cleanup_fleet_free_ Fleet *d = fleet_of(FLEET_FRAG, 2, 1, "flex");
        assert_int_equal(fleet_host_set_up(d, 0, false), 0);
        FleetRequest w = req("passthrough count=2 owner=e");
        assert_int_equal(fleet_place(d, &w, "r5", p, &err), -ENOSPC);
        gv_error_done(&err);
        w.count = 1;
        assert_int_equal(fleet_place(d, &w, "r6", p, NULL), 0);
        assert_string_equal(fleet_gpu(d, p[0].gpu)->host, "h1");
}

static void test_mig_pinned(void **state) {
        /* pins are kept when they exist and created where they say; overlapping pins do not fit */
        MigInstance cur[2] = {{.profile = A1G, .start = 6, .size = 1}, {.profile = A1G, .start = 5, .size = 1}};
        unsigned want[MIG_MAX_PROFILES] = {[A1G] = 1, [A3G] = 1};
        MigPlanCreate pins[2] = {{A1G, 5}, {A3G, 0}};
        MigPlan plan;
        assert_int_equal(mig_plan_pinned(a100, ELEMENTSOF(a100), 8, cur, 2, want, pins, 2, true, &plan), 0);
        assert_int_equal(plan.n_keep, 1);
        assert_int_equal(cur[plan.keep[0]].start, 5); /* the pinned one stays, the other goes */
        assert_int_equal(plan.n_create, 1);
        assert_int_equal(plan.create[0].profile, A3G);
        assert_int_equal(plan.create[0].start, 0);
        MigPlanCreate clash[2] = {{A3G, 4}, {A1G, 5}};
        unsigned want2[MIG_MAX_PROFILES] = {[A1G] = 1, [A3G] = 1};
        assert_int_equal(mig_plan_pinned(a100, ELEMENTSOF(a100), 8, NULL, 0, want2, clash, 2, true, &plan), -ENOSPC);
        MigPlanCreate illegal[1] = {{A3G, 2}};
        unsigned want3[MIG_MAX_PROFILES] = {[A3G] = 1};
        assert_int_equal(mig_plan_pinned(a100, ELEMENTSOF(a100), 8, NULL, 0, want3, illegal, 1, true, &plan), -ENOSPC);
}

static void test_base64(void **state) {
        static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
        static const char *const out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
        for (size_t i = 0; i < ELEMENTSOF(in); i++) {
                _cleanup_free_ char *e = base64_encode(in[i], strlen(in[i])), *d = NULL;
                assert_string_equal(e, out[i]);
                assert_int_equal(base64_decode(e, &d, NULL), 0);
                assert_string_equal(d, in[i]);
        }
        static const char *const bad[] = {"Zg=", "Z===", "Zg==Zg==", "Zm9*", "Z=g="};
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char *d = NULL;
                assert_int_equal(base64_decode(bad[i], &d, NULL), -EINVAL);
        }
}

static void test_local_store(void **state) {
        TestHost t;
        test_host_open(&t, "workstation");
        Store *s;
        GvError err = {};
        assert_int_equal(store_open("local", t.root, &s, &err), 0);
        assert_int_equal(store_put(s, "/k/a", "1", 0), 0);
        assert_int_equal(store_put(s, "/k/b", "2", 0), 0);
        StoreKv *kv;
        size_t n;
        int64_t rev;
        assert_int_equal(store_range(s, "/k/", true, &kv, &n, &rev), 0);
        assert_int_equal(n, 2);
        assert_string_equal(kv[0].key, "/k/a");
        int64_t mod_a = kv[0].mod_revision;
        store_kvs_free(kv, n);
        /* compare-and-swap: the current revision wins, a stale one fails and the failure branch reads */
        StoreCmp cmp = {"/k/a", mod_a};
        StoreOp put = {STORE_PUT, "/k/a", "3", 0, false}, get = {STORE_GET, "/k/a", NULL, 0, false};
        StoreTxnResult tr;
        assert_int_equal(store_txn(s, &cmp, 1, &put, 1, &get, 1, &tr), 0);
        assert_true(tr.succeeded);
        store_txn_result_done(&tr);
        assert_int_equal(store_txn(s, &cmp, 1, &put, 1, &get, 1, &tr), 0);
        assert_false(tr.succeeded);
        assert_int_equal(tr.n_kvs, 1);
        assert_string_equal(tr.kvs[0].value, "3");
        store_txn_result_done(&tr);
        /* a key that must not exist */
        StoreCmp absent = {"/k/new", 0};
        StoreOp put2 = {STORE_PUT, "/k/new", "x", 0, false};
        assert_int_equal(store_txn(s, &absent, 1, &put2, 1, NULL, 0, &tr), 0);
        assert_true(tr.succeeded);
        store_txn_result_done(&tr);
        assert_int_equal(store_txn(s, &absent, 1, &put2, 1, NULL, 0, &tr), 0);
        assert_false(tr.succeeded);
        store_txn_result_done(&tr);
        /* as etcd: one key twice in a transaction is refused */
        StoreOp twice[2] = {{STORE_PUT, "/k/d", "1", 0, false}, {STORE_PUT, "/k/d", "2", 0, false}};
        assert_int_equal(store_txn(s, NULL, 0, twice, 2, NULL, 0, &tr), -EINVAL);
        assert_int_equal(store_range(s, "/k/d", false, &kv, &n, NULL), 0);
        assert_int_equal(n, 0);
        store_kvs_free(kv, n);
        /* a key on a lease goes with it */
        int64_t lease;
        int ttl;
        assert_int_equal(store_lease_grant(s, 1, &lease), 0);
        assert_int_equal(store_put(s, "/alive", "y", lease), 0);
        assert_int_equal(store_lease_keepalive(s, lease, &ttl), 0);
        assert_int_equal(ttl, 1);
        usleep(1200 * 1000);
        assert_int_equal(store_range(s, "/alive", false, &kv, &n, NULL), 0);
        assert_int_equal(n, 0);
        store_kvs_free(kv, n);
        assert_int_equal(store_lease_keepalive(s, lease, &ttl), 0);
        assert_int_equal(ttl, 0);
        assert_int_equal(store_put(s, "/x", "z", lease), -ENOENT); /* the lease is gone */
        /* a watch sees a change after a revision */
        bool changed;
        assert_int_equal(store_range(s, "/k/", true, &kv, &n, &rev), 0);
        store_kvs_free(kv, n);
        assert_int_equal(store_watch(s, "/k/", rev, 100, &changed, &rev), 0);
        assert_false(changed);
        assert_int_equal(store_put(s, "/k/c", "4", 0), 0);
        assert_int_equal(store_watch(s, "/k/", rev, 100, &changed, &rev), 0);
        assert_true(changed);
        /* bad URLs */
        Store *x;
        assert_int_equal(store_open("etcd://nohostport", t.root, &x, &err), -EINVAL);
        assert_int_equal(err.error, EINVAL);
        assert_string_equal(err.message, "'nohostport' is not HOST:PORT (etcd://HOST:PORT[,HOST:PORT...], at most 16)");
        gv_error_done(&err);
        assert_int_equal(store_open("zookeeper://h:1", t.root, &x, &err), -EINVAL);
        assert_string_equal(err.message, "'zookeeper://h:1' is not a store: etcd://HOST:PORT[,HOST:PORT...] or local");
        gv_error_done(&err);
        store_free(s);
        test_host_close(&t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_request_parse),
                cmocka_unit_test(test_record_roundtrip),
                cmocka_unit_test(test_mig_placement),
                cmocka_unit_test(test_frag_prefers_fewest_lost),
                cmocka_unit_test(test_frag_follows_demand),
                cmocka_unit_test(test_hold),
                cmocka_unit_test(test_vgpu_one_type),
                cmocka_unit_test(test_constraints),
                cmocka_unit_test(test_mig_pinned),
                cmocka_unit_test(test_base64),
                cmocka_unit_test(test_local_store),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
