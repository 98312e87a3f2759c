/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The strict readers of untrusted files: the YAML layer (basic/yamldoc.h) under host.yaml and mig-parted
 * files, and the JSON layer (basic/jsonfile.h) under every state and definition file gpuvirt reads back.
 * Each reproduction of issue 11 is here: on the readers before the layers, the duplicate keys crashed or
 * leaked (ASan), and the second document, the tags, the aliases and the oversized files were accepted.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "basic/fileio.h"
#include "basic/yamldoc.h"
#include "core/hostspec.h"
#include "core/migparted.h"
#include "helpers.h"

static char *tmp;

static int setup(void **state) {
        tmp = test_tmpdir();
        return 0;
}

static int teardown(void **state) {
        test_tmpdir_remove(tmp);
        return 0;
}

static char *write_tmp(const char *name, const char *text, size_t len) {
        char *p = strdup_printf("%s/%s", tmp, name);
        assert_non_null(p);
        assert_int_equal(write_file(p, text, len, O_CREAT | O_TRUNC, 0644), 0);
        return p;
}

static void expect_error(const char *err, const char *where, const char *what) {
        assert_non_null(err);
        if (!startswith(err, where) || !strstr(err, what))
                fprintf(stderr, "got: %s\nwant: %s ... %s\n", err, where, what);
        assert_non_null(startswith(err, where));
        assert_non_null(strstr(err, what));
}

/* A mig-parted file is refused with the error at "<path>:POS" containing what. */
static void migparted_rejects_n(const char *text, size_t len, const char *pos, const char *what) {
        _cleanup_free_ char *p = write_tmp("m.yaml", text, len);
        _cleanup_free_ char *where = strdup_printf("%s:%s", p, pos);
        MigParted *m = NULL;
        _cleanup_free_ char *err = NULL;
        assert_int_equal(migparted_parse(p, &m, &err), -EINVAL);
        assert_null(m);
        expect_error(err, where, what);
}
static void migparted_rejects(const char *text, const char *pos, const char *what) {
        migparted_rejects_n(text, strlen(text), pos, what);
}

static void host_rejects_n(const char *text, size_t len, const char *pos, const char *what) {
        HostSpec *s = NULL;
        _cleanup_free_ char *err = NULL;
        _cleanup_free_ char *where = strdup_printf("host.yaml:%s", pos);
        assert_int_equal(host_spec_parse("host.yaml", text, len, &s, &err), -EINVAL);
        assert_null(s);
        expect_error(err, where, what);
}
static void host_rejects(const char *text, const char *pos, const char *what) {
        host_rejects_n(text, strlen(text), pos, what);
}

#define MIG_HEAD "version: v1\nmig-configs:\n  a:\n"

/* Issue 11: `devices` twice was a heap-buffer-overflow in parse_entry, `device-filter` twice one in
 * parse_u32, `mig-devices` twice a NULL strcasecmp. Each is now the duplicate key, where it is. */
static void test_migparted_duplicate_keys(void **state) {
        migparted_rejects(MIG_HEAD "    - devices: [0]\n      devices: [0, 1, 2, 3]\n      mig-enabled: false\n", "5:7:",
                          "duplicate key 'devices' (first at line 4, column 7)");
        migparted_rejects(MIG_HEAD "    - device-filter: \"0x20B010DE\"\n      device-filter: [\"0x20B010DE\", \"0x20B210DE\"]\n"
                                   "      devices: all\n      mig-enabled: false\n",
                          "5:7:", "duplicate key 'device-filter'");
        migparted_rejects(MIG_HEAD "    - devices: all\n      mig-enabled: true\n      mig-devices: {\"1g.5gb\": 1}\n"
                                   "      mig-devices: {\"1g.5gb\": 1, \"2g.10gb\": 1}\n",
                          "7:7:", "duplicate key 'mig-devices'");
        migparted_rejects(MIG_HEAD "    - devices: all\n      mig-enabled: true\n      mig-enabled: false\n", "6:7:",
                          "duplicate key 'mig-enabled'");
        /* a label given twice, and a profile twice (the flow form) */
        migparted_rejects(MIG_HEAD "    - {devices: all, mig-enabled: false}\n  a:\n    - {devices: all, mig-enabled: false}\n",
                          "5:3:", "duplicate key 'a' (first at line 3, column 3)");
        migparted_rejects(MIG_HEAD "    - {devices: all, mig-enabled: true, mig-devices: {\"1g.5gb\": 1, \"1g.5gb\": 2}}\n",
                          "4:68:", "duplicate key '1g.5gb' (first at line 4, column 55)");
        migparted_rejects("version: v1\nversion: v1\nmig-configs: {}\n", "2:1:", "duplicate key 'version'");
}

