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
#include "core/pci.h"
#include "core/root.h"
#include "sim/sim.h"

typedef struct Verb {
        const char *name;
        int min_args; /* arguments after the verb name (options included) */
        int (*fn)(int argc, char **argv);
        const char *synopsis;
        /* What changes the host: the verb as a whole (VERB_MUTATING), or the sub-verbs (argv[1]) listed. Such a
         * run holds the host lock from the moment it opens the root, before it observes anything, until it
         * exits (common.c: open_root); --dry-run changes nothing and takes no lock. */
        unsigned flags;
        const char *const *mutating;
} Verb;

#define VERB_MUTATING (1u << 0)
#define SUBS(...) ((const char *const[]){__VA_ARGS__, NULL})

static int verb_help(int argc, char **argv);
static int verb_version(int argc, char **argv) {
        if (argc > 1)
                return usage_error("version: unexpected argument '%s'", argv[1]);
        printf("gpuvirt %s\n", GPUVIRT_VERSION);
        return 0;
}

static const Verb verbs[] = {
        {"list", 0, verb_list, "list [--vfs]              GPUs with group, NUMA, link and possible modes"},
        {"show", 1, verb_show, "show BDF                  one device in full"},
        {"check", 0, verb_check, "check [--device BDF]      host readiness for GPU virtualization"},
        {"passthrough", 1, verb_passthrough,
         "passthrough enable BDF... [--force] [--include BDF]... [--persist]\n"
         "                            move devices and their IOMMU groups to vfio-pci\n"
         "  passthrough disable BDF... [--force] [--persist]\n"
         "                            give them back to the drivers they had\n"
         "  passthrough persist --ids [--remove] BDF...\n"
         "                            bind by ID at boot (modprobe.d, modules-load.d)\n"
         "  passthrough restore [BDF] apply the persistent bindings (boot units)",
         0, SUBS("enable", "disable", "persist", "restore")},
        {"sriov", 1, verb_sriov,
         "sriov list [BDF]           SR-IOV PFs with their VFs, drivers and groups\n"
         "  sriov set BDF N [--vfio] [--force] [--persist]\n"
         "                            change the VF count safely (through 0); --vfio binds the VFs\n"
         "  sriov restore [BDF]       apply the boot-time VF counts (boot units)",
         0, SUBS("set", "restore")},
        {"vgpu", 1, verb_vgpu,
         "vgpu types [BDF]          vGPU types per parent (mdev and NVIDIA vendor vGPU)\n"
         "  vgpu list                 active and defined vGPUs\n"
         "  vgpu create PARENT TYPE [--uuid U] [--persist [--auto]]\n"
         "                            create a vGPU (mdev, or a type on a free VF of PARENT;\n"
         "                            TYPE: its id or its name)\n"
         "  vgpu remove ID [--keep-definition] [--force]\n"
         "                            remove it (ID: mdev UUID or VF address)\n"
         "  vgpu start-defined [DEV]  start the definitions marked auto (boot units)",
         0, SUBS("create", "remove", "start-defined")},
        {"host", 2, verb_host, "host iommu enable [--apply]\n"
                               "                            turn the IOMMU on in the boot configuration",
         VERB_MUTATING, NULL},
        {"mig", 1, verb_mig,
         "mig status [BDF] | profiles BDF | enable BDF | disable BDF | reset BDF\n"
         "  mig create BDF PROFILE [--placement START] [--count N]\n"
         "  mig destroy BDF (--gi ID | --all) [--force]\n"
         "  mig apply -f FILE [-c LABEL] [--allow-disrupt] [--no-reset] | assert -f FILE [-c LABEL] | export [-c LABEL]\n"
         "                            MIG partitions through NVML; mig-parted v1 configs",
         0, SUBS("enable", "disable", "create", "destroy", "reset", "apply")},
        {"vm", 1, verb_vm,
         "vm xml DEVICE [--guest-slot N]\n"
         "                            libvirt <hostdev> XML for a GPU, VF, mdev UUID or vendor vGPU\n"
         "  vm attach DOMAIN DEVICE [--live] [--config] [--mdev-type T | --vgpu-type T] [--force]\n"
         "                            prepare the device and attach it to a domain\n"
         "  vm detach DOMAIN DEVICE [--live] [--config] [--keep] [--timeout SEC]\n"
         "                            detach it and give it back to the host\n"
         "  vm list                   which domain holds which GPU unit; migration; warnings",
         0, SUBS("attach", "detach")},
        {"plan", 0, verb_state, "plan [-f FILE]            the steps from now to the desired state (/etc/gpuvirt/host.yaml)"},
        {"apply", 0, verb_state, "apply [-f FILE]           carry them out, journaled, in a fixed order",
         VERB_MUTATING, NULL},
        {"assert", 0, verb_state, "assert [-f FILE]          exit 0 when the host matches, 1 and the drift otherwise"},
        {"export", 0, verb_state, "export [-o FILE]          the current state as a file apply accepts"},
        {"recover", 0, verb_state, "recover                   finish the step an interrupted apply left",
         VERB_MUTATING, NULL},
        {"status", 0, verb_state, "status [-f FILE]          last apply, interrupted step, drift"},
        {"fleet", 1, verb_fleet,
         "fleet hosts | gpus [HOST] | status | show ID     the GPU pool (--store etcd://H:P,... or local)\n"
         "  fleet request UNIT --owner ID [--count N] [--same-host|--same-numa|--same-nvlink] [--live]\n"
         "                [--group G] [--model VVVV:DDDD] [--strategy S] | -f FILE\n"
         "                            reserve units: passthrough, gpu:<N>gb, vf, vgpu:<type>, mig:<profile>\n"
         "  fleet release ID...       give them back\n"
         "  fleet drain HOST [--undo] no new placements there; what can move is placed elsewhere\n"
         "  fleet agent [--host NAME] [--ttl S] [--once]\n"
         "                            realize this host's reservations (foreground; SIGTERM stops it)",
         /* Not mutating here: the store has its own writer lock, and what changes the host is an agent pass
          * (fleet agent, or the pass every command makes on the local store), which takes the host lock
          * itself for the pass only (fleet_agent_converge()), never for an agent's whole foreground run. */
         0, NULL},
        {"sim", 1, verb_sim, "sim profiles|create DIR --profile NAME|fault ATTR ERRNO|KILL|off-bus BDF\n"
                             "                            simulated hosts"},
        {"version", 0, verb_version, "version                   print the version"},
        {"help", 0, verb_help, "help                      this text"},
};

