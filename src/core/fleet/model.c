/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The provider tree's records (a GPU's key in the store) and the request language. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/jsonfile.h"
#include "core/fleet/fleet.h"

static const char *const fleet_kind_table[_FLEET_KIND_MAX] = {
        [FLEET_PASSTHROUGH] = "passthrough",
        [FLEET_VF] = "vf",
        [FLEET_VGPU] = "vgpu",
        [FLEET_MIG] = "mig",
};

const char *fleet_kind_to_string(FleetKind k) {
        return k >= 0 && k < _FLEET_KIND_MAX ? fleet_kind_table[k] : NULL;
}

FleetKind fleet_kind_from_string(const char *s) {
        for (int i = 0; s && i < _FLEET_KIND_MAX; i++)
                if (streq(s, fleet_kind_table[i]))
                        return (FleetKind)i;
        return _FLEET_KIND_INVALID;
}

GpuMode fleet_kind_mode(FleetKind k) {
        static const GpuMode m[_FLEET_KIND_MAX] = {
                [FLEET_PASSTHROUGH] = GPU_MODE_PASSTHROUGH,
                [FLEET_VF] = GPU_MODE_SRIOV,
                [FLEET_VGPU] = GPU_MODE_VGPU,
                [FLEET_MIG] = GPU_MODE_MIG,
        };
        return k >= 0 && k < _FLEET_KIND_MAX ? m[k] : _GPU_MODE_INVALID;
}

/* The seed's table: passthrough physical, SR-IOV and MIG hardware, vGPU driver isolation; every mode but
 * passthrough can migrate live (with the driver's VFIO migration support). */
const char *fleet_kind_isolation(FleetKind k) {
        static const char *const t[_FLEET_KIND_MAX] = {
                [FLEET_PASSTHROUGH] = "physical",
                [FLEET_VF] = "hardware",
                [FLEET_VGPU] = "driver",
                [FLEET_MIG] = "hardware",
        };
        return k >= 0 && k < _FLEET_KIND_MAX ? t[k] : NULL;
}

bool fleet_kind_live_migratable(FleetKind k) {
        return k == FLEET_VF || k == FLEET_VGPU || k == FLEET_MIG;
}

static const char *const strategy_table[_FLEET_STRATEGY_MAX] = {
        [FLEET_FRAG] = "frag",
        [FLEET_BINPACK] = "binpack",
        [FLEET_SPREAD] = "spread",
        [FLEET_FIRST_FIT] = "first-fit",
        [FLEET_HAMI] = "hami",
};

const char *fleet_strategy_to_string(FleetStrategy s) {
        return s >= 0 && s < _FLEET_STRATEGY_MAX ? strategy_table[s] : NULL;
}

FleetStrategy fleet_strategy_from_string(const char *s) {
        for (int i = 0; s && i < _FLEET_STRATEGY_MAX; i++)
                if (streq(s, strategy_table[i]))
                        return (FleetStrategy)i;
        return _FLEET_STRATEGY_INVALID;
}

unsigned fleet_model_memory_mb(uint16_t vendor, uint16_t device) {
        /* Nominal memory of the boards gpuvirt knows (vendor data sheets); NVML's memory info would be the
         * authority on a live NVIDIA host. */
        static const struct {
                uint16_t vendor, device;
                unsigned gib;
        } t[] = {
                {0x10de, 0x20b0, 40},  {0x10de, 0x20f1, 40}, {0x10de, 0x20b2, 80}, {0x10de, 0x20b5, 80},
                {0x10de, 0x20b7, 24},  {0x10de, 0x2330, 80}, {0x10de, 0x2331, 80}, {0x10de, 0x2335, 141},
                {0x10de, 0x1eb8, 16},  {0x10de, 0x2206, 10}, {0x10de, 0x21c4, 6},  {0x10de, 0x1e30, 24},
                {0x8086, 0x56c0, 16},  {0x1002, 0x6860, 16},
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++)
                if (t[i].vendor == vendor && t[i].device == device)
                        return t[i].gib * 1024;
        return 0;
}

/* ---- GPU records ---- */

void fleet_gpu_info_done(FleetGpuInfo *g) {
        free(g->model.types);
        free(g->isolation_reason);
        free(g->units);
        *g = (FleetGpuInfo){};
}

