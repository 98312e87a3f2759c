/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "basic/fileio.h"
#include "sim/nvml/fake-nvml.h"
#include "sim/sim.h"

/* gpuvirt's fault point for the changes we make (sim_nvml_fault()). */
static GpuvirtSimNvmlFaultHook fault_hook;

API int gpuvirtSimNvmlSetFaultHook(GpuvirtSimNvmlFaultHook hook) {
        fault_hook = hook;
        return 0;
}

/* Before a change to d's state: an injected fault fails the call (a KILL fault ends the process here, the
 * change not made), as a kernel write would. */
bool faulted(const FDev *d, const char *call) {
        return fault_hook && fault_hook(root, d->bdf, call) < 0;
}
