/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/shellvar.h"
#include "core/host/bootcfg.h"
#include "core/host/check.h"
#include "core/host/inventory.h"
#include "core/host/iommu.h"

static const char *const check_status_table[_CHECK_STATUS_MAX] = {
        [CHECK_PASS] = "pass",
        [CHECK_WARN] = "warn",
        [CHECK_FAIL] = "fail",
        [CHECK_SKIP] = "skip",
};

const char *check_status_to_string(CheckStatus s) {
        return s >= 0 && s < _CHECK_STATUS_MAX ? check_status_table[s] : NULL;
}

const char *iommu_kernel_args(CpuVendor v) {
        /* AMD's IOMMU is on by default; "amd_iommu=on" is not a real kernel value. */
        return v == CPU_VENDOR_AMD ? "iommu=pt" : v == CPU_VENDOR_ARM ? "" : "intel_iommu=on iommu=pt";
}

const char *iommu_kernel_off_args(CpuVendor v) {
        return v == CPU_VENDOR_AMD ? "amd_iommu=off iommu=off" : "intel_iommu=off iommu=off";
}

typedef struct Ctx {
        PciHost *host;
        Root *root;
        CheckReport *report;
        CpuVendor vendor;       /* the CPU's */
        CpuVendor iommu_vendor; /* the IOMMU's (iommu_vendor_read) */
        char *cpu_flags; /* flags line of the first CPU */
        char *cmdline;
        char *osrelease;
        BootConfig boot;
        bool have_boot;
        IommuState iommu; /* from the devices' iommu_group links (iommu_state) */
        size_t groups;
        bool capture;     /* a captured tree: a missing file is unknown, not absent */
} Ctx;

static int add(Ctx *c, const char *id, const char *title, const PciDevice *d, CheckStatus st, char *message,
               char *hint) {
        CheckReport *r = c->report;
        CheckResult *n = realloc(r->results, (r->n_results + 1) * sizeof *n);
        if (!n || !message) {
                free(message);
                free(hint);
                if (n)
                        r->results = n;
                return -ENOMEM;
        }
        r->results = n;
        n[r->n_results++] = (CheckResult){
                .id = id,
                .title = title,
                .device = d ? strdup(d->addr) : NULL,
                .status = st,
                .message = message,
                .hint = hint,
        };
        return 0;
}

#define S(...) strdup_printf(__VA_ARGS__)

/* The result add() just added (r == 0) gets a fix that is a command (check.h); devices and tail are taken. */
static int add_fix(Ctx *c, int r, GvHint fix, char **devices, char *tail) {
        if (r < 0 || !tail) {
                strv_free(devices);
                free(tail);
                return r < 0 ? r : -ENOMEM;
        }
        CheckResult *x = &c->report->results[c->report->n_results - 1];
        x->fix = fix;
        x->fix_devices = devices;
        x->hint_tail = tail;
        return 0;
}

static void read_cpuinfo(Ctx *c) {
        _cleanup_free_ char *p = root_path(c->root, "proc/cpuinfo");
        _cleanup_free_ char *text = NULL;
        if (!p || read_full(p, 4 * 1024 * 1024, (void **)&text, NULL) < 0)
                return;
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *colon = strchr(line, ':');
                if (!colon)
                        continue;
                *colon = '\0';
                const char *key = strip(line), *val = colon + 1;
                while (*val == ' ')
                        val++;
                if (streq(key, "vendor_id") && c->vendor == CPU_VENDOR_UNKNOWN)
                        c->vendor = streq(val, "GenuineIntel") ? CPU_VENDOR_INTEL :
                                    streq(val, "AuthenticAMD") || streq(val, "HygonGenuine") ? CPU_VENDOR_AMD :
                                                                                                CPU_VENDOR_UNKNOWN;
                else if (streq(key, "CPU implementer") && c->vendor == CPU_VENDOR_UNKNOWN)
                        c->vendor = CPU_VENDOR_ARM;
                else if ((streq(key, "flags") || streq(key, "Features")) && !c->cpu_flags)
                        c->cpu_flags = strdup(val);
        }
}

CpuVendor cpu_vendor_read(Root *root) {
        Ctx c = {.root = root};
        read_cpuinfo(&c);
        free(c.cpu_flags);
        return c.vendor;
}

CpuVendor iommu_vendor_read(Root *root, CpuVendor cpu) {
        static const struct {
                const char *table;
                CpuVendor vendor;
        } tables[] = {{"DMAR", CPU_VENDOR_INTEL}, {"IVRS", CPU_VENDOR_AMD}, {"IORT", CPU_VENDOR_ARM}};
        for (size_t i = 0; i < ELEMENTSOF(tables); i++)
                if (root_exists(root, "sys/firmware/acpi/tables/%s", tables[i].table))
                        return tables[i].vendor;
        return cpu;
}

static const char *vendor_virt_flag(CpuVendor v) {
        return v == CPU_VENDOR_AMD ? "svm" : "vmx";
}

static int check_cpu(Ctx *c) {
        if (!c->cpu_flags)
                return add(c, "cpu-virt", "CPU hardware virtualization", NULL, CHECK_SKIP,
                           S("proc/cpuinfo is not readable under %s", root_dir(c->root)), NULL);
        if (c->vendor == CPU_VENDOR_ARM)
                return add(c, "cpu-virt", "CPU hardware virtualization", NULL, CHECK_PASS,
                           S("ARM CPU: virtualization extensions are part of the architecture"), NULL);
        bool vmx = cmdline_has(c->cpu_flags, "vmx"), svm = cmdline_has(c->cpu_flags, "svm");
        if (vmx || svm)
                return add(c, "cpu-virt", "CPU hardware virtualization", NULL, CHECK_PASS,
                           S("%s (%s) present", vmx ? "VT-x" : "AMD-V", vmx ? "vmx" : "svm"), NULL);
        return add(c, "cpu-virt", "CPU hardware virtualization", NULL, CHECK_FAIL,
                   S("CPU flag '%s' missing: %s is off or not offered", vendor_virt_flag(c->vendor),
                     c->vendor == CPU_VENDOR_AMD ? "AMD-V (SVM)" : "VT-x"),
                   S("Enable %s in the firmware (BIOS/UEFI) setup; in a VM, enable nested virtualization.",
                     c->vendor == CPU_VENDOR_AMD ? "SVM Mode (AMD-V)" : "Intel Virtualization Technology (VT-x)"));
}

