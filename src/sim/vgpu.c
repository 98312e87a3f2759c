/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vGPU models: mediated devices (NVIDIA GRID on Turing, Intel GVT-g) and NVIDIA's vendor-specific VFIO
 * vGPU on Hopper VFs (nvidia/current_vgpu_type). Instance accounting is derived from what exists in
 * sysfs (type devices/ links, current_vgpu_type files), never stored separately.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>

#include "basic/fileio.h"
#include "sim-internal.h"

static const char *base(const char *path) {
        const char *s = strrchr(path, '/');
        return s ? s + 1 : path;
}

static char *dir_of(const char *path) {
        const char *s = strrchr(path, '/');
        return s ? strndup(path, (size_t)(s - path)) : strdup(".");
}

static const SimVgpuType *find_type(const SimModel *m, const char *id) {
        for (size_t i = 0; i < m->n_types; i++)
                if (streq(m->types[i].id, id))
                        return &m->types[i];
        return NULL;
}

/* ---- mdev ----------------------------------------------------------------------------------------- */

static int type_count(const char *devdir, const char *id) {
        _cleanup_free_ char *p = strdup_printf("%s/mdev_supported_types/%s/devices", devdir, id);
        _cleanup_strv_free_ char **l = NULL;
        if (!p)
                return -ENOMEM;
        int n = dir_list(p, &l);
        return n < 0 ? 0 : n;
}

static unsigned type_available(const SimModel *m, const char *devdir, const SimVgpuType *t) {
        if (m->vgpu == SIM_VGPU_GVTG) {
                unsigned used = 0;
                for (size_t i = 0; i < m->n_types; i++)
                        used += (unsigned)type_count(devdir, m->types[i].id) * m->types[i].cost;
                unsigned left = used >= SIM_GVTG_BUDGET ? 0 : SIM_GVTG_BUDGET - used;
                return left / MAX(t->cost, 1u);
        }
        /* NVIDIA time-sliced: one type per GPU */
        for (size_t i = 0; i < m->n_types; i++) {
                int c = type_count(devdir, m->types[i].id);
                if (c > 0)
                        return &m->types[i] == t && (unsigned)c < t->max_instances ? t->max_instances - (unsigned)c
                                                                                     : 0;
        }
        return t->max_instances;
}

int sim_mdev_refresh(const char *root, const SimModel *m, const char *devdir) {
        for (size_t i = 0; i < m->n_types; i++) {
                _cleanup_free_ char *td = strdup_printf("%s/mdev_supported_types/%s", devdir, m->types[i].id);
                if (!td)
                        return -ENOMEM;
                int r = sim_attr(td, "available_instances", 0444, "%u\n", type_available(m, devdir, &m->types[i]));
                if (r < 0)
                        return r;
        }
        return 0;
}

int sim_mdev_parent_attach(const char *root, const SimDev *d, const char *devdir) {
        const SimModel *m = d->m;
        for (size_t i = 0; i < m->n_types; i++) {
                const SimVgpuType *t = &m->types[i];
                _cleanup_free_ char *td = strdup_printf("%s/mdev_supported_types/%s", devdir, t->id);
                _cleanup_free_ char *dd = strdup_printf("%s/devices", td ?: "");
                if (!td || !dd)
                        return -ENOMEM;
                int r = mkdir_p(dd, 0755);
                r = r ?: sim_attr(td, "name", 0444, "%s\n", t->name);
                r = r ?: sim_attr(td, "description", 0444, "%s\n", t->description);
                r = r ?: sim_attr(td, "device_api", 0444, "vfio-pci\n");
                r = r ?: sim_attr(td, "create", 0200, "%s", "");
                if (r < 0)
                        return r;
        }
        _cleanup_free_ char *cl = strdup_printf("%s/sys/class/mdev_bus/%s", root, base(devdir));
        if (!cl)
                return -ENOMEM;
        int r = sim_link(devdir, cl);
        return r ?: sim_mdev_refresh(root, m, devdir);
}

