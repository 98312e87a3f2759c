/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The desired host state: plan, apply, assert, export, recover, status (core/hoststate.c). */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "cli/common.h"
#include "cli/output.h"
#include "core/hostspec.h"
#include "core/hoststate.h"

typedef struct StateArgs {
        const char *file;
        const char *output;
} StateArgs;

static void state_opt(int c, const char *v, void *ud) {
        StateArgs *a = ud;
        if (c == 'f')
                a->file = v;
        else if (c == 'o')
                a->output = v;
}

/* Load the spec: -f FILE as given, else etc/gpuvirt/host.yaml under the root. Reads and writes nothing else
 * (refused input changes nothing). Prints the error; 0 or an exit code: 2 for a file that is bad, too large,
 * or (given with -f) missing. */
static int load_spec(Root *root, const StateArgs *a, HostSpec **ret) {
        _cleanup_free_ char *path = a->file ? strdup(a->file) : root_path(root, HOST_STATE_FILE);
        _cleanup_free_ char *shown = a->file ? strdup(a->file) : strdup("/" HOST_STATE_FILE);
        _cleanup_free_ char *err = NULL;
        if (!path || !shown)
                return log_error_errno(ENOMEM, "Out of memory."), EXIT_FAILURE;
        int r = host_spec_load(path, shown, ret, &err);
        if (r == -ENOENT && !a->file)
                return log_error("%s does not exist: write one, or start from 'gpuvirt export -o %s'.", shown, shown),
                       EXIT_FAILURE;
        if (r < 0)
                return log_error("%s", err ?: strerror(-r)), input_error_exit(r, a->file != NULL);
        return 0;
}

static int plan_spec(Root *root, const HostSpec *s, Plan **ret) {
        _cleanup_free_ char *err = NULL;
        int r = host_plan(root, s, ret, &err);
        if (r < 0)
                return log_error("%s", err ?: strerror(-r)), r == -EINVAL ? EXIT_USAGE : EXIT_FAILURE;
        return 0;
}

static int make_plan(Root *root, const StateArgs *a, Plan **ret) {
        _cleanup_host_spec_free_ HostSpec *s = NULL;
        int rc = load_spec(root, a, &s);
        if (rc)
                return rc;
        return plan_spec(root, s, ret);
}

static void print_plan(const Plan *p, const char *empty) {
        if (p->n_steps == 0) {
                printf("%s\n", empty);
                return;
        }
        for (size_t i = 0; i < p->n_steps; i++) {
                _cleanup_free_ char *d = step_describe(&p->steps[i]);
                printf("%2zu. %s\n", i + 1, strna(d));
        }
}

static int do_plan(Root *root, const StateArgs *a, bool assert_only) {
        _cleanup_plan_free_ Plan *p = NULL;
        int rc = make_plan(root, a, &p);
        if (rc)
                return rc;
        if (arg.json) {
                json_object *j = plan_json(p);
                json_print(j, stdout);
                json_object_put(j);
        } else if (assert_only) {
                if (p->n_steps)
                        printf("The host differs from the desired state (%zu step(s) to converge):\n", p->n_steps);
                print_plan(p, "The host matches the desired state.");
        } else
                print_plan(p, "No changes.");
        return assert_only && p->n_steps ? EXIT_FAILURE : 0;
}

