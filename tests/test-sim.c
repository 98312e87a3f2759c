/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The simulator: layout of every profile as the kernel shows it, and the kernel model behind writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "basic/fileio.h"
#include "helpers.h"
#include "sim/sim.h"

_printf_(2, 3) static bool exists(TestHost *t, const char *fmt, ...) {
        _cleanup_free_ char *rel = NULL;
        va_list ap;
        va_start(ap, fmt);
        assert_true(vasprintf(&rel, fmt, ap) >= 0);
        va_end(ap);
        return root_exists(t->root, "%s", rel);
}

_printf_(2, 3) static char *attr(TestHost *t, const char *fmt, ...) {
        _cleanup_free_ char *rel = NULL;
        char *v = NULL;
        va_list ap;
        va_start(ap, fmt);
        assert_true(vasprintf(&rel, fmt, ap) >= 0);
        va_end(ap);
        assert_int_equal(root_read_attr(t->root, &v, "%s", rel), 0);
        return v;
}

#define assert_attr(t, fmt, arg, want)                                                                       \
        do {                                                                                                  \
                _cleanup_free_ char *_v = attr(t, fmt, arg);                                                  \
                assert_string_equal(_v, want);                                                                \
        } while (0)

static char *driver_of(TestHost *t, const char *bdf) {
        _cleanup_free_ char *p = root_path(t->root, "sys/bus/pci/devices/%s/driver", bdf);
        char *d = NULL;
        assert_non_null(p);
        if (readlink_base(p, &d) < 0)
                return NULL;
        return d;
}

static void assert_driver(TestHost *t, const char *bdf, const char *want) {
        _cleanup_free_ char *d = driver_of(t, bdf);
        if (!want)
                assert_null(d);
        else {
                assert_non_null(d);
                assert_string_equal(d, want);
        }
}

static int group_of(TestHost *t, const char *bdf) {
        const PciDevice *d = pci_host_find(t->host, bdf);
        assert_non_null(d);
        return d->iommu_group;
}

static size_t group_size(TestHost *t, int g) {
        _cleanup_free_ char *p = root_path(t->root, "sys/kernel/iommu_groups/%d/devices", g);
        _cleanup_strv_free_ char **l = NULL;
        assert_non_null(p);
        assert_true(dir_list(p, &l) >= 0);
        return strv_length(l);
}

static bool vfio_node(TestHost *t, int g) {
        return root_exists(t->root, "dev/vfio/%d", g);
}

static void read_cfg(TestHost *t, const char *bdf, uint8_t **cfg, size_t *n) {
        const PciDevice *d = pci_host_find(t->host, bdf);
        assert_non_null(d);
        assert_int_equal(pci_device_read_config(t->host, d, cfg, n), 0);
        assert_int_equal(*n, 4096);
}

static unsigned cfg16(const uint8_t *c, unsigned off) {
        return c[off] | c[off + 1] << 8;
}

/* ---- layout ---------------------------------------------------------------------------------------- */

static void check_lspci(TestHost *t) {
        if (access("/usr/bin/lspci", X_OK) < 0 && access("/usr/sbin/lspci", X_OK) < 0)
                return;
        _cleanup_free_ char *cmd = strdup_printf("lspci -O sysfs.path=%s/sys/bus/pci -nn 2>/dev/null", t->dir);
        FILE *f = popen(cmd, "r");
        assert_non_null(f);
        char line[512];
        size_t n = 0;
        while (fgets(line, sizeof line, f)) {
                unsigned bus, slot, func;
                assert_int_equal(sscanf(line, "%x:%x.%x", &bus, &slot, &func), 3);
                char bdf[16];
                snprintf(bdf, sizeof bdf, "0000:%02x:%02x.%x", bus, slot, func);
                const PciDevice *d = pci_host_find(t->host, bdf);
                assert_non_null(d);
                char ids[16];
                snprintf(ids, sizeof ids, "[%04x:%04x]", d->vendor, d->device);
                assert_non_null(strstr(line, ids));
                n++;
        }
        assert_int_equal(pclose(f), 0);
        assert_int_equal(n, t->host->n_devices);
}

static void check_device(TestHost *t, const PciDevice *d, bool iommu) {
        /* the bus link resolves to the real directory, nested under its upstream bridge */
        assert_true(root_exists(t->root, "%s/config", d->syspath));
        assert_true(root_exists(t->root, "%s/subsystem/devices", d->syspath));
        if (d->parent)
                assert_non_null(strstr(d->syspath, d->parent));
        if (d->driver)
                assert_true(root_exists(t->root, "%s/driver/unbind", d->syspath));
        assert_true(iommu ? d->iommu_group >= 0 : d->iommu_group < 0);
        if (iommu)
                assert_true(root_exists(t->root, "%s/iommu_group/devices/%s", d->syspath, d->addr));
        _cleanup_free_ char *ovr = NULL;
        assert_int_equal(root_read_attr(t->root, &ovr, "%s/driver_override", d->syspath), 0);
        assert_string_equal(ovr, "(null)");
        if (pci_device_class(d) == PCI_CLASS_DISPLAY_VGA)
                assert_true(d->boot_vga == 0 || d->boot_vga == 1);
        else
                assert_int_equal(d->boot_vga, -1);

        _cleanup_free_ uint8_t *cfg = NULL;
        size_t n;
        read_cfg(t, d->addr, &cfg, &n);
        /* a VF's Vendor/Device ID registers read all ones (SR-IOV specification), its attributes say what it is */
        assert_int_equal(cfg16(cfg, 0), d->physfn ? 0xffff : d->vendor);
        assert_int_equal(cfg16(cfg, 2), d->physfn ? 0xffff : d->device);
        assert_int_equal(d->state, PCI_DEVICE_OK);
        assert_true(cfg16(cfg, 6) & 0x10);
        assert_int_not_equal(pci_config_find_cap(cfg, n, 0x01), 0);
        bool bridge = pci_device_is_bridge(d) && pci_device_class(d) == PCI_CLASS_BRIDGE_PCI;
        assert_int_equal(cfg[0x0e] & 0x7f, bridge ? 1 : 0);
        if (!bridge)
                assert_int_equal(cfg16(cfg, 0x2c), d->subsystem_vendor);
        unsigned exp = pci_config_find_cap(cfg, n, PCI_CAP_ID_EXP);
        if (d->link_speed)
                assert_int_not_equal(exp, 0);
        if (d->sriov_totalvfs > 0) {
                unsigned sr = pci_config_find_ext_cap(cfg, n, PCI_EXT_CAP_ID_SRIOV);
                assert_int_not_equal(sr, 0);
                assert_int_equal(cfg16(cfg, sr + 0x0e), d->sriov_totalvfs);
                assert_int_equal(cfg16(cfg, sr + 0x10), d->sriov_numvfs);
        }
}

