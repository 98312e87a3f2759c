/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Compiled-in hosts. IDs are real (lspci resolves them through pci.ids); topologies follow the real
 * machines closely enough that IOMMU groups, ACS paths and NUMA placement come out as on the hardware.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "sim-internal.h"
#include "sim.h"

/* ---- vGPU type tables ---------------------------------------------------------------------------- */

#define T4_DESC(heads, frl, fb, res, inst)                                                                    \
        "num_heads=" #heads ", frl_config=" #frl ", framebuffer=" #fb "M, max_resolution=" res                \
        ", max_instance=" #inst

static const SimVgpuType t4_types[] = {
        {"nvidia-222", "GRID T4-1B", T4_DESC(4, 45, 1024, "5120x2880", 16), 16, 1},
        {"nvidia-223", "GRID T4-2B", T4_DESC(4, 45, 2048, "5120x2880", 8), 8, 1},
        {"nvidia-224", "GRID T4-2B4", T4_DESC(4, 45, 2048, "5120x2880", 8), 8, 1},
        {"nvidia-225", "GRID T4-1A", T4_DESC(1, 60, 1024, "1280x1024", 16), 16, 1},
        {"nvidia-226", "GRID T4-2A", T4_DESC(1, 60, 2048, "1280x1024", 8), 8, 1},
        {"nvidia-227", "GRID T4-4A", T4_DESC(1, 60, 4096, "1280x1024", 4), 4, 1},
        {"nvidia-228", "GRID T4-8A", T4_DESC(1, 60, 8192, "1280x1024", 2), 2, 1},
        {"nvidia-229", "GRID T4-16A", T4_DESC(1, 60, 16384, "1280x1024", 1), 1, 1},
        {"nvidia-230", "GRID T4-1Q", T4_DESC(4, 60, 1024, "5120x2880", 16), 16, 1},
        {"nvidia-231", "GRID T4-2Q", T4_DESC(4, 60, 2048, "7680x4320", 8), 8, 1},
        {"nvidia-232", "GRID T4-4Q", T4_DESC(4, 60, 4096, "7680x4320", 4), 4, 1},
        {"nvidia-233", "GRID T4-8Q", T4_DESC(4, 60, 8192, "7680x4320", 2), 2, 1},
        {"nvidia-234", "GRID T4-16Q", T4_DESC(4, 60, 16384, "7680x4320", 1), 1, 1},
        {"nvidia-252", "GRID T4-1B4", T4_DESC(4, 45, 1024, "5120x2880", 16), 16, 1},
        {"nvidia-319", "GRID T4-4C", T4_DESC(1, 60, 4096, "4096x2160", 4), 4, 1},
        {"nvidia-320", "GRID T4-8C", T4_DESC(1, 60, 8192, "4096x2160", 2), 2, 1},
        {"nvidia-321", "GRID T4-16C", T4_DESC(1, 60, 16384, "4096x2160", 1), 1, 1},
};

#define GVTG_DESC(low, high, res, weight)                                                                     \
        "low_gm_size: " low "\nhigh_gm_size: " high "\nfence: 4\nresolution: " res "\nweight: " #weight

/* GVT-g carves the aperture: cost is the share of SIM_GVTG_BUDGET one instance takes. */
static const SimVgpuType gvtg_types[] = {
        {"i915-GVTg_V5_1", "GVTg_V5_1", GVTG_DESC("512MB", "2048MB", "1920x1200", 16), 1, 8},
        {"i915-GVTg_V5_2", "GVTg_V5_2", GVTG_DESC("256MB", "1024MB", "1920x1200", 8), 2, 4},
        {"i915-GVTg_V5_4", "GVTg_V5_4", GVTG_DESC("128MB", "512MB", "1920x1200", 4), 4, 2},
        {"i915-GVTg_V5_8", "GVTg_V5_8", GVTG_DESC("64MB", "384MB", "1024x768", 2), 8, 1},
};

/* H100 80GB PCIe, time-sliced C-series (vGPU 17, vendor-specific VFIO: one type per VF). */
static const SimVgpuType h100_types[] = {
        {"1044", "NVIDIA H100-4C", "framebuffer=4096M, max_instance=20", 20, 1},
        {"1045", "NVIDIA H100-5C", "framebuffer=5120M, max_instance=16", 16, 1},
        {"1046", "NVIDIA H100-8C", "framebuffer=8192M, max_instance=10", 10, 1},
        {"1047", "NVIDIA H100-10C", "framebuffer=10240M, max_instance=8", 8, 1},
        {"1048", "NVIDIA H100-16C", "framebuffer=16384M, max_instance=5", 5, 1},
        {"1049", "NVIDIA H100-20C", "framebuffer=20480M, max_instance=4", 4, 1},
        {"1050", "NVIDIA H100-40C", "framebuffer=40960M, max_instance=2", 2, 1},
        {"1051", "NVIDIA H100-80C", "framebuffer=81920M, max_instance=1", 1, 1},
};

/* ---- device models -------------------------------------------------------------------------------- */

#define BRIDGE(v, d, rev, kind, gen, width)                                                                   \
        {.vendor = v, .device = d, .class = 0x060400, .revision = rev, .port = kind, .driver = "pcieport",     \
         .link_gen = gen, .link_width = width}
#define HOSTB(v, d, cls)                                                                                      \
        {.vendor = v, .device = d, .class = cls, .port = SIM_PORT_HOST}

/* AMD EPYC (Rome) */
static const SimModel amd_rc = HOSTB(0x1022, 0x1480, 0x060000);
static const SimModel amd_dummy = HOSTB(0x1022, 0x1482, 0x060000);
static const SimModel amd_gpp = BRIDGE(0x1022, 0x1483, 0, SIM_PORT_ROOT, 4, 16);
static const SimModel amd_smbus = {.vendor = 0x1022, .device = 0x790b, .subvendor = 0x1022, .subdevice = 0x790b,
                                   .class = 0x0c0500, .revision = 0x61, .port = SIM_PORT_RCIEP,
                                   .driver = "piix4_smbus"};
static const SimModel amd_lpc = {.vendor = 0x1022, .device = 0x790e, .subvendor = 0x1022, .subdevice = 0x790e,
                                 .class = 0x060100, .revision = 0x51, .port = SIM_PORT_RCIEP};
/* Intel Sapphire Rapids */
static const SimModel spr_vtd = HOSTB(0x8086, 0x09a2, 0x088000);
static const SimModel spr_rp = BRIDGE(0x8086, 0x352a, 0x04, SIM_PORT_ROOT, 5, 16);
/* Intel Cascade Lake + C620 */
static const SimModel skx_dmi = HOSTB(0x8086, 0x2020, 0x060000);
static const SimModel skx_rp = BRIDGE(0x8086, 0x2030, 0x07, SIM_PORT_ROOT, 3, 16);
static const SimModel c620_rp = BRIDGE(0x8086, 0xa190, 0x09, SIM_PORT_ROOT, 3, 1);
static const SimModel c620_xhci = {.vendor = 0x8086, .device = 0xa1af, .subvendor = 0x15d9, .subdevice = 0x095d,
                                   .class = 0x0c0330, .revision = 0x09, .port = SIM_PORT_RCIEP,
                                   .driver = "xhci_hcd", .msix = true, .bar0_size_mb = 1};
