/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gpuvirt fleet: the GPU pool across hosts (core/fleet/). */
#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "cli/common.h"
#include "cli/output.h"
#include "core/fleet/agent.h"
#include "core/fleet/client.h"


/* JSON built with every allocation checked: a failure sets oom (the value is taken either way). */
#define J_SET(oom, o, k, v)     ((oom) |= json_add((o), (k), (v)) < 0)
#define J_SET_STR(oom, o, k, s) ((oom) |= json_add_string((o), (k), (s)) < 0)
#define J_PUSH(oom, a, v)       ((oom) |= json_append((a), (v)) < 0)
typedef struct FleetArgs {
        const char *store;
        const char *file;
        const char *host;
        FleetRequest req;
        bool have_owner, undo, once;
        int count, batch, inflight, ttl;
        FleetStrategy strategy;
        char *error;
} FleetArgs;

enum {
        OPT_STORE = 0x100,
        OPT_COUNT,
        OPT_OWNER,
        OPT_SAME_HOST,
        OPT_SAME_NUMA,
        OPT_SAME_NVLINK,
        OPT_LIVE,
        OPT_GROUP,
        OPT_MODEL,
        OPT_STRATEGY,
        OPT_BATCH,
        OPT_INFLIGHT,
        OPT_HOST,
        OPT_TTL,
        OPT_UNDO,
        OPT_ONCE,
};

static void set_error(FleetArgs *a, char *e) {
        if (!a->error)
                a->error = e;
        else
                free(e);
}

static void fleet_opt(int c, const char *v, void *ud) {
        FleetArgs *a = ud;
        int n;
        switch (c) {
        case OPT_STORE:
                a->store = v;
                break;
        case 'f':
                a->file = v;
                break;
        case OPT_COUNT:
                if (parse_int(v, &n) < 0 || n < 1 || n > 64)
                        set_error(a, strdup_printf("--count must be 1 to 64, not '%s'", v));
                a->req.count = (unsigned)MAX(n, 1);
                break;
        case OPT_OWNER:
        case OPT_GROUP: {
                _cleanup_free_ char *line = strdup_printf("passthrough %s=%s", c == OPT_OWNER ? "owner" : "group", v);
                FleetRequest tmp;
                _cleanup_(gv_error_done) GvError err = {};
                if (c == OPT_GROUP) {
                        free(line);
                        line = strdup_printf("passthrough group=%s owner=x", v);
                }
                if (!line || fleet_request_parse_line(line, &tmp, &err) < 0)
                        set_error(a, gv_error_steal_message(&err) ?: strdup("out of memory"));
                else if (c == OPT_OWNER) {
                        memcpy(a->req.owner, tmp.owner, sizeof tmp.owner);
                        a->have_owner = true;
                } else
                        memcpy(a->req.group, tmp.group, sizeof tmp.group);
                break;
        }
        case OPT_MODEL: {
                unsigned x, y;
                char tail;
                if (sscanf(v, "%4x:%4x%c", &x, &y, &tail) != 2)
                        set_error(a, strdup_printf("--model must be VVVV:DDDD, not '%s'", v));
                a->req.vendor = (uint16_t)x;
                a->req.device = (uint16_t)y;
                break;
        }
        case OPT_SAME_HOST:
                a->req.same_host = true;
                break;
        case OPT_SAME_NUMA:
                a->req.same_numa = a->req.same_host = true;
                break;
        case OPT_SAME_NVLINK:
                a->req.same_nvlink = true;
                break;
        case OPT_LIVE:
                a->req.live_migratable = true;
                break;
        case OPT_STRATEGY:
                a->strategy = fleet_strategy_from_string(v);
                if (a->strategy < 0)
                        set_error(a, strdup_printf("unknown strategy '%s' (frag, binpack, spread, first-fit, hami)", v));
                break;
        case OPT_BATCH:
                if (parse_int(v, &n) < 0 || n < 1 || n > 64)
                        set_error(a, strdup_printf("--batch must be 1 to 64, not '%s'", v));
                a->batch = MAX(n, 1);
                break;
        case OPT_INFLIGHT:
                if (parse_int(v, &n) < 0 || n < 1 || n > STORE_INFLIGHT_MAX)
                        set_error(a, strdup_printf("--inflight must be 1 to %d, not '%s'", STORE_INFLIGHT_MAX, v));
                a->inflight = MAX(n, 1);
                break;
        case OPT_HOST:
                a->host = v;
                break;
        case OPT_TTL:
                if (parse_int(v, &n) < 0 || n < 2 || n > 3600)
                        set_error(a, strdup_printf("--ttl must be 2 to 3600 seconds, not '%s'", v));
                a->ttl = n;
                break;
        case OPT_UNDO:
                a->undo = true;
                break;
        case OPT_ONCE:
                a->once = true;
                break;
        }
}