static int check_kvm(Ctx *c) {
        const char *mod = c->vendor == CPU_VENDOR_AMD ? "kvm_amd" : "kvm_intel";
        _cleanup_free_ char *p = root_path(c->root, "dev/kvm");
        if (!p)
                return -ENOMEM;
        if (c->capture && !root_exists(c->root, "dev"))
                return add(c, "kvm", "KVM device", NULL, CHECK_SKIP,
                           S("the capture has no dev/: cannot tell whether /dev/kvm exists"), NULL);
        struct stat st;
        if (stat(p, &st) < 0)
                return add(c, "kvm", "KVM device", NULL, CHECK_FAIL, S("/dev/kvm does not exist"),
                           S("Load the KVM module: modprobe %s (it fails when the CPU check fails); make it "
                             "permanent with: echo %s > /etc/modules-load.d/kvm.conf", mod, mod));
        if (root_real_nodes(c->root) && access(p, R_OK | W_OK) < 0)
                return add(c, "kvm", "KVM device", NULL, CHECK_WARN,
                           S("/dev/kvm exists but this user cannot open it read/write"),
                           S("Run as root or add the user to the 'kvm' group."));
        return add(c, "kvm", "KVM device", NULL, CHECK_PASS, S("/dev/kvm present"), NULL);
}

static const char *firmware_table(CpuVendor v) {
        return v == CPU_VENDOR_AMD ? "IVRS" : v == CPU_VENDOR_ARM ? "IORT" : "DMAR";
}

static int check_iommu_firmware(Ctx *c) {
        const char *tbl = firmware_table(c->iommu_vendor);
        const char *feature = c->iommu_vendor == CPU_VENDOR_AMD ? "AMD-Vi (IOMMU)" :
                              c->iommu_vendor == CPU_VENDOR_ARM ? "the SMMU" : "VT-d";
        _cleanup_free_ char *dir = root_path(c->root, "sys/firmware/acpi/tables");
        if (!dir)
                return -ENOMEM;
        if (root_exists(c->root, "sys/firmware/acpi/tables/%s", tbl))
                return add(c, "iommu-firmware", "IOMMU in firmware", NULL, CHECK_PASS,
                           S("ACPI %s table present: %s is enabled in firmware", tbl, feature), NULL);
        if (c->iommu == IOMMU_ON)
                return add(c, "iommu-firmware", "IOMMU in firmware", NULL, CHECK_PASS,
                           S("IOMMU active in the kernel, so firmware provides it"), NULL);
        _cleanup_strv_free_ char **l = NULL;
        if (dir_list(dir, &l) < 0)
                return add(c, "iommu-firmware", "IOMMU in firmware", NULL, CHECK_SKIP,
                           S("ACPI tables not readable (run as root, or the capture lacks them)"), NULL);
        return add(c, "iommu-firmware", "IOMMU in firmware", NULL, CHECK_FAIL,
                   S("no ACPI %s table: %s is disabled in firmware (or absent)", tbl, feature),
                   S("Enable %s in the firmware (BIOS/UEFI) setup.", feature));
}

static char *iommu_fix_hint(Ctx *c) {
        const char *args = iommu_kernel_args(c->iommu_vendor);
        const char *remove = iommu_kernel_off_args(c->iommu_vendor);
        if (!c->have_boot)
                return S("Add \"%s\" to the kernel command line and reboot.", args);
        const char *regen = boot_config_regen_command(&c->boot);
        if (!c->boot.grub_cmdline && !c->boot.kernel_cmdline && !c->boot.have_grub_file)
                return S("Add \"%s\" to the kernel command line of the boot loader (no /etc/default/grub or "
                         "/etc/kernel/cmdline found), reboot, and verify with: dmesg | grep -E \"DMAR|IOMMU\"",
                         args);
        if (c->boot.loader == BOOT_LOADER_SYSTEMD_BOOT) {
                _cleanup_free_ char *merged = cmdline_merge(c->boot.kernel_cmdline, args, remove);
                return S("Set /etc/kernel/cmdline to:\n  %s\nthen run: %s\nreboot, and verify with: "
                         "dmesg | grep -E \"DMAR|IOMMU\"\n(or: gpuvirt host iommu enable)",
                         strna(merged), regen);
        }
        _cleanup_free_ char *merged = cmdline_merge(c->boot.grub_cmdline, args, remove);
        return S("In /etc/default/grub set:\n  GRUB_CMDLINE_LINUX=\"%s\"\nthen run: %s\nreboot, and verify with: "
                 "dmesg | grep -E \"DMAR|IOMMU\"\n(or: gpuvirt host iommu enable)",
                 strna(merged), regen);
}

