/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "cli/common.h"
#include "cli/output.h"
#include "config.h"
#include "core/host/check.h"
#include "core/host/inventory.h"
#include "core/host/iommu.h"
#include "core/host/names.h"
#include "core/host/pci.h"
#include "core/host/root.h"
#include "core/mig/nvml.h"
#include "sim/sim.h"

/* ---- sim ---- */

static int sim_profiles(void) {
        if (arg.json) {
                _cleanup_json_ json_object *a = json_object_new_array();
                for (size_t i = 0; i < sim_profile_count(); i++) {
                        const SimProfileInfo *p = sim_profile_info(i);
                        json_object *o = json_object_new_object();
                        if (json_append(a, o) < 0 || json_add_string(o, "name", p->name) < 0 ||
                            json_add_string(o, "summary", p->summary) < 0)
                                return log_oom();
                }
                return json_print(a, stdout) < 0 ? log_oom() : 0;
        }
        static const char *const headers[] = {"PROFILE", "HOST"};
        _cleanup_table_free_ Table *t = table_new(2, headers);
        if (!t)
                return log_oom();
        for (size_t i = 0; i < sim_profile_count(); i++) {
                const SimProfileInfo *p = sim_profile_info(i);
                const char *cells[] = {p->name, p->summary};
                if (table_add_row(t, cells) < 0)
                        return log_oom();
        }
        return table_print(t, stdout) < 0 ? log_oom() : 0;
}

static bool sim_profile_exists(const char *name) {
        for (size_t i = 0; i < sim_profile_count(); i++)
                if (streq(sim_profile_info(i)->name, name))
                        return true;
        return false;
}

typedef struct SimCreateArgs {
        const char *profile, *devices, *gpus;
} SimCreateArgs;

static void sim_opt(int c, const char *v, void *ud) {
        SimCreateArgs *a = ud;
        if (c == 'p')
                a->profile = v;
        else if (c == 'd')
                a->devices = v;
        else if (c == 'g')
                a->gpus = v;
}

/* --devices/--gpus of the generated profile: 0, or -EINVAL after saying why. */
static int size_arg(const char *opt, const char *v, uint32_t def, uint32_t max, uint32_t *ret) {
        *ret = def;
        if (v && (parse_u32(v, 10, ret) < 0 || *ret == 0 || *ret > max))
                return usage_error("sim create: %s takes a number from 1 to %u, not '%s'", opt, max, v);
        return 0;
}

static int sim_create_verb(int argc, char **argv) {
        static const struct option opts[] = {{"profile", required_argument, NULL, 'p'},
                                             {"devices", required_argument, NULL, 'd'},
                                             {"gpus", required_argument, NULL, 'g'},
                                             {}};
        SimCreateArgs a = {};
        int k = parse_verb_options(argc, argv, opts, "p:", sim_opt, &a);
        if (k < 0)
                return -EINVAL; /* parse_verb_options() said why */
        if (argc - k != 1)
                return usage_error("sim create: expected one directory: gpuvirt sim create DIR --profile NAME");
        if (!a.profile)
                return usage_error("sim create: --profile NAME is required (see 'gpuvirt sim profiles')");
        bool generated = streq(a.profile, SIM_GENERATED_PROFILE);
        if ((a.devices || a.gpus) && !generated)
                return usage_error("sim create: --devices and --gpus size the '" SIM_GENERATED_PROFILE "' profile only");
        if (!generated && !sim_profile_exists(a.profile)) {
                log_error("Unknown profile '%s'. Known profiles:", a.profile);
                for (size_t i = 0; i < sim_profile_count(); i++)
                        fprintf(stderr, "  %s\n", sim_profile_info(i)->name);
                fprintf(stderr, "  %s (--devices N --gpus M)\n", SIM_GENERATED_PROFILE);
                return -EINVAL;
        }
        uint32_t devices = 0, gpus = 0;
        int r;
        if (generated) {
                r = size_arg("--devices", a.devices, SIM_GENERATED_DEVICES, 20000, &devices);
                r = r ?: size_arg("--gpus", a.gpus, SIM_GENERATED_GPUS, SIM_GENERATED_GPUS_MAX, &gpus);
                if (r < 0)
                        return r;
                r = sim_create_generated(argv[k], devices, gpus);
                if (r == -EINVAL)
                        return usage_error("sim create: %u devices cannot hold %u GPUs (at least %u: the chipset's 7, "
                                           "a root port per GPU, a root complex per 8 GPUs)",
                                           devices, gpus, 7 + 2 * gpus + (gpus + 7) / 8);
                if (r == -ERANGE)
                        return usage_error("sim create: %u devices with %u GPUs need more than 256 PCI buses", devices,
                                           gpus);
        } else
                r = sim_create(argv[k], a.profile);
        if (r == -EEXIST)
                return log_error("'%s' exists and is not empty; give a new or empty directory.", argv[k]), r;
        if (r < 0)
                return log_error_errno(r, "Cannot create simulated host in '%s': %m", argv[k]), failure_errno(r);
        if (!arg.json)
                printf("Simulated host '%s' created in %s\nUse it with: gpuvirt --root %s list\n", a.profile,
                       argv[k], argv[k]);
        return 0;
}

