/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <json-c/json.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "core/sriov/sriov.h"
#include "core/store/statefile.h"
#include "core/passthrough/vfio.h"

void sriov_report_done(SriovReport *r) {
        strv_free(r->vfs);
        gv_error_done(&r->error);
        *r = (SriovReport){.from_vfs = -1, .num_vfs = -1};
}

/* The report's error (the message taken); returns -abs(err). */
#define fail(rep, err, dev, step, hint, msg) gv_error_take(&(rep)->error, (err), (dev), (step), (hint), (msg))

static void sleep_ms(int ms) {
        nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L}, NULL);
}

int sriov_wait_driver(Root *root, const char *pf, int timeout_ms) {
        for (int waited = 0;; waited += 50) {
                if (root_exists(root, "sys/bus/pci/devices/%s/driver", pf))
                        return 0;
                if (!root_exists(root, "sys/bus/pci/devices/%s", pf)) /* PCI devices exist from enumeration on */
                        return -ENODEV;
                if (waited >= timeout_ms || !root_settles(root))
                        return -ETIMEDOUT;
                sleep_ms(50);
        }
}

static int pf_int(Root *root, const char *pf, const char *attr, int *ret) {
        _cleanup_free_ char *s = NULL;
        int r = root_read_attr(root, &s, "sys/bus/pci/devices/%s/%s", pf, attr);
        return r < 0 ? r : parse_int(s, ret);
}

int sriov_autoprobe(Root *root, const char *pf) {
        int v;
        int r = pf_int(root, pf, "sriov_drivers_autoprobe", &v);
        return r < 0 ? r : v != 0;
}

int sriov_vfs(Root *root, const char *pf, char ***ret) {
        int total = 0;
        (void)pf_int(root, pf, "sriov_totalvfs", &total);
        char **l = calloc(1, sizeof(char *)); /* an empty list rather than NULL */
        size_t n = 0;
        if (!l)
                return -ENOMEM;
        for (int i = 0; i < total; i++) {
                _cleanup_free_ char *p = root_path(root, "sys/bus/pci/devices/%s/virtfn%d", pf, i);
                char *vf = NULL;
                if (!p) {
                        strv_free(l);
                        return -ENOMEM;
                }
                if (readlink_base(p, &vf) < 0)
                        continue;
                if (strv_push(&l, &n, vf) < 0) {
                        free(vf);
                        strv_free(l);
                        return -ENOMEM;
                }
        }
        *ret = l;
        return 0;
}

static char *vf_driver(Root *root, const char *vf) {
        _cleanup_free_ char *p = root_path(root, "sys/bus/pci/devices/%s/driver", vf);
        char *d = NULL;
        if (p)
                (void)readlink_base(p, &d);
        return d;
}

static bool vf_on_vfio(Root *root, const char *vf) {
        _cleanup_free_ char *d = vf_driver(root, vf);
        return root_exists(root, "sys/bus/pci/devices/%s/vfio-dev", vf) || (d && streq(d, VFIO_PCI_DRIVER));
}

char *sriov_vf_busy(Root *root, const char *vf) {
        _cleanup_free_ char *gl = root_path(root, "sys/bus/pci/devices/%s/iommu_group", vf);
        _cleanup_free_ char *g = NULL;
        int group;
        if (gl && readlink_base(gl, &g) >= 0 && parse_int(g, &group) >= 0) {
                _cleanup_free_ char *holders = vfio_group_holders(root, group);
                if (holders)
                        return strdup_printf("/dev/vfio/%d is held open by %s", group, holders);
        }
        /* Ampere-style vGPU: the VF is an mdev parent; disabling VFs would tear its mdevs down */
        _cleanup_free_ char *td = root_path(root, "sys/bus/pci/devices/%s/mdev_supported_types", vf);
        _cleanup_strv_free_ char **types = NULL;
        size_t mdevs = 0;
        if (td && dir_list(td, &types) >= 0)
                for (char **e = types; *e; e++) {
                        _cleanup_free_ char *dd = strdup_printf("%s/%s/devices", td, *e);
                        _cleanup_strv_free_ char **l = NULL;
                        if (dd && dir_list(dd, &l) >= 0)
                                mdevs += strv_length(l);
                }
        if (mdevs > 0)
                return strdup_printf("it is the parent of %zu mediated device(s)", mdevs);
        _cleanup_free_ char *t = NULL;
        uint32_t type;
        if (root_read_attr(root, &t, "sys/bus/pci/devices/%s/nvidia/current_vgpu_type", vf) >= 0 &&
            parse_u32(t, 0, &type) >= 0 && type != 0)
                return strdup_printf("it carries NVIDIA vGPU type %u", type);
        return NULL;
}

