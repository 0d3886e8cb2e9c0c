/* ASYNC-SIGNAL-SAFE CODE ONLY.
 *
 * This file holds the sampling signal handler and everything it calls. It
 * runs at any instruction of the host program, including inside malloc,
 * inside the dynamic loader and inside locks. So it may call only:
 *   - async-signal-safe system calls: read, write, getpid, sigaction, raise;
 *   - libunwind's local unwinding (unw_backtrace, unw_init_local2, unw_step,
 *     unw_get_reg), which allocates nothing once warmed up;
 *   - lock-free atomics on the thread's own ring.
 * Never malloc, stdio, locks, libdw, or anything that may take the loader
 * lock for the first time. errno is saved and restored. Debug output, if
 * ever needed here, goes through write(2). */
#include "sample_handler.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "sprof/trace_format.h"

struct sprof_sampler_config sprof_sampler = {.wake_fd = -1};

/* Frames that may precede the interrupted one in unw_backtrace's output:
 * this handler, libunwind's own, and the kernel's signal trampoline. */
#define HANDLER_FRAMES_MAX 32

static uint64_t interrupted_pc(const ucontext_t *uc)
{
#if defined(__x86_64__)
    return (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uint64_t)uc->uc_mcontext.pc;
#else
#error "sprof: add the program counter of ucontext_t for this architecture"
#endif
}

/* The slow path: a cursor started from the signal's context. Used when the
 * cached fast path did not reach the interrupted frame. */
static uint32_t unwind_with_cursor(ucontext_t *uc, uint64_t *pcs, uint32_t max_depth,
                                   bool *truncated)
{
    unw_cursor_t cursor;
    uint32_t depth = 0;
    if (unw_init_local2(&cursor, (unw_context_t *)uc, UNW_INIT_SIGNAL_FRAME) < 0)
        return 0;
    int more;
    do {
        unw_word_t ip;
        if (unw_get_reg(&cursor, UNW_REG_IP, &ip) < 0 || ip == 0)
            break;
        pcs[depth++] = ip;
        more = unw_step(&cursor) > 0;
    } while (more && depth < max_depth);
    *truncated = depth == max_depth && unw_step(&cursor) > 0;
    return depth;
}

/* Fills pcs leaf first; entries after the leaf are return addresses minus
 * one. Returns the depth, 0 if nothing could be unwound. */
static uint32_t capture_stack(ucontext_t *uc, uint64_t *pcs, uint32_t max_depth, bool *truncated)
{
    void *frames[SPROF_STACK_MAX_DEPTH + HANDLER_FRAMES_MAX + 1];
    int wanted = (int)max_depth + HANDLER_FRAMES_MAX + 1;
    int count = unw_backtrace(frames, wanted);
    uint64_t pc = interrupted_pc(uc);
    int start = -1;
    for (int i = 0; i < count && i < HANDLER_FRAMES_MAX; i++) {
        if ((uint64_t)(uintptr_t)frames[i] == pc) {
            start = i;
            break;
        }
    }
    uint32_t depth;
    *truncated = false;
    if (start >= 0) {
        uint32_t available = (uint32_t)(count - start);
        depth = available > max_depth ? max_depth : available;
        *truncated = available > max_depth;
        for (uint32_t i = 0; i < depth; i++)
            pcs[i] = (uint64_t)(uintptr_t)frames[start + (int)i];
    } else {
        depth = unwind_with_cursor(uc, pcs, max_depth, truncated);
        if (depth == 0) {
            pcs[0] = pc;
            depth = 1;
        }
    }
    for (uint32_t i = 1; i < depth; i++) {
        if (pcs[i] != 0)
            pcs[i] -= 1;
    }
    return depth;
}

/* The CPU time this sample stands for. */
static uint64_t sample_weight(struct sprof_thread *t, const siginfo_t *info)
{
    uint64_t period = sprof_sampler.period_ns;
    if (t->perf_fd >= 0 && sprof_sampler.counter_weights) {
        /* The counter's own reading: exact even when signals merged. */
        uint64_t count;
        if (read(t->perf_fd, &count, sizeof count) == (ssize_t)sizeof count &&
            count > t->last_count) {
            uint64_t weight = count - t->last_count;
            t->last_count = count;
            return weight;
        }
        return period;
    }
    if (t->perf_fd >= 0)
        return period;
    /* CPU-time timers fire on the tick; overrun counts the periods skipped. */
    uint64_t overrun = info->si_overrun > 0 ? (uint64_t)info->si_overrun : 0;
    return period * (1 + overrun);
}

static void wake_writer(struct sprof_thread *t)
{
    if (sprof_sampler.wake_fd < 0 || atomic_exchange_explicit(&t->kicked, 1, memory_order_relaxed))
        return;
    uint64_t one = 1;
    ssize_t ignored = write(sprof_sampler.wake_fd, &one, sizeof one);
    (void)ignored;
}

