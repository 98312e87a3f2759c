/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/fileio.h"
#include "basic/jsonfile.h"
#include "core/health/health.h"

static const char *const level_names[_HEALTH_LEVEL_MAX] = {
        [HEALTH_HEALTHY] = "healthy",
        [HEALTH_DEGRADED] = "degraded",
        [HEALTH_UNHEALTHY] = "unhealthy",
        [HEALTH_GONE] = "gone",
};

const char *health_level_to_string(HealthLevel l) {
        return l >= 0 && l < _HEALTH_LEVEL_MAX ? level_names[l] : NULL;
}

HealthLevel health_level_from_string(const char *s) {
        for (int i = 0; s && i < _HEALTH_LEVEL_MAX; i++)
                if (streq(s, level_names[i]))
                        return (HealthLevel)i;
        return _HEALTH_LEVEL_INVALID;
}

/* NVIDIA's Xid catalogue ("Xid Errors", r570 and the GPU Debug Guidelines), the common ones: what each
 * means and what it says about the device. Application Xids are the program's fault, not the GPU's. */
static const struct {
        unsigned xid;
        HealthLevel level;
        const char *meaning;
} xids[] = {
        {8, HEALTH_UNHEALTHY, "GPU stopped processing (driver timeout)"},
        {13, HEALTH_HEALTHY, "graphics engine exception (application)"},
        {31, HEALTH_HEALTHY, "GPU memory page fault (application)"},
        {32, HEALTH_DEGRADED, "invalid or corrupted push buffer stream"},
        {38, HEALTH_UNHEALTHY, "driver firmware error"},
        {43, HEALTH_HEALTHY, "GPU stopped processing (application)"},
        {45, HEALTH_HEALTHY, "preemptive cleanup after previous errors (application)"},
        {48, HEALTH_UNHEALTHY, "double-bit ECC error"},
        {54, HEALTH_UNHEALTHY, "auxiliary power is not connected"},
        {61, HEALTH_UNHEALTHY, "internal micro-controller breakpoint/warning"},
        {62, HEALTH_UNHEALTHY, "internal micro-controller halt"},
        {63, HEALTH_DEGRADED, "ECC page retirement or row remapping recorded"},
        {64, HEALTH_UNHEALTHY, "ECC page retirement or row remapping failed"},
        {68, HEALTH_HEALTHY, "video decoder exception (application)"},
        {74, HEALTH_UNHEALTHY, "NVLink error"},
        {79, HEALTH_GONE, "GPU has fallen off the bus"},
        {92, HEALTH_DEGRADED, "high single-bit ECC error rate"},
        {94, HEALTH_DEGRADED, "contained ECC error"},
        {95, HEALTH_UNHEALTHY, "uncontained ECC error"},
        {109, HEALTH_HEALTHY, "context switch timeout (application)"},
        {119, HEALTH_UNHEALTHY, "GSP RPC timeout"},
        {120, HEALTH_UNHEALTHY, "GSP error"},
};

const char *xid_meaning(unsigned xid) {
        for (size_t i = 0; i < ELEMENTSOF(xids); i++)
                if (xids[i].xid == xid)
                        return xids[i].meaning;
        return NULL;
}

bool xid_is_application(unsigned xid) {
        switch (xid) {
        case 13: case 31: case 43: case 45: case 68: case 109:
                return true;
        default:
                return false;
        }
}

HealthLevel xid_level(unsigned xid) {
        for (size_t i = 0; i < ELEMENTSOF(xids); i++)
                if (xids[i].xid == xid)
                        return xids[i].level;
        return HEALTH_DEGRADED; /* a device Xid we do not know: worth a look, not a verdict */
}

