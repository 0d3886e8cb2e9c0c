/* Terminating signals, the program's view of dispositions, and of the
 * sampling signal in its masks; see signals.h. The interposed sigaction,
 * signal and mask functions may be called by the program from its own
 * signal handlers, so they take no locks and allocate nothing. on_fatal_signal runs in a signal handler and calls only
 * async-signal-safe code (sprof_stop(true) is). */
#include "signals.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "module_list.h"
#include "profiler.h"
#include "sample_handler.h"

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
static sigaction_fn real_sigaction;

/* Per signal: whether sprof's handler stands in for the program's SIG_DFL,
 * and the disposition the program believes it has. */
static volatile sig_atomic_t guarded[NSIG];
static struct sigaction program_view[NSIG];

/* SIGSEGV and SIGBUS with a handler of the program's: sprof's handler is
 * in front (with the program's mask and flags), catches a fault inside an
 * unwind, and calls the program's handler for every other. JITs handle
 * faults (LuaJIT, the JVM, node), and libunwind, reading a JIT's code,
 * faulted into LuaJIT's handler, which ended the program. The handler
 * reads the program's action from the slot last written, so a change of
 * it never shows half made. */
static volatile sig_atomic_t forwarding[NSIG];
static struct sigaction forwarded[NSIG][2];
static _Atomic int forwarded_slot[NSIG];

/* Signals whose default action ends the process. */
static const int terminating[] = {SIGHUP,  SIGINT,  SIGQUIT, SIGILL,  SIGTRAP, SIGABRT,
                                  SIGBUS,  SIGFPE,  SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE,
                                  SIGALRM, SIGTERM, SIGXCPU, SIGXFSZ, SIGSYS,  SIGVTALRM};

static void resolve_mask_functions(void);
static void resolve_wait_functions(void);
static void make_window_mask(void);
static int real_mask(int how, const sigset_t *set, sigset_t *old);

/* What the unwinding window blocks: every signal but the synchronous
 * faults. Made once, at start-up, before any sample. */
static sigset_t window_mask;
static volatile sig_atomic_t window_mask_ready;
/* Whether this thread is inside the unwinding window. */
static __thread volatile sig_atomic_t in_window __attribute__((tls_model("initial-exec")));

/* The code of the libunwind sprof unwinds with. A program that calls it
 * too (itself, or through gperftools) blocks every signal around
 * libunwind's locks: that block is made for real, or sprof's handler would
 * wait on a lock its own thread holds. */
static uintptr_t libunwind_code[2];

static bool called_from_libunwind(const void *return_address)
{
    uintptr_t at = (uintptr_t)return_address;
    return at >= libunwind_code[0] && at < libunwind_code[1];
}

void sprof_signals_init(void)
{
    if (!real_sigaction)
        real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    resolve_mask_functions();
    resolve_wait_functions();
    if (!libunwind_code[1])
        sprof_code_segment(NULL, (uintptr_t)unw_backtrace, libunwind_code);
    make_window_mask();
}

static void make_window_mask(void)
{
    if (window_mask_ready)
        return;
    sigfillset(&window_mask);
    static const int faults[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS};
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        sigdelset(&window_mask, faults[i]);
    window_mask_ready = 1;
}

void sprof_signals_window_mask(sigset_t *mask)
{
    make_window_mask();
    *mask = window_mask;
}

void sprof_signals_unwind_begin(void)
{
    in_window = 1;
}

bool sprof_signals_in_unwind_window(void)
{
    return in_window;
}

void sprof_signals_unwind_end(void)
{
    in_window = 0;
}

void sprof_signals_unwind_escaped(const ucontext_t *uc)
{
    static const int faults[] = {SIGSEGV, SIGBUS};
    sigset_t unblock;
    sigemptyset(&unblock);
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        if (sigismember(&uc->uc_sigmask, faults[i]) != 1)
            sigaddset(&unblock, faults[i]);
    }
    real_mask(SIG_UNBLOCK, &unblock, NULL);
}

