/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The fleet in the store. Key layout (values are JSON):
 *   /gpuvirt/v1/hosts/<host>              the host as its agent registered it
 *   /gpuvirt/v1/alive/<host>              bound to the agent's lease: absent = the host is down
 *   /gpuvirt/v1/gpus/<host>/<address>     a GPU's record: model, traits, base usage, drain flag and the ledger
 *                                         of fleet units on it (the key every reservation compares)
 *   /gpuvirt/v1/res/<id>                  a reservation: owner, request, its units
 *   /gpuvirt/v1/units/<host>/<id>/<n>     what the agent realized for unit n (MIG UUID, mdev UUID, VF, group)
 *   /gpuvirt/v1/models/<hash>             a GPU model's capabilities (MIG profiles, vGPU types, VFs), stored once
 *                                         and named by the hash of its JSON; GPU records say {"model":{"ref":..}}
 *                                         so a reservation rewrites only the small per-GPU part
 *
 * A batch of reservations is one transaction: compare the mod_revision of exactly the GPU keys it consumes
 * (and that each new reservation key does not exist), then put those GPU records with the new ledger and
 * the reservation records; on failure the same transaction returns the current GPU records, which replace
 * the scheduler's copy before it places the batch again.
 */

#include "core/fleet/fleet.h"
#include "core/fleet/store.h"

#define FLEET_KEY_HOSTS FLEET_PREFIX "hosts/"
#define FLEET_KEY_ALIVE FLEET_PREFIX "alive/"
#define FLEET_KEY_GPUS  FLEET_PREFIX "gpus/"
#define FLEET_KEY_RES   FLEET_PREFIX "res/"
#define FLEET_KEY_UNITS FLEET_PREFIX "units/"
#define FLEET_KEY_MODELS FLEET_PREFIX "models/"

/* Read every host and GPU into a new in-memory fleet. Damaged records are skipped and counted. The functions
 * below say what failed in err (may be NULL). */
int fleet_load(Store *s, FleetStrategy strategy, Fleet **ret, size_t *ret_damaged, GvError *err);

typedef struct FleetReserved {
        char id[FLEET_ID_MAX];
        int error; /* 0, or -ENOSPC / -EINVAL: not placed */
        char *message;
        FleetPlacement *units;
        size_t n_units;
} FleetReserved;

void fleet_reserved_done(FleetReserved *r, size_t n);

/* A new reservation id ("r" + 16 hex digits, random). */
int fleet_new_id(char ret[static FLEET_ID_MAX]);

typedef struct FleetReserveStats {
        size_t txns, conflicts, retries_uncertain;
} FleetReserveStats;

/*
 * Place and commit requests, batch of them per transaction (batch 1: one each), up to depth transactions in
 * flight at once (on a store that can: etcd). Transactions in flight never share a GPU: a GPU in one is held
 * (fleet_gpu_hold) until it is answered, so each compares and writes only its own GPUs. A transaction that
 * fails its compare brings back the current records of its GPUs, and only its own requests are placed again.
 * A request that finds no room while others are in flight is tried again once none is. Each result says its
 * id, or why it was not placed. The fleet f is the scheduler's copy: it is kept in step with the store.
 * extra (may be NULL): a JSON object merged into each reservation record (drain: "replaces").
 */
int fleet_reserve(Store *s, Fleet *f, const FleetRequest *reqs, size_t n, size_t batch, size_t depth, json_object *extra,
                  FleetReserved *ret, FleetReserveStats *stats, GvError *err);

/* Release a reservation: its units leave the GPUs' ledgers, its record goes. -ENOENT when unknown. */
int fleet_release(Store *s, Fleet *f, const char *id, GvError *err);

/* Mark a host unschedulable (undo: schedulable again); then new placements elsewhere for what it holds (the
 * old reservations become "moving" and are released when their owner releases them). */
typedef struct FleetDrainResult {
        size_t moved, stuck;
        json_object *report; /* [{"reservation","replacement","error"}] */
} FleetDrainResult;
int fleet_drain(Store *s, Fleet *f, const char *host, bool undo, FleetDrainResult *ret, GvError *err);

/* Reservation records. */
int fleet_reservations(Store *s, json_object **ret, GvError *err);
int fleet_reservation(Store *s, const char *id, json_object **ret);

/* The stored form of a GPU record (its model as a reference); ret_model_key / ret_model_value (may be NULL):
 * the model's own key and value, for the writer to put beside it. */
char *fleet_gpu_record(const FleetGpuInfo *g, char **ret_model_key, char **ret_model_value);
/* Parse a stored GPU record, resolving its model reference (models are immutable: cached per process). */
int fleet_gpu_record_parse(Store *s, const char *text, FleetGpuInfo *ret, GvError *err);

/* The key of a GPU / a unit record. */
char *fleet_gpu_key(const char *host, const char *address);
char *fleet_unit_key(const char *host, const char *res, unsigned n);
