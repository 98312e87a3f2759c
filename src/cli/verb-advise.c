/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gpuvirt advise: one mode per GPU for a workload (core/advise). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "cli/common.h"
#include "cli/output.h"
#include "core/advise/advise.h"
#include "core/host/inventory.h"
#include "core/host/names.h"
#include "core/mig/nvml.h"
#include "core/fleet/client.h"
#include "core/fleet/store.h"

typedef struct AdviseArgs {
        const char *workload, *tenants, *isolation, *memory, *output, *store;
        bool live_migration, fleet;
        char **devices;
        size_t n_devices;
        bool oom;
} AdviseArgs;

static void advise_opt(int c, const char *v, void *ud) {
        AdviseArgs *a = ud;
        switch (c) {
        case 'w':
                a->workload = v;
                break;
        case 't':
                a->tenants = v;
                break;
        case 'i':
                a->isolation = v;
                break;
        case 'm':
                a->memory = v;
                break;
        case 'o':
                a->output = v;
                break;
        case 'l':
                a->live_migration = true;
                break;
        case 'F':
                a->fleet = true;
                break;
        case 'S':
                a->store = v;
                break;
        case 'd': {
                char *s = strdup(v);
                if (!s || strv_push(&a->devices, &a->n_devices, s) < 0)
                        a->oom = true;
                break;
        }
        }
}

/* The length of an array that may be JSON null. */
static size_t alen(json_object *a) {
        return json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}

static int parse_count(const char *opt, const char *v, unsigned *ret) {
        uint32_t n;
        if (parse_u32(v, 10, &n) < 0 || n == 0 || n > 100000)
                return usage_error("advise: %s: expected a number from 1 to 100000, got '%s'", opt, v);
        *ret = n;
        return 0;
}

static void print_list(const char *label, json_object *arr) {
        for (size_t i = 0; i < alen(arr); i++)
                printf("  %-12s %s\n", i ? "" : label, json_object_get_string(json_object_array_get_idx(arr, i)));
}

static void print_modes(const char *label, json_object *arr) {
        for (size_t i = 0; i < alen(arr); i++) {
                json_object *o = json_object_array_get_idx(arr, i);
                printf("  %-12s %-12s %s\n", i ? "" : label, json_text(json_object_object_get(o, "mode")),
                       json_text(json_object_object_get(o, "reason")));
        }
}

static void print_text(json_object *a) {
        json_object *req = json_object_object_get(a, "request");
        json_object *t = json_object_object_get(a, "tenants");
        json_object *asked = json_object_object_get(t, "asked");
        printf("Advice for %s workloads", json_text(json_object_object_get(req, "workload")));
        if (asked)
                printf(", %s tenant(s)", json_text(asked));
        printf(": %s tenant(s) served\n", json_text(json_object_object_get(t, "served")));
        json_object *gpus = json_object_object_get(a, "gpus");
        for (size_t i = 0; i < alen(gpus); i++) {
                json_object *g = json_object_array_get_idx(gpus, i);
                json_object *l = json_object_object_get(g, "layout");
                json_object *host = json_object_object_get(g, "host");
                printf("\nGPU %s%s%s  %s\n", host ? json_text(host) : "", host ? " " : "",
                       json_text(json_object_object_get(g, "address")), json_text(json_object_object_get(g, "name")));
                _cleanup_free_ char *lay = NULL;
                if (l) {
                        json_object *un = json_object_object_get(l, "unit_name");
                        lay = strdup_printf("%s x %s%s%s%s", json_text(json_object_object_get(l, "count")),
                                            json_text(json_object_object_get(l, "unit")), un ? " (" : "",
                                            un ? json_text(un) : "", un ? ")" : "");
                }
                printf("  %-12s %s%s%s\n", "mode", json_text(json_object_object_get(g, "mode")), lay ? ": " : "",
                       lay ?: "");
                if (json_object_get_boolean(json_object_object_get(g, "in_use")))
                        printf("  %-12s in use in %s mode: only the units free in it now are counted\n", "pool",
                               json_text(json_object_object_get(g, "mode_now")));
                print_list("why", json_object_object_get(g, "reasons"));
                print_list("trade-offs", json_object_object_get(g, "tradeoffs"));
                print_modes("ruled out", json_object_object_get(g, "ruled_out"));
                print_modes("not chosen", json_object_object_get(g, "excluded"));
        }
        json_object *lo = json_object_object_get(a, "left_out");
        if (alen(lo))
                putchar('\n');
        print_list("left out", lo);
        if (json_object_object_get(a, "host_decides"))
                printf("\nNote: %s.\n", json_text(json_object_object_get(a, "host_decides")));
        json_object *w = json_object_object_get(a, "warnings");
        if (alen(w))
                putchar('\n');
        for (size_t i = 0; i < alen(w); i++)
                printf("Warning: %s\n", json_object_get_string(json_object_array_get_idx(w, i)));
}

/* MIG state and profiles from NVML where it is available (never required). */
static void read_mig(Root *root, json_object *inv, MigGpu **ret, size_t *ret_n) {
        _cleanup_nvml_close_ Nvml *n = NULL;
        *ret = NULL;
        *ret_n = 0;
        if (nvml_open(root, &n, NULL) < 0 || mig_gpus_read(n, ret, ret_n) < 0)
                return;
        inventory_add_mig(inv, *ret, *ret_n);
}