/* The worst fault of a sample: its level and a new reason (NULL when clean). */
static int sample_fault(const HealthUnit *u, const HealthSample *s, HealthLevel *ret_level, char **ret_reason) {
        HealthLevel lvl = HEALTH_HEALTHY;
        _cleanup_free_ char *why = NULL;
#define FAULT(l, ...)                                                                                         \
        do {                                                                                                  \
                if ((l) > lvl) {                                                                              \
                        char *_m = strdup_printf(__VA_ARGS__);                                                \
                        if (!_m)                                                                              \
                                return -ENOMEM;                                                               \
                        free(why);                                                                            \
                        why = _m;                                                                             \
                        lvl = (l);                                                                            \
                }                                                                                             \
        } while (0)
        if (!s->present)
                FAULT(HEALTH_GONE, "removed from the bus (surprise removal or hot unplug)");
        else if (s->off_bus)
                FAULT(HEALTH_GONE, "fell off the bus: its config space reads all ones");
        else {
                for (size_t i = 0; i < s->n_xids; i++) {
                        unsigned x = s->xids[i];
                        if (xid_is_application(x))
                                continue;
                        FAULT(xid_level(x), "Xid %u: %s", x, xid_meaning(x) ?: "device error");
                }
                if (s->have_ecc && u->baseline && s->ecc_dbe > u->ecc_dbe)
                        FAULT(HEALTH_UNHEALTHY, "%llu new double-bit ECC errors (%llu in all)",
                              (unsigned long long)(s->ecc_dbe - u->ecc_dbe), (unsigned long long)s->ecc_dbe);
                if (s->have_aer && u->baseline && s->aer_fatal > u->aer_fatal)
                        FAULT(HEALTH_UNHEALTHY, "%llu new fatal AER errors (uncorrectable, fatal)",
                              (unsigned long long)(s->aer_fatal - u->aer_fatal));
                if (s->have_aer && u->baseline && s->aer_nonfatal > u->aer_nonfatal)
                        FAULT(HEALTH_DEGRADED, "%llu new non-fatal AER errors (uncorrectable, non-fatal)",
                              (unsigned long long)(s->aer_nonfatal - u->aer_nonfatal));
                if (s->link_downgraded)
                        FAULT(HEALTH_DEGRADED, "PCIe link downgraded: %s, capable of %s", s->link_now ?: "?",
                              s->link_max ?: "?");
                if (s->have_license && !s->licensed)
                        FAULT(HEALTH_DEGRADED, "vGPU not licensed: %s (the guest driver runs with reduced "
                                               "capability)", s->license_state ?: "unlicensed");
                if (s->nvml_expected && s->nvml_error == -ENODEV)
                        FAULT(HEALTH_GONE, "NVML reports the GPU lost (NVML_ERROR_GPU_IS_LOST)");
                else if (s->nvml_expected && s->nvml_error < 0)
                        FAULT(HEALTH_DEGRADED, "NVML does not answer for it (%s)", s->nvml_error_name ?: "error");
        }
#undef FAULT
        *ret_level = lvl;
        *ret_reason = TAKE_PTR(why);
        return 0;
}

/* Re-qualification before a recovery: NULL when the unit passes, else what it lacks. */
static const char *requalify(const HealthSample *s) {
        if (!s->present || s->off_bus)
                return "not present";
        if (!s->driver_bound)
                return "no driver bound";
        if (s->nvml_expected && s->nvml_error < 0)
                return "NVML does not answer";
        return NULL;
}

int health_update(HealthUnit *u, const HealthSample *s, uint64_t now_mono, uint64_t now_real, uint64_t clean_usec,
                  HealthChange *ret_change) {
        HealthLevel lvl;
        _cleanup_free_ char *why = NULL;
        int r = sample_fault(u, s, &lvl, &why);
        if (r < 0)
                return r;
        if (u->since_usec == 0)
                u->since_usec = now_real;
        if (s->present) {
                if (s->have_ecc)
                        u->ecc_dbe = s->ecc_dbe;
                if (s->have_aer) {
                        u->aer_fatal = s->aer_fatal;
                        u->aer_nonfatal = s->aer_nonfatal;
                }
                u->baseline = true;
        }

        HealthLevel from = u->level;
        if (lvl > HEALTH_HEALTHY) {
                u->last_fault_usec = now_mono ?: 1;
                if (lvl < u->level)
                        return 0; /* latched at something worse */
                free(u->reason);
                u->reason = TAKE_PTR(why);
                if (lvl == from)
                        return 0; /* the same level, reason refreshed */
                u->level = lvl;
                u->since_usec = now_real;
        } else {
                if (u->level == HEALTH_HEALTHY || now_mono - u->last_fault_usec < clean_usec)
                        return 0;
                const char *lack = requalify(s);
                if (lack) {
                        char *m = strdup_printf("clean for %llus, not re-qualified: %s",
                                                (unsigned long long)((now_mono - u->last_fault_usec) / 1000000), lack);
                        if (!m)
                                return -ENOMEM;
                        free(u->reason);
                        u->reason = m;
                        return 0;
                }
                u->level = HEALTH_HEALTHY;
                u->since_usec = now_real;
                free(u->reason);
                u->reason = NULL;
        }
        if (ret_change) {
                char *m = u->reason ? strdup(u->reason)
                                    : strdup_printf("recovered: clean for %llus and re-qualified (present, driver bound%s)",
                                                    (unsigned long long)(clean_usec / 1000000),
                                                    s->nvml_expected ? ", NVML answers" : "");
                if (!m)
                        return -ENOMEM;
                *ret_change = (HealthChange){.from = from, .to = u->level, .reason = m};
        }
        return 1;
}

