/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The data of `vm list` (vmlist.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "basic/fileio.h"
#include "core/host/names.h"
#include "core/vm/vmlist.h"

void vm_list_done(VmList *l) {
        if (!l)
                return;
        for (size_t i = 0; i < l->n_units; i++) {
                unit_done(&l->units[i].unit);
                free(l->units[i].holders);
        }
        free(l->units);
        for (size_t i = 0; l->domains && i < l->n_doms; i++) {
                free(l->domains[i].units);
                strv_free(l->domains[i].blockers);
                strv_free(l->domains[i].warnings);
        }
        free(l->domains);
        virt_domains_free(l->doms, l->n_doms);
        free(l->libvirt_error);
        *l = (VmList){};
}

static bool list_has(const VmList *l, const char *id) {
        for (size_t i = 0; i < l->n_units; i++)
                if (strcasecmp(l->units[i].unit.id, id) == 0)
                        return true;
        return false;
}

/* Append u (taken, also on failure). */
static int list_push(VmList *l, Unit *u, bool present) {
        VmListUnit *x = realloc(l->units, (l->n_units + 1) * sizeof *x);
        if (!x) {
                unit_done(u);
                return -ENOMEM;
        }
        l->units = x;
        x[l->n_units++] = (VmListUnit){.unit = *u, .present = present};
        return 0;
}

/* A unit of the host (a GPU function, an mdev), once. */
static int add_host_unit(VmList *l, Root *root, const PciHost *h, const char *name) {
        Unit u;
        if (unit_resolve(root, h, name, &u) < 0)
                return 0;
        if (list_has(l, u.id)) {
                unit_done(&u);
                return 0;
        }
        return list_push(l, &u, true);
}

/* A device a domain references that is not one of the host's GPU units: another PCI device, or one this
 * host lacks (present false). */
static int add_referenced(VmList *l, Root *root, const PciHost *h, const HostdevRef *ref) {
        for (size_t q = 0; q < l->n_units; q++)
                if (unit_matches(&l->units[q].unit, ref))
                        return 0;
        char id[40];
        if (ref->type == HOSTDEV_TYPE_MDEV)
                snprintf(id, sizeof id, "%s", ref->uuid);
        else
                pci_addr_format(&ref->addr, id);
        Unit u;
        if (unit_resolve(root, h, id, &u) >= 0)
                return list_push(l, &u, true);
        u = (Unit){.kind = ref->type == HOSTDEV_TYPE_MDEV ? UNIT_MDEV : UNIT_PCI, .iommu_group = -1};
        snprintf(u.id, sizeof u.id, "%s", id);
        if (ref->type == HOSTDEV_TYPE_PCI) {
                u.funcs = malloc(sizeof *u.funcs);
                if (!u.funcs)
                        return -ENOMEM;
                u.funcs[u.n_funcs++] = ref->addr;
        }
        return list_push(l, &u, false);
}

static int gather_units(VmList *l, Root *root, const PciHost *h) {
        int r;
        /* GPU units: whole GPUs, their VFs (plain or vendor vGPU), mdevs */
        for (size_t i = 0; i < h->n_devices; i++) {
                const PciDevice *d = &h->devices[i];
                const PciDevice *pf = d->physfn ? pci_host_find(h, d->physfn) : d;
                if (pci_device_is_bridge(d) || !pf || !pci_device_is_display(pf))
                        continue;
                if ((r = add_host_unit(l, root, h, d->addr)) < 0)
                        return r;
        }
        _cleanup_strv_free_ char **mdevs = NULL;
        _cleanup_free_ char *mdir = root_path(root, "sys/bus/mdev/devices");
        if (!mdir)
                return -ENOMEM;
        (void)dir_list(mdir, &mdevs);
        for (size_t i = 0; mdevs && mdevs[i]; i++)
                if ((r = add_host_unit(l, root, h, mdevs[i])) < 0)
                        return r;
        /* anything else a domain references: other PCI devices, and devices this host lacks */
        for (size_t i = 0; i < l->n_doms; i++)
                for (int k = 0; k < 2; k++) {
                        const DomainXmlInfo *x = k ? &l->doms[i].config : &l->doms[i].live;
                        for (size_t j = 0; j < x->n_hostdevs; j++)
                                if ((r = add_referenced(l, root, h, &x->hostdevs[j])) < 0)
                                        return r;
                }
        for (size_t i = 0; i < l->n_units; i++) {
                VmListUnit *x = &l->units[i];
                if ((r = unit_holders(&x->unit, l->doms, l->n_doms, &x->holders, &x->n_holders)) < 0)
                        return r;
                x->held_by = unit_running_holder(&x->unit, l->doms, l->n_doms, NULL);
        }
        return 0;
}

static bool is_consumer_nvidia(PciNames *names, const Unit *u) {
        if (!names || u->vendor != PCI_VENDOR_NVIDIA || u->kind == UNIT_MDEV || u->kind == UNIT_VENDOR_VGPU)
                return false;
        _cleanup_free_ char *nm = pci_names_device(names, u->vendor, u->device);
        return nm && (strstr(nm, "GeForce") || strstr(nm, "TITAN") || strstr(nm, "Titan"));
}

/* A domain's units (of its effective definition: the running one when it runs), their live migration
 * (core: unit_migration_blockers) and the warnings about its definition. */
static int gather_domain(VmList *l, const VirtDomain *d, const MigrationHost *mh, PciNames *names, VmListDomain *ret) {
        const DomainXmlInfo *eff = d->active ? &d->live : &d->config;
        VmListDomain x = {.dom = d};
        int r = 0;
        if (!(x.units = calloc(l->n_units ?: 1, sizeof *x.units)))
                return -ENOMEM;
        for (size_t q = 0; q < l->n_units; q++)
                for (size_t j = 0; j < eff->n_hostdevs; j++)
                        if (unit_matches(&l->units[q].unit, &eff->hostdevs[j])) {
                                x.units[x.n_units++] = q;
                                break;
                        }
        for (size_t q = 0; r >= 0 && q < x.n_units; q++) {
                const Unit *u = &l->units[x.units[q]].unit;
                if (is_consumer_nvidia(names, u) && !eff->kvm_hidden) {
                        char *w = strdup_printf("%s is a consumer NVIDIA GPU and the domain does not hide KVM: NVIDIA "
                                                "drivers before R465 stop with Error 43; add <kvm><hidden state='on'/></kvm> "
                                                "to <features>",
                                                u->id);
                        r = w ? strv_push(&x.warnings, &x.n_warnings, w) : -ENOMEM;
                        if (r < 0)
                                free(w);
                }
        }
        for (size_t q = 0; r >= 0 && q < x.n_units; q++)
                r = unit_migration_blockers(&l->units[x.units[q]].unit, mh, &x.blockers, &x.n_blockers);
        if (r < 0) {
                free(x.units);
                strv_free(x.blockers);
                strv_free(x.warnings);
                return r;
        }
        x.migratable = x.n_blockers == 0;
        *ret = x;
        return 0;
}

int vm_list_gather(Root *root, const PciHost *h, Virt *v, VmList *ret, GvError *err) {
        VmList l = {};
        int r = 0;
        if (v && (r = virt_list_domains(v, &l.doms, &l.n_doms)) < 0) {
                l.n_doms = 0;
                _cleanup_(gv_error_done) GvError le = {};
                (void)virt_error_take(v, &le, r, NULL, NULL);
                r = (l.libvirt_error = strdup(gv_error_message(&le))) ? 0 : -ENOMEM;
        }
        if (r >= 0)
                r = gather_units(&l, root, h);
        if (r >= 0 && !(l.domains = calloc(l.n_doms ?: 1, sizeof *l.domains)))
                r = -ENOMEM;
        if (r >= 0 && l.n_doms > 0) {
                MigrationHost mh = {};
                migration_host(root, v, &mh);
                _cleanup_pci_names_free_ PciNames *names = NULL;
                (void)pci_names_new(&names);
                for (size_t i = 0; r >= 0 && i < l.n_doms; i++)
                        r = gather_domain(&l, &l.doms[i], &mh, names, &l.domains[i]);
        }
        if (r < 0) {
                vm_list_done(&l);
                return gv_error_set(err, r, NULL, NULL, NULL);
        }
        *ret = l;
        return 0;
}
