/* Many threads that wait, then all work at once.
 * Usage: idlethreads THREADS UNITS: starts THREADS threads that wait on a
 * barrier; prints the process's resident memory (VmRSS, KiB) while they all
 * wait; then each thread runs UNITS work units (about 6 us each) in
 * idle_thread_work, so that every thread's first sample is taken while the
 * others take theirs, and says on stderr each thread's user time. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

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
    /* Its user time, which is what sprof samples by default (its system
     * time, page faults on a loaded machine among it, is not). */
    struct rusage usage;
    if (getrusage(RUSAGE_THREAD, &usage) == 0)
        fprintf(stderr, "thread %ld user %ld.%06ld\n", (long)syscall(SYS_gettid),
                (long)usage.ru_utime.tv_sec, (long)usage.ru_utime.tv_usec);
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
