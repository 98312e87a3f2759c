/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sim_kernel_write(): resolve the written path inside the simulated root (following sysfs links) and
 * play the attribute's store() function.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "basic/fileio.h"
#include "sim-internal.h"
#include "sim.h"

static const char *base(const char *path) {
        const char *s = strrchr(path, '/');
        return s ? s + 1 : path;
}

static char *dir_of(const char *path) {
        const char *s = strrchr(path, '/');
        return s ? strndup(path, (size_t)(s - path)) : strdup(".");
}

static bool is_pci_dev_dir(const char *dir) {
        _cleanup_free_ char *p = strdup_printf("%s/config", dir);
        return p && sim_is_bdf(base(dir)) && path_exists(p);
}

/* kstrtobool() */
static int parse_bool(const char *s) {
        if (streq(s, "1") || streq(s, "y") || streq(s, "Y") || streq(s, "on"))
                return 1;
        if (streq(s, "0") || streq(s, "n") || streq(s, "N") || streq(s, "off"))
                return 0;
        return -EINVAL;
}

static int driver_write(const char *root, const SimHost *h, const char *drv, const char *attr, const char *value) {
        _cleanup_free_ char *devdir = NULL;
        if (streq(attr, "new_id") || streq(attr, "remove_id"))
                return -EOPNOTSUPP; /* not modelled: see sim.h */
        if (!streq(attr, "bind") && !streq(attr, "unbind"))
                return -EACCES;
        int r = sim_dev_lookup(root, value, &devdir);
        if (r < 0)
                return r;
        if (streq(attr, "bind"))
                return sim_probe(root, h, devdir, true, drv);
        _cleanup_free_ char *dl = strdup_printf("%s/driver", devdir);
        _cleanup_free_ char *cur = NULL;
        if (!dl)
                return -ENOMEM;
        if (readlink_base(dl, &cur) < 0 || !streq(cur, drv))
                return -ENODEV;
        return sim_detach(root, h, devdir);
}

static int generic_store(const char *path, const char *value) {
        struct stat st;
        if (stat(path, &st) < 0)
                return negative_errno();
        if (!(st.st_mode & 0222))
                return -EACCES;
        _cleanup_free_ char *v = strdup_printf("%s\n", value);
        if (!v)
                return -ENOMEM;
        return sim_file(path, st.st_mode & 07777, v, strlen(v));
}

static int reset_write(const char *root, const char *devdir, const char *value) {
        uint32_t v;
        if (parse_u32(value, 0, &v) < 0 || v != 1)
                return -EINVAL;
        _cleanup_free_ char *p = strdup_printf("%s/reset_method", devdir);
        _cleanup_free_ char *m = NULL;
        if (!p)
                return -ENOMEM;
        if (read_attr(p, &m) < 0 || isempty(m))
                return -ENOTTY;
        /* counted for the fake NVML: a reset applies a pending MIG mode and clears MIG instances */
        return sim_reset_count(root, base(devdir));
}