static json_object *hex16(uint16_t v) {
        char b[8];
        snprintf(b, sizeof b, "%04x", v);
        return json_object_new_string(b);
}

static int unit_profile_name(const FleetModelInfo *m, const FleetUnit *u, const char **ret) {
        if (u->kind == FLEET_MIG && u->idx >= 0 && (size_t)u->idx < m->n_mig)
                return *ret = m->mig[u->idx].name, 0;
        if (u->kind == FLEET_VGPU && u->idx >= 0 && (size_t)u->idx < m->n_types)
                return *ret = m->types[u->idx].id, 0;
        return *ret = NULL, 0;
}

json_object *fleet_model_info_json(const FleetModelInfo *m) {
        json_object *mo = json_object_new_object();
        json_object_object_add(mo, "vendor", hex16(m->vendor));
        json_object_object_add(mo, "device", hex16(m->device));
        json_object_object_add(mo, "name", json_object_new_string(m->name));
        json_object_object_add(mo, "memory_mb", json_object_new_int64(m->memory_mb));
        json_object_object_add(mo, "total_vfs", json_object_new_int64(m->total_vfs));
        json_object_object_add(mo, "vgpu_vendor", json_object_new_boolean(m->vgpu_vendor));
        json_object_object_add(mo, "vgpu_one_type", json_object_new_boolean(m->vgpu_one_type));
        json_object *types = json_object_new_array();
        for (size_t i = 0; i < m->n_types; i++) {
                json_object *t = json_object_new_object();
                json_object_object_add(t, "id", json_object_new_string(m->types[i].id));
                json_object_object_add(t, "name", json_object_new_string(m->types[i].name));
                json_object_object_add(t, "max", json_object_new_int64(m->types[i].max));
                json_object_array_add(types, t);
        }
        json_object_object_add(mo, "vgpu_types", types);
        if (m->n_mig) {
                json_object *mig = json_object_new_object(), *ps = json_object_new_array();
                json_object_object_add(mig, "slices", json_object_new_int64(m->mig_slices));
                for (size_t i = 0; i < m->n_mig; i++) {
                        const MigProfile *p = &m->mig[i];
                        json_object *x = json_object_new_object();
                        json_object_object_add(x, "name", json_object_new_string(p->name));
                        json_object_object_add(x, "constant", json_object_new_int64(p->constant));
                        json_object_object_add(x, "id", json_object_new_int64(p->id));
                        json_object_object_add(x, "compute", json_object_new_int64(p->compute));
                        json_object_object_add(x, "size", json_object_new_int64(p->size));
                        json_object_object_add(x, "max", json_object_new_int64(p->max));
                        json_object_object_add(x, "starts", json_object_new_int64(p->starts));
                        json_object_object_add(x, "memory_mb", json_object_new_int64((int64_t)p->memory_mb));
                        json_object_object_add(x, "sms", json_object_new_int64(p->sms));
                        json_object_array_add(ps, x);
                }
                json_object_object_add(mig, "profiles", ps);
                json_object_object_add(mo, "mig", mig);
        }
        return mo;
}

