/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "core/mig/nvml.h"
#include "sim/nvml/fake-nvml.h"
#include "sim/nvml/generation.h"
#include "sim/sim.h"

/* ---- the state lock: held while a call changes a GPU's state or reads a changed one ---- */

/* A locked section is one call. It reads the GPU's state from memory while its files are as they were (the
 * state file is replaced whole by rename(), so what is read is always one state); it takes the lock to read a
 * changed state and for every change (state_hold()). The lock file stays open from the first call on a root
 * to the next root (or the next process: a forked child opens its own, as flock() locks belong to the open
 * file, which a fork shares). */
static int lock_fd = -1;
static unsigned lock_depth, lock_gen;
static bool lock_held;
static uint64_t *gen_map; /* the host's generation, mapped with the lock file's opening (NULL: each call stats) */

void state_lock_close(void) {
        if (lock_fd >= 0)
                close(lock_fd);
        lock_fd = -1;
        sim_nvml_generation_unmap(gen_map);
        gen_map = NULL;
        lock_depth = 0;
        lock_held = false;
}

static void lock_after_fork(void) {
        state_lock_close();
}

__attribute__((constructor)) static void state_lock_init(void) {
        (void)pthread_atfork(NULL, NULL, lock_after_fork);
}

bool state_generation(uint64_t *ret) {
        if (!gen_map)
                return false;
        *ret = sim_nvml_generation_load(gen_map);
        return true;
}

unsigned state_lock(void) {
        if (lock_depth++ == 0)
                lock_gen++; /* every GPU's state is checked in this section before it is used */
        return 0;
}

int state_hold(void) {
        if (lock_held || lock_depth == 0 || !root)
                return 0;
        if (lock_fd < 0) {
                _cleanup_free_ char *dir = strdup_printf("%s/" SIM_MARKER_DIR "/nvml", root);
                _cleanup_free_ char *p = strdup_printf("%s/" SIM_MARKER_DIR "/nvml/lock", root);
                if (!dir || !p)
                        return -ENOMEM; /* the call fails rather than run unlocked */
                lock_fd = open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (lock_fd < 0 && errno == ENOENT && mkdir_p(dir, 0755) >= 0) /* the first call on this root */
                        lock_fd = open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (lock_fd >= 0)
                        gen_map = sim_nvml_generation_map(root);
        }
        while (lock_fd >= 0 && flock(lock_fd, LOCK_EX) < 0 && errno == EINTR)
                ;
        lock_held = true;
        return 0;
}

void state_unlockp(unsigned *unused) {
        if (lock_depth == 0 || --lock_depth > 0)
                return;
        if (lock_held && lock_fd >= 0)
                (void)flock(lock_fd, LOCK_UN);
        lock_held = false;
}

/* ---- stamps: whether a state file changed since it was read ---- */

static bool ts_before(struct timespec a, struct timespec b) {
        return a.tv_sec != b.tv_sec ? a.tv_sec < b.tv_sec : a.tv_nsec < b.tv_nsec;
}

static FStamp stamp_of(const struct stat *st, bool trusted) {
        return (FStamp){.known = trusted, .exists = true, .dev = st->st_dev, .ino = st->st_ino, .size = st->st_size,
                        .mtime = st->st_mtim};
}

/* The file at path as stat() sees it now. Timestamps move in clock ticks: a file changed in the tick it is
 * looked at can change again with the same mtime, so that stamp is not known (the file is read again next
 * time). A file that does not exist is known: creating it changes the stamp. */
static FStamp stamp_take(const char *path) {
        struct stat st;
        struct timespec now;
        if (stat(path, &st) < 0)
                return (FStamp){.known = errno == ENOENT};
        if (clock_gettime(CLOCK_REALTIME_COARSE, &now) < 0)
                return (FStamp){};
        return stamp_of(&st, ts_before(st.st_mtim, now));
}

