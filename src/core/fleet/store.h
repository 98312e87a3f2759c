/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The fleet's store: a revisioned key-value store with leases, transactions that compare mod_revisions, and
 * watches (etcd's v3 model). Backends:
 *   etcd://HOST:PORT[,HOST:PORT...]  etcd 3.4 through its v3 JSON gateway (libcurl); every endpoint is
 *                                    tried in turn, so a dead member (a killed leader) costs one retry
 *   local                            one host, no server: var/lib/gpuvirt/fleet/store.json under the root,
 *                                    one writer at a time by a lock, the same revisions and leases
 */

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "basic/macro.h"
#include "core/host/root.h"

#define FLEET_PREFIX       "/gpuvirt/v1/"
#define FLEET_LOCAL_DIR    "var/lib/gpuvirt/fleet"
#define FLEET_TXN_OPS_MAX  128 /* etcd's default --max-txn-ops */
#define STORE_INFLIGHT_MAX 32  /* transactions in flight at once (store_txn_submit) */

typedef struct Store Store;

typedef struct StoreKv {
        char *key;
        char *value;
        int64_t mod_revision, create_revision, lease;
} StoreKv;

void store_kvs_free(StoreKv *kvs, size_t n);

typedef enum StoreOpType {
        STORE_PUT,
        STORE_DELETE, /* key, or every key under it with prefix */
        STORE_GET,    /* key, or every key under it with prefix: results in StoreTxnResult.kvs */
} StoreOpType;

typedef struct StoreOp {
        StoreOpType type;
        const char *key;
        const char *value;
        int64_t lease;
        bool prefix;
} StoreOp;

/* key's mod_revision == mod_revision (0: the key does not exist) */
typedef struct StoreCmp {
        const char *key;
        int64_t mod_revision;
} StoreCmp;

typedef struct StoreTxnResult {
        bool succeeded;
        int64_t revision; /* of the store after the transaction */
        StoreKv *kvs;     /* from the STORE_GET ops of the branch that ran, in order */
        size_t n_kvs;
} StoreTxnResult;

void store_txn_result_done(StoreTxnResult *r);

/* Open a store by URL ("local" or NULL: the root's local store). -EINVAL with err's message for a bad URL. */
int store_open(const char *url, Root *root, Store **ret, GvError *err);
Store *store_free(Store *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Store *, store_free)
#define _cleanup_store_free_ _cleanup_(store_freep)

bool store_is_local(const Store *s) _pure_;
/* What went wrong last, for messages ("connection refused on every endpoint"); may be NULL. */
const char *store_last_error(const Store *s) _pure_;

/* Keys under prefix (or the one key), sorted; ret_revision: the store's revision of the read. */
int store_range(Store *s, const char *key, bool prefix, StoreKv **ret, size_t *ret_n, int64_t *ret_revision);
/* If every compare holds, the success ops, else the failure ops: atomically. -EIO and friends when the store
 * could not be reached; then whether it happened is unknown (callers make their transactions idempotent). */
int store_txn(Store *s, const StoreCmp *cmp, size_t n_cmp, const StoreOp *success, size_t n_success,
              const StoreOp *failure, size_t n_failure, StoreTxnResult *ret);
int store_put(Store *s, const char *key, const char *value, int64_t lease);

/* Transactions in flight, up to STORE_INFLIGHT_MAX: store_txn_submit() sends one and returns without waiting
 * for its answer (a backend that cannot do that runs it there and then); store_txn_wait() waits until one has
 * finished and gives its tag, its result (*ret_status: what store_txn() would have returned) and *ret.
 * -EBUSY: STORE_INFLIGHT_MAX in flight already; store_txn_wait(): -ECHILD when none is in flight. The
 * transaction is encoded at submit: what cmp and the ops point to may go right after it. */
int store_txn_submit(Store *s, const StoreCmp *cmp, size_t n_cmp, const StoreOp *success, size_t n_success,
                     const StoreOp *failure, size_t n_failure, void *tag);
int store_txn_wait(Store *s, void **ret_tag, int *ret_status, StoreTxnResult *ret);
size_t store_txn_in_flight(const Store *s) _pure_;
/* Whether transactions really are in flight together (the backend has txn_submit). */
bool store_txn_overlaps(const Store *s) _pure_;
int store_lease_grant(Store *s, int ttl_s, int64_t *ret_id);
/* ret_ttl: seconds left, 0 when the lease is gone (expired or revoked). */
int store_lease_keepalive(Store *s, int64_t id, int *ret_ttl);
int store_lease_revoke(Store *s, int64_t id);
/* Wait until something under prefix changes after revision from (or timeout_ms passes). ret_changed: a change
 * was seen (or may have been: the history was compacted); ret_revision: the newest revision seen. */
int store_watch(Store *s, const char *prefix, int64_t from, int timeout_ms, bool *ret_changed, int64_t *ret_revision);

/* Building a transaction: the builder owns the keys and values given to it. */
typedef struct StoreTxn {
        StoreCmp cmp[FLEET_TXN_OPS_MAX];
        StoreOp success[FLEET_TXN_OPS_MAX], failure[FLEET_TXN_OPS_MAX];
        size_t n_cmp, n_success, n_failure;
        char *owned[3 * FLEET_TXN_OPS_MAX];
        size_t n_owned;
        bool oom;
} StoreTxn;

/* Put key=value (both taken; NULL is out of memory, reported by store_txn_run); with compare: only if the
 * key's mod_revision is still rev (0: absent), and read the key back when the transaction fails. */
void store_txn_put(StoreTxn *t, char *key, char *value, bool compare, int64_t rev);
/* Delete key (taken) in the success branch. */
void store_txn_delete(StoreTxn *t, char *key);
/* Room for n more ops in each branch. */
bool store_txn_room(const StoreTxn *t, size_t n) _pure_;
int store_txn_run(Store *s, StoreTxn *t, StoreTxnResult *ret);
int store_txn_start(Store *s, StoreTxn *t, void *tag);
void store_txn_done(StoreTxn *t);

/* Backend table (store-etcd.c, store-local.c). */
typedef struct StoreOps {
        int (*range)(Store *s, const char *key, bool prefix, StoreKv **ret, size_t *ret_n, int64_t *ret_rev);
        int (*txn)(Store *s, const StoreCmp *cmp, size_t n_cmp, const StoreOp *succ, size_t n_succ, const StoreOp *fail,
                   size_t n_fail, StoreTxnResult *ret);
        int (*lease_grant)(Store *s, int ttl_s, int64_t *ret_id);
        int (*lease_keepalive)(Store *s, int64_t id, int *ret_ttl);
        int (*lease_revoke)(Store *s, int64_t id);
        int (*watch)(Store *s, const char *prefix, int64_t from, int timeout_ms, bool *ret_changed, int64_t *ret_rev);
        /* optional: without them, store_txn_submit() runs txn at once and store_txn_wait() hands its result back */
        int (*txn_submit)(Store *s, const StoreCmp *cmp, size_t n_cmp, const StoreOp *succ, size_t n_succ,
                          const StoreOp *fail, size_t n_fail, void *tag);
        int (*txn_wait)(Store *s, void **ret_tag, int *ret_status, StoreTxnResult *ret);
        void (*done)(Store *s);
} StoreOps;

/* A finished transaction of a backend without txn_submit, until store_txn_wait() takes it. */
typedef struct StoreDone {
        void *tag;
        int status;
        StoreTxnResult result;
} StoreDone;

struct Store {
        const StoreOps *ops;
        bool local;
        char *error;
        void *data;
        size_t in_flight;
        StoreDone finished[STORE_INFLIGHT_MAX];
        size_t n_finished;
};

void store_set_error(Store *s, const char *fmt, ...) _printf_(2, 3);
int store_etcd_open(const char *endpoints, Store *s, GvError *err);
int store_local_open(Root *root, Store *s, GvError *err);

/* The end of a prefix range: prefix with its last byte incremented (etcd's range_end). */
char *store_prefix_end(const char *prefix);

/* A record read back from the store (written by another host or program: untrusted) as one JSON object,
 * through the strict reader every JSON file goes through (basic/jsonfile.h: one value, no key given twice,
 * bounded depth, no NUL byte). NULL when it is not exactly one object, with err (when not NULL) saying
 * "KEY:LINE:COL: reason" (-EBADMSG). */
json_object *store_record_parse(const char *key, const char *value, GvError *err);
