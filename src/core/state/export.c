/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "core/host/inventory.h"
#include "core/host/iommu.h"
#include "core/mig/mig.h"
#include "core/state/hoststate.h"
#include "core/state/state-internal.h"

int host_export(Root *root, HostSpec **ret, GvError *err) {
        Host h;
        int r = host_load(root, &h);
        if (r < 0)
                return gv_error_set(err, r, NULL, "read", "cannot read the host's PCI devices: %s", errno_message(r));
        _cleanup_host_spec_free_ HostSpec *s = calloc(1, sizeof *s);
        if (!s || !(s->file = strdup("export"))) {
                host_done(&h);
                return gv_error_set(err, -ENOMEM, NULL, NULL, NULL);
        }
        s->entries = calloc(h.pci->n_devices ?: 1, sizeof(GpuEntry));
        for (size_t i = 0; s->entries && i < h.pci->n_devices; i++) {
                const PciDevice *d = &h.pci->devices[i];
                if (!inventory_is_gpu(d, false))
                        continue;
                Observed o;
                if ((r = observe(&h, d, NULL, &o)) < 0) {
                        observed_done(&o);
                        break;
                }
                GpuEntry *e = &s->entries[s->n_entries++];
                e->select = SELECT_ADDRESS;
                memcpy(e->addr, d->addr, sizeof e->addr);
                e->mode = o.mode;
                switch (o.mode) {
                case GPU_MODE_PASSTHROUGH: {
                        e->force = d->boot_vga == 1;
                        _cleanup_free_ GroupMember *m = NULL;
                        size_t n = 0, ni = 0;
                        if (iommu_group_members(h.pci, d, &m, &n) == 0)
                                for (size_t k = 0; k < n; k++)
                                        if (m[k].kind == GROUP_MEMBER_FOREIGN && m[k].device->is_vfio && r >= 0) {
                                                e->force = true;
                                                char *a = strdup(m[k].device->addr);
                                                if (!a || strv_push(&e->include, &ni, a) < 0)
                                                        r = -ENOMEM;
                                        }
                        break;
                }
                case GPU_MODE_SRIOV:
                        e->vfs = o.vfs;
                        e->vfs_vfio = o.vfs_vfio;
                        break;
                case GPU_MODE_VGPU:
                        e->vgpu_type = TAKE_PTR(o.vgpu_type);
                        e->vgpu_count = o.vgpu_count;
                        break;
                case GPU_MODE_MIG: {
                        unsigned counts[MIG_MAX_PROFILES] = {};
                        for (size_t k = 0; k < o.mig->n_inst; k++)
                                counts[o.mig->inst[k].profile]++;
                        e->mig = calloc(o.mig->n_profiles ?: 1, sizeof(MigCount));
                        if (!e->mig)
                                r = -ENOMEM;
                        for (size_t k = 0; r >= 0 && k < o.mig->n_profiles; k++)
                                if (counts[k]) {
                                        char *name = strdup(o.mig->profiles[k].name);
                                        if (!name)
                                                r = -ENOMEM;
                                        else
                                                e->mig[e->n_mig++] = (MigCount){name, counts[k]};
                                }
                        break;
                }
                default:
                        break;
                }
                observed_done(&o);
                if (r < 0)
                        break;
        }
        host_done(&h);
        if (!s->entries)
                return gv_error_set(err, -ENOMEM, NULL, NULL, NULL);
        if (r < 0)
                return gv_error_set(err, r, NULL, "observe", NULL);
        *ret = TAKE_PTR(s);
        return 0;
}
