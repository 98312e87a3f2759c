/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * etcd 3.4 through its v3 JSON gateway (POST /v3/kv/range, /v3/kv/txn, /v3/lease/grant, keepalive, revoke, /v3/watch on the client
 * port) with libcurl: keys and values are base64, 64-bit numbers come as strings, false and zero fields are
 * left out (a missing "succeeded" is false). One keep-alive connection per store; the watch has its own.
 *
 * Endpoints are tried in order from the one that answered last: a member that refuses the connection
 * (killed) is skipped at once; errors etcd returns while it has no leader (code 14, "leader changed") are
 * retried for a few seconds. A request whose answer was lost after it was sent returns -EIO: it may or may not
 * have been applied, and the caller's transaction is written so that running it twice is harmless.
 *
 * Transactions can also be in flight several at once (store_txn_submit/wait): each on its own handle of one
 * curl multi handle (its own keep-alive connection), answered and retried by the same rules as one at a time.
 */
/* the calls go through the table below: curl's type-checking macros would expand the table's member names */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <dlfcn.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/base64.h"
#include "basic/dlsym-table.h"
#include "basic/fileio.h"
#include "core/fleet/store.h"

#define ENDPOINTS_MAX 16
#define ATTEMPTS      60 /* sends of one request: refused connections and "no leader" answers */

typedef struct Buf {
        char *data;
        size_t len;
        /* watch: stop once a line with events (or the end of the history) came */
        bool watching, changed;
        int64_t revision;
} Buf;

/* A transaction in flight. */
typedef struct Call {
        CURL *h;
        Buf b;
        char *body;
        void *tag;
        size_t ep;            /* the endpoint it went to */
        int attempt;
        int64_t not_before;   /* a retry is sent again from then on (ms, CLOCK_MONOTONIC) */
        bool busy, added;
} Call;

typedef struct Etcd {
        char *endpoints[ENDPOINTS_MAX];
        size_t n_endpoints, current;
        CURL *curl, *watch;
        struct curl_slist *headers;
        CURLM *multi;
        Call calls[STORE_INFLIGHT_MAX];
} Etcd;

static int64_t mono_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t on_data(char *p, size_t size, size_t n, void *ud) {
        Buf *b = ud;
        size_t len = size * n;
        if (b->len + len > (256u << 20))
                return 0;
        char *x = realloc(b->data, b->len + len + 1);
        if (!x)
                return 0;
        memcpy(x + b->len, p, len);
        b->data = x;
        b->len += len;
        b->data[b->len] = '\0';
        if (!b->watching)
                return len;
        /* the watch stream: one JSON object per line */
        char *nl;
        while ((nl = memchr(b->data, '\n', b->len))) {
                *nl = '\0';
                json_object *o = json_tokener_parse(b->data);
                json_object *res = o ? json_object_object_get(o, "result") : NULL;
                json_object *hdr = res ? json_object_object_get(res, "header") : NULL;
                const char *rv = hdr ? json_object_get_string(json_object_object_get(hdr, "revision")) : NULL;
                if (rv)
                        b->revision = MAX(b->revision, strtoll(rv, NULL, 10));
                if (res && (json_object_object_get(res, "events") || json_object_object_get(res, "compact_revision") ||
                            json_object_get_boolean(json_object_object_get(res, "canceled"))))
                        b->changed = true;
                json_object_put(o);
                size_t rest = b->len - (size_t)(nl + 1 - b->data);
                memmove(b->data, nl + 1, rest);
                b->len = rest;
                b->data[rest] = '\0';
        }
        return b->changed ? 0 : len; /* 0 ends the transfer */
}

static json_object *b64(const char *s) {
        _cleanup_free_ char *e = base64_encode(s, strlen(s));
        return e ? json_object_new_string(e) : NULL;
}

static json_object *i64(int64_t v) {
        char b[24];
        snprintf(b, sizeof b, "%lld", (long long)v);
        return json_object_new_string(b);
}

static int64_t get_i64(json_object *o, const char *key) {
        const char *s = json_object_get_string(json_object_object_get(o, key));
        return s ? strtoll(s, NULL, 10) : 0;
}

static int decode(json_object *o, const char *key, char **ret) {
        const char *s = json_object_get_string(json_object_object_get(o, key));
        return base64_decode(s ?: "", ret, NULL);
}

