/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "guest.h"

static void guest_close(Guest *g) {
        if (g->fd >= 0)
                close(g->fd);
        g->fd = -1;
        g->len = 0;
}

static void guest_free(Guest *g) {
        if (!g)
                return;
        guest_close(g);
        free(g->domain);
        free(g->path);
        json_object_put(g->report);
        free(g);
}

static void guest_connect(Guest *g) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (!g->path || strlen(g->path) >= sizeof sa.sun_path)
                return;
        strcpy(sa.sun_path, g->path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return;
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
                log_debug_errno(errno, "guest %s: cannot connect to %s: %m", g->domain, g->path);
                close(fd);
                return;
        }
        g->fd = fd;
        log_debug("guest %s: connected to %s", g->domain, g->path);
}

/* Read what is there; every complete line replaces the report (the last one wins). */
static void guest_drain(Guest *g, uint64_t now) {
        for (;;) {
                if (g->len == sizeof g->buf)
                        g->len = 0; /* a line longer than the buffer: not an agent's, dropped */
                ssize_t k = recv(g->fd, g->buf + g->len, sizeof g->buf - g->len, MSG_DONTWAIT);
                if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
                        log_debug_errno(k < 0 ? errno : 0, "guest %s: channel closed (%s), reconnecting next cycle",
                                        g->domain, k < 0 ? "error" : "end of file");
                        guest_close(g); /* the guest or libvirt closed it: reconnect next cycle */
                        return;
                }
                if (k < 0)
                        return;
                g->len += (size_t)k;
                char *nl;
                while ((nl = memchr(g->buf, '\n', g->len))) {
                        *nl = 0;
                        json_object *o = json_tokener_parse(g->buf);
                        if (o && json_object_is_type(o, json_type_object) &&
                            json_object_get_int(json_object_object_get(o, "version")) == 1) {
                                json_object_put(g->report);
                                g->report = o;
                                g->report_mono = now;
                                log_debug("guest %s: report of %zu bytes", g->domain, (size_t)(nl - g->buf));
                        } else {
                                log_debug("guest %s: a line that is not an agent report, ignored", g->domain);
                                json_object_put(o);
                        }
                        size_t used = (size_t)(nl - g->buf) + 1;
                        memmove(g->buf, nl + 1, g->len - used);
                        g->len -= used;
                }
        }
}

Guest *guests_update(Guests *gs, const char *domain, const char *path, uint64_t now) {
        Guest *g = NULL;
        for (size_t i = 0; i < gs->n && !g; i++)
                if (streq(gs->g[i]->domain, domain))
                        g = gs->g[i];
        if (!g) {
                Guest **n = realloc(gs->g, (gs->n + 1) * sizeof *n);
                if (!n)
                        return NULL;
                gs->g = n;
                g = calloc(1, sizeof *g);
                if (!g || !(g->domain = strdup(domain))) {
                        free(g);
                        return NULL;
                }
                g->fd = -1;
                gs->g[gs->n++] = g;
        }
        g->seen = true;
        if (!path != !g->path || (path && !streq(path, g->path))) {
                guest_close(g);
                free(g->path);
                g->path = path ? strdup(path) : NULL;
        }
        if (g->path && g->fd < 0)
                guest_connect(g);
        if (g->fd >= 0)
                guest_drain(g, now);
        return g;
}

void guests_begin(Guests *gs) {
        for (size_t i = 0; i < gs->n; i++)
                gs->g[i]->seen = false;
}

void guests_end(Guests *gs) {
        size_t k = 0;
        for (size_t i = 0; i < gs->n; i++) {
                if (gs->g[i]->seen)
                        gs->g[k++] = gs->g[i];
                else
                        guest_free(gs->g[i]);
        }
        gs->n = k;
}

void guests_done(Guests *gs) {
        for (size_t i = 0; i < gs->n; i++)
                guest_free(gs->g[i]);
        free(gs->g);
        *gs = (Guests){};
}

bool guest_up(const Guest *g, uint64_t now, uint64_t stale) {
        return g->report && now - g->report_mono <= stale;
}
