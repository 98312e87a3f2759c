/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "config.h"
#include "core/host/names.h"

/*
 * pci.ids is mapped, never parsed as a whole: libpci's pci_lookup_name() reads every line of it into a hash
 * on the first lookup (about 10 ms a process), where a command names a handful of devices. The first lookup
 * here records where each vendor's block starts (one pass over the line starts, no copy), a device lookup
 * reads its vendor's block only. The names are the ones libpci gives (tests/test-names.c compares every
 * entry of the file with libpci's): the text after the ID and its blanks, one trailing blank or tab cut,
 * comments and blank lines skipped, the first of two entries for one ID taken.
 *
 * The first device lookup of a vendor indexes its device lines the same way (one pass over its block, then a
 * binary search): a host of 128 GPUs of one vendor names them from one pass over NVIDIA's block, which holds
 * a few thousand lines, instead of one pass each.
 *
 * One database per process, shared by every user (the verb and the readiness check it runs): the mapping
 * is read-only, the indexes built once under a lock, so threads may share it too.
 */
struct PciNames {
        unsigned refs;
        const char *map;
        size_t size;
        size_t n_vendors;
        struct VendorBlock {
                uint16_t id;
                uint32_t start, end; /* the vendor's line, and the end of its block */
                /* its device lines by ID, once a device of the vendor is looked up (NULL before; n_devices 0
                 * and devices non-NULL: a vendor without devices) */
                struct DeviceLine {
                        uint16_t id;
                        uint32_t start;
                } *devices;
                uint32_t n_devices;
        } *vendors;
};

static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;
static PciNames *names_shared;

static int hexval(char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* four hex digits at p (of the line [p, e)), or -1 */
static int hex4(const char *p, const char *e) {
        if (e - p < 4)
                return -1;
        int v = 0;
        for (int i = 0; i < 4; i++) {
                int x = hexval(p[i]);
                if (x < 0)
                        return -1;
                v = v << 4 | x;
        }
        return v;
}

static const char *line_end(const PciNames *n, const char *p) {
        const char *e = memchr(p, '\n', (size_t)(n->map + n->size - p));
        return e ?: n->map + n->size;
}

static int cmp_vendor(const void *a, const void *b) {
        const struct VendorBlock *x = a, *y = b;
        if (x->id != y->id)
                return x->id < y->id ? -1 : 1;
        return x->start < y->start ? -1 : x->start > y->start; /* the first entry of an ID first */
}

/* One pass over the line starts: every top-level entry whose ID is four hex digits is a vendor ("C xx" class
 * and "X" generic blocks are not), its block runs to the next top-level line. */
static int index_vendors(PciNames *n) {
        size_t cap = 0;
        struct VendorBlock *open_block = NULL;
        for (const char *p = n->map, *end = n->map + n->size; p < end;) {
                const char *e = line_end(n, p);
                if (*p != '\t' && *p != '#' && *p != '\n' && *p != ' ' && *p != '\r') {
                        if (open_block)
                                open_block->end = (uint32_t)(p - n->map);
                        open_block = NULL;
                        int id = hex4(p, e);
                        if (id >= 0 && (e - p == 4 || p[4] == ' ' || p[4] == '\t')) {
                                if (n->n_vendors == cap) {
                                        cap = cap ? cap * 2 : 4096;
                                        struct VendorBlock *v = realloc(n->vendors, cap * sizeof *v);
                                        if (!v)
                                                return -ENOMEM;
                                        n->vendors = v;
                                }
                                open_block = &n->vendors[n->n_vendors++];
                                *open_block = (struct VendorBlock){.id = (uint16_t)id, .start = (uint32_t)(p - n->map)};
                        }
                }
                p = e + 1;
        }
        if (open_block)
                open_block->end = (uint32_t)n->size;
        qsort(n->vendors, n->n_vendors, sizeof *n->vendors, cmp_vendor);
        return 0;
}

static int names_load(PciNames **ret) {
        _cleanup_free_ PciNames *n = calloc(1, sizeof *n);
        if (!n)
                return -ENOMEM;
        _cleanup_close_ int fd = open(PCI_IDS_PATH, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0)
                return log_debug_errno(negative_errno(), "Cannot open " PCI_IDS_PATH ": %m");
        if (!S_ISREG(st.st_mode) || st.st_size == 0 || st.st_size > UINT32_MAX)
                return log_debug_errno(-EBADMSG, PCI_IDS_PATH " is not a pci.ids file");
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED)
                return log_debug_errno(negative_errno(), "Cannot map " PCI_IDS_PATH ": %m");
        n->map = m;
        n->size = (size_t)st.st_size;
        int r = index_vendors(n);
        if (r < 0) {
                munmap((void *)n->map, n->size);
                free(n->vendors);
                return r;
        }
        n->refs = 1;
        *ret = TAKE_PTR(n);
        return 0;
}

int pci_names_new(PciNames **ret) {
        pthread_mutex_lock(&names_lock);
        int r = 0;
        if (names_shared)
                names_shared->refs++;
        else
                r = names_load(&names_shared);
        if (r >= 0)
                *ret = names_shared;
        pthread_mutex_unlock(&names_lock);
        return r;
}