/*
 * libcurl is loaded with dlopen when an etcd store is opened: linked, it would load its TLS, Kerberos, LDAP,
 * SSH and IDN libraries (about 30) into every gpuvirt process, though only this file talks HTTP. One typed
 * table, resolved by dlsym_table() as NVML's and libvirt's are.
 */
#define CURL_SYMBOLS(X) \
        X(curl_easy_cleanup) \
        X(curl_easy_getinfo) \
        X(curl_easy_init) \
        X(curl_easy_perform) \
        X(curl_easy_setopt) \
        X(curl_easy_strerror) \
        X(curl_global_init) \
        X(curl_multi_add_handle) \
        X(curl_multi_cleanup) \
        X(curl_multi_info_read) \
        X(curl_multi_init) \
        X(curl_multi_perform) \
        X(curl_multi_poll) \
        X(curl_multi_remove_handle) \
        X(curl_slist_append) \
        X(curl_slist_free_all)

static struct {
        void *dl;
#define CURL_SYM_FIELD(name) __typeof__(&name) name;
        CURL_SYMBOLS(CURL_SYM_FIELD)
#undef CURL_SYM_FIELD
} curlsym;

/* 0, or -ENOPKG (err says why) when libcurl (libcurl4) is not installed or lacks a symbol. */
static int curl_dlopen(GvError *err) {
        if (curlsym.dl)
                return 0;
        void *dl = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
        if (!dl)
                return gv_error_set(err, -ENOPKG, NULL, "dlopen", "libcurl is not available: %s", dlerror());
        const DlsymEntry table[] = {
#define CURL_SYM_ENTRY(name) {#name, (void **)&curlsym.name, true},
                CURL_SYMBOLS(CURL_SYM_ENTRY)
#undef CURL_SYM_ENTRY
        };
        const char *missing = NULL;
        if (dlsym_table(dl, table, ELEMENTSOF(table), &missing) < 0) {
                dlclose(dl);
                return gv_error_set(err, -ENOPKG, NULL, "dlsym", "libcurl is not available: libcurl.so.4 lacks %s",
                                    missing);
        }
        curlsym.dl = dl;
        return 0;
}

static CURL *handle(struct curl_slist *headers) {
        CURL *c = curlsym.curl_easy_init();
        if (!c)
                return NULL;
        curlsym.curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        curlsym.curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curlsym.curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
        curlsym.curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
        curlsym.curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curlsym.curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
        curlsym.curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
        return c;
}

/* A request to endpoint ep on handle h (body is not copied: it outlives the transfer). */
static int setup(Etcd *e, CURL *h, size_t ep, const char *path, const char *body, Buf *b) {
        _cleanup_free_ char *url = strdup_printf("http://%s%s", e->endpoints[ep], path);
        if (!url)
                return -ENOMEM;
        curlsym.curl_easy_setopt(h, CURLOPT_URL, url); /* copied by libcurl */
        curlsym.curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curlsym.curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
        return 0;
}

/* The next endpoint after ep failed (unless another request moved on already). */
static void next_endpoint(Etcd *e, size_t ep) {
        if (e->current == ep)
                e->current = (ep + 1) % e->n_endpoints;
}

/* What the outcome of a request sent to endpoint ep means. 0: *ret is the answer; 1: send it again (to
 * e->current) after *ret_wait_ms; < 0: it failed (-EIO: sent and not answered, so whether it was applied is
 * unknown). Refused connections move to the next member at once (a pause once all refused); etcd's answers
 * while it has no leader (14 unavailable, 4 deadline, 10 aborted: not applied) are tried again. */