json_object *fleet_gpu_info_json(const FleetGpuInfo *g) {
        const FleetModelInfo *m = &g->model;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "host", json_object_new_string(g->host));
        json_object_object_add(o, "address", json_object_new_string(g->address));
        json_object_object_add(o, "model", fleet_model_info_json(m));
        json_object_object_add(o, "numa", json_object_new_int(g->numa));
        json_object_object_add(o, "nvlink", g->nvlink[0] ? json_object_new_string(g->nvlink) : NULL);
        json_object_object_add(o, "isolated", json_object_new_boolean(g->isolated));
        json_object_object_add(o, "isolation_reason", json_string_or_null(g->isolation_reason));
        json_object *b = json_object_new_object();
        json_object_object_add(b, "mode", json_object_new_string(gpu_mode_to_string(g->base_mode)));
        json_object_object_add(b, "mig_occ", json_object_new_int64(g->base_occ));
        json_object *bm = json_object_new_object();
        for (size_t i = 0; i < m->n_mig; i++)
                if (g->base_mig_count[i])
                        json_object_object_add(bm, m->mig[i].name, json_object_new_int64(g->base_mig_count[i]));
        json_object_object_add(b, "mig", bm);
        json_object_object_add(b, "vgpu_type",
                               g->base_vgpu_type >= 0 && (size_t)g->base_vgpu_type < m->n_types ?
                                       json_object_new_string(m->types[g->base_vgpu_type].id) : NULL);
        json_object_object_add(b, "vgpu_count", json_object_new_int64(g->base_vgpu_count));
        json_object_object_add(b, "vfs_used", json_object_new_int64(g->base_vfs_used));
        json_object_object_add(o, "base", b);
        json_object_object_add(o, "drain", json_object_new_boolean(g->drain));
        json_object *us = json_object_new_array();
        for (size_t i = 0; i < g->n_units; i++) {
                const FleetUnit *u = &g->units[i];
                json_object *x = json_object_new_object();
                const char *pn = NULL;
                (void)unit_profile_name(m, u, &pn);
                json_object_object_add(x, "res", json_object_new_string(u->res));
                json_object_object_add(x, "n", json_object_new_int64(u->n));
                json_object_object_add(x, "kind", json_object_new_string(fleet_kind_to_string(u->kind)));
                if (u->kind == FLEET_MIG) {
                        json_object_object_add(x, "profile", json_string_or_null(pn));
                        json_object_object_add(x, "start", json_object_new_int(u->start));
                } else if (u->kind == FLEET_VGPU)
                        json_object_object_add(x, "type", json_string_or_null(pn));
                if (u->group[0])
                        json_object_object_add(x, "group", json_object_new_string(u->group));
                json_object_array_add(us, x);
        }
        json_object_object_add(o, "units", us);
        return o;
}

typedef struct Reader {
        char *error;
} Reader;

_printf_(2, 3) static int bad(Reader *rd, const char *fmt, ...) {
        if (rd->error)
                return -EBADMSG;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&rd->error, fmt, ap) < 0)
                rd->error = NULL;
        va_end(ap);
        return -EBADMSG;
}

static json_object *get(json_object *o, const char *key, json_type type) {
        json_object *v = o ? json_object_object_get(o, key) : NULL;
        return v && json_object_is_type(v, type) ? v : NULL;
}

static int get_str(Reader *rd, json_object *o, const char *key, char *buf, size_t size, bool optional) {
        json_object *v = get(o, key, json_type_string);
        if (!v) {
                if (optional && (!o || !json_object_object_get(o, key)))
                        return buf[0] = '\0', 0;
                return bad(rd, "'%s' must be a string", key);
        }
        const char *s = json_object_get_string(v);
        if (strlen(s) >= size || !*s)
                return bad(rd, "'%s' is empty or longer than %zu characters", key, size - 1);
        snprintf(buf, size, "%s", s);
        return 0;
}

static int get_uint(Reader *rd, json_object *o, const char *key, unsigned max, unsigned *ret) {
        json_object *v = get(o, key, json_type_int);
        int64_t x = v ? json_object_get_int64(v) : -1;
        if (x < 0 || x > (int64_t)max)
                return bad(rd, "'%s' must be an integer from 0 to %u", key, max);
        *ret = (unsigned)x;
        return 0;
}

static int get_hex16(Reader *rd, json_object *o, const char *key, uint16_t *ret) {
        char b[8];
        uint32_t x;
        if (get_str(rd, o, key, b, sizeof b, false) < 0 || parse_u32(b, 16, &x) < 0 || x > 0xffff || strlen(b) != 4)
                return bad(rd, "'%s' must be 4 hex digits", key);
        *ret = (uint16_t)x;
        return 0;
}

static int find_type(const FleetModelInfo *m, const char *id) {
        for (size_t i = 0; i < m->n_types; i++)
                if (streq(m->types[i].id, id))
                        return (int)i;
        return -1;
}

static int find_profile(const FleetModelInfo *m, const char *name) {
        for (size_t i = 0; i < m->n_mig; i++)
                if (streq(m->mig[i].name, name))
                        return (int)i;
        return -1;
}

