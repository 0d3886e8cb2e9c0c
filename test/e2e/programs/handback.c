/* A program that handles SIGPROF for a while, blocks every signal, gives
 * SIGPROF back to its default action while still blocked, and then
 * restores its mask, as CPython's test_signal does across tests. Its own
 * block of SIGPROF (made while it had a handler) must end when it restores
 * its mask, and every mask it reads must say what it set.
 * Prints what the masks say and whether SIGPROF is pending after the work.
 * Usage: handback */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "work.h"

volatile uint64_t work_sink;

static void on_sigprof(int signal_number)
{
    (void)signal_number;
}

__attribute__((noinline)) static void with_handler(void)
{
    WORK_LOOP(10000, 6);
}

__attribute__((noinline)) static void after_restoring(void)
{
    WORK_LOOP(30000, 7);
}

static const char *blocked(void)
{
    sigset_t mask;
    pthread_sigmask(SIG_BLOCK, NULL, &mask);
    return sigismember(&mask, SIGPROF) ? "yes" : "no";
}

int main(void)
{
    struct sigaction action, dfl;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_sigprof;
    sigemptyset(&action.sa_mask);
    sigaction(SIGPROF, &action, NULL);
    with_handler();

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPROF, &dfl, NULL);
    printf("SIGPROF blocked: with every signal blocked %s, ", blocked());
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    printf("after restoring %s; ", blocked());

    after_restoring();

    sigset_t pending;
    sigpending(&pending);
    printf("pending after the work: %s\n", sigismember(&pending, SIGPROF) ? "yes" : "no");
    return 0;
}