static void test_profiles_layout(void **state) {
        static const char *const required[] = {"dgx-a100", "h100",      "t4-grid",     "flex-sriov", "mi25-sriov",
                                               "gvt-g",    "workstation", "no-iommu", "qemu-q35"};
        for (size_t k = 0; k < sizeof required / sizeof required[0]; k++) {
                bool found = false;
                for (size_t i = 0; i < sim_profile_count(); i++)
                        found = found || streq(sim_profile_info(i)->name, required[k]);
                assert_true(found);
        }
        for (size_t i = 0; i < sim_profile_count(); i++) {
                const SimProfileInfo *p = sim_profile_info(i);
                TestHost t;
                test_host_open(&t, p->name);
                bool iommu = !streq(p->name, "no-iommu");
                assert_true(t.host->n_devices > 5);
                for (size_t k = 0; k < t.host->n_devices; k++)
                        check_device(&t, &t.host->devices[k], iommu);
                check_lspci(&t);
                assert_int_equal(root_exists(t.root, "sys/class/iommu/%s", p->name[0] == 'd' || p->name[0] == 'm' ? "ivhd0" : "dmar0"),
                                 iommu);
                assert_true(root_exists(t.root, "dev/kvm"));
                assert_true(root_exists(t.root, "proc/cpuinfo"));
                assert_true(root_exists(t.root, "lib/modules/6.1.0-27-amd64/kernel/drivers/vfio/pci/vfio-pci.ko"));
                bool vfio = !streq(p->name, "workstation");
                assert_int_equal(root_exists(t.root, "sys/bus/pci/drivers/vfio-pci"), vfio);
                assert_int_equal(root_exists(t.root, "sys/module/vfio_pci"), vfio);
                assert_int_equal(root_exists(t.root, "dev/vfio/vfio"), vfio);
                /* exactly one console GPU */
                size_t boot = 0;
                for (size_t k = 0; k < t.host->n_devices; k++)
                        boot += t.host->devices[k].boot_vga == 1;
                assert_int_equal(boot, 1);
                test_host_close(&t);
        }
        assert_int_equal(sim_create("/tmp/gpuvirt-sim-unknown-profile", "nope"), -ENOENT);
}

/* The generated host of the scaling benchmark: exactly the size asked for, every device laid out as the
 * profiles' are (lspci agrees), each A100 alone in its group, one console, and the kernel model plays writes
 * on it (the size is read back from .gpuvirt-sim/profile). */
static void test_generated_layout(void **state) {
        static const struct {
                unsigned devices, gpus;
        } sizes[] = {{100, 8}, {300, 24}, {31, 8}};
        for (size_t s = 0; s < ELEMENTSOF(sizes); s++) {
                char spec[64];
                snprintf(spec, sizeof spec, SIM_GENERATED_PROFILE ":%u:%u", sizes[s].devices, sizes[s].gpus);
                TestHost t;
                test_host_open(&t, spec);
                assert_int_equal(t.host->n_devices, sizes[s].devices);
                size_t gpus = 0, boot = 0;
                const PciDevice *gpu = NULL;
                for (size_t k = 0; k < t.host->n_devices; k++) {
                        const PciDevice *d = &t.host->devices[k];
                        check_device(&t, d, true);
                        boot += d->boot_vga == 1;
                        if (d->vendor == PCI_VENDOR_NVIDIA && d->device == 0x20b0) {
                                gpus++;
                                gpu = gpu ?: d;
                                assert_string_equal(d->driver, "nvidia");
                                assert_int_equal(group_size(&t, d->iommu_group), 1);
                        }
                }
                assert_int_equal(gpus, sizes[s].gpus);
                assert_int_equal(boot, 1);
                check_lspci(&t);
                _cleanup_free_ char *ovr = strdup_printf("sys/bus/pci/devices/%s/driver_override", gpu->addr);
                assert_int_equal(sim_kernel_write(root_dir(t.root), ovr, "vfio-pci"), 0);
                test_host_close(&t);
        }
        char *base = test_tmpdir();
        _cleanup_free_ char *dir = strdup_printf("%s/host", base);
        assert_int_equal(sim_create_generated(dir, 23, 8), -EINVAL);
        assert_int_equal(sim_create_generated(dir, 100, 0), -EINVAL);
        assert_int_equal(sim_create_generated(dir, 100000, 8), -ERANGE);
        assert_int_equal(sim_create(dir, SIM_GENERATED_PROFILE ":100"), -ENOENT);
        assert_int_equal(sim_create(dir, SIM_GENERATED_PROFILE "x"), -ENOENT);
        assert_false(path_exists(dir));
        test_tmpdir_remove(base);
}

static void same_str(const char *a, const char *b) {
        if (a || b) {
                assert_non_null(a);
                assert_non_null(b);
                assert_string_equal(a, b);
        }
}

