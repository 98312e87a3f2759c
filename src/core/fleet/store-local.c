/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The local store: one host, no server. var/lib/gpuvirt/fleet/store.json under the root holds
 * {"revision":N,"kv":{KEY:{"v":VALUE,"m":MOD,"c":CREATE,"l":LEASE}},"leases":{ID:{"ttl":S,"expires":MS}}};
 * every call takes var/lib/gpuvirt/fleet/lock, reads the file, expires leases (their keys go, as in etcd),
 * does its work and writes the file back atomically (root_write_file) when it changed. Revisions, compares
 * and leases behave as etcd's, so the scheduler and the agent run unchanged on it.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/jsonfile.h"
#include "core/fleet/store.h"

#define STORE_FILE FLEET_LOCAL_DIR "/store.json"
#define LOCK_FILE  FLEET_LOCAL_DIR "/lock"
#define STORE_SIZE_MAX (64u << 20)

typedef struct Local {
        Root *root;
        json_object *doc; /* while locked */
        int lock;
        bool dirty;
} Local;

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_object *sub(json_object *o, const char *key) {
        json_object *v = json_object_object_get(o, key);
        if (!json_object_is_type(v, json_type_object)) {
                v = json_object_new_object();
                json_object_object_add(o, key, v);
        }
        return v;
}

static int64_t rev(const Local *l) {
        return json_object_get_int64(json_object_object_get(l->doc, "revision"));
}

static void bump(Local *l) {
        json_object_object_add(l->doc, "revision", json_object_new_int64(rev(l) + 1));
        l->dirty = true;
}

static void unlock(Local *l) {
        json_object_put(l->doc);
        l->doc = NULL;
        if (l->lock >= 0)
                close(l->lock);
        l->lock = -EBADF;
}

static void expire(Local *l) {
        json_object *leases = sub(l->doc, "leases"), *kv = sub(l->doc, "kv");
        int64_t now = now_ms();
        _cleanup_strv_free_ char **gone = NULL;
        size_t n = 0;
        json_object_object_foreach(leases, id, v) {
                if (json_object_get_int64(json_object_object_get(v, "expires")) <= now)
                        (void)strv_push(&gone, &n, strdup(id));
        }
        for (char **g = gone; g && *g; g++) {
                int64_t lid = strtoll(*g, NULL, 10);
                _cleanup_strv_free_ char **keys = NULL;
                size_t nk = 0;
                json_object_object_foreach(kv, k, e) {
                        if (json_object_get_int64(json_object_object_get(e, "l")) == lid)
                                (void)strv_push(&keys, &nk, strdup(k));
                }
                if (nk)
                        bump(l);
                for (char **x = keys; x && *x; x++)
                        json_object_object_del(kv, *x);
                json_object_object_del(leases, *g);
                l->dirty = true;
        }
}

static int lock_and_load(Store *s) {
        Local *l = s->data;
        _cleanup_free_ char *dir = root_path(l->root, FLEET_LOCAL_DIR), *lp = root_path(l->root, LOCK_FILE),
                            *sp = root_path(l->root, STORE_FILE);
        if (!dir || !lp || !sp)
                return -ENOMEM;
        if (root_kind(l->root) == ROOT_CAPTURE)
                return -EROFS;
        int r = mkdir_p(dir, 0755);
        if (r < 0)
                return r;
        l->lock = lock_path(lp, 10000);
        if (l->lock < 0) {
                r = l->lock;
                store_set_error(s, "cannot lock %s: %s", LOCK_FILE, errno_message(r));
                return r;
        }
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        r = read_full(sp, STORE_SIZE_MAX, (void **)&text, &size);
        if (r == -ENOENT) {
                l->doc = json_object_new_object();
                json_object_object_add(l->doc, "revision", json_object_new_int64(1));
        } else if (r < 0) {
                store_set_error(s, "cannot read %s: %s", STORE_FILE, errno_message(r));
                unlock(l);
                return r;
        } else {
                /* the strict reader every JSON file goes through: a key twice, trailing text, ... are damage */
                _cleanup_(gv_error_done) GvError e = {};
                if (json_parse_strict(STORE_FILE, text, size, &l->doc, &e) < 0 ||
                    !json_object_is_type(l->doc, json_type_object) ||
                    !json_object_is_type(json_object_object_get(l->doc, "revision"), json_type_int)) {
                        store_set_error(s, "%s is damaged (not a store document)%s%s", STORE_FILE,
                                        e.message ? ": " : "", e.message ?: "");
                        json_object_put(TAKE_PTR(l->doc));
                        unlock(l);
                        return -EBADMSG;
                }
        }
        l->dirty = false;
        expire(l);
        return 0;
}

