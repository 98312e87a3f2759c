/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* In-process timing of the inventory path: scan + JSON model of every GPU, and the readiness check,
 * on a simulated host. Prints the median and spread over N runs. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "basic/fileio.h"
#include "core/host/check.h"
#include "core/host/inventory.h"
#include "core/host/names.h"
#include "core/host/pci.h"
#include "core/host/root.h"
#include "sim/sim.h"

#include "bench-time.h"

static void report(const char *what, double *t, int n) {
        qsort(t, (size_t)n, sizeof *t, cmp_d);
        printf("%-34s median %8.1f us   p10 %8.1f us   p90 %8.1f us   (n=%d)\n", what, t[n / 2], t[n / 10],
               t[n * 9 / 10], n);
}

int main(int argc, char **argv) {
        if (argc < 2) {
                fprintf(stderr, "usage: bench-inventory ROOT [RUNS]\n");
                return 2;
        }
        int runs = argc > 2 ? atoi(argv[2]) : 200;
        if (runs < 10)
                runs = 10;
        sim_backend_register();
        Root *root;
        if (root_open(argv[1], 0, &root) < 0) {
                fprintf(stderr, "cannot open %s\n", argv[1]);
                return 1;
        }
        double *scan = calloc((size_t)runs, sizeof(double)), *inv = calloc((size_t)runs, sizeof(double)),
               *chk = calloc((size_t)runs, sizeof(double));
        PciNames *names = NULL;
        (void)pci_names_new(&names);
        size_t ndev = 0, ngpu = 0;
        for (int i = 0; i < runs; i++) {
                double t0 = now_us();
                PciHost *h;
                if (pci_host_scan(root, &h) < 0)
                        return 1;
                double t1 = now_us();
                json_object *list;
                if (inventory_list(h, names, false, &list) < 0)
                        return 1;
                const char *s = json_object_to_json_string(list);
                (void)s;
                double t2 = now_us();
                CheckReport *rep;
                if (check_run(h, NULL, &rep) < 0)
                        return 1;
                double t3 = now_us();
                ndev = h->n_devices;
                ngpu = json_object_array_length(list);
                json_object_put(list);
                check_report_free(rep);
                pci_host_free(h);
                scan[i] = t1 - t0;
                inv[i] = t2 - t0;
                chk[i] = t3 - t2;
        }
        printf("host %s: %zu PCI devices, %zu GPUs\n", argv[1], ndev, ngpu);
        report("scan (sysfs read)", scan, runs);
        report("scan + inventory JSON (list)", inv, runs);
        report("readiness check (after scan)", chk, runs);
        pci_names_free(names);
        root_free(root);
        free(scan);
        free(inv);
        free(chk);
        return 0;
}
