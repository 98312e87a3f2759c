/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "core/host/root.h"

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
 * softdeps so vfio-pci loads before the GPU and audio drivers, and etc/modules-load.d/vfio-pci.conf
 * (`passthrough persist --ids --remove` takes them out again).
 */

#define VFIO_PERSIST_DIR "etc/gpuvirt/vfio.d"

int vfio_persist_add(Root *root, const char *bdf, bool force, char *const *include);
int vfio_persist_remove(Root *root, const char *bdf);
/* -ENOENT when the device has no persistent binding; -EBADMSG ... for a damaged record, with err (may be
 * NULL) naming the file and the reason (every field is checked: driver, force, include as PCI addresses). */
int vfio_persist_read(Root *root, const char *bdf, bool *ret_force, char ***ret_include, GvError *err);

typedef struct IdsPersistResult {
        char *ids;               /* the merged ids= value written */
        char **softdeps;         /* the modules vfio-pci is loaded before (softdep lines), NULL when no IDs */
        bool initramfs_has_gpu_driver; /* a GPU driver loads from the initramfs: it must be regenerated */
        const char *initramfs_command; /* "update-initramfs -u" or "dracut -f" */
} IdsPersistResult;

/* ids: "vvvv:dddd" strings, merged into what the files hold, or with remove dropped from them; softdeps load
 * vfio-pci before the usual GPU and audio drivers and before each of modules (the drivers the devices have
 * now: a driver vfio-pci does not precede may bind them first at boot). When no ID is
 * left, the options line goes, and with it the header and softdeps of a file gpuvirt created (a file left
 * empty is removed); modules-load.d no longer loads vfio-pci. ret->ids: the IDs bound afterwards (NULL
 * when none). header: the first line of a file created here, a comment starting "# Written by gpuvirt" (the
 * program says which of its commands wrote it; NULL: a plain one); a file whose line starts so is gpuvirt's. */
int vfio_persist_ids(Root *root, char *const *ids, char *const *modules, bool remove, const char *header,
                     IdsPersistResult *ret);
void ids_persist_result_done(IdsPersistResult *r);