static int mdev_destroy(const char *root, const char *mdevdir) {
        const char *uuid = base(mdevdir);
        _cleanup_free_ char *gl = strdup_printf("%s/iommu_group", mdevdir);
        _cleanup_free_ char *tl = strdup_printf("%s/mdev_type", mdevdir);
        _cleanup_free_ char *g = NULL, *typedir = NULL;
        if (!gl || !tl)
                return -ENOMEM;
        if (readlink_base(gl, &g) >= 0) {
                _cleanup_free_ char *node = strdup_printf("%s/dev/vfio/%s", root, g);
                _cleanup_free_ char *gd = strdup_printf("%s/sys/kernel/iommu_groups/%s", root, g);
                if (!node || !gd)
                        return -ENOMEM;
                (void)unlink(node);
                int r = rm_rf(gd);
                if (r < 0)
                        return r;
        }
        if (readlink_resolved(tl, &typedir) >= 0) {
                _cleanup_free_ char *dl = strdup_printf("%s/devices/%s", typedir, uuid);
                if (dl)
                        (void)unlink(dl);
        }
        _cleanup_free_ char *bl = strdup_printf("%s/sys/bus/mdev/devices/%s", root, uuid);
        _cleanup_free_ char *drl = strdup_printf("%s/sys/bus/mdev/drivers/vfio_mdev/%s", root, uuid);
        if (!bl || !drl)
                return -ENOMEM;
        (void)unlink(bl);
        (void)unlink(drl);
        return rm_rf(mdevdir);
}

int sim_mdev_parent_detach(const char *root, const char *devdir) {
        /* mdev_unregister_parent() removes the children first. */
        _cleanup_strv_free_ char **l = NULL;
        int r = dir_list(devdir, &l);
        if (r < 0)
                return r;
        for (char **e = l; *e; e++) {
                _cleanup_free_ char *md = strdup_printf("%s/%s", devdir, *e);
                _cleanup_free_ char *mt = strdup_printf("%s/%s/mdev_type", devdir, *e);
                if (!md || !mt)
                        return -ENOMEM;
                if (path_exists(mt)) {
                        r = mdev_destroy(root, md);
                        if (r < 0)
                                return r;
                }
        }
        _cleanup_free_ char *types = strdup_printf("%s/mdev_supported_types", devdir);
        _cleanup_free_ char *cl = strdup_printf("%s/sys/class/mdev_bus/%s", root, base(devdir));
        if (!types || !cl)
                return -ENOMEM;
        (void)unlink(cl);
        return rm_rf(types);
}

static bool uuid_valid(const char *s) {
        if (strlen(s) != 36)
                return false;
        for (size_t i = 0; i < 36; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return false;
                } else if (!isxdigit((unsigned char)s[i]))
                        return false;
        }
        return true;
}

