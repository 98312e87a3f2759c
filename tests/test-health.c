/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The health model of gpuvirtd (core/health): latching, recovery after a clean period, re-qualification,
 * the Xid table, and the state file reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "basic/fileio.h"
#include "core/health/health.h"
#include "helpers.h"

#define S(x) ((uint64_t)(x) * 1000000u)

static HealthSample ok_sample(void) {
        return (HealthSample){.present = true, .driver_bound = true, .nvml_expected = true, .have_aer = true,
                              .have_ecc = true};
}

/* Feed a sample at second t; returns whether the level changed, frees the change's reason. */
static int feed(HealthUnit *u, const HealthSample *s, unsigned t, uint64_t clean) {
        HealthChange ch = {};
        int r = health_update(u, s, S(t), S(1000 + t), clean, &ch);
        assert_true(r >= 0);
        if (r > 0) {
                assert_non_null(ch.reason);
                assert_int_equal(ch.to, u->level);
        }
        free(ch.reason);
        return r;
}

static void test_xid_latches_and_recovers_after_clean_period(void **state) {
        HealthUnit u = {};
        HealthSample s = ok_sample();
        assert_int_equal(feed(&u, &s, 1, S(300)), 0);
        assert_int_equal(u.level, HEALTH_HEALTHY);
        HealthSample x = ok_sample();
        x.xids[x.n_xids++] = 48;
        assert_int_equal(feed(&u, &x, 2, S(300)), 1);
        assert_int_equal(u.level, HEALTH_UNHEALTHY);
        assert_string_equal(u.reason, "Xid 48: double-bit ECC error");
        /* clean samples within the clean period do not recover it (the device plugin's complaint was the
         * opposite: never recovering; recovering at once would be as wrong) */
        assert_int_equal(feed(&u, &s, 100, S(300)), 0);
        assert_int_equal(feed(&u, &s, 301, S(300)), 0);
        assert_int_equal(u.level, HEALTH_UNHEALTHY);
        assert_int_equal(feed(&u, &s, 302, S(300)), 1);
        assert_int_equal(u.level, HEALTH_HEALTHY);
        assert_null(u.reason);
        assert_int_equal(u.since_usec, S(1302));
        health_unit_done(&u);
}

static void test_application_xids_are_not_health(void **state) {
        static const unsigned app[] = {13, 31, 43, 45, 68, 109};
        for (size_t i = 0; i < ELEMENTSOF(app); i++) {
                HealthUnit u = {};
                HealthSample x = ok_sample();
                x.xids[x.n_xids++] = app[i];
                assert_true(xid_is_application(app[i]));
                assert_int_equal(feed(&u, &x, 1, S(300)), 0);
                assert_int_equal(u.level, HEALTH_HEALTHY);
                health_unit_done(&u);
        }
        assert_false(xid_is_application(48));
        assert_int_equal(xid_level(79), HEALTH_GONE);
        assert_int_equal(xid_level(63), HEALTH_DEGRADED);
        assert_int_equal(xid_level(95), HEALTH_UNHEALTHY);
        assert_int_equal(xid_level(4242), HEALTH_DEGRADED); /* unknown device Xid: worth a look */
        assert_null(xid_meaning(4242));
}

static void test_a_fault_that_persists_never_recovers(void **state) {
        HealthUnit u = {};
        HealthSample s = ok_sample();
        s.link_downgraded = true;
        s.link_now = "8.0 GT/s x8";
        s.link_max = "16.0 GT/s x16";
        assert_int_equal(feed(&u, &s, 1, S(5)), 1);
        assert_int_equal(u.level, HEALTH_DEGRADED);
        assert_string_equal(u.reason, "PCIe link downgraded: 8.0 GT/s x8, capable of 16.0 GT/s x16");
        for (unsigned t = 2; t < 60; t++)
                assert_int_equal(feed(&u, &s, t, S(5)), 0);
        assert_int_equal(u.level, HEALTH_DEGRADED);
        HealthSample ok = ok_sample();
        assert_int_equal(feed(&u, &ok, 63, S(5)), 0); /* 59 was the last fault */
        assert_int_equal(feed(&u, &ok, 64, S(5)), 1);
        health_unit_done(&u);
}

