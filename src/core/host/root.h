/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "basic/gverror.h"
#include "basic/macro.h"

typedef struct Root Root;

/*
 * The sysroot seam. Every /sys, /proc, /dev, /etc, /var and /lib/modules path gpuvirt touches is built
 * here from one root directory: "/" on a real host, a directory given by --root or $GPUVIRT_ROOT
 * otherwise. Paths passed in are relative to the root ("sys/bus/pci/devices/...").
 *
 * What a root does with writes, how long it takes the kernel to react and where its NVML comes from is its
 * backend (RootBackend below). Core has two of its own:
 *  - live (the root is "/"): writes go to the kernel, modules are loaded with modprobe, NVML is the
 *    system's libnvidia-ml.so.1, the kernel binds drivers and creates VFs asynchronously;
 *  - capture (any other directory: a copy of a real /sys and /proc): read-only input, every write is
 *    refused with EROFS and what the copy lacks is unknown.
 * Programs that link the simulator register its backend (sim_backend_register()): it claims the
 * directories that hold its marker and plays their writes with its kernel model.
 */

typedef enum RootKind {
        ROOT_LIVE,
        ROOT_SIMULATED,
        ROOT_CAPTURE,
        _ROOT_KIND_MAX,
        _ROOT_KIND_INVALID = -EINVAL,
} RootKind;

typedef struct RootBackend {
        RootKind kind;
        /* Whether the directory (absolute, not "/") is a root of this backend. NULL: never (live, capture). */
        bool (*claims)(const char *dir);
        /* Make one kernel write (rel relative to the root, path the full path): 0 or the -errno the kernel's
         * store() returns. NULL: writes are refused with EROFS (and so are file writes and the lock). */
        int (*kernel_write)(const char *rootdir, const char *rel, const char *path, const char *value);
        /* Load a kernel module as modprobe would. */
        int (*module_load)(const char *rootdir, const char *name);
        /* Run a command that changes the host's boot files with `sh -c`; NULL: -EOPNOTSUPP (not run). */
        bool runs_commands;
        /* The NVML library to dlopen() for this root (*ret_library) or -errno with *ret_error saying why.
         * NULL: no NVML here (*why_no_nvml says why). */
        int (*nvml_library)(char **ret_library, char **ret_error);
        /* After dlopen(), before nvmlInit_v2(): tell the library which root it serves. NULL: nothing to do. */
        int (*nvml_setup)(void *dl, const char *rootdir);
        const char *why_no_nvml; /* "a captured tree, not a host" */
        /* The kernel reacts to a bind or a VF count change asynchronously: wait (bounded) for it. Otherwise
         * what a write does is visible when it returns, and a result not there is never coming. */
        bool settles;
        /* Device nodes (dev/vfio/N, dev/kvm) are the kernel's: open(), ioctl() and access() on them say
         * something. Otherwise the tree's files stand for them. */
        bool real_nodes;
        /* An attribute or directory missing from the tree is unknown (a copy may lack it), not absent. */
        bool missing_is_unknown;
        /* libvirt is asked without --connect (a simulated or captured root has no libvirt of its own). */
        bool has_libvirt;
} RootBackend;

/* Register a backend (at most a few; the simulator's): tried, in order, for every root but "/" before a
 * directory is taken for a capture. */
void root_backend_register(const RootBackend *b);
const RootBackend *root_backend(const Root *r) _pure_;

const char *root_kind_to_string(RootKind k) _pure_;

/* Writes are printed, not made (--dry-run). */
#define ROOT_DRY_RUN (1u << 0)

/* dir == NULL: $GPUVIRT_ROOT, else "/". An empty dir (or $GPUVIRT_ROOT set but empty) is -EINVAL: it is an
 * unset variable in a script, never the live host. -ENOENT when the directory does not exist. */
