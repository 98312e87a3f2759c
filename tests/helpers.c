/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <cmocka.h>

#include "basic/fileio.h"
#include "helpers.h"
#include "sim/sim.h"

/* Every test program links the simulator: simulated roots are simulated hosts from the start. */
__attribute__((constructor)) static void test_register_sim(void) {
        sim_backend_register();
}

char *test_tmpdir(void) {
        const char *base = getenv("TMPDIR") ?: "/tmp";
        char *t = strdup_printf("%s/gpuvirt-test-XXXXXX", base);
        assert_non_null(t);
        assert_non_null(mkdtemp(t));
        return t;
}

void test_tmpdir_remove(char *dir) {
        if (dir) {
                assert_int_equal(rm_rf(dir), 0);
                free(dir);
        }
}

void test_host_open(TestHost *t, const char *profile) {
        char *base = test_tmpdir();
        t->dir = strdup_printf("%s/host", base);
        free(base);
        assert_int_equal(sim_create(t->dir, profile), 0);
        assert_int_equal(root_open(t->dir, 0, &t->root), 0);
        assert_int_equal(root_kind(t->root), ROOT_SIMULATED);
        assert_int_equal(pci_host_scan(t->root, &t->host), 0);
}

void test_host_rescan(TestHost *t) {
        pci_host_free(t->host);
        assert_int_equal(pci_host_scan(t->root, &t->host), 0);
}

void test_host_close(TestHost *t) {
        pci_host_free(t->host);
        root_free(t->root);
        /* remove the parent temp dir too */
        char *slash = strrchr(t->dir, '/');
        *slash = '\0';
        test_tmpdir_remove(t->dir);
        *t = (TestHost){};
}