static int parse_model(Reader *rd, json_object *mo, FleetModelInfo *m) {
        unsigned mem, vfs;
        if (!mo)
                return bad(rd, "'model' must be an object");
        if (get_hex16(rd, mo, "vendor", &m->vendor) < 0 || get_hex16(rd, mo, "device", &m->device) < 0 ||
            get_str(rd, mo, "name", m->name, sizeof m->name, false) < 0 ||
            get_uint(rd, mo, "memory_mb", 16u << 20, &mem) < 0 || get_uint(rd, mo, "total_vfs", 256, &vfs) < 0)
                return -EBADMSG;
        m->memory_mb = mem;
        m->total_vfs = vfs;
        m->vgpu_vendor = json_object_get_boolean(get(mo, "vgpu_vendor", json_type_boolean));
        m->vgpu_one_type = json_object_get_boolean(get(mo, "vgpu_one_type", json_type_boolean));
        json_object *types = get(mo, "vgpu_types", json_type_array);
        if (!types)
                return bad(rd, "'vgpu_types' must be an array");
        size_t nt = json_object_array_length(types);
        if (nt > 256)
                return bad(rd, "more than 256 vGPU types");
        m->types = calloc(nt ?: 1, sizeof *m->types);
        if (!m->types)
                return -ENOMEM;
        for (size_t i = 0; i < nt; i++) {
                json_object *t = json_object_array_get_idx(types, i);
                FleetVgpuType *x = &m->types[m->n_types++];
                if (get_str(rd, t, "id", x->id, sizeof x->id, false) < 0 ||
                    get_str(rd, t, "name", x->name, sizeof x->name, false) < 0 || get_uint(rd, t, "max", 4096, &x->max) < 0)
                        return -EBADMSG;
                if (x->max == 0)
                        return bad(rd, "vGPU type %s allows 0 instances", x->id);
        }
        json_object *mig = get(mo, "mig", json_type_object);
        if (!mig)
                return json_object_object_get(mo, "mig") ? bad(rd, "'mig' must be an object") : 0;
        json_object *ps = get(mig, "profiles", json_type_array);
        if (get_uint(rd, mig, "slices", MIG_MAX_SLICES, &m->mig_slices) < 0)
                return -EBADMSG;
        if (!ps || json_object_array_length(ps) > MIG_MAX_PROFILES)
                return bad(rd, "'mig.profiles' must be an array of at most %d profiles", MIG_MAX_PROFILES);
        for (size_t i = 0; i < json_object_array_length(ps); i++) {
                json_object *x = json_object_array_get_idx(ps, i);
                MigProfile *p = &m->mig[m->n_mig++];
                unsigned memmb;
                if (get_str(rd, x, "name", p->name, sizeof p->name, false) < 0 ||
                    get_uint(rd, x, "constant", 64, &p->constant) < 0 || get_uint(rd, x, "id", 1024, &p->id) < 0 ||
                    get_uint(rd, x, "compute", 8, &p->compute) < 0 || get_uint(rd, x, "size", MIG_MAX_SLICES, &p->size) < 0 ||
                    get_uint(rd, x, "max", MIG_MAX_INSTANCES, &p->max) < 0 ||
                    get_uint(rd, x, "starts", (1u << MIG_MAX_SLICES) - 1, &p->starts) < 0 ||
                    get_uint(rd, x, "memory_mb", 16u << 20, &memmb) < 0 || get_uint(rd, x, "sms", 1024, &p->sms) < 0)
                        return -EBADMSG;
                if (p->size == 0)
                        return bad(rd, "MIG profile %s has size 0", p->name);
                p->memory_mb = memmb;
        }
        return 0;
}

