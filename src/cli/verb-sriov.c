/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "cli/common.h"
#include "cli/output.h"
#include "core/sriov/sriov.h"

typedef struct SriovArgs {
        bool vfio, force, persist;
} SriovArgs;

enum { OPT_VFIO = 0x100, OPT_FORCE, OPT_PERSIST };

static void sriov_opt(int c, const char *v, void *ud) {
        SriovArgs *a = ud;
        switch (c) {
        case OPT_VFIO:
                a->vfio = true;
                break;
        case OPT_FORCE:
                a->force = true;
                break;
        case OPT_PERSIST:
                a->persist = true;
                break;
        }
}

/* The model behind `sriov list`: one object per PF; NULL: out of memory. */
static json_object *pf_json(Root *root, const PciHost *h, const PciDevice *d) {
        _cleanup_json_ json_object *o = json_object_new_object();
        int ap = sriov_autoprobe(root, d->addr);
        if (json_add_string(o, "address", d->addr) < 0 || json_add_string(o, "driver", d->driver) < 0 ||
            json_add_int_or_null(o, "iommu_group", d->iommu_group >= 0, d->iommu_group) < 0 ||
            json_add(o, "total_vfs", json_object_new_int(d->sriov_totalvfs)) < 0 ||
            json_add(o, "num_vfs", json_object_new_int(d->sriov_numvfs)) < 0 ||
            (ap >= 0 ? json_add(o, "drivers_autoprobe", json_object_new_boolean(ap))
                     : json_add_string(o, "drivers_autoprobe", NULL)) < 0)
                return NULL;
        unsigned pn;
        bool pv;
        if (sriov_persist_read(root, d->addr, &pn, &pv, NULL) == 0) {
                json_object *p = json_object_new_object();
                if (json_add(o, "persistent", p) < 0 || json_add(p, "num_vfs", json_object_new_int((int)pn)) < 0 ||
                    json_add(p, "vfio", json_object_new_boolean(pv)) < 0)
                        return NULL;
        } else if (json_add_string(o, "persistent", NULL) < 0)
                return NULL;
        json_object *vfs = json_object_new_array();
        if (json_add(o, "vfs", vfs) < 0)
                return NULL;
        _cleanup_strv_free_ char **l = NULL;
        if (sriov_vfs(root, d->addr, &l) >= 0)
                for (size_t i = 0; l[i]; i++) {
                        const PciDevice *vf = pci_host_find(h, l[i]);
                        json_object *v = json_object_new_object();
                        _cleanup_free_ char *busy = sriov_vf_busy(root, l[i]);
                        if (json_append(vfs, v) < 0 || json_add(v, "index", json_object_new_int((int)i)) < 0 ||
                            json_add_string(v, "address", l[i]) < 0 ||
                            json_add_string(v, "driver", vf ? vf->driver : NULL) < 0 ||
                            json_add_int_or_null(v, "iommu_group", vf && vf->iommu_group >= 0, vf ? vf->iommu_group : -1) < 0 ||
                            json_add_string(v, "in_use", busy) < 0)
                                return NULL;
                }
        return TAKE_PTR(o);
}

static int print_list_text(json_object *a) {
        static const char *const hdr[] = {"DEVICE", "ROLE", "DRIVER", "VFS", "GROUP", "NOTES"};
        _cleanup_table_free_ Table *t = table_new(ELEMENTSOF(hdr), hdr);
        if (!t)
                return log_oom();
        for (size_t i = 0; i < json_object_array_length(a); i++) {
                json_object *pf = json_object_array_get_idx(a, i);
                char vfs[32], notes[128] = "";
                snprintf(vfs, sizeof vfs, "%d/%d", json_object_get_int(json_object_object_get(pf, "num_vfs")),
                         json_object_get_int(json_object_object_get(pf, "total_vfs")));
                json_object *ap = json_object_object_get(pf, "drivers_autoprobe");
                json_object *p = json_object_object_get(pf, "persistent");
                snprintf(notes, sizeof notes, "autoprobe %s", ap ? (json_object_get_boolean(ap) ? "on" : "off") : "?");
                if (p)
                        snprintf(notes + strlen(notes), sizeof notes - strlen(notes), ", at boot: %d VFs%s",
                                 json_object_get_int(json_object_object_get(p, "num_vfs")),
                                 json_object_get_boolean(json_object_object_get(p, "vfio")) ? " on vfio-pci" : "");
                _cleanup_free_ char *pgrp = strdup(json_text(json_object_object_get(pf, "iommu_group")));
                const char *row[] = {json_text(json_object_object_get(pf, "address")), "PF",
                                     json_text(json_object_object_get(pf, "driver")), vfs, pgrp, notes};
                char *cells[ELEMENTSOF(row)];
                bool oom = !pgrp;
                for (size_t k = 0; k < ELEMENTSOF(row); k++)
                        oom |= !(cells[k] = strdup(row[k])); /* json_text uses a static buffer for numbers */
                oom = oom || table_add_row(t, (const char *const *)cells) < 0;
                for (size_t k = 0; k < ELEMENTSOF(row); k++)
                        free(cells[k]);
                if (oom)
                        return log_oom();
                json_object *vl = json_object_object_get(pf, "vfs");
                for (size_t k = 0; k < json_object_array_length(vl); k++) {
                        json_object *v = json_object_array_get_idx(vl, k);
                        _cleanup_free_ char *addr = strdup_printf("  %s", json_text(json_object_object_get(v, "address")));
                        _cleanup_free_ char *role = strdup_printf("VF %d", json_object_get_int(json_object_object_get(v, "index")));
                        _cleanup_free_ char *grp = strdup(json_text(json_object_object_get(v, "iommu_group")));
                        json_object *iu = json_object_object_get(v, "in_use");
                        _cleanup_free_ char *note = iu ? strdup_printf("in use: %s", json_object_get_string(iu)) : NULL;
                        const char *vrow[] = {addr, role, json_text(json_object_object_get(v, "driver")), "-", grp, note};
                        if (!addr || !role || !grp || (iu && !note) || table_add_row(t, vrow) < 0)
                                return log_oom();
                }
        }
        return table_print(t, stdout) < 0 ? log_oom() : 0;
}