void health_unit_done(HealthUnit *u) {
        free(u->reason);
        *u = (HealthUnit){};
}

void health_format_time(uint64_t usec, char buf[static 32]) {
        time_t t = (time_t)(usec / 1000000);
        struct tm tm;
        if (!gmtime_r(&t, &tm) || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, 32, "1970-01-01T00:00:00Z");
}

json_object *health_unit_json(const char *unit, const char *gpu, const HealthUnit *u) {
        char since[32];
        health_format_time(u->since_usec, since);
        json_object *o = json_object_new_object();
        if (!o)
                return NULL;
        if (json_object_object_add(o, "unit", json_object_new_string(unit)) < 0 ||
            json_object_object_add(o, "gpu", json_object_new_string(gpu)) < 0 ||
            json_object_object_add(o, "health", json_object_new_string(health_level_to_string(u->level))) < 0 ||
            json_object_object_add(o, "reason", u->reason ? json_object_new_string(u->reason) : NULL) < 0 ||
            json_object_object_add(o, "since", json_object_new_string(since)) < 0)
                return json_object_put(o), NULL;
        return o;
}

int health_file_read(const Root *root, json_object **ret, GvError *err) {
        _cleanup_free_ char *p = root_path(root, "%s", HEALTH_FILE);
        json_object *doc = NULL;
        *ret = NULL;
        if (!p)
                return gv_error_set(err, -ENOMEM, NULL, "read", NULL);
        _cleanup_(gv_error_done) GvError lerr = {};
        int r = json_load_strict(p, "/" HEALTH_FILE, JSON_FILE_SIZE_MAX * 64, &doc, &lerr);
        if (r == -ENOENT)
                return 0;
        if (r < 0) {
                if (err)
                        gv_error_move(err, &lerr);
                return r;
        }
        json_object *v = json_object_object_get(doc, "version"), *units = json_object_object_get(doc, "units");
        json_object *map = NULL;
        const char *bad = NULL;
        if (!json_object_is_type(doc, json_type_object) || !json_object_is_type(v, json_type_int) ||
            json_object_get_int(v) != HEALTH_FILE_VERSION)
                bad = "not a version 1 health file";
        else if (!json_object_is_type(units, json_type_array))
                bad = "\"units\" is not an array";
        if (!bad) {
                map = json_object_new_object();
                if (!map) {
                        json_object_put(doc);
                        return gv_error_set(err, -ENOMEM, NULL, "parse", NULL);
                }
        }
        for (size_t i = 0; !bad && i < json_object_array_length(units); i++) {
                json_object *e = json_object_array_get_idx(units, i);
                const char *unit = json_object_get_string(json_object_object_get(e, "unit"));
                const char *h = json_object_get_string(json_object_object_get(e, "health"));
                if (!json_object_is_type(e, json_type_object) ||
                    !json_object_is_type(json_object_object_get(e, "unit"), json_type_string) ||
                    health_level_from_string(h) < 0)
                        bad = "an entry without a unit or a known health";
                else
                        json_object_object_add(map, unit, json_object_get(e));
        }
        json_object_put(doc);
        if (bad) {
                json_object_put(map);
                return gv_error_set(err, -EINVAL, NULL, "parse", "/%s: %s", HEALTH_FILE, bad);
        }
        *ret = map;
        return 0;
}
