/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The collector thread: every interval it scans the host (sysfs through the root, NVML, libvirt when
 * reachable), judges each unit's health, keeps run/gpuvirt/health.json, and publishes a Snapshot with
 * every answer rendered. Between cycles it waits on NVML's event set for Xid events. Only this thread
 * touches the host, NVML and libvirt; the HTTP server only reads snapshots.
 */
#include <errno.h>
#include <malloc.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "config.h"
#include "core/health/health.h"
#include "core/health/telemetry.h"
#include "core/host/inventory.h"
#include "core/vm/libvirt.h"
#include "core/vgpu/mdev.h"
#include "core/mig/mig.h"
#include "core/host/names.h"
#include "core/mig/nvml.h"
#include "core/host/pci.h"
#include "core/vgpu/vendor-vgpu.h"
#include "core/vm/agentchan.h"
#include "daemon.h"
#include "guest.h"

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

#define EVENTS_MAX 256
#define XID_KINDS_MAX 16
#define UNIT_ID_MAX 64

typedef struct Tracked {
        char id[UNIT_ID_MAX];
        char gpu[PCI_ADDR_STRLEN];
        HealthUnit h;
        struct {
                unsigned xid;
                uint64_t n;
        } xid[XID_KINDS_MAX];
        size_t n_xid;
        unsigned pending[HEALTH_MAX_XIDS];
        size_t n_pending;
        nvmlDevice_t dev; /* registered with the event set */
        bool seen;
} Tracked;

typedef struct Event {
        uint64_t real;
        char unit[UNIT_ID_MAX], gpu[PCI_ADDR_STRLEN];
        HealthLevel from, to;
        char *reason;
} Event;

struct Collector {
        Root *root;
        SnapshotStore *store;
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool stop, reload, first_done;
        int first_error;
        DaemonConfig cfg; /* under lock */

        /* the collector thread's own */
        Nvml *nvml;
        nvmlEventSet_t evset;
        char *nvml_error; /* why NVML is not open */
        Virt *virt;
        char *virt_error;
        PciNames *names;
        Tracked **units; /* each its own allocation: UnitRecs point to them */
        Guests guests;
        size_t n_units;
        Event events[EVENTS_MAX];
        size_t n_events, events_next;
        uint64_t cycles, nvml_errors, health_changes;
        char *last_health;
        char driver_version[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE];
        _Atomic uint64_t last_cycle;
        _Atomic unsigned n_seen;
};

/* What one cycle saw of one unit, for rendering. */
typedef struct UnitRec {
        const char *kind; /* gpu, vf, vgpu, mdev, mig */
        char unit[UNIT_ID_MAX], gpu[PCI_ADDR_STRLEN];
        const char *mode;
        const char *driver;
        const char *domain;
        char profile[64];
        int iommu_group;
        bool present;
        Tracked *t; /* whose health this unit has (its own, or its parent GPU's) */
        bool has_link;
        double speed, max_speed;
        unsigned width, max_width;
        bool has_aer;
        uint64_t aer[3]; /* correctable, nonfatal, fatal */
        char *power_state;
        bool nvml; /* NVML answered for it */
        GpuTelemetry tm;
        unsigned gi, ci;
        uint64_t mig_mem;
        int vgpu; /* its vGPU instance in Cycle.vgpus, -1: none */
} UnitRec;

/* A vGPU instance the vGPU manager reports (NVML, on the host): a running VM's vGPU. */
typedef struct VgpuRec {
        char gpu[PCI_ADDR_STRLEN];
        char unit[UNIT_ID_MAX];  /* the host unit it is (mdev UUID, or the vendor vGPU's VF); "" unknown */
        char uuid[NVML_DEVICE_UUID_BUFFER_SIZE];
        char vm[128];            /* the VM's name (NVML's VM ID) */
        char type[NVML_VGPU_NAME_BUFFER_SIZE];
        bool has_fb, has_util, has_license;
        uint64_t fb_used;
        unsigned util[4]; /* sm, memory, encoder, decoder: percent */
        unsigned license_state, expiry_status;
        bool licensed;
        int64_t expiry; /* Unix time, when expiry_status is VALID */
} VgpuRec;

typedef struct Holders {
        HostdevRef *refs;
        char **domains; /* parallel */
        size_t n;
} Holders;

static void holders_done(Holders *h) {
        free(h->refs);
        strv_free(h->domains);
        *h = (Holders){};
}

static const char *holder_of(const Holders *h, const HostdevRef *ref) {
        for (size_t i = 0; i < h->n; i++)
                if (hostdev_ref_equal(&h->refs[i], ref))
                        return h->domains[i];
        return NULL;
}

/* ---- NVML and libvirt, opened lazily and kept ---- */

static void nvml_drop(Collector *c) {
        if (c->evset && c->nvml && c->nvml->f.nvmlEventSetFree)
                (void)c->nvml->f.nvmlEventSetFree(c->evset);
        c->evset = NULL;
        c->nvml = nvml_close(c->nvml);
        for (size_t i = 0; i < c->n_units; i++)
                c->units[i]->dev = NULL;
}

static void nvml_ensure(Collector *c) {
        if (c->nvml)
                return;
        _cleanup_(gv_error_done) GvError gerr = {};
        int r = nvml_open(c->root, &c->nvml, &gerr);
        if (r < 0) {
                _cleanup_free_ char *err = gv_error_steal_message(&gerr);
                if (!c->nvml_error || !streq(c->nvml_error, err ?: "")) {
                        log_notice("NVML not used: %s", strna(err));
                        free(c->nvml_error);
                        c->nvml_error = err ? TAKE_PTR(err) : strdup("");
                }
                return;
        }
        if (c->nvml_error)
                log_notice("NVML is available again (%s)", c->nvml->library);
        c->nvml_error = mfree(c->nvml_error);
        if (c->nvml->f.nvmlEventSetCreate && c->nvml->f.nvmlEventSetCreate(&c->evset) != NVML_SUCCESS)
                c->evset = NULL;
        c->driver_version[0] = 0;
        if (c->nvml->f.nvmlSystemGetDriverVersion &&
            c->nvml->f.nvmlSystemGetDriverVersion(c->driver_version, sizeof c->driver_version) != NVML_SUCCESS)
                c->driver_version[0] = 0;
}

static void virt_ensure(Collector *c, const char *uri) {
        if (c->virt || !uri || streq(uri, "none"))
                return;
        _cleanup_(gv_error_done) GvError gerr = {};
        if (virt_open(uri, &c->virt, &gerr) < 0) {
                _cleanup_free_ char *err = gv_error_steal_message(&gerr);
                if (!c->virt_error || !streq(c->virt_error, err ?: ""))
                        log_notice("libvirt not reachable (%s): holder domains unknown: %s", uri, err ?: "");
                free(c->virt_error);
                c->virt_error = TAKE_PTR(err);
                c->virt = NULL;
        } else
                c->virt_error = mfree(c->virt_error);
}

static void holders_read(Collector *c, Holders *ret) {
        VirtDomain *doms = NULL;
        size_t n = 0;
        *ret = (Holders){};
        if (!c->virt)
                return;
        /* c->guests: guests_begin()/guests_end() around this call keep the running domains' channels */
        if (virt_list_domains(c->virt, &doms, &n) < 0) {
                _cleanup_(gv_error_done) GvError e = {};
                (void)virt_error_take(c->virt, &e, -EIO, NULL, "libvirt: cannot list domains: ");
                log_notice("%s", strna(gv_error_message(&e)));
                c->virt = virt_close(c->virt); /* reconnect next cycle */
                return;
        }
        size_t nd = 0;
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        for (size_t i = 0; i < n; i++) {
                if (!doms[i].active || doms[i].live.n_hostdevs == 0)
                        continue;
                /* a running domain with a device of ours: where its agent talks, if it has the channel */
                _cleanup_free_ char *xml = NULL, *path = NULL;
                if (virt_domain_xml(c->virt, doms[i].name, false, &xml) < 0 || domain_xml_agent_channel(xml, &path) < 0)
                        path = mfree(path);
                (void)guests_update(&c->guests, doms[i].name, path, now);
        }
        for (size_t i = 0; i < n; i++)
                for (size_t k = 0; doms[i].active && k < doms[i].live.n_hostdevs; k++) {
                        HostdevRef *nr = realloc(ret->refs, (ret->n + 1) * sizeof *nr);
                        if (!nr)
                                break;
                        ret->refs = nr;
                        if (strv_push(&ret->domains, &nd, strdup(doms[i].name)) < 0)
                                break;
                        ret->refs[ret->n++] = doms[i].live.hostdevs[k];
                }
        virt_domains_free(doms, n);
}

/* ---- units ---- */

