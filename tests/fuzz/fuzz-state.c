/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gpuvirt's own state and definition files, each read back through its public reader. The first byte
 * of the input picks the file ('0'..'5', modulo), the rest is its content. What is accepted has valid
 * fields; what is refused says which file and why. */
#include <string.h>

#include "basic/fileio.h"
#include "basic/jsonfile.h"
#include "core/state/hoststate.h"
#include "core/passthrough/persist.h"
#include "core/sriov/sriov.h"
#include "core/vgpu/vendor-vgpu.h"
#include "core/passthrough/vfio.h"
#include "fuzz.h"

#define BDF "0000:01:00.0"

static const char *const files[] = {
        "var/lib/gpuvirt/passthrough/" BDF, VFIO_PERSIST_DIR "/" BDF, SRIOV_PERSIST_DIR "/" BDF,
        HOST_JOURNAL_FILE,                  HOST_RESULT_FILE,          VENDOR_VGPU_PERSIST_DIR "/0000:01:00.4",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        size_t kind = data[0] % (sizeof files / sizeof files[0]);
        Root *root = fuzz_root();
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
                (void)root_write_file(root, NULL, "%s", files[i]);
        fuzz_write(files[kind], data + 1, size - 1);
        char *err = NULL;
        int r = 0;
        switch (kind) {
        case 0: {
                char *d = vfio_saved_driver(root, BDF);
                FUZZ_CHECK(!d || string_is_kernel_name(d));
                free(d);
                break;
        }
        case 1: {
                bool force;
                char **inc = NULL;
                _cleanup_(gv_error_done) GvError e = {};
                r = vfio_persist_read(root, BDF, &force, &inc, &e);
                FUZZ_CHECK(r >= 0 || e.error == -r);
                err = TAKE_PTR(e.message);
                for (char **i = inc; r >= 0 && i && *i; i++)
                        FUZZ_CHECK(pci_addr_is_canonical(*i));
                strv_free(inc);
                break;
        }
        case 2: {
                unsigned n = 0;
                bool vfio;
                _cleanup_(gv_error_done) GvError e = {};
                r = sriov_persist_read(root, BDF, &n, &vfio, &e);
                FUZZ_CHECK(r >= 0 || e.error == -r);
                err = TAKE_PTR(e.message);
                FUZZ_CHECK(r < 0 || n <= 0xffff);
                break;
        }
        case 3: {
                Step s = {};
                GvError je = {};
                r = host_journal_read(root, &s, &je);
                err = TAKE_PTR(je.message);
                gv_error_done(&je);
                if (r >= 0) {
                        FUZZ_CHECK(pci_addr_is_canonical(s.device));
                        /* what the journal gives back is journaled again unchanged */
                        char *d = step_describe(&s);
                        json_object *o = json_object_new_object();
                        json_object_object_add(o, "step", step_json(&s));
                        const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
                        fuzz_write(HOST_JOURNAL_FILE, t, strlen(t));
                        json_object_put(o);
                        Step s2 = {};
                        GvError err2 = {};
                        FUZZ_CHECK(host_journal_read(root, &s2, &err2) == 0);
                        gv_error_done(&err2);
                        char *d2 = step_describe(&s2);
                        FUZZ_CHECK(d && d2 && streq(d, d2));
                        free(d);
                        free(d2);
                        step_done(&s2);
                }
                step_done(&s);
                break;
        }
        case 4: {
                HostResult h = {};
                GvError he = {};
                r = host_result_read(root, &h, &he);
                err = TAKE_PTR(he.message);
                gv_error_done(&he);
                host_result_done(&h);
                break;
        }
        case 5: {
                VendorVgpuUnit *u = NULL;
                size_t n = 0;
                if (vendor_vgpu_units(root, &u, &n) >= 0)
                        vendor_vgpu_units_free(u, n);
                break;
        }
        }
        /* a refusal names the file: "PATH[:LINE:COL]: reason" */
        FUZZ_CHECK(r >= 0 || r == -ENOENT || (err && strstr(err, files[kind])));
        free(err);
        return 0;
}
