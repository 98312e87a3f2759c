/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The wall time of a whole command, measured around fork+exec+wait (no shell, no date(1) of ours in the
 * timed span): bench-exec [-n RUNS] [-p PREPARE] -- COMMAND ARGS... runs PREPARE (through sh, untimed) before
 * each run, COMMAND with stdout and stderr on /dev/null, and prints "MEDIAN P10 P90" in microseconds. A run
 * that fails makes the whole measurement fail: a figure of a command that did not do its work means nothing
 * (-a: any exit status is the command's answer, as `check` exits 1 when a check fails).
 *
 * Several commands, separated by ":::" (bench-exec -n 31 -- lspci -nn ::: gpuvirt list), are measured
 * interleaved: each round runs every command once, starting from the next one each round, and one line per
 * command comes out in their order. A ratio of two figures is then of runs made at the same moments: a
 * machine whose speed drifts over seconds (a shared VM's neighbours, frequency) moves both alike, where
 * measuring one command's runs after the other's would put the drift into the ratio. */
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
                fprintf(stderr, "usage: bench-exec [-a] [-n RUNS] [-p PREPARE] -- COMMAND ARGS... [::: COMMAND ARGS...]...\n");
                return 2;
        }
        /* the commands: argv split at each ":::" (each becomes its own NULL-terminated vector) */
        size_t n_cmds = 1;
        for (int i = optind; i < argc; i++)
                if (strcmp(argv[i], ":::") == 0)
                        n_cmds++;
        char ***cmds = calloc(n_cmds, sizeof *cmds);
        double *t = calloc(n_cmds * (size_t)runs, sizeof *t);
        if (!cmds || !t)
                return 1;
        size_t k = 0;
        cmds[k] = argv + optind;
        for (int i = optind; i < argc; i++)
                if (strcmp(argv[i], ":::") == 0) {
                        argv[i] = NULL;
                        cmds[++k] = argv + i + 1;
                }
        for (k = 0; k < n_cmds; k++)
                if (!cmds[k][0]) {
                        fprintf(stderr, "bench-exec: an empty command around \":::\"\n");
                        return 2;
                }
        char sh_[] = "sh", c_[] = "-c", *sh[] = {sh_, c_, (char *)prepare, NULL};
        for (int i = 0; i < runs; i++)
                for (size_t j = 0; j < n_cmds; j++) {
                        size_t at = (j + (size_t)i) % n_cmds; /* each round starts from the next command */
                        if (prepare && run(sh) != 0) {
                                fprintf(stderr, "bench-exec: prepare failed: %s\n", prepare);
                                return 1;
                        }
                        double t0 = now_us();
                        int r = run(cmds[at]);
                        t[at * (size_t)runs + (size_t)i] = now_us() - t0;
                        if (r != 0 && !(any_status && r < 128)) {
                                fprintf(stderr, "bench-exec: %s exited with %d\n", cmds[at][0], r);
                                return 1;
                        }
                }
        for (k = 0; k < n_cmds; k++) {
                double *tk = t + k * (size_t)runs;
                qsort(tk, (size_t)runs, sizeof *tk, cmp_d);
                printf("%.0f %.0f %.0f\n", tk[runs / 2], tk[runs / 10], tk[runs * 9 / 10]);
        }
        free(t);
        free(cmds);
        return 0;
}
