/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "basic/gverror.h"
#include "core/host/pci.h"
#include "core/host/root.h"
#include "core/vm/holders.h"
#include "core/vm/hostdev.h"
#include "core/vm/libvirt.h"

/*
 * What `vm list` shows, as data: the host's GPU units (whole GPUs, their VFs plain or with a vendor vGPU
 * type, mdevs) and every other device a domain references (present on this host or not), who holds each,
 * and per domain its units, whether they can be live-migrated (and what blocks it) and warnings about its
 * definition (a consumer NVIDIA GPU without hidden KVM). Nothing here prints.
 */

typedef struct VmListUnit {
        Unit unit;
        bool present;          /* false: a domain references it but this host has no such device */
        Holder *holders;       /* the domains whose definitions reference it (pointing into VmList.doms) */
        size_t n_holders;
        const VirtDomain *held_by; /* the running domain whose live definition holds it, or NULL */
} VmListUnit;

typedef struct VmListDomain {
        const VirtDomain *dom;
        size_t *units;     /* indexes into VmList.units of the units its effective definition references */
        size_t n_units;
        bool migratable;   /* live migration is possible (only meaningful with units) */
        char **blockers;   /* what keeps its units from live migration (strv) */
        size_t n_blockers;
        char **warnings;   /* about its definition (strv) */
        size_t n_warnings;
} VmListDomain;

typedef struct VmList {
        VirtDomain *doms; /* libvirt's domains (none when libvirt is not consulted or could not list them) */
        size_t n_doms;
        char *libvirt_error; /* why the domains could not be listed (NULL: they were, or v was NULL) */
        VmListUnit *units;
        size_t n_units;
        VmListDomain *domains; /* one per doms[i], in that order */
} VmList;

void vm_list_done(VmList *l);

/* Gather the list. v NULL: libvirt is not consulted (units only). A libvirt that cannot list its domains is
 * not a failure (ret->libvirt_error says why); -ENOMEM is. */
int vm_list_gather(Root *root, const PciHost *h, Virt *v, VmList *ret, GvError *err);
