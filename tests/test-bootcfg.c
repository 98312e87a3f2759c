/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <cmocka.h>

#include "basic/fileio.h"
#include "core/bootcfg.h"
#include "helpers.h"

static void merge_is(const char *cmdline, const char *add, const char *remove, const char *expect) {
        char *m = cmdline_merge(cmdline, add, remove);
        assert_non_null(m);
        assert_string_equal(m, expect);
        free(m);
}

static void test_merge(void **state) {
        merge_is("", "intel_iommu=on iommu=pt", NULL, "intel_iommu=on iommu=pt");
        merge_is(NULL, "iommu=pt", NULL, "iommu=pt");
        /* other arguments kept in order, nothing duplicated */
        merge_is("quiet splash intel_iommu=on", "intel_iommu=on iommu=pt", NULL, "quiet splash intel_iommu=on iommu=pt");
        /* same key with another value is replaced */
        merge_is("quiet intel_iommu=off", "intel_iommu=on iommu=pt", NULL, "quiet intel_iommu=on iommu=pt");
        /* removal of amd_iommu=off on AMD */
        merge_is("amd_iommu=off console=ttyS0", "iommu=pt", "amd_iommu=off", "console=ttyS0 iommu=pt");
        /* duplicates in the input collapse, already-present is a no-op */
        merge_is("iommu=pt  iommu=pt", "iommu=pt", NULL, "iommu=pt");
        merge_is("  a   b  ", NULL, NULL, "a b");
}

static void test_has(void **state) {
        assert_true(cmdline_has("quiet intel_iommu=on", "intel_iommu=on"));
        assert_false(cmdline_has("quiet intel_iommu=off", "intel_iommu=on"));
        assert_true(cmdline_has("quiet intel_iommu=off", "intel_iommu"));
        assert_false(cmdline_has("xintel_iommu=on", "intel_iommu=on"));
        assert_false(cmdline_has(NULL, "quiet"));
        assert_true(cmdline_has("flags : fpu vmx sse", "vmx"));
}

static void write_in(const char *dir, const char *rel, const char *text) {
        char *p = strdup_printf("%s/%s", dir, rel);
        char *slash = strrchr(p, '/');
        *slash = '\0';
        assert_int_equal(mkdir_p(p, 0755), 0);
        *slash = '/';
        assert_int_equal(write_text(p, text), 0);
        free(p);
}

static void test_read(void **state) {
        char *d = test_tmpdir();
        write_in(d, "etc/os-release", "PRETTY_NAME=\"Rocky Linux 9\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n");
        write_in(d, "etc/default/grub", "GRUB_TIMEOUT=5\n# GRUB_CMDLINE_LINUX=\"old\"\nGRUB_CMDLINE_LINUX=\"crashkernel=auto rhgb quiet\"\n");
        Root *r;
        assert_int_equal(root_open(d, 0, &r), 0);
        BootConfig c;
        assert_int_equal(boot_config_read(r, &c), 0);
        assert_true(c.rhel_like);
        assert_false(c.debian_like);
        assert_int_equal(c.loader, BOOT_LOADER_GRUB);
        assert_string_equal(c.grub_cmdline, "crashkernel=auto rhgb quiet");
        assert_string_equal(boot_config_regen_command(&c), "grub2-mkconfig -o /boot/grub2/grub.cfg");
        boot_config_done(&c);

        /* systemd-boot host: no grub defaults, a kernel cmdline file */
        char *g = strdup_printf("%s/etc/default/grub", d);
        assert_int_equal(unlink(g), 0);
        free(g);
        write_in(d, "etc/kernel/cmdline", "root=UUID=1 rw quiet\n");
        write_in(d, "etc/os-release", "ID=debian\n");
        assert_int_equal(boot_config_read(r, &c), 0);
        assert_int_equal(c.loader, BOOT_LOADER_SYSTEMD_BOOT);
        assert_string_equal(c.kernel_cmdline, "root=UUID=1 rw quiet");
        assert_non_null(strstr(boot_config_regen_command(&c), "kernel-install"));
        boot_config_done(&c);
        root_free(r);
        test_tmpdir_remove(d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_merge),
                cmocka_unit_test(test_has),
                cmocka_unit_test(test_read),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
