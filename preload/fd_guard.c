/* The program's descriptor calls, kept off sprof's own descriptors: the
 * trace, each thread's perf_event counter, and libunwind's pipe. Daemons
 * close every descriptor, or dup2 over them; the trace and the counters are
 * then left open (close reports success) or moved out of the way first, so
 * sampling and the trace go on. libunwind's pipe, which cannot move, is
 * taken from libunwind, which makes another when it needs one, and really
 * closed: libunwind never reads from or writes into a file of the
 * program's, and the program's next descriptor has the number it would
 * have without sprof.
 * Ours are known by what they hold, not just their number: one the program
 * closed with a raw system call may now be a file of its own.
 * close may be called from signal handlers: nothing here allocates or
 * locks. NOT otherwise special. */
/* fstat and fstat64 are both defined here (see the end): neither may be
 * renamed to the other by the headers. */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "profiler.h"
#include "sample_handler.h"
#include "sampling_timer.h"
#include "signals.h"

typedef int (*close_range_fn)(unsigned int, unsigned int, int);

/* The real functions, resolved at start-up: close is async-signal-safe and
 * may be called from a handler, where dlsym may not. */
static int (*real_close)(int);
static close_range_fn real_close_range;
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);

/* libunwind's memory-validation pipe: where libunwind keeps its two
 * numbers (its own static array, seen when it calls pipe2 inside the
 * unwinding window), and what they hold, to tell them from a file of the
 * program's at the same number if one is closed behind our back. */
static int *_Atomic unwinder_pipe;
static _Atomic int unwinder_fds[2] = {-1, -1};
static dev_t unwinder_devs[2];
static ino_t unwinder_inos[2];
/* A pipe taken from libunwind while a thread was still unwinding with it:
 * closed once no thread is. */
static _Atomic int stale_fds[2] = {-1, -1};

void sprof_fd_guard_note_unwinder_pipe(int fds[2])
{
    struct stat st[2];
    if (sprof_fstat_raw(fds[0], &st[0]) != 0 || sprof_fstat_raw(fds[1], &st[1]) != 0)
        return;
    for (int i = 0; i < 2; i++) {
        unwinder_devs[i] = st[i].st_dev;
        unwinder_inos[i] = st[i].st_ino;
        atomic_store(&unwinder_fds[i], fds[i]);
    }
    atomic_store(&unwinder_pipe, fds);
}

int sprof_fstat_raw(int fd, struct stat *st)
{
    return (int)syscall(SYS_fstat, fd, st);
}

