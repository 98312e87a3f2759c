/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gpuvirt-device-plugin: the kubelet device plugin API v1beta1 for the host's GPUs (docs/k8s.md).
 *
 * One thread drives everything: one gRPC completion queue (rpc.c) for every resource's server and for the
 * Registration calls, polled in steps of at most POLL_MS, between which the inotify descriptor is read and
 * the host rescanned when something changed or the rescan interval ran out. A changed resource list goes out
 * at once on every open ListAndWatch stream of that resource.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "core/host/root.h"
#include "core/store/statefile.h"
#include "core/vgpu/mdev.h"
#include "deviceplugin.pb-c.h"
#include "k8s/config.h"
#include "k8s/health.h"
#include "k8s/messages.h"
#include "k8s/migconfig.h"
#include "k8s/resources.h"
#include "k8s/rpc.h"
#include "sim/sim.h"

#define PLUGINS_DIR     "var/lib/kubelet/device-plugins"
#define KUBELET_SOCKET  "kubelet.sock"
#define API_VERSION     "v1beta1"
#define POLL_MS         50
#define REGISTER_MS     5000
#define MIG_RETRY_MS    30000
#define LABELS_DEFAULT  "etc/podinfo/labels"

typedef struct Plugin Plugin;

typedef struct Endpoint {
        Plugin *plugin;
        char *resource; /* "nvidia.com/gpu" */
        char *name;     /* the socket's name in the device-plugins directory */
        char *path;
        RpcServer *server;
        RpcCall **streams; /* open ListAndWatch calls */
        size_t n_streams;
        bool registered, registering;
} Endpoint;

struct Plugin {
        Root *root;
        PluginConfig config;
        char *dir;     /* the device-plugins directory */
        char *kubelet; /* its kubelet.sock */
        RpcLoop *loop;
        ResourceSet set;
        Endpoint **endpoints;
        size_t n_endpoints;
        int inotify;
        int watch_dir, watch_run, watch_state, watch_labels;
        bool rescan_due, sockets_due, register_due, labels_due;
        uint64_t next_rescan, next_register, next_mig_retry;
        /* dynamic MIG */
        const char *labels; /* the node labels file under the root */
        char *label_done;  /* the configuration label last applied */
        char **allocated;  /* IDs this process allocated (when kubelet keeps no checkpoint) */
        size_t n_allocated;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
        stop_requested = sig;
}

static uint64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* protobuf-c message -> bytes */
static uint8_t *pack(const ProtobufCMessage *m, size_t *ret_len) {
        size_t len = protobuf_c_message_get_packed_size(m);
        uint8_t *b = malloc(len ?: 1);
        if (!b)
                return NULL;
        *ret_len = protobuf_c_message_pack(m, b);
        return b;
}

static const Resource *endpoint_resource(const Endpoint *e) {
        return resource_set_find(&e->plugin->set, e->resource);
}

/* The ListAndWatch message for the resource as it is now (a resource gone from the host: no devices). */
static uint8_t *list_message(const Resource *r, size_t *ret_len) {
        size_t n = r ? r->n_devices : 0;
        _cleanup_free_ V1beta1__Device *devs = calloc(n ?: 1, sizeof(V1beta1__Device));
        _cleanup_free_ V1beta1__Device **ptrs = calloc(n ?: 1, sizeof(V1beta1__Device *));
        _cleanup_free_ V1beta1__TopologyInfo *topo = calloc(n ?: 1, sizeof(V1beta1__TopologyInfo));
        _cleanup_free_ V1beta1__NUMANode *numa = calloc(n ?: 1, sizeof(V1beta1__NUMANode));
        _cleanup_free_ V1beta1__NUMANode **numa_ptrs = calloc(n ?: 1, sizeof(V1beta1__NUMANode *));
        if (!devs || !ptrs || !topo || !numa || !numa_ptrs)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                const PluginDevice *d = &r->devices[i];
                v1beta1__device__init(&devs[i]);
                devs[i].id = d->id;
                devs[i].health = (char *) (d->healthy ? "Healthy" : "Unhealthy");
                if (d->numa_node >= 0) {
                        v1beta1__topology_info__init(&topo[i]);
                        v1beta1__numanode__init(&numa[i]);
                        numa[i].id = d->numa_node;
                        numa_ptrs[i] = &numa[i];
                        topo[i].n_nodes = 1;
                        topo[i].nodes = &numa_ptrs[i];
                        devs[i].topology = &topo[i];
                }
                ptrs[i] = &devs[i];
        }
        V1beta1__ListAndWatchResponse m = V1BETA1__LIST_AND_WATCH_RESPONSE__INIT;
        m.n_devices = n;
        m.devices = ptrs;
        return pack(&m.base, ret_len);
}

