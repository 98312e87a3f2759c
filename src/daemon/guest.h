/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The guests' own view (gpuvirt-agent in the VM, see src/agent/): for each running domain that holds a
 * unit, the collector finds the agent channel's unix socket in the domain's live XML, connects, and keeps
 * the last complete JSON line the agent wrote. A domain without the channel, or whose agent has not
 * reported within the stale time, is reported as such (gpuvirt_guest_agent_up 0), never as zeros.
 */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct Guest {
        char *domain;
        char *path;        /* the channel's socket, NULL: the domain has no agent channel */
        int fd;
        char buf[65536];
        size_t len;
        json_object *report; /* the last complete line, parsed */
        uint64_t report_mono;
        bool seen;
} Guest;

typedef struct Guests {
        Guest **g;
        size_t n;
} Guests;

/* This cycle: domain is running with path its channel (NULL: none). Connects and drains what is there. */
Guest *guests_update(Guests *gs, const char *domain, const char *path, uint64_t now_mono);
/* Forget domains not updated since the last guests_begin(). */
void guests_begin(Guests *gs);
void guests_end(Guests *gs);
void guests_done(Guests *gs);
/* Whether the guest's agent reported within stale_usec. */
bool guest_up(const Guest *g, uint64_t now_mono, uint64_t stale_usec);