static int dispatch(const char *root, const SimHost *h, const char *abs, const char *rel, const char *value) {
        const char *name = base(rel);
        _cleanup_free_ char *dir = dir_of(abs);
        if (!dir)
                return -ENOMEM;

        if (streq(rel, "sys/bus/pci/drivers_probe")) {
                _cleanup_free_ char *devdir = NULL;
                int r = sim_dev_lookup(root, value, &devdir);
                return r < 0 ? r : sim_probe(root, h, devdir, false, NULL);
        }
        if (streq(rel, "sys/bus/pci/rescan"))
                return parse_bool(value) < 0 ? -EINVAL : 0;
        const char *d = startswith(rel, "sys/bus/pci/drivers/");
        if (d && strchr(d, '/') && !strchr(strchr(d, '/') + 1, '/')) {
                _cleanup_free_ char *drv = strndup(d, (size_t)(strchr(d, '/') - d));
                return drv ? driver_write(root, h, drv, name, value) : -ENOMEM;
        }

        if (is_pci_dev_dir(dir)) {
                if (streq(name, "driver_override")) {
                        if (strlen(value) >= 4095)
                                return -EINVAL;
                        return sim_attr(dir, "driver_override", 0644, "%s\n", isempty(value) ? "(null)" : value);
                }
                if (streq(name, "sriov_numvfs"))
                        return sim_sriov_set(root, h, dir, value);
                if (streq(name, "sriov_drivers_autoprobe")) {
                        int b = parse_bool(value);
                        return b < 0 ? b : sim_attr(dir, name, 0644, "%d\n", b);
                }
                if (streq(name, "reset"))
                        return reset_write(root, dir, value);
        }
        if (streq(name, "create")) {
                _cleanup_free_ char *types = dir_of(dir);
                if (types && streq(base(types), "mdev_supported_types"))
                        return sim_mdev_create(root, h, dir, value);
        }
        if (streq(name, "remove")) {
                _cleanup_free_ char *mt = strdup_printf("%s/mdev_type", dir);
                if (mt && path_exists(mt))
                        return sim_mdev_remove(root, dir, value);
        }
        if (streq(name, "current_vgpu_type") && streq(base(dir), "nvidia")) {
                _cleanup_free_ char *vfdir = dir_of(dir);
                return vfdir ? sim_nvvf_write_type(root, h, vfdir, value) : -ENOMEM;
        }
        return generic_store(abs, value);
}

int sim_kernel_write(const char *rootdir, const char *rel, const char *value) {
        if (!rootdir || !rel || !value)
                return -EINVAL;
        _cleanup_free_ char *root = realpath(rootdir, NULL);
        if (!root)
                return negative_errno();
        while (*rel == '/')
                rel++;
        _cleanup_free_ char *given = strdup_printf("%s/%s", root, rel);
        if (!given)
                return -ENOMEM;
        _cleanup_free_ char *abs = realpath(given, NULL);
        if (!abs)
                return negative_errno();
        size_t rl = strlen(root);
        if (strncmp(abs, root, rl) != 0 || abs[rl] != '/')
                return -EACCES; /* a link leading out of the simulated root */
        const char *resolved = abs + rl + 1;
        if (startswith(resolved, SIM_MARKER_DIR "/") || streq(resolved, SIM_MARKER_DIR))
                return -EACCES;
        struct stat st;
        if (stat(abs, &st) < 0)
                return negative_errno();
        if (S_ISDIR(st.st_mode))
                return -EISDIR;

        const char *paths[] = {rel, resolved};
        int r = sim_fault_take(root, paths, ELEMENTSOF(paths), true);
        if (r < 0)
                return r;

        /* store() functions strip one trailing newline */
        _cleanup_free_ char *v = strdup(value);
        if (!v)
                return -ENOMEM;
        size_t l = strlen(v);
        if (l > 0 && v[l - 1] == '\n')
                v[l - 1] = '\0';

        _cleanup_sim_host_free_ SimHost *h = NULL;
        r = sim_host_load(root, &h);
        if (r < 0)
                return r;
        return dispatch(root, h, abs, resolved, v);
}

int sim_nvml_fault(const char *rootdir, const char *bdf, const char *call) {
        _cleanup_free_ char *path = strdup_printf("nvml/%s/%s", bdf, call);
        if (!path)
                return -ENOMEM;
        const char *paths[] = {path};
        return sim_fault_take(rootdir, paths, 1, true);
}

int sim_module_load(const char *rootdir, const char *module) {
        _cleanup_free_ char *root = realpath(rootdir, NULL);
        if (!root)
                return negative_errno();
        _cleanup_sim_host_free_ SimHost *h = NULL;
        int r = sim_host_load(root, &h);
        if (r < 0)
                return r;
        static const char *const known[] = {"vfio_pci", "vfio-pci", "vfio", "vfio_iommu_type1", "vfio_pci_core",
                                            "kvm", "kvm_intel", "kvm_amd", "irqbypass", "mdev"};
        for (size_t i = 0; i < ELEMENTSOF(known); i++)
                if (streq(known[i], module))
                        return sim_module_load_internal(root, h, module);
        return -ENOENT;
}