static int endpoint_send_list(Endpoint *e, RpcCall *only) {
        size_t len;
        _cleanup_free_ uint8_t *msg = list_message(endpoint_resource(e), &len);
        if (!msg)
                return -ENOMEM;
        for (size_t i = 0; i < e->n_streams; i++)
                if (!only || e->streams[i] == only)
                        (void) rpc_call_stream_send(e->streams[i], msg, len);
        return 0;
}

static void reply_message(RpcCall *c, const ProtobufCMessage *m) {
        size_t len;
        _cleanup_free_ uint8_t *b = pack(m, &len);
        if (!b)
                (void) rpc_call_fail(c, RPC_STATUS_INTERNAL, "out of memory");
        else
                (void) rpc_call_reply(c, b, len);
}

static void handle_allocate(Endpoint *e, RpcCall *c, const uint8_t *msg, size_t len) {
        const Resource none = {.name = e->resource, .endpoint = e->name}; /* gone from the host: no devices */
        const Resource *r = endpoint_resource(e) ?: &none;
        V1beta1__AllocateRequest *req = allocate_request_unpack(msg, len);
        if (!req) {
                (void) rpc_call_fail(c, RPC_STATUS_INVALID_ARGUMENT, "malformed AllocateRequest");
                return;
        }
        size_t n = req->n_container_requests;
        ContainerAlloc *allocs = calloc(n ?: 1, sizeof(ContainerAlloc));
        size_t done = 0;
        int status = 0;
        _cleanup_free_ char *why = NULL;
        if (!allocs) {
                status = RPC_STATUS_INTERNAL;
                why = strdup("out of memory");
        }
        for (; status == 0 && done < n; done++) {
                GvError err = {};
                const V1beta1__ContainerAllocateRequest *cr = req->container_requests[done];
                bool created = false;
                int q = resource_allocate(e->plugin->root, &e->plugin->set, r, cr->devicesids, cr->n_devicesids,
                                          &allocs[done], &created, &err);
                if (created) /* new mdevs: the lists change (the lock's close would tell us too) */
                        e->plugin->rescan_due = true;
                if (q < 0) {
                        /* bad IDs are the caller's; a host that failed (an mdev create, the lock) is ours */
                        status = q == -EINVAL ? RPC_STATUS_INVALID_ARGUMENT
                                 : q == -EBUSY ? RPC_STATUS_UNAVAILABLE : RPC_STATUS_INTERNAL;
                        why = strdup_printf("%s", gv_error_message(&err));
                        gv_error_done(&err);
                        break;
                }
        }
        if (status != 0) {
                log_info("Allocate of %s refused: %s", e->resource, strna(why));
                (void) rpc_call_fail(c, status, why ?: "out of memory");
        } else {
                /* the response borrows the strings of the ContainerAllocs */
                V1beta1__ContainerAllocateResponse *cresp = calloc(n ?: 1, sizeof(*cresp));
                V1beta1__ContainerAllocateResponse **cptrs = calloc(n ?: 1, sizeof(*cptrs));
                size_t n_env = 0, n_dev = 0, n_cdi = 0;
                for (size_t i = 0; i < n; i++)
                        n_env += allocs[i].n_env, n_dev += allocs[i].n_devices, n_cdi += allocs[i].n_cdi;
                V1beta1__CDIDevice *cdi = calloc(n_cdi ?: 1, sizeof(*cdi));
                V1beta1__CDIDevice **cdi_ptrs = calloc(n_cdi ?: 1, sizeof(*cdi_ptrs));
                V1beta1__ContainerAllocateResponse__EnvsEntry *env = calloc(n_env ?: 1, sizeof(*env));
                V1beta1__ContainerAllocateResponse__EnvsEntry **env_ptrs = calloc(n_env ?: 1, sizeof(*env_ptrs));
                V1beta1__DeviceSpec *dev = calloc(n_dev ?: 1, sizeof(*dev));
                V1beta1__DeviceSpec **dev_ptrs = calloc(n_dev ?: 1, sizeof(*dev_ptrs));
                if (!cresp || !cptrs || !env || !env_ptrs || !dev || !dev_ptrs || !cdi || !cdi_ptrs)
                        (void) rpc_call_fail(c, RPC_STATUS_INTERNAL, "out of memory");
                else {
                        size_t ie = 0, id = 0, ic = 0;
                        for (size_t i = 0; i < n; i++) {
                                v1beta1__container_allocate_response__init(&cresp[i]);
                                cresp[i].envs = &env_ptrs[ie];
                                cresp[i].n_envs = allocs[i].n_env;
                                for (size_t j = 0; j < allocs[i].n_env; j++, ie++) {
                                        v1beta1__container_allocate_response__envs_entry__init(&env[ie]);
                                        env[ie].key = allocs[i].env[j].name;
                                        env[ie].value = allocs[i].env[j].value;
                                        env_ptrs[ie] = &env[ie];
                                }
                                cresp[i].devices = &dev_ptrs[id];
                                cresp[i].n_devices = allocs[i].n_devices;
                                for (size_t j = 0; j < allocs[i].n_devices; j++, id++) {
                                        v1beta1__device_spec__init(&dev[id]);
                                        dev[id].container_path = allocs[i].devices[j].container_path;
                                        dev[id].host_path = allocs[i].devices[j].host_path;
                                        dev[id].permissions = allocs[i].devices[j].permissions;
                                        dev_ptrs[id] = &dev[id];
                                }
                                cresp[i].cdi_devices = &cdi_ptrs[ic];
                                cresp[i].n_cdi_devices = allocs[i].n_cdi;
                                for (size_t j = 0; j < allocs[i].n_cdi; j++, ic++) {
                                        v1beta1__cdidevice__init(&cdi[ic]);
                                        cdi[ic].name = allocs[i].cdi[j];
                                        cdi_ptrs[ic] = &cdi[ic];
                                }
                                cptrs[i] = &cresp[i];
                        }
                        V1beta1__AllocateResponse resp = V1BETA1__ALLOCATE_RESPONSE__INIT;
                        resp.n_container_responses = n;
                        resp.container_responses = cptrs;
                        reply_message(c, &resp.base);
                        log_info("Allocate of %s: %zu container(s)", e->resource, n);
                        for (size_t i = 0; i < n; i++)
                                for (size_t j = 0; j < req->container_requests[i]->n_devicesids; j++) {
                                        const char *dev_id = req->container_requests[i]->devicesids[j];
                                        if (!strv_contains(e->plugin->allocated, dev_id) &&
                                            strv_push(&e->plugin->allocated, &e->plugin->n_allocated, strdup(dev_id)) < 0)
                                                log_error("Out of memory recording an allocation");
                                }
                }
                free(cresp);
                free(cptrs);
                free(env);
                free(env_ptrs);
                free(dev);
                free(dev_ptrs);
                free(cdi);
                free(cdi_ptrs);
        }
        for (size_t i = 0; allocs && i < n; i++)
                container_alloc_done(&allocs[i]);
        free(allocs);
        v1beta1__allocate_request__free_unpacked(req, NULL);
}

