/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gpuvirt-agent: runs inside a guest that was given a GPU (passthrough, vGPU, MIG-backed vGPU) and tells
 * the host what only the guest can see: it reads NVML with the same dlopen code as gpuvirt and writes one
 * JSON line per interval to the virtio-serial port org.gpuvirt.agent.0 (dev/virtio-ports/... under the
 * root), where gpuvirtd on the host reads it. A line that cannot be written (no reader on the host side)
 * is dropped, never queued: the next one is current again.
 *
 * {"agent":"gpuvirt-agent","version":1,"time":"...","nvml":true,"driver_version":"...",
 *  "gpus":[{"index":0,"uuid":"GPU-...","name":"...","pci_bus_id":"00000000:07:00.0", <telemetry>}]}
 * or, without NVML: {"agent":"gpuvirt-agent","version":1,"time":"...","nvml":false,"error":"..."}
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "config.h"
#include "core/health/health.h"
#include "core/health/telemetry.h"
#include "core/mig/nvml.h"
#include "core/host/root.h"
#include "sim/sim.h"

#define AGENT_PORT "dev/virtio-ports/org.gpuvirt.agent.0"

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
        stop = 1;
}

/* One report line (with its newline). */
static char *report(Nvml *n, const char *nvml_error) {
        json_object *o = json_object_new_object();
        char t[32];
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        health_format_time((uint64_t)ts.tv_sec * 1000000u, t);
        json_object_object_add(o, "agent", json_object_new_string("gpuvirt-agent"));
        json_object_object_add(o, "version", json_object_new_int(1));
        json_object_object_add(o, "time", json_object_new_string(t));
        json_object_object_add(o, "nvml", json_object_new_boolean(n != NULL));
        if (!n)
                json_object_object_add(o, "error", json_object_new_string(nvml_error ?: "NVML not available"));
        else {
                char ver[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE] = "";
                if (n->f.nvmlSystemGetDriverVersion && n->f.nvmlSystemGetDriverVersion(ver, sizeof ver) == NVML_SUCCESS)
                        json_object_object_add(o, "driver_version", json_object_new_string(ver));
                json_object *gpus = json_object_new_array();
                unsigned count = 0;
                nvmlReturn_t e = n->f.nvmlDeviceGetCount_v2(&count);
                if (e != NVML_SUCCESS)
                        json_object_object_add(o, "error", json_object_new_string(nvml_error_name(e)));
                for (unsigned i = 0; e == NVML_SUCCESS && i < count; i++) {
                        nvmlDevice_t dev;
                        json_object *g = NULL;
                        nvmlReturn_t de = n->f.nvmlDeviceGetHandleByIndex_v2(i, &dev);
                        if (de == NVML_SUCCESS) {
                                GpuTelemetry tm;
                                nvmlReturn_t te;
                                gpu_telemetry_read(n, dev, &tm, &te, NULL);
                                g = gpu_telemetry_json(&tm);
                                char uuid[NVML_DEVICE_UUID_BUFFER_SIZE], name[NVML_DEVICE_NAME_BUFFER_SIZE];
                                nvmlPciInfo_t pci;
                                if (n->f.nvmlDeviceGetUUID(dev, uuid, sizeof uuid) == NVML_SUCCESS)
                                        json_object_object_add(g, "uuid", json_object_new_string(uuid));
                                if (n->f.nvmlDeviceGetName(dev, name, sizeof name) == NVML_SUCCESS)
                                        json_object_object_add(g, "name", json_object_new_string(name));
                                if (n->f.nvmlDeviceGetPciInfo_v3(dev, &pci) == NVML_SUCCESS)
                                        json_object_object_add(g, "pci_bus_id", json_object_new_string(pci.busId));
                                if (te != NVML_SUCCESS)
                                        json_object_object_add(g, "error", json_object_new_string(nvml_error_name(te)));
                        } else {
                                g = json_object_new_object();
                                json_object_object_add(g, "error", json_object_new_string(nvml_error_name(de)));
                        }
                        json_object_object_add(g, "index", json_object_new_int((int)i));
                        json_object_array_add(gpus, g);
                }
                json_object_object_add(o, "gpus", gpus);
        }
        char *line = strdup_printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        return line;
}

