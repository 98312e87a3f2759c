/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The readiness check and the inventory on simulated hosts: the behaviour each profile must show. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <cmocka.h>

#include "basic/fileio.h"
#include "core/host/check.h"
#include "core/host/inventory.h"
#include "core/host/iommu.h"
#include "core/passthrough/vfio.h"
#include "helpers.h"
#include "sim/sim.h"

static const CheckResult *find(const CheckReport *r, const char *id, const char *device) {
        for (size_t i = 0; i < r->n_results; i++)
                if (streq(r->results[i].id, id) &&
                    (device ? r->results[i].device && streq(r->results[i].device, device) : !r->results[i].device))
                        return &r->results[i];
        return NULL;
}

static const PciDevice *find_dev(const PciHost *h, uint16_t vendor, uint16_t device) {
        for (size_t i = 0; i < h->n_devices; i++)
                if (h->devices[i].vendor == vendor && h->devices[i].device == device && !h->devices[i].physfn)
                        return &h->devices[i];
        return NULL;
}

static CheckStatus status_of(const CheckReport *r, const char *id, const char *device) {
        const CheckResult *x = find(r, id, device);
        assert_non_null(x);
        return x->status;
}

static void test_no_iommu(void **state) {
        TestHost t;
        test_host_open(&t, "no-iommu");
        CheckReport *r;
        assert_int_equal(check_run(t.host, NULL, &r), 0);
        assert_true(check_report_failed(r));
        assert_int_equal(status_of(r, "cpu-virt", NULL), CHECK_PASS);
        assert_int_equal(status_of(r, "iommu-firmware", NULL), CHECK_FAIL);
        const CheckResult *k = find(r, "iommu-kernel", NULL);
        assert_non_null(k);
        assert_int_equal(k->status, CHECK_FAIL);
        /* The fix is the exact grub line for an Intel Debian host. */
        assert_non_null(k->hint);
        assert_non_null(strstr(k->hint, "GRUB_CMDLINE_LINUX=\""));
        assert_non_null(strstr(k->hint, "intel_iommu=on iommu=pt"));
        assert_non_null(strstr(k->hint, "update-grub"));
        /* no DMAR table: the firmware is the reason, whatever the command line says */
        assert_string_equal(k->message, "no IOMMU groups: the firmware does not provide it");
        assert_int_equal(status_of(r, "interrupt-remapping", NULL), CHECK_SKIP);
        /* per-GPU: no groups at all */
        for (size_t i = 0; i < t.host->n_devices; i++)
                assert_int_equal(t.host->devices[i].iommu_group, -1);
        const PciDevice *gpu = NULL;
        for (size_t i = 0; i < t.host->n_devices && !gpu; i++)
                if (inventory_is_gpu(&t.host->devices[i], false))
                        gpu = &t.host->devices[i];
        assert_non_null(gpu);
        assert_int_equal(status_of(r, "group-isolation", gpu->addr), CHECK_SKIP);
        char *why = passthrough_blocker(t.host, gpu);
        assert_non_null(why);
        assert_non_null(strstr(why, "IOMMU"));
        free(why);
        check_report_free(r);
        /* with the table there, a kernel that leaves VT-d off without intel_iommu=on (Debian 12's turns it
         * on: the rig's boots) is told to get it */
        char *dmar = root_path(t.root, "sys/firmware/acpi/tables/DMAR");
        assert_int_equal(write_text(dmar, "DMAR"), 0);
        free(dmar);
        assert_int_equal(check_run(t.host, NULL, &r), 0);
        k = find(r, "iommu-kernel", NULL);
        assert_non_null(k);
        assert_non_null(strstr(k->message, "intel_iommu=on is not on the kernel command line"));
        check_report_free(r);
        test_host_close(&t);
}