static void handle_preferred(Endpoint *e, RpcCall *c, const uint8_t *msg, size_t len) {
        const Resource none = {.name = e->resource, .endpoint = e->name};
        const Resource *r = endpoint_resource(e) ?: &none;
        V1beta1__PreferredAllocationRequest *req = preferred_request_unpack(msg, len);
        if (!req) {
                (void) rpc_call_fail(c, RPC_STATUS_INVALID_ARGUMENT, "malformed PreferredAllocationRequest");
                return;
        }
        size_t n = req->n_container_requests;
        char ***chosen = calloc(n ?: 1, sizeof(char **));
        V1beta1__ContainerPreferredAllocationResponse *cr = calloc(n ?: 1, sizeof(*cr));
        V1beta1__ContainerPreferredAllocationResponse **cptrs = calloc(n ?: 1, sizeof(*cptrs));
        int status = chosen && cr && cptrs ? 0 : RPC_STATUS_INTERNAL;
        _cleanup_free_ char *why = status ? strdup("out of memory") : NULL;
        for (size_t i = 0; status == 0 && i < n; i++) {
                const V1beta1__ContainerPreferredAllocationRequest *q = req->container_requests[i];
                GvError err = {};
                int k = resource_preferred(r, q->available_deviceids, q->n_available_deviceids,
                                           q->must_include_deviceids, q->n_must_include_deviceids, q->allocation_size,
                                           &chosen[i], &err);
                if (k < 0) {
                        status = k == -ENOMEM ? RPC_STATUS_INTERNAL : RPC_STATUS_INVALID_ARGUMENT;
                        why = strdup(gv_error_message(&err));
                        gv_error_done(&err);
                        break;
                }
                v1beta1__container_preferred_allocation_response__init(&cr[i]);
                cr[i].deviceids = chosen[i];
                cr[i].n_deviceids = strv_length(chosen[i]);
                cptrs[i] = &cr[i];
        }
        if (status != 0) {
                log_info("GetPreferredAllocation of %s refused: %s", e->resource, strna(why));
                (void) rpc_call_fail(c, status, why ?: "out of memory");
        } else {
                V1beta1__PreferredAllocationResponse resp = V1BETA1__PREFERRED_ALLOCATION_RESPONSE__INIT;
                resp.n_container_responses = n;
                resp.container_responses = cptrs;
                reply_message(c, &resp.base);
        }
        for (size_t i = 0; chosen && i < n; i++)
                strv_free(chosen[i]);
        free(chosen);
        free(cr);
        free(cptrs);
        v1beta1__preferred_allocation_request__free_unpacked(req, NULL);
}

