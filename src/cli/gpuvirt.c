/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
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
#include "core/host/check.h"
#include "core/host/inventory.h"
#include "core/host/iommu.h"
#include "core/host/names.h"
#include "core/host/pci.h"
#include "core/host/root.h"
#include "sim/sim.h"

/*
 * The command table: verbs and, of the same type, their sub-verbs. main() strips the global options from
 * anywhere on the line, finds the verb and sub-verb here (suggesting the nearest name for a typo at either
 * level), answers VERB [SUBVERB] --help from the synopses, and arms the host lock for what the table marks
 * as changing the host: such a run holds the lock from the moment it opens the root, before it observes
 * anything, until it exits (common.c: open_root); --dry-run changes nothing and takes no lock.
 */
typedef struct Verb Verb;
struct Verb {
        const char *name;
        int min_args; /* arguments after the verb name (options included) */
        int (*fn)(int argc, char **argv); /* NULL for a verb with sub-verbs: the sub-verb's fn runs, given the
                                           * same argv (argv[0] the verb, argv[1] the sub-verb) */
        const char *synopsis;
        unsigned flags;
        const Verb *subs; /* NULL-terminated; the sub-verb is the first argument after the verb */
        const char *options; /* the verb's own options (completion) */
};

#define VERB_MUTATING (1u << 0) /* changes the host: takes the host lock */
#define VERB_HIDDEN   (1u << 1) /* not in --help (__complete) */
#define SUBS(...) ((const Verb[]){__VA_ARGS__, {}})

static int verb_help(int argc, char **argv);
static int verb_complete(int argc, char **argv);
static int verb_version(int argc, char **argv) {
        if (argc > 1)
                return usage_error("version: unexpected argument '%s'", argv[1]);
        printf("gpuvirt %s\n", GPUVIRT_VERSION);
        return 0;
}

