/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The kernel model for PCI: binding and unbinding (driver core + vfio-pci), SR-IOV enable/disable.
 * All state is the simulated sysfs itself.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "basic/fileio.h"
#include "sim-internal.h"

static const char *base(const char *path) {
        const char *s = strrchr(path, '/');
        return s ? s + 1 : path;
}

static char *dev_driver(const char *devdir) {
        _cleanup_free_ char *l = strdup_printf("%s/driver", devdir);
        char *d = NULL;
        if (!l || readlink_base(l, &d) < 0)
                return NULL;
        return d;
}

static int dev_group(const char *devdir) {
        _cleanup_free_ char *l = strdup_printf("%s/iommu_group", devdir);
        _cleanup_free_ char *g = NULL;
        int n;
        if (!l || readlink_base(l, &g) < 0 || parse_int(g, &n) < 0)
                return -1;
        return n;
}

static bool dev_is_vfio(const char *devdir) {
        _cleanup_free_ char *p = strdup_printf("%s/vfio-dev", devdir);
        return p && dir_exists(p);
}

/* Whether any member of the group other than 'except' sits on a VFIO driver. */
static bool group_has_vfio(const char *root, int group, const char *except) {
        _cleanup_free_ char *gd = strdup_printf("%s/sys/kernel/iommu_groups/%d/devices", root, group);
        _cleanup_strv_free_ char **l = NULL;
        if (!gd || dir_list(gd, &l) < 0)
                return false;
        for (char **e = l; *e; e++) {
                if (streq(*e, except))
                        continue;
                _cleanup_free_ char *p = strdup_printf("%s/%s", gd, *e);
                _cleanup_free_ char *dir = NULL;
                if (p && readlink_resolved(p, &dir) >= 0 && dev_is_vfio(dir))
                        return true;
        }
        return false;
}

static int vfio_attach(const char *root, const char *devdir) {
        int group = dev_group(devdir);
        if (group < 0)
                return -EINVAL;
        _cleanup_free_ char *reg = strdup_printf("%s/" SIM_MARKER_DIR "/vfio-dev", root);
        if (!reg)
                return -ENOMEM;
        int r = mkdir_p(reg, 0755);
        if (r < 0)
                return r;
        int n = sim_free_index(reg, "vfio");
        if (n < 0)
                return n;
        _cleanup_free_ char *vd = strdup_printf("%s/vfio-dev/vfio%d", devdir, n);
        _cleanup_free_ char *vfio = strdup_printf("%s/dev/vfio", root);
        _cleanup_free_ char *node = strdup_printf("%s/dev/vfio/%d", root, group);
        _cleanup_free_ char *mark = strdup_printf("vfio%d", n);
        if (!vd || !vfio || !node || !mark)
                return -ENOMEM;
        r = mkdir_p(vd, 0755);
        r = r ?: sim_attr(vd, "dev", 0444, "%d:%d\n", 238, n);
        r = r ?: sim_attr(reg, mark, 0644, "%s\n", base(devdir));
        r = r ?: mkdir_p(vfio, 0755);
        if (r < 0)
                return r;
        if (!path_exists(node))
                r = sim_file(node, 0600, "", 0);
        return r;
}

static int vfio_detach(const char *root, const char *devdir) {
        _cleanup_free_ char *vd = strdup_printf("%s/vfio-dev", devdir);
        _cleanup_strv_free_ char **l = NULL;
        if (!vd)
                return -ENOMEM;
        if (dir_list(vd, &l) >= 0)
                for (char **e = l; *e; e++) {
                        _cleanup_free_ char *m = strdup_printf("%s/" SIM_MARKER_DIR "/vfio-dev/%s", root, *e);
                        if (m)
                                (void)unlink(m);
                }
        int r = rm_rf(vd);
        if (r < 0)
                return r;
        int group = dev_group(devdir);
        if (group >= 0 && !group_has_vfio(root, group, base(devdir))) {
                _cleanup_free_ char *node = strdup_printf("%s/dev/vfio/%d", root, group);
                if (!node)
                        return -ENOMEM;
                if (unlink(node) < 0 && errno != ENOENT)
                        return negative_errno();
        }
        return 0;
}

/* ---- the nvidia driver's device nodes and proc files ---- */

