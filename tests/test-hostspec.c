/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* host.yaml: parsing, every rejection with FILE:LINE:COL, selection ranks, format round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <cmocka.h>

#include "basic/fileio.h"
#include "core/state/hostspec.h"

static const char example[] = "version: 1\n"
                              "gpus:\n"
                              "  - select: all                 # every GPU not matched by a more specific entry\n"
                              "    mode: host\n"
                              "  - select: \"10de:20b0\"\n"
                              "    mode: mig\n"
                              "    mig: {\"1g.5gb\": 2, \"2g.10gb\": 1, \"3g.20gb\": 1}\n"
                              "  - select: \"0000:17:00.0\"\n"
                              "    mode: passthrough\n"
                              "  - select: \"10de:1eb8\"\n"
                              "    mode: vgpu\n"
                              "    vgpu: {type: nvidia-222, count: 4}\n"
                              "  - select: \"8086:56c0\"\n"
                              "    mode: sriov\n"
                              "    sriov: {vfs: 8, vfs-mode: passthrough}\n";

static HostSpec *parse_ok(const char *text) {
        HostSpec *s = NULL;
        _cleanup_(gv_error_done) GvError err = {};
        int r = host_spec_parse("host.yaml", text, strlen(text), &s, &err);
        if (r < 0)
                fprintf(stderr, "unexpected: %s\n", strna(err.message));
        assert_int_equal(r, 0);
        assert_int_equal(err.error, 0);
        return s;
}

static void test_example(void **state) {
        HostSpec *s = parse_ok(example);
        assert_int_equal(s->n_entries, 5);
        assert_int_equal(s->entries[0].select, SELECT_ALL);
        assert_int_equal(s->entries[0].mode, GPU_MODE_HOST);
        assert_int_equal(s->entries[1].select, SELECT_ID);
        assert_int_equal(s->entries[1].vendor, 0x10de);
        assert_int_equal(s->entries[1].device, 0x20b0);
        assert_int_equal(s->entries[1].n_mig, 3);
        assert_string_equal(s->entries[1].mig[2].profile, "3g.20gb");
        assert_int_equal(s->entries[1].mig[0].count, 2);
        assert_string_equal(s->entries[2].addr, "0000:17:00.0");
        assert_string_equal(s->entries[3].vgpu_type, "nvidia-222");
        assert_int_equal(s->entries[3].vgpu_count, 4);
        assert_int_equal(s->entries[4].vfs, 8);
        assert_true(s->entries[4].vfs_vfio);
        assert_int_equal(s->entries[2].line, 8);
        assert_int_equal(s->entries[2].column, 5);

        /* format -> parse gives the same spec */
        char *text = host_spec_format(s);
        HostSpec *s2 = parse_ok(text);
        assert_int_equal(s2->n_entries, s->n_entries);
        char *text2 = host_spec_format(s2);
        assert_string_equal(text, text2);
        free(text);
        free(text2);
        host_spec_free(s2);
        host_spec_free(s);
}

/* Strings are written back escaped (found by tests/test-fuzz.c: a backslash in a type broke the round trip). */
static void test_format_escapes(void **state) {
        HostSpec *s = parse_ok("version: 1\ngpus:\n  - select: all\n    mode: vgpu\n"
                               "    vgpu: {type: 'a\\b \"q\"', count: 2}\n");
        assert_string_equal(s->entries[0].vgpu_type, "a\\b \"q\"");
        char *t = host_spec_format(s);
        HostSpec *s2 = parse_ok(t);
        assert_string_equal(s2->entries[0].vgpu_type, "a\\b \"q\"");
        free(t);
        host_spec_free(s2);
        host_spec_free(s);
}

static void rejects(const char *text, const char *where, const char *what) {
        HostSpec *s = NULL;
        _cleanup_(gv_error_done) GvError e = {};
        assert_int_equal(host_spec_parse("host.yaml", text, strlen(text), &s, &e), -EINVAL);
        assert_null(s);
        const char *err = e.message;
        assert_non_null(err);
        assert_int_equal(e.error, EINVAL);
        if (!startswith(err, where) || !strstr(err, what))
                fprintf(stderr, "got: %s\nwant: %s ... %s\n", err, where, what);
        assert_non_null(startswith(err, where));
        assert_non_null(strstr(err, what));
}

