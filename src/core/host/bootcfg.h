/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "basic/gverror.h"
#include "core/host/root.h"

/* The host's boot configuration: which distribution, which boot loader, and how kernel arguments are
 * set and regenerated there. Read from etc/os-release, etc/default/grub, etc/kernel/cmdline under the
 * root. */

typedef enum BootLoader {
        BOOT_LOADER_GRUB,
        BOOT_LOADER_SYSTEMD_BOOT, /* etc/kernel/cmdline */
        _BOOT_LOADER_MAX,
} BootLoader;

typedef struct BootConfig {
        BootLoader loader;
        char *os_id;            /* "debian", "rhel", ... (NULL when unknown) */
        bool debian_like, rhel_like;
        bool have_grub_file;    /* etc/default/grub exists */
        char *grub_cmdline;     /* current value of GRUB_CMDLINE_LINUX (NULL when none) */
        char *kernel_cmdline;   /* etc/kernel/cmdline contents for systemd-boot */
} BootConfig;

int boot_config_read(Root *root, BootConfig *ret);
void boot_config_done(BootConfig *c);

/* Command that regenerates the boot loader's configuration on this distribution. */
const char *boot_config_regen_command(const BootConfig *c);

/* Merge kernel arguments into a command line: add each of `add` that is missing (an argument with the
 * same key but another value is replaced), drop each of `remove` (exact "key=value" or bare key).
 * Space separated lists; NULL allowed. Keeps the order and every other argument. */
char *cmdline_merge(const char *cmdline, const char *add, const char *remove);

/* Whether a whitespace-separated command line holds the argument (exact "key=value", or "key" alone to
 * match any value). */
bool cmdline_has(const char *cmdline, const char *arg);

/* The result of turning the IOMMU on in the boot configuration. */
typedef struct IommuEdit {
        char *file;        /* edited file, relative to the root ("etc/default/grub") */
        char *backup;      /* backup of the previous contents (NULL when nothing changed) */
        char *old_cmdline; /* arguments before */
        char *new_cmdline; /* arguments after */
        bool changed;
        const char *regen; /* command regenerating the boot loader configuration */
} IommuEdit;

void iommu_edit_done(IommuEdit *e);

#define BOOT_CONFIG_BACKUP_SUFFIX ".gpuvirt.bak"

/* Add `add` and drop `remove` (see cmdline_merge) in the file the host's boot loader reads kernel
 * arguments from: GRUB_CMDLINE_LINUX in etc/default/grub (grub_cmdline_edit()), or a drop-in in
 * etc/default/grub.d/ when that is how the host configures grub, or etc/kernel/cmdline for systemd-boot.
 * The file keeps its mode, owner and every other line and argument; a symlinked file is written through
 * (root_edit_file()); the previous contents go to "<file>.gpuvirt.bak". Idempotent. A grub file that does not
 * parse is -EINVAL with err's message "/FILE:LINE:COL: why" (step "parse"), and nothing is written; err (may be
 * NULL) has a message where there is more to say than the errno. */
int boot_config_set_args(Root *root, const char *add, const char *remove, IommuEdit *ret, GvError *err);

/*
 * The edit of a grub defaults file (text, a shell script; sh_parse() reads it as bash does), in memory:
 * each argument of `remove`, or whose key `add` sets to another value, goes from every GRUB_CMDLINE_LINUX
 * assignment with the blanks that separated it; each argument of `add` missing from the value the file ends
 * with (the last assignment, which may build on $GRUB_CMDLINE_LINUX) goes to the end of the last one,
 * inside its closing quote (single or double, kept: '$' means what it meant), or in double quotes when it
 * was unquoted; with no assignment one is appended. Everything else stays byte for byte. The result is
 * parsed again and must give the old arguments minus the ones that went plus the added ones, or the edit is
 * refused (-EIO). *ret_old / *ret_new: the value before and after. -EINVAL with *ret_error "LINE:COL: why"
 * when the text does not parse (an unterminated quote, ...).
 */
int grub_cmdline_edit(const char *text, const char *add, const char *remove, char **ret_text, char **ret_old,
                      char **ret_new, char **ret_error);