static int check_iommu_kernel(Ctx *c) {
        const char *id = "iommu-kernel", *title = "IOMMU enabled in the kernel";
        if (c->iommu == IOMMU_ON) {
                bool pt = cmdline_has(c->cmdline, "iommu=pt");
                return add(c, id, title, NULL, CHECK_PASS,
                           S("IOMMU active: %zu groups%s", c->groups,
                             pt ? ", passthrough mode for host DMA (iommu=pt)" : ""),
                           NULL);
        }
        if (c->iommu == IOMMU_UNKNOWN)
                return add(c, id, title, NULL, CHECK_SKIP,
                           S("the capture holds no device's iommu_group link and no sys/kernel/iommu_groups: cannot "
                             "tell"),
                           NULL);
        /* Off: the command line or the firmware explains why. Whether VT-d is on without intel_iommu=on
         * depends on the kernel's build (Debian 12's turns it on, the rig's boots showed): only a kernel
         * that left it off gets here with the table present. */
        _cleanup_free_ char *tables = root_path(c->root, "sys/firmware/acpi/tables");
        _cleanup_strv_free_ char **l = NULL;
        bool tables_readable = tables && dir_list(tables, &l) > 0;
        const char *why;
        if (cmdline_has(c->cmdline, "intel_iommu=off") || cmdline_has(c->cmdline, "amd_iommu=off") ||
            cmdline_has(c->cmdline, "iommu=off"))
                why = "the kernel command line turns it off";
        else if (tables_readable && !root_exists(c->root, "sys/firmware/acpi/tables/%s", firmware_table(c->iommu_vendor)))
                why = "the firmware does not provide it";
        else if (c->iommu_vendor == CPU_VENDOR_INTEL && !cmdline_has(c->cmdline, "intel_iommu=on"))
                why = "intel_iommu=on is not on the kernel command line, and this kernel does not turn VT-d on "
                      "without it";
        else
                why = "no IOMMU unit registered although the command line asks for it";
        return add(c, id, title, NULL, CHECK_FAIL, S("no IOMMU groups: %s", why), iommu_fix_hint(c));
}

static int check_interrupt_remapping(Ctx *c) {
        const char *id = "interrupt-remapping", *title = "Interrupt remapping";
        if (c->iommu != IOMMU_ON)
                return add(c, id, title, NULL, CHECK_SKIP,
                           S(c->iommu == IOMMU_UNKNOWN ? "the capture cannot tell whether the IOMMU is on"
                                                       : "needs the IOMMU on first"),
                           NULL);
        _cleanup_free_ char *p = root_path(c->root, "proc/interrupts");
        _cleanup_free_ char *text = NULL;
        if (!p)
                return -ENOMEM;
        if (read_full(p, 8 * 1024 * 1024, (void **)&text, NULL) < 0)
                return add(c, id, title, NULL, CHECK_SKIP, S("proc/interrupts not readable"), NULL);
        if (strstr(text, "IR-"))
                return add(c, id, title, NULL, CHECK_PASS, S("interrupts are remapped (IR-PCI-MSI)"), NULL);
        _cleanup_free_ char *unsafe = NULL;
        if (root_read_attr(c->root, &unsafe, "sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts") == 0 &&
            (streq(unsafe, "Y") || streq(unsafe, "1")))
                return add(c, id, title, NULL, CHECK_WARN,
                           S("no interrupt remapping; vfio allows unsafe interrupts (allow_unsafe_interrupts=Y)"),
                           S("Enable interrupt remapping (x2APIC, VT-d/AMD-Vi IR) in firmware: a guest can "
                             "inject interrupts into the host without it."));
        return add(c, id, title, NULL, CHECK_FAIL,
                   S("no interrupt remapping: vfio_iommu_type1 will refuse to attach groups (EPERM)"),
                   S("Enable x2APIC and interrupt remapping in firmware. Last resort (unsafe): "
                     "echo \"options vfio_iommu_type1 allow_unsafe_interrupts=1\" > /etc/modprobe.d/vfio-unsafe.conf"));
}

typedef enum ModState { MOD_LOADED, MOD_AVAILABLE, MOD_MISSING } ModState;

/* "vfio-pci" and "vfio_pci" are the same module. */
static bool modname_eq(const char *a, size_t al, const char *b) {
        if (al != strlen(b))
                return false;
        for (size_t i = 0; i < al; i++) {
                char x = a[i] == '-' ? '_' : a[i], y = b[i] == '-' ? '_' : b[i];
                if (x != y)
                        return false;
        }
        return true;
}

/* Look for ".../name.ko[.xz|.zst|.gz]" at the start of lines of a modules.dep/modules.builtin text. */
static bool modlist_has(const char *text, const char *name) {
        for (const char *line = text; line && *line;) {
                const char *end = strchrnul(line, '\n');
                const char *colon = memchr(line, ':', (size_t)(end - line));
                const char *pend = colon ? colon : end;
                const char *slash = line;
                for (const char *q = line; q < pend; q++)
                        if (*q == '/')
                                slash = q + 1;
                const char *ko = NULL;
                for (const char *q = slash; q + 3 <= pend; q++)
                        if (strncmp(q, ".ko", 3) == 0) {
                                ko = q;
                                break;
                        }
                if (ko && modname_eq(slash, (size_t)(ko - slash), name))
                        return true;
                line = *end ? end + 1 : NULL;
        }
        return false;
}

static ModState module_state(Ctx *c, const char *name, const char *dep, const char *builtin) {
        if (root_exists(c->root, "sys/module/%s", name))
                return MOD_LOADED;
        if (builtin && modlist_has(builtin, name))
                return MOD_LOADED;
        if (dep && modlist_has(dep, name))
                return MOD_AVAILABLE;
        return MOD_MISSING;
}

