/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <crypt.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/yamldoc.h"
#include "daemon.h"

uint64_t now_usec(int clock) {
        struct timespec ts;
        clock_gettime(clock, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void daemon_config_init(DaemonConfig *c) {
        *c = (DaemonConfig){
                .interval_usec = 10 * 1000000ull,
                .clean_usec = 300 * 1000000ull,
                .max_connections = 64,
                .timeout_sec = 10,
                .request_limit = 8192,
        };
}

void daemon_config_done(DaemonConfig *c) {
        free(c->listen);
        free(c->libvirt);
        free(c->web_config);
        *c = (DaemonConfig){};
}

static int dup_or_null(const char *s, char **ret) {
        *ret = s ? strdup(s) : NULL;
        return s && !*ret ? -ENOMEM : 0;
}

int daemon_config_copy(const DaemonConfig *from, DaemonConfig *to) {
        DaemonConfig c = *from;
        c.listen = c.libvirt = c.web_config = NULL;
        if (dup_or_null(from->listen, &c.listen) < 0 || dup_or_null(from->libvirt, &c.libvirt) < 0 ||
            dup_or_null(from->web_config, &c.web_config) < 0) {
                daemon_config_done(&c);
                return -ENOMEM;
        }
        *to = c;
        return 0;
}

int parse_seconds(const char *s, uint64_t *ret) {
        char *end = NULL;
        if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
                return -EINVAL;
        errno = 0;
        double v = strtod(s, &end);
        if (errno || !end || *end || !isfinite(v) || v < 0.01 || v > 86400.0 * 365)
                return -EINVAL;
        *ret = (uint64_t)llround(v * 1e6);
        return 0;
}

int parse_listen(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len, bool *ret_loopback) {
        _cleanup_free_ char *host = NULL;
        const char *colon;
        if (!s)
                return -EINVAL;
        if (s[0] == '[') {
                const char *close = strchr(s, ']');
                if (!close || close[1] != ':')
                        return -EINVAL;
                host = strndup(s + 1, (size_t)(close - s - 1));
                colon = close + 1;
        } else {
                colon = strrchr(s, ':');
                if (!colon)
                        return -EINVAL;
                host = strndup(s, (size_t)(colon - s));
        }
        if (!host)
                return -ENOMEM;
        uint32_t port;
        if (parse_u32(colon + 1, 10, &port) < 0 || port == 0 || port > 65535)
                return -EINVAL;
        struct sockaddr_storage ss = {};
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        bool loopback;
        socklen_t len;
        if (s[0] != '[' && inet_pton(AF_INET, host, &in->sin_addr) == 1) {
                in->sin_family = AF_INET;
                in->sin_port = htons((uint16_t)port);
                loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
                len = sizeof *in;
        } else if (s[0] == '[' && inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons((uint16_t)port);
                loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
                len = sizeof *in6;
        } else
                return -EINVAL; /* numeric addresses only: no name resolution at start */
        *ret = ss;
        *ret_len = len;
        *ret_loopback = loopback;
        return 0;
}

#define node_err(file, n, fmt, key) ynode_error(file, n, fmt, key)

int daemon_config_load(DaemonConfig *c, const char *path, GvError *ret_error) {
        _cleanup_ydoc_free_ YDoc *doc = NULL;
        int r = ydoc_load(path, path, 64 * 1024, &doc, ret_error);
        if (r < 0)
                return r;
        DaemonConfig n;
        r = daemon_config_copy(c, &n);
        if (r < 0)
                return r;
        const YNode *root = ydoc_root(doc);
        if (root && root->type != YNODE_MAPPING) {
                daemon_config_done(&n);
                return gv_error_take(ret_error, -EINVAL, NULL, "parse", GV_HINT_NONE,
                                     ynode_error(path, root, "expected a mapping of settings"));
        }
        for (size_t i = 0; root && i + 1 < root->n_children; i += 2) {
                const YNode *k = root->children[i], *v = root->children[i + 1];
                const char *key = k->value, *val = ynode_scalar(v);
                uint32_t u;
                char *err = NULL;
                if (!val)
                        err = node_err(path, v, "'%s' takes a single value", key);
                else if (streq(key, "listen") || streq(key, "libvirt") || streq(key, "web-config")) {
                        char **dst = streq(key, "listen") ? &n.listen : streq(key, "libvirt") ? &n.libvirt : &n.web_config;
                        struct sockaddr_storage ss;
                        socklen_t len;
                        bool lo;
                        if (streq(key, "listen") && parse_listen(val, &ss, &len, &lo) < 0)
                                err = node_err(path, v, "'%s' is not a numeric ADDR:PORT", key);
                        else {
                                free(*dst);
                                *dst = strdup(val);
                                if (!*dst)
                                        err = strdup("out of memory");
                        }
                } else if (streq(key, "interval") || streq(key, "clean-period")) {
                        if (parse_seconds(val, streq(key, "interval") ? &n.interval_usec : &n.clean_usec) < 0)
                                err = node_err(path, v, "'%s' is not a number of seconds (0.01 or more)", key);
                } else if (streq(key, "max-connections") || streq(key, "timeout") || streq(key, "request-limit")) {
                        unsigned *dst = streq(key, "max-connections") ? &n.max_connections
                                        : streq(key, "timeout")       ? &n.timeout_sec
                                                                      : &n.request_limit;
                        if (parse_u32(val, 10, &u) < 0 || u == 0 || u > 1u << 24 ||
                            (dst == &n.request_limit && u < 1024))
                                err = node_err(path, v, "'%s' is not a positive number in range", key);
                        else
                                *dst = u;
                } else
                        err = node_err(path, k, "unknown setting '%s' (listen, interval, clean-period, max-connections, "
                                                "timeout, request-limit, libvirt, web-config)", key);
                if (err) {
                        daemon_config_done(&n);
                        return gv_error_take(ret_error, -EINVAL, NULL, "parse", GV_HINT_NONE, err);
                }
        }
        daemon_config_done(c);
        *c = n;
        return 0;
}

/* ---- exporter-toolkit web config ---- */

void web_config_done(WebConfig *w) {
        free(w->cert_pem);
        free(w->key_pem);
        strv_free(w->users);
        strv_free(w->hashes);
        *w = (WebConfig){};
}

static int read_pem(const char *config, const YNode *v, char **ret, char **ret_error) {
        const char *file = ynode_scalar(v);
        void *buf = NULL;
        size_t n = 0;
        if (!file)
                return *ret_error = ynode_error(config, v, "expected a file name"), -EINVAL;
        int r = read_full(file, 1 << 20, &buf, &n);
        if (r < 0)
                return *ret_error = ynode_error(config, v, "cannot read '%s': %s", file, errno_message(r)), r;
        *ret = buf;
        return 0;
}

int web_config_load(const char *path, WebConfig *ret, GvError *ret_error) {
        _cleanup_ydoc_free_ YDoc *doc = NULL;
        int r = ydoc_load(path, path, 64 * 1024, &doc, ret_error);
        if (r < 0)
                return r;
        WebConfig w = {};
        size_t nu = 0, nh = 0;
        const YNode *root = ydoc_root(doc);
        char *err = NULL;
        if (root && root->type != YNODE_MAPPING)
                err = ynode_error(path, root, "expected a mapping");
        for (size_t i = 0; !err && root && i + 1 < root->n_children; i += 2) {
                const YNode *k = root->children[i], *v = root->children[i + 1];
                if (streq(k->value, "tls_server_config")) {
                        if (v->type != YNODE_MAPPING) {
                                err = ynode_error(path, v, "expected a mapping");
                                break;
                        }
                        for (size_t j = 0; !err && j + 1 < v->n_children; j += 2) {
                                const YNode *tk = v->children[j], *tv = v->children[j + 1];
                                if (streq(tk->value, "cert_file"))
                                        r = read_pem(path, tv, &w.cert_pem, &err);
                                else if (streq(tk->value, "key_file"))
                                        r = read_pem(path, tv, &w.key_pem, &err);
                                else
                                        err = ynode_error(path, tk, "unsupported TLS setting '%s' (cert_file, key_file)",
                                                          tk->value);
                        }
                        if (!err && (!w.cert_pem) != (!w.key_pem))
                                err = ynode_error(path, v, "tls_server_config needs both cert_file and key_file");
                } else if (streq(k->value, "basic_auth_users")) {
                        if (v->type != YNODE_MAPPING) {
                                err = ynode_error(path, v, "expected a mapping of user: bcrypt hash");
                                break;
                        }
                        for (size_t j = 0; !err && j + 1 < v->n_children; j += 2) {
                                const char *hash = ynode_scalar(v->children[j + 1]);
                                if (!hash || !(startswith(hash, "$2b$") || startswith(hash, "$2a$") ||
                                               startswith(hash, "$2y$")))
                                        err = ynode_error(path, v->children[j + 1], "expected a bcrypt hash ($2b$...)");
                                else if (strv_push(&w.users, &nu, strdup(v->children[j]->value)) < 0 ||
                                         strv_push(&w.hashes, &nh, strdup(hash)) < 0)
                                        err = strdup("out of memory");
                        }
                } else
                        err = ynode_error(path, k, "unsupported setting '%s' (tls_server_config, basic_auth_users)",
                                          k->value);
        }
        if (err) {
                web_config_done(&w);
                return gv_error_take(ret_error, -EINVAL, NULL, "parse", GV_HINT_NONE, err);
        }
        *ret = w;
        return 0;
}

bool web_config_check(const WebConfig *w, const char *user, const char *password) {
        if (!user || !password)
                return false;
        for (size_t i = 0; w->users && w->users[i]; i++) {
                if (!streq(w->users[i], user))
                        continue;
                struct crypt_data *cd = calloc(1, sizeof *cd);
                if (!cd)
                        return false;
                /* crypt_rn: libxcrypt's crypt_r that returns NULL on failure (and that AddressSanitizer does not
                 * intercept: its crypt_r interceptor cannot find libxcrypt's versioned symbol) */
                const char *h = crypt_rn(password, w->hashes[i], cd, (int)sizeof *cd);
                bool ok = h && h[0] != '*' && strlen(h) == strlen(w->hashes[i]) && streq(h, w->hashes[i]);
                free(cd);
                return ok;
        }
        return false;
}

/* ---- snapshots ---- */

Snapshot *snapshot_ref(Snapshot *s) {
        if (s)
                atomic_fetch_add(&s->refs, 1);
        return s;
}

void snapshot_unref(Snapshot *s) {
        if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
                return;
        free(s->metrics);
        free(s->gpus);
        free(s->units);
        free(s->events);
        free(s->healthz);
        free(s);
}

void snapshot_store_init(SnapshotStore *st) {
        pthread_mutex_init(&st->lock, NULL);
        st->current = NULL;
}

void snapshot_store_done(SnapshotStore *st) {
        snapshot_unref(st->current);
        st->current = NULL;
        pthread_mutex_destroy(&st->lock);
}

Snapshot *snapshot_store_get(SnapshotStore *st) {
        pthread_mutex_lock(&st->lock);
        Snapshot *s = snapshot_ref(st->current);
        pthread_mutex_unlock(&st->lock);
        return s;
}

void snapshot_store_set(SnapshotStore *st, Snapshot *s) {
        pthread_mutex_lock(&st->lock);
        Snapshot *old = st->current;
        st->current = s;
        pthread_mutex_unlock(&st->lock);
        snapshot_unref(old);
}
