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
#include "core/host/check.h"
#include "core/host/inventory.h"
#include "core/host/iommu.h"
#include "core/host/names.h"
#include "core/host/pci.h"
#include "core/host/root.h"
#include "sim/sim.h"

GlobalArgs arg = {};

int usage_error(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        fputs("gpuvirt: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputs("\nTry 'gpuvirt --help'.\n", stderr);
        va_end(ap);
        return -EINVAL;
}

char *error_text(GvError *e, int r) {
        const char *m = gv_error_message(e);
        if (!m)
                return strdup(errno_message(r));
        switch (e->hint) {
        case GV_HINT_FORCE:
                return strdup_printf("%s; use --force to take it anyway", m);
        case GV_HINT_INCLUDE:
                return strdup_printf("%s. Name it with --include %s and add --force to move it along.", m,
                                     strna(e->device));
        case GV_HINT_DISRUPT:
                return strdup_printf("%s; run again with --allow-disrupt to move them", m);
        case GV_HINT_LOST_GPU:
                return strdup_printf("%s. Look for Xid 79 and AER errors in dmesg, then reset it (nvidia-smi -r) or "
                                     "reseat/power-cycle it; 'gpuvirt check' names the device.", m);
        case GV_HINT_MIG_ENABLE:
                return strdup_printf("%s. Enable it: gpuvirt mig enable %s", m, strna(e->device));
        case GV_HINT_MIG_STATUS:
                return strdup_printf("%s (see 'gpuvirt mig status %s').", m, strna(e->device));
        case GV_HINT_MIG_DESTROY_ALL:
                return strdup_printf("%s. Destroy them first: gpuvirt mig destroy %s --all", m, strna(e->device));
        case GV_HINT_FORCE_TRY:
                return strdup_printf("%s, or --force to try anyway.", m);
        case GV_HINT_FORCE_CLEAR:
                return strdup_printf("%s (use --force to clear it anyway)", m);
        case GV_HINT_FORCE_BUSY:
                return strdup_printf("%s or use --force", m);
        case GV_HINT_VM_CONFIG:
                return strdup_printf("%s: use --config to change its persistent definition.", m);
        case GV_HINT_VM_LIVE:
                return strdup_printf("%s: use --live.", m);
        case GV_HINT_VM_HELD:
                return strdup_printf("%s or use --force.", m);
        case GV_HINT_GUEST_SLOT:
                return strdup_printf("%s (give --guest-slot).", m);
        case GV_HINT_MDEV_TYPE:
                return strdup_printf("%s; use --mdev-type.", m);
        case GV_HINT_VGPU_TYPE:
                return strdup_printf("%s; use --vgpu-type.", m);
        case GV_HINT_VGPU_TYPE_FOR:
                return strdup_printf("--vgpu-type %s", m);
        default:
                return strdup(m);
        }
}

int exit_status(int r) {
        if (r == 0)
                return EXIT_SUCCESS;
        if (r > 0)
                return EXIT_FAILURE; /* no verb returns one: were one to, it is no success */
        return r == -EINVAL || r == -ERANGE ? EXIT_USAGE : EXIT_FAILURE;
}

int input_error_exit(int r, bool named_by_user) {
        if (r == -EINVAL || r == -EFBIG)
                return EXIT_USAGE;
        if (named_by_user && (r == -ENOENT || r == -EISDIR || r == -ENOTDIR))
                return EXIT_USAGE;
        return EXIT_FAILURE;
}

static int host_lock = -EBADF;

int hold_host_lock(Root *root) {
        /* A dry run changes nothing and takes no lock; on a root that takes no writes (a capture) it is
         * refused here as the plain run is, so that both exit alike. */
        if (!arg.mutating || host_lock >= 0 || (arg.dry_run && root_writable(root)))
                return 0;
        _cleanup_(gv_error_done) GvError err = {};
        int fd = root_lock(root, 30000, &err);
        if (fd < 0) {
                _cleanup_free_ char *t = error_text(&err, fd);
                log_error("Cannot take the host lock: %s.", strna(t));
                /* a capture is no host: the --root given is wrong for this verb (exit 2) */
                return fd == -EROFS ? -EINVAL : failure_errno(fd);
        }
        host_lock = fd;
        return 0;
}

void unlock_host(void) {
        if (host_lock >= 0)
                close(host_lock);
        host_lock = -EBADF;
}

int open_root_unlocked(unsigned extra_flags, Root **ret) {
        _cleanup_root_free_ Root *root = NULL;
        int r = root_open(arg.root, (arg.dry_run ? ROOT_DRY_RUN : 0) | extra_flags, &root);
        if (r == -EINVAL)
                return usage_error("GPUVIRT_ROOT is set but empty (an unset variable?); unset it for the live host");
        if (r < 0) {
                log_error_errno(r, "Cannot use root '%s': %m", arg.root ?: getenv("GPUVIRT_ROOT") ?: "/");
                return -EINVAL; /* whatever the reason, the root named is bad input (exit 2) */
        }
        /* --json: stdout holds the JSON document only; what a dry run would change is said on stderr */
        if (arg.json)
                root_set_dry_run_stream(root, stderr);
        *ret = TAKE_PTR(root);
        return 0;
}

int open_root(unsigned extra_flags, Root **ret) {
        _cleanup_root_free_ Root *root = NULL;
        int r = open_root_unlocked(extra_flags, &root);
        if (r == 0)
                r = hold_host_lock(root);
        if (r)
                return r;
        *ret = TAKE_PTR(root);
        return 0;
}

static int scan_with(Root *root, int (*how)(Root *, PciHost **), PciHost **ret) {
        int r = how(root, ret);
        if (r < 0) {
                log_error_errno(r, "Cannot read PCI devices under %s: %m", root_dir(root));
                return failure_errno(r);
        }
        return 0;
}

int scan(Root *root, PciHost **ret) {
        return scan_with(root, pci_host_scan, ret);
}

int scan_gpus(Root *root, PciHost **ret) {
        return scan_with(root, pci_host_scan_gpus, ret);
}

/* Resolve a device argument; prints the error. */
int lookup_device(const PciHost *h, const char *input, PciDevice **ret) {
        int r = pci_host_lookup(h, input, ret);
        if (r == -EINVAL) {
                log_error("'%s' is not a PCI address (expected DDDD:BB:DD.F or BB:DD.F, e.g. 0000:3b:00.0).",
                          input);
                return -EINVAL;
        }
        if (r < 0) {
                log_error("No PCI device %s on this host (see 'gpuvirt list').", input);
                return failure_errno(r);
        }
        return 0;
}

/* Parse verb options; returns index of first positional, or -EINVAL after saying what is wrong. */
int parse_verb_options(int argc, char **argv, const struct option *opts, const char *shortopts,
                              void (*handle)(int c, const char *optarg_, void *ud), void *ud) {
        optind = 0;
        opterr = 0;
        int c;
        while ((c = getopt_long(argc, argv, shortopts, opts, NULL)) >= 0) {
                if (c == '?' || c == ':') {
                        return usage_error("%s: unknown option or missing value: '%s'", argv[0], argv[optind - 1]);
                }
                handle(c, optarg, ud);
        }
        return optind;
}


int restore_each(const char *dir, int (*restore)(const char *name)) {
        _cleanup_root_free_ Root *root = NULL;
        int r = open_root(0, &root);
        if (r)
                return r;
        _cleanup_free_ char *p = root_path(root, "%s", dir);
        _cleanup_strv_free_ char **names = NULL;
        if (!p)
                return log_oom();
        r = dir_list(p, &names);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return log_error_errno(r, "Cannot read /%s: %m", dir), failure_errno(r);
        int worst = 0;
        for (char **n = names; *n; n++) {
                if (**n == '.') /* an atomic write's temporary file */
                        continue;
                int k = restore(*n);
                if (exit_status(k) > exit_status(worst))
                        worst = k;
        }
        return worst;
}

int failure_errno(int r) {
        return r < 0 && exit_status(r) == EXIT_FAILURE ? r : -EIO;
}

int log_oom(void) {
        log_error("Out of memory.");
        return -ENOMEM;
}
