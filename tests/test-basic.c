/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "basic/dlsym-table.h"
#include "basic/errname.h"
#include "basic/fileio.h"
#include "core/host/pci.h"
#include "helpers.h"

static void test_pci_addr_valid(void **state) {
        static const struct {
                const char *in, *out;
        } ok[] = {
                {"0000:3b:00.0", "0000:3b:00.0"}, {"3b:00.0", "0000:3b:00.0"},     {"0000:3B:1F.7", "0000:3b:1f.7"},
                {"10000:00:00.0", NULL},          {"0001:00:02.1", "0001:00:02.1"}, {"ffff:ff:1f.7", "ffff:ff:1f.7"},
        };
        for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
                char *c = NULL;
                int r = pci_addr_canonical(ok[i].in, &c);
                if (!ok[i].out) {
                        assert_int_equal(r, -EINVAL);
                        continue;
                }
                assert_int_equal(r, 0);
                assert_string_equal(c, ok[i].out);
                free(c);
        }
}

static void test_pci_addr_invalid(void **state) {
        static const char *const bad[] = {
                "",          "0000:3b:00",  "0000:3b:00.8",  "0000:3b:20.0", "0000:3bb:00.0", "zz:00.0",
                "3b:00.0 ",  " 3b:00.0",    "0000:3b:00.0x", "3b.00.0",      "0:0:0:0.0",     "0000:3b:00.",
                "0000::00.0", "0000:3b:-1.0", "3b:00.00",     NULL,
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                PciAddr a;
                assert_int_equal(pci_addr_parse(bad[i], &a), -EINVAL);
        }
}

static void test_same_card(void **state) {
        PciAddr a, b, c;
        assert_int_equal(pci_addr_parse("01:00.0", &a), 0);
        assert_int_equal(pci_addr_parse("01:00.1", &b), 0);
        assert_int_equal(pci_addr_parse("01:01.0", &c), 0);
        assert_true(pci_addr_same_card(&a, &b));
        assert_false(pci_addr_same_card(&a, &c));
}

static void test_errname(void **state) {
        assert_string_equal(errno_to_name(EBUSY), "EBUSY");
        assert_string_equal(errno_to_name(-EUSERS), "EUSERS");
        assert_int_equal(errno_from_name("ebusy"), EBUSY);
        assert_int_equal(errno_from_name("ERANGE"), ERANGE);
        assert_int_equal(errno_from_name("16"), 16);
        assert_int_equal(errno_from_name("EWHATEVER"), -EINVAL);
        assert_int_equal(errno_from_name("0"), -EINVAL);
        assert_int_equal(errno_from_name(""), -EINVAL);
}

static void test_parse(void **state) {
        uint32_t v;
        int i;
        assert_int_equal(parse_u32("0x10de", 16, &v), 0);
        assert_int_equal(v, 0x10de);
        assert_int_equal(parse_u32("10de", 16, &v), 0);
        assert_int_equal(parse_u32("-1", 10, &v), -EINVAL);
        assert_int_equal(parse_u32("4294967296", 10, &v), -ERANGE);
        assert_int_equal(parse_u32("12abc", 10, &v), -EINVAL);
        assert_int_equal(parse_u32("", 10, &v), -EINVAL);
        assert_int_equal(parse_int("-1", &i), 0);
        assert_int_equal(i, -1);
        assert_int_equal(parse_int(" 1", &i), -EINVAL);
}