static int judge(Store *s, size_t ep, int attempt, CURLcode c, CURL *h, const Buf *b, json_object **ret, long *ret_wait_ms) {
        Etcd *e = s->data;
        *ret_wait_ms = 0;
        if (c != CURLE_OK) {
                store_set_error(s, "%s: %s", e->endpoints[ep], curlsym.curl_easy_strerror(c));
                next_endpoint(e, ep);
                if (c != CURLE_COULDNT_CONNECT)
                        return -EIO; /* sent, no answer: applied or not, the caller decides */
                /* never sent: the next member, and pause once every member refused */
                if ((attempt + 1) % e->n_endpoints == 0)
                        *ret_wait_ms = 100;
                return attempt + 1 < ATTEMPTS ? 1 : -ECONNREFUSED;
        }
        long code = 0;
        curlsym.curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        json_object *o = json_tokener_parse(b->data ?: "");
        if (!o || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                store_set_error(s, "%s: HTTP %ld, not a JSON answer", e->endpoints[ep], code);
                return -EBADMSG;
        }
        json_object *err = json_object_object_get(o, "error");
        if (err) {
                int ec = json_object_get_int(json_object_object_get(o, "code"));
                store_set_error(s, "%s: %s", e->endpoints[ep], json_object_get_string(err));
                json_object_put(o);
                if (ec == 14 || ec == 4 || ec == 10) {
                        next_endpoint(e, ep);
                        *ret_wait_ms = 100;
                        return attempt + 1 < ATTEMPTS ? 1 : -EAGAIN;
                }
                return ec == 5 ? -ENOENT : ec == 3 ? -EINVAL : -EIO;
        }
        *ret = o;
        return 0;
}

/* POST body to path and wait for the answer, parsed. */
static int post(Store *s, const char *path, json_object *body, json_object **ret) {
        Etcd *e = s->data;
        const char *text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
        for (int attempt = 0;; attempt++) {
                size_t ep = e->current;
                Buf b = {};
                int r = setup(e, e->curl, ep, path, text, &b);
                if (r < 0)
                        return r;
                CURLcode c = curlsym.curl_easy_perform(e->curl);
                long wait_ms;
                r = judge(s, ep, attempt, c, e->curl, &b, ret, &wait_ms);
                free(b.data);
                if (r != 1)
                        return r;
                if (wait_ms)
                        nanosleep(&(struct timespec){.tv_nsec = wait_ms * 1000 * 1000}, NULL);
        }
}

static int kvs_parse(json_object *arr, StoreKv **kvs, size_t *n) {
        size_t m = arr ? json_object_array_length(arr) : 0;
        if (m == 0)
                return 0;
        StoreKv *x = realloc(*kvs, (*n + m) * sizeof *x);
        if (!x)
                return -ENOMEM;
        *kvs = x;
        for (size_t i = 0; i < m; i++) {
                json_object *kv = json_object_array_get_idx(arr, i);
                StoreKv *k = &x[(*n)++];
                *k = (StoreKv){.mod_revision = get_i64(kv, "mod_revision"), .create_revision = get_i64(kv, "create_revision"),
                               .lease = get_i64(kv, "lease")};
                if (decode(kv, "key", &k->key) < 0 || decode(kv, "value", &k->value) < 0)
                        return -EBADMSG;
        }
        return 0;
}

static void add_range(json_object *o, const char *key, bool prefix) {
        json_object_object_add(o, "key", b64(key));
        if (prefix) {
                _cleanup_free_ char *end = store_prefix_end(key);
                json_object_object_add(o, "range_end", b64(strna(end)));
        }
}

static int etcd_range(Store *s, const char *key, bool prefix, StoreKv **ret, size_t *ret_n, int64_t *ret_rev) {
        json_object *req = json_object_new_object(), *res = NULL;
        add_range(req, key, prefix);
        int r = post(s, "/v3/kv/range", req, &res);
        json_object_put(req);
        if (r < 0)
                return r;
        StoreKv *kvs = NULL;
        size_t n = 0;
        r = kvs_parse(json_object_object_get(res, "kvs"), &kvs, &n);
        *ret_rev = get_i64(json_object_object_get(res, "header"), "revision");
        json_object_put(res);
        if (r < 0) {
                store_kvs_free(kvs, n);
                return r;
        }
        *ret = kvs;
        *ret_n = n;
        return 0;
}

