/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* mdevctl's definitions (etc/mdevctl.d/<parent>/<uuid>): what parses has a valid type, start and
 * attribute names, and is written back by mdev_define() into a file that parses the same. */
#include <string.h>

#include "basic/fileio.h"
#include "core/vgpu/mdev.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *type = NULL, *start = NULL;
        _cleanup_(gv_error_done) GvError err = {};
        MdevAttr *a = NULL;
        size_t n = 0;
        int r = mdev_definition_parse("d", (const char *)data, size, &type, &start, &a, &n, &err);
        if (r < 0) {
                FUZZ_CHECK(r == -EBADMSG && err.error == EBADMSG && err.message && startswith(err.message, "d"));
                return 0;
        }
        FUZZ_CHECK(mdev_type_valid(type) && (streq(start, "auto") || streq(start, "manual")));
        static const char uuid[] = "0e3b9f2a-4b1c-4d3e-9f00-112233445566";
        FUZZ_CHECK(mdev_define(fuzz_root(), "0000:00:02.0", uuid, type, streq(start, "auto"), a, n) == 0);
        _cleanup_free_ char *p = root_path(fuzz_root(), MDEVCTL_DIR "/0000:00:02.0/%s", uuid);
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        FUZZ_CHECK(p && read_full(p, 1 << 20, (void **)&text, &len) == 0);
        char *type2 = NULL, *start2 = NULL;
        _cleanup_(gv_error_done) GvError err2 = {};
        MdevAttr *a2 = NULL;
        size_t n2 = 0;
        r = mdev_definition_parse(p, text, len, &type2, &start2, &a2, &n2, &err2);
        if (r < 0)
                fprintf(stderr, "round trip: %s\n", strna(err2.message));
        FUZZ_CHECK(r == 0 && streq(type, type2) && streq(start, start2) && n == n2);
        for (size_t i = 0; i < n; i++)
                FUZZ_CHECK(streq(a[i].name, a2[i].name) && streq(a[i].value, a2[i].value));
        free(type2);
        free(start2);
        mdev_attrs_free(a2, n2);
        free(type);
        free(start);
        mdev_attrs_free(a, n);
        return 0;
}
