/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fleet in the store: loading it, reserving (one transaction per batch), releasing, draining. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/json-util.h"
#include "core/fleet/client.h"

char *fleet_gpu_key(const char *host, const char *address) {
        return strdup_printf(FLEET_KEY_GPUS "%s/%s", host, address);
}

char *fleet_unit_key(const char *host, const char *res, unsigned n) {
        return strdup_printf(FLEET_KEY_UNITS "%s/%s/%u", host, res, n);
}

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- GPU records with their model by reference ---- */

static json_object *model_cache; /* hash -> model object; content-addressed, so never stale */

static void model_hash(const char *text, char ret[static 17]) {
        uint64_t h = 1469598103934665603ull;
        for (const char *c = text; *c; c++)
                h = (h ^ (uint8_t)*c) * 1099511628211ull;
        snprintf(ret, 17, "%016llx", (unsigned long long)h);
}

char *fleet_gpu_record(const FleetGpuInfo *g, char **ret_model_key, char **ret_model_value) {
        json_object *j = fleet_gpu_info_json(g);
        if (!j)
                return NULL;
        json_object *m = json_object_get(json_object_object_get(j, "model"));
        const char *mt = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN);
        char hash[17];
        model_hash(mt, hash);
        if (ret_model_key)
                *ret_model_key = strdup_printf(FLEET_KEY_MODELS "%s", hash);
        if (ret_model_value)
                *ret_model_value = strdup(mt);
        if (!model_cache)
                model_cache = json_object_new_object();
        if (model_cache && !json_object_object_get(model_cache, hash))
                json_object_object_add(model_cache, hash, json_object_get(m));
        json_object_put(m);
        json_object *ref = json_object_new_object();
        json_object_object_add(ref, "ref", json_object_new_string(hash));
        json_object_object_add(j, "model", ref);
        char *out = strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
        json_object_put(j);
        return out;
}

static json_object *model_lookup(Store *s, const char *hash) {
        json_object *m = model_cache ? json_object_object_get(model_cache, hash) : NULL;
        if (m)
                return m;
        _cleanup_free_ char *key = strdup_printf(FLEET_KEY_MODELS "%s", hash);
        StoreKv *kv = NULL;
        size_t n = 0;
        if (!key || store_range(s, key, false, &kv, &n, NULL) < 0 || n != 1) {
                store_kvs_free(kv, n);
                return NULL;
        }
        m = store_record_parse(kv[0].key, kv[0].value, NULL);
        store_kvs_free(kv, n);
        if (!json_object_is_type(m, json_type_object)) {
                json_object_put(m);
                return NULL;
        }
        if (!model_cache)
                model_cache = json_object_new_object();
        json_object_object_add(model_cache, hash, m);
        return m;
}

static void models_prefetch(Store *s) {
        StoreKv *kv = NULL;
        size_t n = 0;
        if (store_range(s, FLEET_KEY_MODELS, true, &kv, &n, NULL) < 0)
                return;
        if (!model_cache)
                model_cache = json_object_new_object();
        for (size_t i = 0; model_cache && i < n; i++) {
                const char *hash = kv[i].key + strlen(FLEET_KEY_MODELS);
                json_object *m = store_record_parse(kv[i].key, kv[i].value, NULL);
                if (json_object_is_type(m, json_type_object) && !json_object_object_get(model_cache, hash))
                        json_object_object_add(model_cache, hash, m);
                else
                        json_object_put(m);
        }
        store_kvs_free(kv, n);
}

int fleet_gpu_record_parse(Store *s, const char *text, FleetGpuInfo *ret, GvError *err) {
        json_object *o = store_record_parse("GPU record", text, NULL);
        json_object *ref = o ? json_object_object_get(json_object_object_get(o, "model"), "ref") : NULL;
        if (!ref) {
                json_object_put(o);
                return fleet_gpu_info_parse(text, ret, err); /* the model inline */
        }
        const char *hash = json_object_get_string(ref);
        json_object *m = hash ? model_lookup(s, hash) : NULL;
        if (!m) {
                json_object_put(o);
                return gv_error_set(err, -EBADMSG, NULL, NULL, "model %s of the record is not in the store", strna(hash));
        }
        json_object_object_add(o, "model", json_object_get(m));
        int r = fleet_gpu_info_parse(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), ret, err);
        json_object_put(o);
        return r;
}

