/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The store interface: URLs, the calls every backend answers, and what they share. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "basic/jsonfile.h"
#include "core/fleet/store.h"

void store_kvs_free(StoreKv *kvs, size_t n) {
        for (size_t i = 0; kvs && i < n; i++) {
                free(kvs[i].key);
                free(kvs[i].value);
        }
        free(kvs);
}

void store_txn_result_done(StoreTxnResult *r) {
        store_kvs_free(r->kvs, r->n_kvs);
        *r = (StoreTxnResult){};
}

void store_set_error(Store *s, const char *fmt, ...) {
        free(s->error);
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&s->error, fmt, ap) < 0)
                s->error = NULL;
        va_end(ap);
}

char *store_prefix_end(const char *prefix) {
        size_t n = strlen(prefix);
        char *e = strdup(prefix);
        if (!e || n == 0)
                return e;
        /* the smallest key after every key that starts with prefix */
        while (n > 0 && (unsigned char)e[n - 1] == 0xff)
                e[--n] = '\0';
        if (n > 0)
                e[n - 1]++;
        return e;
}

int store_open(const char *url, Root *root, Store **ret, GvError *err) {
        Store *s = calloc(1, sizeof *s);
        if (!s)
                return gv_error_set(err, -ENOMEM, NULL, "open", NULL);
        _cleanup_(gv_error_done) GvError e = {};
        const char *ep;
        int r;
        if (isempty(url) || streq(url, "local"))
                r = store_local_open(root, s, &e);
        else if ((ep = startswith(url, "etcd://")) || (ep = startswith(url, "http://")))
                r = store_etcd_open(ep, s, &e);
        else
                r = gv_error_set(&e, -EINVAL, NULL, NULL, "'%s' is not a store: etcd://HOST:PORT[,HOST:PORT...] or local",
                                 url);
        if (r < 0) {
                free(s->error);
                free(s);
                return gv_error_take(err, r, NULL, "open", GV_HINT_NONE, TAKE_PTR(e.message));
        }
        *ret = s;
        return 0;
}

Store *store_free(Store *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_finished; i++)
                store_txn_result_done(&s->finished[i].result);
        if (s->ops && s->ops->done)
                s->ops->done(s);
        free(s->error);
        free(s);
        return NULL;
}

bool store_is_local(const Store *s) {
        return s->local;
}

const char *store_last_error(const Store *s) {
        return s->error;
}

int store_range(Store *s, const char *key, bool prefix, StoreKv **ret, size_t *ret_n, int64_t *ret_revision) {
        int64_t rev = 0;
        int r = s->ops->range(s, key, prefix, ret, ret_n, &rev);
        if (r >= 0 && ret_revision)
                *ret_revision = rev;
        return r;
}

int store_txn(Store *s, const StoreCmp *cmp, size_t n_cmp, const StoreOp *success, size_t n_success,
              const StoreOp *failure, size_t n_failure, StoreTxnResult *ret) {
        if (n_cmp > FLEET_TXN_OPS_MAX || n_success > FLEET_TXN_OPS_MAX || n_failure > FLEET_TXN_OPS_MAX)
                return -E2BIG;
        *ret = (StoreTxnResult){};
        return s->ops->txn(s, cmp, n_cmp, success, n_success, failure, n_failure, ret);
}

int store_put(Store *s, const char *key, const char *value, int64_t lease) {
        StoreTxnResult res;
        StoreOp op = {STORE_PUT, key, value, lease, false};
        int r = store_txn(s, NULL, 0, &op, 1, NULL, 0, &res);
        store_txn_result_done(&res);
        return r;
}

int store_txn_submit(Store *s, const StoreCmp *cmp, size_t n_cmp, const StoreOp *success, size_t n_success,
                     const StoreOp *failure, size_t n_failure, void *tag) {
        if (n_cmp > FLEET_TXN_OPS_MAX || n_success > FLEET_TXN_OPS_MAX || n_failure > FLEET_TXN_OPS_MAX)
                return -E2BIG;
        if (s->in_flight >= STORE_INFLIGHT_MAX)
                return -EBUSY;
        int r;
        if (s->ops->txn_submit)
                r = s->ops->txn_submit(s, cmp, n_cmp, success, n_success, failure, n_failure, tag);
        else {
                /* no transactions in flight here: run it now, hand the result back at the next wait */
                StoreDone *d = &s->finished[s->n_finished++];
                *d = (StoreDone){.tag = tag};
                d->status = s->ops->txn(s, cmp, n_cmp, success, n_success, failure, n_failure, &d->result);
                r = 0;
        }
        if (r >= 0)
                s->in_flight++;
        return r;
}

