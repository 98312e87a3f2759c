/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "basic/gverror.h"
#include "core/host/pci.h"

/*
 * SR-IOV: changing the number of virtual functions of a physical function the safe way.
 *
 * The kernel refuses sriov_numvfs N -> M (both > 0) with EBUSY and values above sriov_totalvfs with
 * ERANGE; VF creation may complete after the write returns. sriov_set():
 *   1. refuses while a VF is in use (its /dev/vfio group held open, or an NVIDIA vGPU type set on it)
 *      unless forced;
 *   2. goes through 0 when VFs exist;
 *   3. with vfio: turns sriov_drivers_autoprobe off so no host driver probes the new VFs, and restores
 *      it afterwards (it only matters while VFs are being created);
 *   4. writes the new count, waits (bounded) for the virtfnN links;
 *   5. with vfio: moves each new VF to vfio-pci through vfio_enable() (the passthrough sequence).
 * Any failure puts the PF back to the VF count and autoprobe setting it had, re-binding to vfio-pci the
 * VFs that were there before.
 */

typedef struct SriovOptions {
        bool vfio;     /* bind the new VFs to vfio-pci */
        bool force;    /* proceed although VFs are in use */
        int settle_ms; /* how long to wait for VF links and drivers (live hosts) */
} SriovOptions;

typedef struct SriovReport {
        int from_vfs;  /* VF count before */
        int num_vfs;   /* VF count after (== from_vfs when nothing changed) */
        bool changed;
        char **vfs;    /* addresses of the VFs after the change, in virtfn order */
        GvError error; /* on failure: what failed, on which device, at which step */
} SriovReport;

void sriov_report_done(SriovReport *r);

/*
 * Errors: -EINVAL not an SR-IOV PF (or a VF), -ERANGE more than sriov_totalvfs, -EBUSY a VF is in use,
 * -ENOENT the PF's driver cannot change the VF count (no driver, or vfio-pci without enable_sriov),
 * -ETIMEDOUT VFs did not appear, other -errno: a kernel write failed (the PF was put back).
 */
int sriov_set(Root *root, const char *pf, unsigned n, const SriovOptions *o, SriovReport *ret);

/* VF addresses of a PF in virtfn order (NULL-terminated list; empty when none). */
int sriov_vfs(Root *root, const char *pf, char ***ret);

/* Why VF vf is in use (a process holding its group, a vGPU type), or NULL when it is free. */
char *sriov_vf_busy(Root *root, const char *vf);

/* sriov_drivers_autoprobe of a PF: 1, 0, or -errno. */
int sriov_autoprobe(Root *root, const char *pf);

/* At boot a PF's driver may bind after the unit restoring its VF count started (udev loads it): wait at
 * most timeout_ms for the PF to have a driver (on a live host; elsewhere it is looked at once). 0 bound,
 * -ENODEV no such PF, -ETIMEDOUT no driver (sriov_set then says why). */
int sriov_wait_driver(Root *root, const char *pf, int timeout_ms);

/*
 * Persistence: etc/gpuvirt/sriov.d/<pf>, JSON {"num_vfs":N,"vfio":bool}. At boot the shipped udev rule
 * (91-gpuvirt-sriov.rules) starts gpuvirt-sriov@<pf>.service when the PF appears, which runs
 * `gpuvirt sriov restore <pf>` (sriov_set with the recorded values) before libvirt starts and before
 * any per-device vfio binding.
 */
#define SRIOV_PERSIST_DIR "etc/gpuvirt/sriov.d"

int sriov_persist_write(Root *root, const char *pf, unsigned n, bool vfio);
int sriov_persist_remove(Root *root, const char *pf);
/* -ENOENT when none; -EBADMSG ... for a damaged file, err (may be NULL) naming it and the reason (num_vfs is
 * 0..65535, vfio a boolean). */
int sriov_persist_read(Root *root, const char *pf, unsigned *ret_n, bool *ret_vfio, GvError *err);