void sprof_signals_mask_as_kernel_would(int signal_number, const ucontext_t *uc,
                                        const struct sigaction *theirs)
{
    sigset_t mask;
    sigorset(&mask, &uc->uc_sigmask, &theirs->sa_mask);
    if (!(theirs->sa_flags & SA_NODEFER))
        sigaddset(&mask, signal_number);
    real_mask(SIG_SETMASK, &mask, NULL);
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

/* Where a fault inside this thread's unwinding jumps back to. */
static __thread sigjmp_buf *unwind_escape __attribute__((tls_model("initial-exec")));

void sprof_signals_unwind_escape(sigjmp_buf *escape)
{
    unwind_escape = escape;
}

/* Where a fault, or libdw running out of memory, inside the exit's naming
 * jumps back to. */
static __thread sigjmp_buf *naming_escape __attribute__((tls_model("initial-exec")));

void sprof_signals_naming_escape(sigjmp_buf *escape)
{
    naming_escape = escape;
}

void sprof_signals_naming_failed(void)
{
    sigjmp_buf *escape = naming_escape;
    naming_escape = NULL;
    if (escape)
        siglongjmp(*escape, 1);
    abort(); /* not reached: libdw calls this only while naming */
}

/* libunwind reads the stack without checking addresses: code whose unwind
 * rules do not hold at every instruction leads it astray, and a JIT's code
 * has none. That fault is ours, not the program's: the sample is cut short
 * instead. So is one in libdw while the exit names addresses (it does not
 * check every allocation): the names stop there. */
static void escape_if_unwinding(int signal_number, const siginfo_t *info)
{
    if ((signal_number != SIGSEGV && signal_number != SIGBUS) || info->si_code <= 0)
        return;
    if (in_window && unwind_escape) {
        sigjmp_buf *escape = unwind_escape;
        unwind_escape = NULL;
        siglongjmp(*escape, 1);
    }
    if (naming_escape)
        sprof_signals_naming_failed();
}

static bool guard(int signal_number, const struct sigaction *view);
static bool is_handler(const struct sigaction *action);

static void on_forwarded_fault(int signal_number, siginfo_t *info, void *context)
{
    escape_if_unwinding(signal_number, info);
    struct sigaction theirs =
        forwarded[signal_number][atomic_load(&forwarded_slot[signal_number])];
    if (theirs.sa_flags & SA_RESETHAND) {
        /* As the kernel would have: the default action from now on. */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        int saved_errno = errno;
        forwarding[signal_number] = 0;
        if (!guard(signal_number, &dfl))
            sprof_real_sigaction(signal_number, &dfl, NULL);
        errno = saved_errno;
    }
    if (!is_handler(&theirs))
        return;
    if (theirs.sa_flags & SA_SIGINFO)
        theirs.sa_sigaction(signal_number, info, context);
    else
        theirs.sa_handler(signal_number);
}

static void on_fatal_signal(int signal_number, siginfo_t *info, void *context)
{
    (void)context;
    escape_if_unwinding(signal_number, info);
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

/* SIG_DFL and SIG_IGN whatever the flags: the kernel reads the one field
 * whichever of its two names the program set, and SA_SIGINFO with SIG_DFL
 * is the default action (PHP gives SIGTERM back so before re-sending it). */
static bool is_default(const struct sigaction *action)
{
    return action->sa_handler == SIG_DFL;
}

static bool is_handler(const struct sigaction *action)
{
    return action->sa_handler != SIG_DFL && action->sa_handler != SIG_IGN;
}

static bool is_fault_signal(int signal_number)
{
    return signal_number == SIGSEGV || signal_number == SIGBUS;
}

/* Puts sprof's handler in front of the program's handler theirs for a
 * fault signal. False if it cannot be installed. */
static bool forward_to(int signal_number, const struct sigaction *theirs)
{
    int slot = 1 - atomic_load(&forwarded_slot[signal_number]);
    forwarded[signal_number][slot] = *theirs;
    atomic_store(&forwarded_slot[signal_number], slot);
    struct sigaction ours = *theirs;
    ours.sa_sigaction = on_forwarded_fault;
    ours.sa_flags = (theirs->sa_flags | SA_SIGINFO) & ~SA_RESETHAND;
    program_view[signal_number] = *theirs;
    forwarding[signal_number] = 1;
    if (sprof_real_sigaction(signal_number, &ours, NULL) == 0)
        return true;
    forwarding[signal_number] = 0;
    return false;
}

static bool is_terminating(int signal_number)
{
    for (size_t i = 0; i < sizeof terminating / sizeof terminating[0]; i++) {
        if (terminating[i] == signal_number)
            return signal_number != sprof_sampler.signal_number;
    }
    return false;
}

/* Stands in for the default action of a terminating signal, the program
 * seeing view (its SIG_DFL). False if the handler cannot be installed. */
static bool guard(int signal_number, const struct sigaction *view)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_fatal_signal;
    /* Not SA_ONSTACK: a program's alternate stack may be too small for
     * the exit path. Without one, a stack overflow's SIGSEGV kills as
     * it would have. */
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&action.sa_mask);
    program_view[signal_number] = *view;
    guarded[signal_number] = 1;
    if (sprof_real_sigaction(signal_number, &action, NULL) == 0)
        return true;
    guarded[signal_number] = 0;
    return false;
}

