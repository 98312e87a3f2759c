/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "core/state/hoststate.h"
#include "core/state/state-internal.h"
#include "core/vgpu/mdev.h"
#include "core/vgpu/vendor-vgpu.h"

/* ---- vGPU units and their identities (Step.units) ---- */

/* Stable UUIDs for the vGPUs the host state creates: the same parent and index give the same UUID at every
 * boot, so VM definitions that reference them keep working. (A name-based UUID: FNV-1a over the parent
 * address and index, version 8, RFC 4122 variant.) */
void vgpu_uuid(const char *parent, unsigned index, char ret[static MDEV_UUID_STRLEN]) {
        uint8_t b[16];
        for (int half = 0; half < 2; half++) {
                uint64_t h = 1469598103934665603ull ^ (uint64_t)half;
                for (const char *c = parent; *c; c++)
                        h = (h ^ (uint8_t)*c) * 1099511628211ull;
                for (int i = 0; i < 4; i++)
                        h = (h ^ ((index >> (8 * i)) & 0xff)) * 1099511628211ull;
                h = (h ^ 0x67707576u) * 1099511628211ull; /* "gpuv" */
                for (int i = 0; i < 8; i++)
                        b[half * 8 + i] = (uint8_t)(h >> (8 * i));
        }
        b[6] = (uint8_t)((b[6] & 0x0f) | 0x80);
        b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
        snprintf(ret, MDEV_UUID_STRLEN, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

void host_vgpu_uuid(const char *name, unsigned index, char ret[static MDEV_UUID_STRLEN]) {
        vgpu_uuid(name, index, ret);
}

/* The index of a stable UUID of the parent, or -1 when the UUID is not one of them. */
static int vgpu_stable_index(const char *parent, const char *uuid) {
        for (unsigned idx = 0; idx < VGPU_MAX_INDEX; idx++) {
                char u[MDEV_UUID_STRLEN];
                vgpu_uuid(parent, idx, u);
                if (streq(u, uuid))
                        return (int)idx;
        }
        return -1;
}


static int unit_rank(const Step *s, const char *id, bool vendor, size_t pos) {
        if (s->units) {
                for (size_t i = 0; s->units[i]; i++)
                        if (streq(s->units[i], id))
                                return (int)i;
                return VGPU_MAX_INDEX;
        }
        if (vendor)
                return (int)pos;
        int idx = vgpu_stable_index(s->device, id);
        return idx >= 0 ? idx : VGPU_MAX_INDEX;
}

static int cmp_units(const void *a, const void *b) {
        const Unit *x = a, *y = b;
        return x->rank != y->rank ? (x->rank < y->rank ? -1 : 1) : strcmp(x->id, y->id);
}

static int unit_push(Unit **l, size_t *n, const char *id, int rank, bool vendor) {
        Unit *x = realloc(*l, (*n + 1) * sizeof **l);
        if (!x)
                return -ENOMEM;
        *l = x;
        x[*n] = (Unit){.rank = rank, .vendor = vendor};
        snprintf(x[(*n)++].id, sizeof x->id, "%s", id);
        return 0;
}

/* The units a step counts among these: active vGPUs on its device, of its type (any type with type NULL),
 * in rank order. The planner passes what it observed, a step being run what the host has now. */
int vgpu_units_of(const Step *s, const MdevDevice *m, size_t nm, const VendorVgpuUnit *u, size_t nu,
                         Unit **ret, size_t *ret_n) {
        Unit *l = NULL;
        size_t n = 0;
        int r = 0;
        for (size_t i = 0; i < nu && r >= 0; i++) {
                char id[16];
                snprintf(id, sizeof id, "%u", u[i].type);
                /* a VF's address is its identity; the list is in address order */
                if (u[i].active && streq(u[i].pf, s->device) && (!s->vgpu_type || streq(id, s->vgpu_type)))
                        r = unit_push(&l, &n, u[i].vf, unit_rank(s, u[i].vf, true, n), true);
        }
        for (size_t i = 0; i < nm && r >= 0; i++) {
                if (!m[i].active || !m[i].parent || !streq(m[i].parent, s->device) ||
                    (s->vgpu_type && (!m[i].type || !streq(m[i].type, s->vgpu_type))))
                        continue;
                r = unit_push(&l, &n, m[i].uuid, unit_rank(s, m[i].uuid, false, n), false);
        }
        if (r < 0) {
                free(l);
                return r;
        }
        if (n > 1)
                qsort(l, n, sizeof *l, cmp_units);
        *ret = l;
        *ret_n = n;
        return 0;
}

int vgpu_units(Root *root, const Step *s, Unit **ret, size_t *ret_n) {
        VendorVgpuUnit *u = NULL;
        MdevDevice *m = NULL;
        size_t nu = 0, nm = 0;
        /* no vendor vGPU units: none on this host; out of memory: not "none" (a create would make too many) */
        int r = vendor_vgpu_units(root, &u, &nu);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                nu = 0;
        r = mdev_list(root, &m, &nm);
        if (r >= 0)
                r = vgpu_units_of(s, m, nm, u, nu, ret, ret_n);
        mdev_list_free(m, nm);
        vendor_vgpu_units_free(u, nu);
        return r;
}
