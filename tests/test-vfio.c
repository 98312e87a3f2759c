/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Passthrough on simulated hosts: the bind sequence, refusals, rollback at every write, persistence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <cmocka.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "core/host/bootcfg.h"
#include "core/host/check.h"
#include "core/passthrough/persist.h"
#include "core/passthrough/vfio.h"
#include "helpers.h"
#include "sim/sim.h"

static char *driver_of(TestHost *t, const char *bdf) {
        char *p = root_path(t->root, "sys/bus/pci/devices/%s/driver", bdf);
        char *v = NULL;
        (void)readlink_base(p, &v);
        free(p);
        return v;
}

static void assert_driver(TestHost *t, const char *bdf, const char *want) {
        char *d = driver_of(t, bdf);
        if (!want)
                assert_null(d);
        else {
                assert_non_null(d);
                assert_string_equal(d, want);
        }
        free(d);
}

static VfioOptions opts(bool force, char **include) {
        return (VfioOptions){.force = force, .include = include, .settle_ms = 0};
}

static void test_enable_disable(void **state) {
        TestHost t;
        test_host_open(&t, "dgx-a100");
        const char *gpu = "0000:23:00.0";
        PciDevice *d = pci_host_find(t.host, gpu);
        assert_non_null(d);
        int group = d->iommu_group;
        VfioOptions o = opts(false, NULL);
        VfioReport rep;

        assert_int_equal(vfio_enable(t.root, gpu, &o, &rep), 0);
        assert_int_equal(rep.error.error, 0);
        assert_int_equal(rep.n_changes, 1);
        assert_true(rep.changes[0].changed);
        assert_string_equal(rep.changes[0].from, "nvidia");
        vfio_report_done(&rep);
        assert_driver(&t, gpu, "vfio-pci");
        assert_true(root_exists(t.root, "dev/vfio/%d", group));
        char *saved = vfio_saved_driver(t.root, gpu);
        assert_string_equal(saved, "nvidia");
        free(saved);

        /* already enabled: no-op */
        assert_int_equal(vfio_enable(t.root, gpu, &o, &rep), 0);
        assert_false(rep.changes[0].changed);
        vfio_report_done(&rep);

        assert_int_equal(vfio_disable(t.root, gpu, &o, &rep), 0);
        vfio_report_done(&rep);
        assert_driver(&t, gpu, "nvidia");
        assert_false(root_exists(t.root, "dev/vfio/%d", group));
        assert_null(vfio_saved_driver(t.root, gpu));
        /* driver_override is clear again */
        char *ovr = NULL;
        assert_int_equal(root_read_attr(t.root, &ovr, "sys/bus/pci/devices/%s/driver_override", gpu), 0);
        assert_string_equal(ovr, "(null)");
        free(ovr);
        test_host_close(&t);
}

