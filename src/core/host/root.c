/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "core/host/root.h"

struct Root {
        char *dir; /* without trailing slash; "" for "/" so that paths are "<dir>/<rel>" */
        const RootBackend *backend;
        unsigned flags;
        FILE *dry_run_stream;
};

static int live_kernel_write(const char *rootdir, const char *rel, const char *path, const char *value) {
        /* sysfs store(): one write() of the whole value, no O_CREAT, no O_TRUNC semantics. */
        return write_file(path, value, strlen(value), 0, 0);
}

static int live_module_load(const char *rootdir, const char *name) {
        pid_t pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid == 0) {
                execlp("modprobe", "modprobe", "-q", "--", name, (char *)NULL);
                _exit(127);
        }
        int status;
        if (waitpid(pid, &status, 0) < 0)
                return negative_errno();
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ENOENT;
}

static int live_nvml_library(char **ret_library, char **ret_error) {
        char *lib = strdup("libnvidia-ml.so.1");
        if (!lib)
                return -ENOMEM;
        *ret_library = lib;
        return 0;
}

static const RootBackend live_backend = {
        .kind = ROOT_LIVE,
        .kernel_write = live_kernel_write,
        .module_load = live_module_load,
        .runs_commands = true,
        .nvml_library = live_nvml_library,
        .settles = true,
        .real_nodes = true,
        .has_libvirt = true,
};

static const RootBackend capture_backend = {
        .kind = ROOT_CAPTURE,
        .why_no_nvml = "a captured tree, not a host",
        .missing_is_unknown = true,
};

static const RootBackend *registered[4];

void root_backend_register(const RootBackend *b) {
        for (size_t i = 0; i < ELEMENTSOF(registered); i++)
                if (!registered[i] || registered[i] == b) {
                        registered[i] = b;
                        return;
                }
        abort(); /* more backends than slots: a programming error */
}

static const char *const root_kind_table[_ROOT_KIND_MAX] = {
        [ROOT_LIVE] = "live",
        [ROOT_SIMULATED] = "simulated",
        [ROOT_CAPTURE] = "capture",
};

const char *root_kind_to_string(RootKind k) {
        return k >= 0 && k < _ROOT_KIND_MAX ? root_kind_table[k] : NULL;
}

int root_open(const char *dir, unsigned flags, Root **ret) {
        if (!dir)
                dir = getenv("GPUVIRT_ROOT") ?: "/";
        /* An empty root is an unset variable in a script, not a request for the live host. */
        if (isempty(dir))
                return log_debug_errno(EINVAL, "Empty root directory.");
        if (!dir_exists(dir))
                return log_debug_errno(ENOENT, "Root directory '%s' does not exist.", dir);

        _cleanup_free_ char *abs = realpath(dir, NULL);
        if (!abs)
                return negative_errno();

        Root *r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        r->flags = flags;
        r->dry_run_stream = stdout;
        if (streq(abs, "/")) {
                r->dir = strdup("");
                r->backend = &live_backend;
        } else {
                r->backend = &capture_backend;
                for (size_t i = 0; i < ELEMENTSOF(registered) && registered[i]; i++)
                        if (registered[i]->claims && registered[i]->claims(abs)) {
                                r->backend = registered[i];
                                break;
                        }
                r->dir = TAKE_PTR(abs);
        }
        if (!r->dir) {
                free(r);
                return -ENOMEM;
        }
        *ret = r;
        return 0;
}

Root *root_free(Root *r) {
        if (r) {
                free(r->dir);
                free(r);
        }
        return NULL;
}

const char *root_dir(const Root *r) {
        return r->dir[0] ? r->dir : "/";
}

RootKind root_kind(const Root *r) {
        return r->backend->kind;
}

const RootBackend *root_backend(const Root *r) {
        return r->backend;
}

bool root_writable(const Root *r) {
        return r->backend->kernel_write;
}

/* The backend's properties, one accessor each. */
#define ROOT_PROPERTY(name)                       \
        bool root_##name(const Root *r) {         \
                return r->backend->name;          \
        }
