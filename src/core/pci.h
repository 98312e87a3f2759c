/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "basic/macro.h"
#include "root.h"

/* "dddd:bb:ss.f" */
#define PCI_ADDR_STRLEN 13

typedef struct PciAddr {
        uint16_t domain;
        uint8_t bus;
        uint8_t slot; /* 0..31 */
        uint8_t func; /* 0..7 */
} PciAddr;

/* Accepts "dddd:bb:ss.f" and the short "bb:ss.f" (domain 0), hex in either case. Strict. */
int pci_addr_parse(const char *s, PciAddr *ret);
/* Writes the canonical lower-case form into buf. */
const char *pci_addr_format(const PciAddr *a, char buf[static PCI_ADDR_STRLEN]);
/* Parse and canonicalize; ret gets a new string. */
int pci_addr_canonical(const char *s, char **ret);
/* Whether s is an address in the canonical form ("0000:3b:00.0"): what gpuvirt's records hold. */
bool pci_addr_is_canonical(const char *s);
bool pci_addr_same_card(const PciAddr *a, const PciAddr *b);

/* PCI class codes (class >> 8). */
#define PCI_CLASS_DISPLAY_VGA   0x0300
#define PCI_CLASS_DISPLAY_3D    0x0302
#define PCI_CLASS_DISPLAY_OTHER 0x0380
#define PCI_CLASS_AUDIO_HDA     0x0403
#define PCI_CLASS_BRIDGE_HOST   0x0600
#define PCI_CLASS_BRIDGE_PCI    0x0604

#define PCI_VENDOR_NVIDIA 0x10de
#define PCI_VENDOR_AMD    0x1002
#define PCI_VENDOR_INTEL  0x8086

typedef struct PciDevice {
        char addr[PCI_ADDR_STRLEN];
        PciAddr a;
        char *syspath;   /* real sysfs directory, relative to the root: "sys/devices/pci0000:00/..." */
        char *parent;    /* upstream PCI device (bridge/port) address, NULL on a root bus */
        uint16_t vendor, device, subsystem_vendor, subsystem_device;
        uint32_t class; /* 24-bit class code */
        char *driver;   /* NULL when unbound */
        char *driver_override; /* NULL when unset */
        int iommu_group;       /* -1: none */
        int numa_node;         /* -1: none */
        int boot_vga;          /* -1: attribute absent */
        bool is_vfio;          /* bound to a VFIO driver (vfio-dev/ present, or driver vfio-pci) */
        /* SR-IOV: -1 when the device has no SR-IOV capability */
        int sriov_totalvfs, sriov_numvfs;
        char *physfn; /* address of the PF when this is a VF */
        /* PCIe link, as the kernel prints it ("16.0 GT/s PCIe"), NULL when absent */
        char *link_speed, *link_width, *max_link_speed, *max_link_width;
        bool has_rom;
        bool has_mdev_types;  /* mdev_supported_types/ */
        bool has_vendor_vgpu; /* nvidia/creatable_vgpu_types (NVIDIA vendor-VFIO vGPU on a VF) */
} PciDevice;

static inline unsigned pci_device_class(const PciDevice *d) {
        return d->class >> 8;
}
static inline bool pci_device_is_display(const PciDevice *d) {
        return (d->class >> 16) == 0x03;
}
/* A host bridge or PCI-to-PCI bridge/port: it forwards, is never assigned, and its driver (pcieport,
 * or none) does not make an IOMMU group unviable. "Other" bridges (0x0680: NVSwitch, ...) are devices. */
static inline bool pci_device_is_bridge(const PciDevice *d) {
        unsigned c = pci_device_class(d);
        return c == PCI_CLASS_BRIDGE_HOST || c == PCI_CLASS_BRIDGE_PCI || c == 0x0609;
}

typedef struct PciHost {
        Root *root; /* not owned */
        PciDevice *devices;
        size_t n_devices;
} PciHost;

/* Read every device under sys/bus/pci/devices. Tolerates attributes a captured tree lacks. */
int pci_host_scan(Root *root, PciHost **ret);
PciHost *pci_host_free(PciHost *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(PciHost *, pci_host_free)
#define _cleanup_pci_host_free_ _cleanup_(pci_host_freep)

PciDevice *pci_host_find(const PciHost *h, const char *addr);
/* Resolve user input (any accepted address form) to a device, or -EINVAL (malformed) / -ENODEV. */
int pci_host_lookup(const PciHost *h, const char *input, PciDevice **ret);

/* Read the device's config space (up to 4096 bytes). */
int pci_device_read_config(const PciHost *h, const PciDevice *d, uint8_t **ret, size_t *ret_size);

/* Config space helpers: capability walk. Return offset or 0 when absent. */
unsigned pci_config_find_cap(const uint8_t *cfg, size_t size, uint8_t cap_id);
unsigned pci_config_find_ext_cap(const uint8_t *cfg, size_t size, uint16_t cap_id);

#define PCI_CAP_ID_EXP       0x10
#define PCI_EXT_CAP_ID_ACS   0x000d
#define PCI_EXT_CAP_ID_SRIOV 0x0010
/* ACS control bits libvirt requires: Source Validation, Request Redirect, Completion Redirect,
 * Upstream Forwarding. */
#define PCI_ACS_CTRL_REQUIRED 0x001d
/* PCIe port types (Express capability, flags bits 7:4) */
#define PCI_EXP_TYPE_ENDPOINT   0x0
#define PCI_EXP_TYPE_ROOT_PORT  0x4
#define PCI_EXP_TYPE_UPSTREAM   0x5
#define PCI_EXP_TYPE_DOWNSTREAM 0x6
