/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * NVML, loaded with dlopen(), never linked. These are our own declarations of the subset of the NVML
 * C API that gpuvirt uses (types, constants and prototypes written from NVIDIA's documented ABI). The
 * prototypes are never defined in gpuvirt: they only give the symbol table in nvml.c its types (each
 * pointer is declared with __typeof__ of the prototype, so a wrong signature fails to compile), and the
 * simulator's fake libnvidia-ml.so.1 (src/sim/nvml/) defines them against the very same declarations.
 */

#include <stdbool.h>
#include <stddef.h>

#include "basic/gverror.h"
#include "core/host/root.h"

typedef enum nvmlReturn_enum {
        NVML_SUCCESS = 0,
        NVML_ERROR_UNINITIALIZED = 1,
        NVML_ERROR_INVALID_ARGUMENT = 2,
        NVML_ERROR_NOT_SUPPORTED = 3,
        NVML_ERROR_NO_PERMISSION = 4,
        NVML_ERROR_NOT_FOUND = 6,
        NVML_ERROR_INSUFFICIENT_SIZE = 7,
        NVML_ERROR_DRIVER_NOT_LOADED = 9,
        NVML_ERROR_TIMEOUT = 10,
        NVML_ERROR_GPU_IS_LOST = 15,
        NVML_ERROR_RESET_REQUIRED = 16,
        NVML_ERROR_IN_USE = 19,
        NVML_ERROR_INSUFFICIENT_RESOURCES = 23,
        NVML_ERROR_UNKNOWN = 999,
} nvmlReturn_t;

typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct nvmlGpuInstance_st *nvmlGpuInstance_t;
typedef struct nvmlComputeInstance_st *nvmlComputeInstance_t;

#define NVML_DEVICE_MIG_DISABLE 0u
#define NVML_DEVICE_MIG_ENABLE  1u

/* GPU instance profile constants (the "profile" argument of nvmlDeviceGetGpuInstanceProfileInfo). */
enum {
        NVML_GPU_INSTANCE_PROFILE_1_SLICE = 0x0,
        NVML_GPU_INSTANCE_PROFILE_2_SLICE = 0x1,
        NVML_GPU_INSTANCE_PROFILE_3_SLICE = 0x2,
        NVML_GPU_INSTANCE_PROFILE_4_SLICE = 0x3,
        NVML_GPU_INSTANCE_PROFILE_7_SLICE = 0x4,
        NVML_GPU_INSTANCE_PROFILE_8_SLICE = 0x5,
        NVML_GPU_INSTANCE_PROFILE_6_SLICE = 0x6,
        NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1 = 0x7, /* +me (media extensions) */
        NVML_GPU_INSTANCE_PROFILE_2_SLICE_REV1 = 0x8, /* +me */
        NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2 = 0x9, /* double memory */
        NVML_GPU_INSTANCE_PROFILE_COUNT = 0xa,
};

/* Compute instance profile constants: 1/2/3/4/7/8/6 slices. */
enum {
        NVML_COMPUTE_INSTANCE_PROFILE_1_SLICE = 0x0,
        NVML_COMPUTE_INSTANCE_PROFILE_2_SLICE = 0x1,
        NVML_COMPUTE_INSTANCE_PROFILE_3_SLICE = 0x2,
        NVML_COMPUTE_INSTANCE_PROFILE_4_SLICE = 0x3,
        NVML_COMPUTE_INSTANCE_PROFILE_7_SLICE = 0x4,
        NVML_COMPUTE_INSTANCE_PROFILE_8_SLICE = 0x5,
        NVML_COMPUTE_INSTANCE_PROFILE_6_SLICE = 0x6,
        NVML_COMPUTE_INSTANCE_PROFILE_COUNT = 0x7,
};
#define NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED 0u

typedef struct nvmlGpuInstancePlacement_st {
        unsigned start, size;
} nvmlGpuInstancePlacement_t;

typedef struct nvmlGpuInstanceProfileInfo_st {
        unsigned id, isP2pSupported, sliceCount, instanceCount, multiprocessorCount, copyEngineCount,
                decoderCount, encoderCount, jpegCount, ofaCount;
        unsigned long long memorySizeMB;
} nvmlGpuInstanceProfileInfo_t;

typedef struct nvmlGpuInstanceInfo_st {
        nvmlDevice_t device;
        unsigned id, profileId;
        nvmlGpuInstancePlacement_t placement;
} nvmlGpuInstanceInfo_t;

typedef struct nvmlComputeInstancePlacement_st {
        unsigned start, size;
} nvmlComputeInstancePlacement_t;

typedef struct nvmlComputeInstanceProfileInfo_st {
        unsigned id, sliceCount, instanceCount, multiprocessorCount, sharedCopyEngineCount, sharedDecoderCount,
                sharedEncoderCount, sharedJpegCount, sharedOfaCount;
} nvmlComputeInstanceProfileInfo_t;

typedef struct nvmlComputeInstanceInfo_st {
        nvmlDevice_t device;
        nvmlGpuInstance_t gpuInstance;
        unsigned id, profileId;
        nvmlComputeInstancePlacement_t placement;
} nvmlComputeInstanceInfo_t;

typedef struct nvmlPciInfo_st {
        char busIdLegacy[16];
        unsigned domain, bus, device;
        unsigned pciDeviceId; /* device << 16 | vendor */
        unsigned pciSubSystemId;
        char busId[32]; /* "00000000:3B:00.0" */
} nvmlPciInfo_t;

/* NVLink: the links a GPU may have (NVML_NVLINK_MAX_LINKS, 18 since Hopper), each active or not, and the PCI
 * address of what is at its other end (a GPU, or an NVSwitch). */
#define NVML_NVLINK_MAX_LINKS 18
typedef enum nvmlEnableState_enum { NVML_FEATURE_DISABLED = 0, NVML_FEATURE_ENABLED = 1 } nvmlEnableState_t;

/* nvmlMemory_t (v1): bytes. */
typedef struct nvmlMemory_st {
        unsigned long long total, free, used;
} nvmlMemory_t;

/* nvmlProcessInfo_t as used by the _v3 running-process queries. */
typedef struct nvmlProcessInfo_st {
        unsigned pid;
        unsigned long long usedGpuMemory;
        unsigned gpuInstanceId;     /* 0xFFFFFFFF: not in a MIG instance */
        unsigned computeInstanceId;
} nvmlProcessInfo_t;

/* Telemetry (gpuvirtd): utilization in percent over the driver's last sample period. */
typedef struct nvmlUtilization_st {
        unsigned gpu, memory;
} nvmlUtilization_t;

#define NVML_TEMPERATURE_GPU 0u
/* nvmlClockType_t */
#define NVML_CLOCK_GRAPHICS 0u
#define NVML_CLOCK_SM       1u
#define NVML_CLOCK_MEM      2u
/* nvmlMemoryErrorType_t and nvmlEccCounterType_t */
#define NVML_MEMORY_ERROR_TYPE_CORRECTED   0u
#define NVML_MEMORY_ERROR_TYPE_UNCORRECTED 1u
#define NVML_VOLATILE_ECC  0u
#define NVML_AGGREGATE_ECC 1u

/* Events: an event set, waited on for Xid critical errors (eventData is the Xid). */
typedef struct nvmlEventSet_st *nvmlEventSet_t;
typedef struct nvmlEventData_st {
        nvmlDevice_t device;
        unsigned long long eventType, eventData;
        unsigned gpuInstanceId, computeInstanceId;
} nvmlEventData_t;
#define nvmlEventTypeXidCriticalError 0x0000000000000008ULL

/* vGPU instances (the vGPU manager's view on the host: one per running VM's vGPU). */
typedef unsigned nvmlVgpuInstance_t;
typedef unsigned nvmlVgpuTypeId_t;
typedef enum nvmlVgpuVmIdType {
        NVML_VGPU_VM_ID_DOMAIN_ID = 0,
        NVML_VGPU_VM_ID_UUID = 1,
} nvmlVgpuVmIdType_t;
typedef enum nvmlValueType_enum {
        NVML_VALUE_TYPE_DOUBLE = 0,
        NVML_VALUE_TYPE_UNSIGNED_INT = 1,
        NVML_VALUE_TYPE_UNSIGNED_LONG = 2,
        NVML_VALUE_TYPE_UNSIGNED_LONG_LONG = 3,
        NVML_VALUE_TYPE_SIGNED_LONG_LONG = 4,
} nvmlValueType_t;
typedef union nvmlValue_st {
        double dVal;
        unsigned uiVal;
        unsigned long ulVal;
        unsigned long long ullVal;
        signed long long sllVal;
} nvmlValue_t;
/* nvmlDeviceGetVgpuUtilization(): one sample per vGPU instance, utilization in percent */
typedef struct nvmlVgpuInstanceUtilizationSample_st {
        nvmlVgpuInstance_t vgpuInstance;
        unsigned long long timeStamp; /* µs */
        nvmlValue_t smUtil, memUtil, encUtil, decUtil;
} nvmlVgpuInstanceUtilizationSample_t;
typedef struct nvmlVgpuLicenseExpiry_st {
        unsigned year;
        unsigned short month, day, hour, min, sec;
        unsigned char status; /* NVML_GRID_LICENSE_EXPIRY_* */
} nvmlVgpuLicenseExpiry_t;
#define NVML_GRID_LICENSE_EXPIRY_NOT_AVAILABLE 0
#define NVML_GRID_LICENSE_EXPIRY_INVALID 1
#define NVML_GRID_LICENSE_EXPIRY_VALID 2
#define NVML_GRID_LICENSE_EXPIRY_NOT_APPLICABLE 3
#define NVML_GRID_LICENSE_EXPIRY_PERMANENT 4
#define NVML_GRID_LICENSE_STATE_UNKNOWN 0
#define NVML_GRID_LICENSE_STATE_UNINITIALIZED 1
#define NVML_GRID_LICENSE_STATE_UNLICENSED_UNRESTRICTED 2
#define NVML_GRID_LICENSE_STATE_UNLICENSED_RESTRICTED 3
#define NVML_GRID_LICENSE_STATE_UNLICENSED 4
#define NVML_GRID_LICENSE_STATE_LICENSED 5
typedef struct nvmlVgpuLicenseInfo_st {
        unsigned char isLicensed;
        nvmlVgpuLicenseExpiry_t licenseExpiry;
        unsigned currentState; /* NVML_GRID_LICENSE_STATE_* */
} nvmlVgpuLicenseInfo_t;
/* The license constants and these two layouts are nvml.h's (CUDA 12.x): NVML fills the caller's struct, so a
 * field out of place would read as another license state. */
_Static_assert(sizeof(nvmlVgpuLicenseExpiry_t) == 16 && offsetof(nvmlVgpuLicenseExpiry_t, status) == 14,
               "nvmlVgpuLicenseExpiry_t layout");
_Static_assert(sizeof(nvmlVgpuLicenseInfo_t) == 24 && offsetof(nvmlVgpuLicenseInfo_t, licenseExpiry) == 4 &&
                       offsetof(nvmlVgpuLicenseInfo_t, currentState) == 20,
               "nvmlVgpuLicenseInfo_t layout");
#define NVML_VGPU_NAME_BUFFER_SIZE 64

#define NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE 80
#define NVML_DEVICE_UUID_BUFFER_SIZE 80
#define NVML_DEVICE_NAME_BUFFER_SIZE 96
#define NVML_INSTANCE_ID_NONE 0xFFFFFFFFu

/* X(name, required): every NVML function gpuvirt calls. */
#define NVML_SYMBOLS(X)                                                                                       \
        X(nvmlInit_v2, true)                                                                                  \
        X(nvmlShutdown, true)                                                                                 \
        X(nvmlErrorString, true)                                                                              \
        X(nvmlDeviceGetCount_v2, true)                                                                        \
        X(nvmlDeviceGetHandleByIndex_v2, true)                                                                \
        X(nvmlDeviceGetHandleByPciBusId_v2, true)                                                             \
        X(nvmlDeviceGetUUID, true)                                                                            \
        X(nvmlDeviceGetName, true)                                                                            \
        X(nvmlDeviceGetPciInfo_v3, true)                                                                      \
        X(nvmlDeviceGetMemoryInfo, false)                                                                     \
        X(nvmlDeviceGetMigMode, true)                                                                         \
        X(nvmlDeviceSetMigMode, true)                                                                         \
        X(nvmlDeviceGetGpuInstanceProfileInfo, true)                                                          \
        X(nvmlDeviceGetGpuInstancePossiblePlacements_v2, true)                                                \
        X(nvmlDeviceGetGpuInstanceRemainingCapacity, true)                                                    \
        X(nvmlDeviceCreateGpuInstance, true)                                                                  \
        X(nvmlDeviceCreateGpuInstanceWithPlacement, true)                                                     \
        X(nvmlGpuInstanceDestroy, true)                                                                       \
        X(nvmlDeviceGetGpuInstances, true)                                                                    \
        X(nvmlDeviceGetGpuInstanceById, true)                                                                 \
        X(nvmlGpuInstanceGetInfo, true)                                                                       \
        X(nvmlGpuInstanceGetComputeInstanceProfileInfo, true)                                                 \
        X(nvmlGpuInstanceCreateComputeInstance, true)                                                         \
        X(nvmlComputeInstanceDestroy, true)                                                                   \
        X(nvmlGpuInstanceGetComputeInstances, true)                                                           \
        X(nvmlComputeInstanceGetInfo_v2, true)                                                                \
        X(nvmlDeviceGetMaxMigDeviceCount, true)                                                               \
        X(nvmlDeviceGetMigDeviceHandleByIndex, true)                                                          \
        X(nvmlDeviceGetGpuInstanceId, true)                                                                   \
        X(nvmlDeviceGetComputeInstanceId, true)                                                               \
        X(nvmlDeviceIsMigDeviceHandle, true)                                                                  \
        X(nvmlDeviceGetComputeRunningProcesses_v3, false)                                                     \
        X(nvmlDeviceGetGraphicsRunningProcesses_v3, false)                                                    \
        X(nvmlDeviceGetNvLinkState, false)                                                                    \
        X(nvmlDeviceGetNvLinkRemotePciInfo_v2, false)                                                         \
        X(nvmlSystemGetProcessName, false)                                                                    \
        X(nvmlSystemGetDriverVersion, false)                                                                  \
        X(nvmlDeviceGetUtilizationRates, false)                                                               \
        X(nvmlDeviceGetTemperature, false)                                                                    \
        X(nvmlDeviceGetPowerUsage, false)                                                                     \
        X(nvmlDeviceGetClockInfo, false)                                                                      \
        X(nvmlDeviceGetTotalEccErrors, false)                                                                 \
        X(nvmlEventSetCreate, false)                                                                          \
        X(nvmlDeviceRegisterEvents, false)                                                                    \
        X(nvmlEventSetWait_v2, false)                                                                         \
        X(nvmlEventSetFree, false)                                                                            \
        X(nvmlDeviceGetActiveVgpus, false)                                                                    \
        X(nvmlVgpuInstanceGetUUID, false)                                                                     \
        X(nvmlVgpuInstanceGetVmID, false)                                                                     \
        X(nvmlVgpuInstanceGetMdevUUID, false)                                                                 \
        X(nvmlVgpuInstanceGetType, false)                                                                     \
        X(nvmlVgpuTypeGetName, false)                                                                         \
        X(nvmlVgpuInstanceGetFbUsage, false)                                                                  \
        X(nvmlVgpuInstanceGetLicenseInfo_v2, false)                                                           \
        X(nvmlDeviceGetVgpuUtilization, false)

/* Our prototypes (never defined in gpuvirt itself). */
nvmlReturn_t nvmlInit_v2(void);
nvmlReturn_t nvmlShutdown(void);
const char *nvmlErrorString(nvmlReturn_t result);
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned *deviceCount);
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned index, nvmlDevice_t *device);
nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *pciBusId, nvmlDevice_t *device);
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned length);
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned length);
nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci);
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory);
nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned *currentMode, unsigned *pendingMode);
nvmlReturn_t nvmlDeviceSetMigMode(nvmlDevice_t device, unsigned mode, nvmlReturn_t *activationStatus);
nvmlReturn_t nvmlDeviceGetGpuInstanceProfileInfo(nvmlDevice_t device, unsigned profile,
                                                 nvmlGpuInstanceProfileInfo_t *info);