ROOT_PROPERTY(settles)
ROOT_PROPERTY(real_nodes)
ROOT_PROPERTY(missing_is_unknown)
ROOT_PROPERTY(has_libvirt)
ROOT_PROPERTY(runs_commands)
#undef ROOT_PROPERTY

int root_change(Root *r, const char *fmt, ...) {
        if (!root_writable(r))
                return -EROFS;
        if (!(r->flags & ROOT_DRY_RUN))
                return 0;
        va_list ap;
        va_start(ap, fmt);
        vfprintf(r->dry_run_stream, fmt, ap);
        va_end(ap);
        fputc('\n', r->dry_run_stream);
        return 1;
}

bool root_dry_run(const Root *r) {
        return r->flags & ROOT_DRY_RUN;
}

void root_set_dry_run_stream(Root *r, FILE *f) {
        r->dry_run_stream = f ?: stdout;
}

static char *root_vpath(const Root *r, const char *fmt, va_list ap) {
        _cleanup_free_ char *rel = NULL;
        if (vasprintf(&rel, fmt, ap) < 0)
                return NULL;
        const char *p = rel;
        while (*p == '/')
                p++;
        return strdup_printf("%s/%s", r->dir, p);
}

char *root_path(const Root *r, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *p = root_vpath(r, fmt, ap);
        va_end(ap);
        return p;
}

int root_read_attr(const Root *r, char **ret, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *p = root_vpath(r, fmt, ap);
        va_end(ap);
        if (!p)
                return -ENOMEM;
        return read_attr(p, ret);
}

bool root_exists(const Root *r, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *p = root_vpath(r, fmt, ap);
        va_end(ap);
        return p && path_exists(p);
}

int root_write(Root *r, const char *value, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *path = root_vpath(r, fmt, ap);
        va_end(ap);
        if (!path)
                return -ENOMEM;
        const char *rel = path + strlen(r->dir) + 1;

        int k = root_change(r, "write %s <- \"%s\"", path, value);
        if (k != 0)
                return k < 0 ? k : 0;
        log_debug("write %s <- \"%s\"", path, value);
        k = r->backend->kernel_write(r->dir, rel, path, value);
        if (k < 0)
                log_debug_errno(k, "write %s failed: %m", path);
        return k;
}

int root_load_module(Root *r, const char *name) {
        int k = root_change(r, "modprobe %s", name);
        if (k != 0)
                return k < 0 ? k : 0;
        log_debug("modprobe %s", name);
        return r->backend->module_load(r->dir, name);
}

/* Replace path with content atomically (a temporary file in the same directory, then rename), with the given
 * mode and, when uid is not (uid_t) -1, owner. */
static int write_atomic(const char *path, const char *content, mode_t mode, uid_t uid, gid_t gid) {
        _cleanup_free_ char *tmp = strdup_printf("%s.tmp-XXXXXX", path);
        if (!tmp)
                return -ENOMEM;
        _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        size_t len = strlen(content);
        int k = 0;
        if (write(fd, content, len) != (ssize_t)len || fchmod(fd, mode) < 0 ||
            (uid != (uid_t)-1 && fchown(fd, uid, gid) < 0) || fsync(fd) < 0 || rename(tmp, path) < 0) {
                k = negative_errno();
                unlink(tmp);
        }
        return k;
}

int root_run_command(Root *r, const char *command, int *ret_status) {
        int k = root_change(r, "run %s", command);
        if (k != 0)
                return k < 0 ? k : 0;
        if (!r->backend->runs_commands)
                return -EOPNOTSUPP;
        log_debug("run %s", command);
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid == 0) {
                /* what it prints is for the person reading, never mixed into our --json output */
                (void)dup2(STDERR_FILENO, STDOUT_FILENO);
                execlp("sh", "sh", "-c", command, (char *)NULL);
                _exit(127);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return negative_errno();
        *ret_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return 0;
}