void sprof_signals_unguard_fatal(void)
{
    for (size_t i = 0; i < sizeof terminating / sizeof terminating[0]; i++) {
        int signal_number = terminating[i];
        if (!guarded[signal_number] && !forwarding[signal_number])
            continue;
        guarded[signal_number] = 0;
        forwarding[signal_number] = 0;
        sprof_real_sigaction(signal_number, &program_view[signal_number], NULL);
    }
}

void sprof_signals_guard_fatal(void)
{
    for (size_t i = 0; i < sizeof terminating / sizeof terminating[0]; i++) {
        int signal_number = terminating[i];
        struct sigaction current;
        if (!is_terminating(signal_number) ||
            sprof_real_sigaction(signal_number, NULL, &current) != 0)
            continue;
        if (is_default(&current))
            guard(signal_number, &current);
        else if (is_fault_signal(signal_number) && is_handler(&current))
            forward_to(signal_number, &current);
    }
}

/* A vfork child (CPython's subprocess makes one) runs in the parent's
 * memory while the parent's thread waits: what it changes before exec is
 * its own, and must not land in sprof's state, which is the parent's. It
 * is told apart by its pid: vfork runs no fork handlers. */
static bool in_vfork_child(void)
{
    return !sprof_in_profiled_process();
}

SPROF_EXPORT int sigaction(int signal_number, const struct sigaction *action,
                           struct sigaction *old)
{
    if (signal_number <= 0 || signal_number >= NSIG)
        return sprof_real_sigaction(signal_number, action, old);
    bool sampling = signal_number == sprof_sampler.signal_number && atomic_load(&sprof.active);
    bool stood_in = guarded[signal_number] || forwarding[signal_number];
    if ((sampling || stood_in) && action && in_vfork_child()) {
        /* It reads the parent's program's view; its change is made for
         * real, in its own table of dispositions, and nowhere else. */
        if (old)
            *old = sampling ? sprof_sampler.previous : program_view[signal_number];
        return sprof_real_sigaction(signal_number, action, NULL);
    }
    if (sampling) {
        /* Our handler stays; the program's is called for every signal that
         * is not a sample (sample_handler.c forwards it). */
        if (old)
            *old = sprof_sampler.previous;
        if (action)
            sprof_sampler.previous = *action;
        return 0;
    }
    if (stood_in) {
        if (old)
            *old = program_view[signal_number];
        if (!action)
            return 0;
        if (is_fault_signal(signal_number) && is_handler(action)) {
            guarded[signal_number] = 0;
            if (forward_to(signal_number, action))
                return 0;
            return sprof_real_sigaction(signal_number, action, NULL);
        }
        if (is_default(action)) {
            forwarding[signal_number] = 0;
            if (guarded[signal_number] || guard(signal_number, action)) {
                program_view[signal_number] = *action;
                return 0;
            }
            return sprof_real_sigaction(signal_number, action, NULL);
        }
        /* The program takes the signal over: step aside for good. */
        guarded[signal_number] = 0;
        forwarding[signal_number] = 0;
        return sprof_real_sigaction(signal_number, action, NULL);
    }
    /* A fault handler gets sprof's in front of it. A terminating signal
     * handed back to the default action (CPython does so to die of an
     * uncaught KeyboardInterrupt) is stood in for again, so that dying of
     * it still writes the summary. */
    bool to_forward = action && is_fault_signal(signal_number) && is_handler(action);
    bool to_guard = action && is_default(action) && is_terminating(signal_number);
    if ((to_forward || to_guard) && atomic_load(&sprof.active) && !in_vfork_child()) {
        struct sigaction previous;
        if (sprof_real_sigaction(signal_number, NULL, &previous) == 0 &&
            (to_forward ? forward_to(signal_number, action) : guard(signal_number, action))) {
            if (old)
                *old = previous;
            return 0;
        }
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
 * signal open, except where sprof blocks it itself (the loader's locks, its
 * handler) and where a signal of the program's own waits for the program
 * to unblock it (sprof_signals_defer). Waits on a set (sigwait, signalfd)
 * never consume a sample either.
 *
 * The view is kept even while the program has a handler of its own (then
 * the real mask is the program's, passed through): a program may give the
 * signal back to its default action at any time, with its own block of it
 * still in place. That block then ends where the program ends it. */

/* The program's wish for the sampling signal in this thread's mask. */
static __thread bool sampling_blocked_in_view __attribute__((tls_model("initial-exec")));
/* sprof's own blocks of the signal in this thread (they nest), and whether
 * its handler runs, where the kernel blocks the signal. */
static __thread unsigned sampling_held __attribute__((tls_model("initial-exec")));
static __thread volatile sig_atomic_t in_sampling_handler
    __attribute__((tls_model("initial-exec")));
/* A vfork child that set its own mask: its pid (its real mask is then the
 * program's, and exec leaves it alone). */
static _Atomic pid_t vfork_child_set_mask;

typedef int (*sigmask_fn)(int, const sigset_t *, sigset_t *);
static sigmask_fn real_pthread_sigmask, real_sigprocmask;
typedef int (*sigwaitinfo_fn)(const sigset_t *, siginfo_t *);
typedef int (*sigtimedwait_fn)(const sigset_t *, siginfo_t *, const struct timespec *);
static sigwaitinfo_fn real_sigwaitinfo;
static sigtimedwait_fn real_sigtimedwait;

static void resolve_mask_functions(void)
{
    if (!real_pthread_sigmask)
        real_pthread_sigmask = (sigmask_fn)dlsym(RTLD_NEXT, "pthread_sigmask");
    if (!real_sigprocmask)
        real_sigprocmask = (sigmask_fn)dlsym(RTLD_NEXT, "sigprocmask");
    if (!real_sigwaitinfo)
        real_sigwaitinfo = (sigwaitinfo_fn)dlsym(RTLD_NEXT, "sigwaitinfo");
    if (!real_sigtimedwait)
        real_sigtimedwait = (sigtimedwait_fn)dlsym(RTLD_NEXT, "sigtimedwait");
}

/* Whether the program's view of the sampling signal is kept at all. */
static bool view_kept(void)
{
    return sprof.settings.unblock && atomic_load(&sprof.active) &&
           sprof_sampler.signal_number > 0;
}

/* Whether the sampling signal's blocking is kept to the program's view. */
static bool sampling_signal_virtual(void)
{
    const struct sigaction *theirs = &sprof_sampler.previous;
    return view_kept() && !is_handler(theirs);
}

static int real_mask(int how, const sigset_t *set, sigset_t *old)
{
    if (!real_pthread_sigmask)
        resolve_mask_functions();
    return real_pthread_sigmask ? real_pthread_sigmask(how, set, old) : ENOSYS;
}

static void real_mask_one(int how, int signal_number)
{
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, signal_number);
    real_mask(how, &one, NULL);
}

void sprof_signals_hold_sampling(sigset_t *saved)
{
    sigset_t ours;
    sigemptyset(&ours);
    if (sprof_sampler.signal_number > 0)
        sigaddset(&ours, sprof_sampler.signal_number);
    real_mask(SIG_BLOCK, &ours, saved);
    sampling_held++;
}

void sprof_signals_release_sampling(const sigset_t *saved)
{
    sampling_held--;
    real_mask(SIG_SETMASK, saved, NULL);
}

void sprof_signals_handler_enter(void)
{
    in_sampling_handler++;
}

void sprof_signals_handler_leave(void)
{
    in_sampling_handler--;
}

/* The program's bit after a change from was. */
static bool next_in_view(int how, const sigset_t *set, bool was)
{
    if (!set || sigismember(set, sprof_sampler.signal_number) != 1)
        return how == SIG_SETMASK && set ? false : was;
    return how != SIG_UNBLOCK;
}

/* Reports the program's bit in an old mask, written as glibc writes one:
 * the kernel's bytes only. */
static void report_old(sigset_t *old, const sigset_t *real_old, bool blocked)
{
    if (!old)
        return;
    memcpy(old, real_old, KERNEL_MASK_BYTES);
    if (blocked)
        sigaddset(old, sprof_sampler.signal_number);
    else
        sigdelset(old, sprof_sampler.signal_number);
}

/* The program's mask change, with the sampling signal's bit kept apart.
 * The view changes before the real mask does: a deferred signal the real
 * change lets in must find the program's new wish. */
static int change_mask(sigmask_fn fn, int how, const sigset_t *set, sigset_t *old)
{
    int signal_number = sprof_sampler.signal_number;
    if (!view_kept())
        return fn(how, set, old);
    if (in_vfork_child()) {
        /* Its real mask is the program's, as the new image must get it. */
        int result = fn(how, set, old);
        if (result == 0 && set)
            atomic_store(&vfork_child_set_mask, getpid());
        return result;
    }
    bool held = sampling_held > 0 || in_sampling_handler;
    bool was_blocked = sampling_blocked_in_view;
    /* Whether the call sets the bit (else it leaves it as it was). */
    bool sets_bit = set && (how == SIG_SETMASK || sigismember(set, signal_number) == 1);
    bool now_blocked = next_in_view(how, set, was_blocked);
    sigset_t real_old;
    if (!sampling_signal_virtual()) {
        /* The program's own handler: the real mask is the program's, and
         * the view follows it (not inside sprof's handler, whose mask the
         * kernel restores). */
        bool follow = !in_sampling_handler;
        if (sets_bit && follow)
            sampling_blocked_in_view = now_blocked;
        int result = fn(how, set, &real_old);
        if (result != 0) {
            sampling_blocked_in_view = was_blocked;
            return result;
        }
        /* The real bit is the program's, but for sprof's own blocks. */
        bool was = sampling_held > 0 ? was_blocked : sigismember(&real_old, signal_number) == 1;
        report_old(old, &real_old, was);
        if (!sets_bit && follow && sampling_held == 0)
            sampling_blocked_in_view = was;
        return 0;
    }
    sigset_t adjusted;
    const sigset_t *passed = set;
    if (set) {
        /* The real bit is never the program's to set: sprof keeps the
         * signal open, but blocked where it blocks it itself, and, while
         * the program's view blocks it, as it is (a signal of the program
         * may wait there, sprof_signals_defer). */
        adjusted = *set;
        sigset_t current;
        bool keep = how == SIG_SETMASK &&
                    (held || (now_blocked && fn(SIG_BLOCK, NULL, &current) == 0 &&
                              sigismember(&current, signal_number) == 1));
        if (keep)
            sigaddset(&adjusted, signal_number);
        else
            sigdelset(&adjusted, signal_number);
        passed = &adjusted;
        sampling_blocked_in_view = now_blocked;
    }
    int result = fn(how, passed, &real_old);
    if (result != 0) {
        sampling_blocked_in_view = was_blocked;
        return result;
    }
    report_old(old, &real_old, was_blocked);
    /* A real block left from before (the program's own, made while it
     * handled the signal, or one kept for its deferred signal) ends where
     * the program's view unblocks the signal. */
    if (set && !now_blocked && !held && how != SIG_SETMASK &&
        sigismember(&real_old, signal_number) == 1)
        real_mask_one(SIG_UNBLOCK, signal_number);
    return 0;
}

/* The program's alternate signal stacks, seen so that sprof's handler
 * stops asking for them if one is too small (sample_handler.c). */
SPROF_EXPORT int sigaltstack(const stack_t *stack, stack_t *old)
{
    long result = syscall(SYS_sigaltstack, stack, old);
    if (result == 0)
        sprof_sampler_alternate_stack_set(stack);
    return (int)result;
}

SPROF_EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    if (answered_in_window(how, set, old))
        return 0;
    if (!real_pthread_sigmask)
        resolve_mask_functions();
    if (!real_pthread_sigmask)
        return ENOSYS;
    if (called_from_libunwind(__builtin_return_address(0)))
        return real_pthread_sigmask(how, set, old);
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
    if (called_from_libunwind(__builtin_return_address(0)))
        return real_sigprocmask(how, set, old);
    return change_mask(real_sigprocmask, how, set, old);
}

bool sprof_signals_defer(int signal_number, const siginfo_t *info, void *context)
{
    if (signal_number != sprof_sampler.signal_number || !sampling_blocked_in_view ||
        !view_kept() || in_vfork_child())
        return false;
    /* Sent again: a thread's own to this thread, with the same siginfo; one
     * sent to the process back to the process, where any thread that opens
     * it or waits for it takes it. The kernel lets only the main thread pass
     * on a code that is not negative (kill's, the kernel's): from another
     * thread it goes as SI_QUEUE, with the same sender. Kept on this thread
     * instead, a signal thread's sigwait would never see it, and it would
     * be lost when this thread ended. */
    pid_t pid = getpid();
    pid_t tid = (pid_t)syscall(SYS_gettid);
    long sent = -1;
    if (info->si_code != SI_TKILL && info->si_code != SI_TIMER) {
        siginfo_t resent = *info;
        if (resent.si_code >= 0 && tid != pid)
            resent.si_code = SI_QUEUE;
        sent = syscall(SYS_rt_sigqueueinfo, pid, signal_number, &resent);
    }
    if (sent != 0)
        sent = syscall(SYS_rt_tgsigqueueinfo, pid, tid, signal_number, info);
    if (sent != 0)
        return false;
    /* Blocked in this thread when the handler returns. */
    sigaddset(&((ucontext_t *)context)->uc_sigmask, signal_number);
    return true;
}

/* A signal of the program's own on the sampling signal, pending (one
 * deferred), taken as a wait's answer; samples pending there are dropped.
 * Returns the signal number, or 0. */
static int take_deferred(siginfo_t *info)
{
    int signal_number = sprof_sampler.signal_number;
    sigset_t pending;
    if (sigpending(&pending) != 0 || sigismember(&pending, signal_number) != 1)
        return 0;
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, signal_number);
    const struct timespec now = {0, 0};
    siginfo_t got;
    while (real_sigtimedwait(&one, &got, &now) == signal_number) {
        if (!sprof_sampler_owns(&got)) {
            if (info)
                *info = got;
            return signal_number;
        }
    }
    return 0;
}

