/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/vfio.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "core/host/iommu.h"
#include "core/store/statefile.h"
#include "core/passthrough/vfio.h"

#define STATE_DIR "var/lib/gpuvirt/passthrough"

void vfio_report_done(VfioReport *r) {
        for (size_t i = 0; i < r->n_changes; i++) {
                free(r->changes[i].from);
                free(r->changes[i].to);
        }
        free(r->changes);
        gv_error_done(&r->error);
        *r = (VfioReport){.group = -1};
}

/* The report's error (the message taken); returns -abs(err). */
#define fail(rep, err, dev, step, hint, msg) gv_error_take(&(rep)->error, (err), (dev), (step), (hint), (msg))

/* ---- saved state: the driver each function had before we moved it ---- */

typedef struct Saved {
        char *driver;
        char *driver_override;
} Saved;

static void saved_done(Saved *s) {
        free(s->driver);
        free(s->driver_override);
}

typedef struct SavedRecord {
        const char *driver, *driver_override;
        unsigned vendor_id, device_id;
} SavedRecord;

static const JsonField saved_fields[] = {
        {"driver", JSON_KIND_STRING, JSON_MANDATORY | JSON_NULLABLE, offsetof(SavedRecord, driver),
         .valid = string_is_kernel_name, .what = "a kernel driver name"},
        {"driver_override", JSON_KIND_STRING, JSON_NULLABLE, offsetof(SavedRecord, driver_override),
         .valid = string_is_kernel_name, .what = "a kernel driver name"},
        {"vendor_id", JSON_KIND_UINT, 0, offsetof(SavedRecord, vendor_id), .max = 0xffff},
        {"device_id", JSON_KIND_UINT, 0, offsetof(SavedRecord, device_id), .max = 0xffff},
        {},
};

/* The record of a function's driver before we moved it. -ENOENT: none; another error: the record is
 * damaged (*ret_error says where and why) and must not be acted on. */
static int state_read(Root *root, const char *bdf, Saved *ret, char **ret_error) {
        json_object *o = NULL;
        SavedRecord rec = {};
        _cleanup_(gv_error_done) GvError err = {};
        int r = state_read_record(root, saved_fields, &rec, &o, &err, STATE_DIR "/%s", bdf);
        if (r < 0) {
                if (ret_error)
                        *ret_error = TAKE_PTR(err.message);
                return r;
        }
        Saved s = {rec.driver ? strdup(rec.driver) : NULL, rec.driver_override ? strdup(rec.driver_override) : NULL};
        json_object_put(o);
        if ((rec.driver && !s.driver) || (rec.driver_override && !s.driver_override)) {
                saved_done(&s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}

/* Every member's record readable (or absent); otherwise the error names the record and why. */
static int records_check(Root *root, PciDevice **members, size_t n, bool skip_vfio, VfioReport *rep) {
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *bad = NULL;
                Saved s = {};
                int r = skip_vfio && members[i]->is_vfio ? 0 : state_read(root, members[i]->addr, &s, &bad);
                saved_done(&s);
                if (r < 0 && r != -ENOENT) {
                        return fail(rep, r, members[i]->addr, "record", GV_HINT_NONE,
                                    strdup_printf("%s; nothing was changed: check which driver %s had, then fix or "
                                                  "remove the record", strna(bad), members[i]->addr));
                }
        }
        return 0;
}

static int state_write(Root *root, const PciDevice *d) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "driver", d->driver ? json_object_new_string(d->driver) : NULL);
        json_object_object_add(o, "driver_override",
                               d->driver_override ? json_object_new_string(d->driver_override) : NULL);
        json_object_object_add(o, "vendor_id", json_object_new_int(d->vendor));
        json_object_object_add(o, "device_id", json_object_new_int(d->device));
        int r = state_write_json(root, o, STATE_DIR "/%s", d->addr);
        json_object_put(o);
        return r;
}

