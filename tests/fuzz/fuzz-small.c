/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The small parsers, one target each by FUZZ_SMALL: PCI addresses, UUIDs, kernel command lines, a PCI device's
 * uevent. */
#include <stdio.h>
#include <string.h>

#include "basic/fileio.h"
#include "core/host/bootcfg.h"
#include "core/vm/hostdev.h"
#include "core/vgpu/mdev.h"
#include "core/host/pci.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *s = fuzz_text(data, size);
#if FUZZ_SMALL == 1 /* PCI addresses: what parses is canonical after one format, and parses to the same */
        PciAddr a, b;
        if (pci_addr_parse(s, &a) == 0) {
                char out[PCI_ADDR_STRLEN];
                pci_addr_format(&a, out);
                FUZZ_CHECK(pci_addr_is_canonical(out) && pci_addr_parse(out, &b) == 0);
                FUZZ_CHECK(a.domain == b.domain && a.bus == b.bus && a.slot == b.slot && a.func == b.func);
                FUZZ_CHECK(pci_addr_is_canonical(s) == streq(s, out));
        } else
                FUZZ_CHECK(!pci_addr_is_canonical(s));
#elif FUZZ_SMALL == 2 /* UUIDs: 36 characters, lower case, stable */
        char u[MDEV_UUID_STRLEN], u2[MDEV_UUID_STRLEN];
        if (mdev_uuid_parse(s, u) == 0) {
                FUZZ_CHECK(strlen(u) == 36 && mdev_uuid_parse(u, u2) == 0 && streq(u, u2));
                for (const char *p = u; *p; p++)
                        FUZZ_CHECK(*p < 'A' || *p > 'Z');
                FUZZ_CHECK(uuid_is_valid(s));
        }
        /* definition file names, as mdevctl reads them: what parses is a canonical UUID */
        if (mdev_definition_name_parse(s, u) == 0)
                FUZZ_CHECK(strlen(u) == 36 && mdev_uuid_parse(u, u2) == 0 && streq(u, u2));
#elif FUZZ_SMALL == 3 /* kernel command lines: the arguments added are there, those removed are gone */
        char *m = cmdline_merge(s, "intel_iommu=on iommu=pt", "intel_iommu=off");
        FUZZ_CHECK(m && cmdline_has(m, "intel_iommu=on") && cmdline_has(m, "iommu=pt") && !cmdline_has(m, "intel_iommu=off"));
        /* merging again changes nothing */
        char *m2 = cmdline_merge(m, "intel_iommu=on iommu=pt", "intel_iommu=off");
        FUZZ_CHECK(m2 && streq(m, m2));
        free(m2);
        free(m);
        /* the input split at its first newline: a command line and arguments to add (crash-freedom only) */
        char *nl = strchr(s, '\n');
        if (nl) {
                *nl = '\0';
                free(cmdline_merge(s, nl + 1, NULL));
                (void)cmdline_has(s, nl + 1);
        }
#elif FUZZ_SMALL == 4 /* a device's uevent: what parses is what the kernel's form of those IDs parses to */
        PciDevice d = {.vendor = 1, .device = 2, .class = 3, .subsystem_vendor = 4, .subsystem_device = 5}, e = {};
        if (pci_uevent_ids_parse(s, &d)) {
                FUZZ_CHECK(d.class <= 0xffffff);
                char k[128];
                snprintf(k, sizeof k, "DRIVER=nvidia\nPCI_CLASS=%04X\nPCI_ID=%04X:%04X\nPCI_SUBSYS_ID=%04X:%04X\n", d.class,
                         d.vendor, d.device, d.subsystem_vendor, d.subsystem_device);
                FUZZ_CHECK(pci_uevent_ids_parse(k, &e));
                FUZZ_CHECK(e.vendor == d.vendor && e.device == d.device && e.class == d.class &&
                           e.subsystem_vendor == d.subsystem_vendor && e.subsystem_device == d.subsystem_device);
        } else /* refused: nothing taken */
                FUZZ_CHECK(d.vendor == 1 && d.device == 2 && d.class == 3 && d.subsystem_vendor == 4 &&
                           d.subsystem_device == 5);
#else
#error "FUZZ_SMALL: 1 PCI addresses, 2 UUIDs, 3 command lines, 4 uevent"
#endif
        return 0;
}
