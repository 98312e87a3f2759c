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
        GV_HINT_FORCE_CLEAR, /* refused: gpuvirt did not set what is there; forcing clears it anyway */
        GV_HINT_FORCE_BUSY,  /* in use (the message says by whom, and to stop it first): or forcing takes it */
        GV_HINT_TAKE_GROUP,  /* the device's IOMMU group holds others: passing it through forced, with them
                              * along, takes it (a check's fix, CheckResult.fix_devices) */
        GV_HINT_VM_CONFIG,  /* the domain is not running: its persistent definition is what can change */
        GV_HINT_VM_LIVE,    /* the domain is transient: its running definition is what can change */
        GV_HINT_VM_HELD,    /* another running domain holds it: detaching it there, or forcing, takes it */
        GV_HINT_GUEST_SLOT, /* no free guest slot was found: naming one takes it */
        GV_HINT_MDEV_TYPE,  /* the type named is an mdev type: the request for an mdev takes it */
        GV_HINT_VGPU_TYPE,  /* the type named is a vendor vGPU type: the request for one takes it */
        GV_HINT_VGPU_TYPE_FOR, /* the message says what the vendor vGPU type asked for needs (it leads it) */
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

/* The error's text, taken out of it (the errno described when it has no message); NULL when there is no
 * error or out of memory. For callers that still pass a plain string on. */
char *gv_error_steal_message(GvError *err);
/* Put the formatted text before err's message (the errno described when it has none), keeping its errno,
 * device, step and hint: an operation's words around the failure of a step it called ("Cannot prepare X: "
 * + the step's message). Returns -err->error; out of memory leaves the message as it was. */
int gv_error_prefix(GvError *err, const char *fmt, ...) _printf_(2, 3);