#define NVIDIA_MAX_GPUS 32 /* the driver's mig-minors lists 32 GPUs, 15 GPU instances each, 8 compute instances each */
#define NVIDIA_MAX_GIS  15
#define NVIDIA_MAX_CIS  8

/* The capability minor of a GPU instance (ci < 0) or of a compute instance, as the driver numbers them in
 * proc/driver/nvidia-caps/mig-minors: 1 config, 2 monitor, then per GPU minor, per GPU instance, its access and
 * its compute instances' access. */
static unsigned mig_cap_minor(unsigned gpu, unsigned gi, int ci) {
        return 3 + gpu * NVIDIA_MAX_GIS * (1 + NVIDIA_MAX_CIS) + gi * (1 + NVIDIA_MAX_CIS) + (ci < 0 ? 0 : 1 + (unsigned)ci);
}

/* What loading nvidia.ko (with nvidia-uvm, and nvidia-modprobe making the nodes) puts under /dev and /proc. */
int sim_nvidia_module_load(const char *root) {
        _cleanup_free_ char *dev = strdup_printf("%s/dev", root);
        _cleanup_free_ char *caps = strdup_printf("%s/dev/nvidia-caps", root);
        _cleanup_free_ char *proc = strdup_printf("%s/proc/driver/nvidia-caps", root);
        _cleanup_free_ char *minors = strdup_printf("%s/proc/driver/nvidia-caps/mig-minors", root);
        if (!dev || !caps || !proc || !minors)
                return -ENOMEM;
        if (path_exists(minors))
                return 0;
        int r = mkdir_p(caps, 0755);
        r = r ?: mkdir_p(proc, 0755);
        r = r ?: sim_attr(dev, "nvidiactl", 0666, "%s", "");
        r = r ?: sim_attr(dev, "nvidia-uvm", 0666, "%s", "");
        r = r ?: sim_attr(dev, "nvidia-uvm-tools", 0666, "%s", "");
        r = r ?: sim_attr(caps, "nvidia-cap1", 0400, "%s", "");
        r = r ?: sim_attr(caps, "nvidia-cap2", 0444, "%s", "");
        if (r < 0)
                return r;
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f)
                return -ENOMEM;
        fputs("config 1\nmonitor 2\n", f);
        for (unsigned g = 0; g < NVIDIA_MAX_GPUS; g++)
                for (unsigned i = 0; i < NVIDIA_MAX_GIS; i++) {
                        fprintf(f, "gpu%u/gi%u/access %u\n", g, i, mig_cap_minor(g, i, -1));
                        for (int c = 0; c < NVIDIA_MAX_CIS; c++)
                                fprintf(f, "gpu%u/gi%u/ci%d/access %u\n", g, i, c, mig_cap_minor(g, i, c));
                }
        if (fclose(f) != 0)
                return -ENOMEM;
        return sim_attr(proc, "mig-minors", 0444, "%s", text);
}

/* The GPU's minor: its place among the host's GPUs the nvidia driver drives (not VFs), in bus order. */
static unsigned nvidia_minor(const SimHost *h, const char *name) {
        unsigned n = 0;
        for (size_t i = 0; i < h->n; i++) {
                const SimDev *d = &h->devs[i];
                if (streq(d->name, name))
                        break;
                n += d->m->driver && streq(d->m->driver, "nvidia") && !d->is_vf && (d->m->class >> 16) == 0x03;
        }
        return n;
}

/* nvidia's probe of a GPU: proc/driver/nvidia/gpus/<bdf>/information and its nodes, /dev/nvidia<minor> and the
 * MIG capability nodes of its GPU and compute instances (nvidia-modprobe makes them as they are used; here
 * all at once). */