/* Issue 11: in host.yaml, duplicate `type`, `file`, `label` leaked and the last won; duplicate MIG profile
 * keys were summed. */
static void test_hostspec_duplicate_keys(void **state) {
        host_rejects("version: 1\ngpus:\n  - select: all\n    mode: vgpu\n    vgpu: {type: a, type: b, count: 1}\n",
                     "5:21:", "duplicate key 'type' (first at line 5, column 12)");
        host_rejects("version: 1\ngpus:\n  - select: all\n    mode: mig\n    mig: {file: a.yaml, file: b.yaml, label: x}\n",
                     "5:25:", "duplicate key 'file'");
        host_rejects("version: 1\ngpus:\n  - select: all\n    mode: mig\n    mig: {file: a.yaml, label: x, label: y}\n",
                     "5:35:", "duplicate key 'label'");
        host_rejects("version: 1\ngpus:\n  - select: all\n    mode: mig\n    mig: {\"1g.5gb\": 4, \"1g.5gb\": 3}\n", "5:24:",
                     "duplicate key '1g.5gb'");
        host_rejects("version: 1\ngpus:\n  - select: all\n    mode: host\n    mode: passthrough\n", "5:5:",
                     "duplicate key 'mode'");
        host_rejects("version: 1\ngpus: []\ngpus:\n  - {select: all, mode: passthrough}\n", "3:1:", "duplicate key 'gpus'");
}

static void test_second_document(void **state) {
        host_rejects("version: 1\ngpus: []\n---\nversion: 1\ngpus:\n  - {select: all, mode: passthrough}\n", "3:1:",
                     "a second YAML document");
        host_rejects("---\nversion: 1\ngpus: []\n...\n---\n", "5:1:", "a second YAML document");
        migparted_rejects(MIG_HEAD "    - {devices: all, mig-enabled: false}\n---\n" MIG_HEAD
                                   "    - {devices: all, mig-enabled: true}\n",
                          "5:1:", "a second YAML document");
        /* one explicit document is fine */
        HostSpec *s = NULL;
        _cleanup_free_ char *err = NULL;
        const char *one = "---\nversion: 1\ngpus: []\n...\n";
        assert_int_equal(host_spec_parse("host.yaml", one, strlen(one), &s, &err), 0);
        host_spec_free(s);
}

static void test_tags(void **state) {
        host_rejects("version: 1\ngpus:\n  - select: all\n    mode: !!str host\n", "4:11:", "tags (tag:yaml.org,2002:str)");
        host_rejects("version: 1\ngpus: !!seq\n  - select: all\n    mode: host\n", "2:7:", "tags");
        host_rejects("version: !local 1\ngpus: []\n", "1:10:", "tags (!local)");
        migparted_rejects(MIG_HEAD "    - !!map {devices: all, mig-enabled: false}\n", "4:7:", "tags");
        host_rejects("%TAG !e! tag:example.com,2000:\n---\nversion: !e!x 1\ngpus: []\n", "3:10:", "tags (tag:example.com,2000:x)");
}