int fleet_gpu_info_parse(const char *text, FleetGpuInfo *ret, GvError *err) {
        Reader rd = {};
        FleetGpuInfo g = {.numa = -1, .base_vgpu_type = -1};
        /* a record another host wrote: the strict reader first (one value, no key twice, bounded depth) */
        json_object *o = NULL;
        _cleanup_(gv_error_done) GvError e = {};
        (void)json_parse_strict("GPU record", text, strlen(text), &o, &e);
        rd.error = TAKE_PTR(e.message);
        int r = 0;
        if (!o || !json_object_is_type(o, json_type_object))
                r = bad(&rd, "not a JSON object");
        if (r >= 0 && (get_str(&rd, o, "host", g.host, sizeof g.host, false) < 0 ||
                       get_str(&rd, o, "address", g.address, sizeof g.address, false) < 0 ||
                       parse_model(&rd, get(o, "model", json_type_object), &g.model) < 0))
                r = -EBADMSG;
        PciAddr a;
        if (r >= 0 && (pci_addr_parse(g.address, &a) < 0 || !pci_addr_is_canonical(g.address)))
                r = bad(&rd, "'address' is not a PCI address as sysfs writes it (dddd:bb:dd.f, lower case)");
        if (r >= 0) {
                json_object *n = get(o, "numa", json_type_int);
                g.numa = n ? json_object_get_int(n) : -1;
                if (g.numa < -1 || g.numa > 1023)
                        r = bad(&rd, "'numa' out of range");
        }
        if (r >= 0)
                r = get_str(&rd, o, "nvlink", g.nvlink, sizeof g.nvlink, true);
        if (r >= 0 && json_object_is_type(json_object_object_get(o, "nvlink"), json_type_null))
                g.nvlink[0] = '\0', r = 0, free(TAKE_PTR(rd.error));
        if (r >= 0) {
                g.isolated = json_object_get_boolean(get(o, "isolated", json_type_boolean));
                const char *why = json_object_get_string(get(o, "isolation_reason", json_type_string));
                if (why && !(g.isolation_reason = strdup(why)))
                        r = -ENOMEM;
                g.drain = json_object_get_boolean(get(o, "drain", json_type_boolean));
        }
        json_object *b = r >= 0 ? get(o, "base", json_type_object) : NULL;
        if (r >= 0 && !b)
                r = bad(&rd, "'base' must be an object");
        if (r >= 0) {
                g.base_mode = gpu_mode_from_string(json_object_get_string(get(b, "mode", json_type_string)));
                if (g.base_mode < 0)
                        r = bad(&rd, "'base.mode' must be a GPU mode");
        }
        if (r >= 0 && (get_uint(&rd, b, "mig_occ", 255, &g.base_occ) < 0 ||
                       get_uint(&rd, b, "vgpu_count", 4096, &g.base_vgpu_count) < 0 ||
                       get_uint(&rd, b, "vfs_used", 256, &g.base_vfs_used) < 0))
                r = -EBADMSG;
        if (r >= 0) {
                json_object *bm = get(b, "mig", json_type_object);
                if (bm) {
                        json_object_object_foreach(bm, k, v) {
                                int pi = find_profile(&g.model, k);
                                if (pi < 0 || !json_object_is_type(v, json_type_int))
                                        r = bad(&rd, "'base.mig' names an unknown profile '%s'", k);
                                else
                                        g.base_mig_count[pi] = (unsigned)MIN(MAX(json_object_get_int(v), 0), MIG_MAX_INSTANCES);
                        }
                }
                const char *bt = json_object_get_string(get(b, "vgpu_type", json_type_string));
                if (r >= 0 && bt && (g.base_vgpu_type = find_type(&g.model, bt)) < 0)
                        r = bad(&rd, "'base.vgpu_type' %s is not a type of the model", bt);
        }
        json_object *us = r >= 0 ? get(o, "units", json_type_array) : NULL;
        if (r >= 0 && !us)
                r = bad(&rd, "'units' must be an array");
        size_t nu = us ? json_object_array_length(us) : 0;
        if (r >= 0 && nu > 4096)
                r = bad(&rd, "more than 4096 units");
        if (r >= 0 && !(g.units = calloc(nu ?: 1, sizeof *g.units)))
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < nu; i++) {
                json_object *x = json_object_array_get_idx(us, i);
                FleetUnit *u = &g.units[g.n_units++];
                *u = (FleetUnit){.idx = -1, .start = -1};
                char name[FLEET_NAME_MAX];
                if (get_str(&rd, x, "res", u->res, sizeof u->res, false) < 0 || get_uint(&rd, x, "n", 4096, &u->n) < 0 ||
                    get_str(&rd, x, "group", u->group, sizeof u->group, true) < 0) {
                        r = -EBADMSG;
                        break;
                }
                u->kind = fleet_kind_from_string(json_object_get_string(get(x, "kind", json_type_string)));
                if (u->kind < 0)
                        r = bad(&rd, "unit %s/%u: unknown kind", u->res, u->n);
                else if (u->kind == FLEET_MIG) {
                        unsigned st;
                        if (get_str(&rd, x, "profile", name, sizeof name, false) < 0 ||
                            get_uint(&rd, x, "start", MIG_MAX_SLICES - 1, &st) < 0)
                                r = -EBADMSG;
                        else if ((u->idx = find_profile(&g.model, name)) < 0)
                                r = bad(&rd, "unit %s/%u: no MIG profile %s on the model", u->res, u->n, name);
                        u->start = (int)st;
                } else if (u->kind == FLEET_VGPU) {
                        if (get_str(&rd, x, "type", name, sizeof name, false) < 0)
                                r = -EBADMSG;
                        else if ((u->idx = find_type(&g.model, name)) < 0)
                                r = bad(&rd, "unit %s/%u: no vGPU type %s on the model", u->res, u->n, name);
                }
        }
        json_object_put(o);
        if (r < 0) {
                fleet_gpu_info_done(&g);
                if (rd.error)
                        return gv_error_take(err, r, NULL, NULL, GV_HINT_NONE, TAKE_PTR(rd.error));
                return gv_error_set(err, r, NULL, NULL, NULL);
        }
        free(rd.error);
        *ret = g;
        return 0;
}