char *vfio_saved_driver(Root *root, const char *bdf) {
        Saved s = {};
        if (state_read(root, bdf, &s, NULL) < 0)
                return NULL;
        free(s.driver_override);
        return s.driver;
}

int vfio_forget(Root *root, const char *bdf) {
        return root_write_file(root, NULL, STATE_DIR "/%s", bdf);
}

static char *current_driver(Root *root, const char *bdf);

/* A device with no driver whose record names the driver it had: it lost its driver in a move that did
 * not finish (a crash, a rollback that failed). A device with no driver whose record is damaged counts as
 * lost too: what it had cannot be told, so it is drift, and every operation that would move it refuses
 * before its first write (records_check) naming the record. ret_saved (may be NULL): the driver it had,
 * NULL when the record is damaged; ret_bad (may be NULL): then why. */
static bool lost_driver(Root *root, const PciDevice *x, char **ret_saved, char **ret_bad) {
        if (x->driver)
                return false;
        Saved s = {};
        _cleanup_free_ char *bad = NULL;
        int r = state_read(root, x->addr, &s, &bad);
        if (r == -ENOENT || r == -ENOMEM)
                return false;
        if (r >= 0 && !s.driver) {
                saved_done(&s);
                return false;
        }
        if (r < 0 && !bad)
                bad = strdup_printf(STATE_DIR "/%s: %s", x->addr, errno_message(r));
        if (ret_saved)
                *ret_saved = TAKE_PTR(s.driver);
        if (ret_bad)
                *ret_bad = TAKE_PTR(bad);
        saved_done(&s);
        return true;
}

/* Drop the record of a device only once it is back where the record says it was (on the driver it names,
 * or, for a device that had none, off vfio-pci): the record is how a later release or recover finds the
 * driver to give it back. Under --dry-run the planned writes put it back, so the removal is printed. */
static void forget_if_home(Root *root, const char *bdf) {
        Saved s = {};
        if (state_read(root, bdf, &s, NULL) < 0)
                return; /* none, or damaged: a damaged record is never acted on, so not removed either */
        _cleanup_free_ char *now = root_dry_run(root) ? NULL : current_driver(root, bdf);
        bool home = root_dry_run(root) || (s.driver ? now && streq(now, s.driver) : !now || !streq(now, VFIO_PCI_DRIVER));
        saved_done(&s);
        if (home)
                (void)vfio_forget(root, bdf);
}

/* ---- who holds a group ---- */

char *vfio_group_holders(Root *root, int group) {
        _cleanup_free_ char *proc = root_path(root, "proc");
        _cleanup_free_ char *node = strdup_printf("vfio/%d", group);
        _cleanup_closedir_ DIR *d = proc ? opendir(proc) : NULL;
        if (!d || !node)
                return NULL;
        char *out = NULL;
        struct dirent *de;
        while ((de = readdir(d))) {
                int pid;
                if (parse_int(de->d_name, &pid) < 0 || pid <= 0)
                        continue;
                _cleanup_free_ char *fddir = strdup_printf("%s/%s/fd", proc, de->d_name);
                _cleanup_closedir_ DIR *fds = fddir ? opendir(fddir) : NULL;
                if (!fds)
                        continue;
                struct dirent *fe;
                bool holds = false;
                while (!holds && (fe = readdir(fds))) {
                        char buf[256];
                        _cleanup_free_ char *l = strdup_printf("%s/%s", fddir, fe->d_name);
                        ssize_t k = l ? readlink(l, buf, sizeof buf - 1) : -1;
                        if (k <= 0)
                                continue;
                        buf[k] = '\0';
                        holds = root_link_is_dev_node(buf, node);
                }
                if (!holds)
                        continue;
                _cleanup_free_ char *comm = NULL;
                (void)root_read_attr(root, &comm, "proc/%d/comm", pid);
                char *n = strdup_printf("%s%s%d (%s)", out ?: "", out ? ", " : "", pid, strna(comm));
                free(out);
                out = n;
        }
        return out;
}