static json_object *ops_json(const StoreOp *ops, size_t n) {
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < n; i++) {
                json_object *x = json_object_new_object(), *r = json_object_new_object();
                switch (ops[i].type) {
                case STORE_PUT:
                        json_object_object_add(r, "key", b64(ops[i].key));
                        json_object_object_add(r, "value", b64(ops[i].value));
                        if (ops[i].lease)
                                json_object_object_add(r, "lease", i64(ops[i].lease));
                        json_object_object_add(x, "request_put", r);
                        break;
                case STORE_DELETE:
                        add_range(r, ops[i].key, ops[i].prefix);
                        json_object_object_add(x, "request_delete_range", r);
                        break;
                case STORE_GET:
                        add_range(r, ops[i].key, ops[i].prefix);
                        json_object_object_add(x, "request_range", r);
                        break;
                }
                json_object_array_add(a, x);
        }
        return a;
}

static json_object *txn_json(const StoreCmp *cmp, size_t n_cmp, const StoreOp *succ, size_t n_succ, const StoreOp *fail,
                             size_t n_fail) {
        json_object *req = json_object_new_object(), *cs = json_object_new_array();
        for (size_t i = 0; i < n_cmp; i++) {
                json_object *c = json_object_new_object();
                json_object_object_add(c, "key", b64(cmp[i].key));
                json_object_object_add(c, "target", json_object_new_string("MOD"));
                json_object_object_add(c, "result", json_object_new_string("EQUAL"));
                json_object_object_add(c, "mod_revision", i64(cmp[i].mod_revision));
                json_object_array_add(cs, c);
        }
        json_object_object_add(req, "compare", cs);
        json_object_object_add(req, "success", ops_json(succ, n_succ));
        json_object_object_add(req, "failure", ops_json(fail, n_fail));
        return req;
}

/* A transaction's answer (taken) into ret. */
static int txn_result(json_object *res, StoreTxnResult *ret) {
        int r = 0;
        ret->succeeded = json_object_get_boolean(json_object_object_get(res, "succeeded"));
        ret->revision = get_i64(json_object_object_get(res, "header"), "revision");
        json_object *rs = json_object_object_get(res, "responses");
        for (size_t i = 0; r >= 0 && rs && i < json_object_array_length(rs); i++) {
                json_object *rr = json_object_object_get(json_object_array_get_idx(rs, i), "response_range");
                if (rr)
                        r = kvs_parse(json_object_object_get(rr, "kvs"), &ret->kvs, &ret->n_kvs);
        }
        json_object_put(res);
        if (r < 0)
                store_txn_result_done(ret);
        return r;
}

static int etcd_txn(Store *s, const StoreCmp *cmp, size_t n_cmp, const StoreOp *succ, size_t n_succ, const StoreOp *fail,
                    size_t n_fail, StoreTxnResult *ret) {
        json_object *req = txn_json(cmp, n_cmp, succ, n_succ, fail, n_fail), *res = NULL;
        int r = post(s, "/v3/kv/txn", req, &res);
        json_object_put(req);
        return r < 0 ? r : txn_result(res, ret);
}

/* Send a call (again) to the current endpoint. */
static int call_send(Etcd *e, Call *c) {
        c->ep = e->current;
        free(c->b.data);
        c->b = (Buf){};
        int r = setup(e, c->h, c->ep, "/v3/kv/txn", c->body, &c->b);
        if (r < 0)
                return r;
        if (curlsym.curl_multi_add_handle(e->multi, c->h) != CURLM_OK)
                return -ENOMEM;
        c->added = true;
        return 0;
}

static void call_end(Etcd *e, Call *c) {
        if (c->added)
                curlsym.curl_multi_remove_handle(e->multi, c->h);
        free(c->body);
        free(c->b.data);
        *c = (Call){.h = c->h};
}

static int etcd_txn_submit(Store *s, const StoreCmp *cmp, size_t n_cmp, const StoreOp *succ, size_t n_succ,
                           const StoreOp *fail, size_t n_fail, void *tag) {
        Etcd *e = s->data;
        Call *c = NULL;
        for (size_t i = 0; i < ELEMENTSOF(e->calls) && !c; i++)
                if (!e->calls[i].busy)
                        c = &e->calls[i];
        if (!c)
                return -EBUSY;
        if (!e->multi && !(e->multi = curlsym.curl_multi_init()))
                return -ENOMEM;
        json_object *req = txn_json(cmp, n_cmp, succ, n_succ, fail, n_fail);
        char *body = req ? strdup(json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN)) : NULL;
        json_object_put(req);
        if (!body)
                return -ENOMEM;
        if (!c->h && !(c->h = handle(e->headers))) {
                free(body);
                return -ENOMEM;
        }
        *c = (Call){.h = c->h, .body = body, .tag = tag, .busy = true};
        int r = call_send(e, c);
        if (r < 0)
                call_end(e, c);
        return r;
}

