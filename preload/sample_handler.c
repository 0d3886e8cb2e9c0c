/* ASYNC-SIGNAL-SAFE CODE ONLY.
 *
 * This file holds the sampling signal handler and everything it calls: the
 * unwinding, the per-thread stack table and sample batches, and the writes
 * to the trace. It runs at any instruction of the host program, inside
 * malloc, inside the dynamic loader, inside locks. So it may call only:
 *   - async-signal-safe system calls: read, write, open, close, fstat,
 *     fcntl, clock_gettime, getpid, sigaction, sigaltstack, raise;
 *   - libunwind's local unwinding (unw_backtrace, unw_init_local2,
 *     unw_step, unw_get_reg), which allocates nothing once warmed up;
 *   - lock-free atomics.
 * Never malloc, stdio, locks, libdw, or anything that may take the loader
 * lock for the first time; no waiting on another thread. errno is saved and
 * restored. Debug output, if ever needed here, goes through write(2). */
#include "sample_handler.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "signals.h"
#include "sprof/trace_format.h"

struct sprof_sampler_config sprof_sampler = {.trace_fd = -1};
struct sprof_thread *_Atomic sprof_threads;
_Atomic uint32_t sprof_next_stack_id;
_Atomic uint64_t sprof_lost_samples;
_Atomic uint64_t sprof_truncated_stacks;
_Atomic uint64_t sprof_total_samples;
_Atomic uint64_t sprof_total_weight_ns;
_Atomic uint64_t sprof_write_failures;
static _Atomic uint64_t last_sweep_ns;

/* Frames that may precede the interrupted one in unw_backtrace's output:
 * this handler, libunwind's own, and the kernel's signal trampoline. */
#define HANDLER_FRAMES_MAX 32
/* Stack this handler needs, with a margin: measured at about 5.5 KB
 * (libunwind's context and cursor, our frames; the address buffers live in
 * the thread's state, not here), by the high-water mark of a program's
 * alternate stack (test/e2e/programs/altstack.c). */
#define HANDLER_STACK_NEEDED (8 * 1024)
/* A reopened trace descriptor is moved at least this high, out of the way
 * of programs that expect the lowest free numbers. */
#define HIGH_FD 512

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --- The trace file ------------------------------------------------------ */

static bool is_trace_file(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_dev == sprof_sampler.trace_dev &&
           st.st_ino == sprof_sampler.trace_ino;
}

/* Our descriptor, checked: a daemon may have closed it, or put another
 * file at its number. Then the trace is reopened by path (never creating or
 * following a link), at a high number. Returns -1 if that fails. */
