/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>

#include "basic/gverror.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "cli/common.h"
#include "cli/output.h"
#include "core/host/capture.h"

/* gpuvirt capture DIR: a read-only copy of what gpuvirt reads of this host (core/host/capture.h). */
int verb_capture(int argc, char **argv) {
        static const struct option none[] = {{}};
        int k = parse_verb_options(argc, argv, none, "", NULL, NULL);
        if (k < 0)
                return -EINVAL; /* parse_verb_options() said why */
        if (argc - k != 1)
                return usage_error("capture: expected one directory: gpuvirt capture DIR");
        _cleanup_root_free_ Root *root = NULL;
        int r = open_root(0, &root);
        if (r)
                return r;
        GvError err = {};
        unsigned files = 0;
        r = host_capture(root, argv[k], &files, &err);
        if (r < 0) {
                log_error("%s.", gv_error_message(&err));
                gv_error_done(&err);
                return r == -ENOTEMPTY ? -EINVAL : failure_errno(r); /* a non-empty DIR: bad input (exit 2) */
        }
        if (arg.json) {
                _cleanup_json_ json_object *o = json_object_new_object();
                if (json_add_string(o, "root", root_dir(root)) < 0 || json_add_string(o, "dir", argv[k]) < 0 ||
                    json_add(o, "files", json_object_new_int64(files)) < 0 || json_print(o, stdout) < 0)
                        return log_oom();
                return 0;
        }
        printf("Captured %s into %s: %u files and links (gpuvirt --root %s list | check reads it).\n", root_dir(root),
               argv[k], files, argv[k]);
        return 0;
}
