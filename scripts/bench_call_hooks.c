/* Calls an instrumented function N times, for measuring the cost of the
 * -finstrument-functions hooks: run it without the preload (glibc's no-op
 * hooks) and with libsprof.so, and divide the extra CPU time by the calls.
 * Built with -finstrument-functions by scripts/bench-call-hooks.sh. */
#include <stdio.h>
#include <stdlib.h>

static volatile long sink;

__attribute__((noinline)) static long counted(long i)
{
    sink += i;
    return i;
}

int main(int argc, char **argv)
{
    long calls = argc > 1 ? atol(argv[1]) : 100000000;
    long total = 0;
    for (long i = 0; i < calls; i++)
        total += counted(i);
    printf("%ld calls\n", calls);
    return total == 42;
}