/* A vGPU whose guest runs unlicensed is degraded for as long as it does; a license held again and the clean
 * period make it healthy. */
static void test_unlicensed_vgpu(void **state) {
        HealthUnit u = {};
        HealthSample s = ok_sample();
        s.have_license = true;
        s.licensed = true;
        s.license_state = "licensed";
        assert_int_equal(feed(&u, &s, 1, S(5)), 0);
        assert_int_equal(u.level, HEALTH_HEALTHY);
        s.licensed = false;
        s.license_state = "unlicensed (restricted)";
        assert_int_equal(feed(&u, &s, 2, S(5)), 1);
        assert_int_equal(u.level, HEALTH_DEGRADED);
        assert_string_equal(u.reason,
                            "vGPU not licensed: unlicensed (restricted) (the guest driver runs with reduced capability)");
        assert_int_equal(feed(&u, &s, 30, S(5)), 0);
        assert_int_equal(u.level, HEALTH_DEGRADED);
        s.licensed = true;
        assert_int_equal(feed(&u, &s, 33, S(5)), 0); /* clean since 30 only */
        assert_int_equal(feed(&u, &s, 35, S(5)), 1);
        assert_int_equal(u.level, HEALTH_HEALTHY);
        health_unit_done(&u);
}

static void test_worse_wins_and_is_kept(void **state) {
        HealthUnit u = {};
        HealthSample s = ok_sample();
        s.nvml_error = -EIO;
        s.nvml_error_name = "NVML_ERROR_UNKNOWN";
        assert_int_equal(feed(&u, &s, 1, S(5)), 1);
        assert_int_equal(u.level, HEALTH_DEGRADED);
        HealthSample x = ok_sample();
        x.have_aer = true;
        x.aer_fatal = 1; /* the first sample set the baseline 0 */
        assert_int_equal(feed(&u, &x, 2, S(5)), 1);
        assert_int_equal(u.level, HEALTH_UNHEALTHY);
        assert_string_equal(u.reason, "1 new fatal AER errors (uncorrectable, fatal)");
        /* a lesser fault does not lower it, nor replace the reason */
        s.aer_fatal = 1;
        assert_int_equal(feed(&u, &s, 3, S(5)), 0);
        assert_int_equal(u.level, HEALTH_UNHEALTHY);
        assert_string_equal(u.reason, "1 new fatal AER errors (uncorrectable, fatal)");
        /* the counter staying at 1 is no new fault */
        assert_int_equal(feed(&u, &x, 9, S(5)), 1);
        assert_int_equal(u.level, HEALTH_HEALTHY);
        health_unit_done(&u);
}

static void test_counters_at_start_are_the_baseline(void **state) {
        HealthUnit u = {};
        HealthSample s = ok_sample();
        s.ecc_dbe = 7;
        s.aer_fatal = 3;
        assert_int_equal(feed(&u, &s, 1, S(5)), 0);
        assert_int_equal(u.level, HEALTH_HEALTHY);
        s.ecc_dbe = 9;
        assert_int_equal(feed(&u, &s, 2, S(5)), 1);
        assert_string_equal(u.reason, "2 new double-bit ECC errors (9 in all)");
        health_unit_done(&u);
}

static void test_requalification(void **state) {
        HealthUnit u = {};
        HealthSample x = ok_sample();
        x.xids[x.n_xids++] = 79;
        assert_int_equal(feed(&u, &x, 1, S(5)), 1);
        assert_int_equal(u.level, HEALTH_GONE);
        /* clean, but no driver bound: stays gone, and says why */
        HealthSample s = ok_sample();
        s.driver_bound = false;
        assert_int_equal(feed(&u, &s, 10, S(5)), 0);
        assert_int_equal(u.level, HEALTH_GONE);
        assert_string_equal(u.reason, "clean for 9s, not re-qualified: no driver bound");
        /* NVML not answering is a fault in itself (restarts the clean period) */
        s.driver_bound = true;
        s.nvml_error = -ENXIO;
        s.nvml_error_name = "NVML_ERROR_DRIVER_NOT_LOADED";
        assert_int_equal(feed(&u, &s, 11, S(5)), 0);
        assert_int_equal(u.level, HEALTH_GONE);
        HealthSample ok = ok_sample();
        assert_int_equal(feed(&u, &ok, 15, S(5)), 0);
        assert_int_equal(feed(&u, &ok, 16, S(5)), 1);
        assert_int_equal(u.level, HEALTH_HEALTHY);
        health_unit_done(&u);
}

