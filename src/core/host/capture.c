/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "core/host/capture.h"
#include "core/host/pci.h"

typedef struct Capture {
        Root *root;
        const char *dir;
        unsigned files;
        GvError *err;
} Capture;

/* The attributes of a PCI device gpuvirt reads (pci.c, sriov.c, vfio.c, check.c). */
static const char *const pci_attrs[] = {
        "vendor", "device", "subsystem_vendor", "subsystem_device", "class", "revision", "numa_node",
        "local_cpulist", "boot_vga", "current_link_speed", "current_link_width", "max_link_speed",
        "max_link_width", "sriov_totalvfs", "sriov_numvfs", "sriov_offset", "sriov_stride", "sriov_vf_device",
        "sriov_drivers_autoprobe", "driver_override", "enable", "irq", "reset_method", "d3cold_allowed",
        "power_state", "rom", "reset",
};

/* Parameters of the kernel command line kept (the rest may name disks, hosts, consoles). */
static const char *const cmdline_keep[] = {
        "intel_iommu", "amd_iommu", "iommu", "iommu.*", "vfio*", "kvm*", "pci", "pcie_acs_override",
        "pcie_aspm", "nouveau.*", "nvidia*", "i915.*", "amdgpu.*", "modprobe.blacklist", "module_blacklist",
        "rd.driver.*", "nomodeset", "video", "efifb", "video.*", "hugepages", "hugepagesz", "default_hugepagesz",
};

static const char *const module_params[] = {"vfio*", "kvm*", "nvidia*", "mdev"};

static int fail(Capture *c, int r, const char *what) {
        return gv_error_set(c->err, r, NULL, "capture", "cannot capture %s: %s", what, errno_message(r));
}

/* dir/rel's parent directory, created */
static char *out_path(Capture *c, const char *rel) {
        char *p = strdup_printf("%s/%s", c->dir, rel);
        if (!p)
                return NULL;
        char *slash = strrchr(p, '/');
        *slash = '\0';
        int r = mkdir_p(p, 0755);
        *slash = '/';
        if (r < 0) {
                free(p);
                errno = -r;
                return NULL;
        }
        return p;
}

static int put(Capture *c, const char *rel, const void *data, size_t len) {
        _cleanup_free_ char *p = out_path(c, rel);
        if (!p)
                return fail(c, errno ? -errno : -ENOMEM, rel);
        int r = write_file(p, data, len, O_CREAT | O_TRUNC, 0644);
        if (r < 0)
                return fail(c, r, rel);
        c->files++;
        return 0;
}

/* Copy a regular file of the root (at most max bytes) as it is. Absent or unreadable: skipped. */
static int copy_file(Capture *c, const char *rel, size_t max) {
        _cleanup_free_ char *src = root_path(c->root, "%s", rel);
        _cleanup_free_ void *data = NULL;
        size_t n = 0;
        if (!src)
                return -ENOMEM;
        struct stat st;
        if (lstat(src, &st) < 0 || !S_ISREG(st.st_mode))
                return 0;
        /* the option ROM: its size, never its contents (a sparse file) */
        if (endswith(rel, "/rom")) {
                int r = put(c, rel, "", 0);
                _cleanup_free_ char *p = r < 0 ? NULL : strdup_printf("%s/%s", c->dir, rel);
                return r < 0 ? r : p && truncate(p, st.st_size) == 0 ? 0 : fail(c, p ? -errno : -ENOMEM, rel);
        }
        /* write-only attributes (bind, reset, remove) are kept as empty files: what exists is what is known */
        if (!(st.st_mode & 0444) || read_full(src, max, &data, &n) < 0)
                return put(c, rel, "", 0);
        return put(c, rel, data, n);
}

