/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What goes wrong with a GPU while a host runs, played on a simulated host for gpuvirtd's health model:
 * PCIe AER counters (the kernel's aer_dev_correctable / aer_dev_nonfatal / aer_dev_fatal attributes), a
 * link that trained down, a surprise removal, and on the fake NVML's side Xid events, telemetry and ECC
 * counts, and a failing driver (the files src/sim/nvml/fake-nvml.c reads).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "core/vm/hostdev.h"
#include "sim-internal.h"
#include "sim/nvml/generation.h"

/* The kernel's names of the AER errors it counts per device (drivers/pci/pcie/aer.c), per attribute. */
static const char *const aer_cor[] = {"RxErr", "BadTLP", "BadDLLP", "Rollover", "Timeout", "NonFatalErr",
                                      "CorrIntErr", "HeaderOF", NULL};
static const char *const aer_uncor[] = {"Undefined", "DLP", "SDES", "TLP", "FCP", "CmpltTO", "CmpltAbrt",
                                        "UnxCmplt", "RxOF", "MalfTLP", "ECRC", "UnsupReq", "ACSViol",
                                        "UncorrIntErr", "BlockedTLP", "AtomicOpBlocked", "TLPBlockedErr",
                                        "PoisonTLPBlocked", NULL};

static const struct {
        const char *attr, *total, *bump; /* bump: the error an injection counts */
        const char *const *names;
} aer_kinds[_SIM_AER_MAX] = {
        [SIM_AER_CORRECTABLE] = {"aer_dev_correctable", "TOTAL_ERR_COR", "RxErr", aer_cor},
        [SIM_AER_NONFATAL] = {"aer_dev_nonfatal", "TOTAL_ERR_NONFATAL", "CmpltTO", aer_uncor},
        [SIM_AER_FATAL] = {"aer_dev_fatal", "TOTAL_ERR_FATAL", "DLP", aer_uncor},
};

int sim_aer_kind_from_string(const char *s) {
        static const char *const n[_SIM_AER_MAX] = {"correctable", "nonfatal", "fatal"};
        for (int i = 0; i < _SIM_AER_MAX; i++)
                if (streq(s, n[i]))
                        return i;
        return -EINVAL;
}

/* Rewrite dir's AER attribute of the kind with `add` more errors (0: write the zero counters). */
int sim_aer_write(const char *dir, SimAerKind kind, uint64_t add) {
        if (kind < 0 || kind >= _SIM_AER_MAX)
                return -EINVAL;
        _cleanup_free_ char *p = strdup_printf("%s/%s", dir, aer_kinds[kind].attr);
        _cleanup_free_ void *old = NULL;
        size_t n = 0;
        if (!p)
                return -ENOMEM;
        int r = read_full(p, 1 << 16, &old, &n);
        if (r < 0 && r != -ENOENT)
                return r;
        size_t k;
        for (k = 0; aer_kinds[kind].names[k]; k++)
                ;
        uint64_t counts[32] = {}, total = 0;
        for (char *line = old, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                char name[32];
                uint64_t v;
                if (sscanf(line, "%31s %" SCNu64, name, &v) != 2)
                        continue;
                for (size_t i = 0; i < k; i++)
                        if (streq(name, aer_kinds[kind].names[i]))
                                counts[i] = v;
        }
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < k; i++) {
                if (streq(aer_kinds[kind].names[i], aer_kinds[kind].bump))
                        counts[i] += add;
                total += counts[i];
                fprintf(f, "%s %" PRIu64 "\n", aer_kinds[kind].names[i], counts[i]);
        }
        fprintf(f, "%s %" PRIu64 "\n", aer_kinds[kind].total, total);
        if (fclose(f) != 0)
                return -ENOMEM;
        return write_file(p, text, len, O_CREAT | O_TRUNC, 0444);
}

static char *device_dir(const char *rootdir, const char *bdf) {
        return strdup_printf("%s/sys/bus/pci/devices/%s", rootdir, bdf);
}

int sim_device_aer(const char *rootdir, const char *bdf, SimAerKind kind, uint64_t add) {
        _cleanup_free_ char *dir = device_dir(rootdir, bdf);
        if (!dir)
                return -ENOMEM;
        if (!dir_exists(dir))
                return -ENODEV;
        return sim_aer_write(dir, kind, add);
}

int sim_device_link(const char *rootdir, const char *bdf, const char *speed, unsigned width) {
        _cleanup_free_ char *dir = device_dir(rootdir, bdf);
        if (!dir)
                return -ENOMEM;
        if (!dir_exists(dir))
                return -ENODEV;
        _cleanup_free_ char *max = strdup_printf("%s/max_link_speed", dir);
        if (!max)
                return -ENOMEM;
        if (!path_exists(max))
                return -EOPNOTSUPP; /* no PCIe link */
        int r = sim_attr(dir, "current_link_speed", 0444, "%s\n", speed);
        return r < 0 ? r : sim_attr(dir, "current_link_width", 0444, "%u\n", width);
}

