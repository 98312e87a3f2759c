/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once
/* What the benchmarks time with: a monotonic clock in microseconds and the order of a qsort of timings. */
#include <time.h>

static inline double now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static inline int cmp_d(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}
