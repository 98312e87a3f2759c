/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "cli/common.h"
#include "cli/output.h"
#include "core/passthrough/persist.h"
#include "core/passthrough/vfio.h"

typedef struct PtArgs {
        bool force, persist, ids, remove;
        char **include;
        size_t n_include;
        bool bad_include;
} PtArgs;

enum { OPT_FORCE = 0x100, OPT_INCLUDE, OPT_PERSIST, OPT_IDS, OPT_REMOVE };

static void pt_opt(int c, const char *v, void *ud) {
        PtArgs *a = ud;
        switch (c) {
        case OPT_FORCE:
                a->force = true;
                break;
        case OPT_PERSIST:
                a->persist = true;
                break;
        case OPT_IDS:
                a->ids = true;
                break;
        case OPT_REMOVE:
                a->remove = true;
                break;
        case OPT_INCLUDE: {
                char *canon = NULL;
                if (pci_addr_canonical(v, &canon) < 0) {
                        log_error("--include '%s' is not a PCI address (expected DDDD:BB:DD.F).", v);
                        a->bad_include = true;
                        return;
                }
                if (strv_push(&a->include, &a->n_include, canon) < 0) {
                        free(canon);
                        log_error("Out of memory.");
                        a->bad_include = true; /* refused: nothing is done */
                }
                break;
        }
        }
}

/* NULL: out of memory */
static json_object *report_json(const char *device, VfioReport *r) {
        _cleanup_json_ json_object *o = json_object_new_object();
        json_object *a = json_object_new_array();
        if (json_add_string(o, "device", device) < 0 ||
            json_add_int_or_null(o, "iommu_group", r->group >= 0, r->group) < 0 ||
            json_add(o, "functions", a) < 0)
                return NULL;
        for (size_t i = 0; i < r->n_changes; i++) {
                json_object *c = json_object_new_object();
                if (json_append(a, c) < 0 || json_add_string(c, "address", r->changes[i].addr) < 0 ||
                    json_add_string(c, "from", r->changes[i].from) < 0 || json_add_string(c, "to", r->changes[i].to) < 0 ||
                    json_add(c, "changed", json_object_new_boolean(r->changes[i].changed)) < 0)
                        return NULL;
        }
        _cleanup_free_ char *err = r->error.error ? error_text(&r->error, -r->error.error) : NULL;
        if ((r->error.error && !err) || json_add_string(o, "error", err) < 0)
                return NULL;
        return TAKE_PTR(o);
}

static void report_text(const VfioReport *r, bool enable, bool dry_run) {
        for (size_t i = 0; i < r->n_changes; i++) {
                const VfioChange *c = &r->changes[i];
                if (c->changed)
                        printf("%s: %s -> %s\n", c->addr, c->from ?: "(none)", c->to ?: "(none)");
                else
                        printf("%s: already on %s\n", c->addr, c->to ?: "(no driver)");
        }
        if (enable && r->group >= 0 && !dry_run)
                printf("IOMMU group %d is viable: /dev/vfio/%d\n", r->group, r->group);
}

/* --persist: a boot binding for the named device and every other function the command moved with it (the
 * card's audio function, included group members), so the udev rule claims each one before its native
 * driver loads; disable removes the bindings of the same set, whichever function was named. The addresses
 * written are added to *written (for the undo of a failed command). */
static int persist_functions(Root *root, const char *canon, const VfioReport *rep, bool enable, const PtArgs *a,
                             char ***written, size_t *n_written) {
        for (size_t i = 0; i <= rep->n_changes; i++) {
                const char *addr = i == 0 ? canon : rep->changes[i - 1].addr;
                if (i > 0 && streq(addr, canon))
                        continue;
                int r = enable ? vfio_persist_add(root, addr, a->force, a->include) : vfio_persist_remove(root, addr);
                if (r < 0)
                        return r;
                if (enable && !arg.json && !arg.dry_run)
                        printf("%s: binding applied at boot (" VFIO_PERSIST_DIR "/%s)\n", addr, addr);
                else if (!enable && !arg.json && !arg.dry_run)
                        printf("%s: binding no longer applied at boot (" VFIO_PERSIST_DIR "/%s)\n", addr, addr);
                if (enable) {
                        char *d = strdup(addr);
                        if (!d || strv_push(written, n_written, d) < 0)
                                return free(d), -ENOMEM;
                }
        }
        return 0;
}