/* The root of --root, which must be a simulated host; 0 or an exit code. */
static int open_sim_root(Root **ret) {
        _cleanup_root_free_ Root *root = NULL;
        int r = open_root(0, &root);
        if (r)
                return r;
        if (root_kind(root) != ROOT_SIMULATED)
                return log_error("%s is not a simulated host (no %s/).", root_dir(root), SIM_MARKER_DIR), -EINVAL;
        *ret = TAKE_PTR(root);
        return 0;
}

static int sim_fault_verb(int argc, char **argv) {
        if (argc != 3)
                return usage_error("sim fault: expected ATTR ERRNO|KILL, e.g. gpuvirt --root DIR sim fault unbind EBUSY");
        _cleanup_root_free_ Root *root = NULL;
        int r = open_sim_root(&root);
        if (r)
                return r;
        int e = streq(argv[2], "KILL") ? SIM_FAULT_KILL : errno_from_name(argv[2]);
        if (e < 0)
                return log_error("'%s' is not an errno name or number (e.g. EBUSY, 16).", argv[2]), -EINVAL;
        r = sim_inject_fault(root_dir(root), argv[1], e);
        if (r < 0)
                return log_error_errno(r, "Cannot queue fault: %m"), failure_errno(r);
        return 0;
}

static int sim_off_bus_verb(int argc, char **argv) {
        if (argc != 2)
                return usage_error("sim off-bus: expected one device: gpuvirt --root DIR sim off-bus BDF");
        _cleanup_root_free_ Root *root = NULL;
        int r = open_sim_root(&root);
        if (r)
                return r;
        _cleanup_free_ char *bdf = NULL;
        if (pci_addr_canonical(argv[1], &bdf) < 0)
                return log_error("'%s' is not a PCI address (expected DDDD:BB:DD.F or BB:DD.F).", argv[1]), -EINVAL;
        r = sim_device_off_bus(root_dir(root), bdf);
        if (r == -ENODEV)
                return log_error("No PCI device %s on this simulated host.", bdf), r;
        if (r < 0)
                return log_error_errno(r, "Cannot take %s off the bus: %m", bdf), failure_errno(r);
        if (!arg.json)
                printf("%s fell off the bus: its config space reads all ones.\n", bdf);
        return 0;
}

/* The device argument of the health sub-verbs: 0 with *ret set, or -EINVAL (said why). */
static int sim_bdf_arg(const char *s, char **ret) {
        if (pci_addr_canonical(s, ret) < 0)
                return log_error("'%s' is not a PCI address (expected DDDD:BB:DD.F or BB:DD.F).", s), -EINVAL;
        return 0;
}

static int sim_result(int r, const char *bdf, const char *what) {
        if (r == -ENODEV)
                return log_error("No PCI device %s on this simulated host.", bdf), r;
        if (r < 0)
                return log_error_errno(r, "Cannot %s on %s: %m", what, bdf), failure_errno(r);
        return 0;
}

/* The health sub-verbs' common start: the argument count, the device and the simulated root. */
static int sim_health_open(int argc, char **argv, int min, int max, const char *usage, char **ret_bdf, Root **ret_root) {
        if (argc < min || argc > max)
                return usage_error("sim %s: expected %s", argv[0], usage);
        _cleanup_free_ char *bdf = NULL;
        int r = sim_bdf_arg(argv[1], &bdf);
        if (r < 0)
                return r;
        _cleanup_root_free_ Root *root = NULL;
        r = open_sim_root(&root);
        if (r)
                return r;
        *ret_bdf = TAKE_PTR(bdf);
        *ret_root = TAKE_PTR(root);
        return 0;
}

