/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

#include "basic/gverror.h"
#include "core/host/pci.h"

/* Host readiness for GPU virtualization (linux-gpu-virt.md section 3). */

typedef enum CheckStatus {
        CHECK_PASS,
        CHECK_WARN,
        CHECK_FAIL,
        CHECK_SKIP,
        _CHECK_STATUS_MAX,
        _CHECK_STATUS_INVALID = -EINVAL,
} CheckStatus;

const char *check_status_to_string(CheckStatus s) _pure_;

typedef struct CheckResult {
        const char *id;    /* "cpu-virt", "iommu-kernel", ... (static) */
        const char *title; /* "CPU hardware virtualization" (static) */
        char *device;      /* address for per-device checks, NULL for host checks */
        CheckStatus status;
        char *message; /* one line: why */
        char *hint;    /* how to fix (may be several lines), NULL when nothing to do */
        /* A fix that is a gpuvirt command: core says what it does, the program that shows the hint writes its
         * own command line for it (core never names an option), between hint and hint_tail. GV_HINT_FORCE:
         * forcing takes the device anyway; GV_HINT_TAKE_GROUP: enabling passthrough of the device forced,
         * with fix_devices (the rest of its IOMMU group) along. GV_HINT_NONE: no command. */
        GvHint fix;
        char **fix_devices; /* GV_HINT_TAKE_GROUP: the devices to take along; else NULL */
        char *hint_tail;    /* the hint's text after the command, or NULL */
} CheckResult;

typedef struct CheckReport {
        CheckResult *results;
        size_t n_results;
} CheckReport;

/* Run every host check, and the per-device checks for each GPU (or only for `device` when given). */
int check_run(PciHost *h, const PciDevice *device, CheckReport **ret);
CheckReport *check_report_free(CheckReport *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(CheckReport *, check_report_free)
#define _cleanup_check_report_free_ _cleanup_(check_report_freep)

bool check_report_failed(const CheckReport *r);
/* The command of x->fix as the program that shows the hint writes it (a newly allocated string, "" for
 * none), or NULL for out of memory. */
typedef char *(*CheckFixText)(const CheckResult *x);
/* The hint as a person reads it: hint, the command fix_text() writes for x->fix, hint_tail. NULL when x has
 * no hint (*ret NULL, 0) ; -ENOMEM. */
int check_hint_text(const CheckResult *x, CheckFixText fix_text, char **ret);
/* [{"id","device","status","message","hint"}]; the hints through check_hint_text(). NULL: out of memory. */
json_object *check_report_json(const CheckReport *r, CheckFixText fix_text);

/* The CPU vendor of the root's /proc/cpuinfo. */
typedef enum CpuVendor {
        CPU_VENDOR_UNKNOWN,
        CPU_VENDOR_INTEL,
        CPU_VENDOR_AMD,
        CPU_VENDOR_ARM,
} CpuVendor;

/* The kernel arguments that turn the IOMMU on for this CPU vendor ("intel_iommu=on iommu=pt"), and
 * the ones that turn it off (to be removed). */
const char *iommu_kernel_args(CpuVendor v);
const char *iommu_kernel_off_args(CpuVendor v);

/* The CPU vendor from the root's proc/cpuinfo. */
CpuVendor cpu_vendor_read(Root *root);

/* Whose IOMMU the firmware describes: the ACPI DMAR table is Intel's VT-d, IVRS AMD-Vi, IORT ARM's SMMU;
 * the CPU vendor cpu when there is none to read. The two differ in VMs: QEMU's TCG CPU is AMD's and its
 * emulated IOMMU Intel's (the real-kernel rig), and an AMD host may give a guest an intel-iommu. */
CpuVendor iommu_vendor_read(Root *root, CpuVendor cpu);