static void test_refusals(void **state) {
        TestHost t;
        test_host_open(&t, "workstation");
        VfioReport rep;
        VfioOptions o = opts(false, NULL);
        /* boot VGA */
        assert_int_equal(vfio_enable(t.root, "0000:01:00.0", &o, &rep), -EPERM);
        assert_non_null(strstr(rep.error.message, "boot VGA"));
        /* what failed, on which device, at which step; the way out is a hint, the option is the CLI's */
        assert_int_equal(rep.error.error, EPERM);
        assert_string_equal(rep.error.device, "0000:01:00.0");
        assert_string_equal(rep.error.step, "refuse");
        assert_int_equal(rep.error.hint, GV_HINT_FORCE);
        assert_null(strstr(rep.error.message, "--"));
        vfio_report_done(&rep);
        assert_driver(&t, "0000:01:00.0", "nvidia");
        /* foreign member: refused even with --force unless included */
        o = opts(true, NULL);
        assert_int_equal(vfio_enable(t.root, "0000:02:00.0", &o, &rep), -EPERM);
        assert_non_null(strstr(rep.error.message, "0000:03:00.0"));
        assert_string_equal(rep.error.device, "0000:03:00.0");
        assert_int_equal(rep.error.hint, GV_HINT_INCLUDE);
        assert_null(strstr(rep.error.message, "--"));
        vfio_report_done(&rep);
        char *inc[] = {(char *)"0000:03:00.0", NULL};
        o = opts(false, inc);
        assert_int_equal(vfio_enable(t.root, "0000:02:00.0", &o, &rep), -EPERM);
        vfio_report_done(&rep);
        assert_driver(&t, "0000:02:00.0", "nvidia");
        assert_driver(&t, "0000:03:00.0", "xhci_hcd");
        o = opts(true, inc);
        assert_int_equal(vfio_enable(t.root, "0000:02:00.0", &o, &rep), 0);
        vfio_report_done(&rep);
        assert_driver(&t, "0000:02:00.0", "vfio-pci");
        assert_driver(&t, "0000:02:00.1", "vfio-pci");
        assert_driver(&t, "0000:03:00.0", "vfio-pci");
        /* bridges of the group never move */
        assert_driver(&t, "0000:00:1c.0", "pcieport");

        /* a process holding the group node blocks release unless forced */
        PciDevice *d = pci_host_find(t.host, "0000:02:00.0");
        char *fd = root_path(t.root, "proc/4242/fd");
        assert_int_equal(mkdir_p(fd, 0755), 0);
        char *link = root_path(t.root, "proc/4242/fd/7"), *target = strdup_printf("/dev/vfio/%d", d->iommu_group);
        assert_int_equal(symlink(target, link), 0);
        char *comm = root_path(t.root, "proc/4242/comm");
        assert_int_equal(write_text(comm, "qemu-system-x86\n"), 0);
        o = opts(false, NULL);
        assert_int_equal(vfio_disable(t.root, "0000:02:00.0", &o, &rep), -EBUSY);
        assert_non_null(strstr(rep.error.message, "4242 (qemu-system-x86)"));
        vfio_report_done(&rep);
        assert_driver(&t, "0000:02:00.0", "vfio-pci");
        assert_int_equal(unlink(link), 0);
        assert_int_equal(vfio_disable(t.root, "0000:02:00.0", &o, &rep), 0);
        vfio_report_done(&rep);
        assert_driver(&t, "0000:02:00.0", "nvidia");
        assert_driver(&t, "0000:02:00.1", "snd_hda_intel");
        assert_driver(&t, "0000:03:00.0", "xhci_hcd");
        free(fd);
        free(link);
        free(target);
        free(comm);

        /* malformed and absent devices */
        assert_int_equal(vfio_enable(t.root, "0000:zz:00.0", &o, &rep), -EINVAL);
        vfio_report_done(&rep);
        assert_int_equal(vfio_enable(t.root, "0000:7f:00.0", &o, &rep), -ENODEV);
        vfio_report_done(&rep);
        test_host_close(&t);
}

static void test_no_iommu(void **state) {
        TestHost t;
        test_host_open(&t, "no-iommu");
        VfioReport rep;
        VfioOptions o = opts(true, NULL);
        assert_int_equal(vfio_enable(t.root, "0000:3b:00.0", &o, &rep), -ENXIO);
        assert_non_null(strstr(rep.error.message, "IOMMU"));
        vfio_report_done(&rep);
        assert_driver(&t, "0000:3b:00.0", "nvidia");
        test_host_close(&t);
}

/* The number of kernel writes an enable makes on the workstation's boot GPU (two functions). */
static int count_writes(TestHost *t, const char *bdf, bool enable) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        Root *dry;
        assert_int_equal(root_open(t->dir, ROOT_DRY_RUN, &dry), 0);
        root_set_dry_run_stream(dry, f);
        VfioReport rep;
        VfioOptions o = opts(true, NULL);
        assert_int_equal(enable ? vfio_enable(dry, bdf, &o, &rep) : vfio_disable(dry, bdf, &o, &rep), 0);
        vfio_report_done(&rep);
        root_free(dry);
        fclose(f);
        int n = 0;
        for (const char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
                if (strncmp(line, "write ", 6) == 0)
                        n++;
        free(buf);
        return n;
}

