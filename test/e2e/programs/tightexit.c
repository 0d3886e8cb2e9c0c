/* A program that computes, then lowers its address-space limit (as under
 * `ulimit -v`) to what it maps plus a margin, and exits with status 7:
 * whatever the profiler's exit can or cannot do in that room, the program
 * must end as it would have, with nothing more on its stderr. With "fsize"
 * it forbids itself files first (RLIMIT_FSIZE 0, as sandboxes do), then
 * computes and exits with status 7.
 * Usage: tightexit MARGIN_KB | tightexit fsize */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "work.h"

volatile uint64_t work_sink;

__attribute__((noinline)) static void first_half(void)
{
    WORK_LOOP(4000, 1);
}

__attribute__((noinline)) static void second_half(void)
{
    WORK_LOOP(4000, 2);
}

/* The process's mapped size, in KB, from /proc/self/status. */
static long mapped_kb(void)
{
    FILE *status = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (status && fgets(line, sizeof line, status)) {
        if (strncmp(line, "VmSize:", 7) == 0)
            kb = atol(line + 7);
    }
    if (status)
        fclose(status);
    return kb;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "fsize") == 0) {
        struct rlimit none = {0, RLIM_INFINITY};
        if (setrlimit(RLIMIT_FSIZE, &none) != 0)
            return 3;
        first_half();
        second_half();
        printf("done\n");
        return 7;
    }
    long margin_kb = argc > 1 ? atol(argv[1]) : 1024;
    first_half();
    second_half();
    long kb = mapped_kb();
    if (kb <= 0)
        return 2;
    struct rlimit limit = {(rlim_t)(kb + margin_kb) * 1024, RLIM_INFINITY};
    if (setrlimit(RLIMIT_AS, &limit) != 0)
        return 3;
    printf("done\n");
    return 7;
}
