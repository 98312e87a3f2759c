/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The fleet agent of one host: registers it (provider tree: one record per GPU), keeps its lease, watches its
 * GPUs' ledgers and converges them through the desired-state engine (host_plan / host_apply, journaled),
 * then writes back what it created. gpuvirtd's --fleet will run fleet_agent_run(); today `gpuvirt fleet
 * agent` does, in the foreground.
 *
 * What it remembers on the host (var/lib/gpuvirt/fleet/agent.json): each GPU's mode before the fleet used it
 * (restored when its last unit goes), each GPU's published model, and the units it realized. From that:
 *  - on restart it adopts live units it created before (nothing is recreated);
 *  - the reconciler removes units whose reservation is gone (they are not in the desired state any more);
 *  - a unit that was realized and has disappeared from the host is not silently recreated: it leaves the
 *    GPU's ledger and its reservation is marked "lost" (reported by `fleet show` and `fleet status`).
 */

#include <signal.h>

#include "core/host/root.h"
#include "core/fleet/store.h"

#define FLEET_AGENT_STATE FLEET_LOCAL_DIR "/agent.json"

typedef struct FleetConvergeReport {
        size_t gpus, units_ready, units_failed, units_removed, units_lost, steps;
        char *error; /* the first failure, if any */
} FleetConvergeReport;

void fleet_converge_report_done(FleetConvergeReport *r);

/* The host's name in the fleet: etc/hostname under the root, else the machine's. */
int fleet_host_name_default(Root *root, char **ret);

/* Publish this host's GPUs, realize its reservations, write back the units, reconcile: one pass. */
int fleet_agent_converge(Root *root, Store *s, const char *host, FleetConvergeReport *ret);

typedef struct FleetAgentOptions {
        const char *host;
        int ttl_s;                      /* lease; keepalive every ttl/3 */
        int resync_ms;                  /* a full pass at least this often (default 3 * ttl) */
        const volatile sig_atomic_t *stop; /* set by a signal handler: leave the loop, revoke the lease */
        void (*progress)(const FleetConvergeReport *r, void *ud); /* after each pass (may be NULL) */
        void *userdata;
} FleetAgentOptions;

/* Register, then converge on every change of the host's ledgers until *stop. err (may be NULL): why it could
 * not start. */
int fleet_agent_run(Root *root, Store *s, const FleetAgentOptions *o, GvError *err);