static int check_vfio_modules(Ctx *c) {
        const char *id = "vfio-modules", *title = "VFIO modules";
        static const char *const mods[] = {"vfio", "vfio_pci", "vfio_iommu_type1"};
        _cleanup_free_ char *dep = NULL, *builtin = NULL;
        if (c->osrelease) {
                _cleanup_free_ char *dp = root_path(c->root, "lib/modules/%s/modules.dep", c->osrelease);
                _cleanup_free_ char *bp = root_path(c->root, "lib/modules/%s/modules.builtin", c->osrelease);
                if (dp)
                        (void)read_full(dp, 16 * 1024 * 1024, (void **)&dep, NULL);
                if (bp)
                        (void)read_full(bp, 16 * 1024 * 1024, (void **)&builtin, NULL);
        }
        char loaded[128] = "", avail[128] = "", missing[128] = "";
        for (size_t i = 0; i < ELEMENTSOF(mods); i++) {
                ModState s = module_state(c, mods[i], dep, builtin);
                char *buf = s == MOD_LOADED ? loaded : s == MOD_AVAILABLE ? avail : missing;
                size_t l = strlen(buf);
                snprintf(buf + l, 128 - l, "%s%s", l ? ", " : "", mods[i]);
        }
        if (!*avail && !*missing)
                return add(c, id, title, NULL, CHECK_PASS, S("loaded: %s", loaded), NULL);
        if (c->capture && !root_exists(c->root, "sys/module") && !dep && !builtin)
                return add(c, id, title, NULL, CHECK_SKIP,
                           S("the capture holds neither sys/module nor lib/modules/%s: cannot tell", strna(c->osrelease)),
                           NULL);
        if (!*missing)
                return add(c, id, title, NULL, CHECK_WARN,
                           S("not loaded: %s (available for kernel %s)", avail, strna(c->osrelease)),
                           S("Load now: modprobe vfio-pci\nLoad at boot: echo vfio-pci > "
                             "/etc/modules-load.d/vfio-pci.conf\nTo bind GPUs before their host driver, add to "
                             "/etc/modprobe.d/vfio.conf: softdep nvidia pre: vfio-pci (likewise nouveau, "
                             "amdgpu, snd_hda_intel)"));
        return add(c, id, title, NULL, CHECK_FAIL,
                   S("missing from kernel %s: %s%s%s", strna(c->osrelease), missing, *avail ? "; not loaded: " : "",
                     avail),
                   S("Install the kernel's modules (Debian: linux-image-%s) or build the kernel with "
                     "CONFIG_VFIO_PCI; then: echo vfio-pci > /etc/modules-load.d/vfio-pci.conf",
                     strna(c->osrelease)));
}

static int check_hugepages(Ctx *c) {
        _cleanup_free_ char *p = root_path(c->root, "proc/meminfo");
        _cleanup_free_ char *text = NULL;
        if (!p || read_full(p, 1024 * 1024, (void **)&text, NULL) < 0)
                return add(c, "hugepages", "Huge pages for guest memory", NULL, CHECK_SKIP,
                           S("proc/meminfo not readable"), NULL);
        const char *hp = strstr(text, "HugePages_Total:");
        long total = hp ? strtol(hp + strlen("HugePages_Total:"), NULL, 10) : 0;
        if (total > 0)
                return add(c, "hugepages", "Huge pages for guest memory", NULL, CHECK_PASS,
                           S("%ld huge pages reserved", total), NULL);
        return add(c, "hugepages", "Huge pages for guest memory", NULL, CHECK_PASS,
                   S("no huge pages reserved (optional)"),
                   S("Large GPU guests pin all their memory; 1 GiB pages cut IOMMU mapping time: add "
                     "\"default_hugepagesz=1G hugepagesz=1G hugepages=N\" to the kernel command line."));
}

/* ---- per-device checks ---- */

static int check_group(Ctx *c, const PciDevice *d) {
        const char *id = "group-isolation", *title = "IOMMU group isolation";
        if (d->iommu_group < 0)
                return add(c, id, title, d, CHECK_SKIP,
                           S(c->iommu == IOMMU_UNKNOWN ? "no iommu_group link in the capture: cannot tell"
                             : c->iommu == IOMMU_ON    ? "no IOMMU group (the IOMMU does not cover this device)"
                                                       : "no IOMMU group (IOMMU off)"),
                           NULL);
        _cleanup_free_ GroupMember *m = NULL;
        size_t n = 0;
        int r = iommu_group_members(c->host, d, &m, &n);
        if (r < 0)
                return r;
        char own[512] = "", foreign[512] = "";
        _cleanup_strv_free_ char **along = NULL;
        size_t n_along = 0;
        for (size_t i = 0; i < n; i++) {
                char *buf = m[i].kind == GROUP_MEMBER_FOREIGN ? foreign : m[i].kind == GROUP_MEMBER_BRIDGE ? NULL : own;
                if (!buf)
                        continue;
                size_t l = strlen(buf);
                if (m[i].kind == GROUP_MEMBER_FOREIGN) {
                        if (strv_push(&along, &n_along, strdup(m[i].device->addr)) < 0)
                                return -ENOMEM;
                        snprintf(buf + l, 512 - l, "%s%s (class %04x%s%s)", l ? ", " : "", m[i].device->addr,
                                 pci_device_class(m[i].device), m[i].device->driver ? ", driver " : "",
                                 m[i].device->driver ?: "");
                } else
                        snprintf(buf + l, 512 - l, "%s%s", l ? ", " : "", m[i].device->addr);
        }
        size_t bridges = group_members_count(m, n, GROUP_MEMBER_BRIDGE);
        if (!*foreign)
                return add(c, id, title, d, CHECK_PASS,
                           S("group %d holds only this card's functions (%s)%s", d->iommu_group, own,
                             bridges ? " and bridges" : ""),
                           NULL);
        r = add(c, id, title, d, CHECK_FAIL,
                S("group %d also holds %s: they go to the VM together or not at all", d->iommu_group, foreign),
                S("Move the card to a slot whose root port has ACS (CPU-attached), or pass those devices "
                  "through with it"));
        return add_fix(c, r, GV_HINT_TAKE_GROUP, TAKE_PTR(along),
                       S(". pcie_acs_override= splits the group without real isolation (unsafe)."));
}