int open_fleet_store(Root *root, const char *store, Store **ret) {
        _cleanup_(gv_error_done) GvError err = {};
        const char *url = store ?: getenv("GPUVIRT_FLEET_STORE");
        int r = store_open(url, root, ret, &err);
        if (r == -EINVAL)
                return usage_error("%s", strna(err.message)), -EINVAL;
        if (r < 0)
                return log_error("Cannot open the fleet store: %s", err.message ?: errno_message(r)), failure_errno(r);
        return 0;
}

static int host_name(Root *root, const FleetArgs *a, char **ret) {
        if (a->host) {
                if (strlen(a->host) >= FLEET_NAME_MAX || strchr(a->host, '/') || !*a->host)
                        return usage_error("--host: '%s' is not a host name", a->host), -EINVAL;
                *ret = strdup(a->host);
                return *ret ? 0 : (log_error_errno(ENOMEM, "Out of memory."), -ENOMEM);
        }
        int r = fleet_host_name_default(root, ret);
        if (r < 0)
                return log_error_errno(r, "Cannot tell this host's name: %m (use --host)"), failure_errno(r);
        return 0;
}

/* The local store has one host, this one, and no daemon: every fleet command keeps it registered and
 * realizes what is reserved on it (one agent pass). */
static int local_sync(Root *root, Store *s, const FleetArgs *a) {
        if (!store_is_local(s) || arg.dry_run)
                return 0;
        _cleanup_free_ char *host = NULL;
        int rc = host_name(root, a, &host);
        if (rc)
                return rc;
        _cleanup_free_ char *hk = strdup_printf(FLEET_KEY_HOSTS "%s", host), *ak = strdup_printf(FLEET_KEY_ALIVE "%s", host);
        _cleanup_free_ char *v = strdup_printf("{\"name\":\"%s\",\"local\":true}", host);
        int r = hk && ak && v ? store_put(s, hk, v, 0) : -ENOMEM;
        if (r >= 0)
                r = store_put(s, ak, v, 0); /* one machine, no lease: it is up while it runs commands */
        FleetConvergeReport rep = {};
        if (r >= 0)
                r = fleet_agent_converge(root, s, host, &rep);
        if (r < 0)
                log_error("Cannot bring this host in line with the local fleet store: %s",
                          rep.error ?: store_last_error(s) ?: errno_message(r));
        else if (rep.error)
                log_warning("Some units could not be realized: %s", rep.error);
        fleet_converge_report_done(&rep);
        return r < 0 ? failure_errno(r) : 0;
}

static int load(Store *s, FleetStrategy st, Fleet **ret) {
        _cleanup_(gv_error_done) GvError err = {};
        size_t damaged = 0;
        int r = fleet_load(s, st, ret, &damaged, &err);
        if (r < 0)
                return log_error("%s", gv_error_message(&err)), failure_errno(r);
        if (damaged)
                log_warning("Skipped %zu damaged record(s) in the fleet store.", damaged);
        return 0;
}

static const char *host_state(const Fleet *f, uint32_t h) {
        bool drain = false;
        for (size_t g = 0; g < fleet_n_gpus(f); g++)
                if (streq(fleet_gpu(f, (uint32_t)g)->host, fleet_host_name(f, h)))
                        drain |= fleet_gpu(f, (uint32_t)g)->drain;
        return !fleet_host_up(f, h) ? "down" : drain ? "draining" : "up";
}

static int do_hosts(Fleet *f) {
        json_object *a = json_object_new_array();
        bool oom = !a;
        for (uint32_t h = 0; h < fleet_n_hosts(f); h++) {
                size_t gpus = 0, units = 0;
                for (size_t g = 0; g < fleet_n_gpus(f); g++) {
                        const FleetGpuInfo *gi = fleet_gpu(f, (uint32_t)g);
                        if (streq(gi->host, fleet_host_name(f, h))) {
                                gpus++;
                                units += gi->n_units;
                        }
                }
                json_object *o = json_object_new_object();
                J_SET_STR(oom, o, "name", fleet_host_name(f, h));
                J_SET_STR(oom, o, "state", host_state(f, h));
                J_SET(oom, o, "gpus", json_object_new_int64((int64_t)gpus));
                J_SET(oom, o, "units", json_object_new_int64((int64_t)units));
                J_PUSH(oom, a, o);
        }
        if (oom) {
                json_object_put(a);
                return log_oom();
        }
        if (arg.json)
                json_print(a, stdout);
        else {
                static const char *const hdr[] = {"HOST", "STATE", "GPUS", "UNITS"};
                Table *t = table_new(4, hdr);
                for (size_t i = 0; t && i < json_object_array_length(a); i++) {
                        json_object *o = json_object_array_get_idx(a, i);
                        char g[16], u[16];
                        snprintf(g, sizeof g, "%d", json_object_get_int(json_object_object_get(o, "gpus")));
                        snprintf(u, sizeof u, "%d", json_object_get_int(json_object_object_get(o, "units")));
                        const char *row[] = {json_object_get_string(json_object_object_get(o, "name")),
                                             json_object_get_string(json_object_object_get(o, "state")), g, u};
                        table_add_row(t, row);
                }
                if (t)
                        table_print(t, stdout);
                table_free(t);
        }
        json_object_put(a);
        return 0;
}

