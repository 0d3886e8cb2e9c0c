/* SIGPROF signals of the program's own, sent while it blocks SIGPROF: they
 * wait, pending, until it unblocks the signal or takes it with sigwait,
 * whatever the profiler does with the signal meanwhile.
 *   1. SIGPROF at its default action, blocked; kill(getpid()) sends one:
 *      it reads as pending, the program computes, and sigwait takes it.
 *   2. Blocked with SIGUSR1; raise() sends one; sigwait on both takes it.
 *   3. Blocked, then handled; kill() sends one: the handler runs only
 *      once the program unblocks the signal.
 * Each step starts from the mask the program started with. Prints what it
 * saw at each step, then computes with SIGPROF unblocked.
 * Usage: ownsigprof */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "work.h"

volatile uint64_t work_sink;
static volatile sig_atomic_t handled;

static void on_sigprof(int signal_number)
{
    (void)signal_number;
    handled++;
}

__attribute__((noinline)) static void while_pending(void)
{
    WORK_LOOP(10000, 8);
}

__attribute__((noinline)) static void after_unblocking(void)
{
    WORK_LOOP(30000, 9);
}

static const char *pending(void)
{
    sigset_t set;
    sigpending(&set);
    return sigismember(&set, SIGPROF) ? "pending" : "not pending";
}

int main(void)
{
    sigset_t prof, both, old;
    sigemptyset(&prof);
    sigaddset(&prof, SIGPROF);
    sigprocmask(SIG_BLOCK, &prof, &old);
    kill(getpid(), SIGPROF);
    printf("1: %s, ", pending());
    while_pending();
    printf("still %s, ", pending());
    int got = 0;
    sigwait(&prof, &got);
    printf("sigwait took %d, then %s; ", got, pending());

    sigprocmask(SIG_SETMASK, &old, NULL);
    both = prof;
    sigaddset(&both, SIGUSR1);
    sigprocmask(SIG_BLOCK, &both, NULL);
    raise(SIGPROF);
    got = 0;
    sigwait(&both, &got);
    printf("2: sigwait took %d, then %s; ", got, pending());

    sigprocmask(SIG_SETMASK, &old, NULL);
    sigprocmask(SIG_BLOCK, &prof, NULL);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_sigprof;
    sigemptyset(&action.sa_mask);
    sigaction(SIGPROF, &action, NULL);
    kill(getpid(), SIGPROF);
    printf("3: handled %d while blocked, ", (int)handled);
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("%d after unblocking\n", (int)handled);
    fflush(stdout);
    after_unblocking();
    return 0;
}