static Tracked *tracked_get(Collector *c, const char *id, const char *gpu) {
        for (size_t i = 0; i < c->n_units; i++)
                if (streq(c->units[i]->id, id))
                        return c->units[i];
        Tracked **n = realloc(c->units, (c->n_units + 1) * sizeof *n);
        if (!n)
                return NULL;
        c->units = n;
        Tracked *t = calloc(1, sizeof *t);
        if (!t)
                return NULL;
        c->units[c->n_units++] = t;
        snprintf(t->id, sizeof t->id, "%s", id);
        snprintf(t->gpu, sizeof t->gpu, "%s", gpu);
        return t;
}

static Tracked *tracked_find(Collector *c, const char *id) {
        for (size_t i = 0; i < c->n_units; i++)
                if (streq(c->units[i]->id, id))
                        return c->units[i];
        return NULL;
}

static void xid_count(Tracked *t, unsigned xid) {
        size_t i;
        for (i = 0; i < t->n_xid && t->xid[i].xid != xid; i++)
                ;
        if (i == t->n_xid) {
                if (t->n_xid == XID_KINDS_MAX)
                        return;
                t->xid[t->n_xid++].xid = xid;
        }
        t->xid[i].n++;
}

static void event_add(Collector *c, const Tracked *t, const HealthChange *ch) {
        Event *e = &c->events[c->events_next];
        free(e->reason);
        *e = (Event){.real = now_usec(CLOCK_REALTIME), .from = ch->from, .to = ch->to, .reason = ch->reason};
        snprintf(e->unit, sizeof e->unit, "%s", t->id);
        snprintf(e->gpu, sizeof e->gpu, "%s", t->gpu);
        c->events_next = (c->events_next + 1) % EVENTS_MAX;
        if (c->n_events < EVENTS_MAX)
                c->n_events++;
        c->health_changes++;
        int lvl = ch->to == HEALTH_HEALTHY ? LOG_LEVEL_NOTICE : LOG_LEVEL_WARNING;
        log_internal(lvl, 0, "%s: %s -> %s: %s", t->id, health_level_to_string(ch->from),
                     health_level_to_string(ch->to), ch->reason);
}

static double link_gts(const char *s) {
        return s ? strtod(s, NULL) : 0; /* "16.0 GT/s PCIe" */
}

static uint64_t aer_total(Root *root, const char *syspath, const char *attr, const char *total, bool *ok) {
        _cleanup_free_ char *p = root_path(root, "%s/%s", syspath, attr);
        _cleanup_free_ char *buf = NULL;
        size_t n = 0;
        if (!p || read_full(p, 1 << 16, (void **)&buf, &n) < 0) {
                *ok = false;
                return 0;
        }
        const char *l = strstr(buf, total);
        unsigned long long v = 0;
        if (!l || sscanf(l + strlen(total), " %llu", &v) != 1)
                *ok = false;
        return v;
}

/* NVML's view of one GPU; the first failure (other than NOT_SUPPORTED) goes to *err. */
typedef struct Cycle Cycle;
static void vgpus_read(Collector *c, Cycle *y, const PciDevice *d, nvmlDevice_t dev);

static void nvml_sample(Collector *c, Cycle *y, const PciDevice *d, UnitRec *u, Tracked *t, int *err,
                        nvmlReturn_t *err_code) {
        NvmlSyms *f = &c->nvml->f;
        nvmlDevice_t dev = NULL;
        nvmlReturn_t e = f->nvmlDeviceGetHandleByPciBusId_v2(u->unit, &dev);
        unsigned failures = 0;
        if (e == NVML_SUCCESS) {
                if (c->evset && t->dev != dev && f->nvmlDeviceRegisterEvents &&
                    f->nvmlDeviceRegisterEvents(dev, nvmlEventTypeXidCriticalError, c->evset) == NVML_SUCCESS)
                        t->dev = dev;
                gpu_telemetry_read(c->nvml, dev, &u->tm, &e, &failures);
                vgpus_read(c, y, d, dev);
        } else
                failures = 1;
        c->nvml_errors += failures;
        *err = nvml_error_to_errno(e);
        *err_code = e;
        u->nvml = e == NVML_SUCCESS;
}

static const char *pf_mode(const PciDevice *d, bool mig_on, bool has_mdevs) {
        if (d->is_vfio)
                return "passthrough";
        if (mig_on)
                return "mig";
        if (d->sriov_numvfs > 0)
                return "sriov";
        if (has_mdevs)
                return "mdev";
        return d->driver ? "host" : "unbound";
}

struct Cycle {
        PciHost *host;
        MigGpu *mig;
        size_t n_mig;
        MdevDevice *mdevs;
        size_t n_mdevs;
        VendorVgpuUnit *vv;
        size_t n_vv;
        Holders holders;
        UnitRec *recs;
        size_t n_recs;
        VgpuRec *vgpus;
        size_t n_vgpus;
        json_object *gpus;
        uint64_t stale_usec; /* a guest agent that has not reported for this long is down */
};

static void cycle_done(Cycle *y) {
        pci_host_free(y->host);
        free(y->mig);
        mdev_list_free(y->mdevs, y->n_mdevs);
        vendor_vgpu_units_free(y->vv, y->n_vv);
        holders_done(&y->holders);
        for (size_t i = 0; i < y->n_recs; i++)
                free(y->recs[i].power_state);
        free(y->recs);
        free(y->vgpus);
        json_object_put(y->gpus);
        *y = (Cycle){};
}

static UnitRec *rec_new(Cycle *y) {
        UnitRec *n = realloc(y->recs, (y->n_recs + 1) * sizeof *n);
        if (!n)
                return NULL;
        y->recs = n;
        UnitRec *u = &y->recs[y->n_recs++];
        *u = (UnitRec){.iommu_group = -1, .vgpu = -1};
        return u;
}

static const MigGpu *mig_of(const Cycle *y, const char *addr) {
        for (size_t i = 0; i < y->n_mig; i++)
                if (streq(y->mig[i].address, addr))
                        return &y->mig[i];
        return NULL;
}

static const char *license_state_text(unsigned st) {
        switch (st) {
        case NVML_GRID_LICENSE_STATE_LICENSED:
                return "licensed";
        case NVML_GRID_LICENSE_STATE_UNLICENSED:
                return "unlicensed";
        case NVML_GRID_LICENSE_STATE_UNLICENSED_RESTRICTED:
                return "unlicensed (restricted)";
        case NVML_GRID_LICENSE_STATE_UNLICENSED_UNRESTRICTED:
                return "unlicensed (unrestricted)";
        case NVML_GRID_LICENSE_STATE_UNINITIALIZED:
                return "uninitialized";
        default:
                return "unknown";
        }
}

static const char *expiry_text(unsigned st) {
        return st == NVML_GRID_LICENSE_EXPIRY_VALID          ? "valid" :
               st == NVML_GRID_LICENSE_EXPIRY_PERMANENT      ? "permanent" :
               st == NVML_GRID_LICENSE_EXPIRY_NOT_APPLICABLE ? "not_applicable" :
               st == NVML_GRID_LICENSE_EXPIRY_INVALID        ? "invalid" :
                                                               "not_available";
}

/* The GPU's vGPU instances (running VMs' vGPUs) into y->vgpus: per-VM utilization, framebuffer, license;
 * each mapped to its host unit (the mdev NVML names, or the vendor vGPU on this GPU the VM holds). */
