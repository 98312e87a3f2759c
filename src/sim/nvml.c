/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The simulator's side of NVML that lives in gpuvirt itself: where the fake library is, and the reset
 * counter the kernel model keeps for it. The fake library is src/sim/nvml/fake-nvml.c. */
#include <errno.h>
#include <stdio.h>

#include "basic/fileio.h"
#include "config.h"
#include "sim-internal.h"

const char *sim_nvml_library_path(void) {
#ifdef GPUVIRT_SIM_NVML_BUILD_PATH
        if (path_exists(GPUVIRT_SIM_NVML_BUILD_PATH))
                return GPUVIRT_SIM_NVML_BUILD_PATH;
#endif
        return GPUVIRT_PKGLIBDIR "/libnvidia-ml.so.1";
}

int sim_reset_count(const char *root, const char *bdf) {
        _cleanup_free_ char *dir = strdup_printf("%s/" SIM_MARKER_DIR "/resets", root);
        _cleanup_free_ char *p = strdup_printf("%s/" SIM_MARKER_DIR "/resets/%s", root, bdf);
        if (!dir || !p)
                return -ENOMEM;
        int r = mkdir_p(dir, 0755);
        if (r < 0)
                return r;
        uint32_t n = 0;
        (void)read_attr_u32(p, 10, &n);
        return sim_attr(dir, bdf, 0644, "%u\n", n + 1);
}
