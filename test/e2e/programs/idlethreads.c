/* Many threads that wait, then all work at once.
 * Usage: idlethreads THREADS UNITS: starts THREADS threads that wait on a
 * barrier; prints the process's resident memory (VmRSS, KiB) while they all
 * wait; then each thread runs UNITS work units (about 6 us each) in
 * idle_thread_work, so that every thread's first sample is taken while the
 * others take theirs. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "work.h"

volatile uint64_t work_sink;
static pthread_barrier_t barrier;
static long units;

__attribute__((noinline)) static void idle_thread_work(long seed)
{
    WORK_LOOP(units, (uint64_t)seed);
}

static void *waiter(void *arg)
{
    pthread_barrier_wait(&barrier); /* all started */
    pthread_barrier_wait(&barrier); /* memory read */
    idle_thread_work((long)arg);
    return NULL;
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

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    int threads = atoi(argv[1]);
    units = atol(argv[2]);
    pthread_t *ids = calloc((size_t)threads, sizeof *ids);
    if (!ids || pthread_barrier_init(&barrier, NULL, (unsigned)threads + 1) != 0)
        return 1;
    for (int i = 0; i < threads; i++)
        if (pthread_create(&ids[i], NULL, waiter, (void *)(long)i) != 0)
            return 1;
    pthread_barrier_wait(&barrier);
    printf("%ld\n", resident_kib());
    fflush(stdout);
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < threads; i++)
        pthread_join(ids[i], NULL);
    free(ids);
    return 0;
}
