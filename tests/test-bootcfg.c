/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <cmocka.h>

#include "basic/fileio.h"
#include "basic/shellvar.h"
#include "core/host/bootcfg.h"
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

/* The value the text gives name, or the parse error. */
static char *var(const char *text, const char *name) {
        ShAssignment *a = NULL;
        size_t n = 0;
        char *err = NULL;
        int r = sh_parse(text, strlen(text), name, &a, &n, &err);
        if (r < 0)
                return err;
        free(err);
        char *v = sh_value(name, a, n);
        sh_assignments_free(a, n);
        return v ?: strdup("(unset)");
}

static void var_is(const char *text, const char *name, const char *expect) {
        char *v = var(text, name);
        assert_non_null(v);
        assert_string_equal(v, expect);
        free(v);
}

static void test_shell(void **state) {
        /* quotes, escapes, continuations, as the shell reads them */
        var_is("A='a b' # c\n", "A", "a b");
        var_is("A=\"x \\\"y\\\" \\$z \\q\"\n", "A", "x \"y\" $z \\q");
        var_is("A=one\\ two\\\nthree\n", "A", "one twothree");
        var_is("A=\"a \\\n b\"\n", "A", "a  b");
        var_is("A='a \\\nb'\n", "A", "a \\\nb");
        /* the last assignment wins; $A and ${A} (not in single quotes, not escaped) are the value before */
        var_is("A=x\nA=\"$A y\"\nA=\"${A} z\"\n", "A", "x y z");
        var_is("A=x\nA='$A'\n", "A", "$A");
        var_is("A=x\nA=\"\\$A $AB\"\n", "A", "$A $AB");
        /* only at the start of a command: not in a comment, an argument, or inside another value's quotes */
        var_is("# A=1\necho A=2\nB=\"\nA=3\n\"\n", "A", "(unset)");
        var_is("if true; then A=1; fi; export A=2 B=3\n", "A", "2");
        var_is("X=1 A=2\n", "A", "2");
        var_is("A=1\nA=2 cmd x\nA=3 >/dev/null\n", "A", "3"); /* A=2 is cmd's environment, not the shell's */
        var_is("A=1\nA=2 cmd\n", "A", "1");
        /* expansions are kept as written, and their quotes do not end the value */
        var_is("A=\"$(echo \"a b\") ${x:-\"}\"} `c`\"\n", "A", "$(echo \"a b\") ${x:-\"}\"} `c`");
        /* what the shell refuses, with where */
        var_is("A=1\nB='x\n", "B", "2:3: unterminated single quote");
        var_is("A=\"x\n\n", "A", "1:3: unterminated double quote");
        var_is("A=$(x\n", "A", "1:3: unterminated $( command substitution");
        var_is("A=${x\n", "A", "1:3: unterminated ${ expansion");
        var_is("A=`x\n", "A", "1:3: unterminated ` command substitution");
        ShAssignment *a;
        size_t n;
        char *err = NULL;
        assert_int_equal(sh_parse("A=1\0B=2", 7, "A", &a, &n, &err), -EINVAL);
        assert_string_equal(err, "1:4: NUL byte");
        free(err);
}

static void edit_is(const char *text, const char *add, const char *remove, const char *expect, const char *expect_new) {
        char *out = NULL, *old = NULL, *now = NULL, *err = NULL;
        assert_int_equal(grub_cmdline_edit(text, add, remove, &out, &old, &now, &err), 0);
        assert_null(err);
        assert_string_equal(out, expect);
        assert_string_equal(now, expect_new);
        free(out);
        free(old);
        free(now);
}

