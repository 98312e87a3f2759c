/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The simulator's side of NVML that lives in gpuvirt itself: where the fake library is, and the reset
 * counter the kernel model keeps for it. The fake library is src/sim/nvml/fake-nvml.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/stat.h>

#include "basic/fileio.h"
#include "config.h"
#include "sim-internal.h"
#include "sim/nvml/generation.h"
#include "sim.h"

/* Whether the running program is part of the build tree gpuvirt was built in (the tests, a developer's
 * build/src/gpuvirt), as opposed to an installed copy, whose build tree may be gone or someone else's. */
static bool running_from_build_tree(void) {
        const char *exe = (const char *)getauxval(AT_EXECFN);
        _cleanup_free_ char *abs = exe ? realpath(exe, NULL) : NULL;
        const char *rest = abs ? startswith(abs, GPUVIRT_BUILD_ROOT) : NULL;
        return rest && rest[0] == '/';
}

int sim_nvml_library(char **ret) {
        const char *lib = running_from_build_tree() ? GPUVIRT_SIM_NVML_BUILD_PATH : GPUVIRT_PKGLIBDIR "/libnvidia-ml.so.1";
        struct stat st;
        if (stat(lib, &st) < 0)
                return negative_errno();
        /* code we are about to run: root's or ours, and nobody else may have written it */
        if (!S_ISREG(st.st_mode) || (st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 0022))
                return -EPERM;
        char *c = strdup(lib);
        if (!c)
                return -ENOMEM;
        *ret = c;
        return 0;
}

int sim_reset_count(const char *root, const char *bdf) {
        _cleanup_free_ char *dir = strdup_printf("%s/" SIM_MARKER_DIR "/resets", root);
        _cleanup_free_ char *p = strdup_printf("%s/" SIM_MARKER_DIR "/resets/%s", root, bdf);
        if (!dir || !p)
                return -ENOMEM;
        uint32_t n = 0;
        int r = read_attr_u32(p, 10, &n);
        if (r == -ENOENT) { /* the first reset of this device, maybe of the host: the directory is made then */
                r = mkdir_p(dir, 0755);
                if (r < 0)
                        return r;
                n = 0;
        }
        r = sim_attr(dir, bdf, 0644, "%u\n", n + 1);
        if (r < 0)
                return r;
        sim_nvml_generation_touch(root); /* the fake library's callers look at the count again */
        return 0;
}