static const Verb verbs[] = {
        {"list", 0, verb_list, "list [--vfs]              GPUs with group, NUMA, link and possible modes",
         .options = "--vfs"},
        {"show", 1, verb_show, "show BDF                  one device in full"},
        {"check", 0, verb_check, "check [--device BDF]      host readiness for GPU virtualization",
         .options = "--device"},
        {"passthrough", 1, NULL,
         "passthrough enable BDF... [--force] [--include BDF]... [--persist]\n"
         "                            move devices and their IOMMU groups to vfio-pci\n"
         "  passthrough disable BDF... [--force] [--persist]\n"
         "                            give them back to the drivers they had\n"
         "  passthrough persist --ids [--remove] BDF...\n"
         "                            bind by ID at boot (modprobe.d, modules-load.d)\n"
         "  passthrough restore [BDF] apply the persistent bindings (boot units)",
         0, SUBS({"enable", 0, verb_passthrough_enable, "passthrough enable BDF... [--force] [--include BDF]... [--persist]", VERB_MUTATING,
                  .options = "--force --include --persist"},
                 {"disable", 0, verb_passthrough_disable, "passthrough disable BDF... [--force] [--persist]", VERB_MUTATING,
                  .options = "--force --persist"},
                 {"persist", 0, verb_passthrough_persist, "passthrough persist --ids [--remove] BDF...", VERB_MUTATING,
                  .options = "--ids --remove"},
                 {"restore", 0, verb_passthrough_restore, "passthrough restore [BDF]", VERB_MUTATING})},
        {"sriov", 1, NULL,
         "sriov list [BDF]           SR-IOV PFs with their VFs, drivers and groups\n"
         "  sriov set BDF N [--vfio] [--force] [--persist]\n"
         "                            change the VF count safely (through 0); --vfio binds the VFs\n"
         "  sriov restore [BDF]       apply the boot-time VF counts (boot units)",
         0, SUBS({"list", 0, verb_sriov_list, "sriov list [BDF]"},
                 {"set", 0, verb_sriov_set, "sriov set BDF N [--vfio] [--force] [--persist]", VERB_MUTATING,
                  .options = "--vfio --force --persist"},
                 {"restore", 0, verb_sriov_restore, "sriov restore [BDF]", VERB_MUTATING})},
        {"vgpu", 1, NULL,
         "vgpu types [BDF]          vGPU types per parent (mdev and NVIDIA vendor vGPU)\n"
         "  vgpu list                 active and defined vGPUs\n"
         "  vgpu create PARENT TYPE [--uuid U] [--persist [--auto]]\n"
         "                            create a vGPU (mdev, or a type on a free VF of PARENT;\n"
         "                            TYPE: its id or its name)\n"
         "  vgpu remove ID [--keep-definition] [--force]\n"
         "                            remove it (ID: mdev UUID or VF address)\n"
         "  vgpu start-defined [DEV]  start the definitions marked auto (boot units)",
         0, SUBS({"types", 0, verb_vgpu_types, "vgpu types [BDF]"},
                 {"list", 0, verb_vgpu_list, "vgpu list"},
                 {"create", 0, verb_vgpu_create, "vgpu create PARENT TYPE [--uuid U] [--persist [--auto]]", VERB_MUTATING,
                  .options = "--uuid --persist --auto"},
                 {"remove", 0, verb_vgpu_remove, "vgpu remove ID [--keep-definition] [--force]", VERB_MUTATING,
                  .options = "--keep-definition --force"},
                 {"start-defined", 0, verb_vgpu_start_defined, "vgpu start-defined [DEV]", VERB_MUTATING})},
        {"host", 2, NULL, "host iommu enable [--apply]\n"
                               "                            turn the IOMMU on in the boot configuration",
         0, SUBS({"iommu", 1, verb_host_iommu, "host iommu enable [--apply]", VERB_MUTATING, .options = "--apply"})},
        {"mig", 1, NULL,
         "mig status [BDF] | profiles BDF | enable BDF | disable BDF | reset BDF\n"
         "  mig create BDF PROFILE [--placement START] [--count N]\n"
         "  mig destroy BDF (--gi ID | --all) [--force]\n"
         "  mig apply -f FILE [-c LABEL] [--allow-disrupt] [--no-reset] | assert -f FILE [-c LABEL] | export [-c LABEL]\n"
         "                            MIG partitions through NVML; mig-parted v1 configs",
         0, SUBS({"status", 0, verb_mig, "mig status [BDF]"},
                 {"profiles", 0, verb_mig, "mig profiles BDF"},
                 {"enable", 0, verb_mig, "mig enable BDF", VERB_MUTATING},
                 {"disable", 0, verb_mig, "mig disable BDF", VERB_MUTATING},
                 {"reset", 0, verb_mig, "mig reset BDF", VERB_MUTATING},
                 {"create", 0, verb_mig, "mig create BDF PROFILE [--placement START] [--count N]", VERB_MUTATING,
                  .options = "--placement --count"},
                 {"destroy", 0, verb_mig, "mig destroy BDF (--gi ID | --all) [--force]", VERB_MUTATING,
                  .options = "--gi --all --force"},
                 {"apply", 0, verb_mig, "mig apply -f FILE [-c LABEL] [--allow-disrupt] [--no-reset]", VERB_MUTATING,
                  .options = "--file --config --allow-disrupt --no-reset"},
                 {"assert", 0, verb_mig, "mig assert -f FILE [-c LABEL]", .options = "--file --config"},
                 {"export", 0, verb_mig, "mig export [-c LABEL]", .options = "--config"})},
        {"vm", 1, NULL,
         "vm xml DEVICE [--guest-slot N] [--agent-channel]\n"
         "                            libvirt <hostdev> XML for a GPU, VF, mdev UUID or vendor vGPU\n"
         "  vm attach DOMAIN DEVICE [--live] [--config] [--mdev-type T | --vgpu-type T] [--force]\n"
         "                            [--agent-channel]  prepare the device and attach it to a domain\n"
         "  vm detach DOMAIN DEVICE [--live] [--config] [--keep] [--timeout SEC]\n"
         "                            detach it and give it back to the host\n"
         "  vm list                   which domain holds which GPU unit; migration; warnings\n"
         "  vm migrate DOMAIN DEST_URI [--plan]\n"
         "                            live-migrate it: each unit's verdict, the destination's mdevs first",
         0, SUBS({"xml", 0, verb_vm, "vm xml DEVICE [--guest-slot N] [--agent-channel]", .options = "--guest-slot --agent-channel"},
                 {"attach", 0, verb_vm, "vm attach DOMAIN DEVICE [--live] [--config] [--mdev-type T | --vgpu-type T] [--force]\n"
                                        "          [--agent-channel]",
                  VERB_MUTATING, .options = "--live --config --mdev-type --vgpu-type --force --agent-channel"},
                 {"detach", 0, verb_vm, "vm detach DOMAIN DEVICE [--live] [--config] [--keep] [--timeout SEC]",
                  VERB_MUTATING, .options = "--live --config --keep --timeout"},
                 {"list", 0, verb_vm, "vm list"},
                 {"migrate", 0, verb_vm, "vm migrate DOMAIN DEST_URI [--plan] [--detach-reattach]", VERB_MUTATING,
                  .options = "--plan --detach-reattach"})},
        {"advise", 0, verb_advise,
         "advise --workload training|inference|vdi|graphics|batch [--tenants N] [--live-migration]\n"
         "         [--isolation physical|hardware|driver] [--memory-per-tenant GB] [--device BDF]... [-o FILE]\n"
         "         [--fleet [--store URL]]\n"
         "                            one mode per GPU for the workload, with reasons and trade-offs",
         .options = "--workload --tenants --live-migration --isolation --memory-per-tenant --device --fleet --store --output"},
        {"plan", 0, verb_state_plan, "plan [-f FILE]            the steps from now to the desired state (/etc/gpuvirt/host.yaml)",
         .options = "--file"},
        {"apply", 0, verb_state_apply, "apply [-f FILE]           carry them out, journaled, in a fixed order",
         VERB_MUTATING, .options = "--file"},
        {"assert", 0, verb_state_assert, "assert [-f FILE]          exit 0 when the host matches, 1 and the drift otherwise",
         .options = "--file"},
        {"export", 0, verb_state_export, "export [-o FILE]          the current state as a file apply accepts",
         .options = "--output"},
        {"recover", 0, verb_state_recover, "recover                   finish the step an interrupted apply left",
         VERB_MUTATING},
        {"status", 0, verb_state_status, "status [-f FILE]          last apply, interrupted step, drift", .options = "--file"},
        {"fleet", 1, NULL,
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
         0, SUBS({"hosts", 0, verb_fleet_hosts, "fleet hosts [--store URL]", .options = "--store"},
                 {"gpus", 0, verb_fleet_gpus, "fleet gpus [HOST] [--store URL]", .options = "--store"},
                 {"request", 0, verb_fleet_request,
                  "fleet request UNIT --owner ID [--count N] [--same-host|--same-numa|--same-nvlink] [--live]\n"
                  "                [--group G] [--model VVVV:DDDD] [--strategy S] [--batch N] [--inflight N] | -f FILE",
                  .options = "--store --file --count --owner --same-host --same-numa --same-nvlink --live --group --model "
                             "--strategy --batch --inflight"},
                 {"release", 0, verb_fleet_release, "fleet release ID... [--store URL]", .options = "--store"},
                 {"show", 0, verb_fleet_show, "fleet show ID [--store URL]", .options = "--store"},
                 {"status", 0, verb_fleet_status, "fleet status [--store URL]", .options = "--store"},
                 {"drain", 0, verb_fleet_drain, "fleet drain HOST [--undo] [--strategy S] [--store URL]",
                  .options = "--store --undo --strategy"},
                 {"agent", 0, verb_fleet_agent, "fleet agent [--host NAME] [--ttl S] [--once] [--store URL]",
                  .options = "--store --host --ttl --once"})},
        {"sim", 1, NULL, "sim profiles|create DIR --profile NAME|fault ATTR ERRNO|KILL|off-bus BDF\n"
                             "                            simulated hosts; what goes wrong on them (gpuvirtd):\n"
                             "                            sim xid|telemetry|aer|link|remove BDF ...|nvml-fail ERR|off\n"
                             "                            sim vgpu UNIT vm=NAME license=... util_sm=N ...",
         0, SUBS({"profiles", 0, verb_sim_profiles, "sim profiles"},
                 {"create", 0, verb_sim_create, "sim create DIR --profile NAME [--devices N --gpus M]",
                  .options = "--profile --devices --gpus"},
                 {"fault", 0, verb_sim_fault, "sim fault ATTR ERRNO|KILL"},
                 {"off-bus", 0, verb_sim_off_bus, "sim off-bus BDF"},
                 {"xid", 0, verb_sim_xid, "sim xid BDF CODE"},
                 {"telemetry", 0, verb_sim_telemetry, "sim telemetry BDF KEY=VALUE..."},
                 {"aer", 0, verb_sim_aer, "sim aer BDF correctable|nonfatal|fatal [COUNT]"},
                 {"link", 0, verb_sim_link, "sim link BDF SPEED WIDTH"},
                 {"remove", 0, verb_sim_remove, "sim remove BDF"},
                 {"nvml-fail", 0, verb_sim_nvml_fail, "sim nvml-fail ERROR|off"},
                 {"vgpu", 0, verb_sim_vgpu, "sim vgpu UNIT KEY=VALUE..."})},
        {"capture", 1, verb_capture, "capture DIR               a read-only copy of this host's /sys and /proc (reports, tests)"},
        {"version", 0, verb_version, "version                   print the version"},
        {"help", 0, verb_help, "help                      this text"},
        {"__complete", 0, verb_complete, "__complete WORD...        completion candidates (bash completion)",
         VERB_HIDDEN},
};