int vfio_group_viable(Root *root, const PciHost *h, int group) {
        if (!root_exists(root, "dev/vfio/%d", group))
                return 0;
        if (root_real_nodes(root)) {
                _cleanup_free_ char *p = root_path(root, "dev/vfio/%d", group);
                _cleanup_close_ int fd = p ? open(p, O_RDWR | O_CLOEXEC) : -EBADF;
                if (fd < 0)
                        return negative_errno();
                struct vfio_group_status st = {.argsz = sizeof st};
                if (ioctl(fd, VFIO_GROUP_GET_STATUS, &st) < 0)
                        return negative_errno();
                return !!(st.flags & VFIO_GROUP_FLAGS_VIABLE);
        }
        return iommu_group_viable(h, group);
}

/* ---- moving functions between drivers ---- */

/* One function's move: from where it is to a target. to_driver NULL = whatever the native probe gives. */
typedef struct Move {
        char addr[PCI_ADDR_STRLEN];
        char *from_driver, *from_override;
        const char *to_driver, *to_override; /* to_override NULL = clear */
        bool done;                           /* steps were made (for rollback) */
        bool lost;                           /* it had no driver, though its record names one: from_* are the
                                              * recorded driver and override, where a rollback puts it */
        bool none_ok;                        /* release: it had no driver before, none after is right */
} Move;

static void moves_free(Move *m, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(m[i].from_driver);
                free(m[i].from_override);
        }
        free(m);
}

static char *current_driver(Root *root, const char *bdf) {
        _cleanup_free_ char *p = root_path(root, "sys/bus/pci/devices/%s/driver", bdf);
        char *v = NULL;
        if (p)
                (void)readlink_base(p, &v);
        return v;
}

static void sleep_ms(int ms) {
        nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L}, NULL);
}

/* Wait (bounded) until the device's driver is `want` (NULL: any driver). 0 when it is. */
static int wait_driver(Root *root, const char *bdf, const char *want, int settle_ms, char **ret_now) {
        for (int waited = 0;; waited += 10) {
                char *now = current_driver(root, bdf);
                if (want ? now && streq(now, want) : now != NULL) {
                        free(now);
                        return 0;
                }
                if (waited >= settle_ms || !root_settles(root) || root_dry_run(root)) {
                        *ret_now = now;
                        return -EIO;
                }
                free(now);
                sleep_ms(10);
        }
}

/* Carry out one move. On failure returns -errno and sets *step to the failed step name. */
static int move_one(Root *root, Move *m, int settle_ms, const char **step) {
        _cleanup_free_ char *cur = current_driver(root, m->addr);
        int r;

        if (cur && m->to_driver && streq(cur, m->to_driver)) {
                /* On the target already; the override must match too (a rollback after a failed unbind
                 * finds the device on its old driver with our override still set). */
                _cleanup_free_ char *ovr = NULL;
                (void)root_read_attr(root, &ovr, "sys/bus/pci/devices/%s/driver_override", m->addr);
                bool unset = !ovr || isempty(ovr) || streq(ovr, "(null)");
                if (m->to_override ? !unset && streq(ovr, m->to_override) : unset)
                        return 0;
                m->done = true;
                *step = "driver_override";
                return root_write(root, m->to_override ?: "\n", "sys/bus/pci/devices/%s/driver_override", m->addr);
        }
        m->done = true;
        *step = "driver_override";
        r = root_write(root, m->to_override ?: "\n", "sys/bus/pci/devices/%s/driver_override", m->addr);
        if (r < 0)
                return r;
        if (cur) {
                *step = "unbind";
                r = root_write(root, m->addr, "sys/bus/pci/drivers/%s/unbind", cur);
                if (r < 0)
                        return r;
        }
        if (m->to_driver && !m->to_override) {
                /* Back to a remembered driver: bind it explicitly; if it does not take the device, probe. */
                *step = "bind";
                r = root_write(root, m->addr, "sys/bus/pci/drivers/%s/bind", m->to_driver);
                if (r >= 0)
                        goto verify;
                log_debug_errno(r, "bind of %s to %s failed, probing: %m", m->addr, m->to_driver);
        }
        *step = "drivers_probe";
        r = root_write(root, m->addr, "sys/bus/pci/drivers_probe");
        if (r < 0)
                return r;
verify:
        if (root_dry_run(root))
                return 0;
        *step = "verify";
        _cleanup_free_ char *now = NULL;
        if (wait_driver(root, m->addr, m->to_driver, settle_ms, &now) < 0) {
                /* No native driver may be available when none was remembered: not an error. */
                if (!m->to_driver && (!m->from_driver || m->none_ok))
                        return 0;
                return -ENODEV;
        }
        return 0;
}