nvmlReturn_t nvmlDeviceGetGpuInstancePossiblePlacements_v2(nvmlDevice_t device, unsigned profileId,
                                                           nvmlGpuInstancePlacement_t *placements, unsigned *count);
nvmlReturn_t nvmlDeviceGetGpuInstanceRemainingCapacity(nvmlDevice_t device, unsigned profileId, unsigned *count);
nvmlReturn_t nvmlDeviceCreateGpuInstance(nvmlDevice_t device, unsigned profileId, nvmlGpuInstance_t *gpuInstance);
nvmlReturn_t nvmlDeviceCreateGpuInstanceWithPlacement(nvmlDevice_t device, unsigned profileId,
                                                      const nvmlGpuInstancePlacement_t *placement,
                                                      nvmlGpuInstance_t *gpuInstance);
nvmlReturn_t nvmlGpuInstanceDestroy(nvmlGpuInstance_t gpuInstance);
nvmlReturn_t nvmlDeviceGetGpuInstances(nvmlDevice_t device, unsigned profileId, nvmlGpuInstance_t *gpuInstances,
                                       unsigned *count);
nvmlReturn_t nvmlDeviceGetGpuInstanceById(nvmlDevice_t device, unsigned id, nvmlGpuInstance_t *gpuInstance);
nvmlReturn_t nvmlGpuInstanceGetInfo(nvmlGpuInstance_t gpuInstance, nvmlGpuInstanceInfo_t *info);
nvmlReturn_t nvmlGpuInstanceGetComputeInstanceProfileInfo(nvmlGpuInstance_t gpuInstance, unsigned profile,
                                                          unsigned engProfile, nvmlComputeInstanceProfileInfo_t *info);