/* Wait (bounded, live hosts only) until virtfn0..n-1 exist. */
static int wait_vfs(Root *root, const char *pf, unsigned n, int settle_ms) {
        for (int waited = 0;; waited += 10) {
                unsigned have = 0;
                for (unsigned i = 0; i < n; i++)
                        if (root_exists(root, "sys/bus/pci/devices/%s/virtfn%u", pf, i))
                                have++;
                if (have == n)
                        return 0;
                if (waited >= settle_ms || !root_settles(root))
                        return -ETIMEDOUT;
                sleep_ms(10);
        }
}

/* VF addresses the PF will use for n VFs (offset/stride), for --dry-run. */
static char **predicted_vfs(Root *root, const PciDevice *d, unsigned n) {
        int offset = 0, stride = 0;
        if (pf_int(root, d->addr, "sriov_offset", &offset) < 0 || pf_int(root, d->addr, "sriov_stride", &stride) < 0)
                return NULL;
        char **l = NULL;
        size_t k = 0;
        unsigned rid = (unsigned)d->a.bus << 8 | (unsigned)d->a.slot << 3 | d->a.func;
        for (unsigned i = 0; i < n; i++) {
                unsigned v = rid + (unsigned)offset + (unsigned)stride * i;
                PciAddr a = {.domain = d->a.domain, .bus = (uint8_t)(v >> 8), .slot = (v >> 3) & 31, .func = v & 7};
                char buf[PCI_ADDR_STRLEN];
                (void)strv_push(&l, &k, strdup(pci_addr_format(&a, buf)));
        }
        return l;
}

/* Put the PF back as it was: VF count, autoprobe, and the VFs that were on vfio-pci. Returns a
 * description of what could not be restored, NULL when all went back. */
static char *restore(Root *root, const char *pf, int old_n, int old_autoprobe, char **old_vfio, int settle_ms) {
        char *problems = NULL;
        int cur = 0;
        (void)pf_int(root, pf, "sriov_numvfs", &cur);
        int r = 0;
        if (cur != old_n) {
                if (cur > 0 && (r = root_write(root, "0", "sys/bus/pci/devices/%s/sriov_numvfs", pf)) < 0)
                        goto fail;
                if (old_autoprobe >= 0 &&
                    (r = root_write(root, old_autoprobe ? "1" : "0", "sys/bus/pci/devices/%s/sriov_drivers_autoprobe", pf)) < 0)
                        goto fail;
                if (old_n > 0) {
                        char v[16];
                        snprintf(v, sizeof v, "%d", old_n);
                        if ((r = root_write(root, v, "sys/bus/pci/devices/%s/sriov_numvfs", pf)) < 0)
                                goto fail;
                        (void)wait_vfs(root, pf, (unsigned)old_n, settle_ms);
                }
        } else if (old_autoprobe >= 0)
                (void)root_write(root, old_autoprobe ? "1" : "0", "sys/bus/pci/devices/%s/sriov_drivers_autoprobe", pf);
        for (char **v = old_vfio; v && *v; v++) {
                if (vf_on_vfio(root, *v))
                        continue;
                VfioOptions vo = {.force = false, .settle_ms = settle_ms};
                VfioReport vr;
                if (vfio_enable(root, *v, &vo, &vr) < 0) {
                        char *p = strdup_printf("%s%s%s back to vfio-pci: %s", problems ?: "", problems ? "; " : "", *v,
                                                gv_error_message(&vr.error) ?: "failed");
                        free(problems);
                        problems = p;
                }
                vfio_report_done(&vr);
        }
        return problems;
fail:;
        _cleanup_free_ char *et = errno_describe(r);
        char *p = strdup_printf("%s%srestoring %d VFs on %s failed: %s", problems ?: "", problems ? "; " : "", old_n, pf, et);
        free(problems);
        return p;
}