static int nvidia_gpu_attach(const char *root, const SimHost *h, const SimDev *d) {
        unsigned minor = nvidia_minor(h, d->name);
        _cleanup_free_ char *info = strdup_printf("%s/proc/driver/nvidia/gpus/%s", root, d->name);
        _cleanup_free_ char *dev = strdup_printf("%s/dev", root);
        _cleanup_free_ char *caps = strdup_printf("%s/dev/nvidia-caps", root);
        _cleanup_free_ char *node = strdup_printf("nvidia%u", minor);
        if (!info || !dev || !caps || !node)
                return -ENOMEM;
        int r = sim_nvidia_module_load(root);
        r = r ?: mkdir_p(info, 0755);
        r = r ?: sim_attr(info, "information", 0444,
                          "Model: \t\t NVIDIA GPU %04x\nIRQ:   \t\t %u\nBus Type: \t PCIe\nDMA Size: \t 47 bits\n"
                          "DMA Mask: \t 0x7fffffffffff\nBus Location: \t %s\nDevice Minor: \t %u\nGPU Excluded:\t No\n",
                          d->m->device, 100 + minor, d->name, minor);
        r = r ?: sim_attr(dev, node, 0666, "%s", "");
        for (unsigned i = 0; r >= 0 && minor < NVIDIA_MAX_GPUS && i < NVIDIA_MAX_GIS; i++)
                for (int c = -1; r >= 0 && c < NVIDIA_MAX_CIS; c++) {
                        char cap[32];
                        snprintf(cap, sizeof cap, "nvidia-cap%u", mig_cap_minor(minor, i, c));
                        r = sim_attr(caps, cap, 0444, "%s", "");
                }
        return r;
}

static bool nvidia_gpu(const SimDev *d, const char *driver) {
        return streq(driver, "nvidia") && d->m->driver && streq(d->m->driver, "nvidia") && !d->is_vf &&
               (d->m->class >> 16) == 0x03;
}

int sim_attach(const char *root, const SimHost *h, const char *devdir, const char *driver) {
        _cleanup_free_ char *ddir = strdup_printf("%s/sys/bus/pci/drivers/%s", root, driver);
        _cleanup_free_ char *dlink = strdup_printf("%s/driver", devdir);
        _cleanup_free_ char *back = strdup_printf("%s/sys/bus/pci/drivers/%s/%s", root, driver, base(devdir));
        if (!ddir || !dlink || !back)
                return -ENOMEM;
        bool vfio = streq(driver, "vfio-pci");
        if (vfio) {
                int r = vfio_attach(root, devdir);
                if (r < 0)
                        return r;
        }
        int r = sim_link(ddir, dlink);
        r = r ?: sim_link(devdir, back);
        r = r ?: sim_attr(devdir, "enable", 0644, "1\n");
        if (r < 0 || vfio)
                return r;

        SimDev d;
        SimModel vfm;
        if (sim_dev_model(h, devdir, &d, &vfm) < 0 || !d.m->driver || !streq(d.m->driver, driver))
                return 0;
        if (nvidia_gpu(&d, driver) && (r = nvidia_gpu_attach(root, h, &d)) < 0)
                return r;
        if ((d.m->vgpu == SIM_VGPU_NVIDIA_MDEV || d.m->vgpu == SIM_VGPU_GVTG) && h->profile->mdev)
                return sim_mdev_parent_attach(root, &d, devdir);
        if (d.m->vgpu == SIM_VGPU_NVIDIA_VF && d.is_vf) {
                const SimDev *pf = NULL;
                _cleanup_free_ char *pl = strdup_printf("%s/physfn", devdir);
                _cleanup_free_ char *pfname = NULL;
                if (pl && readlink_base(pl, &pfname) >= 0)
                        pf = sim_host_find(h, pfname);
                return pf ? sim_nvvf_attach(root, pf->m, devdir) : 0;
        }
        return 0;
}

static int sriov_disable(const char *root, const SimHost *h, const char *pfdir);