int fleet_new_id(char ret[static FLEET_ID_MAX]) {
        uint64_t v;
        if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
                return negative_errno();
        snprintf(ret, FLEET_ID_MAX, "r%016llx", (unsigned long long)v);
        return 0;
}

void fleet_reserved_done(FleetReserved *r, size_t n) {
        for (size_t i = 0; r && i < n; i++) {
                free(r[i].message);
                free(r[i].units);
                r[i] = (FleetReserved){};
        }
}

int fleet_load(Store *s, FleetStrategy strategy, Fleet **ret, size_t *ret_damaged, GvError *err) {
        StoreKv *hosts = NULL, *alive = NULL, *gpus = NULL;
        size_t nh = 0, na = 0, ng = 0, damaged = 0;
        int r = store_range(s, FLEET_KEY_HOSTS, true, &hosts, &nh, NULL);
        if (r >= 0)
                r = store_range(s, FLEET_KEY_ALIVE, true, &alive, &na, NULL);
        if (r >= 0)
                r = store_range(s, FLEET_KEY_GPUS, true, &gpus, &ng, NULL);
        if (r >= 0)
                models_prefetch(s);
        _cleanup_fleet_free_ Fleet *f = r >= 0 ? fleet_new(strategy) : NULL;
        if (r >= 0 && !f)
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < nh; i++) {
                const char *name = hosts[i].key + strlen(FLEET_KEY_HOSTS);
                bool up = false;
                for (size_t k = 0; k < na && !up; k++)
                        up = streq(alive[k].key + strlen(FLEET_KEY_ALIVE), name);
                uint32_t hi;
                if (strlen(name) >= FLEET_NAME_MAX || strchr(name, '/')) {
                        damaged++;
                        continue;
                }
                r = fleet_host_add(f, name, up, &hi);
        }
        for (size_t i = 0; r >= 0 && i < ng; i++) {
                FleetGpuInfo g;
                uint32_t gi;
                if (fleet_gpu_record_parse(s, gpus[i].value, &g, NULL) < 0) {
                        damaged++;
                        continue;
                }
                _cleanup_free_ char *key = fleet_gpu_key(g.host, g.address);
                if (!key || !streq(key, gpus[i].key) || fleet_host_find(f, g.host) < 0) {
                        fleet_gpu_info_done(&g);
                        damaged++;
                        continue;
                }
                r = fleet_gpu_add(f, &g, &gi);
                fleet_gpu_info_done(&g);
                if (r == -EEXIST) {
                        damaged++;
                        r = 0;
                        continue;
                }
                if (r >= 0)
                        fleet_gpu_set_revision(f, gi, gpus[i].mod_revision);
        }
        store_kvs_free(hosts, nh);
        store_kvs_free(alive, na);
        store_kvs_free(gpus, ng);
        if (r < 0)
                return gv_error_set(err, r, NULL, NULL, "cannot read the fleet: %s", store_last_error(s) ?: errno_message(r));
        if (ret_damaged)
                *ret_damaged = damaged;
        *ret = TAKE_PTR(f);
        return 0;
}

/* Replace the scheduler's copy of GPUs by the records the store returned. */
static int apply_kvs(Store *s, Fleet *f, const StoreKv *kvs, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (!startswith(kvs[i].key, FLEET_KEY_GPUS))
                        continue;
                FleetGpuInfo g;
                if (fleet_gpu_record_parse(s, kvs[i].value, &g, NULL) < 0)
                        continue;
                int gi = fleet_gpu_find(f, g.host, g.address);
                int r = gi >= 0 ? fleet_gpu_update(f, (uint32_t)gi, &g) : 0;
                fleet_gpu_info_done(&g);
                if (r < 0)
                        return r;
                if (gi >= 0)
                        fleet_gpu_set_revision(f, (uint32_t)gi, kvs[i].mod_revision);
        }
        return 0;
}