static int do_gpus(Fleet *f, const char *only) {
        json_object *a = json_object_new_array();
        bool oom = !a;
        for (uint32_t g = 0; g < fleet_n_gpus(f); g++) {
                const FleetGpuInfo *gi = fleet_gpu(f, g);
                if (only && !streq(only, gi->host))
                        continue;
                json_object *o = json_object_new_object();
                J_SET_STR(oom, o, "host", gi->host);
                J_SET_STR(oom, o, "address", gi->address);
                J_SET_STR(oom, o, "model", gi->model.name);
                J_SET(oom, o, "memory_mb", json_object_new_int64(gi->model.memory_mb));
                J_SET(oom, o, "numa", json_object_new_int(gi->numa));
                J_SET_STR(oom, o, "nvlink", gi->nvlink[0] ? gi->nvlink : NULL);
                J_SET_STR(oom, o, "mode", gpu_mode_to_string(gi->n_units ? fleet_kind_mode(gi->units[0].kind) : gi->base_mode));
                J_SET(oom, o, "isolated", json_object_new_boolean(gi->isolated));
                J_SET(oom, o, "drain", json_object_new_boolean(gi->drain));
                J_SET(oom, o, "units", json_object_new_int64((int64_t)gi->n_units));
                J_SET(oom, o, "used", json_object_new_double((double)(int)(fleet_gpu_used_share(f, g) * 1000) / 1000));
                json_object *offers = json_object_new_object();
                unsigned whole = gi->isolated ? fleet_gpu_free_units(f, g, FLEET_PASSTHROUGH, -1) : 0;
                unsigned vfs = gi->model.total_vfs ? fleet_gpu_free_units(f, g, FLEET_VF, -1) : 0;
                if (whole)
                        J_SET(oom, offers, "passthrough", json_object_new_int64(whole));
                if (vfs)
                        J_SET(oom, offers, "vf", json_object_new_int64(vfs));
                for (size_t k = 0; k < gi->model.n_types; k++) {
                        unsigned n = fleet_gpu_free_units(f, g, FLEET_VGPU, (int)k);
                        if (n) {
                                _cleanup_free_ char *key = strdup_printf("vgpu:%s", gi->model.types[k].id);
                                oom |= !key;
                                J_SET(oom, offers, strna(key), json_object_new_int64(n));
                        }
                }
                for (size_t k = 0; k < gi->model.n_mig; k++) {
                        unsigned n = fleet_gpu_free_units(f, g, FLEET_MIG, (int)k);
                        if (n) {
                                _cleanup_free_ char *key = strdup_printf("mig:%s", gi->model.mig[k].name);
                                oom |= !key;
                                J_SET(oom, offers, strna(key), json_object_new_int64(n));
                        }
                }
                J_SET(oom, o, "free", offers);
                J_PUSH(oom, a, o);
        }
        if (oom) {
                json_object_put(a);
                return log_oom();
        }
        if (arg.json)
                json_print(a, stdout);
        else {
                static const char *const hdr[] = {"HOST", "GPU", "MODEL", "MEM", "NUMA", "MODE", "UNITS", "USED", "FREE NOW"};
                Table *t = table_new(9, hdr);
                for (size_t i = 0; t && i < json_object_array_length(a); i++) {
                        json_object *o = json_object_array_get_idx(a, i);
                        char mem[16], numa[8], units[8], used[8];
                        snprintf(mem, sizeof mem, "%dG", json_object_get_int(json_object_object_get(o, "memory_mb")) / 1024);
                        snprintf(numa, sizeof numa, "%d", json_object_get_int(json_object_object_get(o, "numa")));
                        snprintf(units, sizeof units, "%d", json_object_get_int(json_object_object_get(o, "units")));
                        snprintf(used, sizeof used, "%.0f%%", 100 * json_object_get_double(json_object_object_get(o, "used")));
                        _cleanup_free_ char *free_s = strdup("");
                        json_object_object_foreach(json_object_object_get(o, "free"), k, v) {
                                char *x = strdup_printf("%s%s%s=%d", strna(free_s), *strna(free_s) ? " " : "", k, json_object_get_int(v));
                                free(free_s);
                                free_s = x;
                        }
                        const char *row[] = {json_object_get_string(json_object_object_get(o, "host")),
                                             json_object_get_string(json_object_object_get(o, "address")),
                                             json_object_get_string(json_object_object_get(o, "model")), mem, numa,
                                             json_object_get_string(json_object_object_get(o, "mode")), units, used,
                                             free_s && *free_s ? free_s : "-"};
                        table_add_row(t, row);
                }
                if (t)
                        table_print(t, stdout);
                table_free(t);
        }
        json_object_put(a);
        return 0;
}

