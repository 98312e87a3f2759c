/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "basic/dlsym-table.h"
#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "core/mig/nvml.h"

int nvml_error_to_errno(nvmlReturn_t r) {
        switch (r) {
        case NVML_SUCCESS:
                return 0;
        case NVML_ERROR_IN_USE:
                return -EBUSY;
        case NVML_ERROR_RESET_REQUIRED:
                return -EAGAIN;
        case NVML_ERROR_INSUFFICIENT_RESOURCES:
                return -ENOSPC;
        case NVML_ERROR_NOT_FOUND:
                return -ENOENT;
        case NVML_ERROR_NOT_SUPPORTED:
                return -EOPNOTSUPP;
        case NVML_ERROR_NO_PERMISSION:
                return -EPERM;
        case NVML_ERROR_INVALID_ARGUMENT:
                return -EINVAL;
        case NVML_ERROR_INSUFFICIENT_SIZE:
                return -ENOBUFS;
        case NVML_ERROR_UNINITIALIZED:
        case NVML_ERROR_DRIVER_NOT_LOADED:
                return -ENXIO;
        case NVML_ERROR_GPU_IS_LOST:
                return -ENODEV;
        default:
                return -EIO;
        }
}

const char *nvml_error_name(nvmlReturn_t r) {
        switch (r) {
        case NVML_SUCCESS: return "NVML_SUCCESS";
        case NVML_ERROR_UNINITIALIZED: return "NVML_ERROR_UNINITIALIZED";
        case NVML_ERROR_INVALID_ARGUMENT: return "NVML_ERROR_INVALID_ARGUMENT";
        case NVML_ERROR_NOT_SUPPORTED: return "NVML_ERROR_NOT_SUPPORTED";
        case NVML_ERROR_NO_PERMISSION: return "NVML_ERROR_NO_PERMISSION";
        case NVML_ERROR_NOT_FOUND: return "NVML_ERROR_NOT_FOUND";
        case NVML_ERROR_INSUFFICIENT_SIZE: return "NVML_ERROR_INSUFFICIENT_SIZE";
        case NVML_ERROR_DRIVER_NOT_LOADED: return "NVML_ERROR_DRIVER_NOT_LOADED";
        case NVML_ERROR_GPU_IS_LOST: return "NVML_ERROR_GPU_IS_LOST";
        case NVML_ERROR_RESET_REQUIRED: return "NVML_ERROR_RESET_REQUIRED";
        case NVML_ERROR_IN_USE: return "NVML_ERROR_IN_USE";
        case NVML_ERROR_INSUFFICIENT_RESOURCES: return "NVML_ERROR_INSUFFICIENT_RESOURCES";
        default: return "NVML_ERROR_UNKNOWN";
        }
}

char *nvml_errno_describe(int err) {
        static const nvmlReturn_t codes[] = {
                NVML_ERROR_IN_USE,         NVML_ERROR_RESET_REQUIRED,   NVML_ERROR_INSUFFICIENT_RESOURCES,
                NVML_ERROR_NOT_FOUND,      NVML_ERROR_NOT_SUPPORTED,    NVML_ERROR_NO_PERMISSION,
                NVML_ERROR_INVALID_ARGUMENT, NVML_ERROR_INSUFFICIENT_SIZE, NVML_ERROR_DRIVER_NOT_LOADED,
                NVML_ERROR_GPU_IS_LOST,
        };
        _cleanup_free_ char *d = errno_describe(err);
        if (!d)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(codes); i++)
                if (nvml_error_to_errno(codes[i]) == -abs(err))
                        return strdup_printf("%s: %s", nvml_error_name(codes[i]), d);
        return TAKE_PTR(d);
}

static int fail(GvError *ret_error, int err, const char *fmt, ...) _printf_(3, 4);
static int fail(GvError *ret_error, int err, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *msg = NULL;
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        log_debug_errno(err, "%s", msg ?: "NVML not available");
        return gv_error_take(ret_error, err, NULL, "nvml", GV_HINT_NONE, msg);
}

int nvml_open(Root *root, Nvml **ret, GvError *ret_error) {
        _cleanup_free_ char *lib = NULL;
        const RootBackend *b = root_backend(root);
        if (!b->nvml_library)
                return fail(ret_error, EOPNOTSUPP, "NVML not available: %s is %s", root_dir(root), b->why_no_nvml);
        _cleanup_free_ char *why = NULL;
        int r = b->nvml_library(&lib, &why);
        if (r < 0)
                return fail(ret_error, r == -ENOMEM ? ENOMEM : ENOPKG, "NVML not available: %s", strna(why));

        void *dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
        if (!dl)
                return fail(ret_error, ENOPKG, "NVML not available: %s", dlerror());

        Nvml *n = calloc(1, sizeof *n);
        if (!n) {
                dlclose(dl);
                return gv_error_set(ret_error, -ENOMEM, NULL, "nvml", NULL);
        }
        n->dl = dl;
        n->library = TAKE_PTR(lib);
        const DlsymEntry table[] = {
#define NVML_SYM_ENTRY(name, req) {#name, (void **)&n->f.name, req},
                NVML_SYMBOLS(NVML_SYM_ENTRY)
#undef NVML_SYM_ENTRY
        };
        const char *missing = NULL;
        if (dlsym_table(dl, table, ELEMENTSOF(table), &missing) < 0) {
                nvml_close(n);
                return fail(ret_error, ENOPKG, "NVML not available: libnvidia-ml.so.1 lacks %s", missing);
        }

        if (b->nvml_setup && b->nvml_setup(dl, root_dir(root)) < 0) {
                nvml_close(n);
                return fail(ret_error, ENOPKG, "NVML not available: %s does not take root %s", lib,
                            root_dir(root));
        }
        nvmlReturn_t e = n->f.nvmlInit_v2();
        if (e != NVML_SUCCESS) {
                r = nvml_error_to_errno(e);
                nvml_close(n);
                return fail(ret_error, -r, "NVML not available: nvmlInit failed: %s",
                            nvml_error_name(e));
        }
        n->initialized = true;
        *ret = n;
        return 0;
}

Nvml *nvml_close(Nvml *n) {
        if (!n)
                return NULL;
        if (n->initialized)
                (void)n->f.nvmlShutdown();
        if (n->dl)
                dlclose(n->dl);
        free(n->library);
        free(n);
        return NULL;
}
