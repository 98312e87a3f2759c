/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Config space builder: a real type 0 / type 1 header with a capability list (PM, MSI, PCI Express,
 * MSI-X) and extended capabilities (AER, ACS, SR-IOV), so that lspci -vvv and any capability walker
 * read the simulated devices as real ones.
 */
#include <string.h>

#include "sim-internal.h"

#define CAP_PM     0x40
#define CAP_MSI    0x50
#define CAP_EXP    0x70
#define CAP_MSIX   0xb0
#define EXT_AER    0x100
#define EXT_ACS    0x148
#define EXT_SRIOV  0x160

static void put16(uint8_t *c, unsigned off, unsigned v) {
        c[off] = (uint8_t)v;
        c[off + 1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *c, unsigned off, uint32_t v) {
        put16(c, off, v & 0xffff);
        put16(c, off + 2, v >> 16);
}

static bool has_express(const SimDev *d) {
        return d->m->port != SIM_PORT_HOST && d->m->port != SIM_PORT_PCI;
}

static bool is_bridge(const SimDev *d) {
        return (d->m->class >> 8) == 0x0604;
}

static unsigned exp_type(const SimDev *d) {
        switch (d->m->port) {
        case SIM_PORT_ROOT:
                return 0x4;
        case SIM_PORT_UPSTREAM:
                return 0x5;
        case SIM_PORT_DOWNSTREAM:
                return 0x6;
        case SIM_PORT_PCIE_TO_PCI:
                return 0x7;
        case SIM_PORT_RCIEP:
                return 0x9;
        default:
                return 0x0;
        }
}

static bool has_acs_cap(const SimDev *d) {
        return (d->flags & SIM_ACS) && has_express(d);
}

unsigned sim_config_sriov_pos(const SimDev *d) {
        return d->m->sriov_total > 0 ? EXT_SRIOV : 0;
}

static void build_express(const SimDev *d, uint8_t *c) {
        const SimModel *m = d->m;
        bool port = m->port == SIM_PORT_ROOT || m->port == SIM_PORT_DOWNSTREAM;
        c[CAP_EXP] = 0x10;
        put16(c, CAP_EXP + 2, 0x0002 | exp_type(d) << 4 | (port ? 0x0100 : 0));
        put32(c, CAP_EXP + 4, (m->flr ? 1u << 28 : 0) | 0x8000 /* role-based error reporting */ | 0x2);
        put16(c, CAP_EXP + 8, 0x2810 | (m->flr ? 0 : 0));
        if (m->link_gen > 0) {
                unsigned portno = port ? (unsigned)d->slot + 1 : 0;
                put32(c, CAP_EXP + 0x0c, (uint32_t)m->link_gen | (uint32_t)m->link_width << 4 | portno << 24 |
                                                 (port ? 1u << 20 : 0) /* DLL link active reporting */);
                put16(c, CAP_EXP + 0x12, (unsigned)m->link_gen | (unsigned)m->link_width << 4 |
                                                 (port ? 0x2000 : 0) /* DLL link active */);
                put32(c, CAP_EXP + 0x2c, ((1u << m->link_gen) - 1) << 1);
                put16(c, CAP_EXP + 0x30, m->link_gen);
        }
        if (port)
                put32(c, CAP_EXP + 0x14, (uint32_t)(d->slot + 1) << 19 | 0x0060);
        put32(c, CAP_EXP + 0x24, 0x00000010 | (port ? 0x0040 : 0)); /* completion timeout, ARI fwd */
}

static void build_sriov(const SimDev *d, unsigned numvfs, uint8_t *c, unsigned pos) {
        const SimModel *m = d->m;
        put32(c, pos + 0x04, 0x00000002); /* ARI capable hierarchy preserved */
        put16(c, pos + 0x08, numvfs > 0 ? 0x0019 : 0x0010); /* VF Enable, VF MSE, ARI capable hierarchy */
        put16(c, pos + 0x0c, m->sriov_total);
        put16(c, pos + 0x0e, m->sriov_total);
        put16(c, pos + 0x10, numvfs);
        put16(c, pos + 0x14, m->sriov_offset);
        put16(c, pos + 0x16, m->sriov_stride);
        put16(c, pos + 0x1a, m->vf_device);
        put32(c, pos + 0x1c, 0x00000553); /* supported page sizes */
        put32(c, pos + 0x20, 0x00000001); /* system page size: 4 KiB */
        put32(c, pos + 0x24, 0x0000000c); /* VF BAR0: 64-bit prefetchable */
}

void sim_config_build(const SimDev *d, unsigned numvfs, uint8_t c[static 4096]) {
        const SimModel *m = d->m;
        memset(c, 0, 4096);
        /* A VF's Vendor and Device ID registers read 0xffff (SR-IOV specification): the kernel takes its IDs
         * from the PF's SR-IOV capability, the sysfs vendor/device attributes show those. */
        put16(c, 0x00, d->is_vf ? 0xffff : m->vendor);
        put16(c, 0x02, d->is_vf ? 0xffff : m->device);
        put16(c, 0x04, d->is_vf ? 0x0002 : 0x0406); /* memory space, bus master, INTx disable */
        put16(c, 0x06, 0x0010);                     /* capabilities list */
        c[0x08] = m->revision;
        c[0x09] = (uint8_t)m->class;
        c[0x0a] = (uint8_t)(m->class >> 8);
        c[0x0b] = (uint8_t)(m->class >> 16);
        c[0x0c] = 0x10;
        c[0x0e] = (uint8_t)((is_bridge(d) ? 1 : 0) | (d->multifunction ? 0x80 : 0));

        uint32_t mem = 0x80000000u + ((uint32_t)d->bus << 22) + ((uint32_t)d->slot << 17) + ((uint32_t)d->func << 14);
        if (is_bridge(d)) {
                c[0x18] = d->bus;
                c[0x19] = d->secondary;
                c[0x1a] = d->subordinate;
                c[0x1c] = 0xf0; /* I/O window disabled */
                put32(c, 0x20, ((mem >> 16) & 0xfff0) | ((mem + 0x3f00000) & 0xfff00000));
                put32(c, 0x24, 0x0001fff1); /* prefetchable window disabled, 64-bit */
                put16(c, 0x3e, 0x0010);
        } else {
                if (m->bar0_size_mb > 0 && !d->is_vf)
                        put32(c, 0x10, mem);
                put16(c, 0x2c, m->subvendor);
                put16(c, 0x2e, m->subdevice);
                if (m->rom)
                        put32(c, 0x30, mem + 0x01000000);
        }
        c[0x34] = CAP_PM;
        c[0x3c] = d->is_vf ? 0 : (uint8_t)(16 + (d->bus + d->slot) % 16);
        c[0x3d] = d->is_vf ? 0 : 1;

        /* PM -> MSI -> Express -> MSI-X */
        c[CAP_PM] = 0x01;
        c[CAP_PM + 1] = CAP_MSI;
        put16(c, CAP_PM + 2, 0x0003);
        put16(c, CAP_PM + 4, 0x0008);
        c[CAP_MSI] = 0x05;
        c[CAP_MSI + 1] = has_express(d) ? CAP_EXP : (m->msix ? CAP_MSIX : 0);
        put16(c, CAP_MSI + 2, 0x0180);
        if (has_express(d)) {
                build_express(d, c);
                c[CAP_EXP + 1] = m->msix ? CAP_MSIX : 0;
        }
        if (m->msix) {
                c[CAP_MSIX] = 0x11;
                put16(c, CAP_MSIX + 2, 0x8000 | 0x003f); /* enabled, 64 vectors */
                put32(c, CAP_MSIX + 4, 0x00b90000);
                put32(c, CAP_MSIX + 8, 0x00ba0000);
        }
        if (!has_express(d))
                return;

        /* Extended: AER -> ACS -> SR-IOV */
        unsigned next = has_acs_cap(d) ? EXT_ACS : sim_config_sriov_pos(d);
        put32(c, EXT_AER, 0x0001 | 2u << 16 | (uint32_t)next << 20);
        put32(c, EXT_AER + 0x14, 0x00002000); /* correctable error mask: advisory non-fatal */
        put32(c, EXT_AER + 0x0c, 0x00462030); /* uncorrectable severity: kernel default */
        if (has_acs_cap(d)) {
                next = sim_config_sriov_pos(d);
                put32(c, EXT_ACS, 0x000d | 1u << 16 | (uint32_t)next << 20);
                put16(c, EXT_ACS + 4, 0x005f); /* SV TB RR CR UF DT */
                put16(c, EXT_ACS + 6, 0x001d); /* SV RR CR UF enabled */
        }
        if (m->sriov_total > 0) {
                put32(c, EXT_SRIOV, 0x0010 | 1u << 16);
                build_sriov(d, numvfs, c, EXT_SRIOV);
        }
}
