/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"

char *strip(char *s) {
        size_t l = strlen(s);
        while (l > 0 && isspace((unsigned char)s[l - 1]))
                s[--l] = '\0';
        char *p = s;
        while (isspace((unsigned char)*p))
                p++;
        if (p != s)
                memmove(s, p, strlen(p) + 1);
        return s;
}

static int read_fd(int fd, size_t max, bool short_read_is_eof, void **ret, size_t *ret_size);

int read_full(const char *path, size_t max, void **ret, size_t *ret_size) {
        return read_full_at(AT_FDCWD, path, max, ret, ret_size);
}

int read_full_at(int dirfd, const char *name, size_t max, void **ret, size_t *ret_size) {
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        return read_fd(fd, max, false, ret, ret_size);
}

/* One read(), again when a signal interrupted it: bytes read, 0 at the end, or -errno. */
static ssize_t read_once(int fd, void *buf, size_t size) {
        for (;;) {
                ssize_t k = read(fd, buf, size);
                if (k >= 0 || errno != EINTR)
                        return k >= 0 ? k : negative_errno();
        }
}

static int read_fd(int fd, size_t max, bool short_read_is_eof, void **ret, size_t *ret_size) {
        /* A large max is the room a file may need, not what it holds (a 16 MiB limit for a 1 KiB file): the
         * buffer starts at 64 KiB and doubles as the file fills it, up to max + 1. */
        size_t cap = MIN(max, (size_t)65535) + 1;
        _cleanup_free_ char *buf = malloc(cap);
        if (!buf)
                return -ENOMEM;
        size_t n = 0;
        for (;;) {
                if (n == cap) { /* n <= max here: cap < max + 1 */
                        size_t ncap = cap > (max + 1) / 2 ? max + 1 : cap * 2;
                        char *nb = realloc(buf, ncap);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                        cap = ncap;
                }
                size_t asked = cap - n;
                ssize_t k = read_once(fd, buf + n, asked);
                if (k < 0)
                        return (int)k;
                if (k == 0)
                        break;
                n += (size_t)k;
                if (n > max)
                        return -EFBIG;
                /* A sysfs attribute is one page, shown by one read(): a short read is its end, so the read()
                 * that would return 0 is spared (procfs seq_files may return less, they are read to EOF). */
                if (short_read_is_eof && (size_t)k < asked)
                        break;
        }
        buf[n] = '\0';
        *ret = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = n;
        return 0;
}

int read_full_fd(int fd, size_t max, void **ret, size_t *ret_size) {
        return read_fd(fd, max, false, ret, ret_size);
}

int read_head_at(int dirfd, const char *name, void *buf, size_t size, size_t *ret_n) {
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        size_t n = 0;
        while (n < size) {
                ssize_t k = read_once(fd, (char *)buf + n, size - n);
                if (k < 0)
                        return (int)k;
                if (k == 0)
                        break;
                n += (size_t)k;
        }
        *ret_n = n;
        return 0;
}

int read_attr(const char *path, char **ret) {
        return read_attr_at(AT_FDCWD, path, ret);
}

int read_attr_at(int dirfd, const char *name, char **ret) {
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        void *buf;
        int r = read_fd(fd, ATTR_SIZE_MAX, true, &buf, NULL);
        if (r < 0)
                return r;
        *ret = strip(buf);
        return 0;
}

bool exists_at(int dirfd, const char *name) {
        return faccessat(dirfd, name, F_OK, AT_EACCESS) == 0;
}

int dir_has_at(int dirfd, const char *const *names, size_t n, uint64_t *ret, uint64_t *ret_links) {
        assert(n <= 64);
        union {
                struct dirent64 de; /* aligned as getdents64() writes them */
                char bytes[8192];
        } buf;
        uint64_t has = 0, links = 0;
        for (;;) {
                ssize_t k = getdents64(dirfd, &buf, sizeof buf);
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        break;
                for (ssize_t off = 0; off < k;) {
                        const struct dirent64 *de = (const struct dirent64 *)(buf.bytes + off);
                        for (size_t i = 0; i < n; i++)
                                if (streq(de->d_name, names[i])) {
                                        has |= UINT64_C(1) << i;
                                        if (de->d_type == DT_LNK || de->d_type == DT_UNKNOWN)
                                                links |= UINT64_C(1) << i;
                                }
                        off += de->d_reclen;
                }
        }
        *ret = has;
        if (ret_links)
                *ret_links = links;
        return 0;
}

int parse_u32(const char *s, int base, uint32_t *ret) {
        if (isempty(s) || isspace((unsigned char)*s) || *s == '-' || *s == '+')
                return -EINVAL;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, base);
        if (errno != 0)
                return -errno;
        if (*end != '\0')
                return -EINVAL;
        if (v > UINT32_MAX)
                return -ERANGE;
        *ret = (uint32_t)v;
        return 0;
}

int parse_int(const char *s, int *ret) {
        if (isempty(s) || isspace((unsigned char)*s))
                return -EINVAL;
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno != 0)
                return -errno;
        if (*end != '\0')
                return -EINVAL;
        if (v < INT_MIN || v > INT_MAX)
                return -ERANGE;
        *ret = (int)v;
        return 0;
}