/* Inject a failure into each kernel write of the sequence in turn: every function must go back. */
static void test_rollback_every_write(void **state) {
        TestHost t;
        test_host_open(&t, "workstation");
        const char *gpu = "0000:01:00.0", *audio = "0000:01:00.1";
        assert_int_equal(sim_module_load(t.dir, "vfio-pci"), 0);
        int n = count_writes(&t, gpu, true);
        /* override + unbind + probe for each of the two functions */
        assert_int_equal(n, 6);
        static const int errs[] = {EBUSY, EIO, ENODEV, EINVAL};
        for (int k = 1; k <= n; k++) {
                char at[16];
                snprintf(at, sizeof at, "@%d", k);
                int e = errs[k % 4];
                assert_int_equal(sim_inject_fault(t.dir, at, e), 0);
                VfioReport rep;
                VfioOptions o = opts(true, NULL);
                int r = vfio_enable(t.root, gpu, &o, &rep);
                assert_int_equal(r, -e);
                assert_non_null(rep.error.message);
                assert_non_null(strstr(rep.error.message, "failed"));
                assert_non_null(strstr(rep.error.message, errno_to_name(e)));
                assert_non_null(strstr(rep.error.message, "returned to its previous driver"));
                vfio_report_done(&rep);
                assert_driver(&t, gpu, "nvidia");
                assert_driver(&t, audio, "snd_hda_intel");
                assert_false(root_exists(t.root, "dev/vfio/6"));
                assert_null(vfio_saved_driver(t.root, gpu));
                assert_null(vfio_saved_driver(t.root, audio));
        }
        /* a probe that fails leaves the function unbound: caught and rolled back */
        assert_int_equal(sim_inject_fault(t.dir, "probe:vfio-pci", EINVAL), 0);
        VfioReport rep;
        VfioOptions o = opts(true, NULL);
        assert_true(vfio_enable(t.root, gpu, &o, &rep) < 0);
        assert_non_null(strstr(rep.error.message, "drivers_probe"));
        vfio_report_done(&rep);
        assert_driver(&t, gpu, "nvidia");
        assert_driver(&t, audio, "snd_hda_intel");

        /* the same for release: every write of the disable sequence */
        assert_int_equal(vfio_enable(t.root, gpu, &o, &rep), 0);
        vfio_report_done(&rep);
        n = count_writes(&t, gpu, false);
        assert_true(n >= 6);
        for (int k = 1; k <= n; k++) {
                char at[16];
                snprintf(at, sizeof at, "@%d", k);
                assert_int_equal(sim_inject_fault(t.dir, at, EBUSY), 0);
                int r = vfio_disable(t.root, gpu, &o, &rep);
                if (r == 0) {
                        /* a failed explicit bind falls back to a probe: still released */
                        vfio_report_done(&rep);
                        assert_driver(&t, gpu, "nvidia");
                        assert_int_equal(vfio_enable(t.root, gpu, &o, &rep), 0);
                        vfio_report_done(&rep);
                        continue;
                }
                assert_int_equal(r, -EBUSY);
                vfio_report_done(&rep);
                assert_driver(&t, gpu, "vfio-pci");
                assert_driver(&t, audio, "vfio-pci");
                assert_true(root_exists(t.root, "dev/vfio/6"));
        }
        test_host_close(&t);
}

static void test_dry_run(void **state) {
        TestHost t;
        test_host_open(&t, "dgx-a100");
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        Root *dry;
        assert_int_equal(root_open(t.dir, ROOT_DRY_RUN, &dry), 0);
        root_set_dry_run_stream(dry, f);
        VfioReport rep;
        VfioOptions o = opts(false, NULL);
        assert_int_equal(vfio_enable(dry, "0000:23:00.0", &o, &rep), 0);
        vfio_report_done(&rep);
        root_free(dry);
        fclose(f);
        /* in order: override, unbind, probe */
        char *a = strstr(buf, "0000:23:00.0/driver_override <- \"vfio-pci\"");
        char *b = strstr(buf, "drivers/nvidia/unbind <- \"0000:23:00.0\"");
        char *c = strstr(buf, "drivers_probe <- \"0000:23:00.0\"");
        assert_non_null(a);
        assert_non_null(b);
        assert_non_null(c);
        assert_true(a < b && b < c);
        free(buf);
        assert_driver(&t, "0000:23:00.0", "nvidia");
        assert_null(vfio_saved_driver(t.root, "0000:23:00.0"));
        test_host_close(&t);
}

