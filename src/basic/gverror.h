/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "basic/macro.h"

/*
 * The one error type of operations: what failed (errno), on which device, at which step, and a message for
 * a person. The operation says what failed, never what to type: the program that shows it adds that
 * (GvError.hint says which of its options would have let it go on). Functions still return -errno; the
 * GvError they are given (may be NULL) says the rest. A GvError is zero-initialised and released with
 * gv_error_done(); a second gv_error_set() replaces the first.
 */

typedef enum GvHint {
        GV_HINT_NONE,
        GV_HINT_FORCE,   /* refused as dangerous: forcing takes it anyway */
        GV_HINT_INCLUDE, /* GvError.device would be moved along: naming it and forcing takes it */
        GV_HINT_DISRUPT, /* existing instances would have to move: allowing that takes it */
        GV_HINT_MIG_LABEL, /* a mig-parted file of several configurations, none named: naming one takes it */
        GV_HINT_LOST_GPU,  /* a GPU fell off the bus (NVML_ERROR_GPU_IS_LOST): where to look, how to recover */
        GV_HINT_MIG_ENABLE,      /* MIG is not enabled on GvError.device: enabling it lets it go on */
        GV_HINT_MIG_STATUS,      /* the GPU's MIG layout (GvError.device) shows why: look at it */
        GV_HINT_MIG_DESTROY_ALL, /* GPU instances are left on GvError.device: destroying them lets it go on */
        GV_HINT_FORCE_TRY,       /* something holds it: forcing tries anyway (which may fail) */
} GvHint;

typedef struct GvError {
        int error;     /* positive errno; 0: no error */
        char *device;  /* the device it concerns (address, UUID), or NULL */
        char *step;    /* the step that failed ("unbind", "sriov_numvfs"), or NULL */
        char *message; /* what failed, for a person (NULL: only the errno is known, or out of memory) */
        GvHint hint;
} GvError;

/* Fill err (when not NULL) and return -abs(r). fmt NULL: no message (the errno says it). */
int gv_error_set(GvError *err, int r, const char *device, const char *step, const char *fmt, ...) _printf_(5, 6);
/* The same with a message already allocated (taken: freed on failure too), and a hint. */
int gv_error_take(GvError *err, int r, const char *device, const char *step, GvHint hint, char *message);
void gv_error_done(GvError *err);
/* The message, or the errno described (errno_describe()) when there is none; NULL when no error. */
const char *gv_error_message(GvError *err);
/* Move src's contents to dst (replacing them). */
void gv_error_move(GvError *dst, GvError *src);