int sim_mdev_create(const char *root, const SimHost *h, const char *typedir, const char *value) {
        if (!uuid_valid(value))
                return -EINVAL;
        char uuid[37];
        for (size_t i = 0; i < 37; i++)
                uuid[i] = (char)tolower((unsigned char)value[i]);
        _cleanup_free_ char *busdev = strdup_printf("%s/sys/bus/mdev/devices/%s", root, uuid);
        if (!busdev)
                return -ENOMEM;
        if (path_exists(busdev))
                return -EEXIST;

        _cleanup_free_ char *typesdir = dir_of(typedir);
        _cleanup_free_ char *parentdir = typesdir ? dir_of(typesdir) : NULL;
        if (!parentdir)
                return -ENOMEM;
        SimDev d;
        SimModel vfm;
        int r = sim_dev_model(h, parentdir, &d, &vfm);
        if (r < 0)
                return r;
        const SimVgpuType *t = find_type(d.m, base(typedir));
        if (!t)
                return -ENOENT;
        if (d.m->vgpu == SIM_VGPU_NVIDIA_MDEV)
                for (size_t i = 0; i < d.m->n_types; i++)
                        if (&d.m->types[i] != t && type_count(parentdir, d.m->types[i].id) > 0)
                                return -EINVAL; /* nvidia: the type cannot be mixed with the ones on the GPU */
        if (type_available(d.m, parentdir, t) == 0)
                return -EUSERS;

        _cleanup_free_ char *md = strdup_printf("%s/%s", parentdir, uuid);
        _cleanup_free_ char *tl = strdup_printf("%s/mdev_type", md ?: "");
        _cleanup_free_ char *drv = strdup_printf("%s/sys/bus/mdev/drivers/vfio_mdev", root);
        _cleanup_free_ char *dl = strdup_printf("%s/driver", md ?: "");
        _cleanup_free_ char *drl = strdup_printf("%s/%s", drv ?: "", uuid);
        _cleanup_free_ char *sub = strdup_printf("%s/subsystem", md ?: "");
        _cleanup_free_ char *bus = strdup_printf("%s/sys/bus/mdev", root);
        _cleanup_free_ char *tdl = strdup_printf("%s/devices/%s", typedir, uuid);
        _cleanup_free_ char *vfio = strdup_printf("%s/dev/vfio", root);
        if (!md || !tl || !drv || !dl || !drl || !sub || !bus || !tdl || !vfio)
                return -ENOMEM;
        r = mkdir_p(md, 0755);
        r = r ?: sim_link(typedir, tl);
        r = r ?: sim_attr(md, "remove", 0200, "%s", "");
        r = r ?: sim_attr(md, "uevent", 0644, "MDEV_TYPE=%s\n", t->id);
        r = r ?: sim_link(bus, sub);
        r = r ?: sim_link(md, busdev);
        r = r ?: sim_link(md, tdl);
        if (r >= 0 && d.m->vgpu == SIM_VGPU_NVIDIA_MDEV) {
                _cleanup_free_ char *nv = strdup_printf("%s/nvidia", md);
                r = nv ? mkdir_p(nv, 0755) : -ENOMEM;
                r = r ?: sim_attr(nv, "vgpu_params", 0644, "%s", "");
        }
        if (r < 0)
                return r;
        int g = sim_next_group(root);
        if (g < 0)
                return g;
        _cleanup_free_ char *node = strdup_printf("%s/dev/vfio/%d", root, g);
        if (!node)
                return -ENOMEM;
        r = sim_group_add(root, g, md, uuid);
        r = r ?: sim_link(drv, dl);
        r = r ?: sim_link(md, drl);
        r = r ?: mkdir_p(vfio, 0755);
        r = r ?: sim_file(node, 0600, "", 0);
        return r ?: sim_mdev_refresh(root, d.m, parentdir);
}

int sim_mdev_remove(const char *root, const char *mdevdir, const char *value) {
        uint32_t v;
        if (parse_u32(value, 0, &v) < 0)
                return -EINVAL;
        if (v == 0)
                return 0;
        _cleanup_free_ char *parentdir = dir_of(mdevdir);
        if (!parentdir)
                return -ENOMEM;
        int r = mdev_destroy(root, mdevdir);
        if (r < 0)
                return r;
        _cleanup_sim_host_free_ SimHost *h = NULL;
        r = sim_host_load(root, &h);
        if (r < 0)
                return r;
        SimDev d;
        SimModel vfm;
        if (sim_dev_model(h, parentdir, &d, &vfm) < 0)
                return 0;
        return sim_mdev_refresh(root, d.m, parentdir);
}

/* ---- NVIDIA vendor-specific vGPU on VFs ------------------------------------------------------------ */

static unsigned vf_type(const char *vfdir) {
        int v = sim_read_int(vfdir, "nvidia/current_vgpu_type", 0);
        return v > 0 ? (unsigned)v : 0;
}

/* The type in use on a GPU (0: none) and how many VFs carry it. */
static void gpu_usage(const char *pfdir, unsigned *ret_type, unsigned *ret_count) {
        unsigned type = 0, count = 0;
        int numvfs = sim_read_int(pfdir, "sriov_numvfs", 0);
        for (int i = 0; i < numvfs; i++) {
                _cleanup_free_ char *vl = strdup_printf("%s/virtfn%d", pfdir, i);
                _cleanup_free_ char *vfdir = NULL;
                if (!vl || readlink_resolved(vl, &vfdir) < 0)
                        continue;
                unsigned t = vf_type(vfdir);
                if (t == 0)
                        continue;
                type = t;
                count++;
        }
        *ret_type = type;
        *ret_count = count;
}

