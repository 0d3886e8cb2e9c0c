/* A program that unwinds its own stack with libunwind, the library sprof
 * unwinds with, as glog, folly and gperftools do: libunwind blocks every
 * signal around its locks, and a sample taken there would wait on a lock
 * its own thread holds.
 * Usage: unwinds ROUNDS: prints the sum of the depths found. */
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) static int step_depth(int extra)
{
    if (extra > 0)
        return step_depth(extra - 1) + 0 * extra;
    unw_context_t context;
    unw_cursor_t cursor;
    unw_getcontext(&context);
    unw_init_local(&cursor, &context);
    int depth = 0;
    while (unw_step(&cursor) > 0)
        depth++;
    return depth;
}

__attribute__((noinline)) static int backtrace_depth(int extra)
{
    if (extra > 0)
        return backtrace_depth(extra - 1) + 0 * extra;
    void *frames[64];
    return unw_backtrace(frames, 64);
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 100000;
    long total = 0;
    for (long i = 0; i < rounds; i++)
        total += step_depth((int)(i % 10)) + backtrace_depth((int)(i % 5));
    printf("%ld\n", total);
    return 0;
}
