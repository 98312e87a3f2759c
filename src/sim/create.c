/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sim_create(): the PCI part of a freshly booted host (device directories, IOMMU groups, drivers,
 * modules). The rest of the system (procfs, /etc, ACPI tables, /lib/modules) is in system.c.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "sim-internal.h"

static const char *link_speed(unsigned gen) {
        static const char *const s[] = {"Unknown", "2.5 GT/s PCIe", "5.0 GT/s PCIe", "8.0 GT/s PCIe",
                                        "16.0 GT/s PCIe", "32.0 GT/s PCIe"};
        return gen < ELEMENTSOF(s) ? s[gen] : "Unknown";
}

static const char *iommu_unit(const SimHost *h) {
        return h->profile->amd ? "ivhd0" : "dmar0";
}

int sim_next_group(const char *root) {
        _cleanup_free_ char *dir = strdup_printf("%s/sys/kernel/iommu_groups", root);
        return dir ? sim_free_index(dir, "") : -ENOMEM;
}

/* Put a device (PCI function or mdev) into group N and link it from both sides. */
int sim_group_add(const char *root, int group, const char *dev_abs, const char *name) {
        _cleanup_free_ char *gdir = strdup_printf("%s/sys/kernel/iommu_groups/%d", root, group);
        _cleanup_free_ char *ddir = strdup_printf("%s/sys/kernel/iommu_groups/%d/devices", root, group);
        _cleanup_free_ char *glink = strdup_printf("%s/devices/%s", gdir ?: "", name);
        _cleanup_free_ char *dlink = strdup_printf("%s/iommu_group", dev_abs);
        _cleanup_free_ char *cmdline = strdup_printf("%s/proc/cmdline", root);
        if (!gdir || !ddir || !glink || !dlink || !cmdline)
                return -ENOMEM;
        int r = mkdir_p(ddir, 0755);
        if (r < 0)
                return r;
        _cleanup_free_ char *tp = strdup_printf("%s/type", gdir);
        if (!tp)
                return -ENOMEM;
        if (!path_exists(tp)) {
                _cleanup_free_ char *cl = NULL;
                bool pt = read_attr(cmdline, &cl) >= 0 && strstr(cl, "iommu=pt");
                r = sim_attr(gdir, "type", 0644, "%s\n", pt ? "identity" : "DMA");
                if (r < 0)
                        return r;
                r = sim_attr(gdir, "reserved_regions", 0444, "0x00000000fee00000 0x00000000feefffff msi\n");
                if (r < 0)
                        return r;
        }
        r = sim_link(dev_abs, glink);
        if (r < 0)
                return r;
        return sim_link(gdir, dlink);
}

static int write_resource(const char *dir, const SimDev *d, uint8_t *cfg) {
        const SimModel *m = d->m;
        bool bridge = (m->class >> 8) == 0x0604;
        unsigned lines = bridge ? 17 : 7;
        char buf[17 * 60], *p = buf;
        for (unsigned i = 0; i < lines; i++) {
                unsigned long long start = 0, end = 0, flags = 0;
                uint32_t bar0 = (uint32_t)cfg[0x10] | (uint32_t)cfg[0x11] << 8 | (uint32_t)cfg[0x12] << 16 |
                                (uint32_t)cfg[0x13] << 24;
                if (i == 0 && !bridge && m->bar0_size_mb > 0) {
                        start = d->is_vf ? 0x38000000000ull + ((unsigned long long)d->bus << 28) +
                                                   ((unsigned long long)(d->slot * 8 + d->func) << 20)
                                         : bar0;
                        end = start + (d->is_vf ? 0x100000ull : (unsigned long long)m->bar0_size_mb << 20) - 1;
                        flags = 0x40200;
                } else if (i == 6 && m->rom && !d->is_vf) {
                        start = bar0 + 0x01000000ull;
                        end = start + 0x7ffff;
                        flags = 0x46200;
                }
                p += sprintf(p, "0x%016llx 0x%016llx 0x%016llx\n", start, end, flags);
        }
        return sim_attr(dir, "resource", 0444, "%s", buf);
}

static const char *reset_method(const SimDev *d) {
        const SimModel *m = d->m;
        bool bridge = (m->class >> 8) == 0x0604;
        if (bridge || m->port == SIM_PORT_HOST)
                return NULL;
        if (d->is_vf)
                return "flr";
        if (d->parent < 0)
                return m->flr ? "flr" : NULL;
        return m->flr ? "flr bus" : "bus";
}

