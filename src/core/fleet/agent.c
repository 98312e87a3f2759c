/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fleet agent: provider tree, realization through the desired-state engine, write-back, reconciler. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/fleet/agent.h"
#include "basic/errname.h"
#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "core/fleet/client.h"
#include "core/state/hoststate.h"
#include "core/host/inventory.h"
#include "core/host/names.h"
#include "core/store/statefile.h"
#include "core/vgpu/vgpu-types.h"
#include "core/fleet/fleet.h"

void fleet_converge_report_done(FleetConvergeReport *r) {
        free(r->error);
        r->error = NULL;
}

_printf_(2, 3) static void report_error(FleetConvergeReport *r, const char *fmt, ...) {
        if (r->error)
                return;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&r->error, fmt, ap) < 0)
                r->error = NULL;
        va_end(ap);
}

int fleet_host_name_default(Root *root, char **ret) {
        _cleanup_free_ char *h = NULL;
        if (root_read_attr(root, &h, "etc/hostname") >= 0 && !isempty(h) && strlen(h) < FLEET_NAME_MAX && !strchr(h, '/'))
                return (*ret = TAKE_PTR(h)) ? 0 : -ENOMEM;
        char buf[256] = "";
        if (gethostname(buf, sizeof buf - 1) < 0 || !*buf)
                return -EADDRNOTAVAIL;
        buf[FLEET_NAME_MAX - 1] = '\0';
        return (*ret = strdup(buf)) ? 0 : -ENOMEM;
}

/* ---- the agent's memory on the host ---- */

/* agent.json: {"host":..,"gpus":{ADDR:{"baseline":{"mode","vfs","vfs_vfio"},"model":{...}}},
 *              "units":{"RES/N":{"gpu","kind","id","state",...}}} */
typedef struct State {
        json_object *doc;
} State;

static json_object *obj(json_object *o, const char *key) {
        json_object *v = json_object_object_get(o, key);
        if (!json_object_is_type(v, json_type_object)) {
                v = json_object_new_object();
                json_object_object_add(o, key, v);
        }
        return v;
}

static int state_load(Root *root, State *st) {
        _cleanup_(gv_error_done) GvError err = {};
        int r = state_read_json(root, &st->doc, &err, FLEET_AGENT_STATE);
        if (r == -ENOENT || r == -EBADMSG) {
                /* a damaged memory is not trusted: start over (units are found again by their names) */
                if (err.message)
                        log_debug("fleet agent: starting over, %s", err.message);
                st->doc = json_object_new_object();
                return st->doc ? 0 : -ENOMEM;
        }
        return r;
}

static int state_save(Root *root, State *st) {
        _cleanup_free_ char *t = strdup_printf("%s\n", json_object_to_json_string_ext(st->doc, JSON_C_TO_STRING_PLAIN));
        return t ? root_write_file(root, t, FLEET_AGENT_STATE) : -ENOMEM;
}

static const char *str(json_object *o, const char *key) {
        return json_object_get_string(json_object_object_get(o, key));
}

/* ---- what a GPU offers (the provider tree) ---- */

/* NVIDIA names a vGPU type by its framebuffer in GB ("NVIDIA H100-10C"): at most memory/framebuffer. */
static unsigned vendor_type_max(const char *name, unsigned memory_mb) {
        const char *dash = strrchr(name, '-');
        unsigned gb = 0;
        if (!dash || sscanf(dash + 1, "%u", &gb) != 1 || gb == 0 || memory_mb == 0)
                return 1;
        return MAX(1u, memory_mb / 1024 / gb);
}

static int model_of(const HostObservation *h, PciNames *names, const PciDevice *d, const GpuObservation *o,
                    FleetModelInfo *m) {
        *m = (FleetModelInfo){.vendor = d->vendor, .device = d->device};
        _cleanup_free_ char *nm = names ? pci_names_device(names, d->vendor, d->device) : NULL;
        const char *name = o->mig && o->mig->name[0] ? o->mig->name : nm ?: "GPU";
        size_t len = MIN(strlen(name), sizeof m->name - 1);
        memcpy(m->name, name, len);
        m->name[len] = '\0';
        m->memory_mb = fleet_model_memory_mb(d->vendor, d->device);
        m->vgpu_one_type = d->vendor == PCI_VENDOR_NVIDIA;
        bool vendor = vendor_vgpu_is_parent(h->root, d->addr);
        m->total_vfs = d->sriov_totalvfs > 0 && !vendor ? (unsigned)d->sriov_totalvfs : 0;
        if (d->has_mdev_types) {
                MdevType *t = NULL;
                size_t n = 0;
                if (mdev_types_read(h->root, d->syspath, &t, &n) >= 0 && n > 0) {
                        m->types = calloc(n, sizeof *m->types);
                        for (size_t i = 0; m->types && i < n; i++) {
                                FleetVgpuType *x = &m->types[m->n_types++];
                                snprintf(x->id, sizeof x->id, "%s", t[i].id);
                                snprintf(x->name, sizeof x->name, "%s", t[i].name ?: t[i].id);
                                unsigned have = 0;
                                for (size_t k = 0; k < h->n_mdevs; k++)
                                        have += h->mdevs[k].active && h->mdevs[k].parent && streq(h->mdevs[k].parent, d->addr) &&
                                                h->mdevs[k].type && streq(h->mdevs[k].type, t[i].id);
                                x->max = t[i].max_instances > 0 ? (unsigned)t[i].max_instances
                                                                : (unsigned)MAX(t[i].available_instances, 0) + have;
                                if (x->max == 0)
                                        m->n_types--;
                        }
                }
                mdev_types_free(t, n);
        } else if (vendor) {
                m->vgpu_vendor = true;
                VendorVgpuAvail *a = NULL;
                size_t n = 0;
                if (vendor_vgpu_types(h->root, d->addr, &a, &n) >= 0 && n > 0) {
                        m->types = calloc(n, sizeof *m->types);
                        for (size_t i = 0; m->types && i < n; i++) {
                                FleetVgpuType *x = &m->types[m->n_types++];
                                snprintf(x->id, sizeof x->id, "%u", a[i].id);
                                snprintf(x->name, sizeof x->name, "%s", a[i].name);
                                x->max = MIN(vendor_type_max(a[i].name, m->memory_mb), (unsigned)MAX(d->sriov_totalvfs, 1));
                        }
                }
                vendor_vgpu_avail_free(a, n);
        }
        if (o->mig && o->mig->capable) {
                m->n_mig = o->mig->n_profiles;
                memcpy(m->mig, o->mig->profiles, sizeof m->mig);
                m->mig_slices = o->mig->slices;
        }
        return m->types || (!d->has_mdev_types && !vendor) || m->n_types == 0 ? 0 : -ENOMEM;
}

