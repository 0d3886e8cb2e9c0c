/* Signals the program could die of, and its view of signal dispositions.
 *
 * Where a program leaves a terminating signal at its default action, sprof
 * catches it to write the samples out first, then dies of the same signal
 * with the same default action (and core dump). The program never sees
 * this: the interposed sigaction and signal report, and store, the
 * disposition it set, and a handler it installs replaces sprof's. */
#ifndef SPROF_SIGNALS_H
#define SPROF_SIGNALS_H

#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <ucontext.h>

/* The real sigaction (found with dlsym at start-up). Async-signal-safe. */
int sprof_real_sigaction(int signal_number, const struct sigaction *action,
                         struct sigaction *old);

/* Resolves the real functions. Not signal-safe: call first, at start-up. */
void sprof_signals_init(void);

/* Installs the exit-path handlers on the terminating signals the program
 * leaves at their default action. Not signal-safe; call at start-up. */
void sprof_signals_guard_fatal(void);
/* Gives the guarded signals back to the program's dispositions (before a
 * sandbox, where the guard's exit path could not run). */
void sprof_signals_unguard_fatal(void);
/* Inside the unwinding window: a SIGSEGV or SIGBUS that the guard catches
 * (the program left it at its default action) jumps to escape instead of
 * ending the process; NULL to stop. Async-signal-safe. */
void sprof_signals_unwind_escape(sigjmp_buf *escape);
/* While the exit names addresses: a SIGSEGV or SIGBUS inside (libdw does
 * not check every allocation), or sprof_signals_naming_failed (libdw out of
 * memory), jumps to escape instead of ending the process; NULL to stop. */
void sprof_signals_naming_escape(sigjmp_buf *escape);
__attribute__((noreturn)) void sprof_signals_naming_failed(void);

/* The sampling signal in the program's masks (signals.c), with
 * SPROF_UNBLOCK=1: while the program has no handler of its own for it,
 * blocking it is kept to the program's view, and waits on sets leave it
 * out. */
/* Blocks the sampling signal for real (nests), around code that must not
 * be sampled: the loader's locks. Async-signal-safe. */
void sprof_signals_hold_sampling(sigset_t *saved);
void sprof_signals_release_sampling(const sigset_t *saved);
/* Around the sampling handler, where the kernel blocks the signal: a mask
 * the program sets meanwhile (in a handler of its own that interrupts
 * ours) leaves it blocked. Async-signal-safe. */
void sprof_signals_handler_enter(void);
void sprof_signals_handler_leave(void);
/* A signal of the program's on the sampling signal (not a sample) that
 * reaches a thread whose view blocks it: sent again with the same siginfo
 * (rt_sigqueueinfo, to the process where it can be, else to this thread)
 * and left blocked in this thread when the handler returns (context's
 * mask), so that it waits, as it would have, until the program unblocks it
 * or takes it with sigwait. Returns false where it is not to be deferred.
 * Async-signal-safe. */
bool sprof_signals_defer(int signal_number, const siginfo_t *info, void *context);
/* A new thread (or the first): its view of the signal is its creator's,
 * or blocked if its real mask blocks it; the real mask then lets it in. */
void sprof_signals_thread_start(bool creator_blocked);
/* Whether the calling thread's program view has the signal blocked. */
bool sprof_signals_sampling_blocked_in_view(void);
/* The same set without the sampling signal where a wait must leave it out
 * (adjusted is the storage); for signalfd. */
const sigset_t *sprof_signals_wait_set(const sigset_t *set, sigset_t *adjusted);
/* Around exec and posix_spawn: the new image gets the mask the program
 * set, and the sampling signal ignored if the program ignores it. After a
 * failed exec, or a spawn, all is as before; errno is kept. */
struct sprof_exec_signals {
    sigset_t mask;
    struct sigaction sampling; /* the real action replaced by SIG_IGN */
    bool sampling_ignored;
};
void sprof_signals_before_exec(struct sprof_exec_signals *saved);
void sprof_signals_after_failed_exec(const struct sprof_exec_signals *saved);

/* The unwinding window, around each unwind in the sampling handler. Both
 * async-signal-safe. Inside it every signal is blocked but the synchronous
 * faults (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS: a fault while
 * unwinding still reaches sprof's exit path): the sampling handler is
 * installed with that mask as its sa_mask (sprof_signals_window_mask), so
 * the kernel blocks them as it enters the handler and restores the mask
 * as it leaves, with no system call of sprof's; begin and end only mark
 * the window. Inside it libunwind's own calls that block every signal
 * around its locks (rt_sigprocmask twice per lock; 24 per sample on gcc's
 * cc1) change nothing, and the interposed sigprocmask answers them
 * without a system call. */
void sprof_signals_window_mask(sigset_t *mask);
void sprof_signals_unwind_begin(void);
void sprof_signals_unwind_end(void);
/* After a fault inside the window, escaped from: the kernel blocked the
 * fault's signal for a handler that never returned. Unblocks SIGSEGV and
 * SIGBUS again where the interrupted code (uc) had them open, so that a
 * later fault in the same sample still reaches a handler. Rare: one system
 * call. */
void sprof_signals_unwind_escaped(const ucontext_t *uc);
/* Before a program's handler is called from the sampling handler: the
 * mask the kernel would have given it (the interrupted mask, its sa_mask,
 * and the signal unless SA_NODEFER), not the sampling handler's.
 * Async-signal-safe. */
void sprof_signals_mask_as_kernel_would(int signal_number, const ucontext_t *uc,
                                        const struct sigaction *theirs);
/* Whether this thread is inside the window: a descriptor call made now is
 * libunwind's, not the program's. Async-signal-safe. */
bool sprof_signals_in_unwind_window(void);

#endif