static int trace_fd(void)
{
    int fd = atomic_load_explicit(&sprof_sampler.trace_fd, memory_order_acquire);
    if (fd < 0 || is_trace_file(fd))
        return fd;
    int reopened = open(sprof_sampler.trace_path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
    if (reopened < 0)
        return -1;
    if (!is_trace_file(reopened)) {
        close(reopened);
        return -1;
    }
    int high = fcntl(reopened, F_DUPFD_CLOEXEC, HIGH_FD);
    if (high >= 0) {
        close(reopened);
        reopened = high;
    }
    /* Another thread may have reopened it first: then use theirs. */
    if (!atomic_compare_exchange_strong(&sprof_sampler.trace_fd, &fd, reopened)) {
        close(reopened);
        return fd;
    }
    return reopened;
}

bool sprof_trace_append(const void *bytes, size_t size)
{
    int fd = trace_fd();
    const uint8_t *at = bytes;
    while (fd >= 0 && size > 0) {
        ssize_t n = write(fd, at, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        at += n;
        size -= (size_t)n;
    }
    if (size > 0) {
        atomic_fetch_add_explicit(&sprof_write_failures, 1, memory_order_relaxed);
        return false;
    }
    return true;
}

/* --- Record encoding into a thread's buffer ------------------------------ */

static void put_le(uint8_t *at, uint64_t value, int bytes)
{
    for (int i = 0; i < bytes; i++)
        at[i] = (uint8_t)(value >> (8 * i));
}

static uint8_t *begin_record(struct sprof_thread *t, uint32_t type, uint32_t payload)
{
    uint8_t *at = t->out + t->out_used;
    put_le(at, type, 4);
    put_le(at + 4, payload, 4);
    t->out_used += 8 + payload;
    return at + 8;
}

static void write_out(struct sprof_thread *t)
{
    if (t->out_used > 0)
        sprof_trace_append(t->out, t->out_used);
    t->out_used = 0;
}

static void ensure_room(struct sprof_thread *t, uint32_t bytes)
{
    if (t->out_size - t->out_used < bytes)
        write_out(t);
}

void sprof_thread_flush(struct sprof_thread *t)
{
    if (t->pending_count > 0) {
        uint32_t payload = 8 + 16 * t->pending_count;
        ensure_room(t, 8 + payload);
        uint8_t *at = begin_record(t, SPROF_REC_SAMPLES, payload);
        put_le(at, (uint32_t)t->tid, 4);
        put_le(at + 4, t->pending_count, 4);
        at += 8;
        for (uint32_t i = 0; i < t->pending_count; i++, at += 16) {
            struct sprof_stack_slot *slot = &t->slots[t->pending[i]];
            put_le(at, slot->stack_id, 4);
            put_le(at + 4, slot->pending_samples, 4);
            put_le(at + 8, slot->pending_weight_ns, 8);
            slot->pending_samples = 0;
            slot->pending_weight_ns = 0;
        }
        t->pending_count = 0;
    }
    write_out(t);
    t->last_flush_ns = now_ns();
}

void sprof_thread_reset_buffers(struct sprof_thread *t)
{
    for (uint32_t i = 0; i < t->slot_count; i++)
        t->slots[i].hash = 0;
    t->slots_used = 0;
    t->arena_used = 0;
    t->pending_count = 0;
    t->out_used = 0;
}

void sprof_thread_write_record(struct sprof_thread *t, uint64_t cpu_ns, const char *name)
{
    uint32_t name_length = 0;
    while (name && name[name_length] && name_length < 64)
        name_length++;
    uint32_t payload = 32 + 4 + name_length;
    ensure_room(t, 8 + payload);
    uint8_t *at = begin_record(t, SPROF_REC_THREAD, payload);
    put_le(at, (uint32_t)t->tid, 4);
    put_le(at + 4, 0, 4);
    put_le(at + 8, cpu_ns, 8);
    put_le(at + 16, atomic_load(&t->samples), 8);
    put_le(at + 24, atomic_load(&t->weight_ns), 8);
    put_le(at + 32, name_length, 4);
    for (uint32_t i = 0; i < name_length; i++)
        at[36 + i] = (uint8_t)name[i];
    write_out(t);
}

bool sprof_trace_append_summary(const struct sprof_summary_values *v)
{
    uint8_t record[8 + 80];
    put_le(record, SPROF_REC_SUMMARY, 4);
    put_le(record + 4, 80, 4);
    const uint64_t fields[] = {v->wall_ns,     v->user_ns,    v->system_ns,
                               0 /* no profiler thread: its cost is in the program's */,
                               v->max_rss_kb,  atomic_load(&sprof_total_samples),
                               atomic_load(&sprof_total_weight_ns),
                               atomic_load(&sprof_lost_samples),
                               atomic_load(&sprof_truncated_stacks)};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        put_le(record + 8 + 8 * i, fields[i], 8);
    put_le(record + 8 + 72, v->threads, 4);
    put_le(record + 8 + 76, 0, 4);
    return sprof_trace_append(record, sizeof record);
}

bool sprof_trace_append_end(void)
{
    uint8_t record[8];
    put_le(record, SPROF_REC_END, 4);
    put_le(record + 4, 0, 4);
    return sprof_trace_append(record, sizeof record);
}

/* --- The stack table ----------------------------------------------------- */

static uint64_t hash_stack(const uint64_t *pcs, uint32_t depth, uint16_t flags)
{
    uint64_t hash = 0x9e3779b97f4a7c15ULL ^ depth ^ ((uint64_t)flags << 32);
    for (uint32_t i = 0; i < depth; i++) {
        hash ^= pcs[i];
        hash *= 0xff51afd7ed558ccdULL;
        hash ^= hash >> 32;
    }
    return hash | 1; /* 0 marks an empty slot */
}

static bool same_stack(const struct sprof_thread *t, const struct sprof_stack_slot *slot,
                       const uint64_t *pcs, uint32_t depth, uint16_t flags)
{
    if (slot->depth != depth || slot->flags != flags)
        return false;
    const uint64_t *stored = t->arena + slot->offset;
    for (uint32_t i = 0; i < depth; i++) {
        if (stored[i] != pcs[i])
            return false;
    }
    return true;
}

/* The slot for this stack, defining it (a STACK record) if new. */
static struct sprof_stack_slot *find_or_add_stack(struct sprof_thread *t, const uint64_t *pcs,
                                                  uint32_t depth, uint16_t flags)
{
    uint64_t hash = hash_stack(pcs, depth, flags);
    uint32_t mask = t->slot_count - 1;
    uint32_t at = (uint32_t)hash & mask;
    for (; t->slots[at].hash; at = (at + 1) & mask) {
        if (t->slots[at].hash == hash && same_stack(t, &t->slots[at], pcs, depth, flags))
            return &t->slots[at];
    }
    if ((t->slots_used + 1) * 2 > t->slot_count || t->arena_words - t->arena_used < depth) {
        /* Full: write everything out and start a fresh table. The stack ids
         * already written stay valid; a stack seen again is defined again. */
        sprof_thread_flush(t);
        sprof_thread_reset_buffers(t);
        at = (uint32_t)hash & mask;
    }
    struct sprof_stack_slot *slot = &t->slots[at];
    slot->hash = hash;
    slot->stack_id = atomic_fetch_add_explicit(&sprof_next_stack_id, 1, memory_order_relaxed);
    slot->offset = t->arena_used;
    slot->depth = (uint16_t)depth;
    slot->flags = flags;
    slot->pending_samples = 0;
    slot->pending_weight_ns = 0;
    for (uint32_t i = 0; i < depth; i++)
        t->arena[t->arena_used + i] = pcs[i];
    t->arena_used += depth;
    t->slots_used++;

    uint32_t payload = 8 + 8 * depth;
    ensure_room(t, 8 + payload);
    uint8_t *out = begin_record(t, SPROF_REC_STACK, payload);
    put_le(out, slot->stack_id, 4);
    put_le(out + 4, depth, 2);
    put_le(out + 6, flags, 2);
    for (uint32_t i = 0; i < depth; i++)
        put_le(out + 8 + 8 * i, pcs[i], 8);
    return slot;
}

/* --- Unwinding ----------------------------------------------------------- */

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
    *truncated = depth == max_depth && more && unw_step(&cursor) > 0;
    return depth;
}

/* Fills pcs leaf first; entries after the leaf are return addresses minus
 * one. Returns the depth (at least 1). */
static uint32_t capture_stack(struct sprof_thread *t, ucontext_t *uc, uint64_t *pcs,
                              uint32_t max_depth, bool *truncated)
{
    void **frames = t->scratch_frames;
    int wanted = (int)max_depth + HANDLER_FRAMES_MAX + 1;
    /* libunwind blocks all signals around each of its locks, with two
     * system calls each time, several times per frame it has not cached:
     * block them once for the whole unwind instead (signals.h). */
    sigset_t saved_mask;
    sprof_signals_unwind_begin(&saved_mask);
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
    sprof_signals_unwind_end(&saved_mask);
    for (uint32_t i = 1; i < depth; i++) {
        if (pcs[i] != 0)
            pcs[i] -= 1;
    }
    return depth;
}

/* --- The handler --------------------------------------------------------- */

/* The CPU time this sample stands for. */
static uint64_t sample_weight(struct sprof_thread *t, const siginfo_t *info)
{
    uint64_t period = sprof_sampler.period_ns;
    if (t->perf_fd >= 0) {
        uint64_t count;
        if (sprof_sampler.counter_weights &&
            read(t->perf_fd, &count, sizeof count) == (ssize_t)sizeof count &&
            count > t->last_count) {
            /* The counter's own reading: exact even when signals merged. */
            uint64_t weight = count - t->last_count;
            t->last_count = count;
            return weight;
        }
        return period;
    }
    /* CPU-time timers fire on the tick; overrun counts the periods skipped. */
    uint64_t overrun = info->si_overrun > 0 ? (uint64_t)info->si_overrun : 0;
    return period * (1 + overrun);
}

/* Writes out, from time to time, the samples of threads that have stopped
 * running (blocked, sleeping), so a killed program loses little. */
static void sweep_idle_threads(struct sprof_thread *self, uint64_t now)
{
    uint64_t last = atomic_load_explicit(&last_sweep_ns, memory_order_relaxed);
    if (now - last < sprof_sampler.flush_interval_ns ||
        !atomic_compare_exchange_strong(&last_sweep_ns, &last, now))
        return;
    for (struct sprof_thread *t = atomic_load(&sprof_threads); t; t = t->next) {
        if (t == self || atomic_load(&t->state) != SPROF_STATE_ACTIVE)
            continue;
        int idle = SPROF_IDLE;
        if (!atomic_compare_exchange_strong(&t->busy, &idle, SPROF_BUSY_FLUSHER))
            continue;
        if ((t->pending_count > 0 || t->out_used > 0) &&
            now - t->last_flush_ns >= sprof_sampler.flush_interval_ns)
            sprof_thread_flush(t);
        atomic_store_explicit(&t->busy, SPROF_IDLE, memory_order_release);
    }
}

/* noinline: keeps the handler's own frame small, so that the stack check
 * runs before any large frame is pushed. */
__attribute__((noinline)) static void take_sample(struct sprof_thread *t, const siginfo_t *info,
                                                  ucontext_t *uc)
{
    uint64_t weight = sample_weight(t, info);
    uint64_t *pcs = t->scratch_pcs;
    bool truncated;
    uint32_t depth = capture_stack(t, uc, pcs, sprof_sampler.max_depth, &truncated);

    int idle = SPROF_IDLE;
    if (!atomic_compare_exchange_strong(&t->busy, &idle, SPROF_BUSY_HANDLER)) {
        /* Being written out by another thread right now: never wait here. */
        atomic_fetch_add_explicit(&sprof_lost_samples, 1, memory_order_relaxed);
        return;
    }
    struct sprof_stack_slot *slot =
        find_or_add_stack(t, pcs, depth, truncated ? SPROF_STACK_TRUNCATED : 0);
    if (slot->pending_samples == 0)
        t->pending[t->pending_count++] = (uint32_t)(slot - t->slots);
    slot->pending_samples++;
    slot->pending_weight_ns += weight;
    uint64_t now = now_ns();
    if (now - t->last_flush_ns >= sprof_sampler.flush_interval_ns)
        sprof_thread_flush(t);
    atomic_store_explicit(&t->busy, SPROF_IDLE, memory_order_release);

    atomic_fetch_add_explicit(&t->samples, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->weight_ns, weight, memory_order_relaxed);
    atomic_fetch_add_explicit(&sprof_total_samples, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sprof_total_weight_ns, weight, memory_order_relaxed);
    if (truncated)
        atomic_fetch_add_explicit(&sprof_truncated_stacks, 1, memory_order_relaxed);
    sweep_idle_threads(t, now);
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
        return info->si_code != SI_TIMER && info->si_fd == t->perf_signal_fd;
    return t->has_timer && info->si_code == SI_TIMER;
}

/* A signal that is not a sample goes where it would have gone without us. */
__attribute__((noinline)) static void forward(int signal_number, siginfo_t *info,
                                              void *context)
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
        sprof_real_sigaction(signal_number, &dfl, NULL);
        raise(signal_number);
        return;
    }
    previous->sa_handler(signal_number);
}