static json_object *units_json(const Fleet *f, const FleetPlacement *p, size_t n, FleetKind kind) {
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < n; i++) {
                const FleetGpuInfo *g = fleet_gpu(f, p[i].gpu);
                json_object *u = json_object_new_object();
                json_object_object_add(u, "n", json_object_new_int64((int64_t)i));
                json_object_object_add(u, "host", json_object_new_string(g->host));
                json_object_object_add(u, "gpu", json_object_new_string(g->address));
                json_object_object_add(u, "kind", json_object_new_string(fleet_kind_to_string(kind)));
                if (kind == FLEET_MIG) {
                        json_object_object_add(u, "profile", json_object_new_string(g->model.mig[p[i].idx].name));
                        json_object_object_add(u, "start", json_object_new_int(p[i].start));
                } else if (kind == FLEET_VGPU)
                        json_object_object_add(u, "type", json_object_new_string(g->model.types[p[i].idx].id));
                json_object_array_add(a, u);
        }
        return a;
}

/* A batch of reservations: one transaction, on GPUs no other batch in flight touches. */
typedef struct Batch {
        size_t *reqs; /* indices into the requests */
        size_t n;
        uint32_t gpus[FLEET_TXN_OPS_MAX];
        size_t n_gpus;
        StoreTxn t;
        bool busy;
} Batch;

static bool batch_has_gpu(const Batch *b, uint32_t g) {
        for (size_t i = 0; i < b->n_gpus; i++)
                if (b->gpus[i] == g)
                        return true;
        return false;
}

static char *res_record(const Fleet *f, const FleetRequest *req, const FleetReserved *res, int64_t t, json_object *extra) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(res->id));
        json_object_object_add(o, "owner", json_object_new_string(req->owner));
        json_object_object_add(o, "request", fleet_request_json(req));
        json_object_object_add(o, "state", json_object_new_string("active"));
        json_object_object_add(o, "created", json_object_new_int64(t));
        json_object_object_add(o, "units", units_json(f, res->units, res->n_units, req->kind));
        if (extra) {
                json_object_object_foreach(extra, ek, ev) json_object_object_add(o, ek, json_object_get(ev));
        }
        char *v = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        return v;
}

/* The records of GPUs as the scheduler's copy has them, each compared with the revision it was read at. */
static void txn_put_gpus(StoreTxn *t, const Fleet *f, const uint32_t *gpus, size_t n) {
        for (size_t i = 0; i < n; i++) {
                const FleetGpuInfo *g = fleet_gpu(f, gpus[i]);
                store_txn_put(t, fleet_gpu_key(g->host, g->address), fleet_gpu_record(g, NULL, NULL), true,
                              fleet_gpu_revision(f, gpus[i]));
        }
}

/* The state of fleet_reserve(): requests still to place (todo), those that found no room while other batches
 * were in flight (later: their room may be in a batch that fails), and the batches. */
typedef struct Reserve {
        Store *s;
        Fleet *f;
        const FleetRequest *reqs;
        FleetReserved *res;
        json_object *extra;
        FleetReserveStats st;
        size_t *todo, n_todo, *later, n_later;
        Batch *batches;
        size_t depth, batch, in_flight;
        int conflicts_in_row;
} Reserve;

static void batch_release(Reserve *x, Batch *b) {
        for (size_t i = 0; i < b->n_gpus; i++)
                (void)fleet_gpu_hold(x->f, b->gpus[i], false);
        store_txn_done(&b->t);
        b->t = (StoreTxn){};
        b->n = b->n_gpus = 0;
        b->busy = false;
}