int read_attr_u32(const char *path, int base, uint32_t *ret) {
        _cleanup_free_ char *s = NULL;
        int r = read_attr(path, &s);
        if (r < 0)
                return r;
        return parse_u32(s, base, ret);
}

int read_attr_int(const char *path, int *ret) {
        _cleanup_free_ char *s = NULL;
        int r = read_attr(path, &s);
        if (r < 0)
                return r;
        return parse_int(s, ret);
}

int write_file(const char *path, const char *data, size_t len, int flags, mode_t mode) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY | flags, mode);
        if (fd < 0)
                return negative_errno();
        ssize_t k = write(fd, data, len);
        if (k < 0)
                return negative_errno();
        if ((size_t)k != len)
                return -EIO;
        if (close(TAKE_FD(fd)) < 0)
                return negative_errno();
        return 0;
}

int write_text(const char *path, const char *text) {
        return write_file(path, text, strlen(text), O_CREAT | O_TRUNC, 0644);
}

int mkdir_p(const char *path, mode_t mode) {
        /* the directory first: most calls find it, or only its last components, missing */
        if (mkdir(path, mode) == 0 || errno == EEXIST)
                return 0;
        if (errno != ENOENT)
                return negative_errno();
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        /* back up to the deepest ancestor that exists, then down again */
        char *s = p + strlen(p);
        for (;;) {
                do
                        s--;
                while (s > p && *s != '/');
                while (s > p && s[-1] == '/')
                        s--;
                if (s <= p) {
                        s = p;
                        break;
                }
                *s = '\0';
                int r = mkdir(p, mode) == 0 || errno == EEXIST ? 0 : -errno;
                *s = '/';
                if (r == 0)
                        break;
                if (r != -ENOENT)
                        return r;
        }
        for (char *q = s + 1; *q; q++) {
                if (*q != '/' || q[-1] == '/')
                        continue;
                *q = '\0';
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return negative_errno();
                *q = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

int rm_rf(const char *path) {
        struct stat st;
        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : negative_errno();
        if (S_ISDIR(st.st_mode)) {
                _cleanup_strv_free_ char **l = NULL;
                int r = dir_list(path, &l);
                if (r < 0)
                        return r;
                for (char **e = l; *e; e++) {
                        _cleanup_free_ char *c = strdup_printf("%s/%s", path, *e);
                        if (!c)
                                return -ENOMEM;
                        r = rm_rf(c);
                        if (r < 0)
                                return r;
                }
                if (rmdir(path) < 0)
                        return negative_errno();
                return 0;
        }
        if (unlink(path) < 0)
                return negative_errno();
        return 0;
}

int readlink_base(const char *path, char **ret) {
        return readlink_base_at(AT_FDCWD, path, ret);
}

int readlink_base_at(int dirfd, const char *name, char **ret) {
        char buf[PATH_MAX];
        ssize_t k = readlinkat(dirfd, name, buf, sizeof buf - 1);
        if (k < 0)
                return negative_errno();
        buf[k] = '\0';
        const char *b = strrchr(buf, '/');
        char *s = strdup(b ? b + 1 : buf);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* Collapse "." and ".." in an absolute path, textually (sysfs links never point through other links). */
static char *path_normalize(const char *path) {
        size_t n = strlen(path);
        char *out = malloc(n + 2);
        if (!out)
                return NULL;
        size_t o = 0;
        const char *p = path;
        while (*p) {
                while (*p == '/')
                        p++;
                if (!*p)
                        break;
                const char *e = strchrnul(p, '/');
                size_t l = (size_t)(e - p);
                if (l == 1 && p[0] == '.') {
                        /* skip */
                } else if (l == 2 && p[0] == '.' && p[1] == '.') {
                        while (o > 0 && out[o - 1] != '/')
                                o--;
                        if (o > 0)
                                o--;
                } else {
                        out[o++] = '/';
                        memcpy(out + o, p, l);
                        o += l;
                }
                p = e;
        }
        if (o == 0)
                out[o++] = '/';
        out[o] = '\0';
        return out;
}

/* The link's target buf joined to the link's directory dir (dl bytes of it), normalized. */
static int link_join(const char *dir, int dl, const char *buf, char **ret) {
        _cleanup_free_ char *joined = buf[0] == '/' ? strdup(buf) : strdup_printf("%.*s/%s", dl, dir, buf);
        if (!joined)
                return -ENOMEM;
        char *n = path_normalize(joined);
        if (!n)
                return -ENOMEM;
        *ret = n;
        return 0;
}

int readlink_resolved_at(int dfd, const char *dir, const char *name, char **ret) {
        char buf[PATH_MAX];
        ssize_t k = readlinkat(dfd, name, buf, sizeof buf - 1);
        if (k < 0)
                return negative_errno();
        buf[k] = '\0';
        return link_join(dir, (int)strlen(dir), buf, ret);
}

int readlink_resolved(const char *path, char **ret) {
        char buf[PATH_MAX];
        ssize_t k = readlink(path, buf, sizeof buf - 1);
        if (k < 0)
                return negative_errno();
        buf[k] = '\0';
        const char *slash = strrchr(path, '/');
        return link_join(path, slash ? (int)(slash - path) : 0, buf, ret);
}

char *path_relative(const char *link, const char *target) {
        /* Common prefix of the link's directory and the target, in whole components. */
        const char *slash = strrchr(link, '/');
        size_t dl = slash ? (size_t)(slash - link) : 0;
        size_t i = 0, last = 0;
        while (i < dl && target[i] && link[i] == target[i]) {
                if (link[i] == '/')
                        last = i;
                i++;
        }
        if (i == dl && (target[i] == '/' || target[i] == '\0'))
                last = i;
        size_t ups = 0;
        for (size_t j = last; j < dl; j++)
                if (link[j] == '/')
                        ups++;
        const char *rest = target + last;
        while (*rest == '/')
                rest++;
        size_t len = ups * 3 + strlen(rest) + 1;
        char *out = malloc(len + 1);
        if (!out)
                return NULL;
        char *o = out;
        for (size_t j = 0; j < ups; j++) {
                memcpy(o, "../", 3);
                o += 3;
        }
        strcpy(o, rest);
        if (o != out && *rest == '\0')
                o[-1] = '\0';
        return out;
}

int symlink_relative(const char *target, const char *link) {
        _cleanup_free_ char *rel = path_relative(link, target);
        if (!rel)
                return -ENOMEM;
        if (unlink(link) < 0 && errno != ENOENT)
                return negative_errno();
        if (symlink(rel, link) < 0)
                return negative_errno();
        return 0;
}

bool path_exists(const char *path) {
        return access(path, F_OK) == 0;
}

bool dir_exists(const char *path) {
        struct stat st;
        return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *strdup_printf(const char *fmt, ...) {
        va_list ap;
        char *s;
        va_start(ap, fmt);
        int r = vasprintf(&s, fmt, ap);
        va_end(ap);
        return r < 0 ? NULL : s;
}

char *error_atv(const char *file, unsigned line, unsigned column, const char *fmt, va_list ap) {
        _cleanup_free_ char *msg = NULL;
        if (vasprintf(&msg, fmt, ap) < 0)
                return NULL;
        return strdup_printf("%s:%u:%u: %s", file, line, column, msg);
}

char *error_at(const char *file, unsigned line, unsigned column, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *s = error_atv(file, line, column, fmt, ap);
        va_end(ap);
        return s;
}

void text_position(const char *text, size_t len, size_t offset, unsigned *ret_line, unsigned *ret_column) {
        unsigned line = 1;
        size_t start = 0;
        for (size_t i = 0; i < offset && i < len; i++)
                if (text[i] == '\n') {
                        line++;
                        start = i + 1;
                }
        *ret_line = line;
        *ret_column = (unsigned)(MIN(offset, len) - start + 1);
}

void strv_free(char **l) {
        if (!l)
                return;
        for (char **e = l; *e; e++)
                free(*e);
        free(l);
}

size_t strv_length(char *const *l) {
        size_t n = 0;
        if (l)
                while (l[n])
                        n++;
        return n;
}

char **strv_copy(char *const *l) {
        size_t n = strv_length(l);
        char **c = calloc(n + 1, sizeof *c);
        for (size_t i = 0; c && i < n; i++)
                if (!(c[i] = strdup(l[i]))) {
                        strv_free(c);
                        return NULL;
                }
        return c;
}

int strv_push(char ***l, size_t *n, char *s) {
        if (!s) /* a failed strdup() passed straight in: never a NULL that would end the list early */
                return -ENOMEM;
        char **nl = realloc(*l, sizeof(char *) * (*n + 2));
        if (!nl) {
                free(s);
                return -ENOMEM;
        }
        nl[(*n)++] = s;
        nl[*n] = NULL;
        *l = nl;
        return 0;
}

bool strv_contains(char *const *l, const char *s) {
        if (l)
                for (; *l; l++)
                        if (streq(*l, s))
                                return true;
        return false;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

int dir_list(const char *path, char ***ret) {
        _cleanup_closedir_ DIR *d = opendir(path);
        if (!d)
                return negative_errno();
        char **l = NULL;
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                char *s = strdup(de->d_name);
                if (!s || strv_push(&l, &n, s) < 0) {
                        strv_free(l);
                        return -ENOMEM;
                }
        }
        if (!l) {
                l = calloc(1, sizeof(char *));
                if (!l)
                        return -ENOMEM;
        }
        qsort(l, n, sizeof(char *), cmp_str);
        *ret = l;
        return (int)n;
}

int lock_path(const char *path, int timeout_ms) {
        _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0)
                return negative_errno();
        for (int waited = 0;; waited += 5) {
                if (flock(fd, LOCK_EX | LOCK_NB) == 0)
                        return TAKE_FD(fd);
                if (errno != EWOULDBLOCK)
                        return negative_errno();
                if (waited >= timeout_ms)
                        return -EBUSY;
                nanosleep(&(struct timespec){.tv_nsec = 5 * 1000 * 1000}, NULL);
        }
}