static void vgpus_read(Collector *c, Cycle *y, const PciDevice *d, nvmlDevice_t dev) {
        NvmlSyms *f = &c->nvml->f;
        if (!f->nvmlDeviceGetActiveVgpus)
                return;
        nvmlVgpuInstance_t ids[64];
        unsigned n = ELEMENTSOF(ids);
        nvmlReturn_t e = f->nvmlDeviceGetActiveVgpus(dev, &n, ids);
        if (e != NVML_SUCCESS) {
                if (e != NVML_ERROR_NOT_SUPPORTED)
                        c->nvml_errors++;
                return;
        }
        nvmlVgpuInstanceUtilizationSample_t samples[64];
        unsigned ns = 0;
        nvmlValueType_t vt = NVML_VALUE_TYPE_UNSIGNED_INT;
        if (n > 0 && f->nvmlDeviceGetVgpuUtilization) {
                ns = ELEMENTSOF(samples);
                if (f->nvmlDeviceGetVgpuUtilization(dev, 0, &vt, &ns, samples) != NVML_SUCCESS)
                        ns = 0;
        }
        for (unsigned i = 0; i < n && i < ELEMENTSOF(ids); i++) {
                VgpuRec *nv = realloc(y->vgpus, (y->n_vgpus + 1) * sizeof *nv);
                if (!nv)
                        return;
                y->vgpus = nv;
                VgpuRec *v = &y->vgpus[y->n_vgpus++];
                *v = (VgpuRec){};
                snprintf(v->gpu, sizeof v->gpu, "%s", d->addr);
                nvmlVgpuVmIdType_t idt;
                unsigned tl = sizeof v->type;
                nvmlVgpuTypeId_t type = 0;
                if (f->nvmlVgpuInstanceGetUUID && f->nvmlVgpuInstanceGetUUID(ids[i], v->uuid, sizeof v->uuid) != NVML_SUCCESS)
                        v->uuid[0] = 0;
                if (f->nvmlVgpuInstanceGetVmID && f->nvmlVgpuInstanceGetVmID(ids[i], v->vm, sizeof v->vm, &idt) != NVML_SUCCESS)
                        v->vm[0] = 0;
                if (f->nvmlVgpuInstanceGetType && f->nvmlVgpuTypeGetName &&
                    (f->nvmlVgpuInstanceGetType(ids[i], &type) != NVML_SUCCESS ||
                     f->nvmlVgpuTypeGetName(type, v->type, &tl) != NVML_SUCCESS))
                        v->type[0] = 0;
                unsigned long long fb = 0;
                v->has_fb = f->nvmlVgpuInstanceGetFbUsage && f->nvmlVgpuInstanceGetFbUsage(ids[i], &fb) == NVML_SUCCESS;
                v->fb_used = fb;
                nvmlVgpuLicenseInfo_t li = {};
                if (f->nvmlVgpuInstanceGetLicenseInfo_v2 &&
                    f->nvmlVgpuInstanceGetLicenseInfo_v2(ids[i], &li) == NVML_SUCCESS) {
                        v->has_license = true;
                        v->licensed = li.isLicensed;
                        v->license_state = li.currentState;
                        v->expiry_status = li.licenseExpiry.status;
                        if (li.licenseExpiry.status == NVML_GRID_LICENSE_EXPIRY_VALID) {
                                struct tm tmv = {.tm_year = (int)li.licenseExpiry.year - 1900,
                                                 .tm_mon = li.licenseExpiry.month - 1, .tm_mday = li.licenseExpiry.day,
                                                 .tm_hour = li.licenseExpiry.hour, .tm_min = li.licenseExpiry.min,
                                                 .tm_sec = li.licenseExpiry.sec};
                                v->expiry = (int64_t)timegm(&tmv);
                        }
                }
                for (unsigned k = 0; k < ns; k++) {
                        if (samples[k].vgpuInstance != ids[i])
                                continue;
                        const nvmlValue_t *val[4] = {&samples[k].smUtil, &samples[k].memUtil, &samples[k].encUtil,
                                                     &samples[k].decUtil};
                        for (size_t j = 0; j < 4; j++)
                                v->util[j] = vt == NVML_VALUE_TYPE_UNSIGNED_INT ? val[j]->uiVal :
                                             vt == NVML_VALUE_TYPE_UNSIGNED_LONG_LONG ? (unsigned)val[j]->ullVal :
                                             vt == NVML_VALUE_TYPE_DOUBLE ? (unsigned)val[j]->dVal : 0;
                        v->has_util = vt <= NVML_VALUE_TYPE_UNSIGNED_LONG_LONG;
                }
                /* the host unit: an mdev by its UUID; a vendor vGPU (no mdev) by the VM that holds it */
                char mdev[48];
                if (f->nvmlVgpuInstanceGetMdevUUID &&
                    f->nvmlVgpuInstanceGetMdevUUID(ids[i], mdev, sizeof mdev) == NVML_SUCCESS && mdev[0])
                        snprintf(v->unit, sizeof v->unit, "%s", mdev);
                else
                        for (size_t k = 0; v->vm[0] && k < y->n_vv; k++) {
                                const VendorVgpuUnit *vv = &y->vv[k];
                                PciAddr a;
                                if (!vv->active || !streq(vv->pf, d->addr) || pci_addr_parse(vv->vf, &a) < 0)
                                        continue;
                                HostdevRef ref = {.type = HOSTDEV_TYPE_PCI, .addr = a};
                                const char *dom = holder_of(&y->holders, &ref);
                                if (dom && streq(dom, v->vm))
                                        snprintf(v->unit, sizeof v->unit, "%s", vv->vf);
                        }
        }
}

static int vgpu_of(const Cycle *y, const char *unit) {
        for (size_t i = 0; i < y->n_vgpus; i++)
                if (y->vgpus[i].unit[0] && streq(y->vgpus[i].unit, unit))
                        return (int)i;
        return -1;
}

/* One PCI unit (GPU or VF): sysfs, NVML, health. */
static int pci_unit(Collector *c, Cycle *y, const PciDevice *d, uint64_t mono, uint64_t real, uint64_t clean) {
        bool has_mdevs = false;
        for (size_t i = 0; i < y->n_mdevs; i++)
                has_mdevs |= y->mdevs[i].active && y->mdevs[i].parent && streq(y->mdevs[i].parent, d->addr);
        const MigGpu *mg = mig_of(y, d->addr);
        const VendorVgpuUnit *vv = NULL;
        for (size_t i = 0; d->physfn && i < y->n_vv; i++)
                if (streq(y->vv[i].vf, d->addr) && y->vv[i].active)
                        vv = &y->vv[i];
        UnitRec *u = rec_new(y);
        if (!u)
                return -ENOMEM;
        snprintf(u->unit, sizeof u->unit, "%s", d->addr);
        snprintf(u->gpu, sizeof u->gpu, "%s", d->physfn ?: d->addr);
        u->kind = vv ? "vgpu" : d->physfn ? "vf" : "gpu";
        u->mode = vv ? "vgpu" : d->physfn ? (d->is_vfio ? "passthrough" : "sriov") :
                                              pf_mode(d, mg && mg->mode_current == NVML_DEVICE_MIG_ENABLE, has_mdevs);
        if (vv)
                snprintf(u->profile, sizeof u->profile, "%s", vv->type_name ?: "");
        u->driver = d->driver;
        u->iommu_group = d->iommu_group;
        u->present = d->state != PCI_DEVICE_VANISHED;
        HostdevRef ref = {.type = HOSTDEV_TYPE_PCI, .addr = d->a};
        u->domain = holder_of(&y->holders, &ref);
        if (d->link_speed && d->max_link_speed && d->link_width && d->max_link_width) {
                u->has_link = true;
                u->speed = link_gts(d->link_speed);
                u->max_speed = link_gts(d->max_link_speed);
                u->width = (unsigned)atoi(d->link_width);
                u->max_width = (unsigned)atoi(d->max_link_width);
        }
        if (d->syspath && u->present) {
                bool ok = true;
                u->aer[0] = aer_total(c->root, d->syspath, "aer_dev_correctable", "TOTAL_ERR_COR", &ok);
                u->aer[1] = aer_total(c->root, d->syspath, "aer_dev_nonfatal", "TOTAL_ERR_NONFATAL", &ok);
                u->aer[2] = aer_total(c->root, d->syspath, "aer_dev_fatal", "TOTAL_ERR_FATAL", &ok);
                u->has_aer = ok;
                if (root_read_attr(c->root, &u->power_state, "%s/power_state", d->syspath) < 0)
                        u->power_state = NULL;
        }
        Tracked *t = tracked_get(c, u->unit, u->gpu);
        if (!t)
                return -ENOMEM;
        t->seen = true;
        u->t = t;

        HealthSample s = {.present = u->present, .off_bus = d->state == PCI_DEVICE_OFF_BUS,
                          .driver_bound = d->driver != NULL,
                          .nvml_expected = c->nvml && d->vendor == PCI_VENDOR_NVIDIA && !d->physfn &&
                                           d->driver && streq(d->driver, "nvidia"),
                          .have_aer = u->has_aer, .aer_fatal = u->aer[2], .aer_nonfatal = u->aer[1]};
        nvmlReturn_t code = NVML_SUCCESS;
        if (s.nvml_expected && !pci_device_is_dead(d))
                nvml_sample(c, y, d, u, t, &s.nvml_error, &code);
        else if (s.nvml_expected)
                s.nvml_error = -ENODEV;
        s.nvml_error_name = nvml_error_name(code);
        u->vgpu = vv ? vgpu_of(y, u->unit) : -1;
        if (u->vgpu >= 0 && y->vgpus[u->vgpu].has_license) {
                s.have_license = true;
                s.licensed = y->vgpus[u->vgpu].licensed;
                s.license_state = license_state_text(y->vgpus[u->vgpu].license_state);
        }
        s.have_ecc = u->tm.has_ecc;
        s.ecc_dbe = u->tm.ecc_dbe;
        char now_s[48], max_s[48];
        if (u->has_link && (u->speed < u->max_speed || u->width < u->max_width)) {
                s.link_downgraded = true;
                snprintf(now_s, sizeof now_s, "%.1f GT/s x%u", u->speed, u->width);
                snprintf(max_s, sizeof max_s, "%.1f GT/s x%u", u->max_speed, u->max_width);
                s.link_now = now_s;
                s.link_max = max_s;
        }
        memcpy(s.xids, t->pending, t->n_pending * sizeof t->pending[0]);
        s.n_xids = t->n_pending;
        t->n_pending = 0;
        HealthChange ch = {};
        int r = health_update(&t->h, &s, mono, real, clean, &ch);
        if (r > 0)
                event_add(c, t, &ch); /* takes ch.reason */
        return r < 0 ? r : 0;
}