int root_write_file(Root *r, const char *content, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *path = root_vpath(r, fmt, ap);
        va_end(ap);
        if (!path)
                return -ENOMEM;
        int k = content ? root_change(r, "file %s <- %zu bytes", path, strlen(content)) : root_change(r, "remove %s", path);
        if (k != 0)
                return k < 0 ? k : 0;
        log_debug("%s %s", content ? "file" : "remove", path);
        if (!content)
                return unlink(path) < 0 && errno != ENOENT ? negative_errno() : 0;

        char *slash = strrchr(path, '/');
        *slash = '\0';
        k = mkdir_p(path, 0755);
        *slash = '/';
        if (k < 0)
                return k;
        return write_atomic(path, content, 0644, (uid_t)-1, (gid_t)-1);
}

/* Follow path through symlinks as the host would see them: an absolute target is under the root. The
 * result must stay inside the root (-EXDEV otherwise). */
static int resolve_in_root(const Root *r, const char *path, char **ret) {
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        for (int hops = 0;; hops++) {
                struct stat st;
                if (lstat(p, &st) < 0 || !S_ISLNK(st.st_mode))
                        break;
                if (hops >= 40)
                        return -ELOOP;
                char target[4096];
                ssize_t k = readlink(p, target, sizeof target - 1);
                if (k < 0)
                        return negative_errno();
                target[k] = '\0';
                char *next;
                if (target[0] == '/')
                        next = root_path(r, "%s", target);
                else {
                        *strrchr(p, '/') = '\0';
                        next = strdup_printf("%s/%s", p, target);
                }
                if (!next)
                        return -ENOMEM;
                free(p);
                p = next;
        }
        /* no way out of the root through "..": the directory it lands in must be inside */
        char *slash = strrchr(p, '/');
        *slash = '\0';
        _cleanup_free_ char *dir = realpath(*p ? p : "/", NULL);
        *slash = '/';
        if (!dir)
                return negative_errno();
        if (r->dir[0] && (!startswith(dir, r->dir) || (dir[strlen(r->dir)] != '/' && dir[strlen(r->dir)] != '\0')))
                return -EXDEV;
        char *out = strdup_printf("%s/%s", streq(dir, "/") ? "" : dir, slash + 1);
        if (!out)
                return -ENOMEM;
        *ret = out;
        return 0;
}

int root_read_file(const Root *r, size_t max, char **ret, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *path = root_vpath(r, fmt, ap);
        va_end(ap);
        if (!path)
                return -ENOMEM;
        _cleanup_free_ char *target = NULL;
        int k = resolve_in_root(r, path, &target);
        if (k < 0)
                return k;
        char *text = NULL;
        k = read_full(target, max, (void **)&text, NULL);
        if (k < 0)
                return k;
        *ret = text;
        return 0;
}

int root_edit_file(Root *r, const char *content, const char *backup_suffix, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *path = root_vpath(r, fmt, ap);
        va_end(ap);
        if (!path)
                return -ENOMEM;
        if (!root_writable(r))
                return -EROFS;
        _cleanup_free_ char *target = NULL, *old = NULL;
        int k = resolve_in_root(r, path, &target);
        if (k < 0)
                return k;
        struct stat st;
        bool exists = stat(target, &st) >= 0;
        if (!exists && errno != ENOENT)
                return negative_errno();
        if (exists && !S_ISREG(st.st_mode))
                return -EISDIR;
        if (exists && backup_suffix && (k = read_full(target, 16 * 1024 * 1024, (void **)&old, NULL)) < 0)
                return k;
        _cleanup_free_ char *backup = backup_suffix ? strdup_printf("%s%s", path, backup_suffix) : NULL;
        if (backup_suffix && !backup)
                return -ENOMEM;
        if (old && *old && (k = root_change(r, "file %s <- %zu bytes", backup, strlen(old))) < 0)
                return k;
        if ((k = root_change(r, "file %s <- %zu bytes", target, strlen(content))) != 0)
                return k < 0 ? k : 0;
        log_debug("edit %s%s%s", path, streq(path, target) ? "" : " -> ", streq(path, target) ? "" : target);
        mode_t mode = exists ? st.st_mode & 07777 : 0644;
        uid_t uid = exists ? st.st_uid : (uid_t)-1;
        gid_t gid = exists ? st.st_gid : (gid_t)-1;
        /* the previous contents beside the path as given, as private as the file */
        if (old && *old && (k = write_atomic(backup, old, mode, uid, gid)) < 0)
                return k;
        return write_atomic(target, content, mode, uid, gid);
}