static void test_persist(void **state) {
        TestHost t;
        test_host_open(&t, "workstation");
        char *inc[] = {(char *)"0000:03:00.0", NULL};
        assert_int_equal(vfio_persist_add(t.root, "0000:02:00.0", true, inc), 0);
        bool force = false;
        char **l = NULL;
        GvError err = {};
        assert_int_equal(vfio_persist_read(t.root, "0000:02:00.0", &force, &l, &err), 0);
        assert_int_equal(err.error, 0);
        assert_true(force);
        assert_string_equal(l[0], "0000:03:00.0");
        strv_free(l);
        assert_int_equal(vfio_persist_remove(t.root, "0000:02:00.0"), 0);
        assert_int_equal(vfio_persist_read(t.root, "0000:02:00.0", &force, &l, &err), -ENOENT);
        gv_error_done(&err);

        /* --ids merges with an existing configuration and keeps its other lines */
        char *p = root_path(t.root, "etc/modprobe.d");
        assert_int_equal(mkdir_p(p, 0755), 0);
        free(p);
        p = root_path(t.root, "etc/modprobe.d/vfio.conf");
        assert_int_equal(write_text(p, "# mine\noptions vfio-pci ids=10de:1aef disable_vga=1\nsoftdep nvidia pre: vfio-pci\n"), 0);
        char *ids[] = {(char *)"10de:2206", (char *)"10de:1aef", NULL};
        IdsPersistResult res;
        assert_int_equal(vfio_persist_ids(t.root, ids, NULL, false, NULL, &res), 0);
        assert_string_equal(res.ids, "10de:1aef,10de:2206");
        assert_string_equal(res.initramfs_command, "update-initramfs -u");
        ids_persist_result_done(&res);
        char *text = NULL;
        assert_int_equal(read_full(p, 65536, (void **)&text, NULL), 0);
        assert_non_null(strstr(text, "# mine\n"));
        assert_non_null(strstr(text, "options vfio-pci disable_vga=1\n"));
        assert_non_null(strstr(text, "options vfio-pci ids=10de:1aef,10de:2206\n"));
        assert_non_null(strstr(text, "softdep snd_hda_intel pre: vfio-pci\n"));
        /* softdep nvidia not duplicated */
        char *first = strstr(text, "softdep nvidia pre:");
        assert_null(strstr(first + 1, "softdep nvidia pre:"));
        free(text);
        /* idempotent */
        assert_int_equal(vfio_persist_ids(t.root, ids, NULL, false, NULL, &res), 0);
        ids_persist_result_done(&res);
        char *text2 = NULL;
        assert_int_equal(read_full(p, 65536, (void **)&text2, NULL), 0);
        text = NULL;
        assert_int_equal(read_full(p, 65536, (void **)&text, NULL), 0);
        assert_string_equal(text, text2);
        free(text);
        free(text2);
        free(p);
        p = root_path(t.root, "etc/modules-load.d/vfio-pci.conf");
        assert_int_equal(read_attr(p, &text), 0);
        assert_string_equal(text, "vfio-pci");
        free(text);
        free(p);

        /* --remove: one ID goes; with the last one, ids= and modules-load.d's vfio-pci go, and in this file
         * of the user's everything else stays (its softdep nvidia included) */
        char *one[] = {(char *)"10DE:2206", NULL};
        assert_int_equal(vfio_persist_ids(t.root, one, NULL, true, NULL, &res), 0);
        assert_string_equal(res.ids, "10de:1aef");
        ids_persist_result_done(&res);
        assert_int_equal(vfio_persist_ids(t.root, ids, NULL, true, NULL, &res), 0);
        assert_null(res.ids);
        ids_persist_result_done(&res);
        p = root_path(t.root, "etc/modprobe.d/vfio.conf");
        assert_int_equal(read_full(p, 65536, (void **)&text, NULL), 0);
        assert_string_equal(text, "# mine\noptions vfio-pci disable_vga=1\nsoftdep nvidia pre: vfio-pci\n"
                                  "softdep nouveau pre: vfio-pci\nsoftdep amdgpu pre: vfio-pci\n"
                                  "softdep radeon pre: vfio-pci\nsoftdep snd_hda_intel pre: vfio-pci\n");
        free(text);
        free(p);
        p = root_path(t.root, "etc/modules-load.d/vfio-pci.conf");
        assert_false(path_exists(p));
        free(p);

        /* a file gpuvirt created goes entirely with its last ID, with the softdep for the driver the
         * device had (bochs: not among the usual GPU drivers) */
        p = root_path(t.root, "etc/modprobe.d/vfio.conf");
        assert_int_equal(unlink(p), 0);
        char *mods[] = {(char *)"bochs", (char *)"nvidia", NULL};
        assert_int_equal(vfio_persist_ids(t.root, ids, mods, false, NULL, &res), 0);
        ids_persist_result_done(&res);
        assert_int_equal(read_full(p, 65536, (void **)&text, NULL), 0);
        assert_non_null(strstr(text, "\nsoftdep bochs pre: vfio-pci\n"));
        first = strstr(text, "softdep nvidia pre:");
        assert_non_null(first);
        assert_null(strstr(first + 1, "softdep nvidia pre:"));
        free(text);
        assert_int_equal(vfio_persist_ids(t.root, ids, NULL, true, NULL, &res), 0);
        assert_null(res.ids);
        ids_persist_result_done(&res);
        assert_false(path_exists(p));
        free(p);
        /* removing what is not there changes nothing and creates nothing */
        assert_int_equal(vfio_persist_ids(t.root, ids, NULL, true, NULL, &res), 0);
        assert_null(res.ids);
        ids_persist_result_done(&res);
        p = root_path(t.root, "etc/modprobe.d/vfio.conf");
        assert_false(path_exists(p));
        free(p);
        test_host_close(&t);
}