/* Every field the classification reads, as the full scan reads it. */
static void same_class(const PciDevice *g, const PciDevice *f) {
        assert_string_equal(g->addr, f->addr);
        assert_int_equal(g->state, f->state);
        same_str(g->syspath, f->syspath);
        same_str(g->parent, f->parent);
        assert_int_equal(g->vendor, f->vendor);
        assert_int_equal(g->device, f->device);
        assert_int_equal(g->class, f->class);
        same_str(g->driver, f->driver);
        assert_int_equal(g->iommu_group, f->iommu_group);
        same_str(g->physfn, f->physfn);
}

static void same_device(const PciDevice *g, const PciDevice *f) {
        same_class(g, f);
        assert_false(g->partial);
        assert_false(f->partial);
        assert_int_equal(g->subsystem_vendor, f->subsystem_vendor);
        assert_int_equal(g->subsystem_device, f->subsystem_device);
        same_str(g->driver_override, f->driver_override);
        assert_int_equal(g->numa_node, f->numa_node);
        assert_int_equal(g->boot_vga, f->boot_vga);
        assert_int_equal(g->is_vfio, f->is_vfio);
        assert_int_equal(g->sriov_totalvfs, f->sriov_totalvfs);
        assert_int_equal(g->sriov_numvfs, f->sriov_numvfs);
        same_str(g->link_speed, f->link_speed);
        same_str(g->link_width, f->link_width);
        same_str(g->max_link_speed, f->max_link_speed);
        same_str(g->max_link_width, f->max_link_width);
        assert_int_equal(g->has_rom, f->has_rom);
        assert_int_equal(g->has_mdev_types, f->has_mdev_types);
        assert_int_equal(g->has_vendor_vgpu, f->has_vendor_vgpu);
}

/* The GPU scan (list, check): the devices of the full scan, each classified as the full scan reads it; in
 * full every GPU, NVIDIA function, member of a GPU's group and VF of a GPU; a partial device, once completed,
 * is the full scan's. */
static void check_scan_gpus(Root *root, const PciHost *full) {
        _cleanup_pci_host_free_ PciHost *g = NULL;
        assert_int_equal(pci_host_scan_gpus(root, &g), 0);
        assert_int_equal(g->n_devices, full->n_devices);
        size_t partial = 0;
        for (size_t i = 0; i < g->n_devices; i++) {
                PciDevice *d = &g->devices[i];
                const PciDevice *f = &full->devices[i];
                same_class(d, f);
                bool gpu_group = false;
                for (size_t k = 0; k < full->n_devices && f->iommu_group >= 0; k++)
                        gpu_group |= full->devices[k].iommu_group == f->iommu_group &&
                                     (pci_device_is_display(&full->devices[k]) ||
                                      full->devices[k].vendor == PCI_VENDOR_NVIDIA);
                if (pci_device_is_display(f) || f->vendor == PCI_VENDOR_NVIDIA || gpu_group || pci_device_is_dead(f))
                        assert_false(d->partial);
                if (d->partial) {
                        partial++;
                        assert_int_equal(d->sriov_totalvfs, -1);
                        assert_int_equal(d->numa_node, -1);
                        assert_null(d->link_speed);
                        assert_int_equal(pci_host_complete(g, d), 0);
                }
                same_device(d, f);
        }
        /* a host with other devices than GPUs leaves some partial */
        assert_true(partial > 0);
}

/* The scan of an operation on one device: that device, its group, its card, its PF and VFs in full, as the
 * full scan reads them; every other device classified as the full scan classifies it. */
static void check_scan_device(Root *root, const PciHost *full, const PciDevice *focus) {
        _cleanup_pci_host_free_ PciHost *g = NULL;
        assert_int_equal(pci_host_scan_device(root, focus->addr, &g), 0);
        assert_int_equal(g->n_devices, full->n_devices);
        for (size_t i = 0; i < g->n_devices; i++) {
                const PciDevice *d = &g->devices[i], *f = &full->devices[i];
                same_class(d, f);
                if (f == focus || (focus->iommu_group >= 0 && f->iommu_group == focus->iommu_group) ||
                    pci_addr_same_card(&f->a, &focus->a) || (f->physfn && streq(f->physfn, focus->addr)))
                        same_device(d, f);
        }
}

static void test_scan_gpus(void **state) {
        for (size_t i = 0; i <= sim_profile_count(); i++) {
                TestHost t;
                test_host_open(&t, i < sim_profile_count() ? sim_profile_info(i)->name : SIM_GENERATED_PROFILE ":300:24");
                check_scan_gpus(t.root, t.host);
                /* every device of a profile once the focus of a device scan (of the generated host one in 17) */
                for (size_t k = 0; k < t.host->n_devices; k += t.host->n_devices > 100 ? 17 : 1)
                        check_scan_device(t.root, t.host, &t.host->devices[k]);
                test_host_close(&t);
        }
}

/* Where a full read takes a device's IDs from: its uevent (what the kernel holds, quirks included: one read),
 * the attributes where uevent lacks one of them. */