__attribute__((noinline)) static void warm_up_unwinder(struct sprof_thread *t, ucontext_t *uc)
{
    bool truncated;
    capture_stack(t, uc, t->scratch_pcs, sprof_sampler.max_depth, &truncated);
    t->warming_up = false;
}

/* Whether this handler runs on an alternate signal stack with too little
 * room to unwind: programs give their own handlers small alternate stacks
 * (CPython's faulthandler, 16 KB), and our signal can arrive while one of
 * those runs. A system call only when off the thread's usual stack. */
static bool short_of_stack(const struct sprof_thread *t)
{
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    if (here >= t->stack_low && here < t->stack_high)
        return false;
    stack_t alternate;
    return sigaltstack(NULL, &alternate) == 0 && (alternate.ss_flags & SS_ONSTACK) &&
           here - (uintptr_t)alternate.ss_sp < HANDLER_STACK_NEEDED;
}

void sprof_sampler_on_signal(int signal_number, siginfo_t *info, void *context)
{
    int saved_errno = errno;
    struct sprof_thread *t = sprof_current_thread;
    if (!signal_is_ours(t, info)) {
        forward(signal_number, info, context);
    } else if (!t) {
        /* A late signal of a stopped timer, or a thread we do not sample. */
    } else if (short_of_stack(t)) {
        atomic_fetch_add_explicit(&sprof_lost_samples, 1, memory_order_relaxed);
    } else if (t->warming_up) {
        warm_up_unwinder(t, context);
    } else if (signal_is_sample(t, info)) {
        take_sample(t, info, context);
    }
    errno = saved_errno;
}

/* --- Start-up only: not called from the handler -------------------------- */

int sprof_sampler_install(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = sprof_sampler_on_signal;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&action.sa_mask);
    if (sprof_real_sigaction(sprof_sampler.signal_number, &action, &sprof_sampler.previous) != 0)
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