/* ---- requests ---- */

int fleet_request_parse_unit(const char *s, FleetRequest *r, GvError *err) {
        const char *arg = strchr(s, ':');
        size_t kl = arg ? (size_t)(arg - s) : strlen(s);
        char kind[16];
        if (kl >= sizeof kind)
                goto bad;
        memcpy(kind, s, kl);
        kind[kl] = '\0';
        arg = arg ? arg + 1 : NULL;
        r->arg[0] = '\0';
        r->min_memory_mb = 0;
        if (streq(kind, "gpu")) {
                /* gpu:40gb: any whole GPU with at least that memory */
                unsigned gb;
                char unit[4], tail;
                if (!arg || sscanf(arg, "%u%3[a-zA-Z]%c", &gb, unit, &tail) != 2 || strcasecmp(unit, "gb") != 0 ||
                    gb == 0 || gb > 65536)
                        goto bad;
                r->kind = FLEET_PASSTHROUGH;
                r->min_memory_mb = gb * 1024;
                return 0;
        }
        r->kind = fleet_kind_from_string(kind);
        if (r->kind < 0)
                goto bad;
        bool needs_arg = r->kind == FLEET_VGPU || r->kind == FLEET_MIG;
        if (needs_arg != (arg != NULL) || (arg && (!*arg || strlen(arg) >= sizeof r->arg)))
                goto bad;
        if (arg)
                snprintf(r->arg, sizeof r->arg, "%s", arg);
        return 0;
bad:
        return gv_error_set(err, -EINVAL, NULL, NULL, "'%s' is not a unit: passthrough, gpu:<N>gb, vf, vgpu:<type>, mig:<profile>", s);
}

static int set_name(char *buf, const char *v, const char *what, GvError *err) {
        if (isempty(v) || strlen(v) >= FLEET_NAME_MAX) {
                return gv_error_set(err, -EINVAL, NULL, NULL, "%s must be 1 to %d characters", what, FLEET_NAME_MAX - 1);
        }
        for (const char *c = v; *c; c++)
                if (!isalnum((unsigned char)*c) && !strchr("_-.:@", *c)) {
                        return gv_error_set(err, -EINVAL, NULL, NULL, "%s '%s' may hold only letters, digits and _-.:@", what, v);
                }
        snprintf(buf, FLEET_NAME_MAX, "%s", v);
        return 0;
}