static const SimModel c620_sata = {.vendor = 0x8086, .device = 0xa182, .subvendor = 0x15d9, .subdevice = 0x095d,
                                   .class = 0x010601, .revision = 0x09, .port = SIM_PORT_RCIEP, .driver = "ahci"};
static const SimModel c620_smbus = {.vendor = 0x8086, .device = 0xa1a3, .subvendor = 0x15d9, .subdevice = 0x095d,
                                    .class = 0x0c0500, .revision = 0x09, .port = SIM_PORT_RCIEP,
                                    .driver = "i801_smbus"};
/* Intel Coffee Lake + Cannon Lake PCH */
static const SimModel cfl_host = {.vendor = 0x8086, .device = 0x3ec2, .subvendor = 0x1043, .subdevice = 0x8694,
                                  .class = 0x060000, .revision = 0x07, .port = SIM_PORT_HOST};
static const SimModel cfl_peg = BRIDGE(0x8086, 0x1901, 0x07, SIM_PORT_ROOT, 3, 16);
static const SimModel cfl_igpu = {.vendor = 0x8086, .device = 0x3e92, .subvendor = 0x1043, .subdevice = 0x8694,
                                  .class = 0x030000, .revision = 0x00, .port = SIM_PORT_RCIEP, .driver = "i915",
                                  .flr = true, .vgpu = SIM_VGPU_GVTG, .types = gvtg_types,
                                  .n_types = ELEMENTSOF(gvtg_types), .bar0_size_mb = 16};
static const SimModel cnl_rp1 = BRIDGE(0x8086, 0xa338, 0xf0, SIM_PORT_ROOT, 3, 4);
static const SimModel cnl_rp5 = BRIDGE(0x8086, 0xa33c, 0xf0, SIM_PORT_ROOT, 3, 1);
static const SimModel cnl_xhci = {.vendor = 0x8086, .device = 0xa36d, .subvendor = 0x1043, .subdevice = 0x8694,
                                  .class = 0x0c0330, .revision = 0x10, .port = SIM_PORT_RCIEP,
                                  .driver = "xhci_hcd", .msix = true, .bar0_size_mb = 1};
static const SimModel cnl_sata = {.vendor = 0x8086, .device = 0xa352, .subvendor = 0x1043, .subdevice = 0x8694,
                                  .class = 0x010601, .revision = 0x10, .port = SIM_PORT_RCIEP, .driver = "ahci"};
static const SimModel cnl_lpc = {.vendor = 0x8086, .device = 0xa305, .subvendor = 0x1043, .subdevice = 0x8694,
                                 .class = 0x060100, .revision = 0x10, .port = SIM_PORT_RCIEP};
static const SimModel cnl_hda = {.vendor = 0x8086, .device = 0xa348, .subvendor = 0x1043, .subdevice = 0x8724,
                                 .class = 0x040300, .revision = 0x10, .port = SIM_PORT_RCIEP,
                                 .driver = "snd_hda_intel"};
static const SimModel cnl_smbus = {.vendor = 0x8086, .device = 0xa323, .subvendor = 0x1043, .subdevice = 0x8694,
                                   .class = 0x0c0500, .revision = 0x10, .port = SIM_PORT_RCIEP,
                                   .driver = "i801_smbus"};
/* ASPEED BMC: a PCIe-to-PCI bridge with the VGA function behind it */
static const SimModel ast_bridge = {.vendor = 0x1a03, .device = 0x1150, .class = 0x060400, .revision = 0x04,
                                    .port = SIM_PORT_PCIE_TO_PCI, .link_gen = 2, .link_width = 1};
static const SimModel ast_vga = {.vendor = 0x1a03, .device = 0x2000, .subvendor = 0x1a03, .subdevice = 0x2000,
                                 .class = 0x030000, .revision = 0x41, .port = SIM_PORT_PCI, .driver = "ast",
                                 .bar0_size_mb = 64};
/* Broadcom/PLX PEX88096 */
static const SimModel plx_up = BRIDGE(0x1000, 0xc010, 0xb0, SIM_PORT_UPSTREAM, 4, 16);
static const SimModel plx_down = BRIDGE(0x1000, 0xc010, 0xb0, SIM_PORT_DOWNSTREAM, 4, 16);
/* NVIDIA */
static const SimModel a100 = {.vendor = 0x10de, .device = 0x20b0, .subvendor = 0x10de, .subdevice = 0x134f,
                              .class = 0x030200, .revision = 0xa1, .port = SIM_PORT_ENDPOINT, .driver = "nvidia",
                              .link_gen = 4, .link_width = 16, .rom = true, .flr = true, .msix = true,
                              .bar0_size_mb = 16};
/* A100-SXM4-80GB (the DGX Station A100's four GPUs); subsystem ids are the model's */
static const SimModel a100_80 = {.vendor = 0x10de, .device = 0x20b2, .subvendor = 0x10de, .subdevice = 0x1463,
                                 .class = 0x030200, .revision = 0xa1, .port = SIM_PORT_ENDPOINT, .driver = "nvidia",
                                 .link_gen = 4, .link_width = 16, .rom = true, .flr = true, .msix = true,
                                 .bar0_size_mb = 16};
/* The DGX Station's "DGX Display" card (TU117, 0x1fb0 in NVIDIA's DGX Station mig-parted file): the console,
 * on the nvidia driver, so NVML sees it; it cannot do MIG */
static const SimModel dgx_display = {.vendor = 0x10de, .device = 0x1fb0, .subvendor = 0x10de, .subdevice = 0x12db,
                                     .class = 0x030000, .revision = 0xa1, .port = SIM_PORT_ENDPOINT,
                                     .driver = "nvidia", .link_gen = 3, .link_width = 16, .rom = true, .msix = true,
                                     .bar0_size_mb = 16};
static const SimModel dgx_display_audio = {.vendor = 0x10de, .device = 0x10fa, .subvendor = 0x10de,
                                           .subdevice = 0x12db, .class = 0x040300, .revision = 0xa1,
                                           .port = SIM_PORT_ENDPOINT, .driver = "snd_hda_intel", .link_gen = 3,
                                           .link_width = 16};
static const SimModel nvswitch = {.vendor = 0x10de, .device = 0x1af1, .subvendor = 0x10de, .subdevice = 0x1652,
                                  .class = 0x068000, .revision = 0xa1, .port = SIM_PORT_ENDPOINT,
                                  .driver = "nvidia", .link_gen = 4, .link_width = 2, .msix = true,
                                  .bar0_size_mb = 32};
static const SimModel h100 = {.vendor = 0x10de, .device = 0x2331, .subvendor = 0x10de, .subdevice = 0x1626,
                              .class = 0x030200, .revision = 0xa1, .port = SIM_PORT_ENDPOINT, .driver = "nvidia",
                              .link_gen = 5, .link_width = 16, .rom = true, .flr = true, .msix = true,
                              .sriov_total = 32, .sriov_offset = 4, .sriov_stride = 1, .vf_device = 0x2331,
                              .vgpu = SIM_VGPU_NVIDIA_VF, .types = h100_types, .n_types = ELEMENTSOF(h100_types),
                              .bar0_size_mb = 16};