static void endpoint_request(void *userdata, RpcCall *c, const char *method, const uint8_t *msg, size_t len) {
        Endpoint *e = userdata;
        const char *m = startswith(method, "/" API_VERSION ".DevicePlugin/");
        if (!m) {
                (void) rpc_call_fail(c, RPC_STATUS_UNIMPLEMENTED, "unknown service");
                return;
        }
        if (streq(m, "GetDevicePluginOptions")) {
                V1beta1__DevicePluginOptions o = V1BETA1__DEVICE_PLUGIN_OPTIONS__INIT;
                o.pre_start_required = false;
                o.get_preferred_allocation_available = true;
                reply_message(c, &o.base);
        } else if (streq(m, "ListAndWatch")) {
                RpcCall **n = realloc(e->streams, (e->n_streams + 1) * sizeof(RpcCall *));
                if (!n) {
                        (void) rpc_call_fail(c, RPC_STATUS_INTERNAL, "out of memory");
                        return;
                }
                e->streams = n;
                n[e->n_streams++] = c;
                log_info("ListAndWatch of %s opened", e->resource);
                (void) endpoint_send_list(e, c);
        } else if (streq(m, "Allocate"))
                handle_allocate(e, c, msg, len);
        else if (streq(m, "GetPreferredAllocation"))
                handle_preferred(e, c, msg, len);
        else if (streq(m, "PreStartContainer")) {
                V1beta1__PreStartContainerResponse o = V1BETA1__PRE_START_CONTAINER_RESPONSE__INIT;
                reply_message(c, &o.base);
        } else
                (void) rpc_call_fail(c, RPC_STATUS_UNIMPLEMENTED, "not implemented by gpuvirt-device-plugin");
}

static void endpoint_closed(void *userdata, RpcCall *c) {
        Endpoint *e = userdata;
        for (size_t i = 0; i < e->n_streams; i++)
                if (e->streams[i] == c) {
                        e->streams[i] = e->streams[--e->n_streams];
                        log_info("ListAndWatch of %s closed", e->resource);
                        return;
                }
}

static const RpcHandler endpoint_handler = {
        .request = endpoint_request,
        .closed = endpoint_closed,
};

static void endpoint_free(Endpoint *e) {
        if (!e)
                return;
        free(e->resource);
        free(e->name);
        free(e->path);
        free(e->streams);
        free(e);
}

static int endpoint_start(Endpoint *e) {
        e->registered = e->registering = false;
        e->n_streams = 0; /* the old server's calls end with it */
        int r = rpc_server_start(e->plugin->loop, e->path, &endpoint_handler, e, &e->server);
        if (r == -ENAMETOOLONG)
                return log_error_errno(r, "Cannot serve %s: the socket path %s is longer than a unix socket address "
                                       "takes (107 bytes)", e->resource, e->path);
        if (r < 0)
                return log_error_errno(r, "Cannot serve %s on %s: %m", e->resource, e->path);
        log_info("Serving %s on %s", e->resource, e->path);
        return 0;
}

static void endpoint_stop(Endpoint *e) {
        if (!e->server)
                return;
        if (rpc_server_stop_wait(e->server, 5000) < 0)
                log_warning("%s: the old server did not stop in time", e->resource);
        e->server = NULL;
        (void) unlink(e->path);
}

static void register_done(void *userdata, int status, const char *details, const uint8_t *msg, size_t len) {
        Endpoint *e = userdata;
        e->registering = false;
        e->registered = status == 0;
        if (status == 0)
                log_info("Registered %s with kubelet", e->resource);
        else
                log_warning("Registration of %s refused or failed: status %d: %s", e->resource, status, strna(details));
}