/* The first n requests of a batch back to the front of the queue, to be placed again. */
static void queue_front(Reserve *x, const Batch *b, size_t n) {
        memmove(x->todo + n, x->todo, x->n_todo * sizeof *x->todo);
        memcpy(x->todo, b->reqs, n * sizeof *x->todo);
        x->n_todo += n;
}

/* Back to the front of the queue: the batch's requests, their units out of the copy. */
static void batch_requeue(Reserve *x, Batch *b) {
        for (size_t i = 0; i < b->n; i++)
                (void)fleet_unplace(x->f, x->res[b->reqs[i]].id, b->gpus, b->n_gpus);
        queue_front(x, b, b->n);
}

/* Fill a batch from the queue, placing each request in memory, while its transaction stays within the
 * store's limit; then send it. 0: sent or nothing to send, -errno: out of memory or the store failed. */
static int batch_start(Reserve *x, Batch *b) {
        size_t taken = 0;
        int r = 0;
        while (taken < x->n_todo && b->n < x->batch) {
                size_t i = x->todo[taken];
                FleetReserved *y = &x->res[i];
                const FleetRequest *q = &x->reqs[i];
                free(y->units);
                free(y->message);
                y->units = calloc(MAX(q->count, 1u), sizeof *y->units);
                y->n_units = 0;
                y->message = NULL;
                y->error = 0;
                if (!y->units) {
                        r = -ENOMEM;
                        break;
                }
                _cleanup_(gv_error_done) GvError perr = {};
                r = fleet_place(x->f, q, y->id, y->units, &perr);
                if (r == -ENOMEM)
                        break;
                if (r == -ENOSPC && x->in_flight > 0) {
                        /* the room may be on GPUs held by a batch in flight, or come back when one fails */
                        x->later[x->n_later++] = i;
                        taken++;
                        r = 0; /* not a failure: left as it was, it ended the whole reservation when last */
                        continue;
                }
                if (r < 0) {
                        y->error = r;
                        y->message = TAKE_PTR(perr.message);
                        r = 0;
                        taken++;
                        continue;
                }
                y->n_units = q->count;
                size_t add = 0;
                for (size_t u = 0; u < y->n_units; u++)
                        if (!batch_has_gpu(b, y->units[u].gpu))
                                add++;
                if (b->n_gpus + add + (b->n + 1) > FLEET_TXN_OPS_MAX) {
                        /* does not fit this transaction: back out, it starts the next one */
                        (void)fleet_unplace(x->f, y->id, NULL, 0);
                        y->n_units = 0;
                        if (b->n == 0) {
                                /* not even alone (never with count <= 64): a final no, not a loop */
                                y->error = -E2BIG;
                                y->message = strdup("the request needs more operations than one transaction may have");
                                taken++;
                                continue;
                        }
                        break;
                }
                for (size_t u = 0; u < y->n_units; u++)
                        if (!batch_has_gpu(b, y->units[u].gpu))
                                b->gpus[b->n_gpus++] = y->units[u].gpu;
                b->reqs[b->n++] = i;
                taken++;
        }
        x->n_todo -= taken;
        memmove(x->todo, x->todo + taken, x->n_todo * sizeof *x->todo);
        if (r < 0 || b->n == 0) {
                /* what this batch placed goes back to the queue, its units out of the copy */
                batch_requeue(x, b);
                batch_release(x, b);
                return r;
        }
        txn_put_gpus(&b->t, x->f, b->gpus, b->n_gpus);
        int64_t now = now_ms();
        for (size_t k = 0; k < b->n; k++) {
                size_t i = b->reqs[k];
                /* a reservation key is new: a retry of a transaction that did commit fails here, not twice */
                store_txn_put(&b->t, strdup_printf(FLEET_KEY_RES "%s", x->res[i].id),
                              res_record(x->f, &x->reqs[i], &x->res[i], now, x->extra), true, 0);
        }
        /* no other batch may take these GPUs before this one is answered */
        for (size_t g = 0; r >= 0 && g < b->n_gpus; g++)
                r = fleet_gpu_hold(x->f, b->gpus[g], true);
        if (r >= 0) {
                x->st.txns++;
                r = store_txn_start(x->s, &b->t, b);
        }
        if (r < 0) {
                batch_requeue(x, b);
                batch_release(x, b);
                return r;
        }
        b->busy = true;
        x->in_flight++;
        return 0;
}