/* The program took a signal of its own on the sampling signal from a wait.
 * One that had been deferred left the real block on the signal in this
 * thread; with the program's signal taken, the block has served: reopen
 * it, or samples would pile up pending there and swallow the program's
 * next signal (a standard signal is pending once). */
static void reopen_after_taken(void)
{
    if (sampling_signal_virtual() && sampling_held == 0 && !in_sampling_handler &&
        !in_vfork_child())
        real_mask_one(SIG_UNBLOCK, sprof_sampler.signal_number);
}

/* The program's wait on set: a sample is never its answer, while a signal
 * of the program's own on the sampling signal is. The sampling signal stays
 * in the set, so that the program's own is the answer wherever it arrives
 * (left out, it ran sprof's handler instead, which passed it on, and the
 * wait ended with EINTR), and no sample interrupts the wait: one pending
 * is taken and passed over. Returns the signal number, or -1 and errno, as
 * sigtimedwait (sigwaitinfo without a timeout). */
static int wait_for(const sigset_t *set, siginfo_t *info, const struct timespec *timeout)
{
    if (!real_sigtimedwait || !real_sigwaitinfo)
        resolve_mask_functions();
    if (!real_sigtimedwait || !real_sigwaitinfo) {
        errno = ENOSYS;
        return -1;
    }
    int signal_number = sprof_sampler.signal_number;
    bool sampling = set && view_kept() && !in_vfork_child() &&
                    sigismember(set, signal_number) == 1;
    if (sampling) {
        int taken = take_deferred(info);
        if (taken) {
            reopen_after_taken();
            return taken;
        }
    }
    /* A sample passed over leaves the rest of the timeout (one the kernel
     * rejects is given to it as it is, for its EINVAL). */
    uint64_t deadline_ns = 0;
    if (timeout && timeout->tv_sec >= 0 && timeout->tv_nsec >= 0 &&
        timeout->tv_nsec < 1000000000L)
        deadline_ns = sprof_monotonic_ns() + (uint64_t)timeout->tv_sec * 1000000000u +
                      (uint64_t)timeout->tv_nsec;
    const struct timespec *wait = timeout;
    struct timespec left;
    for (;;) {
        siginfo_t got;
        int result = wait ? real_sigtimedwait(set, &got, wait) : real_sigwaitinfo(set, &got);
        if (sampling && result == signal_number && sprof_sampler_owns(&got)) {
            if (deadline_ns) {
                uint64_t now_ns = sprof_monotonic_ns();
                if (now_ns >= deadline_ns) {
                    errno = EAGAIN;
                    return -1;
                }
                left.tv_sec = (time_t)((deadline_ns - now_ns) / 1000000000u);
                left.tv_nsec = (long)((deadline_ns - now_ns) % 1000000000u);
                wait = &left;
            }
            continue;
        }
        if (sampling && result == signal_number)
            reopen_after_taken();
        if (result > 0 && info)
            *info = got;
        return result;
    }
}

