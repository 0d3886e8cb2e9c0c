/* Computes for a while, then ends in the way named by its argument:
 *   segv, abort, term (SIGTERM to itself), int (SIGINT), pipe (write to a
 *   closed pipe), exit3 (exit(3)), _exit4 (_exit(4)), thread-exit (the last
 *   thread calls pthread_exit), kill-other (another thread raises SIGTERM),
 *   int-handed-back (handles SIGINT, then gives it back to SIG_DFL and
 *   raises it, as CPython does on an uncaught KeyboardInterrupt), or
 *   term-handed-back (its SIGTERM handler gives SIGTERM back to SIG_DFL,
 *   with SA_SIGINFO still in the flags, and sends it again, as PHP does).
 * The profile must hold the work, and the ending must be the program's. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "work.h"

volatile uint64_t work_sink;

__attribute__((noinline)) static void work_before_dying(void)
{
    for (int i = 0; i < 60; i++)
        WORK_LOOP(1000, (uint64_t)i);
}

static volatile sig_atomic_t interrupted;

static void on_interrupt(int signal_number)
{
    interrupted = signal_number;
}

static void on_term(int signal_number, siginfo_t *info, void *context)
{
    (void)info, (void)context;
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    dfl.sa_flags = SA_SIGINFO;
    sigaction(signal_number, &dfl, NULL);
    kill(getpid(), signal_number);
}

static void *raise_term(void *unused)
{
    (void)unused;
    kill(getpid(), SIGTERM);
    for (;;)
        pause();
    return NULL;
}

int main(int argc, char **argv)
{
    const char *how = argc > 1 ? argv[1] : "exit3";
    work_before_dying();
    fflush(stdout);
    if (!strcmp(how, "segv")) {
        volatile int *nowhere = NULL;
        *nowhere = 1;
    } else if (!strcmp(how, "abort")) {
        abort();
    } else if (!strcmp(how, "term")) {
        raise(SIGTERM);
    } else if (!strcmp(how, "int")) {
        raise(SIGINT);
    } else if (!strcmp(how, "int-handed-back")) {
        signal(SIGINT, on_interrupt);
        raise(SIGINT);
        if (interrupted == SIGINT) {
            signal(SIGINT, SIG_DFL);
            kill(getpid(), SIGINT);
        }
    } else if (!strcmp(how, "term-handed-back")) {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_sigaction = on_term;
        action.sa_flags = SA_SIGINFO;
        sigaction(SIGTERM, &action, NULL);
        raise(SIGTERM);
    } else if (!strcmp(how, "pipe")) {
        int fds[2];
        if (pipe(fds) == 0) {
            close(fds[0]);
            ssize_t ignored = write(fds[1], "x", 1);
            (void)ignored;
        }
    } else if (!strcmp(how, "_exit4")) {
        _exit(4);
    } else if (!strcmp(how, "thread-exit")) {
        pthread_exit(NULL);
    } else if (!strcmp(how, "kill-other")) {
        pthread_t thread;
        pthread_create(&thread, NULL, raise_term, NULL);
        for (;;)
            WORK_LOOP(100, 1);
    }
    exit(3);
}
