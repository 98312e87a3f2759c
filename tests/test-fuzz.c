/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Mutation fuzzing of every parser of untrusted input, under ASan/UBSan: host.yaml, mig-parted files,
 * PCI addresses, kernel command lines, mdev UUIDs and mdevctl definitions. Deterministic (fixed seed,
 * bounded iterations), so a failure reproduces. Each input must either parse or be rejected with a
 * message, never crash, leak or read out of bounds; rejections of the YAML files must carry a position.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "basic/fileio.h"
#include "core/bootcfg.h"
#include "core/hostspec.h"
#include "core/mdev.h"
#include "core/migparted.h"
#include "core/pci.h"
#include "helpers.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return (uint32_t)(rng >> 11);
}

static const char *const tokens[] = {":", " ", "\n", "-", "\"", "'", "{", "}", "[", "]", ",", "#", "&a", "*a",
                                     "!!str", "0x", "99999999999", "-1", "true", "\t", "\xff", "\xc3\xa9",
                                     "mode", "select", "mig", "vgpu", "sriov", "all", "1g.5gb", "0000:17:00.0"};

/* One random mutation of buf (length *len, capacity cap). */
static void mutate(char *buf, size_t *len, size_t cap) {
        size_t l = *len;
        switch (rnd() % 5) {
        case 0: /* flip a byte */
                if (l)
                        buf[rnd() % l] = (char)(rnd() & 0xff);
                break;
        case 1: /* delete a run */
                if (l) {
                        size_t at = rnd() % l, n = 1 + rnd() % 8;
                        if (at + n > l)
                                n = l - at;
                        memmove(buf + at, buf + at + n, l - at - n);
                        l -= n;
                }
                break;
        case 2: /* insert a token */
        default: {
                const char *t = tokens[rnd() % (sizeof tokens / sizeof tokens[0])];
                size_t tl = strlen(t), at = l ? rnd() % (l + 1) : 0;
                if (l + tl < cap) {
                        memmove(buf + at + tl, buf + at, l - at);
                        memcpy(buf + at, t, tl);
                        l += tl;
                }
                break;
        }
        case 3: /* duplicate a run */
                if (l) {
                        size_t at = rnd() % l, n = 1 + rnd() % 32;
                        if (at + n > l)
                                n = l - at;
                        if (l + n < cap) {
                                memmove(buf + at + n, buf + at, l - at);
                                l += n;
                        }
                }
                break;
        case 4: /* truncate */
                if (l)
                        l = rnd() % l;
                break;
        }
        buf[l] = '\0';
        *len = l;
}

static const char host_seed[] = "version: 1\n"
                                "gpus:\n"
                                "  - select: all\n"
                                "    mode: host\n"
                                "  - select: \"10de:20b0\"\n"
                                "    mode: mig\n"
                                "    mig: {\"1g.5gb\": 2, \"3g.20gb\": 1}\n"
                                "  - select: \"0000:17:00.0\"\n"
                                "    mode: passthrough\n"
                                "    force: true\n"
                                "    include: [\"0000:18:00.0\"]\n"
                                "  - select: \"10de:1eb8\"\n"
                                "    mode: vgpu\n"
                                "    vgpu: {type: nvidia-222, count: 4}\n"
                                "  - select: \"8086:56c0\"\n"
                                "    mode: sriov\n"
                                "    sriov: {vfs: 8, vfs-mode: passthrough}\n";

static const char migparted_seed[] = "version: v1\n"
                                     "mig-configs:\n"
                                     "  all-balanced:\n"
                                     "    - device-filter: [\"0x20B010DE\", \"0x20B210DE:0x147F10DE\"]\n"
                                     "      devices: all\n"
                                     "      mig-enabled: true\n"
                                     "      mig-devices:\n"
                                     "        \"1g.5gb\": 2\n"
                                     "        \"2g.10gb\": 1\n"
                                     "  custom:\n"
                                     "    - devices: [0, 1]\n"
                                     "      mig-enabled: false\n";

#define ITERATIONS 20000

static void test_hostspec(void **state) {
        char buf[4096];
        size_t ok = 0, rejected = 0;
        for (int i = 0; i < ITERATIONS; i++) {
                size_t len = strlen(host_seed);
                memcpy(buf, host_seed, len + 1);
                for (unsigned m = 1 + rnd() % 6; m > 0; m--)
                        mutate(buf, &len, sizeof buf);
                HostSpec *s = NULL;
                char *err = NULL;
                int r = host_spec_parse("f.yaml", buf, len, &s, &err);
                if (r == 0) {
                        ok++;
                        /* what parses formats back into something that parses the same way */
                        char *t = host_spec_format(s);
                        HostSpec *s2 = NULL;
                        char *err2 = NULL;
                        assert_non_null(t);
                        int r2 = host_spec_parse("f.yaml", t, strlen(t), &s2, &err2);
                        if (r2 != 0)
                                fprintf(stderr, "round trip failed: %s\n--- input:\n%s\n--- formatted:\n%s\n", err2, buf, t);
                        assert_int_equal(r2, 0);
                        assert_int_equal(s2->n_entries, s->n_entries);
                        host_spec_free(s2);
                        free(t);
                        host_spec_free(s);
                } else {
                        rejected++;
                        assert_int_equal(r, -EINVAL);
                        assert_non_null(err);
                        assert_non_null(startswith(err, "f.yaml:"));
                        free(err);
                }
        }
        fprintf(stderr, "hostspec: %zu parsed, %zu rejected\n", ok, rejected);
        assert_true(ok > 0 && rejected > 0);
}