/* A unit that was there and is not any more: a surprise removal. */
static int gone_unit(Collector *c, Cycle *y, Tracked *t, uint64_t mono, uint64_t real, uint64_t clean) {
        UnitRec *u = rec_new(y);
        if (!u)
                return -ENOMEM;
        snprintf(u->unit, sizeof u->unit, "%s", t->id);
        snprintf(u->gpu, sizeof u->gpu, "%s", t->gpu);
        u->kind = streq(t->id, t->gpu) ? "gpu" : "vf";
        u->mode = "gone";
        u->t = t;
        t->dev = NULL;
        t->n_pending = 0;
        HealthSample s = {.present = false};
        HealthChange ch = {};
        int r = health_update(&t->h, &s, mono, real, clean, &ch);
        if (r > 0)
                event_add(c, t, &ch);
        return r < 0 ? r : 0;
}

/* Between cycles: wait for Xid events until the deadline (or stop/reload). */
static void wait_events(Collector *c, uint64_t deadline) {
        for (;;) {
                pthread_mutex_lock(&c->lock);
                bool leave = c->stop || c->reload;
                pthread_mutex_unlock(&c->lock);
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                if (leave || now >= deadline)
                        return;
                uint64_t slice = MIN(deadline - now, 200000u);
                nvmlEventData_t ev = {};
                nvmlReturn_t e = NVML_ERROR_NOT_SUPPORTED;
                if (c->nvml && c->evset && c->nvml->f.nvmlEventSetWait_v2)
                        e = c->nvml->f.nvmlEventSetWait_v2(c->evset, &ev, (unsigned)(slice / 1000));
                if (e == NVML_SUCCESS) {
                        for (size_t i = 0; i < c->n_units; i++) {
                                Tracked *t = c->units[i];
                                if (t->dev != ev.device)
                                        continue;
                                xid_count(t, (unsigned)ev.eventData);
                                if (t->n_pending < HEALTH_MAX_XIDS)
                                        t->pending[t->n_pending++] = (unsigned)ev.eventData;
                                log_info("%s: Xid %llu (%s)", t->id, ev.eventData,
                                         xid_meaning((unsigned)ev.eventData) ?: "not in gpuvirtd's table");
                        }
                        continue;
                }
                if (e == NVML_ERROR_TIMEOUT)
                        continue;
                /* no event set, or it failed: sleep on the condition instead */
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                uint64_t until = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u + slice;
                ts = (struct timespec){.tv_sec = (time_t)(until / 1000000u), .tv_nsec = (long)(until % 1000000u) * 1000};
                pthread_mutex_lock(&c->lock);
                if (!c->stop && !c->reload)
                        pthread_cond_timedwait(&c->cond, &c->lock, &ts);
                pthread_mutex_unlock(&c->lock);
        }
}

/* ---- rendering ---- */

static void label_value(FILE *f, const char *s) {
        fputc('"', f);
        for (; s && *s; s++) {
                if (*s == '\\' || *s == '"')
                        fputc('\\', f), fputc(*s, f);
                else if (*s == '\n')
                        fputs("\\n", f);
                else
                        fputc(*s, f);
        }
        fputc('"', f);
}

static void family(FILE *f, const char *name, const char *type, const char *help) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void unit_labels(FILE *f, const char *name, const UnitRec *u) {
        fprintf(f, "%s{gpu=", name);
        label_value(f, u->gpu);
        fputs(",unit=", f);
        label_value(f, u->unit);
        fputs(",mode=", f);
        label_value(f, u->mode);
}

#define SAMPLE(f, name, u, extra, fmt, ...)                                                                   \
        do {                                                                                                  \
                unit_labels(f, name, u);                                                                      \
                fputs(extra, f);                                                                              \
                fprintf(f, "} " fmt "\n", __VA_ARGS__);                                                       \
        } while (0)

/* A family over the records (var, of type T, in items[0..count)) that have a field: HELP and TYPE once,
 * before the first sample; nothing when none has it. */
#define FAMILY_OVER(f, T, var, items, count, cond, name, type, help, ...)                                     \
        do {                                                                                                  \
                bool _any = false;                                                                            \
                for (size_t _i = 0; _i < (count); _i++) {                                                     \
                        T *var = &(items)[_i];                                                                \
                        if (!(cond))                                                                          \
                                continue;                                                                     \
                        if (!_any)                                                                            \
                                family(f, name, type, help);                                                  \
                        _any = true;                                                                          \
                        __VA_ARGS__;                                                                          \
                }                                                                                             \
        } while (0)
/* ... over the units (u) */
#define FAMILY_EACH(f, y, cond, name, type, help, ...)                                                        \
        FAMILY_OVER(f, const UnitRec, u, (y)->recs, (y)->n_recs, cond, name, type, help, __VA_ARGS__)

/* The host units a domain holds, in the order its live XML lists them (PCI GPU units and mdevs). */
static size_t domain_units(const Cycle *y, const char *domain, const UnitRec **out, size_t max) {
        size_t n = 0;
        for (size_t i = 0; i < y->holders.n && n < max; i++) {
                if (!streq(y->holders.domains[i], domain))
                        continue;
                const HostdevRef *r = &y->holders.refs[i];
                char addr[PCI_ADDR_STRLEN];
                const char *id = r->type == HOSTDEV_TYPE_PCI ? pci_addr_format(&r->addr, addr) : r->uuid;
                for (size_t k = 0; k < y->n_recs; k++)
                        if (streq(y->recs[k].unit, id) && !streq(y->recs[k].kind, "mig")) {
                                out[n++] = &y->recs[k];
                                break;
                        }
        }
        return n;
}

/* The guest's GPU i, and the host unit it is: by order when the guest sees as many GPUs as the domain
 * holds units (NVML orders by PCI address, as libvirt's guest slots follow the XML), else unknown. */
static const UnitRec *guest_unit(const Cycle *y, const Guest *g, size_t i, size_t n_gpus) {
        const UnitRec *held[32];
        size_t n = domain_units(y, g->domain, held, ELEMENTSOF(held));
        return n == n_gpus && i < n ? held[i] : NULL;
}

static void render_guests(Collector *c, const Cycle *y, FILE *f) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        if (c->guests.n == 0)
                return;
        family(f, "gpuvirt_guest_agent_channel", "gauge",
               "Whether a running domain holding a unit has the gpuvirt agent channel (org.gpuvirt.agent.0).");
        for (size_t i = 0; i < c->guests.n; i++) {
                fputs("gpuvirt_guest_agent_channel{domain=", f);
                label_value(f, c->guests.g[i]->domain);
                fprintf(f, "} %d\n", c->guests.g[i]->path ? 1 : 0);
        }
        family(f, "gpuvirt_guest_agent_up", "gauge",
               "Whether the domain's gpuvirt-agent reported recently (0: no channel, no agent, or silent).");
        for (size_t i = 0; i < c->guests.n; i++) {
                fputs("gpuvirt_guest_agent_up{domain=", f);
                label_value(f, c->guests.g[i]->domain);
                fprintf(f, "} %d\n", guest_up(c->guests.g[i], now, y->stale_usec));
        }
        static const struct {
                const char *name, *key, *help;
                double scale;
        } fams[] = {
                {"gpuvirt_guest_gpu_utilization_ratio", "utilization_percent", "GPU utilization the guest's NVML reports, 0 to 1.", 0.01},
                {"gpuvirt_guest_gpu_memory_used_bytes", "memory_used_bytes", "GPU memory in use as the guest's NVML reports it.", 1},
                {"gpuvirt_guest_gpu_memory_total_bytes", "memory_total_bytes", "GPU memory as the guest's NVML reports it.", 1},
                {"gpuvirt_guest_gpu_temperature_celsius", "temperature_celsius", "GPU temperature as the guest's NVML reports it.", 1},
                {"gpuvirt_guest_gpu_power_watts", "power_watts", "GPU power draw as the guest's NVML reports it.", 1},
                {"gpuvirt_guest_gpu_processes", "processes", "Processes on the GPU as the guest's NVML lists them (compute and graphics).", 1},
        };
        for (size_t k = 0; k < ELEMENTSOF(fams); k++) {
                bool any = false;
                for (size_t i = 0; i < c->guests.n; i++) {
                        const Guest *g = c->guests.g[i];
                        json_object *gpus = g->report ? json_object_object_get(g->report, "gpus") : NULL;
                        size_t n = guest_up(g, now, y->stale_usec) && json_object_is_type(gpus, json_type_array)
                                           ? json_object_array_length(gpus) : 0;
                        for (size_t j = 0; j < n; j++) {
                                json_object *gj = json_object_array_get_idx(gpus, j), *v = json_object_object_get(gj, fams[k].key);
                                if (!v || !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
                                        continue;
                                if (!any)
                                        family(f, fams[k].name, "gauge", fams[k].help);
                                any = true;
                                const UnitRec *u = guest_unit(y, g, j, n);
                                fprintf(f, "%s{domain=", fams[k].name);
                                label_value(f, g->domain);
                                fputs(",gpu=", f);
                                label_value(f, u ? u->gpu : "");
                                fputs(",unit=", f);
                                label_value(f, u ? u->unit : "");
                                fputs(",guest_bus_id=", f);
                                label_value(f, json_object_get_string(json_object_object_get(gj, "pci_bus_id")));
                                double val = json_object_get_double(v) * fams[k].scale;
                                if (fams[k].scale == 1 && json_object_is_type(v, json_type_int))
                                        fprintf(f, "} %lld\n", (long long)json_object_get_int64(v));
                                else
                                        fprintf(f, "} %.3f\n", val);
                        }
                }
        }
}

