/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "core/host/inventory.h"
#include "core/host/iommu.h"
#include "core/mig/mig.h"
#include "core/passthrough/vfio.h"
#include "core/vgpu/vgpu-types.h"

bool inventory_is_gpu(const PciDevice *d, bool include_vfs) {
        /* a dead device whose class is unknown (its directory gone or unreadable) may be a GPU: shown */
        return (pci_device_is_display(d) || (pci_device_is_dead(d) && d->class == 0)) && (include_vfs || !d->physfn);
}

bool nvidia_mig_capable(uint16_t vendor, uint16_t device) {
        /* A100 (SXM4 40/80 GB, PCIe 40/80 GB, 64 GB), A800, A30, H100 (SXM5, PCIe, NVL), H800, H200, H20,
         * B200. Issue-time knowledge; NVML is the authority where it is loaded. */
        static const uint16_t ids[] = {
                0x20b0, 0x20b2, 0x20b3, 0x20b5, 0x20f1, 0x20f3, 0x20f5, 0x20b7, 0x2330, 0x2331,
                0x2321, 0x2322, 0x2324, 0x2335, 0x233a, 0x233b, 0x2329, 0x2901,
        };
        if (vendor != PCI_VENDOR_NVIDIA)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(ids); i++)
                if (ids[i] == device)
                        return true;
        return false;
}

static json_object *json_hex16(uint16_t v) {
        char buf[8];
        snprintf(buf, sizeof buf, "0x%04x", v);
        return json_object_new_string(buf);
}

char *passthrough_blocker(const PciHost *h, const PciDevice *d) {
        if (d->state == PCI_DEVICE_OFF_BUS)
                return strdup("off the bus (config space reads 0xff)");
        if (pci_device_is_dead(d))
                return strdup_printf("device %s", d->state == PCI_DEVICE_VANISHED ? "vanished" : "unreadable");
        if (d->iommu_group < 0)
                return strdup("no IOMMU group (IOMMU off)");
        if (d->boot_vga == 1)
                return strdup("boot VGA (host console)");
        _cleanup_free_ GroupMember *m = NULL;
        size_t n = 0;
        if (iommu_group_members(h, d, &m, &n) < 0)
                return strdup("IOMMU group unreadable");
        size_t foreign = group_members_count(m, n, GROUP_MEMBER_FOREIGN);
        if (foreign == 0)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (m[i].kind == GROUP_MEMBER_FOREIGN)
                        return strdup_printf("group %d shared with %s%s", d->iommu_group, m[i].device->addr,
                                             foreign > 1 ? " and others" : "");
        return NULL;
}

static json_object *group_json(const PciHost *h, const PciDevice *d) {
        json_object *a = json_object_new_array();
        _cleanup_free_ GroupMember *m = NULL;
        size_t n = 0;
        if (iommu_group_members(h, d, &m, &n) == 0)
                for (size_t i = 1; i < n; i++)
                        json_object_array_add(a, json_object_new_string(m[i].device->addr));
        return a;
}

static json_object *group_detail_json(const PciHost *h, PciNames *names, const PciDevice *d) {
        json_object *a = json_object_new_array();
        _cleanup_free_ GroupMember *m = NULL;
        size_t n = 0;
        if (iommu_group_members(h, d, &m, &n) < 0)
                return a;
        for (size_t i = 1; i < n; i++) {
                json_object *o = json_object_new_object();
                const PciDevice *x = m[i].device;
                _cleanup_free_ char *nm = pci_names_device(names, x->vendor, x->device);
                json_object_object_add(o, "address", json_object_new_string(x->addr));
                json_object_object_add(o, "name", json_string_or_null(nm));
                json_object_object_add(o, "driver", json_string_or_null(x->driver));
                json_object_object_add(o, "relation",
                                       json_object_new_string(group_member_kind_to_string(m[i].kind)));
                json_object_array_add(a, o);
        }
        return a;
}

static json_object *link_json(const PciDevice *d) {
        if (!d->link_speed && !d->link_width)
                return NULL;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "speed", json_string_or_null(d->link_speed));
        int w;
        json_object_object_add(o, "width", d->link_width && parse_int(d->link_width, &w) == 0 ?
                                                   json_object_new_int(w) : NULL);
        json_object_object_add(o, "max_speed", json_string_or_null(d->max_link_speed));
        json_object_object_add(o, "max_width", d->max_link_width && parse_int(d->max_link_width, &w) == 0 ?
                                                       json_object_new_int(w) : NULL);
        return o;
}

