/* glibc's older signal calls: BSD's (sigblock, sigsetmask, siggetmask,
 * sigpause), System V's (sighold, sigrelse, sigignore, sigset, sigpause,
 * sysv_signal), siginterrupt and signal's aliases. glibc makes them with its
 * internal sigprocmask and sigaction, past the interposed ones, so the
 * program's view of the sampling signal would miss them: dash, /bin/sh on
 * Debian, clears its mask with sigsetmask, and a view left blocked made it
 * survive a SIGPROF that kills it. Each is made here of the interposed
 * calls (signals.c), with glibc's semantics. They may be called from the
 * program's signal handlers: no locks, no allocation. */
#include <errno.h>
#include <signal.h>

#include "profiler.h"

/* Exported by glibc, not declared by its headers. */
sighandler_t bsd_signal(int signal_number, sighandler_t handler);
int __sigpause(int signal_or_bits, int is_signal);
int __xpg_sigpause(int signal_number);

/* The first 32 signals as an int mask, BSD's form (bit n - 1 for n). */
static void mask_from_bits(int bits, sigset_t *set)
{
    sigemptyset(set);
    for (int signal_number = 1; signal_number <= 32 && signal_number < NSIG; signal_number++) {
        if ((unsigned)bits & (1u << (signal_number - 1)))
            sigaddset(set, signal_number);
    }
}

static int bits_from_mask(const sigset_t *set)
{
    unsigned bits = 0;
    for (int signal_number = 1; signal_number <= 32 && signal_number < NSIG; signal_number++) {
        if (sigismember(set, signal_number) == 1)
            bits |= 1u << (signal_number - 1);
    }
    return (int)bits;
}

static int change_with_bits(int how, int bits)
{
    sigset_t set, old;
    mask_from_bits(bits, &set);
    if (sigprocmask(how, &set, &old) < 0)
        return -1;
    return bits_from_mask(&old);
}

SPROF_EXPORT int sigblock(int bits)
{
    return change_with_bits(SIG_BLOCK, bits);
}

SPROF_EXPORT int sigsetmask(int bits)
{
    return change_with_bits(SIG_SETMASK, bits);
}

SPROF_EXPORT int siggetmask(void)
{
    return change_with_bits(SIG_BLOCK, 0);
}

static int change_one(int how, int signal_number)
{
    sigset_t set;
    sigemptyset(&set);
    if (sigaddset(&set, signal_number) < 0)
        return -1;
    return sigprocmask(how, &set, NULL);
}

SPROF_EXPORT int sighold(int signal_number)
{
    return change_one(SIG_BLOCK, signal_number);
}

SPROF_EXPORT int sigrelse(int signal_number)
{
    return change_one(SIG_UNBLOCK, signal_number);
}

SPROF_EXPORT int sigignore(int signal_number)
{
    struct sigaction action = {0};
    action.sa_handler = SIG_IGN;
    sigemptyset(&action.sa_mask);
    return sigaction(signal_number, &action, NULL);
}

SPROF_EXPORT sighandler_t sigset(int signal_number, sighandler_t disposition)
{
    sigset_t set, old;
    sigemptyset(&set);
    if (sigaddset(&set, signal_number) < 0)
        return SIG_ERR;
    struct sigaction action = {0}, previous;
    if (disposition == SIG_HOLD) {
        if (sigprocmask(SIG_BLOCK, &set, &old) < 0)
            return SIG_ERR;
        if (sigismember(&old, signal_number) == 1)
            return SIG_HOLD;
        if (sigaction(signal_number, NULL, &previous) < 0)
            return SIG_ERR;
        return previous.sa_handler;
    }
    action.sa_handler = disposition;
    sigemptyset(&action.sa_mask);
    if (sigaction(signal_number, &action, &previous) < 0)
        return SIG_ERR;
    if (sigprocmask(SIG_UNBLOCK, &set, &old) < 0)
        return SIG_ERR;
    return sigismember(&old, signal_number) == 1 ? SIG_HOLD : previous.sa_handler;
}

SPROF_EXPORT int siginterrupt(int signal_number, int interrupt)
{
    struct sigaction action;
    if (sigaction(signal_number, NULL, &action) < 0)
        return -1;
    if (interrupt)
        action.sa_flags &= ~SA_RESTART;
    else
        action.sa_flags |= SA_RESTART;
    return sigaction(signal_number, &action, NULL);
}

SPROF_EXPORT sighandler_t sysv_signal(int signal_number, sighandler_t handler)
{
    if (handler == SIG_ERR || signal_number < 1 || signal_number >= NSIG) {
        errno = EINVAL;
        return SIG_ERR;
    }
    struct sigaction action = {0}, previous;
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESETHAND | SA_NODEFER;
    if (sigaction(signal_number, &action, &previous) < 0)
        return SIG_ERR;
    return previous.sa_handler;
}

SPROF_EXPORT sighandler_t __sysv_signal(int signal_number, sighandler_t handler)
{
    return sysv_signal(signal_number, handler);
}

/* signal's aliases in glibc: BSD semantics, as the interposed signal. */
SPROF_EXPORT sighandler_t bsd_signal(int signal_number, sighandler_t handler)
{
    return signal(signal_number, handler);
}

SPROF_EXPORT sighandler_t ssignal(int signal_number, sighandler_t handler)
{
    return signal(signal_number, handler);
}

/* sigpause: with is_signal, the mask less that signal (System V, XSI);
 * else the mask given as bits (BSD). */
SPROF_EXPORT int __sigpause(int signal_or_bits, int is_signal)
{
    sigset_t set;
    if (is_signal) {
        if (sigprocmask(SIG_BLOCK, NULL, &set) < 0 || sigdelset(&set, signal_or_bits) < 0)
            return -1;
    } else {
        mask_from_bits(signal_or_bits, &set);
    }
    return sigsuspend(&set);
}

SPROF_EXPORT int __xpg_sigpause(int signal_number)
{
    return __sigpause(signal_number, 1);
}

/* BSD's sigpause, the symbol "sigpause" (signal.h names the XSI one so). */
int sprof_bsd_sigpause(int bits) __asm__("sigpause");
SPROF_EXPORT int sprof_bsd_sigpause(int bits)
{
    return __sigpause(bits, 0);
}