/* A batch's transaction was answered. 0: committed, or its requests are queued again (conflict: the GPUs it
 * read changed, their current records are in the copy now); -errno: the store failed. */
static int batch_done(Reserve *x, Batch *b, int status, StoreTxnResult *tr) {
        x->in_flight--;
        if (status >= 0 && tr->succeeded) {
                for (size_t i = 0; i < b->n_gpus; i++)
                        fleet_gpu_set_revision(x->f, b->gpus[i], tr->revision);
                batch_release(x, b);
                x->conflicts_in_row = 0;
                return 0;
        }
        if (status < 0 && status != -EIO) {
                batch_requeue(x, b);
                batch_release(x, b);
                return status;
        }
        int r = 0;
        if (status == -EIO) {
                /* the answer was lost: read the GPUs again, and whether the reservations exist */
                x->st.retries_uncertain++;
                StoreCmp never = {b->t.cmp[0].key, -1};
                store_txn_result_done(tr);
                r = store_txn(x->s, &never, 1, NULL, 0, b->t.failure, b->t.n_failure, tr);
        } else
                x->st.conflicts++;
        /* its units out of the copy, the store's records of its GPUs in */
        for (size_t i = 0; i < b->n; i++)
                (void)fleet_unplace(x->f, x->res[b->reqs[i]].id, b->gpus, b->n_gpus);
        if (r >= 0)
                r = apply_kvs(x->s, x->f, tr->kvs, tr->n_kvs);
        /* a request whose reservation key exists was committed (by this attempt, its answer lost, or by an
         * earlier unanswered one): done. The others are placed again, at the front of the queue. */
        size_t again = 0;
        for (size_t k = 0; k < b->n; k++) {
                size_t i = b->reqs[k];
                _cleanup_free_ char *key = strdup_printf(FLEET_KEY_RES "%s", x->res[i].id);
                bool committed = false;
                if (!key && r >= 0)
                        r = -ENOMEM;
                for (size_t j = 0; r >= 0 && !committed && j < tr->n_kvs; j++)
                        committed = streq(tr->kvs[j].key, key);
                if (!committed)
                        b->reqs[again++] = i;
        }
        queue_front(x, b, again);
        batch_release(x, b);
        if (r < 0)
                return r;
        if (again > 0 && status >= 0 && ++x->conflicts_in_row > 50)
                return -EBUSY;
        return 0;
}

