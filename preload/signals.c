/* Terminating signals and the program's view of dispositions; see
 * signals.h. The interposed sigaction and signal may be called by the
 * program from its own signal handlers, so they take no locks and allocate
 * nothing. on_fatal_signal runs in a signal handler and calls only
 * async-signal-safe code (sprof_stop(true) is). */
#include "signals.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "profiler.h"
#include "sample_handler.h"

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
static sigaction_fn real_sigaction;

/* Per signal: whether sprof's handler stands in for the program's SIG_DFL,
 * and the disposition the program believes it has. */
static volatile sig_atomic_t guarded[NSIG];
static struct sigaction program_view[NSIG];

/* Signals whose default action ends the process. */
static const int terminating[] = {SIGHUP,  SIGINT,  SIGQUIT, SIGILL,  SIGTRAP, SIGABRT,
                                  SIGBUS,  SIGFPE,  SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE,
                                  SIGALRM, SIGTERM, SIGXCPU, SIGXFSZ, SIGSYS,  SIGVTALRM};

/* What the unwinding window blocks: every signal but the synchronous
 * faults. Set once by sprof_signals_init, before any sample. */
static sigset_t window_mask;
static volatile sig_atomic_t window_mask_ready;
/* Whether this thread is inside the unwinding window. */
static __thread volatile sig_atomic_t in_window __attribute__((tls_model("initial-exec")));

void sprof_signals_init(void)
{
    if (!real_sigaction)
        real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    if (!window_mask_ready) {
        sigfillset(&window_mask);
        static const int faults[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS};
        for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
            sigdelset(&window_mask, faults[i]);
        window_mask_ready = 1;
    }
}

void sprof_signals_unwind_begin(sigset_t *saved)
{
    if (!window_mask_ready || pthread_sigmask(SIG_BLOCK, &window_mask, saved) != 0) {
        sigemptyset(saved);
        return;
    }
    in_window = 1;
}

void sprof_signals_unwind_end(const sigset_t *saved)
{
    if (!in_window)
        return;
    in_window = 0;
    pthread_sigmask(SIG_SETMASK, saved, NULL);
}

/* The kernel's mask is the first _NSIG - 1 bits of a sigset_t: glibc
 * passes it only those bytes, and writes only those of an old mask. */
#define KERNEL_MASK_BYTES ((_NSIG - 1) / 8)
_Static_assert(KERNEL_MASK_BYTES == sizeof(uint64_t), "a 64-signal kernel mask");

static uint64_t kernel_mask(const sigset_t *set)
{
    uint64_t mask;
    memcpy(&mask, set, sizeof mask);
    return mask;
}

/* Whether set blocks at least every signal of the window's mask. */
static bool blocks_window(const sigset_t *set)
{
    uint64_t window = kernel_mask(&window_mask);
    return (kernel_mask(set) & window) == window;
}

/* Async-signal-safe. Outside the unwinding window, glibc's sigprocmask
 * exactly (it is pthread_sigmask with errno). Inside it, a request to block
 * at least what the window blocks (libunwind's full mask around its locks,
 * and its restoring of the mask we report) changes nothing, so it is
 * answered without the system call: the old mask reported is the window's,
 * which libunwind then sets back. */
SPROF_EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
    if (in_window && how == SIG_SETMASK && set && blocks_window(set)) {
        if (old)
            memcpy(old, &window_mask, KERNEL_MASK_BYTES);
        return 0;
    }
    int error = pthread_sigmask(how, set, old);
    if (error != 0) {
        errno = error;
        return -1;
    }
    return 0;
}

int sprof_real_sigaction(int signal_number, const struct sigaction *action,
                         struct sigaction *old)
{
    /* Other libraries' constructors (the ASan runtime's among them) may
     * call sigaction before ours has run. */
    if (!real_sigaction)
        sprof_signals_init();
    if (!real_sigaction) {
        errno = ENOSYS;
        return -1;
    }
    return real_sigaction(signal_number, action, old);
}

/* Faults raised by an instruction recur when the handler returns; others
 * must be raised again. */
static bool is_synchronous_fault(int signal_number, const siginfo_t *info)
{
    return info->si_code > 0 && (signal_number == SIGSEGV || signal_number == SIGBUS ||
                                 signal_number == SIGILL || signal_number == SIGFPE ||
                                 signal_number == SIGTRAP || signal_number == SIGSYS);
}

static void on_fatal_signal(int signal_number, siginfo_t *info, void *context)
{
    (void)context;
    int saved_errno = errno;
    /* Default action from here on: the death below is the program's own. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sprof_real_sigaction(signal_number, &dfl, NULL);
    guarded[signal_number] = 0;
    sprof_stop(true);
    /* Pending (blocked during this handler) until we return; then the
     * default action ends the process, with its core dump if it has one. */
    if (!is_synchronous_fault(signal_number, info))
        raise(signal_number);
    errno = saved_errno;
}

void sprof_signals_guard_fatal(void)
{
    for (size_t i = 0; i < sizeof terminating / sizeof terminating[0]; i++) {
        int signal_number = terminating[i];
        if (signal_number == sprof_sampler.signal_number)
            continue;
        struct sigaction current;
        if (sprof_real_sigaction(signal_number, NULL, &current) != 0 ||
            (current.sa_flags & SA_SIGINFO) || current.sa_handler != SIG_DFL)
            continue;
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_sigaction = on_fatal_signal;
        /* Not SA_ONSTACK: a program's alternate stack may be too small for
         * the exit path. Without one, a stack overflow's SIGSEGV kills as
         * it would have. */
        action.sa_flags = SA_SIGINFO | SA_RESTART;
        sigemptyset(&action.sa_mask);
        program_view[signal_number] = current;
        guarded[signal_number] = 1;
        if (sprof_real_sigaction(signal_number, &action, NULL) != 0)
            guarded[signal_number] = 0;
    }
}

static bool is_default(const struct sigaction *action)
{
    return !(action->sa_flags & SA_SIGINFO) && action->sa_handler == SIG_DFL;
}

SPROF_EXPORT int sigaction(int signal_number, const struct sigaction *action,
                           struct sigaction *old)
{
    if (signal_number <= 0 || signal_number >= NSIG)
        return sprof_real_sigaction(signal_number, action, old);
    if (signal_number == sprof_sampler.signal_number && atomic_load(&sprof.active)) {
        /* Our handler stays; the program's is called for every signal that
         * is not a sample (sample_handler.c forwards it). */
        if (old)
            *old = sprof_sampler.previous;
        if (action)
            sprof_sampler.previous = *action;
        return 0;
    }
    if (guarded[signal_number]) {
        if (old)
            *old = program_view[signal_number];
        if (action && !is_default(action)) {
            /* The program takes the signal over: step aside for good. */
            guarded[signal_number] = 0;
            return sprof_real_sigaction(signal_number, action, NULL);
        }
        if (action)
            program_view[signal_number] = *action;
        return 0;
    }
    return sprof_real_sigaction(signal_number, action, old);
}

/* glibc's signal() calls its internal sigaction, not the interposed one:
 * interpose it too, with its BSD semantics. */
SPROF_EXPORT sighandler_t signal(int signal_number, sighandler_t handler)
{
    struct sigaction action, old;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    sigaddset(&action.sa_mask, signal_number);
    if (sigaction(signal_number, &action, &old) != 0)
        return SIG_ERR;
    return (old.sa_flags & SA_SIGINFO) ? (sighandler_t)(void (*)(void))old.sa_sigaction
                                       : old.sa_handler;
}
