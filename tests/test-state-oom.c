/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * core/state under failed allocations: every allocation the host state's code (and the layers below it,
 * linked statically here) makes fails in turn, the Nth one at the Nth run. Each call either fails with
 * -ENOMEM or gives a complete answer: never one with a NULL where a name should be (an export whose MIG
 * profile is NULL, handed to the planner's comparisons), never a wrong one (a step described as "no
 * instances" because its layout could not be built).
 *
 * The allocator is wrapped at link time (-Wl,--wrap, tests/meson.build): only calls from objects linked into
 * this program fail, not those inside json-c or the fake NVML library (loaded with dlopen).
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "basic/fileio.h"
#include "core/state/hostspec.h"
#include "core/state/hoststate.h"
#include "helpers.h"

static long fail_at = -1; /* the allocation that fails (0: the first after arming); -1: none */
static long n_allocs;

static bool fail_now(void) {
        return fail_at >= 0 && n_allocs++ == fail_at;
}

static void arm(long n) {
        n_allocs = 0;
        fail_at = n;
}

static void disarm(void) {
        fail_at = -1;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
int __real_vasprintf(char **ret, const char *fmt, va_list ap);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
int __wrap_vasprintf(char **ret, const char *fmt, va_list ap);

void *__wrap_malloc(size_t n) {
        return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size) {
        return fail_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n) {
        return fail_now() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s) {
        return fail_now() ? NULL : __real_strdup(s);
}

int __wrap_vasprintf(char **ret, const char *fmt, va_list ap) {
        return fail_now() ? -1 : __real_vasprintf(ret, fmt, ap);
}

/* Runs of a call until one passes with no allocation failing (the count of allocations it makes). */
#define MAX_RUNS 100000

static HostSpec *spec(const char *text) {
        HostSpec *s = NULL;
        _cleanup_(gv_error_done) GvError err = {};
        if (host_spec_parse("host.yaml", text, strlen(text), &s, &err) < 0)
                fprintf(stderr, "%s\n", strna(err.message));
        assert_non_null(s);
        return s;
}

/* A MIG GPU with instances: host_export() names their profiles, each one allocated. */
static void test_export(void **state) {
        TestHost t;
        test_host_open(&t, "dgx-station");
        HostSpec *s = spec("version: 1\ngpus:\n  - select: \"10de:20b2\"\n    mode: mig\n"
                           "    mig: {\"1g.10gb\": 2, \"3g.40gb\": 1}\n");
        Plan *p = NULL;
        _cleanup_(gv_error_done) GvError err = {};
        assert_int_equal(host_plan(t.root, s, &p, &err), 0);
        size_t done = 0;
        assert_int_equal(host_apply(t.root, p, &done, &err), 0);
        plan_free(p);
        host_spec_free(s);

        /* the reference: no allocation failing */
        HostSpec *ref = NULL;
        arm(LONG_MAX);
        assert_int_equal(host_export(t.root, &ref, &err), 0);
        long per_run = n_allocs;
        disarm();
        if (getenv("OOM_DEBUG"))
                fprintf(stderr, "host_export: %ld allocations\n", per_run);
        size_t want = 0;
        for (size_t i = 0; i < ref->n_entries; i++)
                want += ref->entries[i].n_mig;
        host_spec_free(ref);
        assert_true(want >= 2);

        size_t failed = 0;
        for (long n = 0; n < MAX_RUNS; n++) {
                HostSpec *e = NULL;
                GvError eerr = {};
                arm(n);
                int r = host_export(t.root, &e, &eerr);
                bool more = n_allocs > n; /* the nth allocation was reached (and failed) */
                disarm();
                assert_int_equal(eerr.error, r < 0 ? -r : 0);
                gv_error_done(&eerr);
                if (r < 0) {
                        assert_int_equal(r, -ENOMEM);
                        assert_true(more);
                        failed++;
                        continue;
                }
                /* an answer: complete, whatever it left out for want of memory below this layer */
                size_t mig = 0;
                for (size_t i = 0; i < e->n_entries; i++)
                        for (size_t k = 0; k < e->entries[i].n_mig; k++) {
                                assert_non_null(e->entries[i].mig[k].profile);
                                mig++;
                        }
                host_spec_free(e);
                if (!more) {
                        /* no allocation failed: the whole export */
                        assert_int_equal(mig, want);
                        break;
                }
        }
        assert_true(failed > 0);
        test_host_close(&t);
}

/* step_describe() of a MIG step: the text, or NULL; never a layout it could not build described as none. */
static void test_describe(void **state) {
        char *profiles[] = {(char *)"1g.5gb", (char *)"3g.20gb", NULL};
        unsigned counts[] = {2, 1};
        StepMigAt at[] = {{"3g.20gb", 4}};
        Step s = {.kind = STEP_MIG_APPLY, .device = "0000:07:00.0", .mig_profiles = profiles, .mig_counts = counts,
                  .n_mig = 2, .mig_at = at, .n_mig_at = 1};
        _cleanup_free_ char *want = step_describe(&s);
        assert_non_null(want);
        assert_string_equal(want, "MIG on 0000:07:00.0: 2 x 1g.5gb, 1 x 3g.20gb (3g.20gb at 4)");
        size_t failed = 0;
        for (long n = 0; n < MAX_RUNS; n++) {
                arm(n);
                char *d = step_describe(&s);
                bool more = n_allocs > n;
                disarm();
                if (d) {
                        assert_string_equal(d, want);
                        free(d);
                } else
                        failed++;
                if (!more)
                        break;
        }
        assert_true(failed > 0);
        /* a vGPU step naming its vGPUs */
        char *units[] = {(char *)"0000:08:00.4", NULL};
        Step v = {.kind = STEP_VGPU_CREATE, .device = "0000:08:00.0", .vgpu_type = (char *)"557", .count = 1,
                  .total = 1, .units = units};
        _cleanup_free_ char *vwant = step_describe(&v);
        assert_non_null(vwant);
        for (long n = 0; n < MAX_RUNS; n++) {
                arm(n);
                char *d = step_describe(&v);
                bool more = n_allocs > n;
                disarm();
                if (d)
                        assert_string_equal(d, vwant);
                free(d);
                if (!more)
                        break;
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_describe),
                cmocka_unit_test(test_export),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