static int do_apply(Root *root, const StateArgs *a) {
        /* The file and the mig-parted files it names first, before anything is written, the lock included:
         * a file refused here changes nothing (no run/, no var/lib/gpuvirt/, no last-apply.json). */
        _cleanup_host_spec_free_ HostSpec *s = NULL;
        int rc = load_spec(root, a, &s);
        if (rc)
                return rc;
        _cleanup_close_ int lock = -EBADF;
        if (!arg.dry_run) {
                lock = lock_host(root);
                if (lock < 0)
                        return -lock;
                /* an apply that was killed: finish its step first */
                _cleanup_free_ char *step = NULL, *err = NULL;
                int r = host_recover(root, &step, &err);
                if (step && r >= 0)
                        log_notice("Finished the step an interrupted apply left: %s", step);
                if (r < 0)
                        return log_error("Cannot recover the interrupted step%s%s: %s", step ? " " : "", strna(step),
                                         strna(err)), EXIT_FAILURE;
        }
        _cleanup_plan_free_ Plan *p = NULL;
        rc = plan_spec(root, s, &p);
        const char *file = a->file ?: "/" HOST_STATE_FILE;
        if (rc) {
                /* a request this host cannot do is refused input too: the last apply's record stays as it is */
                if (!arg.dry_run && rc != EXIT_USAGE)
                        (void)host_result_write(root, file, false, 0, "the host could not be read");
                return rc;
        }
        /* under --dry-run: the plan, then (from host_apply) the writes each step would make, in order */
        if (arg.dry_run)
                print_plan(p, "No changes.");
        size_t done = 0;
        _cleanup_free_ char *err = NULL;
        int r = host_apply(root, p, &done, &err);
        if (!arg.dry_run)
                (void)host_result_write(root, file, r >= 0, done, err);
        if (arg.json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "steps", plan_json(p));
                json_object_object_add(o, "done", json_object_new_int((int)done));
                json_object_object_add(o, "error", err ? json_object_new_string(err) : NULL);
                json_print(o, stdout);
                json_object_put(o);
        } else if (!arg.dry_run) {
                for (size_t i = 0; i < done; i++) {
                        _cleanup_free_ char *d = step_describe(&p->steps[i]);
                        printf("done: %s\n", strna(d));
                }
                if (p->n_steps == 0)
                        printf("No changes: the host matches %s.\n", file);
        }
        if (r < 0)
                return log_error("%s", strna(err)), EXIT_FAILURE;
        return 0;
}

static int do_export(Root *root, const StateArgs *a) {
        _cleanup_host_spec_free_ HostSpec *s = NULL;
        _cleanup_free_ char *err = NULL;
        int r = host_export(root, &s, &err);
        if (r < 0)
                return log_error("%s", err ?: strerror(-r)), EXIT_FAILURE;
        _cleanup_free_ char *text = host_spec_format(s);
        if (!text)
                return log_error_errno(ENOMEM, "Out of memory."), EXIT_FAILURE;
        if (!a->output) {
                fputs(text, stdout);
                return 0;
        }
        r = write_text(a->output, text);
        if (r < 0)
                return log_error_errno(r, "Cannot write %s: %m", a->output), EXIT_FAILURE;
        return 0;
}

static int do_recover(Root *root) {
        _cleanup_close_ int lock = lock_host(root);
        if (lock < 0)
                return -lock;
        _cleanup_free_ char *step = NULL, *err = NULL;
        int r = host_recover(root, &step, &err);
        if (r < 0)
                return log_error("%s", strna(err)), EXIT_FAILURE;
        if (step)
                printf("Finished the interrupted step: %s\n", step);
        else
                printf("Nothing to recover.\n");
        return 0;
}

