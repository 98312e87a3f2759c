/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "cli/common.h"
#include "cli/output.h"
#include "config.h"
#include "core/health/health.h"
#include "core/host/check.h"
#include "core/host/inventory.h"
#include "core/mig/mig.h"
#include "core/mig/nvml.h"
#include "core/host/iommu.h"
#include "core/host/names.h"
#include "core/host/pci.h"
#include "core/host/root.h"
#include "sim/sim.h"

/* ---- list / show ---- */

/* MIG state from NVML where it is available (never required: list works without it). */
static void add_mig_from_nvml(Root *root, json_object *o) {
        _cleanup_nvml_close_ Nvml *n = NULL;
        MigGpu *gpus = NULL;
        size_t ng = 0;
        if (nvml_open(root, &n, NULL) < 0 || mig_gpus_read(n, &gpus, &ng) < 0)
                return;
        inventory_add_mig(o, gpus, ng);
        free(gpus);
}


static char *short_link(json_object *dev) {
        json_object *link = json_object_object_get(dev, "link");
        if (!link)
                return strdup("-");
        const char *sp = json_object_get_string(json_object_object_get(link, "speed"));
        int w = json_object_get_int(json_object_object_get(link, "width"));
        char speed[32] = "?";
        if (sp) {
                snprintf(speed, sizeof speed, "%s", sp);
                char *gt = strstr(speed, " GT/s");
                if (gt)
                        strcpy(gt, "GT/s");
                char *dot0 = strstr(speed, ".0GT");
                if (dot0)
                        memmove(dot0, dot0 + 2, strlen(dot0 + 2) + 1);
        }
        return strdup_printf("%s x%d", speed, w);
}

static char *vgpu_summary(json_object *modes) {
        json_object *mdev = json_object_object_get(modes, "mdev");
        json_object *vv = json_object_object_get(modes, "vendor_vgpu");
        if (mdev) {
                json_object *types = json_object_object_get(mdev, "types");
                size_t n = json_object_array_length(types);
                int avail = 0;
                for (size_t i = 0; i < n; i++) {
                        int a = json_object_get_int(
                                json_object_object_get(json_object_array_get_idx(types, i), "available_instances"));
                        avail += a > 0;
                }
                return strdup_printf("mdev: %zu types (%d available)", n, avail);
        }
        if (vv) {
                json_object *vfs = json_object_object_get(vv, "vfs");
                if (vfs)
                        return strdup_printf("vendor: %zu types, %d/%d VFs used",
                                             json_object_array_length(json_object_object_get(vv, "types")),
                                             json_object_get_int(json_object_object_get(vv, "vfs_in_use")),
                                             json_object_get_int(vfs));
                return strdup_printf("vendor: type %d", json_object_get_int(json_object_object_get(vv, "current_type")));
        }
        return strdup("-");
}

static char *passthrough_summary(json_object *modes) {
        json_object *pt = json_object_object_get(modes, "passthrough");
        if (json_object_get_boolean(json_object_object_get(pt, "bound")))
                return strdup("bound to vfio");
        if (json_object_get_boolean(json_object_object_get(pt, "ready")))
                return strdup("ready");
        return strdup_printf("no: %s", json_object_get_string(json_object_object_get(pt, "reason")));
}

static char *mig_summary(json_object *modes) {
        json_object *m = json_object_object_get(modes, "mig");
        if (!json_object_get_boolean(json_object_object_get(m, "capable")))
                return strdup("-");
        json_object *mode = json_object_object_get(m, "mig_mode");
        if (!mode)
                return strdup("capable");
        const char *cur = json_object_get_string(json_object_object_get(mode, "current"));
        const char *pend = json_object_get_string(json_object_object_get(mode, "pending"));
        if (cur && pend && !streq(cur, pend))
                return strdup_printf("%s, %s after reset", cur, pend);
        if (!cur || !streq(cur, "enabled"))
                return strdup("disabled");
        int n = json_object_get_int(json_object_object_get(m, "instances"));
        return strdup_printf("enabled, %d instance%s", n, n == 1 ? "" : "s");
}