static void test_gone_while_absent(void **state) {
        HealthUnit u = {};
        HealthSample s = ok_sample();
        assert_int_equal(feed(&u, &s, 1, S(2)), 0);
        HealthSample none = {.present = false};
        assert_int_equal(feed(&u, &none, 2, S(2)), 1);
        assert_int_equal(u.level, HEALTH_GONE);
        assert_string_equal(u.reason, "removed from the bus (surprise removal or hot unplug)");
        for (unsigned t = 3; t < 20; t++)
                assert_int_equal(feed(&u, &none, t, S(2)), 0);
        assert_int_equal(u.level, HEALTH_GONE);
        health_unit_done(&u);
}

static void test_state_file(void **state) {
        TestHost t;
        test_host_open(&t, "dgx-a100");
        json_object *m = NULL;
        GvError err = {};
        assert_int_equal(health_file_read(t.root, &m, &err), 0); /* no daemon: no file */
        assert_int_equal(err.error, 0);
        assert_null(m);
        HealthUnit u = {.level = HEALTH_UNHEALTHY, .reason = strdup("Xid 48: double-bit ECC error"),
                        .since_usec = S(1796130000)};
        json_object *doc = json_object_new_object(), *units = json_object_new_array();
        json_object_array_add(units, health_unit_json("0000:23:00.0", "0000:23:00.0", &u));
        json_object_object_add(doc, "version", json_object_new_int(1));
        json_object_object_add(doc, "units", units);
        assert_int_equal(root_write_file(t.root, json_object_to_json_string(doc), "%s", HEALTH_FILE), 0);
        assert_int_equal(health_file_read(t.root, &m, &err), 0);
        json_object *e = json_object_object_get(m, "0000:23:00.0");
        assert_string_equal(json_object_get_string(json_object_object_get(e, "health")), "unhealthy");
        assert_string_equal(json_object_get_string(json_object_object_get(e, "since")), "2026-12-01T13:00:00Z");
        json_object_put(m);
        /* a damaged file: refused with the file's name */
        assert_int_equal(root_write_file(t.root, "{\"version\":2,\"units\":[]}", "%s", HEALTH_FILE), 0);
        assert_int_equal(health_file_read(t.root, &m, &err), -EINVAL);
        assert_string_equal(err.message, "/run/gpuvirt/health.json: not a version 1 health file");
        assert_string_equal(err.step, "parse");
        gv_error_done(&err);
        assert_int_equal(root_write_file(t.root, "{\"version\":1,\"units\":[{\"unit\":\"x\",\"health\":\"fine\"}]}", "%s",
                                         HEALTH_FILE), 0);
        assert_int_equal(health_file_read(t.root, &m, &err), -EINVAL);
        assert_int_equal(err.error, EINVAL);
        gv_error_done(&err);
        assert_int_equal(root_write_file(t.root, "{\"version\":1,", "%s", HEALTH_FILE), 0);
        assert_int_equal(health_file_read(t.root, &m, &err), -EINVAL);
        assert_non_null(strstr(err.message, "/run/gpuvirt/health.json:1:"));
        gv_error_done(&err);
        json_object_put(doc);
        health_unit_done(&u);
        test_host_close(&t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_xid_latches_and_recovers_after_clean_period),
                cmocka_unit_test(test_application_xids_are_not_health),
                cmocka_unit_test(test_a_fault_that_persists_never_recovers),
                cmocka_unit_test(test_unlicensed_vgpu),
                cmocka_unit_test(test_worse_wins_and_is_kept),
                cmocka_unit_test(test_counters_at_start_are_the_baseline),
                cmocka_unit_test(test_requalification),
                cmocka_unit_test(test_gone_while_absent),
                cmocka_unit_test(test_state_file),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