nvmlReturn_t nvmlGpuInstanceCreateComputeInstance(nvmlGpuInstance_t gpuInstance, unsigned profileId,
                                                  nvmlComputeInstance_t *computeInstance);
nvmlReturn_t nvmlComputeInstanceDestroy(nvmlComputeInstance_t computeInstance);
nvmlReturn_t nvmlGpuInstanceGetComputeInstances(nvmlGpuInstance_t gpuInstance, unsigned profileId,
                                                nvmlComputeInstance_t *computeInstances, unsigned *count);
nvmlReturn_t nvmlComputeInstanceGetInfo_v2(nvmlComputeInstance_t computeInstance, nvmlComputeInstanceInfo_t *info);
nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned *count);
nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned index, nvmlDevice_t *migDevice);
nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t device, unsigned *id);
nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t device, unsigned *id);
nvmlReturn_t nvmlDeviceIsMigDeviceHandle(nvmlDevice_t device, unsigned *isMigDevice);
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned *infoCount,
                                                     nvmlProcessInfo_t *infos);
nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t device, unsigned *infoCount,
                                                      nvmlProcessInfo_t *infos);
nvmlReturn_t nvmlSystemGetProcessName(unsigned pid, char *name, unsigned length);
nvmlReturn_t nvmlDeviceGetNvLinkState(nvmlDevice_t device, unsigned link, nvmlEnableState_t *isActive);
nvmlReturn_t nvmlDeviceGetNvLinkRemotePciInfo_v2(nvmlDevice_t device, unsigned link, nvmlPciInfo_t *pci);
nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned length);
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization);
nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, unsigned sensorType, unsigned *temp);
nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned *power); /* milliwatts */
nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, unsigned type, unsigned *clock); /* MHz */
nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, unsigned errorType, unsigned counterType,
                                         unsigned long long *eccCounts);
nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set);
nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long eventTypes, nvmlEventSet_t set);
nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned timeoutms);
nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set);
nvmlReturn_t nvmlDeviceGetActiveVgpus(nvmlDevice_t device, unsigned *vgpuCount, nvmlVgpuInstance_t *vgpuInstances);
nvmlReturn_t nvmlVgpuInstanceGetUUID(nvmlVgpuInstance_t vgpuInstance, char *uuid, unsigned size);
nvmlReturn_t nvmlVgpuInstanceGetVmID(nvmlVgpuInstance_t vgpuInstance, char *vmId, unsigned size,
                                     nvmlVgpuVmIdType_t *vmIdType);
nvmlReturn_t nvmlVgpuInstanceGetMdevUUID(nvmlVgpuInstance_t vgpuInstance, char *mdevUuid, unsigned size);
nvmlReturn_t nvmlVgpuInstanceGetType(nvmlVgpuInstance_t vgpuInstance, nvmlVgpuTypeId_t *vgpuTypeId);
nvmlReturn_t nvmlVgpuTypeGetName(nvmlVgpuTypeId_t vgpuTypeId, char *vgpuTypeName, unsigned *size);
nvmlReturn_t nvmlVgpuInstanceGetFbUsage(nvmlVgpuInstance_t vgpuInstance, unsigned long long *fbUsage); /* bytes */
nvmlReturn_t nvmlVgpuInstanceGetLicenseInfo_v2(nvmlVgpuInstance_t vgpuInstance, nvmlVgpuLicenseInfo_t *licenseInfo);
nvmlReturn_t nvmlDeviceGetVgpuUtilization(nvmlDevice_t device, unsigned long long lastSeenTimeStamp,
                                          nvmlValueType_t *sampleValType, unsigned *vgpuInstanceSamplesCount,
                                          nvmlVgpuInstanceUtilizationSample_t *utilizationSamples);