static int read_requests(const FleetArgs *a, FleetRequest **ret, size_t *ret_n) {
        _cleanup_free_ char *text = NULL;
        int r = read_full(a->file, 16u << 20, (void **)&text, NULL);
        if (r == -EFBIG)
                return usage_error("%s: larger than 16 MiB", a->file), -EINVAL;
        if (r < 0) /* a file named on the command line that cannot be read: bad input */
                return log_error_errno(r, "Cannot read %s: %m", a->file), -EINVAL;
        FleetRequest *reqs = NULL;
        size_t n = 0;
        unsigned line = 0;
        char *save = NULL;
        for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                line++;
                char *s = l + strspn(l, " \t");
                if (!*s || *s == '#')
                        continue;
                FleetRequest *x = realloc(reqs, (n + 1) * sizeof *x);
                if (!x)
                        return free(reqs), log_error_errno(ENOMEM, "Out of memory."), -ENOMEM;
                reqs = x;
                _cleanup_(gv_error_done) GvError err = {};
                if (fleet_request_parse_line(s, &reqs[n], &err) < 0) {
                        free(reqs);
                        return log_error("%s:%u:1: %s", a->file, line, gv_error_message(&err)), -EINVAL;
                }
                n++;
        }
        *ret = reqs;
        *ret_n = n;
        return 0;
}

/* The answer for one request; *oom set when an allocation failed. */
static json_object *reserved_json(const Fleet *f, const FleetRequest *r, const FleetReserved *x, bool *oom_) {
        bool oom = false;
        json_object *o = json_object_new_object();
        _cleanup_free_ char *u = fleet_request_unit(r);
        J_SET_STR(oom, o, "id", x->error ? NULL : x->id);
        oom |= !u;
        J_SET_STR(oom, o, "unit", strna(u));
        J_SET_STR(oom, o, "owner", r->owner);
        json_object *us = json_object_new_array();
        for (size_t i = 0; !x->error && i < x->n_units; i++) {
                const FleetGpuInfo *g = fleet_gpu(f, x->units[i].gpu);
                json_object *e = json_object_new_object();
                J_SET_STR(oom, e, "host", g->host);
                J_SET_STR(oom, e, "gpu", g->address);
                if (r->kind == FLEET_MIG) {
                        J_SET_STR(oom, e, "profile", g->model.mig[x->units[i].idx].name);
                        J_SET(oom, e, "start", json_object_new_int(x->units[i].start));
                } else if (r->kind == FLEET_VGPU)
                        J_SET_STR(oom, e, "type", g->model.types[x->units[i].idx].id);
                J_PUSH(oom, us, e);
        }
        J_SET(oom, o, "units", us);
        J_SET_STR(oom, o, "error", x->error ? x->message ?: errno_message(x->error) : NULL);
        *oom_ |= oom;
        return o;
}

/* The requests of `fleet request`, checked before anything is opened or written. */
static int parse_requests(FleetArgs *a, int argc, char **argv, int k, FleetRequest **ret, size_t *ret_n) {
        if (a->file) {
                if (k != argc)
                        return usage_error("fleet request: -f FILE takes no unit argument"), -EINVAL;
                return read_requests(a, ret, ret_n);
        }
        if (argc - k != 1)
                return usage_error("fleet request: one UNIT (passthrough, gpu:<N>gb, vf, vgpu:<type>, mig:<profile>)"), -EINVAL;
        if (!a->have_owner)
                return usage_error("fleet request: --owner ID is required (who the units are for)"), -EINVAL;
        _cleanup_(gv_error_done) GvError err = {};
        if (fleet_request_parse_unit(argv[k], &a->req, &err) < 0)
                return usage_error("fleet request: %s", gv_error_message(&err)), -EINVAL;
        if (a->req.live_migratable && !fleet_kind_live_migratable(a->req.kind))
                return usage_error("fleet request: a passthrough GPU cannot migrate live"), -EINVAL;
        if (!(*ret = malloc(sizeof **ret)))
                return log_error_errno(ENOMEM, "Out of memory."), -ENOMEM;
        (*ret)[0] = a->req;
        *ret_n = 1;
        return 0;
}