static json_object *sriov_json(const PciHost *h, const PciDevice *d) {
        if (d->sriov_totalvfs < 0)
                return NULL;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "total_vfs", json_object_new_int(d->sriov_totalvfs));
        json_object_object_add(o, "num_vfs", json_object_new_int(d->sriov_numvfs));
        json_object *vfs = json_object_new_array();
        for (size_t i = 0; i < h->n_devices; i++)
                if (h->devices[i].physfn && streq(h->devices[i].physfn, d->addr))
                        json_object_array_add(vfs, json_object_new_string(h->devices[i].addr));
        json_object_object_add(o, "vfs", vfs);
        return o;
}

static json_object *mdev_json(const PciHost *h, const PciDevice *d) {
        if (!d->has_mdev_types)
                return NULL;
        MdevType *t = NULL;
        size_t n = 0;
        if (mdev_types_read(h->root, d->syspath, &t, &n) < 0)
                return NULL;
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < n; i++)
                json_object_array_add(a, mdev_type_json(&t[i]));
        mdev_types_free(t, n);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "types", a);
        return o;
}

static json_object *vendor_types_json(const VendorVgpuType *t, size_t n) {
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < n; i++) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "id", json_object_new_int((int)t[i].id));
                json_object_object_add(o, "name", json_object_new_string(t[i].name));
                json_object_array_add(a, o);
        }
        return a;
}

/* NVIDIA vendor-VFIO vGPU: on a PF, a summary of its VFs; on a VF, its own state. */
static json_object *vendor_vgpu_json(const PciHost *h, const PciDevice *d) {
        if (d->has_vendor_vgpu) {
                unsigned cur = 0;
                VendorVgpuType *t = NULL;
                size_t n = 0;
                (void)vendor_vgpu_current(h->root, d->syspath, &cur);
                json_object *o = json_object_new_object();
                json_object_object_add(o, "current_type", json_object_new_int((int)cur));
                if (vendor_vgpu_types_read(h->root, d->syspath, &t, &n) == 0) {
                        json_object_object_add(o, "types", vendor_types_json(t, n));
                        vendor_vgpu_types_free(t, n);
                }
                return o;
        }
        if (d->sriov_totalvfs < 0)
                return NULL;
        int total = 0, used = 0;
        json_object *types = NULL;
        for (size_t i = 0; i < h->n_devices; i++) {
                const PciDevice *vf = &h->devices[i];
                if (!vf->physfn || !streq(vf->physfn, d->addr) || !vf->has_vendor_vgpu)
                        continue;
                total++;
                unsigned cur = 0;
                if (vendor_vgpu_current(h->root, vf->syspath, &cur) == 0 && cur != 0) {
                        used++;
                        continue;
                }
                if (!types) {
                        VendorVgpuType *t = NULL;
                        size_t n = 0;
                        if (vendor_vgpu_types_read(h->root, vf->syspath, &t, &n) == 0) {
                                types = vendor_types_json(t, n);
                                vendor_vgpu_types_free(t, n);
                        }
                }
        }
        if (total == 0)
                return NULL;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "vfs", json_object_new_int(total));
        json_object_object_add(o, "vfs_in_use", json_object_new_int(used));
        json_object_object_add(o, "types", types ?: json_object_new_array());
        return o;
}