static int check_acs(Ctx *c, const PciDevice *d) {
        const char *id = "acs", *title = "ACS on the upstream path";
        if (!d->parent)
                return add(c, id, title, d, CHECK_PASS, S("on the root bus (integrated): ACS not required"), NULL);
        char missing[512] = "";
        int checked = 0;
        for (const char *pa = d->parent; pa;) {
                PciDevice *p = pci_host_find(c->host, pa);
                if (!p)
                        break;
                _cleanup_free_ uint8_t *cfg = NULL;
                size_t sz = 0;
                if (pci_device_read_config(c->host, p, &cfg, &sz) < 0 || sz < 256)
                        return add(c, id, title, d, CHECK_SKIP,
                                   S("extended config space of %s not readable (run as root)", p->addr), NULL);
                unsigned exp = pci_config_find_cap(cfg, sz, PCI_CAP_ID_EXP);
                unsigned type = exp ? (cfg[exp + 2] >> 4) & 0xf : 0xff;
                if (exp && (type == PCI_EXP_TYPE_ROOT_PORT || type == PCI_EXP_TYPE_DOWNSTREAM)) {
                        checked++;
                        unsigned acs = pci_config_find_ext_cap(cfg, sz, PCI_EXT_CAP_ID_ACS);
                        unsigned ctrl = acs ? (unsigned)(cfg[acs + 6] | cfg[acs + 7] << 8) : 0;
                        if ((ctrl & PCI_ACS_CTRL_REQUIRED) != PCI_ACS_CTRL_REQUIRED) {
                                size_t l = strlen(missing);
                                snprintf(missing + l, sizeof missing - l, "%s%s (%s %s)", l ? ", " : "", p->addr,
                                         type == PCI_EXP_TYPE_ROOT_PORT ? "root port" : "downstream port",
                                         acs ? "ACS not enabled" : "no ACS capability");
                        }
                }
                pa = p->parent;
        }
        if (!*missing)
                return add(c, id, title, d, CHECK_PASS,
                           checked ? S("ACS enabled on every root and downstream port above it (%d)", checked) :
                                     S("no PCIe ports on the path"),
                           NULL);
        return add(c, id, title, d, CHECK_WARN,
                   S("ports without ACS on the path: %s; peer-to-peer traffic below them bypasses the IOMMU",
                     missing),
                   S("Use a slot below ports with ACS, or enable ACS in firmware where offered."));
}

static int check_boot_vga(Ctx *c, const PciDevice *d) {
        const char *id = "boot-vga", *title = "Boot VGA";
        if (d->boot_vga < 0 && pci_device_class(d) == PCI_CLASS_DISPLAY_VGA && c->capture)
                return add(c, id, title, d, CHECK_SKIP, S("the capture has no boot_vga attribute: cannot tell"), NULL);
        if (d->boot_vga == 1)
                return add_fix(c,
                               add(c, id, title, d, CHECK_WARN,
                                   S("this GPU is the boot VGA (host console); passthrough takes the console away"),
                                   S("Select another GPU (or the integrated one) as primary display in firmware; "
                                     "gpuvirt refuses it")),
                               GV_HINT_FORCE, NULL, S("."));
        return add(c, id, title, d, CHECK_PASS,
                   S(d->boot_vga == 0 ? "not the boot VGA" : "not a VGA-class device (no console)"), NULL);
}

static int check_rom(Ctx *c, const PciDevice *d) {
        const char *id = "option-rom", *title = "GPU option ROM";
        _cleanup_free_ char *p = root_path(c->root, "%s/rom", d->syspath);
        struct stat st;
        if (!p)
                return -ENOMEM;
        if (stat(p, &st) == 0 && st.st_size > 0)
                return add(c, id, title, d, CHECK_PASS, S("option ROM exposed (%lld KiB)", (long long)st.st_size / 1024),
                           NULL);
        if (c->capture && !d->has_rom)
                return add(c, id, title, d, CHECK_SKIP, S("the capture has no rom attribute: cannot tell"), NULL);
        return add(c, id, title, d, CHECK_WARN, S("no option ROM exposed by the device"),
                   S("UEFI guests may need the GPU's ROM: dump it on another host and give it to the VM "
                     "(<rom file='/usr/share/vgabios/gpu.rom'/> in the hostdev)."));
}

static bool is_consumer_nvidia(const char *name, const PciDevice *d) {
        return d->vendor == PCI_VENDOR_NVIDIA && name &&
               (strstr(name, "GeForce") || strstr(name, "TITAN") || strstr(name, "Titan"));
}

static int check_consumer(Ctx *c, const PciDevice *d, PciNames *names) {
        _cleanup_free_ char *nm = pci_names_device(names, d->vendor, d->device);
        if (!is_consumer_nvidia(nm, d))
                return 0; /* only reported where it applies */
        return add(c, "consumer-gpu", "Consumer NVIDIA GPU", d, CHECK_WARN,
                   S("GeForce GPU: NVIDIA drivers before R465 stop with Error 43 when they detect a VM"),
                   S("Hide the hypervisor in the domain XML: <features><kvm><hidden state='on'/></kvm>"
                     "<hyperv><vendor_id state='on' value='0123456789ab'/></hyperv></features>, or use a "
                     "current driver."));
}

/* A device that no longer answers: the one thing to report about it (its other attributes are stale). */
static int check_alive(Ctx *c, const PciDevice *d) {
        if (!pci_device_is_dead(d))
                return 0; /* only reported where it applies */
        _cleanup_free_ char *why = pci_device_dead_reason(d);
        return add(c, "bus", "Device answers on the bus", d, CHECK_FAIL, S("%s %s", d->addr, strna(why)),
                   pci_device_dead_hint(d));
}