static int cpulist(const SimHost *h, int numa, char *buf, size_t size) {
        unsigned per = SIM_NR_CPUS / MAX(h->profile->numa_nodes, 1u);
        if (numa < 0)
                return snprintf(buf, size, "0-%d", SIM_NR_CPUS - 1);
        return snprintf(buf, size, "%u-%u", per * (unsigned)numa, per * (unsigned)numa + per - 1);
}

static int write_attrs(const char *dir, const SimDev *d, const SimHost *h) {
        const SimModel *m = d->m;
        char cpus[32];
        cpulist(h, d->numa, cpus, sizeof cpus);
        int r = 0;
        r = r ?: sim_attr(dir, "vendor", 0444, "0x%04x\n", m->vendor);
        r = r ?: sim_attr(dir, "device", 0444, "0x%04x\n", m->device);
        r = r ?: sim_attr(dir, "subsystem_vendor", 0444, "0x%04x\n", m->subvendor);
        r = r ?: sim_attr(dir, "subsystem_device", 0444, "0x%04x\n", m->subdevice);
        r = r ?: sim_attr(dir, "class", 0444, "0x%06x\n", m->class);
        r = r ?: sim_attr(dir, "revision", 0444, "0x%02x\n", m->revision);
        r = r ?: sim_attr(dir, "irq", 0444, "%d\n", d->is_vf ? 0 : 16 + (d->bus + d->slot) % 16);
        r = r ?: sim_attr(dir, "enable", 0644, "0\n");
        r = r ?: sim_attr(dir, "numa_node", 0644, "%d\n", d->numa);
        r = r ?: sim_attr(dir, "local_cpulist", 0444, "%s\n", cpus);
        r = r ?: sim_attr(dir, "driver_override", 0644, "(null)\n");
        r = r ?: sim_attr(dir, "power_state", 0444, "D0\n");
        r = r ?: sim_attr(dir, "reset", 0200, "%s", "");
        r = r ?: sim_attr(dir, "modalias", 0444, "pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X\n", m->vendor,
                          m->device, m->subvendor, m->subdevice, m->class >> 16, (m->class >> 8) & 0xff,
                          m->class & 0xff);
        r = r ?: sim_attr(dir, "uevent", 0644, "PCI_CLASS=%X\nPCI_ID=%04X:%04X\nPCI_SUBSYS_ID=%04X:%04X\nPCI_SLOT_NAME=%s\n",
                          m->class, m->vendor, m->device, m->subvendor, m->subdevice, d->name);
        if (r < 0)
                return r;
        if ((m->class >> 8) == 0x0300) {
                r = sim_attr(dir, "boot_vga", 0444, "%d\n", (d->flags & SIM_BOOT_VGA) ? 1 : 0);
                if (r < 0)
                        return r;
        }
        if (m->link_gen > 0 && m->port != SIM_PORT_RCIEP && m->port != SIM_PORT_HOST && m->port != SIM_PORT_PCI) {
                r = r ?: sim_attr(dir, "current_link_speed", 0444, "%s\n", link_speed(m->link_gen));
                r = r ?: sim_attr(dir, "current_link_width", 0444, "%u\n", m->link_width);
                r = r ?: sim_attr(dir, "max_link_speed", 0444, "%s\n", link_speed(m->link_gen));
                r = r ?: sim_attr(dir, "max_link_width", 0444, "%u\n", m->link_width);
                if (r < 0)
                        return r;
        }
        if (m->link_gen > 0 && m->port == SIM_PORT_ENDPOINT) /* AER statistics: zero at boot */
                for (int k = 0; k < _SIM_AER_MAX && r >= 0; k++)
                        r = sim_aer_write(dir, (SimAerKind)k, 0);
        if (r < 0)
                return r;
        const char *rm = reset_method(d);
        if (rm) {
                r = sim_attr(dir, "reset_method", 0644, "%s\n", rm);
                if (r < 0)
                        return r;
        }
        if ((m->class >> 8) == 0x0604) {
                r = r ?: sim_attr(dir, "secondary_bus_number", 0444, "%u\n", d->secondary);
                r = r ?: sim_attr(dir, "subordinate_bus_number", 0444, "%u\n", d->subordinate);
                if (r < 0)
                        return r;
        }
        /* The boot VGA without a ROM BAR still gets a rom attribute: the kernel exposes the shadow copy of
         * its video BIOS at 0xC0000 (128 KiB). */
        bool shadow = !m->rom && (d->flags & SIM_BOOT_VGA);
        if ((m->rom || shadow) && !d->is_vf) {
                /* An option ROM image: 0x55AA signature and a PCI data structure pointer. */
                uint8_t rom[512] = {0x55, 0xaa, 0x40};
                rom[0x18] = 0x1c;
                memcpy(rom + 0x1c, "PCIR", 4);
                rom[0x20] = (uint8_t)m->vendor;
                rom[0x21] = (uint8_t)(m->vendor >> 8);
                rom[0x22] = (uint8_t)m->device;
                rom[0x23] = (uint8_t)(m->device >> 8);
                _cleanup_free_ char *p = strdup_printf("%s/rom", dir);
                if (!p)
                        return -ENOMEM;
                r = sim_file(p, 0600, rom, sizeof rom);
                if (r < 0)
                        return r;
                /* sysfs reports the size of the ROM BAR (resource line 6): sparse, costs nothing on disk */
                if (truncate(p, shadow ? 0x20000 : 0x80000) < 0)
                        return -errno;
        }
        if (m->sriov_total > 0 && !d->is_vf) {
                r = r ?: sim_attr(dir, "sriov_totalvfs", 0444, "%u\n", m->sriov_total);
                r = r ?: sim_attr(dir, "sriov_numvfs", 0644, "0\n");
                r = r ?: sim_attr(dir, "sriov_drivers_autoprobe", 0644, "1\n");
                r = r ?: sim_attr(dir, "sriov_offset", 0444, "%u\n", m->sriov_offset);
                r = r ?: sim_attr(dir, "sriov_stride", 0444, "%u\n", m->sriov_stride);
                r = r ?: sim_attr(dir, "sriov_vf_device", 0444, "%x\n", m->vf_device);
                if (r < 0)
                        return r;
        }
        return 0;
}

