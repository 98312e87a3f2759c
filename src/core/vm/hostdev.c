/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "core/vm/hostdev.h"
#include "core/vgpu/mdev.h"
#include "core/vgpu/vendor-vgpu.h"
#include "core/host/iommu.h"

static const char *const kind_names[_UNIT_KIND_MAX] = {
        [UNIT_PCI] = "pci",
        [UNIT_VF] = "vf",
        [UNIT_MDEV] = "mdev",
        [UNIT_VENDOR_VGPU] = "vendor_vgpu",
};

const char *unit_kind_to_string(UnitKind k) {
        return k >= 0 && k < _UNIT_KIND_MAX ? kind_names[k] : NULL;
}

void unit_done(Unit *u) {
        free(u->funcs);
        free(u->parent);
        free(u->type);
        free(u->driver);
        *u = (Unit){.iommu_group = -1};
}

bool uuid_is_valid(const char *s) {
        char buf[MDEV_UUID_STRLEN];
        return mdev_uuid_parse(s, buf) == 0;
}

static int cmp_addr(const void *a, const void *b) {
        const PciAddr *x = a, *y = b;
        uint64_t kx = (uint64_t)x->domain << 16 | (unsigned)x->bus << 8 | (unsigned)x->slot << 3 | x->func;
        uint64_t ky = (uint64_t)y->domain << 16 | (unsigned)y->bus << 8 | (unsigned)y->slot << 3 | y->func;
        return kx < ky ? -1 : kx > ky;
}

static int resolve_mdev(Root *root, const char *input, Unit *u) {
        char uuid[37];
        for (size_t i = 0; i < 37; i++)
                uuid[i] = (char)tolower((unsigned char)input[i]);
        if (!root_exists(root, "sys/bus/mdev/devices/%s", uuid))
                return -ENODEV;
        _cleanup_free_ char *link = root_path(root, "sys/bus/mdev/devices/%s", uuid);
        _cleanup_free_ char *dir = NULL;
        if (!link)
                return -ENOMEM;
        int r = readlink_resolved(link, &dir);
        if (r < 0)
                return r;
        char *slash = strrchr(dir, '/');
        if (!slash)
                return -ENODEV;
        *slash = '\0';
        u->kind = UNIT_MDEV;
        memcpy(u->id, uuid, sizeof uuid);
        u->parent = strdup(strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir);
        _cleanup_free_ char *tl = strdup_printf("%s/mdev_type", link), *gl = strdup_printf("%s/iommu_group", link);
        _cleanup_free_ char *dl = strdup_printf("%s/driver", dir), *group = NULL;
        if (!u->parent || !tl || !gl || !dl)
                return -ENOMEM;
        (void)readlink_base(tl, &u->type);
        (void)readlink_base(dl, &u->driver);
        if (readlink_base(gl, &group) >= 0)
                (void)parse_int(group, &u->iommu_group);
        _cleanup_free_ char *vp = strdup_printf("%s/vendor", dir), *v = NULL;
        uint32_t x;
        if (vp && read_attr(vp, &v) >= 0 && parse_u32(v, 16, &x) >= 0)
                u->vendor = (uint16_t)x; /* a PCI parent's vendor (none for virtual parents) */
        return 0;
}

int unit_resolve(Root *root, const PciHost *h, const char *input, Unit *ret) {
        Unit u = {.iommu_group = -1};
        int r;
        if (uuid_is_valid(input)) {
                r = resolve_mdev(root, input, &u);
                if (r < 0) {
                        unit_done(&u);
                        return r;
                }
                *ret = u;
                return 0;
        }
        PciDevice *d;
        r = pci_host_lookup(h, input, &d);
        if (r < 0)
                return r;
        if (pci_device_is_bridge(d))
                return -EPERM;
        u.iommu_group = d->iommu_group;
        if (d->physfn) {
                _cleanup_free_ char *type = NULL;
                unsigned t = 0;
                if (root_read_attr(root, &type, "sys/bus/pci/devices/%s/nvidia/current_vgpu_type", d->addr) >= 0 &&
                    parse_u32(type, 10, &t) >= 0 && t != 0) {
                        u.kind = UNIT_VENDOR_VGPU;
                        u.type = strdup_printf("%u", t);
                } else
                        u.kind = UNIT_VF;
                u.parent = strdup(d->physfn);
                u.funcs = calloc(1, sizeof *u.funcs);
                if (!u.parent || !u.funcs || (u.kind == UNIT_VENDOR_VGPU && !u.type)) {
                        unit_done(&u);
                        return -ENOMEM;
                }
                u.funcs[u.n_funcs++] = d->a;
        } else {
                /* The card's functions that share its group (a GPU's HDMI audio), VFs excluded. */
                u.kind = UNIT_PCI;
                u.funcs = calloc(h->n_devices, sizeof *u.funcs);
                if (!u.funcs)
                        return -ENOMEM;
                for (size_t i = 0; i < h->n_devices; i++) {
                        const PciDevice *x = &h->devices[i];
                        if (pci_device_is_bridge(x) || x->physfn || !pci_addr_same_card(&x->a, &d->a) ||
                            x->iommu_group != d->iommu_group)
                                continue;
                        u.funcs[u.n_funcs++] = x->a;
                }
                qsort(u.funcs, u.n_funcs, sizeof *u.funcs, cmp_addr);
        }
        /* the unit is named by its first function */
        const PciDevice *first = d;
        char buf[PCI_ADDR_STRLEN];
        pci_addr_format(&u.funcs[0], buf);
        if (pci_host_find(h, buf))
                first = pci_host_find(h, buf);
        snprintf(u.id, sizeof u.id, "%s", first->addr);
        u.vendor = first->vendor;
        u.device = first->device;
        if (first->driver && !(u.driver = strdup(first->driver))) {
                unit_done(&u);
                return -ENOMEM;
        }
        *ret = u;
        return 0;
}

