/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

/* Largest sysfs text attribute we accept: a page, as the kernel's show() buffer. */
#define ATTR_SIZE_MAX 4096

/* Read a small text file (at most ATTR_SIZE_MAX bytes), strip trailing whitespace. -errno on failure,
 * -EFBIG when the file is longer than the bound. */
int read_attr(const char *path, char **ret);
/* Read up to max bytes of a (binary) file. */
int read_full(const char *path, size_t max, void **ret, size_t *ret_size);
int read_full_fd(int fd, size_t max, void **ret, size_t *ret_size);

/* The first bytes of a (binary) file, however long it is: up to size bytes into buf, *ret_n how many
 * (fewer at its end). A PCI device's config header, say. */
int read_head_at(int dirfd, const char *name, void *buf, size_t size, size_t *ret_n);

/* The same relative to a directory fd (one path walk per device instead of one per attribute). */
int read_attr_at(int dirfd, const char *name, char **ret);
int read_full_at(int dirfd, const char *name, size_t max, void **ret, size_t *ret_size);
int readlink_base_at(int dirfd, const char *name, char **ret);
bool exists_at(int dirfd, const char *name);
/* Which of names[0..n) (n <= 64) the directory dirfd holds: bit i of *ret set when names[i] is an entry, of
 * *ret_links (may be NULL) when that entry is a symbolic link or of a type the listing does not say (what a
 * lookup through it finds is not known from the listing: faccessat() of a dangling link fails). One listing
 * for many existence tests (a handful of getdents64() calls instead of a lookup per name). It lists from
 * dirfd's position to the end: give it a directory fd opened for it or for lookups (openat() does not use the
 * position), not one being read with readdir(). */
int dir_has_at(int dirfd, const char *const *names, size_t n, uint64_t *ret, uint64_t *ret_links);

/* Parsers for sysfs values; strict: the whole string must be consumed. */
int parse_u32(const char *s, int base, uint32_t *ret);
int parse_int(const char *s, int *ret);
int read_attr_u32(const char *path, int base, uint32_t *ret);
int read_attr_int(const char *path, int *ret);

/* Write a whole buffer with one write() (as the kernel's sysfs store expects). */
int write_file(const char *path, const char *data, size_t len, int flags, mode_t mode);
int write_text(const char *path, const char *text); /* create/truncate, 0644 */

int mkdir_p(const char *path, mode_t mode);
/* Open (creating) path and take an exclusive flock on it, waiting at most timeout_ms: the fd to close, -EBUSY
 * when it stays taken, or -errno. */
int lock_path(const char *path, int timeout_ms);
int rm_rf(const char *path);

/* Last component of the target of a symlink (e.g. a driver or group name). */
int readlink_base(const char *path, char **ret);
/* Target of a symlink resolved against the link's directory, normalised (no "..", no "."). */
int readlink_resolved(const char *path, char **ret);
/* The same for the link name in the directory open as dfd, whose path is dir. */
int readlink_resolved_at(int dfd, const char *dir, const char *name, char **ret);

/* Relative symlink target that reaches 'target' from the directory holding 'link' (both absolute). */
char *path_relative(const char *link, const char *target);
/* Create/replace a symlink with a relative target. */
int symlink_relative(const char *target, const char *link);

bool path_exists(const char *path);
bool dir_exists(const char *path);

char *strdup_printf(const char *fmt, ...) _printf_(1, 2);
/* "FILE:LINE:COL: message", the form of every error in a file gpuvirt reads. */
char *error_at(const char *file, unsigned line, unsigned column, const char *fmt, ...) _printf_(4, 5);
char *error_atv(const char *file, unsigned line, unsigned column, const char *fmt, va_list ap) _printf_(4, 0);
/* Line and column (1-based, in bytes) of a byte offset in text. */
void text_position(const char *text, size_t len, size_t offset, unsigned *ret_line, unsigned *ret_column);
char *strip(char *s);

/* Sorted list of the entries of a directory (no "." and ".."); NULL-terminated; free with strv_free. */
int dir_list(const char *path, char ***ret);
void strv_free(char **l);
size_t strv_length(char *const *l);
/* A copy of l (NULL when out of memory; an empty list for NULL). */
char **strv_copy(char *const *l);
/* Append s (taken, freed on failure) to the list of n entries; -ENOMEM when s is NULL or on no memory. */
int strv_push(char ***l, size_t *n, char *s);
bool strv_contains(char *const *l, const char *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free)
#define _cleanup_strv_free_ _cleanup_(strv_freep)