/* ---- the vendor host side of each mode (linux-gpu-virt.md sections 5-7) ---- */

/* Whether a process of that name runs (proc/PID/comm), as the daemons' own units start them. */
/* Whether a process of that name runs: 1 or 0; -ENODATA when the root holds no process at all (a capture
 * keeps none), so it cannot tell. */
static int process_running(Ctx *c, const char *name) {
        _cleanup_free_ char *dir = root_path(c->root, "proc");
        _cleanup_strv_free_ char **pids = NULL;
        if (!dir || dir_list(dir, &pids) < 0)
                return c->capture ? -ENODATA : 0;
        bool any = false;
        for (char **p = pids; *p; p++) {
                if (strspn(*p, "0123456789") != strlen(*p))
                        continue;
                any = true;
                _cleanup_free_ char *comm = NULL;
                if (root_read_attr(c->root, &comm, "proc/%s/comm", *p) >= 0 && streq(comm, name))
                        return 1;
        }
        return any || !c->capture ? 0 : -ENODATA;
}

/* A kernel parameter's value: from the module's parameters in sysfs (the value in force), else from the
 * command line ("i915.enable_gvt=1"); NULL when neither sets it. */
static char *module_param(Ctx *c, const char *module, const char *param) {
        char *v = NULL;
        if (root_read_attr(c->root, &v, "sys/module/%s/parameters/%s", module, param) >= 0)
                return v;
        _cleanup_free_ char *key = S("%s.%s=", module, param);
        const char *s = key && c->cmdline ? strstr(c->cmdline, key) : NULL;
        if (!s || (s != c->cmdline && s[-1] != ' '))
                return NULL;
        s += strlen(key);
        return strndup(s, strcspn(s, " \n"));
}

static bool param_true(const char *v) {
        return v && (streq(v, "1") || streq(v, "Y") || streq(v, "y"));
}

/* NVIDIA's vGPU host driver drives this GPU: it offers mdev types (GRID, Maxwell to Ampere), or its VFs
 * offer vendor vGPU types (Ada, Hopper, vGPU 17+), or it has SR-IOV (Ampere and later) and the vGPU
 * manager runs: its VFs are not enabled yet. */
static bool nvidia_vgpu_host(Ctx *c, const PciDevice *d) {
        const PciHost *h = c->host;
        if (d->vendor != PCI_VENDOR_NVIDIA || d->physfn)
                return false;
        if (d->has_mdev_types || d->has_vendor_vgpu)
                return true;
        if (d->sriov_totalvfs > 0 && d->sriov_numvfs <= 0)
                return process_running(c, "nvidia-vgpu-mgr") != 0; /* unknown: reported as such */
        for (size_t i = 0; i < h->n_devices; i++)
                if (h->devices[i].physfn && streq(h->devices[i].physfn, d->addr) && h->devices[i].has_vendor_vgpu)
                        return true;
        return false;
}

static int check_nvidia_vgpu(Ctx *c, const PciDevice *d) {
        const char *id = "nvidia-vgpu-host", *title = "NVIDIA vGPU host driver";
        if (!nvidia_vgpu_host(c, d))
                return 0; /* only reported where the vGPU host driver is installed */
        int running = process_running(c, "nvidia-vgpu-mgr");
        if (running < 0)
                return add(c, id, title, d, CHECK_SKIP,
                           S("the capture holds no process list: cannot tell whether nvidia-vgpu-mgr runs"), NULL);
        if (!running)
                return add(c, id, title, d, CHECK_FAIL,
                           S("the vGPU host driver is loaded but nvidia-vgpu-mgr does not run: no vGPU can start"),
                           S("Start the vGPU manager shipped with the host driver: systemctl enable --now "
                             "nvidia-vgpu-mgr.service (its log: journalctl -u nvidia-vgpu-mgr)."));
        if (d->sriov_totalvfs > 0 && d->sriov_numvfs <= 0)
                return add(c, id, title, d, CHECK_WARN,
                           S("nvidia-vgpu-mgr runs, but no VF is enabled: on Ampere and later vGPUs live on SR-IOV VFs"),
                           S("Enable the VFs: /usr/lib/nvidia/sriov-manage -e %s (at every boot: the "
                             "nvidia-sriov.service of the vGPU host driver).", d->addr));
        if (d->sriov_totalvfs > 0)
                return add(c, id, title, d, CHECK_PASS,
                           S("nvidia-vgpu-mgr runs, %d of %d VFs enabled (sriov-manage)", d->sriov_numvfs,
                             d->sriov_totalvfs),
                           NULL);
        return add(c, id, title, d, CHECK_PASS, S("vGPU host driver loaded, nvidia-vgpu-mgr runs"), NULL);
}

static int check_amd_mxgpu(Ctx *c, const PciDevice *d) {
        const char *id = "mxgpu-host", *title = "AMD MxGPU host driver (GIM)";
        if (d->vendor != PCI_VENDOR_AMD || d->physfn || d->sriov_totalvfs <= 0)
                return 0;
        if (d->driver && streq(d->driver, "gim"))
                return add(c, id, title, d, CHECK_PASS, S("GIM drives the PF: MxGPU VFs can be enabled"), NULL);
        return add(c, id, title, d, d->driver ? CHECK_FAIL : CHECK_WARN,
                   S("the PF is on %s: MxGPU SR-IOV needs AMD's GIM module on it, and amdgpu kept off",
                     d->driver ?: "no driver"),
                   S("Install AMD's GIM module (MxGPU-Virtualization), keep amdgpu off the PF with "
                     "'softdep amdgpu pre: gim' in /etc/modprobe.d/gim.conf ('blacklist amdgpu' when no other "
                     "AMD GPU needs it), then: modprobe -r amdgpu && modprobe gim"));
}

