/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

#include "core/host/check.h"
#include "core/state/hostspec.h"
#include "core/mig/mig.h"
#include "core/host/pci.h"
#include "core/advise/knowledge.h"

/*
 * gpuvirt advise: one mode per GPU, with the layout that serves the tenants, from what the host can do
 * (the inventory model of `list`, the readiness verdicts of `check`, the MIG profiles NVML reports) and
 * the knowledge table (knowledge.h).
 */

typedef struct AdviseRequest {
        Workload workload;
        unsigned tenants;     /* 0: as many as each GPU's layout serves */
        bool live_migration;  /* the tenants' VMs must be live-migratable */
        Isolation isolation;  /* the least isolation accepted; _ISOLATION_INVALID: any */
        unsigned memory_gb;   /* GPU memory per tenant at least; 0: any */
        char **devices;       /* only these GPUs (canonical addresses); NULL: every GPU */
} AdviseRequest;

/*
 * The advice as the one JSON model (text and host.yaml are rendered from it):
 *   {"request": {...}, "gpus": [{"address", "name", "mode", "layout": {...} | null, "tenants",
 *    "reasons": [..], "tradeoffs": [..], "ruled_out": [{"mode", "reason"}], "excluded": [{"mode", "reason"}]}],
 *    "tenants": {"asked", "served"}, "warnings": [..]}
 * inventory: inventory_list() of the host with inventory_add_mig(); gpus: what NVML reports (may be none).
 * -EINVAL when a requested device is not a GPU of this host.
 */
int advise_host(const PciHost *h, json_object *inventory, const CheckReport *check, const MigGpu *gpus,
                size_t n_gpus, const AdviseRequest *req, json_object **ret);

typedef struct Fleet Fleet;

/* The same advice over the fleet pool (core/fleet: what each host publishes of its GPUs, the units free on
 * each now), each GPU object with its "host"; hosts that are down and GPUs being drained are left out
 * ("left_out"). What the pool does not carry (check's verdicts) is named in "host_decides". */
int advise_fleet(const Fleet *f, const AdviseRequest *req, json_object **ret);

/* The desired state that carries the advice out: one entry per advised GPU, by address. */
int advise_host_spec(json_object *advice, HostSpec **ret);
