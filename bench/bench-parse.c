/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The parsers are linear in their input (issue 11: a mig-parted file of 20,000 labels took `plan` 8.7 s,
 * quadratic and once per GPU). Parses mig-parted files of N and 4N labels and host.yaml files of N and 4N
 * entries in memory and prints the time of each and the ratio 4N/N: about 4 for linear cost, 16 for
 * quadratic. The peer is the same parser on the smaller input, in the same run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/fileio.h"
#include "core/state/hostspec.h"
#include "core/mig/migparted.h"

static double now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static char *migparted_text(int n, size_t *len) {
        char *buf = NULL;
        FILE *f = open_memstream(&buf, len);
        fprintf(f, "version: v1\nmig-configs:\n");
        for (int i = 0; i < n; i++)
                fprintf(f, "  l%d:\n    - {devices: all, mig-enabled: true, mig-devices: {\"1g.5gb\": 7}}\n", i);
        fclose(f);
        return buf;
}

static char *host_text(int n, size_t *len) {
        char *buf = NULL;
        FILE *f = open_memstream(&buf, len);
        fprintf(f, "version: 1\ngpus:\n");
        for (int i = 0; i < n; i++) /* distinct addresses: every selector is compared */
                fprintf(f, "  - {select: \"%04x:%02x:%02x.0\", mode: host}\n", i >> 13, (i >> 5) & 0xff, i & 0x1f);
        fclose(f);
        return buf;
}

static double best_of(int reps, int kind, const char *text, size_t len) {
        double best = 1e18;
        for (int r = 0; r < reps; r++) {
                double t0 = now_us();
                if (kind == 0) {
                        MigParted *m = NULL;
                        GvError e = {};
                        if (migparted_parse_text("f", text, len, &m, &e) < 0)
                                fprintf(stderr, "%s\n", gv_error_message(&e)), exit(1);
                        migparted_free(m);
                } else {
                        HostSpec *s = NULL;
                        GvError e = {};
                        if (host_spec_parse("f", text, len, &s, &e) < 0)
                                fprintf(stderr, "%s\n", gv_error_message(&e)), exit(1);
                        host_spec_free(s);
                }
                double t = now_us() - t0;
                best = t < best ? t : best;
        }
        return best;
}

int main(int argc, char **argv) {
        int n = argc > 1 ? atoi(argv[1]) : 3000;
        static const char *const names[] = {"mig-parted labels", "host.yaml entries"};
        for (int kind = 0; kind < 2; kind++) {
                size_t l1, l4;
                char *t1 = kind ? host_text(n, &l1) : migparted_text(n, &l1);
                char *t4 = kind ? host_text(4 * n, &l4) : migparted_text(4 * n, &l4);
                double a = best_of(5, kind, t1, l1), b = best_of(5, kind, t4, l4);
                printf("parse %-18s %6d: %8.2f ms (%zu KiB)   %6d: %8.2f ms (%zu KiB)   ratio 4N/N %.2f (linear 4, quadratic 16)\n",
                       names[kind], n, a / 1000, l1 / 1024, 4 * n, b / 1000, l4 / 1024, b / a);
                free(t1);
                free(t4);
        }
        return 0;
}