static void endpoint_register(Endpoint *e) {
        if (!e->server || e->registered || e->registering)
                return;
        V1beta1__DevicePluginOptions o = V1BETA1__DEVICE_PLUGIN_OPTIONS__INIT;
        o.get_preferred_allocation_available = true;
        V1beta1__RegisterRequest rq = V1BETA1__REGISTER_REQUEST__INIT;
        rq.version = (char *) API_VERSION;
        rq.endpoint = e->name;
        rq.resource_name = e->resource;
        rq.options = &o;
        size_t len;
        _cleanup_free_ uint8_t *b = pack(&rq.base, &len);
        if (!b)
                return;
        if (rpc_client_call(e->plugin->loop, e->plugin->kubelet, "/" API_VERSION ".Registration/Register", b, len,
                            REGISTER_MS, register_done, e) == 0)
                e->registering = true;
}

static Endpoint *plugin_endpoint(Plugin *p, const char *resource) {
        for (size_t i = 0; i < p->n_endpoints; i++)
                if (streq(p->endpoints[i]->resource, resource))
                        return p->endpoints[i];
        return NULL;
}

static int plugin_add_endpoint(Plugin *p, const Resource *r) {
        Endpoint **n = realloc(p->endpoints, (p->n_endpoints + 1) * sizeof(Endpoint *));
        if (!n)
                return -ENOMEM;
        p->endpoints = n;
        Endpoint *e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->plugin = p;
        e->resource = strdup(r->name);
        e->name = strdup(r->endpoint);
        e->path = strdup_printf("%s/%s", p->dir, r->endpoint);
        if (!e->resource || !e->name || !e->path) {
                endpoint_free(e);
                return -ENOMEM;
        }
        n[p->n_endpoints++] = e;
        if (dir_exists(p->dir))
                (void) endpoint_start(e);
        p->next_register = 0; /* a new resource registers now */
        return 0;
}

/* Read the host again; every stream whose resource changed gets the new list, new resources get a server. */
static int plugin_rescan(Plugin *p) {
        HealthTable health = {};
        GvError err = {};
        int r = health_load(p->root, &health, &err);
        if (r < 0) {
                /* a damaged file says nothing: keep serving what the host shows, say so */
                log_warning("Ignoring the health file: %s", gv_error_message(&err));
                gv_error_done(&err);
        }
        ResourceSet s = {};
        r = resource_set_scan(p->root, &p->config, &health, &p->set, &s, &err);
        health_table_done(&health);
        if (r < 0) {
                log_warning("Rescan failed, keeping the last list: %s", gv_error_message(&err));
                gv_error_done(&err);
                return r;
        }
        ResourceSet old = p->set;
        p->set = s;
        for (size_t i = 0; i < s.n_resources; i++)
                if (!plugin_endpoint(p, s.resources[i].name) && plugin_add_endpoint(p, &s.resources[i]) < 0)
                        log_error("Out of memory adding %s", s.resources[i].name);
        for (size_t i = 0; i < p->n_endpoints; i++) {
                Endpoint *e = p->endpoints[i];
                const Resource *now = resource_set_find(&s, e->resource), *before = resource_set_find(&old, e->resource);
                if ((now || before) && !resource_equal(now, before)) {
                        log_info("%s: %zu device(s) now", e->resource, now ? now->n_devices : 0);
                        (void) endpoint_send_list(e, NULL);
                }
        }
        resource_set_done(&old);
        return 0;
}

static void plugin_watch(Plugin *p) {
        /* the plugins directory (kubelet.sock re-created, our sockets removed), run/ and run/gpuvirt/ (the
         * daemon's health file renamed into place; the host lock closed by a gpuvirt command that changed
         * the host) */
        if (p->watch_dir < 0 && dir_exists(p->dir))
                p->watch_dir = inotify_add_watch(p->inotify, p->dir, IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM);
        _cleanup_free_ char *run = root_path(p->root, "run");
        _cleanup_free_ char *state = root_path(p->root, "run/gpuvirt");
        /* a watch added now missed what happened before it (a first gpuvirt command may have made run/gpuvirt/
         * and closed its lock between two turns of the loop): rescan once it is in place */
        if (p->watch_run < 0 && run && dir_exists(run) &&
            (p->watch_run = inotify_add_watch(p->inotify, run, IN_CREATE | IN_MOVED_TO | IN_ONLYDIR)) >= 0)
                p->rescan_due = true;
        if (p->config.mig_config && p->watch_labels < 0) {
                _cleanup_free_ char *f = root_path(p->root, "%s", p->labels);
                char *slash = f ? strrchr(f, '/') : NULL;
                if (slash) {
                        *slash = '\0';
                        /* the downward API swaps a ..data symlink: creations and renames in the directory */
                        if (dir_exists(f))
                                p->watch_labels = inotify_add_watch(p->inotify, f, IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE |
                                                                                  IN_DELETE | IN_ONLYDIR);
                }
        }
        if (p->watch_state < 0 && state && dir_exists(state) &&
            (p->watch_state = inotify_add_watch(p->inotify, state, IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_MOVED_TO |
                                                                       IN_CREATE | IN_DELETE)) >= 0)
                p->rescan_due = true;
}

