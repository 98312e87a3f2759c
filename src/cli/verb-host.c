/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "basic/errname.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "cli/common.h"
#include "cli/output.h"
#include "core/host/bootcfg.h"
#include "core/host/check.h"

static void apply_opt(int c, const char *v, void *ud) {
        *(bool *)ud = true;
}

static int host_iommu_enable(int argc, char **argv) {
        static const struct option opts[] = {{"apply", no_argument, NULL, 'a'}, {}};
        bool apply = false;
        int k = parse_verb_options(argc, argv, opts, "", apply_opt, &apply);
        if (k < 0)
                return -EINVAL; /* parse_verb_options() said why */
        if (k != argc)
                return usage_error("host iommu enable: unexpected argument '%s'", argv[k]);
        _cleanup_root_free_ Root *root = NULL;
        int r = open_root(0, &root);
        if (r)
                return r;
        /* the IOMMU's vendor decides the arguments (a VM may have an AMD CPU and Intel's VT-d) */
        CpuVendor v = iommu_vendor_read(root, cpu_vendor_read(root));
        if (v == CPU_VENDOR_UNKNOWN)
                log_warning("CPU vendor unknown (no readable proc/cpuinfo): using the Intel arguments.");
        if (v == CPU_VENDOR_ARM)
                return log_error("ARM hosts enable the SMMU from firmware; nothing to add."), -EOPNOTSUPP;
        IommuEdit e;
        _cleanup_(gv_error_done) GvError err = {};
        r = boot_config_set_args(root, iommu_kernel_args(v), iommu_kernel_off_args(v), &e, &err);
        if (r == -EINVAL) /* the file does not parse: FILE:LINE:COL, bad input */
                return log_error("%s", gv_error_message(&err)), r;
        if (r < 0) {
                _cleanup_free_ char *t = error_text(&err, r);
                return log_error("Cannot update the boot configuration under %s: %s", root_dir(root), strna(t)),
                       failure_errno(r);
        }
        /* --apply: regenerate the boot loader's configuration (also when the arguments were already there: a
         * run without --apply may have left it stale); only on the live host */
        int rc = 0, status = -1;
        const char *skipped = !apply ? "--apply not given"
                            : arg.dry_run ? "--dry-run"
                            : !root_runs_commands(root) ? "not the live host (only the live host's boot loader is regenerated)"
                                                           : NULL;
        if (!skipped) {
                if (!arg.json) {
                        printf("running: %s\n", e.regen);
                        fflush(stdout);
                }
                r = root_run_command(root, e.regen, &status);
                if (r < 0 || status != 0) {
                        log_error("'%s' failed (%s): run it by hand.", e.regen, r < 0 ? errno_message(r) : "non-zero exit status");
                        rc = r < 0 ? failure_errno(r) : -EIO;
                }
        } else if (apply && arg.dry_run)
                (void)root_run_command(root, e.regen, &status);
        if (arg.json) {
                _cleanup_json_ json_object *o = json_object_new_object();
                if (json_add_string(o, "file", e.file) < 0 || json_add_string(o, "backup", e.backup) < 0 ||
                    json_add_string(o, "old_cmdline", e.old_cmdline) < 0 ||
                    json_add_string(o, "new_cmdline", e.new_cmdline) < 0 ||
                    json_add(o, "changed", json_object_new_boolean(e.changed)) < 0 ||
                    json_add_string(o, "regenerate_command", e.regen) < 0 ||
                    json_add(o, "regenerated", json_object_new_boolean(!skipped && status == 0)) < 0 ||
                    json_add_int_or_null(o, "regenerate_status", !skipped && status >= 0, status) < 0 ||
                    json_add_string(o, "regenerate_skipped", skipped) < 0 ||
                    json_add(o, "reboot_required", json_object_new_boolean(e.changed)) < 0 || json_print(o, stdout) < 0) {
                        iommu_edit_done(&e);
                        return log_oom();
                }
        } else {
                if (!e.changed)
                        printf("/%s already has the IOMMU arguments: %s\n", e.file, e.new_cmdline);
                else {
                        printf("/%s: kernel arguments \"%s\" -> \"%s\"\n", e.file, e.old_cmdline, e.new_cmdline);
                        if (e.backup)
                                printf("backup: /%s\n", e.backup);
                }
                if (skipped && apply && !arg.dry_run)
                        printf("would run: %s (only on the live host)\n", e.regen);
                else if (!apply && e.changed)
                        printf("next: run '%s'\n", e.regen);
                if (e.changed)
                        printf("then reboot, and verify with: dmesg | grep -E \"DMAR|IOMMU\" and 'gpuvirt check'\n");
        }
        iommu_edit_done(&e);
        return rc;
}

/* host iommu (the verb table dispatches it; argv[0] is "host", argv[1] "iommu"): one action so far. */
int verb_host_iommu(int argc, char **argv) {
        if (argc >= 3 && streq(argv[2], "enable"))
                return host_iommu_enable(argc - 2, argv + 2);
        return usage_error("host: unknown command (host iommu enable [--apply])");
}
