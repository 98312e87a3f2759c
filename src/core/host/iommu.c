/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>

#include "basic/fileio.h"
#include "core/host/iommu.h"

static const char *const group_member_kind_table[_GROUP_MEMBER_KIND_MAX] = {
        [GROUP_MEMBER_SELF] = "self",
        [GROUP_MEMBER_COMPANION] = "companion",
        [GROUP_MEMBER_BRIDGE] = "bridge",
        [GROUP_MEMBER_FOREIGN] = "foreign",
};

const char *group_member_kind_to_string(GroupMemberKind k) {
        return k >= 0 && k < _GROUP_MEMBER_KIND_MAX ? group_member_kind_table[k] : NULL;
}

IommuState iommu_state(const PciHost *h, size_t *ret_groups) {
        /* distinct groups, in one pass (the pairwise search was quadratic: 2,000 devices, 4 million steps) */
        size_t groups = 0;
        int max = -1;
        for (size_t i = 0; i < h->n_devices; i++)
                max = MAX(max, h->devices[i].iommu_group);
        _cleanup_free_ bool *seen = max >= 0 ? calloc((size_t)max + 1, sizeof(bool)) : NULL;
        for (size_t i = 0; i < h->n_devices; i++) {
                int g = h->devices[i].iommu_group;
                if (g < 0)
                        continue;
                if (!seen) { /* out of memory: still the right count, the slow way */
                        bool dup = false;
                        for (size_t k = 0; k < i && !dup; k++)
                                dup = h->devices[k].iommu_group == g;
                        groups += !dup;
                } else if (!seen[g]) {
                        seen[g] = true;
                        groups++;
                }
        }
        if (ret_groups)
                *ret_groups = groups;
        if (groups > 0)
                return IOMMU_ON;
        if (!root_missing_is_unknown(h->root))
                return IOMMU_OFF;
        /* a capture: an empty sys/kernel/iommu_groups says off; none, or groups without links, cannot tell */
        _cleanup_free_ char *p = root_path(h->root, "sys/kernel/iommu_groups");
        _cleanup_strv_free_ char **l = NULL;
        if (!p || dir_list(p, &l) < 0)
                return IOMMU_UNKNOWN;
        for (char **e = l; *e; e++)
                if (**e != '.') /* a capture keeps an empty directory with a dot file (git drops empty ones) */
                        return IOMMU_UNKNOWN;
        return IOMMU_OFF;
}

/* Functions of one slot behind a bridge are one card (GPU + HDMI audio + USB-C). On a root bus they are
 * integrated devices that merely share a slot (chipset LPC, SATA, SMBus): only a display function and its
 * audio function of the same vendor count as one device there. */
static bool integrated_companions(const PciDevice *d, const PciDevice *m) {
        unsigned a = d->class >> 16, b = m->class >> 16;
        return d->vendor == m->vendor && (a == 0x03 || a == 0x04) && (b == 0x03 || b == 0x04);
}

static GroupMemberKind classify(const PciDevice *d, const PciDevice *m) {
        if (m == d)
                return GROUP_MEMBER_SELF;
        if (pci_device_is_bridge(m))
                return GROUP_MEMBER_BRIDGE;
        if (pci_addr_same_card(&d->a, &m->a) && (d->parent || integrated_companions(d, m)))
                return GROUP_MEMBER_COMPANION;
        /* A VF of d, or d's PF and its other VFs. */
        if ((m->physfn && streq(m->physfn, d->addr)) || (d->physfn && streq(d->physfn, m->addr)) ||
            (d->physfn && m->physfn && streq(d->physfn, m->physfn)))
                return GROUP_MEMBER_COMPANION;
        return GROUP_MEMBER_FOREIGN;
}

int iommu_group_members(const PciHost *h, const PciDevice *d, GroupMember **ret, size_t *ret_n) {
        if (d->iommu_group < 0)
                return -ENOENT;
        size_t n = 0;
        for (size_t i = 0; i < h->n_devices; i++)
                if (h->devices[i].iommu_group == d->iommu_group)
                        n++;
        GroupMember *m = calloc(n ?: 1, sizeof *m);
        if (!m)
                return -ENOMEM;
        size_t k = 0;
        m[k++] = (GroupMember){(PciDevice *)d, GROUP_MEMBER_SELF};
        for (size_t i = 0; i < h->n_devices && k < n; i++) {
                PciDevice *x = &h->devices[i];
                if (x == d || x->iommu_group != d->iommu_group)
                        continue;
                m[k++] = (GroupMember){x, classify(d, x)};
        }
        *ret = m;
        *ret_n = k;
        return 0;
}

size_t group_members_count(const GroupMember *m, size_t n, GroupMemberKind kind) {
        size_t c = 0;
        for (size_t i = 0; i < n; i++)
                if (m[i].kind == kind)
                        c++;
        return c;
}

bool iommu_group_viable(const PciHost *h, int group) {
        if (group < 0)
                return false;
        for (size_t i = 0; i < h->n_devices; i++) {
                const PciDevice *x = &h->devices[i];
                if (x->iommu_group != group || pci_device_is_bridge(x))
                        continue;
                if (x->driver && !x->is_vfio && !streq(x->driver, "pci-stub"))
                        return false;
        }
        return true;
}