static char *sriov_summary(json_object *modes) {
        json_object *s = json_object_object_get(modes, "sriov");
        if (!s)
                return strdup("-");
        return strdup_printf("%d/%d VFs", json_object_get_int(json_object_object_get(s, "num_vfs")),
                             json_object_get_int(json_object_object_get(s, "total_vfs")));
}

/* The inventory's "state" for a reader. */
/* Health from the state file of a running (or last run) gpuvirtd, where there is one. */
static void add_health(const Root *root, json_object *o) {
        json_object *map = NULL;
        _cleanup_(gv_error_done) GvError err = {};
        if (health_file_read(root, &map, &err) < 0) {
                log_warning("Cannot read gpuvirtd's health file: %s", strna(gv_error_message(&err)));
                return;
        }
        bool one = json_object_is_type(o, json_type_object);
        size_t n = one ? 1 : json_object_array_length(o);
        for (size_t i = 0; map && i < n; i++) {
                json_object *d = one ? o : json_object_array_get_idx(o, i);
                json_object *e = json_object_object_get(map, json_text(json_object_object_get(d, "address")));
                if (e)
                        json_object_object_add(d, "health", json_object_get(e));
        }
        json_object_put(map);
}

static char *health_summary(json_object *d, bool full) {
        json_object *h = json_object_object_get(d, "health");
        const char *st = json_text(json_object_object_get(h, "health"));
        const char *why = json_text(json_object_object_get(h, "reason"));
        if (!h)
                return strdup("-");
        if (!full || !why)
                return strdup_printf("%s%s%s", st, full ? " since " : "", full ? json_text(json_object_object_get(h, "since")) : "");
        return strdup_printf("%s (%s, since %s)", st, why, json_text(json_object_object_get(h, "since")));
}

static const char *state_text(const char *st) {
        return streq(st, "off_bus")  ? "DOES NOT ANSWER ON THE BUS (config space reads 0xff)" :
               streq(st, "vanished") ? "DEVICE VANISHED (its sysfs directory is gone)" :
               streq(st, "unreadable") ? "DEVICE UNREADABLE (its sysfs directory or config space cannot be read)" :
                                        st;
}

static int print_list_text(json_object *list) {
        static const char *const headers[] = {"ADDRESS", "NAME", "DRIVER", "GROUP", "NUMA", "LINK",
                                              "PASSTHROUGH", "SR-IOV", "VGPU", "MIG", "HEALTH"};
        size_t n = json_object_array_length(list);
        bool health = false; /* the column only while gpuvirtd keeps a state file */
        for (size_t i = 0; i < n; i++)
                health |= json_object_object_get(json_object_array_get_idx(list, i), "health") != NULL;
        Table *t = table_new(ELEMENTSOF(headers) - !health, headers);
        if (!t)
                return log_error_errno(ENOMEM, "Out of memory.");
        for (size_t i = 0; i < n; i++) {
                json_object *d = json_object_array_get_idx(list, i), *modes = json_object_object_get(d, "modes");
                json_object *grp = json_object_object_get(d, "iommu_group");
                size_t others = json_object_array_length(json_object_object_get(d, "group_members"));
                _cleanup_free_ char *g = grp ? (others ? strdup_printf("%d (+%zu)", json_object_get_int(grp), others) :
                                                         strdup_printf("%d", json_object_get_int(grp)))
                                             : strdup("-");
                _cleanup_free_ char *numa = strdup_printf("%d", json_object_get_int(json_object_object_get(d, "numa_node")));
                _cleanup_free_ char *link = short_link(d), *pt = passthrough_summary(modes),
                                    *sr = sriov_summary(modes), *vg = vgpu_summary(modes);
                _cleanup_free_ char *mig = mig_summary(modes), *hl = health_summary(d, false);
                const char *cells[] = {
                        json_text(json_object_object_get(d, "address")),
                        json_text(json_object_object_get(d, "name")),
                        json_text(json_object_object_get(d, "driver")),
                        g, numa, link, pt, sr, vg, mig, hl,
                };
                if (table_add_row(t, cells) < 0) {
                        table_free(t);
                        return log_error_errno(ENOMEM, "Out of memory.");
                }
        }
        if (n == 0)
                printf("No GPU (display-class PCI device) found.\n");
        else
                table_print(t, stdout);
        table_free(t);
        for (size_t i = 0; i < n; i++) {
                json_object *d = json_object_array_get_idx(list, i);
                const char *st = json_text(json_object_object_get(d, "state"));
                if (st && !streq(st, "ok") && !streq(st, "unknown"))
                        printf("%s: %s; see 'gpuvirt check'\n", json_text(json_object_object_get(d, "address")),
                               state_text(st));
        }
        return 0;
}

