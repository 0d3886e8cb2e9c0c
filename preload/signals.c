/* Terminating signals, the program's view of dispositions, and of the
 * sampling signal in its masks; see signals.h. The interposed sigaction,
 * signal and mask functions may be called by the program from its own
 * signal handlers, so they take no locks and allocate nothing. on_fatal_signal runs in a signal handler and calls only
 * async-signal-safe code (sprof_stop(true) is). */
#include "signals.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
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

static void resolve_mask_functions(void);
static int real_mask(int how, const sigset_t *set, sigset_t *old);

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
    resolve_mask_functions();
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
    if (!window_mask_ready || real_mask(SIG_BLOCK, &window_mask, saved) != 0) {
        sigemptyset(saved);
        return;
    }
    in_window = 1;
}

bool sprof_signals_in_unwind_window(void)
{
    return in_window;
}

void sprof_signals_unwind_end(const sigset_t *saved)
{
    if (!in_window)
        return;
    in_window = 0;
    real_mask(SIG_SETMASK, saved, NULL);
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

/* Inside the unwinding window, a request to block at least what the window
 * blocks (libunwind's full mask around its locks, and its restoring of the
 * mask reported) changes nothing, so it is answered without the system
 * call: the old mask reported is the window's, which libunwind then sets
 * back. Async-signal-safe. */
static bool answered_in_window(int how, const sigset_t *set, sigset_t *old)
{
    if (!in_window || how != SIG_SETMASK || !set || !blocks_window(set))
        return false;
    if (old)
        memcpy(old, &window_mask, KERNEL_MASK_BYTES);
    return true;
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

/* --- The sampling signal in the program's signal masks ------------------
 *
 * Daemons block every signal in every thread and take the ones they want
 * with sigwait. Blocking the sampling signal would stop sampling, so while
 * the program has not taken that signal for itself (no handler of its own),
 * it is blocked only in the program's view: each thread keeps the bit the
 * program set, reported back in the old masks, and the real mask leaves the
 * signal open, except where sprof blocks it itself (the loader's locks).
 * Waits on a set (sigwait, signalfd) never consume it either. */

static __thread bool sampling_blocked_in_view __attribute__((tls_model("initial-exec")));

typedef int (*sigmask_fn)(int, const sigset_t *, sigset_t *);
static sigmask_fn real_pthread_sigmask, real_sigprocmask;
typedef int (*sigwait_fn)(const sigset_t *, int *);
typedef int (*sigwaitinfo_fn)(const sigset_t *, siginfo_t *);
typedef int (*sigtimedwait_fn)(const sigset_t *, siginfo_t *, const struct timespec *);
static sigwait_fn real_sigwait;
static sigwaitinfo_fn real_sigwaitinfo;
static sigtimedwait_fn real_sigtimedwait;

static void resolve_mask_functions(void)
{
    if (!real_pthread_sigmask)
        real_pthread_sigmask = (sigmask_fn)dlsym(RTLD_NEXT, "pthread_sigmask");
    if (!real_sigprocmask)
        real_sigprocmask = (sigmask_fn)dlsym(RTLD_NEXT, "sigprocmask");
    if (!real_sigwait)
        real_sigwait = (sigwait_fn)dlsym(RTLD_NEXT, "sigwait");
    if (!real_sigwaitinfo)
        real_sigwaitinfo = (sigwaitinfo_fn)dlsym(RTLD_NEXT, "sigwaitinfo");
    if (!real_sigtimedwait)
        real_sigtimedwait = (sigtimedwait_fn)dlsym(RTLD_NEXT, "sigtimedwait");
}

/* Whether the sampling signal's blocking is kept to the program's view. */
static bool sampling_signal_virtual(void)
{
    const struct sigaction *theirs = &sprof_sampler.previous;
    return sprof.settings.unblock && atomic_load(&sprof.active) &&
           sprof_sampler.signal_number > 0 &&
           !(theirs->sa_flags & SA_SIGINFO) &&
           (theirs->sa_handler == SIG_DFL || theirs->sa_handler == SIG_IGN);
}

static int real_mask(int how, const sigset_t *set, sigset_t *old)
{
    if (!real_pthread_sigmask)
        resolve_mask_functions();
    return real_pthread_sigmask ? real_pthread_sigmask(how, set, old) : ENOSYS;
}

void sprof_signals_hold_sampling(sigset_t *saved)
{
    sigset_t ours;
    sigemptyset(&ours);
    if (sprof_sampler.signal_number > 0)
        sigaddset(&ours, sprof_sampler.signal_number);
    real_mask(SIG_BLOCK, &ours, saved);
}

void sprof_signals_release_sampling(const sigset_t *saved)
{
    real_mask(SIG_SETMASK, saved, NULL);
}

/* The program's mask change, with the sampling signal's bit kept apart. */
static int change_mask(sigmask_fn fn, int how, const sigset_t *set, sigset_t *old)
{
    int signal_number = sprof_sampler.signal_number;
    if (!sampling_signal_virtual())
        return fn(how, set, old);
    bool was_blocked = sampling_blocked_in_view;
    bool now_blocked = was_blocked;
    sigset_t adjusted;
    const sigset_t *passed = set;
    if (set) {
        bool member = sigismember(set, signal_number) == 1;
        if (how == SIG_SETMASK)
            now_blocked = member;
        else if (member)
            now_blocked = how == SIG_BLOCK;
        /* The real bit is never the program's to change: sprof keeps the
         * signal open, but blocked where it blocks it itself (around the
         * loader's locks) and where the kernel does (in sprof's handler,
         * whose libunwind blocks and restores every signal). */
        adjusted = *set;
        sigset_t current;
        if (how == SIG_SETMASK && fn(SIG_BLOCK, NULL, &current) == 0 &&
            sigismember(&current, signal_number) == 1)
            sigaddset(&adjusted, signal_number);
        else
            sigdelset(&adjusted, signal_number);
        passed = &adjusted;
    }
    int result = fn(how, passed, old);
    if (result == 0) {
        if (old && was_blocked)
            sigaddset(old, signal_number);
        else if (old)
            sigdelset(old, signal_number);
        if (set)
            sampling_blocked_in_view = now_blocked;
    }
    return result;
}

SPROF_EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    if (answered_in_window(how, set, old))
        return 0;
    if (!real_pthread_sigmask)
        resolve_mask_functions();
    if (!real_pthread_sigmask)
        return ENOSYS;
    return change_mask(real_pthread_sigmask, how, set, old);
}

SPROF_EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
    if (answered_in_window(how, set, old))
        return 0;
    if (!real_sigprocmask)
        resolve_mask_functions();
    if (!real_sigprocmask) {
        errno = ENOSYS;
        return -1;
    }
    return change_mask(real_sigprocmask, how, set, old);
}