static const SimModel t4 = {.vendor = 0x10de, .device = 0x1eb8, .subvendor = 0x10de, .subdevice = 0x12a2,
                            .class = 0x030200, .revision = 0xa1, .port = SIM_PORT_ENDPOINT, .driver = "nvidia",
                            .link_gen = 3, .link_width = 16, .rom = true, .flr = true, .msix = true,
                            .vgpu = SIM_VGPU_NVIDIA_MDEV, .types = t4_types, .n_types = ELEMENTSOF(t4_types),
                            .bar0_size_mb = 16};
static const SimModel rtx3080 = {.vendor = 0x10de, .device = 0x2206, .subvendor = 0x10de, .subdevice = 0x1467,
                                 .class = 0x030000, .revision = 0xa1, .port = SIM_PORT_ENDPOINT,
                                 .driver = "nvidia", .link_gen = 4, .link_width = 16, .rom = true, .msix = true,
                                 .bar0_size_mb = 16};
static const SimModel rtx3080_audio = {.vendor = 0x10de, .device = 0x1aef, .subvendor = 0x10de,
                                       .subdevice = 0x1467, .class = 0x040300, .revision = 0xa1,
                                       .port = SIM_PORT_ENDPOINT, .driver = "snd_hda_intel", .link_gen = 4,
                                       .link_width = 16};
static const SimModel gtx1660s = {.vendor = 0x10de, .device = 0x21c4, .subvendor = 0x1462, .subdevice = 0xc758,
                                  .class = 0x030000, .revision = 0xa1, .port = SIM_PORT_ENDPOINT,
                                  .driver = "nvidia", .link_gen = 3, .link_width = 16, .rom = true, .msix = true,
                                  .bar0_size_mb = 16};
static const SimModel gtx1660s_audio = {.vendor = 0x10de, .device = 0x1aeb, .subvendor = 0x1462,
                                        .subdevice = 0xc758, .class = 0x040300, .revision = 0xa1,
                                        .port = SIM_PORT_ENDPOINT, .driver = "snd_hda_intel", .link_gen = 3,
                                        .link_width = 16};
static const SimModel rtx6000 = {.vendor = 0x10de, .device = 0x1e30, .subvendor = 0x10de, .subdevice = 0x12ba,
                                 .class = 0x030000, .revision = 0xa1, .port = SIM_PORT_ENDPOINT,
                                 .driver = "nvidia", .link_gen = 3, .link_width = 16, .rom = true, .msix = true,
                                 .bar0_size_mb = 16};
static const SimModel rtx6000_audio = {.vendor = 0x10de, .device = 0x10f7, .subvendor = 0x10de,
                                       .subdevice = 0x12ba, .class = 0x040300, .revision = 0xa1,
                                       .port = SIM_PORT_ENDPOINT, .driver = "snd_hda_intel", .link_gen = 3,
                                       .link_width = 16};
/* Intel Data Center GPU Flex 170, AMD Instinct MI25 (MxGPU) */
static const SimModel flex170 = {.vendor = 0x8086, .device = 0x56c0, .subvendor = 0x8086, .subdevice = 0x4905,
                                 .class = 0x038000, .revision = 0x08, .port = SIM_PORT_ENDPOINT, .driver = "i915",
                                 .link_gen = 4, .link_width = 16, .flr = true, .msix = true, .sriov_total = 31,
                                 .sriov_offset = 1, .sriov_stride = 1, .vf_device = 0x56c0, .bar0_size_mb = 16};
/* the same card on amdgpu instead of GIM: amdgpu has no sriov_configure, so no VF can be made */
static const SimModel mi25_amdgpu = {.vendor = 0x1002, .device = 0x6860, .subvendor = 0x1002, .subdevice = 0x0c35,
                                     .class = 0x038000, .revision = 0x01, .port = SIM_PORT_ENDPOINT,
                                     .driver = "amdgpu", .link_gen = 3, .link_width = 16, .rom = true, .flr = true,
                                     .msix = true, .sriov_total = 16, .sriov_offset = 1, .sriov_stride = 1,
                                     .vf_device = 0x686c, .bar0_size_mb = 16};
static const SimModel mi25 = {.vendor = 0x1002, .device = 0x6860, .subvendor = 0x1002, .subdevice = 0x0c35,
                              .class = 0x038000, .revision = 0x01, .port = SIM_PORT_ENDPOINT, .driver = "gim",
                              .link_gen = 3, .link_width = 16, .rom = true, .flr = true, .msix = true,
                              .sriov_total = 16, .sriov_offset = 1, .sriov_stride = 1, .vf_device = 0x686c,
                              .bar0_size_mb = 16};
/* Other endpoints */
static const SimModel cx6 = {.vendor = 0x15b3, .device = 0x101b, .subvendor = 0x15b3, .subdevice = 0x0007,
                             .class = 0x020700, .revision = 0x00, .port = SIM_PORT_ENDPOINT, .driver = "mlx5_core",
                             .link_gen = 4, .link_width = 16, .flr = true, .msix = true, .bar0_size_mb = 32};
static const SimModel nvme = {.vendor = 0x144d, .device = 0xa824, .subvendor = 0x144d, .subdevice = 0xa809,
                              .class = 0x010802, .revision = 0x00, .port = SIM_PORT_ENDPOINT, .driver = "nvme",
                              .link_gen = 4, .link_width = 4, .flr = true, .msix = true, .bar0_size_mb = 1};
static const SimModel asm2142 = {.vendor = 0x1b21, .device = 0x2142, .subvendor = 0x1043, .subdevice = 0x8756,
                                 .class = 0x0c0330, .revision = 0x00, .port = SIM_PORT_ENDPOINT,
                                 .driver = "xhci_hcd", .link_gen = 3, .link_width = 2, .msix = true,
                                 .bar0_size_mb = 1};

/* QEMU q35 (the real-kernel rig's machine, tests/rig/run.sh): same IDs, addresses and topology, so a
 * scenario can run on the simulator and on the real kernel and be compared. */
static const SimModel q35_host = {.vendor = 0x8086, .device = 0x29c0, .subvendor = 0x1af4, .subdevice = 0x1100,
                                  .class = 0x060000, .port = SIM_PORT_HOST};
static const SimModel q35_rp = {.vendor = 0x1b36, .device = 0x000c, .subvendor = 0x1b36, .class = 0x060400,
                                .port = SIM_PORT_ROOT, .driver = "pcieport", .link_gen = 1, .link_width = 1};
static const SimModel q35_9p = {.vendor = 0x1af4, .device = 0x1009, .subvendor = 0x1af4, .subdevice = 0x0009,
                                .class = 0x000200, .port = SIM_PORT_RCIEP, .driver = "virtio-pci", .msix = true,
                                .bar0_size_mb = 1};
static const SimModel ich9_lpc = {.vendor = 0x8086, .device = 0x2918, .subvendor = 0x1af4, .subdevice = 0x1100,
                                  .class = 0x060100, .revision = 0x02, .port = SIM_PORT_RCIEP};
static const SimModel ich9_sata = {.vendor = 0x8086, .device = 0x2922, .subvendor = 0x1af4, .subdevice = 0x1100,
                                   .class = 0x010601, .revision = 0x02, .port = SIM_PORT_RCIEP};
static const SimModel ich9_smbus = {.vendor = 0x8086, .device = 0x2930, .subvendor = 0x1af4, .subdevice = 0x1100,
                                    .class = 0x0c0500, .revision = 0x02, .port = SIM_PORT_RCIEP};