#define GLOBAL_OPTIONS "--root --json --dry-run --connect --verbose --help --version"

static int verb_help(int argc, char **argv) {
        if (argc > 1)
                return usage_error("help: unexpected argument '%s' (the manual: man gpuvirt)", argv[1]);
        printf("Usage: gpuvirt [OPTIONS] COMMAND [ARGS]\n\n"
               "GPU virtualization manager for KVM/libvirt hosts.\n\n"
               "Options (anywhere on the line; -- ends them):\n"
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
                if (!(verbs[i].flags & VERB_HIDDEN))
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

static size_t table_size(const Verb *t) {
        size_t n = 0;
        while (t[n].name)
                n++;
        return n;
}

/* The entry of table (n entries) named name, or NULL after a usage error naming the nearest one. what: ""
 * for verbs, "VERB: " for sub-verbs. */
static const Verb *verb_find(const Verb *table, size_t n, const char *name, const char *what) {
        const char *best = NULL;
        size_t bd = 3;
        for (size_t i = 0; i < n; i++) {
                if (streq(table[i].name, name))
                        return &table[i];
                size_t dist = edit_distance(name, table[i].name);
                if (dist < bd && !(table[i].flags & VERB_HIDDEN)) {
                        bd = dist;
                        best = table[i].name;
                }
        }
        if (best)
                usage_error("%sunknown command '%s'; did you mean '%s'?", what, name, best);
        else if (*what) {
                _cleanup_free_ char *names = NULL;
                for (size_t i = 0; i < n; i++) {
                        char *j = strdup_printf("%s%s%s", names ?: "", names ? ", " : "", table[i].name);
                        free(names);
                        names = j;
                }
                usage_error("%sunknown command '%s' (%s)", what, name, strna(names));
        } else
                usage_error("unknown command '%s'", name);
        return NULL;
}

static int verb_usage(const Verb *v, const Verb *sub) {
        if (sub)
                printf("Usage: gpuvirt %s\n", sub->synopsis);
        else
                printf("Usage: gpuvirt %s\n", v->synopsis);
        printf("\nGlobal options (anywhere on the line): --root DIR, --json, --dry-run, --connect URI, -v.\n"
               "See 'gpuvirt --help' and gpuvirt(1).\n");
        return 0;
}

static bool is_help(const char *a) {
        return streq(a, "--help") || streq(a, "-h");
}

static int dispatch(int argc, char **argv) {
        if (argc <= 0)
                return usage_error("no command given");
        const Verb *v = verb_find(verbs, ELEMENTSOF(verbs), argv[0], "");
        if (!v)
                return -EINVAL;
        const Verb *sub = NULL;
        if (v->subs && argc > 1 && !is_help(argv[1])) {
                _cleanup_free_ char *what = strdup_printf("%s: ", v->name);
                if (!what)
                        return log_oom();
                if (!(sub = verb_find(v->subs, table_size(v->subs), argv[1], what)))
                        return -EINVAL;
        }
        /* VERB [SUBVERB] ... --help: that usage, on stdout (options end at --) */
        for (int i = 1; i < argc && !streq(argv[i], "--"); i++)
                if (is_help(argv[i]))
                        return verb_usage(v, sub);
        /* Commands with sub-commands need one; the rest check their own arguments. */
        if (argc - 1 < v->min_args || (sub && argc - 2 < sub->min_args))
                return usage_error("%s: missing argument; usage: gpuvirt %s", v->name, (sub ?: v)->synopsis);
        arg.mutating = (v->flags & VERB_MUTATING) || (sub && (sub->flags & VERB_MUTATING));
        /* the table is the one dispatcher: a verb with sub-verbs has no function of its own */
        int (*fn)(int, char **) = sub ? sub->fn : v->fn;
        assert(fn);
        return fn(argc, argv);
}

/* ---- completion: `gpuvirt __complete WORD...` prints the candidates for the last word (bash completion,
 * data/gpuvirt.bash-completion) ---- */

static void complete_words(const char *words, const char *cur) {
        _cleanup_free_ char *copy = strdup(words);
        char *save = NULL;
        for (char *w = copy ? strtok_r(copy, " ", &save) : NULL; w; w = strtok_r(NULL, " ", &save))
                if (startswith(w, cur))
                        printf("%s\n", w);
}

static void complete_table(const Verb *t, size_t n, const char *cur) {
        for (size_t i = 0; i < n; i++)
                if (!(t[i].flags & VERB_HIDDEN) && startswith(t[i].name, cur))
                        printf("%s\n", t[i].name);
}

/* Device addresses of the host (--root on the line, else $GPUVIRT_ROOT or /): what a BDF argument takes. */
static void complete_devices(const char *cur) {
        _cleanup_root_free_ Root *root = NULL;
        _cleanup_pci_host_free_ PciHost *h = NULL;
        if (root_open(arg.root, 0, &root) < 0 || pci_host_scan(root, &h) < 0)
                return;
        for (size_t i = 0; i < h->n_devices; i++)
                if (startswith(h->devices[i].addr, cur))
                        printf("%s\n", h->devices[i].addr);
}

static int verb_complete(int argc, char **argv) {
        /* argv[1..]: the words after "gpuvirt" (global options already taken out), the last one being completed */
        int n = argc - 1;
        char **w = argv + 1;
        const char *cur = n > 0 ? w[n - 1] : "";
        const char *prev = n > 1 ? w[n - 2] : "";
        if (streq(prev, "--root") || streq(prev, "-f") || streq(prev, "--file") || streq(prev, "-o") ||
            streq(prev, "--output") || streq(prev, "--connect"))
                return 0; /* a file, a directory or a URI: bash completes those itself */
        if (streq(prev, "--profile")) {
                for (size_t i = 0; i < sim_profile_count(); i++)
                        if (startswith(sim_profile_info(i)->name, cur))
                                printf("%s\n", sim_profile_info(i)->name);
                return 0;
        }
        if (n <= 1) {
                if (startswith(cur, "-"))
                        complete_words(GLOBAL_OPTIONS, cur);
                else
                        complete_table(verbs, ELEMENTSOF(verbs), cur);
                return 0;
        }
        const Verb *v = NULL;
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verbs[i].name, w[0]))
                        v = &verbs[i];
        if (!v)
                return 0;
        if (v->subs && n == 2) {
                complete_table(v->subs, table_size(v->subs), cur);
                return 0;
        }
        const Verb *sub = NULL;
        for (size_t i = 0; v->subs && v->subs[i].name; i++)
                if (streq(v->subs[i].name, w[1]))
                        sub = &v->subs[i];
        if (startswith(cur, "-")) {
                complete_words(GLOBAL_OPTIONS, cur);
                if ((sub ?: v)->options)
                        complete_words((sub ?: v)->options, cur);
                return 0;
        }
        if (streq(v->name, "host") && n == 3)
                complete_words("enable", cur);
        else if (!streq(v->name, "sim") && !streq(v->name, "help") && !streq(v->name, "version"))
                complete_devices(cur);
        return 0;
}

