/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The wall time of a whole command, measured around fork+exec+wait (no shell, no date(1) of ours in the
 * timed span): bench-exec [-n RUNS] [-p PREPARE] -- COMMAND ARGS... runs PREPARE (through sh, untimed) before
 * each run, COMMAND with stdout and stderr on /dev/null, and prints "MEDIAN P10 P90" in microseconds. A run
 * that fails makes the whole measurement fail: a figure of a command that did not do its work means nothing
 * (-a: any exit status is the command's answer, as `check` exits 1 when a check fails). */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-time.h"

/* exit status of argv, with stdout/stderr on /dev/null */
static int run(char **argv) {
        pid_t pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
                if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
                        _exit(127);
                execvp(argv[0], argv);
                _exit(127);
        }
        int st;
        if (waitpid(pid, &st, 0) < 0)
                return -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv) {
        int runs = 51, c;
        bool any_status = false;
        const char *prepare = NULL;
        while ((c = getopt(argc, argv, "+an:p:")) >= 0)
                switch (c) {
                case 'a':
                        any_status = true;
                        break;
                case 'n':
                        runs = atoi(optarg);
                        break;
                case 'p':
                        prepare = optarg;
                        break;
                default:
                        return 2;
                }
        if (optind >= argc || runs < 1) {
                fprintf(stderr, "usage: bench-exec [-a] [-n RUNS] [-p PREPARE] -- COMMAND ARGS...\n");
                return 2;
        }
        double *t = calloc((size_t)runs, sizeof *t);
        if (!t)
                return 1;
        char sh_[] = "sh", c_[] = "-c", *sh[] = {sh_, c_, (char *)prepare, NULL};
        for (int i = 0; i < runs; i++) {
                if (prepare && run(sh) != 0) {
                        fprintf(stderr, "bench-exec: prepare failed: %s\n", prepare);
                        return 1;
                }
                double t0 = now_us();
                int r = run(argv + optind);
                t[i] = now_us() - t0;
                if (r != 0 && !(any_status && r < 128)) {
                        fprintf(stderr, "bench-exec: %s exited with %d\n", argv[optind], r);
                        return 1;
                }
        }
        qsort(t, (size_t)runs, sizeof *t, cmp_d);
        printf("%.0f %.0f %.0f\n", t[runs / 2], t[runs / 10], t[runs * 9 / 10]);
        free(t);
        return 0;
}