static void plugin_read_events(Plugin *p) {
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        for (;;) {
                ssize_t n = read(p->inotify, buf, sizeof(buf));
                if (n <= 0)
                        return;
                for (char *c = buf; c < buf + n;) {
                        const struct inotify_event *ev = (const struct inotify_event *) c;
                        c += sizeof(*ev) + ev->len;
                        const char *name = ev->len ? ev->name : "";
                        if (ev->mask & IN_IGNORED) {
                                if (ev->wd == p->watch_dir)
                                        p->watch_dir = -1;
                                if (ev->wd == p->watch_state)
                                        p->watch_state = -1;
                                if (ev->wd == p->watch_run)
                                        p->watch_run = -1;
                                if (ev->wd == p->watch_labels)
                                        p->watch_labels = -1;
                                p->sockets_due = p->sockets_due || ev->wd == p->watch_dir;
                                continue;
                        }
                        if (ev->wd == p->watch_dir) {
                                if (streq(name, KUBELET_SOCKET) && (ev->mask & (IN_CREATE | IN_MOVED_TO))) {
                                        log_info("kubelet.sock was created: registering again");
                                        p->register_due = p->sockets_due = true;
                                } else if (streq(name, "kubelet_internal_checkpoint"))
                                        p->next_mig_retry = 0; /* allocations changed: a refused label may go now */
                                else if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
                                        p->sockets_due = true; /* ours? (gRPC's own unlink of an old one too) */
                        } else if (ev->wd == p->watch_labels) {
                                p->labels_due = true;
                        } else if (ev->wd == p->watch_run) {
                                if (streq(name, "gpuvirt"))
                                        p->rescan_due = true;
                        } else if (ev->wd == p->watch_state) {
                                if (streq(name, "lock") && (ev->mask & IN_CLOSE_WRITE))
                                        p->rescan_due = true; /* a gpuvirt command that took the host lock ended */
                                else if (streq(name, "health.json"))
                                        p->rescan_due = true;
                        }
                }
        }
}

/* A socket of ours is gone (kubelet removes the plugins' sockets when it starts): serve that resource on a
 * new one. kubelet.sock created again: register every resource again. */
static void plugin_check_sockets(Plugin *p) {
        for (size_t i = 0; i < p->n_endpoints; i++) {
                Endpoint *e = p->endpoints[i];
                if (e->server && !path_exists(e->path)) {
                        log_info("%s was removed: serving %s on a new socket", e->name, e->resource);
                        endpoint_stop(e);
                        (void) endpoint_start(e);
                        p->next_register = 0;
                }
        }
}

static void mig_state_write(Plugin *p, const char *label, const char *state, const char *reason) {
        _cleanup_json_ json_object *o = json_object_new_object();
        if (!o || json_object_object_add(o, "label", json_object_new_string(label)) < 0 ||
            json_object_object_add(o, "state", json_object_new_string(state)) < 0 ||
            json_object_object_add(o, "reason", reason ? json_object_new_string(reason) : NULL) < 0)
                return;
        int r = state_write_json(p->root, o, MIG_CONFIG_STATE_FILE);
        if (r < 0)
                log_warning_errno(r, "Cannot write %s: %m", MIG_CONFIG_STATE_FILE);
}

/* The node label names a MIG configuration: apply it unless it is the one applied, keeping what pods use. */
static void plugin_mig_label(Plugin *p) {
        GvError err = {};
        _cleanup_free_ char *label = NULL;
        int r = node_label_read(p->root, p->labels, MIG_CONFIG_LABEL, &label, &err);
        if (r == -ENOENT)
                return;
        if (r < 0) {
                log_warning("Ignoring the node labels: %s", gv_error_message(&err));
                gv_error_done(&err);
                return;
        }
        if (p->label_done && streq(p->label_done, label))
                return;
        /* what pods hold: kubelet's checkpoint when it keeps one, else what this process allocated */
        _cleanup_strv_free_ char **held = NULL;
        r = kubelet_checkpoint_ids(p->root, &held, &err);
        if (r < 0 && r != -ENOENT) {
                log_warning("Not applying MIG configuration %s: %s", label, gv_error_message(&err));
                mig_state_write(p, label, "failed", gv_error_message(&err));
                gv_error_done(&err);
                p->next_mig_retry = now_ms() + MIG_RETRY_MS;
                return;
        }
        r = k8s_mig_apply(p->root, p->config.mig_config, label, r == -ENOENT ? p->allocated : held, &err);
        if (r == 0) {
                log_info("Applied MIG configuration %s", label);
                mig_state_write(p, label, "applied", NULL);
                free(p->label_done);
                p->label_done = TAKE_PTR(label);
                p->rescan_due = true;
        } else {
                const char *state = r == -EBUSY ? "refused" : "failed";
                log_warning("MIG configuration %s %s: %s", label, state, gv_error_message(&err));
                mig_state_write(p, label, state, gv_error_message(&err));
                p->next_mig_retry = now_ms() + MIG_RETRY_MS;
                p->rescan_due = true; /* a failed apply may have changed some GPUs */
        }
        gv_error_done(&err);
}

