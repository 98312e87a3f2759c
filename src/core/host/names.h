/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "basic/macro.h"

/* PCI vendor/device names from pci.ids (PCI_IDS_PATH, the file lspci reads), the names libpci's
 * pci_lookup_name() gives, without parsing the whole file: names.c says how. One database per process,
 * shared: every pci_names_new() after the first returns it again (pci_names_free() releases one use). An ID
 * the file lacks is its number; libpci would ask the udev hwdb next (systemd generates it from the pci.ids of
 * its release), so only an ID in that hwdb and not in the file reads differently. */
typedef struct PciNames PciNames;

int pci_names_new(PciNames **ret);
PciNames *pci_names_free(PciNames *n);
DEFINE_TRIVIAL_CLEANUP_FUNC(PciNames *, pci_names_free)
#define _cleanup_pci_names_free_ _cleanup_(pci_names_freep)

/* Return a new string, never NULL unless out of memory: falls back to "Device 20b0" / "Vendor 10de"
 * like lspci when the database lacks the entry. n may be NULL (no database). */
char *pci_names_vendor(PciNames *n, uint16_t vendor);
char *pci_names_device(PciNames *n, uint16_t vendor, uint16_t device);

/* Give back the pages of pci.ids this process has touched (the first lookup reads every line start, about
 * 1.3 MB resident): a long-running program (gpuvirtd) calls it once it has named the devices it sees. The
 * index stays; a later lookup reads its vendor's block from the page cache again. */
void pci_names_drop_table(PciNames *n);