SPROF_EXPORT int sigwait(const sigset_t *set, int *signal_number)
{
    int result;
    do
        result = wait_for(set, NULL, NULL);
    while (result < 0 && errno == EINTR);
    if (result < 0)
        return errno;
    *signal_number = result;
    return 0;
}

SPROF_EXPORT int sigwaitinfo(const sigset_t *set, siginfo_t *info)
{
    return wait_for(set, info, NULL);
}

SPROF_EXPORT int sigtimedwait(const sigset_t *set, siginfo_t *info,
                              const struct timespec *timeout)
{
    return wait_for(set, info, timeout);
}

/* A signalfd's set: without the sampling signal, unless it is all the set
 * holds (then the program waits for that signal itself). */
const sigset_t *sprof_signals_wait_set(const sigset_t *set, sigset_t *adjusted)
{
    int signal_number = sprof_sampler.signal_number;
    if (!set || !sampling_signal_virtual() || sigismember(set, signal_number) != 1)
        return set;
    *adjusted = *set;
    sigdelset(adjusted, signal_number);
    return sigisemptyset(adjusted) ? set : adjusted;
}

/* --- Waits with a mask of their own: sigsuspend, ppoll, pselect, epoll_pwait
 *
 * The mask given holds for the call only. Where it opens the sampling
 * signal that the view blocks, the program's own signal waiting there is
 * delivered (at its default action it ends the program); where it blocks
 * it, the real mask does too, as nothing is sampled in a wait. */

