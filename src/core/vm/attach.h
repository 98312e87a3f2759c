/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "basic/gverror.h"
#include "core/host/pci.h"
#include "core/host/root.h"
#include "core/vm/hostdev.h"
#include "core/vm/libvirt.h"

/*
 * The VM attach/detach transaction: a unit (a GPU with its functions, a VF, an mdev, a vendor vGPU) goes
 * into a libvirt domain's running and/or persistent definition, with the host side prepared first and every
 * step undone in reverse when a later one fails; detach takes it out and gives it back to the host unless
 * another definition still references it.
 *
 * Nothing here prints (a dry run's changes go through root_change()): results come back in a VmResult,
 * failures in a GvError. Errnos: -EINVAL when the request itself is wrong (a device that is not a unit, a
 * bridge, an unknown vGPU type or the wrong kind of type for the request); any other -errno when the
 * operation failed.
 */

typedef struct VmRequest {
        const char *domain;
        const char *device;     /* PCI address or mdev UUID; with mdev_type: the mdev's parent */
        bool live, config;      /* the definitions to change; neither: live when running, config when persistent */
        bool force;             /* attach a unit another running domain holds; prepare/release dangerous devices */
        bool keep;              /* detach: keep the unit prepared (on vfio-pci, the vGPU in place) */
        int guest_slot;         /* attach: the guest slot on bus 0 (1..31); 0: a free one for multifunction units */
        const char *mdev_type;  /* attach: create an mdev of this type (id or name) on device first */
        const char *uuid;       /* ... with this UUID (NULL: a new one) */
        const char *vgpu_type;  /* attach: set this NVIDIA vendor vGPU type (id or name) on the VF first */
        int timeout_s;          /* detach: how long the guest may take to answer a hot-unplug */
        bool agent_channel;     /* attach: add the guest agent's channel (core/vm/agentchan.h) where it lacks */
} VmRequest;

typedef struct VmResult {
        Unit unit;
        bool live, config; /* the definitions changed (as picked when the request gave neither) */
        bool dry_run;      /* a dry run: what would change was shown (root_change), nothing changed */
        size_t n_hostdevs; /* attach: the <hostdev> elements added */
        bool released;     /* detach: given back to the host */
        char *kept_for;    /* detach: not given back because "NAME (running)" / "NAME (persistent config)" still
                            * references it, or "unknown: ..." when that could not be learnt */
        char *warning;     /* detach: why kept_for is unknown (NULL: nothing to warn about) */
        double seconds;
} VmResult;

void vm_result_done(VmResult *r);

/* A device named by a person (PCI address, any function of a card, or an mdev UUID) as a unit: -EINVAL
 * when it is neither or names a bridge, -ENODEV when this host has no such device. */
int vm_resolve_unit(Root *root, const PciHost *h, const char *input, Unit *ret, GvError *err);

/* The definitions an attach or detach changes: *live and *config as given, or when both are false the running
 * one when the domain runs and the persistent one when it has one. -ENOENT for no such domain, -EBUSY when a
 * definition asked for does not exist (err->hint: the option that names the one that does). */
int vm_pick_targets(Virt *v, const char *dom, bool *live, bool *config, GvError *err);

/* Attach: create the vGPU when asked, refuse a unit another running domain holds (unless force) or one
 * already attached, prepare the host side, redefine and/or hot-plug (function 0 last), and check that
 * libvirt hands every hostdev back. On failure everything done is undone in reverse; an undo step that
 * fails adds its message to *ret_undo (strv, may be NULL; set on failure only). */
int vm_attach(Root *root, const PciHost *h, Virt *v, const VmRequest *req, VmResult *ret, char ***ret_undo,
              GvError *err);

/* Detach: take the unit out of the definitions (the running one: hot-unplug, function 0 first, and wait up
 * to timeout_s for the guest to let go), then give it back to the host unless keep or another definition
 * references it. */
int vm_detach(Root *root, const PciHost *h, Virt *v, const VmRequest *req, VmResult *ret, GvError *err);