int inventory_device(const PciHost *h, PciNames *names, const PciDevice *d, json_object **ret) {
        json_object *o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        _cleanup_free_ char *vname = pci_names_vendor(names, d->vendor);
        _cleanup_free_ char *dname = pci_names_device(names, d->vendor, d->device);
        char cls[16];
        snprintf(cls, sizeof cls, "0x%06x", d->class);

        json_object_object_add(o, "address", json_object_new_string(d->addr));
        json_object_object_add(o, "state", json_object_new_string(pci_device_state_to_string(d->state)));
        json_object_object_add(o, "vendor_id", json_hex16(d->vendor));
        json_object_object_add(o, "device_id", json_hex16(d->device));
        json_object_object_add(o, "subsystem_vendor_id", json_hex16(d->subsystem_vendor));
        json_object_object_add(o, "subsystem_device_id", json_hex16(d->subsystem_device));
        json_object_object_add(o, "class", json_object_new_string(cls));
        json_object_object_add(o, "vendor_name", json_string_or_null(vname));
        json_object_object_add(o, "name", json_string_or_null(dname));
        json_object_object_add(o, "driver", json_string_or_null(d->driver));
        json_object_object_add(o, "driver_override", json_string_or_null(d->driver_override));
        json_object_object_add(o, "iommu_group", d->iommu_group >= 0 ? json_object_new_int(d->iommu_group) : NULL);
        json_object_object_add(o, "group_members", group_json(h, d));
        json_object_object_add(o, "group", group_detail_json(h, names, d));
        json_object_object_add(o, "numa_node", json_object_new_int(d->numa_node));
        json_object_object_add(o, "boot_vga", json_object_new_boolean(d->boot_vga == 1));
        json_object_object_add(o, "parent", json_string_or_null(d->parent));
        json_object_object_add(o, "physfn", json_string_or_null(d->physfn));
        json_object_object_add(o, "link", link_json(d));

        json_object *modes = json_object_new_object();
        json_object *pt = json_object_new_object();
        _cleanup_free_ char *why = passthrough_blocker(h, d);
        json_object_object_add(pt, "ready", json_object_new_boolean(!why));
        json_object_object_add(pt, "bound", json_object_new_boolean(d->is_vfio));
        json_object_object_add(pt, "reason", json_string_or_null(why));
        /* When the group node exists: is the group usable by a VM (the kernel's answer on a live host)? */
        json_object *viable = NULL;
        if (d->iommu_group >= 0 && root_exists(h->root, "dev/vfio/%d", d->iommu_group)) {
                int v = vfio_group_viable(h->root, h, d->iommu_group);
                if (v >= 0)
                        viable = json_object_new_boolean(v);
        }
        json_object_object_add(pt, "viable", viable);
        json_object_object_add(modes, "passthrough", pt);
        bool dead = pci_device_is_dead(d); /* what its attributes still say is stale: not offered */
        json_object_object_add(modes, "sriov", dead ? NULL : sriov_json(h, d));
        json_object_object_add(modes, "mdev", dead ? NULL : mdev_json(h, d));
        json_object_object_add(modes, "vendor_vgpu", dead ? NULL : vendor_vgpu_json(h, d));
        json_object *mig = json_object_new_object();
        json_object_object_add(mig, "capable",
                               json_object_new_boolean(!dead && nvidia_mig_capable(d->vendor, d->device) && !d->physfn));
        json_object_object_add(modes, "mig", mig);
        json_object_object_add(o, "modes", modes);
        *ret = o;
        return 0;
}

int inventory_list(const PciHost *h, PciNames *names, bool include_vfs, json_object **ret) {
        json_object *a = json_object_new_array();
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < h->n_devices; i++) {
                const PciDevice *d = &h->devices[i];
                if (!inventory_is_gpu(d, include_vfs))
                        continue;
                json_object *o;
                int r = inventory_device(h, names, d, &o);
                if (r < 0) {
                        json_object_put(a);
                        return r;
                }
                json_object_array_add(a, o);
        }
        *ret = a;
        return 0;
}

static void add_mig_one(json_object *dev, const MigGpu *gpus, size_t n) {
        const char *addr = json_object_get_string(json_object_object_get(dev, "address"));
        const MigGpu *g = NULL;
        for (size_t i = 0; addr && i < n && !g; i++)
                if (streq(gpus[i].address, addr))
                        g = &gpus[i];
        if (!g)
                return;
        json_object *mig = json_object_new_object();
        json_object_object_add(mig, "capable", json_object_new_boolean(g->capable));
        if (g->capable) {
                /* as NVML says it: the mode now, and the mode after the next GPU reset */
                json_object *mode = json_object_new_object();
                json_object_object_add(mode, "current",
                                       json_object_new_string(g->mode_current == 1 ? "enabled" : "disabled"));
                json_object_object_add(mode, "pending",
                                       json_object_new_string(g->mode_pending == 1 ? "enabled" : "disabled"));
                json_object_object_add(mig, "mig_mode", mode);
                json_object_object_add(mig, "instances", json_object_new_int((int)g->n_inst));
        }
        json_object_object_add(json_object_object_get(dev, "modes"), "mig", mig);
}

void inventory_add_mig(json_object *o, const MigGpu *gpus, size_t n) {
        if (json_object_is_type(o, json_type_array))
                for (size_t i = 0; i < json_object_array_length(o); i++)
                        add_mig_one(json_object_array_get_idx(o, i), gpus, n);
        else
                add_mig_one(o, gpus, n);
}
