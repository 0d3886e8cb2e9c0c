/* Three leaves doing 60/30/10 of the work; leaf_a and leaf_b share the
 * caller common_caller (90% cumulative). Rounds interleave the three so
 * that any slice of the run has the same split. Calls are never in tail
 * position, so every caller keeps its frame.
 * Usage: split [ROUNDS [THREADS]]: THREADS threads each run ROUNDS rounds. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "work.h"

volatile uint64_t work_sink;

__attribute__((noinline)) static int leaf_a(int units)
{
    WORK_LOOP(units, 1);
    return units;
}

__attribute__((noinline)) static int leaf_b(int units)
{
    WORK_LOOP(units, 2);
    return units;
}

__attribute__((noinline)) static int leaf_c(int units)
{
    WORK_LOOP(units, 3);
    return units;
}

__attribute__((noinline)) static int common_caller(int units)
{
    int done = leaf_a(6 * units);
    done += leaf_b(3 * units);
    return done + 1;
}

static long rounds;

__attribute__((noinline)) static void *run_rounds(void *unused)
{
    (void)unused;
    long done = 0;
    for (long r = 0; r < rounds; r++) {
        done += common_caller(37);
        done += leaf_c(37);
    }
    return (void *)done;
}

int main(int argc, char **argv)
{
    rounds = argc > 1 ? atol(argv[1]) : 1200;
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    if (threads < 1 || threads > 64)
        threads = 1;
    pthread_t workers[64];
    long done = 0;
    for (int i = 1; i < threads; i++)
        pthread_create(&workers[i], NULL, run_rounds, NULL);
    done += (long)run_rounds(NULL);
    for (int i = 1; i < threads; i++) {
        void *result;
        pthread_join(workers[i], &result);
        done += (long)result;
    }
    printf("split: %ld units\n", done);
    return 0;
}