static int do_enable_disable(bool enable, int argc, char **argv, int first, const PtArgs *a) {
        /* every address is read before the root is opened: bad usage takes no host lock and touches nothing */
        _cleanup_strv_free_ char **addrs = NULL;
        size_t n_addrs = 0;
        for (int i = first; i < argc; i++) {
                char *canon = NULL;
                if (pci_addr_canonical(argv[i], &canon) < 0) {
                        log_error("'%s' is not a PCI address (expected DDDD:BB:DD.F or BB:DD.F).", argv[i]);
                        return -EINVAL;
                }
                if (strv_push(&addrs, &n_addrs, canon) < 0)
                        return free(canon), log_oom();
        }
        _cleanup_root_free_ Root *root = NULL;
        int r = open_root(0, &root);
        if (r)
                return r;
        VfioOptions o = {.force = a->force, .include = a->include, .settle_ms = 2000};
        _cleanup_json_ json_object *out = json_object_new_array();
        size_t n_done = 0; /* addrs[0..n_done): devices enabled by this command, to undo if a later one fails */
        _cleanup_strv_free_ char **persisted = NULL; /* boot bindings written by this command, likewise */
        size_t n_persisted = 0;
        int rc = 0;
        for (size_t i = 0; i < n_addrs; i++) {
                VfioReport rep;
                char *canon = strdup(addrs[i]);
                if (!canon) {
                        rc = log_oom();
                        break;
                }
                if (!enable && (r = vm_check_release(root, canon, a->force))) {
                        free(canon);
                        rc = r;
                        break;
                }
                r = enable ? vfio_enable(root, canon, &o, &rep) : vfio_disable(root, canon, &o, &rep);
                if (r < 0) {
                        _cleanup_free_ char *why = error_text(&rep.error, r);
                        log_error("%s %s: %s", enable ? "Cannot enable passthrough for" : "Cannot release", canon,
                                  strna(why));
                        if (json_append(out, report_json(canon, &rep)) < 0)
                                (void)log_oom();
                        vfio_report_done(&rep);
                        free(canon);
                        rc = r; /* the -errno: main() maps it */
                        break;
                }
                if (a->persist) {
                        int k = persist_functions(root, canon, &rep, enable, a, &persisted, &n_persisted);
                        if (k < 0)
                                log_warning_errno(k, "%s is %s, but its persistent binding could not be %s: %m", canon,
                                                  enable ? "on vfio-pci" : "released", enable ? "written" : "removed");
                }
                if (!arg.json)
                        report_text(&rep, enable, arg.dry_run);
                int k = json_append(out, report_json(canon, &rep));
                vfio_report_done(&rep);
                free(canon);
                n_done++;
                if (k < 0) {
                        rc = log_oom();
                        break;
                }
        }
        if (rc != 0 && enable && n_done > 0 && !arg.dry_run) {
                /* All or nothing across the devices of one command. */
                for (size_t i = n_done; i-- > 0;) {
                        VfioReport rep;
                        if (vfio_disable(root, addrs[i], &o, &rep) < 0)
                                log_error("Undoing %s failed: %s", addrs[i], gv_error_message(&rep.error) ?: "?");
                        else
                                log_notice("Undid %s.", addrs[i]);
                        vfio_report_done(&rep);
                }
                for (size_t i = 0; i < n_persisted; i++)
                        (void)vfio_persist_remove(root, persisted[i]);
        }
        if (arg.json && json_print(out, stdout) < 0 && rc == 0)
                rc = log_oom();
        return rc;
}