/* Undo moves [0, n) in reverse: each function back to its driver and override. Returns a description
 * of what could not be undone (NULL when everything went back). */
static char *rollback(Root *root, Move *moves, size_t n, int settle_ms) {
        char *problems = NULL;
        for (size_t i = n; i-- > 0;) {
                Move *m = &moves[i];
                if (!m->done)
                        continue;
                Move back = {
                        .to_driver = m->from_driver,
                        .to_override = m->from_override,
                        .from_driver = NULL,
                };
                memcpy(back.addr, m->addr, sizeof back.addr);
                const char *step = NULL;
                int r = move_one(root, &back, settle_ms, &step);
                if (r < 0) {
                        _cleanup_free_ char *now = current_driver(root, m->addr);
                        _cleanup_free_ char *et = errno_describe(r);
                        char *p = strdup_printf("%s%s%s: %s failed: %s (now on %s)", problems ?: "", problems ? "; " : "",
                                                m->addr, step, et, now ?: "no driver");
                        free(problems);
                        problems = p;
                }
                m->done = false;
        }
        return problems;
}

static int report_add(VfioReport *rep, const char *addr, const char *from, const char *to, bool changed) {
        VfioChange *c = realloc(rep->changes, (rep->n_changes + 1) * sizeof *c);
        if (!c)
                return -ENOMEM;
        rep->changes = c;
        c = &c[rep->n_changes++];
        *c = (VfioChange){.from = from ? strdup(from) : NULL, .to = to ? strdup(to) : NULL, .changed = changed};
        snprintf(c->addr, sizeof c->addr, "%s", addr);
        return 0;
}

/* Run a set of moves transactionally; fill the report. */
static int run_moves(Root *root, Move *moves, size_t n, int settle_ms, VfioReport *rep) {
        for (size_t i = 0; i < n; i++) {
                const char *step = NULL;
                int r = move_one(root, &moves[i], settle_ms, &step);
                if (r >= 0)
                        continue;
                _cleanup_free_ char *now = current_driver(root, moves[i].addr);
                _cleanup_free_ char *et = errno_describe(r);
                _cleanup_free_ char *problems = rollback(root, moves, i + 1, settle_ms);
                if (streq(step, "verify"))
                        return fail(rep, r, moves[i].addr, step, GV_HINT_NONE,
                                    strdup_printf("step 'verify' on %s failed: expected driver %s, found %s; %s",
                                                  moves[i].addr, moves[i].to_driver ?: "(native)", now ?: "none",
                                                  problems ? problems : "every function was returned to its previous driver"));
                return fail(rep, r, moves[i].addr, step, GV_HINT_NONE,
                            strdup_printf("step '%s' on %s failed: %s; %s%s", step, moves[i].addr, et,
                                          problems ? "rollback incomplete: " : "",
                                          problems ?: "every function was returned to its previous driver"));
        }
        return 0;
}

static bool strv_has(char **l, const char *s) {
        return strv_contains(l, s);
}

