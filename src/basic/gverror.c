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

char *gv_error_steal_message(GvError *err) {
        if (!gv_error_message(err))
                return NULL;
        return err->message ? TAKE_PTR(err->message) : strdup(errno_message(err->error));
}

int gv_error_prefix(GvError *err, const char *fmt, ...) {
        const char *m = gv_error_message(err);
        if (!m)
                return 0;
        char *head = NULL, *joined = NULL;
        va_list ap;
        va_start(ap, fmt);
        int k = vasprintf(&head, fmt, ap);
        va_end(ap);
        if (k >= 0 && asprintf(&joined, "%s%s", head, m) >= 0) {
                free(err->message);
                err->message = joined;
        }
        if (k >= 0)
                free(head);
        return -err->error;
}