static bool host_has_nvswitch(const HostObservation *h) {
        for (size_t i = 0; i < h->pci->n_devices; i++)
                if (h->pci->devices[i].vendor == PCI_VENDOR_NVIDIA && pci_device_class(&h->pci->devices[i]) == 0x0680)
                        return true;
        return false;
}

/* ---- units on the host ---- */

typedef struct Unit {
        FleetUnit u;
        char gpu[PCI_ADDR_STRLEN];
        const FleetModelInfo *model; /* of the GPU record */
} Unit;

static const char *unit_key(const FleetUnit *u, char buf[static FLEET_ID_MAX + 16]) {
        snprintf(buf, FLEET_ID_MAX + 16, "%s/%u", u->res, u->n);
        return buf;
}

static const MigInstance *mig_at(const GpuObservation *o, const char *profile, int start) {
        for (size_t i = 0; o->mig && i < o->mig->n_inst; i++)
                if (o->mig->inst[i].start == (unsigned)start && streq(o->mig->profiles[o->mig->inst[i].profile].name, profile))
                        return &o->mig->inst[i];
        return NULL;
}

static const MdevDevice *mdev_find(const HostObservation *h, const char *uuid) {
        for (size_t i = 0; i < h->n_mdevs; i++)
                if (h->mdevs[i].active && streq(h->mdevs[i].uuid, uuid))
                        return &h->mdevs[i];
        return NULL;
}

static const VendorVgpuUnit *vendor_find(const HostObservation *h, const char *vf) {
        for (size_t i = 0; i < h->n_units; i++)
                if (h->units[i].active && streq(h->units[i].vf, vf))
                        return &h->units[i];
        return NULL;
}

/* Whether a unit the agent recorded is still on the host (ident: what it recorded). */
static bool unit_present(const HostObservation *h, const PciDevice *d, const GpuObservation *o, json_object *rec) {
        const char *kind = str(rec, "kind"), *id = str(rec, "id");
        if (!kind || !id || !d)
                return false;
        if (streq(kind, "passthrough"))
                return d->is_vfio;
        if (streq(kind, "vf")) {
                const PciDevice *vf = pci_host_find(h->pci, id);
                return vf && vf->is_vfio;
        }
        if (streq(kind, "vgpu"))
                return mdev_find(h, id) || vendor_find(h, id);
        if (streq(kind, "mig")) {
                const MigInstance *m = mig_at(o, strna(str(rec, "profile")), json_object_get_int(json_object_object_get(rec, "start")));
                return m != NULL;
        }
        return false;
}

/* Whether an observed thing is one of the agent's units (then it is not part of the GPU's base usage). */
static bool owned(json_object *units, const char *gpu, const char *kind, const char *id) {
        json_object_object_foreach(units, ok_, ov) {
                (void)ok_;
                const char *g = str(ov, "gpu"), *kd = str(ov, "kind"), *i = str(ov, "id");
                if (g && kd && i && streq(g, gpu) && streq(kd, kind) && streq(i, id))
                        return true;
        }
        return false;
}

static char *mig_id(const char *profile, unsigned start) {
        return strdup_printf("%s@%u", profile, start);
}

/* ---- one pass ---- */

typedef struct Pass {
        Root *root;
        Store *store;
        const char *host;
        State st;
        HostObservation h;
        PciNames *names;
        FleetConvergeReport *rep;
        /* the store's view of this host */
        StoreKv *gpus;
        size_t n_gpus;
        StoreKv *urecs;
        size_t n_urecs;
        FleetGpuInfo *ledger; /* parsed gpus, by index */
} Pass;

static void pass_done(Pass *p) {
        json_object_put(p->st.doc);
        host_observation_done(&p->h);
        pci_names_free(p->names);
        for (size_t i = 0; p->ledger && i < p->n_gpus; i++)
                fleet_gpu_info_done(&p->ledger[i]);
        free(p->ledger);
        store_kvs_free(p->gpus, p->n_gpus);
        store_kvs_free(p->urecs, p->n_urecs);
}

static int read_store(Pass *p) {
        store_kvs_free(p->gpus, p->n_gpus);
        for (size_t i = 0; p->ledger && i < p->n_gpus; i++)
                fleet_gpu_info_done(&p->ledger[i]);
        free(p->ledger);
        p->gpus = NULL;
        p->ledger = NULL;
        p->n_gpus = 0;
        _cleanup_free_ char *gp = strdup_printf(FLEET_KEY_GPUS "%s/", p->host);
        if (!gp)
                return -ENOMEM;
        int r = store_range(p->store, gp, true, &p->gpus, &p->n_gpus, NULL);
        if (r < 0)
                return r;
        p->ledger = calloc(MAX(p->n_gpus, (size_t)1), sizeof *p->ledger);
        if (!p->ledger)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_gpus; i++)
                if (fleet_gpu_record_parse(p->store, p->gpus[i].value, &p->ledger[i], NULL) < 0)
                        p->ledger[i] = (FleetGpuInfo){.numa = -1};
        return 0;
}

