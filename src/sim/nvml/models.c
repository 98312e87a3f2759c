/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdint.h>

#include "basic/fileio.h"
#include "sim/nvml/fake-nvml.h"

/*
 * The MIG profile tables of each product, one table per product.
 *
 * Profiles, instance counts, slice fractions and engines (copy engines, NVDEC, JPEG, OFA) are those of
 * NVIDIA's "Multi-Instance GPU User Guide" (r580), section "Supported MIG Profiles" (the A30, A100, H100
 * and H200 tables); placements are those of the same section's diagrams and of `nvidia-smi mig -lgipp` in
 * its "Getting Started with MIG" section. Memory (NVML's memorySizeMB) and SM counts are not in those
 * tables: they are what `nvidia-smi mig -lgip` reports on the product, cited above each table.
 * tests/test-mig.c checks every row against those published numbers.
 *
 * The GPU's total memory (for profile names) is what nvidia-smi reports for the product: 40960, 81920,
 * 24576, 81559 (H100) and 143771 MiB (H200).
 *
 * P(constant, id, compute slices, memory slices, instances, legal starts, MiB, SMs, CE, NVDEC, JPEG, OFA)
 */
#define P(c, i, cs, sz, mx, st, mb, sm, ce_, de, jp, of)                                                      \
        {.constant = (c), .id = (i), .compute = (cs), .size = (sz), .max = (mx), .starts = (st), .mem_mb = (mb), \
         .sms = (sm), .ce = (ce_), .dec = (de), .jpeg = (jp), .ofa = (of)}

/* A100-SXM4-40GB: the guide's table "GPU Instance Profiles on A100", and its own `nvidia-smi mig -lgip`
 * example (Getting Started with MIG: 4.75, 9.62, 9.62, 19.50, 19.50, 39.25 GiB; 14, 14, 14, 28, 42, 56, 98
 * SMs). The PCIe 40GB card (GA100, same partitioning) is assumed to report the same: no capture of it. */
static const FModel a100_40gb = {"A100-40GB", 40960, 8, 7, {
        P(0x0, 19, 1, 1, 7, 0x7f, 4864, 14, 1, 0, 0, 0),   P(0x7, 20, 1, 1, 1, 0x7f, 4864, 14, 1, 1, 1, 1),
        P(0x9, 15, 1, 2, 4, 0x55, 9856, 14, 1, 1, 0, 0),   P(0x1, 14, 2, 2, 3, 0x15, 9856, 28, 2, 1, 0, 0),
        P(0x2, 9, 3, 4, 2, 0x11, 19968, 42, 3, 2, 0, 0),   P(0x3, 5, 4, 4, 1, 0x01, 19968, 56, 4, 2, 0, 0),
        P(0x4, 0, 7, 8, 1, 0x01, 40192, 98, 7, 5, 1, 1)}, 7};
/* A100-SXM4-80GB / A100 80GB PCIe: the guide's A100 table with the 80GB names; memory and SMs from
 * `nvidia-smi mig -lgip` on an A100 80GB PCIe (driver 515: 9.50, 9.50, 19.50, 39.25, 39.25, 79.00 GiB;
 * 14, 14, 28, 42, 56, 98 SMs; MIG device 3g.40gb 40192 MiB). That driver predates 1g.20gb (profile 15):
 * its memory and SMs are taken equal to 2g.20gb's memory and 1g's SMs, as on the 40GB card. */
static const FModel a100_80gb = {"A100-80GB", 81920, 8, 7, {
        P(0x0, 19, 1, 1, 7, 0x7f, 9728, 14, 1, 0, 0, 0),   P(0x7, 20, 1, 1, 1, 0x7f, 9728, 14, 1, 1, 1, 1),
        P(0x9, 15, 1, 2, 4, 0x55, 19968, 14, 1, 1, 0, 0),  P(0x1, 14, 2, 2, 3, 0x15, 19968, 28, 2, 1, 0, 0),
        P(0x2, 9, 3, 4, 2, 0x11, 40192, 42, 3, 2, 0, 0),   P(0x3, 5, 4, 4, 1, 0x01, 40192, 56, 4, 2, 0, 0),
        P(0x4, 0, 7, 8, 1, 0x01, 80896, 98, 7, 5, 1, 1)}, 7};
/* A30-24GB: the guide's table "GPU Instance Profiles on A30"; memory and SMs from `nvidia-smi mig -lgip`
 * on an A30 (5.81, 5.81, 11.69, 11.69, 23.44 GiB; 14, 14, 28, 28, 56 SMs; placements from its -lgipp:
 * {0,1,2,3}:1, {0,2}:2, {0}:4). */
static const FModel a30 = {"A30-24GB", 24576, 4, 4, {
        P(0x0, 14, 1, 1, 4, 0x0f, 5952, 14, 1, 0, 0, 0),   P(0x7, 21, 1, 1, 1, 0x0f, 5952, 14, 1, 1, 1, 1),
        P(0x1, 5, 2, 2, 2, 0x05, 11968, 28, 2, 2, 0, 0),   P(0x8, 6, 2, 2, 1, 0x05, 11968, 28, 2, 2, 1, 1),
        P(0x3, 0, 4, 4, 1, 0x01, 24000, 56, 4, 4, 1, 1)}, 5};
