/* SIGPROF signals of the program's own, sent while it blocks SIGPROF: they
 * wait, pending, until it unblocks the signal or takes it with sigwait,
 * whatever the profiler does with the signal meanwhile.
 *   1. SIGPROF at its default action, blocked; kill(getpid()) sends one:
 *      it reads as pending, the program computes, and sigwait takes it.
 *   2. Blocked with SIGUSR1; raise() sends one; sigwait on both takes it.
 *   3. Blocked, then handled; kill() sends one: the handler runs only
 *      once the program unblocks the signal.
 *   4. Handled with SIGUSR2 in the handler's sa_mask, open; kill() sends
 *      one: inside the handler the mask is the one the kernel gives it
 *      (SIGPROF and SIGUSR2 blocked, SIGUSR1 open), whatever mask the
 *      profiler's own handler runs with.
 *   5. Handled with SA_RESETHAND; kill() sends one: the handler runs once,
 *      sigaction then reads SIG_DFL, and a second one kills (in a child).
 *   6. At the default action, blocked (in a child): raise() sends one,
 *      sigwaitinfo takes it, the program computes, raise() sends another,
 *      and unblocking it kills; no sample pending meanwhile stands in for
 *      that second signal.
 *   7. At the default action, blocked in both threads (in a child): the
 *      main thread raises one, so a kill from a second thread reaches that
 *      thread; it ends, and the main thread's sigtimedwait takes both.
 *   8. Blocked, with SIGUSR1 (in a child): the main thread waits with
 *      sigtimedwait while a second thread sends one with kill; the wait
 *      returns it, not EINTR.
 *   9. At the default action, blocked (in a child each): kill() sends one,
 *      then sigsuspend, ppoll, pselect or epoll_pwait waits with a mask
 *      that opens it: it kills.
 *  10. Handled, with its own ITIMER_PROF (in a child): a second thread
 *      computes with SIGPROF blocked, and the main thread waits in
 *      sigsuspend until the handler has run 20 times.
 * Each step starts from the mask the program started with. Prints what it
 * saw at each step, then computes with SIGPROF unblocked.
 * Usage: ownsigprof */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "work.h"

volatile uint64_t work_sink;
static volatile sig_atomic_t handled;

static void on_sigprof(int signal_number)
{
    (void)signal_number;
    handled++;
}

/* Each signal's bit of the mask seen inside the handler of step 4. */
static volatile sig_atomic_t seen_usr1, seen_usr2, seen_prof;

static void on_sigprof_masked(int signal_number)
{
    (void)signal_number;
    sigset_t current;
    sigprocmask(SIG_BLOCK, NULL, &current);
    seen_usr1 = sigismember(&current, SIGUSR1);
    seen_usr2 = sigismember(&current, SIGUSR2);
    seen_prof = sigismember(&current, SIGPROF);
}

