/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The GPU pool across hosts: the provider tree each host publishes (host -> GPU -> the units it can give
 * now), requests, and the scheduler that places them (filter -> score -> reserve) over an in-memory copy of
 * the fleet. Pure: no I/O here; fleet-store.h moves records in and out of a store, fleet-agent.h realizes
 * what is reserved on a host.
 *
 * A unit is one of:
 *   passthrough    a whole GPU on vfio-pci ("gpu:40gb": a whole GPU with at least 40 GiB)
 *   vf             one SR-IOV VF on vfio-pci
 *   vgpu:TYPE      one vGPU of an mdev type or an NVIDIA vendor vGPU type (id or name)
 *   mig:PROFILE    one MIG instance at a placement the scheduler chooses
 * A GPU serves one kind at a time (the mode it is in), and one vGPU type at a time (NVIDIA's rule).
 */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "basic/gverror.h"
#include "basic/macro.h"
#include "core/state/hostspec.h"
#include "core/mig/mig.h"
#include "core/host/pci.h"

typedef enum FleetKind {
        FLEET_PASSTHROUGH,
        FLEET_VF,
        FLEET_VGPU,
        FLEET_MIG,
        _FLEET_KIND_MAX,
        _FLEET_KIND_INVALID = -EINVAL,
} FleetKind;

const char *fleet_kind_to_string(FleetKind k) _pure_;
FleetKind fleet_kind_from_string(const char *s) _pure_;
/* The GPU mode a unit kind needs. */
GpuMode fleet_kind_mode(FleetKind k) _pure_;

typedef enum FleetStrategy {
        FLEET_FRAG,      /* ours: fewest future placements lost (MIG), pack, mode changes last */
        FLEET_BINPACK,   /* ours: fullest GPU that fits, mode changes last */
        FLEET_SPREAD,    /* ours: emptiest GPU that fits, mode changes last */
        FLEET_FIRST_FIT, /* baseline: first GPU in order that fits (Proxmox: first free candidate) */
        FLEET_HAMI,      /* baseline: HAMi's binpack score (request+used)/allocatable*10, node then GPU */
        _FLEET_STRATEGY_MAX,
        _FLEET_STRATEGY_INVALID = -EINVAL,
} FleetStrategy;

const char *fleet_strategy_to_string(FleetStrategy s) _pure_;
FleetStrategy fleet_strategy_from_string(const char *s) _pure_;

#define FLEET_ID_MAX    40  /* reservation ids: "r" + 16 hex digits, or what a caller chose */
#define FLEET_NAME_MAX  64  /* host names, vGPU type ids and names, profile names */
#define FLEET_VGPU_BUDGET 232792560u /* lcm(1..20): a vGPU of a type with at most m per GPU costs BUDGET/m */

/* ---- the provider tree: static capabilities of a GPU (shared by every GPU with the same ones) ---- */

typedef struct FleetVgpuType {
        char id[FLEET_NAME_MAX];   /* mdev type id, or the vendor vGPU type's number */
        char name[FLEET_NAME_MAX]; /* "GRID T4-1B", "NVIDIA H100-10C" */
        unsigned max;              /* instances per GPU */
} FleetVgpuType;

typedef struct FleetModel FleetModel;

typedef struct FleetModelInfo {
        uint16_t vendor, device;
        char name[FLEET_NAME_MAX];
        unsigned memory_mb; /* 0: unknown (never matches a memory request) */
        unsigned total_vfs; /* VFs usable as vf units (0: none) */
        bool vgpu_vendor;   /* vGPUs are NVIDIA vendor vGPU types on VFs */
        bool vgpu_one_type; /* one vGPU type per GPU at a time (NVIDIA) */
        FleetVgpuType *types;
        size_t n_types;
        MigProfile mig[MIG_MAX_PROFILES];
        size_t n_mig;
        unsigned mig_slices;
} FleetModelInfo;

/* What a host publishes per GPU: the static model, where it sits, what it does without the fleet (base), and
 * the fleet's ledger of units on it. This is the value of the GPU's key in the store. */
typedef struct FleetUnit {
        char res[FLEET_ID_MAX]; /* reservation */
        unsigned n;             /* unit index within the reservation */
        FleetKind kind;
        int idx;   /* MIG profile / vGPU type index in the model; -1 */
        int start; /* MIG placement start; -1 */
        char group[FLEET_NAME_MAX]; /* anti-affinity group, "" */
} FleetUnit;

typedef struct FleetGpuInfo {
        char host[FLEET_NAME_MAX];
        char address[PCI_ADDR_STRLEN];
        FleetModelInfo model;
        int numa;       /* -1: none */
        char nvlink[FLEET_NAME_MAX]; /* NVLink/NVSwitch domain, "" */
        bool isolated;  /* passthrough possible (own IOMMU group, not the boot VGA) */
        char *isolation_reason;
        GpuMode base_mode;
        /* base usage (what is there without the fleet) */
        unsigned base_occ; /* MIG slices taken */
        unsigned base_mig_count[MIG_MAX_PROFILES];
        int base_vgpu_type; /* index, -1 */
        unsigned base_vgpu_count;
        unsigned base_vfs_used;
        bool drain;
        FleetUnit *units;
        size_t n_units;
} FleetGpuInfo;

void fleet_gpu_info_done(FleetGpuInfo *g);
json_object *fleet_model_info_json(const FleetModelInfo *m);
json_object *fleet_gpu_info_json(const FleetGpuInfo *g);
/* Parse a GPU record (a store value). -EBADMSG with err (may be NULL) saying which, when a field is missing or out of range. */
int fleet_gpu_info_parse(const char *text, FleetGpuInfo *ret, GvError *err);

/* Traits of the units of a kind (the seed's table): isolation level and live migration. */
const char *fleet_kind_isolation(FleetKind k) _pure_;
bool fleet_kind_live_migratable(FleetKind k) _pure_;

/* Nominal memory of a GPU model by PCI ID (MiB), 0 when unknown. */
unsigned fleet_model_memory_mb(uint16_t vendor, uint16_t device) _pure_;

/* ---- requests ---- */

typedef struct FleetRequest {
        FleetKind kind;
        char arg[FLEET_NAME_MAX]; /* MIG profile or vGPU type; "" */
        unsigned min_memory_mb;   /* gpu:NNgb */
        uint16_t vendor, device;  /* --model; 0: any */
        unsigned count;
        bool same_host, same_numa, same_nvlink, live_migratable;
        char group[FLEET_NAME_MAX]; /* anti-affinity: no two units of the group on one host */
        char owner[FLEET_NAME_MAX];
} FleetRequest;

/* Parse a unit ("passthrough", "gpu:40gb", "vf", "vgpu:nvidia-222", "mig:3g.20gb") into r (other fields kept). */
int fleet_request_parse_unit(const char *s, FleetRequest *r, GvError *err);
/* Parse one request line: UNIT [count=N] [same-host] [same-numa] [same-nvlink] [live] [group=G]
 * [model=VVVV:DDDD] owner=ID. -EINVAL with err saying what is wrong (both parsers). */
int fleet_request_parse_line(const char *line, FleetRequest *ret, GvError *err);
/* The unit as text ("mig:3g.20gb", "gpu:40gb"). */
char *fleet_request_unit(const FleetRequest *r);
json_object *fleet_request_json(const FleetRequest *r);
int fleet_request_from_json(json_object *o, FleetRequest *ret);

/* ---- the scheduler over an in-memory fleet ---- */

typedef struct Fleet Fleet;

typedef struct FleetPlacement {
        uint32_t gpu;
        int idx;   /* MIG profile / vGPU type index in the GPU's model, -1 */
        int start; /* MIG placement, -1 */
} FleetPlacement;

Fleet *fleet_new(FleetStrategy strategy);
Fleet *fleet_free(Fleet *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(Fleet *, fleet_free)
#define _cleanup_fleet_free_ _cleanup_(fleet_freep)

FleetStrategy fleet_strategy(const Fleet *f) _pure_;

/* Hosts by name; up: its lease is alive. */
int fleet_host_add(Fleet *f, const char *name, bool up, uint32_t *ret);
int fleet_host_find(const Fleet *f, const char *name);
int fleet_host_set_up(Fleet *f, uint32_t host, bool up);
size_t fleet_n_hosts(const Fleet *f) _pure_;
const char *fleet_host_name(const Fleet *f, uint32_t host) _pure_;
bool fleet_host_up(const Fleet *f, uint32_t host) _pure_;

/* Add a GPU (its host must exist); its ledger units are applied. Takes the info's contents (info is left
 * empty). ret: the GPU index. */
int fleet_gpu_add(Fleet *f, FleetGpuInfo *info, uint32_t *ret);
/* Replace a GPU's record (a newer value read from the store). */
int fleet_gpu_update(Fleet *f, uint32_t gpu, FleetGpuInfo *info);
int fleet_gpu_find(const Fleet *f, const char *host, const char *address);
size_t fleet_n_gpus(const Fleet *f) _pure_;
const FleetGpuInfo *fleet_gpu(const Fleet *f, uint32_t gpu) _pure_;
/* The store's mod_revision of the GPU's record as last read or written. */
int64_t fleet_gpu_revision(const Fleet *f, uint32_t gpu) _pure_;
void fleet_gpu_set_revision(Fleet *f, uint32_t gpu, int64_t rev);

/* Place a request: filter -> score -> reserve in memory (the GPUs' ledgers get the units). ret gets
 * r->count placements. -ENOSPC when it does not fit now, -EINVAL when no GPU of the fleet could ever serve
 * it (unknown profile/type, live migration of passthrough), with err saying why. */
int fleet_place(Fleet *f, const FleetRequest *r, const char *res, FleetPlacement *ret, GvError *err);
/* Remove a reservation's units from the ledgers of the given GPUs (all GPUs when gpus is NULL). */
int fleet_unplace(Fleet *f, const char *res, const uint32_t *gpus, size_t n_gpus);

/* Capacity left for one unit of the request now (how many more would fit, each alone): for `fleet gpus`. */
unsigned fleet_gpu_free_units(const Fleet *f, uint32_t gpu, FleetKind kind, int idx);
/* The request's profile / type index in the GPU's model (-1: none; 0 for kinds without one), and whether one
 * unit fits now: what a scheduler without an index evaluates on every GPU (the benchmark's peer). */
int fleet_gpu_resolve(const Fleet *f, uint32_t gpu, const FleetRequest *r);
bool fleet_gpu_fits(const Fleet *f, uint32_t gpu, FleetKind kind, int idx);
/* Keep a GPU out of placements while its record is in a transaction in flight (held), or let it back. */
int fleet_gpu_hold(Fleet *f, uint32_t gpu, bool held);
bool fleet_gpu_held(const Fleet *f, uint32_t gpu) _pure_;
/* Used share of a GPU, 0..1. */
double fleet_gpu_used_share(const Fleet *f, uint32_t gpu);