int sim_write_device(const char *root, const SimHost *h, const SimDev *d) {
        _cleanup_free_ char *dir = strdup_printf("%s/%s", root, d->path);
        _cleanup_free_ char *msi = strdup_printf("%s/msi_irqs", dir ?: "");
        _cleanup_free_ char *cfgp = strdup_printf("%s/config", dir ?: "");
        _cleanup_free_ char *sub = strdup_printf("%s/subsystem", dir ?: "");
        _cleanup_free_ char *bus = strdup_printf("%s/sys/bus/pci", root);
        _cleanup_free_ char *blink = strdup_printf("%s/sys/bus/pci/devices/%s", root, d->name);
        if (!dir || !msi || !cfgp || !sub || !bus || !blink)
                return -ENOMEM;
        int r = mkdir_p(msi, 0755);
        if (r < 0)
                return r;
        uint8_t cfg[4096];
        sim_config_build(d, 0, cfg);
        r = sim_file(cfgp, 0644, cfg, sizeof cfg);
        if (r < 0)
                return r;
        r = write_attrs(dir, d, h);
        if (r < 0)
                return r;
        r = write_resource(dir, d, cfg);
        if (r < 0)
                return r;
        if (d->m->msix || d->m->port == SIM_PORT_ROOT || d->m->port == SIM_PORT_DOWNSTREAM) {
                int irq = 120 + (d->bus * 8 + d->slot * 2 + d->func) % 800;
                _cleanup_free_ char *n = strdup_printf("%d", irq);
                if (!n)
                        return -ENOMEM;
                r = sim_attr(msi, n, 0444, "%s\n", d->m->msix ? "msix" : "msi");
                if (r < 0)
                        return r;
        }
        r = sim_link(bus, sub);
        if (r < 0)
                return r;
        r = sim_link(dir, blink);
        if (r < 0)
                return r;
        if (d->group >= 0) {
                r = sim_group_add(root, d->group, dir, d->name);
                if (r < 0)
                        return r;
                _cleanup_free_ char *unit = strdup_printf("%s/sys/devices/virtual/iommu/%s", root, iommu_unit(h));
                _cleanup_free_ char *ulink = strdup_printf("%s/devices/%s", unit ?: "", d->name);
                _cleanup_free_ char *dlink = strdup_printf("%s/iommu", dir);
                if (!unit || !ulink || !dlink)
                        return -ENOMEM;
                r = sim_link(dir, ulink);
                if (r < 0)
                        return r;
                r = sim_link(unit, dlink);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- drivers and modules --------------------------------------------------------------------------- */

static int write_driver_dir(const char *root, const char *driver, const char *module) {
        _cleanup_free_ char *dir = strdup_printf("%s/sys/bus/pci/drivers/%s", root, driver);
        if (!dir)
                return -ENOMEM;
        if (dir_exists(dir))
                return 0;
        int r = mkdir_p(dir, 0755);
        if (r < 0)
                return r;
        r = r ?: sim_attr(dir, "bind", 0200, "%s", "");
        r = r ?: sim_attr(dir, "unbind", 0200, "%s", "");
        r = r ?: sim_attr(dir, "new_id", 0200, "%s", "");
        r = r ?: sim_attr(dir, "remove_id", 0200, "%s", "");
        r = r ?: sim_attr(dir, "uevent", 0200, "%s", "");
        if (r < 0 || !module)
                return r;
        _cleanup_free_ char *mdir = strdup_printf("%s/sys/module/%s", root, module);
        _cleanup_free_ char *mlink = strdup_printf("%s/module", dir);
        _cleanup_free_ char *back = strdup_printf("%s/sys/module/%s/drivers/pci:%s", root, module, driver);
        _cleanup_free_ char *backdir = strdup_printf("%s/sys/module/%s/drivers", root, module);
        if (!mdir || !mlink || !back || !backdir)
                return -ENOMEM;
        r = mkdir_p(backdir, 0755);
        if (r < 0)
                return r;
        r = sim_link(mdir, mlink);
        if (r < 0)
                return r;
        return sim_link(dir, back);
}


static int write_module(const char *root, const char *module) {
        _cleanup_free_ char *dir = strdup_printf("%s/sys/module/%s", root, module);
        if (!dir)
                return -ENOMEM;
        int r = mkdir_p(dir, 0755);
        if (r < 0)
                return r;
        r = r ?: sim_attr(dir, "initstate", 0444, "live\n");
        r = r ?: sim_attr(dir, "refcnt", 0444, "0\n");
        r = r ?: sim_attr(dir, "coresize", 0444, "%d\n", 65536);
        if (r < 0)
                return r;
        if (streq(module, "vfio_iommu_type1")) {
                _cleanup_free_ char *pd = strdup_printf("%s/parameters", dir);
                if (!pd)
                        return -ENOMEM;
                r = mkdir_p(pd, 0755);
                r = r ?: sim_attr(pd, "allow_unsafe_interrupts", 0644, "N\n");
                r = r ?: sim_attr(pd, "dma_entry_limit", 0644, "65535\n");
        } else if (streq(module, "vfio_pci")) {
                _cleanup_free_ char *pd = strdup_printf("%s/parameters", dir);
                if (!pd)
                        return -ENOMEM;
                r = mkdir_p(pd, 0755);
                r = r ?: sim_attr(pd, "enable_sriov", 0644, "N\n");
                r = r ?: sim_attr(pd, "disable_vga", 0444, "N\n");
                r = r ?: sim_attr(pd, "disable_idle_d3", 0444, "N\n");
        } else if (streq(module, "vfio")) {
                _cleanup_free_ char *vdir = strdup_printf("%s/dev/vfio", root);
                if (!vdir)
                        return -ENOMEM;
                r = mkdir_p(vdir, 0755);
                r = r ?: sim_attr(vdir, "vfio", 0666, "%s", "");
        } else if (streq(module, "nvidia")) {
                r = sim_nvidia_module_load(root);
        } else if (streq(module, "kvm")) {
                _cleanup_free_ char *ddir = strdup_printf("%s/dev", root);
                if (!ddir)
                        return -ENOMEM;
                r = mkdir_p(ddir, 0755);
                r = r ?: sim_attr(ddir, "kvm", 0660, "%s", "");
        }
        if (r < 0)
                return r;
        const char *drv = sim_module_driver(module);
        return drv ? write_driver_dir(root, drv, module) : 0;
}

/* Load a module as modprobe would: its dependencies first. */
int sim_module_load_internal(const char *root, const SimHost *h, const char *module) {
        static const char *const vfio_pci_deps[] = {"irqbypass", "vfio", "vfio_iommu_type1", "vfio_pci_core",
                                                    "vfio_pci", NULL};
        static const char *const kvm_deps[] = {"irqbypass", "kvm", NULL};
        const char *const *deps = NULL;
        if (streq(module, "vfio_pci") || streq(module, "vfio-pci"))
                deps = vfio_pci_deps;
        else if (streq(module, "kvm_intel") || streq(module, "kvm_amd"))
                deps = kvm_deps;
        for (const char *const *d = deps; d && *d; d++) {
                int r = write_module(root, *d);
                if (r < 0)
                        return r;
        }
        return deps == vfio_pci_deps ? 0 : write_module(root, module);
}

static int write_modules(const char *root, const SimHost *h) {
        const SimProfile *p = h->profile;
        int r = sim_module_load_internal(root, h, p->amd ? "kvm_amd" : "kvm_intel");
        if (r < 0)
                return r;
        r = write_driver_dir(root, "pcieport", NULL);
        if (r < 0)
                return r;
        for (size_t i = 0; i < h->n; i++) {
                const char *drv = h->devs[i].m->driver;
                const char *mod = drv ? sim_driver_module(drv) : NULL;
                if (mod) {
                        r = write_module(root, mod);
                        if (r < 0)
                                return r;
                }
        }
        if (p->vfio_loaded) {
                r = sim_module_load_internal(root, h, "vfio_pci");
                if (r < 0)
                        return r;
        }
        for (const char *const *m = p->extra_modules; *m; m++) {
                r = write_module(root, *m);
                if (r < 0)
                        return r;
        }
        if (p->mdev) {
                _cleanup_free_ char *dd = strdup_printf("%s/sys/bus/mdev/drivers/vfio_mdev", root);
                _cleanup_free_ char *dv = strdup_printf("%s/sys/bus/mdev/devices", root);
                _cleanup_free_ char *cl = strdup_printf("%s/sys/class/mdev_bus", root);
                _cleanup_free_ char *ml = strdup_printf("%s/sys/bus/mdev/drivers/vfio_mdev/module", root);
                _cleanup_free_ char *mt = strdup_printf("%s/sys/module/vfio_mdev", root);
                if (!dd || !dv || !cl || !ml || !mt)
                        return -ENOMEM;
                r = mkdir_p(dd, 0755);
                r = r ?: mkdir_p(dv, 0755);
                r = r ?: mkdir_p(cl, 0755);
                r = r ?: sim_attr(dd, "bind", 0200, "%s", "");
                r = r ?: sim_attr(dd, "unbind", 0200, "%s", "");
                r = r ?: sim_link(mt, ml);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int write_bus(const char *root, const SimHost *h) {
        static const char *const dirs[] = {
                "sys/bus/pci/devices", "sys/bus/pci/drivers", "sys/bus/pci/slots", "sys/kernel/iommu_groups",
                "sys/class/iommu",     "sys/module",          "dev",               "sys/devices/virtual",
        };
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                _cleanup_free_ char *p = strdup_printf("%s/%s", root, dirs[i]);
                if (!p)
                        return -ENOMEM;
                int r = mkdir_p(p, 0755);
                if (r < 0)
                        return r;
        }
        _cleanup_free_ char *bus = strdup_printf("%s/sys/bus/pci", root);
        if (!bus)
                return -ENOMEM;
        int r = 0;
        r = r ?: sim_attr(bus, "drivers_probe", 0200, "%s", "");
        r = r ?: sim_attr(bus, "drivers_autoprobe", 0644, "1\n");
        r = r ?: sim_attr(bus, "rescan", 0200, "%s", "");
        r = r ?: sim_attr(bus, "resource_alignment", 0644, "\n");
        if (r < 0)
                return r;
        for (size_t i = 0; i < h->n; i++) {
                if (h->devs[i].parent >= 0)
                        continue;
                _cleanup_free_ char *pb = strdup_printf("%s/sys/devices/pci0000:%02x", root, h->devs[i].root_bus);
                if (!pb)
                        return -ENOMEM;
                r = mkdir_p(pb, 0755);
                r = r ?: sim_attr(pb, "uevent", 0644, "%s", "");
                if (r < 0)
                        return r;
        }
        if (h->profile->iommu_kernel) {
                const char *u = iommu_unit(h);
                _cleanup_free_ char *unit = strdup_printf("%s/sys/devices/virtual/iommu/%s", root, u);
                _cleanup_free_ char *devs = strdup_printf("%s/devices", unit ?: "");
                _cleanup_free_ char *cl = strdup_printf("%s/sys/class/iommu/%s", root, u);
                _cleanup_free_ char *intel = strdup_printf("%s/intel-iommu", unit ?: "");
                _cleanup_free_ char *amd = strdup_printf("%s/amd-iommu", unit ?: "");
                if (!unit || !devs || !cl || !intel || !amd)
                        return -ENOMEM;
                r = mkdir_p(devs, 0755);
                r = r ?: sim_link(unit, cl);
                if (r < 0)
                        return r;
                if (h->profile->amd) {
                        r = mkdir_p(amd, 0755);
                        r = r ?: sim_attr(amd, "cap", 0444, "0x%x\n", 0x190b6407);
                        r = r ?: sim_attr(amd, "features", 0444, "%s\n", "25bf732fa2295afe:53d");
                } else {
                        r = mkdir_p(intel, 0755);
                        r = r ?: sim_attr(intel, "cap", 0444, "%s\n", "8d2078c106f0466");
                        r = r ?: sim_attr(intel, "ecap", 0444, "%s\n", "f020df");
                        r = r ?: sim_attr(intel, "version", 0444, "%s\n", "1:0");
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

static int attach_boot(const char *root, const SimHost *h, const SimDev *d) {
        _cleanup_free_ char *dir = strdup_printf("%s/%s", root, d->path);
        if (!dir)
                return -ENOMEM;
        if (d->m->driver) {
                _cleanup_free_ char *dd = strdup_printf("%s/sys/bus/pci/drivers/%s", root, d->m->driver);
                if (!dd)
                        return -ENOMEM;
                if (dir_exists(dd)) {
                        int r = sim_attach(root, h, dir, d->m->driver);
                        if (r < 0)
                                return r;
                }
        }
        if ((d->flags & SIM_VFS_AT_BOOT) && d->m->sriov_total > 0)
                return sim_sriov_enable(root, h, d, dir, d->m->sriov_total, true);
        return 0;
}


int sim_create(const char *dir, const char *profile) {
        if (!dir || !profile)
                return -EINVAL;
        _cleanup_sim_host_free_ SimHost *h = NULL;
        int r = sim_host_new(profile, &h);
        if (r < 0)
                return r;

        if (dir_exists(dir)) {
                _cleanup_strv_free_ char **l = NULL;
                r = dir_list(dir, &l);
                if (r < 0)
                        return r;
                if (r > 0)
                        return -EEXIST;
        } else if (path_exists(dir))
                return -EEXIST;
        r = mkdir_p(dir, 0755);
        if (r < 0)
                return r;
        _cleanup_free_ char *root = realpath(dir, NULL);
        if (!root)
                return negative_errno();

        _cleanup_free_ char *marker = strdup_printf("%s/" SIM_MARKER_DIR, root);
        if (!marker)
                return -ENOMEM;
        r = mkdir_p(marker, 0755);
        r = r ?: sim_attr(marker, "profile", 0644, "%s\n", profile);
        r = r ?: sim_attr(marker, "faults", 0644, "%s", "");
        r = r ?: mkdir_p(marker, 0755);
        if (r < 0)
                return r;
        /* procfs first: group types depend on the command line */
        r = sim_system_write(root, h);
        if (r < 0)
                return r;
        r = write_bus(root, h);
        if (r < 0)
                return r;
        r = write_modules(root, h);
        if (r < 0)
                return r;
        for (size_t i = 0; i < h->n; i++) {
                r = sim_write_device(root, h, &h->devs[i]);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < h->n; i++) {
                r = attach_boot(root, h, &h->devs[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

int sim_create_generated(const char *dir, unsigned devices, unsigned gpus) {
        char spec[64];
        snprintf(spec, sizeof spec, SIM_GENERATED_PROFILE ":%u:%u", devices, gpus);
        return sim_create(dir, spec);
}