/* sim xid|telemetry|aer|link|remove BDF ...: what goes wrong while the host runs (gpuvirtd's health). */
static int sim_xid_verb(int argc, char **argv) {
        _cleanup_free_ char *bdf = NULL;
        _cleanup_root_free_ Root *root = NULL;
        int r = sim_health_open(argc, argv, 3, 3, "sim xid BDF CODE", &bdf, &root);
        if (r)
                return r;
        uint32_t n;
        if (parse_u32(argv[2], 10, &n) < 0 || n == 0)
                return usage_error("sim xid: '%s' is not an Xid code (a positive number)", argv[2]);
        return sim_result(sim_nvml_xid(root_dir(root), bdf, n), bdf, "queue the Xid event");
}

static int sim_telemetry_verb(int argc, char **argv) {
        _cleanup_free_ char *bdf = NULL;
        _cleanup_root_free_ Root *root = NULL;
        int r = sim_health_open(argc, argv, 3, 32, "sim telemetry BDF KEY=VALUE...", &bdf, &root);
        if (r)
                return r;
        for (int i = 2; i < argc; i++) {
                const char *eq = strchr(argv[i], '=');
                _cleanup_free_ char *key = eq ? strndup(argv[i], (size_t)(eq - argv[i])) : NULL;
                uint32_t v;
                if (!key || parse_u32(eq + 1, 10, &v) < 0)
                        return usage_error("sim telemetry: '%s' is not KEY=NUMBER", argv[i]);
                r = sim_nvml_telemetry(root_dir(root), bdf, key, v);
                if (r == -EINVAL)
                        return usage_error("sim telemetry: unknown key '%s' (util_gpu, util_mem, mem_used_mib, "
                                           "temp, power_mw, clock_sm, clock_mem, ecc_sbe, ecc_dbe)", key);
                r = sim_result(r, bdf, "set telemetry");
                if (r)
                        return r;
        }
        return 0;
}

static int sim_aer_verb(int argc, char **argv) {
        _cleanup_free_ char *bdf = NULL;
        _cleanup_root_free_ Root *root = NULL;
        int r = sim_health_open(argc, argv, 3, 4, "sim aer BDF correctable|nonfatal|fatal [COUNT]", &bdf, &root);
        if (r)
                return r;
        int kind = sim_aer_kind_from_string(argv[2]);
        if (kind < 0)
                return usage_error("sim aer: '%s' is not correctable, nonfatal or fatal", argv[2]);
        uint32_t n = 1;
        if (argc == 4 && (parse_u32(argv[3], 10, &n) < 0 || n == 0))
                return usage_error("sim aer: '%s' is not a positive count", argv[3]);
        return sim_result(sim_device_aer(root_dir(root), bdf, (SimAerKind)kind, n), bdf, "count AER errors");
}

static int sim_link_verb(int argc, char **argv) {
        _cleanup_free_ char *bdf = NULL;
        _cleanup_root_free_ Root *root = NULL;
        int r = sim_health_open(argc, argv, 4, 4, "sim link BDF SPEED WIDTH (e.g. \"8.0 GT/s PCIe\" 8)", &bdf, &root);
        if (r)
                return r;
        uint32_t n;
        if (parse_u32(argv[3], 10, &n) < 0 || n == 0 || n > 32)
                return usage_error("sim link: '%s' is not a link width (1-32)", argv[3]);
        r = sim_device_link(root_dir(root), bdf, argv[2], n);
        if (r == -EOPNOTSUPP)
                return log_error("%s has no PCIe link.", bdf), r;
        return sim_result(r, bdf, "change the link");
}

static int sim_remove_verb(int argc, char **argv) {
        _cleanup_free_ char *bdf = NULL;
        _cleanup_root_free_ Root *root = NULL;
        int r = sim_health_open(argc, argv, 2, 2, "sim remove BDF", &bdf, &root);
        if (r)
                return r;
        r = sim_result(sim_device_remove(root_dir(root), bdf), bdf, "remove the device");
        if (r == 0 && !arg.json)
                printf("%s was removed from the bus (surprise removal).\n", bdf);
        return r;
}

