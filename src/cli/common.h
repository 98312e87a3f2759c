/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>

#include "basic/gverror.h"
#include "basic/macro.h"
#include "core/host/pci.h"
#include "core/host/root.h"

/* Exit codes: 0 success, 1 the operation failed (or a check failed), 2 bad usage or bad input. */
#define EXIT_USAGE 2

/* The one mapping from what a verb returns to the exit status (main(), and restore_each() for the worst of
 * several). Verbs return 0 or -errno: a -errno is 2 when it says the input was bad (-EINVAL, -ERANGE), 1
 * otherwise (a check that ran and failed, drift: VERB_CHECK_FAILED). A positive value is no verb's result:
 * it is taken as a failure (1). */
int exit_status(int r);

typedef struct GlobalArgs {
        const char *root;
        bool json;
        bool dry_run;
        int verbose;
        const char *connect; /* --connect URI (libvirt) */
        bool mutating;       /* the verb changes the host (the verb table): open_root() takes the host lock */
} GlobalArgs;

extern GlobalArgs arg;

/* Print a usage error (and the pointer to --help); returns -EINVAL (exit 2). */
int usage_error(const char *fmt, ...) _printf_(1, 2);
/* An operation's error as the person reads it: core's message, and what to type when it has a hint (the
 * options are the CLI's, so core never names them). r: the -errno, for an error without a message. */
char *error_text(GvError *e, int r);
/* The exit code for an input file that could not be used (r: -errno): 2 when the file is bad or too large,
 * or when given on the command line (-f) is missing or not a file; 1 otherwise. */
int input_error_exit(int r, bool named_by_user);
/* Open the root from --root/$GPUVIRT_ROOT; 0 or -errno (printed). Every verb gets its root here, before it
 * observes anything: for a mutating verb (arg.mutating, set from the verb table) this takes the host lock,
 * once, and holds it until unlock_host() at exit. */
int open_root(unsigned extra_flags, Root **ret);
/* For a verb whose input files live under the root (host.yaml): the root without the lock, so the files
 * are read and accepted first, then hold_host_lock() before anything of the host is observed. */
int open_root_unlocked(unsigned extra_flags, Root **ret);
/* Take the host lock if this run is armed for it (arg.mutating, not --dry-run), once; 0 or -errno (printed;
 * -EINVAL on a capture, which is no host). */
int hold_host_lock(Root *root);
void unlock_host(void);
int scan(Root *root, PciHost **ret);
/* The same with pci_host_scan_gpus(): for what shows GPUs only (list, check of every GPU). */
int scan_gpus(Root *root, PciHost **ret);
/* Resolve a device argument; prints the error; 0, -EINVAL (not an address) or -errno (no such device). scan():
 * 0 or -errno (printed). */
int lookup_device(const PciHost *h, const char *input, PciDevice **ret);

/* The boot units' "restore everything" form (passthrough restore, sriov restore without a device): run
 * restore(name) (0 or -errno) for each setting in dir (relative to the root, e.g. etc/gpuvirt/sriov.d), in
 * order; the -errno of the worst exit status, 0 when there is none. */
int restore_each(const char *dir, int (*restore)(const char *name));

/* getopt_long over a verb's argv (argv[0] is the verb). Returns the index of the first positional
 * argument, or -EINVAL after printing the error. */
int parse_verb_options(int argc, char **argv, const struct option *opts, const char *shortopts,
                       void (*handle)(int c, const char *optarg_, void *ud), void *ud);

int verb_list(int argc, char **argv);
int verb_show(int argc, char **argv);
int verb_check(int argc, char **argv);
int verb_capture(int argc, char **argv);
/* Sub-verbs, dispatched by the verb table (gpuvirt.c); each gets the verb's argv (argv[0] the verb,
 * argv[1] the sub-verb). */
int verb_sim_profiles(int argc, char **argv);
int verb_sim_create(int argc, char **argv);
int verb_sim_fault(int argc, char **argv);
int verb_sim_off_bus(int argc, char **argv);
int verb_sim_xid(int argc, char **argv);
int verb_sim_telemetry(int argc, char **argv);
int verb_sim_aer(int argc, char **argv);
int verb_sim_link(int argc, char **argv);
int verb_sim_remove(int argc, char **argv);
int verb_sim_nvml_fail(int argc, char **argv);
int verb_sim_vgpu(int argc, char **argv);
int verb_passthrough_enable(int argc, char **argv);
int verb_passthrough_disable(int argc, char **argv);
int verb_passthrough_persist(int argc, char **argv);
int verb_passthrough_restore(int argc, char **argv);
int verb_host_iommu(int argc, char **argv);
int verb_sriov_list(int argc, char **argv);
int verb_sriov_set(int argc, char **argv);
int verb_sriov_restore(int argc, char **argv);
int verb_vgpu_types(int argc, char **argv);
int verb_vgpu_list(int argc, char **argv);
int verb_vgpu_create(int argc, char **argv);
int verb_vgpu_remove(int argc, char **argv);
int verb_vgpu_start_defined(int argc, char **argv);
/* mig and vm: every sub-verb's entry is the verb's function, which reads argv[1] (verb-mig.c, verb-vm.c) */
int verb_mig(int argc, char **argv);
int verb_vm(int argc, char **argv);
int verb_advise(int argc, char **argv);
/* plan, apply, assert, export, recover, status: the desired host state (verb-state.c) */
int verb_state_plan(int argc, char **argv);
int verb_state_assert(int argc, char **argv);
int verb_state_apply(int argc, char **argv);
int verb_state_export(int argc, char **argv);
int verb_state_recover(int argc, char **argv);
int verb_state_status(int argc, char **argv);
/* hosts, gpus, request, release, show, status, drain, agent: the GPU pool across hosts (verb-fleet.c) */
int verb_fleet_hosts(int argc, char **argv);
int verb_fleet_gpus(int argc, char **argv);
int verb_fleet_request(int argc, char **argv);
int verb_fleet_release(int argc, char **argv);
int verb_fleet_show(int argc, char **argv);
int verb_fleet_status(int argc, char **argv);
int verb_fleet_drain(int argc, char **argv);
int verb_fleet_agent(int argc, char **argv);
/* The fleet store named (NULL: $GPUVIRT_FLEET_STORE, else the local store under the root), its refusal said
 * (a bad URL: -EINVAL). */
typedef struct Store Store;
int open_fleet_store(Root *root, const char *store, Store **ret);

/* Before releasing a device (passthrough disable): refuse when a running libvirt domain references a
 * function of its IOMMU group, unless force. Consults libvirt only on a live root or with --connect; an
 * unreachable libvirt is a warning. 0 to go on, or -errno (-EBUSY: held; verb-vm.c). */
int vm_check_release(Root *root, const char *bdf, bool force);

/* r (a -errno) when it maps to exit status 1, else -EIO: for a failure that is no usage error even when the
 * errno it came with says "invalid argument". */
int failure_errno(int r);
/* Print "Out of memory." and return -ENOMEM. */
int log_oom(void);
/* A check that ran and found the host not as asked (check: exit 1); nothing failed to run. */
#define VERB_CHECK_FAILED (-EHOSTDOWN)