int sim_device_remove(const char *rootdir, const char *bdf) {
        _cleanup_free_ char *link = device_dir(rootdir, bdf), *real = NULL;
        if (!link)
                return -ENOMEM;
        int r = readlink_resolved(link, &real);
        if (r < 0)
                return r == -ENOENT ? -ENODEV : r;
        /* the kernel removes the device (and any function below it) and its bus link */
        r = rm_rf(real);
        if (r < 0)
                return r;
        return unlink(link) < 0 ? -errno : 0;
}

/* ---- the fake NVML's files ---- */

static char *nvml_file(const char *rootdir, const char *bdf, const char *suffix) {
        return strdup_printf("%s/" SIM_MARKER_DIR "/nvml/%s%s", rootdir, bdf ?: "", suffix);
}

static int nvml_dir(const char *rootdir) {
        _cleanup_free_ char *d = strdup_printf("%s/" SIM_MARKER_DIR "/nvml", rootdir);
        return d ? mkdir_p(d, 0755) : -ENOMEM;
}

/* Append one line to a file of the fake NVML about an existing device (.gpuvirt-sim/nvml/<bdf><suffix>). */
static int nvml_append(const char *rootdir, const char *bdf, const char *suffix, const char *line) {
        _cleanup_free_ char *dev = device_dir(rootdir, bdf), *p = nvml_file(rootdir, bdf, suffix);
        if (!dev || !p || !line)
                return -ENOMEM;
        if (!path_exists(dev))
                return -ENODEV;
        int r = nvml_dir(rootdir);
        if (r < 0)
                return r;
        return write_file(p, line, strlen(line), O_CREAT | O_APPEND, 0644);
}

int sim_nvml_xid(const char *rootdir, const char *bdf, unsigned xid) {
        _cleanup_free_ char *line = strdup_printf("%u\n", xid);
        return nvml_append(rootdir, bdf, ".xid", line);
}

static const char *const telemetry_keys[] = {"util_gpu", "util_mem", "mem_used_mib", "temp", "power_mw",
                                             "clock_sm", "clock_mem", "ecc_sbe", "ecc_dbe", NULL};

int sim_nvml_telemetry(const char *rootdir, const char *bdf, const char *key, uint64_t value) {
        if (!strv_contains((char *const *)telemetry_keys, key))
                return -EINVAL;
        /* the fake library takes the last line of a key */
        _cleanup_free_ char *line = strdup_printf("%s %" PRIu64 "\n", key, value);
        return nvml_append(rootdir, bdf, ".telemetry", line);
}

static const char *const vgpu_num_keys[] = {"util_sm", "util_mem", "util_enc", "util_dec", "fb_used_mib", NULL};
static const char *const license_states[] = {"licensed", "unlicensed", "restricted", "unrestricted", "uninitialized",
                                             NULL};

int sim_nvml_vgpu(const char *rootdir, const char *unit, const char *key, const char *value) {
        bool mdev = uuid_is_valid(unit);
        _cleanup_free_ char *dev = mdev ? strdup_printf("%s/sys/bus/mdev/devices/%s", rootdir, unit) :
                                          device_dir(rootdir, unit);
        _cleanup_free_ char *p = strdup_printf("%s/" SIM_MARKER_DIR "/nvml/vgpu-%s", rootdir, unit);
        if (!dev || !p)
                return -ENOMEM;
        if (!path_exists(dev))
                return -ENODEV;
        unsigned y, mo, d, h, mi, sec;
        char end;
        uint32_t v;
        if (streq(key, "vm")) {
                if (strpbrk(value, " \t\n"))
                        return -EDOM;
        } else if (streq(key, "license")) {
                if (!strv_contains((char *const *)license_states, value))
                        return -EDOM;
        } else if (streq(key, "expiry")) {
                if (!streq(value, "permanent") &&
                    (sscanf(value, "%4u-%2u-%2uT%2u:%2u:%2u%c", &y, &mo, &d, &h, &mi, &sec, &end) != 6 || mo < 1 ||
                     mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60))
                        return -EDOM;
        } else if (strv_contains((char *const *)vgpu_num_keys, key)) {
                if (parse_u32(value, 10, &v) < 0 || (startswith(key, "util_") && v > 100))
                        return -EDOM;
        } else
                return -EINVAL;
        int r = nvml_dir(rootdir);
        if (r < 0)
                return r;
        /* the fake library takes the last line of a key */
        _cleanup_free_ char *line = strdup_printf("%s %s\n", key, value);
        return line ? write_file(p, line, strlen(line), O_CREAT | O_APPEND, 0644) : -ENOMEM;
}

int sim_nvml_fail(const char *rootdir, int nvml_return) {
        _cleanup_free_ char *p = nvml_file(rootdir, NULL, "fail");
        if (!p)
                return -ENOMEM;
        int r;
        if (nvml_return == 0)
                r = unlink(p) < 0 && errno != ENOENT ? -errno : 0;
        else {
                r = nvml_dir(rootdir);
                if (r < 0)
                        return r;
                char line[16];
                int n = snprintf(line, sizeof line, "%d\n", nvml_return);
                r = write_file(p, line, (size_t)n, O_CREAT | O_TRUNC, 0644);
        }
        if (r >= 0)
                sim_nvml_generation_touch(rootdir); /* the library's callers look at nvml/fail again */
        return r;
}
