/* A recursion 100 deep that works at every level: the recursive function
 * is on every sampled stack many times, yet its cumulative time is 100% of
 * the run's at most. */
#include <stdio.h>
#include <stdlib.h>

#include "work.h"

volatile uint64_t work_sink;

__attribute__((noinline)) static long descend(int depth)
{
    WORK_LOOP(1, (uint64_t)depth);
    long below = depth > 1 ? descend(depth - 1) : 0;
    /* Work after the call too, so the compiler cannot turn the recursion
     * into a loop: every level keeps its frame. */
    WORK_LOOP(1, (uint64_t)below);
    return below + 1;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 1600;
    long total = 0;
    for (long r = 0; r < rounds; r++)
        total += descend(100);
    printf("recurse: %ld calls\n", total);
    return 0;
}
