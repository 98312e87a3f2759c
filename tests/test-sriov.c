/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SR-IOV on simulated hosts: the safe VF count change, vfio binding, refusals, rollback, persistence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <cmocka.h>

#include "basic/fileio.h"
#include "core/sriov/sriov.h"
#include "core/passthrough/vfio.h"
#include "helpers.h"
#include "sim/sim.h"

#define FLEX_PF "0000:16:00.0"

static int numvfs(TestHost *t, const char *pf) {
        char *s = NULL;
        int n = -1;
        assert_int_equal(root_read_attr(t->root, &s, "sys/bus/pci/devices/%s/sriov_numvfs", pf), 0);
        assert_int_equal(parse_int(s, &n), 0);
        free(s);
        return n;
}

static char *driver_of(TestHost *t, const char *bdf) {
        char *p = root_path(t->root, "sys/bus/pci/devices/%s/driver", bdf);
        char *v = NULL;
        (void)readlink_base(p, &v);
        free(p);
        return v;
}

static void assert_vfs_on(TestHost *t, const char *pf, int n, const char *driver) {
        char **vfs = NULL;
        assert_int_equal(sriov_vfs(t->root, pf, &vfs), 0);
        assert_int_equal(strv_length(vfs), n);
        for (char **v = vfs; *v; v++) {
                char *d = driver_of(t, *v);
                if (driver) {
                        assert_non_null(d);
                        assert_string_equal(d, driver);
                } else
                        assert_null(d);
                free(d);
        }
        strv_free(vfs);
}

static SriovOptions opts(bool vfio, bool force) {
        return (SriovOptions){.vfio = vfio, .force = force, .settle_ms = 0};
}

static void hold_group(TestHost *t, int group) {
        char *fd = root_path(t->root, "proc/4242/fd");
        assert_int_equal(mkdir_p(fd, 0755), 0);
        char *link = root_path(t->root, "proc/4242/fd/7"), *target = strdup_printf("/dev/vfio/%d", group);
        assert_int_equal(symlink(target, link), 0);
        char *comm = root_path(t->root, "proc/4242/comm");
        assert_int_equal(write_text(comm, "qemu-system-x86\n"), 0);
        free(fd);
        free(link);
        free(target);
        free(comm);
}

static int group_of(TestHost *t, const char *bdf) {
        char *p = root_path(t->root, "sys/bus/pci/devices/%s/iommu_group", bdf), *g = NULL;
        int n = -1;
        assert_int_equal(readlink_base(p, &g), 0);
        assert_int_equal(parse_int(g, &n), 0);
        free(p);
        free(g);
        return n;
}

static void test_set_vfio_and_back(void **state) {
        TestHost t;
        test_host_open(&t, "flex-sriov");
        SriovOptions o = opts(true, false);
        SriovReport rep;
        assert_int_equal(sriov_set(t.root, FLEX_PF, 4, &o, &rep), 0);
        assert_int_equal(rep.error.error, 0);
        assert_int_equal(rep.from_vfs, 0);
        assert_int_equal(rep.num_vfs, 4);
        assert_true(rep.changed);
        assert_int_equal(strv_length(rep.vfs), 4);
        assert_string_equal(rep.vfs[0], "0000:16:00.1");
        int g = group_of(&t, rep.vfs[3]);
        sriov_report_done(&rep);
        assert_int_equal(numvfs(&t, FLEX_PF), 4);
        assert_vfs_on(&t, FLEX_PF, 4, "vfio-pci");
        assert_true(root_exists(t.root, "dev/vfio/%d", g));
        /* autoprobe was turned off for the creation only */
        assert_int_equal(sriov_autoprobe(t.root, FLEX_PF), 1);

        /* same count again: nothing to do */
        assert_int_equal(sriov_set(t.root, FLEX_PF, 4, &o, &rep), 0);
        assert_false(rep.changed);
        sriov_report_done(&rep);

        /* 4 -> 2 without vfio: through 0 (the kernel refuses 4 -> 2 directly), VFs on the host driver */
        o.vfio = false;
        assert_int_equal(sriov_set(t.root, FLEX_PF, 2, &o, &rep), 0);
        assert_int_equal(rep.from_vfs, 4);
        assert_int_equal(rep.num_vfs, 2);
        sriov_report_done(&rep);
        assert_vfs_on(&t, FLEX_PF, 2, "i915");
        assert_false(root_exists(t.root, "dev/vfio/%d", g));
        /* the passthrough records of the removed VFs are gone */
        assert_false(root_exists(t.root, "var/lib/gpuvirt/passthrough/0000:16:00.4"));

        /* same count, now --vfio: the VFs move without being recreated */
        o.vfio = true;
        assert_int_equal(sriov_set(t.root, FLEX_PF, 2, &o, &rep), 0);
        assert_true(rep.changed);
        sriov_report_done(&rep);
        assert_vfs_on(&t, FLEX_PF, 2, "vfio-pci");

        assert_int_equal(sriov_set(t.root, FLEX_PF, 0, &o, &rep), 0);
        assert_int_equal(rep.num_vfs, 0);
        sriov_report_done(&rep);
        assert_int_equal(numvfs(&t, FLEX_PF), 0);
        test_host_close(&t);
}