static void test_ids_sources(void **state) {
        TestHost t;
        test_host_open(&t, "h100");
        const PciDevice *gpu = NULL;
        for (size_t i = 0; i < t.host->n_devices && !gpu; i++)
                if (pci_device_is_display(&t.host->devices[i]) && t.host->devices[i].vendor == PCI_VENDOR_NVIDIA)
                        gpu = &t.host->devices[i];
        assert_non_null(gpu);
        _cleanup_free_ char *ue = root_path(t.root, "%s/uevent", gpu->syspath);
        char buf[256];
        int len = snprintf(buf, sizeof buf, "PCI_CLASS=30200\nPCI_ID=%04X:%04X\nPCI_SUBSYS_ID=10DE:ABCD\nPCI_SLOT_NAME=%s\n",
                           gpu->vendor, gpu->device, gpu->addr);
        assert_true(len > 0 && (size_t)len < sizeof buf);
        assert_int_equal(write_text(ue, buf), 0);
        PciDevice d = {};
        assert_int_equal(pci_device_read(t.root, gpu->addr, &d), 0);
        assert_int_equal(d.subsystem_device, 0xabcd);
        assert_int_equal(d.class, 0x030200);
        pci_device_done(&d);
        _cleanup_pci_host_free_ PciHost *g = NULL;
        assert_int_equal(pci_host_scan_gpus(t.root, &g), 0);
        const PciDevice *sg = pci_host_find(g, gpu->addr);
        assert_non_null(sg);
        assert_false(sg->partial);
        assert_int_equal(sg->subsystem_device, 0xabcd);
        assert_int_equal(sg->class, 0x030200);

        /* without PCI_SUBSYS_ID: every ID from the attributes */
        len = snprintf(buf, sizeof buf, "PCI_CLASS=30200\nPCI_ID=%04X:%04X\n", gpu->vendor, gpu->device);
        assert_true(len > 0 && (size_t)len < sizeof buf);
        assert_int_equal(write_text(ue, buf), 0);
        d = (PciDevice){};
        assert_int_equal(pci_device_read(t.root, gpu->addr, &d), 0);
        assert_int_equal(d.subsystem_device, gpu->subsystem_device);
        assert_int_equal(d.class, gpu->class);
        pci_device_done(&d);
        test_host_close(&t);
}

static void test_layout_details(void **state) {
        TestHost t;
        test_host_open(&t, "no-iommu");
        assert_true(root_exists(t.root, "sys/kernel/iommu_groups"));
        _cleanup_free_ char *gd = root_path(t.root, "sys/kernel/iommu_groups");
        _cleanup_strv_free_ char **gl = NULL;
        assert_int_equal(dir_list(gd, &gl), 0);
        assert_false(root_exists(t.root, "sys/class/iommu/dmar0"));
        _cleanup_free_ char *cl = NULL;
        assert_int_equal(root_read_attr(t.root, &cl, "proc/cmdline"), 0);
        assert_null(strstr(cl, "iommu"));
        free(TAKE_PTR(cl));
        assert_false(root_exists(t.root, "sys/firmware/acpi/tables/DMAR"));
        test_host_close(&t);

        test_host_open(&t, "h100");
        assert_true(root_exists(t.root, "sys/firmware/acpi/tables/DMAR"));
        assert_int_equal(root_read_attr(t.root, &cl, "proc/cmdline"), 0);
        assert_non_null(strstr(cl, "intel_iommu=on iommu=pt"));
        free(TAKE_PTR(cl));
        assert_int_equal(root_read_attr(t.root, &cl, "proc/interrupts"), 0);
        assert_non_null(strstr(cl, "IR-PCI-MSI"));
        free(TAKE_PTR(cl));
        test_host_close(&t);

        test_host_open(&t, "dgx-a100");
        assert_true(root_exists(t.root, "sys/firmware/acpi/tables/IVRS"));
        assert_true(root_exists(t.root, "sys/class/iommu/ivhd0/devices"));
        assert_true(root_exists(t.root, "sys/module/kvm_amd"));
        test_host_close(&t);
}

static void test_groups(void **state) {
        TestHost t;
        test_host_open(&t, "workstation");
        /* console GPU and its audio function: one group, without the root port */
        int g = group_of(&t, "0000:01:00.0");
        assert_int_equal(g, group_of(&t, "0000:01:00.1"));
        assert_int_equal(group_size(&t, g), 2);
        assert_int_not_equal(g, group_of(&t, "0000:00:01.0"));
        /* the PCH group: both non-ACS root ports, the second GPU, its audio, the USB controller */
        g = group_of(&t, "0000:02:00.0");
        assert_int_equal(group_size(&t, g), 5);
        assert_int_equal(g, group_of(&t, "0000:00:1c.0"));
        assert_int_equal(g, group_of(&t, "0000:00:1c.4"));
        assert_int_equal(g, group_of(&t, "0000:02:00.1"));
        assert_int_equal(g, group_of(&t, "0000:03:00.0"));
        assert_int_equal(group_of(&t, "0000:00:1f.0"), group_of(&t, "0000:00:1f.4"));
        assert_attr(&t, "sys/bus/pci/devices/%s/boot_vga", "0000:01:00.0", "1");
        assert_attr(&t, "sys/bus/pci/devices/%s/boot_vga", "0000:02:00.0", "0");
        /* ACS: CPU root port has it enabled, PCH root ports have none */
        _cleanup_free_ uint8_t *cfg = NULL;
        size_t n;
        read_cfg(&t, "0000:00:01.0", &cfg, &n);
        unsigned acs = pci_config_find_ext_cap(cfg, n, PCI_EXT_CAP_ID_ACS);
        assert_int_not_equal(acs, 0);
        assert_int_equal(cfg16(cfg, acs + 6), PCI_ACS_CTRL_REQUIRED);
        assert_int_equal((cfg16(cfg, pci_config_find_cap(cfg, n, PCI_CAP_ID_EXP) + 2) >> 4) & 0xf,
                         PCI_EXP_TYPE_ROOT_PORT);
        free(TAKE_PTR(cfg));
        read_cfg(&t, "0000:00:1c.0", &cfg, &n);
        assert_int_equal(pci_config_find_ext_cap(cfg, n, PCI_EXT_CAP_ID_ACS), 0);
        assert_true(cfg[0x0e] & 0x80); /* multifunction */
        free(TAKE_PTR(cfg));
        test_host_close(&t);

        test_host_open(&t, "dgx-a100");
        size_t gpus = 0;
        for (size_t i = 0; i < t.host->n_devices; i++) {
                const PciDevice *d = &t.host->devices[i];
                if (d->vendor == 0x10de && d->device == 0x20b0) {
                        gpus++;
                        assert_int_equal(group_size(&t, d->iommu_group), 1);
                        assert_int_equal(d->numa_node, d->a.bus < 0x80 ? 0 : 1);
                        assert_true(d->has_rom);
                        assert_string_equal(d->driver, "nvidia");
                        /* upstream: a switch downstream port with ACS enabled */
                        _cleanup_free_ uint8_t *c = NULL;
                        read_cfg(&t, d->parent, &c, &n);
                        unsigned e = pci_config_find_cap(c, n, PCI_CAP_ID_EXP);
                        assert_int_equal((cfg16(c, e + 2) >> 4) & 0xf, PCI_EXP_TYPE_DOWNSTREAM);
                        unsigned a = pci_config_find_ext_cap(c, n, PCI_EXT_CAP_ID_ACS);
                        assert_int_equal(cfg16(c, a + 6), PCI_ACS_CTRL_REQUIRED);
                        assert_string_equal(d->link_speed, "16.0 GT/s PCIe");
                }
        }
        assert_int_equal(gpus, 8);
        test_host_close(&t);

        test_host_open(&t, "h100");
        size_t vfs = 0;
        for (size_t i = 0; i < t.host->n_devices; i++) {
                const PciDevice *d = &t.host->devices[i];
                if (d->vendor != 0x10de)
                        continue;
                if (d->physfn) {
                        vfs++;
                        assert_int_equal(group_size(&t, d->iommu_group), 1);
                        assert_string_equal(d->driver, "nvidia");
                        assert_true(d->has_vendor_vgpu);
                        assert_int_equal(d->numa_node, pci_host_find(t.host, d->physfn)->numa_node);
                } else {
                        assert_int_equal(d->sriov_totalvfs, 32);
                        assert_int_equal(d->sriov_numvfs, 32);
                        assert_true(root_exists(t.root, "%s/virtfn31", d->syspath));
                }
        }
        assert_int_equal(vfs, 64);
        test_host_close(&t);
}

