/* glibc's older signal calls on SIGPROF, which glibc makes past the
 * interposed sigprocmask and sigaction. Each step runs in a child and
 * prints whether a SIGPROF of the program's own kills it, at its default
 * action:
 *   1. sigblock(SIGPROF), kill: pending; sigblock(0) shows it blocked;
 *      sigsetmask(0) delivers it: it kills.
 *   2. sighold, raise; sigrelse: it kills.
 *   3. sigignore, raise: it lives; sigset(SIG_DFL), raise: it kills.
 *   4. sigset(SIG_HOLD), raise: pending; sigpause (XSI) opens it: it kills.
 *   5. sysv_signal(SIG_DFL) after sigignore, raise: it kills.
 * Then, with SIGPROF blocked by sigblock, it computes: the profiler must
 * still sample it.
 * Usage: legacymask */
#define _DEFAULT_SOURCE
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "work.h"

volatile uint64_t work_sink;

/* The calls are deprecated; calling them is the point. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#define PROF_BIT (1 << (SIGPROF - 1))

sighandler_t sysv_signal(int signal_number, sighandler_t handler);

__attribute__((noinline)) static void while_blocked(void)
{
    WORK_LOOP(30000, 5);
}

static void step(int number)
{
    int prof = PROF_BIT;
    switch (number) {
    case 1:
        sigblock(prof);
        kill(getpid(), SIGPROF);
        if (!(sigblock(0) & prof))
            _exit(3);
        sigsetmask(0);
        break;
    case 2:
        sighold(SIGPROF);
        raise(SIGPROF);
        sigrelse(SIGPROF);
        break;
    case 3:
        sigignore(SIGPROF);
        raise(SIGPROF);
        printf("lives, ");
        fflush(stdout);
        sigset(SIGPROF, SIG_DFL);
        raise(SIGPROF);
        break;
    case 4:
        sigset(SIGPROF, SIG_HOLD);
        raise(SIGPROF);
        alarm(3);
        sigpause(SIGPROF);
        break;
    case 5:
        sigignore(SIGPROF);
        sysv_signal(SIGPROF, SIG_DFL);
        raise(SIGPROF);
        break;
    }
    _exit(0);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int number = 1; number <= 5; number++) {
        printf("%d: ", number);
        fflush(stdout);
        pid_t child = fork();
        if (child == 0)
            step(number);
        int status = 0;
        waitpid(child, &status, 0);
        printf("%s; ", WIFSIGNALED(status) && WTERMSIG(status) == SIGPROF ? "kills"
                       : WIFEXITED(status) && WEXITSTATUS(status) == 3 ? "not blocked"
                                                                      : "does not kill");
        fflush(stdout);
    }
    printf("\n");
    sigblock(PROF_BIT);
    while_blocked();
    return 0;
}