static void test_refusals(void **state) {
        TestHost t;
        test_host_open(&t, "flex-sriov");
        SriovOptions o = opts(false, false);
        SriovReport rep;
        assert_int_equal(sriov_set(t.root, FLEX_PF, 32, &o, &rep), -ERANGE);
        assert_non_null(strstr(rep.error.message, "at most 31"));
        sriov_report_done(&rep);
        assert_int_equal(numvfs(&t, FLEX_PF), 0);

        assert_int_equal(sriov_set(t.root, "0000:16:zz.0", 1, &o, &rep), -EINVAL);
        sriov_report_done(&rep);
        assert_int_equal(sriov_set(t.root, "0000:7f:00.0", 1, &o, &rep), -ENODEV);
        sriov_report_done(&rep);
        /* a bridge has no SR-IOV */
        assert_int_equal(sriov_set(t.root, "0000:15:01.0", 1, &o, &rep), -EINVAL);
        assert_non_null(strstr(rep.error.message, "no SR-IOV"));
        sriov_report_done(&rep);

        assert_int_equal(sriov_set(t.root, FLEX_PF, 2, &o, &rep), 0);
        sriov_report_done(&rep);
        /* a VF is not a PF */
        assert_int_equal(sriov_set(t.root, "0000:16:00.1", 1, &o, &rep), -EINVAL);
        assert_non_null(strstr(rep.error.message, "virtual function"));
        sriov_report_done(&rep);

        /* a VM holds a VF's group: refused, VFs untouched; --force proceeds */
        o.vfio = true;
        assert_int_equal(sriov_set(t.root, FLEX_PF, 2, &o, &rep), 0);
        sriov_report_done(&rep);
        hold_group(&t, group_of(&t, "0000:16:00.2"));
        assert_int_equal(sriov_set(t.root, FLEX_PF, 0, &o, &rep), -EBUSY);
        assert_non_null(strstr(rep.error.message, "4242 (qemu-system-x86)"));
        assert_non_null(strstr(rep.error.message, "0000:16:00.2"));
        sriov_report_done(&rep);
        assert_vfs_on(&t, FLEX_PF, 2, "vfio-pci");
        char *busy = sriov_vf_busy(t.root, "0000:16:00.2");
        assert_non_null(busy);
        free(busy);
        assert_null(sriov_vf_busy(t.root, "0000:16:00.1"));
        o.force = true;
        assert_int_equal(sriov_set(t.root, FLEX_PF, 0, &o, &rep), 0);
        sriov_report_done(&rep);
        assert_int_equal(numvfs(&t, FLEX_PF), 0);
        test_host_close(&t);
}

