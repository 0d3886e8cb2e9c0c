/* Calls sigprocmask (which libsprof.so interposes) over and over while it is
 * sampled, and checks every answer against the thread's real mask: the
 * interposed function must be glibc's outside sprof's unwinding. Prints
 * "ok N" and exits 0, or says what differed and exits 1. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "work.h"

volatile uint64_t work_sink;

static int failures;

static void expect(int condition, const char *what)
{
    if (!condition && failures++ < 5)
        fprintf(stderr, "sigmask: %s\n", what);
}

/* The thread's mask, read without sigprocmask. */
static sigset_t real_mask(void)
{
    sigset_t mask;
    pthread_sigmask(SIG_SETMASK, NULL, &mask);
    return mask;
}

static int same_mask(const sigset_t *a, const sigset_t *b)
{
    for (int s = 1; s < 65; s++) {
        if (s == 32 || s == 33) /* glibc's own, never blockable */
            continue;
        if (sigismember(a, s) != sigismember(b, s))
            return 0;
    }
    return 1;
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
    sigset_t usr1, full, old, now, start = real_mask();
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigfillset(&full);
    long rounds = 0;
    double begin = cpu_seconds();
    while (cpu_seconds() - begin < 0.5) {
        expect(sigprocmask(SIG_BLOCK, &usr1, &old) == 0, "SIG_BLOCK failed");
        expect(same_mask(&old, &start), "SIG_BLOCK reported a wrong old mask");
        now = real_mask();
        expect(sigismember(&now, SIGUSR1) == 1, "SIG_BLOCK did not block");
        WORK_LOOP(2, 3);
        /* What libunwind does around its locks, from the program. */
        expect(sigprocmask(SIG_SETMASK, &full, &old) == 0, "SIG_SETMASK failed");
        now = real_mask();
        expect(sigismember(&old, SIGUSR1) == 1 && sigismember(&old, SIGUSR2) == 0,
               "SIG_SETMASK reported a wrong old mask");
        expect(sigismember(&now, SIGUSR2) == 1 && sigismember(&now, SIGSEGV) == 1,
               "SIG_SETMASK of the full set did not block everything");
        expect(sigprocmask(SIG_SETMASK, &old, NULL) == 0, "restoring failed");
        expect(sigprocmask(SIG_UNBLOCK, &usr1, NULL) == 0, "SIG_UNBLOCK failed");
        expect(sigprocmask(SIG_SETMASK, NULL, &now) == 0, "query failed");
        sigset_t truth = real_mask();
        expect(same_mask(&now, &truth) && same_mask(&now, &start), "query reported a wrong mask");
        errno = 0;
        expect(sigprocmask(12345, &usr1, NULL) == -1 && errno == EINVAL,
               "a bad how was not refused with EINVAL");
        WORK_LOOP(2, 3);
        rounds++;
    }
    if (failures) {
        fprintf(stderr, "sigmask: %d failures in %ld rounds\n", failures, rounds);
        return 1;
    }
    printf("ok %ld\n", rounds);
    return 0;
}