static void test_dgx(void **state) {
        TestHost t;
        test_host_open(&t, "dgx-a100");
        CheckReport *r;
        assert_int_equal(check_run(t.host, NULL, &r), 0);
        static const char *const host_ids[] = {"cpu-virt", "kvm", "iommu-firmware", "iommu-kernel",
                                               "interrupt-remapping", "vfio-modules"};
        for (size_t i = 0; i < sizeof host_ids / sizeof host_ids[0]; i++)
                assert_int_equal(status_of(r, host_ids[i], NULL), CHECK_PASS);
        assert_non_null(strstr(find(r, "cpu-virt", NULL)->message, "svm"));
        assert_false(check_report_failed(r));
        size_t a100 = 0;
        for (size_t i = 0; i < t.host->n_devices; i++) {
                const PciDevice *d = &t.host->devices[i];
                if (d->vendor != PCI_VENDOR_NVIDIA || d->device != 0x20b0)
                        continue;
                a100++;
                assert_int_equal(status_of(r, "group-isolation", d->addr), CHECK_PASS);
                assert_int_equal(status_of(r, "acs", d->addr), CHECK_PASS);
                assert_int_equal(status_of(r, "boot-vga", d->addr), CHECK_PASS);
                assert_true(nvidia_mig_capable(d->vendor, d->device));
                char *why = passthrough_blocker(t.host, d);
                assert_null(why);
                assert_true(d->numa_node == 0 || d->numa_node == 1);
        }
        assert_int_equal(a100, 8);
        check_report_free(r);
        test_host_close(&t);
}

static void test_workstation(void **state) {
        TestHost t;
        test_host_open(&t, "workstation");
        CheckReport *r;
        assert_int_equal(check_run(t.host, NULL, &r), 0);

        const PciDevice *boot = find_dev(t.host, PCI_VENDOR_NVIDIA, 0x2206);
        assert_non_null(boot);
        assert_int_equal(boot->boot_vga, 1);
        assert_int_equal(status_of(r, "boot-vga", boot->addr), CHECK_WARN);
        /* its HDMI audio shares the group, which is fine: a function of the same card */
        assert_int_equal(status_of(r, "group-isolation", boot->addr), CHECK_PASS);
        GroupMember *m;
        size_t n;
        assert_int_equal(iommu_group_members(t.host, boot, &m, &n), 0);
        assert_int_equal(group_members_count(m, n, GROUP_MEMBER_COMPANION), 1);
        free(m);

        /* the second GPU shares its group with the chipset USB controller: flagged, and named */
        const PciDevice *usb = NULL;
        for (size_t i = 0; i < t.host->n_devices; i++)
                if ((t.host->devices[i].class >> 8) == 0x0c03)
                        usb = &t.host->devices[i];
        assert_non_null(usb);
        const PciDevice *second = NULL;
        for (size_t i = 0; i < t.host->n_devices; i++)
                if (inventory_is_gpu(&t.host->devices[i], false) && &t.host->devices[i] != boot)
                        second = &t.host->devices[i];
        assert_non_null(second);
        assert_int_equal(second->iommu_group, usb->iommu_group);
        assert_false(pci_addr_same_card(&second->a, &usb->a));
        const CheckResult *g = find(r, "group-isolation", second->addr);
        assert_int_equal(g->status, CHECK_FAIL);
        assert_non_null(strstr(g->message, usb->addr));
        /* the fix is a command: core says what it does (the rest of the group along, forced) and names no
         * option; the CLI writes the command line (goldens) */
        assert_int_equal(g->fix, GV_HINT_TAKE_GROUP);
        assert_non_null(g->fix_devices);
        assert_string_equal(g->fix_devices[0], usb->addr);
        assert_null(g->fix_devices[1]);
        assert_null(strstr(g->hint, "--"));
        assert_null(strstr(g->hint_tail, "--"));
        const CheckResult *bv = find(r, "boot-vga", boot->addr);
        assert_int_equal(bv->fix, GV_HINT_FORCE);
        assert_null(strstr(bv->hint, "--"));
        char *text;
        assert_int_equal(check_hint_text(bv, NULL, &text), 0); /* no command writer: the text without one */
        assert_string_equal(text, "Select another GPU (or the integrated one) as primary display in firmware; "
                                  "gpuvirt refuses it.");
        free(text);
        assert_int_equal(status_of(r, "acs", second->addr), CHECK_WARN);
        char *why = passthrough_blocker(t.host, second);
        assert_non_null(why);
        assert_non_null(strstr(why, usb->addr));
        free(why);
        /* the GeForce warnings */
        assert_int_equal(status_of(r, "consumer-gpu", boot->addr), CHECK_WARN);
        /* vfio modules available but not loaded: a warning with the modules-load.d line */
        const CheckResult *v = find(r, "vfio-modules", NULL);
        assert_int_equal(v->status, CHECK_WARN);
        assert_non_null(strstr(v->hint, "/etc/modules-load.d/vfio-pci.conf"));
        assert_true(check_report_failed(r));
        check_report_free(r);

        /* --device limits the per-device checks to one GPU */
        assert_int_equal(check_run(t.host, boot, &r), 0);
        assert_null(find(r, "group-isolation", second->addr));
        assert_non_null(find(r, "group-isolation", boot->addr));
        check_report_free(r);
        test_host_close(&t);
}