static int plugin_run(Plugin *p) {
        p->next_rescan = 0;
        while (!stop_requested) {
                plugin_watch(p);
                uint64_t now = now_ms();
                if (p->sockets_due && dir_exists(p->dir)) {
                        p->sockets_due = false;
                        plugin_check_sockets(p);
                }
                if (p->register_due) {
                        p->register_due = false;
                        for (size_t i = 0; i < p->n_endpoints; i++)
                                p->endpoints[i]->registered = false;
                        p->next_register = 0;
                }
                if (p->config.mig_config && (p->labels_due || now >= p->next_mig_retry)) {
                        p->labels_due = false;
                        p->next_mig_retry = UINT64_MAX;
                        plugin_mig_label(p);
                }
                if (p->rescan_due || now >= p->next_rescan) {
                        p->rescan_due = false;
                        (void) plugin_rescan(p);
                        p->next_rescan = now_ms() + p->config.rescan_ms;
                }
                if (now >= p->next_register) {
                        for (size_t i = 0; i < p->n_endpoints; i++) {
                                if (!p->endpoints[i]->server && dir_exists(p->dir))
                                        (void) endpoint_start(p->endpoints[i]);
                                endpoint_register(p->endpoints[i]);
                        }
                        p->next_register = now + REGISTER_MS;
                }
                int r = rpc_loop_run_once(p->loop, POLL_MS);
                if (r < 0)
                        return r;
                plugin_read_events(p);
        }
        return 0;
}

static void plugin_done(Plugin *p) {
        for (size_t i = 0; i < p->n_endpoints; i++)
                endpoint_stop(p->endpoints[i]);
        rpc_loop_free(p->loop); /* runs the closed() of the streams still open */
        for (size_t i = 0; i < p->n_endpoints; i++)
                endpoint_free(p->endpoints[i]);
        free(p->endpoints);
        resource_set_done(&p->set);
        if (p->inotify >= 0)
                close(p->inotify);
        free(p->dir);
        free(p->kubelet);
        plugin_config_done(&p->config);
        strv_free(p->allocated);
        free(p->label_done);
        root_free(p->root);
}

static void help(void) {
        printf("Usage: gpuvirt-device-plugin [--root DIR] [--config FILE] [--mig-strategy none|single|mixed] [--no-containers]\n"
               "                             [--no-kubevirt] [--create-mdevs TYPE]... [--rescan-interval MS]\n"
               "                             [--mig-config FILE [--node-labels FILE]] [-v]\n"
               "Serve the host's GPUs to kubelet (device plugin API " API_VERSION "): whole GPUs and MIG devices to\n"
               "containers, vfio-pci devices and mdevs to KubeVirt VMs.\n");
}

