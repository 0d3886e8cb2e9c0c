/* runstat: run a command and record its wall time, CPU time and peak RSS.
 *
 *   runstat OUTFILE COMMAND [ARG]...
 *
 * Runs COMMAND (searched in PATH) with the same stdin/stdout/stderr, waits
 * for it with wait4() and writes one line to OUTFILE:
 *
 *   wall_s user_s sys_s cpu_s max_rss_kib exit_status
 *
 * The figures are those of the command's process alone (all its threads;
 * not of runstat, and not of grandchildren it did not wait for). The demo
 * uses it instead of GNU time, which Debian does not install by default.
 * Exits with the command's exit status (128 + signal if it was killed, 127
 * if it could not be run). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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
    if (argc < 3) {
        fprintf(stderr, "Usage: runstat OUTFILE COMMAND [ARG]...\n");
        return 2;
    }
    FILE *out = fopen(argv[1], "w");
    if (!out) {
        fprintf(stderr, "runstat: cannot write %s: %s\n", argv[1], strerror(errno));
        return 2;
    }
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "runstat: fork: %s\n", strerror(errno));
        return 2;
    }
    if (pid == 0) {
        fclose(out);
        execvp(argv[2], argv + 2);
        fprintf(stderr, "runstat: cannot run %s: %s\n", argv[2], strerror(errno));
        _exit(127);
    }
    int status;
    struct rusage usage;
    while (wait4(pid, &status, 0, &usage) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "runstat: wait4: %s\n", strerror(errno));
            return 2;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    double wall = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
    double user = seconds(usage.ru_utime), sys = seconds(usage.ru_stime);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    fprintf(out, "%.6f %.6f %.6f %.6f %ld %d\n", wall, user, sys, user + sys, usage.ru_maxrss,
            code);
    if (fclose(out) != 0) {
        fprintf(stderr, "runstat: cannot write %s: %s\n", argv[1], strerror(errno));
        return 2;
    }
    return code;
}
