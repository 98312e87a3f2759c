/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The names of core/host/names.c against libpci's pci_lookup_name(), the reader gpuvirt used before and
 * lspci uses: every vendor and device entry of the system's pci.ids, and IDs the file does not have. */
#include <pci/pci.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "basic/fileio.h"
#include "config.h"
#include "core/host/names.h"

static void quiet(char *msg, ...) {
}

static struct pci_access *libpci(void) {
        struct pci_access *a = pci_alloc();
        assert_non_null(a);
        a->warning = quiet;
        a->debug = quiet;
        return a;
}

/* ours, or NULL where we fall back to the number (what libpci gives as NULL with PCI_LOOKUP_NO_NUMBERS) */
static char *ours_vendor(PciNames *n, unsigned v) {
        char *s = pci_names_vendor(n, (uint16_t)v), fb[32];
        snprintf(fb, sizeof fb, "Vendor %04x", v);
        if (streq(s, fb))
                s = (free(s), NULL);
        return s;
}

static char *ours_device(PciNames *n, unsigned v, unsigned d) {
        char *s = pci_names_device(n, (uint16_t)v, (uint16_t)d), fb[32];
        snprintf(fb, sizeof fb, "Device %04x", d);
        if (streq(s, fb))
                s = (free(s), NULL);
        return s;
}

static void same(const char *what, unsigned v, unsigned d, const char *theirs, const char *ours) {
        if (!theirs != !ours || (theirs && !streq(theirs, ours)))
                fail_msg("%s %04x:%04x: libpci '%s', ours '%s'", what, v, d, strna(theirs), strna(ours));
}

static void test_every_entry(void **state) {
        struct pci_access *a = libpci();
        PciNames *n = NULL;
        assert_int_equal(pci_names_new(&n), 0);
        FILE *f = fopen(PCI_IDS_PATH, "re");
        assert_non_null(f);
        char line[1024], buf[1024];
        unsigned vendor = 0, vendors = 0, devices = 0;
        bool in_vendor = false;
        while (fgets(line, sizeof line, f)) {
                unsigned id;
                char sep;
                if (line[0] != '\t' && line[0] != '#') { /* a top-level entry: a vendor, or a class/generic block */
                        in_vendor = sscanf(line, "%4x%c", &id, &sep) == 2 && (sep == ' ' || sep == '\t') &&
                                    strspn(line, "0123456789abcdefABCDEF") == 4;
                        if (!in_vendor)
                                continue;
                        vendor = id;
                        vendors++;
                        const char *theirs = pci_lookup_name(a, buf, sizeof buf, PCI_LOOKUP_VENDOR | PCI_LOOKUP_NO_NUMBERS,
                                                             (int)vendor);
                        _cleanup_free_ char *ours = ours_vendor(n, vendor);
                        same("vendor", vendor, 0, theirs, ours);
                } else if (in_vendor && line[0] == '\t' && line[1] != '\t' && line[1] != '#' &&
                           sscanf(line + 1, "%4x", &id) == 1) {
                        devices++;
                        const char *theirs = pci_lookup_name(a, buf, sizeof buf, PCI_LOOKUP_DEVICE | PCI_LOOKUP_NO_NUMBERS,
                                                             (int)vendor, (int)id);
                        _cleanup_free_ char *ours = ours_device(n, vendor, id);
                        same("device", vendor, id, theirs, ours);
                }
        }
        fclose(f);
        /* a real pci.ids: thousands of vendors, tens of thousands of devices */
        assert_true(vendors > 1000);
        assert_true(devices > 10000);
        pci_names_free(n);
        pci_cleanup(a);
}

/* IDs the file lacks: the number, as libpci gives (its udev hwdb fallback included) */
static void test_missing(void **state) {
        struct pci_access *a = libpci();
        PciNames *n = NULL;
        assert_int_equal(pci_names_new(&n), 0);
        static const unsigned ids[][2] = {{0x10de, 0xfffe}, {0x8086, 0xfffd}, {0xfff0, 0x0001}, {0x1234, 0x1110}};
        char buf[256];
        for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
                const char *theirs = pci_lookup_name(a, buf, sizeof buf, PCI_LOOKUP_DEVICE | PCI_LOOKUP_NO_NUMBERS,
                                                     (int)ids[i][0], (int)ids[i][1]);
                _cleanup_free_ char *ours = ours_device(n, ids[i][0], ids[i][1]);
                same("device", ids[i][0], ids[i][1], theirs, ours);
        }
        _cleanup_free_ char *fb = pci_names_device(n, 0x10de, 0xfffe);
        assert_string_equal(fb, "Device fffe");
        _cleanup_free_ char *vfb = pci_names_vendor(n, 0xfff0);
        assert_string_equal(vfb, "Vendor fff0");
        /* without a database (n NULL) every name is the number */
        _cleanup_free_ char *none = pci_names_device(NULL, 0x10de, 0x20b0);
        assert_string_equal(none, "Device 20b0");
        pci_names_free(n);
        pci_cleanup(a);
}

/* One database per process: a second user (the check after the verb) shares the first's. */
static void test_shared(void **state) {
        PciNames *a = NULL, *b = NULL;
        assert_int_equal(pci_names_new(&a), 0);
        assert_int_equal(pci_names_new(&b), 0);
        assert_ptr_equal(a, b);
        pci_names_free(a);
        _cleanup_free_ char *nm = pci_names_device(b, 0x10de, 0x20b0);
        assert_string_equal(nm, "GA100 [A100 SXM4 40GB]");
        pci_names_free(b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_every_entry),
                cmocka_unit_test(test_missing),
                cmocka_unit_test(test_shared),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
