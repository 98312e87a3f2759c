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
#include <unistd.h>
#include <cmocka.h>

#include "basic/fileio.h"
#include "basic/jsonfile.h"
#include "basic/yamldoc.h"
#include "core/state/hostspec.h"
#include "core/state/hoststate.h"
#include "core/vgpu/mdev.h"
#include "core/mig/migparted.h"
#include "core/passthrough/persist.h"
#include "core/host/root.h"
#include "core/sriov/sriov.h"
#include "core/passthrough/vfio.h"
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
        _cleanup_(gv_error_done) GvError err = {};
        assert_int_equal(migparted_parse(p, &m, &err), -EINVAL);
        assert_null(m);
        assert_int_equal(err.error, EINVAL);
        assert_string_equal(err.step, "parse");
        expect_error(err.message, where, what);
}
static void migparted_rejects(const char *text, const char *pos, const char *what) {
        migparted_rejects_n(text, strlen(text), pos, what);
}

static void host_rejects_n(const char *text, size_t len, const char *pos, const char *what) {
        HostSpec *s = NULL;
        _cleanup_(gv_error_done) GvError err = {};
        _cleanup_free_ char *where = strdup_printf("host.yaml:%s", pos);
        assert_int_equal(host_spec_parse("host.yaml", text, len, &s, &err), -EINVAL);
        assert_null(s);
        expect_error(err.message, where, what);
        assert_int_equal(err.error, EINVAL);
        assert_string_equal(err.step, "parse");
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
        _cleanup_(gv_error_done) GvError err = {};
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
        _cleanup_(gv_error_done) GvError err = {};
        assert_int_equal(host_spec_load(hp, "host.yaml", &s, &err), -EINVAL);
        assert_null(s);
        _cleanup_free_ char *where = strdup_printf("host.yaml:3:5: mig file: %s:3:7: anchors", mp);
        expect_error(err.message, where, "not supported");
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
        _cleanup_(gv_error_done) GvError err = {};
        assert_int_equal(migparted_parse(p, &m, &err), 0);
        assert_int_equal(err.error, 0);
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

/* A mig-parted file is parsed once, with host.yaml, however many entries and GPUs use it (hoststate parsed
 * it again for every GPU): two entries naming it share one parse, and planning 8 GPUs never reads it. */
static void test_migparted_parsed_once(void **state) {
        static const char mig[] = "version: v1\nmig-configs:\n  bal:\n    - devices: all\n      mig-enabled: true\n"
                                  "      mig-devices: {\"1g.5gb\": 2, \"2g.10gb\": 1, \"3g.20gb\": 1}\n";
        _cleanup_free_ char *mp = write_tmp("once.yaml", mig, strlen(mig));
        _cleanup_free_ char *host = strdup_printf("version: 1\ngpus:\n  - select: \"10de:20b0\"\n    mode: mig\n"
                                                  "    mig: {file: \"%s\", label: bal}\n"
                                                  "  - select: \"0000:24:00.0\"\n    mode: mig\n"
                                                  "    mig: {file: \"%s\", label: bal}\n", mp, mp);
        _cleanup_free_ char *hp = write_tmp("host-once.yaml", host, strlen(host));
        HostSpec *s = NULL;
        _cleanup_(gv_error_done) GvError err = {};
        assert_int_equal(host_spec_load(hp, "host.yaml", &s, &err), 0);
        assert_int_equal(s->n_mig_files, 1);
        assert_non_null(s->entries[0].mig_config);
        assert_ptr_equal(s->entries[0].mig_config, s->entries[1].mig_config);
        assert_string_equal(s->entries[0].mig_config->label, "bal");
        assert_int_equal(unlink(mp), 0);
        TestHost t;
        test_host_open(&t, "dgx-a100");
        Plan *p = NULL;
        _cleanup_(gv_error_done) GvError perr = {};
        int r = host_plan(t.root, s, &p, &perr);
        if (r < 0)
                fprintf(stderr, "%s\n", strna(perr.message));
        assert_int_equal(r, 0);
        size_t mig_steps = 0;
        for (size_t i = 0; i < p->n_steps; i++)
                mig_steps += p->steps[i].kind == STEP_MIG_APPLY;
        assert_int_equal(mig_steps, 8);
        plan_free(p);
        host_spec_free(s);
        test_host_close(&t);
}

static void test_size_bounds(void **state) {
        size_t big = MIGPARTED_SIZE_MAX + 1;
        _cleanup_free_ char *text = malloc(big);
        assert_non_null(text);
        memset(text, '#', big);
        text[big - 1] = '\n';
        _cleanup_free_ char *p = write_tmp("big.yaml", text, big);
        MigParted *m = NULL;
        _cleanup_(gv_error_done) GvError err = {}, err2 = {}, err3 = {};
        assert_int_equal(migparted_parse(p, &m, &err), -EFBIG);
        assert_string_equal(err.step, "read");
        expect_error(err.message, p, "larger than 1048576 bytes");
        /* host.yaml has the same bound: a file that is not read, said at the step "read" */
        HostSpec *s = NULL;
        assert_int_equal(host_spec_load(p, "host.yaml", &s, &err2), -EFBIG);
        expect_error(err2.message, "host.yaml: ", "larger than 1048576 bytes");
        assert_int_equal(err2.error, EFBIG);
        assert_string_equal(err2.step, "read");
        /* exactly at the bound is read (all of it a comment: an empty document) */
        _cleanup_free_ char *p2 = write_tmp("max.yaml", text, MIGPARTED_SIZE_MAX);
        assert_int_equal(migparted_parse(p2, &m, &err3), -EINVAL);
        expect_error(err3.message, p2, "empty file");
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

/* ---- JSON ---- */

static void json_rejects(const char *text, const char *pos, const char *what) {
        json_object *o = NULL;
        _cleanup_(gv_error_done) GvError err = {};
        _cleanup_free_ char *where = strdup_printf("f.json:%s", pos);
        assert_int_equal(json_parse_strict("f.json", text, strlen(text), &o, &err), -EINVAL);
        assert_null(o);
        /* the reader's message is the GvError's, its errno EINVAL, at the step "parse" */
        expect_error(err.message, where, what);
        assert_int_equal(err.error, EINVAL);
        assert_string_equal(err.step, "parse");
}

static void test_json_strict(void **state) {
        json_rejects("{\"driver\": \"nvidia\", \"driver\": \"../../x\"}\n", "1:22:",
                     "duplicate key 'driver' (first at line 1, column 2)");
        /* the same key spelled with an escape is the same key */
        json_rejects("{\"a\": 1,\n \"\\u0061\": 2}", "2:2:", "duplicate key 'a'");
        /* in a nested object; the same key in two objects is fine */
        json_rejects("{\"a\": {\"b\": 1}, \"c\": [{\"b\": 1, \"d\": 2, \"b\": 3}]}", "1:40:", "duplicate key 'b' (first at line 1, column 24)");
        json_rejects("{\"a\": 1}\n{\"a\": 2}\n", "2:1:", "text after the JSON value (a second document?)");
        json_rejects("{\"a\": 1} x", "1:10:", "text after the JSON value");
        json_rejects("{\"a\": 1 x}", "1:9:", "object value separator");
        json_rejects("{\"a\": 1", "1:8:", "unexpected end of the file");
        json_rejects("", "1:1:", "empty file");
        json_rejects("{'a': 1}", "1:2:", "strings must be in double quotes");
        json_rejects("{\"a\": NaN}", "1:7:", "'NaN' is not a JSON value");
        json_rejects("{\"a\": \"\xff\"}", "1:8:", "invalid utf-8 string");
        static const char nul[] = "{\"a\": 1}\0";
        json_object *o = NULL;
        _cleanup_(gv_error_done) GvError err = {};
        assert_int_equal(json_parse_strict("f.json", nul, sizeof nul - 1, &o, &err), -EINVAL);
        expect_error(err.message, "f.json:1:9:", "a NUL byte");
        char deep[64] = {};
        for (int i = 0; i <= JSON_DEPTH_MAX; i++)
                deep[i] = '[';
        json_rejects(deep, "1:17:", "nesting too deep");
        /* good input, and its values */
        const char *good = "{\"a\": [1, {\"b\": true}], \"b\": null, \"c\": -12, \"d\": \"\\u00e9\"}\n";
        _cleanup_(gv_error_done) GvError err2 = {};
        assert_int_equal(json_parse_strict("f.json", good, strlen(good), &o, &err2), 0);
        assert_int_equal(err2.error, 0);
        assert_string_equal(json_object_get_string(json_object_object_get(o, "d")), "\xc3\xa9");
        json_object_put(o);
}

typedef struct Rec {
        const char *name;
        unsigned count;
        bool flag;
        char **list;
} Rec;

static bool is_lower(const char *s) {
        for (; *s; s++)
                if (*s < 'a' || *s > 'z')
                        return false;
        return true;
}

static const JsonField rec_fields[] = {
        {"name", JSON_KIND_STRING, JSON_MANDATORY, offsetof(Rec, name), .valid = is_lower, .what = "lower case"},
        {"count", JSON_KIND_UINT, 0, offsetof(Rec, count), .min = 1, .max = 65535},
        {"flag", JSON_KIND_BOOL, 0, offsetof(Rec, flag)},
        {"list", JSON_KIND_STRV, JSON_NULLABLE, offsetof(Rec, list), .valid = is_lower, .what = "lower case words"},
        {},
};

static void dispatch_rejects(const char *text, const char *what) {
        json_object *o = NULL;
        _cleanup_(gv_error_done) GvError err = {}, perr = {};
        assert_int_equal(json_parse_strict("r", text, strlen(text), &o, &perr), 0);
        Rec r = {};
        assert_int_equal(json_dispatch("r", o, rec_fields, 0, &r, &err), -EBADMSG);
        assert_null(r.list);
        expect_error(err.message, "r: ", what);
        assert_int_equal(err.error, EBADMSG);
        json_object_put(o);
}

static void test_json_dispatch(void **state) {
        json_object *o = NULL;
        _cleanup_(gv_error_done) GvError err = {};
        const char *t = "{\"name\": \"abc\", \"count\": 65535, \"flag\": true, \"list\": [\"x\", \"y\"]}";
        assert_int_equal(json_parse_strict("r", t, strlen(t), &o, &err), 0);
        Rec r = {};
        assert_int_equal(json_dispatch("r", o, rec_fields, 0, &r, &err), 0);
        assert_string_equal(r.name, "abc");
        assert_int_equal(r.count, 65535);
        assert_true(r.flag);
        assert_string_equal(r.list[1], "y");
        assert_null(r.list[2]);
        strv_free(r.list);
        json_object_put(o);
        /* 4294967297 is out of range, not read as 2147483647 or 1 */
        dispatch_rejects("{\"name\": \"a\", \"count\": 4294967297}", "'count' is 4294967297, out of the range 1..65535");
        dispatch_rejects("{\"name\": \"a\", \"count\": 0}", "out of the range 1..65535");
        dispatch_rejects("{\"name\": \"a\", \"count\": -1}", "out of the range");
        dispatch_rejects("{\"name\": \"a\", \"count\": 99999999999999999999999}", "out of the range");
        dispatch_rejects("{\"name\": \"a\", \"count\": 2.5}", "'count' is 2.5, expected a whole number");
        dispatch_rejects("{\"name\": \"a\", \"count\": \"3\"}", "expected a whole number");
        dispatch_rejects("{\"name\": \"../x\"}", "'name' is \"../x\", expected lower case");
        dispatch_rejects("{\"name\": \"a\\u0000b\"}", "expected lower case");
        dispatch_rejects("{\"count\": 1}", "'name' is missing");
        dispatch_rejects("{\"name\": null}", "'name' is null, expected lower case");
        dispatch_rejects("{\"name\": \"a\", \"flag\": 1}", "'flag' is 1, expected true or false");
        dispatch_rejects("{\"name\": \"a\", \"other\": 1}", "unknown key 'other'");
        dispatch_rejects("{\"list\": [\"a\"], \"name\": \"a\", \"extra\": 1}", "unknown key 'extra'"); /* list freed */
        dispatch_rejects("{\"name\": \"a\", \"list\": 5}", "'list' is 5, expected lower case words");
        dispatch_rejects("{\"name\": \"a\", \"list\": [\"a\", 5]}", "item 1 of 'list' is 5");
        dispatch_rejects("{\"name\": \"a\", \"list\": [null]}", "item 0 of 'list' is null");
}

/* gpuvirt's own state files are input too (issue 11). */
static char *write_root(Root *root, const char *text, const char *rel) _warn_unused_;
static char *write_root(Root *root, const char *text, const char *rel) {
        char *p = root_path(root, "%s", rel);
        assert_non_null(p);
        char *dir = strdup(p);
        *strrchr(dir, '/') = '\0';
        assert_int_equal(mkdir_p(dir, 0755), 0);
        free(dir);
        assert_int_equal(write_text(p, text), 0);
        return p;
}

static void test_state_passthrough_record(void **state) {
        TestHost t;
        test_host_open(&t, "dgx-a100");
        const char *gpu = "0000:23:00.0";
        VfioOptions o = {.settle_ms = 0};
        VfioReport rep;
        assert_int_equal(vfio_enable(t.root, gpu, &o, &rep), 0);
        vfio_report_done(&rep);
        /* a record whose driver walks out of sys/bus/pci/drivers: gpuvirt wrote to etc/x/bind */
        _cleanup_free_ char *p = write_root(t.root, "{\"driver\":\"../../../../etc/x\",\"driver_override\":null}\n",
                                            "var/lib/gpuvirt/passthrough/0000:23:00.0");
        _cleanup_free_ char *x = root_path(t.root, "etc/x");
        assert_int_equal(mkdir_p(x, 0755), 0);
        assert_int_equal(vfio_disable(t.root, gpu, &o, &rep), -EBADMSG);
        expect_error(rep.error.message, p, "'driver' is \"../../../../etc/x\", expected a kernel driver name");
        assert_non_null(strstr(rep.error.message, "nothing was changed"));
        vfio_report_done(&rep);
        assert_false(root_exists(t.root, "etc/x/bind"));
        test_host_rescan(&t);
        assert_string_equal(pci_host_find(t.host, gpu)->driver, "vfio-pci");
        /* the record is kept for a person to look at */
        assert_true(root_exists(t.root, "var/lib/gpuvirt/passthrough/0000:23:00.0"));
        /* a duplicate key is as bad: json-c alone would have taken the last */
        free(write_root(t.root, "{\"driver\":\"nvidia\",\"driver\":\"../../../../etc/x\"}\n",
                        "var/lib/gpuvirt/passthrough/0000:23:00.0"));
        assert_int_equal(vfio_disable(t.root, gpu, &o, &rep), -EBADMSG);
        expect_error(rep.error.message, p, ":1:20: duplicate key 'driver'");
        vfio_report_done(&rep);
        /* enable does not overwrite a damaged record of a function it would move either */
        free(write_root(t.root, "{\"driver\":\"nvidia\"}\n", "var/lib/gpuvirt/passthrough/0000:23:00.0"));
        assert_int_equal(vfio_disable(t.root, gpu, &o, &rep), 0);
        vfio_report_done(&rep);
        free(write_root(t.root, "[]\n", "var/lib/gpuvirt/passthrough/0000:23:00.0"));
        assert_int_equal(vfio_enable(t.root, gpu, &o, &rep), -EBADMSG);
        expect_error(rep.error.message, p, "expected a JSON object");
        vfio_report_done(&rep);
        test_host_rescan(&t);
        assert_string_equal(pci_host_find(t.host, gpu)->driver, "nvidia");
        test_host_close(&t);
}

static void test_state_persist_records(void **state) {
        TestHost t;
        test_host_open(&t, "workstation");
        bool force;
        char **inc = NULL;
        GvError err = {};
        /* `passthrough restore` aborted on a json-c assertion when include was not a list */
        _cleanup_free_ char *p = write_root(t.root, "{\"driver\":\"vfio-pci\",\"force\":true,\"include\":5}\n",
                                            VFIO_PERSIST_DIR "/0000:02:00.0");
        assert_int_equal(vfio_persist_read(t.root, "0000:02:00.0", &force, &inc, &err), -EBADMSG);
        expect_error(err.message, p, "'include' is 5, expected a list of PCI addresses");
        gv_error_done(&err);
        free(write_root(t.root, "{\"driver\":\"vfio-pci\",\"include\":[\"0000:03:00.0\",\"3:0.0\"]}\n",
                        VFIO_PERSIST_DIR "/0000:02:00.0"));
        assert_int_equal(vfio_persist_read(t.root, "0000:02:00.0", &force, &inc, &err), -EBADMSG);
        expect_error(err.message, p, "item 1 of 'include' is \"3:0.0\"");
        gv_error_done(&err);
        free(write_root(t.root, "{\"driver\":\"nvidia\"}\n", VFIO_PERSIST_DIR "/0000:02:00.0"));
        assert_int_equal(vfio_persist_read(t.root, "0000:02:00.0", &force, &inc, &err), -EBADMSG);
        expect_error(err.message, p, "expected \"vfio-pci\"");
        gv_error_done(&err);
        assert_null(inc);
        test_host_close(&t);

        /* num_vfs 4294967297 read as 2147483647 */
        test_host_open(&t, "flex-sriov");
        unsigned n = 0;
        bool vfio;
        _cleanup_free_ char *sp = write_root(t.root, "{\"num_vfs\":4294967297,\"vfio\":true}\n",
                                             SRIOV_PERSIST_DIR "/0000:4d:00.0");
        assert_int_equal(sriov_persist_read(t.root, "0000:4d:00.0", &n, &vfio, &err), -EBADMSG);
        expect_error(err.message, sp, "'num_vfs' is 4294967297, out of the range 0..65535");
        gv_error_done(&err);
        free(write_root(t.root, "{\"num_vfs\":4,\"num_vfs\":31}\n", SRIOV_PERSIST_DIR "/0000:4d:00.0"));
        assert_int_equal(sriov_persist_read(t.root, "0000:4d:00.0", &n, &vfio, &err), -EBADMSG);
        expect_error(err.message, sp, ":1:14: duplicate key 'num_vfs' (first at line 1, column 2)");
        gv_error_done(&err);
        free(write_root(t.root, "{\"num_vfs\":4}\n", SRIOV_PERSIST_DIR "/0000:4d:00.0"));
        assert_int_equal(sriov_persist_read(t.root, "0000:4d:00.0", &n, &vfio, &err), 0);
        assert_int_equal(n, 4);
        assert_false(vfio);
        test_host_close(&t);
}

static void test_state_journal(void **state) {
        TestHost t;
        test_host_open(&t, "workstation");
        static const char *const bad[][2] = {
                {"{\"step\":{\"action\":\"bind-vfio\",\"device\":\"../../x\"}}", "'device' is"},
                {"{\"step\":{\"action\":\"format-disk\",\"device\":\"0000:02:00.0\"}}", "'action' is \"format-disk\""},
                {"{\"step\":{\"action\":\"bind-vfio\",\"device\":\"0000:02:00.0\",\"include\":\"0000:03:00.0\"}}",
                 "'include' is"},
                {"{\"step\":{\"action\":\"sriov-set\",\"device\":\"0000:02:00.0\",\"vfs\":4294967297}}",
                 "'vfs' is 4294967297, out of the range 0..65535"},
                {"{\"step\":{\"action\":\"mig-apply\",\"device\":\"0000:02:00.0\",\"mig\":{\"1g.5gb\":99}}}",
                 "'mig' must map MIG profile names to counts"},
                {"{\"step\":5}", "'step' is 5, expected an object"},
                {"{\"started\":1}", "'step' is missing"},
                {"{\"step\":{\"action\":\"bind-vfio\",\"device\":\"0000:02:00.0\"},\"step\":{}}", "duplicate key 'step'"},
                /* the fleet's fields: named vGPUs and pinned MIG instances */
                {"{\"step\":{\"action\":\"vgpu-create\",\"device\":\"0000:02:00.0\",\"type\":\"nvidia-222\",\"count\":1,"
                 "\"total\":1,\"units\":[\"4E2B1C77-8A3D-4C5E-9F10-2A3B4C5D6E7F\"]}}",
                 "item 0 of 'units' is"},
                {"{\"step\":{\"action\":\"vgpu-create\",\"device\":\"0000:02:00.0\",\"type\":\"nvidia-222\",\"count\":2,"
                 "\"total\":2,\"units\":[\"4e2b1c77-8a3d-4c5e-9f10-2a3b4c5d6e7f\",\"4e2b1c77-8a3d-4c5e-9f10-2a3b4c5d6e7f\"]}}",
                 "'units' must list at most 256 distinct vGPUs"},
                {"{\"step\":{\"action\":\"vgpu-create\",\"device\":\"0000:02:00.0\",\"type\":\"nvidia-222\",\"count\":2,"
                 "\"total\":2,\"units\":[\"4e2b1c77-8a3d-4c5e-9f10-2a3b4c5d6e7f\"]}}",
                 "at least 'total' (2) of them"},
                {"{\"step\":{\"action\":\"bind-vfio\",\"device\":\"0000:02:00.0\","
                 "\"units\":[\"4e2b1c77-8a3d-4c5e-9f10-2a3b4c5d6e7f\"]}}",
                 "'units' must list"},
                {"{\"step\":{\"action\":\"bind-vfio\",\"device\":\"0000:02:00.0\",\"mig_at\":[]}}",
                 "'mig_at' must list at most"},
                {"{\"step\":{\"action\":\"mig-apply\",\"device\":\"0000:02:00.0\",\"mig\":{\"1g.5gb\":1},"
                 "\"mig_at\":[{\"profile\":\"1g.5gb\",\"start\":0},{\"profile\":\"1g.5gb\",\"start\":1}]}}",
                 "'mig_at' pins more 1g.5gb instances than 'mig' counts"},
                {"{\"step\":{\"action\":\"mig-apply\",\"device\":\"0000:02:00.0\",\"mig\":{\"1g.5gb\":1},"
                 "\"mig_at\":[{\"profile\":\"1g.5gb\",\"start\":99}]}}",
                 "'start' is 99, out of the range"},
                {"{\"step\":{\"action\":\"mig-apply\",\"device\":\"0000:02:00.0\",\"mig\":{\"1g.5gb\":1},"
                 "\"mig_at\":[{\"start\":0}]}}",
                 "'profile' is missing"},
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *p = write_root(t.root, bad[i][0], HOST_JOURNAL_FILE);
                _cleanup_free_ char *step = NULL;
                _cleanup_(gv_error_done) GvError ge = {};
                _cleanup_strv_free_ char **restored = NULL;
                assert_int_equal(host_recover(t.root, &step, &restored, &ge), -EBADMSG);
                assert_int_equal(ge.error, EBADMSG);
                assert_string_equal(ge.step, "journal");
                const char *err = ge.message;
                assert_null(step);
                assert_null(restored);
                expect_error(err, "the journal is damaged (", p);
                if (!strstr(err, bad[i][1]))
                        fprintf(stderr, "got %s\nwant %s\n", err, bad[i][1]);
                assert_non_null(strstr(err, bad[i][1]));
        }
        /* nothing was run: every device is where it was */
        test_host_rescan(&t);
        assert_string_equal(pci_host_find(t.host, "0000:02:00.0")->driver, "nvidia");
        /* the last apply's record */
        HostResult res;
        _cleanup_(gv_error_done) GvError err = {};
        free(write_root(t.root, "{\"time\":1,\"file\":\"/etc/gpuvirt/host.yaml\",\"ok\":\"yes\",\"steps\":0,\"error\":null}",
                        HOST_RESULT_FILE));
        assert_int_equal(host_result_read(t.root, &res, &err), -EBADMSG);
        assert_int_equal(err.error, EBADMSG);
        assert_non_null(strstr(strna(err.message), "'ok' is \"yes\", expected true or false"));
        test_host_close(&t);
}

static void test_mdevctl_definition(void **state) {
        char *type = NULL, *start = NULL;
        GvError err = {};
        MdevAttr *a = NULL;
        size_t n = 0;
        static const char *const bad[][2] = {
                {"{\"mdev_type\":\"i915-GVTg_V5_4\",\"mdev_type\":\"../../x\"}", "d:1:31: duplicate key 'mdev_type'"},
                {"{\"mdev_type\":\"i915-GVTg_V5_4\",\"start\":\"auto\"}\n{}", "d:2:1: text after the JSON value"},
                {"{\"mdev_type\":\"i915-GVTg_V5_4\",\"attrs\":[{\"a\":1}]}", "d: attribute 0: 'a'"},
                {"{\"mdev_type\":\"i915-GVTg_V5_4\",\"attrs\":[5]}", "d: attribute 0 must be one"},
                {"{\"mdev_type\":\"../x\"}", "d: 'mdev_type' is \"../x\", expected an mdev type id"},
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_int_equal(mdev_definition_parse("d", bad[i][0], strlen(bad[i][0]), &type, &start, &a, &n, &err),
                                 -EBADMSG);
                assert_int_equal(err.error, EBADMSG);
                expect_error(err.message, bad[i][1], "");
                gv_error_done(&err);
        }
        /* keys of mdevctl's format gpuvirt does not use are left alone */
        const char *good = "{\"mdev_type\":\"i915-GVTg_V5_4\",\"start\":\"auto\",\"attrs\":[],\"future\":{\"x\":1}}";
        assert_int_equal(mdev_definition_parse("d", good, strlen(good), &type, &start, &a, &n, &err), 0);
        assert_string_equal(type, "i915-GVTg_V5_4");
        free(type);
        free(start);
        mdev_attrs_free(a, n);
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
                cmocka_unit_test(test_migparted_parsed_once),
                cmocka_unit_test(test_size_bounds),
                cmocka_unit_test(test_depth),
                cmocka_unit_test(test_encoding),
                cmocka_unit_test(test_keys),
                cmocka_unit_test(test_json_strict),
                cmocka_unit_test(test_json_dispatch),
                cmocka_unit_test(test_state_passthrough_record),
                cmocka_unit_test(test_state_persist_records),
                cmocka_unit_test(test_state_journal),
                cmocka_unit_test(test_mdevctl_definition),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
