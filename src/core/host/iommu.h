/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "core/host/pci.h"

/* How a member of a device's IOMMU group relates to that device. */
typedef enum GroupMemberKind {
        GROUP_MEMBER_SELF,
        GROUP_MEMBER_COMPANION, /* another function of the same card (HDMI audio, USB-C, ...) or its VF */
        GROUP_MEMBER_BRIDGE,    /* a bridge or port: never bound to vfio, does not hurt viability */
        GROUP_MEMBER_FOREIGN,   /* anything else: a device the host may need (USB, NIC, storage) */
        _GROUP_MEMBER_KIND_MAX,
        _GROUP_MEMBER_KIND_INVALID = -EINVAL,
} GroupMemberKind;

const char *group_member_kind_to_string(GroupMemberKind k) _pure_;

typedef struct GroupMember {
        PciDevice *device;
        GroupMemberKind kind;
} GroupMember;

typedef enum IommuState {
        IOMMU_OFF,
        IOMMU_ON,
        IOMMU_UNKNOWN, /* a capture that cannot tell */
        _IOMMU_STATE_MAX,
        _IOMMU_STATE_INVALID = -EINVAL,
} IommuState;

/*
 * Whether the IOMMU is on in the kernel, from the one source of truth for groups: the devices' own
 * iommu_group links (what show, the group checks and passthrough use). ON when a device is in a group
 * (*ret_groups: how many groups the devices are in); otherwise OFF, except on a capture that holds no
 * sys/kernel/iommu_groups, or one whose devices lack links although it holds groups: UNKNOWN.
 */
IommuState iommu_state(const PciHost *h, size_t *ret_groups);

/* Members of d's group (d included, first), classified relative to d. -ENOENT when d has no group. */
int iommu_group_members(const PciHost *h, const PciDevice *d, GroupMember **ret, size_t *ret_n);

/* Count members of the given kind. */
size_t group_members_count(const GroupMember *m, size_t n, GroupMemberKind kind);

/* A group is viable for VFIO when every non-bridge member is on a VFIO driver or on none. */
bool iommu_group_viable(const PciHost *h, int group);
