/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "basic/macro.h"

/* PCI vendor/device names from pci.ids through libpci (pci_lookup_name), without libpci's exiting
 * error handler and without letting libpci scan the bus (we only use its name database). */
typedef struct PciNames PciNames;

int pci_names_new(PciNames **ret);
PciNames *pci_names_free(PciNames *n);
DEFINE_TRIVIAL_CLEANUP_FUNC(PciNames *, pci_names_free)
#define _cleanup_pci_names_free_ _cleanup_(pci_names_freep)

/* Return a new string, never NULL unless out of memory: falls back to "Device 20b0" / "Vendor 10de"
 * like lspci when the database lacks the entry. n may be NULL (no database). */
char *pci_names_vendor(PciNames *n, uint16_t vendor);
char *pci_names_device(PciNames *n, uint16_t vendor, uint16_t device);

/* Names looked up are kept for the PciNames' life. This drops libpci's parsed pci.ids (megabytes) and keeps
 * them: a long-running program (gpuvirtd) calls it once it has named the devices it sees; a device not
 * named yet loads the database again. */
void pci_names_drop_table(PciNames *n);