static int do_request(Store *s, FleetArgs *a, FleetRequest *reqs, size_t n) {
        _cleanup_fleet_free_ Fleet *f = NULL;
        int rc = load(s, a->strategy, &f);
        if (rc)
                return rc;
        _cleanup_free_ FleetReserved *res = calloc(MAX(n, (size_t)1), sizeof *res);
        if (!res)
                return log_error_errno(ENOMEM, "Out of memory."), -ENOMEM;
        _cleanup_(gv_error_done) GvError err = {};
        FleetReserveStats st = {};
        int r = fleet_reserve(s, f, reqs, n, (size_t)(a->batch ?: 32), (size_t)(a->inflight ?: 4), NULL, res, &st, &err);
        size_t rejected = 0;
        int first_rejection = 0;
        json_object *out = json_object_new_array();
        bool oom = !out;
        for (size_t i = 0; i < n; i++) {
                rejected += res[i].error != 0;
                if (res[i].error && !first_rejection)
                        first_rejection = -abs(res[i].error);
                J_PUSH(oom, out, reserved_json(f, &reqs[i], &res[i], &oom));
        }
        if (oom) {
                /* what was reserved stays reserved: the caller's retry with the same owner sees it (fleet status) */
                json_object_put(out);
                fleet_reserved_done(res, n);
                return log_oom();
        }
        if (arg.json)
                json_print(out, stdout);
        else
                for (size_t i = 0; i < json_object_array_length(out); i++) {
                        json_object *o = json_object_array_get_idx(out, i), *us = json_object_object_get(o, "units");
                        if (json_object_object_get(o, "error")) {
                                printf("rejected %s for %s: %s\n", json_object_get_string(json_object_object_get(o, "unit")),
                                       json_object_get_string(json_object_object_get(o, "owner")),
                                       json_object_get_string(json_object_object_get(o, "error")));
                                continue;
                        }
                        printf("%s %s for %s:", json_object_get_string(json_object_object_get(o, "id")),
                               json_object_get_string(json_object_object_get(o, "unit")),
                               json_object_get_string(json_object_object_get(o, "owner")));
                        for (size_t u = 0; u < json_object_array_length(us); u++) {
                                json_object *e = json_object_array_get_idx(us, u);
                                json_object *st_ = json_object_object_get(e, "start");
                                printf(" %s/%s%s%s", json_object_get_string(json_object_object_get(e, "host")),
                                       json_object_get_string(json_object_object_get(e, "gpu")), st_ ? "@" : "",
                                       st_ ? json_object_get_string(st_) : "");
                        }
                        printf("\n");
                }
        json_object_put(out);
        fleet_reserved_done(res, n);
        if (r < 0)
                return log_error("%s", gv_error_message(&err)), failure_errno(r);
        if (!arg.json && a->file)
                printf("%zu reserved, %zu rejected (%zu transaction(s), %zu conflict(s))\n", n - rejected, rejected, st.txns,
                       st.conflicts);
        return rejected ? failure_errno(first_rejection) : 0;
}

static int do_release(Store *s, int argc, char **argv, int k) {
        if (k == argc)
                return usage_error("fleet release: which reservation (ID...)?"), -EINVAL;
        _cleanup_fleet_free_ Fleet *f = NULL;
        int rc = load(s, FLEET_FRAG, &f);
        if (rc)
                return rc;
        for (int i = k; i < argc; i++) {
                _cleanup_(gv_error_done) GvError err = {};
                int r = fleet_release(s, f, argv[i], &err);
                if (r < 0) {
                        log_error("%s", gv_error_message(&err));
                        rc = failure_errno(r);
                } else if (!arg.json)
                        printf("released %s\n", argv[i]);
        }
        return rc;
}

/* NULL on OOM */
static json_object *unit_records(Store *s, json_object *res) {
        json_object *a = json_object_new_array(), *us = json_object_object_get(res, "units");
        bool oom = !a;
        for (size_t i = 0; us && i < json_object_array_length(us); i++) {
                json_object *u = json_object_array_get_idx(us, i);
                _cleanup_free_ char *key = fleet_unit_key(strna(json_object_get_string(json_object_object_get(u, "host"))),
                                                          strna(json_object_get_string(json_object_object_get(res, "id"))),
                                                          (unsigned)json_object_get_int(json_object_object_get(u, "n")));
                StoreKv *kv = NULL;
                size_t n = 0;
                json_object *rec = NULL;
                if (key && store_range(s, key, false, &kv, &n, NULL) >= 0 && n == 1)
                        rec = store_record_parse(kv[0].key, kv[0].value, NULL);
                store_kvs_free(kv, n);
                oom |= !key || json_object_array_add(a, rec) < 0; /* rec NULL: not realized (null) */
        }
        if (oom) {
                json_object_put(a);
                return NULL;
        }
        return a;
}

static int do_show(Store *s, const char *id) {
        json_object *o = NULL;
        int r = fleet_reservation(s, id, &o);
        if (r == -ENOENT)
                return log_error("No reservation %s (see 'gpuvirt fleet status').", id), -ENOENT;
        if (r < 0)
                return log_error("Cannot read reservation %s: %s", id, store_last_error(s) ?: errno_message(r)), failure_errno(r);
        if (json_add(o, "realized", unit_records(s, o)) < 0) {
                json_object_put(o);
                return log_oom();
        }
        if (arg.json)
                json_print(o, stdout);
        else {
                json_object *req = json_object_object_get(o, "request");
                printf("Reservation %s: %s x %d for %s (%s)\n", id, json_object_get_string(json_object_object_get(req, "unit")),
                       json_object_get_int(json_object_object_get(req, "count")),
                       json_object_get_string(json_object_object_get(o, "owner")),
                       json_object_get_string(json_object_object_get(o, "state")));
                json_object *us = json_object_object_get(o, "units"), *rs = json_object_object_get(o, "realized");
                for (size_t i = 0; i < json_object_array_length(us); i++) {
                        json_object *u = json_object_array_get_idx(us, i), *rec = json_object_array_get_idx(rs, i);
                        printf("  unit %zu: %s %s", i, json_object_get_string(json_object_object_get(u, "host")),
                               json_object_get_string(json_object_object_get(u, "gpu")));
                        if (json_object_object_get(u, "profile"))
                                printf(" %s at %d", json_object_get_string(json_object_object_get(u, "profile")),
                                       json_object_get_int(json_object_object_get(u, "start")));
                        if (json_object_object_get(u, "type"))
                                printf(" type %s", json_object_get_string(json_object_object_get(u, "type")));
                        if (!rec)
                                printf(": not realized yet\n");
                        else
                                printf(": %s %s%s%s%s%s\n", json_object_get_string(json_object_object_get(rec, "state")),
                                       json_text(json_object_object_get(rec, "id")),
                                       json_object_object_get(rec, "mig_uuid") ? " " : "",
                                       json_object_object_get(rec, "mig_uuid") ? json_object_get_string(json_object_object_get(rec, "mig_uuid")) : "",
                                       json_object_object_get(rec, "vfio") ? " " : "",
                                       json_object_object_get(rec, "vfio") ? json_object_get_string(json_object_object_get(rec, "vfio")) : "");
                }
                if (json_object_object_get(o, "replaced_by"))
                        printf("  moving to %s: release %s once the owner has switched over\n",
                               json_object_get_string(json_object_object_get(o, "replaced_by")), id);
        }
        json_object_put(o);
        return 0;
}