static const SimModel qemu_vga = {.vendor = 0x1234, .device = 0x1111, .subvendor = 0x1af4, .subdevice = 0x1100,
                                  .class = 0x030000, .revision = 0x02, .port = SIM_PORT_PCI, .driver = "bochs-drm",
                                  .rom = true, .bar0_size_mb = 16};
static const SimModel qemu_bochs = {.vendor = 0x1234, .device = 0x1111, .subvendor = 0x1af4, .subdevice = 0x1100,
                                    .class = 0x038000, .revision = 0x02, .port = SIM_PORT_ENDPOINT,
                                    .driver = "bochs-drm", .link_gen = 1, .link_width = 1, .rom = true,
                                    .bar0_size_mb = 16};
static const SimModel qemu_nvme = {.vendor = 0x1b36, .device = 0x0010, .subvendor = 0x1af4, .subdevice = 0x1100,
                                   .class = 0x010802, .revision = 0x02, .port = SIM_PORT_ENDPOINT, .driver = "nvme",
                                   .link_gen = 1, .link_width = 1, .flr = true, .msix = true, .sriov_total = 4,
                                   .sriov_offset = 1, .sriov_stride = 1, .vf_device = 0x0010, .bar0_size_mb = 1,
                                   .vf_probe_fails = true};

/* The generated host's root complexes beyond the chipset's (Skylake-SP/Cascade Lake stacks) and its uncore:
 * the CHA registers, one function per core, eight to a slot on root buses of their own (bus 0xfe/0xff of a
 * real Xeon Scalable), which is what makes a two-socket server list hundreds of functions. */
static const SimModel skx_vtd = HOSTB(0x8086, 0x2024, 0x088000);
static const SimModel skx_cha = {.vendor = 0x8086, .device = 0x208d, .subvendor = 0x8086, .subdevice = 0x0000,
                                 .class = 0x088000, .revision = 0x07, .port = SIM_PORT_RCIEP};

/* ---- builders ------------------------------------------------------------------------------------- */

static int add(SimHost *h, const SimModel *m, int parent, unsigned bus, unsigned slot, unsigned func, int numa,
               unsigned flags) {
        if (h->error < 0)
                return -1;
        SimDev *n = realloc(h->devs, sizeof(SimDev) * (h->n + 1));
        if (!n) {
                h->error = -ENOMEM;
                return -1;
        }
        h->devs = n;
        h->devs[h->n] = (SimDev){
                .m = m,
                .bus = (uint8_t)bus,
                .slot = (uint8_t)slot,
                .func = (uint8_t)func,
                .parent = parent,
                .root_bus = parent >= 0 ? h->devs[parent].root_bus : (uint8_t)bus,
                .numa = numa,
                .flags = flags,
                .group = -1,
        };
        return (int)h->n++;
}

/* AMD root complex on root bus 'rb': host bridge, dummy host bridge, GPP root port (returned). */
static int amd_root(SimHost *h, unsigned rb, int numa, unsigned rp_slot, unsigned rp_func) {
        add(h, &amd_rc, -1, rb, 0, 0, numa, 0);
        add(h, &amd_dummy, -1, rb, rp_slot, 0, numa, 0);
        return add(h, &amd_gpp, -1, rb, rp_slot, rp_func, numa, SIM_ACS);
}

static void aspeed(SimHost *h, int rp, unsigned bus, int numa) {
        int b = add(h, &ast_bridge, rp, bus, 0, 0, numa, 0);
        add(h, &ast_vga, b, bus + 1, 0, 0, numa, SIM_BOOT_VGA);
}

static void build_dgx_a100(SimHost *h) {
        int rp = amd_root(h, 0x00, 0, 1, 1);
        aspeed(h, rp, 0x01, 0);
        static const struct {
                unsigned rb;
                int numa;
        } sw[] = {{0x20, 0}, {0x40, 0}, {0xa0, 1}, {0xc0, 1}};
        for (size_t s = 0; s < ELEMENTSOF(sw); s++) {
                unsigned rb = sw[s].rb;
                int numa = sw[s].numa;
                int port = amd_root(h, rb, numa, 1, 1);
                int up = add(h, &plx_up, port, rb + 1, 0, 0, numa, 0);
                static const SimModel *const eps[] = {&a100, &a100, &cx6, &nvme};
                for (unsigned i = 0; i < ELEMENTSOF(eps); i++) {
                        int down = add(h, &plx_down, up, rb + 2, i * 4, 0, numa, SIM_ACS);
                        add(h, eps[i], down, rb + 3 + i, 0, 0, numa, 0);
                }
        }
        /* NVSwitch baseboard: one switch with six downstream ports */
        int port = amd_root(h, 0xe0, 1, 1, 1);
        int up = add(h, &plx_up, port, 0xe1, 0, 0, 1, 0);
        for (unsigned i = 0; i < 6; i++) {
                int down = add(h, &plx_down, up, 0xe2, i * 4, 0, 1, SIM_ACS);
                add(h, &nvswitch, down, 0xe3 + i, 0, 0, 1, 0);
        }
}

/* DGX Station A100 80GB: one EPYC, four A100-SXM4-80GB each on its own root port, the DGX Display card
 * (console, with its audio function) between them in address order (NVML index 3, as on the real station). */
static void build_dgx_station(SimHost *h) {
        int rp = amd_root(h, 0x00, -1, 1, 1);
        add(h, &a100_80, rp, 0x01, 0, 0, -1, 0);
        int rp2 = add(h, &amd_gpp, -1, 0x00, 1, 2, -1, SIM_ACS);
        add(h, &nvme, rp2, 0x02, 0, 0, -1, 0);
        rp = amd_root(h, 0x40, -1, 1, 1);
        add(h, &a100_80, rp, 0x47, 0, 0, -1, 0);
        rp = amd_root(h, 0x80, -1, 1, 1);
        add(h, &a100_80, rp, 0x81, 0, 0, -1, 0);
        rp = amd_root(h, 0xc0, -1, 1, 1);
        add(h, &dgx_display, rp, 0xc1, 0, 0, -1, SIM_BOOT_VGA);
        add(h, &dgx_display_audio, rp, 0xc1, 0, 1, -1, 0);
        rp2 = add(h, &amd_gpp, -1, 0xc0, 1, 2, -1, SIM_ACS);
        add(h, &a100_80, rp2, 0xc2, 0, 0, -1, 0);
}

static void build_h100(SimHost *h) {
        add(h, &spr_vtd, -1, 0x00, 0, 0, 0, 0);
        int rp = add(h, &spr_rp, -1, 0x00, 0x1c, 0, 0, SIM_ACS);
        aspeed(h, rp, 0x01, 0);
        static const struct {
                unsigned rb;
                int numa;
                const SimModel *m;
                unsigned flags;
        } st[] = {
                {0x15, 0, &h100, SIM_VFS_AT_BOOT},
                {0x37, 0, &nvme, 0},
                {0x97, 1, &h100, SIM_VFS_AT_BOOT},
        };
        for (size_t i = 0; i < ELEMENTSOF(st); i++) {
                add(h, &spr_vtd, -1, st[i].rb, 0, 0, st[i].numa, 0);
                int p = add(h, &spr_rp, -1, st[i].rb, 1, 0, st[i].numa, SIM_ACS);
                add(h, st[i].m, p, st[i].rb + 1, 0, 0, st[i].numa, st[i].flags);
        }
}

