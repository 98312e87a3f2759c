/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "core/host/pci.h"

static int parse_hex_field(const char *s, size_t len, unsigned max, unsigned *ret) {
        if (len == 0 || len > 4)
                return -EINVAL;
        unsigned v = 0;
        for (size_t i = 0; i < len; i++) {
                if (!isxdigit((unsigned char)s[i]))
                        return -EINVAL;
                v = v * 16 + (unsigned)(isdigit((unsigned char)s[i]) ? s[i] - '0' : (tolower(s[i]) - 'a' + 10));
        }
        if (v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

int pci_addr_parse(const char *s, PciAddr *ret) {
        if (!s)
                return -EINVAL;
        /* Fields: [domain:]bus:slot.func */
        const char *dot = strrchr(s, '.');
        if (!dot)
                return -EINVAL;
        const char *c2 = NULL, *c1 = NULL;
        for (const char *p = s; p < dot; p++)
                if (*p == ':') {
                        c1 = c2;
                        c2 = p;
                }
        if (!c2)
                return -EINVAL;
        unsigned dom = 0, bus, slot, func;
        const char *bus_start = c1 ? c1 + 1 : s;
        if (c1) {
                /* only one extra colon is allowed */
                for (const char *p = s; p < c1; p++)
                        if (*p == ':')
                                return -EINVAL;
                if (parse_hex_field(s, (size_t)(c1 - s), 0xffff, &dom) < 0)
                        return -EINVAL;
        }
        if (parse_hex_field(bus_start, (size_t)(c2 - bus_start), 0xff, &bus) < 0 ||
            (size_t)(c2 - bus_start) > 2)
                return -EINVAL;
        if (parse_hex_field(c2 + 1, (size_t)(dot - c2 - 1), 0x1f, &slot) < 0 || (size_t)(dot - c2 - 1) > 2)
                return -EINVAL;
        if (strlen(dot + 1) != 1 || parse_hex_field(dot + 1, 1, 7, &func) < 0)
                return -EINVAL;
        *ret = (PciAddr){.domain = (uint16_t)dom, .bus = (uint8_t)bus, .slot = (uint8_t)slot, .func = (uint8_t)func};
        return 0;
}

const char *pci_addr_format(const PciAddr *a, char buf[static PCI_ADDR_STRLEN]) {
        snprintf(buf, PCI_ADDR_STRLEN, "%04x:%02x:%02x.%x", a->domain, a->bus, a->slot & 0x1fu, a->func & 7u);
        return buf;
}

bool pci_addr_is_canonical(const char *s) {
        PciAddr a;
        char buf[PCI_ADDR_STRLEN];
        return pci_addr_parse(s, &a) == 0 && streq(pci_addr_format(&a, buf), s);
}

int pci_addr_canonical(const char *s, char **ret) {
        PciAddr a;
        int r = pci_addr_parse(s, &a);
        if (r < 0)
                return r;
        char buf[PCI_ADDR_STRLEN];
        char *c = strdup(pci_addr_format(&a, buf));
        if (!c)
                return -ENOMEM;
        *ret = c;
        return 0;
}

bool pci_addr_same_card(const PciAddr *a, const PciAddr *b) {
        return a->domain == b->domain && a->bus == b->bus && a->slot == b->slot;
}

static const char *const pci_device_state_table[_PCI_DEVICE_STATE_MAX] = {
        [PCI_DEVICE_OK] = "ok",
        [PCI_DEVICE_UNKNOWN] = "unknown",
        [PCI_DEVICE_OFF_BUS] = "off_bus",
        [PCI_DEVICE_VANISHED] = "vanished",
        [PCI_DEVICE_UNREADABLE] = "unreadable",
};

const char *pci_device_state_to_string(PciDeviceState s) {
        return s >= 0 && s < _PCI_DEVICE_STATE_MAX ? pci_device_state_table[s] : NULL;
}

char *pci_device_dead_reason(const PciDevice *d) {
        switch (d->state) {
        case PCI_DEVICE_OFF_BUS:
                return strdup("does not answer on the bus: its config space reads all ones (vendor 0xffff; lspci -x "
                              "shows ff bytes)");
        case PCI_DEVICE_VANISHED:
                return strdup("is gone: its sysfs directory no longer exists (removed, or a capture without it)");
        case PCI_DEVICE_UNREADABLE:
                return strdup_printf("cannot be read: its sysfs directory or config space gives %s",
                                     errno_message(d->state_errno));
        default:
                return NULL;
        }
}

char *pci_device_dead_hint(const PciDevice *d) {
        if (!pci_device_is_dead(d))
                return NULL;
        if (d->state == PCI_DEVICE_VANISHED)
                return strdup_printf("Look in dmesg for a surprise removal or PCIe link-down of %s; after reseating the "
                                     "card, rescan the bus: echo 1 > /sys/bus/pci/rescan.", d->addr);
        return strdup_printf("Look in dmesg for AER errors and, on NVIDIA GPUs, Xid 79 (fallen off the bus) for %s; "
                             "reset it (echo 1 > /sys/bus/pci/devices/%s/reset, or nvidia-smi -r), else reseat or "
                             "power-cycle the card and check its power and riser.",
                             d->addr, d->addr);
}

char *pci_device_dead_message(const PciDevice *d) {
        _cleanup_free_ char *why = pci_device_dead_reason(d), *hint = pci_device_dead_hint(d);
        if (!why)
                return NULL;
        return strdup_printf("%s %s. %s", d->addr, why, strna(hint));
}

void pci_device_done(PciDevice *d) {
        free(d->syspath);
        free(d->parent);
        free(d->driver);
        free(d->driver_override);
        free(d->physfn);
        free(d->link_speed);
        free(d->link_width);
        free(d->max_link_speed);
        free(d->max_link_width);
}

PciHost *pci_host_free(PciHost *h) {
        if (!h)
                return NULL;
        for (size_t i = 0; i < h->n_devices; i++)
                pci_device_done(&h->devices[i]);
        free(h->devices);
        free(h);
        return NULL;
}

static uint16_t le16(const uint8_t *p) {
        return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p) {
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

unsigned pci_config_find_cap(const uint8_t *cfg, size_t size, uint8_t cap_id) {
        if (size < 64 || !(le16(cfg + 0x06) & 0x10)) /* status: capabilities list */
                return 0;
        unsigned pos = cfg[0x34] & 0xfc;
        for (int ttl = 48; pos >= 0x40 && pos + 1 < size && ttl > 0; ttl--) {
                if (cfg[pos] == cap_id)
                        return pos;
                pos = cfg[pos + 1] & 0xfc;
        }
        return 0;
}

unsigned pci_config_find_ext_cap(const uint8_t *cfg, size_t size, uint16_t cap_id) {
        unsigned pos = 0x100;
        for (int ttl = (4096 - 256) / 8; pos >= 0x100 && pos + 4 <= size && ttl > 0; ttl--) {
                uint32_t h = le32(cfg + pos);
                if (h == 0 || h == 0xffffffff)
                        return 0;
                if ((h & 0xffff) == cap_id)
                        return pos;
                pos = (h >> 20) & 0xffc;
        }
        return 0;
}

int pci_device_read_config(const PciHost *h, const PciDevice *d, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ char *p = root_path(h->root, "%s/config", d->syspath);
        if (!p)
                return -ENOMEM;
        return read_full(p, 4096, (void **)ret, ret_size);
}

/* Attribute reads relative to the device's directory fd; a missing file is "unknown" (captures may
 * lack it). */
static char *attr_or_null(int dfd, const char *name) {
        char *v = NULL;
        if (read_attr_at(dfd, name, &v) < 0)
                return NULL;
        return v;
}

static int attr_hex(int dfd, const char *name, uint32_t *ret) {
        _cleanup_free_ char *v = attr_or_null(dfd, name);
        if (!v)
                return -ENOENT;
        return parse_u32(v, 16, ret);
}

static int attr_int(int dfd, const char *name, int def) {
        _cleanup_free_ char *v = attr_or_null(dfd, name);
        int x;
        if (!v || parse_int(v, &x) < 0)
                return def;
        return x;
}

static char *link_base(int dfd, const char *name) {
        char *v = NULL;
        if (readlink_base_at(dfd, name, &v) < 0)
                return NULL;
        return v;
}

static void pci_device_load_ids(int dfd, PciDevice *d, const uint8_t *cfg);
static void pci_device_load_physfn(int dfd, PciDevice *d);

/* Which driver each device is bound to, from the drivers' side: sys/bus/pci/drivers/DRIVER/ holds a link
 * named by the address of each device it drives, made and removed with the device's own driver link. On a
 * host with many more devices than drivers, listing the drivers costs a few system calls per driver instead
 * of one lookup per device, most of them of a link that is not there (a device without a driver). */
typedef struct DriverLink {
        char bdf[PCI_ADDR_STRLEN];
        const char *driver; /* into DriverMap.names */
} DriverLink;

typedef struct DriverMap {
        DriverLink *links; /* by address */
        size_t n;
        char **names;
} DriverMap;

static void driver_map_done(DriverMap *m) {
        free(m->links);
        strv_free(m->names);
        *m = (DriverMap){};
}

static int driver_link_cmp(const void *a, const void *b) {
        return strcmp(((const DriverLink *)a)->bdf, ((const DriverLink *)b)->bdf);
}

/* 0 with the map; -errno: no map (no drivers directory, fewer devices than it would save), each device's
 * link is read instead. */
static int driver_map_build(Root *root, size_t n_devices, DriverMap *ret) {
        *ret = (DriverMap){};
        _cleanup_free_ char *p = root_path(root, "sys/bus/pci/drivers");
        if (!p)
                return -ENOMEM;
        _cleanup_(driver_map_done) DriverMap m = {};
        int r = dir_list(p, &m.names);
        if (r < 0)
                return r;
        size_t n_drivers = 0;
        while (m.names[n_drivers])
                n_drivers++;
        if (n_drivers * 4 > n_devices) /* about as many system calls either way: the devices' links are simpler */
                return -E2BIG;
        _cleanup_close_ int dfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return negative_errno();
        size_t cap = n_devices;
        m.links = calloc(cap ?: 1, sizeof *m.links);
        if (!m.links)
                return -ENOMEM;
        for (char **e = m.names; *e; e++) {
                int fd = openat(dfd, *e, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
                if (!dir) {
                        if (fd >= 0)
                                close(fd);
                        continue; /* not a driver's directory */
                }
                struct dirent *de;
                PciAddr a;
                while ((de = readdir(dir))) {
                        if ((de->d_type != DT_LNK && de->d_type != DT_UNKNOWN) || pci_addr_parse(de->d_name, &a) < 0)
                                continue; /* bind, unbind, new_id, module, ... */
                        if (m.n == cap) { /* more bound devices than listed ones: a hot plug while we looked */
                                closedir(dir);
                                return -EAGAIN;
                        }
                        pci_addr_format(&a, m.links[m.n].bdf);
                        m.links[m.n++].driver = *e;
                }
                closedir(dir);
        }
        qsort(m.links, m.n, sizeof *m.links, driver_link_cmp);
        *ret = m;
        m = (DriverMap){};
        return 0;
}

/* The driver of the device at addr, NULL: none (a copy). */
static char *driver_map_lookup(const DriverMap *m, const char *addr) {
        DriverLink key = {};
        snprintf(key.bdf, sizeof key.bdf, "%s", addr);
        const DriverLink *l = bsearch(&key, m->links, m->n, sizeof *m->links, driver_link_cmp);
        return l ? strdup(l->driver) : NULL;
}

/* What a whole scan opens once: the driver map (when it pays), and sys/bus/pci/devices and the root as
 * directories, so each device's link and directory are looked up from there, not from / again. */
typedef struct ScanCtx {
        DriverMap dm;      /* links NULL: no map, each device's link is read */
        int devfd, rootfd; /* -1: absolute paths */
        const char *devdir; /* devfd's path */
} ScanCtx;

static void scan_ctx_done(ScanCtx *c) {
        driver_map_done(&c->dm);
        if (c->devfd >= 0)
                close(c->devfd);
        if (c->rootfd >= 0)
                close(c->rootfd);
}

/* A device that is listed but cannot be loaded: its state says why, the rest is unknown. */
static int pci_device_dead(PciDevice *d, const char *name, PciDeviceState state, int err) {
        d->state = state;
        d->state_errno = err;
        d->partial = false; /* nothing more to read */
        d->iommu_group = d->numa_node = d->boot_vga = -1;
        d->sriov_totalvfs = d->sriov_numvfs = -1;
        if (!d->syspath)
                d->syspath = strdup_printf("sys/bus/pci/devices/%s", name);
        return d->syspath ? 0 : -ENOMEM;
}

/* All ones in the IDs, command, status, class and header type: what a device off the bus reads. */
static bool header_all_ones(const uint8_t cfg[static 16]) {
        for (size_t i = 0; i < 16; i++)
                if (cfg[i] != 0xff)
                        return false;
        return true;
}

/* The config header decides whether the device answers: all ones is what every read returns from a device
 * that has fallen off the bus (the kernel keeps the vendor/device attributes it read at enumeration). Not
 * the IDs alone: an SR-IOV VF's Vendor and Device ID registers read 0xffff by the specification (the kernel
 * takes them from the PF), while its command, status and class registers answer. */
static void config_header(int dfd, PciDevice *d, uint8_t cfg[static 64], size_t *ret_n) {
        *ret_n = 0;
        int r = read_head_at(dfd, "config", cfg, 64, ret_n);
        if (r == -ENOENT)
                d->state = PCI_DEVICE_UNKNOWN;
        else if (r < 0) {
                d->state = PCI_DEVICE_UNREADABLE;
                d->state_errno = r;
        } else if (*ret_n < 16)
                d->state = PCI_DEVICE_UNKNOWN;
        else
                d->state = header_all_ones(cfg) ? PCI_DEVICE_OFF_BUS : PCI_DEVICE_OK;
}

/* The IDs and class in a header that answers (not a VF's: its ID registers read 0xffff). */
static void ids_from_header(PciDevice *d, const uint8_t cfg[static 64]) {
        d->vendor = le16(cfg);
        d->device = le16(cfg + 2);
        d->class = le32(cfg + 8) >> 8;
        if ((cfg[0x0e] & 0x7f) == 0) { /* a bridge's are in a capability: read with the rest */
                d->subsystem_vendor = le16(cfg + 0x2c);
                d->subsystem_device = le16(cfg + 0x2e);
        }
}

/* The driver and IOMMU group links of a class read: relative to dirfd, under dir there (NULL: dirfd is the
 * device's directory). */
static void class_links(const ScanCtx *sc, PciDevice *d, int dirfd, const char *dir) {
        char p[PATH_MAX];
        const char *drv = "driver", *grp_name = "iommu_group";
        if (dir) {
                snprintf(p, sizeof p, "%s/driver", dir);
                drv = p;
        }
        d->driver = sc && sc->dm.links ? driver_map_lookup(&sc->dm, d->addr) : link_base(dirfd, drv);
        d->is_vfio = d->driver && streq(d->driver, "vfio-pci"); /* vfio-dev/ too once the rest is read */
        if (dir) {
                snprintf(p, sizeof p, "%s/iommu_group", dir);
                grp_name = p;
        }
        _cleanup_free_ char *grp = link_base(dirfd, grp_name);
        if (grp && parse_int(grp, &d->iommu_group) < 0)
                d->iommu_group = -1;
        d->partial = true;
}

/* The class read of a device that answers, by paths from the root without opening its directory (one file
 * opened instead of two: what a device costs is mostly the files opened): its config header, driver and IOMMU
 * group. false, d as it was, where the header does not settle it (a VF, a dead device, no config space): the
 * directory is opened and read as below. */
static bool class_by_paths(ScanCtx *sc, PciDevice *d, uint8_t cfg[static 64]) {
        char p[PATH_MAX];
        size_t n = 0;
        if ((size_t)snprintf(p, sizeof p, "%s/iommu_group", d->syspath) >= sizeof p) /* the longest name below */
                return false;
        snprintf(p, sizeof p, "%s/config", d->syspath);
        if (read_head_at(sc->rootfd, p, cfg, 64, &n) < 0 || n < 64 || header_all_ones(cfg) || le16(cfg) == 0xffff)
                return false;
        d->state = PCI_DEVICE_OK;
        ids_from_header(d, cfg);
        class_links(sc, d, sc->rootfd, d->syspath);
        return true;
}

/* The directory of a device read by paths, for the rest of it (-errno: gone since). */
static int scan_open_dir(const ScanCtx *sc, const PciDevice *d) {
        int fd = openat(sc->rootfd, d->syspath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return fd >= 0 ? fd : negative_errno();
}

/* What every device gets in a scan: its address, directory, upstream bridge, state, IDs and class, driver and
 * IOMMU group. The IDs and class come from the config header, the one read that classifies a device: for a
 * type 0 header its vendor, device, class and subsystem registers are what the kernel's attributes show (a
 * type 1 header, a bridge's, holds no subsystem IDs there: they stay 0 until the rest is read). A VF's ID
 * registers read 0xffff, a dead device or a capture without config space has no header to trust: those read
 * the attributes (a VF its physfn link too).
 * *ret_dfd is the directory when the read opened it, left open for pci_device_load_rest(); -1 when it went by
 * paths (class_by_paths(): scan_open_dir() opens it for the rest). d->partial false: dead, nothing more to read. */
static int pci_device_load_class(Root *root, ScanCtx *sc, const char *name, PciDevice *d, int *ret_dfd,
                                 uint8_t cfg[static 64], bool *ret_header) {
        int r = pci_addr_parse(name, &d->a);
        if (r < 0)
                return r;
        pci_addr_format(&d->a, d->addr);

        _cleanup_free_ char *dir = NULL;
        if (sc && sc->devfd >= 0)
                r = readlink_resolved_at(sc->devfd, sc->devdir, name, &dir);
        else {
                _cleanup_free_ char *link = root_path(root, "sys/bus/pci/devices/%s", name);
                if (!link)
                        return -ENOMEM;
                r = readlink_resolved(link, &dir);
        }
        if (r < 0) /* -ENOENT: the link itself went away while we looked (VFs come and go) */
                return r;
        size_t rl = strlen(root_dir(root));
        if (streq(root_dir(root), "/"))
                rl = 0;
        if (strncmp(dir, root_dir(root), rl) != 0)
                return -EXDEV;
        d->syspath = strdup(dir + rl + 1); /* skip the root and the slash */
        if (!d->syspath)
                return -ENOMEM;
        /* Parent: the directory above, when it is a PCI device (a bridge or port). */
        char *slash = strrchr(dir, '/');
        if (slash) {
                *slash = '\0';
                const char *pb = strrchr(dir, '/');
                PciAddr pa;
                if (pb && pci_addr_parse(pb + 1, &pa) == 0) {
                        char buf[PCI_ADDR_STRLEN];
                        d->parent = strdup(pci_addr_format(&pa, buf));
                }
                *slash = '/';
        }
        d->iommu_group = d->numa_node = d->boot_vga = -1;
        d->sriov_totalvfs = d->sriov_numvfs = -1;

        *ret_dfd = -1;
        if (sc && sc->rootfd >= 0 && class_by_paths(sc, d, cfg)) {
                *ret_header = true;
                return 0;
        }

        int dfd = sc && sc->rootfd >= 0 ? openat(sc->rootfd, d->syspath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                                        : open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) {
                /* listed, but its directory is gone (the link dangles) or cannot be opened */
                r = negative_errno();
                return pci_device_dead(d, name, r == -ENOENT ? PCI_DEVICE_VANISHED : PCI_DEVICE_UNREADABLE, r);
        }
        *ret_dfd = dfd;
        size_t cfg_n;
        config_header(dfd, d, cfg, &cfg_n);
        bool header = *ret_header = d->state == PCI_DEVICE_OK && cfg_n >= 64;
        if (header && le16(cfg) != 0xffff)
                ids_from_header(d, cfg);
        else {
                pci_device_load_ids(dfd, d, header ? cfg : NULL);
                if (header && le16(cfg) == 0xffff)
                        pci_device_load_physfn(dfd, d);
        }
        class_links(sc, d, dfd, NULL);
        return 0;
}

/* "HHHH:HHHH" (uevent's PCI_ID and PCI_SUBSYS_ID), s writable */
static bool parse_id_pair(char *s, uint16_t *a, uint16_t *b) {
        uint32_t x, y;
        if (strlen(s) != 9 || s[4] != ':')
                return false;
        s[4] = '\0';
        if (parse_u32(s, 16, &x) < 0 || parse_u32(s + 5, 16, &y) < 0)
                return false;
        *a = (uint16_t)x;
        *b = (uint16_t)y;
        return true;
}

bool pci_uevent_ids_parse(char *text, PciDevice *d) {
        bool cls = false, id = false, sub = false;
        uint16_t v = 0, dv = 0, sv = 0, sd = 0;
        uint32_t c = 0;
        for (char *l = text, *e; *l; l = e) {
                e = strchrnul(l, '\n');
                if (*e)
                        *e++ = '\0';
                const char *x;
                if ((x = startswith(l, "PCI_CLASS=")))
                        cls = parse_u32(x, 16, &c) == 0 && c <= 0xffffff;
                else if (startswith(l, "PCI_ID="))
                        id = parse_id_pair(l + 7, &v, &dv);
                else if (startswith(l, "PCI_SUBSYS_ID="))
                        sub = parse_id_pair(l + 14, &sv, &sd);
        }
        if (!cls || !id || !sub)
                return false;
        d->vendor = v, d->device = dv, d->class = c;
        d->subsystem_vendor = sv, d->subsystem_device = sd;
        return true;
}

static bool load_ids_uevent(int dfd, PciDevice *d) {
        _cleanup_free_ char *text = NULL; /* one read: a sysfs attribute */
        return read_attr_at(dfd, "uevent", &text) >= 0 && pci_uevent_ids_parse(text, d);
}

/* The IDs as the kernel keeps them (what it read at enumeration and its quirks changed, kept when the device
 * dies): uevent, else the attributes; the header's where an attribute is missing (cfg NULL: no header to take
 * them from). */
static void pci_device_load_ids(int dfd, PciDevice *d, const uint8_t *cfg) {
        if (load_ids_uevent(dfd, d))
                return;
        uint32_t v;
        bool need_config = false;
        if (attr_hex(dfd, "vendor", &v) == 0)
                d->vendor = (uint16_t)v;
        else
                need_config = true;
        if (attr_hex(dfd, "device", &v) == 0)
                d->device = (uint16_t)v;
        else
                need_config = true;
        if (attr_hex(dfd, "class", &v) == 0)
                d->class = v & 0xffffff;
        else
                need_config = true;
        if (attr_hex(dfd, "subsystem_vendor", &v) == 0)
                d->subsystem_vendor = (uint16_t)v;
        if (attr_hex(dfd, "subsystem_device", &v) == 0)
                d->subsystem_device = (uint16_t)v;
        if (need_config && cfg && le16(cfg) != 0xffff) { /* a VF's read 0xffff */
                d->vendor = le16(cfg);
                d->device = le16(cfg + 2);
                d->class = le32(cfg + 8) >> 8;
                d->subsystem_vendor = le16(cfg + 0x2c);
                d->subsystem_device = le16(cfg + 0x2e);
        }
}

static void pci_device_load_physfn(int dfd, PciDevice *d) {
        if (d->physfn)
                return;
        _cleanup_free_ char *pf = link_base(dfd, "physfn");
        PciAddr pa;
        char buf[PCI_ADDR_STRLEN];
        if (pf && pci_addr_parse(pf, &pa) == 0)
                d->physfn = strdup(pci_addr_format(&pa, buf));
}

/* The entries of a device's directory that only some devices have: whether each is there is known from one
 * listing of the directory, not from a lookup of each (most of which find nothing). */
enum {
        OPT_BOOT_VGA,  /* VGA-class devices */
        OPT_VFIO_DEV,  /* bound to vfio-pci, with the vfio cdev */
        OPT_SRIOV,     /* SR-IOV PFs: sriov_totalvfs */
        OPT_PHYSFN,    /* VFs */
        OPT_ROM,       /* an expansion ROM BAR */
        OPT_MDEV,      /* mdev parents: mdev_supported_types/ */
        OPT_NVIDIA,    /* NVIDIA vendor-VFIO vGPU VFs: nvidia/creatable_vgpu_types */
        _OPT_MAX,
};

static const char *const optional_entries[_OPT_MAX] = {
        [OPT_BOOT_VGA] = "boot_vga", [OPT_VFIO_DEV] = "vfio-dev", [OPT_SRIOV] = "sriov_totalvfs",
        [OPT_PHYSFN] = "physfn",     [OPT_ROM] = "rom",           [OPT_MDEV] = "mdev_supported_types",
        [OPT_NVIDIA] = "nvidia",
};

/* Everything else: what a device shown or acted on needs (its IDs again as the kernel holds them, which its
 * quirks may have changed from the header's). An entry the listing does not show is not looked up; where the
 * directory cannot be listed, each is (all bits set: "may be there, look"). */
static void pci_device_load_rest(int dfd, PciDevice *d, const uint8_t *cfg) {
        uint64_t may = 0, links = 0;
        if (dir_has_at(dfd, optional_entries, _OPT_MAX, &may, &links) < 0)
                may = links = UINT64_MAX;
#define MAY(o) ((may & (UINT64_C(1) << (o))) != 0)
        /* there, and what a lookup finds: a link is followed as before (a dangling one is not there) */
#define HAS(o, name) (MAY(o) && ((links & (UINT64_C(1) << (o))) == 0 || exists_at(dfd, name)))
        pci_device_load_ids(dfd, d, cfg);
        d->driver_override = attr_or_null(dfd, "driver_override");
        if (d->driver_override && (streq(d->driver_override, "(null)") || isempty(d->driver_override)))
                d->driver_override = (free(d->driver_override), NULL);
        d->numa_node = attr_int(dfd, "numa_node", -1);
        d->boot_vga = MAY(OPT_BOOT_VGA) ? attr_int(dfd, "boot_vga", -1) : -1;
        d->is_vfio = HAS(OPT_VFIO_DEV, "vfio-dev") || (d->driver && streq(d->driver, "vfio-pci"));
        d->sriov_totalvfs = MAY(OPT_SRIOV) ? attr_int(dfd, "sriov_totalvfs", -1) : -1;
        d->sriov_numvfs = d->sriov_totalvfs >= 0 ? attr_int(dfd, "sriov_numvfs", 0) : -1;
        if (MAY(OPT_PHYSFN))
                pci_device_load_physfn(dfd, d);
        d->link_speed = attr_or_null(dfd, "current_link_speed");
        d->link_width = attr_or_null(dfd, "current_link_width");
        d->max_link_speed = attr_or_null(dfd, "max_link_speed");
        d->max_link_width = attr_or_null(dfd, "max_link_width");
        d->has_rom = HAS(OPT_ROM, "rom");
        d->has_mdev_types = HAS(OPT_MDEV, "mdev_supported_types");
        d->has_vendor_vgpu = MAY(OPT_NVIDIA) && exists_at(dfd, "nvidia/creatable_vgpu_types");
#undef HAS
#undef MAY
        d->partial = false;
}

static int pci_device_load(Root *root, ScanCtx *sc, const char *name, PciDevice *d) {
        int dfd = -1;
        uint8_t cfg[64];
        bool header = false;
        int r = pci_device_load_class(root, sc, name, d, &dfd, cfg, &header);
        if (r >= 0 && d->partial && dfd < 0 && sc) /* read by paths: only with a scan's context */
                dfd = scan_open_dir(sc, d);
        if (r >= 0 && d->partial && dfd >= 0)
                pci_device_load_rest(dfd, d, header ? cfg : NULL);
        if (dfd >= 0)
                close(dfd);
        return r;
}

int pci_host_complete(const PciHost *h, PciDevice *d) {
        if (!d->partial)
                return 0;
        _cleanup_free_ char *p = root_path(h->root, "%s", d->syspath);
        if (!p)
                return -ENOMEM;
        _cleanup_close_ int dfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return negative_errno(); /* gone since the scan: it keeps what the scan read */
        uint8_t cfg[64];
        size_t cfg_n = 0;
        bool header = d->state == PCI_DEVICE_OK && read_head_at(dfd, "config", cfg, sizeof cfg, &cfg_n) == 0 &&
                      cfg_n >= 64;
        pci_device_load_rest(dfd, d, header ? cfg : NULL);
        return 0;
}

static int cmp_dev(const void *a, const void *b) {
        const PciDevice *x = a, *y = b;
        return strcmp(x->addr, y->addr);
}

/* Whether a device a GPU scan reads in full from what its class read gave: a GPU (or what may be one: display
 * class, dead) and every NVIDIA function (NVSwitch, audio: the vendor checks look at them). */
static bool scan_wants_full_alone(const PciDevice *d) {
        return pci_device_is_display(d) || pci_device_is_dead(d) || d->vendor == PCI_VENDOR_NVIDIA;
}

/* Whether a device a GPU scan reads in full: those, whatever shares an IOMMU group with a GPU, and a VF of a
 * device read in full. */
static bool scan_wants_full(const PciHost *h, const PciDevice *d, const bool *gpu_group, size_t n_groups) {
        if (scan_wants_full_alone(d))
                return true;
        if (d->iommu_group >= 0 && (size_t)d->iommu_group < n_groups && gpu_group[d->iommu_group])
                return true;
        if (d->physfn) {
                const PciDevice *pf = pci_host_find(h, d->physfn);
                return pf && (pci_device_is_display(pf) || pf->vendor == PCI_VENDOR_NVIDIA);
        }
        return false;
}

/* Whether a device scan for the device focus reads d in full: focus itself, the members of its IOMMU group,
 * the functions of its card, its PF and its VFs. */
static bool scan_wants_full_for(const PciDevice *d, const PciDevice *focus) {
        return d == focus || (focus->iommu_group >= 0 && d->iommu_group == focus->iommu_group) ||
               pci_addr_same_card(&d->a, &focus->a) || (focus->physfn && streq(focus->physfn, d->addr)) ||
               (d->physfn && streq(d->physfn, focus->addr));
}

/* focus NULL: every device read in full (gpus_only false) or the GPU scan; else the device scan for it. */
static int host_scan(Root *root, bool gpus_only, const char *focus, PciHost **ret) {
        _cleanup_free_ char *p = root_path(root, "sys/bus/pci/devices");
        if (!p)
                return -ENOMEM;
        _cleanup_strv_free_ char **names = NULL;
        int n = dir_list(p, &names);
        if (n < 0)
                return log_debug_errno(n, "Cannot list %s: %m", p);

        _cleanup_pci_host_free_ PciHost *h = calloc(1, sizeof *h);
        if (!h)
                return -ENOMEM;
        h->root = root;
        h->devices = calloc((size_t)n ?: 1, sizeof(PciDevice));
        if (!h->devices)
                return -ENOMEM;
        _cleanup_(scan_ctx_done) ScanCtx sc = {.devfd = -1, .rootfd = -1};
        int k = driver_map_build(root, (size_t)n, &sc.dm);
        if (k == -ENOMEM)
                return k;
        PciAddr fa = {};
        if (focus && pci_addr_parse(focus, &fa) < 0)
                return -EINVAL;
        sc.devdir = p;
        sc.devfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        sc.rootfd = open(root_dir(root), O_PATH | O_DIRECTORY | O_CLOEXEC);
        for (char **e = names; *e; e++) {
                PciDevice *d = &h->devices[h->n_devices];
                int r;
                if (gpus_only) {
                        int dfd = -1;
                        uint8_t cfg[64];
                        bool header;
                        r = pci_device_load_class(root, &sc, *e, d, &dfd, cfg, &header);
                        /* the rest of a device known to be read in full read now (the others once every device's
                         * group is known): a GPU scan's GPUs, a device scan's focus and the other functions of
                         * its card */
                        if (r >= 0 && d->partial && (focus ? pci_addr_same_card(&d->a, &fa) : scan_wants_full_alone(d))) {
                                if (dfd < 0)
                                        dfd = scan_open_dir(&sc, d);
                                if (dfd >= 0)
                                        pci_device_load_rest(dfd, d, header ? cfg : NULL);
                        }
                        if (dfd >= 0)
                                close(dfd);
                } else
                        r = pci_device_load(root, &sc, *e, d);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        /* A device that vanished while we looked (VF, hot unplug) or a stray entry. */
                        log_debug_errno(r, "Skipping %s: %m", *e);
                        pci_device_done(d);
                        memset(d, 0, sizeof *d);
                        continue;
                }
                h->n_devices++;
        }
        qsort(h->devices, h->n_devices, sizeof(PciDevice), cmp_dev);
        const PciDevice *f = focus ? pci_host_find(h, focus) : NULL;
        if (f) {
                for (size_t i = 0; i < h->n_devices; i++) {
                        PciDevice *d = &h->devices[i];
                        if (d->partial && scan_wants_full_for(d, f)) {
                                int r = pci_host_complete(h, d);
                                if (r == -ENOMEM)
                                        return r;
                        }
                }
        } else if (gpus_only) {
                int max_group = -1;
                for (size_t i = 0; i < h->n_devices; i++)
                        max_group = MAX(max_group, h->devices[i].iommu_group);
                _cleanup_free_ bool *gpu_group = calloc((size_t)max_group + 2, sizeof(bool));
                if (!gpu_group)
                        return -ENOMEM;
                for (size_t i = 0; i < h->n_devices; i++) {
                        const PciDevice *d = &h->devices[i];
                        if ((pci_device_is_display(d) || d->vendor == PCI_VENDOR_NVIDIA) && d->iommu_group >= 0)
                                gpu_group[d->iommu_group] = true;
                }
                /* PFs before their VFs (address order): a VF asks whether its PF is read in full */
                for (size_t i = 0; i < h->n_devices; i++) {
                        PciDevice *d = &h->devices[i];
                        if (d->partial && scan_wants_full(h, d, gpu_group, (size_t)max_group + 1)) {
                                int r = pci_host_complete(h, d);
                                if (r == -ENOMEM)
                                        return r;
                        }
                }
        }
        *ret = TAKE_PTR(h);
        return 0;
}

int pci_host_scan(Root *root, PciHost **ret) {
        return host_scan(root, false, NULL, ret);
}

int pci_host_scan_gpus(Root *root, PciHost **ret) {
        return host_scan(root, true, NULL, ret);
}

int pci_host_scan_device(Root *root, const char *bdf, PciHost **ret) {
        PciAddr a;
        char name[PCI_ADDR_STRLEN];
        if (pci_addr_parse(bdf, &a) < 0)
                return host_scan(root, false, NULL, ret); /* the caller's lookup says what is wrong */
        return host_scan(root, true, pci_addr_format(&a, name), ret);
}

int pci_device_read(Root *root, const char *bdf, PciDevice *ret) {
        PciAddr a;
        char name[PCI_ADDR_STRLEN];
        if (pci_addr_parse(bdf, &a) < 0)
                return -EINVAL;
        pci_addr_format(&a, name);
        PciDevice d = {};
        int r = pci_device_load(root, NULL, name, &d);
        if (r < 0) {
                pci_device_done(&d);
                return r == -ENOMEM ? r : -ENODEV;
        }
        *ret = d;
        return 0;
}

int pci_host_reread(PciHost *h, const char *addr) {
        PciDevice *d = pci_host_find(h, addr);
        if (!d)
                return -ENODEV;
        PciDevice n;
        int r = pci_device_read(h->root, addr, &n);
        if (r < 0)
                return r;
        pci_device_done(d);
        *d = n;
        return 0;
}

int pci_device_require_alive(Root *root, const char *bdf, GvError *err) {
        PciDevice d;
        if (pci_device_read(root, bdf, &d) < 0)
                return 0;
        int r = 0;
        if (pci_device_is_dead(&d))
                r = gv_error_take(err, -ENODEV, bdf, NULL, GV_HINT_NONE, pci_device_dead_message(&d));
        pci_device_done(&d);
        return r;
}

PciDevice *pci_host_find(const PciHost *h, const char *addr) {
        PciDevice key;
        snprintf(key.addr, sizeof key.addr, "%s", addr);
        return bsearch(&key, h->devices, h->n_devices, sizeof(PciDevice), cmp_dev);
}

int pci_host_lookup(const PciHost *h, const char *input, PciDevice **ret) {
        PciAddr a;
        if (pci_addr_parse(input, &a) < 0)
                return -EINVAL;
        char buf[PCI_ADDR_STRLEN];
        PciDevice *d = pci_host_find(h, pci_addr_format(&a, buf));
        if (!d)
                return -ENODEV;
        *ret = d;
        return 0;
}
