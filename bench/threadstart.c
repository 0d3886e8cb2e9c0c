/* threadstart: what a profiler adds to starting a thread, for the benchmark
 * harness (bench/bench.py).
 *
 *   threadstart THREADS OUTFILE
 *   threadstart THREADS OUTFILE waiting
 *
 * Starts THREADS threads one after another; each reads its own CPU clock as
 * its first act, which is the CPU time the thread spent before the
 * program's code ran (in pthread_create's start path and in whatever a
 * preload's start wrapper did). Writes the mean, in seconds, to OUTFILE.
 * With "waiting", the THREADS threads are all started and wait instead, and
 * OUTFILE gets the process's resident memory (VmRSS, KiB) while they wait:
 * what a profiler keeps per thread that has done nothing yet. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void *first_act(void *arg)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    *(double *)arg = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    return NULL;
}

static pthread_barrier_t all_started, memory_read;

static void *wait_twice(void *arg)
{
    pthread_barrier_wait(&all_started);
    pthread_barrier_wait(&memory_read);
    return arg;
}

static long resident_kib(void)
{
    FILE *status = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (status && fgets(line, sizeof line, status))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = atol(line + 6);
    if (status)
        fclose(status);
    return kib;
}

static int waiting_threads(int threads, const char *path)
{
    pthread_t *ids = calloc((size_t)threads, sizeof *ids);
    if (!ids || pthread_barrier_init(&all_started, NULL, (unsigned)threads + 1) != 0 ||
        pthread_barrier_init(&memory_read, NULL, (unsigned)threads + 1) != 0)
        return 2;
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&ids[i], NULL, wait_twice, NULL) != 0) {
            perror("threadstart: pthread_create");
            return 2;
        }
    }
    pthread_barrier_wait(&all_started);
    long kib = resident_kib();
    pthread_barrier_wait(&memory_read);
    for (int i = 0; i < threads; i++)
        pthread_join(ids[i], NULL);
    free(ids);
    FILE *out = fopen(path, "w");
    if (!out) {
        perror(path);
        return 2;
    }
    fprintf(out, "%ld\n", kib);
    return fclose(out) == 0 && kib > 0 ? 0 : 2;
}

int main(int argc, char **argv)
{
    if (argc != 3 && !(argc == 4 && strcmp(argv[3], "waiting") == 0)) {
        fprintf(stderr, "usage: threadstart THREADS OUTFILE [waiting]\n");
        return 2;
    }
    int threads = atoi(argv[1]);
    if (argc == 4)
        return waiting_threads(threads, argv[2]);
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