static FleetGpuInfo *ledger_of(Pass *p, const char *addr, size_t *ret_i) {
        for (size_t i = 0; i < p->n_gpus; i++)
                if (streq(p->ledger[i].address, addr)) {
                        if (ret_i)
                                *ret_i = i;
                        return &p->ledger[i];
                }
        return NULL;
}

/* The GPU record this host publishes for d: model (cached while the GPU is in use), traits, base usage. */
static int gpu_record(Pass *p, const PciDevice *d, const GpuObservation *o, json_object *gs, FleetGpuInfo *ret) {
        FleetGpuInfo g = {.numa = d->numa_node, .base_vgpu_type = -1};
        snprintf(g.host, sizeof g.host, "%s", p->host);
        snprintf(g.address, sizeof g.address, "%s", d->addr);
        json_object *mine = obj(gs, d->addr), *units = obj(p->st.doc, "units");
        /* the model: observed while nothing is on the GPU (types shrink as vGPUs are made), else remembered */
        bool idle = o->mode == GPU_MODE_HOST || (o->mode == GPU_MODE_SRIOV && o->vgpu_count == 0) ||
                    (o->mode == GPU_MODE_MIG && o->mig && o->mig->n_inst == 0);
        json_object *cached = json_object_object_get(mine, "model");
        FleetGpuInfo tmp;
        _cleanup_free_ char *text = NULL;
        if (!idle && cached) {
                json_object *wrap = json_object_new_object();
                json_object_object_add(wrap, "host", json_object_new_string(p->host));
                json_object_object_add(wrap, "address", json_object_new_string(d->addr));
                json_object_object_add(wrap, "model", json_object_get(cached));
                json_object *b = json_object_new_object();
                json_object_object_add(b, "mode", json_object_new_string("host"));
                json_object_object_add(b, "mig_occ", json_object_new_int(0));
                json_object_object_add(b, "vgpu_count", json_object_new_int(0));
                json_object_object_add(b, "vfs_used", json_object_new_int(0));
                json_object_object_add(wrap, "base", b);
                json_object_object_add(wrap, "units", json_object_new_array());
                text = strdup(json_object_to_json_string(wrap));
                json_object_put(wrap);
        }
        if (text && fleet_gpu_info_parse(text, &tmp, NULL) >= 0) {
                g.model = tmp.model;
                tmp.model.types = NULL;
                fleet_gpu_info_done(&tmp);
        } else {
                int r = model_of(&p->h, p->names, d, o, &g.model);
                if (r < 0)
                        return fleet_gpu_info_done(&g), r;
                json_object_object_add(mine, "model", fleet_model_info_json(&g.model));
        }
        if (host_has_nvswitch(&p->h) && d->vendor == PCI_VENDOR_NVIDIA)
                snprintf(g.nvlink, sizeof g.nvlink, "%s/nvswitch", p->host);
        g.isolation_reason = passthrough_blocker(p->h.pci, d);
        g.isolated = !g.isolation_reason;
        json_object *bl = json_object_object_get(mine, "baseline");
        g.base_mode = bl ? gpu_mode_from_string(str(bl, "mode")) : o->mode;
        if (g.base_mode < 0)
                g.base_mode = o->mode;
        /* base usage: what is on the GPU and not the fleet's */
        for (size_t i = 0; o->mig && i < o->mig->n_inst; i++) {
                const MigInstance *m = &o->mig->inst[i];
                _cleanup_free_ char *id = mig_id(o->mig->profiles[m->profile].name, m->start);
                if (id && owned(units, d->addr, "mig", id))
                        continue;
                g.base_occ |= ((1u << m->size) - 1) << m->start;
                g.base_mig_count[m->profile]++;
        }
        for (size_t i = 0; i < p->h.n_mdevs; i++) {
                const MdevDevice *m = &p->h.mdevs[i];
                if (!m->active || !m->parent || !streq(m->parent, d->addr) || owned(units, d->addr, "vgpu", m->uuid))
                        continue;
                for (size_t t = 0; t < g.model.n_types; t++)
                        if (m->type && streq(g.model.types[t].id, m->type))
                                g.base_vgpu_type = (int)t;
                g.base_vgpu_count++;
        }
        for (size_t i = 0; i < p->h.n_units; i++) {
                const VendorVgpuUnit *u = &p->h.units[i];
                if (!u->active || !streq(u->pf, d->addr) || owned(units, d->addr, "vgpu", u->vf))
                        continue;
                char id[16];
                snprintf(id, sizeof id, "%u", u->type);
                for (size_t t = 0; t < g.model.n_types; t++)
                        if (streq(g.model.types[t].id, id))
                                g.base_vgpu_type = (int)t;
                g.base_vgpu_count++;
        }
        *ret = g;
        return 0;
}

/* Publish the GPU records: the host's part (model, traits, base), the ledger and drain flag as the store has
 * them, compared by mod_revision so a reservation made meanwhile is never lost. */