static int do_list(int argc, char **argv, int first) {
        _cleanup_root_free_ Root *root = NULL;
        _cleanup_pci_host_free_ PciHost *h = NULL;
        int r;
        if ((r = open_root(0, &root)) || (r = scan(root, &h)))
                return r;
        PciDevice *only = NULL;
        if (first < argc) {
                if ((r = lookup_device(h, argv[first], &only)))
                        return r;
                if (only->sriov_totalvfs < 0) {
                        log_error("%s has no SR-IOV capability%s.", only->addr,
                                  only->physfn ? " (it is a virtual function; name its PF)" : "");
                        return -EOPNOTSUPP;
                }
        }
        _cleanup_json_ json_object *a = json_object_new_array();
        for (size_t i = 0; i < h->n_devices; i++) {
                const PciDevice *d = &h->devices[i];
                if (d->sriov_totalvfs < 0 || d->physfn || (only && d != only))
                        continue;
                if (json_append(a, pf_json(root, h, d)) < 0)
                        return log_oom();
        }
        if (!a || (arg.json && json_print(a, stdout) < 0))
                return log_oom();
        if (arg.json)
                return 0;
        if (json_object_array_length(a) == 0) {
                printf("No SR-IOV capable devices.\n");
                return 0;
        }
        return print_list_text(a);
}

/* NULL: out of memory */
static json_object *set_json(const char *pf, SriovReport *rep, bool vfio, bool persisted) {
        _cleanup_json_ json_object *o = json_object_new_object();
        json_object *a = json_object_new_array();
        if (json_add_string(o, "address", pf) < 0 ||
            json_add_int_or_null(o, "from_vfs", rep->from_vfs >= 0, rep->from_vfs) < 0 ||
            json_add_int_or_null(o, "num_vfs", rep->num_vfs >= 0, rep->num_vfs) < 0 ||
            json_add(o, "changed", json_object_new_boolean(rep->changed)) < 0 ||
            json_add(o, "vfio", json_object_new_boolean(vfio)) < 0 || json_add(o, "vfs", a) < 0)
                return NULL;
        for (char **v = rep->vfs; v && *v; v++)
                if (json_append(a, json_object_new_string(*v)) < 0)
                        return NULL;
        _cleanup_free_ char *err = rep->error.error ? error_text(&rep->error, -rep->error.error) : NULL;
        if (json_add(o, "persistent", json_object_new_boolean(persisted)) < 0 || (rep->error.error && !err) ||
            json_add_string(o, "error", err) < 0)
                return NULL;
        return TAKE_PTR(o);
}