static const char *blocked_or_open(int bit)
{
    return bit ? "blocked" : "open";
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

static void *kill_and_end(void *unused)
{
    (void)unused;
    kill(getpid(), SIGPROF);
    return NULL;
}

/* Step 7's child: how many of the two signals its main thread takes. */
static int taken_after_sender_ends(const sigset_t *prof)
{
    sigprocmask(SIG_BLOCK, prof, NULL);
    raise(SIGPROF);
    pthread_t sender;
    if (pthread_create(&sender, NULL, kill_and_end, NULL) != 0)
        return -1;
    pthread_join(sender, NULL);
    int taken = 0;
    const struct timespec wait = {3, 0};
    while (taken < 2 && sigtimedwait(prof, NULL, &wait) == SIGPROF)
        taken++;
    return taken;
}

static void *kill_later(void *unused)
{
    (void)unused;
    usleep(100000);
    kill(getpid(), SIGPROF);
    return NULL;
}

/* Step 8's child: what the main thread's wait returns. */
static int wait_answer(const sigset_t *prof)
{
    sigset_t both = *prof;
    sigaddset(&both, SIGUSR1);
    sigprocmask(SIG_BLOCK, &both, NULL);
    pthread_t sender;
    if (pthread_create(&sender, NULL, kill_later, NULL) != 0)
        return 255;
    const struct timespec wait = {3, 0};
    int answer = sigtimedwait(&both, NULL, &wait);
    pthread_join(sender, NULL);
    return answer < 0 ? 254 - (errno == EINTR) : answer;
}

/* Step 9: whether a wait whose own mask opens a pending SIGPROF dies of it. */
static const char *killed_in_wait(const sigset_t *prof, int which)
{
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        sigprocmask(SIG_BLOCK, prof, NULL);
        kill(getpid(), SIGPROF);
        sigset_t open;
        sigemptyset(&open);
        struct timespec wait = {2, 0};
        if (which == 0) {
            alarm(3);
            sigsuspend(&open);
        } else if (which == 1) {
            ppoll(NULL, 0, &wait, &open);
        } else if (which == 2) {
            pselect(0, NULL, NULL, NULL, &wait, &open);
        } else {
            int epoll_fd = epoll_create1(0);
            struct epoll_event event;
            epoll_pwait(epoll_fd, &event, 1, 2000, &open);
        }
        _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGPROF ? "kills" : "does not kill";
}

/* Step 10's child. */
static volatile sig_atomic_t timer_signals;
static volatile int worker_stop;

static void on_own_timer(int signal_number)
{
    (void)signal_number;
    timer_signals++;
}

static void on_stuck(int signal_number)
{
    (void)signal_number;
    _exit(1);
}

static void *compute_blocked(void *unused)
{
    (void)unused;
    while (!worker_stop)
        work_sink++;
    return NULL;
}

static int own_timer_in_sigsuspend(const sigset_t *prof)
{
    signal(SIGPROF, on_own_timer);
    signal(SIGALRM, on_stuck);
    alarm(10);
    sigset_t old;
    sigprocmask(SIG_BLOCK, prof, &old);
    pthread_t worker;
    if (pthread_create(&worker, NULL, compute_blocked, NULL) != 0)
        return 2;
    struct itimerval every_10_ms = {{0, 10000}, {0, 10000}};
    setitimer(ITIMER_PROF, &every_10_ms, NULL);
    while (timer_signals < 20)
        sigsuspend(&old);
    worker_stop = 1;
    pthread_join(worker, NULL);
    return 0;
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
    printf("%d after unblocking; ", (int)handled);

    action.sa_handler = on_sigprof_masked;
    sigemptyset(&action.sa_mask);
    sigaddset(&action.sa_mask, SIGUSR2);
    sigaction(SIGPROF, &action, NULL);
    kill(getpid(), SIGPROF);
    printf("4: in the handler SIGPROF %s, SIGUSR1 %s, SIGUSR2 %s; ", blocked_or_open(seen_prof),
           blocked_or_open(seen_usr1), blocked_or_open(seen_usr2));

    action.sa_handler = on_sigprof;
    action.sa_flags = SA_RESETHAND;
    sigemptyset(&action.sa_mask);
    sigaction(SIGPROF, &action, NULL);
    handled = 0;
    kill(getpid(), SIGPROF);
    struct sigaction now;
    sigaction(SIGPROF, NULL, &now);
    printf("5: handled %d, then %s, ", (int)handled,
           now.sa_handler == SIG_DFL ? "SIG_DFL" : "still handled");
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        kill(getpid(), SIGPROF);
        _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    printf("a second one %s; ",
           WIFSIGNALED(status) && WTERMSIG(status) == SIGPROF ? "kills" : "does not kill");
    fflush(stdout);

    child = fork();
    if (child == 0) {
        sigprocmask(SIG_BLOCK, &prof, NULL);
        raise(SIGPROF);
        siginfo_t taken;
        sigwaitinfo(&prof, &taken);
        while_pending();
        raise(SIGPROF);
        sigprocmask(SIG_UNBLOCK, &prof, NULL);
        _exit(0);
    }
    waitpid(child, &status, 0);
    printf("6: a raise after sigwaitinfo %s; ",
           WIFSIGNALED(status) && WTERMSIG(status) == SIGPROF ? "kills" : "does not kill");
    fflush(stdout);

    child = fork();
    if (child == 0)
        _exit(taken_after_sender_ends(&prof));
    waitpid(child, &status, 0);
    printf("7: sigtimedwait took %d of 2; ", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    fflush(stdout);

    child = fork();
    if (child == 0)
        _exit(wait_answer(&prof));
    waitpid(child, &status, 0);
    int answer = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    printf("8: sigtimedwait returned %s; ",
           answer == SIGPROF ? "SIGPROF" : answer == 253 ? "EINTR" : "something else");
    printf("9: opened by sigsuspend it %s, ", killed_in_wait(&prof, 0));
    printf("by ppoll %s, ", killed_in_wait(&prof, 1));
    printf("by pselect %s, ", killed_in_wait(&prof, 2));
    printf("by epoll_pwait %s; ", killed_in_wait(&prof, 3));
    fflush(stdout);

    child = fork();
    if (child == 0)
        _exit(own_timer_in_sigsuspend(&prof));
    waitpid(child, &status, 0);
    printf("10: its own timer %s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0
                                          ? "reached its handler in sigsuspend"
                                          : "never reached its handler");
    fflush(stdout);
    after_unblocking();
    return 0;
}