/* ---- kernel model ---------------------------------------------------------------------------------- */

static void test_vfio_cycle(void **state) {
        TestHost t;
        test_host_open(&t, "dgx-a100");
        const char *gpu = NULL;
        for (size_t i = 0; i < t.host->n_devices && !gpu; i++)
                if (t.host->devices[i].device == 0x20b0)
                        gpu = t.host->devices[i].addr;
        int g = group_of(&t, gpu);

        /* errnos first */
        assert_int_equal(root_write(t.root, gpu, "sys/bus/pci/drivers/vfio-pci/unbind"), -ENODEV);
        assert_int_equal(root_write(t.root, gpu, "sys/bus/pci/drivers/vfio-pci/bind"), -ENODEV); /* no ID table */
        assert_int_equal(root_write(t.root, gpu, "sys/bus/pci/drivers/nvidia/bind"), -EBUSY);
        assert_int_equal(root_write(t.root, "0000:ff:1f.7", "sys/bus/pci/drivers_probe"), -ENODEV);
        assert_int_equal(root_write(t.root, "0000:00:00.0", "sys/bus/pci/devices/%s/vendor", gpu), -EACCES);
        assert_int_equal(root_write(t.root, "1", "sys/bus/pci/devices/%s/nonexistent", gpu), -ENOENT);

        /* the driver_override sequence to vfio-pci */
        assert_int_equal(root_write(t.root, "vfio-pci\n", "sys/bus/pci/devices/%s/driver_override", gpu), 0);
        assert_attr(&t, "sys/bus/pci/devices/%s/driver_override", gpu, "vfio-pci");
        assert_int_equal(root_write(t.root, gpu, "sys/bus/pci/devices/%s/driver/unbind", gpu), 0);
        assert_driver(&t, gpu, NULL);
        assert_false(exists(&t, "sys/bus/pci/drivers/nvidia/%s", gpu));
        assert_int_equal(root_write(t.root, gpu, "sys/bus/pci/drivers/nvidia/bind"), -ENODEV); /* override */
        assert_int_equal(root_write(t.root, gpu, "sys/bus/pci/drivers_probe"), 0);
        assert_driver(&t, gpu, "vfio-pci");
        assert_true(vfio_node(&t, g));
        assert_true(exists(&t, "sys/bus/pci/devices/%s/vfio-dev/vfio0", gpu));
        assert_int_equal(root_write(t.root, gpu, "sys/bus/pci/drivers_probe"), 0); /* bound: nothing */

        /* and back */
        assert_int_equal(root_write(t.root, "\n", "sys/bus/pci/devices/%s/driver_override", gpu), 0);
        assert_attr(&t, "sys/bus/pci/devices/%s/driver_override", gpu, "(null)");
        assert_int_equal(root_write(t.root, gpu, "sys/bus/pci/drivers/vfio-pci/unbind"), 0);
        assert_false(vfio_node(&t, g));
        assert_false(exists(&t, "sys/bus/pci/devices/%s/vfio-dev", gpu));
        assert_int_equal(root_write(t.root, gpu, "sys/bus/pci/drivers_probe"), 0);
        assert_driver(&t, gpu, "nvidia");

        /* explicit bind with override: works, and reset */
        assert_int_equal(root_write(t.root, "1", "sys/bus/pci/devices/%s/reset", gpu), 0);
        assert_int_equal(root_write(t.root, "1", "sys/bus/pci/devices/%s/reset", "0000:00:01.1"), -ENOTTY);
        test_host_close(&t);
}

