/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "basic/gverror.h"
#include "basic/macro.h"
#include "core/host/pci.h"

/*
 * libvirt: the connection, domain enumeration and domain XML edits (libxml2).
 *
 * Every libvirt error is converted in exactly one place (libvirt.c: virt_error()): libvirt's own
 * printing is switched off, the error becomes -errno and its message is kept on the connection until
 * the caller turns it into its GvError (virt_error_take()). Library code here logs at debug only.
 */

#define VIRT_DEFAULT_URI "qemu:///system"

/* connect (--connect) ?: $LIBVIRT_DEFAULT_URI ?: qemu:///system */
const char *virt_resolve_uri(const char *connect);

typedef struct Virt Virt;

/* -ECONNREFUSED (-EACCES, -ENOPKG without libvirt; err says why) when libvirt cannot be reached. */
int virt_open(const char *uri, Virt **ret, GvError *err);
Virt *virt_close(Virt *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(Virt *, virt_close)
#define _cleanup_virt_close_ _cleanup_(virt_closep)

const char *virt_uri(const Virt *v) _pure_;
/* The last failed libvirt call on this connection as a GvError: errno r, the formatted text (fmt NULL:
 * none) followed by libvirt's message for the call ("virDomainDefineXML: ..."; nothing when none failed).
 * Returns -abs(r). */
int virt_error_take(Virt *v, GvError *err, int r, const char *device, const char *fmt, ...) _printf_(5, 6);
/* libvirt's and the hypervisor's versions as major*1000000+minor*1000+micro (0 when unknown). */
unsigned long virt_lib_version(Virt *v);
unsigned long virt_hv_version(Virt *v);

/* ---- hostdevs in domain XML ---- */

typedef enum HostdevType {
        HOSTDEV_TYPE_PCI,
        HOSTDEV_TYPE_MDEV,
        _HOSTDEV_TYPE_MAX,
        _HOSTDEV_TYPE_INVALID = -EINVAL,
} HostdevType;

typedef struct HostdevRef {
        HostdevType type;
        PciAddr addr;  /* PCI: the host address (<source><address .../>) */
        char uuid[37]; /* mdev: lower case */
} HostdevRef;

bool hostdev_ref_equal(const HostdevRef *a, const HostdevRef *b);

typedef struct DomainXmlInfo {
        HostdevRef *hostdevs;
        size_t n_hostdevs;
        bool kvm_hidden; /* <features><kvm><hidden state='on'/> */
} DomainXmlInfo;

void domain_xml_info_done(DomainXmlInfo *i);

/* Parse a domain's XML: its subsystem hostdevs (pci, mdev) and features. -EBADMSG on bad XML. */
int domain_xml_parse(const char *xml, DomainXmlInfo *ret);
/* Append the <hostdev> elements of `hostdevs` (bare elements, one or more) to <devices>. */
int domain_xml_add_hostdevs(const char *xml, const char *hostdevs, char **ret);
/* Remove every hostdev matching one of refs; *ret_removed counts them. */
int domain_xml_remove_hostdevs(const char *xml, const HostdevRef *refs, size_t n_refs, char **ret,
                               size_t *ret_removed);
/* The first guest PCI slot on bus 0 that no device of the domain uses (0x10..0x1f first, then
 * 0x01..0x0f). -ENOSPC when bus 0 is full. */
int domain_xml_free_slot(const char *xml, int *ret_slot);
/* The whole <hostdev> element (as XML text) in `xml` that matches ref, or -ENOENT. */
int domain_xml_hostdev_element(const char *xml, const HostdevRef *ref, char **ret);

/* ---- domains ---- */

typedef struct VirtDomain {
        char *name;
        bool active, persistent;
        DomainXmlInfo live;   /* the running definition (active domains) */
        DomainXmlInfo config; /* the persistent definition (persistent domains) */
} VirtDomain;

void virt_domains_free(VirtDomain *d, size_t n);

/* The list virt_list_domains() fills, as one value for _cleanup_virt_domains_. */
typedef struct VirtDomains {
        VirtDomain *d;
        size_t n;
} VirtDomains;

static inline void virt_domains_done(VirtDomains *l) {
        virt_domains_free(l->d, l->n);
        *l = (VirtDomains){};
}
#define _cleanup_virt_domains_ _cleanup_(virt_domains_done)
/* Every domain (running or defined) with its parsed XML. */
int virt_list_domains(Virt *v, VirtDomain **ret, size_t *ret_n);

/* -ENOENT when no such domain. */
int virt_domain_state(Virt *v, const char *name, bool *ret_active, bool *ret_persistent);
/* inactive: the persistent definition (VIR_DOMAIN_XML_INACTIVE) instead of the running one. */
int virt_domain_xml(Virt *v, const char *name, bool inactive, char **ret);
/* Define (or redefine) a domain from XML: changes the persistent definition on every driver. */
int virt_define(Virt *v, const char *xml);
/* Hot-plug / hot-unplug one device into the running domain (VIR_DOMAIN_AFFECT_LIVE). */
int virt_attach_live(Virt *v, const char *name, const char *device_xml);
int virt_detach_live(Virt *v, const char *name, const char *device_xml);

/* ---- live migration ---- */

/* The name of a node device that offers mdev type `type` with a free instance (-ENOENT when none does). */
int virt_mdev_parent_with(Virt *v, const char *type, char **ret);
/* Create an mdev of the type with this UUID under the parent node device (libvirt's node device API, which
 * drives mdevctl on that host); its node device name in *ret_name. */
int virt_mdev_create(Virt *v, const char *parent, const char *type, const char *uuid, char **ret_name);
int virt_nodedev_destroy(Virt *v, const char *name);
/* Live-migrate the running domain to dest_uri, peer to peer, persistent there. */
int virt_migrate(Virt *v, const char *name, const char *dest_uri);

/* ---- detach-reattach: PCI node devices ---- */

typedef struct VirtPciNodedev {
        char *name; /* "pci_0000_3b_00_0" */
        PciAddr addr;
        uint16_t vendor, device;
        bool is_vf;
        PciAddr pf; /* is_vf: its PF (<capability type='phys_function'>) */
} VirtPciNodedev;

void virt_pci_nodedevs_free(VirtPciNodedev *d, size_t n);
/* Every PCI node device of the connection's host. */
int virt_list_pci_nodedevs(Virt *v, VirtPciNodedev **ret, size_t *ret_n);
/* Bind the node device to vfio-pci on its host (virNodeDeviceDetachFlags, libvirt's managed detach). */
int virt_nodedev_detach(Virt *v, const char *name);
