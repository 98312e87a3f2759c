/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gpuvirtd: health and Prometheus metrics of a host's GPU units, and a read-only JSON API. Runs in the
 * foreground (systemd Type=notify), logs to stderr, reloads on SIGHUP, stops on SIGTERM/SIGINT.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "config.h"
#include "core/health/health.h"
#include "core/host/root.h"
#include "daemon.h"
#include "sim/sim.h"

static void help(void) {
        printf("Usage: gpuvirtd [OPTIONS]\n\n"
               "Health and Prometheus metrics of the host's GPUs, VFs, vGPUs, mdevs and MIG instances.\n\n"
               "  --root DIR            the host (default /, or $GPUVIRT_ROOT): a simulated host works too\n"
               "  --listen ADDR:PORT    where to serve HTTP (default " GPUVIRTD_DEFAULT_LISTEN "); another than\n"
               "                        a loopback address makes the API reachable from the network\n"
               "  --interval SEC        collector period (default 10)\n"
               "  --clean-period SEC    how long a unit stays clean before it is healthy again (default 300)\n"
               "  --config FILE         settings (YAML; the keys are these long options); re-read on SIGHUP\n"
               "  --web-config FILE     TLS and basic auth in Prometheus exporter-toolkit's format\n"
               "  --libvirt URI         where to ask for holder domains (default qemu:///system on the live\n"
               "                        host, none on another root; 'none': do not ask)\n"
               "  --max-connections N   connections at once (default 64)\n"
               "  --timeout SEC         idle timeout of a connection (default 10)\n"
               "  --request-limit BYTES memory for one request's line and headers (default 8192)\n"
               "  -v, --verbose         debug logging\n"
               "  --version, --help\n");
}

typedef struct Args {
        const char *root, *config;
        DaemonConfig over; /* from the command line, over the file's */
        bool set_listen, set_interval, set_clean, set_max, set_timeout, set_limit, set_libvirt, set_web;
} Args;

/* The file's settings, then the command line's over them. */
static int build_config(const Args *a, DaemonConfig *ret, GvError *ret_error) {
        DaemonConfig c;
        daemon_config_init(&c);
        if (a->config) {
                int r = daemon_config_load(&c, a->config, ret_error);
                if (r < 0) {
                        daemon_config_done(&c);
                        return r;
                }
        }
        const DaemonConfig *o = &a->over;
        int r = 0;
#define STR(flag, field)                                                                                      \
        if (a->flag && r >= 0) {                                                                              \
                free(c.field);                                                                                \
                c.field = strdup(o->field);                                                                   \
                r = c.field ? 0 : -ENOMEM;                                                                    \
        }
        STR(set_listen, listen)
        STR(set_libvirt, libvirt)
        STR(set_web, web_config)
#undef STR
        if (a->set_interval)
                c.interval_usec = o->interval_usec;
        if (a->set_clean)
                c.clean_usec = o->clean_usec;
        if (a->set_max)
                c.max_connections = o->max_connections;
        if (a->set_timeout)
                c.timeout_sec = o->timeout_sec;
        if (a->set_limit)
                c.request_limit = o->request_limit;
        if (r >= 0 && !c.listen && !(c.listen = strdup(GPUVIRTD_DEFAULT_LISTEN)))
                r = -ENOMEM;
        if (r < 0) {
                daemon_config_done(&c);
                return r;
        }
        *ret = c;
        return 0;
}

static int usage(const char *fmt, const char *arg) _printf_(1, 0);
static int usage(const char *fmt, const char *arg) {
        fprintf(stderr, "gpuvirtd: ");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        fprintf(stderr, fmt, arg);
#pragma GCC diagnostic pop
        fprintf(stderr, "\n(see gpuvirtd --help)\n");
        return 2;
}