static int do_restore(const char *bdf) {
        /* the argument, then the boot record (the input, under the root), then the lock: input that is refused
         * changes nothing */
        _cleanup_free_ char *canon = NULL;
        if (pci_addr_canonical(bdf, &canon) < 0)
                return log_error("'%s' is not a PCI address.", bdf), -EINVAL;
        _cleanup_root_free_ Root *root = NULL;
        int r = open_root_unlocked(0, &root);
        if (r)
                return r;
        bool force = false;
        _cleanup_strv_free_ char **include = NULL;
        _cleanup_(gv_error_done) GvError bad = {};
        r = vfio_persist_read(root, canon, &force, &include, &bad);
        if (r == -ENOENT)
                return log_error("%s has no persistent binding (" VFIO_PERSIST_DIR "/%s).", canon, canon), r;
        if (r < 0)
                return log_error("Refusing the persistent binding of %s: %s", canon, bad.message ?: errno_message(r)),
                       failure_errno(r);
        if ((r = hold_host_lock(root)))
                return r;
        VfioOptions o = {.force = force, .include = include, .settle_ms = 5000};
        VfioReport rep;
        r = vfio_enable(root, canon, &o, &rep);
        if (r < 0) {
                _cleanup_free_ char *why = error_text(&rep.error, r);
                log_error("Cannot restore the vfio-pci binding of %s: %s", canon, strna(why));
        } else if (!arg.json)
                report_text(&rep, true, arg.dry_run);
        else {
                _cleanup_json_ json_object *j = report_json(canon, &rep);
                if (!j || json_print(j, stdout) < 0)
                        r = log_oom();
        }
        vfio_report_done(&rep);
        return r < 0 ? failure_errno(r) : 0;
}

/* The first line of a modprobe.d file this command creates: which command wrote it. */
#define IDS_HEADER "# Written by gpuvirt (passthrough persist --ids): bind these devices to vfio-pci at boot."

static int do_persist_ids(int argc, char **argv, int first, bool remove) {
        _cleanup_root_free_ Root *root = NULL;
        _cleanup_pci_host_free_ PciHost *h = NULL;
        int r;
        if ((r = open_root(0, &root)) || (r = scan(root, &h)))
                return r;
        char **ids = NULL, **modules = NULL;
        size_t n = 0, n_modules = 0;
        for (int i = first; i < argc; i++) {
                PciDevice *d;
                if ((r = lookup_device(h, argv[i], &d))) {
                        strv_free(ids);
                        return r;
                }
                /* the card's other functions (HDMI audio) go by ID too */
                for (size_t k = 0; k < h->n_devices; k++) {
                        PciDevice *x = &h->devices[k];
                        if (!pci_addr_same_card(&x->a, &d->a))
                                continue;
                        char *id = strdup_printf("%04x:%04x", x->vendor, x->device);
                        if (id && strv_contains(ids, id))
                                free(id);
                        else if (strv_push(&ids, &n, id) < 0) {
                                strv_free(ids);
                                strv_free(modules);
                                return log_oom();
                        }
                        /* the module of the driver it has now: vfio-pci must load before that one too (the
                         * rig's boot showed bochs, which the usual list lacks, racing it) */
                        _cleanup_free_ char *ml = root_path(root, "sys/bus/pci/devices/%s/driver/module", x->addr);
                        char *mod = NULL;
                        if (ml && readlink_base(ml, &mod) >= 0 && !streq(mod, "vfio_pci") && !strv_contains(modules, mod)) {
                                if (strv_push(&modules, &n_modules, mod) < 0) {
                                        strv_free(ids);
                                        strv_free(modules);
                                        return log_oom();
                                }
                        } else
                                free(mod);
                }
        }
        _cleanup_strv_free_ char **mods = modules;
        IdsPersistResult res;
        r = vfio_persist_ids(root, ids, mods, remove, IDS_HEADER, &res);
        if (r < 0) {
                strv_free(ids);
                return log_error_errno(r, "Cannot write the modprobe configuration: %m"), failure_errno(r);
        }
        /* ids= takes every device with those IDs: say which others that catches */
        size_t others = 0;
        for (size_t k = 0; k < h->n_devices; k++) {
                char id[16];
                snprintf(id, sizeof id, "%04x:%04x", h->devices[k].vendor, h->devices[k].device);
                if (strv_contains(ids, id))
                        others++;
        }
        if (arg.json) {
                _cleanup_json_ json_object *o = json_object_new_object();
                json_object *sd = json_object_new_array();
                r = json_add_string(o, "ids", res.ids) < 0 ||
                    json_add(o, "devices_matched", json_object_new_int((int)others)) < 0 || json_add(o, "softdeps", sd) < 0;
                for (char **m = res.softdeps; !r && m && *m; m++)
                        r = json_append(sd, json_object_new_string(*m)) < 0;
                if (r || json_add(o, "initramfs_regeneration_required",
                                  json_object_new_boolean(res.initramfs_has_gpu_driver)) < 0 ||
                    json_add_string(o, "initramfs_command", res.initramfs_command) < 0 || json_print(o, stdout) < 0) {
                        ids_persist_result_done(&res);
                        strv_free(ids);
                        return log_oom();
                }
        } else if (!res.ids)
                printf("etc/modprobe.d/vfio.conf: no vfio-pci ids= left (its softdeps went too)\n"
                       "etc/modules-load.d/vfio-pci.conf: vfio-pci no longer loaded at boot\n"
                       "Takes effect at the next boot: the devices stay on their drivers until then.\n");
        else if (remove)
                printf("etc/modprobe.d/vfio.conf: options vfio-pci ids=%s\nTakes effect at the next boot.\n", res.ids);
        else {
                printf("etc/modprobe.d/vfio.conf: options vfio-pci ids=%s (+ softdeps: vfio-pci before", res.ids);
                for (char **m = res.softdeps; m && *m; m++)
                        printf("%s %s", m == res.softdeps ? "" : ",", *m);
                printf(")\netc/modules-load.d/vfio-pci.conf: vfio-pci\n");
                printf("These IDs match %zu device(s) on this host: every one of them goes to vfio-pci at boot.\n", others);
                if (res.initramfs_has_gpu_driver)
                        printf("A GPU driver loads from the initramfs: regenerate it now (%s) or it wins the race.\n",
                               res.initramfs_command);
                else
                        printf("If GPU drivers load from your initramfs (early KMS), regenerate it: %s\n",
                               res.initramfs_command);
                printf("Takes effect at the next boot.\n");
        }
        ids_persist_result_done(&res);
        strv_free(ids);
        return 0;
}

