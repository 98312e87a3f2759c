/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "cli/common.h"
#include "cli/output.h"
#include "config.h"
#include "core/check.h"
#include "core/inventory.h"
#include "core/iommu.h"
#include "core/names.h"
#include "core/nvml.h"
#include "core/pci.h"
#include "core/root.h"
#include "sim/sim.h"

/* ---- sim ---- */

static int sim_profiles(void) {
        if (arg.json) {
                json_object *a = json_object_new_array();
                for (size_t i = 0; i < sim_profile_count(); i++) {
                        const SimProfileInfo *p = sim_profile_info(i);
                        json_object *o = json_object_new_object();
                        json_object_object_add(o, "name", json_object_new_string(p->name));
                        json_object_object_add(o, "summary", json_object_new_string(p->summary));
                        json_object_array_add(a, o);
                }
                json_print(a, stdout);
                json_object_put(a);
                return 0;
        }
        static const char *const headers[] = {"PROFILE", "HOST"};
        Table *t = table_new(2, headers);
        if (!t)
                return EXIT_FAILURE;
        for (size_t i = 0; i < sim_profile_count(); i++) {
                const SimProfileInfo *p = sim_profile_info(i);
                const char *cells[] = {p->name, p->summary};
                table_add_row(t, cells);
        }
        table_print(t, stdout);
        table_free(t);
        return 0;
}

static bool sim_profile_exists(const char *name) {
        for (size_t i = 0; i < sim_profile_count(); i++)
                if (streq(sim_profile_info(i)->name, name))
                        return true;
        return false;
}

static void sim_opt(int c, const char *v, void *ud) {
        *(const char **)ud = v;
}

static int sim_create_verb(int argc, char **argv) {
        static const struct option opts[] = {{"profile", required_argument, NULL, 'p'}, {}};
        const char *profile = NULL;
        int k = parse_verb_options(argc, argv, opts, "p:", sim_opt, &profile);
        if (k < 0)
                return -k;
        if (argc - k != 1)
                return usage_error("sim create: expected one directory: gpuvirt sim create DIR --profile NAME");
        if (!profile)
                return usage_error("sim create: --profile NAME is required (see 'gpuvirt sim profiles')");
        if (!sim_profile_exists(profile)) {
                log_error("Unknown profile '%s'. Known profiles:", profile);
                for (size_t i = 0; i < sim_profile_count(); i++)
                        fprintf(stderr, "  %s\n", sim_profile_info(i)->name);
                return EXIT_USAGE;
        }
        int r = sim_create(argv[k], profile);
        if (r == -EEXIST)
                return log_error("'%s' exists and is not empty; give a new or empty directory.", argv[k]),
                       EXIT_FAILURE;
        if (r < 0)
                return log_error_errno(r, "Cannot create simulated host in '%s': %m", argv[k]), EXIT_FAILURE;
        if (!arg.json)
                printf("Simulated host '%s' created in %s\nUse it with: gpuvirt --root %s list\n", profile, argv[k],
                       argv[k]);
        return 0;
}

/* The root of --root, which must be a simulated host; 0 or an exit code. */
static int open_sim_root(Root **ret) {
        _cleanup_root_free_ Root *root = NULL;
        int r = open_root(0, &root);
        if (r)
                return r;
        if (root_kind(root) != ROOT_SIMULATED)
                return log_error("%s is not a simulated host (no %s/).", root_dir(root), SIM_MARKER_DIR), EXIT_USAGE;
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
                return log_error("'%s' is not an errno name or number (e.g. EBUSY, 16).", argv[2]), EXIT_USAGE;
        r = sim_inject_fault(root_dir(root), argv[1], e);
        if (r < 0)
                return log_error_errno(r, "Cannot queue fault: %m"), EXIT_FAILURE;
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
                return log_error("'%s' is not a PCI address (expected DDDD:BB:DD.F or BB:DD.F).", argv[1]), EXIT_USAGE;
        r = sim_device_off_bus(root_dir(root), bdf);
        if (r == -ENODEV)
                return log_error("No PCI device %s on this simulated host.", bdf), EXIT_FAILURE;
        if (r < 0)
                return log_error_errno(r, "Cannot take %s off the bus: %m", bdf), EXIT_FAILURE;
        if (!arg.json)
                printf("%s fell off the bus: its config space reads all ones.\n", bdf);
        return 0;
}

/* The device argument of the health sub-verbs: 0 with *ret set, or an exit code. */
static int sim_bdf_arg(const char *s, char **ret) {
        if (pci_addr_canonical(s, ret) < 0)
                return log_error("'%s' is not a PCI address (expected DDDD:BB:DD.F or BB:DD.F).", s), EXIT_USAGE;
        return 0;
}

static int sim_result(int r, const char *bdf, const char *what) {
        if (r == -ENODEV)
                return log_error("No PCI device %s on this simulated host.", bdf), EXIT_FAILURE;
        if (r < 0)
                return log_error_errno(r, "Cannot %s on %s: %m", what, bdf), EXIT_FAILURE;
        return 0;
}