static void c620_chipset(SimHost *h, int numa) {
        add(h, &skx_dmi, -1, 0x00, 0, 0, numa, 0);
        add(h, &c620_xhci, -1, 0x00, 0x14, 0, numa, 0);
        add(h, &c620_sata, -1, 0x00, 0x17, 0, numa, 0);
        int rp = add(h, &c620_rp, -1, 0x00, 0x1c, 0, numa, SIM_ACS);
        aspeed(h, rp, 0x01, numa);
        add(h, &c620_smbus, -1, 0x00, 0x1f, 4, numa, 0);
}

static void build_t4_grid(SimHost *h) {
        c620_chipset(h, 0);
        static const struct {
                unsigned rb;
                int numa;
        } st[] = {{0x3a, 0}, {0x5d, 0}, {0xae, 1}};
        for (size_t i = 0; i < ELEMENTSOF(st); i++) {
                int p = add(h, &skx_rp, -1, st[i].rb, 0, 0, st[i].numa, SIM_ACS);
                add(h, &t4, p, st[i].rb + 1, 0, 0, st[i].numa, 0);
        }
}

static void build_flex_sriov(SimHost *h) {
        add(h, &spr_vtd, -1, 0x00, 0, 0, 0, 0);
        int rp = add(h, &spr_rp, -1, 0x00, 0x1c, 0, 0, SIM_ACS);
        aspeed(h, rp, 0x01, 0);
        static const struct {
                unsigned rb;
                int numa;
        } st[] = {{0x15, 0}, {0x97, 1}};
        for (size_t i = 0; i < ELEMENTSOF(st); i++) {
                add(h, &spr_vtd, -1, st[i].rb, 0, 0, st[i].numa, 0);
                int p = add(h, &spr_rp, -1, st[i].rb, 1, 0, st[i].numa, SIM_ACS);
                add(h, &flex170, p, st[i].rb + 1, 0, 0, st[i].numa, 0);
        }
}

static void build_mi25(SimHost *h, const SimModel *gpu) {
        int rp = amd_root(h, 0x00, -1, 1, 1);
        aspeed(h, rp, 0x01, -1);
        add(h, &amd_gpp, -1, 0x00, 3, 1, -1, SIM_ACS);
        int gpp = (int)h->n - 1;
        add(h, &amd_dummy, -1, 0x00, 3, 0, -1, 0);
        add(h, gpu, gpp, 0x03, 0, 0, -1, 0);
        add(h, &amd_smbus, -1, 0x00, 0x14, 0, -1, 0);
        add(h, &amd_lpc, -1, 0x00, 0x14, 3, -1, 0);
}

static void build_mi25_sriov(SimHost *h) {
        build_mi25(h, &mi25);
}

static void build_mi25_amdgpu(SimHost *h) {
        build_mi25(h, &mi25_amdgpu);
}

static void cannon_lake_pch(SimHost *h) {
        add(h, &cnl_xhci, -1, 0x00, 0x14, 0, -1, 0);
        add(h, &cnl_sata, -1, 0x00, 0x17, 0, -1, 0);
        add(h, &cnl_lpc, -1, 0x00, 0x1f, 0, -1, 0);
        add(h, &cnl_hda, -1, 0x00, 0x1f, 3, -1, 0);
        add(h, &cnl_smbus, -1, 0x00, 0x1f, 4, -1, 0);
}

static void build_gvt_g(SimHost *h) {
        add(h, &cfl_host, -1, 0x00, 0, 0, -1, 0);
        add(h, &cfl_igpu, -1, 0x00, 0x02, 0, -1, SIM_BOOT_VGA);
        cannon_lake_pch(h);
        int rp = add(h, &cnl_rp1, -1, 0x00, 0x1d, 0, -1, 0);
        add(h, &nvme, rp, 0x01, 0, 0, -1, 0);
}

static void build_workstation(SimHost *h) {
        add(h, &cfl_host, -1, 0x00, 0, 0, -1, 0);
        int peg = add(h, &cfl_peg, -1, 0x00, 0x01, 0, -1, SIM_ACS);
        add(h, &rtx3080, peg, 0x01, 0, 0, -1, SIM_BOOT_VGA);
        add(h, &rtx3080_audio, peg, 0x01, 0, 1, -1, 0);
        cannon_lake_pch(h);
        /* PCH root ports without ACS: the kernel puts them (functions of one slot) in one group */
        int rp1 = add(h, &cnl_rp1, -1, 0x00, 0x1c, 0, -1, 0);
        int rp5 = add(h, &cnl_rp5, -1, 0x00, 0x1c, 4, -1, 0);
        add(h, &gtx1660s, rp1, 0x02, 0, 0, -1, 0);
        add(h, &gtx1660s_audio, rp1, 0x02, 0, 1, -1, 0);
        add(h, &asm2142, rp5, 0x03, 0, 0, -1, 0);
}

static void build_no_iommu(SimHost *h) {
        c620_chipset(h, -1);
        int p = add(h, &skx_rp, -1, 0x3a, 0, 0, -1, SIM_ACS);
        add(h, &rtx6000, p, 0x3b, 0, 0, -1, 0);
        add(h, &rtx6000_audio, p, 0x3b, 0, 1, -1, 0);
}

/* "generated": a Cascade Lake two-socket server of the size asked for (gen_devices PCI functions, gen_gpus
 * A100s), for the scaling benchmark. The chipset as on t4-grid, then one stack (root bus) per eight GPUs,
 * each GPU on a root port of its own (ACS, a group each), with an NVMe drive and a ConnectX-6 on ports of
 * the stack when the size leaves room, the stacks alternating between the sockets; every function left goes
 * to the uncore buses (eight functions a slot, 32 slots a bus). Refused (-EINVAL) when the size cannot hold
 * the GPUs, -ERANGE when it would need more than 256 buses. */
static void build_generated(SimHost *h) {
        size_t want = h->gen_devices;
        unsigned gpus = h->gen_gpus, stacks = (gpus + 7) / 8, bus = 0x03;
        c620_chipset(h, 0);
        size_t need = h->n + stacks + 2 * (size_t)gpus;
        if (gpus == 0 || want < need) {
                h->error = h->error ?: -EINVAL;
                return;
        }
        bool extras = want - need >= 4 * (size_t)stacks;
        /* the buses, counted before anything is added: a root bus per stack, one per GPU and extra, then the
         * uncore's, 256 functions each */
        size_t left = want - need - (extras ? 4 * (size_t)stacks : 0);
        if (bus + stacks + gpus + (extras ? 2 * (size_t)stacks : 0) + (left + 255) / 256 > 0x100) {
                h->error = h->error ?: -ERANGE;
                return;
        }
        for (unsigned s = 0, g = 0; s < stacks; s++) {
                int numa = (int)(s % 2);
                unsigned rb = bus++, slot = 1;
                add(h, &skx_vtd, -1, rb, 0, 0, numa, 0);
                for (unsigned i = 0; i < 8 && g < gpus; i++, g++) {
                        int p = add(h, &skx_rp, -1, rb, slot++, 0, numa, SIM_ACS);
                        add(h, &a100, p, bus++, 0, 0, numa, 0);
                }
                if (extras) {
                        int p = add(h, &skx_rp, -1, rb, slot++, 0, numa, SIM_ACS);
                        add(h, &nvme, p, bus++, 0, 0, numa, 0);
                        p = add(h, &skx_rp, -1, rb, slot++, 0, numa, SIM_ACS);
                        add(h, &cx6, p, bus++, 0, 0, numa, 0);
                }
        }
        for (unsigned i = 0; h->n < want && h->error >= 0; i++) {
                unsigned slot = i / 8 % 32, func = i % 8;
                if (func == 0 && slot == 0)
                        bus++;
                add(h, &skx_cha, -1, bus - 1, slot, func, (int)(i / 256 % 2), 0);
        }
}

