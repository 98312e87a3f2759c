/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "basic/gverror.h"
#include "core/host/pci.h"

/*
 * Passthrough: moving a device and the rest of its IOMMU group to vfio-pci with the driver_override
 * sequence, and giving it back. Transactional: on any failure every function goes back to the driver
 * it had; no device is left without a driver.
 *
 * The sequence for one function (libvirt, driverctl and Incus do the same):
 *   1. write the target driver to <dev>/driver_override
 *   2. if bound: write the BDF to <dev>/driver/unbind
 *   3. write the BDF to sys/bus/pci/drivers_probe
 *   4. check that <dev>/driver now points at the target
 * Release: restore driver_override, unbind from vfio-pci, bind the remembered driver (or probe).
 */

#define VFIO_PCI_DRIVER "vfio-pci"

typedef struct VfioOptions {
        bool force;          /* boot VGA, group held open, foreign members (with include) */
        char **include;      /* foreign group members the caller names to move along (canonical BDFs) */
        int settle_ms;       /* how long to wait for the driver link after a probe (live hosts) */
} VfioOptions;

/* What happened to one function. */
typedef struct VfioChange {
        char addr[PCI_ADDR_STRLEN];
        char *from; /* driver before (NULL: none) */
        char *to;   /* driver after */
        bool changed;
} VfioChange;

typedef struct VfioReport {
        VfioChange *changes;
        size_t n_changes;
        int group;
        GvError error; /* on failure: what failed, on which device, at which step */
} VfioReport;

void vfio_report_done(VfioReport *r);

/* Errors: -EPERM refused (unsafe target without --force; the report's error says why), -ENODEV no such
 * device or it (or a member of its group) does not answer on the bus, -ENXIO no IOMMU group, -ENOENT vfio-pci not loaded, other -errno: a kernel write failed and
 * everything was rolled back. */
int vfio_enable(Root *root, const char *bdf, const VfioOptions *o, VfioReport *ret);
int vfio_disable(Root *root, const char *bdf, const VfioOptions *o, VfioReport *ret);

/* Processes holding /dev/vfio/<group> open: "pid (comm)" list, or NULL when none. */
char *vfio_group_holders(Root *root, int group);

/* On a live host: ask the kernel whether the group is viable (VFIO_GROUP_GET_STATUS). 1 viable,
 * 0 not viable, -errno when the node cannot be opened. On other roots: the sysfs rule. */
int vfio_group_viable(Root *root, const PciHost *h, int group);

/* Drop what gpuvirt remembered about a device that no longer exists (a VF removed with its PF's VFs). */
int vfio_forget(Root *root, const char *bdf);

/* The driver a device had before gpuvirt moved it (state dir), or NULL. */
char *vfio_saved_driver(Root *root, const char *bdf);

/*
 * How the functions of a device's IOMMU group sit. The group is the unit passthrough moves: judged are
 * the device, its companion functions (HDMI audio, USB-C) and the foreign members named in include or
 * recorded as moved by gpuvirt; not bridges, and not the device's own VFs (SR-IOV governs those).
 */
typedef struct VfioGroupState {
        unsigned n_vfio; /* on a VFIO driver */
        unsigned n_host; /* on a host driver */
        unsigned n_lost; /* no driver, though gpuvirt recorded the one they had: a move that did not finish (or
                          * no driver and a damaged record: what they had cannot be told) */
} VfioGroupState;

int vfio_group_state(Root *root, const PciHost *h, const PciDevice *d, char *const *include, VfioGroupState *ret);

/* The devices that lost their driver (no driver, and a record names the one they had), as
 * "BDF (had DRIVER)" strings, or "BDF (its record is damaged: REASON)" when the record cannot be read; an
 * empty list when none. */
int vfio_lost_list(Root *root, const PciHost *h, char ***ret);

/* Give every device that lost its driver back to it, with its group (vfio_disable()). ret_restored: the
 * devices put back, as "BDF -> DRIVER" strings (NULL when none); on failure ret_error says which one could
 * not and why (the others are still restored). */
int vfio_restore_lost(Root *root, char ***ret_restored, char **ret_error);
