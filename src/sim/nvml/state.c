/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "core/mig/nvml.h"
#include "sim/nvml/fake-nvml.h"
#include "sim/sim.h"

/* ---- the state lock: held for the whole of each call that reads or changes a GPU's state ---- */

static int lock_fd = -1;
static unsigned lock_depth, lock_gen;

unsigned state_lock(void) {
        if (lock_depth++ > 0 || !root)
                return 0;
        lock_gen++; /* every GPU's state is re-read in this section before it is used */
        _cleanup_free_ char *dir = strdup_printf("%s/" SIM_MARKER_DIR "/nvml", root);
        _cleanup_free_ char *p = strdup_printf("%s/" SIM_MARKER_DIR "/nvml/lock", root);
        if (!dir || !p)
                return 1; /* out of memory: the call fails (LOCKED) rather than run unlocked */
        lock_fd = open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (lock_fd < 0 && errno == ENOENT) { /* the first call on this root: its state directory */
                if (mkdir_p(dir, 0755) < 0)
                        return 0;
                lock_fd = open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        }
        while (lock_fd >= 0 && flock(lock_fd, LOCK_EX) < 0 && errno == EINTR)
                ;
        return 0;
}

void state_unlockp(unsigned *unused) {
        if (lock_depth == 0 || --lock_depth > 0)
                return;
        if (lock_fd >= 0)
                close(lock_fd);
        lock_fd = -1;
}

/* ---- state files ---- */

char *state_path(const FDev *d, const char *suffix) {
        return strdup_printf("%s/" SIM_MARKER_DIR "/nvml/%s%s", root, d->bdf, suffix);
}

void make_uuid(const char *prefix, const char *seed, unsigned long serial, char out[48]) {
        uint64_t h1 = 1469598103934665603ull, h2 = 1099511628211ull * 31;
        for (const char *s = seed; *s; s++) {
                h1 = (h1 ^ (unsigned char)*s) * 1099511628211ull;
                h2 = (h2 ^ (unsigned char)*s) * 0x100000001b3ull + 7;
        }
        h1 ^= serial * 0x9e3779b97f4a7c15ull;
        h2 = (h2 ^ serial) * 0xff51afd7ed558ccdull;
        snprintf(out, 48, "%s%08x-%04x-%04x-%04x-%012llx", prefix, (unsigned)(h1 >> 32), (unsigned)(h1 >> 16) & 0xffff,
                 0x5000 | ((unsigned)h1 & 0x0fff), 0x8000 | ((unsigned)(h2 >> 48) & 0x3fff),
                 (unsigned long long)(h2 & 0xffffffffffffull));
}

const FProfile *profile_by_id(const FDev *d, unsigned id) {
        if (!d->m)
                return NULL;
        for (size_t i = 0; i < d->m->n; i++)
                if (d->m->p[i].id == id)
                        return &d->m->p[i];
        return NULL;
}

int dev_save(const FDev *d) {
        _cleanup_free_ char *dir = strdup_printf("%s/" SIM_MARKER_DIR "/nvml", root);
        _cleanup_free_ char *p = state_path(d, "");
        _cleanup_free_ char *tmp = state_path(d, ".tmp");
        if (!dir || !p || !tmp || mkdir_p(dir, 0755) < 0)
                return -1;
        FILE *f = fopen(tmp, "we");
        if (!f)
                return -1;
        fprintf(f, "mode %u %u\nresets %lu\nserial %lu\n", d->cur, d->pend, d->resets, d->serial);
        for (unsigned g = 0; g < MAX_GIS; g++) {
                const FGi *gi = &d->gi[g];
                if (!gi->used)
                        continue;
                fprintf(f, "gi %u %u %u %u\n", gi->id, gi->p->id, gi->start, gi->size);
                for (unsigned c = 0; c < MAX_CIS; c++)
                        if (gi->ci[c].used)
                                fprintf(f, "ci %u %u %u %u %u %s\n", gi->id, gi->ci[c].id, gi->ci[c].profile,
                                        gi->ci[c].start, gi->ci[c].size, gi->ci[c].uuid);
        }
        bool bad = ferror(f);
        if (fclose(f) != 0 || bad || rename(tmp, p) < 0) {
                unlink(tmp);
                return -1;
        }
        return 0;
}

FGi *gi_by_id(FDev *d, unsigned id) {
        for (unsigned g = 0; g < MAX_GIS; g++)
                if (d->gi[g].used && d->gi[g].id == id)
                        return &d->gi[g];
        return NULL;
}

/* Re-read the GPU's state from its file. Instances keep their slots by id (so handles stay valid), instances
 * that are gone free theirs, new ones take free slots. No file: MIG disabled, no instances. */
