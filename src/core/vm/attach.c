/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The VM attach/detach transaction (attach.h). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "core/vgpu/mdev.h"
#include "core/vgpu/vendor-vgpu.h"
#include "core/vgpu/vgpu-types.h"
#include "core/vm/agentchan.h"
#include "core/vm/attach.h"
#include "core/vm/holders.h"

void vm_result_done(VmResult *r) {
        if (!r)
                return;
        unit_done(&r->unit);
        free(r->kept_for);
        free(r->warning);
        *r = (VmResult){};
}

static void sleep_ms(int ms) {
        nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L}, NULL);
}

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* An operation that failed: its errno, unless that is one that says the request was bad (-EINVAL, -ERANGE:
 * libvirt's XML errors, a refused dangerous device), which the operation's own failure is not. */
static int op_errno(int r) {
        return r == -EINVAL || r == -ERANGE ? -EIO : r;
}

/* The host side (prepare, release) failed: its error, with the transaction's words (head, taken) before
 * it; the device, step and hint stay the step's, so the hint still names what lets it go on. Releases rep.
 */
static int step_failed(GvError *err, VfioReport *rep, int r, const char *device, char *head) {
        r = op_errno(r);
        if (!rep->error.error)
                (void)gv_error_set(&rep->error, r, device, NULL, "%s", errno_message(r));
        (void)gv_error_prefix(&rep->error, "%s", strna(head));
        free(head);
        rep->error.error = -r;
        if (err)
                gv_error_move(err, &rep->error);
        vfio_report_done(rep);
        return r;
}

/* An undo step that failed: its message (taken) joins the list the caller shows after the error. */
static void undo_push(char ***undo, size_t *n, char *msg) {
        log_debug("%s", strna(msg));
        if (msg && strv_push(undo, n, msg) < 0)
                free(msg);
}

/* The same for a libvirt call that failed: the text (taken), then libvirt's message. */
static void undo_virt_failed(Virt *v, char ***undo, size_t *n, char *head) {
        _cleanup_(gv_error_done) GvError e = {};
        (void)virt_error_take(v, &e, -EIO, NULL, "%s", strna(head));
        free(head);
        undo_push(undo, n, strdup(strna(gv_error_message(&e))));
}

int vm_resolve_unit(Root *root, const PciHost *h, const char *input, Unit *ret, GvError *err) {
        int r = unit_resolve(root, h, input, ret);
        if (r >= 0)
                return 0;
        if (r == -EINVAL)
                return gv_error_take(
                        err, -EINVAL, input, NULL, GV_HINT_NONE,
                        strdup_printf("'%s' is neither a PCI address (DDDD:BB:DD.F) nor an mdev UUID.",
                                      input));
        if (r == -EPERM)
                return gv_error_take(
                        err, -EINVAL, input, NULL, GV_HINT_NONE,
                        strdup_printf("%s is a PCI bridge; bridges are not assigned to VMs.", input));
        if (r == -ENODEV)
                return gv_error_take(
                        err, -ENODEV, input, NULL, GV_HINT_NONE,
                        strdup_printf(uuid_is_valid(input)
                                              ? "No mdev %s on this host (sys/bus/mdev/devices)."
                                              : "No PCI device %s on this host (see 'gpuvirt list').",
                                      input));
        return gv_error_take(err, op_errno(r), input, NULL, GV_HINT_NONE,
                             strdup_printf("Cannot resolve %s: %s", input, errno_message(r)));
}

int vm_pick_targets(Virt *v, const char *dom, bool *live, bool *config, GvError *err) {
        bool active, persistent;
        int r = virt_domain_state(v, dom, &active, &persistent);
        if (r == -ENOENT)
                return gv_error_take(err, -ENOENT, NULL, NULL, GV_HINT_NONE,
                                     strdup_printf("No libvirt domain '%s' at %s.", dom, virt_uri(v)));
        if (r < 0)
                return virt_error_take(v, err, op_errno(r), NULL, "Cannot look up domain '%s': ", dom);
        if (!*live && !*config) {
                *live = active;
                *config = persistent;
        }
        if (*live && !active)
                return gv_error_take(err, -EBUSY, NULL, NULL, GV_HINT_VM_CONFIG,
                                     strdup_printf("Domain '%s' is not running", dom));
        if (*config && !persistent)
                return gv_error_take(
                        err, -EBUSY, NULL, NULL, GV_HINT_VM_LIVE,
                        strdup_printf("Domain '%s' is transient (no persistent definition)", dom));
        return 0;
}

/* A vGPU type named by id or name on parent (core: vgpu_type_resolve), of the kind the request is for. */
static int resolve_type(Root *root, const char *parent, const char *type, VgpuTypeKind kind, char **ret_id,
                        GvError *err) {
        VgpuTypeRef t;
        _cleanup_(gv_error_done) GvError msg = {};
        int r = vgpu_type_resolve(root, parent, type, &t, &msg);
        if (r < 0)
                return gv_error_take(err, r == -ENOENT ? -EINVAL : op_errno(r), parent, NULL, GV_HINT_NONE,
                                     TAKE_PTR(msg.message));
        if (t.kind != kind) {
                r = gv_error_take(
                        err, -EINVAL, parent, NULL,
                        t.kind == VGPU_TYPE_MDEV ? GV_HINT_MDEV_TYPE : GV_HINT_VGPU_TYPE,
                        strdup_printf("%s: %s is %s type", type, parent,
                                      t.kind == VGPU_TYPE_MDEV ? "an mdev" : "an NVIDIA vendor vGPU"));
                vgpu_type_ref_done(&t);
                return r;
        }
        *ret_id = TAKE_PTR(t.id);
        vgpu_type_ref_done(&t);
        return 0;
}

/* Step 1 of attach: the unit, created when the request asks for a vGPU. *created_uuid / *created_vendor say
 * what the undo must remove. */
static int attach_unit(Root *root, const PciHost *h, const VmRequest *req, Unit *ret,
                       char created_uuid[static 37], bool *created_vendor, GvError *err) {
        Unit u = {.iommu_group = -1};
        int r;
        if (req->mdev_type) {
                _cleanup_free_ char *parent = NULL;
                if (pci_addr_canonical(req->device, &parent) < 0 && !(parent = strdup(req->device)))
                        return gv_error_set(err, -ENOMEM, req->device, NULL, NULL);
                if (req->uuid)
                        snprintf(created_uuid, 37, "%s", req->uuid);
                else if (mdev_uuid_generate(created_uuid) < 0)
                        return gv_error_take(err, -EIO, parent, NULL, GV_HINT_NONE,
                                             strdup_printf("Cannot generate a UUID."));
                for (char *p = created_uuid; *p; p++)
                        *p = (char)tolower((unsigned char)*p);
                _cleanup_free_ char *type = NULL;
                _cleanup_(gv_error_done) GvError msg = {};
                if ((r = resolve_type(root, parent, req->mdev_type, VGPU_TYPE_MDEV, &type, err)) < 0)
                        return r;
                r = mdev_create(root, parent, type, created_uuid, NULL, 0, &msg);
                if (r == -ENOENT || r == -ENODEV)
                        return gv_error_take(err, -EINVAL, parent, "create", GV_HINT_NONE,
                                             msg.message ? TAKE_PTR(msg.message) : strdup("no such mdev parent or type"));
                if (r < 0)
                        return gv_error_take(err, op_errno(r), parent, NULL, GV_HINT_NONE,
                                             strdup_printf("Cannot create an mdev of type %s on %s: %s",
                                                           req->mdev_type, parent, msg.message ?: errno_message(r)));
                if (root_dry_run(root)) {
                        u.kind = UNIT_MDEV;
                        snprintf(u.id, sizeof u.id, "%s", created_uuid);
                } else if ((r = vm_resolve_unit(root, h, created_uuid, &u, err)) < 0) {
                        (void)mdev_remove(root, created_uuid, true, NULL);
                        *created_uuid = 0;
                        return r;
                }
                *ret = u;
                return 0;
        }
        if ((r = vm_resolve_unit(root, h, req->device, &u, err)) < 0)
                return r;
        _cleanup_(gv_error_done) GvError dead = {};
        if ((r = unit_require_alive(root, &u, &dead)) < 0) {
                r = gv_error_take(err, op_errno(r), u.id, NULL, GV_HINT_NONE,
                                  strdup_printf("Cannot attach %s: %s", u.id, strna(dead.message)));
                unit_done(&u);
                return r;
        }
        if (req->vgpu_type) {
                if (u.kind != UNIT_VF) {
                        r = gv_error_take(err, -EINVAL, u.id, NULL, GV_HINT_VGPU_TYPE_FOR,
                                          strdup_printf("needs an SR-IOV VF without a vGPU type; %s is %s.",
                                                        u.id,
                                                        u.kind == UNIT_VENDOR_VGPU ? "already carrying one"
                                                                                   : "not a VF"));
                        unit_done(&u);
                        return r;
                }
                _cleanup_free_ char *type = NULL;
                if ((r = resolve_type(root, u.id, req->vgpu_type, VGPU_TYPE_VENDOR, &type, err)) < 0) {
                        unit_done(&u);
                        return r;
                }
                _cleanup_free_ char *vf = NULL;
                _cleanup_(gv_error_done) GvError msg = {};
                unsigned set = 0;
                r = vendor_vgpu_create(root, u.id, type, &vf, &set, &msg);
                if (r < 0) {
                        r = gv_error_take(err, op_errno(r), u.id, NULL, GV_HINT_NONE,
                                          strdup_printf("Cannot set vGPU type %s on %s: %s", req->vgpu_type,
                                                        u.id, msg.message ?: errno_message(r)));
                        unit_done(&u);
                        return r;
                }
                u.kind = UNIT_VENDOR_VGPU;
                free(u.type);
                if (!(u.type = strdup_printf("%u", set))) {
                        (void)vendor_vgpu_remove(root, u.id, true, NULL);
                        unit_done(&u);
                        return gv_error_set(err, -ENOMEM, req->device, NULL, NULL);
                }
                *created_vendor = true;
        }
        *ret = u;
        return 0;
}

static const char *targets_text(bool live, bool config, char buf[static 16]) {
        snprintf(buf, 16, "%s%s%s", live ? "live" : "", live && config ? ", " : "", config ? "config" : "");
        return buf;
}

int vm_attach(Root *root, const PciHost *h, Virt *v, const VmRequest *req, VmResult *ret, char ***ret_undo,
              GvError *err) {
        const char *dom = req->domain;
        bool live = req->live, config = req->config;
        int r = vm_pick_targets(v, dom, &live, &config, err);
        if (r < 0)
                return r;
        double t0 = now_s();

        /* 1. the unit, created when asked */
        char created_uuid[37] = "";
        bool created_vendor = false;
        Unit u = {.iommu_group = -1};
        if ((r = attach_unit(root, h, req, &u, created_uuid, &created_vendor, err)) < 0)
                return r;

        bool prepared = false, config_done = false, dry = false, live_channel = false;
        _cleanup_free_ char *orig_config = NULL;
        _cleanup_strv_free_ char **elems = NULL, **undo = NULL;
        size_t n_elems = 0, n_live = 0, n_undo = 0;
        VfioOptions o = {.force = req->force, .settle_ms = 2000};
        char tt[16];

        /* 2. held elsewhere? */
        {
                _cleanup_virt_domains_ VirtDomains doms = {};
                if ((r = virt_list_domains(v, &doms.d, &doms.n)) < 0) {
                        r = virt_error_take(v, err, op_errno(r), u.id, "Cannot list libvirt domains: ");
                        goto undo;
                }
                const VirtDomain *other = unit_running_holder(&u, doms.d, doms.n, dom);
                if (other && !req->force) {
                        r = gv_error_take(err, -EBUSY, u.id, NULL, GV_HINT_VM_HELD,
                                          strdup_printf("%s is held by running domain '%s'; detach it there first",
                                                        u.id, other->name));
                        goto undo;
                }
        }
        if ((live && vm_unit_count(v, dom, false, &u) > 0) ||
            (config && vm_unit_count(v, dom, true, &u) > 0)) {
                r = gv_error_take(err, -EEXIST, u.id, NULL, GV_HINT_NONE,
                                  strdup_printf("%s is already attached to '%s'%s.", u.id, dom,
                                                live ? " (live)" : " (config)"));
                goto undo;
        }

        /* 3. prepare the host side */
        {
                VfioReport rep;
                bool changed = false;
                r = unit_prepare(root, &u, &o, &rep, &changed);
                if (r < 0) {
                        r = step_failed(err, &rep, r, u.id, strdup_printf("Cannot prepare %s: ", u.id));
                        goto undo;
                }
                vfio_report_done(&rep);
                prepared = changed;
        }

        /* 4. the guest slot for multifunction units: free in every definition we change */
        int slot = req->guest_slot ?: -1;
        if (slot < 0 && u.n_funcs > 1) {
                int s1 = -1, s2 = -1;
                _cleanup_free_ char *lx = NULL, *cx = NULL;
                if ((live &&
                     (virt_domain_xml(v, dom, false, &lx) < 0 || domain_xml_free_slot(lx, &s1) < 0)) ||
                    (config &&
                     (virt_domain_xml(v, dom, true, &cx) < 0 || domain_xml_free_slot(cx, &s2) < 0))) {
                        r = gv_error_take(err, -ENOSPC, u.id, NULL, GV_HINT_GUEST_SLOT,
                                          strdup_printf("No free guest PCI slot on bus 0 of '%s' for the "
                                                        "%zu functions of %s",
                                                        dom, u.n_funcs, u.id));
                        goto undo;
                }
                slot = MAX(s1, s2);
                /* when the two differ, take the higher if it is free in both (else fail below on define) */
        }
        if ((r = unit_hostdev_elements(&u, slot, &elems, &n_elems)) < 0) {
                r = gv_error_set(err, r, u.id, NULL, NULL);
                goto undo;
        }
        /* the libvirt changes, decided where every other change is (root_change: --dry-run prints them) */
        {
                _cleanup_free_ char *hd = unit_hostdev_xml(&u, slot);
                _cleanup_free_ char *shown = hd && req->agent_channel ? strdup_printf("%s%s", hd, AGENT_CHANNEL_XML) : TAKE_PTR(hd);
                if (!shown) {
                        r = gv_error_set(err, -ENOMEM, u.id, NULL, NULL);
                        goto undo;
                }
                size_t len = strlen(shown);
                r = root_change(root, "would attach to %s (%s):\n%.*s", dom, targets_text(live, config, tt),
                                (int)(len > 0 && shown[len - 1] == '\n' ? len - 1 : len), shown);
                if (r < 0) {
                        r = gv_error_take(
                                err, op_errno(r), u.id, NULL, GV_HINT_NONE,
                                strdup_printf("Cannot attach %s to '%s': %s", u.id, dom, errno_message(r)));
                        goto undo;
                }
                dry = r > 0;
        }

        /* 5. persistent definition: edit the inactive XML and redefine */
        if (!dry && config) {
                _cleanup_free_ char *joined = unit_hostdev_xml(&u, slot), *new_xml = NULL;
                if (!joined || (r = virt_domain_xml(v, dom, true, &orig_config)) < 0) {
                        r = virt_error_take(v, err, op_errno(r < 0 ? r : -ENOMEM), u.id,
                                            "Cannot edit the definition of '%s': ", dom);
                        goto undo;
                }
                /* the guest agent's channel goes in with the hostdevs, where the definition lacks it */
                bool add_channel = false;
                if (req->agent_channel) {
                        int c = domain_xml_agent_channel(orig_config, NULL);
                        if (c < 0) {
                                r = gv_error_set(err, -EIO, u.id, NULL, "Cannot parse the definition of '%s'.", dom);
                                goto undo;
                        }
                        add_channel = c == 0;
                        if (add_channel) {
                                char *j2 = strdup_printf("%s%s", joined, AGENT_CHANNEL_XML);
                                if (!j2) {
                                        r = gv_error_set(err, -ENOMEM, u.id, NULL, NULL);
                                        goto undo;
                                }
                                free(joined);
                                joined = j2;
                        }
                }
                if ((r = domain_xml_add_hostdevs(orig_config, joined, &new_xml)) < 0) {
                        r = virt_error_take(v, err, op_errno(r), u.id, "Cannot edit the definition of '%s': ", dom);
                        goto undo;
                }
                if ((r = virt_define(v, new_xml)) < 0) {
                        r = virt_error_take(v, err, op_errno(r), u.id, "Cannot redefine '%s' with %s: ", dom,
                                            u.id);
                        goto undo;
                }
                config_done = true;
                /* the round trip: libvirt must hand back every hostdev we added */
                int k = vm_unit_count(v, dom, true, &u);
                if (k != (int)n_elems) {
                        r = gv_error_take(err, -EIO, u.id, NULL, GV_HINT_NONE,
                                          strdup_printf("'%s' was redefined but its definition holds %d of "
                                                        "%zu hostdevs for %s.",
                                                        dom, k < 0 ? 0 : k, n_elems, u.id));
                        goto undo;
                }
                if (add_channel) {
                        _cleanup_free_ char *back = NULL;
                        if (virt_domain_xml(v, dom, true, &back) < 0 || domain_xml_agent_channel(back, NULL) != 1) {
                                r = gv_error_set(err, -EIO, u.id, NULL,
                                                 "'%s' was redefined but its definition lacks the agent channel.", dom);
                                goto undo;
                        }
                }
        }
        /* 6. hot-plug: function 0 last (the guest sees a multifunction slot when function 0 appears) */
        if (!dry && live) {
                for (size_t step = 0; step < n_elems; step++) {
                        size_t e = n_elems - 1 - step;
                        if ((r = virt_attach_live(v, dom, elems[e])) < 0) {
                                r = virt_error_take(v, err, op_errno(r), u.id,
                                                    "Cannot hot-plug %s into '%s': ", u.id, dom);
                                goto undo;
                        }
                        n_live++;
                }
                int k = vm_unit_count(v, dom, false, &u);
                if (k != (int)n_elems) {
                        r = gv_error_take(err, -EIO, u.id, NULL, GV_HINT_NONE,
                                          strdup_printf("'%s' accepted %s but its running definition holds "
                                                        "%d of %zu hostdevs.",
                                                        dom, u.id, k < 0 ? 0 : k, n_elems));
                        goto undo;
                }
                if (req->agent_channel) {
                        _cleanup_free_ char *lx = NULL;
                        int c = virt_domain_xml(v, dom, false, &lx) < 0 ? -EIO : domain_xml_agent_channel(lx, NULL);
                        if (c < 0) {
                                r = virt_error_take(v, err, -EIO, u.id, "Cannot read the running definition of '%s': ", dom);
                                goto undo;
                        }
                        if (c == 0) {
                                if ((r = virt_attach_live(v, dom, AGENT_CHANNEL_XML)) < 0) {
                                        r = virt_error_take(v, err, op_errno(r), u.id,
                                                            "Cannot hot-plug the agent channel into '%s': ", dom);
                                        goto undo;
                                }
                                live_channel = true;
                        }
                }
        }
        *ret = (VmResult){.unit = u,
                          .live = live,
                          .config = config,
                          .dry_run = dry,
                          .n_hostdevs = n_elems,
                          .seconds = now_s() - t0};
        return 0;

undo:
        /* in reverse: the hot-plugged channel and devices, the redefinition, the host preparation, the vGPU */
        if (live_channel && virt_detach_live(v, dom, AGENT_CHANNEL_XML) < 0)
                undo_virt_failed(v, &undo, &n_undo,
                                 strdup_printf("Undo: cannot hot-unplug the agent channel from '%s': ", dom));
        for (size_t i = 0; i < n_live; i++) {
                size_t e = n_elems - n_live + i;
                if (virt_detach_live(v, dom, elems[e]) < 0)
                        undo_virt_failed(v, &undo, &n_undo,
                                         strdup_printf("Undo: cannot hot-unplug a hostdev of %s from '%s': ",
                                                       u.id, dom));
        }
        if (config_done && virt_define(v, orig_config) < 0)
                undo_virt_failed(v, &undo, &n_undo,
                                 strdup_printf("Undo: cannot restore the definition of '%s': ", dom));
        if (prepared) {
                VfioReport rep2;
                if (unit_release(root, &u, &o, &rep2) < 0)
                        undo_push(&undo, &n_undo,
                                  strdup_printf("Undo: cannot give %s back to its drivers: %s", u.id,
                                                gv_error_message(&rep2.error) ?: "?"));
                vfio_report_done(&rep2);
        }
        if (*created_uuid || created_vendor) {
                GvError e1 = {}, e2 = {};
                if (*created_uuid && mdev_remove(root, created_uuid, true, &e1) < 0)
                        undo_push(&undo, &n_undo,
                                  strdup_printf("Undo: cannot remove mdev %s: %s", created_uuid,
                                                gv_error_message(&e1) ?: "?"));
                if (created_vendor && vendor_vgpu_remove(root, u.id, true, &e2) < 0)
                        undo_push(&undo, &n_undo,
                                  strdup_printf("Undo: cannot clear the vGPU type of %s: %s", u.id,
                                                gv_error_message(&e2) ?: "?"));
                gv_error_done(&e1);
                gv_error_done(&e2);
        }
        unit_done(&u);
        if (ret_undo)
                *ret_undo = TAKE_PTR(undo);
        return r;
}

int vm_detach(Root *root, const PciHost *h, Virt *v, const VmRequest *req, VmResult *ret, GvError *err) {
        const char *dom = req->domain;
        bool live = req->live, config = req->config;
        int r = vm_pick_targets(v, dom, &live, &config, err);
        if (r < 0)
                return r;
        Unit u;
        if ((r = vm_resolve_unit(root, h, req->device, &u, err)) < 0)
                return r;
        double t0 = now_s();
        _cleanup_free_ HostdevRef *refs = NULL;
        _cleanup_free_ char *kept = NULL, *warning = NULL;
        size_t n_refs = 0;
        char tt[16];
        if ((r = unit_refs(&u, &refs, &n_refs)) < 0) {
                r = gv_error_set(err, r, u.id, NULL, NULL);
                goto fail;
        }
        int in_live = live ? vm_unit_count(v, dom, false, &u) : 0;
        int in_config = config ? vm_unit_count(v, dom, true, &u) : 0;
        if (in_live < 0 || in_config < 0) {
                r = virt_error_take(v, err, op_errno(MIN(in_live, in_config)), u.id,
                                    "Cannot read the definition of '%s': ", dom);
                goto fail;
        }
        if (in_live == 0 && in_config == 0) {
                r = gv_error_take(err, -ENOENT, u.id, NULL, GV_HINT_NONE,
                                  strdup_printf("%s is not attached to '%s'%s.", u.id, dom,
                                                live && config ? ""
                                                : live         ? " (live)"
                                                               : " (config)"));
                goto fail;
        }
        r = root_change(root, "would detach %s from %s (%s)", u.id, dom, targets_text(live, config, tt));
        if (r < 0) {
                r = gv_error_take(
                        err, op_errno(r), u.id, NULL, GV_HINT_NONE,
                        strdup_printf("Cannot detach %s from '%s': %s", u.id, dom, errno_message(r)));
                goto fail;
        }
        bool dry = r > 0;
        if (!dry && config && in_config > 0) {
                _cleanup_free_ char *xml = NULL, *new_xml = NULL;
                size_t removed = 0;
                if ((r = virt_domain_xml(v, dom, true, &xml)) < 0 ||
                    (r = domain_xml_remove_hostdevs(xml, refs, n_refs, &new_xml, &removed)) < 0 ||
                    (r = virt_define(v, new_xml)) < 0) {
                        r = virt_error_take(v, err, op_errno(r), u.id,
                                            "Cannot remove %s from the definition of '%s': ", u.id, dom);
                        goto fail;
                }
                if (vm_unit_count(v, dom, true, &u) != 0) {
                        r = gv_error_take(
                                err, -EIO, u.id, NULL, GV_HINT_NONE,
                                strdup_printf("'%s' was redefined but its definition still holds %s.", dom,
                                              u.id));
                        goto fail;
                }
        }
        if (!dry && live && in_live > 0) {
                /* the element as libvirt has it (with its guest address and alias), function 0 first */
                _cleanup_free_ char *xml = NULL;
                if ((r = virt_domain_xml(v, dom, false, &xml)) < 0) {
                        r = virt_error_take(v, err, op_errno(r), u.id,
                                            "Cannot read the running definition of '%s': ", dom);
                        goto fail;
                }
                for (size_t i = 0; i < n_refs; i++) {
                        _cleanup_free_ char *el = NULL;
                        if (domain_xml_hostdev_element(xml, &refs[i], &el) < 0)
                                continue;
                        if ((r = virt_detach_live(v, dom, el)) < 0) {
                                r = virt_error_take(v, err, op_errno(r), u.id,
                                                    "Cannot hot-unplug %s from '%s': ", u.id, dom);
                                goto fail;
                        }
                }
                /* libvirt returns once the unplug is requested; the guest OS must answer it */
                int k;
                for (int waited = 0;; waited += 100) {
                        k = vm_unit_count(v, dom, false, &u);
                        if (k <= 0 || waited >= req->timeout_s * 1000)
                                break;
                        sleep_ms(100);
                }
                if (k != 0) {
                        r = gv_error_take(err, -ETIMEDOUT, u.id, NULL, GV_HINT_NONE,
                                          strdup_printf("The guest of '%s' did not release %s within %d s "
                                                        "(its OS must answer the PCI hot-unplug "
                                                        "request); the device stays assigned and is not "
                                                        "given back to the host.",
                                                        dom, u.id, req->timeout_s));
                        goto fail;
                }
        }

        /* give it back, unless someone else still wants it */
        const char *kept_for = NULL;
        bool released = false;
        r = vm_detach_holder(v, &u, dom, live, config, &kept);
        if (r == -ENOMEM)
                kept_for = "unknown: out of memory";
        else if (r < 0) {
                _cleanup_(gv_error_done) GvError le = {};
                (void)virt_error_take(v, &le, r, u.id, NULL);
                warning = strdup_printf("Cannot list libvirt domains (%s): %s stays prepared.",
                                        gv_error_message(&le), u.id);
                kept_for = "unknown: cannot list domains";
        } else
                kept_for = kept;
        if (dry)
                kept_for = NULL; /* the definitions above are unchanged: say what a real run releases */
        if (!req->keep && !kept_for) {
                VfioOptions o = {.force = req->force, .settle_ms = 2000};
                VfioReport rep;
                r = unit_release(root, &u, &o, &rep);
                if (r < 0) {
                        r = step_failed(
                                err, &rep, r, u.id,
                                strdup_printf("%s was detached but cannot be given back to the host: ",
                                              u.id));
                        goto fail;
                }
                released = true;
                vfio_report_done(&rep);
        }
        VmResult res = {.unit = u,
                        .live = live,
                        .config = config,
                        .dry_run = dry,
                        .released = released,
                        .seconds = now_s() - t0,
                        .warning = TAKE_PTR(warning)};
        if (kept_for && !(res.kept_for = strdup(kept_for))) {
                free(res.warning);
                r = gv_error_set(err, -ENOMEM, u.id, NULL, NULL);
                goto fail;
        }
        *ret = res;
        return 0;

fail:
        unit_done(&u);
        return r;
}