/* Every kernel write of a 2 -> 3 --vfio change fails in turn: the PF always ends as it was. */
static void test_rollback_every_write(void **state) {
        for (int n = 1; n <= 12; n++) {
                TestHost t;
                test_host_open(&t, "flex-sriov");
                SriovOptions o = opts(true, false);
                SriovReport rep;
                assert_int_equal(sriov_set(t.root, FLEX_PF, 2, &o, &rep), 0);
                sriov_report_done(&rep);
                char at[8];
                snprintf(at, sizeof at, "@%d", n);
                assert_int_equal(sim_inject_fault(t.dir, at, EIO), 0);
                int r = sriov_set(t.root, FLEX_PF, 3, &o, &rep);
                if (r == 0) {
                        /* the fault hit the last write (autoprobe back on, best effort) or fell after it: the
                         * change completed */
                        assert_int_equal(numvfs(&t, FLEX_PF), 3);
                        assert_vfs_on(&t, FLEX_PF, 3, "vfio-pci");
                } else {
                        assert_int_equal(r, -EIO);
                        assert_non_null(rep.error.message);
                        assert_int_equal(numvfs(&t, FLEX_PF), 2);
                        assert_vfs_on(&t, FLEX_PF, 2, "vfio-pci");
                        assert_int_equal(sriov_autoprobe(t.root, FLEX_PF), 1);
                }
                sriov_report_done(&rep);
                test_host_close(&t);
                if (r == 0)
                        return;
        }
        fail_msg("a 2 -> 3 change took more than 12 writes");
}

static void test_probe_failure_rolls_back(void **state) {
        TestHost t;
        test_host_open(&t, "mi25-sriov");
        const char *pf = "0000:03:00.0";
        SriovOptions o = opts(true, false);
        SriovReport rep;
        assert_int_equal(sim_inject_fault(t.dir, "probe:vfio-pci", ENOMEM), 0);
        assert_int_equal(sriov_set(t.root, pf, 4, &o, &rep), -ENOMEM);
        assert_non_null(strstr(rep.error.message, "vfio-pci"));
        assert_non_null(strstr(rep.error.message, "put back"));
        sriov_report_done(&rep);
        assert_int_equal(numvfs(&t, pf), 0);
        /* without a fault: VFs on vfio-pci, in their own groups */
        assert_int_equal(sriov_set(t.root, pf, 4, &o, &rep), 0);
        assert_true(group_of(&t, rep.vfs[0]) != group_of(&t, rep.vfs[1]));
        sriov_report_done(&rep);
        assert_vfs_on(&t, pf, 4, "vfio-pci");
        test_host_close(&t);
}

static void test_vendor_vgpu_vf_busy(void **state) {
        TestHost t;
        test_host_open(&t, "h100");
        const char *pf = "0000:16:00.0";
        int before = numvfs(&t, pf);
        assert_true(before > 0);
        assert_int_equal(root_write(t.root, "1044", "sys/bus/pci/devices/0000:16:00.6/nvidia/current_vgpu_type"), 0);
        SriovOptions o = opts(false, false);
        SriovReport rep;
        assert_int_equal(sriov_set(t.root, pf, 0, &o, &rep), -EBUSY);
        assert_non_null(strstr(rep.error.message, "vGPU type 1044"));
        sriov_report_done(&rep);
        assert_int_equal(numvfs(&t, pf), before);
        test_host_close(&t);
}