static int publish(Pass *p) {
        json_object *gs = obj(p->st.doc, "gpus");
        for (int attempt = 0; attempt < 20; attempt++) {
                StoreTxn t = {};
                int r = 0;
                for (size_t i = 0; i < p->h.pci->n_devices && store_txn_room(&t, 2) && r >= 0; i++) {
                        const PciDevice *d = &p->h.pci->devices[i];
                        if (!inventory_is_gpu(d, false))
                                continue;
                        GpuObservation o;
                        if ((r = host_observe_gpu(&p->h, d, &o)) < 0)
                                break;
                        FleetGpuInfo g;
                        r = gpu_record(p, d, &o, gs, &g);
                        gpu_observation_done(&o);
                        if (r < 0)
                                break;
                        size_t li = 0;
                        FleetGpuInfo *old = ledger_of(p, d->addr, &li);
                        _cleanup_free_ char *mk = NULL, *mv = NULL, *rec = fleet_gpu_record(&g, &mk, &mv);
                        json_object *nj = rec ? json_tokener_parse(rec) : NULL;
                        json_object *oj = old ? store_record_parse(p->gpus[li].key, p->gpus[li].value, NULL) : NULL;
                        if (!nj || !mk || !mv)
                                r = -ENOMEM;
                        else if (oj) {
                                /* the ledger and drain flag as the store has them */
                                json_object_object_add(nj, "units", json_object_get(json_object_object_get(oj, "units")));
                                json_object_object_add(nj, "drain", json_object_new_boolean(old->drain));
                        }
                        const char *b = nj ? json_object_to_json_string_ext(nj, JSON_C_TO_STRING_PLAIN) : NULL;
                        if (b && (!oj || !streq(json_object_to_json_string_ext(oj, JSON_C_TO_STRING_PLAIN), b))) {
                                /* the model (content-addressed: putting it again changes nothing; once per
                                 * transaction, which refuses a key twice), then the record */
                                bool have = false;
                                for (size_t k = 0; k < t.n_success && !have; k++)
                                        have = streq(t.success[k].key, mk);
                                if (!have)
                                        store_txn_put(&t, TAKE_PTR(mk), TAKE_PTR(mv), false, 0);
                                store_txn_put(&t, fleet_gpu_key(p->host, d->addr), strdup(b), true,
                                              oj ? p->gpus[li].mod_revision : 0);
                        }
                        json_object_put(oj);
                        json_object_put(nj);
                        fleet_gpu_info_done(&g);
                }
                StoreTxnResult tr = {};
                bool ok = true;
                if (r >= 0 && t.n_success) {
                        r = store_txn_run(p->store, &t, &tr);
                        ok = r >= 0 && tr.succeeded;
                }
                store_txn_result_done(&tr);
                store_txn_done(&t);
                if (r < 0 && r != -EIO)
                        return r;
                if (r >= 0 && ok)
                        return read_store(p);
                /* a reservation came in between: read the ledgers again and redo */
                if ((r = read_store(p)) < 0)
                        return r;
        }
        return -EBUSY;
}

/* A unit that was realized and is gone: out of its GPU's ledger, its reservation marked lost. */
static int unit_lost(Pass *p, const char *res, unsigned n, const char *gpu) {
        for (int attempt = 0; attempt < 20; attempt++) {
                size_t li;
                FleetGpuInfo *g = ledger_of(p, gpu, &li);
                if (!g)
                        return 0;
                size_t k = 0;
                for (size_t i = 0; i < g->n_units; i++)
                        if (!(streq(g->units[i].res, res) && g->units[i].n == n))
                                g->units[k++] = g->units[i];
                if (k == g->n_units)
                        break;
                g->n_units = k;
                StoreTxn t = {};
                store_txn_put(&t, fleet_gpu_key(p->host, gpu), fleet_gpu_record(g, NULL, NULL), true, p->gpus[li].mod_revision);
                StoreTxnResult tr = {};
                int r = store_txn_run(p->store, &t, &tr);
                bool ok = r >= 0 && tr.succeeded;
                store_txn_result_done(&tr);
                store_txn_done(&t);
                if (r < 0 && r != -EIO)
                        return r;
                if ((r = read_store(p)) < 0)
                        return r;
                if (ok)
                        break;
        }
        json_object *o = NULL;
        if (fleet_reservation(p->store, res, &o) >= 0) {
                json_object_object_add(o, "state", json_object_new_string("lost"));
                json_object *lost = json_object_object_get(o, "lost");
                if (!json_object_is_type(lost, json_type_array)) {
                        lost = json_object_new_array();
                        json_object_object_add(o, "lost", lost);
                }
                json_object_array_add(lost, json_object_new_int64(n));
                _cleanup_free_ char *key = strdup_printf(FLEET_KEY_RES "%s", res);
                if (key)
                        (void)store_put(p->store, key, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), 0);
                json_object_put(o);
        }
        p->rep->units_lost++;
        return 0;
}

static int reobserve(Pass *p) {
        host_observation_done(&p->h);
        return host_observe(p->root, &p->h);
}