static void ring_push(struct sprof_thread *t, uint64_t weight, const uint64_t *pcs,
                      uint32_t depth, bool truncated)
{
    uint64_t needed = 2 + depth;
    uint64_t head = atomic_load_explicit(&t->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&t->tail, memory_order_acquire);
    uint64_t used = head - tail;
    if (t->ring_words - used < needed) {
        atomic_fetch_add_explicit(&t->lost, 1, memory_order_relaxed);
        wake_writer(t);
        return;
    }
    uint64_t mask = t->ring_words - 1;
    uint64_t flags = truncated ? SPROF_STACK_TRUNCATED : 0;
    t->ring[head & mask] = depth | flags << 16 | (uint64_t)SPROF_RING_MAGIC << 32;
    t->ring[(head + 1) & mask] = weight;
    for (uint32_t i = 0; i < depth; i++)
        t->ring[(head + 2 + i) & mask] = pcs[i];
    atomic_store_explicit(&t->head, head + needed, memory_order_release);
    if ((used + needed) * 2 > t->ring_words)
        wake_writer(t);
}

static void take_sample(struct sprof_thread *t, const siginfo_t *info, ucontext_t *uc)
{
    uint64_t weight = sample_weight(t, info);
    uint64_t pcs[SPROF_STACK_MAX_DEPTH];
    bool truncated;
    uint32_t depth = capture_stack(uc, pcs, sprof_sampler.max_depth, &truncated);
    ring_push(t, weight, pcs, depth, truncated);
    atomic_fetch_add_explicit(&t->samples, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->weight_ns, weight, memory_order_relaxed);
    if (truncated)
        atomic_fetch_add_explicit(&t->truncated, 1, memory_order_relaxed);
}

/* Recognises our signals from siginfo alone, so that one still pending when
 * a thread's timer was stopped is swallowed, not forwarded. perf_event
 * signals carry a POLL_* code; our POSIX timers carry &sprof_sampler. */
static bool signal_is_ours(const struct sprof_thread *t, const siginfo_t *info)
{
    if (t && t->warming_up && info->si_code == SI_TKILL && info->si_pid == getpid())
        return true;
    if (info->si_code == SI_TIMER)
        return info->si_value.sival_ptr == (void *)&sprof_sampler;
    return info->si_code >= POLL_IN && info->si_code <= POLL_HUP;
}

/* A sample is taken only for the thread's own live timer. */
static bool signal_is_sample(const struct sprof_thread *t, const siginfo_t *info)
{
    if (t->perf_fd >= 0)
        return info->si_code != SI_TIMER && info->si_fd == t->perf_fd;
    return t->has_timer && info->si_code == SI_TIMER;
}

/* A signal that is not a sample goes where it would have gone without us. */
static void forward(int signal_number, siginfo_t *info, void *context)
{
    const struct sigaction *previous = &sprof_sampler.previous;
    if (previous->sa_flags & SA_SIGINFO) {
        if (previous->sa_sigaction)
            previous->sa_sigaction(signal_number, info, context);
        return;
    }
    if (previous->sa_handler == SIG_IGN)
        return;
    if (previous->sa_handler == SIG_DFL) {
        /* Other than a sample, this signal kills by default: let it. */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigaction(signal_number, &dfl, NULL);
        raise(signal_number);
        return;
    }
    previous->sa_handler(signal_number);
}

void sprof_sampler_on_signal(int signal_number, siginfo_t *info, void *context)
{
    int saved_errno = errno;
    struct sprof_thread *t = sprof_current_thread;
    if (!signal_is_ours(t, info)) {
        forward(signal_number, info, context);
    } else if (!t) {
        /* A late signal of a stopped timer, or a thread we do not sample. */
    } else if (t->in_handler) {
        atomic_fetch_add_explicit(&t->lost, 1, memory_order_relaxed);
    } else {
        t->in_handler = 1;
        if (t->warming_up) {
            uint64_t pcs[SPROF_STACK_MAX_DEPTH];
            bool truncated;
            capture_stack(context, pcs, sprof_sampler.max_depth, &truncated);
            t->warming_up = false;
        } else if (signal_is_sample(t, info)) {
            take_sample(t, info, context);
        }
        t->in_handler = 0;
    }
    errno = saved_errno;
}

/* Below: start-up only, not called from the handler. */

int sprof_sampler_install(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = sprof_sampler_on_signal;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&action.sa_mask);
    if (sigaction(sprof_sampler.signal_number, &action, &sprof_sampler.previous) != 0)
        return errno;
    return 0;
}

void sprof_sampler_warm_up(struct sprof_thread *t)
{
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, sprof_sampler.signal_number);
    pthread_sigmask(SIG_UNBLOCK, &set, &old);
    t->warming_up = true;
    raise(sprof_sampler.signal_number);
    t->warming_up = false;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}