static int parse_args(int argc, char **argv, Args *a) {
        enum { O_ROOT = 0x100, O_LISTEN, O_INTERVAL, O_CLEAN, O_CONFIG, O_WEB, O_LIBVIRT, O_MAX, O_TIMEOUT, O_LIMIT,
               O_VERSION, O_HELP };
        static const struct option opts[] = {
                {"root", required_argument, NULL, O_ROOT},         {"listen", required_argument, NULL, O_LISTEN},
                {"interval", required_argument, NULL, O_INTERVAL}, {"clean-period", required_argument, NULL, O_CLEAN},
                {"config", required_argument, NULL, O_CONFIG},     {"web-config", required_argument, NULL, O_WEB},
                {"libvirt", required_argument, NULL, O_LIBVIRT},   {"max-connections", required_argument, NULL, O_MAX},
                {"timeout", required_argument, NULL, O_TIMEOUT},   {"request-limit", required_argument, NULL, O_LIMIT},
                {"verbose", no_argument, NULL, 'v'},               {"version", no_argument, NULL, O_VERSION},
                {"help", no_argument, NULL, O_HELP},               {},
        };
        int o;
        uint32_t u;
        struct sockaddr_storage ss;
        socklen_t len;
        bool lo;
        opterr = 0;
        while ((o = getopt_long(argc, argv, ":v", opts, NULL)) >= 0) {
                switch (o) {
                case O_ROOT:
                        a->root = optarg;
                        break;
                case O_CONFIG:
                        a->config = optarg;
                        break;
                case O_LISTEN:
                        if (parse_listen(optarg, &ss, &len, &lo) < 0)
                                return usage("--listen: '%s' is not a numeric ADDR:PORT (127.0.0.1:9835, [::1]:9835)", optarg);
                        a->over.listen = optarg;
                        a->set_listen = true;
                        break;
                case O_INTERVAL:
                case O_CLEAN:
                        if (parse_seconds(optarg, o == O_INTERVAL ? &a->over.interval_usec : &a->over.clean_usec) < 0)
                                return usage("'%s' is not a number of seconds (0.01 or more)", optarg);
                        *(o == O_INTERVAL ? &a->set_interval : &a->set_clean) = true;
                        break;
                case O_WEB:
                        a->over.web_config = optarg;
                        a->set_web = true;
                        break;
                case O_LIBVIRT:
                        a->over.libvirt = optarg;
                        a->set_libvirt = true;
                        break;
                case O_MAX:
                case O_TIMEOUT:
                case O_LIMIT:
                        if (parse_u32(optarg, 10, &u) < 0 || u == 0 || u > 1u << 24 || (o == O_LIMIT && u < 1024))
                                return usage("'%s' is not a positive number in range", optarg);
                        if (o == O_MAX)
                                a->over.max_connections = u, a->set_max = true;
                        else if (o == O_TIMEOUT)
                                a->over.timeout_sec = u, a->set_timeout = true;
                        else
                                a->over.request_limit = u, a->set_limit = true;
                        break;
                case 'v':
                        log_set_max_level(LOG_LEVEL_DEBUG);
                        break;
                case O_VERSION:
                        printf("gpuvirtd %s\n", GPUVIRT_VERSION);
                        return -1;
                case O_HELP:
                        help();
                        return -1;
                case ':':
                        return usage("option '%s' needs a value", argv[optind - 1]);
                default:
                        return usage("unknown option '%s'", argv[optind - 1]);
                }
        }
        if (optind < argc)
                return usage("unexpected argument '%s'", argv[optind]);
        return 0;
}