static int write_creatable(const SimModel *m, const char *vfdir, unsigned in_use, unsigned count) {
        _cleanup_free_ char *nv = strdup_printf("%s/nvidia", vfdir);
        if (!nv)
                return -ENOMEM;
        if (!dir_exists(nv))
                return 0; /* not on the nvidia driver */
        char buf[2048] = "";
        size_t o = 0;
        if (vf_type(vfdir) == 0)
                for (size_t i = 0; i < m->n_types; i++) {
                        const SimVgpuType *t = &m->types[i];
                        unsigned id = (unsigned)strtoul(t->id, NULL, 10);
                        if (in_use != 0 && (id != in_use || count >= t->max_instances))
                                continue;
                        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s : %s\n", t->id, t->name);
                }
        return sim_attr(nv, "creatable_vgpu_types", 0444, "%s", buf);
}

int sim_nvvf_refresh(const char *root, const SimModel *pfm, const char *pfdir) {
        unsigned in_use, count;
        gpu_usage(pfdir, &in_use, &count);
        int numvfs = sim_read_int(pfdir, "sriov_numvfs", 0);
        for (int i = 0; i < numvfs; i++) {
                _cleanup_free_ char *vl = strdup_printf("%s/virtfn%d", pfdir, i);
                _cleanup_free_ char *vfdir = NULL;
                if (!vl)
                        return -ENOMEM;
                if (readlink_resolved(vl, &vfdir) < 0)
                        continue;
                int r = write_creatable(pfm, vfdir, in_use, count);
                if (r < 0)
                        return r;
        }
        return 0;
}

int sim_nvvf_attach(const char *root, const SimModel *pfm, const char *vfdir) {
        _cleanup_free_ char *nv = strdup_printf("%s/nvidia", vfdir);
        _cleanup_free_ char *pl = strdup_printf("%s/physfn", vfdir);
        _cleanup_free_ char *pfdir = NULL;
        if (!nv || !pl)
                return -ENOMEM;
        int r = mkdir_p(nv, 0755);
        r = r ?: sim_attr(nv, "current_vgpu_type", 0644, "0\n");
        r = r ?: sim_attr(nv, "vgpu_params", 0644, "%s", "");
        r = r ?: sim_attr(nv, "placement_id", 0644, "0\n");
        r = r ?: sim_attr(nv, "gpu_instance_id", 0444, "-1\n");
        if (r < 0)
                return r;
        unsigned in_use = 0, count = 0;
        if (readlink_resolved(pl, &pfdir) >= 0)
                gpu_usage(pfdir, &in_use, &count);
        return write_creatable(pfm, vfdir, in_use, count);
}

int sim_nvvf_write_type(const char *root, const SimHost *h, const char *vfdir, const char *value) {
        uint32_t n;
        if (parse_u32(value, 10, &n) < 0)
                return -EINVAL;
        _cleanup_free_ char *pl = strdup_printf("%s/physfn", vfdir);
        _cleanup_free_ char *pfdir = NULL, *pfname = NULL;
        if (!pl)
                return -ENOMEM;
        if (readlink_resolved(pl, &pfdir) < 0 || readlink_base(pl, &pfname) < 0)
                return -ENODEV;
        const SimDev *pf = sim_host_find(h, pfname);
        if (!pf)
                return -ENODEV;
        unsigned cur = vf_type(vfdir);
        if (n == cur)
                return 0;
        if (n != 0 && cur != 0)
                return -EBUSY;
        if (n != 0) {
                _cleanup_free_ char *cp = strdup_printf("%s/nvidia/creatable_vgpu_types", vfdir);
                _cleanup_free_ char *text = NULL;
                if (!cp)
                        return -ENOMEM;
                int r = read_attr(cp, &text);
                if (r < 0)
                        return r;
                bool ok = false;
                for (char *line = text; line && *line;) {
                        char *nl = strchr(line, '\n');
                        if (nl)
                                *nl = '\0';
                        unsigned id;
                        if (sscanf(line, "%u :", &id) == 1 && id == n)
                                ok = true;
                        line = nl ? nl + 1 : NULL;
                }
                if (!ok)
                        return -EINVAL;
        }
        _cleanup_free_ char *nv = strdup_printf("%s/nvidia", vfdir);
        if (!nv)
                return -ENOMEM;
        int r = sim_attr(nv, "current_vgpu_type", 0644, "%u\n", n);
        return r ?: sim_nvvf_refresh(root, pf->m, pfdir);
}
