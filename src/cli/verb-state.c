/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The desired host state: plan, apply, assert, export, recover, status (core/state/hoststate.h). */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "cli/common.h"
#include "cli/output.h"
#include "core/state/hostspec.h"
#include "core/state/hoststate.h"
#include "core/passthrough/vfio.h"

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
        _cleanup_(gv_error_done) GvError err = {};
        if (!path || !shown)
                return log_error_errno(ENOMEM, "Out of memory."), -ENOMEM;
        int r = host_spec_load(path, shown, ret, &err);
        if (r == -ENOENT && !a->file)
                return log_error("%s does not exist: write one, or start from 'gpuvirt export -o %s'.", shown, shown),
                       -ENOENT;
        if (r < 0)
                return log_error("%s", gv_error_message(&err) ?: errno_message(r)),
                       input_error_exit(r, a->file != NULL) == EXIT_USAGE ? -EINVAL : failure_errno(r);
        return 0;
}

static int plan_spec(Root *root, const HostSpec *s, Plan **ret) {
        _cleanup_(gv_error_done) GvError err = {};
        int r = host_plan(root, s, ret, &err);
        if (r < 0)
                return log_error("%s", err.message ?: errno_message(r)), r == -EINVAL ? r : failure_errno(r);
        return 0;
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

static int do_plan(Root *root, const HostSpec *s, bool assert_only) {
        _cleanup_plan_free_ Plan *p = NULL;
        int rc = plan_spec(root, s, &p);
        if (rc)
                return rc;
        if (arg.json) {
                _cleanup_json_ json_object *j = plan_json(p);
                if (!j || json_print(j, stdout) < 0)
                        return log_oom();
        } else if (assert_only) {
                if (p->n_steps)
                        printf("The host differs from the desired state (%zu step(s) to converge):\n", p->n_steps);
                print_plan(p, "The host matches the desired state.");
        } else
                print_plan(p, "No changes.");
        return assert_only && p->n_steps ? VERB_CHECK_FAILED : 0; /* drift: the check ran and failed */
}

/* host_recover(), saying what it did: on stdout for recover, as notices on stderr for apply (which recovers
 * before it plans). *ret_recovered: whether it did anything. 0 or an exit code. */
static int recover(Root *root, bool as_notices, bool *ret_recovered) {
        _cleanup_free_ char *step = NULL;
        _cleanup_(gv_error_done) GvError err = {};
        _cleanup_strv_free_ char **restored = NULL;
        int r = host_recover(root, &step, &restored, &err);
        char *said = NULL;
        if (step && r >= 0)
                said = strdup_printf("Finished the step an interrupted apply left: %s", step);
        for (char **x = restored; x && *x; x++) {
                char *l = strdup_printf("%s%sGave a device without a driver back to the one it had: %s", said ?: "",
                                        said ? "\n" : "", *x);
                free(said);
                said = l;
        }
        if (said && as_notices)
                log_notice("%s", said);
        else if (said)
                printf("%s\n", said);
        free(said);
        *ret_recovered = step || restored;
        if (r < 0)
                return log_error("Cannot recover%s%s: %s", step ? " the interrupted step " : "", step ?: "", strna(err.message)),
                       failure_errno(r);
        return 0;
}

/* The spec was loaded (and the lock taken) before: a file refused when it is read changes nothing (no run/,
 * no var/lib/gpuvirt/, no last-apply.json). */
static int do_apply(Root *root, const StateArgs *a, const HostSpec *s) {
        bool recovered = false;
        int rc;
        /* an apply that was killed: finish its step first, and give lost drivers back */
        if (!arg.dry_run && (rc = recover(root, true, &recovered)))
                return rc;
        _cleanup_plan_free_ Plan *p = NULL;
        rc = plan_spec(root, s, &p);
        const char *file = a->file ?: "/" HOST_STATE_FILE;
        if (rc) {
                /* a request this host cannot do is refused input too: the last apply's record stays as it is */
                if (!arg.dry_run && exit_status(rc) != EXIT_USAGE)
                        (void)host_result_write(root, file, false, 0, "the host could not be read");
                return rc;
        }
        /* under --dry-run: the plan, then (from host_apply) the writes each step would make, in order */
        if (arg.dry_run)
                print_plan(p, "No changes.");
        size_t done = 0;
        _cleanup_(gv_error_done) GvError aerr = {};
        int r = host_apply(root, p, &done, &aerr);
        const char *err = aerr.message;
        if (!arg.dry_run)
                (void)host_result_write(root, file, r >= 0, done, err);
        if (arg.json) {
                _cleanup_json_ json_object *o = json_object_new_object();
                if (json_add(o, "steps", plan_json(p)) < 0 || json_add(o, "done", json_object_new_int((int)done)) < 0 ||
                    json_add_string(o, "error", err) < 0 || json_print(o, stdout) < 0)
                        return log_oom();
        } else if (!arg.dry_run) {
                for (size_t i = 0; i < done; i++) {
                        _cleanup_free_ char *d = step_describe(&p->steps[i]);
                        printf("done: %s\n", strna(d));
                }
                if (p->n_steps == 0)
                        printf(recovered ? "Recovered (see above): the host matches %s.\n"
                                         : "No changes: the host matches %s.\n", file);
        }
        if (r < 0)
                return log_error("%s", strna(err)), failure_errno(r);
        return 0;
}

static int do_export(Root *root, const StateArgs *a) {
        _cleanup_host_spec_free_ HostSpec *s = NULL;
        _cleanup_(gv_error_done) GvError err = {};
        int r = host_export(root, &s, &err);
        if (r < 0)
                return log_error("%s", err.message ?: errno_message(r)), failure_errno(r);
        _cleanup_free_ char *text = host_spec_format(s);
        if (!text)
                return log_error_errno(ENOMEM, "Out of memory."), -ENOMEM;
        if (!a->output) {
                fputs(text, stdout);
                return 0;
        }
        r = write_text(a->output, text);
        if (r < 0)
                return log_error_errno(r, "Cannot write %s: %m", a->output), failure_errno(r);
        return 0;
}

static int do_recover(Root *root) {
        bool recovered;
        int rc = recover(root, false, &recovered);
        if (rc == 0 && !recovered)
                printf("Nothing to recover.\n");
        return rc;
}

/* NULL on OOM */
static json_object *strv_json(char *const *l) {
        json_object *a = json_object_new_array();
        for (char *const *x = l; a && x && *x; x++)
                if (json_append(a, json_object_new_string(*x)) < 0) {
                        json_object_put(a);
                        return NULL;
                }
        return a;
}

/*
 * What needs attention, in one model: the last apply failed, an apply was interrupted, a device lost its
 * driver, the host drifted from the file (or the file cannot be planned), and any state file status reads
 * that is damaged (last-apply.json, the journal): each damaged one is "FILE: reason" in `damaged` (JSON) and
 * a line "...: the <record> is damaged: FILE: reason (what to do)". Any of them is exit 1.
 */
static int do_status(Root *root, const StateArgs *a) {
        /* both files are read strictly: a damaged one is said to be damaged, never taken for "none" */
        HostResult last = {};
        Step js = {};
        _cleanup_(gv_error_done) GvError lbad = {}, jbad = {};
        int rl = host_result_read(root, &last, &lbad), rj = host_journal_read(root, &js, &jbad);
        _cleanup_free_ char *last_bad = TAKE_PTR(lbad.message), *journal_bad = TAKE_PTR(jbad.message);
        bool have_last = rl >= 0, have_journal = rj >= 0;
        if (rl < 0 && rl != -ENOENT && !last_bad)
                last_bad = strdup_printf(HOST_RESULT_FILE ": %s", errno_message(rl));
        if (rj < 0 && rj != -ENOENT && !journal_bad)
                journal_bad = strdup_printf(HOST_JOURNAL_FILE ": %s", errno_message(rj));
        bool failed = (have_last && !last.ok) || last_bad || journal_bad;
        /* devices that lost their driver: drift whatever the file says */
        _cleanup_pci_host_free_ PciHost *h = NULL;
        _cleanup_strv_free_ char **lost = NULL;
        if (pci_host_scan(root, &h) >= 0)
                (void)vfio_lost_list(root, h, &lost);
        /* drift, when there is a file to compare with */
        _cleanup_plan_free_ Plan *p = NULL;
        _cleanup_host_spec_free_ HostSpec *s = NULL;
        _cleanup_free_ char *path = a->file ? strdup(a->file) : root_path(root, HOST_STATE_FILE), *err = NULL;
        _cleanup_(gv_error_done) GvError lerr = {};
        bool have_file = path && host_spec_load(path, a->file ?: "/" HOST_STATE_FILE, &s, &lerr) == 0;
        if (!have_file) /* the reason, said as the file's state below */
                err = TAKE_PTR(lerr.message);
        _cleanup_(gv_error_done) GvError perr = {};
        if (have_file && host_plan(root, s, &p, &perr) < 0) {
                p = NULL;
                err = TAKE_PTR(perr.message);
        }
        /* a desired state that is there but cannot be read or planned is not green (the rig's boot: the
         * unit failed on an impossible entry while status said nothing was wrong) */
        bool unusable = path && !p && access(path, F_OK) == 0;
        if (arg.json) {
                _cleanup_json_ json_object *o = json_object_new_object();
                json_object *lo = have_last ? json_object_new_object() : NULL, *damaged = json_object_new_array();
                bool oom = (have_last && !lo) || !damaged || !o;
                if (!oom && have_last)
                        oom = json_add(lo, "time", json_object_new_int64(last.time)) < 0 ||
                              json_add_string(lo, "file", last.file) < 0 ||
                              json_add(lo, "ok", json_object_new_boolean(last.ok)) < 0 ||
                              json_add(lo, "steps", json_object_new_int((int)last.steps)) < 0 ||
                              json_add_string(lo, "error", last.error) < 0;
                if (!oom) {
                        oom = (lo ? json_add(o, "last_apply", TAKE_PTR(lo)) : json_add_string(o, "last_apply", NULL)) < 0 ||
                              (have_journal ? json_add(o, "interrupted_step", step_json(&js))
                                            : json_add_string(o, "interrupted_step", NULL)) < 0 ||
                              json_add(o, "lost_drivers", strv_json(lost)) < 0 ||
                              (p ? json_add(o, "drift", plan_json(p)) : json_add_string(o, "drift", NULL)) < 0 ||
                              json_add_string(o, "error", err) < 0 ||
                              (last_bad && json_append(damaged, json_object_new_string(last_bad)) < 0) ||
                              (journal_bad && json_append(damaged, json_object_new_string(journal_bad)) < 0) ||
                              json_add(o, "damaged", TAKE_PTR(damaged)) < 0 || json_print(o, stdout) < 0;
                }
                json_object_put(lo);
                json_object_put(damaged);
                if (oom)
                        return log_oom();
        } else {
                if (last_bad)
                        printf("Last apply: the record is damaged: %s (the next apply writes a new one)\n", last_bad);
                else if (!have_last)
                        printf("Last apply: none recorded\n");
                else
                        printf("Last apply: %s (%s, %u step(s))%s%s\n", last.ok ? "succeeded" : "FAILED", last.file,
                               last.steps, last.ok ? "" : ": ", last.ok ? "" : strna(last.error));
                if (journal_bad)
                        printf("Interrupted step: the journal is damaged: %s (apply and recover refuse it; remove it "
                               "and run 'gpuvirt apply')\n", journal_bad);
                else if (have_journal) {
                        _cleanup_free_ char *d = step_describe(&js);
                        printf("Interrupted step: %s (run 'gpuvirt recover')\n", strna(d));
                }
                for (char **x = lost; x && *x; x++)
                        printf("No driver: %s (run 'gpuvirt recover')\n", *x);
                if (!have_file)
                        printf("Desired state: %s\n", err ? err : "no file");
                else if (p)
                        printf("Drift: %s\n", p->n_steps ? "the host differs (see 'gpuvirt plan')" : "none");
                else
                        printf("Drift: cannot plan: %s\n", strna(err));
        }
        host_result_done(&last);
        step_done(&js);
        return failed || have_journal || strv_length(lost) || unusable || (p && p->n_steps) ? VERB_CHECK_FAILED : 0;
}

/* The verbs' common start (the verb table dispatches each to its function below; argv[0] is the verb): the
 * options, then the root. host.yaml lives under the root: the root first, without the lock; then the file
 * and the mig-parted files it names (spec not NULL: plan, assert, apply), so a refused file takes no lock and
 * changes nothing; then the lock (apply, recover: the table marks them) before anything of the host is
 * observed. 0, or what the verb returns. */
static int state_begin(int argc, char **argv, StateArgs *a, Root **ret_root, HostSpec **spec) {
        static const struct option opts[] = {
                {"file", required_argument, NULL, 'f'},
                {"output", required_argument, NULL, 'o'},
                {},
        };
        int k = parse_verb_options(argc, argv, opts, "f:o:", state_opt, a);
        if (k < 0)
                return -EINVAL;
        if (k != argc)
                return usage_error("%s: unexpected argument '%s'", argv[0], argv[k]), -EINVAL;
        if (a->output && !streq(argv[0], "export"))
                return usage_error("%s: -o is for export", argv[0]), -EINVAL;
        _cleanup_root_free_ Root *root = NULL;
        int r = open_root_unlocked(0, &root);
        if (r)
                return r;
        if (spec && (r = load_spec(root, a, spec)))
                return r;
        if ((r = hold_host_lock(root)))
                return r;
        *ret_root = TAKE_PTR(root);
        return 0;
}

static int plan_or_assert(int argc, char **argv, bool assert_only) {
        StateArgs a = {};
        _cleanup_root_free_ Root *root = NULL;
        _cleanup_host_spec_free_ HostSpec *s = NULL;
        return state_begin(argc, argv, &a, &root, &s) ?: do_plan(root, s, assert_only);
}

int verb_state_plan(int argc, char **argv) {
        return plan_or_assert(argc, argv, false);
}

int verb_state_assert(int argc, char **argv) {
        return plan_or_assert(argc, argv, true);
}

int verb_state_apply(int argc, char **argv) {
        StateArgs a = {};
        _cleanup_root_free_ Root *root = NULL;
        _cleanup_host_spec_free_ HostSpec *s = NULL;
        return state_begin(argc, argv, &a, &root, &s) ?: do_apply(root, &a, s);
}

int verb_state_export(int argc, char **argv) {
        StateArgs a = {};
        _cleanup_root_free_ Root *root = NULL;
        return state_begin(argc, argv, &a, &root, NULL) ?: do_export(root, &a);
}

int verb_state_recover(int argc, char **argv) {
        StateArgs a = {};
        _cleanup_root_free_ Root *root = NULL;
        return state_begin(argc, argv, &a, &root, NULL) ?: do_recover(root);
}

int verb_state_status(int argc, char **argv) {
        StateArgs a = {};
        _cleanup_root_free_ Root *root = NULL;
        return state_begin(argc, argv, &a, &root, NULL) ?: do_status(root, &a);
}