int main(int argc, char **argv) {
        /* simulated roots (the daemon's demo and test bed) are the simulator's backend */
        sim_backend_register();
        /* one malloc arena for the three threads: glibc would give the collector and the HTTP thread one each
         * (64 MiB reserved, partly resident, never shared), for allocations that never contend */
        (void)mallopt(M_ARENA_MAX, 1);
        Args a = {};
        log_set_max_level(LOG_LEVEL_INFO);
        int r = parse_args(argc, argv, &a);
        if (r)
                return r < 0 ? 0 : r;

        _cleanup_free_ char *err = NULL;
        _cleanup_(gv_error_done) GvError gerr = {};
        DaemonConfig cfg;
        r = build_config(&a, &cfg, &gerr);
        if (r < 0) {
                log_error("%s", strna(gv_error_message(&gerr) ?: errno_message(r)));
                return 1;
        }
        WebConfig web = {};
        if (cfg.web_config && (r = web_config_load(cfg.web_config, &web, &gerr)) < 0) {
                log_error("%s", strna(gv_error_message(&gerr) ?: errno_message(r)));
                daemon_config_done(&cfg);
                return 1;
        }

        /* every thread started from here on inherits the blocked signals: only sigtimedwait() below sees them */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);

        _cleanup_root_free_ Root *root = NULL;
        r = root_open(a.root, 0, &root);
        if (r < 0) {
                log_error_errno(r, "Cannot open the host root %s: %m", a.root ?: "(GPUVIRT_ROOT or /)");
                goto out;
        }
        if (root_writable(root)) {
                /* run/gpuvirt: created private and checked as the host lock's directory, where the state file goes */
                int fd = root_lock(root, 30000, &gerr);
                if (fd < 0) {
                        log_error("Cannot use %s/" ROOT_LOCK_DIR ": %s", root_dir(root), strna(gv_error_message(&gerr)));
                        r = fd;
                        goto out;
                }
                close(fd);
        }

        SnapshotStore store;
        snapshot_store_init(&store);
        Collector *col = NULL;
        HttpServer *http = NULL;
        r = collector_start(root, &cfg, &store, &col);
        if (r < 0) {
                log_error_errno(r, "The first collection failed: %m");
                goto out_store;
        }
        r = http_start(&cfg, &web, &store, &http, &err);
        if (r < 0) {
                log_error("%s", err ?: errno_message(r));
                goto out_collector;
        }
        log_info("gpuvirtd %s: %s host %s, %u units, serving http%s://%s/metrics every %.2fs", GPUVIRT_VERSION,
                 root_kind_to_string(root_kind(root)), root_dir(root), collector_units(col), web.cert_pem ? "s" : "",
                 cfg.listen, (double)cfg.interval_usec / 1e6);
        sd_notifyf(0, "READY=1\nSTATUS=Serving %u units on %s", collector_units(col), cfg.listen);

        uint64_t wd_usec = 0;
        if (sd_watchdog_enabled(0, &wd_usec) <= 0)
                wd_usec = 0;
        for (;;) {
                uint64_t wait = wd_usec ? wd_usec / 2 : 5000000;
                struct timespec ts = {.tv_sec = (time_t)(wait / 1000000), .tv_nsec = (long)(wait % 1000000) * 1000};
                siginfo_t si;
                int sig = sigtimedwait(&mask, &si, &ts);
                if (sig == SIGTERM || sig == SIGINT) {
                        log_info("Stopping on %s.", sig == SIGTERM ? "SIGTERM" : "SIGINT");
                        sd_notify(0, "STOPPING=1");
                        break;
                }
                if (sig == SIGHUP) {
                        sd_notify(0, "RELOADING=1");
                        DaemonConfig n;
                        _cleanup_(gv_error_done) GvError e = {};
                        if (build_config(&a, &n, &e) < 0)
                                log_error("Reload refused, keeping the running settings: %s",
                                          strna(gv_error_message(&e)));
                        else {
                                if (!streq(n.listen, cfg.listen) || n.max_connections != cfg.max_connections ||
                                    n.timeout_sec != cfg.timeout_sec || n.request_limit != cfg.request_limit)
                                        log_notice("Reload: listen and connection limits take effect on restart.");
                                if (collector_reload(col, &n) < 0)
                                        log_error("Reload failed: out of memory");
                                else
                                        log_info("Reloaded: interval %.2fs, clean period %.0fs; rescanning the host.",
                                                 (double)n.interval_usec / 1e6, (double)n.clean_usec / 1e6);
                                daemon_config_done(&n);
                        }
                        sd_notifyf(0, "READY=1\nSTATUS=Serving %u units on %s", collector_units(col), cfg.listen);
                        continue;
                }
                /* the watchdog: alive only while the collector keeps cycling */
                uint64_t last = collector_last_cycle(col), now = now_usec(CLOCK_MONOTONIC);
                uint64_t limit = 3 * cfg.interval_usec + 60000000ull;
                if (wd_usec && now - last < limit)
                        sd_notify(0, "WATCHDOG=1");
                else if (wd_usec)
                        log_warning("The collector has not finished a cycle for %.0fs: not feeding the watchdog.",
                                    (double)(now - last) / 1e6);
        }
        r = 0;
        http_stop(http);
out_collector:
        collector_stop(col);
out_store:
        snapshot_store_done(&store);
out:
        web_config_done(&web);
        daemon_config_done(&cfg);
        return r < 0 ? 1 : 0;
}