static int save_and_unlock(Store *s) {
        Local *l = s->data;
        int r = 0;
        if (l->dirty) {
                _cleanup_free_ char *t = strdup_printf("%s\n", json_object_to_json_string_ext(l->doc, JSON_C_TO_STRING_PLAIN));
                r = t ? root_write_file(l->root, t, STORE_FILE) : -ENOMEM;
                if (r < 0)
                        store_set_error(s, "cannot write %s: %s", STORE_FILE, errno_message(r));
        }
        unlock(l);
        return r;
}

static int cmp_kv(const void *a, const void *b) {
        return strcmp(((const StoreKv *)a)->key, ((const StoreKv *)b)->key);
}

static int collect(Local *l, const char *key, bool prefix, StoreKv **kvs, size_t *n) {
        json_object *kv = sub(l->doc, "kv");
        size_t start = *n;
        json_object_object_foreach(kv, k, e) {
                if (prefix ? !startswith(k, key) : !streq(k, key))
                        continue;
                StoreKv *x = realloc(*kvs, (*n + 1) * sizeof *x);
                if (!x)
                        return -ENOMEM;
                *kvs = x;
                x[*n] = (StoreKv){.key = strdup(k), .value = strdup(strna(json_object_get_string(json_object_object_get(e, "v")))),
                                  .mod_revision = json_object_get_int64(json_object_object_get(e, "m")),
                                  .create_revision = json_object_get_int64(json_object_object_get(e, "c")),
                                  .lease = json_object_get_int64(json_object_object_get(e, "l"))};
                (*n)++;
                if (!x[*n - 1].key || !x[*n - 1].value)
                        return -ENOMEM;
        }
        if (*n - start > 1)
                qsort(*kvs + start, *n - start, sizeof **kvs, cmp_kv);
        return 0;
}

static int local_range(Store *s, const char *key, bool prefix, StoreKv **ret, size_t *ret_n, int64_t *ret_rev) {
        Local *l = s->data;
        int r = lock_and_load(s);
        if (r < 0)
                return r;
        StoreKv *kvs = NULL;
        size_t n = 0;
        r = collect(l, key, prefix, &kvs, &n);
        *ret_rev = rev(l);
        int k = save_and_unlock(s);
        if (r < 0 || k < 0) {
                store_kvs_free(kvs, n);
                return r < 0 ? r : k;
        }
        *ret = kvs;
        *ret_n = n;
        return 0;
}

/* The lease's entry in the document (locked), NULL when it does not exist. */
static json_object *lease_entry(Local *l, int64_t id) {
        char lid[32];
        snprintf(lid, sizeof lid, "%lld", (long long)id);
        return json_object_object_get(sub(l->doc, "leases"), lid);
}

static int64_t mod_of(Local *l, const char *key) {
        json_object *e = json_object_object_get(sub(l->doc, "kv"), key);
        return e ? json_object_get_int64(json_object_object_get(e, "m")) : 0;
}

static int local_txn(Store *s, const StoreCmp *cmp, size_t n_cmp, const StoreOp *succ, size_t n_succ,
                     const StoreOp *fail, size_t n_fail, StoreTxnResult *ret) {
        Local *l = s->data;
        int r = lock_and_load(s);
        if (r < 0)
                return r;
        bool ok = true;
        for (size_t i = 0; i < n_cmp && ok; i++)
                ok = mod_of(l, cmp[i].key) == cmp[i].mod_revision;
        const StoreOp *ops = ok ? succ : fail;
        size_t n_ops = ok ? n_succ : n_fail;
        /* as etcd: a key written twice in one transaction is refused, nothing done */
        for (size_t i = 0; i < n_ops; i++)
                for (size_t k = 0; k < i; k++)
                        if (ops[i].type != STORE_GET && ops[k].type != STORE_GET && streq(ops[i].key, ops[k].key)) {
                                store_set_error(s, "duplicate key given in txn request: %s", ops[i].key);
                                unlock(l);
                                return -EINVAL;
                        }
        json_object *kv = sub(l->doc, "kv");
        bool writes = false;
        for (size_t i = 0; i < n_ops; i++)
                writes |= ops[i].type != STORE_GET;
        int64_t nrev = rev(l) + (writes ? 1 : 0);
        for (size_t i = 0; i < n_ops && r >= 0; i++) {
                const StoreOp *o = &ops[i];
                switch (o->type) {
                case STORE_PUT: {
                        if (o->lease && !lease_entry(l, o->lease)) {
                                store_set_error(s, "lease %lld not found", (long long)o->lease);
                                r = -ENOENT;
                                break;
                        }
                        json_object *old = json_object_object_get(kv, o->key), *e = json_object_new_object();
                        json_object_object_add(e, "v", json_object_new_string(o->value));
                        json_object_object_add(e, "m", json_object_new_int64(nrev));
                        json_object_object_add(e, "c", json_object_new_int64(old ? json_object_get_int64(json_object_object_get(old, "c")) : nrev));
                        json_object_object_add(e, "l", json_object_new_int64(o->lease));
                        json_object_object_add(kv, o->key, e);
                        break;
                }
                case STORE_DELETE: {
                        _cleanup_strv_free_ char **keys = NULL;
                        size_t nk = 0;
                        json_object_object_foreach(kv, k, e) {
                                (void)e;
                                if (o->prefix ? !!startswith(k, o->key) : streq(k, o->key))
                                        (void)strv_push(&keys, &nk, strdup(k));
                        }
                        for (char **x = keys; x && *x; x++)
                                json_object_object_del(kv, *x);
                        break;
                }
                case STORE_GET:
                        r = collect(l, o->key, o->prefix, &ret->kvs, &ret->n_kvs);
                        break;
                }
        }
        if (r < 0) {
                /* nothing of a failed transaction is kept */
                unlock(l);
                store_kvs_free(ret->kvs, ret->n_kvs);
                *ret = (StoreTxnResult){};
                return r;
        }
        if (writes) {
                json_object_object_add(l->doc, "revision", json_object_new_int64(nrev));
                l->dirty = true;
        }
        ret->succeeded = ok;
        ret->revision = nrev;
        r = save_and_unlock(s);
        if (r < 0)
                store_txn_result_done(ret);
        return r;
}

