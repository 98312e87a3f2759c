/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * libFuzzer targets for every parser of untrusted input (tests/fuzz/README.md). Each target defines
 * LLVMFuzzerTestOneInput(); built with -Dfuzz=true (clang) it is a libFuzzer binary, otherwise replay.c's
 * main() runs it over the files given (the corpus) so the gcc ASan build replays every seed and every
 * input that once crashed. A target aborts (FUZZ_CHECK) when a property of its parser does not hold.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/host/root.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                                      \
        do {                                                                                                  \
                if (!(cond)) {                                                                                \
                        fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);           \
                        abort();                                                                              \
                }                                                                                             \
        } while (0)

/* The input as a NUL-terminated string (the parsers of text take one); free() it. */
char *fuzz_text(const uint8_t *data, size_t size);
/* A simulated root (writable, removed at exit) under $TMPDIR, created on first use with the directories
 * the readers expect; the same Root for every input of the process. */
Root *fuzz_root(void);
/* Write len bytes at rel under the fuzz root (directories created). */
void fuzz_write(const char *rel, const void *data, size_t len);
