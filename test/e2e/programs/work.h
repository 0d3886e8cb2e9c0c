/* Deterministic CPU work for the end-to-end tests: the time a call takes is
 * proportional to its argument, so a program's true profile is known by
 * construction. */
#ifndef SPROF_TEST_WORK_H
#define SPROF_TEST_WORK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

extern volatile uint64_t work_sink;

/* Spins for `iterations` turns of the one loop body every caller shares. */
#define WORK_ITERATIONS(iterations, seed)                           \
    do {                                                            \
        uint64_t x_ = (seed);                                       \
        for (long i_ = 0; i_ < (long)(iterations); i_++)            \
            x_ = x_ * 6364136223846793005ULL + (uint64_t)i_;        \
        work_sink += x_;                                            \
    } while (0)

/* Turns of the loop that take about 6 us of CPU here; set before main. */
static long work_iterations_per_unit = 4000;

/* Spins for units * ~6 us of CPU. */
#define WORK_LOOP(units, seed) WORK_ITERATIONS((long)(units) * work_iterations_per_unit, seed)

static int64_t work_thread_cpu_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

/* CPUs differ by twice or more, and a test's run must be long enough to
 * judge on any of them, so the harness times a unit once (a program run
 * with WORK_UNIT_PRINT set prints the turns per unit and exits) and hands
 * the figure to every program it runs (WORK_UNIT_ITERATIONS): timing it in
 * each profiled run would put the timing loop in the profile. A program
 * run without the figure times the unit itself. This runs before main,
 * while the program has one thread, so every thread does the same work
 * per unit and the shares a test checks stay exact. The fastest of three
 * trials is kept, since a neighbour on the machine can only slow one. */
__attribute__((constructor)) static void work_calibrate(void)
{
    const char *given = getenv("WORK_UNIT_ITERATIONS");
    if (given && atol(given) > 0) {
        work_iterations_per_unit = atol(given);
        return;
    }
    long iterations = 1 << 16;
    while (iterations < (1L << 30)) { /* long enough to time well */
        int64_t start = work_thread_cpu_ns();
        WORK_ITERATIONS(iterations, 1);
        if (work_thread_cpu_ns() - start >= 2000000)
            break;
        iterations *= 2;
    }
    int64_t fastest = INT64_MAX;
    for (int trial = 0; trial < 3; trial++) {
        int64_t start = work_thread_cpu_ns();
        WORK_ITERATIONS(iterations, trial);
        int64_t took = work_thread_cpu_ns() - start;
        if (took > 0 && took < fastest)
            fastest = took;
    }
    if (fastest == INT64_MAX)
        return;
    long per_unit = (long)(iterations * 6000 / fastest);
    if (per_unit > 0)
        work_iterations_per_unit = per_unit;
    if (getenv("WORK_UNIT_PRINT")) {
        printf("%ld\n", work_iterations_per_unit);
        exit(0);
    }
}

#endif