struct call_mask {
    sigset_t real;
    bool view_before;
    bool opened; /* the call's mask opened the signal the view blocked */
    bool kept;   /* the view was changed for the call */
};

static const sigset_t *call_mask_enter(const sigset_t *mask, struct call_mask *call)
{
    call->kept = false;
    if (!mask || !view_kept() || in_vfork_child())
        return mask;
    /* The program's own handler: the mask is the program's for real, and
     * the view follows it for the call, so that a signal the call opens
     * goes to that handler, not back to wait (sent again, it would open
     * the call again: a storm). */
    bool virtual = sampling_signal_virtual();
    if (!virtual && in_sampling_handler)
        return mask;
    int signal_number = sprof_sampler.signal_number;
    bool blocks = sigismember(mask, signal_number) == 1;
    call->view_before = sampling_blocked_in_view;
    call->opened = virtual && call->view_before && !blocks;
    call->kept = true;
    sampling_blocked_in_view = blocks;
    if (!virtual)
        return mask;
    call->real = *mask;
    if (blocks || sampling_held > 0 || in_sampling_handler)
        sigaddset(&call->real, signal_number);
    else
        sigdelset(&call->real, signal_number);
    return &call->real;
}

/* The view back as it was; a real block a deferred signal had left has
 * served where the call opened the signal (its signal was delivered). */