/* The functions of d's group that move with it. */
static int plan_members(Root *root, const PciHost *h, const PciDevice *d, const VfioOptions *o, bool enable,
                        VfioReport *rep, PciDevice ***ret, size_t *ret_n) {
        _cleanup_free_ GroupMember *m = NULL;
        size_t n = 0;
        int r = iommu_group_members(h, d, &m, &n);
        if (r < 0)
                return r;
        PciDevice **out = calloc(n, sizeof *out);
        if (!out)
                return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                PciDevice *x = m[i].device;
                switch (m[i].kind) {
                case GROUP_MEMBER_BRIDGE:
                        continue;
                case GROUP_MEMBER_FOREIGN:
                        if (!enable) {
                                /* release whatever of the group sits on vfio, or lost its driver on the way */
                                if (x->is_vfio || lost_driver(root, x, NULL, NULL))
                                        out[k++] = x;
                                continue;
                        }
                        if (!strv_has(o->include, x->addr) || !o->force) {
                                free(out);
                                /* the device is the one to include: the program says how */
                                return fail(rep, -EPERM, x->addr, "refuse", GV_HINT_INCLUDE,
                                            strdup_printf("IOMMU group %d also holds %s (class %04x, driver %s), which is "
                                                          "not part of this card: it would go to the VM too",
                                                          d->iommu_group, x->addr, pci_device_class(x),
                                                          x->driver ?: "none"));
                        }
                        out[k++] = x;
                        break;
                default:
                        if (enable || x->is_vfio || lost_driver(root, x, NULL, NULL))
                                out[k++] = x;
                }
        }
        *ret = out;
        *ret_n = k;
        return 0;
}

static int load(Root *root, const char *bdf, PciHost **ret_h, PciDevice **ret_d, VfioReport *rep) {
        int r = pci_host_scan_device(root, bdf, ret_h); /* the device, its group and card in full */
        if (r < 0)
                return r;
        r = pci_host_lookup(*ret_h, bdf, ret_d);
        if (r == -EINVAL) {
                return fail(rep, -EINVAL, bdf, "lookup", GV_HINT_NONE,
                            strdup_printf("'%s' is not a PCI address (expected DDDD:BB:DD.F)", bdf));
        }
        if (r < 0) {
                return fail(rep, -ENODEV, bdf, "lookup", GV_HINT_NONE, strdup_printf("no PCI device %s on this host", bdf));
        }
        if (pci_device_is_dead(*ret_d))
                return fail(rep, -ENODEV, bdf, "lookup", GV_HINT_NONE, pci_device_dead_message(*ret_d));
        rep->group = (*ret_d)->iommu_group;
        return 0;
}

