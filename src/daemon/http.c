/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The HTTP side of gpuvirtd (libmicrohttpd, its own polling thread): GET of a few fixed paths, each answered
 * from the current snapshot without copying (the response points into the snapshot, which it holds a
 * reference to until libmicrohttpd is done sending it). Bounded: a connection limit, a memory limit per
 * connection (the request line and headers must fit), an idle timeout. Anything else: 404 or 405. Nothing
 * here touches the host.
 */
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "daemon.h"

struct HttpServer {
        struct MHD_Daemon *mhd;
        SnapshotStore *store;
        const WebConfig *web;
};

typedef enum Path { PATH_METRICS, PATH_HEALTHZ, PATH_GPUS, PATH_UNITS, PATH_EVENTS, PATH_ROOT, _PATH_MAX } Path;

static const char *const paths[_PATH_MAX] = {
        [PATH_METRICS] = "/metrics", [PATH_HEALTHZ] = "/healthz", [PATH_GPUS] = "/v1/gpus",
        [PATH_UNITS] = "/v1/units",  [PATH_EVENTS] = "/v1/events", [PATH_ROOT] = "/",
};

static const char index_page[] = "gpuvirtd: /metrics (Prometheus), /healthz, /v1/gpus, /v1/units, /v1/events\n";

static enum MHD_Result queue_text(struct MHD_Connection *conn, unsigned status, const char *text, const char *allow) {
        struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
        if (!r)
                return MHD_NO;
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
        if (allow)
                MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
        enum MHD_Result ret = MHD_queue_response(conn, status, r);
        MHD_destroy_response(r);
        return ret;
}

static void snapshot_release(void *cls) {
        snapshot_unref(cls);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size, void **req) {
        HttpServer *s = cls;
        /* a body is never expected: the first call has none, the next ones are a body to refuse */
        if (*req == NULL) {
                *req = (void *)1;
                if (!streq(method, MHD_HTTP_METHOD_GET) && !streq(method, MHD_HTTP_METHOD_HEAD))
                        goto dispatch; /* answer at once: the body is never read */
                return MHD_YES;
        }
        if (*upload_data_size > 0)
                return queue_text(conn, MHD_HTTP_BAD_REQUEST, "a GET has no body\n", NULL);
dispatch:;
        Path p;
        for (p = 0; p < _PATH_MAX && !streq(url, paths[p]); p++)
                ;
        if (p == _PATH_MAX)
                return queue_text(conn, MHD_HTTP_NOT_FOUND, "not found\n", NULL);
        if (!streq(method, MHD_HTTP_METHOD_GET) && !streq(method, MHD_HTTP_METHOD_HEAD))
                return queue_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET\n", "GET, HEAD");
        if (s->web && s->web->users) {
                char *pass = NULL;
                char *user = MHD_basic_auth_get_username_password(conn, &pass);
                bool ok = web_config_check(s->web, user, pass);
                MHD_free(user);
                MHD_free(pass);
                if (!ok) {
                        struct MHD_Response *r = MHD_create_response_from_buffer(
                                strlen("unauthorized\n"), (void *)"unauthorized\n", MHD_RESPMEM_PERSISTENT);
                        if (!r)
                                return MHD_NO;
                        enum MHD_Result ret = MHD_queue_basic_auth_fail_response(conn, "gpuvirtd", r);
                        MHD_destroy_response(r);
                        return ret;
                }
        }
        if (p == PATH_ROOT)
                return queue_text(conn, MHD_HTTP_OK, index_page, NULL);

        Snapshot *snap = snapshot_store_get(s->store);
        if (!snap)
                return queue_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "no data yet\n", NULL);
        const char *body;
        size_t len;
        const char *type = "application/json";
        switch (p) {
        case PATH_METRICS:
                body = snap->metrics, len = snap->metrics_len, type = "text/plain; version=0.0.4; charset=utf-8";
                break;
        case PATH_HEALTHZ:
                body = snap->healthz, len = snap->healthz_len, type = "text/plain; charset=utf-8";
                break;
        case PATH_GPUS:
                body = snap->gpus, len = snap->gpus_len;
                break;
        case PATH_UNITS:
                body = snap->units, len = snap->units_len;
                break;
        default:
                body = snap->events, len = snap->events_len;
                break;
        }
        struct MHD_Response *r =
                MHD_create_response_from_buffer_with_free_callback_cls(len, (void *)body, snapshot_release, snap);
        if (!r) {
                snapshot_unref(snap);
                return MHD_NO;
        }
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
        enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ret;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) _printf_(2, 0);
static void mhd_log(void *cls, const char *fmt, va_list ap) {
        char buf[512];
        vsnprintf(buf, sizeof buf, fmt, ap);
        size_t n = strlen(buf);
        while (n > 0 && buf[n - 1] == '\n')
                buf[--n] = 0;
        log_debug("libmicrohttpd: %s", buf);
}

int http_start(const DaemonConfig *cfg, const WebConfig *web, SnapshotStore *store, HttpServer **ret,
               char **ret_error) {
        struct sockaddr_storage ss;
        socklen_t len;
        bool loopback;
        *ret_error = NULL;
        if (parse_listen(cfg->listen ?: GPUVIRTD_DEFAULT_LISTEN, &ss, &len, &loopback) < 0) {
                *ret_error = strdup_printf("'%s' is not a numeric ADDR:PORT", cfg->listen);
                return -EINVAL;
        }
        HttpServer *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->store = store;
        s->web = web;
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
        if (ss.ss_family == AF_INET6)
                flags |= MHD_USE_IPv6;
        bool tls = web && web->cert_pem;
        if (tls)
                flags |= MHD_USE_TLS;
        struct MHD_OptionItem ops[8];
        size_t n = 0;
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &ss};
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections, NULL};
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_sec, NULL};
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg->request_limit, NULL};
        if (tls) {
                ops[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, web->cert_pem};
                ops[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, web->key_pem};
        }
        ops[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
        s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handler, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                                  MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
        if (!s->mhd) {
                free(s);
                *ret_error = strdup_printf("cannot listen on %s (in use, or not an address of this host)",
                                           cfg->listen ?: GPUVIRTD_DEFAULT_LISTEN);
                return -EADDRNOTAVAIL;
        }
        if (!loopback)
                log_notice("Listening on %s: not a loopback address, reachable from the network%s", cfg->listen,
                           tls ? " (TLS)" : "");
        *ret = s;
        return 0;
}

void http_stop(HttpServer *s) {
        if (!s)
                return;
        MHD_stop_daemon(s->mhd);
        free(s);
}