static void call_mask_leave(const struct call_mask *call)
{
    if (!call->kept)
        return;
    int saved_errno = errno;
    sampling_blocked_in_view = call->view_before;
    if (call->opened)
        reopen_after_taken();
    errno = saved_errno;
}

typedef int (*sigsuspend_fn)(const sigset_t *);
typedef int (*ppoll_fn)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
typedef int (*pselect_fn)(int, fd_set *, fd_set *, fd_set *, const struct timespec *,
                          const sigset_t *);
typedef int (*epoll_pwait_fn)(int, struct epoll_event *, int, int, const sigset_t *);
typedef int (*epoll_pwait2_fn)(int, struct epoll_event *, int, const struct timespec *,
                               const sigset_t *);
typedef int (*ppoll_chk_fn)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *,
                            size_t);

static sigsuspend_fn real_sigsuspend;
static ppoll_fn real_ppoll;
static pselect_fn real_pselect;
static epoll_pwait_fn real_epoll_pwait;
static epoll_pwait2_fn real_epoll_pwait2;
static ppoll_chk_fn real_ppoll_chk;

/* Resolved at start-up with the mask functions: dlsym is not safe in the
 * program's signal handlers, where these may be called. */
static void resolve_wait_functions(void)
{
    real_sigsuspend = (sigsuspend_fn)dlsym(RTLD_NEXT, "sigsuspend");
    real_ppoll = (ppoll_fn)dlsym(RTLD_NEXT, "ppoll");
    real_pselect = (pselect_fn)dlsym(RTLD_NEXT, "pselect");
    real_epoll_pwait = (epoll_pwait_fn)dlsym(RTLD_NEXT, "epoll_pwait");
    real_epoll_pwait2 = (epoll_pwait2_fn)dlsym(RTLD_NEXT, "epoll_pwait2");
    real_ppoll_chk = (ppoll_chk_fn)dlsym(RTLD_NEXT, "__ppoll_chk");
}

#define CALL_WITH_MASK(real, mask, ...)                              \
    do {                                                             \
        if (!real)                                                   \
            resolve_wait_functions();                                \
        if (!real) {                                                 \
            errno = ENOSYS;                                          \
            return -1;                                               \
        }                                                            \
        struct call_mask call;                                       \
        const sigset_t *passed = call_mask_enter(mask, &call);       \
        int result = real(__VA_ARGS__);                              \
        call_mask_leave(&call);                                      \
        return result;                                               \
    } while (0)

SPROF_EXPORT int sigsuspend(const sigset_t *mask)
{
    CALL_WITH_MASK(real_sigsuspend, mask, passed);
}

SPROF_EXPORT int ppoll(struct pollfd *fds, nfds_t count, const struct timespec *timeout,
                       const sigset_t *mask)
{
    CALL_WITH_MASK(real_ppoll, mask, fds, count, timeout, passed);
}

