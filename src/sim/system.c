/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The non-PCI part of a simulated host: procfs, /etc, ACPI tables, /lib/modules. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "sim-internal.h"

static const char intel_flags[] =
        "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse "
        "sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc art arch_perfmon pebs bts rep_good nopl "
        "xtopology nonstop_tsc cpuid aperfmperf pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 ssse3 sdbg "
        "fma cx16 xtpr pdcm pcid dca sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c "
        "rdrand lahf_lm abm 3dnowprefetch cpuid_fault epb cat_l3 cdp_l3 invpcid_single intel_ppin ssbd mba ibrs "
        "ibpb stibp ibrs_enhanced tpr_shadow vnmi flexpriority ept vpid ept_ad fsgsbase tsc_adjust bmi1 hle "
        "avx2 smep bmi2 erms invpcid cqm mpx rdt_a avx512f avx512dq rdseed adx smap clflushopt clwb intel_pt "
        "avx512cd avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves cqm_llc cqm_occup_llc cqm_mbm_total "
        "cqm_mbm_local dtherm ida arat pln pts pku ospke avx512_vnni md_clear flush_l1d arch_capabilities";
static const char amd_flags[] =
        "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht "
        "syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl nonstop_tsc cpuid "
        "extd_apicid aperfmperf rapl pni pclmulqdq monitor ssse3 fma cx16 sse4_1 sse4_2 x2apic movbe popcnt aes "
        "xsave avx f16c rdrand lahf_lm cmp_legacy svm extapic cr8_legacy abm sse4a misalignsse 3dnowprefetch "
        "osvw ibs skinit wdt tce topoext perfctr_core perfctr_nb bpext perfctr_llc mwaitx cpb cat_l3 cdp_l3 "
        "hw_pstate ssbd mba ibrs ibpb stibp vmmcall fsgsbase bmi1 avx2 smep bmi2 cqm rdt_a rdseed adx smap "
        "clflushopt clwb sha_ni xsaveopt xsavec xgetbv1 xsaves cqm_llc cqm_occup_llc cqm_mbm_total "
        "cqm_mbm_local clzero irperf xsaveerptr rdpru wbnoinvd amd_ppin arat npt lbrv svm_lock nrip_save "
        "tsc_scale vmcb_clean flushbyasid decodeassists pausefilter pfthreshold avic v_vmsave_vmload vgif "
        "v_spec_ctrl umip rdpid overflow_recov succor smca sme sev sev_es";

static int write_cpuinfo(const char *proc, const SimProfile *p) {
        size_t size = 0;
        _cleanup_free_ char *text = NULL;
        _cleanup_fclose_ FILE *f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        unsigned per_socket = SIM_NR_CPUS / MAX(p->sockets, 1u);
        for (unsigned cpu = 0; cpu < SIM_NR_CPUS; cpu++) {
                fprintf(f,
                        "processor\t: %u\n"
                        "vendor_id\t: %s\n"
                        "cpu family\t: %u\n"
                        "model\t\t: %u\n"
                        "model name\t: %s\n"
                        "stepping\t: %u\n"
                        "microcode\t: %s\n"
                        "cpu MHz\t\t: %s\n"
                        "cache size\t: %s\n"
                        "physical id\t: %u\n"
                        "siblings\t: %u\n"
                        "core id\t\t: %u\n"
                        "cpu cores\t: %u\n"
                        "apicid\t\t: %u\n"
                        "initial apicid\t: %u\n"
                        "fpu\t\t: yes\n"
                        "fpu_exception\t: yes\n"
                        "cpuid level\t: %u\n"
                        "wp\t\t: yes\n"
                        "flags\t\t: %s\n"
                        "bugs\t\t: %s\n"
                        "bogomips\t: %s\n"
                        "clflush size\t: 64\n"
                        "cache_alignment\t: 64\n"
                        "address sizes\t: %s\n"
                        "power management:%s\n\n",
                        cpu, p->amd ? "AuthenticAMD" : "GenuineIntel", p->cpu_family, p->cpu_model_id,
                        p->cpu_model, p->cpu_stepping, p->amd ? "0x830104d" : "0x2b000461",
                        p->amd ? "2250.000" : "2000.000", p->amd ? "512 KB" : "107520 KB", cpu / per_socket,
                        per_socket, cpu % per_socket, per_socket, cpu * 2, cpu * 2, p->amd ? 16u : 32u,
                        p->amd ? amd_flags : intel_flags,
                        p->amd ? "sysret_ss_attrs spectre_v1 spectre_v2 spec_store_bypass retbleed smt_rsb"
                               : "spectre_v1 spectre_v2 spec_store_bypass swapgs eibrs_pbrsb",
                        p->amd ? "4500.00" : "4000.00",
                        p->amd ? "43 bits physical, 48 bits virtual" : "46 bits physical, 57 bits virtual",
                        p->amd ? " ts ttp tm hwpstate cpb eff_freq_ro [13] [14]" : "");
        }
        if (fclose(TAKE_PTR(f)) != 0)
                return -ENOMEM;
        return sim_attr(proc, "cpuinfo", 0444, "%s", text);
}

