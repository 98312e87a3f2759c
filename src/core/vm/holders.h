/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "basic/gverror.h"
#include "core/advise/knowledge.h"
#include "core/host/root.h"
#include "core/vm/hostdev.h"
#include "core/vm/libvirt.h"

/*
 * Who holds a unit (which libvirt domains reference it), whether a device may be given back to the host,
 * and whether a domain's GPU units can be live-migrated. Pure decisions over libvirt's domain list: the
 * callers list the domains (virt_list_domains) and render the verdicts.
 */

typedef struct Holder {
        const VirtDomain *dom;
        bool live, config; /* the running / persistent definition references the unit */
} Holder;

/* Every domain whose live or persistent definition references the unit. -ENOMEM. */
int unit_holders(const Unit *u, const VirtDomain *doms, size_t n, Holder **ret, size_t *ret_n);

/* A running domain other than `except` (may be NULL) whose live definition references the unit. */
const VirtDomain *unit_running_holder(const Unit *u, const VirtDomain *doms, size_t n, const char *except);

/* How many of the unit's hostdevs the domain's definition (inactive: the persistent one, else the running
 * one) holds, as libvirt hands it back; -errno on failure (libvirt's message on v). */
int vm_unit_count(Virt *v, const char *dom, bool inactive, const Unit *u);

/* After u was detached from dom (live and/or config): the domain that still references it and so keeps it
 * from going back to the host, as "NAME (running)" or "NAME (persistent config)" in *ret_kept_for (NULL when
 * none). -errno when libvirt cannot list its domains (its message on v), -ENOMEM. */
int vm_detach_holder(Virt *v, const Unit *u, const char *dom, bool live, bool config, char **ret_kept_for);

/* Releasing a PCI device from vfio-pci: a running domain that holds a function of its IOMMU group
 * (all non-bridge members, or the device alone without a group) holds the device. */
typedef struct ReleaseHolder {
        char *domain;    /* NULL: nobody holds it (or the device is not on vfio-pci: nothing to release) */
        char *device;    /* the member the domain references */
        int iommu_group; /* -1: none */
} ReleaseHolder;

void release_holder_done(ReleaseHolder *h);

/* 0 with ret filled (ret->domain NULL when free). -errno with err when libvirt cannot list its domains
 * (its message) or on -ENOMEM. A device that cannot be scanned or found is free: the release itself says
 * what is wrong with it. */
int vm_release_holder(Root *root, Virt *v, const char *bdf, ReleaseHolder *ret, GvError *err);

/* What live migration needs of the host (libvirt, QEMU, kernel versions). */
typedef struct MigrationHost {
        unsigned long libvirt; /* major*1000000+minor*1000+micro, 0 unknown */
        unsigned long qemu;    /* 0: unknown or not a QEMU connection */
        bool is_qemu;
        int kernel;            /* major*1000+minor, -1 unknown (a blocker: not shown to be new enough) */
} MigrationHost;

/* kernel of a host whose kernel cannot be read from here (a migration's destination: libvirt does not
 * report it); its libvirt and QEMU versions are still checked */
#define MIGRATION_KERNEL_NOT_CHECKED (-2)

/* The versions of this connection (v may be NULL: unknown); the kernel of the root (NULL: unknown). */
void migration_host(Root *root, Virt *v, MigrationHost *ret);

/* How the unit reaches the VM: the knowledge table's row (core/advise/knowledge.h) its verdict comes from. */
UnitPath unit_migration_path(const Unit *u);

/* Append to *blockers (strv, n counts) what keeps u from live migration, from the knowledge table's
 * migration row of its path: vfio-pci devices cannot move, a vGPU needs a driver with VFIO migration (the
 * NVIDIA one) and the libvirt, QEMU and kernel versions of the row (8.6, 8.1, 5.18). -ENOMEM. */
int unit_migration_blockers(const Unit *u, const MigrationHost *m, char ***blockers, size_t *n);