static int local_lease_grant(Store *s, int ttl_s, int64_t *ret_id) {
        Local *l = s->data;
        int r = lock_and_load(s);
        if (r < 0)
                return r;
        uint64_t id = 0;
        if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id)
                id = (uint64_t)now_ms();
        id = (id >> 2) | 1; /* positive, non-zero */
        char lid[32];
        snprintf(lid, sizeof lid, "%lld", (long long)id);
        json_object *e = json_object_new_object();
        json_object_object_add(e, "ttl", json_object_new_int(ttl_s));
        json_object_object_add(e, "expires", json_object_new_int64(now_ms() + (int64_t)ttl_s * 1000));
        json_object_object_add(sub(l->doc, "leases"), lid, e);
        l->dirty = true;
        r = save_and_unlock(s);
        if (r >= 0)
                *ret_id = (int64_t)id;
        return r;
}

static int local_lease_keepalive(Store *s, int64_t id, int *ret_ttl) {
        Local *l = s->data;
        int r = lock_and_load(s);
        if (r < 0)
                return r;
        json_object *e = lease_entry(l, id);
        int ttl = 0;
        if (e) {
                ttl = json_object_get_int(json_object_object_get(e, "ttl"));
                json_object_object_add(e, "expires", json_object_new_int64(now_ms() + (int64_t)ttl * 1000));
                l->dirty = true;
        }
        r = save_and_unlock(s);
        if (r >= 0)
                *ret_ttl = ttl;
        return r;
}

static int local_lease_revoke(Store *s, int64_t id) {
        Local *l = s->data;
        int r = lock_and_load(s);
        if (r < 0)
                return r;
        json_object *e = lease_entry(l, id);
        if (e) {
                json_object_object_add(e, "expires", json_object_new_int64(0));
                expire(l);
        }
        return save_and_unlock(s);
}

static int local_watch(Store *s, const char *prefix, int64_t from, int timeout_ms, bool *ret_changed, int64_t *ret_rev) {
        Local *l = s->data;
        for (int waited = 0;; waited += 50) {
                int r = lock_and_load(s);
                if (r < 0)
                        return r;
                int64_t now = rev(l);
                r = save_and_unlock(s);
                if (r < 0)
                        return r;
                *ret_rev = now;
                if (now > from) {
                        *ret_changed = true;
                        return 0;
                }
                if (waited >= timeout_ms)
                        return 0;
                nanosleep(&(struct timespec){.tv_nsec = 50 * 1000 * 1000}, NULL);
        }
}

static void local_done(Store *s) {
        Local *l = s->data;
        if (l)
                unlock(l);
        free(l);
        s->data = NULL;
}

static const StoreOps local_ops = {
        .range = local_range,
        .txn = local_txn,
        .lease_grant = local_lease_grant,
        .lease_keepalive = local_lease_keepalive,
        .lease_revoke = local_lease_revoke,
        .watch = local_watch,
        .done = local_done,
};

int store_local_open(Root *root, Store *s, GvError *err) {
        if (root_kind(root) == ROOT_CAPTURE)
                return gv_error_set(err, -EROFS, NULL, NULL, "'%s' is a captured tree: it has no local fleet store",
                                    root_dir(root));
        Local *l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->root = root;
        l->lock = -EBADF;
        s->data = l;
        s->ops = &local_ops;
        s->local = true;
        return 0;
}