static int write_interrupts(const char *proc, const SimHost *h) {
        const SimProfile *p = h->profile;
        const char *msi = p->intr_remap ? "IR-PCI-MSI" : "PCI-MSI";
        const char *io = p->intr_remap ? "IR-IO-APIC" : "IO-APIC";
        size_t size = 0;
        _cleanup_free_ char *text = NULL;
        _cleanup_fclose_ FILE *f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        fputs("           ", f);
        for (unsigned c = 0; c < SIM_NR_CPUS; c++)
                fprintf(f, "CPU%-8u", c);
        fputc('\n', f);
        fprintf(f, "  0:%11u", 35);
        for (unsigned c = 1; c < SIM_NR_CPUS; c++)
                fprintf(f, "%11u", 0);
        fprintf(f, "  %s    2-edge      timer\n", io);
        fprintf(f, "  9:%11u", 0);
        for (unsigned c = 1; c < SIM_NR_CPUS; c++)
                fprintf(f, "%11u", 0);
        fprintf(f, "  %s    9-fasteoi   acpi\n", io);
        if (p->iommu_kernel) {
                fprintf(f, " 24:%11u", 0);
                for (unsigned c = 1; c < SIM_NR_CPUS; c++)
                        fprintf(f, "%11u", 0);
                fprintf(f, "  %s    0-edge      %s\n", p->amd ? "PCI-MSI" : "DMAR-MSI", p->amd ? "AMD-Vi" : "dmar0");
        }
        unsigned irq = 120, lines = 0;
        for (size_t i = 0; i < h->n && lines < 12; i++) {
                const SimDev *d = &h->devs[i];
                if (!d->m->msix || !d->m->driver)
                        continue;
                fprintf(f, "%3u:", irq);
                for (unsigned c = 0; c < SIM_NR_CPUS; c++)
                        fprintf(f, "%11u", c == lines % SIM_NR_CPUS ? 1024u + 17u * lines : 0u);
                unsigned hwirq = (unsigned)d->bus << 19 | (unsigned)d->slot << 14 | (unsigned)d->func << 11;
                fprintf(f, "  %s-%s %u-edge      %s\n", msi, d->m->msix ? "X" : "", hwirq,
                        streq(d->m->driver, "nvidia") ? "nvidia" : d->name);
                irq++;
                lines++;
        }
        fprintf(f, "NMI:");
        for (unsigned c = 0; c < SIM_NR_CPUS; c++)
                fprintf(f, "%11u", 12);
        fprintf(f, "   Non-maskable interrupts\n");
        if (fclose(TAKE_PTR(f)) != 0)
                return -ENOMEM;
        return sim_attr(proc, "interrupts", 0444, "%s", text);
}