int unit_require_alive(Root *root, const Unit *u, GvError *err) {
        for (size_t i = 0; i < u->n_funcs; i++) {
                char a[PCI_ADDR_STRLEN];
                int r = pci_device_require_alive(root, pci_addr_format(&u->funcs[i], a), err);
                if (r < 0)
                        return r;
        }
        /* the PF of a VF, the parent of an mdev (when it is a PCI device; virtual parents have no address) */
        PciAddr pa;
        if (u->parent && pci_addr_parse(u->parent, &pa) == 0)
                return pci_device_require_alive(root, u->parent, err);
        return 0;
}

bool unit_matches(const Unit *u, const HostdevRef *ref) {
        if (u->kind == UNIT_MDEV)
                return ref->type == HOSTDEV_TYPE_MDEV && strcasecmp(ref->uuid, u->id) == 0;
        if (ref->type != HOSTDEV_TYPE_PCI)
                return false;
        for (size_t i = 0; i < u->n_funcs; i++)
                if (hostdev_ref_equal(ref, &(HostdevRef){.type = HOSTDEV_TYPE_PCI, .addr = u->funcs[i]}))
                        return true;
        return false;
}

int unit_refs(const Unit *u, HostdevRef **ret, size_t *ret_n) {
        size_t n = u->kind == UNIT_MDEV ? 1 : u->n_funcs;
        HostdevRef *refs = calloc(n ?: 1, sizeof *refs);
        if (!refs)
                return -ENOMEM;
        if (u->kind == UNIT_MDEV) {
                refs[0].type = HOSTDEV_TYPE_MDEV;
                memcpy(refs[0].uuid, u->id, sizeof refs[0].uuid - 1);
        } else
                for (size_t i = 0; i < n; i++)
                        refs[i] = (HostdevRef){.type = HOSTDEV_TYPE_PCI, .addr = u->funcs[i]};
        *ret = refs;
        *ret_n = n;
        return 0;
}

static char *pci_element(const PciAddr *a, int guest_slot, unsigned guest_func, bool multifunction) {
        _cleanup_free_ char *guest = guest_slot < 0 ? strdup("") :
                strdup_printf("  <address type='pci' domain='0x0000' bus='0x00' slot='0x%02x' function='0x%x'%s/>\n",
                              (unsigned)guest_slot, guest_func, multifunction ? " multifunction='on'" : "");
        if (!guest)
                return NULL;
        return strdup_printf("<hostdev mode='subsystem' type='pci' managed='no'>\n"
                             "  <source>\n"
                             "    <address domain='0x%04x' bus='0x%02x' slot='0x%02x' function='0x%x'/>\n"
                             "  </source>\n"
                             "%s"
                             "</hostdev>\n",
                             a->domain, a->bus, a->slot, a->func, guest);
}

int unit_hostdev_elements(const Unit *u, int guest_slot, char ***ret, size_t *ret_n) {
        char **l = NULL;
        size_t n = 0;
        if (u->kind == UNIT_MDEV) {
                char *e = strdup_printf("<hostdev mode='subsystem' type='mdev' model='vfio-pci'>\n"
                                        "  <source>\n"
                                        "    <address uuid='%s'/>\n"
                                        "  </source>\n"
                                        "</hostdev>\n",
                                        u->id);
                if (!e || strv_push(&l, &n, e) < 0) {
                        free(e);
                        strv_free(l);
                        return -ENOMEM;
                }
        } else
                for (size_t i = 0; i < u->n_funcs; i++) {
                        char *e = pci_element(&u->funcs[i], guest_slot, (unsigned)i, i == 0 && u->n_funcs > 1);
                        if (!e || strv_push(&l, &n, e) < 0) {
                                free(e);
                                strv_free(l);
                                return -ENOMEM;
                        }
                }
        *ret = l;
        *ret_n = n;
        return 0;
}

char *unit_hostdev_xml(const Unit *u, int guest_slot) {
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0;
        if (unit_hostdev_elements(u, guest_slot, &l, &n) < 0)
                return NULL;
        size_t len = 1;
        for (size_t i = 0; i < n; i++)
                len += strlen(l[i]);
        char *s = calloc(len, 1);
        if (!s)
                return NULL;
        for (size_t i = 0; i < n; i++)
                strcat(s, l[i]);
        return s;
}

int unit_prepare(Root *root, const Unit *u, const VfioOptions *o, VfioReport *rep, bool *ret_changed) {
        *rep = (VfioReport){.group = u->iommu_group};
        *ret_changed = false;
        if (u->kind != UNIT_PCI && u->kind != UNIT_VF)
                return 0; /* mdev and vendor vGPU: their VFIO provider is the vendor driver */
        int r = vfio_enable(root, u->id, o, rep);
        if (r < 0)
                return r;
        for (size_t i = 0; i < rep->n_changes; i++)
                *ret_changed |= rep->changes[i].changed;
        return 0;
}

int unit_release(Root *root, const Unit *u, const VfioOptions *o, VfioReport *rep) {
        *rep = (VfioReport){.group = u->iommu_group};
        switch (u->kind) {
        case UNIT_PCI:
        case UNIT_VF:
                return vfio_disable(root, u->id, o, rep);
        case UNIT_MDEV:
        case UNIT_VENDOR_VGPU:
                return u->kind == UNIT_MDEV ? mdev_remove(root, u->id, false, &rep->error)
                                            : vendor_vgpu_remove(root, u->id, false, &rep->error);
        default:
                return -EINVAL;
        }
}