static void test_group_node_lifecycle(void **state) {
        TestHost t;
        test_host_open(&t, "workstation");
        const char *gpu = "0000:02:00.0", *audio = "0000:02:00.1";
        int g = group_of(&t, gpu);
        /* vfio-pci not loaded: the override leaves the device unbound */
        assert_int_equal(root_write(t.root, "vfio-pci", "sys/bus/pci/devices/%s/driver_override", gpu), 0);
        assert_int_equal(root_write(t.root, gpu, "sys/bus/pci/devices/%s/driver/unbind", gpu), 0);
        assert_int_equal(root_write(t.root, gpu, "sys/bus/pci/drivers_probe"), 0);
        assert_driver(&t, gpu, NULL);

        assert_int_equal(sim_module_load(t.dir, "vfio-pci"), 0);
        assert_true(root_exists(t.root, "sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts"));
        assert_int_equal(root_write(t.root, gpu, "sys/bus/pci/drivers_probe"), 0);
        assert_driver(&t, gpu, "vfio-pci");
        assert_true(vfio_node(&t, g));
        assert_int_equal(root_write(t.root, "vfio-pci", "sys/bus/pci/devices/%s/driver_override", audio), 0);
        assert_int_equal(root_write(t.root, audio, "sys/bus/pci/drivers/snd_hda_intel/unbind"), 0);
        assert_int_equal(root_write(t.root, audio, "sys/bus/pci/drivers/vfio-pci/bind"), 0);
        assert_driver(&t, audio, "vfio-pci");
        /* the node stays until the last member leaves */
        assert_int_equal(root_write(t.root, gpu, "sys/bus/pci/drivers/vfio-pci/unbind"), 0);
        assert_true(vfio_node(&t, g));
        assert_int_equal(root_write(t.root, audio, "sys/bus/pci/drivers/vfio-pci/unbind"), 0);
        assert_false(vfio_node(&t, g));

        /* vfio-pci refuses bridges: the device stays unbound, drivers_probe succeeds */
        assert_int_equal(root_write(t.root, "vfio-pci", "sys/bus/pci/devices/%s/driver_override", "0000:00:1c.0"), 0);
        assert_int_equal(root_write(t.root, "0000:00:1c.0", "sys/bus/pci/drivers/pcieport/unbind"), 0);
        assert_int_equal(root_write(t.root, "0000:00:1c.0", "sys/bus/pci/drivers_probe"), 0);
        assert_driver(&t, "0000:00:1c.0", NULL);
        assert_int_equal(root_write(t.root, "0000:00:1c.0", "sys/bus/pci/drivers/vfio-pci/bind"), -EINVAL);
        test_host_close(&t);

        test_host_open(&t, "no-iommu");
        const char *q = "0000:3b:00.0";
        assert_int_equal(root_write(t.root, "vfio-pci", "sys/bus/pci/devices/%s/driver_override", q), 0);
        assert_int_equal(root_write(t.root, q, "sys/bus/pci/drivers/nvidia/unbind"), 0);
        assert_int_equal(root_write(t.root, q, "sys/bus/pci/drivers_probe"), 0);
        assert_driver(&t, q, NULL);
        test_host_close(&t);
}

static void test_sriov(void **state) {
        TestHost t;
        test_host_open(&t, "flex-sriov");
        const char *pf = "0000:16:00.0";
        assert_attr(&t, "sys/bus/pci/devices/%s/sriov_numvfs", pf, "0");
        assert_int_equal(root_write(t.root, "32", "sys/bus/pci/devices/%s/sriov_numvfs", pf), -ERANGE);
        assert_int_equal(root_write(t.root, "abc", "sys/bus/pci/devices/%s/sriov_numvfs", pf), -EINVAL);
        assert_int_equal(root_write(t.root, "4\n", "sys/bus/pci/devices/%s/sriov_numvfs", pf), 0);
        assert_attr(&t, "sys/bus/pci/devices/%s/sriov_numvfs", pf, "4");
        test_host_rescan(&t);
        const PciDevice *vf = pci_host_find(t.host, "0000:16:00.1");
        assert_non_null(vf);
        assert_string_equal(vf->physfn, pf);
        assert_string_equal(vf->driver, "i915");
        assert_int_equal(vf->numa_node, 0);
        assert_int_equal(group_size(&t, vf->iommu_group), 1);
        assert_int_not_equal(vf->iommu_group, group_of(&t, pf));
        assert_true(exists(&t, "sys/bus/pci/devices/%s/virtfn3", pf));
        assert_true(root_exists(t.root, "sys/bus/pci/devices/0000:16:00.4/physfn"));
        _cleanup_free_ uint8_t *cfg = NULL;
        size_t n;
        read_cfg(&t, pf, &cfg, &n);
        unsigned sr = pci_config_find_ext_cap(cfg, n, PCI_EXT_CAP_ID_SRIOV);
        assert_int_equal(cfg16(cfg, sr + 0x10), 4);
        assert_int_equal(cfg16(cfg, sr + 0x1a), 0x56c0); /* the VFs' device id, from the PF's capability */
        free(TAKE_PTR(cfg));
        read_cfg(&t, "0000:16:00.1", &cfg, &n);
        assert_int_equal(cfg16(cfg, 0), 0xffff); /* as on the hardware: not the IDs */
        assert_int_equal(cfg16(cfg, 2), 0xffff);
        free(TAKE_PTR(cfg));
        PciDevice *v1 = pci_host_find(t.host, "0000:16:00.1");
        assert_non_null(v1);
        assert_int_equal(v1->device, 0x56c0);          /* from the attribute */
        assert_int_equal(v1->state, PCI_DEVICE_OK); /* a VF answers: it has not fallen off the bus */
        assert_int_equal(root_write(t.root, "2", "sys/bus/pci/devices/%s/sriov_numvfs", pf), -EBUSY);

        /* a VF on vfio-pci, then disable: VFs, their groups and nodes go away */
        int g = vf->iommu_group;
        assert_int_equal(root_write(t.root, "vfio-pci", "sys/bus/pci/devices/0000:16:00.1/driver_override"), 0);
        assert_int_equal(root_write(t.root, "0000:16:00.1", "sys/bus/pci/devices/0000:16:00.1/driver/unbind"), 0);
        assert_int_equal(root_write(t.root, "0000:16:00.1", "sys/bus/pci/drivers_probe"), 0);
        assert_true(vfio_node(&t, g));
        assert_int_equal(root_write(t.root, "0", "sys/bus/pci/devices/%s/sriov_numvfs", pf), 0);
        assert_false(vfio_node(&t, g));
        assert_false(root_exists(t.root, "sys/bus/pci/devices/0000:16:00.1"));
        assert_false(root_exists(t.root, "sys/kernel/iommu_groups/%d", g));
        assert_false(exists(&t, "sys/bus/pci/devices/%s/virtfn0", pf));

        /* autoprobe 0: VFs stay unbound */
        assert_int_equal(root_write(t.root, "x", "sys/bus/pci/devices/%s/sriov_drivers_autoprobe", pf), -EINVAL);
        assert_int_equal(root_write(t.root, "0", "sys/bus/pci/devices/%s/sriov_drivers_autoprobe", pf), 0);
        assert_int_equal(root_write(t.root, "3", "sys/bus/pci/devices/%s/sriov_numvfs", pf), 0);
        assert_driver(&t, "0000:16:00.1", NULL);
        assert_driver(&t, "0000:16:00.3", NULL);
        assert_int_equal(root_write(t.root, "0", "sys/bus/pci/devices/%s/sriov_numvfs", pf), 0);
        test_host_close(&t);
}

