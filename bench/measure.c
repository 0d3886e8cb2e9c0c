/* measure: runs a command and writes its CPU time, wall time and peak
 * memory, for the benchmark harness (bench/bench.py).
 *
 *   measure OUTFILE [NAME=VALUE]... -- COMMAND [ARG]...
 *
 * The NAME=VALUE settings are made in the command's environment only (so
 * that LD_PRELOAD reaches the command, not this program).
 * Writes one line to OUTFILE:
 *   wall_s user_s system_s max_rss_kib exit_code signal end_s
 * (exit_code -1 when killed by a signal, signal 0 when not; end_s is
 * CLOCK_MONOTONIC when the command had ended, for timing its last part
 * against a time it wrote itself.) The figures
 * come from wait4() and include the processes the command waited for.
 *
 * Why not wait4() from Python directly: a child forked from the harness
 * starts as a copy of a 20 MB Python process, and that copy's memory counts
 * in its peak RSS (and its page-table copy in its CPU time) even after exec.
 * Forked from this small program, the command starts small. */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double seconds(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    int command = 2;
    while (command < argc && strcmp(argv[command], "--") != 0)
        command++;
    command++;
    if (argc < 3 || command >= argc) {
        fprintf(stderr, "usage: measure OUTFILE [NAME=VALUE]... -- COMMAND [ARG]...\n");
        return 2;
    }
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    pid_t pid = fork();
    if (pid < 0) {
        perror("measure: fork");
        return 2;
    }
    if (pid == 0) {
        for (int i = 2; i < command - 1; i++)
            putenv(argv[i]);
        execvp(argv[command], argv + command);
        fprintf(stderr, "measure: cannot run %s: %s\n", argv[command], strerror(errno));
        _exit(127);
    }
    int status;
    struct rusage usage;
    while (wait4(pid, &status, 0, &usage) < 0) {
        if (errno != EINTR) {
            perror("measure: wait4");
            return 2;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    double wall = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
    FILE *out = fopen(argv[1], "w");
    if (!out) {
        perror(argv[1]);
        return 2;
    }
    fprintf(out, "%.6f %.6f %.6f %ld %d %d %.6f\n", wall, seconds(usage.ru_utime),
            seconds(usage.ru_stime), usage.ru_maxrss,
            WIFEXITED(status) ? WEXITSTATUS(status) : -1,
            WIFSIGNALED(status) ? WTERMSIG(status) : 0,
            (double)end.tv_sec + (double)end.tv_nsec / 1e9);
    return fclose(out) == 0 ? 0 : 2;
}