int main(int argc, char **argv) {
        sim_backend_register();
        static const struct option options[] = {
                {"root", required_argument, NULL, 'r'},
                {"config", required_argument, NULL, 'f'},
                {"mig-strategy", required_argument, NULL, 'm'},
                {"no-containers", no_argument, NULL, 'C'},
                {"no-kubevirt", no_argument, NULL, 'K'},
                {"rescan-interval", required_argument, NULL, 'i'},
                {"create-mdevs", required_argument, NULL, 'M'},
                {"mig-config", required_argument, NULL, 'c'},
                {"node-labels", required_argument, NULL, 'l'},
                {"verbose", no_argument, NULL, 'v'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        Plugin p = {.config = PLUGIN_CONFIG_DEFAULT, .inotify = -1, .watch_dir = -1, .watch_run = -1,
                    .watch_state = -1, .watch_labels = -1};
        /* the command line overrides the file: remembered here, applied after it is read */
        const char *root_arg = NULL, *config_file = NULL, *mig_config = NULL, *labels = NULL;
        _cleanup_strv_free_ char **create_types = NULL;
        size_t n_create_types = 0;
        int strategy = -1, containers = -1, kubevirt = -1, c, verbose = 0;
        uint32_t rescan_ms = 0;
        while ((c = getopt_long(argc, argv, "hv", options, NULL)) >= 0) {
                switch (c) {
                case 'r':
                        root_arg = optarg;
                        break;
                case 'f':
                        config_file = optarg;
                        break;
                case 'm':
                        strategy = mig_strategy_from_string(optarg);
                        if (strategy < 0) {
                                fprintf(stderr, "gpuvirt-device-plugin: --mig-strategy: '%s' is not none, single or mixed\n", optarg);
                                return 2;
                        }
                        break;
                case 'C':
                        containers = 0;
                        break;
                case 'K':
                        kubevirt = 0;
                        break;
                case 'i':
                        if (parse_u32(optarg, 10, &rescan_ms) < 0 || rescan_ms < 100 || rescan_ms > 3600000) {
                                fprintf(stderr, "gpuvirt-device-plugin: --rescan-interval: '%s' is not 100..3600000 (ms)\n", optarg);
                                return 2;
                        }
                        break;
                case 'M':
                        if (!mdev_type_valid(optarg)) {
                                fprintf(stderr, "gpuvirt-device-plugin: --create-mdevs: '%s' is not an mdev type\n", optarg);
                                return 2;
                        }
                        if (strv_push(&create_types, &n_create_types, strdup(optarg)) < 0)
                                return 1;
                        break;
                case 'c':
                        mig_config = optarg;
                        break;
                case 'l':
                        labels = optarg;
                        break;
                case 'v':
                        verbose++;
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "gpuvirt-device-plugin: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }
        log_set_max_level(verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
        int r = root_open(root_arg, 0, &p.root);
        if (r < 0) {
                fprintf(stderr, "gpuvirt-device-plugin: cannot open the root: %s\n", errno_message(r));
                return r == -EINVAL ? 2 : 1;
        }
        GvError err = {};
        r = plugin_config_load(p.root, config_file ?: PLUGIN_CONFIG_FILE, &p.config, &err);
        if (r < 0 && (r != -ENOENT || config_file)) {
                if (r == -ENOENT)
                        fprintf(stderr, "gpuvirt-device-plugin: %s: no such file under the root\n", config_file);
                else
                        fprintf(stderr, "gpuvirt-device-plugin: %s\n", gv_error_message(&err));
                gv_error_done(&err);
                plugin_done(&p);
                return r == -EINVAL ? 2 : 1;
        }
        if (strategy >= 0)
                p.config.mig_strategy = (MigStrategy) strategy;
        if (containers >= 0)
                p.config.containers = containers;
        if (kubevirt >= 0)
                p.config.kubevirt = kubevirt;
        if (rescan_ms > 0)
                p.config.rescan_ms = rescan_ms;
        if (create_types) {
                strv_free(p.config.create_mdev_types);
                p.config.create_mdev_types = TAKE_PTR(create_types);
        }
        if ((mig_config && !(free(p.config.mig_config), p.config.mig_config = strdup(mig_config))) ||
            (labels && !(free(p.config.node_labels), p.config.node_labels = strdup(labels)))) {
                plugin_done(&p);
                return 1;
        }
        p.labels = p.config.node_labels ?: LABELS_DEFAULT;
        p.dir = root_path(p.root, PLUGINS_DIR);
        p.kubelet = root_path(p.root, PLUGINS_DIR "/" KUBELET_SOCKET);
        p.inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (!p.dir || !p.kubelet || p.inotify < 0 || rpc_loop_new(&p.loop) < 0) {
                fprintf(stderr, "gpuvirt-device-plugin: cannot start: %s\n", errno_message(errno ?: ENOMEM));
                plugin_done(&p);
                return 1;
        }
        struct sigaction sa = {.sa_handler = on_signal};
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        log_info("MIG strategy %s, containers %s, KubeVirt %s, rescan every %u ms%s%s",
                 mig_strategy_to_string(p.config.mig_strategy), p.config.containers ? "yes" : "no",
                 p.config.kubevirt ? "yes" : "no", p.config.rescan_ms,
                 p.config.mig_config ? ", dynamic MIG from " : "", p.config.mig_config ? p.labels : "");
        r = plugin_run(&p);
        log_info("Stopping (%s)", stop_requested ? "signal" : errno_message(r));
        plugin_done(&p);
        return r < 0 ? 1 : 0;
}
