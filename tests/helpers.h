/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "core/host/pci.h"
#include "core/host/root.h"

/* A fresh temp directory (removed by test_tmpdir_remove). */
char *test_tmpdir(void);
void test_tmpdir_remove(char *dir);

/* Create a simulated host of the profile in a fresh temp dir and open it. */
typedef struct TestHost {
        char *dir;
        Root *root;
        PciHost *host;
} TestHost;

void test_host_open(TestHost *t, const char *profile);
/* Re-scan after writes. */
void test_host_rescan(TestHost *t);
void test_host_close(TestHost *t);