static void build_qemu_q35(SimHost *h) {
        add(h, &q35_host, -1, 0x00, 0, 0, -1, 0);
        int rp1 = add(h, &q35_rp, -1, 0x00, 0x02, 0, -1, SIM_ACS);
        int rp2 = add(h, &q35_rp, -1, 0x00, 0x03, 0, -1, SIM_ACS);
        int rp3 = add(h, &q35_rp, -1, 0x00, 0x04, 0, -1, SIM_ACS);
        add(h, &q35_9p, -1, 0x00, 0x05, 0, -1, 0);
        int rp4 = add(h, &q35_rp, -1, 0x00, 0x07, 0, -1, SIM_ACS);
        add(h, &ich9_lpc, -1, 0x00, 0x1f, 0, -1, 0);
        add(h, &ich9_sata, -1, 0x00, 0x1f, 2, -1, 0);
        add(h, &ich9_smbus, -1, 0x00, 0x1f, 3, -1, 0);
        add(h, &qemu_vga, rp1, 0x01, 0, 0, -1, SIM_BOOT_VGA);
        add(h, &qemu_bochs, rp2, 0x02, 0, 0, -1, 0);
        add(h, &qemu_nvme, rp3, 0x03, 0, 0, -1, 0);
        /* the "GPU + audio" stand-in: a multifunction device without ACS, one group */
        add(h, &qemu_vga, rp4, 0x04, 0, 0, -1, 0);
        add(h, &qemu_bochs, rp4, 0x04, 0, 1, -1, 0);
}

/* ---- profiles ------------------------------------------------------------------------------------- */

static const char *const mods_mdev_nvidia[] = {"mdev", "vfio_mdev", "nvidia_vgpu_vfio", NULL};
static const char *const mods_mdev_gvtg[] = {"mdev", "vfio_mdev", "kvmgt", NULL};
static const char *const mods_none[] = {NULL};
static const char *const vgpu_mgr[] = {"nvidia-vgpu-mgr", NULL};

/* The T4 GRID host and its variants: the same machine, another vendor host side. */
#define T4_GRID(name, summary, daemons_, license_)                                                           \
        {                                                                                                      \
                .info = {name, summary}, .cpu_model = "Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz",             \
                .cpu_family = 6, .cpu_model_id = 85, .cpu_stepping = 7, .sockets = 2, .numa_nodes = 2,        \
                .iommu_fw = true, .iommu_kernel = true, .intr_remap = true, .vfio_loaded = true, .mdev = true, \
                .cmdline_extra = "intel_iommu=on iommu=pt", .extra_modules = mods_mdev_nvidia,                 \
                .daemons = daemons_, .license = license_, .build = build_t4_grid,                             \
        }

/* The MI25 host, with GIM or with amdgpu on the card. */
#define MI25(name, summary, build_)                                                                          \
        {                                                                                                      \
                .info = {name, summary}, .amd = true, .cpu_model = "AMD EPYC 7302 16-Core Processor",          \
                .cpu_family = 23, .cpu_model_id = 49, .cpu_stepping = 0, .sockets = 1, .numa_nodes = 1,       \
                .iommu_fw = true, .iommu_kernel = true, .intr_remap = true, .vfio_loaded = true,              \
                .cmdline_extra = "iommu=pt", .extra_modules = mods_none, .build = build_,                      \
        }

static const SimProfile profiles[] = {
        {
                .info = {"dgx-a100",
                         "AMD EPYC 7742 x2, 8x A100-SXM4-40GB behind PCIe switches, 6 NVSwitches, ConnectX-6, AMD-Vi"},
                .amd = true,
                .cpu_model = "AMD EPYC 7742 64-Core Processor",
                .cpu_family = 23, .cpu_model_id = 49, .cpu_stepping = 0,
                .sockets = 2, .numa_nodes = 2,
                .iommu_fw = true, .iommu_kernel = true, .intr_remap = true, .vfio_loaded = true,
                .cmdline_extra = "iommu=pt",
                .extra_modules = mods_none,
                .build = build_dgx_a100,
        },
        {
                .info = {"dgx-station",
                         "AMD EPYC 7742, DGX Station A100: 4x A100-SXM4-80GB and the DGX Display card (console, no MIG)"},
                .amd = true,
                .cpu_model = "AMD EPYC 7742 64-Core Processor",
                .cpu_family = 23, .cpu_model_id = 49, .cpu_stepping = 0,
                .sockets = 1, .numa_nodes = 1,
                .iommu_fw = true, .iommu_kernel = true, .intr_remap = true, .vfio_loaded = true,
                .cmdline_extra = "iommu=pt",
                .extra_modules = mods_none,
                .build = build_dgx_station,
        },
        {
                .info = {"h100",
                         "Intel Xeon (Sapphire Rapids) x2, 2x H100 80GB PCIe with SR-IOV VFs enabled (vGPU 17)"},
                .cpu_model = "Intel(R) Xeon(R) Platinum 8480+",
                .cpu_family = 6, .cpu_model_id = 143, .cpu_stepping = 8,
                .sockets = 2, .numa_nodes = 2,
                .iommu_fw = true, .iommu_kernel = true, .intr_remap = true, .vfio_loaded = true,
                .cmdline_extra = "intel_iommu=on iommu=pt",
                .extra_modules = mods_none,
                .daemons = vgpu_mgr,
                .license = SIM_LICENSE_TOKEN,
                .build = build_h100,
        },
        T4_GRID("t4-grid", "Intel Xeon (Cascade Lake) x2, 3x Tesla T4 with NVIDIA GRID mdev types, license server configured",
                vgpu_mgr, SIM_LICENSE_SERVER),
        T4_GRID("t4-nolicense", "t4-grid without a license server configured (no gridd.conf ServerAddress, no token)",
                vgpu_mgr, SIM_LICENSE_NONE),
        T4_GRID("t4-novgpumgr", "t4-grid with the vGPU host driver loaded but nvidia-vgpu-mgr not running", NULL,
                SIM_LICENSE_SERVER),
        {
                .info = {"flex-sriov",
                         "Intel Xeon (Sapphire Rapids), 2x Data Center GPU Flex 170 with SR-IOV (no VFs at boot)"},
                .cpu_model = "Intel(R) Xeon(R) Gold 6430",
                .cpu_family = 6, .cpu_model_id = 143, .cpu_stepping = 8,
                .sockets = 2, .numa_nodes = 2,
                .iommu_fw = true, .iommu_kernel = true, .intr_remap = true, .vfio_loaded = true,
                .cmdline_extra = "intel_iommu=on iommu=pt i915.enable_guc=3 i915.max_vfs=31",
                .extra_modules = mods_none,
                .build = build_flex_sriov,
        },
        MI25("mi25-sriov", "AMD EPYC 7302, Radeon Instinct MI25 MxGPU with SR-IOV through GIM (no VFs at boot)",
             build_mi25_sriov),
        MI25("mi25-amdgpu", "mi25-sriov with the MI25 on amdgpu instead of GIM (no MxGPU VFs possible)",
             build_mi25_amdgpu),
        {
                .info = {"gvt-g",
                         "Intel Core i7-9700 desktop, UHD Graphics 630 with GVT-g mdev types"},
                .cpu_model = "Intel(R) Core(TM) i7-9700 CPU @ 3.00GHz",
                .cpu_family = 6, .cpu_model_id = 158, .cpu_stepping = 13,
                .sockets = 1, .numa_nodes = 1,
                .iommu_fw = true, .iommu_kernel = true, .intr_remap = true, .vfio_loaded = true, .mdev = true,
                .cmdline_extra = "intel_iommu=on iommu=pt i915.enable_gvt=1",
                .extra_modules = mods_mdev_gvtg,
                .build = build_gvt_g,
        },
        {
                .info = {"workstation",
                         "Intel Core i9-9900K desktop, RTX 3080 (console) + GTX 1660 SUPER sharing a PCH group, vfio not loaded"},
                .cpu_model = "Intel(R) Core(TM) i9-9900K CPU @ 3.60GHz",
                .cpu_family = 6, .cpu_model_id = 158, .cpu_stepping = 12,
                .sockets = 1, .numa_nodes = 1,
                .iommu_fw = true, .iommu_kernel = true, .intr_remap = true, .vfio_loaded = false,
                .cmdline_extra = "intel_iommu=on iommu=pt",
                .extra_modules = mods_none,
                .build = build_workstation,
        },
        {
                .info = {"no-iommu",
                         "Intel Xeon (Cascade Lake), Quadro RTX 6000, VT-d off in firmware and kernel"},
                .cpu_model = "Intel(R) Xeon(R) Silver 4210R CPU @ 2.40GHz",
                .cpu_family = 6, .cpu_model_id = 85, .cpu_stepping = 7,
                .sockets = 1, .numa_nodes = 1,
                .iommu_fw = false, .iommu_kernel = false, .intr_remap = false, .vfio_loaded = true,
                .cmdline_extra = NULL,
                .extra_modules = mods_none,
                .build = build_no_iommu,
        },
        {
                .info = {"qemu-q35",
                         "QEMU q35 with an emulated VT-d: the real-kernel rig's machine (bochs displays, SR-IOV NVMe)"},
                .cpu_model = "QEMU TCG CPU version 2.5+",
                .cpu_family = 6, .cpu_model_id = 6, .cpu_stepping = 3,
                .sockets = 1, .numa_nodes = 1,
                .iommu_fw = true, .iommu_kernel = true, .intr_remap = true, .vfio_loaded = true, .mdev = true,
                .cmdline_extra = "intel_iommu=on iommu=pt",
                .extra_modules = mods_none,
                .build = build_qemu_q35,
        },
};