/* A VF that is an mdev parent (Ampere vGPU) with mediated devices is in use. */
static void test_vf_mdev_parent_busy(void **state) {
        TestHost t;
        test_host_open(&t, "flex-sriov");
        SriovOptions o = opts(false, false);
        SriovReport rep;
        assert_int_equal(sriov_set(t.root, FLEX_PF, 2, &o, &rep), 0);
        sriov_report_done(&rep);
        char *dd = root_path(t.root, "sys/bus/pci/devices/0000:16:00.2/mdev_supported_types/nvidia-500/devices");
        assert_int_equal(mkdir_p(dd, 0755), 0);
        assert_null(sriov_vf_busy(t.root, "0000:16:00.2")); /* types, no devices: free */
        char *dev = strdup_printf("%s/" "3f1c4a52-7c2e-4b8a-9d0e-1a2b3c4d5e6f", dd);
        assert_int_equal(write_text(dev, ""), 0);
        char *busy = sriov_vf_busy(t.root, "0000:16:00.2");
        assert_non_null(busy);
        assert_non_null(strstr(busy, "1 mediated device"));
        free(busy);
        assert_int_equal(sriov_set(t.root, FLEX_PF, 0, &o, &rep), -EBUSY);
        sriov_report_done(&rep);
        assert_int_equal(numvfs(&t, FLEX_PF), 2);
        free(dd);
        free(dev);
        test_host_close(&t);
}

static void test_dry_run_changes_nothing(void **state) {
        TestHost t;
        test_host_open(&t, "flex-sriov");
        Root *dry;
        assert_int_equal(root_open(t.dir, ROOT_DRY_RUN, &dry), 0);
        FILE *sink = fopen("/dev/null", "w");
        root_set_dry_run_stream(dry, sink);
        SriovOptions o = opts(true, false);
        SriovReport rep;
        assert_int_equal(sriov_set(dry, FLEX_PF, 3, &o, &rep), 0);
        /* the VFs the PF would get, from its offset and stride */
        assert_int_equal(strv_length(rep.vfs), 3);
        assert_string_equal(rep.vfs[2], "0000:16:00.3");
        sriov_report_done(&rep);
        assert_int_equal(numvfs(&t, FLEX_PF), 0);
        root_free(dry);
        fclose(sink);
        test_host_close(&t);
}

static void test_persist(void **state) {
        TestHost t;
        test_host_open(&t, "flex-sriov");
        unsigned n;
        bool vfio;
        GvError err = {};
        assert_int_equal(sriov_persist_read(t.root, FLEX_PF, &n, &vfio, &err), -ENOENT);
        assert_int_equal(err.error, ENOENT);
        gv_error_done(&err);
        assert_int_equal(sriov_persist_write(t.root, FLEX_PF, 7, true), 0);
        assert_int_equal(sriov_persist_read(t.root, FLEX_PF, &n, &vfio, &err), 0);
        assert_int_equal(n, 7);
        assert_true(vfio);
        char *p = root_path(t.root, SRIOV_PERSIST_DIR "/%s", FLEX_PF);
        assert_int_equal(write_text(p, "{\"num_vfs\":\"7\"}\n"), 0);
        assert_int_equal(sriov_persist_read(t.root, FLEX_PF, &n, &vfio, &err), -EBADMSG);
        assert_int_equal(err.error, EBADMSG);
        assert_non_null(strstr(err.message, "'num_vfs' is \"7\", expected a whole number"));
        gv_error_done(&err);
        assert_int_equal(write_text(p, "not json"), 0);
        assert_int_equal(sriov_persist_read(t.root, FLEX_PF, &n, &vfio, &err), -EBADMSG);
        assert_non_null(strstr(err.message, ":1:2: "));
        gv_error_done(&err);
        free(p);
        assert_int_equal(sriov_persist_remove(t.root, FLEX_PF), 0);
        assert_int_equal(sriov_persist_read(t.root, FLEX_PF, &n, &vfio, &err), -ENOENT);
        assert_int_equal(err.error, ENOENT);
        gv_error_done(&err);
        test_host_close(&t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_set_vfio_and_back),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_rollback_every_write),
                cmocka_unit_test(test_probe_failure_rolls_back),
                cmocka_unit_test(test_vendor_vgpu_vf_busy),
                cmocka_unit_test(test_vf_mdev_parent_busy),
                cmocka_unit_test(test_dry_run_changes_nothing),
                cmocka_unit_test(test_persist),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