static int do_status(Root *root, const StateArgs *a) {
        /* both files are read strictly: a damaged one is said to be damaged, never taken for "none" */
        HostResult last = {};
        Step js = {};
        _cleanup_free_ char *last_bad = NULL, *journal_bad = NULL;
        int rl = host_result_read(root, &last, &last_bad), rj = host_journal_read(root, &js, &journal_bad);
        bool have_last = rl >= 0, have_journal = rj >= 0;
        if (rl < 0 && rl != -ENOENT && !last_bad)
                last_bad = strdup_printf(HOST_RESULT_FILE ": %s", strerror(-rl));
        if (rj < 0 && rj != -ENOENT && !journal_bad)
                journal_bad = strdup_printf(HOST_JOURNAL_FILE ": %s", strerror(-rj));
        bool failed = (have_last && !last.ok) || last_bad || journal_bad;
        /* drift, when there is a file to compare with */
        _cleanup_plan_free_ Plan *p = NULL;
        _cleanup_host_spec_free_ HostSpec *s = NULL;
        _cleanup_free_ char *path = a->file ? strdup(a->file) : root_path(root, HOST_STATE_FILE), *err = NULL;
        bool have_file = path && host_spec_load(path, a->file ?: "/" HOST_STATE_FILE, &s, &err) == 0;
        if (have_file && host_plan(root, s, &p, &err) < 0)
                p = NULL;
        /* a desired state that is there but cannot be read or planned is not green (the rig's boot: the
         * unit failed on an impossible entry while status said nothing was wrong) */
        bool unusable = path && !p && access(path, F_OK) == 0;
        if (arg.json) {
                json_object *o = json_object_new_object(), *lo = NULL;
                if (have_last) {
                        lo = json_object_new_object();
                        json_object_object_add(lo, "time", json_object_new_int64(last.time));
                        json_object_object_add(lo, "file", json_object_new_string(last.file));
                        json_object_object_add(lo, "ok", json_object_new_boolean(last.ok));
                        json_object_object_add(lo, "steps", json_object_new_int((int)last.steps));
                        json_object_object_add(lo, "error", json_string_or_null(last.error));
                }
                json_object_object_add(o, "last_apply", lo);
                json_object_object_add(o, "interrupted_step", have_journal ? step_json(&js) : NULL);
                json_object_object_add(o, "drift", p ? plan_json(p) : NULL);
                json_object_object_add(o, "error", json_string_or_null(err));
                json_object *damaged = json_object_new_array();
                if (last_bad)
                        json_object_array_add(damaged, json_object_new_string(last_bad));
                if (journal_bad)
                        json_object_array_add(damaged, json_object_new_string(journal_bad));
                json_object_object_add(o, "damaged", damaged);
                json_print(o, stdout);
                json_object_put(o);
        } else {
                if (last_bad)
                        printf("Last apply: the record is damaged: %s\n", last_bad);
                else if (!have_last)
                        printf("Last apply: none recorded\n");
                else
                        printf("Last apply: %s (%s, %u step(s))%s%s\n", last.ok ? "succeeded" : "FAILED", last.file,
                               last.steps, last.ok ? "" : ": ", last.ok ? "" : strna(last.error));
                if (journal_bad)
                        printf("Interrupted step: the journal is damaged: %s\n", journal_bad);
                else if (have_journal) {
                        _cleanup_free_ char *d = step_describe(&js);
                        printf("Interrupted step: %s (run 'gpuvirt recover')\n", strna(d));
                }
                if (!have_file)
                        printf("Desired state: %s\n", err ? err : "no file");
                else if (p)
                        printf("Drift: %s\n", p->n_steps ? "the host differs (see 'gpuvirt plan')" : "none");
                else
                        printf("Drift: cannot plan: %s\n", strna(err));
        }
        host_result_done(&last);
        step_done(&js);
        return failed || have_journal || unusable || (p && p->n_steps) ? EXIT_FAILURE : 0;
}

int verb_state(int argc, char **argv) {
        static const struct option opts[] = {
                {"file", required_argument, NULL, 'f'},
                {"output", required_argument, NULL, 'o'},
                {},
        };
        StateArgs a = {};
        int k = parse_verb_options(argc, argv, opts, "f:o:", state_opt, &a);
        if (k < 0)
                return -k;
        if (k != argc)
                return usage_error("%s: unexpected argument '%s'", argv[0], argv[k]);
        if (a.output && !streq(argv[0], "export"))
                return usage_error("%s: -o is for export", argv[0]);
        _cleanup_root_free_ Root *root = NULL;
        int r = open_root(0, &root);
        if (r)
                return r;
        if (streq(argv[0], "plan"))
                return do_plan(root, &a, false);
        if (streq(argv[0], "assert"))
                return do_plan(root, &a, true);
        if (streq(argv[0], "apply"))
                return do_apply(root, &a);
        if (streq(argv[0], "export"))
                return do_export(root, &a);
        if (streq(argv[0], "recover"))
                return do_recover(root);
        return do_status(root, &a);
}
