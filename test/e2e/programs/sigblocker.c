/* The daemon pattern: every signal blocked in every thread (the main
 * thread blocks them all, and each worker again, with sigprocmask and
 * pthread_sigmask), and one thread taking signals with sigwait. The
 * workers and the main thread compute; then the main thread sends SIGUSR1
 * to the waiting thread and SIGTERM to the process, which the waiter takes
 * too. Prints what each thread's mask says about SIGPROF and what sigwait
 * returned, the same with and without a profiler.
 * Usage: sigblocker */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "work.h"

#define WORKERS 3

volatile uint64_t work_sink;
static int waited[2];

/* Whether the calling thread's mask says SIGPROF is blocked. */
static int sigprof_blocked(void)
{
    sigset_t now;
    pthread_sigmask(SIG_BLOCK, NULL, &now);
    return sigismember(&now, SIGPROF);
}

__attribute__((noinline)) static void worker_work(void)
{
    WORK_LOOP(40000, 3);
}

__attribute__((noinline)) static void main_work(void)
{
    WORK_LOOP(40000, 4);
}

static void *worker(void *out)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    worker_work();
    *(int *)out = sigprof_blocked();
    return NULL;
}

static void *waiter(void *unused)
{
    (void)unused;
    sigset_t all;
    sigfillset(&all);
    for (int i = 0; i < 2; i++) {
        if (sigwait(&all, &waited[i]) != 0)
            waited[i] = -1;
    }
    return NULL;
}

int main(void)
{
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    int before = sigismember(&old, SIGPROF);
    pthread_t waiting, threads[WORKERS];
    int blocked[WORKERS];
    pthread_create(&waiting, NULL, waiter, NULL);
    for (int i = 0; i < WORKERS; i++)
        pthread_create(&threads[i], NULL, worker, &blocked[i]);
    main_work();
    for (int i = 0; i < WORKERS; i++)
        pthread_join(threads[i], NULL);
    pthread_kill(waiting, SIGUSR1);
    kill(getpid(), SIGTERM);
    pthread_join(waiting, NULL);

    /* Unblocking SIGPROF alone, then reading it back. */
    sigset_t prof;
    sigemptyset(&prof);
    sigaddset(&prof, SIGPROF);
    pthread_sigmask(SIG_UNBLOCK, &prof, NULL);
    int after_unblock = sigprof_blocked();
    pthread_sigmask(SIG_BLOCK, &prof, NULL);
    printf("SIGPROF blocked: before %d, main %d, workers %d %d %d, after unblocking %d, "
           "after blocking %d; sigwait took %s and %s\n",
           before, sigprof_blocked(), blocked[0], blocked[1], blocked[2], after_unblock,
           sigprof_blocked(), waited[0] > 0 ? strsignal(waited[0]) : "nothing",
           waited[1] > 0 ? strsignal(waited[1]) : "nothing");
    return 0;
}