static void test_files(void **state) {
        char *d = test_tmpdir();
        char *p = strdup_printf("%s/a/b/c", d);
        assert_int_equal(mkdir_p(p, 0755), 0);
        assert_int_equal(mkdir_p(p, 0755), 0); /* there already */
        {
                /* a missing middle, doubled and trailing slashes, a file in the way */
                char *q = strdup_printf("%s/a/x//y/z/", d), *y = strdup_printf("%s/a/x/y/z", d);
                char *file = strdup_printf("%s/a/b/c/file", d), *under = strdup_printf("%s/a/b/c/file/sub", d);
                struct stat st;
                assert_int_equal(mkdir_p(q, 0755), 0);
                assert_int_equal(stat(y, &st), 0);
                assert_true(S_ISDIR(st.st_mode));
                assert_int_equal(write_text(file, "x"), 0);
                assert_int_equal(mkdir_p(under, 0755), -ENOTDIR);
                assert_int_equal(unlink(file), 0);
                free(q);
                free(y);
                free(file);
                free(under);
        }
        char *f = strdup_printf("%s/attr", p);
        assert_int_equal(write_text(f, "  0x030200\n"), 0);
        char *v = NULL;
        assert_int_equal(read_attr(f, &v), 0);
        assert_string_equal(v, "0x030200");
        free(v);
        uint32_t x;
        assert_int_equal(read_attr_u32(f, 16, &x), 0);
        assert_int_equal(x, 0x030200);

        /* over-long attribute is refused, not truncated */
        char *big = malloc(ATTR_SIZE_MAX + 10);
        memset(big, 'a', ATTR_SIZE_MAX + 9);
        big[ATTR_SIZE_MAX + 9] = '\0';
        assert_int_equal(write_text(f, big), 0);
        assert_int_equal(read_attr(f, &v), -EFBIG);
        free(big);

        /* relative symlinks resolve back to their target */
        char *target = strdup_printf("%s/a/b", d);
        char *link = strdup_printf("%s/x/y/link", d);
        char *ldir = strdup_printf("%s/x/y", d);
        assert_int_equal(mkdir_p(ldir, 0755), 0);
        assert_int_equal(symlink_relative(target, link), 0);
        char *res = NULL;
        assert_int_equal(readlink_resolved(link, &res), 0);
        assert_string_equal(res, target);
        char *base = NULL;
        assert_int_equal(readlink_base(link, &base), 0);
        assert_string_equal(base, "b");
        char *rel = path_relative("/sys/bus/pci/devices/0000:00:01.0", "/sys/devices/pci0000:00/0000:00:01.0");
        assert_string_equal(rel, "../../../devices/pci0000:00/0000:00:01.0");
        free(rel);

        char **l = NULL;
        assert_int_equal(dir_list(d, &l), 2);
        assert_string_equal(l[0], "a");
        assert_string_equal(l[1], "x");
        strv_free(l);
        free(res);
        free(base);
        free(target);
        free(link);
        free(ldir);
        free(f);
        free(p);
        test_tmpdir_remove(d);
}

static void test_root(void **state) {
        char *d = test_tmpdir();
        Root *r = NULL;
        /* A plain directory is a capture: read-only, writes refused with EROFS, no lock. */
        assert_int_equal(root_open(d, 0, &r), 0);
        assert_int_equal(root_kind(r), ROOT_CAPTURE);
        char *p = root_path(r, "sys/bus/pci/devices/%s", "0000:00:00.0");
        char *expect = strdup_printf("%s/sys/bus/pci/devices/0000:00:00.0", d);
        assert_string_equal(p, expect);
        assert_int_equal(root_write(r, "1", "sys/bus/pci/rescan"), -EROFS);
        assert_int_equal(root_lock(r, 0, NULL), -EROFS);
        root_free(r);
        free(p);
        free(expect);

        /* The environment variable points the seam elsewhere. */
        setenv("GPUVIRT_ROOT", d, 1);
        assert_int_equal(root_open(NULL, 0, &r), 0);
        assert_string_equal(root_dir(r), d);
        root_free(r);
        /* An empty root is an unset variable in a script, never the live host. */
        setenv("GPUVIRT_ROOT", "", 1);
        assert_int_equal(root_open(NULL, 0, &r), -EINVAL);
        unsetenv("GPUVIRT_ROOT");
        assert_int_equal(root_open("", 0, &r), -EINVAL);
        assert_int_equal(root_open("/nonexistent-gpuvirt", 0, &r), -ENOENT);
        test_tmpdir_remove(d);
}

/* The loader of NVML and libvirt: present symbols are filled, a missing optional one stays NULL, a missing
 * required one names itself and leaves the whole table empty. */
static void test_dlsym_table(void **state) {
        void *dl = dlopen("libc.so.6", RTLD_NOW | RTLD_LOCAL);
        assert_non_null(dl);
        void *a = NULL, *b = (void *)1, *c = NULL;
        DlsymEntry ok[] = {
                {"strlen", &a, true},
                {"gpuvirt_no_such_symbol", &b, false},
                {"memcpy", &c, true},
        };
        assert_int_equal(dlsym_table(dl, ok, ELEMENTSOF(ok), NULL), 0);
        assert_ptr_equal(a, dlsym(dl, "strlen"));
        assert_null(b);
        assert_ptr_equal(c, dlsym(dl, "memcpy"));

        DlsymEntry bad[] = {
                {"strlen", &a, true},
                {"gpuvirt_no_such_symbol", &b, true},
                {"memcpy", &c, true},
        };
        const char *missing = NULL;
        assert_int_equal(dlsym_table(dl, bad, ELEMENTSOF(bad), &missing), -ENOPKG);
        assert_string_equal(missing, "gpuvirt_no_such_symbol");
        assert_null(a);
        assert_null(b);
        assert_null(c);
        dlclose(dl);
}