int vfio_enable(Root *root, const char *bdf, const VfioOptions *o, VfioReport *rep) {
        *rep = (VfioReport){.group = -1};
        _cleanup_pci_host_free_ PciHost *h = NULL;
        PciDevice *d;
        int r = load(root, bdf, &h, &d, rep);
        if (r < 0)
                return r;
        if (pci_device_is_bridge(d)) {
                return fail(rep, -EINVAL, d->addr, "refuse", GV_HINT_NONE,
                            strdup_printf("%s is a PCI bridge; bridges are not assigned to VMs", d->addr));
        }
        if (d->iommu_group < 0) {
                return fail(rep, -ENXIO, d->addr, "refuse", GV_HINT_NONE,
                            strdup_printf("%s has no IOMMU group: the IOMMU is off (see 'gpuvirt check'); "
                                          "vfio-pci would fail to probe and leave the device without a driver",
                                          d->addr));
        }
        _cleanup_free_ PciDevice **members = NULL;
        size_t n = 0;
        r = plan_members(root, h, d, o, true, rep, &members, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (pci_device_is_dead(members[i]))
                        return fail(rep, -ENODEV, members[i]->addr, "refuse", GV_HINT_NONE,
                                    pci_device_dead_message(members[i]));
        for (size_t i = 0; i < n; i++)
                if (members[i]->boot_vga == 1 && !o->force) {
                        return fail(rep, -EPERM, members[i]->addr, "refuse", GV_HINT_FORCE,
                                    strdup_printf("%s is the boot VGA (the host console)", members[i]->addr));
                }
        _cleanup_free_ char *holders = vfio_group_holders(root, d->iommu_group);
        if (holders && !o->force) {
                return fail(rep, -EBUSY, d->addr, "refuse", GV_HINT_FORCE,
                            strdup_printf("/dev/vfio/%d is held open by %s (a VM uses the group)", d->iommu_group,
                                          holders));
        }

        if (!root_exists(root, "sys/bus/pci/drivers/" VFIO_PCI_DRIVER)) {
                r = root_load_module(root, "vfio-pci");
                if (r < 0 || (!root_dry_run(root) && !root_exists(root, "sys/bus/pci/drivers/" VFIO_PCI_DRIVER))) {
                        return fail(rep, -ENOENT, d->addr, "modprobe", GV_HINT_NONE,
                                    strdup("the vfio-pci driver is not loaded and 'modprobe vfio-pci' failed: install "
                                           "the kernel's vfio modules (see 'gpuvirt check')"));
                }
        }

        /* the records are read back before the first write: a damaged one is never acted on, nor overwritten
         * (functions already on vfio-pci are not moved: theirs are not needed) */
        r = records_check(root, members, n, true, rep);
        if (r < 0)
                return r;
        Move *moves = calloc(n ?: 1, sizeof *moves);
        if (!moves)
                return -ENOMEM;
        size_t nm = 0;
        for (size_t i = 0; i < n; i++) {
                PciDevice *x = members[i];
                if (x->is_vfio) {
                        report_add(rep, x->addr, x->driver, x->driver, false);
                        continue;
                }
                /* Remember where it was, unless an earlier enable already did (never record vfio-pci). */
                Saved s = {};
                bool recorded = state_read(root, x->addr, &s, NULL) >= 0;
                if (!recorded && (r = state_write(root, x)) < 0) {
                        _cleanup_free_ char *et = errno_describe(r);
                        moves_free(moves, nm);
                        return fail(rep, r, x->addr, "record", GV_HINT_NONE,
                                    strdup_printf("cannot record the driver of %s in " STATE_DIR ": %s", x->addr, et));
                }
                Move *m = &moves[nm++];
                memcpy(m->addr, x->addr, sizeof m->addr);
                m->lost = recorded && !x->driver && s.driver;
                if (m->lost) {
                        /* a rollback takes it home, not back to no driver */
                        m->from_driver = TAKE_PTR(s.driver);
                        m->from_override = TAKE_PTR(s.driver_override);
                } else {
                        m->from_driver = x->driver ? strdup(x->driver) : NULL;
                        m->from_override = x->driver_override ? strdup(x->driver_override) : NULL;
                }
                saved_done(&s);
                m->to_driver = VFIO_PCI_DRIVER;
                m->to_override = VFIO_PCI_DRIVER;
        }
        r = run_moves(root, moves, nm, o->settle_ms, rep);
        if (r >= 0 && nm > 0 && !root_dry_run(root)) {
                /* The group must be usable by a VM now: the snapshot, with the functions that moved read again */
                int group = d->iommu_group, v = 0;
                for (size_t i = 0; i < nm && v >= 0; i++)
                        if (pci_host_reread(h, moves[i].addr) < 0)
                                v = -EIO;
                v = v < 0 ? v : vfio_group_viable(root, h, group);
                if (v <= 0) {
                        _cleanup_free_ char *problems = rollback(root, moves, nm, o->settle_ms);
                        r = fail(rep, v < 0 ? v : -EBUSY, d->addr, "viability", GV_HINT_NONE,
                                 strdup_printf("step 'viability' on group %d failed: %s; %s", d->iommu_group,
                                               v == 0 ? "a member is still on a host driver (group not viable)" :
                                                        "cannot open /dev/vfio node",
                                               problems ?: "every function was returned to its previous driver"));
                }
        }
        for (size_t i = 0; i < nm && r >= 0; i++)
                report_add(rep, moves[i].addr, moves[i].lost ? NULL : moves[i].from_driver, VFIO_PCI_DRIVER,
                           moves[i].done);
        if (r < 0)
                /* forget what we recorded for functions that went back; a function the rollback could not
                 * put back keeps its record, so release and recover still know its driver */
                for (size_t i = 0; i < nm; i++)
                        forget_if_home(root, moves[i].addr);
        moves_free(moves, nm);
        return r;
}

int vfio_disable(Root *root, const char *bdf, const VfioOptions *o, VfioReport *rep) {
        *rep = (VfioReport){.group = -1};
        _cleanup_pci_host_free_ PciHost *h = NULL;
        PciDevice *d;
        int r = load(root, bdf, &h, &d, rep);
        if (r < 0)
                return r;
        /* What goes back: every function of the group on vfio, and every one that lost its driver on the way
         * (the group is the unit: the GPU may be home while its audio function is not). */
        _cleanup_free_ PciDevice **members = NULL;
        size_t n = 0;
        if (d->iommu_group >= 0) {
                r = plan_members(root, h, d, o, false, rep, &members, &n);
                if (r < 0)
                        return r;
        } else if (lost_driver(root, d, NULL, NULL)) {
                if (!(members = calloc(1, sizeof *members)))
                        return -ENOMEM;
                members[n++] = d;
        }
        if (n == 0) {
                report_add(rep, d->addr, d->driver, d->driver, false);
                return 0; /* nothing to give back */
        }
        _cleanup_free_ char *holders = d->iommu_group >= 0 ? vfio_group_holders(root, d->iommu_group) : NULL;
        if (holders && !o->force) {
                return fail(rep, -EBUSY, d->addr, "refuse", GV_HINT_FORCE,
                            strdup_printf("/dev/vfio/%d is held open by %s (a VM uses the group); stop it first",
                                          d->iommu_group, holders));
        }
        Move *moves = calloc(n ?: 1, sizeof *moves);
        if (!moves)
                return -ENOMEM;
        char **saved_drv = calloc(n ?: 1, sizeof(char *));
        if (!saved_drv) {
                free(moves);
                return -ENOMEM;
        }
        /* the records are read back before the first write: a damaged one is never acted on */
        r = records_check(root, members, n, false, rep);
        if (r < 0) {
                free(moves);
                free(saved_drv);
                return r;
        }
        for (size_t i = 0; i < n; i++) {
                PciDevice *x = members[i];
                Saved s = {};
                bool had_state = state_read(root, x->addr, &s, NULL) >= 0;
                Move *m = &moves[i];
                m->none_ok = had_state && !s.driver;
                memcpy(m->addr, x->addr, sizeof m->addr);
                m->from_driver = x->driver ? strdup(x->driver) : NULL;
                m->from_override = x->driver_override ? strdup(x->driver_override) : NULL;
                saved_drv[i] = s.driver; /* NULL: native driver by probe */
                m->to_driver = saved_drv[i];
                m->to_override = s.driver_override && !streq(s.driver_override, VFIO_PCI_DRIVER) ? s.driver_override : NULL;
                /* keep s.driver_override alive through to_override */
                if (m->to_override)
                        s.driver_override = NULL;
                free(s.driver_override);
        }
        r = run_moves(root, moves, n, o->settle_ms, rep);
        for (size_t i = 0; i < n; i++) {
                if (r >= 0) {
                        _cleanup_free_ char *now = root_dry_run(root) ? NULL : current_driver(root, moves[i].addr);
                        report_add(rep, moves[i].addr, moves[i].from_driver,
                                   root_dry_run(root) ? moves[i].to_driver : now, moves[i].done);
                        forget_if_home(root, moves[i].addr);
                }
                if (moves[i].to_override && moves[i].to_override != saved_drv[i])
                        free((char *)moves[i].to_override);
                free(saved_drv[i]);
        }
        free(saved_drv);
        moves_free(moves, n);
        return r;
}

/* ---- the group as a unit: what observing and recovery see ---- */

int vfio_group_state(Root *root, const PciHost *h, const PciDevice *d, char *const *include, VfioGroupState *ret) {
        VfioGroupState st = {};
        _cleanup_free_ GroupMember *m = NULL;
        size_t n = 0;
        if (d->iommu_group < 0) {
                if (!(m = calloc(1, sizeof *m)))
                        return -ENOMEM;
                m[n++] = (GroupMember){(PciDevice *)d, GROUP_MEMBER_SELF};
        } else {
                int r = iommu_group_members(h, d, &m, &n);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < n; i++) {
                const PciDevice *x = m[i].device;
                if (m[i].kind == GROUP_MEMBER_BRIDGE || (x->physfn && streq(x->physfn, d->addr)))
                        continue;
                bool recorded = root_exists(root, STATE_DIR "/%s", x->addr);
                if (m[i].kind == GROUP_MEMBER_FOREIGN && !recorded && !strv_contains(include, x->addr))
                        continue;
                if (x->is_vfio)
                        st.n_vfio++;
                else if (x->driver)
                        st.n_host++;
                else if (lost_driver(root, x, NULL, NULL))
                        st.n_lost++;
        }
        *ret = st;
        return 0;
}

int vfio_lost_list(Root *root, const PciHost *h, char ***ret) {
        char **l = NULL;
        size_t n = 0;
        for (size_t i = 0; i < h->n_devices; i++) {
                _cleanup_free_ char *saved = NULL, *bad = NULL;
                if (!lost_driver(root, &h->devices[i], &saved, &bad))
                        continue;
                char *e = saved ? strdup_printf("%s (had %s)", h->devices[i].addr, saved)
                                : strdup_printf("%s (its record is damaged: %s)", h->devices[i].addr, strna(bad));
                if (strv_push(&l, &n, e) < 0) {
                        strv_free(l);
                        return -ENOMEM;
                }
        }
        if (!l && !(l = calloc(1, sizeof *l)))
                return -ENOMEM;
        *ret = l;
        return 0;
}

/* Whether any record of a moved device exists: without one no device is lost (lost_driver() needs a record),
 * so recovery need not scan the host. Anything in the directory, or a directory that cannot be listed,
 * counts as records: the scan then decides, as before. */
static bool records_exist(Root *root) {
        _cleanup_free_ char *dir = root_path(root, STATE_DIR);
        _cleanup_strv_free_ char **l = NULL;
        if (!dir)
                return true;
        int n = dir_list(dir, &l);
        return n != 0 && n != -ENOENT;
}

int vfio_restore_lost(Root *root, char ***ret_restored, char **ret_error) {
        *ret_restored = NULL;
        if (!records_exist(root))
                return 0;
        _cleanup_pci_host_free_ PciHost *h = NULL;
        int r = pci_host_scan(root, &h);
        if (r < 0)
                return r;
        char **done = NULL;
        size_t n_done = 0;
        int ret = 0;
        for (size_t i = 0; i < h->n_devices; i++) {
                PciDevice *x = &h->devices[i];
                _cleanup_free_ char *now = current_driver(root, x->addr);
                _cleanup_free_ char *saved = NULL;
                /* (a restore of an earlier device's group may have put this one back already) */
                if (now || !lost_driver(root, x, &saved, NULL))
                        continue;
                VfioOptions o = {.settle_ms = 2000};
                VfioReport rep;
                r = vfio_disable(root, x->addr, &o, &rep);
                if (r < 0) {
                        if (ret == 0 && ret_error)
                                *ret_error = strdup_printf("%s has no driver and cannot be given back%s%s: %s", x->addr,
                                                           saved ? " to " : "", saved ?: "",
                                                           gv_error_message(&rep.error) ?: errno_message(r));
                        ret = ret ?: r;
                } else
                        for (size_t k = 0; k < rep.n_changes; k++)
                                if (rep.changes[k].changed)
                                        (void)strv_push(&done, &n_done, strdup_printf("%s -> %s", rep.changes[k].addr,
                                                                                    rep.changes[k].to ?: "(none)"));
                vfio_report_done(&rep);
        }
        *ret_restored = done;
        return ret;
}