static void test_aliases(void **state) {
        host_rejects("version: 1\ngpus:\n  - &e {select: all, mode: host}\n  - *e\n", "3:5:", "anchors (&e) are not supported");
        host_rejects("version: 1\ngpus:\n  - {select: all, mode: *m}\n", "3:25:", "aliases (*m) are not supported");
        migparted_rejects(MIG_HEAD "    - {devices: all, mig-enabled: false}\n  b: *x\n", "5:6:", "aliases (*x)");
}

/* Issue 11: 20,000 labels, each an alias of the first, took `plan` 8.7 s (quadratic, and once per GPU).
 * Generated here: refused at the first anchor, before any label is looked at. */
static void test_alias_labels(void **state) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        assert_non_null(f);
        fprintf(f, "version: v1\nmig-configs:\n  l0: &all\n    - devices: all\n      mig-enabled: true\n"
                   "      mig-devices: {\"1g.5gb\": 7}\n");
        for (int i = 1; i < 20000; i++)
                fprintf(f, "  l%d: *all\n", i);
        assert_int_equal(fclose(f), 0);
        migparted_rejects_n(buf, len, "3:7:", "anchors (&all) are not supported");
        /* the same through host.yaml's mig: {file:, label:} (what `plan` and the boot unit read) */
        _cleanup_free_ char *mp = write_tmp("labels.yaml", buf, len);
        _cleanup_free_ char *host = strdup_printf("version: 1\ngpus:\n  - select: all\n    mode: mig\n"
                                                  "    mig: {file: \"%s\", label: l19999}\n", mp);
        _cleanup_free_ char *hp = write_tmp("host.yaml", host, strlen(host));
        HostSpec *s = NULL;
        _cleanup_free_ char *err = NULL;
        assert_int_equal(host_spec_load(hp, "host.yaml", &s, &err), -EINVAL);
        assert_null(s);
        _cleanup_free_ char *where = strdup_printf("host.yaml:3:5: mig file: %s:3:7: anchors", mp);
        expect_error(err, where, "not supported");
        free(buf);
}

/* Written out instead of aliased, as many labels as fit the size bound are read, each once. */
static void test_many_labels(void **state) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        assert_non_null(f);
        fprintf(f, "version: v1\nmig-configs:\n");
        int n = 0;
        for (; ftell(f) < MIGPARTED_SIZE_MAX - 200; n++)
                fprintf(f, "  l%d:\n    - {devices: all, mig-enabled: true, mig-devices: {\"1g.5gb\": 7}}\n", n);
        assert_int_equal(fclose(f), 0);
        assert_true(n > 10000);
        _cleanup_free_ char *p = write_tmp("many.yaml", buf, len);
        MigParted *m = NULL;
        _cleanup_free_ char *err = NULL;
        assert_int_equal(migparted_parse(p, &m, &err), 0);
        assert_int_equal(m->n_configs, (size_t)n);
        _cleanup_free_ char *last = strdup_printf("l%d", n - 1);
        const MigPartedConfig *c = migparted_find(m, last);
        assert_non_null(c);
        assert_int_equal(c->n_entries, 1);
        assert_int_equal(c->entries[0].mig_devices[0].count, 7);
        migparted_free(m);

        /* one label repeated at the end of that file is found (by sorting, not by comparing every pair) */
        size_t l2 = len + 64;
        _cleanup_free_ char *dup = malloc(l2);
        assert_non_null(dup);
        int k = snprintf(dup, l2, "%s  l0: []\n", buf);
        _cleanup_free_ char *where = strdup_printf("%d:3:", n * 2 + 3);
        migparted_rejects_n(dup, (size_t)k, where, "duplicate key 'l0' (first at line 3, column 3)");
        free(buf);
}