/* read_full() of files larger than its first buffer (64 KiB) and of its limit: the whole file, or -EFBIG */
static void test_read_full_sizes(void **state) {
        char *d = test_tmpdir();
        static const size_t sizes[] = {0, 1, 65535, 65536, 65537, 200000, 1 << 20};
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                size_t len = sizes[i];
                char *data = malloc(len + 1);
                assert_non_null(data);
                for (size_t j = 0; j < len; j++)
                        data[j] = (char)('a' + j % 26);
                _cleanup_free_ char *p = strdup_printf("%s/f%zu", d, len);
                assert_int_equal(write_file(p, data, len, O_CREAT | O_TRUNC, 0644), 0);
                void *got = NULL;
                size_t n = 0;
                assert_int_equal(read_full(p, 16 * 1024 * 1024, &got, &n), 0);
                assert_int_equal(n, len);
                assert_memory_equal(got, data, len);
                assert_int_equal(((char *)got)[len], '\0');
                free(got);
                /* exactly at the limit, and one byte over it */
                assert_int_equal(read_full(p, len, &got, &n), 0);
                assert_int_equal(n, len);
                free(got);
                if (len > 0) {
                        got = NULL;
                        assert_int_equal(read_full(p, len - 1, &got, &n), -EFBIG);
                        assert_null(got);
                }
                free(data);
        }
        test_tmpdir_remove(d);
}

/* dir_has_at() says for each name what a lookup would: there or not, and a link as one to follow (a dangling
 * one is listed, but faccessat() finds nothing through it), over a directory longer than one getdents64()
 * buffer, with the names asked for both in its first and in its last entries. */
static void test_dir_has(void **state) {
        char *d = test_tmpdir();
        for (unsigned i = 0; i < 600; i++) {
                _cleanup_free_ char *p = strdup_printf("%s/attribute_with_a_long_name_%03u", d, i);
                assert_int_equal(write_file(p, "x", 1, O_CREAT | O_TRUNC, 0644), 0);
        }
        _cleanup_free_ char *sub = strdup_printf("%s/subdir", d), *dangling = strdup_printf("%s/dangling", d),
                            *link = strdup_printf("%s/link", d);
        assert_int_equal(mkdir(sub, 0755), 0);
        assert_int_equal(symlink("nowhere", dangling), 0);
        assert_int_equal(symlink("subdir", link), 0);
        static const char *const names[] = {"attribute_with_a_long_name_000", "attribute_with_a_long_name_599",
                                            "subdir", "dangling", "link", "absent", "attribute_with_a_long_name_600"};
        int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dfd >= 0);
        uint64_t has = 0, links = 0;
        assert_int_equal(dir_has_at(dfd, names, ELEMENTSOF(names), &has, &links), 0);
        assert_int_equal(has, 0x1f);  /* the first five are entries */
        assert_int_equal(links, 0x18); /* dangling and link */
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                bool listed = has & (UINT64_C(1) << i), follow = links & (UINT64_C(1) << i);
                /* what pci_device_load_rest() concludes is what a lookup says */
                assert_int_equal(listed && (!follow || exists_at(dfd, names[i])), exists_at(dfd, names[i]));
        }
        /* the listing read the fd to its end: a second one from there finds nothing, and no name */
        assert_int_equal(dir_has_at(dfd, names, ELEMENTSOF(names), &has, NULL), 0);
        assert_int_equal(has, 0);
        close(dfd);
        assert_int_equal(dir_has_at(-1, names, 1, &has, NULL), -EBADF);
        test_tmpdir_remove(d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_pci_addr_valid), cmocka_unit_test(test_pci_addr_invalid),
                cmocka_unit_test(test_same_card),      cmocka_unit_test(test_errname),
                cmocka_unit_test(test_parse),          cmocka_unit_test(test_files),
                cmocka_unit_test(test_root),          cmocka_unit_test(test_dlsym_table),
                cmocka_unit_test(test_read_full_sizes), cmocka_unit_test(test_dir_has),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
