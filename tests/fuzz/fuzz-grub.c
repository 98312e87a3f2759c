/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * etc/default/grub: the shell reader (sh_parse) over the raw bytes, the pure edit behind `host iommu enable`
 * (grub_cmdline_edit) adding the IOMMU arguments, and the same through the file (boot_config_set_args).
 * Properties besides no crash, leak or UB:
 *  - the edit refuses with "LINE:COL: why" (-EINVAL) exactly when the shell reader refuses the text; any
 *    other refusal (-EIO: it cannot make the file read back as intended) says why;
 *  - an edited file parses back, and the value GRUB_CMDLINE_LINUX ends with is the one the edit reports:
 *    the old arguments minus those removed or given another value, plus the added ones (compared as sets
 *    with cmdline_merge() of the old value, the merge systemd-boot's cmdline gets);
 *  - a second edit changes nothing;
 *  - through the file, what boot_config_read() reads after boot_config_set_args() holds the arguments.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "basic/fileio.h"
#include "basic/shellvar.h"
#include "core/host/bootcfg.h"
#include "fuzz.h"

#define VAR    "GRUB_CMDLINE_LINUX"
#define ADD    "intel_iommu=on iommu=pt"
#define REMOVE "intel_iommu=off"

/* text's value of VAR as the shell reader gives it (NULL when it does not parse). */
static char *value_of(const char *text, size_t len) {
        ShAssignment *a = NULL;
        size_t n = 0;
        _cleanup_free_ char *err = NULL;
        if (sh_parse(text, len, VAR, &a, &n, &err) < 0)
                return NULL;
        char *v = n ? sh_value(VAR, a, n) : strdup("");
        sh_assignments_free(a, n);
        FUZZ_CHECK(v);
        return v;
}

/* Every word of a is a word of b. */
static bool words_within(const char *a, const char *b) {
        _cleanup_free_ char *copy = strdup(a);
        FUZZ_CHECK(copy);
        for (char *save = NULL, *w = strtok_r(copy, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save)) {
                /* cmdline_has() matches a bare key against any value: compare words exactly */
                bool found = false;
                _cleanup_free_ char *other = strdup(b);
                FUZZ_CHECK(other);
                for (char *s2 = NULL, *x = strtok_r(other, " \t\n", &s2); x && !found; x = strtok_r(NULL, " \t\n", &s2))
                        found = streq(w, x);
                if (!found)
                        return false;
        }
        return true;
}

static void check_position(const char *err) {
        unsigned line, col;
        FUZZ_CHECK(err && sscanf(err, "%u:%u: ", &line, &col) == 2 && line >= 1 && col >= 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        /* the reader on the bytes as they are (NUL bytes are refused with their position) */
        ShAssignment *a = NULL;
        size_t n = 0;
        char *err = NULL;
        int r = sh_parse((const char *)data, size, VAR, &a, &n, &err);
        if (r < 0) {
                FUZZ_CHECK(r == -EINVAL);
                check_position(err);
        } else
                free(n ? sh_value(VAR, a, n) : NULL);
        sh_assignments_free(a, n);
        free(err);

        /* the edit, on the text up to a NUL byte (what a C string of the file is) */
        _cleanup_free_ char *text = fuzz_text(data, size);
        _cleanup_free_ char *before = value_of(text, strlen(text));
        _cleanup_free_ char *out = NULL, *old = NULL, *now = NULL;
        err = NULL;
        r = grub_cmdline_edit(text, ADD, REMOVE, &out, &old, &now, &err);
        if (r < 0) {
                FUZZ_CHECK(r == -EINVAL || r == -EIO);
                FUZZ_CHECK((r == -EINVAL) == !before);
                if (r == -EINVAL)
                        check_position(err);
                else
                        FUZZ_CHECK(err && *err);
                free(err);
                return 0;
        }
        FUZZ_CHECK(before && !err && out && old && now);
        FUZZ_CHECK(streq(old, before));
        /* the edited file reads back to what the edit says, with exactly the expected arguments */
        _cleanup_free_ char *after = value_of(out, strlen(out));
        FUZZ_CHECK(after && streq(after, now));
        _cleanup_free_ char *want = cmdline_merge(old, ADD, REMOVE);
        FUZZ_CHECK(want && words_within(want, now) && words_within(now, want));
        FUZZ_CHECK(cmdline_has(now, "intel_iommu=on") && cmdline_has(now, "iommu=pt") &&
                   !cmdline_has(now, "intel_iommu=off"));
        /* a second edit changes nothing */
        _cleanup_free_ char *out2 = NULL, *old2 = NULL, *now2 = NULL, *err2 = NULL;
        FUZZ_CHECK(grub_cmdline_edit(out, ADD, REMOVE, &out2, &old2, &now2, &err2) == 0);
        FUZZ_CHECK(streq(out2, out) && streq(old2, now) && streq(now2, now));

        /* the same through the file: written, read back with the arguments */
        Root *root = fuzz_root();
        _cleanup_free_ char *d = root_path(root, "etc/default");
        FUZZ_CHECK(d);
        (void)rm_rf(d);
        fuzz_write("etc/default/grub", text, strlen(text));
        IommuEdit e = {};
        _cleanup_(gv_error_done) GvError ferr = {};
        FUZZ_CHECK(boot_config_set_args(root, ADD, REMOVE, &e, &ferr) == 0);
        FUZZ_CHECK(e.new_cmdline && streq(e.new_cmdline, now));
        iommu_edit_done(&e);
        BootConfig c;
        FUZZ_CHECK(boot_config_read(root, &c) == 0);
        FUZZ_CHECK(c.grub_cmdline && cmdline_has(c.grub_cmdline, "intel_iommu=on") &&
                   cmdline_has(c.grub_cmdline, "iommu=pt") && !cmdline_has(c.grub_cmdline, "intel_iommu=off"));
        boot_config_done(&c);
        return 0;
}
