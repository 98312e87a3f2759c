/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "basic/gverror.h"
#include "core/host/root.h"

/*
 * A capture: a read-only copy of what gpuvirt reads of a host (a root opened on it is a capture, see
 * root.h), for bug reports and for tests over real machines. It holds
 *  - the PCI devices (sys/bus/pci/devices links, each device's directory with the attributes gpuvirt
 *    reads, its config space, its driver, iommu_group, physfn and virtfn links, mdev_supported_types and
 *    nvidia/ vGPU attributes), the drivers' device links, sys/bus/mdev devices;
 *  - IOMMU groups (sys/kernel/iommu_groups), sys/class/iommu and sys/class/mdev_bus links;
 *  - the names of the ACPI tables (empty files: never their contents);
 *  - proc/cpuinfo reduced to one processor's vendor_id and flags, proc/interrupts reduced to its header
 *    and the lines of interrupt-remapping chips, proc/meminfo's totals and huge pages, the kernel release,
 *    module presence (sys/module/NAME/initstate, the vfio, kvm and nvidia modules' parameters,
 *    lib/modules/RELEASE/modules.builtin and the lines of modules.dep for those modules), dev/kvm and
 *    dev/vfio/ as empty files, etc/os-release's ID and VERSION_ID;
 *  - proc/cmdline with only the parameters that concern devices, IOMMU, VFIO, KVM and GPU drivers.
 * Left out on purpose, as private: the host name (nothing under proc/sys/kernel but osrelease), every
 * other kernel parameter (root=, UUIDs, console), DMI (serial numbers), the PCI Device Serial Number
 * (that capability's serial is zeroed in config), vpd, labels, and everything under etc/ but os-release.
 */

/* Capture root into dir (created; it must not exist or be empty). *ret_files: how many files and links
 * were written. */
int host_capture(Root *root, const char *dir, unsigned *ret_files, GvError *err);