static void list_opt(int c, const char *v, void *ud) {
        *(bool *)ud = true;
}

int verb_list(int argc, char **argv) {
        static const struct option opts[] = {{"vfs", no_argument, NULL, 'V'}, {}};
        bool vfs = false;
        int k = parse_verb_options(argc, argv, opts, "", list_opt, &vfs);
        if (k < 0)
                return -EINVAL; /* parse_verb_options() said why */
        if (k != argc)
                return usage_error("list: unexpected argument '%s'", argv[k]);

        _cleanup_root_free_ Root *root = NULL;
        _cleanup_pci_host_free_ PciHost *h = NULL;
        _cleanup_pci_names_free_ PciNames *names = NULL;
        int r;
        if ((r = open_root(0, &root)) || (r = scan_gpus(root, &h)))
                return r;
        (void)pci_names_new(&names);
        _cleanup_json_ json_object *list = NULL;
        if (inventory_list(h, names, vfs, &list) < 0)
                return log_oom();
        add_mig_from_nvml(root, list);
        add_health(root, list);
        r = arg.json ? json_print(list, stdout) : print_list_text(list);
        return r < 0 ? log_oom() : 0;
}

static void kv(const char *k, const char *v) {
        printf("  %-14s %s\n", k, v ?: "-");
}