static int dev_load(FDev *d) {
        struct { unsigned id, profile, start, size; } gis[MAX_GIS];
        struct { unsigned gi, id, profile, start, size; char uuid[48]; } cis[MAX_GIS * MAX_CIS];
        size_t ngi = 0, nci = 0;
        _cleanup_free_ char *p = state_path(d, "");
        if (!p)
                return -ENOMEM;
        d->cur = d->pend = 0;
        d->resets = d->serial = 0;
        FILE *f = fopen(p, "re");
        char line[256];
        while (f && fgets(line, sizeof line, f)) {
                unsigned a, b, c, e, g;
                char uuid[48];
                if (sscanf(line, "mode %u %u", &a, &b) == 2) {
                        d->cur = a;
                        d->pend = b;
                } else if (sscanf(line, "resets %lu", &d->resets) == 1 || sscanf(line, "serial %lu", &d->serial) == 1)
                        continue;
                else if (sscanf(line, "gi %u %u %u %u", &a, &b, &c, &e) == 4 && ngi < MAX_GIS && profile_by_id(d, b))
                        gis[ngi++] = (__typeof__(gis[0])){a, b, c, e};
                else if (sscanf(line, "ci %u %u %u %u %u %47s", &a, &b, &c, &e, &g, uuid) == 6 && nci < ELEMENTSOF(cis)) {
                        cis[nci] = (__typeof__(cis[0])){a, b, c, e, g, ""};
                        snprintf(cis[nci++].uuid, sizeof cis[0].uuid, "%s", uuid);
                }
        }
        if (f)
                fclose(f);

        /* GPU instances: the ones still there keep their slots, then the new ones take the freed ones */
        bool keep[MAX_GIS] = {}, placed[MAX_GIS] = {};
        for (size_t k = 0; k < ngi; k++) {
                FGi *gi = gi_by_id(d, gis[k].id);
                if (gi) {
                        keep[gi - d->gi] = placed[k] = true;
                        gi->p = profile_by_id(d, gis[k].profile);
                        gi->start = gis[k].start;
                        gi->size = gis[k].size;
                }
        }
        for (unsigned g = 0; g < MAX_GIS; g++)
                d->gi[g].used = keep[g];
        for (size_t k = 0; k < ngi; k++) {
                unsigned g;
                for (g = 0; g < MAX_GIS && d->gi[g].used; g++)
                        ;
                if (placed[k] || g == MAX_GIS)
                        continue;
                d->gi[g] = (FGi){.magic = MAGIC_GI, .dev = d, .used = true, .id = gis[k].id,
                                 .p = profile_by_id(d, gis[k].profile), .start = gis[k].start, .size = gis[k].size};
        }
        /* compute instances of each, the same way */
        for (unsigned g = 0; g < MAX_GIS; g++) {
                FGi *gi = &d->gi[g];
                bool keep_ci[MAX_CIS] = {}, placed_ci[ELEMENTSOF(cis)] = {};
                for (size_t k = 0; gi->used && k < nci; k++)
                        for (unsigned c = 0; c < MAX_CIS && cis[k].gi == gi->id && !placed_ci[k]; c++)
                                if (gi->ci[c].used && !keep_ci[c] && gi->ci[c].id == cis[k].id)
                                        keep_ci[c] = placed_ci[k] = true;
                for (unsigned c = 0; c < MAX_CIS; c++)
                        gi->ci[c].used = keep_ci[c];
                for (size_t k = 0; gi->used && k < nci; k++) {
                        if (cis[k].gi != gi->id)
                                continue;
                        unsigned c = 0;
                        if (placed_ci[k])
                                while (gi->ci[c].id != cis[k].id || !gi->ci[c].used)
                                        c++;
                        else
                                while (c < MAX_CIS && gi->ci[c].used)
                                        c++;
                        if (c == MAX_CIS)
                                continue;
                        gi->ci[c] = (FCi){.magic = MAGIC_CI, .gi = gi, .used = true, .id = cis[k].id,
                                          .profile = cis[k].profile, .start = cis[k].start, .size = cis[k].size};
                        snprintf(gi->ci[c].uuid, sizeof gi->ci[c].uuid, "%s", cis[k].uuid);
                }
        }
        return 0;
}

/* The kernel model counts resets; a reset applies the pending mode and clears every instance. */
static int dev_sync(FDev *d) {
        _cleanup_free_ char *p = strdup_printf("%s/" SIM_MARKER_DIR "/resets/%s", root, d->bdf);
        uint32_t n = 0;
        if (!p)
                return -ENOMEM;
        if (read_attr_u32(p, 10, &n) < 0 || n <= d->resets)
                return 0;
        d->resets = n;
        d->cur = d->pend;
        for (unsigned g = 0; g < MAX_GIS; g++)
                d->gi[g].used = false;
        (void)dev_save(d);
        return 0;
}

int dev_processes(const FDev *d, FProc *out, size_t max) {
        _cleanup_free_ char *p = state_path(d, ".processes");
        if (!p)
                return -ENOMEM;
        FILE *f = fopen(p, "re");
        int n = 0;
        if (!f)
                return 0;
        char line[256];
        while (fgets(line, sizeof line, f) && (size_t)n < max) {
                FProc x = {.gi = NVML_INSTANCE_ID_NONE};
                int k = sscanf(line, "%u %63s %u", &x.pid, x.name, &x.gi);
                if (k >= 2)
                        out[n++] = x;
        }
        fclose(f);
        return n;
}

/* ---- handles ---- */

/* The GPU's state as the file holds it now: re-read once per locked section (the caller holds LOCKED). */
int dev_refresh(FDev *d) {
        if (d->loaded == lock_gen)
                return 0;
        int r = dev_load(d);
        if (r >= 0)
                r = dev_sync(d);
        if (r >= 0)
                d->loaded = lock_gen;
        return r;
}

FDev *as_dev(nvmlDevice_t h) {
        FDev *d = (FDev *)h;
        if (!initialized || !d || d->magic != MAGIC_DEV)
                return NULL;
        return dev_refresh(d) < 0 ? NULL : d;
}

FCi *as_migdev(nvmlDevice_t h) {
        FCi *c = (FCi *)h;
        if (!initialized || !c || c->magic != MAGIC_CI)
                return NULL;
        if (dev_refresh(c->gi->dev) < 0)
                return NULL;
        return c->used && c->gi->used ? c : NULL;
}

FGi *as_gi(nvmlGpuInstance_t h) {
        FGi *g = (FGi *)h;
        if (!initialized || !g || g->magic != MAGIC_GI)
                return NULL;
        if (dev_refresh(g->dev) < 0)
                return NULL;
        return g->used ? g : NULL;
}

FCi *as_ci(nvmlComputeInstance_t h) {
        return as_migdev((nvmlDevice_t)h);
}