/* Whether the file is still what it was when it was read (then stamped was). */
static bool stamp_unchanged(const FStamp *stamped, const FStamp *now) {
        return stamped->known && stamped->exists == now->exists &&
               (!now->exists || (stamped->dev == now->dev && stamped->ino == now->ino &&
                                 stamped->size == now->size && stamped->mtime.tv_sec == now->mtime.tv_sec &&
                                 stamped->mtime.tv_nsec == now->mtime.tv_nsec));
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

int dev_save(FDev *d) {
        _cleanup_free_ char *dir = strdup_printf("%s/" SIM_MARKER_DIR "/nvml", root);
        _cleanup_free_ char *p = state_path(d, "");
        _cleanup_free_ char *tmp = state_path(d, ".tmp");
        if (!dir || !p || !tmp)
                return -1;
        FILE *f = fopen(tmp, "we");
        if (!f && errno == ENOENT && mkdir_p(dir, 0755) >= 0) /* the first change on this root: its directory */
                f = fopen(tmp, "we");
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
        /* what this process wrote is what it holds: its stamp is known (another writer renames a new file
         * over it, under the lock) */
        struct stat st;
        bool bad = fflush(f) != 0 || ferror(f) || fstat(fileno(f), &st) < 0;
        if (fclose(f) != 0 || bad || rename(tmp, p) < 0) {
                unlink(tmp);
                d->state_st = (FStamp){};
                return -1;
        }
        d->state_st = stamp_of(&st, true);
        sim_nvml_generation_bump(gen_map);
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
static int dev_load(FDev *d, bool absent) {
        struct { unsigned id, profile, start, size; } gis[MAX_GIS];
        struct { unsigned gi, id, profile, start, size; char uuid[48]; } cis[MAX_GIS * MAX_CIS];
        size_t ngi = 0, nci = 0;
        _cleanup_free_ char *p = state_path(d, "");
        if (!p)
                return -ENOMEM;
        d->cur = d->pend = 0;
        d->resets = d->serial = 0;
        FILE *f = absent ? NULL : fopen(p, "re"); /* absent: so stamped under the lock (a GPU never changed) */
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

/* The kernel model counts resets (in the file at p); a reset applies the pending mode and clears every instance. */
static int dev_sync(FDev *d, const char *p, bool absent) {
        uint32_t n = 0;
        if (absent || read_attr_u32(p, 10, &n) < 0 || n <= d->resets)
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
                char kind[16] = "";
                int k = sscanf(line, "%u %63s %u %15s", &x.pid, x.name, &x.gi, kind);
                if (k == 2)
                        (void)sscanf(line, "%*u %*s %15s", kind); /* "PID NAME graphics" */
                x.graphics = streq(kind, "graphics");
                if (k >= 2)
                        out[n++] = x;
        }
        fclose(f);
        return n;
}

/* ---- handles ---- */

/* The GPU's state as its files hold it now, checked once per locked section: like the driver, which keeps it
 * in memory, it is read again only when a file changed (another process changed the state, or the kernel
 * model counted a reset), and then under the lock. */
int dev_refresh(FDev *d) {
        if (d->loaded == lock_gen)
                return 0;
        /* nothing was written since both files were stamped known: they are as they were */
        uint64_t gen = gen_map ? sim_nvml_generation_load(gen_map) : 0;
        if (gen_map && d->gen_valid && d->gen_seen == gen) {
                d->loaded = lock_gen;
                return 0;
        }
        _cleanup_free_ char *p = state_path(d, "");
        _cleanup_free_ char *rp = strdup_printf("%s/" SIM_MARKER_DIR "/resets/%s", root, d->bdf);
        if (!p || !rp)
                return -ENOMEM;
        /* the kernel model writes the reset count in place, without the lock: it is stamped before it is read */
        FStamp st = stamp_take(p), rst = stamp_take(rp);
        bool reload = !stamp_unchanged(&d->state_st, &st), sync = reload || !stamp_unchanged(&d->resets_st, &rst);
        if (sync && !lock_held) { /* a change to read: under the lock, looked at again */
                int r = state_hold();
                if (r < 0)
                        return r;
                st = stamp_take(p);
                rst = stamp_take(rp);
                reload = !stamp_unchanged(&d->state_st, &st);
                sync = reload || !stamp_unchanged(&d->resets_st, &rst);
        }
        int r = 0;
        if (reload) {
                r = dev_load(d, st.known && !st.exists);
                d->state_st = r >= 0 ? st : (FStamp){};
        }
        if (r >= 0 && sync) {
                d->resets_st = rst;
                r = dev_sync(d, rp, rst.known && !rst.exists);
        }
        if (r >= 0)
                d->loaded = lock_gen;
        /* the count loaded before the files were looked at: a write after it moves it again. Whether the stamps
         * are known does not matter here (a file written in the tick it was stamped in, which its stamp cannot
         * tell from a later write in that tick): such a later write moves the count too. */
        d->gen_valid = r >= 0 && gen_map;
        d->gen_seen = gen;
        return r;
}

FDev *as_dev_static(nvmlDevice_t h) {
        FDev *d = (FDev *)h;
        return initialized && d && d->magic == MAGIC_DEV ? d : NULL;
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
