/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>

#include "basic/fileio.h"
#include "core/host/root.h"
#include "sim/sim.h"

/* The simulator as a backend of core's root (core/host/root.h): a directory holding SIM_MARKER_DIR is a
 * simulated host, its writes are played by the kernel model, its NVML is our fake libnvidia-ml.so.1. */

static bool sim_claims(const char *dir) {
        _cleanup_free_ char *marker = strdup_printf("%s/" SIM_MARKER_DIR, dir);
        return marker && dir_exists(marker);
}

static int sim_backend_write(const char *rootdir, const char *rel, const char *path, const char *value) {
        return sim_kernel_write(rootdir, rel, value);
}

static int sim_backend_nvml_library(char **ret_library, char **ret_error) {
        int r = sim_nvml_library(ret_library);
        if (r < 0)
                *ret_error = strdup_printf("the simulator's libnvidia-ml.so.1 %s",
                                           r == -EPERM ? "may be written by others than root: not loading it"
                                                       : "is not installed (build gpuvirt, or install it)");
        return r;
}

/* Only the fake library answers these: it learns which simulated root it plays and where its fault point is. */
static int sim_backend_nvml_setup(void *dl, const char *rootdir) {
        __typeof__(&gpuvirtSimNvmlSetRoot) set_root =
                (__typeof__(&gpuvirtSimNvmlSetRoot))dlsym(dl, GPUVIRT_SIM_NVML_SET_ROOT);
        __typeof__(&gpuvirtSimNvmlSetFaultHook) set_hook =
                (__typeof__(&gpuvirtSimNvmlSetFaultHook))dlsym(dl, GPUVIRT_SIM_NVML_SET_FAULT_HOOK);
        int r = set_root && set_hook ? set_root(rootdir) : -ENOSYS;
        return r < 0 ? r : set_hook(sim_nvml_fault);
}

static const RootBackend sim_backend = {
        .kind = ROOT_SIMULATED,
        .claims = sim_claims,
        .kernel_write = sim_backend_write,
        .module_load = sim_module_load,
        .nvml_library = sim_backend_nvml_library,
        .nvml_setup = sim_backend_nvml_setup,
};

void sim_backend_register(void) {
        root_backend_register(&sim_backend);
}
