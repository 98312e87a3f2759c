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
                return -k;
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
                return r == -ENOTEMPTY ? EXIT_USAGE : EXIT_FAILURE;
        }
        if (arg.json) {
                _cleanup_json_ json_object *o = json_object_new_object();
                json_object_object_add(o, "root", json_object_new_string(root_dir(root)));
                json_object_object_add(o, "dir", json_object_new_string(argv[k]));
                json_object_object_add(o, "files", json_object_new_int64(files));
                r = json_print(o, stdout);
                return r < 0 ? EXIT_FAILURE : 0;
        }
        printf("Captured %s into %s: %u files and links (gpuvirt --root %s list | check reads it).\n", root_dir(root),
               argv[k], files, argv[k]);
        return 0;
}
