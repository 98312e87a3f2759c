/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static int max_level = LOG_LEVEL_NOTICE;
static log_sink_t sink;
static void *sink_userdata;

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

void log_set_sink(log_sink_t s, void *userdata) {
        sink = s;
        sink_userdata = userdata;
}

int log_internal(int level, int error, const char *format, ...) {
        int e = error < 0 ? -error : error;

        if (level > max_level && !sink)
                return -e;

        char buf[2048];
        va_list ap;
        va_start(ap, format);
        /* %m must render the passed error, not whatever errno happens to hold. */
        errno = e;
        vsnprintf(buf, sizeof buf, format, ap);
        va_end(ap);

        if (sink)
                sink(level, buf, sink_userdata);
        if (level <= max_level) {
                fputs(level == LOG_LEVEL_DEBUG ? "debug: " : level == LOG_LEVEL_WARNING ? "warning: " :
                      level == LOG_LEVEL_ERROR ? "error: " : "", stderr);
                fputs(buf, stderr);
                fputc('\n', stderr);
        }
        return -e;
}
