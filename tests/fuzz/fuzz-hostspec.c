/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* host.yaml: what parses formats back into a file that parses to the same entries; every rejection is
 * "f.yaml:LINE:COL: reason". */
#include <string.h>

#include "basic/fileio.h"
#include "core/state/hostspec.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        HostSpec *s = NULL;
        _cleanup_(gv_error_done) GvError e = {};
        int r = host_spec_parse("f.yaml", (const char *)data, size, &s, &e);
        const char *err = e.message;
        if (r < 0) {
                FUZZ_CHECK(r == -EINVAL && e.error == EINVAL && err && startswith(err, "f.yaml:"));
                FUZZ_CHECK(strchr(err + strlen("f.yaml:"), ':')); /* LINE:COL */
                return 0;
        }
        FUZZ_CHECK(!err && e.error == 0);
        char *t = host_spec_format(s);
        FUZZ_CHECK(t);
        HostSpec *s2 = NULL;
        _cleanup_(gv_error_done) GvError e2 = {};
        int r2 = host_spec_parse("f.yaml", t, strlen(t), &s2, &e2);
        const char *err2 = e2.message;
        if (r2 < 0)
                fprintf(stderr, "round trip: %s\n%s\n", err2, t);
        FUZZ_CHECK(r2 == 0 && s2->n_entries == s->n_entries);
        char *t2 = host_spec_format(s2);
        FUZZ_CHECK(t2 && strcmp(t, t2) == 0);
        free(t2);
        free(t);
        host_spec_free(s2);
        host_spec_free(s);
        return 0;
}