static const char *const kmods[] = {
        "kernel/drivers/vfio/vfio.ko: kernel/virt/lib/irqbypass.ko",
        "kernel/drivers/vfio/vfio_iommu_type1.ko: kernel/drivers/vfio/vfio.ko",
        "kernel/drivers/vfio/pci/vfio-pci-core.ko: kernel/drivers/vfio/vfio.ko kernel/virt/lib/irqbypass.ko",
        "kernel/drivers/vfio/pci/vfio-pci.ko: kernel/drivers/vfio/pci/vfio-pci-core.ko kernel/drivers/vfio/vfio.ko "
        "kernel/virt/lib/irqbypass.ko",
        "kernel/drivers/vfio/mdev/mdev.ko: kernel/drivers/vfio/vfio.ko",
        "kernel/virt/lib/irqbypass.ko:",
        "kernel/arch/x86/kvm/kvm.ko: kernel/virt/lib/irqbypass.ko",
        "kernel/arch/x86/kvm/kvm-intel.ko: kernel/arch/x86/kvm/kvm.ko kernel/virt/lib/irqbypass.ko",
        "kernel/arch/x86/kvm/kvm-amd.ko: kernel/arch/x86/kvm/kvm.ko kernel/virt/lib/irqbypass.ko",
        "kernel/drivers/gpu/drm/i915/i915.ko:",
        "kernel/drivers/gpu/drm/ast/ast.ko:",
        "kernel/drivers/gpu/drm/nouveau/nouveau.ko:",
        "kernel/drivers/gpu/drm/amd/amdgpu/amdgpu.ko:",
        "kernel/drivers/nvme/host/nvme.ko: kernel/drivers/nvme/host/nvme-core.ko",
        "kernel/drivers/nvme/host/nvme-core.ko:",
        "kernel/drivers/net/ethernet/mellanox/mlx5/core/mlx5_core.ko:",
        "kernel/drivers/usb/host/xhci-pci.ko:",
        "kernel/drivers/ata/ahci.ko:",
        "kernel/drivers/i2c/busses/i2c-i801.ko:",
        "kernel/drivers/i2c/busses/i2c-piix4.ko:",
        "kernel/sound/pci/hda/snd-hda-intel.ko:",
};

