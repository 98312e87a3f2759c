/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <string.h>

#include "basic/fileio.h"
#include "fuzz.h"
#include "sim/sim.h"

static char *fuzz_dir;
static Root *root;

char *fuzz_text(const uint8_t *data, size_t size) {
        char *s = malloc(size + 1);
        if (!s)
                abort();
        memcpy(s, data, size);
        s[size] = '\0';
        return s;
}

static void cleanup(void) {
        root_free(root);
        if (fuzz_dir)
                (void)rm_rf(fuzz_dir);
        free(fuzz_dir);
}

Root *fuzz_root(void) {
        if (root)
                return root;
        fuzz_dir = strdup_printf("%s/gpuvirt-fuzz-XXXXXX", getenv("TMPDIR") ?: "/tmp");
        if (!fuzz_dir || !mkdtemp(fuzz_dir))
                abort();
        static const char *const dirs[] = {".gpuvirt-sim", "sys/bus/pci/devices", "etc/default", "proc"};
        for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
                _cleanup_free_ char *p = strdup_printf("%s/%s", fuzz_dir, dirs[i]);
                if (!p || mkdir_p(p, 0755) < 0)
                        abort();
        }
        sim_backend_register();
        if (root_open(fuzz_dir, 0, &root) < 0 || root_kind(root) != ROOT_SIMULATED)
                abort();
        atexit(cleanup);
        return root;
}

void fuzz_write(const char *rel, const void *data, size_t len) {
        _cleanup_free_ char *p = root_path(fuzz_root(), "%s", rel);
        if (!p)
                abort();
        char *slash = strrchr(p, '/');
        *slash = '\0';
        if (mkdir_p(p, 0755) < 0)
                abort();
        *slash = '/';
        if (write_file(p, data, len, O_CREAT | O_TRUNC, 0644) < 0)
                abort();
}