static int print_show_text(json_object *d) {
        json_object *modes = json_object_object_get(d, "modes");
        printf("%s  %s %s\n", json_text(json_object_object_get(d, "address")),
               json_text(json_object_object_get(d, "vendor_name")), json_text(json_object_object_get(d, "name")));
        _cleanup_free_ char *ids = strdup_printf(
                "%s:%s (subsystem %s:%s), class %s", json_text(json_object_object_get(d, "vendor_id")),
                json_text(json_object_object_get(d, "device_id")),
                json_text(json_object_object_get(d, "subsystem_vendor_id")),
                json_text(json_object_object_get(d, "subsystem_device_id")), json_text(json_object_object_get(d, "class")));
        const char *st = json_text(json_object_object_get(d, "state"));
        if (st && !streq(st, "ok"))
                kv("state", streq(st, "unknown") ? "unknown (no config space to read)" : state_text(st));
        kv("ids", ids);
        if (json_object_object_get(d, "health")) {
                _cleanup_free_ char *hl = health_summary(d, true);
                kv("health", hl);
        }
        kv("driver", json_text(json_object_object_get(d, "driver")));
        if (json_object_object_get(d, "driver_override"))
                kv("override", json_text(json_object_object_get(d, "driver_override")));
        kv("parent", json_text(json_object_object_get(d, "parent")));
        if (json_object_object_get(d, "physfn"))
                kv("physfn", json_text(json_object_object_get(d, "physfn")));
        kv("numa node", json_text(json_object_object_get(d, "numa_node")));
        json_object *link = json_object_object_get(d, "link");
        if (link) {
                _cleanup_free_ char *l = strdup_printf(
                        "%s x%s (max %s x%s)", json_text(json_object_object_get(link, "speed")),
                        json_text(json_object_object_get(link, "width")), json_text(json_object_object_get(link, "max_speed")),
                        json_text(json_object_object_get(link, "max_width")));
                kv("pcie link", l);
        } else
                kv("pcie link", "-");
        kv("boot vga", json_text(json_object_object_get(d, "boot_vga")));
        json_object *grp = json_object_object_get(d, "iommu_group");
        json_object *members = json_object_object_get(d, "group");
        size_t n = json_object_array_length(members);
        _cleanup_free_ char *g = grp ? strdup_printf("%d%s", json_object_get_int(grp), n ? "" : " (alone)") :
                                       strdup("- (no IOMMU group)");
        kv("iommu group", g);
        for (size_t i = 0; i < n; i++) {
                json_object *m = json_object_array_get_idx(members, i);
                printf("  %-14s %s  %s [%s, driver %s]\n", "", json_text(json_object_object_get(m, "address")),
                       json_text(json_object_object_get(m, "name")), json_text(json_object_object_get(m, "relation")),
                       json_text(json_object_object_get(m, "driver")));
        }
        _cleanup_free_ char *pt = passthrough_summary(modes), *sr = sriov_summary(modes), *vg = vgpu_summary(modes);
        kv("passthrough", pt);
        kv("sr-iov", sr);
        json_object *s = json_object_object_get(modes, "sriov");
        if (s) {
                json_object *vfs = json_object_object_get(s, "vfs");
                size_t nv = json_object_array_length(vfs);
                for (size_t i = 0; i < nv; i++) {
                        if (i % 4 == 0)
                                printf("  %-14s", i == 0 ? "vfs" : "");
                        printf(" %s", json_text(json_object_array_get_idx(vfs, i)));
                        if (i % 4 == 3 || i + 1 == nv)
                                putchar('\n');
                }
        }
        kv("vgpu", vg);
        json_object *mdev = json_object_object_get(modes, "mdev");
        if (mdev) {
                json_object *types = json_object_object_get(mdev, "types");
                for (size_t i = 0; i < json_object_array_length(types); i++) {
                        json_object *t = json_object_array_get_idx(types, i);
                        printf("  %-14s %-18s %-16s available %s\n", "", json_text(json_object_object_get(t, "id")),
                               json_text(json_object_object_get(t, "name")),
                               json_text(json_object_object_get(t, "available_instances")));
                }
        }
        json_object *vv = json_object_object_get(modes, "vendor_vgpu");
        if (vv) {
                json_object *types = json_object_object_get(vv, "types");
                for (size_t i = 0; types && i < json_object_array_length(types); i++) {
                        json_object *t = json_object_array_get_idx(types, i);
                        printf("  %-14s %-6s %s\n", "", json_text(json_object_object_get(t, "id")),
                               json_text(json_object_object_get(t, "name")));
                }
        }
        _cleanup_free_ char *mig = mig_summary(modes);
        kv("mig", mig);
        return 0;
}

int verb_show(int argc, char **argv) {
        static const struct option none[] = {{}};
        int k = parse_verb_options(argc, argv, none, "", NULL, NULL); /* only for "--" */
        if (k < 0)
                return -EINVAL; /* parse_verb_options() said why */
        if (argc - k != 1)
                return usage_error("show: expected one device address: gpuvirt show BDF");
        _cleanup_root_free_ Root *root = NULL;
        _cleanup_pci_host_free_ PciHost *h = NULL;
        _cleanup_pci_names_free_ PciNames *names = NULL;
        PciDevice *d;
        int r;
        if ((r = open_root(0, &root)) || (r = scan(root, &h)) || (r = lookup_device(h, argv[k], &d)))
                return r;
        (void)pci_names_new(&names);
        _cleanup_json_ json_object *o = NULL;
        if (inventory_device(h, names, d, &o) < 0)
                return log_oom();
        add_mig_from_nvml(root, o);
        add_health(root, o);
        r = arg.json ? json_print(o, stdout) : print_show_text(o);
        return r < 0 ? log_oom() : 0;
}

/* ---- check ---- */

static void check_opt(int c, const char *v, void *ud) {
        *(const char **)ud = v;
}