static int write_lib_modules(const char *root, const SimHost *h) {
        _cleanup_free_ char *dir = strdup_printf("%s/lib/modules/" SIM_OSRELEASE, root);
        if (!dir)
                return -ENOMEM;
        int r = mkdir_p(dir, 0755);
        if (r < 0)
                return r;
        size_t size = 0;
        _cleanup_free_ char *text = NULL;
        _cleanup_fclose_ FILE *f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        bool nvidia = false, gim = false;
        for (size_t i = 0; i < h->n; i++) {
                nvidia = nvidia || (h->devs[i].m->driver && streq(h->devs[i].m->driver, "nvidia"));
                gim = gim || (h->devs[i].m->driver && streq(h->devs[i].m->driver, "gim"));
        }
        for (size_t i = 0; i < ELEMENTSOF(kmods); i++) {
                fprintf(f, "%s\n", kmods[i]);
                const char *colon = strchr(kmods[i], ':');
                _cleanup_free_ char *ko = strdup_printf("%s/%.*s", dir, (int)(colon - kmods[i]), kmods[i]);
                if (!ko)
                        return -ENOMEM;
                char *slash = strrchr(ko, '/');
                *slash = '\0';
                r = mkdir_p(ko, 0755);
                *slash = '/';
                r = r ?: sim_file(ko, 0644, "", 0);
                if (r < 0)
                        return r;
        }
        if (nvidia)
                fprintf(f, "updates/dkms/nvidia.ko:\nupdates/dkms/nvidia-vgpu-vfio.ko: kernel/drivers/vfio/mdev/mdev.ko "
                           "kernel/drivers/vfio/vfio.ko\n");
        if (gim)
                fprintf(f, "updates/dkms/gim.ko:\n");
        if (fclose(TAKE_PTR(f)) != 0)
                return -ENOMEM;
        r = sim_attr(dir, "modules.dep", 0644, "%s", text);
        r = r ?: sim_attr(dir, "modules.builtin", 0644,
                          "kernel/drivers/pci/pcieport.ko\nkernel/drivers/iommu/intel/iommu.ko\n"
                          "kernel/drivers/iommu/amd/iommu.ko\nkernel/drivers/pci/pci-stub.ko\n");
        if (r < 0)
                return r;
        static const char *const extra[] = {"updates/dkms/nvidia.ko", "updates/dkms/nvidia-vgpu-vfio.ko",
                                            "updates/dkms/gim.ko"};
        for (size_t i = 0; i < ELEMENTSOF(extra); i++) {
                if ((i < 2 && !nvidia) || (i == 2 && !gim))
                        continue;
                _cleanup_free_ char *d = strdup_printf("%s/updates/dkms", dir);
                _cleanup_free_ char *ko = strdup_printf("%s/%s", dir, extra[i]);
                if (!d || !ko)
                        return -ENOMEM;
                r = mkdir_p(d, 0755);
                r = r ?: sim_file(ko, 0644, "", 0);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ACPI table: the 36-byte SDT header (signature, length, revision, checksum, OEM ids), then zeros. */
static int write_acpi_table(const char *dir, const char *sig, size_t len) {
        _cleanup_free_ uint8_t *t = calloc(1, len);
        _cleanup_free_ char *p = strdup_printf("%s/%s", dir, sig);
        if (!t || !p)
                return -ENOMEM;
        memcpy(t, sig, 4);
        t[4] = (uint8_t)len;
        t[5] = (uint8_t)(len >> 8);
        t[8] = 1;
        memcpy(t + 10, "SIMHST", 6);
        memcpy(t + 16, "GPUVIRT ", 8);
        uint8_t sum = 0;
        for (size_t i = 0; i < len; i++)
                sum = (uint8_t)(sum + t[i]);
        t[9] = (uint8_t)(0x100 - sum);
        return sim_file(p, 0400, t, len);
}

static int write_acpi(const char *root, const SimProfile *p) {
        _cleanup_free_ char *dir = strdup_printf("%s/sys/firmware/acpi/tables", root);
        if (!dir)
                return -ENOMEM;
        int r = mkdir_p(dir, 0755);
        r = r ?: write_acpi_table(dir, "APIC", 0x2de);
        r = r ?: write_acpi_table(dir, "FACP", 0x114);
        r = r ?: write_acpi_table(dir, "MCFG", 0x3c);
        r = r ?: write_acpi_table(dir, "HPET", 0x38);
        r = r ?: write_acpi_table(dir, "DSDT", 0x200);
        if (r >= 0 && p->numa_nodes > 1)
                r = write_acpi_table(dir, "SRAT", 0x1d0);
        if (r >= 0 && p->iommu_fw)
                r = write_acpi_table(dir, p->amd ? "IVRS" : "DMAR", p->amd ? 0x1d0 : 0xa8);
        return r;
}


/* The profile's daemons as processes: proc/PID/{comm,cmdline}, from PID 2101 up. */
static int write_daemons(const char *proc, const SimProfile *p) {
        unsigned pid = 2101;
        for (const char *const *d = p->daemons; d && *d; d++, pid++) {
                _cleanup_free_ char *dir = strdup_printf("%s/%u", proc, pid);
                if (!dir)
                        return -ENOMEM;
                int r = mkdir_p(dir, 0755);
                r = r ?: sim_attr(dir, "comm", 0444, "%s\n", *d);
                r = r ?: sim_attr(dir, "cmdline", 0444, "/usr/bin/%s", *d);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* NVIDIA's licensing client configuration, as the vGPU software's installer leaves it. */
static int write_license(const char *etc, const SimProfile *p) {
        if (p->license == SIM_LICENSE_NONE)
                return 0;
        _cleanup_free_ char *dir = strdup_printf("%s/nvidia", etc);
        _cleanup_free_ char *tok = strdup_printf("%s/nvidia/ClientConfigToken", etc);
        if (!dir || !tok)
                return -ENOMEM;
        int r = mkdir_p(dir, 0755);
        if (r >= 0 && p->license == SIM_LICENSE_TOKEN) {
                r = mkdir_p(tok, 0755);
                r = r ?: sim_attr(tok, "client_configuration_token_12-01-2026-09-00-00.tok", 0644, "%s\n",
                                  "eyJhbGciOiJSUzI1NiJ9.simulated.token");
        }
        return r ?: sim_attr(dir, "gridd.conf", 0644,
                             "# /etc/nvidia/gridd.conf - Configuration file for NVIDIA Grid Daemon\n\n"
                             "# Description: Set License Server Address\n%s\n\n"
                             "# Description: Set Feature to be enabled\nFeatureType=0\n",
                             p->license == SIM_LICENSE_SERVER ? "ServerAddress=license.example.com"
                                                              : "#ServerAddress=");
}

int sim_system_write(const char *root, const SimHost *h) {
        const SimProfile *p = h->profile;
        _cleanup_free_ char *proc = strdup_printf("%s/proc", root);
        _cleanup_free_ char *kern = strdup_printf("%s/proc/sys/kernel", root);
        _cleanup_free_ char *etc = strdup_printf("%s/etc", root);
        _cleanup_free_ char *grub = strdup_printf("%s/etc/default", root);
        if (!proc || !kern || !etc || !grub)
                return -ENOMEM;
        int r = mkdir_p(kern, 0755);
        r = r ?: mkdir_p(grub, 0755);
        if (r < 0)
                return r;
        const char *extra = p->cmdline_extra;
        r = r ?: sim_attr(proc, "cmdline", 0444,
                          "BOOT_IMAGE=/boot/vmlinuz-" SIM_OSRELEASE
                          " root=UUID=3f1c2b9e-8a4d-4f6e-9c1b-2d7e5a6f8b90 ro quiet%s%s\n",
                          extra ? " " : "", extra ?: "");
        r = r ?: sim_attr(kern, "osrelease", 0444, SIM_OSRELEASE "\n");
        r = r ?: sim_attr(proc, "version", 0444,
                          "Linux version " SIM_OSRELEASE " (debian-kernel@lists.debian.org) (gcc-12 (Debian "
                          "12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC "
                          "Debian 6.1.115-1 (2024-11-01)\n");
        unsigned long long mem_kb = p->numa_nodes > 1 ? 1056000000ull : 65700000ull;
        r = r ?: sim_attr(proc, "meminfo", 0444,
                          "MemTotal:       %llu kB\nMemFree:        %llu kB\nMemAvailable:   %llu kB\n"
                          "Buffers:          204812 kB\nCached:          3120448 kB\nSwapCached:            0 kB\n"
                          "SwapTotal:       999420 kB\nSwapFree:        999420 kB\n"
                          "AnonHugePages:     210944 kB\nHugePages_Total:       0\nHugePages_Free:        0\n"
                          "HugePages_Rsvd:        0\nHugePages_Surp:        0\nHugepagesize:       2048 kB\n"
                          "Hugetlb:               0 kB\n",
                          mem_kb, mem_kb * 9 / 10, mem_kb * 19 / 20);
        r = r ?: sim_attr(etc, "os-release", 0644,
                          "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n"
                          "VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n"
                          "HOME_URL=\"https://www.debian.org/\"\nSUPPORT_URL=\"https://www.debian.org/support\"\n"
                          "BUG_REPORT_URL=\"https://bugs.debian.org/\"\n");
        r = r ?: sim_attr(grub, "grub", 0644,
                          "# If you change this file, run 'update-grub' afterwards to update\n"
                          "# /boot/grub/grub.cfg.\n# For full documentation of the options in this file, see:\n"
                          "#   info -f grub -n 'Simple configuration'\n\n"
                          "GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\n"
                          "GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n"
                          "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"%s\"\n",
                          extra ?: "");
        if (r < 0)
                return r;
        r = write_daemons(proc, p);
        r = r ?: write_license(etc, p);
        r = r ?: write_cpuinfo(proc, p);
        r = r ?: write_interrupts(proc, h);
        r = r ?: write_lib_modules(root, h);
        r = r ?: write_acpi(root, p);
        return r;
}