static bool holds_file(int fd, dev_t dev, ino_t ino)
{
    struct stat st;
    return sprof_fstat_raw(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

/* Waits, for at most about 100 ms, until no other thread is inside
 * libunwind. Threads that enter after the pipe's numbers were taken away
 * read -1 there; a thread found inside may still hold an old number. */
static bool wait_for_unwinders(void)
{
    struct sprof_thread *self = sprof_current_thread;
    for (int round = 0; round < 1000; round++) {
        bool busy = false;
        for (struct sprof_thread *t = atomic_load(&sprof_threads); t && !busy; t = t->next)
            busy = t != self && atomic_load(&t->unwinding);
        if (!busy)
            return true;
        struct timespec pause = {0, round < 10 ? 0 : 100000};
        nanosleep(&pause, NULL);
    }
    return false;
}

/* Takes libunwind's pipe away from it: its array reads -1 (libunwind opens
 * a new pipe when it next validates an address, or treats the address as
 * unreadable if it cannot), and once no thread is still unwinding with the
 * old numbers, the descriptors are closed, but for *kept, which is handed
 * to the caller when kept is not NULL. Returns how many were closed or
 * handed over. Async-signal-safe; not from inside the unwinding window. */
static int retire_unwinder_pipe(int *kept)
{
    if (kept)
        *kept = -1;
    int *pipe_numbers = atomic_load(&unwinder_pipe);
    if (!pipe_numbers || sprof_signals_in_unwind_window())
        return 0;
    int fds[2];
    for (int i = 0; i < 2; i++) {
        fds[i] = atomic_exchange(&unwinder_fds[i], -1);
        /* Only libunwind's current numbers: it may have opened a new pipe
         * since, or the program taken the number. */
        int expected = fds[i];
        if (fds[i] < 0 || !holds_file(fds[i], unwinder_devs[i], unwinder_inos[i]) ||
            !__atomic_compare_exchange_n(&pipe_numbers[i], &expected, -1, false,
                                         __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            fds[i] = -1;
    }
    if (!wait_for_unwinders()) {
        for (int i = 0; i < 2; i++) {
            if (fds[i] >= 0)
                atomic_store(&stale_fds[i], fds[i]);
        }
        return 0;
    }
    int released = 0;
    for (int i = 0; i < 2; i++) {
        int stale = atomic_exchange(&stale_fds[i], -1);
        if (stale >= 0 && real_close(stale) == 0)
            released++;
        if (fds[i] < 0)
            continue;
        if (kept && *kept < 0) {
            *kept = fds[i];
            released++;
        } else if (real_close(fds[i]) == 0) {
            released++;
        }
    }
    return released;
}

int sprof_fd_guard_give_back_unwinder_pipe(void)
{
    return retire_unwinder_pipe(NULL);
}

int sprof_fd_guard_take_unwinder_fd(void)
{
    int kept;
    retire_unwinder_pipe(&kept);
    return kept;
}

/* Where fd is one of ours, a pointer to what holds it (to move it), or for
 * libunwind's (which cannot move) a pointer to a copy. NULL if not ours. */
static _Atomic int *trace_holder(int fd)
{
    return fd >= 0 && atomic_load(&sprof_sampler.trace_fd) == fd &&
                   holds_file(fd, sprof_sampler.trace_dev, sprof_sampler.trace_ino)
               ? &sprof_sampler.trace_fd
               : NULL;
}

static struct sprof_thread *perf_holder(int fd)
{
    if (fd < 0)
        return NULL;
    for (struct sprof_thread *t = atomic_load(&sprof_threads); t; t = t->next) {
        if (t->perf_fd != fd)
            continue;
        if (sprof_timer_counter_intact(t))
            return t;
        /* Closed behind our back and reused: the program's file now. */
        sprof_timers_number_taken(fd, sprof.period_ns, sprof.plan.kernel_sampled,
                                  sprof.settings.signal_number);
        return NULL;
    }
    return NULL;
}

/* A counter being made or closed (sampling_timer.c): not one to sample
 * with, but sprof's. */
static bool perf_changing(int fd)
{
    for (struct sprof_thread *t = atomic_load(&sprof_threads); fd >= 0 && t; t = t->next) {
        if (atomic_load(&t->perf_fd_changing) == fd)
            return true;
    }
    return false;
}

static bool is_unwinder_fd(int fd)
{
    for (int i = 0; i < 2; i++) {
        if (fd >= 0 && atomic_load(&unwinder_fds[i]) == fd)
            return holds_file(fd, unwinder_devs[i], unwinder_inos[i]);
    }
    return false;
}

/* Ours to keep open: the trace and the perf counters. libunwind's pipe is
 * taken from libunwind instead (retire_unwinder_pipe), and the number freed. */
static bool is_ours(int fd)
{
    return trace_holder(fd) || perf_holder(fd);
}

void sprof_fd_guard_init(void)
{
    real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
    real_close_range = (close_range_fn)dlsym(RTLD_NEXT, "close_range");
    real_dup2 = (int (*)(int, int))dlsym(RTLD_NEXT, "dup2");
    real_dup3 = (int (*)(int, int, int))dlsym(RTLD_NEXT, "dup3");
}

SPROF_EXPORT int close(int fd)
{
    int (*fn)(int) = real_close;
    if (!fn) {
        /* Called before our constructor (by another library's). */
        errno = 0;
        return (int)syscall(SYS_close, fd);
    }
    if (sprof_signals_in_unwind_window()) {
        /* libunwind replacing its pipe: its own to close. */
        for (int i = 0; i < 2; i++) {
            int expected = fd;
            atomic_compare_exchange_strong(&unwinder_fds[i], &expected, -1);
        }
        return fn(fd);
    }
    if (is_unwinder_fd(fd))
        return retire_unwinder_pipe(NULL) > 0 ? 0 : fn(fd);
    if (is_ours(fd))
        return 0; /* left open; the program has no use for the number */
    return fn(fd);
}

/* Closes [first, last] but for ours, with the real close_range on the gaps. */
static int close_range_around_ours(close_range_fn fn, unsigned int first, unsigned int last,
                                   int flags)
{
    unsigned int from = first;
    while (from <= last) {
        /* The lowest of ours in [from, last]. */
        unsigned int ours = UINT_MAX;
        int trace = atomic_load(&sprof_sampler.trace_fd);
        if (trace >= 0 && (unsigned)trace >= from && (unsigned)trace <= last && is_ours(trace))
            ours = (unsigned)trace;
        for (struct sprof_thread *t = atomic_load(&sprof_threads); t; t = t->next) {
            int fd = t->perf_fd;
            if (fd >= 0 && (unsigned)fd >= from && (unsigned)fd <= last && (unsigned)fd < ours &&
                sprof_timer_counter_intact(t))
                ours = (unsigned)fd;
        }
        unsigned int end = ours == UINT_MAX ? last : ours - 1;
        if (ours != from && fn(from, end, flags) != 0)
            return -1;
        if (ours == UINT_MAX || ours == last)
            break;
        from = ours + 1;
    }
    return 0;
}

SPROF_EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
    close_range_fn fn = real_close_range;
    if (!fn) {
        errno = ENOSYS;
        return -1;
    }
    /* Marking close-on-exec harms nothing: ours are close-on-exec already. */
    if ((flags & CLOSE_RANGE_CLOEXEC) || first > last)
        return fn(first, last, flags);
    for (int i = 0; i < 2; i++) {
        int fd = atomic_load(&unwinder_fds[i]);
        if (fd >= 0 && (unsigned)fd >= first && (unsigned)fd <= last && is_unwinder_fd(fd)) {
            retire_unwinder_pipe(NULL); /* both ends */
            break;
        }
    }
    return close_range_around_ours(fn, first, last, flags);
}

SPROF_EXPORT void closefrom(int lowest)
{
    if (lowest < 0)
        lowest = 0;
    if (close_range((unsigned int)lowest, UINT_MAX, 0) == 0)
        return;
    long limit = sysconf(_SC_OPEN_MAX);
    for (long fd = lowest; fd < limit; fd++)
        close((int)fd);
}

/* Before the program puts a descriptor at newfd, moves ours away from it;
 * libunwind's pipe, which cannot move, is taken from libunwind. */
static void make_room(int newfd)
{
    if (is_unwinder_fd(newfd)) {
        retire_unwinder_pipe(NULL);
        return;
    }
    _Atomic int *trace = trace_holder(newfd);
    if (trace) {
        int moved = (int)syscall(SYS_fcntl, newfd, F_DUPFD_CLOEXEC, newfd + 1);
        if (moved >= 0)
            atomic_store(trace, moved);
        return;
    }
    struct sprof_thread *t = perf_holder(newfd);
    if (t) {
        /* Signals keep carrying the original number (perf_signal_fd). */
        int moved = (int)syscall(SYS_fcntl, newfd, F_DUPFD_CLOEXEC, newfd + 1);
        if (moved >= 0)
            t->perf_fd = moved;
    }
}

SPROF_EXPORT int dup2(int oldfd, int newfd)
{
    int (*fn)(int, int) = real_dup2;
    if (!fn) {
        errno = ENOSYS;
        return -1;
    }
    if (oldfd != newfd)
        make_room(newfd);
    return fn(oldfd, newfd);
}

SPROF_EXPORT int dup3(int oldfd, int newfd, int flags)
{
    int (*fn)(int, int, int) = real_dup3;
    if (!fn) {
        errno = ENOSYS;
        return -1;
    }
    if (oldfd != newfd)
        make_room(newfd);
    return fn(oldfd, newfd, flags);
}

/* --- Probes: sprof's descriptors read as closed ------------------------------
 * Programs list their open descriptors by probing each number with fstat or
 * fcntl(F_GETFD) (CPython's subprocess tests, closefrom fallbacks); to them
 * sprof's read as closed (EBADF). /proc/self/fd still lists them. */

/* Whether fd, of which fstat said st, is one of sprof's. The file's type
 * picks the one check that can match; each compares numbers before it
 * makes a system call. */
static bool hidden_descriptor(int fd, const struct stat *st)
{
    if (sprof_signals_in_unwind_window())
        return false;
    switch (st->st_mode & S_IFMT) {
    case S_IFREG:
        return trace_holder(fd) != NULL;
    case S_IFIFO:
        return is_unwinder_fd(fd);
    case 0: /* an anonymous inode, as a perf_event counter's */
        return perf_holder(fd) != NULL || perf_changing(fd);
    default:
        return false;
    }
}

static int stat_unless_hidden(int fd, struct stat *st)
{
    if (sprof_fstat_raw(fd, st) != 0)
        return -1;
    if (hidden_descriptor(fd, st)) {
        errno = EBADF;
        return -1;
    }
    return 0;
}

bool sprof_fd_guard_hidden(int fd)
{
    struct stat st;
    return sprof_fstat_raw(fd, &st) == 0 && hidden_descriptor(fd, &st);
}

SPROF_EXPORT int fstat(int fd, struct stat *st)
{
    return stat_unless_hidden(fd, st);
}

SPROF_EXPORT int fstat64(int fd, struct stat64 *st)
{
    _Static_assert(sizeof(struct stat64) == sizeof(struct stat), "one stat layout");
    return stat_unless_hidden(fd, (struct stat *)st);
}

/* glibc before 2.33 had programs call these instead. */
int __fxstat(int version, int fd, struct stat *st);
int __fxstat64(int version, int fd, struct stat64 *st);

SPROF_EXPORT int __fxstat(int version, int fd, struct stat *st)
{
    (void)version;
    return stat_unless_hidden(fd, st);
}

SPROF_EXPORT int __fxstat64(int version, int fd, struct stat64 *st)
{
    (void)version;
    return stat_unless_hidden(fd, (struct stat *)st);
}