static int copy_link(Capture *c, const char *rel) {
        _cleanup_free_ char *src = root_path(c->root, "%s", rel);
        if (!src)
                return -ENOMEM;
        char target[4096];
        ssize_t k = readlink(src, target, sizeof target - 1);
        if (k < 0)
                return 0;
        target[k] = '\0';
        _cleanup_free_ char *p = out_path(c, rel);
        if (!p)
                return fail(c, errno ? -errno : -ENOMEM, rel);
        (void)unlink(p);
        if (symlink(target, p) < 0)
                return fail(c, -errno, rel);
        c->files++;
        return 0;
}

/* Every entry of a directory of the root (relative), sorted; an absent directory is empty. */
static char **list(Capture *c, const char *rel) {
        _cleanup_free_ char *p = root_path(c->root, "%s", rel);
        char **l = NULL;
        if (p && dir_list(p, &l) < 0)
                l = NULL;
        return l;
}

static bool is_link(Capture *c, const char *rel) {
        _cleanup_free_ char *p = root_path(c->root, "%s", rel);
        struct stat st;
        return p && lstat(p, &st) == 0 && S_ISLNK(st.st_mode);
}

/* A whole small directory tree of attributes (mdev_supported_types, nvidia/): files and links, depth-limited. */
static int copy_tree(Capture *c, const char *rel, int depth) {
        _cleanup_strv_free_ char **l = list(c, rel);
        for (char **e = l; e && *e; e++) {
                _cleanup_free_ char *sub = strdup_printf("%s/%s", rel, *e);
                if (!sub)
                        return -ENOMEM;
                _cleanup_free_ char *src = root_path(c->root, "%s", sub);
                struct stat st;
                if (!src || lstat(src, &st) < 0)
                        continue;
                int r = S_ISLNK(st.st_mode) ? copy_link(c, sub)
                      : S_ISDIR(st.st_mode) ? (depth > 0 ? copy_tree(c, sub, depth - 1) : 0)
                                            : copy_file(c, sub, 64 * 1024);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool matches_any(const char *s, const char *const *pats, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (fnmatch(pats[i], s, 0) == 0)
                        return true;
        return false;
}

/* The config space with the Device Serial Number capability's serial zeroed. */
static int copy_config(Capture *c, const char *dev) {
        _cleanup_free_ char *rel = strdup_printf("%s/config", dev);
        _cleanup_free_ char *src = rel ? root_path(c->root, "%s", rel) : NULL;
        _cleanup_free_ uint8_t *cfg = NULL;
        size_t n = 0;
        if (!src)
                return -ENOMEM;
        if (read_full(src, 4096, (void **)&cfg, &n) < 0)
                return 0;
        unsigned pos = pci_config_find_ext_cap(cfg, n, 0x0003 /* PCI_EXT_CAP_ID_DSN */);
        if (pos && pos + 12 <= n)
                memset(cfg + pos + 4, 0, 8);
        return put(c, rel, cfg, n);
}

static int capture_device(Capture *c, const char *bdf) {
        _cleanup_free_ char *link = strdup_printf("sys/bus/pci/devices/%s", bdf);
        _cleanup_free_ char *abs = link ? root_path(c->root, "%s", link) : NULL;
        _cleanup_free_ char *real = NULL;
        if (!abs)
                return -ENOMEM;
        int r = copy_link(c, link);
        if (r < 0)
                return r;
        const char *top = streq(root_dir(c->root), "/") ? "" : root_dir(c->root);
        if (readlink_resolved(abs, &real) < 0 || !startswith(real, top))
                return 0; /* a device directory outside the root is not copied */
        const char *dev = real + strlen(top);
        while (*dev == '/')
                dev++;
        for (size_t i = 0; i < ELEMENTSOF(pci_attrs); i++) {
                _cleanup_free_ char *a = strdup_printf("%s/%s", dev, pci_attrs[i]);
                if (!a || (r = copy_file(c, a, 64 * 1024)) < 0)
                        return r < 0 ? r : -ENOMEM;
        }
        if ((r = copy_config(c, dev)) < 0)
                return r;
        _cleanup_strv_free_ char **l = list(c, dev);
        for (char **e = l; e && *e; e++) {
                _cleanup_free_ char *a = strdup_printf("%s/%s", dev, *e);
                if (!a)
                        return -ENOMEM;
                if (streq(*e, "driver") || streq(*e, "iommu_group") || streq(*e, "physfn") || startswith(*e, "virtfn"))
                        r = copy_link(c, a);
                else if (streq(*e, "mdev_supported_types") || streq(*e, "nvidia"))
                        r = copy_tree(c, a, 2);
                else if (streq(*e, "vfio-dev"))
                        r = copy_tree(c, a, 1);
                else if (!is_link(c, a)) {
                        /* an mdev of this parent: its type and group */
                        _cleanup_free_ char *t = strdup_printf("%s/mdev_type", a);
                        _cleanup_free_ char *g = strdup_printf("%s/iommu_group", a);
                        r = t && g && is_link(c, t) ? copy_link(c, t) ?: copy_link(c, g) : 0;
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

static int capture_pci(Capture *c) {
        _cleanup_strv_free_ char **devs = list(c, "sys/bus/pci/devices");
        int r;
        for (char **d = devs; d && *d; d++)
                if ((r = capture_device(c, *d)) < 0)
                        return r;
        /* each driver's device links (so that a device's driver link leads somewhere) and its module link */
        _cleanup_strv_free_ char **drivers = list(c, "sys/bus/pci/drivers");
        for (char **d = drivers; d && *d; d++) {
                _cleanup_free_ char *rel = strdup_printf("sys/bus/pci/drivers/%s", *d);
                _cleanup_strv_free_ char **l = rel ? list(c, rel) : NULL;
                if (!rel)
                        return -ENOMEM;
                for (char **e = l; e && *e; e++) {
                        if (!strv_contains(devs, *e) && !streq(*e, "module"))
                                continue;
                        _cleanup_free_ char *a = strdup_printf("%s/%s", rel, *e);
                        if (!a || (r = copy_link(c, a)) < 0)
                                return r < 0 ? r : -ENOMEM;
                }
        }
        return 0;
}

static int capture_links_of(Capture *c, const char *rel) {
        _cleanup_strv_free_ char **l = list(c, rel);
        for (char **e = l; e && *e; e++) {
                _cleanup_free_ char *a = strdup_printf("%s/%s", rel, *e);
                int r = a ? copy_link(c, a) : -ENOMEM;
                if (r < 0)
                        return r;
        }
        return 0;
}

static int capture_iommu(Capture *c) {
        _cleanup_strv_free_ char **groups = list(c, "sys/kernel/iommu_groups");
        _cleanup_free_ char *p = root_path(c->root, "sys/kernel/iommu_groups");
        int r;
        if (!p)
                return -ENOMEM;
        /* an empty iommu_groups says the IOMMU is off: keep the directory (git drops empty ones) */
        if (dir_exists(p) && (!groups || !groups[0]) && (r = put(c, "sys/kernel/iommu_groups/.capture-empty", "", 0)) < 0)
                return r;
        for (char **g = groups; g && *g; g++) {
                _cleanup_free_ char *d = strdup_printf("sys/kernel/iommu_groups/%s/devices", *g);
                _cleanup_free_ char *t = strdup_printf("sys/kernel/iommu_groups/%s/type", *g);
                if (!d || !t)
                        return -ENOMEM;
                if ((r = capture_links_of(c, d)) < 0 || (r = copy_file(c, t, 256)) < 0)
                        return r;
        }
        if ((r = capture_links_of(c, "sys/class/iommu")) < 0 || (r = capture_links_of(c, "sys/class/mdev_bus")) < 0)
                return r;
        /* mdevs: the bus links (their directories are under their parents, copied with them) */
        return capture_links_of(c, "sys/bus/mdev/devices");
}

static int capture_acpi(Capture *c) {
        _cleanup_strv_free_ char **l = list(c, "sys/firmware/acpi/tables");
        for (char **e = l; e && *e; e++) {
                _cleanup_free_ char *a = strdup_printf("sys/firmware/acpi/tables/%s", *e);
                _cleanup_free_ char *src = a ? root_path(c->root, "%s", a) : NULL;
                if (!src)
                        return -ENOMEM;
                struct stat st;
                if (lstat(src, &st) < 0 || !S_ISREG(st.st_mode))
                        continue; /* data/, dynamic/ */
                int r = put(c, a, "", 0); /* the name only: table contents identify the machine */
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The lines of a text file of the root that keep(line) accepts; absent: nothing written. */
static int filter_file(Capture *c, const char *rel, bool (*keep)(const char *line, void *ud), void *ud) {
        _cleanup_free_ char *p = root_path(c->root, "%s", rel);
        _cleanup_free_ char *text = NULL, *out = NULL;
        size_t n = 0, len = 0;
        if (!p)
                return -ENOMEM;
        if (read_full(p, 16 * 1024 * 1024, (void **)&text, &n) < 0)
                return 0;
        FILE *f = open_memstream(&out, &len);
        if (!f)
                return -ENOMEM;
        for (char *line = text, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                if (keep(line, ud))
                        fprintf(f, "%s\n", line);
        }
        if (fclose(f) < 0 || !out)
                return -ENOMEM;
        return put(c, rel, out, len);
}

static bool keep_cpuinfo(const char *line, void *ud) {
        bool *done = ud;
        if (startswith(line, "vendor_id") || startswith(line, "flags") || startswith(line, "Features") ||
            startswith(line, "processor")) {
                if (startswith(line, "processor") && *done)
                        return false;
                return !*done;
        }
        if (*line == '\0' && !*done) /* the first processor ends here */
                *done = true;
        return false;
}

static bool keep_interrupts(const char *line, void *ud) {
        bool *first = ud;
        if (*first) {
                *first = false;
                return true; /* the CPU header */
        }
        return strstr(line, "IR-") || strstr(line, "DMAR") || strstr(line, "AMD-Vi");
}

static bool keep_meminfo(const char *line, void *ud) {
        return startswith(line, "MemTotal:") || startswith(line, "Huge");
}

static bool keep_os_release(const char *line, void *ud) {
        return startswith(line, "ID=") || startswith(line, "VERSION_ID=");
}

static bool keep_modules_dep(const char *line, void *ud) {
        const char *colon = strchr(line, ':');
        size_t end = colon ? (size_t)(colon - line) : strlen(line);
        const char *slash = line;
        for (const char *q = line; q < line + end; q++)
                if (*q == '/')
                        slash = q + 1;
        return strneq(slash, "vfio", 4) || strneq(slash, "kvm", 3) || strneq(slash, "nvidia", 6) ||
               strneq(slash, "mdev", 4) || strneq(slash, "nouveau", 7);
}

static int capture_proc(Capture *c) {
        bool done = false, first = true;
        int r;
        if ((r = filter_file(c, "proc/cpuinfo", keep_cpuinfo, &done)) < 0 ||
            (r = filter_file(c, "proc/interrupts", keep_interrupts, &first)) < 0 ||
            (r = filter_file(c, "proc/meminfo", keep_meminfo, NULL)) < 0 ||
            (r = filter_file(c, "etc/os-release", keep_os_release, NULL)) < 0 ||
            (r = copy_file(c, "proc/sys/kernel/osrelease", 256)) < 0)
                return r;
        /* the kernel command line: only what concerns devices */
        _cleanup_free_ char *cmdline = NULL, *out = NULL;
        if (root_read_attr(c->root, &cmdline, "proc/cmdline") == 0) {
                size_t len = 0;
                FILE *f = open_memstream(&out, &len);
                if (!f)
                        return -ENOMEM;
                bool any = false;
                char *save = NULL;
                for (char *w = strtok_r(cmdline, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
                        _cleanup_free_ char *key = strndup(w, strcspn(w, "="));
                        if (key && matches_any(key, cmdline_keep, ELEMENTSOF(cmdline_keep))) {
                                fprintf(f, "%s%s", any ? " " : "", w);
                                any = true;
                        }
                }
                fputc('\n', f);
                if (fclose(f) < 0 || !out)
                        return -ENOMEM;
                if ((r = put(c, "proc/cmdline", out, len)) < 0)
                        return r;
        }
        /* modules: present ones (initstate, or the uevent every module directory has) and parameters */
        _cleanup_strv_free_ char **mods = list(c, "sys/module");
        for (char **m = mods; m && *m; m++) {
                _cleanup_free_ char *init = strdup_printf("sys/module/%s/initstate", *m);
                _cleanup_free_ char *uevent = strdup_printf("sys/module/%s/uevent", *m);
                _cleanup_free_ char *params = strdup_printf("sys/module/%s/parameters", *m);
                if (!init || !uevent || !params)
                        return -ENOMEM;
                _cleanup_free_ char *ip = root_path(c->root, "%s", init);
                r = ip && path_exists(ip) ? copy_file(c, init, 256) : put(c, uevent, "", 0);
                if (r >= 0 && matches_any(*m, module_params, ELEMENTSOF(module_params)))
                        r = copy_tree(c, params, 0);
                if (r < 0)
                        return r;
        }
        _cleanup_free_ char *rel = NULL;
        if (root_read_attr(c->root, &rel, "proc/sys/kernel/osrelease") == 0 && !strchr(rel, '/')) {
                _cleanup_free_ char *dep = strdup_printf("lib/modules/%s/modules.dep", rel);
                _cleanup_free_ char *builtin = strdup_printf("lib/modules/%s/modules.builtin", rel);
                if (!dep || !builtin)
                        return -ENOMEM;
                if ((r = filter_file(c, dep, keep_modules_dep, NULL)) < 0 || (r = copy_file(c, builtin, 1024 * 1024)) < 0)
                        return r;
        }
        /* device nodes: their names only */
        if (root_exists(c->root, "dev/kvm") && (r = put(c, "dev/kvm", "", 0)) < 0)
                return r;
        _cleanup_strv_free_ char **vfio = list(c, "dev/vfio");
        for (char **v = vfio; v && *v; v++) {
                _cleanup_free_ char *a = strdup_printf("dev/vfio/%s", *v);
                if (!a || (r = put(c, a, "", 0)) < 0)
                        return r < 0 ? r : -ENOMEM;
        }
        return 0;
}

int host_capture(Root *root, const char *dir, unsigned *ret_files, GvError *err) {
        _cleanup_strv_free_ char **existing = NULL;
        if (dir_exists(dir) && dir_list(dir, &existing) > 0)
                return gv_error_set(err, -ENOTEMPTY, NULL, "capture", "%s exists and is not empty", dir);
        int r = mkdir_p(dir, 0755);
        if (r < 0)
                return gv_error_set(err, r, NULL, "capture", "cannot create %s: %s", dir, errno_message(r));
        _cleanup_free_ char *abs = realpath(dir, NULL);
        if (!abs)
                return gv_error_set(err, -errno, NULL, "capture", "cannot resolve %s: %m", dir);
        Capture c = {.root = root, .dir = abs, .err = err};
        if ((r = capture_pci(&c)) < 0 || (r = capture_iommu(&c)) < 0 || (r = capture_acpi(&c)) < 0 ||
            (r = capture_proc(&c)) < 0)
                return err && err->error ? r : gv_error_set(err, r, NULL, "capture", "cannot capture %s: %s",
                                                            root_dir(root), errno_message(r));
        *ret_files = c.files;
        return 0;
}
