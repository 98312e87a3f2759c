/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
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

/* A handle not shared yet (or never): shut down and unloaded. */
static void nvml_unload(Nvml *n) {
        if (n->initialized)
                (void)n->f.nvmlShutdown();
        if (n->dl)
                dlclose(n->dl);
        free(n->library);
        free(n);
}

static int nvml_load(Root *root, Nvml **ret, GvError *ret_error) {
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
                nvml_unload(n);
                return fail(ret_error, ENOPKG, "NVML not available: libnvidia-ml.so.1 lacks %s", missing);
        }

        if (b->nvml_setup && b->nvml_setup(dl, root_dir(root)) < 0) {
                nvml_unload(n);
                return fail(ret_error, ENOPKG, "NVML not available: %s does not take root %s", lib,
                            root_dir(root));
        }
        nvmlReturn_t e = n->f.nvmlInit_v2();
        if (e != NVML_SUCCESS) {
                r = nvml_error_to_errno(e);
                nvml_unload(n);
                return fail(ret_error, -r, "NVML not available: nvmlInit failed: %s",
                            nvml_error_name(e));
        }
        n->initialized = true;
        log_debug("NVML initialised (%s)", n->library);
        *ret = n;
        return 0;
}

/*
 * NVML is initialised once per process, as a program using the real library does: nvml_open() hands every
 * caller the same handle (apply's plan and each of its MIG steps, a verb and the checks it runs), kept until
 * the process exits. What NVML's device list comes from is the driver's: the GPUs bound to nvidia when it was
 * initialised. When that set changed since (a GPU moved to vfio-pci or back, in this process or another), the
 * handle is initialised again, once nobody holds it; one held meanwhile makes a later opener get a handle of its
 * own, as every opener did before.
 */
static struct {
        Nvml *n;
        char *root;
        char **bound; /* sys/bus/pci/drivers/nvidia/ when it was initialised */
        unsigned users;
} shared;
/* the handle's bookkeeping, for programs with threads (gpuvirtd); NVML itself is thread-safe */
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;

static char **nvidia_bound(Root *root) {
        _cleanup_free_ char *p = root_path(root, "sys/bus/pci/drivers/nvidia");
        char **l = NULL;
        if (!p || dir_list(p, &l) < 0)
                return NULL; /* no nvidia driver: NULL, as it is compared */
        return l;
}

static bool strv_same(char *const *a, char *const *b) {
        for (; a && b && *a && *b; a++, b++)
                if (!streq(*a, *b))
                        return false;
        return (!a || !*a) == (!b || !*b);
}

static int nvml_open_locked(Root *root, Nvml **ret, GvError *ret_error) {
        _cleanup_strv_free_ char **bound = nvidia_bound(root);
        if (shared.n && streq(shared.root, root_dir(root)) && strv_same(shared.bound, bound)) {
                shared.users++;
                *ret = shared.n;
                return 0;
        }
        if (shared.n && shared.users > 0) {
                log_debug("NVML: another root or other GPUs on nvidia, the shared handle held: one of its own");
                return nvml_load(root, ret, ret_error); /* held as it was: this caller gets one of its own */
        }
        if (shared.n) {
                log_debug("NVML: another root or other GPUs on nvidia, initialised again");
                nvml_unload(shared.n);
                free(shared.root);
                strv_free(shared.bound);
                shared.n = NULL;
                shared.root = NULL;
                shared.bound = NULL;
        }
        Nvml *n;
        int r = nvml_load(root, &n, ret_error);
        if (r < 0)
                return r;
        char *dir = strdup(root_dir(root));
        if (!dir) {
                nvml_unload(n);
                return gv_error_set(ret_error, -ENOMEM, NULL, "nvml", NULL);
        }
        shared.n = n;
        shared.root = dir;
        shared.bound = TAKE_PTR(bound);
        shared.users = 1;
        *ret = n;
        return 0;
}

int nvml_open(Root *root, Nvml **ret, GvError *ret_error) {
        pthread_mutex_lock(&shared_lock);
        int r = nvml_open_locked(root, ret, ret_error);
        pthread_mutex_unlock(&shared_lock);
        return r;
}

Nvml *nvml_close(Nvml *n) {
        if (!n)
                return NULL;
        pthread_mutex_lock(&shared_lock);
        bool kept = n == shared.n;
        if (kept && shared.users > 0)
                shared.users--; /* kept for the next opener */
        pthread_mutex_unlock(&shared_lock);
        if (!kept)
                nvml_unload(n);
        return NULL;
}