/* Open directory `name` under dirfd without following a symlink, creating it with `mode` when absent. */
static int open_dir_nofollow(int dirfd, const char *name, mode_t mode) {
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
                if (mkdirat(dirfd, name, mode) < 0 && errno != EEXIST)
                        return negative_errno();
                fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        return fd < 0 ? negative_errno() : fd;
}

int root_lock(Root *r, int timeout_ms, GvError *err) {
        if (!root_writable(r))
                return gv_error_set(err, EROFS, NULL, "lock",
                                    "'%s' is a captured tree, not a host: it cannot be changed (no host lock)", root_dir(r));
        /* Every component is opened relative to the one before, never through a symlink: nothing planted in
         * the tree redirects the lock (or the file it creates) elsewhere. */
        _cleanup_close_ int rootfd = open(root_dir(r), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
                return gv_error_set(err, errno, NULL, "lock", "cannot open %s: %m", root_dir(r));
        _cleanup_close_ int run = open_dir_nofollow(rootfd, "run", 0755);
        if (run < 0)
                return gv_error_set(err, run, NULL, "lock", "%s/run is not a directory (a symlink is refused): %s",
                                    r->dir, errno_message(run));
        _cleanup_close_ int dir = open_dir_nofollow(run, "gpuvirt", 0700);
        if (dir < 0)
                return gv_error_set(err, dir, NULL, "lock",
                                    "%s/" ROOT_LOCK_DIR " is not a directory (a symlink is refused): %s", r->dir,
                                    errno_message(dir));
        struct stat st;
        if (fstat(dir, &st) < 0)
                return gv_error_set(err, errno, NULL, "lock", "cannot stat %s/" ROOT_LOCK_DIR ": %m", r->dir);
        if (st.st_uid != geteuid() || (st.st_mode & 0077))
                return gv_error_set(err, EPERM, NULL, "lock",
                                    "%s/" ROOT_LOCK_DIR " is owned by uid %u with mode %04o: it must be ours (uid %u) and "
                                 "private (0700); remove it and run again",
                                 r->dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777), (unsigned)geteuid());
        _cleanup_close_ int fd = openat(dir, ROOT_LOCK_NAME, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0)
                return gv_error_set(err, errno, NULL, "lock", "cannot open %s/" ROOT_LOCK_FILE " (a symlink is refused): %m",
                                    r->dir);
        if (fstat(fd, &st) < 0)
                return gv_error_set(err, errno, NULL, "lock", "cannot stat %s/" ROOT_LOCK_FILE ": %m", r->dir);
        if (!S_ISREG(st.st_mode) || st.st_uid != geteuid())
                return gv_error_set(err, EPERM, NULL, "lock",
                                 "%s/" ROOT_LOCK_FILE " is not a regular file of ours (uid %u, not %u): refusing it; "
                                 "remove it and run again",
                                 r->dir, (unsigned)st.st_uid, (unsigned)geteuid());
        for (int waited = 0;; waited += 10) {
                if (flock(fd, LOCK_EX | LOCK_NB) == 0)
                        break;
                if (errno != EWOULDBLOCK)
                        return gv_error_set(err, errno, NULL, "lock", "cannot lock %s/" ROOT_LOCK_FILE ": %m", r->dir);
                if (waited >= timeout_ms)
                        return gv_error_set(err, EBUSY, NULL, "lock",
                                         "another gpuvirt holds the host lock (%s/" ROOT_LOCK_FILE ") for more than %d s",
                                         r->dir, timeout_ms / 1000);
                nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
        }
        return TAKE_FD(fd);
}

bool root_link_is_dev_node(const char *target, const char *node) {
        const char *p = target ? startswith(target, "/dev/") : NULL;
        return p && streq(p, node);
}