static void test_host_iommu(void **state) {
        /* Intel host without the IOMMU: the args are added, other args kept, backup written */
        TestHost t;
        test_host_open(&t, "no-iommu");
        char *before = NULL;
        assert_int_equal(root_read_attr(t.root, &before, "etc/default/grub"), 0);
        IommuEdit e;
        GvError err = {};
        CpuVendor v = cpu_vendor_read(t.root);
        assert_int_equal(v, CPU_VENDOR_INTEL);
        assert_int_equal(boot_config_set_args(t.root, iommu_kernel_args(v), iommu_kernel_off_args(v), &e, &err), 0);
        assert_true(e.changed);
        assert_string_equal(e.file, "etc/default/grub");
        assert_non_null(strstr(e.new_cmdline, "intel_iommu=on iommu=pt"));
        assert_string_equal(e.regen, "update-grub");
        char *bak = NULL;
        assert_int_equal(root_read_attr(t.root, &bak, "%s", e.backup), 0);
        assert_string_equal(bak, before);
        iommu_edit_done(&e);
        char *after = NULL;
        assert_int_equal(root_read_attr(t.root, &after, "etc/default/grub"), 0);
        assert_non_null(strstr(after, "GRUB_CMDLINE_LINUX=\""));
        assert_non_null(strstr(after, "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\""));
        /* second run changes nothing */
        assert_int_equal(boot_config_set_args(t.root, iommu_kernel_args(v), iommu_kernel_off_args(v), &e, &err), 0);
        assert_false(e.changed);
        iommu_edit_done(&e);
        free(before);
        free(after);
        free(bak);
        /* and the readiness hint shows the same line */
        test_host_close(&t);

        /* AMD: iommu=pt only, amd_iommu=off removed */
        test_host_open(&t, "dgx-a100");
        char *g = root_path(t.root, "etc/default/grub");
        assert_int_equal(write_text(g, "GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX=\"console=ttyS0 amd_iommu=off\"\n"), 0);
        free(g);
        v = cpu_vendor_read(t.root);
        assert_int_equal(v, CPU_VENDOR_AMD);
        assert_int_equal(boot_config_set_args(t.root, iommu_kernel_args(v), iommu_kernel_off_args(v), &e, &err), 0);
        assert_string_equal(e.new_cmdline, "console=ttyS0 iommu=pt");
        iommu_edit_done(&e);
        test_host_close(&t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_enable_disable), cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_no_iommu),       cmocka_unit_test(test_rollback_every_write),
                cmocka_unit_test(test_dry_run),        cmocka_unit_test(test_persist),
                cmocka_unit_test(test_host_iommu),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
