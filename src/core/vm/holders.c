/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "basic/fileio.h"
#include "core/host/iommu.h"
#include "core/vm/holders.h"

int unit_holders(const Unit *u, const VirtDomain *doms, size_t n, Holder **ret, size_t *ret_n) {
        Holder *hs = calloc(n ?: 1, sizeof *hs);
        if (!hs)
                return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                Holder x = {.dom = &doms[i]};
                for (size_t j = 0; j < doms[i].live.n_hostdevs; j++)
                        x.live |= unit_matches(u, &doms[i].live.hostdevs[j]);
                for (size_t j = 0; j < doms[i].config.n_hostdevs; j++)
                        x.config |= unit_matches(u, &doms[i].config.hostdevs[j]);
                if (x.live || x.config)
                        hs[k++] = x;
        }
        *ret = hs;
        *ret_n = k;
        return 0;
}

const VirtDomain *unit_running_holder(const Unit *u, const VirtDomain *doms, size_t n, const char *except) {
        for (size_t i = 0; i < n; i++) {
                if (!doms[i].active || (except && streq(doms[i].name, except)))
                        continue;
                for (size_t j = 0; j < doms[i].live.n_hostdevs; j++)
                        if (unit_matches(u, &doms[i].live.hostdevs[j]))
                                return &doms[i];
        }
        return NULL;
}

int vm_unit_count(Virt *v, const char *dom, bool inactive, const Unit *u) {
        _cleanup_free_ char *xml = NULL;
        int r = virt_domain_xml(v, dom, inactive, &xml);
        if (r < 0)
                return r;
        DomainXmlInfo info;
        r = domain_xml_parse(xml, &info);
        if (r < 0)
                return r;
        int k = 0;
        for (size_t i = 0; i < info.n_hostdevs; i++)
                k += unit_matches(u, &info.hostdevs[i]);
        domain_xml_info_done(&info);
        return k;
}

int vm_detach_holder(Virt *v, const Unit *u, const char *dom, bool live, bool config, char **ret_kept_for) {
        _cleanup_virt_domains_ VirtDomains l = {};
        int r = virt_list_domains(v, &l.d, &l.n);
        if (r < 0)
                return r;
        _cleanup_free_ Holder *hs = NULL;
        size_t nh = 0;
        char *kept = NULL;
        r = unit_holders(u, l.d, l.n, &hs, &nh);
        for (size_t i = 0; r >= 0 && i < nh && !kept; i++) {
                /* what this detach removed no longer counts */
                if (streq(hs[i].dom->name, dom) && !(hs[i].config && !config) && !(hs[i].live && !live))
                        continue;
                if (hs[i].config || (hs[i].live && hs[i].dom->active)) {
                        kept = strdup_printf("%s (%s)", hs[i].dom->name,
                                             hs[i].live && hs[i].dom->active ? "running" : "persistent config");
                        if (!kept)
                                r = -ENOMEM;
                }
        }
        if (r < 0)
                return r;
        *ret_kept_for = kept;
        return 0;
}

void release_holder_done(ReleaseHolder *h) {
        free(h->domain);
        free(h->device);
        *h = (ReleaseHolder){.iommu_group = -1};
}