static void test_size_bounds(void **state) {
        size_t big = MIGPARTED_SIZE_MAX + 1;
        _cleanup_free_ char *text = malloc(big);
        assert_non_null(text);
        memset(text, '#', big);
        text[big - 1] = '\n';
        _cleanup_free_ char *p = write_tmp("big.yaml", text, big);
        MigParted *m = NULL;
        _cleanup_free_ char *err = NULL, *err2 = NULL;
        assert_int_equal(migparted_parse(p, &m, &err), -EFBIG);
        expect_error(err, p, "larger than 1048576 bytes");
        /* host.yaml has the same bound */
        HostSpec *s = NULL;
        assert_int_equal(host_spec_load(p, "host.yaml", &s, &err2), -EFBIG);
        expect_error(err2, "host.yaml: ", "larger than 1048576 bytes");
        /* exactly at the bound is read (all of it a comment: an empty document) */
        _cleanup_free_ char *p2 = write_tmp("max.yaml", text, MIGPARTED_SIZE_MAX);
        _cleanup_free_ char *err3 = NULL;
        assert_int_equal(migparted_parse(p2, &m, &err3), -EINVAL);
        expect_error(err3, p2, "empty file");
}

static void test_depth(void **state) {
        char text[512];
        size_t n = 0;
        n += (size_t)snprintf(text, sizeof text, "version: 1\ngpus: ");
        for (int i = 0; i < YAML_DEPTH_MAX; i++)
                text[n++] = '[';
        for (int i = 0; i < YAML_DEPTH_MAX; i++)
                text[n++] = ']';
        text[n++] = '\n';
        /* the root mapping and gpus' sequence are two levels: the 64th '[' is the 65th level */
        char pos[32];
        snprintf(pos, sizeof pos, "2:%d:", 7 + YAML_DEPTH_MAX - 1);
        host_rejects_n(text, n, pos, "nested deeper than 64 levels");
        /* at the bound, the tree is built and host.yaml's own rules speak */
        n = (size_t)snprintf(text, sizeof text, "version: 1\ngpus: ");
        for (int i = 0; i < YAML_DEPTH_MAX - 2; i++)
                text[n++] = '[';
        for (int i = 0; i < YAML_DEPTH_MAX - 2; i++)
                text[n++] = ']';
        text[n++] = '\n';
        host_rejects_n(text, n, "2:8:", "each entry of 'gpus' must be a mapping");
}

static void test_encoding(void **state) {
        static const char nul[] = "version: 1\ngpus:\n  - select: all\n    mode: ho\0st\n";
        host_rejects_n(nul, sizeof nul - 1, "4:13:", "a NUL byte");
        host_rejects("version: 1\ngpus:\n  - select: all\n    mode: \"ho\\0st\"\n", "4:11:", "a NUL character");
        host_rejects("version: 1\ngpus:\n  - select: all\n    mode: h\xffst\n", "4:12:", "invalid leading UTF-8 octet");
        host_rejects("version: 1\ngpus:\n  - select: \xc3\n", "3:14:", "invalid trailing UTF-8 octet");
        /* UTF-16 is not read, only UTF-8: its NUL bytes, or its byte order mark, are refused */
        static const char utf16[] = "\xff\xfev\0e\0r\0";
        host_rejects_n(utf16, sizeof utf16 - 1, "1:4:", "a NUL byte");
        host_rejects("\xff\xfe\x41\x42", "1:1:", "invalid leading UTF-8 octet");
        /* valid UTF-8 passes through to the format's own rules */
        host_rejects("version: 1\ngpus:\n  - select: all\n    mode: h\xc3\xb4st\n", "4:11:", "unknown mode 'h\xc3\xb4st'");
}

static void test_keys(void **state) {
        host_rejects("version: 1\n? [a, b]\n: 1\n", "2:3:", "a mapping key must be a plain string");
        host_rejects("version: 1\n{x: 1}: 2\n", "2:1:", "a mapping key must be a plain string");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_migparted_duplicate_keys),
                cmocka_unit_test(test_hostspec_duplicate_keys),
                cmocka_unit_test(test_second_document),
                cmocka_unit_test(test_tags),
                cmocka_unit_test(test_aliases),
                cmocka_unit_test(test_alias_labels),
                cmocka_unit_test(test_many_labels),
                cmocka_unit_test(test_size_bounds),
                cmocka_unit_test(test_depth),
                cmocka_unit_test(test_encoding),
                cmocka_unit_test(test_keys),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