static int do_status(Store *s, Fleet *f) {
        json_object *all = NULL;
        _cleanup_(gv_error_done) GvError err = {};
        int r = fleet_reservations(s, &all, &err);
        if (r < 0)
                return log_error("%s", gv_error_message(&err)), failure_errno(r);
        size_t up = 0, down = 0, gpus = fleet_n_gpus(f), units = 0;
        size_t active = 0, moving = 0, lost = 0;
        json_object *on_down = json_object_new_array();
        bool oom = !on_down;
        for (uint32_t h = 0; h < fleet_n_hosts(f); h++)
                fleet_host_up(f, h) ? up++ : down++;
        for (size_t g = 0; g < gpus; g++)
                units += fleet_gpu(f, (uint32_t)g)->n_units;
        for (size_t i = 0; i < json_object_array_length(all); i++) {
                json_object *o = json_object_array_get_idx(all, i), *us = json_object_object_get(o, "units");
                const char *stt = strna(json_object_get_string(json_object_object_get(o, "state")));
                streq(stt, "moving") ? moving++ : streq(stt, "lost") ? lost++ : active++;
                bool bad = false;
                for (size_t k = 0; us && k < json_object_array_length(us); k++) {
                        int h = fleet_host_find(f, strna(json_object_get_string(json_object_object_get(json_object_array_get_idx(us, k), "host"))));
                        bad |= h < 0 || !fleet_host_up(f, (uint32_t)h);
                }
                json_object *id = json_object_object_get(o, "id");
                if (bad && id)
                        J_PUSH(oom, on_down, json_object_get(id));
        }
        json_object *o = json_object_new_object();
        J_SET(oom, o, "hosts_up", json_object_new_int64((int64_t)up));
        J_SET(oom, o, "hosts_down", json_object_new_int64((int64_t)down));
        J_SET(oom, o, "gpus", json_object_new_int64((int64_t)gpus));
        J_SET(oom, o, "units", json_object_new_int64((int64_t)units));
        J_SET(oom, o, "reservations", json_object_new_int64((int64_t)(active + moving + lost)));
        J_SET(oom, o, "moving", json_object_new_int64((int64_t)moving));
        J_SET(oom, o, "lost", json_object_new_int64((int64_t)lost));
        J_SET(oom, o, "on_down_hosts", json_object_get(on_down));
        json_object_put(on_down); /* o holds it (or oom) */
        if (oom) {
                json_object_put(o);
                json_object_put(all);
                return log_oom();
        }
        if (arg.json)
                json_print(o, stdout);
        else {
                printf("Hosts: %zu up, %zu down\nGPUs: %zu, units reserved: %zu\nReservations: %zu (%zu moving, %zu lost)\n", up,
                       down, gpus, units, active + moving + lost, moving, lost);
                for (size_t i = 0; i < json_object_array_length(on_down); i++)
                        printf("On a down host (kept, not moved): %s\n", json_object_get_string(json_object_array_get_idx(on_down, i)));
        }
        json_object_put(o);
        json_object_put(all);
        return 0;
}