/* The desired entry of one GPU from its ledger (NULL entry->mode host and no entry: leave it alone). */
static int desired_entry(Pass *p, const PciDevice *d, const GpuObservation *o, const FleetGpuInfo *L, json_object *mine,
                         GpuEntry *e, bool *ret_manage) {
        json_object *units = obj(p->st.doc, "units");
        bool have_fleet = false;
        json_object_object_foreach(units, uk, uv) {
                (void)uk;
                have_fleet |= str(uv, "gpu") && streq(str(uv, "gpu"), d->addr);
        }
        *e = (GpuEntry){.select = SELECT_ADDRESS};
        snprintf(e->addr, sizeof e->addr, "%s", d->addr);
        json_object *bl = json_object_object_get(mine, "baseline");
        if ((!L || L->n_units == 0) && !have_fleet) {
                /* not the fleet's: remember how it is, to come back to it after the fleet used it */
                json_object *b = json_object_new_object();
                json_object_object_add(b, "mode", json_object_new_string(gpu_mode_to_string(o->mode)));
                json_object_object_add(b, "vfs", json_object_new_int((int)o->vfs));
                json_object_object_add(b, "vfs_vfio", json_object_new_boolean(o->vfs_vfio));
                json_object_object_add(mine, "baseline", b);
                *ret_manage = false;
                return 0;
        }
        *ret_manage = true;
        GpuMode base = bl ? gpu_mode_from_string(str(bl, "mode")) : GPU_MODE_HOST;
        FleetKind kind = L && L->n_units ? L->units[0].kind : _FLEET_KIND_INVALID;
        if (kind < 0) {
                /* the fleet's units are all gone: back to the baseline */
                e->mode = base < 0 ? GPU_MODE_HOST : base;
                if (e->mode == GPU_MODE_SRIOV) {
                        e->vfs = (unsigned)json_object_get_int(json_object_object_get(bl, "vfs"));
                        e->vfs_vfio = json_object_get_boolean(json_object_object_get(bl, "vfs_vfio"));
                }
        } else
                e->mode = fleet_kind_mode(kind);
        /* what stays besides the fleet's units: base MIG instances and vGPUs */
        if (e->mode == GPU_MODE_MIG) {
                size_t cap = MIG_MAX_INSTANCES * 2;
                e->mig = calloc(cap, sizeof *e->mig);
                if (!e->mig)
                        return -ENOMEM;
                for (size_t i = 0; o->mig && i < o->mig->n_inst; i++) {
                        const MigInstance *m = &o->mig->inst[i];
                        const char *pn = o->mig->profiles[m->profile].name;
                        _cleanup_free_ char *id = mig_id(pn, m->start);
                        if (!id || owned(units, d->addr, "mig", id))
                                continue;
                        e->mig[e->n_mig++] = (MigCount){strdup(pn), 1, m->start + 1};
                }
                for (size_t i = 0; L && i < L->n_units && e->n_mig < cap; i++)
                        if (L->units[i].kind == FLEET_MIG && L->units[i].idx >= 0)
                                e->mig[e->n_mig++] = (MigCount){strdup(L->model.mig[L->units[i].idx].name), 1,
                                                                (unsigned)L->units[i].start + 1};
        } else if (e->mode == GPU_MODE_SRIOV) {
                if (kind == FLEET_VF) {
                        bool keep = base == GPU_MODE_SRIOV && json_object_get_int(json_object_object_get(bl, "vfs")) > 0;
                        e->vfs = keep ? (unsigned)json_object_get_int(json_object_object_get(bl, "vfs")) : (unsigned)d->sriov_totalvfs;
                        e->vfs_vfio = true;
                }
        } else if (e->mode == GPU_MODE_VGPU) {
                size_t nu = 0;
                bool vendor = vendor_vgpu_is_parent(p->root, d->addr);
                /* the non-fleet vGPUs stay */
                for (size_t i = 0; i < p->h.n_mdevs; i++) {
                        const MdevDevice *m = &p->h.mdevs[i];
                        if (m->active && m->parent && streq(m->parent, d->addr) && !owned(units, d->addr, "vgpu", m->uuid)) {
                                if (!e->vgpu_type && m->type)
                                        e->vgpu_type = strdup(m->type);
                                (void)strv_push(&e->vgpu_units, &nu, strdup(m->uuid));
                        }
                }
                for (size_t i = 0; i < p->h.n_units; i++) {
                        const VendorVgpuUnit *u = &p->h.units[i];
                        if (u->active && streq(u->pf, d->addr) && !owned(units, d->addr, "vgpu", u->vf)) {
                                if (!e->vgpu_type)
                                        e->vgpu_type = strdup_printf("%u", u->type);
                                (void)strv_push(&e->vgpu_units, &nu, strdup(u->vf));
                        }
                }
                for (size_t i = 0; L && i < L->n_units; i++) {
                        const FleetUnit *u = &L->units[i];
                        if (u->kind != FLEET_VGPU || u->idx < 0)
                                continue;
                        free(e->vgpu_type);
                        e->vgpu_type = strdup(L->model.types[u->idx].id);
                        char key[FLEET_ID_MAX + 16];
                        json_object *rec = json_object_object_get(units, unit_key(u, key));
                        if (!vendor) {
                                char uuid[MDEV_UUID_STRLEN];
                                host_vgpu_uuid(u->res, u->n, uuid);
                                (void)strv_push(&e->vgpu_units, &nu, strdup(uuid));
                                continue;
                        }
                        /* vendor vGPU: the VF it has, or the first free VF of the PF */
                        const char *vf = rec ? str(rec, "id") : NULL;
                        if (!vf)
                                for (size_t k = 0; k < p->h.pci->n_devices && !vf; k++) {
                                        const PciDevice *x = &p->h.pci->devices[k];
                                        if (x->physfn && streq(x->physfn, d->addr) && x->has_vendor_vgpu && !vendor_find(&p->h, x->addr) &&
                                            !strv_contains(e->vgpu_units, x->addr) && !owned(units, d->addr, "vgpu", x->addr))
                                                vf = x->addr;
                                }
                        if (!vf)
                                continue;
                        (void)strv_push(&e->vgpu_units, &nu, strdup(vf));
                        if (!rec) {
                                /* remember the VF chosen for the unit: write_back names the unit by it */
                                rec = json_object_new_object();
                                json_object_object_add(rec, "res", json_object_new_string(u->res));
                                json_object_object_add(rec, "n", json_object_new_int64(u->n));
                                json_object_object_add(rec, "gpu", json_object_new_string(d->addr));
                                json_object_object_add(rec, "kind", json_object_new_string("vgpu"));
                                json_object_object_add(rec, "id", json_object_new_string(vf));
                                json_object_object_add(rec, "state", json_object_new_string("pending"));
                                json_object_object_add(units, key, rec);
                        }
                }
                if (!e->vgpu_units) {
                        e->mode = GPU_MODE_HOST; /* nothing left to carry: the baseline's vGPUs are gone too */
                        free(e->vgpu_type);
                        e->vgpu_type = NULL;
                } else
                        e->vgpu_count = (unsigned)nu;
        }
        return 0;
}

