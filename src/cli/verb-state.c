/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The desired host state: plan, apply, assert, export, recover, status (core/hoststate.c). */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "cli/common.h"
#include "cli/output.h"
#include "core/hostspec.h"
#include "core/hoststate.h"
#include "core/vfio.h"

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

/* Load the spec: -f FILE as given, else etc/gpuvirt/host.yaml under the root. Prints the error. */
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
                return log_error("%s", err ?: strerror(-r)), r == -EINVAL ? EXIT_USAGE : EXIT_FAILURE;
        return 0;
}

static int make_plan(Root *root, const StateArgs *a, Plan **ret) {
        _cleanup_host_spec_free_ HostSpec *s = NULL;
        int rc = load_spec(root, a, &s);
        if (rc)
                return rc;
        _cleanup_free_ char *err = NULL;
        int r = host_plan(root, s, ret, &err);
        if (r < 0)
                return log_error("%s", err ?: strerror(-r)), r == -EINVAL ? EXIT_USAGE : EXIT_FAILURE;
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

/* host_recover(), saying what it did: on stdout for recover, as notices on stderr for apply (which recovers
 * before it plans). *ret_recovered: whether it did anything. 0 or an exit code. */
static int recover(Root *root, bool as_notices, bool *ret_recovered) {
        _cleanup_free_ char *step = NULL, *err = NULL;
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
                return log_error("Cannot recover%s%s: %s", step ? " the interrupted step " : "", step ?: "", strna(err)),
                       EXIT_FAILURE;
        return 0;
}

static int do_apply(Root *root, const StateArgs *a) {
        bool recovered = false;
        int rc;
        /* an apply that was killed: finish its step first, and give lost drivers back */
        if (!arg.dry_run && (rc = recover(root, true, &recovered)))
                return rc;
        _cleanup_plan_free_ Plan *p = NULL;
        rc = make_plan(root, a, &p);
        const char *file = a->file ?: "/" HOST_STATE_FILE;
        if (rc) {
                if (!arg.dry_run)
                        (void)host_result_write(root, file, false, 0, "the file was rejected (see the journal)");
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
                        printf(recovered ? "Recovered (see above): the host matches %s.\n"
                                         : "No changes: the host matches %s.\n", file);
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
        bool recovered;
        int rc = recover(root, false, &recovered);
        if (rc == 0 && !recovered)
                printf("Nothing to recover.\n");
        return rc;
}

static json_object *strv_json(char *const *l) {
        json_object *a = json_object_new_array();
        for (char *const *x = l; x && *x; x++)
                json_object_array_add(a, json_object_new_string(*x));
        return a;
}

static int do_status(Root *root, const StateArgs *a) {
        _cleanup_free_ char *result = NULL;
        json_object *step = NULL;
        (void)root_read_attr(root, &result, HOST_RESULT_FILE);
        json_object *last = result ? json_tokener_parse(result) : NULL;
        bool failed = last && !json_object_get_boolean(json_object_object_get(last, "ok"));
        /* the journal: the step an apply was making, or damaged (apply refuses it) */
        int jr = host_journal_step(root, &step);
        bool damaged = jr == -EBADMSG;
        /* devices that lost their driver: drift whatever the file says */
        _cleanup_pci_host_free_ PciHost *h = NULL;
        _cleanup_strv_free_ char **lost = NULL;
        if (pci_host_scan(root, &h) >= 0)
                (void)vfio_lost_list(root, h, &lost);
        /* drift, when there is a file to compare with */
        _cleanup_plan_free_ Plan *p = NULL;
        _cleanup_host_spec_free_ HostSpec *s = NULL;
        _cleanup_free_ char *path = a->file ? strdup(a->file) : root_path(root, HOST_STATE_FILE), *err = NULL;
        bool have_file = path && host_spec_load(path, a->file ?: "/" HOST_STATE_FILE, &s, &err) == 0;
        if (have_file && host_plan(root, s, &p, &err) < 0)
                p = NULL;
        if (arg.json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "last_apply", json_object_get(last));
                json_object_object_add(o, "interrupted_step", json_object_get(step));
                json_object_object_add(o, "journal_damaged", json_object_new_boolean(damaged));
                json_object_object_add(o, "lost_drivers", strv_json(lost));
                json_object_object_add(o, "drift", p ? plan_json(p) : NULL);
                json_object_object_add(o, "error", err ? json_object_new_string(err) : NULL);
                json_print(o, stdout);
                json_object_put(o);
        } else {
                if (!last)
                        printf("Last apply: none recorded\n");
                else
                        printf("Last apply: %s (%s, %d step(s))%s%s\n",
                               json_object_get_boolean(json_object_object_get(last, "ok")) ? "succeeded" : "FAILED",
                               json_object_get_string(json_object_object_get(last, "file")),
                               json_object_get_int(json_object_object_get(last, "steps")),
                               failed ? ": " : "", failed ? strna(json_object_get_string(json_object_object_get(last, "error"))) : "");
                if (step)
                        printf("Interrupted step: %s (run 'gpuvirt recover')\n",
                               json_object_get_string(json_object_object_get(step, "description")));
                if (damaged)
                        printf("Journal: /" HOST_JOURNAL_FILE " is damaged: apply and recover refuse it; remove it and "
                               "run 'gpuvirt apply'\n");
                for (char **x = lost; x && *x; x++)
                        printf("No driver: %s (run 'gpuvirt recover')\n", *x);
                if (!have_file)
                        printf("Desired state: %s\n", err ? err : "no file");
                else if (p)
                        printf("Drift: %s\n", p->n_steps ? "the host differs (see 'gpuvirt plan')" : "none");
                else
                        printf("Drift: cannot plan: %s\n", strna(err));
        }
        json_object_put(last);
        json_object_put(step);
        return failed || step || damaged || strv_length(lost) || (p && p->n_steps) || (have_file && !p) ? EXIT_FAILURE : 0;
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