/* sim xid|telemetry|aer|link|remove BDF ...: what goes wrong while the host runs (gpuvirtd's health). */
static int sim_health_verb(int argc, char **argv) {
        const char *sub = argv[0];
        static const struct {
                const char *name, *usage;
                int min, max;
        } forms[] = {
                {"xid", "sim xid BDF CODE", 3, 3},
                {"telemetry", "sim telemetry BDF KEY=VALUE...", 3, 32},
                {"aer", "sim aer BDF correctable|nonfatal|fatal [COUNT]", 3, 4},
                {"link", "sim link BDF SPEED WIDTH (e.g. \"8.0 GT/s PCIe\" 8)", 4, 4},
                {"remove", "sim remove BDF", 2, 2},
        };
        size_t f;
        for (f = 0; !streq(forms[f].name, sub); f++)
                ;
        if (argc < forms[f].min || argc > forms[f].max)
                return usage_error("%s: expected %s", sub, forms[f].usage);
        _cleanup_free_ char *bdf = NULL;
        int r = sim_bdf_arg(argv[1], &bdf);
        if (r)
                return r;
        _cleanup_root_free_ Root *root = NULL;
        r = open_sim_root(&root);
        if (r)
                return r;
        const char *dir = root_dir(root);
        uint32_t n = 1;
        if (streq(sub, "xid")) {
                if (parse_u32(argv[2], 10, &n) < 0 || n == 0)
                        return usage_error("sim xid: '%s' is not an Xid code (a positive number)", argv[2]);
                return sim_result(sim_nvml_xid(dir, bdf, n), bdf, "queue the Xid event");
        }
        if (streq(sub, "telemetry")) {
                for (int i = 2; i < argc; i++) {
                        const char *eq = strchr(argv[i], '=');
                        _cleanup_free_ char *key = eq ? strndup(argv[i], (size_t)(eq - argv[i])) : NULL;
                        uint32_t v;
                        if (!key || parse_u32(eq + 1, 10, &v) < 0)
                                return usage_error("sim telemetry: '%s' is not KEY=NUMBER", argv[i]);
                        r = sim_nvml_telemetry(dir, bdf, key, v);
                        if (r == -EINVAL)
                                return usage_error("sim telemetry: unknown key '%s' (util_gpu, util_mem, mem_used_mib, "
                                                   "temp, power_mw, clock_sm, clock_mem, ecc_sbe, ecc_dbe)", key);
                        r = sim_result(r, bdf, "set telemetry");
                        if (r)
                                return r;
                }
                return 0;
        }
        if (streq(sub, "aer")) {
                int kind = sim_aer_kind_from_string(argv[2]);
                if (kind < 0)
                        return usage_error("sim aer: '%s' is not correctable, nonfatal or fatal", argv[2]);
                if (argc == 4 && (parse_u32(argv[3], 10, &n) < 0 || n == 0))
                        return usage_error("sim aer: '%s' is not a positive count", argv[3]);
                return sim_result(sim_device_aer(dir, bdf, (SimAerKind)kind, n), bdf, "count AER errors");
        }
        if (streq(sub, "link")) {
                if (parse_u32(argv[3], 10, &n) < 0 || n == 0 || n > 32)
                        return usage_error("sim link: '%s' is not a link width (1-32)", argv[3]);
                r = sim_device_link(dir, bdf, argv[2], n);
                if (r == -EOPNOTSUPP)
                        return log_error("%s has no PCIe link.", bdf), EXIT_FAILURE;
                return sim_result(r, bdf, "change the link");
        }
        r = sim_result(sim_device_remove(dir, bdf), bdf, "remove the device");
        if (r == 0 && !arg.json)
                printf("%s was removed from the bus (surprise removal).\n", bdf);
        return r;
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
                return log_error_errno(r, "Cannot change the fake NVML: %m"), EXIT_FAILURE;
        return 0;
}

int verb_sim(int argc, char **argv) {
        if (argc < 2)
                return usage_error("sim: expected a command: profiles, create, fault, off-bus");
        const char *sub = argv[1];
        if (streq(sub, "profiles")) {
                if (argc != 2)
                        return usage_error("sim profiles takes no arguments");
                return sim_profiles();
        }
        if (streq(sub, "create"))
                return sim_create_verb(argc - 1, argv + 1);
        if (streq(sub, "fault"))
                return sim_fault_verb(argc - 1, argv + 1);
        if (streq(sub, "off-bus"))
                return sim_off_bus_verb(argc - 1, argv + 1);
        if (streq(sub, "xid") || streq(sub, "telemetry") || streq(sub, "aer") || streq(sub, "link") || streq(sub, "remove"))
                return sim_health_verb(argc - 1, argv + 1);
        if (streq(sub, "nvml-fail"))
                return sim_nvml_fail_verb(argc - 1, argv + 1);
        return usage_error("sim: unknown command '%s' (profiles, create, fault, off-bus, xid, telemetry, aer, link, "
                           "remove, nvml-fail)", sub);
}