/* Write the unit records of the GPU's ledger from what is on the host now, and forget units not in it. */
static int write_back(Pass *p) {
        json_object *units = obj(p->st.doc, "units");
        _cleanup_strv_free_ char **live = NULL;
        size_t nl = 0;
        for (size_t gi = 0; gi < p->n_gpus; gi++) {
                const FleetGpuInfo *L = &p->ledger[gi];
                const PciDevice *d = pci_host_find(p->h.pci, L->address);
                GpuObservation o = {};
                if (d && host_observe_gpu(&p->h, d, &o) < 0)
                        d = NULL;
                for (size_t i = 0; i < L->n_units; i++) {
                        const FleetUnit *u = &L->units[i];
                        char key[FLEET_ID_MAX + 16];
                        unit_key(u, key);
                        (void)strv_push(&live, &nl, strdup(key));
                        json_object *old = json_object_object_get(units, key);
                        json_object *rec = json_object_new_object();
                        json_object_object_add(rec, "res", json_object_new_string(u->res));
                        json_object_object_add(rec, "n", json_object_new_int64(u->n));
                        json_object_object_add(rec, "host", json_object_new_string(p->host));
                        json_object_object_add(rec, "gpu", json_object_new_string(L->address));
                        json_object_object_add(rec, "kind", json_object_new_string(fleet_kind_to_string(u->kind)));
                        _cleanup_free_ char *id = NULL;
                        int group = -1;
                        char extra[NVML_DEVICE_UUID_BUFFER_SIZE] = "";
                        switch (u->kind) {
                        case FLEET_PASSTHROUGH:
                                if (d && d->is_vfio) {
                                        id = strdup(d->addr);
                                        group = d->iommu_group;
                                }
                                break;
                        case FLEET_VF: {
                                const char *prev = old ? str(old, "id") : NULL;
                                const PciDevice *vf = prev ? pci_host_find(p->h.pci, prev) : NULL;
                                if (!(vf && vf->is_vfio && vf->physfn && streq(vf->physfn, L->address)))
                                        vf = NULL;
                                for (size_t k = 0; d && !vf && k < p->h.pci->n_devices; k++) {
                                        const PciDevice *x = &p->h.pci->devices[k];
                                        if (x->physfn && streq(x->physfn, L->address) && x->is_vfio && !owned(units, L->address, "vf", x->addr))
                                                vf = x;
                                }
                                if (vf) {
                                        id = strdup(vf->addr);
                                        group = vf->iommu_group;
                                }
                                break;
                        }
                        case FLEET_VGPU: {
                                char uuid[MDEV_UUID_STRLEN];
                                host_vgpu_uuid(u->res, u->n, uuid);
                                const MdevDevice *m = mdev_find(&p->h, uuid);
                                const char *prev = old ? str(old, "id") : NULL;
                                const VendorVgpuUnit *vu = prev ? vendor_find(&p->h, prev) : NULL;
                                if (m) {
                                        id = strdup(m->uuid);
                                        group = m->iommu_group;
                                } else if (vu) {
                                        id = strdup(vu->vf);
                                        group = vu->iommu_group;
                                }
                                break;
                        }
                        case FLEET_MIG: {
                                const char *pn = u->idx >= 0 ? L->model.mig[u->idx].name : "?";
                                const MigInstance *m = d ? mig_at(&o, pn, u->start) : NULL;
                                if (m) {
                                        id = mig_id(pn, m->start);
                                        snprintf(extra, sizeof extra, "%s", m->uuid);
                                        json_object_object_add(rec, "gi", json_object_new_int((int)m->gi_id));
                                }
                                json_object_object_add(rec, "profile", json_object_new_string(pn));
                                json_object_object_add(rec, "start", json_object_new_int(u->start));
                                break;
                        }
                        default:
                                break;
                        }
                        json_object_object_add(rec, "state", json_object_new_string(id ? "ready" : "failed"));
                        json_object_object_add(rec, "id", json_string_or_null(id));
                        if (extra[0])
                                json_object_object_add(rec, "mig_uuid", json_object_new_string(extra));
                        if (group >= 0) {
                                _cleanup_free_ char *node = strdup_printf("/dev/vfio/%d", group);
                                json_object_object_add(rec, "vfio", json_string_or_null(node));
                        }
                        if (!id)
                                json_object_object_add(rec, "error", json_object_new_string(p->rep->error ?: "not realized yet"));
                        if (id)
                                p->rep->units_ready++;
                        else
                                p->rep->units_failed++;
                        /* to the store when it differs from what is there */
                        _cleanup_free_ char *ukey = fleet_unit_key(p->host, u->res, u->n);
                        const char *text = json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN);
                        bool same = false;
                        for (size_t k = 0; ukey && k < p->n_urecs; k++)
                                same |= streq(p->urecs[k].key, ukey) && streq(p->urecs[k].value, text);
                        int r = same || !ukey ? 0 : store_put(p->store, ukey, text, 0);
                        if (id)
                                json_object_object_add(units, key, rec);
                        else {
                                json_object_object_del(units, key);
                                json_object_put(rec);
                        }
                        if (r < 0) {
                                gpu_observation_done(&o);
                                return r;
                        }
                }
                gpu_observation_done(&o);
        }
        /* units whose reservation is gone: removed from the host by the pass; forget them, drop their records */
        _cleanup_strv_free_ char **gone = NULL;
        size_t ng = 0;
        json_object_object_foreach(units, gk, gv) {
                (void)gv;
                if (!strv_contains(live, gk))
                        (void)strv_push(&gone, &ng, strdup(gk));
        }
        for (char **g = gone; g && *g; g++) {
                json_object_object_del(units, *g);
                p->rep->units_removed++;
        }
        for (size_t k = 0; k < p->n_urecs; k++) {
                const char *rest = p->urecs[k].key + strlen(FLEET_KEY_UNITS) + strlen(p->host) + 1;
                char key[FLEET_ID_MAX + 16];
                snprintf(key, sizeof key, "%s", rest);
                if (!strv_contains(live, key)) {
                        StoreTxnResult tr = {};
                        StoreOp op = {STORE_DELETE, p->urecs[k].key, NULL, 0, false};
                        int r = store_txn(p->store, NULL, 0, &op, 1, NULL, 0, &tr);
                        store_txn_result_done(&tr);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

/* Entries that host_plan rejected: their line is their index + 1; drop it and report its GPU. */
static int rejected_entry(const HostSpec *spec, const char *err) {
        unsigned line, col;
        if (!err || sscanf(err, "fleet:%u:%u:", &line, &col) != 2 || line == 0 || line > spec->n_entries)
                return -1;
        return (int)line - 1;
}

static void spec_drop(HostSpec *spec, size_t i) {
        /* the entry's contents go through the spec's own free path */
        HostSpec *one = calloc(1, sizeof *one);
        GpuEntry *e = one ? malloc(sizeof *e) : NULL;
        if (e) {
                *e = spec->entries[i];
                one->entries = e;
                one->n_entries = 1;
        }
        host_spec_free(one);
        memmove(&spec->entries[i], &spec->entries[i + 1], (spec->n_entries - i - 1) * sizeof(GpuEntry));
        spec->n_entries--;
        for (size_t k = 0; k < spec->n_entries; k++)
                spec->entries[k].line = (unsigned)k + 1;
}

static int realize(Pass *p) {
        json_object *gs = obj(p->st.doc, "gpus");
        _cleanup_host_spec_free_ HostSpec *spec = calloc(1, sizeof *spec);
        if (!spec || !(spec->file = strdup("fleet")) || !(spec->entries = calloc(MAX(p->h.pci->n_devices, (size_t)1), sizeof(GpuEntry))))
                return -ENOMEM;
        for (size_t i = 0; i < p->h.pci->n_devices; i++) {
                const PciDevice *d = &p->h.pci->devices[i];
                if (!inventory_is_gpu(d, false))
                        continue;
                p->rep->gpus++;
                GpuObservation o;
                int r = host_observe_gpu(&p->h, d, &o);
                if (r < 0)
                        return r;
                bool manage = false;
                GpuEntry *e = &spec->entries[spec->n_entries];
                r = desired_entry(p, d, &o, ledger_of(p, d->addr, NULL), obj(gs, d->addr), e, &manage);
                gpu_observation_done(&o);
                if (r < 0)
                        return r;
                if (manage) {
                        e->line = (unsigned)spec->n_entries + 1;
                        e->column = 1;
                        spec->n_entries++;
                }
        }
        /* plan; an entry the engine rejects is reported and left out, the rest goes on */
        for (size_t round = 0; round <= spec->n_entries + 1; round++) {
                _cleanup_plan_free_ Plan *plan = NULL;
                _cleanup_(gv_error_done) GvError perr = {};
                int r = host_plan(p->root, spec, &plan, &perr);
                if (r < 0) {
                        const char *err = perr.message;
                        int bad = rejected_entry(spec, err);
                        report_error(p->rep, "%s", strna(err));
                        if (bad < 0)
                                return 0;
                        spec_drop(spec, (size_t)bad);
                        continue;
                }
                size_t done = 0;
                _cleanup_(gv_error_done) GvError aerr = {};
                r = host_apply(p->root, plan, &done, &aerr);
                p->rep->steps += done;
                if (r >= 0)
                        return 0;
                report_error(p->rep, "%s", strna(aerr.message));
                /* the failed step's device: leave its entry out, apply the others */
                const Step *failed = &plan->steps[done];
                size_t k;
                for (k = 0; k < spec->n_entries && !streq(spec->entries[k].addr, failed->device); k++)
                        ;
                if (k == spec->n_entries)
                        return 0;
                spec_drop(spec, k);
                if ((r = reobserve(p)) < 0)
                        return r;
        }
        return 0;
}

int fleet_agent_converge(Root *root, Store *s, const char *host, FleetConvergeReport *ret) {
        *ret = (FleetConvergeReport){};
        Pass p = {.root = root, .store = s, .host = host, .rep = ret};
        _cleanup_free_ char *up = strdup_printf(FLEET_KEY_UNITS "%s/", host);
        _cleanup_strv_free_ char **lost = NULL;
        _cleanup_(gv_error_done) GvError lerr = {};
        _cleanup_close_ int lock = root_lock(root, 30000, &lerr);
        if (lock < 0) {
                report_error(ret, "cannot take the host lock: %s", lerr.message ?: errno_message(lock));
                return lock;
        }
        /* an apply the agent (or anyone) was killed in: finish its step first */
        _cleanup_free_ char *step = NULL;
        _cleanup_(gv_error_done) GvError rerr = {};
        _cleanup_strv_free_ char **restored = NULL;
        int r = host_recover(root, &step, &restored, &rerr);
        if (r < 0)
                report_error(ret, "cannot finish the interrupted step %s: %s", strna(step), strna(rerr.message));
        (void)pci_names_new(&p.names);
        if ((r = state_load(root, &p.st)) < 0 || (r = host_observe(root, &p.h)) < 0 || (r = read_store(&p)) < 0)
                goto out;
        json_object_object_add(p.st.doc, "host", json_object_new_string(host));
        if (!up || (r = store_range(s, up, true, &p.urecs, &p.n_urecs, NULL)) < 0)
                goto out;
        /* units realized before that have disappeared: released, not recreated */
        json_object *units = obj(p.st.doc, "units");
        size_t nlost = 0;
        json_object_object_foreach(units, lk, lv) {
                const PciDevice *d = str(lv, "gpu") ? pci_host_find(p.h.pci, str(lv, "gpu")) : NULL;
                GpuObservation o = {};
                if (d && host_observe_gpu(&p.h, d, &o) < 0)
                        d = NULL;
                const char *state = str(lv, "state");
                if (state && streq(state, "ready") && !unit_present(&p.h, d, &o, lv))
                        (void)strv_push(&lost, &nlost, strdup(lk));
                gpu_observation_done(&o);
        }
        for (char **l = lost; l && *l; l++) {
                json_object *v = json_object_object_get(units, *l);
                _cleanup_free_ char *gpu = strdup(strna(str(v, "gpu"))), *res = strdup(strna(str(v, "res")));
                unsigned n = (unsigned)json_object_get_int(json_object_object_get(v, "n"));
                json_object_object_del(units, *l);
                if (!gpu || !res || (r = unit_lost(&p, res, n, gpu)) < 0)
                        goto out;
        }
        if ((r = publish(&p)) < 0 || (r = realize(&p)) < 0 || (r = reobserve(&p)) < 0 || (r = write_back(&p)) < 0 ||
            (r = publish(&p)) < 0)
                goto out;
out:
        if (r < 0)
                report_error(ret, "%s", store_last_error(s) ?: errno_message(r));
        if (p.st.doc) {
                int k = state_save(root, &p.st);
                if (r >= 0 && k < 0)
                        r = k;
        }
        pass_done(&p);
        return r;
}

/* ---- the loop ---- */

static int64_t mono_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int register_host(Store *s, const char *host, int ttl, int64_t *ret_lease) {
        int64_t lease;
        int r = store_lease_grant(s, ttl, &lease);
        if (r < 0)
                return r;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(host));
        json_object_object_add(o, "pid", json_object_new_int((int)getpid()));
        json_object_object_add(o, "ttl", json_object_new_int(ttl));
        const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        _cleanup_free_ char *hk = strdup_printf(FLEET_KEY_HOSTS "%s", host), *ak = strdup_printf(FLEET_KEY_ALIVE "%s", host);
        r = hk && ak ? 0 : -ENOMEM;
        if (r >= 0)
                r = store_put(s, hk, text, 0);
        if (r >= 0)
                r = store_put(s, ak, text, lease);
        json_object_put(o);
        if (r >= 0)
                *ret_lease = lease;
        return r;
}

int fleet_agent_run(Root *root, Store *s, const FleetAgentOptions *o, GvError *err) {
        int ttl = o->ttl_s > 0 ? o->ttl_s : 10;
        int resync = o->resync_ms > 0 ? o->resync_ms : 3 * ttl * 1000;
        int64_t lease = 0;
        int r = register_host(s, o->host, ttl, &lease);
        if (r < 0)
                return gv_error_set(err, r, NULL, NULL, "cannot register %s: %s", o->host, store_last_error(s) ?: errno_message(r));
        _cleanup_free_ char *prefix = strdup_printf(FLEET_KEY_GPUS "%s/", o->host);
        if (!prefix)
                return gv_error_set(err, -ENOMEM, NULL, NULL, NULL);
        int64_t seen = 0, last_keepalive = mono_ms(), last_pass = 0;
        bool dirty = true;
        while (!*o->stop) {
                int64_t now = mono_ms();
                if (now - last_keepalive >= ttl * 1000 / 3) {
                        int left = 0;
                        r = store_lease_keepalive(s, lease, &left);
                        if (r >= 0 && left == 0) {
                                /* the lease expired (the store was away too long): the host was down; come back */
                                log_debug("fleet agent: lease %lld lost, registering %s again", (long long)lease, o->host);
                                r = register_host(s, o->host, ttl, &lease);
                                dirty = true;
                        }
                        if (r >= 0)
                                last_keepalive = now;
                }
                if (dirty || now - last_pass >= resync) {
                        FleetConvergeReport rep;
                        /* the revision before the pass: changes made during it wake the next watch */
                        StoreKv *kv = NULL;
                        size_t n = 0;
                        int64_t rev = seen;
                        if (store_range(s, prefix, true, &kv, &n, &rev) >= 0)
                                seen = rev;
                        store_kvs_free(kv, n);
                        (void)fleet_agent_converge(root, s, o->host, &rep);
                        if (o->progress)
                                o->progress(&rep, o->userdata);
                        fleet_converge_report_done(&rep);
                        last_pass = mono_ms();
                        dirty = false;
                }
                bool changed = false;
                int64_t rev = seen;
                int wait = (int)MIN((int64_t)ttl * 1000 / 3, 1000);
                r = store_watch(s, prefix, seen, wait, &changed, &rev);
                if (r < 0)
                        nanosleep(&(struct timespec){.tv_nsec = 200 * 1000 * 1000}, NULL);
                if (changed)
                        dirty = true;
        }
        (void)store_lease_revoke(s, lease);
        return 0;
}
