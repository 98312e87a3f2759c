/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the files of the simulator's libnvidia-ml.so.1 share (fake-nvml.c says what it models). Everything
 * here is hidden in the library (gnu_symbol_visibility: hidden); only API functions are exported. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "basic/macro.h"
#include "core/mig/nvml.h"

#define API __attribute__((visibility("default")))

#define MAX_DEVS 128
#define MAX_GIS  8
#define MAX_CIS  8

enum { MAGIC_DEV = 0x4e564430, MAGIC_GI = 0x4e564731, MAGIC_CI = 0x4e564332 };

typedef struct FProfile {
        unsigned constant, id, compute, size, max, starts; /* starts: bit i = legal start i */
        unsigned long long mem_mb;                        /* memorySizeMB as NVML reports it */
        unsigned sms, ce, dec, jpeg, ofa;
} FProfile;

typedef struct FModel {
        const char *product;
        unsigned long long total_mb; /* the GPU's memory, as nvmlDeviceGetMemoryInfo's total */
        unsigned mem_slices, compute_slices;
        FProfile p[NVML_GPU_INSTANCE_PROFILE_COUNT];
        size_t n;
} FModel;

/* What a state file was when it was last read or written (state.c); known false: read it again. */
typedef struct FStamp {
        bool known, exists;
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtime;
} FStamp;

typedef struct FDev FDev;
typedef struct FGi FGi;

typedef struct FCi {
        uint32_t magic;
        FGi *gi;
        bool used;
        unsigned id, profile, start, size;
        char uuid[48];
} FCi;

struct FGi {
        uint32_t magic;
        FDev *dev;
        bool used;
        unsigned id;
        const FProfile *p;
        unsigned start, size;
        FCi ci[MAX_CIS];
};

struct FDev {
        uint32_t magic;
        char bdf[16];
        uint16_t device;
        uint32_t subsystem; /* subsystem device << 16 | subsystem vendor */
        bool lost;          /* config space reads all ones: fallen off the bus */
        bool lost_checked;  /* lost_gen says when it last read that it answers */
        uint64_t lost_gen;
        const char *name;
        const FModel *m; /* NULL: no MIG */
        unsigned cur, pend;
        unsigned long resets, serial;
        FGi gi[MAX_GIS];
        unsigned loaded;         /* the locked section (lock_gen) that last checked this state */
        FStamp state_st, resets_st; /* the state file and the reset count as last read */
        uint64_t gen_seen;          /* the host's generation (generation.h) when both were last looked at */
        bool gen_valid;             /* gen_seen says so: until it moves, neither file changed */
};

/* Each product by PCI device id, with the name NVML gives it (models.c). */
typedef struct FKnown {
        uint16_t device;
        const char *name;
        const FModel *model;
} FKnown;
extern const FKnown known[];
extern const size_t n_known;

typedef struct FProc {
        unsigned pid, gi;
        char name[64];
        bool graphics; /* on NVML's graphics list (an X server, a desktop session), not the compute list */
} FProc;

/* fake-nvml.c: the simulated root, the GPUs found by nvmlInit_v2() */
extern char *root;
extern FDev devs[MAX_DEVS];
extern unsigned n_devs;
extern bool initialized;

/* state.c: the state lock (held while a call changes a GPU's state or reads a changed one) */
/* Begin a locked section (one call): 0 (the unsigned is what state_unlockp() gets) */
unsigned state_lock(void);
void state_unlockp(unsigned *unused);
/* Take the lock for the rest of the section: 0, or -ENOMEM (the lock is not held) */
int state_hold(void);
/* Close the lock file (the root changes, the library is unloaded). */
void state_lock_close(void);

/* At the top of every call that reads a GPU's state (one returning nvmlReturn_t). */
#define LOCKED _cleanup_(state_unlockp) _unused_ unsigned _locked = state_lock()

/* At the top of every call that changes a GPU's state: the lock for the whole call, taken before the state is
 * read (a lock that could not be taken for want of memory fails the call). */
#define LOCKED_CHANGE                 \
        LOCKED;                       \
        if (state_hold() < 0)         \
                return NVML_ERROR_UNKNOWN

/* state.c: state files and handles */
char *state_path(const FDev *d, const char *suffix);
void make_uuid(const char *prefix, const char *seed, unsigned long serial, char out[48]);
const FProfile *profile_by_id(const FDev *d, unsigned id);
int dev_save(FDev *d);
FGi *gi_by_id(FDev *d, unsigned id);
/* The processes on d (at most max), or -ENOMEM. */
int dev_processes(const FDev *d, FProc *out, size_t max);
/* 0, or -ENOMEM (the state is then not known: handles say NULL) */
int dev_refresh(FDev *d);
FDev *as_dev(nvmlDevice_t h);
/* A valid GPU handle, its state not looked at: for what does not change with it (the GPU's identity, its
 * model's MIG tables), as the driver answers those without a round trip to the GPU's state. */
FDev *as_dev_static(nvmlDevice_t h);
FCi *as_migdev(nvmlDevice_t h);
FGi *as_gi(nvmlGpuInstance_t h);
FCi *as_ci(nvmlComputeInstance_t h);

/* fault.c: an injected fault before a change to d's state */
bool faulted(const FDev *d, const char *call);

/* fake-nvml.c */
/* A device whose config space reads back all ones (vendor 0xffff) no longer answers on the bus: the driver
 * reports it lost (NVML_ERROR_GPU_IS_LOST), as it does after an Xid 79. dir: its sysfs directory. */
bool config_lost(const char *dir);
/* The injected library error (.gpuvirt-sim/nvml/fail), NVML_SUCCESS when none. */
nvmlReturn_t sim_failing(void);
/* The host's generation counter (generation.h) now; false: not mapped yet (before the first locked read). */
bool state_generation(uint64_t *ret);
/* s into an NVML string buffer of len bytes. */
nvmlReturn_t copy_out(const char *s, char *buf, unsigned len);

/* telemetry.c: KEY's value from the GPU's telemetry file (.gpuvirt-sim/nvml/<bdf>.telemetry); false when unset */
bool telemetry_get(const FDev *d, const char *key, unsigned long long *ret);
/* telemetry.c: the device for a telemetry call (out: its output, NULL is invalid), or the error: a failing
 * driver, a GPU off the bus or removed */
nvmlReturn_t telemetry_dev(nvmlDevice_t device, const void *out, FDev **ret);