/* Take the global options out of argv wherever they stand (up to "--", which ends all options and stays
 * for the verb's own parser). Returns the new argc (argv compacted in place) or -EINVAL, or
 * -(EXIT_MAX + 1) for an early exit done (--help, --version before the verb). */
#define EARLY_EXIT (-1000)
static int take_global_options(int argc, char **argv) {
        int out = 1;
        bool have_verb = false, ended = false;
        for (int i = 1; i < argc; i++) {
                char *a = argv[i];
                if (ended || a[0] != '-' || streq(a, "-")) {
                        have_verb = true;
                        argv[out++] = a;
                        continue;
                }
                if (streq(a, "--")) {
                        ended = true;
                        if (have_verb) /* the verb's parser stops there too */
                                argv[out++] = a;
                        continue;
                }
                const char *val = NULL;
                const char *eq = strchr(a, '=');
                size_t len = eq ? (size_t)(eq - a) : strlen(a);
#define OPT_IS(name) (len == strlen(name) && strneq(a, name, len))
                bool with_value = OPT_IS("--root") || OPT_IS("--connect");
                if (with_value) {
                        if (eq)
                                val = eq + 1;
                        else if (i + 1 < argc)
                                val = argv[++i];
                        else
                                return usage_error("unknown option or missing value: '%s'", a), -EINVAL;
                }
                if (OPT_IS("--root")) {
                        if (isempty(val))
                                return usage_error("--root: empty directory (an unset variable?); give --root / for "
                                                   "the live host"), -EINVAL;
                        arg.root = val;
                } else if (OPT_IS("--connect")) {
                        if (isempty(val))
                                return usage_error("--connect: empty libvirt URI"), -EINVAL;
                        arg.connect = val;
                } else if (!eq && streq(a, "--json"))
                        arg.json = true;
                else if (!eq && streq(a, "--dry-run"))
                        arg.dry_run = true;
                else if (!eq && (streq(a, "--verbose") || (a[1] == 'v' && strspn(a + 1, "v") == strlen(a + 1))))
                        arg.verbose += streq(a, "--verbose") ? 1 : (int)strlen(a + 1);
                else if (!have_verb && !eq && (streq(a, "--help") || streq(a, "-h")))
                        return verb_help(0, NULL) ?: (fflush(stdout) || ferror(stdout) ? -EIO : EARLY_EXIT);
                else if (!have_verb && !eq && streq(a, "--version"))
                        return verb_version(0, NULL), EARLY_EXIT;
                else if (!have_verb)
                        return usage_error("unknown option or missing value: '%s'", a), -EINVAL;
                else /* the verb's own (its parser says when it is wrong) */
                        argv[out++] = a;
#undef OPT_IS
        }
        argv[out] = NULL;
        return out;
}

int main(int argc, char **argv) {
        sim_backend_register();
        int n = take_global_options(argc, argv);
        if (n == EARLY_EXIT)
                return 0;
        if (n < 0)
                return exit_status(n);
        if (arg.verbose)
                log_set_max_level(LOG_LEVEL_DEBUG);

        /* the verb's -errno, result or exit code becomes the exit status here, and only here */
        int r = exit_status(dispatch(n - 1, argv + 1));
        unlock_host();
        /* A full disk or closed pipe on stdout is a failure, not a silent truncation. */
        if (fflush(stdout) != 0 || ferror(stdout)) {
                if (r == 0)
                        log_error("Failed to write output: %m");
                return r ?: EXIT_FAILURE;
        }
        return r;
}