/* The sub-verbs (the verb table dispatches them; argv[0] is "passthrough", argv[1] the sub-verb): one option
 * parser for all four, then each checks what belongs to it. */
static int pt_run(int argc, char **argv, int (*run)(int argc, char **argv, int first, const PtArgs *a)) {
        static const struct option opts[] = {
                {"force", no_argument, NULL, OPT_FORCE},   {"include", required_argument, NULL, OPT_INCLUDE},
                {"persist", no_argument, NULL, OPT_PERSIST}, {"ids", no_argument, NULL, OPT_IDS},
                {"remove", no_argument, NULL, OPT_REMOVE},
                {},
        };
        PtArgs a = {};
        int k = parse_verb_options(argc - 1, argv + 1, opts, "", pt_opt, &a);
        /* parse_verb_options() and pt_opt() said what was wrong */
        int rc = k < 0 || a.bad_include ? -EINVAL : run(argc, argv, k + 1, &a);
        strv_free(a.include);
        return rc;
}

static int pt_enable_disable(int argc, char **argv, int first, const PtArgs *a) {
        const char *sub = argv[1];
        bool enable = streq(sub, "enable");
        if (argc - first < 1)
                return usage_error("passthrough %s: expected at least one device address", sub);
        if (a->ids)
                return usage_error("passthrough %s: --ids belongs to 'passthrough persist'", sub);
        if (!enable && a->n_include)
                return usage_error("passthrough disable: --include is for enable");
        if (a->remove)
                return usage_error("passthrough %s: --remove belongs to 'passthrough persist --ids'", sub);
        return do_enable_disable(enable, argc, argv, first, a);
}

static int pt_restore(int argc, char **argv, int first, const PtArgs *a) {
        (void)a;
        int npos = argc - first;
        /* without a device: every binding (gpuvirt-vfio.service, in the boot transaction) */
        return npos > 1 ? usage_error("passthrough restore: expected at most one device address")
             : npos     ? do_restore(argv[first])
                        : restore_each(VFIO_PERSIST_DIR, do_restore);
}

static int pt_persist(int argc, char **argv, int first, const PtArgs *a) {
        if (!a->ids)
                return usage_error("passthrough persist: give --ids (per-device persistence is "
                                   "'passthrough enable --persist')");
        if (argc - first < 1)
                return usage_error("passthrough persist --ids: expected at least one device address");
        return do_persist_ids(argc, argv, first, a->remove);
}

int verb_passthrough_enable(int argc, char **argv) {
        return pt_run(argc, argv, pt_enable_disable);
}

int verb_passthrough_disable(int argc, char **argv) {
        return pt_run(argc, argv, pt_enable_disable);
}

int verb_passthrough_persist(int argc, char **argv) {
        return pt_run(argc, argv, pt_persist);
}

int verb_passthrough_restore(int argc, char **argv) {
        return pt_run(argc, argv, pt_restore);
}
