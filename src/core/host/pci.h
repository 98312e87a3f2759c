/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "basic/macro.h"
#include "core/host/root.h"

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

/* Whether a device answers on the bus, from its config header (read in the scan, one place). A dead device
 * (OFF_BUS and after) is shown and checked, and every operation on it is refused. */
typedef enum PciDeviceState {
        PCI_DEVICE_OK,         /* its config header answers */
        PCI_DEVICE_UNKNOWN,    /* no config space to read: a capture may lack it */
        PCI_DEVICE_OFF_BUS,    /* config space reads all ones (vendor 0xffff; lspci "rev ff"): fallen off the bus */
        PCI_DEVICE_VANISHED,   /* its sysfs directory is gone, the bus/pci/devices link left dangling */
        PCI_DEVICE_UNREADABLE, /* its directory or config space cannot be read (EIO, EACCES, ...) */
        _PCI_DEVICE_STATE_MAX,
        _PCI_DEVICE_STATE_INVALID = -EINVAL,
} PciDeviceState;

/* "ok", "unknown", "off_bus", "vanished", "unreadable" (the JSON "state" of list and show) */
const char *pci_device_state_to_string(PciDeviceState s) _pure_;

typedef struct PciDevice {
        char addr[PCI_ADDR_STRLEN];
        PciDeviceState state;
        int state_errno; /* UNREADABLE: why (-errno) */
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
        /* Only classified (pci_host_scan_gpus()): addr, state, a, syspath, parent, the IDs and class (a bridge's
         * subsystem IDs 0), driver, iommu_group, physfn of a VF are read; the rest is unknown (-1, NULL, false;
         * is_vfio from the driver) until pci_host_complete(). */
        bool partial;
} PciDevice;

static inline bool pci_device_is_dead(const PciDevice *d) {
        return d->state >= PCI_DEVICE_OFF_BUS;
}
/* For a dead device: what is wrong ("does not answer on the bus: its config space reads all ones ...") and
 * what an operator does about it (dmesg, AER, reset, reseat); NULL for a live one. */
char *pci_device_dead_reason(const PciDevice *d);
char *pci_device_dead_hint(const PciDevice *d);
/* The two joined, for an operation that refuses the device: "0000:3b:00.0 does not answer ...: Check ...". */
char *pci_device_dead_message(const PciDevice *d);

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
/* The scan of what shows GPUs (list, check): every device classified from its config header (one read, with
 * its driver and IOMMU group links), and in full only the GPUs (display class, or dead), NVIDIA's functions,
 * the members of their IOMMU groups and their VFs; the others stay partial. */
int pci_host_scan_gpus(Root *root, PciHost **ret);
/* The scan of an operation on one device (passthrough enable/disable): every device classified, in full that
 * device, the members of its IOMMU group, the functions of its card, its PF and its VFs. An address that does
 * not parse: the full scan (the lookup then refuses it). */
int pci_host_scan_device(Root *root, const char *bdf, PciHost **ret);
/* Read the rest of a partial device (nothing for a complete one); -errno when its directory is gone, the
 * device then keeps what the scan read. */
int pci_host_complete(const PciHost *h, PciDevice *d);
PciHost *pci_host_free(PciHost *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(PciHost *, pci_host_free)
#define _cleanup_pci_host_free_ _cleanup_(pci_host_freep)

PciDevice *pci_host_find(const PciHost *h, const char *addr);
/* Resolve user input (any accepted address form) to a device, or -EINVAL (malformed) / -ENODEV. */
int pci_host_lookup(const PciHost *h, const char *input, PciDevice **ret);

/* Load one device as the scan does (for operations that work on one address without a scan): -ENODEV when
 * no such device; a dead one loads with its state set. */
int pci_device_read(Root *root, const char *bdf, PciDevice *ret);
void pci_device_done(PciDevice *d);
/* Read one device of a snapshot again, in full, in place (an operation re-reads what it changed instead of
 * scanning the host again): -ENODEV when it is not in the snapshot or no longer on the host (the snapshot then
 * keeps what it had), -ENOMEM. */
int pci_host_reread(PciHost *h, const char *addr);
/* 0 when the device at bdf answers on the bus (or a capture cannot tell, or there is no such PCI device:
 * the caller's own lookup reports that); -ENODEV when it is dead, with err (may be NULL) saying so (device bdf). */
int pci_device_require_alive(Root *root, const char *bdf, GvError *err);

/* The IDs and class in a device's uevent text (modified: its lines cut), as the kernel writes it from the same
 * fields as the vendor, device, class and subsystem attributes (PCI_CLASS=%04X, PCI_ID and
 * PCI_SUBSYS_ID=%04X:%04X): one read gives what five do. Sets d's vendor, device, class and subsystem IDs and
 * returns true when all three lines are there and valid; false, d unchanged, otherwise (a full read then
 * takes the attributes). */
bool pci_uevent_ids_parse(char *text, PciDevice *d);

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