static void vgpu_labels(FILE *f, const char *name, const VgpuRec *v) {
        fprintf(f, "%s{gpu=", name);
        label_value(f, v->gpu);
        fputs(",unit=", f);
        label_value(f, v->unit);
        fputs(",vgpu=", f);
        label_value(f, v->uuid);
        fputs(",domain=", f);
        label_value(f, v->vm);
}

/* The vGPU manager's view of each running VM's vGPU (NVML on the host). */
static void render_vgpus(const Cycle *y, FILE *f) {
        static const char *const engines[4] = {"sm", "memory", "encoder", "decoder"};
#define VGPU_EACH(cond, name, type, help, ...)                                                                \
        FAMILY_OVER(f, const VgpuRec, v, y->vgpus, y->n_vgpus, cond, name, type, help, __VA_ARGS__)
        VGPU_EACH(true, "gpuvirt_vgpu_instance_info", "gauge",
                  "A vGPU instance a running VM uses, as the vGPU manager reports it (always 1): its GPU, host unit "
                  "(mdev UUID or vendor vGPU VF; empty when not known), vGPU UUID, VM and type.", {
                          vgpu_labels(f, "gpuvirt_vgpu_instance_info", v);
                          fputs(",profile=", f);
                          label_value(f, v->type);
                          fputs("} 1\n", f);
                  });
        VGPU_EACH(v->has_util, "gpuvirt_vgpu_utilization_ratio", "gauge",
                  "Utilization of the GPU by one VM's vGPU over the manager's last sample, 0 to 1, by engine.", {
                          for (size_t k = 0; k < 4; k++) {
                                  vgpu_labels(f, "gpuvirt_vgpu_utilization_ratio", v);
                                  fprintf(f, ",engine=\"%s\"} %.2f\n", engines[k], v->util[k] / 100.0);
                          }
                  });
        VGPU_EACH(v->has_fb, "gpuvirt_vgpu_framebuffer_used_bytes", "gauge",
                  "Framebuffer (GPU memory) the VM's vGPU uses.", {
                          vgpu_labels(f, "gpuvirt_vgpu_framebuffer_used_bytes", v);
                          fprintf(f, "} %" PRIu64 "\n", v->fb_used);
                  });
        VGPU_EACH(v->has_license, "gpuvirt_vgpu_licensed", "gauge",
                  "Whether the VM's guest driver holds a vGPU license (1) or runs unlicensed (0).", {
                          vgpu_labels(f, "gpuvirt_vgpu_licensed", v);
                          fprintf(f, "} %d\n", v->licensed ? 1 : 0);
                  });
        VGPU_EACH(v->has_license, "gpuvirt_vgpu_license_state", "gauge",
                  "The vGPU's license state and the kind of its expiry, as labels (always 1).", {
                          vgpu_labels(f, "gpuvirt_vgpu_license_state", v);
                          fputs(",state=", f);
                          label_value(f, license_state_text(v->license_state));
                          fprintf(f, ",expiry=\"%s\"} 1\n", expiry_text(v->expiry_status));
                  });
        VGPU_EACH(v->has_license && v->expiry_status == NVML_GRID_LICENSE_EXPIRY_VALID,
                  "gpuvirt_vgpu_license_expiry_timestamp_seconds", "gauge",
                  "When the vGPU's license expires (Unix time); only for licenses with an expiry.", {
                          vgpu_labels(f, "gpuvirt_vgpu_license_expiry_timestamp_seconds", v);
                          fprintf(f, "} %" PRId64 "\n", v->expiry);
                  });
#undef VGPU_EACH
}

