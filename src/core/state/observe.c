/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>

#include "basic/fileio.h"
#include "core/mig/mig.h"
#include "core/mig/nvml.h"
#include "core/passthrough/vfio.h"
#include "core/state/hoststate.h"
#include "core/state/state-internal.h"
#include "core/vgpu/mdev.h"
#include "core/vgpu/vendor-vgpu.h"

/* ---- observing the host ---- */

void host_done(Host *h) {
        pci_host_free(h->pci);
        free(h->mig);
        nvml_close(h->nvml);
        mdev_list_free(h->mdevs, h->n_mdevs);
        vendor_vgpu_units_free(h->units, h->n_units);
}

int host_load(Root *root, Host *h) {
        *h = (Host){.root = root};
        int r = pci_host_scan(root, &h->pci);
        if (r < 0)
                return r;
        /* NVML, mdevs and vendor vGPUs may be missing on a host (then it has none of them); out of memory is an
         * error, never "none" (a plan from it would tear down what the host has) */
        r = nvml_open(root, &h->nvml, NULL);
        if (r >= 0 && (r = mig_gpus_read(h->nvml, &h->mig, &h->n_mig)) < 0)
                h->n_mig = 0;
        if (r != -ENOMEM)
                r = mdev_list(root, &h->mdevs, &h->n_mdevs);
        if (r != -ENOMEM)
                r = vendor_vgpu_units(root, &h->units, &h->n_units);
        if (r == -ENOMEM) {
                host_done(h);
                *h = (Host){.root = root};
                return r;
        }
        return 0;
}

/* include: the foreign group members the entry moves along (passthrough), judged with the GPU. */
int observe(const Host *h, const PciDevice *d, char *const *include, Observed *o) {
        *o = (Observed){.mode = GPU_MODE_HOST};
        int r = vfio_group_state(h->root, h->pci, d, include, &o->group);
        if (r < 0)
                return r;
        _cleanup_free_ char *saved = !d->driver ? vfio_saved_driver(h->root, d->addr) : NULL;
        o->lost = saved != NULL;
        for (size_t i = 0; i < h->n_mig; i++)
                if (streq(h->mig[i].address, d->addr))
                        o->mig = &h->mig[i];
        if (o->mig && o->mig->capable && o->mig->mode_current == NVML_DEVICE_MIG_ENABLE)
                o->mode = GPU_MODE_MIG;
        /* vGPUs: mdevs on the GPU, or vendor vGPU types set on its VFs */
        for (size_t i = 0; i < h->n_mdevs; i++) {
                const MdevDevice *m = &h->mdevs[i];
                if (!m->active || !m->parent || !streq(m->parent, d->addr) || !m->type)
                        continue;
                if (!o->vgpu_type && !(o->vgpu_type = strdup(m->type)))
                        return -ENOMEM;
                if (streq(o->vgpu_type, m->type))
                        o->vgpu_count++;
        }
        for (size_t i = 0; i < h->n_units; i++) {
                const VendorVgpuUnit *u = &h->units[i];
                if (!u->active || !streq(u->pf, d->addr))
                        continue;
                o->vendor_vgpu = true;
                if (!o->vgpu_type && !(o->vgpu_type = strdup_printf("%u", u->type)))
                        return -ENOMEM;
                o->vgpu_count++;
        }
        if (o->vgpu_count > 0)
                o->mode = GPU_MODE_VGPU;
        if (d->sriov_numvfs > 0) {
                o->vfs = (unsigned)d->sriov_numvfs;
                o->vfs_vfio = true;
                for (size_t i = 0; i < h->pci->n_devices; i++) {
                        const PciDevice *vf = &h->pci->devices[i];
                        if (vf->physfn && streq(vf->physfn, d->addr) && !vf->is_vfio)
                                o->vfs_vfio = false;
                }
                if (o->mode == GPU_MODE_HOST)
                        o->mode = GPU_MODE_SRIOV;
        }
        if (d->is_vfio)
                o->mode = GPU_MODE_PASSTHROUGH;
        return 0;
}

/* Passthrough is done when the GPU and every judged member of its group are on vfio-pci (or on no driver,
 * as functions that never had one); a member on a host driver or one that lost its driver is not. */
bool group_passed_through(const Observed *o) {
        return o->mode == GPU_MODE_PASSTHROUGH && o->group.n_host == 0 && o->group.n_lost == 0;
}

/* Anything of the group on vfio-pci, or lost on the way: a release (to the recorded drivers) is due. */
bool group_touched(const Observed *o) {
        return o->mode == GPU_MODE_PASSTHROUGH || o->group.n_vfio > 0 || o->group.n_lost > 0;
}

void observed_done(Observed *o) {
        free(o->vgpu_type);
}

int host_observe(Root *root, HostObservation *ret) {
        int r = host_load(root, ret);
        if (r < 0)
                host_observation_done(ret);
        return r;
}

void host_observation_done(HostObservation *h) {
        host_done(h);
        *h = (HostObservation){};
}

int host_observe_gpu(const HostObservation *h, const PciDevice *d, GpuObservation *ret) {
        int r = observe(h, d, NULL, ret);
        if (r < 0)
                gpu_observation_done(ret);
        return r;
}

void gpu_observation_done(GpuObservation *o) {
        observed_done(o);
        o->vgpu_type = NULL;
}
