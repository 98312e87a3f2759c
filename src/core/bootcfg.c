/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "bootcfg.h"

/* Value of KEY="..." (or KEY=...) in a shell-style assignment file; last assignment wins. */
static char *assignment_value(const char *text, const char *key) {
        char *val = NULL;
        size_t kl = strlen(key);
        for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
                while (*line == ' ' || *line == '\t')
                        line++;
                if (strncmp(line, key, kl) != 0 || line[kl] != '=')
                        continue;
                const char *v = line + kl + 1;
                const char *end = strchrnul(v, '\n');
                char q = (*v == '"' || *v == '\'') ? *v : 0;
                if (q) {
                        v++;
                        const char *close = memchr(v, q, (size_t)(end - v));
                        if (close)
                                end = close;
                }
                free(val);
                val = strndup(v, (size_t)(end - v));
        }
        return val;
}

int boot_config_read(Root *root, BootConfig *ret) {
        BootConfig c = {.loader = BOOT_LOADER_GRUB};
        _cleanup_free_ char *osr = NULL, *grub = NULL;
        _cleanup_free_ char *osp = root_path(root, "etc/os-release");
        _cleanup_free_ char *gp = root_path(root, "etc/default/grub");
        _cleanup_free_ char *kp = root_path(root, "etc/kernel/cmdline");
        if (!osp || !gp || !kp)
                return -ENOMEM;
        if (read_full(osp, 65536, (void **)&osr, NULL) == 0) {
                c.os_id = assignment_value(osr, "ID");
                _cleanup_free_ char *like = assignment_value(osr, "ID_LIKE");
                const char *all[] = {c.os_id, like};
                for (size_t i = 0; i < ELEMENTSOF(all); i++) {
                        if (!all[i])
                                continue;
                        if (strstr(all[i], "debian") || strstr(all[i], "ubuntu"))
                                c.debian_like = true;
                        if (strstr(all[i], "rhel") || strstr(all[i], "fedora") || strstr(all[i], "centos"))
                                c.rhel_like = true;
                }
        }
        if (read_full(gp, 65536, (void **)&grub, NULL) == 0) {
                c.have_grub_file = true;
                c.grub_cmdline = assignment_value(grub, "GRUB_CMDLINE_LINUX");
        }
        else if (read_attr(kp, &c.kernel_cmdline) == 0)
                c.loader = BOOT_LOADER_SYSTEMD_BOOT;
        *ret = c;
        return 0;
}

void boot_config_done(BootConfig *c) {
        free(c->os_id);
        free(c->grub_cmdline);
        free(c->kernel_cmdline);
}

const char *boot_config_regen_command(const BootConfig *c) {
        if (c->loader == BOOT_LOADER_SYSTEMD_BOOT)
                return "kernel-install add \"$(uname -r)\" \"/boot/vmlinuz-$(uname -r)\"";
        if (c->debian_like)
                return "update-grub";
        if (c->rhel_like)
                return "grub2-mkconfig -o /boot/grub2/grub.cfg";
        if (c->os_id && (strstr(c->os_id, "suse") || strstr(c->os_id, "sles")))
                return "grub2-mkconfig -o /boot/grub2/grub.cfg";
        return "grub-mkconfig -o /boot/grub/grub.cfg";
}

static size_t key_len(const char *arg, size_t len) {
        const char *eq = memchr(arg, '=', len);
        return eq ? (size_t)(eq - arg) : len;
}

/* Iterate whitespace separated words. */
static const char *next_word(const char *p, size_t *len) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
                p++;
        if (!*p)
                return NULL;
        *len = strcspn(p, " \t\n");
        return p;
}

static bool word_matches(const char *w, size_t wl, const char *arg, size_t al) {
        if (memchr(arg, '=', al))
                return wl == al && memcmp(w, arg, wl) == 0;
        return key_len(w, wl) == al && memcmp(w, arg, al) == 0;
}

bool cmdline_has(const char *cmdline, const char *arg) {
        if (!cmdline)
                return false;
        size_t wl, al = strlen(arg);
        for (const char *w = cmdline; (w = next_word(w, &wl)); w += wl)
                if (word_matches(w, wl, arg, al))
                        return true;
        return false;
}

static bool list_has_key(const char *list, const char *w, size_t wl) {
        size_t l;
        size_t k = key_len(w, wl);
        for (const char *a = list; a && (a = next_word(a, &l)); a += l)
                if (key_len(a, l) == k && memcmp(a, w, k) == 0)
                        return true;
        return false;
}

static bool list_matches(const char *list, const char *w, size_t wl) {
        size_t l;
        for (const char *a = list; a && (a = next_word(a, &l)); a += l)
                if (word_matches(w, wl, a, l))
                        return true;
        return false;
}