static int render_metrics(Collector *c, const Cycle *y, uint64_t took, char **ret, size_t *ret_len) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        family(f, "gpuvirt_build_info", "gauge", "gpuvirtd's version (always 1).");
        fprintf(f, "gpuvirt_build_info{version=\"%s\"} 1\n", GPUVIRT_VERSION);
        family(f, "gpuvirt_collector_cycles_total", "counter", "Collector cycles run since the daemon started.");
        fprintf(f, "gpuvirt_collector_cycles_total %" PRIu64 "\n", c->cycles);
        family(f, "gpuvirt_collector_duration_seconds", "gauge", "How long the last collector cycle took.");
        fprintf(f, "gpuvirt_collector_duration_seconds %.6f\n", (double)took / 1e6);
        family(f, "gpuvirt_collector_last_timestamp_seconds", "gauge", "When the last collector cycle ended (Unix time).");
        fprintf(f, "gpuvirt_collector_last_timestamp_seconds %.3f\n", (double)now_usec(CLOCK_REALTIME) / 1e6);
        family(f, "gpuvirt_nvml_up", "gauge", "Whether NVML is loaded and initialized (1) or not (0).");
        fprintf(f, "gpuvirt_nvml_up %d\n", c->nvml ? 1 : 0);
        family(f, "gpuvirt_nvml_errors_total", "counter", "NVML calls that failed (other than not supported).");
        fprintf(f, "gpuvirt_nvml_errors_total %" PRIu64 "\n", c->nvml_errors);
        family(f, "gpuvirt_health_changes_total", "counter", "Health changes of units since the daemon started.");
        fprintf(f, "gpuvirt_health_changes_total %" PRIu64 "\n", c->health_changes);
        if (c->nvml && c->driver_version[0]) {
                family(f, "gpuvirt_host_driver_info", "gauge", "The NVIDIA host driver (vGPU manager) version NVML reports.");
                fputs("gpuvirt_host_driver_info{version=", f);
                label_value(f, c->driver_version);
                fputs("} 1\n", f);
        }

        FAMILY_EACH(f, y, true, "gpuvirt_unit_info", "gauge",
                    "A unit (GPU, VF, vGPU, mdev, MIG instance) with its kind, driver, holder domain and profile.", {
                            unit_labels(f, "gpuvirt_unit_info", u);
                            fputs(",kind=", f);
                            label_value(f, u->kind);
                            fputs(",driver=", f);
                            label_value(f, u->driver ?: "");
                            fputs(",domain=", f);
                            label_value(f, u->domain ?: "");
                            fputs(",profile=", f);
                            label_value(f, u->profile);
                            fputs("} 1\n", f);
                    });
        FAMILY_EACH(f, y, true, "gpuvirt_unit_present", "gauge", "Whether the unit is present on the host (1) or gone (0).",
                    SAMPLE(f, "gpuvirt_unit_present", u, "", "%d", u->present ? 1 : 0));
        FAMILY_EACH(f, y, u->t, "gpuvirt_unit_health", "gauge",
                    "The unit's health: 1 for its current state (healthy, degraded, unhealthy, gone), 0 for the others.", {
                            for (int l = 0; l < _HEALTH_LEVEL_MAX; l++) {
                                    unit_labels(f, "gpuvirt_unit_health", u);
                                    fprintf(f, ",state=\"%s\"} %d\n", health_level_to_string((HealthLevel)l),
                                            u->t->h.level == (HealthLevel)l);
                            }
                    });
        FAMILY_EACH(f, y, u->iommu_group >= 0, "gpuvirt_unit_iommu_group", "gauge", "The unit's IOMMU group number.",
                    SAMPLE(f, "gpuvirt_unit_iommu_group", u, "", "%d", u->iommu_group));
        FAMILY_EACH(f, y, u->has_link, "gpuvirt_pcie_link_speed_gts", "gauge", "PCIe link speed now, in GT/s.",
                    SAMPLE(f, "gpuvirt_pcie_link_speed_gts", u, "", "%.1f", u->speed));
        FAMILY_EACH(f, y, u->has_link, "gpuvirt_pcie_link_max_speed_gts", "gauge", "PCIe link speed the device is capable of, in GT/s.",
                    SAMPLE(f, "gpuvirt_pcie_link_max_speed_gts", u, "", "%.1f", u->max_speed));
        FAMILY_EACH(f, y, u->has_link, "gpuvirt_pcie_link_width", "gauge", "PCIe link width now (lanes).",
                    SAMPLE(f, "gpuvirt_pcie_link_width", u, "", "%u", u->width));
        FAMILY_EACH(f, y, u->has_link, "gpuvirt_pcie_link_max_width", "gauge", "PCIe link width the device is capable of (lanes).",
                    SAMPLE(f, "gpuvirt_pcie_link_max_width", u, "", "%u", u->max_width));
        FAMILY_EACH(f, y, u->has_aer, "gpuvirt_pcie_aer_errors_total", "counter",
                    "PCIe AER errors the kernel counted for the device since boot, by severity.", {
                            static const char *const sev[] = {"correctable", "nonfatal", "fatal"};
                            for (int k = 0; k < 3; k++) {
                                    unit_labels(f, "gpuvirt_pcie_aer_errors_total", u);
                                    fprintf(f, ",severity=\"%s\"} %" PRIu64 "\n", sev[k], u->aer[k]);
                            }
                    });
        FAMILY_EACH(f, y, u->power_state, "gpuvirt_pci_power_state", "gauge", "The device's PCI power state (D0, D3hot, ...), as a label.", {
                    unit_labels(f, "gpuvirt_pci_power_state", u);
                    fputs(",state=", f);
                    label_value(f, u->power_state);
                    fputs("} 1\n", f);
        });
        FAMILY_EACH(f, y, u->tm.has_util, "gpuvirt_gpu_utilization_ratio", "gauge", "GPU (SM) utilization over NVML's last sample period, 0 to 1.",
                    SAMPLE(f, "gpuvirt_gpu_utilization_ratio", u, "", "%.2f", u->tm.util / 100.0));
        FAMILY_EACH(f, y, u->tm.has_util, "gpuvirt_gpu_memory_utilization_ratio", "gauge", "GPU memory controller utilization, 0 to 1.",
                    SAMPLE(f, "gpuvirt_gpu_memory_utilization_ratio", u, "", "%.2f", u->tm.mem_util / 100.0));
        FAMILY_EACH(f, y, u->tm.has_mem, "gpuvirt_gpu_memory_used_bytes", "gauge", "GPU memory in use.",
                    SAMPLE(f, "gpuvirt_gpu_memory_used_bytes", u, "", "%" PRIu64, u->tm.mem_used));
        FAMILY_EACH(f, y, u->tm.has_mem, "gpuvirt_gpu_memory_total_bytes", "gauge", "GPU memory in all.",
                    SAMPLE(f, "gpuvirt_gpu_memory_total_bytes", u, "", "%" PRIu64, u->tm.mem_total));
        FAMILY_EACH(f, y, u->tm.has_temp, "gpuvirt_gpu_temperature_celsius", "gauge", "GPU core temperature.",
                    SAMPLE(f, "gpuvirt_gpu_temperature_celsius", u, "", "%u", u->tm.temp));
        FAMILY_EACH(f, y, u->tm.has_power, "gpuvirt_gpu_power_watts", "gauge", "GPU power draw.",
                    SAMPLE(f, "gpuvirt_gpu_power_watts", u, "", "%.3f", u->tm.power_mw / 1000.0));
        FAMILY_EACH(f, y, u->tm.has_clocks, "gpuvirt_gpu_sm_clock_hertz", "gauge", "SM clock now.",
                    SAMPLE(f, "gpuvirt_gpu_sm_clock_hertz", u, "", "%" PRIu64, (uint64_t)u->tm.clk_sm * 1000000u));
        FAMILY_EACH(f, y, u->tm.has_clocks, "gpuvirt_gpu_memory_clock_hertz", "gauge", "Memory clock now.",
                    SAMPLE(f, "gpuvirt_gpu_memory_clock_hertz", u, "", "%" PRIu64, (uint64_t)u->tm.clk_mem * 1000000u));
        FAMILY_EACH(f, y, u->tm.has_procs, "gpuvirt_gpu_processes", "gauge", "Processes on the GPU (NVML's compute and graphics lists).",
                    SAMPLE(f, "gpuvirt_gpu_processes", u, "", "%u", u->tm.procs));
        FAMILY_EACH(f, y, u->tm.has_ecc, "gpuvirt_gpu_ecc_errors_total", "counter", "ECC errors over the GPU's life (NVML aggregate), by type.", {
                    SAMPLE(f, "gpuvirt_gpu_ecc_errors_total", u, ",type=\"corrected\"", "%" PRIu64, u->tm.ecc_sbe);
                    SAMPLE(f, "gpuvirt_gpu_ecc_errors_total", u, ",type=\"uncorrected\"", "%" PRIu64, u->tm.ecc_dbe);
        });
        FAMILY_EACH(f, y, u->t && u->t->n_xid && streq(u->t->id, u->unit), "gpuvirt_gpu_xid_errors_total", "counter",
                    "Xid events NVML delivered for the GPU since the daemon started, by Xid code.", {
                            for (size_t k = 0; k < u->t->n_xid; k++) {
                                    unit_labels(f, "gpuvirt_gpu_xid_errors_total", u);
                                    fprintf(f, ",xid=\"%u\"} %" PRIu64 "\n", u->t->xid[k].xid, u->t->xid[k].n);
                            }
                    });
        FAMILY_EACH(f, y, streq(u->kind, "mig"), "gpuvirt_mig_instance_memory_bytes", "gauge",
                    "Memory of a MIG GPU instance (its profile's).", {
                            unit_labels(f, "gpuvirt_mig_instance_memory_bytes", u);
                            fputs(",profile=", f);
                            label_value(f, u->profile);
                            fprintf(f, ",gi=\"%u\",ci=\"%u\"} %" PRIu64 "\n", u->gi, u->ci, u->mig_mem);
                    });
        render_vgpus(y, f);
        render_guests(c, y, f);
        fputs("# EOF\n", f) < 0 ? (void)0 : (void)0;
        if (fclose(f) != 0) {
                free(buf);
                return -ENOMEM;
        }
        /* "# EOF" belongs to OpenMetrics, not to the 0.0.4 text format: drop it again */
        if (len >= 6 && streq(buf + len - 6, "# EOF\n"))
                buf[len -= 6] = 0;
        *ret = buf;
        *ret_len = len;
        return 0;
}

static json_object *health_obj(const Tracked *t) {
        char since[32];
        health_format_time(t->h.since_usec, since);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "state", json_object_new_string(health_level_to_string(t->h.level)));
        json_object_object_add(o, "reason", t->h.reason ? json_object_new_string(t->h.reason) : NULL);
        json_object_object_add(o, "since", json_object_new_string(since));
        return o;
}

static json_object *metrics_obj(const UnitRec *u) {
        json_object *m = json_object_new_object();
        if (u->has_link) {
                json_object_object_add(m, "link_speed_gts", json_object_new_double(u->speed));
                json_object_object_add(m, "link_max_speed_gts", json_object_new_double(u->max_speed));
                json_object_object_add(m, "link_width", json_object_new_int((int)u->width));
                json_object_object_add(m, "link_max_width", json_object_new_int((int)u->max_width));
        }
        if (u->has_aer) {
                json_object_object_add(m, "aer_correctable", json_object_new_int64((int64_t)u->aer[0]));
                json_object_object_add(m, "aer_nonfatal", json_object_new_int64((int64_t)u->aer[1]));
                json_object_object_add(m, "aer_fatal", json_object_new_int64((int64_t)u->aer[2]));
        }
        if (u->power_state)
                json_object_object_add(m, "power_state", json_object_new_string(u->power_state));
        json_object *tj = gpu_telemetry_json(&u->tm);
        json_object_object_foreach(tj, tkey, tval) json_object_object_add(m, tkey, json_object_get(tval));
        json_object_put(tj);
        if (u->t && streq(u->t->id, u->unit) && u->t->n_xid) {
                json_object *x = json_object_new_object();
                for (size_t k = 0; k < u->t->n_xid; k++) {
                        char key[16];
                        snprintf(key, sizeof key, "%u", u->t->xid[k].xid);
                        json_object_object_add(x, key, json_object_new_int64((int64_t)u->t->xid[k].n));
                }
                json_object_object_add(m, "xid_events", x);
        }
        return m;
}