static void test_grub_edit(void **state) {
        /* each value keeps its quoting; the words that go take their blanks with them */
        edit_is("GRUB_CMDLINE_LINUX=\"\"\n", "iommu=pt", NULL, "GRUB_CMDLINE_LINUX=\"iommu=pt\"\n", "iommu=pt");
        edit_is("GRUB_CMDLINE_LINUX=''\n", "iommu=pt", NULL, "GRUB_CMDLINE_LINUX='iommu=pt'\n", "iommu=pt");
        edit_is("GRUB_CMDLINE_LINUX=\n", "iommu=pt", NULL, "GRUB_CMDLINE_LINUX=\"iommu=pt\"\n", "iommu=pt");
        edit_is("GRUB_CMDLINE_LINUX='a $b'\n", "iommu=pt", NULL, "GRUB_CMDLINE_LINUX='a $b iommu=pt'\n", "a $b iommu=pt");
        edit_is("GRUB_CMDLINE_LINUX=\"a amd_iommu=off b\"\n", "iommu=pt", "amd_iommu=off",
                "GRUB_CMDLINE_LINUX=\"a b iommu=pt\"\n", "a b iommu=pt");
        edit_is("GRUB_CMDLINE_LINUX=\"amd_iommu=off  b\"\n", NULL, "amd_iommu=off", "GRUB_CMDLINE_LINUX=\"b\"\n", "b");
        /* a key set to another value is replaced */
        edit_is("GRUB_CMDLINE_LINUX=\"iommu=soft\"\n", "iommu=pt", NULL, "GRUB_CMDLINE_LINUX=\"iommu=pt\"\n", "iommu=pt");
        /* a deletion across quoting leaves the quotes balanced */
        edit_is("GRUB_CMDLINE_LINUX=\"a \"b\n", NULL, "b", "GRUB_CMDLINE_LINUX=\"a\"\n", "a");
        edit_is("GRUB_CMDLINE_LINUX=a\" b\"\n", NULL, "a", "GRUB_CMDLINE_LINUX=\"b\"\n", "b");
        edit_is("GRUB_CMDLINE_LINUX='a 'x\" b\"\n", NULL, "x", "GRUB_CMDLINE_LINUX='a'\" b\"\n", "a b");
        /* unquoted: put in double quotes, escapes turned into their double-quoted form */
        edit_is("GRUB_CMDLINE_LINUX=a\\ \\$b\n", "iommu=pt", NULL, "GRUB_CMDLINE_LINUX=\"a \\$b iommu=pt\"\n", "a $b iommu=pt");
        /* none: one is added, the rest of the file as it was */
        edit_is("GRUB_TIMEOUT=5", "iommu=pt", NULL, "GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=\"iommu=pt\"\n", "iommu=pt");
        /* a file ending in a backslash that escapes nothing: /bin/sh reads it as a literal one, so it is doubled
         * (a newline after it would continue the line and make the command before it an assignment); an
         * escaped one at the end stays as it is */
        edit_is("GRUB_CMDLINE_LINUX='a intel_iommu=off' \\", "iommu=pt", "intel_iommu=off",
                "GRUB_CMDLINE_LINUX='a intel_iommu=off' \\\\\nGRUB_CMDLINE_LINUX=\"iommu=pt\"\n", "iommu=pt");
        edit_is("X=1 \\\\", "iommu=pt", NULL, "X=1 \\\\\nGRUB_CMDLINE_LINUX=\"iommu=pt\"\n", "iommu=pt");
        edit_is("# c \\", "iommu=pt", NULL, "# c \\\\\nGRUB_CMDLINE_LINUX=\"iommu=pt\"\n", "iommu=pt");
        /* already there: nothing changes */
        edit_is("X=1\nGRUB_CMDLINE_LINUX=\"iommu=pt\" # c\n", "iommu=pt", NULL, "X=1\nGRUB_CMDLINE_LINUX=\"iommu=pt\" # c\n", "iommu=pt");
        /* refused, with where */
        char *out = NULL, *old = NULL, *now = NULL, *err = NULL;
        assert_int_equal(grub_cmdline_edit("GRUB_CMDLINE_LINUX=\"quiet\n", "iommu=pt", NULL, &out, &old, &now, &err), -EINVAL);
        assert_string_equal(err, "1:20: unterminated double quote");
        assert_null(out);
        free(err);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_merge),
                cmocka_unit_test(test_has),
                cmocka_unit_test(test_read),
                cmocka_unit_test(test_shell),
                cmocka_unit_test(test_grub_edit),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
