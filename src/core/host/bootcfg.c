/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/shellvar.h"
#include "core/host/bootcfg.h"

#define GRUB_CMDLINE_VAR "GRUB_CMDLINE_LINUX"
#define GRUB_FILE_MAX    (1024 * 1024)

/* The value a shell-assignment file (os-release, grub defaults) gives name, as the shell would; NULL when
 * the file does not parse or never assigns it. */
static char *file_var(const char *text, const char *name) {
        ShAssignment *a = NULL;
        size_t n = 0;
        if (sh_parse(text, strlen(text), name, &a, &n, NULL) < 0)
                return NULL;
        char *v = sh_value(name, a, n);
        sh_assignments_free(a, n);
        return v;
}

int boot_config_read(Root *root, BootConfig *ret) {
        BootConfig c = {.loader = BOOT_LOADER_GRUB};
        _cleanup_free_ char *osr = NULL, *grub = NULL, *kcmd = NULL;
        if (root_read_file(root, 65536, &osr, "etc/os-release") == 0) {
                c.os_id = file_var(osr, "ID");
                _cleanup_free_ char *like = file_var(osr, "ID_LIKE");
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
        if (root_read_file(root, GRUB_FILE_MAX, &grub, "etc/default/grub") == 0) {
                c.have_grub_file = true;
                c.grub_cmdline = file_var(grub, GRUB_CMDLINE_VAR);
        } else if (root_read_file(root, 65536, &kcmd, "etc/kernel/cmdline") == 0) {
                c.kernel_cmdline = strdup(strip(kcmd));
                c.loader = BOOT_LOADER_SYSTEMD_BOOT;
        }
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

/* ---- editing GRUB_CMDLINE_LINUX in a grub defaults file ---- */

typedef struct Edit {
        size_t beg, end; /* source bytes replaced */
        char *text;
} Edit;

static int edit_add(Edit **l, size_t *n, size_t beg, size_t end, char *text) {
        if (!text)
                return -ENOMEM;
        Edit *x = realloc(*l, (*n + 1) * sizeof **l);
        if (!x) {
                free(text);
                return -ENOMEM;
        }
        *l = x;
        x[(*n)++] = (Edit){beg, end, text};
        return 0;
}

static int cmp_edits(const void *a, const void *b) {
        const Edit *x = a, *y = b;
        return x->beg < y->beg ? -1 : x->beg > y->beg;
}

/* text with the (non-overlapping) edits made. */
static char *edits_apply(const char *text, Edit *e, size_t n) {
        if (n > 1)
                qsort(e, n, sizeof *e, cmp_edits);
        size_t len = strlen(text), cap = len + 1;
        for (size_t i = 0; i < n; i++)
                cap += strlen(e[i].text);
        char *out = malloc(cap);
        if (!out)
                return NULL;
        size_t o = 0, at = 0;
        for (size_t i = 0; i < n; i++) {
                memcpy(out + o, text + at, e[i].beg - at);
                o += e[i].beg - at;
                o += (size_t)sprintf(out + o, "%s", e[i].text);
                at = e[i].end;
        }
        memcpy(out + o, text + at, len - at);
        out[o + len - at] = '\0';
        return out;
}

static void edits_free(Edit *e, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(e[i].text);
        free(e);
}

static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\n';
}

/* Whether the argument goes: named in remove, or its key set to another value by add. */
static bool arg_goes(const char *w, size_t wl, const char *add, const char *remove) {
        return list_matches(remove, w, wl) || (list_has_key(add, w, wl) && !list_matches(add, w, wl));
}

/* What a deletion from a character in quoting qa to one in qb must leave so the rest parses as before. */
static const char *quote_close(ShQuote q) {
        return q == SH_SINGLE ? "'" : q == SH_DOUBLE ? "\"" : "";
}

/* Drop the arguments that go from one assignment, each with the blanks that separated it. */
static int drop_args(const ShAssignment *a, const char *add, const char *remove, Edit **e, size_t *ne) {
        /* the words: [ws[k], we[k]) in the decoded value */
        size_t n = 0, *ws = calloc(a->len + 1, sizeof *ws), *we = calloc(a->len + 1, sizeof *we);
        bool *go = calloc(a->len + 1, sizeof *go);
        int r = ws && we && go ? 0 : -ENOMEM;
        for (size_t i = 0; r >= 0 && i < a->len;) {
                while (i < a->len && is_blank(a->value[i]))
                        i++;
                if (i == a->len)
                        break;
                ws[n] = i;
                while (i < a->len && !is_blank(a->value[i]))
                        i++;
                we[n] = i;
                go[n] = arg_goes(a->value + ws[n], we[n] - ws[n], add, remove);
                n++;
        }
        for (size_t k = 0; r >= 0 && k < n;) {
                if (!go[k]) {
                        k++;
                        continue;
                }
                size_t last = k;
                while (last + 1 < n && go[last + 1])
                        last++;
                /* with the blanks before it when a kept word precedes, else with the blanks after */
                size_t from = k > 0 ? we[k - 1] : ws[k], to = k > 0 || last + 1 == n ? we[last] : ws[last + 1];
                ShQuote qa = a->chars[from].quote, qb = a->chars[to - 1].quote;
                r = edit_add(e, ne, a->chars[from].beg, a->chars[to - 1].end,
                             qa == qb ? strdup("") : strdup_printf("%s%s", quote_close(qa), quote_close(qb)));
                k = last + 1;
        }
        free(ws);
        free(we);
        free(go);
        return r;
}

/* Arguments that can go inside either kind of quotes unchanged. */
static bool plain_words(const char *s) {
        for (; *s; s++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.,:=+-/ ", *s))
                        return false;
        return true;
}

/* Append words to the last assignment in its own quoting: inside its closing quote; an unquoted value is put
 * in double quotes (the same meaning in an assignment); no assignment: one is added at the end. */
static int append_args(const char *text, const ShAssignment *a, size_t n, const char *words, Edit **e, size_t *ne) {
        if (n == 0) {
                /* On a line of its own. A backslash that escapes nothing at the end of the file is a literal one
                 * to /bin/sh (dash); a newline after it would make it a continuation and could turn the
                 * command before into an assignment. Doubled it stays the same literal backslash. */
                size_t l = strlen(text), k = 0;
                while (k < l && text[l - 1 - k] == '\\')
                        k++;
                return edit_add(e, ne, l, l, strdup_printf("%s" GRUB_CMDLINE_VAR "=\"%s\"\n",
                                                           k % 2 ? "\\\n" : l && text[l - 1] != '\n' ? "\n" : "",
                                                           words));
        }
        const ShAssignment *x = &a[n - 1];
        const char *sep = x->len > 0 && !is_blank(x->value[x->len - 1]) ? " " : "";
        if (x->beg == x->end)
                return edit_add(e, ne, x->beg, x->beg, strdup_printf("\"%s\"", words));
        char last = text[x->end - 1];
        bool closing_quote = (last == '"' || last == '\'') && (x->len == 0 || x->chars[x->len - 1].end < x->end);
        if (closing_quote && plain_words(words))
                return edit_add(e, ne, x->end - 1, x->end - 1, strdup_printf("%s%s", sep, words));
        bool quoted = false;
        for (size_t i = 0; i < x->len; i++)
                quoted |= x->chars[i].quote != SH_UNQUOTED;
        if (quoted)
                return edit_add(e, ne, x->end, x->end, strdup_printf("\"%s%s\"", sep, words));
        /* unquoted throughout: the same value in double quotes, then the words */
        char *v = malloc(2 * x->len + strlen(words) + 4);
        if (!v)
                return -ENOMEM;
        size_t o = 0;
        v[o++] = '"';
        for (size_t i = 0; i < x->len; i++) {
                char c = x->value[i];
                bool escaped = x->chars[i].end - x->chars[i].beg == 2;
                if (c == '"' || c == '\\' || (escaped && (c == '$' || c == '`')))
                        v[o++] = '\\';
                v[o++] = c;
        }
        o += (size_t)sprintf(v + o, "%s%s\"", sep, words);
        return edit_add(e, ne, x->beg, x->end, v);
}

/* The words of a command line joined by single blanks. */
static char *words_normalized(const char *s) {
        char *out = calloc(1, strlen(s) + 1);
        size_t wl, o = 0;
        for (const char *w = s; out && (w = next_word(w, &wl)); w += wl)
                o += (size_t)sprintf(out + o, "%s%.*s", o ? " " : "", (int)wl, w);
        return out;
}

/* Parse and take the value: sets *ret_value (never NULL on success). */
static int grub_value(const char *text, ShAssignment **ret_a, size_t *ret_n, char **ret_value, char **ret_error) {
        int r = sh_parse(text, strlen(text), GRUB_CMDLINE_VAR, ret_a, ret_n, ret_error);
        if (r < 0)
                return r;
        *ret_value = *ret_n ? sh_value(GRUB_CMDLINE_VAR, *ret_a, *ret_n) : strdup("");
        if (!*ret_value) {
                sh_assignments_free(*ret_a, *ret_n);
                return -ENOMEM;
        }
        return 0;
}

int grub_cmdline_edit(const char *text, const char *add, const char *remove, char **ret_text, char **ret_old,
                      char **ret_new, char **ret_error) {
        ShAssignment *a = NULL, *b = NULL, *c = NULL;
        size_t na = 0, nb = 0, nc = 0, ne = 0;
        Edit *e = NULL;
        char *old = NULL, *mid = NULL, *mid_text = NULL, *out = NULL, *now = NULL, *want = NULL, *missing = NULL;
        *ret_error = NULL;
        /* 1. the arguments that go, from every assignment (the last one may build on the others) */
        int r = grub_value(text, &a, &na, &old, ret_error);
        for (size_t i = 0; r >= 0 && i < na; i++)
                r = drop_args(&a[i], add, remove, &e, &ne);
        if (r >= 0 && !(mid_text = edits_apply(text, e, ne)))
                r = -ENOMEM;
        edits_free(e, ne);
        e = NULL;
        ne = 0;
        /* 2. what is still missing, to the end of the last assignment */
        if (r >= 0 && (r = grub_value(mid_text, &b, &nb, &mid, ret_error)) < 0)
                r = -EIO; /* our own deletions made it unparsable */
        if (r >= 0) {
                missing = calloc(1, strlen(add ?: "") + 1);
                size_t wl, o = 0;
                for (const char *w = add ?: ""; missing && (w = next_word(w, &wl)); w += wl) {
                        _cleanup_free_ char *word = strndup(w, wl);
                        if (!word || cmdline_has(mid, word) || cmdline_has(missing, word))
                                continue;
                        o += (size_t)sprintf(missing + o, "%s%s", o ? " " : "", word);
                }
                if (!missing)
                        r = -ENOMEM;
        }
        if (r >= 0 && *missing)
                r = append_args(mid_text, b, nb, missing, &e, &ne);
        if (r >= 0 && !(out = edits_apply(mid_text, e, ne)))
                r = -ENOMEM;
        /* 3. the check: the result parses, and gives exactly the old arguments minus the ones that go plus the
         * missing ones */
        if (r >= 0 && (r = grub_value(out, &c, &nc, &now, ret_error)) < 0)
                r = -EIO;
        /* ... with the assignments it had (one more when one was added): the text around them kept its meaning */
        if (r >= 0 && nc != nb + (*missing && nb == 0))
                r = -EIO;
        if (r >= 0) {
                size_t wl;
                char *acc = strdup("");
                for (const char *w = old; acc && (w = next_word(w, &wl)); w += wl)
                        if (!arg_goes(w, wl, add, remove)) {
                                char *x = strdup_printf("%s%s%.*s", acc, *acc ? " " : "", (int)wl, w);
                                free(acc);
                                acc = x;
                        }
                want = acc ? strdup_printf("%s%s%s", acc, *acc && *missing ? " " : "", missing) : NULL;
                free(acc);
                _cleanup_free_ char *a1 = want ? words_normalized(want) : NULL, *a2 = words_normalized(now);
                if (!a1 || !a2)
                        r = -ENOMEM;
                else if (!streq(a1, a2))
                        r = -EIO;
        }
        if (r == -EIO) {
                free(*ret_error);
                *ret_error = strdup_printf("cannot edit " GRUB_CMDLINE_VAR " so that it reads back as intended; "
                                           "nothing written: add '%s' by hand", strna(add));
        }
        if (r >= 0) {
                *ret_text = TAKE_PTR(out);
                *ret_old = TAKE_PTR(old);
                *ret_new = TAKE_PTR(now);
        }
        sh_assignments_free(a, na);
        sh_assignments_free(b, nb);
        sh_assignments_free(c, nc);
        edits_free(e, ne);
        free(old);
        free(mid);
        free(mid_text);
        free(out);
        free(now);
        free(want);
        free(missing);
        return r;
}

int boot_config_set_args(Root *root, const char *add, const char *remove, IommuEdit *ret, GvError *err) {
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
        if (!e.file) {
                boot_config_done(&c);
                iommu_edit_done(&e);
                return -ENOMEM;
        }
        r = root_read_file(root, GRUB_FILE_MAX, &text, "%s", rel);
        if (r < 0 && r != -ENOENT) {
                boot_config_done(&c);
                iommu_edit_done(&e);
                if (r == -EXDEV)
                        return gv_error_set(err, r, NULL, "read", "/%s is a symlink that leads out of %s: not editing it",
                                            rel, root_dir(root));
                return r;
        }
        if (!text)
                text = strdup("");
        if (c.loader == BOOT_LOADER_SYSTEMD_BOOT) {
                e.new_cmdline = cmdline_merge(e.old_cmdline, add, remove);
                newtext = e.new_cmdline ? strdup_printf("%s\n", e.new_cmdline) : NULL;
        } else if (dropin) {
                /* A drop-in (ours) extends what the main configuration set. */
                _cleanup_free_ char *cur = file_var(text, GRUB_CMDLINE_VAR);
                const char *base = cur && startswith(cur, "$" GRUB_CMDLINE_VAR) ? cur + strlen("$" GRUB_CMDLINE_VAR) : "";
                e.old_cmdline = strdup(base);
                e.new_cmdline = cmdline_merge(base, add, remove);
                _cleanup_free_ char *v = e.new_cmdline ? strdup_printf("$" GRUB_CMDLINE_VAR " %s", e.new_cmdline) : NULL;
                newtext = v ? strdup_printf("# Written by gpuvirt: kernel arguments for GPU virtualization.\n"
                                            GRUB_CMDLINE_VAR "=\"%s\"\n", v)
                            : NULL;
        } else {
                _cleanup_free_ char *why = NULL;
                r = grub_cmdline_edit(text, add, remove, &newtext, &e.old_cmdline, &e.new_cmdline, &why);
                if (r < 0) {
                        boot_config_done(&c);
                        iommu_edit_done(&e);
                        return gv_error_set(err, r, NULL, r == -EINVAL ? "parse" : "edit", "/%s:%s%s", rel,
                                            r == -EINVAL ? "" : " ", why ?: errno_message(r));
                }
        }
        boot_config_done(&c);
        if (!newtext || !e.old_cmdline) {
                iommu_edit_done(&e);
                return -ENOMEM;
        }
        e.changed = !streq(newtext, text);
        if (e.changed) {
                if (*text && !(e.backup = strdup_printf("%s" BOOT_CONFIG_BACKUP_SUFFIX, rel))) {
                        iommu_edit_done(&e);
                        return -ENOMEM;
                }
                /* mode, owner and a symlinked file kept; the previous contents in the backup */
                r = root_edit_file(root, newtext, *text ? BOOT_CONFIG_BACKUP_SUFFIX : NULL, "%s", rel);
                if (r < 0) {
                        iommu_edit_done(&e);
                        return r;
                }
        }
        *ret = e;
        return 0;
}