static int verb_help(int argc, char **argv) {
        if (argc > 1)
                return usage_error("help: unexpected argument '%s' (the manual: man gpuvirt)", argv[1]);
        printf("Usage: gpuvirt [OPTIONS] COMMAND [ARGS]\n\n"
               "GPU virtualization manager for KVM/libvirt hosts.\n\n"
               "Options (before the command):\n"
               "  --root DIR     operate on DIR instead of / (a simulated host or a capture;\n"
               "                 default $GPUVIRT_ROOT or /)\n"
               "  --json         typed JSON output\n"
               "  --dry-run      print the kernel writes instead of making them\n"
               "  --connect URI  libvirt URI (default $LIBVIRT_DEFAULT_URI or qemu:///system;\n"
               "                 on a simulated root libvirt is asked only when this is given)\n"
               "  -v, --verbose  debug logging (every kernel write)\n"
               "  -h, --help     this help\n"
               "  --version      print the version\n\n"
               "Commands:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                printf("  %s\n", verbs[i].synopsis);
        printf("\nExit status: 0 success, 1 failure (or a failed check), 2 bad usage or input.\n"
               "See gpuvirt(1).\n");
        return 0;
}

static size_t edit_distance(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        if (la > 32 || lb > 32)
                return 99;
        size_t d[33][33];
        for (size_t i = 0; i <= la; i++)
                d[i][0] = i;
        for (size_t j = 0; j <= lb; j++)
                d[0][j] = j;
        for (size_t i = 1; i <= la; i++)
                for (size_t j = 1; j <= lb; j++)
                        d[i][j] = MIN(MIN(d[i - 1][j] + 1, d[i][j - 1] + 1), d[i - 1][j - 1] + (a[i - 1] != b[j - 1]));
        return d[la][lb];
}

static bool verb_mutates(const Verb *v, int argc, char **argv) {
        if (v->flags & VERB_MUTATING)
                return true;
        return argc >= 2 && v->mutating && strv_contains((char *const *)v->mutating, argv[1]);
}

static int dispatch(int argc, char **argv) {
        if (argc <= 0)
                return usage_error("no command given");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                const Verb *v = &verbs[i];
                if (!streq(v->name, argv[0]))
                        continue;
                /* Commands with sub-commands need one; the rest check their own arguments. */
                if (argc - 1 < v->min_args)
                        return usage_error("%s: missing argument; usage: gpuvirt %s", v->name, v->synopsis);
                arg.mutating = verb_mutates(v, argc, argv);
                return v->fn(argc, argv);
        }
        const char *best = NULL;
        size_t bd = 3;
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                size_t dist = edit_distance(argv[0], verbs[i].name);
                if (dist < bd) {
                        bd = dist;
                        best = verbs[i].name;
                }
        }
        if (best)
                return usage_error("unknown command '%s'; did you mean '%s'?", argv[0], best);
        return usage_error("unknown command '%s'", argv[0]);
}

int main(int argc, char **argv) {
        enum { OPT_ROOT = 0x100, OPT_JSON, OPT_DRY_RUN, OPT_VERSION, OPT_CONNECT };
        static const struct option opts[] = {
                {"root", required_argument, NULL, OPT_ROOT},
                {"json", no_argument, NULL, OPT_JSON},
                {"dry-run", no_argument, NULL, OPT_DRY_RUN},
                {"verbose", no_argument, NULL, 'v'},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, OPT_VERSION},
                {"connect", required_argument, NULL, OPT_CONNECT},
                {},
        };
        int c;
        opterr = 0;
        while ((c = getopt_long(argc, argv, "+vh", opts, NULL)) >= 0) {
                switch (c) {
                case OPT_ROOT:
                        if (isempty(optarg))
                                return usage_error("--root: empty directory (an unset variable?); give --root / for "
                                                   "the live host");
                        arg.root = optarg;
                        break;
                case OPT_JSON:
                        arg.json = true;
                        break;
                case OPT_DRY_RUN:
                        arg.dry_run = true;
                        break;
                case OPT_CONNECT:
                        if (isempty(optarg))
                                return usage_error("--connect: empty libvirt URI");
                        arg.connect = optarg;
                        break;
                case 'v':
                        arg.verbose++;
                        break;
                case 'h':
                        return verb_help(0, NULL) ?: (fflush(stdout) || ferror(stdout) ? EXIT_FAILURE : 0);
                case OPT_VERSION:
                        return verb_version(0, NULL);
                default:
                        return usage_error("unknown option or missing value: '%s'", argv[optind - 1]);
                }
        }
        if (arg.verbose)
                log_set_max_level(LOG_LEVEL_DEBUG);

        int r = dispatch(argc - optind, argv + optind);
        unlock_host();
        /* A full disk or closed pipe on stdout is a failure, not a silent truncation. */
        if (fflush(stdout) != 0 || ferror(stdout)) {
                if (r == 0)
                        log_error("Failed to write output: %m");
                return r ?: EXIT_FAILURE;
        }
        return r;
}
