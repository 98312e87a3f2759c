/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "core/vm/libvirt.h"
#include "core/host/pci.h"
#include "core/passthrough/vfio.h"

/*
 * Assignable units and their libvirt <hostdev> XML.
 *
 * A unit is what one VM gets:
 *  - pci:         a whole device with the other functions of its card in its IOMMU group (GPU + HDMI
 *                 audio), one hostdev per function, guest functions kept together on one slot;
 *  - vf:          an SR-IOV virtual function (one hostdev);
 *  - mdev:        a mediated device, named by its UUID (GRID vGPU, GVT-g);
 *  - vendor_vgpu: an NVIDIA VF carrying a vGPU type (nvidia/current_vgpu_type non-zero); it stays on
 *                 the nvidia driver, which is its VFIO provider, and is passed as a PCI hostdev.
 * Every PCI hostdev is managed='no': gpuvirt owns the driver binding, not libvirt.
 */

typedef enum UnitKind {
        UNIT_PCI,
        UNIT_VF,
        UNIT_MDEV,
        UNIT_VENDOR_VGPU,
        _UNIT_KIND_MAX,
        _UNIT_KIND_INVALID = -EINVAL,
} UnitKind;

const char *unit_kind_to_string(UnitKind k) _pure_;

typedef struct Unit {
        UnitKind kind;
        char id[40];       /* canonical BDF (function 0 of the card for pci), or the mdev UUID */
        PciAddr *funcs;    /* PCI functions that go to the guest, lowest first (none for mdev) */
        size_t n_funcs;
        int iommu_group;   /* -1: none */
        char *parent;      /* mdev: parent device name; vf, vendor_vgpu: the PF */
        char *type;        /* mdev: type id ("nvidia-222"); vendor_vgpu: type number ("1046") */
        char *driver;      /* pci/vf/vendor_vgpu: driver of the first function; mdev: the parent's */
        uint16_t vendor, device; /* pci/vf/vendor_vgpu: IDs of the first function; mdev: the parent's */
} Unit;

void unit_done(Unit *u);

bool uuid_is_valid(const char *s);

/* Resolve user input to a unit: a PCI address (any function of the card) or an mdev UUID.
 * -EINVAL malformed input, -ENODEV no such device or mdev, -EPERM a bridge. */
int unit_resolve(Root *root, const PciHost *h, const char *input, Unit *ret);

/* 0 when every PCI function of the unit, its PF and an mdev's PCI parent answer on the bus; -ENODEV with
 * ret_error (pci_device_dead_message) for the first that does not. */
int unit_require_alive(Root *root, const Unit *u, GvError *err);

/* Does a domain's hostdev reference this unit (any of its functions, or its UUID)? */
bool unit_matches(const Unit *u, const HostdevRef *ref);
/* The hostdev references of the unit (one per function, or the UUID). */
int unit_refs(const Unit *u, HostdevRef **ret, size_t *ret_n);

/* The bare <hostdev> elements for the unit. guest_slot >= 0 places multifunction units on that slot of
 * guest bus 0 (function 0 with multifunction='on'); single-function units get no guest address (libvirt
 * assigns one) unless guest_slot is given. */
char *unit_hostdev_xml(const Unit *u, int guest_slot);
/* The same, one element per function: for hot-plug, which takes one device per call. */
int unit_hostdev_elements(const Unit *u, int guest_slot, char ***ret, size_t *ret_n);

/*
 * Preparing and releasing on the host, through the one write path:
 *  pci/vf: vfio_enable / vfio_disable (transactional, see vfio.h); mdev: nothing to prepare, release
 *  removes it; vendor_vgpu: nothing to prepare, release writes 0 to current_vgpu_type.
 * *ret_changed: whether prepare changed anything (what a rollback must undo).
 */
int unit_prepare(Root *root, const Unit *u, const VfioOptions *o, VfioReport *rep, bool *ret_changed);
int unit_release(Root *root, const Unit *u, const VfioOptions *o, VfioReport *rep);