static int do_set(const char *pf_in, const char *count, const SriovArgs *a, bool restore) {
        /* the arguments, then the boot record (restore's input, under the root), then the lock: input that is
         * refused changes nothing */
        _cleanup_free_ char *pf = NULL;
        if (pci_addr_canonical(pf_in, &pf) < 0)
                return log_error("'%s' is not a PCI address (expected DDDD:BB:DD.F or BB:DD.F).", pf_in), -EINVAL;
        uint32_t n = 0;
        bool vfio = a->vfio;
        if (!restore && (parse_u32(count, 10, &n) < 0 || n > 0xffff))
                return log_error("'%s' is not a VF count (expected a number from 0 to sriov_totalvfs).", count), -EINVAL;
        _cleanup_root_free_ Root *root = NULL;
        int r = open_root_unlocked(0, &root);
        if (r)
                return r;
        if (restore) {
                _cleanup_(gv_error_done) GvError bad = {};
                r = sriov_persist_read(root, pf, &n, &vfio, &bad);
                if (r == -ENOENT)
                        return log_error("%s has no persistent VF count (" SRIOV_PERSIST_DIR "/%s).", pf, pf), r;
                if (r < 0)
                        return log_error("Refusing the persistent VF count of %s: %s", pf, bad.message ?: errno_message(r)),
                               failure_errno(r);
                /* the boot unit may run before udev has bound the PF's driver */
                (void)sriov_wait_driver(root, pf, 60000);
        }
        if ((r = hold_host_lock(root)))
                return r;

        SriovOptions o = {.vfio = vfio, .force = a->force, .settle_ms = restore ? 10000 : 5000};
        SriovReport rep;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        r = sriov_set(root, pf, n, &o, &rep);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        log_debug("sriov set %s %u took %.1f ms", pf, n, ms);
        bool persisted = false;
        if (r >= 0 && a->persist) {
                int k = n > 0 ? sriov_persist_write(root, pf, n, vfio) : sriov_persist_remove(root, pf);
                if (k < 0)
                        log_warning_errno(k, "%s has %u VFs, but the boot setting could not be %s: %m", pf, n,
                                          n > 0 ? "written" : "removed");
                else
                        persisted = n > 0;
        }
        if (r < 0) {
                _cleanup_free_ char *why = error_text(&rep.error, r);
                log_error("Cannot set %u VFs on %s: %s", n, pf, strna(why));
        }
        if (arg.json) {
                _cleanup_json_ json_object *j = set_json(pf, &rep, vfio, persisted);
                if ((!j || json_print(j, stdout) < 0) && r >= 0)
                        r = log_oom();
        } else if (r >= 0) {
                if (!rep.changed)
                        printf("%s: already %d VFs%s\n", pf, rep.num_vfs, vfio ? " on vfio-pci" : "");
                else
                        printf("%s: %d -> %d VFs%s%s\n", pf, rep.from_vfs, rep.num_vfs,
                               vfio && rep.num_vfs > 0 ? (arg.dry_run ? " (to be bound to vfio-pci)" : ", bound to vfio-pci") : "",
                               arg.dry_run ? " (dry run)" : "");
                for (char **v = rep.vfs; v && *v; v++)
                        printf("  %s\n", *v);
                if (a->persist && !arg.dry_run)
                        printf("%s: %s at boot (" SRIOV_PERSIST_DIR "/%s)\n", pf,
                               persisted ? "applied" : "no VF count set", pf);
        }
        sriov_report_done(&rep);
        return r < 0 ? r : 0; /* the -errno: main() (or restore_each()) maps it */
}

static int restore_one(const char *pf) {
        return do_set(pf, NULL, &(SriovArgs){}, true);
}

/* The sub-verbs (the verb table dispatches them; argv[0] is "sriov", argv[1] the sub-verb) share one option
 * parser; each checks what belongs to it. */
static int sriov_run(int argc, char **argv, int (*run)(char **argv, int first, int npos, const SriovArgs *a)) {
        static const struct option opts[] = {
                {"vfio", no_argument, NULL, OPT_VFIO},
                {"force", no_argument, NULL, OPT_FORCE},
                {"persist", no_argument, NULL, OPT_PERSIST},
                {},
        };
        SriovArgs a = {};
        int k = parse_verb_options(argc - 1, argv + 1, opts, "", sriov_opt, &a);
        return k < 0 ? -EINVAL : run(argv, k + 1, argc - (k + 1), &a); /* parse_verb_options() said why */
}

static int sriov_list_verb(char **argv, int first, int npos, const SriovArgs *a) {
        if (a->vfio || a->force || a->persist)
                return usage_error("sriov list: takes no options");
        if (npos > 1)
                return usage_error("sriov list: expected at most one device address");
        return do_list(first + npos, argv, first);
}

static int sriov_set_verb(char **argv, int first, int npos, const SriovArgs *a) {
        if (npos != 2)
                return usage_error("sriov set: expected a PF address and a VF count (sriov set BDF N)");
        return do_set(argv[first], argv[first + 1], a, false);
}

static int sriov_restore_verb(char **argv, int first, int npos, const SriovArgs *a) {
        if (npos > 1)
                return usage_error("sriov restore: expected at most one PF address");
        if (a->vfio || a->persist)
                return usage_error("sriov restore: the VF count and --vfio come from " SRIOV_PERSIST_DIR);
        /* without a PF: every setting (gpuvirt-sriov.service, in the boot transaction) */
        return npos ? do_set(argv[first], NULL, a, true) : restore_each(SRIOV_PERSIST_DIR, restore_one);
}

int verb_sriov_list(int argc, char **argv) {
        return sriov_run(argc, argv, sriov_list_verb);
}

int verb_sriov_set(int argc, char **argv) {
        return sriov_run(argc, argv, sriov_set_verb);
}

int verb_sriov_restore(int argc, char **argv) {
        return sriov_run(argc, argv, sriov_restore_verb);
}