static int do_drain(Store *s, const FleetArgs *a, const char *host) {
        _cleanup_fleet_free_ Fleet *f = NULL;
        int rc = load(s, a->strategy, &f);
        if (rc)
                return rc;
        FleetDrainResult dr;
        _cleanup_(gv_error_done) GvError err = {};
        int r = fleet_drain(s, f, host, a->undo, &dr, &err);
        if (r < 0) {
                json_object_put(dr.report);
                return log_error("%s", gv_error_message(&err)), r == -ENOENT ? -EINVAL /* no such host: bad input */ : failure_errno(r);
        }
        if (arg.json) {
                _cleanup_json_ json_object *o = json_object_new_object();
                bool oom = false;
                J_SET_STR(oom, o, "host", host);
                J_SET(oom, o, "schedulable", json_object_new_boolean(a->undo));
                J_SET(oom, o, "moved", json_object_new_int64((int64_t)dr.moved));
                J_SET(oom, o, "stuck", json_object_new_int64((int64_t)dr.stuck));
                if (dr.report)
                        J_SET(oom, o, "reservations", json_object_get(dr.report));
                else
                        J_SET_STR(oom, o, "reservations", NULL);
                if (oom) {
                        json_object_put(dr.report);
                        return log_oom();
                }
                json_print(o, stdout);
        } else if (a->undo)
                printf("%s is schedulable again.\n", host);
        else {
                printf("%s is draining: no new placements there.\n", host);
                for (size_t i = 0; i < json_object_array_length(dr.report); i++) {
                        json_object *x = json_object_array_get_idx(dr.report, i);
                        if (json_object_object_get(x, "replacement"))
                                printf("  %s -> %s (release %s when its owner has moved)\n",
                                       json_object_get_string(json_object_object_get(x, "reservation")),
                                       json_object_get_string(json_object_object_get(x, "replacement")),
                                       json_object_get_string(json_object_object_get(x, "reservation")));
                        else
                                printf("  %s stays: %s\n", json_object_get_string(json_object_object_get(x, "reservation")),
                                       json_object_get_string(json_object_object_get(x, "error")));
                }
        }
        json_object_put(dr.report);
        return dr.stuck ? -EBUSY : 0;
}

static volatile sig_atomic_t stop_agent = 0;

static void on_signal(int sig) {
        stop_agent = 1;
}

static void agent_progress(const FleetConvergeReport *r, void *ud) {
        log_info("fleet agent: %zu GPU(s), %zu unit(s) ready, %zu failed, %zu removed, %zu lost, %zu step(s)%s%s", r->gpus,
                 r->units_ready, r->units_failed, r->units_removed, r->units_lost, r->steps, r->error ? ": " : "",
                 r->error ?: "");
}

static int do_agent(Root *root, Store *s, const FleetArgs *a) {
        _cleanup_free_ char *host = NULL;
        int rc = host_name(root, a, &host);
        if (rc)
                return rc;
        if (a->once) {
                _cleanup_free_ char *hk = strdup_printf(FLEET_KEY_HOSTS "%s", host);
                int r = hk ? store_put(s, hk, "{\"once\":true}", 0) : -ENOMEM;
                FleetConvergeReport rep = {};
                if (r >= 0)
                        r = fleet_agent_converge(root, s, host, &rep);
                if (r >= 0)
                        agent_progress(&rep, NULL);
                if (r < 0)
                        log_error("fleet agent: %s", rep.error ?: errno_message(r));
                fleet_converge_report_done(&rep);
                return r < 0 ? failure_errno(r) : 0;
        }
        struct sigaction sa = {.sa_handler = on_signal};
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        FleetAgentOptions o = {.host = host, .ttl_s = a->ttl ?: 10, .stop = &stop_agent, .progress = agent_progress};
        _cleanup_(gv_error_done) GvError err = {};
        log_info("fleet agent for %s on %s (lease %d s)", host, a->store ?: "the local store", o.ttl_s);
        int r = fleet_agent_run(root, s, &o, &err);
        if (r < 0)
                return log_error("fleet agent: %s", gv_error_message(&err)), failure_errno(r);
        log_info("fleet agent for %s stopped.", host);
        return 0;
}

/* One run of a sub-verb: its options and arguments, then the root and the store. */
typedef struct FleetRun {
        FleetArgs a;
        int argc;
        char **argv;
        int k; /* the first positional argument */
        FleetRequest *reqs;
        size_t n_reqs;
        Root *root;
        Store *store;
} FleetRun;

static void fleet_run_done(FleetRun *x) {
        free(x->a.error);
        free(x->reqs);
        store_free(x->store);
        root_free(x->root);
}

/* The sub-verbs (the verb table dispatches them; argv[0] is "fleet", argv[1] the sub-verb) share one option
 * parser. one: the sub-verb takes exactly one argument, named so in the error; any: it takes any number
 * (checked by the sub-verb); neither: none. 0 or -errno (-EINVAL: bad usage, said). */