static const char U1[] = "8c7f5ad0-3b3e-4f4a-9f51-0c6a1e2b3c4d";
static const char U1_UPPER[] = "8C7F5AD0-3B3E-4F4A-9F51-0C6A1E2B3C4D";
static const char U2[] = "1b2c3d4e-5f60-4718-8a9b-0c1d2e3f4a5b";
static const char U3[] = "9e8d7c6b-5a49-4837-a625-14f3e2d1c0b9";

static void test_mdev(void **state) {
        TestHost t;
        test_host_open(&t, "t4-grid");
        const char *gpu = "0000:3b:00.0";
        const char *types = "sys/bus/pci/devices/0000:3b:00.0/mdev_supported_types";
        assert_true(root_exists(t.root, "sys/class/mdev_bus/%s", gpu));
        assert_attr(&t, "%s/nvidia-231/available_instances", types, "8");
        assert_attr(&t, "%s/nvidia-231/device_api", types, "vfio-pci");
        assert_int_equal(root_write(t.root, "not-a-uuid", "%s/nvidia-231/create", types), -EINVAL);
        assert_int_equal(root_write(t.root, U1, "%s/nvidia-231/create", types), 0);
        assert_true(root_exists(t.root, "sys/bus/mdev/devices/%s/mdev_type", U1));
        assert_true(root_exists(t.root, "sys/bus/mdev/devices/%s/iommu_group/devices/%s", U1, U1));
        assert_true(root_exists(t.root, "sys/bus/mdev/devices/%s/driver", U1));
        assert_true(root_exists(t.root, "%s/nvidia-231/devices/%s", types, U1));
        assert_attr(&t, "%s/nvidia-231/available_instances", types, "7");
        assert_attr(&t, "%s/nvidia-230/available_instances", types, "0");
        assert_int_equal(root_write(t.root, U1_UPPER, "%s/nvidia-231/create", types), -EEXIST);
        assert_int_equal(root_write(t.root, U1, "sys/bus/pci/devices/0000:5e:00.0/mdev_supported_types/nvidia-231/create"),
                         -EEXIST);
        assert_int_equal(root_write(t.root, U2, "%s/nvidia-230/create", types), -EINVAL); /* one type per GPU */
        assert_int_equal(root_write(t.root, "1", "sys/bus/mdev/devices/%s/remove", U1), 0);
        assert_int_equal(root_write(t.root, "1", "sys/bus/mdev/devices/%s/remove", U1), -ENOENT);
        assert_attr(&t, "%s/nvidia-230/available_instances", types, "16");
        assert_false(root_exists(t.root, "sys/bus/mdev/devices/%s", U1));

        /* instances run out: EUSERS */
        assert_int_equal(root_write(t.root, U2, "%s/nvidia-234/create", types), 0);
        assert_attr(&t, "%s/nvidia-234/available_instances", types, "0");
        assert_int_equal(root_write(t.root, U3, "%s/nvidia-234/create", types), -EUSERS);
        /* unbinding the parent removes its mdevs and types */
        assert_int_equal(root_write(t.root, gpu, "sys/bus/pci/drivers/nvidia/unbind"), 0);
        assert_false(root_exists(t.root, "sys/bus/mdev/devices/%s", U2));
        assert_false(root_exists(t.root, "%s", types));
        assert_int_equal(root_write(t.root, gpu, "sys/bus/pci/drivers_probe"), 0);
        assert_attr(&t, "%s/nvidia-234/available_instances", types, "1");
        test_host_close(&t);

        test_host_open(&t, "gvt-g");
        types = "sys/bus/pci/devices/0000:00:02.0/mdev_supported_types";
        assert_true(root_exists(t.root, "sys/class/mdev_bus/0000:00:02.0"));
        assert_attr(&t, "%s/i915-GVTg_V5_4/available_instances", types, "4");
        assert_attr(&t, "%s/i915-GVTg_V5_4/name", types, "GVTg_V5_4");
        assert_int_equal(root_write(t.root, U1, "%s/i915-GVTg_V5_4/create", types), 0);
        assert_attr(&t, "%s/i915-GVTg_V5_4/available_instances", types, "3");
        assert_attr(&t, "%s/i915-GVTg_V5_8/available_instances", types, "6");
        assert_attr(&t, "%s/i915-GVTg_V5_1/available_instances", types, "0");
        assert_int_equal(root_write(t.root, U2, "%s/i915-GVTg_V5_1/create", types), -EUSERS);
        assert_int_equal(root_write(t.root, U2, "%s/i915-GVTg_V5_8/create", types), 0); /* types mix */
        assert_int_equal(root_write(t.root, "1", "sys/bus/mdev/devices/%s/remove", U1), 0);
        assert_attr(&t, "%s/i915-GVTg_V5_4/available_instances", types, "3");
        test_host_close(&t);
}