/* H100-SXM5-80GB: the guide's table "GPU Instance Profiles on H100"; memory and SMs from `nvidia-smi mig
 * -lgip` on an H100 80GB HBM3 (9.75, 9.75, 19.62, 19.62, 39.50, 39.50, 79.25 GiB; 16, 16, 26, 32, 60, 64,
 * 132 SMs). */
static const FModel h100_sxm5 = {"H100-SXM5-80GB", 81559, 8, 7, {
        P(0x0, 19, 1, 1, 7, 0x7f, 9984, 16, 1, 1, 1, 0),   P(0x7, 20, 1, 1, 1, 0x7f, 9984, 16, 1, 1, 1, 1),
        P(0x9, 15, 1, 2, 4, 0x55, 20096, 26, 1, 1, 1, 0),  P(0x1, 14, 2, 2, 3, 0x15, 20096, 32, 2, 2, 2, 0),
        P(0x2, 9, 3, 4, 2, 0x11, 40448, 60, 3, 3, 3, 0),   P(0x3, 5, 4, 4, 1, 0x01, 40448, 64, 4, 4, 4, 0),
        P(0x4, 0, 7, 8, 1, 0x01, 81152, 132, 8, 7, 7, 1)}, 7};
/* H100-PCIE-80GB: the guide's H100 table; memory and SMs from `nvidia-smi mig -lgip` on an H100 PCIe
 * (driver 570.169: 9.75, 9.75, 19.62, 19.62, 39.50, 39.50, 79.25 GiB; 14, 14, 14, 30, 46, 62, 114 SMs;
 * MIG device 1g.10gb 9984 MiB). */
static const FModel h100_pcie = {"H100-PCIE-80GB", 81559, 8, 7, {
        P(0x0, 19, 1, 1, 7, 0x7f, 9984, 14, 1, 1, 1, 0),   P(0x7, 20, 1, 1, 1, 0x7f, 9984, 14, 1, 1, 1, 1),
        P(0x9, 15, 1, 2, 4, 0x55, 20096, 14, 1, 1, 1, 0),  P(0x1, 14, 2, 2, 3, 0x15, 20096, 30, 2, 2, 2, 0),
        P(0x2, 9, 3, 4, 2, 0x11, 40448, 46, 3, 3, 3, 0),   P(0x3, 5, 4, 4, 1, 0x01, 40448, 62, 4, 4, 4, 0),
        P(0x4, 0, 7, 8, 1, 0x01, 81152, 114, 8, 7, 7, 1)}, 7};
/* H200-SXM-141GB: the guide's table "GPU Instance Profiles on H200"; memory and SMs from `nvidia-smi mig
 * -lgip` on an H200 in NVIDIA/mig-parted issue #120 ("Add support for the NVIDIA H200 GPU": 16.00, 16.00,
 * 32.25, 32.25, 69.50, 69.50, 139.75 GiB; 16, 16, 26, 32, 60, 64, 132 SMs). H200 NVL is not modelled. */
static const FModel h200_sxm = {"H200-SXM-141GB", 143771, 8, 7, {
        P(0x0, 19, 1, 1, 7, 0x7f, 16384, 16, 1, 1, 1, 0),  P(0x7, 20, 1, 1, 1, 0x7f, 16384, 16, 1, 1, 1, 1),
        P(0x9, 15, 1, 2, 4, 0x55, 33024, 26, 1, 1, 1, 0),  P(0x1, 14, 2, 2, 3, 0x15, 33024, 32, 2, 2, 2, 0),
        P(0x2, 9, 3, 4, 2, 0x11, 71168, 60, 3, 3, 3, 0),   P(0x3, 5, 4, 4, 1, 0x01, 71168, 64, 4, 4, 4, 0),
        P(0x4, 0, 7, 8, 1, 0x01, 143104, 132, 8, 7, 7, 1)}, 7};
#undef P

/* Each product by PCI device id, with the name NVML gives it. */
const FKnown known[] = {
        {0x20b0, "NVIDIA A100-SXM4-40GB", &a100_40gb}, {0x20b1, "NVIDIA A100-PCIE-40GB", &a100_40gb},
        {0x20f1, "NVIDIA A100-PCIE-40GB", &a100_40gb}, {0x20b2, "NVIDIA A100-SXM4-80GB", &a100_80gb},
        {0x20b5, "NVIDIA A100 80GB PCIe", &a100_80gb}, {0x20b7, "NVIDIA A30", &a30},
        {0x2330, "NVIDIA H100 80GB HBM3", &h100_sxm5}, {0x2331, "NVIDIA H100 PCIe", &h100_pcie},
        {0x2335, "NVIDIA H200", &h200_sxm},
        /* GPUs without MIG that the simulator's profiles hold */
        {0x1eb8, "Tesla T4", NULL},                    {0x1fb0, "DGX Display", NULL},
        {0x1e30, "Quadro RTX 6000", NULL},             {0x2206, "NVIDIA GeForce RTX 3080", NULL},
        {0x21c4, "NVIDIA GeForce GTX 1660 SUPER", NULL},
};

const size_t n_known = ELEMENTSOF(known);