int sim_detach(const char *root, const SimHost *h, const char *devdir) {
        _cleanup_free_ char *drv = dev_driver(devdir);
        if (!drv)
                return 0;
        SimDev d;
        SimModel vfm;
        bool known = sim_dev_model(h, devdir, &d, &vfm) >= 0;
        bool native = known && d.m->driver && streq(d.m->driver, drv);
        int r = 0;
        if (native && (d.m->vgpu == SIM_VGPU_NVIDIA_MDEV || d.m->vgpu == SIM_VGPU_GVTG))
                r = sim_mdev_parent_detach(root, devdir);
        if (r >= 0 && native && d.m->vgpu == SIM_VGPU_NVIDIA_VF && d.is_vf) {
                _cleanup_free_ char *nv = strdup_printf("%s/nvidia", devdir);
                r = nv ? rm_rf(nv) : -ENOMEM;
        }
        /* A PF driver's remove() disables SR-IOV. */
        if (r >= 0 && known && !d.is_vf && d.m->sriov_total > 0)
                r = sriov_disable(root, h, devdir);
        if (r >= 0 && native && nvidia_gpu(&d, drv)) { /* the driver's proc files go, the nodes stay */
                _cleanup_free_ char *info = strdup_printf("%s/proc/driver/nvidia/gpus/%s", root, base(devdir));
                r = info ? rm_rf(info) : -ENOMEM;
        }
        if (r >= 0 && dev_is_vfio(devdir))
                r = vfio_detach(root, devdir);
        if (r < 0)
                return r;
        _cleanup_free_ char *dlink = strdup_printf("%s/driver", devdir);
        _cleanup_free_ char *back = strdup_printf("%s/sys/bus/pci/drivers/%s/%s", root, drv, base(devdir));
        if (!dlink || !back)
                return -ENOMEM;
        (void)unlink(back);
        if (unlink(dlink) < 0 && errno != ENOENT)
                return negative_errno();
        r = sim_attr(devdir, "enable", 0644, "0\n");
        if (r < 0)
                return r;
        if (native && d.is_vf && d.m->vgpu == SIM_VGPU_NVIDIA_VF) {
                _cleanup_free_ char *pl = strdup_printf("%s/physfn", devdir);
                _cleanup_free_ char *pfdir = NULL;
                if (pl && readlink_resolved(pl, &pfdir) >= 0)
                        return sim_nvvf_refresh(root, d.m, pfdir);
        }
        return 0;
}

static char *dev_override(const char *devdir) {
        _cleanup_free_ char *p = strdup_printf("%s/driver_override", devdir);
        char *v = NULL;
        if (!p || read_attr(p, &v) < 0)
                return NULL;
        if (streq(v, "(null)") || isempty(v)) {
                free(v);
                return NULL;
        }
        return v;
}

static bool driver_loaded(const char *root, const char *driver) {
        _cleanup_free_ char *p = strdup_printf("%s/sys/bus/pci/drivers/%s", root, driver);
        return p && dir_exists(p);
}

/* pci_match_device(): driver_override wins; else the ID table (vfio-pci has none). */
static bool dev_matches(const SimHost *h, const char *devdir, const char *driver) {
        _cleanup_free_ char *ovr = dev_override(devdir);
        if (ovr)
                return streq(ovr, driver);
        uint16_t v, dv;
        if (sim_dev_ids(devdir, &v, &dv) < 0)
                return false;
        return sim_driver_matches(h, driver, v, dv);
}

/* The driver's probe(). */
static int run_probe(const char *root, const SimHost *h, const char *devdir, const char *driver,
                     bool *ret_injected) {
        _cleanup_free_ char *key = strdup_printf("probe:%s", driver);
        if (!key)
                return -ENOMEM;
        const char *keys[] = {key};
        int r = sim_fault_take(root, keys, 1, false);
        *ret_injected = r < 0;
        if (r < 0)
                return r;
        SimDev d;
        SimModel vfm;
        if (!streq(driver, "vfio-pci") && sim_dev_model(h, devdir, &d, &vfm) >= 0 && d.is_vf && d.m->vf_probe_fails)
                return -ENODEV; /* e.g. nvme on a QEMU NVMe VF without assigned queues */
        if (streq(driver, "vfio-pci")) {
                /* vfio_pci_probe(): no bridges; no IOMMU group, no VFIO device (no noiommu mode here). */
                _cleanup_free_ char *cfgp = strdup_printf("%s/config", devdir);
                _cleanup_free_ uint8_t *cfg = NULL;
                size_t n = 0;
                if (!cfgp)
                        return -ENOMEM;
                if (read_full(cfgp, 4096, (void **)&cfg, &n) < 0 || n < 64 || (cfg[0x0e] & 0x7f) != 0)
                        return -EINVAL;
                if (dev_group(devdir) < 0)
                        return -EINVAL;
        }
        return sim_attach(root, h, devdir, driver);
}