static void test_migparted(void **state) {
        char *dir = test_tmpdir();
        char *path = strdup_printf("%s/c.yaml", dir);
        char buf[4096];
        size_t ok = 0, rejected = 0;
        for (int i = 0; i < ITERATIONS / 2; i++) {
                size_t len = strlen(migparted_seed);
                memcpy(buf, migparted_seed, len + 1);
                for (unsigned m = 1 + rnd() % 6; m > 0; m--)
                        mutate(buf, &len, sizeof buf);
                assert_int_equal(write_file(path, buf, len, O_CREAT | O_TRUNC, 0644), 0);
                MigParted *m = NULL;
                char *err = NULL;
                int r = migparted_parse(path, &m, &err);
                if (r == 0) {
                        ok++;
                        for (size_t c = 0; c < m->n_configs; c++)
                                for (size_t e = 0; e < m->configs[c].n_entries; e++)
                                        (void)migparted_entry_selects(&m->configs[c].entries[e], 0, 0x20b010de, 0x134f10de);
                        migparted_free(m);
                } else {
                        rejected++;
                        assert_non_null(err);
                        free(err);
                }
        }
        fprintf(stderr, "migparted: %zu parsed, %zu rejected\n", ok, rejected);
        assert_true(ok > 0 && rejected > 0);
        free(path);
        test_tmpdir_remove(dir);
}

static void test_small_parsers(void **state) {
        static const char *const seeds[] = {"0000:3b:00.0", "3b:00.0", "quiet intel_iommu=on iommu=pt",
                                            "0e3b9f2a-4b1c-4d3e-9f00-112233445566", "{0E3B9F2A-4B1C-4D3E-9F00-112233445566}",
                                            "urn:uuid:0e3b9f2a-4b1c-4d3e-9f00-112233445566", "0e3b9f2a4b1c4d3e9f00112233445566",
                                            "{\"mdev_type\":\"nvidia-222\",\"start\":\"auto\",\"attrs\":[{\"a\":\"1\"}]}"};
        char buf[512];
        for (int i = 0; i < ITERATIONS * 2; i++) {
                const char *seed = seeds[rnd() % (sizeof seeds / sizeof seeds[0])];
                size_t len = strlen(seed);
                memcpy(buf, seed, len + 1);
                for (unsigned m = 1 + rnd() % 4; m > 0; m--)
                        mutate(buf, &len, sizeof buf);
                PciAddr a;
                if (pci_addr_parse(buf, &a) == 0) {
                        /* what parses is canonical and parses again to the same address */
                        char out[PCI_ADDR_STRLEN];
                        PciAddr b;
                        pci_addr_format(&a, out);
                        assert_int_equal(pci_addr_parse(out, &b), 0);
                        assert_true(a.domain == b.domain && a.bus == b.bus && a.slot == b.slot && a.func == b.func);
                }
                char *merged = cmdline_merge(buf, "intel_iommu=on iommu=pt", "intel_iommu=off");
                assert_non_null(merged);
                assert_true(cmdline_has(merged, "intel_iommu=on"));
                assert_false(cmdline_has(merged, "intel_iommu=off"));
                free(merged);
                char uuid[MDEV_UUID_STRLEN];
                if (mdev_uuid_parse(buf, uuid) == 0)
                        assert_int_equal(strlen(uuid), 36);
                /* definition file names, as mdevctl reads them: what parses is a canonical UUID */
                char u2[MDEV_UUID_STRLEN];
                if (mdev_definition_name_parse(buf, u2) == 0) {
                        assert_int_equal(strlen(u2), 36);
                        assert_int_equal(mdev_uuid_parse(u2, uuid), 0);
                        assert_string_equal(uuid, u2);
                }
                char *type = NULL, *start = NULL;
                MdevAttr *attrs = NULL;
                size_t n = 0;
                if (mdev_definition_parse(buf, &type, &start, &attrs, &n) == 0) {
                        assert_true(mdev_type_valid(type));
                        free(type);
                        free(start);
                        mdev_attrs_free(attrs, n);
                }
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_hostspec),
                cmocka_unit_test(test_migparted),
                cmocka_unit_test(test_small_parsers),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