static json_object *vgpu_obj(const VgpuRec *v) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "gpu", json_object_new_string(v->gpu));
        json_object_object_add(o, "unit", v->unit[0] ? json_object_new_string(v->unit) : NULL);
        json_object_object_add(o, "uuid", json_object_new_string(v->uuid));
        json_object_object_add(o, "vm", json_object_new_string(v->vm));
        json_object_object_add(o, "type", v->type[0] ? json_object_new_string(v->type) : NULL);
        if (v->has_util) {
                json_object_object_add(o, "sm_utilization_percent", json_object_new_int((int)v->util[0]));
                json_object_object_add(o, "memory_utilization_percent", json_object_new_int((int)v->util[1]));
                json_object_object_add(o, "encoder_utilization_percent", json_object_new_int((int)v->util[2]));
                json_object_object_add(o, "decoder_utilization_percent", json_object_new_int((int)v->util[3]));
        }
        if (v->has_fb)
                json_object_object_add(o, "framebuffer_used_bytes", json_object_new_int64((int64_t)v->fb_used));
        if (v->has_license) {
                json_object *l = json_object_new_object();
                json_object_object_add(l, "licensed", json_object_new_boolean(v->licensed));
                json_object_object_add(l, "state", json_object_new_string(license_state_text(v->license_state)));
                json_object_object_add(l, "expiry", json_object_new_string(expiry_text(v->expiry_status)));
                if (v->expiry_status == NVML_GRID_LICENSE_EXPIRY_VALID) {
                        char t[32];
                        health_format_time((uint64_t)v->expiry * 1000000u, t);
                        json_object_object_add(l, "expires", json_object_new_string(t));
                }
                json_object_object_add(o, "license", l);
        }
        return o;
}

static json_object *unit_obj(const Cycle *y, const UnitRec *u) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "unit", json_object_new_string(u->unit));
        json_object_object_add(o, "gpu", json_object_new_string(u->gpu));
        json_object_object_add(o, "kind", json_object_new_string(u->kind));
        json_object_object_add(o, "mode", json_object_new_string(u->mode));
        json_object_object_add(o, "driver", u->driver ? json_object_new_string(u->driver) : NULL);
        json_object_object_add(o, "domain", u->domain ? json_object_new_string(u->domain) : NULL);
        json_object_object_add(o, "profile", u->profile[0] ? json_object_new_string(u->profile) : NULL);
        json_object_object_add(o, "iommu_group", u->iommu_group >= 0 ? json_object_new_int(u->iommu_group) : NULL);
        json_object_object_add(o, "present", json_object_new_boolean(u->present));
        json_object_object_add(o, "health", u->t ? health_obj(u->t) : NULL);
        json_object_object_add(o, "metrics", metrics_obj(u));
        if (u->vgpu >= 0)
                json_object_object_add(o, "vgpu_instance", vgpu_obj(&y->vgpus[u->vgpu]));
        return o;
}

/* The guest's view of a unit a running domain holds: {"domain","agent_channel","agent_up","report"}. */
static json_object *guest_obj(Collector *c, const Cycle *y, const UnitRec *u) {
        if (!u->domain)
                return NULL;
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        for (size_t i = 0; i < c->guests.n; i++) {
                const Guest *g = c->guests.g[i];
                if (!streq(g->domain, u->domain))
                        continue;
                json_object *o = json_object_new_object();
                json_object_object_add(o, "domain", json_object_new_string(g->domain));
                json_object_object_add(o, "agent_channel", json_object_new_boolean(g->path != NULL));
                bool up = guest_up(g, now, y->stale_usec);
                json_object_object_add(o, "agent_up", json_object_new_boolean(up));
                json_object *gpus = up ? json_object_object_get(g->report, "gpus") : NULL, *mine = NULL;
                size_t n = json_object_is_type(gpus, json_type_array) ? json_object_array_length(gpus) : 0;
                for (size_t j = 0; j < n && !mine; j++)
                        if (guest_unit(y, g, j, n) == u)
                                mine = json_object_get(json_object_array_get_idx(gpus, j));
                json_object_object_add(o, "report", mine);
                return o;
        }
        return NULL;
}

static int json_text(json_object *o, char **ret, size_t *ret_len) {
        size_t n = 0;
        const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &n);
        char *b = s ? malloc(n + 2) : NULL;
        if (!b)
                return -ENOMEM;
        memcpy(b, s, n);
        b[n++] = '\n';
        b[n] = 0;
        *ret = b;
        *ret_len = n;
        return 0;
}

static int render_json(Collector *c, Cycle *y, Snapshot *s, char **ret_health) {
        json_object *units = json_object_new_array(), *hunits = json_object_new_array();
        for (size_t i = 0; i < y->n_recs; i++) {
                json_object *uo = unit_obj(y, &y->recs[i]);
                json_object_object_add(uo, "guest", guest_obj(c, y, &y->recs[i]));
                json_object_array_add(units, uo);
                if (y->recs[i].t)
                        json_object_array_add(hunits, health_unit_json(y->recs[i].unit, y->recs[i].gpu, &y->recs[i].t->h));
        }
        json_object *uw = json_object_new_object();
        json_object_object_add(uw, "units", units);
        int r = json_text(uw, &s->units, &s->units_len);
        json_object_put(uw);

        json_object *hf = json_object_new_object();
        json_object_object_add(hf, "version", json_object_new_int(HEALTH_FILE_VERSION));
        json_object_object_add(hf, "units", hunits);
        size_t hl;
        if (r >= 0)
                r = json_text(hf, ret_health, &hl);
        json_object_put(hf);

        /* /v1/gpus: the model of `gpuvirt --json list`, each GPU with its health and metrics */
        json_object *gw = json_object_new_object();
        json_object *gl = y->gpus ? json_object_get(y->gpus) : json_object_new_array();
        for (size_t i = 0; i < json_object_array_length(gl); i++) {
                json_object *d = json_object_array_get_idx(gl, i);
                const char *addr = json_object_get_string(json_object_object_get(d, "address"));
                for (size_t k = 0; addr && k < y->n_recs; k++)
                        if (streq(y->recs[k].unit, addr) && y->recs[k].t) {
                                json_object_object_add(d, "health", health_obj(y->recs[k].t));
                                json_object_object_add(d, "metrics", metrics_obj(&y->recs[k]));
                        }
                json_object *vl = NULL;
                for (size_t k = 0; addr && k < y->n_vgpus; k++)
                        if (streq(y->vgpus[k].gpu, addr)) {
                                if (!vl)
                                        vl = json_object_new_array();
                                json_object_array_add(vl, vgpu_obj(&y->vgpus[k]));
                        }
                if (vl)
                        json_object_object_add(d, "vgpu_instances", vl);
        }
        json_object_object_add(gw, "gpus", gl);
        if (r >= 0)
                r = json_text(gw, &s->gpus, &s->gpus_len);
        json_object_put(gw);

        json_object *ew = json_object_new_object(), *ev = json_object_new_array();
        for (size_t i = 0; i < c->n_events; i++) {
                const Event *e = &c->events[(c->events_next + EVENTS_MAX - c->n_events + i) % EVENTS_MAX];
                char t[32];
                health_format_time(e->real, t);
                json_object *o = json_object_new_object();
                json_object_object_add(o, "time", json_object_new_string(t));
                json_object_object_add(o, "unit", json_object_new_string(e->unit));
                json_object_object_add(o, "gpu", json_object_new_string(e->gpu));
                json_object_object_add(o, "from", json_object_new_string(health_level_to_string(e->from)));
                json_object_object_add(o, "to", json_object_new_string(health_level_to_string(e->to)));
                json_object_object_add(o, "reason", json_object_new_string(e->reason ?: ""));
                json_object_array_add(ev, o);
        }
        json_object_object_add(ew, "events", ev);
        if (r >= 0)
                r = json_text(ew, &s->events, &s->events_len);
        json_object_put(ew);
        return r;
}

/* ---- one cycle ---- */