static int check_intel_gvtg(Ctx *c, const PciDevice *d) {
        const char *id = "gvt-g-host", *title = "Intel GVT-g host side";
        /* the integrated GPU (00:02.0) on i915; GVT-g covers Broadwell to Comet Lake */
        if (d->vendor != PCI_VENDOR_INTEL || !d->driver || !streq(d->driver, "i915") || d->sriov_totalvfs > 0 ||
            d->a.bus != 0 || d->a.slot != 2 || d->a.func != 0)
                return 0;
        _cleanup_free_ char *gvt = module_param(c, "i915", "enable_gvt");
        bool kvmgt = root_exists(c->root, "sys/module/kvmgt");
        if (param_true(gvt) && kvmgt)
                return add(c, id, title, d, CHECK_PASS, S("i915.enable_gvt=1 and kvmgt loaded"), NULL);
        return add(c, id, title, d, CHECK_FAIL,
                   S("%s%s%s", param_true(gvt) ? "" : "i915.enable_gvt is not set",
                     !param_true(gvt) && !kvmgt ? ", " : "", kvmgt ? "" : "kvmgt is not loaded"),
                   S("Add i915.enable_gvt=1 to the kernel command line and load kvmgt at boot: echo kvmgt > "
                     "/etc/modules-load.d/kvmgt.conf (GVT-g exists for Broadwell to Comet Lake only)."));
}

static int check_intel_sriov(Ctx *c, const PciDevice *d) {
        const char *id = "intel-sriov-host", *title = "Intel GPU SR-IOV VF support";
        if (d->vendor != PCI_VENDOR_INTEL || d->physfn || d->sriov_totalvfs <= 0 || !d->driver ||
            (!streq(d->driver, "i915") && !streq(d->driver, "xe")))
                return 0;
        _cleanup_free_ char *vfs = module_param(c, d->driver, "max_vfs");
        unsigned n = 0;
        if (vfs && sscanf(vfs, "%u", &n) == 1 && n > 0)
                return add(c, id, title, d, CHECK_PASS, S("%s.max_vfs=%u: the driver creates VFs", d->driver, n),
                           NULL);
        return add(c, id, title, d, CHECK_FAIL,
                   S("%s.max_vfs is not set: %s does not create VFs on this GPU", d->driver, d->driver),
                   S("Add %s.max_vfs=%d%s to the kernel command line (Intel's driver for the Data Center GPU "
                     "Flex series), then set the VF count: gpuvirt sriov set %s N",
                     d->driver, d->sriov_totalvfs, streq(d->driver, "i915") ? " i915.enable_guc=3" : "", d->addr));
}

/* The GRID license: a license server (gridd.conf ServerAddress) or an NLS client configuration token. */
static int check_vgpu_license(Ctx *c) {
        const char *id = "vgpu-license", *title = "NVIDIA vGPU license server";
        if (c->capture && !root_exists(c->root, "etc/nvidia"))
                return add(c, id, title, NULL, CHECK_SKIP,
                           S("the capture holds no etc/nvidia: cannot tell whether a license server is configured"),
                           NULL);
        _cleanup_free_ char *tokdir = root_path(c->root, "etc/nvidia/ClientConfigToken");
        _cleanup_strv_free_ char **toks = NULL;
        if (tokdir && dir_list(tokdir, &toks) >= 0)
                for (char **t = toks; *t; t++)
                        if (endswith(*t, ".tok"))
                                return add(c, id, title, NULL, CHECK_PASS,
                                           S("client configuration token /etc/nvidia/ClientConfigToken/%s", *t),
                                           NULL);
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ char *server = NULL;
        if (root_read_file(c->root, 64 * 1024, &text, "etc/nvidia/gridd.conf") >= 0) {
                ShAssignment *a = NULL;
                size_t n = 0;
                if (sh_parse(text, strlen(text), "ServerAddress", &a, &n, NULL) >= 0) {
                        server = sh_value("ServerAddress", a, n);
                        sh_assignments_free(a, n);
                }
        }
        if (server && *server)
                return add(c, id, title, NULL, CHECK_PASS, S("license server %s (/etc/nvidia/gridd.conf)", server),
                           NULL);
        return add(c, id, title, NULL, CHECK_WARN,
                   S("no license server configured: unlicensed vGPUs run restricted"),
                   S("Set ServerAddress= in /etc/nvidia/gridd.conf (a legacy license server), or put the client "
                     "configuration token of the NVIDIA License System in /etc/nvidia/ClientConfigToken/; "
                     "each guest needs the same (FeatureType in its gridd.conf)."));
}

/* Tools that patch the vGPU driver's limits (vgpu_unlock, vgpu_unlock-rs): where they install. */
static int check_vgpu_unlock(Ctx *c) {
        static const char *const paths[] = {
                "etc/vgpu_unlock",
                "opt/vgpu_unlock",
                "opt/vgpu_unlock-rs",
                "etc/systemd/system/nvidia-vgpud.service.d/vgpu_unlock.conf",
                "etc/systemd/system/nvidia-vgpu-mgr.service.d/vgpu_unlock.conf",
        };
        for (size_t i = 0; i < ELEMENTSOF(paths); i++)
                if (root_exists(c->root, "%s", paths[i]))
                        return add(c, "vgpu-unlock", "vGPU limit patches", NULL, CHECK_WARN,
                                   S("vgpu_unlock found (/%s): patched vGPU limits are unsupported and against "
                                     "NVIDIA's vGPU software license terms", paths[i]),
                                   S("Remove it (/%s and the service drop-ins that preload it) and use a GPU and "
                                     "vGPU type NVIDIA supports.", paths[i]));
        return 0; /* only reported where found */
}