int fleet_reserve(Store *s, Fleet *f, const FleetRequest *reqs, size_t n, size_t batch, size_t depth, json_object *extra,
                  FleetReserved *ret, FleetReserveStats *stats, GvError *err) {
        Reserve x = {.s = s, .f = f, .reqs = reqs, .res = ret, .extra = extra};
        x.batch = MIN(MAX(batch, (size_t)1), (size_t)FLEET_TXN_OPS_MAX / 2);
        /* a store that runs each transaction at once gains nothing from more, and would hold GPUs for nothing */
        x.depth = store_txn_overlaps(s) ? MIN(MAX(depth, (size_t)1), (size_t)STORE_INFLIGHT_MAX) : 1;
        _cleanup_free_ size_t *todo = calloc(MAX(n, (size_t)1), sizeof *todo);
        _cleanup_free_ size_t *later = calloc(MAX(n, (size_t)1), sizeof *later);
        _cleanup_free_ size_t *slots = calloc(x.depth * x.batch, sizeof *slots);
        _cleanup_free_ Batch *batches = calloc(x.depth, sizeof *batches);
        if (!todo || !later || !slots || !batches)
                return gv_error_set(err, -ENOMEM, NULL, NULL, NULL);
        x.todo = todo;
        x.later = later;
        x.batches = batches;
        for (size_t k = 0; k < x.depth; k++)
                batches[k].reqs = slots + k * x.batch;
        for (size_t i = 0; i < n; i++) {
                ret[i] = (FleetReserved){};
                int r = fleet_new_id(ret[i].id);
                if (r < 0)
                        return gv_error_set(err, r, NULL, NULL, "cannot make a reservation id: %s", errno_message(r));
                todo[x.n_todo++] = i;
        }
        int r = 0;
        for (;;) {
                if (r >= 0 && x.n_todo == 0 && x.in_flight == 0 && x.n_later > 0) {
                        /* nothing in flight: what found no room tries once more, and a second no is final */
                        memcpy(x.todo, x.later, x.n_later * sizeof *x.todo);
                        x.n_todo = x.n_later;
                        x.n_later = 0;
                }
                /* keep depth batches in flight while there is work */
                while (r >= 0 && x.n_todo > 0 && x.in_flight < x.depth) {
                        Batch *b = NULL;
                        for (size_t k = 0; k < x.depth && !b; k++)
                                if (!batches[k].busy)
                                        b = &batches[k];
                        r = batch_start(&x, b);
                }
                if (x.in_flight == 0 && (r < 0 || (x.n_todo == 0 && x.n_later == 0)))
                        break;
                if (x.in_flight == 0)
                        continue;
                void *tag;
                int status;
                StoreTxnResult tr = {};
                int k = store_txn_wait(s, &tag, &status, &tr);
                if (k < 0) {
                        /* cannot wait (never expected): what is in flight stays unknown, its GPUs are let go */
                        r = k;
                        store_txn_result_done(&tr);
                        for (size_t b = 0; b < x.depth; b++)
                                if (batches[b].busy) {
                                        batch_requeue(&x, &batches[b]);
                                        batch_release(&x, &batches[b]);
                                }
                        break;
                }
                k = batch_done(&x, tag, status, &tr);
                store_txn_result_done(&tr);
                if (k < 0 && r >= 0)
                        r = k; /* stop sending; what is in flight is still answered */
        }
        if (r < 0) {
                if (r == -EBUSY)
                        gv_error_set(err, r, NULL, NULL, "the fleet changed under every attempt (50 conflicts in a row)");
                else
                        gv_error_set(err, r, NULL, NULL, "cannot commit reservations: %s", store_last_error(s) ?: errno_message(r));
                /* what was not committed is not reserved */
                for (size_t i = 0; i < x.n_todo; i++)
                        if (!ret[x.todo[i]].error)
                                ret[x.todo[i]].error = r;
                for (size_t i = 0; i < x.n_later; i++)
                        if (!ret[x.later[i]].error)
                                ret[x.later[i]].error = r;
                return r;
        }
        if (stats)
                *stats = x.st;
        return 0;
}

int fleet_reservation(Store *s, const char *id, json_object **ret) {
        _cleanup_free_ char *key = strdup_printf(FLEET_KEY_RES "%s", id);
        StoreKv *kv = NULL;
        size_t n = 0;
        if (!key)
                return -ENOMEM;
        int r = store_range(s, key, false, &kv, &n, NULL);
        if (r < 0)
                return r;
        json_object *o = n == 1 ? store_record_parse(kv[0].key, kv[0].value, NULL) : NULL;
        store_kvs_free(kv, n);
        if (n == 0)
                return -ENOENT;
        if (!json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return -EBADMSG;
        }
        *ret = o;
        return 0;
}

int fleet_reservations(Store *s, json_object **ret, GvError *err) {
        StoreKv *kv = NULL;
        size_t n = 0;
        int r = store_range(s, FLEET_KEY_RES, true, &kv, &n, NULL);
        if (r < 0)
                return gv_error_set(err, r, NULL, NULL, "cannot read reservations: %s", store_last_error(s) ?: errno_message(r));
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < n; i++) {
                json_object *o = store_record_parse(kv[i].key, kv[i].value, NULL);
                if (o)
                        json_object_array_add(a, o);
                else
                        json_object_put(o);
        }
        store_kvs_free(kv, n);
        *ret = a;
        return 0;
}

