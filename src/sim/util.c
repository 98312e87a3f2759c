/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "basic/fileio.h"
#include "sim-internal.h"

/* Create or replace a file with the given mode; works on read-only attributes too (the simulator is the
 * kernel: it changes what userspace may only read). */
int sim_file(const char *path, mode_t mode, const void *data, size_t len) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0 && errno == EACCES) {
                (void)unlink(path);
                fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        }
        if (fd < 0)
                return negative_errno();
        _cleanup_close_ int cfd = fd;
        if (len > 0 && write(cfd, data, len) != (ssize_t)len)
                return -EIO;
        /* open() applied the umask; only modes with group/other write bits can have lost some */
        if ((mode & 022) && fchmod(cfd, mode) < 0)
                return negative_errno();
        return 0;
}

int sim_attr(const char *dir, const char *name, mode_t mode, const char *fmt, ...) {
        _cleanup_free_ char *path = strdup_printf("%s/%s", dir, name);
        _cleanup_free_ char *text = NULL;
        if (!path)
                return -ENOMEM;
        va_list ap;
        va_start(ap, fmt);
        int k = vasprintf(&text, fmt, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        return sim_file(path, mode, text, (size_t)k);
}

int sim_link(const char *target, const char *link) {
        return symlink_relative(target, link);
}

bool sim_is_bdf(const char *s) {
        /* canonical "dddd:bb:ss.f", lower case, as the kernel names devices */
        if (strlen(s) != 12 || s[4] != ':' || s[7] != ':' || s[10] != '.')
                return false;
        for (size_t i = 0; i < 12; i++) {
                if (i == 4 || i == 7 || i == 10)
                        continue;
                if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
                        return false;
        }
        return s[11] >= '0' && s[11] <= '7' && (s[8] <= '1');
}

int sim_free_index(const char *dir, const char *prefix) {
        for (int n = 0; n < 100000; n++) {
                _cleanup_free_ char *p = strdup_printf("%s/%s%d", dir, prefix, n);
                if (!p)
                        return -ENOMEM;
                struct stat st;
                if (lstat(p, &st) < 0)
                        return n;
        }
        return -ENOSPC;
}

int sim_read_int(const char *dir, const char *name, int def) {
        _cleanup_free_ char *p = strdup_printf("%s/%s", dir, name);
        int v;
        if (!p || read_attr_int(p, &v) < 0)
                return def;
        return v;
}

int sim_dev_lookup(const char *root, const char *bdf, char **ret_devdir) {
        if (!sim_is_bdf(bdf))
                return -ENODEV;
        _cleanup_free_ char *link = strdup_printf("%s/sys/bus/pci/devices/%s", root, bdf);
        if (!link)
                return -ENOMEM;
        int r = readlink_resolved(link, ret_devdir);
        return r == -ENOENT ? -ENODEV : r;
}

int sim_dev_ids(const char *devdir, uint16_t *vendor, uint16_t *device) {
        _cleanup_free_ char *pv = strdup_printf("%s/vendor", devdir), *pd = strdup_printf("%s/device", devdir);
        uint32_t v, d;
        if (!pv || !pd)
                return -ENOMEM;
        int r = read_attr_u32(pv, 16, &v);
        if (r < 0)
                return r;
        r = read_attr_u32(pd, 16, &d);
        if (r < 0)
                return r;
        *vendor = (uint16_t)v;
        *device = (uint16_t)d;
        return 0;
}

int sim_dev_model(const SimHost *h, const char *devdir, SimDev *ret_dev, SimModel *ret_model) {
        const char *name = strrchr(devdir, '/');
        name = name ? name + 1 : devdir;
        _cleanup_free_ char *pflink = strdup_printf("%s/physfn", devdir);
        _cleanup_free_ char *pfname = NULL;
        if (!pflink)
                return -ENOMEM;
        if (readlink_base(pflink, &pfname) >= 0) {
                const SimDev *pf = sim_host_find(h, pfname);
                if (!pf || pf->m->sriov_total == 0)
                        return -ENODEV;
                unsigned bus, slot, func;
                if (sscanf(name, "0000:%x:%x.%x", &bus, &slot, &func) != 3)
                        return -ENODEV;
                unsigned rid = bus << 8 | slot << 3 | func;
                unsigned pfrid = (unsigned)pf->bus << 8 | (unsigned)pf->slot << 3 | pf->func;
                unsigned i = (rid - pfrid - pf->m->sriov_offset) / MAX(pf->m->sriov_stride, 1);
                return sim_vf_make(pf, i, ret_dev, ret_model);
        }
        const SimDev *d = sim_host_find(h, name);
        if (!d)
                return -ENODEV;
        *ret_dev = *d;
        return 0;
}