/* Every profile: all documented check ids are present, once per host or per GPU. */
static void test_all_profiles(void **state) {
        static const char *const host_ids[] = {"cpu-virt", "kvm", "iommu-firmware", "iommu-kernel",
                                               "interrupt-remapping", "vfio-modules"};
        static const char *const dev_ids[] = {"group-isolation", "acs", "boot-vga", "option-rom"};
        assert_true(sim_profile_count() >= 8);
        for (size_t p = 0; p < sim_profile_count(); p++) {
                TestHost t;
                test_host_open(&t, sim_profile_info(p)->name);
                CheckReport *r;
                assert_int_equal(check_run(t.host, NULL, &r), 0);
                for (size_t i = 0; i < sizeof host_ids / sizeof host_ids[0]; i++)
                        assert_non_null(find(r, host_ids[i], NULL));
                size_t gpus = 0;
                for (size_t i = 0; i < t.host->n_devices; i++) {
                        const PciDevice *d = &t.host->devices[i];
                        if (!inventory_is_gpu(d, false))
                                continue;
                        gpus++;
                        for (size_t k = 0; k < sizeof dev_ids / sizeof dev_ids[0]; k++)
                                assert_non_null(find(r, dev_ids[k], d->addr));
                }
                assert_true(gpus > 0);
                json_object *j = check_report_json(r, NULL);
                assert_int_equal(json_object_array_length(j), r->n_results);
                json_object_put(j);
                /* the inventory model agrees with the scan */
                json_object *list;
                assert_int_equal(inventory_list(t.host, NULL, false, &list), 0);
                assert_int_equal(json_object_array_length(list), gpus);
                json_object_put(list);
                check_report_free(r);
                test_host_close(&t);
        }
}

/* The inventory reads mode details: SR-IOV counts, mdev types, vendor vGPU types. */
static void test_inventory_modes(void **state) {
        TestHost t;
        test_host_open(&t, "t4-grid");
        const PciDevice *t4 = find_dev(t.host, PCI_VENDOR_NVIDIA, 0x1eb8);
        assert_non_null(t4);
        json_object *o;
        assert_int_equal(inventory_device(t.host, NULL, t4, &o), 0);
        json_object *mdev = json_object_object_get(json_object_object_get(o, "modes"), "mdev");
        assert_non_null(mdev);
        json_object *types = json_object_object_get(mdev, "types");
        assert_true(json_object_array_length(types) > 3);
        json_object *t0 = json_object_array_get_idx(types, 0);
        assert_true(json_object_get_int(json_object_object_get(t0, "available_instances")) > 0);
        assert_true(json_object_get_int(json_object_object_get(t0, "framebuffer_mb")) > 0);
        json_object_put(o);
        test_host_close(&t);

        test_host_open(&t, "h100");
        const PciDevice *h100 = find_dev(t.host, PCI_VENDOR_NVIDIA, 0x2331);
        assert_non_null(h100);
        assert_true(h100->sriov_totalvfs > 0);
        assert_int_equal(h100->sriov_numvfs, h100->sriov_totalvfs);
        assert_int_equal(inventory_device(t.host, NULL, h100, &o), 0);
        json_object *vv = json_object_object_get(json_object_object_get(o, "modes"), "vendor_vgpu");
        assert_non_null(vv);
        assert_int_equal(json_object_get_int(json_object_object_get(vv, "vfs")), h100->sriov_totalvfs);
        assert_int_equal(json_object_get_int(json_object_object_get(vv, "vfs_in_use")), 0);
        assert_true(json_object_array_length(json_object_object_get(vv, "types")) > 0);
        json_object *sr = json_object_object_get(json_object_object_get(o, "modes"), "sriov");
        assert_int_equal(json_object_array_length(json_object_object_get(sr, "vfs")), (size_t)h100->sriov_totalvfs);
        json_object_put(o);
        test_host_close(&t);
}

