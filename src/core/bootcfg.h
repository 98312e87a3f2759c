/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "root.h"

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

/* Add `add` and drop `remove` (see cmdline_merge) in the file the host's boot loader reads kernel
 * arguments from: GRUB_CMDLINE_LINUX in etc/default/grub, or a drop-in in etc/default/grub.d/ when that
 * is how the host configures grub, or etc/kernel/cmdline for systemd-boot. Keeps a backup (".gpuvirt.bak")
 * and every other line and argument. Idempotent. */
int boot_config_set_args(Root *root, const char *add, const char *remove, IommuEdit *ret);
