/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The knowledge table of gpuvirt advise: every mode, unit path and workload has its row and its source, and
 * the rows say what the comparison says. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <cmocka.h>

#include "basic/macro.h"
#include "core/advise/knowledge.h"

static void test_modes(void **state) {
        assert_null(mode_facts(GPU_MODE_HOST));
        for (GpuMode m = GPU_MODE_PASSTHROUGH; m < _GPU_MODE_MAX; m++) {
                const ModeFacts *f = mode_facts(m);
                assert_non_null(f);
                assert_int_equal(f->mode, m);
                assert_non_null(strstr(f->source, "linux-gpu-virt.md section 10"));
        }
        /* the comparison: overhead, migration, isolation */
        assert_string_equal(mode_facts(GPU_MODE_PASSTHROUGH)->overhead, "< 5%");
        assert_false(mode_facts(GPU_MODE_PASSTHROUGH)->live_migration);
        assert_int_equal(mode_facts(GPU_MODE_PASSTHROUGH)->isolation, ISOLATION_PHYSICAL);
        assert_string_equal(mode_facts(GPU_MODE_SRIOV)->overhead, "5-10%");
        assert_int_equal(mode_facts(GPU_MODE_SRIOV)->isolation, ISOLATION_HARDWARE);
        assert_string_equal(mode_facts(GPU_MODE_VGPU)->overhead, "10-15%");
        assert_int_equal(mode_facts(GPU_MODE_VGPU)->isolation, ISOLATION_DRIVER);
        assert_string_equal(mode_facts(GPU_MODE_MIG)->overhead, "< 5%");
        assert_int_equal(mode_facts(GPU_MODE_MIG)->isolation, ISOLATION_HARDWARE);
}

static void test_migration(void **state) {
        for (UnitPath p = 0; p < _UNIT_PATH_MAX; p++) {
                const MigrationFacts *f = migration_facts(p);
                assert_non_null(f);
                assert_int_equal(f->path, p);
                assert_true(f->source && *f->source && f->why && *f->why);
                /* what migrates needs the versions of linux-gpu-virt.md section 9 */
                if (f->migratable) {
                        assert_int_equal(f->libvirt_min, 8006000);
                        assert_int_equal(f->qemu_min, 8001000);
                        assert_int_equal(f->kernel_min, 5018);
                }
        }
        assert_false(migration_facts(UNIT_PATH_VFIO_PCI)->migratable);
        assert_true(migration_facts(UNIT_PATH_MDEV_NVIDIA)->migratable);
        assert_true(migration_facts(UNIT_PATH_VF_NVIDIA)->migratable);
        assert_false(migration_facts(UNIT_PATH_MDEV_GVTG)->migratable);
        assert_false(migration_facts(UNIT_PATH_MIG)->migratable);
}

static void test_workloads(void **state) {
        for (Workload w = 0; w < _WORKLOAD_MAX; w++) {
                const WorkloadFacts *f = workload_facts(w);
                assert_non_null(f);
                assert_int_equal(f->workload, w);
                assert_true(f->n_order >= 1 && f->n_order <= ELEMENTSOF(f->order));
                for (size_t i = 0; i < f->n_order; i++)
                        assert_non_null(mode_facts(f->order[i]));
                assert_true(f->source && *f->source);
                assert_int_equal(workload_from_string(workload_to_string(w)), w);
        }
        /* performance first: passthrough; multi-tenant: MIG; desktops: vGPU */
        assert_int_equal(workload_facts(WORKLOAD_TRAINING)->order[0], GPU_MODE_PASSTHROUGH);
        assert_int_equal(workload_facts(WORKLOAD_INFERENCE)->order[0], GPU_MODE_MIG);
        assert_int_equal(workload_facts(WORKLOAD_VDI)->order[0], GPU_MODE_VGPU);
        assert_int_equal(workload_from_string("gaming"), _WORKLOAD_INVALID);
        for (Isolation i = 0; i < _ISOLATION_MAX; i++)
                assert_int_equal(isolation_from_string(isolation_to_string(i)), i);
        assert_true(ISOLATION_PHYSICAL > ISOLATION_HARDWARE && ISOLATION_HARDWARE > ISOLATION_DRIVER);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_modes),
                cmocka_unit_test(test_migration),
                cmocka_unit_test(test_workloads),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
