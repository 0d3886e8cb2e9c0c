/* Four threads with work in the ratio 1:2:3:4, named worker-1..worker-4.
 * The main thread only waits, so the threads' shares are known.
 * Usage: threads [ROUNDS [blocked]]: with "blocked", every signal is
 * blocked around pthread_create, as liblzma does, so the workers start with
 * every signal blocked. */
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "work.h"

volatile uint64_t work_sink;
static long unit_rounds;

__attribute__((noinline)) static void thread_work(long share)
{
    for (long r = 0; r < share * unit_rounds; r++)
        WORK_LOOP(10, (uint64_t)share);
}

static void *worker(void *arg)
{
    long share = (long)arg;
    char name[16];
    snprintf(name, sizeof name, "worker-%ld", share);
    pthread_setname_np(pthread_self(), name);
    thread_work(share);
    return NULL;
}

int main(int argc, char **argv)
{
    unit_rounds = argc > 1 ? atol(argv[1]) : 8000;
    sigset_t all, old;
    sigfillset(&all);
    if (argc > 2)
        pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_t threads[4];
    for (long i = 0; i < 4; i++) {
        if (pthread_create(&threads[i], NULL, worker, (void *)(i + 1)) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    if (argc > 2)
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(threads[i], NULL);
    printf("threads: done\n");
    return 0;
}