int store_txn_wait(Store *s, void **ret_tag, int *ret_status, StoreTxnResult *ret) {
        if (s->in_flight == 0)
                return -ECHILD;
        int r;
        if (s->ops->txn_wait) {
                *ret = (StoreTxnResult){};
                r = s->ops->txn_wait(s, ret_tag, ret_status, ret);
        } else {
                StoreDone d = s->finished[0];
                memmove(s->finished, s->finished + 1, --s->n_finished * sizeof *s->finished);
                *ret_tag = d.tag;
                *ret_status = d.status;
                *ret = d.result;
                r = 0;
        }
        if (r >= 0)
                s->in_flight--;
        return r;
}

size_t store_txn_in_flight(const Store *s) {
        return s->in_flight;
}

bool store_txn_overlaps(const Store *s) {
        return s->ops->txn_submit != NULL;
}

int store_lease_grant(Store *s, int ttl_s, int64_t *ret_id) {
        return s->ops->lease_grant(s, ttl_s, ret_id);
}

int store_lease_keepalive(Store *s, int64_t id, int *ret_ttl) {
        return s->ops->lease_keepalive(s, id, ret_ttl);
}

int store_lease_revoke(Store *s, int64_t id) {
        return s->ops->lease_revoke(s, id);
}

int store_watch(Store *s, const char *prefix, int64_t from, int timeout_ms, bool *ret_changed, int64_t *ret_revision) {
        *ret_changed = false;
        *ret_revision = from;
        return s->ops->watch(s, prefix, from, timeout_ms, ret_changed, ret_revision);
}

static char *own(StoreTxn *t, char *p) {
        if (!p)
                t->oom = true;
        else if (t->n_owned < ELEMENTSOF(t->owned))
                t->owned[t->n_owned++] = p;
        return p;
}

bool store_txn_room(const StoreTxn *t, size_t n) {
        return t->n_success + n <= FLEET_TXN_OPS_MAX && t->n_cmp + n <= FLEET_TXN_OPS_MAX && t->n_failure + n <= FLEET_TXN_OPS_MAX;
}

void store_txn_put(StoreTxn *t, char *key, char *value, bool compare, int64_t rev) {
        own(t, key);
        own(t, value);
        if (!key || !value || !store_txn_room(t, 1)) {
                t->oom |= key && value; /* no room counts as a failure of the builder */
                return;
        }
        t->success[t->n_success++] = (StoreOp){STORE_PUT, key, value, 0, false};
        if (compare) {
                t->cmp[t->n_cmp++] = (StoreCmp){key, rev};
                t->failure[t->n_failure++] = (StoreOp){STORE_GET, key, NULL, 0, false};
        }
}

void store_txn_delete(StoreTxn *t, char *key) {
        if (own(t, key) && store_txn_room(t, 1))
                t->success[t->n_success++] = (StoreOp){STORE_DELETE, key, NULL, 0, false};
        else
                t->oom = true;
}

int store_txn_run(Store *s, StoreTxn *t, StoreTxnResult *ret) {
        *ret = (StoreTxnResult){};
        if (t->oom)
                return -ENOMEM;
        return store_txn(s, t->cmp, t->n_cmp, t->success, t->n_success, t->failure, t->n_failure, ret);
}

int store_txn_start(Store *s, StoreTxn *t, void *tag) {
        if (t->oom)
                return -ENOMEM;
        return store_txn_submit(s, t->cmp, t->n_cmp, t->success, t->n_success, t->failure, t->n_failure, tag);
}

void store_txn_done(StoreTxn *t) {
        for (size_t i = 0; i < t->n_owned; i++)
                free(t->owned[i]);
        t->n_owned = 0;
}

json_object *store_record_parse(const char *key, const char *value, GvError *err) {
        json_object *o = NULL;
        if (!value)
                return gv_error_set(err, -EBADMSG, NULL, NULL, "%s: no record", key), NULL;
        if (json_parse_strict(key, value, strlen(value), &o, err) < 0)
                return NULL;
        if (!json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return gv_error_set(err, -EBADMSG, NULL, NULL, "%s: not a JSON object", key), NULL;
        }
        return o;
}
