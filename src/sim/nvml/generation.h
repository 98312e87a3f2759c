/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once
/*
 * The generation of a simulated host's NVML state: one 64-bit counter in SIM_MARKER_DIR/nvml-generation, mapped
 * shared by every process that uses it, that each writer of a GPU's state file (the fake library, under its
 * lock) or of its reset count (the kernel model, src/sim/nvml.c) increments once the file is written. A call of
 * the fake library that finds the counter where it was when it last looked at a GPU's files knows they are as
 * they were without looking again: a load from memory instead of a stat() of each file, which is what the driver
 * (that keeps the state in memory) costs too. The same holds for what the library reads of the host besides:
 * whether a GPU's config space still answers (the simulator's off-bus writes it) and whether NVML is made to
 * fail (its nvml/fail), so their writers increment it too. The files stay what the state is; the counter only
 * says when to look at them. Outside nvml/, so the state files there are all that directory holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "sim/sim.h"

#define SIM_NVML_GENERATION_FILE SIM_MARKER_DIR "/nvml-generation"

/* The counter of the host at rootdir, mapped (created as 0 when it is not there); NULL when it cannot be. */
static inline uint64_t *sim_nvml_generation_map(const char *rootdir) {
        char p[PATH_MAX];
        if ((size_t)snprintf(p, sizeof p, "%s/" SIM_NVML_GENERATION_FILE, rootdir) >= sizeof p)
                return NULL;
        int fd = open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        struct stat st;
        /* never shortened: a size of 8 is left as it is, with the count another process wrote */
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
            (st.st_size < (off_t)sizeof(uint64_t) && ftruncate(fd, sizeof(uint64_t)) < 0)) {
                if (fd >= 0)
                        close(fd);
                return NULL;
        }
        void *m = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        return m == MAP_FAILED ? NULL : m;
}

static inline void sim_nvml_generation_unmap(uint64_t *g) {
        if (g)
                munmap(g, sizeof(uint64_t));
}

/* After a change is written (renamed into place): every process's next look sees a new count. */
static inline void sim_nvml_generation_bump(uint64_t *g) {
        if (g)
                __atomic_add_fetch(g, 1, __ATOMIC_SEQ_CST);
}

/* The same from a process that does not keep it mapped: the kernel model's writes (a reset counted, a device
 * off the bus) and the simulator's own (NVML made to fail). */
static inline void sim_nvml_generation_touch(const char *rootdir) {
        uint64_t *g = sim_nvml_generation_map(rootdir);
        sim_nvml_generation_bump(g);
        sim_nvml_generation_unmap(g);
}

static inline uint64_t sim_nvml_generation_load(const uint64_t *g) {
        return __atomic_load_n(g, __ATOMIC_ACQUIRE);
}