/* A GPU that fell off the bus: the scan says so from its config header, check fails it, operations refuse it. */
static void test_dead_device(void **state) {
        TestHost t;
        test_host_open(&t, "dgx-a100");
        PciDevice *d = pci_host_find(t.host, "0000:24:00.0");
        assert_non_null(d);
        assert_int_equal(d->state, PCI_DEVICE_OK);
        assert_int_equal(sim_device_off_bus(t.dir, "0000:24:00.0"), 0);
        test_host_rescan(&t);
        d = pci_host_find(t.host, "0000:24:00.0");
        assert_int_equal(d->state, PCI_DEVICE_OFF_BUS);
        assert_true(pci_device_is_dead(d));
        assert_int_equal(d->vendor, 0x10de); /* the kernel's cached attributes stay */
        assert_string_equal(pci_device_state_to_string(d->state), "off_bus");
        CheckReport *r = NULL;
        assert_int_equal(check_run(t.host, d, &r), 0);
        size_t fails = 0;
        for (size_t i = 0; i < r->n_results; i++)
                if (r->results[i].device) {
                        assert_string_equal(r->results[i].id, "bus");
                        assert_int_equal(r->results[i].status, CHECK_FAIL);
                        assert_non_null(strstr(r->results[i].hint, "Xid 79"));
                        fails++;
                }
        assert_int_equal(fails, 1);
        check_report_free(r);
        GvError err = {};
        assert_int_equal(pci_device_require_alive(t.root, "24:00.0", &err), -ENODEV);
        assert_int_equal(err.error, ENODEV);
        assert_string_equal(err.device, "24:00.0");
        assert_non_null(strstr(err.message, "0000:24:00.0 does not answer on the bus"));
        gv_error_done(&err);
        assert_int_equal(pci_device_require_alive(t.root, "23:00.0", &err), 0);
        assert_int_equal(err.error, 0);
        assert_null(err.message);
        VfioOptions o = {.force = true};
        VfioReport rep;
        assert_int_equal(vfio_enable(t.root, "24:00.0", &o, &rep), -ENODEV);
        assert_non_null(strstr(rep.error.message, "does not answer on the bus"));
        vfio_report_done(&rep);
        test_host_close(&t);
}

/* The vendor host side of each mode: each check where it applies, and what turns its verdict. */
static CheckStatus rerun(TestHost *t, const char *id, const char *device) {
        test_host_rescan(t);
        CheckReport *r;
        assert_int_equal(check_run(t->host, NULL, &r), 0);
        const CheckResult *x = find(r, id, device);
        CheckStatus s = x ? x->status : _CHECK_STATUS_INVALID;
        check_report_free(r);
        return s;
}

static void put(TestHost *t, const char *rel, const char *text) {
        _cleanup_free_ char *p = strdup_printf("%s/%s", t->dir, rel);
        _cleanup_free_ char *d = strdup(p);
        *strrchr(d, '/') = '\0';
        assert_int_equal(mkdir_p(d, 0755), 0);
        assert_int_equal(write_text(p, text), 0);
}