static int fleet_start(int argc, char **argv, const char *one, bool any, FleetRun *x) {
        static const struct option opts[] = {
                {"store", required_argument, NULL, OPT_STORE},
                {"file", required_argument, NULL, 'f'},
                {"count", required_argument, NULL, OPT_COUNT},
                {"owner", required_argument, NULL, OPT_OWNER},
                {"same-host", no_argument, NULL, OPT_SAME_HOST},
                {"same-numa", no_argument, NULL, OPT_SAME_NUMA},
                {"same-nvlink", no_argument, NULL, OPT_SAME_NVLINK},
                {"live", no_argument, NULL, OPT_LIVE},
                {"group", required_argument, NULL, OPT_GROUP},
                {"model", required_argument, NULL, OPT_MODEL},
                {"strategy", required_argument, NULL, OPT_STRATEGY},
                {"batch", required_argument, NULL, OPT_BATCH},
                {"inflight", required_argument, NULL, OPT_INFLIGHT},
                {"host", required_argument, NULL, OPT_HOST},
                {"ttl", required_argument, NULL, OPT_TTL},
                {"undo", no_argument, NULL, OPT_UNDO},
                {"once", no_argument, NULL, OPT_ONCE},
                {},
        };
        const char *cmd = argv[1];
        x->a = (FleetArgs){.req.count = 1, .strategy = FLEET_FRAG};
        x->argc = argc;
        x->argv = argv;
        int k = parse_verb_options(argc - 1, argv + 1, opts, "f:", fleet_opt, &x->a);
        if (k < 0)
                return -EINVAL;
        x->k = k += 1;
        if (x->a.error)
                return usage_error("fleet %s: %s", cmd, x->a.error), -EINVAL;
        if (x->a.strategy == FLEET_FIRST_FIT || x->a.strategy == FLEET_HAMI) {
                /* baselines for the benchmark: allowed, but say so */
                log_notice("Strategy %s is a baseline (see bench-fleet); the default is frag.", fleet_strategy_to_string(x->a.strategy));
        }
        if (one && argc - k != 1)
                return usage_error("fleet %s: exactly one %s", cmd, one), -EINVAL;
        if (!one && !any && argc != k)
                return usage_error("fleet %s: unexpected argument '%s'", cmd, argv[k]), -EINVAL;
        return 0;
}

/* The root and the store; sync: on the local store, realize what is reserved first (every sub-verb but
 * agent). */
static int fleet_open(FleetRun *x, bool sync) {
        int rc = open_root(0, &x->root);
        if (rc)
                return rc;
        if ((rc = open_fleet_store(x->root, x->a.store, &x->store)))
                return rc;
        return sync ? local_sync(x->root, x->store, &x->a) : 0;
}

/* After a change (request, release, drain): the local store realizes it at once. */
static int fleet_changed(FleetRun *x, int rc) {
        int k = local_sync(x->root, x->store, &x->a);
        return rc ?: k;
}

int verb_fleet_hosts(int argc, char **argv) {
        _cleanup_(fleet_run_done) FleetRun x = {};
        _cleanup_fleet_free_ Fleet *f = NULL;
        return fleet_start(argc, argv, NULL, false, &x) ?: fleet_open(&x, true) ?: load(x.store, FLEET_FRAG, &f)
                                                                                 ?: do_hosts(f);
}

int verb_fleet_gpus(int argc, char **argv) {
        _cleanup_(fleet_run_done) FleetRun x = {};
        _cleanup_fleet_free_ Fleet *f = NULL;
        int rc = fleet_start(argc, argv, NULL, true, &x);
        if (rc)
                return rc;
        if (argc - x.k > 1)
                return usage_error("fleet gpus: at most one HOST"), -EINVAL;
        return fleet_open(&x, true) ?: load(x.store, FLEET_FRAG, &f) ?: do_gpus(f, x.k < argc ? argv[x.k] : NULL);
}

int verb_fleet_status(int argc, char **argv) {
        _cleanup_(fleet_run_done) FleetRun x = {};
        _cleanup_fleet_free_ Fleet *f = NULL;
        return fleet_start(argc, argv, NULL, false, &x) ?: fleet_open(&x, true) ?: load(x.store, FLEET_FRAG, &f)
                                                                                 ?: do_status(x.store, f);
}

int verb_fleet_show(int argc, char **argv) {
        _cleanup_(fleet_run_done) FleetRun x = {};
        return fleet_start(argc, argv, "reservation ID", false, &x) ?: fleet_open(&x, true) ?: do_show(x.store, argv[x.k]);
}

int verb_fleet_request(int argc, char **argv) {
        _cleanup_(fleet_run_done) FleetRun x = {};
        return fleet_start(argc, argv, NULL, true, &x) ?: parse_requests(&x.a, argc, argv, x.k, &x.reqs, &x.n_reqs)
                ?: fleet_open(&x, true) ?: fleet_changed(&x, do_request(x.store, &x.a, x.reqs, x.n_reqs));
}

int verb_fleet_release(int argc, char **argv) {
        _cleanup_(fleet_run_done) FleetRun x = {};
        return fleet_start(argc, argv, NULL, true, &x) ?: fleet_open(&x, true)
                ?: fleet_changed(&x, do_release(x.store, argc, argv, x.k));
}

int verb_fleet_drain(int argc, char **argv) {
        _cleanup_(fleet_run_done) FleetRun x = {};
        return fleet_start(argc, argv, "HOST", false, &x) ?: fleet_open(&x, true)
                ?: fleet_changed(&x, do_drain(x.store, &x.a, argv[x.k]));
}

int verb_fleet_agent(int argc, char **argv) {
        _cleanup_(fleet_run_done) FleetRun x = {};
        return fleet_start(argc, argv, NULL, false, &x) ?: fleet_open(&x, false) ?: do_agent(x.root, x.store, &x.a);
}