/* sim vgpu UNIT KEY=VALUE...: what a VM does with a vGPU unit, as the fake NVML's vGPU manager reports it. */
static int sim_vgpu_verb(int argc, char **argv) {
        if (argc < 3)
                return usage_error("sim vgpu: expected UNIT KEY=VALUE... (UNIT: a VF with a vGPU type or an mdev UUID)");
        _cleanup_root_free_ Root *root = NULL;
        int r = open_sim_root(&root);
        if (r)
                return r;
        _cleanup_free_ char *unit = NULL;
        if (pci_addr_canonical(argv[1], &unit) < 0 && !(unit = strdup(argv[1])))
                return log_oom();
        for (int i = 2; i < argc; i++) {
                const char *eq = strchr(argv[i], '=');
                _cleanup_free_ char *key = eq ? strndup(argv[i], (size_t)(eq - argv[i])) : NULL;
                if (!key)
                        return usage_error("sim vgpu: '%s' is not KEY=VALUE", argv[i]);
                r = sim_nvml_vgpu(root_dir(root), unit, key, eq + 1);
                if (r == -EINVAL)
                        return usage_error("sim vgpu: unknown key '%s' (vm, license, expiry, util_sm, util_mem, "
                                           "util_enc, util_dec, fb_used_mib)", key);
                if (r == -EDOM)
                        return usage_error("sim vgpu: '%s' is not a value for %s (license: licensed, unlicensed, "
                                           "restricted, unrestricted, uninitialized; expiry: YYYY-MM-DDTHH:MM:SS "
                                           "or permanent; util_*: 0-100)", eq + 1, key);
                if (r == -ENODEV)
                        return log_error("No vGPU unit %s on this simulated host (a VF or an mdev UUID).", unit), r;
                if (r < 0)
                        return log_error_errno(r, "Cannot set %s of %s: %m", key, unit), failure_errno(r);
        }
        return 0;
}

/* sim nvml-fail ERROR|off: NVML calls fail with that nvmlReturn_t (a number or NVML_ERROR_* name). */
static int sim_nvml_fail_verb(int argc, char **argv) {
        if (argc != 2)
                return usage_error("sim nvml-fail: expected an NVML error (NVML_ERROR_UNKNOWN, 999, ...) or off");
        int code = 0;
        if (!streq(argv[1], "off")) {
                uint32_t v;
                for (int e = 1; e < 1000 && code == 0; e++)
                        if (streq(argv[1], nvml_error_name((nvmlReturn_t)e)) && !streq(argv[1], "NVML_ERROR_UNKNOWN"))
                                code = e;
                if (streq(argv[1], "NVML_ERROR_UNKNOWN"))
                        code = NVML_ERROR_UNKNOWN;
                if (code == 0 && parse_u32(argv[1], 10, &v) >= 0 && v > 0 && v < 1000)
                        code = (int)v;
                if (code == 0)
                        return usage_error("sim nvml-fail: '%s' is not an NVML error name or number", argv[1]);
        }
        _cleanup_root_free_ Root *root = NULL;
        int r = open_sim_root(&root);
        if (r)
                return r;
        r = sim_nvml_fail(root_dir(root), code);
        if (r < 0)
                return log_error_errno(r, "Cannot change the fake NVML: %m"), failure_errno(r);
        return 0;
}

/* The sub-verbs (the verb table dispatches them; argv[0] is "sim", argv[1] the sub-verb). */
int verb_sim_profiles(int argc, char **argv) {
        (void)argv;
        if (argc != 2)
                return usage_error("sim profiles takes no arguments");
        return sim_profiles();
}

int verb_sim_create(int argc, char **argv) {
        return sim_create_verb(argc - 1, argv + 1);
}

int verb_sim_fault(int argc, char **argv) {
        return sim_fault_verb(argc - 1, argv + 1);
}

int verb_sim_off_bus(int argc, char **argv) {
        return sim_off_bus_verb(argc - 1, argv + 1);
}

int verb_sim_xid(int argc, char **argv) {
        return sim_xid_verb(argc - 1, argv + 1);
}

int verb_sim_telemetry(int argc, char **argv) {
        return sim_telemetry_verb(argc - 1, argv + 1);
}

int verb_sim_aer(int argc, char **argv) {
        return sim_aer_verb(argc - 1, argv + 1);
}

int verb_sim_link(int argc, char **argv) {
        return sim_link_verb(argc - 1, argv + 1);
}

int verb_sim_remove(int argc, char **argv) {
        return sim_remove_verb(argc - 1, argv + 1);
}

int verb_sim_nvml_fail(int argc, char **argv) {
        return sim_nvml_fail_verb(argc - 1, argv + 1);
}

int verb_sim_vgpu(int argc, char **argv) {
        return sim_vgpu_verb(argc - 1, argv + 1);
}
