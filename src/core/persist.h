/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "root.h"

/*
 * Persistent passthrough.
 *
 * Per device (what `passthrough enable --persist` writes): etc/gpuvirt/vfio.d/<bdf>, a JSON object
 * {"driver":"vfio-pci","force":bool,"include":[...]}. At boot the shipped udev rule
 * (90-gpuvirt-vfio.rules) sets driver_override=vfio-pci when such a device is added, before its native
 * driver module loads, and starts gpuvirt-vfio@<bdf>.service, which runs `gpuvirt passthrough restore
 * <bdf>` to finish the move (unbind a driver that won the race, probe, check the group).
 *
 * By ID (`passthrough persist --ids`): etc/modprobe.d/vfio.conf with "options vfio-pci ids=..." and
 * softdeps so vfio-pci loads before the GPU and audio drivers, and etc/modules-load.d/vfio-pci.conf.
 */

#define VFIO_PERSIST_DIR "etc/gpuvirt/vfio.d"

int vfio_persist_add(Root *root, const char *bdf, bool force, char *const *include);
int vfio_persist_remove(Root *root, const char *bdf);
/* -ENOENT when the device has no persistent binding; -EBADMSG ... for a damaged record, with *ret_error
 * naming the file and the reason (every field is checked: driver, force, include as PCI addresses). */
int vfio_persist_read(Root *root, const char *bdf, bool *ret_force, char ***ret_include, char **ret_error);

typedef struct IdsPersistResult {
        char *ids;               /* the merged ids= value written */
        bool initramfs_has_gpu_driver; /* a GPU driver loads from the initramfs: it must be regenerated */
        const char *initramfs_command; /* "update-initramfs -u" or "dracut -f" */
} IdsPersistResult;

/* ids: "vvvv:dddd" strings. Merges with what the files hold. */
int vfio_persist_ids(Root *root, char *const *ids, IdsPersistResult *ret);
void ids_persist_result_done(IdsPersistResult *r);