/*
 * explicit_driver: a write to drivers/<driver>/bind (errors are returned, as device_driver_attach()
 * does). Otherwise drivers_probe: the device stays unbound when no driver takes it or the probe fails,
 * and the write succeeds (bus_rescan_devices_helper() ignores probe failures), except for an injected
 * probe fault, which is returned.
 */
int sim_probe(const char *root, const SimHost *h, const char *devdir, bool explicit_driver, const char *driver) {
        if (explicit_driver) {
                if (!dev_matches(h, devdir, driver))
                        return -ENODEV;
                _cleanup_free_ char *cur = dev_driver(devdir);
                if (cur)
                        return -EBUSY;
                bool injected;
                return run_probe(root, h, devdir, driver, &injected);
        }

        _cleanup_free_ char *cur = dev_driver(devdir);
        if (cur)
                return 0;
        _cleanup_free_ char *ovr = dev_override(devdir);
        const char *cand = NULL;
        if (ovr)
                cand = driver_loaded(root, ovr) ? ovr : NULL;
        else {
                SimDev d;
                SimModel vfm;
                if (sim_dev_model(h, devdir, &d, &vfm) >= 0 && d.m->driver && driver_loaded(root, d.m->driver) &&
                    dev_matches(h, devdir, d.m->driver))
                        cand = d.m->driver;
        }
        if (!cand)
                return 0;
        bool injected;
        int r = run_probe(root, h, devdir, cand, &injected);
        /* An injected fault surfaces; a real probe failure leaves the device unbound silently. */
        if (r < 0 && (injected || r == -ENOMEM))
                return r;
        return 0;
}

/* ---- SR-IOV --------------------------------------------------------------------------------------- */

static int pf_config_numvfs(const SimDev *pf, const char *pfdir, unsigned numvfs) {
        unsigned pos = sim_config_sriov_pos(pf);
        if (!pos)
                return 0;
        _cleanup_free_ char *p = strdup_printf("%s/config", pfdir);
        _cleanup_free_ uint8_t *cfg = NULL;
        size_t n = 0;
        if (!p)
                return -ENOMEM;
        int r = read_full(p, 4096, (void **)&cfg, &n);
        if (r < 0)
                return r;
        if (n < pos + 0x12)
                return -EIO;
        cfg[pos + 0x08] = numvfs > 0 ? 0x19 : 0x10;
        cfg[pos + 0x10] = (uint8_t)numvfs;
        cfg[pos + 0x11] = (uint8_t)(numvfs >> 8);
        return sim_file(p, 0644, cfg, n);
}

static int sriov_disable(const char *root, const SimHost *h, const char *pfdir) {
        int numvfs = sim_read_int(pfdir, "sriov_numvfs", 0);
        for (int i = numvfs - 1; i >= 0; i--) {
                _cleanup_free_ char *vl = strdup_printf("%s/virtfn%d", pfdir, i);
                _cleanup_free_ char *vfdir = NULL;
                if (!vl)
                        return -ENOMEM;
                if (readlink_resolved(vl, &vfdir) < 0)
                        continue;
                int r = sim_detach(root, h, vfdir);
                if (r < 0)
                        return r;
                const char *name = base(vfdir);
                int g = dev_group(vfdir);
                if (g >= 0) {
                        _cleanup_free_ char *gd = strdup_printf("%s/sys/kernel/iommu_groups/%d", root, g);
                        _cleanup_free_ char *ul = strdup_printf("%s/sys/devices/virtual/iommu/%s/devices/%s", root,
                                                                h->profile->amd ? "ivhd0" : "dmar0", name);
                        if (!gd || !ul)
                                return -ENOMEM;
                        (void)unlink(ul);
                        r = rm_rf(gd);
                        if (r < 0)
                                return r;
                }
                _cleanup_free_ char *bl = strdup_printf("%s/sys/bus/pci/devices/%s", root, name);
                if (!bl)
                        return -ENOMEM;
                (void)unlink(bl);
                (void)unlink(vl);
                r = rm_rf(vfdir);
                if (r < 0)
                        return r;
        }
        int r = sim_attr(pfdir, "sriov_numvfs", 0644, "0\n");
        if (r < 0)
                return r;
        SimDev pf;
        SimModel unused;
        if (sim_dev_model(h, pfdir, &pf, &unused) >= 0)
                return pf_config_numvfs(&pf, pfdir, 0);
        return 0;
}

