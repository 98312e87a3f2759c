/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fault injection: <root>/.gpuvirt-sim/faults holds one "ATTR ERRNO-NAME" line per queued fault. ATTR is
 * a path suffix matched on whole components against the written path (as given and as resolved), or
 * "probe:<driver>" for the next probe by that driver, or "@N" for the N-th kernel write from now (every
 * write counts the "@N" lines down). The first matching line is consumed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "sim-internal.h"
#include "sim/nvml/generation.h"

static bool suffix_matches(const char *path, const char *attr) {
        size_t lp = strlen(path), la = strlen(attr);
        if (la == 0 || la > lp || !streq(path + lp - la, attr))
                return false;
        return lp == la || path[lp - la - 1] == '/' || attr[0] == '/';
}

static bool fault_matches(const char *attr, const char *const *paths, size_t n_paths) {
        for (size_t i = 0; i < n_paths; i++) {
                if (startswith(attr, "probe:") || startswith(paths[i], "probe:")) {
                        if (streq(attr, paths[i]))
                                return true;
                } else if (suffix_matches(paths[i], attr))
                        return true;
        }
        return false;
}

static int errno_parse(const char *s) {
        int e = errno_from_name(s);
        if (e > 0)
                return e;
        if (parse_int(s, &e) >= 0 && e > 0)
                return e;
        return -EINVAL;
}

/* "@N": the N-th kernel write from now, whatever its path. */
static int countdown(const char *attr) {
        int n;
        if (attr[0] != '@' || parse_int(attr + 1, &n) < 0 || n < 1)
                return -1;
        return n;
}

int sim_fault_take(const char *root, const char *const *paths, size_t n_paths, bool is_write) {
        _cleanup_free_ char *p = strdup_printf("%s/" SIM_MARKER_DIR "/faults", root);
        if (!p)
                return -ENOMEM;
        void *buf = NULL;
        size_t size = 0;
        int r = read_full(p, 1 << 20, &buf, &size);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        _cleanup_free_ char *text = buf;
        _cleanup_free_ char *out = malloc(size * 2 + 32);
        if (!out)
                return -ENOMEM;
        size_t o = 0;
        int fired = 0;
        bool changed = false;
        for (char *line = text; *line;) {
                char *nl = strchrnul(line, '\n');
                char *sp = memrchr(line, ' ', (size_t)(nl - line));
                _cleanup_free_ char *attr = sp ? strndup(line, (size_t)(sp - line)) : NULL;
                _cleanup_free_ char *name = sp ? strndup(sp + 1, (size_t)(nl - sp - 1)) : NULL;
                int cd = attr ? countdown(attr) : -1;
                bool keep = true;
                if (attr && name && fired == 0) {
                        if (cd > 0 ? (is_write && cd == 1) : fault_matches(attr, paths, n_paths)) {
                                int e = streq(name, "KILL") ? SIM_FAULT_KILL : errno_parse(name);
                                fired = e > 0 ? -e : -EIO;
                                keep = false;
                        }
                }
                if (!keep)
                        changed = true;
                else if (cd > 1 && is_write) {
                        o += (size_t)sprintf(out + o, "@%d %s\n", cd - 1, name);
                        changed = true;
                } else {
                        memcpy(out + o, line, (size_t)(nl - line));
                        o += (size_t)(nl - line);
                        out[o++] = '\n';
                }
                line = *nl ? nl + 1 : nl;
        }
        if (changed) {
                r = sim_file(p, 0644, out, o);
                if (r < 0)
                        return r;
        }
        /* A crash at this point: the process dies before the kernel sees the write (kill -9). */
        if (fired == -SIM_FAULT_KILL)
                raise(SIGKILL);
        return fired;
}

int sim_inject_fault(const char *rootdir, const char *attr, int error) {
        if (isempty(attr) || strchr(attr, '\n') || strchr(attr, ' '))
                return -EINVAL;
        error = error < 0 ? -error : error;
        const char *name = error == SIM_FAULT_KILL ? "KILL" : errno_to_name(error);
        if (!name)
                return -EINVAL;
        _cleanup_free_ char *marker = strdup_printf("%s/" SIM_MARKER_DIR, rootdir);
        _cleanup_free_ char *p = strdup_printf("%s/" SIM_MARKER_DIR "/faults", rootdir);
        _cleanup_free_ char *line = strdup_printf("%s %s\n", attr, name);
        if (!marker || !p || !line)
                return -ENOMEM;
        if (!dir_exists(marker))
                return -ENOENT;
        return write_file(p, line, strlen(line), O_CREAT | O_APPEND, 0644);
}

int sim_device_off_bus(const char *rootdir, const char *bdf) {
        _cleanup_free_ char *cfg = strdup_printf("%s/sys/bus/pci/devices/%s/config", rootdir, bdf);
        _cleanup_free_ void *old = NULL;
        size_t n = 0;
        if (!cfg)
                return -ENOMEM;
        int r = read_full(cfg, 4096, &old, &n);
        if (r < 0)
                return r == -ENOENT ? -ENODEV : r;
        memset(old, 0xff, n);
        r = write_file(cfg, old, n, O_TRUNC, 0644);
        if (r >= 0)
                sim_nvml_generation_touch(rootdir); /* NVML finds the GPU lost at its next look */
        return r;
}
