/* threadstart: what a profiler adds to starting a thread, for the benchmark
 * harness (bench/bench.py).
 *
 *   threadstart THREADS OUTFILE
 *
 * Starts THREADS threads one after another; each reads its own CPU clock as
 * its first act, which is the CPU time the thread spent before the
 * program's code ran (in pthread_create's start path and in whatever a
 * preload's start wrapper did). Writes the mean, in seconds, to OUTFILE. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void *first_act(void *arg)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    *(double *)arg = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: threadstart THREADS OUTFILE\n");
        return 2;
    }
    int threads = atoi(argv[1]);
    double total = 0;
    for (int i = 0; i < threads; i++) {
        pthread_t thread;
        double seconds = 0;
        if (pthread_create(&thread, NULL, first_act, &seconds) != 0) {
            perror("threadstart: pthread_create");
            return 2;
        }
        pthread_join(thread, NULL);
        total += seconds;
    }
    FILE *out = fopen(argv[2], "w");
    if (!out) {
        perror(argv[2]);
        return 2;
    }
    fprintf(out, "%.9f\n", threads > 0 ? total / threads : 0.0);
    return fclose(out) == 0 ? 0 : 2;
}