/* The symbol table: one typed pointer per function. */
typedef struct NvmlSyms {
#define NVML_SYM_FIELD(name, req) __typeof__(&name) name;
        NVML_SYMBOLS(NVML_SYM_FIELD)
#undef NVML_SYM_FIELD
} NvmlSyms;

typedef struct Nvml {
        void *dl;
        NvmlSyms f;
        char *library; /* what was loaded */
        bool initialized;
} Nvml;

/*
 * Load and initialize NVML for the root: on a live host dlopen("libnvidia-ml.so.1"); on a simulated root
 * the simulator's fake library from its fixed path (sim_nvml_library(), never a path read from the tree); on a captured tree NVML is never used (-EOPNOTSUPP).
 * -ENOPKG: the library is not installed (or lacks a required symbol); ret_error (may be NULL) says why
 * (step "nvml"). Once per process: every later nvml_open() of the root gets the same handle while the GPUs
 * bound to nvidia stay the same (nvml.c says when it is initialised again); nvml_close() releases one use.
 */
int nvml_open(Root *root, Nvml **ret, GvError *ret_error);
Nvml *nvml_close(Nvml *n);
DEFINE_TRIVIAL_CLEANUP_FUNC(Nvml *, nvml_close)
#define _cleanup_nvml_close_ _cleanup_(nvml_closep)

/* The one place nvmlReturn_t becomes an errno: SUCCESS 0, IN_USE -EBUSY, RESET_REQUIRED -EAGAIN,
 * INSUFFICIENT_RESOURCES -ENOSPC, NOT_FOUND -ENOENT, NOT_SUPPORTED -EOPNOTSUPP, NO_PERMISSION -EPERM,
 * INVALID_ARGUMENT -EINVAL, INSUFFICIENT_SIZE -ENOBUFS, UNINITIALIZED/DRIVER_NOT_LOADED -ENXIO,
 * GPU_IS_LOST -ENODEV, others -EIO. */
int nvml_error_to_errno(nvmlReturn_t r) _pure_;
/* NVML's own name of the error ("NVML_ERROR_IN_USE"). */
const char *nvml_error_name(nvmlReturn_t r) _pure_;
/* The errno nvml_error_to_errno() gave, described by errno_describe() after the NVML code it stands for:
 * "NVML_ERROR_IN_USE: Device or resource busy (EBUSY)". NULL on OOM. */
char *nvml_errno_describe(int err);