int sriov_set(Root *root, const char *pf_in, unsigned n, const SriovOptions *o, SriovReport *rep) {
        *rep = (SriovReport){.from_vfs = -1, .num_vfs = -1};
        _cleanup_strv_free_ char **now = NULL; /* declared before any goto that crosses it */
        _cleanup_pci_host_free_ PciHost *h = NULL;
        int r = pci_host_scan(root, &h);
        if (r < 0)
                return r;
        PciDevice *d;
        r = pci_host_lookup(h, pf_in, &d);
        if (r == -EINVAL) {
                return fail(rep, -EINVAL, pf_in, "lookup", GV_HINT_NONE,
                            strdup_printf("'%s' is not a PCI address (expected DDDD:BB:DD.F)", pf_in));
        }
        if (r < 0) {
                return fail(rep, -ENODEV, pf_in, "lookup", GV_HINT_NONE,
                            strdup_printf("no PCI device %s on this host", pf_in));
        }
        const char *pf = d->addr;
        if (pci_device_is_dead(d)) {
                return fail(rep, -ENODEV, pf, "lookup", GV_HINT_NONE, pci_device_dead_message(d));
        }
        if (d->physfn) {
                return fail(rep, -EINVAL, pf, "refuse", GV_HINT_NONE,
                            strdup_printf("%s is a virtual function of %s: set the VF count on the PF", pf, d->physfn));
        }
        if (d->sriov_totalvfs < 0) {
                return fail(rep, -EINVAL, pf, "refuse", GV_HINT_NONE,
                            strdup_printf("%s has no SR-IOV capability (no sriov_totalvfs attribute)", pf));
        }
        if (n > (unsigned)d->sriov_totalvfs) {
                return fail(rep, -ERANGE, pf, "refuse", GV_HINT_NONE,
                            strdup_printf("%s supports at most %d VFs (sriov_totalvfs), %u asked", pf,
                                             d->sriov_totalvfs, n));
        }
        int cur = d->sriov_numvfs;
        rep->from_vfs = cur;

        _cleanup_strv_free_ char **old = NULL;
        r = sriov_vfs(root, pf, &old);
        if (r < 0)
                return r;
        char **old_vfio = NULL;
        size_t n_old_vfio = 0;
        for (char **v = old; *v; v++)
                if (vf_on_vfio(root, *v))
                        (void)strv_push(&old_vfio, &n_old_vfio, strdup(*v));
        _cleanup_strv_free_ char **old_vfio_l = old_vfio;

        if ((unsigned)cur == n && (!o->vfio || n_old_vfio == strv_length(old))) {
                rep->num_vfs = cur;
                rep->vfs = TAKE_PTR(old);
                return 0; /* nothing to do */
        }

        /* Same count, VFs to move to vfio-pci: no need to recreate them. */
        bool rebind_only = (unsigned)cur == n;

        if (!rebind_only)
                for (char **v = old; *v; v++) {
                        _cleanup_free_ char *why = sriov_vf_busy(root, *v);
                        if (why && !o->force) {
                                return fail(rep, -EBUSY, *v, "refuse", GV_HINT_FORCE,
                                            strdup_printf("VF %s is in use: %s; stop the VM using it (or remove "
                                                          "the vGPU) first", *v, why));
                        }
                }

        if (!rebind_only) {
                if (!d->driver) {
                        return fail(rep, -ENOENT, pf, "refuse", GV_HINT_NONE,
                                    strdup_printf("%s has no driver: the VF count is changed through the PF's "
                                                     "driver; load it first (see 'gpuvirt show %s')",
                                                     pf, pf));
                }
                if (streq(d->driver, VFIO_PCI_DRIVER)) {
                        _cleanup_free_ char *es = NULL;
                        if (root_read_attr(root, &es, "sys/module/vfio_pci/parameters/enable_sriov") < 0 ||
                            !(streq(es, "Y") || streq(es, "1"))) {
                                return fail(rep, -ENOENT, pf, "refuse", GV_HINT_NONE, strdup_printf(
                                        "%s is on vfio-pci, which changes VF counts only with its enable_sriov "
                                        "parameter set (and its VFs then need a VF token); give the PF back to "
                                        "its driver first ('gpuvirt passthrough disable %s')",
                                        pf, pf));
                        }
                }
        }

        int old_autoprobe = sriov_autoprobe(root, pf);
        const char *step = NULL;
        bool autoprobe_changed = false;

        if (!rebind_only) {
                if (cur > 0) {
                        step = "sriov_numvfs=0";
                        r = root_write(root, "0", "sys/bus/pci/devices/%s/sriov_numvfs", pf);
                        if (r < 0)
                                goto fail_nothing_changed;
                        if (!root_dry_run(root))
                                for (char **v = old; *v; v++)
                                        (void)vfio_forget(root, *v);
                }
                if (n > 0) {
                        if (o->vfio && old_autoprobe != 0) {
                                step = "sriov_drivers_autoprobe=0";
                                r = root_write(root, "0", "sys/bus/pci/devices/%s/sriov_drivers_autoprobe", pf);
                                if (r < 0)
                                        goto fail_rollback;
                                autoprobe_changed = true;
                        }
                        char v[16];
                        snprintf(v, sizeof v, "%u", n);
                        step = "sriov_numvfs";
                        r = root_write(root, v, "sys/bus/pci/devices/%s/sriov_numvfs", pf);
                        if (r < 0)
                                goto fail_rollback;
                        if (!root_dry_run(root)) {
                                step = "waiting for the VFs";
                                r = wait_vfs(root, pf, n, o->settle_ms);
                                if (r < 0)
                                        goto fail_rollback;
                        }
                }
        }

        if (root_dry_run(root)) {
                rep->vfs = rebind_only ? TAKE_PTR(old) : predicted_vfs(root, d, n);
                rep->num_vfs = (int)n;
                rep->changed = true;
                return 0;
        }

        r = sriov_vfs(root, pf, &now);
        if (r < 0)
                goto fail_rollback;
        if (o->vfio)
                for (char **v = now; *v; v++) {
                        if (vf_on_vfio(root, *v))
                                continue;
                        VfioOptions vo = {.force = o->force, .settle_ms = o->settle_ms};
                        VfioReport vr;
                        r = vfio_enable(root, *v, &vo, &vr);
                        if (r < 0) {
                                _cleanup_free_ char *problems = NULL;
                                if (rebind_only) {
                                        /* give back the VFs this call moved */
                                        for (char **u = now; u < v; u++)
                                                if (!strv_contains(old_vfio_l, *u)) {
                                                        VfioReport ur;
                                                        (void)vfio_disable(root, *u, &vo, &ur);
                                                        vfio_report_done(&ur);
                                                }
                                } else
                                        problems = restore(root, pf, cur, old_autoprobe, old_vfio_l, o->settle_ms);
                                fail(rep, r, *v, "vfio", GV_HINT_NONE,
                                     strdup_printf("binding VF %s to vfio-pci failed: %s; %s", *v,
                                                   gv_error_message(&vr.error) ?: "?",
                                                   problems ?: "the PF was put back as it was"));
                                vfio_report_done(&vr);
                                return r;
                        }
                        vfio_report_done(&vr);
                }
        if (autoprobe_changed && old_autoprobe > 0) {
                /* autoprobe only matters while VFs are created: leave it as it was */
                r = root_write(root, "1", "sys/bus/pci/devices/%s/sriov_drivers_autoprobe", pf);
                if (r < 0)
                        log_debug_errno(r, "Restoring sriov_drivers_autoprobe of %s failed: %m", pf);
        }
        rep->num_vfs = (int)strv_length(now);
        rep->vfs = TAKE_PTR(now);
        rep->changed = true;
        return 0;

fail_nothing_changed: {
        _cleanup_free_ char *et = errno_describe(r);
        return fail(rep, r, pf, step, GV_HINT_NONE, strdup_printf("writing %s on %s failed: %s%s", step, pf, et,
                                     r == -EBUSY ? " (the PF driver refuses to disable its VFs while they are in use)" : ""));
}
fail_rollback: {
        _cleanup_free_ char *et = errno_describe(r);
        _cleanup_free_ char *problems = restore(root, pf, cur, old_autoprobe, old_vfio_l, o->settle_ms);
        return fail(rep, r, pf, step, GV_HINT_NONE, strdup_printf("%s on %s failed: %s; %s", step, pf, et,
                                     problems ? problems : cur > 0 ? "its previous VFs were restored" :
                                                                      "the PF was put back as it was"));
}
}