/* Not in the table: its size comes with its name ("generated:DEVICES:GPUS", sim_create_generated()), and
 * `sim profiles` and the golden tests cover the fixed hosts. */
static const SimProfile generated_profile = {
        .info = {SIM_GENERATED_PROFILE,
                 "Intel Xeon (Cascade Lake) x2 of any size: A100s on root ports, NVMe, ConnectX-6, uncore functions"},
        .cpu_model = "Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz",
        .cpu_family = 6, .cpu_model_id = 85, .cpu_stepping = 7,
        .sockets = 2, .numa_nodes = 2,
        .iommu_fw = true, .iommu_kernel = true, .intr_remap = true, .vfio_loaded = true,
        .cmdline_extra = "intel_iommu=on iommu=pt",
        .extra_modules = mods_none,
        .build = build_generated,
};

size_t sim_profile_count(void) {
        return ELEMENTSOF(profiles);
}

const SimProfileInfo *sim_profile_info(size_t i) {
        return i < ELEMENTSOF(profiles) ? &profiles[i].info : NULL;
}

/* "generated" alone, or with its size: "generated:DEVICES:GPUS" (ret_devices and ret_gpus get the size, the
 * defaults without one); NULL for any other name or a malformed size. */
static const SimProfile *generated_find(const char *name, unsigned *ret_devices, unsigned *ret_gpus) {
        size_t l = strlen(SIM_GENERATED_PROFILE);
        if (strncmp(name, SIM_GENERATED_PROFILE, l) != 0)
                return NULL;
        uint32_t devices = SIM_GENERATED_DEVICES, gpus = SIM_GENERATED_GPUS;
        if (name[l] == ':') {
                _cleanup_free_ char *copy = strdup(name + l + 1);
                char *colon = copy ? strchr(copy, ':') : NULL;
                if (!colon)
                        return NULL;
                *colon = '\0';
                if (parse_u32(copy, 10, &devices) < 0 || parse_u32(colon + 1, 10, &gpus) < 0)
                        return NULL;
        } else if (name[l] != '\0')
                return NULL;
        *ret_devices = devices;
        *ret_gpus = gpus;
        return &generated_profile;
}

const SimProfile *sim_profile_find(const char *name) {
        unsigned devices, gpus;
        if (generated_find(name, &devices, &gpus))
                return &generated_profile;
        for (size_t i = 0; i < ELEMENTSOF(profiles); i++)
                if (streq(profiles[i].info.name, name))
                        return &profiles[i];
        return NULL;
}

/* ---- host model ----------------------------------------------------------------------------------- */

SimHost *sim_host_free(SimHost *h) {
        if (!h)
                return NULL;
        for (size_t i = 0; i < h->n; i++)
                free(h->devs[i].path);
        free(h->devs);
        free(h);
        return NULL;
}

static int cmp_dev(const void *a, const void *b) {
        const SimDev *x = a, *y = b;
        unsigned ka = (unsigned)x->bus << 8 | (unsigned)x->slot << 3 | x->func;
        unsigned kb = (unsigned)y->bus << 8 | (unsigned)y->slot << 3 | y->func;
        return (ka > kb) - (ka < kb);
}

/* pci_acs_enabled() of the kernel, for REQ_ACS_FLAGS. */
static bool acs_enabled(const SimHost *h, const SimDev *d) {
        switch (d->m->port) {
        case SIM_PORT_HOST:
        case SIM_PORT_PCI:
        case SIM_PORT_PCIE_TO_PCI:
                return false;
        case SIM_PORT_ROOT:
        case SIM_PORT_DOWNSTREAM:
                return d->flags & SIM_ACS;
        default:
                if (d->multifunction && !d->is_vf)
                        return d->flags & SIM_ACS;
                return true;
        }
}

static bool acs_path(const SimHost *h, int i) {
        for (; i >= 0; i = h->devs[i].parent)
                if (!acs_enabled(h, &h->devs[i]))
                        return false;
        return true;
}