PciNames *pci_names_free(PciNames *n) {
        if (!n)
                return NULL;
        pthread_mutex_lock(&names_lock);
        if (--n->refs == 0) {
                munmap((void *)n->map, n->size);
                for (size_t i = 0; i < n->n_vendors; i++)
                        free(n->vendors[i].devices);
                free(n->vendors);
                free(n);
                names_shared = NULL;
        }
        pthread_mutex_unlock(&names_lock);
        return NULL;
}

void pci_names_drop_table(PciNames *n) {
        /* a private read-only file mapping: the pages come back from the file as they were */
        if (n && n->map)
                (void)madvise((void *)n->map, n->size, MADV_DONTNEED);
}

/* The name on the entry line [p, e) after its ID of idlen characters, as libpci's parser takes it. */
static char *entry_name(const char *p, const char *e, size_t idlen) {
        if (e > p && e[-1] == '\r')
                e--;
        if (e > p + idlen && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
        p += idlen;
        while (p < e && (*p == ' ' || *p == '\t'))
                p++;
        return p < e ? strndup(p, (size_t)(e - p)) : NULL;
}

static struct VendorBlock *vendor_block(const PciNames *n, uint16_t vendor) {
        struct VendorBlock key = {.id = vendor};
        size_t lo = 0, hi = n->n_vendors;
        while (lo < hi) { /* the first entry of the ID */
                size_t mid = (lo + hi) / 2;
                if (n->vendors[mid].id < key.id)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo < n->n_vendors && n->vendors[lo].id == vendor ? &n->vendors[lo] : NULL;
}

static char *lookup_vendor(const PciNames *n, uint16_t vendor) {
        const struct VendorBlock *b = n ? vendor_block(n, vendor) : NULL;
        if (!b)
                return NULL;
        const char *p = n->map + b->start;
        return entry_name(p, line_end(n, p), 4);
}

static int cmp_device_line(const void *a, const void *b) {
        const struct DeviceLine *x = a, *y = b;
        if (x->id != y->id)
                return x->id < y->id ? -1 : 1;
        return x->start < y->start ? -1 : x->start > y->start; /* the first entry of an ID first */
}

/* The ID of the device line [p, e): one tab, then the ID (two tabs: a subsystem of the device before); -1
 * for another line. */
static int device_line_id(const char *p, const char *e) {
        if (p[0] != '\t' || p + 1 >= e || p[1] == '\t')
                return -1;
        int id = hex4(p + 1, e); /* four digits there: p[5] is on the line or its end */
        return id >= 0 && (e - p == 5 || p[5] == ' ' || p[5] == '\t') ? id : -1;
}

/* Index the device lines of the block b. */
static int index_devices(const PciNames *n, struct VendorBlock *b) {
        size_t cap = 0, k = 0;
        struct DeviceLine *v = NULL;
        const char *p = line_end(n, n->map + b->start) + 1, *end = n->map + b->end;
        while (p < end) {
                const char *e = line_end(n, p);
                int id = device_line_id(p, e);
                if (id >= 0) {
                        if (k == cap) {
                                cap = cap ? cap * 2 : 16;
                                struct DeviceLine *x = realloc(v, cap * sizeof *x);
                                if (!x) {
                                        free(v);
                                        return -ENOMEM;
                                }
                                v = x;
                        }
                        v[k++] = (struct DeviceLine){.id = (uint16_t)id, .start = (uint32_t)(p + 1 - n->map)};
                }
                p = e + 1;
        }
        if (!v && !(v = malloc(sizeof *v)))
                return -ENOMEM;
        qsort(v, k, sizeof *v, cmp_device_line);
        b->devices = v;
        b->n_devices = (uint32_t)k;
        return 0;
}

static char *lookup_device(const PciNames *n, uint16_t vendor, uint16_t device) {
        struct VendorBlock *b = n ? vendor_block(n, vendor) : NULL;
        if (!b)
                return NULL;
        pthread_mutex_lock(&names_lock);
        int r = b->devices ? 0 : index_devices(n, b);
        pthread_mutex_unlock(&names_lock);
        if (r < 0) { /* no memory for the index: the block read line by line */
                for (const char *p = line_end(n, n->map + b->start) + 1, *e; p < n->map + b->end; p = e + 1)
                        if (device_line_id(p, (e = line_end(n, p))) == device)
                                return entry_name(p + 1, e, 4);
                return NULL;
        }
        size_t lo = 0, hi = b->n_devices;
        while (lo < hi) { /* the first entry of the ID */
                size_t mid = (lo + hi) / 2;
                if (b->devices[mid].id < device)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo == b->n_devices || b->devices[lo].id != device)
                return NULL;
        const char *p = n->map + b->devices[lo].start;
        return entry_name(p, line_end(n, p), 4);
}

char *pci_names_vendor(PciNames *n, uint16_t vendor) {
        char *s = lookup_vendor(n, vendor);
        return s ?: strdup_printf("Vendor %04x", vendor);
}

char *pci_names_device(PciNames *n, uint16_t vendor, uint16_t device) {
        char *s = lookup_device(n, vendor, device);
        return s ?: strdup_printf("Device %04x", device);
}
