/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/errname.h"
#include "basic/gverror.h"

int gv_error_take(GvError *err, int r, const char *device, const char *step, GvHint hint, char *message) {
        r = r < 0 ? r : -r;
        if (!err) {
                free(message);
                return r;
        }
        gv_error_done(err);
        err->error = -r;
        err->device = device ? strdup(device) : NULL;
        err->step = step ? strdup(step) : NULL;
        err->message = message;
        err->hint = hint;
        return r;
}

int gv_error_set(GvError *err, int r, const char *device, const char *step, const char *fmt, ...) {
        char *msg = NULL;
        if (err && fmt) {
                va_list ap;
                va_start(ap, fmt);
                errno = abs(r); /* for %m */
                if (vasprintf(&msg, fmt, ap) < 0)
                        msg = NULL;
                va_end(ap);
        }
        return gv_error_take(err, r, device, step, GV_HINT_NONE, msg);
}

void gv_error_done(GvError *err) {
        if (!err)
                return;
        free(err->device);
        free(err->step);
        free(err->message);
        *err = (GvError){};
}

const char *gv_error_message(GvError *err) {
        if (!err || err->error == 0)
                return NULL;
        if (!err->message)
                err->message = errno_describe(err->error);
        return err->message ?: errno_message(err->error);
}

void gv_error_move(GvError *dst, GvError *src) {
        gv_error_done(dst);
        *dst = *src;
        *src = (GvError){};
}