/* The GPUs a reservation record names, as indices in f (missing ones skipped). */
static size_t res_gpus(const Fleet *f, json_object *o, uint32_t *gpus, size_t max) {
        json_object *us = json_object_object_get(o, "units");
        size_t n = 0;
        for (size_t i = 0; us && i < json_object_array_length(us) && n < max; i++) {
                json_object *u = json_object_array_get_idx(us, i);
                const char *h = json_object_get_string(json_object_object_get(u, "host"));
                const char *g = json_object_get_string(json_object_object_get(u, "gpu"));
                int gi = h && g ? fleet_gpu_find(f, h, g) : -1;
                bool dup = false;
                for (size_t k = 0; k < n; k++)
                        dup |= gpus[k] == (uint32_t)gi;
                if (gi >= 0 && !dup)
                        gpus[n++] = (uint32_t)gi;
        }
        return n;
}

int fleet_release(Store *s, Fleet *f, const char *id, GvError *err) {
        _cleanup_free_ char *rkey = strdup_printf(FLEET_KEY_RES "%s", id);
        if (!rkey)
                return gv_error_set(err, -ENOMEM, NULL, NULL, NULL);
        for (int attempt = 0; attempt < 50; attempt++) {
                json_object *o = NULL;
                int r = fleet_reservation(s, id, &o);
                if (r == -ENOENT)
                        return gv_error_set(err, r, NULL, NULL, "no reservation %s", id);
                if (r < 0)
                        return gv_error_set(err, r, NULL, NULL, "cannot read reservation %s: %s", id,
                                            store_last_error(s) ?: errno_message(r));
                uint32_t gpus[64];
                size_t ng = res_gpus(f, o, gpus, ELEMENTSOF(gpus));
                json_object_put(o);
                (void)fleet_unplace(f, id, gpus, ng);
                StoreTxn t = {};
                txn_put_gpus(&t, f, gpus, ng);
                store_txn_delete(&t, strdup(rkey));
                StoreTxnResult tr = {};
                r = store_txn_run(s, &t, &tr);
                if (r >= 0 && tr.succeeded)
                        for (size_t i = 0; i < ng; i++)
                                fleet_gpu_set_revision(f, gpus[i], tr.revision);
                else if (r >= 0)
                        r = apply_kvs(s, f, tr.kvs, tr.n_kvs) ?: -EAGAIN;
                bool done = r >= 0 && tr.succeeded;
                store_txn_result_done(&tr);
                store_txn_done(&t);
                if (done)
                        return 0;
                if (r != -EAGAIN && r != -EIO)
                        return gv_error_set(err, r, NULL, NULL, "cannot release %s: %s", id, store_last_error(s) ?: errno_message(r));
        }
        return gv_error_set(err, -EBUSY, NULL, NULL, "cannot release %s: its GPUs changed under every attempt", id);
}

static int set_drain(Store *s, Fleet *f, int host, bool drain) {
        for (int attempt = 0; attempt < 50; attempt++) {
                StoreTxn t = {};
                for (size_t g = 0; g < fleet_n_gpus(f) && store_txn_room(&t, 1); g++) {
                        const FleetGpuInfo *gi = fleet_gpu(f, (uint32_t)g);
                        if (!streq(gi->host, fleet_host_name(f, (uint32_t)host)))
                                continue;
                        _cleanup_free_ char *rec = fleet_gpu_record(gi, NULL, NULL);
                        json_object *j = rec ? json_tokener_parse(rec) : NULL;
                        json_object_object_add(j, "drain", json_object_new_boolean(drain));
                        store_txn_put(&t, fleet_gpu_key(gi->host, gi->address),
                                      j ? strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN)) : NULL, true,
                                      fleet_gpu_revision(f, (uint32_t)g));
                        json_object_put(j);
                }
                StoreTxnResult tr = {};
                int r = store_txn_run(s, &t, &tr);
                bool done = r >= 0 && tr.succeeded;
                if (r >= 0)
                        r = apply_kvs(s, f, tr.kvs, tr.n_kvs);
                for (size_t i = 0; done && i < t.n_success; i++) {
                        /* our own write: take it into the copy */
                        FleetGpuInfo g;
                        if (fleet_gpu_record_parse(s, t.success[i].value, &g, NULL) >= 0) {
                                int gi = fleet_gpu_find(f, g.host, g.address);
                                if (gi >= 0 && fleet_gpu_update(f, (uint32_t)gi, &g) >= 0)
                                        fleet_gpu_set_revision(f, (uint32_t)gi, tr.revision);
                                fleet_gpu_info_done(&g);
                        }
                }
                store_txn_result_done(&tr);
                store_txn_done(&t);
                if (done)
                        return 0;
                if (r < 0 && r != -EIO)
                        return r;
        }
        return -EBUSY;
}