static int check_vendor_host(Ctx *c) {
        bool nvidia_vgpu = false;
        for (size_t i = 0; i < c->host->n_devices && !nvidia_vgpu; i++)
                nvidia_vgpu = nvidia_vgpu_host(c, &c->host->devices[i]);
        int r = check_vgpu_unlock(c);
        if (r >= 0 && nvidia_vgpu)
                r = check_vgpu_license(c);
        return r;
}

static int check_device(Ctx *c, const PciDevice *d, PciNames *names) {
        int r;
        if (pci_device_is_dead(d))
                return check_alive(c, d);
        if ((r = check_group(c, d)) < 0 || (r = check_acs(c, d)) < 0 || (r = check_boot_vga(c, d)) < 0 ||
            (r = check_rom(c, d)) < 0 || (r = check_consumer(c, d, names)) < 0 ||
            (r = check_nvidia_vgpu(c, d)) < 0 || (r = check_amd_mxgpu(c, d)) < 0 ||
            (r = check_intel_gvtg(c, d)) < 0 || (r = check_intel_sriov(c, d)) < 0)
                return r;
        return 0;
}

CheckReport *check_report_free(CheckReport *r) {
        if (!r)
                return NULL;
        for (size_t i = 0; i < r->n_results; i++) {
                free(r->results[i].device);
                free(r->results[i].message);
                free(r->results[i].hint);
                strv_free(r->results[i].fix_devices);
                free(r->results[i].hint_tail);
        }
        free(r->results);
        free(r);
        return NULL;
}

int check_run(PciHost *h, const PciDevice *device, CheckReport **ret) {
        _cleanup_check_report_free_ CheckReport *rep = calloc(1, sizeof *rep);
        if (!rep)
                return -ENOMEM;
        Ctx c = {.host = h, .root = h->root, .report = rep};
        read_cpuinfo(&c);
        c.iommu_vendor = iommu_vendor_read(c.root, c.vendor);
        (void)root_read_attr(c.root, &c.cmdline, "proc/cmdline");
        (void)root_read_attr(c.root, &c.osrelease, "proc/sys/kernel/osrelease");
        c.have_boot = boot_config_read(c.root, &c.boot) == 0;
        c.iommu = iommu_state(h, &c.groups);
        c.capture = root_missing_is_unknown(c.root);

        _cleanup_pci_names_free_ PciNames *names = NULL;
        (void)pci_names_new(&names);

        int r;
        if ((r = check_cpu(&c)) < 0 || (r = check_kvm(&c)) < 0 || (r = check_iommu_firmware(&c)) < 0 ||
            (r = check_iommu_kernel(&c)) < 0 || (r = check_interrupt_remapping(&c)) < 0 ||
            (r = check_vfio_modules(&c)) < 0 || (r = check_hugepages(&c)) < 0 || (r = check_vendor_host(&c)) < 0)
                goto out;

        size_t gpus = 0;
        for (size_t i = 0; i < h->n_devices; i++) {
                const PciDevice *d = &h->devices[i];
                if (device ? d != device : !inventory_is_gpu(d, false))
                        continue;
                gpus++;
                if ((r = check_device(&c, d, names)) < 0)
                        goto out;
        }
        if (gpus == 0) {
                static const char *const ids[][2] = {
                        {"group-isolation", "IOMMU group isolation"},
                        {"acs", "ACS on the upstream path"},
                        {"boot-vga", "Boot VGA"},
                        {"option-rom", "GPU option ROM"},
                };
                for (size_t i = 0; i < ELEMENTSOF(ids); i++)
                        if ((r = add(&c, ids[i][0], ids[i][1], NULL, CHECK_SKIP,
                                     S("no GPU (display-class device) on this host"), NULL)) < 0)
                                goto out;
        }
        r = 0;
        *ret = TAKE_PTR(rep);
out:
        free(c.cpu_flags);
        free(c.cmdline);
        free(c.osrelease);
        if (c.have_boot)
                boot_config_done(&c.boot);
        return r;
}

bool check_report_failed(const CheckReport *r) {
        for (size_t i = 0; i < r->n_results; i++)
                if (r->results[i].status == CHECK_FAIL)
                        return true;
        return false;
}

int check_hint_text(const CheckResult *x, CheckFixText fix_text, char **ret) {
        if (!x->hint) {
                *ret = NULL;
                return 0;
        }
        _cleanup_free_ char *cmd = x->fix != GV_HINT_NONE && fix_text ? fix_text(x) : strdup("");
        char *t = cmd ? strdup_printf("%s%s%s", x->hint, cmd, x->hint_tail ?: "") : NULL;
        if (!t)
                return -ENOMEM;
        *ret = t;
        return 0;
}

json_object *check_report_json(const CheckReport *r, CheckFixText fix_text) {
        _cleanup_json_ json_object *a = json_object_new_array();
        if (!a)
                return NULL;
        for (size_t i = 0; i < r->n_results; i++) {
                const CheckResult *x = &r->results[i];
                _cleanup_free_ char *hint = NULL;
                if (check_hint_text(x, fix_text, &hint) < 0)
                        return NULL;
                json_object *o = json_object_new_object();
                if (json_append(a, o) < 0 || json_add_string(o, "id", x->id) < 0 ||
                    json_add_string(o, "device", x->device) < 0 ||
                    json_add_string(o, "status", check_status_to_string(x->status)) < 0 ||
                    json_add_string(o, "message", x->message) < 0 || json_add_string(o, "hint", hint) < 0)
                        return NULL;
        }
        return TAKE_PTR(a);
}