/* pci_device_group(): devices come in bus order, so every upstream bridge has its group already. */
static int compute_group(SimHost *h, size_t i, int *next) {
        int p = (int)i;
        for (int j = h->devs[i].parent; j >= 0; j = h->devs[j].parent) {
                if (acs_path(h, j))
                        break;
                p = j;
                if (h->devs[j].group >= 0)
                        return h->devs[j].group;
        }
        const SimDev *d = &h->devs[p];
        if (d->multifunction && !acs_enabled(h, d))
                for (size_t k = 0; k < h->n; k++) {
                        const SimDev *t = &h->devs[k];
                        if ((int)k == p || t->root_bus != d->root_bus || t->bus != d->bus || t->slot != d->slot ||
                            acs_enabled(h, t) || t->group < 0)
                                continue;
                        return t->group;
                }
        return (*next)++;
}

static int finish(SimHost *h) {
        /* Sort in bus order, remapping parent indexes. */
        size_t n = h->n;
        for (size_t i = 0; i < n; i++)
                h->devs[i].group = (int)i; /* temporarily: original index */
        qsort(h->devs, n, sizeof(SimDev), cmp_dev);
        _cleanup_free_ int *map = calloc(n ?: 1, sizeof(int));
        if (!map)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                map[h->devs[i].group] = (int)i;
        for (size_t i = 0; i < n; i++) {
                if (h->devs[i].parent >= 0)
                        h->devs[i].parent = map[h->devs[i].parent];
                h->devs[i].group = -1;
        }

        for (size_t i = 0; i < n; i++) {
                SimDev *d = &h->devs[i];
                snprintf(d->name, sizeof d->name, "0000:%02x:%02x.%x", d->bus, d->slot, d->func);
                for (size_t k = 0; k < n; k++)
                        if (k != i && h->devs[k].root_bus == d->root_bus && h->devs[k].bus == d->bus &&
                            h->devs[k].slot == d->slot)
                                d->multifunction = true;
                d->path = d->parent >= 0 ? strdup_printf("%s/%s", h->devs[d->parent].path, d->name)
                                         : strdup_printf("sys/devices/pci0000:%02x/%s", d->root_bus, d->name);
                if (!d->path)
                        return -ENOMEM;
        }
        /* Bridge bus numbers: secondary is the children's bus, subordinate the highest below. */
        for (size_t i = n; i-- > 0;) {
                SimDev *d = &h->devs[i];
                if (d->parent < 0)
                        continue;
                SimDev *p = &h->devs[d->parent];
                unsigned top = MAX(d->bus, d->subordinate);
                if (p->secondary == 0 || d->bus < p->secondary)
                        p->secondary = d->bus;
                p->subordinate = (uint8_t)MAX(p->subordinate, top);
        }
        if (h->profile->iommu_kernel) {
                int next = 0;
                for (size_t i = 0; i < n; i++)
                        h->devs[i].group = compute_group(h, i, &next);
        }
        return 0;
}

int sim_host_new(const char *profile, SimHost **ret) {
        const SimProfile *p = sim_profile_find(profile);
        if (!p)
                return -ENOENT;
        _cleanup_sim_host_free_ SimHost *h = calloc(1, sizeof *h);
        if (!h)
                return -ENOMEM;
        h->profile = p;
        if (p == &generated_profile)
                (void)generated_find(profile, &h->gen_devices, &h->gen_gpus);
        p->build(h);
        if (h->error < 0)
                return h->error;
        int r = finish(h);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(h);
        return 0;
}

int sim_host_load(const char *rootdir, SimHost **ret) {
        _cleanup_free_ char *p = strdup_printf("%s/" SIM_MARKER_DIR "/profile", rootdir);
        _cleanup_free_ char *name = NULL;
        if (!p)
                return -ENOMEM;
        int r = read_attr(p, &name);
        if (r < 0)
                return r;
        return sim_host_new(name, ret);
}

SimDev *sim_host_find(const SimHost *h, const char *bdf) {
        for (size_t i = 0; i < h->n; i++)
                if (streq(h->devs[i].name, bdf))
                        return &h->devs[i];
        return NULL;
}

bool sim_driver_matches(const SimHost *h, const char *driver, uint16_t vendor, uint16_t device) {
        for (size_t i = 0; i < h->n; i++) {
                const SimModel *m = h->devs[i].m;
                if (!m->driver || !streq(m->driver, driver) || m->vendor != vendor)
                        continue;
                if (m->device == device || (m->sriov_total > 0 && m->vf_device == device))
                        return true;
        }
        return false;
}

static const struct {
        const char *driver;
        const char *module;
} driver_modules[] = {
        {"nvidia", "nvidia"},
        {"ast", "ast"},
        {"mlx5_core", "mlx5_core"},
        {"nvme", "nvme"},
        {"xhci_hcd", "xhci_pci"},
        {"snd_hda_intel", "snd_hda_intel"},
        {"i915", "i915"},
        {"ahci", "ahci"},
        {"i801_smbus", "i2c_i801"},
        {"piix4_smbus", "i2c_piix4"},
        {"gim", "gim"},
        {"amdgpu", "amdgpu"},
        {"vfio-pci", "vfio_pci"},
        {"bochs-drm", "bochs"},
        {"virtio-pci", "virtio_pci"},
        {"pcieport", NULL},
};

const char *sim_module_driver(const char *module) {
        for (size_t i = 0; i < ELEMENTSOF(driver_modules); i++)
                if (driver_modules[i].module && streq(driver_modules[i].module, module))
                        return driver_modules[i].driver;
        return NULL;
}

const char *sim_driver_module(const char *driver) {
        for (size_t i = 0; i < ELEMENTSOF(driver_modules); i++)
                if (streq(driver_modules[i].driver, driver))
                        return driver_modules[i].module;
        return NULL;
}

int sim_vf_make(const SimDev *pf, unsigned i, SimDev *ret, SimModel *ret_model) {
        const SimModel *m = pf->m;
        if (i >= m->sriov_total)
                return -ERANGE;
        unsigned rid = ((unsigned)pf->bus << 8 | (unsigned)pf->slot << 3 | pf->func) + m->sriov_offset +
                       m->sriov_stride * i;
        if (rid >> 8 != pf->bus)
                return -ERANGE; /* the simulated PFs keep their VFs on their own bus */
        *ret_model = (SimModel){
                .vendor = m->vendor,
                .device = m->vf_device,
                .subvendor = m->subvendor,
                .subdevice = m->subdevice,
                .class = m->class,
                .revision = m->revision,
                .port = SIM_PORT_ENDPOINT,
                .driver = m->driver,
                .link_gen = m->link_gen,
                .link_width = m->link_width,
                .flr = true,
                .msix = true,
                .vgpu = m->vgpu == SIM_VGPU_NVIDIA_VF ? SIM_VGPU_NVIDIA_VF : SIM_VGPU_NONE,
                .types = m->types,
                .n_types = m->n_types,
                .bar0_size_mb = m->bar0_size_mb,
                .vf_probe_fails = m->vf_probe_fails,
        };
        *ret = (SimDev){
                .m = ret_model,
                .bus = pf->bus,
                .slot = (uint8_t)((rid >> 3) & 0x1f),
                .func = (uint8_t)(rid & 7),
                .parent = pf->parent,
                .root_bus = pf->root_bus,
                .numa = pf->numa,
                .is_vf = true,
                .group = -1,
        };
        snprintf(ret->name, sizeof ret->name, "0000:%02x:%02x.%x", ret->bus, ret->slot, ret->func);
        return 0;
}