static void test_vendor_host(void **state) {
        TestHost t;
        /* the vGPU manager: FAIL until it runs */
        test_host_open(&t, "t4-novgpumgr");
        assert_int_equal(rerun(&t, "nvidia-vgpu-host", "0000:3b:00.0"), CHECK_FAIL);
        put(&t, "proc/4242/comm", "nvidia-vgpu-mgr\n");
        assert_int_equal(rerun(&t, "nvidia-vgpu-host", "0000:3b:00.0"), CHECK_PASS);
        assert_int_equal(rerun(&t, "vgpu-license", NULL), CHECK_PASS);
        assert_int_equal(rerun(&t, "vgpu-unlock", NULL), _CHECK_STATUS_INVALID);
        /* vgpu_unlock-rs leaves its configuration in /etc/vgpu_unlock */
        put(&t, "etc/vgpu_unlock/profile_override.toml", "[profile.nvidia-222]\n");
        assert_int_equal(rerun(&t, "vgpu-unlock", NULL), CHECK_WARN);
        test_host_close(&t);

        /* the license: a commented ServerAddress is none; a token is one */
        test_host_open(&t, "t4-nolicense");
        assert_int_equal(rerun(&t, "vgpu-license", NULL), CHECK_WARN);
        put(&t, "etc/nvidia/gridd.conf", "#ServerAddress=10.0.0.5\nFeatureType=1\n");
        assert_int_equal(rerun(&t, "vgpu-license", NULL), CHECK_WARN);
        put(&t, "etc/nvidia/gridd.conf", "ServerAddress=10.0.0.5\nFeatureType=1\n");
        assert_int_equal(rerun(&t, "vgpu-license", NULL), CHECK_PASS);
        put(&t, "etc/nvidia/gridd.conf", "FeatureType=1\n");
        put(&t, "etc/nvidia/ClientConfigToken/client_configuration_token.tok", "x\n");
        assert_int_equal(rerun(&t, "vgpu-license", NULL), CHECK_PASS);
        test_host_close(&t);

        /* Ampere+ vGPU lives on VFs: none enabled is a WARN with sriov-manage */
        test_host_open(&t, "h100");
        assert_int_equal(rerun(&t, "nvidia-vgpu-host", "0000:16:00.0"), CHECK_PASS);
        assert_int_equal(root_write(t.root, "0", "sys/bus/pci/devices/0000:16:00.0/sriov_numvfs"), 0);
        test_host_rescan(&t);
        /* without VFs no vendor vGPU type shows: the running manager tells the vGPU host driver */
        assert_int_equal(rerun(&t, "nvidia-vgpu-host", "0000:16:00.0"), CHECK_WARN);
        test_host_close(&t);

        /* GIM, not amdgpu */
        test_host_open(&t, "mi25-amdgpu");
        assert_int_equal(rerun(&t, "mxgpu-host", "0000:03:00.0"), CHECK_FAIL);
        /* amdgpu has no sriov_configure: the kernel refuses VFs */
        assert_int_equal(root_write(t.root, "2", "sys/bus/pci/devices/0000:03:00.0/sriov_numvfs"), -ENOENT);
        test_host_close(&t);
        test_host_open(&t, "mi25-sriov");
        assert_int_equal(rerun(&t, "mxgpu-host", "0000:03:00.0"), CHECK_PASS);
        test_host_close(&t);

        /* Intel: the driver's VF support, GVT-g's parameter and module */
        test_host_open(&t, "flex-sriov");
        assert_int_equal(rerun(&t, "intel-sriov-host", "0000:16:00.0"), CHECK_PASS);
        put(&t, "proc/cmdline", "BOOT_IMAGE=/boot/vmlinuz ro quiet intel_iommu=on iommu=pt\n");
        assert_int_equal(rerun(&t, "intel-sriov-host", "0000:16:00.0"), CHECK_FAIL);
        test_host_close(&t);
        test_host_open(&t, "gvt-g");
        assert_int_equal(rerun(&t, "gvt-g-host", "0000:00:02.0"), CHECK_PASS);
        _cleanup_free_ char *kvmgt = strdup_printf("%s/sys/module/kvmgt", t.dir);
        assert_int_equal(rm_rf(kvmgt), 0);
        assert_int_equal(rerun(&t, "gvt-g-host", "0000:00:02.0"), CHECK_FAIL);
        test_host_close(&t);

        /* none applies to a DGX's A100s */
        test_host_open(&t, "dgx-a100");
        assert_int_equal(rerun(&t, "nvidia-vgpu-host", "0000:23:00.0"), _CHECK_STATUS_INVALID);
        assert_int_equal(rerun(&t, "vgpu-license", NULL), _CHECK_STATUS_INVALID);
        test_host_close(&t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_no_iommu),     cmocka_unit_test(test_dgx),
                cmocka_unit_test(test_workstation),  cmocka_unit_test(test_all_profiles),
                cmocka_unit_test(test_inventory_modes), cmocka_unit_test(test_dead_device),
                cmocka_unit_test(test_vendor_host),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