static int etcd_txn_wait(Store *s, void **ret_tag, int *ret_status, StoreTxnResult *ret) {
        Etcd *e = s->data;
        for (;;) {
                int running, left;
                if (curlsym.curl_multi_perform(e->multi, &running) != CURLM_OK)
                        return -EIO;
                for (CURLMsg *m; (m = curlsym.curl_multi_info_read(e->multi, &left));) {
                        Call *c = NULL;
                        for (size_t i = 0; i < ELEMENTSOF(e->calls) && !c; i++)
                                if (e->calls[i].added && e->calls[i].h == m->easy_handle)
                                        c = &e->calls[i];
                        if (m->msg != CURLMSG_DONE || !c)
                                continue;
                        CURLcode code = m->data.result;
                        curlsym.curl_multi_remove_handle(e->multi, c->h);
                        c->added = false;
                        json_object *o = NULL;
                        long wait_ms;
                        int r = judge(s, c->ep, c->attempt, code, c->h, &c->b, &o, &wait_ms);
                        if (r == 1) {
                                c->attempt++;
                                c->not_before = mono_ms() + wait_ms;
                                continue;
                        }
                        /* the other finished ones stay queued in the multi handle for the next wait */
                        *ret_tag = c->tag;
                        *ret_status = r < 0 ? r : txn_result(o, ret);
                        call_end(e, c);
                        return 0;
                }
                /* retries whose pause is over go out again */
                int64_t now = mono_ms(), next = INT64_MAX;
                for (size_t i = 0; i < ELEMENTSOF(e->calls); i++) {
                        Call *c = &e->calls[i];
                        if (!c->busy || c->added)
                                continue;
                        if (c->not_before > now) {
                                next = MIN(next, c->not_before);
                                continue;
                        }
                        int r = call_send(e, c);
                        if (r < 0) {
                                *ret_tag = c->tag;
                                *ret_status = r;
                                call_end(e, c);
                                return 0;
                        }
                }
                int timeout = next == INT64_MAX ? 1000 : (int)MIN(next - now, (int64_t)1000);
                if (curlsym.curl_multi_poll(e->multi, NULL, 0, timeout, NULL) != CURLM_OK)
                        return -EIO;
        }
}

static int etcd_lease_grant(Store *s, int ttl_s, int64_t *ret_id) {
        json_object *req = json_object_new_object(), *res = NULL;
        json_object_object_add(req, "TTL", i64(ttl_s));
        int r = post(s, "/v3/lease/grant", req, &res);
        json_object_put(req);
        if (r < 0)
                return r;
        *ret_id = get_i64(res, "ID");
        json_object_put(res);
        return *ret_id ? 0 : -EBADMSG;
}

static int etcd_lease_keepalive(Store *s, int64_t id, int *ret_ttl) {
        json_object *req = json_object_new_object(), *res = NULL;
        json_object_object_add(req, "ID", i64(id));
        int r = post(s, "/v3/lease/keepalive", req, &res);
        json_object_put(req);
        if (r < 0)
                return r;
        /* an unknown (expired) lease comes back without a TTL */
        *ret_ttl = (int)get_i64(json_object_object_get(res, "result"), "TTL");
        json_object_put(res);
        return 0;
}

static int etcd_lease_revoke(Store *s, int64_t id) {
        json_object *req = json_object_new_object(), *res = NULL;
        json_object_object_add(req, "ID", i64(id));
        int r = post(s, "/v3/lease/revoke", req, &res);
        json_object_put(req);
        json_object_put(res);
        return r == -ENOENT ? 0 : r;
}

