/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * gpuvirtd: the collector thread samples the host every interval into an immutable Snapshot (every HTTP
 * answer pre-rendered); the HTTP server (libmicrohttpd's own thread) serves the current one, taking a
 * reference under a lock held for a pointer copy, so a scrape never waits for the kernel or NVML.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "basic/gverror.h"
#include "core/host/root.h"

#define GPUVIRTD_DEFAULT_LISTEN "127.0.0.1:9835"

typedef struct DaemonConfig {
        char *listen;              /* ADDR:PORT, [ADDR6]:PORT */
        uint64_t interval_usec;    /* collector period */
        uint64_t clean_usec;       /* how long a unit stays clean before it recovers */
        unsigned max_connections;  /* at once, over all clients */
        unsigned timeout_sec;      /* per connection, idle */
        unsigned request_limit;    /* bytes of one request (line and headers) */
        char *libvirt;             /* libvirt URI for holder domains, "none": do not ask */
        char *web_config;          /* exporter-toolkit web config (TLS, basic auth), NULL: none */
} DaemonConfig;

void daemon_config_init(DaemonConfig *c);
void daemon_config_done(DaemonConfig *c);
int daemon_config_copy(const DaemonConfig *from, DaemonConfig *to);
/* Apply a config file (YAML mapping; keys as the long options) over c. -EINVAL with the error's message
 * "FILE:LINE:COL: reason" (step "parse") and c unchanged. */
int daemon_config_load(DaemonConfig *c, const char *path, GvError *ret_error);
/* Parse a duration in seconds ("5", "0.5", "300"): µs, > 0. */
int parse_seconds(const char *s, uint64_t *ret);
/* "ADDR:PORT" to a socket address; *ret_loopback whether it is a loopback address. */
int parse_listen(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len, bool *ret_loopback);

/* exporter-toolkit's web configuration: TLS certificate and key, basic-auth users with bcrypt hashes. */
typedef struct WebConfig {
        char *cert_pem, *key_pem; /* file contents, NULL: plain HTTP */
        char **users, **hashes;   /* NULL-terminated, parallel */
} WebConfig;
int web_config_load(const char *path, WebConfig *ret, GvError *ret_error);
void web_config_done(WebConfig *w);
/* Whether user/password match one of the users (bcrypt through crypt_r). */
bool web_config_check(const WebConfig *w, const char *user, const char *password);

typedef struct Snapshot {
        atomic_uint refs;
        uint64_t taken_usec; /* CLOCK_REALTIME */
        char *metrics, *gpus, *units, *events, *healthz;
        size_t metrics_len, gpus_len, units_len, events_len, healthz_len;
        bool ok; /* the cycle that made it read the host */
} Snapshot;

Snapshot *snapshot_ref(Snapshot *s);
void snapshot_unref(Snapshot *s);

/* Where the current snapshot lives: swapped by the collector, referenced by the server. */
typedef struct SnapshotStore {
        pthread_mutex_t lock;
        Snapshot *current;
} SnapshotStore;
void snapshot_store_init(SnapshotStore *st);
void snapshot_store_done(SnapshotStore *st);
/* A reference to the current snapshot (NULL before the first), to snapshot_unref(). */
Snapshot *snapshot_store_get(SnapshotStore *st);
/* Publish s (the store takes the caller's reference). */
void snapshot_store_set(SnapshotStore *st, Snapshot *s);

typedef struct Collector Collector;
/* Start the collector thread: it runs its first cycle before returning (so READY means data). */
int collector_start(Root *root, const DaemonConfig *cfg, SnapshotStore *store, Collector **ret);
/* New interval, clean period and libvirt URI; the next cycle rescans, reopens NVML and libvirt. */
int collector_reload(Collector *c, const DaemonConfig *cfg);
/* Stop and join the thread, free everything. */
void collector_stop(Collector *c);
/* CLOCK_MONOTONIC µs of the last finished cycle (the watchdog's proof of life), and units seen. */
uint64_t collector_last_cycle(Collector *c);
unsigned collector_units(Collector *c);

typedef struct HttpServer HttpServer;
int http_start(const DaemonConfig *cfg, const WebConfig *web, SnapshotStore *store, HttpServer **ret,
               char **ret_error);
void http_stop(HttpServer *s);

uint64_t now_usec(int clock);
