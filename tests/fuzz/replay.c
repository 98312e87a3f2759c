/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Without libFuzzer (gcc builds): run the target over each file, and each file of each directory, given. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "basic/fileio.h"
#include "fuzz.h"

static int run_file(const char *path, size_t *n) {
        void *data = NULL;
        size_t size = 0;
        int r = read_full(path, 1024 * 1024, &data, &size);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(-r));
                return r;
        }
        LLVMFuzzerTestOneInput(data, size);
        free(data);
        (*n)++;
        return 0;
}

int main(int argc, char **argv) {
        size_t n = 0;
        for (int i = 1; i < argc; i++) {
                if (!dir_exists(argv[i])) {
                        if (run_file(argv[i], &n) < 0)
                                return 1;
                        continue;
                }
                char **l = NULL;
                if (dir_list(argv[i], &l) < 0)
                        return 1;
                for (char **e = l; *e; e++) {
                        _cleanup_free_ char *p = strdup_printf("%s/%s", argv[i], *e);
                        if (!p || (!dir_exists(p) && run_file(p, &n) < 0)) {
                                strv_free(l);
                                return 1;
                        }
                }
                strv_free(l);
        }
        printf("%zu inputs replayed\n", n);
        return n > 0 ? 0 : 1;
}