static const char *status_label(CheckStatus s) {
        static const char *const l[] = {"PASS", "WARN", "FAIL", "SKIP"};
        return s >= 0 && s < _CHECK_STATUS_MAX ? l[s] : "?";
}

/* The command of a check's fix (check.h), with the CLI's options: core says what it does. */
static char *check_fix_text(const CheckResult *x) {
        switch (x->fix) {
        case GV_HINT_FORCE:
                return strdup(" unless --force");
        case GV_HINT_TAKE_GROUP: {
                _cleanup_free_ char *t = strdup_printf(" (gpuvirt passthrough enable %s --force", strna(x->device));
                for (char **d = x->fix_devices; t && d && *d; d++) {
                        char *n = strdup_printf("%s --include %s", t, *d);
                        free(t);
                        t = n;
                }
                return t ? strdup_printf("%s)", t) : NULL;
        }
        default:
                return strdup("");
        }
}

static int print_check_text(const CheckReport *rep, const PciHost *h) {
        _cleanup_pci_names_free_ PciNames *names = NULL;
        (void)pci_names_new(&names);
        const char *last_dev = "";
        unsigned count[_CHECK_STATUS_MAX] = {};
        for (size_t i = 0; i < rep->n_results; i++) {
                const CheckResult *x = &rep->results[i];
                const char *dev = x->device ?: "";
                if (!streq(dev, last_dev) || i == 0) {
                        if (!x->device)
                                printf("Host\n");
                        else {
                                PciDevice *d = pci_host_find(h, x->device);
                                _cleanup_free_ char *nm = d ? pci_names_device(names, d->vendor, d->device) : NULL;
                                printf("\nGPU %s  %s\n", x->device, strna(nm));
                        }
                        last_dev = dev;
                }
                count[x->status]++;
                _cleanup_free_ char *label = strdup_printf("Checking %s", x->title), *hint = NULL;
                if (!label || check_hint_text(x, check_fix_text, &hint) < 0)
                        return -ENOMEM;
                printf("  %-44s : %s  %s\n", label, status_label(x->status), x->message);
                if (hint && x->status != CHECK_PASS) {
                        /* indent every line of the hint */
                        const char *p = hint;
                        bool first = true;
                        while (*p) {
                                const char *e = strchrnul(p, '\n');
                                printf("  %-44s   %s %.*s\n", "", first ? "fix:" : "    ", (int)(e - p), p);
                                first = false;
                                p = *e ? e + 1 : e;
                        }
                }
        }
        printf("\nSummary: %u pass, %u warn, %u fail, %u skip\n", count[CHECK_PASS], count[CHECK_WARN],
               count[CHECK_FAIL], count[CHECK_SKIP]);
        return 0;
}

int verb_check(int argc, char **argv) {
        static const struct option opts[] = {{"device", required_argument, NULL, 'd'}, {}};
        const char *device = NULL;
        int k = parse_verb_options(argc, argv, opts, "d:", check_opt, &device);
        if (k < 0)
                return -EINVAL; /* parse_verb_options() said why */
        if (k != argc)
                return usage_error("check: unexpected argument '%s'", argv[k]);

        _cleanup_root_free_ Root *root = NULL;
        _cleanup_pci_host_free_ PciHost *h = NULL;
        _cleanup_check_report_free_ CheckReport *rep = NULL;
        PciDevice *d = NULL;
        int r;
        /* one device may be any device, checked with its group: all read in full */
        if ((r = open_root(0, &root)) || (r = device ? scan(root, &h) : scan_gpus(root, &h)) ||
            (device && (r = lookup_device(h, device, &d))))
                return r;
        r = check_run(h, d, &rep);
        if (r < 0)
                return log_error_errno(r, "Readiness check failed: %m"), failure_errno(r);
        if (arg.json) {
                _cleanup_json_ json_object *o = check_report_json(rep, check_fix_text);
                if (!o || json_print(o, stdout) < 0)
                        return log_oom();
        } else if (print_check_text(rep, h) < 0)
                return log_oom();
        return check_report_failed(rep) ? VERB_CHECK_FAILED : 0;
}