/* ---- persistence ---- */

int sriov_persist_write(Root *root, const char *pf, unsigned n, bool vfio) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "num_vfs", json_object_new_int((int)n));
        json_object_object_add(o, "vfio", json_object_new_boolean(vfio));
        int r = state_write_json(root, o, SRIOV_PERSIST_DIR "/%s", pf);
        json_object_put(o);
        return r;
}

int sriov_persist_remove(Root *root, const char *pf) {
        return root_write_file(root, NULL, SRIOV_PERSIST_DIR "/%s", pf);
}

typedef struct SriovRecord {
        unsigned num_vfs;
        bool vfio;
} SriovRecord;

static const JsonField sriov_fields[] = {
        /* sriov_numvfs is 16 bits in the SR-IOV capability */
        {"num_vfs", JSON_KIND_UINT, JSON_MANDATORY, offsetof(SriovRecord, num_vfs), .max = 0xffff},
        {"vfio", JSON_KIND_BOOL, 0, offsetof(SriovRecord, vfio)},
        {},
};

int sriov_persist_read(Root *root, const char *pf, unsigned *ret_n, bool *ret_vfio, GvError *err) {
        json_object *o = NULL;
        SriovRecord rec = {};
        int r = state_read_record(root, sriov_fields, &rec, &o, err, SRIOV_PERSIST_DIR "/%s", pf);
        if (r < 0)
                return r;
        json_object_put(o);
        *ret_n = rec.num_vfs;
        *ret_vfio = rec.vfio;
        return 0;
}
