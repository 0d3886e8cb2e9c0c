/* A vfork child changing signal dispositions and its mask before exec, as
 * CPython's subprocess does (_posixsubprocess: every signal blocked around
 * vfork; in the child, each handled signal reset to SIG_DFL, then the
 * parent's mask restored). The child shares the parent's memory: nothing it
 * does may reach the parent's dispositions or masks.
 *
 * The parent handles SIGPROF itself and leaves SIGTERM at its default. The
 * child resets SIGPROF to SIG_DFL, ignores SIGTERM, restores the mask and
 * runs `true`. Then the parent, back to its own mask, computes, and
 * prints what it sees: its handlers, whether SIGPROF is blocked or pending,
 * and whether a SIGPROF it sends itself reaches its handler.
 * Usage: vforksig */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "work.h"

volatile uint64_t work_sink;
static volatile sig_atomic_t handled;

static void on_sigprof(int signal_number)
{
    (void)signal_number;
    handled++;
}

__attribute__((noinline)) static void after_vfork(void)
{
    WORK_LOOP(30000, 5);
}

static const char *yes_no(int condition)
{
    return condition ? "yes" : "no";
}

int main(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_sigprof;
    sigemptyset(&action.sa_mask);
    sigaction(SIGPROF, &action, NULL);

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pid_t child = vfork();
    if (child == 0) {
        struct sigaction dfl, ign;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigaction(SIGPROF, &dfl, NULL);
        memset(&ign, 0, sizeof ign);
        ign.sa_handler = SIG_IGN;
        sigaction(SIGTERM, &ign, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    int status = -1;
    waitpid(child, &status, 0);

    after_vfork();

    struct sigaction prof, term;
    sigaction(SIGPROF, NULL, &prof);
    sigaction(SIGTERM, NULL, &term);
    sigset_t mask, pending;
    pthread_sigmask(SIG_BLOCK, NULL, &mask);
    sigpending(&pending);
    printf("child exited %d; SIGPROF handler kept: %s; SIGTERM default kept: %s; "
           "SIGPROF blocked: %s, pending: %s; ",
           WIFEXITED(status) ? WEXITSTATUS(status) : -1,
           yes_no(!(prof.sa_flags & SA_SIGINFO) && prof.sa_handler == on_sigprof),
           yes_no(!(term.sa_flags & SA_SIGINFO) && term.sa_handler == SIG_DFL),
           yes_no(sigismember(&mask, SIGPROF)), yes_no(sigismember(&pending, SIGPROF)));
    fflush(stdout);
    kill(getpid(), SIGPROF);
    printf("own SIGPROF handled: %d\n", (int)handled);
    return 0;
}
