/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <stdarg.h>

#include "macro.h"

/* Library code logs at debug only; programs log once at the call site (systemd's rule). */
enum {
        LOG_LEVEL_ERROR = 3,
        LOG_LEVEL_WARNING = 4,
        LOG_LEVEL_NOTICE = 5,
        LOG_LEVEL_INFO = 6,
        LOG_LEVEL_DEBUG = 7,
};

void log_set_max_level(int level);
int log_get_max_level(void);
/* Sink for messages; NULL restores stderr. Tests use it to capture what was logged. */
typedef void (*log_sink_t)(int level, const char *msg, void *userdata);
void log_set_sink(log_sink_t sink, void *userdata);

/* Logs and returns -abs(error) (or 0 when error is 0). %m in format expands to strerror(error). */
int log_internal(int level, int error, const char *format, ...) _printf_(3, 4);

#define log_debug(...)   log_internal(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)
#define log_info(...)    log_internal(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_notice(...)  log_internal(LOG_LEVEL_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_internal(LOG_LEVEL_WARNING, 0, __VA_ARGS__)
#define log_error(...)   log_internal(LOG_LEVEL_ERROR, 0, __VA_ARGS__)

#define log_debug_errno(e, ...)   log_internal(LOG_LEVEL_DEBUG, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_internal(LOG_LEVEL_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...)   log_internal(LOG_LEVEL_ERROR, (e), __VA_ARGS__)