int main(int argc, char **argv) {
        /* a simulated root (tests, the rig's nested guest) is the simulator's backend: its fake NVML */
        sim_backend_register();
        static const struct option opts[] = {
                {"root", required_argument, NULL, 'r'}, {"interval", required_argument, NULL, 'i'},
                {"once", no_argument, NULL, '1'},       {"stdout", no_argument, NULL, 's'},
                {"help", no_argument, NULL, 'h'},       {"version", no_argument, NULL, 'V'},
                {"verbose", no_argument, NULL, 'v'},    {},
        };
        const char *rootdir = NULL;
        double interval = 10;
        bool once = false, to_stdout = false;
        int o;
        while ((o = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                char *end = NULL;
                switch (o) {
                case 'r':
                        rootdir = optarg;
                        break;
                case 'i':
                        interval = strtod(optarg, &end);
                        if (!end || *end || !(interval >= 0.1 && interval <= 86400)) {
                                fprintf(stderr, "gpuvirt-agent: '%s' is not a number of seconds (0.1 or more)\n", optarg);
                                return 2;
                        }
                        break;
                case '1':
                        once = true;
                        break;
                case 's':
                        to_stdout = true;
                        break;
                case 'v':
                        log_set_max_level(LOG_LEVEL_DEBUG);
                        break;
                case 'h':
                        printf("Usage: gpuvirt-agent [--root DIR] [--interval SEC] [--once] [--stdout] [--verbose]\n\n"
                               "Inside a guest: one JSON line of NVML telemetry per interval (default 10 s) to the\n"
                               "virtio-serial port /" AGENT_PORT " (gpuvirtd reads it on the host);\n"
                               "--stdout prints the lines instead, --once writes one and exits,\n"
                               "--verbose logs each line's fate to standard error.\n");
                        return 0;
                case 'V':
                        printf("gpuvirt-agent %s\n", GPUVIRT_VERSION);
                        return 0;
                default:
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "gpuvirt-agent: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }
        struct sigaction sa = {.sa_handler = on_signal};
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);

        _cleanup_root_free_ Root *root = NULL;
        int r = root_open(rootdir, 0, &root);
        if (r < 0) {
                log_error_errno(r, "Cannot open the root %s: %m", rootdir ?: "/");
                return 1;
        }
        _cleanup_free_ char *port = root_path(root, AGENT_PORT);
        if (!port)
                return 1;
        Nvml *n = NULL;
        _cleanup_free_ char *nerr = NULL;
        int fd = to_stdout ? STDOUT_FILENO : -1;
        bool warned = false;
        int rc = 0;
        while (!stop) {
                if (!n) {
                        free(nerr);
                        nerr = NULL;
                        _cleanup_(gv_error_done) GvError e = {};
                        if (nvml_open(root, &n, &e) < 0) {
                                n = NULL;
                                nerr = gv_error_steal_message(&e);
                                log_debug("NVML: %s", nerr);
                        } else
                                log_debug("NVML loaded");
                }
                _cleanup_free_ char *line = report(n, nerr);
                if (fd < 0)
                        fd = open(port, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
                if (fd < 0) {
                        if (!warned)
                                log_warning_errno(errno, "Cannot open %s (no gpuvirt agent channel in this VM?): %m", port);
                        warned = true;
                        rc = 1;
                } else if (line) {
                        ssize_t k = write(fd, line, strlen(line));
                        if (k < 0)
                                log_debug_errno(errno, "A report of %zu bytes not written%s: %m", strlen(line),
                                                errno == EAGAIN ? " (nobody reads the host side)" : "");
                        else
                                log_debug("Wrote a report of %zd bytes", k);
                        if (k < 0 && fd == STDOUT_FILENO) {
                                rc = 1; /* nobody reads standard output any more */
                                break;
                        }
                        if (k < 0 && errno != EAGAIN) {
                                close(fd); /* the host side went away: reopen next time */
                                fd = -1;
                        }
                        rc = k == (ssize_t)strlen(line) ? 0 : 1;
                        warned = false;
                }
                if (once)
                        break;
                struct timespec ts = {(time_t)interval, (long)((interval - (double)(time_t)interval) * 1e9)};
                while (!stop && nanosleep(&ts, &ts) < 0 && errno == EINTR)
                        ;
        }
        if (fd >= 0 && fd != STDOUT_FILENO)
                close(fd);
        nvml_close(n);
        return rc;
}