char *cmdline_merge(const char *cmdline, const char *add, const char *remove) {
        size_t cap = (cmdline ? strlen(cmdline) : 0) + (add ? strlen(add) : 0) + 2;
        char *out = calloc(1, cap);
        if (!out)
                return NULL;
        size_t o = 0, wl;
        /* Keep existing words, except removed ones and ones whose key `add` sets to another value. */
        for (const char *w = cmdline ?: ""; (w = next_word(w, &wl)); w += wl) {
                if (list_matches(remove, w, wl) || (list_has_key(add, w, wl) && !list_matches(add, w, wl)))
                        continue;
                /* drop duplicates of the same exact word */
                bool dup = false;
                size_t ol;
                for (const char *x = out; (x = next_word(x, &ol)); x += ol)
                        if (ol == wl && memcmp(x, w, wl) == 0)
                                dup = true;
                if (dup)
                        continue;
                if (o)
                        out[o++] = ' ';
                memcpy(out + o, w, wl);
                o += wl;
                out[o] = '\0';
        }
        for (const char *w = add ?: ""; (w = next_word(w, &wl)); w += wl) {
                _cleanup_free_ char *word = strndup(w, wl);
                if (!word || cmdline_has(out, word))
                        continue;
                if (o)
                        out[o++] = ' ';
                memcpy(out + o, w, wl);
                o += wl;
                out[o] = '\0';
        }
        return out;
}

void iommu_edit_done(IommuEdit *e) {
        free(e->file);
        free(e->backup);
        free(e->old_cmdline);
        free(e->new_cmdline);
}

/* Replace the value of the last uncommented KEY= line with "value" (or append one). */
static char *assignment_replace(const char *text, const char *key, const char *value) {
        size_t kl = strlen(key);
        const char *last = NULL, *last_end = NULL;
        for (const char *line = text; *line;) {
                const char *e = strchrnul(line, '\n');
                const char *p = line;
                while (*p == ' ' || *p == '\t')
                        p++;
                if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
                        last = line;
                        last_end = e;
                }
                line = *e ? e + 1 : e;
        }
        if (!last) {
                size_t l = strlen(text);
                return strdup_printf("%s%s%s=\"%s\"\n", text, l && text[l - 1] != '\n' ? "\n" : "", key, value);
        }
        return strdup_printf("%.*s%s=\"%s\"%s", (int)(last - text), text, key, value, last_end);
}

int boot_config_set_args(Root *root, const char *add, const char *remove, IommuEdit *ret) {
        BootConfig c;
        int r = boot_config_read(root, &c);
        if (r < 0)
                return r;
        IommuEdit e = {.regen = boot_config_regen_command(&c)};
        _cleanup_free_ char *text = NULL, *newtext = NULL;
        const char *rel;
        bool dropin = false;
        if (c.loader == BOOT_LOADER_SYSTEMD_BOOT) {
                rel = "etc/kernel/cmdline";
                e.old_cmdline = strdup(c.kernel_cmdline ?: "");
        } else if (!c.have_grub_file && root_exists(root, "etc/default/grub.d")) {
                rel = "etc/default/grub.d/90-gpuvirt.cfg";
                dropin = true;
        } else
                rel = "etc/default/grub";
        e.file = strdup(rel);
        _cleanup_free_ char *path = root_path(root, "%s", rel);
        if (!e.file || !path) {
                boot_config_done(&c);
                iommu_edit_done(&e);
                return -ENOMEM;
        }
        r = read_full(path, 1024 * 1024, (void **)&text, NULL);
        if (r < 0 && r != -ENOENT) {
                boot_config_done(&c);
                iommu_edit_done(&e);
                return r;
        }
        if (!text)
                text = strdup("");
        if (c.loader == BOOT_LOADER_SYSTEMD_BOOT) {
                e.new_cmdline = cmdline_merge(e.old_cmdline, add, remove);
                newtext = e.new_cmdline ? strdup_printf("%s\n", e.new_cmdline) : NULL;
        } else if (dropin) {
                /* A drop-in extends what the main configuration set. */
                _cleanup_free_ char *cur = assignment_value(text, "GRUB_CMDLINE_LINUX");
                const char *base = cur && startswith(cur, "$GRUB_CMDLINE_LINUX") ? cur + strlen("$GRUB_CMDLINE_LINUX") : "";
                e.old_cmdline = strdup(base);
                e.new_cmdline = cmdline_merge(base, add, remove);
                _cleanup_free_ char *v = e.new_cmdline ? strdup_printf("$GRUB_CMDLINE_LINUX %s", e.new_cmdline) : NULL;
                newtext = v ? strdup_printf("# Written by gpuvirt: kernel arguments for GPU virtualization.\n"
                                            "GRUB_CMDLINE_LINUX=\"%s\"\n", v)
                            : NULL;
        } else {
                e.old_cmdline = strdup(c.grub_cmdline ?: "");
                e.new_cmdline = cmdline_merge(e.old_cmdline, add, remove);
                newtext = e.new_cmdline ? assignment_replace(text, "GRUB_CMDLINE_LINUX", e.new_cmdline) : NULL;
        }
        boot_config_done(&c);
        if (!newtext || !e.old_cmdline) {
                iommu_edit_done(&e);
                return -ENOMEM;
        }
        e.changed = !streq(newtext, text);
        if (e.changed) {
                if (*text) {
                        e.backup = strdup_printf("%s.gpuvirt.bak", rel);
                        r = e.backup ? root_write_file(root, text, "%s", e.backup) : -ENOMEM;
                        if (r < 0) {
                                iommu_edit_done(&e);
                                return r;
                        }
                }
                r = root_write_file(root, newtext, "%s", rel);
                if (r < 0) {
                        iommu_edit_done(&e);
                        return r;
                }
        }
        *ret = e;
        return 0;
}