int sim_sriov_enable(const char *root, const SimHost *h, const SimDev *pf, const char *pfdir, unsigned n,
                     bool autoprobe) {
        const char *parentdir_end = strrchr(pfdir, '/');
        _cleanup_free_ char *parentdir = strndup(pfdir, (size_t)(parentdir_end - pfdir));
        if (!parentdir)
                return -ENOMEM;
        for (unsigned i = 0; i < n; i++) {
                SimDev vf;
                SimModel vfm;
                int r = sim_vf_make(pf, i, &vf, &vfm);
                if (r < 0)
                        return r;
                _cleanup_free_ char *path = strdup_printf("%s/%s", parentdir + strlen(root) + 1, vf.name);
                if (!path)
                        return -ENOMEM;
                vf.path = path;
                if (h->profile->iommu_kernel) {
                        vf.group = sim_next_group(root);
                        if (vf.group < 0)
                                return vf.group;
                }
                r = sim_write_device(root, h, &vf);
                if (r < 0)
                        return r;
                _cleanup_free_ char *vfdir = strdup_printf("%s/%s", root, path);
                _cleanup_free_ char *phys = strdup_printf("%s/physfn", vfdir ?: "");
                _cleanup_free_ char *virt = strdup_printf("%s/virtfn%u", pfdir, i);
                if (!vfdir || !phys || !virt)
                        return -ENOMEM;
                r = sim_link(pfdir, phys);
                r = r ?: sim_link(vfdir, virt);
                if (r < 0)
                        return r;
        }
        int r = sim_attr(pfdir, "sriov_numvfs", 0644, "%u\n", n);
        r = r ?: pf_config_numvfs(pf, pfdir, n);
        if (r < 0 || !autoprobe)
                return r;
        for (unsigned i = 0; i < n; i++) {
                _cleanup_free_ char *vl = strdup_printf("%s/virtfn%u", pfdir, i);
                _cleanup_free_ char *vfdir = NULL;
                if (!vl)
                        return -ENOMEM;
                r = readlink_resolved(vl, &vfdir);
                r = r ?: sim_probe(root, h, vfdir, false, NULL);
                if (r < 0)
                        return r;
        }
        if (pf->m->vgpu == SIM_VGPU_NVIDIA_VF)
                return sim_nvvf_refresh(root, pf->m, pfdir);
        return 0;
}

/* sriov_numvfs_store() */
int sim_sriov_set(const char *root, const SimHost *h, const char *pfdir, const char *value) {
        uint32_t n;
        if (parse_u32(value, 0, &n) < 0 || n > 0xffff)
                return -EINVAL;
        SimDev pf;
        SimModel unused;
        int r = sim_dev_model(h, pfdir, &pf, &unused);
        if (r < 0)
                return r;
        int total = sim_read_int(pfdir, "sriov_totalvfs", 0);
        if ((int)n > total)
                return -ERANGE;
        int cur = sim_read_int(pfdir, "sriov_numvfs", 0);
        if ((int)n == cur)
                return 0;
        _cleanup_free_ char *drv = dev_driver(pfdir);
        /* No driver, or a driver without sriov_configure (vfio-pci needs enable_sriov=Y). */
        if (!drv)
                return -ENOENT;
        if (streq(drv, "vfio-pci")) {
                _cleanup_free_ char *pd = strdup_printf("%s/sys/module/vfio_pci/parameters", root);
                _cleanup_free_ char *v = NULL, *pp = strdup_printf("%s/enable_sriov", pd ?: "");
                if (!pd || !pp)
                        return -ENOMEM;
                if (read_attr(pp, &v) < 0 || !(streq(v, "Y") || streq(v, "1")))
                        return -ENOENT;
        } else if (!pf.m->driver || !streq(drv, pf.m->driver) || streq(drv, "amdgpu"))
                return -ENOENT; /* amdgpu has no sriov_configure: MxGPU VFs come from GIM */
        if (n == 0)
                return sriov_disable(root, h, pfdir);
        if (cur > 0)
                return -EBUSY;
        bool autoprobe = sim_read_int(pfdir, "sriov_drivers_autoprobe", 1) != 0;
        return sim_sriov_enable(root, h, &pf, pfdir, n, autoprobe);
}
