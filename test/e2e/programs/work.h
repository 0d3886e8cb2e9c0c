/* Deterministic CPU work for the end-to-end tests: the time a call takes is
 * proportional to its argument, so a program's true profile is known by
 * construction. */
#ifndef SPROF_TEST_WORK_H
#define SPROF_TEST_WORK_H

#include <stdint.h>

extern volatile uint64_t work_sink;

/* Spins for units * ~10 us of CPU (the same loop body for every caller). */
#define WORK_LOOP(units, seed)                                      \
    do {                                                            \
        uint64_t x_ = (seed);                                       \
        for (long i_ = 0; i_ < (long)(units) * 4000L; i_++)         \
            x_ = x_ * 6364136223846793005ULL + (uint64_t)i_;        \
        work_sink += x_;                                            \
    } while (0)

#endif