static void test_rejections(void **state) {
        rejects("version: 1\ngpus:\n  - select: all\n    mode: hots\n", "host.yaml:4:11:", "unknown mode 'hots'");
        rejects("version: 1\ngpus:\n  - select: all\n    mode: host\n    colour: red\n", "host.yaml:5:5:",
                "unknown key 'colour'");
        rejects("version: 2\ngpus: []\n", "host.yaml:1:10:", "unsupported version '2'");
        rejects("gpus: []\n", "host.yaml:1:1:", "missing 'version: 1'");
        rejects("version: 1\nextra: 1\n", "host.yaml:2:1:", "unknown key 'extra'");
        rejects("version: 1\ngpus:\n  - select: \"0000:zz:00.0\"\n    mode: host\n", "host.yaml:3:13:",
                "neither 'all'");
        rejects("version: 1\ngpus:\n  - mode: host\n", "host.yaml:3:5:", "without 'select'");
        rejects("version: 1\ngpus:\n  - select: all\n", "host.yaml:3:5:", "without 'mode'");
        rejects("version: 1\ngpus:\n  - select: all\n    mode: sriov\n", "host.yaml:3:5:", "needs a 'sriov' section");
        rejects("version: 1\ngpus:\n  - select: all\n    mode: host\n    sriov: {vfs: 2}\n", "host.yaml:5:12:",
                "belongs to mode sriov");
        rejects("version: 1\ngpus:\n  - select: all\n    mode: sriov\n    sriov: {vfs: many}\n", "host.yaml:5:18:",
                "must be a whole number");
        rejects("version: 1\ngpus:\n  - select: all\n    mode: sriov\n    sriov: {vfs: 2, vfs-mode: vm}\n",
                "host.yaml:5:31:", "vfs-mode must be");
        rejects("version: 1\ngpus:\n  - select: all\n    mode: vgpu\n    vgpu: {type: nvidia-222}\n", "host.yaml:5:11:",
                "count");
        rejects("version: 1\ngpus:\n  - select: all\n    mode: mig\n    mig: {\"9x.big\": 1}\n", "host.yaml:5:11:",
                "not a MIG profile name");
        rejects("version: 1\ngpus:\n  - select: all\n    mode: mig\n    mig: {file: a.yaml}\n", "host.yaml:5:10:",
                "both 'file' and 'label'");
        rejects("version: 1\ngpus:\n  - select: all\n    mode: host\n  - select: all\n    mode: passthrough\n",
                "host.yaml:5:5:", "same GPUs as the entry at line 3");
        rejects("version: 1\ngpus:\n  - select: all\n    mode: passthrough\n    include: [bogus]\n", "host.yaml:5:15:",
                "not a PCI address");
        rejects("version: 1\ngpus:\n  - select: all\n    mode: host\n    force: maybe\n", "host.yaml:5:12:",
                "true or false");
        /* syntax errors carry the parser's position */
        rejects("version: 1\ngpus:\n  - select: [all\n", "host.yaml:4:1:", "");
        rejects("version: 1\ngpus: {select: all}\n", "host.yaml:2:7:", "must be a list");
}

static void test_match(void **state) {
        HostSpec *s = parse_ok(example);
        PciDevice a100 = {.addr = "0000:07:00.0", .vendor = 0x10de, .device = 0x20b0};
        PciDevice chosen = {.addr = "0000:17:00.0", .vendor = 0x10de, .device = 0x20b0};
        PciDevice other = {.addr = "0000:99:00.0", .vendor = 0x1002, .device = 0x6860};
        const GpuEntry *e;
        GvError err = {};
        assert_int_equal(host_spec_match(s, &a100, &e, &err), 0);
        assert_int_equal(e->mode, GPU_MODE_MIG); /* vendor:device beats all */
        assert_int_equal(host_spec_match(s, &chosen, &e, &err), 0);
        assert_int_equal(e->mode, GPU_MODE_PASSTHROUGH); /* address beats vendor:device */
        assert_int_equal(host_spec_match(s, &other, &e, &err), 0);
        assert_int_equal(e->mode, GPU_MODE_HOST);
        host_spec_free(s);

        /* without 'all', an unmatched GPU is left alone */
        s = parse_ok("version: 1\ngpus:\n  - select: \"10de:20b0\"\n    mode: passthrough\n");
        assert_int_equal(host_spec_match(s, &other, &e, &err), 0);
        assert_null(e);
        host_spec_free(s);

        /* an address and a vendor:device entry for the same GPU: the address wins */
        s = parse_ok("version: 1\ngpus:\n  - select: \"10de:20b0\"\n    mode: passthrough\n"
                     "  - select: \"0000:07:00.0\"\n    mode: host\n");
        assert_int_equal(host_spec_match(s, &a100, &e, &err), 0);
        assert_int_equal(e->mode, GPU_MODE_HOST);
        host_spec_free(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_example),
                cmocka_unit_test(test_format_escapes),
                cmocka_unit_test(test_rejections),
                cmocka_unit_test(test_match),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