int root_open(const char *dir, unsigned flags, Root **ret);
Root *root_free(Root *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(Root *, root_free)
#define _cleanup_root_free_ _cleanup_(root_freep)

const char *root_dir(const Root *r) _pure_;
RootKind root_kind(const Root *r) _pure_;
bool root_dry_run(const Root *r) _pure_;
/* The backend's properties (RootBackend). */
bool root_writable(const Root *r) _pure_;
bool root_settles(const Root *r) _pure_;
bool root_real_nodes(const Root *r) _pure_;
bool root_missing_is_unknown(const Root *r) _pure_;
bool root_has_libvirt(const Root *r) _pure_;
bool root_runs_commands(const Root *r) _pure_;

/*
 * The one place that decides whether a change is made (kernel writes, file writes, module loads, commands,
 * NVML changes, libvirt changes): -EROFS when the root takes no writes (a capture, dry run or not, so a dry
 * run exits as the plain run does), 1 under --dry-run after printing what (printf-like) to the dry-run
 * stream, 0 when the caller goes on and makes it.
 */
int root_change(Root *r, const char *fmt, ...) _printf_(2, 3);

/* "<root>/<rel>" as a new string (NULL on OOM). rel is formatted like printf. */
char *root_path(const Root *r, const char *fmt, ...) _printf_(2, 3);

/* Convenience readers relative to the root. */
int root_read_attr(const Root *r, char **ret, const char *fmt, ...) _printf_(3, 4);
bool root_exists(const Root *r, const char *fmt, ...) _printf_(2, 3);

/*
 * The one write path for every kernel-mutating write (driver_override, unbind, bind, drivers_probe,
 * sriov_numvfs, mdev create/remove, current_vgpu_type, reset, ...). It logs the write at debug level,
 * prints it under --dry-run instead of making it, hands it to the simulator on a simulated root and
 * refuses it on a captured directory. Returns 0 or -errno as the kernel's store() would.
 */
int root_write(Root *r, const char *value, const char *fmt, ...) _printf_(3, 4);

/*
 * Configuration and state files gpuvirt owns (etc/gpuvirt, etc/modprobe.d, var/lib/gpuvirt, ...): written
 * atomically (temp file + rename, parents created), printed instead under --dry-run, refused with
 * EROFS on a captured tree. content NULL removes the file (absent is success).
 */
int root_write_file(Root *r, const char *content, const char *fmt, ...) _printf_(3, 4);

/* Read a file of the host (at most max bytes, NUL-terminated) following symlinks as the host would: an
 * absolute target lies under the root, and the file must be inside it (-EXDEV). */
int root_read_file(const Root *r, size_t max, char **ret, const char *fmt, ...) _printf_(4, 5);

/*
 * Files of the host that gpuvirt edits (etc/default/grub, etc/kernel/cmdline): the new content replaces the
 * file atomically, keeping its mode and owner; a symlink is followed (an absolute target lies under the
 * root; the file it ends at must be inside the root, -EXDEV otherwise) and its target is replaced, the link
 * kept. With backup_suffix, the previous contents (when not empty) are kept in "<path><suffix>" beside the
 * path as given, with the file's mode and owner. A file that does not exist is created 0644. --dry-run
 * prints, a capture refuses with EROFS.
 */
int root_edit_file(Root *r, const char *content, const char *backup_suffix, const char *fmt, ...) _printf_(4, 5);

/* A command that changes the host's boot files (update-grub, grub2-mkconfig, kernel-install): run with
 * `sh -c` on the live host only, its output sent to stderr; *ret_status gets its exit status. Printed under
 * --dry-run (0, *ret_status untouched); -EOPNOTSUPP on a simulated root, -EROFS on a capture (not run). */
int root_run_command(Root *r, const char *command, int *ret_status);

/* Load a kernel module (modprobe NAME): part of the write path, so --dry-run prints it and the
 * simulator plays it. */
int root_load_module(Root *r, const char *name);

/* Where --dry-run prints planned writes (default stdout). */
#include <stdio.h>
void root_set_dry_run_stream(Root *r, FILE *f);

/*
 * The host lock: every mutating verb holds it while it works, so two gpuvirt processes (CLI, daemon,
 * boot unit) never interleave writes on one host. It lives in ROOT_LOCK_FILE under the root, in a
 * directory only we may use: run/gpuvirt is created 0700 and must be ours and private; neither it nor
 * run nor the lock file is followed through a symlink, and a lock file that is not ours is refused (so
 * no other user can plant, hold or redirect it). Returns an fd to close (or -errno: -EBUSY when another
 * gpuvirt holds it for longer than timeout_ms, -EPERM for a directory or file that is not ours, -EROFS on
 * a capture); err (may be NULL) says what is wrong.
 */
#define ROOT_LOCK_DIR  "run/gpuvirt"
#define ROOT_LOCK_NAME "lock"
#define ROOT_LOCK_FILE ROOT_LOCK_DIR "/" ROOT_LOCK_NAME
int root_lock(Root *r, int timeout_ms, GvError *err);

/* Whether a symlink target read under proc/ (an open file of a process) is the device node dev/<node> of
 * the host, e.g. node "nvidia0". */
bool root_link_is_dev_node(const char *target, const char *node);