/* A wait set without the sampling signal, unless it is all the set holds
 * (then the program waits for that signal itself). */
static const sigset_t *wait_set(const sigset_t *set, sigset_t *adjusted)
{
    int signal_number = sprof_sampler.signal_number;
    if (!set || !sampling_signal_virtual() || sigismember(set, signal_number) != 1)
        return set;
    *adjusted = *set;
    sigdelset(adjusted, signal_number);
    return sigisemptyset(adjusted) ? set : adjusted;
}

SPROF_EXPORT int sigwait(const sigset_t *set, int *signal_number)
{
    if (!real_sigwait)
        resolve_mask_functions();
    sigset_t adjusted;
    return real_sigwait ? real_sigwait(wait_set(set, &adjusted), signal_number) : ENOSYS;
}

SPROF_EXPORT int sigwaitinfo(const sigset_t *set, siginfo_t *info)
{
    if (!real_sigwaitinfo)
        resolve_mask_functions();
    if (!real_sigwaitinfo) {
        errno = ENOSYS;
        return -1;
    }
    sigset_t adjusted;
    return real_sigwaitinfo(wait_set(set, &adjusted), info);
}

SPROF_EXPORT int sigtimedwait(const sigset_t *set, siginfo_t *info,
                              const struct timespec *timeout)
{
    if (!real_sigtimedwait)
        resolve_mask_functions();
    if (!real_sigtimedwait) {
        errno = ENOSYS;
        return -1;
    }
    sigset_t adjusted;
    return real_sigtimedwait(wait_set(set, &adjusted), info, timeout);
}

const sigset_t *sprof_signals_wait_set(const sigset_t *set, sigset_t *adjusted)
{
    return wait_set(set, adjusted);
}

void sprof_signals_thread_start(bool creator_blocked)
{
    int signal_number = sprof_sampler.signal_number;
    if (!sampling_signal_virtual()) {
        /* Programs (liblzma among them) block every signal around
         * pthread_create, so a new thread would start with ours blocked and
         * never be sampled: unblock it alone, at the start, unless the
         * program handles that signal itself. */
        const struct sigaction *theirs = &sprof_sampler.previous;
        if (signal_number > 0 && !(theirs->sa_flags & SA_SIGINFO) &&
            (theirs->sa_handler == SIG_DFL || theirs->sa_handler == SIG_IGN)) {
            sigset_t ours;
            sigemptyset(&ours);
            sigaddset(&ours, signal_number);
            real_mask(SIG_UNBLOCK, &ours, NULL);
        }
        return;
    }
    sigset_t current, pending;
    if (real_mask(SIG_BLOCK, NULL, &current) != 0)
        return;
    bool really_blocked = sigismember(&current, signal_number) == 1;
    sampling_blocked_in_view = creator_blocked || really_blocked;
    /* One pending from before (a signal no sample sent) would now be
     * delivered and, at its default action, kill: leave it blocked. */
    if (really_blocked && sigpending(&pending) == 0 && sigismember(&pending, signal_number) == 1)
        return;
    sigset_t ours;
    sigemptyset(&ours);
    sigaddset(&ours, signal_number);
    real_mask(SIG_UNBLOCK, &ours, NULL);
}

bool sprof_signals_sampling_blocked_in_view(void)
{
    return sampling_signal_virtual() && sampling_blocked_in_view;
}

void sprof_signals_before_exec(sigset_t *saved)
{
    /* The new image inherits the mask the program set. */
    sigset_t ours;
    sigemptyset(&ours);
    if (sprof_signals_sampling_blocked_in_view())
        sigaddset(&ours, sprof_sampler.signal_number);
    real_mask(SIG_BLOCK, &ours, saved);
}

void sprof_signals_after_failed_exec(const sigset_t *saved)
{
    real_mask(SIG_SETMASK, saved, NULL);
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