int vm_release_holder(Root *root, Virt *v, const char *bdf, ReleaseHolder *ret, GvError *err) {
        _cleanup_pci_host_free_ PciHost *h = NULL;
        *ret = (ReleaseHolder){.iommu_group = -1};
        if (pci_host_scan(root, &h) < 0)
                return 0;
        PciDevice *d;
        if (pci_host_lookup(h, bdf, &d) < 0 || !d->is_vfio)
                return 0; /* not on vfio: the release changes nothing */
        _cleanup_virt_domains_ VirtDomains l = {};
        int r = virt_list_domains(v, &l.d, &l.n);
        VirtDomain *doms = l.d;
        size_t n = l.n;
        if (r < 0) {
                _cleanup_(gv_error_done) GvError le = {};
                (void)virt_error_take(v, &le, r, bdf, NULL);
                return gv_error_set(err, r, bdf, "virConnectListAllDomains", "Cannot list libvirt domains at %s (%s)",
                                    virt_uri(v), gv_error_message(&le));
        }
        _cleanup_free_ GroupMember *m = NULL;
        size_t nm = 0;
        const VirtDomain *holder = NULL;
        const char *held = NULL;
        if (d->iommu_group >= 0 && iommu_group_members(h, d, &m, &nm) >= 0) {
                for (size_t i = 0; i < nm && !holder; i++) {
                        Unit one = {.kind = UNIT_VF, .funcs = &m[i].device->a, .n_funcs = 1};
                        holder = unit_running_holder(&one, doms, n, NULL);
                        held = m[i].device->addr;
                }
        } else {
                Unit one = {.kind = UNIT_VF, .funcs = &d->a, .n_funcs = 1};
                holder = unit_running_holder(&one, doms, n, NULL);
                held = d->addr;
        }
        ReleaseHolder x = {.iommu_group = d->iommu_group};
        if (holder && (!(x.domain = strdup(holder->name)) || !(x.device = strdup(held)))) {
                release_holder_done(&x);
                return gv_error_set(err, -ENOMEM, bdf, NULL, NULL);
        }
        *ret = x;
        return 0;
}

static int kernel_version(Root *root) {
        _cleanup_free_ char *rel = NULL;
        unsigned maj = 0, min = 0;
        if (!root || root_read_attr(root, &rel, "proc/sys/kernel/osrelease") < 0 || sscanf(rel, "%u.%u", &maj, &min) != 2)
                return -1;
        return (int)(maj * 1000 + min);
}

void migration_host(Root *root, Virt *v, MigrationHost *ret) {
        MigrationHost m = {.libvirt = v ? virt_lib_version(v) : 0, .is_qemu = v && startswith(virt_uri(v), "qemu")};
        m.qemu = m.is_qemu ? virt_hv_version(v) : 0;
        m.kernel = kernel_version(root);
        *ret = m;
}

UnitPath unit_migration_path(const Unit *u) {
        bool nvidia = u->driver && streq(u->driver, "nvidia");
        switch (u->kind) {
        case UNIT_MDEV:
                return nvidia ? UNIT_PATH_MDEV_NVIDIA : u->driver && streq(u->driver, "i915") ? UNIT_PATH_MDEV_GVTG
                                                                                                : UNIT_PATH_MDEV_OTHER;
        case UNIT_VENDOR_VGPU:
                return nvidia ? UNIT_PATH_VF_NVIDIA : UNIT_PATH_MDEV_OTHER;
        default:
                return UNIT_PATH_VFIO_PCI;
        }
}

static int push(char ***l, size_t *n, char *s) {
        return s ? strv_push(l, n, s) : -ENOMEM;
}

int unit_migration_blockers(const Unit *u, const MigrationHost *m, char ***l, size_t *n) {
        const MigrationFacts *f = migration_facts(unit_migration_path(u));
        if (f->path == UNIT_PATH_VFIO_PCI)
                return push(l, n, strdup_printf("%s: %s on vfio-pci cannot be migrated", u->id,
                                                u->kind == UNIT_VF ? "an SR-IOV VF" : "a passed-through device"));
        if (!f->migratable)
                return push(l, n, strdup_printf("%s: vGPU driver %s has no VFIO migration support", u->id,
                                                u->driver ?: "(none)"));
        int r;
        if (m->libvirt < f->libvirt_min &&
            (r = push(l, n, strdup_printf("%s: vGPU migration needs libvirt >= %lu.%lu", u->id, f->libvirt_min / 1000000,
                                          f->libvirt_min / 1000 % 1000))) < 0)
                return r;
        if ((!m->is_qemu || m->qemu < f->qemu_min) &&
            (r = push(l, n, strdup_printf("%s: vGPU migration needs QEMU >= %lu.%lu%s", u->id, f->qemu_min / 1000000,
                                          f->qemu_min / 1000 % 1000, m->is_qemu ? "" : " (not a QEMU domain)"))) < 0)
                return r;
        if (m->kernel != MIGRATION_KERNEL_NOT_CHECKED && m->kernel < f->kernel_min &&
            (r = push(l, n, strdup_printf("%s: vGPU migration needs kernel >= %d.%d", u->id, f->kernel_min / 1000,
                                          f->kernel_min % 1000))) < 0)
                return r;
        return 0;
}