int fleet_drain(Store *s, Fleet *f, const char *host, bool undo, FleetDrainResult *ret, GvError *err) {
        *ret = (FleetDrainResult){.report = json_object_new_array()};
        int h = fleet_host_find(f, host);
        if (h < 0)
                return gv_error_set(err, -ENOENT, host, NULL, "no host %s in the fleet", host);
        int r = set_drain(s, f, h, !undo);
        if (r < 0)
                return gv_error_set(err, r, host, NULL, "cannot mark %s %s: %s", host, undo ? "schedulable" : "draining",
                                    store_last_error(s) ?: errno_message(r));
        if (undo)
                return 0;
        json_object *all = NULL;
        if ((r = fleet_reservations(s, &all, err)) < 0)
                return r;
        for (size_t i = 0; i < json_object_array_length(all); i++) {
                json_object *o = json_object_array_get_idx(all, i), *us = json_object_object_get(o, "units");
                bool here = false;
                for (size_t k = 0; us && k < json_object_array_length(us); k++)
                        here |= streq(strna(json_object_get_string(json_object_object_get(json_object_array_get_idx(us, k), "host"))), host);
                const char *state = json_object_get_string(json_object_object_get(o, "state"));
                if (!here || (state && streq(state, "moving")) || json_object_object_get(o, "replaces"))
                        continue;
                const char *id = json_object_get_string(json_object_object_get(o, "id"));
                FleetRequest req;
                json_object *item = json_object_new_object();
                json_object_object_add(item, "reservation", json_string_or_null(id));
                json_object_array_add(ret->report, item);
                if (!id || fleet_request_from_json(json_object_object_get(o, "request"), &req) < 0) {
                        json_object_object_add(item, "error", json_object_new_string("damaged reservation record"));
                        ret->stuck++;
                        continue;
                }
                /* a new placement elsewhere (this host is unschedulable now), linked to the old one */
                json_object *extra = json_object_new_object();
                json_object_object_add(extra, "replaces", json_object_new_string(id));
                FleetReserved nr = {};
                _cleanup_(gv_error_done) GvError rerr = {};
                r = fleet_reserve(s, f, &req, 1, 1, 1, extra, &nr, NULL, &rerr);
                json_object_put(extra);
                if (r < 0 || nr.error) {
                        json_object_object_add(item, "error",
                                               json_object_new_string(nr.message ?: rerr.message ?: "cannot place it elsewhere"));
                        ret->stuck++;
                        fleet_reserved_done(&nr, 1);
                        continue;
                }
                json_object_object_add(item, "replacement", json_object_new_string(nr.id));
                /* the old one is "moving": its owner releases it after switching over */
                json_object_object_add(o, "state", json_object_new_string("moving"));
                json_object_object_add(o, "replaced_by", json_object_new_string(nr.id));
                _cleanup_free_ char *key = strdup_printf(FLEET_KEY_RES "%s", id);
                if (key)
                        (void)store_put(s, key, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), 0);
                fleet_reserved_done(&nr, 1);
                ret->moved++;
        }
        json_object_put(all);
        return 0;
}
