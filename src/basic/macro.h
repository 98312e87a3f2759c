/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f)     __attribute__((cleanup(f)))
#define _unused_         __attribute__((unused))
#define _printf_(a, b)   __attribute__((format(printf, a, b)))
#define _noreturn_       __attribute__((noreturn))
#define _pure_           __attribute__((pure))
#define _warn_unused_    __attribute__((warn_unused_result))

#define ELEMENTSOF(x)    (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b)        ((a) < (b) ? (a) : (b))
#define MAX(a, b)        ((a) > (b) ? (a) : (b))

#define streq(a, b)      (strcmp((a), (b)) == 0)
#define strneq(a, b, n)  (strncmp((a), (b), (n)) == 0)
#define isempty(s)       (!(s) || (s)[0] == '\0')
#define strna(s)         ((s) ?: "n/a")

/* Take ownership of a pointer: return it and clear the variable, so _cleanup_ does not free it. */
#define TAKE_PTR(p)                                                                                           \
        ({                                                                                                    \
                __typeof__(p) _p = (p);                                                                       \
                (p) = NULL;                                                                                   \
                _p;                                                                                           \
        })
#define TAKE_FD(fd)                                                                                           \
        ({                                                                                                    \
                int _fd = (fd);                                                                               \
                (fd) = -EBADF;                                                                                \
                _fd;                                                                                          \
        })

static inline void freep(void *p) {
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

#include <stdio.h>
static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

#include <dirent.h>
static inline void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}
#define _cleanup_closedir_ _cleanup_(closedirp)

/* Declare a freep-style helper for a type with a free function returning NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                               \
        static inline void func##p(type *p) {                                                                 \
                if (*p)                                                                                       \
                        func(*p);                                                                             \
        }

/* -errno helpers: a negative errno stays as it is, errno is turned negative. */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}

static inline const char *startswith(const char *s, const char *prefix) {
        size_t l = strlen(prefix);
        return strncmp(s, prefix, l) == 0 ? s + l : NULL;
}

static inline bool endswith(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);
        return a >= b && memcmp(s + a - b, suffix, b) == 0;
}