static int cycle(Collector *c, uint64_t clean, uint64_t stale, const char *virt_uri) {
        uint64_t start = now_usec(CLOCK_MONOTONIC), real = now_usec(CLOCK_REALTIME);
        Cycle y = {};
        nvml_ensure(c);
        virt_ensure(c, virt_uri);
        int r = pci_host_scan(c->root, &y.host);
        if (r < 0) {
                log_warning_errno(r, "Cannot scan %s/sys/bus/pci/devices: %m", root_dir(c->root));
                return r;
        }
        if (c->nvml && mig_gpus_read(c->nvml, &y.mig, &y.n_mig) < 0) {
                y.mig = NULL;
                y.n_mig = 0;
        }
        if (mdev_list(c->root, &y.mdevs, &y.n_mdevs) < 0) {
                y.mdevs = NULL;
                y.n_mdevs = 0;
        }
        if (vendor_vgpu_units(c->root, &y.vv, &y.n_vv) < 0) {
                y.vv = NULL;
                y.n_vv = 0;
        }
        guests_begin(&c->guests);
        holders_read(c, &y.holders);
        guests_end(&c->guests);
        y.stale_usec = stale;
        for (size_t i = 0; i < c->n_units; i++)
                c->units[i]->seen = false;
        for (size_t i = 0; r >= 0 && i < y.host->n_devices; i++) {
                const PciDevice *d = &y.host->devices[i];
                if (inventory_is_gpu(d, true))
                        r = pci_unit(c, &y, d, start, real, clean);
        }
        for (size_t i = 0; r >= 0 && i < c->n_units; i++)
                if (!c->units[i]->seen)
                        r = gone_unit(c, &y, c->units[i], start, real, clean);
        /* units on a GPU: MIG instances and mdevs carry their GPU's health */
        for (size_t i = 0; r >= 0 && i < y.n_mig; i++) {
                const MigGpu *g = &y.mig[i];
                for (size_t k = 0; g->mode_current == NVML_DEVICE_MIG_ENABLE && k < g->n_inst; k++) {
                        const MigInstance *in = &g->inst[k];
                        UnitRec *u = rec_new(&y);
                        if (!u) {
                                r = -ENOMEM;
                                break;
                        }
                        if (in->uuid[0])
                                snprintf(u->unit, sizeof u->unit, "%s", in->uuid);
                        else
                                snprintf(u->unit, sizeof u->unit, "%s/gi%u", g->address, in->gi_id);
                        snprintf(u->gpu, sizeof u->gpu, "%s", g->address);
                        u->kind = u->mode = "mig";
                        u->present = true;
                        u->gi = in->gi_id;
                        u->ci = in->ci_id < 0 ? 0 : (unsigned)in->ci_id;
                        if (in->profile >= 0 && (size_t)in->profile < g->n_profiles) {
                                snprintf(u->profile, sizeof u->profile, "%s", g->profiles[in->profile].name);
                                u->mig_mem = g->profiles[in->profile].memory_mb << 20;
                        }
                        u->t = tracked_find(c, g->address);
                }
        }
        for (size_t i = 0; r >= 0 && i < y.n_mdevs; i++) {
                const MdevDevice *m = &y.mdevs[i];
                if (!m->active)
                        continue;
                UnitRec *u = rec_new(&y);
                if (!u) {
                        r = -ENOMEM;
                        break;
                }
                snprintf(u->unit, sizeof u->unit, "%s", m->uuid);
                snprintf(u->gpu, sizeof u->gpu, "%s", m->parent ?: "");
                u->kind = u->mode = "mdev";
                u->present = true;
                u->iommu_group = m->iommu_group;
                snprintf(u->profile, sizeof u->profile, "%s", m->type ?: "");
                HostdevRef ref = {.type = HOSTDEV_TYPE_MDEV};
                snprintf(ref.uuid, sizeof ref.uuid, "%s", m->uuid);
                u->domain = holder_of(&y.holders, &ref);
                u->t = m->parent ? tracked_find(c, m->parent) : NULL;
                u->vgpu = vgpu_of(&y, m->uuid);
        }
        if (r >= 0 && inventory_list(y.host, c->names, false, &y.gpus) < 0)
                y.gpus = NULL;
        /* the names of what this host has are cached now: libpci's parsed pci.ids would cost ~2 MiB resident */
        pci_names_drop_table(c->names);

        Snapshot *s = calloc(1, sizeof *s);
        _cleanup_free_ char *health = NULL;
        if (!s)
                r = -ENOMEM;
        if (r >= 0) {
                atomic_init(&s->refs, 1);
                s->taken_usec = now_usec(CLOCK_REALTIME);
                c->cycles++;
                r = render_json(c, &y, s, &health);
        }
        unsigned seen = 0;
        for (size_t i = 0; i < c->n_units; i++)
                seen += c->units[i]->seen;
        if (r >= 0)
                r = render_metrics(c, &y, now_usec(CLOCK_MONOTONIC) - start, &s->metrics, &s->metrics_len);
        if (r >= 0) {
                s->healthz = strdup_printf("ok: %u units, %" PRIu64 " cycles\n", seen, c->cycles);
                s->healthz_len = s->healthz ? strlen(s->healthz) : 0;
                r = s->healthz ? 0 : -ENOMEM;
        }
        cycle_done(&y);
        if (r < 0) {
                snapshot_unref(s);
                return r;
        }
        s->ok = true;
        snapshot_store_set(c->store, s);
        atomic_store(&c->n_seen, seen);
        /* the state file other programs read: written only when it changes */
        if (root_writable(c->root) && (!c->last_health || !streq(c->last_health, health))) {
                int k = root_write_file(c->root, health, "%s", HEALTH_FILE);
                if (k < 0)
                        log_warning_errno(k, "Cannot write %s/%s: %m", root_dir(c->root), HEALTH_FILE);
                else {
                        free(c->last_health);
                        c->last_health = TAKE_PTR(health);
                }
        }
        atomic_store(&c->last_cycle, now_usec(CLOCK_MONOTONIC));
        return 0;
}

static void *collector_main(void *p) {
        Collector *c = p;
        for (bool first = true;; first = false) {
                pthread_mutex_lock(&c->lock);
                bool reload = c->reload;
                c->reload = false;
                uint64_t interval = c->cfg.interval_usec, clean = c->cfg.clean_usec;
                _cleanup_free_ char *uri = c->cfg.libvirt ? strdup(c->cfg.libvirt) : NULL;
                bool stop = c->stop;
                pthread_mutex_unlock(&c->lock);
                if (stop)
                        break;
                if (reload) {
                        /* rescan everything: NVML sees GPUs that came back, libvirt reconnects */
                        nvml_drop(c);
                        c->virt = virt_close(c->virt);
                }
                uint64_t start = now_usec(CLOCK_MONOTONIC);
                int r = cycle(c, clean, 3 * interval + 5000000u, uri);
                if (first) {
                        pthread_mutex_lock(&c->lock);
                        c->first_done = true;
                        c->first_error = r;
                        pthread_cond_broadcast(&c->cond);
                        pthread_mutex_unlock(&c->lock);
                        if (r < 0)
                                break;
                }
                /* a cycle frees what the one before allocated: give the freed pages back before waiting */
                (void)malloc_trim(0);
                wait_events(c, start + interval);
        }
        return NULL;
}

static const char *default_libvirt(Root *root) {
        return root_has_libvirt(root) ? VIRT_DEFAULT_URI : "none";
}

int collector_start(Root *root, const DaemonConfig *cfg, SnapshotStore *store, Collector **ret) {
        Collector *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->root = root;
        c->store = store;
        int r = daemon_config_copy(cfg, &c->cfg);
        if (r >= 0 && !c->cfg.libvirt && !(c->cfg.libvirt = strdup(default_libvirt(root))))
                r = -ENOMEM;
        if (r < 0) {
                daemon_config_done(&c->cfg);
                free(c);
                return r;
        }
        if (pci_names_new(&c->names) < 0)
                c->names = NULL;
        pthread_mutex_init(&c->lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&c->cond, &ca);
        pthread_condattr_destroy(&ca);
        r = -pthread_create(&c->thread, NULL, collector_main, c);
        if (r < 0) {
                pthread_cond_destroy(&c->cond);
                pthread_mutex_destroy(&c->lock);
                daemon_config_done(&c->cfg);
                pci_names_free(c->names);
                free(c);
                return r;
        }
        pthread_mutex_lock(&c->lock);
        while (!c->first_done)
                pthread_cond_wait(&c->cond, &c->lock);
        r = c->first_error;
        pthread_mutex_unlock(&c->lock);
        if (r < 0) {
                collector_stop(c);
                return r;
        }
        *ret = c;
        return 0;
}

int collector_reload(Collector *c, const DaemonConfig *cfg) {
        DaemonConfig n;
        int r = daemon_config_copy(cfg, &n);
        if (r < 0)
                return r;
        if (!n.libvirt && !(n.libvirt = strdup(default_libvirt(c->root)))) {
                daemon_config_done(&n);
                return -ENOMEM;
        }
        pthread_mutex_lock(&c->lock);
        daemon_config_done(&c->cfg);
        c->cfg = n;
        c->reload = true;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        return 0;
}

void collector_stop(Collector *c) {
        if (!c)
                return;
        pthread_mutex_lock(&c->lock);
        c->stop = true;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->thread, NULL);
        nvml_drop(c);
        virt_close(c->virt);
        guests_done(&c->guests);
        free(c->nvml_error);
        free(c->virt_error);
        pci_names_free(c->names);
        for (size_t i = 0; i < c->n_units; i++) {
                health_unit_done(&c->units[i]->h);
                free(c->units[i]);
        }
        free(c->units);
        for (size_t i = 0; i < EVENTS_MAX; i++)
                free(c->events[i].reason);
        free(c->last_health);
        daemon_config_done(&c->cfg);
        pthread_cond_destroy(&c->cond);
        pthread_mutex_destroy(&c->lock);
        free(c);
}

uint64_t collector_last_cycle(Collector *c) {
        return atomic_load(&c->last_cycle);
}

unsigned collector_units(Collector *c) {
        return atomic_load(&c->n_seen);
}
