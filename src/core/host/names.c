/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <pci/pci.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "core/host/names.h"

/* A name looked up once: kept when libpci's table is dropped (pci_names_drop_table()). */
typedef struct NameEntry {
        uint16_t vendor, device;
        bool is_device;
        char *name; /* NULL: the database lacks it */
} NameEntry;

struct PciNames {
        struct pci_access *pacc;
        NameEntry *cache;
        size_t n_cache;
};

/* libpci's default error handler calls exit(1), and the handler must not return. Ours logs and jumps
 * back to the lookup, which then falls back to the numeric name: a library must not end the daemon
 * because pci.ids is damaged. */
static __thread jmp_buf *names_jmp;

_noreturn_ static void names_error(char *msg, ...) {
        char buf[512];
        va_list ap;
        va_start(ap, msg);
        vsnprintf(buf, sizeof buf, msg, ap);
        va_end(ap);
        log_debug("libpci: %s", buf);
        if (names_jmp)
                longjmp(*names_jmp, 1);
        abort();
}

static void names_warning(char *msg, ...) {
        char buf[512];
        va_list ap;
        va_start(ap, msg);
        vsnprintf(buf, sizeof buf, msg, ap);
        va_end(ap);
        log_debug("libpci: %s", buf);
}

/* pci_lookup_name() guarded against libpci's fatal error path. */
static const char *lookup(PciNames *n, char *buf, size_t size, int flags, int a, int b) {
        jmp_buf jb;
        if (!n)
                return NULL;
        if (setjmp(jb) != 0) {
                names_jmp = NULL;
                return NULL;
        }
        names_jmp = &jb;
        const char *s = pci_lookup_name(n->pacc, buf, (int)size, flags, a, b);
        names_jmp = NULL;
        return s;
}

static void names_debug(char *msg, ...) {
}

int pci_names_new(PciNames **ret) {
        PciNames *n = calloc(1, sizeof *n);
        if (!n)
                return -ENOMEM;
        n->pacc = pci_alloc();
        if (!n->pacc) {
                free(n);
                return -ENOMEM;
        }
        n->pacc->error = names_error;
        n->pacc->warning = names_warning;
        n->pacc->debug = names_debug;
        *ret = n;
        return 0;
}

PciNames *pci_names_free(PciNames *n) {
        if (n) {
                pci_cleanup(n->pacc);
                for (size_t i = 0; i < n->n_cache; i++)
                        free(n->cache[i].name);
                free(n->cache);
                free(n);
        }
        return NULL;
}

void pci_names_drop_table(PciNames *n) {
        if (n)
                pci_free_name_list(n->pacc);
}

/* The name of vendor (is_device false) or vendor:device, from the cache or the database (then cached):
 * 1 with *ret (borrowed) set, 0 when the database lacks it, -ENOMEM. */
static int cached(PciNames *n, bool is_device, uint16_t vendor, uint16_t device, const char **ret) {
        if (!n)
                return 0;
        for (size_t i = 0; i < n->n_cache; i++) {
                const NameEntry *e = &n->cache[i];
                if (e->is_device == is_device && e->vendor == vendor && (!is_device || e->device == device)) {
                        *ret = e->name;
                        return !!e->name;
                }
        }
        char buf[256];
        const char *s = is_device ? lookup(n, buf, sizeof buf, PCI_LOOKUP_DEVICE | PCI_LOOKUP_NO_NUMBERS, (int)vendor,
                                           (int)device)
                                  : lookup(n, buf, sizeof buf, PCI_LOOKUP_VENDOR | PCI_LOOKUP_NO_NUMBERS, (int)vendor, 0);
        char *copy = s ? strdup(s) : NULL;
        NameEntry *c = (!s || copy) ? realloc(n->cache, (n->n_cache + 1) * sizeof *c) : NULL;
        if (!c) {
                free(copy);
                return -ENOMEM;
        }
        n->cache = c;
        c[n->n_cache++] = (NameEntry){.vendor = vendor, .device = device, .is_device = is_device, .name = copy};
        *ret = copy;
        return !!copy;
}

char *pci_names_vendor(PciNames *n, uint16_t vendor) {
        const char *s = NULL;
        int r = cached(n, false, vendor, 0, &s);
        if (r < 0)
                return NULL;
        return r > 0 ? strdup(s) : strdup_printf("Vendor %04x", vendor);
}

char *pci_names_device(PciNames *n, uint16_t vendor, uint16_t device) {
        const char *s = NULL;
        int r = cached(n, true, vendor, device, &s);
        if (r < 0)
                return NULL;
        return r > 0 ? strdup(s) : strdup_printf("Device %04x", device);
}