static int etcd_watch(Store *s, const char *prefix, int64_t from, int timeout_ms, bool *ret_changed, int64_t *ret_rev) {
        Etcd *e = s->data;
        json_object *req = json_object_new_object(), *cr = json_object_new_object();
        add_range(cr, prefix, true);
        json_object_object_add(cr, "start_revision", i64(from + 1));
        json_object_object_add(req, "create_request", cr);
        const char *text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
        _cleanup_free_ char *url = strdup_printf("http://%s/v3/watch", e->endpoints[e->current]);
        Buf b = {.watching = true, .revision = from};
        int r = 0;
        if (url) {
                curlsym.curl_easy_setopt(e->watch, CURLOPT_URL, url);
                curlsym.curl_easy_setopt(e->watch, CURLOPT_POSTFIELDS, text);
                curlsym.curl_easy_setopt(e->watch, CURLOPT_WRITEDATA, &b);
                curlsym.curl_easy_setopt(e->watch, CURLOPT_TIMEOUT_MS, (long)MAX(timeout_ms, 1));
                CURLcode c = curlsym.curl_easy_perform(e->watch);
                if (!b.changed && c != CURLE_OPERATION_TIMEDOUT && c != CURLE_OK) {
                        store_set_error(s, "watch on %s: %s", e->endpoints[e->current], curlsym.curl_easy_strerror(c));
                        e->current = (e->current + 1) % e->n_endpoints;
                        r = -EIO;
                }
        } else
                r = -ENOMEM;
        json_object_put(req);
        free(b.data);
        *ret_changed = b.changed;
        *ret_rev = b.revision;
        return r;
}

static void etcd_done(Store *s) {
        Etcd *e = s->data;
        if (!e)
                return;
        for (size_t i = 0; i < ELEMENTSOF(e->calls); i++) {
                call_end(e, &e->calls[i]);
                if (e->calls[i].h)
                        curlsym.curl_easy_cleanup(e->calls[i].h);
        }
        if (e->multi)
                curlsym.curl_multi_cleanup(e->multi);
        if (e->curl)
                curlsym.curl_easy_cleanup(e->curl);
        if (e->watch)
                curlsym.curl_easy_cleanup(e->watch);
        curlsym.curl_slist_free_all(e->headers);
        for (size_t i = 0; i < e->n_endpoints; i++)
                free(e->endpoints[i]);
        free(e);
        s->data = NULL;
}

static const StoreOps etcd_ops = {
        .range = etcd_range,
        .txn = etcd_txn,
        .lease_grant = etcd_lease_grant,
        .lease_keepalive = etcd_lease_keepalive,
        .lease_revoke = etcd_lease_revoke,
        .watch = etcd_watch,
        .txn_submit = etcd_txn_submit,
        .txn_wait = etcd_txn_wait,
        .done = etcd_done,
};

int store_etcd_open(const char *endpoints, Store *s, GvError *err) {
        static bool global_init = false;
        int r = curl_dlopen(err);
        if (r < 0)
                return r;
        if (!global_init) {
                if (curlsym.curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                        return -EIO;
                global_init = true;
        }
        Etcd *e = calloc(1, sizeof *e);
        if (!e)
                return -ENOMEM;
        s->data = e;
        s->ops = &etcd_ops;
        _cleanup_free_ char *copy = strdup(endpoints);
        if (!copy)
                return etcd_done(s), -ENOMEM;
        char *save = NULL;
        for (char *ep = strtok_r(copy, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
                const char *colon = strrchr(ep, ':');
                int port;
                if (!colon || colon == ep || parse_int(colon + 1, &port) < 0 || port < 1 || port > 65535 ||
                    strpbrk(ep, "/@?# ") || e->n_endpoints == ENDPOINTS_MAX) {
                        gv_error_set(err, -EINVAL, NULL, NULL,
                                     "'%s' is not HOST:PORT (etcd://HOST:PORT[,HOST:PORT...], at most %d)", ep, ENDPOINTS_MAX);
                        return etcd_done(s), -EINVAL;
                }
                if (!(e->endpoints[e->n_endpoints++] = strdup(ep)))
                        return etcd_done(s), -ENOMEM;
        }
        if (e->n_endpoints == 0) {
                gv_error_set(err, -EINVAL, NULL, NULL, "etcd:// needs at least one HOST:PORT");
                return etcd_done(s), -EINVAL;
        }
        e->headers = curlsym.curl_slist_append(NULL, "Content-Type: application/json");
        e->curl = handle(e->headers);
        e->watch = handle(e->headers);
        if (!e->headers || !e->curl || !e->watch)
                return etcd_done(s), -ENOMEM;
        return 0;
}