/* advise --fleet: the pool as the store holds it (read only: this host is not registered by it). */
static int advise_over_fleet(const AdviseArgs *a, const AdviseRequest *req) {
        if (a->n_devices > 0 || a->output)
                return usage_error("advise --fleet: --device and -o are for one host (run gpuvirt advise on it)");
        _cleanup_root_free_ Root *root = NULL;
        int r = open_root(0, &root);
        if (r)
                return r;
        _cleanup_store_free_ Store *s = NULL;
        if ((r = open_fleet_store(root, a->store, &s)) < 0)
                return r;
        _cleanup_fleet_free_ Fleet *f = NULL;
        size_t damaged = 0;
        _cleanup_(gv_error_done) GvError lerr = {};
        if ((r = fleet_load(s, FLEET_FRAG, &f, &damaged, &lerr)) < 0)
                return log_error("%s", gv_error_message(&lerr)), failure_errno(r);
        if (damaged)
                log_warning("Skipped %zu damaged record(s) in the fleet store.", damaged);
        if (fleet_n_gpus(f) == 0)
                return log_error("advise --fleet: the pool has no GPUs (no host has published any: gpuvirt fleet hosts)."),
                       -ENODATA;
        json_object *adv = NULL;
        if ((r = advise_fleet(f, req, &adv)) < 0)
                return log_error_errno(r, "Cannot advise: %m"), failure_errno(r);
        if (arg.json)
                json_print(adv, stdout);
        else
                print_text(adv);
        json_object_put(adv);
        return 0;
}

int verb_advise(int argc, char **argv) {
        static const struct option opts[] = {
                {"workload", required_argument, NULL, 'w'},
                {"tenants", required_argument, NULL, 't'},
                {"live-migration", no_argument, NULL, 'l'},
                {"isolation", required_argument, NULL, 'i'},
                {"memory-per-tenant", required_argument, NULL, 'm'},
                {"device", required_argument, NULL, 'd'},
                {"fleet", no_argument, NULL, 'F'},
                {"store", required_argument, NULL, 'S'},
                {"output", required_argument, NULL, 'o'},
                {},
        };
        AdviseArgs a = {};
        _cleanup_strv_free_ char **devices_owned = NULL;
        int k = parse_verb_options(argc, argv, opts, "o:", advise_opt, &a);
        devices_owned = a.devices;
        if (a.oom)
                return log_oom();
        if (k < 0)
                return -EINVAL; /* parse_verb_options() said why */
        if (k != argc)
                return usage_error("advise: unexpected argument '%s' (devices go with --device BDF)", argv[k]);
        AdviseRequest req = {.isolation = _ISOLATION_INVALID, .live_migration = a.live_migration};
        if (!a.workload)
                return usage_error("advise: --workload training|inference|vdi|graphics|batch is required");
        if ((req.workload = workload_from_string(a.workload)) < 0)
                return usage_error("advise: unknown workload '%s' (training, inference, vdi, graphics, batch)",
                                   a.workload);
        if (a.isolation && (req.isolation = isolation_from_string(a.isolation)) < 0)
                return usage_error("advise: unknown isolation '%s' (physical, hardware, driver)", a.isolation);
        int r;
        if (a.tenants && (r = parse_count("--tenants", a.tenants, &req.tenants)))
                return r;
        if (a.memory && (r = parse_count("--memory-per-tenant", a.memory, &req.memory_gb)))
                return r;
        if (a.store && !a.fleet)
                return usage_error("advise: --store is for --fleet");
        if (a.fleet)
                return advise_over_fleet(&a, &req);

        _cleanup_root_free_ Root *root = NULL;
        _cleanup_pci_host_free_ PciHost *h = NULL;
        if ((r = open_root(0, &root)) || (r = scan(root, &h)))
                return r;
        _cleanup_strv_free_ char **devices = NULL;
        size_t nd = 0;
        for (size_t i = 0; i < a.n_devices; i++) {
                PciDevice *d;
                if ((r = lookup_device(h, a.devices[i], &d)))
                        return r;
                if (!inventory_is_gpu(d, false))
                        return log_error("advise: %s is not a GPU (a display-class physical function).", d->addr),
                               -EINVAL;
                char *s = strdup(d->addr);
                if (!s || strv_push(&devices, &nd, s) < 0)
                        return log_oom();
        }
        req.devices = devices;

        _cleanup_pci_names_free_ PciNames *names = NULL;
        (void)pci_names_new(&names);
        json_object *inv = NULL;
        if (inventory_list(h, names, false, &inv) < 0)
                return log_oom();
        _cleanup_free_ MigGpu *gpus = NULL;
        size_t ng = 0;
        read_mig(root, inv, &gpus, &ng);
        _cleanup_check_report_free_ CheckReport *rep = NULL;
        r = check_run(h, NULL, &rep);
        json_object *adv = NULL;
        if (r >= 0)
                r = advise_host(h, inv, rep, gpus, ng, &req, &adv);
        json_object_put(inv);
        if (r < 0)
                return log_error_errno(r, "Cannot advise: %m"), failure_errno(r);

        int rc = 0;
        if (a.output) {
                _cleanup_host_spec_free_ HostSpec *s = NULL;
                _cleanup_free_ char *yaml = NULL, *text = NULL;
                if (advise_host_spec(adv, &s) < 0 || !(yaml = host_spec_format(s)) ||
                    !(text = strdup_printf("# gpuvirt advise --workload %s%s%s: review it, then gpuvirt plan -f FILE and "
                                           "gpuvirt apply -f FILE\n%s",
                                           a.workload, a.tenants ? " --tenants " : "", a.tenants ?: "",
                                           /* host_spec_format's own first line names export */
                                           startswith(yaml, "#") ? strchrnul(yaml, '\n') + 1 : yaml)))
                        rc = log_oom();
                else if ((r = write_text(a.output, text)) < 0)
                        rc = (log_error_errno(r, "Cannot write %s: %m", a.output), failure_errno(r));
        }
        if (arg.json)
                json_print(adv, stdout);
        else
                print_text(adv);
        json_object_put(adv);
        return rc;
}