static void test_vendor_vgpu(void **state) {
        TestHost t;
        test_host_open(&t, "h100");
        const char *vf0 = "sys/bus/pci/devices/0000:16:00.4/nvidia";
        const char *vf1 = "sys/bus/pci/devices/0000:16:00.5/nvidia";
        _cleanup_free_ char *list = attr(&t, "%s/creatable_vgpu_types", vf1);
        assert_non_null(strstr(list, "1047 : NVIDIA H100-10C"));
        assert_non_null(strstr(list, "1044 : NVIDIA H100-4C"));
        free(TAKE_PTR(list));
        assert_attr(&t, "%s/current_vgpu_type", vf0, "0");
        assert_int_equal(root_write(t.root, "9999", "%s/current_vgpu_type", vf0), -EINVAL);
        assert_int_equal(root_write(t.root, "abc", "%s/current_vgpu_type", vf0), -EINVAL);
        assert_int_equal(root_write(t.root, "1047\n", "%s/current_vgpu_type", vf0), 0);
        assert_attr(&t, "%s/current_vgpu_type", vf0, "1047");
        list = attr(&t, "%s/creatable_vgpu_types", vf0);
        assert_string_equal(list, "");
        free(TAKE_PTR(list));
        assert_attr(&t, "%s/creatable_vgpu_types", vf1, "1047 : NVIDIA H100-10C");
        assert_int_equal(root_write(t.root, "1046", "%s/current_vgpu_type", vf0), -EBUSY);
        assert_int_equal(root_write(t.root, "1046", "%s/current_vgpu_type", vf1), -EINVAL);
        assert_int_equal(root_write(t.root, "1047", "%s/current_vgpu_type", vf1), 0);
        /* the other GPU is independent */
        list = attr(&t, "%s/creatable_vgpu_types", "sys/bus/pci/devices/0000:98:00.4/nvidia");
        assert_non_null(strstr(list, "1044 : NVIDIA H100-4C"));
        free(TAKE_PTR(list));
        assert_int_equal(root_write(t.root, "0", "%s/current_vgpu_type", vf0), 0);
        assert_int_equal(root_write(t.root, "0", "%s/current_vgpu_type", vf1), 0);
        list = attr(&t, "%s/creatable_vgpu_types", vf1);
        assert_non_null(strstr(list, "1044 : NVIDIA H100-4C"));
        free(TAKE_PTR(list));
        test_host_close(&t);
}

static void test_faults(void **state) {
        TestHost t;
        test_host_open(&t, "dgx-a100");
        const char *gpu = NULL;
        for (size_t i = 0; i < t.host->n_devices && !gpu; i++)
                if (t.host->devices[i].device == 0x20b0)
                        gpu = t.host->devices[i].addr;
        _cleanup_free_ char *attrname = strdup_printf("%s/driver_override", gpu);
        assert_int_equal(sim_inject_fault(t.dir, attrname, EIO), 0);
        assert_int_equal(sim_inject_fault(t.dir, "unbind", EBUSY), 0);
        assert_int_equal(sim_inject_fault(t.dir, "probe:vfio-pci", ENXIO), 0);
        _cleanup_free_ char *faults = NULL;
        assert_int_equal(root_read_attr(t.root, &faults, ".gpuvirt-sim/faults"), 0);
        assert_non_null(strstr(faults, "unbind EBUSY"));

        /* a partial component does not match */
        assert_int_equal(root_write(t.root, "vfio-pci", "sys/bus/pci/devices/%s/driver_override", gpu), -EIO);
        assert_attr(&t, "sys/bus/pci/devices/%s/driver_override", gpu, "(null)");
        assert_int_equal(root_write(t.root, "vfio-pci", "sys/bus/pci/devices/%s/driver_override", gpu), 0);
        assert_int_equal(root_write(t.root, gpu, "sys/bus/pci/devices/%s/driver/unbind", gpu), -EBUSY);
        assert_driver(&t, gpu, "nvidia");
        assert_int_equal(root_write(t.root, gpu, "sys/bus/pci/devices/%s/driver/unbind", gpu), 0);
        assert_int_equal(root_write(t.root, gpu, "sys/bus/pci/drivers_probe"), -ENXIO);
        assert_driver(&t, gpu, NULL);
        assert_int_equal(root_write(t.root, gpu, "sys/bus/pci/drivers_probe"), 0);
        assert_driver(&t, gpu, "vfio-pci");
        free(TAKE_PTR(faults));
        assert_int_equal(root_read_attr(t.root, &faults, ".gpuvirt-sim/faults"), 0);
        assert_string_equal(faults, "");
        assert_int_equal(sim_inject_fault(t.dir, "rescan", 0), -EINVAL);
        test_host_close(&t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_profiles_layout),
                cmocka_unit_test(test_generated_layout),
                cmocka_unit_test(test_scan_gpus),
                cmocka_unit_test(test_ids_sources),
                cmocka_unit_test(test_layout_details),
                cmocka_unit_test(test_groups),
                cmocka_unit_test(test_vfio_cycle),
                cmocka_unit_test(test_group_node_lifecycle),
                cmocka_unit_test(test_sriov),
                cmocka_unit_test(test_mdev),
                cmocka_unit_test(test_vendor_vgpu),
                cmocka_unit_test(test_faults),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