SPROF_EXPORT int pselect(int count, fd_set *read_set, fd_set *write_set, fd_set *error_set,
                         const struct timespec *timeout, const sigset_t *mask)
{
    CALL_WITH_MASK(real_pselect, mask, count, read_set, write_set, error_set, timeout, passed);
}

SPROF_EXPORT int epoll_pwait(int epoll_fd, struct epoll_event *events, int max_events,
                             int timeout, const sigset_t *mask)
{
    CALL_WITH_MASK(real_epoll_pwait, mask, epoll_fd, events, max_events, timeout, passed);
}

SPROF_EXPORT int epoll_pwait2(int epoll_fd, struct epoll_event *events, int max_events,
                              const struct timespec *timeout, const sigset_t *mask)
{
    CALL_WITH_MASK(real_epoll_pwait2, mask, epoll_fd, events, max_events, timeout, passed);
}

/* ppoll of programs built with _FORTIFY_SOURCE: the size check is glibc's. */
int __ppoll_chk(struct pollfd *fds, nfds_t count, const struct timespec *timeout,
                const sigset_t *mask, size_t fds_size);
SPROF_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t count, const struct timespec *timeout,
                             const sigset_t *mask, size_t fds_size)
{
    if (fds_size / sizeof *fds < count) {
        if (!real_ppoll_chk)
            resolve_wait_functions();
        if (real_ppoll_chk)
            return real_ppoll_chk(fds, count, timeout, mask, fds_size);
        abort();
    }
    return ppoll(fds, count, timeout, mask);
}

void sprof_signals_thread_start(bool creator_blocked)
{
    int signal_number = sprof_sampler.signal_number;
    sigset_t current, pending;
    bool really_blocked = signal_number > 0 && real_mask(SIG_BLOCK, NULL, &current) == 0 &&
                          sigismember(&current, signal_number) == 1;
    if (view_kept())
        sampling_blocked_in_view = creator_blocked || really_blocked;
    const struct sigaction *theirs = &sprof_sampler.previous;
    if (!really_blocked || is_handler(theirs))
        return;
    /* Programs (liblzma among them) block every signal around
     * pthread_create, so a new thread would start with ours blocked and
     * never be sampled: unblock it alone, unless the program handles that
     * signal itself. One pending from before (a signal no sample sent)
     * would now be delivered and, at its default action, kill: then it
     * stays blocked. */
    if (view_kept() && sigpending(&pending) == 0 && sigismember(&pending, signal_number) == 1)
        return;
    real_mask_one(SIG_UNBLOCK, signal_number);
}

bool sprof_signals_sampling_blocked_in_view(void)
{
    return view_kept() && sampling_blocked_in_view;
}

/* A sampling signal the program ignores: ignored for real in the new image,
 * which inherits SIG_IGN where sprof's handler would be reset to SIG_DFL
 * (a shell's `trap '' PROF` reaches the commands it runs). Not where the
 * real disposition is no longer sprof's (a vfork child set its own). */
static void ignore_for_new_image(struct sprof_exec_signals *saved)
{
    saved->sampling_ignored = false;
    int signal_number = sprof_sampler.signal_number;
    struct sigaction current;
    if (signal_number <= 0 || sprof_sampler.previous.sa_handler != SIG_IGN ||
        sprof_real_sigaction(signal_number, NULL, &current) != 0 ||
        !(current.sa_flags & SA_SIGINFO) || current.sa_sigaction != sprof_sampler_on_signal)
        return;
    struct sigaction ignore;
    memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    if (sprof_real_sigaction(signal_number, &ignore, &saved->sampling) == 0)
        saved->sampling_ignored = true;
}

void sprof_signals_before_exec(struct sprof_exec_signals *saved)
{
    sigset_t none;
    sigemptyset(&none);
    real_mask(SIG_BLOCK, &none, &saved->mask);
    ignore_for_new_image(saved);
    if (!view_kept() || sampling_held > 0 ||
        (in_vfork_child() && atomic_load(&vfork_child_set_mask) == getpid()))
        return;
    /* The new image inherits the mask the program set. */
    real_mask_one(sampling_blocked_in_view ? SIG_BLOCK : SIG_UNBLOCK, sprof_sampler.signal_number);
}

void sprof_signals_after_failed_exec(const struct sprof_exec_signals *saved)
{
    int saved_errno = errno;
    if (saved->sampling_ignored)
        sprof_real_sigaction(sprof_sampler.signal_number, &saved->sampling, NULL);
    real_mask(SIG_SETMASK, &saved->mask, NULL);
    errno = saved_errno;
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