int fleet_request_parse_line(const char *line, FleetRequest *ret, GvError *err) {
        FleetRequest r = {.count = 1};
        _cleanup_free_ char *copy = strdup(line);
        if (!copy)
                return -ENOMEM;
        bool have_unit = false;
        char *save = NULL;
        for (char *w = strtok_r(copy, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
                const char *v;
                int k = 0;
                if ((v = startswith(w, "count="))) {
                        int c;
                        if (parse_int(v, &c) < 0 || c < 1 || c > 64) {
                                return gv_error_set(err, -EINVAL, NULL, NULL, "count must be 1 to 64, not '%s'", v);
                        }
                        r.count = (unsigned)c;
                } else if ((v = startswith(w, "owner=")))
                        k = set_name(r.owner, v, "owner", err);
                else if ((v = startswith(w, "group=")))
                        k = set_name(r.group, v, "group", err);
                else if ((v = startswith(w, "model="))) {
                        unsigned a, b;
                        char tail;
                        if (sscanf(v, "%4x:%4x%c", &a, &b, &tail) != 2) {
                                return gv_error_set(err, -EINVAL, NULL, NULL, "model must be VVVV:DDDD, not '%s'", v);
                        }
                        r.vendor = (uint16_t)a;
                        r.device = (uint16_t)b;
                } else if (streq(w, "same-host"))
                        r.same_host = true;
                else if (streq(w, "same-numa"))
                        r.same_numa = r.same_host = true;
                else if (streq(w, "same-nvlink"))
                        r.same_nvlink = true;
                else if (streq(w, "live"))
                        r.live_migratable = true;
                else if (!have_unit) {
                        k = fleet_request_parse_unit(w, &r, err);
                        have_unit = true;
                } else
                        return gv_error_set(err, -EINVAL, NULL, NULL,
                                            "unexpected '%s' (known: count=N owner=ID group=G model=VVVV:DDDD "
                                            "same-host same-numa same-nvlink live)", w);
                if (k < 0)
                        return k;
        }
        if (!have_unit)
                return gv_error_set(err, -EINVAL, NULL, NULL, "no unit given (passthrough, gpu:<N>gb, vf, vgpu:<type>, mig:<profile>)");
        if (!r.owner[0])
                return gv_error_set(err, -EINVAL, NULL, NULL, "no owner given (owner=ID)");
        if (r.live_migratable && !fleet_kind_live_migratable(r.kind))
                return gv_error_set(err, -EINVAL, NULL, NULL, "a passthrough GPU cannot migrate live: drop 'live' or ask for vf, vgpu or mig");
        *ret = r;
        return 0;
}

char *fleet_request_unit(const FleetRequest *r) {
        if (r->kind == FLEET_PASSTHROUGH && r->min_memory_mb)
                return strdup_printf("gpu:%ugb", r->min_memory_mb / 1024);
        return r->arg[0] ? strdup_printf("%s:%s", fleet_kind_to_string(r->kind), r->arg)
                         : strdup(fleet_kind_to_string(r->kind));
}

json_object *fleet_request_json(const FleetRequest *r) {
        json_object *o = json_object_new_object();
        _cleanup_free_ char *u = fleet_request_unit(r);
        json_object_object_add(o, "unit", json_string_or_null(u));
        json_object_object_add(o, "count", json_object_new_int64(r->count));
        json_object_object_add(o, "owner", json_object_new_string(r->owner));
        if (r->group[0])
                json_object_object_add(o, "group", json_object_new_string(r->group));
        if (r->vendor) {
                char m[16];
                snprintf(m, sizeof m, "%04x:%04x", r->vendor, r->device);
                json_object_object_add(o, "model", json_object_new_string(m));
        }
        json_object_object_add(o, "same_host", json_object_new_boolean(r->same_host));
        json_object_object_add(o, "same_numa", json_object_new_boolean(r->same_numa));
        json_object_object_add(o, "same_nvlink", json_object_new_boolean(r->same_nvlink));
        json_object_object_add(o, "live_migratable", json_object_new_boolean(r->live_migratable));
        return o;
}

int fleet_request_from_json(json_object *o, FleetRequest *ret) {
        /* through the line form: one parser validates both */
        json_object *u = json_object_object_get(o, "unit"), *own = json_object_object_get(o, "owner");
        if (!json_object_is_type(u, json_type_string) || !json_object_is_type(own, json_type_string))
                return -EBADMSG;
        _cleanup_free_ char *line = strdup_printf(
                "%s count=%d owner=%s%s%s%s%s%s%s%s%s", json_object_get_string(u),
                json_object_get_int(json_object_object_get(o, "count")), json_object_get_string(own),
                json_object_object_get(o, "group") ? " group=" : "",
                json_object_object_get(o, "group") ? json_object_get_string(json_object_object_get(o, "group")) : "",
                json_object_object_get(o, "model") ? " model=" : "",
                json_object_object_get(o, "model") ? json_object_get_string(json_object_object_get(o, "model")) : "",
                json_object_get_boolean(json_object_object_get(o, "same_host")) ? " same-host" : "",
                json_object_get_boolean(json_object_object_get(o, "same_numa")) ? " same-numa" : "",
                json_object_get_boolean(json_object_object_get(o, "same_nvlink")) ? " same-nvlink" : "",
                json_object_get_boolean(json_object_object_get(o, "live_migratable")) ? " live" : "");
        if (!line)
                return -ENOMEM;
        return fleet_request_parse_line(line, ret, NULL) < 0 ? -EBADMSG : 0;
}
